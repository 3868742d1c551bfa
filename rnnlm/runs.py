"""Run folders: what a training run leaves on disk, and everything that reads it back.

A run folder holds

    config.json     {"train": TrainConfig as a dict, "model": ModelConfig, "corpus": {checksum,
                    tokens, oov_rate}, "rnnlm_version", "run_id"}; written once when the run starts
    vocab.json      the vocabulary (Vocab.to_json)
    metrics.jsonl   one JSON event per line (start, step, eval, epoch, jacobian, nonfinite,
                    stop, end, resume), appended and flushed one whole line at a time; "end"
                    follows the final evaluation (see final_evaluation_pending)
    model.npz       the latest checkpoint, with optimizer and loop state: what a resume reads
    best.npz        the model of the best validation loss so far (no optimizer state)
    .train.lock     the OS lock a training process holds for its whole life (filelock):
                    a second writer is refused; readers never take it (folderlock.py)

(checkpoint.py describes the arrays inside the two .npz files.) `Run` is the
folder as a training session writes it; `load_model`, `read_run_config` and
`resume_config` read it back. Instruments (jacobian, probes, plots, plotruns, the
demos) read runs through this module; they never import the training loop.
The parts of a run folder's life that are ideas of their own live beside it:
folderlock.py holds the folder's lock (`lock_run`, `lock_holder`),
evaluate.py evaluates a run's model (`run_evaluate`, `run_text_ids`,
`evaluate_stream`) and measured.py says when a measurement's JSON is older
than the checkpoint it measured or replaces another (`measurement_age_note`,
`replaced_note`).

The one thing to know before editing: a resume starts from model.npz, so
reopening a run drops every metrics event logged after that checkpoint's step
(it was written by a session whose later state was lost), and a final
evaluation that did not finish (its stop event and what followed: the resumed
session logs them again whole); events are otherwise only ever appended. This module imports nothing heavy at import
time (the CLI's `--help` imports it through train.py).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

from .errors import UserError, and_list, json_kind, plural, shell_arg
from .folderlock import LOCK, lock_holder

CONFIG = "config.json"
VOCAB = "vocab.json"
METRICS = "metrics.jsonl"
LATEST = "model.npz"
BEST = "best.npz"


def ppl(loss: float) -> float:
    """Perplexity e^loss of a cross-entropy in nats/token (inf where e^loss overflows float64, from a
    loss of ~709.78 nats on; NaN for a NaN loss)."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def fmt_ppl(x, digits: int = 2) -> str:
    """A perplexity for people (reports, summaries, figure labels): `141.19`, or scientific notation
    from 1e5 on (`3.41e+35`: an exploded run's e^loss has 30-odd digits), `inf`, `nan`; None: `n/a`."""
    if x is None:
        return "n/a"
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else "inf"
    return f"{x:.{digits}f}" if abs(x) < 1e5 else f"{x:.2e}"


def fmt_ppl_of(ppl_value, loss, digits: int = 2) -> str:
    """fmt_ppl, and where the perplexity is inf while its loss is finite (a loss above ~700 nats, whose e^loss
    overflows float64), the loss beside it: `inf (loss 1.05e+34 nats: e^loss overflows)`, so that an inf is not
    read as a non-finite model; a NaN loss is `nan (the loss is NaN: the forward pass diverged)`."""
    if loss is not None and math.isnan(float(loss)):      # (ppl() maps it to inf: say what it is)
        return "nan (the loss is NaN: the forward pass diverged)"
    text = fmt_ppl(ppl_value, digits)
    if ppl_value is not None and math.isinf(float(ppl_value)) and loss is not None and math.isfinite(float(loss)):
        text += f" (loss {float(loss):.2e} nats: e^loss overflows)"
    return text


# ---------------------------------------------------------------- metrics.jsonl


class Metrics:
    """metrics.jsonl: one event per line, appended and flushed one whole line at a time."""

    def __init__(self, path: Path):
        self.path = path
        self.f = open(path, "a", encoding="utf-8")

    def log(self, event: dict) -> None:
        """Append the event as one line. An OSError of the write (a full disk) names metrics.jsonl, as the
        system names no file for a write into an open one."""
        with self._named():
            self.f.write(json.dumps(finite_or_none(event), ensure_ascii=False) + "\n")
            self.f.flush()

    def close(self):
        with self._named():
            self.f.close()

    @contextlib.contextmanager
    def _named(self):
        try:
            yield
        except OSError as exc:
            if exc.filename is not None or exc.errno is None:
                raise
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(self.path)) from None


def finite_or_none(event: dict) -> dict:
    """The event with each non-finite float as None: strict JSON has no NaN/Infinity, so it is written as
    null (the nonfinite event says which tensor went bad)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in event.items()}


# The fields of metrics.jsonl events that hold a number, or null (a non-finite one: finite_or_none)
NUMBER_FIELDS = frozenset({
    "epoch", "loss", "ppl", "loss_avg", "grad_norm", "grad_norm_clipped", "clip_fraction", "lr", "next_lr",
    "min_lr", "tokens_per_s", "tokens", "of_tokens", "omega", "time", "val_loss", "val_ppl", "best_val_ppl",
    "test_loss", "test_ppl", "train_loss", "train_ppl", "seconds", "final_eval_need_s", "detected_at",
    "startup_s", "params", "vocab_size", "windows_per_epoch", "pos", "steps", "skipped", "skipped_undone",
    "plateaus", "rolled_back_to", "threads"})


def event_problem(e) -> str | None:
    """Why a JSON value read from a metrics.jsonl line is not an event train() logs (a line damaged or
    edited by hand: the readers skip it), or None: an object with a string "type", an integer "step"
    (when it has one), and a number or null in each field of NUMBER_FIELDS it has."""
    if not isinstance(e, dict):
        return f"{json_kind(e)}, not an object"
    if not isinstance(e.get("type"), str):
        return "no type" if "type" not in e else f"its type is {json_kind(e['type'])}, not a name"
    step = e.get("step")
    if "step" not in e and e["type"] in ("step", "eval"):      # (what the readers place them by)
        return f"its type is {e['type']} but it has no step"
    if "step" in e and (not isinstance(step, int) or isinstance(step, bool)):
        return f"its step is {json.dumps(step)[:40]}, not a whole number"
    for k in sorted(NUMBER_FIELDS & e.keys()):
        v = e[k]
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)):
            return f"its {k} is {json.dumps(v)[:40]}, not a number"
    return None


def _events(path: Path) -> list[tuple[str, dict]]:
    """(line, event) of every whole line of a metrics.jsonl (none when it does not exist); a line that is
    JSON but not an event (event_problem: damaged or edited by hand) is skipped like a cut one."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():   # a damaged byte: that line
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue        # a line cut by a crash
        if event_problem(e) is None:
            out.append((line, e))
    return out


def _unfinished_stop(events: list[tuple[str, dict]], step: int) -> int | None:
    """Index of the last stop event when it is at `step`, announced a final evaluation and no "end"
    event follows it (the evaluation was stopped, by Ctrl-C, SIGTERM or a crash); else None."""
    stops = [i for i, (_, e) in enumerate(events) if e.get("type") == "stop"]
    if not stops:
        return None
    i = stops[-1]
    e = events[i][1]
    if not e.get("final_evaluation") or e.get("step") != step:
        return None         # no field: a run of an earlier version, which logged no "end" either
    return None if any(e.get("type") == "end" for _, e in events[i + 1:]) else i


def final_evaluation_pending(folder, step: int) -> str | None:
    """How the run in `folder` stopped (the stop event's reason) when it stopped at `step` (its
    model.npz's) with training done but its final evaluation unfinished; None otherwise.

    train() logs a stop event with "final_evaluation": true before the final
    validation and test, and an "end" event once they are done; a stop event
    with no "end" after it is a final evaluation that a signal or a crash cut
    short. (Runs of earlier versions log neither field nor "end": they count as finished.)
    """
    events = _events(Path(folder) / METRICS)
    i = _unfinished_stop(events, step)
    return None if i is None else events[i][1].get("reason")


def log_gone(folder, step: int) -> str | None:
    """A resume's note when the run's metrics.jsonl holds no event (emptied, removed) though its checkpoint is
    at `step` > 0: the training resumes all the same, but the log of the steps before it is gone, and what
    reads the log (plot training, plot lag --over-training, sweep records) starts at `step`. None otherwise."""
    path = Path(folder) / METRICS
    if step <= 0 or _events(path):
        return None
    state = "is empty" if path.exists() else "is missing"
    return (f"{path} {state}, though the checkpoint is at step {step:,}: the run resumes from it, but the log of "
            f"the steps before it is gone: the run's log and its plots start at step {step:,}")


def threads_changed(folder, step: int, threads: int) -> str | None:
    """A resume's note when the session that saved the checkpoint (the last "start" or "resume" event of the
    run's metrics.jsonl, which records Numba's thread count since 0.2) trained on another number of threads
    than `threads`: the kernels split a step's sums by the thread count (the output layer's gradient is
    summed from one part per thread), so the losses from here differ in their last bits from a run that
    stayed on that count (SGD may carry the difference further). Each count is reproducible on its own.
    None when the counts agree or the log does not say."""
    before = [e.get("threads") for _, e in _events(Path(folder) / METRICS) if e.get("type") in ("start", "resume")]
    if not before or not isinstance(before[-1], int) or before[-1] == threads:
        return None
    return (f"this run trained on {before[-1]} {plural(before[-1], 'thread')} up to step {step:,} and resumes on "
            f"{threads}: a step's sums are split by the thread count, so its losses from here differ in their last "
            f"bits from a run that stayed on {before[-1]} (and SGD may carry that further); NUMBA_NUM_THREADS="
            f"{before[-1]} resumes it exactly as it would have gone on")


def lost_steps(folder, step: int) -> int | None:
    """The last step that the run's metrics.jsonl logged training to (a step event, or a skipped step's
    nonfinite event), when it lies beyond `step` (the checkpoint a resume starts from) and the session
    that logged it ended without a stop or end event (kill -9, a crash, a power cut: the steps since the
    last save were lost); None otherwise (a Ctrl-C saves where it stops; a non-finite stop rolls back on
    purpose and says so)."""
    events = [e for _, e in _events(Path(folder) / METRICS)]
    # training that went on: step events, and the steps skipped (--on-nonfinite skip), which log no step event
    logged = [i for i, e in enumerate(events) if isinstance(e.get("step"), int) and
              (e.get("type") == "step" or e.get("type") == "nonfinite" and e.get("action") == "skip")]
    if not logged or events[logged[-1]]["step"] <= step:
        return None
    if any(e.get("type") in ("stop", "end", "nonfinite") for e in events[logged[-1] + 1:]):
        return None
    return events[logged[-1]]["step"]


def truncate_metrics(path: Path, step: int) -> None:
    """Drop events logged after `step` (written after the checkpoint a resume starts from), and an
    unfinished final evaluation at `step` (its stop event and what followed it: the resumed session
    logs them again, whole)."""
    from .fileio import atomic_write_bytes
    if not path.exists():
        return
    kept = [(line, e) for line, e in _events(path) if e.get("step", 0) <= step]
    cut = _unfinished_stop(kept, step)
    if cut is not None:
        kept = kept[:cut]
    atomic_write_bytes(path, "".join(line + "\n" for line, _ in kept).encode("utf-8"))


# ---------------------------------------------------------------- a run being written


def remove_stale_temp_files(folder) -> list[str]:
    """Delete the `.<name>.<tag>.<random>.tmp` files an atomic write killed mid-save left in a run folder.

    Call it only while holding the folder's lock (no other writer can own them). Returns their names.
    """
    folder = Path(folder)
    removed = []
    for p in folder.glob(".*.tmp"):
        if p.name.startswith(tuple(f".{name}." for name in (LATEST, BEST, CONFIG, VOCAB, METRICS))):
            try:
                p.unlink()
                removed.append(p.name)
            except OSError:
                pass
    return removed


def holds_checkpoint(folder) -> bool:
    """Whether a run folder holds a model.npz a resume can start from."""
    return (Path(folder) / LATEST).exists()


def clear_unsaved_run(folder) -> bool:
    """Empty a run folder whose run stopped (crash, Ctrl-C, kill) before its first model.npz.

    Such a folder holds config.json but nothing to resume, so a new training
    may take it over. Call it only holding the folder's lock. True when it cleared one.
    """
    folder = Path(folder)
    if not (folder / CONFIG).exists() or holds_checkpoint(folder) or (folder / BEST).exists():
        return False        # (a best.npz is a trained model: refuse_taken keeps it)
    if _finished_at(folder) is not None:
        return False        # a finished run's records without its model (refuse_taken keeps them)
    for name in (CONFIG, VOCAB, METRICS):
        (folder / name).unlink(missing_ok=True)
    return True


def refuse_odd_records(folder, names=(CONFIG, VOCAB, METRICS), folders: bool = True) -> None:
    """UserError (one line) when a run's record in `folder` among `names` (config.json, vocab.json,
    metrics.jsonl) is there but is not a regular file: a link to nothing, a named pipe (reading it waits for a
    writer forever: a command hung with nothing said), a device, a socket, or (folders=True) a folder.
    folders=False: a caller whose own check says better what a folder of that name is (a new run's: "no run
    of this tool wrote").
    Checkpoints are checked as they load (checkpoint.load)."""
    for name in names:
        path = Path(folder) / name
        if path.is_symlink() and not path.exists():
            raise UserError(f"{path} is a link to {os.readlink(path)}, which does not exist; a run keeps its "
                            f"records as files: restore it from a copy, or remove the link")
        if path.exists() and not path.is_file() and (folders or not path.is_dir()):
            what = "a folder" if path.is_dir() else "a named pipe, a device or a socket"
            raise UserError(f"{path} is not a regular file ({what}); a run keeps its records as files: restore "
                            f"it from a copy, or move it away")


def _finished_at(folder: Path) -> int | None:
    """The step of the "end" event in a run folder's metrics.jsonl (a run that finished: a sweep job's folder
    keeps its records but not its model), or None: no such event, no readable log."""
    import json
    try:
        lines = (folder / METRICS).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "end":
            step = event.get("step")
            return step if isinstance(step, int) and not isinstance(step, bool) else 0
    return None


def _taken(folder: Path) -> UserError:
    """The one line for a new run's --out that holds a run: resume it, or train elsewhere. A run that
    finished (its "end" event) is resumed only with a larger limit than the one that stopped it: said, so
    that the advice followed as written is not refused in turn."""
    events = [e for _, e in _events(folder / METRICS)]
    stop = next((e for e in reversed(events) if e.get("type") == "stop"), None)
    ended = stop is not None and any(e.get("type") == "end" for e in events)
    limit = {"max_steps": ("--max-steps", "larger"), "epochs": ("--epochs", "larger"),
             "max_minutes": ("--max-minutes", "larger"), "early_stop": ("--patience", "larger"),
             "min_lr": ("--min-lr", "smaller")}.get(stop.get("reason")) if ended else None
    if limit is None:
        return UserError(f"{folder} already holds a run; use --resume {shell_arg(folder)} or another --out")
    return UserError(f"{folder} already holds a run, which stopped at its {limit[0]}; use --resume "
                     f"{shell_arg(folder)} with a {limit[1]} {limit[0]} to train it further, or another --out")


def refuse_taken(folder) -> None:
    """UserError (one line, nothing written) when `folder` holds a saved run a new training must not take.

    Run.create's refusal, made before the corpus is read; a folder whose run
    stopped before its first checkpoint is free (clear_unsaved_run). A best.npz
    or model.npz counts as a saved run even without the rest of one (a run
    whose model.npz was deleted, files copied in): a new run would replace it. So do the records of a run
    that finished (an "end" event) without its model (a sweep job's folder, copied out of its sweep).
    """
    folder = Path(folder)
    refuse_odd_records(folder, folders=False)
    if (folder / CONFIG).exists() and holds_checkpoint(folder):
        raise _taken(folder)
    kept = [name for name in (LATEST, BEST) if (folder / name).exists()]
    if kept:
        why = _unreadable(folder / kept[0])
        if why:     # nothing to evaluate in it: no advice that it evaluates
            raise UserError(f"{folder} holds {kept[0]}, which a new run would replace, and it cannot be read "
                            f"({why}); give the new run another --out, or delete that file first")
        which = "latest" if kept[0] == LATEST else "best"
        raise UserError(f"{folder} holds {kept[0]}, a trained model that a new run would replace; give the new "
                        f"run another --out (evaluate and generate still read it: --checkpoint {which})")
    if (folder / CONFIG).exists() and (step := _finished_at(folder)) is not None:
        raise UserError(f"{folder} holds the records of a run that finished at step {step:,} (config.json, "
                        f"metrics.jsonl) without its model; a new run would replace them: give it another --out")
    foreign = _not_a_runs(folder)
    if foreign:
        raise UserError(f"{folder} holds {and_list(foreign)} that no run of this tool wrote, and a new run would "
                        f"replace {'it' if len(foreign) == 1 else 'them'}; give the run a new or empty folder as "
                        "--out")


def _not_a_runs(folder: Path) -> list:
    """The files named as a run's (config.json, vocab.json, metrics.jsonl) in `folder` that are not a run's:
    a config.json without a run's "train" settings (another tool's, the user's own), or a vocab.json or
    metrics.jsonl beside no config.json (a run writes config.json first). A new run writes those names."""
    import json
    config = folder / CONFIG
    if config.exists() and not config.is_file():
        return [CONFIG]     # (a folder of that name)
    if config.is_file():
        try:
            saved = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if isinstance(saved, dict) and isinstance(saved.get("train"), dict):
            return []
        return [CONFIG]
    return [name for name in (VOCAB, METRICS) if (folder / name).exists()]


def others_in(folder) -> str | None:
    """A new run's note when its --out already holds files that are not a run's (notes, another tool's
    output): the run's files are written beside them, which a user may not have meant. None otherwise."""
    own = {CONFIG, VOCAB, METRICS, LATEST, BEST, LOCK}
    try:
        others = sorted(p.name for p in Path(folder).iterdir() if p.name not in own)
    except OSError:
        return None
    if not others:
        return None
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3:,} more" if len(others) > 3 else "")
    n = len(others)
    return (f"{folder} already holds {n:,} {'file or folder that is' if n == 1 else 'files or folders that are'} "
            f"not a run's ({shown}): the run's files are written beside them")


def inside_a_run(folder) -> str | None:
    """A new run's note when its --out lies inside another run's folder (a folder above it holds a
    config.json and a metrics.jsonl or model.npz): the new run is written among that run's files and goes
    where that run goes (a copy, a deletion). None otherwise."""
    folder = Path(folder)
    try:
        full = folder.resolve()
    except (OSError, RuntimeError):
        return None
    for depth, parent in enumerate(full.parents, start=1):
        try:
            if not ((parent / CONFIG).is_file() and ((parent / METRICS).is_file() or (parent / LATEST).is_file())):
                continue
        except OSError:
            return None
        # the run folder as the user wrote the path (runs/a for --out runs/a/sub), where it can be told so
        said = folder.parents[depth - 1] if len(folder.parents) > depth else parent
        beside = said.parent / full.name
        # (an example only where it is free: a taken one would be refused when the advice is followed)
        such = f", such as {beside}," if not (parent.parent / full.name).exists() else ""
        return (f"{folder} is inside the run folder {said}: the new run is kept among that run's files (and is "
                f"copied or deleted with them); give an --out beside it{such} to keep them apart")
    return None


def _unreadable(path: Path) -> str | None:
    """Why checkpoint.load refuses `path` (its one line), or None when it loads."""
    from . import checkpoint
    try:
        checkpoint.load(path)
    except UserError as exc:
        return str(exc)
    return None


def refuse_sweep_folder(folder, resume: bool = False) -> None:
    """UserError (one line) when `folder` is a sweep's or a study's (sweep.jsonl, .sweep.lock): a run
    trained into it would make the sweep refuse it as a training run's folder; or one of its jobs' folders
    (config.json and metrics.jsonl, a checkpoint only with --keep-models: a new run would take it for a run
    killed before its first save and clear it, and a resume would change what sweep.jsonl records).
    Checked before train() takes its lock, whose file would stay there. resume: the folder was given to
    --resume."""
    folder = Path(folder)
    marks = [name for name in ("sweep.jsonl", ".sweep.lock") if (folder / name).exists()]
    if marks:
        raise UserError(f"{folder} is a sweep's or a study's folder (it holds {marks[0]}); give the run another --out")
    if (folder.parent / "sweep.jsonl").exists() and (folder / CONFIG).exists():
        # (its files are what sweep.jsonl records: a resume or a new run would change them behind its back)
        raise UserError(f"{folder} is a job of the sweep in {folder.parent}"
                        + (": a resume would change what the sweep recorded (and its jobs keep a checkpoint only "
                           "with --keep-models); train its settings into a new --out" if resume else
                           "; give the run another --out"))


def _record_resume_settings(folder: Path, info: dict) -> None:
    """config.json's training settings set to the resumed session's where a resume may change them
    (`resume_changes`), so that it holds the settings the run goes on with and a later plain --resume keeps
    them, and its "out" set to this folder (a run folder copied elsewhere named the original's); the rest
    stays as written."""
    from .fileio import atomic_write_json
    saved = read_run_config(folder)
    changed = resume_changes(saved, info.get("train", {}))
    out = info.get("train", {}).get("out")
    if out is not None and saved.get("train", {}).get("out") != out:
        changed["out"] = out        # a copied run folder: it is where this run is written now
    from .config import CORPUS_PLACE
    data = dict(saved.get("train", {}).get("data") or {})
    place = {k: v for k, v in (info.get("train", {}).get("data") or {}).items() if k in CORPUS_PLACE
             and data.get(k) != v}
    if place:                       # a moved corpus given with --corpus (the same text, by its checksum)
        changed["data"] = {**data, **place}
    if changed:
        atomic_write_json(folder / CONFIG, {**saved, "train": {**saved.get("train", {}), **changed}})


def resume_changes(saved: dict, new: dict) -> dict:
    """The training settings of a resumed session (`new`, config.json's "train" dict) that differ from the
    run's config.json (`saved`, read_run_config's) where a resume may change them: config.RESUME_OVERRIDABLE
    but the bar (--max-steps, --max-minutes, --on-nonfinite, --patience, ...)."""
    from .config import RESUME_OVERRIDABLE
    train = saved.get("train", {})
    keys = [k for k in RESUME_OVERRIDABLE if k != "progress"]     # (the bar is this session's, not the run's)
    return {k: new[k] for k in keys if k in new and k in train and train[k] != new[k]}


def restore_vocab(folder, vocab: dict) -> str | None:
    """Write a resumed run's vocab.json again (atomically) when it is missing, not valid JSON or not the
    vocabulary `vocab`; returns what was wrong with it ("was missing", ...), or None when it was right.

    Call it only after resume_checkpoint: the corpus checksum then matches the run's config.json and
    `vocab` (the vocabulary rebuilt from that corpus) is the one inside model.npz, so the file written
    is the one the run started with. (A checksum that differs is refused there: nothing to rebuild from.)
    """
    from .fileio import atomic_write_json
    path = Path(folder) / VOCAB
    if not path.exists():
        why = "was missing"
    else:
        try:
            on_disk = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            why = "was not valid JSON"
        else:
            if on_disk == vocab:
                return None
            why = f"held another vocabulary than {LATEST}"
    atomic_write_json(path, vocab)
    return why


class Run:
    """A run folder open for writing by one training session: its metrics log and its checkpoints.

    info: what config.json holds (saved again inside every checkpoint as meta.config);
    vocab: Vocab.to_json(). Open one with `Run.create` (a new run) or `Run.reopen` (a resume,
    after `resume_checkpoint`), holding the folder's lock (`folderlock.lock_run`), which `close` releases.
    """

    def __init__(self, folder, info: dict, vocab: dict, lock=None):
        self.folder = Path(folder)
        self.info = info
        self.vocab = vocab
        self.lock = lock
        self.metrics = Metrics(self.folder / METRICS)

    @classmethod
    def create(cls, folder, info: dict, vocab: dict, lock=None) -> "Run":
        """A new run: refuse a folder that already holds one; write config.json and vocab.json.

        (train() first clears a folder whose run stopped before its first
        checkpoint: `clear_unsaved_run`.) Leftover temporary files of a killed save are removed. Both
        files are written or neither: a failed write (a full disk, a file-size limit) removes config.json
        again, so that no folder is left looking like a run that never had a model.
        """
        from .fileio import atomic_write_json
        folder = Path(folder)
        if (folder / CONFIG).exists():
            raise _taken(folder)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(folder)
        try:
            atomic_write_json(folder / CONFIG, info)
            atomic_write_json(folder / VOCAB, vocab)
            (folder / METRICS).unlink(missing_ok=True)
        except BaseException:
            for name in (CONFIG, VOCAB):
                try:
                    (folder / name).unlink(missing_ok=True)
                except OSError:
                    pass
            raise
        return cls(folder, info, vocab, lock)

    @classmethod
    def reopen(cls, folder, info: dict, vocab: dict, step: int, lock=None) -> "Run":
        """An existing run, resumed from its checkpoint at `step` (see `resume_checkpoint`):
        the metrics events logged after that step are dropped, and those of a final evaluation that did
        not finish (truncate_metrics); leftover temporary files are removed."""
        folder = Path(folder)
        remove_stale_temp_files(folder)
        truncate_metrics(folder / METRICS, step)
        _record_resume_settings(folder, info)
        return cls(folder, info, vocab, lock)

    @property
    def latest(self) -> Path:
        return self.folder / LATEST

    @property
    def best(self) -> Path:
        return self.folder / BEST

    def log(self, event: dict) -> None:
        self.metrics.log(event)

    def save_latest(self, model: dict, optim: dict, train: dict) -> None:
        """model.npz: everything a resume needs (model, optimizer state, the loop's train.* arrays)."""
        from . import checkpoint
        checkpoint.save(self.latest, model, config=self.info, vocab=self.vocab, optim=optim, train=train)

    def save_best(self, model: dict, step: int, epoch: int, val_loss: float) -> None:
        """best.npz: the model only (no optimizer), with the step and its validation loss."""
        import numpy as np

        from . import checkpoint
        checkpoint.save(self.best, model, config=self.info, vocab=self.vocab,
                        train={"step": np.array(step), "epoch": np.array(epoch), "val_loss": np.array(val_loss)})

    def close(self) -> None:
        """Close metrics.jsonl and release the folder's lock (both idempotent)."""
        self.metrics.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None


# ---------------------------------------------------------------- reading a run


def not_a_run_folder(path) -> str:
    """The one line for a path given as a run folder that holds no config.json, saying what it is instead
    and what to give: a path that does not exist, a file or folder inside a run folder (--resume
    runs/x/model.npz), a sweep folder (its jobs' folders are what the run commands read), or a folder that
    is none of these."""
    path = Path(path)
    if not path.exists():
        return f"{path} does not exist; give a run folder (what train --out writes)"
    if (path.parent / CONFIG).exists():
        return f"{path} is {'a file' if path.is_file() else 'a folder'} inside the run folder {path.parent}; give " \
               f"the run folder"
    if (path / "sweep.jsonl").exists():
        return (f"{path} is a sweep folder, not a run folder: give one of its jobs' folders ({path}/JOB: plot "
                f"training and plot lag read one, evaluate and generate one run with --keep-models), or read the "
                f"whole sweep with 'sweep summarize' and 'plot sweep'")
    held = [name for name in (BEST, LATEST) if (path / name).is_file()]
    if held:        # a run folder that lost its config.json: the checkpoints carry their settings
        return (f"{path} is not a run folder (no config.json), but it holds {and_list(held)}: evaluate, generate, "
                f"jacobian and probe read a checkpoint file alone ({path / held[0]}); to resume, restore "
                f"config.json")
    return f"{path} is not a run folder (no config.json)"


def read_run_config(run_dir) -> dict:
    """config.json of a run folder, with a clear error when it is not one."""
    path = Path(run_dir) / CONFIG
    refuse_odd_records(run_dir)
    if not path.exists():
        raise UserError(not_a_run_folder(run_dir))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}): damaged or edited by hand; restore it (the run's "
                        f"checkpoints carry their own settings: evaluate and generate still read them)") from None


def resume_config(run_dir, overrides: dict | None = None):
    """The saved TrainConfig of a run, with the budget/reporting settings in `overrides` applied.

    Any other setting in `overrides` that differs from the saved one is a
    UserError: it would make the resumed run a different experiment.
    """
    from .config import config_from_dict
    from .data import tokenizer_change
    refuse_sweep_folder(run_dir, resume=True)      # (before its config.json, which a sweep's job holds too)
    _refuse_starting_run(run_dir)
    saved = read_run_config(run_dir)
    if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict) or not saved["train"]:
        raise UserError(f"{Path(run_dir) / CONFIG} holds no training settings (no \"train\" object: a damaged or "
                        f"hand-edited file?), so the run cannot be resumed; evaluate and generate still read its "
                        f"checkpoints")
    try:
        config = config_from_dict(saved["train"])
    except UserError as exc:        # (an unknown or mistyped setting: say which file, and what to do)
        raise UserError(f"{Path(run_dir) / CONFIG}: {exc}; restore the file (an edited config.json, or one "
                        f"written by a newer rnnlm)") from None
    given = ((overrides or {}).get("data") or {}).get("corpus")
    if isinstance(given, str) and given != config.data.corpus:      # (a moved corpus's new place)
        from .corpus import NAMED_CORPORA
        if given not in NAMED_CORPORA and not Path(given).expanduser().exists():
            raise UserError(f"--corpus {given} does not exist; give the file or folder the run's text is in now "
                            "(a resume checks by checksum that it is the same text)")
    config = config.resumed(overrides, out=str(run_dir))
    _refuse_missing_corpus(run_dir, config.data.corpus)
    why = tokenizer_change((saved.get("corpus") or {}).get("checksum"), config.data)
    if why:
        raise UserError(f"cannot resume {run_dir}: {why}")
    return config


def _refuse_starting_run(run_dir) -> None:
    """UserError (one line) for a folder with no config.json yet whose lock a live process holds: a new run
    still in its start-up (config.json comes once its corpus is read), to wait for, not "not a run folder"."""
    folder = Path(run_dir)
    if (folder / CONFIG).exists() or not (folder / LOCK).is_file():
        return
    who = lock_holder(folder / LOCK)
    if who is not None:
        raise UserError(f"{folder} is being trained by another process ({who} holds {folder / LOCK}) that has "
                        f"not written its config.json yet; wait for it to end, then resume")


def _refuse_missing_corpus(run_dir, corpus) -> None:
    """UserError (one line) when the corpus path a run's config.json names is gone: say where the name comes
    from and how to point it at the text's new place (the checksum then says whether it is the same text)."""
    from .corpus import NAMED_CORPORA
    if isinstance(corpus, str) and corpus not in NAMED_CORPORA and not Path(corpus).expanduser().exists():
        if not Path(corpus).expanduser().is_absolute():     # (a run of an older version: recorded as typed)
            raise UserError(f"cannot resume {run_dir}: its corpus {corpus} (\"corpus\" in {Path(run_dir) / CONFIG}) "
                            f"is a relative path, read from the folder the run was trained in, and {Path.cwd()} "
                            "holds no such file or folder; run the command from that folder, or give the text's "
                            "place with --corpus PATH (a resume checks by checksum that it is the same text)")
        raise UserError(f"cannot resume {run_dir}: its corpus {corpus} (\"corpus\" in {Path(run_dir) / CONFIG}) "
                        f"is not there any more; if the text moved, give its new place with --corpus PATH (a "
                        f"resume checks by checksum that it is the same text)")


def resume_checkpoint(folder, info: dict, vocab: dict, model_arrays: dict, ck=None):
    """model.npz of a run to resume, as a checkpoint.Checkpoint, after the checks a resume needs.

    info, vocab: the resumed session's config.json contents and Vocab.to_json();
    model_arrays: name -> array of the model it builds. Refuses a run trained on
    other data (corpus checksum), a model.npz that does not fit the model, or
    another vocabulary. ck: model.npz already read (checkpoint.load), else it is read here.
    """
    from . import checkpoint
    folder = Path(folder)
    saved = read_run_config(folder)
    if saved.get("corpus", {}).get("checksum") != info["corpus"]["checksum"]:
        lost = f" (nor can its missing {VOCAB} be rebuilt from it)" if not (folder / VOCAB).exists() else ""
        raise UserError(f"the corpus or tokenizer changed since {folder} was trained (checksum differs); resuming "
                        f"would mix data{lost}: resume it on the text it was trained on (the checksum covers "
                        f"the names of the corpus's files too: a renamed file counts as other text), or train "
                        f"afresh into another --out (evaluate and generate still read the run)")
    if not holds_checkpoint(folder):
        if (folder / BEST).exists():    # training again into the folder would replace that model
            why = _unreadable(folder / BEST)
            if why:
                raise UserError(f"{folder} holds no {LATEST} (the latest checkpoint, which a resume starts from), "
                                f"and its {BEST} cannot be read ({why}); to train afresh, give another --out, or "
                                f"delete {BEST} first")
            raise UserError(f"{folder} holds no {LATEST} (the latest checkpoint, which a resume starts from), "
                            f"but its {BEST} is there: evaluate and generate still use it (--checkpoint best); "
                            f"to train afresh, give another --out")
        raise UserError(f"{folder} holds no checkpoint (the run stopped before saving one); "
                        f"train it again with --out {folder}")
    ck = checkpoint.load(folder / LATEST) if ck is None else ck
    checkpoint.check_model_arrays(ck, model_arrays)
    if ck.vocab != vocab:
        raise UserError(f"{folder / LATEST} was saved with another vocabulary")
    return ck


def _refuse_lost_best(run: Path, which: str) -> None:
    """UserError when best was asked of run folder `run`, its best.npz is missing and its metrics.jsonl
    records a finite validation: best.npz was saved then (train.py saves it at each new best), so it was
    deleted or moved since, and the latest model is another one, not a stand-in."""
    if which != "best" or not (run / LATEST).exists():
        return
    vals = [e for _, e in _events(run / METRICS) if e.get("type") == "eval" and e.get("split") == "valid"
            and isinstance(e.get("val_loss"), (int, float)) and math.isfinite(e["val_loss"])]
    if vals and _unreadable(run / LATEST) is None:    # (a damaged latest: load_model's own line says so)
        best = min(vals, key=lambda e: e["val_loss"])
        raise UserError(f"{run} has no {BEST}, though its {METRICS} records {len(vals)} "
                        f"{plural(len(vals), 'validation')} (the best at step {best.get('step', '?')}): it was "
                        f"deleted or moved; restore it, or read the latest model instead with --checkpoint latest")


def run_info(config, model_config, corpus, run_id: str | None = None) -> dict:
    """What config.json holds, and every checkpoint again as meta.config: {"train": config.to_dict(), "model":
    model_config as a dict (vocab_size included), "corpus": {checksum, tokens per split, oov_rate},
    "rnnlm_version", "run_id"}. config: a TrainConfig; model_config: its model with the corpus's vocab_size;
    corpus: the data.Corpus it reads; run_id: the run's identity (32 hex digits), kept by every session
    of the run (a resume passes the checkpoint's), else a new one (uuid4): a checkpoint whose run_id is not
    its folder's config.json's was copied in from another run (`other_run_checkpoint`)."""
    import dataclasses
    import uuid

    from . import __version__
    return {"train": config.to_dict(), "model": dataclasses.asdict(model_config),
            "corpus": {"checksum": corpus.checksum,
                       "tokens": {s: int(len(getattr(corpus, s))) for s in ("train", "valid", "test")},
                       "oov_rate": {k: float(v) for k, v in corpus.oov_rate.items()}},
            "rnnlm_version": __version__, "run_id": run_id or uuid.uuid4().hex}


def other_run_checkpoint(info: dict, saved: dict) -> str | None:
    """Where the checkpoint whose meta.config is `saved` was trained, when it is another run's than the one
    whose config.json holds `info` (their run_id differ): the other run's "out" as it recorded it (or its
    run_id); None when it is this run's, or when either predates run ids (nothing to tell them apart by).
    A run folder copied whole keeps its run_id: its copy's checkpoints are its own."""
    mine = info.get("run_id") if isinstance(info, dict) else None
    theirs = saved.get("run_id") if isinstance(saved, dict) else None
    if not (isinstance(mine, str) and isinstance(theirs, str)) or mine == theirs:
        return None
    out = (saved.get("train") or {}).get("out") if isinstance(saved.get("train"), dict) else None
    return f"the run {out}" if isinstance(out, str) and out else f"the run {theirs}"


def save_model(path, model, vocab, corpus, config=None) -> Path:
    """Write a model built or trained in Python as a checkpoint .npz that every command reads as it reads a
    run's best.npz (generate, evaluate with --split or --text, score, jacobian, probe) and `load_model`
    loads back. Written atomically; returns the path.

    model: an RNNModel; vocab: the Vocab its ids index (len(vocab) == model.config.vocab_size);
    corpus: the data.Corpus the model was trained on (load_corpus(...)): its checksum lets evaluate --split
    check that a split it reads later is the same text read the same way, and its settings (config.data)
    say how commands tokenize a --text file or a prime; its vocabulary must be `vocab`.
    config: the TrainConfig the model was trained with, recorded as a run records it (default: one with
    corpus.config and the model's settings; its data must be corpus.config, its model the model's).
    The file holds no optimizer or loop state: it is not a run to resume (train --resume takes a folder).
    Errors: TypeError for an argument of the wrong kind; UserError for a vocabulary, corpus or config
    that does not match the model, a parameter holding nan or inf, a path not ending in .npz (any case; ~ is
    the home folder), a path that is a folder, a folder that does not exist; OSError as the file system
    raises it when the file cannot be written (PermissionError, a full disk, a folder that takes no files
    such as /proc: FileNotFoundError), with nothing left behind.
    """
    import dataclasses

    from .checkpoint import save
    from .config import TrainConfig
    from .data import Corpus, absolute_corpus
    from .model import RNNModel
    from .vocab import Vocab
    for name, value, kind in (("model", model, RNNModel), ("vocab", vocab, Vocab), ("corpus", corpus, Corpus)):
        if not isinstance(value, kind):
            raise TypeError(f"save_model: {name} must be a {kind.__module__}.{kind.__name__}, "
                            f"got {type(value).__name__}")
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"save_model: config must be a TrainConfig or None, got {type(config).__name__}")
    path = Path(os.path.expanduser(path))     # (~user of no such user: left as it is, not a RuntimeError)
    if path.suffix.lower() != ".npz":
        raise UserError(f"save_model: path must end in .npz, got {str(path)!r}")
    if path.is_dir():
        raise UserError(f"save_model: {path} is a folder; give a file name ending in .npz")
    if not path.parent.is_dir():
        above = next((p for p in path.parents if p.exists()), None)
        raise UserError(f"save_model: {above} is a file, not a folder; give a path in a folder" if above is not None
                        and not above.is_dir() else f"save_model: the folder {path.parent} does not exist; "
                        "create it first")
    import numpy as np
    bad = next((name for name, p in model.state_dict().items() if not np.all(np.isfinite(p))), None)
    if bad is not None:     # a diverged model: every command would read it only to score nan
        raise UserError(f"save_model: the model's {bad} holds nan or inf (it diverged); save it from before the "
                        "divergence, or retrain with a lower learning rate or gradient clipping")
    if len(vocab) != model.config.vocab_size:
        raise UserError(f"save_model: the model has {model.config.vocab_size} words, the vocabulary {len(vocab)}")
    if corpus.vocab.to_json() != vocab.to_json():
        raise UserError("save_model: vocab is not the corpus's vocabulary (corpus.vocab): a split read later "
                        "would be encoded with other ids than the model's")
    mine = dataclasses.replace(model.config, vocab_size=None)
    if config is None:
        config = TrainConfig(data=corpus.config, model=mine)
    if absolute_corpus(config.data) != absolute_corpus(corpus.config):
        raise UserError("save_model: config.data is not the corpus's settings (corpus.config): the recorded "
                        "tokenizer would not be the one the model was trained with")
    if config.model != mine:
        raise UserError("save_model: config.model is not the model's settings (model.config, vocab_size "
                        "aside): give the TrainConfig the model was built from, or leave config out")
    config = dataclasses.replace(config, data=absolute_corpus(config.data))   # (read from any folder later)
    info = run_info(config, model.config, corpus)
    save(path, model.state_dict(), config=info, vocab=vocab.to_json())
    return path


def load_model(run, which: str = "best"):
    """A model ready to use from a run folder or a checkpoint file.

    run: a run folder (then `which` picks best.npz or model.npz ("latest");
    best falls back to latest when no validation has happened yet; a best.npz missing after one is a
    UserError, not a fallback) or a path
    to a .npz. Returns (model, vocab, config dict, path of the file read).
    The model is rebuilt from the checkpoint's own meta.config and meta.vocab;
    a run folder's vocab.json must agree with them.
    """
    from .checkpoint import CorruptCheckpoint, check_model_arrays, load
    from .activations import ModelConfigError
    from .argcheck import check_path
    from .model import ModelConfig, RNNModel
    from .vocab import Vocab

    check_path(run, "run", "load_model", "a run folder or a checkpoint .npz")
    if which not in ("best", "latest"):
        raise UserError(f"load_model: which must be 'best' or 'latest', got {which!r}")
    run = Path(run)
    vocab_file = None
    if run.is_dir():
        # the records a model is read with (config.json only as a mark of a run: a folder of that name passes)
        refuse_odd_records(run, (CONFIG,), folders=False)
        refuse_odd_records(run, (VOCAB,))
        if not (run / CONFIG).exists():
            raise UserError(not_a_run_folder(run))
        path = run / (BEST if which == "best" else LATEST)
        if not path.exists():
            _refuse_lost_best(run, which)
            path = run / LATEST
        if not path.exists() and (run / BEST).exists():     # --checkpoint latest of a run whose model.npz is gone
            raise UserError(f"{run} has no {LATEST} (its latest model); --checkpoint best reads its best model "
                            f"({BEST})")
        if not path.exists() and not (run / BEST).exists():
            job = (run.parent / "sweep.jsonl").exists()
            who = lock_holder(run / LOCK)
            raise UserError(f"{run} holds no checkpoint (no {BEST} or {LATEST})"
                            + (f" yet: it is being trained now ({who} holds {run / LOCK}) and has not saved its "
                               "first; try again after its first validation" if who is not None else
                               "; it is a job of a sweep, whose jobs keep one only when run with --keep-models: "
                               "'sweep summarize' and 'plot sweep' read the sweep" if job else ""))
        vocab_file = run / VOCAB
    else:
        path = run
    try:
        ck = load(path)
    except CorruptCheckpoint as exc:
        if not run.is_dir():
            raise
        raise _corrupt_advice(exc, run, path) from None
    if ck.vocab is None:
        raise UserError(f"{path} has no meta.vocab; it cannot be used without its vocabulary")
    if vocab_file is not None and vocab_file.exists():
        # (a missing vocab.json is no error: the checkpoint carries the vocabulary; a resume writes it again)
        fix = f"restore the run's own {VOCAB}, or delete {VOCAB}: {path.name} carries the vocabulary itself"
        try:
            on_disk = json.loads(vocab_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{vocab_file} is not valid JSON ({exc}); {fix}") from None
        if on_disk != ck.vocab:
            if (other := _other_run(run, ck.config)) is not None:       # (the checkpoint is the stranger)
                raise UserError(f"{path} is a checkpoint of {other}, not of the run {run / CONFIG} records "
                                f"(another run_id; its vocabulary is not this run's {VOCAB} either): put this "
                                f"run's own {path.name} back, or read that run instead")
            raise UserError(f"{vocab_file} does not match the vocabulary inside {path}; {fix}")
    vocab = Vocab.from_json(ck.vocab)
    try:
        mcfg = ModelConfig(**ck.config["model"])
    except (KeyError, TypeError) as exc:
        raise UserError(f"{path}: meta.config has no usable model settings ({exc})") from None
    if mcfg.vocab_size != len(vocab):
        raise UserError(f"{path}: the model has {mcfg.vocab_size} words, its vocabulary {len(vocab)}")
    if run.is_dir():
        _warn_other_model(run, path, ck.config)
    model = RNNModel(mcfg)
    check_model_arrays(ck, model.state_dict())
    try:
        model.load_state_dict(ck.model)
    except ModelConfigError as exc:         # non-finite weights: say which file holds them
        raise UserError(f"{path}: {exc}") from None
    step = ck.train.get("step")     # (read from the same file: a run being trained saves newer ones meanwhile)
    model.checkpoint_step = (int(step) if getattr(step, "shape", None) == () and step.dtype.kind in "iu"
                             else None)
    return model, vocab, _corpus_moved(run, ck.config) if run.is_dir() else ck.config, path


def _corpus_moved(folder: Path, info: dict) -> dict:
    """A checkpoint's config (`info`) with its corpus place (corpus, corpora_dir) taken from the run's
    config.json when the checkpoint's names no existing path and config.json's another (a resume given the
    moved text with --corpus records it there; a checkpoint saved before keeps the old one). What the text
    is stays held to the checkpoint's by its checksum wherever a split is read."""
    from .config import CORPUS_PLACE
    from .corpus import NAMED_CORPORA
    data = (info.get("train") or {}).get("data") if isinstance(info, dict) else None
    corpus = data.get("corpus") if isinstance(data, dict) else None
    if not isinstance(corpus, str) or corpus in NAMED_CORPORA or Path(corpus).expanduser().exists():
        return info
    try:
        recorded = (read_run_config(folder).get("train") or {}).get("data") or {}
    except (UserError, AttributeError):
        return info
    place = {k: recorded[k] for k in CORPUS_PLACE if k in recorded}
    if not isinstance(place.get("corpus"), str) or place["corpus"] == corpus:
        return info
    return {**info, "train": {**info["train"], "data": {**data, **place}}}


def _config_or_none(run: Path) -> dict | None:
    """The run folder's config.json as a dict, or None when it cannot be read (load_model's checks of a
    checkpoint against it then say nothing: the checkpoint carries its own settings)."""
    try:
        info = json.loads((run / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _other_run(run: Path, meta) -> str | None:
    """other_run_checkpoint of the run folder `run`'s config.json and a checkpoint's meta.config."""
    info = _config_or_none(run)
    return other_run_checkpoint(info, meta) if info is not None else None


class OtherModelWarning(UserWarning):
    """load_model's warning that a run folder's checkpoint holds another model than its config.json says."""


def _warn_other_model(run: Path, path: Path, meta: dict) -> None:
    """Warn (OtherModelWarning, one line) when the checkpoint `path` of the run folder `run` (its meta.config
    `meta`) is another run's than the folder's config.json records (another run_id: a checkpoint copied in),
    or holds a model of other settings (cell, sizes, layers, activation). The checkpoint's own settings are
    used (they match its arrays); a config.json that cannot be read says nothing here."""
    info = _config_or_none(run)
    saved = (info.get("train") or {}).get("model") if info is not None and isinstance(info.get("train"), dict) \
        else None
    if not isinstance(saved, dict):
        return
    model = meta.get("model") or {}
    keys = ("cell", "activation", "emsize", "hidden", "layers", "tied")
    changed = [f"{k} {saved[k]} -> {model.get(k)}" for k in keys if k in saved and saved[k] != model.get(k)]
    other = other_run_checkpoint(info, meta)
    if not changed and other is None:
        return
    import warnings
    whose = f"a checkpoint of {other}" if other is not None else "a checkpoint copied in from another run?"
    what = f"model than {run / CONFIG} records ({', '.join(changed)}; {whose})" if changed else \
        f"run's model than {run / CONFIG} records ({whose})"
    warnings.warn(OtherModelWarning(f"{path} holds another {what}: its own settings are used"), stacklevel=3)


def _corrupt_advice(exc, run: Path, path: Path) -> UserError:
    """load_model's one line for the corrupt checkpoint `path` of the run folder `run`: it names the run's
    other checkpoint (--checkpoint best or latest) only when that one is another file and loads."""
    from .checkpoint import load
    other, flag, what = ((run / LATEST, "latest", "latest model") if path.name == BEST
                         else (run / BEST, "best", "best model"))
    if not other.exists() or other.resolve() == path.resolve():
        return UserError(f"{exc}; the run has no other checkpoint to read (restore the file, or train again)")
    try:
        load(other)
    except UserError:
        return UserError(f"{exc}; the run's {other.name} cannot be read either (restore the files, or train again)")
    return UserError(f"{exc}; --checkpoint {flag} reads the run's {what} ({other.name}) instead")


# ---------------------------------------------------------------- the terminal


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal a bar can be drawn on: a tty whose width is not 0. Some ptys (an
    IDE's, `script` without a terminal on stdin) report a 0 x 0 size, where tqdm draws nothing; they
    get the log lines a file gets (the progress lines every --log-every steps, a line per silent phase)."""
    import os
    import sys
    if not sys.stderr.isatty():
        return False
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):    # a tty that tells no size: trusted, as tqdm does
        return True

