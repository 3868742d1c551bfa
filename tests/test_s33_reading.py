"""What evaluate and generate say about what they read: a run being trained now (its checkpoint of the step
it had reached), and a greedy sample that drew only punctuation (a lower temperature cannot help)."""
import pytest

from rnnlm.cli import main
from rnnlm.folderlock import LOCK

from test_sample import _OnlyCommas, _serve
from test_faults import FLAGS
from test_s32_lock import _holder  # a second process holding the folder's lock, as a training does


@pytest.fixture(scope="module")
def trained(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("r") / "run"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "4",
                 "--eval-every", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("command", ["evaluate", "generate"])
def test_reading_a_run_being_trained_says_which_step_it_reads(trained, capsys, command):
    p = _holder(trained)
    try:
        args = [command, str(trained), "--checkpoint", "latest"] + (["--words", "3"] if command == "generate" else [])
        assert main(args) == 0
    finally:
        p.stdin.close()
        p.wait(timeout=30)
    out, err = capsys.readouterr()
    said = out if command == "evaluate" else err
    assert (f"note: {trained} is being trained now (pid {p.pid} holds {trained / LOCK}): this reads its latest "
            f"checkpoint, of step 4; the run saves a newer one at each validation") in said.splitlines()
    assert main([command, str(trained)] + (["--words", "3"] if command == "generate" else [])) == 0
    assert "being trained now" not in "".join(capsys.readouterr())      # the lock is free again: no note


def test_reading_the_best_model_of_a_run_being_trained_names_its_step(trained, capsys):
    p = _holder(trained)
    try:
        assert main(["generate", str(trained), "--words", "2"]) == 0
    finally:
        p.stdin.close()
        p.wait(timeout=30)
    err = capsys.readouterr().err
    assert "this reads its best model so far, of step " in err


def test_a_greedy_sample_of_only_punctuation_is_told_to_raise_the_temperature(monkeypatch, capsys):
    from rnnlm.vocab import Vocab
    _serve(monkeypatch, _OnlyCommas(), Vocab(["<unk>", "<eos>", ",", "casa"]))
    assert main(["generate", "m.npz", "--words", "5", "--temperature", "0"]) == 0
    err = capsys.readouterr().err
    assert ("a better-trained checkpoint or a --temperature above 0 (0 always draws the most likely token, so it "
            "repeats the same punctuation) may help") in err
    assert "a lower --temperature" not in err


def test_the_step_named_is_the_one_of_the_file_read_though_a_newer_one_replaced_it(trained, capsys, monkeypatch):
    import shutil

    import numpy as np

    from rnnlm import checkpoint, evaluate, runs
    real = runs.load_model

    def read_then_replaced(run, which="best"):
        got = real(run, which)          # best.npz read; the training then saves a newer one (of step 999)
        shutil.copy(trained / "best.npz", trained / "best.keep")
        with np.load(trained / "best.npz") as z:
            arrays = {k: z[k] for k in z.files}
        np.savez(trained / "best.npz", **{**arrays, "train.step": np.array(999, dtype=np.int64)})
        return got
    monkeypatch.setattr(evaluate, "load_model", read_then_replaced)
    best_step = real(trained, "best")[0].checkpoint_step
    p = _holder(trained)
    try:
        assert main(["evaluate", str(trained)]) == 0
        assert checkpoint.saved_step(trained / "best.npz") == 999
    finally:
        p.stdin.close()
        p.wait(timeout=30)
        shutil.move(trained / "best.keep", trained / "best.npz")
    assert f"this reads its best model so far, of step {best_step}; " in capsys.readouterr().out
    assert checkpoint.saved_step(trained / "best.npz") == best_step != 999


def test_the_latest_model_of_a_run_without_one_names_the_best_instead(trained, tmp_path, capsys):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "model.npz").unlink()
    assert main(["evaluate", str(run), "--checkpoint", "latest"]) == 2
    assert capsys.readouterr().err == (f"error: {run} has no model.npz (its latest model); --checkpoint best reads "
                                       f"its best model (best.npz)\n")
