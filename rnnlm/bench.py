"""The speed benchmark: training and inference tokens/s per cell and config.

Machines here are shared and noisy, so figures are medians of several repeats,
and when PyTorch is importable (`--vs-torch`; never a dependency) its model is
timed in the same process, interleaved repeat by repeat with ours, so that the
printed ratio compares like with like. Nothing here is asserted: it prints.

The training step timed is the whole step a user pays for: forward, BPTT,
global-norm clipping and an SGD update, with the hidden state carried across
windows (the pytorch/examples loop). Inference is the forward and loss only.
"""
from __future__ import annotations

import json
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


def _tokens(V, n_windows, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, size=(n_windows, BPTT + 1, BATCH)).astype(np.int64)


def _median_rate(times, tokens):
    return tokens / float(np.median(times))


class _OurModel:
    """One rnnlm model plus the buffers a timed step needs."""

    def __init__(self, cell, V, H):
        from .model import ModelConfig, RNNModel
        from .optim import clip_grad_norm

        self.model = RNNModel(ModelConfig(vocab_size=V, cell=cell, emsize=H, hidden=H), seed=0)
        self.clip = clip_grad_norm
        self.state = self.model.init_state(BATCH)

    def train_steps(self, windows):
        model, params = self.model, self.model.params
        for w in windows:
            loss, grads, self.state = model.loss_and_grads(w[:-1], w[1:], self.state)
            self.clip(grads, CLIP)
            for name, g in grads.items():
                params[name] -= LR * g

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


def _steps_for(V, H):
    """Enough windows per repeat for ~0.5-2 s of work, fewer for big configs."""
    work = V * H + 4 * H * H
    return int(np.clip(4e8 / (work * BATCH * BPTT) * 40, 3, 40))


def bench_one(cell, config, repeats=3, vs_torch=False, threads=2):
    """Time one (cell, config); returns the JSON record."""
    V, H = CONFIGS[config]
    n = _steps_for(V, H)
    windows = _tokens(V, n)
    ours = _OurModel(cell, V, H)
    ours.train_steps(windows[:2])  # compile and warm up buffers
    ours.eval_steps(windows[:2])
    theirs = None
    if vs_torch:
        theirs = _TorchModel(cell, V, H, threads)
        theirs.train_steps(windows[:2])
        theirs.eval_steps(windows[:2])
    timings = {"train": [], "eval": [], "torch_train": [], "torch_eval": []}
    for _ in range(repeats):
        for key, runner in (("train", ours.train_steps), ("eval", ours.eval_steps)):
            t0 = time.perf_counter()
            runner(windows)
            timings[key].append(time.perf_counter() - t0)
        if theirs is not None:
            for key, runner in (("torch_train", theirs.train_steps), ("torch_eval", theirs.eval_steps)):
                t0 = time.perf_counter()
                runner(windows)
                timings[key].append(time.perf_counter() - t0)
    tokens = n * BATCH * BPTT
    record = {
        "cell": cell, "config": config, "V": V, "E": H, "H": H, "B": BATCH, "T": BPTT,
        "train_tokens_per_s": round(_median_rate(timings["train"], tokens)),
        "eval_tokens_per_s": round(_median_rate(timings["eval"], tokens)),
        "repeats": repeats,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if theirs is not None:
        record["torch_train_tokens_per_s"] = round(_median_rate(timings["torch_train"], tokens))
        record["torch_eval_tokens_per_s"] = round(_median_rate(timings["torch_eval"], tokens))
        record["train_ratio"] = round(record["train_tokens_per_s"] / record["torch_train_tokens_per_s"], 2)
        record["eval_ratio"] = round(record["eval_tokens_per_s"] / record["torch_eval_tokens_per_s"], 2)
    return record


_COMPILE_PROBE = """
import time
t0 = time.perf_counter()
import numpy as np
from rnnlm.model import ModelConfig, RNNModel
rng = np.random.default_rng(0)
x = rng.integers(0, 50, size=(6, 3))
for cell in ("rnn", "lstm", "gru"):
    m = RNNModel(ModelConfig(vocab_size=50, cell=cell, emsize=8, hidden=8), seed=0)
    s = m.init_state(3)
    m.loss_and_grads(x[:-1], x[1:], s)
    m.loss(x[:-1], x[1:], s)
print(time.perf_counter() - t0)
"""


def compile_times():
    """Seconds to import and run every cell once, with an empty and a warm Numba cache."""
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        out = {}
        for label in ("cold", "warm"):
            res = subprocess.run([sys.executable, "-c", _COMPILE_PROBE], env=env,
                                 capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise RuntimeError(f"compile probe failed: {res.stderr.strip().splitlines()[-1:]}")
            out[label] = float(res.stdout.strip().splitlines()[-1])
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


def run_bench_command(args) -> int:
    cells = CELLS if args.cell in (None, "all") else (args.cell,)
    configs = list(CONFIGS) if args.config in (None, "all") else [args.config]
    for c in configs:
        if c not in CONFIGS:
            raise UserError(f"unknown config {c!r}; choose from {', '.join(CONFIGS)} or all")
    if args.vs_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UserError("--vs-torch needs PyTorch importable in this Python "
                            "(it is never a dependency: install it in a separate venv)") from None
    from tqdm import tqdm

    records = []
    jobs = [(cell, config) for config in configs for cell in cells]
    for cell, config in tqdm(jobs, desc="bench", disable=args.json, leave=False):
        rec = bench_one(cell, config, repeats=args.repeats, vs_torch=args.vs_torch,
                        threads=args.threads)
        records.append(rec)
        if args.json:
            print(json.dumps(rec), flush=True)
    if args.json:
        return 0
    _print_table(records, args.vs_torch)
    if args.compile:
        ct = compile_times()
        print(f"\nNumba compile, all three cells (import + first step): "
              f"empty cache {ct['cold']:.1f} s, warm cache {ct['warm']:.1f} s")
    if args.jacobian:
        jt = jacobian_times()
        print("\nJacobian lag curve, H=256, D=100, 32 anchors, spectral + Frobenius: "
              + ", ".join(f"{c} {t:.1f} s" for c, t in jt.items()))
    print(f"\npeak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


def _print_table(records, vs_torch):
    head = f"{'config':<7} {'cell':<5} {'V':>6} {'H':>4} {'train tok/s':>12} {'eval tok/s':>11}"
    if vs_torch:
        head += f" {'torch train':>12} {'ratio':>6} {'torch eval':>11} {'ratio':>6}"
    print(head)
    for r in records:
        line = (f"{r['config']:<7} {r['cell']:<5} {r['V']:>6} {r['H']:>4} "
                f"{r['train_tokens_per_s']:>12,} {r['eval_tokens_per_s']:>11,}")
        if vs_torch:
            line += (f" {r['torch_train_tokens_per_s']:>12,} {r['train_ratio']:>5.2f}x"
                     f" {r['torch_eval_tokens_per_s']:>11,} {r['eval_ratio']:>5.2f}x")
        print(line)
