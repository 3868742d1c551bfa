"""The float32 exp and sigmoid of the kernels (vecmath.py): accuracy, NaN, and no subnormal results."""
import numpy as np

from rnnlm._jit import njit
from rnnlm.vecmath import FLT_MIN, fexp, fsigmoid


@njit
def _apply(x, which):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = fexp(x[i]) if which == 0 else fsigmoid(x[i])
    return out


def test_expf_within_2_ulp_above_the_subnormal_range_and_clamped_below():
    x = np.linspace(-87.29, 88.2, 200001).astype(np.float32)
    got = _apply(x, 0)
    ref = np.exp(x.astype(np.float64)).astype(np.float32)
    ulp = np.abs(got.view(np.int32).astype(np.int64) - ref.view(np.int32).astype(np.int64))
    assert ulp.max() <= 2
    low = _apply(np.array([-87.31, -90.0, -103.0, -1e30, -np.inf], np.float32), 0)
    assert np.all(low == low[0]) and FLT_MIN <= low[0] < 1.3e-38    # the clamp: never subnormal
    assert np.isnan(_apply(np.array([np.nan], np.float32), 0)[0])


def test_sigmoid_is_never_subnormal_and_keeps_nan():
    x = np.concatenate([np.linspace(-120, 120, 24001), [-np.inf, np.inf]]).astype(np.float32)
    s = _apply(x, 1)
    assert not np.any((s != 0) & (np.abs(s) < FLT_MIN))      # saturated gates give exactly 0
    assert s[0] == 0 and s[-1] == 1 and s[-2] == 0
    mid = np.abs(x) < 80
    ref = 1 / (1 + np.exp(-x[mid].astype(np.float64)))
    np.testing.assert_allclose(s[mid], ref, rtol=3e-7, atol=1e-37)
    assert np.isnan(_apply(np.array([np.nan], np.float32), 1)[0])
    # float64 (the gradient checks) keeps np.exp: subnormal results stay
    assert _apply(np.array([-720.0]), 0)[0] == np.exp(-720.0)
