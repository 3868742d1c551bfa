"""The training loop: truncated BPTT over a token stream, clipping, annealing, checkpoints.

`train(config) -> summary` is the whole job (the `train` command is a thin
wrapper). One epoch visits the training stream once, in order, in windows of
`bptt` rows of a `(N // B, B)` time-major matrix; the hidden state is carried
from window to window (as a constant: no gradient crosses a window boundary)
and reset at each epoch start, as in pytorch/examples.

A run folder holds config.json, vocab.json, metrics.jsonl (one JSON event per
line), model.npz (latest, with optimizer and loop state: what `--resume`
reads) and best.npz (best validation perplexity so far). See checkpoint.py for
the array names.

The one thing to know before editing: a run stopped at any step boundary and
resumed must end bitwise equal to an uninterrupted one (tests check it).
Everything that influences the future therefore lives in `_Loop` (counters,
accumulators), the optimizer's `state_dict`, the carried hidden state or the
dropout Generator, and all four go into model.npz; evaluations that only
*report* (the one at the end of a run) must not change any of them.
Ctrl-C only sets a flag: the loop stops at the next step boundary, so a
checkpoint never holds a half-applied update.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .config import TrainConfig, config_to_dict
from .errors import UserError
from .runs import Run, evaluate_stream, ppl as _ppl, resume_checkpoint

STOP_REASONS = ("epochs", "max_steps", "max_minutes", "early_stop", "nonfinite", "interrupted")


def model_config(config: TrainConfig, vocab_size: int):
    """The ModelConfig a TrainConfig describes, for a vocabulary of `vocab_size`."""
    return config.model.with_vocab(vocab_size)


def validate(config: TrainConfig) -> None:
    """UserError for settings that cannot work together (TrainConfig.validate)."""
    config.validate()


# ---------------------------------------------------------------- run folder


def default_out(config: TrainConfig) -> str:
    return str(Path("runs") / f"{config.model.cell}-{time.strftime('%Y%m%d-%H%M%S')}")




# ---------------------------------------------------------------- Jacobian tracking

# Cheap settings of --track-jacobian-every. At the default model (LSTM E=H=256,
# B=32, T=35) one curve costs about as much as a few training steps, so
# recording every 500 steps stays far below 10% (`python cli.py bench --jacobian`
# prints the measured figure). Same tokens, same anchors every time, so the
# curves of one run differ only by the weights.
TRACK_MAX_LAG = 30      # lags 1..30
TRACK_ANCHORS = 4       # anchor positions t
TRACK_TOKENS = 200      # tokens from the start of the validation split (train if it is too short)
TRACK_SEED = 0          # anchors and Lanczos starts; a Generator of its own, never the training one


def tracking_tokens(corpus):
    """The fixed token slice every --track-jacobian-every curve of a run is measured on."""
    need = TRACK_MAX_LAG + TRACK_ANCHORS + 2
    stream = corpus.valid if len(corpus.valid) >= need else corpus.train
    if len(stream) < TRACK_ANCHORS + 3:
        raise UserError(f"too little text ({len(stream)} tokens) for --track-jacobian-every")
    return stream[:TRACK_TOKENS]


def _compact(x):
    """Floats to 5 significant digits (non-finite to null) so a metrics line stays small."""
    if isinstance(x, dict):
        return {k: _compact(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_compact(v) for v in x]
    if isinstance(x, float):
        return float(f"{x:.5g}") if math.isfinite(x) else None
    return x


def jacobian_event(model, tokens, step: int) -> dict:
    """The metrics.jsonl event of --track-jacobian-every: lag-curve summaries at `step`."""
    import numpy as np

    from .jacobian import lag_curve
    t0 = time.perf_counter()
    max_lag = min(TRACK_MAX_LAG, len(tokens) - TRACK_ANCHORS - 1)
    doc = lag_curve(model, tokens, max_lag=max_lag, anchors=TRACK_ANCHORS,
                    rng=np.random.default_rng(TRACK_SEED), per_step=False)
    keep = ("max_lag", "anchors", "tokens", "spectral_radius_Whh", "norm_Whh", "bound_per_step")
    return {"type": "jacobian", "step": step, "seconds": round(time.perf_counter() - t0, 3),
            "meta": _compact({k: doc["meta"].get(k) for k in keep}), "curves": _compact(doc["curves"])}


# ---------------------------------------------------------------- loop state


@dataclass
class _Loop:
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
    last_eval_step: int = -1   # step of the latest evaluation (avoid a double one at epoch end)
    skipped: int = 0           # non-finite steps skipped (--on-nonfinite skip)
    clipped_total: int = 0     # steps whose gradient was clipped, whole run
    ep_loss: float = 0.0       # sum of finite step losses this epoch
    ep_steps: int = 0          # applied steps this epoch
    ep_clipped: int = 0        # clipped steps this epoch
    log_loss: float = 0.0      # sum of step losses since the last step event
    log_steps: int = 0         # applied steps since the last step event
    log_clipped: int = 0       # clipped steps since the last step event
    log_tokens: int = 0        # tokens computed since the last step event (throughput: every window counts)
    val_loss: float = math.nan  # latest validation loss

    def count(self, result: "StepResult") -> None:
        """Count a window that was applied (its loss and clipping join the sums) or skipped."""
        self.step += 1
        self.window += 1
        self.pos += result.rows
        self.tokens += result.tokens
        if result.bad is not None:
            self.skipped += 1
            return
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

    def count_eval(self, val: float) -> bool:
        """Record a scheduled validation loss; True when it improved on the best one (patience resets)."""
        self.val_loss = val
        self.last_eval_step = self.step
        if val < self.best_val:
            self.best_val = val
            self.bad_evals = 0
            return True
        self.bad_evals += 1
        return False

    def to_arrays(self) -> dict:
        import numpy as np
        return {k: np.array(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_arrays(cls, d: dict) -> "_Loop":
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                kw[f.name] = type(f.default)(d[f.name].item())
        return cls(**kw)


def stop_reason(config: TrainConfig, loop: _Loop, *, diverged: bool, interrupted: bool,
                elapsed: float) -> str | None:
    """Why the run stops before its next window (one of STOP_REASONS), or None to go on.

    diverged: the last window was non-finite and --on-nonfinite (or broken
    parameters) said stop. Checked in this order, before every window and
    after every epoch end.
    """
    if diverged:
        return "nonfinite"
    if interrupted:
        return "interrupted"
    if loop.epoch > config.epochs:
        return "epochs"
    if config.max_steps and loop.step >= config.max_steps:
        return "max_steps"
    if config.max_minutes and elapsed >= 60 * config.max_minutes:
        return "max_minutes"
    if config.patience and loop.bad_evals >= config.patience:
        return "early_stop"
    return None


class _Interrupt:
    """SIGINT/SIGTERM handler: the first signal asks the loop to stop at the next step
    boundary (and save); a second one raises KeyboardInterrupt at once (nothing more
    is saved; the previous checkpoint stays intact)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


class _Clock:
    """Wall seconds the run has spent, over all its sessions: `clock()`."""

    def __init__(self, before: float):
        self.before = before                # seconds of the earlier sessions (model.npz's train.elapsed)
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return self.before + (time.perf_counter() - self.start)


# ---------------------------------------------------------------- one step


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


def train_step(model, opt, config: TrainConfig, inputs, targets, state, rng) -> StepResult:
    """One window of truncated BPTT: loss and gradients, the non-finite guard, clipping, the update.

    inputs, targets: (T, B) token ids; state: the carried hidden state; rng: the
    dropout Generator. A window whose loss, gradients or new hidden state hold a
    nan/inf is not applied (StepResult.bad names the first such tensor): the
    parameters and the optimizer stay as they were.
    """
    from .omega import omega_and_grad
    from .optim import clip_grad_norm, clip_grad_value, first_nonfinite, grad_norm

    omega = None
    if config.omega > 0:
        # Ω needs the per-step states and state gradients; its W_hh gradient
        # joins the loss gradients before the non-finite guard and clipping.
        r = model.bptt(inputs, targets, state, rng=rng)
        loss, grads, new_state = r.loss, r.grads, r.state
        omega, domega = omega_and_grad(model, r, config.omega)
        for name, d in domega.items():
            grads[name] += d
    else:
        loss, grads, new_state = model.loss_and_grads(inputs, targets, state, rng=rng)
    loss = float(loss)
    norm = grad_norm(grads) if math.isfinite(loss) else math.nan
    if not math.isfinite(loss):
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
    if config.clip_norm > 0:
        clip_grad_norm(grads, config.clip_norm, norm=norm)   # norm: computed above
        clipped = norm > config.clip_norm
        if clipped:
            norm_after = norm * (config.clip_norm / (norm + 1e-6))
    elif config.clip_value > 0:
        clipped = clip_grad_value(grads, config.clip_value) > 0
        if clipped:
            norm_after = grad_norm(grads)
    lr = opt.lr
    opt.step(model.params, grads)
    return StepResult(**window, grad_norm_clipped=norm_after, clipped=clipped, lr=lr, bad=None, state=new_state)


# ---------------------------------------------------------------- train


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
    clock: _Clock | None = None


def train(config: TrainConfig, *, resume: str | os.PathLike | None = None, on_step=None,
          corpus=None) -> dict:
    """Train a model as `config` says; returns a summary dict (see `_summary` and `_final_report`).

    resume: a run folder to continue from its model.npz (its config.json wins;
    build `config` with `resume_config`). on_step: called as on_step(step)
    after every step, for tests (e.g. to send SIGINT). corpus: an already
    loaded data.Corpus to train on instead of reading config.data (sweep
    workers get the token arrays from the client and have no corpus on disk).

    Never raises for a diverging run: a nan/inf loss or gradient ends the run
    with stopped="nonfinite" (or is skipped), which is a result, not a crash.
    """
    import numpy as np
    from tqdm import tqdm

    from .data import windows
    from .optim import first_nonfinite

    validate(config)
    s = _prepare(config if resume is None else dataclasses.replace(config, out=str(resume)), corpus)
    config, model, vocab = s.config, s.model, s.corpus.vocab.to_json()
    if resume is None:
        run, loop, hidden = Run.create(config.out, s.info, vocab), _Loop(), model.init_state(config.batch_size)
    else:
        loop, hidden = _restore(resume_checkpoint(config.out, s.info, vocab, model.state_dict()), s)
        run = Run.reopen(config.out, s.info, vocab, loop.step)
    s = s._replace(run=run, clock=_Clock(loop.elapsed))
    if resume is None:
        run.log({"type": "start", "step": 0, "epoch": 1, "params": model.num_params(),
                 "vocab_size": len(s.corpus.vocab), "windows_per_epoch": s.windows_per_epoch, "time": 0.0})
        if config.track_jacobian_every:
            run.log({**jacobian_event(model, s.jac_tokens, 0), "time": s.clock()})
        _save(s, loop, hidden)
    else:
        run.log({"type": "resume", "step": loop.step, "epoch": loop.epoch, "pos": loop.pos,
                 "lr": s.opt.lr, "time": loop.elapsed})

    nonfinite = None        # the latest non-finite window (its event), for the summary
    log_t0 = time.perf_counter()
    # Overflow warnings would only repeat what the non-finite guard reports in one line.
    with _Interrupt() as interrupt, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        with tqdm(total=s.windows_per_epoch, initial=loop.window, desc=f"epoch {loop.epoch}", unit="win",
                  disable=not config.progress, leave=False, file=sys.stderr) as bar:
            while True:
                stopped = stop_reason(config, loop, interrupted=interrupt.requested, elapsed=s.clock(),
                                      diverged=nonfinite is not None and nonfinite["action"] == "stop")
                if stopped:
                    break
                window = next(windows(s.train_stream, config.bptt, start=loop.pos), None)
                if window is None:      # the epoch's windows are done
                    hidden = _end_epoch(s, loop)
                    _restart_bar(bar, loop.epoch, s.windows_per_epoch)
                    continue
                _, inputs, targets = window
                result = train_step(model, s.opt, config, inputs, targets, hidden, s.rng)
                loop.log_tokens += result.tokens
                if result.bad is not None:
                    nonfinite = _report_nonfinite(s, loop, result)
                    if nonfinite["action"] == "stop":
                        continue        # not counted: the run ends on the last good parameters
                loop.count(result)
                hidden = result.state
                applied = result.bad is None
                if applied and loop.step % config.log_every == 0:
                    event = _step_event(s, loop, result, loop.log_tokens / max(time.perf_counter() - log_t0, 1e-9))
                    run.log(event)
                    bar.set_postfix_str(_postfix(event), refresh=False)
                    loop.start_log_interval()
                    log_t0 = time.perf_counter()
                bar.update(1)
                if applied and config.eval_every and loop.step % config.eval_every == 0:
                    _evaluate(s, loop, "every")
                    _save(s, loop, hidden)
                if applied and config.track_jacobian_every and loop.step % config.track_jacobian_every == 0:
                    run.log({**jacobian_event(model, s.jac_tokens, loop.step), "time": s.clock()})
                if on_step is not None:
                    on_step(loop.step)
        # Still inside the handler: a Ctrl-C during the final save sets the flag, not a half-written file.
        if stopped != "nonfinite" or first_nonfinite(model.params) is None:
            _save(s, loop, hidden)      # after a non-finite window: the last good parameters
        if stopped == "interrupted":
            tqdm.write(f"interrupted at step {loop.step}: checkpoint saved to {run.latest}; "
                       f"continue with --resume {run.folder}", file=sys.stderr)
        run.log({"type": "stop", "reason": stopped, "step": loop.step, "epoch": loop.epoch, "time": s.clock()})

    summary = _summary(s, loop, stopped, nonfinite)
    if stopped != "interrupted":
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            summary.update(_final_report(s, loop, hidden, stopped))
    run.close()
    return summary


def _prepare(config: TrainConfig, corpus=None) -> _Session:
    """Corpus, batches, model and optimizer of a run (no files written yet); lr and out resolved."""
    import numpy as np

    from . import __version__
    from .data import batchify, load_corpus
    from .model import RNNModel
    from .optim import make_optimizer

    out = Path(config.out or default_out(config))
    corpus = load_corpus(config.data) if corpus is None else corpus
    mcfg = model_config(config, len(corpus.vocab))
    model = RNNModel(mcfg, seed=config.seed)
    opt = make_optimizer(config.optimizer, model.params, config.lr, momentum=config.momentum,
                         nesterov=config.nesterov, betas=(config.beta1, config.beta2))
    config = dataclasses.replace(config, lr=opt.lr, out=str(out))
    B, T = config.batch_size, config.bptt
    train_stream = batchify(corpus.train, B)
    valid_stream = batchify(corpus.valid, config.eval_batch_size)
    jac_tokens = tracking_tokens(corpus) if config.track_jacobian_every else None
    if train_stream.shape[0] < 2:
        raise UserError(f"the training split ({len(corpus.train)} tokens) is too small for --batch-size {B}")
    info = {"train": config_to_dict(config), "model": dataclasses.asdict(mcfg),
            "corpus": {"checksum": corpus.checksum,
                       "tokens": {s: int(len(getattr(corpus, s))) for s in ("train", "valid", "test")},
                       "oov_rate": {k: float(v) for k, v in corpus.oov_rate.items()}},
            "rnnlm_version": __version__}
    return _Session(config=config, corpus=corpus, model=model, opt=opt, rng=np.random.default_rng([config.seed, 1]),
                    train_stream=train_stream, valid_stream=valid_stream, jac_tokens=jac_tokens,
                    windows_per_epoch=len(range(0, train_stream.shape[0] - 1, T)), info=info)


def _restore(ck, s: _Session) -> tuple[_Loop, tuple]:
    """Load a model.npz into the session's model, optimizer and Generator: (loop counters, hidden state)."""
    import numpy as np
    s.model.load_state_dict(ck.model)
    s.opt.load_state_dict(ck.optim)
    s.rng.bit_generator.state = json.loads(str(ck.train["rng"]))
    hidden = tuple(np.array(ck.train[f"state.{i}"]) for i in range(s.model.n_state))
    return _Loop.from_arrays(ck.train), hidden


def _save(s: _Session, loop: _Loop, hidden) -> None:
    """model.npz: everything a resume needs (model, optimizer, loop counters, RNG, carried state)."""
    arrays = dataclasses.replace(loop, elapsed=s.clock()).to_arrays()
    arrays["rng"] = json.dumps(s.rng.bit_generator.state)
    for i, h in enumerate(hidden):
        arrays[f"state.{i}"] = h
    s.run.save_latest(s.model.state_dict(), s.opt.state_dict(), arrays)


def _keep_best(s: _Session, loop: _Loop, val: float) -> bool:
    """Save best.npz when `val` beats the model in it; True when it did."""
    if not val < loop.best_saved:
        return False
    loop.best_saved = val
    s.run.save_best(s.model.state_dict(), loop.step, loop.epoch, val)
    return True


def _eval_event(s: _Session, loop: _Loop, reason: str, val: float, best: bool, lr: float) -> dict:
    """The event of a validation (scheduled or final); lr: the rate before it annealed anything."""
    return {"type": "eval", "split": "valid", "reason": reason, "step": loop.step, "epoch": loop.epoch,
            "val_loss": val, "val_ppl": _ppl(val), "best": best, "best_val_ppl": _ppl(loop.best_saved),
            "lr": lr, "next_lr": s.opt.lr, "time": s.clock()}


def _evaluate(s: _Session, loop: _Loop, reason: str) -> None:
    """A scheduled validation: keeps best.npz, anneals the lr when it did not improve, logs and prints."""
    from tqdm import tqdm
    val, _ = evaluate_stream(s.model, s.valid_stream, s.config.bptt)
    lr = s.opt.lr
    if not loop.count_eval(val):
        s.opt.lr = s.opt.lr / s.config.lr_decay
    best = _keep_best(s, loop, val)
    s.run.log(_eval_event(s, loop, reason, val, best, lr))
    tqdm.write(f"| step {loop.step:6d} | epoch {loop.epoch:3d} | valid loss {val:6.3f} | "
               f"ppl {_ppl(val):9.2f}{' (best)' if best else ''} | lr {s.opt.lr:.4g}", file=sys.stderr)


def _end_epoch(s: _Session, loop: _Loop) -> tuple:
    """Validate (unless just done), log the epoch, start the next one; returns the reset hidden state."""
    if loop.last_eval_step != loop.step:
        _evaluate(s, loop, "epoch")
    ep_loss = loop.ep_loss / max(loop.ep_steps, 1)
    s.run.log({"type": "epoch", "step": loop.step, "epoch": loop.epoch, "train_loss": ep_loss,
               "train_ppl": _ppl(ep_loss), "steps": loop.window,
               "clip_fraction": loop.ep_clipped / max(loop.window, 1), "skipped": loop.skipped,
               "lr": s.opt.lr, "time": s.clock()})
    loop.start_epoch()
    hidden = s.model.init_state(s.config.batch_size)
    _save(s, loop, hidden)
    return hidden


def _report_nonfinite(s: _Session, loop: _Loop, result: StepResult) -> dict:
    """Log and print a non-finite window; returns its event, whose action (skip or stop) the loop follows."""
    from tqdm import tqdm

    from .optim import first_nonfinite
    # Broken parameters (a finite step that overflowed them) cannot be skipped past.
    action = s.config.on_nonfinite if first_nonfinite(s.model.params) is None else "stop"
    event = {"step": loop.step + 1, "epoch": loop.epoch, "tensor": result.bad, "loss": result.loss,
             "grad_norm": result.grad_norm, "action": action}
    s.run.log({"type": "nonfinite", **event, "time": s.clock()})
    tqdm.write(f"non-finite values at step {loop.step + 1} (first bad tensor: {result.bad}); "
               + ("skipping the step" if action == "skip" else "stopping"), file=sys.stderr)
    return event


def _step_event(s: _Session, loop: _Loop, result: StepResult, tokens_per_s: float) -> dict:
    """The event every --log-every steps: this step's figures and the averages since the last event."""
    avg = loop.log_loss / max(loop.log_steps, 1)
    return {"type": "step", "step": loop.step, "epoch": loop.epoch, "loss": result.loss, "ppl": _ppl(result.loss),
            "loss_avg": avg, "grad_norm": result.grad_norm, "grad_norm_clipped": result.grad_norm_clipped,
            "clipped": bool(result.clipped), "clip_fraction": loop.log_clipped / max(loop.log_steps, 1),
            "lr": result.lr, "tokens_per_s": tokens_per_s, "tokens": loop.tokens,
            **({"omega": result.omega} if result.omega is not None else {}), "time": s.clock()}


def _restart_bar(bar, epoch: int, total: int) -> None:
    """The progress bar of a new epoch: same bar, count and text reset."""
    bar.set_description(f"epoch {epoch}", refresh=False)
    bar.set_postfix_str("", refresh=False)
    bar.reset(total=total)


def _postfix(e: dict) -> str:
    """The progress bar's text after a step event."""
    return (f"loss {e['loss_avg']:.3f} ppl {_ppl(e['loss_avg']):.1f} |g| {e['grad_norm']:.3g} "
            + (f"omega {e['omega']:.3g} " if "omega" in e else "") + f"{e['tokens_per_s']:,.0f} tok/s")


def _summary(s: _Session, loop: _Loop, stopped: str, nonfinite: dict | None) -> dict:
    """train()'s result as the loop left it (format_summary prints it; _final_report adds to it)."""
    elapsed = s.clock()
    return {"run_dir": str(s.run.folder), "stopped": stopped, "steps": loop.step, "epoch": loop.epoch,
            "tokens": loop.tokens, "elapsed_s": elapsed, "tokens_per_s": loop.tokens / max(elapsed, 1e-9),
            "lr": s.opt.lr, "val_loss": loop.val_loss, "val_ppl": _ppl(loop.val_loss),
            "best_val_loss": loop.best_saved, "best_val_ppl": _ppl(loop.best_saved),
            "clip_fraction": loop.clipped_total / max(loop.step - loop.skipped, 1),
            "skipped": loop.skipped, "nonfinite": nonfinite, "params": s.model.num_params()}


def _final_report(s: _Session, loop: _Loop, hidden, stopped: str) -> dict:
    """Report-only evaluations after the last save, and the sample: what they add to the summary.

    They may refresh best.npz (and the best_saved counter with it) but never
    touch what steers training (best_val, lr, patience), so a run stopped here
    and resumed still matches an uninterrupted one. The test split and the
    sample use best.npz's model when there is one.
    """
    from . import checkpoint
    from .data import batchify
    from .optim import first_nonfinite

    report = {}
    if loop.last_eval_step != loop.step and stopped != "nonfinite":
        val, _ = evaluate_stream(s.model, s.valid_stream, s.config.bptt)
        best = _keep_best(s, loop, val)
        if best:
            _save(s, loop, hidden)
        report.update(val_loss=val, val_ppl=_ppl(val), best_val_loss=loop.best_saved,
                      best_val_ppl=_ppl(loop.best_saved))
        s.run.log(_eval_event(s, loop, "final", val, best, s.opt.lr))
    report["sampled_from"] = "best" if s.run.best.exists() else "latest"
    if report["sampled_from"] == "best":
        s.model.load_state_dict(checkpoint.load(s.run.best).model)
    if len(s.corpus.test) > s.config.eval_batch_size * 2 and first_nonfinite(s.model.params) is None:
        test_loss, _ = evaluate_stream(s.model, batchify(s.corpus.test, s.config.eval_batch_size), s.config.bptt)
        report.update(test_loss=test_loss, test_ppl=_ppl(test_loss))
        s.run.log({"type": "eval", "split": "test", "reason": "final", "step": loop.step, "epoch": loop.epoch,
                   "model": report["sampled_from"], "test_loss": test_loss, "test_ppl": _ppl(test_loss),
                   "time": s.clock()})
    if s.config.sample_words and first_nonfinite(s.model.params) is None:
        from .sample import generate_text
        report["sample"] = generate_text(s.model, s.corpus.vocab, words=s.config.sample_words, seed=s.config.seed,
                                         keep_case=s.config.data.keep_case)[0]
    return report


# ---------------------------------------------------------------- commands


def format_summary(s: dict) -> str:
    """The lines the train command prints at the end."""
    lines = [f"run folder: {s['run_dir']}",
             f"stopped: {s['stopped']} after {s['steps']} steps ({s['tokens']:,} tokens, "
             f"{s['elapsed_s'] / 60:.1f} min, {s['tokens_per_s']:,.0f} tokens/s)",
             "   ".join(([f"valid ppl: {s['val_ppl']:.2f}"] if not math.isnan(s["val_loss"]) else [])
                        + ([f"best valid ppl: {s['best_val_ppl']:.2f}"] if math.isfinite(s["best_val_loss"]) else [])
                        + [f"lr: {s['lr']:.4g}", f"clipped steps: {100 * s['clip_fraction']:.1f}%"])]
    if "test_ppl" in s:
        lines.append(f"test ppl ({s['sampled_from']} model): {s['test_ppl']:.2f}")
    if s["skipped"]:
        lines.append(f"non-finite steps skipped: {s['skipped']}")
    if s["nonfinite"] and s["stopped"] == "nonfinite":
        nf = s["nonfinite"]
        lines.append(f"the run diverged: non-finite {nf['tensor']} at step {nf['step']}; "
                     "model.npz holds the last good parameters")
    if s.get("sample"):
        lines.append(f"sample ({s['sampled_from']} model):")
        lines.append("  " + s["sample"])
    return "\n".join(lines)
