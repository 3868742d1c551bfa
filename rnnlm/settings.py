"""How a setting is declared and checked: the machinery behind config.py's dataclasses.

Dict round trips (`default`, the refusal of unknown keys, `check_types`, `kind_of`), the numeric
ranges of every option of every command (`RANGES`, `Range`, `check_range`, `check_fields`,
`check_bools`, `integral_counts`, `check_field_types`), the flag that sets a field (`flag`) and
`documented`, which appends each field's comment to its class's docstring. Standard library only
(check_bools imports NumPy when it runs), so the CLI can check its flags without loading NumPy.

    check_range("hidden", 0)                  # UserError "--hidden must be at least 1, got 0"
    check_fields(cfg)                         # every field of a config that has an entry in RANGES
    flag("max_steps")                         # "--max-steps"
    default(TrainConfig, "bptt")              # 35, the default --help shows

The one thing to know before editing: a range is written once, in RANGES, under the name of the
flag's dest (which is also the config field's name): the CLI checks each parsed flag with it
(cli.main), the configs' validate() and the library entry points check their fields with the same
entries, and a new numeric flag without an entry fails tests/test_validation.py. The settings
themselves (defaults, option lists, the classes) are config.py's.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

from .errors import UserError

# ---------------------------------------------------------------- dict round trips


def default(cls, name: str):
    """The default of field `name` of dataclass `cls` (the CLI's --help reads it here)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.default_factory() if f.default is dataclasses.MISSING else f.default
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def _refuse_unknown(cls, d, what: str) -> None:
    if not isinstance(d, dict):
        raise UserError(f"{what}: expected a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise UserError(f"{what} this rnnlm does not know: {', '.join(unknown)}")
    check_types(cls, d, suffix=" (a hand-edited or damaged config.json?)")


def check_types(cls, d: dict, error=UserError, prefix: str = "setting ", suffix: str = "") -> None:
    """error "setting 'hidden' must be an integer, got '64' (a string)" for the first value of `d` (JSON
    values: a config.json, a sweep grid point) whose type does not fit its field of dataclass `cls`
    (`_has_type`); the type is checked before any range, so the message names what is wrong."""
    for f in dataclasses.fields(cls):
        if f.name in d and not _has_type(d[f.name], f.type):
            base = f.type.removesuffix(" | None")
            want = _TYPE_WORDS.get(base, base) + (" or null" if f.type.endswith(" | None") else "")
            raise error(f"{prefix}'{f.name}' must be {want}, got {d[f.name]!r} ({kind_of(d[f.name])}){suffix}")


_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}
_TYPE_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string"}


def kind_of(value) -> str:
    """What a value is, in words: 'a string', 'an integer', 'a number', 'true or false', 'a list', ..."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return {str: "a string", list: "a list", tuple: "a tuple", dict: "a dict", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}")


def _has_type(value, annotation: str) -> bool:
    """Whether a JSON value fits a field annotated `annotation` (a string: bool, int, float, str,
    each optionally '| None'); nested configs and anything else are checked by their own reader."""
    base, optional = annotation.removesuffix(" | None"), annotation.endswith(" | None")
    if value is None:
        return optional or base not in _TYPES
    if base not in _TYPES:
        return True
    if isinstance(value, bool) and base != "bool":
        return False
    return isinstance(value, _TYPES[base])


# ---------------------------------------------------------------- numeric ranges

INT_MAX = 2**31 - 1       # the largest count any option takes (a larger one is a typo, not a plan)
SEED_MAX = 2**32 - 1      # seeds: what every NumPy and Numba generator accepts


class Range(NamedTuple):
    """The accepted values of one numeric setting (a flag's dest or a config field of that name)."""

    kind: type                # int | float
    lo: float = -math.inf     # smallest accepted value
    hi: float = math.inf      # largest accepted value
    lo_open: bool = False     # lo itself refused
    hi_open: bool = False     # hi itself refused
    note: str = ""            # appended to the message, e.g. "(0 = off)"
    text: str | None = None   # replaces the generated "at least 1", "in [0, 1)", ...
    allow: tuple = ()         # values accepted outside [lo, hi] (max_vocab's 0)

    def type_problem(self, value) -> str | None:
        """What a value of the wrong type must be ("an integer", "a number"), checked before the range;
        None when it is a number of the right kind (an int kind takes a float of integral value; inf and
        nan are for the range check to refuse)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "an integer" if self.kind is int else "a number"
        if (self.kind is int and isinstance(value, float) and math.isfinite(value) and not value.is_integer()
                and value not in self.allow):
            return "an integer"
        return None

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if value in self.allow:
            return True
        if self.kind is int and not (isinstance(value, int) or float(value).is_integer()):
            return False
        if not math.isfinite(value):
            return False
        return ((value > self.lo if self.lo_open else value >= self.lo)
                and (value < self.hi if self.hi_open else value <= self.hi))

    def describe(self) -> str:
        if self.text:
            return self.text
        if self.kind is int:
            return f"at least {self.lo:d}" if self.hi == INT_MAX else f"between {self.lo:d} and {self.hi:d}"
        # A float's one wording whatever the value refused (-1, inf and nan alike): "finite" where inf would
        # otherwise pass the words, "a number" so that nan fails them.
        if math.isinf(self.lo) and math.isinf(self.hi):
            return "a finite number"
        if math.isinf(self.hi):
            return ("a finite positive number" if self.lo == 0 and self.lo_open else
                    f"a finite number {'>' if self.lo_open else '>='} {self.lo:g}")
        return f"a number in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


def _count(lo: int, note: str = "", hi: int = INT_MAX, **kw) -> Range:
    return Range(int, lo, hi, note=note, **kw)


_FRACTION = Range(float, 0.0, 1.0, hi_open=True)

# Every numeric option of every command, by its name (a flag's dest, a config field): the CLI checks
# each parsed flag here (cli.main), the configs' validate() and the library entry points check their
# fields with the same entries, so a range is written once. A new numeric flag needs an entry
# (tests/test_validation.py fails otherwise).
RANGES: dict[str, Range] = {
    # seeds
    "seed": _count(0, hi=SEED_MAX), "split_seed": _count(0, hi=SEED_MAX),
    # model
    "vocab_size": _count(1), "emsize": _count(1), "hidden": _count(1), "layers": _count(1),
    "dropout": _FRACTION, "recurrent_scale": Range(float, -1e30, 1e30), "forget_bias": Range(float),
    # data
    "max_vocab": _count(3, allow=(0,), text="0 (no limit) or at least 3 (it counts <unk> and <eos>)"),
    "min_count": _count(1), "valid_fraction": _FRACTION, "test_fraction": _FRACTION,
    # training
    "bptt": _count(1), "batch_size": _count(1), "eval_batch_size": _count(1),
    "lr": Range(float, 0.0, lo_open=True), "momentum": _FRACTION, "beta1": _FRACTION, "beta2": _FRACTION,
    "clip_norm": Range(float, 0.0, note="(0 = off)"), "clip_value": Range(float, 0.0, note="(0 = off)"),
    "omega": Range(float, 0.0, note="(0 = off)"), "lr_decay": Range(float, 1.0, note="(1 = never anneal)"),
    "min_lr": Range(float, 0.0, note="(0 = no floor)"),
    "patience": _count(0, "(0 = never)"), "epochs": _count(1), "max_steps": _count(0, "(0 = no limit)"),
    "max_minutes": Range(float, 0.0, note="(0 = no limit)"), "eval_every": _count(0, "(0 = epoch ends only)"),
    "log_every": _count(1), "track_jacobian_every": _count(0, "(0 = off)"),
    "sample_words": _count(0, "(0 = none)"),
    "eval_minutes": Range(float, 0.0, note="(0 = off)"), "save_minutes": Range(float, 0.0, note="(0 = off)"),
    "log_interval": _count(1), "max_skips": _count(1),
    # sweep
    "seeds": _count(1), "workers": _count(1), "retries": _count(0),
    # study learnability
    "keys": _count(2), "n_train": _count(1), "n_test": _count(1), "steps": _count(1),
    "task_bptt": _count(0, "(0 = the whole sequence)"),
    "task_eval_every": _count(1, "(a study has no epochs: a run is judged by its evaluations)"),
    # jacobian
    "max_lag": _count(1), "anchors": _count(1), "tokens": _count(2),
    # generate
    "words": _count(0), "temperature": Range(float, 0.0, note="(0 = greedy)"), "top_k": _count(0, "(0 = all)"),
    "top_p": Range(float, 0.0, 1.0, lo_open=True, note="(1 = all)"), "num_samples": _count(1),
    # probe
    "n": _count(1), "n_targets": _count(1), "window": _count(2),
    # bench
    "repeats": _count(1), "threads": _count(1), "sweep_jobs": _count(1), "sweep_steps": _count(1),
    # demo
    "minutes": Range(float, 0.0, lo_open=True),
    "min_distance": _count(1, text="between 1 and the maximum training distance"),
    "subject_relative_rate": Range(float, 0.0, 1.0),
}


# command-line destinations that differ from their flag (the study's --bptt is stored as task_bptt)
FLAG_OF = {"task_bptt": "bptt", "task_eval_every": "eval_every"}
# fields whose flag turns them off (cli.py declares these flags)
_OFF_FLAG = {"progress": "--no-progress", "use_cache": "--no-cache"}


def flag(name: str) -> str:
    """The command-line flag that sets field `name`: "--max-steps" for max_steps, "--no-progress" for progress."""
    return _OFF_FLAG.get(name) or "--" + FLAG_OF.get(name, name).replace("_", "-")


def check_range(name: str, value, error=UserError, label: str | None = None) -> None:
    """UserError "--<name> must be <range>, got <value>" unless RANGES[name] accepts `value`; a value of the
    wrong type first: "--<name> must be a number, got '0.5' (a string)" (not a range it may well be in).

    None passes (an unset option). A name without an entry must still be a finite number.
    label: how the message names the setting (default: its flag, `flag`).
    """
    if value is None:
        return
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0 \
            and getattr(getattr(value, "dtype", None), "kind", "") in ("i", "u", "f"):
        value = value.item()        # a NumPy scalar (np.float32(0.1), np.int64(3)) as the Python number it holds
    r = RANGES.get(name, Range(float))
    option = flag(name) if label is None else label
    want = r.type_problem(value)
    if want is not None:
        raise error(f"{option} must be {want}, got {value!r} ({kind_of(value)})")
    if not r.accepts(value):
        note = f" {r.note}" if r.note else ""
        desc = r.describe()
        finite = r.kind is int and isinstance(value, float) and not math.isfinite(value)
        if finite:              # a count's "at least 0" is true of inf: say what inf and nan fail (floats: describe)
            desc = f"an integer, {desc}"
        if (r.kind is int and r.hi == INT_MAX and not finite and isinstance(value, (int, float))
                and not isinstance(value, bool) and value > r.hi):
            raise error(f"{option} must be at most {INT_MAX:,} (a larger count is a typo, not a plan), "
                        f"got {value!r}")         # "at least 0, got 3000000000" would say nothing useful
        raise error(f"{option} must be {desc}{note}, got {value!r}")


def check_fields(obj, error=UserError, label=None) -> None:
    """check_range on every field of dataclass `obj` that has an entry in RANGES (label(name): how the
    messages name a field; default its flag), after check_bools."""
    check_bools(obj, error)
    for f in dataclasses.fields(obj):
        if f.name in RANGES:
            check_range(f.name, getattr(obj, f.name), error, None if label is None else label(f.name))


def check_bools(obj, error=UserError) -> None:
    """error "<field> must be True or False, got 'no' (a string)" for a bool field of dataclass `obj` that
    holds anything else: a truthy string or number would silently switch it on (tied='no' ties the
    weights). The message names the field, not a flag: the CLI's switches only ever give a bool."""
    import numpy as np
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.type == "bool" and not isinstance(value, (bool, np.bool_)):
            raise error(f"{f.name} must be True or False, got {value!r} ({kind_of(value)})")


def integral_counts(obj) -> None:
    """Counts of dataclass `obj` (fields whose RANGES entry is an int) given as floats of integral value
    (hidden=8.0, from arithmetic or a JSON number) become ints in place, as Range.type_problem accepts
    them: NumPy's shapes and Python's slices take only ints. Other values are left for validate()."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        r = RANGES.get(f.name)
        if (r is not None and r.kind is int and isinstance(value, float) and math.isfinite(value)
                and value.is_integer()):
            setattr(obj, f.name, int(value))


def check_field_types(obj, error=UserError, label=None) -> None:
    """The type half of check_fields only (a string where a number goes), for a validate() to run before
    comparisons that a wrong type would crash (int('abc'), '0.5' < 1)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        want = RANGES[f.name].type_problem(value) if f.name in RANGES and value is not None else None
        if want is not None:
            option = flag(f.name) if label is None else label(f.name)
            raise error(f"{option} must be {want}, got {value!r} ({kind_of(value)})")


def documented(cls):
    """Class decorator (above @dataclass): append to cls.__doc__ each field with its default and the comment
    written beside it in the class's source (config.py), so that help(TrainConfig) lists what every setting
    means while the comment stays the one place it is written. Nothing is appended where the source cannot
    be read."""
    import inspect
    import re
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return cls
    rows = []
    for f in dataclasses.fields(cls):
        m = re.search(rf"^    {f.name}: ([^=]+?) = (.+?)\s+# (.*)$", src, re.M)
        if m:
            rows.append(f"    {f.name}: {m.group(1).strip()} = {m.group(2).strip()}\n        {m.group(3).strip()}")
    if rows:
        cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Fields (name: type = default, then what it means):\n" \
            + "\n".join(rows) + "\n"
    return cls
