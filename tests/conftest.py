"""Shared test fixtures: where the shared corpus lives, tiny sizes reused so kernels compile once."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MACHADO = SHARED / "corpora" / "machado"


@pytest.fixture(scope="session")
def machado_dir():
    if not (MACHADO / "MANIFEST.tsv").exists():
        pytest.fail(f"the shared Machado corpus is missing at {MACHADO}: CI expects ../shared beside the clone")
    return MACHADO
