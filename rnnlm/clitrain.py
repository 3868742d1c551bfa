"""The `train`, `evaluate`, `generate` and `score` commands: their flags and what they run.

`_train_config` turns the `train` flags into a TrainConfig (or a resume's
saved one with the few settings a resume may change).

The one thing to know before editing: a flag that sets a config field takes
its default from config.py (cliflags._arg); `_train_config` reads only the
flags the user gave (`_given`), so that a resume can tell a flag given from
a default, and the library is imported inside the `_run_` functions.
"""
from __future__ import annotations

import dataclasses
import sys

from . import config as C
from .cliflags import (_ACTIVATION_HELP, _RECURRENT_SCALE_HELP, _add_data_flags, _arg, _clip_arg, _data_config,
                       _fallback_note, _given, check_checkpoint_flag, float_arg, training_now_note,
                       unheard_stdout)
from .errors import UserError, plural
from .settings import default


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
    _arg(o, T, "lr", type=float_arg, unset=True, help=f"learning rate (default per optimizer: {per_optimizer})")
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
    _arg(o, T, "min_lr", type=float_arg, unset=True,
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
        optimizer = optimizer or default(C.TrainConfig, "optimizer")
        for flags, needs in ((("momentum", "nesterov"), "momentum"), (("beta1", "beta2"), "adam")):
            for name in flags:
                if name in given and optimizer != needs:
                    raise UserError(f"--{name} is for --optimizer {needs}; this run uses --optimizer {optimizer} "
                                    f"(drop --{name} or add --optimizer {needs})")
    if "max_skips" in given and given.get("on_nonfinite", "skip" if args.resume else
                                           default(C.TrainConfig, "on_nonfinite")) != "skip":
        raise UserError("--max-skips is for --on-nonfinite skip (with stop, the first non-finite step ends the run)")


def _run_train(args):
    # (a stop before train's own start-up, which says what a stop leaves: "before the training started", the
    # CLI's line)
    from .stopping import exit_status
    from .summary import format_summary
    from .train import train
    config, resume = _train_config(args)
    summary, stopped = {}, None

    def saved() -> str:
        if not summary:     # stopped in the final evaluation: train's own line said what is saved
            return "the run is saved in its run folder (the line above)"
        return f"the run trained and is saved in {summary['run_dir']}: its results are in " \
               f"{summary['run_dir']}/metrics.jsonl"

    with unheard_stdout(saved):
        try:
            summary = train(config, resume=resume)
        except KeyboardInterrupt as exc:    # during the final evaluation (a stop in training returns a summary)
            if not getattr(exc, "said", False):     # said: train printed its one line (what is saved, what next)
                raise
            from .errors import exit_status as signal_status
            stopped = signal_status(exc)
        else:
            print(format_summary(summary))
    return exit_status(summary) if stopped is None else stopped     # 130 after Ctrl-C, 143 after SIGTERM


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="cross-entropy and perplexity of a trained model on a split or a text file")
    p.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    p.add_argument("--split", default=None, choices=C.SPLITS,
                   help="the run's corpus split to evaluate (default valid; not with --text)")
    p.add_argument("--text", default=None, metavar="FILE",
                   help="evaluate this text file instead (- reads standard input), tokenized with the run's "
                        "settings and vocabulary")
    p.add_argument("--corpus", default=None, metavar="PATH",
                   help="where the run's corpus is now, when it moved since training (its checksum must match)")
    p.add_argument("--checkpoint", default=None, choices=C.CHECKPOINTS,
                   help="best.npz (default) or model.npz of a run folder (not with a .npz file)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="parallel streams (default: the run's eval batch size; 1 = one unbroken stream)")
    p.add_argument("--bptt", type=int, default=None, help="window length (default: the run's)")
    return p


def _text_stream_notes(r: dict, asked: int | None, what: str = "text") -> list[str]:
    """evaluate's notes on how the text (or, with a --batch-size given, the split: `what`) was read: a
    --batch-size too large for it (read as one stream), the predictions that B streams side by side do not
    make (each stream's first token is only read, and the last len % B tokens fill none), and a score mostly
    of <unk>."""
    notes = []
    B, predictable = r["batch_size"], r["tokens"] - 1
    if asked is not None and asked != B:
        notes.append(f"--batch-size {asked:,} is more streams than the {what}'s {r['tokens']:,} tokens can fill "
                     f"(each needs two): read as one stream")
    if r["predicted"] < predictable:
        tail = r["unscored"]
        tail = (f", and the last {tail:,} tokens fill none" if tail > 1 else ", and the last token fills none"
                if tail else "")
        # each stream starts from a zero state: a briefly trained RNN can score far worse so than in one stream
        notes.append(f"read as {B} streams side by side, {r['predicted']:,} of the {what}'s {predictable:,} "
                     f"predictions are made (each stream's first token is only read{tail}), each stream from a "
                     f"zero state; --batch-size 1 reads it as one stream and makes them all")
    if r["oov_rate"] > 0.5:         # (a corpus's own held-out text: 7-30% with a 2,000-10,000-word vocabulary)
        notes.append(f"{100 * r['oov_rate']:.0f}% of the text is out of the vocabulary, each such word read and "
                     f"predicted as the one word <unk>: the perplexity is not comparable with one of a text the "
                     f"vocabulary covers")
    return notes


def _run_evaluate(args):
    from .evaluate import run_evaluate
    from .runs import fmt_ppl_of
    if args.text is not None and args.split is not None:
        raise UserError("--split picks one of the run's own splits and --text a file instead; give one of them")
    if args.text is not None and args.corpus is not None:
        raise UserError("--corpus says where the run's own corpus is now, for its splits; --text reads a file "
                        "instead: give one of them")
    check_checkpoint_flag(args.run, args.checkpoint)
    r = run_evaluate(args.run, split=args.split or "valid", text=args.text, which=args.checkpoint or "best",
                     batch_size=args.batch_size, bptt=args.bptt, corpus=args.corpus)
    print(f"checkpoint: {r['checkpoint']}{_fallback_note(args.run, args.checkpoint or 'best', r['checkpoint'])}")
    if (busy := training_now_note(args.run, r["checkpoint"], r.get("checkpoint_step"))) is not None:
        print(f"note: {busy}")
    print(f"text: {r['source']}  ({r['tokens']:,} {plural(r['tokens'], 'token')}, {r['oov']:,} out of vocabulary = "
          f"{100 * r['oov_rate']:.2f}%)")
    if r.get("note"):
        print(f"note: {r['note']}")
    nats = r["loss"]
    fmt = (lambda x: f"{x:.4f}") if abs(nats) < 1e5 else (lambda x: f"{x:.4g}")      # noqa: E731
    print(f"cross-entropy: {fmt(nats)} nats/token ({fmt(nats / 0.6931471805599453)} bits/token) "
          f"over {r['predicted']:,} {plural(r['predicted'], 'prediction')}, batch size {r['batch_size']:,}, "
          f"bptt {r['bptt']}")
    print(f"perplexity: {fmt_ppl_of(r['ppl'], nats)}")
    if args.text is not None or args.batch_size is not None:    # (a split alone: scored as training scored it)
        for line in _text_stream_notes(r, args.batch_size, "text" if args.text is not None else "split"):
            print(f"note: {line}")
    return 0


def _add_generate(sub):
    p = sub.add_parser("generate", help="sample Portuguese text from a trained model")
    p.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    p.add_argument("--words", type=int, default=100,
                   help="words to generate after the prime, counting tokens with a letter or digit; punctuation "
                        "marks and sentence ends (<eos>, printed as line breaks) are not counted (default 100)")
    p.add_argument("--prime", default="", help='text to continue, e.g. "O homem que"')
    p.add_argument("--temperature", type=float_arg, default=1.0,
                   help="divide the logits by T; < 1 is more conservative; 0 = greedy (default 1)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the K most likely words; 0 = all")
    p.add_argument("--top-p", type=float_arg, default=1.0,
                   help="sample among the most likely words holding mass P (nucleus); 1 = all")
    p.add_argument("--seed", type=int, default=0, help="same seed, same text (default 0)")
    p.add_argument("--num-samples", type=int, default=1, help="independent samples (default 1)")
    p.add_argument("--checkpoint", default=None, choices=C.CHECKPOINTS,
                   help="best.npz (default) or model.npz of a run folder (not with a .npz file)")
    p.add_argument("--allow-unk", action="store_true", help="let <unk> be sampled (masked by default)")
    return p


def _run_generate(args):
    """Print the samples while they are drawn (flushed per piece of text), so that a long one is read as it
    grows and a Ctrl-C (SIGTERM) keeps what was drawn: that is printed, one line on stderr says after how
    many words it stopped, and the exit status is 130 (143), as train's. A sample cut short (a model that
    draws punctuation instead of words, see sample.max_draws) is said in one line on stderr; status 0."""
    from .runs import load_model
    from .sample import TextStream, check_fits_in_memory
    _check_prime(args.prime)
    _check_greedy(args)
    if args.prime and not args.prime.strip():
        raise UserError("--prime is blank; give it some words, or leave it out to start from a sentence end")
    if args.words == 0 and not args.prime:
        raise UserError("--words 0 with no --prime has nothing to print; give --words 1 or more (with a --prime, "
                        "--words 0 prints the prime alone)")
    check_checkpoint_flag(args.run, args.checkpoint)
    which = args.checkpoint or "best"
    model, vocab, info, path = load_model(args.run, which)
    check_fits_in_memory(model, len(vocab), args.words, args.num_samples)   # one line, before the next
    # On stderr, so that stdout stays the generated text alone (for pipes); evaluate prints the same line.
    print(f"checkpoint: {path}{_fallback_note(args.run, which, path)}", file=sys.stderr)
    if (busy := training_now_note(args.run, path, getattr(model, "checkpoint_step", None))) is not None:
        print(f"note: {busy}", file=sys.stderr)
    data = info.get("train", {}).get("data", {})
    stream = TextStream(model, vocab, words=args.words, prime=args.prime, temperature=args.temperature,
                        top_k=args.top_k, top_p=args.top_p, seed=args.seed, num_samples=args.num_samples,
                        keep_case=data.get("keep_case", False), num_token=data.get("num_token", False),
                        allow_unk=args.allow_unk)
    if stream.unknown:
        print(f"note: not in the vocabulary, read as <unk>: {', '.join(dict.fromkeys(stream.unknown))}",
              file=sys.stderr, flush=True)
    return _print_samples(stream, args.words, args.num_samples)     # (a failed write: see _NamedStdout)


def _check_greedy(args) -> None:
    """--temperature 0 (greedy: always the most likely word) with --top-k or --top-p, which it would ignore,
    is one line, not a silent choice; with --num-samples above 1 a note says the samples are all the same."""
    if args.temperature != 0:
        return
    given = [f for f, on in ((f"--top-k {args.top_k}", args.top_k != 0), (f"--top-p {args.top_p!r}", args.top_p != 1))
             if on]
    if given:
        raise UserError(f"{' and '.join(given)} cannot act with --temperature 0, which always takes the most "
                        "likely word; leave out one or the other")
    if args.num_samples > 1:
        print(f"note: with --temperature 0 every one of the {args.num_samples} samples is the same (the most "
              "likely word each time); a temperature above 0 makes them differ", file=sys.stderr)


def _check_prime(prime: str, what: str = "--prime") -> None:
    """UserError (one line, naming the bytes) for a --prime (or `what`: score's sentence) that is not valid
    UTF-8 (`$'caf\\xe9'`, a latin-1 terminal): Python hands such bytes over as lone surrogates, which would be
    read as <unk> and printed as replacement characters."""
    try:
        prime.encode("utf-8")
    except UnicodeEncodeError:
        bad = [c for c in prime if 0xD800 <= ord(c) <= 0xDFFF]
        names = dict.fromkeys(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else f"U+{ord(c):04X}"
                              for c in bad)
        raise UserError(f"{what} is not valid UTF-8 (bytes {' '.join(names)}); give the text in UTF-8 "
                        f"(a UTF-8 terminal, or convert it: iconv -f latin1 -t utf-8)") from None


def _print_samples(stream, words: int, M: int) -> int:
    """generate's text: stream's pieces written as they come; the exit status (0, 130 or 143)."""
    from .errors import exit_status, stop_word
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
    except KeyboardInterrupt as exc:    # Ctrl-C, or SIGTERM (errors.Terminated): print what was drawn, then stop
        # (the samples not begun yet have no text: a blank line each would flood the screen, 2 x M lines)
        begun = [j for j in range(shown + 1, M) if stream.text(j)]
        rest = stream.text(shown)[written:] + "".join("\n\n" + stream.text(j) for j in begun)
        out.write(rest + "\n")
        out.flush()
        asked = words * M
        unbegun = M - shown - 1 - len(begun)
        print(f"{stop_word(exc)} after {int(stream.words_drawn.sum()):,} of {asked:,} {plural(asked, 'word')}"
              + (f" ({M:,} samples of {words:,})" if M > 1 else "") + "; the text drawn so far is printed"
              + (f" ({unbegun:,} {plural(unbegun, 'sample')} not begun)" if unbegun else ""), file=sys.stderr)
        return exit_status(exc)
    out.write("\n")
    if (note := stream.short_note(flags=True)) is not None:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _add_score(sub):
    p = sub.add_parser("score", help="log-probability and per-word surprisal of sentences under a trained model",
                       description="Score sentences with a trained model: each token's surprisal -log2 p(token | "
                                   "the tokens before it) in bits, and each sentence's log-probability. Two "
                                   "sentences that differ in one word (a minimal pair) show which the model "
                                   "prefers.")
    p.add_argument("run", help="a run folder (runs/NAME) or a checkpoint .npz")
    p.add_argument("sentences", nargs="*", metavar="SENTENCE",
                   help='sentences to score, each one argument, e.g. "O homem que usava uma peruca entrou no bar."')
    p.add_argument("--file", default=None, metavar="FILE",
                   help="also score each non-empty line of this UTF-8 file (- reads standard input)")
    p.add_argument("--checkpoint", default=None, choices=C.CHECKPOINTS,
                   help="best.npz (default) or model.npz of a run folder (not with a .npz file)")
    p.add_argument("--tsv", action="store_true",
                   help="print one tab-separated line per token instead (sentence, position, token, log p in "
                        "nats, surprisal in bits, in vocabulary)")
    p.add_argument("--totals", action="store_true", help="print each sentence's totals only, not each token's")
    return p


def _score_lines(args) -> list:
    """The sentences to score: the arguments, then the non-empty lines of --file (- for standard input)."""
    sentences = list(args.sentences)
    if args.file is not None:
        if args.file == "-":        # read as a --file is: a cp1252 text with a warning, not refused
            from .corpus import decode_text, read_stdin
            raw = read_stdin(advice="give fewer sentences, or score the rest in another call")
            text = decode_text(raw, "standard input") if raw.strip() else ""
        else:
            from pathlib import Path

            from .corpus import read_text
            if not Path(args.file).exists() or Path(args.file).is_dir():   # (a pipe, <(...), /dev/stdin: read)
                what = "is a folder" if Path(args.file).is_dir() else "does not exist"
                raise UserError(f"--file {args.file} {what}; give a UTF-8 text file with one sentence per line")
            text = read_text(Path(args.file), corpus=False)
        # one sentence per line, split at line ends only (str.splitlines also splits at form feeds, U+2028
        # and U+0085, which text taken from a PDF holds inside its lines): sentence k is then the k-th line
        # that is not blank, and the blank ones are named
        lines = text.split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
        if blank and len(blank) < len(lines):
            from .errors import consecutive_runs
            runs = consecutive_runs(blank)
            where = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:10]) + (
                f" and {len(runs) - 10:,} more" if len(runs) > 10 else "")
            print(f"note: --file: blank {'line' if len(blank) == 1 else 'lines'} {where} skipped; the sentences "
                  f"are numbered without {'it' if len(blank) == 1 else 'them'}", file=sys.stderr)
        sentences += [line for line in lines if line.strip()]
    if not sentences:
        raise UserError("no sentence to score; give sentences as arguments (in quotes) or --file FILE with one "
                        "per line")
    for i, sentence in enumerate(sentences):
        if not sentence.strip():    # (a sentence of punctuation alone is refused once it is tokenized)
            raise UserError(f"sentence {i + 1} is empty; give each sentence as a non-empty argument in quotes")
        _check_prime(sentence, f"sentence {i + 1}")
    return sentences


def _run_score(args):
    from .runs import load_model
    from .score import LN2, format_scores, score_sentences
    if args.tsv and args.totals:
        raise UserError("--tsv prints every token and --totals only each sentence's sum; give one of them")
    check_checkpoint_flag(args.run, args.checkpoint)
    sentences = _score_lines(args)
    which = args.checkpoint or "best"
    model, vocab, info, path = load_model(args.run, which)
    print(f"checkpoint: {path}{_fallback_note(args.run, which, path)}", file=sys.stderr)
    if (busy := training_now_note(args.run, path, getattr(model, "checkpoint_step", None))) is not None:
        print(f"note: {busy}", file=sys.stderr)
    data = info.get("train", {}).get("data", {})
    scores = score_sentences(model, vocab, sentences, keep_case=data.get("keep_case", False),
                             num_token=data.get("num_token", False))
    unknown = list(dict.fromkeys(w for sc in scores for w in sc.unknown))
    if unknown:
        more = f" and {len(unknown) - 20:,} more" if len(unknown) > 20 else ""
        print(f"note: not in the vocabulary, read and scored as <unk>: {', '.join(unknown[:20])}{more}",
              file=sys.stderr)
    if args.tsv:    # csv's tab dialect: a token '"' is quoted, so that csv, pandas and R read it back row for row
        import csv
        out = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
        out.writerow(["sentence", "position", "token", "logp_nats", "surprisal_bits", "in_vocabulary"])
        for i, sc in enumerate(scores):
            for j, (token, lp) in enumerate(zip(sc.tokens, sc.logprobs)):
                out.writerow([i + 1, j + 1, token, f"{lp:.6f}", f"{-lp / LN2:.6f}", int(token not in sc.unknown)])
        return 0
    print(format_scores(scores, per_token=not args.totals))
    return 0
