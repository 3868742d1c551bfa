"""Run folders: what a training run leaves on disk, and everything that reads it back.

A run folder holds

    config.json     {"train": TrainConfig as a dict, "model": ModelConfig, "corpus": {checksum,
                    tokens, oov_rate}, "rnnlm_version"}; written once when the run starts
    vocab.json      the vocabulary (Vocab.to_json)
    metrics.jsonl   one JSON event per line (start, step, eval, epoch, jacobian, nonfinite,
                    stop, end, resume), appended and flushed one whole line at a time; "end"
                    follows the final evaluation (see final_evaluation_pending)
    model.npz       the latest checkpoint, with optimizer and loop state: what a resume reads
    best.npz        the model of the best validation loss so far (no optimizer state)
    .train.lock     the OS lock a training process holds for its whole life (filelock):
                    a second writer is refused; readers never take it

(checkpoint.py describes the arrays inside the two .npz files.) `Run` is the
folder as a training session writes it; `load_model`, `read_run_config`,
`resume_config`, `run_evaluate` and `run_text_ids` read it back. Instruments
(jacobian, probes, plots, plotruns, the demos) read runs through this module; they never
import the training loop.

The one thing to know before editing: a resume starts from model.npz, so
reopening a run drops every metrics event logged after that checkpoint's step
(it was written by a session whose later state was lost), and a final
evaluation that did not finish (its stop event and what followed: the resumed
session logs them again whole); events are otherwise only ever appended. This module imports nothing heavy at import
time (the CLI's `--help` imports it through train.py).
"""
from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

from .errors import UserError, and_list, command, plural

CONFIG = "config.json"
LOCK = ".train.lock"
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
        self.f.write(json.dumps(finite_or_none(event), ensure_ascii=False) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


def finite_or_none(event: dict) -> dict:
    # Strict JSON has no NaN/Infinity; a non-finite number is written as null
    # (the nonfinite event says which tensor went bad).
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in event.items()}


def _events(path: Path) -> list[tuple[str, dict]]:
    """(line, event) of every whole line of a metrics.jsonl (none when it does not exist)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():   # a damaged byte: that line
        try:
            out.append((line, json.loads(line)))
        except json.JSONDecodeError:
            continue        # a line cut by a crash
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


def lock_run(folder):
    """Hold the run folder's OS lock (RUN/.train.lock) for one training process; a filelock.FileLock.

    Created with the folder if needed. The kernel releases the lock when the
    process dies (kill -9 included), so a stale lock cannot block a later run.
    A folder locked by another process is a UserError (one line): two writers
    would clobber each other's checkpoints. Readers (evaluate, generate, plot)
    never take the lock. Release it with `.release()` (Run.close does).
    """
    return lock_folder(folder, LOCK, "is being trained by another process")


def lock_folder(folder, name: str, busy: str, holder=None):
    """Hold the OS lock folder/name (a filelock.FileLock, taken without waiting) for this process.

    The mechanism of `lock_run`, for any folder that one process at a time may
    write (sweep.lock_sweep uses it too). Created with the folder if needed;
    the kernel releases it when the process dies. The holder writes its pid
    into the lock file (filelock >= 4 opens it without truncating, so a
    refused opener leaves it there) and empties it on release. Held by
    another process: a UserError "FOLDER <busy> (<who> holds FOLDER/name);
    wait for it to end or use another --out", where who is holder(lock path)
    (default `lock_holder`: "pid 123") when that names the holder, else "it".
    """
    from filelock import Timeout
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)     # an OSError is one line in cli.main (errors.describe_os_error)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give --out a folder path")
    for _ in range(5):
        lock = _pid_lock_class()(str(folder / name), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            who = (holder or lock_holder)(folder / name) or "it"
            raise UserError(f"{folder} {busy} ({who} holds {folder / name}); "
                            "wait for it to end or use another --out") from None
        except OSError as exc:
            raise UserError(f"cannot lock the folder {folder}: {exc.strerror or exc}") from None
        if _still_named(lock, folder / name):
            break
        lock.release()      # a lock on a file removed meanwhile (a start-up given up): take the new one
    else:
        raise UserError(f"cannot lock the folder {folder}: its {name} keeps being removed; "
                        "wait for the other process to end or use another --out")
    try:
        (folder / name).write_text(f"{os.getpid()}\n", encoding="ascii")
    except OSError:
        pass                    # (the refusal then says "it")
    return lock


def _still_named(lock, path: Path) -> bool:
    """Whether `path` still names the file `lock` holds. A process that opened the lock file just before
    its holder removed it (train's start-up giving up a folder it created) locks the removed file once the
    holder lets go, while the next process creates and locks a new one: two holders. filelock's newest
    versions recheck this themselves; this package accepts older ones."""
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path)) if isinstance(fd, int) else path.exists()
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def _pid_lock_class():
    """filelock.FileLock whose file, holding the holder's pid (lock_folder writes it), is emptied on release.
    Made on first use: importing filelock costs the CLI's --help 35 ms."""
    from filelock import FileLock

    class PidLock(FileLock):
        # The emptied lock file stays in the folder when the lock is released: it is not removed. Removing
        # it is not safe. Another process (a second `train --resume`, a sweep worker) may have opened the
        # same path just before and be waiting on its lock; it then takes the lock on the removed file
        # while a third process creates a new file at the path and locks that one, and two writers share
        # the folder. filelock keeps its Unix lock file in place on release for this reason ("the file
        # stays in place so waiters share the same inode"); its newest versions recheck that the file
        # they locked still has a name, but this package accepts filelock >= 4.0, and a process holding
        # an older one would not. An empty .train.lock (or .sweep.lock) is therefore no content: nothing
        # counts it as a run (refuse_taken, not_a_run_folder and the plots look for config.json,
        # metrics.jsonl and the checkpoints), lock_holder names nobody from it, and the next run takes it.
        def release(self, force: bool = False) -> None:
            if self.is_locked and (force or self.lock_counter == 1):
                try:
                    os.truncate(self.lock_file, 0)     # (never creates it: a caller may have removed it)
                except OSError:
                    pass
            super().release(force)
    return PidLock


def lock_holder(path) -> str | None:
    """'pid N' of the process that holds the lock file `path` (lock_folder's holder writes its pid there), or
    None when it names none (or, on POSIX, a process that is gone)."""
    try:
        pid = int(Path(path).read_text(encoding="ascii").strip())
        if os.name == "posix":
            os.kill(pid, 0)     # signal 0: only whether it exists (on Windows os.kill would end it)
    except (OSError, ValueError):
        return None
    return f"pid {pid}"


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
    for name in (CONFIG, VOCAB, METRICS):
        (folder / name).unlink(missing_ok=True)
    return True


def _taken(folder: Path) -> UserError:
    return UserError(f"{folder} already holds a run; use --resume {folder} or another --out")


def refuse_taken(folder) -> None:
    """UserError (one line, nothing written) when `folder` holds a saved run a new training must not take.

    Run.create's refusal, made before the corpus is read; a folder whose run
    stopped before its first checkpoint is free (clear_unsaved_run). A best.npz
    or model.npz counts as a saved run even without the rest of one (a run
    whose model.npz was deleted, files copied in): a new run would replace it.
    """
    folder = Path(folder)
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
    after `resume_checkpoint`), holding the folder's lock (`lock_run`), which `close` releases.
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
        checkpoint: `clear_unsaved_run`.) Leftover temporary files of a killed save are removed.
        """
        from .fileio import atomic_write_json
        folder = Path(folder)
        if (folder / CONFIG).exists():
            raise _taken(folder)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(folder)
        atomic_write_json(folder / CONFIG, info)
        atomic_write_json(folder / VOCAB, vocab)
        (folder / METRICS).unlink(missing_ok=True)
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
    config = config.resumed(overrides, out=str(run_dir))
    why = tokenizer_change((saved.get("corpus") or {}).get("checksum"), config.data)
    if why:
        raise UserError(f"cannot resume {run_dir}: {why}")
    return config


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
                        f"would mix data{lost}: resume it on the text it was trained on, or train afresh into "
                        f"another --out (evaluate and generate still read the run)")
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
    from .model import ModelConfig, RNNModel
    from .vocab import Vocab

    if which not in ("best", "latest"):
        raise UserError(f"--checkpoint must be best or latest, got '{which}'")
    run = Path(run)
    vocab_file = None
    if run.is_dir():
        if not (run / CONFIG).exists():
            raise UserError(not_a_run_folder(run))
        path = run / (BEST if which == "best" else LATEST)
        if not path.exists():
            _refuse_lost_best(run, which)
            path = run / LATEST
        if not path.exists() and not (run / BEST).exists():
            job = (run.parent / "sweep.jsonl").exists()
            raise UserError(f"{run} holds no checkpoint (no {BEST} or {LATEST})"
                            + ("; it is a job of a sweep, whose jobs keep one only when run with --keep-models: "
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
            raise UserError(f"{vocab_file} does not match the vocabulary inside {path}; {fix}")
    vocab = Vocab.from_json(ck.vocab)
    try:
        mcfg = ModelConfig(**ck.config["model"])
    except (KeyError, TypeError) as exc:
        raise UserError(f"{path}: meta.config has no usable model settings ({exc})") from None
    if mcfg.vocab_size != len(vocab):
        raise UserError(f"{path}: the model has {mcfg.vocab_size} words, its vocabulary {len(vocab)}")
    model = RNNModel(mcfg)
    check_model_arrays(ck, model.state_dict())
    try:
        model.load_state_dict(ck.model)
    except ModelConfigError as exc:         # non-finite weights: say which file holds them
        raise UserError(f"{path}: {exc}") from None
    return model, vocab, ck.config, path


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


# ---------------------------------------------------------------- evaluating a run


def _measured_checkpoint(json_path: Path, recorded) -> Path | None:
    """The checkpoint file a measurement's JSON says it read (`recorded`, as the command was given it), as it
    is found now: the file of that name beside the JSON when the JSON sits in a run folder (the folder may
    have moved or been copied since, or the command have run from another folder; None when that folder has
    no such file), else the recorded path (None when it is not there)."""
    if not isinstance(recorded, str) or not recorded.endswith(".npz"):
        return None         # a fresh model ("init"), a sweep job's "N validation tokens", nothing recorded
    if (json_path.parent / CONFIG).is_file():
        # a run folder's measurement is of that folder's checkpoint, wherever it was measured (a copied
        # folder's JSON records the original's path): never the recorded one elsewhere
        beside = json_path.parent / Path(recorded).name
        return beside if beside.is_file() else None
    return Path(recorded) if Path(recorded).is_file() else None


def _distances_flag(distances) -> str:
    """A list of distances as the probe's --distances takes it: 1..40 when consecutive, else 1,2,5."""
    ds = [int(d) for d in distances]
    if len(ds) >= 3 and ds == list(range(ds[0], ds[0] + len(ds))):
        return f"{ds[0]}..{ds[-1]}"
    return ",".join(map(str, ds))


def _measured_flags(doc: dict, meta: dict) -> list[str]:
    """The flags that repeat what a measurement's JSON records it measured with, where that differs from
    the command's default (config.JacobianConfig's, config.PROBE_DEFAULTS)."""
    from .config import PROBE_DEFAULTS, SPLITS, JacobianConfig, default
    flags = []
    if "curves" in doc:
        text = meta.get("text")
        if isinstance(text, str) and text:
            source, _, split = text.rpartition(":")
            if source and split in SPLITS and not Path(text).is_file():
                if split != default(JacobianConfig, "split"):
                    flags.append(f"--split {split}")
            elif not text.startswith("random"):
                flags.append(f"--text {text}")
        for key in ("max_lag", "anchors", "tokens", "seed"):
            value = meta.get(key)
            if value is not None and value != default(JacobianConfig, key):
                flags.append(f"--{key.replace('_', '-')} {value}")
        return flags
    kind = doc.get("probe")
    defaults = PROBE_DEFAULTS.get(kind, {})
    if kind == "agreement" and doc.get("feature") not in (None, "number"):
        flags.append(f"--feature {doc['feature']}")
    if kind == "context" and doc.get("mode") not in (None, "shuffle"):
        flags.append(f"--mode {doc['mode']}")
    recorded = {"split": doc.get("split"), "seed": doc.get("seed"), "window": doc.get("window"),
                "n": doc.get("n_per_distance"), "n_targets": doc.get("n_targets_asked"),
                "distances": _distances_flag(doc["distances"]) if isinstance(doc.get("distances"), list) else None}
    for key, default_value in defaults.items():
        value = recorded.get(key)
        if value is not None and str(value) != str(default_value):
            flags.append(f"--{key.replace('_', '-')} {value}")
    return flags


def _remeasure_command(doc: dict, meta: dict, ckpt: Path, json_path: Path | None = None) -> str:
    """The command that measures the checkpoint again as the JSON's own did: its kind, feature or mode, the
    settings it records (_measured_flags), and --out the JSON when it is not where that command writes."""
    folder = ckpt.parent if (ckpt.parent / CONFIG).is_file() else None
    target = str(folder) if folder is not None else str(ckpt)
    latest = ["--checkpoint latest"] if folder is not None and ckpt.name == LATEST else []
    if "curves" in doc:
        head, name = f"{command()} jacobian {target}", "jacobian"
    else:
        kind = doc.get("probe")
        head = f"{command()} probe {kind} {target}"
        name = f"probe-{kind}-{doc.get('feature') if kind == 'agreement' else doc.get('mode')}"
    flags = _measured_flags(doc, meta) + latest
    if json_path is not None:
        written = folder / f"{name}.json" if folder is not None else ckpt.with_name(f"{ckpt.stem}-{name}.json")
        if Path(json_path).resolve() != written.resolve():
            flags.append(f"--out {json_path}")
    return " ".join([head] + flags)


def replaced_note(out, new: dict, measured_by, inside: str | None = None) -> str | None:
    """The note that a measurement's JSON about to be written at its default path (a run's jacobian.json,
    probe-context-shuffle.json) replaces a measurement of other settings, naming each as "--flag old -> new";
    None when there is no such file, it is not a JSON object, or it measured the same (a repeat needs no word).
    new: the settings of the new measurement; measured_by: (key, flag) pairs, the keys of `new` and of the
    earlier JSON (of its `inside` object: a lag curve's "meta") that the flags set, compared where the earlier
    one records them; a checkpoint's path ("source", "checkpoint") is shown by its file name, a list of
    distances as 1,2,5."""
    try:
        old = json.loads(Path(out).read_text(encoding="utf-8"))
        old = old.get(inside) if inside else old
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(old, dict):
        return None

    def shown(key, value):
        if key in ("source", "checkpoint") and isinstance(value, str):
            return Path(value).name
        return ",".join(map(str, value)) if isinstance(value, list) else value
    changed = [f"{flag} {shown(k, old.get(k))} -> {shown(k, new.get(k))}" for k, flag in measured_by
               if k in old and old.get(k) != new.get(k)]
    if not changed:
        return None
    return (f"note: {out} held a measurement of other settings ({'; '.join(changed)}); replaced "
            f"(give --out FILE to keep each measurement)")


def measurement_age_note(json_path) -> str | None:
    """The note that a measurement of a checkpoint (a `jacobian` lag curve, a `probe` result) is older than
    that checkpoint is now, or None: what `plot lag` and `plot probe` say on stderr before they redraw it.

    The measurement's JSON records the checkpoint it read (jacobian: meta.source; probe: checkpoint) and the
    step that checkpoint was saved at (meta.checkpoint_step / checkpoint_step, checkpoint.saved_step); when
    the run was resumed and trained since, the same file holds a later step: "... measured best.npz at step
    500; the run's best.npz is now at step 1,200 ...: rerun '...'". The checkpoint compared with is, for a JSON
    in a run folder, the file of that name in that folder (a copied folder is not compared with the
    original's), and the rerun advice names that folder and keeps the settings the JSON records (--split,
    --window, ... where not the default; --out the JSON where it is not the default file). A JSON written
    before the step was recorded (or of a checkpoint holding none) is said to be possibly older only when the
    checkpoint file was saved after the JSON was written (its modification time), and its step is said to be
    unknown; otherwise nothing is said. Never raises: an unreadable JSON or checkpoint says nothing (the plot says what it can
    not read)."""
    from .checkpoint import saved_step
    json_path = Path(json_path)
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    meta = doc.get("meta") if "curves" in doc else doc
    if not isinstance(meta, dict) or ("curves" not in doc and not str(doc.get("format", "")).startswith("rnnlm-probe")):
        return None
    ckpt = _measured_checkpoint(json_path, meta.get("source") if "curves" in doc else meta.get("checkpoint"))
    if ckpt is None:
        return None
    now, then = saved_step(ckpt), meta.get("checkpoint_step")
    rerun = _remeasure_command(doc, meta, ckpt, json_path)
    if isinstance(then, int) and not isinstance(then, bool):
        if now is None or now == then:
            return None
        return (f"note: {json_path} measured {ckpt.name} at step {then:,}; the run's {ckpt.name} is now at step "
                f"{now:,} (the run trained further since): rerun '{rerun}' to measure it")
    try:
        newer = ckpt.stat().st_mtime > json_path.stat().st_mtime
    except OSError:
        return None
    if not newer:
        return None
    at = f" (now at step {now:,})" if now is not None else ""
    why = ("the checkpoint it read held none" if "checkpoint_step" in meta
           else "it was written by an earlier rnnlm")
    return (f"note: {json_path} may be older than what it measured: {ckpt}{at} was saved after it was written, "
            f"and the step it measured is unknown ({why}); rerun '{rerun}' to measure the checkpoint as it is now")


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


def evaluate_stream(model, stream, bptt: int, bar: str | None = None) -> tuple[float, int]:
    """Mean cross-entropy (nats/token) over a batchified stream (rows, B), state carried throughout.

    Returns (loss, number of predicted tokens). bar: a description to show a
    tqdm bar (on stderr, only when it is a terminal) counting the predicted tokens.
    """
    import sys

    import numpy as np
    from tqdm import tqdm

    from .data import windows
    if not isinstance(stream, np.ndarray) or stream.ndim != 2:
        got = f"shape {stream.shape}" if isinstance(stream, np.ndarray) else type(stream).__name__
        raise ValueError(f"evaluate_stream: stream must be a batchified (rows, B) array (data.batchify(ids, B)), "
                         f"got {got}")
    state = model.init_state(stream.shape[1])
    total, count = 0.0, 0
    show = bar is not None and stderr_is_terminal()
    with tqdm(total=max(stream.shape[0] - 1, 0) * stream.shape[1], desc=bar, unit="tok", unit_scale=True,
              disable=not show, leave=False, file=sys.stderr) as progress:
        for _, inputs, targets in windows(stream, bptt):
            loss, state = model.loss(inputs, targets, state)
            total += float(loss) * targets.size
            count += targets.size
            progress.update(targets.size)
    if count == 0:
        raise UserError(f"too little text to evaluate ({stream.size} {plural(stream.size, 'token')} in "
                        f"{stream.shape[1]} {plural(stream.shape[1], 'stream')})")
    return total / count, count


def _text_tokens(raw: str, name, data) -> tuple[list, str]:
    """A --text file's tokens read as the corpus was (DataConfig `data`), and a note ("" or why it was not).

    The corpus reader drops all-capital lines as headings and lone numbers as page
    numbers; a file made only of such lines (a text typed in capitals) is read
    with every line kept instead, and the note says so; a file that loses some
    lines so gets a note counting them and quoting the first. A file with no
    tokens (only spaces) is refused.
    """
    from .tokenize import tokenize
    dropped: list = []
    tokens = tokenize(raw, keep_case=data.keep_case, num_token=data.num_token, dropped=dropped)
    note = ""
    if not tokens:
        tokens = tokenize(raw, keep_case=data.keep_case, num_token=data.num_token, layout=False)
        note = ("every line is in capitals or a lone number, which the corpus reader drops as headings and "
                "page numbers; read as text instead") if tokens else ""
    elif dropped:
        first = dropped[0] if len(dropped[0]) <= 40 else dropped[0][:37] + "..."
        note = (f"{len(dropped)} {plural(len(dropped), 'line')} of the text ({first!r}"
                f"{' and more' if len(dropped) > 1 else ''}) {plural(len(dropped), 'is', 'are')} not scored: the "
                f"corpus reader drops a line in capitals as a heading and a lone number as a page number; write "
                f"{plural(len(dropped), 'it', 'them')} in lower case (or join a number to its sentence) to have "
                f"{plural(len(dropped), 'it', 'them')} scored")
    if not tokens:
        raise UserError(f"--text {name} has no words; evaluation reads one token to predict the next, so give "
                        f"a text of at least a sentence")
    return tokens, note


def run_text_ids(info: dict, vocab, split: str = "valid", text=None) -> dict:
    """Token ids of a split of a run's own corpus, or of any text file read the run's way.

    info: the run's config (load_model's third value); vocab: its Vocab.
    A text file is tokenized with the run's tokenizer settings and encoded with
    its vocabulary (unknown words become <unk> and are counted). A split is
    refused when the corpus or tokenizer changed since training (checksum).
    A file whose every line is in capitals is read with those lines kept (see
    `_text_tokens`); "note" says so. Returns {"ids", "source", "tokens", "oov",
    "oov_rate", "note"} ("note" for a text file only; "" when read as the corpus was).
    """
    from .corpus import read_text
    from .config import config_from_dict

    tcfg = config_from_dict(info["train"])
    if text is not None:
        p = Path(text)
        if not p.is_file():
            what = "is not a regular file" if p.exists() else "does not exist"
            raise UserError(f"--text {text} {what}; give a UTF-8 .txt file")
        tokens, note = _text_tokens(read_text(p, corpus=False), text, tcfg.data)
        ids = vocab.encode(tokens)
        unk = [t for t, i in zip(tokens, ids) if i == vocab.unk_id and t != vocab.itos[vocab.unk_id]]
        return {"ids": ids, "source": str(p), "tokens": len(ids), "oov": len(unk),
                "oov_rate": len(unk) / max(len(ids), 1), "note": note}
    if split not in ("train", "valid", "test"):
        raise UserError(f"--split must be train, valid or test, got '{split}'")
    from .data import load_corpus
    corpus = load_corpus(tcfg.data)
    if corpus.checksum != info.get("corpus", {}).get("checksum"):
        raise UserError("the corpus or tokenizer settings changed since this run was trained "
                        "(checksum differs); use a text file with --text instead")
    if corpus.vocab.to_json() != vocab.to_json():
        raise UserError("the corpus vocabulary differs from the run's vocab.json")
    ids = getattr(corpus, split)
    return {"ids": ids, "source": f"{tcfg.data.corpus}:{split}", "tokens": len(ids),
            "oov": int((ids == vocab.unk_id).sum()), "oov_rate": float(corpus.oov_rate.get(split, math.nan))}


def run_evaluate(run, split="valid", text=None, which="best", batch_size=None, bptt=None) -> dict:
    """Cross-entropy and perplexity of a run's model on a split or on any text file.

    A text file is tokenized with the run's tokenizer settings and encoded with
    its vocabulary; unknown words count as <unk> (their number is reported).
    The text is read as batch_size streams side by side (data.batchify), each
    from a zero state; "unscored" counts the last tokens that fill no stream
    (len % batch_size), which are not predicted: batch_size=1 scores every token.
    A text file whose streams would each be shorter than one window (bptt) is
    read as one stream unless batch_size is given.
    A bar counts the tokens predicted (on a terminal).
    """
    from .data import batchify
    from .config import config_from_dict

    model, vocab, info, path = load_model(run, which)
    tcfg = config_from_dict(info["train"])
    B = tcfg.eval_batch_size if batch_size is None else batch_size      # (0 is refused below, not a default)
    T = tcfg.bptt if bptt is None else bptt
    if B < 1 or T < 1:
        raise UserError("--batch-size and --bptt must be at least 1")
    result = {"checkpoint": str(path)}
    text_ids = run_text_ids(info, vocab, split=split, text=text)
    ids = text_ids.pop("ids")
    result.update(text_ids)
    if len(ids) < 2 * B or (text is not None and batch_size is None and len(ids) // B < T):
        B = 1       # (a short text read as B streams would lose most of its context: one stream)
    stream = batchify(ids, B)
    loss, count = evaluate_stream(model, stream, T, bar=f"evaluating {result['source']}")
    result.update(loss=loss, ppl=ppl(loss), predicted=count, batch_size=B, bptt=T,
                  unscored=len(ids) - stream.size)
    return result
