"""What one call of train() works with (`_Session`), and what the loop and the end of a run both do with it.

`_Session` holds the run's fixed references (config, corpus, model, optimizer,
dropout Generator, batchified streams, run folder, clock, timing). The
operations here are shared by the loop (train.py) and the end of the run
(trainend.py): `_save` writes model.npz, `_keep_best` best.npz,
`_validate_full` evaluates the whole validation split, `_eval_event` is the
metrics event of a validation.

The one thing to know before editing: `_save` must write everything a resume
needs (model, optimizer, LoopState, the Generator's state, the carried hidden
state), or a run stopped and resumed no longer ends bitwise equal to an
uninterrupted one; `_validate_full` only measures (it teaches the time budget
the evaluation speed, nothing else).
"""
from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, NamedTuple

from .config import TrainConfig
from .evaluate import evaluate_stream
from .loopstate import Clock, LoopState
from .progress import _Timing
from .runs import Run, ppl as _ppl
from .stopping import saving

if TYPE_CHECKING:
    import numpy as np

    from .data import Corpus
    from .model import RNNModel
    from .optim import Optimizer


class _Session(NamedTuple):
    """What one call of train() works with. The references stay fixed; the model, optimizer,
    Generator and run folder change inside (the counters and hidden state are train()'s own)."""

    config: TrainConfig         # out and lr resolved
    corpus: "Corpus"            # data.Corpus
    model: "RNNModel"
    opt: "Optimizer"
    rng: "np.random.Generator"  # dropout masks: a stream of its own, apart from the init draws
    train_stream: "np.ndarray"  # (rows, B) batchified training split
    valid_stream: "np.ndarray"  # (rows, eval_batch_size) batchified validation split
    jac_tokens: "np.ndarray | None"  # the --track-jacobian-every token slice
    windows_per_epoch: int
    info: dict                  # config.json: train and model config, corpus checksum, version
    run: Run | None = None      # the run folder (set once it is created or reopened)
    clock: Clock | None = None
    timing: _Timing | None = None


def _save(s: _Session, loop: LoopState, hidden) -> None:
    """model.npz: everything a resume needs (model, optimizer, loop counters, RNG, carried state)."""
    arrays = dataclasses.replace(loop, elapsed=s.clock()).to_arrays()
    arrays["rng"] = json.dumps(s.rng.bit_generator.state)
    for i, h in enumerate(hidden):
        arrays[f"state.{i}"] = h
    with saving(loop.step):     # a stop that comes meanwhile waits until the file is complete
        s.run.save_latest(s.model.state_dict(), s.opt.state_dict(), arrays)
    if s.timing is not None:
        s.timing.last_save = s.clock()


def _keep_best(s: _Session, loop: LoopState, val: float) -> bool:
    """Save best.npz when `val` beats the model in it; True when it did."""
    if not val < loop.best_saved:
        return False
    loop.best_saved = val
    with saving():
        s.run.save_best(s.model.state_dict(), loop.step, loop.epoch, val)
    return True


def _eval_event(s: _Session, loop: LoopState, reason: str, val: float, best: bool, lr: float) -> dict:
    """The event of a validation (scheduled or final); lr: the rate before it annealed anything."""
    return {"type": "eval", "split": "valid", "reason": reason, "step": loop.step, "epoch": loop.last_epoch,
            "val_loss": val, "val_ppl": _ppl(val), "best": best, "best_val_ppl": _ppl(loop.best_saved),
            "lr": lr, "next_lr": s.opt.lr, "time": s.clock()}


def _validate_full(s: _Session, bar: str) -> float:
    """The whole validation split's loss; teaches the time budget the evaluation speed."""
    t0 = time.perf_counter()
    val, count = evaluate_stream(s.model, s.valid_stream, s.config.bptt, bar=bar)
    if s.timing is not None:
        s.timing.observe_eval(count, time.perf_counter() - t0)
        s.timing.last_eval = s.clock()
    return val
