"""How every figure of rnnlm looks, and the lag-curve figure: labels, subtitles, legends, saving; `plot_lag`.

matplotlib is imported inside `_pyplot` (with the Agg backend), never at
module level, so that the rest of the package and `--help` never pay for it;
plotruns.py and sweepplot.py take it from `_pyplot` and save through `_save`.
Each public function writes one figure as PNG and SVG side by side (same
stem) and returns the PNG path; each has a `draw_*` twin that returns the
matplotlib Figure unsaved (what the tests read labels, titles and legends
from). The lag-curve figure reads `lag_curve` dicts (jacobian.py); the
figures of run folders, probes and demos are plotruns.py's.

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

from .errors import UserError, command


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    # SVG text stays text: smaller files, searchable, and the tests can read the labels.
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out) -> Path:
    """Write `fig` as OUT.png and OUT.svg; returns the PNG path."""
    plt = _pyplot()
    out = Path(out)
    # "lag.png", "lag.svg" and "lag" all mean lag.png + lag.svg; "x1.5" is not a suffix to replace.
    png = out.with_suffix(".png") if out.suffix.lower() in (".png", ".svg") else out.with_name(out.name + ".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    # the SVG without a date and with fixed element ids: redrawing the same figure rewrites the same bytes
    # (committed figures do not show up as changed after `plot study` and the like)
    with np.errstate(over="ignore"), plt.rc_context({"svg.hashsalt": "rnnlm"}):
        # (log axes over norms near 1e308 overflow while ticking; harmless)
        fig.savefig(png, dpi=SAVE_DPI)
        fig.savefig(png.with_suffix(".svg"), metadata={"Date": None})
    plt.close(fig)
    return png


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
        from .config import parse_activation
        act = parse_activation(spec)
    except Exception:   # a label never fails a figure
        return str(spec)
    if act.name != "tanh" and (round(act.a, 4), round(act.b, 4)) == LECUN_TANH and act.kind == 0:
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


def _doc_clip(meta: dict) -> str:
    """A lag curve's clipping: the trained run's, 'at init (no training)', or 'clipping not recorded'."""
    if meta.get("clip"):
        return meta["clip"]
    return "at init (no training)" if meta.get("source") == "init" else "clipping not recorded"


def _doc_label(doc: dict) -> str:
    meta = doc.get("meta", {})
    label = model_label(meta)
    clip = meta.get("clip") or ("at init" if meta.get("source") == "init" else None)
    if clip:
        label += f", {clip}"
    step = meta.get("step")
    if step is not None:
        label += f", step {step}"
    return label


# Settings a lag curve's label leaves out, added to every label when they differ between the curves drawn
# (in this order): (how to read it from a meta, how to write it).
_LAG_EXTRAS = (
    (lambda m: m.get("H", m.get("hidden")), lambda v: f"H={v}"),
    (lambda m: m.get("E", m.get("emsize")), lambda v: f"E={v}"),
    (lambda m: m.get("forget_bias"), lambda v: f"forget bias {_fmt_num(v)}"),
    (lambda m: m.get("omega"), lambda v: f"Ω α={_fmt_num(v)}"),
    (lambda m: m.get("seed"), lambda v: f"seed {v}"),
    (lambda m: _text_name(m["text"]) if m.get("text") else None, lambda v: f"on {v}"),
    (lambda m: m.get("anchors"), lambda v: f"{v} anchors"),
    (lambda m: m.get("tokens"), lambda v: f"{v} tokens"),
)


def _fmt_num(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _item_name(item, index: int) -> str:
    """What a lag curve came from, for its legend entry: the run folder's name (given the folder or a
    JSON file inside one), else the JSON file's stem, else 'curve N' for a document passed as a dict."""
    if isinstance(item, dict):
        return f"curve {index + 1}"
    p = Path(item)
    if p.is_dir():
        return p.resolve().name
    parent = p.resolve().parent
    if (parent / "config.json").is_file() or (parent / "metrics.jsonl").is_file():
        return f"{parent.name}/{p.stem}"
    return p.stem


def _named_folder(item) -> Path:
    """The path whose name _item_name gives: the run folder of a JSON file inside one, else the input."""
    p = Path(item).resolve()
    if p.is_dir():
        return p
    parent = p.parent
    return parent if (parent / "config.json").is_file() or (parent / "metrics.jsonl").is_file() else p


def _read_path(item) -> Path:
    """The file a lag-curve input is read from: a run folder's jacobian.json, else the file itself."""
    p = Path(item).resolve()
    return p / "jacobian.json" if p.is_dir() else p


def item_names(items) -> list[str]:
    """_item_name of every input, told apart where two are the same: different inputs of one name (two run
    folders called t1 in different places) get their parent folders' names in front until they differ
    ('x/t1', 'runs/t1'); an input given again (the same file read twice) is called '<name>, again'."""
    names = [_item_name(d, i) for i, d in enumerate(items)]
    paths = [None if isinstance(d, dict) else _read_path(d) for d in items]
    folders = [None if isinstance(d, dict) else _named_folder(d) for d in items]
    for _ in range(8):
        groups = {}
        for i, n in enumerate(names):
            if paths[i] is not None:
                groups.setdefault(n, set()).add(paths[i])
        clash = {n for n, ps in groups.items() if len(ps) > 1}       # one name, different inputs
        if not clash:
            break
        for i, n in enumerate(names):
            if n in clash and paths[i] is not None:
                ahead = folders[i].parent
                if ahead == folders[i]:          # the file system's root: nothing more to put in front
                    continue
                names[i] = f"{ahead.name}/{n}"
                folders[i] = ahead
    seen = set()
    for i, p in enumerate(paths):
        if p is not None:
            if p in seen:
                names[i] += ", again"
            seen.add(p)
    return names


def lag_labels(docs: list[dict], names: list[str] | None = None) -> list[str]:
    """The default legend entries of lag curves, one per doc, each telling its curve apart: the model,
    clipping and step (_doc_label), then every setting of _LAG_EXTRAS whose value differs between the
    docs (H=32 / H=64; not on a curve that has no such setting, a GRU's forget bias), and where two
    entries are still the same, each one's name (`names`, e.g. the run folders'; default 'curve N')."""
    metas = [d.get("meta", {}) for d in docs]
    labels = [_doc_label(d) for d in docs]
    for get, fmt in _LAG_EXTRAS:
        values = [get(m) for m in metas]
        if len({repr(v) for v in values}) > 1:
            labels = [lab if v is None else f"{lab}, {fmt(v)}" for lab, v in zip(labels, values)]
    names = names if names is not None else [f"curve {i + 1}" for i in range(len(docs))]
    counts = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    return [f"{lab} ({name})" if counts[lab] > 1 else lab for lab, name in zip(labels, names)]


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


# ---------------------------------------------------------------- lag curves


def load_lag_doc(item) -> dict:
    """A lag_curve document from a dict, a JSON file, or a run folder's jacobian.json."""
    if isinstance(item, dict):
        doc = item
        where = "document"
    else:
        p = Path(item)
        if p.is_dir():
            p = p / "jacobian.json"
            if not p.exists():
                from .runs import CONFIG, not_a_run_folder
                if not (Path(item) / CONFIG).exists():         # a sweep's folder, a plots folder, ...
                    raise UserError(not_a_run_folder(item))
                raise UserError(f"{item} holds no jacobian.json; run '{command()} jacobian {item}' first "
                                "(or use --over-training for a run tracked with --track-jacobian-every)")
        if not p.is_file():
            raise UserError(f"no lag-curve JSON or run folder at {item}")
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read {p} as JSON ({exc}); plot lag reads a lag curve: a run folder's "
                            f"jacobian.json, or one written with '{command()} jacobian'") from None
        where = str(p)
        _clip_from_run(doc, p.parent)
    if not (isinstance(doc, dict) and isinstance(doc.get("curves"), dict) and isinstance(doc.get("meta"), dict)):
        raise UserError(f"{where} is not a lag curve (no 'meta' and 'curves'; "
                        f"write one with '{command()} jacobian')")
    return doc


def _clip_from_run(doc, folder: Path) -> None:
    """A trained model's lag curve that does not record its clipping (a sweep job's jacobian.json written
    before it did) gets it from the config.json of the run folder it sits in, when there is one."""
    meta = doc.get("meta") if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or meta.get("clip") or meta.get("source") == "init":
        return
    try:
        train = read_train_config(folder)
    except UserError:       # no run folder around it, or an unreadable config.json: nothing recorded
        return
    meta["clip"] = clip_label(train)


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


def default_quantity(cell: str | None, quantity: str = "auto") -> str:
    """'auto' is the main quantity of a cell: the full (h, c) state for the LSTM, h otherwise."""
    if quantity != "auto":
        return quantity
    return "state" if cell == "lstm" else "h"


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


def _huge_lag(doc: dict, scope: str, quantity: str, norm: str, flow: bool) -> int | None:
    """The first lag whose median is null (beyond float64's range, jacobian.py), or None."""
    sc = doc["curves"][scope]
    s = sc["flow"] if flow else sc[quantity]
    med = s["norm"]["median"] if flow else s[norm]["median"]
    return next((int(d) for d, m in zip(s["lag"], med) if m is None), None)


def _zero_mask(doc: dict, scope: str, quantity: str, norm: str, flow: bool) -> np.ndarray:
    """Per lag, whether the curve's median is 0 (exactly, or below float64's range; None is too large)."""
    sc = doc["curves"][scope]
    med = sc["flow"]["norm"]["median"] if flow else sc[quantity][norm]["median"]
    return np.array([m is not None and m == 0 for m in med], dtype=bool)


def _series(doc: dict, scope: str, quantity: str, norm: str, flow: bool):
    """(lags, median, p10, p90) of one curve of `doc`; UserError when it is not there."""
    curves = doc["curves"]
    if scope not in curves:
        raise UserError(f"no scope '{scope}' in the lag curve (has {', '.join(curves)})")
    sc = curves[scope]
    if flow:
        if "flow" not in sc:
            raise UserError(f"no gradient-flow curve in scope '{scope}'")
        s = sc["flow"]["norm"]
        lags = sc["flow"]["lag"]
    else:
        if quantity not in sc or quantity == "flow":
            have = [q for q in sc if q != "flow"]
            raise UserError(f"no quantity '{quantity}' for a {doc['meta'].get('cell')} "
                            f"(has {', '.join(have)})")
        if norm not in ("spectral", "frobenius"):
            raise UserError(f"--norm must be spectral or frobenius, got '{norm}'")
        s = sc[quantity][norm]
        lags = sc[quantity]["lag"]
    return np.asarray(lags), _positive(s["median"]), _positive(s["p10"]), _positive(s["p90"])


_QUANTITY_TEXT = {"h": "∂h(t)/∂h(t−d)", "c": "∂c(t)/∂c(t−d)", "state": "∂(h,c)(t)/∂(h,c)(t−d)"}
# What a legend entry's [h] / [state] tag says (draw_lag tags entries when --quantity auto picks per cell)
_QUANTITY_TAG_TEXT = {**_QUANTITY_TEXT, "state": _QUANTITY_TEXT["state"] + ", the lstm's whole state"}


def _what(quantities, norm: str, flow: bool, cells=()) -> str:
    """The y-axis quantity: one Jacobian per cell kind drawn (h for rnn/gru, (h,c) for the lstm)."""
    if flow:
        return "gradient flow ‖∂L(t)/∂h(t−d)‖"
    if isinstance(quantities, str):
        quantities = [quantities]
    qs = list(dict.fromkeys(quantities))
    if len(qs) == 1:
        return f"{_norm_name(norm)} norm of {_QUANTITY_TEXT.get(qs[0], qs[0])}"
    per = {}
    for q, c in zip(quantities, cells):
        per.setdefault(q, []).append(c)
    return f"{_norm_name(norm)} norm of " + " or ".join(
        f"{_QUANTITY_TEXT.get(q, q)} ({', '.join(dict.fromkeys(per.get(q, [])))})" for q in qs)


def _bound_values(meta: dict, scope: str, norm: str, lags):
    """(values, label) of the vanilla RNN's bound on the drawn norm, or None.

    Spectral: ‖∂h(t)/∂h(t−d)‖₂ ≤ (‖W_hh‖₂·max|f′|)^d (each factor diag(f′)·W_hh has ‖·‖₂ ≤ max|f′|·‖W_hh‖₂).
    Frobenius: ‖J‖_F ≤ √rank(J)·‖J‖₂ ≤ √H·(‖W_hh‖₂·max|f′|)^d, labelled as such.
    """
    if meta.get("cell") != "rnn" or not scope.startswith("layer"):
        return None
    per_step = (meta.get("bound_per_step") or [None] * 64)[int(scope[len("layer"):])]
    if per_step is None or not per_step > 0:
        return None
    logb = np.asarray(lags, dtype=np.float64) * math.log(per_step)
    if norm == "spectral":
        return logb, f"bound (‖W_hh‖·max|f′|)^d = {per_step:.3g}^d"
    H = meta.get("H")
    if not H:
        return None
    return logb + 0.5 * math.log(H), f"Frobenius bound √H·(‖W_hh‖·max|f′|)^d = √{H}·{per_step:.3g}^d"


def _text_name(text: str) -> str:
    """'machado:valid', 'random:50', or a file's name and split (not its whole path)."""
    source, sep, split = str(text).rpartition(":")
    return f"{Path(source).name}{sep}{split}" if sep and ("/" in source or "\\" in source) else str(text)


def _norm_name(norm: str) -> str:
    return "Frobenius" if norm == "frobenius" else norm


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


def draw_lag(docs: list, labels: list[str] | None = None, quantity: str = "auto", norm: str = "spectral",
             scope: str = "layer0", flow: bool = False, bound: bool = False, title: str | None = None):
    """The figure of `plot_lag`, unsaved: returns the matplotlib Figure (see plot_lag)."""
    # (log axes over norms near 1e308 overflow while autoscaling and ticking, before our limits hold)
    with np.errstate(over="ignore", under="ignore"):
        return _draw_lag(docs, labels, quantity, norm, scope, flow, bound, title)


def _draw_lag(docs, labels, quantity, norm, scope, flow, bound, title):
    names = item_names(docs)
    own_labels = labels
    docs = [load_lag_doc(d) for d in docs]
    if not docs:
        raise UserError("give at least one lag curve")
    if labels is not None and len(labels) != len(docs):
        raise UserError(f"{len(labels)} labels for {len(docs)} curves")
    if labels is None:
        labels = lag_labels(docs, names)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.6))
    quantities, cells, bounds, zero_notes, huge_notes = [], [], [], [], []
    tagged = quantity == "auto" and not flow and len(docs) > 1       # each entry says which Jacobian: [h]
    lo_data, hi_data = math.inf, -math.inf
    all_lags = []
    for i, doc in enumerate(docs):
        cell = doc["meta"].get("cell")
        q = default_quantity(cell, quantity)
        quantities.append(q)
        cells.append(cell or "?")
        lags, med, lo, hi = _series(doc, scope, q, norm, flow)
        with np.errstate(invalid="ignore"):
            seen = np.concatenate([med, lo, hi])
        if np.isfinite(seen).any():
            lo_data = min(lo_data, float(np.nanmin(seen)))
            hi_data = max(hi_data, float(np.nanmax(seen)))
        label = labels[i]
        if tagged:
            label += f" [{q}]"
        # (a long entry on two lines: on one it ran past the figure's edges, and tight_layout then
        # squeezed the axes to make room for it)
        line, = ax.plot(lags, med, marker="o", markersize=2.5, linewidth=1.5, label=_wrap_entry(label))
        ax.fill_between(lags, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
        all_lags.extend(np.asarray(lags).tolist())
        zero = _zero_mask(doc, scope, q, norm, flow)
        if _mark_zeros(ax, lags, zero, line.get_color(), None if zero_notes else ZERO_NOTE, len(zero_notes)):
            from .activations import zero_reason
            first = int(np.asarray(lags)[zero][0])
            who = f"{labels[i]}: " if len(docs) > 1 else ""
            why = zero_reason(cell, first, doc["meta"].get("norm_Whh"))
            zero_notes.append(f"{who}{why}" if zero[np.asarray(lags) >= first].all()
                              else f"{who}median 0 at {int(zero.sum())} of {len(zero)} lags")
        huge = _huge_lag(doc, scope, q, norm, flow)
        if huge is not None:
            who = f"{labels[i]}: " if len(docs) > 1 else ""
            huge_notes.append(f"{who}median beyond float64's range (over 1.8e308, written as null) from lag "
                              f"{huge}: not drawn")
        if bound and not flow:
            b = _bound_values(doc["meta"], scope, norm, lags)
            if b is not None:
                bounds.append((lags, b[0], b[1], line.get_color()))
    if not math.isfinite(hi_data) and not zero_notes:
        # (nothing positive and finite, and no zero to mark: the figure would be empty axes)
        raise UserError(f"nothing to draw: no median or band of {_what(quantities, norm, flow, cells)} in "
                        f"{scope} is a finite number above 0 (null: beyond float64's range)")
    notes = list(zero_notes) + huge_notes
    if bound and not flow and bounds and not math.isfinite(hi_data):
        notes.append("no bound drawn: no median is above 0, so there is no data range to draw it in")
    if bound and flow:
        notes.append("no bound drawn: the bound is on the Jacobian, not on the gradient flow")
    elif bound and len(bounds) < len(docs):
        others = [c for c, d in zip(cells, docs) if c != "rnn"]
        if others:
            notes.append(f"no bound drawn for {', '.join(dict.fromkeys(others))}: the bound is the vanilla RNN's")
    # Bounds grow as c^d and would reach 1e30 and squash the measured curves into a band:
    # what is drawn of them stops at the data's range (one decade of margin), and the legend says so.
    if bounds and math.isfinite(hi_data):
        # (in log space, within float64's range: hi_data·10 and its exp overflow near 1e308)
        top = min(math.log(hi_data) + math.log(10.0), _LN_MAX)
        bottom = max(math.log(lo_data) - math.log(10.0), _LN_MIN)
        for lags, logb, label, color in bounds:
            cut = logb > top
            below = logb < bottom
            x = np.asarray(lags, dtype=np.float64)
            drawn = np.where(cut | below, np.nan, np.exp(np.clip(logb, _LN_MIN, _LN_MAX)))
            exit_at = None
            if cut.any() and not cut[0]:
                # on to where it leaves the range (between two lags, the same dashes without a legend entry),
                # so that a bound cut after d = 1 is a visible segment and not one point of a dashed line
                j = int(np.argmax(cut))
                if not (cut[j - 1] or below[j - 1]):
                    exit_at = x[j - 1] + (top - logb[j - 1]) / (logb[j] - logb[j - 1]) * (x[j] - x[j - 1])
                    ax.plot([x[j - 1], exit_at], [drawn[j - 1], math.exp(top)], linestyle="--", linewidth=1,
                            color=color, label="_nolegend_")
            if cut.any() or below.any():
                ends = [f"{math.exp(logb[-1]) if logb[-1] < 700 else math.inf:.2g} at d = {lags[-1]}"]
                leaves = (f"leaves the plotted range at d = {exit_at:.{2 if exit_at < 10 else 3}g}; "
                          if exit_at is not None
                          else "above the plotted range from d = 1; " if cut[0] else "")
                label += f" (cut at the data's range: {leaves}it reaches {ends[0]})"
            ax.plot(lags, drawn, linestyle="--", linewidth=1, color=color, label=label)
    for note in notes:
        ax.plot([], [], " ", label=_wrap(note, NOTE_WIDTH))
    ax.set_yscale("log")
    if math.isfinite(hi_data):
        _log_ylim(ax, lo_data, hi_data, 1.2 if bounds else None)
    if all_lags and (not math.isfinite(hi_data) or huge_notes):
        # nothing drawable on the log scale (every median 0), or a tail beyond float64 (null, not drawn):
        # keep the x axis over the measured lags
        ax.set_xlim(min(all_lags) - 0.5, max(all_lags) + 0.5)
    _set_xlabel(ax, "lag d (time steps)")
    unit = "(nats per unit of state)" if flow else "(dimensionless)"
    ax.set_ylabel(_wrap(f"{_what(quantities, norm, flow, cells)} {unit}", 60), fontsize=8)
    if zero_notes and not math.isfinite(hi_data):
        _nothing_positive(ax)               # every median 0: the strip says it all, no arbitrary decades
    else:
        ax.axhline(1.0, color="gray", linewidth=0.8, linestyle=":")
    default = (f"{'Gradient flow' if flow else 'Jacobian ' + _norm_name(norm) + ' norm'} by lag, {scope} "
               f"(median over anchors, 10–90% band)")
    metas = [d["meta"] for d in docs]
    # The default legend entries name each curve's own settings (lag_labels): the subtitle then says only
    # what every curve shares, since 'init default / orthogonal' over three curves maps onto none of them.
    # Labels of the caller's own say nothing of the settings: the subtitle lists each curve's, in order.
    common_only = own_labels is None and len(docs) > 1
    behind = "median over " + _joined(
        f"{m.get('anchors', '?')} anchors × {m.get('tokens', '?')} tokens"
        + (f" of {_text_name(m['text'])}" if m.get("text") else "") for m in metas)
    seeds = [m.get("seed") for m in metas if m.get("seed") is not None]
    if seeds:
        behind += f", seed {_joined(seeds)}"
    if common_only:
        behind = _common_behind(metas)
    subtitle = settings_line(metas, [_doc_clip(m) for m in metas], behind, common_only=common_only)
    if common_only:
        subtitle += "; each curve's other settings in its legend entry"
    if tagged:
        # (a no-break space after the colon: the subtitle's wrapping never parts a tag from what it means)
        subtitle += "; " + ", ".join(f"[{q}]:\u00a0{_QUANTITY_TAG_TEXT.get(q, q)}" for q in dict.fromkeys(quantities))
    _set_title(ax, title or default, subtitle, width=95)
    ax.grid(True, which="major", alpha=0.3)
    _legend_below(ax)
    fig.tight_layout()
    fit_legends(fig)
    return fig


def _common_behind(metas: list[dict]) -> str:
    """What stands behind every curve of a lag figure, the settings they share only: 'median over 8 anchors ×
    1000 tokens of machado:valid, seed 0'; '' when they share none (the legend entries say each one's)."""
    def common(key):
        values = {repr(m.get(key)) for m in metas}
        return metas[0].get(key) if len(values) == 1 else None
    anchors, tokens, text, seed = common("anchors"), common("tokens"), common("text"), common("seed")
    head = " × ".join(p for p in (None if anchors is None else f"{anchors} anchors",
                                  None if tokens is None else f"{tokens} tokens") if p)
    out = f"median over {head}" if head else ""
    if text:
        out += (" of " if head else "on ") + _text_name(text)
    if seed is not None:
        out += (", " if out else "") + f"seed {seed}"
    return out


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


def plot_lag(docs: list, labels: list[str] | None, out, quantity: str = "auto", norm: str = "spectral",
             scope: str = "layer0", flow: bool = False, bound: bool = False, title: str | None = None) -> Path:
    """Log-scale Jacobian (or gradient-flow) norm against lag, one curve per document.

    docs: lag_curve dicts, or paths of JSON files / run folders holding them.
    labels: one legend entry per doc (None: cell, activation, init, scale, clipping from meta).
    quantity: h, c, state or "auto" (state for the LSTM, h otherwise, per doc).
    Each curve is the median over anchors with its 10-90% band shaded. bound
    adds, for vanilla-RNN docs, the dashed bound on the norm drawn: (||W_hh|| max|f'|)^d
    for the spectral norm, sqrt(H) times that for the Frobenius norm; none for the flow.
    What is drawn of a bound stops a decade beyond the data's range (the legend says so).
    Writes OUT.png and OUT.svg; returns the PNG path.
    """
    return _save(draw_lag(docs, labels, quantity=quantity, norm=norm, scope=scope, flow=flow, bound=bound,
                          title=title), out)
