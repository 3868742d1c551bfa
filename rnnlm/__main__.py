"""The process's entry point (`python cli.py`, the `rnnlm` script, `python -m rnnlm`), ahead of the CLI's imports.

The one thing to know before editing: import nothing here but the standard
library's sys, signal and atexit. The CLI's own handler (cli.main) answers Ctrl-C
from its first line, but importing the CLI (NumPy, Numba, the commands) takes
a fraction of a second before it, and a Ctrl-C there printed a traceback;
`run` turns it into one line and the exit status 130, as the CLI does. At the
other end, `_ignore_stops_at_exit` runs after every other exit handler: Python
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


def run() -> None:
    """Import the CLI and run it on sys.argv; exits with its status (130 for a Ctrl-C before it began)."""
    atexit.register(_ignore_stops_at_exit)
    try:
        from rnnlm.cli import main
        status = main()
    except KeyboardInterrupt:   # before main's guard (the imports) or after it: the command did not run
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("interrupted before the command began: nothing was done", file=sys.stderr)
        sys.exit(130)
    sys.exit(status)


if __name__ == "__main__":
    run()
