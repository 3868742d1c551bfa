"""Where the caches live, decided in one place: compiled kernels (Numba) and tokenized corpora.

Both caches are optional: they only make a second start faster. `cache_root()`
takes the first usable folder of

    1. $RNNLM_CACHE
    2. the per-user cache: $XDG_CACHE_HOME/rnnlm, else ~/.cache/rnnlm
       (%LOCALAPPDATA%\\rnnlm on Windows); only if that home folder exists
    3. <temp folder>/rnnlm-cache-<user>, only if this user's own (`not_private`)
    4. none: nothing is cached, with one warning (everything works, slower)

"usable" = the folder can be created and a file written in it, so a
read-only install, a missing or read-only HOME and a full disk all fall
through to the next one. The temp folder is shared by every user, and
Numba's cache files are pickles that Numba loads and runs: there the folder
counts only if it is this user's own and nobody else can write to it (not
a link, no group or world write), else another user could plant code in
it. A $RNNLM_CACHE that cannot be used is said in one warning, naming the
folder used instead.

Compiled kernels go to `<root>/numba/<kernel_sources_hash()>/`: Numba checks
only the source file of each kernel, so a kernel that inlines vecmath.py
would keep running the old machine code after an update that changed
vecmath.py alone. Keying the folder on a hash of *every* module holding
Numba code makes any such edit start a fresh cache. `$NUMBA_CACHE_DIR`, when
set, replaces `<root>/numba` (the hash folder still goes under it).

The one thing to know before editing: _jit.py calls `numba_cache_dir()` once
at import, before the first kernel is decorated, so this module must stay
standard library only and fast.
"""
from __future__ import annotations

import functools
import hashlib
import os
import secrets
import stat
import sys
import tempfile
import warnings
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# a module holds Numba code when its text mentions one of these
_NUMBA_MARKERS = ("njit", "numba")


def _user_cache() -> Path | None:
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA")
        return Path(base) / "rnnlm" if base else None
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "rnnlm"
    try:
        home = Path.home()
    except (RuntimeError, KeyError, OSError):     # no HOME and no password entry
        return None
    return home / ".cache" / "rnnlm" if home.is_dir() else None   # never create a missing home


def _temp_cache() -> Path | None:
    try:
        user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
        return Path(tempfile.gettempdir()) / f"rnnlm-cache-{user}"
    except (OSError, FileNotFoundError):
        return None


def candidates() -> list[tuple[Path, str]]:
    """(folder, where it comes from) in the order cache_root tries them."""
    found = []
    env = os.environ.get("RNNLM_CACHE")
    if env:
        found.append((Path(env).expanduser(), "$RNNLM_CACHE"))
    for folder, label in ((_user_cache(), "the per-user cache"), (_temp_cache(), "the temp folder")):
        if folder is not None:
            found.append((folder, label))
    return found


def usable(folder: Path, private: bool = False) -> bool:
    """Whether `folder` can be created and written (a probe file is made and removed); with `private`
    (a folder in the shared temp folder), also whether it is this user's own: see `not_private`."""
    return why_unusable(folder, private) is None


def why_unusable(folder: Path, private: bool = False) -> str | None:
    """None when `folder` is usable (see `usable`), else why not, in a few words."""
    try:
        if folder.exists() and not folder.is_dir():     # (mkdir would say "File exists": /dev/null, a file)
            return "it is not a folder"
        if private and (why := _swappable(folder)):     # (before it is made: nothing is left behind)
            return why
        folder.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
        if private and (why := not_private(folder)):
            return why
        probe = folder / f".probe-{os.getpid()}-{secrets.token_hex(4)}"   # never renamed: not a temp file
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.remove(probe)
        return None
    except OSError as exc:
        return exc.strerror or str(exc)


def not_private(folder: Path) -> str | None:
    """Why another user could write into `folder` (a symbolic link, another owner, group or world
    write), or swap it for one of theirs (the folder it is in is writable by others without the sticky
    bit, which /tmp has: then anyone may rename it), or None when only its owner, this user, can. Always
    None where there are no user ids (Windows: its temp folder is per user)."""
    if not hasattr(os, "getuid"):
        return None
    st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if st.st_uid != os.getuid():
        return f"it belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"other users may write to it: make it private (chmod 700 {folder}) or remove it"
    return _swappable(folder)


def _swappable(folder: Path) -> str | None:
    """Why another user could rename `folder` and put one of theirs in its place (the folder it is in is
    writable by others without the sticky bit, which /tmp has), or None."""
    if not hasattr(os, "getuid"):
        return None
    try:
        parent = os.stat(folder.parent)
    except OSError:
        return None     # (mkdir says why)
    if parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX:
        return (f"the folder it is in, {folder.parent}, lets other users rename it (writable by them, without "
                f"the sticky bit /tmp has: chmod +t {folder.parent}, or set TMPDIR to a folder of your own)")
    return None


_warned = set()


def _warn_once(key, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, stacklevel=3)


def cache_root() -> Path | None:
    """The first usable folder of `candidates()` (the temp folder's only if private: `not_private`), or
    None when none is. One warning per process when none is, and when $RNNLM_CACHE is set but unusable."""
    tried = candidates()
    reasons = []
    for folder, label in tried:
        why = why_unusable(folder, private=label == "the temp folder")
        if why is None:
            if reasons and reasons[0][1] == "$RNNLM_CACHE":
                _warn_once(("env", str(reasons[0][0]), str(folder)),
                           f"RNNLM_CACHE={reasons[0][0]} cannot be used as a cache ({reasons[0][2]}); caching in "
                           f"{folder} instead. Set RNNLM_CACHE to a folder you can write to, or unset it")
            return folder
        reasons.append((folder, label, why))
    names = ", ".join(f"{label} {folder}: {why}" for folder, label, why in reasons) or "none configured"
    _warn_once(tuple(str(f) for f, _ in tried),
               f"no usable cache folder ({names}): compiled kernels and tokenized corpora are "
               f"not cached, so each start is slower; set RNNLM_CACHE to a writable folder")
    return None


def numba_modules(package: Path = PACKAGE) -> list[Path]:
    """The package's modules that hold Numba code (the ones whose edits must invalidate the cache)."""
    return sorted(p for p in package.glob("*.py")
                  if any(m in p.read_text(encoding="utf-8", errors="replace") for m in _NUMBA_MARKERS))


def kernel_sources_hash(package: Path = PACKAGE) -> str:
    """16 hex digits of SHA-256 over (name, bytes) of every Numba module, the Python and Numba versions."""
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    try:
        from importlib.metadata import version
        digest.update(version("numba").encode())
    except Exception:  # noqa: BLE001 - metadata is optional; Numba's own index checks its version too
        pass
    for path in numba_modules(package):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def numba_cache_dir() -> Path | None:
    """<NUMBA_CACHE_DIR or cache_root()/numba>/<kernel_sources_hash()>, created; None = compile uncached."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        base = Path(env).expanduser()
    else:
        root = cache_root()
        if root is None:
            return None
        base = root / "numba"
    folder = base / kernel_sources_hash()
    return folder if usable(folder) else None


def tokens_cache_dir() -> Path | None:
    """<cache_root()>/tokens, or None when nothing can be cached."""
    root = cache_root()
    return None if root is None else root / "tokens"


def damaged_cache_line(exc: BaseException) -> str | None:
    """The one line for an error raised while Numba read a compiled kernel from its cache (a cache file cut
    short or overwritten: pickle's "data was truncated", an EOFError), else None. Deleting the folder is
    safe: the kernels compile again at the next start. (Here, not in the CLI: a module that names the
    compiler is one of numba_modules, whose edits start a fresh cache.)"""
    # (by the class's name: the package imports no pickle module, tests/test_checkpoint_fuzz.py)
    if not {c.__name__ for c in type(exc).__mro__} & {"UnpicklingError", "EOFError", "ValueError"}:
        return None
    tb, in_cache = exc.__traceback__, False
    while tb is not None:
        in_cache |= tb.tb_frame.f_code.co_filename.replace("\\", "/").endswith("numba/core/caching.py")
        tb = tb.tb_next
    if not in_cache:
        return None
    return (f"the compiled-kernel cache is damaged ({type(exc).__name__}: {exc}); delete {numba_cache_dir()} "
            "(the kernels compile again at the next start, in about a minute) and run the command again")
