"""Numba decorators, in one place.

Every kernel is compiled with `cache=True` so that a second run starts fast.
fastmath is limited to flags that keep NaN and inf meaningful: the training
loop's non-finite guard depends on them (never `nnan`/`ninf`).
error_model="numpy": a float division by zero gives inf/NaN as in NumPy
instead of raising, which also removes the per-element zero test that kept
LLVM from vectorizing loops such as the gates' 1 / (1 + exp(-a)).
Caveat: the cache keys a kernel on its own file only; after editing a module
whose kernels others call (vecmath.py, ...), delete rnnlm/__pycache__.
"""
import numba

FASTMATH = {"contract", "arcp"}
_OPTIONS = dict(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")


def njit(fn=None, *, reassoc=False, **extra):
    """`@njit`, `@njit(inline="always")` or `@njit(reassoc=True)`: numba.njit with the
    project's options (reassoc: as for njit_parallel)."""
    options = dict(_OPTIONS, fastmath=FASTMATH | {"reassoc"}) if reassoc else _OPTIONS
    if fn is None:
        return lambda f: numba.njit(**options, **extra)(f)
    return numba.njit(**options)(fn)


def njit_parallel(fn=None, *, reassoc=False):
    """For top-level kernels called from Python only (see STYLE.md).

    reassoc=True also lets LLVM reorder floating-point sums (so that a dot
    product vectorizes); results then depend on the vector width, not on NaN/inf.
    """
    options = dict(_OPTIONS, fastmath=FASTMATH | {"reassoc"}) if reassoc else _OPTIONS
    if fn is None:
        return lambda f: numba.njit(**options, parallel=True)(f)
    return numba.njit(**options, parallel=True)(fn)
