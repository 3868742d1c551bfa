"""Shared test fixtures: where the shared corpus lives, tiny sizes reused so kernels compile once."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MACHADO = SHARED / "corpora" / "machado"
TINY_WORK = "crônica/velhoSenado.txt"   # ~25 KB, ~5k tokens: 4k train, 500 valid, 500 test


@pytest.fixture(scope="session")
def machado_dir():
    if not (MACHADO / "MANIFEST.tsv").exists():
        pytest.fail(f"the shared Machado corpus is missing at {MACHADO}: CI expects ../shared beside the clone")
    return MACHADO


@pytest.fixture(scope="module")
def text(machado_dir, tmp_path_factory):
    """One short Machado chronicle (~5k tokens) for tiny training runs, with a private token cache."""
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("RNNLM_CACHE")
    os.environ["RNNLM_CACHE"] = str(cache)
    yield machado_dir / "txt" / TINY_WORK
    if old is None:
        os.environ.pop("RNNLM_CACHE", None)
    else:
        os.environ["RNNLM_CACHE"] = old
