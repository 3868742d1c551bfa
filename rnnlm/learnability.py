"""Train one model on one long-range task and measure, on the same run, whether it learns and why not.

Legend: T = steps per sequence (S - 1), B = batch, E = embedding size, H =
hidden size, V = vocabulary, d = the task's distance, lag = answer_t - key_t.

What vanishing gradients forbid is *learning* a dependency across many steps
when nothing shorter teaches it (Bengio, Simard & Frasconi 1994; Hochreiter &
Schmidhuber 1997; Pascanu, Mikolov & Bengio 2013). `train_task` trains a
fresh one-layer model on a task of rnnlm/tasks.py the way that question needs:

* each sequence is one batch column from a zero state, and the whole sequence
  is one BPTT window (T = S - 1), so nothing truncates the gradient between
  the key and the answer; `bptt` < lag is the control arm that does truncate
  (windows of `bptt` steps, the state carried forward without gradient, as
  the language-model trainer does; the windows' gradients are added with the
  weights of their positions, so that the only difference from the full
  window is the truncation: one optimizer step per batch either way);
* the loss counts on every position (`loss="all"`, a language model) or only
  on the answer (`loss="answer"`), through RNNModel's per-position loss
  weights;
* every `eval_every` steps it records the held-out answer accuracy (the best
  of the task's C candidate answers, chance 1/C) and, on a fixed held-out
  probe batch, in float64:
    grad_key  ‖∂nll_b/∂h_key‖: the gradient of example b's answer loss that
              reaches the state right after the key was read (BPTT's dhs at
              key_t with answer-only weights, times B to undo the mean);
    grad_ans  ‖∂nll_b/∂h_query‖, the same at the step that predicts the answer
              (what grad_key is a fraction of);
    jac       ‖∂h_answer/∂h_key‖₂, the spectral norm of the product of the lag
              step Jacobians (cells.Cell.jacobian_advance, the instrument of
              rnnlm/jacobian.py; for the LSTM the h-block of the (h, c) product,
              dh_query/dh_key with c_key held fixed, as jacobian.py's `h`),
              every `jac_every` steps on the probe's first `jac_size` sequences;
  each as log10 per example, summarised by the median and geometric mean
  over the probe batch (log10 of 0 is written as null).

Success: held-out accuracy >= `threshold` (0.95). `first_step` is the first
evaluation that reached it; the run is *solved* when `patience` consecutive
evaluations reach it (it stays solved), and then it may stop early
(`early_stop`); a run that is not solved always runs the full budget.
`final_acc` is the last evaluation, `best_acc` the best.

The settings are `config.TaskTrainConfig` (re-exported here).

The one thing to know before editing: the measurements never touch the
training state: the gradients and Jacobians run on a float64 copy of the
model, the accuracy only reads it, and the training batches come from their
own generator (SeedSequence([seed, 1])), so a run's training is the same with
or without them (tests hold the measurements to finite differences).
"""
from __future__ import annotations

import math
import time

import numpy as np

from . import tasks
from .cells import CELLS
from .config import TaskTrainConfig  # noqa: F401  (re-export: the class lives in config.py)
from .errors import UserError
from .model import RNNModel
from .optim import clip_grad_norm, first_nonfinite, make_optimizer


# ---------------------------------------------------------------- measurements


def _log10(x):
    """log10 of non-negative values; 0 -> -inf."""
    with np.errstate(divide="ignore"):
        return np.log10(np.asarray(x, np.float64))


def summarize_log10(v) -> dict:
    """{"median", "geomean"} of per-example log10 values (a -inf makes the geomean -inf); JSON: -inf -> None."""
    v = np.asarray(v, np.float64)

    def clean(x):
        return float(x) if math.isfinite(x) else None
    return {"median": clean(np.median(v)), "geomean": clean(np.mean(v))}


def key_gradients(model64: RNNModel, batch: tasks.Batch) -> tuple[np.ndarray, np.ndarray]:
    """Per example b: (log10 ‖∂nll_b/∂h_key‖, log10 ‖∂nll_b/∂h_query‖), each (B,).

    nll_b = -log p(answer_b) at the answer step; h_key = the top layer's
    state after reading the key (step key_t), h_query the one predicting the
    answer (step answer_t). model64: a float64 model (model.to_dtype).
    From one `bptt` with answer-only weights: the loss is mean_b nll_b, so
    dhs[key_t[b], b] = ∂nll_b/∂h_key / B.
    """
    B = len(batch.key_t)
    w = np.zeros(batch.inputs.shape)
    cols = np.arange(B)
    w[batch.answer_t, cols] = 1.0
    r = model64.bptt(batch.inputs, batch.targets, weights=w)
    dhs = r.dhs[-1]
    g_key = np.linalg.norm(dhs[batch.key_t, cols], axis=1) * B
    g_ans = np.linalg.norm(dhs[batch.answer_t, cols], axis=1) * B
    return _log10(g_key), _log10(g_ans)


def lag_jacobian_log_norms(model64: RNNModel, batch: tasks.Batch) -> np.ndarray:
    """(B,) log10 ‖∂h_query/∂h_key‖₂ per example: the spectral norm of the lag step Jacobians' product.

    h_key = h[key_t + 1] (cache index: the state after reading inputs[key_t]),
    h_query = h[answer_t + 1]; the product A_{answer_t} ... A_{key_t + 1} of
    the cell's step Jacobians (A_t = dh[t+1]/dh[t], cells.Cell.jacobian_advance),
    renormalised at each step with its log scale carried beside it (as
    jacobian.lag_products), so that 1e-200 stays representable. The LSTM's is
    the h-block of the (h, c) product (c_key held fixed), as jacobian.py's `h`.
    The model must have one layer; model64 is a float64 model.
    """
    if model64.config.layers != 1 or model64.dtype != np.float64:
        raise ValueError("lag_jacobian_log_norms needs a one-layer float64 model")
    cell = CELLS[model64.config.cell]
    H = model64.config.hidden
    S = H * len(cell.states)
    cache = model64.forward_states(batch.inputs).caches[0]
    W_hh = model64.params["rnn.weight_hh_l0"]
    B = len(batch.key_t)
    cols = np.arange(B)
    J = np.broadcast_to(np.eye(S), (B, S, S)).copy()
    log_scale = np.zeros(B)
    spare = {}
    lags = batch.answer_t - batch.key_t
    for j in range(int(lags.max())):
        t = batch.answer_t - j                       # cache step t: state t -> t+1
        active = j < lags
        if not active.all():
            raise ValueError("lag_jacobian_log_norms needs one lag for the whole batch")
        J = cell.jacobian_advance(J, cache, t, cols, W_hh, model64.act, spare).copy()
        size = np.sqrt((J * J).sum(axis=(1, 2)))
        J /= np.where(size > 0, size, 1.0)[:, None, None]
        with np.errstate(divide="ignore"):
            log_scale += np.log10(size)
    sigma = np.linalg.norm(J[:, :H, :H], ord=2, axis=(1, 2))
    return _log10(sigma) + log_scale


def held_out_accuracy(model: RNNModel, data: tasks.TaskData, n: int) -> float:
    """Answer accuracy (best of the C candidates) on the first n held-out sequences."""
    index = np.arange(min(n, len(data.test)))
    logp = tasks.model_answer_logprobs(model, data.test, index)
    return tasks.answer_accuracy(logp, tasks.make_batch(data.test, index))


def _sub_batch(batch: tasks.Batch, n: int) -> tasks.Batch:
    """The first n columns of a batch."""
    return tasks.Batch(batch.inputs[:, :n], batch.targets[:, :n], batch.weights[:, :n], *(a[:n] for a in batch[3:]))


def measure(model: RNNModel, data: tasks.TaskData, probe: tasks.Batch, eval_size: int, jac_size: int = 0) -> dict:
    """One evaluation: accuracy, and the summaries of grad_key and grad_ans (log10) on the probe,
    and with jac_size > 0 of jac on the probe's first jac_size sequences (else "log10_jac" None)."""
    m64 = model.to_dtype("float64")
    g_key, g_ans = key_gradients(m64, probe)
    jac = summarize_log10(lag_jacobian_log_norms(m64, _sub_batch(probe, jac_size))) if jac_size else None
    return {"acc": held_out_accuracy(model, data, eval_size),
            "log10_grad_key": summarize_log10(g_key), "log10_grad_ans": summarize_log10(g_ans),
            "log10_jac": jac}


# ---------------------------------------------------------------- training


def _window_grads(model, batch, mode, bptt, loss_weights):
    """(loss, grads, bptt result or None) of one batch: the whole sequence in one window,
    or windows of `bptt` steps with the state carried forward and no gradient across them."""
    T = batch.inputs.shape[0]
    w = None if mode == "all" else loss_weights
    if bptt == 0 or bptt >= T:
        r = model.bptt(batch.inputs, batch.targets, weights=w)
        return r.loss, r.grads, r
    wfull = np.ones(batch.inputs.shape) if mode == "all" else batch.weights.astype(np.float64)
    total = wfull.sum()
    state, loss, grads = None, 0.0, None
    for lo in range(0, T, bptt):
        hi = min(T, lo + bptt)
        share = wfull[lo:hi].sum() / total
        if share == 0:
            _, state = model.loss(batch.inputs[lo:hi], batch.targets[lo:hi], state)
            continue
        wl = None if mode == "all" else batch.weights[lo:hi]
        l_w, g_w, state = model.loss_and_grads(batch.inputs[lo:hi], batch.targets[lo:hi], state, weights=wl)
        # the full window's loss is Σ w·nll / Σ w: each window's mean enters with its share of the weight
        loss += share * l_w
        if grads is None:
            grads = {k: share * g for k, g in g_w.items()}
        else:
            for k, g in g_w.items():
                grads[k] += share * g
    return loss, {k: g.astype(model.dtype) for k, g in grads.items()}, None


def train_task(config: TaskTrainConfig, data: tasks.TaskData, progress=None) -> dict:
    """Train a fresh model on `data` under `config`; returns the run's row (JSON-ready dict).

    Row: the config, the task spec, "solved", "first_step", "solved_step",
    "final_acc", "best_acc", "steps_run", "stopped_early", "diverged" (a
    non-finite loss or gradient: the run stops there, unsolved), "wall_s",
    "steps_per_s" (training steps only), "init" (the measurements before the
    first step) and "history" (lists over evaluations: step, acc, and the
    medians and geometric means of log10 grad_key, grad_ans, jac).
    progress: an optional callable(step, acc) called after each evaluation.
    """
    config.validate()
    spec = data.spec
    model = RNNModel(config.model_config(data.vocab_size), seed=config.seed)
    opt = make_optimizer(config.optimizer, model.params, config.lr)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    probe = tasks.make_batch(data.test, np.arange(min(config.probe_size, len(data.test))), "answer")
    omega = None
    if config.omega:
        from .omega import omega_and_grad
        omega = omega_and_grad

    hist = {"step": [], "acc": [], "jac_step": []}
    for q in ("grad_key", "grad_ans", "jac"):
        hist[f"log10_{q}_median"], hist[f"log10_{q}_geomean"] = [], []

    def record(step):
        with_jac = step % config.jac_every == 0
        m = measure(model, data, probe, config.eval_size, config.jac_size if with_jac else 0)
        hist["step"].append(step)
        hist["acc"].append(m["acc"])
        for q in ("grad_key", "grad_ans", "jac"):
            if m[f"log10_{q}"] is None:
                continue
            for s in ("median", "geomean"):
                hist[f"log10_{q}_{s}"].append(m[f"log10_{q}"][s])
        if with_jac:
            hist["jac_step"].append(step)
        if progress is not None:
            progress(step, m["acc"])
        return m

    init = record(0)
    first_step = solved_step = None
    streak, step, diverged, train_s = 0, 0, False, 0.0
    t_start = time.perf_counter()
    while step < config.steps:
        t0 = time.perf_counter()
        batch = tasks.sample_batch(data.train, config.batch_size, rng, config.loss)
        loss, grads, r = _window_grads(model, batch, config.loss, config.bptt, batch.weights)
        if omega is not None:
            if r is None:
                raise UserError("omega needs the whole sequence in one window (bptt 0)")
            _, og = omega(model, r, config.omega)
            for k, g in og.items():
                grads[k] += g
        if not math.isfinite(loss) or first_nonfinite(grads) is not None:
            diverged = True
            break
        if config.clip_norm:
            clip_grad_norm(grads, config.clip_norm)
        opt.step(model.params, grads)
        step += 1
        train_s += time.perf_counter() - t0
        if step % config.eval_every == 0 or step == config.steps:
            acc = record(step)["acc"]
            if step % config.eval_every:
                continue    # the last step off the schedule: recorded (the state the run ended in), but only
                #             evaluations --eval-every steps apart count toward --patience
            if acc >= config.threshold:
                first_step = step if first_step is None else first_step
                streak += 1
                if streak >= config.patience and solved_step is None:
                    solved_step = hist["step"][-config.patience]
                    if config.early_stop:
                        break
            else:
                streak = 0
    if hist["step"] and hist["jac_step"][-1] != hist["step"][-1]:
        # the last evaluation also gets jac (the state the run ended in)
        jac = summarize_log10(lag_jacobian_log_norms(model.to_dtype("float64"), _sub_batch(probe, config.jac_size)))
        hist["jac_step"].append(hist["step"][-1])
        for s in ("median", "geomean"):
            hist[f"log10_jac_{s}"].append(jac[s])
    accs = hist["acc"]
    return {
        "task": spec.to_json(), "train": config.to_dict(), "lag": spec.lag, "chance": spec.chance,
        "solved": solved_step is not None, "first_step": first_step, "solved_step": solved_step,
        "final_acc": accs[-1], "best_acc": max(accs), "steps_run": step,
        "stopped_early": step < config.steps and not diverged, "diverged": diverged,
        "wall_s": time.perf_counter() - t_start, "steps_per_s": step / train_s if train_s > 0 else None,
        "init": init, "history": hist,
    }


# ---------------------------------------------------------------- the sweep job

_SPLIT_ARRAYS = ("tokens", "key_pos", "query_pos", "answer_pos", "labels", "candidates")


def task_arrays(data: tasks.TaskData) -> dict:
    """A task as a flat dict of arrays (what the sweep ships to a worker): '<split>.<array>' and 'vocab'."""
    out = {f"{s}.{a}": getattr(data.split(s), a) for s in ("train", "test") for a in _SPLIT_ARRAYS}
    out["vocab"] = np.array(data.vocab)
    return out


def task_from_arrays(spec: tasks.TaskSpec, arrays: dict) -> tasks.TaskData:
    """The inverse of task_arrays, for the spec the arrays were generated from."""
    splits = {s: tasks.Split(*(np.asarray(arrays[f"{s}.{a}"]) for a in _SPLIT_ARRAYS)) for s in ("train", "test")}
    return tasks.TaskData(spec, [str(w) for w in arrays["vocab"]], splits["train"], splits["test"])


def task_job(settings: dict, data: dict | None):
    """The sweep job (sweeprecord.Job fn "rnnlm.learnability:task_job"): train one run, return its row.

    settings: {"task": TaskSpec fields, "train": TaskTrainConfig fields, ...}
    (other keys, e.g. the study's labels, are copied into the row). data: the
    task's arrays (task_arrays), generated once on the client; None = generate
    them here from the spec. Returns sweeprecord.JobResult(row, files={}): train_task's row without its wall_s,
    a key the sweep records itself (the job's wall time, what the study's rows have always held).
    """
    from .sweeprecord import JobResult

    spec = tasks.TaskSpec.from_json(dict(settings["task"]))
    config = TaskTrainConfig.from_dict(dict(settings["train"]))
    task = tasks.make_task(spec) if data is None else task_from_arrays(spec, data)
    row = train_task(config, task)
    row.pop("wall_s", None)
    for k, v in settings.items():
        if k not in ("task", "train"):
            row[k] = v
    return JobResult(row, {})
