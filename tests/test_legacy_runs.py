"""Run folders written by an earlier main (tests/fixtures/legacy-runs, made at 8ea9e90) still
evaluate, generate and resume, giving the figures that code gave."""
import json
import re
import shutil
from pathlib import Path

import pytest

from rnnlm.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "legacy-runs"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())["runs"]


@pytest.fixture
def legacy_run(tmp_path, text):
    def copy(name):
        run = tmp_path / name
        shutil.copytree(FIXTURES / name, run)
        cfg = json.loads((run / "config.json").read_text())
        cfg["train"]["data"]["corpus"] = str(text)
        (run / "config.json").write_text(json.dumps(cfg, indent=2))
        return run
    return copy


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_legacy_run_evaluates_generates_and_resumes(name, legacy_run, capsys):
    run = legacy_run(name)
    want = EXPECTED[name]
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert float(re.search(r"perplexity: ([0-9.]+)", out).group(1)) == pytest.approx(want["valid_ppl"], abs=0.011)

    assert main(["generate", str(run), "--words", "8", "--seed", "3"]) == 0
    assert want["generate_seed3_words8"] in capsys.readouterr().out

    assert main(["train", "--resume", str(run), "--max-steps", "9", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert float(re.search(r"valid ppl: ([0-9.]+)", out).group(1)) == pytest.approx(want["resumed_to_9_valid_ppl"], abs=0.011)
