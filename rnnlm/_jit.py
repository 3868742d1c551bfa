"""Numba decorators, in one place.

Every kernel is compiled with `cache=True` so that a second run starts fast.
fastmath is limited to flags that keep NaN and inf meaningful: the training
loop's non-finite guard depends on them (never `nnan`/`ninf`).
"""
import numba

FASTMATH = {"contract", "arcp"}

njit = numba.njit(cache=True, fastmath=FASTMATH, nogil=True)


def njit_parallel(fn):
    """For top-level kernels called from Python only (see STYLE.md)."""
    return numba.njit(cache=True, fastmath=FASTMATH, nogil=True, parallel=True)(fn)
