"""The learnability study: which cell learns a dependency across d steps, and the gradient that reaches the key.

Legend: d = the task's distance (words between the key and the query), n =
seeds (runs) per cell and distance, k = runs solved.

`run_study(config)` trains every cell x distance x seed of a `StudyConfig`
with the same budget (config.train: steps, optimizer, learning rate,
clipping, loss mode), one sweep job each (`learnability.task_job` through
`sweep.run_sweep`; the task data are generated once here, one task per
(distance, seed), and shipped to the workers), then writes into the study
folder:

    sweep.jsonl            the engine's rows (one per run: outcome, history of accuracy,
                           gradient at the key and Jacobian norm)
    study.json             {"meta", "summary": per cell and distance, "runs": the rows}
    table.md               the summary as a markdown table (also printed)
    success.png/.svg       success rate against distance per cell, 95% Wilson intervals over seeds
    steps.png/.svg         steps to success against distance (solved runs; median and range)
    gradient.png/.svg      ‖∂nll/∂h_key‖ at initialization and while learning (study._during_training),
                           against distance, log scale, with each cell's last distance solved
                           by a majority of its runs marked

Success rate: k/n runs *solved* (held-out accuracy >= threshold at `patience`
consecutive evaluations, learnability.py); its interval is the Wilson score
interval at 95% (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it for
small n), which stays inside [0, 1] and is not empty at k = 0 or k = n.
Gradients are the per-run medians over the probe batch (log10), summarised
over seeds by their median and range.

The one thing to know before editing: the study folder is a sweep folder, so
a rerun with the same settings skips the runs already recorded (a changed
setting changes the job names: `_job_name` spells every setting that varies
between jobs, and `meta.budget` the ones that do not); the summary is always
rebuilt from every recorded row that belongs to this grid.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from . import tasks
from .config import STUDY_CELLS, StudyConfig, TaskTrainConfig
from .errors import UserError
from .fileio import atomic_write_json, atomic_write_text

Z95 = 1.959963984540054   # the 0.975 quantile of the standard normal

# --quick: the same grid shape at a smaller scale (see the README for what it shows)
QUICK = {"distances": "5,40,160", "cells": "rnn,gru", "seeds": "0,1", "n_train": 1000, "n_test": 300,
         "train": {"steps": 2500, "eval_every": 250, "eval_size": 300, "jac_every": 2500}}

COLORS = {"rnn": "#d62728", "rnn-orth": "#ff7f0e", "lstm": "#1f77b4", "gru": "#2ca02c"}
LABELS = {"rnn": "rnn tanh, default init", "rnn-orth": "rnn tanh, orthogonal init",
          "lstm": "lstm, forget bias 1", "gru": "gru"}
XLABELS = {"recall": "distance d (filler words between key and query)",
           "order": "distance d (words between the first marker and the query)",
           "agreement": "distance d (verb position − subject head position)"}


def quick_config(config: StudyConfig) -> StudyConfig:
    """`config` with QUICK's settings in place of its grid and budget (out kept)."""
    train = dataclasses.replace(config.train, **QUICK["train"])
    top = {k: v for k, v in QUICK.items() if k != "train"}
    return dataclasses.replace(config, train=train, quick=True, **top)


def _refuse_overridden(config: StudyConfig) -> None:
    """UserError (one line) when a setting that --quick replaces was given too (it would be ignored)."""
    default = StudyConfig()
    given = [f for f in QUICK if f != "train" and getattr(config, f) != getattr(default, f)]
    given += [f for f in QUICK["train"] if getattr(config.train, f) != getattr(default.train, f)]
    if given:
        flags = ", ".join("--" + f.replace("_", "-") for f in given)
        raise UserError(f"--quick sets its own grid and budget ({flags} included); drop {flags} or drop --quick")


def _refuse_grid(config: StudyConfig) -> None:
    """UserError (one line) for --report-only with a grid or budget setting: it reports every run recorded in
    the folder, with the settings its study.json records, so the setting would be ignored without a word
    (as --scheduler and --workers are refused)."""
    default = StudyConfig()
    given = [f.name for f in dataclasses.fields(StudyConfig) if f.name not in ("train", "quick", "out")
             and getattr(config, f.name) != getattr(default, f.name)]
    given += [f.name for f in dataclasses.fields(TaskTrainConfig)
              if getattr(config.train, f.name) != getattr(default.train, f.name)]
    if given:
        flags = ", ".join("--no-early-stop" if f == "early_stop" else "--" + f.replace("_", "-") for f in given)
        folder = default_out(quick_config(config) if config.quick else config)
        raise UserError(f"{flags}: --report-only reports every run recorded in {folder}, with the settings its "
                        f"study.json records (it takes no grid or budget); leave {flags} out")


def default_out(config: StudyConfig) -> str:
    return config.out or ("runs/study-learnability-quick" if config.quick else "runs/study-learnability")


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (Wilson 1927): (low, high); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at k = 0 and k = n the bound is exactly 0 (1); computed, it is off by a rounding
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


# ---------------------------------------------------------------- the grid


def _task_spec(config: StudyConfig, distance: int, seed: int) -> tasks.TaskSpec:
    keys = config.keys if config.task == "recall" else 2
    return tasks.TaskSpec(config.task, int(distance), keys=keys, n_train=config.n_train, n_test=config.n_test,
                          seed=int(seed)).validate()


def evaluations(steps: int, eval_every: int) -> int:
    """Evaluations of a run of `steps` steps that count toward --patience (learnability.train_task: every
    `eval_every` steps; the one at step 0 measures the untrained model, and one at a last step off that
    schedule the state the run ended in: neither counts)."""
    return int(steps) // int(eval_every)


def check_budget(config: StudyConfig) -> None:
    """UserError (one line) for a budget too short to count any run solved: a run is solved after
    `patience` consecutive evaluations at held-out accuracy >= threshold, eval_every steps apart, so it
    needs steps >= patience x eval_every. Names the smallest --steps and the largest --eval-every that
    allow it. (--quick's budget is checked as --quick sets it.)"""
    t = (quick_config(config) if config.quick else config).train
    t.validate()        # (an eval_every of 0 is refused in one line there, not divided by here)
    n = evaluations(t.steps, t.eval_every)
    if n >= t.patience:
        return
    fix = f"--steps {t.patience * t.eval_every} or more"
    most = t.steps // t.patience                    # the largest eval_every with `patience` evaluations
    if most >= 1:
        fix += f" (or --eval-every {most} or less)"
    raise UserError(f"--steps {t.steps} with --eval-every {t.eval_every} allows {n} evaluation{'s' * (n != 1)}, "
                    f"but a run counts as solved only after {t.patience} consecutive evaluations at held-out "
                    f"accuracy >= {t.threshold:g}: no run could be solved; give {fix}")


def _job_name(config: StudyConfig, cell: str, distance: int, seed: int) -> str:
    return f"{config.task}-k{config.keys}-{cell}-d{distance}-s{seed}"


def _budget(config: StudyConfig) -> dict:
    """The training settings every job shares (the cell's own fields and the seed excluded)."""
    d = config.train.to_dict()
    for f in ("cell", "init", "forget_bias", "seed"):
        d.pop(f)
    return d


def _check_distances(config: StudyConfig) -> None:
    """UserError (one line, naming --distances) for a distance the task cannot be made at."""
    for d in config.distance_list():
        if d > tasks.MAX_DISTANCE:
            raise UserError(f"--distances: {d} is above the longest task distance, {tasks.MAX_DISTANCE}; "
                            f"give integers from 1 to {tasks.MAX_DISTANCE}, e.g. --distances 5,10,20")
        if config.task == "agreement" and d < 3:
            raise UserError(f"--distances: {d} is too short for the agreement task (room for a noun between "
                            f"subject and verb); give integers >= 3, e.g. --distances 10,40,80")


def build_jobs(config: StudyConfig):
    """(jobs, data): one sweeprecord.Job per cell x distance x seed, longest first, and the task payloads."""
    from .learnability import task_arrays
    from .sweeprecord import TASK_JOB, Job

    config.validate()
    _check_distances(config)
    cells, distances, seeds = config.cell_list(), config.distance_list(), config.seed_list()
    data, jobs = {}, []
    for d in distances:
        for s in seeds:
            spec = _task_spec(config, d, s)
            data[f"d{d}-s{s}"] = task_arrays(tasks.make_task(spec))
    # shortest distance first, seeds before cells: a study interrupted (and reported with
    # --report-only) has its short distances complete for every cell, and the longest jobs
    # (one d = 160 run: minutes) are the last to start, which costs at most one of them in idle tail
    order = sorted(((d, c, s) for d in distances for c in cells for s in seeds), key=lambda x: (x[0], x[2]))
    for d, c, s in order:
        spec = _task_spec(config, d, s)
        # Ω is a vanilla-RNN arm: the gated cells of the same study train without it
        omega = config.train.omega if STUDY_CELLS[c]["cell"] == "rnn" else 0.0
        train = dataclasses.replace(config.train, **STUDY_CELLS[c], seed=int(s), omega=omega).validate()
        settings = {"task": spec.to_json(), "train": train.to_dict(), "study_cell": c, "distance": d, "seed": s}
        jobs.append(Job(_job_name(config, c, d, s), TASK_JOB, settings, f"d{d}-s{s}"))
    return jobs, data


# ---------------------------------------------------------------- summary


def _median(xs):
    xs = [x for x in xs if x is not None]
    return float(np.median(xs)) if xs else None


def _range(xs):
    xs = [x for x in xs if x is not None]
    return [float(min(xs)), float(max(xs))] if xs else None


def _during_training(row: dict):
    """log10 ‖∂nll/∂h_key‖ while the run was learning: the median of its evaluations after
    step 0 up to the first that reached the threshold (all of them if none did); None if none."""
    h = row["history"]
    stop = row["first_step"] if row["first_step"] is not None else h["step"][-1]
    v = [g for s, g in zip(h["step"], h["log10_grad_key_median"]) if 0 < s <= stop and g is not None]
    return float(np.median(v)) if v else None


def summarize(config: StudyConfig, rows: list[dict]) -> dict:
    """Per cell, per distance: n, solved, rate, Wilson 95% interval, steps to success, final accuracy,
    and log10 ‖∂nll/∂h_key‖ and ‖∂h_query/∂h_key‖ at init, at their largest and at the end."""
    by = {}
    for r in rows:
        if r.get("status") != "done":
            continue
        by.setdefault((r["study_cell"], int(r["distance"])), []).append(r)
    out = {}
    for c in config.cell_list():
        out[c] = {}
        for d in config.distance_list():
            runs = by.get((c, d), [])
            n, k = len(runs), sum(bool(r["solved"]) for r in runs)
            lo, hi = wilson(k, n)

            def hist(r, q, pick):
                v = [x for x in r["history"][f"log10_{q}_median"] if x is not None]
                return pick(v) if v else None
            gk_init = [hist(r, "grad_key", lambda v: v[0]) for r in runs]
            gk_max = [hist(r, "grad_key", max) for r in runs]
            gk_end = [hist(r, "grad_key", lambda v: v[-1]) for r in runs]
            gk_train = [_during_training(r) for r in runs]
            jac_init = [hist(r, "jac", lambda v: v[0]) for r in runs]
            jac_end = [hist(r, "jac", lambda v: v[-1]) for r in runs]
            steps = [r["solved_step"] for r in runs if r["solved"]]
            out[c][str(d)] = {
                "n": n, "solved": k, "rate": k / n if n else None, "wilson95": [lo, hi],
                "reached": sum(r["first_step"] is not None for r in runs),
                "solved_step_median": _median(steps), "solved_step_range": _range(steps),
                "final_acc": [r["final_acc"] for r in runs], "best_acc": [r["best_acc"] for r in runs],
                "diverged": sum(bool(r["diverged"]) for r in runs),
                "log10_grad_key_init": {"median": _median(gk_init), "range": _range(gk_init)},
                "log10_grad_key_max": {"median": _median(gk_max), "range": _range(gk_max)},
                "log10_grad_key_end": {"median": _median(gk_end), "range": _range(gk_end)},
                "log10_grad_key_train": {"median": _median(gk_train), "range": _range(gk_train)},
                "log10_jac_init": {"median": _median(jac_init), "range": _range(jac_init)},
                "log10_jac_end": {"median": _median(jac_end), "range": _range(jac_end)},
                "steps_per_s": _median([r["steps_per_s"] for r in runs]),
                "wall_s": float(sum(r["wall_s"] for r in runs)),
            }
    return out


def reach(summary: dict, cell: str, distances) -> int | None:
    """The largest distance at which a majority of the cell's runs were solved and every shorter one too
    (None if not even the shortest)."""
    last = None
    for d in sorted(distances):
        s = summary[cell][str(d)]
        if not s["n"] or s["solved"] * 2 <= s["n"]:
            break
        last = d
    return last


def _fmt_log(v):
    """A log10 value as a number, e.g. -35.4 -> '4.0e-36' (None -> '–')."""
    if v is None:
        return "–"
    e = math.floor(v)
    m = 10 ** (v - e)
    if m >= 9.95:
        m, e = 1.0, e + 1
    return f"{m:.1f}e{e:+03d}"


def _task_words(config: StudyConfig) -> str:
    """The task that ran, as the table and the figures name it, e.g. 'recall (k = 2 keys, chance 1/2)',
    'agreement (2 numbers, chance 1/2)': k means something only for the recall task."""
    n = _task_spec(config, config.distance_list()[0], 0).n_classes
    what = {"recall": f"k = {n} keys", "order": f"{n} classes", "agreement": f"{n} numbers"}.get(config.task,
                                                                                               f"{n} classes")
    return f"{config.task} ({what}, chance 1/{n})"


def format_table(config: StudyConfig, summary: dict, failed=(), folder=None) -> str:
    """The summary as markdown: per cell and distance, runs solved and the gradient at the key; then the
    runs that failed (sweep rows whose status is not "done": not counted in the tables), each with its
    error, where it was raised and its traceback file (sweep.where_failed; folder: the study's)."""
    ds = config.distance_list()
    t = config.train
    lines = [f"Task {_task_words(config)}, loss on "
             f"{'the answer only' if t.loss == 'answer' else 'every position'}; E = {t.emsize}, H = {t.hidden}, "
             f"B = {t.batch_size}, {t.optimizer} lr {t.lr:g}, clip-norm {t.clip_norm:g}, {t.steps} steps"
             f"{', BPTT window ' + str(t.bptt) if t.bptt else ''}; seeds {config.seeds}. "
             f"Solved: held-out accuracy >= {t.threshold:g} at {t.patience} consecutive evaluations "
             f"(every {t.eval_every} steps); [95% Wilson interval].", ""]
    head = "| cell | " + " | ".join(f"d = {d}" for d in ds) + " |"
    lines += ["**Runs solved**", "", head, "|---" * (len(ds) + 1) + "|"]
    for c in config.cell_list():
        cells = []
        for d in ds:
            s = summary[c][str(d)]
            lo, hi = s["wilson95"]
            cells.append(f"{s['solved']}/{s['n']} [{lo:.2f}, {hi:.2f}]")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "**Steps to success** (median over solved runs)", "", head, "|---" * (len(ds) + 1) + "|"]
    for c in config.cell_list():
        cells = []
        for d in ds:
            s = summary[c][str(d)]
            cells.append("–" if s["solved_step_median"] is None else f"{s['solved_step_median']:.0f}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "**‖∂nll/∂h_key‖ at initialization → while learning** (the median of a run's evaluations "
              "after step 0 up to the first success, or all of them; per evaluation the median over 32 "
              "held-out sequences; median over seeds)"
              + (f"; measured through the whole sequence: the gradient training used is exactly 0 at the key "
                 f"wherever the lag exceeds the BPTT window of {t.bptt}" if t.bptt else ""),
              "", head, "|---" * (len(ds) + 1) + "|"]
    for c in config.cell_list():
        cells = []
        for d in ds:
            s = summary[c][str(d)]
            cells.append(f"{_fmt_log(s['log10_grad_key_init']['median'])} → "
                         f"{_fmt_log(s['log10_grad_key_train']['median'])}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "**‖∂h_query/∂h_key‖₂ (lag d + 1) at initialization → at the end** (median over seeds)", "",
              head, "|---" * (len(ds) + 1) + "|"]
    for c in config.cell_list():
        cells = []
        for d in ds:
            s = summary[c][str(d)]
            cells.append(f"{_fmt_log(s['log10_jac_init']['median'])} → {_fmt_log(s['log10_jac_end']['median'])}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines.append("")
    reaches = {c: reach(summary, c, ds) for c in config.cell_list()}
    lines.append("Largest distance solved by a majority of runs (and every shorter one): " +
                 ", ".join(f"{c} {'none' if r is None else f'd = {r}'}" for c, r in reaches.items()) + ".")
    if failed:
        from .sweeprecord import where_failed
        lines += ["", f"**Failed runs** ({len(failed)}, not counted above; to run one again, delete its line from "
                      "sweep.jsonl and rerun the study)", ""]
        for r in failed:
            line = f"- {r.get('name')}: {r.get('error') or r.get('status')}{where_failed(r, folder)}"
            lines.append(" ".join(line.split("\n")))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- figures


def _subtitle(config: StudyConfig) -> str:
    """Two lines under each figure's title: the task that ran (as the table names it), then the budget."""
    t = config.train
    return (f"{_task_words(config)}, loss on {'the answer' if t.loss == 'answer' else 'every position'}\n"
            f"E={t.emsize} H={t.hidden} B={t.batch_size}, {t.optimizer} lr {t.lr:g}, clip-norm {t.clip_norm:g}, "
            f"{t.steps} steps{'; lstm forget bias 1' if 'lstm' in config.cell_list() else ''}"
            f"{f'; BPTT window {t.bptt}' if t.bptt else ''}; seeds {config.seeds}")


def window_edge(config: StudyConfig) -> float | None:
    """Where a finite BPTT window ends on the distance axis: halfway between the largest distance whose
    lag (key to query, tasks.TaskSpec.lag: d + 1 for recall and order, d - 1 for agreement) fits in the
    window and the first whose lag exceeds it, e.g. 19.5 for a window of 20 on the recall task. Right of
    it the gradient that training uses is exactly 0 at the key. None for the whole sequence (bptt 0)."""
    if not config.train.bptt:
        return None
    spec = _task_spec(config, config.distance_list()[0], 0)
    return config.train.bptt + (spec.distance - spec.lag) + 0.5


def _mark_window(ax, config: StudyConfig) -> None:
    """A vertical line at the BPTT window (window_edge), labelled, with the distances beyond it shaded."""
    edge = window_edge(config)
    if edge is None:
        return
    w = config.train.bptt
    first = int(math.ceil(edge))
    ax.axvline(edge, color="black", ls="--", lw=1.2,
               label=f"BPTT window = {w}: right of it (d ≥ {first}, lag > {w}) the gradient\n"
                     f"that training uses is exactly 0 at the key")
    lo, hi = ax.get_xlim()
    ax.axvspan(edge, max(hi, edge * 1.05), color="gray", alpha=0.12, lw=0)
    ax.set_xlim(lo, hi)
    ax.text(edge, 0.02, f" BPTT window = {w} ", transform=ax.get_xaxis_transform(), rotation=90,
            ha="right", va="bottom", fontsize=8)


def _legend(ax, config: StudyConfig, fontsize: int, ncol: int = 1) -> None:
    """The figure's legend under the axes (plots._legend_below), never on the data: loc="best" covered
    points once the cells' markers filled the axes. Two columns when the window's two-line entry is in it."""
    from .plots import _legend_below
    _legend_below(ax, ncol=2 if window_edge(config) is not None else ncol, fontsize=fontsize)


def write_figures(config: StudyConfig, summary: dict, folder: Path, names=("success", "steps", "gradient"),
                  formats=("png", "svg")) -> list[Path]:
    """The success, steps and gradient figures (those of `names`, in `formats`) in folder; returns their paths.

    With a finite BPTT window (config.train.bptt) each figure marks it (_mark_window)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import write_figure
    paths = []
    for name, draw, height in (("success", _draw_success, 4.2), ("steps", _draw_steps, 4.2),
                               ("gradient", _draw_gradient, 4.6)):
        if name not in names:
            continue
        fig, ax = plt.subplots(figsize=(7, height))
        draw(ax, config, summary)
        files = {folder / f"{name}.{ext}": {"dpi": 100 if ext == "png" else None, "bbox_inches": "tight",
                                            "metadata": {"Date": None} if ext == "svg" else None}
                 for ext in formats}
        # no date and fixed SVG ids: redrawing the committed figures rewrites the same bytes
        with plt.rc_context({"svg.hashsalt": "rnnlm"}):
            write_figure(fig, files)
        paths.extend(files)
        plt.close(fig)
    return paths


def _offset(i: int, n_cells: int) -> float:
    """The factor on a log axis that spreads cell i's markers (of n_cells) a little from the others'."""
    return 2 ** ((i - (n_cells - 1) / 2) * 0.06)


def _draw_success(ax, config: StudyConfig, summary: dict) -> None:
    """The success figure: the fraction of runs solved per distance and cell, with 95% Wilson intervals."""
    ds, cells = config.distance_list(), config.cell_list()
    for i, c in enumerate(cells):
        s = [summary[c][str(d)] for d in ds]
        x = [d * _offset(i, len(cells)) for d in ds]
        rate = [v["rate"] if v["rate"] is not None else np.nan for v in s]
        lo = [max(0.0, r - v["wilson95"][0]) if not np.isnan(r) else 0 for r, v in zip(rate, s)]
        hi = [max(0.0, v["wilson95"][1] - r) if not np.isnan(r) else 0 for r, v in zip(rate, s)]
        ax.errorbar(x, rate, yerr=[lo, hi], marker="o", capsize=3, color=COLORS.get(c), label=LABELS.get(c, c))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ds, [str(d) for d in ds])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(XLABELS.get(config.task, "distance d"))
    ax.set_ylabel("fraction of runs solved")
    ax.set_title("Runs that learned the dependency (95% Wilson intervals over seeds)\n" + _subtitle(config),
                 fontsize=8)
    _mark_window(ax, config)
    _legend(ax, config, fontsize=8)
    ax.grid(alpha=0.3)


def _draw_steps(ax, config: StudyConfig, summary: dict) -> None:
    """The steps figure: steps to success of the solved runs (median, range) per distance and cell."""
    ds, cells = config.distance_list(), config.cell_list()
    drawn = 0
    for i, c in enumerate(cells):
        xs, med, lo, hi = [], [], [], []
        for d in ds:
            v = summary[c][str(d)]
            if v["solved_step_median"] is None:
                continue
            xs.append(d * _offset(i, len(cells)))
            med.append(v["solved_step_median"])
            lo.append(v["solved_step_median"] - v["solved_step_range"][0])
            hi.append(v["solved_step_range"][1] - v["solved_step_median"])
        if xs:
            ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=3, color=COLORS.get(c), label=LABELS.get(c, c))
            drawn += 1
    if not drawn:       # empty axes alone read as a drawing that failed
        ax.text(0.5, 0.5, f"no run solved within the budget ({config.train.steps:,} steps)", transform=ax.transAxes,
                ha="center", va="center", fontsize=10, color="dimgray")
    ax.axhline(config.train.steps, color="gray", ls=":", lw=1)
    ax.text(ds[0], config.train.steps, " budget", va="bottom", fontsize=8, color="gray")
    ev = config.train.eval_every
    if ev and ev < config.train.steps:
        # success is seen at an evaluation: a run solved at the first one learned in at most that many
        # steps, and a row of points on this line is the measurement's floor, not a cell that learns fast
        ax.axhline(ev, color="black", ls=(0, (1, 2)), lw=1,
                   label=f"first evaluation (eval every {ev}): the fewest steps measurable;\n"
                         f"a point on it learned in ≤ {ev} steps")
        ax.annotate(f"first evaluation: ≤ {ev}", (ds[0], ev), xytext=(8, 2), textcoords="offset points",
                    va="bottom", fontsize=8, color="black")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ds, [str(d) for d in ds])
    ax.set_ylim(0, config.train.steps * 1.1)
    ax.set_xlabel("distance d")
    ax.set_ylabel("steps to success (solved runs: median, range)")
    ax.set_title("How long learning took; unsolved runs are left out\n" + _subtitle(config), fontsize=8)
    _mark_window(ax, config)
    if ax.get_legend_handles_labels()[0]:
        _legend(ax, config, fontsize=8)
    ax.grid(alpha=0.3)


def _draw_gradient(ax, config: StudyConfig, summary: dict) -> None:
    """The gradient figure: ‖∂ nll(answer) / ∂ h_key‖ at init and while learning (median over seeds, range)
    per distance and cell, with each cell's reach (the last distance most runs solved) dotted."""
    ds, cells = config.distance_list(), config.cell_list()
    lowest = math.inf
    for i, c in enumerate(cells):
        for key, ls, mk, lab in (("log10_grad_key_init", "--", "o", "at init"),
                                 ("log10_grad_key_train", "-", "s", "while learning")):
            xs, med, lo, hi = [], [], [], []
            for d in ds:
                v = summary[c][str(d)][key]
                if v["median"] is None:
                    continue
                xs.append(d * _offset(i, len(cells)))
                med.append(10 ** v["median"])
                lo.append(10 ** v["range"][0])
                hi.append(10 ** v["range"][1])
            if xs:
                # the range as its own segments, not errorbar's median - low: with the low end 20 orders
                # below the median that difference rounds to the median and the bar's foot vanished
                ax.plot(xs, med, ls=ls, marker=mk, color=COLORS.get(c),
                        mfc="none" if key.endswith("init") else COLORS.get(c), label=f"{c} {lab}")
                ax.vlines(xs, lo, hi, color=COLORS.get(c), lw=1)
                lowest = min(lowest, min(lo))
        r = reach(summary, c, ds)
        if r is not None:
            ax.axvline(r * _offset(i, len(cells)), color=COLORS.get(c), ls=":", lw=1.2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    if lowest < math.inf and lowest > 0:
        ax.set_ylim(bottom=min(ax.get_ylim()[0], lowest / 10))       # every range's foot inside the axes
    ax.set_xticks(ds, [str(d) for d in ds])
    ax.set_xlabel("distance d")
    ax.set_ylabel("‖∂ nll(answer) / ∂ h_key‖ (median over seeds, range)")
    ax.set_title("Gradient that reaches the key, at init and while learning (evaluations up to success);\n"
                 "dotted: each cell's last distance solved by most runs\n" + _subtitle(config), fontsize=8)
    _mark_window(ax, config)
    _legend(ax, config, fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")


# ---------------------------------------------------------------- the command


def _load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def recorded_config(folder: Path, start: str | None = None) -> StudyConfig:
    """The StudyConfig a study folder's study.json records (what --report-only reports on).
    UserError when the folder holds no learnability study (`_not_a_study`). start: the command that would
    write a study there, for the advice (run_study's --report-only names --quick when it was given);
    default `study learnability --out FOLDER`."""
    import json
    path = Path(folder) / "study.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))["meta"]
        if meta.get("study") != "learnability":
            raise KeyError("study")
        saved = dict(meta["config"])
        train = TaskTrainConfig.from_dict(saved.pop("train"))
        return StudyConfig(**saved, train=train)
    except (OSError, ValueError, KeyError, TypeError):
        raise _not_a_study(Path(folder), start or f"study learnability --out {folder}") from None


def _not_a_study(folder: Path, start: str) -> UserError:
    """The one line for a folder without a readable study.json: a `sweep run`'s folder or a training run's
    (read with their own commands), a study stopped before it wrote study.json, or nothing of a study."""
    from .runs import CONFIG
    from .sweeprecord import TRAIN_JOB, read_rows
    if (folder / "sweep.jsonl").is_file():
        if any(r.get("fn") == TRAIN_JOB for r in read_rows(folder)):
            # (a sweep's rows, not a study's: continuing "the command that started it" would not write a study)
            return UserError(f"{folder} is a sweep's folder (made by `sweep run`), not a study's; give a "
                             f"study's folder (one `study learnability` wrote), or read this one with "
                             f"`sweep summarize {folder}` or `plot sweep {folder} --x COLUMN`")
        return UserError(f"{folder} holds the runs of a study that stopped before it wrote study.json (the "
                         "settings --report-only reads); continue it with the command that started it (with "
                         "its flags, --quick if it had it: it skips the runs recorded), which writes the report")
    if (folder / CONFIG).is_file():
        return UserError(f"{folder} is a training run's folder (it holds {CONFIG}), not a study's; give a "
                         "study's folder (one `study learnability` wrote)")
    return UserError(f"{folder} holds no learnability study (no readable study.json); run `{start}` first")


def redraw(folder, out=None) -> list[Path]:
    """Redraw a study folder's figures (success, steps, gradient; PNG and SVG) from its study.json:
    the recorded settings and summary, nothing trained, study.json and table.md left as they are
    (`plot study`). out: another folder to write them into (made if needed; a study folder one cannot write
    to, a copy to restyle); None: the study folder. Returns the paths written. UserError when the folder
    holds no learnability study, or `out` is a file."""
    folder = Path(folder)
    config = recorded_config(folder)
    summary = json.loads((folder / "study.json").read_text(encoding="utf-8"))["summary"]
    missing = [f"{c} d = {d}" for c in config.cell_list() for d in config.distance_list()
               if str(d) not in summary.get(c, {})]
    if missing:
        raise UserError(f"{folder / 'study.json'}: its summary lacks {', '.join(missing[:3])}; "
                        f"rebuild it with `study learnability --report-only --out {folder}`")
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file; give a folder to write the study's figures into")
        out.mkdir(parents=True, exist_ok=True)
    return write_figures(config, summary, folder if out is None else out)


def _first_line(config: StudyConfig, jobs, folder: Path) -> str:
    """What a study prints before its first run (as `sweep run` does): how many jobs, the grid, the
    folder, and how many an earlier run of the same command recorded already."""
    from .sweeprecord import read_rows, recorded_jobs, renamed_note

    def n(k, word):
        return f"{k} {word}{'' if k == 1 else 's'}"
    grid = " x ".join((n(len(config.cell_list()), "cell"), n(len(config.distance_list()), "distance"),
                       n(len(config.seed_list()), "seed")))
    found = recorded_jobs(read_rows(folder), jobs)
    skip = len(found)
    return (f"{n(len(jobs), 'job')} ({grid}) into {folder}"
            + (f": skipping {skip} finished in an earlier run{renamed_note(found)}, running {len(jobs) - skip}"
               if skip else ""))


def _refuse_quick_folder(config: StudyConfig, folder: Path, jobs) -> None:
    """UserError (one line) when the folder records runs that a --quick study makes and this call, without
    --quick, would make otherwise: the study was started with --quick, and this says so (the generic refusal
    would list the settings --quick sets, some of them not flags of this command)."""
    from .sweeprecord import check_recorded, read_rows
    if not (folder / "sweep.jsonl").is_file():
        return
    try:
        check_recorded(folder, jobs)
        return
    except UserError:
        pass
    quick_jobs, _ = build_jobs(quick_config(dataclasses.replace(config, out=str(folder))))
    recorded = {r.get("name") for r in read_rows(folder)}
    if not recorded or not recorded <= {j.name for j in quick_jobs}:
        return      # (runs a --quick study does not make: not one)
    try:
        check_recorded(folder, quick_jobs)
    except UserError:
        return      # (other settings: the generic refusal says which)
    raise UserError(f"{folder} holds the runs of a study started with --quick; add --quick to continue it "
                    "(it skips the runs recorded)")


def run_study(config: StudyConfig, *, scheduler: str | None = None, n_workers: int | None = None,
              progress: bool = True, report_only: bool = False) -> dict:
    """Run the grid through sweep.run_sweep (skipping runs already recorded), write study.json,
    table.md and the figures in the study folder; returns the study document.

    scheduler/n_workers: passed to run_sweep (None: a LocalCluster, one worker per core;
    "serial": in this process). report_only: run nothing, write the outputs from the runs
    already recorded (an interrupted study; missing runs count as n smaller). Before the
    first run it prints one line on stderr: the jobs, the grid and the folder (_first_line); a record of
    other settings and a scheduler that does not answer (sweepcluster.check_reachable) are refused before it.
    UserError for bad settings (a malformed scheduler address among them, before anything is
    written), a folder another study or sweep is writing (sweep.lock_sweep, held from the first
    line to the figures; report_only takes it too: it writes the same files), or report_only
    without a recorded run or with a scheduler or worker count (it would not use them).
    """
    from .sweep import lock_sweep
    from .sweeprecord import check_folder
    from .sweepcluster import check_scheduler

    if report_only and (scheduler is not None or n_workers is not None):
        flag = "--scheduler" if scheduler is not None else "--workers"
        raise UserError(f"{flag}: --report-only runs nothing (it writes the table and figures from the runs "
                        "recorded); leave --scheduler and --workers out")
    if not report_only:
        check_scheduler(scheduler, n_workers)      # before anything is written or printed
    if report_only:     # the settings the runs were made with, not this call's flags
        _refuse_grid(config)
        folder = Path(default_out(quick_config(config) if config.quick else config))
        # the command that writes what --report-only reads: --quick's own grid if it was given (the full
        # study into the quick study's folder is another study), and --out only if it was given
        start = "study learnability" + " --quick" * config.quick + (f" --out {folder}" if config.out else "")
        config = dataclasses.replace(recorded_config(folder, start), quick=False, out=str(folder))
    if config.quick:
        _refuse_overridden(config)
        config = quick_config(config)
    config.validate()
    folder = Path(default_out(config))
    jobs, data = build_jobs(config)
    if not report_only and not config.quick:
        _refuse_quick_folder(config, folder, jobs)
    if report_only:     # it runs nothing, but writes study.json, the table and figures a running study rewrites
        with lock_sweep(folder):
            return _study(config, folder, jobs, data, scheduler, n_workers, progress, report_only)
    # a second study (or sweep) into the folder is refused in one line, from the first line to the figures;
    # a sweep's or a training run's folder before it takes the lock (whose file it would leave there)
    check_folder(folder, {j.fn for j in jobs})
    try:
        with lock_sweep(folder):
            return _study(config, folder, jobs, data, scheduler, n_workers, progress, report_only)
    except KeyboardInterrupt as exc:
        if getattr(exc, "in_runs", False):      # said once the lock is released (a new, empty folder is gone)
            _say_stopped(exc, folder, jobs)
        raise


def _say_stopped(exc: KeyboardInterrupt, folder: Path, jobs) -> None:
    """The one line of a study whose runs were stopped (Ctrl-C or SIGTERM): what is recorded, what next."""
    from .sweep import nothing_recorded_line, stop_word
    from .sweeprecord import read_rows, recorded_jobs
    n = len(recorded_jobs(read_rows(folder), jobs))
    report = (", or write the table and figures from them with --report-only"
              if n and (folder / "study.json").exists() else "")
    print(nothing_recorded_line(exc, folder, "run") or
          f"{stop_word(exc)}: {n} of {len(jobs)} runs recorded in {folder / 'sweep.jsonl'}, none left "
          f"running; continue with the same command (it skips the {n} recorded){report}",
          file=sys.stderr, flush=True)
    exc.said = True     # (the CLI adds no second line)


def _study(config: StudyConfig, folder: Path, jobs, data, scheduler, n_workers, progress, report_only) -> dict:
    """run_study's work once the config is settled (holding the folder's lock unless report_only)."""
    from .sweep import run_sweep
    from .sweeprecord import check_recorded, read_rows, recorded_jobs
    from .sweepcluster import check_reachable

    load0, t0 = _load_average(), time.perf_counter()
    if report_only:
        rows = read_rows(folder)
        if not rows:
            why = ("its sweep.jsonl is empty: the study was stopped before its first run ended"
                   if (folder / "sweep.jsonl").exists() else "no sweep.jsonl")
            raise UserError(f"{folder} holds no recorded runs ({why}); run the study first")
    else:
        # a record of other settings: refused before the first line
        recorded = recorded_jobs(check_recorded(folder, jobs), jobs)
        # so is a --scheduler that does not answer as one (asked once; not when every run is recorded)
        checked = any(j.name not in recorded for j in jobs) and check_reachable(scheduler)
        print(_first_line(config, jobs, folder), file=sys.stderr, flush=True)
        try:
            rows = run_sweep(folder, jobs, data, scheduler=scheduler, n_workers=n_workers, progress=progress,
                             say_interrupted=False, scheduler_checked=checked)
        except KeyboardInterrupt as exc:        # Ctrl-C or SIGTERM: the sweep closed cleanly; run_study says so
            exc.in_runs = True
            raise
    wall = time.perf_counter() - t0
    rows = list(recorded_jobs(rows, jobs).values())     # this grid's, by name or under an earlier one
    try:
        return _write_report(config, folder, jobs, rows, report_only, wall, load0, scheduler, n_workers)
    except KeyboardInterrupt as exc:    # every run is recorded: the line says so, and how to get the rest
        from .errors import plural
        from .sweep import stop_word
        n = len(rows)
        exc.line = (f"{stop_word(exc)} while the study's table and figures were written: its {n} "
                    f"{plural(n, 'run is', 'runs are')} recorded in {folder / 'sweep.jsonl'}; run the same "
                    "command again (it skips the recorded runs and writes them), or add --report-only")
        raise


def _write_report(config, folder, jobs, rows, report_only, wall, load0, scheduler, n_workers) -> dict:
    """study.json, table.md and the figures of a study's recorded runs (`rows`); returns study.json's doc."""
    failed = [r for r in rows if r.get("status") != "done"]
    summary = summarize(config, rows)
    doc = {
        "meta": {
            "study": "learnability", "config": {**dataclasses.asdict(config), "train": config.train.to_dict()},
            "budget": _budget(config), "cells": {c: STUDY_CELLS[c] for c in config.cell_list()},
            "jobs": len(jobs), "recorded": len(rows), "report_only": report_only,
            "failed": [{"name": r["name"], "error": r.get("error"), "error_at": r.get("error_at")} for r in failed],
            "job_wall_s_sum": float(sum(r.get("wall_s") or 0 for r in rows)),
            "wall_s_this_call": wall, "load_average_before": load0, "load_average_after": _load_average(),
            "scheduler": scheduler or "LocalCluster", "n_workers": n_workers or os.cpu_count(),
            "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "success": "held-out accuracy >= threshold at `patience` consecutive evaluations",
            "interval": "Wilson score 95%",
            "reach": {c: reach(summary, c, config.distance_list()) for c in config.cell_list()},
        },
        "summary": summary,
        "runs": rows,
    }
    atomic_write_json(folder / "study.json", doc)
    table = format_table(config, summary, failed, folder)
    atomic_write_text(folder / "table.md", table)
    write_figures(config, summary, folder)
    doc["table"] = table
    doc["folder"] = str(folder)
    return doc
