"""Numba's threading layer, chosen when the package is imported (before any parallel kernel runs).

`tbb` where a TBB runtime Numba accepts (TBB_INTERFACE_VERSION >= 12060, TBB
2021.6) loads, else `workqueue`, unless $NUMBA_THREADING_LAYER says otherwise.
GNU OpenMP (Numba's default where it is found) makes a process that has run a
parallel kernel unsafe to fork: a fork-based multiprocessing pool then dies
("fork() called from a process already using GNU OpenMP") or hangs. TBB is
fork-safe and thread-safe and, on this project's 2-core machine, as fast as
OpenMP; workqueue is fork-safe but up to a third slower on small models, and
two Python threads must not run its parallel kernels at the same time (see
ARCHITECTURE.md for the measurement).

The one thing to know before editing: the `tbb` wheel (a dependency on the
platforms it has wheels for) puts libtbb.so.12 in the environment's lib/
folder (a venv's `.venv/lib`), which the dynamic loader does not search, and
Numba's TBB pool has no search path of its own: it finds the library only if
it is already loaded. So the library is loaded here, by its path, in every
process that imports the package, the ones that inherit the choice through
the environment too (a bench worker, a sweep's or a demo's Dask workers);
otherwise every parallel kernel raised "No threading layer could be loaded".
This module imports no Numba (`import rnnlm` stays quick): the choice goes
through the environment, which Numba reads when it starts its threads.
"""
import os
import sys
from pathlib import Path

_TBB_LIBRARY = {"linux": "libtbb.so.12", "win32": "tbb12.dll", "darwin": "libtbb.12.dylib"}
# the oldest TBB runtime Numba's pool accepts (numba.np.ufunc.parallel._check_tbb_version_compatible)
_TBB_INTERFACE_MIN = 12060
_loaded = []        # the TBB library once loaded (ctypes.CDLL), kept so that it is loaded once per process


def _candidates(name: str) -> list:
    """Where a pip install puts the tbb wheel's library: the environment's lib/ (a venv, or the Python's own
    prefix) and the user scheme's (pip install --user)."""
    import site
    places = [Path(sys.prefix) / "lib", Path(site.getuserbase()) / "lib"]
    return [p / name for p in places if (p / name).is_file()]


def _wheel_files(name: str) -> list:
    """The tbb distribution's own record of its library (any install scheme: --target, --prefix); slower
    (it reads the installed packages' metadata), so only where the usual places hold none."""
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        files = distribution("tbb").files or ()
    except PackageNotFoundError:
        return []
    return [Path(f.locate()) for f in files if f.name == name]


def load_tbb():
    """The TBB runtime loaded into this process (a ctypes.CDLL, loaded once), or None when none loads: first
    where the loader looks (a system TBB, $LD_LIBRARY_PATH, a conda environment), then the tbb wheel's own
    file by its path, with RTLD_GLOBAL, so that Numba's `CDLL("libtbb.so.12")` finds it afterwards (the
    loader matches an already loaded library by its soname)."""
    import ctypes
    if _loaded:
        return _loaded[0]
    name = _TBB_LIBRARY.get(sys.platform)
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        lib = None
        for path in _candidates(name) or _wheel_files(name):
            try:
                lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
                break
            except OSError:
                continue
    if lib is not None:
        _loaded.append(lib)
    return lib


def fork_safe_layer() -> str:
    """'tbb' when a TBB runtime Numba accepts loads (`load_tbb`), else 'workqueue'."""
    import ctypes
    lib = load_tbb()
    if lib is None:
        return "workqueue"
    try:
        version = lib.TBB_runtime_interface_version
        version.argtypes, version.restype = [], ctypes.c_int
        return "tbb" if version() >= _TBB_INTERFACE_MIN else "workqueue"
    except AttributeError:      # (a library of that name without the call: not a TBB Numba can use)
        return "workqueue"


def choose() -> str:
    """Set $NUMBA_THREADING_LAYER (and Numba's config, when Numba is imported already) to the fork-safe
    layer, unless the environment names one; returns the layer. A process that inherits `tbb` loads the
    library all the same (see the module docstring)."""
    layer = os.environ.get("NUMBA_THREADING_LAYER")
    if not layer:
        layer = fork_safe_layer()
        os.environ["NUMBA_THREADING_LAYER"] = layer     # Numba re-reads its config from it before compiling
    elif layer.strip().lower() in ("tbb", "safe", "threadsafe"):
        load_tbb()
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:                        # and now, for kernels loaded from the cache
        numba_config.THREADING_LAYER = layer
    return layer


THREADING_LAYER = choose()
