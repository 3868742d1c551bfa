"""An exploding network's forward overflows (inf, then NaN): its Jacobians are never read as zeros
(saturation); a model whose parameters hold NaN or inf is refused in one line, not with LinAlgError.

Float64, H = 5: a relu RNN with W_hh = a I, W_ih = 0 and bias 0.5 has h_t = 0.5 (a^t - 1)/(a - 1) in every
unit and J(t, d) = a^d I exactly, until h overflows float64 (a = 1e30: h_11 = 5e299, h_12 = inf).
"""
import json
import warnings

import numpy as np
import pytest

from rnnlm import jacobian as jac
from rnnlm import jacobianstates as js
from rnnlm.cli import main
from rnnlm.config import ModelConfigError
from rnnlm.errors import UserError
from rnnlm.jacobianrun import decay_line
from rnnlm.model import ModelConfig, RNNModel

V, E, H = 11, 4, 5


def relu_model(a, decoder=None, init="default", recurrent_scale=1.0):
    cfg = ModelConfig(vocab_size=V, cell="rnn", activation="relu", emsize=E, hidden=H, init=init,
                      recurrent_scale=recurrent_scale, dtype="float64")
    model = RNNModel(cfg, seed=0)
    if a is not None:
        P = model.params
        P["rnn.weight_hh_l0"][:] = a * np.eye(H)
        P["rnn.weight_ih_l0"][:] = 0.0
        P["rnn.bias_ih_l0"][:] = 0.5
        P["rnn.bias_hh_l0"][:] = 0.0
        if decoder is not None:
            P["decoder.weight"][:] = decoder
    return model


def tokens(n=40):
    return np.random.default_rng(0).integers(0, V, n)


# ---------------------------------------------------------------- the forward overflows

def test_forward_overflow_finds_the_first_non_finite_step():
    model = relu_model(1e30)
    trs = js.traces(js._float64_model(model), tokens())
    assert trs[0].h[11, 0] == pytest.approx(5e299) and np.isinf(trs[0].h[12, 0])
    assert js.forward_overflow(model.params, trs, tokens()) == js.Overflow(
        12, 0, "hidden state h of layer 0 overflowed to inf")
    # a decoder of 1e10 turns h_11 = 5e299 into logits that overflow one step earlier: the flow there is NaN
    model = relu_model(1e30, decoder=1e10)
    trs = js.traces(js._float64_model(model), tokens())
    assert js.forward_overflow(model.params, trs, tokens()) == js.Overflow(
        11, None, "prediction (the decoder's logits) overflowed")
    # a finite forward
    model = relu_model(1.1)
    assert js.forward_overflow(model.params, js.traces(js._float64_model(model), tokens()), tokens()) is None


def test_lag_curve_measures_only_before_the_overflow():
    """Before the fix the anchors after step 12 read relu'(NaN) = 0: every median 0, 'saturated'."""
    a, D = 1e30, 5
    with pytest.warns(js.StateOverflowWarning) as rec:
        out = jac.lag_curve(relu_model(a), tokens(), D, 4, np.random.default_rng(0), tol=1e-12)
    assert [str(w.message) for w in rec] == [
        "lag_curve: the hidden state h of layer 0 overflowed to inf at step 12 of 40: the network explodes, its "
        "forward pass itself diverges; measuring only at anchors before it (4 of the 7 positions t from 5 to 11), "
        "the Jacobians from step 12 on are not finite"]
    assert rec[0].message.step == 12
    assert out["meta"]["overflow_step"] == 12 and out["meta"]["anchors"] == 4
    series = out["curves"]["layer0"]["h"]
    lags = np.array(series["lag"])
    np.testing.assert_allclose(series["spectral"]["median"], a ** lags, rtol=5e-6)
    np.testing.assert_allclose(series["frobenius"]["p10"], np.sqrt(H) * a ** lags, rtol=5e-6)
    assert series["zero_lag"] == {"spectral": None, "frobenius": None}
    assert series["vanish_lag"] == {"spectral": None, "frobenius": None}
    assert series["decay_rate"]["spectral"] == pytest.approx(np.log(a), rel=1e-5)
    flow = out["curves"]["layer0"]["flow"]
    assert flow["zero_lag"] is None and all(m is not None and m > 0 for m in flow["norm"]["median"])
    assert flow["decay_rate"] == pytest.approx(np.log(a), rel=1e-5)
    ps = out["per_step"]["layer0"]["h"]["spectral"]["median"]
    assert ps == pytest.approx(a, rel=1e-6)
    json.dumps(out, allow_nan=False)


def test_prediction_overflow_keeps_the_flow_finite():
    with pytest.warns(js.StateOverflowWarning, match="prediction .the decoder's logits. overflowed at step 11"):
        out = jac.lag_curve(relu_model(1e30, decoder=1e10), tokens(), 5, 8, np.random.default_rng(0))
    assert out["meta"]["overflow_step"] == 11 and out["meta"]["anchors"] == 6     # t = 5..10
    flow = out["curves"]["layer0"]["flow"]["norm"]
    assert all(m is not None and m > 0 for k in ("median", "p10", "p90") for m in flow[k])


def test_lag_curve_refuses_when_the_overflow_leaves_no_anchor():
    with pytest.raises(js.StateOverflowError) as e:
        jac.lag_curve(relu_model(1e30), tokens(), 20, 4)
    assert str(e.value) == (
        "lag_curve: the hidden state h of layer 0 overflowed to inf at step 12 of 40: the network explodes, its "
        "forward pass itself diverges before step max_lag + 2 = 22, so no anchor (t >= max_lag=20) is left to "
        "measure at; a smaller recurrent scale, or max_lag=10 or less, measures it")
    assert isinstance(e.value, UserError) and (e.value.step, e.value.layer) == (12, 0)
    # max_lag = 10 is the largest the advice names: it measures (t = 10, 11), with the warning
    with pytest.warns(js.StateOverflowWarning):
        out = jac.lag_curve(relu_model(1e30), tokens(), 10, 4)
    assert out["meta"]["anchors"] == 2
    with pytest.raises(js.StateOverflowError):
        jac.lag_curve(relu_model(1e30), tokens(), 11, 4)


def test_orthogonal_relu_that_explodes_is_not_called_saturated():
    """The user's case in small: orthogonal W_hh x5, relu; before the fix every median was 0."""
    model = relu_model(None, init="orthogonal", recurrent_scale=5.0)
    with pytest.warns(js.StateOverflowWarning) as rec:
        out = jac.lag_curve(model, tokens(800), 100, 8, np.random.default_rng(0))
    step = out["meta"]["overflow_step"]
    assert step is not None and 100 + 2 <= step < 800 and rec[0].message.step == step
    series = out["curves"]["layer0"]["h"]
    assert series["zero_lag"] == {"spectral": None, "frobenius": None}
    med = series["spectral"]["median"]
    assert med[0] == pytest.approx(5.0, rel=1e-5) and med[-1] > 1e50   # grows, never 0
    with pytest.raises(js.StateOverflowError, match=f"overflowed to inf at step {step} of 800"):
        jac.lag_curve(model, tokens(800), 700, 8)


def test_lag_jacobians_and_gradient_rows_refuse_anchors_after_the_overflow():
    model = relu_model(1e30)
    Js = jac.lag_jacobians(model, tokens(), np.array([5, 11]), 3)
    np.testing.assert_allclose(Js[2], np.broadcast_to(1e90 * np.eye(H), (2, H, H)), rtol=1e-12)
    for fn in (jac.lag_jacobians, jac.gradient_rows):
        with pytest.raises(js.StateOverflowError) as e:
            fn(model, tokens(), np.array([5, 12]), 3)
        assert str(e.value) == (
            f"{fn.__name__}: the hidden state h of layer 0 overflowed to inf at step 12 of 40: the network "
            "explodes, its forward pass itself diverges, and the Jacobians from there on are not finite; anchors "
            "must be steps before it, got t = 12")


def test_a_finite_forward_is_measured_as_before_and_matches_finite_differences():
    """overflow_step null, no warning, and the curve still the norms of finite-difference Jacobians."""
    model = relu_model(None, init="orthogonal", recurrent_scale=1.5)
    toks, D, K = tokens(30), 4, 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = jac.lag_curve(model, toks, D, K, np.random.default_rng(3), tol=1e-12)
    assert out["meta"]["overflow_step"] is None
    anchors = jac.pick_anchors(len(toks), D, K, np.random.default_rng(3))
    P = model.params
    emb = P["encoder.weight"][toks]

    def run(h, start, stop):
        for k in range(start + 1, stop + 1):
            z = P["rnn.weight_ih_l0"] @ emb[k - 1] + P["rnn.bias_ih_l0"] + P["rnn.weight_hh_l0"] @ h + P["rnn.bias_hh_l0"]
            h = np.maximum(z, 0.0)
        return h

    hs = js.traces(js._float64_model(model), toks)[0].h
    eps = 1e-6
    spec = np.empty((D, K))
    for j, t in enumerate(anchors):
        for d in range(1, D + 1):
            cols = [(run(hs[t - d] + eps * e, t - d, t) - run(hs[t - d] - eps * e, t - d, t)) / (2 * eps)
                    for e in np.eye(H)]
            spec[d - 1, j] = np.linalg.norm(np.stack(cols, axis=1), 2)
    np.testing.assert_allclose(out["curves"]["layer0"]["h"]["spectral"]["median"],
                               np.exp(np.median(np.log(spec), axis=1)), rtol=1e-5)


# ---------------------------------------------------------------- parameters that hold NaN or inf

def test_non_finite_parameters_are_refused_in_one_line():
    model = relu_model(1.1)
    model.params["rnn.weight_hh_l0"][0, 0] = np.nan
    model.params["decoder.bias"][:2] = [np.inf, -np.inf]
    msg = ("the model's parameters rnn.weight_hh_l0 (1 NaN), decoder.bias (2 inf) hold non-finite values (it "
           "diverged); measure a model saved before it did, e.g. a run's best checkpoint")
    with pytest.raises(ModelConfigError) as e:          # was numpy's LinAlgError: Array must not contain infs or NaNs
        jac.lag_curve(model, tokens(), 5, 4)
    assert str(e.value) == f"lag_curve: {msg}"
    assert isinstance(e.value, ValueError) and isinstance(e.value, UserError)
    for fn in (jac.lag_jacobians, jac.gradient_rows):
        with pytest.raises(ModelConfigError) as e:
            fn(model, tokens(), np.array([5]), 3)
        assert str(e.value) == f"{fn.__name__}: {msg}"


def test_a_checkpoint_holding_nan_is_refused_by_the_jacobian_command(tmp_path, capsys):
    """Loading already refuses it (load_state_dict), in one line: the command never reaches lag_curve."""
    from saved_runs import untrained_gru_run

    from rnnlm import checkpoint
    run = untrained_gru_run(tmp_path, 20, 2)
    ck = checkpoint.load(run / "best.npz")
    model = dict(ck.model)
    model["rnn.weight_hh_l0"] = model["rnn.weight_hh_l0"].copy()
    model["rnn.weight_hh_l0"][0, 0] = np.nan
    checkpoint.save(run / "best.npz", model, config=ck.config, vocab=ck.vocab)
    capsys.readouterr()
    assert main(["jacobian", str(run), "--max-lag", "2", "--anchors", "1", "--no-progress",
                 "--out", str(tmp_path / "j.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {run / 'best.npz'}: state dict entry rnn.weight_hh_l0: 1 of its 192 values are not "
                   "finite (nan or inf): these weights diverged or the file is damaged"], err
    assert not (tmp_path / "j.json").exists()


# ---------------------------------------------------------------- the command

INIT = ["jacobian", "--init", "orthogonal", "--cell", "rnn", "--activation", "relu", "--hidden", "8",
        "--emsize", "8", "--corpus", "none", "--vocab-size", "20", "--no-progress"]


def test_command_refuses_an_overflow_before_the_first_anchor(tmp_path, capsys):
    capsys.readouterr()
    assert main([*INIT, "--recurrent-scale", "1e30", "--out", str(tmp_path / "j.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # (the huge W_hh h sums +inf and -inf terms in one step: NaN, never a 0 that reads as saturation)
    assert err == [
        "error: the hidden state h of layer 0 overflowed to NaN (inf - inf) at step 12 of the 1000 tokens: the "
        "network explodes, its forward pass itself diverges before step --max-lag + 2 = 102, so no anchor is left "
        "to measure at; a smaller --recurrent-scale or --max-lag 10 or less measures it"], err
    assert "saturated" not in err[0] and not (tmp_path / "j.json").exists()


def test_command_notes_the_overflow_and_prints_no_saturation(tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "j.json"
    assert main([*INIT, "--recurrent-scale", "6", "--max-lag", "30", "--tokens", "600", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    doc = json.loads(out.read_text())
    step = doc["meta"]["overflow_step"]
    assert step is not None and 32 <= step < 600
    assert (f"note: the network explodes: its forward pass overflows (is not finite) from step {step} of the 600 "
            f"tokens on; measured at 32 anchors before it only (t from --max-lag 30 to {step - 1}); a smaller "
            "--recurrent-scale keeps it finite") in captured.err.splitlines()
    assert "saturated" not in captured.out and "exactly 0" not in captured.out
    assert doc["curves"]["layer0"]["h"]["zero_lag"] == {"spectral": None, "frobenius": None}
    assert doc["curves"]["layer0"]["h"]["spectral"]["median"][0] == pytest.approx(6.0, rel=1e-5)


def test_decay_line_says_where_the_median_leaves_float64():
    lags = list(range(1, 6))
    series = {"lag": lags, "spectral": {"median": [1e100, 1e200, 1e300, None, None]},
              "decay_rate": {"spectral": jac.decay_rate(lags, [1e100, 1e200, 1e300, None, None])},
              "vanish_lag": {"spectral": None}, "zero_lag": {"spectral": None}}
    assert decay_line(series, "spectral", "rnn") == (
        "growth rate +230.2590 /step (x1e+100 per step, fitted on lags 1-3); median below 1e-6 of lag 1: not "
        "within 5 lags (it grows); median beyond float64's range (over 1.8e308, written as null) from lag 4")
