"""Comparison figures whose curves coincide: an lstm and a gru at init, both 0.75 per step, drew the gru's
line over the lstm's, which vanished; two vanilla RNNs whose bounds are both 1^d listed two identical
entries for one visible line. Each curve now has its own pattern, and a shared bound is drawn once."""
import numpy as np

from rnnlm import plotlag

from test_plots_figures import _close, _legend


def _doc(cell, per_step=0.75, bound=None, D=6):
    med = [per_step ** d for d in range(1, D + 1)]
    summ = {"median": med, "geomean": med, "p10": [m * 0.9 for m in med], "p90": [m * 1.1 for m in med]}
    lags = list(range(1, D + 1))
    meta = {"cell": cell, "activation": "tanh", "init": "orthogonal", "recurrent_scale": 1.0, "H": 16, "layers": 1,
            "anchors": 4, "tokens": 100, "seed": 0, "source": "init"}
    if bound is not None:
        meta["bound_per_step"] = [bound]
    return {"meta": meta, "curves": {"layer0": {"h": {"lag": lags, "spectral": summ, "frobenius": summ},
                                                "state": {"lag": lags, "spectral": summ, "frobenius": summ},
                                                "flow": {"lag": lags, "norm": summ}}}}


def _data_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_marker() == "o"]


def test_coinciding_curves_each_stay_visible():
    fig = plotlag.draw_lag([_doc("lstm"), _doc("gru")], labels=["lstm", "gru"])
    lstm, gru = _data_lines(fig.axes[0])
    assert np.allclose(lstm.get_ydata(), gru.get_ydata())              # the same values...
    assert lstm.get_linestyle() == "-" and gru.get_linestyle() != "-"  # ...the later one patterned over it
    assert gru.get_linewidth() < lstm.get_linewidth()
    assert lstm.get_color() != gru.get_color()
    _close(fig)
    one = plotlag.draw_lag([_doc("lstm")])                              # a curve alone: as before
    (line,) = _data_lines(one.axes[0])
    assert line.get_linestyle() == "-" and line.get_linewidth() == 1.5
    _close(one)


def test_identical_bounds_are_drawn_and_listed_once():
    fig = plotlag.draw_lag([_doc("rnn", 1.0, bound=1.0), _doc("rnn", 0.9, bound=1.0)], labels=["a", "b"],
                           bound=True)
    ax = fig.axes[0]
    bounds = [ln for ln in ax.get_lines() if ln.get_label().startswith("bound")]
    assert [ln.get_label() for ln in bounds] == ["bound (‖W_hh‖·max|f′|)^d = 1^d, for a and b"]
    assert [e for e in _legend(ax) if e.startswith("bound")] == ["bound (‖W_hh‖·max|f′|)^d = 1^d, for a and b"]
    _close(fig)
    # different bounds: one each, in its curve's colour
    fig = plotlag.draw_lag([_doc("rnn", 1.0, bound=1.0), _doc("rnn", 0.9, bound=0.95)], labels=["a", "b"],
                           bound=True)
    ax = fig.axes[0]
    bounds = [ln for ln in ax.get_lines() if ln.get_label().startswith("bound")]
    assert [ln.get_label() for ln in bounds] == ["bound (‖W_hh‖·max|f′|)^d = 1^d",
                                                 "bound (‖W_hh‖·max|f′|)^d = 0.95^d"]
    assert [ln.get_color() for ln in bounds] == [ln.get_color() for ln in _data_lines(ax)]
    _close(fig)


def test_probe_curves_at_the_same_accuracy_each_stay_visible(tmp_path):
    import json

    from rnnlm import plotruns
    from test_plotprobe_far import _agreement
    paths = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        paths.append(tmp_path / name / "probe-agreement-number.json")
        paths[-1].write_text(json.dumps(_agreement([1, 2, 3])))
    fig = plotruns.draw_probe(paths)
    a, b = _data_lines(fig.axes[0])
    assert np.allclose(a.get_ydata(), b.get_ydata()) and a.get_linestyle() != b.get_linestyle()
    _close(fig)
