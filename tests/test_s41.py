"""Session 41: what the recheck of session 40 left open (see each test's docstring)."""
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from rnnlm import errors
from rnnlm.cli import main

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- a stop while the CLI is imported


def _stopped_in_the_import(tmp_path, signals, drops):
    """`cli.py demo gradients --quick --out OUT` with `signals` sent to itself as the CLI's module makes
    its first import; drops: that import catches every error (as some do), so a stop raised there is lost."""
    out = tmp_path / "demo"
    script = textwrap.dedent(f"""
        import builtins, os, signal, sys
        sys.argv = ["cli.py", "demo", "gradients", "--quick", "--out", {str(out)!r}]
        import rnnlm.__main__ as entry
        real, sent = builtins.__import__, []

        def hook(name, *args, **kwargs):
            if (args and args[0] or {{}}).get("__name__") == "rnnlm.cli" and not sent:    # its first import
                sent.append(name)
                try:
                    for signum in {signals!r}:
                        os.kill(os.getpid(), signum)
                except BaseException:
                    if not {drops!r}:
                        raise
            return real(name, *args, **kwargs)
        builtins.__import__ = hook
        entry.run()
        """)
    p = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    return p, out


@pytest.mark.parametrize("signum, word, status", [(15, "terminated", 143), (2, "interrupted", 130)])
def test_a_stop_while_the_cli_is_imported_is_one_line_where_an_import_drops_it(tmp_path, signum, word, status):
    """A SIGTERM in the first ~0.2 s of a command (the CLI's imports, before its handler) killed the process
    with no line; a Ctrl-C there raised where an import may drop it, and the command ran on. Both are now
    recorded while the import runs and said once it is over."""
    p, out = _stopped_in_the_import(tmp_path, [signum], drops=True)
    assert (p.returncode, p.stdout, p.stderr) == (status, "", f"{word} before the command began: nothing was done\n")
    assert not out.exists()


def test_a_second_stop_in_the_import_ends_it_at_once(tmp_path):
    """The first stop waits for the import to end; a second one (a user whose import hangs) raises at once."""
    p, out = _stopped_in_the_import(tmp_path, [15, 15], drops=False)
    assert (p.returncode, p.stderr) == (143, "terminated before the command began: nothing was done\n")
    assert not out.exists()


# ---------------------------------------------------------------- what a stop says, and the grid notes


def test_a_stop_before_a_demo_or_study_says_its_own_words(tmp_path, monkeypatch, capsys):
    """A stop before the demo's stages or the study's runs began (while their modules were imported) said a
    bare "terminated"."""
    import rnnlm.cli as cli

    def stopped(args):
        raise errors.Terminated()
    monkeypatch.setattr(cli, "COMMANDS", [(n, add, stopped if n in ("demo", "study") else run)
                                          for n, add, run in cli.COMMANDS])
    assert main(["demo", "gradients", "--quick", "--out", str(tmp_path / "d")]) == 143
    assert capsys.readouterr().err == ("terminated before the demo's first stage finished: nothing is lost; run the "
                                       "same command again\n")
    assert main(["study", "learnability", "--out", str(tmp_path / "s")]) == 143
    assert capsys.readouterr().err == ("terminated before the study recorded a run: nothing is lost; run the same "
                                       "command again\n")


def test_a_flag_equal_to_its_grid_key_is_not_noted(tmp_path, capsys):
    from rnnlm import clisweep
    from rnnlm.cli import _parse, build_parser
    grid = tmp_path / "g.json"
    grid.write_text('{"measure": ["lag"], "hidden": 8, "seeds": 2, "keep_models": true}')
    parsed = _parse(build_parser(), ["sweep", "run", "--grid", str(grid), "--measure", "lag", "--hidden", "8",
                                     "--seeds", "2", "--keep-models"])
    assert clisweep._sweep_grid(parsed) == {"measure": ["lag"], "hidden": [8], "seeds": 2, "keep_models": True}
    assert capsys.readouterr().err == ""
    # a list of one is its value; measurements in another order are the same measurements
    grid.write_text('{"measure": ["lag", "agreement"], "tied": [true], "hidden": [8, 16]}')
    parsed = _parse(build_parser(), ["sweep", "run", "--grid", str(grid), "--measure", "agreement,lag", "--tied",
                                     "--hidden", "8,16"])
    assert clisweep._sweep_grid(parsed)["tied"] is True and capsys.readouterr().err == ""
    parsed = _parse(build_parser(), ["sweep", "run", "--grid", str(grid), "--measure", "lag", "--hidden", "16,8"])
    clisweep._sweep_grid(parsed)
    assert capsys.readouterr().err == f"note: --hidden and --measure override their settings in the grid file {grid}\n"


# ---------------------------------------------------------------- a run's records that are not files


@pytest.fixture(scope="module")
def run_folder(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    assert main(["train", "--corpus", str(text), "--max-vocab", "300", "--hidden", "8", "--emsize", "8",
                 "--max-steps", "2", "--no-progress", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("name", ["config.json", "vocab.json", "metrics.jsonl"])
def test_a_run_record_that_is_a_named_pipe_is_one_line_not_a_hang(run_folder, tmp_path, capsys, name):
    """A run folder whose config.json or vocab.json was a named pipe hung evaluate, generate, jacobian, probe
    and train --resume (reading it waits for a writer); metrics.jsonl hung train --resume and a new training
    into the folder. Each is now one line, exit 2; a command that does not read the file still runs."""
    import shutil
    run = tmp_path / "r"
    shutil.copytree(run_folder, run)
    (run / name).unlink()
    os.mkfifo(run / name)
    stop = threading.Event()
    threading.Thread(target=_unblock_readers, args=(run / name, stop), daemon=True).start()
    line = (f"error: {run / name} is not a regular file (a named pipe, a device or a socket); a run keeps its "
            f"records as files: restore it from a copy, or move it away\n")
    reads = {"config.json": ["evaluate", "generate", "resume", "new", "plot"],
             "vocab.json": ["evaluate", "generate", "resume", "new"],
             "metrics.jsonl": ["resume", "new", "plot"]}[name]
    commands = {"evaluate": ["evaluate", str(run), "--split", "valid"],
                "generate": ["generate", str(run), "--words", "3"],
                "resume": ["train", "--resume", str(run), "--max-steps", "3", "--no-progress"],
                "new": ["train", "--corpus", "sintetico", "--out", str(run), "--no-progress"],
                "plot": ["plot", "training", str(run), "--out", str(tmp_path / "p.png")]}
    try:
        for command, argv in commands.items():
            status = main(argv)
            err = capsys.readouterr().err
            if command in reads:
                assert (command, status, err) == (command, 2, line)
            else:
                assert (command, status) == (command, 0), err
    finally:
        stop.set()
    assert not stop.read, "a command opened the pipe (it waited for a writer)"


def _unblock_readers(fifo, stop):
    """Until `stop` is set: a reader that opens `fifo` gets its end at once (a writer opens and closes it), so
    that a command that reads the pipe fails the test instead of hanging it; stop.read records that one did."""
    import errno
    import time
    stop.read = False
    while not stop.is_set():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            stop.read = True
        except OSError as exc:
            if exc.errno != errno.ENXIO:    # (no reader: ENXIO)
                return
        time.sleep(0.05)


# ---------------------------------------------------------------- gradcheck of a deep stack


@pytest.mark.parametrize("cell, layers", [("lstm", 8), ("gru", 6), ("rnn", 8)])
def test_a_deep_stack_passes_its_gradient_check(cell, layers):
    """`gradcheck --cell lstm --layers 8` said FAIL (3.7e-3; gru at 6 layers 1.5e-6, lstm at 4 already 4.3e-6)
    for a correct gradient: the lowest layers' gradients vanish to ~1e-9, and the finite difference's own
    roundoff (~5e-13, the same in every array) was judged against them. An entry is now judged against the
    difference's resolution too."""
    from rnnlm.gradcheck import gradcheck
    rep = gradcheck(cell=cell, layers=layers)
    assert rep.ok and 0 < rep.max_error < 1e-6 and not rep.unresolved, "\n".join(rep.lines())


def test_an_array_too_small_to_check_is_said_not_checked_not_ok(monkeypatch, capsys):
    """At 16 LSTM layers the lowest layers' gradients (~1e-13) are below the difference's resolution, where a
    zeroed or sign-flipped gradient passed as "ok" (error ~1e-8). They are now reported as not checked."""
    from rnnlm.gradcheck import gradcheck
    from rnnlm.model import RNNModel
    rep = gradcheck(cell="lstm", layers=16)
    assert rep.ok and {"rnn.weight_ih_l0", "rnn.bias_hh_l4", "encoder.weight"} <= set(rep.unresolved)
    assert "rnn.weight_ih_l8" not in rep.unresolved
    assert all(v < 100 * rep.resolution for v in rep.unresolved.values())
    lines = rep.lines()
    assert any(line.split()[:2] == ["rnn.weight_ih_l0", "-"] and "not checked" in line for line in lines)
    assert lines[-1].startswith(f"  {len(rep.unresolved)} arrays not checked: their gradients are too small")
    real = RNNModel.bptt

    def flipped(self, *args, **kwargs):
        r = real(self, *args, **kwargs)
        r.grads["rnn.weight_ih_l0"] = -r.grads["rnn.weight_ih_l0"]
        return r
    monkeypatch.setattr(RNNModel, "bptt", flipped)
    assert "rnn.weight_ih_l0" in gradcheck(cell="lstm", layers=16).unresolved     # (not "ok")
    monkeypatch.undo()
    assert main(["gradcheck", "--cell", "gru", "--layers", "16"]) == 0
    assert capsys.readouterr().out.endswith("-> PASS on the 65 of 68 arrays checked (3 not checked: too small for a "
                                            "finite difference)\n")


@pytest.mark.parametrize("name, layers, change", [
    ("rnn.weight_hh_l0", 1, lambda g: g * (1 + 1e-5)),      # off by 1e-5 of itself
    ("decoder.bias", 1, lambda g: g + 1e-6),
    ("rnn.weight_ih_l0", 8, lambda g: g * (1 + 1e-3)),      # the vanished gradient of an 8-layer stack's bottom
    ("rnn.bias_hh_l0", 8, lambda g: g + 2e-10),             # ~1e-9 itself: wrong by a fifth of it
])
def test_a_wrong_gradient_still_fails_its_check(monkeypatch, name, layers, change):
    """The check judged against its resolution still tells a wrong gradient from a right one, down to the
    lowest layer of a deep stack."""
    from rnnlm.gradcheck import TOLERANCE, gradcheck
    from rnnlm.model import RNNModel
    real = RNNModel.bptt

    def wrong(self, *args, **kwargs):
        r = real(self, *args, **kwargs)
        r.grads[name] = change(r.grads[name])
        return r
    monkeypatch.setattr(RNNModel, "bptt", wrong)
    rep = gradcheck(cell="lstm", layers=layers)
    assert not rep.ok and rep.errors[name] > TOLERANCE
    assert max(e for k, e in rep.errors.items() if k != name) < 1e-6, "\n".join(rep.lines())


@pytest.mark.parametrize("name", ["config.json", "vocab.json", "metrics.jsonl"])
def test_a_run_record_that_is_a_folder_is_said_so(run_folder, tmp_path, capsys, name):
    """A run's record made a folder was "Is a directory: ... (that is a folder; give a file)" for train --resume
    and evaluate, and "not a run folder (no config.json)" for plot training."""
    import shutil
    run = tmp_path / "r"
    shutil.copytree(run_folder, run)
    (run / name).unlink()
    (run / name).mkdir()
    line = (f"error: {run / name} is not a regular file (a folder); a run keeps its records as files: restore it "
            f"from a copy, or move it away\n")
    assert main(["train", "--resume", str(run), "--max-steps", "3", "--no-progress"]) == 2
    assert capsys.readouterr().err == line
    if name != "vocab.json":
        assert main(["plot", "training", str(run), "--out", str(tmp_path / "p.png")]) == 2
        assert capsys.readouterr().err == line
    if name == "vocab.json":    # (evaluate reads the model's vocabulary; config.json only marks a run folder)
        assert main(["evaluate", str(run), "--split", "valid"]) == 2
        assert capsys.readouterr().err == line


def test_a_stop_while_the_study_writes_its_figures_says_its_runs_are_recorded(tmp_path, monkeypatch, capsys):
    """A Ctrl-C while `study` drew its figures (every run recorded, study.json written) said "interrupted before
    the study recorded a run: nothing is lost", which was false. It now says the runs are recorded and how to
    get the table and figures; the same command then writes them without running anything again."""
    from rnnlm import study
    out = tmp_path / "st"
    argv = ["study", "learnability", "--distances", "3", "--cells", "rnn", "--seeds", "0", "--n-train", "64",
            "--n-test", "32", "--steps", "30", "--eval-every", "10", "--nhid", "8", "--emsize", "8",
            "--scheduler", "serial", "--no-progress", "--out", str(out)]
    real = study.write_figures

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(study, "write_figures", stopped)
    assert main(argv) == 130
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (f"interrupted while the study's table and figures were written: its 1 run is recorded in "
                   f"{out / 'sweep.jsonl'}; run the same command again (it skips the recorded runs and writes "
                   "them), or add --report-only")
    monkeypatch.setattr(study, "write_figures", real)
    mtime = (out / "sweep.jsonl").stat().st_mtime_ns
    assert main(argv) == 0 and (out / "success.png").exists()
    assert (out / "sweep.jsonl").stat().st_mtime_ns == mtime


def test_a_stop_as_the_training_starts_says_nothing_was_written(monkeypatch, capsys, tmp_path):
    """A stop after train's settings were read and before its own start-up took the signals printed the bare
    word "interrupted" (exit 130)."""
    import rnnlm.train

    def stopped(config, resume=None):
        raise KeyboardInterrupt
    monkeypatch.setattr(rnnlm.train, "train", stopped)
    assert main(["train", "--corpus", "sintetico", "--hidden", "8", "--out", str(tmp_path / "r")]) == 130
    assert capsys.readouterr().err == "interrupted before the training started: nothing was written\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["config.json", "vocab.json", "metrics.jsonl"])
def test_a_run_record_that_links_to_nothing_is_said_so(run_folder, tmp_path, capsys, name):
    """A run's record that is a link to a missing file: train --resume rewrote config.json and then failed with
    "No such file or directory: <the link's target>"; a config.json so was "not a run folder"."""
    import shutil
    run = tmp_path / "r"
    shutil.copytree(run_folder, run)
    before = (run / "config.json").read_bytes() if name != "config.json" else None
    (run / name).unlink()
    (run / name).symlink_to(tmp_path / "gone")
    line = (f"error: {run / name} is a link to {tmp_path / 'gone'}, which does not exist; a run keeps its records "
            f"as files: restore it from a copy, or remove the link\n")
    assert main(["train", "--resume", str(run), "--max-steps", "3", "--no-progress"]) == 2
    assert capsys.readouterr().err == line
    if before is not None:
        assert (run / "config.json").read_bytes() == before


def test_a_resume_whose_vocab_json_cannot_be_written_leaves_config_json(run_folder, tmp_path, capsys, monkeypatch):
    """A resume writes a missing vocab.json again; when that failed (a full disk), config.json had already
    been rewritten with the resumed session's settings."""
    import errno
    import shutil

    from rnnlm import fileio
    run = tmp_path / "r"
    shutil.copytree(run_folder, run)
    (run / "vocab.json").unlink()
    before = (run / "config.json").read_bytes()
    real = fileio.atomic_write_json

    def full(path, doc, *args, **kwargs):
        if str(path).endswith("vocab.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, doc, *args, **kwargs)
    monkeypatch.setattr(fileio, "atomic_write_json", full)
    assert main(["train", "--resume", str(run), "--max-steps", "3", "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"error: No space left on device: {run / 'vocab.json'}")
    assert (run / "config.json").read_bytes() == before
