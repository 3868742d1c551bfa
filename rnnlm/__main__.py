"""The process's entry point (`python cli.py`, the `rnnlm` script, `python -m rnnlm`), ahead of the CLI's imports.

The one thing to know before editing: import nothing here but the standard
library's sys, signal and atexit, and rnnlm.errors (which imports only the
standard library). The CLI's own handler (cli.main) answers Ctrl-C
from its first line, but importing the CLI (NumPy, Numba, the commands) takes
a fraction of a second before it, and a Ctrl-C there printed a traceback;
`run` turns it into one line and the exit status 130, as the CLI does, and a
SIGTERM there (whose default action killed the process with no line) into one
line and 143. Either is only recorded while the import runs, and said once it is
over: an import may drop an exception raised inside it, and the command then ran
on as if never stopped. At the other end, `_ignore_stops_at_exit` runs after
every other exit handler: Python then resets the signals to their defaults and
spends a few tenths of a second freeing the modules (Numba's, Dask's), and a
stop landing there killed the process with no line and exit 143 after the
command had finished.
"""
import atexit
import signal
import sys

from rnnlm.errors import Terminated, exit_status, not_begun_line, stop_word


def _ignore_stops_at_exit() -> None:
    """Ctrl-C and SIGTERM ignored for the process's last moments, after the exit handlers (registered first, so
    run last): every file is written and the command's last line said, and Python keeps an ignored signal
    ignored as it shuts down (one it handles, it resets to the default, which kills the process)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


_EARLY = {"came": None, "raise": False}     # the first stop signal that came; a stop raises at once


def _early_stop(signum, frame):
    """Ctrl-C's and SIGTERM's handler until the CLI's own: a stop is recorded while the CLI is imported, and
    said once the import is over, because an exception raised inside an import can be lost (a module that
    catches every error, an import lock) and the command then ran on; once imported (or at a second stop,
    for a user whose import hangs) it raises at once."""
    if _EARLY["raise"] or _EARLY["came"] is not None:
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    _EARLY["came"] = signum


def run() -> None:
    """Import the CLI and run it on sys.argv; exits with its status (130 for a Ctrl-C before it began, 143 for
    a SIGTERM)."""
    atexit.register(_ignore_stops_at_exit)
    _EARLY.update({"came": None, "raise": False})
    # (a process started to ignore a signal, or given another handler, keeps it)
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {signum: signal.signal(signum, _early_stop) for signum, default in defaults.items()
                if signal.getsignal(signum) is default}
    try:
        from rnnlm.cli import main
        _EARLY["raise"] = True      # first: a stop from here on raises; one before it was recorded
        if signal.SIGINT in previous:   # main's first line takes Ctrl-C over (it does only from Python's own)
            signal.signal(signal.SIGINT, previous[signal.SIGINT])
        if _EARLY["came"] is not None:
            raise Terminated() if _EARLY["came"] == signal.SIGTERM else KeyboardInterrupt()
        status = main()
    except KeyboardInterrupt as exc:    # before main's guard (the imports) or after it: the command did not run
        for signum in defaults:
            signal.signal(signum, signal.SIG_IGN)
        print(not_begun_line(stop_word(exc)), file=sys.stderr)
        sys.exit(exit_status(exc))
    sys.exit(status)


if __name__ == "__main__":
    run()
