"""The `jacobian` command's run: the model, the output file and the table printed on the terminal.

`run_jacobian(JacobianConfig)` builds a fresh model (`_init_model`: a corpus
split's tokens, or random ids) or loads a run's, measures it with
jacobian.lag_curve and writes the document where `default_out` says
(`init_name` names a fresh model's file by every setting); `format_table` and
`decay_line` are the lines the command prints, `anchors_note` its note when
the text holds fewer anchor positions than asked. The math (the Jacobians by
lag, their norms and summaries, decay rate, vanish and zero lag) and the JSON
document's definition are in jacobian.py.

The one thing to know before editing: this is the command's layer, and it
speaks in flags. Its errors and notes name the flags (--max-lag, --anchors,
--tokens) and are checked here before lag_curve runs, whose own errors name
its Python arguments (max_lag); lag_curve's FewerAnchorsWarning is silenced
here because anchors_note has said the same in flags.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .activations import zero_reason
from .errors import UserError
from .jacobian import FewerAnchorsWarning, curve_zero_lag, lag_curve
from .jacobianstates import StateOverflowError, StateOverflowWarning

TABLE_LAGS = (1, 2, 3, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500)


def _init_model(config, fallback: bool = True):
    """A freshly initialized model from a JacobianConfig's `model`, and its (tokens, text source).

    Tokens: the `split` of `data.corpus` (default machado, its default tokenizer
    and vocabulary), so that the input statistics are those of real Portuguese;
    uniformly random ids from a `vocab_size` vocabulary when the corpus is
    "none", or when it cannot be read and `fallback` (a note on stderr says so;
    the CLI allows it only for the default corpus, not one the user named:
    that one's error is raised).
    """
    import sys

    from .data import load_corpus
    from .model import RNNModel
    ids, vocab_size, text = None, config.vocab_size, None
    if str(config.data.corpus).lower() != "none":
        try:
            corpus = load_corpus(config.data)
            ids, vocab_size = getattr(corpus, config.split), len(corpus.vocab)
            text = f"{config.data.corpus}:{config.split}"
        except UserError as exc:
            if not fallback:
                raise
            print(f"note: {exc}; measuring on random tokens instead", file=sys.stderr)
    if ids is None:
        if vocab_size < 2:
            raise UserError("--vocab-size must be at least 2")
        ids = np.random.default_rng([config.seed, 2]).integers(0, vocab_size, config.tokens)
        text = f"random:{vocab_size}"
    return RNNModel(config.model.with_vocab(vocab_size), seed=config.seed), ids, text


def default_out(config, text: str | None = None):
    """Where the command writes when `out` is not given (the README's "Where things go"):
    RUN/jacobian.json for a run folder, CKPT-jacobian.json beside a checkpoint file, and for a
    fresh model (reads no run) runs/jacobian-init/<every setting>.json, so that two measurements
    with different settings never overwrite each other and nothing lands loose in the current folder."""
    from pathlib import Path
    if config.out:
        return Path(config.out)
    m = config.model
    if m is not None:
        return Path("runs") / "jacobian-init" / f"{init_name(config, text)}.json"
    run = Path(config.run)
    return run / "jacobian.json" if run.is_dir() else run.with_name(f"{run.stem}-jacobian.json")


def init_name(config, text: str | None = None) -> str:
    """A file stem naming every setting of a `jacobian --init` measurement, e.g.
    rnn-tanh-orthogonal-x1.5-H256-E256-L1-machado-valid-2000tok-D100-K32-seed0.
    text: the meta's "text" actually read ("machado:valid", "random:50"; default from the config)."""
    import re
    from pathlib import Path
    m = config.model
    act = f"-{m.activation}" if m.cell == "rnn" else ""
    fb = f"-fb{m.forget_bias:g}" if m.cell == "lstm" else ""
    if text is None:
        corpus = str(config.data.corpus)
        text = f"random:{config.vocab_size}" if corpus.lower() == "none" else f"{corpus}:{config.split}"
    source, _, split = text.rpartition(":")
    text = f"{Path(source).stem or 'corpus'}-{split}" if source != "random" else f"random{split}"
    if source != "random":      # the corpus settings that shape the vocabulary and split, where not default
        import dataclasses
        d = config.data
        short = {"keep_case": "case", "num_token": "num", "max_vocab": "V", "min_count": "min",
                 "split_seed": "split", "valid_fraction": "vf", "test_fraction": "tf"}
        text += "".join(f"-{short[f.name]}{getattr(d, f.name):g}" for f in dataclasses.fields(d)
                        if f.name in short and getattr(d, f.name) != f.default)
    name = (f"{m.cell}{act}-{m.init}-x{m.recurrent_scale:g}{fb}-H{m.hidden}-E{m.emsize}-L{m.layers}-"
            f"{text}-{config.tokens}tok-D{config.max_lag}-K{config.anchors}-seed{config.seed}")
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name.replace(":", "").replace(",", "_"))


def _fmt(x) -> str:
    return f"{'-':>9}" if x is None else f"{x:9.3g}"


def decay_line(series: dict, kind: str | None, cell: str | None = None, norm_whh=None) -> str:
    """The jacobian table's line for one curve: decay rate, vanish lag, and where it is exactly 0.
    series: a SERIES with kind "spectral" or "frobenius", or a FLOW with kind None; norm_whh: the
    meta's "norm_Whh", for the reason of a curve that is 0 (activations.zero_reason)."""
    rate = series["decay_rate"] if kind is None else series["decay_rate"][kind]
    vanish = series["vanish_lag"] if kind is None else series["vanish_lag"][kind]
    zero = curve_zero_lag(series, kind)
    last = series["lag"][-1]
    if zero is not None and zero <= 2:
        why = ("ln 0 = -inf: no lag is nonzero" if zero == 1
               else "only lag 1 is nonzero, a slope needs two") + ", the norm drops to 0 at once"
        return f"{zero_reason(cell, zero, norm_whh)}; vanish lag {vanish}; decay rate undefined ({why})"
    median = series["norm"]["median"] if kind is None else series[kind]["median"]
    huge = next((d for d, m in zip(series["lag"], median) if m is None), None)   # beyond float64 (null)
    if rate is None:
        per = "undefined (fewer than 2 lags with a finite nonzero median to fit a slope to)"
    else:
        end = min(d for d in (zero, huge) if d is not None) if (zero, huge) != (None, None) else None
        fit = f", fitted on lags 1-{end - 1}" if end is not None else ""
        per = f"{rate:+.4f} /step (x{math.exp(rate):.4g} per step{fit})"
    # a curve that grows (explodes) has a growth rate, not a "decay rate +0.07", and no vanish lag to wait for
    word = "growth rate" if rate is not None and rate > 0 else "decay rate"
    van = (f"lag {vanish}" if vanish is not None else
           f"not within {last} lags" if rate is None or rate <= 0 else f"not within {last} lags (it grows)")
    line = f"{word} {per}; median below 1e-6 of lag 1: {van}"
    if huge is not None:
        line += f"; median beyond float64's range (over 1.8e308, written as null) from lag {huge}"
    return line + (f"; {zero_reason(cell, zero, norm_whh)}" if zero is not None else "")


def format_tables(doc: dict) -> str:
    """Every scope's table (format_table), in the document's order (layer0 .. layer<L-1>, then stacked),
    a blank line between them: what the jacobian command prints."""
    return "\n\n".join(format_table(doc, scope) for scope in doc["curves"])


def format_table(doc: dict, scope: str = "layer0") -> str:
    """The lines the jacobian command prints: a few lags, then decay rates and vanish lags."""
    meta = doc["meta"]
    q = "state" if meta["cell"] == "lstm" else "h"
    sc = doc["curves"][scope]
    s, flow = sc[q], sc["flow"]
    scale = meta.get("recurrent_scale", 1)
    scaled = "" if scale == 1 else f", W_hh ×{scale:g}"      # (as the figures write it; ×1 says nothing)
    lines = [f"{meta['cell']}{' ' + meta['activation'] if meta.get('activation') else ''}, H={meta['H']}, "
             f"{meta['layers']} layer(s), init {meta['init']}{scaled}; "
             f"{meta['anchors']} anchors over {meta['tokens']} tokens of {meta['text']}; scope {scope}, "
             f"quantity {q}",
             f"{'lag':>4} | {'spectral median':>15} {'p10':>9} {'p90':>9} | {'Frobenius median':>16} "
             f"{'p10':>9} {'p90':>9} | {'flow median':>11}"]
    for i, d in enumerate(s["lag"]):
        if d in TABLE_LAGS or d == s["lag"][-1]:
            sp, fr = s["spectral"], s["frobenius"]
            lines.append(f"{d:>4} | {_fmt(sp['median'][i]):>15} {_fmt(sp['p10'][i])} {_fmt(sp['p90'][i])} | "
                         f"{_fmt(fr['median'][i]):>16} {_fmt(fr['p10'][i])} {_fmt(fr['p90'][i])} | "
                         f"{_fmt(flow['norm']['median'][i]):>11}")
    for name, kind, series in (("spectral", "spectral", s), ("Frobenius", "frobenius", s), ("flow", None, flow)):
        lines.append(f"{name:>9}: " + decay_line(series, kind, meta["cell"], meta.get("norm_Whh")))
    if meta["cell"] == "rnn":
        lines.append("per-step bound ||W_hh|| max|f'| = "
                     + ", ".join(f"{b:.4g}" for b in meta["bound_per_step"])
                     + "; spectral radius of W_hh = " + ", ".join(f"{r:.4g}" for r in meta["spectral_radius_Whh"]))
    return "\n".join(lines)


def anchors_note(config, n_tokens: int) -> str | None:
    """The note that says fewer anchors than --anchors are measured (lag_curve takes every position there
    is), or None: anchors fall in [D, N-1], so N tokens hold N - D of them."""
    there = n_tokens - config.max_lag
    if there >= config.anchors or n_tokens < config.max_lag + 2:    # (too few tokens: pick_anchors refuses)
        return None
    more = "a larger --tokens" if n_tokens == config.tokens else "a longer text"    # (all of it was read)
    return (f"note: --anchors {config.anchors}: the {n_tokens} tokens read hold only {there} anchor positions "
            f"(t from --max-lag {config.max_lag} to {n_tokens - 1}); measuring at all {there} "
            f"({more}, or a smaller --max-lag, gives more)")


def overflow_line(config, what: str, step: int, n_tokens: int) -> str:
    """The command's error when the forward overflows before any anchor position (jacobianstates.StateOverflowError)."""
    fixes = (["a smaller --recurrent-scale"] if config.model is not None else []) + \
        ([f"--max-lag {step - 2} or less"] if step >= 3 else [])
    fix = f"; {' or '.join(fixes)} measures it" if fixes else ""
    return (f"the {what} at step {step} of the {n_tokens} tokens: the network explodes, its forward pass itself "
            f"diverges before step --max-lag + 2 = {config.max_lag + 2}, so no anchor is left to measure at{fix}")


def overflow_note(config, meta: dict) -> str | None:
    """The note that the forward overflowed at meta["overflow_step"] and only the anchors before it were
    measured (jacobianstates.StateOverflowWarning, in flags), or None."""
    step = meta.get("overflow_step")
    if step is None or step >= meta["tokens"]:
        return None
    fix = "; a smaller --recurrent-scale keeps it finite" if config.model is not None else ""
    return (f"note: the network explodes: its forward pass overflows (is not finite) from step {step} of the "
            f"{meta['tokens']} tokens on; measured at {meta['anchors']} anchors before it only "
            f"(t from --max-lag {meta['max_lag']} to {step - 1}){fix}")


_MEASURED_BY = (("source", "--checkpoint"), ("text", "--split/--text"), ("max_lag", "--max-lag"),
                ("anchors", "--anchors"), ("tokens", "--tokens"), ("seed", "--seed"))


def run_jacobian(config, *, corpus_fallback: bool = True, progress: bool = False) -> tuple[dict, object]:
    """The `jacobian` command: the lag curves of a JacobianConfig's run or fresh model, written as
    JSON; returns (document, path written). format_table(document) is what the command prints.
    corpus_fallback: a fresh model's corpus that cannot be read gives random tokens (with a note)
    instead of its error; progress: the measurement's bar (lag_curve). A note on stderr says when the
    text holds fewer anchor positions than asked (anchors_note). The command's layer: its errors name
    the flags (--max-lag), where lag_curve's name its Python arguments (max_lag). A Ctrl-C or SIGTERM
    raises on with the CLI's one line in `exc.line` (fileio.stop_says_what_is_kept): the file is written
    atomically, so it holds the earlier measurement or the new one whole, never half of one."""
    import json
    import sys

    from .fileio import stop_says_what_is_kept
    from .measured import replaced_note

    with stop_says_what_is_kept("the Jacobian measurement") as said:     # Ctrl-C: says what is kept
        config.validate()
        if config.out:      # a given --out: refused before the corpus and model load (the default: below)
            from .fileio import check_writable
            from .measured import check_measurement_out
            check_measurement_out(config.out)   # never a checkpoint, a run's record or another file in its place
            check_writable(config.out)
        if config.model is not None:
            model, ids, text = _init_model(config, fallback=corpus_fallback)
            source, extra = "init", {}
        else:
            from .evaluate import run_text_ids
            from .runs import load_model
            model, vocab, info, path = load_model(config.run, config.checkpoint)
            ids = run_text_ids(info, vocab, split=config.split, text=config.text)
            ids, text = ids["ids"], ids["source"]
            from .plots import clip_label
            # the step the checkpoint was saved at (read with the weights, not from the file again: a run being
            # trained replaces it): plot lag says when the run's checkpoint has moved on since
            source = str(path)
            train = info.get("train") or {}
            # its clipping and optimizer: the figures' subtitles state how the model was trained
            extra = {"clip": clip_label(info.get("train")), "optimizer": train.get("optimizer"), "lr": train.get("lr"),
                     "checkpoint_step": model.checkpoint_step}
        ids = np.asarray(ids)[:config.tokens]
        out = default_out(config, text)
        if not config.out:      # the run folder's jacobian.json: not a file of the user's own of that name
            from .measured import check_replaces_a_measurement
            check_replaces_a_measurement(out, str(out), "move it, or give the measurement --out FILE.json")
        said.watch(out)
        from .fileio import atomic_write_text, check_writable
        check_writable(out)     # a read-only run folder: said before the measurement, not after it
        if len(ids) < config.max_lag + 2:      # lag_curve's check, in the command's flags
            more = "a larger --tokens" if len(ids) == config.tokens else "a longer text"    # (all of it was read)
            raise UserError(f"--max-lag {config.max_lag} needs at least --max-lag + 2 = {config.max_lag + 2} tokens, "
                            f"the text read has {len(ids)}: use {more} or a smaller --max-lag")
        note = anchors_note(config, len(ids))
        if note:
            print(note, file=sys.stderr, flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FewerAnchorsWarning)     # the note above said it, in flags
            warnings.simplefilter("ignore", StateOverflowWarning)    # overflow_note says it, in flags
            try:
                doc = lag_curve(model, ids, max_lag=config.max_lag, anchors=config.anchors,
                                rng=np.random.default_rng(config.seed), progress=progress)
            except StateOverflowError as exc:
                raise UserError(overflow_line(config, exc.what, exc.step, len(ids))) from None
        note = overflow_note(config, doc["meta"])
        if note:
            print(note, file=sys.stderr, flush=True)
        doc["meta"].update(source=source, seed=config.seed, text=text, **extra)
        replaced = replaced_note(out, doc["meta"], _MEASURED_BY, inside="meta", new_doc=doc, given=bool(config.out))
        if replaced:
            print(replaced, file=sys.stderr, flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
        return doc, out
