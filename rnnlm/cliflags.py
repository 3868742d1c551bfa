"""The CLI's shared parts: the parser class, the flag helpers, the flags several commands share.

`_Parser` reports a usage error as one line and exit status 2; `_arg` declares
a flag whose default and "(default X)" come from the config dataclass;
`_given` reads back only the flags the user gave. The command modules
(clidata, clitrain, cliinstruments, clisweep) build on these; cli.py
registers the commands and runs them.

The one thing to know before editing: a flag that sets a config field takes
its default and the "(default X)" of its help from the dataclass in config.py
(`_arg`), never from a literal here; nothing here imports the library beyond
config.py, settings.py and errors.py, so that `--help` stays instant.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys

from . import config as C
from .errors import STDOUT, UserError
from .settings import default


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
    d = default(cls, name)
    kw.setdefault("dest", name)
    if isinstance(d, bool):
        kw.setdefault("action", "store_true")
    elif "type" not in kw and d is not None:
        kw["type"] = float_arg if type(d) is float else type(d)
    group.add_argument(*(flags or ("--" + name.replace("_", "-"),)), default=None if unset else d,
                       help=help.format(default=d), **kw)


def _given(args, cls) -> dict:
    """The fields of `cls` that have a flag in `args` and were given (not None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.name not in ("data", "model") and getattr(args, f.name, None) is not None}


def _data_config(args) -> C.DataConfig:
    """DataConfig from `_add_data_flags` (and --corpus where the command has it; None = default)."""
    return C.DataConfig(**_given(args, C.DataConfig))


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


def float_arg(text: str) -> float:
    """argparse type of every float flag: float(text), refusing a literal float64 cannot hold (1e-400 reads
    as 0.0, 1e400 as inf), which the range check would otherwise report as the 0.0 or inf the user never
    typed. A text that is no number is float's ValueError (argparse: "invalid float value: 'x'")."""
    value = float(text)
    word = str(text).strip().lower().lstrip("+-")
    if value == 0.0 and any(c in "123456789" for c in word.split("e")[0]):
        raise argparse.ArgumentTypeError(f"'{text}' is too small for a float64 (it reads as 0.0)")
    if math.isinf(value) and word not in ("inf", "infinity"):
        raise argparse.ArgumentTypeError(f"'{text}' is too large for a float64 (it reads as {value})")
    return value


float_arg.__name__ = "float"        # argparse's "invalid float value: 'x'"


def _clip_arg(text):
    """--clip-norm/--clip-value: a number, or 0/none for no clipping."""
    if str(text).lower() in ("none", "off"):
        return 0.0
    try:
        return float_arg(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got '{text}'") from None


# Help shared by train and jacobian --init, so that the two read the same.
_ACTIVATION_HELP = f"rnn only: {C.ACTIVATION_FORMS} (default {{default}})"


_RECURRENT_SCALE_HELP = ("multiply every W_hh after init, to provoke vanishing or explosion (with --init "
                         "orthogonal ||W_hh|| is this scale; the default init's is smaller) (default {default:g})")


def _is_run(folder) -> bool:
    """A run folder: what `train` leaves (config.json or metrics.jsonl inside)."""
    from pathlib import Path
    folder = Path(folder)
    return (folder / "config.json").is_file() or (folder / "metrics.jsonl").is_file()


def _on_stdout(exc: OSError) -> OSError:
    """An OSError of a write to standard output (it names no file) as one naming STDOUT, so that its line
    advises the shell's redirection, not a flag; an error that names its file, or a closed pipe, as it is."""
    if isinstance(exc, BrokenPipeError) or exc.filename is not None or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), STDOUT)


def _fallback_note(run, which: str, path) -> str:
    """What the "checkpoint:" line of evaluate and generate adds when best was asked of a run folder and its
    latest model was read (runs.load_model falls back to it before the first validation)."""
    from pathlib import Path
    if which == "best" and Path(path).name != "best.npz" and Path(run).is_dir():
        return " (no best.npz: no validation has run yet)"
    return ""


def training_now_note(run, path, step: int | None) -> str | None:
    """evaluate's and generate's note on a run folder that a training process holds now (its lock file names
    a live process): the checkpoint read (`path`, saved at training step `step`, as the model read from it
    says: the file may have been replaced since) is the step it had reached at that save, and a later one
    will differ. A .npz file given directly is looked at in its folder (RUN/best.npz of a run being
    trained gets the note too). None for a run not being trained."""
    from pathlib import Path

    from .folderlock import LOCK, lock_holder
    if Path(run).is_file():
        run = Path(run).resolve().parent      # (a link to RUN/model.npz: the run it points into)
        path = Path(path).resolve()
    if not Path(run).is_dir():
        return None
    who = lock_holder(Path(run) / LOCK)
    if who is None:
        return None
    if Path(path).name not in ("best.npz", "model.npz"):    # a copy kept in the folder: the run does not replace it
        return (f"{run} is being trained now ({who} holds {Path(run) / LOCK}); {Path(path).name} is not one of the "
                f"checkpoints it saves (best.npz, model.npz), so it stays as it is")
    which = "best model so far" if Path(path).name == "best.npz" else "latest checkpoint"
    at = f", of step {step:,}" if step is not None else ""
    return (f"{run} is being trained now ({who} holds {Path(run) / LOCK}): this reads its {which}{at}; "
            f"the run saves a newer one at each validation")


def check_checkpoint_flag(run, checkpoint) -> None:
    """evaluate, generate, jacobian, probe: --checkpoint given (not None) with a .npz file instead of a run
    folder is one line, not ignored (the file is the checkpoint; the flag picks one inside a folder). An
    explicit `--checkpoint best` of a run folder with no best.npz yet (no validation has run) is one line too:
    without the flag the latest model stands in for it, with a note; asked by name, it is not read silently
    in its place."""
    from pathlib import Path

    from .runs import BEST, CONFIG, LATEST, _refuse_lost_best
    if checkpoint is not None and run is not None and Path(run).is_file():
        raise UserError(f"--checkpoint picks a file inside a run folder; {run} is already a checkpoint file")
    folder = Path(run) if run is not None else None
    if (checkpoint == "best" and folder is not None and folder.is_dir() and (folder / CONFIG).exists()
            and not (folder / BEST).exists() and (folder / LATEST).exists()):
        _refuse_lost_best(folder, "best")      # (deleted after a validation: its own line)
        raise UserError(f"{folder} has no {BEST} yet: no validation has run; give --checkpoint latest (or leave "
                        f"--checkpoint out) to read its latest model, {LATEST}")


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


class DroppedWrites:
    """A text stream whose writes and flushes that fail (OSError: a full disk, `> /dev/full`) are dropped
    instead of raised, so that losing messages does not stop the command. Standard error during every
    command (cli.main: its bars and lines are messages); standard output while a command whose product is
    a file runs (`unheard_stdout`). keep_pipe: a closed pipe (BrokenPipeError, `| head`) still raises, so
    that the command ends with 141 as Unix tools do. The first failure is kept (`failed`) and `on_fail()`
    runs once then. Everything else (fileno, isatty, encoding) is the stream's own."""

    def __init__(self, stream, keep_pipe: bool = False, on_fail=None):
        self._stream, self._keep_pipe, self._on_fail = stream, keep_pipe, on_fail
        self.failed = None

    def _drop(self, exc: OSError) -> None:
        if self._keep_pipe and isinstance(exc, BrokenPipeError):
            raise exc
        if self.failed is None:
            self.failed = exc
            if self._on_fail is not None:
                self._on_fail()

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._drop(exc)
            return len(text)

    def flush(self):
        try:
            return self._stream.flush()
        except OSError as exc:
            self._drop(exc)
            return None

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def unheard_stdout(saved):
    """Standard output for a command whose product is a file or folder (train's run folder, jacobian's and
    probe's JSON, a demo's folder): a write that fails is dropped (DroppedWrites), standard output then
    points at os.devnull (_drop_stdout, so that the text still buffered cannot fail again at exit), and
    the command ends with one warning line naming `saved()` (what holds its result) instead of an error:
    losing the report must not lose, or misreport, the result. A closed pipe still raises."""
    stdout = sys.stdout
    sys.stdout = unheard = DroppedWrites(stdout, keep_pipe=True, on_fail=_drop_stdout)
    try:
        yield unheard
        sys.stdout.flush()
    finally:
        if sys.stdout is unheard:
            sys.stdout = stdout
    if unheard.failed is not None:
        from .progress import note
        why = unheard.failed.strerror or str(unheard.failed)
        note(f"warning: standard output could not be written ({why}); {saved()}")
