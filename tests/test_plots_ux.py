"""Figures as a new user reads them: the timed (report-only) validations of --eval-minutes, legends
that never hide the data, and axis labels inside the image."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rnnlm import plotlag, plotruns, plots

from test_plots_figures import _close, _fake_run, _legend


def _add_events(run, events):
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(e) + "\n" for e in events))


def test_training_figure_draws_timed_validations_as_their_own_report_only_series(tmp_path):
    run = _fake_run(tmp_path / "r", losses=(5.0, 4.8, 4.6, 4.5), norms=(1.0, 1.0, 1.0, 1.0), val_ppl=90.0)
    _add_events(run, [{"type": "timed_eval", "split": "valid", "step": k, "epoch": 1, "val_loss": math.log(p),
                       "val_ppl": p, "tokens": 400, "of_tokens": 4000, "time": 60.0 * k}
                      for k, p in ((1, 140.0), (2, 120.0), (3, 101.5))])
    fig = plotruns.draw_training(run)
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
    fig = plotruns.draw_training(run)
    assert not [t for t in _legend(fig.axes[0]) if "timed" in t]
    assert "validation (last perplexity 90.00)" in _legend(fig.axes[0])
    _close(fig)


def test_a_run_with_only_timed_validations_still_plots(tmp_path):
    run = _fake_run(tmp_path / "r", losses=(), norms=())
    _add_events(run, [{"type": "timed_eval", "split": "valid", "step": 7, "epoch": 1, "val_loss": 5.0,
                       "val_ppl": math.exp(5.0), "tokens": 10, "of_tokens": 20, "time": 1.0}])
    fig = plotruns.draw_training(run)
    assert any("timed validation" in t for t in _legend(fig.axes[0]))
    _close(fig)


# ---------------------------------------------------------------- no legend covers the data


def _covered_by_legends(fig) -> list:
    """(axes index, artist label) of every drawn data point (line vertices, with points every few pixels
    along each segment, and scatter points) that a legend's box covers. Also asserts that every legend
    lies inside the figure (not cut off by the saved image's edge)."""
    fig.canvas.draw()
    covered = []
    for k, ax in enumerate(fig.axes):
        legend = ax.get_legend()
        if legend is None:
            continue
        box, page, inside = legend.get_window_extent(), fig.bbox, ax.bbox
        assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y0 >= page.y0 - 1 \
            and box.y1 <= page.y1 + 1, (k, box, page)
        drawn = []
        for line in ax.get_lines():
            xy = np.asarray(line.get_xydata(), float)
            if len(xy) == 0:
                continue
            xy = line.get_transform().transform(xy)
            xy = xy[np.isfinite(xy).all(axis=1)]
            pts = [xy]
            for a, b in zip(xy[:-1], xy[1:]):
                n = int(np.hypot(*(b - a)) // 3) + 2
                pts.append(a + (b - a) * np.linspace(0, 1, n)[:, None])
            drawn.append((line.get_label(), np.concatenate(pts)))
        for coll in ax.collections:
            offsets = np.asarray(coll.get_offsets(), float)
            if len(offsets):
                drawn.append((coll.get_label(), coll.get_offset_transform().transform(offsets)))
        for label, pts in drawn:
            pts = pts[(pts[:, 0] >= inside.x0) & (pts[:, 0] <= inside.x1) & (pts[:, 1] >= inside.y0)
                      & (pts[:, 1] <= inside.y1)]          # what the axes clip away is not shown anyway
            if ((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)).any():
                covered.append((k, label))
    return covered


def _filling_run(folder, n=120):
    """A run whose curves fill their axes (noisy losses and norms, many clipped steps, a few validations)."""
    rng = np.random.default_rng(0)
    run = _fake_run(folder, cell="lstm", losses=tuple(5.0 + rng.random() for _ in range(n)),
                    norms=tuple(0.05 + 0.5 * rng.random() for _ in range(n)))
    _add_events(run, [{"type": "eval", "split": "valid", "step": s, "val_loss": 5.0 + rng.random(),
                       "val_ppl": 150.0, "next_lr": 5.0 / (1 + (s > 60))} for s in (20, 40, 60, 80, 100, 120)])
    return run


def test_no_legend_covers_the_data_of_any_figure(tmp_path):
    from test_plots_figures import _doc
    figures = {"training": plotruns.draw_training(_filling_run(tmp_path / "t"))}
    rng = np.random.default_rng(1)
    tracked = _fake_run(tmp_path / "j", cell="rnn", scale=1.5,
                        jacobian_docs=[_doc("rnn", scale=1.5), _doc("rnn", scale=1.2), _doc("rnn")])
    figures["lag over training"] = plotruns.draw_lag_over_training(tracked)
    figures["lag"] = plotlag.draw_lag([_doc("rnn", scale=1.5), _doc("lstm")], None, bound=True)
    a = _fake_run(tmp_path / "a", clip_norm=0.0, losses=tuple(5 + 0.05 * k for k in range(60)),
                  norms=tuple(1.2 ** k for k in range(60)))
    b = _fake_run(tmp_path / "b", clip_norm=0.25, losses=tuple(5 + rng.random() for _ in range(60)),
                  norms=tuple(0.2 + rng.random() for _ in range(60)))
    figures["explosion"] = plotruns.draw_explosion(a, b, "no clipping vs --clip-norm 0.25")
    results = {f"rnn-{act}-x{g}": {"gain": g, "factor_per_step": f} for act in ("tanh", "lecun-tanh")
               for g, f in ((0.5, 0.5), (1.0, 0.97), (2.0, 1.19))}
    results.update({"lstm": {"factor_per_step": 0.749}, "gru": {"factor_per_step": 0.75}})
    figures["factor summary"] = plotruns.draw_factor_summary(results, ["tanh", "lecun-tanh"], (0.5, 1.0, 2.0))
    rows = [{"distance": d, "n": 10, "mean_increase": m, "sem": 0.01, "ci": [m - 0.02, m + 0.02]}
            for d, m in ((1, 2.0), (2, 0.8), (5, 0.1), (10, 0.0))]
    probe = tmp_path / "p" / "probe-context-shuffle.json"
    probe.parent.mkdir()
    probe.write_text(json.dumps({"run": str(probe.parent), "cell": "rnn", "probe": "context", "mode": "shuffle",
                                 "window": 20, "seed": 0, "n_targets": 10, "results": rows,
                                 "effective_context": 5, "model": {"cell": "rnn"}}))
    figures["probe"] = plotruns.draw_probe([probe])
    for name, fig in figures.items():
        assert [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None], name
        assert _covered_by_legends(fig) == [], name
        _close(fig)


def _sweep_figure(tmp_path, monkeypatch, rows, x):
    """The figure `plot sweep` draws of best_val_ppl against x, one hue per cell, for these sweep.jsonl rows."""
    from rnnlm import sweepplot
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, out: figures.append(fig) or out)
    sweepplot.plot_sweep(folder, x, "best_val_ppl", hue="cell")
    (fig,) = figures
    return fig


def test_the_sweep_figure_legend_does_not_cover_the_data_either(tmp_path, monkeypatch):
    # 16 scales x 3 cells x 4 seeds: dots everywhere, where loc="best" had to put the legend on some
    rng = np.random.default_rng(2)
    rows = [{"name": f"cell={c},scale={s},seed={k}", "fn": "x:y", "settings": {"cell": c, "recurrent_scale": s,
                                                                                "seed": k},
             "status": "done", "best_val_ppl": float(100 + 400 * rng.random()), "steps": 10, "wall_s": 1.0,
             "worker": "w", "attempts": 1}
            for c in ("rnn", "lstm", "gru") for s in np.linspace(0.25, 4.0, 16).tolist() for k in range(4)]
    fig = _sweep_figure(tmp_path, monkeypatch, rows, "recurrent_scale")
    assert fig.axes[0].get_legend() is not None and _covered_by_legends(fig) == []
    _close(fig)


@pytest.mark.parametrize("bptt", [0, 20])
def test_the_study_figures_put_their_legends_under_the_axes(tmp_path, monkeypatch, bptt):
    # without a BPTT window marked, loc="best" put the legend on the success rates of some distance

    from rnnlm import config as C
    from rnnlm import study
    from test_study_ux3 import _row
    cfg = C.StudyConfig(distances="5,10,20,40", cells="rnn,rnn-orth,lstm,gru", seeds="0,1,2",
                        train=C.TaskTrainConfig(bptt=bptt))
    rows = [_row(c, d, s, (s + d + len(c)) % 2 == 0, 100 * (1 + s)) for c in cfg.cell_list()
            for d in cfg.distance_list() for s in cfg.seed_list()]
    from rnnlm import plots
    seen, original = {}, plots.write_figure

    def write_figure(self, files):
        for fname in files:
            if Path(fname).suffix == ".png":
                self.canvas.draw()
                ax = self.axes[0]
                legend = ax.get_legend()
                seen[Path(fname).stem] = legend is not None and legend.get_window_extent().y1 <= ax.bbox.y0
        return original(self, files)
    monkeypatch.setattr(plots, "write_figure", write_figure)
    study.write_figures(cfg, study.summarize(cfg, rows), tmp_path, formats=("png",))
    assert seen == {"success": True, "steps": True, "gradient": True}


def test_the_sweep_figure_y_label_stays_inside_the_image(tmp_path, monkeypatch):
    # a long y label (the column's words, its name and "(mean; dots: single runs)") ran out at the top
    rng = np.random.default_rng(3)
    rows = [{"name": f"cell={c},hidden={h},seed={k}", "fn": "x:y", "settings": {"cell": c, "hidden": h, "seed": k},
             "status": "done", "best_val_ppl": float(100 + 400 * rng.random()), "steps": 10, "wall_s": 1.0,
             "worker": "w", "attempts": 1}
            for c in ("rnn", "lstm", "gru") for h in (16, 32, 64) for k in range(2)]
    fig = _sweep_figure(tmp_path, monkeypatch, rows, "hidden")
    fig.canvas.draw()
    label = fig.axes[0].yaxis.label
    box = label.get_window_extent()
    assert box.y0 >= fig.bbox.y0 and box.y1 <= fig.bbox.y1 and box.x0 >= fig.bbox.x0, (box, fig.bbox)
    assert " ".join(label.get_text().split()) == ("best validation perplexity [best_val_ppl] "
                                                 "(geometric mean; dots: single runs)")   # wrapped, not shortened
    _close(fig)
