"""The one atomic-write helper: the old file survives a failed write, no temporary file is left."""
import json
import os
import re
import tokenize
from pathlib import Path

import pytest

from rnnlm import fileio


def _names(folder):
    return sorted(os.listdir(folder))


def test_writes_the_content(tmp_path):
    p = tmp_path / "out.bin"
    fileio.atomic_write(p, lambda f: f.write(b"\x00abc"))
    assert p.read_bytes() == b"\x00abc"
    fileio.atomic_write_bytes(p, b"new")          # replaces an existing file
    assert p.read_bytes() == b"new"
    t = tmp_path / "out.txt"
    fileio.atomic_write_text(t, "ação\n")
    assert t.read_bytes() == "ação\n".encode("utf-8")
    j = tmp_path / "out.json"
    fileio.atomic_write_json(j, {"b": "é", "a": [1, 2]})
    assert j.read_text(encoding="utf-8") == json.dumps({"b": "é", "a": [1, 2]}, indent=2, ensure_ascii=False) + "\n"
    assert _names(tmp_path) == ["out.bin", "out.json", "out.txt"]


def test_mode_follows_the_umask(tmp_path):
    p = tmp_path / "out.json"
    old = os.umask(0o022)
    try:
        fileio.atomic_write_json(p, {})
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644     # as open() would make it, not mkstemp's 0600


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    p = tmp_path / "config.json"
    p.write_text("old", encoding="utf-8")
    seen = []

    def write(f):
        f.write(b"half of the new")
        seen.append(_names(tmp_path))             # the temporary file exists while writing
        raise error("stop")

    with pytest.raises(error):
        fileio.atomic_write(p, write)
    assert len(seen[0]) == 2 and seen[0][0].startswith(".config.json.")
    assert p.read_text(encoding="utf-8") == "old"
    assert _names(tmp_path) == ["config.json"]


def test_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        fileio.atomic_write(tmp_path / "new.npz", lambda f: (_ for _ in ()).throw(ValueError("no")))
    assert _names(tmp_path) == []


def test_interrupt_before_the_name_is_known_leaves_no_temporary(tmp_path, monkeypatch):
    """Ctrl-C right after mkstemp created the file (before it returned its name) still cleans up."""
    real = fileio.tempfile.mkstemp

    def created_then_interrupted(**kw):
        fd, name = real(**kw)
        os.close(fd)
        raise KeyboardInterrupt
    monkeypatch.setattr(fileio.tempfile, "mkstemp", created_then_interrupted)
    (tmp_path / ".keep.json.other.tmp").write_text("not ours")   # another writer's temporary file
    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write_json(tmp_path / "keep.json", {})
    assert _names(tmp_path) == [".keep.json.other.tmp"]


def _code_lines(path):
    """(line number, code) with every string and comment blanked out."""
    lines = path.read_text(encoding="utf-8").splitlines()
    with open(path, "rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type in (tokenize.STRING, tokenize.COMMENT):
                (r0, c0), (r1, c1) = tok.start, tok.end
                for r in range(r0, r1 + 1):
                    line = lines[r - 1]
                    lo = c0 if r == r0 else 0
                    hi = c1 if r == r1 else len(line)
                    lines[r - 1] = line[:lo] + " " * (hi - lo) + line[hi:]
    return enumerate(lines, 1)


def test_only_fileio_writes_temporary_files_and_renames():
    """Every 'temporary file, then rename' goes through fileio.atomic_write (a grep of the package)."""
    package = Path(fileio.__file__).parent
    # os.replace / os.rename, Path.replace(target) / Path.rename(target), the tempfile makers
    pattern = re.compile(r"\bos\.(replace|rename)\b|\bmkstemp\b|NamedTemporaryFile|\.rename\("
                         r"|\.replace\(\s*[\w.]+\s*\)")
    offenders = [f"{path.name}:{i}: {code.strip()}"
                 for path in sorted(package.glob("*.py")) if path.name != "fileio.py"
                 for i, code in _code_lines(path) if pattern.search(code)]
    assert not offenders, "\n".join(offenders)


def test_an_error_creating_the_temporary_names_the_file_asked_for(tmp_path):
    missing = tmp_path / "no such folder" / "x.json"
    with pytest.raises(FileNotFoundError) as info:
        fileio.atomic_write_bytes(missing, b"{}")
    assert info.value.filename == str(missing)
