"""The training loop's own state: counters (LoopState), the rollback target (LastGood), the clock.

`LoopState` holds every counter and accumulator of the loop that a resume
must restore (saved in model.npz as train.<name>); `LastGood` keeps the
whole training state before the latest applied update, so that a divergence
rolls back to it; `Clock` adds this session's wall seconds to the earlier
sessions'. train.py owns the loop and uses all three.

The one thing to know before editing: a run stopped at any step boundary and
resumed must end bitwise equal to an uninterrupted one. A new counter that
influences the future belongs in LoopState (it is then saved and restored
with the others, and rolled back with them by LastGood); one that only
reports belongs in progress._Timing.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .step import StepResult


@dataclass
class LoopState:
    """Counters and accumulators of the loop: everything besides model, optimizer,
    hidden state and RNG that a resume must restore. Saved as train.<name>."""

    step: int = 0              # windows processed (skipped ones included)
    epoch: int = 1             # current epoch, from 1
    pos: int = 0               # row of the next window within the epoch's stream
    window: int = 0            # windows done in the current epoch
    tokens: int = 0            # training tokens processed
    elapsed: float = 0.0       # wall seconds spent in this run, over all sessions (set when saved)
    best_val: float = math.inf  # best loss of the scheduled evaluations: drives annealing and patience
    best_saved: float = math.inf  # loss of the model in best.npz (final, report-only evaluations too)
    bad_evals: int = 0         # evaluations in a row without improvement
    plateaus: int = 0          # scheduled evaluations without improvement, whole run (each divided the lr)
    last_eval_step: int = -1   # step of the latest evaluation (avoid a double one at epoch end)
    skipped: int = 0           # non-finite steps skipped (--on-nonfinite skip)
    skips_in_row: int = 0      # skipped steps since the last applied one (--max-skips)
    clipped_total: int = 0     # steps whose gradient was clipped, whole run
    ep_loss: float = 0.0       # sum of finite step losses this epoch
    ep_steps: int = 0          # applied steps this epoch
    ep_clipped: int = 0        # clipped steps this epoch
    log_loss: float = 0.0      # sum of step losses since the last step event
    log_steps: int = 0         # applied steps since the last step event
    log_clipped: int = 0       # clipped steps since the last step event
    log_tokens: int = 0        # tokens computed since the last step event (throughput: every window counts)
    val_loss: float = math.nan  # latest validation loss
    evaluated_updates: int = -1  # applied updates (step - skipped) at the latest scheduled validation; -1: none

    @property
    def last_epoch(self) -> int:
        """The epoch of the latest step: `epoch` less one at an epoch's boundary (its first window not yet
        taken), where `epoch` already names the next one. What the events after the loop report (a run
        that stopped after --epochs 2 logs epoch 2, not 3)."""
        return self.epoch - 1 if self.window == 0 and self.step > 0 and self.epoch > 1 else self.epoch

    def count(self, result: "StepResult") -> None:
        """Count a window that was applied (its loss and clipping join the sums) or skipped."""
        self.step += 1
        self.window += 1
        self.pos += result.rows
        self.tokens += result.tokens
        if result.bad is not None:
            self.skipped += 1
            self.skips_in_row += 1
            return
        self.skips_in_row = 0
        self.ep_loss += result.loss
        self.ep_steps += 1
        self.ep_clipped += result.clipped
        self.clipped_total += result.clipped
        self.log_loss += result.loss
        self.log_steps += 1
        self.log_clipped += result.clipped

    def start_log_interval(self) -> None:
        self.log_loss, self.log_steps, self.log_clipped, self.log_tokens = 0.0, 0, 0, 0

    def start_epoch(self) -> None:
        self.epoch += 1
        self.pos = self.window = 0
        self.ep_loss, self.ep_steps, self.ep_clipped = 0.0, 0, 0

    def count_eval(self, val: float) -> bool | None:
        """Record a scheduled validation loss; True when it improved on the best one (patience resets),
        False when it did not (a plateau: the lr anneals, patience counts it), None when it says nothing
        (`no_verdict`): neither annealing nor patience moves."""
        self.val_loss = val
        self.last_eval_step = self.step
        if self.no_verdict(val) is not None:
            return None
        self.evaluated_updates = self.step - self.skipped
        if val < self.best_val:
            self.best_val = val
            self.bad_evals = 0
            return True
        self.bad_evals += 1
        self.plateaus += 1
        return False

    def no_verdict(self, val: float) -> str | None:
        """Why the scheduled validation `val` cannot count as an improvement or a plateau, or None when it can:
        no update was applied since the previous one (the weights it measured are the ones already measured:
        --on-nonfinite skip skipped every step since). A non-finite loss of updated weights is a plateau, as
        any other that did not improve: the weights are broken, and --patience is what stops the run then."""
        if self.step - self.skipped == self.evaluated_updates:
            return "no update since the last validation"
        return None

    def to_arrays(self) -> dict:
        import numpy as np
        return {k: np.array(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_arrays(cls, d: dict) -> "LoopState":
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                kw[f.name] = type(f.default)(d[f.name].item())
        return cls(**kw)


class LastGood:
    """The whole training state before the latest applied update: the rollback target of a divergence.

    "Good" is a state whose loss and gradients were finite: the state before
    an update that was applied (its window passed the non-finite guard). When
    the next window's loss or carried state is non-finite, the parameters that
    update produced are broken (they give inf/nan on data), so the run goes
    back to this state: weights, optimizer buffers, lr and step count, the
    dropout Generator, the carried hidden state and the loop counters, so that
    resuming from the saved result repeats the same steps bitwise. A
    non-finite *gradient* at a finite loss is not applied and needs no
    rollback (the parameters it was computed at evaluate finitely).

    Only one state is kept, in buffers allocated once; taking it is one copy
    of the parameters and optimizer buffers per step (BENCHMARKS.md gives the
    measured cost).
    """

    def __init__(self, model, opt):
        import numpy as np
        self.params = {k: np.empty_like(p) for k, p in model.params.items()}
        self.buffers = {kind: {k: np.empty_like(b) for k, b in bufs.items()} for kind, bufs in opt.buffers.items()}
        self.held = False
        self.lr = self.steps = self.rng = self.hidden = self.loop = None

    def take(self, model, opt, rng_state: dict, hidden: tuple, loop: LoopState) -> None:
        """Keep this state (rng_state, hidden and loop as they were before the window)."""
        import numpy as np
        for k, p in model.params.items():
            np.copyto(self.params[k], p)
        for kind, bufs in opt.buffers.items():
            for k, b in bufs.items():
                np.copyto(self.buffers[kind][k], b)
        self.lr, self.steps, self.rng, self.loop = opt.lr, opt.steps, rng_state, loop
        self.hidden = tuple(h.copy() for h in hidden)
        self.held = True

    def restore(self, model, opt, rng) -> tuple[LoopState, tuple]:
        """Put the kept state back into model, optimizer and Generator; returns (loop counters, hidden state)."""
        import numpy as np
        for k, p in model.params.items():
            np.copyto(p, self.params[k])
        for kind, bufs in opt.buffers.items():
            for k, b in bufs.items():
                np.copyto(b, self.buffers[kind][k])
        opt.lr, opt.steps = self.lr, self.steps
        rng.bit_generator.state = self.rng
        return copy.copy(self.loop), tuple(h.copy() for h in self.hidden)


class Clock:
    """Wall seconds the run has spent, over all its sessions: `clock()`."""

    def __init__(self, before: float):
        self.before = before                # seconds of the earlier sessions (model.npz's train.elapsed)
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return self.before + (time.perf_counter() - self.start)
