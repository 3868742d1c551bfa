"""The command-line interface: one argparse parser, one subcommand per job.

Each subcommand has an `_add_<name>(subparsers)` that declares its flags and
a `_run_<name>(args) -> int` that imports what it needs *inside* the function,
so that `--help` stays instant (no Numba, no matplotlib at import time).
User mistakes raise `UserError`; `main` turns them into one line on stderr
and exit status 2. Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import sys

from .errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UserError(f"{self.prog}: {message} (see '{self.prog} --help')")


# ---------------------------------------------------------------- corpus


def _add_corpus(sub):
    p = sub.add_parser("corpus", help="inspect, locate or download a corpus")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", parser_class=_Parser)
    csub.required = True
    info = csub.add_parser("info", help="token counts, vocabulary, OOV rates, samples")
    info.add_argument("corpus", nargs="?", default="machado",
                      help="a named corpus (machado, sintetico) or a path to a .txt file or folder")
    _add_data_flags(info)
    dl = csub.add_parser("download", help="fetch a named corpus from its catalog URLs")
    dl.add_argument("corpus", help="a named corpus, e.g. machado")
    dl.add_argument("--corpora-dir", default=None,
                    help="where to put it (default ./corpora/<name>/)")
    return p


def _add_data_flags(p):
    """Flags shared by every command that reads a corpus."""
    g = p.add_argument_group("corpus and tokenizer")
    g.add_argument("--corpora-dir", default=None,
                   help="folder holding named corpora (else $RNNLM_CORPORA, ./corpora, ../shared/corpora)")
    g.add_argument("--keep-case", action="store_true", help="do not lower-case the text")
    g.add_argument("--num-token", action="store_true", help="map numbers to the <num> token")
    g.add_argument("--max-vocab", type=int, default=10000,
                   help="keep at most this many words, <unk> and <eos> included (0 = no limit)")
    g.add_argument("--min-count", type=int, default=1,
                   help="drop words seen fewer times in the training split")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the train/valid/test split")
    g.add_argument("--no-cache", action="store_true", help="re-tokenize instead of reading the .npy cache")


def _run_corpus(args):
    from . import data
    return data.run_corpus_command(args)


# ---------------------------------------------------------------- registry

# (name, add, run): later issues append their commands here.
COMMANDS = [
    ("corpus", _add_corpus, _run_corpus),
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnlm",
        description="Recurrent language models with hand-written BPTT, and instruments "
                    "that show why they are hard to train.",
    )
    from . import __version__
    parser.add_argument("--version", action="version", version=f"rnnlm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, add, _ in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (tests call this directly)."""
    runners = {name: run for name, _, run in COMMANDS}
    try:
        args = build_parser().parse_args(argv)
        return int(runners[args.command](args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
