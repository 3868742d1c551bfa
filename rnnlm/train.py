"""The training loop: truncated BPTT over a token stream, clipping, annealing, checkpoints.

`train(config) -> summary` is the whole job (the `train` command is a thin
wrapper). One epoch visits the training stream once, in order, in windows of
`bptt` rows of a `(N // B, B)` time-major matrix; the hidden state is carried
from window to window (as a constant: no gradient crosses a window boundary)
and reset at each epoch start, as in pytorch/examples.

A run folder holds config.json, vocab.json, metrics.jsonl (one JSON event per
line), model.npz (latest, with optimizer and loop state: what `--resume`
reads) and best.npz (best validation perplexity so far). See checkpoint.py for
the array names. The pieces the loop uses live in their own modules:
step.py (one window: train_step), loopstate.py (the counters, the rollback
target, the clock), stopping.py (stop reasons, signals, exit status),
resume.py (what a resume may do), progress.py (the bar, the time budget),
tracking.py (--track-jacobian-every), session.py (_Session, the saves and the
full validation), trainend.py (the stop event, the final evaluation, the
summary dict) and summary.py (the closing lines).

The one thing to know before editing: a run stopped at any step boundary and
resumed must end bitwise equal to an uninterrupted one (tests check it).
Everything that influences the future therefore lives in `LoopState` (counters,
accumulators), the optimizer's `state_dict`, the carried hidden state or the
dropout Generator, and all four go into model.npz; evaluations that only
*report* (the timed ones every --eval-minutes, the one at the end of a run)
must not change any of them, and a divergence rolls all of them back together
(LastGood). Ctrl-C and SIGTERM only set a flag: the loop stops at the next
step boundary, so a checkpoint never holds a half-applied update; before the
first step (start-up: corpus, compiling) they stop at once, and a new run's
folder is removed again (StartUp). Wall-clock bookkeeping (the time
budget's reserve, the bar, tokens/s) lives in _Timing and _Progress
(progress.py) and never decides anything but when to stop and what to print.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import NamedTuple

from .config import TrainConfig
from .errors import UserError, shell_arg
from .evaluate import evaluate_stream
from .fileio import first_new_folder, remove_new_folders
from .folderlock import lock_run
from .loopstate import Clock, LastGood, LoopState
from .progress import _Progress, _Timing, note, phase
from .resume import refuse_finished_resume, resume_flags, resume_point
from .runs import (LATEST, VOCAB, Run, clear_unsaved_run, inside_a_run, run_info, log_gone, lost_steps, others_in,
                   ppl as _ppl, refuse_sweep_folder, refuse_taken, restore_vocab, resume_checkpoint, threads_changed)
from .session import _eval_event, _keep_best, _save, _Session, _validate_full
from .step import StepResult, train_step
from .stopping import SIGNAL_WORDS, Interrupt, StartUp, signal_error, stop_reason
from .tracking import jacobian_event, tracking_tokens
from .trainend import _final_tokens, end_run, stop_training


def model_config(config: TrainConfig, vocab_size: int):
    """The ModelConfig a TrainConfig describes, for a vocabulary of `vocab_size`."""
    return config.model.with_vocab(vocab_size)


def validate(config: TrainConfig) -> None:
    """UserError for settings that cannot work together (TrainConfig.validate); TypeError for a config that
    is no TrainConfig (a dict of settings: config.config_from_dict(d))."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}"
                        + (": build one with rnnlm.config.config_from_dict(d)" if isinstance(config, dict) else ""))
    config.validate()


# ---------------------------------------------------------------- run folder


def default_out(config: TrainConfig) -> str:
    """runs/<cell>-<date>-<time>: a run's folder when --out is not given (reserve_default_out makes it)."""
    return str(Path("runs") / f"{config.model.cell}-{time.strftime('%Y%m%d-%H%M%S')}")


def reserve_default_out(config: TrainConfig) -> tuple[Path, Path | None]:
    """(folder, first_new_folder's) for a run given no --out: default_out's name, or with -2, -3, ... after it
    when a run started in the same second holds that one (two trainings started together from a script):
    each name is taken by creating its folder, which only one process can do."""
    base = default_out(config)
    runs = Path("runs")
    if runs.is_symlink() and not runs.exists():
        raise UserError(f"{runs.absolute()} is a link to {os.readlink(runs)}, which is not there, and a run given no "
                        "--out is written under runs/; give --out a folder for the run")
    if runs.exists() and not runs.is_dir():
        raise UserError(f"{runs.absolute()} is a file, and a run given no --out is written under runs/; "
                        "give --out a folder for the run")
    for i in range(1, 1000):
        folder = Path(base if i == 1 else f"{base}-{i}")
        new = first_new_folder(folder)
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        return folder, new
    raise UserError(f"{base} and 998 more names after it are taken; give --out")


# ---------------------------------------------------------------- time budget and progress

# (the bar, the progress lines and the wall clock: progress.py)

CALIBRATION_S = 3.0       # at most this long measuring the evaluation speed before training
CALIBRATION_FEW = 3       # ... but this many windows only when just the bar's time left uses it
SKIP_NOTES = 10           # --on-nonfinite skip: a session names this many skipped steps, then counts them
TIMED_EVAL_SHARE = 0.1    # a timed validation may cost at most this share of its --eval-minutes interval


# ---------------------------------------------------------------- train


def train(config: TrainConfig, *, resume: str | os.PathLike | None = None, on_step=None,
          corpus=None) -> dict:
    """Train a model as `config` says; returns a summary dict (see trainend.py).

    resume: a run folder to continue from its model.npz (its config.json wins;
    build `config` with `resume_config`). on_step: called as on_step(step)
    after every step, for tests (e.g. to send SIGINT). corpus: an already
    loaded data.Corpus to train on instead of reading config.data (sweep
    workers get the token arrays from the client and have no corpus on disk);
    such a run skips the Kneser–Ney baseline (a sweep compares its runs with
    each other, and a worker has no cache to keep the fit in).

    The time budget (--max-minutes) covers the whole session from the first
    training step to the end of the final evaluation: training stops early
    enough to leave the final validation + test evaluation its time, measured
    from the evaluation speed (a short calibration at the start, then every
    validation). Start-up (reading/tokenizing the corpus, compiling the
    kernels, the Kneser–Ney baseline on its first use) is not counted; the
    summary gives its seconds. The folder is locked for the life of the call
    (folderlock.lock_run).

    Never raises for a diverging run: a nan/inf loss or gradient ends the run
    with stopped="nonfinite" (or is skipped), which is a result, not a crash;
    the saved state is then the last good one (LastGood).

    Nor for a Ctrl-C (KeyboardInterrupt) or SIGTERM once training has begun: the
    checkpoint is saved and the summary returned with stopped="interrupted"
    (summary["signal"]: "SIGINT" or "SIGTERM"), so a loop over configs in a
    notebook goes on to the next one: check summary["stopped"] to break out. A
    signal during the start-up (before the first step), or a second one while
    saving, raises KeyboardInterrupt (errors.Terminated for SIGTERM), its one
    line said on stderr or held in exc.line for the CLI to print.
    """
    started = time.perf_counter()
    if resume is not None:
        from .argcheck import check_path
        check_path(resume, "resume", "train", "a run folder")
    validate(config)
    if resume is None and not config.out:
        folder, new = reserve_default_out(config)
    else:
        folder = Path(resume if resume is not None else config.out)
        new = first_new_folder(folder)
    if folder.exists() and not folder.is_dir():     # (it would be a FileExistsError from mkdir)
        from .runs import not_a_run_folder
        raise UserError(not_a_run_folder(folder) if resume is not None else
                        f"{folder} is a file, not a run folder; give another --out")
    # The folder is taken (locked, checked free) and the run set up (corpus, model, compiled kernels,
    # the resume's time budget checked) before anything is printed, so that a refused, mistaken or
    # interrupted start-up prints its one line only (and leaves no new folder behind); then the folder
    # is named first, once, on stdout (stderr stays for progress and errors), when it holds a run.
    lock = None
    with StartUp() as startup:
        try:
            try:
                refuse_sweep_folder(folder, resume=resume is not None)
                lock = lock_run(folder, resume=resume is not None)
                ck, finish = None, None
                if resume is None:
                    refuse_taken(folder)
                    for said in (inside_a_run(folder), others_in(folder)):
                        if said is not None:
                            note(said)
                else:
                    ck, finish = resume_point(config, folder)
                s = _prepare(dataclasses.replace(config, out=str(folder)), corpus)
                if ck is not None:      # the run goes on as itself: its checkpoints keep its run_id
                    _keep_run_id(s.info, ck.config)
            except BaseException:
                if lock is not None or startup.signum is not None:
                    _give_up_folder(folder, lock, new)
                raise
            unheard = []        # the announcement failed (a closed standard output, `| true`)

            def announce() -> None:
                # Printed once the start-up is over (the loop's handler in place), so that a start-up cut
                # short by a signal or a refusal never named a folder that holds nothing (or a resume
                # that did not happen); the first line of standard output all the same.
                try:
                    if resume is None:
                        print(f"run folder: {folder}", flush=True)
                    else:
                        at = LoopState.from_arrays(ck.train)
                        print(f"resuming {folder} from step {at.step} (epoch {at.epoch})"
                              + (": its training is done; running the final evaluation that did not finish"
                                 if finish else ""), flush=True)
                except BaseException:
                    unheard.append(True)
                    raise
            try:
                summary = _train_locked(s, resume, on_step, lock, started, baseline=corpus is None, ck=ck,
                                        finish=finish, guard=startup, announce=announce)
                # "run folder: X" opened the output: not repeated at the end
                summary["folder_printed"] = resume is None
                return summary
            except BaseException:
                # a start-up signal, nobody to tell the folder to (nothing trained yet), or a start-up that
                # failed (a full disk or a file-size limit at vocab.json or the step-0 checkpoint, a model too
                # large for memory): a new run's files are removed again, a resume's folder is left to its
                # checkpoint
                if startup.signum is not None or unheard or (resume is None and not startup.over):
                    _give_up_start_up(startup, folder, lock, new)
                raise
            finally:
                lock.release()
        except BaseException as exc:
            if startup.signum is None:      # not a start-up signal (the loop's own, or no signal at all)
                raise
            # the signal's exception, or what the code it landed in made of it (an import lock's KeyError)
            stop = exc if isinstance(exc, KeyboardInterrupt) else signal_error(startup.signum)
            note(_start_up_line(startup.signum, folder, resume, new, config))
            stop.said = True                # the CLI adds no second line and exits 128 + the signal
            if stop is exc:
                raise
            raise stop from None


def _give_up_folder(folder: Path, lock, new: Path | None) -> None:
    """Release a folder taken by train() that failed before writing anything; the folders that did
    not exist before (from `folder` up to `new`, fileio.first_new_folder's) are removed again, so that a
    refused or mistaken command leaves nothing behind. lock None: a signal came before the folder was
    locked, and another process may have created and locked it meanwhile (both saw it missing): its lock
    file is removed only under a lock of our own, never from under its holder, and while held (a file
    removed after the release could be locked by a third process as a second, new one is)."""
    from .runs import LOCK
    if new is None:     # the folder existed before: its lock file stays (emptied on release) unless made now
        if lock is not None:
            if getattr(lock, "created_file", False):
                try:    # under the lock, as below (a waiter on the removed file retries: _still_named)
                    (folder / LOCK).unlink(missing_ok=True)
                except OSError:
                    pass
            lock.release()
        return
    if lock is None and (folder / LOCK).exists():
        try:
            lock = lock_run(folder)
        except UserError:
            return          # another process's folder now
    try:
        (folder / LOCK).unlink(missing_ok=True)
    except OSError:
        new = None          # (the folder is then not empty: nothing to remove)
    finally:
        if lock is not None:
            lock.release()
    remove_new_folders(folder, new)


def _give_up_start_up(startup: StartUp, folder: Path, lock, new: Path | None) -> None:
    """Undo what a new run wrote before a start-up signal (StartUp), or before a standard output that
    could not take its "run folder: X" (nobody learns where it trains): its files, its lock and the
    folders it created, so that the folder is gone again (or, when it existed before, free for the
    next run; a resume's folder is left as it was)."""
    from .runs import BEST, CONFIG, LATEST, METRICS, VOCAB, remove_stale_temp_files
    if startup.run is not None:
        startup.run.close()
    if startup.created:
        for name in (CONFIG, VOCAB, METRICS, LATEST, BEST):
            try:
                (folder / name).unlink(missing_ok=True)
            except OSError:
                pass
        remove_stale_temp_files(folder)
    _give_up_folder(folder, lock, new)


def _start_up_line(signum, folder: Path, resume, new: Path | None, config: TrainConfig) -> str:
    """The one line of a signal during start-up (StartUp): nothing was trained, and where that leaves the
    folder. A resume's advice repeats the settings it changed (resume_flags: not yet in config.json)."""
    word = SIGNAL_WORDS.get(signum, "interrupted")
    if resume is not None:
        return (f"{word} during start-up; nothing was trained: {folder} is as it was "
                f"(continue with --resume {shell_arg(folder)}{resume_flags(config, folder)})")
    gone = new is not None and not folder.exists()
    return f"{word} during start-up; nothing was trained ({folder} {'removed' if gone else 'is free for a new run'})"


def _train_locked(s: "_Session", resume, on_step, lock, started: float, baseline: bool = True, ck=None,
                  finish: str | None = None, guard: StartUp | None = None, announce=None) -> dict:
    """train() once the folder is locked and the run set up; finish: finish_only's reason (the session
    trains no window and runs the final evaluation). guard: train()'s start-up guard (StartUp), told what
    the start-up opened and ended when the loop begins. announce: called once the start-up is over and
    the loop's signal handler in place (train's "run folder: X" or "resuming X from step S")."""
    opened = _open_run(s, resume, lock, started, baseline, ck, finish, guard)
    return _loop(opened, on_step, finish, guard, announce)


class _Opened(NamedTuple):
    """What _open_run hands the loop."""
    s: "_Session"               # the session, its run, clock and timing set
    loop: LoopState             # where the loop starts (step 0, or the resumed checkpoint's)
    hidden: tuple               # the carried hidden state
    baseline: object            # the corpus's Kneser-Ney trigram (end_run prints it beside the model), or None
    startup: float              # seconds from train()'s start to the first window
    after_announce: list        # notes that follow the run's first line ("resuming X from step S")


def _open_run(s: "_Session", resume, lock, started: float, baseline: bool, ck, finish: str | None,
              guard: StartUp | None) -> _Opened:
    """_train_locked's start-up: a new run's folder created, or a resumed run's checkpoint restored and its
    folder reopened (after refuse_finished_resume, which needs the time budget's reserve); the baseline; the
    kernels compiled and the evaluation speed measured (_warm_up); the run's first event logged (start, with
    step 0 saved, or resume)."""
    import numba

    from .baseline import cached_trigram

    config, model, vocab = s.config, s.model, s.corpus.vocab.to_json()
    if resume is None:
        if clear_unsaved_run(config.out):
            note(f"{config.out} held a run that stopped before its first checkpoint; training into it afresh")
        run, loop = Run.create(config.out, s.info, vocab, lock), LoopState()
        hidden = model.init_state(config.batch_size)
        if guard is not None:
            guard.run, guard.created = run, True
    else:
        loop, hidden = _restore(resume_checkpoint(config.out, s.info, vocab, model.state_dict(), ck=ck), s)
        run = None      # reopened once the time budget's reserve is known (refuse_finished_resume)
    try:
        want = baseline and (len(s.corpus.test) >= 2 or len(s.corpus.valid) >= 2)
        baseline = cached_trigram(s.corpus) if want else None
    except (ValueError, MemoryError) as exc:
        baseline = None
        note(f"no Kneser-Ney baseline for this corpus ({exc})")
    timing = _Timing(config, final_tokens=_final_tokens(s))
    after_announce = []     # notes of the start-up that follow the run's first line
    from ._jit import cache_is_warm
    # the training kernels (the embedding's and this cell's backward), not only an evaluation's
    phase(config, "reading the compiled kernels from the cache..." if cache_is_warm(
              "layers._embedding_backward-*", f"{config.model.cell}.*backward*")
           else "compiling the kernels (about 30 s; later runs read them from the cache)...")
    with guard.between_kernels() if guard is not None else contextlib.nullcontext():
        _warm_up(s, timing)
    startup = time.perf_counter() - started
    if run is None:
        if finish is None:
            refuse_finished_resume(config, loop, config.out, reserve=timing.reserve(), lr=s.opt.lr,
                                   needed=timing.needed())
        lost, gone = lost_steps(config.out, loop.step), log_gone(config.out, loop.step)
        if gone is not None:
            after_announce.append(gone)
        if (moved := threads_changed(config.out, loop.step, numba.get_num_threads())) is not None:
            after_announce.append(moved)
        # (first: a vocab.json that cannot be written leaves the folder as it was, config.json and log unchanged)
        restored = restore_vocab(config.out, vocab)
        run = Run.reopen(config.out, s.info, vocab, loop.step, lock)
        if lost is not None:        # said after "resuming RUN from step S" (announce)
            after_announce.append(f"the run had logged training up to step {lost:,}, but its last save is step "
                                  f"{loop.step:,}: the {lost - loop.step:,} steps after it were lost (the process "
                                  f"ended without saving: a second Ctrl-C, kill -9, a crash, a power cut, a full disk) and are "
                                  f"trained again")
        if guard is not None:
            guard.run = run
        if restored:
            note(f"{Path(config.out) / VOCAB} {restored}; written again from the run's corpus, whose checksum "
                 f"matches config.json's (the vocabulary inside {LATEST})")
    if timing.reserve_capped():
        note(f"this machine evaluates {timing.eval_tps:,.0f} tokens/s: the final validation and test "
              f"({timing.final_tokens:,} tokens) need about {_minutes(timing.needed())}, more than half of "
              f"--max-minutes {config.max_minutes:g}; training gets half and the command will overrun")
    s = s._replace(run=run, clock=Clock(loop.elapsed), timing=timing)
    timing.first_step = loop.step
    timing.last_save = timing.last_eval = s.clock()
    if resume is None:
        run.log({"type": "start", "step": 0, "epoch": 1, "params": model.num_params(),
                 "vocab_size": len(s.corpus.vocab), "windows_per_epoch": s.windows_per_epoch,
                 "threads": numba.get_num_threads(), "startup_s": round(startup, 3), "time": 0.0})
        if config.track_jacobian_every:
            run.log({**jacobian_event(model, s.jac_tokens, 0), "time": s.clock()})
        _save(s, loop, hidden)
    else:
        run.log({"type": "resume", "step": loop.step, "epoch": loop.epoch, "pos": loop.pos,
                 "lr": s.opt.lr, "threads": numba.get_num_threads(), "startup_s": round(startup, 3),
                 "time": loop.elapsed})
    return _Opened(s, loop, hidden, baseline, startup, after_announce)


def _loop(opened: _Opened, on_step, finish: str | None, guard: StartUp | None, announce) -> dict:
    """_train_locked's windows, from opened.loop on, until stop_reason (or `finish`) ends them; then the end
    of the run (trainend.end_run), whose summary it returns. The run folder is closed whatever happens."""
    import numpy as np

    from .data import windows

    s, loop, hidden = opened.s, opened.loop, opened.hidden
    config, model, run, timing = s.config, s.model, s.run, s.timing
    nonfinite = None        # the latest non-finite window (its event), for the summary
    due_log = due_eval = False      # a step event / validation due at a skipped step, made at the next applied one
    last_good = LastGood(model, s.opt)
    progress = None
    # Overflow warnings would only repeat what the non-finite guard reports in one line.
    try:
        with Interrupt() as interrupt, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if guard is not None:
                guard.end()         # from here on the loop's handler answers signals (a stop saves the checkpoint)
            if announce is not None:
                announce()
            for line in opened.after_announce:
                note(line)
            # the bar after the run's first line: on a terminal both go to one screen, and a bar drawn first
            # would have "run folder: X" written at its end
            progress = _Progress(s, loop, timing)
            interrupt.saved_step = loop.step        # a new run saved step 0 above; a resume starts from its own
            while True:
                stopped = finish or stop_reason(config, loop, interrupted=interrupt.requested, elapsed=s.clock(),
                                                reserve=timing.reserve(), lr=s.opt.lr,
                                                diverged=nonfinite is not None and nonfinite["action"] == "stop")
                if stopped:
                    break
                window = next(windows(s.train_stream, config.bptt, start=loop.pos), None)
                if window is None:      # the epoch's windows are done
                    interrupt.during = "validation"
                    hidden = _end_epoch(s, loop)
                    due_eval = False    # (the epoch's own validation stands for one due at a skipped step)
                    interrupt.during = None     # (the save in it recorded its step: stopping.saving)
                    continue
                _, inputs, targets = window
                before = (s.rng.bit_generator.state, hidden, copy.copy(loop))
                t0 = time.perf_counter()
                result = train_step(model, s.opt, config, inputs, targets, hidden, s.rng,
                                    before_update=lambda: last_good.take(model, s.opt, *before))
                seconds = time.perf_counter() - t0
                timing.step_seconds += seconds
                timing.event_seconds += seconds
                timing.step_tokens += result.tokens
                loop.log_tokens += result.tokens
                if result.bad is not None:
                    nonfinite, loop, hidden = _nonfinite(s, loop, hidden, result, last_good, progress)
                    if nonfinite["rolled_back_to"] is not None:
                        # the rollback undid this session's latest applied step (LastGood keeps one state)
                        timing.session_steps -= 1
                    if nonfinite["action"] == "stop":
                        continue        # not counted: the run ends on the last good state
                loop.count(result)
                hidden = result.state
                progress.step(loop, result, seconds)
                applied = result.bad is None
                timing.session_steps += applied
                # a step event or a validation whose step was skipped (--on-nonfinite skip) comes at the next
                # applied step: a run that skips most steps still logs the ones it trained
                due_log = due_log or loop.step % config.log_every == 0
                due_eval = due_eval or bool(config.eval_every) and loop.step % config.eval_every == 0
                if applied and due_log:
                    due_log = False
                    tps = loop.log_tokens / timing.event_seconds if timing.event_seconds > 0 else 0.0
                    run.log(_step_event(s, loop, result, tps))
                    loop.start_log_interval()
                    timing.event_seconds = 0.0
                interrupt.during = "validation"
                if applied and due_eval:
                    due_eval = False
                    _evaluate(s, loop, "every")
                    _save(s, loop, hidden)
                elif config.eval_minutes and s.clock() - timing.last_eval >= 60 * config.eval_minutes:
                    _timed_evaluate(s, loop, progress)
                interrupt.during = None
                if config.save_minutes and s.clock() - timing.last_save >= 60 * config.save_minutes:
                    _save(s, loop, hidden)
                if applied and config.track_jacobian_every and loop.step % config.track_jacobian_every == 0:
                    run.log({**jacobian_event(model, s.jac_tokens, loop.step), "time": s.clock()})
                if on_step is not None:
                    on_step(loop.step)
            progress.close()
            stopped = stop_training(s, loop, hidden, stopped, finish, interrupt)

        summary = end_run(s, loop, hidden, stopped, nonfinite, interrupt, startup=opened.startup,
                          baseline=opened.baseline)
        return summary
    finally:
        if progress is not None:
            progress.close()
        run.close()


def _warm_up(s: "_Session", timing: _Timing) -> None:
    """Compile (or load from Numba's cache) the training and evaluation kernels, and measure the
    evaluation speed on a slice of the validation split, before the clock starts.

    Nothing here touches the model's parameters, the optimizer, the dropout
    Generator or the loop: a throwaway Generator draws the warm-up's masks.
    """
    import numpy as np

    from . import layers
    from .optim import SGD, compile_sgd, grad_norm
    T = min(s.config.bptt, s.train_stream.shape[0] - 1)
    model = s.model
    # train_step's path (the model's gradient buffers, the norm by rows), through _bptt, not
    # train_grads: tests count (and poison) the training calls of train_grads.
    r = model._bptt(s.train_stream[:T], s.train_stream[1:T + 1], model.init_state(s.train_stream.shape[1]),
                    np.random.default_rng(0), None, extras=False, reuse=True)
    rows = {} if model.config.tied else {"encoder.weight": model._grad_buffers.rows}
    grad_norm(r.grads, rows)
    for name, r_rows in rows.items():
        layers.clear_rows(r.grads[name], r_rows)   # what the first step does first; the buffer stays valid
    if isinstance(s.opt, SGD):
        compile_sgd(model.dtype)
    v = s.valid_stream
    if v.shape[0] < 2:
        return
    # The evaluation speed: the median over windows of the same shape as a real evaluation's, after
    # one untimed window (compile, workspace), for up to CALIBRATION_S seconds. Without a budget to
    # reserve or a timed validation to size, only the time left that the bar and the log lines show
    # uses it (the final evaluation's share, command_time_left): CALIBRATION_FEW windows do.
    from .data import windows as _windows
    few = not (s.config.max_minutes or s.config.eval_minutes)
    state, times, t_start = model.init_state(v.shape[1]), [], time.perf_counter()
    for i, (_, inputs, targets) in enumerate(_windows(v, s.config.bptt)):
        t0 = time.perf_counter()
        _, state = model.loss(inputs, targets, state)
        if i > 0 and inputs.shape[0] == s.config.bptt:
            times.append(time.perf_counter() - t0)
        if ((time.perf_counter() - t_start > CALIBRATION_S and len(times) >= 5) or len(times) >= 40
                or (few and len(times) >= CALIBRATION_FEW)):
            break
    if times:
        median = sorted(times)[len(times) // 2]
        timing.observe_eval(s.config.bptt * v.shape[1] * len(times), median * len(times))
        return
    # A validation split shorter than two whole windows (a tiny corpus): its first window once more,
    # timed now that it is compiled. Without it the speed stayed unknown and the final evaluation was
    # left out of the time left until the first validation.
    _, inputs, targets = next(_windows(v, s.config.bptt))
    t0 = time.perf_counter()
    model.loss(inputs, targets, model.init_state(v.shape[1]))
    timing.observe_eval(int(targets.size), time.perf_counter() - t0)


def _timed_evaluate(s: "_Session", loop: LoopState, progress: _Progress) -> None:
    """A report-only validation on a fixed slice of the validation split (every --eval-minutes).

    It changes nothing a later step depends on (lr, patience, best model,
    counters), so runs with and without it are bitwise equal. The slice (the
    first rows of every validation stream) is sized once so that one costs at
    most TIMED_EVAL_SHARE of the interval; it is skipped when it would not fit
    in the time left before the final evaluation.
    """
    t = s.timing
    v = s.valid_stream
    if v.shape[0] < 2:
        return
    if t.timed_rows is None:
        tps = t.eval_tps or 1e4
        tokens = TIMED_EVAL_SHARE * 60 * s.config.eval_minutes * tps
        t.timed_rows = int(min(v.shape[0], max(tokens // v.shape[1], s.config.bptt) + 1))
    if t.eval_tps and t.timed_rows * v.shape[1] / t.eval_tps > t.left(s.clock()):
        t.last_eval = s.clock()
        return
    t0 = time.perf_counter()
    val, count = evaluate_stream(s.model, v[:t.timed_rows], s.config.bptt, bar="timed validation")
    t.observe_eval(count, time.perf_counter() - t0)
    t.last_eval = s.clock()
    whole = (v.shape[0] - 1) * v.shape[1]       # the tokens a validation of the whole split predicts
    t.timed = {"step": loop.step, "loss": val, "tokens": count, "of_tokens": whole}
    from .runs import fmt_ppl
    s.run.log({"type": "timed_eval", "split": "valid", "step": loop.step, "epoch": loop.epoch, "val_loss": val,
               "val_ppl": _ppl(val), "tokens": count, "of_tokens": whole, "time": s.clock()})
    progress.write(f"| step {loop.step:6d} | epoch {loop.epoch:3d} | timed validation on {count:,} of "
                   f"{whole:,} tokens | loss {val:6.3f} | ppl {fmt_ppl(_ppl(val)):>9s} | report only")


def check_batches(corpus, config: TrainConfig) -> None:
    """UserError (one line: what is short, by how much, which flag to lower) unless the splits fill the batches.

    Training: each of the --batch-size B streams of the (N // B, B) matrix
    must hold one whole --bptt T window, T inputs and the next token of the
    last one (N // B >= T + 1): with fewer, every window is shorter than T and
    the run silently trains a shorter BPTT than asked. Validation: each of the
    --eval-batch-size streams must hold one prediction (2 tokens); a shorter
    window there only evaluates fewer tokens, so no whole window is needed.
    """
    n, B, T = len(corpus.train), config.batch_size, config.bptt
    if n // B < T + 1:
        fit = n // (T + 1)
        fix = [f"--batch-size {fit} or less", "a smaller --bptt"] if fit else ["a smaller --bptt and --batch-size"]
        raise UserError(f"the training split's {n:,} tokens are too few for batch size {B} with --bptt {T}: each "
                        f"of the {B} streams needs one window of {T + 1} tokens ({B * (T + 1):,} in all); "
                        f"give {_either(fix + ['a larger corpus'])}")
    n, E = len(corpus.valid), config.eval_batch_size
    if n == 0 and corpus.split_policy == "contiguous" and len(corpus.train) and config.data.valid_fraction > 0:
        # one text cut after a sentence end: none to cut at (lines that run on, each line's next lower-case)
        raise UserError(_empty_valid_line(corpus, config))
    if n // E < 2:
        fix = [f"--eval-batch-size {n // 2} or less"] if n // 2 else []
        fix += [] if corpus.split_policy == "predefined" else ["a larger --valid-fraction"]
        raise UserError(f"the validation split's {n:,} tokens are too few for --eval-batch-size {E}: each of its "
                        f"{E} streams needs 2 tokens (one prediction); give {_either(fix + ['a larger corpus'])}")


def _empty_valid_line(corpus, config: TrainConfig) -> str:
    """Why a text cut as one (data.contiguous_cuts) left the validation split empty, and what gives it text:
    the cut moves to the sentence end (or blank line) nearest to where --valid-fraction puts it, which is
    the text's end when its sentences are few or run on."""
    import numpy as np
    total = len(corpus.train) + len(corpus.valid) + len(corpus.test)
    vf = config.data.valid_fraction
    files = sorted({name for names in corpus.documents.values() for name in names})
    how = (f"its {len(files):,} files could not be split whole (one holds most of the text), so it is cut as one "
           "text, " if len(files) > 1 else "it is cut ")
    head = (f"the validation split is empty: --valid-fraction {vf:g} asks for about {round(vf * total):,} of the "
            f"text's {total:,} tokens, and {how}only after a sentence end (. ! ? before a capital) or at a blank "
            "line")
    ends = sum(int(np.count_nonzero(part == corpus.vocab.eos_id)) for part in (corpus.train, corpus.valid,
                                                                               corpus.test))
    if ends <= 1:       # one sentence: its lines run on into lower-case ones, and no blank line parts them
        return (f"{head}, and the text holds no such place (its lines run on into lower-case ones); separate its "
                f"paragraphs by blank lines{'' if len(files) > 1 else ', or give a folder of several files'}")
    return (f"{head}, and none lies near enough to where the split would start; give a larger --valid-fraction, "
            "more text, or a text whose paragraphs are separated by blank lines")


def _either(options: list[str]) -> str:
    """'a, b or c'."""
    return ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]


def _prepare(config: TrainConfig, corpus=None) -> _Session:
    """Corpus, batches, model and optimizer of a run (no files written yet); lr and out resolved."""
    import numpy as np

    from .data import absolute_corpus, batchify, load_corpus
    from .model import RNNModel
    from .optim import make_optimizer

    out = Path(config.out or default_out(config))
    corpus = load_corpus(config.data) if corpus is None else corpus
    config = dataclasses.replace(config, data=absolute_corpus(config.data))
    check_batches(corpus, config)
    mcfg = model_config(config, len(corpus.vocab))
    model = RNNModel(mcfg, seed=config.seed)
    opt = make_optimizer(config.optimizer, model.params, config.lr, momentum=config.momentum,
                         nesterov=config.nesterov, betas=(config.beta1, config.beta2))
    config = dataclasses.replace(config, lr=opt.lr, out=str(out))
    B, T = config.batch_size, config.bptt
    train_stream = batchify(corpus.train, B)
    valid_stream = batchify(corpus.valid, config.eval_batch_size)
    jac_tokens = tracking_tokens(corpus) if config.track_jacobian_every else None
    info = run_info(config, mcfg, corpus)
    return _Session(config=config, corpus=corpus, model=model, opt=opt, rng=np.random.default_rng([config.seed, 1]),
                    train_stream=train_stream, valid_stream=valid_stream, jac_tokens=jac_tokens,
                    windows_per_epoch=len(range(0, train_stream.shape[0] - 1, T)), info=info)


def _keep_run_id(info: dict, saved: dict) -> None:
    """A resumed session's run_info (`info`) given the run_id of the checkpoint it resumes (meta.config
    `saved`), or none when that checkpoint predates run ids (its config.json has none either)."""
    run_id = saved.get("run_id") if isinstance(saved, dict) else None
    if isinstance(run_id, str):
        info["run_id"] = run_id
    else:
        info.pop("run_id", None)


def _restore(ck, s: _Session) -> tuple[LoopState, tuple]:
    """Load a model.npz into the session's model, optimizer and Generator: (loop counters, hidden state)."""
    import numpy as np

    from .resume import check_members
    check_members(ck, rows=s.train_stream.shape[0], state=s.model.init_state(s.config.batch_size))
    try:
        s.model.load_state_dict(ck.model)
        s.opt.load_state_dict(ck.optim)
    except UserError as exc:        # (non-finite weights, another optimizer's state: say which file holds them)
        raise UserError(f"{ck.path}: {exc}; restore it, or train afresh into another --out") from None
    s.rng.bit_generator.state = json.loads(str(ck.train["rng"]))
    hidden = tuple(np.array(ck.train[f"state.{i}"]) for i in range(s.model.n_state))
    return LoopState.from_arrays(ck.train), hidden


def _evaluate(s: _Session, loop: LoopState, reason: str) -> None:
    """A scheduled validation: keeps best.npz, anneals the lr when it did not improve, logs and prints.
    One that gives no verdict (LoopState.no_verdict: no update since the previous one) leaves the lr and
    patience alone, and its event and line say why ("no_verdict")."""
    from .runs import fmt_ppl
    val = _validate_full(s, "validation")
    lr = s.opt.lr
    why = loop.no_verdict(val)
    if loop.count_eval(val) is False:
        s.opt.lr = s.opt.lr / s.config.lr_decay
    best = _keep_best(s, loop, val)
    s.run.log({**_eval_event(s, loop, reason, val, best, lr), **({"no_verdict": why} if why else {})})
    note(f"| step {loop.step:6d} | epoch {loop.epoch:3d} | valid loss {val:6.3f} | "
          f"ppl {fmt_ppl(_ppl(val)):>9s}{' (best)' if best else ''} | lr {s.opt.lr:.4g}"
          + (f" (kept: {why})" if why else ""))


def _end_epoch(s: _Session, loop: LoopState) -> tuple:
    """Validate (unless just done), log the epoch, start the next one; returns the reset hidden state."""
    if loop.last_eval_step != loop.step:
        _evaluate(s, loop, "epoch")
    # (an epoch whose every window was skipped has no training loss: null, not 0.0 and perplexity 1.0)
    ep_loss = loop.ep_loss / loop.ep_steps if loop.ep_steps else None
    s.run.log({"type": "epoch", "step": loop.step, "epoch": loop.epoch, "train_loss": ep_loss,
               "train_ppl": _ppl(ep_loss) if ep_loss is not None else None, "steps": loop.window,
               "clip_fraction": loop.ep_clipped / max(loop.window, 1), "skipped": loop.skipped,
               "lr": s.opt.lr, "time": s.clock()})
    loop.start_epoch()
    hidden = s.model.init_state(s.config.batch_size)
    _save(s, loop, hidden)
    return hidden


def _minutes(seconds: float) -> str:
    """A duration for a note: "40 s" under a minute (where "0.7 min" reads as nothing), else "2.5 min"."""
    return f"{seconds:.0f} s" if seconds < 59.5 else f"{seconds / 60:.1f} min"


def _nonfinite(s: _Session, loop: LoopState, hidden, result: StepResult, last_good: LastGood,
               progress: _Progress) -> tuple[dict, LoopState, tuple]:
    """Handle a non-finite window: log and print it, and decide (event's action) to skip or stop.

    Stop (--on-nonfinite stop, broken parameters, or --max-skips skipped steps
    in a row): when the window's loss or carried state was non-finite, the
    parameters of the last update are broken and the whole training state goes
    back to the last good one. The event's "step" is the first step the run
    discards (so the run keeps step - 1 steps); "detected_at" is the window
    where the non-finite value appeared; "skipped_undone" counts the skipped steps the rollback discarded
    (they came after the last good state, so the restored counters no longer hold them, but the summary
    still reports them). Returns (event, loop, hidden state).
    """
    from .optim import first_nonfinite
    broken_params = first_nonfinite(s.model.params) is not None
    action = "stop" if broken_params else s.config.on_nonfinite
    detected = loop.step + 1
    too_many = action == "skip" and loop.skips_in_row + 1 >= s.config.max_skips
    if too_many:
        action = "stop"
    rolled_back, undone = None, 0
    if action == "stop" and (broken_params or result.bad == "loss" or result.bad.startswith("state.")) \
            and last_good.held:
        skipped = loop.skipped
        loop, hidden = last_good.restore(s.model, s.opt, s.rng)
        rolled_back, undone = loop.step, skipped - loop.skipped
    event = {"step": loop.step + 1, "detected_at": detected, "epoch": loop.epoch, "tensor": result.bad,
             "loss": result.loss, "grad_norm": result.grad_norm, "action": action,
             "rolled_back_to": rolled_back, "max_skips": bool(too_many), "weights_nonfinite": broken_params,
             "skipped_undone": undone}
    s.run.log({"type": "nonfinite", **event, "time": s.clock()})
    if action == "skip":
        what = "skipping the step"
    else:
        what = "stopping"
        if broken_params and s.config.on_nonfinite == "skip":
            what = "stopping, not skipping (--on-nonfinite skip): the last update made the weights non-finite"
        if too_many:
            what = f"stopping: {s.config.max_skips} steps in a row were non-finite (--max-skips)"
        if rolled_back is not None:
            what += (f"; rolled back to step {rolled_back}, the last state whose loss and gradients were finite")
    if action == "skip":        # thousands of skipped steps would bury the output: the first ones are named
        progress.skip_notes += 1
        if progress.skip_notes > SKIP_NOTES:
            if progress.skip_notes == SKIP_NOTES + 1:
                progress.write("(further skipped steps are not named one by one: the progress lines count them, "
                               "metrics.jsonl records each)")
            return event, loop, hidden
    progress.write(f"non-finite values at step {detected} (first bad tensor: {result.bad}); {what}")
    return event, loop, hidden


def _step_event(s: _Session, loop: LoopState, result: StepResult, tokens_per_s: float) -> dict:
    """The event every --log-every steps: this step's figures and the averages since the last event.
    tokens_per_s: training tokens per second inside training steps since the last event (see _Timing)."""
    avg = loop.log_loss / max(loop.log_steps, 1)
    return {"type": "step", "step": loop.step, "epoch": loop.epoch, "loss": result.loss, "ppl": _ppl(result.loss),
            "loss_avg": avg, "grad_norm": result.grad_norm, "grad_norm_clipped": result.grad_norm_clipped,
            "clipped": bool(result.clipped), "clip_fraction": loop.log_clipped / max(loop.log_steps, 1),
            "lr": result.lr, "tokens_per_s": tokens_per_s, "tokens": loop.tokens,
            **({"omega": result.omega} if result.omega is not None else {}), "time": s.clock()}


# ---------------------------------------------------------------- commands
