"""How every figure of rnnlm looks: labels, subtitles, legends, zero strips, log limits, saving.

matplotlib is imported inside `_pyplot` (with the Agg backend), never at
module level, so that the rest of the package and `--help` never pay for it;
plotlag.py, plotruns.py and sweepplot.py take it from `_pyplot` and save
through `_save`. Each public function of theirs writes one figure as PNG and
SVG side by side (same stem) and returns the PNG path; each has a `draw_*`
twin that returns the matplotlib Figure unsaved (what the tests read labels,
titles and legends from). The lag-curve figure (`plot_lag`, `draw_lag`, its
legend entries `lag_labels` and `item_names`, and how a lag curve is read:
`load_lag_doc`, `_series`, `default_quantity`) is plotlag.py's; the figures
of run folders, probes and demos are plotruns.py's.

The one thing to know before editing: norms in lag curves span hundreds of
orders of magnitude and may be 0.0 or null (outside float64, see jacobian.py);
`_positive` turns those into NaN so that log axes drop them instead of failing;
a median that is 0 (a saturated RNN is exactly 0 from lag 1) is not dropped
silently: `_mark_zeros` marks its lags in a thin strip labelled "= 0" under
the log axes (a child axes sharing their x axis, `zero_strip`; the figure grows
by its height), never inside them, where a mark would read as a norm; the
strip carries the x tick labels and, through `_set_xlabel`, the x label; the
legend entry is ZERO_NOTE. The log axes' limits come from positive values
only; with none at all they say so (`_nothing_positive`) instead of showing
arbitrary decades. A figure without a zero has no strip.
Every figure has a subtitle (`settings_line`) stating cell, activation, init,
recurrent scale, clipping and how many anchors, pairs or seeds stand behind
it, so a figure read alone is not ambiguous; a bound is drawn only with the
norm it bounds, and never stretches the axis beyond the data (it is cut there
and the legend says so).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import UserError


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    # SVG text stays text: smaller files, searchable, and the tests can read the labels.
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt
    return plt


def figure_png(out) -> Path:
    """The PNG a figure named `out` is written as (its SVG beside it): "lag.png", "lag.svg" and "lag" all
    mean lag.png + lag.svg; "x1.5" is not a suffix to replace."""
    out = Path(out)
    return out.with_suffix(".png") if out.suffix.lower() in (".png", ".svg") else out.with_name(out.name + ".png")


def _save(fig, out) -> Path:
    """Write `fig` as OUT.png and OUT.svg (figure_png); returns the PNG path."""
    plt = _pyplot()
    png = figure_png(out)
    png.parent.mkdir(parents=True, exist_ok=True)
    # the SVG without a date and with fixed element ids: redrawing the same figure rewrites the same bytes
    # (committed figures do not show up as changed after `plot study` and the like)
    with np.errstate(over="ignore"), plt.rc_context({"svg.hashsalt": "rnnlm"}):
        # (log axes over norms near 1e308 overflow while ticking; harmless)
        write_figure(fig, {png: {"dpi": SAVE_DPI}, png.with_suffix(".svg"): {"metadata": {"Date": None}}})
    plt.close(fig)
    return png


# Written into every figure's metadata (the PNG's "Software" text, the SVG's dc:creator), at the file's
# start: a figure of this tool is replaced when drawn again, a file of someone else's of that name is not.
FIGURE_MARK = "rnnlm (drawn with Matplotlib)"


def figure_replaceable(path) -> bool:
    """Whether drawing a figure may replace the file `path`: it is empty, carries FIGURE_MARK (this tool
    drew it), or is a figure an earlier version drew (_earlier_figure). A user's own matplotlib figure
    (plt.savefig's defaults) is none of these, and is not replaced."""
    head = _head(path)
    return head is None or not head or FIGURE_MARK.encode() in head or _earlier_figure(Path(path), head)


def _head(path, size: int = 8192) -> bytes | None:
    """The first `size` bytes of a file (None when it cannot be read: the write then says why)."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return None


def _earlier_figure(path: Path, head: bytes) -> bool:
    """Whether a matplotlib figure without FIGURE_MARK is one this tool drew before it marked them: its SVG
    has no date (written with metadata Date None; plt.savefig writes one), its PNG is at SAVE_DPI (150; the
    default is 100), has such an SVG beside it, or sits in a study folder (a study's 100-dpi PNGs)."""
    if b"matplotlib" not in head.lower():
        return False
    if path.suffix.lower() == ".svg":
        return b"<dc:date>" not in head
    at = head.find(b"pHYs")     # pixels per metre, big-endian: 150 dpi = 5906
    if at >= 0 and int.from_bytes(head[at + 4:at + 8], "big") == round(SAVE_DPI / 0.0254):
        return True
    if (path.parent / "study.json").is_file():
        return True
    twin = path.with_suffix(".svg")
    twin_head = _head(twin) if twin.is_file() else None
    return bool(twin_head) and b"matplotlib" in twin_head.lower() and b"<dc:date>" not in twin_head


def write_figure(fig, files: dict) -> None:
    """Save `fig` to each path of `files` (path -> savefig's keyword arguments; the format from the suffix):
    every file is drawn in memory first, then each is written atomically (fileio.atomic_write), so that a
    Ctrl-C or a full disk while drawing leaves the figures that were there before, and one during the
    writes leaves each file whole (the new or the old one), never a cut PNG or SVG. Each carries FIGURE_MARK.
    Raises OSError (naming the file) as atomic_write does, UserError for a file in the way that no figure
    of this tool's is (figure_replaceable), before anything is written."""
    import io

    from .errors import UserError
    from .fileio import atomic_write
    for path in files:
        if Path(path).is_file() and not figure_replaceable(path):
            raise UserError(f"{path} exists and is not a figure this tool drew (an image of your own?); move it, "
                            "or give the figure another place (plot's --out)")
    drawn = []
    for path, kwargs in files.items():
        buf = io.BytesIO()
        fmt = Path(path).suffix.lstrip(".").lower()
        mark = {"png": "Software", "svg": "Creator"}.get(fmt)
        if mark:
            kwargs = {**kwargs, "metadata": {**(kwargs.get("metadata") or {}), mark: FIGURE_MARK}}
        fig.savefig(buf, format=fmt, **kwargs)
        drawn.append((path, buf.getvalue()))
    for path, data in drawn:
        atomic_write(path, lambda f, data=data: f.write(data))


SAVE_DPI = 150      # the PNG's resolution (text is wider at it than at the figure's own 100 dpi: fit_legends)


def _positive(values) -> np.ndarray:
    """Floats for a log axis: None, 0 and non-finite become NaN (not drawn)."""
    a = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    a[~(np.isfinite(a) & (a > 0))] = np.nan
    return a


# ---------------------------------------------------------------- labels

LECUN_TANH = (1.7159, 0.6667)   # LeCun et al. (1998): 1.7159 tanh(2z/3); `lecun-tanh` in config.parse_activation


def _fmt_scale(x) -> str:
    return "?" if x is None else f"{float(x):g}"


def activation_label(spec) -> str:
    """One name for one activation: 'scaled-tanh:1.7159,0.6667' shows as 'lecun-tanh'."""
    if not spec:
        return ""
    try:
        from .config import SCALED_TANH, parse_activation
        act = parse_activation(spec)
    except Exception:   # a label never fails a figure
        return str(spec)
    if act.name != "tanh" and (round(act.a, 4), round(act.b, 4)) == LECUN_TANH and act.kind == SCALED_TANH:
        return "lecun-tanh"
    return act.name


def cell_label(meta: dict) -> str:
    """'rnn tanh', 'lstm', 'gru' from a lag_curve meta or a run's (flattened) train config."""
    cell = meta.get("cell") or "?"
    return cell + (f" {activation_label(meta.get('activation'))}" if cell == "rnn" and meta.get("activation") else "")


def model_label(meta: dict) -> str:
    """'rnn tanh, init orthogonal, W_hh ×1.5' from a lag_curve meta or a run's train config (the × of
    every subtitle's 'W_hh ×1.5', settings_line: a figure spells it one way)."""
    parts = [cell_label(meta)]
    parts.append(f"init {meta.get('init') or '?'}")
    parts.append(f"W_hh ×{_fmt_scale(meta.get('recurrent_scale'))}")
    if meta.get("layers", 1) and meta.get("layers", 1) > 1:
        parts.append(f"{meta['layers']} layers")
    return ", ".join(parts)


def clip_label(train_cfg: dict | None) -> str:
    """How a run clipped its gradients, from its train config; 'untrained' without one."""
    if not train_cfg:
        return "untrained"
    if train_cfg.get("clip_norm"):
        return f"clip-norm {train_cfg['clip_norm']:g}"
    if train_cfg.get("clip_value"):
        return f"clip-value {train_cfg['clip_value']:g}"
    return "no clipping"


def _joined(values) -> str:
    """The distinct values in order, ' / '-separated: one value when every curve shares it."""
    return " / ".join(dict.fromkeys(str(v) for v in values))


def settings_line(metas: list[dict], clips: list[str] | None = None, behind: str | None = None,
                  common_only: bool = False) -> str:
    """The subtitle every figure carries: cell and activation, init, recurrent scale, clipping, H, and
    what stands behind each point (`behind`: anchors, pairs or seeds). A setting shared by every
    curve is written once; one that differs lists each curve's value, in legend order, joined by ' / '
    (or, with common_only, is left out: for a figure whose legend entries name each curve's own value,
    where 'H=64 / 32' over three curves maps onto none of them).
    metas: lag_curve metas or flattened train configs; clips: each one's clipping (default clip_label)."""
    if not metas:
        return behind or ""
    clips = clips if clips is not None else [clip_label(m) for m in metas]

    def part(prefix, values):
        values = list(values)
        if common_only and len(set(values)) > 1:
            return None
        return f"{prefix}{_joined(values)}"
    parts = [part("cell ", (cell_label(m) for m in metas)),
             part("init ", (m.get('init') or '?' for m in metas)),
             part("W_hh ×", (_fmt_scale(m.get('recurrent_scale')) for m in metas)),
             part("", clips)]
    omegas = [m.get("omega") or 0 for m in metas]
    if any(omegas):
        parts.append(part("Ω α=", (f'{o:g}' for o in omegas)))
    hs = [m.get("H", m.get("hidden")) for m in metas]
    if any(h is not None for h in hs):
        parts.append(part("H=", ('?' if h is None else h for h in hs)))
    if behind:
        parts.append(behind)
    return "; ".join(p for p in parts if p)


# The line styles of a comparison's curves, one each in turn with its colour: two curves that coincide (an
# lstm and a gru at init, both 0.75 per step) would otherwise draw the later one over the earlier one, which
# vanished. A later curve is patterned and a little thinner, so the earlier one shows through its gaps. None
# is plain dashes: those are the bounds' (plot lag --bound) and the chance line's.
CURVE_STYLES = (("-", 2.0), ((0, (1, 1.2)), 1.6), ((0, (6, 1.5, 1.5, 1.5)), 1.4),
                ((0, (6, 1.5, 1.5, 1.5, 1.5, 1.5)), 1.3), ((0, (9, 2)), 1.2))


def curve_style(i: int, n: int) -> dict:
    """The linestyle and linewidth of curve i of n (CURVE_STYLES in turn); one curve alone: plain, 1.5 wide."""
    if n <= 1:
        return {"linestyle": "-", "linewidth": 1.5}
    style, width = CURVE_STYLES[i % len(CURVE_STYLES)]
    return {"linestyle": style, "linewidth": width}


NOTE_WIDTH = 90     # characters per line of a note in a legend: a longer one ran past the figure's edges


def _wrap(text: str, width: int = 100) -> str:
    import textwrap
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def _wrap_entry(text: str, width: int = NOTE_WIDTH) -> str:
    """A legend entry on lines of at most `width` characters, broken at spaces only (never inside
    'clip-norm' or a file's name)."""
    import textwrap
    return "\n".join(textwrap.fill(line, width, break_on_hyphens=False, break_long_words=False)
                     for line in text.split("\n"))


def _set_title(target, title: str, subtitle: str, width: int = 100, size: float = 10) -> None:
    """Title (bold-free, size 10) and a smaller wrapped settings subtitle below it, on an Axes or a Figure
    (suptitle); wrapped so that nothing is cut off at the figure's width."""
    text = _wrap(title, int(width * 0.9)) + ("\n" + _wrap(subtitle, width) if subtitle else "")
    if hasattr(target, "suptitle"):
        target.suptitle(text, fontsize=size * 0.85)
    else:
        target.set_title(text, fontsize=size * 0.85)


def read_train_config(run_dir) -> dict:
    """A run folder's training settings for figures (config.json's "train", the model settings flat);
    UserError (one line) when there is none or it is not JSON."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        from .runs import not_a_run_folder
        raise UserError(not_a_run_folder(run_dir))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    train = doc.get("train", {}) if isinstance(doc, dict) else None
    if not isinstance(train, dict):
        raise UserError(f"{path} holds no training settings")
    return {**train.get("model", {}), **train}   # the model settings flat, in either config format


# ---------------------------------------------------------------- zeros and log axes

ZERO_NOTE = "median exactly 0 (not drawable on a log scale)"
ZERO_STRIP_LABEL = "= 0"
NOTHING_POSITIVE = "no nonzero median to draw on a log scale: see the strip below"
_STRIP_GID = "zero-strip"     # how zero_strip finds the strip among an axes' child axes
# The strip's size is in inches, not a fraction of the axes, so that the offset _legend_below computes
# before tight_layout still holds after it: a row per curve, 0.12 in apart, at most 0.9 in in all.
_STRIP_ROW_IN, _STRIP_MAX_IN, _STRIP_MIN_IN, _STRIP_GAP_IN = 0.12, 0.9, 0.22, 0.08


def zero_strip(ax):
    """The strip of zero marks under `ax` (see _mark_zeros), or None when nothing was 0."""
    for child in ax.child_axes:
        if child.get_gid() == _STRIP_GID:
            return child
    return None


def _strip_rows(strip) -> int:
    """How many rows of marks a strip holds (row numbers from 0)."""
    return 1 + max((int(max(line.get_ydata())) for line in strip.get_lines()), default=-1)


def _strip_geometry(rows: int) -> tuple[float, float]:
    """(row pitch, strip height), in inches, of a strip of `rows` rows."""
    pitch = min(_STRIP_ROW_IN, _STRIP_MAX_IN / max(rows, 1))
    return pitch, max(pitch * rows, _STRIP_MIN_IN)


def _new_strip(ax):
    """A thin axes directly under `ax`, as wide, sharing its x axis (same lags and limits); `ax`'s x tick
    labels move to it (and the x label: _set_xlabel). A child axes of `ax`, placed at every draw by a
    locator, so that it follows `ax` through colorbars and tight_layout."""
    from matplotlib.transforms import Bbox
    strip = ax.inset_axes([0.0, -0.2, 1.0, 0.1], sharex=ax)      # the bounds are the locator's, below
    strip.set_gid(_STRIP_GID)

    def locate(_strip, _renderer):
        fig_h = ax.figure.get_size_inches()[1]
        _, height = _strip_geometry(_strip_rows(strip))
        p = ax.get_position()
        return Bbox.from_bounds(p.x0, p.y0 - (_STRIP_GAP_IN + height) / fig_h, p.width, height / fig_h)

    strip.set_axes_locator(locate)
    strip.set_yticks([])
    strip.set_ylabel(ZERO_STRIP_LABEL, rotation=0, ha="right", va="center", fontsize=9)
    strip.grid(True, axis="x", alpha=0.3)
    ax.tick_params(axis="x", labelbottom=False)
    return strip


def _mark_zeros(ax, lags, zero, color, label: str | None = None, row: int = 0) -> bool:
    """Mark the lags where a median is 0 (`zero`, a mask from _zero_mask), which a log axis cannot draw,
    in a strip under the axes labelled "= 0" (made at the first call, zero_strip): 'v' markers at the
    lags, one row per call (`row`, top to bottom), in the curve's colour; the log axes' limits come from
    positive data only. label: the legend entry (ZERO_NOTE, once per figure), put on `ax`'s legend.
    Returns whether anything was marked."""
    lags = np.asarray(lags)[np.asarray(zero, dtype=bool)]
    if not len(lags):
        return False
    strip = zero_strip(ax)
    before = _STRIP_GAP_IN + _strip_geometry(_strip_rows(strip))[1] if strip else 0.0
    strip = strip or _new_strip(ax)
    look = dict(linestyle="none", marker="v", color=color, markeredgecolor="black", markeredgewidth=0.5)
    strip.plot(lags, np.full(len(lags), float(row)), markersize=5, clip_on=False, **look)
    rows = _strip_rows(strip)
    pitch, height = _strip_geometry(rows)
    span = height / pitch                     # the strip's height in rows; row 0 at the top
    strip.set_ylim((rows - 1) / 2 + span / 2, (rows - 1) / 2 - span / 2)
    size = min(5.0, pitch * 72 * 0.85)
    for line in strip.get_lines():           # many rows: smaller marks, so that rows do not overlap
        line.set_markersize(size)
        line.set_markeredgewidth(0.5 if size >= 3 else 0.0)   # (on a tiny mark the edge hides the colour)
    # the figure grows by the strip, so that the main axes keep their height (and their y label fits)
    w, h = ax.figure.get_size_inches()
    ax.figure.set_size_inches(w, h + _STRIP_GAP_IN + height - before)
    if label:
        ax.plot([], [], markersize=5, label=label, **look)
    return True


def _set_xlabel(ax, text: str) -> None:
    """The x label of an axes, on its zero strip when it has one (the strip carries the x tick labels)."""
    (zero_strip(ax) or ax).set_xlabel(text)


def _nothing_positive(ax) -> None:
    """A log axes with zero marks and no positive value at all: a short centred note, no y ticks
    (which would be arbitrary decades). Call it after set_yscale (which resets the tick locators)."""
    from matplotlib.ticker import NullLocator
    ax.yaxis.set_major_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())
    ax.text(0.5, 0.5, NOTHING_POSITIVE, transform=ax.transAxes, ha="center", va="center", fontsize=9,
            color="dimgray")


# ln and log10 of the largest and smallest limits a log axis is given: inside float64's range (1.8e308, and
# its subnormals down to 4.9e-324), so that no limit, tick or bound computed from them is inf or 0
_LOG10_MAX, _LOG10_MIN = 308.25, -323.0
_LN_MAX, _LN_MIN = _LOG10_MAX * math.log(10.0), _LOG10_MIN * math.log(10.0)


def _log_ylim(ax, lo: float, hi: float, margin: float | None = None) -> None:
    """The y limits of a log axes over data from `lo` to `hi` (> 0, finite), computed in log10 space and
    kept inside float64's range: `margin` decades beyond the data each side, or (None) matplotlib's own
    autoscaling (5% of the span, 1 included: the axhline at 1), left alone unless it would leave float64,
    where matplotlib falls back to 10^0-10^1 and draws nothing, or fails while ticking. At such limits the
    ticks are kept finite too (_finite_ticks). Call it after set_yscale("log")."""
    a, b = math.log10(lo), math.log10(hi)
    if margin is None:
        a, b = min(a, 0.0), max(b, 0.0)
        span = b - a
        margin = 0.05 * span
        if a - margin >= _LOG10_MIN + 1 and b + margin <= _LOG10_MAX - 1:
            return                                          # the usual figure: matplotlib's own limits
    elif b - a == 0:
        margin = max(margin, 1e-9)
    bottom, top = max(a - margin, _LOG10_MIN), min(b + margin, _LOG10_MAX)
    ax.set_ylim(10.0 ** bottom, 10.0 ** top)
    if bottom < -290 or top > 290:
        _finite_ticks(ax.yaxis)


def _finite_ticks(axis) -> None:
    """Tick locators on `axis` (a log axis) that drop the ticks beyond float64's range: matplotlib's
    LogLocator puts one a stride beyond each limit, 10^330 is inf, and its formatter then fails
    (OverflowError: cannot convert float infinity to integer)."""
    from matplotlib.ticker import Locator

    class Finite(Locator):
        def __init__(self, inner):
            self.inner = inner

        def set_axis(self, ax_axis):
            super().set_axis(ax_axis)
            self.inner.set_axis(ax_axis)

        def __call__(self):
            vmin, vmax = self.axis.get_view_interval()
            return self.tick_values(vmin, vmax)

        def tick_values(self, vmin, vmax):
            with np.errstate(over="ignore", under="ignore"):
                t = np.asarray(self.inner.tick_values(vmin, vmax), dtype=np.float64)
            return t[np.isfinite(t) & (t > 0)]

        def nonsingular(self, v0, v1):
            return self.inner.nonsingular(v0, v1)

        def view_limits(self, vmin, vmax):
            return self.inner.view_limits(vmin, vmax)

    axis.set_major_locator(Finite(axis.get_major_locator()))
    axis.set_minor_locator(Finite(axis.get_minor_locator()))


# ---------------------------------------------------------------- legends

# Every legend sits outside its axes (below, or above where an axes' x labels are shared), never on the
# data: matplotlib's loc="best" still covers curves once labels are long or the data fill the axes.
def _legend_below(ax, ncol: int = 1, **kw) -> None:
    """The legend under the axes, below their x tick labels and label (and below a zero strip under them,
    _mark_zeros, which carries those); tight_layout makes room for it. Call it once the x ticks and label
    are set (their height decides the offset, in points). kw: more arguments of Axes.legend (a title,
    another fontsize)."""
    from matplotlib.transforms import offset_copy
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    boxes = [ax.xaxis.get_tightbbox(renderer)] + [c.get_tightbbox(renderer) for c in ax.child_axes if c.get_visible()]
    lowest = min([ax.bbox.y0] + [b.y0 for b in boxes if b is not None])    # (no x tick labels: None)
    below = ax.bbox.y0 - lowest                                                   # pixels under the axes
    ax.legend(**{"fontsize": 7, **kw}, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, frameon=False,
              bbox_transform=offset_copy(ax.transAxes, fig=fig, y=-(max(below, 0.0) * 72 / fig.dpi + 3),
                                         units="points"))


def _legend_above(ax, ncol: int = 1) -> None:
    """The legend over the axes (axes stacked on a shared x, or side by side under a figure title);
    tight_layout makes room for it."""
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=ncol, frameon=False,
              borderaxespad=0.0)


def fit_legends(fig, pad_in: float = 0.1) -> None:
    """Widen a laid-out figure until every legend (of its axes or its own) lies inside it: a legend
    under the axes is centred on them and as wide as its longest entry, and savefig cut one that was
    wider than the figure at both edges. Call it after tight_layout; it lays the figure out again.
    Measured at the PNG's resolution (SAVE_DPI), where text is a little wider than at the figure's own:
    a legend that fitted at 100 dpi was still cut in the PNG."""
    own = fig.dpi
    fig.set_dpi(SAVE_DPI)
    try:
        _fit_legends(fig, pad_in)
    finally:
        fig.set_dpi(own)


def _fit_legends(fig, pad_in: float) -> None:
    for _ in range(4):
        renderer = fig.canvas.get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
        if not legends:
            return
        boxes = [leg.get_window_extent(renderer) for leg in legends]
        x0, x1 = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
        over = max(0.0, -x0) + max(0.0, x1 - fig.bbox.width)
        if over <= 0.5:
            return
        w, h = fig.get_size_inches()
        fig.set_size_inches(w + over / fig.dpi + 2 * pad_in, h)
        fig.tight_layout()
