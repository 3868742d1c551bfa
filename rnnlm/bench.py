"""The speed benchmark: training and inference tokens/s per cell and config.

Machines here are shared and noisy, so figures are medians of several repeats,
and when PyTorch is importable (`--vs-torch`; never a dependency) its model is
timed in a worker process of its own, interleaved repeat by repeat with ours
(the worker times a run when asked, and both sides sleep otherwise), so that
the printed ratio compares like with like. Why a second process: two OpenMP
runtimes (Numba's and PyTorch's) and three BLAS libraries in one process slow
both sides by a varying 10-30%, which no user of either pays.
`--torch-in-process` keeps the old one-process harness to compare. Nothing
here is asserted: it prints.

PyTorch in a fresh process runs either fast or 2-3x slower for the whole
life of that process (BENCHMARKS.md, Round 4), and a slow worker would flatter
our ratios. So each worker, once its model is warm, times a calibration (one
evaluation window of the tiny LSTM, the median of 20 calls, well under a
second) and we time the same beside it; a worker whose ratio (its ms / ours)
is more than 1.6x the best of the bench run, or whose calibration page-faults
more than 500 times per call (the slow mode's signature, which a busy machine
does not fake), is closed and another started, up to 3 per row (the run's first
row always tries two, to have a reference). Ratios, not ms: a busy machine
slows both sides. The table says which worker was kept and prints a WARNING
naming any row timed against a slow one (every try slow, a later row's
worker much faster, or more than 500 page faults per timed window); --json
records carry the calibrations and the kept worker's page faults in its
timed runs (bench_one's docstring lists the fields). The slow mode was
mostly glibc handing PyTorch's large freed buffers back to the OS, to be
faulted in again every window (BENCHMARKS.md, Round 6): the process that
runs PyTorch keeps its freed memory (benchworker.keep_freed_memory,
`--torch-malloc kept`, the default), as PyTorch's CPU tuning guide advises.

The training step timed is the whole step a user pays for: forward, BPTT,
global-norm clipping and an SGD update, with the hidden state carried across
windows (the pytorch/examples loop). Inference is the forward and loss only.

Here: `bench_one` and `run_bench` (one row per cell and config), the compile
and Jacobian timings, `--sweep` and the tables. The harness (both sides'
models, the worker process, its calibration, the interleaving, the thread
counts) is benchworker.py; `--scaling` and `--breakdown` are benchscaling.py.

The one thing to know before editing: every timed run goes through
`_interleave` (a sleep, then each side in turn, repeat by repeat) and every
PyTorch worker through `_calibrated_worker` (the decision itself is
`_worker_verdict`, a pure function of the calibrations), both in
benchworker.py; a new kind of row is built from those, not timed on its own.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from .benchworker import (BATCH, BPTT, CELLS, CONFIGS, _bars, _each, _calibrated_worker, _interleave_then_close,
                          _median_rate, _numba_pool_started, _OurModel, _ratio, _ratio_cell, _set_threads,
                          _steps_for, _timed, _tokens, _TorchModel, _Worker, calibrate_ours, check_thread_count,
                          check_torch, format_calibration, machine_cores, malloc_setting, selection,
                          slow_by_itself)
from .errors import UserError

# bench's --threads when not given (fewer on a machine with fewer cores)
DEFAULT_THREADS = 2


def bench_one(cell, config, repeats=3, vs_torch=False, threads=2, torch_in_process=False, calibrations=None,
              torch_malloc="kept"):
    """Time one (cell, config); returns the JSON record.

    Every record has calibration_ms: our calibration (ms, _calibration_call). With the PyTorch
    worker also: torch_calibration_ms (the kept worker's, and calibration_ms is ours beside it),
    torch_calibration_tries ([worker ms, ours ms] of each worker started for this row, in order),
    torch_calibration_faults (the minor page faults per calibration call of each of them),
    torch_worker_kept (1-based), torch_calibration_best (the smallest ratio worker / ours of the
    run so far), torch_slow_mode (timed against PyTorch's slow mode by the row's own evidence:
    every worker tried was far slower, see _worker_verdict, or the kept one's calibration or timed
    runs say so, benchworker.slow_by_itself; the table's WARNING also names rows that a later row's
    faster worker shows slow) and
    torch_train_faults_per_window, torch_eval_faults_per_window (the kept worker's minor page faults
    in its timed runs, the median over repeats / windows per run: the slow mode's signature).
    calibrations: the ratios of the run's workers so far (run_bench shares one list over its rows;
    None: this row is the run's first). torch_malloc: PyTorch's allocator (benchworker.TORCH_MALLOC;
    in process it applies to this whole process), recorded as torch_malloc ("kept" or "default", the
    flag's value) and torch_malloc_detail (what was set, in words: the table's; "kept" on a platform
    without glibc's mallopt sets nothing); torch_process says whether PyTorch ran in this process.
    """
    V, H = CONFIGS[config]
    n = _steps_for(V, H)
    windows = _tokens(V, n)
    ours = _OurModel(cell, V, H)
    ours.train_steps(windows[:2])  # compile and warm up buffers
    ours.eval_steps(windows[:2])
    runs = [("train", _timed(ours.train_steps, windows)), ("eval", _timed(ours.eval_steps, windows))]
    worker, fields = None, None
    malloc = None
    if vs_torch and torch_in_process:
        malloc = malloc_setting(torch_malloc)
        theirs = _TorchModel(cell, V, H, threads)
        theirs.train_steps(windows[:2])
        theirs.eval_steps(windows[:2])
        runs += [("torch_train", _timed(theirs.train_steps, windows)),
                 ("torch_eval", _timed(theirs.eval_steps, windows))]
    elif vs_torch:
        worker, fields = _calibrated_worker(lambda: _Worker(cell, config, n, threads, malloc=torch_malloc),
                                            calibrate_ours, [] if calibrations is None else calibrations)
        runs += [("torch_train", lambda: worker.run("train")), ("torch_eval", lambda: worker.run("eval"))]
    fields = fields or {"calibration_ms": round(calibrate_ours(), 3)}
    timings = _interleave_then_close(runs, repeats, worker)
    tokens = n * BATCH * BPTT
    record = {
        "cell": cell, "config": config, "V": V, "E": H, "H": H, "B": BATCH, "T": BPTT,
        "train_tokens_per_s": round(_median_rate(timings["train"], tokens)),
        "eval_tokens_per_s": round(_median_rate(timings["eval"], tokens)),
        "repeats": repeats,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **fields,
    }
    if vs_torch:
        record["torch_process"] = "same" if torch_in_process else "worker"
        record["torch_malloc"] = torch_malloc       # the flag's value; in words, what was set:
        record["torch_malloc_detail"] = malloc if worker is None else worker.malloc
        record["torch_train_tokens_per_s"] = round(_median_rate(timings["torch_train"], tokens))
        record["torch_eval_tokens_per_s"] = round(_median_rate(timings["torch_eval"], tokens))
        if worker is not None:
            for kind in ("train", "eval"):
                record[f"torch_{kind}_faults_per_window"] = round(float(np.median(worker.faults[kind])) / n)
            record["torch_slow_mode"] = slow_by_itself(record)
        for kind in ("train", "eval"):
            record[f"{kind}_ratio"], record[f"{kind}_ratio_range"] = _ratio(
                record[f"{kind}_tokens_per_s"], record[f"torch_{kind}_tokens_per_s"],
                timings[kind], timings["torch_" + kind])
    return record


# Run in a fresh process: launch `train` on a small text with the default model
# and report the wall-clock time (since the parent launched it) at which the
# first training step has finished, i.e. forward, BPTT and all their compiles.
_TRAIN_PROBE = """
import sys, time
import rnnlm.train as T
orig = T.train_step
done = []
def first_step(*a, **k):
    out = orig(*a, **k)
    if not done:
        done.append(time.time())
    return out
T.train_step = first_step
from rnnlm.cli import main
status = main(sys.argv[3:])
print(done[0] - float(sys.argv[1]) if done else "nan", status)
"""


def compile_times(cells=CELLS, corpus="machado"):
    """Seconds from launching `train --cell c --max-steps 1` (default model and corpus) to
    the end of its first step, with an empty Numba cache ("cold"), then with the cache it
    left ("warm"). The corpus's token cache is whatever the user's is (normally warm)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "numba"))
        for cell in cells:
            for label in ("cold", "warm"):
                run = os.path.join(tmp, f"{cell}-{label}")
                argv = ["train", "--corpus", corpus, "--cell", cell, "--max-steps", "1",
                        "--no-progress", "--sample-words", "0", "--out", run]
                t0 = time.time()
                res = subprocess.run([sys.executable, "-c", _TRAIN_PROBE, repr(t0), "--", *argv],
                                     env=env, capture_output=True, text=True, check=False)
                lines = res.stdout.strip().splitlines()
                if res.returncode != 0 or not lines:
                    raise RuntimeError(f"train probe failed: {res.stderr.strip().splitlines()[-3:]}")
                out[(cell, label)] = float(lines[-1].split()[0])
    return out


def jacobian_times(H=256, max_lag=100, anchors=32):
    """Seconds for the full lag curve (both norms) at the issue's target settings."""
    from .jacobian import lag_curve
    from .model import ModelConfig, RNNModel

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 1000, size=max_lag + anchors + 50)
    out = {}
    for cell in CELLS:
        model = RNNModel(ModelConfig(vocab_size=1000, cell=cell, emsize=H, hidden=H,
                                     dtype="float64"), seed=0)
        lag_curve(model, tokens[:20], max_lag=5, anchors=2, rng=np.random.default_rng(0))  # compile
        t0 = time.perf_counter()
        lag_curve(model, tokens, max_lag=max_lag, anchors=anchors, rng=np.random.default_rng(0))
        out[cell] = time.perf_counter() - t0
    return out


def jacobian_overhead(every=500, repeats=3, steps=5):
    """Cost of train --track-jacobian-every at the default train config (LSTM V=10k, E=H=256, B=32, T=35).

    Times `steps` training steps and one tracking curve (tracking.jacobian_event,
    the cheap settings) interleaved `repeats` times on the same model; returns
    the medians and the overhead fraction curve / (every * step).
    """
    from .tracking import TRACK_TOKENS, jacobian_event

    V, H = CONFIGS["medium"]
    ours = _OurModel("lstm", V, H)
    windows = _tokens(V, steps)
    tokens = np.random.default_rng(1).integers(0, V, TRACK_TOKENS)
    ours.train_steps(windows[:2])
    jacobian_event(ours.model, tokens[:40], 0)   # compile
    step_t, curve_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours.train_steps(windows)
        step_t.append((time.perf_counter() - t0) / steps)
        t0 = time.perf_counter()
        jacobian_event(ours.model, tokens, 0)
        curve_t.append(time.perf_counter() - t0)
    step_s, curve_s = float(np.median(step_t)), float(np.median(curve_t))
    return {"step_s": step_s, "curve_s": curve_s, "every": every, "overhead": curve_s / (every * step_s)}


def run_bench(cell="all", config="all", *, repeats, threads=None, vs_torch=False, torch_in_process=False,
              oversubscribe=False, progress=True, on_record=None, torch_malloc="kept") -> list[dict]:
    """The `bench` command's measurements: one record per (config, cell), in that order.

    cell / config: one name or "all". threads: for both sides (default DEFAULT_THREADS, at most the
    machine's cores); more than the machine's cores is refused unless oversubscribe, as --scaling's
    counts are. on_record(record) is called as each record is ready (the CLI's --json prints it at once).
    torch_malloc: PyTorch's allocator, "kept" or "default" (benchworker.TORCH_MALLOC).
    """
    cells, configs = selection(cell, config)
    if vs_torch:
        check_torch()
    if threads is None:
        threads = min(DEFAULT_THREADS, machine_cores())
    if threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    check_thread_count(threads, "--threads", oversubscribe=oversubscribe)
    if torch_in_process and not vs_torch:
        raise UserError("--torch-in-process only applies with --vs-torch")
    _set_threads(threads)
    records, calibrations = [], []
    jobs = [(c, conf) for conf in configs for c in cells]
    for c, conf in _each(jobs, "bench", progress, name=lambda job: f"{job[1]} {job[0]}"):
        rec = bench_one(c, conf, repeats=repeats, vs_torch=vs_torch,
                        threads=threads, torch_in_process=torch_in_process, calibrations=calibrations,
                        torch_malloc=torch_malloc)
        records.append(rec)
        if on_record is not None:
            on_record(rec)
    return records


def format_compile_times(ct: dict, cells) -> str:
    lines = ["launch of `train --max-steps 1` (default lstm/gru/rnn model, machado corpus) to the end "
             "of the first step:"]
    for cell in cells:
        lines.append(f"  {cell:<5} empty Numba cache {ct[(cell, 'cold')]:.1f} s, warm cache {ct[(cell, 'warm')]:.1f} s")
    return "\n".join(lines)


def format_jacobian_times(jt: dict, ov: dict) -> str:
    return ("Jacobian lag curve, H=256, D=100, 32 anchors, spectral + Frobenius: "
            + ", ".join(f"{c} {t:.1f} s" for c, t in jt.items())
            + f"\ntrain --track-jacobian-every {ov['every']} (LSTM E=H=256, V=10k, B=32, T=35): one curve "
              f"{ov['curve_s']:.2f} s = {ov['curve_s'] / ov['step_s']:.1f} training steps of "
              f"{ov['step_s'] * 1000:.0f} ms -> overhead {100 * ov['overhead']:.2f}%")


def format_footer(vs_torch: bool, torch_in_process: bool) -> str:
    """Peak memory and thread settings, the last lines of the table."""
    worker = ", PyTorch in a worker process with the same" if vs_torch and not torch_in_process else ""
    return (f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
            " (this process" + ("; it includes PyTorch's models)" if torch_in_process else ")")
            + f"\nthreads: {_describe_threads()}{worker}")


def _describe_threads():
    import numba

    from ._blas import blas_threads

    parts = [f"numba {numba.get_num_threads()} ({numba.threading_layer() if _numba_pool_started() else 'pool not started'})"]
    parts += [f"BLAS {k} {v}" for k, v in blas_threads().items()]
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__} {torch.get_num_threads()}")
    return ", ".join(parts)


def _print_table(records, vs_torch):
    print(format_table(records, vs_torch))


def format_table(records, vs_torch) -> str:
    """One line per record: tokens/s, and with vs_torch PyTorch's and the ratios."""
    head = f"{'config':<7} {'cell':<5} {'V':>6} {'H':>4} {'train tok/s':>12} {'eval tok/s':>11}"
    if vs_torch:
        head += f" {'torch train':>12} {'ratio [per repeat]':>19} {'torch eval':>11} {'ratio [per repeat]':>19}"
    lines = [head]
    for r in records:
        line = (f"{r['config']:<7} {r['cell']:<5} {r['V']:>6} {r['H']:>4} "
                f"{r['train_tokens_per_s']:>12,} {r['eval_tokens_per_s']:>11,}")
        if vs_torch:
            line += (f" {r['torch_train_tokens_per_s']:>12,} {_ratio_cell(r, 'train'):>19}"
                     f" {r['torch_eval_tokens_per_s']:>11,} {_ratio_cell(r, 'eval'):>19}")
        lines.append(line)
    calibration = format_calibration(records) if vs_torch else ""
    return "\n".join(lines + ([calibration] if calibration else []))


# ---------------------------------------------------------------- bench --sweep

# Machado, whole; no evaluation before the end (an epoch is ~3,800 windows), so every job does the same work.
SWEEP_GRID = dict(cell="lstm", emsize=64, hidden=64, bptt=35, batch_size=16, eval_batch_size=16, dropout=0.0,
                  recurrent_scale=[0.5, 1.0, 2.0, 4.0], max_vocab=2000, eval_every=0)


def sweep_bench(n_jobs: int = 8, steps: int = 300, noop_jobs: int = 30, progress: bool = True,
                corpus: str = "machado") -> dict:
    """The same grid of `n_jobs` short trainings run three ways, and Dask's overhead per job.

    Ways: today's serial loop (one training after another in this process on
    2 Numba threads), a LocalCluster of 1 worker and one of 2 workers (one
    thread each). Walls include starting the cluster and shipping the corpus.
    Overhead: `noop_jobs` jobs that do nothing, on a 1-worker cluster: the time
    between consecutive finished rows (scheduling, shipping, recording) and
    the cluster's start (the first row); and for the 1-worker training sweep,
    (wall - sum of in-job times) / jobs. Peak memory: each worker's max RSS.
    """
    import shutil

    from .sweep import run_sweep
    from .sweeprecord import Job
    from .sweepgrid import expand_grid, train_sweep_jobs
    if n_jobs < 2 or n_jobs % 4:
        raise UserError(f"--sweep-jobs must be a positive multiple of 4 (4 scales x seeds), got {n_jobs}")
    grid = dict(SWEEP_GRID, corpus=corpus, max_steps=steps, seeds=n_jobs // 4)
    points, _ = expand_grid(grid)
    jobs, data = train_sweep_jobs(points)
    tmp = tempfile.mkdtemp(prefix="rnnlm-bench-sweep-")
    result = {"jobs": n_jobs, "steps": steps, "grid": {k: v for k, v in grid.items() if k != "corpus"},
              "corpus": os.path.basename(grid["corpus"]), "load_before": os.getloadavg()}
    try:
        # The first run also pays the Numba compile of this model (cached in __pycache__ after it).
        if progress and not _bars(progress):
            print("bench --sweep: one training first, untimed (Numba compiles the model)", file=sys.stderr,
                  flush=True)
        run_sweep(os.path.join(tmp, "warm"), jobs[:1], data, scheduler="serial", threads=2, progress=False)
        ways = {}
        for way, kw in _each((("serial loop, 2 threads", dict(scheduler="serial", threads=2)),
                              ("1 worker", dict(n_workers=1)), ("2 workers", dict(n_workers=2))),
                             f"bench --sweep: {n_jobs} trainings of {steps} steps", progress and not _bars(progress),
                             name=lambda w: w[0]):
            t0 = time.perf_counter()
            split = {}
            rows = run_sweep(os.path.join(tmp, way.split(",")[0].replace(" ", "-")), jobs, data,
                             progress=_bars(progress), timings=split, **kw)
            wall = time.perf_counter() - t0
            in_job = sum(r["wall_s"] for r in rows)
            peak = {}
            for r in rows:
                peak[r["worker"]] = max(peak.get(r["worker"], 0.0), r.get("max_rss_mb") or 0.0)
            ways[way] = {"wall_s": wall, "jobs_per_min": 60 * len(rows) / wall, "in_job_s": in_job,
                         "mean_job_s": in_job / len(rows), "failed": sum(r["status"] != "done" for r in rows),
                         "peak_rss_mb": peak, "split_s": split}
        result["ways"] = ways
        if progress and not _bars(progress):
            print(f"bench --sweep: Dask's overhead, {noop_jobs} jobs that do nothing on 1 worker", file=sys.stderr,
                  flush=True)
        stamps = []
        noop = [Job(f"noop-{i}", "rnnlm.sweepjobs:noop_job", {"i": i}, None) for i in range(noop_jobs)]
        t0 = time.perf_counter()
        run_sweep(os.path.join(tmp, "noop"), noop, None, n_workers=1, progress=False,
                  on_row=lambda r: stamps.append(time.perf_counter()))
        result["cluster_start_s"] = stamps[0] - t0
        result["noop_round_trip_s"] = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        one = ways["1 worker"]
        result["overhead_per_job_s"] = (one["wall_s"] - one["in_job_s"]) / n_jobs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["load_after"] = os.getloadavg()
    return result


def format_sweep_bench(d: dict) -> str:
    """The lines `bench --sweep` prints."""
    ways = d["ways"]
    serial, one, two = ways["serial loop, 2 threads"], ways["1 worker"], ways["2 workers"]
    lines = [f"sweep bench: {d['jobs']} trainings of {d['steps']} steps (lstm E=H=64, B=16, T=35, "
             f"V=2000, recurrent scale 0.5/1/2/4 x {d['jobs'] // 4} seeds, then validation and test) on "
             f"{d['corpus']}; "
             f"load average before {d['load_before'][0]:.2f}, after {d['load_after'][0]:.2f}",
             "| way | wall s | jobs/min | mean in-job s | peak RSS per worker (MB) |", "|---|---:|---:|---:|---|"]
    for way, w in ways.items():
        peak = ", ".join(f"{v:.0f}" for v in w["peak_rss_mb"].values())
        lines.append(f"| {way} | {w['wall_s']:.1f} | {w['jobs_per_min']:.2f} | {w['mean_job_s']:.2f} | {peak} |")
    # Where each way's wall went: the cluster's start and close are paid once per sweep, the jobs part per job.
    lines += ["", "| way | cluster start s | ship data s | jobs s | cluster close s | jobs/min (jobs part only) |",
              "|---|---:|---:|---:|---:|---:|"]
    for way, w in ways.items():
        sp = w.get("split_s") or {}
        if sp:
            rate = 60 * d["jobs"] / sp["jobs_s"] if sp.get("jobs_s") else float("nan")
            lines.append(f"| {way} | {sp['start_s']:.2f} | {sp['ship_s']:.2f} | {sp['jobs_s']:.1f} | "
                         f"{sp['close_s']:.2f} | {rate:.2f} |")
    jobs_only = ""
    if all(w.get("split_s", {}).get("jobs_s") for w in (serial, two)):
        jobs_only = (f" (jobs part only, without the cluster's start and close: "
                     f"{serial['split_s']['jobs_s'] / two['split_s']['jobs_s']:.2f}x)")
    lines += [f"2 workers / 1 worker: {two['jobs_per_min'] / one['jobs_per_min']:.2f}x; "
              f"2 workers / serial loop: {two['jobs_per_min'] / serial['jobs_per_min']:.2f}x{jobs_only}",
              f"Dask overhead: cluster start {d['cluster_start_s']:.2f} s (once per sweep); a no-op job's round "
              f"trip {1000 * d['noop_round_trip_s']:.0f} ms; 1-worker sweep (wall - in-job time) / jobs = "
              f"{d['overhead_per_job_s']:.2f} s per job, {100 * d['overhead_per_job_s'] / 30:.1f}% of a 30-s job"]
    if any(w["failed"] for w in ways.values()):
        lines.append("WARNING: some jobs failed: " + ", ".join(f"{k} {w['failed']}" for k, w in ways.items()))
    return "\n".join(lines)
