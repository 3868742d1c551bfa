"""exp, sigmoid and tanh for the kernels (vectorizable in float32, libm in float64), and fmax.

Numba has no vector exp or tanh without Intel's SVML, so np.exp and np.tanh
inside a kernel are one scalar libm call per element (~10-20 ns): the gate
nonlinearities of the recurrence and the exp over the (N, V) logits were the
largest elementwise costs of a step. The float32 versions here are branch-free
arithmetic that LLVM turns into AVX2 code (8 lanes), about 1 ns per element.

Accuracy: exp is Cephes' expf (Cody-Waite range reduction, degree-6
polynomial), within 2 ulp of the correctly rounded float32 result for inputs
above -87 (below that float32 exp is subnormal; the result is clamped to
~1e-38 instead). The sigmoid gives 0 where its result would be subnormal
(FLT_MIN). tanh is Cephes' tanhf: an odd polynomial for |x| < 0.625 (so
small arguments keep their relative accuracy) and 1 - 2/(exp(2|x|) + 1) above.
NaN in gives NaN out (the training loop's non-finite guard depends on it).

float64 arguments (the gradient checks and the Jacobian tests) get np.exp and
np.tanh unchanged: `fexp`, `fsigmoid`, `ftanh` dispatch on the argument type at
compile time, so one kernel source serves both dtypes.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._jit import njit

_LOG2E, _LN2_HI, _LN2_LO = 1.44269504088896341, 0.693359375, -2.12194440e-4
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
_TANH_P = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret an int32 as the float32 with the same bits (no conversion)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return sig, codegen


@intrinsic
def fmax(typingctx, a, b):
    """max(a, b) of two floats of one type as LLVM's maxnum: a NaN operand is ignored.

    Python's max and `a if a > b else b` become compares and branches that LLVM
    does not vectorize as a reduction; maxnum is associative, so a loop
    `m = fmax(m, z)` becomes 8-lane vmaxps (4x faster over a row of logits).
    """
    if not (isinstance(a, types.Float) and a == b):
        return None
    sig = a(a, b)

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fnty = ir.FunctionType(ty, [ty, ty])
        name = "llvm.maxnum.f32" if a == types.float32 else "llvm.maxnum.f64"
        return builder.call(cgutils.get_or_insert_function(builder.module, fnty, name), args)
    return sig, codegen


# The smallest normal float32. A sigmoid result below it (a subnormal) is flushed to
# 0: a CPU computes with subnormal operands in microcode, tens of times slower, and a
# diverging run whose saturated gates gave ~5e-39 instead of 0 crawled (the README's
# "Known problems"). Healthy runs never come near: unchanged bit for bit. expf keeps
# its clamp (~1.2e-38 below -87.3): flushing it too cost 9% of the softmax's exp pass.
FLT_MIN = 1.1754944e-38


@njit(inline="always")
def expf(x):
    """float32 exp (see the module doc); x is clamped to [-87.3, 88.3] first."""
    f = np.float32
    x = min(max(x, f(-87.3)), f(88.3))
    n = np.floor(x * f(_LOG2E) + f(0.5))
    r = x - n * f(_LN2_HI) - n * f(_LN2_LO)
    p = ((((f(_EXP_P[0]) * r + f(_EXP_P[1])) * r + f(_EXP_P[2])) * r
          + f(_EXP_P[3])) * r + f(_EXP_P[4])) * r + f(_EXP_P[5])
    y = p * (r * r) + r + f(1)
    # 2**n built from its exponent bits; n is in [-126, 127] after the clamp
    return y * _float32_from_bits((np.int32(n) + np.int32(127)) << 23)


@njit(inline="always")
def sigmoidf(x):
    """float32 1 / (1 + exp(-x)), a result below FLT_MIN flushed to 0 (x < about -87.3)."""
    f = np.float32
    s = f(1) / (f(1) + expf(-x))
    # times a 0/1 weight, not an if (inlined into a loop, it stays one basic block, as
    # tanhf's blend; a conditional expression there also trips Numba's IR checks);
    # NaN: NaN * 0 is NaN
    return s * f(s >= f(FLT_MIN))


@njit(inline="always")
def tanhf(x):
    """float32 tanh (see the module doc).

    Branch-free (the two formulas are blended by a 0/1 weight, each on a clamped
    argument so neither overflows): inlined into a loop it stays one basic block.
    """
    f = np.float32
    ax = abs(x)
    big = np.copysign(f(1) - f(2) / (expf(f(2) * ax) + f(1)), x)
    xs = min(max(x, f(-0.625)), f(0.625))
    z = xs * xs
    small = ((((f(_TANH_P[0]) * z + f(_TANH_P[1])) * z + f(_TANH_P[2])) * z
              + f(_TANH_P[3])) * z + f(_TANH_P[4])) * z * xs + xs
    w = f(ax < f(0.625))
    return w * small + (f(1) - w) * big


def fexp(x):
    """exp(x): expf for float32, np.exp otherwise (resolved when a kernel compiles)."""
    return np.exp(x)


def ftanh(x):
    """tanh(x): tanhf for float32, np.tanh otherwise."""
    return np.tanh(x)


def fsigmoid(x):
    """1 / (1 + exp(-x)) with fexp."""
    return 1 / (1 + np.exp(-x))


@overload(fexp, inline="always")
def _fexp(x):
    if x == types.float32:
        return lambda x: expf(x)
    return lambda x: np.exp(x)


@overload(ftanh, inline="always")
def _ftanh(x):
    if x == types.float32:
        return lambda x: tanhf(x)
    return lambda x: np.tanh(x)


@overload(fsigmoid, inline="always")
def _fsigmoid(x):
    if x == types.float32:
        return lambda x: sigmoidf(x)
    return lambda x: 1.0 / (1.0 + np.exp(-x))
