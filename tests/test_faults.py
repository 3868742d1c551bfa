"""Small faults a user hits at the edges of the CLI: a batch larger than the training split allows, --max-steps 0
dropping the time budget, train's exit status on SIGTERM (130 instead of 143, also through a serial sweep), bench's
bars drawn into logs, the deprecated license table of pyproject.toml, and a background sweep stopped by SIGTERM;
then a trial user's: a summary saying "interrupted" after a SIGTERM, a background training run stopped by the
SIGINT its shell asked it to ignore, a log silent while the kernels compile and the final evaluation runs, and
the run folder printed twice; then: a Ctrl-C during the final evaluation that left nothing to resume, a closed
pipe reported as an error, a timed validation the summary ignored, a log's late first line, and generate_text's
undocumented list."""
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rnnlm import bench, benchscaling, checkpoint, cli, clitrain
from rnnlm import progress, resume, stopping, session, train as train_module, trainend
from rnnlm.loopstate import LoopState
from rnnlm.cli import main
from rnnlm.config import TrainConfig
from rnnlm.errors import UserError
from rnnlm.settings import default
from rnnlm.sweep import read_rows

from test_sweep import _flags

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
         "--emsize", "16", "--hidden", "16", "--bptt", "8", "--dropout", "0",
         "--sample-words", "0", "--no-progress"]
MAIN_THREAD = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                 reason="signals need the main thread")


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    return lines[0]


# ---------------------------------------------------------------- 1. a batch larger than the split allows


def _corpus(train, valid, policy="contiguous"):
    return SimpleNamespace(train=np.zeros(train, np.int32), valid=np.zeros(valid, np.int32), split_policy=policy)


def test_check_batches_needs_one_whole_bptt_window_per_training_stream():
    config = TrainConfig(bptt=35, batch_size=32, eval_batch_size=10)
    train_module.check_batches(_corpus(32 * 36, 20), config)      # exactly one window of 35 steps + its next token
    with pytest.raises(UserError) as e:
        train_module.check_batches(_corpus(32 * 36 - 1, 20), config)
    assert str(e.value) == ("the training split's 1,151 tokens are too few for batch size 32 with --bptt 35: each "
                            "of the 32 streams needs one window of 36 tokens (1,152 in all); give --batch-size 31 or "
                            "less, a smaller --bptt or a larger corpus")
    with pytest.raises(UserError, match=r"give a smaller --bptt and --batch-size or a larger corpus$"):
        train_module.check_batches(_corpus(30, 20), config)       # shorter than one window even for one stream
    # validation: one prediction (2 tokens) per --eval-batch-size stream; no whole window needed
    train_module.check_batches(_corpus(32 * 36, 20), config)
    with pytest.raises(UserError) as e:
        train_module.check_batches(_corpus(32 * 36, 19), config)
    assert str(e.value) == ("the validation split's 19 tokens are too few for --eval-batch-size 10: each of its 10 "
                            "streams needs 2 tokens (one prediction); give --eval-batch-size 9 or less, a larger "
                            "--valid-fraction or a larger corpus")
    with pytest.raises(UserError, match=r"give --eval-batch-size 9 or less or a larger corpus$"):
        train_module.check_batches(_corpus(32 * 36, 19, policy="predefined"), config)   # its file names fix the split


def test_train_with_a_batch_too_large_for_one_bptt_window_is_one_line_that_says_what_fits(text, tmp_path, capsys):
    # ~4k training tokens, --bptt 8: batch 2000 used to train silently on windows of 1 step instead of 8
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "2000", "--max-steps", "2",
                 "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert "too few for batch size 2000 with --bptt 8" in err and not out.exists()
    fit = int(re.search(r"give --batch-size (\d+) or less", err).group(1))
    n = int(re.search(r"the training split's ([\d,]+) tokens", err).group(1).replace(",", ""))
    assert fit == n // 9 and 100 < fit < 2000
    # the advice is right: one more is refused, the size it names trains whole 8-step windows
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", str(fit + 1), "--max-steps", "1",
                 "--out", str(out)]) == 2
    assert "too few for batch size" in _one_line_error(capsys)
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", str(fit), "--max-steps", "1",
                 "--out", str(out)]) == 0
    assert "stopped: max_steps after 1 step (" + f"{8 * fit:,} tokens" in capsys.readouterr().out


def test_an_eval_batch_too_large_for_the_validation_split_names_its_flag(text, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--eval-batch-size", "5000",
                 "--max-steps", "2", "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert "the validation split's" in err and "too few for --eval-batch-size 5000" in err
    assert "a larger --valid-fraction" in err and not out.exists()


# ---------------------------------------------------------------- 2. --max-steps 0 keeps the time budget


def _train_flags(*argv):
    return clitrain._train_config(cli.build_parser().parse_args(["train", *argv]))[0]


def test_max_steps_0_is_no_step_limit_and_keeps_the_default_time_budget(capsys):
    budget = default(TrainConfig, "max_minutes")
    assert budget == 10.0
    assert _train_flags().max_minutes == budget
    zero = _train_flags("--max-steps", "0")
    assert zero.max_steps == 0 and zero.max_minutes == budget          # was 0: no limit at all
    assert _train_flags("--max-steps", "5").max_minutes == 0.0         # a step limit replaces the budget
    assert _train_flags("--epochs", "2").max_minutes == 0.0
    assert _train_flags("--max-steps", "0", "--max-minutes", "3").max_minutes == 3.0
    # the sweep grid applies the same rule
    from rnnlm.sweepgrid import make_config
    assert make_config({"max_steps": 0}).max_minutes == budget
    assert make_config({"max_steps": 200}).max_minutes == 0.0
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())   # argparse wraps lines: compare word sequences
    assert "0 = no step limit (the default: the time budget still applies)" in text
    assert "neither --epochs nor a --max-steps above 0 is given" in text


# ---------------------------------------------------------------- 3. SIGTERM exits 143


def test_exit_status_is_128_plus_the_signal():
    assert stopping.exit_status({"stopped": "max_steps", "signal": None}) == 0
    assert stopping.exit_status({"stopped": "interrupted", "signal": "SIGINT"}) == 130
    assert stopping.exit_status({"stopped": "interrupted", "signal": "SIGTERM"}) == 143
    assert stopping.exit_status({"stopped": "interrupted"}) == 130     # a summary without the signal: Ctrl-C


def _signal_at_step(monkeypatch, signum, at=3):
    """train_step sends `signum` to this process during step `at` (the loop stops at the next boundary)."""
    real, calls = train_module.train_step, []

    def step(*a, **k):
        calls.append(1)
        if len(calls) == at:
            os.kill(os.getpid(), signum)
        return real(*a, **k)
    monkeypatch.setattr(train_module, "train_step", step)


@MAIN_THREAD
@pytest.mark.parametrize("signum, status, word", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                  (signal.SIGINT, 130, "interrupted")])
def test_train_stopped_by_a_signal_saves_and_exits_128_plus_it(text, tmp_path, capsys, monkeypatch, signum, status,
                                                                word):
    _signal_at_step(monkeypatch, signum)
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "50",
                 "--out", str(out)]) == status
    captured = capsys.readouterr()
    assert f"{word} at step 3: checkpoint saved to {out / 'model.npz'}; continue with --resume {out}" in captured.err
    # the summary names the signal as the line on stderr does (it said "interrupted" after a SIGTERM too)
    assert f"stopped: {word} after 3 steps" in captured.out
    assert int(checkpoint.load(out / "model.npz").train["step"]) == 3   # the last good state is kept


@MAIN_THREAD
def test_a_serial_sweep_stopped_by_sigterm_mid_training_exits_143(text, tmp_path, capsys, monkeypatch):
    # the serial path trains in this process, where train()'s handler takes the SIGTERM
    _signal_at_step(monkeypatch, signal.SIGTERM)
    out = tmp_path / "s"
    assert main(["sweep", "run", *_flags(text, out), "--cell", "rnn", "--max-steps", "50", "--eval-every", "0",
                 "--scheduler", "serial"]) == 143
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (f"terminated: no job had finished (none is left running), so nothing is "
                                            f"recorded; {out} was new and is removed again; the same command starts "
                                            "over")
    assert "Traceback" not in err and read_rows(out) == []


# ---------------------------------------------------------------- 4. bench's bars only on a terminal


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("scaling", [False, True])
def test_bench_draws_a_bar_on_a_terminal_and_a_line_per_item_in_a_log(monkeypatch, scaling):
    monkeypatch.setattr(bench, "_set_threads", lambda n: None)     # leave this process's thread count alone
    monkeypatch.setattr(benchscaling, "_set_threads", lambda n: None)
    if scaling:
        monkeypatch.setattr(benchscaling, "scaling_one", lambda *a, **k: [{"cell": a[0]}])
        run = lambda: benchscaling.run_scaling("rnn", "tiny", threads="1", repeats=1)       # noqa: E731
    else:
        monkeypatch.setattr(bench, "bench_one", lambda c, conf, **k: {"cell": c})
        run = lambda: bench.run_bench("rnn", "tiny", repeats=1, threads=1)           # noqa: E731
    log = io.StringIO()                                     # stderr redirected to a file, a CI log
    monkeypatch.setattr(sys, "stderr", log)
    assert run() == [{"cell": "rnn"}]
    # no bar's carriage returns in a log: one plain line as each item starts
    assert log.getvalue() == f"bench{' --scaling' if scaling else ''}: tiny rnn (1 of 1)\n"
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run() == [{"cell": "rnn"}]
    assert "bench" in terminal.getvalue() and "/1" in terminal.getvalue()       # the bar, on a terminal


# ---------------------------------------------------------------- 5. the license as an SPDX string


def test_pyproject_gives_the_license_as_an_spdx_string_with_a_setuptools_that_reads_it():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["license"] == "MIT"                  # not the deprecated {text = "MIT"} table
    requires = [r for r in meta["build-system"]["requires"] if r.startswith("setuptools")]
    assert requires == ["setuptools>=77"]                       # 77.0: the first to accept the string (PEP 639)
    assert not any(c.startswith("License ::") for c in meta["project"].get("classifiers", []))  # PEP 639 forbids both


# ---------------------------------------------------------------- 6. a sweep started in the background


def _background():
    """preexec_fn: what a non-interactive shell does to `cmd &`: SIGINT ignored (so Python installs no
    KeyboardInterrupt for it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
def test_a_background_sweep_ignores_sigint_as_the_shell_asks_and_stops_cleanly_on_sigterm(text, tmp_path):
    out, scratch = tmp_path / "s", tmp_path / "tmp"
    scratch.mkdir()
    cmd = [sys.executable, "cli.py", "sweep", "run", *_flags(text, out), "--cell", "rnn", "--workers", "1",
           "--max-steps", "1000000", "--epochs", "100000", "--patience", "0", "--min-lr", "0", "--eval-every", "0"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, TMPDIR=str(scratch)), start_new_session=True,
                            preexec_fn=_background, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and not list(scratch.rglob("rnnlm-job-*")) and proc.poll() is None:
            time.sleep(0.2)
        assert list(scratch.rglob("rnnlm-job-*")), proc.communicate(timeout=60)
        proc.send_signal(signal.SIGINT)             # `kill -INT PID`: ignored, as the shell asked
        time.sleep(2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)            # `kill PID`: the way to stop a background sweep
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == (f"terminated: no job had finished (none is left running), so nothing is "
                                            f"recorded; {out} was new and is removed again; the same command starts "
                                            "over")
    assert "Traceback" not in err
    assert list(scratch.iterdir()) == []            # no cluster scratch folder, no job folder left


# ---------------------------------------------------------------- 7. an ignored SIGINT stays ignored while training


@MAIN_THREAD
def test_the_handler_leaves_an_ignored_signal_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)     # what a shell does to `train ... &`
    try:
        with stopping.Interrupt() as interrupt:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == interrupt._handle     # `kill PID` still stops it cleanly
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert not interrupt.requested
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@MAIN_THREAD
def test_a_background_train_ignores_sigint_and_runs_to_its_end(text, tmp_path, capsys, monkeypatch):
    _signal_at_step(monkeypatch, signal.SIGINT)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "6",
                     "--out", str(tmp_path / "r")]) == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "stopped: max_steps after 6 steps" in capsys.readouterr().out


# ---------------------------------------------------------------- 8. silent phases named in a log; the folder once


def test_phase_lines_only_in_place_of_the_bars_a_log_cannot_show(monkeypatch):
    bars, no_bars = TrainConfig(), TrainConfig(progress=False)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    progress.phase(bars, "compiling...")
    assert terminal.getvalue() == ""                # a terminal shows bars (or nothing to wait for)
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    progress.phase(no_bars, "compiling...")
    assert log.getvalue() == ""                     # --no-progress: no bar wanted, nothing in its place
    progress.phase(bars, "compiling...")
    assert log.getvalue() == "compiling...\n"


def test_a_logged_run_names_its_silent_phases_and_its_folder_once(text, tmp_path, capsys):
    out = tmp_path / "r"
    flags = [f for f in FLAGS if f != "--no-progress"]           # bars wanted, but stderr is no terminal here
    assert main(["train", "--corpus", str(text), *flags, "--batch-size", "16", "--max-steps", "6",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    compiling = [i for i, line in enumerate(err) if line in (
        "compiling the kernels (about 30 s; later runs read them from the cache)...",
        "reading the compiled kernels from the cache...")]
    assert len(compiling) == 1, err       # which one: whether earlier tests filled the kernel cache
    final = [i for i, line in enumerate(err) if line.startswith("final validation on the validation split (")]
    test = [i for i, line in enumerate(err) if line.startswith("evaluating on the test split (")]
    assert len(final) == len(test) == 1 and compiling[0] < final[0] < test[0], err
    assert err[final[0] + 1].startswith("| final validation | loss")     # the phase, then its result
    assert err[test[0]].endswith(" tokens, best model)...")
    # the folder: on the first line (to find it while the run goes on), not again in the summary
    lines = captured.out.splitlines()
    assert lines[0] == f"run folder: {out}" and captured.out.count("run folder:") == 1
    assert lines[1].startswith("stopped: max_steps after 6 steps")


# ---------------------------------------------------------------- 9. a stop during the final evaluation


def _events(run) -> list:
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def _signal_in_evaluation(monkeypatch, signum, bar):
    """The evaluation named `bar` ("final validation", "test") sends `signum` to this process as it starts."""
    real = train_module.evaluate_stream

    def evaluate(model, stream, bptt, bar=None, _want=bar):
        if bar == _want:
            os.kill(os.getpid(), signum)
        return real(model, stream, bptt, bar=bar)
    for module in (train_module, session, trainend):    # the loop's, the validations' and the test split's
        monkeypatch.setattr(module, "evaluate_stream", evaluate)
    return real


@MAIN_THREAD
@pytest.mark.parametrize("signum, status, word, during", [(signal.SIGINT, 130, "interrupted", "test"),
                                                          (signal.SIGTERM, 143, "terminated (SIGTERM)",
                                                           "final validation")])
def test_a_stop_during_the_final_evaluation_says_how_to_finish_and_a_resume_runs_only_it(
        text, tmp_path, capsys, monkeypatch, signum, status, word, during):
    flags = [*FLAGS, "--batch-size", "16", "--max-steps", "5"]
    clean = tmp_path / "clean"
    assert main(["train", "--corpus", str(text), *flags, "--out", str(clean)]) == 0
    capsys.readouterr()
    out = tmp_path / "r"
    real = _signal_in_evaluation(monkeypatch, signum, during)
    assert main(["train", "--corpus", str(text), *flags, "--out", str(out)]) == status
    captured = capsys.readouterr()
    assert captured.out == f"run folder: {out}\n" and "Traceback" not in captured.err
    assert captured.err.strip().splitlines()[-1] == (
        f"{word} during the final evaluation, after step 5: checkpoint saved to {out / 'model.npz'} with training "
        f"done; continue with --resume {out} (it runs only the final evaluation)")
    assert (out / "best.npz").exists() == (during == "test")    # the final validation wrote it before the test
    assert [e["type"] for e in _events(out)][-1 if during == "final validation" else -2] == "stop"
    assert "end" not in [e["type"] for e in _events(out)]

    for module in (train_module, session, trainend):
        monkeypatch.setattr(module, "evaluate_stream", real)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0       # was refused: "already at step 5"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"resuming {out} from step 5 (epoch 1): its training is done; running the final "
                        "evaluation that did not finish")
    assert lines[1] == f"run folder: {out}"
    assert lines[2].startswith("stopped: max_steps after 5 steps") and "tokens/s" not in lines[2]   # none trained
    # it ends as the run that was never stopped: the same test perplexity, best.npz and events (and a resume)
    test_line = [line for line in lines if line.startswith("test ppl (best model): ")]
    assert len(test_line) == 1
    types = [e["type"] for e in _events(out)]
    assert [t for t in types if t != "resume"] == [e["type"] for e in _events(clean)]
    assert types[-5:] == ["resume", "stop", "eval", "eval", "end"]      # the cut evaluation's events are gone
    final = lambda run: [(e["split"], e.get("val_loss"), e.get("test_loss")) for e in _events(run)   # noqa: E731
                         if e["type"] == "eval"]
    assert final(out) == final(clean) and len(final(out)) == 2
    a, b = checkpoint.load(out / "best.npz").model, checkpoint.load(clean / "best.npz").model
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # finished now: refused as any finished run is
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    assert "already at step 5, the limit of --max-steps 5" in capsys.readouterr().err


def test_a_run_counts_as_evaluated_unless_its_last_stop_announced_an_evaluation_that_never_ended(tmp_path):
    from rnnlm.config import config_to_dict
    from rnnlm.runs import final_evaluation_pending

    def write(*events):
        (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    stop = {"type": "stop", "reason": "max_steps", "step": 5, "epoch": 1, "final_evaluation": True}
    write({"type": "start", "step": 0}, stop, {"type": "eval", "split": "valid", "step": 5})
    assert final_evaluation_pending(tmp_path, 5) == "max_steps"
    assert final_evaluation_pending(tmp_path, 4) is None            # model.npz at another step than the stop
    write(stop, {"type": "eval", "split": "test", "step": 5}, {"type": "end", "step": 5})
    assert final_evaluation_pending(tmp_path, 5) is None
    legacy = {k: v for k, v in stop.items() if k != "final_evaluation"}
    write(legacy, {"type": "eval", "split": "test", "step": 5})     # an earlier version's run: no "end" either
    assert final_evaluation_pending(tmp_path, 5) is None
    write({**stop, "reason": "interrupted", "final_evaluation": False})
    assert final_evaluation_pending(tmp_path, 5) is None
    # a time budget stays spent while --max-minutes is unchanged (a new reserve could leave a few seconds)
    config = TrainConfig(max_minutes=1.0)
    (tmp_path / "config.json").write_text(json.dumps({"train": config_to_dict(config)}))
    write({**stop, "reason": "max_minutes"})
    loop = LoopState(step=5, elapsed=50.0)
    assert resume.finish_only(config, loop, tmp_path, lr=1.0) == "max_minutes"
    assert resume.finish_only(TrainConfig(max_minutes=2.0), loop, tmp_path, lr=1.0) is None  # trains on
    write({**stop, "reason": "max_steps"})
    assert resume.finish_only(TrainConfig(max_steps=5), loop, tmp_path, lr=1.0) == "max_steps"
    assert resume.finish_only(TrainConfig(max_steps=8), loop, tmp_path, lr=1.0) is None


# ---------------------------------------------------------------- 10. a closed pipe on stdout


def _closed_stdout(*argv) -> tuple[int, str]:
    """Run the CLI with its stdout read by nobody (`| head -c 0`): (exit status, stderr)."""
    proc = subprocess.Popen([sys.executable, "cli.py", *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=300), err


def test_a_closed_stdout_ends_a_command_quietly_with_141(text, tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "2",
                 "--out", str(out)]) == 0
    status, err = _closed_stdout("generate", str(out), "--words", "3000")
    assert status == 141, err
    assert err.splitlines() == [f"checkpoint: {out / 'best.npz'}"]     # no "error: Broken pipe", no traceback
    assert _closed_stdout("train", "--help") == (141, "")    # argparse's help too (it ignored the failed write)


def test_a_broken_pipe_in_any_command_is_no_error_line(monkeypatch, capsys):
    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(cli, "COMMANDS", [(n, a, broken if n == "evaluate" else r) for n, a, r in cli.COMMANDS])
    assert main(["evaluate", "runs/x"]) == 141
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------- 11. the baseline against a timed validation


def test_the_summary_holds_the_latest_timed_validation_against_the_baseline():
    from rnnlm.summary import _baseline_lines
    base = {"baseline": {"valid": {"ppl": 114.12}, "test": {"ppl": 94.59}}, "best_val_loss": math.inf,
            "best_val_ppl": math.inf, "val_step": None, "run_dir": "runs/t", "stopped": "interrupted"}
    timed = {"step": 400, "loss": math.log(175.29), "tokens": 12_000, "of_tokens": 60_000}
    assert _baseline_lines({**base, "timed_val": timed})[1] == (
        "  the model has NOT beaten it yet on valid (the latest validation, a timed one at step 400 on 12,000 of "
        "60,000 tokens): 175.29 >= 114.12 (train longer: continue it with python cli.py train --resume runs/t)")
    assert _baseline_lines({**base, "timed_val": None})[1].startswith(
        "  the model has not been evaluated yet, so there is nothing to compare")
    scheduled = {**base, "best_val_loss": math.log(100.0), "best_val_ppl": 100.0, "val_step": 500}
    assert _baseline_lines({**scheduled, "timed_val": timed})[1] == "  the model beats it on valid: 100.00 < 114.12"
    older = _baseline_lines({**scheduled, "val_step": 200, "timed_val": timed})[1]
    assert older.startswith("  the model has NOT beaten it yet on valid (the latest validation, a timed one at step 400")


@MAIN_THREAD
def test_an_interrupted_run_compares_its_timed_validation(text, tmp_path, capsys, monkeypatch):
    _signal_at_step(monkeypatch, signal.SIGINT, at=3)
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "50",
                 "--eval-minutes", "1e-9", "--out", str(out)]) == 130
    captured = capsys.readouterr()
    timed = [e for e in _events(out) if e["type"] == "timed_eval"]
    assert timed and timed[-1]["step"] == 3
    want = (f"on valid (the latest validation, a timed one at step 3 on {timed[-1]['tokens']:,} of "
            f"{timed[-1]['of_tokens']:,} tokens): {timed[-1]['val_ppl']:.2f} ")
    assert want in captured.out and "not been evaluated yet" not in captured.out


# ---------------------------------------------------------------- 12. a log's first progress line


def test_a_log_shows_its_first_progress_line_after_a_few_steps_or_seconds(monkeypatch):
    log = io.StringIO()                             # stderr redirected to a file
    monkeypatch.setattr(sys, "stderr", log)
    config = TrainConfig(max_minutes=10)
    assert config.log_interval == 200
    s = SimpleNamespace(config=config, windows_per_epoch=10_000, clock=lambda: 0.0, opt=SimpleNamespace(lr=1.0))
    timing = progress._Timing(config, final_tokens=1000)
    result = SimpleNamespace(tokens=10, bad=None, loss=1.0, clipped=False, grad_norm=0.1)

    def steps_to(bar, loop, n):
        while loop.step < n:
            loop.step += 1
            loop.window += 1
            bar.step(loop, result, 0.01)
        return [line.split("| step")[1].split("|")[0].strip() for line in log.getvalue().splitlines()]

    loop = LoopState()
    bar = progress._Progress(s, loop, timing)
    assert steps_to(bar, loop, 9) == []
    assert steps_to(bar, loop, 10) == ["10"]               # was: nothing before step 200
    assert steps_to(bar, loop, 400) == ["10", "200", "400"]  # then every --log-interval
    bar.close()
    # slow steps (a resumed session here): the first line once 10 s have passed, before its 10th step
    log.truncate(0)
    log.seek(0)
    loop = LoopState(step=500)
    bar = progress._Progress(s, loop, timing)
    assert steps_to(bar, loop, 502) == []
    bar.i_t0 -= progress.FIRST_LINE_S
    assert steps_to(bar, loop, 503) == ["503"]
    assert steps_to(bar, loop, 599) == ["503"]
    bar.close()


# ---------------------------------------------------------------- 13. generate_text's result, as documented


def test_generate_text_returns_one_string_per_sample_as_its_docstring_says(text, tmp_path):
    from rnnlm.runs import load_model
    from rnnlm.sample import generate_text
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "1",
                 "--out", str(out)]) == 0
    model, vocab, _, _ = load_model(out)
    one = generate_text(model, vocab, words=10, prime="o homem")
    assert isinstance(one, list) and len(one) == 1 and isinstance(one[0], str) and one[0].startswith("O homem")
    three = generate_text(model, vocab, words=10, prime="o homem", num_samples=3)
    assert len(three) == 3 and all(isinstance(t, str) for t in three)
    doc = " ".join(generate_text.__doc__.split())
    assert "Returns a list of `num_samples` strings (list[str], one per sample" in doc
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "returns a list of `num_samples` strings, one per sample" in readme


# ---------------------------------------------------------------- counts past INT_MAX; --corpora-dir as given


@pytest.mark.parametrize("argv, flag", [(["generate", "nowhere", "--words", "99999999999999999999999"], "words"),
                                        (["train", "--max-steps", "3000000000"], "max-steps"),
                                        (["generate", "nowhere", "--num-samples", "3000000000"], "num-samples")])
def test_a_count_past_the_largest_says_the_largest(capsys, argv, flag):
    # it said "--max-steps must be at least 0 (0 = no limit), got 3000000000": true of the value, and no help
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --{flag} must be at most 2,147,483,647") and len(err.splitlines()) == 1
    assert main(["train", "--max-steps", "-1"]) == 2          # below the range: the message as before
    assert "--max-steps must be at least 0 (0 = no limit), got -1" in capsys.readouterr().err


def test_a_relative_corpora_dir_is_kept_absolute_so_the_run_resumes_from_anywhere(machado_dir, tmp_path,
                                                                                   monkeypatch, capsys):
    monkeypatch.chdir(machado_dir.parent.parent)                  # the folder holding corpora/
    out = tmp_path / "r"
    assert main(["train", "--corpus", "machado", "--corpora-dir", "corpora", *FLAGS, "--max-steps", "1",
                 "--max-vocab", "500", "--out", str(out)]) == 0
    stored = json.loads((out / "config.json").read_text(encoding="utf-8"))
    stored_dir = stored["train"]["data"]["corpora_dir"]
    assert Path(stored_dir).resolve() == machado_dir.parent.resolve() and Path(stored_dir).is_absolute()
    monkeypatch.chdir(tmp_path)                                    # elsewhere: "corpora" means nothing here
    assert main(["train", "--resume", str(out), "--max-steps", "2"]) == 0
    capsys.readouterr()


def test_an_empty_corpora_dir_is_refused_and_a_folder_with_a_space_is_quoted(tmp_path, capsys):
    assert main(["corpus", "info", "machado", "--corpora-dir", ""]) == 2
    assert capsys.readouterr().err.startswith("error: --corpora-dir is empty; give the folder")
    spaced = tmp_path / "my corpora"
    spaced.mkdir()
    assert main(["corpus", "info", "machado", "--corpora-dir", str(spaced)]) == 2
    err = capsys.readouterr().err
    assert f"'python cli.py corpus download machado --corpora-dir \"{spaced}\"'" in err   # one word when pasted


@MAIN_THREAD
@pytest.mark.parametrize("signum, status, word", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_signal_during_a_validation_is_acknowledged_at_once(text, tmp_path, capsys, monkeypatch, signum, status,
                                                             word):
    # the step boundary is a whole validation away: the user heard nothing for seconds, and a second
    # Ctrl-C then lost the steps since the last checkpoint without being told
    real, calls = train_module._validate_full, []

    def validate(s, bar):
        calls.append(bar)
        if len(calls) == 2:                       # the validation of step 4 (step 2's saved a checkpoint)
            os.kill(os.getpid(), signum)
        return real(s, bar)
    monkeypatch.setattr(train_module, "_validate_full", validate)
    out = tmp_path / "v"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "50",
                 "--eval-every", "2", "--out", str(out)]) == status
    err = capsys.readouterr().err.splitlines()
    ack = [i for i, line in enumerate(err) if line.startswith(f"{word}: stopping when this validation ends")]
    assert len(ack) == 1 and "again, a second or more from now, stops at once (the checkpoint of step 2 is kept)" in err[ack[0]]
    done = [i for i, line in enumerate(err) if line.startswith(f"{word} at step 4: checkpoint saved")]
    assert len(done) == 1 and done[0] > ack[0]
    assert int(checkpoint.load(out / "model.npz").train["step"]) == 4


def test_a_sweep_into_a_log_writes_its_lines_and_no_bar(text, tmp_path, capsys):
    # stderr not a terminal (a CI log): the bar's carriage returns piled up there; the line per job stays
    out = tmp_path / "s"
    flags = [f for f in _flags(text, out) if f != "--no-progress"]
    assert main(["sweep", "run", *flags, "--cell", "rnn", "--max-steps", "2", "--eval-every", "0",
                 "--scheduler", "serial"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "job/s" not in err and "s/job" not in err
    assert re.search(r"^\S+: done .*steps 2", err, re.M)


@MAIN_THREAD
def test_a_stop_during_the_last_scheduled_validation_leaves_only_the_final_evaluation(text, tmp_path, capsys,
                                                                                      monkeypatch):
    """A signal in the validation at --max-steps: training is over, so a resume runs only the final
    evaluation (it was refused: "already at step 5"), and the run ends as one never stopped."""
    flags = [*FLAGS, "--batch-size", "16", "--max-steps", "5", "--eval-every", "5"]
    clean = tmp_path / "clean"
    assert main(["train", "--corpus", str(text), *flags, "--out", str(clean)]) == 0
    capsys.readouterr()
    out = tmp_path / "r"
    real = _signal_in_evaluation(monkeypatch, signal.SIGTERM, "validation")
    assert main(["train", "--corpus", str(text), *flags, "--out", str(out)]) == 143
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"terminated (SIGTERM) during the final evaluation, after step 5: checkpoint saved to {out / 'model.npz'} "
        f"with training done; continue with --resume {out} (it runs only the final evaluation)")
    stop = [e for e in _events(out) if e["type"] == "stop"][-1]
    assert (stop["reason"], stop["final_evaluation"]) == ("max_steps", True)
    for module in (train_module, session, trainend):
        monkeypatch.setattr(module, "evaluate_stream", real)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    test_line = lambda text: [x for x in text.splitlines() if x.startswith("test ppl (best model): ")]  # noqa: E731
    assert test_line(capsys.readouterr().out) != [] and _events(out)[-1]["type"] == "end"
    final = lambda run: [(e["split"], e.get("val_loss"), e.get("test_loss")) for e in _events(run)   # noqa: E731
                         if e["type"] == "eval"]
    assert final(out) == final(clean)


def test_a_corrupt_best_model_is_refused_before_a_resume_trains(text, tmp_path, capsys):
    flags = [*FLAGS, "--batch-size", "16"]
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *flags, "--max-steps", "3", "--out", str(out)]) == 0
    best = out / "best.npz"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    capsys.readouterr()
    latest = (out / "model.npz").read_bytes()
    assert main(["train", "--resume", str(out), "--max-steps", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {best} is corrupt or truncated")
    assert err[0].endswith("; restore it, or delete it to resume without it (the final test then uses the latest "
                           "model unless a later validation beats the best recorded one)")
    assert (out / "model.npz").read_bytes() == latest           # nothing trained, nothing written
    best.unlink()
    assert main(["train", "--resume", str(out), "--max-steps", "5", "--no-progress"]) == 0


def test_a_corrupt_best_model_points_generate_at_the_latest(text, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "3",
                 "--out", str(out)]) == 0
    (out / "best.npz").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    capsys.readouterr()
    assert main(["generate", str(out), "--words", "3"]) == 2
    assert capsys.readouterr().err.strip().endswith("; --checkpoint latest reads the run's latest model "
                                                    "(model.npz) instead")
    assert main(["generate", str(out), "--words", "3", "--checkpoint", "latest"]) == 0


def test_a_corrupt_latest_model_says_what_to_do_on_resume_and_points_at_best(text, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "3",
                 "--out", str(out)]) == 0
    latest = out / "model.npz"
    latest.write_bytes(latest.read_bytes()[:1000])
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--max-steps", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {latest} is corrupt or truncated")
    assert err[0].endswith("; this run cannot be resumed: restore the file, or train afresh into another --out "
                           "(its best.npz still evaluates and generates: --checkpoint best)")
    assert main(["evaluate", str(out), "--checkpoint", "latest"]) == 2
    assert capsys.readouterr().err.strip().endswith("; --checkpoint best reads the run's best model (best.npz) instead")
    assert main(["evaluate", str(out)]) == 0
    # best.npz damaged too, then gone: the line no longer sends the user to it
    best = out / "best.npz"
    best.write_bytes(best.read_bytes()[:1000])
    assert main(["train", "--resume", str(out), "--max-steps", "5", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().endswith("--out (its best.npz cannot be read either)")
    best.unlink()
    assert main(["train", "--resume", str(out), "--max-steps", "5", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().endswith("--out (the run has no best.npz to evaluate or generate from either)")


def test_a_resume_records_its_new_limit_in_config_json(text, tmp_path, capsys):
    out = tmp_path / "r"
    flags = [*FLAGS, "--batch-size", "16"]
    assert main(["train", "--corpus", str(text), *flags, "--max-steps", "2", "--out", str(out)]) == 0
    before = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert main(["train", "--resume", str(out), "--max-steps", "4", "--no-progress"]) == 0
    after = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert after["train"]["max_steps"] == 4 and after["train"]["progress"] == before["train"]["progress"]
    assert {k: v for k, v in after["train"].items() if k != "max_steps"} == \
        {k: v for k, v in before["train"].items() if k != "max_steps"}
    assert {k: v for k, v in after.items() if k != "train"} == {k: v for k, v in before.items() if k != "train"}
    capsys.readouterr()
    # a plain resume now goes on with that limit: refused at it, naming it
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    assert "already at step 4, the limit of --max-steps 4" in capsys.readouterr().err


def test_the_kernel_phase_says_compiling_only_while_the_cache_is_empty(monkeypatch, tmp_path):
    from rnnlm import _jit
    monkeypatch.setattr(_jit, "CACHE_DIR", tmp_path)
    assert not _jit.cache_is_warm()
    (tmp_path / "rnnlm_0123abcd").mkdir()               # Numba's folder for the package's source tree
    assert not _jit.cache_is_warm()
    (tmp_path / "rnnlm_0123abcd" / "layers.kernel-1.py312.nbi").write_bytes(b"")
    assert _jit.cache_is_warm()
    from rnnlm.caches import numba_cache_dir
    monkeypatch.setattr(_jit, "CACHE_DIR", numba_cache_dir())  # the real cache, once a kernel has run
    import numpy as np
    from rnnlm.optim import compile_sgd
    compile_sgd(np.float32)
    assert _jit.cache_is_warm()
    monkeypatch.setattr(_jit, "CACHE_DIR", None)          # no writable cache: every start compiles
    assert not _jit.cache_is_warm()
