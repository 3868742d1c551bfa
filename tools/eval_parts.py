"""Where one evaluation window's time goes, ours and PyTorch's: whole window, recurrence, output layer.

    python tools/eval_parts.py --config tiny --threads 2            # ours
    python tools/eval_parts.py --config tiny --threads 2 --torch    # PyTorch's (a Python that imports torch)

Run the two interleaved, several times, on a quiet machine (BENCHMARKS.md, Round 4, has one such
sitting). One window is bench.py's: B = 32, T = 35, E = H, random token ids, a zero state.

Ours: `RNNModel.loss` (the whole window), the model's `_forward` alone (embedding, input
projection, the T steps) and `layers.output_loss` alone (logits and cross-entropy), then the output
layer's product alone (`pblas.matmul`). PyTorch's: pytorch/examples' model as bench.py builds it
under `torch.no_grad()`: the whole window (embedding, recurrence, Linear, CrossEntropyLoss), the
embedding and recurrence alone, and on the output layer's shapes Linear + CrossEntropyLoss,
`torch.mm` alone and CrossEntropyLoss alone. Milliseconds, the median of --calls calls after 5
warm-up calls. Nothing is asserted: it prints.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's rnnlm


def _median_ms(f, calls, warmup=5):
    """Milliseconds, the median of `calls` calls of f after `warmup` untimed ones."""
    for _ in range(warmup):
        f()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return round(float(np.median(times)) * 1e3, 3)


def ours(config, threads, calls):
    import numba
    from rnnlm import bench, layers, pblas
    from rnnlm._blas import set_numpy_threads

    numba.set_num_threads(threads)
    set_numpy_threads(threads)
    V, H = bench.CONFIGS[config]
    w = np.random.default_rng(0).integers(0, V, (bench.BPTT + 1, bench.BATCH)).astype(np.int64)
    for cell in ("rnn", "lstm", "gru"):
        m = bench._OurModel(cell, V, H).model
        state = m.init_state(bench.BATCH)
        res = {"whole": _median_ms(lambda: m.loss(w[:-1], w[1:], state), calls)}
        ids, tgt, s, masks = m._prepare(w[:-1], w[1:], state, None)
        ws = m._workspace(*ids.shape)
        res["recurrence"] = _median_ms(lambda: m._forward(ids, s, masks, ws), calls)
        top, _ = m._forward(ids, s, masks, ws)
        x = top.reshape(ids.size, H).copy()
        logits = np.empty((ids.size, V), np.float32)
        W, b = m._decoder_weight(), m.params["decoder.bias"]
        res["output layer"] = _median_ms(lambda: layers.output_loss(logits, x, W, b, tgt), calls)
        res["output product"] = _median_ms(lambda: pblas.matmul(logits, x, W.T), calls)
        print("ours", config, cell, res, flush=True)


def theirs(config, threads, calls):
    import torch
    from rnnlm import bench

    torch.set_num_threads(threads)
    V, H = bench.CONFIGS[config]
    B, T = bench.BATCH, bench.BPTT
    w = torch.from_numpy(np.random.default_rng(0).integers(0, V, (T + 1, B)))
    loss_fn = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        for cell in ("rnn", "lstm", "gru"):
            torch.manual_seed(0)
            enc = torch.nn.Embedding(V, H)
            rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](H, H, 1)
            dec = torch.nn.Linear(H, V)
            h0 = torch.zeros(1, B, H)
            state = (h0, h0.clone()) if cell == "lstm" else h0

            def recurrence():
                return rnn(enc(w[:-1]), state)[0]

            def whole():
                return loss_fn(dec(recurrence()).view(-1, V), w[1:].reshape(-1))

            res = {"whole": _median_ms(whole, calls), "recurrence": _median_ms(recurrence, calls)}
            print("torch", config, cell, res, flush=True)
        x, tgt = torch.randn(T * B, H), w[1:].reshape(-1)
        W, b = torch.randn(V, H) * 0.1, torch.zeros(V)
        out = torch.empty(T * B, V)
        logits = torch.nn.functional.linear(x, W, b)
        print("torch", config, "output layer", {
            "linear + cross-entropy": _median_ms(lambda: loss_fn(torch.nn.functional.linear(x, W, b), tgt), calls),
            "mm": _median_ms(lambda: torch.mm(x, W.T, out=out), calls),
            "cross-entropy": _median_ms(lambda: loss_fn(logits, tgt), calls)}, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny", help="tiny | small | medium | large (bench.CONFIGS)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--torch", action="store_true", help="time PyTorch's side instead of ours")
    a = p.parse_args()
    (theirs if a.torch else ours)(a.config, a.threads, a.calls)


if __name__ == "__main__":
    main()
