"""Ctrl-C pressed two or three times in a row during training: one line, exit 130, the checkpoint of the
step it stopped at (a second Ctrl-C milliseconds after the first is the same request; a checkpoint being
written is finished before any stop; once a stop is raised, later signals are ignored)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rnnlm import checkpoint, stopping
from rnnlm.errors import STOPS, Terminated, sigterm_raises

REPO = Path(__file__).resolve().parents[1]
MAIN_THREAD = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                 reason="signals need the main thread")


def _training(text, out):
    """A run that trains for minutes unless stopped, once its first step event is logged."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "cli.py", "train", "--corpus", str(text), "--max-vocab", "300",
                             "--valid-fraction", "0.1", "--test-fraction", "0.1", "--emsize", "32", "--hidden", "64",
                             "--bptt", "20", "--batch-size", "8", "--dropout", "0", "--sample-words", "0",
                             "--log-every", "5", "--eval-every", "0", "--epochs", "100000", "--no-progress",
                             "--out", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and any(json.loads(line).get("type") == "step"
                                    for line in metrics.read_text().splitlines() if line.strip()):
            return proc
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the training logged no step in 240 s")


@pytest.mark.slow
@pytest.mark.parametrize("gap", [0.002, 0.02])
def test_ctrl_c_three_times_in_a_row_keeps_the_checkpoint_and_prints_one_line(text, tmp_path, gap):
    out = tmp_path / "r"
    proc = _training(text, out)
    time.sleep(0.3)
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted at step ") and "checkpoint saved to" in last, err
    step = int(last.split()[3].rstrip(":"))
    assert step > 0 and int(checkpoint.load(out / "model.npz").train["step"]) == step


@MAIN_THREAD
def test_a_second_signal_within_a_second_is_the_same_request():
    with stopping.Interrupt() as it:
        it._handle(signal.SIGINT, None)
        it._handle(signal.SIGINT, None)          # pressed twice: still only a request to stop and save
        assert it.requested and not STOPS.raised
        it.requested_at -= stopping.REPEAT_S
        with pytest.raises(KeyboardInterrupt):   # a second later: at once
            it._handle(signal.SIGINT, None)
        assert STOPS.raised
        assert it._handle(signal.SIGINT, None) is None      # a third: the process is ending, ignored
        assert it._handle(signal.SIGTERM, None) is None


@MAIN_THREAD
def test_a_checkpoint_being_written_is_finished_before_the_stop():
    with stopping.Interrupt() as it:
        it.saved_step = 3
        it._handle(signal.SIGTERM, None)
        it.requested_at -= stopping.REPEAT_S
        written = []
        with pytest.raises(Terminated) as e:
            with stopping.saving(7):
                it._handle(signal.SIGTERM, None)     # held until the file is complete
                written.append(7)
        assert written == [7]
        assert e.value.line == ("terminated (SIGTERM) again: stopped at once, without saving (the checkpoint of "
                                "step 7 is kept, and --resume continues from it)")
        with stopping.saving(8):                     # best.npz (no step): a stop waits, the step kept stays
            pass
        assert it.saved_step == 8


@MAIN_THREAD
def test_a_run_that_stopped_and_saves_its_last_state_ignores_more_signals():
    with stopping.Interrupt() as it:
        it._handle(signal.SIGINT, None)
        it.requested_at -= stopping.REPEAT_S
        it.finishing = True
        with stopping.saving(9):
            assert it._handle(signal.SIGINT, None) is None
        assert it.saved_step == 9 and not STOPS.raised


@MAIN_THREAD
def test_a_start_up_signal_during_the_step_0_save_waits_for_the_file():
    with stopping.StartUp() as guard:
        with pytest.raises(KeyboardInterrupt):
            with stopping.saving(0):
                guard._handle(signal.SIGINT, None)
                done = True
        assert done and guard.signum == signal.SIGINT
        assert guard._handle(signal.SIGINT, None) is None    # the start-up is being undone: ignored


@MAIN_THREAD
def test_the_commands_handler_ignores_signals_once_one_stopped_it():
    with sigterm_raises(sigint=True) as seen:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
            pytest.fail("SIGTERM did not raise")
        except Terminated:
            os.kill(os.getpid(), signal.SIGINT)      # during the clean-up: ignored, not a second traceback
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert seen.signum == signal.SIGTERM
    with sigterm_raises(sigint=True):                # a new guarded block answers again
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)


def test_no_save_outside_a_handler_holds_anything():
    with stopping.saving(5):
        pass


@MAIN_THREAD
def test_a_signal_after_the_loop_took_one_is_ignored_until_train_returns():
    with stopping.StartUp() as guard:
        guard.end()
        with stopping.Interrupt() as loop:
            loop._handle(signal.SIGINT, None)        # the loop stops at its step boundary and saves
        assert guard._handle(signal.SIGINT, None) is None   # then: the summary is on its way, not a new stop
    with stopping.StartUp() as guard:
        guard.end()
        with pytest.raises(KeyboardInterrupt):       # between phases of a run that took no signal: at once
            guard._handle(signal.SIGINT, None)


@MAIN_THREAD
def test_a_first_signal_during_the_save_after_a_validation_is_not_said_to_wait_for_it(capsys):
    with stopping.Interrupt() as it:
        it.saved_step, it.during = 0, "validation"
        with stopping.saving(2):
            it._handle(signal.SIGINT, None)
        assert it.requested and it.saved_step == 2 and it.during == "validation"
    assert "stopping when this validation ends" not in capsys.readouterr().err


def test_ctrl_c_while_the_cli_is_imported_is_one_line(monkeypatch, capsys):
    import builtins

    from rnnlm import __main__ as entry
    real = builtins.__import__

    def importing(name, *a, **k):
        if name == "rnnlm.cli":
            raise KeyboardInterrupt         # the Ctrl-C lands while NumPy and Numba load
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", importing)
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as e:
            entry.run()
    finally:        # (run, the process's entry point, leaves both ignored until the process exits)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert e.value.code == 130
    assert capsys.readouterr().err == "interrupted before the command began: nothing was done\n"


def test_a_stop_before_the_command_began_or_the_training_started_says_nothing_was_done(monkeypatch, capsys,
                                                                                       tmp_path):
    from rnnlm import cli, clitrain

    def stopped(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "_check_paths", stopped)
    assert cli.main(["evaluate", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "interrupted before the command began: nothing was done\n"
    monkeypatch.undo()
    monkeypatch.setattr(clitrain, "_train_config", stopped)
    assert cli.main(["train", "--resume", str(tmp_path)]) == 130
    assert capsys.readouterr().err == (f"interrupted before the training started: nothing was written ({tmp_path} "
                                       f"is as it was)\n")


def test_a_stop_lost_inside_a_callback_leaves_the_next_signal_answered():
    from types import SimpleNamespace

    from rnnlm import cli
    STOPS.raised = STOPS.signalled = True            # raised in a ctypes callback of Numba's cache: printed, lost
    cli._quiet_stops(SimpleNamespace(exc_value=KeyboardInterrupt()), default=None)
    assert not STOPS.raised and not STOPS.signalled  # a generate or jacobian stays stoppable by the next Ctrl-C


@MAIN_THREAD
@pytest.mark.parametrize("command, line", [("train", "interrupted before the training started: nothing was written "
                                                    "(RUN is as it was)"),
                                           (None, "interrupted before the command began: nothing was done")])
def test_a_stop_that_became_another_error_before_the_work_began_says_nothing_was_done(monkeypatch, capsys,
                                                                                       tmp_path, command, line):
    from rnnlm import cli, clitrain

    def import_interrupted(*a):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**7):      # the handler runs between bytecodes
                pass
        except KeyboardInterrupt:       # (inside an import's lock it comes out as another error)
            raise ImportError("cannot import name 'train' (interrupted)") from None
    if command == "train":
        monkeypatch.setattr(clitrain, "_train_config", import_interrupted)
    else:
        monkeypatch.setattr(cli, "_check_paths", import_interrupted)
    assert cli.main(["train", "--resume", str(tmp_path)]) == 130
    assert capsys.readouterr().err == line.replace("RUN", str(tmp_path)) + "\n"
