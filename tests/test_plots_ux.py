"""Training figures as a new user reads them: the timed (report-only) validations of --eval-minutes."""
import json
import math

import numpy as np

from rnnlm import plots

from test_plots_figures import _close, _fake_run, _legend


def _add_events(run, events):
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(e) + "\n" for e in events))


def test_training_figure_draws_timed_validations_as_their_own_report_only_series(tmp_path):
    run = _fake_run(tmp_path / "r", losses=(5.0, 4.8, 4.6, 4.5), norms=(1.0, 1.0, 1.0, 1.0), val_ppl=90.0)
    _add_events(run, [{"type": "timed_eval", "split": "valid", "step": k, "epoch": 1, "val_loss": math.log(p),
                       "val_ppl": p, "tokens": 400, "of_tokens": 4000, "time": 60.0 * k}
                      for k, p in ((1, 140.0), (2, 120.0), (3, 101.5))])
    fig = plots.draw_training(run)
    ax = fig.axes[0]
    (timed,) = [ln for ln in ax.get_lines() if "timed validation" in ln.get_label()]
    np.testing.assert_array_equal(timed.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(timed.get_ydata(), np.log([140.0, 120.0, 101.5]))
    assert timed.get_marker() == "D" and timed.get_linestyle() == ":"
    label = timed.get_label()
    assert "on 400 of 4,000 tokens" in label and "last perplexity 101.50" in label
    assert "report only" in label and "best-model" in label and "annealing" in label
    (scheduled,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("validation (")]
    np.testing.assert_array_equal(scheduled.get_xdata(), [4])
    assert "drives lr annealing" in scheduled.get_label()
    assert label in _legend(ax) and scheduled.get_label() in _legend(ax)
    _close(fig)


def test_training_figure_without_timed_validations_is_unchanged(tmp_path):
    run = _fake_run(tmp_path / "r", val_ppl=90.0)
    fig = plots.draw_training(run)
    assert not [t for t in _legend(fig.axes[0]) if "timed" in t]
    assert "validation (last perplexity 90.00)" in _legend(fig.axes[0])
    _close(fig)


def test_a_run_with_only_timed_validations_still_plots(tmp_path):
    run = _fake_run(tmp_path / "r", losses=(), norms=())
    _add_events(run, [{"type": "timed_eval", "split": "valid", "step": 7, "epoch": 1, "val_loss": 5.0,
                       "val_ppl": math.exp(5.0), "tokens": 10, "of_tokens": 20, "time": 1.0}])
    fig = plots.draw_training(run)
    assert any("timed validation" in t for t in _legend(fig.axes[0]))
    _close(fig)
