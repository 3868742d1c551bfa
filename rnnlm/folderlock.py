"""The OS lock of a folder that one process at a time may write: a run folder's, a sweep folder's.

`lock_run(folder)` holds a run folder's lock (RUN/.train.lock, LOCK)
for one training process; `lock_folder` is its mechanism, which
sweep.lock_sweep uses for a sweep folder's .sweep.lock too; `lock_holder`
names the process that holds a lock file ("pid 123"). A lock is a
filelock.FileLock taken without waiting: a folder locked by another process
is a UserError (one line), and the kernel releases the lock when its process
dies (kill -9 included), so a stale lock never blocks a later run. Readers
(evaluate, generate, plot) never take it.

The one thing to know before editing: releasing a lock empties its file and
never removes it (`_pid_lock_class` says why: a process waiting on a removed
file's lock would share the folder with one that locks a new file at the same
path), and a lock taken on a file that was removed meanwhile is let go and
taken again (`_still_named`). An empty lock file is no content: nothing
counts it as a run, lock_holder names nobody from it, and the next process
takes it. filelock is imported on first use only (the CLI's --help imports
this module through train.py).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from .errors import UserError

LOCK = ".train.lock"     # a run folder's lock file (runs.py names it among the run's files)


def lock_run(folder, resume: bool = False):
    """Hold the run folder's OS lock (RUN/.train.lock) for one training process; a filelock.FileLock.

    Created with the folder if needed. The kernel releases the lock when the
    process dies (kill -9 included), so a stale lock cannot block a later run.
    A folder locked by another process is a UserError (one line): two writers
    would clobber each other's checkpoints. Readers (evaluate, generate, plot)
    never take the lock. Release it with `.release()` (Run.close does).
    resume: the folder is a run to continue, so the refusal's advice is to wait (another --out would be a
    new run, not this one's continuation).
    """
    return lock_folder(folder, LOCK, "is being trained by another process",
                       advice="wait for it to end, then resume" if resume else None)


def lock_folder(folder, name: str, busy: str, holder=None, advice: str | None = None):
    """Hold the OS lock folder/name (a filelock.FileLock, taken without waiting) for this process.

    The mechanism of `lock_run`, for any folder that one process at a time may
    write (sweep.lock_sweep uses it too). Created with the folder if needed;
    the kernel releases it when the process dies. The holder writes its pid
    into the lock file (filelock >= 4 opens it without truncating, so a
    refused opener leaves it there) and empties it on release. Held by
    another process: a UserError "FOLDER <busy> (<who> holds FOLDER/name);
    wait for it to end or use another --out" (or `advice` after the semicolon), where who is
    holder(lock path) (default `lock_holder`: "pid 123") when that names the holder, else "it".
    """
    from filelock import Timeout
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)     # an OSError is one line in cli.main (errors.describe_os_error)
    except FileNotFoundError:   # its parents were made or are there: a file system taking no new folders
        above = next(f for f in folder.absolute().parents if f.exists())
        raise UserError(f"cannot create the folder {folder}: {above} takes no new folders (a system file "
                        "system such as /proc or /sys); give --out a folder on a disk") from None
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give --out a folder path")
    existed = (folder / name).exists()
    for _ in range(5):
        lock = _pid_lock_class()(str(folder / name), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            who = (holder or lock_holder)(folder / name) or "it"
            raise UserError(f"{folder} {busy} ({who} holds {folder / name}); "
                            f"{advice or 'wait for it to end or use another --out'}") from None
        except OSError as exc:
            raise UserError(f"cannot lock the folder {folder}: {exc.strerror or exc}; the command writes into "
                            "it, so it must be writable: copy it to a writable place and give the copy, or "
                            "give another --out") from None
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
    lock.created_file = not existed     # (a refused train removes a lock file it made: train._give_up_folder)
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
