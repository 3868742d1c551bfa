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
*report* (the timed ones every --eval-minutes, the one at the end of a run)
must not change any of them, and a divergence rolls all of them back together
(_LastGood). Ctrl-C and SIGTERM only set a flag: the loop stops at the next
step boundary, so a checkpoint never holds a half-applied update; before the
first step (start-up: corpus, compiling) they stop at once, and a new run's
folder is removed again (_StartUp). Wall-clock
bookkeeping (the time budget's reserve, the bar, tokens/s) lives in _Timing
and _Progress (progress.py) and never decides anything but when to stop and what to print.
"""
from __future__ import annotations

import copy
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
from .errors import Terminated, UserError, plural
from .fileio import first_new_folder, remove_new_folders
# the bar, the progress lines and the wall clock; the names stay importable from here
from .progress import (ETA_REFRESH_S, FIRST_LINE_S, FIRST_LINE_STEPS, LINE_MAX_S,  # noqa: F401
                       MAX_RESERVE_SHARE, RESERVE_EXTRA_S, RESERVE_FACTOR, _fmt_seconds, _Progress, _Timing,
                       command_time_left, stderr_is_terminal)
from .runs import (Run, clear_unsaved_run, evaluate_stream, lock_run, ppl as _ppl, refuse_sweep_folder,
                   refuse_taken, resume_checkpoint)

STOP_REASONS = ("epochs", "max_steps", "max_minutes", "early_stop", "min_lr", "nonfinite", "interrupted")


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

    def count_eval(self, val: float) -> bool:
        """Record a scheduled validation loss; True when it improved on the best one (patience resets)."""
        self.val_loss = val
        self.last_eval_step = self.step
        if val < self.best_val:
            self.best_val = val
            self.bad_evals = 0
            return True
        self.bad_evals += 1
        self.plateaus += 1
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
                elapsed: float, reserve: float = 0.0, lr: float | None = None) -> str | None:
    """Why the run stops before its next window (one of STOP_REASONS), or None to go on.

    diverged: the last window was non-finite and --on-nonfinite (or broken
    parameters, or --max-skips) said stop. elapsed: wall seconds of the run so
    far; reserve: seconds kept for the final evaluation, so that the whole
    command ends within --max-minutes. lr: the optimizer's learning rate now
    (saved with the optimizer, so a resume sees the same one): "min_lr" when
    annealing took it below config.lr_floor() (--min-lr), as Keras'
    ReduceLROnPlateau's min_lr and Mikolov's RNNLM toolkit (stop once
    annealing no longer helps) do. Checked in this order, before every window
    and after every epoch end.
    """
    if diverged:
        return "nonfinite"
    if interrupted:
        return "interrupted"
    if loop.epoch > config.epochs:
        return "epochs"
    if config.max_steps and loop.step >= config.max_steps:
        return "max_steps"
    if config.max_minutes and elapsed + reserve >= 60 * config.max_minutes:
        return "max_minutes"
    if config.patience and loop.bad_evals >= config.patience:
        return "early_stop"
    if lr is not None and lr < config.lr_floor():
        return "min_lr"
    return None


class _Interrupt:
    """SIGINT/SIGTERM handler: the first signal asks the loop to stop at the next step
    boundary (and save) and is remembered in `signum` (the exit status: `exit_status`);
    a second one raises KeyboardInterrupt at once (sweep.Terminated for SIGTERM; nothing
    more is saved; the previous checkpoint stays intact). at_once: the first signal
    raises already (the final evaluation: nothing there is left half-done, the training
    state is saved before it). A signal ignored when the context is entered (SIG_IGN:
    SIGINT of a job a shell started in the background) is left ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, at_once: bool = False):
        self.requested = False
        self.at_once = at_once
        self.signum = None      # the first signal that asked to stop (signal.SIGINT or SIGTERM)
        self.previous = {}
        self.during = None      # "validation" while the loop runs one: a stop then waits seconds, so say so
        self.saved_step = None  # the step of the run's latest checkpoint (None: none yet)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                # A signal the parent set to be ignored stays ignored: a shell starts `cmd &` with SIGINT
                # ignored (and nohup SIGHUP), so that a Ctrl-C at the prompt does not reach the background job.
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested or self.at_once:
            raise _signal_error(signum)
        self.signum = signum
        self.requested = True
        if self.during:         # the step boundary is as far away as the rest of the validation
            kept = ("nothing is saved yet" if self.saved_step is None
                    else f"the checkpoint of step {self.saved_step} is kept")
            _note(f"{_SIGNAL_WORDS.get(signum, 'interrupted')}: stopping when this {self.during} ends, then saving "
                  f"the checkpoint; the same signal again stops at once ({kept})")

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


_SIGNAL_WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}


class _StartUp(_Interrupt):
    """SIGINT/SIGTERM from train()'s first line to the loop's first step (reading the corpus, compiling,
    the baseline, the calibration): raised at once (KeyboardInterrupt, sweep.Terminated for SIGTERM)
    and remembered in `signum`, so that train() can say so in one line, remove what the run wrote and
    exit 128 + the signal, as a signal during training does. Without it SIGTERM's default action ended
    the process silently, leaving a folder that held only the lock. The handler stays installed until
    train() returns, under the loop's and the final evaluation's own (_Interrupt), so that no moment is
    left to the default action; `end()`, called once the loop's handler is in place, marks start-up
    over: a signal between those phases still raises at once but is not recorded. A KeyboardInterrupt
    that no start-up signal raised (signum None) is not this guard's."""

    def __init__(self):
        super().__init__(at_once=True)
        self.over = False       # the loop has started: what comes later is not start-up
        self.run = None         # the Run the start-up opened (closed before its files are removed)
        self.created = False    # a new run's files (config.json, vocab.json, ...) were written by this call

    def _handle(self, signum, frame):
        if not self.over:
            self.signum = signum
        raise _signal_error(signum)

    def end(self) -> None:
        """Start-up is over (the loop's handler answers signals from here on). A start-up signal whose
        exception was lost (raised inside a ctypes callback of Numba's cache, which only prints it) stops
        the run here, before its first step."""
        self.over = True
        if self.signum is not None:
            raise _signal_error(self.signum)


def _signal_error(signum) -> KeyboardInterrupt:
    """The exception a stopping signal raises: KeyboardInterrupt for SIGINT, errors.Terminated (a
    KeyboardInterrupt the CLI exits 143 for) for SIGTERM (no import: it may be raised during one)."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def stop_word(summary: dict) -> str:
    """How the summary names the reason a run stopped: its `stopped`, except a run stopped by SIGTERM
    (`kill PID`, a job scheduler), which was "terminated (SIGTERM)", not interrupted (Ctrl-C)."""
    if summary.get("stopped") == "interrupted" and summary.get("signal") == "SIGTERM":
        return "terminated (SIGTERM)"
    return summary.get("stopped")


def exit_status(summary: dict) -> int:
    """The `train` command's exit status for train()'s summary: 0, or for a run stopped by a signal the
    shell's 128 + its number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM (`kill PID`, a job scheduler)."""
    if summary.get("stopped") != "interrupted":
        return 0
    return 128 + int(getattr(signal, summary.get("signal") or "SIGINT"))


class _Clock:
    """Wall seconds the run has spent, over all its sessions: `clock()`."""

    def __init__(self, before: float):
        self.before = before                # seconds of the earlier sessions (model.npz's train.elapsed)
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return self.before + (time.perf_counter() - self.start)


# ---------------------------------------------------------------- one step


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
    from .optim import clip_coef, clip_grad_value, first_nonfinite, grad_norm

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


# ---------------------------------------------------------------- the last good state


class _LastGood:
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

    def take(self, model, opt, rng_state: dict, hidden: tuple, loop: _Loop) -> None:
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

    def restore(self, model, opt, rng) -> tuple[_Loop, tuple]:
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


# ---------------------------------------------------------------- time budget and progress

# (the bar, the progress lines and the wall clock: progress.py)

CALIBRATION_S = 3.0       # at most this long measuring the evaluation speed before training
CALIBRATION_FEW = 3       # ... but this many windows only when just the bar's time left uses it
TIMED_EVAL_SHARE = 0.1    # a timed validation may cost at most this share of its --eval-minutes interval


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
    timing: _Timing | None = None


def train(config: TrainConfig, *, resume: str | os.PathLike | None = None, on_step=None,
          corpus=None) -> dict:
    """Train a model as `config` says; returns a summary dict (see `_summary` and `_final_report`).

    resume: a run folder to continue from its model.npz (its config.json wins;
    build `config` with `resume_config`). on_step: called as on_step(step)
    after every step, for tests (e.g. to send SIGINT). corpus: an already
    loaded data.Corpus to train on instead of reading config.data (sweep
    workers get the token arrays from the client and have no corpus on disk);
    such a run skips the Kneser–Ney baseline (a sweep compares its runs with
    each other, and a worker has no cache to keep the fit in).

    The time budget (--max-minutes) covers the whole session from the first
    training step to the end of the final evaluation: training stops early
    enough to leave the final validation + test evaluation its time, measured
    from the evaluation speed (a short calibration at the start, then every
    validation). Start-up (reading/tokenizing the corpus, compiling the
    kernels, the Kneser–Ney baseline on its first use) is not counted; the
    summary gives its seconds. The folder is locked for the life of the call
    (runs.lock_run).

    Never raises for a diverging run: a nan/inf loss or gradient ends the run
    with stopped="nonfinite" (or is skipped), which is a result, not a crash;
    the saved state is then the last good one (_LastGood).
    """
    started = time.perf_counter()
    validate(config)
    folder = Path(resume if resume is not None else (config.out or default_out(config)))
    # The folder is taken (locked, checked free) and the run set up (corpus, model) before anything
    # is printed, so that a refused or mistaken run prints its one error line only (and leaves no
    # new folder behind); then the folder is named first, once, on stdout (stderr stays for progress
    # and errors).
    new = first_new_folder(folder)
    lock = None
    with _StartUp() as startup:
        try:
            try:
                if resume is None:
                    refuse_sweep_folder(folder)
                lock = lock_run(folder)
                ck, finish = None, None
                if resume is None:
                    refuse_taken(folder)
                else:
                    ck, finish = _resume_point(config, folder)
                s = _prepare(dataclasses.replace(config, out=str(folder)), corpus)
            except BaseException:
                if lock is not None or startup.signum is not None:
                    _give_up_folder(folder, lock, new)
                raise
            try:
                if resume is None:
                    print(f"run folder: {folder}", flush=True)
                elif ck is not None:
                    loop = _Loop.from_arrays(ck.train)
                    print(f"resuming {folder} from step {loop.step} (epoch {loop.epoch})"
                          + (": its training is done; running the final evaluation that did not finish"
                             if finish else ""), flush=True)
                summary = _train_locked(s, resume, on_step, lock, started, baseline=corpus is None, ck=ck,
                                        finish=finish, guard=startup)
                # "run folder: X" opened the output: not repeated at the end
                summary["folder_printed"] = resume is None
                return summary
            except BaseException:
                if startup.signum is not None:
                    _give_up_start_up(startup, folder, lock, new)
                raise
            finally:
                lock.release()
        except BaseException as exc:
            if startup.signum is None:      # not a start-up signal (the loop's own, or no signal at all)
                raise
            # the signal's exception, or what the code it landed in made of it (an import lock's KeyError)
            stop = exc if isinstance(exc, KeyboardInterrupt) else _signal_error(startup.signum)
            _note(_start_up_line(startup.signum, folder, resume, new))
            stop.said = True                # the CLI adds no second line and exits 128 + the signal
            if stop is exc:
                raise
            raise stop from None


def _give_up_folder(folder: Path, lock, new: Path | None) -> None:
    """Release a folder taken by train() that failed before writing anything; the folders that did
    not exist before (from `folder` up to `new`, fileio.first_new_folder's) are removed again, so that a refused or
    mistaken command leaves nothing behind. lock None: a signal came before the folder was locked."""
    from .runs import LOCK
    if lock is not None:
        lock.release()
    if new is None:
        return
    try:
        (folder / LOCK).unlink(missing_ok=True)
    except OSError:
        return
    remove_new_folders(folder, new)


def _give_up_start_up(startup: _StartUp, folder: Path, lock, new: Path | None) -> None:
    """Undo what a new run wrote before a start-up signal (_StartUp): its files, its lock and the
    folders it created, so that the folder is gone again (or, when it existed before, free for the
    next run; a resume's folder is left as it was)."""
    from .runs import BEST, CONFIG, LATEST, METRICS, VOCAB, remove_stale_temp_files
    if startup.run is not None:
        startup.run.close()
    if startup.created:
        for name in (CONFIG, VOCAB, METRICS, LATEST, BEST):
            try:
                (folder / name).unlink(missing_ok=True)
            except OSError:
                pass
        remove_stale_temp_files(folder)
    _give_up_folder(folder, lock, new)


def _start_up_line(signum, folder: Path, resume, new: Path | None) -> str:
    """The one line of a signal during start-up (_StartUp): nothing was trained, and where that leaves the folder."""
    word = _SIGNAL_WORDS.get(signum, "interrupted")
    if resume is not None:
        return (f"{word} during start-up; nothing was trained: {folder} is as it was "
                f"(continue with --resume {folder})")
    gone = new is not None and not folder.exists()
    return f"{word} during start-up; nothing was trained ({folder} {'removed' if gone else 'is free for a new run'})"


def _resume_point(config: TrainConfig, folder: Path) -> tuple:
    """(model.npz of the run `folder` to resume (a checkpoint.Checkpoint), read before anything else;
    _finish_only's reason when the resume only runs the final evaluation, else None).

    Refuses (UserError, nothing written) a run that would stop before its
    first window, already at the --max-steps, --epochs, --max-minutes,
    --patience or --min-lr limit of `config`: resuming it would only repeat
    the final evaluation and log a second stop. A run whose final evaluation
    did not finish is not refused: its resume runs that evaluation
    (_finish_only). Prints nothing (train() prints "resuming RUN from step S
    (epoch E)" once the run is set up). (None, None) when the folder holds no
    model.npz (resume_checkpoint then says what to do).
    """
    from . import checkpoint
    from .runs import LATEST, holds_checkpoint
    if not holds_checkpoint(folder):
        return None, None
    try:
        ck = checkpoint.load(folder / LATEST)
    except checkpoint.CorruptCheckpoint as exc:
        raise UserError(f"{exc}; this run cannot be resumed: restore the file, or train afresh into another "
                        f"--out (its best.npz, if any, still evaluates and generates)") from None
    _check_best(folder)
    loop = _Loop.from_arrays(ck.train)
    lr = float(ck.optim["lr"]) if "lr" in ck.optim else None
    finish = _finish_only(config, loop, folder, lr)
    if finish is None:
        refuse_finished_resume(config, loop, folder, lr=lr)
    return ck, finish


def _check_best(folder: Path) -> None:
    """UserError (one line) when the run's best.npz cannot be read: found before a resume trains, not at
    its final evaluation (which reads it for the test and the sample), with what to do."""
    from . import checkpoint
    from .runs import BEST
    if (folder / BEST).exists():
        try:
            checkpoint.load(folder / BEST)
        except UserError as exc:
            raise UserError(f"{exc}; restore it, or delete it to resume without it (the final test then uses "
                            f"the latest model unless a later validation beats the best recorded one)") from None


def _finish_only(config: TrainConfig, loop: _Loop, folder: Path, lr: float | None) -> str | None:
    """The stop reason of a resume that runs only the final evaluation: the run stopped at `loop` with
    its training done but its final evaluation unfinished (runs.final_evaluation_pending: Ctrl-C or
    SIGTERM during it), and `config`'s limits still stop it before its first window. None otherwise
    (nothing left unfinished, a diverged run, which a resume trains on as before, or limits raised:
    the resume trains on and evaluates at its end).

    A run stopped by its time budget stays stopped while --max-minutes is unchanged (the final
    evaluation's reserve, measured again, could otherwise leave it a few seconds of training).
    """
    from .config import config_from_dict
    from .runs import final_evaluation_pending, read_run_config
    reason = final_evaluation_pending(folder, loop.step)
    if reason is None or reason == "nonfinite":
        return None
    why = stop_reason(config, loop, diverged=False, interrupted=False, elapsed=loop.elapsed, lr=lr)
    if why is None and reason == "max_minutes" and \
            config.max_minutes == config_from_dict(read_run_config(folder)["train"]).max_minutes:
        why = "max_minutes"
    return why


def refuse_finished_resume(config: TrainConfig, loop: _Loop, folder, reserve: float = 0.0,
                           lr: float | None = None) -> None:
    """UserError (one line) when a run resumed at `loop` would stop before its first window.

    reserve: seconds the time budget keeps for the final evaluation (_Timing.reserve);
    0 before the evaluation speed is measured. lr: the saved optimizer's learning
    rate (None: not checked against --min-lr).
    """
    why = stop_reason(config, loop, diverged=False, interrupted=False, elapsed=loop.elapsed, reserve=reserve,
                      lr=lr)
    at = f"{folder} is already at step {loop.step}"
    if why == "max_steps":
        raise UserError(f"{at} (its --max-steps is {config.max_steps}); give --max-steps above {loop.step} "
                        "to train further")
    if why == "epochs":
        raise UserError(f"{at}, the end of its {config.epochs} epoch(s); give --epochs above {config.epochs} "
                        "to train further")
    if why == "max_minutes":
        used = (loop.elapsed + reserve) / 60
        raise UserError(f"{at} and has used its --max-minutes {config.max_minutes:g} budget ({used:.1f} min with "
                        f"the final evaluation); give --max-minutes above {used:.1f}, or --max-steps/--epochs alone, "
                        "to train further")
    if why == "early_stop":
        raise UserError(f"{at} and stopped early: {loop.bad_evals} validations without improvement "
                        f"(--patience {config.patience}); give --patience above {loop.bad_evals} to train further")
    if why == "min_lr":
        raise UserError(f"{at} and stopped when its learning rate fell to {lr:.3g}, below --min-lr "
                        f"{config.lr_floor():.3g}, after {_plateaus(loop.plateaus)}; give --min-lr below {lr:.3g} "
                        "(0 = no floor) to train further")


def _train_locked(s: "_Session", resume, on_step, lock, started: float, baseline: bool = True, ck=None,
                  finish: str | None = None, guard: _StartUp | None = None) -> dict:
    """train() once the folder is locked and the run set up; finish: _finish_only's reason (the session
    trains no window and runs the final evaluation). guard: train()'s start-up guard (_StartUp), told what
    the start-up opened and ended when the loop begins."""
    import numpy as np

    from .baseline import cached_trigram
    from .data import windows
    from .optim import first_nonfinite

    config, model, vocab = s.config, s.model, s.corpus.vocab.to_json()
    if resume is None:
        if clear_unsaved_run(config.out):
            _note(f"{config.out} held a run that stopped before its first checkpoint; training into it afresh")
        run, loop, hidden = Run.create(config.out, s.info, vocab, lock), _Loop(), model.init_state(config.batch_size)
        if guard is not None:
            guard.run, guard.created = run, True
    else:
        loop, hidden = _restore(resume_checkpoint(config.out, s.info, vocab, model.state_dict(), ck=ck), s)
        run = None      # reopened once the time budget's reserve is known (refuse_finished_resume)
    try:
        want = baseline and (len(s.corpus.test) >= 2 or len(s.corpus.valid) >= 2)
        baseline = cached_trigram(s.corpus) if want else None
    except (ValueError, MemoryError) as exc:
        baseline = None
        _note(f"no Kneser-Ney baseline for this corpus ({exc})")
    timing = _Timing(config, final_tokens=_final_tokens(s))
    from ._jit import cache_is_warm
    _phase(config, "reading the compiled kernels from the cache..." if cache_is_warm()
           else "compiling the kernels (about 30 s; later runs read them from the cache)...")
    _warm_up(s, timing)
    startup = time.perf_counter() - started
    if run is None:
        if finish is None:
            refuse_finished_resume(config, loop, config.out, reserve=timing.reserve(), lr=s.opt.lr)
        run = Run.reopen(config.out, s.info, vocab, loop.step, lock)
        if guard is not None:
            guard.run = run
    if timing.reserve_capped():
        _note(f"this machine evaluates {timing.eval_tps:,.0f} tokens/s: the final validation and test "
              f"({timing.final_tokens:,} tokens) need about {timing.needed() / 60:.1f} min, more than half of "
              f"--max-minutes {config.max_minutes:g}; training gets half and the command will overrun")
    s = s._replace(run=run, clock=_Clock(loop.elapsed), timing=timing)
    timing.last_save = timing.last_eval = s.clock()
    if resume is None:
        run.log({"type": "start", "step": 0, "epoch": 1, "params": model.num_params(),
                 "vocab_size": len(s.corpus.vocab), "windows_per_epoch": s.windows_per_epoch,
                 "startup_s": round(startup, 3), "time": 0.0})
        if config.track_jacobian_every:
            run.log({**jacobian_event(model, s.jac_tokens, 0), "time": s.clock()})
        _save(s, loop, hidden)
    else:
        run.log({"type": "resume", "step": loop.step, "epoch": loop.epoch, "pos": loop.pos,
                 "lr": s.opt.lr, "startup_s": round(startup, 3), "time": loop.elapsed})

    nonfinite = None        # the latest non-finite window (its event), for the summary
    last_good = _LastGood(model, s.opt)
    progress = _Progress(s, loop, timing)
    # Overflow warnings would only repeat what the non-finite guard reports in one line.
    try:
        with _Interrupt() as interrupt, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if guard is not None:
                guard.end()         # from here on the loop's handler answers signals (a stop saves the checkpoint)
            interrupt.saved_step = loop.step        # a new run saved step 0 above; a resume starts from its own
            while True:
                stopped = finish or stop_reason(config, loop, interrupted=interrupt.requested, elapsed=s.clock(),
                                                reserve=timing.reserve(), lr=s.opt.lr,
                                                diverged=nonfinite is not None and nonfinite["action"] == "stop")
                if stopped:
                    break
                window = next(windows(s.train_stream, config.bptt, start=loop.pos), None)
                if window is None:      # the epoch's windows are done
                    interrupt.during = "validation"
                    hidden = _end_epoch(s, loop)
                    interrupt.during, interrupt.saved_step = None, loop.step
                    continue
                _, inputs, targets = window
                before = (s.rng.bit_generator.state, hidden, copy.copy(loop))
                t0 = time.perf_counter()
                result = train_step(model, s.opt, config, inputs, targets, hidden, s.rng,
                                    before_update=lambda: last_good.take(model, s.opt, *before))
                seconds = time.perf_counter() - t0
                timing.step_seconds += seconds
                timing.event_seconds += seconds
                timing.step_tokens += result.tokens
                loop.log_tokens += result.tokens
                if result.bad is not None:
                    nonfinite, loop, hidden = _nonfinite(s, loop, hidden, result, last_good, progress)
                    if nonfinite["action"] == "stop":
                        continue        # not counted: the run ends on the last good state
                loop.count(result)
                hidden = result.state
                progress.step(loop, result, seconds)
                applied = result.bad is None
                timing.session_steps += applied
                if applied and loop.step % config.log_every == 0:
                    tps = loop.log_tokens / timing.event_seconds if timing.event_seconds > 0 else 0.0
                    run.log(_step_event(s, loop, result, tps))
                    loop.start_log_interval()
                    timing.event_seconds = 0.0
                interrupt.during = "validation"
                if applied and config.eval_every and loop.step % config.eval_every == 0:
                    _evaluate(s, loop, "every")
                    _save(s, loop, hidden)
                    interrupt.saved_step = loop.step
                elif config.eval_minutes and s.clock() - timing.last_eval >= 60 * config.eval_minutes:
                    _timed_evaluate(s, loop, progress)
                interrupt.during = None
                if config.save_minutes and s.clock() - timing.last_save >= 60 * config.save_minutes:
                    _save(s, loop, hidden)
                    interrupt.saved_step = loop.step
                if applied and config.track_jacobian_every and loop.step % config.track_jacobian_every == 0:
                    run.log({**jacobian_event(model, s.jac_tokens, loop.step), "time": s.clock()})
                if on_step is not None:
                    on_step(loop.step)
            progress.close()
            if stopped == "interrupted" and finish is None:
                # A signal during the last scheduled validation (at --max-steps, say): training is over all
                # the same, so the run stops as finished and only its final evaluation is left, which the
                # signal then stops at once (_final_evaluation): a resume runs only that evaluation.
                stopped = stop_reason(config, loop, diverged=False, interrupted=False, elapsed=s.clock(),
                                      reserve=timing.reserve(), lr=s.opt.lr) or stopped
            # Still inside the handler: a Ctrl-C during the final save sets the flag, not a half-written file.
            if stopped != "nonfinite" or first_nonfinite(model.params) is None:
                _save(s, loop, hidden)      # after a non-finite window: the last good state
            if stopped == "interrupted":
                word = stop_word({"stopped": stopped, "signal": signal.Signals(interrupt.signum).name})
                _note(f"{word} at step {loop.step}: checkpoint saved to {run.latest}; "
                      f"continue with --resume {run.folder}")
            floor = ({"lr": s.opt.lr, "min_lr": config.lr_floor(), "plateaus": loop.plateaus}
                     if stopped == "min_lr" else {})
            # final_evaluation: the final evaluation follows; an "end" event says it finished
            # (runs.final_evaluation_pending: a resume of a run without one runs it)
            run.log({"type": "stop", "reason": stopped, "step": loop.step, "epoch": loop.epoch, **floor,
                     "final_evaluation": stopped != "interrupted", "time": s.clock()})

        summary = _summary(s, loop, stopped, nonfinite)
        summary.update(startup_s=startup, baseline=baseline,
                       signal=signal.Signals(interrupt.signum).name if stopped == "interrupted" else None)
        if stopped != "interrupted":
            summary.update(_final_evaluation(s, loop, hidden, stopped, interrupt))
        summary["elapsed_s"] = s.clock()
        summary["budget_s"] = timing.budget
        return summary
    finally:
        progress.close()
        run.close()


def _final_evaluation(s: "_Session", loop: _Loop, hidden, stopped: str, interrupt: _Interrupt) -> dict:
    """_final_report, which a signal stops at once (a signal that came during the last save stops it
    before it starts), then the "end" event that marks the run finished.

    Training is done and saved before it, so a stop here loses nothing but the
    evaluation: one line says so and how to finish it (`--resume` runs only the
    final evaluation, see runs.final_evaluation_pending), and the
    KeyboardInterrupt (sweep.Terminated for SIGTERM) is raised on, marked
    `said` (the CLI prints no second line and exits 130 or 143).
    """
    import numpy as np
    try:
        with _Interrupt(at_once=True), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if interrupt.requested:
                raise _signal_error(interrupt.signum)
            report = _final_report(s, loop, hidden, stopped)
    except KeyboardInterrupt as exc:
        from .sweep import Terminated
        word = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        _note(f"{word} during the final evaluation, after step {loop.step}: checkpoint saved to {s.run.latest} "
              f"with training done; continue with --resume {s.run.folder} (it runs only the final evaluation)")
        exc.said = True
        raise
    s.run.log({"type": "end", "reason": stopped, "step": loop.step, "epoch": loop.epoch, "time": s.clock()})
    return report


def _note(text: str) -> None:
    """One line on stderr, above the bar if one is showing."""
    import sys

    from tqdm import tqdm
    tqdm.write(text, file=sys.stderr)


def _phase(config: TrainConfig, text: str) -> None:
    """One plain line on stderr at the start of a phase that shows no bar in a log, so that a log is
    not silent for half a minute and looks hung: in place of the bars a run wants (config.progress) but
    cannot draw (stderr is not a terminal). Nothing on a terminal, nor with --no-progress."""
    import sys
    if config.progress and not stderr_is_terminal():
        print(text, file=sys.stderr, flush=True)


def _final_tokens(s: "_Session") -> int:
    """Tokens the final report evaluates (the whole validation and test splits, as batchified)."""
    B = s.config.eval_batch_size
    test_rows = len(s.corpus.test) // B
    return int(s.valid_stream.size + (test_rows * B if len(s.corpus.test) > B * 2 else 0))


def _warm_up(s: "_Session", timing: _Timing) -> None:
    """Compile (or load from Numba's cache) the training and evaluation kernels, and measure the
    evaluation speed on a slice of the validation split, before the clock starts.

    Nothing here touches the model's parameters, the optimizer, the dropout
    Generator or the loop: a throwaway Generator draws the warm-up's masks.
    """
    import numpy as np

    from . import layers
    from .optim import SGD, compile_sgd, grad_norm
    T = min(s.config.bptt, s.train_stream.shape[0] - 1)
    model = s.model
    # train_step's path (the model's gradient buffers, the norm by rows), through _bptt, not
    # train_grads: tests count (and poison) the training calls of train_grads.
    r = model._bptt(s.train_stream[:T], s.train_stream[1:T + 1], model.init_state(s.train_stream.shape[1]),
                    np.random.default_rng(0), None, extras=False, reuse=True)
    rows = {} if model.config.tied else {"encoder.weight": model._grad_buffers.rows}
    grad_norm(r.grads, rows)
    for name, r_rows in rows.items():
        layers.clear_rows(r.grads[name], r_rows)   # what the first step does first; the buffer stays valid
    if isinstance(s.opt, SGD):
        compile_sgd(model.dtype)
    v = s.valid_stream
    if v.shape[0] < 2:
        return
    # The evaluation speed: the median over windows of the same shape as a real evaluation's, after
    # one untimed window (compile, workspace), for up to CALIBRATION_S seconds. Without a budget to
    # reserve or a timed validation to size, only the time left that the bar and the log lines show
    # uses it (the final evaluation's share, command_time_left): CALIBRATION_FEW windows do.
    from .data import windows as _windows
    few = not (s.config.max_minutes or s.config.eval_minutes)
    state, times, t_start = model.init_state(v.shape[1]), [], time.perf_counter()
    for i, (_, inputs, targets) in enumerate(_windows(v, s.config.bptt)):
        t0 = time.perf_counter()
        _, state = model.loss(inputs, targets, state)
        if i > 0 and inputs.shape[0] == s.config.bptt:
            times.append(time.perf_counter() - t0)
        if ((time.perf_counter() - t_start > CALIBRATION_S and len(times) >= 5) or len(times) >= 40
                or (few and len(times) >= CALIBRATION_FEW)):
            break
    if times:
        median = sorted(times)[len(times) // 2]
        timing.observe_eval(s.config.bptt * v.shape[1] * len(times), median * len(times))
        return
    # A validation split shorter than two whole windows (a tiny corpus): its first window once more,
    # timed now that it is compiled. Without it the speed stayed unknown and the final evaluation was
    # left out of the time left until the first validation.
    _, inputs, targets = next(_windows(v, s.config.bptt))
    t0 = time.perf_counter()
    model.loss(inputs, targets, model.init_state(v.shape[1]))
    timing.observe_eval(int(targets.size), time.perf_counter() - t0)


def _timed_evaluate(s: "_Session", loop: _Loop, progress: _Progress) -> None:
    """A report-only validation on a fixed slice of the validation split (every --eval-minutes).

    It changes nothing a later step depends on (lr, patience, best model,
    counters), so runs with and without it are bitwise equal. The slice (the
    first rows of every validation stream) is sized once so that one costs at
    most TIMED_EVAL_SHARE of the interval; it is skipped when it would not fit
    in the time left before the final evaluation.
    """
    t = s.timing
    v = s.valid_stream
    if v.shape[0] < 2:
        return
    if t.timed_rows is None:
        tps = t.eval_tps or 1e4
        tokens = TIMED_EVAL_SHARE * 60 * s.config.eval_minutes * tps
        t.timed_rows = int(min(v.shape[0], max(tokens // v.shape[1], s.config.bptt) + 1))
    if t.eval_tps and t.timed_rows * v.shape[1] / t.eval_tps > t.left(s.clock()):
        t.last_eval = s.clock()
        return
    t0 = time.perf_counter()
    val, count = evaluate_stream(s.model, v[:t.timed_rows], s.config.bptt, bar="timed validation")
    t.observe_eval(count, time.perf_counter() - t0)
    t.last_eval = s.clock()
    t.timed = {"step": loop.step, "loss": val, "tokens": count, "of_tokens": int(v.size)}
    from .runs import fmt_ppl
    s.run.log({"type": "timed_eval", "split": "valid", "step": loop.step, "epoch": loop.epoch, "val_loss": val,
               "val_ppl": _ppl(val), "tokens": count, "of_tokens": int(v.size), "time": s.clock()})
    progress.write(f"| step {loop.step:6d} | epoch {loop.epoch:3d} | timed validation on {count:,} of "
                   f"{v.size:,} tokens | loss {val:6.3f} | ppl {fmt_ppl(_ppl(val)):>9s} | report only")


def check_batches(corpus, config: TrainConfig) -> None:
    """UserError (one line: what is short, by how much, which flag to lower) unless the splits fill the batches.

    Training: each of the --batch-size B streams of the (N // B, B) matrix
    must hold one whole --bptt T window, T inputs and the next token of the
    last one (N // B >= T + 1): with fewer, every window is shorter than T and
    the run silently trains a shorter BPTT than asked. Validation: each of the
    --eval-batch-size streams must hold one prediction (2 tokens); a shorter
    window there only evaluates fewer tokens, so no whole window is needed.
    """
    n, B, T = len(corpus.train), config.batch_size, config.bptt
    if n // B < T + 1:
        fit = n // (T + 1)
        fix = [f"--batch-size {fit} or less", "a smaller --bptt"] if fit else ["a smaller --bptt and --batch-size"]
        raise UserError(f"the training split's {n:,} tokens are too few for batch size {B} with --bptt {T}: each "
                        f"of the {B} streams needs one window of {T + 1} tokens ({B * (T + 1):,} in all); "
                        f"give {_either(fix + ['a larger corpus'])}")
    n, E = len(corpus.valid), config.eval_batch_size
    if n // E < 2:
        fix = [f"--eval-batch-size {n // 2} or less"] if n // 2 else []
        fix += [] if corpus.split_policy == "predefined" else ["a larger --valid-fraction"]
        raise UserError(f"the validation split's {n:,} tokens are too few for --eval-batch-size {E}: each of its "
                        f"{E} streams needs 2 tokens (one prediction); give {_either(fix + ['a larger corpus'])}")


def _either(options: list[str]) -> str:
    """'a, b or c'."""
    return ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]


def _prepare(config: TrainConfig, corpus=None) -> _Session:
    """Corpus, batches, model and optimizer of a run (no files written yet); lr and out resolved."""
    import numpy as np

    from . import __version__
    from .data import batchify, load_corpus
    from .model import RNNModel
    from .optim import make_optimizer

    out = Path(config.out or default_out(config))
    corpus = load_corpus(config.data) if corpus is None else corpus
    check_batches(corpus, config)
    mcfg = model_config(config, len(corpus.vocab))
    model = RNNModel(mcfg, seed=config.seed)
    opt = make_optimizer(config.optimizer, model.params, config.lr, momentum=config.momentum,
                         nesterov=config.nesterov, betas=(config.beta1, config.beta2))
    config = dataclasses.replace(config, lr=opt.lr, out=str(out))
    B, T = config.batch_size, config.bptt
    train_stream = batchify(corpus.train, B)
    valid_stream = batchify(corpus.valid, config.eval_batch_size)
    jac_tokens = tracking_tokens(corpus) if config.track_jacobian_every else None
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
    if s.timing is not None:
        s.timing.last_save = s.clock()


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


def _validate_full(s: _Session, bar: str) -> float:
    """The whole validation split's loss; teaches the time budget the evaluation speed."""
    t0 = time.perf_counter()
    val, count = evaluate_stream(s.model, s.valid_stream, s.config.bptt, bar=bar)
    if s.timing is not None:
        s.timing.observe_eval(count, time.perf_counter() - t0)
        s.timing.last_eval = s.clock()
    return val


def _evaluate(s: _Session, loop: _Loop, reason: str) -> None:
    """A scheduled validation: keeps best.npz, anneals the lr when it did not improve, logs and prints."""
    from .runs import fmt_ppl
    val = _validate_full(s, "validation")
    lr = s.opt.lr
    if not loop.count_eval(val):
        s.opt.lr = s.opt.lr / s.config.lr_decay
    best = _keep_best(s, loop, val)
    s.run.log(_eval_event(s, loop, reason, val, best, lr))
    _note(f"| step {loop.step:6d} | epoch {loop.epoch:3d} | valid loss {val:6.3f} | "
          f"ppl {fmt_ppl(_ppl(val)):>9s}{' (best)' if best else ''} | lr {s.opt.lr:.4g}")


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


def _nonfinite(s: _Session, loop: _Loop, hidden, result: StepResult, last_good: _LastGood,
               progress: _Progress) -> tuple[dict, _Loop, tuple]:
    """Handle a non-finite window: log and print it, and decide (event's action) to skip or stop.

    Stop (--on-nonfinite stop, broken parameters, or --max-skips skipped steps
    in a row): when the window's loss or carried state was non-finite, the
    parameters of the last update are broken and the whole training state goes
    back to the last good one. The event's "step" is the first step the run
    discards (so the run keeps step - 1 steps); "detected_at" is the window
    where the non-finite value appeared. Returns (event, loop, hidden state).
    """
    from .optim import first_nonfinite
    broken_params = first_nonfinite(s.model.params) is not None
    action = "stop" if broken_params else s.config.on_nonfinite
    detected = loop.step + 1
    too_many = action == "skip" and loop.skips_in_row + 1 >= s.config.max_skips
    if too_many:
        action = "stop"
    rolled_back = None
    if action == "stop" and (broken_params or result.bad == "loss" or result.bad.startswith("state.")) \
            and last_good.held:
        loop, hidden = last_good.restore(s.model, s.opt, s.rng)
        rolled_back = loop.step
    event = {"step": loop.step + 1, "detected_at": detected, "epoch": loop.epoch, "tensor": result.bad,
             "loss": result.loss, "grad_norm": result.grad_norm, "action": action,
             "rolled_back_to": rolled_back, "max_skips": bool(too_many)}
    s.run.log({"type": "nonfinite", **event, "time": s.clock()})
    if action == "skip":
        what = "skipping the step"
    else:
        what = "stopping"
        if too_many:
            what = f"stopping: {s.config.max_skips} steps in a row were non-finite (--max-skips)"
        if rolled_back is not None:
            what += (f"; rolled back to step {rolled_back}, the last state whose loss and gradients were finite")
    progress.write(f"non-finite values at step {detected} (first bad tensor: {result.bad}); {what}")
    return event, loop, hidden


def _step_event(s: _Session, loop: _Loop, result: StepResult, tokens_per_s: float) -> dict:
    """The event every --log-every steps: this step's figures and the averages since the last event.
    tokens_per_s: training tokens per second inside training steps since the last event (see _Timing)."""
    avg = loop.log_loss / max(loop.log_steps, 1)
    return {"type": "step", "step": loop.step, "epoch": loop.epoch, "loss": result.loss, "ppl": _ppl(result.loss),
            "loss_avg": avg, "grad_norm": result.grad_norm, "grad_norm_clipped": result.grad_norm_clipped,
            "clipped": bool(result.clipped), "clip_fraction": loop.log_clipped / max(loop.log_steps, 1),
            "lr": result.lr, "tokens_per_s": tokens_per_s, "tokens": loop.tokens,
            **({"omega": result.omega} if result.omega is not None else {}), "time": s.clock()}


def _summary(s: _Session, loop: _Loop, stopped: str, nonfinite: dict | None) -> dict:
    """train()'s result as the loop left it (format_summary prints it; _final_report adds to it).

    tokens_per_s: this session's training tokens per second inside training steps (see _Timing); 0
    when the session applied no step (a run that diverged at once has no speed to report).
    val_step: the step of val_loss (the latest full validation; None before one); timed_val: this
    session's latest timed validation (_Timing.timed) or None."""
    elapsed = s.clock()
    t = s.timing
    return {"run_dir": str(s.run.folder), "stopped": stopped, "steps": loop.step, "epoch": loop.epoch,
            "tokens": loop.tokens, "elapsed_s": elapsed,
            "tokens_per_s": t.step_tokens / t.step_seconds if t.step_seconds > 0 and t.session_steps else 0.0,
            "lr": s.opt.lr, "val_loss": loop.val_loss, "val_ppl": _ppl(loop.val_loss),
            "val_step": loop.last_eval_step if loop.last_eval_step >= 0 else None, "timed_val": t.timed,
            "best_val_loss": loop.best_saved, "best_val_ppl": _ppl(loop.best_saved),
            "clip_fraction": loop.clipped_total / max(loop.step - loop.skipped, 1),
            "plateaus": loop.plateaus, "min_lr": s.config.lr_floor(),
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
    from .runs import fmt_ppl

    report = {}
    if loop.last_eval_step != loop.step and stopped != "nonfinite":
        _phase(s.config, f"final validation on the validation split ({s.valid_stream.size:,} tokens)...")
        val = _validate_full(s, "final validation")
        best = _keep_best(s, loop, val)
        if best:
            _save(s, loop, hidden)
        report.update(val_loss=val, val_ppl=_ppl(val), val_step=loop.step, best_val_loss=loop.best_saved,
                      best_val_ppl=_ppl(loop.best_saved))
        s.run.log(_eval_event(s, loop, "final", val, best, s.opt.lr))
        _note(f"| final validation | loss {val:6.3f} | ppl {fmt_ppl(_ppl(val))}")
    report["sampled_from"] = "best" if s.run.best.exists() else "latest"
    if report["sampled_from"] == "best":
        s.model.load_state_dict(checkpoint.load(s.run.best).model)
    if len(s.corpus.test) > s.config.eval_batch_size * 2 and first_nonfinite(s.model.params) is None:
        test = batchify(s.corpus.test, s.config.eval_batch_size)
        _phase(s.config, f"evaluating on the test split ({test.size:,} tokens, {report['sampled_from']} model)...")
        test_loss, _ = evaluate_stream(s.model, test, s.config.bptt, bar="test")
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


def _baseline_lines(s: dict) -> list[str]:
    """The Kneser–Ney trigram beside the result, and whether the model has beaten it."""
    from .runs import fmt_ppl
    b = s.get("baseline")
    if not b:
        return []
    split = "test" if "test_ppl" in s and "test" in b else "valid" if "valid" in b else None
    if split is None:
        return []
    ours, which = (s["test_ppl"], "") if split == "test" else _valid_figure(s)
    figures = ", ".join(f"{k} {fmt_ppl(b[k]['ppl'])}" for k in ("valid", "test") if k in b)
    lines = [f"Kneser-Ney trigram baseline (same split and vocabulary): {figures}"]
    if ours is None:
        # no validation has run yet (a run stopped before its first one): nothing to compare, which is not a
        # failure of the model
        lines.append("  the model has not been evaluated yet, so there is nothing to compare"
                     + (f": {_resume_command(s)}" if s.get("stopped") == "interrupted" else ""))
    elif not math.isfinite(ours):
        lines.append("  the model has no finite perplexity: it has not beaten the baseline")
    elif ours < b[split]["ppl"]:
        lines.append(f"  the model beats it on {split}{which}: {fmt_ppl(ours)} < {fmt_ppl(b[split]['ppl'])}")
    else:
        lines.append(f"  the model has NOT beaten it yet on {split}{which}: {fmt_ppl(ours)} >= "
                     f"{fmt_ppl(b[split]['ppl'])}" + _longer_hint(s))
    return lines


def _valid_figure(s: dict) -> tuple:
    """(the validation perplexity to hold against the baseline, how the summary names it): the best full
    validation (scheduled or final), or the latest timed one (a slice of the split, --eval-minutes) when it
    came later or is the only one; (None, "") when the run has none."""
    full = s["best_val_ppl"] if math.isfinite(s["best_val_loss"]) else None
    timed = s.get("timed_val")
    if timed and (full is None or s.get("val_step") is None or timed["step"] > s["val_step"]):
        return _ppl(timed["loss"]), (f" (the latest validation, a timed one at step {timed['step']} on "
                                     f"{timed['tokens']:,} of {timed['of_tokens']:,} tokens)")
    return full, ""


def _longer_hint(s: dict) -> str:
    """What would let a run that has not beaten the baseline train longer, by how it stopped."""
    stopped = s.get("stopped")
    if stopped == "interrupted":
        return f" (train longer: {_resume_command(s)})"
    if stopped in ("nonfinite", "min_lr"):
        return ""       # more steps would not help: the summary says why it stopped
    flag = {"max_steps": "--max-steps", "max_minutes": "--max-minutes", "epochs": "--epochs",
            "early_stop": "--patience"}.get(stopped, "--max-minutes or --epochs")
    return f" (train longer: raise {flag})"


def _resume_command(s: dict) -> str:
    return f"continue it with python cli.py train --resume {s['run_dir']}"


def _plateaus(n: int) -> str:
    return f"{n} plateau" + ("" if n == 1 else "s")


def format_summary(s: dict) -> str:
    """The lines the train command prints at the end."""
    from .runs import fmt_ppl
    budget = s.get("budget_s", math.inf)
    lines = [f"run folder: {s['run_dir']}",
             f"stopped: {stop_word(s)} after {s['steps']} {plural(s['steps'], 'step')} ({s['tokens']:,} tokens, "
             f"{s['elapsed_s'] / 60:.1f} min" + (f" of a {budget / 60:g}-min budget" if math.isfinite(budget) else "")
             # (no figure from a session that applied no step: a resume that ran only the final evaluation,
             # a run whose first step was already non-finite)
             + (f", {s['tokens_per_s']:,.0f} training tokens/s" if s["tokens_per_s"] > 0 else "") + ")",
             "   ".join(([f"valid ppl: {fmt_ppl(s['val_ppl'])}"] if not math.isnan(s["val_loss"]) else [])
                        + ([f"best valid ppl: {fmt_ppl(s['best_val_ppl'])}"]
                           if math.isfinite(s["best_val_loss"]) else [])
                        + [f"lr: {s['lr']:.4g}", f"clipped steps: {100 * s['clip_fraction']:.1f}%"])]
    if s["stopped"] == "min_lr":
        lines.insert(2, f"  the learning rate fell below --min-lr {s['min_lr']:.3g} after {_plateaus(s['plateaus'])} "
                        "(validations without improvement, each dividing it by --lr-decay); more steps would "
                        "barely move the weights")
    if "test_ppl" in s:
        lines.append(f"test ppl ({s['sampled_from']} model): {fmt_ppl(s['test_ppl'])}")
    lines += _baseline_lines(s)
    if "startup_s" in s:
        lines.append(f"start-up (corpus, compiling, baseline, calibration; not in the budget): {s['startup_s']:.1f} s")
    if s["skipped"]:
        lines.append(f"non-finite steps skipped: {s['skipped']}")
    if s["nonfinite"] and s["stopped"] == "nonfinite":
        nf = s["nonfinite"]
        why = f" (stopped after --max-skips non-finite steps in a row)" if nf.get("max_skips") else ""
        back = (f"; rolled back to step {nf['rolled_back_to']}, the last state whose loss and gradients were finite"
                if nf.get("rolled_back_to") is not None else "")
        lines.append(f"the run diverged: non-finite {nf['tensor']} at step {nf.get('detected_at', nf['step'])}{back}; "
                     "model.npz holds the last good parameters" + why)
    if s.get("sample"):
        lines.append(f"sample ({s['sampled_from']} model):")
        lines += ["  " + line for line in s["sample"].splitlines()]     # one sentence per line
    # No line twice: a new run's output opened with "run folder: X" (train() printed it there so that the
    # folder can be found while the run goes on); a resumed run's opened with "resuming X from step S".
    return "\n".join(lines[1:] if s.get("folder_printed") else lines)
