"""The explosion figure shows what clipping bounds: the size of the update applied (a teacher's trial).

Without clipping an exploding gradient's first step (lr · ‖g‖, 1.2·10⁴ in the demo) saturates the
network, whose gradient is small from then on; the norm panel alone then showed the clipped run with the
larger gradients, the opposite of the lesson. A third panel draws lr · ‖g‖ after clipping for SGD runs.
"""
import json

import numpy as np

from rnnlm import plotruns
from rnnlm.demogradients import explosion_numbers

from test_plots_figures import _fake_run


def _with_clipped_norms(folder, clip):
    """Add what train logs per step (grad_norm_clipped, lr) to a hand-written run."""
    path = folder / "metrics.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for e in events:
        if e["type"] == "step":
            e["grad_norm_clipped"] = min(e["grad_norm"], clip) if clip else e["grad_norm"]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


def test_the_explosion_figure_draws_the_update_each_run_applied(tmp_path):
    norms = (2400.0, 3.0, 5.0)
    a = _with_clipped_norms(_fake_run(tmp_path / "a", clip_norm=0.0, norms=norms), 0.0)
    b = _with_clipped_norms(_fake_run(tmp_path / "b", clip_norm=0.25, norms=(2400.0, 1000.0, 900.0)), 0.25)
    fig = plotruns.draw_explosion(a, b, "no clipping vs --clip-norm 0.25")
    assert len(fig.axes) == 3
    ax = fig.axes[2]
    assert ax.get_ylabel() == "update applied: lr · ‖g‖ after clipping" and ax.get_yscale() == "log"
    red, blue = ax.get_lines()[:2]
    np.testing.assert_allclose(red.get_ydata(), [5.0 * g for g in norms])          # lr 5 × the whole norm
    np.testing.assert_allclose(blue.get_ydata(), [5.0 * 0.25] * 3)                 # lr 5 × the threshold
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["no clipping", "clip-norm 0.25"]


def test_without_logged_clipped_norms_or_with_another_optimizer_there_is_no_update_panel(tmp_path):
    a = _fake_run(tmp_path / "a", clip_norm=0.0)                     # an older run: no grad_norm_clipped
    b = _fake_run(tmp_path / "b", clip_norm=0.25)
    assert len(plotruns.draw_explosion(a, b, "t").axes) == 2
    a, b = _with_clipped_norms(a, 0.0), _with_clipped_norms(b, 0.25)
    cfg = json.loads((b / "config.json").read_text())
    cfg["train"]["optimizer"] = "adam"                                # adam's step is not lr · g
    (b / "config.json").write_text(json.dumps(cfg))
    assert len(plotruns.draw_explosion(a, b, "t").axes) == 2


def test_explosion_numbers_give_the_first_update_and_the_gradient_after_it(tmp_path):
    norms = (2400.0,) + (3.0,) * 12
    a = _with_clipped_norms(_fake_run(tmp_path / "a", clip_norm=0.0, norms=norms, losses=(8.7,) * 13), 0.0)
    n = explosion_numbers(a)
    assert n["first_grad_norm"] == 2400.0 and n["first_update"] == 5.0 * 2400.0 == n["max_update"]
    assert n["median_grad_norm_after_10"] == 3.0
    b = _with_clipped_norms(_fake_run(tmp_path / "b", clip_norm=0.25, norms=norms, losses=(8.7,) * 13), 0.25)
    assert explosion_numbers(b)["max_update"] == 5.0 * 0.25
