"""What keeping the last good training state costs per step (loopstate.LastGood), at bench.py's tiny and small.

    python tools/rollback_cost.py [--steps 30] [--configs tiny,small] [--cell lstm] [--optimizer sgd]

Times, on the same windows (B = 32, T = 35, E = H, global-norm clipping 0.25), a training step
(step.train_step) and one `LastGood.take` (the copy of the parameters and optimizer buffers made
before each update), and prints the median of each and their ratio. Nothing is asserted: it prints.
"""
import argparse
import statistics
import time

import numpy as np

from rnnlm.bench import CONFIGS
from rnnlm.config import TrainConfig
from rnnlm.model import ModelConfig, RNNModel
from rnnlm.optim import make_optimizer
from rnnlm.loopstate import LastGood, LoopState
from rnnlm.step import train_step


def measure(config: str, cell: str, optimizer: str, steps: int) -> dict:
    V, H = CONFIGS[config]
    B, T = 32, 35
    model = RNNModel(ModelConfig(cell=cell, vocab_size=V, emsize=H, hidden=H, dropout=0.0), seed=0)
    opt = make_optimizer(optimizer, model.params, None)
    cfg = TrainConfig(bptt=T, batch_size=B, optimizer=optimizer)
    ids = np.random.default_rng(0).integers(0, V, size=B * ((steps + 2) * T + 1)).astype(np.int32)
    stream = ids[: (len(ids) // B) * B].reshape(B, -1).T.copy()
    rng = np.random.default_rng(1)
    keep = LastGood(model, opt)
    state = model.init_state(B)
    step_ms, take_ms = [], []
    for i in range(steps + 2):
        inputs, targets = stream[i * T:(i + 1) * T], stream[i * T + 1:(i + 1) * T + 1]
        if len(targets) < T:
            break
        t0 = time.perf_counter()
        r = train_step(model, opt, cfg, inputs, targets, state, rng)
        t1 = time.perf_counter()
        keep.take(model, opt, rng.bit_generator.state, state, LoopState())
        t2 = time.perf_counter()
        state = r.state
        if i >= 2:                      # the first steps compile / warm caches
            step_ms.append(1000 * (t1 - t0))
            take_ms.append(1000 * (t2 - t1))
    step, take = statistics.median(step_ms), statistics.median(take_ms)
    return {"config": config, "cell": cell, "optimizer": optimizer, "params": model.num_params(),
            "step_ms": step, "take_ms": take, "percent": 100 * take / step}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--configs", default="tiny,small")
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--optimizer", default="sgd")
    args = ap.parse_args()
    print("| config | cell | optimizer | parameters | step (median) | keeping the last good state | share |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for config in args.configs.split(","):
        r = measure(config, args.cell, args.optimizer, args.steps)
        print(f"| {r['config']} | {r['cell']} | {r['optimizer']} | {r['params']:,} | {r['step_ms']:.2f} ms | "
              f"{r['take_ms']:.3f} ms | {r['percent']:.1f}% |")


if __name__ == "__main__":
    main()
