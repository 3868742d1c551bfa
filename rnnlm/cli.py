"""The command-line interface: one argparse parser, one subcommand per job.

Each subcommand has an `_add_<name>(subparsers)` that declares its flags and
a `_run_<name>(args) -> int` that imports what it needs *inside* the function,
so that `--help` stays instant (no Numba, no matplotlib at import time).
User mistakes raise `UserError`; `main` turns them into one line on stderr
and exit status 2. Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import sys

from .errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UserError(f"{self.prog}: {message} (see '{self.prog} --help')")


# ---------------------------------------------------------------- corpus


def _add_corpus(sub):
    p = sub.add_parser("corpus", help="inspect, locate or download a corpus")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", parser_class=_Parser)
    csub.required = True
    info = csub.add_parser("info", help="token counts, vocabulary, OOV rates, samples")
    info.add_argument("corpus", nargs="?", default="machado",
                      help="a named corpus (machado, sintetico) or a path to a .txt file or folder")
    _add_data_flags(info)
    dl = csub.add_parser("download", help="fetch a named corpus from its catalog URLs")
    dl.add_argument("corpus", help="a named corpus, e.g. machado")
    dl.add_argument("--corpora-dir", default=None,
                    help="put it in DIR/<name>/ (default: the repository's corpora/<name>/)")
    return p


def _add_data_flags(p):
    """Flags shared by every command that reads a corpus."""
    g = p.add_argument_group("corpus and tokenizer")
    g.add_argument("--corpora-dir", default=None,
                   help="folder holding named corpora (else $RNNLM_CORPORA, ./corpora, ../shared/corpora)")
    g.add_argument("--keep-case", action="store_true", help="do not lower-case the text")
    g.add_argument("--num-token", action="store_true", help="map numbers to the <num> token")
    g.add_argument("--max-vocab", type=int, default=10000,
                   help="keep at most this many words, <unk> and <eos> included (0 = no limit)")
    g.add_argument("--min-count", type=int, default=1,
                   help="drop words seen fewer times in the training split")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the train/valid/test split")
    g.add_argument("--valid-fraction", type=float, default=0.05,
                   help="share of tokens held out for validation, as whole works when possible (0 = none)")
    g.add_argument("--test-fraction", type=float, default=0.05,
                   help="share of tokens held out for test, as whole works when possible (0 = none)")
    g.add_argument("--no-cache", action="store_true",
                   help="re-tokenize instead of reading the .npy cache (the cache is then rewritten)")


def _run_corpus(args):
    from . import data
    return data.run_corpus_command(args)


# ---------------------------------------------------------------- bench


def _add_bench(sub):
    p = sub.add_parser("bench", help="training/inference tokens/s per cell and config")
    p.add_argument("--cell", default="all", choices=["rnn", "lstm", "gru", "all"])
    p.add_argument("--config", default="all", help="tiny, small, medium, large or all")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported")
    p.add_argument("--threads", type=int, default=2, help="threads for both sides (Numba, BLAS, PyTorch)")
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
    return p


def _run_bench(args):
    from . import bench
    return bench.run_bench_command(args)


# ---------------------------------------------------------------- baseline


def _add_baseline(sub):
    p = sub.add_parser("baseline", help="Kneser-Ney trigram perplexity on the same splits and vocabulary")
    p.add_argument("--corpus", default="machado",
                   help="a named corpus (machado, sintetico) or a path to a .txt file or folder")
    _add_data_flags(p)
    p.add_argument("--split", default="both", choices=["valid", "test", "both"],
                   help="which held-out split(s) to score")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def _run_baseline(args):
    from . import baseline
    return baseline.run_baseline_command(args)


# ---------------------------------------------------------------- train, evaluate, generate


def _train_default(name):
    import dataclasses

    from .train import TrainConfig
    for f in dataclasses.fields(TrainConfig):
        if f.name == name:
            return f.default
    raise KeyError(name)


def _clip_arg(text):
    """--clip-norm/--clip-value: a number, or 0/none for no clipping."""
    if str(text).lower() in ("none", "off"):
        return 0.0
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got '{text}'") from None


def _add_train(sub):
    p = sub.add_parser("train", help="train a word-level RNN/LSTM/GRU language model",
                       description="Train a language model with truncated BPTT. Leaves a run folder "
                                   "(config.json, vocab.json, metrics.jsonl, model.npz, best.npz). "
                                   "Ctrl-C saves a checkpoint; --resume continues it exactly.")
    d = _train_default
    p.add_argument("--corpus", default=None,
                   help="a named corpus (machado, sintetico) or a path to a .txt file or folder (default machado)")
    _add_data_flags(p)
    m = p.add_argument_group("model")
    m.add_argument("--cell", choices=["rnn", "lstm", "gru"], default=None, help=f"default {d('cell')}")
    m.add_argument("--activation", default=None,
                   help=f"rnn only: tanh, relu, sigmoid, tanh:n, scaled-tanh:a,b (default {d('activation')})")
    m.add_argument("--emsize", type=int, default=None, help=f"embedding size (default {d('emsize')})")
    m.add_argument("--hidden", "--nhid", type=int, default=None, help=f"hidden size (default {d('hidden')})")
    m.add_argument("--layers", "--nlayers", type=int, default=None, help=f"stacked layers (default {d('layers')})")
    m.add_argument("--dropout", type=float, default=None,
                   help=f"dropout probability, 0 = none (default {d('dropout')})")
    m.add_argument("--tied", action="store_true", default=None,
                   help="tie encoder and decoder weights (needs --emsize == --hidden)")
    m.add_argument("--init", choices=["default", "xavier", "orthogonal", "identity"], default=None,
                   help=f"weight initialization (default {d('init')})")
    m.add_argument("--recurrent-scale", type=float, default=None,
                   help=f"multiply every W_hh after init (default {d('recurrent_scale')})")
    m.add_argument("--forget-bias", type=float, default=None,
                   help=f"lstm: add to the forget-gate bias at init (default {d('forget_bias')})")
    o = p.add_argument_group("optimization")
    o.add_argument("--bptt", type=int, default=None, help=f"BPTT window length (default {d('bptt')})")
    o.add_argument("--batch-size", type=int, default=None, help=f"training streams (default {d('batch_size')})")
    o.add_argument("--eval-batch-size", type=int, default=None,
                   help=f"validation/test streams (default {d('eval_batch_size')})")
    o.add_argument("--optimizer", choices=["sgd", "momentum", "adagrad", "adam"], default=None,
                   help=f"default {d('optimizer')}")
    o.add_argument("--lr", type=float, default=None,
                   help="learning rate (default per optimizer: sgd 20, momentum 2, adagrad 0.1, adam 0.001)")
    o.add_argument("--momentum", type=float, default=None, help=f"for --optimizer momentum (default {d('momentum')})")
    o.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum")
    o.add_argument("--beta1", type=float, default=None, help=f"Adam (default {d('beta1')})")
    o.add_argument("--beta2", type=float, default=None, help=f"Adam (default {d('beta2')})")
    clip = o.add_mutually_exclusive_group()
    clip.add_argument("--clip-norm", type=_clip_arg, default=None, metavar="X",
                      help=f"rescale all gradients when their joint L2 norm exceeds X; 0 or none = off "
                           f"(default {d('clip_norm')})")
    clip.add_argument("--clip-value", type=_clip_arg, default=None, metavar="X",
                      help="instead clip every gradient element to [-X, X] (turns --clip-norm off)")
    o.add_argument("--omega", type=float, default=None, metavar="ALPHA",
                   help=f"rnn only: add ALPHA times the Pascanu et al. (2013) regularizer Ω, which keeps "
                        f"backpropagated gradient norms from step to step; 0 = off (default {d('omega')})")
    o.add_argument("--lr-decay", type=float, default=None,
                   help=f"divide lr by this when validation does not improve; 1 = never (default {d('lr_decay')})")
    o.add_argument("--patience", type=int, default=None,
                   help=f"stop after this many evaluations without improvement; 0 = never (default {d('patience')})")
    o.add_argument("--seed", type=int, default=None, help=f"init and dropout seed (default {d('seed')})")
    b = p.add_argument_group("budget and output")
    b.add_argument("--epochs", type=int, default=None, help=f"passes over the training text (default {d('epochs')})")
    b.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in total; 0 = no limit")
    b.add_argument("--max-minutes", type=float, default=None,
                   help=f"wall-time budget over the run's life; 0 = none (default {d('max_minutes')} when "
                        "neither --epochs nor --max-steps is given, else none)")
    b.add_argument("--eval-every", type=int, default=None,
                   help=f"also validate every N steps; 0 = at epoch ends only (default {d('eval_every')})")
    b.add_argument("--log-every", type=int, default=None,
                   help=f"write a step event to metrics.jsonl every N steps (default {d('log_every')})")
    b.add_argument("--track-jacobian-every", type=int, default=None, metavar="N",
                   help="record a cheap Jacobian lag curve (D=30, 4 anchors) in metrics.jsonl at step 0 "
                        "and every N steps, for 'plot lag --over-training'; 0 = off (default 0)")
    b.add_argument("--on-nonfinite", choices=["stop", "skip"], default=None,
                   help="on a nan/inf loss or gradient: stop cleanly (default) or skip the step")
    b.add_argument("--sample-words", type=int, default=None,
                   help=f"words sampled from the best model at the end; 0 = none (default {d('sample_words')})")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--out", default=None, help="run folder (default runs/<cell>-<date>-<time>)")
    b.add_argument("--resume", default=None, metavar="RUN",
                   help="continue the run in this folder from its model.npz, with its settings")
    return p


def _run_train(args):
    from . import train
    config, resume = train.config_from_args(args)
    summary = train.train(config, resume=resume)
    print(train.format_summary(summary))
    return 130 if summary["stopped"] == "interrupted" else 0


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="cross-entropy and perplexity of a trained model on a split or a text file")
    p.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"],
                   help="the run's corpus split to evaluate (default valid)")
    p.add_argument("--text", default=None, metavar="FILE",
                   help="evaluate this text file instead, tokenized with the run's settings and vocabulary")
    p.add_argument("--checkpoint", default="best", choices=["best", "latest"],
                   help="best.npz (default) or model.npz of a run folder")
    p.add_argument("--batch-size", type=int, default=None,
                   help="parallel streams (default: the run's eval batch size; 1 = one unbroken stream)")
    p.add_argument("--bptt", type=int, default=None, help="window length (default: the run's)")
    return p


def _run_evaluate(args):
    from .train import run_evaluate
    r = run_evaluate(args.run, split=args.split, text=args.text, which=args.checkpoint,
                     batch_size=args.batch_size, bptt=args.bptt)
    print(f"checkpoint: {r['checkpoint']}")
    print(f"text: {r['source']}  ({r['tokens']:,} tokens, {r['oov']:,} out of vocabulary = "
          f"{100 * r['oov_rate']:.2f}%)")
    print(f"cross-entropy: {r['loss']:.4f} nats/token ({r['loss'] / 0.6931471805599453:.4f} bits/token) "
          f"over {r['predicted']:,} predictions, batch size {r['batch_size']}, bptt {r['bptt']}")
    print(f"perplexity: {r['ppl']:.2f}")
    return 0


def _add_generate(sub):
    p = sub.add_parser("generate", help="sample Portuguese text from a trained model")
    p.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    p.add_argument("--words", type=int, default=100, help="tokens to generate (default 100)")
    p.add_argument("--prime", default="", help='text to continue, e.g. "O homem que"')
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by T; < 1 is more conservative; 0 = greedy (default 1)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the K most likely words; 0 = all")
    p.add_argument("--top-p", type=float, default=1.0,
                   help="sample among the most likely words holding mass P (nucleus); 1 = all")
    p.add_argument("--seed", type=int, default=0, help="same seed, same text (default 0)")
    p.add_argument("--num-samples", type=int, default=1, help="independent samples (default 1)")
    p.add_argument("--checkpoint", default="best", choices=["best", "latest"],
                   help="best.npz (default) or model.npz of a run folder")
    p.add_argument("--allow-unk", action="store_true", help="let <unk> be sampled (masked by default)")
    return p


def _run_generate(args):
    from . import checkpoint
    from .sample import generate_text
    model, vocab, info, _ = checkpoint.load_model(args.run, args.checkpoint)
    data = info.get("train", {}).get("data", {})
    unknown = []
    texts = generate_text(model, vocab, words=args.words, prime=args.prime, temperature=args.temperature,
                          top_k=args.top_k, top_p=args.top_p, seed=args.seed, num_samples=args.num_samples,
                          keep_case=data.get("keep_case", False), num_token=data.get("num_token", False),
                          allow_unk=args.allow_unk, unknown_out=unknown)
    if unknown:
        print(f"note: not in the vocabulary, read as <unk>: {', '.join(dict.fromkeys(unknown))}",
              file=sys.stderr)
    print("\n\n".join(texts))
    return 0


# ---------------------------------------------------------------- gradcheck


def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck",
                       help="compare every hand-written gradient with finite differences (float64)")
    p.add_argument("--cell", choices=("rnn", "lstm", "gru", "all"), default="all",
                   help="which cell to check (default all)")
    p.add_argument("--activation", default="tanh",
                   help="rnn activation: tanh, relu, sigmoid, tanh:n, scaled-tanh:a,b, or 'all'")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    p.add_argument("--tied", action="store_true", help="tie encoder and decoder weights")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout probability, with one fixed mask (0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model, data and masks")
    return p


def _run_gradcheck(args):
    from .activations import parse_activation
    from .gradcheck import run_command
    if args.activation != "all":
        parse_activation(args.activation)
    if args.cell in ("lstm", "gru") and args.activation != "tanh":
        raise UserError(f"--activation is for --cell rnn (or all); the {args.cell}'s gates use fixed sigmoid and tanh")
    if args.layers < 1:
        raise UserError("--layers must be at least 1")
    if not 0.0 <= args.dropout < 1.0:
        raise UserError("--dropout must be in [0, 1)")
    return run_command(args)


# ---------------------------------------------------------------- probe


def _add_probe(sub):
    p = sub.add_parser("probe", help="long-range dependency probes: subject agreement, context usage")
    psub = p.add_subparsers(dest="probe_command", metavar="ACTION", parser_class=_Parser)
    psub.required = True
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
    c.add_argument("--split", default="test", choices=["train", "valid", "test"],
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
        q.add_argument("--checkpoint", default="best", choices=["best", "latest"],
                       help="best.npz (default) or model.npz of a run folder")
        q.add_argument("--batch-size", type=int, default=256, help="sequences run in parallel (default 256)")
    return p


def _run_probe(args):
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if getattr(args, "n", 1) < 1 or getattr(args, "n_targets", 1) < 1:
        raise UserError("--n and --n-targets must be at least 1")
    from .probes import run_probe_command
    return run_probe_command(args)


def _add_plot_probe(plot_sub):
    """The `plot probe` subaction; `plot_sub` is the `plot` command's subparsers."""
    q = plot_sub.add_parser("probe", help="agreement accuracy or context-loss increase vs distance")
    q.add_argument("inputs", nargs="+", metavar="RUN_OR_JSON",
                   help="run folders (their probe-<kind>*.json) or probe JSON files; one curve each")
    q.add_argument("--kind", default="agreement", choices=["agreement", "context"],
                   help="which probe's files to take from run folders (default agreement)")
    q.add_argument("--out", default=None, help="image file (default: probe-<kind>.png beside the first input)")
    q.add_argument("--title", default=None, help="figure title (default: says what is plotted)")
    return q


def _run_plot_probe(args):
    from pathlib import Path

    from .plots import plot_probe
    from .probes import find_probe_results
    paths = find_probe_results(args.inputs, args.kind)
    first = Path(args.inputs[0])
    out = args.out or str((first if first.is_dir() else first.parent) / f"probe-{args.kind}.png")
    print(f"wrote {plot_probe(paths, out, title=args.title)}")
    return 0


# ---------------------------------------------------------------- jacobian, plot


def _add_jacobian(sub):
    p = sub.add_parser("jacobian", help="Jacobian norms by time lag and gradient flow (vanishing/exploding)",
                       description="Measure ||ds_t/ds_{t-d}|| (spectral and Frobenius) and ||dL_t/dh_{t-d}|| "
                                   "for d = 1..D at K anchor positions of a text read from a zero state; "
                                   "print a table, the decay rate per step and the vanish lag; write JSON.")
    p.add_argument("run", nargs="?", default=None, metavar="CHECKPOINT_OR_RUN",
                   help="a run folder (runs/NAME) or a checkpoint .npz; leave out with --init")
    p.add_argument("--checkpoint", default="best", choices=["best", "latest"],
                   help="best.npz (default) or model.npz of a run folder")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", default=None, metavar="FILE",
                     help="measure on this text file, tokenized the run's way (default: the run's --split)")
    src.add_argument("--split", default="valid", choices=["train", "valid", "test"],
                     help="the corpus split whose first --tokens tokens are read (default valid)")
    p.add_argument("--max-lag", type=int, default=100, help="largest lag D (default 100)")
    p.add_argument("--anchors", type=int, default=32, help="anchor positions K sampled (default 32)")
    p.add_argument("--tokens", type=int, default=1000,
                   help="tokens read from the start of the text; anchors fall in [D, N-1] (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="anchors (and, with --init, the weights) (default 0)")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="default: RUN/jacobian.json, CKPT-jacobian.json, or jacobian-init-<settings>.json here")
    m = p.add_argument_group("a freshly initialized model (--init)")
    m.add_argument("--init", nargs="?", const="default", default=None,
                   choices=["default", "xavier", "orthogonal", "identity"],
                   help="measure a new model with this initialization instead of a checkpoint "
                        "(bare --init = default); tokens from --corpus's --split")
    # defaults None, so that one given without --init (where it would be ignored) is
    # seen; _run_jacobian fills in _JACOBIAN_INIT_DEFAULTS
    m.add_argument("--cell", choices=["rnn", "lstm", "gru"], default=None, help="default lstm")
    m.add_argument("--activation", default=None,
                   help="rnn only: tanh, relu, sigmoid, tanh:n, scaled-tanh:a,b (default tanh)")
    m.add_argument("--hidden", type=int, default=None, help="hidden size H (default 256)")
    m.add_argument("--emsize", type=int, default=None, help="embedding size (default: = --hidden)")
    m.add_argument("--layers", type=int, default=None, help="stacked layers (default 1)")
    m.add_argument("--recurrent-scale", type=float, default=None, help="multiply every W_hh after init (default 1)")
    m.add_argument("--forget-bias", type=float, default=None, help="lstm: forget-gate bias at init (default 0)")
    m.add_argument("--corpus", default=None,
                   help="corpus whose --split feeds an --init model; 'none' = uniformly random tokens "
                        "(also the fallback when the corpus is not found) (default machado)")
    m.add_argument("--vocab-size", type=int, default=None, help="vocabulary of the random tokens (default 10000)")
    _add_data_flags(p)
    return p


_JACOBIAN_INIT_DEFAULTS = dict(cell="lstm", activation="tanh", hidden=256, emsize=0, layers=1,
                               recurrent_scale=1.0, forget_bias=0.0, corpus="machado", vocab_size=10000)


def _run_jacobian(args):
    from .jacobian import run_jacobian_command
    if args.init is None:
        given = [name for name in _JACOBIAN_INIT_DEFAULTS if getattr(args, name) is not None]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UserError(f"{flags}: settings of a fresh model, used with --init only "
                            f"(a checkpoint's model and corpus come from the checkpoint)")
    for name, value in _JACOBIAN_INIT_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return run_jacobian_command(args)


def _add_plot(sub):
    p = sub.add_parser("plot", help="figures (PNG and SVG): lag curves, training runs, probes")
    psub = p.add_subparsers(dest="plot_command", metavar="ACTION", parser_class=_Parser)
    psub.required = True
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
                     help="add the dashed (||W_hh|| max|f'|)^d bound of vanilla-RNN curves")
    lag.add_argument("--labels", default=None, help="comma-separated legend labels, one per input")
    lag.add_argument("--out", default=None,
                     help="image file (default: RUN/plots/lag-....png or beside the first JSON)")
    lag.add_argument("--title", default=None, help="figure title (default: says what is plotted)")
    tr = psub.add_parser("training", help="perplexity, gradient norm and clipping, learning rate, non-finite events")
    tr.add_argument("run", help="a run folder")
    tr.add_argument("--out", default=None, help="image file (default RUN/plots/training.png)")
    tr.add_argument("--title", default=None, help="figure title (default: names the model and clipping)")
    _add_plot_probe(psub)
    return p


def _run_plot(args):
    from pathlib import Path

    from . import plots
    if args.plot_command == "probe":
        return _run_plot_probe(args)
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
        else:
            out = args.out or first.with_name(f"{first.stem}-lag-{what}.png")
        png = plots.plot_lag(list(args.inputs), labels, out, quantity=args.quantity, norm=args.norm,
                             scope=args.scope, flow=args.flow, bound=args.bound, title=args.title)
    print(f"wrote {png} (and .svg)")
    return 0


# ---------------------------------------------------------------- demo


def _add_demo(sub):
    p = sub.add_parser("demo", help="scripted demonstrations: gradients by lag, long-range agreement")
    dsub = p.add_subparsers(dest="demo_command", metavar="ACTION", parser_class=_Parser)
    dsub.required = True
    g = dsub.add_parser("gradients", help="lag curves at init and after training, explosion and clipping, "
                                          "tanh(n*x) (a few minutes)")
    g.add_argument("--out", default=None, help="output folder (default runs/demo-gradients)")
    lr = dsub.add_parser("longrange", help="rnn vs lstm vs gru on sintetico: agreement and context probes, "
                                           "Jacobian curves, table")
    lr.add_argument("--out", default=None, help="output folder (default runs/demo-longrange)")
    lr.add_argument("--minutes", type=float, default=3.0, help="training minutes per model (default 3)")
    lr.add_argument("--min-distance", type=int, default=1,
                    help="shortest subject-verb distance in the training corpus (default 1; e.g. 15 = long dependencies only)")
    lr.add_argument("--omega", type=float, default=None, help="weight of the Ω regularizer for the rnn-omega model (default 1)")
    for q in (g, lr):
        q.add_argument("--quick", action="store_true", help="tiny sizes: runs in well under a minute (for tests)")
        q.add_argument("--seed", type=int, default=0, help="seed of models, data and probes (default 0)")
    return p


def _run_demo(args):
    from .demo import run_demo_command
    return run_demo_command(args)


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
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnlm",
        description="Recurrent language models with hand-written BPTT, and instruments "
                    "that show why they are hard to train.",
    )
    from . import __version__
    parser.add_argument("--version", action="version", version=f"rnnlm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, add, _ in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (tests call this directly)."""
    runners = {name: run for name, _, run in COMMANDS}
    try:
        args = build_parser().parse_args(argv)
        return int(runners[args.command](args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
