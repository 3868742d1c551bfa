"""A user's lag-figure naming defects: two runs whose folders share a name compared into the file of one run
compared with itself, with legend entries that read the same; a figure with --bound written over the one
without it; and a comparison whose title writes W_hh ×1 where its legend wrote W_hh x1, with [state] tags
in the legend that nothing explained."""
import json
from pathlib import Path

import pytest

from rnnlm import plotlag, plotruns
from rnnlm.cli import main
from rnnlm.cliinstruments import compare_key

from test_plots_figures import _close, _doc, _fake_run, _legend

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _run_with_curve(folder, cell="gru", **kw):
    run = _fake_run(folder, cell=cell)
    (run / "jacobian.json").write_text(json.dumps(_doc(cell, **kw)))
    return run


def _wrote(capsys) -> str:
    """The file name a plot command said it wrote."""
    out = capsys.readouterr().out.strip()
    assert out.startswith("wrote ") and out.endswith(" (and .svg)"), out
    return Path(out[len("wrote "):-len(" (and .svg)")]).name


# ---------------------------------------------------------------- 1. inputs of one name


def test_two_runs_of_one_name_are_compared_into_their_own_file_and_told_apart_in_the_legend(tmp_path, capsys,
                                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = _doc("gru")
    for where in ("runs", "x"):
        run = _fake_run(tmp_path / where / "t1", cell="gru")
        (run / "jacobian.json").write_text(json.dumps(doc))
    assert main(["plot", "lag", "runs/t1", "x/t1"]) == 0
    two_runs = _wrote(capsys)
    assert main(["plot", "lag", "runs/t1", "runs/t1"]) == 0
    captured = capsys.readouterr()
    one_run_twice = Path(captured.out.strip()[len("wrote "):-len(" (and .svg)")]).name
    # neither is 'lag-compare-t1+t1-...', and they differ: the first name, how many more and a hash
    key = compare_key(["runs/t1", "x/t1"])
    assert two_runs == f"lag-compare-{key}-auto-spectral-layer0.png"
    assert key.startswith("t1+1-more-") and len(key) == len("t1+1-more-") + 8
    assert one_run_twice.startswith("lag-compare-t1+1-more-") and one_run_twice != two_runs
    assert (tmp_path / "runs/t1/plots" / two_runs).is_file()
    assert compare_key(["runs/t1", "x/t1"]) == key                   # the same inputs, the same name
    assert compare_key(["runs/t1", "x/t1"]) != compare_key(["x/t1", "runs/t1"])
    # the same input twice: said on stderr, one line (a run folder and its own jacobian.json are one input)
    assert captured.err == "note: runs/t1 is the same input as runs/t1: its curve is drawn twice\n"
    assert main(["plot", "lag", "runs/t1", "runs/t1/jacobian.json"]) == 0
    assert capsys.readouterr().err == ("note: runs/t1/jacobian.json is the same input as runs/t1: "
                                       "its curve is drawn twice\n")
    assert main(["plot", "lag", "runs/t1", "x/t1"]) == 0
    assert capsys.readouterr().err == ""                             # different inputs: nothing to say
    # the legend: the parent folder's name in front where two names are the same, 'again' for a repeat
    fig = plotlag.draw_lag([tmp_path / "runs/t1", tmp_path / "x/t1", tmp_path / "runs/t1"], None)
    assert _legend(fig.axes[0]) == ["gru, init orthogonal, W_hh ×1, at init (runs/t1) [h]",
                                    "gru, init orthogonal, W_hh ×1, at init (x/t1) [h]",
                                    "gru, init orthogonal, W_hh ×1, at init (runs/t1, again) [h]"]
    _close(fig)
    # names that differ stay as they were (no parent in front)
    _fake_run(tmp_path / "x" / "t2", cell="gru")
    (tmp_path / "x/t2/jacobian.json").write_text(json.dumps(doc))
    assert plotlag.item_names([tmp_path / "runs/t1", tmp_path / "x/t2"]) == ["t1", "t2"]
    assert plotlag.item_names([tmp_path / "runs/t1/jacobian.json", tmp_path / "x/t1/jacobian.json"]) == [
        "runs/t1/jacobian", "x/t1/jacobian"]
    # the README says where such a comparison goes
    assert "two of the same name such as `runs/t1` and `other/t1`: `<A>+<n>-more-<hash>`" in README


# ---------------------------------------------------------------- 2. --bound has its own file


def test_a_figure_with_the_bound_is_written_beside_the_one_without_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = _run_with_curve(tmp_path / "runs" / "a", cell="rnn")
    b = _run_with_curve(tmp_path / "runs" / "b", cell="rnn", hidden=7)
    assert main(["plot", "lag", str(a)]) == 0
    assert _wrote(capsys) == "lag-auto-spectral-layer0.png"
    plain = (a / "plots" / "lag-auto-spectral-layer0.png").read_bytes()
    assert main(["plot", "lag", str(a), "--bound"]) == 0
    assert _wrote(capsys) == "lag-auto-spectral-layer0-bound.png"
    assert (a / "plots" / "lag-auto-spectral-layer0.png").read_bytes() == plain      # left as it was
    assert main(["plot", "lag", str(a), str(b)]) == 0
    assert _wrote(capsys) == "lag-compare-a+b-auto-spectral-layer0.png"
    assert main(["plot", "lag", str(a), str(b), "--bound", "--norm", "frobenius"]) == 0
    assert _wrote(capsys) == "lag-compare-a+b-auto-frobenius-layer0-bound.png"
    assert (a / "plots" / "lag-compare-a+b-auto-spectral-layer0.png").is_file()
    # the gradient flow has no bound: --flow --bound is refused (test_s42_plots), not written as the flow figure
    assert main(["plot", "lag", str(a), "--flow", "--bound"]) == 2
    capsys.readouterr()
    # a JSON in no run folder
    (tmp_path / "loose.json").write_text(json.dumps(_doc("rnn")))
    assert main(["plot", "lag", str(tmp_path / "loose.json"), "--bound"]) == 0
    assert _wrote(capsys) == "loose-lag-auto-spectral-layer0-bound.png"
    assert "(`lag-auto-spectral-layer0-bound.png`)" in README
    with pytest.raises(SystemExit):
        main(["plot", "lag", "--help"])
    assert "with --bound the name ends in -bound" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------- 3. one spelling of ×, tags explained


def test_a_lag_comparison_writes_W_hh_times_one_way_and_says_what_its_tags_are():
    docs = [_doc("lstm", scale=1.5), _doc("rnn", scale=1.5)]
    fig = plotlag.draw_lag(docs, None)
    ax = fig.axes[0]
    title = " ".join(ax.get_title().split("\n")).replace("\u00a0", " ")
    entries = _legend(ax)
    assert entries == ["lstm, init orthogonal, W_hh ×1.5, at init, forget bias 0 [state]",
                       "rnn tanh, init orthogonal, W_hh ×1.5, at init [h]"]
    assert "W_hh ×1.5" in title
    assert not any("W_hh x" in t for t in entries + [title])
    # each tag said once in the subtitle, in the legend's order
    assert title.endswith("[state]: ∂(h,c)(t)/∂(h,c)(t−d), the lstm's whole state, [h]: ∂h(t)/∂h(t−d)"), title
    _close(fig)
    # no tags (one curve, or a quantity asked for): nothing to explain
    fig = plotlag.draw_lag(docs[:1], None)
    assert "[state]" not in fig.axes[0].get_title()
    _close(fig)
    fig = plotlag.draw_lag([_doc("lstm"), _doc("lstm", hidden=7)], None, quantity="c")
    assert "[" not in " ".join(_legend(fig.axes[0])) and "[c]" not in fig.axes[0].get_title()
    _close(fig)


def test_the_training_figure_writes_W_hh_times_as_the_lag_figures_do(tmp_path):
    fig = plotruns.draw_training(_fake_run(tmp_path / "r", scale=3.0))
    text = fig._suptitle.get_text() if fig._suptitle is not None else ""
    text += " ".join(ax.get_title() for ax in fig.axes)
    assert "W_hh ×3" in text and "W_hh x" not in text, text
    _close(fig)
