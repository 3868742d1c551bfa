"""The process's entry point (`python cli.py`, the `rnnlm` script, `python -m rnnlm`), ahead of the CLI's imports.

The one thing to know before editing: import nothing here but the standard
library's sys and signal. The CLI's own handler (cli.main) answers Ctrl-C
from its first line, but importing the CLI (NumPy, Numba, the commands) takes
a fraction of a second before it, and a Ctrl-C there printed a traceback;
`run` turns it into one line and the exit status 130, as the CLI does.
"""
import signal
import sys


def run() -> None:
    """Import the CLI and run it on sys.argv; exits with its status (130 for a Ctrl-C before it began)."""
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
