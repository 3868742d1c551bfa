"""The fused cross-entropy's float32 path (polynomial exp) against the float64 one (np.exp)."""
import numpy as np
import pytest

from rnnlm import layers


def _case(seed=0, N=40, V=103):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, V)) * 8   # exp arguments down to about -100: clamp range too
    return logits, rng.standard_normal(V), rng.integers(0, V, N)


def test_float32_xent_matches_float64():
    logits, bias, tgt = _case()
    l64 = logits.copy()
    loss64, db64 = layers.xent_forward_backward(l64, np.empty((layers.XENT_CHUNKS, 103)), bias, tgt)
    l32 = logits.astype(np.float32)
    loss32, db32 = layers.xent_forward_backward(l32, np.empty((layers.XENT_CHUNKS, 103), np.float32),
                                                bias.astype(np.float32), tgt)
    assert loss32 == pytest.approx(loss64, rel=1e-6)
    np.testing.assert_allclose(l32, l64, rtol=1e-5, atol=1e-9)     # dlogits
    np.testing.assert_allclose(db32, db64, rtol=1e-5, atol=1e-8)
    assert layers.xent_forward(logits.astype(np.float32), bias.astype(np.float32), tgt) == pytest.approx(loss64, rel=1e-6)


def test_float32_xent_propagates_nan():
    logits, bias, tgt = _case(1)
    logits[3, 50] = np.nan
    loss = layers.xent_forward(logits.astype(np.float32), bias.astype(np.float32), tgt)
    assert np.isnan(loss)
