"""plot training's log axes label their ticks with one precision: each test fails without its fix.

A loss that moved little (6.2200 to 6.2250) was labelled "6.22  6.2225  6.225": %g drops trailing zeros,
so neighbouring labels of one axis showed different numbers of decimals.
"""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from rnnlm.plotruns import _readable_log_ticks, tick_labels  # noqa: E402


@pytest.mark.parametrize("ticks, labels", [
    ([6.22, 6.2225, 6.225], ["6.2200", "6.2225", "6.2250"]),
    ([0.8, 0.9, 1.0, 1.1], ["0.8", "0.9", "1.0", "1.1"]),
    ([100, 150, 200], ["100", "150", "200"]),
    ([0.5, 1, 2, 5, 10], ["0.5", "1", "2", "5", "10"]),      # across decades: %g, no "10.0"
    ([1e-6, 2e-6], ["1e-06", "2e-06"]),
])
def test_tick_labels_share_their_decimals_within_a_decade(ticks, labels):
    assert tick_labels(ticks) == labels


def test_a_narrow_log_axis_shows_labels_of_one_precision():
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_yscale("log")
    ax.plot([0, 1], [6.2201, 6.2249])
    ax.set_ylim(6.2200, 6.2250)
    chosen = _readable_log_ticks(ax)
    fig.canvas.draw()
    texts = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    plt.close(fig)
    assert len(chosen) >= 2 and len(texts) == len(chosen)
    assert len({len(t.partition(".")[2]) for t in texts}) == 1, texts
    assert [float(t) for t in texts] == pytest.approx(chosen)
