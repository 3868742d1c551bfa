"""plot probe on a run folder of the long-range demo, which holds probe-agreement-number.json (d = 1..30) and
probe-agreement-number-far.json (d = 35..80): one model's measurements at disjoint distances, drawn as one
curve in one colour with one legend entry (it drew each model twice, in two colours under one label); two
files of one run that overlap in distance or differ in settings stay two curves, named by their files."""
import json

import pytest

from rnnlm import plotruns
from rnnlm.cli import main

from test_plots_figures import _close, _legend


def _agreement(distances, seed=0, acc=0.9):
    return {"format": "rnnlm-probe/1", "probe": "agreement", "feature": "number", "cell": "rnn", "label": "rnn-clip",
            "seed": seed, "n_per_distance": 100, "distances": list(distances),
            "by_distance": [{"distance": d, "n": 100, "accuracy": acc - d / 1000, "ci": [acc - 0.1, acc + 0.05]}
                            for d in distances]}


def _context(distances, within):
    return {"format": "rnnlm-probe/1", "probe": "context", "mode": "shuffle", "cell": "lstm", "seed": 0,
            "window": 100, "n_targets": 50, "n_targets_asked": 50, "distances": list(distances),
            "effective_context": None,
            "results": [{"distance": d, "n": 50, "mean_increase": 0.01, "ci": [-0.01, 0.03], "within_noise": w}
                        for d, w in zip(distances, within)]}


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "rnn-clip"
    run.mkdir()
    (run / "probe-agreement-number.json").write_text(json.dumps(_agreement(range(1, 4))))
    (run / "probe-agreement-number-far.json").write_text(json.dumps(_agreement([35, 40, 80])))
    return run


def _curves(ax):
    """The drawn data lines (not the chance line): their x values."""
    return [list(line.get_xdata()) for line in ax.get_lines() if line.get_marker() == "o"]


def test_near_and_far_files_of_one_run_are_one_curve(run, tmp_path, capsys):
    paths = sorted(run.glob("probe-agreement*.json"))
    fig = plotruns.draw_probe(paths)
    ax = fig.axes[0]
    assert _curves(ax) == [[1, 2, 3, 35, 40, 80]]       # merged by distance: near and far in one line
    assert _legend(ax) == ["rnn (rnn-clip)", "chance (0.5)"]
    assert len(ax.collections) == 1                      # one band
    _close(fig)
    # the command on the run folder: one curve, so one label
    assert main(["plot", "probe", str(run), "--labels", "rnn", "--out", str(tmp_path / "f.png")]) == 0
    assert main(["plot", "probe", str(run), "--labels", "a,b", "--out", str(tmp_path / "g.png")]) == 2
    assert ("--labels gives 2 labels for 1 curve (2 probe results; the files of one run at disjoint distances "
            "make one curve)") in capsys.readouterr().err


def test_files_that_overlap_or_differ_are_named_apart(run):
    far = run / "probe-agreement-number-far.json"
    far.write_text(json.dumps(_agreement([3, 35, 40])))             # d = 3 measured twice: two curves
    fig = plotruns.draw_probe(sorted(run.glob("probe-agreement*.json")))
    assert _curves(fig.axes[0]) == [[3, 35, 40], [1, 2, 3]]
    assert _legend(fig.axes[0])[:2] == ["rnn (rnn-clip, probe-agreement-number-far)",
                                        "rnn (rnn-clip, probe-agreement-number)"]
    _close(fig)
    far.write_text(json.dumps(_agreement([35, 40], seed=1)))        # another probe seed: not one measurement
    fig = plotruns.draw_probe(sorted(run.glob("probe-agreement*.json")))
    assert _curves(fig.axes[0]) == [[35, 40], [1, 2, 3]]
    _close(fig)


def test_the_same_file_twice_is_still_drawn_twice(run):
    near = run / "probe-agreement-number.json"
    fig = plotruns.draw_probe([near, near])
    assert _curves(fig.axes[0]) == [[1, 2, 3], [1, 2, 3]]
    assert _legend(fig.axes[0])[:2] == ["rnn (rnn-clip)", "rnn (rnn-clip)"]
    _close(fig)


def test_merged_context_curve_finds_its_effective_context_over_both_files(tmp_path):
    run = tmp_path / "lstm-run"
    run.mkdir()
    (run / "probe-context-shuffle.json").write_text(json.dumps(_context([1, 2, 5], [False, False, True])))
    (run / "probe-context-shuffle-far.json").write_text(json.dumps(_context([20, 50], [True, True])))
    fig = plotruns.draw_probe(sorted(run.glob("probe-context*.json")))
    ax = fig.axes[0]
    assert _curves(ax) == [[1, 2, 5, 20, 50]]
    assert _legend(ax)[0] == "lstm (lstm-run); effective context 5"
    assert [list(line.get_xdata()) for line in ax.get_lines()
            if line.get_linestyle() == ":" and len(line.get_xdata())] == [[5, 5]]     # its one dotted mark
    _close(fig)
