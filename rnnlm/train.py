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
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

STOP_REASONS = ("epochs", "max_steps", "max_minutes", "early_stop", "nonfinite", "interrupted")

# Fields that `--resume` may change: they decide when to stop and what to print,
# never what a step computes (so a resumed run still matches an uninterrupted one).
RESUME_OVERRIDABLE = ("epochs", "max_steps", "max_minutes", "log_every", "progress",
                      "on_nonfinite", "sample_words", "patience", "track_jacobian_every")


def _default_data_config():
    from .data import DataConfig
    return DataConfig()


@dataclass
class TrainConfig:
    """Every setting of a training run; saved whole in config.json and in each checkpoint."""

    data: "DataConfig" = field(default_factory=_default_data_config)  # corpus and tokenizer, see data.py
    # model (see model.ModelConfig)
    cell: str = "lstm"              # rnn | lstm | gru
    activation: str = "tanh"        # rnn only: tanh, relu, sigmoid, tanh:n, scaled-tanh:a,b
    emsize: int = 256               # embedding size E
    hidden: int = 256               # hidden size H of every layer
    layers: int = 1                 # stacked recurrent layers
    dropout: float = 0.2            # drop probability (embedding, between layers, output); 0 = none
    tied: bool = False              # share encoder and decoder weights (needs emsize == hidden)
    init: str = "default"           # default | xavier | orthogonal | identity
    recurrent_scale: float = 1.0    # multiplies every W_hh after init (> 1 to provoke explosions)
    forget_bias: float = 0.0        # lstm: added to the forget-gate bias at init
    dtype: str = "float32"          # parameter dtype; float64 only for checks
    # batches
    bptt: int = 35                  # truncated-BPTT window length T
    batch_size: int = 32            # parallel streams B in training
    eval_batch_size: int = 10       # streams in validation/test evaluation (pytorch/examples: 10)
    # optimizer and clipping
    optimizer: str = "sgd"          # sgd | momentum | adagrad | adam
    lr: float | None = None         # None = per optimizer: sgd 20, momentum 2, adagrad 0.1, adam 0.001
    momentum: float = 0.9           # momentum coefficient (optimizer momentum)
    nesterov: bool = False          # Nesterov momentum (optimizer momentum)
    beta1: float = 0.9              # Adam's first-moment decay
    beta2: float = 0.999            # Adam's second-moment decay
    clip_norm: float = 0.25         # rescale gradients whose joint L2 norm exceeds this; 0 = off
    clip_value: float = 0.0         # clip each gradient element to [-x, x]; 0 = off (exclusive with clip_norm)
    omega: float = 0.0              # weight α of the Ω regularizer (Pascanu et al. 2013; rnn only, omega.py); 0 = off
    lr_decay: float = 4.0           # divide lr by this when validation does not improve; 1 = never
    patience: int = 3               # stop after this many evaluations in a row without improvement; 0 = never
    # budget and reporting
    epochs: int = 40                # passes over the training stream
    max_steps: int = 0              # stop after this many steps (windows) in total; 0 = no limit
    max_minutes: float = 10.0       # stop after this much wall time in total (over resumes); 0 = no limit
    eval_every: int = 1000          # also validate every this many steps (besides epoch ends); 0 = epoch ends only
    log_every: int = 10             # write a step event to metrics.jsonl every this many steps
    track_jacobian_every: int = 0   # log a cheap Jacobian lag curve every this many steps (and at step 0); 0 = off
    seed: int = 0                   # model init and dropout masks
    out: str | None = None          # run folder; None = runs/<cell>-<YYYYmmdd-HHMMSS>
    on_nonfinite: str = "stop"      # stop | skip: what a nan/inf loss or gradient does
    sample_words: int = 60          # words generated from the best model at the end; 0 = none
    progress: bool = True           # tqdm bar on stderr


def config_to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(d: dict) -> TrainConfig:
    """Inverse of config_to_dict; unknown keys are an error (another version's config)."""
    from .data import DataConfig
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise UserError(f"config has settings this rnnlm does not know: {', '.join(unknown)}")
    d = dict(d)
    data = d.pop("data", None) or {}
    data_names = {f.name for f in dataclasses.fields(DataConfig)}
    unknown = sorted(set(data) - data_names)
    if unknown:
        raise UserError(f"config has data settings this rnnlm does not know: {', '.join(unknown)}")
    return TrainConfig(data=DataConfig(**data), **d)


def model_config(config: TrainConfig, vocab_size: int):
    """The ModelConfig a TrainConfig describes, for a vocabulary of `vocab_size`."""
    from .model import ModelConfig
    return ModelConfig(vocab_size=vocab_size, cell=config.cell, activation=config.activation,
                       emsize=config.emsize, hidden=config.hidden, layers=config.layers,
                       dropout=config.dropout, tied=config.tied, init=config.init,
                       recurrent_scale=config.recurrent_scale, forget_bias=config.forget_bias,
                       dtype=config.dtype)


def validate(config: TrainConfig) -> None:
    """UserError for settings that cannot work together (model options: ModelConfig.validate)."""
    from .optim import OPTIMIZERS
    for name in ("bptt", "batch_size", "eval_batch_size", "epochs", "log_every"):
        if getattr(config, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    for name in ("max_steps", "max_minutes", "eval_every", "patience", "clip_norm", "clip_value", "sample_words",
                 "track_jacobian_every"):
        v = getattr(config, name)
        if not v >= 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0 (0 = off), got {v}")
    if config.clip_norm > 0 and config.clip_value > 0:
        raise UserError("choose one of --clip-norm and --clip-value (set the other to 0)")
    if config.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer '{config.optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
    if config.lr is not None and not config.lr > 0:
        raise UserError(f"--lr must be positive, got {config.lr}")
    if not config.lr_decay >= 1:
        raise UserError(f"--lr-decay must be >= 1 (1 = never anneal), got {config.lr_decay}")
    if not config.omega >= 0:
        raise UserError(f"--omega must be >= 0 (0 = off), got {config.omega}")
    if config.omega > 0 and config.cell != "rnn":
        raise UserError(f"--omega (the Ω regularizer) is for vanilla RNNs (--cell rnn), not --cell {config.cell}")
    if config.on_nonfinite not in ("stop", "skip"):
        raise UserError(f"--on-nonfinite must be stop or skip, got '{config.on_nonfinite}'")


def config_from_args(args) -> tuple[TrainConfig, str | None]:
    """(TrainConfig, resume folder or None) from the `train` command's flags.

    Flags left out keep the TrainConfig defaults (argparse defaults are None so
    that "not given" is visible). Two conveniences: --clip-value alone turns
    norm clipping off, and --epochs or --max-steps without --max-minutes lifts
    the default time budget. With --resume the run's saved settings are used;
    flags may change only RESUME_OVERRIDABLE ones.
    """
    from .data import DataConfig
    from .data import config_from_args as data_config_from_args
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("data", "progress")]
    given = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if getattr(args, "no_progress", False):
        given["progress"] = False
    if "clip_value" in given and "clip_norm" not in given:
        given["clip_norm"] = 0.0
    if ("epochs" in given or "max_steps" in given) and "max_minutes" not in given:
        given["max_minutes"] = 0.0
    data = data_config_from_args(args)
    if getattr(args, "corpus", None) is None:
        data.corpus = DataConfig().corpus
    if args.resume:
        defaults = dataclasses.asdict(DataConfig())
        data_given = {k: v for k, v in dataclasses.asdict(data).items() if v != defaults[k]}
        if getattr(args, "corpus", None) is not None:
            data_given["corpus"] = args.corpus
        given.pop("out", None)
        return resume_config(args.resume, dict(given, data=data_given)), args.resume
    return TrainConfig(data=data, **given), None


# ---------------------------------------------------------------- run folder


def default_out(config: TrainConfig) -> str:
    return str(Path("runs") / f"{config.cell}-{time.strftime('%Y%m%d-%H%M%S')}")


# Everything about a run folder lives in runs.py; these names stay importable from here.
from .runs import (Metrics as _Metrics, evaluate_stream, finite_or_none as _finite_or_none,  # noqa: E402,F401
                   ppl as _ppl, read_run_config, resume_config, run_evaluate,
                   run_text_ids, truncate_metrics as _truncate_metrics)


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
    elapsed: float = 0.0       # wall seconds spent in this run, over all sessions
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
    log_tokens: int = 0        # tokens since the last step event
    val_loss: float = math.nan  # latest validation loss

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


# ---------------------------------------------------------------- train


def train(config: TrainConfig, *, resume: str | os.PathLike | None = None, on_step=None) -> dict:
    """Train a model as `config` says; returns a summary dict (see the end of this function).

    resume: a run folder to continue from its model.npz (its config.json wins;
    build `config` with `resume_config`). on_step: called as on_step(step)
    after every step, for tests (e.g. to send SIGINT).

    Never raises for a diverging run: a nan/inf loss or gradient ends the run
    with stopped="nonfinite" (or is skipped), which is a result, not a crash.
    """
    import numpy as np
    from tqdm import tqdm

    from . import __version__, checkpoint
    from .data import batchify, load_corpus, windows
    from .model import RNNModel
    from .omega import omega_and_grad
    from .optim import clip_grad_norm, clip_grad_value, first_nonfinite, grad_norm, make_optimizer

    validate(config)
    if resume is not None:
        config = dataclasses.replace(config, out=str(resume))
    out = Path(config.out or default_out(config))
    corpus = load_corpus(config.data)
    vocab = corpus.vocab
    mcfg = model_config(config, len(vocab))
    model = RNNModel(mcfg, seed=config.seed)
    opt = make_optimizer(config.optimizer, model.params, config.lr, momentum=config.momentum,
                         nesterov=config.nesterov, betas=(config.beta1, config.beta2))
    config = dataclasses.replace(config, lr=opt.lr, out=str(out))
    # Dropout masks get their own stream, independent of the init draws.
    rng = np.random.default_rng([config.seed, 1])
    B, T = config.batch_size, config.bptt
    train_stream = batchify(corpus.train, B)
    valid_stream = batchify(corpus.valid, config.eval_batch_size)
    jac_tokens = tracking_tokens(corpus) if config.track_jacobian_every else None
    if train_stream.shape[0] < 2:
        raise UserError(f"the training split ({len(corpus.train)} tokens) is too small for "
                        f"--batch-size {B}")
    windows_per_epoch = len(range(0, train_stream.shape[0] - 1, T))
    run_info = {"train": config_to_dict(config), "model": dataclasses.asdict(mcfg),
                "corpus": {"checksum": corpus.checksum,
                           "tokens": {s: int(len(getattr(corpus, s))) for s in ("train", "valid", "test")},
                           "oov_rate": {k: float(v) for k, v in corpus.oov_rate.items()}},
                "rnnlm_version": __version__}
    vocab_json = vocab.to_json()

    loop = _Loop()
    state = model.init_state(B)
    if resume is not None:
        saved = read_run_config(out)
        if saved.get("corpus", {}).get("checksum") != corpus.checksum:
            raise UserError(f"the corpus or tokenizer changed since {out} was trained "
                            "(checksum differs); resuming would mix data")
        ck = checkpoint.load(out / "model.npz")
        checkpoint.check_model_arrays(ck, model.state_dict())
        if ck.vocab != vocab_json:
            raise UserError(f"{out / 'model.npz'} was saved with another vocabulary")
        model.load_state_dict(ck.model)
        opt.load_state_dict(ck.optim)
        loop = _Loop.from_arrays(ck.train)
        rng.bit_generator.state = json.loads(str(ck.train["rng"]))
        state = tuple(np.array(ck.train[f"state.{i}"]) for i in range(model.n_state))
        _truncate_metrics(out / "metrics.jsonl", loop.step)
    else:
        if (out / "config.json").exists():
            raise UserError(f"{out} already holds a run; use --resume {out} or another --out")
        out.mkdir(parents=True, exist_ok=True)
        checkpoint.atomic_write_json(out / "config.json", run_info)
        checkpoint.atomic_write_json(out / "vocab.json", vocab_json)
        (out / "metrics.jsonl").unlink(missing_ok=True)

    metrics = _Metrics(out / "metrics.jsonl")
    session_start = time.perf_counter()
    elapsed0 = loop.elapsed

    def now_elapsed():
        return elapsed0 + (time.perf_counter() - session_start)

    def save(path):
        """Everything a resume needs: model, optimizer, loop counters, RNG, carried state."""
        loop.elapsed = now_elapsed()
        train_arrays = loop.to_arrays()
        train_arrays["rng"] = json.dumps(rng.bit_generator.state)
        for i, s in enumerate(state):
            train_arrays[f"state.{i}"] = s
        checkpoint.save(path, model.state_dict(), config=run_info, vocab=vocab_json,
                        optim=opt.state_dict(), train=train_arrays)

    def save_best(val):
        """best.npz: the model only (no optimizer), with the step and its validation loss."""
        loop.best_saved = val
        checkpoint.save(out / "best.npz", model.state_dict(), config=run_info, vocab=vocab_json,
                        train={"step": np.array(loop.step), "epoch": np.array(loop.epoch),
                               "val_loss": np.array(val)})

    def evaluate_and_anneal(reason, save_latest=True):
        """Validate; keep best.npz; anneal lr / count patience; save model.npz."""
        val, _ = evaluate_stream(model, valid_stream, T)
        loop.val_loss = val
        loop.last_eval_step = loop.step
        improved = val < loop.best_val
        lr_before = opt.lr
        if improved:
            loop.best_val = val
            loop.bad_evals = 0
        else:
            loop.bad_evals += 1
            opt.lr = opt.lr / config.lr_decay
        is_best = val < loop.best_saved
        if is_best:
            save_best(val)
        metrics.log({"type": "eval", "split": "valid", "reason": reason, "step": loop.step,
                     "epoch": loop.epoch, "val_loss": val, "val_ppl": _ppl(val), "best": is_best,
                     "best_val_ppl": _ppl(loop.best_saved), "lr": lr_before, "next_lr": opt.lr,
                     "time": now_elapsed()})
        tqdm.write(f"| step {loop.step:6d} | epoch {loop.epoch:3d} | valid loss {val:6.3f} | "
                   f"ppl {_ppl(val):9.2f}{' (best)' if is_best else ''} | lr {opt.lr:.4g}",
                   file=sys.stderr)
        if save_latest:
            save(out / "model.npz")

    if resume is None:
        metrics.log({"type": "start", "step": 0, "epoch": 1, "params": model.num_params(),
                     "vocab_size": len(vocab), "windows_per_epoch": windows_per_epoch, "time": 0.0})
        if config.track_jacobian_every:
            metrics.log({**jacobian_event(model, jac_tokens, 0), "time": now_elapsed()})
        save(out / "model.npz")
    else:
        metrics.log({"type": "resume", "step": loop.step, "epoch": loop.epoch, "pos": loop.pos,
                     "lr": opt.lr, "time": loop.elapsed})

    stopped = None
    nonfinite = None
    bar = None
    log_t0 = time.perf_counter()
    # Overflow warnings would only repeat what the non-finite guard reports in one line.
    with _Interrupt() as interrupt, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            it = None
            while True:
                if interrupt.requested:
                    stopped = "interrupted"
                elif loop.epoch > config.epochs:
                    stopped = "epochs"
                elif config.max_steps and loop.step >= config.max_steps:
                    stopped = "max_steps"
                elif config.max_minutes and now_elapsed() >= 60 * config.max_minutes:
                    stopped = "max_minutes"
                elif config.patience and loop.bad_evals >= config.patience:
                    stopped = "early_stop"
                if stopped:
                    break
                if it is None:
                    it = windows(train_stream, T, start=loop.pos)
                    if bar is not None:
                        bar.close()
                    bar = tqdm(total=windows_per_epoch, initial=loop.window, desc=f"epoch {loop.epoch}",
                               disable=not config.progress, unit="win", leave=False, file=sys.stderr)
                try:
                    _, inputs, targets = next(it)
                except StopIteration:
                    # Epoch end: validate (unless just done), report, reset the carried state.
                    if loop.last_eval_step != loop.step:
                        evaluate_and_anneal("epoch", save_latest=False)
                    ep_loss = loop.ep_loss / max(loop.ep_steps, 1)
                    metrics.log({"type": "epoch", "step": loop.step, "epoch": loop.epoch,
                                 "train_loss": ep_loss, "train_ppl": _ppl(ep_loss),
                                 "steps": loop.window, "clip_fraction": loop.ep_clipped / max(loop.window, 1),
                                 "skipped": loop.skipped, "lr": opt.lr, "time": now_elapsed()})
                    loop.epoch += 1
                    loop.pos = loop.window = 0
                    loop.ep_loss, loop.ep_steps, loop.ep_clipped = 0.0, 0, 0
                    state = model.init_state(B)
                    it = None
                    save(out / "model.npz")
                    continue

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
                loop.step += 1
                loop.window += 1
                loop.pos += inputs.shape[0]
                n_tok = int(targets.size)
                loop.tokens += n_tok
                loop.log_tokens += n_tok
                loss = float(loss)
                norm = grad_norm(grads) if math.isfinite(loss) else math.nan
                bad = None
                if not math.isfinite(loss):
                    bad = "loss"
                elif not math.isfinite(norm):
                    bad = first_nonfinite(grads) or "gradient norm"
                else:
                    bad = first_nonfinite({f"state.{i}": s for i, s in enumerate(new_state)})
                if bad is not None:
                    params_ok = first_nonfinite(model.params) is None
                    action = config.on_nonfinite if params_ok else "stop"
                    nonfinite = {"step": loop.step, "epoch": loop.epoch, "tensor": bad,
                                 "loss": loss, "grad_norm": norm, "action": action}
                    metrics.log({"type": "nonfinite", **nonfinite, "time": now_elapsed()})
                    tqdm.write(f"non-finite values at step {loop.step} "
                               f"(first bad tensor: {bad}); "
                               + ("skipping the step" if action == "skip" else "stopping"), file=sys.stderr)
                    if action == "skip":
                        loop.skipped += 1
                        bar.update(1)
                        if on_step is not None:
                            on_step(loop.step)
                        continue
                    # The bad step was not applied: the parameters are the last good ones.
                    loop.step -= 1
                    loop.window -= 1
                    loop.pos -= inputs.shape[0]
                    loop.tokens -= n_tok
                    if params_ok:
                        save(out / "model.npz")
                    stopped = "nonfinite"
                    break

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
                lr_used = opt.lr
                opt.step(model.params, grads)
                state = new_state
                loop.ep_loss += loss
                loop.ep_steps += 1
                loop.ep_clipped += clipped
                loop.clipped_total += clipped
                loop.log_loss += loss
                loop.log_steps += 1
                loop.log_clipped += clipped

                if loop.step % config.log_every == 0:
                    dt = max(time.perf_counter() - log_t0, 1e-9)
                    avg = loop.log_loss / max(loop.log_steps, 1)
                    tps = loop.log_tokens / dt
                    metrics.log({"type": "step", "step": loop.step, "epoch": loop.epoch, "loss": loss,
                                 "ppl": _ppl(loss), "loss_avg": avg, "grad_norm": norm,
                                 "grad_norm_clipped": norm_after, "clipped": bool(clipped),
                                 "clip_fraction": loop.log_clipped / max(loop.log_steps, 1),
                                 "lr": lr_used, "tokens_per_s": tps, "tokens": loop.tokens,
                                 **({"omega": omega} if omega is not None else {}),
                                 "time": now_elapsed()})
                    bar.set_postfix_str(f"loss {avg:.3f} ppl {_ppl(avg):.1f} |g| {norm:.3g} "
                                        + (f"omega {omega:.3g} " if omega is not None else "")
                                        + f"{tps:,.0f} tok/s", refresh=False)
                    loop.log_loss, loop.log_steps, loop.log_clipped, loop.log_tokens = 0.0, 0, 0, 0
                    log_t0 = time.perf_counter()
                bar.update(1)
                if config.eval_every and loop.step % config.eval_every == 0:
                    evaluate_and_anneal("every")
                if config.track_jacobian_every and loop.step % config.track_jacobian_every == 0:
                    metrics.log({**jacobian_event(model, jac_tokens, loop.step), "time": now_elapsed()})
                if on_step is not None:
                    on_step(loop.step)
        finally:
            if bar is not None:
                bar.close()

        # Still inside the handler: a Ctrl-C during the final save sets the flag, not a half-written file.
        if stopped != "nonfinite":
            save(out / "model.npz")
        if stopped == "interrupted":
            tqdm.write(f"interrupted at step {loop.step}: checkpoint saved to {out / 'model.npz'}; "
                       f"continue with --resume {out}", file=sys.stderr)
        metrics.log({"type": "stop", "reason": stopped, "step": loop.step, "epoch": loop.epoch,
                     "time": now_elapsed()})

    summary = {"run_dir": str(out), "stopped": stopped, "steps": loop.step, "epoch": loop.epoch,
               "tokens": loop.tokens, "elapsed_s": now_elapsed(),
               "tokens_per_s": loop.tokens / max(now_elapsed(), 1e-9), "lr": opt.lr,
               "val_loss": loop.val_loss, "val_ppl": _ppl(loop.val_loss),
               "best_val_loss": loop.best_saved, "best_val_ppl": _ppl(loop.best_saved),
               "clip_fraction": loop.clipped_total / max(loop.step - loop.skipped, 1),
               "skipped": loop.skipped, "nonfinite": nonfinite, "params": model.num_params()}
    if stopped == "interrupted":
        metrics.close()
        return summary
    # Report-only evaluations after the last save. They may refresh best.npz (and the
    # best_saved counter with it) but never touch what steers training (best_val, lr,
    # patience), so a run stopped here and resumed still matches an uninterrupted one.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if loop.last_eval_step != loop.step and stopped != "nonfinite":
            val, _ = evaluate_stream(model, valid_stream, T)
            is_best = val < loop.best_saved
            if is_best:
                save_best(val)
                save(out / "model.npz")
            summary.update(val_loss=val, val_ppl=_ppl(val), best_val_loss=loop.best_saved,
                           best_val_ppl=_ppl(loop.best_saved))
            metrics.log({"type": "eval", "split": "valid", "reason": "final", "step": loop.step,
                         "epoch": loop.epoch, "val_loss": val, "val_ppl": _ppl(val), "best": is_best,
                         "best_val_ppl": _ppl(loop.best_saved), "lr": opt.lr, "next_lr": opt.lr,
                         "time": now_elapsed()})
        if (out / "best.npz").exists():
            model.load_state_dict(checkpoint.load(out / "best.npz").model)
            summary["sampled_from"] = "best"
        else:
            summary["sampled_from"] = "latest"
        if len(corpus.test) > config.eval_batch_size * 2 and first_nonfinite(model.params) is None:
            test_loss, _ = evaluate_stream(model, batchify(corpus.test, config.eval_batch_size), T)
            summary.update(test_loss=test_loss, test_ppl=_ppl(test_loss))
            metrics.log({"type": "eval", "split": "test", "reason": "final", "step": loop.step,
                         "epoch": loop.epoch, "model": summary["sampled_from"], "test_loss": test_loss,
                         "test_ppl": _ppl(test_loss), "time": now_elapsed()})
        if config.sample_words and first_nonfinite(model.params) is None:
            from .sample import generate_text
            summary["sample"] = generate_text(model, vocab, words=config.sample_words,
                                              seed=config.seed, keep_case=config.data.keep_case)[0]
    metrics.close()
    return summary


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
