"""`bench --scaling` and `--breakdown`: tokens/s and the ratio to PyTorch at several thread counts.

`run_scaling` times every (cell, config) at each thread count in one run,
the counts interleaved within every repeat and the PyTorch worker moved
between them (`_Worker.set_threads`), and adds the parallel efficiency
(tokens/s at n threads over n x tokens/s at 1: `add_efficiency`).
`--breakdown` cuts the training step into PHASES by wrapping the functions
it calls with timers (`_phase_hooks`) for one extra, untimed-for-the-table
pass.

The one thing to know before editing: the breakdown only wraps functions
from outside; the kernels and the step it times are the ones a user's
training runs, and its phase sum is checked against the step timed without
hooks (BREAKDOWN_TOLERANCE), so a hook that slows the step shows up as a
warning, not as a wrong figure.
"""
from __future__ import annotations

import contextlib
import resource
import time

import numpy as np

from .benchworker import (BATCH, BPTT, CONFIGS, _each, _calibrated_worker, _interleave_then_close,
                          _median_rate, _numba_pool_started, _OurModel, _ratio, _ratio_cell, _set_threads,
                          _steps_for, _timed, _tokens, _Worker, calibrate_ours, check_torch, format_calibration,
                          machine_cores, parse_thread_counts, selection, slow_by_itself)

# The phases of a training step that `--scaling --breakdown` times, in table order, and what each holds.
PHASES = {
    "output": "output layer: logits, softmax cross-entropy, dlogits, dx, dW, dbias (layers.output_loss_and_grads)",
    "rec_fwd": "recurrent forward of every layer, its input projection included (the cell's forward)",
    "rec_bwd": "recurrent backward (BPTT), dW_ih, dW_hh, dbias and dx included (the cell's backward)",
    "embedding": "embedding forward and backward (layers.embedding_forward / _backward / clear_rows)",
    "clip_opt": "gradient norm, then the SGD update with norm clipping's factor (optim.grad_norm, SGD.step)",
    "other": "everything else: Python between the kernels, small NumPy ops, allocations",
}
PHASE_HEADS = {"output": "output", "rec_fwd": "rec fwd", "rec_bwd": "rec bwd", "embedding": "embed",
               "clip_opt": "clip+opt", "other": "other"}
# The phase sum of --breakdown against the step timed without hooks: outside this band the table warns.
BREAKDOWN_TOLERANCE = 0.10


def _at(threads, timed_run):
    """timed_run with our side (Numba's pool, NumPy's BLAS) moved to `threads` first, outside its timing."""
    def run():
        _set_threads(threads)
        return timed_run()
    return run


class _PhaseTimer:
    """Seconds per phase, summed over the calls of wrapped functions (the outermost call only)."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._depth = 0

    def wrap(self, phase, fn):
        def timed(*args, **kwargs):
            if self._depth:               # called from inside another timed phase: counted there
                return fn(*args, **kwargs)
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - t0
                self._depth -= 1
        return timed


@contextlib.contextmanager
def _phase_hooks(ours, timer):
    """Time the functions a training step (_OurModel.train_steps, the model's _bptt) calls, from
    outside: module functions and the model's cell are replaced by timing wrappers for the block
    and restored after it. Nothing in the kernels changes; the step runs its usual path.

    Where the plan overlaps the top LSTM layer with the output layer (paths.overlapped), the two
    fused calls of overlap.py are timed as the recurrent forward and backward."""
    from . import layers, optim, overlap

    model = ours.model
    hooks = [(layers, "output_loss_and_grads", "output"), (layers, "embedding_forward", "embedding"),
             (layers, "embedding_backward", "embedding"), (layers, "clear_rows", "embedding"),
             (overlap, "lstm_forward_and_output", "rec_fwd"), (overlap, "lstm_backward_and_output_dW", "rec_bwd"),
             (optim, "grad_norm", "clip_opt")]
    saved = [(module, name, getattr(module, name)) for module, name, _ in hooks]
    cell = model.cell
    try:
        for module, name, phase in hooks:
            setattr(module, name, timer.wrap(phase, getattr(module, name)))
        model.cell = cell._replace(forward=timer.wrap("rec_fwd", cell.forward),
                                   backward=timer.wrap("rec_bwd", cell.backward))
        ours.opt.step = timer.wrap("clip_opt", ours.opt.step)
        yield timer
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)
        model.cell = cell
        del ours.opt.step                 # the instance attribute; the class's method again


def _breakdown_run(ours, windows, out):
    """One pass of _OurModel.train_steps over windows with the phase hooks on: appends
    {phase: seconds} to out ("other" = the pass minus the hooked calls); returns the pass's seconds."""
    with _phase_hooks(ours, _PhaseTimer()) as timer:
        t0 = time.perf_counter()
        ours.train_steps(windows)
        total = time.perf_counter() - t0
    timer.seconds["other"] = total - sum(timer.seconds.values())
    out.append(timer.seconds)
    return total


def scaling_one(cell, config, threads, repeats=3, vs_torch=False, breakdown=False, n_windows=None,
                worker_side="torch", calibrations=None, torch_malloc="kept") -> list[dict]:
    """Time one (cell, config) at each thread count of `threads` (sorted); one record per count.

    Every repeat runs, for each thread count in turn: ours train, ours eval, then
    (vs_torch) PyTorch's train and eval in its worker moved to the same count, then
    (breakdown) one hooked pass of ours; the medians over repeats are reported. Ours
    keeps one model per thread count (shared weights), since a model fixes its fast
    paths for the thread count it first runs at (paths.plan). n_windows: windows per
    run (default _steps_for). worker_side "rnnlm" puts our model in the worker (tests).
    The calibration fields (bench_one's) are measured once, at threads[0], and repeated in every
    record, and so are the timed runs' faults per window (the median over every thread count's runs);
    calibrations and torch_malloc: as bench_one's.
    """
    V, H = CONFIGS[config]
    n = n_windows or _steps_for(V, H)
    windows = _tokens(V, n)
    ours, overlapped = {}, {}
    for t in threads:
        _set_threads(t)
        ours[t] = _OurModel(cell, V, H, params=ours[threads[0]].model.params if ours else None)
        ours[t].train_steps(windows[:2])  # compile, allocate the workspace at this thread count
        ours[t].eval_steps(windows[:2])
        overlapped[t] = bool(next(iter(ours[t].model._workspaces.values())).plan.overlapped)
    _set_threads(threads[0])
    if vs_torch:
        worker, fields = _calibrated_worker(lambda: _Worker(cell, config, n, threads[0], side=worker_side,
                                                            malloc=torch_malloc),
                                            calibrate_ours, [] if calibrations is None else calibrations)
    else:
        worker, fields = None, {"calibration_ms": round(calibrate_ours(), 3)}
    phases = {t: [] for t in threads}

    def on_worker(t, key):
        def run():
            worker.set_threads(t)
            return worker.run(key)
        return run

    runs = []
    for t in threads:
        runs += [((t, "train"), _at(t, _timed(ours[t].train_steps, windows))),
                 ((t, "eval"), _at(t, _timed(ours[t].eval_steps, windows)))]
        if vs_torch:
            runs += [((t, "torch_train"), on_worker(t, "train")), ((t, "torch_eval"), on_worker(t, "eval"))]
        if breakdown:
            runs.append(((t, "breakdown"), _at(t, lambda t=t: _breakdown_run(ours[t], windows, phases[t]))))
    timings = _interleave_then_close(runs, repeats, worker)
    tokens = n * BATCH * BPTT
    records = []
    for t in threads:
        rec = {"config": config, "cell": cell, "V": V, "E": H, "H": H, "B": BATCH, "T": BPTT, "threads": t,
               "windows": n, "repeats": repeats,
               "train_tokens_per_s": round(_median_rate(timings[t, "train"], tokens)),
               "eval_tokens_per_s": round(_median_rate(timings[t, "eval"], tokens)), **fields}
        if vs_torch:
            rec["torch"], rec["torch_malloc"], rec["torch_malloc_detail"] = worker.version, torch_malloc, worker.malloc
            for kind in ("train", "eval"):     # over every thread count's runs: the slow mode is the process's
                rec[f"torch_{kind}_faults_per_window"] = round(float(np.median(worker.faults[kind])) / n)
            rec["torch_slow_mode"] = slow_by_itself(rec)
            for kind in ("train", "eval"):
                rec[f"torch_{kind}_tokens_per_s"] = round(_median_rate(timings[t, "torch_" + kind], tokens))
                rec[f"{kind}_ratio"], rec[f"{kind}_ratio_range"] = _ratio(
                    rec[f"{kind}_tokens_per_s"], rec[f"torch_{kind}_tokens_per_s"],
                    timings[t, kind], timings[t, "torch_" + kind])
        if breakdown:
            rec["overlapped"] = overlapped[t]
            rec["step_ms"] = 1000 * float(np.median(timings[t, "train"])) / n
            rec["hooked_step_ms"] = 1000 * float(np.median(timings[t, "breakdown"])) / n
            rec["phase_ms"] = {p: 1000 * float(np.median([r[p] for r in phases[t]])) / n for p in PHASES}
        records.append(rec)
    return add_efficiency(records)


def add_efficiency(records) -> list[dict]:
    """Parallel efficiency and phase speedups of one (config, cell)'s records (sorted by threads).

    efficiency at n = tok/s at n / (n/n0 × tok/s at n0), n0 the smallest count (1 when
    measured); the same for PyTorch's figures; phase_speedup = phase ms at n0 / at n
    (None where the phase took no time). Returns the records, updated in place."""
    base = records[0]
    n0 = base["threads"]
    for rec in records:
        rec["efficiency_from"] = n0
        scale = rec["threads"] / n0
        for side in ("", "torch_"):
            for kind in ("train", "eval"):
                key = f"{side}{kind}_tokens_per_s"
                if key in rec:
                    rec[f"{side}{kind}_efficiency"] = round(rec[key] / (scale * base[key]), 3)
        if "phase_ms" in rec:
            rec["phase_speedup"] = {p: (round(base["phase_ms"][p] / ms, 2) if ms > 0 and base["phase_ms"][p] > 0
                                        else None) for p, ms in rec["phase_ms"].items()}
    return records


def run_scaling(cell="all", config="all", *, threads, repeats, vs_torch=False, breakdown=False,
                oversubscribe=False, progress=True, on_record=None, n_windows=None, torch_malloc="kept") -> list[dict]:
    """The `bench --scaling` measurements: records per (config, cell), each with one per thread count.

    threads: the --scaling text ("1,2,4") or a list of ints. on_record(record) is called for
    each record as its (config, cell) is done (the CLI's --json prints it at once).
    """
    counts = parse_thread_counts(",".join(map(str, threads)) if not isinstance(threads, str) else threads,
                                 oversubscribe=oversubscribe)
    cells, configs = selection(cell, config)
    if vs_torch:
        check_torch()
    records, calibrations = [], []
    jobs = [(c, conf) for conf in configs for c in cells]
    for c, conf in _each(jobs, "bench --scaling", progress, name=lambda job: f"{job[1]} {job[0]}"):
        for rec in scaling_one(c, conf, counts, repeats=repeats, vs_torch=vs_torch, breakdown=breakdown,
                               n_windows=n_windows, calibrations=calibrations, torch_malloc=torch_malloc):
            records.append(rec)
            if on_record is not None:
                on_record(rec)
    return records


def format_scaling_table(records, vs_torch) -> str:
    """One line per (config, cell, threads): tokens/s, PyTorch's and the ratios, parallel efficiency."""
    if not records:
        return ""
    n0 = records[0]["efficiency_from"]
    head = f"{'config':<7} {'cell':<5} {'threads':>7}"
    for kind in ("train", "eval"):
        head += f" {kind + ' tok/s':>12}"
        if vs_torch:
            head += f" {'torch ' + kind:>12} {'ratio [per repeat]':>19}"
        head += f" {'eff':>5}"
    lines = [head]
    for r in records:
        line = f"{r['config']:<7} {r['cell']:<5} {r['threads']:>7}"
        for kind in ("train", "eval"):
            line += f" {r[kind + '_tokens_per_s']:>12,}"
            if vs_torch:
                line += f" {r['torch_' + kind + '_tokens_per_s']:>12,} {_ratio_cell(r, kind):>19}"
            line += f" {r[kind + '_efficiency']:>5.2f}"
        lines.append(line)
    if n0 == 1:
        lines.append("eff: parallel efficiency, tok/s at n threads / (n x tok/s at 1 thread)")
    else:
        lines.append(f"eff: parallel efficiency relative to {n0} threads, the smallest count given (1 is not in "
                     f"--scaling): tok/s at n / (n/{n0} x tok/s at {n0})")
    if vs_torch:
        lines.append("ratio: ours / PyTorch's at the same thread count (" + records[0]["torch"] + ")")
    return "\n".join(lines)


def format_breakdown(records) -> str:
    """ms per training step in each phase, each with its speedup from the smallest thread count."""
    if not records:
        return ""
    n0 = records[0]["efficiency_from"]
    lines = [f"per training step, ms in each phase [speedup from {n0} thread{'s' * (n0 > 1)}]; sum: the phases; "
             "whole: the step timed without hooks"]
    head = f"{'config':<7} {'cell':<5} {'threads':>7}" + "".join(f" {PHASE_HEADS[p]:>16}" for p in PHASES)
    lines.append(head + f" {'sum':>9} {'whole':>9} {'sum/whole':>9}")
    off, fused = 0, []
    for r in records:
        line = f"{r['config']:<7} {r['cell']:<5} {r['threads']:>7}"
        for p in PHASES:
            s = r["phase_speedup"][p]
            line += f" {r['phase_ms'][p]:>8.2f} {'[' + format(s, '.2f') + 'x]' if s is not None else '':>7}"
        total = sum(r["phase_ms"].values())
        ratio = total / r["step_ms"]
        off += abs(ratio - 1) > BREAKDOWN_TOLERANCE
        mark = "*" if r["overlapped"] else ""
        lines.append(line + f" {total:>9.2f} {r['step_ms']:>9.2f} {ratio:>9.2f}{mark}")
        if r["overlapped"]:
            fused.append(f"{r['config']} {r['cell']} {r['threads']}")
    lines += [f"  {PHASE_HEADS[p]}: {what}" for p, what in PHASES.items()]
    if fused:
        lines.append(f"* ({', '.join(fused)} threads) the top LSTM layer runs beside the output layer (overlap.py): "
                     "the output layer's time is inside rec fwd and rec bwd in these rows")
    if off:
        lines.append(f"WARNING: in {off} row(s) the phases sum to more than {BREAKDOWN_TOLERANCE:.0%} away from the "
                     "whole step: the machine was busy between the two runs; rerun with more --repeats")
    return "\n".join(lines)


def format_scaling_footer(records) -> str:
    """The workers' calibrations (format_calibration, with --vs-torch), how the threads were set, and
    the machine: the last lines of `bench --scaling`."""
    import numba

    from ._blas import blas_threads

    blas = "NumPy's OpenBLAS set to the same count" if blas_threads().get("numpy") is not None \
        else "NumPy's BLAS not OpenBLAS: left at its own setting"
    torch = (f"; PyTorch ({records[0]['torch']}) in a worker process, torch.set_num_threads(n)"
             if records and "torch" in records[0] else "")
    calibration = format_calibration(records, threads=records[0]["threads"]) if records else ""
    return ((calibration + "\n" if calibration else "") +
            f"threads: ours numba.set_num_threads(n) (pool of NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, "
            f"{numba.threading_layer() if _numba_pool_started() else 'pool not started'}), {blas}, SciPy's "
            f"OpenBLAS (Numba's np.dot) held at 1 inside our kernels{torch}; this machine: {machine_cores()} cores"
            f"\npeak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
            "(this process: ours at every thread count)")
