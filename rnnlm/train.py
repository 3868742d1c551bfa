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

# The settings, their defaults and checks live in config.py; these names stay importable from here.
from .config import (RESUME_OVERRIDABLE, DataConfig, TrainConfig,  # noqa: F401
                     config_from_dict, config_to_dict)
from .errors import UserError

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


class _Metrics:
    """metrics.jsonl: one event per line, appended and flushed one whole line at a time."""

    def __init__(self, path: Path):
        self.path = path
        self.f = open(path, "a", encoding="utf-8")

    def log(self, event: dict) -> None:
        self.f.write(json.dumps(_finite_or_none(event), ensure_ascii=False) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


def _finite_or_none(event: dict) -> dict:
    # Strict JSON has no NaN/Infinity; a non-finite number is written as null
    # (the nonfinite event says which tensor went bad).
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in event.items()}


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop events logged after `step` (written after the checkpoint a resume starts from)."""
    from .checkpoint import atomic_write_bytes
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue        # a line cut by a crash
    atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode("utf-8"))


def read_run_config(run_dir) -> dict:
    """config.json of a run folder, with a clear error when it is not one."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise UserError(f"{run_dir} is not a run folder (no config.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None


def resume_config(run_dir, overrides: dict | None = None) -> TrainConfig:
    """The saved config of a run, with the budget/reporting settings in `overrides` applied.

    Any other setting in `overrides` that differs from the saved one is a
    UserError: it would make the resumed run a different experiment.
    """
    saved = config_from_dict(read_run_config(run_dir)["train"])
    return saved.resumed(overrides, out=str(run_dir))


# ---------------------------------------------------------------- evaluation


def evaluate_stream(model, stream, bptt: int) -> tuple[float, int]:
    """Mean cross-entropy (nats/token) over a batchified stream (rows, B), state carried throughout.

    Returns (loss, number of predicted tokens).
    """
    from .data import windows
    state = model.init_state(stream.shape[1])
    total, count = 0.0, 0
    for _, inputs, targets in windows(stream, bptt):
        loss, state = model.loss(inputs, targets, state)
        total += float(loss) * targets.size
        count += targets.size
    if count == 0:
        raise UserError(f"too little text to evaluate ({stream.size} tokens in {stream.shape[1]} streams)")
    return total / count, count


def _ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


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


def run_text_ids(info: dict, vocab, split: str = "valid", text=None) -> dict:
    """Token ids of a split of a run's own corpus, or of any text file read the run's way.

    info: the run's config (checkpoint.load_model's third value); vocab: its Vocab.
    A text file is tokenized with the run's tokenizer settings and encoded with
    its vocabulary (unknown words become <unk> and are counted). A split is
    refused when the corpus or tokenizer changed since training (checksum).
    Returns {"ids", "source", "tokens", "oov", "oov_rate"}.
    """
    from .corpus import read_text
    from .tokenize import tokenize

    tcfg = config_from_dict(info["train"])
    if text is not None:
        p = Path(text)
        if not p.is_file():
            raise UserError(f"no text file at {text}")
        tokens = tokenize(read_text(p), keep_case=tcfg.data.keep_case, num_token=tcfg.data.num_token)
        ids = vocab.encode(tokens)
        unk = [t for t, i in zip(tokens, ids) if i == vocab.unk_id and t != vocab.itos[vocab.unk_id]]
        return {"ids": ids, "source": str(p), "tokens": len(ids), "oov": len(unk),
                "oov_rate": len(unk) / max(len(ids), 1)}
    if split not in ("train", "valid", "test"):
        raise UserError(f"--split must be train, valid or test, got '{split}'")
    from .data import load_corpus
    corpus = load_corpus(tcfg.data)
    if corpus.checksum != info.get("corpus", {}).get("checksum"):
        raise UserError("the corpus or tokenizer settings changed since this run was trained "
                        "(checksum differs); use a text file with --text instead")
    if corpus.vocab.to_json() != vocab.to_json():
        raise UserError("the corpus vocabulary differs from the run's vocab.json")
    ids = getattr(corpus, split)
    return {"ids": ids, "source": f"{tcfg.data.corpus}:{split}", "tokens": len(ids),
            "oov": int((ids == vocab.unk_id).sum()), "oov_rate": float(corpus.oov_rate.get(split, math.nan))}


def run_evaluate(run, split="valid", text=None, which="best", batch_size=None, bptt=None) -> dict:
    """Cross-entropy and perplexity of a run's model on a split or on any text file.

    A text file is tokenized with the run's tokenizer settings and encoded with
    its vocabulary; unknown words count as <unk> (their number is reported).
    """
    from . import checkpoint
    from .data import batchify

    model, vocab, info, path = checkpoint.load_model(run, which)
    tcfg = config_from_dict(info["train"])
    B = batch_size or tcfg.eval_batch_size
    T = bptt or tcfg.bptt
    if B < 1 or T < 1:
        raise UserError("--batch-size and --bptt must be at least 1")
    result = {"checkpoint": str(path)}
    text_ids = run_text_ids(info, vocab, split=split, text=text)
    ids = text_ids.pop("ids")
    result.update(text_ids)
    if len(ids) < 2 * B:
        B = 1
    loss, count = evaluate_stream(model, batchify(ids, B), T)
    result.update(loss=loss, ppl=_ppl(loss), predicted=count, batch_size=B, bptt=T)
    return result
