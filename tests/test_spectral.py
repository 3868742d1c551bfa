"""The spectral-norm solver against a float64 SVD, on the spectra that fool a change-based stop."""
import numpy as np
import pytest

from rnnlm import jacobian, spectral


def prescribed(K, H, top, rng, tail=0.9):
    """K random H x H matrices U diag(s) V^T with s = top, then H - len(top) values uniform in [0, tail)."""
    out = np.empty((K, H, H))
    for k in range(K):
        U = np.linalg.qr(rng.standard_normal((H, H)))[0]
        V = np.linalg.qr(rng.standard_normal((H, H)))[0]
        s = np.concatenate([top, rng.uniform(0.0, tail, H - len(top))])
        out[k] = (U * s) @ V.T
    return out


def svd_norm(J):
    return np.linalg.svd(J.astype(np.float64), compute_uv=False)[:, 0]


def test_the_issue_example_close_top_pair_from_a_balanced_start():
    """The first step barely moves the estimate; a change-based stop returned 0.99950063."""
    J = np.diag([1.0, 1.0 - 1e-3, 0.3])[None]
    u = np.array([[1.0, 1.0, 0.0]]) / np.sqrt(2)
    sigma, _ = spectral.spectral_norms(J, u, tol=1e-6)
    assert sigma[0] == pytest.approx(1.0, rel=1e-6)
    assert jacobian.spectral_norms is spectral.spectral_norms     # the old import path


@pytest.mark.parametrize("H", [3, 64, 256])
@pytest.mark.parametrize("delta", [1e-3, 1e-5, 0.0])
def test_near_degenerate_top_pair_matches_svd(H, delta):
    rng = np.random.default_rng(int(H + 1e6 * delta))
    K = 4 if H == 256 else 8
    J = prescribed(K, H, [1.0, 1.0 - delta], rng)
    sigma, u = spectral.spectral_norms(J, tol=1e-6)
    np.testing.assert_allclose(sigma, svd_norm(J), rtol=1e-6)
    # a start balanced between the two top left singular vectors (the issue's case)
    Us = np.linalg.svd(J)[0]
    balanced = (Us[:, :, 0] + Us[:, :, 1]) / np.sqrt(2)
    sigma, u = spectral.spectral_norms(J, balanced, tol=1e-6)
    np.testing.assert_allclose(sigma, svd_norm(J), rtol=1e-6)
    # u is the left singular vector: ||J^T u|| = sigma
    np.testing.assert_allclose(np.linalg.norm(np.einsum("kij,ki->kj", J, u), axis=1)
                               / np.linalg.norm(u, axis=1), sigma, rtol=1e-6)


@pytest.mark.parametrize("H", [64, 256])
def test_float32_products_match_svd_of_the_float32_matrix(H):
    """The fast path: J float32, arithmetic float64, so the answer is the float32 matrix's norm."""
    rng = np.random.default_rng(H)
    J = prescribed(4, H, [1.0, 1.0 - 1e-4], rng).astype(np.float32)
    sigma, _ = spectral.spectral_norms(J, tol=1e-6)
    np.testing.assert_allclose(sigma, svd_norm(J), rtol=1e-6)


def _tanh_rnn_product(K, H, T, rng):
    """K products of T tanh-RNN step Jacobians diag(1 - h^2) W, normalised (as the instrument sees them)."""
    W = rng.standard_normal((H, H)) / np.sqrt(H)
    h = np.zeros((K, H))
    J = np.broadcast_to(np.eye(H), (K, H, H))
    for _ in range(T):
        h = np.tanh(h @ W.T + rng.standard_normal((K, H)))
        J = ((1 - h * h)[:, :, None] * W) @ J
        J /= np.linalg.norm(J, axis=(1, 2))[:, None, None]
    return J


def test_well_separated_spectra_stop_early():
    """A residual stop must not cost many more products than the old change-based one (~9 here)."""
    rng = np.random.default_rng(0)
    J = _tanh_rnn_product(8, 64, 30, rng)
    # products: the J v (and J^T u) steps each matrix took; a batch costs its slowest matrix's count
    sigma, u, products = spectral._run(J.astype(np.float32), None, 1e-6, 20, 20)
    first = products.max()
    # warm start from the answer: one or two steps
    sigma2, _, products = spectral._run(J.astype(np.float32), u, 1e-6, 20, 20)
    np.testing.assert_allclose(sigma, svd_norm(J.astype(np.float32)), rtol=1e-6)
    np.testing.assert_allclose(sigma2, sigma, rtol=1e-7)
    assert first <= 12
    assert products.max() <= 3


def test_each_matrix_stops_on_its_own():
    """An easy matrix batched with a hard one stops early, and its answer does not depend on the batch."""
    rng = np.random.default_rng(3)
    easy = prescribed(1, 64, [1.0], rng, tail=0.3)
    hard = prescribed(1, 64, [1.0, 1.0 - 1e-3], rng)
    J = np.concatenate([easy, hard])
    u0 = rng.standard_normal((2, 64))
    sigma, u, products = spectral._run(J, u0, 1e-6, 20, 20)
    np.testing.assert_allclose(sigma, svd_norm(J), rtol=1e-6)
    assert products[0] < products[1]
    for k in range(2):
        alone, u_alone, used = spectral._run(J[k:k + 1], u0[k:k + 1], 1e-6, 20, 20)
        assert alone[0] == sigma[k] and used[0] == products[k]
        np.testing.assert_array_equal(u_alone[0], u[k])


def test_non_finite_matrices_get_a_non_finite_norm():
    """A Jacobian that blew up must not read as vanished (sigma 0): NaN -> NaN, inf -> inf."""
    from rnnlm.spectral import spectral_norms
    J = np.stack([np.full((4, 4), np.nan), np.eye(4), np.diag([np.inf, 1.0, 1.0, 1.0]), 2 * np.eye(4)])
    for dtype in (np.float64, np.float32):
        sigma, u = spectral_norms(J.astype(dtype))
        assert np.isnan(sigma[0]) and np.isposinf(sigma[2])
        np.testing.assert_allclose(sigma[[1, 3]], [1.0, 2.0], rtol=1e-9)
        assert np.isnan(u[0]).all() and np.isfinite(u[1]).all()
