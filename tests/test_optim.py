"""Clipping semantics and optimizer update formulas, on numbers small enough to check by hand."""
import math

import numpy as np
import pytest

from rnnlm import optim
from rnnlm.errors import UserError


def _grads():
    # Joint norm sqrt(3^2 + 4^2) = 5 spread over two arrays: clipping must rescale them together.
    return {"a": np.array([3.0, 0.0], dtype=np.float32), "b": np.array([[4.0]], dtype=np.float32)}


def test_clip_grad_norm_rescales_jointly_and_returns_pre_clip_norm():
    g = _grads()
    total = optim.clip_grad_norm(g, 1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(g["a"], [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(g["b"], [[0.8]], rtol=1e-5)
    assert optim.grad_norm(g) == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients_and_zero_means_off():
    g = _grads()
    assert optim.clip_grad_norm(g, 10.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(g["a"], [3.0, 0.0])
    g = _grads()
    assert optim.clip_grad_norm(g, 0.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(g["b"], [[4.0]])


def test_clip_grad_norm_does_not_touch_nonfinite_gradients():
    g = {"a": np.array([np.inf, 1.0], dtype=np.float32)}
    assert math.isinf(optim.clip_grad_norm(g, 1.0))
    assert g["a"][1] == 1.0


def test_grad_norm_accumulates_in_float64():
    # 1e20^2 overflows float32 but not float64: a finite gradient must have a finite norm.
    g = {"a": np.full(4, 1e20, dtype=np.float32)}
    assert optim.grad_norm(g) == pytest.approx(2e20, rel=1e-6)


def test_clip_grad_value_is_elementwise():
    g = {"a": np.array([-3.0, 0.5, 2.0], dtype=np.float32), "b": np.array([0.25], dtype=np.float32)}
    assert optim.clip_grad_value(g, 1.0) == 2
    np.testing.assert_array_equal(g["a"], [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(g["b"], [0.25])


def test_first_nonfinite_names_the_first_bad_array():
    arrays = {"x": np.ones(2), "y": np.array([1.0, np.nan]), "z": np.array([np.inf])}
    assert optim.first_nonfinite(arrays) == "y"
    assert optim.first_nonfinite({"x": np.ones(2)}) is None


def _run(opt_name, grads_seq, **kw):
    p = {"w": np.array([1.0], dtype=np.float64)}
    opt = optim.make_optimizer(opt_name, p, **kw)
    for g in grads_seq:
        opt.step(p, {"w": np.array([g], dtype=np.float64)})
    return p["w"][0], opt


def test_sgd():
    w, _ = _run("sgd", [0.5], lr=0.1)
    assert w == pytest.approx(0.95)


def test_momentum_and_nesterov():
    # buf1 = 1, w = 1 - 0.1*1 = 0.9; buf2 = 0.9*1 + 1 = 1.9, w = 0.9 - 0.19 = 0.71
    w, opt = _run("momentum", [1.0, 1.0], lr=0.1, momentum=0.9)
    assert w == pytest.approx(0.71)
    assert opt.buffers["momentum_buffer"]["w"][0] == pytest.approx(1.9)
    # Nesterov: w -= lr*(g + mu*buf): 1 - 0.1*1.9 = 0.81; 0.81 - 0.1*(1 + 0.9*1.9) = 0.539
    w, _ = _run("momentum", [1.0, 1.0], lr=0.1, momentum=0.9, nesterov=True)
    assert w == pytest.approx(0.539)


def test_adagrad():
    # sum = 4, w = 1 - 0.1*2/2 = 0.9; sum = 8, w = 0.9 - 0.1*2/sqrt(8)
    w, _ = _run("adagrad", [2.0, 2.0], lr=0.1)
    assert w == pytest.approx(0.9 - 0.2 / math.sqrt(8.0))


def test_adam_matches_the_bias_corrected_formula():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    # The first step moves by lr * sign(g) (up to eps) whatever the gradient's size.
    w, _ = _run("adam", [0.3], lr=lr)
    assert w == pytest.approx(1.0 - lr, rel=1e-7)
    m = v = 0.0
    expected = 1.0
    for t, g in enumerate([0.3, -0.1, 2.0], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        expected -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
    w, opt = _run("adam", [0.3, -0.1, 2.0], lr=lr)
    assert w == pytest.approx(expected, rel=1e-9)
    assert opt.steps == 3


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "adam"])
def test_state_dict_round_trip_continues_bitwise(name):
    rng = np.random.default_rng(0)
    grads = [{"w": rng.standard_normal((3, 2)).astype(np.float32)} for _ in range(6)]
    p1 = {"w": np.ones((3, 2), dtype=np.float32)}
    o1 = optim.make_optimizer(name, p1, lr=0.05)
    for g in grads:
        o1.step(p1, {"w": g["w"].copy()})
    p2 = {"w": np.ones((3, 2), dtype=np.float32)}
    o2 = optim.make_optimizer(name, p2, lr=0.05)
    for g in grads[:3]:
        o2.step(p2, {"w": g["w"].copy()})
    saved = {k: np.array(v, copy=True) for k, v in o2.state_dict().items()}
    p3 = {"w": p2["w"].copy()}
    o3 = optim.make_optimizer(name, p3, lr=999.0)
    o3.load_state_dict(saved)
    assert o3.lr == 0.05
    for g in grads[3:]:
        o3.step(p3, {"w": g["w"].copy()})
    np.testing.assert_array_equal(p1["w"], p3["w"])


def test_state_dict_refuses_another_optimizer_and_bad_lr():
    p = {"w": np.ones(2, dtype=np.float32)}
    with pytest.raises(UserError, match="adam"):
        optim.make_optimizer("sgd", p).load_state_dict(optim.make_optimizer("adam", p).state_dict())
    with pytest.raises(UserError):
        optim.make_optimizer("sgd", p, lr=0.0)
    with pytest.raises(UserError, match="unknown optimizer"):
        optim.make_optimizer("rmsprop", p)
    assert optim.make_optimizer("sgd", p).lr == optim.DEFAULT_LR["sgd"]


def test_fast_paths_match_plain_numpy():
    # the 16-lane sum of squares, the norm= shortcut and the in-place SGD pass
    rng = np.random.default_rng(5)
    g = {"a": rng.standard_normal((37, 11)).astype(np.float32), "b": rng.standard_normal(1001).astype(np.float32)}
    ref = np.sqrt(sum(float(np.sum(x.astype(np.float64) ** 2)) for x in g.values()))
    assert optim.grad_norm(g) == pytest.approx(ref, rel=1e-12)
    g2 = {k: v.copy() for k, v in g.items()}
    assert optim.clip_grad_norm(g, 1.0) == optim.clip_grad_norm(g2, 1.0, norm=optim.grad_norm(g2))
    for k in g:
        np.testing.assert_array_equal(g[k], g2[k])
    p = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in g.items()}
    expect = {k: p[k].astype(np.float64) - 0.5 * g[k].astype(np.float64) for k in p}
    optim.SGD(p, 0.5).step(p, g)
    for k in p:
        np.testing.assert_allclose(p[k], expect[k], rtol=1e-6, atol=1e-6)


def test_long_arrays_norm_and_sgd_in_pieces_match_serial_and_any_thread_count():
    # arrays longer than optim.CHUNK are summed and updated in fixed pieces on Numba's threads
    import numba
    rng = np.random.default_rng(11)
    n = 3 * optim.CHUNK + 123
    g = {"w": rng.standard_normal(n).astype(np.float32), "b": rng.standard_normal(7).astype(np.float32)}
    ref = math.sqrt(sum(float(np.sum(x.astype(np.float64) ** 2)) for x in g.values()))
    saved = numba.get_num_threads()
    try:
        norms = []
        for threads in sorted({1, saved}):
            numba.set_num_threads(threads)
            norms.append(optim.grad_norm(g))
    finally:
        numba.set_num_threads(saved)
    assert norms[0] == pytest.approx(ref, rel=1e-12) and len(set(norms)) == 1
    # the fused clip + SGD pass: the same bits as scaling the gradients, then p -= lr * g
    p = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in g.items()}
    p_fused = {k: v.copy() for k, v in p.items()}
    g_plain = {k: v.copy() for k, v in g.items()}
    coef = optim.clip_coef(norms[0], 1.0)
    assert coef == pytest.approx(1.0 / (ref + 1e-6), rel=1e-9)
    optim.clip_grad_norm(g_plain, 1.0)          # the two passes: scale the gradients, then step
    optim.SGD(p, 0.5).step(p, g_plain)
    np.testing.assert_allclose(p["w"], p_fused["w"] - np.float32(0.5) * g_plain["w"], rtol=1e-5, atol=1e-6)
    optim.SGD(p_fused, 0.5).step(p_fused, g, scale=coef)
    for k in p:
        np.testing.assert_array_equal(p_fused[k], p[k], err_msg=k)
    assert optim.clip_coef(0.5, 1.0) == 1.0 and optim.clip_coef(math.inf, 1.0) == 1.0
    assert optim.clip_coef(5.0, 0.0) == 1.0


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_rows_hint_gives_the_dense_result(name):
    # a gradient zero outside `rows` (the untied embedding's): the norm reads those rows only,
    # and every optimizer's step equals the dense one; SGD touches only those rows
    rng = np.random.default_rng(12)
    V, E = 50, 8
    rows = np.array([3, 7, 20, 49])
    g = np.zeros((V, E), np.float32)
    g[rows] = rng.standard_normal((len(rows), E)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    dense = {"enc": g.copy(), "b": b.copy()}
    hinted = {"enc": g.copy(), "b": b.copy()}
    assert optim.grad_norm(hinted, {"enc": rows}) == pytest.approx(optim.grad_norm(dense), rel=1e-12)
    params = {"enc": rng.standard_normal((V, E)).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32)}
    p_dense = {k: v.copy() for k, v in params.items()}
    p_hint = {k: v.copy() for k, v in params.items()}
    opt_dense, opt_hint = optim.make_optimizer(name, p_dense, 0.1), optim.make_optimizer(name, p_hint, 0.1)
    for _ in range(2):
        opt_dense.step(p_dense, {k: v.copy() for k, v in dense.items()}, scale=0.5)
        opt_hint.step(p_hint, {k: v.copy() for k, v in hinted.items()}, rows={"enc": rows}, scale=0.5)
    for k in params:
        np.testing.assert_array_equal(p_hint[k], p_dense[k], err_msg=k)
    untouched = np.setdiff1d(np.arange(V), rows)
    if name == "sgd":
        np.testing.assert_array_equal(p_hint["enc"][untouched], params["enc"][untouched])
    assert not np.array_equal(p_hint["enc"][rows], params["enc"][rows])
    # clip_grad_norm with the hint scales the rows only, which is all there is
    g2 = {"enc": g.copy(), "b": b.copy()}
    optim.clip_grad_norm(g2, 0.1, rows={"enc": rows})
    assert optim.grad_norm(g2) == pytest.approx(0.1, rel=1e-5)
