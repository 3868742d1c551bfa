"""Sweeps on dask.distributed (sweep.py, sweepjobs.py): engine = serial bitwise, nothing lost, threads = 1."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlm.config import DataConfig, ModelConfig, TrainConfig
from rnnlm.errors import UserError
from rnnlm.sweep import Job, JobResult, read_rows, run_sweep, worker_threads

TIMING = {"wall_s", "worker", "attempts", "max_rss_mb", "train_s", "tokens_per_s"}


# ---------------------------------------------------------------- job functions the workers import from here

def _sigint_default():
    """preexec_fn: SIGINT's default action in the child, as for a command typed at a terminal. A test run started
    in the background by a non-interactive shell (`cmd &`) inherits SIGINT ignored, and a Python started so never
    raises KeyboardInterrupt, so without this the Ctrl-C tests would test nothing but that."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)



def threads_job(settings, payload):
    """Reports the worker's thread settings."""
    return JobResult(row=worker_threads(), files={})


def crash_once_job(settings, payload):
    """Kills its own worker process on its first attempt (a marker file says it ran before)."""
    marker = Path(settings["marker"])
    if not marker.exists():
        marker.write_text("ran once\n")
        os._exit(1)
    return JobResult(row={"survived": True, "payload_sum": int(payload["x"].sum())}, files={"out.txt": b"ok\n"})


def fail_job(settings, payload):
    raise UserError("--widgets must be positive, got -1")


# ---------------------------------------------------------------- helpers


def tiny_train(text, **kw):
    model = dict(cell="lstm", emsize=16, hidden=16, dropout=0.0)
    model.update({k: kw.pop(k) for k in list(kw) if k in ModelConfig.__dataclass_fields__})
    base = dict(bptt=8, batch_size=8, eval_batch_size=4, epochs=1, max_steps=20, max_minutes=0, eval_every=10,
                progress=False, sample_words=0)
    base.update(kw)
    data = DataConfig(corpus=str(text), max_vocab=300, valid_fraction=0.1, test_fraction=0.1)
    return TrainConfig(data=data, model=ModelConfig(**model), **base)


@pytest.fixture(scope="module")
def payload(text):
    from rnnlm.data import load_corpus
    from rnnlm.sweepjobs import corpus_payload
    return corpus_payload(load_corpus(DataConfig(corpus=str(text), max_vocab=300, valid_fraction=0.1,
                                                 test_fraction=0.1)))


def train_jobs(text, specs, keep=True):
    jobs = []
    for name, kw in specs:
        jobs.append(Job(name, "rnnlm.sweepjobs:train_job",
                        {"train": tiny_train(text, **kw).to_dict(), "measure": [], "keep_models": keep}, "corpus"))
    return jobs


def stable(row):
    return {k: v for k, v in row.items() if k not in TIMING}


def metrics_without_time(path):
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        out.append({k: v for k, v in e.items() if k not in ("time", "tokens_per_s", "seconds", "startup_s")})
    return out


SPECS = [("rnn-s0", dict(cell="rnn", seed=0)), ("gru-s1", dict(cell="gru", seed=1)),
         ("lstm-s0", dict(cell="lstm", seed=0))]


@pytest.fixture(scope="module")
def cluster_sweep(text, payload, tmp_path_factory):
    """One 2-worker LocalCluster sweep: three trainings, a bad job, a job that kills its worker once, a thread report."""
    folder = tmp_path_factory.mktemp("sweep")
    marker = tmp_path_factory.mktemp("marker") / "crashed"
    jobs = train_jobs(text, SPECS) + [
        Job("bad", "test_sweep:fail_job", {"widgets": -1}, None),
        Job("crash-once", "test_sweep:crash_once_job", {"marker": str(marker)}, "small"),
        Job("threads", "test_sweep:threads_job", {}, None),
    ]
    data = {"corpus": payload, "small": {"x": np.arange(5)}}
    rows = run_sweep(folder, jobs, data, n_workers=2, retries=2, progress=False)
    return folder, jobs, data, rows


def test_every_job_is_recorded_once_with_its_status(cluster_sweep):
    folder, jobs, _, rows = cluster_sweep
    on_disk = read_rows(folder)
    assert [r["name"] for r in on_disk] == [r["name"] for r in rows]
    assert sorted(r["name"] for r in on_disk) == sorted(j.name for j in jobs)
    by = {r["name"]: r for r in on_disk}
    for name, _ in SPECS:
        r = by[name]
        assert r["status"] == "done" and r["steps"] == 20 and r["stopped"] == "max_steps"
        assert r["best_val_ppl"] > 1 and r["val_ppl"] >= r["best_val_ppl"]
        assert r["settings"]["train"]["model"]["cell"] == name.split("-")[0]
        assert r["worker"].startswith("tcp://") and r["attempts"] == 1
        assert {"config.json", "metrics.jsonl", "vocab.json", "best.npz", "model.npz"} <= {
            p.name for p in (folder / name).iterdir()}


def test_a_failing_job_is_a_failed_row_with_its_one_line_error(cluster_sweep):
    by = {r["name"]: r for r in read_rows(cluster_sweep[0])}
    assert by["bad"]["status"] == "failed"
    assert by["bad"]["error"] == "--widgets must be positive, got -1"


def test_a_worker_killed_mid_job_has_the_job_retried(cluster_sweep):
    folder = cluster_sweep[0]
    by = {r["name"]: r for r in read_rows(folder)}
    r = by["crash-once"]
    assert r["status"] == "done" and r["survived"] is True and r["payload_sum"] == 10
    assert r["attempts"] == 2
    assert (folder / "crash-once" / "out.txt").read_bytes() == b"ok\n"


def test_workers_run_one_numba_and_one_blas_thread(cluster_sweep):
    r = {r["name"]: r for r in read_rows(cluster_sweep[0])}["threads"]
    assert r["numba"] == 1 and r["numba_pool"] == 1      # the pool itself was started with one thread
    assert r["NUMBA_NUM_THREADS"] == r["OMP_NUM_THREADS"] == r["OPENBLAS_NUM_THREADS"] == r["MKL_NUM_THREADS"] == "1"


def test_cluster_results_equal_serial_one_thread_results_bitwise(cluster_sweep, tmp_path):
    from rnnlm import checkpoint
    folder, jobs, data, _ = cluster_sweep
    serial = run_sweep(tmp_path, jobs[:3], data, scheduler="serial", threads=1, progress=False)
    dist = {r["name"]: r for r in read_rows(folder)}
    for r in serial:
        assert stable(r) == stable(dist[r["name"]])
        assert r["worker"].startswith("serial:")
        assert metrics_without_time(tmp_path / r["name"] / "metrics.jsonl") == \
            metrics_without_time(folder / r["name"] / "metrics.jsonl")
        a = checkpoint.load(tmp_path / r["name"] / "best.npz").model
        b = checkpoint.load(folder / r["name"] / "best.npz").model
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), k


def test_a_rerun_skips_finished_jobs(cluster_sweep, text, tmp_path):
    folder, jobs, data, _ = cluster_sweep
    before = (folder / "sweep.jsonl").read_text()
    extra = train_jobs(text, [("rnn-s5", dict(cell="rnn", seed=5))], keep=False)
    rows = run_sweep(folder, jobs + extra, data, scheduler="serial", progress=False)
    after = (folder / "sweep.jsonl").read_text()
    assert after.startswith(before) and len(after.splitlines()) == len(before.splitlines()) + 1
    assert [r["name"] for r in rows][-1] == "rnn-s5" and len(rows) == len(jobs) + 1
    assert not (folder / "rnn-s5" / "model.npz").exists()      # keep_models False: no checkpoints come back
    again = run_sweep(folder, jobs + extra, data, scheduler="serial", progress=False)
    assert (folder / "sweep.jsonl").read_text() == after and len(again) == len(rows)


def test_bad_job_lists_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match="two jobs are named"):
        run_sweep(tmp_path, [Job("a", "x:y", {}, None), Job("a", "x:y", {}, None)], scheduler="serial")
    with pytest.raises(UserError, match="job name"):
        run_sweep(tmp_path, [Job("../a", "x:y", {}, None)], scheduler="serial")
    with pytest.raises(UserError, match="needs data"):
        run_sweep(tmp_path, [Job("a", "x:y", {}, "corpus")], scheduler="serial")
    assert not (tmp_path / "sweep.jsonl").exists()


# ---------------------------------------------------------------- the command line


def _flags(text, out):
    return ["--corpus", str(text), "--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
            "--emsize", "16", "--hidden", "16", "--bptt", "8", "--batch-size", "8", "--dropout", "0",
            "--eval-batch-size", "4", "--out", str(out), "--no-progress"]


def test_grid_flags_expand_to_named_validated_points():
    from rnnlm.sweepgrid import expand_grid
    points, axes = expand_grid({"cell": "rnn", "activation": ["tanh", "scaled-tanh:1.7159,0.6667"],
                                "recurrent_scale": [0.5, 2.0], "seeds": 2, "max_steps": 5})
    assert axes == ["activation", "recurrent_scale", "seed"] and len(points) == 8
    assert [n for n, _, _ in points][:3] == ["activation=tanh,recurrent_scale=0.5,seed=0",
                                              "activation=tanh,recurrent_scale=0.5,seed=1",
                                              "activation=tanh,recurrent_scale=2,seed=0"]
    name, _, cfg = points[-1]
    assert name == "activation=scaled-tanh_1.7159,0.6667,recurrent_scale=2,seed=1"
    assert (cfg.model.cell, cfg.model.recurrent_scale, cfg.seed, cfg.max_steps, cfg.max_minutes) == ("rnn", 2.0, 1, 5, 0)
    assert cfg.model.activation == "scaled-tanh:1.7159,0.6667" and cfg.sample_words == 0
    with pytest.raises(UserError, match=r"grid point cell=lstm,omega=1: .*--omega"):
        expand_grid({"cell": ["rnn", "lstm"], "omega": [0.0, 1.0]})
    with pytest.raises(UserError, match="unknown setting 'widgets'"):
        expand_grid({"widgets": [1, 2]})


def test_cli_list_flags_keep_commas_inside_an_activation():
    from rnnlm.cli import build_parser
    from rnnlm.clisweep import _sweep_grid
    args = build_parser().parse_args(["sweep", "run", "--cell", "rnn", "--activation",
                                      "tanh,scaled-tanh:1.7159,0.6667", "--recurrent-scale", "0.5,1,2",
                                      "--clip-norm", "0.25,none", "--seeds", "3", "--measure", "lag"])
    grid = _sweep_grid(args)
    assert grid["activation"] == ["tanh", "scaled-tanh:1.7159,0.6667"]
    assert grid["recurrent_scale"] == [0.5, 1.0, 2.0] and grid["clip_norm"] == [0.25, 0.0]
    assert grid["seeds"] == 3 and grid["measure"] == ["lag"] and grid["cell"] == ["rnn"]


def test_cli_refuses_a_bad_point_in_one_line_before_running(text, tmp_path, capsys):
    from rnnlm.cli import main
    code = main(["sweep", "run", *_flags(text, tmp_path / "s"), "--cell", "rnn,lstm", "--omega", "1",
                 "--max-steps", "5", "--scheduler", "serial"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "grid point cell=lstm" in err
    assert not (tmp_path / "s").exists()
    code = main(["sweep", "run", "--cell", "rnn,cnn"])
    assert code == 2 and "'cnn' is not one of rnn, lstm, gru" in capsys.readouterr().err


def test_cli_sweep_run_summarize_and_plot(text, tmp_path, capsys):
    from rnnlm.cli import main
    out = tmp_path / "s"
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"cell": ["rnn", "gru"], "recurrent_scale": [0.5, 2.0], "max_steps": 6,
                                "eval_every": 3, "measure": ["lag"]}))
    assert main(["sweep", "run", *_flags(text, out), "--grid", str(grid), "--scheduler", "serial"]) == 0
    printed = capsys.readouterr().out
    rows = read_rows(out)
    assert len(rows) == 4 and all(r["status"] == "done" and r["steps"] == 6 for r in rows)
    assert all(r["lag_max_lag"] > 0 and r["lag_median_lag1"] > 0 for r in rows)
    assert (out / "cell=gru,recurrent_scale=2" / "jacobian.json").exists()
    for r in rows:      # the checkpoint measured and its step (the step of its best validation), as `jacobian` records
        meta = json.loads((out / r["name"] / "jacobian.json").read_text())["meta"]
        best = [e for e in map(json.loads, (out / r["name"] / "metrics.jsonl").read_text().splitlines())
                if e["type"] == "eval" and e.get("split") == "valid" and e.get("best")][-1]
        assert meta["checkpoint"] == "best.npz" and meta["checkpoint_step"] == best["step"] in (3, 6), (meta, best)
    assert "| cell=rnn,recurrent_scale=0.5 | rnn | 0.5 | done |" in printed
    assert (out / "summary.md").read_text() in printed + "\n"
    assert (out / "sweep-best_val_ppl-vs-recurrent_scale-by-cell.png").exists()
    assert main(["sweep", "summarize", str(out)]) == 0
    assert "4 jobs (4 done, 0 failed)" in capsys.readouterr().out
    assert main(["plot", "sweep", str(out), "--x", "cell", "--y", "lag_factor_per_step",
                 "--hue", "recurrent_scale"]) == 0
    svg = (out / "sweep-lag_factor_per_step-vs-cell-by-recurrent_scale.svg").read_text()
    assert "fixed: corpus=" in svg and "max_steps=6" in svg and "recurrent_scale=0.5" in svg
    assert main(["plot", "sweep", str(out), "--x", "widgets"]) == 2
    assert "no column 'widgets'" in capsys.readouterr().err


def _children_alive(pids):
    import psutil
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.slow
def test_ctrl_c_closes_the_cluster_and_a_rerun_resumes(text, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import psutil
    out = tmp_path / "s"
    cmd = [sys.executable, "cli.py", "sweep", "run", *_flags(text, out), "--cell", "rnn,lstm,gru",
           "--seeds", "2", "--max-steps", "1500", "--eval-every", "0", "--workers", "2"]
    # (1,500 steps: the jobs after the first are still running when Ctrl-C lands, with a margin)
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(cmd, cwd=repo, start_new_session=True, preexec_fn=_sigint_default,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    children = []
    while time.time() < deadline and not (out / "sweep.jsonl").exists():
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)] or children
        time.sleep(0.2)
    assert (out / "sweep.jsonl").exists(), proc.communicate(timeout=60)
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)] or children
    assert len(children) >= 2                       # the worker processes
    os.killpg(proc.pid, signal.SIGINT)             # what a terminal's Ctrl-C does: the whole group
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert "continue with the same command and --out" in err
    time.sleep(1)
    assert _children_alive(children) == []
    first = read_rows(out)
    assert 1 <= len(first) < 6
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert len(rows) == 6 and len({r["name"] for r in rows}) == 6
    # the rows recorded before Ctrl-C are kept as they were; every row stands in the grid's order
    assert [r for r in rows if r["name"] in {f["name"] for f in first}] == first
    assert [r["name"] for r in rows] == [f"cell={c},seed={s}" for c in ("rnn", "lstm", "gru") for s in (0, 1)]


@pytest.mark.slow
def test_an_external_scheduler_and_worker_started_by_hand(text, tmp_path):
    """`dask scheduler` + `dask worker` in another folder, without the corpus: the client ships the tokens."""
    import shutil
    import subprocess
    import sys
    import time

    from rnnlm.sweepgrid import expand_grid, train_sweep_jobs
    repo = Path(__file__).resolve().parents[1]
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    sched_file = tmp_path / "scheduler.json"
    env = {k: v for k, v in os.environ.items() if k not in ("RNNLM_CORPORA", "RNNLM_CACHE")}
    env.update({"PYTHONPATH": str(repo), "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    procs = [subprocess.Popen([*dask, "--scheduler-file", str(sched_file), "--port", "0", "--no-dashboard"],
                              cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                       "--nthreads", "1", "--nworkers", "2", "--no-dashboard"],
                                      cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client_only = tmp_path / "client-only" / "text.txt"
        client_only.parent.mkdir()
        shutil.copy(text, client_only)
        points, _ = expand_grid({"corpus": str(client_only), "max_vocab": 300, "valid_fraction": 0.1,
                                 "test_fraction": 0.1, "cell": ["rnn", "gru"], "emsize": 16, "hidden": 16,
                                 "bptt": 8, "batch_size": 8, "eval_batch_size": 4, "dropout": 0.0,
                                 "max_steps": 10, "eval_every": 5})
        jobs, data = train_sweep_jobs(points)
        shutil.rmtree(client_only.parent)          # from here on nobody can read the text from disk
        rows = run_sweep(tmp_path / "sweep", jobs, data, scheduler=address, n_workers=2, progress=False)
        assert [r["status"] for r in rows] == ["done", "done"], rows
        assert all(r["steps"] == 10 and r["worker"].startswith("tcp://") for r in rows)
        assert {r["name"] for r in rows} == {"cell=rnn", "cell=gru"}
        assert (tmp_path / "sweep" / "cell=rnn" / "metrics.jsonl").exists()
        assert list(elsewhere.iterdir()) == [] or all(p.name.startswith("dask-") for p in elsewhere.iterdir())
        serial = run_sweep(tmp_path / "serial", jobs, data, scheduler="serial", progress=False)
        assert sorted(map(stable, serial), key=str) == sorted(map(stable, rows), key=str)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow
def test_one_ctrl_c_stops_demo_gradients_as_a_whole_and_a_rerun_continues(machado_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "demo"
    env = dict(os.environ, RNNLM_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg")
    cmd = [sys.executable, "cli.py", "demo", "gradients", "--quick", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=repo, env=env, start_new_session=True, preexec_fn=_sigint_default,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not (out / "stages" / "init.json").exists() and proc.poll() is None:
        time.sleep(0.1)
    assert (out / "stages" / "init.json").exists(), proc.communicate(timeout=60)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again (same --out) to continue" in err
    assert not (out / "summary.json").exists()
    init_mtime = (out / "stages" / "init.json").stat().st_mtime_ns
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert "stage init: done in an earlier run" in proc.stderr
    assert (out / "stages" / "init.json").stat().st_mtime_ns == init_mtime
    s = json.loads((out / "summary.json").read_text())
    assert s["explosion"]["runs"]["noclip"]["steps"] > 0 and s["trained"]["lstm"]["steps"] == 15
    assert {r["name"] for r in read_rows(out)} == {"explode-noclip", "explode-clip", "train-rnn", "train-lstm",
                                                    "train-gru"}


@pytest.mark.slow
def test_bench_sweep_runs_the_grid_three_ways_and_reports_overhead(text):
    from rnnlm import bench
    d = bench.sweep_bench(n_jobs=4, steps=3, noop_jobs=4, progress=False, corpus=str(text))
    assert set(d["ways"]) == {"serial loop, 2 threads", "1 worker", "2 workers"}
    for way, w in d["ways"].items():
        assert w["failed"] == 0 and w["wall_s"] >= w["in_job_s"] / (2 if way == "2 workers" else 1) * 0.9
        assert abs(w["jobs_per_min"] - 60 * 4 / w["wall_s"]) < 1e-9
        assert all(mb > 50 for mb in w["peak_rss_mb"].values())
    assert len(d["ways"]["2 workers"]["peak_rss_mb"]) == 2 and len(d["ways"]["1 worker"]["peak_rss_mb"]) == 1
    assert 0 < d["noop_round_trip_s"] < 5 and d["cluster_start_s"] > 0
    text = bench.format_sweep_bench(d)
    assert "2 workers / 1 worker:" in text and "no-op job's round trip" in text


def test_a_diverged_training_is_a_result_not_a_failure(text, payload, tmp_path):
    jobs = [Job("boom", "rnnlm.sweepjobs:train_job",
                {"train": tiny_train(text, cell="rnn", activation="relu", init="identity", hidden=32, lr=5.0,
                                     clip_norm=0.0, recurrent_scale=3.0, max_steps=40).to_dict()}, "corpus")]
    [row] = run_sweep(tmp_path, jobs, {"corpus": payload}, scheduler="serial", progress=False)
    assert row["status"] == "done" and row["stopped"] == "nonfinite" and row["nonfinite_step"] >= 1
    assert "error" not in row


def test_a_grid_with_an_empty_list_or_a_boolean_seed_count_is_one_line():
    from rnnlm.errors import UserError
    from rnnlm.sweepgrid import expand_grid
    with pytest.raises(UserError, match="cell an empty list"):
        expand_grid({"cell": [], "max_steps": 20})
    with pytest.raises(UserError, match="seeds must be a positive whole number"):
        expand_grid({"cell": ["rnn"], "seeds": True})
