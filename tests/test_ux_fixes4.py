"""A trial user's findings, fourth round: `train > /dev/full` left a folder holding only .train.lock; jacobian
and probe on a read-only run folder measured for minutes before the write failed; `sweep run` with a
--corpora-dir that lacks the corpus printed its "1 job ... into" line above the error; and bench --json's
torch_malloc was a sentence, not the flag's value."""
import errno
import functools
import io
import os
import sys
from pathlib import Path

import pytest

from rnnlm import bench, benchworker, fileio, jacobian, probes
from rnnlm.cli import main
from rnnlm.errors import UserError

FLAGS = ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1", "--emsize", "8",
         "--hidden", "8", "--bptt", "8", "--dropout", "0", "--batch-size", "16", "--sample-words", "0",
         "--no-progress"]


class _Full(io.StringIO):
    """Standard output on a full disk as `> /dev/full` is: every write fails and keeps nothing."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")


class _Closed(io.StringIO):
    """Standard output whose reader is gone (`| true`)."""

    def write(self, text):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def _main_with_stdout(stream, argv, capsys) -> tuple[int, list]:
    capsys.readouterr()
    old = sys.stdout
    sys.stdout = stream
    try:
        status = main(argv)
    finally:
        sys.stdout = old
    return status, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def full_run(text, tmp_path_factory):
    """A run trained with standard output on a full disk: (folder, exit status, stderr lines)."""
    out = tmp_path_factory.mktemp("runs") / "r"
    err = io.StringIO()
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Full(), err
    try:
        status = main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(out)])
    finally:
        sys.stdout, sys.stderr = old_out, old_err
    return out, status, err.getvalue().strip().splitlines()


# ---------------------------------------------------------------- 1. train with a full standard output


def test_a_full_standard_output_does_not_stop_a_training(full_run):
    """A trial: `train --out X ... > /dev/full` exited 2 at its first line, leaving X/ with only .train.lock.
    Standard output carries train's messages, as standard error does: the run trains, saves, says where."""
    out, status, err = full_run
    assert status == 0
    assert (out / "model.npz").is_file() and (out / "best.npz").is_file() and (out / "metrics.jsonl").is_file()
    assert err[-1] == (f"warning: standard output could not be written (No space left on device); the run trained "
                       f"and is saved in {out}: its results are in {out}/metrics.jsonl")


def test_a_closed_standard_output_before_training_leaves_no_folder(text, tmp_path, capsys):
    """`train ... | true`: the reader gone before the first line, the command ends as Unix tools do (141),
    and the folder it had just made (and locked) is gone again."""
    out = tmp_path / "new" / "r"
    status, err = _main_with_stdout(_Closed(), ["train", "--corpus", str(text), *FLAGS, "--max-steps", "2",
                                                "--out", str(out)], capsys)
    assert (status, err) == (141, [])
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- 2. a read-only run folder: refused first


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only: chmod, or, as root (whom permissions do not stop), os.access saying so."""
    made = []

    def make(folder: Path) -> Path:
        if os.geteuid() == 0:
            real = os.access

            def access(path, mode, *args, **kwargs):
                if mode & os.W_OK and Path(path).absolute() == folder.absolute():
                    return False
                return real(path, mode, *args, **kwargs)
            monkeypatch.setattr(os, "access", access)
        else:
            folder.chmod(0o555)
            made.append(folder)
        return folder
    yield make
    for folder in made:
        folder.chmod(0o755)


def _unmeasured(monkeypatch):
    """The measurements, replaced by a failure: the refusal must come before any of them."""
    def measured(*args, **kwargs):
        raise AssertionError("measured before the write was checked")
    for module, name in ((jacobian, "lag_curve"), (probes, "context_usage"), (probes, "agreement_probe")):
        monkeypatch.setattr(module, name, measured)


@pytest.mark.parametrize("argv, name", [
    (["jacobian"], "jacobian.json"),
    (["probe", "context"], "probe-context-shuffle.json"),
    (["probe", "agreement"], "probe-agreement-number.json"),
])
def test_a_read_only_run_folder_is_refused_before_measuring(full_run, tmp_path, read_only, monkeypatch, capsys,
                                                            argv, name):
    import shutil
    run = tmp_path / "ro"
    shutil.copytree(full_run[0], run)
    read_only(run)
    _unmeasured(monkeypatch)
    capsys.readouterr()
    assert main([*argv, str(run)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: cannot write {run / name}: the folder {run} is not writable; give --out FILE.json in a "
        f"writable folder"]
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in full_run[0].iterdir())


def test_the_write_check_looks_at_the_folder_a_new_path_would_be_made_in(tmp_path, read_only):
    fileio.check_writable(tmp_path / "a" / "b" / "out.json")      # writable: nothing said
    read_only(tmp_path)
    with pytest.raises(UserError, match=rf"cannot write {tmp_path / 'a' / 'b' / 'out.json'}: the folder "
                                        rf"{tmp_path} is not writable; give --out FILE.json in a writable folder"):
        fileio.check_writable(tmp_path / "a" / "b" / "out.json")


# ---------------------------------------------------------------- 3. sweep run: a corpus not found comes first


def test_sweep_run_says_a_corpus_not_found_before_its_first_line(tmp_path, capsys):
    """A trial: `sweep run --corpora-dir /nonexistent` printed "1 job (one point) into ..." above its error."""
    none, out = tmp_path / "nonexistent", tmp_path / "sw"
    capsys.readouterr()
    assert main(["sweep", "run", "--corpora-dir", str(none), "--out", str(out), "--max-steps", "1",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: corpus 'machado' not found in {none / 'machado'}"), err
    assert not out.exists()


# ---------------------------------------------------------------- 4. bench --json: torch_malloc is the flag's value


@pytest.mark.parametrize("malloc, detail", [("default", "glibc's defaults (large freed blocks go back to the OS)"),
                                            ("kept", None)])
def test_the_record_of_the_allocator_is_the_flags_value(monkeypatch, malloc, detail):
    """A trial: bench --json said "torch_malloc": "freed memory kept for reuse (glibc mallopt: ...)", a
    sentence a script cannot compare; it is "kept" or "default", with the sentence (the table's) beside it."""
    monkeypatch.setattr(benchworker, "IDLE_S", 0.0)
    monkeypatch.setattr(bench, "_steps_for", lambda V, H: 3)
    monkeypatch.setattr(bench, "_Worker", functools.partial(bench._Worker, side="rnnlm"))   # no PyTorch needed
    rec = bench.bench_one("rnn", "tiny", repeats=1, vs_torch=True, threads=1, torch_malloc=malloc)
    assert rec["torch_malloc"] == malloc and rec["torch_process"] == "worker"
    said = rec["torch_malloc_detail"]     # "kept": glibc's mallopt, or why the platform's malloc was left
    assert said == detail if detail else said.startswith(("freed memory kept for reuse", "the platform's malloc"))
    assert f"PyTorch's allocator (--torch-malloc): {said}" in bench.format_calibration([rec])
