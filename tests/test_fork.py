"""A fork-based multiprocessing pool works after the kernels have run (the threading layer is
fork-safe: _jit.py), in a subprocess with a timeout so that a hang fails instead of blocking CI."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CODE = r"""
import multiprocessing as mp
import numba
import numpy as np
from rnnlm.config import ModelConfig
from rnnlm.model import RNNModel

model = RNNModel(ModelConfig(vocab_size=60, emsize=16, hidden=128, cell="lstm", dropout=0.0), seed=0)
ids = np.random.default_rng(0).integers(0, 60, (12, 4))

def step(_):
    loss, grads, _ = model.loss_and_grads(ids[:-1], ids[1:], model.init_state(4))
    return float(loss)

first = step(0)                                   # a training step's kernels, forward and backward
with mp.get_context("fork").Pool(2) as pool:
    got = pool.map_async(step, range(4)).get(timeout=120)
assert got == [first] * 4, (got, first)
print(numba.threading_layer(), first)
"""


def test_a_fork_pool_after_a_training_step():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    r = subprocess.run([sys.executable, "-c", _CODE], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**env, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-2000:]
    from rnnlm.threadlayer import fork_safe_layer
    assert r.stdout.split()[0] == fork_safe_layer() and "GNU OpenMP" not in r.stderr
