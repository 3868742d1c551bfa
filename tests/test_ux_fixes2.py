"""A trial user's findings, second round: jacobian's --anchors clamped in silence and its long measurement
without a bar, a write error on standard output that named no file in every command but generate, the
advice of a corrupt checkpoint naming a run's other checkpoint when that one is corrupt or missing too,
`jacobian --init --corpus nope` measured on random tokens, a prime opening with a clitic ("-se") read as a
dialogue dash, and a binary --text file read as latin-1."""
import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm import cli
from rnnlm.cli import main

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1", "--emsize", "16",
         "--hidden", "16", "--bptt", "8", "--dropout", "0", "--batch-size", "16", "--sample-words", "0",
         "--no-progress"]
FRESH = ["jacobian", "--init", "--cell", "rnn", "--hidden", "8", "--emsize", "8"]
STDOUT_LINE = ("error: No space left on device: standard output (free some space, or redirect the output to a "
               "file on another disk (> FILE))")


@pytest.fixture(scope="module")
def run(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "3", "--out", str(out)]) == 0
    return out


def _err_lines(capsys) -> list:
    return capsys.readouterr().err.strip().splitlines()


# ---------------------------------------------------------------- 3. a failed write on standard output


class _FullAtOnce(io.StringIO):
    """Standard output on a full disk as Python meets `> /dev/full`: the write itself fails and keeps nothing,
    so that a flush after it succeeds."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("argv", [["evaluate", "runs/x"], ["generate", "runs/x"], ["jacobian", "runs/x"],
                                  ["bench"], ["sweep", "summarize", "x"], ["baseline"], ["corpus", "info"],
                                  ["probe", "agreement", "runs/x"]])
def test_a_write_failing_at_once_names_standard_output_in_every_command(monkeypatch, capsys, argv):
    def prints(args):
        print("perplexity: 12.3")
    monkeypatch.setattr(cli, "COMMANDS", [(n, a, prints if n == argv[0] else r) for n, a, r in cli.COMMANDS])
    monkeypatch.setattr(sys, "stdout", _FullAtOnce())
    assert main(argv) == 2
    assert _err_lines(capsys) == [STDOUT_LINE]


def test_a_failed_write_of_another_file_is_not_called_standard_output(monkeypatch, capsys):
    def writes(args):
        raise OSError(errno.ENOSPC, "No space left on device")   # a file's write (no name), stdout fine
    monkeypatch.setattr(cli, "COMMANDS", [(n, a, writes if n == "evaluate" else r) for n, a, r in cli.COMMANDS])
    assert main(["evaluate", "runs/x"]) == 2
    assert "standard output" not in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_evaluate_into_a_full_disk_names_standard_output(run):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "cli.py", "evaluate", str(run)], stdout=full, stderr=subprocess.PIPE,
                              cwd=REPO, timeout=300, env={**os.environ, "RNNLM_CACHE": os.environ["RNNLM_CACHE"]})
    assert (proc.returncode, proc.stderr.decode().splitlines()) == (2, [STDOUT_LINE])
