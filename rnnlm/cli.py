"""The command-line interface: one argparse parser, one subcommand per job; argparse lives only here.

Each subcommand has an `_add_<name>(subparsers)` that declares its flags and
a `_run_<name>(args) -> int` that turns the parsed flags into a config (or
keyword arguments), calls the library, and prints what it returns. Library
modules never see an argparse Namespace. Imports of the library happen
*inside* the `_run_` functions, so that `--help` stays instant (no Numba, no
matplotlib at import time); config.py is standard library only.

The one thing to know before editing: a flag that sets a config field takes
its default and the "(default X)" of its help from the dataclass in config.py
(`_arg`), never from a literal here. User mistakes raise `UserError`; `main`
turns them, and the OSError/MemoryError a user can cause (disk full,
read-only folder, too large a model), into one line on stderr and exit
status 2; every parsed number is checked against config.RANGES first. A
standard output closed by its reader (`| head`) ends any command quietly
with 141 (128 + SIGPIPE), as Unix tools end; any other failed write on it (`> /dev/full`) is the one
line naming standard output, in every command (`_NamedStdout` stands in for sys.stdout while one runs).
Ctrl-C exits 130; SIGTERM (the same clean shutdown: train saves, a sweep or study raises
sweep.Terminated) exits 143, the shell's 128 + 15.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import warnings

from . import config as C
from .errors import STDOUT, UserError, describe_memory_error, describe_os_error, plural, sigterm_raises


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UserError(f"{self.prog}: {message} (see '{self.prog} --help')")

    def parse_args(self, args=None, namespace=None):
        """argparse's, except that arguments no parser took are named with the command they were given
        to ('rnnlm train: unrecognized arguments: ...', see 'rnnlm train --help'), not the top level."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            words = [getattr(parsed, "command", None)] + [v for k, v in vars(parsed).items()
                                                          if k.endswith("_command") and k != "command"]
            prog = " ".join([self.prog] + [w for w in words if isinstance(w, str)])
            raise UserError(f"{prog}: unrecognized arguments: {' '.join(extras)} (see '{prog} --help')")
        return parsed

    def print_help(self, file=None):
        """argparse's, except that a failed write is raised (argparse ignores it and exits 0): --help into a
        closed pipe then ends as every command's output does, quietly with 141 (main)."""
        file = sys.stdout if file is None else file
        file.write(self.format_help())
        file.flush()

    def _print_message(self, message, file=None):
        """argparse's (--version's text), except that a failed write on standard output is raised, as in
        print_help."""
        if message and file is sys.stdout:
            file.write(message)
            file.flush()
        else:
            super()._print_message(message, file)



def _subcommands(parser, dest: str, metavar: str):
    """Required subcommands of `parser` (argparse's add_subparsers with our one-line-error parser)."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar, parser_class=_Parser)
    sub.required = True
    return sub

def _arg(group, cls, name, *flags, help, unset=False, **kw):
    """Add the flag(s) of field `name` of config dataclass `cls` (default: --<name with dashes>).

    The parser's default is the field's (or None with unset=True, so that a flag
    not given stays visible: train's --resume, jacobian's fresh-model flags);
    "{default}" in help is replaced by the field's default. The type is that
    of the default unless given; a False bool is a store_true flag.
    """
    d = C.default(cls, name)
    kw.setdefault("dest", name)
    if isinstance(d, bool):
        kw.setdefault("action", "store_true")
    elif "type" not in kw and d is not None:
        kw["type"] = type(d)
    group.add_argument(*(flags or ("--" + name.replace("_", "-"),)), default=None if unset else d,
                       help=help.format(default=d), **kw)


def _given(args, cls) -> dict:
    """The fields of `cls` that have a flag in `args` and were given (not None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.name not in ("data", "model") and getattr(args, f.name, None) is not None}


def _data_config(args) -> C.DataConfig:
    """DataConfig from `_add_data_flags` (and --corpus where the command has it; None = default)."""
    return C.DataConfig(**_given(args, C.DataConfig))


# ---------------------------------------------------------------- corpus


def _add_corpus(sub):
    p = sub.add_parser("corpus", help="inspect, locate or download a corpus")
    csub = _subcommands(p, "corpus_command", "ACTION")
    info = csub.add_parser("info", help="token counts, vocabulary, OOV rates, samples")
    info.add_argument("corpus", nargs="?", default=C.default(C.DataConfig, "corpus"),
                      help="a named corpus (machado, sintetico) or a path to a .txt file or folder")
    _add_data_flags(info)
    dl = csub.add_parser("download", help="fetch a named corpus from its catalog URLs")
    dl.add_argument("corpus", help="a named corpus, e.g. machado")
    dl.add_argument("--corpora-dir", default=None,
                    help="put it in DIR/<name>/ (default: $RNNLM_CORPORA/<name>/ when set, else the repository's "
                         "corpora/<name>/, or ./corpora/<name>/ for an installed package)")
    dl.add_argument("--force", action="store_true",
                    help="fetch every file again, even when the corpus is already present and verified "
                         "(without it, a corpus the lookup finds is reported and nothing is fetched)")
    return p


def _add_data_flags(p):
    """Flags shared by every command that reads a corpus (the DataConfig fields but corpus)."""
    D = C.DataConfig
    g = p.add_argument_group("corpus and tokenizer")
    _arg(g, D, "corpora_dir", help="folder holding named corpora, the only one searched when given "
                                   "(else $RNNLM_CORPORA alone when set, else ./corpora, ../shared/corpora)")
    _arg(g, D, "keep_case", help="do not lower-case the text")
    _arg(g, D, "num_token", help="map numbers to the <num> token")
    _arg(g, D, "max_vocab", help="keep at most this many words, <unk> and <eos> included (0 = no limit; default {default})")
    _arg(g, D, "min_count", help="drop words seen fewer times in the training split (default {default})")
    _arg(g, D, "split_seed", help="seed of the train/valid/test split (default {default})")
    _arg(g, D, "valid_fraction",
         help="share of tokens held out for validation, as whole works when possible (0 = none; train needs one; default {default})")
    _arg(g, D, "test_fraction", help="share of tokens held out for test, as whole works when possible (0 = none; default {default})")
    _arg(g, D, "use_cache", "--no-cache", action="store_false",
         help="re-tokenize instead of reading the .npy cache (the cache is then rewritten)")


def _run_corpus(args):
    from . import corpus, data
    if args.corpus_command == "download":
        found = None if args.force or args.corpus not in corpus.NAMED_CORPORA or args.corpus == "sintetico" \
            else corpus.present(args.corpus, args.corpora_dir)
        if found is not None:
            print(f"{args.corpus}: already present and verified in {found.origin}; nothing fetched "
                  f"(--force fetches it again into {corpus.download_dir(args.corpus, args.corpora_dir)})")
            return 0
        folder = corpus.download(args.corpus, args.corpora_dir, force=args.force)
        if args.corpus == "sintetico":   # made here from its settings, never fetched
            print(f"{args.corpus}: generated corpus ready in {folder} (made on this machine, not downloaded)")
        else:
            print(f"{args.corpus}: all files present and verified in {folder}")
        return 0
    print(data.info_report(data.load_corpus(_data_config(args))))
    return 0


# ---------------------------------------------------------------- bench


def _add_bench(sub):
    p = sub.add_parser("bench", help="training/inference tokens/s per cell and config")
    p.add_argument("--cell", default="all", choices=[*C.CELLS, "all"], help="the cell to time (default all)")
    p.add_argument("--config", default="all", help="tiny, small, medium, large or all (default all)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default 3)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both sides (Numba, BLAS, PyTorch; default 2, or 1 on a one-core machine); "
                        "at most the machine's cores unless --oversubscribe; not with --sweep, whose ways are fixed")
    p.add_argument("--vs-torch", action="store_true",
                   help="also time PyTorch's model in the same run, in a worker process, "
                        "interleaved with ours (needs torch importable)")
    p.add_argument("--torch-in-process", action="store_true",
                   help="with --vs-torch: time PyTorch in this process instead (the old harness)")
    p.add_argument("--json", action="store_true", help="one JSON object per (cell, config)")
    p.add_argument("--compile", action="store_true",
                   help="also measure Numba compile time with an empty and a warm cache")
    p.add_argument("--jacobian", action="store_true",
                   help="also time the Jacobian lag curve at H=256, D=100, 32 anchors, and the "
                        "overhead of train --track-jacobian-every 500")
    p.add_argument("--sweep", action="store_true",
                   help="instead: the same grid of short trainings by the serial loop (2 threads), by 1 and by "
                        "2 Dask workers; jobs/min, ratios, Dask's overhead per job, peak memory per worker")
    p.add_argument("--sweep-jobs", type=int, default=8, help="with --sweep: trainings in the grid (default 8)")
    p.add_argument("--sweep-steps", type=int, default=300, help="with --sweep: steps per training (default 300)")
    p.add_argument("--scaling", metavar="N,N,...",
                   help="instead: tokens/s at each of these thread counts (e.g. 1,2,4; each at most the machine's "
                        "cores), with --vs-torch PyTorch's at the same count and the ratio, and the parallel "
                        "efficiency (tok/s at n / (n x tok/s at 1)); --threads is not used")
    p.add_argument("--breakdown", action="store_true",
                   help="with --scaling: ms per training step in the output layer, recurrent forward, recurrent "
                        "backward, embedding, clipping and optimizer, and the rest, with each one's speedup")
    p.add_argument("--oversubscribe", action="store_true",
                   help="with --threads or --scaling: allow more threads than cores (start with NUMBA_NUM_THREADS "
                        "set to the largest count)")
    return p


def _run_bench(args):
    import json

    from . import bench
    if args.sweep:
        if args.threads is not None:    # its ways are fixed (a 2-thread loop against 1-thread workers)
            raise UserError(f"--threads {args.threads}: --sweep compares fixed ways (the serial loop on 2 threads, "
                            "1 and 2 workers of one thread each); leave --threads out")
        print(bench.format_sweep_bench(bench.sweep_bench(args.sweep_jobs, args.sweep_steps)))
        return 0
    if args.scaling is None and args.breakdown:
        raise UserError("--breakdown applies only with --scaling (e.g. --scaling 1,2)")
    if args.oversubscribe and args.scaling is None and args.threads is None:
        raise UserError("--oversubscribe applies only with --threads or --scaling (e.g. --threads 4 --oversubscribe)")
    if args.scaling is not None:
        return _run_bench_scaling(args, bench, json)
    records = bench.run_bench(args.cell, args.config, repeats=args.repeats, threads=args.threads,
                              vs_torch=args.vs_torch, torch_in_process=args.torch_in_process,
                              oversubscribe=args.oversubscribe,
                              progress=not args.json,
                              on_record=(lambda r: print(json.dumps(r), flush=True)) if args.json else None)
    if args.json:
        return 0
    print(bench.format_table(records, args.vs_torch))
    if args.compile:
        cells = bench.CELLS if args.cell == "all" else (args.cell,)
        print("\n" + bench.format_compile_times(bench.compile_times(cells), cells))
    if args.jacobian:
        print("\n" + bench.format_jacobian_times(bench.jacobian_times(), bench.jacobian_overhead()))
    print("\n" + bench.format_footer(args.vs_torch, args.torch_in_process))
    return 0


def _run_bench_scaling(args, bench, json):
    if args.torch_in_process or args.compile or args.jacobian:
        raise UserError("--scaling does not combine with --torch-in-process, --compile or --jacobian")
    from . import benchscaling
    records = benchscaling.run_scaling(args.cell, args.config, threads=args.scaling, repeats=args.repeats,
                                       vs_torch=args.vs_torch, breakdown=args.breakdown,
                                       oversubscribe=args.oversubscribe,
                                       progress=not args.json,
                                       on_record=(lambda r: print(json.dumps(r), flush=True)) if args.json else None)
    if args.json:
        return 0
    print(benchscaling.format_scaling_table(records, args.vs_torch))
    if args.breakdown:
        print("\n" + benchscaling.format_breakdown(records))
    print("\n" + benchscaling.format_scaling_footer(records))
    return 0


# ---------------------------------------------------------------- baseline


def _add_baseline(sub):
    p = sub.add_parser("baseline", help="Kneser-Ney trigram perplexity on the same splits and vocabulary")
    _arg(p, C.DataConfig, "corpus",
         help="a named corpus (machado, sintetico) or a path to a .txt file or folder")
    _add_data_flags(p)
    p.add_argument("--split", default="both", choices=["valid", "test", "both"],
                   help="which held-out split(s) to score")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def _run_baseline(args):
    import json

    from . import baseline
    report = baseline.baseline_report(_data_config(args),
                                      splits=("valid", "test") if args.split == "both" else (args.split,))
    print(json.dumps(report, indent=2) if args.json else baseline.format_report(report))
    return 0


# ---------------------------------------------------------------- train, evaluate, generate


def _clip_arg(text):
    """--clip-norm/--clip-value: a number, or 0/none for no clipping."""
    if str(text).lower() in ("none", "off"):
        return 0.0
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got '{text}'") from None


# Help shared by train and jacobian --init, so that the two read the same.
_ACTIVATION_HELP = ("rnn only: tanh, relu, sigmoid, tanh:n, scaled-tanh:a,b, lecun-tanh "
                    "(= scaled-tanh:1.7159,0.6667) (default {default})")
_RECURRENT_SCALE_HELP = ("multiply every W_hh after init, to provoke vanishing or explosion (with --init "
                         "orthogonal ||W_hh|| is this scale; the default init's is smaller) (default {default:g})")


def _add_train(sub):
    p = sub.add_parser("train", help="train a word-level RNN/LSTM/GRU language model",
                       description="Train a language model with truncated BPTT. Leaves a run folder "
                                   "(config.json, vocab.json, metrics.jsonl, model.npz, best.npz). "
                                   "Ctrl-C saves a checkpoint; --resume continues it exactly.")
    M, T = C.ModelConfig, C.TrainConfig
    _arg(p, C.DataConfig, "corpus", unset=True,
         help="a named corpus (machado, sintetico) or a path to a .txt file or folder (default {default})")
    _add_data_flags(p)
    # Not given = None here (the dataclass default applies), so that --resume sees every corpus flag
    # given, even one repeating the default value (the saved run may have used another).
    p.set_defaults(**{f.name: None for f in dataclasses.fields(C.DataConfig) if f.name != "corpus"})
    m = p.add_argument_group("model")
    _arg(m, M, "cell", choices=C.CELLS, unset=True, help="default {default}")
    _arg(m, M, "activation", unset=True, help=_ACTIVATION_HELP)
    _arg(m, M, "emsize", unset=True, help="embedding size (default {default})")
    _arg(m, M, "hidden", "--hidden", "--nhid", unset=True, help="hidden size (default {default})")
    _arg(m, M, "layers", "--layers", "--nlayers", unset=True, help="stacked layers (default {default})")
    _arg(m, M, "dropout", unset=True, help="dropout probability, 0 = none (default {default})")
    _arg(m, M, "tied", unset=True, help="tie encoder and decoder weights (needs --emsize == --hidden)")
    _arg(m, M, "init", choices=C.INITS, unset=True, help="weight initialization (default {default})")
    _arg(m, M, "recurrent_scale", unset=True, help=_RECURRENT_SCALE_HELP)
    _arg(m, M, "forget_bias", unset=True, help="lstm: add to the forget-gate bias at init (default {default})")
    o = p.add_argument_group("optimization")
    _arg(o, T, "bptt", unset=True, help="BPTT window length (default {default})")
    _arg(o, T, "batch_size", unset=True, help="training streams (default {default})")
    _arg(o, T, "eval_batch_size", unset=True, help="validation/test streams (default {default})")
    _arg(o, T, "optimizer", choices=C.OPTIMIZERS, unset=True, help="default {default}")
    per_optimizer = ", ".join(f"{k} {v:g}" for k, v in C.DEFAULT_LR.items())
    _arg(o, T, "lr", type=float, unset=True, help=f"learning rate (default per optimizer: {per_optimizer})")
    _arg(o, T, "momentum", unset=True, help="for --optimizer momentum (default {default})")
    _arg(o, T, "nesterov", unset=True, help="Nesterov momentum")
    _arg(o, T, "beta1", unset=True, help="Adam (default {default})")
    _arg(o, T, "beta2", unset=True, help="Adam (default {default})")
    clip = o.add_mutually_exclusive_group()
    _arg(clip, T, "clip_norm", type=_clip_arg, metavar="X", unset=True,
         help="rescale all gradients when their joint L2 norm exceeds X; 0 or none = off (default {default})")
    _arg(clip, T, "clip_value", type=_clip_arg, metavar="X", unset=True,
         help="instead clip every gradient element to [-X, X]; it turns --clip-norm off, so 0 or none = "
              "no clipping at all")
    _arg(o, T, "omega", metavar="ALPHA", unset=True,
         help="rnn only: add ALPHA times the Pascanu et al. (2013) regularizer Ω, which keeps "
              "backpropagated gradient norms from step to step; 0 = off (default {default})")
    _arg(o, T, "lr_decay", unset=True,
         help="divide lr by this when validation does not improve; 1 = never (default {default})")
    _arg(o, T, "min_lr", type=float, unset=True,
         help=f"stop once annealing takes lr below this: more steps would barely move the weights; 0 = never "
              f"(default: the initial lr x {C.MIN_LR_FACTOR:g}, i.e. after 10 divisions by 4)")
    _arg(o, T, "patience", unset=True,
         help="stop after this many evaluations without improvement; 0 = never (default {default})")
    _arg(o, T, "seed", unset=True, help="init and dropout seed (default {default})")
    b = p.add_argument_group("budget and output")
    _arg(b, T, "epochs", unset=True, help="passes over the training text (default {default})")
    _arg(b, T, "max_steps", unset=True,
         help="stop after this many steps in total; 0 = no step limit (the default: the time budget still applies)")
    _arg(b, T, "max_minutes", unset=True,
         help="wall-time budget over the run's life, the final evaluation included; 0 = none (default {default} when "
              "neither --epochs nor a --max-steps above 0 is given, else none)")
    _arg(b, T, "eval_every", unset=True,
         help="also validate every N steps; 0 = at epoch ends only (default {default})")
    _arg(b, T, "log_every", unset=True, help="write a step event to metrics.jsonl every N steps (default {default})")
    _arg(b, T, "track_jacobian_every", metavar="N", unset=True,
         help="record a cheap Jacobian lag curve (D=30, 4 anchors) in metrics.jsonl at step 0 "
              "and every N steps, for 'plot lag --over-training'; 0 = off (default {default})")
    _arg(b, T, "on_nonfinite", choices=C.ON_NONFINITE, unset=True,
         help="on a nan/inf loss or gradient: stop cleanly (rolling back to the last state whose loss "
              "and gradients were finite) or skip the step (default {default})")
    _arg(b, T, "max_skips", unset=True,
         help="with --on-nonfinite skip: stop after this many non-finite steps in a row (default {default})")
    _arg(b, T, "eval_minutes", unset=True,
         help="a report-only validation on a fixed slice of the validation split every this many "
              "wall minutes (lr, patience and best model stay on the step schedule); 0 = off (default {default})")
    _arg(b, T, "save_minutes", unset=True,
         help="also save model.npz every this many wall minutes: a kill -9 loses at most this much; "
              "0 = only at validations and epoch ends (default {default})")
    _arg(b, T, "log_interval", unset=True,
         help="print a progress line every N steps (instead of the bar when stderr is not a terminal; "
              "default {default})")
    _arg(b, T, "sample_words", unset=True,
         help="words sampled from the best model at the end; 0 = none (default {default})")
    _arg(b, T, "progress", "--no-progress", action="store_false", unset=True, help="no progress bar")
    _arg(b, T, "out", unset=True, help="run folder (default runs/<cell>-<date>-<time>)")
    b.add_argument("--resume", default=None, metavar="RUN",
                   help="continue the run in this folder from its model.npz, with its settings")
    return p


def _train_config(args) -> tuple[C.TrainConfig, str | None]:
    """(TrainConfig, resume folder or None) from the `train` command's flags.

    Flags left out keep the dataclass defaults (their parser defaults are None
    so that "not given" is visible). Two conveniences: --clip-value alone
    turns norm clipping off, and --epochs or a --max-steps above 0 without
    --max-minutes lifts the default time budget (config.given_train_settings).
    With --resume the run's saved settings are used; flags may change only
    RESUME_OVERRIDABLE ones.
    """
    model = _given(args, C.ModelConfig)
    given = _given(args, C.TrainConfig)
    _refuse_ignored_train_flags(args, model, given)
    C.given_train_settings(given, resume=bool(args.resume))
    data = _data_config(args)
    if args.resume:
        from .runs import resume_config
        data_given = _given(args, C.DataConfig)
        if args.corpus is not None:
            data_given["corpus"] = args.corpus
        given.pop("out", None)      # the same folder (_refuse_ignored_train_flags)
        return resume_config(args.resume, dict(given, model=model, data=data_given)), args.resume
    return C.TrainConfig(data=data, model=C.ModelConfig(**model), **given), None


def _refuse_ignored_train_flags(args, model: dict, given: dict) -> None:
    """A flag `train` would ignore is a UserError: the user believes it took effect."""
    from pathlib import Path
    if args.resume and given.get("out") is not None and Path(given["out"]).resolve() != Path(args.resume).resolve():
        raise UserError(f"--resume continues the run in {args.resume} and writes there; "
                        f"--out {given['out']} would be ignored (drop it, or copy the folder first)")
    optimizer = given.get("optimizer")
    if not args.resume:
        optimizer = optimizer or C.default(C.TrainConfig, "optimizer")
        for flags, needs in ((("momentum", "nesterov"), "momentum"), (("beta1", "beta2"), "adam")):
            for name in flags:
                if name in given and optimizer != needs:
                    raise UserError(f"--{name} is for --optimizer {needs}; this run uses --optimizer {optimizer} "
                                    f"(drop --{name} or add --optimizer {needs})")
    if "max_skips" in given and given.get("on_nonfinite", "skip" if args.resume else
                                           C.default(C.TrainConfig, "on_nonfinite")) != "skip":
        raise UserError("--max-skips is for --on-nonfinite skip (with stop, the first non-finite step ends the run)")


def _run_train(args):
    from .stopping import exit_status
    from .summary import format_summary
    from .train import train
    config, resume = _train_config(args)
    try:
        summary = train(config, resume=resume)
    except KeyboardInterrupt as exc:    # during the final evaluation (a stop in training returns a summary)
        if not getattr(exc, "said", False):     # said: train printed its one line (what is saved, what next)
            raise
        from .sweep import exit_status as signal_status
        return signal_status(exc)
    print(format_summary(summary))
    return exit_status(summary)      # 130 after Ctrl-C, 143 after SIGTERM


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="cross-entropy and perplexity of a trained model on a split or a text file")
    p.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    p.add_argument("--split", default=None, choices=C.SPLITS,
                   help="the run's corpus split to evaluate (default valid; not with --text)")
    p.add_argument("--text", default=None, metavar="FILE",
                   help="evaluate this text file instead, tokenized with the run's settings and vocabulary")
    p.add_argument("--checkpoint", default=None, choices=C.CHECKPOINTS,
                   help="best.npz (default) or model.npz of a run folder (not with a .npz file)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="parallel streams (default: the run's eval batch size; 1 = one unbroken stream)")
    p.add_argument("--bptt", type=int, default=None, help="window length (default: the run's)")
    return p


def _run_evaluate(args):
    from .runs import fmt_ppl, run_evaluate
    if args.text is not None and args.split is not None:
        raise UserError("--split picks one of the run's own splits and --text a file instead; give one of them")
    from pathlib import Path
    if args.checkpoint is not None and Path(args.run).is_file():
        raise UserError(f"--checkpoint picks a file inside a run folder; {args.run} is already a checkpoint file")
    r = run_evaluate(args.run, split=args.split or "valid", text=args.text, which=args.checkpoint or "best",
                     batch_size=args.batch_size, bptt=args.bptt)
    print(f"checkpoint: {r['checkpoint']}{_fallback_note(args.run, args.checkpoint or 'best', r['checkpoint'])}")
    print(f"text: {r['source']}  ({r['tokens']:,} {plural(r['tokens'], 'token')}, {r['oov']:,} out of vocabulary = "
          f"{100 * r['oov_rate']:.2f}%)")
    nats = r["loss"]
    fmt = (lambda x: f"{x:.4f}") if abs(nats) < 1e5 else (lambda x: f"{x:.4g}")      # noqa: E731
    print(f"cross-entropy: {fmt(nats)} nats/token ({fmt(nats / 0.6931471805599453)} bits/token) "
          f"over {r['predicted']:,} {plural(r['predicted'], 'prediction')}, batch size {r['batch_size']}, "
          f"bptt {r['bptt']}")
    print(f"perplexity: {fmt_ppl(r['ppl'])}")
    return 0


def _fallback_note(run, which: str, path) -> str:
    """What the "checkpoint:" line of evaluate and generate adds when best was asked of a run folder and its
    latest model was read (runs.load_model falls back to it before the first validation)."""
    from pathlib import Path
    if which == "best" and Path(path).name != "best.npz" and Path(run).is_dir():
        return " (no best.npz: no validation has run yet)"
    return ""


def _add_generate(sub):
    p = sub.add_parser("generate", help="sample Portuguese text from a trained model")
    p.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    p.add_argument("--words", type=int, default=100,
                   help="words to generate after the prime, counting tokens with a letter or digit; punctuation "
                        "marks and sentence ends (<eos>, printed as line breaks) are not counted (default 100)")
    p.add_argument("--prime", default="", help='text to continue, e.g. "O homem que"')
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by T; < 1 is more conservative; 0 = greedy (default 1)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the K most likely words; 0 = all")
    p.add_argument("--top-p", type=float, default=1.0,
                   help="sample among the most likely words holding mass P (nucleus); 1 = all")
    p.add_argument("--seed", type=int, default=0, help="same seed, same text (default 0)")
    p.add_argument("--num-samples", type=int, default=1, help="independent samples (default 1)")
    p.add_argument("--checkpoint", default="best", choices=C.CHECKPOINTS,
                   help="best.npz (default) or model.npz of a run folder")
    p.add_argument("--allow-unk", action="store_true", help="let <unk> be sampled (masked by default)")
    return p


def _run_generate(args):
    """Print the samples while they are drawn (flushed per piece of text), so that a long one is read as it
    grows and a Ctrl-C (SIGTERM) keeps what was drawn: that is printed, one line on stderr says after how
    many words it stopped, and the exit status is 130 (143), as train's. A sample cut short (a model that
    draws punctuation instead of words, see sample.max_draws) is said in one line on stderr; status 0."""
    from .runs import load_model
    from .sample import TextStream
    model, vocab, info, path = load_model(args.run, args.checkpoint)
    # On stderr, so that stdout stays the generated text alone (for pipes); evaluate prints the same line.
    print(f"checkpoint: {path}{_fallback_note(args.run, args.checkpoint, path)}", file=sys.stderr)
    data = info.get("train", {}).get("data", {})
    stream = TextStream(model, vocab, words=args.words, prime=args.prime, temperature=args.temperature,
                        top_k=args.top_k, top_p=args.top_p, seed=args.seed, num_samples=args.num_samples,
                        keep_case=data.get("keep_case", False), num_token=data.get("num_token", False),
                        allow_unk=args.allow_unk)
    if stream.unknown:
        print(f"note: not in the vocabulary, read as <unk>: {', '.join(dict.fromkeys(stream.unknown))}",
              file=sys.stderr, flush=True)
    return _print_samples(stream, args.words, args.num_samples)     # (a failed write: see _NamedStdout)


def _print_samples(stream, words: int, M: int) -> int:
    """generate's text: stream's pieces written as they come; the exit status (0, 130 or 143)."""
    from .sample import MAX_DRAWS_EXTRA, MAX_DRAWS_PER_WORD, max_draws
    from .sweep import exit_status, stop_word
    from .stopping import Interrupt, signal_error
    out = sys.stdout
    # Samples are drawn together but printed one after the other, a blank line between them: the pieces of
    # the sample being printed (`shown`) go out at once, the later samples' wait in `held`. A first signal
    # only sets a flag, read between pieces, so that a piece is never cut between its write and `written`
    # (the rest printed at the stop would repeat it); a second one raises at once.
    shown, written, held, done = 0, 0, [[] for _ in range(M)], [False] * M
    try:
        with Interrupt() as interrupt:
            for piece in stream:
                if interrupt.requested:
                    raise signal_error(interrupt.signum)
                if piece.sample == shown:
                    out.write(piece.text)
                    out.flush()
                    written += len(piece.text)
                else:
                    held[piece.sample].append(piece.text)
                done[piece.sample] = piece.done
                while done[shown] and shown + 1 < M:
                    out.write("\n\n")
                    shown, written = shown + 1, 0
                    text = "".join(held[shown])
                    out.write(text)
                    out.flush()
                    written += len(text)
            if interrupt.requested:     # the signal came with the last piece
                raise signal_error(interrupt.signum)
    except KeyboardInterrupt as exc:    # Ctrl-C, or SIGTERM (sweep.Terminated): print what was drawn, then stop
        rest = stream.text(shown)[written:] + "".join("\n\n" + stream.text(j) for j in range(shown + 1, M))
        out.write(rest + "\n")
        out.flush()
        asked = words * M
        print(f"{stop_word(exc)} after {int(stream.words_drawn.sum()):,} of {asked:,} {plural(asked, 'word')}"
              + (f" ({M} samples of {words:,})" if M > 1 else "") + "; the text drawn so far is printed",
              file=sys.stderr)
        return exit_status(exc)
    out.write("\n")
    short = stream.short
    if short:
        got = ", ".join(f"{stream.words_drawn[i]:,}" for i in short)
        whose = "printed" if M == 1 else (f"{plural(len(short), 'sample')} {', '.join(str(i + 1) for i in short)} "
                                          f"{plural(len(short), 'holds', 'hold')}")
        print(f"note: {whose} {got} of the {words:,} {plural(words, 'word')} asked: the model drew "
              f"{max_draws(words):,} tokens, mostly punctuation or sentence ends, the most generate draws "
              f"({MAX_DRAWS_PER_WORD} per word asked + {MAX_DRAWS_EXTRA}); a better-trained checkpoint, a lower "
              f"--temperature or --top-k may help", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- gradcheck


def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck",
                       help="compare every hand-written gradient with finite differences (float64)")
    p.add_argument("--cell", choices=[*C.CELLS, "all"], default="all",
                   help="which cell to check (default all)")
    p.add_argument("--activation", default="tanh",
                   help="rnn activation: tanh, relu, sigmoid, tanh:n, scaled-tanh:a,b, lecun-tanh, "
                        "or 'all' (default tanh)")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers (default 1)")
    p.add_argument("--tied", action="store_true", help="tie encoder and decoder weights (default: untied)")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout probability, with one fixed mask (0 = none; default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model, data and masks (default 0)")
    return p


def _run_gradcheck(args):
    from .gradcheck import TOLERANCE, check_all, format_overall
    worst = 0.0
    for rep in check_all(cell=args.cell, activation=args.activation, layers=args.layers, tied=args.tied,
                         dropout=args.dropout, seed=args.seed):
        print("\n".join(rep.lines()), flush=True)
        worst = max(worst, rep.max_error)
    print(format_overall(worst))
    return 0 if worst <= TOLERANCE else 1


# ---------------------------------------------------------------- probe


def _add_probe(sub):
    p = sub.add_parser("probe", help="long-range dependency probes: subject agreement, context usage")
    psub = _subcommands(p, "probe_command", "ACTION")
    a = psub.add_parser("agreement", help="accuracy of agreeing vs wrong verb/adjective by subject distance")
    a.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    a.add_argument("--distances", default="1..40",
                   help="subject-to-target distances: 1..40, 1..40:5 or 1,2,5,10 (default 1..40)")
    a.add_argument("--n", type=int, default=500,
                   help="pairs per distance, half with an attractor where one fits (default 500)")
    a.add_argument("--feature", default="number", choices=["number", "gender"],
                   help="number: the finite verb; gender: the predicative after a copula")
    c = psub.add_parser("context", help="loss increase when context beyond d tokens is perturbed "
                                        "(Khandelwal et al. 2018)")
    c.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    c.add_argument("--split", default="test", choices=C.SPLITS,
                   help="the run's corpus split to take targets from (default test)")
    c.add_argument("--distances", default="1,2,5,10,20,50,100,200",
                   help="context sizes d kept intact (default 1,2,5,10,20,50,100,200)")
    c.add_argument("--mode", default="shuffle", choices=["shuffle", "replace", "drop"],
                   help="what happens to the context farther than d: shuffled, random words, removed")
    c.add_argument("--n-targets", type=int, default=500, help="target positions sampled (default 500)")
    c.add_argument("--window", type=int, default=300,
                   help="tokens of context before each target, run from a zero state (default 300)")
    for q in (a, c):
        q.add_argument("--seed", type=int, default=0, help="seed of the pairs / targets and perturbations")
        q.add_argument("--out", default=None, metavar="FILE.json",
                       help="where to write the JSON (default: probe-<name>.json in the run folder)")
        q.add_argument("--checkpoint", default="best", choices=C.CHECKPOINTS,
                       help="best.npz (default) or model.npz of a run folder")
        q.add_argument("--batch-size", type=int, default=256, help="sequences run in parallel (default 256)")
    return p


def _run_probe(args):
    from . import probes
    common = dict(seed=args.seed, checkpoint=args.checkpoint, batch_size=args.batch_size, out=args.out)
    if args.probe_command == "agreement":
        res, out = probes.run_agreement(args.run, distances=args.distances, n=args.n, feature=args.feature,
                                        **common)
        print(probes.format_agreement(res))
    else:
        res, out = probes.run_context(args.run, split=args.split, distances=args.distances, mode=args.mode,
                                      n_targets=args.n_targets, window=args.window, **common)
        print(probes.format_context(res))
    print(f"wrote {out}")
    return 0


def _add_plot_probe(plot_sub):
    """The `plot probe` subaction; `plot_sub` is the `plot` command's subparsers."""
    q = plot_sub.add_parser("probe", help="agreement accuracy or context-loss increase vs distance")
    q.add_argument("inputs", nargs="+", metavar="RUN_OR_JSON",
                   help="run folders (their probe-<kind>*.json) or probe JSON files; one curve each")
    q.add_argument("--kind", default="agreement", choices=["agreement", "context"],
                   help="which probe's files to take from run folders (default agreement)")
    q.add_argument("--out", default=None,
                   help="image file (default: probe-<kind of the data>.png in the first input's run folder, "
                        "else under runs/plots/)")
    q.add_argument("--title", default=None, help="figure title (default: says what is plotted)")
    return q


def _run_plot_probe(args):
    from pathlib import Path

    from .plots import plot_probe, read_probes
    from .probes import find_probe_results
    paths = find_probe_results(args.inputs, args.kind)
    kind, _ = read_probes(paths)    # named after what the files hold, not after --kind
    first = Path(args.inputs[0])
    if first.is_dir():
        out = first / f"probe-{kind}.png"
    elif _is_run(first.parent):
        out = first.parent / f"probe-{kind}.png"
    else:
        out = Path("runs") / "plots" / f"{first.stem}-probe-{kind}.png"
    print(f"wrote {plot_probe(paths, args.out or out, title=args.title)} (and .svg)")
    return 0


# ---------------------------------------------------------------- jacobian, plot


def _is_run(folder) -> bool:
    """A run folder: what `train` leaves (config.json or metrics.jsonl inside)."""
    from pathlib import Path
    folder = Path(folder)
    return (folder / "config.json").is_file() or (folder / "metrics.jsonl").is_file()


def _add_jacobian(sub):
    p = sub.add_parser("jacobian", help="Jacobian norms by time lag and gradient flow (vanishing/exploding)",
                       description="Measure ||ds_t/ds_{t-d}|| (spectral and Frobenius) and ||dL_t/dh_{t-d}|| "
                                   "for d = 1..D at K anchor positions of a text read from a zero state; "
                                   "print a table, the decay rate per step and the vanish lag; write JSON.")
    J, M = C.JacobianConfig, C.ModelConfig
    p.add_argument("run", nargs="?", default=None, metavar="CHECKPOINT_OR_RUN",
                   help="a run folder (runs/NAME) or a checkpoint .npz; leave out with --init")
    _arg(p, J, "checkpoint", choices=C.CHECKPOINTS, help="best.npz (default) or model.npz of a run folder")
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
    _arg(m, M, "init", nargs="?", const=C.default(M, "init"), choices=C.INITS, unset=True,
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
    from .jacobian import format_table, run_jacobian
    model = {name: getattr(args, name) for name in _JACOBIAN_MODEL_FLAGS if getattr(args, name) is not None}
    if args.init is None:
        given = list(model) + [name for name in ("corpus", "vocab_size") if getattr(args, name) is not None]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UserError(f"{flags}: settings of a fresh model, used with --init only "
                            f"(a checkpoint's model and corpus come from the checkpoint)")
    settings = {k: getattr(args, k) for k in ("run", "checkpoint", "text", "split", "max_lag", "anchors",
                                              "tokens", "seed", "out")}
    if args.vocab_size is not None:
        settings["vocab_size"] = args.vocab_size
    config = C.JacobianConfig(model=None if args.init is None else C.ModelConfig(init=args.init, **model),
                              data=_data_config(args), **settings)
    # random tokens in place of a corpus only when none was named (nor a folder to find it in)
    doc, out = run_jacobian(config, corpus_fallback=args.corpus is None and args.corpora_dir is None,
                            progress=not args.no_progress)
    print(format_table(doc))
    if "stacked" in doc["curves"]:
        print()
        print(format_table(doc, "stacked"))
    print(f"wrote {out}")
    return 0


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
                          "(spectral) or sqrt(H) times it (Frobenius); none for --flow")
    lag.add_argument("--labels", default=None, help="comma-separated legend labels, one per input")
    lag.add_argument("--out", default=None,
                     help="image file (default: RUN/plots/lag-....png for a run folder or a JSON in one, "
                          "else runs/plots/<json name>-lag-....png)")
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

    from . import plots
    if args.plot_command == "study":
        return _run_plot_study(args)
    if args.plot_command == "probe":
        return _run_plot_probe(args)
    if args.plot_command == "sweep":
        return _run_plot_sweep(args)
    if args.plot_command == "training":
        run = Path(args.run)
        out = args.out or run / "plots" / "training.png"
        print(f"wrote {plots.plot_training(run, out, title=args.title)} (and .svg)")
        return 0
    first = Path(args.inputs[0])
    what = f"{'flow' if args.flow else args.quantity + '-' + args.norm}-{args.scope}"
    if args.over_training:
        if len(args.inputs) != 1 or not first.is_dir():
            raise UserError("--over-training takes one run folder")
        out = args.out or first / "plots" / f"lag-over-training-{what}.png"
        png = plots.plot_lag_over_training(first, out, quantity=args.quantity, norm=args.norm,
                                           title=args.title, flow=args.flow)
    else:
        labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
        if first.is_dir():
            out = args.out or first / "plots" / f"lag-{what}.png"
        elif _is_run(first.parent):
            out = args.out or first.parent / "plots" / f"{first.stem}-lag-{what}.png"
        else:
            out = args.out or Path("runs") / "plots" / f"{first.stem}-lag-{what}.png"
        png = plots.plot_lag(list(args.inputs), labels, out, quantity=args.quantity, norm=args.norm,
                             scope=args.scope, flow=args.flow, bound=args.bound, title=args.title)
    print(f"wrote {png} (and .svg)")
    return 0


# ---------------------------------------------------------------- demo


def _add_demo(sub):
    p = sub.add_parser("demo", help="scripted demonstrations: gradients by lag, long-range agreement")
    dsub = _subcommands(p, "demo_command", "ACTION")
    g = dsub.add_parser("gradients", help="lag curves at init and after training, explosion and clipping, "
                                          "tanh(n*x) (a few minutes)")
    g.add_argument("--out", default=None, help="output folder (default runs/demo-gradients)")
    lr = dsub.add_parser("longrange", help="rnn vs lstm vs gru on sintetico: agreement and context probes, "
                                           "Jacobian curves, table")
    lr.add_argument("--out", default=None, help="output folder (default runs/demo-longrange)")
    lr.add_argument("--minutes", type=float, default=3.0, help="training minutes per model (default 3)")
    lr.add_argument("--min-distance", type=int, default=1,
                    help="shortest subject-verb distance in the training corpus (default 1; e.g. 15 = long dependencies only)")
    lr.add_argument("--subject-relative-rate", type=float, default=None,
                    help="share of the training corpus's relative clauses whose own verb restates the subject's number "
                         "(a shortcut to the agreement; default 0.25, sintetico's; 0 = none)")
    lr.add_argument("--omega", type=float, default=None, help="weight of the Ω regularizer for the rnn-omega model (default 1)")
    for q in (g, lr):
        q.add_argument("--quick", action="store_true", help="tiny sizes, for tests and a first look (about a minute of CPU; a few minutes of wall time on 2 cores)")
        q.add_argument("--seed", type=int, default=0, help="seed of models, data and probes (default 0)")
    return p


def _run_demo(args):
    from pathlib import Path

    from . import demo
    if args.demo_command == "gradients":
        out = args.out or "runs/demo-gradients"
        s = demo.run_gradients(out, quick=args.quick, seed=args.seed)
    else:
        out = args.out or "runs/demo-longrange"
        s = demo.run_longrange(out, minutes=args.minutes, quick=args.quick, seed=args.seed,
                               min_distance=args.min_distance, omega=args.omega,
                               subject_relative_rate=args.subject_relative_rate)
    print((Path(out) / "summary.md").read_text(encoding="utf-8"))
    print(f"wrote {Path(out) / 'summary.md'}, {Path(out) / 'summary.json'} and the figures "
          f"({s['wall_s']['total'] if isinstance(s['wall_s'], dict) else s['wall_s']:.0f} s)")
    return 0


# ---------------------------------------------------------------- sweep

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
                kind = {int: "a whole number", float: "a number"}.get(one, f"a valid {flag} value")
                raise argparse.ArgumentTypeError(f"'{piece}' is not {kind}{where}") from None
            if choices is not None and v not in choices:
                raise argparse.ArgumentTypeError(f"'{v}' is not one of {', '.join(map(str, choices))}{where}")
            values.append(v)
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        return values
    return parse


def _train_flag_actions():
    """The `train` command's flags, as argparse actions grouped by title (read from _add_train)."""
    scratch = _Parser(add_help=False)
    tp = _add_train(scratch.add_subparsers(parser_class=_Parser))
    return [(g.title, [a for a in g._group_actions if a.dest not in _SWEEP_SKIP]) for g in tp._action_groups]


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
        g = run.add_argument_group(f"{title} (lists: one grid axis each)" if title not in
                                   ("positional arguments", "options") else "training")
        for a in actions:
            if a.nargs == 0:        # store_true / store_false: one value for the whole grid
                g.add_argument(*a.option_strings, dest=a.dest, action=type(a), default=None, help=a.help)
                continue
            g.add_argument(*a.option_strings, dest=a.dest, default=None, metavar="V[,V...]", help=a.help,
                           type=_list_type(a.type, a.choices, a.option_strings[0]))
    s = run.add_argument_group("sweep")
    s.add_argument("--grid", default=None, metavar="FILE",
                   help="a JSON (or, on Python >= 3.11, TOML) grid: {setting: value or list, seeds: N, "
                        "measure: [...]}; flags given here override its keys")
    s.add_argument("--seeds", type=int, default=None, metavar="N", help="seeds 0..N-1 (an axis)")
    s.add_argument("--measure", default=None, metavar="M[,M...]",
                   help="measure each trained model: lag (Jacobian lag curve, D=30, 8 anchors, on validation "
                        "text), agreement (subject-verb agreement probe, distances 1..25:4, 40 pairs each; "
                        "sintetico corpora only, 'not applicable' on others)")
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


def _sweep_grid(args) -> dict:
    """The grid dict of `sweep run`: the grid file's keys, then the flags given (lists), --seeds, --measure."""
    from . import sweepgrid
    grid = sweepgrid.read_grid_file(args.grid) if args.grid else {}
    for _, actions in _train_flag_actions():
        for a in actions:
            v = getattr(args, a.dest, None)
            if v is not None:
                grid[a.dest] = v
    if args.seeds is not None:
        grid["seeds"] = args.seeds
    if args.measure is not None:
        from .sweepjobs import MEASURES
        grid["measure"] = [m.strip() for m in args.measure.split(",") if m.strip()]
        for m in grid["measure"]:
            if m not in MEASURES:
                raise UserError(f"--measure: unknown measurement {m!r}; choose from {', '.join(MEASURES)}")
    if args.keep_models:
        grid["keep_models"] = True
    return grid


def _run_sweep(args):
    import time
    from pathlib import Path

    from . import sweep, sweepgrid
    if args.sweep_command == "summarize":
        print(sweepgrid.summarize(args.sweep))
        return 0
    sweep.check_scheduler(args.scheduler, args.workers)      # before anything is written or printed
    grid = _sweep_grid(args)
    points, axes = sweepgrid.expand_grid(grid)
    measure = grid.get("measure") or []
    if isinstance(measure, str):
        measure = [measure]
    out = Path(args.out or f"runs/sweep-{time.strftime('%Y%m%d-%H%M%S')}")
    # the folder is this process's from before its first line to the summary and figure (lock_sweep): a
    # second sweep into it is refused in one line; a new folder is removed again if nothing was recorded
    sweep.check_folder(out, {sweepgrid.TRAIN_JOB})     # not a run's or a study's folder, before its lock file
    try:
        with sweep.lock_sweep(out):
            return _run_sweep_locked(args, grid, points, axes, measure, out)
    except KeyboardInterrupt as exc:    # Ctrl-C (exit 130) or SIGTERM (sweep.Terminated, exit 143)
        if not getattr(exc, "in_jobs", False):
            raise
        # said once the lock is released: a new folder with nothing recorded is gone by then
        n = len(sweep.read_rows(out))
        print(sweep.nothing_recorded_line(exc, out, "job") or
              f"{sweep.stop_word(exc)}: {n} of {len(points)} jobs recorded in {out / sweep.SWEEP_FILE}, no job left "
              f"running; continue with the same command and --out {out} (it skips the {n} recorded)",
              file=sys.stderr, flush=True)
        return sweep.exit_status(exc)


def _run_sweep_locked(args, grid, points, axes, measure, out):
    """`sweep run` from its first line on, holding the folder's lock."""
    from . import sweep, sweepgrid
    keep = bool(grid.get("keep_models"))
    # a record of other settings is refused before the first line (the corpus is read after it)
    sweep.check_recorded(out, sweepgrid.train_sweep_jobs(points, measure, keep, folder=out, load=False)[0])
    recorded = {r.get("name") for r in sweep.read_rows(out)}
    skip = sum(name in recorded for name, _, _ in points)
    interrupted_early = not recorded and (out / sweep.SWEEP_FILE).exists()     # its empty record
    earlier = (f": skipping {skip} finished in an earlier run, running {len(points) - skip}" if skip else
               f": no job finished in an earlier run, running all {len(points)}" if interrupted_early else "")
    print(f"{len(points)} {plural(len(points), 'job')} ({' x '.join(axes) or 'one point'}) into {out}{earlier}",
          file=sys.stderr, flush=True)
    jobs, data = sweepgrid.train_sweep_jobs(points, measure, keep, folder=out)
    try:
        rows = sweep.run_sweep(out, jobs, data, scheduler=args.scheduler, n_workers=args.workers,
                               retries=args.retries, progress=not args.no_progress, say_interrupted=False)
    except KeyboardInterrupt as exc:    # the jobs stopped cleanly: _run_sweep says so, once the lock is released
        exc.in_jobs = True
        raise
    table = sweepgrid.summarize(out)
    from .fileio import atomic_write_text
    atomic_write_text(out / "summary.md", table + "\n")
    print(table)
    done = [r for r in rows if r["status"] == "done"]
    if axes and any(r.get("best_val_ppl") is not None for r in done):
        from .sweepplot import plot_sweep
        numeric = [a for a in axes if a != "seed" and all(isinstance(p[a], (int, float)) for _, p, _ in points)]
        x = (numeric or [a for a in axes if a != "seed"] or axes)[0]
        hue = next((a for a in axes if a not in (x, "seed")), None)
        print(f"wrote {out / 'summary.md'} and {plot_sweep(out, x, 'best_val_ppl', hue)} (and .svg)")
    return 0


def _add_plot_sweep(plot_sub):
    q = plot_sub.add_parser("sweep", help="one column of a sweep's table against another (sweep.jsonl)")
    q.add_argument("sweep", help="a sweep folder")
    q.add_argument("--x", required=True, help="column on the x axis, e.g. recurrent_scale")
    q.add_argument("--y", default="best_val_ppl", help="column on the y axis (default best_val_ppl)")
    q.add_argument("--hue", default=None, help="one line per value of this column, e.g. cell")
    q.add_argument("--out", default=None, help="image file (default SWEEP/sweep-<y>-vs-<x>[-by-<hue>].png)")


def _run_plot_sweep(args):
    from .sweepplot import plot_sweep
    print(f"wrote {plot_sweep(args.sweep, args.x, args.y, args.hue, args.out)} (and .svg)")
    return 0


# ---------------------------------------------------------------- study


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
    _arg(b, T, "eval_every", help="steps between evaluations (default {default})")
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


def _run_plot_study(args):
    from . import study
    paths = study.redraw(args.study)
    print(f"wrote {', '.join(str(p) for p in paths if p.suffix == '.png')} (and .svg); "
          "study.json and table.md unchanged")
    return 0


def _run_study(args):
    import dataclasses

    from . import study
    given = {**vars(args), "bptt": args.task_bptt}
    train = C.TaskTrainConfig(**{f.name: given[f.name] for f in dataclasses.fields(C.TaskTrainConfig)
                                 if given.get(f.name) is not None})
    if args.no_early_stop:
        train.early_stop = False
    top = {f.name: getattr(args, f.name) for f in dataclasses.fields(C.StudyConfig)
           if f.name != "train" and getattr(args, f.name, None) is not None}
    cfg = C.StudyConfig(**top, train=train)
    if not args.report_only:        # (a report reads the recorded runs, whatever their budget)
        study.check_budget(cfg)
    from .sweep import exit_status
    try:
        doc = study.run_study(cfg, scheduler=args.scheduler, n_workers=args.workers, progress=not args.no_progress,
                              report_only=args.report_only)
    except KeyboardInterrupt as exc:
        if not getattr(exc, "said", False):     # said: the study printed its one line (runs recorded, what next)
            raise
        return exit_status(exc)
    print(doc["table"])
    print(f"wrote {doc['folder']}/study.json, table.md, success/steps/gradient .png and .svg "
          f"({doc['meta']['wall_s_this_call']:.0f} s)")
    return 0


# ---------------------------------------------------------------- registry

# (name, add, run): later issues append their commands here.
COMMANDS = [
    ("corpus", _add_corpus, _run_corpus),
    ("bench", _add_bench, _run_bench),
    ("baseline", _add_baseline, _run_baseline),
    ("train", _add_train, _run_train),
    ("evaluate", _add_evaluate, _run_evaluate),
    ("generate", _add_generate, _run_generate),
    ("gradcheck", _add_gradcheck, _run_gradcheck),
    ("probe", _add_probe, _run_probe),
    ("jacobian", _add_jacobian, _run_jacobian),
    ("plot", _add_plot, _run_plot),
    ("demo", _add_demo, _run_demo),
    ("study", _add_study, _run_study),
    ("sweep", _add_sweep, _run_sweep),
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnlm",
        description="Recurrent language models with hand-written BPTT, and instruments "
                    "that show why they are hard to train.",
    )
    from . import __version__
    parser.add_argument("--version", action="version", version=f"rnnlm {__version__}")
    sub = _subcommands(parser, "command", "COMMAND")
    for name, add, _ in COMMANDS:
        add(sub)
    return parser


def _check_numbers(args) -> None:
    """Every parsed number against config.RANGES (one table for the CLI and the library)."""
    for name, value in vars(args).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            C.check_range(name, value)


def _check_corpora_dir(args) -> None:
    """--corpora-dir: an empty value is refused (it would search nothing, or, read as "not given",
    every default place); any other is made absolute here, so that a run's config.json names the
    same folder wherever --resume or evaluate is run from later."""
    import os
    value = getattr(args, "corpora_dir", None)
    if value is None:
        return
    if not str(value).strip():
        raise UserError("--corpora-dir is empty; give the folder that holds the corpus's folder, "
                        "or leave the flag out to search the default places")
    args.corpora_dir = os.path.abspath(os.path.expanduser(value))


def _check_paths(args) -> None:
    """An empty --out is refused: a folder named '' is none, and read as "not given" it would put the run
    in a default folder the user did not ask for."""
    if getattr(args, "out", None) is not None and not str(args.out).strip():
        raise UserError("--out is empty; give where to write, or leave the flag out for the default")


def _stdout_closed() -> int:
    """The exit of a command whose standard output was closed under it (`| head`): quiet, as Unix tools
    end, with 141 (128 + SIGPIPE)."""
    import signal
    _drop_stdout()
    return 128 + int(getattr(signal, "SIGPIPE", 13))


def _drop_stdout() -> None:
    """Point standard output at os.devnull, so that Python's flush at exit does not raise the write error a
    second time (a BrokenPipeError, or disk full on `> /dev/full`: the recipe of the `signal` module's notes)."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):     # a stdout without a file descriptor (tests capture it)
        pass


def _on_stdout(exc: OSError) -> OSError:
    """An OSError of a write to standard output (it names no file) as one naming STDOUT, so that its line
    advises the shell's redirection, not a flag; an error that names its file, or a closed pipe, as it is."""
    if isinstance(exc, BrokenPipeError) or exc.filename is not None or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), STDOUT)


class _NamedStdout:
    """Standard output while a command runs: a write or flush that fails raises the OSError naming STDOUT
    (`_on_stdout`), so that every command's line says "standard output" and advises the shell's > FILE,
    whichever print failed. Needed because a write that fails at once (`> /dev/full`, the first print)
    names no file and leaves nothing buffered, so that `_stdout_fails` can no longer tell it was stdout's.
    Everything else (fileno, isatty, buffer, encoding) is the stream's own."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise _on_stdout(exc) from None

    def flush(self):
        try:
            return self._stream.flush()
        except OSError as exc:
            raise _on_stdout(exc) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _stdout_named():
    """sys.stdout as a _NamedStdout for the block (the command's run and its last flush), then as it was."""
    stream = sys.stdout
    sys.stdout = _NamedStdout(stream)
    try:
        yield
    finally:
        if isinstance(sys.stdout, _NamedStdout):
            sys.stdout = stream


def _stdout_fails() -> bool:
    """Whether standard output refuses its buffered text (after an OSError naming no file: was it stdout's?)."""
    try:
        sys.stdout.flush()
    except OSError:
        return True
    return False


_PYTHON_FORMAT = warnings.formatwarning


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning of ours (UserWarning: a file read as latin-1, a cache folder not writable) as one line,
    as the errors are; any other keeps Python's form (file, line, source)."""
    if category is UserWarning:
        return f"warning: {message}\n"
    return _PYTHON_FORMAT(message, category, filename, lineno, line)


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (tests call this directly)."""
    before, warnings.formatwarning = warnings.formatwarning, _warning_line
    try:
        with sigterm_raises() as seen:   # from the first line: a stop during the imports is one line too
            try:
                return _main(argv)
            except Exception:
                if seen.signum is None:
                    raise
                # Terminated landed where it became another error (inside an import's lock): still a stop
                print("terminated", file=sys.stderr)
                return 143
    finally:
        warnings.formatwarning = before


def _main(argv=None) -> int:
    runners = {name: run for name, _, run in COMMANDS}
    args = None
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            sys.stdout.flush()  # --help, --version: text still buffered meets a closed pipe here (141 below)
            raise
        _check_numbers(args)
        _check_corpora_dir(args)
        _check_paths(args)
        with _stdout_named():    # a failed write of any command's output names standard output
            status = int(runners[args.command](args) or 0)
            sys.stdout.flush()  # output still buffered meets a closed pipe here, not at the interpreter's exit
        return status
    except BrokenPipeError:              # stdout closed by its reader (`generate RUN | head -c 10`)
        return _stdout_closed()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:           # a model or batch too large for this machine
        print(f"error: {describe_memory_error(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:               # disk full, read-only folder, --out naming a file, `> /dev/full`, ...
        if exc.filename is None and _stdout_fails():    # a print into a full disk, raised mid-command
            exc = _on_stdout(exc)
        if exc.filename == STDOUT:
            _drop_stdout()
        out_flag = "--out" if hasattr(args, "out") else None    # the commands that write where --out says
        print(f"error: {describe_os_error(exc, out_flag)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:     # a sweep ended by SIGTERM raises sweep.Terminated, one of these: 143
        from .sweep import exit_status, stop_word
        print(stop_word(exc), file=sys.stderr)
        return exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
