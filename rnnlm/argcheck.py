"""Checks of a library function's Python arguments, shared by jacobian.py and probes.py.

Each raises TypeError (not the right kind of value) or ValueError (the right kind, out of range) in one line
that names the function and the argument as the caller gave them ("context_usage: seed must be ...").
"""
from __future__ import annotations

import math

import numpy as np


def is_int(value) -> bool:
    """An integer (Python or numpy), not a bool."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def is_real(value) -> bool:
    """A real number (Python or numpy), not a bool."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


def check_int(value, name: str, where: str, lo: int | None = None) -> int:
    """`value` as an int: TypeError unless it is an integer, ValueError when below `lo`."""
    need = f"an int >= {lo}" if lo is not None else "an int"
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be {need}, got {value!r} ({type(value).__name__})")
    if lo is not None and value < lo:
        raise ValueError(f"{where}: {name} must be {need}, got {value!r}")
    return int(value)


def check_path(value, name: str, where: str, what: str = "a path") -> None:
    """TypeError unless `value` is a path: a str or an os.PathLike (what: the path's meaning, "a run folder")."""
    import os
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{where}: {name} must be {what}, a str or os.PathLike, got {value!r} "
                        f"({type(value).__name__})")


def check_generator(rng, where: str, name: str = "rng", or_none: str | None = None) -> None:
    """TypeError unless `rng` is a numpy Generator (or None, when `or_none` says what None means)."""
    if isinstance(rng, np.random.Generator) or (or_none is not None and rng is None):
        return
    example = f"np.random.default_rng({rng!r})" if is_int(rng) else "np.random.default_rng(0)"
    alt = f", or None ({or_none})" if or_none is not None else ""
    raise TypeError(f"{where}: {name} must be a numpy Generator, e.g. {example}{alt}, got {rng!r} "
                    f"({type(rng).__name__})")


def check_token_ids(tokens, vocab_size: int, where: str, name: str = "tokens",
                    source: str = "the model's vocabulary") -> np.ndarray:
    """`tokens` as a 1-D int64 array of ids in [0, vocab_size); else TypeError (not integers: float ids are
    refused, not truncated) or ValueError (not 1-D, an id outside the vocabulary, whose size `source` names),
    naming the argument."""
    arr = np.asarray(tokens)
    if arr.size == 0 and arr.dtype == np.float64 and not isinstance(tokens, np.ndarray):
        arr = arr.astype(np.int64)      # [] is float64 to numpy; it holds no float id
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.bool_)):
        raise TypeError(f"{where}: {name} must be a 1-D array of integer token ids, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.bool_):
        raise TypeError(f"{where}: {name} must be integer token ids, got dtype {arr.dtype} (ids are not rounded "
                        "or truncated here: convert them with .astype(int) if they are whole numbers)")
    if arr.ndim != 1:
        raise ValueError(f"{where}: {name} must be 1-D (one sequence), got shape {arr.shape}")
    V = int(vocab_size)
    if arr.size and (arr.min() < 0 or arr.max() >= V):
        bad = arr[(arr < 0) | (arr >= V)][0]
        raise ValueError(f"{where}: {name} must be ids in [0, {V - 1}] ({source}), got {int(bad)}")
    return arr.astype(np.int64)


def check_probability(p, name: str, where: str, none_ok: bool = False) -> None:
    """TypeError unless `p` is a real number (or None with none_ok), ValueError unless it is in [0, 1]."""
    if p is None and none_ok:
        return
    if not is_real(p):
        raise TypeError(f"{where}: {name} must be a number in [0, 1]{' or None' if none_ok else ''}, "
                        f"got {p!r} ({type(p).__name__})")
    if math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{where}: {name} must be a number in [0, 1]{' (or None for no data)' if none_ok else ''}, "
                         f"got {p!r}")


def check_alloc(where: str, T, B, E, H, dtype) -> np.dtype:
    """The sizes of a cell's cache allocation (rnn_alloc, lstm_alloc, gru_alloc) checked before NumPy sees them:
    TypeError unless T, B, E, H are integers and dtype a float dtype (the kernels are compiled for float32
    and float64), ValueError when a size is below 1. Returns np.dtype(dtype)."""
    for name, n in (("T", T), ("B", B), ("E", E), ("H", H)):
        check_int(n, name, where, lo=1)
    try:
        dt = None if dtype is None else np.dtype(dtype)     # (np.dtype(None) is float64)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{where}: dtype must be np.float32 or np.float64, got {dtype!r}")
    return dt


def check_kernel_arrays(where: str, dtype, arrays: dict) -> None:
    """A cell kernel's arrays checked before Numba sees them (a wrong dtype is otherwise a 90-line TypingError,
    a wrong shape a reshape error from inside): TypeError for a value that is not a numpy array, ValueError
    for another dtype than `dtype` (the cache's) or another shape. arrays: name -> (array, expected shape)."""
    for name, (a, shape) in arrays.items():
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{where}: {name} must be a numpy array, got {type(a).__name__}")
        if a.dtype != dtype:
            raise ValueError(f"{where}: {name} must be {np.dtype(dtype)} (the cache's dtype), got {a.dtype}: "
                             f"convert it with .astype(np.{np.dtype(dtype)})")
        if a.shape != tuple(shape):
            raise ValueError(f"{where}: {name} must have shape {tuple(shape)}, got {a.shape}")


def kernel_sizes(where: str, x, W_hh, gates: int, cache) -> tuple:
    """(T, B, E, H) of a cell kernel's call from x (T, B, E) and W_hh (gates*H, H), ValueError when either
    has the wrong number of dimensions (TypeError when not an array, or a cache that is no NamedTuple of
    arrays). H is the cache's (its h is (T+1, B, H), allocated for the model), so that a wrong W_hh is the
    array named, not the others measured against it."""
    w_shape = f"({gates}H, H)" if gates > 1 else "(H, H)"
    for name, a, ndim, shape in (("x", x, 3, "(T, B, E)"), ("W_hh", W_hh, 2, w_shape)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{where}: {name} must be a numpy array {shape}, got {type(a).__name__}")
        if a.ndim != ndim:
            raise ValueError(f"{where}: {name} must be {shape}, got shape {a.shape}")
    if min(x.shape) < 1:
        raise ValueError(f"{where}: x must be (T, B, E) with every size at least 1, got shape {x.shape}")
    T, B, H = cache_sizes(where, cache)
    return T, B, x.shape[2], H     # (x of another T or B than the cache's: check_kernel_arrays names x)


def cache_sizes(where: str, cache) -> tuple:
    """(T, B, H) of a cell's cache, from its h (T+1, B, H); TypeError for anything else."""
    h = getattr(cache, "h", None)
    if not isinstance(h, np.ndarray) or h.ndim != 3 or h.shape[0] < 2:
        raise TypeError(f"{where}: cache must be the cell's cache (its alloc(T, B, E, H, dtype)), got "
                        f"{type(cache).__name__}")
    return h.shape[0] - 1, h.shape[1], h.shape[2]


def check_backward_arrays(where: str, cache, gates: int, dx, dweights, weights, dh0, dhs, dh_out,
                          scratch) -> None:
    """A cell's backward kernel's arrays checked before Numba sees them, as check_kernel_arrays does the
    forward's: sizes from the cache its forward filled (T, B, H from cache.h, E from cache.x), every array of
    the cache's dtype. dweights (dW_ih, dW_hh, db_ih, db_hh) and weights (W_ih, W_hh) of `gates` blocks;
    dx None: not written; scratch(T, B, H): name -> (array, shape) of the cell's own buffers. TypeError for a cache
    whose forward has not run (no x) or a value that is not an array, ValueError for a dtype or shape."""
    T, B, H = cache_sizes(where, cache)
    x = getattr(cache, "x", None)
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise TypeError(f"{where}: cache.x is {type(x).__name__}: run the forward kernel on this cache first")
    E, G = x.shape[2], gates * H
    arrays = {} if dx is None else {"dx": (dx, (T, B, E))}
    arrays.update({"dW_ih": (dweights[0], (G, E)), "dW_hh": (dweights[1], (G, H)), "db_ih": (dweights[2], (G,)),
                   "db_hh": (dweights[3], (G,)), "dh0": (dh0, (B, H)), "dhs": (dhs, (T, B, H)),
                   "dh_out": (dh_out, (T, B, H)), "W_ih": (weights[0], (G, E)), "W_hh": (weights[1], (G, H)),
                   **scratch(T, B, H)})
    check_kernel_arrays(where, cache.h.dtype, arrays)
    written = [n for n in arrays if n not in ("dh_out", "W_ih", "W_hh")]
    check_writable(where, {n: arrays[n][0] for n in written})


def check_writable(where: str, arrays: dict) -> None:
    """ValueError for an array a kernel writes its result into that is not C-contiguous (a transposed view, a
    Fortran-order array: the kernel would write into a reshaped copy and leave it unchanged) or is read-only."""
    for name, a in arrays.items():
        if not a.flags.c_contiguous:
            raise ValueError(f"{where}: {name} must be C-contiguous (the kernel writes into it; a view such as a "
                             f"transpose would be written through a copy and left unchanged): pass "
                             f"np.ascontiguousarray({name}) and read the result from that array")
        if not a.flags.writeable:
            raise ValueError(f"{where}: {name} is read-only; the kernel writes into it: pass a writable array")


def check_bounds(where: str, bounds, H: int):
    """The hidden-unit parts of a kernel's step (a Plan's unit_bounds) as an int64 array: 1-D, from 0 to H,
    strictly increasing; ValueError otherwise (units left out would be left uncomputed, a part past H
    reads outside the arrays)."""
    b = np.asarray(bounds)
    if (b.ndim != 1 or len(b) < 2 or not np.issubdtype(b.dtype, np.integer) or b[0] != 0 or b[-1] != H
            or np.any(np.diff(b) <= 0)):
        raise ValueError(f"{where}: bounds must be increasing integer unit boundaries from 0 to H = {H} "
                         f"(paths.unit_bounds(H)), got {b.tolist() if b.ndim == 1 else bounds!r}")
    return b.astype(np.int64)
