"""Sweep and study defects of a third review: a --scheduler that does not answer printed the first line
before its error, and a rerun that spelled out a default (--lr 20 for SGD) was refused as "other settings"
without naming any."""
import json
import socket
import time

import pytest

from rnnlm import sweep, sweepcluster
from rnnlm.cli import main
from rnnlm.errors import UserError
from test_sweep_fixes2 import _server, _tiny_flags
from test_sweep_lock import _one_error_line


def _refused_address() -> str:
    """A local port where nothing listens (a connection there is refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


OTHER = ("give the address that 'dask scheduler' prints (tcp://HOST:8786 by default), or leave --scheduler out")


# ---------------------------------------------------------------- A. an unreachable scheduler: its line only


@pytest.fixture
def short_timeout(monkeypatch):
    monkeypatch.setattr(sweepcluster, "CONNECT_TIMEOUT", 0.5)


def test_a_scheduler_where_nothing_listens_is_the_only_line(text, tmp_path, capsys, short_timeout):
    """A trial: "2 jobs (cell) into OUT" came first, then 20-25 s later the error."""
    out = tmp_path / "runs" / "c"
    address = _refused_address()
    t0 = time.perf_counter()
    assert main(["sweep", "run", *_tiny_flags(text, out, scheduler=address), "--cell", "rnn,lstm"]) == 2
    assert time.perf_counter() - t0 < 10
    line = _one_error_line(capsys)
    assert line.startswith(f"cannot reach the Dask scheduler at {address} (")
    assert line.endswith("); start one with 'dask scheduler' or leave --scheduler out")
    assert not (tmp_path / "runs").exists()


def test_a_server_that_never_answers_is_the_only_line(text, tmp_path, capsys, short_timeout):
    out = tmp_path / "runs" / "c"
    with _server(None) as address:
        assert main(["sweep", "run", *_tiny_flags(text, out, scheduler=address), "--cell", "rnn,lstm"]) == 2
    assert _one_error_line(capsys) == (f"{address} took the connection but did not answer as a Dask scheduler "
                                       f"within 1 s (a server of another kind listens there?); {OTHER}")
    assert not (tmp_path / "runs").exists()


def test_a_study_with_an_unreachable_scheduler_prints_its_error_only(tmp_path, capsys, short_timeout):
    out = tmp_path / "runs" / "st"
    address = _refused_address()
    assert main(["study", "learnability", "--cells", "rnn", "--distances", "5", "--seeds", "0", "--n-train", "64",
                 "--n-test", "32", "--steps", "30", "--eval-every", "10", "--no-progress", "--out", str(out),
                 "--scheduler", address]) == 2
    assert _one_error_line(capsys).startswith(f"cannot reach the Dask scheduler at {address} (")
    assert not (tmp_path / "runs").exists()


def test_the_scheduler_is_asked_once_per_sweep(text, tmp_path, capsys, monkeypatch):
    """The CLI asks before its first line and tells run_sweep so; run_sweep's Client does not ask again."""
    asked, passed = [], {}
    monkeypatch.setattr(sweepcluster, "check_answers", lambda address, timeout=None: asked.append(address))

    def fake_run_sweep(folder, jobs, data, **kw):
        passed.update(kw)
        raise UserError("stop here")
    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    address = _refused_address()
    assert main(["sweep", "run", *_tiny_flags(text, tmp_path / "c", scheduler=address), "--cell", "rnn"]) == 2
    assert asked == [address] and passed["scheduler_checked"] is True
    assert capsys.readouterr().err.splitlines() == [f"1 job (one point) into {tmp_path / 'c'}", "error: stop here"]
    # and the client, told so, connects without a second handshake (refused here: Client's own error)
    monkeypatch.setattr(sweepcluster, "CONNECT_TIMEOUT", 0.5)
    with pytest.raises(UserError, match=r"^cannot reach the Dask scheduler at "):
        with sweepcluster._client(address, None, 0, False, sweepcluster._Shield(), checked=True):
            pass
    assert asked == [address]


# ---------------------------------------------------------------- B. a default spelled out is the same job


def _fake_execute(fn, settings, payload, threads=1, worker=""):
    """What the engine gets from a job, without training (the row records the settings all the same)."""
    return {"status": "done", "error": None, "row": {"steps": 3}, "files": {}, "wall_s": 0.0,
            "worker": worker, "max_rss_mb": None}


@pytest.fixture
def recorded(text, tmp_path, capsys, monkeypatch):
    """A sweep folder whose one job (cell=rnn, SGD, --lr left out) is recorded; the flags of its command."""
    monkeypatch.setattr(sweep, "execute", _fake_execute)
    out = tmp_path / "a"
    argv = ["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn"]
    assert main(argv) == 0
    capsys.readouterr()
    [row] = sweep.read_rows(out)
    assert row["settings"]["train"]["lr"] is None and row["settings"]["train"]["optimizer"] == "sgd"
    return out, argv


@pytest.mark.parametrize("extra", [[], ["--lr", "20"], ["--optimizer", "sgd", "--lr", "20.0"]])
def test_a_rerun_that_spells_out_a_default_skips_the_finished_job(recorded, capsys, extra):
    out, argv = recorded
    before = (out / "sweep.jsonl").read_bytes()
    assert main([*argv, *extra]) == 0
    assert capsys.readouterr().err.splitlines()[0] == \
        f"1 job (one point) into {out}: skipping 1 finished in an earlier run, running 0"
    assert (out / "sweep.jsonl").read_bytes() == before


def test_a_rerun_with_another_setting_names_it_old_and_new(recorded, capsys):
    out, argv = recorded
    assert main([*argv, "--lr", "5"]) == 2
    assert _one_error_line(capsys) == (f"{out / 'sweep.jsonl'} records job run with other settings (cannot change "
                                       "--lr (20.0 -> 5.0)); use another folder, or delete its line to run it again")
    # adam's own default lr (1e-3) follows from --optimizer, which is named; --lr, not given, is not
    assert main([*argv, "--hidden", "9", "--optimizer", "adam"]) == 2
    assert _one_error_line(capsys) == (f"{out / 'sweep.jsonl'} records job run with other settings (cannot change "
                                       "--hidden (8 -> 9), --optimizer ('sgd' -> 'adam')); "
                                       "use another folder, or delete its line to run it again")


def test_a_row_of_the_older_flat_format_is_the_same_job(recorded, capsys):
    """A row whose train settings are config.json's format 1 (model settings flat, no "format") still matches."""
    out, argv = recorded
    row = json.loads((out / "sweep.jsonl").read_text())
    train = row["settings"]["train"]
    train.pop("format")
    train.update(train.pop("model"))
    (out / "sweep.jsonl").write_text(json.dumps(row) + "\n")
    assert main([*argv, "--lr", "20"]) == 0
    assert "skipping 1 finished" in capsys.readouterr().err
    assert main([*argv, "--cell", "gru"]) == 2      # (a one-value list: the same job name, "run")
    assert "(cannot change --cell ('rnn' -> 'gru'))" in _one_error_line(capsys)


def test_every_job_recorded_needs_no_scheduler(recorded, capsys, short_timeout):
    """A rerun with nothing to run does not ask the scheduler (run_sweep never did)."""
    out, argv = recorded
    assert argv[-4:] == ["--scheduler", "serial", "--cell", "rnn"]
    assert main([*argv[:-4], "--scheduler", _refused_address(), "--cell", "rnn"]) == 0
    assert "skipping 1 finished in an earlier run, running 0" in capsys.readouterr().err


def test_a_study_rerun_with_another_budget_names_it(tmp_path, capsys):
    from rnnlm.config import StudyConfig, TaskTrainConfig
    from rnnlm.study import build_jobs
    out = tmp_path / "st"
    config = StudyConfig(cells="rnn", distances="5", seeds="0", n_train=64, n_test=32, out=str(out),
                         train=TaskTrainConfig(steps=30, eval_every=10))
    [job], _ = build_jobs(config)
    out.mkdir()
    sweep._Recorder(out).record(job, _fake_execute(job.fn, job.settings, None) | {"attempts": 1})
    argv = ["study", "learnability", "--cells", "rnn", "--distances", "5", "--seeds", "0", "--n-train", "64",
            "--n-test", "32", "--eval-every", "10", "--scheduler", "serial", "--no-progress", "--out", str(out)]
    assert main([*argv, "--steps", "31"]) == 2
    assert _one_error_line(capsys).endswith("records job recall-k2-rnn-d5-s0 with other settings (cannot change "
                                            "--steps (30 -> 31)); use another folder, or delete its line to run "
                                            "it again")


def test_a_workers_lost_heartbeat_logs_nothing_and_its_other_records_pass():
    # Under load, a worker's heartbeat can meet the scheduler a stopping client is closing: Dask logged an
    # OSError's traceback after the sweep's one line (seen in a CI run of the background-sweep SIGTERM test)
    import logging

    sweep.quiet_lost_heartbeats()
    sweep.quiet_lost_heartbeats()          # once only
    log = logging.getLogger("distributed.worker")
    assert sum(isinstance(f, sweep._HeartbeatLost) for f in log.filters) == 1

    def record(msg):
        return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, msg, None, None)
    assert not log.filter(record("Failed to communicate with scheduler during heartbeat."))
    assert log.filter(record("Unexpected exception during heartbeat. Closing worker."))
    assert log.filter(record("Compute Failed"))
