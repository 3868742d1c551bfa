"""Run folders (runs.py) and the training loop's stop rule, without training anything."""
import json
import math

import pytest

from rnnlm.errors import UserError
from rnnlm.runs import Run, read_run_config
from rnnlm.config import TrainConfig
from rnnlm.loopstate import LoopState
from rnnlm.stopping import STOP_REASONS, stop_reason


def test_run_create_writes_the_folder_and_refuses_a_taken_one(tmp_path):
    info, vocab = {"train": {"hidden": 16}, "corpus": {"checksum": "x"}}, {"itos": ["<unk>", "<eos>"]}
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.jsonl").write_text('{"type": "stale"}\n')
    run = Run.create(tmp_path / "r", info, vocab)
    run.log({"type": "start", "step": 0, "loss": math.inf})
    run.close()
    assert read_run_config(tmp_path / "r") == info
    assert json.loads((tmp_path / "r" / "vocab.json").read_text()) == vocab
    # A leftover metrics file is dropped; non-finite numbers are written as null (strict JSON).
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == '{"type": "start", "step": 0, "loss": null}\n'
    with pytest.raises(UserError, match="already holds a run"):
        Run.create(tmp_path / "r", info, vocab)
    with pytest.raises(UserError, match="not a run folder"):
        read_run_config(tmp_path)


def test_run_reopen_drops_the_events_after_the_checkpoint(tmp_path):
    run = Run.create(tmp_path, {"corpus": {}}, {})
    for step in (0, 5, 10, 15):
        run.log({"type": "step", "step": step})
    run.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"type": "step", "st')          # a line cut by a crash
    run = Run.reopen(tmp_path, {"corpus": {}}, {}, step=10)
    run.log({"type": "resume", "step": 10})
    run.close()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 5, 10, 10]


def test_stop_rule_order():
    config = TrainConfig(epochs=2, max_steps=10, max_minutes=1.0, patience=3)
    loop = LoopState(step=10, epoch=3, bad_evals=3)
    everything = dict(diverged=True, interrupted=True, elapsed=60.0)
    assert stop_reason(config, loop, **everything) == "nonfinite"
    assert stop_reason(config, loop, **dict(everything, diverged=False)) == "interrupted"
    assert stop_reason(config, loop, diverged=False, interrupted=False, elapsed=60.0) == "epochs"
    loop.epoch = 2
    assert stop_reason(config, loop, diverged=False, interrupted=False, elapsed=60.0) == "max_steps"
    loop.step = 9
    assert stop_reason(config, loop, diverged=False, interrupted=False, elapsed=60.0) == "max_minutes"
    assert stop_reason(config, loop, diverged=False, interrupted=False, elapsed=59.9) == "early_stop"
    assert stop_reason(config, loop, diverged=False, interrupted=False, elapsed=59.9, lr=1e-30) == "early_stop"
    loop.bad_evals = 2
    assert stop_reason(config, loop, diverged=False, interrupted=False, elapsed=59.9) is None
    assert stop_reason(config, loop, diverged=False, interrupted=False, elapsed=59.9, lr=1e-30) == "min_lr"
    # 0 turns a budget off.
    off = TrainConfig(epochs=2, max_steps=0, max_minutes=0, patience=0)
    assert stop_reason(off, LoopState(step=10**6, bad_evals=99), diverged=False, interrupted=False, elapsed=1e9) is None
    assert {"nonfinite", "interrupted", "epochs", "max_steps", "max_minutes", "early_stop", "min_lr"} == \
        set(STOP_REASONS)
