"""Corpus lookup, reading (encodings, bad inputs), checksums and download (never the real network)."""
import hashlib
import io
import os
import shutil
import sys
import types
import urllib.error
import urllib.parse

import pytest

from rnnlm import corpus
from rnnlm.cli import main
from rnnlm.errors import UserError


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RNNLM_CORPORA", raising=False)


# ---------------------------------------------------------------- lookup


def test_named_corpus_found_with_corpora_dir(machado_dir):
    source = corpus.resolve("machado", corpora_dir=machado_dir.parent)
    assert len(source.files) == 116
    names = [name for name, _ in source.files]
    assert names == sorted(names) and names[0] == "txt/conto/contosFluminenses.txt"
    assert "--corpora-dir" in source.origin
    assert all(path.is_file() for _, path in source.files)


def test_lookup_order_env_then_shared(machado_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLM_CORPORA", str(machado_dir.parent))
    assert "$RNNLM_CORPORA" in corpus.resolve("machado").origin
    # A --corpora-dir without the corpus is an error naming it, not skipped for the next candidate
    # (it was skipped before: a user who named a folder got another copy without a word).
    with pytest.raises(UserError, match=r"not found in .* \(given by --corpora-dir: no such folder\)"):
        corpus.resolve("machado", corpora_dir=tmp_path)
    monkeypatch.delenv("RNNLM_CORPORA")
    assert "shared" in corpus.resolve("machado").origin


def _fake_repo(tmp_path, monkeypatch):
    """A repository root with the machado catalog and no text anywhere around it."""
    repo = tmp_path / "repo"
    (repo / "corpora" / "machado").mkdir(parents=True)
    for name in ("catalog.json", "MANIFEST.tsv"):
        shutil.copy(corpus.REPO_CORPORA / "machado" / name, repo / "corpora" / "machado" / name)
    monkeypatch.setattr(corpus, "REPO_ROOT", repo)
    monkeypatch.setattr(corpus, "REPO_CORPORA", repo / "corpora")
    monkeypatch.chdir(repo)
    return repo


def test_incomplete_folder_does_not_count(machado_dir, tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path, monkeypatch)
    partial = repo / "corpora" / "machado" / "txt" / "conto"
    partial.mkdir(parents=True)
    shutil.copy(machado_dir / "txt/conto/reliquias.txt", partial)
    with pytest.raises(UserError, match="not found.*missing txt/conto/contosFluminenses.txt.*corpus download machado"):
        corpus.resolve("machado")


def test_wrong_size_does_not_count(machado_dir, tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path, monkeypatch)
    for name, size, _ in (l.split("\t") for l in (machado_dir / "MANIFEST.tsv").read_text().splitlines()):
        dest = repo / "corpora" / "machado" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(machado_dir / name)
    last = dest
    last.unlink()
    last.write_text("truncated")
    with pytest.raises(UserError, match="has 9 bytes, the catalog says"):
        corpus.resolve("machado")


def _copy_with_one_byte_changed(machado_dir, tmp_path):
    """tmp_path/c/machado: the corpus as symlinks, except txt/crítica/ea.txt, a copy with one byte
    changed (same size: the lookup takes it, the checksum does not). Returns that folder."""
    root = tmp_path / "c" / "machado"
    for name, _, _ in _manifest(machado_dir):
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(machado_dir / name)
    victim = root / "txt/crítica/ea.txt"
    data = bytearray(victim.read_bytes())
    victim.unlink()
    data[100] = ord("X") if data[100] != ord("X") else ord("Y")
    victim.write_bytes(bytes(data))
    return root


def test_checksum_mismatch_with_same_size(machado_dir, tmp_path):
    root = _copy_with_one_byte_changed(machado_dir, tmp_path)
    victim = root / "txt/crítica/ea.txt"
    source = corpus.resolve("machado", corpora_dir=tmp_path / "c")   # sizes match: found
    with pytest.raises(UserError, match="ea.txt does not match the 'machado' catalog checksum"):
        corpus.source_checksum(source)


def test_file_hashes_follow_the_bytes(tmp_path, monkeypatch):
    """(Was test_file_hashes_are_cached: hashes remembered by path, size and mtime served a same-size
    edit with its mtime restored the old hash; issue 13 asks for the content every time.)"""
    files = []
    for i in range(3):
        p = tmp_path / f"f{i}.txt"
        p.write_text(f"texto {i}")
        files.append(p)
    first = corpus.file_hashes(files)
    assert first == [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    calls = []
    real = corpus.sha256_file
    monkeypatch.setattr(corpus, "sha256_file", lambda p: calls.append(p) or real(p))
    assert corpus.file_hashes(files) == first and calls == files
    st = os.stat(files[1])
    files[1].write_text("texto X")                                  # same size
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns))          # mtime restored
    second = corpus.file_hashes(files)
    assert second[1] != first[1] and second[0] == first[0] and second[2] == first[2]


def test_folder_is_recursive_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("z")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b" / "c.txt").write_text("c")
    (tmp_path / "ignored.md").write_text("x")
    source = corpus.resolve(str(tmp_path))
    assert [n for n, _ in source.files] == ["a.txt", "b/c.txt", "b/z.txt"]


def test_bad_paths(tmp_path):
    with pytest.raises(UserError, match="neither a named corpus"):
        corpus.resolve(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no .txt file"):
        corpus.resolve(str(tmp_path / "empty"))


def test_sintetico_missing_or_present(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rnnlm.sintetico", None)   # import fails as if the module were absent
    with pytest.raises(UserError, match="'sintetico' is not available"):
        corpus.resolve("sintetico", corpora_dir=tmp_path)

    def ensure_corpus(folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "frases.txt").write_text("O gato dorme.\n", encoding="utf-8")
        return folder

    monkeypatch.setitem(sys.modules, "rnnlm.sintetico",
                        types.SimpleNamespace(ensure_corpus=ensure_corpus, is_current=lambda folder: False))
    source = corpus.resolve("sintetico", corpora_dir=tmp_path)
    assert source.root == (tmp_path / "sintetico").resolve()
    assert [n for n, _ in source.files] == ["frases.txt"]


def test_sintetico_uses_a_current_copy_along_the_lookup_order_instead_of_writing_one(tmp_path, monkeypatch):
    # e.g. ../shared/corpora/sintetico: found there, nothing is generated into ./corpora/
    from rnnlm import sintetico
    first, second = tmp_path / "a" / "sintetico", tmp_path / "b" / "sintetico"
    monkeypatch.setattr(corpus, "candidate_dirs", lambda name, corpora_dir=None: [(first, "a"), (second, "b")])
    monkeypatch.setattr(sintetico, "is_current", lambda folder, **k: folder == second)
    monkeypatch.setattr(sintetico, "ensure_corpus", lambda folder, **k: pytest.fail(f"generated into {folder}"))
    assert corpus.ensure_sintetico() == second


def test_is_current_reads_the_settings_file(tmp_path):
    from rnnlm import sintetico
    folder = sintetico.ensure_corpus(tmp_path / "s", sentences=60, max_distance=6, seed=1)
    assert sintetico.is_current(folder, sentences=60, max_distance=6, seed=1)
    assert not sintetico.is_current(folder, sentences=60, max_distance=6, seed=2)      # other settings
    assert not sintetico.is_current(tmp_path / "nothing", sentences=60, max_distance=6, seed=1)
    (folder / "valid.txt").unlink()
    assert not sintetico.is_current(folder, sentences=60, max_distance=6, seed=1)      # incomplete


# ---------------------------------------------------------------- reading


def test_utf8_bom_and_crlf(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes("\ufeffPrimeira linha\r\nSegunda à tarde\r\n".encode("utf-8"))
    assert corpus.read_text(p) == "Primeira linha\nSegunda à tarde\n"


def test_cp1252_file_read_with_warning(tmp_path):
    p = tmp_path / "antigo.txt"
    p.write_bytes("Não há “aspas” aqui — coração".encode("cp1252"))
    with pytest.warns(UserWarning, match="antigo.txt is not UTF-8; read it as cp1252"):
        assert corpus.read_text(p) == "Não há “aspas” aqui — coração"


def test_latin1_fallback(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes(b"a\x81b \xe9")        # 0x81 is undefined in cp1252
    with pytest.warns(UserWarning, match="latin-1"):
        assert corpus.read_text(p) == "a\x81b é"


def test_binary_and_empty_files_refused(tmp_path):
    binary = tmp_path / "x.txt"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(UserError, match="binary"):
        corpus.read_text(binary)
    empty = tmp_path / "vazio.txt"
    empty.write_text("  \n\n")
    with pytest.raises(UserError, match="vazio.txt is empty"):
        corpus.read_text(empty)


# ---------------------------------------------------------------- download


def _manifest(machado_dir):
    return [l.split("\t") for l in (machado_dir / "MANIFEST.tsv").read_text().splitlines()]


def test_download_without_network_is_one_line(tmp_path, monkeypatch, capsys):
    def no_network(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(corpus, "_urlopen", no_network)
    assert main(["corpus", "download", "machado", "--corpora-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot download https://raw.githubusercontent.com/")
    assert "cr%C3%B4nica" in err or "conto" in err
    assert str(tmp_path / "c" / "machado") in err
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()], "no partial file left"


def test_download_checksum_mismatch_deletes_partial(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "_urlopen", lambda url, timeout: io.BytesIO(b"not the real text"))
    with pytest.raises(UserError, match="checksum mismatch for https://.*contosFluminenses.txt"):
        corpus.download("machado", tmp_path / "c")
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]


def test_download_success_verifies_and_is_found(machado_dir, tmp_path, monkeypatch):
    catalog = corpus.load_catalog("machado")
    prefix = catalog.url_pattern.format(commit=catalog.commit, path="")
    fetched = []

    def from_shared(url, timeout):
        assert url.startswith(prefix) and " " not in url and "í" not in url   # accents are encoded
        rel = urllib.parse.unquote(url[len(prefix):])
        fetched.append(rel)
        return io.BytesIO((machado_dir / rel).read_bytes())

    monkeypatch.setattr(corpus, "_urlopen", from_shared)
    folder = corpus.download("machado", tmp_path / "c", progress=False)
    assert folder == tmp_path / "c" / "machado" and len(fetched) == 116
    assert "txt/crítica/ea.txt" in fetched
    source = corpus.resolve("machado", corpora_dir=tmp_path / "c")
    assert source.root == folder.resolve()
    corpus.source_checksum(source)                       # every SHA-256 matches the catalog
    fetched.clear()
    corpus.download("machado", tmp_path / "c", progress=False)
    assert fetched == [], "files already verified are not fetched again"


# ---------------------------------------------------------------- a folder the user named is the only one searched


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_a_given_corpora_folder_without_the_corpus_is_one_line_naming_it(machado_dir, tmp_path, monkeypatch, capsys,
                                                                         how):
    assert corpus.resolve("machado").root == machado_dir.resolve()     # the default lookup still finds it
    given = tmp_path / "mine"
    (given / "machado").mkdir(parents=True)
    argv = ["corpus", "info", "machado"]
    if how == "flag":
        argv += ["--corpora-dir", str(given)]
        label, fix = "--corpora-dir", f"'python cli.py corpus download machado --corpora-dir {given}'"
    else:
        monkeypatch.setenv("RNNLM_CORPORA", str(given))
        label, fix = "$RNNLM_CORPORA", "'python cli.py corpus download machado'"
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and "Traceback" not in captured.err
    assert lines[0] == (f"error: corpus 'machado' not found in {given / 'machado'} (given by {label}: missing "
                        f"txt/conto/contosFluminenses.txt); download it there with {fix}, or "
                        + ("leave out --corpora-dir" if how == "flag" else "unset RNNLM_CORPORA")
                        + " to search the default places")


def test_the_flag_wins_over_the_variable_and_the_variable_is_where_download_goes(machado_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLM_CORPORA", str(tmp_path / "elsewhere"))
    assert "--corpora-dir" in corpus.resolve("machado", corpora_dir=machado_dir.parent).origin
    with pytest.raises(UserError, match=r"given by \$RNNLM_CORPORA: no such folder"):
        corpus.resolve("machado")
    assert corpus.download_dir("machado") == tmp_path / "elsewhere" / "machado"
    assert corpus.download_dir("machado", tmp_path / "c") == tmp_path / "c" / "machado"
    monkeypatch.delenv("RNNLM_CORPORA")
    assert corpus.download_dir("machado") == corpus.default_corpora() / "machado"


# ---------------------------------------------------------------- download of a corpus already present


def _no_network(url, timeout):
    raise AssertionError(f"the network was used: {url}")


def test_download_of_a_corpus_already_present_fetches_nothing(machado_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(corpus, "_urlopen", _no_network)
    # found by the default lookup (in CI: ../shared/corpora beside the repository): reported, exit 0
    found = corpus.find_named("machado")
    assert main(["corpus", "download", "machado"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (f"machado: already present and verified in {found.origin}; nothing fetched "
                            f"(--force fetches it again into {corpus.default_corpora() / 'machado'})\n")
    # found in the folder given
    assert main(["corpus", "download", "machado", "--corpora-dir", str(machado_dir.parent)]) == 0
    assert f"already present and verified in {machado_dir} (via --corpora-dir)" in capsys.readouterr().out


def test_download_with_force_fetches_even_when_present(machado_dir, tmp_path, monkeypatch, capsys):
    root = tmp_path / "c" / "machado"
    for name, _, _ in _manifest(machado_dir):
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((machado_dir / name).read_bytes())
    catalog = corpus.load_catalog("machado")
    prefix = catalog.url_pattern.format(commit=catalog.commit, path="")
    fetched = []

    def from_shared(url, timeout):
        rel = urllib.parse.unquote(url[len(prefix):])
        fetched.append(rel)
        return io.BytesIO((machado_dir / rel).read_bytes())

    monkeypatch.setattr(corpus, "_urlopen", from_shared)
    assert main(["corpus", "download", "machado", "--corpora-dir", str(tmp_path / "c")]) == 0
    assert fetched == [] and "already present" in capsys.readouterr().out
    assert main(["corpus", "download", "machado", "--corpora-dir", str(tmp_path / "c"), "--force"]) == 0
    assert len(fetched) == 116 and f"all files present and verified in {root}" in capsys.readouterr().out
    corpus.source_checksum(corpus.resolve("machado", corpora_dir=tmp_path / "c"))


def test_download_of_a_changed_copy_fetches_it_again(machado_dir, tmp_path, monkeypatch, capsys):
    # sizes match (the lookup takes it) but a byte differs: not "present", the bad file is fetched again
    root = _copy_with_one_byte_changed(machado_dir, tmp_path)
    victim = root / "txt/crítica/ea.txt"
    fetched = []
    monkeypatch.setattr(corpus, "_urlopen", lambda url, timeout: fetched.append(url) or io.BytesIO(
        (machado_dir / "txt/crítica/ea.txt").read_bytes()))
    assert main(["corpus", "download", "machado", "--corpora-dir", str(tmp_path / "c")]) == 0
    assert len(fetched) == 1 and fetched[0].endswith("ea.txt")
    assert victim.read_bytes() == (machado_dir / "txt/crítica/ea.txt").read_bytes()


def test_download_of_the_generated_corpus_says_it_was_generated(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(corpus, "_urlopen", _no_network)    # nothing is fetched for it
    assert main(["corpus", "download", "sintetico", "--corpora-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out == (f"sintetico: generated corpus ready in {tmp_path / 'sintetico'} "
                   f"(made on this machine, not downloaded)\n")
    assert (tmp_path / "sintetico" / "train.txt").is_file()
