"""Scripted demonstrations, what the two share: their sizes (`FULL`, `QUICK`) and how they run.

`demo gradients` (issue 5) is demogradients.py, `demo longrange` (issue 6)
demolongrange.py. Each demo trains and measures with the project's own
pieces (train.py through the sweep engine, jacobian.py, probes.py, plots.py,
plotlag.py, plotruns.py) and writes, into one folder, its figures (PNG + SVG),
`summary.json` (every number measured, with the settings and seeds) and
`summary.md` (one sentence per figure, numbers included). Nothing in the
demos computes anything the instruments do not: they only choose settings,
run them in order and say what came out. This module holds what both do
the same way: the corpus tokens a lag curve is measured on (`_tokens`), a
lag curve with its meta completed (`_lag`), the trainings as one local sweep
(`_train_all`, `_budget`), the stage folder a rerun continues from
(`_stage_folder`), and the lines and numbers they print and write.

The one thing to know before editing: `--quick` runs the very same code with
the sizes of `QUICK` instead of `FULL`, so the test of the quick demo
exercises every line the full demo runs; keep every size in those tables.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from .errors import UserError
from .fileio import atomic_write_json

FULL = {
    "gradients": dict(hidden=128, emsize=128, max_lag=60, anchors=16, curve_tokens=400, max_vocab=10000,
                      # 500 steps (about a minute each on a quiet 2-core machine): a step count, not minutes,
                      # so that the figures are the README's on a busy or a slow machine too
                      train_steps=500, train_hidden=128, train_vocab=5000, track_every=25,
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
                      train_steps=15, train_hidden=16, train_vocab=300, track_every=5,
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
    from .plotlag import _text_name as name
    return name(text)


def _plot_lag(docs, labels, out, title, **kw) -> str:
    from .plotlag import plot_lag
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

    from ._jit import cache_is_warm
    from .sweep import recorded_jobs, run_sweep
    from .sweepgrid import train_sweep_jobs
    # an empty kernel cache: each worker compiles before its first step, a minute or two with nothing to say
    cold = not cache_is_warm("layers._embedding_backward-*", *{f"{c.model.cell}.*backward*" for _, c in named})
    _say(f"training {', '.join(n for n, _ in named)} on a local Dask cluster ..."
         + (" (each worker compiles the kernels first: a minute or two, once)" if cold else ""))
    jobs, data = train_sweep_jobs([(name, None, cfg) for name, cfg in named], keep_models=True, folder=out)
    # a stop is said by the demo's own line (its stages kept, the same command continues): not the sweep's too
    rows = recorded_jobs(run_sweep(out, jobs, data, n_workers=min(len(jobs), os.cpu_count() or 1),
                                   say_interrupted=False), jobs)       # {job name: its row}
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
    """Stop rule of a demo run: the sizes' step count when they have one (demo gradients; --quick), else
    `minutes` (demo longrange --minutes) or the sizes' minutes."""
    if sizes.get("train_steps"):
        return dict(max_steps=sizes["train_steps"], max_minutes=0.0)
    return dict(max_steps=0, max_minutes=minutes if minutes is not None else sizes["train_minutes"])


def _lag(model, tokens, sizes, seed, per_step=True, *, text: str, source: str = "init", clip: str | None = None,
         omega: float | None = None, optimizer: str | None = None, lr: float | None = None):
    """lag_curve of `model` on `tokens`, its meta completed as `jacobian` completes it (source, seed, text,
    and for a trained model its clipping, Ω, optimizer and lr), so the figures' subtitles state them.

    source: "init" for an untrained model (plots say "at init (no training)"), else the checkpoint read."""
    from .jacobian import lag_curve
    doc = lag_curve(model, tokens, sizes["max_lag"], sizes["anchors"], np.random.default_rng(seed),
                    per_step=per_step)
    doc["meta"].update(source=source, seed=seed, text=text)
    if clip is not None:
        doc["meta"]["clip"] = clip
    if omega is not None:
        doc["meta"]["omega"] = omega
    if optimizer is not None:
        doc["meta"].update(optimizer=optimizer, lr=lr)
    return doc


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
