"""The vanilla RNN's activations: tanh, relu, sigmoid and scaled tanh.

An activation string ("tanh", "relu", "sigmoid", "tanh:n", "scaled-tanh:a,b")
is parsed once into an `Activation` (kind code + two constants) that the
kernels take as plain arguments. f'(z) lives here and only here: `_dact`
for the kernels, `fprime` (its NumPy twin) for the instruments (omega.py,
the cells' step Jacobians) and `max_fprime` for the Jacobian's bound.

The one thing to know before editing: the backward computes f'(z) from the
*output* h = f(z) (that is all the cache keeps), so every activation here
must have a derivative expressible in h.
"""
from __future__ import annotations

import numpy as np

from ._jit import njit
# The string parser and the kind codes live in config.py (standard library only); re-exported here.
from .config import (KINDS, RELU, SCALED_TANH, SIGMOID, Activation,  # noqa: F401
                     ModelConfigError, parse_activation)
from .vecmath import fsigmoid, ftanh


def apply(z: np.ndarray, act: Activation) -> np.ndarray:
    """f(z) in NumPy (for tools and tests; the kernels inline their own copy)."""
    act = parse_activation(act)
    if act.kind == RELU:
        return np.maximum(z, 0)
    if act.kind == SIGMOID:
        return 1 / (1 + np.exp(-z))
    if act.kind == SCALED_TANH:
        return act.a * np.tanh(act.b * z)
    raise _unknown(act)


def _unknown(act: Activation) -> ValueError:
    """The NumPy functions' error for a kind code without a branch (the kernels have none to spare: a kind
    they lack computes scaled tanh, which tests/test_activations.py catches against `apply`)."""
    return ValueError(f"activation {act.name!r}: kind {act.kind} has no branch here (kinds: {KINDS})")


@njit
def _act_inplace(z, kind, a, b):
    """z[j] = f(z[j]) over a 1-D row; one loop per kind so each vectorizes (see vecmath). Any kind but
    RELU and SIGMOID computes scaled tanh (no error branch in a kernel)."""
    if kind == RELU:
        zero = z.dtype.type(0)
        for j in range(z.shape[0]):
            z[j] = zero if z[j] <= zero else z[j]   # NaN stays NaN (the non-finite guard needs it)
    elif kind == SIGMOID:
        for j in range(z.shape[0]):
            z[j] = fsigmoid(z[j])
    else:
        for j in range(z.shape[0]):
            z[j] = a * ftanh(b * z[j])


@njit
def _dact(h, kind, a, b, one):
    """f'(z) written in terms of h = f(z). Any kind but RELU and SIGMOID is scaled tanh's."""
    if kind == RELU:
        return one if h > 0 else one - one
    if kind == SIGMOID:
        return h * (one - h)
    # h = a tanh(bz)  =>  dh/dz = a b (1 - (h/a)^2)
    t = h / a
    return a * b * (one - t * t)


def fprime(h: np.ndarray, act) -> np.ndarray:
    """f'(z) written in h = f(z), elementwise (the NumPy twin of _dact)."""
    act = parse_activation(act)
    if act.kind == RELU:
        return (h > 0).astype(h.dtype)
    if act.kind == SIGMOID:
        return h * (1 - h)
    if act.kind == SCALED_TANH:
        # h = a tanh(bz)  =>  dh/dz = a b (1 - (h/a)^2)
        t = h / act.a
        return act.a * act.b * (1 - t * t)
    raise _unknown(act)


def max_fprime(act) -> float:
    """max over z of |f'(z)|: 1 (relu), 1/4 (sigmoid), |a b| (a tanh(b z))."""
    act = parse_activation(act)
    if act.kind == RELU:
        return 1.0
    if act.kind == SIGMOID:
        return 0.25
    if act.kind == SCALED_TANH:
        return abs(act.a * act.b)
    raise _unknown(act)


def zero_reason(cell: str | None, lag: int, norm_whh=None) -> str:
    """Why a curve is exactly 0 from `lag` on, in words (the jacobian table's and the plots' note).
    norm_whh: the measurement's meta "norm_Whh" (per layer: a number, or one per gate), when known: every W_hh
    exactly 0 (--recurrent-scale 0) is the reason then, not saturation (tanh's f'(z) is near 1 there)."""
    norms = [v for n in norm_whh for v in (n.values() if isinstance(n, dict) else [n])] \
        if isinstance(norm_whh, (list, tuple)) else []       # (a gated cell's: one per gate, per layer)
    if norms and all(n == 0 for n in norms):
        return (f"exactly 0 from lag {lag}: W_hh is 0 (a recurrent scale of 0), so h_t does not depend on "
                f"h_(t-1) and nothing flows back")
    if cell in ("lstm", "gru"):
        what = "saturated gates and units leave no path (f'(z) = 0)"
    else:
        what = "every unit saturated (f'(z) = 0)"
    if lag == 1:
        return f"exactly 0 from lag 1: {what}, nothing flows back"
    return f"exactly 0 from lag {lag}: at a step within {lag} steps back {what}, nothing flows back past it"
