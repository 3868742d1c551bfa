"""The one exception type for user mistakes, the one for SIGTERM, and the one line an OS error becomes.

Raise `UserError("what is wrong; what to do")` anywhere; the CLI catches it at
the top, prints the one line on stderr and exits with status 2. Errors of the
operating system that a user can cause (disk full, read-only folder, a file
where a folder should be, no permission) and MemoryError get the same
treatment there, worded by `describe_os_error` / `describe_memory_error`.

The one thing to know before editing: an OSError raised while writing an
already opened file carries no file name; writers that know the name attach
it (`fileio.atomic_write` does; the CLI names its standard output STDOUT),
so that the line says where and the advice fits (a flag or the shell's > FILE).
`plural` words the counts of every message ("1 file", "2 files").
"""
from __future__ import annotations

import contextlib
import errno
import functools

# errno -> what to do about it (the "what" is the system's own strerror); {elsewhere} is " or write elsewhere
# (--out)" for a command that chooses where it writes by that flag and "" for one that cannot (a resume writes
# into its run folder), {out_file} the same as a question
_ADVICE = {
    errno.ENOSPC: "free some space{elsewhere}; files written before are intact",
    errno.EDQUOT: "free some space{elsewhere}; files written before are intact",
    errno.EROFS: "the file system is read-only; make it writable{elsewhere}",
    errno.EACCES: "no permission; fix the permissions{elsewhere}",
    errno.EPERM: "no permission; fix the permissions{elsewhere}",
    errno.ENOTDIR: "a part of that path is a file, not a folder{out_file}",
    errno.EEXIST: "a file is in the way where a folder is needed{out_file}",
    errno.EISDIR: "that is a folder; give a file",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
    errno.EFBIG: "the file grew past the file system's or the shell's file-size limit (ulimit -f); raise the "
                 "limit{elsewhere}",
}
# The file name an error writing the command's standard output carries (cli names it so): what to do then
# is the shell's redirection, not a flag.
STDOUT = "standard output"
_STDOUT_ADVICE = {
    errno.ENOSPC: "free some space, or redirect the output to a file on another disk (> FILE)",
    errno.EDQUOT: "free some space, or redirect the output to a file on another disk (> FILE)",
}
_STDOUT_OTHER = "redirect the output elsewhere (> FILE)"


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`, a batch system's stop, `timeout`), raised where Ctrl-C would raise
    KeyboardInterrupt and handled as it is (a run saves, a sweep stops its jobs); the CLI exits 143
    (128 + SIGTERM) for it, 130 for Ctrl-C. Defined here, with no imports, so that a handler can raise it
    at any moment, even in the middle of the imports a command starts with."""


class _Stops:
    """Whether a stopping signal already raised its exception in this process (`STOPS.raised`): from then
    on the process is ending (a run stopped at once, a start-up stopped, a command stopped), and more
    Ctrl-Cs or SIGTERMs are ignored, so that a third Ctrl-C pressed a few milliseconds after the second
    cannot land in the clean-up (a lock being released, the one line being printed) and print a
    traceback. Reset as a guarded block (`sigterm_raises`: the CLI's, from its first line) or a phase of
    stopping.Interrupt begins; set as a stop's exception is made (stopping.signal_error, the handler of
    `sigterm_raises`).
    `signalled`: any stopping signal reached one of those handlers since the command began (a run that
    stopped and saved on its first Ctrl-C raised nothing): the command is stopping, so the command's own
    handler (`sigterm_raises`) ignores further signals, and the CLI exits with them ignored."""
    raised = False
    signalled = False
    exc = None      # the stop's exception, as made (`stop_exception`): `redeliver_lost_stop` knows it by this
    # what a command that finished its work saved (its files are whole: "the sweep is saved in ..."), set as it
    # finishes (`finished`), for the one line of a stop landing in its last moments (a lock released, standard
    # output flushed): None while its work goes on
    done = None


def finished(saved: str) -> None:
    """Say that the command's work is done and what it saved (`saved`, e.g. "the sweep is saved in X"): a stop
    from here on says so, instead of what a stop in the middle of the work would say."""
    STOPS.done = saved


STOPS = _Stops()


def stop_exception(signum) -> KeyboardInterrupt:
    """The exception a stopping signal raises (KeyboardInterrupt for SIGINT, Terminated for SIGTERM), made
    and noted as the process's stop (STOPS.raised, STOPS.exc): from here on the handlers ignore further
    signals, as the process unwinds to its one line and exit."""
    import signal
    STOPS.raised = True
    STOPS.exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    return STOPS.exc


def redeliver_lost_stop(unraisable) -> bool:
    """For sys.unraisablehook: when the exception Python dropped is the stop a signal handler raised, send
    that signal again (from a short-lived thread, once the hook has returned), its handlers answering it
    anew; True if it was. A handler runs wherever the main thread is, and Python drops an exception
    raised in a weakref callback or a __del__ (it reports it as "Exception ignored in ..."): a SIGTERM
    that landed in one of them while Dask was imported was lost, and since the handlers ignore any
    signal after a stop was raised, so was every later one, and the command ran to its end."""
    exc = unraisable.exc_value
    if exc is None or exc is not STOPS.exc or not STOPS.raised:
        return False
    import os
    import signal
    import threading
    STOPS.raised = STOPS.signalled = False
    STOPS.exc = None
    signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()
    return True


@contextlib.contextmanager
def stops_not_lost():
    """sys.unraisablehook set to `redeliver_lost_stop` (then the hook it replaced) for the block."""
    import sys
    before = sys.unraisablehook

    def hook(unraisable):
        if not redeliver_lost_stop(unraisable):
            before(unraisable)
    sys.unraisablehook = hook
    try:
        yield
    finally:
        if sys.unraisablehook is hook:
            sys.unraisablehook = before


def stop_word(exc: BaseException) -> str:
    """'terminated' for a stop by SIGTERM (Terminated), 'interrupted' for Ctrl-C: how a stop's one line starts."""
    return "terminated" if isinstance(exc, Terminated) else "interrupted"


def not_begun_line(word: str) -> str:
    """The one line of a stop before the command began (the CLI's imports, its flags read): `word` is
    stop_word's."""
    return f"{word} before the command began: nothing was done"


def exit_status(exc: BaseException) -> int:
    """The command's exit status for a stop: 143 (128 + SIGTERM) for Terminated, 130 (128 + SIGINT) for Ctrl-C."""
    return 143 if isinstance(exc, Terminated) else 130


def raise_for_signal(signum, frame=None):
    """A stopping signal's exception: KeyboardInterrupt for SIGINT, Terminated for SIGTERM (a signal handler)."""
    raise stop_exception(signum)


def _after(seen, final: bool, before):
    """The handler a signal gets once sigterm_raises' block is over: with `final`, SIG_IGN when the command was
    stopped (a stop raised by another handler, a sweep's shield, sets `raised` without `signalled`), else
    _exit_finished (its status); otherwise the handler from before the block (`before`; None: SIG_DFL)."""
    import signal
    if final:
        return signal.SIG_IGN if STOPS.signalled or STOPS.raised else functools.partial(_exit_finished, seen)
    return signal.SIG_DFL if before is None else before


class _Seen:
    """What sigterm_raises yields: `signum`, the SIGTERM it raised Terminated for (None: none came), so
    that a caller can tell a stop from the other error that code it landed in made of it; `status`, the
    exit status the block's command ended with (set by the caller as it leaves the block; None: it raised),
    which a stop landing after it (final=True) exits with."""
    signum = None
    status = None
    closing = False     # the block is over (its handlers being put back)


def _exit_finished(seen, signum, frame):
    """The handler of a stopping signal once the command has finished (sigterm_raises final=True): the
    process only exits now (Python's shutdown, Dask's and Numba's clean-ups: a few tenths of a second after
    a sweep), every file is written and its last line said, so the process ends at once with the status the
    command earned, saying nothing more. Before, the signal's default action killed it there (exit 143 and
    no line, after a sweep that had finished)."""
    import os
    import sys
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:   # (a closed or full stream: nothing more can be said on it)
            pass
    os._exit(1 if seen.status is None else seen.status)


@contextlib.contextmanager
def sigterm_raises(sigint: bool = False, final: bool = False):
    """SIGTERM raises Terminated in the main thread for the block, as SIGINT raises KeyboardInterrupt, so that
    a process stopped so cleans up and says so as for Ctrl-C (the CLI from its first line, a sweep around its
    jobs); the previous handler is restored after. Left alone outside the main thread (where Python cannot
    set handlers) and where SIGTERM is ignored (a process started to ignore it stays so). Yields a _Seen.

    sigint=True (the CLI): SIGINT is recorded in the _Seen too (it still raises KeyboardInterrupt, and only
    where Python's own handler is in place), because code it lands in may turn it into another error:
    Numba, stopped while it compiles a kernel, raises RuntimeError("no compiled object yet ...").
    final=True (the CLI run as the process's command): the signals do not get their previous handlers back
    after the block. Once a stop signal came they stay ignored (Python's would print a traceback for a
    Ctrl-C landing between the command's one line and the process's exit); otherwise the command finished,
    and a signal in the process's last moments ends it at once with the command's status (`seen.status`,
    _exit_finished) instead of killing it with no line."""
    import signal
    import threading
    seen = _Seen()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum, frame):
        if seen.closing:    # the block is over, its handlers being put back: answered as the next one will
            after = _after(seen, final, previous.get(signum))
            return after(signum, frame) if callable(after) else None if after is signal.SIG_IGN else \
                raise_for_signal(signum)
        # the command is already stopping (a stop raised, or a training that took the first signal saves and
        # ends): a further signal is ignored
        if STOPS.raised or STOPS.signalled:
            return
        STOPS.signalled = True
        seen.signum = signum
        raise_for_signal(signum)
    STOPS.raised = STOPS.signalled = False
    STOPS.done = None
    names = [signal.SIGTERM] if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN else []
    if sigint and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        names.append(signal.SIGINT)
    previous = {signum: signal.signal(signum, handler) for signum in names}
    try:
        with stops_not_lost():      # a stop raised where Python drops exceptions is sent again
            yield seen
    finally:
        seen.closing = True     # first: a signal from here on is answered as after the block (`handler`)
        for signum, before in previous.items():
            signal.signal(signum, _after(seen, final, before))


class UserError(Exception):
    """A mistake the user can fix: bad input, missing file, nonsense flag."""


def describe_os_error(exc: OSError, out_flag: str | None = "--out") -> str:
    """One line for an OSError: "<strerror>: <file> (<advice>)"; no traceback, no chained errors.

    out_flag: the flag that chooses where the command writes, named in the
    advice ("or write elsewhere (--out)"); None for a command without one, or
    one that writes where it must (`train --resume` into its run folder). An
    error whose file is STDOUT (the command's standard output, `> /dev/full`)
    gets the shell's advice instead (redirect the output, > FILE).
    """
    what = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename is not None else None
    if where == STDOUT:
        return f"{what}: {STDOUT} ({_STDOUT_ADVICE.get(exc.errno, _STDOUT_OTHER)})"
    if where is not None and exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    advice = _ADVICE.get(exc.errno)
    if advice:
        advice = advice.format(elsewhere=f" or write elsewhere ({out_flag})" if out_flag else "",
                               out_file=f"; does {out_flag}, if given, name a file?" if out_flag else "")
    line = f"{what}: {where}" if where is not None else f"{what} (while writing or reading a file)"
    return f"{line} ({advice})" if advice else line


def consecutive_runs(values) -> list[tuple[int, int]]:
    """Sorted integers as runs of consecutive ones: [1, 2, 3, 7, 9, 10] -> [(1, 3), (7, 7), (9, 10)]
    (for messages that write them as ranges, '1-3, 7 and 9-10', and figures that shade them)."""
    runs = []
    for k in values:
        if runs and k == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], k)
        else:
            runs.append((k, k))
    return runs


def and_list(items) -> str:
    """'a', 'a and b', 'a, b and c' ('' for none): items joined as a sentence lists them."""
    items = [str(x) for x in items]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}" if items else ""


def command() -> str:
    """How the user runs rnnlm, for advice that names a command: 'rnnlm' when this process is the installed
    console script, else 'python cli.py' (the README's form; cli.py is in a checkout, not in an installed
    package, so a user who typed 'rnnlm' must not be told to run it)."""
    import os
    import sys
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "rnnlm" if name in ("rnnlm", "rnnlm.exe", "rnnlm-script.py") else "python cli.py"


def shell_arg(value) -> str:
    """`value` (a path) as a command's advice writes it, quoted for a POSIX shell where it must be
    (`runs/it's a run` -> `'runs/it'"'"'s a run'`; `runs/a` as it is), so that the advice pastes."""
    import shlex
    return shlex.quote(str(value))


def plural(n: int, word: str, words: str | None = None) -> str:
    """The form of `word` that a count n takes: `word` for 1, else `words` (default word + "s"), for
    messages such as f"{n} {plural(n, 'file')}" ("1 file", "0 files", "3 files")."""
    return word if n == 1 else (words or word + "s")


def is_json_number(v) -> bool:
    """Whether a value read from JSON is a number (true and false are not, though Python's bool is an int)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def json_kind(v) -> str:
    """What kind of JSON value v is, in words for a message about a damaged file ('a list', 'null')."""
    return ("null" if v is None else "true or false" if isinstance(v, bool) else "a number"
            if isinstance(v, (int, float)) else "a string" if isinstance(v, str) else "a list"
            if isinstance(v, list) else "an object")


def describe_memory_error(exc: MemoryError) -> str:
    """One line for a MemoryError (numpy's says how much it wanted and the shape)."""
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return (f"out of memory{': ' + detail if detail else ''}; use smaller sizes (--hidden, --emsize, "
            f"--layers, --max-vocab, --batch-size, --bptt) or free memory")
