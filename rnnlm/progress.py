"""What a training session shows and times: the bar or the plain progress lines, and the wall clock.

`_Timing` keeps one session's wall-clock figures (the evaluation speed, the
final evaluation's reserve of the time budget, the seconds inside training
steps that tokens/s divides by); `_Progress` draws the training phase: a tqdm
bar on a terminal, else a plain line every --log-interval steps, each with the
time left until the command ends (`command_time_left`: training, then the
final validation and test). train.py owns the loop and calls both.

The one thing to know before editing: nothing here may change what training
computes or when it stops beyond what `_Timing.reserve` and `_Timing.left`
already say (stopping.stop_reason reads them): everything else is reporting, and
a run with the bar, with plain lines or with --no-progress ends bitwise equal.
"""
from __future__ import annotations

import math
import time

from .config import TrainConfig
from .runs import ppl as _ppl, stderr_is_terminal

RESERVE_FACTOR = 1.05     # the final evaluation's reserve: the measured speed, with a small margin
RESERVE_EXTRA_S = 2.0     # ... plus the last saves and the sample
LINE_MAX_S = 60.0         # without a bar, a progress line at least this often (slow steps), besides --log-interval
FIRST_LINE_STEPS = 10     # without a bar, a session's first line after this many steps ...
FIRST_LINE_S = 10.0       # ... or this many seconds, whichever comes first (then every --log-interval)
MAX_RESERVE_SHARE = 0.5   # the reserve never takes more than this share of the time budget


class _Timing:
    """Wall-clock bookkeeping of one session; reporting only (nothing here changes what a step computes).

    Tokens/s, everywhere (bar, log lines, step events, summary): training tokens
    (the targets of the training windows) divided by the wall seconds spent inside
    training steps (forward, backward, clipping, update); evaluations, checkpoints
    and start-up are not counted.
    """

    def __init__(self, config: TrainConfig, final_tokens: int):
        self.budget = 60 * config.max_minutes if config.max_minutes else math.inf
        self.final_tokens = final_tokens    # tokens of the final validation + test evaluations
        self.eval_tps = None                # evaluation tokens/s, measured
        self.eval_tokens = 0                # ... over this many tokens
        self.eval_seconds = 0.0             # ... in this many seconds
        self.step_seconds = 0.0             # this session's seconds inside training steps
        self.step_tokens = 0                # this session's training tokens
        self.event_seconds = 0.0            # step seconds since the last step event
        self.session_steps = 0              # this session's steps applied and kept (a rollback takes one back)
        self.first_step = 0                 # the step the session started from (a resume's checkpoint; train sets it)
        self.last_save = 0.0                # clock() of the latest model.npz
        self.last_eval = 0.0                # clock() of the latest validation (any kind)
        self.timed_rows = None              # rows of the valid stream a timed validation reads
        self.timed = None                   # the latest timed validation: {step, loss, tokens, of_tokens}

    def observe_eval(self, tokens: int, seconds: float) -> None:
        """Learn the evaluation speed from an evaluation of `tokens` tokens that took `seconds`.

        The speed is that of all evaluations so far together (tokens over seconds), so one
        evaluation slowed down by a busy moment moves the reserve (and the bar's time left) little.
        """
        if tokens > 0 and seconds > 0:
            self.eval_tokens += tokens
            self.eval_seconds += seconds
            self.eval_tps = self.eval_tokens / self.eval_seconds

    def needed(self) -> float:
        """Seconds the final evaluation is expected to take at the measured speed (with the margin);
        0 while no speed is measured (_warm_up measures one before training whenever the split allows)."""
        if self.eval_tps is None:
            return 0.0
        return RESERVE_FACTOR * self.final_tokens / self.eval_tps + RESERVE_EXTRA_S

    def reserve(self) -> float:
        """Seconds kept for the final evaluation (0 with no time budget or no measured speed), at
        most MAX_RESERVE_SHARE of the budget: a machine too slow to evaluate in half the budget
        still trains for the other half (and the command overruns; `reserve_capped` says so)."""
        if not math.isfinite(self.budget):
            return 0.0
        return min(self.needed(), MAX_RESERVE_SHARE * self.budget)

    def reserve_capped(self) -> bool:
        return math.isfinite(self.budget) and self.needed() > MAX_RESERVE_SHARE * self.budget

    def left(self, elapsed: float) -> float:
        """Training seconds left before the time budget (minus the reserve) ends training."""
        return self.budget - self.reserve() - elapsed


# Below this many columns the training bar leaves out its bar graphic and puts its figures right after the
# step count: tqdm cuts a line at the terminal's width, which would cut the loss, perplexity and time left.
NARROW_COLUMNS = 100


def terminal_columns() -> int:
    """The width in columns of standard error's terminal, where the bars are drawn: $COLUMNS when set, else
    the terminal's (stdout's, which shutil.get_terminal_size reads, may be a file); when unknown, wide
    enough for the usual bar (NARROW_COLUMNS)."""
    import os
    import sys
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return NARROW_COLUMNS


def train_bar_format(columns: int) -> str:
    """tqdm's bar_format of the training bar for a terminal `columns` wide: the usual one with its bar
    graphic, or for a narrow terminal the figures first and no bar (NARROW_COLUMNS)."""
    if columns < NARROW_COLUMNS:
        return "{desc} {percentage:3.0f}% {n_fmt}/{total_fmt}{postfix}"
    return "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps [{elapsed}{postfix}]"


def _fmt_seconds(sec: float) -> str:
    if not math.isfinite(sec):
        return "?"
    sec = max(int(round(sec)), 0)
    return f"{sec // 3600}:{sec % 3600 // 60:02d}:{sec % 60:02d}" if sec >= 3600 else f"{sec // 60}:{sec % 60:02d}"


def command_time_left(train_left: float, steps_left: int, rate: float, final_s: float) -> tuple[float, bool]:
    """(wall seconds until the command ends, whether the time budget binds): what the bar shows as "left".

    train_left: training seconds left before the time budget ends training
    (_Timing.left: the budget minus the final evaluation's reserve minus the
    elapsed time; inf without a budget); steps_left: windows left before the
    step limit (--max-steps or the last epoch's end); rate: windows per wall
    second so far (nan before the first); final_s: the seconds the final
    validation and test are expected to take (_Timing.needed). Training ends
    at whichever limit comes first, then the final evaluation runs, so the
    time left is that training time plus final_s: with the budget binding it
    is the budget's remaining wall time (budget - elapsed when the reserve is
    not capped), never only the training part, and never tqdm's own
    extrapolation of the step rate.
    """
    by_steps = steps_left / rate if rate == rate and rate > 0 else math.inf
    if train_left < by_steps:
        return max(train_left, 0.0) + final_s, True
    return by_steps + final_s, False


ETA_REFRESH_S = 1.0       # the bar's time left is recomputed at least this often (slow steps)


class _Progress:
    """The training phase as the user sees it: a tqdm bar on a terminal, else a plain line every
    --log-interval steps (as pytorch/examples' word_language_model prints) and at least every
    LINE_MAX_S seconds; the session's first line comes early (FIRST_LINE_STEPS steps or FIRST_LINE_S
    seconds), so that a log shows the run's speed and loss soon after start-up.

    The bar counts steps toward what ends training first: the step limit
    (--max-steps or the end of the last epoch) or the time budget, whose step
    count is estimated from the session's rate; "left" is the time until then
    plus the final evaluation's expected time (command_time_left: with the
    time budget binding, exactly the budget left), recomputed every few steps
    and at least every ETA_REFRESH_S seconds. (_Session, LoopState, StepResult: train.py's.)
    """

    def __init__(self, s: "_Session", loop: "LoopState", timing: _Timing):
        import sys

        from tqdm import tqdm
        c = s.config
        self.s, self.timing = s, timing
        self.skip_notes = 0     # skipped steps reported so far in this session (train._nonfinite names the first)
        self.tty = bool(c.progress) and stderr_is_terminal()
        wpe = s.windows_per_epoch
        to_end = max(c.epochs - loop.epoch, 0) * wpe + max(wpe - loop.window, 0) if loop.epoch <= c.epochs else 0
        self.step_limit = loop.step + to_end
        if c.max_steps:
            self.step_limit = min(self.step_limit, c.max_steps)
        self.start_step, self.start_clock = loop.step, s.clock()
        self.eta_t = time.perf_counter()     # when the bar's time left was last computed
        self.lines = 0                       # plain lines printed this session
        self._interval()
        # with a time budget and no --max-steps, the last step is unknown until the first steps give a rate
        # (the epochs' step count is rarely reached): "n/?" until then
        total = None if math.isfinite(timing.budget) and not c.max_steps else max(self.step_limit, 1)
        self.bar = tqdm(total=total, initial=loop.step, desc="train", unit="step",
                        disable=not self.tty, leave=False, file=sys.stderr, dynamic_ncols=True,
                        bar_format=train_bar_format(terminal_columns()))

    def _interval(self):
        self.i_loss, self.i_steps, self.i_clipped, self.i_tokens, self.i_seconds = 0.0, 0, 0, 0, 0.0
        self.i_skipped = 0          # windows skipped (--on-nonfinite skip): no loss, but time and tokens
        self.i_t0 = time.perf_counter()
        self.i_norm = 0.0           # the sum of the applied steps' gradient norms (the lines' |g| is their mean)
        self.i_norm_max = 0.0       # the largest of them: one exploding step in a mean of 200 would not show
        self.last_norm = None       # the latest applied step's (the bar's |g|: what the gradient is now)

    def eta(self, loop: "LoopState") -> tuple[float, str, int]:
        """(seconds until the command ends, final evaluation included (command_time_left); what binds:
        "time budget" | "max-steps" | "epochs"; estimated final step)."""
        done = loop.step - self.start_step
        wall = self.s.clock() - self.start_clock
        rate = done / wall if done > 0 and wall > 0 else math.nan     # steps/s, evaluations included
        time_left = self.timing.left(self.s.clock())
        left, budget = command_time_left(time_left, self.step_limit - loop.step, rate, self.timing.needed())
        if budget:
            final = loop.step + (int(time_left * rate) if rate == rate else 0)
            return left, "time budget", min(max(final, loop.step), self.step_limit)
        what = "max-steps" if self.s.config.max_steps and self.step_limit == self.s.config.max_steps else "epochs"
        return left, what, self.step_limit

    def step(self, loop: "LoopState", result: "StepResult", seconds: float) -> None:
        """Count one window (applied or skipped) that took `seconds` inside train_step."""
        self.i_tokens += result.tokens
        self.i_seconds += seconds
        if result.bad is None:
            self.i_loss += result.loss
            self.i_steps += 1
            self.i_clipped += bool(result.clipped)
            self.i_norm += result.grad_norm
            self.i_norm_max = max(self.i_norm_max, result.grad_norm)
            self.last_norm = result.grad_norm
        else:
            self.i_skipped += 1
        if self.tty:
            now = time.perf_counter()
            if (loop.step % max(1, min(self.s.config.log_every, 10)) == 0 or loop.step == self.start_step + 1
                    or now - self.eta_t >= ETA_REFRESH_S):
                self.eta_t = now
                left, what, final = self.eta(loop)
                self.bar.total = max(final, loop.step)
                self.bar.set_postfix_str(self._figures() + f" | left {_fmt_seconds(left)} ({what})", refresh=False)
            if self.bar.total is not None and self.bar.n + 1 > self.bar.total:
                # between two estimates, steps past the estimated last one: tqdm would show "n/?" at 0%
                self.bar.total = self.bar.n + 1
            self.bar.update(1)
            if loop.step % self.s.config.log_interval == 0:
                self._interval()
        else:
            waited = time.perf_counter() - self.i_t0
            first = self.lines == 0 and (loop.step - self.start_step >= FIRST_LINE_STEPS or waited >= FIRST_LINE_S)
            if loop.step % self.s.config.log_interval == 0 or waited >= LINE_MAX_S or first:
                self.line(loop)

    def _averages(self, decimals: int) -> tuple[str, str, str, str]:
        """(loss, perplexity, |g|, clipped %) of the applied steps since the last figures, as text; "-" for
        each when every window of the interval was skipped (no loss to average: 0.00 and ppl 1.00 read as
        a perfect model). |g|: the mean gradient norm, and "(max M)" after it when the largest is over twice
        the mean (an explosion the mean would smooth away: 1,784 then 199 steps near 3 average 12)."""
        from .runs import fmt_ppl
        if not self.i_steps:
            return "-", "-", "-", "-"
        avg = self.i_loss / self.i_steps
        return (f"{avg:.{decimals}f}", fmt_ppl(_ppl(avg)), _norm_text(self.i_norm / self.i_steps, self.i_norm_max),
                f"{100 * self.i_clipped / self.i_steps:.0f}%")

    def _skipped(self) -> str:
        return f" | skipped {self.i_skipped:,}" if self.i_skipped else ""

    def _figures(self) -> str:
        """The bar's figures: loss, ppl and clip share averaged over the interval; |g| the latest applied
        step's (the gradient as it is now; the lines' "(max M)" would outlive the spike on a bar that shows
        no interval, and push the time left off a 120-column terminal)."""
        loss, ppl, _, clip = self._averages(3)
        norm = "-" if self.last_norm is None or not self.i_steps else f"{self.last_norm:.3g}"
        tps = self.i_tokens / self.i_seconds if self.i_seconds > 0 else 0.0
        return f"loss {loss} ppl {ppl} |g| {norm} clip {clip} {tps:,.0f} tok/s{self._skipped()}"

    def line(self, loop: "LoopState") -> None:
        """The plain progress line (pytorch/examples' format, with this trainer's figures)."""
        import sys

        loss, ppl, norm, clip = self._averages(2)
        # per window processed, skipped ones included (they take their forward pass's time), inside the
        # training steps as tok/s: a validation, a checkpoint save within the interval are not a batch's time
        ms = 1000 * self.i_seconds / max(self.i_steps + self.i_skipped, 1)
        tps = self.i_tokens / self.i_seconds if self.i_seconds > 0 else 0.0
        left, what, _ = self.eta(loop)
        print(f"| epoch {loop.epoch:3d} | {loop.window:5d}/{self.s.windows_per_epoch:5d} batches | "
              f"step {loop.step:6d} | lr {self.s.opt.lr:.4g} | ms/batch {ms:7.1f} | loss {loss:>5s} | "
              f"ppl {ppl:>8s} | |g| {norm} | clipped {clip:>4s} | "
              f"{tps:,.0f} tok/s | left {_fmt_seconds(left)} ({what}){self._skipped()}", file=sys.stderr, flush=True)
        self.lines += 1
        self._interval()

    def write(self, text: str) -> None:
        import sys

        from tqdm import tqdm
        tqdm.write(text, file=sys.stderr)

    def close(self):
        self.bar.close()


def _norm_text(norm: float, largest: float) -> str:
    """A gradient norm as the progress shows it: "0.201", or "3.9 (max 1.78e+03)" when the interval's
    largest is over twice it (nan or inf print as such: a non-finite step is the guard's to report)."""
    return f"{norm:.3g}" + (f" (max {largest:.3g})" if largest > 2 * norm else "")


def note(text: str) -> None:
    """One line on stderr, above the bar if one is showing."""
    import sys

    from tqdm import tqdm
    tqdm.write(text, file=sys.stderr)


def phase(config: TrainConfig, text: str) -> None:
    """One plain line on stderr at the start of a phase that shows no bar in a log, so that a log is
    not silent for half a minute and looks hung: in place of the bars a run wants (config.progress) but
    cannot draw (stderr is not a terminal). Nothing on a terminal, nor with --no-progress."""
    import sys
    if config.progress and not stderr_is_terminal():
        print(text, file=sys.stderr, flush=True)
