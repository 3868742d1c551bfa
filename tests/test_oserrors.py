"""Errors of the operating system a user can cause are one line, exit 2, data intact.

As root, chmod does not make a folder read-only, so the errors are injected at
the write and allocation points (ENOSPC, EROFS, EACCES, MemoryError), through
the CLI: `main([...])` returns 2, stderr is one line saying what and where,
and the checkpoint written before is unchanged.
"""
import errno
import shutil

import numpy as np
import pytest

from rnnlm import checkpoint, fileio, runs
from rnnlm.cli import main
from rnnlm.config import ModelConfig, ModelConfigError
from rnnlm.errors import describe_memory_error, describe_os_error

TINY = ["--cell", "rnn", "--emsize", "8", "--hidden", "8", "--bptt", "5", "--batch-size", "2",
        "--eval-batch-size", "2", "--sample-words", "0", "--no-progress", "--dropout", "0"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def corpus_txt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("oserr")
    path = folder / "small.txt"
    path.write_text("\n".join(f"O homem número {i} viu a casa {i % 13} e saiu." for i in range(400)) + "\n",
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus_txt, tmp_path_factory):
    """A tiny run folder with a model.npz (3 steps)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RNNLM_CACHE", str(corpus_txt.parent / "cache"))
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--corpus", str(corpus_txt), *TINY, "--max-steps", "3", "--out", str(out)]) == 0
    mp.undo()
    return out


@pytest.fixture()
def run(trained, tmp_path, monkeypatch, corpus_txt):
    monkeypatch.setenv("RNNLM_CACHE", str(corpus_txt.parent / "cache"))
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _no_temp_files(folder):
    return not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_disk_full_while_saving_a_checkpoint(run, monkeypatch, capsys):
    before = (run / "model.npz").read_bytes()
    real = checkpoint.atomic_write

    def full(path, write_fn, **kw):
        def half(f):
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")   # what write() raises: no file name
        return real(path, half, **kw)
    monkeypatch.setattr(checkpoint, "atomic_write", full)
    assert main(["train", "--resume", str(run), "--max-steps", "6"]) == 2
    err = _one_line(capsys)
    assert "No space left on device: " in err and "model.npz" in err and "free some space" in err
    assert (run / "model.npz").read_bytes() == before and _no_temp_files(run)
    assert checkpoint.load(run / "model.npz").train["step"] == 3


def test_disk_full_on_every_write(run, monkeypatch, capsys):
    """fsync of every atomic write fails: still one line, nothing replaced."""
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fileio.os, "fsync", fsync)
    assert main(["train", "--resume", str(run), "--max-steps", "6"]) == 2
    assert "No space left on device" in _one_line(capsys)
    for name in ("model.npz", "best.npz", "config.json", "vocab.json"):
        assert (run / name).read_bytes() == before[name]
    assert _no_temp_files(run)


def test_disk_full_appending_metrics(run, monkeypatch, capsys):
    before = (run / "model.npz").read_bytes()

    def log(self, event):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(runs.Metrics, "log", log)
    assert main(["train", "--resume", str(run), "--max-steps", "6"]) == 2
    assert "No space left on device" in _one_line(capsys)
    assert (run / "model.npz").read_bytes() == before


def test_no_permission_for_the_metrics_file(run, monkeypatch, capsys, tmp_path, corpus_txt):
    def refuse(self, path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(runs.Metrics, "__init__", refuse)
    out = tmp_path / "new"
    assert main(["train", "--corpus", str(corpus_txt), *TINY, "--max-steps", "2", "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert "Permission denied: " in err and "metrics.jsonl" in err and "no permission" in err


def test_a_read_only_out_folder(monkeypatch, capsys, tmp_path, corpus_txt):
    from pathlib import Path
    real = Path.mkdir

    def mkdir(self, *a, **kw):
        if self.name == "ro":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real(self, *a, **kw)
    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    assert main(["train", "--corpus", str(corpus_txt), *TINY, "--max-steps", "2",
                 "--out", str(tmp_path / "ro")]) == 2
    err = _one_line(capsys)
    assert "Read-only file system: " in err and "ro" in err and "write elsewhere (--out)" in err


def test_out_naming_a_file(capsys, tmp_path, corpus_txt, monkeypatch):
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    assert main(["train", "--corpus", str(corpus_txt), *TINY, "--max-steps", "2", "--out", str(target)]) == 2
    err = _one_line(capsys)
    assert err == f"error: {target} is a file, not a run folder; give another --out\n"
    assert target.read_text() == "keep me\n"
    assert main(["train", "--corpus", str(corpus_txt), *TINY, "--max-steps", "2",
                 "--out", str(target / "run")]) == 2
    assert "notes.txt" in _one_line(capsys) and target.read_text() == "keep me\n"


def test_a_plot_on_a_full_disk(run, monkeypatch, capsys):
    import rnnlm.fileio as fileio

    def fsync(fd):      # the disk fills as the figure's file is written (a write names no file)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fileio.os, "fsync", fsync)
    assert main(["plot", "training", str(run)]) == 2
    err = _one_line(capsys)
    assert "No space left on device: " in err and "training.png" in err


def test_the_token_cache_is_optional_when_its_disk_is_full(monkeypatch, capsys, tmp_path, corpus_txt):
    from rnnlm import data

    def full(path, write_fn, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(data, "atomic_write", full)
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match="could not write the token cache"):
        assert main(["corpus", "info", str(corpus_txt)]) == 0
    assert "tokens" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["model", "workspace"])
def test_out_of_memory_is_one_line(run, monkeypatch, capsys, where):
    from rnnlm import model as M
    before = (run / "model.npz").read_bytes()

    def oom(*a, **kw):
        return np.empty((2**25, 2**25), np.float32)   # numpy's own MemoryError: "Unable to allocate 4.00 PiB"
    if where == "model":
        monkeypatch.setattr(M.RNNModel, "__init__", oom)
    else:
        monkeypatch.setattr(M._Workspace, "get", oom, raising=False)
        monkeypatch.setattr(M.RNNModel, "_workspace", oom)
    assert main(["train", "--resume", str(run), "--max-steps", "6"]) == 2
    err = _one_line(capsys)
    assert "out of memory: Unable to allocate" in err and "--hidden" in err
    assert (run / "model.npz").read_bytes() == before


def test_a_model_larger_than_memory_is_refused_before_allocating(capsys, tmp_path, corpus_txt, monkeypatch):
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    assert main(["train", "--corpus", str(corpus_txt), *TINY[:4], "--hidden", "3000000", "--max-steps", "1",
                 "--out", str(tmp_path / "big")]) == 2
    err = _one_line(capsys)
    assert "GiB" in err and "more than this machine's" in err and not (tmp_path / "big").exists()
    with pytest.raises(ModelConfigError, match="needs at least"):
        ModelConfig(vocab_size=10**6, emsize=10**5, hidden=8).validate()


@pytest.mark.parametrize("cfg", [dict(cell="rnn"), dict(cell="gru", layers=2), dict(cell="lstm", tied=True,
                                                                                    emsize=6, hidden=6)])
def test_parameter_count_matches_the_model(cfg):
    from rnnlm.model import RNNModel
    mcfg = ModelConfig(vocab_size=11, **{"emsize": 5, "hidden": 7, **cfg})
    assert mcfg.parameter_count() == RNNModel(mcfg, seed=0).num_params()


def test_the_messages():
    e = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/x/model.npz"))
    assert e == ("No space left on device: /x/model.npz (free some space or write elsewhere (--out); "
                 "files written before are intact)")
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device")).startswith(
        "No space left on device (while writing or reading a file)")
    assert "is read-only" in describe_os_error(OSError(errno.EROFS, "Read-only file system", "/r"))
    assert describe_os_error(OSError(errno.EINVAL, "Invalid argument", "/y")) == "Invalid argument: /y"
    assert describe_memory_error(MemoryError()).startswith("out of memory; use smaller sizes")


def test_atomic_write_names_the_file_of_a_nameless_error(tmp_path):
    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError) as info:
        fileio.atomic_write(tmp_path / "a.bin", full)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "a.bin")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):          # the errno's own subclass survives
        fileio.atomic_write(tmp_path / "no" / "a.bin", lambda f: None)
