"""Every figure of rnnlm: lag curves, lag curves over training, training runs, probes.

matplotlib is imported here only (inside `_pyplot`, with the Agg backend), so
that the rest of the package and `--help` never pay for it. Each public
function writes one figure as PNG and SVG side by side (same stem) and returns
the PNG path. Inputs are the JSON documents other modules write: `lag_curve`
dicts (jacobian.py), a run folder's config.json and metrics.jsonl (train.py),
probe results (probes.py).

The one thing to know before editing: norms in lag curves span hundreds of
orders of magnitude and may be 0.0 or null (outside float64, see jacobian.py);
`_positive` turns those into NaN so that log axes drop them instead of failing.
Every label, legend and title names what a curve is (cell, activation, init,
recurrent scale, clipping) so a figure read alone is not ambiguous.
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


def _save(fig, out) -> Path:
    """Write `fig` as OUT.png and OUT.svg; returns the PNG path."""
    plt = _pyplot()
    out = Path(out)
    # "lag.png", "lag.svg" and "lag" all mean lag.png + lag.svg; "x1.5" is not a suffix to replace.
    png = out.with_suffix(".png") if out.suffix.lower() in (".png", ".svg") else out.with_name(out.name + ".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    with np.errstate(over="ignore"):   # log axes over norms near 1e308 overflow while ticking; harmless
        fig.savefig(png, dpi=150)
        fig.savefig(png.with_suffix(".svg"))
    plt.close(fig)
    return png


def _positive(values) -> np.ndarray:
    """Floats for a log axis: None, 0 and non-finite become NaN (not drawn)."""
    a = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    a[~(np.isfinite(a) & (a > 0))] = np.nan
    return a


# ---------------------------------------------------------------- labels


def _fmt_scale(x) -> str:
    return "?" if x is None else f"{float(x):g}"


def model_label(meta: dict) -> str:
    """'rnn tanh, init orthogonal, W_hh x1.5' from a lag_curve meta or a run's train config."""
    cell = meta.get("cell") or "?"
    parts = [cell + (f" {meta.get('activation')}" if cell == "rnn" and meta.get("activation") else "")]
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


def _what(quantity: str, norm: str, flow: bool) -> str:
    if flow:
        return "gradient flow ‖∂L_t/∂h_{t−d}‖"
    q = {"h": "∂h_t/∂h_{t−d}", "c": "∂c_t/∂c_{t−d}", "state": "∂(h,c)_t/∂(h,c)_{t−d}"}.get(quantity, quantity)
    return f"{norm} norm of {q}"


def plot_lag(docs: list, labels: list[str] | None, out, quantity: str = "auto", norm: str = "spectral",
             scope: str = "layer0", flow: bool = False, bound: bool = False, title: str | None = None) -> Path:
    """Log-scale Jacobian (or gradient-flow) norm against lag, one curve per document.

    docs: lag_curve dicts, or paths of JSON files / run folders holding them.
    labels: one legend entry per doc (None: cell, activation, init, scale, clipping from meta).
    quantity: h, c, state or "auto" (state for the LSTM, h otherwise, per doc).
    Each curve is the median over anchors with its 10-90% band shaded. bound
    adds, for vanilla-RNN docs, the dashed (||W_hh|| max|f'|)^d upper bound.
    Writes OUT.png and OUT.svg; returns the PNG path.
    """
    docs = [load_lag_doc(d) for d in docs]
    if not docs:
        raise UserError("give at least one lag curve")
    if labels is not None and len(labels) != len(docs):
        raise UserError(f"{len(labels)} labels for {len(docs)} curves")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    quantities = set()
    for i, doc in enumerate(docs):
        q = default_quantity(doc["meta"].get("cell"), quantity)
        quantities.add(q)
        lags, med, lo, hi = _series(doc, scope, q, norm, flow)
        label = labels[i] if labels is not None else _doc_label(doc)
        if quantity == "auto" and not flow and len(docs) > 1:
            label += f" [{q}]"
        line, = ax.plot(lags, med, marker="o", markersize=2.5, linewidth=1.5, label=label)
        ax.fill_between(lags, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
        if bound and not flow and doc["meta"].get("cell") == "rnn" and scope.startswith("layer"):
            per_step = (doc["meta"].get("bound_per_step") or [None])[int(scope[len("layer"):])]
            if per_step is not None and per_step > 0:
                b = np.exp(lags * math.log(per_step))
                ax.plot(lags, _positive(b), linestyle="--", linewidth=1, color=line.get_color(),
                        label=f"bound (‖W_hh‖·max|f′|)^d = {per_step:.3g}^d")
    ax.set_yscale("log")
    ax.set_xlabel("lag d (time steps)")
    unit = "(nats per unit of state)" if flow else "(dimensionless)"
    ax.set_ylabel(f"{_what(next(iter(quantities)) if len(quantities) == 1 else 'state', norm, flow)} {unit}",
                  fontsize=8)
    ax.axhline(1.0, color="gray", linewidth=0.8, linestyle=":")
    default = (f"{'Gradient flow' if flow else 'Jacobian ' + norm + ' norm'} by lag, {scope} "
               f"(median over anchors, 10–90% band)")
    ax.set_title(title or default, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


# ---------------------------------------------------------------- run folders


def read_metrics(run_dir) -> list[dict]:
    """The events of a run's metrics.jsonl (lines cut by a crash are skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no metrics.jsonl)")
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
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
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    return {**train.get("model", {}), **train}   # the model settings flat, in either config format


def run_label(train_cfg: dict) -> str:
    return f"{model_label(train_cfg)}, {clip_label(train_cfg)}, {train_cfg.get('optimizer', '?')}"


def plot_lag_over_training(run_dir, out, quantity: str = "auto", norm: str = "spectral",
                           title: str | None = None, flow: bool = False) -> Path:
    """Median lag curve at every step recorded by `train --track-jacobian-every`, coloured by step."""
    events = [e for e in read_metrics(run_dir) if e.get("type") == "jacobian"]
    if not events:
        raise UserError(f"{run_dir} has no jacobian events; train with --track-jacobian-every N")
    cfg = read_train_config(run_dir)
    q = default_quantity(cfg.get("cell"), quantity)
    plt = _pyplot()
    import matplotlib as mpl
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
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
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title or f"{'Gradient flow' if flow else 'Jacobian ' + norm + ' norm'} by lag during "
                          f"training ({len(events)} recordings)", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def plot_training(run_dir, out, title: str | None = None) -> Path:
    """Loss (perplexity), gradient norm (with clipping) and learning rate against step, non-finite events marked."""
    events = read_metrics(run_dir)
    cfg = read_train_config(run_dir)
    steps = [e for e in events if e.get("type") == "step"]
    evals = [e for e in events if e.get("type") == "eval" and e.get("split") == "valid"]
    bad = [e for e in events if e.get("type") == "nonfinite"]
    if not steps and not evals:
        raise UserError(f"{run_dir} has no step or eval events to plot")
    plt = _pyplot()
    fig, (a_ppl, a_g, a_lr) = plt.subplots(3, 1, figsize=(7.5, 8), sharex=True)

    # Cross-entropy rather than perplexity on the axis: a diverging run's perplexity overflows
    # float64 (e^710) long before its loss stops being plottable.
    x = [e["step"] for e in steps]
    a_ppl.plot(x, _positive([e.get("loss_avg") for e in steps]), linewidth=1,
               label="train (mean over the log interval)")
    if evals:
        last = evals[-1].get("val_ppl")
        a_ppl.plot([e["step"] for e in evals], _positive([e.get("val_loss") for e in evals]),
                   marker="o", markersize=3,
                   label=f"validation (last perplexity {last:.1f})" if last is not None else "validation")
    a_ppl.set_yscale("log")
    a_ppl.set_ylabel("cross-entropy (nats/token;\nperplexity = e^loss)")

    a_g.plot(x, _positive([e.get("grad_norm") for e in steps]), linewidth=1, label="gradient L2 norm before clipping")
    clipped = [e for e in steps if e.get("clipped")]
    if clipped:
        a_g.scatter([e["step"] for e in clipped], _positive([e.get("grad_norm") for e in clipped]),
                    s=8, color="tab:red", zorder=3, label=f"clipped steps ({len(clipped)} of {len(steps)} logged)")
    if cfg.get("clip_norm"):
        a_g.axhline(cfg["clip_norm"], color="tab:red", linestyle="--", linewidth=1,
                    label=f"clip threshold {cfg['clip_norm']:g}")
    a_g.set_yscale("log")
    a_g.set_ylabel("gradient norm (L2, all parameters)")

    a_lr.plot(x, [e.get("lr") for e in steps], linewidth=1, drawstyle="steps-post", label="learning rate")
    a_lr.set_ylabel("learning rate")
    a_lr.set_yscale("log")
    a_lr.set_xlabel("training step (updates)")

    for e in bad:
        for ax in (a_ppl, a_g, a_lr):
            ax.axvline(e["step"], color="black", linestyle=":", linewidth=1)
        a_ppl.annotate(f"non-finite {e.get('tensor')} ({e.get('action')})", (e["step"], 1),
                       xycoords=("data", "axes fraction"), xytext=(-3, -12), textcoords="offset points",
                       fontsize=7, ha="right")
    for ax in (a_ppl, a_g, a_lr):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title or f"Training: {run_label(cfg)}", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


# ---------------------------------------------------------------- probes


def plot_probe(json_paths, out, title=None):
    """Agreement accuracy or context-loss increase against distance, one curve per probe JSON.

    json_paths: files written by `probe agreement` or `probe context` (all of
    one kind). Agreement: accuracy with its Wilson 95% band and a chance line
    at 0.5. Context: mean loss increase with its bootstrap 95% band, a zero
    line, log-scaled d, and a dotted mark at each curve's effective context.
    Curves are labelled by cell and run. Writes OUT.png and OUT.svg; returns the PNG path.
    """
    plt = _pyplot()
    results = []
    for p in json_paths:
        try:
            results.append((Path(p), json.loads(Path(p).read_text(encoding="utf-8"))))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read probe results {p}: {exc}") from None
    kinds = {r.get("probe") for _, r in results}
    if not results or len(kinds) != 1 or kinds - {"agreement", "context"}:
        raise UserError(f"give probe JSON files of one kind (agreement or context); got {sorted(map(str, kinds))}")
    kind = kinds.pop()

    # What tells the curves apart besides cell and run: the context mode or the agreement feature.
    variant = "feature" if kind == "agreement" else "mode"
    show_variant = len({r.get(variant) for _, r in results}) > 1
    fig, ax = plt.subplots(figsize=(7, 4.2))
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
        line, = ax.plot(x, y, marker="o", markersize=3, label=label)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        if kind == "context" and r.get("effective_context") is not None:
            ax.axvline(r["effective_context"], color=line.get_color(), linestyle=":", linewidth=1)
    first = results[0][1]
    if kind == "agreement":
        ax.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance (0.5)")
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("distance from subject head to the agreeing word (tokens)")
        ax.set_ylabel("accuracy (correct form more likely)")
        default = f"Portuguese {first.get('feature', 'number')} agreement by distance (95% Wilson band)"
    else:
        ax.axhline(0.0, color="gray", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("context kept intact, d (tokens before the target)")
        ax.set_ylabel("loss increase at the target (nats)")
        done = {"shuffle": "shuffled", "replace": "replaced by random words", "drop": "dropped"}
        default = (f"Context usage: context beyond d {done.get(first.get('mode'), first.get('mode'))} "
                   "(95% bootstrap band; dotted: effective context)")
    ax.set_title(title or default, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


# ---------------------------------------------------------------- demo figures


def plot_explosion(run_a: Path, run_b: Path, out: Path, title: str) -> Path:
    """Training loss and gradient norm of two runs against step; non-finite events marked with x."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for run, color in ((run_a, "tab:red"), (run_b, "tab:blue")):
        ev = read_metrics(run)
        cfg = read_train_config(run)
        label = f"clip-norm {cfg['clip_norm']:g}" if cfg.get("clip_norm") else "no clipping"
        st = [e for e in ev if e["type"] == "step"]
        x = [e["step"] for e in st]
        ax1.plot(x, [np.nan if e["loss"] is None else e["loss"] for e in st], color=color, label=label, lw=1.2)
        ax2.plot(x, [np.nan if e["grad_norm"] is None else e["grad_norm"] for e in st], color=color, label=label,
                 lw=1.2)
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
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def plot_factor_summary(results: dict, activations, gains, out: Path) -> Path:
    """exp(decay rate) per step against ||W_hh||·max|f'| per activation; lstm/gru as horizontal lines.

    results: demo gradients' init study, keyed rnn-<label>-x<scale>, lstm, gru, each with
    "gain" (rnn only) and "factor_per_step"; activations: their labels; gains: the bound values.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label in activations:
        pts = sorted((r["gain"], r["factor_per_step"]) for k, r in results.items()
                     if k.startswith(f"rnn-{label}-") and r["factor_per_step"] is not None)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"rnn {label}")
    for cell, ls in (("lstm", "--"), ("gru", "-.")):
        if results.get(cell, {}).get("factor_per_step") is not None:
            ax.axhline(results[cell]["factor_per_step"], ls=ls, color="gray", label=f"{cell} (orthogonal)")
    ax.axhline(1.0, color="black", lw=0.8, ls=":")
    ax.plot(gains, gains, color="black", lw=0.8, ls="--", label="the bound ‖W_hh‖·max|f′|")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("‖W_hh‖ · max|f′|  (the per-step bound)")
    ax.set_ylabel("measured factor per step, exp(decay rate)")
    ax.set_title("At initialization: how fast the Jacobian norm shrinks or grows per step", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)
