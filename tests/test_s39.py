"""Session 39: what a hostile tester found (see each test's docstring)."""
import io
import json
import os
import tempfile
import warnings

import pytest

from rnnlm import caches, corpus
from rnnlm.cli import main
from rnnlm.errors import UserError
from rnnlm.sweepgrid import MAX_JOBS, expand_grid, read_grid_file

from saved_runs import untrained_gru_run

# ---------------------------------------------------------------- input that never ends


def test_a_device_or_pipe_that_never_ends_is_refused_not_read_into_memory(tmp_path, capsys):
    """`sweep run --grid /dev/zero` and `score --file /dev/zero` read until the machine ran out of memory;
    `train --corpus /dev/zero` (or a FIFO) hung with nothing said."""
    with pytest.raises(UserError, match=r"/dev/zero is larger than 1 MiB \(or never ends.*give the grid file"):
        read_grid_file("/dev/zero")
    with pytest.raises(UserError, match="is a folder"):
        read_grid_file(tmp_path)
    big = tmp_path / "big.json"
    big.write_text('{"hidden": 8' + " " * (2 << 20) + "}")
    with pytest.raises(UserError, match=r"big.json is larger than 1 MiB; a grid file"):
        read_grid_file(big)
    (tmp_path / "g.json").write_text('{"hidden-size": [8, 16], "seeds": 2}')
    with pytest.raises(UserError, match=r"^unknown setting 'hidden-size' in grid file .*g.json; use the names"):
        read_grid_file(tmp_path / "g.json")
    assert main(["train", "--corpus", "/dev/zero", "--out", str(tmp_path / "r")]) == 2
    assert "corpus /dev/zero is not a regular file (a device, a FIFO or a socket)" in capsys.readouterr().err
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    assert main(["corpus", "info", str(fifo)]) == 2
    assert "is not a regular file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_text_to_score_is_read_up_to_a_limit(tmp_path, capsys, monkeypatch):
    run = untrained_gru_run(tmp_path, 20, 3)
    monkeypatch.setattr(corpus, "MAX_TEXT_BYTES", 100)
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text("o menino corre\n", encoding="utf-8")
    big.write_text("o menino corre\n" * 10, encoding="utf-8")
    assert main(["score", str(run), "--file", str(small), "--totals"]) == 0
    capsys.readouterr()
    assert main(["score", str(run), "--file", str(big)]) == 2
    err = capsys.readouterr().err
    assert "big.txt is larger than 100 bytes; give a smaller text, or split it into several files" in err and "never ends" not in err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"o menino corre\n" * 10)))
    assert main(["score", str(run), "--file", "-"]) == 2
    assert "standard input is larger than" in capsys.readouterr().err
    with pytest.raises(UserError, match="never ends"):
        corpus.read_text("/dev/zero", corpus=False)


def test_a_grid_of_too_many_points_is_refused_before_it_is_made():
    """{"seeds": 1000000000} built a list of a billion seeds (and as many configs) before anything ran."""
    with pytest.raises(UserError, match=r"seeds is 1,000,000,000, more than a sweep runs \(100,000 jobs"):
        expand_grid({"seeds": 10**9})
    with pytest.raises(UserError, match=r"seeds must be a positive whole number \(a count, such as 3\), got 2.5"):
        expand_grid({"seeds": 2.5})     # (3.0, JSON's way to write 3 too, is 3: tests/test_s40.py)
    with pytest.raises(UserError, match=r"the grid has 200,000 points \(1000 x 200\)"):
        expand_grid({"hidden": list(range(1, 1001)), "seed": list(range(200))})
    points, axes = expand_grid({"hidden": [8, 16], "seeds": 2, "max_steps": 5})
    assert len(points) == 4 and axes == ["hidden", "seed"] and MAX_JOBS == 100_000


# ---------------------------------------------------------------- the cache folder


@pytest.fixture()
def env(monkeypatch, tmp_path):
    for name in ("RNNLM_CACHE", "XDG_CACHE_HOME", "NUMBA_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "no-home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(caches, "_warned", set())
    return monkeypatch


def test_a_temp_cache_folder_others_can_write_is_not_used(env, tmp_path):
    """Numba's cache files are pickles it loads and runs: a /tmp/rnnlm-cache-<uid> made by another user (or
    writable by others, or a link to their folder) was used, so they could plant code in it."""
    folder = tmp_path / "tmp" / f"rnnlm-cache-{os.getuid()}"
    assert caches.cache_root() == folder and (folder.stat().st_mode & 0o777) == 0o700     # made private
    folder.chmod(0o777)
    with pytest.warns(UserWarning, match=r"no usable cache folder \(the temp folder .*: other users may write"):
        assert caches.cache_root() is None
    folder.chmod(0o755)
    assert caches.cache_root() == folder
    env.setattr(os, "getuid", lambda: os.stat(folder).st_uid + 1)
    assert caches.not_private(folder) == f"it belongs to another user (uid {folder.stat().st_uid})"
    env.undo()
    folder.rmdir()
    (tmp_path / "theirs").mkdir()
    folder.symlink_to(tmp_path / "theirs")
    assert caches.not_private(folder) == "it is a symbolic link" and not caches.usable(folder, private=True)
    assert caches.usable(folder)        # a folder the user chose ($RNNLM_CACHE) is theirs to share


def test_an_unusable_rnnlm_cache_is_said_once(env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env.setenv("RNNLM_CACHE", str(blocker / "c"))
    with pytest.warns(UserWarning, match=r"RNNLM_CACHE=.*a-file/c cannot be used as a cache \(Not a directory\); "
                                         r"caching in .*rnnlm-cache-\d+ instead") as record:
        root = caches.cache_root()
    assert len(record) == 1 and root.name.startswith("rnnlm-cache-")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert caches.cache_root() == root
    env.setenv("RNNLM_CACHE", str(tmp_path / "mine"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert caches.cache_root() == tmp_path / "mine"
    json.dumps(str(root))


# ---------------------------------------------------------------- a stop that lands where Python drops exceptions


def test_a_stop_raised_inside_a_finalizer_is_sent_again():
    """SIGTERM to `demo gradients` while it imported Dask was lost in about half the tries (the command ran to
    its end, exit 0): the handler's Terminated was raised inside a weakref callback, where Python drops
    exceptions, and every later signal was ignored as the process was already stopping."""
    import signal
    import time

    from rnnlm.errors import STOPS, Terminated, sigterm_raises
    ran = []

    class Finalized:
        def __del__(self):
            ran.append(1)
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100_000):    # the handler runs here, and its exception is dropped
                pass

    t0 = time.monotonic()
    try:
        with pytest.raises(Terminated):
            with sigterm_raises():
                Finalized()
                assert ran == [1]
                time.sleep(5)       # the signal sent again ends this sleep
    finally:
        STOPS.raised = STOPS.signalled = False
    assert time.monotonic() - t0 < 4


def test_a_cluster_start_cut_short_by_a_stop_signal_stops_as_stopped(monkeypatch):
    """SIGTERM to the process group while `sweep run` started its local cluster killed the workers still
    starting, and Dask's "Nanny failed to start" came out as a traceback (exit 1); any other failed start did
    too."""
    import signal
    import time

    import distributed

    from rnnlm.errors import STOPS, Terminated
    from rnnlm.sweepcluster import _client, _Shield

    def stopped(**kw):
        os.kill(os.getpid(), signal.SIGTERM)        # held back by the shield while the cluster starts
        time.sleep(0.05)
        raise RuntimeError("Nanny failed to start.")

    def failed(**kw):
        raise RuntimeError("Nanny failed to start.")
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(distributed, "LocalCluster", stopped)
    shield = _Shield()
    try:
        with pytest.raises(Terminated):
            with _client(None, 1, 0, False, shield):
                pass
    finally:
        shield.lower()
        STOPS.raised = STOPS.signalled = False
    monkeypatch.setattr(distributed, "LocalCluster", failed)
    shield = _Shield()
    with pytest.raises(UserError, match=r"^the local Dask cluster of 1 worker failed to start \(RuntimeError: "
                                        r"Nanny failed to start.\); run the command again, give fewer --workers, "
                                        r"or --scheduler serial"):
        try:
            with _client(None, 1, 0, False, shield):
                pass
        finally:
            shield.lower()      # as run_sweep does
    assert signal.getsignal(signal.SIGTERM) is before and shield.pending is None


# ---------------------------------------------------------------- a full disk, a file-size limit


def test_a_full_disk_while_logging_a_step_names_metrics_jsonl():
    """The write of a metrics line into a full disk said "No space left on device (while writing or reading a
    file)": the system names no file for a write into an open one."""
    import errno
    from pathlib import Path

    from rnnlm.errors import describe_os_error
    from rnnlm.runs import Metrics
    m = Metrics(Path("/dev/full"))
    with pytest.raises(OSError) as caught:
        m.log({"type": "step", "step": 1, "loss": 5.0})
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, "/dev/full")
    assert describe_os_error(caught.value).startswith("No space left on device: /dev/full (free some space or "
                                                      "write elsewhere (--out)")
    with pytest.raises(OSError) as caught:      # the line still buffered: closing writes it again
        m.close()
    assert caught.value.filename == "/dev/full"


def test_a_file_too_large_says_what_to_do():
    import errno

    from rnnlm.errors import describe_os_error
    line = describe_os_error(OSError(errno.EFBIG, "File too large", "r/latest.npz"), out_flag=None)
    assert line == ("File too large: r/latest.npz (the file grew past the file system's or the shell's file-size "
                    "limit (ulimit -f); raise the limit)")


def test_a_checkpoint_that_is_a_folder_is_not_looked_into(tmp_path):
    """`train --resume RUN` whose model.npz was a folder advised RUN/model.npz/best.npz."""
    from rnnlm.checkpoint import load
    (tmp_path / "model.npz").mkdir()
    with pytest.raises(UserError, match=r"model.npz is a folder, not a checkpoint file; move it away") as caught:
        load(tmp_path / "model.npz")
    assert "model.npz/best.npz" not in str(caught.value)
    with pytest.raises(UserError, match=r"is a folder; give a checkpoint file \(e.g. .*/best.npz\)"):
        load(tmp_path)


def test_a_job_whose_files_cannot_all_be_written_leaves_none(tmp_path, monkeypatch):
    """A sweep into a disk that filled while a job's files were copied back left that job's folder half
    written (config.json and best.npz, no model.npz), unrecorded."""
    import errno
    from types import SimpleNamespace

    from rnnlm import sweeprecord
    real, calls = sweeprecord.atomic_write_bytes, []

    def fills_up(path, blob):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, blob)
    monkeypatch.setattr(sweeprecord, "atomic_write_bytes", fills_up)
    (tmp_path / "sw").mkdir()
    rec = sweeprecord._Recorder(tmp_path / "sw")
    files = {"config.json": b"{}", "best.npz": b"x", "model.npz": b"y", "curves/far.json": b"{}"}
    with pytest.raises(OSError, match="No space left"):
        rec._write_files(SimpleNamespace(name="seed=0"), files)
    assert calls == ["best.npz", "config.json", "far.json"] and not (tmp_path / "sw" / "seed=0").exists()
    (tmp_path / "sw" / "seed=1").mkdir()
    (tmp_path / "sw" / "seed=1" / "old.txt").write_text("an earlier run's")
    calls.clear()
    with pytest.raises(OSError):
        rec._write_files(SimpleNamespace(name="seed=1"), files)
    assert sorted(p.name for p in (tmp_path / "sw" / "seed=1").rglob("*")) == ["old.txt"]
    monkeypatch.setattr(sweeprecord, "atomic_write_bytes", real)
    rec._write_files(SimpleNamespace(name="seed=2"), files)
    assert sorted(p.relative_to(tmp_path / "sw" / "seed=2").as_posix()
                  for p in (tmp_path / "sw" / "seed=2").rglob("*")) == [
        "best.npz", "config.json", "curves", "curves/far.json", "model.npz"]
