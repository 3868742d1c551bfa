"""A new-user trial's fifth findings: a saturated RNN's Jacobian, exactly 0 from lag 1, read as vanished
(not as "never vanishes"); the plots show zero norms instead of dropping them; the sweep bound and clipping
in `plot lag --bound`; lag_curve checks its arguments.

Tiny float64 models (H = 5), no training: the file runs in seconds.
"""
import json
import warnings

import numpy as np
import pytest

from rnnlm import jacobian as jac
from rnnlm.model import ModelConfig, RNNModel

V, E, H = 11, 4, 5


def make_model(cell="rnn", seed=0):
    cfg = ModelConfig(vocab_size=V, cell=cell, emsize=E, hidden=H, dropout=0.0, dtype="float64")
    return RNNModel(cfg, seed=seed)


def saturated_model():
    """A tanh RNN whose units are all saturated at every step: W_hh = 1000 I and a bias of 30 keep every
    pre-activation above 29, where tanh rounds to 1.0 and tanh' = 1 - tanh^2 is exactly 0 in float64."""
    model = make_model("rnn")
    P = model.params
    P["rnn.weight_hh_l0"][:] = 1000.0 * np.eye(H)
    P["rnn.bias_ih_l0"][:] = 30.0
    return model


def tokens(seed=0, n=40):
    return np.random.default_rng(seed).integers(0, V, n)


def saturated_doc(max_lag=8, anchors=4):
    doc = jac.lag_curve(saturated_model(), tokens(), max_lag, anchors, np.random.default_rng(0))
    doc["meta"].update(source="init", seed=0, text="random:11")
    return doc


# ---------------------------------------------------------------- 1. exactly 0 is vanished, said plainly


def test_a_saturated_rnn_is_exactly_zero_from_lag_1_and_vanishes_there():
    doc = saturated_doc()
    s, flow = doc["curves"]["layer0"]["h"], doc["curves"]["layer0"]["flow"]
    assert s["spectral"]["median"] == [0.0] * 8 and flow["norm"]["median"] == [0.0] * 8
    assert s["vanish_lag"] == {"spectral": 1, "frobenius": 1}        # was None: "never vanishes"
    assert s["zero_lag"] == {"spectral": 1, "frobenius": 1}
    assert flow["vanish_lag"] == 1 and flow["zero_lag"] == 1
    assert s["decay_rate"] == {"spectral": None, "frobenius": None}   # ln 0: undefined
    json.dumps(doc, allow_nan=False)


def test_the_table_says_exactly_zero_and_why_the_decay_rate_is_undefined():
    lines = jac.format_table(saturated_doc()).splitlines()
    tail = [ln for ln in lines if ln.lstrip().startswith(("spectral:", "Frobenius:", "flow:"))]
    assert len(tail) == 3
    for ln in tail:
        assert "exactly 0 from lag 1" in ln and "every unit saturated (f'(z) = 0)" in ln
        assert "nothing flows back" in ln and "vanish lag 1" in ln
        assert "decay rate undefined (" in ln and "not within" not in ln and "decay rate -" not in ln


def test_a_normal_curve_is_unchanged():
    doc = jac.lag_curve(make_model("rnn"), tokens(), 8, 4, np.random.default_rng(0))
    doc["meta"].update(source="init", seed=0, text="random:11")
    s = doc["curves"]["layer0"]["h"]
    assert s["zero_lag"] == {"spectral": None, "frobenius": None} and doc["curves"]["layer0"]["flow"]["zero_lag"] is None
    assert s["decay_rate"]["spectral"] is not None and all(m > 0 for m in s["spectral"]["median"])
    lines = jac.format_table(doc).splitlines()
    assert any("median below 1e-6 of lag 1:" in ln for ln in lines)
    assert not any("exactly 0" in ln for ln in lines)


def test_vanish_lag_counts_a_zero_median():
    lags = list(range(1, 6))
    assert jac.vanish_lag(lags, [0.0] * 5) == 1                      # was None
    assert jac.vanish_lag(lags, [0.5, 0.4, 0.0, 0.0, 0.0]) == 3      # 0 before 1e-6 of lag 1
    assert jac.vanish_lag(lags, [None, 2.0, 0.0, 0.0, 0.0]) == 3     # a lag 1 too large for float64
    assert jac.vanish_lag(lags, [1.0, 1e-7, 0.0, 0.0, 0.0]) == 2     # the old rule first
    assert jac.vanish_lag(lags, [1.0] * 5) is None


def test_zero_lag_needs_half_the_anchors_at_exactly_zero():
    lags = [1, 2, 3]
    z = np.array([[False, False, False, False], [True, True, False, False], [True, True, True, False]])
    assert jac.zero_lag(lags, z) == 2            # even K: two of four make the (geometric) median 0
    odd = np.array([[False, False, False], [True, False, False], [True, True, False]])
    assert jac.zero_lag(lags, odd) == 3          # odd K: two of three, not one
    assert jac.zero_lag(lags, np.zeros((3, 4), bool)) is None


def test_zero_from_a_later_lag_keeps_the_fitted_rate_and_says_where():
    series = {"lag": [1, 2, 3, 4, 5], "decay_rate": {"spectral": -0.5, "frobenius": -0.5},
              "vanish_lag": {"spectral": 4, "frobenius": 4}, "zero_lag": {"spectral": 4, "frobenius": 4},
              "spectral": {"median": [1.0, 0.6, 0.4, 0.0, 0.0]}}
    line = jac.decay_line(series, "spectral", "rnn")
    assert "decay rate -0.5000 /step" in line and "fitted on lags 1-3" in line
    assert "median below 1e-6 of lag 1: lag 4" in line and "exactly 0 from lag 4" in line


def test_an_old_document_without_zero_lag_reads_zero_medians():
    doc = saturated_doc()
    for sc in doc["curves"].values():
        for series in sc.values():
            series.pop("zero_lag")
            if isinstance(series["vanish_lag"], dict):
                series["vanish_lag"] = {"spectral": None, "frobenius": None}
            else:
                series["vanish_lag"] = None
    assert "exactly 0 from lag 1" in jac.format_table(doc)


def test_sweep_numbers_and_table_of_a_saturated_curve(tmp_path):
    from rnnlm.sweepgrid import summarize
    from rnnlm.sweepjobs import curve_numbers
    n = curve_numbers(saturated_doc())
    assert n["vanish_lag"] == 1 and n["zero_lag"] == 1 and n["factor_per_step"] is None
    row = {"name": "boom", "status": "done", "settings": {"train": {"model": {"cell": "rnn"}}},
           "best_val_ppl": 5.0, **{f"lag_{k}": v for k, v in n.items() if k != "quantity"}}
    (tmp_path / "sweep.jsonl").write_text(json.dumps(row) + "\n")
    table = summarize(tmp_path)
    assert "undefined: 0 from lag 1" in table and "| 1 |" in table


# ---------------------------------------------------------------- 4. lag_curve checks its arguments


@pytest.mark.parametrize("kw, exc, words", [
    (dict(anchors=0), ValueError, "anchors must be at least 1, got 0"),
    (dict(max_lag=0), ValueError, "max_lag must be at least 1, got 0"),
    (dict(max_lag=-3), ValueError, "max_lag must be at least 1"),
    (dict(anchors="4"), TypeError, "anchors must be an int, got '4'"),
    (dict(max_lag=2.5), TypeError, "max_lag must be an int"),
    (dict(anchors=True), TypeError, "anchors must be an int"),
    (dict(rng=3), TypeError, "rng must be a numpy Generator"),
    (dict(tokens=tokens().astype(float) + 0.7), TypeError, "tokens must be integer token ids, got dtype float64"),
    (dict(tokens=tokens().reshape(2, 20)), ValueError, "tokens must be 1-D"),
    (dict(tokens=tokens() + V), ValueError, "tokens must be ids in [0, 10]"),
    (dict(quantities=["bogus"]), ValueError, "quantities: unknown 'bogus'"),
    (dict(quantities=["c"]), ValueError, "a rnn model has h"),
    (dict(tol=0), ValueError, "tol must be a number in (0, 1)"),
])
def test_lag_curve_refuses_bad_arguments_by_name(kw, exc, words):
    args = dict(tokens=tokens(), max_lag=5, anchors=3)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # no "Mean of empty slice" on the way
        with pytest.raises(exc) as info:
            jac.lag_curve(make_model(), **args)
    assert "lag_curve: " in str(info.value) and words in str(info.value)


def test_lag_curve_still_takes_numpy_ints_and_one_quantity_name():
    out = jac.lag_curve(make_model("lstm"), tokens().astype(np.int32), np.int64(4), np.int32(3),
                        np.random.default_rng(0), quantities="h", per_step=False)
    assert set(out["curves"]["layer0"]) == {"h", "flow"}


def test_the_limits_are_the_clis():
    from rnnlm.config import RANGES
    assert RANGES["anchors"].accepts(1) and not RANGES["anchors"].accepts(0)
    assert RANGES["max_lag"].accepts(1) and not RANGES["max_lag"].accepts(0)
