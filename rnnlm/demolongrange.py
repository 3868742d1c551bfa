"""`demo longrange` (issue 6): long-range agreement of rnn, lstm and gru matched in parameters.

`run_longrange` regenerates the sintetico corpus, trains seven models in one
sweep (rnn, lstm, gru with and without clipping, and rnn with Ω; hidden sizes
matched to the lstm's parameter count, `matched_hidden`), then probes each:
subject-verb agreement by distance, context usage, the Jacobian by lag, and
agreement beyond the training distances (`far_probe`). `expected_shape` says
whether the rnn falls to chance far away while the gated cells hold;
`longrange_markdown` writes summary.md from summary.json.

The one thing to know before editing: every size comes from demo.py's
`FULL` / `QUICK` tables (the quick test runs every line the full demo runs).
The seven trainings are one sweep recorded in OUT/sweep.jsonl, so a rerun
with the same --out trains only the missing ones; a model whose run diverged
stays in the table, unprobed.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from .demo import FULL, QUICK, _budget, _g, _lag, _plot_lag, _say, _stage_folder, _train_all, _write_json
from .errors import UserError, and_list, finished
from .fileio import atomic_write_text
from .runs import fmt_ppl
from .sweepjobs import curve_numbers


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
    from .settings import check_range
    check_range("minutes", minutes)
    if not 1 <= min_distance <= (QUICK if quick else FULL)["longrange"]["max_distance"]:
        raise UserError(f"--min-distance must be between 1 and the maximum training distance, got {min_distance}")
    check_range("omega", omega)     # (None: the sizes' value)
    from .data import DataConfig, load_corpus
    from .probes import parse_distances
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
    named = []
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
    except KeyboardInterrupt as exc:     # the CLI prints exc.line, the stop's one line
        from .errors import stop_word
        kept = (f"the finished trainings are recorded in {out / 'sweep.jsonl'}" if (out / "sweep.jsonl").exists()
                else "no training had finished")
        exc.line = f"{stop_word(exc)}: {kept}; run the same command again (same --out) to continue"
        raise
    try:
        return _measure_and_report(out, models, trained, corpus, sizes, seed, distances, tokens, corpus_settings,
                                   quick, minutes, folder, V, target, hidden, t0)
    except KeyboardInterrupt as exc:     # every training is recorded: the probes, figures and summary are not
        from .errors import stop_word
        exc.line = (f"{stop_word(exc)} while the trained models were measured: every training is recorded in "
                    f"{out / 'sweep.jsonl'}; run the same command again (same --out): it skips the trainings "
                    "and measures them")
        raise


def _measure_and_report(out, models, trained, corpus, sizes, seed, distances, tokens, corpus_settings, quick,
                        minutes, folder, V, target, hidden, t0) -> dict:
    """The trained models' probes and lag curves, the figures, summary.json and summary.md; returns the summary."""
    rows, docs, names = {}, [], []
    for name, over in models:
        rows[name], doc = _probe_run(out / name, name, over, trained[name], corpus, sizes, seed, distances, tokens)
        if doc is not None:
            docs.append(doc)
            names.append(f"{name} (H={over['hidden']})")
    figs = _figures(out, rows, docs, names, _trained_on(corpus_settings))
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
    atomic_write_text(out / "summary.md", longrange_markdown(summary))
    finished(f"the demo is saved in {out} (summary.md, summary.json, its figures and runs)")
    return summary


def _probe_run(run: Path, name: str, over: dict, s: dict, corpus, sizes: dict, seed: int, distances, tokens):
    """One trained model's probes (agreement, context) and lag curve, written into its run folder; returns
    its summary row and its lag document (None when the run diverged before any finite validation)."""
    from .plots import clip_label
    from .probes import agreement_probe, context_usage, model_scorer, parse_distances
    from .runs import load_model
    row = {"name": name, "cell": over["cell"], "hidden": over["hidden"], "clip_norm": over["clip_norm"],
           "omega": over.get("omega", 0.0), "params": s["params"], "steps": s["steps"], "stopped": s["stopped"],
           "train_wall_s": s["wall_s"],
           "valid_ppl": s["best_val_ppl"] if math.isfinite(s["best_val_ppl"]) else None}
    model, vocab, _, _ = load_model(run, "best")
    if row["valid_ppl"] is None:
        row["probes"] = "skipped: the run diverged before any finite validation"
        return row, None
    _say(f"probes and lag curve: {name}")
    agr = agreement_probe(model_scorer(model), vocab.stoi, distances, sizes["probe_n"], seed, "number")
    agr = {"run": str(run), "cell": over["cell"], "label": name, **agr}
    _write_json(run / "probe-agreement-number.json", agr)
    ctx = context_usage(model, corpus.valid, parse_distances(sizes["context_distances"]), "shuffle",
                        sizes["context_targets"], seed, sizes["context_window"], len(corpus.vocab))
    ctx = {"run": str(run), "cell": over["cell"], "label": name, "split": "valid", **ctx}
    _write_json(run / "probe-context-shuffle.json", ctx)
    doc = _lag(model, tokens, sizes, seed, per_step=False, text="sintetico:valid", source=str(run / "best.npz"),
               clip=clip_label({"clip_norm": over["clip_norm"]}), omega=over.get("omega", 0.0))
    _write_json(run / "jacobian.json", doc)
    row.update(agreement={f"{lo}-{hi}": _bin_accuracy(agr, lo, hi) for lo, hi in sizes["bins"]},
               agreement_overall=agr["overall"]["accuracy"], chance_at=agr["chance_at"],
               effective_context=ctx["effective_context"], context_baseline_loss=ctx["baseline_loss"],
               jacobian=curve_numbers(doc))
    return row, doc


def _figures(out: Path, rows: dict, docs: list, names: list, trained_on: str) -> dict:
    """The agreement, context and Jacobian figures of every probed model, and the same three of the clipped
    models and Ω only (fewer bands, easier to read); returns {figure key: file name in out}."""
    from .plotruns import plot_probe
    probed = [n for n in rows if "agreement" in rows[n]]
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
    return figs


def far_probe(out: Path, rows: dict, sizes, seed: int) -> str:
    """Agreement beyond the training distances (sintetico's max_distance): does what was learned extend?

    Adds 'agreement_far' (pooled accuracy) and 'agreement_far_by_distance' to each probed row, writes
    probe-agreement-number-far.json per run and returns the figure's file name (clipped models and Ω).
    """
    from .plotruns import plot_probe
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
             f"distance {c.get('min_distance', 1)}..{c['max_distance']}, "
             "subject relatives (whose verb restates the number) "
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
             f"(d = {s['sizes']['far_distances']}; "
             f"training distances {c.get('min_distance', 1)}..{c['max_distance']}).",
             "", longrange_table(s), ""]
    lines.append(shape_sentence(sh))
    return "\n".join(lines) + "\n"


def shape_sentence(sh: dict) -> str:
    """expected_shape's verdict in words, for the summary: whether the clipped rnn is at chance at the
    longest distances while the lstm and the gru stay above it, and when not, what each scored."""
    if sh.get("holds") is None:
        return f"Expected shape (rnn at chance far away, lstm/gru above it): not assessed ({sh['why']})."
    if sh["holds"]:
        return (f"The expected shape appears: at distances {sh['long_bin']} the clipped rnn is at chance "
                f"({sh['long_accuracy']['rnn-clip']:.2f}) while lstm ({sh['long_accuracy']['lstm-clip']:.2f}) "
                f"and gru ({sh['long_accuracy']['gru-clip']:.2f}) stay above it.")
    acc = sh["long_accuracy"]
    above = [k.split("-")[0] for k, v in sh["above_chance_short"].items() if v]
    below = [k.split("-")[0] for k, v in sh["above_chance_short"].items() if not v]
    return (f"The expected shape does NOT fully appear at distances {sh['long_bin']}: rnn "
            f"{acc['rnn-clip']:.2f} ({'at' if sh['rnn_at_chance_long'] else 'not at'} chance), lstm "
            f"{acc['lstm-clip']:.2f}, gru {acc['gru-clip']:.2f} "
            f"({'both' if sh['gated_above_rnn_long'] else 'not both'} above the rnn). "
            + _short_sentence(sh["short_bin"], above, below)
            + " The vanilla rnn's failure to learn a long dependency is shown by `study learnability --quick` "
              "(README, \"Learning a dependency across d words\").")


def _short_sentence(short_bin: str, above: list, below: list) -> str:
    """Which clipped models learned agreement at the shortest distances (the contrast needs them all)."""
    if not below:
        return f"At short distance ({short_bin}) every model is above chance: every model learned agreement nearby."
    verb = "is" if len(below) == 1 else "are"
    others = f" ({and_list(above)} {'is' if len(above) == 1 else 'are'})" if above else ""
    return (f"At short distance ({short_bin}) {and_list(below)} {verb} not above chance{others}: a model that has not "
            "learned agreement even at short distance cannot show the contrast (its training was too short).")
