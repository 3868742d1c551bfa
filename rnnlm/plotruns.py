"""The figures of training runs and of what was measured on them: training curves, lag curves over
training, probe results, and the two figures of `demo gradients` that are not lag curves.

Inputs are files other modules write: a run folder's config.json and
metrics.jsonl (train.py; `plots.read_train_config`, `read_metrics`), probe results
(probes.py; `read_probes`), the init study of `demo gradients`
(demogradients.py). As in plots.py, each `plot_*` writes PNG and SVG side by
side and returns the PNG path, and its `draw_*` twin returns the Figure
unsaved. Every figure's look (labels, subtitles, legends, saving) is
plots.py's, and how one curve of a lag curve is read (`_series`, `_what`,
`_zero_mask`, `default_quantity`) plotlag.py's; this module only decides
what to draw from those files.

The one thing to know before editing: matplotlib is never imported at module
level here either; it comes through `plots._pyplot` (Agg backend) inside each
`draw_*`, so that `--help` never pays for it. And figures are saved through
the `_save` imported from plots.py: a test that replaces `plots._save` to
catch the figures must replace this module's `_save` too.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import UserError, consecutive_runs, plural
from .plotlag import _series, _what, _whole_lag_ticks, _zero_mask, default_quantity, draw_identity_norm
from .plots import (NOTE_WIDTH, ZERO_NOTE, _joined, _legend_above, _legend_below, _log_ylim, _mark_zeros,
                    _nothing_positive, _positive,
                    _pyplot, _save, _set_title, _set_xlabel, _wrap, read_train_config,
                    activation_label, clip_label, curve_style, model_label, settings_line)
from .runs import fmt_ppl  # one format for perplexities, here and in reports


# ---------------------------------------------------------------- run folders


def read_metrics(run_dir) -> list[dict]:
    """The events of a run's metrics.jsonl (lines cut by a crash are skipped). Lines that are not JSON
    before the last one (a crash cuts only the last: these were damaged or edited) are skipped with one
    note on stderr saying how many and which, so that a figure with a gap says why."""
    from .runs import CONFIG, METRICS, refuse_odd_records
    refuse_odd_records(run_dir, (CONFIG, METRICS))
    path = Path(run_dir) / METRICS
    if not path.is_file():
        from .runs import not_a_run_folder
        if not (Path(run_dir) / CONFIG).exists():
            raise UserError(not_a_run_folder(run_dir))
        raise UserError(f"{run_dir} is not a run folder (no metrics.jsonl)")
    from .runs import event_problem
    events, bad, odd = [], [], []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()     # a damaged byte: that line
    for i, line in enumerate(lines):
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            if i < len(lines) - 1 and line.strip():
                bad.append(i + 1)
            continue
        # JSON but not an event train() logs (a list, a string, a field of the wrong type): damaged or edited
        why = event_problem(e)
        if why is None and e["type"] == "jacobian":
            why = _jacobian_event_problem(e)
        if why is None:
            events.append(e)
        else:
            odd.append((i + 1, why))
    if bad or odd:
        from .progress import note
    if bad:
        note(f"note: {path}: {len(bad)} {plural(len(bad), 'line')} before the last {plural(len(bad), 'is', 'are')} "
             f"not JSON ({plural(len(bad), 'line')} {_line_ranges(bad)}; damaged or edited by hand) and "
             f"{plural(len(bad), 'was', 'were')} skipped")
    if odd:
        n = len(odd)
        first = f"line {odd[0][0]}: {odd[0][1]}" if n == 1 else \
            f"lines {_line_ranges([k for k, _ in odd])}; line {odd[0][0]}: {odd[0][1]}"
        note(f"note: {path}: {n} {plural(n, 'line')} {plural(n, 'is', 'are')} JSON but not "
             f"{plural(n, 'an event', 'events')} rnnlm wrote ({first}; damaged or edited by hand) and "
             f"{plural(n, 'was', 'were')} skipped")
    return events


def _line_ranges(numbers: list[int]) -> str:
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in consecutive_runs(numbers))


def _jacobian_event_problem(e: dict) -> str | None:
    """Why a jacobian event (--track-jacobian-every) holds no lag curves to draw, or None."""
    from .plotlag import curves_problem
    if not isinstance(e.get("curves"), dict):
        return "its curves are missing" if "curves" not in e else "its curves are not an object"
    why = curves_problem(e["curves"])
    return None if why is None else f"its lag curve {why}"


def run_label(train_cfg: dict) -> str:
    return f"{model_label(train_cfg)}, {clip_label(train_cfg)}, {train_cfg.get('optimizer', '?')}"


def _run_settings(cfg: dict, behind: str) -> str:
    """A run's subtitle: settings_line plus H, E, optimizer, lr and seed."""
    opt = cfg.get("optimizer", "?")
    lr = cfg.get("lr")
    extra = f"{opt}" + (f" lr {lr:g} at start" if isinstance(lr, (int, float)) else "")
    return settings_line([cfg], behind=f"{extra}; {behind}")


def draw_lag_over_training(run_dir, quantity: str = "auto", norm: str = "spectral",
                           title: str | None = None, flow: bool = False):
    """The figure of `plot_lag_over_training`, unsaved: returns the matplotlib Figure."""
    # (log axes over norms near 1e308 overflow while autoscaling and ticking, before our limits hold)
    with np.errstate(over="ignore", under="ignore"):
        return _draw_lag_over_training(run_dir, quantity, norm, title, flow)


def _draw_lag_over_training(run_dir, quantity, norm, title, flow):
    events = [e for e in read_metrics(run_dir) if e.get("type") == "jacobian"]
    if not events:
        raise UserError(f"{run_dir} has no jacobian events; train with --track-jacobian-every N")
    cfg = read_train_config(run_dir)
    q = default_quantity(cfg.get("cell"), quantity)
    plt = _pyplot()
    import matplotlib as mpl
    fig, ax = plt.subplots(figsize=(7.5, 4.9))
    steps = [e["step"] for e in events]
    cnorm = mpl.colors.Normalize(vmin=min(steps), vmax=max(max(steps), min(steps) + 1))
    cmap = mpl.colormaps["viridis"]
    zero_steps, all_lags, positive = [], [], False
    lo_data, hi_data = math.inf, -math.inf
    for e in events:
        doc = {"meta": {"cell": cfg.get("cell")}, "curves": e["curves"]}
        lags, med, _, _ = _series(doc, "layer0", q, norm, flow)
        color = cmap(cnorm(e["step"]))
        ax.plot(lags, med, color=color, linewidth=1.2)
        if np.isfinite(med).any():
            positive = True
            lo_data, hi_data = min(lo_data, float(np.nanmin(med))), max(hi_data, float(np.nanmax(med)))
        all_lags.extend(np.asarray(lags).tolist())
        # a recording whose median is 0 (a saturated RNN: exactly 0 from lag 1) is marked, never dropped
        zero = _zero_mask(doc, "layer0", q, norm, flow)
        if _mark_zeros(ax, lags, zero, color, None if zero_steps else ZERO_NOTE, len(zero_steps)):
            zero_steps.append((e["step"], int(np.asarray(lags)[zero][0])))
    if not positive and not zero_steps:
        raise UserError(f"nothing to draw: no recorded median of {_what(q, norm, flow)} in {run_dir} is a finite "
                        "number above 0 (null: beyond float64's range)")
    sm = mpl.cm.ScalarMappable(norm=cnorm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label="training step (updates)")
    ax.set_yscale("log")
    if positive:
        _log_ylim(ax, lo_data, hi_data)     # (near float64's edge, limits and ticks that stay finite)
    if zero_steps and not positive:
        _nothing_positive(ax)              # every recording 0: the strip says it all, no arbitrary decades
    else:
        draw_identity_norm(ax, [cfg.get("hidden")], [q], norm, flow)     # 1 for the spectral norm only
    if all_lags:
        ax.set_xlim(min(all_lags) - 0.5, max(all_lags) + 0.5)   # the measured lags, even if all are 0
    _set_xlabel(ax, "lag d (time steps)")
    _whole_lag_ticks(ax)
    ax.set_ylabel(f"median {_what(q, norm, flow)} (dimensionless)", fontsize=8)
    ax.grid(True, alpha=0.3)
    # (no line of its own: the curves' colours are the steps, on the colour bar)
    ax.plot([], [], " ", label=f"{run_label(cfg)}: a curve per recorded step, coloured by step")
    if zero_steps:
        from .activations import zero_reason
        firsts = sorted({d for _, d in zero_steps})
        shown = [str(st) for st, _ in zero_steps]
        if len(shown) > 6:                 # a long run: the first and last few (the strip shows each one)
            shown = shown[:3] + ["…"] + shown[-2:]
        which = ", ".join(shown)
        why = zero_reason(cfg.get("cell"), firsts[0]) if len(firsts) == 1 else "median exactly 0 from some lag"
        ax.plot([], [], " ", label=_wrap(f"{len(zero_steps)} of {len(events)} recordings "
                                         f"(step{'s' if len(zero_steps) > 1 else ''} {which}): {why}", NOTE_WIDTH))
    _legend_below(ax)
    m = events[-1].get("meta", {})
    behind = (f"median over {m.get('anchors', '?')} anchors × {m.get('tokens', '?')} tokens at each of "
              f"{len(events)} recorded steps; seed {cfg.get('seed', '?')}")
    _set_title(ax, title or f"{'Gradient flow' if flow else 'Jacobian ' + norm + ' norm'} by lag during "
                            f"training ({len(events)} recordings)", _run_settings(cfg, behind), width=90)
    fig.tight_layout()
    return fig


def plot_lag_over_training(run_dir, out, quantity: str = "auto", norm: str = "spectral",
                           title: str | None = None, flow: bool = False) -> Path:
    """Median lag curve at every step recorded by `train --track-jacobian-every`, coloured by step."""
    return _save(draw_lag_over_training(run_dir, quantity=quantity, norm=norm, title=title, flow=flow), out)


def lr_schedule(events: list[dict], initial=None) -> tuple[list, list, bool]:
    """The learning rate as a step function of the training step: (x, y, from_evals), drawn with
    drawstyle "steps-post" (y[i] holds from step x[i] until x[i + 1]).

    A scheduled validation at step k that anneals the lr (its eval event's "lr" -> "next_lr") changes
    it from step k on, so the drop is drawn at that evaluation, not at the next step event (a step
    event's "lr" is the rate of its own update, logged only every --log-every steps). Resumes and
    step events fill in the value where no evaluation says it; a metrics file without "next_lr"
    (written before it existed) falls back to the step events alone (from_evals False).
    initial: config.json's lr (the rate at step 0), if known.
    """
    points = []                  # (step, order, lr): order puts an eval's change after its step's own rate
    from_evals = False
    for e in events:
        kind, step = e.get("type"), e.get("step")
        if step is None:
            continue
        if kind == "step" and e.get("lr") is not None:
            points.append((step - 1, 0, e["lr"]))         # the rate its update (step - 1 -> step) used
        elif kind == "eval" and e.get("split") == "valid" and e.get("next_lr") is not None:
            points.append((step, 1, e["next_lr"]))
            from_evals = True
        elif kind == "resume" and e.get("lr") is not None:
            points.append((step, 1, e["lr"]))
    if isinstance(initial, (int, float)) and not isinstance(initial, bool):
        points.append((0, -1, float(initial)))
    if not points:
        return [], [], False
    points.sort(key=lambda p: (p[0], p[1]))
    x, y = [], []
    for step, _, lr in points:
        if y and lr == y[-1]:
            continue
        if x and x[-1] == step:
            y[-1] = lr                # the later event of the same step wins (an eval after its step's update)
        else:
            x.append(max(step, 0))
            y.append(lr)
    last = max(e["step"] for e in events if e.get("step") is not None)
    if x[-1] < last:
        x.append(last)
        y.append(y[-1])
    return x, y, from_evals


MAX_MARKED_NONFINITE = 10   # plot training: up to this many non-finite events each get a line and a label


def draw_training(run_dir, title: str | None = None):
    """The figure of `plot_training`, unsaved: returns the matplotlib Figure."""
    events = read_metrics(run_dir)
    cfg = read_train_config(run_dir)
    steps = [e for e in events if e.get("type") == "step"]
    evals = [e for e in events if e.get("type") == "eval" and e.get("split") == "valid"]
    timed = [e for e in events if e.get("type") == "timed_eval"]
    bad = [e for e in events if e.get("type") == "nonfinite"]
    if not steps and not evals and not timed:
        if bad:
            first = bad[0].get("detected_at", bad[0].get("step"))
            # (a run that went bad at its first step, or that logged every step, has nothing a setting could add)
            more = ("" if first == 1 or cfg.get("log_every") == 1 else
                    ", and a run trained with --log-every 1 logs every step")
            raise UserError(f"{run_dir} has no step or eval events to plot: it went non-finite at step {first} "
                            f"({len(bad):,} non-finite {plural(len(bad), 'event')}), before its first step event "
                            f"(one every --log-every {cfg.get('log_every', '?')} steps); its summary says what "
                            f"went bad{more}")
        raise UserError(f"{run_dir} has no step or eval events to plot")
    plt = _pyplot()
    fig, (a_ppl, a_g, a_lr) = plt.subplots(3, 1, figsize=(7.5, 8.3), sharex=True)

    # Cross-entropy rather than perplexity on the axis: a diverging run's perplexity overflows
    # float64 (e^710) long before its loss stops being plottable.
    x = [e["step"] for e in steps]
    one = {"marker": "o", "markersize": 3} if len(steps) == 1 else {}      # one logged step: a line shows nothing
    a_ppl.plot(x, _positive([e.get("loss_avg") for e in steps]), linewidth=1,
               label="train (mean over the log interval)", **one)
    if evals:
        last = evals[-1].get("val_ppl")
        a_ppl.plot([e["step"] for e in evals], _positive([e.get("val_loss") for e in evals]),
                   marker="o", markersize=3,
                   label=(f"validation (last perplexity {fmt_ppl(last)})" if last is not None else "validation")
                   + ("\nwhole split; drives lr annealing, patience and best.npz" if timed else ""))
    if timed:
        # --eval-minutes: a slice of the validation split, for the curve only (train.py's _timed_evaluate).
        share = _joined(f"{e.get('tokens', 0):,} of {e.get('of_tokens', 0):,}" for e in timed)
        a_ppl.plot([e["step"] for e in timed], _positive([e.get("val_loss") for e in timed]),
                   linestyle=":", linewidth=1, marker="D", markersize=4, markerfacecolor="none", color="tab:green",
                   label=f"timed validation on {share} tokens (last perplexity {fmt_ppl(timed[-1].get('val_ppl'))});"
                         "\nreport only: no lr annealing, patience or best-model choice")
    a_ppl.set_yscale("log")
    import matplotlib.ticker as mticker
    a_ppl.set_ylabel("cross-entropy, log scale\n(nats/token; perplexity = e^loss)")
    _mark_best(a_ppl, evals)

    clips = bool(cfg.get("clip_norm") or cfg.get("clip_value"))
    a_g.plot(x, _positive([e.get("grad_norm") for e in steps]), linewidth=1,
             label="gradient L2 norm " + ("before clipping" if clips else "(no clipping)"), **one)
    clipped = [e for e in steps if e.get("clipped")]
    if clipped:
        # Only the logged steps can be marked; the summary's "clipped steps %" counts every step.
        a_g.scatter([e["step"] for e in clipped], _positive([e.get("grad_norm") for e in clipped]),
                    s=8, color="tab:red", zorder=3,
                    label=f"clipped, logged steps only ({len(clipped)} of {len(steps)} logged steps; "
                          "the summary's clipped share counts every step)")
    if cfg.get("clip_norm"):
        a_g.axhline(cfg["clip_norm"], color="tab:red", linestyle="--", linewidth=1,
                    label=f"clip threshold {cfg['clip_norm']:g}")
    a_g.set_yscale("log")
    a_g.set_ylabel("gradient norm, log scale\n(L2, all parameters)")

    lr_x, lr_y, at_evals = lr_schedule(events, cfg.get("lr"))
    a_lr.plot(lr_x, lr_y, linewidth=1, drawstyle="steps-post",
              label="learning rate" + (" (changes at the validation that annealed it)" if at_evals else ""))
    a_lr.set_ylabel("learning rate (log scale)")
    a_lr.set_yscale("log")
    a_lr.yaxis.set_major_formatter(mticker.FormatStrFormatter("%.3g"))     # 0.0195, not 0.0195312
    a_lr.yaxis.set_minor_formatter(mticker.NullFormatter())
    a_lr.set_yticks(sorted({v for v in lr_y if v}) or [1.0])
    a_lr.set_xlabel("training step (updates)")

    if len(bad) <= MAX_MARKED_NONFINITE:
        for e in bad:
            for ax in (a_ppl, a_g, a_lr):
                ax.axvline(e["step"], color="black", linestyle=":", linewidth=1)
            a_ppl.annotate(f"non-finite {e.get('tensor')} ({e.get('action')})", (e["step"], 1),
                           xycoords=("data", "axes fraction"), xytext=(-3, -12), textcoords="offset points",
                           fontsize=7, ha="right")
    else:       # thousands of skipped steps: shaded spans of consecutive steps and one legend entry
        spans = consecutive_runs(sorted({int(e["step"]) for e in bad if isinstance(e.get("step"), (int, float))}))
        for ax in (a_ppl, a_g, a_lr):
            for a, b in spans:
                ax.axvspan(a - 0.5, b + 0.5, color="tab:red", alpha=0.15, linewidth=0)
        skipped = sum(e.get("action") == "skip" for e in bad)
        stopped = len(bad) - skipped
        a_ppl.fill_between([], [], [], color="tab:red", alpha=0.15, linewidth=0,      # (the legend's swatch)
                           label=f"{len(bad):,} non-finite steps, shaded ({skipped:,} skipped"
                                 + (f", {stopped} stopped the run" if stopped else "") + ")")
    for ax in (a_ppl, a_g, a_lr):
        ax.grid(True, alpha=0.3)
        _legend_above(ax)
    lr = cfg.get("lr")
    sub = (f"H={cfg.get('hidden', '?')}, E={cfg.get('emsize', '?')}, {cfg.get('optimizer', '?')}"
           + (f" lr {lr:g} at start" if isinstance(lr, (int, float)) else "")
           + f"; one run, seed {cfg.get('seed', '?')}; B={cfg.get('batch_size', '?')}, T={cfg.get('bptt', '?')}; "
           f"a step event every {cfg.get('log_every', '?')} {plural(cfg.get('log_every'), 'step')}")
    _set_title(fig, title or f"Training {Path(run_dir).resolve().name}: {run_label(cfg)}", sub, width=100, size=11)
    fig.tight_layout()
    # The loss axis's labels are chosen for its size once laid out, then the layout is redone for their width.
    _readable_log_ticks(a_ppl)
    _readable_log_ticks(a_g)        # (matplotlib's own: 3.4x10^-1 beside 4x10^-1 on a narrow range)
    fig.tight_layout()
    return fig


def _mark_best(ax, evals: list[dict]) -> None:
    """The best (lowest) scheduled validation loss: a star on its point, its value in the legend
    ('best validation 43.96 nats (perplexity 1.23e+19) at step 6'). With labels a decade or more apart on
    the log axis, a point under the lowest label has no value to read; written next to the point, the
    value covered the curves (the legend sits above the axes). Nothing without a finite validation loss."""
    points = [(e["step"], float(e["val_loss"])) for e in evals
              if isinstance(e.get("val_loss"), (int, float)) and math.isfinite(e["val_loss"]) and e["val_loss"] > 0]
    if not points:
        return
    step, loss = min(points, key=lambda p: p[1])
    ppl = fmt_ppl(math.exp(loss)) if loss < 700 else "overflows"
    ax.plot([step], [loss], linestyle="none", marker="*", markersize=9, color="tab:orange", markeredgecolor="black",
            markeredgewidth=0.5, zorder=4, gid="best-validation",
            label=f"best validation {loss:.4g} nats (perplexity {ppl}) at step {step:,}")


def _log_tick_candidates(lo: float, hi: float):
    """Tick lists for a log axis from lo to hi (> 0), densest first: plain 'nice' linear steps (for a
    range within one decade, where log and linear spacing differ little), then 1-2-5, 1-3 and 1 per decade, then
    every 2nd, 3rd, ... power of ten."""
    import matplotlib.ticker as mticker
    for nbins in (8, 6, 5, 4, 3) if hi <= 10 * lo else ():
        yield [v for v in mticker.MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi) if v > 0]
    first, last = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    for subs in ((1, 2, 5), (1, 3), (1,)):
        yield [m * 10.0 ** k for k in range(first, last + 1) for m in subs]
    for every in (2, 3, 5, 10, 20, 50, 100):
        yield [10.0 ** k for k in range(first - first % every, last + 1, every)]


MAX_UNLABELED_END = 0.35    # _readable_log_ticks: at most this share of a log axis beyond its outer labels


def _readable_log_ticks(ax, min_gap_pt: float | None = None) -> list:
    """Label a log-scaled y axis with ticks that never collide: the densest of `_log_tick_candidates`
    whose labels are at least min_gap_pt apart (1.6 tick-label heights) at the axes' present height, with
    at least two inside the range and neither end of the range more than MAX_UNLABELED_END of the axis
    beyond the outer labels (where some candidate fits); minor ticks stay, unlabeled. Matplotlib's own
    minor labels print '100 90 80 70 60' (or '10 9 8 7 6') on top of one another when the data span one
    or more decades.
    Returns the ticks set."""
    import matplotlib.ticker as mticker
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties
    lo, hi = sorted(ax.get_ylim())
    if not (lo > 0 and hi > lo and math.isfinite(hi)):
        return []
    if min_gap_pt is None:
        min_gap_pt = 1.6 * FontProperties(size=rcParams["ytick.labelsize"]).get_size_in_points()
    height_pt = ax.get_window_extent().height * 72.0 / ax.figure.dpi
    span = math.log10(hi / lo)
    chosen = spread = None
    for ticks in _log_tick_candidates(lo, hi):
        inside = sorted(v for v in ticks if lo <= v * (1 + 1e-9) and v <= hi * (1 + 1e-9))
        if len(inside) < 2:
            continue
        gap = min(math.log10(b / a) for a, b in zip(inside, inside[1:])) / span * height_pt
        if gap < min_gap_pt:
            continue
        spread = spread or inside
        # labels that reach both ends of the data (no end a third of the axis without a value to read:
        # 20 40 60 over losses from 7 to 60 left the lowest ones unlabeled), else the densest that fit
        if max(math.log10(inside[0] / lo), math.log10(hi / inside[-1])) <= MAX_UNLABELED_END * span:
            chosen = inside
            break
    chosen = chosen or spread
    if chosen is None:      # a tiny axes: the two ends of the range, rounded
        chosen = [float(f"{lo:.2g}"), float(f"{hi:.2g}")]
        chosen = [v for v in chosen if lo <= v <= hi] or [float(f"{math.sqrt(lo * hi):.2g}")]
    ax.yaxis.set_major_locator(mticker.FixedLocator(chosen))
    ax.yaxis.set_major_formatter(mticker.FixedFormatter(tick_labels(chosen)))
    ax.yaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_ylim(lo, hi)
    return chosen


def tick_labels(ticks) -> list[str]:
    """Labels for ticks, as %g writes them, but with one number of decimals for all when they share a
    decade ("6.2200 6.2225 6.2250", not "6.22 6.2225 6.225"); ticks across decades keep %g (1 2 5 10)."""
    texts = [f"{v:g}" for v in ticks]
    if not ticks or any("e" in t for t in texts) or max(ticks) > 10 * min(ticks):
        return texts
    decimals = max(len(t.partition(".")[2]) for t in texts)
    return [f"{v:.{decimals}f}" for v in ticks]


def plot_training(run_dir, out, title: str | None = None) -> Path:
    """Loss (perplexity), gradient norm (with clipping) and learning rate against step, non-finite events marked.

    The validation curve has two series: the scheduled validations (whole split; they anneal the lr,
    count toward --patience and pick best.npz) and, hollow and dotted, the timed ones of --eval-minutes
    (a slice of the split, report only), each labelled as such."""
    return _save(draw_training(run_dir, title=title), out)


# ---------------------------------------------------------------- probes


def read_probes(json_paths) -> tuple[str, list]:
    """(kind, [(path, result), ...]) of probe JSON files, all of one kind (agreement or context)."""
    results = []
    for p in json_paths:
        try:
            results.append((Path(p), json.loads(Path(p).read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read probe results {p}: {exc}") from None
    for p, r in results:
        if not (isinstance(r, dict) and r.get("probe") in ("agreement", "context")):
            what = ("a lag curve (the jacobian command's): plot lag draws it"
                    if isinstance(r, dict) and "curves" in r and "meta" in r else
                    "not a probe result (no \"probe\": agreement or context; the probe command writes them)")
            raise UserError(f"{p} is {what}")
    kinds = {r.get("probe") if isinstance(r, dict) else None for _, r in results}
    if not results or len(kinds) != 1 or kinds - {"agreement", "context"}:
        raise UserError(f"give probe JSON files of one kind (agreement or context); got {sorted(map(str, kinds))}")
    return kinds.pop(), results


def _probe_model(path: Path, r: dict) -> dict:
    """The probed model's settings: the result's own `model` (probes.py writes it), else the run's config."""
    if isinstance(r.get("model"), dict):
        return {**r["model"], "clip": r.get("clip"), "omega": r.get("omega")}
    run = Path(r.get("run") or path.parent)
    try:
        cfg = read_train_config(run)
    except UserError:
        return {"cell": r.get("cell"), "clip": "clipping not recorded"}
    return {**cfg, "clip": clip_label(cfg)}


# What must agree for two probe files to be one model's measurements at different distances (the long-range
# demo's probe-agreement-number.json, d = 1..30, and probe-agreement-number-far.json, d = 35..80): the same
# probe, variant, checkpoint and model, the same seed and sample sizes.
_ONE_MEASUREMENT = ("probe", "feature", "mode", "seed", "n_per_distance", "n_targets_asked", "window", "split",
                    "checkpoint", "checkpoint_step", "cell", "label", "model", "clip", "omega")


def _probe_rows(r: dict) -> list[dict]:
    """A probe result's points, one per distance: agreement's by_distance, context's results."""
    return r["by_distance"] if r.get("probe") == "agreement" else r["results"]


def probe_curves(results) -> list[list[int]]:
    """The curves `plot probe` draws from read_probes' results: each a list of indices into `results`.

    Files of one run folder that measured the same model with the same settings at disjoint distances are
    one curve (the long-range demo's near and far agreement files), drawn in one colour with one legend
    entry; any other file is a curve of its own (the same file given twice is drawn twice, as said)."""
    curves, keys = [], []
    for i, (path, r) in enumerate(results):
        key = (Path(path).resolve().parent, r.get("run"), json.dumps([r.get(k) for k in _ONE_MEASUREMENT],
                                                                     sort_keys=True, default=str))
        ds = {q["distance"] for q in _probe_rows(r)}
        for curve, k in zip(curves, keys):
            taken = {q["distance"] for j in curve for q in _probe_rows(results[j][1])}
            paths = {Path(results[j][0]).resolve() for j in curve}
            if k == key and not ds & taken and Path(path).resolve() not in paths:
                curve.append(i)
                break
        else:
            curves.append([i])
            keys.append(key)
    return curves


def _effective_context(rows: list[dict]):
    """The distance from which every row's increase is within noise (probes.context_usage's rule), or None."""
    effective = None
    for q in reversed(rows):
        if not q.get("within_noise"):
            break
        effective = q["distance"]
    return effective


def _probe_label(results, curve: list[int], variant: str, show_variant: bool) -> str:
    """A curve's default legend entry: cell (run[, variant])."""
    path, r = results[curve[0]]
    run = Path(r.get("run") or path.parent).name
    return f"{r.get('cell') or '?'} ({run}{', ' + str(r.get(variant)) if show_variant else ''})"


def _distinct_labels(labels: list[str], results, curves) -> list[str]:
    """Default labels made distinct: a curve whose label another curve shares (two files of one run that
    overlap in distance or differ in settings) is named by its files too; the same file given twice keeps
    its one name (it is the same curve, drawn twice)."""
    names = ["+".join(Path(results[j][0]).stem for j in curve) for curve in curves]
    out = []
    for i, label in enumerate(labels):
        twins = [k for k, other in enumerate(labels) if other == label and names[k] != names[i]]
        out.append(f"{label[:-1]}, {names[i]})" if twins and label.endswith(")") else label)
    return out


def draw_probe(json_paths, title=None, labels=None):
    """The figure of `plot_probe`, unsaved: returns the matplotlib Figure."""
    plt = _pyplot()
    kind, results = read_probes(json_paths)
    curves = probe_curves(results)
    if labels is not None and len(labels) != len(curves):
        raise UserError(f"{len(labels)} labels for {len(curves)} curves")

    # What tells the curves apart besides cell and run: the context mode or the agreement feature.
    variant = "feature" if kind == "agreement" else "mode"
    show_variant = len({r.get(variant) for _, r in results}) > 1
    if labels is None:
        labels = _distinct_labels([_probe_label(results, c, variant, show_variant) for c in curves], results, curves)
    fig, ax = plt.subplots(figsize=(7.5, 5.4))
    effective = []
    for i, (label, curve) in enumerate(zip(labels, curves)):
        rows = sorted((q for j in curve for q in _probe_rows(results[j][1])), key=lambda q: q["distance"])
        x = [q["distance"] for q in rows]
        y = [q["accuracy" if kind == "agreement" else "mean_increase"] for q in rows]
        lo = [q["ci"][0] for q in rows]
        hi = [q["ci"][1] for q in rows]
        if kind == "context":
            # one file: the effective context it recorded; several: found again over their rows together
            ec = results[curve[0]][1].get("effective_context") if len(curve) == 1 else _effective_context(rows)
            effective.append(ec)
            label += f"; effective context {ec if ec is not None else '> ' + str(max(x))}"
        # (each its own pattern: two models at the same accuracy would hide one line under the other)
        line, = ax.plot(x, y, marker="o", markersize=3, label=label, **curve_style(i, len(curves)))
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        if kind == "context" and effective[-1] is not None:
            ax.axvline(effective[-1], color=line.get_color(), linestyle=":", linewidth=1)
    if kind == "context" and any(ec is not None for ec in effective):
        # the dotted lines are explained in the legend too: a caller's own title may not say what they are
        ax.plot([], [], color="gray", linestyle=":", linewidth=1,
                label="dotted: effective context (no significant increase beyond it)")
    seeds = _joined(r.get("seed", "?") for _, r in results)
    if kind == "agreement":
        ax.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance (0.5)")
        ax.set_ylim(0.0, 1.02)
        import matplotlib.ticker as mticker
        ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # no 2.5, 7.5
        ax.set_xlabel("distance from subject head to the agreeing word (tokens)")
        ax.set_ylabel("accuracy (correct form more likely)")
        features = list(dict.fromkeys(r.get("feature", "number") for _, r in results))   # curves of both: both
        default = f"Portuguese {' and '.join(features)} agreement by distance (95% Wilson band)"
        behind = (f"{_joined(r.get('n_per_distance', '?') for _, r in results)} pairs per distance, "
                  f"probe seed {seeds}")
    else:
        import matplotlib.ticker as mticker
        ax.axhline(0.0, color="gray", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(mticker.ScalarFormatter())   # 1, 2, 5, 10 rather than 10^0, 2x10^0
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        ax.set_xticks(sorted({q["distance"] for _, r in results for q in r["results"]}))
        ax.set_xlabel("context kept intact, d (tokens before the target)")
        ax.set_ylabel("loss increase at the target (nats)")
        done = {"shuffle": "shuffled", "replace": "replaced by random words", "drop": "dropped"}
        # two lines, broken between the phrases: wrapped at the width, "effective" and "context)" parted
        modes = list(dict.fromkeys(str(done.get(r.get("mode"), r.get("mode"))) for _, r in results))
        default = (f"Context usage: context beyond d {' or '.join(modes)}\n"
                   "(95% bootstrap band; dotted: effective context)")
        behind = (f"{_joined(r.get('n_targets', '?') for _, r in results)} targets, "
                  f"window {_joined(r.get('window', '?') for _, r in results)}, probe seed {seeds}")
    models = [_probe_model(*results[c[0]]) for c in curves]     # one per curve, in legend order
    _set_title(ax, title or default, settings_line(models, [m.get("clip") or "?" for m in models], behind),
               width=95)
    ax.grid(True, alpha=0.3)
    _legend_below(ax, ncol=2 if len(curves) > 3 else 1)
    fig.tight_layout()
    return fig


def plot_probe(json_paths, out, title=None, labels=None):
    """Agreement accuracy or context-loss increase against distance, one curve per probe JSON (the files of
    one run that measured its model with the same settings at disjoint distances: one curve, `probe_curves`).

    json_paths: files written by `probe agreement` or `probe context` (all of
    one kind). Agreement: accuracy with its Wilson 95% band and a chance line
    at 0.5. Context: mean loss increase with its bootstrap 95% band, a zero
    line, log-scaled d, and a dotted mark at each curve's effective context.
    Curves are labelled by cell and run (and file, where two of one run would
    share a label), or by `labels` (one per curve; else a UserError). Writes OUT.png and OUT.svg; returns the PNG path.
    """
    return _save(draw_probe(json_paths, title=title, labels=labels), out)


# ---------------------------------------------------------------- demo figures


def _update_sizes(steps: list[dict], cfg: dict):
    """Per step event, the size of the update plain SGD applied, lr · ‖g‖ after clipping (its L2 norm over all
    parameters: SGD's update is -lr·g, so its norm is lr times the clipped gradient's); None for another
    optimizer, whose update is not a multiple of the gradient, and for a run that did not log them."""
    if cfg.get("optimizer", "sgd") != "sgd":
        return None
    sizes = [np.nan if e.get("grad_norm_clipped") is None or e.get("lr") is None else e["lr"] * e["grad_norm_clipped"]
             for e in steps]
    return sizes if any(np.isfinite(sizes)) else None


def draw_explosion(run_a: Path, run_b: Path, title: str):
    """The figure of `plot_explosion`, unsaved: returns the matplotlib Figure.

    Panels: training loss; the gradient's L2 norm before clipping; and (SGD runs) the size of the update
    applied, lr · ‖g‖ after clipping, which is what clipping bounds: an exploding gradient does its damage
    through the step it makes, and after an unclipped giant step the saturated network's gradient is small,
    so the norm panel alone would show the clipped run with the larger gradients."""
    plt = _pyplot()
    runs = [(run, color, read_metrics(run), read_train_config(run))
            for run, color in ((run_a, "tab:red"), (run_b, "tab:blue"))]
    cfgs = [cfg for _, _, _, cfg in runs]
    updates = [_update_sizes([e for e in ev if e["type"] == "step"], cfg) for _, _, ev, cfg in runs]
    with_updates = all(u is not None for u in updates)
    fig, axes = plt.subplots(1, 3 if with_updates else 2, figsize=(14 if with_updates else 10, 4.6))
    ax1, ax2 = axes[0], axes[1]
    for (run, color, ev, cfg), upd in zip(runs, updates):
        label = clip_label(cfg)
        st = [e for e in ev if e["type"] == "step"]
        x = [e["step"] for e in st]
        ax1.plot(x, [np.nan if e["loss"] is None else e["loss"] for e in st], color=color, label=label, lw=1.2)
        ax2.plot(x, [np.nan if e["grad_norm"] is None else e["grad_norm"] for e in st], color=color, label=label,
                 lw=1.2)
        if cfg.get("clip_norm"):
            ax2.axhline(cfg["clip_norm"], color=color, ls="--", lw=1,
                        label=f"clip threshold {cfg['clip_norm']:g} (norms above it were rescaled to it)")
        if with_updates:
            lrs = [e["lr"] for e in st if e.get("lr") is not None]
            # the update steps down where the learning rate was annealed: say so, or it reads as the gradient
            annealed = f" (lr annealed {lrs[0]:g} → {lrs[-1]:g})" if len(set(lrs)) > 1 else ""
            axes[2].plot(x, upd, color=color, label=label + annealed, lw=1.2)
        for e in ev:
            if e["type"] == "nonfinite":
                for ax in axes:
                    ax.axvline(e["step"], color=color, ls=":", lw=1)
                ax1.plot([e["step"]], [ax1.get_ylim()[1]], "x", color=color, ms=9,
                         label=f"non-finite {e['tensor']} at step {e['step']}")
    ax1.set_ylabel("training loss (nats/token)")
    ax2.set_ylabel("gradient L2 norm before clipping")
    ax2.set_yscale("log")
    if with_updates:
        axes[2].set_ylabel("update applied: lr · ‖g‖ after clipping")
        axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("step (updates)")
        ax.grid(True, alpha=0.3)
        _legend_above(ax)
    behind = f"one run each, seed {_joined(c.get('seed', '?') for c in cfgs)}"
    _set_title(fig, title, _run_settings(cfgs[0], behind).replace(
        clip_label(cfgs[0]), _joined(clip_label(c) for c in cfgs)), width=150 if with_updates else 130, size=11)
    fig.tight_layout()
    return fig


def plot_explosion(run_a: Path, run_b: Path, out: Path, title: str) -> Path:
    """Training loss, gradient norm (a line at the clip threshold) and, for SGD runs, the update applied
    (lr · ‖g‖ after clipping) of two runs against step; non-finite events marked with x."""
    return _save(draw_explosion(run_a, run_b, title), out)


def draw_factor_summary(results: dict, activations, gains, note: str | None = None, behind: str | None = None):
    """The figure of `plot_factor_summary`, unsaved: returns the matplotlib Figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    # tanh and lecun-tanh have the same bound at every point and nearly the same factor: each activation
    # gets its own marker, size and line style, the later ones hollow, so that none hides another.
    styles = [("o", 9, "-", "full"), ("s", 7, "--", "none"), ("^", 7, "-.", "none"), ("D", 5, ":", "none")]
    for i, label in enumerate(activations):
        pts = sorted((r["gain"], r["factor_per_step"]) for k, r in results.items()
                     if k.startswith(f"rnn-{label}-") and r["factor_per_step"] is not None)
        marker, ms, ls, fill = styles[i % len(styles)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, ms=ms, ls=ls, fillstyle=fill, mew=1.5,
                label=f"rnn {activation_label(label)}")
    # lstm and gru at init often shrink by the same factor (0.75): distinct colours, markers and a
    # small horizontal offset, and the value in the legend, so that neither hides the other.
    flat = {}
    for cell, ls, marker, color, shift in (("lstm", "--", "s", "tab:purple", 0.94),
                                           ("gru", "-.", "^", "tab:brown", 1.06)):
        f = results.get(cell, {}).get("factor_per_step")
        if f is not None:
            ax.axhline(f, ls=ls, color=color, lw=1.2, alpha=0.8)
            ax.plot([g * shift for g in gains], [f] * len(gains), ls="none", marker=marker, color=color, ms=7,
                    mfc="none", label=f"{cell}, W_hh ×1 (no such bound; drawn across): {f:.3g} per step")
            flat[cell] = (f, color)
    # Each line's value written on it, between the last two bounds (clear of the markers), the higher value
    # above its line and the lower one below: lstm 0.742 and gru 0.753 lie a few pixels apart.
    if flat and len(gains) >= 2:
        g = sorted(gains)
        x = math.sqrt(g[-2] * g[-1])
        top = max(v for v, _ in flat.values())
        for cell, (f, color) in flat.items():
            above = f == top
            ax.annotate(f"{cell} {f:.3g}", (x, f), xytext=(0, 2 if above else -2), textcoords="offset points",
                        ha="center", va="bottom" if above else "top", fontsize=7, color=color, gid=f"{cell}-factor",
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
    ax.axhline(1.0, color="black", lw=0.8, ls=":")
    ax.plot(gains, gains, color="black", lw=0.8, ls="--", label="the bound ‖W_hh‖·max|f′|")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _plain_log_ticks(ax, sorted(gains))
    ax.set_xlabel("‖W_hh‖ · max|f′|  (the per-step bound)")
    ax.set_ylabel("measured factor per step, exp(decay rate)")
    sub = note or "; ".join(
        [f"cell rnn {' / '.join(activation_label(a) for a in activations)}, lstm, gru", "init orthogonal",
         "rnn W_hh × the scale giving each bound, lstm and gru W_hh ×1", "at init (no training, no clipping)"]
        + ([behind] if behind else []) + ["factor = e^(slope of ln median spectral norm)"])
    _set_title(ax, "At initialization: how fast the Jacobian norm shrinks or grows per step", sub, width=90)
    ax.grid(True, which="both", alpha=0.3)
    _legend_below(ax)
    fig.tight_layout()
    return fig


def _plain_log_ticks(ax, xs) -> None:
    """Log axes labelled as plain numbers (0.5, 1, 2 and 0.4, 0.6, 1, 2, not 2⁻¹ and 6×10⁻¹): the ticks of x
    at `xs`, of y at round factors within the axis. Called once everything is drawn (the limits are final)."""
    from matplotlib.ticker import NullFormatter
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    lo, hi = ax.get_ylim()
    ys = [y for y in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.2, 1.5, 2, 3, 5, 10) if lo <= y <= hi]
    if len(ys) >= 2:
        ax.set_yticks(ys, [f"{y:g}" for y in ys])
        ax.set_ylim(lo, hi)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())


def plot_factor_summary(results: dict, activations, gains, out: Path, note: str | None = None,
                        behind: str | None = None) -> Path:
    """exp(decay rate) per step against ||W_hh||·max|f'| per activation; lstm/gru as horizontal lines.

    results: demo gradients' init study, keyed rnn-<label>-x<scale>, lstm, gru, each with
    "gain" (rnn only) and "factor_per_step"; activations: their labels; gains: the bound values.
    note: the whole subtitle, replacing the default (cells and activations, init, scales, no clipping);
    behind: added to the default, what stands behind each point (H, anchors, tokens, seed).
    """
    return _save(draw_factor_summary(results, activations, gains, note, behind), out)
