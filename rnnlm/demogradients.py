"""`demo gradients` (issue 5): Jacobian norms by lag at init, after training, in an explosion, for tanh(n·z).

Four parts, each a stage of `run_gradients` kept in OUT/stages for a rerun:
lag curves at initialization per activation and recurrent scale, and for
lstm and gru (`init_study`); rnn, lstm and gru before and after a short
training on Machado (`training_study`); a vanilla RNN that explodes without
clipping and the same with it (`explosion_study`); tanh(n·z) against
tanh(z) with n·W (`tanh_n_study`). The five trainings of parts 2 and 3 run
as one sweep. `gradients_markdown` writes summary.md from summary.json.

The one thing to know before editing: every size comes from demo.py's
`FULL` / `QUICK` tables (the quick test runs every line the full demo runs);
the activations and scales of the init study are this module's constants,
chosen so that ‖W_hh‖·max|f′| is 0.5, 1 and 2 for every activation.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from .demo import (FULL, QUICK, _budget, _g, _lag, _plot_lag, _quick_text, _say, _stage_folder, _text_name,
                   _tokens, _train_all, _write_json)
from .errors import finished
from .fileio import atomic_write_text
from .runs import fmt_ppl
from .sweepjobs import curve_numbers

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


def _curve_sentence(n: dict) -> str:
    if n.get("zero_lag") is not None and n["zero_lag"] <= 2:
        return (f"lag-1 median {_g(n['median_lag1'])}, exactly 0 from lag {n['zero_lag']} (every unit "
                f"saturated, f'(z) = 0: nothing flows back; no decay rate to fit)")
    grows = n["decay_rate"] is not None and n["decay_rate"] > 0     # an exploding curve: no vanishing to wait for
    van = (f"falls below 1e-6 of its lag-1 value at lag {n['vanish_lag']}" if n["vanish_lag"]
           else f"grows to a median of {_g(n['median_last'])} at lag {n['max_lag']}" if grows
           else f"has not fallen below 1e-6 of its lag-1 value by lag {n['max_lag']} (median there "
                f"{_g(n['median_last'])})")
    return (f"lag-1 median {_g(n['median_lag1'])}, factor per step {_g(n['factor_per_step'])} "
            f"({'growth' if grows else 'decay'} rate {_g(n['decay_rate'])}/step), {van}")


def _init_model(vocab_size, sizes, cell, activation="tanh", scale=1.0, seed=0, dtype="float64"):
    from .model import ModelConfig, RNNModel
    cfg = ModelConfig(vocab_size=vocab_size, cell=cell, activation=activation, emsize=sizes["emsize"],
                      hidden=sizes["hidden"], init="orthogonal", recurrent_scale=scale, dtype=dtype)
    return RNNModel(cfg, seed=seed)


def init_study(out: Path, tokens, vocab_size, sizes, seed, text: str) -> dict:
    """Part 1: lag curves at initialization, per activation and scale, and for lstm and gru.

    text: what `tokens` are ('machado:valid'), for the figures' subtitles."""
    from .plotruns import plot_factor_summary
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
        cfg = TrainConfig(data=data_config,
                          model=ModelConfig(cell=cell, activation="tanh", emsize=sizes["train_hidden"],
                                            hidden=sizes["train_hidden"], init="orthogonal", dropout=0.0),
                          optimizer="adam", lr=0.002, clip_norm=0.25, eval_every=0, eval_batch_size=64, seed=seed,
                          sample_words=0, progress=False, out=str(run), track_jacobian_every=sizes["track_every"],
                          **_budget(sizes))
        named.append((run.name, cfg))
    return named


def trained_on(corpus: str) -> str:
    """What the trained models' figure titles say they were trained on: 'Machado' for the whole corpus,
    'one Machado crônica (velhoSenado)' for the one file of --quick (its genre is its folder)."""
    if corpus == "machado":
        return "Machado"
    path = Path(corpus)
    genre = path.parent.name if path.parent.parent.name == "txt" else "text"   # the corpus's txt/<genre>/
    return f"one Machado {genre} ({path.stem})"


def training_study(out: Path, sizes, data_config, seed, summaries: dict | None = None) -> dict:
    """Part 2: rnn tanh, lstm, gru trained briefly on Machado (one crônica with --quick); curves at init vs
    after training.

    summaries: the trainings' results when already run (run_gradients trains all its models in one sweep).
    """
    from .plotruns import plot_lag_over_training
    from .plots import clip_label
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
        d1 = _lag(trained, tokens, sizes, seed, text=text, source=str(path), clip=clip_label(dataclasses.asdict(cfg)),
                  optimizer=cfg.optimizer, lr=cfg.lr)      # the figures' subtitles say what trained it
        docs += [d0, d1]
        names += [f"{cell} at init",
                  f"{cell} after {summary['steps']} steps (valid ppl {fmt_ppl(summary['best_val_ppl'], 0)})"]
        over = Path(plot_lag_over_training(run, out / f"trained-{cell}-over-training.png")).name
        results[cell] = {"init": curve_numbers(d0), "trained": curve_numbers(d1), "steps": summary["steps"],
                         "best_val_ppl": summary["best_val_ppl"], "stopped": summary["stopped"],
                         "wall_s": summary["wall_s"], "over_training_figure": over}
    for cell in ("rnn", "lstm", "gru"):
        i = ("rnn", "lstm", "gru").index(cell)
        fig = _plot_lag(docs[2 * i:2 * i + 2], names[2 * i:2 * i + 2], out / f"trained-{cell}.png",
                        title=f"{cell}{' tanh' if cell == 'rnn' else ''}, H={sizes['train_hidden']}: before and "
                              f"after training on {trained_on(data_config.corpus)}")
        results[cell]["figure"] = Path(fig).name
    fig = _plot_lag(docs[1::2], names[1::2], out / "trained-all.png",
                    title=f"After a short training on {trained_on(data_config.corpus)}: rnn vs lstm vs gru")
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
                          # lr_decay 1, patience 0: no annealing and no early stop at an epoch end (--quick's text
                          # ends in a few steps), so that a clipped update is lr x clip at every step, as the
                          # figure's right panel says, for all explode_steps
                          optimizer="sgd", lr=sizes["explode_lr"], clip_norm=clip, lr_decay=1.0, patience=0,
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
    from .plotruns import plot_explosion
    fig = plot_explosion(out / "explode-noclip", out / "explode-clip", out / "explosion.png",
                         title=f"rnn tanh, W_hh ×{sizes['explode_scale']:g} (orthogonal), SGD lr "
                               f"{sizes['explode_lr']:g}: no clipping vs --clip-norm {sizes['explode_clip']:g}")
    return {"runs": runs, "figure": Path(fig).name, "scale": sizes["explode_scale"], "lr": sizes["explode_lr"]}


def explosion_numbers(run_dir: Path) -> dict:
    """From a run's metrics: first non-finite step, largest gradient norm, loss jump (max / first loss)."""
    from .plotruns import read_metrics
    ev = read_metrics(run_dir)
    steps = [e for e in ev if e["type"] == "step"]
    bad = [e for e in ev if e["type"] == "nonfinite"]
    losses = [e["loss"] for e in steps if e.get("loss") is not None]
    norms = [e["grad_norm"] for e in steps if e.get("grad_norm") is not None]
    updates = [e["lr"] * e["grad_norm_clipped"] for e in steps
               if e.get("lr") is not None and e.get("grad_norm_clipped") is not None]
    first = losses[0] if losses else None
    return {"nonfinite_step": bad[0]["step"] if bad else None, "nonfinite_tensor": bad[0]["tensor"] if bad else None,
            "first_loss": first, "last_loss": losses[-1] if losses else None,
            "max_loss": max(losses) if losses else None,
            "loss_jump": (max(losses) / first) if losses and first else None,
            # orders of magnitude the perplexity rose above its first value: (max - first) nats / ln 10
            "ppl_jump_orders": (max(losses) - first) / math.log(10) if losses else None,
            "max_loss_step": steps[int(np.argmax(losses))]["step"] if losses else None,
            "max_grad_norm": max(norms) if norms else None,
            "first_grad_norm": norms[0] if norms else None,
            # the size of the step SGD applied, lr · ‖g‖ after clipping (the demo's runs are plain SGD)
            "first_update": updates[0] if updates else None, "max_update": max(updates) if updates else None,
            "median_grad_norm_after_10": float(np.median(norms[10:])) if len(norms) > 10 else None,
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
        part = "summary"
        summary["wall_s"] = {**timings, "total": round(time.perf_counter() - t0, 1)}
        _write_json(out / "summary.json", summary)
        atomic_write_text(out / "summary.md", gradients_markdown(summary))
        finished(f"the demo is saved in {out} (summary.md, summary.json, its figures and stages)")
    except KeyboardInterrupt as exc:     # the CLI prints exc.line, the stop's one line
        from .errors import stop_word
        done = [name for name, _ in parts if (stages / f"{name}.json").exists()]
        kept = (f"the finished stages ({', '.join(done)}) are saved in {stages}" if done else
                "no stage had finished")
        if (out / "sweep.jsonl").exists():
            kept += f", the finished trainings in {out / 'sweep.jsonl'}"
        exc.line = (f"{stop_word(exc)} during stage {part}: {kept}; run the same command again (same --out) "
                    f"to continue")
        raise
    return summary


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
    lines += ["", f"## 2. After a short training on {trained_on(s['corpus'])}", ""]
    for cell in ("rnn", "lstm", "gru"):
        r = t[cell]
        wall = f"{r['wall_s']:.{1 if r['wall_s'] < 10 else 0}f}"     # (0.5 s, not "0 s")
        lines.append(f"- `{r['figure']}`: {cell}, {r['steps']} steps ({wall} s, valid ppl "
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
    if nc.get("first_update") is not None and cl.get("max_update") is not None:
        # (older summaries have no update sizes)
        lines.append(f"  Both start from the same gradient (norm {_g(nc['first_grad_norm'])} at step 1); what differs "
                     f"is the step taken: lr · ‖g‖ = {_g(nc['first_update'])} without clipping (the network saturates "
                     f"and its gradient then falls to a median of {_g(nc['median_grad_norm_after_10'])} after step 10: "
                     f"a saturated unit passes no gradient), at most {_g(cl['max_update'])} with it.")
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
