"""What every command does with its standard output and its messages: --help into a closed pipe ends with 141
as any output does, a write error on standard output advises the shell's redirection (not a flag the command
lacks), an error's advice names --out only where the command has it, and a count of 1 takes the singular."""
import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm import cli
from rnnlm.cli import build_parser, main
from rnnlm.errors import STDOUT, describe_os_error, plural

REPO = Path(__file__).resolve().parents[1]


def _commands(parser, prefix=()):
    """Every command line that has its own --help: (), ("train",), ("plot", "sweep"), ..."""
    yield prefix
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))


class _ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_help_into_a_closed_pipe_ends_quietly_with_141_for_every_command(monkeypatch, capsys):
    commands = list(_commands(build_parser()))
    assert ("train",) in commands and ("plot", "sweep") in commands and len(commands) > 15
    for argv in commands:
        monkeypatch.setattr(sys, "stdout", _ClosedPipe())
        assert main([*argv, "--help"]) == 141, argv
        assert capsys.readouterr().err == ""


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_help_into_a_closed_pipe_in_a_real_process(unbuffered):
    for argv in (["generate", "--help"], ["plot", "sweep", "--help"], ["--version"]):
        proc = subprocess.Popen([sys.executable, "cli.py", *argv], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": unbuffered})
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert (proc.wait(timeout=120), err) == (141, ""), argv


def test_version_into_a_closed_pipe_ends_quietly_with_141(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["--version"]) == 141 and capsys.readouterr().err == ""


def test_help_into_a_live_pipe_is_still_printed(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("usage: python cli.py generate")


def _replace(monkeypatch, name, runner):
    monkeypatch.setattr(cli, "COMMANDS", [(n, a, runner if n == name else r) for n, a, r in cli.COMMANDS])


class _Full(io.StringIO):
    """A standard output on a full disk: what is written is kept until a flush fails."""

    def flush(self):
        if self.getvalue():
            raise OSError(errno.ENOSPC, "No space left on device")


STDOUT_LINE = ("error: No space left on device: standard output (free some space, or redirect the output to a "
               "file on another disk (> FILE))\n")


def test_output_into_a_full_disk_advises_a_redirection_in_any_command(monkeypatch, capsys):
    _replace(monkeypatch, "evaluate", lambda args: print("perplexity: 12.3"))
    monkeypatch.setattr(sys, "stdout", _Full())
    assert main(["evaluate", "runs/x"]) == 2                 # the text failed at the flush after the command
    assert capsys.readouterr().err == STDOUT_LINE

    def long_print(args):                                   # ... or inside it, then flushed again at the error
        sys.stdout.write("x" * 10)
        sys.stdout.flush()
    _replace(monkeypatch, "train", long_print)
    monkeypatch.setattr(sys, "stdout", _Full())
    assert main(["train", "--max-steps", "1"]) == 2
    assert capsys.readouterr().err == STDOUT_LINE


class _FullAtOnce(io.StringIO):
    """Standard output on a full disk as `> /dev/full` is: the failed write keeps nothing, a flush after it works."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("full", [_Full, _FullAtOnce])
def test_help_into_a_full_disk_names_standard_output_for_every_command(monkeypatch, capsys, full):
    # argparse prints --help (and --version) and exits inside parse_args, before the command runs
    for argv in [("train", "--help"), ("sweep", "run", "--help"), ("--help",), ("plot", "sweep", "--help"),
                 ("--version",)]:
        monkeypatch.setattr(sys, "stdout", full())
        assert main(list(argv)) == 2, argv
        assert capsys.readouterr().err == STDOUT_LINE, argv


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_help_into_dev_full_in_a_real_process_names_standard_output():
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "cli.py", "train", "--help"], stdout=full, stderr=subprocess.PIPE,
                              cwd=REPO, timeout=120)
    assert (proc.returncode, proc.stderr.decode()) == (2, STDOUT_LINE)


def test_an_error_names_out_only_for_a_command_that_has_it(monkeypatch, capsys):
    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/x/cache.npy")
    _replace(monkeypatch, "evaluate", full)
    assert main(["evaluate", "runs/x"]) == 2
    assert capsys.readouterr().err == ("error: No space left on device: /x/cache.npy (free some space; files "
                                       "written before are intact)\n")
    _replace(monkeypatch, "train", full)
    assert main(["train", "--max-steps", "1"]) == 2
    assert "write elsewhere (--out);" in capsys.readouterr().err


def test_the_os_error_messages_by_place():
    enotdir = OSError(errno.ENOTDIR, "Not a directory", "/x/a/b")
    assert describe_os_error(enotdir) == "Not a directory: /x/a/b (a part of that path is a file, not a folder; " \
                                         "does --out, if given, name a file?)"
    assert describe_os_error(enotdir, None) == "Not a directory: /x/a/b (a part of that path is a file, not a folder)"
    assert describe_os_error(OSError(errno.EIO, "Input/output error", STDOUT)) == \
        "Input/output error: standard output (redirect the output elsewhere (> FILE))"
    assert "--out" not in describe_os_error(OSError(errno.EROFS, "Read-only file system", "/r"), None)


def test_a_count_of_one_takes_the_singular():
    assert [f"{n} {plural(n, 'file')}" for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert plural(1, "token is", "tokens are") == "token is" and plural(3, "token is", "tokens are") == "tokens are"


def test_a_corpus_of_one_file_says_1_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    text = tmp_path / "one.txt"
    text.write_text("O senado era velho. " * 200, encoding="utf-8")
    assert main(["corpus", "info", str(text)]) == 0
    assert f"corpus {text}: 1 file from " in capsys.readouterr().out


@pytest.mark.parametrize("argv0, cmd", [("/venv/bin/rnnlm", "rnnlm"), ("cli.py", "python cli.py")])
@pytest.mark.parametrize("argv, prog", [(["train", "--bogus", "1"], "train"),
                                        (["corpus", "info", "x", "--bogus"], "corpus info")])
def test_an_unknown_flag_names_the_command_it_was_given_to(argv, prog, argv0, cmd, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [argv0, *argv])      # as the user ran it: the console script or cli.py
    prog = f"{cmd} {prog}"
    assert main(argv) == 2
    extras = " ".join(argv[argv.index("--bogus"):])
    assert capsys.readouterr().err == f"error: {prog}: unrecognized arguments: {extras} (see '{prog} --help')\n"


def test_a_file_read_as_latin1_is_one_warning_line(tmp_path):
    text = tmp_path / "l1.txt"
    text.write_bytes("olá mundo, o homem que usava uma peruca\n".encode("latin-1"))
    r = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "cli.py"), "corpus", "info",
                        str(text), "--no-cache"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == f"warning: {text} is not UTF-8; read it as cp1252"
    assert "UserWarning" not in r.stderr and "warnings.warn" not in r.stderr


@pytest.mark.parametrize("argv", [["train", "--out", ""], ["plot", "training", "RUN", "--out", " "]])
def test_an_empty_out_is_refused(argv, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err == "error: --out is empty; give where to write, or leave the flag out for the default\n"


# ---------------------------------------------------------------- SIGTERM before any phase's own handler


def test_sigterm_raises_terminated_from_the_first_line_and_the_default_comes_back():
    import signal
    from rnnlm.errors import Terminated, sigterm_raises
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with pytest.raises(Terminated):
        with sigterm_raises():
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_ignored_sigterm_stays_ignored():
    import signal
    from rnnlm.errors import sigterm_raises
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with sigterm_raises():
            os.kill(os.getpid(), signal.SIGTERM)        # nothing happens
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_while_a_command_starts_up_is_one_line_and_143(monkeypatch, capsys):
    """A SIGTERM before any phase installs its handler (here: as the command is dispatched, standing
    in for the seconds of imports a real start-up spends) ends the command as any stop does."""
    import signal

    def stopped_while_importing(args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(cli, "COMMANDS", [(n, a, stopped_while_importing if n == "corpus" else r)
                                          for n, a, r in cli.COMMANDS])
    assert main(["corpus", "info", "machado"]) == 143
    captured = capsys.readouterr()
    assert captured.err == "terminated: corpus info writes no files, so nothing was lost; run it again for its result\n" and captured.out == ""


def test_a_sigterm_that_became_another_error_is_still_a_stop(monkeypatch, capsys):
    """Terminated raised inside code that turns it into another exception (an import's module lock
    ended so in a KeyError) ends the command as a stop, not with a traceback."""
    import signal
    from rnnlm.errors import Terminated

    def stopped_inside_an_import(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except Terminated:
            raise KeyError(139687697824640) from None
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(cli, "COMMANDS", [(n, a, stopped_inside_an_import if n == "corpus" else r)
                                          for n, a, r in cli.COMMANDS])
    assert main(["corpus", "info", "machado"]) == 143
    assert capsys.readouterr().err == "terminated: corpus info writes no files, so nothing was lost; run it again for its result\n"
    monkeypatch.setattr(cli, "COMMANDS", [(n, a, lambda args: {}["no signal"]) if n == "corpus" else (n, a, r)
                                          for n, a, r in cli.COMMANDS])
    with pytest.raises(KeyError):           # without a signal an error stays an error
        main(["corpus", "info", "machado"])
