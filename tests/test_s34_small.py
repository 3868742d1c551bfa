"""Small faults a user met: a checkpoint file inside a run being trained gets the note that the run is being
trained; --temperature 0 with --top-k / --top-p is refused (greedy ignores them), and several greedy samples
are said to be the same; an explicit --checkpoint best of a run with no validation yet is refused."""
import json
import re

import pytest

from rnnlm.cli import main
from rnnlm.folderlock import LOCK

from test_faults import FLAGS
from test_s32_lock import _holder  # a second process holding the folder's lock, as a training does
from test_s33_reading import trained  # noqa: F401 (a fixture: a run of 4 steps, validated at 2 and 4)


@pytest.mark.parametrize("name, which", [("model.npz", "latest checkpoint"), ("best.npz", "best model so far")])
def test_a_checkpoint_file_of_a_run_being_trained_gets_the_note(trained, capsys, name, which):
    p = _holder(trained)
    try:
        assert main(["evaluate", str(trained / name)]) == 0
    finally:
        p.stdin.close()
        p.wait(timeout=30)
    out = capsys.readouterr().out
    assert re.search(f"^note: {re.escape(str(trained))} is being trained now \\(pid {p.pid} holds "
                     f"{re.escape(str(trained / LOCK))}\\): this reads its {which}, of step [24]; the run saves a "
                     "newer one at each validation$", out, re.M), out


def test_a_link_into_a_run_being_trained_gets_the_note_and_a_copy_is_said_to_stay(trained, tmp_path, capsys):
    import shutil
    link = tmp_path / "link.npz"
    link.symlink_to(trained / "model.npz")
    copy = trained / "snap.npz"
    shutil.copy(trained / "model.npz", copy)
    p = _holder(trained)
    try:
        assert main(["evaluate", str(link)]) == 0
        linked = capsys.readouterr().out
        assert main(["evaluate", str(copy)]) == 0
        copied = capsys.readouterr().out
    finally:
        p.stdin.close()
        p.wait(timeout=30)
        copy.unlink()
    assert f"note: {trained} is being trained now (pid {p.pid} holds {trained / LOCK}): this reads its latest " \
           "checkpoint, of step " in linked
    assert (f"note: {trained} is being trained now (pid {p.pid} holds {trained / LOCK}); snap.npz is not one of the "
            "checkpoints it saves (best.npz, model.npz), so it stays as it is") in copied.splitlines()


@pytest.mark.parametrize("flags, said", [
    (["--top-k", "5"], "--top-k 5"), (["--top-p", "0.9"], "--top-p 0.9"),
    (["--top-p", "0.99999999999"], "--top-p 0.99999999999"),
    (["--top-k", "5", "--top-p", "0.5"], "--top-k 5 and --top-p 0.5")])
def test_greedy_sampling_refuses_top_k_and_top_p(trained, capsys, flags, said):
    assert main(["generate", str(trained), "--temperature", "0", "--words", "2", *flags]) == 2
    assert capsys.readouterr().err == (f"error: {said} cannot act with --temperature 0, which always takes the "
                                       "most likely word; leave out one or the other\n")


def test_several_greedy_samples_are_said_to_be_the_same(trained, capsys):
    assert main(["generate", str(trained), "--temperature", "0", "--words", "3", "--num-samples", "2"]) == 0
    out, err = capsys.readouterr()
    assert ("note: with --temperature 0 every one of the 2 samples is the same (the most likely word each time); "
            "a temperature above 0 makes them differ") in err.splitlines()
    assert main(["generate", str(trained), "--temperature", "0.5", "--words", "3", "--num-samples", "2"]) == 0
    assert "every one of the" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["evaluate", "generate", "jacobian", "probe"])
def test_an_explicit_best_of_a_run_without_a_validation_yet_is_refused(text, tmp_path, capsys, command):
    import json
    out = tmp_path / "run"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "2",
                 "--eval-every", "100", "--out", str(out)]) == 0
    # as a run stopped before its first validation: no best.npz, no validation in its log
    (out / "best.npz").unlink()
    log = out / "metrics.jsonl"
    log.write_text("".join(line for line in log.read_text().splitlines(keepends=True)
                           if json.loads(line).get("type") != "eval"))
    args = {"evaluate": ["evaluate", str(out)], "generate": ["generate", str(out), "--words", "2"],
            "jacobian": ["jacobian", str(out)], "probe": ["probe", "agreement", str(out)]}[command]
    capsys.readouterr()
    assert main([*args, "--checkpoint", "best"]) == 2
    assert capsys.readouterr().err == (f"error: {out} has no best.npz yet: no validation has run; give "
                                       "--checkpoint latest (or leave --checkpoint out) to read its latest model, "
                                       "model.npz\n")
    if command == "evaluate":   # without the flag the latest model stands in, with a note
        assert main(args) == 0
        assert "(no best.npz: no validation has run yet)" in capsys.readouterr().out


def test_a_resume_on_another_thread_count_says_its_losses_will_differ_and_its_speed_is_the_sessions(text, tmp_path, capsys):
    import numba

    from rnnlm.runs import threads_changed
    out = tmp_path / "run"
    flags = ["--corpus", str(text), *FLAGS, "--batch-size", "16", "--eval-every", "2"]
    assert main(["train", *flags, "--max-steps", "2", "--out", str(out)]) == 0
    n = numba.get_num_threads()
    starts = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["threads"] for e in starts if e["type"] == "start"] == [n]
    assert threads_changed(out, 2, n) is None
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    capsys.readouterr()
    numba.set_num_threads(1 if n > 1 else 2)
    try:
        m = numba.get_num_threads()
        assert main(["train", "--resume", str(out), "--max-steps", "4"]) == 0
    finally:
        numba.set_num_threads(n)
    out_text, err = capsys.readouterr()
    assert re.search(r"^stopped: max_steps after 4 steps \(.*, [\d,]+ training tokens/s since the resume at step 2\)$",
                     out_text, re.M), out_text
    assert (f"this run trained on {n} thread{'s' if n > 1 else ''} up to step 2 and resumes on {m}: a step's sums "
            f"are split by the thread count, so its losses from here differ in their last bits from a run that "
            f"stayed on {n} (and SGD may carry that further); NUMBA_NUM_THREADS={n} resumes it exactly as it "
            "would have gone on") in err
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["threads"] for e in events if e["type"] == "resume"] == [m]
    assert threads_changed(out, 4, m) is None          # the last session's count is the one compared


def test_the_events_after_the_last_epoch_name_that_epoch(text, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--corpus", str(text), *FLAGS, "--epochs", "2", "--max-minutes", "0",
                 "--out", str(out)]) == 0
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    after = [(e["type"], e.get("split"), e["epoch"]) for e in events if e["type"] in ("stop", "end", "eval")
             and e.get("reason") in ("epochs", "final")]
    assert after == [("stop", None, 2), ("eval", "test", 2), ("end", None, 2)]
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2]
