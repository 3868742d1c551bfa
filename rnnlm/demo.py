"""Scripted demonstrations: `demo gradients` (issue 5) and `demo longrange` (issue 6).

Each demo trains and measures with the project's own pieces (train.py,
jacobian.py, probes.py, plots.py) and writes, into one folder, its figures
(PNG + SVG), `summary.json` (every number measured, with the settings and
seeds) and `summary.md` (one sentence per figure, numbers included). Nothing
here computes anything the instruments do not: the demos only choose
settings, run them in order and say what came out.

The one thing to know before editing: `--quick` runs the very same code with
the sizes of `QUICK` instead of `FULL`, so the test of the quick demo
exercises every line the full demo runs; keep every size in those tables.
Two figures have no counterpart in plots.py (two runs' training curves side
by side; decay factor against recurrent scale) and are drawn here, with
matplotlib imported inside their functions.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from .errors import UserError
from .fileio import atomic_write_json
from .runs import fmt_ppl
from .sweepjobs import curve_numbers  # noqa: F401  (the lag-curve headline numbers; they live with the sweep jobs)

# Vanilla-RNN activations of the init study: (label, activation string, max|f'|).
ACTIVATIONS = (
    ("tanh", "tanh", 1.0),
    ("relu", "relu", 1.0),
    ("sigmoid", "sigmoid", 0.25),
    ("lecun-tanh", "scaled-tanh:1.7159,0.6667", 1.7159 * 0.6667),
)
# Recurrent scales are chosen so that ||W_hh|| * max|f'| (orthogonal W_hh: ||W_hh|| = scale)
# is 0.5 (below the edge), 1 (at it) and 2 (above): sigmoid's f' <= 1/4 needs 4x larger scales.
GAINS = (0.5, 1.0, 2.0)
TANH_N = (0.5, 1.0, 2.0, 4.0)
# n for the equivalence check: powers of two multiply exactly, so 1.7 and 3 make it a real test.
EQUIV_N = (0.5, 1.0, 1.7, 2.0, 3.0, 4.0)
# Steps over which the two models must agree to rounding: past them, in the expanding regime
# (n >= 2 here), rounding differences grow at the Jacobian's own rate, as any perturbation does.
EQUIV_STEPS = 10

FULL = {
    "gradients": dict(hidden=128, emsize=128, max_lag=60, anchors=16, curve_tokens=400, max_vocab=10000,
                      train_minutes=1.0, train_hidden=128, train_vocab=5000, track_every=25,
                      explode_steps=200, explode_lr=5.0, explode_scale=3.0, explode_clip=0.25,
                      equivalence_tokens=500, train_heldout=0.02),
    "longrange": dict(sentences=20000, max_distance=30, emsize=64, lstm_hidden=128, bptt=35, batch_size=32,
                      lr=0.002, clip=0.25, omega=1.0, probe_n=100, probe_distances="1..30",
                      context_distances="1,2,5,10,20,50", context_window=100, context_targets=300,
                      max_lag=60, anchors=16, curve_tokens=400, bins=((1, 5), (6, 15), (16, 30)),
                      far_distances="35,40,50,60,80"),
}
QUICK = {
    "gradients": dict(hidden=16, emsize=16, max_lag=12, anchors=4, curve_tokens=60, max_vocab=300,
                      train_minutes=0.0, train_steps=15, train_hidden=16, train_vocab=300, track_every=5,
                      explode_steps=25, explode_lr=20.0, explode_scale=3.0, explode_clip=0.25, equivalence_tokens=60,
                      train_heldout=0.1),
    "longrange": dict(sentences=400, max_distance=8, emsize=16, lstm_hidden=16, bptt=20, batch_size=8,
                      lr=0.005, clip=0.25, omega=1.0, probe_n=8, probe_distances="1..8",
                      context_distances="1,2,5", context_window=12, context_targets=20,
                      max_lag=10, anchors=4, curve_tokens=60, train_steps=20, bins=((1, 2), (3, 5), (6, 8)),
                      far_distances="10,12"),
}
QUICK_TEXT = "velhoSenado.txt"   # ~5k tokens of Machado: the quick demos' corpus


# ---------------------------------------------------------------- small helpers


def _write_json(path: Path, obj) -> None:
    atomic_write_json(path, obj)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _curve_sentence(n: dict) -> str:
    van = (f"falls below 1e-6 of its lag-1 value at lag {n['vanish_lag']}" if n["vanish_lag"]
           else f"has not vanished by lag {n['max_lag']} (median there {_g(n['median_last'])})")
    return (f"lag-1 median {_g(n['median_lag1'])}, factor per step {_g(n['factor_per_step'])} "
            f"(decay rate {_g(n['decay_rate'])}/step), {van}")


def _g(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.3g}"


def _tokens(data_config, n: int):
    """(first n tokens of the corpus's validation split (train if valid is too short), vocabulary size,
    what they are: 'machado:valid' or '<file>:train', the `text` of a lag curve's meta)."""
    from .data import load_corpus
    corpus = load_corpus(data_config)
    split = "valid" if len(corpus.valid) >= n else "train"
    return np.asarray(getattr(corpus, split)[:n]), len(corpus.vocab), f"{data_config.corpus}:{split}"


def _quick_text() -> str:
    """A single small Machado work (QUICK_TEXT) for the quick demos."""
    from .corpus import find_named
    src = find_named("machado")
    for rel, path in src.files:
        if rel.endswith(QUICK_TEXT):
            return str(path)
    return str(min(src.files, key=lambda f: f[1].stat().st_size)[1])


def _text_name(text: str) -> str:
    from .plots import _text_name as name
    return name(text)


def _plot_lag(docs, labels, out, title, **kw) -> str:
    from .plots import plot_lag
    return str(plot_lag(docs, labels, out, title=title, **kw))


def _train_all(out: Path, named) -> dict:
    """Train [(name, TrainConfig)] through the sweep engine into out/<name>/; {name: train()-like summary}.

    One job per config on a local Dask cluster (sweep.py), each corpus read and
    tokenized here once; the run folders come back whole (checkpoints
    included) and out/sweep.jsonl records each finished training, so a rerun
    after Ctrl-C trains only what is missing. Non-finite perplexities (None in
    the sweep's JSON rows) come back as nan / inf, as train() reports them.
    """
    import os

    from .sweep import run_sweep
    from .sweepgrid import train_sweep_jobs
    _say(f"training {', '.join(n for n, _ in named)} on a local Dask cluster ...")
    jobs, data = train_sweep_jobs([(name, None, cfg) for name, cfg in named], keep_models=True, folder=out)
    rows = {r["name"]: r for r in run_sweep(out, jobs, data, n_workers=min(len(jobs), os.cpu_count() or 1))}
    result = {}
    for name, _ in named:
        r = rows[name]
        if r["status"] != "done":
            raise UserError(f"the training {name} failed: {r.get('error')}")
        result[name] = {**r, "wall_s": round(r["wall_s"], 1),
                        "val_ppl": math.nan if r["val_ppl"] is None else r["val_ppl"],
                        "best_val_ppl": math.inf if r["best_val_ppl"] is None else r["best_val_ppl"]}
    return result


def _budget(sizes, minutes=None) -> dict:
    """Stop rule of a demo run: a step count in quick mode, minutes otherwise."""
    if sizes.get("train_steps"):
        return dict(max_steps=sizes["train_steps"], max_minutes=0.0)
    return dict(max_steps=0, max_minutes=minutes if minutes is not None else sizes["train_minutes"])


# ---------------------------------------------------------------- demo gradients


def _init_model(vocab_size, sizes, cell, activation="tanh", scale=1.0, seed=0, dtype="float64"):
    from .model import ModelConfig, RNNModel
    cfg = ModelConfig(vocab_size=vocab_size, cell=cell, activation=activation, emsize=sizes["emsize"],
                      hidden=sizes["hidden"], init="orthogonal", recurrent_scale=scale, dtype=dtype)
    return RNNModel(cfg, seed=seed)


def _lag(model, tokens, sizes, seed, per_step=True, *, text: str, source: str = "init", clip: str | None = None,
         omega: float | None = None):
    """lag_curve of `model` on `tokens`, its meta completed as `jacobian` completes it (source, seed, text,
    and for a trained model its clipping and Ω), so the figures' subtitles state them.

    source: "init" for an untrained model (plots say "at init (no training)"), else the checkpoint read."""
    from .jacobian import lag_curve
    doc = lag_curve(model, tokens, sizes["max_lag"], sizes["anchors"], np.random.default_rng(seed),
                    per_step=per_step)
    doc["meta"].update(source=source, seed=seed, text=text)
    if clip is not None:
        doc["meta"]["clip"] = clip
    if omega is not None:
        doc["meta"]["omega"] = omega
    return doc


def init_study(out: Path, tokens, vocab_size, sizes, seed, text: str) -> dict:
    """Part 1: lag curves at initialization, per activation and scale, and for lstm and gru.

    text: what `tokens` are ('machado:valid'), for the figures' subtitles."""
    from .plots import plot_factor_summary
    results = {}
    for label, act, fmax in ACTIVATIONS:
        docs, names = [], []
        for gain in GAINS:
            scale = float(f"{gain / fmax:.4g}")
            _say(f"init curve: rnn {label} scale {scale}")
            doc = _lag(_init_model(vocab_size, sizes, "rnn", act, scale, seed), tokens, sizes, seed, text=text)
            docs.append(doc)
            names.append(f"rnn {label}, W_hh ×{scale:g} (‖W_hh‖·max|f′| = {gain:g})")
            results[f"rnn-{label}-x{scale:g}"] = {"cell": "rnn", "activation": act, "scale": scale,
                                                   "gain": gain, **curve_numbers(doc)}
        fig = _plot_lag(docs, names, out / f"init-rnn-{label}.png", bound=True,
                        title=f"At initialization: rnn {label}, orthogonal W_hh, H={sizes['hidden']}")
        for gain in GAINS:
            results[f"rnn-{label}-x{float(f'{gain / fmax:.4g}'):g}"]["figure"] = Path(fig).name
    for cell in ("lstm", "gru"):
        _say(f"init curve: {cell}")
        doc = _lag(_init_model(vocab_size, sizes, cell, seed=seed), tokens, sizes, seed, text=text)
        fig = _plot_lag([doc], [f"{cell}, orthogonal W_hh"], out / f"init-{cell}.png",
                        title=f"At initialization: {cell}, orthogonal W_hh, H={sizes['hidden']}")
        results[cell] = {"cell": cell, "figure": Path(fig).name, **curve_numbers(doc)}
    plot_factor_summary(results, [a[0] for a in ACTIVATIONS], GAINS, out / "init-summary.png",
                        behind=f"H={sizes['hidden']}; median over {sizes['anchors']} anchors × {len(tokens)} tokens "
                               f"of {_text_name(text)}, seed {seed}")
    return results


def training_configs(out: Path, sizes, data_config, seed) -> list:
    """[(name, TrainConfig)] of part 2: rnn tanh, lstm and gru, briefly, tracking Jacobians."""
    from .config import ModelConfig, TrainConfig
    named = []
    for cell in ("rnn", "lstm", "gru"):
        run = out / f"train-{cell}"
        cfg = TrainConfig(data=data_config, model=ModelConfig(cell=cell, activation="tanh", emsize=sizes["train_hidden"],
                                                              hidden=sizes["train_hidden"], init="orthogonal",
                                                              dropout=0.0),
                          optimizer="adam", lr=0.002, clip_norm=0.25, eval_every=0, eval_batch_size=64, seed=seed, sample_words=0,
                          progress=False, out=str(run), track_jacobian_every=sizes["track_every"],
                          **_budget(sizes))
        named.append((run.name, cfg))
    return named


def training_study(out: Path, sizes, data_config, seed, summaries: dict | None = None) -> dict:
    """Part 2: rnn tanh, lstm, gru trained briefly on Machado; curves at init vs after training.

    summaries: the trainings' results when already run (run_gradients trains all its models in one sweep).
    """
    from .plots import clip_label, plot_lag_over_training
    from .runs import load_model
    named = training_configs(out, sizes, data_config, seed)
    summaries = summaries or _train_all(out, named)
    results = {}
    docs, names = [], []
    tokens = None
    for (name, cfg), cell in zip(named, ("rnn", "lstm", "gru")):
        run = out / name
        summary = summaries[name]
        if tokens is None:
            tokens, vocab_size, text = _tokens(data_config, sizes["curve_tokens"])
        init = _initial_model(cfg.model.with_vocab(vocab_size), seed)
        trained, _, _, path = load_model(run, "best")
        d0 = _lag(init, tokens, sizes, seed, text=text)
        d1 = _lag(trained, tokens, sizes, seed, text=text, source=str(path), clip=clip_label(dataclasses.asdict(cfg)))
        docs += [d0, d1]
        names += [f"{cell} at init", f"{cell} after {summary['steps']} steps (valid ppl {fmt_ppl(summary['best_val_ppl'], 0)})"]
        over = Path(plot_lag_over_training(run, out / f"trained-{cell}-over-training.png")).name
        results[cell] = {"init": curve_numbers(d0), "trained": curve_numbers(d1), "steps": summary["steps"],
                         "best_val_ppl": summary["best_val_ppl"], "stopped": summary["stopped"],
                         "wall_s": summary["wall_s"], "over_training_figure": over}
    for cell in ("rnn", "lstm", "gru"):
        i = ("rnn", "lstm", "gru").index(cell)
        fig = _plot_lag(docs[2 * i:2 * i + 2], names[2 * i:2 * i + 2], out / f"trained-{cell}.png",
                        title=f"{cell}{' tanh' if cell == 'rnn' else ''}, H={sizes['train_hidden']}: before and "
                              "after training on Machado")
        results[cell]["figure"] = Path(fig).name
    fig = _plot_lag(docs[1::2], names[1::2], out / "trained-all.png",
                    title="After a short training on Machado: rnn vs lstm vs gru")
    results["figure_all"] = Path(fig).name
    return results


def _initial_model(model_config, seed):
    """The model `train` starts from: same config, same seed, float64."""
    from .model import RNNModel
    return RNNModel(dataclasses.replace(model_config, dtype="float64"), seed=seed)


def explosion_configs(out: Path, sizes, data_config, seed) -> list:
    """[(name, TrainConfig)] of part 3: the exploding rnn without and with clipping."""
    from .config import ModelConfig, TrainConfig
    named = []
    for name, clip in (("noclip", 0.0), ("clip", sizes["explode_clip"])):
        cfg = TrainConfig(data=data_config,
                          model=ModelConfig(cell="rnn", activation="tanh", emsize=sizes["train_hidden"],
                                            hidden=sizes["train_hidden"], init="orthogonal",
                                            recurrent_scale=sizes["explode_scale"], dropout=0.0),
                          optimizer="sgd", lr=sizes["explode_lr"], clip_norm=clip,
                          max_steps=sizes["explode_steps"], max_minutes=0.0, eval_every=0, log_every=1,
                          eval_batch_size=64,
                          seed=seed, sample_words=0, progress=False, out=str(out / f"explode-{name}"))
        named.append((f"explode-{name}", cfg))
    return named


def explosion_study(out: Path, sizes, data_config, seed, summaries: dict | None = None) -> dict:
    """Part 3: a vanilla RNN with a large recurrent scale, no clipping, high lr; then the same with clipping."""
    named = explosion_configs(out, sizes, data_config, seed)
    summaries = summaries or _train_all(out, named)
    runs = {}
    for run_name, cfg in named:
        name, clip, s = run_name.split("-", 1)[1], cfg.clip_norm, summaries[run_name]
        runs[name] = {**explosion_numbers(out / f"explode-{name}"), "stopped": s["stopped"], "steps": s["steps"],
                      "val_ppl": s["val_ppl"] if math.isfinite(s["val_ppl"]) else None,
                      "clip_fraction": s["clip_fraction"], "wall_s": s["wall_s"], "clip_norm": clip}
    from .plots import plot_explosion
    fig = plot_explosion(out / "explode-noclip", out / "explode-clip", out / "explosion.png",
                         title=f"rnn tanh, W_hh ×{sizes['explode_scale']:g} (orthogonal), SGD lr "
                               f"{sizes['explode_lr']:g}: no clipping vs --clip-norm {sizes['explode_clip']:g}")
    return {"runs": runs, "figure": Path(fig).name, "scale": sizes["explode_scale"], "lr": sizes["explode_lr"]}


def explosion_numbers(run_dir: Path) -> dict:
    """From a run's metrics: first non-finite step, largest gradient norm, loss jump (max / first loss)."""
    from .plots import read_metrics
    ev = read_metrics(run_dir)
    steps = [e for e in ev if e["type"] == "step"]
    bad = [e for e in ev if e["type"] == "nonfinite"]
    losses = [e["loss"] for e in steps if e.get("loss") is not None]
    norms = [e["grad_norm"] for e in steps if e.get("grad_norm") is not None]
    first = losses[0] if losses else None
    return {"nonfinite_step": bad[0]["step"] if bad else None, "nonfinite_tensor": bad[0]["tensor"] if bad else None,
            "first_loss": first, "last_loss": losses[-1] if losses else None,
            "max_loss": max(losses) if losses else None,
            "loss_jump": (max(losses) / first) if losses and first else None,
            # orders of magnitude the perplexity rose above its first value: (max - first) nats / ln 10
            "ppl_jump_orders": (max(losses) - first) / math.log(10) if losses else None,
            "max_loss_step": steps[int(np.argmax(losses))]["step"] if losses else None,
            "max_grad_norm": max(norms) if norms else None,
            "median_grad_norm": float(np.median(norms)) if norms else None}


def tanh_n_study(out: Path, tokens, vocab_size, sizes, seed, text: str) -> dict:
    """Part 4: tanh(n·z) with weights W is tanh(z) with weights n·W; and what n does to the curves."""
    from .model import RNNModel
    errors = {}
    for n in EQUIV_N:
        a = _init_model(vocab_size, sizes, "rnn", f"tanh:{n:g}", 1.0, seed)
        params = {k: v.copy() for k, v in a.params.items()}
        for k in params:
            if k.startswith("rnn."):          # every weight and bias inside the pre-activation
                params[k] *= n
        b = RNNModel(dataclasses.replace(a.config, activation="tanh"), params=params)
        inputs = np.ascontiguousarray(tokens[:sizes["equivalence_tokens"], None], dtype=np.int32)
        ha = a.forward_states(inputs).hs[0]
        hb = b.forward_states(inputs).hs[0]
        per_step = np.max(np.abs(ha - hb), axis=(1, 2))             # (T,) largest unit difference per step
        grown = np.nonzero(per_step > 1e-6)[0]
        errors[f"{n:g}"] = {"first_steps": float(per_step[:EQUIV_STEPS].max()), "all_steps": float(per_step.max()),
                            "exceeds_1e-6_at_step": int(grown[0]) + 1 if len(grown) else None}
    docs, results = [], {}
    for n in TANH_N:
        _say(f"tanh(n·z) curve: n = {n:g}")
        doc = _lag(_init_model(vocab_size, sizes, "rnn", f"tanh:{n:g}", 1.0, seed), tokens, sizes, seed, text=text)
        docs.append(doc)
        results[f"{n:g}"] = curve_numbers(doc)
    fig = _plot_lag(docs, [f"tanh({n:g}·z), orthogonal W_hh (= tanh(z) with {n:g}·W)" for n in TANH_N],
                    out / "tanh-n.png", bound=True,
                    title=f"tanh(n·z) is tanh(z) with n·W: lag curves at init, H={sizes['hidden']}")
    return {"max_abs_state_difference": errors, "max_error": max(e["first_steps"] for e in errors.values()),
            "equivalence_steps": EQUIV_STEPS, "dtype": "float64",
            "tokens": int(min(len(tokens), sizes["equivalence_tokens"])), "curves": results,
            "figure": Path(fig).name}


def run_gradients(out, quick: bool = False, seed: int = 0) -> dict:
    """The whole `demo gradients`; returns the summary (also written to OUT/summary.json and .md)."""
    from .data import DataConfig
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = (QUICK if quick else FULL)["gradients"]
    t0 = time.perf_counter()
    corpus = _quick_text() if quick else "machado"
    curve_data = DataConfig(corpus=corpus, max_vocab=sizes["max_vocab"])
    tokens, vocab_size, text = _tokens(curve_data, max(sizes["curve_tokens"], sizes["equivalence_tokens"]))
    curve_tokens = tokens[:sizes["curve_tokens"]]
    # Smaller held-out splits than the default 5%: train() evaluates valid and test at the end of each run.
    train_data = DataConfig(corpus=corpus, max_vocab=sizes["train_vocab"], valid_fraction=sizes["train_heldout"],
                            test_fraction=sizes["train_heldout"])
    timings = {}
    summary = {"demo": "gradients", "quick": quick, "seed": seed, "sizes": sizes, "corpus": corpus,
               "tokens": "first tokens of the validation split"}
    stages = _stage_folder(out, {"quick": quick, "seed": seed, "sizes": sizes})
    trained = {}

    def trainings():
        # All five trainings of parts 2 and 3 in one sweep: they run side by side on the cores.
        named = explosion_configs(out, sizes, train_data, seed) + training_configs(out, sizes, train_data, seed)
        trained.update(_train_all(out, named))
        return {name: {k: trained[name][k] for k in ("steps", "stopped", "wall_s", "worker")} for name in trained}

    parts = (("init", lambda: init_study(out, curve_tokens, vocab_size, sizes, seed, text)),
             ("tanh_n", lambda: tanh_n_study(out, tokens, vocab_size, sizes, seed, text)),
             ("trainings", trainings),
             ("explosion", lambda: explosion_study(out, sizes, train_data, seed, trained or None)),
             ("trained", lambda: training_study(out, sizes, train_data, seed, trained or None)))
    part = None
    try:
        for part, fn in parts:
            saved = stages / f"{part}.json"
            if saved.exists():
                doc = json.loads(saved.read_text(encoding="utf-8"))
                _say(f"stage {part}: done in an earlier run (kept from {saved})")
            else:
                t = time.perf_counter()
                doc = {"result": fn(), "wall_s": round(time.perf_counter() - t, 1)}
                _write_json(saved, doc)
            if part != "trainings":
                summary[part] = doc["result"]
                timings[part] = doc["wall_s"]
    except KeyboardInterrupt:
        _say(f"interrupted during stage {part}: the finished stages are saved in {stages} and the finished "
             f"trainings in {out / 'sweep.jsonl'}; run the same command again (same --out) to continue")
        raise
    summary["wall_s"] = {**timings, "total": round(time.perf_counter() - t0, 1)}
    _write_json(out / "summary.json", summary)
    (out / "summary.md").write_text(gradients_markdown(summary), encoding="utf-8")
    return summary


def _stage_folder(out: Path, settings: dict) -> Path:
    """OUT/stages, where each finished stage's result is kept for a rerun; emptied when the settings changed."""
    stages = out / "stages"
    stages.mkdir(exist_ok=True)
    marker = stages / "settings.json"
    settings = json.loads(json.dumps(settings))
    if marker.exists() and json.loads(marker.read_text(encoding="utf-8")) != settings:
        _say(f"{out} holds a run with other settings: starting over")
        for f in stages.glob("*.json"):
            f.unlink()
        (out / "sweep.jsonl").unlink(missing_ok=True)
    _write_json(marker, settings)
    return stages


def gradients_markdown(s: dict) -> str:
    sz = s["sizes"]
    lines = [f"# demo gradients{' (quick)' if s['quick'] else ''}", "",
             f"Seed {s['seed']}; corpus {s['corpus']}; curves on the first {sz['curve_tokens']} validation tokens, "
             f"lags 1..{sz['max_lag']}, {sz['anchors']} anchors, spectral norm, median over anchors. "
             f"Wall time {s['wall_s']['total']:.0f} s.", "", "## 1. At initialization", ""]
    init = s["init"]
    for label, _, fmax in ACTIVATIONS:
        keys = [k for k in init if k.startswith(f"rnn-{label}-")]
        lines.append(f"- `{init[keys[0]]['figure']}`: rnn {label} (max|f′| = {fmax:.3g}), orthogonal W_hh at "
                     "scales giving ‖W_hh‖·max|f′| = 0.5, 1, 2: "
                     + "; ".join(f"×{init[k]['scale']:g}: {_curve_sentence(init[k])}" for k in keys) + ".")
    for cell in ("lstm", "gru"):
        lines.append(f"- `{init[cell]['figure']}`: {cell} ({init[cell]['quantity']}), orthogonal W_hh: "
                     f"{_curve_sentence(init[cell])}.")
    lines.append("- `init-summary.png`: the fitted factor per step exp(decay rate) against ‖W_hh‖·max|f′| for "
                 "every activation, with lstm and gru as horizontal lines; 1 is the edge between vanishing "
                 "and exploding.")
    t = s["trained"]
    lines += ["", "## 2. After a short training on Machado", ""]
    for cell in ("rnn", "lstm", "gru"):
        r = t[cell]
        lines.append(f"- `{r['figure']}`: {cell}, {r['steps']} steps ({r['wall_s']:.0f} s, valid ppl "
                     f"{fmt_ppl(r['best_val_ppl'], 1)}): at init {_curve_sentence(r['init'])}; after training "
                     f"{_curve_sentence(r['trained'])}."
                     + (f" `{r['over_training_figure']}` shows the curve at every recorded step."
                        if r["over_training_figure"] else ""))
    lines.append(f"- `{t['figure_all']}`: the three trained models together.")
    e = s["explosion"]
    nc, cl = e["runs"]["noclip"], e["runs"]["clip"]
    if nc["nonfinite_step"] is not None:
        blew = f"it blows up: non-finite {nc['nonfinite_tensor']} at step {nc['nonfinite_step']}"
    elif nc["ppl_jump_orders"] is not None and nc["ppl_jump_orders"] >= 2:
        blew = (f"its loss jumps from {nc['first_loss']:.3g} to {nc['max_loss']:.3g} nats/token by step "
                f"{nc['max_loss_step']} (perplexity up {nc['ppl_jump_orders']:.0f} orders of magnitude) and ends at "
                f"valid ppl {_g(nc['val_ppl'])}")
    else:
        blew = f"it did NOT blow up in {nc['steps']} steps (largest loss {_g(nc['max_loss'])})"
    lines += ["", "## 3. Explosion and clipping", "",
              f"- `{e['figure']}`: rnn tanh with W_hh ×{e['scale']:g}, SGD lr {e['lr']:g}, no clipping: {blew} "
              f"(largest gradient norm {_g(nc['max_grad_norm'])}, stopped: {nc['stopped']}); the same run with "
              f"--clip-norm {cl['clip_norm']:g} ran {cl['steps']} steps (stopped: {cl['stopped']}), "
              f"loss {_g(cl['first_loss'])} → {_g(cl['last_loss'])}, valid ppl {_g(cl['val_ppl'])}, "
              f"{100 * cl['clip_fraction']:.0f}% of steps clipped, gradient norms up to {_g(cl['max_grad_norm'])}."]
    q = s["tanh_n"]
    lines += ["", "## 4. tanh(n·z)", ""]
    errs = q["max_abs_state_difference"]
    grown = {n: e["exceeds_1e-6_at_step"] for n, e in errs.items() if e["exceeds_1e-6_at_step"]}
    lines.append(
        f"- Scaling the pre-activation by n is scaling the weights: a model with tanh(n·z) and weights W and one "
        f"with tanh(z) and weights n·W (W_ih, W_hh and both biases) have hidden states that differ by at most "
        f"{q['max_error']:.2g} over the first {q['equivalence_steps']} steps in float64 (n = {', '.join(errs)})"
        + (". Over all {} tokens they stay within {:.2g} for n = {} (multiplying by a power of two is exact); "
           "for n = {} the rounding differences grow "
           "with the dynamics (above 1e-6 at step {}), as any perturbation does where the Jacobian norm exceeds 1."
           .format(q["tokens"], max((e["all_steps"] for n, e in errs.items() if n not in grown), default=0.0),
                   ", ".join(n for n in errs if n not in grown), ", ".join(grown),
                   ", ".join(str(v) for v in grown.values()))
           if grown else f", and by at most {max(e['all_steps'] for e in errs.values()):.2g} over all "
                         f"{q['tokens']} tokens."))
    base = s["init"].get("rnn-tanh-x2", {}).get("factor_per_step")
    lines.append(
        f"- `{q['figure']}`: lag curves for n = " + ", ".join(TANH_N_STR) + ": "
        + "; ".join(f"n={n}: {_curve_sentence(q['curves'][n])}" for n in TANH_N_STR)
        + ". A larger n raises the bound n‖W_hh‖ (= n here) but also saturates the units sooner, so the measured "
          "factor per step stays far below n"
        + (f"; part 1's tanh with only W_hh ×2 (inputs and biases unscaled) has {_g(base)} per step against "
           f"{_g(q['curves']['2']['factor_per_step'])} for tanh(2·z)." if base is not None else "."))
    return "\n".join(lines) + "\n"


TANH_N_STR = tuple(f"{n:g}" for n in TANH_N)


# ---------------------------------------------------------------- demo longrange


def count_params(cell: str, vocab_size: int, emsize: int, hidden: int) -> int:
    """Parameters of a 1-layer untied model (encoder, recurrent weights and biases, decoder)."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    return vocab_size * emsize + gates * hidden * (emsize + hidden + 2) + hidden * vocab_size + vocab_size


def matched_hidden(cell: str, target: int, vocab_size: int, emsize: int) -> int:
    """The hidden size whose parameter count is closest to `target`."""
    return min(range(1, 4096), key=lambda h: abs(count_params(cell, vocab_size, emsize, h) - target))


def _longrange_models(sizes, vocab_size):
    """(name, TrainConfig overrides) of the study: three cells with and without clipping, rnn with Ω."""
    E = sizes["emsize"]
    target = count_params("lstm", vocab_size, E, sizes["lstm_hidden"])
    H = {c: matched_hidden(c, target, vocab_size, E) for c in ("rnn", "lstm", "gru")}
    models = []
    for cell in ("rnn", "lstm", "gru"):
        for clip in (sizes["clip"], 0.0):
            name = f"{cell}-{'clip' if clip else 'noclip'}"
            models.append((name, dict(cell=cell, hidden=H[cell], clip_norm=clip,
                                      forget_bias=1.0 if cell == "lstm" else 0.0)))
    models.append(("rnn-omega", dict(cell="rnn", hidden=H["rnn"], clip_norm=sizes["clip"], omega=sizes["omega"])))
    return models, H, target


def _bin_accuracy(agreement: dict, lo: int, hi: int) -> dict:
    from .probes import wilson_interval
    sel = [b for b in agreement["by_distance"] if lo <= b["distance"] <= hi]
    n = sum(b["n"] for b in sel)
    k = sum(b["correct"] for b in sel)
    ci = wilson_interval(k, n)
    return {"range": [lo, hi], "n": n, "accuracy": k / n if n else None, "ci": list(ci)}


def _trained_on(corpus_settings: dict) -> str:
    """What the agreement figures' titles say of the training corpus: its distances, and its subject relatives
    when they are not sintetico's default (they restate the subject's number inside the gap)."""
    text = f"trained on distances {corpus_settings.get('min_distance', 1)}..{corpus_settings['max_distance']}"
    rate = corpus_settings.get("subject_relative_rate")
    return text + (f", subject relatives {rate:g}" if rate is not None else "")


def run_longrange(out, minutes: float = 3.0, quick: bool = False, seed: int = 0, min_distance: int = 1,
                  omega: float | None = None, subject_relative_rate: float | None = None) -> dict:
    """The whole `demo longrange`; returns the summary (also OUT/summary.json and .md).

    min_distance > 1 trains on long dependencies only (no short sentences to learn
    agreement from), the setting in which vanishing gradients should bite; the
    probes still measure every distance. omega: Ω weight (default: the sizes' value).
    subject_relative_rate: share of the training corpus's relative clauses whose own
    verb agrees with the subject (restating its number a few words before the verb
    that the probes score; None = sintetico's default 0.25, 0 = the controlled corpus).
    """
    if not minutes > 0:
        raise UserError(f"--minutes must be positive, got {minutes}")
    if not 1 <= min_distance <= (QUICK if quick else FULL)["longrange"]["max_distance"]:
        raise UserError(f"--min-distance must be between 1 and the maximum training distance, got {min_distance}")
    if omega is not None and not omega >= 0:
        raise UserError(f"--omega must be >= 0, got {omega}")
    from .runs import load_model
    from .data import DataConfig, load_corpus
    from .plots import clip_label
    from .probes import agreement_probe, context_usage, model_scorer, parse_distances
    from .config import ModelConfig, TrainConfig
    from .sintetico import ensure_corpus

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = dict((QUICK if quick else FULL)["longrange"])
    if omega is not None:
        sizes["omega"] = omega
    t0 = time.perf_counter()
    corpus_settings = dict(sentences=sizes["sentences"], min_distance=min_distance,
                           max_distance=sizes["max_distance"], seed=seed)
    if subject_relative_rate is not None:
        if not 0.0 <= subject_relative_rate <= 1.0:
            raise UserError(f"--subject-relative-rate must be between 0 and 1, got {subject_relative_rate}")
        corpus_settings["subject_relative_rate"] = subject_relative_rate
    folder = ensure_corpus(out / "sintetico", **corpus_settings)
    data = DataConfig(corpus=str(folder))
    corpus = load_corpus(data)
    V = len(corpus.vocab)
    models, hidden, target = _longrange_models(sizes, V)
    _say(f"vocabulary {V}; hidden sizes matched to the lstm's {target:,} parameters: "
         + ", ".join(f"{c} H={h} ({count_params(c, V, sizes['emsize'], h):,})" for c, h in hidden.items()))
    distances = parse_distances(sizes["probe_distances"])
    tokens = np.asarray(corpus.valid[:sizes["curve_tokens"]])
    rows, docs, names, named = {}, [], [], []
    for name, over in models:
        mcfg = ModelConfig(cell=over["cell"], activation="tanh", emsize=sizes["emsize"], hidden=over["hidden"],
                           init="orthogonal", dropout=0.0, forget_bias=over.get("forget_bias", 0.0))
        named.append((name, TrainConfig(data=data, model=mcfg, optimizer="adam", lr=sizes["lr"], bptt=sizes["bptt"],
                                        batch_size=sizes["batch_size"], clip_norm=over["clip_norm"],
                                        omega=over.get("omega", 0.0), eval_every=0 if quick else 500, seed=seed,
                                        sample_words=0, progress=False, out=str(out / name),
                                        **_budget(sizes, minutes))))
    # All seven trainings in one sweep (side by side on the cores); a rerun trains only the missing ones.
    _stage_folder(out, {"quick": quick, "seed": seed, "minutes": minutes, "sizes": sizes, "corpus": corpus_settings})
    try:
        trained = _train_all(out, named)
    except KeyboardInterrupt:
        _say(f"interrupted: the finished trainings are recorded in {out / 'sweep.jsonl'}; run the same command "
             "again (same --out) to continue")
        raise
    for name, over in models:
        run = out / name
        s = trained[name]
        row = {"name": name, "cell": over["cell"], "hidden": over["hidden"], "clip_norm": over["clip_norm"],
               "omega": over.get("omega", 0.0), "params": s["params"], "steps": s["steps"], "stopped": s["stopped"],
               "train_wall_s": s["wall_s"],
               "valid_ppl": s["best_val_ppl"] if math.isfinite(s["best_val_ppl"]) else None}
        model, vocab, _, _ = load_model(run, "best")
        if row["valid_ppl"] is None:
            row["probes"] = "skipped: the run diverged before any finite validation"
            rows[name] = row
            continue
        _say(f"probes and lag curve: {name}")
        agr = agreement_probe(model_scorer(model), vocab.stoi, distances, sizes["probe_n"], seed, "number")
        agr = {"run": str(run), "cell": over["cell"], "label": name, **agr}
        _write_json(run / "probe-agreement-number.json", agr)
        ctx = context_usage(model, corpus.valid, parse_distances(sizes["context_distances"]), "shuffle",
                            sizes["context_targets"], seed, sizes["context_window"], V)
        ctx = {"run": str(run), "cell": over["cell"], "label": name, "split": "valid", **ctx}
        _write_json(run / "probe-context-shuffle.json", ctx)
        doc = _lag(model, tokens, sizes, seed, per_step=False, text="sintetico:valid", source=str(run / "best.npz"),
                   clip=clip_label({"clip_norm": over["clip_norm"]}), omega=over.get("omega", 0.0))
        _write_json(run / "jacobian.json", doc)
        docs.append(doc)
        names.append(f"{name} (H={over['hidden']})")
        row.update(agreement={f"{lo}-{hi}": _bin_accuracy(agr, lo, hi) for lo, hi in sizes["bins"]},
                   agreement_overall=agr["overall"]["accuracy"], chance_at=agr["chance_at"],
                   effective_context=ctx["effective_context"], context_baseline_loss=ctx["baseline_loss"],
                   jacobian=curve_numbers(doc))
        rows[name] = row
    probed = [n for n in rows if "agreement" in rows[n]]
    from .plots import plot_probe
    trained_on = _trained_on(corpus_settings)
    figs = {
        "agreement": Path(plot_probe([out / n / "probe-agreement-number.json" for n in probed],
                                     out / "agreement.png",
                                     title="Subject-verb number agreement on sintetico, by distance (95% CI); "
                                           + trained_on)).name,
        "context": Path(plot_probe([out / n / "probe-context-shuffle.json" for n in probed], out / "context.png",
                                   title="Loss increase when context beyond d is shuffled (95% CI)")).name,
        "jacobian": Path(_plot_lag(docs, names, out / "jacobian.png",
                                   title="Jacobian norms by lag of the trained models (validation text)")).name,
    }
    # The same three figures with the clipped models and Ω only: fewer bands, easier to read.
    main = [n for n in probed if not n.endswith("-noclip")]
    figs["agreement_main"] = Path(plot_probe([out / n / "probe-agreement-number.json" for n in main],
                                             out / "agreement-main.png",
                                             title="Agreement by distance: clipped rnn, lstm, gru"
                                                   + (" and rnn with Ω" if "rnn-omega" in main else "")
                                                   + "; " + trained_on)).name
    figs["context_main"] = Path(plot_probe([out / n / "probe-context-shuffle.json" for n in main],
                                           out / "context-main.png",
                                           title="Loss increase when context beyond d is shuffled")).name
    figs["jacobian_main"] = Path(_plot_lag([d for d, n in zip(docs, probed) if n in main],
                                           [lbl for lbl, n in zip(names, probed) if n in main],
                                           out / "jacobian-main.png",
                                           title="Jacobian norms by lag: clipped rnn, lstm, gru"
                                                 + (" and rnn with Ω" if "rnn-omega" in main else ""))).name
    summary = {"demo": "longrange", "quick": quick, "seed": seed, "minutes_per_model": None if quick else minutes,
               "sizes": {k: v for k, v in sizes.items() if k != "bins"}, "bins": sizes["bins"],
               "corpus": {"folder": str(folder), **corpus_settings, "vocab": V,
                          "tokens": {k: int(len(getattr(corpus, k))) for k in ("train", "valid", "test")}},
               "matched": {"target_params": target, "hidden": hidden}, "models": rows, "figures": figs,
               }
    figs["agreement_far"] = far_probe(out, rows, sizes, seed)
    summary["shape"] = expected_shape(rows, sizes["bins"])
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    _write_json(out / "summary.json", summary)
    (out / "summary.md").write_text(longrange_markdown(summary), encoding="utf-8")
    return summary


def far_probe(out: Path, rows: dict, sizes, seed: int) -> str:
    """Agreement beyond the training distances (sintetico's max_distance): does what was learned extend?

    Adds 'agreement_far' (pooled accuracy) and 'agreement_far_by_distance' to each probed row, writes
    probe-agreement-number-far.json per run and returns the figure's file name (clipped models and Ω).
    """
    from .plots import plot_probe
    from .probes import agreement_probe, model_scorer, parse_distances
    from .runs import load_model
    distances = parse_distances(sizes["far_distances"])
    for name, row in rows.items():
        if "agreement" not in row:
            continue
        _say(f"agreement beyond the training distances: {name}")
        model, vocab, _, _ = load_model(out / name, "best")
        agr = agreement_probe(model_scorer(model), vocab.stoi, distances, sizes["probe_n"], seed, "number")
        _write_json(out / name / "probe-agreement-number-far.json",
                    {"run": str(out / name), "cell": row["cell"], "label": name, **agr})
        row["agreement_far"] = _bin_accuracy(agr, distances[0], distances[-1])
        row["agreement_far_by_distance"] = {str(b["distance"]): b["accuracy"] for b in agr["by_distance"]}
    main = [n for n, r in rows.items() if "agreement_far" in r and not n.endswith("-noclip")]
    return Path(plot_probe([out / n / "probe-agreement-number-far.json" for n in main], out / "agreement-far.png",
                           title=f"Agreement beyond the training distances (d = {sizes['far_distances']})")).name


def expected_shape(rows: dict, bins) -> dict:
    """Does the vanilla RNN fall to chance at long distance while lstm and gru hold? (clipped runs)"""
    long_key = f"{bins[-1][0]}-{bins[-1][1]}"

    def long(name):
        r = rows.get(name, {})
        return r.get("agreement", {}).get(long_key)
    rnn, lstm, gru = long("rnn-clip"), long("lstm-clip"), long("gru-clip")
    if not (rnn and lstm and gru):
        return {"holds": None, "why": "a clipped model is missing or diverged"}
    rnn_chance = rnn["ci"][0] <= 0.5 <= rnn["ci"][1]
    gated_hold = min(lstm["ci"][0], gru["ci"][0]) > max(0.5, rnn["ci"][1])
    short_key = f"{bins[0][0]}-{bins[0][1]}"
    learned = {n: rows[n]["agreement"][short_key]["ci"][0] > 0.5 for n in ("rnn-clip", "lstm-clip", "gru-clip")}
    return {"holds": bool(rnn_chance and gated_hold), "rnn_at_chance_long": bool(rnn_chance),
            "gated_above_rnn_long": bool(gated_hold), "long_bin": long_key,
            "above_chance_short": learned, "short_bin": short_key,
            "long_accuracy": {"rnn-clip": rnn["accuracy"], "lstm-clip": lstm["accuracy"], "gru-clip": gru["accuracy"]}}


def _acc(rec) -> str:
    if rec is None or rec.get("accuracy") is None:
        return "n/a"
    return f"{rec['accuracy']:.2f} [{rec['ci'][0]:.2f}, {rec['ci'][1]:.2f}]"


def longrange_table(s: dict) -> str:
    bins = [f"{lo}-{hi}" for lo, hi in s["bins"]]
    head = (["model", "H", "params", "steps", "valid ppl"] + [f"agreement d={b}" for b in bins]
            + ["agreement beyond training", "effective context", "Jacobian vanish lag", "factor/step"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in s["models"].items():
        if "agreement" not in r:
            lines.append(f"| {name} | {r['hidden']} | {r['params']:,} | {r['steps']} | diverged ({r['stopped']}) |"
                         + " |" * (len(head) - 5))
            continue
        j = r["jacobian"]
        eff = r["effective_context"]
        eff = eff if eff is not None else ">" + s["sizes"]["context_distances"].split(",")[-1]
        lines.append(f"| {name} | {r['hidden']} | {r['params']:,} | {r['steps']} | {fmt_ppl(r['valid_ppl'])} | "
                     + " | ".join(_acc(r["agreement"][b]) for b in bins) + f" | {_acc(r.get('agreement_far'))}"
                     + f" | {eff} | {j['vanish_lag'] or '>' + str(j['max_lag'])} | {_g(j['factor_per_step'])} |")
    return "\n".join(lines)


def longrange_markdown(s: dict) -> str:
    c = s["corpus"]
    m = s["matched"]
    f = s["figures"]
    sh = s["shape"]
    lines = [f"# demo longrange{' (quick)' if s['quick'] else ''}", "",
             f"Seed {s['seed']}. Corpus: sintetico regenerated with {c['sentences']:,} sentences, subject-verb "
             f"distance {c.get('min_distance', 1)}..{c['max_distance']}, subject relatives (whose verb restates the number) "
             f"in {c.get('subject_relative_rate', 0.25):g} of relative clauses, "
             f"vocabulary {c['vocab']}, {c['tokens']['train']:,} training tokens. "
             f"Models: orthogonal init, E={s['sizes']['emsize']}, hidden sizes matched to the lstm's "
             f"{m['target_params']:,} parameters ({', '.join(f'{k} H={v}' for k, v in m['hidden'].items())}), "
             f"Adam lr {s['sizes']['lr']}, "
             + (f"{s['minutes_per_model']:g} min each, " if s["minutes_per_model"] else "")
             + f"clip-norm {s['sizes']['clip']} or none"
             + f", and rnn with Ω (α = {s['sizes']['omega']})"
             + f". Wall time {s['wall_s']:.0f} s.", "",
             f"- `{f['agreement']}`: accuracy of the agreeing verb form against the other number, by subject-verb "
             f"distance, {s['sizes']['probe_n']} pairs per distance, one curve per model, Wilson 95% intervals; "
             "chance is 0.5.",
             f"- `{f['context']}`: mean loss increase at a target when the context farther than d tokens is "
             "shuffled (Khandelwal et al. 2018), bootstrap 95% intervals.",
             f"- `{f['jacobian']}`: the spectral norm of the trained models' state Jacobians by lag on validation "
             "text.",
             f"- `{f['agreement_main']}`, `{f['context_main']}`, `{f['jacobian_main']}`: the same with only the "
             "clipped models (and Ω).",
             f"- `{f['agreement_far']}`: agreement at distances the training sentences never had "
             f"(d = {s['sizes']['far_distances']}; training distances {c.get('min_distance', 1)}..{c['max_distance']}).",
             "", longrange_table(s), ""]
    if sh.get("holds") is None:
        lines.append(f"Expected shape (rnn at chance far away, lstm/gru above it): not assessed ({sh['why']}).")
    elif sh["holds"]:
        lines.append(f"The expected shape appears: at distances {sh['long_bin']} the clipped rnn is at chance "
                     f"({sh['long_accuracy']['rnn-clip']:.2f}) while lstm ({sh['long_accuracy']['lstm-clip']:.2f}) "
                     f"and gru ({sh['long_accuracy']['gru-clip']:.2f}) stay above it.")
    else:
        lines.append(f"The expected shape does NOT fully appear at distances {sh['long_bin']}: rnn "
                     f"{sh['long_accuracy']['rnn-clip']:.2f} (at chance: {sh['rnn_at_chance_long']}), lstm "
                     f"{sh['long_accuracy']['lstm-clip']:.2f}, gru {sh['long_accuracy']['gru-clip']:.2f} (both above "
                     f"the rnn: {sh['gated_above_rnn_long']}). "
                     + ("Above chance at short distance (" + sh["short_bin"] + "): "
                        + ", ".join(f"{k.split('-')[0]} {v}" for k, v in sh["above_chance_short"].items())
                        + ("; a model that has not learned agreement even at short distance cannot show the "
                           "contrast (its training was too short)." if not all(sh["above_chance_short"].values())
                           else "; every model learned agreement nearby.")))
    return "\n".join(lines) + "\n"
