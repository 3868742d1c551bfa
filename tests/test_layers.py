"""The fused output layer and the blocked products against plain NumPy, in float64 and float32."""
import numpy as np
import pytest

from rnnlm import layers, pblas


def _case(seed=0, N=40, H=7, V=103):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H))
    W = rng.standard_normal((V, H)) * 3    # logits down to about -100: the exp clamp is exercised too
    return x, W, rng.standard_normal(V), rng.integers(0, V, N)


def _reference(x, W, bias, tgt):
    """Mean cross-entropy and its gradients, the obvious way."""
    z = x @ W.T + bias
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    N = x.shape[0]
    loss = -logp[np.arange(N), tgt].mean()
    dz = np.exp(logp)
    dz[np.arange(N), tgt] -= 1
    dz /= N
    return loss, dz @ W, dz.T @ x, dz.sum(axis=0), logp


def _fused(x, W, bias, tgt):
    N, H = x.shape
    V = W.shape[0]
    scratch = {k: np.empty(s, x.dtype) for k, s in layers.output_scratch_shapes(N, V, H).items()}
    dx, dW = np.empty_like(x), np.empty_like(W)
    loss, dbias = layers.output_loss_and_grads(scratch, dx, dW, x, W, bias, tgt)
    return loss, dx, dW, dbias


@pytest.mark.parametrize("H", [7, 300])   # dW transposed per block (H <= 256) or not
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_output_layer_matches_numpy(dtype, rtol, H):
    assert layers.dW_transposed(H) == (H == 7)
    x, W, bias, tgt = _case(H=H)
    W /= np.sqrt(H / 7)
    ref = _reference(x, W, bias, tgt)
    args = (x.astype(dtype), W.astype(dtype), bias.astype(dtype), tgt)
    loss, dx, dW, dbias = _fused(*args)
    assert loss == pytest.approx(ref[0], rel=rtol)
    for got, want in zip((dx, dW, dbias), ref[1:4]):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    assert layers.output_loss(np.empty((40, 103), dtype), *args) == pytest.approx(ref[0], rel=rtol)
    logp = np.empty((40, 103), dtype)
    layers.output_log_softmax(logp, *args[:3])
    np.testing.assert_allclose(logp, ref[4], rtol=rtol, atol=rtol * 100)


def test_output_layer_with_fewer_rows_than_blocks():
    x, W, bias, tgt = _case(N=1)
    loss, dx, dW, dbias = _fused(x, W, bias, tgt)
    ref = _reference(x, W, bias, tgt)
    assert loss == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(dW, ref[2], rtol=1e-12, atol=1e-14)


def test_output_layer_propagates_nan():
    x, W, bias, tgt = _case(1)
    x = x.astype(np.float32)
    x[3, 2] = np.nan
    args = (W.astype(np.float32), bias.astype(np.float32), tgt)
    assert np.isnan(layers.output_loss(np.empty((40, 103), np.float32), x, *args))
    assert np.isnan(_fused(x, *args)[0])


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_output_layer_propagates_one_nonfinite_logit(value):
    """One bad logit per row (the max pass skips a NaN; the exp pass must not)."""
    x, W, bias, tgt = (a.astype(np.float32) if a.dtype.kind == "f" else a for a in _case(2))
    bias[57] = value
    assert np.isnan(layers.output_loss(np.empty((40, 103), np.float32), x, W, bias, tgt))
    loss, dx, dW, dbias = _fused(x, W, bias, tgt)
    assert np.isnan(loss) and np.isnan(dbias[57])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_passes_at_every_length_and_position(dtype):
    """The vectorized max and exp sums: lengths around the vector width, the max at
    each end, and a 30,000-logit row (large config) summed in float32."""
    rng = np.random.default_rng(3)
    for V in list(range(1, 40)) + [257, 30000]:
        row, bias = rng.standard_normal(V).astype(dtype) * 5, rng.standard_normal(V).astype(dtype)
        for peak in {0, V // 2, V - 1}:
            row[peak] = 40
            m = layers._row_max(row, bias)
            assert m == (row + bias).max()
            want = np.exp(((row + bias) - m).astype(np.float64)).sum()   # the kernel's rounding of z
            assert layers._row_sum_exp(row, bias, m) == pytest.approx(want, rel=1e-6 if dtype == np.float32 else 1e-13)
            row[peak] = rng.standard_normal()


@pytest.mark.parametrize("N", [1, 5, 301])
def test_blocked_products_match_numpy(N):
    rng = np.random.default_rng(N)
    a, w = rng.standard_normal((N, 6)), rng.standard_normal((9, 6))
    out = np.empty((N, 9))
    pblas.matmul(out, a, w.T)
    np.testing.assert_allclose(out, a @ w.T, rtol=1e-12)
    parts = rng.standard_normal((2, N, 4))
    acc = np.ones((N, 4))
    pblas.add_parts(acc, parts)
    np.testing.assert_allclose(acc, 1 + parts[0] + parts[1], rtol=1e-12)
    parts_T = rng.standard_normal((3, 4, N))
    out = np.full((N, 4), np.nan)
    pblas.sum_parts_transposed(out, parts_T)
    np.testing.assert_allclose(out, (parts_T[0] + parts_T[1] + parts_T[2]).T, rtol=1e-12)


@pytest.mark.parametrize("separate_hh,with_dx", [(False, True), (True, False)])
def test_recurrent_affine_backward_matches_numpy(separate_hh, with_dx):
    """The cells' batched backward (one launch) against the obvious products; dx=None
    skips dx, dpre_hh (the GRU's case) feeds the hidden side's gradients."""
    rng = np.random.default_rng(7)
    T, B, E, H, GH = 5, 3, 4, 6, 18
    dpre, x, h_prev = rng.standard_normal((T, B, GH)), rng.standard_normal((T, B, E)), rng.standard_normal((T, B, H))
    dpre_hh = rng.standard_normal((T, B, GH)) if separate_hh else None
    W_ih = rng.standard_normal((GH, E))
    dW_ih, dW_hh, db_ih, db_hh = np.ones((GH, E)), np.ones((GH, H)), np.ones(GH), np.ones(GH)
    dx = np.full((T, B, E), np.nan) if with_dx else None
    layers.recurrent_affine_backward(dpre, x, h_prev, W_ih, dW_ih, dW_hh, db_ih, db_hh, dx, dpre_hh=dpre_hh)
    d2, h2 = dpre.reshape(-1, GH), (dpre if dpre_hh is None else dpre_hh).reshape(-1, GH)
    np.testing.assert_allclose(dW_ih, 1 + d2.T @ x.reshape(-1, E), rtol=1e-12)
    np.testing.assert_allclose(dW_hh, 1 + h2.T @ h_prev.reshape(-1, H), rtol=1e-12)
    np.testing.assert_allclose(db_ih, 1 + d2.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(db_hh, 1 + h2.sum(axis=0), rtol=1e-12)
    if with_dx:
        np.testing.assert_allclose(dx.reshape(-1, E), d2 @ W_ih, rtol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_output_layer_on_openblas_threads_matches_numpy(dtype, rtol, threads):
    """The products as single OpenBLAS calls (paths.OUTPUT_BLAS_MIN_THREADS) give what the
    row blocks give: the loss and every gradient, training and eval, at 1 and 2 threads."""
    import numba
    x, W, bias, tgt = _case(2, N=45, H=300)
    W /= np.sqrt(300 / 7)
    ref = _reference(x, W, bias, tgt)
    args = (x.astype(dtype), W.astype(dtype), bias.astype(dtype), tgt)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        shapes = layers.output_scratch_shapes(45, 103, 300, blas=True)
        assert shapes["dW_parts"][0] == 0      # no per-thread dW parts on this path
        scratch = {k: np.empty(s, dtype) for k, s in shapes.items()}
        dx, dW = np.empty_like(args[0]), np.empty_like(args[1])
        loss, dbias = layers.output_loss_and_grads(scratch, dx, dW, *args, blas=True)
        eval_loss = layers.output_loss(np.empty((45, 103), dtype), *args, blas=True)
    finally:
        numba.set_num_threads(before)
    assert loss == pytest.approx(ref[0], rel=rtol) and eval_loss == pytest.approx(ref[0], rel=rtol)
    for got, want in zip((dx, dW, dbias), ref[1:4]):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    np.testing.assert_allclose(scratch["logits"].sum(axis=0), ref[3], rtol=rtol, atol=rtol)   # dlogits
