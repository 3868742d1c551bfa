"""Atomic file writes: the one place that writes a temporary file and renames it.

Every file the package writes for later reading (checkpoints, config.json,
metrics kept after a resume, token caches, corpora, instrument JSON) goes
through `atomic_write`: a temporary file in the same folder (so that the
rename stays on one file system), written, flushed, fsync'ed, then
`os.replace`d onto the target. A reader sees the old file or the new one,
never half of one; a crash or Ctrl-C mid-write leaves the old file and no
temporary file behind.

The one thing to know before editing: nothing may run between creating the
temporary file and entering the `try` that removes it. mkstemp only tells
the file's name once it has created it, and a KeyboardInterrupt can arrive
in between, so the name gets a random tag chosen before the `try`, and the
clean-up removes whatever carries that tag.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import tempfile
from pathlib import Path


def atomic_write(path, write_fn, *, suffix: str = ".tmp") -> None:
    """Call write_fn(f) on a binary file beside `path`, then put that file at `path` atomically.

    The temporary file is `.<name>.<tag>.<random><suffix>` in path's folder;
    it is removed if write_fn (or anything after it) raises, KeyboardInterrupt
    included, and the previous file at `path`, if any, is left as it was.
    The new file gets the mode a plain open() would give it (0666 less the
    umask), not mkstemp's 0600. An OSError that names no file (ENOSPC while
    writing) or the temporary one (no such folder, no permission) is re-raised
    naming `path`, so the CLI's one line says where in the user's words.
    """
    path = _target(Path(path))
    folder = path.parent
    prefix = f".{path.name}.{secrets.token_hex(4)}."
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        _remove_tagged(folder, prefix, suffix)
        if isinstance(exc, OSError) and exc.errno is not None and (
                exc.filename is None or os.path.basename(str(exc.filename)).startswith(prefix)):
            # a write into the open file (disk full, ...) names no file, and creating or renaming the
            # temporary one names that: say the file the caller asked for
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from None
        raise


def _target(path: Path) -> Path:
    """Where atomic_write puts the file: through a symbolic link to its target (as open() writes), so that
    the link stays a link; an OSError when `path` is there but is not a regular file (a device such as
    /dev/full or /dev/null, a FIFO, a socket, a folder), which a rename would replace (run as root, a
    device file)."""
    if path.is_symlink():
        try:
            path = Path(os.path.realpath(path, strict=True))
        except FileNotFoundError:       # a dangling link: its target is created, as open() would
            path = Path(os.path.realpath(path))
        except OSError as exc:          # a loop of links (ELOOP): nothing to write through to
            raise OSError(exc.errno or errno.ELOOP, "it is a loop of symbolic links", str(path)) from None
    if path.exists() and not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "not a regular file (a device, a FIFO or a socket)"
        raise OSError(errno.EINVAL, f"it is {what}", str(path))
    return path


def _remove_tagged(folder: Path, prefix: str, suffix: str) -> None:
    """Remove this call's temporary file, found by its tag (its name may never have been returned)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(suffix):
            try:
                os.remove(folder / name)
            except OSError:
                pass


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (no newline translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path, obj) -> None:
    """Pretty JSON (indent 2, UTF-8 as is, a final newline), atomically (config.json, vocab.json)."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def check_writable(path, advice: str = "give --out FILE.json in a writable folder") -> None:
    """UserError (one line) when the file `path` cannot be written because its folder (or, not there yet,
    the nearest folder above it, where it would be created) is not writable: a read-only run folder.
    For the commands that measure for minutes before they write (jacobian, probe): checked first, so that
    the refusal comes at once, not after the measurement. So are a path that is there but is not a
    regular file (a folder, a device such as /dev/full, a FIFO: `_target`) and a path through a file (a
    file where a folder of the path would be). A full disk is left to the write itself, which says it in
    one line too."""
    from .errors import UserError
    try:
        _target(Path(path))
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}; {advice}") from None
    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        if folder.is_symlink():     # a link to nothing (a disk not mounted): no folder can be made through it
            raise UserError(f"cannot write {path}: {folder} is a link to {os.readlink(folder)}, which is not "
                            f"there; {advice}")
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise UserError(f"cannot write {path}: {folder} is a file, not a folder; {advice}")
    if folder.is_dir() and not os.access(folder, os.W_OK):
        raise UserError(f"cannot write {path}: the folder {folder} is not writable; {advice}")
    if folder.is_dir():
        _try_creating(path, folder, advice)


def _try_creating(path, folder: Path, advice: str) -> None:
    """check_writable's last check: create (and remove at once) a file in `folder`, or a folder where
    `path`'s own folder is still to be made, as the write will. os.access says yes where creating says
    no: a pseudo file system (/proc, /sys) or a read-only mount, run as root."""
    from .errors import UserError
    make_file = folder == Path(path).absolute().parent
    try:
        if make_file:
            fd, trial = tempfile.mkstemp(dir=folder, prefix=".rnnlm-write-check.", suffix=".tmp")
            os.close(fd)
            os.remove(trial)
        else:
            os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".rnnlm-write-check."))
    except OSError as exc:
        what = "new files" if make_file else "new folders"
        raise UserError(f"cannot write {path}: the folder {folder} does not take {what} "
                        f"({exc.strerror or exc}); {advice}") from None


def fmt_bytes(n) -> str:
    """A size in bytes for people: '1.5 GiB', '3,072.0 PiB' (grouped beyond the largest unit), '512 bytes'."""
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{int(n):,} bytes"


def first_new_folder(folder) -> Path | None:
    """The outermost of `folder` and its parents that does not exist yet (None: `folder` exists): what
    `remove_new_folders` may remove again after a command that created it wrote nothing."""
    new, p = None, Path(folder).absolute()
    while not p.exists() and p != p.parent:
        new, p = p, p.parent
    return new


def remove_new_folders(folder, new: Path | None) -> None:
    """Remove `folder` and its parents up to `new` (first_new_folder's, taken before they were created),
    each only if it is empty; stops quietly at the first that is not (or cannot be removed)."""
    if new is None:
        return
    p = Path(folder).absolute()
    try:
        while True:
            p.rmdir()           # only if empty
            if p == new:
                break
            p = p.parent
    except OSError:
        pass


def _file_state(path: Path):
    """What tells a file's versions apart here: (inode, modification time in ns, size), None when absent
    (atomic_write's rename gives the new file another inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class _Output:
    """What stop_says_what_is_kept yields: `watch(path)` names the file the command will write, once known."""

    def __init__(self):
        self.path = None
        self.before = None
        self.new = None

    def watch(self, path) -> None:
        """The command will write `path` (atomically): its state now, and the folders it would create."""
        self.path = Path(path)
        self.before = _file_state(self.path)
        self.new = first_new_folder(self.path.parent)

    def line(self, exc: BaseException, what: str) -> str:
        """The one line of a stop (exc) of the command measuring `what`: what was written and what was kept."""
        from .errors import Terminated
        word = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        if self.path is None:
            return f"{word}: {what} stopped before it was written; nothing was written"
        after = _file_state(self.path)
        if after is not None and after != self.before:
            return f"{word} after {what} was written: {self.path} holds it whole"
        remove_new_folders(self.path.parent, self.new)     # (created for the write that did not come)
        if self.before is not None:
            return (f"{word}: {what} stopped before it was written; {self.path} is unchanged (it holds the "
                    f"earlier result) and nothing else was written")
        return f"{word}: {what} stopped before it was written; nothing was written ({self.path} was not created)"


@contextlib.contextmanager
def stop_says_what_is_kept(what: str):
    """For a command that measures for minutes, then writes one file atomically (jacobian, probe): a Ctrl-C
    (KeyboardInterrupt) or SIGTERM (errors.Terminated) in the block gets `exc.line`, the one line the CLI
    prints for it (then exit 130 or 143), saying what was written and what was kept, e.g. "interrupted: the
    Jacobian measurement stopped before it was written; nothing was written (runs/x/jacobian.json was not
    created)". Whether the file was written is read from the file itself (the rename may have happened just
    before the signal), and folders made for a write that did not come are removed. Yields an object whose
    `watch(path)` names the file, once it is known; a stop before that says nothing was written."""
    out = _Output()
    try:
        yield out
    except KeyboardInterrupt as exc:
        if getattr(exc, "line", None) is None:
            exc.line = out.line(exc, what)
        raise
