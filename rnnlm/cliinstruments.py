"""The instruments' commands: `jacobian`, `plot`, `probe`, `gradcheck` and `demo`.

The one thing to know before editing: as in every command module, the
library (NumPy, Numba, matplotlib) is imported inside the `_run_` functions,
so that `--help` stays instant, and a user mistake is a UserError that
cli.main turns into one line.
"""
from __future__ import annotations

import sys

from . import config as C
from .cliflags import (_ACTIVATION_HELP, _RECURRENT_SCALE_HELP, _add_data_flags, _arg, _data_config, _fallback_note,
                       _is_run, _subcommands, check_checkpoint_flag, float_arg, training_now_note, unheard_stdout)
from .clisweep import _add_plot_study, _add_plot_sweep, _run_plot_study, _run_plot_sweep
from .errors import UserError
from .settings import default


def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck",
                       help="compare every hand-written gradient with finite differences (float64)")
    p.add_argument("--cell", choices=[*C.CELLS, "all"], default="all",
                   help="which cell to check (default all)")
    p.add_argument("--activation", default="tanh",
                   help=f"rnn activation: {C.ACTIVATION_FORMS}, or 'all' (one of each kind; default tanh)")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers (default 1)")
    p.add_argument("--tied", action="store_true", help="tie encoder and decoder weights (default: untied)")
    p.add_argument("--dropout", type=float_arg, default=0.0,
                   help="dropout probability, with one fixed mask (0 = none; default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model, data and masks (default 0)")
    return p


def _run_gradcheck(args):
    from .gradcheck import TOLERANCE, check_all, format_overall
    worst, unchecked, arrays = 0.0, 0, 0
    for rep in check_all(cell=args.cell, activation=args.activation, layers=args.layers, tied=args.tied,
                         dropout=args.dropout, seed=args.seed, progress=True):
        print("\n".join(rep.lines()), flush=True)
        worst, unchecked, arrays = max(worst, rep.max_error), unchecked + len(rep.unresolved), arrays + len(rep.errors)
    print(format_overall(worst, unchecked, arrays))
    return 0 if worst <= TOLERANCE else 1


def _add_probe(sub):
    p = sub.add_parser("probe", help="long-range dependency probes: subject agreement, context usage")
    psub = _subcommands(p, "probe_command", "ACTION")
    a = psub.add_parser("agreement", help="accuracy of agreeing vs wrong verb/adjective by subject distance")
    a.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    A, X = C.PROBE_DEFAULTS["agreement"], C.PROBE_DEFAULTS["context"]
    a.add_argument("--distances", default=A["distances"],
                   help=f"subject-to-target distances: 1..40, 1..40:5 or 1,2,5,10 (default {A['distances']})")
    a.add_argument("--n", type=int, default=A["n"],
                   help=f"pairs per distance, half with an attractor where one fits (default {A['n']})")
    a.add_argument("--feature", default="number", choices=["number", "gender"],
                   help="number: the finite verb; gender: the predicative after a copula")
    c = psub.add_parser("context", help="loss increase when context beyond d tokens is perturbed "
                                        "(Khandelwal et al. 2018)")
    c.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    c.add_argument("--split", default=X["split"], choices=C.SPLITS,
                   help=f"the run's corpus split to take targets from (default {X['split']})")
    c.add_argument("--distances", default=X["distances"],
                   help=f"context sizes d kept intact (default {X['distances']})")
    c.add_argument("--mode", default="shuffle", choices=["shuffle", "replace", "drop"],
                   help="what happens to the context farther than d: shuffled, random words, removed")
    c.add_argument("--n-targets", type=int, default=X["n_targets"],
                   help=f"target positions sampled (default {X['n_targets']})")
    c.add_argument("--window", type=int, default=X["window"],
                   help=f"tokens of context before each target, run from a zero state (default {X['window']})")
    for q, d, name in ((a, A, "probe-agreement-<feature>.json"), (c, X, "probe-context-<mode>.json")):
        q.add_argument("--seed", type=int, default=d["seed"], help="seed of the pairs / targets and perturbations")
        q.add_argument("--out", default=None, metavar="FILE.json",
                       help=f"where to write the JSON (default: {name} in the run folder)")
        q.add_argument("--checkpoint", default=None, choices=C.CHECKPOINTS,
                       help="best.npz (default) or model.npz of a run folder (not with a .npz file)")
        q.add_argument("--batch-size", type=int, default=256, help="sequences run in parallel (default 256)")
    return p


def _run_probe(args):
    from . import probereport, probes
    check_checkpoint_flag(args.run, args.checkpoint)
    common = dict(seed=args.seed, checkpoint=args.checkpoint or "best", batch_size=args.batch_size, out=args.out)
    if args.probe_command == "agreement":
        res, out = probes.run_agreement(args.run, distances=args.distances, n=args.n, feature=args.feature,
                                        **common)
        table = probereport.format_agreement
    else:
        res, out = probes.run_context(args.run, split=args.split, distances=args.distances, mode=args.mode,
                                      n_targets=args.n_targets, window=args.window, **common)
        table = probereport.format_context
    _say_fallback(args.run, args.checkpoint, res.get("checkpoint"), res.get("checkpoint_step"))
    return _print_saved(out, lambda: f"{table(res)}\nwrote {out}")


def _say_fallback(run, checkpoint, path, step=None) -> None:
    """jacobian's and probe's notes (stderr) when a run folder's latest model stood in for its best.npz, which
    it has none of yet (runs.load_model's fallback; evaluate and generate say it in their "checkpoint:" line),
    and when the run is being trained now (cliflags.training_now_note: the checkpoint of step `step`)."""
    if path and (note := _fallback_note(run, checkpoint or "best", path)):
        print(f"note: measured {path}{note}", file=sys.stderr)
    if path and (busy := training_now_note(run, path, step)) is not None:
        print(f"note: {busy}", file=sys.stderr)


def _print_saved(saved, text) -> int:
    """Print a command's report once its result is saved (jacobian, probe, demo): standard output failing
    then (a full disk, `> /dev/full`) loses only the report, so it is one warning naming where the result
    is, and status 0, as train's (cliflags.unheard_stdout). text: the report, or a function making it (so
    that its making counts as printing). A Ctrl-C or SIGTERM while it is made or printed says, in the CLI's
    one line, that the result is saved all the same."""
    try:
        with unheard_stdout(lambda: f"the result is saved in {saved}"):
            print(text() if callable(text) else text)
    except KeyboardInterrupt as exc:
        from .errors import Terminated
        word = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        exc.line = f"{word} while printing the report: the result is saved in {saved}"
        raise
    return 0


def _print_figure(png) -> int:
    """Say "wrote PNG (and .svg)" once a `plot` command's figure is saved: standard output failing then (a
    full disk, `> /dev/full`) loses only that line, so it is one warning naming the figure, and status 0
    (cliflags.unheard_stdout, as _print_saved)."""
    with unheard_stdout(lambda: f"the figure is saved in {png} (and .svg)"):
        print(f"wrote {png} (and .svg)")
    return 0


def _add_plot_probe(plot_sub):
    """The `plot probe` subaction; `plot_sub` is the `plot` command's subparsers."""
    q = plot_sub.add_parser("probe", help="agreement accuracy or context-loss increase vs distance")
    q.add_argument("inputs", nargs="+", metavar="RUN_OR_JSON",
                   help="run folders (their probe-<kind>*.json) or probe JSON files; one curve each (the files "
                        "of one run at disjoint distances, with the same settings: one curve)")
    q.add_argument("--kind", default="agreement", choices=["agreement", "context"],
                   help="which probe's files to take from run folders (default agreement)")
    q.add_argument("--out", default=None,
                   help="image file (default: RUN/plots/probe-<kind of the data>.png for a run folder or a JSON "
                        "in one, as every figure of a run; else runs/plots/<json name>-probe-<kind>.png; several "
                        "inputs: probe-compare-<their names>-<kind>.png there, with a hash when two names are "
                        "the same)")
    q.add_argument("--labels", default=None,
                   help="comma-separated legend labels, one per curve (per probe JSON, in the order given; "
                        "a run folder gives one per probe-<kind>*.json it holds, sorted by name, its files at "
                        "disjoint distances with the same settings one together)")
    q.add_argument("--title", default=None, help="figure title (default: says what is plotted)")
    return q


def _run_plot_probe(args):
    from .plotruns import plot_probe, probe_curves, read_probes
    from .probes import find_probe_results
    paths = find_probe_results(args.inputs, args.kind)
    kind, results = read_probes(paths)    # named after what the files hold, not after --kind
    labels = _labels(args.labels, len(probe_curves(results)), "probe result", files=len(paths))
    _note_repeated_inputs(args.inputs, lambda item: find_probe_results([item], args.kind))
    # RUN/plots/, as every figure of a run (earlier versions wrote RUN/probe-<kind>.png); several inputs:
    # probe-compare-..., apart from the first run's own figure (which it overwrote)
    out = args.out or figure_out(args.inputs, "probe", kind, stem_in_run=False)
    png = plot_probe(paths, out, title=args.title, labels=labels)
    _say_measurement_ages(paths)
    return _print_figure(png)


def _say_measurement_ages(files) -> None:
    """One note on stderr per measurement JSON (a lag curve, a probe result) older than the checkpoint it
    measured is now (measured.measurement_age_note: the run was resumed and trained since), each file once."""
    import sys
    from pathlib import Path

    from .measured import measurement_age_note
    seen = set()
    for f in files:
        if Path(f).resolve() in seen:
            continue
        seen.add(Path(f).resolve())
        note = measurement_age_note(f)
        if note:
            print(note, file=sys.stderr, flush=True)


def _add_jacobian(sub):
    p = sub.add_parser("jacobian", help="Jacobian norms by time lag and gradient flow (vanishing/exploding)",
                       description="Measure ||ds_t/ds_{t-d}|| (spectral and Frobenius) and ||dL_t/dh_{t-d}|| "
                                   "for d = 1..D at K anchor positions of a text read from a zero state; "
                                   "print a table, the decay rate per step and the vanish lag; write JSON.")
    J, M = C.JacobianConfig, C.ModelConfig
    p.add_argument("run", nargs="?", default=None, metavar="CHECKPOINT_OR_RUN",
                   help="a run folder (runs/NAME) or a checkpoint .npz; leave out with --init")
    _arg(p, J, "checkpoint", choices=C.CHECKPOINTS, unset=True,
         help="best.npz (default) or model.npz of a run folder (not with a .npz file)")
    src = p.add_mutually_exclusive_group()
    _arg(src, J, "text", metavar="FILE",
         help="measure on this text file, tokenized the run's way (default: the run's --split)")
    _arg(src, J, "split", choices=C.SPLITS,
         help="the corpus split whose first --tokens tokens are read (default {default})")
    _arg(p, J, "max_lag", help="largest lag D (default {default})")
    _arg(p, J, "anchors", help="anchor positions K sampled (default {default})")
    _arg(p, J, "tokens", help="tokens read from the start of the text; anchors fall in [D, N-1] (default {default})")
    _arg(p, J, "seed", help="anchors (and, with --init, the weights) (default {default})")
    _arg(p, J, "out", metavar="FILE.json",
         help="default: RUN/jacobian.json, CKPT-jacobian.json beside a checkpoint, or with --init "
              "runs/jacobian-init/<every setting>.json")
    m = p.add_argument_group("a freshly initialized model (--init)")
    _arg(m, M, "init", nargs="?", const=default(M, "init"), choices=C.INITS, unset=True,
         help="measure a new model with this initialization instead of a checkpoint "
              "(bare --init = {default}); tokens from --corpus's --split")
    # defaults None, so that one given without --init (where it would be ignored) is seen;
    # ModelConfig's defaults apply to the ones left out
    for name, text in _JACOBIAN_MODEL_FLAGS.items():
        _arg(m, M, name, unset=True, **({"choices": C.CELLS} if name == "cell" else {}), help=text)
    _arg(m, C.DataConfig, "corpus", unset=True,
         help="corpus whose --split feeds an --init model; 'none' = uniformly random tokens (also what is "
              "read, with a note, when this flag is not given and the default corpus is not found; a corpus "
              "named here must exist) (default {default})")
    _arg(m, J, "vocab_size", unset=True, help="vocabulary of the random tokens (default {default})")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (drawn on a terminal only, counting the lags measured)")
    _add_data_flags(p)
    return p


# the ModelConfig fields `jacobian --init` sets, and their help
_JACOBIAN_MODEL_FLAGS = {
    "cell": "default {default}",
    "activation": _ACTIVATION_HELP,
    "hidden": "hidden size H (default {default})",
    "emsize": "embedding size (default {default})",
    "layers": "stacked layers (default {default})",
    "recurrent_scale": _RECURRENT_SCALE_HELP,
    "forget_bias": "lstm: forget-gate bias at init (default {default:g})",
}


def _run_jacobian(args):
    from .jacobianrun import format_tables, run_jacobian
    model = {name: getattr(args, name) for name in _JACOBIAN_MODEL_FLAGS if getattr(args, name) is not None}
    if args.init is None:
        given = list(model) + [name for name in ("corpus", "vocab_size") if getattr(args, name) is not None]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            if args.run is None:        # no run to measure: the user meant a fresh model
                raise UserError(f"{flags}: settings of a fresh model; add --init to measure a fresh model "
                                f"with them, or give a run folder instead")
            raise UserError(f"{flags}: settings of a fresh model, used with --init only "
                            f"(a checkpoint's model and corpus come from the checkpoint); drop them")
    check_checkpoint_flag(args.run, args.checkpoint)
    settings = {k: getattr(args, k) for k in ("run", "checkpoint", "text", "split", "max_lag", "anchors",
                                              "tokens", "seed", "out")}
    settings["checkpoint"] = args.checkpoint or "best"
    if args.vocab_size is not None:
        settings["vocab_size"] = args.vocab_size
    config = C.JacobianConfig(model=None if args.init is None else C.ModelConfig(init=args.init, **model),
                              data=_data_config(args), **settings)
    # random tokens in place of a corpus only when none was named (nor a folder to find it in)
    doc, out = run_jacobian(config, corpus_fallback=args.corpus is None and args.corpora_dir is None,
                            progress=not args.no_progress)
    if args.run is not None:
        meta = doc.get("meta", {})
        _say_fallback(args.run, args.checkpoint, meta.get("source"), meta.get("checkpoint_step"))
    return _print_saved(out, lambda: format_tables(doc) + f"\nwrote {out}")     # every layer, then stacked


def _add_plot(sub):
    p = sub.add_parser("plot", help="figures (PNG and SVG): lag curves, training runs, probes")
    psub = _subcommands(p, "plot_command", "ACTION")
    lag = psub.add_parser("lag", help="Jacobian or gradient-flow norm against lag, log scale")
    lag.add_argument("inputs", nargs="+", metavar="RUN_OR_JSON",
                     help="jacobian JSON files or run folders (their jacobian.json); one curve each")
    lag.add_argument("--over-training", action="store_true",
                     help="one run folder: a curve per step recorded by train --track-jacobian-every")
    lag.add_argument("--norm", default="spectral", choices=["spectral", "frobenius"], help="default spectral")
    lag.add_argument("--quantity", default="auto", choices=["auto", "h", "c", "state"],
                     help="auto = state for lstm, h for rnn/gru (default auto)")
    lag.add_argument("--scope", default="layer0", help="layer0..layer<L-1> or stacked (default layer0)")
    lag.add_argument("--flow", action="store_true", help="plot the gradient flow ||dL_t/dh_{t-d}|| instead")
    lag.add_argument("--bound", action="store_true",
                     help="add the vanilla RNN's dashed bound on the norm drawn: (||W_hh|| max|f'|)^d "
                          "(spectral) or sqrt(H) times it (Frobenius); the Jacobian-norm view only, not with --flow")
    lag.add_argument("--labels", default=None, help="comma-separated legend labels, one per input")
    lag.add_argument("--out", default=None,
                     help="image file (default: RUN/plots/lag-....png for a run folder or a JSON in one, "
                          "else runs/plots/<json name>-lag-....png; several inputs: lag-compare-<their "
                          "names>-....png there, with a hash when two names are the same; with --bound the "
                          "name ends in -bound)")
    lag.add_argument("--title", default=None, help="figure title (default: says what is plotted)")
    tr = psub.add_parser("training", help="perplexity, gradient norm and clipping, learning rate, non-finite events")
    tr.add_argument("run", help="a run folder")
    tr.add_argument("--out", default=None, help="image file (default RUN/plots/training.png)")
    tr.add_argument("--title", default=None, help="figure title (default: names the model and clipping)")
    _add_plot_probe(psub)
    _add_plot_sweep(psub)
    _add_plot_study(psub)
    return p


def _run_plot(args):
    from pathlib import Path

    from . import plotlag, plotruns
    if args.plot_command == "study":
        return _run_plot_study(args)
    if args.plot_command == "probe":
        return _run_plot_probe(args)
    if args.plot_command == "sweep":
        return _run_plot_sweep(args)
    if args.plot_command == "training":
        run = Path(args.run)
        out = args.out or run / "plots" / "training.png"
        return _print_figure(plotruns.plot_training(run, out, title=args.title))
    first = Path(args.inputs[0])
    what = f"{'flow' if args.flow else args.quantity + '-' + args.norm}-{args.scope}"
    if args.over_training:
        if len(args.inputs) != 1 or not first.is_dir():
            raise UserError("--over-training takes one run folder")
        unused = [f for f, given in (("--bound", args.bound), ("--labels", args.labels is not None),
                                     (f"--scope {args.scope}", args.scope != "layer0")) if given]
        if unused:
            raise UserError(f"{' and '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply with "
                            f"--over-training (its curves are layer 0's, one per recorded step, labelled by the "
                            f"colour bar; the recorded steps keep no ||W_hh|| for a bound); drop "
                            f"{'it' if len(unused) == 1 else 'them'}")
        out = args.out or first / "plots" / f"lag-over-training-{what}.png"
        png = plotruns.plot_lag_over_training(first, out, quantity=args.quantity, norm=args.norm,
                                              title=args.title, flow=args.flow)
    else:
        if args.bound and args.flow:
            # (drawing none and writing the flow figure under its own name hid that --bound did nothing)
            raise UserError("--bound applies to the Jacobian-norm view only (it bounds ||dh_t/dh_{t-d}||; the "
                            "gradient flow ||dL_t/dh_{t-d}|| also scales with ||dL_t/dh_t||, which is not "
                            "recorded); drop --bound or --flow")
        labels = _labels(args.labels, len(args.inputs), "input")
        _note_repeated_inputs(args.inputs, lambda item: [Path(item) / "jacobian.json" if Path(item).is_dir()
                                                         else Path(item)])
        if args.bound:
            what += "-bound"
        out = args.out or figure_out(args.inputs, "lag", what, default_json="jacobian.json")
        png = plotlag.plot_lag(list(args.inputs), labels, out, quantity=args.quantity, norm=args.norm,
                               scope=args.scope, flow=args.flow, bound=args.bound, title=args.title)
        _say_measurement_ages([Path(i) / "jacobian.json" if Path(i).is_dir() else Path(i) for i in args.inputs])
    return _print_figure(png)


def _labels(given: str | None, curves: int, what: str, files: int | None = None) -> list[str] | None:
    """--labels split at its commas (None when not given); a UserError unless there is one per curve.
    files: how many `what` the curves are drawn from, where several can make one curve (plot probe)."""
    if given is None:
        return None
    labels = [s.strip() for s in given.split(",")]
    files = curves if files is None else files
    if len(labels) != curves or not all(labels):
        merged = "; the files of one run at disjoint distances make one curve" if files != curves else ""
        raise UserError(f"--labels gives {len(labels)} label{'s' if len(labels) != 1 else ''} "
                        f"{'(one empty) ' if not all(labels) else ''}for {curves} curve{'s' if curves != 1 else ''} "
                        f"({files} {what}{'s' if files != 1 else ''}{merged}); give one non-empty label per curve, "
                        f"separated by commas")
    return labels


def _note_repeated_inputs(inputs, read) -> None:
    """One line on stderr per input given more than once (a run folder and the JSON it holds count as one):
    its curve is drawn twice, on top of itself. read(input) -> the files it is drawn from."""
    import sys
    from pathlib import Path
    seen, said = {}, set()
    for item in inputs:
        for path in read(item):
            p = Path(path).resolve()
            if p not in seen:
                seen[p] = item
            elif (item, seen[p]) not in said:      # (a run folder given twice: one line, not one per file)
                said.add((item, seen[p]))
                print(f"note: {item} is the same input as {seen[p]}: "
                      f"{'its curves are' if len(read(item)) > 1 else 'its curve is'} drawn twice", file=sys.stderr)


def figure_out(inputs, prefix: str, what: str, stem_in_run: bool = True, default_json: str | None = None):
    """The default path of a figure (plot lag, plot probe) of `inputs`, beside the first one: in RUN/plots/ for
    a run folder or a JSON file in one, else in runs/plots/. One input: <prefix>-<what>.png for a run folder,
    <json stem>-<prefix>-<what>.png for a JSON file (in a run folder without the stem when not stem_in_run);
    several inputs: a comparison, <prefix>-compare-<compare_key>-<what>.png, named apart from the first
    input's own figure (which it overwrote). default_json: the name of the JSON a run folder stands for
    (jacobian.json for plot lag): given by name, it gets the folder's figure, not a second copy."""
    from pathlib import Path

    first = Path(inputs[0])
    stem = f"{prefix}-compare-{compare_key(inputs)}-{what}" if len(inputs) > 1 else None
    if first.is_dir():
        return first / "plots" / f"{stem or prefix + '-' + what}.png"
    if _is_run(first.parent):
        own = stem_in_run and first.name != default_json
        return first.parent / "plots" / f"{stem or (first.stem + '-' if own else '') + prefix + '-' + what}.png"
    return Path("runs") / "plots" / f"{stem or first.stem + '-' + prefix + '-' + what}.png"


def compare_key(inputs) -> str:
    """What names a comparison of several lag curves in its file name: the inputs' names (a run folder's,
    a JSON file's stem) joined by '+', e.g. 't1+r1'; when that is long, or when two names are the same
    (runs/t1 and x/t1, or one input given twice), the first name, how many more, and a short hash of all
    the inputs' paths, e.g. 't1+2-more-3f9a0c1d'. The same inputs give the same name, and different
    inputs different names."""
    import hashlib
    import re
    from pathlib import Path

    names = [re.sub(r"[^A-Za-z0-9._=-]+", "_", (Path(p).resolve().name if Path(p).is_dir() else Path(p).stem))
             or "input" for p in inputs]
    key = "+".join(names)
    if len(key) <= 40 and len(set(names)) == len(names):
        return key
    digest = hashlib.sha1("\0".join(str(Path(p).resolve()) for p in inputs).encode()).hexdigest()[:8]
    return f"{names[0][:30]}+{len(names) - 1}-more-{digest}"


def _add_demo(sub):
    p = sub.add_parser("demo", help="scripted demonstrations: gradients by lag, long-range agreement")
    dsub = _subcommands(p, "demo_command", "ACTION")
    g = dsub.add_parser("gradients", help="lag curves at init and after training, explosion and clipping, "
                                          "tanh(n*x) (a few minutes)")
    g.add_argument("--out", default=None, help="output folder (default runs/demo-gradients)")
    lr = dsub.add_parser("longrange", help="rnn vs lstm vs gru on sintetico: agreement and context probes, "
                                           "Jacobian curves, table")
    lr.add_argument("--out", default=None, help="output folder (default runs/demo-longrange)")
    lr.add_argument("--minutes", type=float_arg, default=3.0,
                    help="training minutes per model (default 3; 0.5 for a quick look, about 3.5 minutes in all on "
                         "2 cores, whose outcome depends on the steps the machine trains in that time)")
    lr.add_argument("--min-distance", type=int, default=1,
                    help="shortest subject-verb distance in the training corpus (default 1; e.g. 15 = long dependencies only)")
    lr.add_argument("--subject-relative-rate", type=float_arg, default=None,
                    help="share of the training corpus's relative clauses whose own verb restates the subject's number "
                         "(a shortcut to the agreement; default 0.25, sintetico's; 0 = none)")
    lr.add_argument("--omega", type=float_arg, default=None, help="weight of the Ω regularizer for the rnn-omega model (default 1)")
    g.add_argument("--quick", action="store_true",
                   help="tiny sizes, for tests and a first look (about a minute of CPU; 1-3 minutes of wall time on "
                        "2 cores)")
    lr.add_argument("--quick", action="store_true",
                    help="tiny sizes, a smoke test (seconds): 20 steps each, so every model stays at chance; for a "
                         "first look give --minutes 0.5")
    for q in (g, lr):
        q.add_argument("--seed", type=int, default=0, help="seed of models, data and probes (default 0)")
    return p


def _run_demo(args):
    from pathlib import Path

    if args.demo_command == "gradients":
        from .demogradients import run_gradients
        out = args.out or "runs/demo-gradients"
        s = run_gradients(out, quick=args.quick, seed=args.seed)
    else:
        from .demolongrange import run_longrange
        out = args.out or "runs/demo-longrange"
        s = run_longrange(out, minutes=args.minutes, quick=args.quick, seed=args.seed,
                          min_distance=args.min_distance, omega=args.omega,
                          subject_relative_rate=args.subject_relative_rate)
    return _print_saved(out, (Path(out) / "summary.md").read_text(encoding="utf-8")
                        + f"\nwrote {Path(out) / 'summary.md'}, {Path(out) / 'summary.json'} and the figures "
                          f"({s['wall_s']['total'] if isinstance(s['wall_s'], dict) else s['wall_s']:.0f} s)")
