"""The Ω regularizer (Pascanu et al. 2013): its W_hh gradient against finite differences,
known values, the skipping rule, an independent naive implementation, and --omega in training."""
import dataclasses
import json

import numpy as np
import pytest

from rnnlm import checkpoint
from rnnlm.activations import RELU, SCALED_TANH, SIGMOID, _dact, apply, parse_activation
from rnnlm.config import ACTIVATION_EXAMPLES
from rnnlm.cli import main
from rnnlm.errors import UserError
from rnnlm.gradcheck import _derivative, rel_error
from rnnlm.model import ModelConfig, RNNModel
from rnnlm.omega import MIN_NORM, fprime_from_h, omega_and_grad, omega_layer
from rnnlm.train import TrainConfig, train

ACTS = list(ACTIVATION_EXAMPLES)
T, B, V, E, H = 5, 3, 11, 5, 6


def window(activation, layers, seed=0):
    """A tiny float64 rnn with weights ±0.5, a random window and its BPTT result."""
    cfg = ModelConfig(vocab_size=V, cell="rnn", activation=activation, emsize=E, hidden=H,
                      layers=layers, dtype="float64")
    model = RNNModel(cfg, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for p in model.params.values():
        p[...] = rng.uniform(-0.5, 0.5, p.shape)
    inputs, targets = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = (0.5 * rng.standard_normal((layers, B, H)),)
    return model, inputs, state, model.bptt(inputs, targets, state)


def orthogonal(n, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q


# ---------------------------------------------------------------- gradient


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("activation", ACTS)
def test_grad_matches_finite_differences(activation, layers):
    model, _, _, r = window(activation, layers)
    alpha = 0.7
    omega, grads = omega_and_grad(model, r, alpha)
    assert omega > 0.1 and set(grads) == {f"rnn.weight_hh_l{k}" for k in range(layers)}

    def f():
        # δ and f' stay those of r (the unperturbed weights): the paper's definition
        return omega_and_grad(model, r, alpha)[0]

    for name, analytic in grads.items():
        flat = model.params[name].reshape(-1)
        numeric = np.array([_derivative(f, flat, i, 1e-4) for i in range(flat.size)])
        assert np.abs(numeric).max() > 1e-3        # the check has something to see
        err = rel_error(analytic.reshape(-1) / alpha, numeric).max()
        assert err < 1e-6, f"{name}: max rel error {err:.2e}"


def test_fprime_from_h_matches_the_kernels_derivative():
    for spec in ACTIVATION_EXAMPLES:
        act = parse_activation(spec)
        hs = apply(np.array([-1.5, -0.8, -0.2, 0.0, 0.3, 0.9, 1.7]), act)
        expected = [_dact(h, act.kind, act.a, act.b, 1.0) for h in hs]
        np.testing.assert_allclose(fprime_from_h(hs, act), expected, rtol=1e-13, atol=1e-16)


# ---------------------------------------------------------------- values


# f'(z) from z itself, per kind: independent of the code under test (which computes it from h = f(z))
F_PRIME_OF_Z = {RELU: lambda z, act: (z > 0).astype(float),
                SIGMOID: lambda z, act: (1 / (1 + np.exp(-z))) * (1 - 1 / (1 + np.exp(-z))),
                SCALED_TANH: lambda z, act: act.a * act.b * (1 - np.tanh(act.b * z) ** 2)}


def naive_omega(model, inputs, state, r):
    """Ω term by term with z recomputed from the weights, f'(z) from z and an explicit Jacobian."""
    act = model.act
    total = 0.0
    x = model.params["encoder.weight"][inputs]                    # (T, B, E)
    for layer in range(model.config.layers):
        s = f"_l{layer}"
        W_ih, W_hh = model.params["rnn.weight_ih" + s], model.params["rnn.weight_hh" + s]
        bias = model.params["rnn.bias_ih" + s] + model.params["rnn.bias_hh" + s]
        h_prev = state[0][layer]
        for t in range(T):
            z = x[t] @ W_ih.T + bias + h_prev @ W_hh.T
            fp = F_PRIME_OF_Z[act.kind](z, act)     # (a new kind needs its entry: a KeyError names it)
            for b in range(B):
                delta = r.dhs[layer][t, b]                         # dL/dh_{t+1}
                jac = fp[b][:, None] * W_hh                        # ∂h_{t+1}/∂h_t, (H, H)
                nv, nd = np.linalg.norm(delta @ jac), np.linalg.norm(delta)
                if min(nv, nd) >= MIN_NORM:                        # the skipping rule
                    total += (nv / nd - 1) ** 2 / B
            h_prev = r.hs[layer][t]
        x = r.hs[layer]
    return total


@pytest.mark.parametrize("activation", ACTS)
def test_value_matches_naive_and_first_term_is_dh0(activation):
    model, inputs, state, r = window(activation, 2)
    omega, _ = omega_and_grad(model, r)
    assert omega == pytest.approx(naive_omega(model, inputs, state, r), rel=1e-12)
    for layer in range(2):
        # Alignment: v_0 = δ_1 ∂h_1/∂h_0 is exactly the gradient BPTT hands to the initial state.
        u0 = r.dhs[layer][0] * fprime_from_h(r.hs[layer][0], model.act)
        np.testing.assert_allclose(u0 @ model.params[f"rnn.weight_hh_l{layer}"], r.dstate0[0][layer],
                                   rtol=1e-12, atol=1e-15)


def test_hand_computed_tiny_case():
    # tanh, H = 2: h = (0.5, 0) -> f' = (0.75, 1); δ = (1, 2); u = (0.75, 2)
    # v = u W = (0.75, 0.75*2 + 2*1) = (0.75, 3.5); ‖v‖² = 12.8125, ‖δ‖² = 5
    hs = np.array([[[0.5, 0.0]]])
    dhs = np.array([[[1.0, 2.0]]])
    W = np.array([[1.0, 2.0], [0.0, 1.0]])
    r = omega_layer(dhs, hs, W, "tanh")
    assert r.omega == pytest.approx((np.sqrt(12.8125 / 5) - 1) ** 2, rel=1e-14)
    assert r.omega == pytest.approx(0.3609379, abs=1e-7)
    # dΩ/dW = 2 (ρ - 1) / ‖δ‖ · uᵀ v / ‖v‖
    rho = np.sqrt(12.8125 / 5)
    expected = 2 * (rho - 1) / np.sqrt(5) * np.outer([0.75, 2.0], [0.75, 3.5]) / np.sqrt(12.8125)
    np.testing.assert_allclose(r.dW_hh, expected, rtol=1e-14)
    assert (r.used, r.skipped) == (1, 0)


@pytest.mark.parametrize("scale", [1.0, 0.5, 1.5])
def test_scaled_orthogonal_in_linear_regime_has_known_value(scale):
    # ReLU with every unit on: f' = 1, so ‖δ (a Q)‖ = a ‖δ‖ and each term is (a - 1)^2.
    rng = np.random.default_rng(3)
    hs = rng.uniform(0.1, 2.0, (T, B, H))
    dhs = rng.standard_normal((T, B, H))
    r = omega_layer(dhs, hs, scale * orthogonal(H, 4), "relu")
    assert r.omega == pytest.approx(T * (scale - 1) ** 2, abs=1e-13)
    if scale == 1.0:
        assert r.omega < 1e-26 and np.abs(r.dW_hh).max() < 1e-13
    else:
        assert np.abs(r.dW_hh).max() > 1e-2


def test_model_in_exact_linear_regime():
    # No input drive and h0 = 0: every state stays exactly 0, where tanh' = 1 and scaled
    # tanh 2·tanh(z/4) has f' = 1/2. With W_hh = a Q the ratio is a·f'(0) at every step.
    cfg = ModelConfig(vocab_size=V, cell="rnn", activation="tanh", emsize=E, hidden=H, dtype="float64")
    rng = np.random.default_rng(5)
    inputs, targets = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    for activation, fp0 in [("tanh", 1.0), ("scaled-tanh:2,0.25", 0.5)]:
        for scale in (1.0, 0.5):
            model = RNNModel(dataclasses.replace(cfg, activation=activation), seed=0)
            for name in ("rnn.weight_ih_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"):
                model.params[name][...] = 0
            model.params["rnn.weight_hh_l0"][...] = scale * orthogonal(H, 6)
            r = model.bptt(inputs, targets)
            assert np.abs(r.hs[0]).max() == 0 and np.linalg.norm(r.dhs[0], axis=2).min() > 1e-4
            omega, _ = omega_and_grad(model, r)
            assert omega == pytest.approx(T * (scale * fp0 - 1) ** 2, abs=1e-13)
    # the norm-preserving case: exactly orthogonal W_hh, f' = 1
    model = RNNModel(cfg, seed=0)
    for name in ("rnn.weight_ih_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"):
        model.params[name][...] = 0
    model.params["rnn.weight_hh_l0"][...] = orthogonal(H, 7)
    omega, grads = omega_and_grad(model, model.bptt(inputs, targets))
    assert omega < 1e-26 and np.abs(grads["rnn.weight_hh_l0"]).max() < 1e-12


# ---------------------------------------------------------------- skipping


def test_terms_with_tiny_norms_are_skipped():
    rng = np.random.default_rng(8)
    hs = rng.uniform(0.1, 0.9, (T, B, H))
    dhs = rng.standard_normal((T, B, H))
    W = rng.uniform(-0.5, 0.5, (H, H))
    full = omega_layer(dhs, hs, W, "relu")
    assert (full.used, full.skipped) == (T * B, 0)

    def term(t, b):
        one = omega_layer(dhs[t:t + 1, b:b + 1], hs[t:t + 1, b:b + 1], W, "relu")
        return one.omega, one.dW_hh

    dhs2, hs2 = dhs.copy(), hs.copy()
    dhs2[1, 0] = 0                      # no gradient reaches this step: ‖δ‖ = 0
    dhs2[2, 1] *= 0.5 * MIN_NORM        # ‖δ‖ below the threshold
    hs2[3, 2] = 0                       # every ReLU unit off: f' = 0, so v = 0
    dhs2[4, 0] *= 1e-10                 # small but above the threshold: kept (Ω is scale-free)
    r = omega_layer(dhs2, hs2, W, "relu")
    assert (r.used, r.skipped) == (T * B - 3, 3)
    dropped = [(1, 0), (2, 1), (3, 2)]
    expected = full.omega - sum(term(t, b)[0] for t, b in dropped) / B
    assert r.omega == pytest.approx(expected, rel=1e-12)
    expected_grad = full.dW_hh - sum(term(t, b)[1] for t, b in dropped) / B
    np.testing.assert_allclose(r.dW_hh, expected_grad, rtol=1e-10, atol=1e-14)
    assert np.all(np.isfinite(r.dW_hh))

    # and the gradient with skipped terms still matches finite differences
    def f():
        return omega_layer(dhs2, hs2, W, "relu").omega
    numeric = np.array([_derivative(f, W.reshape(-1), i, 1e-4) for i in range(W.size)])
    assert rel_error(r.dW_hh.reshape(-1), numeric).max() < 1e-6


def test_all_terms_skipped_gives_zero():
    r = omega_layer(np.zeros((T, B, H)), np.ones((T, B, H)), np.eye(H), "tanh")
    assert (r.omega, r.used, r.skipped) == (0.0, 0, T * B)
    assert not r.dW_hh.any()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_are_refused(cell, capsys):
    model = RNNModel(ModelConfig(vocab_size=V, cell=cell, emsize=E, hidden=H, dtype="float64"))
    r = model.bptt(np.zeros((T, B), int), np.zeros((T, B), int))
    with pytest.raises(UserError, match="vanilla RNN"):
        omega_and_grad(model, r)
    with pytest.raises(UserError, match="--omega"):
        train(TrainConfig(model=ModelConfig(cell=cell), omega=1.0))
    assert main(["train", "--cell", cell, "--omega", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--omega" in err and err.count("\n") == 1


def test_negative_omega_is_refused():
    with pytest.raises(UserError, match="--omega must be a finite number >= 0"):
        train(TrainConfig(model=ModelConfig(cell="rnn"), omega=-1.0))


# ---------------------------------------------------------------- training



def test_training_with_omega(text, tmp_path):
    def run(out, *extra):
        argv = ["train", "--corpus", str(text), "--max-vocab", "300", "--valid-fraction", "0.1",
                "--test-fraction", "0.1", "--cell", "rnn", "--emsize", "16", "--hidden", "16",
                "--bptt", "8", "--batch-size", "16", "--eval-batch-size", "4", "--dropout", "0",
                "--max-steps", "12", "--eval-every", "0", "--log-every", "3", "--sample-words", "0",
                "--no-progress", "--out", str(out), *extra]
        assert main(argv) == 0
        lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        steps = [e for e in map(json.loads, lines) if e["type"] == "step"]
        return steps, checkpoint.load(out / "model.npz").model["rnn.weight_hh_l0"]

    with_omega, W_omega = run(tmp_path / "omega", "--omega", "1")
    without, W_plain = run(tmp_path / "plain")
    assert [e["step"] for e in with_omega] == [3, 6, 9, 12]
    omegas = [e["omega"] for e in with_omega]
    assert all(isinstance(o, float) and np.isfinite(o) and o > 0 for o in omegas)
    assert all("omega" not in e for e in without)
    config = json.loads((tmp_path / "omega" / "config.json").read_text())
    assert config["train"]["omega"] == 1.0
    assert not np.array_equal(W_omega, W_plain)
    assert [e["loss"] for e in with_omega][1:] != [e["loss"] for e in without][1:]
    assert with_omega[0]["grad_norm"] != without[0]["grad_norm"]


def test_resume_with_omega_is_bitwise_equal(text, tmp_path):
    from rnnlm.data import DataConfig
    from rnnlm.runs import resume_config

    def config(out, steps):
        return TrainConfig(data=DataConfig(corpus=str(text), max_vocab=300, valid_fraction=0.1,
                                           test_fraction=0.1),
                           model=ModelConfig(cell="rnn", emsize=16, hidden=16, dropout=0.2),
                           bptt=8, batch_size=16, eval_batch_size=4, omega=0.5, max_steps=steps, max_minutes=0, eval_every=5,
                           log_every=2, progress=False, sample_words=0, out=str(out))

    train(config(tmp_path / "full", 12))
    train(config(tmp_path / "part", 7))
    train(resume_config(tmp_path / "part", {"max_steps": 12}), resume=tmp_path / "part")
    a, b = (checkpoint.load(tmp_path / run / "model.npz") for run in ("full", "part"))
    for name in a.model:
        np.testing.assert_array_equal(a.model[name], b.model[name], err_msg=name)

    def omegas(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return [(e["step"], e["omega"]) for e in map(json.loads, lines) if e["type"] == "step"]
    assert omegas("full") == omegas("part") and len(omegas("full")) == 6
