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
naming any row timed against a slow one (every try slow, or a later row's
worker much faster); --json records carry the calibrations and the kept
worker's page faults in its timed runs (bench_one's docstring lists the
fields).

The training step timed is the whole step a user pays for: forward, BPTT,
global-norm clipping and an SGD update, with the hidden state carried across
windows (the pytorch/examples loop). Inference is the forward and loss only.

`--scaling 1,2,4` repeats that at each thread count in one run (the counts
interleaved within every repeat, the worker moved between them), with the
parallel efficiency; `--breakdown` cuts the training step into phases by
wrapping the functions it calls with timers for one extra pass.

The one thing to know before editing: every timed run goes through
`_interleave` (a sleep, then each side in turn, repeat by repeat), every
PyTorch worker through `_calibrated_worker` (the decision itself is
`_worker_verdict`, a pure function of the calibrations), and the breakdown
only wraps functions from outside (`_phase_hooks`): the kernels and the step
they run are the ones a user's training runs.
"""
from __future__ import annotations

import contextlib
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
# bench's --threads when not given (fewer on a machine with fewer cores)
DEFAULT_THREADS = 2
BATCH, BPTT = 32, 35
CLIP, LR = 0.25, 1.0
# Pause before each timed run: thread pools (OpenMP's, OpenBLAS's) keep spinning
# for a while after their last task, and in one process they would otherwise
# steal a core from whichever model is timed next.
IDLE_S = 0.3
# The calibration both sides time before a comparison: one evaluation window of the tiny LSTM (each
# side's model as the bench builds it), the median of CAL_CALLS calls after CAL_WARMUP, and the minor
# page faults per call. PyTorch in a fresh process runs either fast or 2-3x slower for the whole life of
# the process (BENCHMARKS.md, Round 4); the slow processes page-fault ~900-4,600 times per window
# (~9 MB buffers handed back to the OS and touched afresh every window, it seems).
CAL_CELL, CAL_CONFIG = "lstm", "tiny"
CAL_CALLS, CAL_WARMUP = 20, 3
# A worker whose calibration ratio (its ms / ours beside it) is more than SLOW_FACTOR x the best ratio
# of the bench run is replaced, up to WORKER_TRIES workers per row; the run's first row tries two.
# So is one whose calibration page-faults more than FAULT_LIMIT times per call, however long it took
# (a fast process faults 0-220 times per window, a slow one 900-4,600: ~4 KB pages touched afresh).
SLOW_FACTOR = 1.6
WORKER_TRIES = 3
FAULT_LIMIT = 500


def _tokens(V, n_windows, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, size=(n_windows, BPTT + 1, BATCH)).astype(np.int64)


def _median_rate(times, tokens):
    return tokens / float(np.median(times))


def _calibrate(call, calls=CAL_CALLS, warmup=CAL_WARMUP):
    """(median seconds, minor page faults per call) of `calls` calls of call(), after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / calls


def _calibration_call(side):
    """The calibration's one call on side "torch" (_TorchModel's evaluation, its state carried) or
    "rnnlm" (our model's loss from the zero state): one window (B, T as the bench) of a model of
    CAL_CELL and CAL_CONFIG built here at the thread count set now; returns the mean loss (nats/token).
    Imports torch only for "torch"."""
    V, H = CONFIGS[CAL_CONFIG]
    window = _tokens(V, 1, seed=1)[0]
    if side == "torch":
        import torch

        model = _TorchModel(CAL_CELL, V, H, torch.get_num_threads())
        w = torch.from_numpy(window)

        def call():
            with torch.no_grad():
                return float(model.loss_fn(model._forward(w[:-1]), w[1:].reshape(-1)))
        return call
    ours = _OurModel(CAL_CELL, V, H)
    return lambda: ours.model.loss(window[:-1], window[1:], ours.state)[0]


def calibrate_ours():
    """Our calibration in this process, ms (at the thread count set now): the machine's state beside a worker's."""
    return 1e3 * _calibrate(_calibration_call("rnnlm"))[0]


class _OurModel:
    """One rnnlm model plus the buffers a timed step needs; the step is train.py's."""

    def __init__(self, cell, V, H, params=None):
        """params: another _OurModel's (shared, so that one per thread count costs no extra weights)."""
        from .model import ModelConfig, RNNModel
        from .optim import SGD

        self.model = RNNModel(ModelConfig(vocab_size=V, cell=cell, emsize=H, hidden=H), seed=0, params=params)
        self.opt = SGD(self.model.params, LR)
        self.state = self.model.init_state(BATCH)

    def train_steps(self, windows):
        from .config import TrainConfig
        from .step import train_step

        # train.py's step: gradients, the norm (also the non-finite guard), clipping, the update
        config = TrainConfig(clip_norm=CLIP)
        for w in windows:
            self.state = train_step(self.model, self.opt, config, w[:-1], w[1:], self.state, None).state

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
    `faults[key]` lists the minor page faults of each run (`run` returns only
    the seconds). `set_threads(n)` moves it to n threads (bench --scaling);
    `version` is what it runs (e.g. "torch 2.13.0+cpu"); `calibrate()` times
    the calibration there: (ms, minor page faults per call) of
    _calibration_call of its side, at its thread count.

    The protocol is a line each way on the child's stdin/stdout (no pickle)."""

    def __init__(self, cell, config, n, threads, side="torch"):
        code = "from rnnlm.bench import _worker_main; _worker_main()"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PROJECT_ROOT, os.environ.get("PYTHONPATH")])))
        self.side = side
        self.proc = subprocess.Popen([sys.executable, "-c", code, side, cell, config, str(n), str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.faults = {}    # key -> the minor page faults of each run(key), in order
        self.version = self._expect("ready")[len("ready"):].strip()

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
        _, seconds, _, faults = self._expect("seconds").split()
        self.faults.setdefault(key, []).append(float(faults))
        return float(seconds)

    def calibrate(self):
        self.proc.stdin.write("calibrate\n")
        self.proc.stdin.flush()
        _, seconds, _, faults = self._expect("seconds").split()
        return 1e3 * float(seconds), float(faults)

    def set_threads(self, threads):
        self.proc.stdin.write(f"threads {threads}\n")
        self.proc.stdin.flush()
        self._expect("ready")

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
    models = {}

    def model_at(threads):
        """The model timed at this thread count, built (ours) or switched (PyTorch's) and warmed up."""
        if side == "torch":
            if not models:
                models[0] = _TorchModel(cell, V, H, threads)
            models[0].torch.set_num_threads(threads)
            model = models[0]
        else:
            _set_threads(threads)
            if threads not in models:   # ours decides its paths per thread count (paths.plan)
                models[threads] = _OurModel(cell, V, H, params=next(iter(models.values())).model.params
                                            if models else None)
            model = models[threads]
        if threads not in warm:
            model.train_steps(windows[:2])
            model.eval_steps(windows[:2])
            warm.add(threads)
        return model

    warm = set()
    calibration = None
    model = model_at(threads)
    version = f"torch {model.torch.__version__}" if side == "torch" else "rnnlm"
    print("ready", version, flush=True)
    for line in sys.stdin:
        key = line.strip()
        if key.startswith("threads "):
            model = model_at(int(key.split()[1]))
            print("ready", version, flush=True)
            continue
        if key == "calibrate":
            calibration = calibration or _calibration_call(side)
            print("seconds {!r} faults {!r}".format(*_calibrate(calibration)), flush=True)
            continue
        run = {"train": model.train_steps, "eval": model.eval_steps}[key]
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        run(windows)
        seconds = time.perf_counter() - t0
        print(f"seconds {seconds!r} faults {resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}", flush=True)


def _worker_verdict(tries, earlier, faults=None, factor=SLOW_FACTOR, max_tries=WORKER_TRIES,
                    fault_limit=FAULT_LIMIT):
    """What to do after a row's worker calibrations: "more" (start another worker), "keep" (keep the
    best, _best_try) or "slow" (keep the best, and warn: every worker allowed was in the slow mode).

    tries: [(worker ms, ours ms)] of this row's workers, in order; faults: their page faults per call
    (None: not counted); earlier: the ratios (worker ms / ours ms) of every worker the run tried
    before this row. A try is slow when its ratio is more than factor x the smallest of all (earlier
    and tries) or it faulted more than fault_limit times per call. "keep" once a try is not slow and
    there is something to compare with: the run's first row needs two tries (one calibration alone
    is slow against nothing). Ratios, not ms: a busy machine slows both sides of a calibration,
    PyTorch's slow mode only its own; page faults are counted, not timed, so a busy machine leaves
    them alone.
    """
    ratios = [theirs / ours for theirs, ours in tries]
    faults = [0] * len(tries) if faults is None else faults
    best = min([*ratios, *earlier])
    if any(r <= factor * best and f <= fault_limit for r, f in zip(ratios, faults)) and \
            (len(earlier) > 0 or len(tries) >= 2):
        return "keep"
    return "more" if len(tries) < max_tries else "slow"


def _best_try(tries, faults, fault_limit=FAULT_LIMIT):
    """The index of the best of a row's tries: the smallest ratio among those within fault_limit,
    else the smallest ratio."""
    return min(range(len(tries)), key=lambda i: (faults[i] > fault_limit, tries[i][0] / tries[i][1]))


def _calibrated_worker(start, ours, earlier):
    """A worker whose calibration is not far slower than the run's best, and what was measured.

    start() -> a new worker (a _Worker); ours() -> our calibration ms, timed beside each worker's
    (each after IDLE_S of sleep); earlier: the ratios of the run's workers so far, extended here by
    this row's. Workers are started one at a time until _worker_verdict keeps one; all but the best
    (_best_try) are closed as soon as they are not. Returns (worker, fields for the record: see
    bench_one)."""
    tries, faults, kept = [], [], None
    try:
        while True:
            worker = start()
            time.sleep(IDLE_S)
            ours_ms = ours()
            time.sleep(IDLE_S)
            theirs_ms, theirs_faults = worker.calibrate()
            tries.append((theirs_ms, ours_ms))
            faults.append(round(theirs_faults))
            if _best_try(tries, faults) == len(tries) - 1:
                if kept is not None:
                    kept[1].close()
                kept = (len(tries) - 1, worker)
            else:
                worker.close()
            verdict = _worker_verdict(tries, earlier, faults)
            if verdict != "more":
                break
    except BaseException:
        if kept is not None:
            kept[1].close()
        raise
    # the ratios from the rounded figures the record keeps, so its best is the one its tries show
    shown = [[round(t, 3), round(o, 3)] for t, o in tries]
    earlier.extend(theirs / ours for theirs, ours in shown)
    theirs_ms, ours_ms = tries[kept[0]]
    return kept[1], {
        "calibration_ms": round(ours_ms, 3),
        "torch_calibration_ms": round(theirs_ms, 3),
        "torch_calibration_tries": shown,
        "torch_calibration_faults": faults,
        "torch_worker_kept": kept[0] + 1,
        "torch_calibration_best": round(min(earlier), 3),
        "torch_slow_mode": verdict == "slow",
    }


def _steps_for(V, H):
    """Enough windows per repeat for ~0.5-2 s of work, fewer for big configs."""
    work = V * H + 4 * H * H
    return int(np.clip(2e8 / (work * BATCH * BPTT) * 40, 3, 30))


def bench_one(cell, config, repeats=3, vs_torch=False, threads=2, torch_in_process=False, calibrations=None):
    """Time one (cell, config); returns the JSON record.

    Every record has calibration_ms: our calibration (ms, _calibration_call). With the PyTorch
    worker also: torch_calibration_ms (the kept worker's, and calibration_ms is ours beside it),
    torch_calibration_tries ([worker ms, ours ms] of each worker started for this row, in order),
    torch_calibration_faults (the minor page faults per calibration call of each of them),
    torch_worker_kept (1-based), torch_calibration_best (the smallest ratio worker / ours of the
    run so far), torch_slow_mode (every worker tried was far slower: see _worker_verdict) and
    torch_train_faults_per_window, torch_eval_faults_per_window (the kept worker's minor page faults
    in its timed runs, the median over repeats / windows per run: the slow mode's signature).
    calibrations: the ratios of the run's workers so far (run_bench shares one list over its rows;
    None: this row is the run's first).
    """
    V, H = CONFIGS[config]
    n = _steps_for(V, H)
    windows = _tokens(V, n)
    ours = _OurModel(cell, V, H)
    ours.train_steps(windows[:2])  # compile and warm up buffers
    ours.eval_steps(windows[:2])
    runs = [("train", _timed(ours.train_steps, windows)), ("eval", _timed(ours.eval_steps, windows))]
    worker, fields = None, None
    if vs_torch and torch_in_process:
        theirs = _TorchModel(cell, V, H, threads)
        theirs.train_steps(windows[:2])
        theirs.eval_steps(windows[:2])
        runs += [("torch_train", _timed(theirs.train_steps, windows)),
                 ("torch_eval", _timed(theirs.eval_steps, windows))]
    elif vs_torch:
        worker, fields = _calibrated_worker(lambda: _Worker(cell, config, n, threads), calibrate_ours,
                                            [] if calibrations is None else calibrations)
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
        record["torch_train_tokens_per_s"] = round(_median_rate(timings["torch_train"], tokens))
        record["torch_eval_tokens_per_s"] = round(_median_rate(timings["torch_eval"], tokens))
        if worker is not None:
            for kind in ("train", "eval"):
                record[f"torch_{kind}_faults_per_window"] = round(float(np.median(worker.faults[kind])) / n)
        for kind in ("train", "eval"):
            record[f"{kind}_ratio"], record[f"{kind}_ratio_range"] = _ratio(
                record[f"{kind}_tokens_per_s"], record[f"torch_{kind}_tokens_per_s"],
                timings[kind], timings["torch_" + kind])
    return record


def _interleave_then_close(runs, repeats, worker):
    """_interleave, then close the PyTorch worker (if any) whatever happened."""
    try:
        return _interleave(runs, repeats)
    finally:
        if worker is not None:
            worker.close()


def _interleave(runs, repeats):
    """{key: [seconds, one per repeat]}: each repeat calls every (key, timed_run) of runs
    in order, each after IDLE_S of sleep, so the sides alternate run by run."""
    timings = {key: [] for key, _ in runs}
    for _ in range(repeats):
        for key, timed_run in runs:
            time.sleep(IDLE_S)
            timings[key].append(timed_run())
    return timings


def _ratio(ours_rate, torch_rate, ours_times, torch_times):
    """(ours / torch of the median rates, [min, max] of the per-repeat ratios), rounded to 0.01.

    Each repeat times both sides back to back: on a shared machine the spread
    says how far one run's ratio can be trusted."""
    per_repeat = [t / o for o, t in zip(ours_times, torch_times)]
    return round(ours_rate / torch_rate, 2), [round(min(per_repeat), 2), round(max(per_repeat), 2)]


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


def _bars(progress: bool) -> bool:
    """Whether to draw progress bars: asked for and stderr is a terminal (as train's bars; a log file or a
    CI job's captured stderr gets none)."""
    return bool(progress) and sys.stderr.isatty()


def run_bench(cell="all", config="all", *, repeats, threads=None, vs_torch=False, torch_in_process=False,
              oversubscribe=False, progress=True, on_record=None) -> list[dict]:
    """The `bench` command's measurements: one record per (config, cell), in that order.

    cell / config: one name or "all". threads: for both sides (default DEFAULT_THREADS, at most the
    machine's cores); more than the machine's cores is refused unless oversubscribe, as --scaling's
    counts are. on_record(record) is called as each record is ready (the CLI's --json prints it at once).
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
    if threads is None:
        threads = min(DEFAULT_THREADS, machine_cores())
    if threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    check_thread_count(threads, "--threads", oversubscribe=oversubscribe)
    if torch_in_process and not vs_torch:
        raise UserError("--torch-in-process only applies with --vs-torch")
    from tqdm import tqdm

    _set_threads(threads)
    records, calibrations = [], []
    jobs = [(c, conf) for conf in configs for c in cells]
    for c, conf in tqdm(jobs, desc="bench", disable=not _bars(progress), leave=False, file=sys.stderr):
        rec = bench_one(c, conf, repeats=repeats, vs_torch=vs_torch,
                        threads=threads, torch_in_process=torch_in_process, calibrations=calibrations)
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
    calibration = format_calibration(records) if vs_torch else ""
    return "\n".join(lines + ([calibration] if calibration else []))


def slow_worker_rows(records) -> list[dict]:
    """The records (one per (config, cell)) whose kept worker's calibration ratio is more than
    SLOW_FACTOR x the best of all the workers these records tried, or that faulted more than
    FAULT_LIMIT times per call: rows timed against PyTorch's slow mode, found then
    (torch_slow_mode) or only by a faster worker of a later row."""
    rows = list({(r["config"], r["cell"]): r for r in records if "torch_calibration_tries" in r}.values())
    if not rows:
        return []
    best = min(t / o for r in rows for t, o in r["torch_calibration_tries"])
    return [r for r in rows if r["torch_calibration_ms"] / r["calibration_ms"] > SLOW_FACTOR * best
            or ("torch_calibration_faults" in r and r["torch_calibration_faults"][r["torch_worker_kept"] - 1]
                > FAULT_LIMIT)]


def format_calibration(records, threads=None) -> str:
    """The workers' calibrations, one line per (config, cell), and a WARNING line naming the rows
    timed against a slow worker; "" when the records have no worker calibration. threads: the
    count both sides calibrated at, when not the table's (bench --scaling: the smallest)."""
    rows = list({(r["config"], r["cell"]): r for r in records if "torch_calibration_tries" in r}.values())
    if not rows:
        return ""
    lines = [f"calibration: one {CAL_CONFIG} {CAL_CELL} evaluation window, median of {CAL_CALLS} calls, ms in each "
             "PyTorch worker started / ours beside it" + (f", at {threads} thread{'s' * (threads > 1)}" if threads
                                                           else "")
             + "; its page faults per call; the kept worker in [ ]"]
    for r in rows:
        faults = r.get("torch_calibration_faults") or [None] * len(r["torch_calibration_tries"])
        tries = [f"{t:.2f}/{o:.2f} = {t / o:.2f}x" + (f" {f:.0f} pf" if f is not None else "")
                 for (t, o), f in zip(r["torch_calibration_tries"], faults)]
        k = r["torch_worker_kept"] - 1
        tries[k] = f"[{tries[k]}]"
        timed = (f"; kept worker's timed eval {r['torch_eval_faults_per_window']} pf/window"
                 if "torch_eval_faults_per_window" in r else "")
        lines.append(f"  {r['config']:<7} {r['cell']:<5} " + ", ".join(tries) + timed)
    best = min(t / o for r in rows for t, o in r["torch_calibration_tries"])
    lines.append(f"a worker more than {SLOW_FACTOR}x the run's best ratio ({best:.2f}x), or with more than "
                 f"{FAULT_LIMIT} page faults per call, is replaced, up to {WORKER_TRIES} per row; the first row "
                 "tries 2 (PyTorch's slow mode: BENCHMARKS.md, Round 4)")
    slow = slow_worker_rows(records)
    if slow:
        lines.append(f"WARNING: {', '.join(r['config'] + ' ' + r['cell'] for r in slow)}: timed against a PyTorch "
                     f"worker in its slow mode (calibration more than {SLOW_FACTOR}x the best ratio or more than "
                     f"{FAULT_LIMIT} page faults per call; every try was slow, or a later row found a faster "
                     "one): those ratios flatter ours; rerun those rows")
    return "\n".join(lines)


def _ratio_cell(record, kind):
    lo, hi = record[f"{kind}_ratio_range"]
    return f"{record[kind + '_ratio']:.2f}x [{lo:.2f}-{hi:.2f}]"


# ---------------------------------------------------------------- bench --scaling

# The phases of a training step that `--scaling --breakdown` times, in table order, and what each holds.
PHASES = {
    "output": "output layer: logits, softmax cross-entropy, dlogits, dx, dW, dbias (layers.output_loss_and_grads)",
    "rec_fwd": "recurrent forward of every layer, its input projection included (the cell's forward)",
    "rec_bwd": "recurrent backward (BPTT), dW_ih, dW_hh, dbias and dx included (the cell's backward)",
    "embedding": "embedding forward and backward (layers.embedding_forward / _backward / clear_rows)",
    "clip_opt": "gradient norm, then the SGD update with norm clipping's factor (optim.grad_norm, SGD.step)",
    "other": "everything else: Python between the kernels, small NumPy ops, allocations",
}
PHASE_HEADS = {"output": "output", "rec_fwd": "rec fwd", "rec_bwd": "rec bwd", "embedding": "embed",
               "clip_opt": "clip+opt", "other": "other"}
# The phase sum of --breakdown against the step timed without hooks: outside this band the table warns.
BREAKDOWN_TOLERANCE = 0.10


def machine_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform says; else os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def parse_thread_counts(text: str, cores: int | None = None, oversubscribe: bool = False,
                        pool: int | None = None) -> list[int]:
    """'1,2,4' -> [1, 2, 4]: sorted, each once.

    UserError (one line) unless every item is an integer >= 1, at most Numba's
    pool and, without oversubscribe, at most `cores` (check_thread_count's defaults).
    """
    items = [x.strip() for x in str(text).split(",")]
    try:
        counts = sorted({int(x) for x in items})
    except ValueError:
        raise UserError(f"--scaling takes thread counts separated by commas, e.g. 1,2,4; got {text!r}") from None
    if counts[0] < 1:
        raise UserError(f"--scaling thread counts must be at least 1, got {counts[0]}")
    check_thread_count(counts[-1], "--scaling", cores=cores, oversubscribe=oversubscribe, pool=pool)
    return counts


def check_thread_count(n: int, flag: str, cores: int | None = None, oversubscribe: bool = False,
                       pool: int | None = None) -> None:
    """UserError (one line) when `n` threads is more than the machine's cores (default machine_cores())
    and not oversubscribe, or more than Numba's pool (default NUMBA_NUM_THREADS, fixed at start-up) at
    all. flag: the option the count came from (--threads, --scaling), named in the message."""
    import numba

    cores = machine_cores() if cores is None else cores
    pool = numba.config.NUMBA_NUM_THREADS if pool is None else pool
    if n > cores and not oversubscribe:
        raise UserError(f"{flag} {n}: this machine has {cores} cores; measure at most {cores} threads, "
                        "or add --oversubscribe to time more threads than cores")
    if n > pool:
        raise UserError(f"{flag} {n}: Numba's thread pool has {pool} threads (NUMBA_NUM_THREADS, fixed "
                        f"when the process starts); start the command with NUMBA_NUM_THREADS={n}")


def _at(threads, timed_run):
    """timed_run with our side (Numba's pool, NumPy's BLAS) moved to `threads` first, outside its timing."""
    def run():
        _set_threads(threads)
        return timed_run()
    return run


class _PhaseTimer:
    """Seconds per phase, summed over the calls of wrapped functions (the outermost call only)."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._depth = 0

    def wrap(self, phase, fn):
        def timed(*args, **kwargs):
            if self._depth:               # called from inside another timed phase: counted there
                return fn(*args, **kwargs)
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - t0
                self._depth -= 1
        return timed


@contextlib.contextmanager
def _phase_hooks(ours, timer):
    """Time the functions a training step (_OurModel.train_steps, the model's _bptt) calls, from
    outside: module functions and the model's cell are replaced by timing wrappers for the block
    and restored after it. Nothing in the kernels changes; the step runs its usual path.

    Where the plan overlaps the top LSTM layer with the output layer (paths.overlapped), the two
    fused calls of overlap.py are timed as the recurrent forward and backward."""
    from . import layers, optim, overlap

    model = ours.model
    hooks = [(layers, "output_loss_and_grads", "output"), (layers, "embedding_forward", "embedding"),
             (layers, "embedding_backward", "embedding"), (layers, "clear_rows", "embedding"),
             (overlap, "lstm_forward_and_output", "rec_fwd"), (overlap, "lstm_backward_and_output_dW", "rec_bwd"),
             (optim, "grad_norm", "clip_opt")]
    saved = [(module, name, getattr(module, name)) for module, name, _ in hooks]
    cell = model.cell
    try:
        for module, name, phase in hooks:
            setattr(module, name, timer.wrap(phase, getattr(module, name)))
        model.cell = cell._replace(forward=timer.wrap("rec_fwd", cell.forward),
                                   backward=timer.wrap("rec_bwd", cell.backward))
        ours.opt.step = timer.wrap("clip_opt", ours.opt.step)
        yield timer
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)
        model.cell = cell
        del ours.opt.step                 # the instance attribute; the class's method again


def _breakdown_run(ours, windows, out):
    """One pass of _OurModel.train_steps over windows with the phase hooks on: appends
    {phase: seconds} to out ("other" = the pass minus the hooked calls); returns the pass's seconds."""
    with _phase_hooks(ours, _PhaseTimer()) as timer:
        t0 = time.perf_counter()
        ours.train_steps(windows)
        total = time.perf_counter() - t0
    timer.seconds["other"] = total - sum(timer.seconds.values())
    out.append(timer.seconds)
    return total


def scaling_one(cell, config, threads, repeats=3, vs_torch=False, breakdown=False, n_windows=None,
                worker_side="torch", calibrations=None) -> list[dict]:
    """Time one (cell, config) at each thread count of `threads` (sorted); one record per count.

    Every repeat runs, for each thread count in turn: ours train, ours eval, then
    (vs_torch) PyTorch's train and eval in its worker moved to the same count, then
    (breakdown) one hooked pass of ours; the medians over repeats are reported. Ours
    keeps one model per thread count (shared weights), since a model fixes its fast
    paths for the thread count it first runs at (paths.plan). n_windows: windows per
    run (default _steps_for). worker_side "rnnlm" puts our model in the worker (tests).
    The calibration fields (bench_one's, without the timed runs' faults) are measured once, at
    threads[0], and repeated in every record; calibrations: as bench_one's.
    """
    V, H = CONFIGS[config]
    n = n_windows or _steps_for(V, H)
    windows = _tokens(V, n)
    ours, overlapped = {}, {}
    for t in threads:
        _set_threads(t)
        ours[t] = _OurModel(cell, V, H, params=ours[threads[0]].model.params if ours else None)
        ours[t].train_steps(windows[:2])  # compile, allocate the workspace at this thread count
        ours[t].eval_steps(windows[:2])
        overlapped[t] = bool(next(iter(ours[t].model._workspaces.values())).plan.overlapped)
    _set_threads(threads[0])
    if vs_torch:
        worker, fields = _calibrated_worker(lambda: _Worker(cell, config, n, threads[0], side=worker_side),
                                            calibrate_ours, [] if calibrations is None else calibrations)
    else:
        worker, fields = None, {"calibration_ms": round(calibrate_ours(), 3)}
    phases = {t: [] for t in threads}

    def on_worker(t, key):
        def run():
            worker.set_threads(t)
            return worker.run(key)
        return run

    runs = []
    for t in threads:
        runs += [((t, "train"), _at(t, _timed(ours[t].train_steps, windows))),
                 ((t, "eval"), _at(t, _timed(ours[t].eval_steps, windows)))]
        if vs_torch:
            runs += [((t, "torch_train"), on_worker(t, "train")), ((t, "torch_eval"), on_worker(t, "eval"))]
        if breakdown:
            runs.append(((t, "breakdown"), _at(t, lambda t=t: _breakdown_run(ours[t], windows, phases[t]))))
    timings = _interleave_then_close(runs, repeats, worker)
    tokens = n * BATCH * BPTT
    records = []
    for t in threads:
        rec = {"config": config, "cell": cell, "V": V, "E": H, "H": H, "B": BATCH, "T": BPTT, "threads": t,
               "windows": n, "repeats": repeats,
               "train_tokens_per_s": round(_median_rate(timings[t, "train"], tokens)),
               "eval_tokens_per_s": round(_median_rate(timings[t, "eval"], tokens)), **fields}
        if vs_torch:
            rec["torch"] = worker.version
            for kind in ("train", "eval"):
                rec[f"torch_{kind}_tokens_per_s"] = round(_median_rate(timings[t, "torch_" + kind], tokens))
                rec[f"{kind}_ratio"], rec[f"{kind}_ratio_range"] = _ratio(
                    rec[f"{kind}_tokens_per_s"], rec[f"torch_{kind}_tokens_per_s"],
                    timings[t, kind], timings[t, "torch_" + kind])
        if breakdown:
            rec["overlapped"] = overlapped[t]
            rec["step_ms"] = 1000 * float(np.median(timings[t, "train"])) / n
            rec["hooked_step_ms"] = 1000 * float(np.median(timings[t, "breakdown"])) / n
            rec["phase_ms"] = {p: 1000 * float(np.median([r[p] for r in phases[t]])) / n for p in PHASES}
        records.append(rec)
    return add_efficiency(records)


def add_efficiency(records) -> list[dict]:
    """Parallel efficiency and phase speedups of one (config, cell)'s records (sorted by threads).

    efficiency at n = tok/s at n / (n/n0 × tok/s at n0), n0 the smallest count (1 when
    measured); the same for PyTorch's figures; phase_speedup = phase ms at n0 / at n
    (None where the phase took no time). Returns the records, updated in place."""
    base = records[0]
    n0 = base["threads"]
    for rec in records:
        rec["efficiency_from"] = n0
        scale = rec["threads"] / n0
        for side in ("", "torch_"):
            for kind in ("train", "eval"):
                key = f"{side}{kind}_tokens_per_s"
                if key in rec:
                    rec[f"{side}{kind}_efficiency"] = round(rec[key] / (scale * base[key]), 3)
        if "phase_ms" in rec:
            rec["phase_speedup"] = {p: (round(base["phase_ms"][p] / ms, 2) if ms > 0 and base["phase_ms"][p] > 0
                                        else None) for p, ms in rec["phase_ms"].items()}
    return records


def run_scaling(cell="all", config="all", *, threads, repeats, vs_torch=False, breakdown=False,
                oversubscribe=False, progress=True, on_record=None, n_windows=None) -> list[dict]:
    """The `bench --scaling` measurements: records per (config, cell), each with one per thread count.

    threads: the --scaling text ("1,2,4") or a list of ints. on_record(record) is called for
    each record as its (config, cell) is done (the CLI's --json prints it at once).
    """
    counts = parse_thread_counts(",".join(map(str, threads)) if not isinstance(threads, str) else threads,
                                 oversubscribe=oversubscribe)
    cells = CELLS if cell in (None, "all") else (cell,)
    configs = list(CONFIGS) if config in (None, "all") else [config]
    for c in configs:
        if c not in CONFIGS:
            raise UserError(f"unknown config {c!r}; choose from {', '.join(CONFIGS)} or all")
    if vs_torch and importlib.util.find_spec("torch") is None:
        raise UserError("--vs-torch needs PyTorch importable in this Python "
                        "(it is never a dependency: install it in a separate venv)")
    from tqdm import tqdm

    records, calibrations = [], []
    jobs = [(c, conf) for conf in configs for c in cells]
    for c, conf in tqdm(jobs, desc="bench --scaling", disable=not _bars(progress), leave=False, file=sys.stderr):
        for rec in scaling_one(c, conf, counts, repeats=repeats, vs_torch=vs_torch, breakdown=breakdown,
                               n_windows=n_windows, calibrations=calibrations):
            records.append(rec)
            if on_record is not None:
                on_record(rec)
    return records


def format_scaling_table(records, vs_torch) -> str:
    """One line per (config, cell, threads): tokens/s, PyTorch's and the ratios, parallel efficiency."""
    if not records:
        return ""
    n0 = records[0]["efficiency_from"]
    head = f"{'config':<7} {'cell':<5} {'threads':>7}"
    for kind in ("train", "eval"):
        head += f" {kind + ' tok/s':>12}"
        if vs_torch:
            head += f" {'torch ' + kind:>12} {'ratio [per repeat]':>19}"
        head += f" {'eff':>5}"
    lines = [head]
    for r in records:
        line = f"{r['config']:<7} {r['cell']:<5} {r['threads']:>7}"
        for kind in ("train", "eval"):
            line += f" {r[kind + '_tokens_per_s']:>12,}"
            if vs_torch:
                line += f" {r['torch_' + kind + '_tokens_per_s']:>12,} {_ratio_cell(r, kind):>19}"
            line += f" {r[kind + '_efficiency']:>5.2f}"
        lines.append(line)
    if n0 == 1:
        lines.append("eff: parallel efficiency, tok/s at n threads / (n x tok/s at 1 thread)")
    else:
        lines.append(f"eff: parallel efficiency relative to {n0} threads, the smallest count given (1 is not in "
                     f"--scaling): tok/s at n / (n/{n0} x tok/s at {n0})")
    if vs_torch:
        lines.append("ratio: ours / PyTorch's at the same thread count (" + records[0]["torch"] + ")")
    return "\n".join(lines)


def format_breakdown(records) -> str:
    """ms per training step in each phase, each with its speedup from the smallest thread count."""
    if not records:
        return ""
    n0 = records[0]["efficiency_from"]
    lines = [f"per training step, ms in each phase [speedup from {n0} thread{'s' * (n0 > 1)}]; sum: the phases; "
             "whole: the step timed without hooks"]
    head = f"{'config':<7} {'cell':<5} {'threads':>7}" + "".join(f" {PHASE_HEADS[p]:>16}" for p in PHASES)
    lines.append(head + f" {'sum':>9} {'whole':>9} {'sum/whole':>9}")
    off, fused = 0, []
    for r in records:
        line = f"{r['config']:<7} {r['cell']:<5} {r['threads']:>7}"
        for p in PHASES:
            s = r["phase_speedup"][p]
            line += f" {r['phase_ms'][p]:>8.2f} {'[' + format(s, '.2f') + 'x]' if s is not None else '':>7}"
        total = sum(r["phase_ms"].values())
        ratio = total / r["step_ms"]
        off += abs(ratio - 1) > BREAKDOWN_TOLERANCE
        mark = "*" if r["overlapped"] else ""
        lines.append(line + f" {total:>9.2f} {r['step_ms']:>9.2f} {ratio:>9.2f}{mark}")
        if r["overlapped"]:
            fused.append(f"{r['config']} {r['cell']} {r['threads']}")
    lines += [f"  {PHASE_HEADS[p]}: {what}" for p, what in PHASES.items()]
    if fused:
        lines.append(f"* ({', '.join(fused)} threads) the top LSTM layer runs beside the output layer (overlap.py): "
                     "the output layer's time is inside rec fwd and rec bwd in these rows")
    if off:
        lines.append(f"WARNING: in {off} row(s) the phases sum to more than {BREAKDOWN_TOLERANCE:.0%} away from the "
                     "whole step: the machine was busy between the two runs; rerun with more --repeats")
    return "\n".join(lines)


def format_scaling_footer(records) -> str:
    """The workers' calibrations (format_calibration, with --vs-torch), how the threads were set, and
    the machine: the last lines of `bench --scaling`."""
    import numba

    from ._blas import blas_threads

    blas = "NumPy's OpenBLAS set to the same count" if blas_threads().get("numpy") is not None \
        else "NumPy's BLAS not OpenBLAS: left at its own setting"
    torch = (f"; PyTorch ({records[0]['torch']}) in a worker process, torch.set_num_threads(n)"
             if records and "torch" in records[0] else "")
    calibration = format_calibration(records, threads=records[0]["threads"]) if records else ""
    return ((calibration + "\n" if calibration else "") +
            f"threads: ours numba.set_num_threads(n) (pool of NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, "
            f"{numba.threading_layer() if _numba_pool_started() else 'pool not started'}), {blas}, SciPy's "
            f"OpenBLAS (Numba's np.dot) held at 1 inside our kernels{torch}; this machine: {machine_cores()} cores"
            f"\npeak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
            "(this process: ours at every thread count)")


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
