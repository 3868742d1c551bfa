"""The figure of `plot sweep`: any column of a sweep's table against another, one line per hue value.

Columns are those of `sweep summarize`: a row's results (best_val_ppl,
steps, tokens_per_s, lag_factor_per_step, ...) and its settings flattened
(cell, recurrent_scale, seed, ...). Rows that share x and hue (seeds) are
drawn as points, joined through their mean (geometric on a log axis). A text x (cell, optimizer) is
categories: their means are points at ticks named by them, never joined (a line from gru to rnn says
nothing is between them), each hue a little aside; a whole-number x (seed, layers, hidden) gets whole
ticks only (seed 0.5 does not exist). The title lists the grid's fixed settings, so the figure read
alone says what was held constant.

The one thing to know before editing: matplotlib is imported inside the
function (Agg backend, through plots._pyplot), never at module import.
"""
from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from pathlib import Path

from .errors import UserError, plural

# What a reader calls the common columns; the column's own name follows in brackets (the --x/--y to give).
LABELS = {"best_val_ppl": "best validation perplexity", "val_ppl": "final validation perplexity",
          "recurrent_scale": "recurrent scale (W_hh ×)", "lag_factor_per_step": "Jacobian norm factor per step",
          "lag_vanish_lag": "lag where the Jacobian norm falls below 1e-6 of lag 1",
          "agreement_accuracy": "agreement accuracy", "tokens_per_s": "training tokens/s", "clip_norm": "clip norm",
          "steps": "training steps", "wall_s": "wall time (s)", "hidden": "hidden units H", "lr": "learning rate"}


def axis_label(column: str) -> str:
    """The axis label of a column: the reader's words, then the column name, e.g. 'best validation
    perplexity [best_val_ppl]'; an unknown column is its own label."""
    return f"{LABELS[column]} [{column}]" if column in LABELS else column


def _number(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v) if math.isfinite(v) else None
    return None


def numeric_columns(flat: list[dict]) -> list[str]:
    """The columns of table rows that hold a finite number in at least one row (what --y can draw)."""
    return sorted({k for r in flat for k, v in r.items() if _number(v) is not None})


SHOWN_COLUMNS = 8          # an error lists at most this many columns (a real sweep's table has dozens)


def some_columns(columns: list[str], wrong: str, first=()) -> str:
    """The columns a flag can name, short enough for an error line: all of them (sorted) when they are
    few; else SHOWN_COLUMNS of them, the near spellings of `wrong` and the columns holding it first,
    then `first` (the grid's varying settings), then the common ones (LABELS), and how many more."""
    import difflib
    if len(columns) <= SHOWN_COLUMNS:
        return ", ".join(sorted(columns))
    order = difflib.get_close_matches(wrong, columns, n=3, cutoff=0.6)
    order += [c for c in columns if wrong and wrong.lower() in c.lower()][:3]
    order += [c for c in first if c in columns] + [c for c in LABELS if c in columns] + sorted(columns)
    shown = list(dict.fromkeys(order))[:SHOWN_COLUMNS]
    return ", ".join(shown) + (f" and {len(columns) - len(shown)} more (the keys of a sweep.jsonl row, "
                               "settings flattened)")


def _check_numeric(folder, flat: list[dict], y: str) -> None:
    """UserError when column y holds values but no number (status, cell: text cannot be a y axis)."""
    values = [r.get(y) for r in flat if r.get(y) is not None]
    if values and all(_number(v) is None for v in values):
        seen = sorted({str(v) for v in values})
        shown = ", ".join(seen[:5]) + (", ..." if len(seen) > 5 else "")
        raise UserError(f"--y {y}: not a numeric column in {folder} (values: {shown or 'none'}); "
                        f"numeric columns: {some_columns(numeric_columns(flat), y)}")


def _fit_ylabel(ax, text: str, share: float = 0.95) -> bool:
    """Wrap the y label onto as many lines as keep it within `share` of the axes' height; True when it
    did. A rotated label is centred on the axes and tight_layout never shortens it, so one longer than the
    axes ran past the top (and bottom) of the image. Call it once the layout is set, then lay out again."""
    renderer = ax.figure.canvas.get_renderer()
    label = ax.yaxis.label
    room = share * ax.get_window_extent(renderer).height
    width = len(text)
    while label.get_window_extent(renderer).height > room and width > 12:
        width = max(12, int(width * 0.8))
        label.set_text("\n".join(textwrap.wrap(text, width)))
    return width < len(text)


def _geometric_mean(values: list) -> float:
    """exp(mean(log v)) of positive values (what a log axis shows as their middle); nan if one is not > 0."""
    import math
    if any(v <= 0 for v in values):
        return math.nan
    if min(values) == max(values):      # exactly that value (exp of the log's mean is off in the last bit)
        return values[0]
    return math.exp(sum(math.log(v) for v in values) / len(values))


def plot_sweep(folder, x: str, y: str, hue: str | None = None, out=None, logy: bool | None = None) -> Path:
    """Draw column y against column x of the sweep in `folder` (PNG + SVG); returns the PNG path.

    hue: a column whose values get one line each. logy: None = log scale when y
    is a perplexity. Rows whose y is missing or not finite (failed or
    diverged jobs) are left out and counted in the legend title.
    Errors (UserError, one line; never an empty figure): a column that does not
    exist (the message names the flag and a few columns, some_columns); a y
    column that holds text, not numbers (the message lists numeric columns
    the same way); no row with both x and a finite y.
    """
    from .plots import _legend_below, _pyplot, _save
    from .sweeprecord import empty_reason, read_rows
    from .sweepgrid import FIXED_KEYS, shown_fixed, table_rows, varying
    rows = [r for r in read_rows(folder)]
    if not rows:
        raise UserError(f"nothing to plot: {empty_reason(folder)}")
    flat = table_rows(rows)
    columns = sorted({k for r in flat for k in r})
    for flag, c in (("--x", x), ("--y", y)) + ((("--hue", hue),) if hue else ()):
        if not any(c in r for r in flat):
            first = varying(rows)[0] if flag != "--y" else ()
            raise UserError(f"{flag} {c}: no column {c!r} in {folder}; columns: {some_columns(columns, c, first)}")
    _check_numeric(folder, flat, y)
    groups = defaultdict(lambda: defaultdict(list))
    missing = 0
    for r in flat:
        yv = _number(r.get(y))
        if yv is None or r.get(x) is None:
            missing += 1
            continue
        groups[r.get(hue) if hue else None][r[x]].append(yv)
    if not groups:
        raise UserError(f"no job in {folder} has both {x} and a finite {y} ({missing} {plural(missing, 'job')} without), "
                        "so there is nothing to draw; see 'sweep summarize' for their status")
    numeric_x = all(_number(v) is not None for g in groups.values() for v in g)
    whole_x = numeric_x and all(isinstance(v, int) and not isinstance(v, bool) for g in groups.values() for v in g)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    order = sorted({v for g in groups.values() for v in g}, key=lambda v: (_number(v) is None, _number(v) or 0, str(v)))
    pos = {v: (float(v) if numeric_x else i) for i, v in enumerate(order)}
    log_y = logy if logy is not None else "ppl" in y
    # on a log axis the line joins the geometric means (the mean of the logs: for a perplexity, e^(mean loss)),
    # so that one diverged seed does not lift it above the other runs' dots
    center = _geometric_mean if log_y else (lambda vs: sum(vs) / len(vs))
    keys = sorted(groups, key=lambda v: (_number(v) is None, _number(v) or 0, str(v)))     # hidden=8 before 16
    for k, key in enumerate(keys):
        g = groups[key]
        xs = sorted(g, key=lambda v: pos[v])
        label = f"{hue}={key}" if hue else None
        # categories: each hue's points a little aside, so that two hues at one category do not hide each other
        aside = 0.0 if numeric_x or len(keys) == 1 else 0.2 * (k / (len(keys) - 1) - 0.5)
        line, = ax.plot([pos[v] + aside for v in xs], [center(g[v]) for v in xs], marker="o", label=label,
                        linestyle="-" if numeric_x else "none")
        for v in xs:
            if len(g[v]) > 1:
                ax.scatter([pos[v] + aside] * len(g[v]), g[v], s=12, alpha=0.5, color=line.get_color())
    if not numeric_x:
        ax.set_xticks(range(len(order)), [str(v) for v in order])
        ax.set_xlim(-0.5, len(order) - 0.5)
    elif whole_x and len(order) <= 12:      # the values themselves (one value: no ticks at 15.2 ... 16.8)
        ax.set_xticks([pos[v] for v in order], [str(v) for v in order])
    elif whole_x:
        import matplotlib.ticker as mticker
        ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(axis_label(x))
    several = any(len(v) > 1 for g in groups.values() for v in g.values())
    ylabel = axis_label(y) + ((" (geometric mean; dots: single runs)" if log_y else " (mean; dots: single runs)")
                              if several else "")
    ax.set_ylabel(ylabel)
    vary, fixed = varying(rows)
    # settings that vary but are neither x nor hue: the points pool their runs, which the title must say
    # ("2 runs per point" read as two seeds where it was an rnn and an lstm)
    pooled = [k for k in vary if k not in (x, hue, "seed")]
    from .sweepgrid import with_default_lr
    fixed = with_default_lr(fixed)
    fixed_txt = ", ".join(f"{k}={Path(str(fixed[k])).name if k == 'corpus' else fixed[k]}"
                          for k in FIXED_KEYS if shown_fixed(k, fixed.get(k)))
    runs = sorted({len(v) for g in groups.values() for v in g.values()})
    per_point = f"{runs[0]} run{'s' if runs[0] > 1 else ''}" if len(runs) == 1 else f"{runs[0]}-{runs[-1]} runs"
    ax.set_title(f"{LABELS.get(y, y)} vs {LABELS.get(x, x)}" + (f" by {hue}" if hue else "") + "\n"
                 + "\n".join(textwrap.wrap(f"fixed: {fixed_txt}; {per_point} per point"
                                            + (f", pooled over {', '.join(pooled)} (--hue {pooled[0]} draws "
                                               f"{'them' if len(pooled) > 1 else 'it'} apart)" if pooled else ""),
                                            95)), fontsize=8)
    note = f"{missing} {plural(missing, 'job')} without {y} left out" if missing else None
    if hue:
        _legend_below(ax, ncol=2 if len(groups) > 4 else 1, title=note, fontsize=8)     # never on the data
    elif note:                  # no lines with labels: a legend would be empty (and matplotlib warns)
        ax.text(0.99, 0.98, note, transform=ax.transAxes, ha="right", va="top", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if _fit_ylabel(ax, ylabel):
        fig.tight_layout()          # the wrapped label is wider: make room for it at the left
    out = Path(out) if out else Path(folder) / f"sweep-{y}-vs-{x}{'-by-' + hue if hue else ''}.png"
    return _save(fig, out)
