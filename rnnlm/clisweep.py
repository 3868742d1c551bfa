"""The `sweep` and `study` commands (and `plot sweep`, `plot study`): their flags and what they run.

A `sweep run` takes every `train` flag as a list of values (`_train_flag_actions`
reads them from the train parser itself, so a new train flag is a sweep axis
at once); `_sweep_grid` turns them into the grid sweepgrid.py expands.

The one thing to know before editing: the scheduler and the folder are
checked (sweepcluster.check_scheduler, sweeprecord.check_folder) before anything is
printed or written, so that a refused sweep leaves nothing behind; the
record (sweeprecord.check_recorded) and whether the scheduler answers
(sweepcluster.check_reachable) before the first line, so that a refusal is the
command's only line.
"""
from __future__ import annotations

import argparse
import sys

from . import config as C
from .cliflags import _Parser, _arg, _subcommands, float_arg, unheard_stdout
from .clitrain import _add_train
from .errors import UserError, and_list, finished, plural
from .settings import default


# Train flags that a sweep does not take per point: its own --out, no --resume, no inner bars.
_SWEEP_SKIP = {"help", "out", "resume", "progress"}


def _list_type(one, choices, flag):
    """argparse type of a grid flag: a comma-separated list of values of the train flag's own type.

    A piece that does not start with a letter joins the one before it when the
    flag takes text, so "scaled-tanh:1.7159,0.6667" stays one activation.
    """
    def parse(text):
        pieces = []
        for piece in str(text).split(","):
            if pieces and one is str and piece[:1] and not piece[:1].isalpha():
                pieces[-1] += "," + piece
            else:
                pieces.append(piece)
        values = []
        for piece in pieces:
            piece = piece.strip()
            where = f" (item {len(values) + 1} of the list '{text}')" if len(pieces) > 1 else ""
            try:
                v = one(piece) if one is not None else piece
            except argparse.ArgumentTypeError as exc:
                msg = str(exc) if f"'{piece}'" in str(exc) else f"'{piece}': {exc}"
                raise argparse.ArgumentTypeError(msg + where) from None
            except (TypeError, ValueError):
                kind = {int: "a whole number", float: "a number", float_arg: "a number"}.get(
                    one, f"a valid {flag} value")
                raise argparse.ArgumentTypeError(f"'{piece}' is not {kind}{where}") from None
            if choices is not None and v not in choices:
                raise argparse.ArgumentTypeError(f"'{v}' is not one of {', '.join(map(str, choices))}{where}")
            values.append(v)
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        return values
    return parse


def _train_flag_actions():
    """The `train` command's flags, as argparse actions grouped by title (read from _add_train); the ones
    train declares outside a group (--corpus) join its corpus group, where a reader of the help looks."""
    scratch = _Parser(add_help=False)
    tp = _add_train(scratch.add_subparsers(parser_class=_Parser))
    groups = [(g.title, [a for a in g._group_actions if a.dest not in _SWEEP_SKIP]) for g in tp._action_groups]
    loose = [a for title, actions in groups if title in ("positional arguments", "options") for a in actions]
    groups = [(title, actions) for title, actions in groups if title not in ("positional arguments", "options")]
    at = next((i for i, (title, _) in enumerate(groups) if title.startswith("corpus")), 0)
    groups[at] = (groups[at][0], loose + groups[at][1])
    return groups


def _sweep_help(action) -> str:
    """A train flag's help as `sweep run` shows it: the default a sweep's jobs use where it differs from
    train's (sweepgrid.SWEEP_DEFAULTS: --sample-words 0), not train's."""
    import re

    from .sweepgrid import SWEEP_DEFAULTS
    if action.dest not in SWEEP_DEFAULTS or action.help is None:
        return action.help
    said = f"(default {SWEEP_DEFAULTS[action.dest]} in a sweep)"
    return re.sub(r"\(default [^)]*\)", said, action.help) if "(default " in action.help else f"{action.help} {said}"


def _add_sweep(sub):
    p = sub.add_parser("sweep", help="grids of trainings in parallel on Dask: 'sweep run', 'sweep summarize'",
                       description="'sweep run' trains every point of a grid on Dask workers (a local cluster "
                                   "of one-thread worker processes, or --scheduler) and records one row per "
                                   "job in OUT/sweep.jsonl; rerunning it skips finished jobs. "
                                   "'sweep summarize OUT' prints the table.")
    ssub = _subcommands(p, "sweep_command", "ACTION")
    run = ssub.add_parser("run", help="run a grid of trainings (train flags take comma-separated lists)",
                          description="Every train flag takes a comma-separated list here; the grid is the "
                                      "product of the lists (e.g. --cell rnn,lstm,gru --recurrent-scale 0.5,1,2 "
                                      "--seeds 3 is 27 jobs). Each point is validated before anything runs.")
    for title, actions in _train_flag_actions():
        g = run.add_argument_group(f"{title} (lists: one grid axis each)")
        for a in actions:
            if a.nargs == 0:        # store_true / store_false: one value for the whole grid
                g.add_argument(*a.option_strings, dest=a.dest, action=type(a), default=None, help=a.help)
                continue
            g.add_argument(*a.option_strings, dest=a.dest, default=None, metavar="V[,V...]", help=_sweep_help(a),
                           type=_list_type(a.type, a.choices, a.option_strings[0]))
    s = run.add_argument_group("sweep")
    s.add_argument("--grid", default=None, metavar="FILE",
                   help="a JSON (or, on Python >= 3.11, TOML) grid: {setting: value or list, seeds: N, "
                        "measure: [...]}; flags given here override its keys")
    s.add_argument("--seeds", type=int, default=None, metavar="N", help="seeds 0..N-1 (an axis)")
    s.add_argument("--measure", default=None, metavar="M[,M...]",
                   help="measure each trained model: lag (Jacobian lag curve, D=30, 8 anchors, on validation "
                        "text), agreement (the subject-verb agreement probe of `probe agreement`, distances "
                        "1..25:4, 40 pairs each, from the grammar's words in the job's vocabulary: any corpus, "
                        "'not applicable' where the vocabulary holds too few)")
    s.add_argument("--keep-models", action="store_true", default=None,
                   help="bring back model.npz and best.npz of every job (default: config, metrics and vocab only)")
    s.add_argument("--out", default=None, help="sweep folder (default runs/sweep-<date>-<time>); rerun with "
                                               "the same --out to resume")
    s.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                   help="send the jobs to this running Dask scheduler (default: a local cluster; "
                        "'serial' = in this process, one job after another)")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local cluster (default: one per core); with a tcp:// --scheduler, "
                        "the workers to wait for before the jobs are sent; not with --scheduler serial")
    s.add_argument("--retries", type=int, default=2,
                   help="times a job whose worker died is rerun on another one (default 2)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar or per-job lines")
    summ = ssub.add_parser("summarize", help="print the table of a sweep folder")
    summ.add_argument("sweep", help="a sweep folder (holding sweep.jsonl)")
    return p


def _same_values(in_grid, flag, as_set: bool = False) -> bool:
    """Whether a grid file's value and a flag's give the same setting: a value alone is a list of one (8 and
    [8], true and [true]); a comma-separated string is its list ("lag,agreement"); as_set: in any order,
    each value counted once (the measurements to take: "lag,lag" is "lag")."""
    def values(v):
        v = [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v
        return list(v) if isinstance(v, (list, tuple)) else [v]
    a, b = values(in_grid), values(flag)
    if as_set:
        return all(x in b for x in a) and all(x in a for x in b)
    return a == b


def _sweep_grid(args) -> dict:
    """The grid dict of `sweep run`: the grid file's keys, then the flags given (lists), --seeds, --measure."""
    from . import sweepgrid
    grid = sweepgrid.read_grid_file(args.grid) if args.grid else {}
    overridden = []
    for _, actions in _train_flag_actions():
        for a in actions:
            v = getattr(args, a.dest, None)
            if v is not None:
                if a.dest in grid and not _same_values(grid[a.dest], v):    # (the same value: no note)
                    overridden.append(a.option_strings[0])
                grid[a.dest] = v
    if args.seeds is not None:
        if grid.get("seeds", args.seeds) != args.seeds:
            overridden.append("--seeds")
        grid["seeds"] = args.seeds
    if args.measure is not None:
        from .sweepjobs import MEASURES, measure_set
        # a set of measurements: a name given twice is taken once, in the order a job records them
        measure = measure_set(m.strip() for m in args.measure.split(",") if m.strip())
        if "measure" in grid and not _same_values(grid["measure"], measure, as_set=True):
            overridden.append("--measure")
        grid["measure"] = measure
        for m in grid["measure"]:
            if m not in MEASURES:
                raise UserError(f"--measure: unknown measurement {m!r}; choose from {', '.join(MEASURES)}")
    if args.keep_models:
        if grid.get("keep_models", True) is not True:
            overridden.append("--keep-models")
        grid["keep_models"] = True
    if overridden:      # (documented: a flag wins; said, so that a grid key given twice is not a surprise)
        verb = "overrides its setting" if len(overridden) == 1 else "override their settings"
        print(f"note: {and_list(overridden)} {verb} in the grid file {args.grid}", file=sys.stderr)
    return grid


def _run_sweep(args):
    import time
    from pathlib import Path

    from . import sweep, sweepcluster, sweepgrid, sweeprecord
    if args.sweep_command == "summarize":
        print(sweepgrid.summarize(args.sweep))
        return 0
    sweepcluster.check_scheduler(args.scheduler, args.workers)      # before anything is written or printed
    grid = _sweep_grid(args)
    points, axes = sweepgrid.expand_grid(grid)
    measure = grid.get("measure") or []
    if isinstance(measure, str):
        measure = [measure]
    out = Path(args.out or f"runs/sweep-{time.strftime('%Y%m%d-%H%M%S')}")
    # the folder is this process's from before its first line to the summary and figure (lock_sweep): a
    # second sweep into it is refused in one line; a new folder is removed again if nothing was recorded
    sweeprecord.check_folder(out, {sweepgrid.TRAIN_JOB})     # not a run's or a study's folder, before its lock file
    try:
        with sweep.lock_sweep(out):
            return _run_sweep_locked(args, grid, points, axes, measure, out)
    except KeyboardInterrupt as exc:    # Ctrl-C (exit 130) or SIGTERM (errors.Terminated, exit 143)
        if not getattr(exc, "in_jobs", False):
            raise
        # said once the lock is released: a new folder with nothing recorded is gone by then
        n = len(sweeprecord.read_rows(out))
        print(sweep.nothing_recorded_line(exc, out, "job") or
              f"{sweep.stop_word(exc)}: {n} of {len(points)} jobs recorded in {out / sweeprecord.SWEEP_FILE}, "
              f"no job left running; continue with the same command and --out {out} (it skips the {n} recorded)",
              file=sys.stderr, flush=True)
        return sweep.exit_status(exc)


def _run_sweep_locked(args, grid, points, axes, measure, out):
    """`sweep run` from its first line on, holding the folder's lock."""
    from . import sweep, sweepcluster, sweepgrid, sweeprecord
    keep = bool(grid.get("keep_models"))
    # a record of other settings is refused before the first line (the corpus is read after it)
    named = sweepgrid.train_sweep_jobs(points, measure, keep, folder=out, load=False)[0]
    apart = sweepgrid.names_apart(points, named, sweeprecord.read_rows(out))
    renamed = [(old, new) for (old, _, _), (new, _, _) in zip(points, apart) if old != new]
    if renamed:
        points = apart
        named = sweepgrid.train_sweep_jobs(points, measure, keep, folder=out, load=False)[0]
    rows = sweeprecord.check_recorded(out, named)
    sweepgrid.check_corpora(points)     # a corpus not found is the only line too (found here, read after it)
    found = sweeprecord.recorded_jobs(rows, named)     # by name, or by settings under an earlier name
    recorded, skip = bool(rows), len(found)
    # a --scheduler that does not answer as one is the only line too (asked once: run_sweep does not ask
    # again); a rerun with every job recorded needs no scheduler
    checked = skip < len(points) and sweepcluster.check_reachable(args.scheduler)
    interrupted_early = not recorded and (out / sweeprecord.SWEEP_FILE).exists()     # its empty record
    earlier = (f": skipping {skip} finished in an earlier run{sweeprecord.renamed_note(found)}, running "
               f"{len(points) - skip}" if skip else
               f": no job finished in an earlier run, running all {len(points)}" if interrupted_early else "")
    print(f"{len(points)} {plural(len(points), 'job')} ({' x '.join(axes) or 'one point'}) into {out}{earlier}",
          file=sys.stderr, flush=True)
    if renamed:
        old, new = renamed[0]
        print(f"note: {len(renamed)} {plural(len(renamed), 'job')} of this grid named apart from the folder's "
              f"jobs of the same name and other settings, e.g. {old} as {new}", file=sys.stderr, flush=True)
    jobs, data = sweepgrid.train_sweep_jobs(points, measure, keep, folder=out)
    try:
        rows = sweep.run_sweep(out, jobs, data, scheduler=args.scheduler, n_workers=args.workers,
                               retries=args.retries, progress=not args.no_progress, say_interrupted=False,
                               scheduler_checked=checked)
    except KeyboardInterrupt as exc:    # the jobs stopped cleanly: _run_sweep says so, once the lock is released
        exc.in_jobs = True
        raise
    report = _SweepReport(out)
    try:
        _write_sweep_report(out, rows, points, axes, report)
        finished(report.saved())    # (a stop from here on, as the lock is released, says the sweep is saved)
    except KeyboardInterrupt as exc:    # every job is recorded: the line says so, and how to get the rest
        n = len(sweeprecord.read_rows(out))
        exc.line = (f"{sweep.stop_word(exc)} while printing the report: {report.saved()}" if report.written else
                    f"{sweep.stop_word(exc)} while the table and figure were written: all {n} jobs are recorded "
                    f"in {out / sweeprecord.SWEEP_FILE}; run the same command again (same --out): it skips "
                    "the recorded jobs and writes them")
        raise
    return 0


class _SweepReport:
    """How far a finished sweep's report got (_write_sweep_report sets it as it goes, so that a stop in the
    middle says what is saved): `figure`, the figure's path once drawn; `written`, True once the table and
    the figure (if the grid has one) are written."""

    def __init__(self, out):
        self.out, self.figure, self.written = out, None, False

    def saved(self) -> str:
        from . import sweeprecord
        names = [sweeprecord.SWEEP_FILE, "summary.md", *([self.figure.name] if self.figure else [])]
        return f"the sweep is saved in {self.out} ({', '.join(names)})"


def _write_sweep_report(out, rows, points, axes, report: _SweepReport) -> None:
    """A finished sweep's summary.md and figure (`report` records each as it is written), and its table
    printed (first: drawing the figure takes a second)."""
    from . import sweepgrid
    table = sweepgrid.summarize(out)
    from .fileio import atomic_write_text
    atomic_write_text(out / "summary.md", table + "\n")
    # the record, the table and the figure are the product: standard output failing loses only the report
    with unheard_stdout(report.saved):
        print(table)
        done = [r for r in rows if r["status"] == "done"]
        if axes and any(r.get("best_val_ppl") is not None for r in done):
            from .sweepplot import plot_sweep
            numeric = [a for a in axes if a != "seed" and all(isinstance(p[a], (int, float)) for _, p, _ in points)]
            x = (numeric or [a for a in axes if a != "seed"] or axes)[0]
            hue = next((a for a in axes if a not in (x, "seed")), None)
            report.figure = plot_sweep(out, x, "best_val_ppl", hue)
        report.written = True
        if report.figure:
            print(f"wrote {out / 'summary.md'} and {report.figure} (and .svg)")


def _add_plot_sweep(plot_sub):
    q = plot_sub.add_parser("sweep", help="one column of a sweep's table against another (sweep.jsonl)")
    q.add_argument("sweep", help="a sweep folder")
    q.add_argument("--x", required=True, help="column on the x axis, e.g. recurrent_scale")
    q.add_argument("--y", default="best_val_ppl", help="column on the y axis (default best_val_ppl)")
    q.add_argument("--hue", default=None, help="one colour per value of this column, e.g. cell (a line; points "
                                               "over a text --x such as cell)")
    q.add_argument("--out", default=None, help="image file (default SWEEP/sweep-<y>-vs-<x>[-by-<hue>].png)")


def _run_plot_sweep(args):
    from .sweepplot import plot_sweep
    png = plot_sweep(args.sweep, args.x, args.y, args.hue, args.out)
    # the figure is the product: standard output failing (`> /dev/full`) loses only this line
    with unheard_stdout(lambda: f"the figure is saved in {png} (and .svg)"):
        print(f"wrote {png} (and .svg)")
    return 0


def _add_study(sub):
    p = sub.add_parser("study", help="studies run on the sweep engine: 'study learnability'")
    ssub = _subcommands(p, "study_command", "STUDY")
    q = ssub.add_parser("learnability",
                        help="which cell learns a dependency across d words (recall task), and the gradient "
                             "that reaches the key: every cell x distance x seed with the same budget",
                        description="Trains every cell x distance x seed with the same budget on the sweep engine "
                                    "and writes study.json, table.md and figures (success, steps, gradient) in "
                                    "--out; a rerun with the same --out skips the runs already recorded.")
    S, T = C.StudyConfig, C.TaskTrainConfig
    g = q.add_argument_group("grid")
    _arg(g, S, "task", help="recall | order | agreement (default {default})")
    _arg(g, S, "keys", help="recall: number of keys, chance 1/k (default {default})")
    _arg(g, S, "distances", help="comma-separated distances (default {default})")
    _arg(g, S, "cells", help="comma-separated, from " + ", ".join(C.STUDY_CELLS) + " (default {default})")
    _arg(g, S, "seeds", help="comma-separated seeds of model, batches and task data (default {default})")
    _arg(g, S, "n_train", help="training sequences per task (default {default})")
    _arg(g, S, "n_test", help="held-out sequences per task (default {default})")
    b = q.add_argument_group("budget (the same for every job)")
    _arg(b, T, "steps", help="optimizer steps per run (default {default})")
    _arg(b, T, "lr", help="learning rate (default {default})")
    _arg(b, T, "optimizer", help="sgd | momentum | adagrad | adam (default {default})")
    _arg(b, T, "clip_norm", help="gradient-norm clip, 0 = none (default {default})")
    _arg(b, T, "batch_size", "--batch-size", help="sequences per step (default {default})")
    _arg(b, T, "hidden", "--hidden", "--nhid", help="hidden size (default {default})")
    _arg(b, T, "emsize", help="embedding size (default {default})")
    _arg(b, T, "loss", help="answer: loss on the answer only | all: on every position (default {default})")
    _arg(b, T, "bptt", dest="task_bptt",    # its own range: 0 (the whole sequence) is allowed here
         help="BPTT window; 0 = the whole sequence (default {default}); < d truncates the gradient before the key")
    _arg(b, T, "omega", help="weight of the Ω regularizer on the rnn cells (the gated ones train without it), "
                             "0 = off (default {default})")
    _arg(b, T, "eval_every", dest="task_eval_every", metavar="N",     # its own range: at least 1 (no epochs here)
         help=f"steps between evaluations, at least 1 (default {{default}}): a run counts as solved after "
              f"{default(T, 'patience')} consecutive evaluations at the threshold, so there is no 0 "
              "(train's 'epoch ends only': a study has no epochs)")
    b.add_argument("--no-early-stop", action="store_true",
                   help="run solved jobs to the end of the budget too (default: stop once solved)")
    r = q.add_argument_group("run")
    _arg(r, S, "quick", help="a small study of the same shape (a few minutes)")
    _arg(r, S, "out", help="study folder (default runs/study-learnability, or -quick)")
    r.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                   help="a running Dask scheduler (default: a local cluster; 'serial' = in this process)")
    r.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local cluster (default: one per core); with a tcp:// --scheduler, "
                        "the workers to wait for before the jobs are sent; not with --scheduler serial")
    r.add_argument("--no-progress", action="store_true", help="no progress bar or per-job lines")
    r.add_argument("--report-only", action="store_true",
                   help="run nothing: write study.json, the table and figures from the runs already recorded in --out")
    return p


def _add_plot_study(plot_sub):
    q = plot_sub.add_parser("study", help="redraw a study folder's figures from its study.json (no training)")
    q.add_argument("study", help="a study folder (holding study.json), e.g. docs/learnability")
    q.add_argument("--out", default=None, metavar="FOLDER",
                   help="write the figures into FOLDER (made if needed) instead of the study folder")


def _run_plot_study(args):
    from . import study
    paths = study.redraw(args.study, args.out)
    pngs = ", ".join(str(p) for p in paths if p.suffix == ".png")
    # the figures are the product: standard output failing (`> /dev/full`) loses only this line
    with unheard_stdout(lambda: f"the figures are saved in {args.out or args.study} ({pngs}, and .svg)"):
        print(f"wrote {pngs} (and .svg); study.json and table.md unchanged")
    return 0


def _run_study(args):
    import dataclasses

    from . import study
    given = {**vars(args), "bptt": args.task_bptt, "eval_every": args.task_eval_every}
    train = C.TaskTrainConfig(**{f.name: given[f.name] for f in dataclasses.fields(C.TaskTrainConfig)
                                 if given.get(f.name) is not None})
    if args.no_early_stop:
        train.early_stop = False
    top = {f.name: getattr(args, f.name) for f in dataclasses.fields(C.StudyConfig)
           if f.name != "train" and getattr(args, f.name, None) is not None}
    cfg = C.StudyConfig(**top, train=train)
    if not args.report_only:        # (a report reads the recorded runs, whatever their budget)
        study.check_budget(cfg)
    from .errors import exit_status
    try:
        doc = study.run_study(cfg, scheduler=args.scheduler, n_workers=args.workers, progress=not args.no_progress,
                              report_only=args.report_only)
    except KeyboardInterrupt as exc:
        if not getattr(exc, "said", False):     # said: the study printed its one line (runs recorded, what next)
            raise
        return exit_status(exc)
    finished(f"the study is saved in {doc['folder']} (study.json, table.md, figures)")
    # study.json, the table and the figures are saved: standard output failing loses only the report
    with unheard_stdout(lambda: f"the study is saved in {doc['folder']} (study.json, table.md, figures)"):
        print(doc["table"])
        print(f"wrote {doc['folder']}/study.json, table.md, success/steps/gradient .png and .svg "
              f"({doc['meta']['wall_s_this_call']:.0f} s)")
    return 0
