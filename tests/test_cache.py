"""Caches are optional and keyed on everything they depend on (rnnlm/caches.py).

As root, chmod does not make a folder read-only, so an unusable folder is
simulated by a path under a regular FILE: creating it fails with ENOTDIR.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

from rnnlm import caches
from rnnlm.cli import main
from rnnlm.config import DataConfig
from rnnlm.data import load_corpus

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def blocker(tmp_path):
    """A regular file: any path under it cannot be created (ENOTDIR), as on a read-only install."""
    f = tmp_path / "a-file"
    f.write_text("not a folder")
    return f


@pytest.fixture()
def env(monkeypatch, tmp_path):
    for name in ("RNNLM_CACHE", "XDG_CACHE_HOME", "NUMBA_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(caches, "_warned", set())
    return monkeypatch


def test_the_order_rnnlm_cache_user_temp_none(env, tmp_path, blocker):
    env.setenv("RNNLM_CACHE", str(tmp_path / "mine"))
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert caches.cache_root() == tmp_path / "mine"
    env.setenv("RNNLM_CACHE", str(blocker / "c"))                     # unusable: next one
    assert caches.cache_root() == tmp_path / "xdg" / "rnnlm"
    env.setenv("XDG_CACHE_HOME", str(blocker / "x"))
    env.setenv("HOME", str(blocker / "home"))
    user = "0" if not hasattr(os, "getuid") else str(os.getuid())
    assert caches.cache_root() == tmp_path / "tmp" / f"rnnlm-cache-{user}"
    env.setattr(tempfile, "tempdir", str(blocker / "t"))
    with pytest.warns(UserWarning, match="no usable cache folder") as record:
        assert caches.cache_root() is None
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")                               # the warning comes once
        assert caches.cache_root() is None and caches.tokens_cache_dir() is None


def test_a_missing_home_is_not_created(env, tmp_path):
    env.setenv("HOME", str(tmp_path / "gone"))
    assert caches._user_cache() is None
    assert caches.cache_root().parent == tmp_path / "tmp" and not (tmp_path / "gone").exists()


def test_corpus_info_without_a_home_or_any_cache(env, tmp_path, blocker, capsys):
    text = tmp_path / "t.txt"
    text.write_text("A casa é azul. O mar é verde.\n" * 20, encoding="utf-8")
    env.setenv("HOME", str(tmp_path / "gone"))
    assert main(["corpus", "info", str(text)]) == 0
    assert "miss, tokenized and saved" in capsys.readouterr().out
    env.setattr(tempfile, "tempdir", str(blocker / "t"))
    with pytest.warns(UserWarning, match="no usable cache folder"):
        assert main(["corpus", "info", str(text)]) == 0
    assert "tokenized, not saved (no usable cache folder)" in capsys.readouterr().out


def _copy_package(tmp_path) -> Path:
    pkg = tmp_path / "install"
    shutil.copytree(REPO / "rnnlm", pkg / "rnnlm", ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


_RUN = ("import os, tempfile\n"
        "tempfile.tempdir = os.environ['TEMPDIR_FOR_TEST']   # tempfile would fall back to /tmp\n"
        "import warnings, numpy as np, pkgutil, importlib, rnnlm\n"
        "for m in pkgutil.iter_modules(rnnlm.__path__): importlib.import_module('rnnlm.' + m.name)\n"
        "from rnnlm.optim import _sum_squares\n"
        "from rnnlm.activations import apply\n"
        "from rnnlm.config import parse_activation\n"
        "assert _sum_squares(np.ones(4, np.float32)) == 4.0\n"
        "assert (apply(np.zeros((2, 3), np.float32), parse_activation('sigmoid')) == 0.5).all()\n"
        "from rnnlm._jit import CACHE_DIR; print(CACHE_DIR)\n")


def _run_installed(pkg, tmp_path, **env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("RNNLM_CACHE", "XDG_CACHE_HOME", "NUMBA_CACHE_DIR", "HOME", "TMPDIR", "PYTHONPATH")}
    return subprocess.run([sys.executable, "-c", _RUN], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**base, "PYTHONPATH": str(pkg), "PYTHONDONTWRITEBYTECODE": "1", **env})


def test_a_read_only_install_with_no_writable_home_imports_and_runs(tmp_path, blocker):
    """The package folder is never written; with no usable folder at all, kernels compile uncached."""
    pkg = _copy_package(tmp_path)
    before = sorted(p.relative_to(pkg) for p in pkg.rglob("*"))
    r = _run_installed(pkg, tmp_path, HOME=str(blocker / "home"), RNNLM_CACHE=str(blocker / "c"),
                       TEMPDIR_FOR_TEST=str(blocker / "t"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "None" and r.stderr.count("no usable cache folder") == 1
    assert sorted(p.relative_to(pkg) for p in pkg.rglob("*")) == before        # nothing written beside it
    # with only the temp folder usable, the compiled kernels land there, under the sources' hash
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = _run_installed(pkg, tmp_path, HOME=str(blocker / "home"), TEMPDIR_FOR_TEST=str(tmp))
    assert r.returncode == 0, r.stderr
    folder = Path(r.stdout.strip())
    assert folder.parent.parent.parent == tmp and folder.name == caches.kernel_sources_hash(pkg / "rnnlm")
    assert list(folder.rglob("*.nbi")) and sorted(p.relative_to(pkg) for p in pkg.rglob("*")) == before


def test_an_edit_to_any_numba_module_changes_the_kernel_cache_folder(tmp_path):
    pkg = _copy_package(tmp_path) / "rnnlm"
    names = {p.name for p in caches.numba_modules(pkg)}
    assert {"vecmath.py", "lstm.py", "gru.py", "rnn.py", "layers.py", "activations.py", "_jit.py"} <= names
    assert "cli.py" not in names and "tokenize.py" not in names
    first = caches.kernel_sources_hash(pkg)
    assert caches.kernel_sources_hash(REPO / "rnnlm") == first
    (pkg / "cli.py").write_text((pkg / "cli.py").read_text() + "\n# a comment\n")
    assert caches.kernel_sources_hash(pkg) == first                    # not kernel code: cache kept
    vec = pkg / "vecmath.py"                                            # inlined into the kernels elsewhere
    vec.write_bytes(vec.read_bytes().replace(b"return", b"return ", 1))
    assert caches.kernel_sources_hash(pkg) != first


def test_numba_cache_dir_follows_numba_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "nc"))
    caches.numba_cache_dir.cache_clear()
    try:
        assert caches.numba_cache_dir() == tmp_path / "nc" / caches.kernel_sources_hash()
    finally:
        caches.numba_cache_dir.cache_clear()


# ---------------------------------------------------------------- the token cache


def test_a_same_size_edit_with_the_mtime_restored_gives_new_tokens(env, tmp_path):
    env.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "texto.txt"
    path.write_text("A casa azul fica longe.\n" * 30, encoding="utf-8")
    first = load_corpus(DataConfig(corpus=str(path), valid_fraction=0.1, test_fraction=0.1))
    st = os.stat(path)
    path.write_text("A cata azul fica longe.\n" * 30, encoding="utf-8")         # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))                        # as cp -p / rsync -t leave it
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    second = load_corpus(DataConfig(corpus=str(path), valid_fraction=0.1, test_fraction=0.1))
    assert second.checksum != first.checksum and not second.cache_hit
    assert "cata" in second.vocab.stoi and "casa" not in second.vocab.stoi
    third = load_corpus(DataConfig(corpus=str(path), valid_fraction=0.1, test_fraction=0.1))
    assert third.cache_hit and third.checksum == second.checksum


def test_no_option_stores_tokens_under_a_wrong_key(env, tmp_path, monkeypatch):
    from rnnlm import data
    env.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "texto.txt"
    path.write_text("A Casa 12 azul.\n" * 40, encoding="utf-8")
    configs = [DataConfig(corpus=str(path), keep_case=k, num_token=n, use_cache=u)
               for k in (False, True) for n in (False, True) for u in (True, False)]
    seen = {}
    for cfg in configs:
        c = load_corpus(cfg)
        key = (cfg.keep_case, cfg.num_token)
        seen.setdefault(key, (c.checksum, c.vocab.itos))
        assert (c.checksum, c.vocab.itos) == seen[key]                    # --no-cache rewrites the same
    assert len({v[0] for v in seen.values()}) == 4
    # a file edited while it is being tokenized: its tokens are not cached under the old key
    real = data._tokenize_files

    def edit_meanwhile(source, config, *version):
        out = real(source, config, *version)
        path.write_text("Outro texto agora.\n" * 40, encoding="utf-8")
        return out
    path.write_text("Primeiro texto aqui.\n" * 40, encoding="utf-8")
    monkeypatch.setattr(data, "_tokenize_files", edit_meanwhile)
    first = load_corpus(DataConfig(corpus=str(path)))
    assert "primeiro" in first.vocab.stoi and not Path(first.cache_path, "meta.json").exists()
    monkeypatch.setattr(data, "_tokenize_files", real)
    again = load_corpus(DataConfig(corpus=str(path)))
    assert not again.cache_hit and "outro" in again.vocab.stoi and "primeiro" not in again.vocab.stoi
    assert load_corpus(DataConfig(corpus=str(path))).cache_hit
