"""Whether and how a run folder can be resumed: its checkpoint, and the limits that would stop it at once.

`resume_point(config, folder)` reads the run's model.npz before anything
else, refuses a damaged or edited one (check_members: its loop state and
optimizer members; refuse_edited_model: a config.json whose model settings
are not the checkpoint's), and refuses (UserError, one line naming the flag
to raise) a resume that would stop before its first window; a run whose final evaluation did
not finish resumes to run only that evaluation (`finish_only`).

The one thing to know before editing: nothing here writes. A refused resume
leaves the folder exactly as it was; train() prints "resuming RUN from step
S" only after these checks pass.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from .config import RESUME_OVERRIDABLE, TrainConfig
from .errors import UserError, plural
from .loopstate import LoopState
from .stopping import stop_reason


def refuse_other_settings(config: TrainConfig, folder: Path) -> None:
    """UserError when `config` is not the run's own settings (its config.json) with only what a resume may
    change (config.RESUME_OVERRIDABLE) changed: a TrainConfig built afresh and passed to train(config,
    resume=RUN) would otherwise fail on the first array of another shape, or train another experiment
    on the run's weights. The CLI's config comes from runs.resume_config, which this always accepts."""
    from .config import CORPUS_PLACE
    from .runs import resume_config
    import dataclasses
    saved = resume_config(folder, {"data": {k: getattr(config.data, k) for k in CORPUS_PLACE}})   # (moved)
    saved = dataclasses.replace(saved, lr=saved.initial_lr())   # lr None: the optimizer's default, as saved
    given = {**config.to_dict(), "lr": config.initial_lr()}
    given.pop("out", None)
    try:
        saved.resumed(given)
    except UserError as exc:
        why = str(exc).removeprefix("--resume keeps the run's settings; ")
        raise UserError(f"the settings given to resume {folder} are not the run's own (its config.json): {why}; "
                        f"build them with resume_config(RUN, overrides), as the CLI's --resume does") from None


def resume_point(config: TrainConfig, folder: Path) -> tuple:
    """(model.npz of the run `folder` to resume (a checkpoint.Checkpoint), read before anything else;
    finish_only's reason when the resume only runs the final evaluation, else None).

    Refuses (UserError, nothing written) a run that would stop before its
    first window, already at the --max-steps, --epochs, --max-minutes,
    --patience or --min-lr limit of `config`: resuming it would only repeat
    the final evaluation and log a second stop. A run whose final evaluation
    did not finish is not refused: its resume runs that evaluation
    (finish_only). A --max-minutes that stopped the run at this step, given
    again, is refused here too (refuse_spent_budget); any other budget is
    checked again once the start-up has measured the final evaluation's
    reserve (refuse_finished_resume in train). Prints nothing (train() prints
    "resuming RUN from step S (epoch E)" once its start-up is over). (None, None) when the folder holds no
    model.npz (resume_checkpoint then says what to do).
    """
    from . import checkpoint
    from .runs import LATEST, holds_checkpoint
    if not holds_checkpoint(folder):
        return None, None
    refuse_other_settings(config, folder)
    try:
        ck = checkpoint.load(folder / LATEST)
    except checkpoint.CorruptCheckpoint as exc:
        raise UserError(f"{exc}; this run cannot be resumed: restore the file, or train afresh into another "
                        f"--out{_what_is_left(folder)}") from None
    check_members(ck)
    refuse_edited_model(folder, ck)
    check_best(folder)
    loop = LoopState.from_arrays(ck.train)
    lr = float(ck.optim["lr"]) if "lr" in ck.optim else None
    finish = finish_only(config, loop, folder, lr)
    if finish is None:
        events = _run_events(folder)        # read once for the checks below
        refuse_repeated_divergence(config, loop, folder, events)
        refuse_spent_budget(config, loop, folder, events)       # (first: the budget that stopped it, said as such)
        # the final evaluation's reserve as the last session measured it, capped as _Timing.reserve caps it
        from .progress import MAX_RESERVE_SHARE
        needed = recorded_reserve(folder, loop, events)[0]
        reserve = min(needed, MAX_RESERVE_SHARE * 60 * (config.max_minutes or 0.0))
        refuse_finished_resume(config, loop, folder, lr=lr, reserve=reserve, needed=needed)
    return ck, finish


# the loop counters a checkpoint's train.<name> holds, with the smallest value each can have (the rest of
# LoopState's fields are losses, any float, or elapsed, a finite non-negative one)
_COUNTER_MIN = {"step": 0, "epoch": 1, "pos": 0, "window": 0, "tokens": 0, "bad_evals": 0, "plateaus": 0,
                "last_eval_step": -1, "skipped": 0, "skips_in_row": 0, "clipped_total": 0, "ep_steps": 0,
                "ep_clipped": 0, "log_steps": 0, "log_clipped": 0, "log_tokens": 0, "evaluated_updates": -1}
_COUNTER_WORDS = {"step": "a step count", "epoch": "an epoch number (from 1)",
                  "pos": "a row of the training stream", "tokens": "a token count"}


def check_members(ck, rows: int | None = None, state: tuple | None = None) -> None:
    """UserError (one line naming the file and the member) when a model.npz to resume holds loop state or
    optimizer members that no run writes: a counter that is not a non-negative whole number (-1 allowed
    where it means "none"), more skipped steps than steps, a negative or non-finite elapsed time, an lr
    that is not finite and positive, a train.rng that is not the JSON of a numpy bit-generator state.
    rows: the training stream's rows (train.pos must lie within them); state: the model's initial carried
    state (train.state.0, ... must have its shapes and dtype). Both are known only once the session is prepared, so the
    resume calls this twice: in resume_point without them (before any message uses the counters), and
    when it loads the checkpoint into the session (train._restore) with them. This is the one place
    that judges these members: LoopState.from_arrays and the optimizer read them as given."""
    import json

    import numpy as np

    def bad(member: str, what: str) -> UserError:
        return UserError(f"{ck.path}: {member} {what} (a damaged or edited checkpoint); restore it, or train "
                         f"afresh into another --out")

    def scalar(d: dict, name: str, prefix: str):
        a = np.asarray(d[name])
        if a.ndim != 0 or a.dtype.kind not in "biuf":
            raise bad(f"{prefix}.{name}", f"is {a.dtype} of shape {a.shape}, not a number")
        return a.item()

    counters = {}
    for name, low in _COUNTER_MIN.items():
        if name not in ck.train:
            continue        # (a checkpoint of an earlier version: LoopState's default)
        v = scalar(ck.train, name, "train")
        if not (math.isfinite(v) and v == int(v) and v >= low):
            raise bad(f"train.{name}", f"is {v:g}, not {_COUNTER_WORDS.get(name, 'a count')}")
        counters[name] = int(v)
    if counters.get("skipped", 0) > counters.get("step", math.inf):
        raise bad("train.skipped", f"is {counters['skipped']}, more than the {counters['step']} steps of train.step")
    if "elapsed" in ck.train:
        v = scalar(ck.train, "elapsed", "train")
        if not (math.isfinite(v) and v >= 0):
            raise bad("train.elapsed", f"is {v:g}, not a number of seconds")
    if rows is not None and counters.get("pos", 0) > rows:
        raise bad("train.pos", f"is {counters['pos']:,}, beyond the training stream's {rows:,} rows")
    for name in ("lr", "step"):
        if name not in ck.optim:
            raise bad(f"optim.{name}", "is missing")
        v = scalar(ck.optim, name, "optim")
        if name == "lr" and not (math.isfinite(v) and v > 0):
            raise bad("optim.lr", f"is {v:g}, not a learning rate (a finite number above 0)")
        if name == "step" and not (math.isfinite(v) and v == int(v) and v >= 0):
            raise bad("optim.step", f"is {v:g}, not a step count")
    if "rng" not in ck.train:
        raise bad("train.rng", "is missing")
    try:
        np.random.default_rng().bit_generator.state = json.loads(str(ck.train["rng"]))
    except (ValueError, TypeError, KeyError, AttributeError):
        text = str(ck.train["rng"])
        raise bad("train.rng", f"is {text[:40]!r}{'...' if len(text) > 40 else ''}, not the JSON of a numpy "
                               f"random generator's state") from None
    for i, like in enumerate(state or ()):
        member = f"train.state.{i}"
        if member.removeprefix("train.") not in ck.train:
            raise bad(member, "is missing")
        got = np.asarray(ck.train[member.removeprefix("train.")])
        if got.shape != like.shape or got.dtype != like.dtype:
            raise bad(member, f"is {got.dtype} of shape {got.shape}, not the model's carried state ({like.dtype} "
                              f"of shape {like.shape})")


def refuse_edited_model(folder: Path, ck) -> None:
    """UserError (one line) when the run's model.npz is another run's (its meta.config holds another run_id
    than config.json: a checkpoint copied in), or when config.json names model settings other than those
    its model.npz was saved with (the checkpoint's meta.config): an edited config.json. A resume builds the model from
    config.json's "train" settings (a changed size then failed on the first array of another shape) while
    its top-level "model" record is only reported (a change there trained on, and stayed, unnoticed); the
    checkpoint's weights are what the run is, so both must agree with it."""
    from .config import config_from_dict
    from .settings import flag
    from .runs import CONFIG, other_run_checkpoint, read_run_config
    info = read_run_config(folder)
    if (other := other_run_checkpoint(info, ck.config)) is not None:
        raise UserError(f"{ck.path} is a checkpoint of {other}, not of the run {folder / CONFIG} records (another "
                        f"run_id): a resume continues only the run that saved it; put this run's own "
                        f"{ck.path.name} back, or resume the run it came from (a run folder copied whole resumes)")
    saved = ck.config.get("model") if isinstance(ck.config, dict) else None
    if not isinstance(saved, dict):
        return      # (a checkpoint of an earlier version that does not record them: nothing to hold against)
    model = (info.get("model") or {}) if isinstance(info.get("model"), dict) else {}
    trained = dataclasses.asdict(config_from_dict(info["train"]).model) if isinstance(info.get("train"), dict) else {}
    trained.pop("vocab_size", None)     # (set from the corpus: the "train" settings leave it None)
    for said in (trained, model):
        for k, was in saved.items():
            if k in said and said[k] != was:
                name = flag(k) if k != "vocab_size" else "a vocabulary size of"
                raise UserError(f"{folder / CONFIG} says {name} {said[k]}, {ck.path.name} was saved with {was} (an "
                                f"edited {CONFIG}: a resume cannot change the model); put {json.dumps(k)}: "
                                f"{json.dumps(was)} back into it to resume, or train afresh into another --out"
                                + (f" with {flag(k)} {said[k]}" if k != "vocab_size" else ""))
    _refuse_edited_training(folder, ck, info)


# settings a config.json may hold otherwise than its checkpoint: what a resume may change (recorded in
# config.json when its start-up is over, in the checkpoint at its next save), where the run is written,
# and where its corpus is looked up (a moved corpus: "corpus" may name it at its new path, or by its
# catalog name; its contents are held to the run's by checksum in runs.resume_checkpoint)
_MAY_DIFFER = set(RESUME_OVERRIDABLE) | {"out", "corpora_dir", "use_cache", "corpus"}


def _refuse_edited_training(folder: Path, ck, info: dict) -> None:
    """UserError (one line) when config.json's "train" settings differ from those model.npz was saved with
    (its meta.config) in a setting a resume may not change (--lr, --bptt, --clip-norm, the data's...): the
    resume trains by config.json, so an edited file would change the run unannounced, where the same
    change given as a flag is refused."""
    from .config import config_from_dict
    from .settings import flag
    from .runs import CONFIG
    if not (isinstance(ck.config, dict) and isinstance(ck.config.get("train"), dict)
            and isinstance(info.get("train"), dict)):
        return      # (a checkpoint of an earlier version that does not record them)
    try:
        saved, said = config_from_dict(ck.config["train"]), config_from_dict(info["train"])
    except UserError:
        return      # (read_run_config and the resume's own reading say what is wrong with them)
    for part_saved, part_said in ((saved, said), (saved.data, said.data)):
        for f in dataclasses.fields(part_saved):
            was, now = getattr(part_saved, f.name), getattr(part_said, f.name)
            if f.name in _MAY_DIFFER or f.name in ("data", "model") or was == now:
                continue
            raise UserError(f"{folder / CONFIG} says {flag(f.name)} {now}, {ck.path.name} was saved with {was} "
                            f"(an edited {CONFIG}: a resume cannot change it); put {json.dumps(f.name)}: "
                            f"{json.dumps(was)} back into it to resume, or train afresh into another --out with "
                            f"{flag(f.name)} {now}")


def _what_is_left(folder: Path) -> str:
    """The end of the line for a run whose model.npz is corrupt: its best.npz, named only when it loads."""
    from . import checkpoint
    from .runs import BEST
    if not (folder / BEST).exists():
        return " (the run has no best.npz to evaluate or generate from either)"
    try:
        checkpoint.load(folder / BEST)
    except UserError:
        return " (its best.npz cannot be read either)"
    return " (its best.npz still evaluates and generates: --checkpoint best)"


def check_best(folder: Path) -> None:
    """UserError (one line) when the run's best.npz cannot be read: found before a resume trains, not at
    its final evaluation (which reads it for the test and the sample), with what to do."""
    from . import checkpoint
    from .runs import BEST
    if (folder / BEST).exists():
        try:
            checkpoint.load(folder / BEST)
        except UserError as exc:
            raise UserError(f"{exc}; restore it, or delete it to resume without it (the final test then uses "
                            f"the latest model unless a later validation beats the best recorded one)") from None


def finish_only(config: TrainConfig, loop: LoopState, folder: Path, lr: float | None) -> str | None:
    """The stop reason of a resume that runs only the final evaluation: the run stopped at `loop` with
    its training done but its final evaluation unfinished (runs.final_evaluation_pending: Ctrl-C or
    SIGTERM during it), and `config`'s limits still stop it before its first window. None otherwise
    (nothing left unfinished, a diverged run, which a resume trains on as before, or limits raised:
    the resume trains on and evaluates at its end).

    A run stopped by its time budget stays stopped while --max-minutes is unchanged (the final
    evaluation's reserve, measured again, could otherwise leave it a few seconds of training).
    """
    from .runs import final_evaluation_pending
    reason = final_evaluation_pending(folder, loop.step)
    if reason is None or reason == "nonfinite":
        return None
    why = stop_reason(config, loop, diverged=False, interrupted=False, elapsed=loop.elapsed, lr=lr)
    if why is None and reason == "max_minutes" and \
            config.max_minutes == _saved_train(folder).max_minutes:
        why = "max_minutes"
    return why


def _run_events(folder: Path) -> list[dict]:
    """The events of the run's metrics.jsonl."""
    from .runs import METRICS, _events
    return [e for _, e in _events(Path(folder) / METRICS)]


def _saved_train(folder: Path) -> TrainConfig:
    """The training settings config.json records (defaults where it records none)."""
    from .config import config_from_dict
    from .runs import read_run_config
    return config_from_dict(read_run_config(folder).get("train") or {})


def _last_stop(events: list[dict], step: int) -> int | None:
    """Index in `events` of the last stop event, when it is at `step` (None otherwise)."""
    stops = [i for i, e in enumerate(events) if e.get("type") == "stop"]
    return stops[-1] if stops and events[stops[-1]].get("step") == step else None


def refuse_repeated_divergence(config: TrainConfig, loop: LoopState, folder: Path,
                               events: list | None = None) -> None:
    """UserError (one line) for a run whose last session stopped at `loop`'s step on non-finite values
    (and finished its final evaluation), resumed with the settings that stopped it.

    A resume repeats the same steps bitwise (the rollback keeps the whole training state), so it would
    diverge again at the same step and stop. It trains on when told to skip the step
    (--on-nonfinite skip where the run stopped), or to skip more of them (--max-skips above the
    run's, where --max-skips stopped it); a step whose update made the weights themselves
    non-finite cannot be skipped, and no resume is worth running. Runs of earlier versions (no
    "weights_nonfinite" in the event) are judged on the other two. events: the run's metrics events,
    when the caller has read them already.
    """
    events = _run_events(folder) if events is None else events
    i = _last_stop(events, loop.step)
    if i is None or events[i].get("reason") != "nonfinite":
        return
    if not any(e.get("type") == "end" for e in events[i + 1:]):
        return      # its final evaluation was cut short: the resume diverges again and finishes it
    bad = next((e for e in reversed(events[:i]) if e.get("type") == "nonfinite"), None)
    if bad is None or bad.get("action") != "stop":
        return
    old = _saved_train(folder)
    detected = bad.get("detected_at", loop.step + 1)
    at = (f"{folder} stopped at step {loop.step} because training diverged (non-finite {bad.get('tensor', 'values')} "
          f"at step {detected})")
    # every step so far non-finite and skipped (or none): no update was ever made, so no --lr or clipping
    # changes anything
    initial = loop.step - loop.skipped == 0 and detected == loop.step + 1
    clipped = old.clip_norm or old.clip_value
    new_run = ("train a new run with a smaller --recurrent-scale, another --init or --activation" if initial else
               "train a new run with a smaller --lr, or with gradient clipping (--clip-norm 0.25)" if not clipped else
               f"train a new run with a smaller --lr, or a smaller --clip-{'norm' if old.clip_norm else 'value'} "
               f"than {clipped:g}")
    weights = "the initial weights" if initial else "the same weights"
    if bad.get("weights_nonfinite"):
        raise UserError(f"{at}: the update made the weights non-finite, which a resume repeats and no "
                        f"--on-nonfinite skip can skip; {new_run}")
    if bad.get("max_skips"):
        if config.on_nonfinite == "skip" and config.max_skips > old.max_skips:
            return
        # a skipped step leaves the weights as they were: the same weights failed on every one of these batches
        raise UserError(f"{at} after {old.max_skips} {plural(old.max_skips, 'non-finite step')} in a row, all from "
                        f"{weights} (a skipped step leaves them unchanged), so more skips are unlikely to help: "
                        f"{new_run} (--max-skips above {old.max_skips} tries more batches)")
    if config.on_nonfinite == "skip":
        return
    raise UserError(f"{at}{', from the initial weights, before any update' if initial else ''}; a resume repeats "
                    f"the same steps exactly and would diverge again: give --on-nonfinite skip to skip such "
                    f"steps, or {new_run}")


def budget_to_exceed(elapsed: float, needed: float) -> float:
    """The --max-minutes (rounded up: `minutes_up`) a resume must exceed to train a window, for a run that has
    trained `elapsed` seconds and whose final evaluation needs `needed` seconds: b > elapsed + reserve(b),
    where the reserve is `needed` capped at MAX_RESERVE_SHARE of b (progress._Timing.reserve), so
    b = elapsed + needed, or elapsed / (1 - share) where the cap binds. (Rounded down, the figure could
    name the very budget refused.)"""
    from .progress import MAX_RESERVE_SHARE
    b = max(elapsed + needed, 0.0)
    if needed > MAX_RESERVE_SHARE * b:
        b = elapsed / (1 - MAX_RESERVE_SHARE)
    return minutes_up(b / 60)


def _minute_decimals(minutes: float) -> int:
    """Decimals a --max-minutes figure is given to: 2 (0.01 min) from 0.1 min up, else two significant
    digits (a run of a few seconds: 0.0034, not 0.01, which overstates it threefold)."""
    return 2 if minutes >= 0.1 or minutes <= 0 else 1 - math.floor(math.log10(minutes))


def minutes_up(minutes: float) -> float:
    """`minutes` rounded up to the decimals `_minute_decimals` gives it."""
    scale = 10 ** _minute_decimals(minutes)
    return math.ceil(round(minutes * scale, 6)) / scale


def minutes_text(minutes: float) -> str:
    """A --max-minutes figure (`minutes_up`'s) as the advice writes it: "1.00", "0.0034"."""
    return f"{minutes:.{_minute_decimals(minutes)}f}"


def recorded_reserve(folder: Path, loop: LoopState, events: list | None = None) -> tuple[float, float | None]:
    """(seconds, measured) of the final evaluation of the run's last session, when it stopped at `loop`'s
    step: seconds is the larger of what that session measured it would need (its stop event's
    final_eval_need_s) and the time it took (from its stop to its end event), the figure the start-up's
    fresh measurement would come near (so that the advice given before the start-up and after it agree);
    measured is the time it took (None when unknown). (0.0, None) when the run's last stop is not at this
    step. events: the run's metrics events, when the caller has read them already."""
    events = _run_events(folder) if events is None else events
    i = _last_stop(events, loop.step)
    if i is None:
        return 0.0, None
    stop = events[i]
    end = next((e for e in events[i + 1:] if e.get("type") == "end"), None)
    took = None
    if end is not None and isinstance(end.get("time"), (int, float)) and isinstance(stop.get("time"), (int, float)):
        took = max(end["time"] - stop["time"], 0.0)
    kept = stop.get("final_eval_need_s") if isinstance(stop.get("final_eval_need_s"), (int, float)) else 0.0
    return max(kept, took or 0.0), took


def refuse_spent_budget(config: TrainConfig, loop: LoopState, folder: Path, events: list | None = None) -> None:
    """UserError (one line), before the start-up, for a run whose last session stopped at `loop`'s step
    because its time budget ran out, resumed with that same --max-minutes.

    Whether a budget leaves a window to train depends on the final evaluation's reserve, which needs
    the evaluation speed measured at start-up (corpus read, kernels compiled: refuse_finished_resume
    with `reserve`, seconds to a minute later). A budget that already stopped this run at this very
    step is refused at once instead, as finish_only keeps such a run stopped: a reserve measured
    again could only leave it the few seconds by which the measurements differ. The advice names
    the training time and the last final evaluation's seconds (its stop and end events), so that the
    figure to exceed is the one the start-up's measurement would name, near enough.
    """
    if not config.max_minutes:
        return
    if config.max_minutes != _saved_train(folder).max_minutes:
        return      # another budget: the start-up measures whether it leaves a window
    events = _run_events(folder) if events is None else events
    i = _last_stop(events, loop.step)
    if i is None or events[i].get("reason") != "max_minutes":
        return
    needed, final = recorded_reserve(folder, loop, events)
    need = max(budget_to_exceed(loop.elapsed, needed), minutes_up(config.max_minutes))
    took = f" and its final evaluation took {final:.0f} s" if final is not None and final >= 0.5 else ""
    raise UserError(f"{folder} is already at step {loop.step}, where its --max-minutes {config.max_minutes:g} ran "
                    f"out: it has trained {minutes_text(loop.elapsed / 60)} min{took}; give --max-minutes above "
                    f"{minutes_text(need)} "
                    f"(or 0: no time limit) to train further")


def refuse_finished_resume(config: TrainConfig, loop: LoopState, folder, reserve: float = 0.0,
                           lr: float | None = None, needed: float | None = None) -> None:
    """UserError (one line) when a run resumed at `loop` would stop before its first window.

    reserve: seconds the time budget keeps for the final evaluation (_Timing.reserve);
    0 before the evaluation speed is measured. lr: the saved optimizer's learning
    rate (None: not checked against --min-lr). needed: the final evaluation's
    seconds before the reserve's cap (_Timing.needed), for the advice: the budget
    it names is the smallest one that leaves a window under its own cap
    (`budget_to_exceed`), whatever the budget refused.
    """
    why = stop_reason(config, loop, diverged=False, interrupted=False, elapsed=loop.elapsed, reserve=reserve,
                      lr=lr)
    at = f"{folder} is already at step {loop.step}"
    if why is None:
        return
    need = budget_to_exceed(loop.elapsed, reserve if needed is None else needed)
    advice = {"max_steps": f"--max-steps above {loop.step}", "epochs": f"--epochs above {config.epochs}",
              "max_minutes": f"--max-minutes above {minutes_text(need)} (or 0: no time limit)",
              "early_stop": f"--patience above {loop.bad_evals}",
              "min_lr": f"--min-lr below {lr or 0:.3g} (0 = no floor)"}
    # every other limit the run is also at, so that following the advice is not refused again for the next one
    also = [r for r in _limits_reached(config, loop, reserve, lr) if r != why]
    more = "".join(f" and {advice[r]}" for r in also)
    if why == "max_steps":
        raise UserError(f"{at}, the limit of --max-steps {config.max_steps}; give {advice[why]}{more} "
                        "to train further")
    if why == "epochs":
        raise UserError(f"{at}, the end of its {config.epochs} epoch(s); give {advice[why]}{more} "
                        "to train further")
    if why == "max_minutes":
        # the smallest budget that leaves a window to train: above the minutes used plus the final evaluation's
        # reserve, rounded up (a rounded-down figure could name the very budget that was just refused)
        final = (f" and its final evaluation needs about {needed or reserve:.0f} s" if (needed or reserve) >= 0.5
                 else "")
        raise UserError(f"{at}: it has trained {minutes_text(loop.elapsed / 60)} min{final}, which fills --max-minutes "
                        f"{config.max_minutes:g}; give {advice[why]}{more} to train further")
    if why == "early_stop":     # (a run stopped at another limit, resumed with a --patience it already meets)
        n = loop.bad_evals
        raise UserError(f"{at} with {n} {plural(n, 'validation')} without improvement since its best, which "
                        f"--patience {config.patience} allows no more of; give {advice[why]}{more} to train "
                        f"further")
    if why == "min_lr":
        raise UserError(f"{at} and stopped when its learning rate fell to {lr:.3g}, below --min-lr "
                        f"{config.lr_floor():.3g}, after {loop.plateaus} {plural(loop.plateaus, 'plateau')}; "
                        f"give {advice[why]}{more} to train further")


def _limits_reached(config: TrainConfig, loop: LoopState, reserve: float, lr: float | None) -> list:
    """Every limit of stopping.stop_reason that `loop` is at (stop_reason names the first only)."""
    checks = {"epochs": loop.epoch > config.epochs,
              "max_steps": bool(config.max_steps) and loop.step >= config.max_steps,
              "max_minutes": bool(config.max_minutes) and loop.elapsed + reserve >= 60 * config.max_minutes,
              "early_stop": bool(config.patience) and loop.bad_evals >= config.patience,
              "min_lr": lr is not None and lr < config.lr_floor()}
    return [r for r, hit in checks.items() if hit]


def resume_flags(config: TrainConfig, folder: Path) -> str:
    """The flags after `--resume RUN` that continue `config`'s resume the same way: the settings it changes
    that config.json does not hold yet (runs.resume_changes; a resume records them there only once its
    start-up is over), as " --max-steps 500 --on-nonfinite skip"; "" when a plain --resume does (or when
    config.json cannot be read: the resume's own refusal then says what is wrong)."""
    from .config import config_to_dict
    from .settings import flag
    from .runs import read_run_config, resume_changes
    try:
        changed = resume_changes(read_run_config(folder), config_to_dict(config))
    except (UserError, OSError, ValueError):
        return ""
    return "".join(f" {flag(k)} {v:g}" if isinstance(v, float) else f" {flag(k)} {v}"
                   for k, v in changed.items() if v is not None)
