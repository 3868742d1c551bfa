"""A seventh trial's findings (an attack on the sixth's fixes): each test fails without its fix.

- an output path that is a symbolic link is written through (the link stays a link), and one that is not
  a regular file (a FIFO, a device such as /dev/full, a folder) is refused, never replaced by a rename;
  jacobian/probe say so, and a path through a file, before they measure;
- a command started with standard output closed (`>&-`) runs instead of failing at its first print;
- the notes of a lag plot are wrapped (a gated cell's "exactly 0" note ran past the figure's edges);
- the agreement probe's line says "falls to chance" only after distances that were above it.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm.errors import UserError
from rnnlm.fileio import atomic_write_text, check_writable
from rnnlm.probereport import chance_sentence

REPO = Path(__file__).resolve().parents[1]


def test_a_symbolic_link_is_written_through_and_stays_a_link(tmp_path):
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "target.json"]   # no temporary left


def test_a_fifo_or_a_folder_is_refused_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        atomic_write_text(fifo, "x")
    assert fifo.exists() and not fifo.is_file()              # still the FIFO
    folder = tmp_path / "d"
    folder.mkdir()
    with pytest.raises(OSError, match="it is a folder, not a file"):
        atomic_write_text(folder, "x")
    assert folder.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "pipe"]


@pytest.mark.parametrize("path, words", [("/dev/null", "not a regular file"), ("/dev/full", "not a regular file")])
def test_check_writable_refuses_a_device_before_anything_is_measured(path, words):
    if not Path(path).exists():
        pytest.skip(f"no {path} here")
    with pytest.raises(UserError, match=f"cannot write {path}: it is {words}"):
        check_writable(path)                                  # (checks only: nothing is written)


def test_check_writable_refuses_a_path_through_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=r"afile is a file, not a folder; give --out FILE.json"):
        check_writable(tmp_path / "afile" / "sub" / "x.json")
    check_writable(tmp_path / "new" / "sub" / "x.json")       # folders still to be made: fine


def test_jacobian_refuses_a_path_through_a_file_at_once(tmp_path, capsys):
    from rnnlm.cli import main
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "x.json"
    assert main(["jacobian", "--init", "orthogonal", "--cell", "rnn", "--hidden", "8", "--emsize", "8",
                 "--vocab-size", "50", "--max-lag", "3", "--anchors", "1", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot write {out}: {tmp_path / 'afile'} is a file, not a folder; give --out FILE.json "
                   "in a writable folder"], err


def test_a_closed_standard_output_does_not_fail_the_command():
    r = subprocess.run(["bash", "-c", f"{sys.executable} cli.py --version >&-"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_a_gated_cells_zero_note_is_wrapped_inside_the_figure():
    from rnnlm.plotlag import draw_lag
    from rnnlm.plots import NOTE_WIDTH
    from test_trial5_jacobian import saturated_doc
    docs = [saturated_doc(), saturated_doc()]
    docs[1]["meta"]["cell"] = "gru"
    fig = draw_lag(docs)
    notes = [t.get_text() for t in fig.axes[0].get_legend().get_texts() if "exactly 0 from" in t.get_text()]
    assert len(notes) == 2 and any("\n" in n for n in notes)
    assert max(len(line) for n in notes for line in n.split("\n")) <= NOTE_WIDTH


def _bins(spec):
    """[(distance, above chance?)] -> bins with a 95% interval over 0.5 (True) or around it (False)."""
    return [{"distance": d, "ci": [0.55, 0.7] if up else [0.4, 0.6]} for d, up in spec]


def test_falls_to_chance_only_after_distances_above_it():
    untrained = _bins([(d, d == 17) for d in range(1, 21)])
    line = chance_sentence(untrained)
    assert "falls" not in line
    assert line.endswith("above chance only at distance 17, and not from distance 18 on (to 20, the largest probed)")
    patchy = _bins([(d, d in (1, 2, 14)) for d in range(1, 21)])
    assert "above chance only at distances 1-2 and 14, and not from distance 15 on" in chance_sentence(patchy)
    declining = _bins([(d, d < 10) for d in range(1, 21)])
    assert chance_sentence(declining).endswith("falls to chance from distance 10 on and stays there (to 20, the "
                                               "largest probed)")


def test_a_full_standard_output_after_the_result_is_saved_is_a_warning(tmp_path):
    """jacobian > /dev/full: the JSON is saved, so the lost report is one warning naming it, status 0 (probe
    and demo print through the same cliinstruments._print_saved)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    out = tmp_path / "r.json"
    args = ["jacobian", "--init", "orthogonal", "--cell", "rnn", "--hidden", "8", "--emsize", "8", "--vocab-size",
            "50", "--max-lag", "3", "--anchors", "1", "--no-progress"]
    r = subprocess.run(f"{sys.executable} cli.py {' '.join(args)} --out {out} > /dev/full", shell=True, cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"warning: standard output could not be written (No space left on "
                                                 f"device); the result is saved in {out}")
    assert out.exists() and "curves" in out.read_text()


def test_a_sweep_line_that_is_json_but_not_an_object_is_the_corrupt_line(tmp_path):
    from rnnlm.sweep import SWEEP_FILE, read_rows
    (tmp_path / SWEEP_FILE).write_text('{"name": "a", "status": "ok"}\n[1, 2]\n{"name": "b", "status": "ok"}\n')
    with pytest.raises(UserError, match=r"cannot be read: line 2 is not a UTF-8 JSON object; remove that line"):
        read_rows(tmp_path)


def test_a_loop_of_symbolic_links_is_refused_not_replaced(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(OSError, match="it is a loop of symbolic links"):
        atomic_write_text(a, "x")
    assert a.is_symlink() and b.is_symlink()
    with pytest.raises(UserError, match=r"cannot write .*: it is a loop of symbolic links; give --out FILE.json"):
        check_writable(a)


def test_the_refusal_gives_one_piece_of_advice(tmp_path):
    with pytest.raises(UserError) as e:
        check_writable(tmp_path)
    assert str(e.value) == (f"cannot write {tmp_path}: it is a folder, not a file; give --out FILE.json in a "
                            "writable folder")


def test_a_training_figure_of_one_logged_step_draws_it(tmp_path):
    from rnnlm import plotruns
    from test_plots_figures import _fake_run
    fig = plotruns.draw_training(_fake_run(tmp_path / "one", losses=(5.0,), norms=(1.0,)))
    lines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label().startswith(("train", "gradient"))]
    assert len(lines) == 2 and all(ln.get_marker() == "o" for ln in lines)
    fig = plotruns.draw_training(_fake_run(tmp_path / "three"))
    lines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label().startswith(("train", "gradient"))]
    assert len(lines) == 2 and all(ln.get_marker() in ("None", None, "") for ln in lines)    # as before


def test_the_explosion_figure_says_where_the_update_stepped_down_with_the_lr(tmp_path):
    import json
    from rnnlm import plotruns
    from test_plots_figures import _fake_run
    from test_trial6_explosion import _with_clipped_norms
    a = _with_clipped_norms(_fake_run(tmp_path / "a", clip_norm=0.0), 0.0)
    b = _with_clipped_norms(_fake_run(tmp_path / "b", clip_norm=0.25), 0.25)
    path = b / "metrics.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    events[-1]["lr"] = 1.25                                   # annealed by 4 before the last step
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    fig = plotruns.draw_explosion(a, b, "t")
    labels = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert labels == ["no clipping", "clip-norm 0.25 (lr annealed 5 → 1.25)"]


def test_lag_curve_with_a_random_state_advises_a_generator_not_its_repr():
    import numpy as np
    from rnnlm import jacobian
    from rnnlm.model import ModelConfig, RNNModel
    model = RNNModel(ModelConfig(vocab_size=20, cell="rnn", emsize=4, hidden=4, dtype="float64"))
    advice = r"rng must be a numpy Generator, e.g. np.random.default_rng\(0\), or None"
    with pytest.raises(TypeError, match=advice) as e:
        jacobian.lag_curve(model, np.arange(20), 3, 2, np.random.RandomState(0))
    assert "default_rng(RandomState" not in str(e.value)


def test_a_min_count_above_every_word_is_refused_not_a_two_word_model():
    from rnnlm.vocab import Vocab
    with pytest.raises(UserError, match=r"--min-count 1000 leaves no word in the vocabulary \(the most frequent "
                                        r"word of the training split occurs 7 times\); give a smaller --min-count"):
        Vocab.build({"casa": 7, "homem": 3}, min_count=1000)
    assert len(Vocab.build({"casa": 7, "homem": 3}, min_count=5)) == 3      # one word left: fine
