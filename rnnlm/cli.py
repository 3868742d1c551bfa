"""The command-line interface: one argparse parser, one subcommand per job; argparse only in the cli modules.

Each subcommand has an `_add_<name>(subparsers)` that declares its flags and
a `_run_<name>(args) -> int` that turns the parsed flags into a config (or
keyword arguments), calls the library, and prints what it returns. They live
in clidata.py (corpus, baseline, bench), clitrain.py (train, evaluate,
generate), cliinstruments.py (jacobian, plot, probe, gradcheck, demo) and
clisweep.py (sweep, study), on the shared parts of cliflags.py; this module
registers them (COMMANDS) and runs one (`main`). Library modules never see
an argparse Namespace. Imports of the library happen *inside* the `_run_`
functions, so that `--help` stays instant (no Numba, no matplotlib at import
time); config.py is standard library only.

The one thing to know before editing: a flag that sets a config field takes
its default and the "(default X)" of its help from the dataclass in config.py
(cliflags._arg), never from a literal in a command module. User mistakes raise `UserError`; `main`
turns them, and the OSError/MemoryError a user can cause (disk full,
read-only folder, too large a model), into one line on stderr and exit
status 2; every parsed number is checked against settings.RANGES first. A
standard output closed by its reader (`| head`) ends any command quietly
with 141 (128 + SIGPIPE), as Unix tools end; any other failed write on
it (`> /dev/full`) is the one line naming standard output, in every command
(`_NamedStdout` stands in for sys.stdout while one runs) but those whose
product is saved to files (train, which trains on, jacobian, probe, demo,
`sweep run`, study), which warn at the end (cliflags.unheard_stdout: the
files are the product, standard output only its report). Ctrl-C exits 130;
SIGTERM (the same clean shutdown: train saves, a sweep or study raises
errors.Terminated) exits 143, the shell's 128 + 15.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import warnings

from .clidata import _add_baseline, _add_bench, _add_corpus, _run_baseline, _run_bench, _run_corpus
from .cliflags import DroppedWrites, _drop_stdout, _Parser, _on_stdout, _subcommands
from .cliinstruments import (_add_demo, _add_gradcheck, _add_jacobian, _add_plot, _add_probe, _run_demo,
                             _run_gradcheck, _run_jacobian, _run_plot, _run_probe)
from .clisweep import _add_study, _add_sweep, _run_study, _run_sweep
from .clitrain import (_add_evaluate, _add_generate, _add_score, _add_train, _run_evaluate, _run_generate,
                       _run_score, _run_train)
from .errors import (STDOUT, STOPS, UserError, describe_memory_error, describe_os_error, exit_status, not_begun_line,
                     sigterm_raises, stop_word)
from .settings import check_range


# ---------------------------------------------------------------- registry

# (name, add, run): later issues append their commands here.
COMMANDS = [
    ("corpus", _add_corpus, _run_corpus),
    ("bench", _add_bench, _run_bench),
    ("baseline", _add_baseline, _run_baseline),
    ("train", _add_train, _run_train),
    ("evaluate", _add_evaluate, _run_evaluate),
    ("generate", _add_generate, _run_generate),
    ("score", _add_score, _run_score),
    ("gradcheck", _add_gradcheck, _run_gradcheck),
    ("probe", _add_probe, _run_probe),
    ("jacobian", _add_jacobian, _run_jacobian),
    ("plot", _add_plot, _run_plot),
    ("demo", _add_demo, _run_demo),
    ("study", _add_study, _run_study),
    ("sweep", _add_sweep, _run_sweep),
]


def build_parser() -> argparse.ArgumentParser:
    from .errors import command
    parser = _Parser(
        prog=command(),     # "rnnlm" from the console script, "python cli.py" from a checkout's cli.py
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
    """Every parsed number against settings.RANGES (one table for the CLI and the library)."""
    for name, value in vars(args).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            check_range(name, value)


def _check_corpora_dir(args) -> None:
    """--corpora-dir: an empty value is refused (it would search nothing, or, read as "not given",
    every default place); any other is made absolute here, so that a run's config.json names the
    same folder wherever --resume or evaluate is run from later."""
    import os
    value = getattr(args, "corpora_dir", None)
    if value is None:
        return
    values = value if isinstance(value, list) else [value]     # `sweep run`: a grid axis, a list of folders
    if any(not str(v).strip() for v in values):
        raise UserError("--corpora-dir is empty; give the folder that holds the corpus's folder, "
                        "or leave the flag out to search the default places")
    values = [os.path.abspath(os.path.expanduser(v)) for v in values]
    args.corpora_dir = values if isinstance(value, list) else values[0]


# The path-valued arguments an empty value is refused for: dest -> (its name on the command line, what to do).
_PATHS = {
    "out": ("--out", "give where to write, or leave the flag out for the default"),
    "corpus": ("--corpus", "give a named corpus (machado, sintetico) or a path to a .txt file or folder, "
                           "or leave it out for the default"),
    "resume": ("--resume", "give the run folder to continue"),
    "text": ("--text", "give the text file to read, or leave the flag out"),
    "run": ("RUN", "give a run folder (runs/NAME) or a checkpoint .npz"),
}


def _check_paths(args) -> None:
    """An empty path (--out, --corpus, --resume, --text, a RUN) is refused: a folder named '' is none, and
    read as "not given" it would put the run in a default folder the user did not ask for, or read as a
    path it is the current folder (`--corpus ""` would read every text file there as the corpus)."""
    for dest, (flag, what) in _PATHS.items():
        value = getattr(args, dest, None)
        if isinstance(value, str) and not value.strip():
            if dest == "corpus" and args.command == "corpus":     # `corpus info CORPUS`: a positional
                flag = "CORPUS"
            raise UserError(f"{flag} is empty; {what}")
    if args.command == "plot" and getattr(args, "out", None):
        _check_figure_out(args.out)


# image formats matplotlib could write, which a figure's --out names by mistake: plot writes PNG and SVG
_OTHER_IMAGES = (".pdf", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".gif", ".pgf", ".bmp")


def _check_figure_out(out: str) -> None:
    """plot's --out names the figure's NAME.png and NAME.svg: a folder, a device (/dev/null) or another image
    format (fig.pdf, which would be written as fig.pdf.png) is one line, not a file written beside it."""
    from pathlib import Path
    path = Path(out).expanduser()
    if path.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name in it (--out {path / 'NAME'}: the figure is "
                        "written as NAME.png and NAME.svg)")
    if path.exists() and not path.is_file():
        raise UserError(f"--out {out} is not a regular file; give a file name (the figure is written as NAME.png "
                        "and NAME.svg)")
    from .plots import figure_png, figure_replaceable
    png = figure_png(path)
    for twin in (png, png.with_suffix(".svg")):      # the pair it writes: neither may be a folder or a device
        if twin.exists() and not twin.is_file():
            raise UserError(f"--out {out}: the figure would be written as {twin}, which is "
                            f"{'a folder' if twin.is_dir() else 'not a regular file'}; give another name")
        if twin.is_file() and not figure_replaceable(twin):
            raise UserError(f"--out {out}: the figure would replace {twin}, which this tool did not draw (an "
                            "image or a figure of your own); give another name, or move that file")
    if path.suffix.lower() in _OTHER_IMAGES:
        stem = path.with_suffix("")
        raise UserError(f"--out {out}: plot writes PNG and SVG, not {path.suffix.lstrip('.').upper()}; give "
                        f"--out {stem}.png (it writes {stem.name}.png and {stem.name}.svg)")


def _stdout_closed() -> int:
    """The exit of a command whose standard output was closed under it (`| head`): quiet, as Unix tools
    end, with 141 (128 + SIGPIPE)."""
    import signal
    _drop_stdout()
    return 128 + int(getattr(signal, "SIGPIPE", 13))


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
    """sys.stdout as a _NamedStdout for the block (the command's run and its last flush), then as it was.
    An output encoding that cannot write Portuguese (PYTHONIOENCODING=ascii, a latin-1 console) writes
    what it cannot encode as backslash escapes, as stderr does, rather than ending in a UnicodeEncodeError
    after the work is done (train's summary, generate's text)."""
    stream = sys.stdout
    encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("_", "-")
    if getattr(stream, "errors", "strict") == "strict" and not encoding.startswith("utf"):
        try:
            stream.reconfigure(errors="backslashreplace")
            print(f"note: standard output is {encoding}: a character it cannot write comes out as a \\x escape "
                  "(PYTHONIOENCODING=utf-8 writes every one as it is)", file=sys.stderr)
        except (AttributeError, ValueError, OSError):
            pass
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


def _quiet_stops(unraisable, default=sys.unraisablehook) -> None:
    """sys.unraisablehook while a command runs: a stop (Ctrl-C's KeyboardInterrupt, SIGTERM's Terminated)
    raised where Python can only print it (a signal landing in a ctypes callback of Numba's cache while a
    kernel compiles) prints nothing; the stop is raised again where it can be (as the next kernel begins
    to compile, stopping.StartUp.between_kernels, or at the start-up's end, stopping.StartUp.end),
    so the command still ends in its one line. Anything else is printed as Python does."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        # the stop was lost, not raised: the next signal must raise again (a command that no start-up guard
        # raises it for, generate, jacobian, stayed deaf to Ctrl-C otherwise)
        STOPS.raised = STOPS.signalled = False
        return
    default(unraisable)


_PYTHON_FORMAT = warnings.formatwarning


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning of ours (UserWarning: a file read as latin-1, a cache folder not writable) as one line,
    as the errors are; any other keeps Python's form (file, line, source)."""
    if category is UserWarning or category.__module__.startswith("rnnlm."):
        return f"warning: {message}\n"
    return _PYTHON_FORMAT(message, category, filename, lineno, line)


def _closed_streams_to_devnull() -> None:
    """A command started with standard output or error closed (`>&-`, `2>&-`) has sys.stdout / sys.stderr
    None: they become os.devnull, so that the command runs (unheard) instead of failing at its first print."""
    import os
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (tests call this directly)."""
    before, warnings.formatwarning = warnings.formatwarning, _warning_line
    _closed_streams_to_devnull()
    stderr, hook = sys.stderr, sys.unraisablehook
    sys.stderr = DroppedWrites(stderr)   # a full log disk silences the command; it does not stop it
    sys.unraisablehook = functools.partial(_quiet_stops, default=hook)
    seen = None
    try:
        # from the first line: a stop in the imports is one line too; argv None: the process's own command
        # line (cli.py, the rnnlm script), whose stop leaves the signals ignored until it exits
        with sigterm_raises(sigint=True, final=argv is None) as seen:
            return _guarded(argv, seen)
    except KeyboardInterrupt:
        # a stop as the guarded block ended, once the command's status was set (its work done, its one line
        # said if it was stopped): main ends with that status, saying nothing more (before, the stop left
        # main as one of its own: "interrupted before the command began", exit 130)
        if seen is None or seen.status is None:
            raise
        return seen.status
    finally:
        warnings.formatwarning, sys.unraisablehook = before, hook
        if isinstance(sys.stderr, DroppedWrites):
            sys.stderr.flush()
            sys.stderr = stderr


def _guarded(argv, seen) -> int:
    """main's work under the CLI's signal handlers (errors.sigterm_raises, whose _Seen is `seen`): sets
    `seen.status`, the status a stop landing as the block ends keeps."""
    try:
        seen.status = _main(argv)
        return seen.status
    except SystemExit as exc:       # --help, --version, argparse's own error: its status
        seen.status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        raise
    except Exception:
        if seen.signum is None:
            raise
        # the signal landed where it became another error (inside an import's lock, in Numba while it
        # compiled a kernel: nothing of it is cached then): still a stop, said in one line
        import signal
        word = "terminated" if seen.signum == signal.SIGTERM else "interrupted"
        print(_stopped_line(_BEGAN["args"], word) if _BEGAN.get("command") else not_begun_line(word),
              file=sys.stderr)
        seen.status = 128 + seen.signum
        return seen.status


def _stopped_line(args, word: str) -> str:
    """The one line of a stop in a command that says nothing of its own (the others set `exc.line`: train,
    generate, jacobian, probe, demo, sweep, study): what the stop leaves, so the user knows nothing is lost."""
    command = args.command
    if command == "train":      # (train's own start-up says what a stop leaves: one here came before it)
        return (f"{word} before the training started: nothing was written"
                + (f" ({args.resume} is as it was)" if getattr(args, "resume", None) else ""))
    if command == "corpus" and args.corpus_command == "download":
        where = f" --corpora-dir {args.corpora_dir}" if getattr(args, "corpora_dir", None) else ""
        return (f"{word}: the files fetched and verified so far are kept; run `corpus download {args.corpus}{where}` "
                "again (without --force) to fetch the rest")
    if command == "bench":      # (_finished_rows_on_stop printed the rows it finished)
        return f"{word}: bench writes no files; the rows it finished, if any, are printed above"
    if command in ("evaluate", "score", "gradcheck", "baseline", "corpus"):
        name = "corpus info" if command == "corpus" else command
        return f"{word}: {name} writes no files, so nothing was lost; run it again for its result"
    if command == "plot":
        return f"{word}: each figure is written whole or not at all (one drawn before is kept); run it again"
    # these say what a stop keeps once their work has begun (exc.line): one without a line came before it
    if command in ("jacobian", "probe"):
        return f"{word} before the measurement began: nothing was written; run it again"
    if command == "generate":
        return f"{word} before any text was drawn: generate writes no files, so nothing was lost"
    if command == "demo":       # (a stop in its stages or trainings says what they keep)
        return f"{word} before the demo's first stage finished: nothing is lost; run the same command again"
    if command == "study":      # (a stop once runs are recorded says how many)
        return f"{word} before the study recorded a run: nothing is lost; run the same command again"
    if command == "sweep" and args.sweep_command == "run":     # (a stop in its jobs or after them says more)
        return f"{word} before any job ran: nothing was recorded; run it again"
    if command == "sweep":
        return f"{word}: sweep {args.sweep_command} writes no files, so nothing was lost; run it again"
    return word


def _parse(parser, argv):
    """The command line's arguments. `score`'s sentences may come after its flags too (`score RUN --totals
    "a." "b."`): argparse stops filling a positional list at the first flag, so the words it leaves over are
    taken as more sentences when none looks like a flag; anything else left over is argparse's own error."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        before, after = (extra[:extra.index("--")], extra[extra.index("--") + 1:]) if "--" in extra \
            else (extra, [])      # (after --, a sentence may start with a dash: "-se foi.")
        if getattr(args, "command", None) == "score" and not any(e.startswith("-") and e != "-" for e in before):
            args.sentences = list(args.sentences) + before + after
        else:
            parser.parse_args(argv)     # (its one line, exit 2)

    def home(v):
        return os.path.expanduser(v) if isinstance(v, str) and (v == "~" or v.startswith("~/")) else v
    for name in _PATH_ARGS:     # a quoted "~/x" (or one from a script's variable) as the shell would expand it:
        value = getattr(args, name, None)   # otherwise --out "~/x" makes a folder named ~ in the current one
        if value is not None:
            setattr(args, name, [home(v) for v in value] if isinstance(value, list) else home(value))
    return args


# the arguments that name a file or folder (every command's: a command without one has no such attribute)
_PATH_ARGS = ("out", "resume", "run", "inputs", "sweep", "study", "text", "file", "corpora_dir", "corpus")


# the command whose runner has begun (None: none yet), for main's line of a stop that became another error
_BEGAN: dict = {}


def _main(argv=None) -> int:
    runners = {name: run for name, _, run in COMMANDS}
    args = None
    _BEGAN["command"] = None
    try:
        with _stdout_named():    # --help, --version: argparse prints and exits inside parse_args
            try:
                args = _parse(build_parser(), argv)
            except SystemExit:
                sys.stdout.flush()  # text still buffered meets a closed pipe (141 below) or a full disk here
                raise
        _check_numbers(args)
        _check_corpora_dir(args)
        _check_paths(args)
        _BEGAN["command"], _BEGAN["args"] = args.command, args   # (a stop before this line: the command did nothing)
        with _stdout_named():    # a failed write of any command's output names standard output
            status = int(runners[args.command](args) or 0)
            STOPS.done = STOPS.done or "nothing was lost"   # (a stop from here on: errors.finished)
            sys.stdout.flush()  # output still buffered meets a closed pipe here, not at the interpreter's exit
        return status
    except BrokenPipeError:              # stdout closed by its reader (`generate RUN | head -c 10`)
        return _stdout_closed()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:    # a file of ours with a damaged byte that no reader above named
        print(f"error: a file read is not UTF-8 text ({exc}); it is damaged: restore it from a copy",
              file=sys.stderr)
        return 2
    except MemoryError as exc:           # a model or batch too large for this machine
        print(f"error: {describe_memory_error(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:               # disk full, read-only folder, --out naming a file, `> /dev/full`, ...
        if exc.filename is None and _stdout_fails():    # a print into a full disk, raised mid-command
            exc = _on_stdout(exc)
        if exc.filename == STDOUT:
            _drop_stdout()
        # the commands that write where --out says (a resume writes into its own run folder)
        out_flag = "--out" if hasattr(args, "out") and not getattr(args, "resume", None) else None
        print(f"error: {describe_os_error(exc, out_flag)}", file=sys.stderr)
        return 2
    except Exception as exc:
        from .caches import damaged_cache_line
        if (line := damaged_cache_line(exc)) is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:     # a sweep ended by SIGTERM raises errors.Terminated, one of these: 143
        # (once the command said its work is done, errors.finished: that, whatever the code it landed in says)
        line = f"{stop_word(exc)} after its work was done: {STOPS.done}" if STOPS.done else (
            getattr(exc, "line", None) or (_stopped_line(args, stop_word(exc)) if _BEGAN["command"] else
                                           not_begun_line(stop_word(exc))))
        print(line, file=sys.stderr)
        return exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
