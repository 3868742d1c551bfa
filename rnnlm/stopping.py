"""Why and how a training run stops: the stop reasons, the signal handlers, the exit status.

`stop_reason` is asked before every window (and after every epoch end) and
names the first limit reached (STOP_REASONS); `Interrupt` turns Ctrl-C and
SIGTERM during training into a request that the loop honours at the next
step boundary; `StartUp` answers them at once before the first step;
`exit_status` gives the `train` command's exit status (0, 130, 143).

The one thing to know before editing: a first signal during training only
sets a flag (the loop stops at the next step boundary and saves, so a
checkpoint never holds a half-applied update); only a second signal (a
second or more after the first: REPEAT_S), or one during start-up or the
final evaluation, raises at once, and even that waits for a checkpoint being
written (`saving`, around every save) to be complete. Once a stop is raised,
the handlers ignore further signals (errors.STOPS): the process is ending.
A handler must not import anything: it may run in the middle of an import.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import TYPE_CHECKING

from .config import TrainConfig
from .errors import STOPS, stop_exception
from .progress import note

if TYPE_CHECKING:
    from .loopstate import LoopState

# A second Ctrl-C or SIGTERM this many seconds after the first or later stops a run at once; an earlier
# one is the same request repeated (Interrupt).
REPEAT_S = 1.0
STOP_REASONS = ("epochs", "max_steps", "max_minutes", "early_stop", "min_lr", "nonfinite", "interrupted")


def stop_reason(config: TrainConfig, loop: LoopState, *, diverged: bool, interrupted: bool,
                elapsed: float, reserve: float = 0.0, lr: float | None = None) -> str | None:
    """Why the run stops before its next window (one of STOP_REASONS), or None to go on.

    diverged: the last window was non-finite and --on-nonfinite (or broken
    parameters, or --max-skips) said stop. elapsed: wall seconds of the run so
    far; reserve: seconds kept for the final evaluation, so that the whole
    command ends within --max-minutes. lr: the optimizer's learning rate now
    (saved with the optimizer, so a resume sees the same one): "min_lr" when
    annealing took it below config.lr_floor() (--min-lr), as Keras'
    ReduceLROnPlateau's min_lr and Mikolov's RNNLM toolkit (stop once
    annealing no longer helps) do. Checked in this order, before every window
    and after every epoch end.
    """
    if diverged:
        return "nonfinite"
    if interrupted:
        return "interrupted"
    if loop.epoch > config.epochs:
        return "epochs"
    if config.max_steps and loop.step >= config.max_steps:
        return "max_steps"
    if config.max_minutes and elapsed + reserve >= 60 * config.max_minutes:
        return "max_minutes"
    if config.patience and loop.bad_evals >= config.patience:
        return "early_stop"
    if lr is not None and lr < config.lr_floor():
        return "min_lr"
    return None


class Interrupt:
    """SIGINT/SIGTERM handler: the first signal asks the loop to stop at the next step
    boundary (and save) and is remembered in `signum` (the exit status: `exit_status`);
    a second one raises KeyboardInterrupt at once (errors.Terminated for SIGTERM; nothing
    more is saved; the previous checkpoint stays intact). at_once: the first signal
    raises already (the final evaluation: nothing there is left half-done, the training
    state is saved before it). A signal ignored when the context is entered (SIG_IGN:
    SIGINT of a job a shell started in the background) is left ignored.

    A second signal within REPEAT_S of the first is the same request (a Ctrl-C
    pressed twice or thrice in a row), not one to stop at once: a step ends in
    milliseconds, and stopping at once then threw away every step since the last
    checkpoint. Two more exceptions to "at once": a checkpoint being written (`saving`) is finished
    first, and the signal is raised as soon as it is complete; once the run has
    stopped and only saves and logs that (`finishing`), or once a stop was raised
    (errors.STOPS), later signals are ignored: the process is ending."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, at_once: bool = False):
        self.requested = False
        self.at_once = at_once
        self.signum = None      # the first signal that asked to stop (signal.SIGINT or SIGTERM)
        self.previous = {}
        self.during = None      # "validation" while the loop runs one: a stop then waits seconds, so say so
        self.saved_step = None  # the step of the run's latest checkpoint (None: none yet)
        self.requested_at = 0.0  # time.monotonic() of the first signal
        self.holding = 0        # > 0 while a checkpoint is written (`saving`): a stop waits for its end
        self.pending = None     # the signal that came while holding, raised once the file is complete
        self.finishing = False  # the loop stopped and saves its last state: further signals are ignored
        self.active = False     # this handler is installed (and on _ACTIVE)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            STOPS.raised = False    # entered only before a stop (a stop unwinds): this phase answers signals
            for sig in self.SIGNALS:
                # A signal the parent set to be ignored stays ignored: a shell starts `cmd &` with SIGINT
                # ignored (and nohup SIGHUP), so that a Ctrl-C at the prompt does not reach the background job.
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue
                self.previous[sig] = signal.signal(sig, self._handle)
            _ACTIVE.append(self)
            self.active = True
        return self

    def _handle(self, signum, frame):
        STOPS.signalled = True
        if STOPS.raised or self.finishing:      # the process is ending already: nothing more to stop
            return
        if self.requested and time.monotonic() - self.requested_at < REPEAT_S:
            return      # the same request again (a key pressed twice): the step boundary is near
        if self.requested or self.at_once:
            if self.holding:        # a checkpoint is being written: finish it, then stop (`saving`)
                self.pending = self.pending or signum
                return
            self._raise(signum)
        self.signum = signum
        self.requested = True
        self.requested_at = time.monotonic()
        if self.during:         # the step boundary is as far away as the rest of the validation
            kept = ("nothing is saved yet" if self.saved_step is None
                    else f"the checkpoint of step {self.saved_step} is kept")
            note(f"{SIGNAL_WORDS.get(signum, 'interrupted')}: stopping when this {self.during} ends, then saving "
                  f"the checkpoint; the same signal again, a second or more from now, stops at once ({kept})")

    def _raise(self, signum):
        """Raise the stop now (a second signal, or any in an at-once phase); later signals are ignored."""
        exc = signal_error(signum)
        if self.requested:      # the second signal: say what is kept (the CLI prints exc.line)
            kept = ("nothing was saved yet" if self.saved_step is None
                    else f"the checkpoint of step {self.saved_step} is kept, and --resume continues from it")
            exc.line = f"{SIGNAL_WORDS.get(signum, 'interrupted')} again: stopped at once, without saving ({kept})"
        raise exc

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        if self.active:
            _ACTIVE.remove(self)
            self.active = False
        return False


# The handlers in place (Interrupt and StartUp contexts of the main thread), innermost last: `saving` holds
# the innermost one's at-once stops while a checkpoint is written.
_ACTIVE: list[Interrupt] = []


@contextlib.contextmanager
def saving(step: int | None = None):
    """While a checkpoint of `step` is written: a signal that would stop at once (a second Ctrl-C, any in
    the start-up or the final evaluation) waits until the file is complete, then raises, so that a stop
    never throws away a save already begun (the file is atomic, but a stop half-way kept only the
    previous checkpoint: a run stopped a few ms after its first Ctrl-C resumed from step 0). The file
    being complete, it is the step the stop's line says is kept (step: model.npz's; None for a file a
    resume does not start from, best.npz). Outside a handler's context: nothing."""
    guard = _ACTIVE[-1] if _ACTIVE else None
    if guard is None:
        yield
        return
    guard.holding += 1
    # the validation before a save is over: a first signal now is not said to wait for it ("stopping when
    # this validation ends ... the checkpoint of step N is kept" named the step this save replaces)
    during, guard.during = guard.during, None
    try:
        yield
    finally:
        guard.holding -= 1
        guard.during = during
    if step is not None:
        guard.saved_step = step
    if guard.pending is not None and not guard.holding and not guard.finishing:
        signum, guard.pending = guard.pending, None
        guard._raise(signum)


SIGNAL_WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}


class StartUp(Interrupt):
    """SIGINT/SIGTERM from train()'s first line to the loop's first step (reading the corpus, compiling,
    the baseline, the calibration): raised at once (KeyboardInterrupt, errors.Terminated for SIGTERM)
    and remembered in `signum`, so that train() can say so in one line, remove what the run wrote and
    exit 128 + the signal, as a signal during training does. Without it SIGTERM's default action ended
    the process silently, leaving a folder that held only the lock. The handler stays installed until
    train() returns, under the loop's and the final evaluation's own (Interrupt), so that no moment is
    left to the default action; `end()`, called once the loop's handler is in place, marks start-up
    over: a signal between those phases still raises at once but is not recorded (and is ignored once
    the loop took one: the run is returning its summary). A KeyboardInterrupt
    that no start-up signal raised (signum None) is not this guard's."""

    def __init__(self):
        super().__init__(at_once=True)
        self.over = False       # the loop has started: what comes later is not start-up
        self.run = None         # the Run the start-up opened (closed before its files are removed)
        self.created = False    # a new run's files (config.json, vocab.json, ...) were written by this call

    def __enter__(self):
        STOPS.signalled = False     # a training begins (train() may be called again in one process)
        return super().__enter__()

    def _handle(self, signum, frame):
        # a stop was raised (the start-up is being undone), or the loop took a signal and the run is
        # returning its summary: the process is ending, and a further signal is ignored
        ending = STOPS.raised or self.over and STOPS.signalled
        STOPS.signalled = True
        if ending:
            return
        if not self.over:
            self.signum = signum
        if self.holding:        # the step-0 checkpoint is being written: finish it, then stop (`saving`)
            self.pending = self.pending or signum
            return
        raise signal_error(signum)

    @contextlib.contextmanager
    def between_kernels(self):
        """While the start-up compiles Numba kernels: a start-up signal whose exception was lost (raised
        inside a ctypes callback of Numba's cache, see `end`) stops the start-up as the next kernel begins
        to compile (a "numba:compile" event), not only once all of them are compiled (a minute and more
        with a cold cache, in which Ctrl-C seemed ignored)."""
        from numba.core import event
        guard = self

        class _Stop(event.Listener):
            def on_start(self, ev):
                if guard.signum is not None and not guard.over:
                    raise signal_error(guard.signum)

            def on_end(self, ev):
                pass
        with event.install_listener("numba:compile", _Stop()):
            yield

    def end(self) -> None:
        """Start-up is over (the loop's handler answers signals from here on). A start-up signal whose
        exception was lost (raised inside a ctypes callback of Numba's cache, which only prints it) stops
        the run here, before its first step."""
        self.over = True
        if self.signum is not None:
            raise signal_error(self.signum)


def signal_error(signum) -> KeyboardInterrupt:
    """The exception a stopping signal raises: KeyboardInterrupt for SIGINT, errors.Terminated (a
    KeyboardInterrupt the CLI exits 143 for) for SIGTERM (no import: it may be raised during one). Made
    only to be raised: from here on the handlers ignore further signals (errors.STOPS), as the process
    unwinds to its one line and exit."""
    return stop_exception(signum)


def stop_word(summary: dict) -> str:
    """How the summary names the reason a run stopped: its `stopped`, except a run stopped by SIGTERM
    (`kill PID`, a job scheduler), which was "terminated (SIGTERM)", not interrupted (Ctrl-C)."""
    if summary.get("stopped") == "interrupted" and summary.get("signal") == "SIGTERM":
        return "terminated (SIGTERM)"
    return summary.get("stopped")


def exit_status(summary: dict) -> int:
    """The `train` command's exit status for train()'s summary: 0, or for a run stopped by a signal the
    shell's 128 + its number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM (`kill PID`, a job scheduler)."""
    if summary.get("stopped") != "interrupted":
        return 0
    return 128 + int(getattr(signal, summary.get("signal") or "SIGINT"))
