"""One training step: a window of truncated BPTT, the non-finite guard, clipping and the update.

`train_step(model, opt, config, inputs, targets, state, rng)` returns a
StepResult; train.py's loop counts it, logs it and decides what to do with a
non-finite one (skip, or stop and roll back: loopstate.LastGood).

The one thing to know before editing: a window is applied whole or not at
all. Every check (the loss, the gradient norm, the new hidden state) runs
before `opt.step`, and a window that fails one leaves the parameters, the
optimizer and the carried state exactly as they were (StepResult.bad names
the first bad tensor).
"""
from __future__ import annotations

import math
import sys
from typing import NamedTuple

from .config import TrainConfig

MAX_LOSS = math.log(sys.float_info.max)    # ~709.78 nats/token: beyond it the perplexity overflows float64


class StepResult(NamedTuple):
    """What one training window did (train_step's result)."""

    loss: float                 # mean cross-entropy of the window, nats/token (nan/inf when it diverged)
    grad_norm: float            # joint L2 norm of the gradients before clipping (nan if the loss is not finite)
    grad_norm_clipped: float    # the norm after clipping: what the update used
    clipped: bool               # whether clipping changed the gradients
    omega: float | None         # the Ω regularizer's value (--omega), else None
    lr: float                   # learning rate of the update
    bad: str | None             # first non-finite tensor (loss, a gradient, state.i): nothing was applied
    state: tuple                # hidden state to carry into the next window (the old one when bad)
    rows: int                   # time steps of the window (bptt, fewer for an epoch's last window)
    tokens: int                 # predicted tokens (rows x B)


def train_step(model, opt, config: TrainConfig, inputs, targets, state, rng, before_update=None) -> StepResult:
    """One window of truncated BPTT: loss and gradients, the non-finite guard, clipping, the update.

    inputs, targets: (T, B) token ids; state: the carried hidden state; rng: the
    dropout Generator. A window whose loss, gradients or new hidden state hold a
    nan/inf is not applied (StepResult.bad names the first such tensor): the
    parameters and the optimizer stay as they were. A loss of MAX_LOSS nats or
    more counts as non-finite: its perplexity e^loss overflows (the model puts
    less than 1e-308 on the average word; such parameters evaluate to inf).
    before_update: called with
    no argument right before a finite update is applied (train() keeps the last
    good state there).
    """
    from .omega import omega_and_grad
    from .optim import Optimizer, clip_coef, clip_grad_value, first_nonfinite, grad_norm

    if not isinstance(opt, Optimizer):
        raise TypeError(f"train_step: opt must be an optimizer (optim.make_optimizer(name, model.params)), got "
                        f"{type(opt).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train_step: config must be a TrainConfig (its lr, clipping and omega are read), got "
                        f"{type(config).__name__}")
    omega = None
    grad_rows = {}
    if config.omega > 0:
        # Ω needs the per-step states and state gradients; its W_hh gradient
        # joins the loss gradients before the non-finite guard and clipping.
        r = model.bptt(inputs, targets, state, rng=rng)
        loss, grads, new_state = r.loss, r.grads, r.state
        omega, domega = omega_and_grad(model, r, config.omega)
        for name, d in domega.items():
            grads[name] += d
    else:
        # the model's gradient buffers; grad_rows: where the embedding's gradient can be nonzero
        loss, grads, new_state, grad_rows = model.train_grads(inputs, targets, state, rng=rng)
    loss = float(loss)
    ok = math.isfinite(loss) and loss < MAX_LOSS
    norm = grad_norm(grads, grad_rows) if ok else math.nan
    if not ok:
        bad = "loss"
    elif not math.isfinite(norm):
        bad = first_nonfinite(grads) or "gradient norm"
    else:
        bad = first_nonfinite({f"state.{i}": s for i, s in enumerate(new_state)})
    window = dict(loss=loss, grad_norm=norm, omega=omega, rows=inputs.shape[0], tokens=int(targets.size))
    if bad is not None:
        return StepResult(**window, grad_norm_clipped=norm, clipped=False, lr=opt.lr, bad=bad, state=state)
    clipped = False
    norm_after = norm
    scale = 1.0
    if config.clip_norm > 0:
        # norm clipping (PyTorch's clip_grad_norm_), applied by the optimizer's pass: scale
        scale = clip_coef(norm, config.clip_norm)
        clipped = norm > config.clip_norm
        if clipped:
            norm_after = norm * scale
    elif config.clip_value > 0:
        clipped = clip_grad_value(grads, config.clip_value) > 0
        if clipped:
            norm_after = grad_norm(grads, grad_rows)
    lr = opt.lr
    if before_update is not None:
        before_update()
    opt.step(model.params, grads, rows=grad_rows, scale=scale)
    return StepResult(**window, grad_norm_clipped=norm_after, clipped=clipped, lr=lr, bad=None, state=new_state)
