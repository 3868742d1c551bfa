"""Finite-difference check of every gradient of the model; the `gradcheck` command.

Builds a tiny float64 model (V=11, E=H=5, T=4, B=3 by default) with a random
non-zero initial state and, with dropout, one fixed set of masks; compares
every analytic gradient (all parameters and the initial state dh0, dc0) with
a five-point central difference

    n = [8 (f(x+e) - f(x-e)) - (f(x+2e) - f(x-2e))] / (12 e),   e = 1e-3,

whose truncation error is O(e^4), so what remains is float64 roundoff: the
difference's resolution r = 32 * 2.2e-16 * max(|loss|, 1) / e (~1.7e-11 at the
defaults; |a - n| measured at most 1.5 * 2.2e-16 * |loss| / e in every array of
an 8-layer LSTM). Every parameter is redrawn uniform ±0.5 (larger than the
training inits) so that gradients stand well above it. The error of one entry
is |a - n| / max(|a| + |n|, 1e-3 * the tensor's largest, r / TOLERANCE, 1e-10)
(see rel_error): an entry whose difference from the analytic value is within
the resolution passes, so that a gradient smaller than the difference can
resolve (the lowest layers of a deep stack, where it vanishes: ~1e-9 in an
8-layer LSTM) is not a FAIL; a tensor's error is the max over its entries. A
tensor whose largest gradient is under 100 r (RESOLVED; ~1e-13 at the bottom of
a 16-layer LSTM) is reported as not checked, never as ok: a zeroed or
sign-flipped gradient there would be within the resolution too.

Tensors with at most `max_entries` (200) entries are checked entry by entry
(all of them, for the default tiny sizes); larger ones on a random subset of
that many entries, drawn from the seed.

The one thing to know before editing: relu has kinks; a perturbation window
that crosses one would give a large error that is not a bug, so an entry
whose e and 2e central differences disagree is redone with e/10 (twice at
most). The default seed is checked in the tests for every cell and activation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import config as C
from .errors import UserError

TOLERANCE = 1e-6
TINY = 1e-10
FLOOR = 1e-3


@dataclass
class GradcheckReport:
    label: str                                   # what was checked, e.g. "lstm layers=2 tied"
    errors: dict = field(default_factory=dict)   # tensor name -> max relative error
    checked: dict = field(default_factory=dict)  # tensor name -> (entries checked, entries total)
    # tensor name -> its largest |gradient|, for a tensor too small for the difference to check (RESOLVED)
    unresolved: dict = field(default_factory=dict)
    resolution: float = 0.0                      # the finite difference's resolution (absolute, per entry)
    # why a gradient can be that small in this model, and what checks it (the line under the unresolved ones)
    small_because: str = ("a deep stack's lowest layers, where the gradient vanishes; fewer layers check them")

    @property
    def max_error(self) -> float:
        """The largest error over the tensors checked (the unresolved ones are not)."""
        return max((e for k, e in self.errors.items() if k not in self.unresolved), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_error <= TOLERANCE

    def lines(self) -> list[str]:
        """The report as the gradcheck command prints it: a line per array checked, then the overall one."""
        out = [f"gradcheck {self.label}"]
        for name, err in self.errors.items():
            k, n = self.checked[name]
            if name in self.unresolved:
                out.append(f"  {name:24s} {'-':>9s}  ({k}/{n} entries)  not checked: its largest gradient "
                           f"{self.unresolved[name]:.1e} is under {RESOLVED} x the resolution {self.resolution:.1e}")
                continue
            flag = "ok" if err <= TOLERANCE else "FAIL"
            out.append(f"  {name:24s} {err:9.2e}  ({k}/{n} entries)  {flag}")
        out.append(f"  overall max relative error {self.max_error:.2e} "
                   f"({'PASS' if self.ok else 'FAIL'}, tolerance {TOLERANCE:g})")
        if self.unresolved:
            n = len(self.unresolved)
            which = "1 array not checked: its gradient is" if n == 1 else \
                f"{n} arrays not checked: their gradients are"
            out.append(f"  {which} too small for a finite difference ({self.small_because})")
        return out


def rel_error(a, n, floor: float = TINY):
    """Robust elementwise relative error |a - n| / max(|a| + |n|, floor, FLOOR * largest |a| or |n|).

    An entry a thousand times smaller than its tensor's largest (say 4e-9 among 1e-3s, where the finite
    difference's ~1e-13 roundoff is already 1e-5 of it) is judged against that scale instead of its own
    size. floor (default TINY): the least denominator; gradcheck gives its difference's resolution over
    TOLERANCE, so that an error within that resolution passes.
    """
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0))
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), max(TINY, floor, FLOOR * scale))


# the finite difference's roundoff, in units of float64's epsilon times |loss| / eps (measured: at most 1.5,
# in every array of an 8-layer LSTM, whose lowest layers' gradients are ~1e-9)
ROUNDOFF = 32
# an array is checked only where its largest gradient is at least RESOLVED times the resolution: then a wrong
# gradient that differs from the right one by a hundredth of its scale still fails; below it (a 16-layer
# LSTM's lowest layers, ~1e-13) a zeroed or sign-flipped gradient would pass, so the array is reported as
# not checked instead of ok
RESOLVED = 100


# the largest eps and weight_scale whose check a correct gradient passes (every cell and activation at the
# default sizes and the other at its default, measured: the largest error 1.7e-7 at eps 0.01, 1.9e-7 at
# weight_scale 5), and why
# the smallest eps likewise (measured: 2.3e-7 at 1e-4; an LSTM's 3.8e-6 at 1e-5 fails)
SMALLEST_EPS = 1e-4
_LARGEST = {"eps": (0.01, "a larger finite-difference step measures the curvature along with the derivative"),
            "weight_scale": (5, "larger weights saturate the gates and activations, where the finite differences "
                                "lose the digits the check compares")}


def gradcheck(cell="rnn", activation="tanh", layers=1, tied=False, dropout=0.0, seed=0,
              vocab_size=11, emsize=5, hidden=5, T=4, B=3, eps=1e-3, max_entries=200,
              weight_scale=0.5, progress=False) -> GradcheckReport:
    """Check all gradients of a tiny float64 model against central finite differences; returns a
    GradcheckReport (relative error per array, PASS at <= TOLERANCE).

    Every parameter is redrawn uniform in [-weight_scale, weight_scale]; T steps of B streams of random ids
    of vocab_size words, a random initial state (whose gradient is checked too, as h0 and c0) and, with
    dropout, one fixed mask. Up to max_entries entries per array are checked, each by a five-point
    central difference of step eps (shrunk where a relu kink lies within 2 eps). Errors: ValueError or
    TypeError for eps not a number in [1e-4, 0.01], weight_scale not one in (0, 5] (beyond them a correct
    gradient fails the check), vocab_size < 2 (one word leaves nothing to predict: every gradient is zero),
    max_entries, T or B out of range; the model's own errors for its settings (ModelConfig).
    progress: a bar on stderr counting the derivatives toward all of them (on a terminal only; a deep
    stack takes minutes: each derivative runs the whole model four times).
    """
    from .argcheck import check_int, is_real
    from .model import ModelConfig, RNNModel

    for name, value in (("eps", eps), ("weight_scale", weight_scale)):
        if not is_real(value):
            raise TypeError(f"gradcheck: {name} must be a number, got {value!r} ({type(value).__name__})")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"gradcheck: {name} must be a finite number > 0, got {value!r}")
        if value > _LARGEST[name][0]:      # (then a correct gradient fails: a check that cannot be read)
            raise ValueError(f"gradcheck: {name} must be at most {_LARGEST[name][0]:g}, got {value!r}; "
                             f"{_LARGEST[name][1]}")
    if eps < SMALLEST_EPS:
        raise ValueError(f"gradcheck: eps must be at least {SMALLEST_EPS:g}, got {eps!r}; a smaller step leaves "
                         "the difference of two losses to roundoff, which the check would compare")
    check_int(vocab_size, "vocab_size", "gradcheck", lo=2)
    check_int(max_entries, "max_entries", "gradcheck", lo=1)
    for name, value in (("T", T), ("B", B)):
        check_int(value, name, "gradcheck", lo=1)

    if tied:
        emsize = hidden
    cfg = ModelConfig(vocab_size=vocab_size, cell=cell, activation=activation, emsize=emsize,
                      hidden=hidden, layers=layers, dropout=dropout, tied=tied,
                      dtype="float64")
    model = RNNModel(cfg, seed=seed)
    rng = np.random.default_rng(seed + 1)
    # Redraw every parameter larger than any training init: gradients then sit
    # well above the ~1e-13 roundoff floor of the finite differences, and the
    # nonlinearities are exercised away from their linear region.
    for p in model.params.values():
        p[...] = rng.uniform(-weight_scale, weight_scale, p.shape)
    inputs = rng.integers(0, vocab_size, (T, B))
    targets = rng.integers(0, vocab_size, (T, B))
    state = tuple(0.5 * rng.standard_normal((layers, B, hidden)) for _ in range(model.n_state))
    masks = model.draw_masks(T, B, rng)
    r = model.bptt(inputs, targets, state, masks=masks)

    targets_to_check = [(name, model.params[name], r.grads[name]) for name in model.params]
    for k, name in enumerate(("h0", "c0")[:model.n_state]):
        targets_to_check.append((name, state[k], r.dstate0[k]))

    def f():
        return model.loss(inputs, targets, state, masks=masks)[0]

    label = f"{cell}" + (f" activation={model.act.name}" if cell == "rnn" else "")
    label += f" layers={layers}" + (" tied" if tied else "") + (f" dropout={dropout} (fixed mask)" if dropout else "")
    resolution = ROUNDOFF * np.finfo(np.float64).eps * max(abs(float(f())), 1.0) / eps
    report = GradcheckReport(label, resolution=resolution, small_because=_small_because(layers, dropout))
    bar = _bar(label, sum(min(x.size, max_entries) for _, x, _ in targets_to_check), progress)
    for name, x, analytic in targets_to_check:
        flat, aflat = x.reshape(-1), analytic.reshape(-1)
        if flat.size <= max_entries:
            idx = np.arange(flat.size)
        else:
            idx = np.sort(rng.choice(flat.size, max_entries, replace=False))
        numeric = np.empty(idx.size)
        bar.set_postfix_str(name, refresh=False)
        for k, i in enumerate(idx):
            numeric[k] = _derivative(f, flat, i, eps)
            bar.update()
        report.errors[name] = float(rel_error(aflat[idx], numeric, resolution / TOLERANCE).max())
        report.checked[name] = (int(idx.size), int(flat.size))
        scale = max(np.abs(aflat[idx]).max(initial=0.0), np.abs(numeric).max(initial=0.0))
        if scale < RESOLVED * resolution:
            report.unresolved[name] = float(scale)
    bar.close()
    return report


def _small_because(layers: int, dropout: float) -> str:
    """Why a model of these settings can have gradients too small to check, and what checks them: a deep
    stack's lowest layers (vanishing), or a dropout mask that drops (nearly) every unit it masks."""
    deep = "a deep stack's lowest layers, where the gradient vanishes"
    if not dropout:
        return f"{deep}; fewer layers check them"
    masked = f"the units that the mask of --dropout {dropout:g} drops, whose gradient is zero"
    if layers > 1:
        return f"{deep}, or {masked}; fewer layers or a lower --dropout check them"
    return f"{masked}; a lower --dropout checks them"


def _bar(label: str, total: int, show: bool):
    """gradcheck's bar: derivatives checked of `total`, the array being checked as its postfix; drawn on a
    terminal's stderr only (the command prints each check's lines as it finishes)."""
    import sys

    from tqdm import tqdm

    from .runs import stderr_is_terminal
    return tqdm(total=total, desc=f"gradcheck {label}", unit="derivative", leave=False, file=sys.stderr,
                disable=not (show and stderr_is_terminal()), dynamic_ncols=True)


def _derivative(f, flat, i, eps, retries=2):
    """Five-point central difference of f in flat[i]; shrinks eps if the window holds a kink.

    A kink (relu) between x-2e and x+2e makes the e and 2e central differences
    disagree at O(1); for smooth functions they differ only by f3 e^2 / 2.
    """
    x0 = flat[i]
    vals = []
    for step in (eps, -eps, 2 * eps, -2 * eps):
        flat[i] = x0 + step
        vals.append(f())
    flat[i] = x0
    c1 = (vals[0] - vals[1]) / (2 * eps)
    c2 = (vals[2] - vals[3]) / (4 * eps)
    if retries > 0 and abs(c2 - c1) > 1e-3 * (abs(c1) + abs(c2)) + 1e-9:
        return _derivative(f, flat, i, eps / 10, retries - 1)
    return (8 * (vals[0] - vals[1]) - (vals[2] - vals[3])) / (12 * eps)


ACTIVATIONS = C.ACTIVATION_EXAMPLES     # one spec of every activation kind and form


def check_all(*, cell: str, activation: str, layers: int, tied: bool, dropout: float, seed: int,
              progress: bool = False):
    """The `gradcheck` command: yield one GradcheckReport per (cell, activation) as it finishes.

    cell: rnn, lstm, gru or "all"; activation: an rnn activation or "all" (ACTIVATIONS).
    Settings are checked before anything runs (UserError). progress: a bar per check (gradcheck's).
    """
    from .config import parse_activation

    if str(activation).strip().lower() in ("all", "tanh"):     # as parse_activation reads names: any case
        activation = str(activation).strip().lower()
    if activation != "all":
        try:
            parse_activation(activation)
        except UserError as exc:        # this command also takes 'all': its list of names says so
            if not str(exc).startswith("unknown activation"):
                raise
            raise type(exc)(f"{exc}, or all (one of each kind)") from None
    if cell in ("lstm", "gru") and activation != "tanh":
        raise UserError(f"--activation is for --cell rnn (or all); the {cell}'s gates use fixed sigmoid and tanh")
    if layers < 1:
        raise UserError("--layers must be at least 1")
    if not 0.0 <= dropout < 1.0:
        raise UserError("--dropout must be in [0, 1)")
    return _check_all(cell, activation, layers, tied, dropout, seed, progress)


def _check_all(cell, activation, layers, tied, dropout, seed, progress):
    for c in (("rnn", "lstm", "gru") if cell == "all" else (cell,)):
        acts = (activation,) if c == "rnn" else ("tanh",)
        if c == "rnn" and activation == "all":
            acts = ACTIVATIONS
        for act in acts:
            yield gradcheck(cell=c, activation=act, layers=layers, tied=tied, dropout=dropout, seed=seed,
                            progress=progress)


def format_overall(worst: float, unchecked: int = 0, arrays: int | None = None) -> str:
    """The command's last line: the largest relative error of every check, and PASS or FAIL (TOLERANCE), and
    how many arrays were too small to check (GradcheckReport.unresolved), if any, of how many (`arrays`,
    when given: a PASS on one array of eight is said to be one)."""
    line = f"gradcheck overall: max relative error {worst:.2e} -> {'PASS' if worst <= TOLERANCE else 'FAIL'}"
    if not unchecked:
        return line
    if arrays is not None:
        return line + (f" on the {arrays - unchecked} of {arrays} arrays checked ({unchecked} not checked: too "
                       "small for a finite difference)")
    return line + (f" ({unchecked} {'array' if unchecked == 1 else 'arrays'} not checked: too small for a "
                   "finite difference)")
