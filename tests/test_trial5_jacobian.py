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
from rnnlm import jacobianrun
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
    lines = jacobianrun.format_table(saturated_doc()).splitlines()
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
    lines = jacobianrun.format_table(doc).splitlines()
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
    line = jacobianrun.decay_line(series, "spectral", "rnn")
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
    assert "exactly 0 from lag 1" in jacobianrun.format_table(doc)


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
    from rnnlm.settings import RANGES
    assert RANGES["anchors"].accepts(1) and not RANGES["anchors"].accepts(0)
    assert RANGES["max_lag"].accepts(1) and not RANGES["max_lag"].accepts(0)


# ---------------------------------------------------------------- 2. the plots show zeros, never drop them


def _legend(ax) -> list[str]:
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def _zero_marks(ax):
    """The zero marks drawn in `ax` (the legend's sample of ZERO_NOTE has no data and does not count)."""
    return [ln for ln in ax.get_lines() if ln.get_marker() == "v" and len(ln.get_xdata())]


def _strip_below(fig, ax):
    """The zero strip of `ax`: a child axes right under it, as wide, sharing its x axis; it carries the
    x tick labels and the x label, and `ax` none."""
    from rnnlm.plots import ZERO_STRIP_LABEL, zero_strip
    strip = zero_strip(ax)
    assert strip is not None and ax.child_axes == [strip]
    fig.canvas.draw()                                       # lay both out as saved
    a, b = ax.get_window_extent(), strip.get_window_extent()
    assert b.y1 <= a.y0 and a.y0 - b.y1 < 0.15 * fig.dpi   # directly below, not inside
    assert abs(a.x0 - b.x0) < 1 and abs(a.x1 - b.x1) < 1    # as wide
    assert ax.get_shared_x_axes().joined(ax, strip) and strip.get_xlim() == ax.get_xlim()
    assert strip.get_ylabel() == ZERO_STRIP_LABEL and strip.get_yticks().size == 0
    assert strip.get_xlabel() == "lag d (time steps)" and ax.get_xlabel() == ""
    assert not any(t.get_visible() and t.get_text() for t in ax.get_xticklabels())
    assert any(t.get_text() for t in strip.get_xticklabels())
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 <= strip.get_tightbbox().y0 + 1       # the legend under the strip's labels
    return strip


def test_plot_lag_marks_the_zero_lags_in_a_strip_below_and_says_why(tmp_path):
    from rnnlm.plotlag import draw_lag
    from rnnlm.plots import NOTHING_POSITIVE, ZERO_NOTE
    fig = draw_lag([saturated_doc()])
    ax = fig.axes[0]
    assert fig.axes == [ax]                                 # the strip is ax's child, not a second subplot
    strip = _strip_below(fig, ax)
    assert _zero_marks(ax) == []                            # never inside the log axes
    marks = _zero_marks(strip)
    assert len(marks) == 1 and list(marks[0].get_xdata()) == list(range(1, 9))
    legend = _legend(ax)
    assert ZERO_NOTE in legend
    assert any("exactly 0 from lag 1: every unit saturated (f'(z) = 0), nothing flows back" in t for t in legend)
    lo, hi = ax.get_xlim()
    assert lo < 1 and hi > 8 and hi - lo < 10              # the measured lags, not -0.04..0.04
    # nothing positive: no arbitrary decades on the log axis, a note instead (and no y = 1 line)
    assert [t.get_text() for t in ax.texts] == [NOTHING_POSITIVE]
    assert len(ax.get_yticks()) == 0 and [ln for ln in ax.get_lines() if len(ln.get_xdata())] == [ax.get_lines()[0]]
    import matplotlib.pyplot as plt
    plt.close(fig)


def _normal_doc():
    doc = jac.lag_curve(make_model("rnn"), tokens(), 8, 4, np.random.default_rng(0), per_step=False)
    doc["meta"].update(source="init", seed=0, text="random:11")
    return doc


def test_plot_lag_of_a_zero_and_a_normal_curve_keeps_the_log_axis_to_the_normal_one():
    from rnnlm.plotlag import draw_lag
    from rnnlm.plots import ZERO_NOTE
    normal = _normal_doc()
    fig = draw_lag([normal, saturated_doc()])
    ax = fig.axes[0]
    strip = _strip_below(fig, ax)
    marks = _zero_marks(strip)
    assert len(marks) == 1 and marks[0].get_color() == ax.get_lines()[1].get_color()   # the zero curve's colour
    med = normal["curves"]["layer0"]["h"]["spectral"]["median"]
    lo, hi = ax.get_ylim()
    assert lo > min(med) / 10 and hi < 10                  # the normal curve (and y = 1), nothing else
    assert len(ax.texts) == 0 and ZERO_NOTE in _legend(ax)
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_plot_lag_of_a_normal_curve_has_no_zero_marks_and_no_strip():
    from rnnlm.plotlag import draw_lag
    from rnnlm.plots import ZERO_NOTE
    fig = draw_lag([_normal_doc()])
    ax = fig.axes[0]
    assert fig.axes == [ax] and ax.child_axes == []         # one axes, as before
    assert _zero_marks(ax) == [] and ZERO_NOTE not in _legend(ax)
    assert ax.get_xlabel() == "lag d (time steps)" and tuple(fig.get_size_inches()) == (7.5, 5.6)
    import matplotlib.pyplot as plt
    plt.close(fig)


def _tracked_run(folder, docs_by_step):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"train": {"model": {"cell": "rnn", "activation": "tanh",
                                                                       "hidden": H, "init": "orthogonal",
                                                                       "recurrent_scale": 3.0},
                                                             "clip_norm": 0.0, "optimizer": "sgd", "seed": 0}}))
    events = [{"type": "jacobian", "step": step, "meta": {k: d["meta"][k] for k in ("max_lag", "anchors", "tokens")},
               "curves": d["curves"]} for step, d in docs_by_step]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


def test_lag_over_training_marks_every_zero_recording(tmp_path):
    from rnnlm.plotruns import draw_lag_over_training
    from rnnlm.plots import ZERO_NOTE
    normal = jac.lag_curve(make_model("rnn"), tokens(), 8, 4, np.random.default_rng(0), per_step=False)
    zero = saturated_doc()
    run = _tracked_run(tmp_path / "run", [(0, normal), (10, zero), (20, zero)])
    fig = draw_lag_over_training(run)
    ax, colorbar = fig.axes                                 # the main axes and the colorbar: the strip is ax's
    strip = _strip_below(fig, ax)
    assert _zero_marks(ax) == []
    marks = _zero_marks(strip)
    assert len(marks) == 2                                  # one row of marks per zero recording
    assert len({tuple(m.get_ydata()) for m in marks}) == 2  # on rows of their own: neither hides the other
    assert marks[0].get_color() != marks[1].get_color()     # coloured by step, as the curves
    assert colorbar.get_window_extent().x0 > strip.get_window_extent().x1
    med = normal["curves"]["layer0"]["h"]["spectral"]["median"]
    lo, hi = ax.get_ylim()
    assert lo > min(med) / 10 and hi < 10                  # the limits of the positive curve, not of the marks
    legend = _legend(ax)
    assert ZERO_NOTE in legend
    assert any(t.startswith("2 of 3 recordings (steps 10, 20): exactly 0 from lag 1") for t in legend)
    lo, hi = ax.get_xlim()
    assert lo < 1 and hi > 8
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_lag_over_training_of_zeros_only_says_there_is_nothing_to_draw(tmp_path):
    from rnnlm.plotruns import draw_lag_over_training
    from rnnlm.plots import NOTHING_POSITIVE
    zero = saturated_doc()
    run = _tracked_run(tmp_path / "run", [(step, zero) for step in range(0, 80, 10)])
    fig = draw_lag_over_training(run)
    ax = fig.axes[0]
    strip = _strip_below(fig, ax)
    assert len(_zero_marks(strip)) == 8 and [t.get_text() for t in ax.texts] == [NOTHING_POSITIVE]
    assert len(ax.get_yticks()) == 0
    assert any(t.startswith("8 of 8 recordings (steps 0, 10, 20, …, 60, 70): exactly 0") for t in _legend(ax))
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_lag_over_training_without_zeros_has_no_strip(tmp_path):
    from rnnlm.plotruns import draw_lag_over_training
    normal = jac.lag_curve(make_model("rnn"), tokens(), 8, 4, np.random.default_rng(0), per_step=False)
    fig = draw_lag_over_training(_tracked_run(tmp_path / "run", [(0, normal), (10, normal)]))
    ax = fig.axes[0]
    assert len(fig.axes) == 2 and ax.child_axes == []       # the axes and its colorbar, as before
    assert ax.get_xlabel() == "lag d (time steps)" and _zero_marks(ax) == []
    import matplotlib.pyplot as plt
    plt.close(fig)


# ---------------------------------------------------------------- 3. the bound of plot lag --bound, and clipping


def _flat_doc(per_step=6.99, level=2.0, D=30):
    med = [level] * D
    summ = {"median": med, "geomean": med, "p10": [level / 1.5] * D, "p90": [level * 1.5] * D}
    lags = list(range(1, D + 1))
    return {"meta": {"cell": "rnn", "activation": "tanh", "init": "default", "recurrent_scale": 3.0, "H": 16,
                     "layers": 1, "anchors": 8, "tokens": 300, "seed": 0, "source": "300 validation tokens",
                     "bound_per_step": [per_step]},
            "curves": {"layer0": {"h": {"lag": lags, "spectral": summ, "frobenius": summ},
                                  "flow": {"lag": lags, "norm": summ}}}}


def test_a_bound_cut_after_lag_1_is_drawn_up_to_where_it_leaves_the_range():
    from rnnlm.plotlag import draw_lag
    fig = draw_lag([_flat_doc()], bound=True)
    ax = fig.axes[0]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 2                     # the bound at the lags, and on to where it leaves the range
    x = np.concatenate([np.asarray(ln.get_xdata(), float) for ln in dashed])
    y = np.concatenate([np.asarray(ln.get_ydata(), float) for ln in dashed])
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    shown = np.isfinite(y)
    assert shown.sum() >= 2 and x[shown][0] == 1 and 1 < x[shown][-1] < 2   # a segment, not one point
    lo, hi = ax.get_ylim()
    assert all(lo <= v <= hi for v in y[shown])
    label = [t for t in _legend(ax) if t.startswith("bound")][0]
    assert "leaves the plotted range at d = 1." in label and "it reaches" in label
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_a_bound_above_the_range_from_lag_1_says_so():
    from rnnlm.plotlag import draw_lag
    fig = draw_lag([_flat_doc(per_step=500.0)], bound=True)
    label = [t for t in _legend(fig.axes[0]) if t.startswith("bound")][0]
    assert "above the plotted range from d = 1" in label
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_a_sweep_jobs_curve_reads_its_clipping_from_the_job_folder(tmp_path):
    from rnnlm.plotlag import draw_lag
    from rnnlm.plotlag import load_lag_doc
    job = tmp_path / "job"
    job.mkdir()
    (job / "config.json").write_text(json.dumps({"train": {"model": {"cell": "rnn"}, "clip_norm": 0.25}}))
    (job / "jacobian.json").write_text(json.dumps(_flat_doc()))      # written without meta.clip
    assert load_lag_doc(job)["meta"]["clip"] == "clip-norm 0.25"
    assert load_lag_doc(job / "jacobian.json")["meta"]["clip"] == "clip-norm 0.25"
    fig = draw_lag([job], bound=True)
    title = fig.axes[0].get_title()
    assert "clip-norm 0.25" in title and "clipping not recorded" not in title
    import matplotlib.pyplot as plt
    plt.close(fig)
