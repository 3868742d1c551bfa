"""Entry point: `python cli.py <command> ...` runs the same CLI as the `rnnlm` script."""
import sys

from rnnlm.cli import main

if __name__ == "__main__":
    sys.exit(main())
