"""The reference line of a lag figure: 1 (no vanishing, no explosion) for the spectral norm of ∂h_t/∂h_k
only. It was drawn at 1 in the gradient-flow figure too (nats per unit of state: 1 means nothing there) and
in the Frobenius one, where the identity's norm is √H (√(2H) for the lstm's (h,c))."""
import math

import pytest

from rnnlm import plotlag

from test_plots_coincide import _doc
from test_plots_figures import _close, _legend


def _references(ax):
    """The y of each horizontal dotted line across the axes (axhline: x from 0 to 1 in axes units)."""
    return [ln.get_ydata()[0] for ln in ax.get_lines()
            if ln.get_linestyle() == ":" and list(ln.get_xdata()) == [0, 1]]


def test_spectral_keeps_its_line_at_1():
    fig = plotlag.draw_lag([_doc("rnn")])
    assert _references(fig.axes[0]) == [1.0]
    _close(fig)


def test_flow_has_no_line_at_1():
    fig = plotlag.draw_lag([_doc("rnn")], flow=True)
    assert _references(fig.axes[0]) == []
    _close(fig)


@pytest.mark.parametrize("cells, n", [(["rnn"], 16), (["lstm"], 32), (["rnn", "gru"], 16)])
def test_frobenius_draws_the_identity_norm(cells, n):
    fig = plotlag.draw_lag([_doc(c, per_step=3.0) for c in cells], norm="frobenius")     # 3^d: 3 to 729
    ax = fig.axes[0]
    assert _references(ax) == [pytest.approx(math.sqrt(n))]
    assert f"√{n} = {math.sqrt(n):.3g}: the identity's Frobenius norm (state dimension {n})" in _legend(ax)
    _close(fig)


def test_frobenius_identity_above_every_curve_says_so():
    # 0.75^d never reaches √16: the line lies above the data's range, and its entry says where
    fig = plotlag.draw_lag([_doc("rnn")], norm="frobenius")
    assert _legend(fig.axes[0])[-1] == ("√16 = 4: the identity's Frobenius norm (state dimension 16) "
                                        "(off the plotted range, above it)")
    _close(fig)


def test_frobenius_of_curves_of_different_sizes_has_no_line():
    # an rnn's √16 and an lstm's √32: no one line is every curve's identity
    fig = plotlag.draw_lag([_doc("rnn"), _doc("lstm")], norm="frobenius")
    assert _references(fig.axes[0]) == []
    _close(fig)


@pytest.mark.parametrize("norm, flow, want", [("spectral", False, [1.0]), ("frobenius", False, [4.0]),
                                              ("spectral", True, [])])
def test_lag_over_training_draws_the_same_reference(tmp_path, norm, flow, want):
    from rnnlm import plotruns
    from test_plots_figures import _fake_run
    run = _fake_run(tmp_path / "r", jacobian_docs=[_doc("rnn"), _doc("rnn", 0.9)])     # H = 16
    fig = plotruns.draw_lag_over_training(run, norm=norm, flow=flow)
    assert _references(fig.axes[0]) == [pytest.approx(w) for w in want]
    _close(fig)
