"""BLAS thread counts: our products run on single-threaded BLAS.

Three OpenBLAS libraries live in this process. NumPy's runs the products called
from Python; SciPy's is the one Numba's `np.dot` calls inside `@njit` kernels;
the `scipy-openblas32` wheel's runs the kernels' float32 products (gemm.py).

The one thing to know before editing: every product of a training step runs
either in a recurrence (B = 32 rows per step, where a thread pool costs more
than it gives) or as row blocks on Numba's threads (pblas.py, the output
layer), so all three libraries must be on one thread while our kernels run:
OpenBLAS's own workers would otherwise compete with Numba's for the cores.
`one_blas_thread()` sets them to one thread and restores them afterwards, so
a user's own NumPy code keeps its setting. Without OpenBLAS (MKL, another
platform) every function here does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes

_SETTERS = ("scipy_openblas_set_num_threads", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads", "openblas_get_num_threads")
_SETTERS64 = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS64 = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")


def _loaded_libraries():
    """Paths of the shared libraries mapped into this process (Linux only; [] elsewhere)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if ".so" in line}
    except OSError:
        return []
    return sorted(paths)


def _bind(path_part, setters, getters):
    """(set, get) ctypes functions of the first loaded library whose path contains path_part."""
    for path in _loaded_libraries():
        name = path.rsplit("/", 1)[-1]
        if path_part not in name:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        set_fn = next((getattr(lib, s) for s in setters if hasattr(lib, s)), None)
        get_fn = next((getattr(lib, s) for s in getters if hasattr(lib, s)), None)
        if set_fn is not None and get_fn is not None:
            set_fn.argtypes, set_fn.restype, get_fn.restype = [ctypes.c_int], None, ctypes.c_int
            return set_fn, get_fn
    return None


_scipy = None
_numpy = None
_gemm = None
_bound = False


def _bind_all():
    global _scipy, _numpy, _gemm, _bound
    if _bound:
        return
    from . import gemm   # loaded privately by gemm.py: not found by path here
    _gemm = (gemm.LIBRARY.scipy_openblas_set_num_threads, gemm.LIBRARY.scipy_openblas_get_num_threads)
    import numpy  # noqa: F401  (load both libraries before reading the maps)
    import scipy.linalg.cython_blas  # noqa: F401
    libs = _loaded_libraries()
    scipy_part = next((p.rsplit("/", 1)[-1] for p in libs
                       if "openblas" in p and "scipy.libs" in p), None)
    numpy_part = next((p.rsplit("/", 1)[-1] for p in libs
                       if "openblas" in p and "numpy.libs" in p), None)
    _scipy = _bind(scipy_part, _SETTERS, _GETTERS) if scipy_part else None
    _numpy = _bind(numpy_part, _SETTERS64 + _SETTERS, _GETTERS64 + _GETTERS) if numpy_part else None
    if _numpy is not None and _scipy is not None and _numpy[0] is _scipy[0]:
        _numpy = None
    _bound = True


@contextlib.contextmanager
def one_blas_thread(gemm_threads: int = 1):
    """Run the block (or, as a decorator, the function) with the OpenBLAS libraries on one thread.

    gemm_threads: the thread count of gemm.py's library instead (the output layer's
    products as single calls on all threads, paths.OUTPUT_BLAS_MIN_THREADS).
    """
    _bind_all()
    libs = [(lib, 1) for lib in (_numpy, _scipy) if lib is not None] + [(_gemm, max(1, int(gemm_threads)))]
    before = [get_fn() for (_, get_fn), _ in libs]
    for ((set_fn, _), want), n in zip(libs, before):
        if n != want:
            set_fn(want)
    try:
        yield
    finally:
        for ((set_fn, _), want), n in zip(libs, before):
            if n != want:
                set_fn(n)


def set_numpy_threads(n: int) -> None:
    """Thread count of NumPy's OpenBLAS (the big products); the bench matches PyTorch's."""
    _bind_all()
    if _numpy is not None:
        _numpy[0](int(n))


def blas_threads() -> dict:
    """Current thread counts, for the bench's machine description."""
    _bind_all()
    return {"numpy": _numpy[1]() if _numpy else None, "scipy (numba np.dot)": _scipy[1]() if _scipy else None,
            "scipy-openblas32 (gemm)": _gemm[1]()}
