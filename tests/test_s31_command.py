"""Advice that names a command names the one the user ran: `rnnlm ...` from the installed console script,
`python cli.py ...` otherwise (cli.py is in a checkout only, so an installed user must not be sent to it)."""
import sys

import pytest

from rnnlm import corpus
from rnnlm.errors import UserError, command
from rnnlm.summary import _resume_command


@pytest.mark.parametrize("argv0, expected", [
    ("/home/u/.venv/bin/rnnlm", "rnnlm"),
    ("rnnlm", "rnnlm"),
    ("cli.py", "python cli.py"),
    ("/repo/cli.py", "python cli.py"),
    ("-c", "python cli.py"),
    ("", "python cli.py"),
])
def test_command_follows_how_rnnlm_was_started(monkeypatch, argv0, expected):
    monkeypatch.setattr(sys, "argv", [argv0, "train"])
    assert command() == expected


def test_resume_and_corpus_advice_name_the_console_script(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/rnnlm", "train"])
    assert _resume_command({"run_dir": "runs/a"}) == "continue it with rnnlm train --resume runs/a"
    monkeypatch.setenv("RNNLM_CORPORA", str(tmp_path))
    with pytest.raises(UserError) as e:
        corpus.resolve("machado")
    assert "download it there with 'rnnlm corpus download machado', or unset RNNLM_CORPORA" in str(e.value)
    monkeypatch.setattr(sys, "argv", ["cli.py", "train"])
    assert _resume_command({"run_dir": "runs/a"}) == "continue it with python cli.py train --resume runs/a"


def test_a_ctrl_c_that_numba_turns_into_another_error_is_still_one_line(monkeypatch, capsys, tmp_path):
    """Numba, stopped while it compiles a kernel, raises RuntimeError('no compiled object yet ...') instead of
    the KeyboardInterrupt (a trial: a traceback and exit 1 on a first run's evaluate or jacobian)."""
    import os
    import signal

    from rnnlm import cli

    def compile_interrupted(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**7):      # the handler runs between bytecodes
                pass
        except KeyboardInterrupt:
            raise RuntimeError("no compiled object yet for <Library '_matmul'>") from None
        return 0
    commands = [(n, add, compile_interrupted if n == "evaluate" else run) for n, add, run in cli.COMMANDS]
    monkeypatch.setattr(cli, "COMMANDS", commands)
    assert cli.main(["evaluate", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "interrupted: evaluate writes no files, so nothing was lost; run it again for its result\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # restored
    commands = [(n, add, (lambda a: (_ for _ in ()).throw(RuntimeError("a bug"))) if n == "evaluate" else run)
                for n, add, run in cli.COMMANDS]
    monkeypatch.setattr(cli, "COMMANDS", commands)
    with pytest.raises(RuntimeError, match="a bug"):           # without a signal, an error is not a stop
        cli.main(["evaluate", str(tmp_path)])
