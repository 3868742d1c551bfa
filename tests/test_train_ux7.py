"""A trial user's `train`, seventh round: a SIGTERM during start-up (reading the corpus, compiling) that
ended the process silently and left a folder holding only its lock, and a bar whose time left missed the
final evaluation of a run whose evaluation speed was never measured."""
import math
import os
import signal
import threading

import pytest

from rnnlm import checkpoint, data
from rnnlm import train as train_module
from rnnlm.cli import main
from rnnlm.progress import RESERVE_EXTRA_S, RESERVE_FACTOR, _Timing, command_time_left

from test_train import tiny

FLAGS = ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
         "--emsize", "16", "--hidden", "16", "--bptt", "8", "--batch-size", "16", "--dropout", "0",
         "--sample-words", "0", "--no-progress"]
MAIN_THREAD = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                 reason="signals need the main thread")


# ---------------------------------------------------------------- 1. a signal during start-up


class _Escaped(Exception):
    """A SIGTERM that reached the test's own handler: train() had none installed (the default action
    would have ended the whole test session, as it ended the user's run, silently)."""


@pytest.fixture
def sigterm_escapes():
    def escaped(signum, frame):
        raise _Escaped()
    previous = signal.signal(signal.SIGTERM, escaped)
    yield
    signal.signal(signal.SIGTERM, previous)


def _kill_in(monkeypatch, phase: str, signum):
    """Send `signum` to this process while train() reads the corpus or compiles the kernels."""
    module, name = {"corpus": (data, "load_corpus"), "compiling": (train_module, "_warm_up")}[phase]
    real = getattr(module, name)

    def killed(*a, **k):
        os.kill(os.getpid(), signum)
        return real(*a, **k)
    monkeypatch.setattr(module, name, killed)


@MAIN_THREAD
@pytest.mark.parametrize("phase", ["corpus", "compiling"])
@pytest.mark.parametrize("signum, status, word", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                  (signal.SIGINT, 130, "interrupted")])
def test_a_signal_during_start_up_says_so_in_one_line_and_leaves_no_folder(text, tmp_path, capsys, monkeypatch,
                                                                             sigterm_escapes, phase, signum,
                                                                             status, word):
    out = tmp_path / "runs" / "r"
    argv = ["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(out)]
    with monkeypatch.context() as m:
        _kill_in(m, phase, signum)
        assert main(argv) == status
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"{word} during start-up; nothing was trained ({out} removed)"], err
    assert not (tmp_path / "runs").exists()         # the folders it created are gone, .train.lock included
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL       # the caller's handler is back
    # the same --out trains without complaint
    assert main(argv) == 0
    assert int(checkpoint.load(out / "model.npz").train["step"]) == 2


@MAIN_THREAD
@pytest.mark.parametrize("fate", ["swallowed", "turned into a KeyError"])
def test_a_start_up_signal_whose_exception_was_lost_or_changed_still_stops(text, tmp_path, capsys, monkeypatch,
                                                                          sigterm_escapes, fate):
    """The start-up handler raises at once, so its exception can land where it is lost (a ctypes callback of
    Numba's cache only prints it) or changed (an import's module lock ended in a KeyError): the run stops
    before its first step all the same, in the one line of any start-up signal (seen in a trial: a run that
    trained on and exited 0, and a 100-line traceback)."""
    out = tmp_path / "runs" / "r"
    real = train_module._warm_up

    def warm_up(*a, **k):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            if fate != "swallowed":
                raise KeyError(139687697824640) from None
        return real(*a, **k)
    monkeypatch.setattr(train_module, "_warm_up", warm_up)
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(out)]) == 143
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"terminated (SIGTERM) during start-up; nothing was trained ({out} removed)"]
    assert not (tmp_path / "runs").exists()


@MAIN_THREAD
def test_a_sigterm_during_a_resumes_start_up_leaves_the_run_as_it_was(text, tmp_path, capsys, monkeypatch,
                                                                       sigterm_escapes):
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(out)]) == 0
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()
    with monkeypatch.context() as m:
        _kill_in(m, "compiling", signal.SIGTERM)
        assert main(["train", "--resume", str(out), "--max-steps", "3"]) == 143
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (f"terminated (SIGTERM) during start-up; nothing was trained: {out} is "
                                            f"as it was (continue with --resume {out} --max-steps 3)")
    assert sorted(p.name for p in out.iterdir()) == before
    assert main(["train", "--resume", str(out), "--max-steps", "3"]) == 0
    assert int(checkpoint.load(out / "model.npz").train["step"]) == 3


# ---------------------------------------------------------------- 2. the time left includes the final evaluation


def test_the_time_left_is_the_steps_left_plus_the_final_evaluation():
    timing = _Timing(tiny("x", "r", max_minutes=0), final_tokens=8_380)
    assert timing.needed() == 0.0                   # no speed measured: the final evaluation is invisible
    timing.observe_eval(10_000, 1.0)                # 10,000 tokens/s
    final = RESERVE_FACTOR * 0.838 + RESERVE_EXTRA_S
    assert timing.needed() == pytest.approx(final) == pytest.approx(2.8799)
    # step 6 of 8 at 0.5 steps/s: 4 s of training, then the final validation and test
    left, budget = command_time_left(timing.left(30.0), 2, 0.5, timing.needed())
    assert left == pytest.approx(4.0 + 2.8799) and not budget
    # a 60 s budget binds at 50 s elapsed: the budget's remaining wall time, final evaluation inside it
    timed = _Timing(tiny("x", "r", max_minutes=1), final_tokens=8_380)
    timed.observe_eval(10_000, 1.0)
    left, budget = command_time_left(timed.left(50.0), 100, 0.5, timed.needed())
    assert left == pytest.approx(10.0) and budget


@pytest.mark.parametrize("settings", [
    dict(max_minutes=0, eval_minutes=0),            # no budget, no timed validation: the speed was never measured
    dict(max_minutes=1, eval_batch_size=40),        # a validation split shorter than two --bptt windows
])
def test_the_evaluation_speed_is_measured_before_training_for_the_time_left(text, tmp_path, settings):
    s = train_module._prepare(tiny(text, tmp_path / "r", **settings))
    timing = _Timing(s.config, final_tokens=train_module._final_tokens(s))
    train_module._warm_up(s, timing)
    assert timing.eval_tps is not None and 100 < timing.eval_tps < 1e9
    assert timing.needed() == pytest.approx(RESERVE_FACTOR * timing.final_tokens / timing.eval_tps
                                            + RESERVE_EXTRA_S)
    assert timing.needed() > RESERVE_EXTRA_S and math.isfinite(timing.needed())
    assert not (tmp_path / "r").exists()            # set-up only: nothing written


def test_a_terminal_of_width_0_gets_the_log_lines(monkeypatch):
    """Some ptys report a 0 x 0 size, where tqdm draws nothing: they count as a log, not a terminal."""
    import io
    import os
    import sys

    from rnnlm import progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

        def fileno(self):
            return 2
    monkeypatch.setattr(sys, "stderr", Tty())
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((0, 0)))
    assert not progress.stderr_is_terminal()
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((80, 24)))
    assert progress.stderr_is_terminal()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress.stderr_is_terminal()
