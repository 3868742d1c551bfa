"""Shared test fixtures: where the shared corpus lives, tiny sizes reused so kernels compile once."""
import os
import signal
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MACHADO = SHARED / "corpora" / "machado"
TINY_WORK = "crônica/velhoSenado.txt"   # ~25 KB, ~5k tokens: 4k train, 500 valid, 500 test


@pytest.fixture(autouse=True, scope="session")
def _sigint_as_at_a_terminal():
    """SIGINT as a terminal gives it, for the whole session: Python's KeyboardInterrupt handler here,
    the default action in the commands the tests start.

    A test run started in the background by a non-interactive shell (`cmd &`, a CI runner's job)
    inherits SIGINT ignored, and Python then installs no handler. train() rightly leaves an ignored
    SIGINT ignored (a user's background run must not stop on it), so the tests that send SIGINT
    (to this process or to a `train` they start) would see nothing happen. The tests of that very
    rule set SIG_IGN themselves.
    """
    if (signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            and threading.current_thread() is threading.main_thread()):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        yield
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        yield


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
