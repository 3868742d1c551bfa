"""Sweeps: grids of short jobs run in parallel on `dask.distributed`, recorded one line per job.

`run_sweep(folder, jobs, data)` sends every job of `jobs` that `folder/sweep.jsonl`
does not already record to Dask workers and writes, as each one finishes, its
files under `folder/<job name>/` and its row as one more line of sweep.jsonl,
kept in the order of `jobs` (not the order they finish in), so that two runs
of one sweep write the same file and the same table.
By default the workers are an in-process `LocalCluster` of worker processes,
one per core, one thread each; `scheduler="tcp://HOST:8786"` sends the same
jobs to a cluster started by hand (`dask scheduler` / `dask worker`), and
`scheduler="serial"` runs them one after another in this process (no Dask: the
reference the tests compare the engine against, and the bench's serial loop). How
the jobs reach the workers (the scheduler's address and handshake, the
LocalCluster's start and close) is sweepcluster.py.

A job is `Job(name, fn, settings, data)`: `fn` is "module:function", imported on
the worker and called as `fn(settings, payload) -> JobResult`, where payload is
`data[job.data]` (a dict of NumPy arrays, scattered to the workers once) or
None. Workers need no shared file system: a job writes only into a temporary
folder of its own and returns its files as bytes; the client writes them.
What the folder records (Job and JobResult, the rows of sweep.jsonl, a failed
job's error and traceback, the checks of a folder's record against the jobs
given) is sweeprecord.py; its names are re-exported here.

Nothing lost:
- one process at a time writes a sweep folder: run_sweep holds its OS lock
  (FOLDER/.sweep.lock, `lock_sweep`) for the whole call, and a second sweep
  into the same folder is refused in one line, naming the holder's pid;
- a finished job is recorded as it finishes, so a rerun of the same sweep
  skips it, and a job that raises is a row with status "failed" and its
  one-line error; the rest go on (how rows and errors are written and read:
  sweeprecord.py);
- a worker that dies mid-job (killed, out of memory) has its job rescheduled
  by the Dask scheduler on another worker, at most `retries` times (the
  scheduler's `allowed-failures`, set for the LocalCluster; an external
  scheduler uses its own setting); `attempts` in the row counts the runs;
- Ctrl-C (SIGINT reaches the client only: LocalCluster workers ignore it,
  through the `dask_setup` preload below) asks the workers to stop the jobs in
  flight (`stop_jobs`: a job that calls `check_stop` between its steps raises
  JobStopped and leaves no temporary folder), cancels them, closes the cluster
  gracefully (no worker processes left) with further Ctrl-C ignored while it
  does, and raises KeyboardInterrupt; a rerun resumes. SIGTERM (`kill PID`, a
  batch system's stop) is handled the same way and raises `Terminated` (a
  KeyboardInterrupt; the CLI exits 143 for it, 130 for Ctrl-C). A signal that
  lands while a finished sweep closes its cluster is held back until the
  close is done (the scratch folder goes after the workers), then raised; so
  is one that lands while the LocalCluster starts (`sweepcluster._starting`: half-started
  workers would print tracebacks), until it is up and can be closed. A
  sweep stopped before its first job finished records nothing: it writes no
  sweep.jsonl, and a folder it created is removed again (`lock_sweep`); its
  one line says so (`nothing_recorded_line`).

Threads: every worker runs its job on one Numba thread with one-thread BLAS
(`NUMBA_NUM_THREADS`, `OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS` and
`MKL_NUM_THREADS` = 1 set in the worker process before it imports NumPy or
Numba, through the Nanny's environment, and `numba.set_num_threads(1)` around
each job as a guard for workers started by hand). Results depend on the thread
count, so the serial path runs with one thread too unless told otherwise.

The one thing to know before editing: a row is written only after its job's
files are, and only the client holding the folder's lock writes into the sweep
folder (sweep.jsonl is rewritten whole from what that client read); a job function
must be deterministic in (settings, payload) and must not touch shared disk,
or reruns, retries and the engine-vs-serial test stop meaning anything.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

# Terminated: SIGTERM, as Ctrl-C; stop_word and exit_status re-exported (a stop's first word and exit status)
from .errors import Terminated, UserError, exit_status, plural, sigterm_raises, stop_word
from .fileio import first_new_folder, remove_new_folders
from .sweepcluster import JOB_TMP, SERIAL, WORKER_ENV, _attempts, _client, _Shield, check_scheduler
# the sweep folder's record (sweeprecord.py), re-exported: `from rnnlm.sweep import Job, read_rows` works as before
from .sweeprecord import (ENGINE_KEYS, ERROR_FILE, SWEEP_FILE, Job, JobResult, _error_at, _import_fn, _message,
                          _Recorder, _traceback_text, check_folder, check_recorded, check_row_keys, checked_files,
                          empty_reason, format_row_line, read_rows, recorded_jobs, setting_changes, where_failed)

__all__ = [
    # the engine (this module)
    "GUARD_ADVICE", "SWEEP_LOCK", "JobStopped", "Terminated", "check_main_guard", "check_stop", "dask_setup",
    "dask_teardown", "execute", "exit_status", "lock_sweep", "nothing_recorded_line", "quiet_lost_heartbeats",
    "run_sweep", "stop_jobs", "stop_word", "temp_folder", "worker_threads",
    # the record (sweeprecord.py)
    "ENGINE_KEYS", "ERROR_FILE", "SWEEP_FILE", "Job", "JobResult", "check_folder", "check_recorded",
    "check_row_keys", "checked_files", "empty_reason", "format_row_line", "read_rows", "recorded_jobs",
    "setting_changes", "where_failed",
]

SWEEP_LOCK = ".sweep.lock"  # the OS lock of the process writing the sweep folder (lock_sweep)
_NAME = re.compile(r"^[A-Za-z0-9_+=,-][A-Za-z0-9._+=,-]*$")


class JobStopped(Exception):
    """Raised by `check_stop` inside a job that the client asked to stop (Ctrl-C): the job ends, unrecorded."""


# ---------------------------------------------------------------- a stop, in one line


def nothing_recorded_line(exc: BaseException, folder, noun: str) -> str | None:
    """The one line of a sweep (or study) stopped before any of its `noun`s finished, said once its lock is
    released: `lock_sweep` removed the folder it had created, or left one that was there as it was (no
    sweep.jsonl written). None when folder holds a record (the caller says how much of it)."""
    folder = Path(folder)
    if (folder / SWEEP_FILE).exists():
        return None
    where = f"{folder} is left as it was" if folder.exists() else f"{folder} was new and is removed again"
    return (f"{stop_word(exc)}: no {noun} had finished (none is left running), so nothing is recorded; {where}; "
            "the same command starts over")


# ---------------------------------------------------------------- the worker side


# Worker-side state of the stop requests (per process): keys of jobs asked to stop, a stop-all flag for a
# closing worker, and the key of the job each thread runs.
_STOP_KEYS: set = set()
_STOP_ALL = threading.Event()
_RUNNING = threading.local()


def check_stop() -> None:
    """Raise JobStopped if the client asked the job running in this thread to stop (call it between steps)."""
    if _STOP_ALL.is_set() or getattr(_RUNNING, "key", None) in _STOP_KEYS:
        raise JobStopped("stopped at the client's request (Ctrl-C)")


def stop_jobs(keys) -> int:
    """Ask the jobs with these task keys to stop at their next `check_stop` (run on workers by client.run)."""
    _STOP_KEYS.update(keys)
    return len(_STOP_KEYS)


class _HeartbeatLost(logging.Filter):
    """Drops distributed.worker's "Failed to communicate with scheduler during heartbeat" record (an
    OSError's traceback): in a LocalCluster the scheduler lives in the client, and a client that stops
    (Ctrl-C, SIGTERM) closes it while a busy worker may still be sending a heartbeat; the sweep's own
    line says what happened. Any other record of the worker's passes."""

    def filter(self, record) -> bool:
        return not str(record.msg).startswith("Failed to communicate with scheduler during heartbeat")


def quiet_lost_heartbeats() -> None:
    """Install _HeartbeatLost on distributed.worker's logger (once)."""
    log = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _HeartbeatLost) for f in log.filters):
        log.addFilter(_HeartbeatLost())


def dask_setup(worker) -> None:
    """Preload hook of the LocalCluster's workers: Ctrl-C in the terminal is the client's to handle.

    A terminal's Ctrl-C goes to the whole process group; a worker killed by it
    mid-job leaves its job's temporary folder and Dask's tracebacks behind.
    Runs in the worker process's main thread, before any job. A heartbeat that
    meets the closing scheduler of a stopping client logs nothing (quiet_lost_heartbeats).
    """
    quiet_lost_heartbeats()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # started with SIGINT blocked (`_starting`): a Ctrl-C that came meanwhile is dropped, being ignored now
        if hasattr(signal, "pthread_sigmask"):      # (POSIX)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def dask_teardown(worker) -> None:
    """Preload hook: a closing worker stops the jobs it still runs (their temporary folders go with them)."""
    _STOP_ALL.set()


def _max_rss_mb() -> float | None:
    try:
        import resource
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)   # Linux: KiB
    except (ImportError, OSError):
        return None


@contextlib.contextmanager
def _numba_threads(n: int | None):
    """Numba's thread count set to n for the block (None: left alone)."""
    if n is None:
        yield
        return
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def execute(fn: str, settings: dict, payload, threads: int | None = 1, worker: str = "") -> dict:
    """Run one job where this is called (a Dask worker or the client); never raises for the job's own errors
    (a SystemExit among them; a KeyboardInterrupt is raised: Ctrl-C stops the sweep). An error whose message
    cannot be formatted (its __str__ raises) is recorded by its type (`_message`).

    Returns {status: done | failed, error, row, files, wall_s, worker, max_rss_mb}:
    the JobResult's parts plus what the engine measures; a job that raised
    something other than a UserError also gives error_at (where: `_error_at`)
    and error_traceback (the whole traceback as text), formatted here, since
    the exception does not travel from a worker. threads: Numba threads
    for the job (None: leave as is).
    """
    _RUNNING.key = None
    try:
        from distributed import get_worker
        w = get_worker()
        worker, _RUNNING.key = worker or w.address, w.get_current_task()
    except (ImportError, ValueError):       # not on a Dask worker
        worker = worker or f"local:{os.getpid()}"
    t0 = time.perf_counter()
    out = {"status": "done", "error": None, "row": {}, "files": {}}
    try:
        with _numba_threads(threads):
            result = _import_fn(fn)(settings, payload)
        if not isinstance(result, JobResult):
            raise TypeError(f"{fn} returned {type(result).__name__}, not a JobResult")
        out.update(row=dict(result.row), files=dict(result.files))
    except UserError as exc:
        out.update(status="failed", error=_message(exc))
    # a job's own crash is a failed row, not a dead sweep: a sys.exit() in it too (it would end the serial
    # caller's process, and look like a dead worker on a cluster); Ctrl-C (KeyboardInterrupt) still stops
    except (Exception, SystemExit) as exc:   # noqa: BLE001
        msg = _message(exc).strip().splitlines()
        out.update(status="failed", error=f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": "))
        # where it happened, formatted here (on the worker) as text: the exception itself does not cross
        out.update(error_traceback=_traceback_text(exc), error_at=_error_at(exc, fn))
    finally:
        _STOP_KEYS.discard(_RUNNING.key)
        _RUNNING.key = None
    out.update(wall_s=time.perf_counter() - t0, worker=worker, max_rss_mb=_max_rss_mb())
    return out


def worker_threads() -> dict:
    """What a worker's thread settings are (the tests ask every worker)."""
    import numba
    return {"numba": numba.get_num_threads(), "numba_pool": numba.config.NUMBA_NUM_THREADS,
            **{k: os.environ.get(k) for k in WORKER_ENV}}


# ---------------------------------------------------------------- the client side


def _check_jobs(jobs) -> None:
    seen = set()
    for job in jobs:
        if not isinstance(job, Job):
            raise TypeError(f"run_sweep takes Job tuples, got {type(job).__name__}")
        if not _NAME.match(job.name):
            raise UserError(f"job name {job.name!r}: use letters, digits and . _ + = , - only")
        if job.name in seen:
            raise UserError(f"two jobs are named {job.name!r}; every point of a sweep needs its own name")
        seen.add(job.name)
        try:
            json.dumps(job.settings, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise UserError(f"job {job.name}: settings are not JSON ({exc})") from None


_HELD: dict = {}    # sweep folders this process holds the lock of: resolved path -> times taken (lock_sweep)


@contextlib.contextmanager
def lock_sweep(folder):
    """Hold the sweep folder's OS lock (FOLDER/.sweep.lock, folderlock.lock_folder's mechanism) for the block.

    Only one process at a time writes a sweep folder: another one is refused
    with a UserError naming its pid (two writers would each rewrite
    sweep.jsonl with their own rows only). Reentrant within this process (the
    CLI holds it for the whole command, run_sweep takes it again). The kernel
    releases it when the process dies. When nothing is recorded on the way
    out (no sweep.jsonl: the sweep failed or was stopped before its first job
    finished, or its scheduler was unreachable), the lock file goes again if
    this call made it, and so do the folder and the parents it created if
    that leaves them empty.
    """
    from .folderlock import lock_folder
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    new = first_new_folder(folder)
    path = folder / SWEEP_LOCK
    made = not path.exists()
    lock = lock_folder(folder, SWEEP_LOCK, "is in use by another sweep")     # (its file holds our pid)
    _HELD[key] = 1
    try:
        yield folder
    finally:
        del _HELD[key]
        try:
            with contextlib.suppress(OSError):
                if made and not (folder / SWEEP_FILE).exists():
                    path.unlink()       # while still locked: a process starting now makes a new lock file
                    remove_new_folders(folder, new)     # (each only if empty)
        finally:
            lock.release()              # (empties the lock file: no pid once released)


def run_sweep(folder, jobs: list[Job], data: dict | None = None, *, scheduler: str | None = None,
              n_workers: int | None = None, retries: int = 2, progress: bool = True,
              threads: int = 1, on_row=None, say_interrupted: bool = True,
              timings: dict | None = None, scheduler_checked: bool = False) -> list[dict]:
    """Run every job not already finished in folder/sweep.jsonl; return all rows (old and new), in the
    file's order: the order of `jobs` (rows of jobs not among them keep their place). Rows recorded by an
    earlier call that gave the jobs in another order are put in this one's order, in the file too, also
    when every job is recorded already and nothing runs (`_Recorder`).

    folder: the sweep folder (created). jobs: Job tuples with unique names.
    data: {key: {name: ndarray}} payloads that jobs name by key; each is sent to
    the workers once. scheduler: None = a LocalCluster of `n_workers` worker
    processes (default: one per core) with one thread each; "tcp://HOST:PORT" =
    that running scheduler; "serial" = in this process, one job after another,
    on `threads` Numba threads. retries: times a job whose worker died is
    rerun (LocalCluster only). on_row(row): called as each row is recorded.
    timings: a dict filled with where the wall time went (seconds): start_s (the
    cluster up and its workers connected; 0 for serial), ship_s (the payloads
    scattered), jobs_s (first job sent to last row recorded), close_s.
    A finished job (status done or failed) is skipped; delete its line to rerun it. A job that raises is a
    failed row, a SystemExit (sys.exit() in the job) included; a KeyboardInterrupt stops the sweep (`execute`).
    A recorded job whose settings differ from the one given is a UserError.
    Ctrl-C: stops and cancels the jobs in flight, closes the cluster, prints
    one line saying how many jobs are recorded (unless say_interrupted=False:
    the caller says it) and raises KeyboardInterrupt; SIGTERM the same, raising
    Terminated (a KeyboardInterrupt). A stop before any job finished writes no
    sweep.jsonl, and a folder that the call created is removed again
    (`lock_sweep`; `nothing_recorded_line`). The folder is locked for the
    call (`lock_sweep`): a folder another process sweeps into is a UserError,
    and a badly formed scheduler address is one before anything is written
    (`check_scheduler`); a scheduler that does not answer as one is one too
    (`check_answers`; scheduler_checked=True: the caller asked it already, `check_reachable`).
    A script must call it under `if __name__ == "__main__":` (the LocalCluster's workers import the main
    script again): an unguarded call is a UserError before anything starts (`check_main_guard`), and so is
    a LocalCluster from a script read from standard input (no file the workers could import again).
    A job's row with a key the engine records itself (`check_row_keys`), or a file that is neither bytes
    nor str (`checked_files`; a str is written as UTF-8), is a UserError that stops the sweep.
    """
    check_main_guard(scheduler)
    folder = Path(folder)
    _check_jobs(jobs)
    data = data or {}
    for job in jobs:
        if job.data is not None and job.data not in data:
            raise UserError(f"job {job.name} needs data {job.data!r}, which the sweep was not given")
    if retries < 0:
        raise UserError(f"retries must be >= 0, got {retries}")
    check_scheduler(scheduler, n_workers)
    check_folder(folder, {j.fn for j in jobs})      # (before the lock, whose file it would leave there)
    try:
        with lock_sweep(folder):
            return _run_locked(folder, jobs, data, scheduler, n_workers, retries, progress, threads, on_row,
                               timings, scheduler_checked)
    except KeyboardInterrupt as exc:    # said once the lock is gone, with what lock_sweep removed
        if say_interrupted:
            n = len(read_rows(folder))
            print(nothing_recorded_line(exc, folder, "job") or
                  f"{stop_word(exc)}: {n} of {len(jobs)} jobs recorded in {folder / SWEEP_FILE}; rerun the same "
                  "command to run the rest", file=sys.stderr, flush=True)
        raise


GUARD_ADVICE = 'put the call under `if __name__ == "__main__":`'


def check_main_guard(scheduler: str | None) -> None:
    """UserError (one line) when run_sweep is called where a sweep's worker processes would run it again.

    A LocalCluster starts its workers with multiprocessing's "spawn", which imports the main script again
    in each of them under the name __mp_main__: a script calling run_sweep at its top level, without the
    `if __name__ == "__main__":` guard, would start the sweep again in every worker (refused there by the
    folder's lock, and the cluster then fails to start with pages of Dask tracebacks). Two checks:
    - in such a worker (any scheduler): a caller's frame runs as __mp_main__ (multiprocessing's
      re-import of the main script; `parent_process()` is still None and `sys.modules['__main__']` still the
      worker's own while it runs, so neither tells);
    - in the script itself, before a LocalCluster starts (scheduler None): the call comes from the main
      script's top-level code at a line outside any `if __name__ == "__main__":` block;
    - also before a LocalCluster starts: the main script has no file to import again (read from standard
      input, `python - < script.py`), so that no worker could start, guard or not (`_main_without_file`).
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "__mp_main__":
            raise UserError("run_sweep was called while a worker process imported the main script again "
                            f"(it runs the script's unguarded top-level code); {GUARD_ADVICE}")
        frame = frame.f_back
    where = _unguarded_main_line() if scheduler is None else None
    if where is not None:
        raise UserError(f"run_sweep is called at the top level of {where[0]} (line {where[1]}), which every worker "
                        f"process of the sweep imports again and would run the sweep again; {GUARD_ADVICE}")
    stdin = _main_without_file() if scheduler is None else None
    if stdin is not None:
        why = "read from standard input" if stdin == "<stdin>" else "no such file"
        raise UserError(f"run_sweep cannot start its local cluster from a script without a file ({stdin}: {why}), "
                        "which every worker process of the sweep imports again from its file; "
                        f"save the script to a .py file and run that ({GUARD_ADVICE}), or pass scheduler=\"serial\"")


def _main_without_file():
    """The main module's __file__ when multiprocessing's "spawn" would run the main script again from it (no
    module name: not `python -m`) and no such file exists ("<stdin>" of `python - < script.py`); None
    otherwise (a script file, `python -c`, an interactive session or a notebook: no __file__ to run)."""
    from multiprocessing import process
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(getattr(main, "__spec__", None), "name", None) is not None:
        return None
    full = path if os.path.isabs(path) or process.ORIGINAL_DIR is None else os.path.join(process.ORIGINAL_DIR, path)
    return None if os.path.isfile(full) else path


def _unguarded_main_line():
    """(script path, line) of the main script's top-level line that leads to this call, when that line
    lies outside every `if __name__ == "__main__":` block; None otherwise (guarded, no script: an interactive
    session, `python -c`, a notebook; or its source cannot be read)."""
    import ast
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not str(path).endswith(".py"):
        return None
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return None
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None

    def is_guard(test) -> bool:
        names = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
        consts = {n.value for n in ast.walk(test) if isinstance(n, ast.Constant)}
        return "__name__" in names and "__main__" in consts

    for node in ast.walk(tree):
        if isinstance(node, ast.If) and is_guard(node.test) and node.lineno <= line <= node.end_lineno:
            return None
    return path, line


def _run_locked(folder: Path, jobs, data, scheduler, n_workers, retries, progress, threads, on_row,
                timings, scheduler_checked=False) -> list[dict]:
    """run_sweep's work, holding the folder's lock."""
    found = recorded_jobs(check_recorded(folder, jobs), jobs)     # by name, or by settings under an earlier one
    todo = [j for j in jobs if j.name not in found]
    recorder = _Recorder(folder, jobs, found)      # the rows recorded, in the order of `jobs`
    if not todo:
        if recorder.reordered:      # an earlier run gave them in another order: the file as promised too
            recorder.write()
        return list(recorder.rows)
    from tqdm import tqdm

    from .progress import stderr_is_terminal
    # the bar only on a terminal (in a log its carriage returns pile up); the line per job is written either way
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="sweep", unit="job",
               disable=not (progress and stderr_is_terminal()), file=sys.stderr, dynamic_ncols=True)

    def finish(job, out):
        row = recorder.record(job, out)
        bar.update(1)
        if progress:
            bar.write(format_row_line(row, folder), file=sys.stderr)
        if on_row is not None:
            on_row(row)

    shield = _Shield()
    timings = {} if timings is None else timings
    timings.update(start_s=0.0, ship_s=0.0, jobs_s=0.0, close_s=0.0)
    try:
        with sigterm_raises():
            try:
                if scheduler == SERIAL:
                    t0 = time.perf_counter()
                    for job in todo:
                        out = execute(job.fn, job.settings, data.get(job.data) if job.data else None, threads,
                                      worker=f"serial:{os.getpid()}")
                        finish(job, {**out, "attempts": 1})
                    timings["jobs_s"] = time.perf_counter() - t0
                else:
                    _run_dask(folder, todo, data, scheduler, n_workers, retries, finish, progress, shield,
                              timings, scheduler_checked)
            finally:
                shield.lower()
            shield.reraise()        # a Ctrl-C or SIGTERM held back while the finished sweep closed its cluster
    finally:
        bar.close()
        shield.lower()
    return list(recorder.rows)      # in sweep.jsonl's order: the jobs' (_Recorder)


def _run_dask(folder, todo, data, scheduler, n_workers, retries, finish, progress, shield, timings,
              checked=False) -> None:
    """Submit `todo` to a Dask cluster and `finish(job, out)` each as it completes.

    A job whose worker died is rescheduled by the scheduler itself (its
    allowed-failures); one cancelled because the payload it needs was lost with
    a worker (scattered data cannot be recomputed) is resubmitted here with the
    payload shipped again, counted as one attempt, within the same `retries`.
    """
    import secrets

    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker
    t0 = time.perf_counter()
    if scheduler is None:       # a local cluster: no more workers than jobs (each would start a process)
        n_workers = min(n_workers or os.cpu_count() or 1, len(todo))
    with _client(scheduler, n_workers, retries, progress, shield, checked, preload=__name__) as client:
        tag = secrets.token_hex(3)
        # Scatter once the workers are up, so that each of them gets a copy.
        client.wait_for_workers(n_workers or (1 if scheduler else (os.cpu_count() or 1)), timeout=120)
        t1 = time.perf_counter()
        timings["start_s"] = t1 - t0
        shipped = {}

        def payload(key):
            if key is None:
                return None
            if key not in shipped or shipped[key].status != "finished":
                [shipped[key]] = client.scatter([data[key]], broadcast=True, hash=False)
            return shipped[key]

        futures, earlier = {}, {}

        def submit(job):
            n = earlier.get(job.name, 0)
            fut = client.submit(execute, job.fn, job.settings, payload(job.data), 1,
                                key=f"sweep-{tag}-{job.name}-{n}", pure=False, retries=0)
            futures[fut] = job
            return fut

        for key in sorted({j.data for j in todo if j.data is not None}):
            payload(key)
        t2 = time.perf_counter()
        timings["ship_s"] = t2 - t1
        queue = as_completed([submit(job) for job in todo])
        try:
            for fut in queue:
                job = futures.pop(fut)
                try:
                    out = fut.result()
                    out["attempts"] = earlier.get(job.name, 0) + _attempts(client, [fut.key])[fut.key]
                except KilledWorker:
                    out = {"status": "failed", "wall_s": 0.0, "worker": "", "attempts": retries + 1,
                           "error": f"its worker died {retries + 1} {plural(retries + 1, 'time')} (killed or out of memory)"}
                except FutureCancelledError:
                    earlier[job.name] = earlier.get(job.name, 0) + 1
                    if earlier[job.name] <= retries:
                        queue.add(submit(job))
                        continue
                    out = {"status": "failed", "wall_s": 0.0, "worker": "", "attempts": earlier[job.name],
                           "error": f"cancelled {earlier[job.name]} {plural(earlier[job.name], 'time')} by the cluster (its data was lost "
                                    "with a worker)"}
                finish(job, out)
                fut.release()
            timings["jobs_s"] = time.perf_counter() - t2
        except BaseException:
            shield.raise_()
            running = list(futures)
            try:        # stop the jobs in flight at their next step, so that they clean up after themselves
                client.run(stop_jobs, [f.key for f in running], on_error="ignore")
            except Exception:   # noqa: BLE001 - a worker gone already: nothing of it to stop
                pass
            client.cancel(running, force=True)
            raise
        t3 = time.perf_counter()
    timings["close_s"] = time.perf_counter() - t3


def temp_folder():
    """A temporary folder on the machine running the job (a job writes only there).

    In the LocalCluster's workers it lies in the cluster's scratch folder ($RNNLM_JOB_TMP), which the
    client removes after closing the cluster; elsewhere in the system's temporary folder.
    """
    where = os.environ.get(JOB_TMP)
    return tempfile.TemporaryDirectory(prefix="rnnlm-job-", dir=where if where and os.path.isdir(where) else None)
