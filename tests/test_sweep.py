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
        out.append({k: v for k, v in e.items() if k not in ("time", "tokens_per_s", "seconds")})
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
