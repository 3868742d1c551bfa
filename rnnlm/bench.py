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

The training step timed is the whole step a user pays for: forward, BPTT,
global-norm clipping and an SGD update, with the hidden state carried across
windows (the pytorch/examples loop). Inference is the forward and loss only.
"""
from __future__ import annotations

import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from .errors import UserError

# name -> (V, H); E = H, one layer, B = 32, T = 35, float32 (the cells issue).
CONFIGS = {
    "tiny": (2000, 64),
    "small": (10000, 128),
    "medium": (10000, 256),
    "large": (30000, 512),
}
CELLS = ("rnn", "lstm", "gru")
BATCH, BPTT = 32, 35
CLIP, LR = 0.25, 1.0
# Pause before each timed run: thread pools (OpenMP's, OpenBLAS's) keep spinning
# for a while after their last task, and in one process they would otherwise
# steal a core from whichever model is timed next.
IDLE_S = 0.3


def _tokens(V, n_windows, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, size=(n_windows, BPTT + 1, BATCH)).astype(np.int64)


def _median_rate(times, tokens):
    return tokens / float(np.median(times))


class _OurModel:
    """One rnnlm model plus the buffers a timed step needs; the step is train.py's."""

    def __init__(self, cell, V, H):
        from .model import ModelConfig, RNNModel
        from .optim import SGD

        self.model = RNNModel(ModelConfig(vocab_size=V, cell=cell, emsize=H, hidden=H), seed=0)
        self.opt = SGD(self.model.params, LR)
        self.state = self.model.init_state(BATCH)

    def train_steps(self, windows):
        from .optim import clip_grad_norm, grad_norm

        model = self.model
        for w in windows:
            loss, grads, self.state = model.loss_and_grads(w[:-1], w[1:], self.state)
            # as train.py: the norm (also the non-finite check), clipping, the update
            clip_grad_norm(grads, CLIP, norm=grad_norm(grads))
            self.opt.step(model.params, grads)

    def eval_steps(self, windows):
        for w in windows:
            _, self.state = self.model.loss(w[:-1], w[1:], self.state)


class _TorchModel:
    """pytorch/examples' RNNModel and training loop, for the side-by-side."""

    def __init__(self, cell, V, H, threads):
        import torch
        from torch import nn

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.torch = torch
        rnn_class = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.encoder = nn.Embedding(V, H)
        self.rnn = rnn_class(H, H, 1)
        self.decoder = nn.Linear(H, V)
        self.modules = nn.ModuleList([self.encoder, self.rnn, self.decoder])
        self.loss_fn = nn.CrossEntropyLoss()
        h0 = torch.zeros(1, BATCH, H)
        self.state = (h0, h0.clone()) if cell == "lstm" else h0
        self.V = V

    def _detach(self):
        s = self.state
        self.state = tuple(x.detach() for x in s) if isinstance(s, tuple) else s.detach()

    def _forward(self, inputs):
        out, self.state = self.rnn(self.encoder(inputs), self.state)
        return self.decoder(out).view(-1, self.V)

    def train_steps(self, windows):
        torch = self.torch
        for w in windows:
            w = torch.from_numpy(w)
            self._detach()
            self.modules.zero_grad()
            loss = self.loss_fn(self._forward(w[:-1]), w[1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.modules.parameters(), CLIP)
            with torch.no_grad():
                for p in self.modules.parameters():
                    p.add_(p.grad, alpha=-LR)

    def eval_steps(self, windows):
        torch = self.torch
        with torch.no_grad():
            for w in windows:
                w = torch.from_numpy(w)
                self.loss_fn(self._forward(w[:-1]), w[1:].reshape(-1))


class _Worker:
    """A model in a child process: `run(key)` asks it to time one run ("train" or
    "eval") over the same windows as ours and returns its seconds. side "torch"
    is _TorchModel; "rnnlm" is ours (to check that the harness itself is neutral).

    The protocol is a line each way on the child's stdin/stdout (no pickle)."""

    def __init__(self, cell, config, n, threads, side="torch"):
        code = "from rnnlm.bench import _worker_main; _worker_main()"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PROJECT_ROOT, os.environ.get("PYTHONPATH")])))
        self.side = side
        self.proc = subprocess.Popen([sys.executable, "-c", code, side, cell, config, str(n), str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._expect("ready")

    def _expect(self, what):
        line = self.proc.stdout.readline().strip()
        if not line.startswith(what):
            self.close()
            raise UserError(f"the {self.side} benchmark worker process failed (its error, if any, is above); "
                            "--torch-in-process runs PyTorch in this process instead")
        return line

    def run(self, key):
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()
        return float(self._expect("seconds").split()[1])

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:   # the child is gone already
                pass
        self.proc.wait(timeout=60)


_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker_main():
    """The child side of _Worker: argv side, cell, config, n windows, threads."""
    side, cell, config, n, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    V, H = CONFIGS[config]
    windows = _tokens(V, n)
    if side == "torch":
        model = _TorchModel(cell, V, H, threads)
    else:
        _set_threads(threads)
        model = _OurModel(cell, V, H)
    model.train_steps(windows[:2])
    model.eval_steps(windows[:2])
    runners = {"train": model.train_steps, "eval": model.eval_steps}
    print("ready", flush=True)
    for line in sys.stdin:
        t0 = time.perf_counter()
        runners[line.strip()](windows)
        print(f"seconds {time.perf_counter() - t0!r}", flush=True)


def _steps_for(V, H):
    """Enough windows per repeat for ~0.5-2 s of work, fewer for big configs."""
    work = V * H + 4 * H * H
    return int(np.clip(2e8 / (work * BATCH * BPTT) * 40, 3, 30))


def bench_one(cell, config, repeats=3, vs_torch=False, threads=2, torch_in_process=False):
    """Time one (cell, config); returns the JSON record."""
    V, H = CONFIGS[config]
    n = _steps_for(V, H)
    windows = _tokens(V, n)
    ours = _OurModel(cell, V, H)
    ours.train_steps(windows[:2])  # compile and warm up buffers
    ours.eval_steps(windows[:2])
    runs = [("train", _timed(ours.train_steps, windows)), ("eval", _timed(ours.eval_steps, windows))]
    worker = None
    if vs_torch and torch_in_process:
        theirs = _TorchModel(cell, V, H, threads)
        theirs.train_steps(windows[:2])
        theirs.eval_steps(windows[:2])
        runs += [("torch_train", _timed(theirs.train_steps, windows)),
                 ("torch_eval", _timed(theirs.eval_steps, windows))]
    elif vs_torch:
        worker = _Worker(cell, config, n, threads)
        runs += [("torch_train", lambda: worker.run("train")), ("torch_eval", lambda: worker.run("eval"))]
    timings = {key: [] for key, _ in runs}
    try:
        for _ in range(repeats):
            for key, timed_run in runs:
                time.sleep(IDLE_S)
                timings[key].append(timed_run())
    finally:
        if worker is not None:
            worker.close()
    tokens = n * BATCH * BPTT
    record = {
        "cell": cell, "config": config, "V": V, "E": H, "H": H, "B": BATCH, "T": BPTT,
        "train_tokens_per_s": round(_median_rate(timings["train"], tokens)),
        "eval_tokens_per_s": round(_median_rate(timings["eval"], tokens)),
        "repeats": repeats,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if vs_torch:
        record["torch_process"] = "same" if torch_in_process else "worker"
        record["torch_train_tokens_per_s"] = round(_median_rate(timings["torch_train"], tokens))
        record["torch_eval_tokens_per_s"] = round(_median_rate(timings["torch_eval"], tokens))
        record["train_ratio"] = round(record["train_tokens_per_s"] / record["torch_train_tokens_per_s"], 2)
        record["eval_ratio"] = round(record["eval_tokens_per_s"] / record["torch_eval_tokens_per_s"], 2)
        # how much the ratio moved between repeats (each repeat times both sides back to back):
        # on a shared machine the spread says how far one run's ratio can be trusted
        for kind in ("train", "eval"):
            per_repeat = [t / o for o, t in zip(timings[kind], timings["torch_" + kind])]
            record[f"{kind}_ratio_range"] = [round(min(per_repeat), 2), round(max(per_repeat), 2)]
    return record


def _timed(run, windows):
    """A function that runs run(windows) and returns its seconds."""
    def timed_run():
        t0 = time.perf_counter()
        run(windows)
        return time.perf_counter() - t0
    return timed_run


# Run in a fresh process: launch `train` on a small text with the default model
# and report the wall-clock time (since the parent launched it) at which the
# first training step has finished, i.e. forward, BPTT and all their compiles.
_TRAIN_PROBE = """
import sys, time
import rnnlm.model as M
orig = M.RNNModel.loss_and_grads
done = []
def first_step(self, *a, **k):
    out = orig(self, *a, **k)
    if not done:
        done.append(time.time())
    return out
M.RNNModel.loss_and_grads = first_step
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

    Times `steps` training steps and one tracking curve (train.jacobian_event,
    the cheap settings) interleaved `repeats` times on the same model; returns
    the medians and the overhead fraction curve / (every * step).
    """
    from .train import TRACK_TOKENS, jacobian_event

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


def run_bench(cell="all", config="all", *, repeats, threads, vs_torch=False, torch_in_process=False,
              progress=True, on_record=None) -> list[dict]:
    """The `bench` command's measurements: one record per (config, cell), in that order.

    cell / config: one name or "all". on_record(record) is called as each
    record is ready (the CLI's --json prints it at once).
    """
    cells = CELLS if cell in (None, "all") else (cell,)
    configs = list(CONFIGS) if config in (None, "all") else [config]
    for c in configs:
        if c not in CONFIGS:
            raise UserError(f"unknown config {c!r}; choose from {', '.join(CONFIGS)} or all")
    if vs_torch:
        # find, not import: in the worker harness our process never loads PyTorch's runtime
        if importlib.util.find_spec("torch") is None:
            raise UserError("--vs-torch needs PyTorch importable in this Python "
                            "(it is never a dependency: install it in a separate venv)")
    if threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    if torch_in_process and not vs_torch:
        raise UserError("--torch-in-process only applies with --vs-torch")
    from tqdm import tqdm

    _set_threads(threads)
    records = []
    jobs = [(c, conf) for conf in configs for c in cells]
    for c, conf in tqdm(jobs, desc="bench", disable=not progress, leave=False):
        rec = bench_one(c, conf, repeats=repeats, vs_torch=vs_torch,
                        threads=threads, torch_in_process=torch_in_process)
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


def _set_threads(threads):
    """Give our side the thread count PyTorch gets: NumPy's BLAS and Numba's pool.

    The per-step products of the recurrence always run on one BLAS thread
    (see _blas.py); only the big products and the cross-entropy use `threads`.
    """
    import numba

    from ._blas import set_numpy_threads

    set_numpy_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _describe_threads():
    import numba

    from ._blas import blas_threads

    parts = [f"numba {numba.get_num_threads()} ({numba.threading_layer() if _numba_pool_started() else 'pool not started'})"]
    parts += [f"BLAS {k} {v}" for k, v in blas_threads().items()]
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__} {torch.get_num_threads()}")
    return ", ".join(parts)


def _numba_pool_started():
    import numba

    try:
        numba.threading_layer()
        return True
    except ValueError:
        return False


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
    return "\n".join(lines)


def _ratio_cell(record, kind):
    lo, hi = record[f"{kind}_ratio_range"]
    return f"{record[kind + '_ratio']:.2f}x [{lo:.2f}-{hi:.2f}]"


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

    from .sweep import Job, run_sweep
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
        run_sweep(os.path.join(tmp, "warm"), jobs[:1], data, scheduler="serial", threads=2, progress=False)
        ways = {}
        for way, kw in (("serial loop, 2 threads", dict(scheduler="serial", threads=2)),
                        ("1 worker", dict(n_workers=1)), ("2 workers", dict(n_workers=2))):
            t0 = time.perf_counter()
            split = {}
            rows = run_sweep(os.path.join(tmp, way.split(",")[0].replace(" ", "-")), jobs, data,
                             progress=progress, timings=split, **kw)
            wall = time.perf_counter() - t0
            in_job = sum(r["wall_s"] for r in rows)
            peak = {}
            for r in rows:
                peak[r["worker"]] = max(peak.get(r["worker"], 0.0), r.get("max_rss_mb") or 0.0)
            ways[way] = {"wall_s": wall, "jobs_per_min": 60 * len(rows) / wall, "in_job_s": in_job,
                         "mean_job_s": in_job / len(rows), "failed": sum(r["status"] != "done" for r in rows),
                         "peak_rss_mb": peak, "split_s": split}
        result["ways"] = ways
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
