"""Session 40: what the hostile trials of session 39 left open (see each test's docstring)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rnnlm import errors
from rnnlm.cli import main
from rnnlm.sweep import read_rows

import test_s38
import test_s39
from test_sweep import _flags

ROOT = Path(__file__).resolve().parents[1]
trained = test_s38.trained     # (a fixture: a small trained model, its corpus and a folder)
env = test_s39.env             # (a fixture: no cache folder but the temp folder's, tmp_path/tmp)

# ---------------------------------------------------------------- a stop after the command finished


@pytest.mark.parametrize("where", ["atexit", "teardown"])
@pytest.mark.parametrize("argv, status", [(["--version"], 0), (["train", "--hidden", "0"], 2)])
def test_a_stop_after_the_command_finished_exits_with_its_status(where, argv, status):
    """A SIGTERM in the last few tenths of a second of `sweep run` (after every file was written, while Python
    ran its exit handlers and freed Numba's and Dask's modules) killed the process with exit 143 and no line.
    It now exits with the status the command earned, saying nothing more."""
    script = textwrap.dedent(f"""
        import atexit, os, signal, sys, time
        sys.argv = ["cli.py"] + {argv!r}
        import rnnlm.cli as cli

        class Late:     # freed with the modules: a signal in the process's very last moments
            def __del__(self):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.3)

        main = cli.main

        def patched(argv=None):
            try:
                return main(argv)
            finally:    # registered after run's own exit handler: runs before it, among the exit handlers
                if {where!r} == "atexit":
                    atexit.register(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.3)))
        cli.main = patched
        if {where!r} == "teardown":
            late = Late()
        from rnnlm.__main__ import run
        run()
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr
    assert "Terminated" not in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == (status != 0)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_finished_handler_exits_with_the_status_it_was_given():
    code = textwrap.dedent("""
        import functools, os, signal
        from rnnlm import errors
        seen = errors._Seen(); seen.status = 7
        signal.signal(signal.SIGTERM, functools.partial(errors._exit_finished, seen))
        os.kill(os.getpid(), signal.SIGTERM)
        import time; time.sleep(5)
        print("not reached")
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 7 and "not reached" not in done.stdout


# ---------------------------------------------------------------- a stop while the sweep's report is written


def test_a_sweep_stopped_while_its_figure_is_drawn_says_how_to_get_it(text, tmp_path, capsys, monkeypatch):
    """A stop while `sweep run` drew its figure said only "terminated": every job was recorded, but the line
    said neither that nor how to get the figure. The rerun it advises skips the jobs and draws it."""
    from rnnlm import sweepplot

    def stopped(*a, **k):
        raise errors.Terminated()
    monkeypatch.setattr(sweepplot, "plot_sweep", stopped)
    out = tmp_path / "s"
    argv = ["sweep", "run", *_flags(text, out), "--cell", "rnn", "--hidden", "8,16", "--max-steps", "2",
            "--eval-every", "0", "--scheduler", "serial"]
    assert main(argv) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"terminated while the table and figure were written: all 2 jobs are recorded in "
                       f"{out / 'sweep.jsonl'}; run the same command again (same --out): it skips the recorded "
                       "jobs and writes them")
    assert len(read_rows(out)) == 2 and not list(out.glob("*.png"))
    monkeypatch.undo()
    assert main(argv) == 0
    assert "skipping 2 finished in an earlier run" in capsys.readouterr().err
    assert len(list(out.glob("sweep-*.png"))) == 1 and (out / "summary.md").exists()


# ---------------------------------------------------------------- a training whose start-up fails


@pytest.mark.parametrize("existed", [False, True])
def test_a_training_whose_start_up_fails_leaves_no_half_made_run_folder(text, tmp_path, capsys, monkeypatch,
                                                                          existed):
    """A full disk or a file-size limit at vocab.json or the step-0 checkpoint, or a model too large for
    memory, left config.json, vocab.json, metrics.jsonl and the lock: a folder that looked like a run with no
    model. Now the folder is removed again (or, when it existed before, left as it was)."""
    import errno

    from rnnlm import fileio
    out = tmp_path / "r"
    if existed:
        out.mkdir()
    real = fileio.atomic_write_json

    def fails_at_vocab(path, doc, *a, **k):
        if str(path).endswith("vocab.json"):
            raise OSError(errno.EFBIG, "File too large", str(path))
        return real(path, doc, *a, **k)
    monkeypatch.setattr(fileio, "atomic_write_json", fails_at_vocab)
    assert main(["train", "--corpus", str(text), "--max-vocab", "300", "--hidden", "8", "--emsize", "8",
                 "--max-steps", "2", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: File too large: {out / 'vocab.json'} (") and "raise the limit or write " \
        "elsewhere (--out))" in err
    assert (list(out.iterdir()) == []) if existed else not out.exists()


def test_a_resume_is_not_told_to_write_elsewhere():
    """`train --resume RUN` on a full disk was advised to "write elsewhere (--out)": a resume writes into its
    run folder, whatever --out says."""
    import errno

    from rnnlm.errors import describe_os_error
    full = OSError(errno.ENOSPC, "No space left on device", "r/model.npz")
    assert describe_os_error(full, None) == ("No space left on device: r/model.npz (free some space; files "
                                             "written before are intact)")
    assert describe_os_error(full, "--out").endswith("(free some space or write elsewhere (--out); files "
                                                     "written before are intact)")
    denied = OSError(errno.EACCES, "Permission denied", "r")
    assert describe_os_error(denied, None) == "Permission denied: r (no permission; fix the permissions)"


# ---------------------------------------------------------------- named pipes


def test_a_named_pipe_with_no_writer_is_said_and_one_with_a_writer_is_read(tmp_path, monkeypatch, capsys):
    """`sweep run --grid FIFO` and `score --file FIFO` hung with nothing said while nothing wrote into the
    pipe. A pipe is read as `cat` reads it (the shell's <(...) is one), so the wait is said once."""
    import threading
    import time

    from rnnlm import corpus
    monkeypatch.setattr(corpus, "FIFO_NOTE_S", 0.2)
    fifo = tmp_path / "grid.json"
    os.mkfifo(fifo)

    def writer():
        time.sleep(1.0)
        with open(fifo, "w") as f:
            f.write('{"hidden": [8, 16]}')
    threading.Thread(target=writer, daemon=True).start()
    assert corpus.read_bytes(fifo, 1 << 20) == b'{"hidden": [8, 16]}'
    assert capsys.readouterr().err == (f"note: {fifo} is a named pipe (FIFO): waiting for something to write into "
                                       "it (Ctrl-C stops)\n")
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    assert corpus.read_bytes(plain, 10) == b"{}" and capsys.readouterr().err == ""


def test_a_checkpoint_that_is_a_named_pipe_is_refused_not_waited_for(tmp_path):
    from rnnlm import checkpoint
    from rnnlm.errors import UserError
    fifo = tmp_path / "best.npz"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match=r"best.npz is not a regular file \(a named pipe, a device or a socket\); "
                                        r"a checkpoint is an .npz file$"):
        checkpoint.load(fifo)


def test_evaluate_reads_standard_input_for_a_dash(tmp_path, monkeypatch, capsys):
    """`evaluate RUN --text -` said "- does not exist", though `score --file -` reads standard input."""
    import io

    from saved_runs import untrained_gru_run
    run = untrained_gru_run(tmp_path, 30, 3)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("o homem e a casa .\n".encode())))
    assert main(["evaluate", str(run), "--text", "-"]) == 0
    out = capsys.readouterr().out
    assert "text: standard input  (" in out and "perplexity: " in out
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert main(["evaluate", str(run), "--text", "-"]) == 2
    assert capsys.readouterr().err == "error: standard input is empty; give a file with some text\n"


# ---------------------------------------------------------------- the cache folder's messages


def test_the_cache_folder_messages_say_what_to_do(env, tmp_path):
    """RNNLM_CACHE=/dev/null said "File exists"; a temp cache folder others may write said only "no writable
    cache folder", not how to make it private; a temp folder without the sticky bit let others rename it."""
    from rnnlm import caches
    env.setenv("RNNLM_CACHE", "/dev/null")
    folder = tmp_path / "tmp" / f"rnnlm-cache-{os.getuid()}"
    with pytest.warns(UserWarning, match=r"^RNNLM_CACHE=/dev/null cannot be used as a cache \(it is not a folder\)"):
        assert caches.cache_root() == folder
    folder.chmod(0o777)
    assert caches.not_private(folder) == (f"other users may write to it: make it private (chmod 700 {folder}) or "
                                          "remove it")
    folder.chmod(0o700)
    (tmp_path / "tmp").chmod(0o777)         # a shared temp folder without the sticky bit
    assert caches.not_private(folder).startswith(f"the folder it is in, {tmp_path / 'tmp'}, lets other users "
                                                 "rename it")
    (tmp_path / "tmp").chmod(0o1777)        # /tmp's mode
    assert caches.not_private(folder) is None


# ---------------------------------------------------------------- the Python API


@pytest.mark.parametrize("kwargs, kind, message", [
    (dict(eps=10.0), ValueError, r"^gradcheck: eps must be at most 0.01, got 10.0; a larger finite-difference step"),
    (dict(eps=1e300), ValueError, r"^gradcheck: eps must be at most 0.01, got 1e\+300"),
    (dict(weight_scale=1e10), ValueError, r"^gradcheck: weight_scale must be at most 5, got 10000000000.0; larger "
                                          r"weights saturate"),
    (dict(vocab_size=1), ValueError, r"^gradcheck: vocab_size must be an int >= 2, got 1"),
])
def test_gradcheck_refuses_settings_whose_check_cannot_be_read(kwargs, kind, message):
    """gradcheck(eps=10), (eps=1e300) and (weight_scale=1e10) returned a FAIL for a correct gradient, and
    vocab_size=1 a PASS that checked nothing (every gradient is zero with one word)."""
    from rnnlm.gradcheck import gradcheck
    with pytest.raises(kind, match=message):
        gradcheck(**kwargs)


@pytest.mark.parametrize("cell, activation", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")])
def test_gradcheck_passes_at_its_largest_step_and_weights(cell, activation):
    """The limits are where a correct gradient still passes (the check would otherwise be unreadable)."""
    from rnnlm.gradcheck import gradcheck
    assert gradcheck(cell=cell, activation=activation, eps=0.01).ok
    assert gradcheck(cell=cell, activation=activation, weight_scale=5).ok


def test_vocab_answers_a_wrong_kind_in_its_own_words():
    from rnnlm.vocab import Vocab
    v = Vocab(["<unk>", "<eos>", "o", "homem"])
    assert "o" in v and ["o"] not in v and None not in v     # (a list was a TypeError: unhashable type)
    with pytest.raises(TypeError, match=r"^Vocab.encode takes a list of words, got NoneType None$"):
        v.encode(None)


def test_save_model_reads_paths_as_the_commands_do(trained, monkeypatch, capsys):
    """save_model onto a folder named x.npz raised IsADirectoryError; a path under a regular file said "the
    folder does not exist"; ~ was a folder named ~; X.NPZ was refused; a diverged model was saved."""
    from rnnlm.errors import UserError
    from rnnlm.runs import save_model
    model, corpus, folder = trained
    (folder / "dir.npz").mkdir()
    with pytest.raises(UserError, match=r"dir.npz is a folder; give a file name ending in .npz$"):
        save_model(folder / "dir.npz", model, corpus.vocab, corpus)
    (folder / "plain").write_text("x")
    with pytest.raises(UserError, match=r"plain is a file, not a folder; give a path in a folder$"):
        save_model(folder / "plain" / "x.npz", model, corpus.vocab, corpus)
    monkeypatch.setenv("HOME", str(folder))
    assert save_model("~/home.npz", model, corpus.vocab, corpus) == folder / "home.npz"
    assert (folder / "home.npz").is_file() and not (Path.cwd() / "~").exists()
    upper = save_model(folder / "UPPER.NPZ", model, corpus.vocab, corpus)
    assert main(["generate", str(upper), "--words", "3", "--seed", "1"]) == 0
    capsys.readouterr()
    weights = model.params["decoder.bias"]     # (as a training that diverged leaves them, in place)
    keep = weights.flat[0]
    weights.flat[0] = float("nan")
    try:
        with pytest.raises(UserError, match=r"^save_model: the model's decoder.bias holds nan or inf \(it diverged\)"):
            save_model(folder / "nan.npz", model, corpus.vocab, corpus)
    finally:
        weights.flat[0] = keep
    assert not (folder / "nan.npz").exists()


# ---------------------------------------------------------------- the grid file


def test_a_grid_file_key_given_twice_is_refused_and_a_flag_over_a_key_is_said(tmp_path, capsys, monkeypatch):
    """A JSON grid's key given twice kept the last silently; a flag that overrides a grid file's key dropped
    the file's value with nothing said, even an invalid one."""
    from rnnlm import clisweep
    from rnnlm.errors import UserError
    from rnnlm.sweepgrid import expand_grid, read_grid_file
    twice = tmp_path / "twice.json"
    twice.write_text('{"hidden": [8, 16], "lr": 1, "hidden": [4]}')
    with pytest.raises(UserError, match=r"^grid file .*twice.json sets 'hidden' twice; keep one \(a list gives"):
        read_grid_file(twice)
    grid = tmp_path / "g.json"
    grid.write_text('{"hidden": [8, 16], "lr": "abc", "seeds": 2}')
    from rnnlm.cli import _parse, build_parser
    parsed = _parse(build_parser(), ["sweep", "run", "--grid", str(grid), "--lr", "1", "--seeds", "1"])
    assert clisweep._sweep_grid(parsed) == {"hidden": [8, 16], "lr": [1.0], "seeds": 1}
    assert capsys.readouterr().err == f"note: --lr and --seeds override their settings in the grid file {grid}\n"
    points, axes = expand_grid({"hidden": 8, "seeds": 3.0})     # (JSON's 3.0 or 3e0: a whole number)
    assert axes == ["seed"] and len(points) == 3
    with pytest.raises(UserError, match=r"^seeds is 1,000,000,000, more than a sweep runs"):
        expand_grid({"seeds": 1e9})


def test_a_sweep_stopped_before_its_jobs_says_nothing_was_recorded(tmp_path, capsys, monkeypatch):
    from rnnlm import sweepgrid

    def stopped(*a, **k):
        raise KeyboardInterrupt()
    monkeypatch.setattr(sweepgrid, "read_grid_file", stopped)
    grid = tmp_path / "g.json"
    grid.write_text("{}")
    assert main(["sweep", "run", "--grid", str(grid), "--out", str(tmp_path / "s")]) == 130
    assert capsys.readouterr().err == "interrupted before any job ran: nothing was recorded; run it again\n"


# ---------------------------------------------------------------- a stop in a command's last moments


def test_a_sweep_stopped_after_its_report_says_it_is_saved(text, tmp_path, capsys, monkeypatch):
    """A stop after the sweep's last line (as its lock was released) said "terminated before any job ran:
    nothing was recorded" although every file was written."""
    from rnnlm import clisweep
    real = clisweep.finished

    def then_stopped(saved):
        real(saved)
        raise errors.Terminated()
    monkeypatch.setattr(clisweep, "finished", then_stopped)
    out = tmp_path / "s"
    assert main(["sweep", "run", *_flags(text, out), "--cell", "rnn", "--hidden", "8,16", "--max-steps", "2",
                 "--eval-every", "0", "--scheduler", "serial"]) == 143
    err = capsys.readouterr().err.strip().splitlines()
    png = next(out.glob("sweep-*.png")).name
    assert err[-1] == (f"terminated after its work was done: the sweep is saved in {out} (sweep.jsonl, summary.md, "
                       f"{png})")


def test_a_stop_as_the_guarded_block_ends_keeps_the_commands_status(monkeypatch, capsys):
    """A stop landing as main's signal handlers were put back left main as a stop of its own: "interrupted
    before the command began: nothing was done", exit 130, after a command that had finished."""
    import contextlib

    @contextlib.contextmanager
    def stopped_at_the_end():
        yield
        raise KeyboardInterrupt()
    monkeypatch.setattr(errors, "stops_not_lost", stopped_at_the_end)
    assert main(["train", "--hidden", "0"]) == 2
    assert capsys.readouterr().err == "error: --hidden must be at least 1, got 0\n"


# ---------------------------------------------------------------- the trial's second round


def test_evaluate_reads_a_named_pipe_and_refuses_a_closed_standard_input(tmp_path, monkeypatch, capsys):
    """`evaluate RUN --text FIFO` (or <(...)) said "is not a regular file", though the README says a named
    pipe is read; `--text -` with standard input closed (`<&-`) was an AttributeError traceback."""
    import threading

    from saved_runs import untrained_gru_run
    run = untrained_gru_run(tmp_path, 30, 3)
    fifo = tmp_path / "text.fifo"
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "w", encoding="utf-8") as f:
            f.write("o homem e a casa .\n")
    threading.Thread(target=writer, daemon=True).start()
    assert main(["evaluate", str(run), "--text", str(fifo)]) == 0
    assert f"text: {fifo}  (" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", None)
    for argv in (["evaluate", str(run), "--text", "-"], ["score", str(run), "--file", "-"]):
        assert main(argv) == 2
        assert capsys.readouterr().err == ("error: standard input is closed; give the text as a file, or pipe "
                                           "it in\n")


def test_vocab_encode_refuses_a_none_among_the_words():
    """encode(['o', None]) returned [id, 0]: the check for a token that is not a str took None for "none found"."""
    from rnnlm.vocab import Vocab
    v = Vocab(["<unk>", "<eos>", "o", "homem"])
    with pytest.raises(TypeError, match=r"^Vocab.encode: every token must be a str, got NoneType None$"):
        v.encode(["o", None, "homem"])
    with pytest.raises(TypeError, match=r"^Vocab.encode takes a list of words, got a bytes"):
        v.encode(b"o")


def test_gradcheck_refuses_a_step_too_small_to_measure():
    from rnnlm.gradcheck import SMALLEST_EPS, gradcheck
    with pytest.raises(ValueError, match=r"^gradcheck: eps must be at least 0.0001, got 1e-07; a smaller step"):
        gradcheck(eps=1e-7)
    assert gradcheck(cell="lstm", eps=SMALLEST_EPS).ok


def test_measure_and_keep_models_flags_over_grid_keys_are_said(tmp_path, capsys):
    from rnnlm import clisweep
    from rnnlm.cli import _parse, build_parser
    grid = tmp_path / "g.json"
    grid.write_text('{"measure": ["agreement"], "keep_models": false}')
    parsed = _parse(build_parser(), ["sweep", "run", "--grid", str(grid), "--measure", "lag", "--keep-models"])
    assert clisweep._sweep_grid(parsed) == {"measure": ["lag"], "keep_models": True}
    assert capsys.readouterr().err == (f"note: --measure and --keep-models override their settings in the grid "
                                       f"file {grid}\n")

