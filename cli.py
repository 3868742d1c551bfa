"""Entry point: `python cli.py <command> ...` runs the same CLI as the `rnnlm` script."""
from rnnlm.__main__ import run

if __name__ == "__main__":
    run()
