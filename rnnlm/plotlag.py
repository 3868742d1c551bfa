"""The lag-curve figure: `plot_lag` / `draw_lag`, its legend entries, and how it reads a lag curve.

`draw_lag` draws one curve per `lag_curve` document (jacobian.py), given as a
dict, a JSON file or a run folder holding jacobian.json (`load_lag_doc`, which
fills in a run's clipping from its config.json when the document lacks it):
the median Jacobian (or gradient-flow) norm against lag on log axes, its
10-90% band shaded, optionally the vanilla RNN's bound (`_bound_values`);
`plot_lag` saves it as PNG and SVG through plots._save. Each curve's default
legend entry is `lag_labels` (model, clipping, step, then the settings that
differ between the curves), told apart by the inputs' names (`item_names`).
`_series`, `_zero_mask`, `_what` and `default_quantity` read one curve of a
document; plotruns.py's lag-over-training figure reads its curves with them.
How the figure looks (labels, subtitle, legends, the zero strip, log limits,
saving) is plots.py's.

    fig = draw_lag(["runs/a", "runs/b/jacobian.json"], None, bound=True)
    plot_lag([doc], ["my rnn"], "runs/a/plots/lag", flow=True)   # lag.png + lag.svg

The one thing to know before editing: norms span hundreds of orders of
magnitude and may be 0.0 or null (beyond float64, jacobian.py): `_series`
turns them into NaN (plots._positive) so the log axes drop them, and
`_zero_mask` / `_huge_lag` find the lags that were 0 or null so that the figure
says so (the zero strip, a legend note) instead of dropping them silently. A
bound never stretches the axis beyond the data: what is drawn of it stops a
decade beyond the data's range and the legend says where. matplotlib comes
through plots._pyplot inside draw_lag, never at module level; figures are saved
through the `_save` imported here, so a test that replaces `plots._save` to
catch the figures must replace this module's `_save` too.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import UserError, command, is_json_number as _is_number, json_kind
from .plots import (_LN_MAX, _LN_MIN, NOTE_WIDTH, ZERO_NOTE, _joined, _legend_below, _log_ylim, _mark_zeros,
                    _nothing_positive, _positive, _pyplot, _save, _set_title, _set_xlabel, _wrap, _wrap_entry,
                    clip_label, curve_style, fit_legends, model_label, read_train_config, settings_line)


# ---------------------------------------------------------------- legend entries


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
    (lambda m: _trained_by(m), lambda v: v),
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



# ---------------------------------------------------------------- reading a lag curve


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
    problem = curves_problem(doc["curves"])
    if problem is not None:
        run = _named_folder(item) if not isinstance(item, dict) else None
        again = f"{command()} jacobian {run}" if run is not None and run.is_dir() else f"{command()} jacobian"
        raise UserError(f"{where} is not a lag curve rnnlm wrote: {problem}; measure it again with '{again}'")
    return doc


_STATS = ("median", "p10", "p90")        # the statistics of a SUMMARY that the figures draw


def curves_problem(curves) -> str | None:
    """What is wrong with a lag curve's "curves" (damaged or edited by hand), in words naming the series
    ('layer0/h has no lag list'), or None: every series it holds has a list of whole lags and
    median, p10 and p90 lists as long, each value a number or null (jacobian.py's SERIES and FLOW)."""
    if not isinstance(curves, dict):
        return "its curves are not an object"
    for scope, sc in curves.items():
        if not isinstance(sc, dict):
            return f"{scope} is not an object of curves"
        for q, series in sc.items():
            if not isinstance(series, dict):
                return f"{scope}/{q} is not a curve"
            norms = ("norm",) if q == "flow" else ("spectral", "frobenius")
            present = [n for n in norms if n in series]
            lags = series.get("lag")
            if not isinstance(lags, list):
                return f"{scope}/{q} has no lag list" + (f" (its lag is {json_kind(lags)})" if "lag" in series else "")
            odd = [d for d in lags if not (_is_number(d) and float(d).is_integer() and d >= 1)]
            if odd:     # lags count steps back from t: 1, 2, ... (jacobian.py's SERIES)
                return f"{scope}/{q} has a lag {json.dumps(odd[0])[:40]} that is not a whole number from 1 on"
            if not present:
                return f"{scope}/{q} has no {' or '.join(norms)} statistics"
            for n in present:
                summary = series[n]
                if not isinstance(summary, dict):
                    return f"{scope}/{q}/{n} is not an object of statistics"
                for stat in _STATS:
                    values = summary.get(stat)
                    if not isinstance(values, list):
                        return f"{scope}/{q}/{n} has no {stat} list"
                    if len(values) != len(lags):
                        return f"{scope}/{q}/{n} has {len(values)} {stat} values for {len(lags)} lags"
                    bad = [v for v in values if v is not None and not (_is_number(v) and not v < 0)]
                    if bad:     # a norm is never negative
                        return (f"{scope}/{q}/{n} has a {stat} value {json.dumps(bad[0])[:40]} that is not a "
                                f"norm (a number from 0 on) or null")
    return None


def _clip_from_run(doc, folder: Path) -> None:
    """A trained model's lag curve that does not record its clipping or optimizer (a sweep job's jacobian.json
    written before it did) gets them from the config.json of the run folder it sits in, when there is one."""
    meta = doc.get("meta") if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or (meta.get("clip") and meta.get("optimizer")) or meta.get("source") == "init":
        return
    try:
        train = read_train_config(folder)
    except UserError:       # no run folder around it, or an unreadable config.json: nothing recorded
        return
    meta["clip"] = meta.get("clip") or clip_label(train)
    if not meta.get("optimizer") and train.get("optimizer"):
        meta.update(optimizer=train["optimizer"], lr=train.get("lr"))


def default_quantity(cell: str | None, quantity: str = "auto") -> str:
    """'auto' is the main quantity of a cell: the full (h, c) state for the LSTM, h otherwise."""
    if quantity != "auto":
        return quantity
    return "state" if cell == "lstm" else "h"


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
        if norm not in sc[quantity]:
            raise UserError(f"no {norm} norm for '{quantity}' in scope '{scope}' "
                            f"(has {', '.join(n for n in ('spectral', 'frobenius') if n in sc[quantity])})")
        s = sc[quantity][norm]
        lags = sc[quantity]["lag"]
    return np.asarray(lags), _positive(s["median"]), _positive(s["p10"]), _positive(s["p90"])


_QUANTITY_TEXT = {"h": "∂h(t)/∂h(t−d)", "c": "∂c(t)/∂c(t−d)", "state": "∂(h,c)(t)/∂(h,c)(t−d)"}
# What a legend entry's [h] / [state] tag says (draw_lag tags entries when --quantity auto picks per cell)
_QUANTITY_TAG_TEXT = {**_QUANTITY_TEXT, "state": _QUANTITY_TEXT["state"] + ", the lstm's whole state"}


def _whole_lag_ticks(ax) -> None:
    """Ticks of a lag axis at whole lags only (a lag is a number of time steps: no 2.5, 7.5)."""
    import matplotlib.ticker as mticker
    ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True, steps=[1, 2, 5, 10]))


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


def _shared_bounds(bounds: list, labels: list[str]) -> list:
    """The bounds of a comparison, (lags, log values, label, colour) each, those that are the same line drawn
    and listed once: two vanilla RNNs whose bound is 1^d gave two identical legend entries for one visible
    line. A bound shared by several curves is drawn in gray, its entry naming the curves it bounds.
    bounds: (lags, log values, label, colour, curve index) per curve with a bound; labels: the curves'."""
    groups = []
    for lags, logb, label, color, i in bounds:
        for g in groups:
            if g[2] == label and np.array_equal(g[0], lags) and np.allclose(g[1], logb, rtol=1e-12, atol=0):
                g[4].append(i)
                break
        else:
            groups.append((lags, logb, label, color, [i]))
    out = []
    for lags, logb, label, color, who in groups:
        if len(who) > 1:
            names = [labels[i] for i in who]
            label = f"{label}, for {', '.join(names[:-1])} and {names[-1]}"
            color = "dimgray"
        out.append((lags, logb, label, color))
    return out


def identity_norm(hs, quantities, norm: str, flow: bool):
    """(value, legend entry or None) of the reference line of a lag figure, the norm of ∂h(t)/∂h(t−d) when
    nothing vanishes or explodes (the identity), or None where no such line means anything.

    Spectral: 1, unlabelled (the axis's edge between vanishing and explosion). Frobenius: the identity's is
    √n, n the dimension of the state measured (H; 2H for the lstm's (h,c)), drawn when every curve shares
    it and labelled so (a line at 1 there read as the edge, and is none). Gradient flow (nats per unit of
    state, not a ratio of states): no line. hs: each curve's H (None: unknown); quantities: each one's."""
    if flow:
        return None
    if norm == "spectral":
        return 1.0, None
    dims = {None if not h else int(h) * (2 if q == "state" else 1) for h, q in zip(hs, quantities)}
    if len(dims) != 1 or None in dims:
        return None
    n = dims.pop()
    return math.sqrt(n), f"√{n} = {math.sqrt(n):.3g}: the identity's Frobenius norm (state dimension {n})"


def draw_identity_norm(ax, hs, quantities, norm: str, flow: bool) -> None:
    """The reference line of identity_norm on `ax`, if there is one."""
    ref = identity_norm(hs, quantities, norm, flow)
    if ref is None:
        return
    value, label = ref
    lo, hi = ax.get_ylim()
    if label and not lo <= value <= hi:     # (the limits hold the data: a listed line the reader cannot find)
        label += f" (off the plotted range, {'above' if value > hi else 'below'} it)"
    ax.axhline(value, color="gray", linewidth=0.8, linestyle=":", label=label or "_nolegend_")


def _text_name(text: str) -> str:
    """'machado:valid', 'random:50', or a file's name and split (not its whole path)."""
    source, sep, split = str(text).rpartition(":")
    return f"{Path(source).name}{sep}{split}" if sep and ("/" in source or "\\" in source) else str(text)


def _norm_name(norm: str) -> str:
    return "Frobenius" if norm == "frobenius" else norm



# ---------------------------------------------------------------- the figure


def draw_lag(docs: list, labels: list[str] | None = None, quantity: str = "auto", norm: str = "spectral",
             scope: str = "layer0", flow: bool = False, bound: bool = False, title: str | None = None):
    """The figure of `plot_lag`, unsaved: returns the matplotlib Figure (see plot_lag)."""
    # (log axes over norms near 1e308 overflow while autoscaling and ticking, before our limits hold)
    with np.errstate(over="ignore", under="ignore"):
        return _draw_lag(docs, labels, quantity, norm, scope, flow, bound, title)


class _Drawn(NamedTuple):
    """What _draw_curves drew: one entry per curve (quantities, cells), the bounds to draw, the notes, and
    the data's range (lo, hi: the smallest and largest finite median or band value; ±inf when none)."""
    quantities: list        # the Jacobian drawn per curve: h, c or state
    cells: list             # each curve's cell, "?" when its file does not say
    bounds: list            # (lags, (log bound, label), colour, curve index) per curve with a bound
    zero_notes: list        # a legend note per curve whose median is 0 at some lags
    huge_notes: list        # a legend note per curve whose median is beyond float64's range at some lags
    lo: float
    hi: float
    lags: list              # every lag drawn, all curves together


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
    tagged = quantity == "auto" and not flow and len(docs) > 1       # each entry says which Jacobian: [h]
    drawn = _draw_curves(ax, docs, labels, quantity, norm, scope, flow, bound, tagged)
    quantities, cells, lo_data, hi_data = drawn.quantities, drawn.cells, drawn.lo, drawn.hi
    if not math.isfinite(hi_data) and not drawn.zero_notes:
        # (nothing positive and finite, and no zero to mark: the figure would be empty axes)
        raise UserError(f"nothing to draw: no median or band of {_what(quantities, norm, flow, cells)} in "
                        f"{scope} is a finite number above 0 (null: beyond float64's range)")
    notes = list(drawn.zero_notes) + drawn.huge_notes
    if bound and not flow and drawn.bounds and not math.isfinite(hi_data):
        notes.append("no bound drawn: no median is above 0, so there is no data range to draw it in")
    if bound and flow:
        notes.append("no bound drawn: the bound is on the Jacobian, not on the gradient flow")
    elif bound and len(drawn.bounds) < len(docs):
        others = [c for c, d in zip(cells, docs) if c != "rnn"]
        if others:
            notes.append(f"no bound drawn for {', '.join(dict.fromkeys(others))}: the bound is the vanilla RNN's")
    bounds = _shared_bounds(drawn.bounds, labels)
    if bounds and math.isfinite(hi_data):
        _draw_bounds(ax, bounds, lo_data, hi_data)
    for note in notes:
        ax.plot([], [], " ", label=_wrap(note, NOTE_WIDTH))
    ax.set_yscale("log")
    if math.isfinite(hi_data):
        _log_ylim(ax, lo_data, hi_data, 1.2 if bounds else None)
    if drawn.lags and (not math.isfinite(hi_data) or drawn.huge_notes):
        # nothing drawable on the log scale (every median 0), or a tail beyond float64 (null, not drawn):
        # keep the x axis over the measured lags
        ax.set_xlim(min(drawn.lags) - 0.5, max(drawn.lags) + 0.5)
    _set_xlabel(ax, "lag d (time steps)")
    _whole_lag_ticks(ax)
    unit = "(nats per unit of state)" if flow else "(dimensionless)"
    ax.set_ylabel(_wrap(f"{_what(quantities, norm, flow, cells)} {unit}", 60), fontsize=8)
    if drawn.zero_notes and not math.isfinite(hi_data):
        _nothing_positive(ax)               # every median 0: the strip says it all, no arbitrary decades
    else:
        draw_identity_norm(ax, [m.get("H") for m in (d["meta"] for d in docs)], quantities, norm, flow)
    default = (f"{'Gradient flow' if flow else 'Jacobian ' + _norm_name(norm) + ' norm'} by lag, {scope} "
               f"(median over anchors, 10–90% band)")
    subtitle = _lag_subtitle([d["meta"] for d in docs], own_labels, quantities, tagged)
    _set_title(ax, title or default, subtitle, width=95)
    ax.grid(True, which="major", alpha=0.3)
    _legend_below(ax)
    fig.tight_layout()
    fit_legends(fig)
    return fig


def _draw_curves(ax, docs, labels, quantity, norm, scope, flow, bound, tagged) -> _Drawn:
    """Each lag document's median curve and 10-90% band on ax, its zeros marked; returns what was drawn and
    what is left to draw (the bounds) or say (the notes)."""
    quantities, cells, bounds, zero_notes, huge_notes = [], [], [], [], []
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
        line, = ax.plot(lags, med, marker="o", markersize=2.5, label=_wrap_entry(label), **curve_style(i, len(docs)))
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
                bounds.append((lags, b[0], b[1], line.get_color(), i))
    return _Drawn(quantities, cells, bounds, zero_notes, huge_notes, lo_data, hi_data, all_lags)


def _draw_bounds(ax, bounds, lo_data: float, hi_data: float) -> None:
    """The dashed bounds (_shared_bounds' (lags, log bound, label, colour)), drawn within the data's range.

    Bounds grow as c^d and would reach 1e30 and squash the measured curves into a band: what is drawn of
    them stops at the data's range (one decade of margin), and the legend entry says where and how far."""
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


def _lag_subtitle(metas: list[dict], own_labels, quantities: list, tagged: bool) -> str:
    """The lag figure's subtitle: the settings, what the medians are over, the optimizer, the [q] tags."""
    # The default legend entries name each curve's own settings (lag_labels): the subtitle then says only
    # what every curve shares, since 'init default / orthogonal' over three curves maps onto none of them.
    # Labels of the caller's own say nothing of the settings: the subtitle lists each curve's, in order.
    common_only = own_labels is None and len(metas) > 1
    behind = "median over " + _joined(
        f"{m.get('anchors', '?')} anchors × {m.get('tokens', '?')} tokens"
        + (f" of {_text_name(m['text'])}" if m.get("text") else "") for m in metas)
    seeds = [m.get("seed") for m in metas if m.get("seed") is not None]
    if seeds:
        behind += f", seed {_joined(seeds)}"
    if common_only:
        behind = _common_behind(metas)
    trained_by = _optimizers(metas, own_labels, common_only)
    if trained_by:
        behind = f"{trained_by}; {behind}" if behind else trained_by
    subtitle = settings_line(metas, [_doc_clip(m) for m in metas], behind, common_only=common_only)
    if common_only:
        subtitle += "; each curve's other settings in its legend entry"
    if tagged:
        # (a no-break space after the colon: the subtitle's wrapping never parts a tag from what it means)
        subtitle += "; " + ", ".join(f"[{q}]:\u00a0{_QUANTITY_TAG_TEXT.get(q, q)}" for q in dict.fromkeys(quantities))
    return subtitle


def _trained_by(meta: dict) -> str | None:
    """What trained a curve's model, 'adam lr 0.002 at start', from the optimizer and lr a trained model's lag
    curve records (the jacobian command and the demos write them); None when it records none (a curve at
    init, or a file written before they were recorded)."""
    if not meta.get("optimizer"):
        return None
    lr = meta.get("lr")
    return f"{meta['optimizer']}" + (f" lr {lr:g} at start" if isinstance(lr, (int, float)) else "")


def _optimizers(metas: list[dict], own_labels=None, common_only: bool = False) -> str:
    """The subtitle's optimizer: what trained the curves' models when one optimizer and lr trained every
    curve that states one ('sgd lr 5 at start'); '' when none states one. Where they differ, the default
    legend entries name each curve's (lag_labels; common_only: ''), else each is written with the label of
    its curve ('sgd lr 20 at start (a) / sgd lr 5 at start (b)'): 'sgd lr 20 / 5' read as belonging to no
    curve in particular."""
    said = [_trained_by(m) for m in metas]
    distinct = list(dict.fromkeys(t for t in said if t))
    if len(distinct) <= 1:
        return distinct[0] if distinct and not (common_only and None in said) else ""
    if common_only or own_labels is None:
        return ""
    return " / ".join(f"{t} ({label})" for t, label in zip(said, own_labels) if t)


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
