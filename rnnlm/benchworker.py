"""The benchmark's harness: the models both sides time, the PyTorch worker process, its calibration.

bench.py (one row per cell and config) and benchscaling.py (the same at
several thread counts) time through these pieces only: `_OurModel` and
`_TorchModel` build the same model on each side and time a training step or
an evaluation window over the same token windows; `_Worker` runs a model in
a child process (PyTorch there, never in ours: two OpenMP runtimes in one
process slow both sides); `_calibrated_worker` replaces a worker that runs
in PyTorch's slow mode (`_worker_verdict` decides, from the calibrations);
`_interleave` times each side in turn, repeat by repeat, after a pause.
The thread-count checks (`check_thread_count`, `parse_thread_counts`) and
`_set_threads` are here too.

The one thing to know before editing: every timed run goes through
`_interleave` and every PyTorch worker through `_calibrated_worker`, and the
step timed on our side is step.train_step, the one a user's training runs,
so that a ratio compares what each side's user pays. Nothing here asserts:
the bench prints.
"""
from __future__ import annotations

import importlib.util
import os
import resource
import subprocess
import sys
import time

import numpy as np

from . import config as C
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
# A calibration ratio (PyTorch's ms / ours) above CAL_LIMIT is slow whatever the run's best: a run's
# first row has no reference, and on a loaded machine PyTorch's threads lose far more than ours (a
# trial under load: two workers at 3.1x and 3.5x, kept as each other's reference, then a training
# ratio of 47x). Quiet, fast workers calibrated at 0.93-1.56x ours and slow ones at 2.3-3.1x (1 Dec).
CAL_LIMIT = 2.0
# PyTorch's side frees and allocates again, every window, buffers of 9 MB (tiny logits) to 130 MB (large),
# and glibc's malloc by default hands large freed blocks back to the OS (a block above its mmap threshold,
# a heap top above its trim threshold), so the next window touches them afresh: 2,000-3,300 minor page
# faults per tiny training window, 44,000 per small one, costing PyTorch 13-49% of its training time and
# 73% of its small evaluation (BENCHMARKS.md, Round 6). PyTorch's CPU performance tuning guide has users
# switch to an allocator that keeps freed memory for reuse (jemalloc, TCMalloc); TORCH_MALLOC "kept" does
# the same with glibc's own settings (mallopt, `keep_freed_memory`) in the process that runs PyTorch, so
# that it is timed at its best. "default" leaves glibc as it is (the comparison then flatters ours).
TORCH_MALLOC = C.TORCH_MALLOC
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4     # mallopt's parameters (glibc's malloc.h)
KEPT_TRIM_BYTES = 1 << 30


def keep_freed_memory() -> str:
    """Make glibc's malloc in this process keep the memory it frees for reuse: no block from mmap
    (M_MMAP_MAX 0: every block from the heap) and no heap trimmed below 1 GiB (M_TRIM_THRESHOLD).
    Returns what it set, or why it set nothing (not glibc: macOS, musl). Source: mallopt(3)."""
    import ctypes
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "the platform's malloc (no mallopt)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(_M_MMAP_MAX, 0) != 1 or mallopt(_M_TRIM_THRESHOLD, KEPT_TRIM_BYTES) != 1:
        return "the platform's malloc (mallopt refused)"
    return "freed memory kept for reuse (glibc mallopt: M_MMAP_MAX 0, M_TRIM_THRESHOLD 1 GiB)"


def malloc_setting(mode: str) -> str:
    """Apply --torch-malloc `mode` to this process (TORCH_MALLOC); returns the record's torch_malloc."""
    return keep_freed_memory() if mode == "kept" else "glibc's defaults (large freed blocks go back to the OS)"


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
    `version` is what it runs (e.g. "torch 2.13.0+cpu"), `malloc` its allocator's setting (malloc: a
    TORCH_MALLOC mode, applied in the worker before its model is built); `calibrate()` times
    the calibration there: (ms, minor page faults per call) of
    _calibration_call of its side, at its thread count.

    The protocol is a line each way on the child's stdin/stdout (no pickle)."""

    def __init__(self, cell, config, n, threads, side="torch", malloc="kept"):
        code = "from rnnlm.benchworker import _worker_main; _worker_main()"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PROJECT_ROOT, os.environ.get("PYTHONPATH")])))
        self.side = side
        self.proc = subprocess.Popen([sys.executable, "-c", code, side, cell, config, str(n), str(threads), malloc],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.faults = {}    # key -> the minor page faults of each run(key), in order
        # "ready VERSION<tab>MALLOC": what it runs, and its allocator's setting (malloc_setting)
        self.version, _, self.malloc = self._expect("ready")[len("ready"):].strip().partition("\t")

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

    def close(self, at_once=False):
        """Close its stdin (it ends after the run in hand) and wait for it; at_once (the bench is being
        stopped): end it now (SIGTERM, which it leaves to the default action: no traceback)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:   # the child is gone already
                pass
            if at_once:
                self.proc.terminate()
        self.proc.wait(timeout=60)


_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker_main():
    """The child side of _Worker: argv side, cell, config, n windows, threads, malloc (TORCH_MALLOC)."""
    import signal
    # A terminal's Ctrl-C reaches this process too: the bench that started it ends it (_Worker.close), so
    # it prints no traceback of its own and does not outlive the bench.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    side, cell, config, n, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    malloc = malloc_setting(sys.argv[6])
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
    print("ready", f"{version}\t{malloc}", flush=True)
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
    and tries) or more than CAL_LIMIT, or it faulted more than fault_limit times per call. "keep" once
    a try is not slow and
    there is something to compare with: the run's first row needs two tries (one calibration alone
    is slow against nothing). Ratios, not ms: a busy machine slows both sides of a calibration,
    PyTorch's slow mode only its own; page faults are counted, not timed, so a busy machine leaves
    them alone.
    """
    ratios = [theirs / ours for theirs, ours in tries]
    faults = [0] * len(tries) if faults is None else faults
    best = min([*ratios, *earlier])
    if any(r <= factor * best and r <= CAL_LIMIT and f <= fault_limit for r, f in zip(ratios, faults)) and \
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
            kept[1].close(at_once=True)
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


def _interleave_then_close(runs, repeats, worker):
    """_interleave, then close the PyTorch worker (if any) whatever happened (at once when stopped)."""
    try:
        return _interleave(runs, repeats)
    except BaseException:
        if worker is not None:
            worker.close(at_once=True)
            worker = None
        raise
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


def _bars(progress: bool) -> bool:
    """Whether to draw progress bars: asked for and stderr is a terminal a bar can be drawn on (as train's
    bars, `runs.stderr_is_terminal`; a log file or a CI job's captured stderr gets none)."""
    from .runs import stderr_is_terminal
    return bool(progress) and stderr_is_terminal()


def _each(items, desc: str, progress: bool, name=str):
    """Yield `items` with a bar counting them on a terminal; in a log (progress asked for, no terminal)
    one line "DESC: NAME (i of n)" on stderr as each starts, so that minutes of timing do not look hung."""
    items = list(items)
    if _bars(progress):
        from tqdm import tqdm
        yield from tqdm(items, desc=desc, leave=False, file=sys.stderr)
        return
    for i, item in enumerate(items, 1):
        if progress:
            print(f"{desc}: {name(item)} ({i} of {len(items)})", file=sys.stderr, flush=True)
        yield item


def _set_threads(threads):
    """Give our side the thread count PyTorch gets: NumPy's BLAS and Numba's pool.

    The per-step products of the recurrence always run on one BLAS thread
    (see _blas.py); only the big products and the cross-entropy use `threads`.
    """
    import numba

    from ._blas import set_numpy_threads

    set_numpy_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _numba_pool_started():
    import numba

    try:
        numba.threading_layer()
        return True
    except ValueError:
        return False


def slow_worker_rows(records) -> list[dict]:
    """The records (one per (config, cell)) whose kept worker's calibration ratio is more than
    SLOW_FACTOR x the best of all the workers these records tried, or that are slow by their own
    evidence (slow_by_itself: CAL_LIMIT, page faults in the calibration or the timed runs): rows
    timed against PyTorch's slow mode, found then (torch_slow_mode) or only by a faster worker of a
    later row."""
    rows = list({(r["config"], r["cell"]): r for r in records if "torch_calibration_tries" in r}.values())
    if not rows:
        return []
    best = min(t / o for r in rows for t, o in r["torch_calibration_tries"])
    return [r for r in rows if r["torch_calibration_ms"] / r["calibration_ms"] > SLOW_FACTOR * best
            or slow_by_itself(r)]


def slow_by_itself(record) -> bool:
    """Whether a record was timed against PyTorch's slow mode by its own evidence: every worker tried
    was slow (torch_slow_mode as calibrated), or the kept one's calibration was more than CAL_LIMIT x
    ours or faulted more than FAULT_LIMIT times per call, or its timed runs did per window
    (timed_faults). bench_one and scaling_one store it as the record's torch_slow_mode."""
    if "torch_calibration_tries" not in record:
        return False
    kept = record["torch_worker_kept"] - 1
    faults = record.get("torch_calibration_faults")
    return bool(record.get("torch_slow_mode")
                or record["torch_calibration_ms"] / record["calibration_ms"] > CAL_LIMIT
                or (faults is not None and faults[kept] > FAULT_LIMIT) or timed_faults(record) > FAULT_LIMIT)


def timed_faults(record) -> int:
    """The kept worker's minor page faults per window in its timed training and evaluation runs, the
    larger (0 when not recorded): PyTorch's memory handed back to the OS and touched afresh."""
    return max(record.get("torch_train_faults_per_window", 0), record.get("torch_eval_faults_per_window", 0))


def format_calibration(records, threads=None) -> str:
    """The workers' calibrations, one line per (config, cell), PyTorch's allocator, and a WARNING line
    naming the rows timed against a slow worker; "" when the records have neither a worker calibration
    nor an allocator (no --vs-torch). threads: the count both sides calibrated at, when not the
    table's (bench --scaling: the smallest)."""
    # torch_malloc_detail: what was set, in words (a record's torch_malloc is the flag's value)
    mallocs = sorted({(r.get("torch_malloc_detail") or r["torch_malloc"])
                      + (" (in this process: ours too)" if r.get("torch_process") == "same" else "")
                      for r in records if r.get("torch_malloc")})
    allocator = [f"PyTorch's allocator (--torch-malloc): {'; '.join(mallocs)}"] if mallocs else []
    rows = list({(r["config"], r["cell"]): r for r in records if "torch_calibration_tries" in r}.values())
    if not rows:
        return "\n".join(allocator)
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
        timed = ", ".join(f"{kind} {r[f'torch_{kind}_faults_per_window']}" for kind in ("train", "eval")
                          if f"torch_{kind}_faults_per_window" in r)
        timed = f"; kept worker's timed {timed} pf/window" if timed else ""
        lines.append(f"  {r['config']:<7} {r['cell']:<5} " + ", ".join(tries) + timed)
    best = min(t / o for r in rows for t, o in r["torch_calibration_tries"])
    lines.append(f"a worker more than {SLOW_FACTOR}x the run's best ratio ({best:.2f}x) or {CAL_LIMIT:g}x ours, or "
                 f"with more than {FAULT_LIMIT} page faults per call, is replaced, up to {WORKER_TRIES} per row; the "
                 "first row tries 2 (PyTorch's slow mode: BENCHMARKS.md, Round 4)")
    lines += allocator
    slow = slow_worker_rows(records)
    if slow:
        lines.append(f"WARNING: {', '.join(r['config'] + ' ' + r['cell'] for r in slow)}: timed against a PyTorch "
                     f"worker in its slow mode (calibration more than {SLOW_FACTOR}x the best ratio or "
                     f"{CAL_LIMIT:g}x ours, or more than {FAULT_LIMIT} page faults per call or per timed window; "
                     "every try was slow, a later row found a faster one, or its memory went back to the OS while "
                     "timed (--torch-malloc default)): those ratios flatter ours; rerun those rows")
    return "\n".join(lines)


def _ratio_cell(record, kind):
    lo, hi = record[f"{kind}_ratio_range"]
    return f"{record[kind + '_ratio']:.2f}x [{lo:.2f}-{hi:.2f}]"


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


def check_torch() -> None:
    """UserError (one line) unless PyTorch is importable by this Python, which --vs-torch's worker runs on.
    Found, not imported: in the worker harness our own process never loads PyTorch's runtime."""
    if importlib.util.find_spec("torch") is None:
        raise UserError("--vs-torch needs PyTorch in the Python that runs rnnlm, and PyTorch is never a "
                        "dependency: make a venv of its own with both (pip install -e . torch) and run "
                        "the bench with that venv's python")


def selection(cell, config) -> tuple[tuple, list]:
    """(cells, configs) a bench run times: one name or "all" (None: all) each; UserError for an unknown config."""
    cells = CELLS if cell in (None, "all") else (cell,)
    configs = list(CONFIGS) if config in (None, "all") else [config]
    for c in configs:
        if c not in CONFIGS:
            raise UserError(f"unknown config {c!r}; choose from {', '.join(CONFIGS)} or all")
    return cells, configs
