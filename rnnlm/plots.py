"""Every figure of rnnlm: lag curves, lag curves over training, training runs, probes.

matplotlib is imported here only (inside `_pyplot`, with the Agg backend), so
that the rest of the package and `--help` never pay for it. Each public
function writes one figure as PNG and SVG side by side (same stem) and returns
the PNG path; each has a `draw_*` twin that returns the matplotlib Figure
unsaved (what the tests read labels, titles and legends from). Inputs are the
JSON documents other modules write: `lag_curve` dicts (jacobian.py), a run
folder's config.json and metrics.jsonl (train.py), probe results (probes.py).

The one thing to know before editing: norms in lag curves span hundreds of
orders of magnitude and may be 0.0 or null (outside float64, see jacobian.py);
`_positive` turns those into NaN so that log axes drop them instead of failing.
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

from .errors import UserError, plural
from .runs import fmt_ppl  # noqa: F401  (one format for perplexities, here and in reports)


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
        fig.savefig(png, dpi=150)
        fig.savefig(png.with_suffix(".svg"), metadata={"Date": None})
    plt.close(fig)
    return png


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
    """'rnn tanh, init orthogonal, W_hh x1.5' from a lag_curve meta or a run's train config."""
    parts = [cell_label(meta)]
    parts.append(f"init {meta.get('init') or '?'}")
    parts.append(f"W_hh x{_fmt_scale(meta.get('recurrent_scale'))}")
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


def settings_line(metas: list[dict], clips: list[str] | None = None, behind: str | None = None) -> str:
    """The subtitle every figure carries: cell and activation, init, recurrent scale, clipping, H, and
    what stands behind each point (`behind`: anchors, pairs or seeds). A setting shared by every
    curve is written once; one that differs lists each curve's value, in legend order, joined by ' / '.
    metas: lag_curve metas or flattened train configs; clips: each one's clipping (default clip_label)."""
    if not metas:
        return behind or ""
    clips = clips if clips is not None else [clip_label(m) for m in metas]
    parts = [f"cell {_joined(cell_label(m) for m in metas)}",
             f"init {_joined(m.get('init') or '?' for m in metas)}",
             f"W_hh ×{_joined(_fmt_scale(m.get('recurrent_scale')) for m in metas)}",
             _joined(clips)]
    omegas = [m.get("omega") or 0 for m in metas]
    if any(omegas):
        parts.append(f"Ω α={_joined(f'{o:g}' for o in omegas)}")
    hs = [m.get("H", m.get("hidden")) for m in metas]
    if any(h is not None for h in hs):
        parts.append(f"H={_joined('?' if h is None else h for h in hs)}")
    if behind:
        parts.append(behind)
    return "; ".join(parts)


def _wrap(text: str, width: int = 100) -> str:
    import textwrap
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


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
                raise UserError(f"{item} holds no jacobian.json; run 'python cli.py jacobian {item}' first "
                                "(or use --over-training for a run tracked with --track-jacobian-every)")
        if not p.is_file():
            raise UserError(f"no lag-curve JSON or run folder at {item}")
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read {p} as JSON ({exc})") from None
        where = str(p)
    if not (isinstance(doc, dict) and isinstance(doc.get("curves"), dict) and isinstance(doc.get("meta"), dict)):
        raise UserError(f"{where} is not a lag curve (no 'meta' and 'curves'; "
                        "write one with 'python cli.py jacobian')")
    return doc


def default_quantity(cell: str | None, quantity: str = "auto") -> str:
    """'auto' is the main quantity of a cell: the full (h, c) state for the LSTM, h otherwise."""
    if quantity != "auto":
        return quantity
    return "state" if cell == "lstm" else "h"


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
    """The legend under the axes, below their x tick labels and label; tight_layout makes room for it.
    Call it once the x ticks and label are set (their height decides the offset, in points). kw: more
    arguments of Axes.legend (a title, another fontsize)."""
    from matplotlib.transforms import offset_copy
    fig = ax.figure
    below = ax.bbox.y0 - ax.xaxis.get_tightbbox(fig.canvas.get_renderer()).y0   # pixels under the axes
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
    names = [_item_name(d, i) for i, d in enumerate(docs)]
    docs = [load_lag_doc(d) for d in docs]
    if not docs:
        raise UserError("give at least one lag curve")
    if labels is not None and len(labels) != len(docs):
        raise UserError(f"{len(labels)} labels for {len(docs)} curves")
    if labels is None:
        labels = lag_labels(docs, names)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.6))
    quantities, cells, bounds = [], [], []
    lo_data, hi_data = math.inf, -math.inf
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
        if quantity == "auto" and not flow and len(docs) > 1:
            label += f" [{q}]"
        line, = ax.plot(lags, med, marker="o", markersize=2.5, linewidth=1.5, label=label)
        ax.fill_between(lags, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
        if bound and not flow:
            b = _bound_values(doc["meta"], scope, norm, lags)
            if b is not None:
                bounds.append((lags, b[0], b[1], line.get_color()))
    notes = []
    if bound and flow:
        notes.append("no bound drawn: the bound is on the Jacobian, not on the gradient flow")
    elif bound and len(bounds) < len(docs):
        others = [c for c, d in zip(cells, docs) if c != "rnn"]
        if others:
            notes.append(f"no bound drawn for {', '.join(dict.fromkeys(others))}: the bound is the vanilla RNN's")
    # Bounds grow as c^d and would reach 1e30 and squash the measured curves into a band:
    # what is drawn of them stops at the data's range (one decade of margin), and the legend says so.
    if bounds and math.isfinite(hi_data):
        top = math.log(hi_data) + math.log(10.0)
        bottom = math.log(lo_data) - math.log(10.0)
        for lags, logb, label, color in bounds:
            cut = logb > top
            below = logb < bottom
            drawn = np.where(cut | below, np.nan, np.exp(np.clip(logb, -700, 700)))
            if cut.any() or below.any():
                ends = [f"{math.exp(logb[-1]) if logb[-1] < 700 else math.inf:.2g} at d = {lags[-1]}"]
                label += f" (cut at the data's range; it reaches {ends[0]})"
            ax.plot(lags, drawn, linestyle="--", linewidth=1, color=color, label=label)
        ax.set_ylim(lo_data / 10 ** 1.2, hi_data * 10 ** 1.2)
    for note in notes:
        ax.plot([], [], " ", label=note)
    ax.set_yscale("log")
    ax.set_xlabel("lag d (time steps)")
    unit = "(nats per unit of state)" if flow else "(dimensionless)"
    ax.set_ylabel(_wrap(f"{_what(quantities, norm, flow, cells)} {unit}", 60), fontsize=8)
    ax.axhline(1.0, color="gray", linewidth=0.8, linestyle=":")
    default = (f"{'Gradient flow' if flow else 'Jacobian ' + _norm_name(norm) + ' norm'} by lag, {scope} "
               f"(median over anchors, 10–90% band)")
    metas = [d["meta"] for d in docs]
    behind = "median over " + _joined(
        f"{m.get('anchors', '?')} anchors × {m.get('tokens', '?')} tokens"
        + (f" of {_text_name(m['text'])}" if m.get("text") else "") for m in metas)
    seeds = [m.get("seed") for m in metas if m.get("seed") is not None]
    if seeds:
        behind += f", seed {_joined(seeds)}"
    _set_title(ax, title or default, settings_line(metas, [_doc_clip(m) for m in metas], behind), width=95)
    ax.grid(True, which="major", alpha=0.3)
    _legend_below(ax)
    fig.tight_layout()
    return fig


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


# ---------------------------------------------------------------- run folders


def read_metrics(run_dir) -> list[dict]:
    """The events of a run's metrics.jsonl (lines cut by a crash are skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no metrics.jsonl)")
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():    # a damaged byte: that line
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def read_train_config(run_dir) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.json)")
    try:
        train = json.loads(path.read_text(encoding="utf-8")).get("train", {})
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    return {**train.get("model", {}), **train}   # the model settings flat, in either config format


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
    for e in events:
        doc = {"meta": {"cell": cfg.get("cell")}, "curves": e["curves"]}
        lags, med, _, _ = _series(doc, "layer0", q, norm, flow)
        ax.plot(lags, med, color=cmap(cnorm(e["step"])), linewidth=1.2)
    sm = mpl.cm.ScalarMappable(norm=cnorm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label="training step (updates)")
    ax.set_yscale("log")
    ax.axhline(1.0, color="gray", linewidth=0.8, linestyle=":")
    ax.set_xlabel("lag d (time steps)")
    ax.set_ylabel(f"median {_what(q, norm, flow)} (dimensionless)", fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.plot([], [], color="black", label=run_label(cfg))
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


def draw_training(run_dir, title: str | None = None):
    """The figure of `plot_training`, unsaved: returns the matplotlib Figure."""
    events = read_metrics(run_dir)
    cfg = read_train_config(run_dir)
    steps = [e for e in events if e.get("type") == "step"]
    evals = [e for e in events if e.get("type") == "eval" and e.get("split") == "valid"]
    timed = [e for e in events if e.get("type") == "timed_eval"]
    bad = [e for e in events if e.get("type") == "nonfinite"]
    if not steps and not evals and not timed:
        raise UserError(f"{run_dir} has no step or eval events to plot")
    plt = _pyplot()
    fig, (a_ppl, a_g, a_lr) = plt.subplots(3, 1, figsize=(7.5, 8.3), sharex=True)

    # Cross-entropy rather than perplexity on the axis: a diverging run's perplexity overflows
    # float64 (e^710) long before its loss stops being plottable.
    x = [e["step"] for e in steps]
    a_ppl.plot(x, _positive([e.get("loss_avg") for e in steps]), linewidth=1,
               label="train (mean over the log interval)")
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
    a_ppl.yaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
    a_ppl.yaxis.set_minor_formatter(mticker.FormatStrFormatter("%g"))
    a_ppl.set_ylabel("cross-entropy (nats/token;\nperplexity = e^loss)")

    a_g.plot(x, _positive([e.get("grad_norm") for e in steps]), linewidth=1, label="gradient L2 norm before clipping")
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
    a_g.set_ylabel("gradient norm (L2, all parameters)")

    lr_x, lr_y, at_evals = lr_schedule(events, cfg.get("lr"))
    a_lr.plot(lr_x, lr_y, linewidth=1, drawstyle="steps-post",
              label="learning rate" + (" (changes at the validation that annealed it)" if at_evals else ""))
    a_lr.set_ylabel("learning rate")
    a_lr.set_yscale("log")
    a_lr.yaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
    a_lr.yaxis.set_minor_formatter(mticker.NullFormatter())
    a_lr.set_yticks(sorted({v for v in lr_y if v}) or [1.0])
    a_lr.set_xlabel("training step (updates)")

    for e in bad:
        for ax in (a_ppl, a_g, a_lr):
            ax.axvline(e["step"], color="black", linestyle=":", linewidth=1)
        a_ppl.annotate(f"non-finite {e.get('tensor')} ({e.get('action')})", (e["step"], 1),
                       xycoords=("data", "axes fraction"), xytext=(-3, -12), textcoords="offset points",
                       fontsize=7, ha="right")
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
    return fig


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


def draw_probe(json_paths, title=None):
    """The figure of `plot_probe`, unsaved: returns the matplotlib Figure."""
    plt = _pyplot()
    kind, results = read_probes(json_paths)

    # What tells the curves apart besides cell and run: the context mode or the agreement feature.
    variant = "feature" if kind == "agreement" else "mode"
    show_variant = len({r.get(variant) for _, r in results}) > 1
    fig, ax = plt.subplots(figsize=(7.5, 5.4))
    for path, r in results:
        run = Path(r.get("run") or path.parent).name
        label = f"{r.get('cell') or '?'} ({run}{', ' + str(r.get(variant)) if show_variant else ''})"
        if kind == "agreement":
            bins = r["by_distance"]
            x = [b["distance"] for b in bins]
            y = [b["accuracy"] for b in bins]
            lo = [b["ci"][0] for b in bins]
            hi = [b["ci"][1] for b in bins]
        else:
            rows = r["results"]
            x = [q["distance"] for q in rows]
            y = [q["mean_increase"] for q in rows]
            lo = [q["ci"][0] for q in rows]
            hi = [q["ci"][1] for q in rows]
        if kind == "context":
            ec = r.get("effective_context")
            label += f"; effective context {ec if ec is not None else '> ' + str(max(x))}"
        line, = ax.plot(x, y, marker="o", markersize=3, label=label)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        if kind == "context" and r.get("effective_context") is not None:
            ax.axvline(r["effective_context"], color=line.get_color(), linestyle=":", linewidth=1)
    if kind == "context" and any(r.get("effective_context") is not None for _, r in results):
        # the dotted lines are explained in the legend too: a caller's own title may not say what they are
        ax.plot([], [], color="gray", linestyle=":", linewidth=1,
                label="dotted: effective context (the d from which the increase is within noise)")
    first = results[0][1]
    seeds = _joined(r.get("seed", "?") for _, r in results)
    if kind == "agreement":
        ax.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance (0.5)")
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("distance from subject head to the agreeing word (tokens)")
        ax.set_ylabel("accuracy (correct form more likely)")
        default = f"Portuguese {first.get('feature', 'number')} agreement by distance (95% Wilson band)"
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
        default = (f"Context usage: context beyond d {done.get(first.get('mode'), first.get('mode'))} "
                   "(95% bootstrap band; dotted: effective context)")
        behind = (f"{_joined(r.get('n_targets', '?') for _, r in results)} targets, "
                  f"window {_joined(r.get('window', '?') for _, r in results)}, probe seed {seeds}")
    models = [_probe_model(p, r) for p, r in results]
    _set_title(ax, title or default, settings_line(models, [m.get("clip") or "?" for m in models], behind),
               width=95)
    ax.grid(True, alpha=0.3)
    _legend_below(ax, ncol=2 if len(results) > 3 else 1)
    fig.tight_layout()
    return fig


def plot_probe(json_paths, out, title=None):
    """Agreement accuracy or context-loss increase against distance, one curve per probe JSON.

    json_paths: files written by `probe agreement` or `probe context` (all of
    one kind). Agreement: accuracy with its Wilson 95% band and a chance line
    at 0.5. Context: mean loss increase with its bootstrap 95% band, a zero
    line, log-scaled d, and a dotted mark at each curve's effective context.
    Curves are labelled by cell and run. Writes OUT.png and OUT.svg; returns the PNG path.
    """
    return _save(draw_probe(json_paths, title=title), out)


# ---------------------------------------------------------------- demo figures


def draw_explosion(run_a: Path, run_b: Path, title: str):
    """The figure of `plot_explosion`, unsaved: returns the matplotlib Figure."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4))
    cfgs = []
    for run, color in ((run_a, "tab:red"), (run_b, "tab:blue")):
        ev = read_metrics(run)
        cfg = read_train_config(run)
        cfgs.append(cfg)
        label = clip_label(cfg)
        st = [e for e in ev if e["type"] == "step"]
        x = [e["step"] for e in st]
        ax1.plot(x, [np.nan if e["loss"] is None else e["loss"] for e in st], color=color, label=label, lw=1.2)
        ax2.plot(x, [np.nan if e["grad_norm"] is None else e["grad_norm"] for e in st], color=color, label=label,
                 lw=1.2)
        if cfg.get("clip_norm"):
            ax2.axhline(cfg["clip_norm"], color=color, ls="--", lw=1,
                        label=f"clip threshold {cfg['clip_norm']:g} (norms above it were rescaled to it)")
        for e in ev:
            if e["type"] == "nonfinite":
                for ax in (ax1, ax2):
                    ax.axvline(e["step"], color=color, ls=":", lw=1)
                ax1.plot([e["step"]], [ax1.get_ylim()[1]], "x", color=color, ms=9,
                         label=f"non-finite {e['tensor']} at step {e['step']}")
    ax1.set_xlabel("step (updates)")
    ax1.set_ylabel("training loss (nats/token)")
    ax2.set_xlabel("step (updates)")
    ax2.set_ylabel("gradient L2 norm before clipping")
    ax2.set_yscale("log")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        _legend_above(ax)
    behind = f"one run each, seed {_joined(c.get('seed', '?') for c in cfgs)}"
    _set_title(fig, title, _run_settings(cfgs[0], behind).replace(
        clip_label(cfgs[0]), _joined(clip_label(c) for c in cfgs)), width=130, size=11)
    fig.tight_layout()
    return fig


def plot_explosion(run_a: Path, run_b: Path, out: Path, title: str) -> Path:
    """Training loss and gradient norm of two runs against step (a line at the clip threshold);
    non-finite events marked with x."""
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
    for cell, ls, marker, color, shift in (("lstm", "--", "s", "tab:purple", 0.94), ("gru", "-.", "^", "tab:brown", 1.06)):
        f = results.get(cell, {}).get("factor_per_step")
        if f is not None:
            ax.axhline(f, ls=ls, color=color, lw=1.2, alpha=0.8)
            ax.plot([g * shift for g in gains], [f] * len(gains), ls="none", marker=marker, color=color, ms=7,
                    mfc="none", label=f"{cell}, W_hh ×1 (no such bound; drawn across): {f:.3g} per step")
    ax.axhline(1.0, color="black", lw=0.8, ls=":")
    ax.plot(gains, gains, color="black", lw=0.8, ls="--", label="the bound ‖W_hh‖·max|f′|")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
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


def plot_factor_summary(results: dict, activations, gains, out: Path, note: str | None = None,
                        behind: str | None = None) -> Path:
    """exp(decay rate) per step against ||W_hh||·max|f'| per activation; lstm/gru as horizontal lines.

    results: demo gradients' init study, keyed rnn-<label>-x<scale>, lstm, gru, each with
    "gain" (rnn only) and "factor_per_step"; activations: their labels; gains: the bound values.
    note: the whole subtitle, replacing the default (cells and activations, init, scales, no clipping);
    behind: added to the default, what stands behind each point (H, anchors, tokens, seed).
    """
    return _save(draw_factor_summary(results, activations, gains, note, behind), out)
