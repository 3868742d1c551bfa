"""The lines the `train` command prints at the end of a run, from train()'s summary dict.

`format_summary(summary)` gives them: the stop reason, the perplexities, the
Kneser-Ney baseline beside them, what to do next (resume, train longer) and
the sample.

The one thing to know before editing: this only formats. It reads the
summary dict (trainend._summary and trainend._final_report say what is in it) and
never the run folder, so a summary can be printed again from a saved dict.
"""
from __future__ import annotations

import math

from .errors import command, plural, shell_arg
from .runs import ppl as _ppl
from .stopping import stop_word


def _baseline_lines(s: dict) -> list[str]:
    """The Kneser–Ney trigram beside the result, and whether the model has beaten it."""
    from .runs import fmt_ppl
    b = s.get("baseline")
    if not b:
        return []
    split = "test" if "test_ppl" in s and "test" in b else "valid" if "valid" in b else None
    if split is None:
        return []
    ours, which = (s["test_ppl"], "") if split == "test" else _valid_figure(s)
    figures = ", ".join(f"{k} {fmt_ppl(b[k]['ppl'])}" for k in ("valid", "test") if k in b)
    lines = [f"Kneser-Ney trigram baseline (same split and vocabulary): {figures}"]
    if ours is not None and _updates(s) == 0:
        # every step skipped (--on-nonfinite skip) or none taken: the figure is the initial weights', which
        # says nothing about training, so neither "beats" nor "train longer" would be true
        lines.append("  no update was applied, so the model still has its initial weights: no verdict against "
                     "the baseline")
    elif ours is None:
        # no validation has run yet (a run stopped before its first one): nothing to compare, which is not a
        # failure of the model
        lines.append("  the model has not been evaluated yet, so there is nothing to compare"
                     + (f": {_resume_command(s)}" if s.get("stopped") == "interrupted" else ""))
    elif not math.isfinite(ours):
        lines.append("  the model has no finite perplexity: it has not beaten the baseline")
    elif ours < b[split]["ppl"]:
        lines.append(f"  the model beats it on {split}{which}: {fmt_ppl(ours)} < {fmt_ppl(b[split]['ppl'])}")
    else:
        lines.append(f"  the model has NOT beaten it yet on {split}{which}: {fmt_ppl(ours)} >= "
                     f"{fmt_ppl(b[split]['ppl'])}" + _longer_hint(s, ours))
    return lines


def _updates(s: dict) -> int | None:
    """The updates the run applied (its steps less the skipped ones; summaries saved before the key existed
    give it by their counts), or None when the summary says neither."""
    if "updates" in s:
        return s["updates"]
    return s["steps"] - s["skipped"] if "steps" in s and "skipped" in s else None


def _valid_figure(s: dict) -> tuple:
    """(the validation perplexity to hold against the baseline, how the summary names it): the best full
    validation (scheduled or final), or the latest timed one (a slice of the split, --eval-minutes) when it
    came later or is the only one; (None, "") when the run has none."""
    full = s["best_val_ppl"] if math.isfinite(s["best_val_loss"]) else None
    timed = s.get("timed_val")
    if timed and (full is None or s.get("val_step") is None or timed["step"] > s["val_step"]):
        return _ppl(timed["loss"]), (f" (the latest validation, a timed one at step {timed['step']} on "
                                     f"{timed['tokens']:,} of {timed['of_tokens']:,} tokens)")
    return full, ""


def _longer_hint(s: dict, ours: float) -> str:
    """What would let a run that has not beaten the baseline train longer, by how it stopped; for a model
    worse than a uniform guess over its vocabulary (perplexity above V: exploding or diverging, not
    short of steps), what to change instead."""
    stopped = s.get("stopped")
    V = s.get("vocab_size")
    if V and ours > V:
        # worse than a uniform guess: a run a few steps old may be there on its way down, a diverging one
        # stays there; the summary cannot tell which, so it says both
        fix = "a smaller --lr" + ("" if s.get("clipping", True) else " or --clip-norm 0.25, clipping being off")
        more = {"max_steps": "--max-steps", "max_minutes": "--max-minutes", "epochs": "--epochs"}.get(stopped)
        young = f"; a run only a few steps old may still come down: raise {more} to see" if more else ""
        return f" (worse than a uniform guess over its {V:,} words, so probably diverging: try {fix}{young})"
    if stopped == "interrupted":
        return f" (train longer: {_resume_command(s)})"
    if stopped in ("nonfinite", "min_lr"):
        return ""       # more steps would not help: the summary says why it stopped
    flag = {"max_steps": "--max-steps", "max_minutes": "--max-minutes", "epochs": "--epochs",
            "early_stop": "--patience"}.get(stopped, "--max-minutes or --epochs")
    return f" (train longer: raise {flag})"


def _resume_command(s: dict) -> str:
    return f"continue it with {command()} train --resume {shell_arg(s['run_dir'])}"


def format_summary(s: dict) -> str:
    """The lines the train command prints at the end."""
    from .runs import fmt_ppl_of
    budget = s.get("budget_s", math.inf)
    lines = [f"run folder: {s['run_dir']}",
             f"stopped: {stop_word(s)} after {s['steps']} {plural(s['steps'], 'step')}"
             + ((", none of them applied (all non-finite, skipped)" if s["steps"] > 1 else
                 ", not applied (non-finite, skipped)")
                if s["steps"] and _updates(s) == 0 else "")
             + f" ({s['tokens']:,} tokens, "
             f"{s['elapsed_s'] / 60:.1f} min" + (f" of a {budget / 60:g}-min budget" if math.isfinite(budget) else "")
             # (no figure from a session that applied no step: a resume that ran only the final evaluation,
             # a run whose first step was already non-finite)
             + (f", {s['tokens_per_s']:,.0f} training tokens/s" if s["tokens_per_s"] > 0 else "")
             + (f" since the resume at step {s['resumed_from']:,}"
                if s["tokens_per_s"] > 0 and s.get("resumed_from") else "") + ")",
             "   ".join(([f"valid ppl: {fmt_ppl_of(s['val_ppl'], s['val_loss'])}"]
                         if not math.isnan(s["val_loss"]) else [])
                        + ([f"best valid ppl: {fmt_ppl_of(s['best_val_ppl'], s['best_val_loss'])}"]
                           if math.isfinite(s["best_val_loss"]) else [])
                        + [f"lr: {s['lr']:.4g}", f"clipped steps: {100 * s['clip_fraction']:.1f}%"])]
    if s["stopped"] == "min_lr":
        n = s["plateaus"]
        lines.insert(2, f"  the learning rate fell below --min-lr {s['min_lr']:.3g} after {n} {plural(n, 'plateau')} "
                        "(validations without improvement, each dividing it by --lr-decay); more steps would "
                        "barely move the weights")
    if "test_ppl" in s:
        lines.append(f"test ppl ({s['sampled_from']} model): {fmt_ppl_of(s['test_ppl'], s.get('test_loss'))}")
    elif s.get("no_test"):
        lines.append(f"test ppl: none; {s['no_test']}")
    lines += _baseline_lines(s)
    if "startup_s" in s:
        lines.append(f"start-up (corpus, compiling, baseline, calibration; not in the budget): {s['startup_s']:.1f} s")
    nf = s.get("nonfinite") or {}
    undone = nf.get("skipped_undone") or 0      # skipped after the last good state: the rollback discarded them
    if s["skipped"] or undone:
        lines.append(f"non-finite steps skipped: {s['skipped'] + undone}"
                     + (f" ({undone} of them after step {nf['rolled_back_to']}, discarded by the rollback)"
                        if undone else "")
                     + ("" if _updates(s) != 0 else
                        " (every step: no update was applied, the model holds its initial weights)"))
    if s["nonfinite"] and s["stopped"] == "nonfinite":
        nf = s["nonfinite"]
        why = " (stopped after --max-skips non-finite steps in a row)" if nf.get("max_skips") else ""
        back = (f"; rolled back to step {nf['rolled_back_to']}, the last state whose loss and gradients were finite"
                if nf.get("rolled_back_to") is not None else "")
        at = nf.get("detected_at", nf["step"])
        # no update ever applied (every step so far skipped, or none): the weights were never good, only first
        held = ("model.npz holds the initial parameters, which gave no finite loss"
                if s["steps"] == s["skipped"] and at == s["steps"] + 1 else "model.npz holds the last good parameters")
        lines.append(f"the run diverged: non-finite {nf['tensor']} at step {at}{back}; {held}{why}")
    if s.get("sample_skipped"):
        lines.append(f"sample: none ({s['sample_skipped']})")
    if s.get("sample"):
        short = f"; {s['sample_short']}" if s.get("sample_short") else ""
        lines.append(f"sample ({s['sampled_from']} model{short}):")
        lines += ["  " + line for line in s["sample"].splitlines()]     # one sentence per line
    # No line twice: a new run's output opened with "run folder: X" (train() printed it there so that the
    # folder can be found while the run goes on); a resumed run's opened with "resuming X from step S".
    return "\n".join(lines[1:] if s.get("folder_printed") else lines)
