"""A trial user's findings, third round: `train --resume`'s advice for a run without model.npz (train it
again into the same --out) that replaced the run's best.npz, a trained model; `--corpus ""` read as the
current folder; and a --prime of bytes that are not UTF-8 sampled from as replacement characters."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm import runs
from rnnlm.cli import main
from rnnlm.errors import UserError

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1", "--emsize", "16",
         "--hidden", "16", "--bptt", "8", "--dropout", "0", "--batch-size", "16", "--sample-words", "0",
         "--no-progress"]


@pytest.fixture(scope="module")
def run(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "3", "--out", str(out)]) == 0
    assert (out / "best.npz").exists() and (out / "model.npz").exists()
    return out


def _err_lines(capsys) -> list:
    return capsys.readouterr().err.strip().splitlines()


def _without_latest(run, folder: Path) -> Path:
    """A copy of the run whose model.npz was deleted (its best.npz, a trained model, stays)."""
    shutil.copytree(run, folder)
    (folder / "model.npz").unlink()
    return folder


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != runs.LOCK}


# ---------------------------------------------------------------- 1. a run without model.npz but with best.npz


def test_resume_without_model_npz_names_best_npz_and_another_out(run, text, tmp_path, capsys):
    m4 = _without_latest(run, tmp_path / "m4")
    before = _files(m4)
    capsys.readouterr()
    assert main(["train", "--resume", str(m4), "--corpus", str(text), "--max-steps", "6", "--no-progress"]) == 2
    assert _err_lines(capsys) == [
        f"error: {m4} holds no model.npz (the latest checkpoint, which a resume starts from), but its best.npz is "
        f"there: evaluate and generate still use it (--checkpoint best); to train afresh, give another --out"]
    assert _files(m4) == before


def test_resume_of_a_run_that_stopped_before_any_checkpoint_still_says_train_it_again(text, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(UserError, match=f"holds no checkpoint.*train it again with --out {out}"):
        runs.resume_checkpoint(out, {"corpus": {"checksum": None}}, {}, {})


def test_a_new_run_into_a_folder_holding_best_npz_is_refused_and_the_model_kept(run, text, tmp_path, capsys):
    m4 = _without_latest(run, tmp_path / "m4")
    before = _files(m4)
    capsys.readouterr()
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "3", "--out", str(m4)]) == 2
    assert _err_lines(capsys) == [
        f"error: {m4} holds best.npz, a trained model that a new run would replace; give the new run another "
        f"--out (evaluate and generate still read it: --checkpoint best)"]
    assert _files(m4) == before                         # nothing replaced, nothing added, no folder cleared
    assert main(["evaluate", str(m4), "--checkpoint", "best"]) == 0       # what the line says still works


def test_a_folder_holding_only_a_checkpoint_file_is_refused_too(run, tmp_path):
    for name in ("best.npz", "model.npz"):
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        shutil.copy(run / name, folder / name)           # copied in by hand: no config.json
        which = "best" if name == "best.npz" else "latest"
        with pytest.raises(UserError, match=f"holds {name}, a trained model.*--checkpoint {which}"):
            runs.refuse_taken(folder)


def test_a_run_that_stopped_before_model_npz_keeps_its_best_npz(run, tmp_path):
    folder = _without_latest(run, tmp_path / "m4")
    assert not runs.clear_unsaved_run(folder)
    assert (folder / "best.npz").exists() and (folder / "config.json").exists()
    (folder / "best.npz").unlink()      # nothing trained left, but the records of a finished run: kept
    with pytest.raises(UserError, match=r"holds the records of a run that finished at step \d+ \(config.json, "):
        runs.refuse_taken(folder)
    assert not runs.clear_unsaved_run(folder) and (folder / "config.json").exists()
    lines = (folder / "metrics.jsonl").read_text().splitlines()    # a run killed before its first save: free
    (folder / "metrics.jsonl").write_text("\n".join(x for x in lines if '"type": "end"' not in x) + "\n")
    runs.refuse_taken(folder)
    assert runs.clear_unsaved_run(folder) and not (folder / "config.json").exists()


def test_a_folder_holding_a_whole_run_is_still_refused_as_before(run):
    with pytest.raises(UserError, match=f"{run} already holds a run, which stopped at its --max-steps; use --resume "
                                         f"{run} with a larger --max-steps to train it further, or another --out"):
        runs.refuse_taken(run)


# ---------------------------------------------------------------- 2. empty paths


@pytest.mark.parametrize("argv, line", [
    (["train", "--corpus", "", "--max-steps", "3"],
     "--corpus is empty; give a named corpus (machado, sintetico) or a path to a .txt file or folder, "
     "or leave it out for the default"),
    (["train", "--corpus", "  ", "--max-steps", "3"],
     "--corpus is empty; give a named corpus (machado, sintetico) or a path to a .txt file or folder, "
     "or leave it out for the default"),
    (["train", "--resume", "", "--max-steps", "3"], "--resume is empty; give the run folder to continue"),
    (["evaluate", ""], "RUN is empty; give a run folder (runs/NAME) or a checkpoint .npz"),
    (["generate", "", "--words", "3"], "RUN is empty; give a run folder (runs/NAME) or a checkpoint .npz"),
    (["jacobian", "--init", "--corpus", ""],
     "--corpus is empty; give a named corpus (machado, sintetico) or a path to a .txt file or folder, "
     "or leave it out for the default"),
    (["corpus", "info", ""],
     "CORPUS is empty; give a named corpus (machado, sintetico) or a path to a .txt file or folder, "
     "or leave it out for the default"),
])
def test_an_empty_path_is_one_line(argv, line, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("")              # what `--corpus ""` used to read
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {line}\n" and captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_an_empty_text_file_flag_is_one_line(run, capsys):
    for argv in (["evaluate", str(run), "--text", ""], ["jacobian", str(run), "--text", ""]):
        assert main(argv) == 2
        assert capsys.readouterr().err == "error: --text is empty; give the text file to read, or leave the flag out\n"


# ---------------------------------------------------------------- 3. a --prime that is not UTF-8


def test_a_prime_of_bytes_not_utf8_is_one_line_naming_them(run, capsys):
    # what Python makes of the bytes ff fe ... e9 in argv (surrogateescape)
    assert main(["generate", str(run), "--prime", "\udcff\udcfe caf\udce9", "--words", "3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("error: --prime is not valid UTF-8 (bytes \\xff \\xfe \\xe9); give the text in UTF-8 "
                            "(a UTF-8 terminal, or convert it: iconv -f latin1 -t utf-8)\n")


def test_a_prime_of_bytes_not_utf8_from_the_shell(run):
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), "generate", str(run), "--prime",
                           b"\xff\xfe caf\xe9", "--words", "3"], capture_output=True, cwd=REPO)
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().splitlines() == [
        "error: --prime is not valid UTF-8 (bytes \\xff \\xfe \\xe9); give the text in UTF-8 "
        "(a UTF-8 terminal, or convert it: iconv -f latin1 -t utf-8)"]


def test_a_utf8_prime_is_read_as_before(run, capsys):
    assert main(["generate", str(run), "--prime", "O homem que café", "--words", "3"]) == 0
    assert capsys.readouterr().out.startswith("O homem que")


# ---------------------------------------------------------------- a damaged byte in a run's files (a trial)


def _damage_byte(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:5] + b"\xff" + data[6:])


@pytest.mark.parametrize("name, argv", [("config.json", ["train", "--resume"]), ("config.json", ["plot", "training"]),
                                        ("vocab.json", ["evaluate"])])
def test_a_damaged_byte_in_a_runs_json_is_one_line(run, tmp_path, capsys, name, argv):
    """A trial: one \\xff byte in config.json or vocab.json gave a UnicodeDecodeError traceback and exit 1."""
    r = tmp_path / "r"
    shutil.copytree(run, r)
    _damage_byte(r / name)
    assert main([*argv, str(r)]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and err[0].startswith(f"error: {r / name} is not valid JSON ("), err
    if argv[0] == "train":
        assert err[0].endswith("): damaged or edited by hand; restore it (the run's checkpoints carry their own "
                               "settings: evaluate and generate still read them)")


def test_a_damaged_metrics_line_is_skipped_as_a_cut_one(run, tmp_path, capsys):
    r = tmp_path / "r"
    shutil.copytree(run, r)
    lines = (r / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    (r / "metrics.jsonl").write_bytes(b"".join(lines[:-1]) + b'{"event": "\xff"}\n' + lines[-1])
    assert main(["plot", "training", str(r), "--out", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").is_file()


def test_an_unreadable_checkpoint_is_not_advised_for_evaluation(run, text, tmp_path, capsys):
    """A second trial: with a corrupt (or 0-byte) best.npz the lines still said evaluate and generate read it."""
    for content in (b"not a zip at all", b""):
        m4 = _without_latest(run, tmp_path / f"m4-{len(content)}")
        (m4 / "best.npz").write_bytes(content)
        capsys.readouterr()
        assert main(["train", "--resume", str(m4), "--corpus", str(text), "--max-steps", "6", "--no-progress"]) == 2
        (line,) = _err_lines(capsys)
        assert line.startswith(f"error: {m4} holds no model.npz (the latest checkpoint, which a resume starts from), "
                               "and its best.npz cannot be read (")
        assert line.endswith("); to train afresh, give another --out, or delete best.npz first")
        with pytest.raises(UserError, match=r"holds best.npz, which a new run would replace, and it cannot be read "
                                            r"\(.*\); give the new run another --out, or delete that file first$"):
            runs.refuse_taken(m4)
        assert (m4 / "best.npz").read_bytes() == content            # nothing replaced
