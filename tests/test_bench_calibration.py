"""`bench --vs-torch`'s worker calibration: which PyTorch worker is kept, when the table warns.

PyTorch in a fresh process runs fast or 2.5-3x slower for its whole life
(BENCHMARKS.md, Round 4), so the bench calibrates each worker against ours and
replaces a slow one. The decision is tested here with fake calibrations and fake
workers (no PyTorch, nothing timed). PyTorch's side of the calibration runs only
where PyTorch is installed (never in CI), so no test here needs it.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlm import bench, benchscaling, benchworker
from rnnlm.cli import main


@pytest.mark.parametrize("tries,earlier,verdict", [
    ([(2.4, 2.0)], [], "more"),                           # the run's first worker: nothing to compare with
    ([(9.0, 2.0), (2.4, 2.0)], [], "keep"),               # ... the second is the reference and the fastest
    ([(2.4, 2.0), (2.5, 2.0)], [], "keep"),
    ([(2.4, 2.0)], [1.2], "keep"),                        # a later row: as fast as the best
    ([(1.6 * 2.4, 2.0)], [1.2], "keep"),                  # 1.6x the best ratio exactly: kept
    ([(1.61 * 2.4, 2.0)], [1.2], "more"),                 # just past it: another worker
    ([(4.8, 4.0)], [1.2], "keep"),                        # a busy machine slows both sides: not slow mode
    ([(9.0, 2.0), (8.7, 2.0)], [1.2], "more"),
    ([(9.0, 2.0), (8.7, 2.0), (2.5, 2.0)], [1.2], "keep"),
    ([(9.0, 2.0), (8.7, 2.0), (10.8, 2.0)], [1.2], "slow"),   # every try allowed was slow: warn
    ([(2.0, 2.0)], [3.0, 2.9], "keep"),                   # faster than every earlier worker
])
def test_worker_verdict(tries, earlier, verdict):
    assert benchworker._worker_verdict(tries, earlier) == verdict


@pytest.mark.parametrize("tries,faults,earlier,verdict", [
    ([(2.4, 2.0)], [1954], [1.2], "more"),                 # as fast as the best, but page-faulting: slow mode
    ([(2.4, 2.0)], [500], [1.2], "keep"),                  # at the limit: kept
    ([(2.4, 2.0), (2.5, 2.0), (2.3, 2.0)], [893, 4560, 1195], [1.2], "slow"),
    ([(2.4, 2.0), (2.5, 2.0)], [1954, 6], [], "keep"),     # the first row: the second does not fault
    ([(2.4, 2.0), (2.5, 2.0)], [1954, 4553], [], "more"),
])
def test_worker_verdict_with_page_faults(tries, faults, earlier, verdict):
    assert benchworker._worker_verdict(tries, earlier, faults) == verdict


def test_the_best_try_does_not_fault_if_one_does_not():
    assert benchworker._best_try([(2.4, 2.0), (2.6, 2.0), (2.3, 2.0)], [1954, 6, 700]) == 1
    assert benchworker._best_try([(2.4, 2.0), (2.6, 2.0)], [1954, 4553]) == 0          # all fault: the fastest
    assert benchworker._best_try([(2.4, 2.0), (2.3, 2.0)], [0, 0]) == 1


class _FakeWorker:
    def __init__(self, ms, log):
        # ms: the calibration's ms, or (ms, page faults per call); by default a slow worker faults
        self.ms, self.faults = ms if isinstance(ms, tuple) else (ms, 1000.0 * (ms > 5))
        self.log, self.closed = log, False

    def calibrate(self):
        return self.ms, self.faults

    def close(self, at_once=False):
        self.closed = True
        self.log.append(("close", self.ms))


def _starter(ms_list, log, fail_at=None):
    made = []

    def start():
        if len(made) == fail_at:
            raise bench.UserError("the worker failed")
        made.append(_FakeWorker(ms_list[len(made)], log))
        return made[-1]
    return start, made


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch):
    monkeypatch.setattr(benchworker, "IDLE_S", 0.0)


def test_a_later_row_replaces_slow_workers_and_keeps_the_fast_one():
    log, earlier = [], [1.25, 1.3]
    start, made = _starter([9.0, 10.0, 2.6], log)
    worker, fields = bench._calibrated_worker(start, lambda: 2.0, earlier)
    assert worker is made[2] and not worker.closed
    assert made[0].closed and made[1].closed and len(made) == 3
    assert fields == {"calibration_ms": 2.0, "torch_calibration_ms": 2.6,
                      "torch_calibration_tries": [[9.0, 2.0], [10.0, 2.0], [2.6, 2.0]],
                      "torch_calibration_faults": [1000, 1000, 0],
                      "torch_worker_kept": 3, "torch_calibration_best": 1.25, "torch_slow_mode": False}
    assert earlier == [1.25, 1.3, 4.5, 5.0, 1.3]           # the run's ratios grow by this row's


def test_the_first_row_tries_two_and_keeps_the_faster():
    log, earlier = [], []
    start, made = _starter([2.4, 8.0], log)
    worker, fields = bench._calibrated_worker(start, lambda: 2.0, earlier)
    assert worker is made[0] and made[1].closed and not made[0].closed
    assert (fields["torch_worker_kept"], fields["torch_calibration_best"], fields["torch_slow_mode"]) == (1, 1.2, False)
    assert log == [("close", 8.0)]


def test_every_worker_slow_keeps_the_fastest_and_says_so():
    log = []
    start, made = _starter([9.0, 8.0, 10.0], log)
    worker, fields = bench._calibrated_worker(start, lambda: 2.0, [1.2])
    assert worker is made[1] and [w.closed for w in made] == [True, False, True]
    assert fields["torch_slow_mode"] is True and fields["torch_worker_kept"] == 2
    assert fields["torch_calibration_ms"] == 8.0


def test_a_fast_worker_that_page_faults_is_replaced():
    log = []
    start, made = _starter([(2.3, 1954.0), (2.6, 6.0)], log)
    worker, fields = bench._calibrated_worker(start, lambda: 2.0, [1.2])
    assert worker is made[1] and made[0].closed and not made[1].closed
    assert fields["torch_calibration_faults"] == [1954, 6] and fields["torch_worker_kept"] == 2
    assert fields["torch_slow_mode"] is False


def test_a_worker_that_fails_to_start_closes_the_one_kept():
    log = []
    start, made = _starter([9.0, 9.0], log, fail_at=1)
    with pytest.raises(bench.UserError, match="failed"):
        bench._calibrated_worker(start, lambda: 2.0, [1.2])
    assert made[0].closed


def _record(config, cell, tries, kept, slow=False):
    theirs, ours = tries[kept - 1]
    return {"config": config, "cell": cell, "V": 2000, "H": 64, "train_tokens_per_s": 100_000,
            "eval_tokens_per_s": 300_000, "torch_train_tokens_per_s": 50_000, "torch_eval_tokens_per_s": 200_000,
            "train_ratio": 2.0, "train_ratio_range": [1.9, 2.1], "eval_ratio": 1.5, "eval_ratio_range": [1.4, 1.6],
            "calibration_ms": ours, "torch_calibration_ms": theirs, "torch_calibration_tries": tries,
            "torch_worker_kept": kept, "torch_calibration_best": 1.2, "torch_slow_mode": slow}


def test_table_names_the_kept_worker_and_warns_of_slow_rows():
    records = [_record("tiny", "rnn", [[2.4, 2.0], [9.0, 2.0]], 1),
               _record("tiny", "lstm", [[9.0, 2.0], [8.8, 2.0], [9.4, 2.0]], 2, slow=True),
               _record("tiny", "gru", [[2.5, 2.0]], 1)]
    assert [(r["cell"]) for r in benchworker.slow_worker_rows(records)] == ["lstm"]
    text = bench.format_table(records, vs_torch=True)
    lines = text.splitlines()
    assert lines[1].startswith("tiny    rnn") and "2.00x [1.90-2.10]" in lines[1]   # the rows as before
    assert "  tiny    rnn   [2.40/2.00 = 1.20x], 9.00/2.00 = 4.50x" in lines
    assert "  tiny    lstm  9.00/2.00 = 4.50x, [8.80/2.00 = 4.40x], 9.40/2.00 = 4.70x" in lines
    assert "the run's best ratio (1.20x)" in text
    warning = [line for line in lines if line.startswith("WARNING")]
    assert len(warning) == 1 and warning[0].startswith("WARNING: tiny lstm: timed against a PyTorch worker")


def test_a_later_faster_worker_flags_an_earlier_row():
    # both of the first row's workers were slow (nothing to tell them by), a later one was fast
    records = [_record("tiny", "rnn", [[9.0, 2.0], [9.2, 2.0]], 1), _record("tiny", "gru", [[2.4, 2.0]], 1)]
    assert [r["cell"] for r in benchworker.slow_worker_rows(records)] == ["rnn"]
    assert "WARNING: tiny rnn: timed against" in bench.format_table(records, vs_torch=True)


def test_a_kept_worker_that_page_faults_is_flagged():
    records = [dict(_record("tiny", "rnn", [[2.4, 2.0], [2.5, 2.0], [2.45, 2.0]], 1, slow=True),
                    torch_calibration_faults=[1954, 4553, 893]),
               dict(_record("tiny", "gru", [[2.5, 2.0]], 1), torch_calibration_faults=[6])]
    assert [r["cell"] for r in benchworker.slow_worker_rows(records)] == ["rnn"]
    assert "WARNING: tiny rnn: timed against" in bench.format_table(records, vs_torch=True)


def test_no_worker_no_calibration_lines():
    rec = {k: v for k, v in _record("tiny", "rnn", [[2.4, 2.0]], 1).items() if not k.startswith("torch_calib")}
    assert "calibration" not in bench.format_table([rec], vs_torch=True)
    assert bench.format_calibration([rec]) == "" and benchworker.slow_worker_rows([rec]) == []
    fast = [_record("tiny", "rnn", [[2.4, 2.0], [2.6, 2.0]], 1)]
    assert "WARNING" not in bench.format_table(fast, vs_torch=True)


def test_scaling_footer_says_the_thread_count_of_the_calibration():
    recs = []
    for t in (1, 2):
        rec = _record("tiny", "rnn", [[2.4, 2.0], [9.0, 2.0]], 1)
        rec.update(threads=t, torch="torch 2.13.0+cpu", train_efficiency=1.0, eval_efficiency=1.0,
                   efficiency_from=1)
        recs.append(rec)
    assert "calibration" not in benchscaling.format_scaling_table(recs, vs_torch=True)   # the table as before
    lines = benchscaling.format_scaling_footer(recs).splitlines()
    assert sum(line.startswith("  tiny    rnn") for line in lines) == 1   # once per (config, cell)
    assert any("ours beside it, at 1 thread;" in line for line in lines)
    assert lines[-2].startswith("threads: ours")


def test_the_tables_show_page_faults_when_recorded():
    rec = dict(_record("tiny", "rnn", [[2.4, 2.0], [9.0, 2.0]], 1), torch_calibration_faults=[0, 1954])
    assert "  tiny    rnn   [2.40/2.00 = 1.20x 0 pf], 9.00/2.00 = 4.50x 1954 pf" in bench.format_calibration([rec])
    rec["torch_eval_faults_per_window"] = 4055
    assert bench.format_calibration([rec]).splitlines()[1].endswith(
        "1954 pf; kept worker's timed eval 4055 pf/window")


def test_our_calibration_is_a_fresh_models_loss_and_its_time():
    # one window of a freshly initialized tiny LSTM: close to the uniform guess, ln V nats/token
    loss = benchworker._calibration_call("rnnlm")()
    assert abs(loss - np.log(bench.CONFIGS["tiny"][0])) < 0.05
    seconds, faults = benchworker._calibrate(lambda: None, calls=3, warmup=0)
    assert 0 <= seconds < 0.01 and faults >= 0
    assert 0 < bench.calibrate_ours() < 1000


# ---------------------------------------------------------------- PyTorch's allocator (--torch-malloc)

_CYCLES = """
import ctypes, resource, sys
from rnnlm.benchworker import malloc_setting
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
print(malloc_setting(sys.argv[1]))
size = 40 << 20     # a block above glibc's largest mmap threshold (32 MiB), as PyTorch's small logits are
def cycle():        # what PyTorch does every window: allocate, fill, free
    p = libc.malloc(size); ctypes.memset(p, 1, size); libc.free(p)
cycle()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    cycle()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 5)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux")
def test_kept_memory_is_not_touched_afresh_every_window():
    """A 40 MB block allocated, filled and freed again and again: with glibc's defaults every cycle
    maps it anew (10,240 minor page faults of 4 KB); with the memory kept (the bench's default for the
    process that runs PyTorch) the second cycle on reuses it."""
    import subprocess

    def faults(mode):
        out = subprocess.run([sys.executable, "-c", _CYCLES, mode], capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONPATH=str(Path(bench.__file__).parents[1]))).stdout
        what, per_cycle = out.splitlines()
        return what, float(per_cycle)
    what, kept = faults("kept")
    if "no mallopt" in what or "refused" in what:
        pytest.skip(f"not glibc: {what}")
    assert what == "freed memory kept for reuse (glibc mallopt: M_MMAP_MAX 0, M_TRIM_THRESHOLD 1 GiB)"
    what, default = faults("default")
    assert what == "glibc's defaults (large freed blocks go back to the OS)"
    assert kept < 100 and default > 5000, (kept, default)


def test_the_worker_reports_its_allocator_and_the_table_says_it():
    worker = bench._Worker("rnn", "tiny", 2, 1, side="rnnlm", malloc="default")
    try:
        assert worker.version == "rnnlm" and worker.malloc == "glibc's defaults (large freed blocks go back to the OS)"
    finally:
        worker.close()
    rec = dict(_record("tiny", "rnn", [[2.4, 2.0]], 1), torch_malloc="default", torch_malloc_detail=worker.malloc,
               torch_train_faults_per_window=3047, torch_eval_faults_per_window=0)
    text = bench.format_calibration([rec])
    assert "PyTorch's allocator (--torch-malloc): glibc's defaults (large freed blocks go back to the OS)" in text
    assert "kept worker's timed train 3047, eval 0 pf/window" in text
    # a worker that page-faults while timed is PyTorch slowed by its allocator: those ratios flatter ours
    assert [r["cell"] for r in benchworker.slow_worker_rows([rec])] == ["rnn"]
    assert "WARNING: tiny rnn: timed against a PyTorch worker" in text
    rec.update(torch_train_faults_per_window=2)
    assert benchworker.slow_worker_rows([rec]) == [] and "WARNING" not in bench.format_calibration([rec])


@pytest.mark.parametrize("argv, message", [
    (["--torch-malloc", "default"], "--torch-malloc default sets PyTorch's allocator; add --vs-torch, or leave it out"),
    (["--sweep", "--torch-malloc", "kept"], "--sweep times Dask sweeps, not one model: leave out --torch-malloc"),
])
def test_torch_malloc_needs_vs_torch(capsys, argv, message):
    assert main(["bench", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


# ---------------------------------------------------------------- a loaded machine's first row (a trial)

@pytest.mark.parametrize("tries,earlier,verdict", [
    ([(6.3, 2.0), (7.0, 2.0)], [], "more"),                 # 3.1x and 3.5x ours: each other's reference, both slow
    ([(6.3, 2.0), (7.0, 2.0), (6.9, 2.0)], [], "slow"),
    ([(6.3, 2.0), (7.0, 2.0), (2.6, 2.0)], [], "keep"),
    ([(4.1, 2.0)], [2.1], "more"),                           # within 1.6x of a slow best, but over 2x ours
    ([(3.9, 2.0)], [1.9], "keep"),
])
def test_a_calibration_far_slower_than_ours_is_slow_whatever_the_runs_best(tries, earlier, verdict):
    """A trial under load: two workers at 3.1x and 3.5x ours, kept as each other's reference, then a
    training ratio of 47x with no warning."""
    assert benchworker._worker_verdict(tries, earlier) == verdict


def test_the_json_says_slow_mode_when_the_table_warns_of_it():
    """A trial: --json said torch_slow_mode false for a row whose timed windows faulted 2,421 times, which
    the table flagged. The record's flag is the row's own evidence (slow_by_itself)."""
    fast = dict(_record("tiny", "rnn", [[2.4, 2.0]], 1), torch_calibration_faults=[6],
                torch_train_faults_per_window=0, torch_eval_faults_per_window=0)
    assert not benchworker.slow_by_itself(fast)
    changes = (dict(torch_train_faults_per_window=2421),
               dict(torch_calibration_tries=[[6.3, 2.0]], torch_calibration_ms=6.3),
               dict(torch_calibration_faults=[1954]), dict(torch_slow_mode=True))
    for change in changes:
        rec = dict(fast, **change)
        assert benchworker.slow_by_itself(rec), change
        assert "WARNING: tiny rnn" in bench.format_calibration([rec])


def test_the_in_process_harness_says_its_allocator_applies_to_ours_too():
    """A trial: --torch-in-process --torch-malloc default printed no word of the allocator."""
    rec = {k: v for k, v in _record("tiny", "rnn", [[2.4, 2.0]], 1).items() if not k.startswith("torch_calib")}
    rec.update(torch_process="same", torch_malloc="default",
               torch_malloc_detail="glibc's defaults (large freed blocks go back to the OS)")
    assert bench.format_calibration([rec]) == ("PyTorch's allocator (--torch-malloc): glibc's defaults (large freed "
                                               "blocks go back to the OS) (in this process: ours too)")
    assert "in this process: ours too" in bench.format_table([rec], vs_torch=True)
