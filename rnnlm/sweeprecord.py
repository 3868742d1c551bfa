"""The sweep folder's record: sweep.jsonl, one row per finished job, and the words of a failed job's error.

A sweep folder holds `sweep.jsonl` (SWEEP_FILE), one JSON object per line, one line per finished job,
and each job's files under `FOLDER/<job name>/`. This module is what that record holds, how it is read
and written, and how a row is put in words; sweep.py is the engine that runs the jobs and records each
one here as it finishes (`run_sweep`, holding the folder's lock).

- A job is `Job(name, fn, settings, data)`; its function returns `JobResult(row, files)`. Its row is its
  name, fn and settings, what the engine measured (ENGINE_KEYS) and the JobResult's row merged in (no key
  of the engine's among them: `check_row_keys`), made strict JSON (`_json_safe`); its files are bytes, or
  a str written as UTF-8 (`checked_files`).
- A finished job is recorded as it finishes (`_Recorder`): its files first, then its row as one more line
  of sweep.jsonl, the file rewritten atomically; the lines stay in the order of the jobs given to
  run_sweep, not the order they finish in, so two runs of one sweep write the same file.
- A job that raises is a row with status "failed" and its one-line error (`UserError`: its message;
  anything else: "Type: message", with `error_at`, where it was raised, "FILE:LINE in FUNCTION", and the
  whole traceback in FOLDER/JOB/error.txt (ERROR_FILE), both formatted as text where the job ran:
  `_message`, `_error_at`, `_traceback_text`, called by sweep.execute on the worker, since the exception
  does not travel from it). `where_failed` and `format_row_line` say a row in one line.
- Reading back (`read_rows`): an empty sweep.jsonl (left by earlier versions) still reads as "no job
  finished yet" (`empty_reason`); one with a line that is not JSON is corrupt, not empty.
- A folder takes a sweep's jobs only when its record agrees with them (`check_folder`: not a training
  run's folder, no jobs of another function; `check_recorded`: no job recorded with other settings,
  compared as the job runs them, `setting_changes`).

The one thing to know before editing: a row is written only after its job's files are, and sweep.jsonl is
rewritten whole from what `_Recorder` read, so only the client holding the folder's lock (sweep.py's
`lock_sweep`) may write it; `read_rows` and `_Recorder` must agree on what a line is (a torn last line
dropped by both; any other bad line refused by `read_rows`, which the engine calls first). This module
imports nothing of sweep.py (sweep.py imports it).
"""
from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
from pathlib import Path
from typing import NamedTuple

from .errors import UserError, is_json_number as _is_number, json_kind
from .fileio import atomic_write_bytes, atomic_write_text

SWEEP_FILE = "sweep.jsonl"
ENGINE_KEYS = ("name", "fn", "settings", "status", "error", "error_at", "wall_s", "worker", "attempts",
               "max_rss_mb")
ERROR_FILE = "error.txt"    # SWEEP/JOB/error.txt: the traceback of a job that raised (its row's error_at: where)


class Job(NamedTuple):
    """One point of a sweep."""

    name: str               # unique, filesystem-safe folder name under the sweep folder, named by its settings
    fn: str                 # "module:function", imported on the worker, e.g. "rnnlm.sweepjobs:train_job"
    settings: dict          # JSON-able; the job's full settings (recorded in sweep.jsonl and passed to fn)
    data: str | None = None  # key into run_sweep's `data` (a payload shipped to workers once), or None


class JobResult(NamedTuple):
    """What a job function returns."""

    row: dict               # flat JSON-able summary (numbers/strings/lists) merged into the job's sweep.jsonl row;
    #                         no key of ENGINE_KEYS, which the engine records itself (check_row_keys)
    files: dict             # {relative path: bytes, or str written as UTF-8} written by the client under SWEEP/JOB/
    #                         (atomically)


# ---------------------------------------------------------------- sweep.jsonl


def read_rows(folder) -> list[dict]:
    """The rows of folder/sweep.jsonl, in its order ([] when there is none): the order of the jobs given to
    run_sweep (`_Recorder`; a folder of earlier versions: the order they finished in).

    A torn last line (a crash of an older writer: no newline at its end, as `_Recorder` sees it) is dropped;
    any other bad line, a complete last one included, is a UserError (the file is corrupt, not empty).
    """
    path = Path(folder) / SWEEP_FILE
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="surrogateescape")    # a damaged byte: a bad line, below
    lines = text.splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            line.encode("utf-8")        # UnicodeEncodeError: the line holds bytes that are not UTF-8
            row = json.loads(line)
            if not isinstance(row, dict):   # valid JSON but not a row ([1, 2], a hand edit): as corrupt
                raise json.JSONDecodeError("not a JSON object", line, 0)
        except (json.JSONDecodeError, UnicodeEncodeError):
            if i == len(lines) - 1 and not text.endswith("\n"):
                break
            raise UserError(f"{path} cannot be read: line {i + 1} is not a UTF-8 JSON object; remove that line "
                            f"(the command that wrote the folder, run again with --out {Path(folder)}, reruns its job) "
                            "or restore the file from a copy") from None
        why = row_problem(row)      # a whole object with a field of the wrong type (a hand edit): as corrupt
        if why is not None:
            raise UserError(f"{path} cannot be read: line {i + 1} is not a row a sweep wrote ({why}); remove that "
                            f"line (the command that wrote the folder, run again with --out {Path(folder)}, reruns "
                            "its job) or restore the file from a copy")
        rows.append(row)
    return rows


TRAIN_JOB = "rnnlm.sweepjobs:train_job"     # the job function of a `sweep run` point (sweepgrid builds them)
TASK_JOB = "rnnlm.learnability:task_job"    # the job function of a `study` run
# the results of each job function of ours that are numbers (or null: not measured, non-finite), as
# sweepjobs.train_job and learnability.task_job record them
RESULT_NUMBERS = {
    TRAIN_JOB: ("steps", "tokens", "params", "train_s", "tokens_per_s", "val_ppl", "best_val_ppl", "test_ppl",
                "clip_fraction", "skipped", "lr_final", "max_rss_mb", "attempts"),
    TASK_JOB: ("first_step", "solved_step", "final_acc", "best_acc", "steps_run", "steps_per_s", "distance", "lag",
               "chance", "max_rss_mb", "attempts"),
}


def row_problem(row: dict) -> str | None:
    """What is wrong with the fields of a sweep.jsonl row that the readers index (damaged or edited by hand),
    in words ('its settings are a number, not an object'), or None. Every row a sweep writes has a name and a
    status (what each reader goes by); another field a row lacks is not checked."""
    for key in ("name", "status"):
        if key not in row:
            return f"it has no {key}"
    for key in ("name", "fn", "status"):
        if key in row and not isinstance(row[key], str):
            return f"its {key} is {json_kind(row[key])}, not a string"
    if "wall_s" in row and (not isinstance(row["wall_s"], (int, float)) or isinstance(row["wall_s"], bool)):
        return f"its wall_s is {json_kind(row['wall_s'])}, not a number"
    # the results that the summaries, tables and figures read (a job of one's own keeps its own row)
    for key in RESULT_NUMBERS.get(row.get("fn"), ()):
        v = row.get(key)    # (null: not measured, non-finite)
        if v is not None and not _is_number(v):
            return f"its {key} is {json_kind(v)}, not a number or null"
    if row.get("fn") == TASK_JOB:
        for key in ("solved", "diverged", "stopped_early"):
            if key in row and not isinstance(row[key], bool):
                return f"its {key} is {json_kind(row[key])}, not true or false"
        history = row.get("history")
        if history is not None and not isinstance(history, dict):
            return f"its history is {json_kind(history)}, not an object of lists"
        for key, values in (history or {}).items():
            if not isinstance(values, list) or not all(v is None or _is_number(v) for v in values):
                return f"its history's {key} is not a list of numbers"
    if "settings" not in row:
        return None
    settings = row["settings"]
    if not isinstance(settings, dict):
        return f"its settings are {json_kind(settings)}, not an object"
    if "train" in settings:
        train = settings["train"]
        if not isinstance(train, dict):
            return f"its settings' train is {json_kind(train)}, not an object"
        for key in ("model", "data"):
            if key in train and not isinstance(train[key], dict):
                return f"its settings' train.{key} is {json_kind(train[key])}, not an object"
        measure = settings.get("measure")
        if measure and not (isinstance(measure, list) and all(isinstance(m, str) for m in measure)):
            return f"its settings' measure is {json_kind(measure)}, not a list of names"
    return None


def empty_reason(folder) -> str:
    """Why folder holds no rows, as one sentence that says what to do (for the callers' UserError): an empty
    sweep.jsonl (a sweep interrupted before its first job finished); a file given for the folder (the
    sweep's own sweep.jsonl among them: the commands take the folder); a path that does not exist; a training
    run's folder; a folder with no sweep.jsonl at all. Each says what to give instead, not a `sweep run
    --out` into a file or a run's folder (which it would refuse)."""
    from .runs import CONFIG
    folder = Path(folder)
    if (folder / SWEEP_FILE).exists():
        return (f"no job of the sweep in {folder} has finished yet ({SWEEP_FILE} is empty: it was interrupted "
                f"before its first job ended); run the same command again with --out {folder} to continue")
    if folder.is_file():
        if (folder.parent / SWEEP_FILE).is_file():
            return (f"{folder} is a file of the sweep in {folder.parent}, not its folder; give the folder, "
                    f"{folder.parent} ('sweep summarize' and 'plot sweep' take the sweep's folder)")
        return (f"{folder} is a file, not a sweep's folder; give the folder a 'sweep run --out' wrote "
                f"(it holds {SWEEP_FILE})")
    if not folder.exists():
        return (f"{folder} does not exist; give the folder a 'sweep run --out' wrote (it holds {SWEEP_FILE}), "
                f"or run 'sweep run --out {folder} ...' first")
    if (folder / CONFIG).is_file() and (folder.parent / SWEEP_FILE).is_file():
        # (a job's folder keeps no checkpoint unless --keep-models: `evaluate` of it would be refused)
        return (f"{folder} is the folder of one job of the sweep in {folder.parent}; give the sweep's folder, "
                f"{folder.parent} (or read this job's training with 'plot training {folder}')")
    if (folder / CONFIG).is_file():
        return (f"{folder} is a training run's folder (it holds {CONFIG}), not a sweep's; give a sweep's folder "
                f"(it holds {SWEEP_FILE}), or read this run with 'plot training {folder}' or 'evaluate {folder}'")
    return f"{folder} holds no {SWEEP_FILE}; run 'sweep run --out {folder} ...' first"


def _json_safe(x):
    """Non-finite floats to None, NumPy scalars and arrays to Python, so a row is strict JSON."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):
        return _json_safe(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def check_row_keys(job: Job, row: dict) -> None:
    """UserError (one line) when a job's row has a key the engine records itself (ENGINE_KEYS): merged, one
    of the two values would be lost without a word. Every job of the function would meet it, so the sweep
    stops at the first (its rows so far recorded) rather than record each as failed."""
    clash = [k for k in ENGINE_KEYS if k in row]
    if clash:
        raise UserError(f"job {job.name}: {job.fn} returned a row with the key {clash[0]!r}, which the sweep "
                        f"records itself ({', '.join(ENGINE_KEYS)}); rename it in the job function's row "
                        f"(e.g. {'job_' + clash[0]!r}) and run the sweep again")


def checked_files(job: Job, files: dict) -> dict:
    """A job's files as bytes: a str is text, written as UTF-8; anything else, or a name that is not a str,
    is a UserError (one line) saying what to give."""
    out = {}
    for rel, blob in files.items():
        if not isinstance(rel, str):
            raise UserError(f"job {job.name}: {job.fn} returned a file named {rel!r}; name each file by a str, "
                            "its path under the job's folder")
        if isinstance(blob, str):
            blob = blob.encode("utf-8")
        elif not isinstance(blob, (bytes, bytearray, memoryview)):
            raise UserError(f"job {job.name}: {job.fn} returned file {rel!r} as {type(blob).__name__}; give its "
                            "content as bytes, or as a str (written as UTF-8 text)")
        out[rel] = blob
    return out


class _Recorder:
    """Writes finished jobs: their files, then their row as one more line of sweep.jsonl (atomic rewrite).

    The lines stay in the order of `jobs` (the sweep's, as given): a row goes in before the first line of
    a job that comes after it, so two runs of one sweep write the same file, whatever order their jobs
    finish in. Lines recorded by an earlier run that gave the jobs in another order are put in this
    order first (`reordered`; among the lines they held, so `write` leaves no other line moved). Lines of
    jobs that `jobs` does not name (an earlier sweep into the folder) keep their place, but for the ones
    that record a job of `jobs` under an earlier name (found: recorded_jobs'), which take that job's place.
    """

    def __init__(self, folder: Path, jobs=(), found=None):
        self.folder = folder
        self.path = folder / SWEEP_FILE
        text = (self.path.read_text(encoding="utf-8", errors="surrogateescape") if self.path.exists()
                else "")       # (read_rows refused any damaged line but a torn last one, dropped here)
        if text and not text.endswith("\n"):      # a torn last line: read_rows dropped it
            text = text[: text.rfind("\n") + 1]
        lines = [line for line in text.splitlines() if line.strip()]
        rows = [json.loads(line) for line in lines]
        self.order = {job.name: i for i, job in enumerate(jobs)}
        self.order.update({row.get("name"): self.order[name] for name, row in (found or {}).items()
                           if row.get("name") != name})
        places = [self.order.get(row.get("name")) for row in rows]
        # the lines of jobs that `jobs` names, in its order, in the slots they held (the others stay put)
        slots = [i for i, p in enumerate(places) if p is not None]
        pick = list(range(len(lines)))
        for slot, src in zip(slots, sorted(slots, key=lambda i: places[i])):
            pick[slot] = src
        self.reordered = pick != list(range(len(lines)))     # the file is not in this order yet (`write`)
        self.lines = [lines[i] for i in pick]
        self.rows = [rows[i] for i in pick]
        self.places = [places[i] for i in pick]

    def write(self) -> None:
        """Rewrite sweep.jsonl (atomically) with the lines as they stand."""
        atomic_write_text(self.path, "".join(line + "\n" for line in self.lines))
        self.reordered = False

    def _write_files(self, job: Job, files: dict) -> None:
        """Write a job's files into its folder, all or none: when one cannot be written (a full disk), those
        written before it, and the folders made for them, are removed again before the error goes on, so
        that the folder of a job not recorded holds no half of its run (the same command runs it again)."""
        home = (self.folder / job.name).resolve()
        made = []
        try:
            for rel, blob in sorted(files.items()):
                target = (self.folder / job.name / rel).resolve()
                if not str(target).startswith(str(home) + os.sep):
                    raise UserError(f"job {job.name}: file {rel!r} would land outside its folder")
                missing, d = [], target.parent
                while not d.exists():       # (home's parent, the sweep folder, is there)
                    missing.append(d)
                    d = d.parent
                for d in reversed(missing):
                    d.mkdir()
                    made.append(d)
                made.append(target)
                atomic_write_bytes(target, blob)
        except BaseException:
            for p in reversed(made):
                with contextlib.suppress(OSError):
                    if p.is_dir():
                        p.rmdir()       # (only when empty)
                    else:
                        p.unlink()
            raise

    def record(self, job: Job, out: dict) -> dict:
        files = checked_files(job, out.get("files", {}))
        check_row_keys(job, out.get("row", {}))
        if out.get("error_traceback"):      # a job that raised: where, for the one who reads its row
            files[ERROR_FILE] = (f"job {job.name} ({job.fn}) failed on {out['worker']}: {out['error']}\n\n"
                                 f"{out['error_traceback']}").encode("utf-8", errors="backslashreplace")
        self._write_files(job, files)
        # An earlier run of this job (its line deleted, to run it again) left files this one did not write: its
        # error.txt, or the model.npz of --keep-models beside the new config.json, which evaluate would read.
        home = self.folder / job.name
        written = {(home / rel).resolve() for rel in files}
        for old in sorted(home.rglob("*")) if home.is_dir() else ():
            if old.is_file() and old.resolve() not in written:
                with contextlib.suppress(OSError):
                    old.unlink()
        row = {"name": job.name, "fn": job.fn, "settings": job.settings, "status": out["status"]}
        if out.get("error"):
            row["error"] = out["error"]
        if out.get("error_at"):
            row["error_at"] = out["error_at"]
        row.update(wall_s=round(out["wall_s"], 3), worker=out["worker"], attempts=out["attempts"],
                   max_rss_mb=out.get("max_rss_mb"))
        row.update(out.get("row", {}))     # (check_row_keys: no key of the engine's among them)
        row = _json_safe(row)
        place = self.order.get(job.name, len(self.order))
        at = next((i for i, p in enumerate(self.places) if p is not None and p > place), len(self.lines))
        self.lines.insert(at, json.dumps(row, ensure_ascii=False, allow_nan=False))
        self.places.insert(at, place)
        self.rows.insert(at, row)
        self.write()
        return row


# ---------------------------------------------------------------- a failed job's error, as text where it ran


# the job function a row's fn names, imported (by sweep.execute on the worker, and here to say where a job
# raised and to compare settings as the job runs them)
def _import_fn(spec: str):
    mod, _, name = spec.partition(":")
    if not mod or not name:
        raise UserError(f"job function {spec!r}: expected 'module:function'")
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"job function {spec!r} cannot be imported on this worker ({exc})") from None


def _message(exc: BaseException) -> str:
    """str(exc), or "<unprintable: E in its message>" when that raises E (a job's exception class whose
    __str__ has a bug): the job is still a failed row saying what it raised."""
    try:
        return str(exc)
    except Exception as err:   # noqa: BLE001 - whatever its __str__ raises
        return f"<unprintable: {type(err).__name__} in its message>"


def _job_frames(exc: BaseException):
    """The traceback's frames below `execute` (the job function's and what it called), outermost first."""
    import traceback
    tb = exc.__traceback__
    return traceback.extract_tb(tb.tb_next) if tb is not None else []


def _traceback_text(exc: BaseException) -> str:
    """The exception's whole traceback as Python prints it, from the job function's frame on (the engine's
    own frame left out; chained exceptions included)."""
    import traceback
    tb = exc.__traceback__
    return "".join(traceback.format_exception(type(exc), exc, tb.tb_next if tb is not None else None))


def _error_at(exc: BaseException, fn: str) -> str | None:
    """Where a job's exception was raised, in one line: "FILE:LINE in FUNCTION" of the innermost frame,
    preceded by the deepest frame in the job function's own file when the exception came from deeper
    (NumPy, a helper module): "jobs.py:7 in square -> .../numpy/core/_methods.py:49 in _sum". None when
    no frame below the engine's own is known (the function returned something that is not a JobResult)."""
    frames = _job_frames(exc)
    if not frames:
        return None
    where = [frames[-1]]
    own = getattr(getattr(_fn_or_none(fn), "__code__", None), "co_filename", None)
    mine = [f for f in frames if f.filename == own]
    if mine and mine[-1] is not frames[-1]:
        where.insert(0, mine[-1])
    return " -> ".join(f"{f.filename}:{f.lineno} in {f.name}" for f in where)


def _fn_or_none(fn: str):
    try:
        return _import_fn(fn)
    except UserError:
        return None


# ---------------------------------------------------------------- whether a folder's record takes these jobs


def check_folder(folder, fns) -> None:
    """UserError (one line) unless `folder` can take jobs of the functions `fns` ("module:function"): a
    training run's folder (config.json) or a sweep folder recording jobs of another function (a study's
    tasks in a `sweep run`'s folder, or the reverse) would mix two kinds of record in one sweep.jsonl."""
    from .runs import CONFIG
    folder = Path(folder)
    if (folder / CONFIG).is_file():
        raise UserError(f"{folder} is a training run's folder (it holds {CONFIG}); give the sweep another --out")
    other = sorted({r.get("fn") for r in read_rows(folder)} - set(fns) - {None})
    if other:
        raise UserError(f"{folder / SWEEP_FILE} records jobs of another kind ({', '.join(other)}); "
                        "give this one another --out")


def check_recorded(folder, jobs) -> list[dict]:
    """folder's recorded rows; UserError (one line) when one records a job of `jobs` with other settings,
    naming each setting that differs with its recorded and its new value (`setting_changes`). run_sweep
    checks it; a command that prints a first line checks it before, so the refusal comes first.

    Settings are compared as the job runs them (`_resolved`): a `sweep run` job whose --lr was left to the
    optimizer's default is the same job as one given that default explicitly, and a rerun skips it. What
    a row records is unchanged (the settings as given), so folders of earlier versions compare the same.
    """
    rows = read_rows(folder)
    done = {r["name"]: r for r in rows}
    found = recorded_jobs(rows, jobs)
    for job in jobs:
        if job.name not in done or job.name in found:
            continue
        changes = setting_changes(job.fn, done[job.name].get("settings"), json.loads(json.dumps(job.settings)))
        if changes is not None:
            what = f" (cannot change {', '.join(changes)})" if changes else ""
            raise UserError(f"{Path(folder) / SWEEP_FILE} records job {job.name} with other settings{what}; "
                            "use another folder, or delete its line to run it again")
    return rows


def recorded_jobs(rows, jobs) -> dict[str, dict]:
    """{job name: the row that records it} for every job of `jobs` that `rows` (a folder's, read_rows) record
    with the same function and the same settings as run (`setting_changes` None): under its own name, else
    under another name that no row of the same settings has claimed. A grid grown by an axis or narrowed to
    one value renames its jobs ("cell=lstm,seed=0" becomes "cell=lstm,dropout=0.2,seed=0", or "seed=0"): the
    training is the same, and a rerun skips it instead of recording it twice. Each row records one job at
    most. A job whose name a row of other settings holds, and no other row records, is not in the result
    (check_recorded refuses it)."""
    found, claimed = {}, set()
    by_name = {r.get("name"): i for i, r in enumerate(rows)}
    keys = {}

    def key(fn, settings):
        try:
            return json.dumps(_resolved(fn, json.loads(json.dumps(settings))), sort_keys=True)
        except (TypeError, ValueError, UserError):     # settings no job function reads: never the same job
            return None

    def row_key(i):
        if i not in keys:
            keys[i] = key(rows[i].get("fn"), rows[i].get("settings"))
        return keys[i]

    later = []
    for job in jobs:
        i = by_name.get(job.name)
        if i is not None and rows[i].get("fn") == job.fn and \
                setting_changes(job.fn, rows[i].get("settings"), json.loads(json.dumps(job.settings))) is None:
            found[job.name] = rows[i]
            claimed.add(i)
        else:
            later.append(job)
    for job in later:
        mine = key(job.fn, job.settings)
        match = next((i for i in range(len(rows)) if i not in claimed and rows[i].get("fn") == job.fn
                      and mine is not None and row_key(i) == mine), None)
        if match is not None:
            found[job.name] = rows[match]
            claimed.add(match)
    return found


def renamed_note(found: dict) -> str:
    """" (N of them recorded under an earlier name, e.g. A for B)" for the jobs of `found` (recorded_jobs)
    recorded under another name; "" when none is."""
    moved = [(row.get("name"), name) for name, row in found.items() if row.get("name") != name]
    if not moved:
        return ""
    old, new = moved[0]
    return f" ({len(moved)} of them recorded under an earlier name, e.g. {old} for {new})"


def _resolved(fn: str, settings):
    """A job's settings as it runs them: through its job function's `settings_as_run` attribute when it
    has one (sweepjobs.train_job's fills in the defaults that depend on other settings), else as they
    are. The function is found from the job's "module:function" as a worker finds it (_import_fn), so
    the engine knows no job kind by name."""
    if not isinstance(settings, dict):
        return settings
    try:
        as_run = getattr(_import_fn(fn), "settings_as_run", None)
    except UserError:           # a job function this process cannot import: compared as recorded
        return settings
    return as_run(settings) if as_run is not None else settings


def _leaves(x, path=()):
    """(path of keys, value) of every non-dict value in nested dicts."""
    if isinstance(x, dict) and x:
        for k, v in x.items():
            yield from _leaves(v, path + (str(k),))
    else:
        yield path, x


def setting_changes(fn: str, old, new) -> list[str] | None:
    """None when the job settings `old` (recorded) and `new` run the same job (equal once `_resolved`); else
    the settings that differ as "--flag (old -> new)" (settings.flag of the setting's name, as `train --resume`
    words it), each once. A resolved value that differs only because of another setting (min_lr left to its
    default while lr changed) is not named: the setting that made it differ is."""
    from .settings import flag
    old_r, new_r = _resolved(fn, old), _resolved(fn, new)
    if old_r == new_r:
        return None
    missing = object()
    a, b = dict(_leaves(old_r)), dict(_leaves(new_r))
    raw_a, raw_b = dict(_leaves(old)), dict(_leaves(new))
    changes = []
    for path in [*a, *(p for p in b if p not in a)]:
        va, vb = a.get(path, missing), b.get(path, missing)
        if va == vb or not path or (path in raw_a and path in raw_b and raw_a[path] == raw_b[path]):
            continue
        text = " -> ".join("unset" if v is missing else repr(v) for v in (va, vb))
        text = f"{flag(path[-1])} ({text})"
        if text not in changes:
            changes.append(text)
    return changes


# ---------------------------------------------------------------- a row in words


def where_failed(row: dict, folder=None) -> str:
    """The words " at FILE:LINE in FUNCTION; traceback in FOLDER/JOB/error.txt" for a failed row that records
    where its job raised (files by their name only: the row's error_at and error.txt give the full paths); ""
    for any other row. The traceback is named only when the file is there (folder None: not named)."""
    at = row.get("error_at")
    if row.get("status") != "failed" or not isinstance(at, str) or not at:
        return ""
    short = []
    for frame in at.split(" -> "):
        place, sep, func = frame.rpartition(" in ")
        path, colon, line = place.rpartition(":")
        short.append(f"{Path(path).name}:{line} in {func}" if sep and colon and line.isdigit() else frame)
    text = f" at {' -> '.join(short)}"
    if folder is not None and (Path(folder) / str(row.get("name")) / ERROR_FILE).is_file():
        text += f"; traceback in {Path(folder) / str(row.get('name')) / ERROR_FILE}"
    return text


def _not_long_enough(row: dict, acc: float) -> str:
    """For a study's run not solved though its last accuracy reached the threshold: that it did so in fewer
    than --patience evaluations in a row ("not solved, accuracy 1.00" read as a contradiction); else ''."""
    train = row.get("train") if isinstance(row.get("train"), dict) else {}
    threshold, patience = train.get("threshold"), train.get("patience")
    if row.get("solved") or not isinstance(threshold, (int, float)) or not isinstance(patience, int) \
            or acc < threshold or patience < 2:
        return ""
    return f" (at {threshold:g} or above in fewer than {patience} evaluations in a row: --patience {patience})"


def format_row_line(row: dict, folder=None) -> str:
    """The line printed when a job finishes (folder: the sweep's, to name a failed job's traceback file)."""
    if row["status"] != "done":
        return f"{row['name']}: FAILED ({row.get('error')}){where_failed(row, folder)} [{row['wall_s']:.1f} s]"
    from .runs import fmt_ppl
    bits = []
    for key in ("best_val_ppl", "val_ppl", "stopped", "steps"):
        if row.get(key) is not None:
            v = row[key]
            # perplexities as everywhere else: 141.19, or 1.99e+21 for an exploded run's
            bits.append(f"{key} {fmt_ppl(v)}" if key.endswith("ppl") and isinstance(v, (int, float))
                        else f"{key} {v:.2f}" if isinstance(v, float) else f"{key} {v}")
    if isinstance(row.get("solved"), bool):     # a study's run (learnability.task_job): solved or not, and when
        step, acc = row.get("solved_step"), row.get("final_acc")
        bits.append(f"solved at step {step:,}" if row["solved"] and isinstance(step, int) else
                    "solved" if row["solved"] else "not solved")
        if isinstance(acc, (int, float)) and not isinstance(acc, bool):
            bits.append(f"accuracy {acc:.2f}" + _not_long_enough(row, acc))
    attempts = row.get("attempts")
    if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts > 1:
        bits.append(f"after {attempts} attempts (a worker died)")
    return f"{row['name']}: done{(' ' + ', '.join(bits)) if bits else ''} [{row['wall_s']:.1f} s on {row['worker']}]"
