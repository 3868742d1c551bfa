"""A trial user's findings, second round: jacobian's --anchors clamped in silence and its long measurement
without a bar, a write error on standard output that named no file in every command but generate, the
advice of a corrupt checkpoint naming a run's other checkpoint when that one is corrupt or missing too,
`jacobian --init --corpus nope` measured on random tokens, a prime opening with a clitic ("-se") read as a
dialogue dash, and a binary --text file read as latin-1."""
import errno
import io
import json
import os
import random
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


# ---------------------------------------------------------------- 1, 2. jacobian: anchors and the bar


def test_fewer_anchor_positions_than_asked_is_a_note_naming_the_number_measured(tmp_path, capsys):
    out = tmp_path / "j.json"
    argv = [*FRESH, "--corpus", "none", "--vocab-size", "50", "--tokens", "40", "--max-lag", "10", "--out", str(out),
            "--no-progress"]
    assert main([*argv, "--anchors", "100"]) == 0
    err = _err_lines(capsys)
    assert err == ["note: --anchors 100: the 40 tokens read hold only 30 anchor positions (t from --max-lag 10 to "
                   "39); measuring at all 30 (a larger --tokens, or a smaller --max-lag, gives more)"]
    assert json.loads(out.read_text())["meta"]["anchors"] == 30
    assert main([*argv, "--anchors", "30"]) == 0            # as many as there are: no note
    assert _err_lines(capsys) == []
    assert json.loads(out.read_text())["meta"]["anchors"] == 30


def test_the_anchors_note_asks_for_a_longer_text_when_all_of_it_was_read():
    from rnnlm.config import JacobianConfig
    from rnnlm.jacobianrun import anchors_note
    config = JacobianConfig(run="r", max_lag=100, anchors=32, tokens=1000)
    assert "(a longer text, or a smaller --max-lag, gives more)" in anchors_note(config, 120)
    assert "hold only 20 anchor positions" in anchors_note(config, 120)
    assert anchors_note(config, 132) is None and anchors_note(config, 1000) is None
    assert anchors_note(config, 101) is None        # too few for any lag: pick_anchors refuses instead


class _Bars:
    """Every tqdm bar made while installed, with its total, its count at the end and whether it drew."""

    def __init__(self, monkeypatch, terminal=True):
        import tqdm
        self.made = []
        bars = self.made

        class Recorded(tqdm.tqdm):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.counted, self.drawn = 0, not self.disable     # (close() sets disable)
                bars.append(self)

            def update(self, n=1):
                self.counted += n
                return super().update(n)
        monkeypatch.setattr(tqdm, "tqdm", Recorded)
        monkeypatch.setattr("rnnlm.runs.stderr_is_terminal", lambda: terminal)


def test_jacobian_counts_the_lags_of_every_scope_on_a_bar(tmp_path, monkeypatch, capsys):
    bars = _Bars(monkeypatch)
    argv = [*FRESH, "--layers", "2", "--corpus", "none", "--vocab-size", "50", "--tokens", "60", "--max-lag", "7",
            "--anchors", "5", "--out", str(tmp_path / "j.json")]
    assert main(argv) == 0
    (bar,) = bars.made
    assert (bar.total, bar.counted, bar.drawn) == (3 * 7, 3 * 7, True)     # layer0, layer1, stacked
    assert bar.desc == "jacobian (5 anchors)" and bar.unit == "lag"
    assert "/21 lags" in capsys.readouterr().err


@pytest.mark.parametrize("flags, terminal, err", [
    (["--no-progress"], True, ""), (["--no-progress"], False, ""),
    ([], False, "measuring the Jacobian norms: 5 lags at 4 anchors...\n"),     # a log: one line, not silence
])
def test_jacobian_draws_no_bar_with_no_progress_or_into_a_log(tmp_path, monkeypatch, capsys, flags, terminal, err):
    bars = _Bars(monkeypatch, terminal)
    argv = [*FRESH, "--corpus", "none", "--vocab-size", "50", "--tokens", "30", "--max-lag", "5", "--anchors", "4",
            "--out", str(tmp_path / "j.json"), *flags]
    assert main(argv) == 0
    assert [b.drawn for b in bars.made] == [False]
    assert capsys.readouterr().err == err


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


# ---------------------------------------------------------------- 4. corrupt checkpoints


def _damage(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04" + b"\0" * 40)


def test_a_corrupt_checkpoint_names_the_other_only_when_that_one_loads(run, tmp_path, capsys):
    import shutil
    r = tmp_path / "r"
    shutil.copytree(run, r)
    _damage(r / "best.npz")
    assert main(["evaluate", str(r)]) == 2
    assert _err_lines(capsys)[-1].endswith("; --checkpoint latest reads the run's latest model (model.npz) instead")
    _damage(r / "model.npz")
    for which, other in (("best", "model.npz"), ("latest", "best.npz")):
        assert main(["evaluate", str(r), "--checkpoint", which]) == 2
        (line,) = _err_lines(capsys)
        assert line.endswith(f"; the run's {other} cannot be read either (restore the files, or train again)")
        assert "--checkpoint" not in line
    (r / "model.npz").unlink()
    assert main(["generate", str(r), "--words", "3"]) == 2
    (line,) = _err_lines(capsys)
    assert line == (f"error: {r / 'best.npz'} is corrupt or truncated (BadZipFile: File is not a zip file); the run "
                    f"has no other checkpoint to read (restore the file, or train again)")


def test_an_empty_checkpoint_counts_as_truncated_and_gets_the_same_advice(run, tmp_path, capsys):
    # 0 bytes is what a full disk or a crash mid-copy leaves; it was "not an .npz file", with no advice
    import shutil
    r = tmp_path / "r"
    shutil.copytree(run, r)
    (r / "best.npz").write_bytes(b"")
    for argv in (["evaluate", str(r)], ["generate", str(r), "--words", "3"]):
        assert main(argv) == 2
        (line,) = _err_lines(capsys)
        assert line == (f"error: {r / 'best.npz'} is empty (0 bytes): corrupt or truncated; --checkpoint latest "
                        f"reads the run's latest model (model.npz) instead")
    assert main(["evaluate", str(r), "--checkpoint", "latest"]) == 0


def test_a_corrupt_latest_with_no_best_suggests_nothing(run, tmp_path, capsys):
    import shutil
    r = tmp_path / "r"
    shutil.copytree(run, r)
    (r / "best.npz").unlink()
    _damage(r / "model.npz")
    assert main(["evaluate", str(r)]) == 2                  # best falls back to latest, which is corrupt
    assert _err_lines(capsys)[-1].endswith("; the run has no other checkpoint to read (restore the file, or train "
                                           "again)")


# ---------------------------------------------------------------- 5. jacobian --init with a corpus named


def test_jacobian_init_refuses_a_corpus_named_that_does_not_exist(tmp_path, capsys):
    out = tmp_path / "j.json"
    assert main([*FRESH, "--corpus", "nope", "--max-lag", "5", "--anchors", "3", "--out", str(out)]) == 2
    assert _err_lines(capsys) == ["error: corpus 'nope' is neither a named corpus (machado, sintetico) nor an "
                                  "existing file or folder"]
    assert not out.exists()


def test_jacobian_init_falls_back_to_random_tokens_only_for_the_default_corpus(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("RNNLM_CORPORA", str(empty))        # the default corpus is not found there
    out = tmp_path / "j.json"
    argv = [*FRESH, "--max-lag", "5", "--anchors", "3", "--tokens", "50", "--vocab-size", "40", "--out", str(out)]
    assert main(argv) == 0
    note, measuring = _err_lines(capsys)      # (the second: the phase line a log gets in place of the bar)
    assert note.startswith("note: ") and note.endswith("; measuring on random tokens instead")
    assert measuring == "measuring the Jacobian norms: 5 lags at 3 anchors..."
    assert json.loads(out.read_text())["meta"]["text"] == "random:40"
    out.unlink()
    assert main([*argv, "--corpora-dir", str(empty)]) == 2     # a folder named: its error, no random tokens
    (line,) = _err_lines(capsys)
    assert line.startswith("error: ") and str(empty) in line and not out.exists()
    assert main([*argv, "--corpus", "machado"]) == 2
    assert _err_lines(capsys)[0].startswith("error: ")


# ---------------------------------------------------------------- 6. a prime opening with a clitic


def test_leading_clitics_are_split_off_a_text_and_a_dialogue_dash_is_not():
    from rnnlm.tokenize import leading_clitics
    assert leading_clitics("-se foi") == (["-se"], " foi")
    assert leading_clitics("  -Se-ão x") == (["-Se", "-ão"], " x")
    assert leading_clitics("-no-lo deu") == (["-no", "-lo"], " deu")
    for text in ("-Sim, disse", "-casa", "- se", "a-se", "", "—se"):
        assert leading_clitics(text) == ([], text)


def test_a_clitic_opening_the_text_continues_the_sentence():
    from rnnlm.tokenize import detokenize
    assert detokenize(["-se", "foi", ".", "<eos>", "ele"], capitalize=True) == "-se foi. Ele"
    assert detokenize(["—", "sim"], capitalize=True) == "— Sim"


def test_a_prime_opening_with_a_clitic_is_read_and_printed_as_one(run, capsys):
    from rnnlm.runs import load_model
    from rnnlm.sample import encode_prime
    _, vocab, _, _ = load_model(run)
    assert "-se" in vocab.stoi
    tokens, ids, unknown = encode_prime("-Se foi", vocab)
    assert tokens == ["-se", "foi"] and list(ids) == [vocab.stoi["-se"], vocab.stoi["foi"]] and unknown == []
    assert encode_prime("-Sim", vocab)[0] == ["—", "sim"]          # a dialogue dash stays one
    assert main(["generate", str(run), "--prime=-se", "--words", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("-se ") and "—" not in out.split()[0]


# ---------------------------------------------------------------- 7. a binary --text file


def test_random_bytes_as_a_text_file_are_refused_in_one_line(run, tmp_path, capsys):
    noise = tmp_path / "noise.bin"
    rng = random.Random(1)
    noise.write_bytes(bytes(rng.randrange(1, 256) for _ in range(4000)))       # no NUL byte, not UTF-8
    assert main(["evaluate", str(run), "--text", str(noise)]) == 2
    (line,) = _err_lines(capsys)                                               # no "read it as latin-1" warning
    assert line.startswith(f"error: {noise} looks binary (") and line.endswith(
        "% of its characters, read as latin-1, are control codes); give a plain text file")


def test_latin1_portuguese_is_still_read_with_a_warning(run, tmp_path, capsys):
    text = tmp_path / "l1.txt"
    text.write_bytes("O senado era velho; não sabia o que fazer.\x0c\n".encode("latin-1") * 30)
    with pytest.warns(UserWarning, match="l1.txt is not UTF-8; read it as cp1252"):
        assert main(["evaluate", str(run), "--text", str(text)]) == 0
    assert f"text: {text}  (" in capsys.readouterr().out


def test_the_control_share_decides(tmp_path):
    from rnnlm.corpus import read_text
    from rnnlm.errors import UserError
    few, many, stray = tmp_path / "few.txt", tmp_path / "many.txt", tmp_path / "stray.txt"
    few.write_text("a casa\x1b[0m era velha.\n" * 10, encoding="utf-8")        # 1 control in 23: a text
    many.write_text("ab\x01\x02" * 10, encoding="utf-8")                       # half control codes
    stray.write_text("a\x01b\x02 casa", encoding="utf-8")                     # 2 in 9, but only 2: a text
    assert read_text(stray) == "a\x01b\x02 casa"
    assert read_text(few, corpus=False).startswith("a casa")
    with pytest.raises(UserError, match=r"many.txt looks binary \(50% of its characters are control codes\); a "
                                        r"corpus must be plain text files"):
        read_text(many)


# ---------------------------------------------------------------- 5. standard error on a full disk (a trial)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_log_disk_silences_a_training_but_does_not_stop_it(text, tmp_path):
    """A trial: `train ... 2>/dev/full` died at its first progress line with exit 1 and no model, and
    `train --lr -1 2>/dev/full` exited 1 instead of 2. Standard error carries only messages."""
    env = {**os.environ, "RNNLM_CACHE": os.environ["RNNLM_CACHE"]}
    out = tmp_path / "r"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "cli.py", "train", "--corpus", str(text), "--cell", "rnn",
                               "--emsize", "16", "--hidden", "16", "--max-vocab", "500", "--max-steps", "5",
                               "--out", str(out)], stdout=subprocess.PIPE, stderr=full, cwd=REPO, timeout=600, env=env)
        assert proc.returncode == 0
        assert (out / "model.npz").is_file() and (out / "best.npz").is_file()
        assert b"valid ppl" in proc.stdout
        bad = subprocess.run([sys.executable, "cli.py", "train", "--lr", "-1"], stdout=subprocess.PIPE, stderr=full,
                             cwd=REPO, timeout=300, env=env)
        assert bad.returncode == 2
    # in process: a stderr that refuses every write changes nothing either
    broken = _Refusing()
    old = sys.stderr
    sys.stderr = broken
    try:
        assert main(["train", "--lr", "-1"]) == 2
    finally:
        sys.stderr = old
    assert broken.tried


class _Refusing(io.StringIO):
    tried = 0

    def write(self, text):
        self.tried += 1
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_stop_raised_inside_a_ctypes_callback_prints_no_traceback(capsys):
    """A trial (1 of ~50 early SIGTERMs): the start-up handler's Terminated, raised inside llvmlite's ctypes
    callback of Numba's cache, printed "Exception ignored on calling ctypes callback function" and a
    traceback above the one line (the stop itself is raised again by stopping.StartUp.end)."""
    import ctypes
    import functools

    from rnnlm.errors import Terminated
    seen = []
    old = sys.unraisablehook
    sys.unraisablehook = functools.partial(cli._quiet_stops, default=seen.append)
    try:
        callback = ctypes.CFUNCTYPE(None)

        def stop():
            raise Terminated()

        def other():
            raise ValueError("not a stop")
        callback(stop)()
        callback(other)()
    finally:
        sys.unraisablehook = old
    assert [type(u.exc_value) for u in seen] == [ValueError]       # only the stop is quiet
    assert capsys.readouterr().err == ""
    assert main(["train", "--lr", "-1"]) == 2
    assert sys.unraisablehook is old                                # put back after the command
