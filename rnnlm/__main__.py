"""The process's entry point (`python cli.py`, the `rnnlm` script, `python -m rnnlm`), ahead of the CLI's imports.

The one thing to know before editing: import nothing here but the standard
library's sys, signal and atexit. The CLI's own handler (cli.main) answers Ctrl-C
from its first line, but importing the CLI (NumPy, Numba, the commands) takes
a fraction of a second before it, and a Ctrl-C there printed a traceback;
`run` turns it into one line and the exit status 130, as the CLI does (and a
SIGTERM there into one line and 143: its default action killed the process with
no line). At the other end, `_ignore_stops_at_exit` runs after every other exit
handler: Python
then resets the signals to their defaults and spends a few tenths of a second
freeing the modules (Numba's, Dask's), and a stop landing there killed the
process with no line and exit 143 after the command had finished.
"""
import atexit
import signal
import sys


def _ignore_stops_at_exit() -> None:
    """Ctrl-C and SIGTERM ignored for the process's last moments, after the exit handlers (registered first, so
    run last): every file is written and the command's last line said, and Python keeps an ignored signal
    ignored as it shuts down (one it handles, it resets to the default, which kills the process)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


class _Terminated(KeyboardInterrupt):
    """SIGTERM while the CLI is imported (before its own handler, errors.sigterm_raises, takes over)."""


_TERMINATED = []     # a SIGTERM came while the CLI was imported


def _terminated(signum, frame):
    _TERMINATED.append(signum)
    raise _Terminated()


def run() -> None:
    """Import the CLI and run it on sys.argv; exits with its status (130 for a Ctrl-C before it began, 143
    for a SIGTERM)."""
    atexit.register(_ignore_stops_at_exit)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:     # (a process started to ignore it stays so)
        signal.signal(signal.SIGTERM, _terminated)
    try:
        from rnnlm.cli import main
        status = main()
    except KeyboardInterrupt as exc:    # before main's guard (the imports) or after it: the command did not run
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        word = "terminated" if isinstance(exc, _Terminated) or type(exc).__name__ == "Terminated" else "interrupted"
        print(f"{word} before the command began: nothing was done", file=sys.stderr)
        sys.exit(143 if word == "terminated" else 130)
    except Exception:       # the SIGTERM landed where an import made another error of it (inside its lock)
        if not _TERMINATED:
            raise
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("terminated before the command began: nothing was done", file=sys.stderr)
        sys.exit(143)
    sys.exit(status)


if __name__ == "__main__":
    run()
