"""The end of a training run: the stop event, the final evaluation, the summary train() returns.

When the loop stops, `stop_training` settles the stop reason, saves the
checkpoint and logs the "stop" event (still inside the loop's signal
handler); `end_run` then builds the summary (`_summary`), runs the final
evaluation (`_final_evaluation`: the validation when the last one is older,
the test split, the sample; `_final_report` does the work) and logs the "end"
event that marks the run finished. summary.py prints what it returns.

The one thing to know before editing: everything here runs after the last
save that steers training, and only *reports*: it may refresh best.npz (and
the best_saved counter), but never what a later step depends on (best_val,
lr, patience, the RNG, the hidden state), so a run stopped here and resumed
(a resume runs only the final evaluation, runs.final_evaluation_pending)
ends as one never stopped. The saves and validations are session.py's
(_save, _keep_best, _validate_full, _eval_event): the loop uses them too.
"""
from __future__ import annotations

import signal

from .errors import Terminated, shell_arg
from .loopstate import LoopState
from .evaluate import evaluate_stream
from .progress import note, phase
from .runs import ppl as _ppl
from .session import _eval_event, _keep_best, _save, _Session, _validate_full
from .stopping import Interrupt, signal_error, stop_reason, stop_word



def stop_training(s: _Session, loop: LoopState, hidden, stopped: str, finish: str | None, interrupt: Interrupt) -> str:
    """Once the loop stopped: the final stop reason, the checkpoint saved and the "stop" event logged;
    returns the stop reason. Called inside the loop's handler (`interrupt`): a Ctrl-C during the final
    save sets the flag, not a half-written file. finish: train's finish_only reason (None when the
    session trained)."""
    from .optim import first_nonfinite
    config, timing, run = s.config, s.timing, s.run
    if stopped == "interrupted" and finish is None:
        # A signal during the last scheduled validation (at --max-steps, say): training is over all
        # the same, so the run stops as finished and only its final evaluation is left, which the
        # signal then stops at once (_final_evaluation): a resume runs only that evaluation.
        stopped = stop_reason(config, loop, diverged=False, interrupted=False, elapsed=s.clock(),
                              reserve=timing.reserve(), lr=s.opt.lr) or stopped
    # Still inside the handler: a first Ctrl-C during the final save sets the flag, a second one waits
    # until the file is complete (stopping.saving); after a stop, the run only saves and says so, and
    # further signals are ignored (a Ctrl-C pressed twice or thrice keeps the checkpoint and stops).
    interrupt.finishing = stopped == "interrupted"
    if stopped != "nonfinite" or first_nonfinite(s.model.params) is None:
        _save(s, loop, hidden)      # after a non-finite window: the last good state
    if stopped == "interrupted":
        word = stop_word({"stopped": stopped, "signal": signal.Signals(interrupt.signum).name})
        note(f"{word} at step {loop.step}: checkpoint saved to {run.latest}; "
              f"continue with --resume {shell_arg(run.folder)}")
    floor = ({"lr": s.opt.lr, "min_lr": config.lr_floor(), "plateaus": loop.plateaus}
             if stopped == "min_lr" else {})
    # final_evaluation: the final evaluation follows; an "end" event says it finished
    # (runs.final_evaluation_pending: a resume of a run without one runs it)
    # final_eval_need_s: the seconds the final evaluation needs at the measured speed (the reserve
    # of --max-minutes before its cap), which a resume's advice before its own start-up repeats
    reserve = {"final_eval_need_s": round(timing.needed(), 3)} if config.max_minutes else {}
    run.log({"type": "stop", "reason": stopped, "step": loop.step, "epoch": loop.last_epoch, **floor, **reserve,
             "final_evaluation": stopped != "interrupted", "time": s.clock()})
    return stopped


def end_run(s: _Session, loop: LoopState, hidden, stopped: str, nonfinite: dict | None, interrupt: Interrupt, *,
            startup: float, baseline) -> dict:
    """train()'s summary: the loop's figures (_summary), then, unless a signal stopped the run, the final
    evaluation's (_final_evaluation). startup: the start-up's seconds; baseline: the Kneser-Ney fit or None."""
    summary = _summary(s, loop, stopped, nonfinite)
    summary.update(startup_s=startup, baseline=baseline,
                   signal=signal.Signals(interrupt.signum).name if stopped == "interrupted" else None)
    if stopped != "interrupted":
        summary.update(_final_evaluation(s, loop, hidden, stopped, interrupt))
    summary["elapsed_s"] = s.clock()
    summary["budget_s"] = s.timing.budget
    return summary


def _summary(s: _Session, loop: LoopState, stopped: str, nonfinite: dict | None) -> dict:
    """train()'s result as the loop left it (format_summary prints it; _final_report adds to it).

    tokens_per_s: this session's training tokens per second inside training steps (see _Timing); 0
    when the session applied no step (a run that diverged at once has no speed to report); resumed_from:
    the step this session started from (0: a new run; tokens_per_s is then of the steps since).
    val_step: the step of val_loss (the latest full validation; None before one); timed_val: this
    session's latest timed validation (_Timing.timed) or None. updates: the updates applied over the
    whole run (its steps less the skipped ones; 0: the model holds its initial weights)."""
    elapsed = s.clock()
    t = s.timing
    return {"run_dir": str(s.run.folder), "stopped": stopped, "steps": loop.step, "epoch": loop.last_epoch,
            "tokens": loop.tokens, "elapsed_s": elapsed,
            "tokens_per_s": t.step_tokens / t.step_seconds if t.step_seconds > 0 and t.session_steps else 0.0,
            "resumed_from": t.first_step,
            "lr": s.opt.lr, "val_loss": loop.val_loss, "val_ppl": _ppl(loop.val_loss),
            "val_step": loop.last_eval_step if loop.last_eval_step >= 0 else None, "timed_val": t.timed,
            "best_val_loss": loop.best_saved, "best_val_ppl": _ppl(loop.best_saved),
            "clip_fraction": loop.clipped_total / max(loop.step - loop.skipped, 1),
            "plateaus": loop.plateaus, "min_lr": s.config.lr_floor(),
            "skipped": loop.skipped, "updates": loop.step - loop.skipped, "nonfinite": nonfinite,
            "params": s.model.num_params(),
            "vocab_size": s.model.config.vocab_size,
            "clipping": bool(s.config.clip_norm > 0 or s.config.clip_value > 0)}


def _final_evaluation(s: "_Session", loop: LoopState, hidden, stopped: str, interrupt: Interrupt) -> dict:
    """_final_report, which a signal stops at once (a signal that came during the last save stops it
    before it starts), then the "end" event that marks the run finished.

    Training is done and saved before it, so a stop here loses nothing but the
    evaluation: one line says so and how to finish it (`--resume` runs only the
    final evaluation, see runs.final_evaluation_pending), and the
    KeyboardInterrupt (errors.Terminated for SIGTERM) is raised on, marked
    `said` (the CLI prints no second line and exits 130 or 143).
    """
    import numpy as np
    try:
        with Interrupt(at_once=True), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if interrupt.requested:
                raise signal_error(interrupt.signum)
            report = _final_report(s, loop, hidden, stopped)
    except KeyboardInterrupt as exc:
        word = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        note(f"{word} during the final evaluation, after step {loop.step}: checkpoint saved to {s.run.latest} "
              f"with training done; continue with --resume {shell_arg(s.run.folder)} (it runs only the final "
              "evaluation)")
        exc.said = True
        raise
    s.run.log({"type": "end", "reason": stopped, "step": loop.step, "epoch": loop.last_epoch, "time": s.clock()})
    return report


def _final_report(s: _Session, loop: LoopState, hidden, stopped: str) -> dict:
    """Report-only evaluations after the last save, and the sample: what they add to the summary.

    They may refresh best.npz (and the best_saved counter with it) but never
    touch what steers training (best_val, lr, patience), so a run stopped here
    and resumed still matches an uninterrupted one. The test split and the
    sample use best.npz's model when there is one.
    """
    from . import checkpoint
    from .data import batchify
    from .optim import first_nonfinite
    from .runs import fmt_ppl

    report = {}
    if loop.last_eval_step != loop.step and stopped != "nonfinite":
        phase(s.config, f"final validation on the validation split ({len(s.corpus.valid):,} tokens)...")
        val = _validate_full(s, "final validation")
        best = _keep_best(s, loop, val)
        if best:
            _save(s, loop, hidden)
        report.update(val_loss=val, val_ppl=_ppl(val), val_step=loop.step, best_val_loss=loop.best_saved,
                      best_val_ppl=_ppl(loop.best_saved))
        s.run.log(_eval_event(s, loop, "final", val, best, s.opt.lr))
        note(f"| final validation | loss {val:6.3f} | ppl {fmt_ppl(_ppl(val))}")
    report["sampled_from"] = "best" if s.run.best.exists() else "latest"
    if report["sampled_from"] == "best":
        s.model.load_state_dict(checkpoint.load(s.run.best).model)
    if len(s.corpus.test) > s.config.eval_batch_size * 2 and first_nonfinite(s.model.params) is None:
        test = batchify(s.corpus.test, s.config.eval_batch_size)
        phase(s.config, f"evaluating on the test split ({len(s.corpus.test):,} tokens, "
                        f"{report['sampled_from']} model)...")
        test_loss, _ = evaluate_stream(s.model, test, s.config.bptt, bar="test")
        report.update(test_loss=test_loss, test_ppl=_ppl(test_loss))
        s.run.log({"type": "eval", "split": "test", "reason": "final", "step": loop.step, "epoch": loop.last_epoch,
                   "model": report["sampled_from"], "test_loss": test_loss, "test_ppl": _ppl(test_loss),
                   "time": s.clock()})
    elif first_nonfinite(s.model.params) is None and (s.config.data.test_fraction > 0 or len(s.corpus.test)):
        n, E = len(s.corpus.test), s.config.eval_batch_size     # (asked for, but too short to evaluate)
        report["no_test"] = (f"the test split holds {n:,} {'token' if n == 1 else 'tokens'}, too few for "
                             f"--eval-batch-size {E} (each stream needs 2); give a larger --test-fraction or more "
                             "text" if n else "the test split came out empty: the text is cut only at sentence "
                             "ends, and none lies near where it would start; give a larger --test-fraction or "
                             "more text")
    if s.config.sample_words and first_nonfinite(s.model.params) is None:
        from .errors import UserError
        from .sample import TextStream
        try:
            stream = TextStream(s.model, s.corpus.vocab, words=s.config.sample_words, seed=s.config.seed,
                                keep_case=s.config.data.keep_case)      # (generate_text's, its note in our words)
            report["sample"] = "".join(piece.text for piece in stream)
            if stream.short:
                report["sample_short"] = (f"{int(stream.words_drawn[0]):,} of the {s.config.sample_words:,} "
                                          "words asked: the model still draws mostly punctuation or sentence ends")
        except UserError:
            # finite weights whose next-token distribution is not (activations that overflow, a diverged
            # relu run's): the sample is left out and the summary says why, not the run's report lost
            report["sample_skipped"] = ("the model's next-token distribution is not finite: its activations "
                                        "overflow, the weights diverged")
    return report


def _final_tokens(s: "_Session") -> int:
    """Tokens the final report evaluates (the whole validation and test splits, as batchified)."""
    B = s.config.eval_batch_size
    test_rows = len(s.corpus.test) // B
    return int(s.valid_stream.size + (test_rows * B if len(s.corpus.test) > B * 2 else 0))
