"""A recurrence's steps shared by hidden unit inside one parallel region: parts claimed from counters.

Legend: T = BPTT steps, P = parts of a step (paths.unit_bounds: one per thread).

A step split by hidden unit (lstm.py, gru.py) needs every part of step t done
before any part of step t+1 starts. One parallel region per step gives that
barrier, but a region costs 10-20 µs under Numba's TBB layer here, about 70 µs
when another process wants the cores (a few µs under OpenMP; BENCHMARKS.md,
round 3), paid 2T times per window. Here the
walk over all T steps runs inside one region instead (`walk`): each of the P workers
walks the steps and, at step t, claims the step's parts one at a time from a
shared counter (`claim`), computes each part it got and counts it done
(`done`), then waits until all P parts of step t are done (`wait`) before
going on to step t+1.

The one thing to know before editing: a worker waits only for parts that
another worker has already claimed and is computing, never for a worker to
arrive. So the region never deadlocks, whichever threads the layer runs the
workers on: TBB may run two workers one after the other on one thread (the
first then does every part of every step and the second finds nothing left),
or start a worker late (it joins at the step the others have reached). Each
part's arithmetic is the same whichever thread does it, so the results are
the same bits as one region per step.

The counters are int64 array entries changed only through LLVM atomics
(sequentially consistent), which also order each part's ordinary stores
(its slice of h[t+1], ...) before its `done` and after the waiter's load:
what a part wrote is visible to every part of the next step.
Source: the LLVM Language Reference, "atomicrmw" and "load atomic"
(https://llvm.org/docs/LangRef.html#atomicrmw-instruction).
A waiting worker spins a little, then yields its CPU between reads (SPINS).
"""
from __future__ import annotations

import ctypes
import os

import llvmlite.binding as llvm
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import njit

# A waiting worker spins this many reads of the counter, then gives up its CPU
# between reads (sched_yield / SwitchToThread): when the machine has more busy
# threads than cores, the worker it waits for may be the one not running.
SPINS = 256
YIELD_SYMBOL = "rnnlm_os_yield"


def _yield_address() -> int:
    """Address of the OS call that gives up the CPU: sched_yield (POSIX) or SwitchToThread (Windows)."""
    try:
        fn = ctypes.WinDLL("kernel32").SwitchToThread if os.name == "nt" else ctypes.CDLL(None).sched_yield
        return ctypes.cast(fn, ctypes.c_void_p).value
    except (OSError, AttributeError) as e:
        raise ImportError(f"rnnlm needs sched_yield (or SwitchToThread on Windows) from the C library: {e}") from e


llvm.add_symbol(YIELD_SYMBOL, _yield_address())
_os_yield = types.ExternalFunction(YIELD_SYMBOL, types.intc())


@intrinsic
def _fetch_add(typingctx, counters, i, j, value):
    """counters[i, j] += value, atomically; returns the value before (int64)."""
    if not (isinstance(counters, types.Array) and counters.dtype == types.int64 and counters.ndim == 2):
        return None
    sig = types.int64(counters, types.intp, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]])
        return builder.atomic_rmw("add", ptr, args[3], "seq_cst")
    return sig, codegen


@intrinsic
def _load(typingctx, counters, i, j):
    """counters[i, j], read atomically (int64)."""
    if not (isinstance(counters, types.Array) and counters.dtype == types.int64 and counters.ndim == 2):
        return None
    sig = types.int64(counters, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]])
        return builder.load_atomic(ptr, "seq_cst", 8)
    return sig, codegen


@njit(inline="always")
def counters(T):
    """Fresh counters for a walk of T steps: (T, 2) int64 zeros ([t, 0] claimed, [t, 1] done)."""
    return np.zeros((T, 2), np.int64)


@njit(inline="always")
def claim(counters, t):
    """The next unclaimed part of step t (>= P once all are claimed)."""
    return _fetch_add(counters, t, 0, 1)


@njit(inline="always")
def done(counters, t):
    """Count one part of step t done (after its stores)."""
    _fetch_add(counters, t, 1, 1)


@njit(inline="always")
def wait(counters, t, parts):
    """Return once all `parts` parts of step t are done (spinning SPINS reads, then yielding between reads)."""
    spins = 0
    while _load(counters, t, 1) < parts:
        spins += 1
        if spins > SPINS:
            _os_yield()


@njit(inline="always")
def walk(count, bounds, reverse, part, args):
    """One worker's walk over all T steps (T = len(count)), called once per worker inside
    the parallel region: at each step it claims parts, calls part(t, u0, u1, *args) for
    each (units bounds[p]..bounds[p+1]), counts it done, then waits for the step's
    other parts. reverse walks t = T-1 .. 0 (BPTT). `part` is an @njit function."""
    T, P = count.shape[0], len(bounds) - 1
    for i in range(T):
        t = T - 1 - i if reverse else i
        p = claim(count, t)
        while p < P:
            part(t, bounds[p], bounds[p + 1], *args)
            done(count, t)
            p = claim(count, t)
        wait(count, t, P)
