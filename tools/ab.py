"""A/B: time two checkouts of rnnlm against each other, interleaved, each side in its own worker process.

    git worktree add ../old 8ea9e90          # the code to compare against
    python tools/ab.py ../old . --repeats 5 --configs tiny,small,medium --cells rnn,lstm,gru --jacobian

What a restructuring must show (ours before vs ours after, same harness): each side imports its own
checkout's `rnnlm` in a worker process and is timed on the same windows, repeat by repeat, the order of
the two sides swapped every repeat. Only public API is used (ModelConfig, RNNModel, SGD, train.train_step,
jacobian.lag_curve; clip_grad_norm and grad_norm for checkouts older than train_step), so both sides run
this same harness. The steps are bench.py's (train.train_step): forward, BPTT, global-norm clipping (0.25)
and an SGD update at B = 32, T = 35, E = H, 2 threads; eval is the loss
alone; `--jacobian` times jacobian.lag_curve at H = 256, max lag 100, 32 anchors (float64), as
`bench --jacobian` does. Prints, per row, each side's rate (tokens/s; for the Jacobian, curves per
minute), the median over repeats of the per-repeat ratio new/old, and that ratio's range; then JSON.
On a shared 2-core machine the first-started worker can be a few percent faster: run both orders
(OLD NEW, then NEW OLD) and read the ratios together. Nothing here is asserted: it prints.
"""
import argparse, os, subprocess, sys, time, json
import numpy as np

WORKER = r'''
import sys, time, numpy as np, numba
from rnnlm._blas import set_numpy_threads
set_numpy_threads(2); numba.set_num_threads(2)
from rnnlm.model import ModelConfig, RNNModel
from rnnlm.optim import SGD, clip_grad_norm, grad_norm
CONFIGS = {"tiny": (2000, 64), "small": (10000, 128), "medium": (10000, 256), "large": (30000, 512)}
B, T = 32, 35
models = {}
def setup(cell, config):
    V, H = CONFIGS[config]
    work = V * H + 4 * H * H
    n = int(np.clip(2e8 / (work * B * T) * 40, 3, 30))
    rng = np.random.default_rng(0)
    windows = rng.integers(0, V, size=(n, T + 1, B)).astype(np.int64)
    m = RNNModel(ModelConfig(vocab_size=V, cell=cell, emsize=H, hidden=H, dropout=0.0), seed=0)
    opt = SGD(m.params, 1.0)
    st = [m.init_state(B)]
    try:
        from rnnlm.config import TrainConfig
        from rnnlm.step import train_step
    except ImportError:                        # a checkout from before train.train_step
        train_step = None
    def train():
        if train_step is not None:             # the training loop's own step, as bench.py times it
            cfg = TrainConfig(clip_norm=0.25)
            for w in windows:
                st[0] = train_step(m, opt, cfg, w[:-1], w[1:], st[0], None).state
            return
        for w in windows:
            loss, grads, st[0] = m.loss_and_grads(w[:-1], w[1:], st[0])
            clip_grad_norm(grads, 0.25, norm=grad_norm(grads))
            opt.step(m.params, grads)
    def ev():
        for w in windows:
            _, st[0] = m.loss(w[:-1], w[1:], st[0])
    train(); ev()
    return n * B * T, train, ev
def setup_jac(cell):
    from rnnlm.jacobian import lag_curve
    H, D, K = 256, 100, 32
    tokens = np.random.default_rng(0).integers(0, 1000, size=D + K + 50)
    m = RNNModel(ModelConfig(vocab_size=1000, cell=cell, emsize=H, hidden=H, dropout=0.0, dtype="float64"), seed=0)
    lag_curve(m, tokens[:20], max_lag=5, anchors=2, rng=np.random.default_rng(0))
    return 1, (lambda: lag_curve(m, tokens, max_lag=D, anchors=K, rng=np.random.default_rng(0))), None
print("ready", flush=True)
for line in sys.stdin:
    key = line.split()
    if key[0] == "setup":
        cell, config = key[1], key[2]
        models[(cell, config)] = setup_jac(cell) if config == "jacobian" else setup(cell, config)
        print("ok", models[(cell, config)][0], flush=True)
    else:
        cell, config, what = key[1], key[2], key[0]
        n, tr, ev = models[(cell, config)]
        f = tr if what in ("train", "jacobian") else ev
        t0 = time.perf_counter(); f(); print("seconds", time.perf_counter() - t0, flush=True)
'''

class Side:
    def __init__(self, path):
        env = dict(os.environ, PYTHONPATH=os.path.abspath(path))
        self.p = subprocess.Popen([sys.executable, "-c", WORKER], cwd=path, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)
        assert self.p.stdout.readline().strip() == "ready"
    def ask(self, line):
        self.p.stdin.write(line + "\n"); self.p.stdin.flush()
        return self.p.stdout.readline().split()

ap = argparse.ArgumentParser()
ap.add_argument("old"); ap.add_argument("new")
ap.add_argument("--repeats", type=int, default=5)
ap.add_argument("--configs", default="tiny,small,medium")
ap.add_argument("--cells", default="rnn,lstm,gru")
ap.add_argument("--jacobian", action="store_true")
a = ap.parse_args()
old, new = Side(a.old), Side(a.new)
jobs = [(c, k) for k in a.configs.split(",") if k for c in a.cells.split(",")]
if a.jacobian:
    jobs += [(c, "jacobian") for c in a.cells.split(",")]
print(f"{'cell':5} {'config':9} {'what':6} {'old':>10} {'new':>10} {'new/old':>8}  per-repeat range   (rates: tokens/s; jacobian: curves/min)")
results = []
for cell, config in jobs:
    n = int(old.ask(f"setup {cell} {config}")[1]); new.ask(f"setup {cell} {config}")
    whats = ["jacobian"] if config == "jacobian" else ["train", "eval"]
    for what in whats:
        t = {"old": [], "new": []}
        for r in range(a.repeats):
            order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
            for name, side in order:
                time.sleep(0.3)
                t[name].append(float(side.ask(f"{what} {cell} {config}")[1]))
        scale = 60.0 if config == "jacobian" else n
        ro, rn = scale / np.median(t["old"]), scale / np.median(t["new"])
        per = [o / w for o, w in zip(t["old"], t["new"])]
        results.append(dict(cell=cell, config=config, what=what, old=ro, new=rn, ratio=float(np.median(per)), lo=min(per), hi=max(per)))
        print(f"{cell:5} {config:9} {what:6} {ro:10.1f} {rn:10.1f} {np.median(per):8.3f}  {min(per):.3f}-{max(per):.3f}", flush=True)
print(json.dumps(results))
