"""plot probe takes --labels (one per curve, checked) as plot lag does, and says when an input is given
twice (its curve drawn on top of itself), once per repeated input, not once per file it holds."""
import pytest

from rnnlm import plotruns
from rnnlm.cli import main
from rnnlm.errors import UserError

from test_plots_figures import _close, _legend, _probe_run


@pytest.fixture(scope="module")
def two_results(tmp_path_factory):
    run = _probe_run(tmp_path_factory.mktemp("probe"))
    a, b = run / "probe-agreement.json", run / "probe-agreement-b.json"
    for out in (a, b):
        assert main(["probe", "agreement", str(run), "--distances", "1..2", "--n", "4", "--out", str(out),
                     "--checkpoint", "latest"]) == 0
    return run, a, b


def test_plot_probe_labels_one_curve_each(two_results, tmp_path, capsys):
    run, a, b = two_results
    capsys.readouterr()
    assert main(["plot", "probe", str(a), str(b), "--labels", "before, after", "--out", str(tmp_path / "f.png")]) == 0
    assert capsys.readouterr().err == ""
    fig = plotruns.draw_probe([a, b], labels=["before", "after"])
    assert _legend(fig.axes[0])[:2] == ["before", "after"]
    _close(fig)
    # a run folder gives one curve per probe-agreement*.json it holds (two here)
    assert main(["plot", "probe", str(run), "--labels", "x", "--out", str(tmp_path / "g.png")]) == 2
    assert capsys.readouterr().err == ("error: --labels gives 1 label for 2 curves (2 probe results); give one "
                                       "non-empty label per curve, separated by commas\n")
    assert main(["plot", "probe", str(a), str(b), "--labels", "x,", "--out", str(tmp_path / "h.png")]) == 2
    assert "--labels gives 2 labels (one empty) for 2 curves" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "h.png").exists()
    with pytest.raises(UserError, match="^1 labels for 2 curves$"):
        plotruns.draw_probe([a, b], labels=["x"])


def test_plot_probe_says_an_input_given_twice(two_results, tmp_path, capsys):
    run, a, _ = two_results
    capsys.readouterr()
    assert main(["plot", "probe", str(run), str(run), "--out", str(tmp_path / "f.png")]) == 0
    assert capsys.readouterr().err == f"note: {run} is the same input as {run}: its curves are drawn twice\n"
    assert main(["plot", "probe", str(run), str(a), "--out", str(tmp_path / "f.png")]) == 0
    assert capsys.readouterr().err == f"note: {a} is the same input as {run}: its curve is drawn twice\n"
