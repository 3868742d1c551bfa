"""Every setting of the product, written once: its default, its option list and its check.

`ModelConfig` (the network), `DataConfig` (corpus and tokenizer),
`TrainConfig` (a training run: nests a DataConfig and a ModelConfig) and
`JacobianConfig` (the `jacobian` command). Standard library only, so the CLI
can build its parser (flags, `--help` defaults) from these classes without
loading NumPy or Numba. The machinery these classes use (dict round trips,
the numeric ranges of every option in RANGES, check_range, check_fields, flag,
documented) is settings.py's.

    cfg = TrainConfig(model=ModelConfig(cell="gru", hidden=128), bptt=50)
    cfg.validate()                          # UserError for settings that cannot work together
    d = cfg.to_dict()                       # what config.json's "train" holds (with FORMAT)
    TrainConfig.from_dict(d) == cfg         # unknown keys: one-line UserError
    mcfg = cfg.model.with_vocab(10000)      # the ModelConfig an RNNModel takes

The one thing to know before editing: a default written anywhere else is a
bug (the CLI reads them from the fields here, `rnnlm.cli` shows them in
`--help`). A change to the *shape* of TrainConfig.to_dict (a field renamed,
moved or removed; not a new field with a default, which an older config.json
reads as) bumps FORMAT, and `TrainConfig.from_dict` must keep reading every
older shape: run folders written by earlier versions must still evaluate,
generate and resume.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import UserError
from .fileio import fmt_bytes
from .settings import (_refuse_unknown, check_bools, check_field_types, check_fields, documented, flag,
                       integral_counts, kind_of)

# ---------------------------------------------------------------- option lists

CELLS = ("rnn", "lstm", "gru")
INITS = ("default", "xavier", "orthogonal", "identity")
DTYPES = ("float32", "float64")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "adam")
# learning rate when TrainConfig.lr is None (pytorch/examples' 20 for plain SGD)
DEFAULT_LR = {"sgd": 20.0, "momentum": 2.0, "adagrad": 0.1, "adam": 1e-3}
# --min-lr when TrainConfig.min_lr is None: the initial lr times this. 1e-6 is ten divisions by the
# default --lr-decay 4 (4**-10 = 9.5e-7 < 1e-6 <= 4**-9): by then a step moves a typical float32 weight
# by about its rounding error or less. Low enough that no published result anneals that far: the main
# job anneals once or twice in an hour, the long-range demo's runs (Adam, --patience 3) at most 9 times.
MIN_LR_FACTOR = 1e-6
ON_NONFINITE = ("stop", "skip")
SPLITS = ("train", "valid", "test")
CHECKPOINTS = ("best", "latest")
# The probe command's defaults, per probe (its flags read them; so does the advice that reruns a probe,
# measured.measurement_age_note, which writes only the settings that differ from them)
PROBE_DEFAULTS = {"agreement": {"distances": "1..40", "n": 500, "seed": 0},
                  "context": {"split": "test", "distances": "1,2,5,10,20,50,100,200", "n_targets": 500,
                              "window": 300, "seed": 0}}
TORCH_MALLOC = ("kept", "default")     # bench --torch-malloc: PyTorch's process keeps freed memory or not (benchworker)

# Fields that `--resume` may change: they decide when to stop and what to print,
# never what a step computes (so a resumed run still matches an uninterrupted one).
RESUME_OVERRIDABLE = ("epochs", "max_steps", "max_minutes", "log_every", "progress",
                      "on_nonfinite", "sample_words", "patience", "track_jacobian_every", "min_lr",
                      "eval_minutes", "save_minutes", "log_interval", "max_skips")

# config.json's "train" dict: 2 = model and data settings nested ("model", "data");
# 1 (no "format" key) = the model settings flat beside the training ones.
FORMAT = 2


class ModelConfigError(UserError, ValueError):
    """A nonsense model option or parameter file (a UserError for the CLI, a ValueError for code)."""


# ---------------------------------------------------------------- activations

# Kind codes used inside the kernels (activations.py). tanh and tanh:n are scaled tanh with a = 1.
# A new activation: a code here and in KINDS, its form in ACTIVATION_FORMS (every help text and error reads
# it), a branch in parse_activation and in each of activations.py's five functions, and a spec in
# ACTIVATION_EXAMPLES, the list `gradcheck --activation all` and the tests loop over (tests/test_activations.py
# checks every kind's kernels against its NumPy form and finite differences).
SCALED_TANH = 0
RELU = 1
SIGMOID = 2
KINDS = (SCALED_TANH, RELU, SIGMOID)
ACTIVATION_EXAMPLES = ("tanh", "relu", "sigmoid", "tanh:2", "scaled-tanh:1.7159,0.6667")
ACTIVATION_FORMS = ("tanh, relu, sigmoid, tanh:n (tanh(n*z)), scaled-tanh:a,b (a*tanh(b*z)), "
                    "lecun-tanh (= scaled-tanh:1.7159,0.6667)")


class Activation(NamedTuple):
    name: str      # the normalized string, e.g. "scaled-tanh:1.7159,0.6667"
    kind: int      # SCALED_TANH | RELU | SIGMOID
    a: float       # output scale (scaled tanh only; else 1)
    b: float       # input scale (scaled tanh only; else 1)


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ModelConfigError(f"activation {spec!r}: {text!r} is not a number") from None
    if not math.isfinite(value) or value == 0.0:
        raise ModelConfigError(f"activation {spec!r}: constants must be finite and non-zero, got {text!r}")
    return value


def parse_activation(spec: str) -> Activation:
    """Parse "tanh", "relu", "sigmoid", "tanh:n" (= tanh(n z)), "scaled-tanh:a,b" (= a tanh(b z))
    or "lecun-tanh" (= scaled-tanh:1.7159,0.6667, the same constants).

    Raises UserError with the accepted forms for anything else.
    """
    if isinstance(spec, Activation):
        return spec
    s = str(spec).strip().lower()
    if s == "tanh":
        return Activation("tanh", SCALED_TANH, 1.0, 1.0)
    if s == "relu":
        return Activation("relu", RELU, 1.0, 1.0)
    if s == "sigmoid":
        return Activation("sigmoid", SIGMOID, 1.0, 1.0)
    if s == "lecun-tanh":   # LeCun et al. (1998), "Efficient BackProp": 1.7159 tanh(2z/3)
        return Activation("lecun-tanh", SCALED_TANH, 1.7159, 0.6667)
    if s.startswith("tanh:"):
        n = _number(s[5:], spec)
        return Activation(f"tanh:{s[5:]}", SCALED_TANH, 1.0, n)
    if s.startswith("scaled-tanh:"):
        parts = s[12:].split(",")
        if len(parts) != 2:
            raise ModelConfigError(f"activation {spec!r}: scaled-tanh needs two constants a,b; "
                                   f"accepted: {ACTIVATION_FORMS}")
        a, b = (_number(p, spec) for p in parts)
        return Activation(f"scaled-tanh:{parts[0]},{parts[1]}", SCALED_TANH, a, b)
    raise ModelConfigError(f"unknown activation {spec!r}; accepted: {ACTIVATION_FORMS}")


# ---------------------------------------------------------------- model


@documented
@dataclass
class ModelConfig:
    """The network. vocab_size is None until a corpus is loaded (TrainConfig.model); see with_vocab."""

    vocab_size: int | None = None   # V words, <unk> and <eos> included
    cell: str = "lstm"              # rnn | lstm | gru
    activation: str = "tanh"        # rnn only: one of ACTIVATION_FORMS
    emsize: int = 256               # embedding size E
    hidden: int = 256               # hidden size H of every layer
    layers: int = 1                 # stacked recurrent layers L
    dropout: float = 0.2            # drop probability on embedding, between layers, on the output; 0 = none
    tied: bool = False              # decoder.weight is encoder.weight (needs emsize == hidden)
    init: str = "default"           # default | xavier | orthogonal | identity
    recurrent_scale: float = 1.0    # multiplies every W_hh after init (> 1 to provoke explosions)
    forget_bias: float = 0.0        # lstm: added to the forget-gate bias at init
    dtype: str = "float32"          # parameter dtype; float64 only for checks

    def __post_init__(self) -> None:
        integral_counts(self)     # hidden=8.0 -> 8

    def with_vocab(self, vocab_size: int) -> ModelConfig:
        """This config for a vocabulary of `vocab_size` words (what RNNModel takes)."""
        return dataclasses.replace(self, vocab_size=int(vocab_size))

    def validate(self, need_vocab: bool = True) -> None:
        """Raise ModelConfigError (a UserError and a ValueError) for nonsense options.

        need_vocab=False accepts vocab_size None (a TrainConfig's model before the corpus is read).
        """
        if self.cell not in CELLS:
            raise ModelConfigError(f"unknown cell {self.cell!r}; choose rnn, lstm or gru")
        parse_activation(self.activation)
        # options of one cell given to another would be silently ignored: refuse them
        if self.cell != "rnn" and self.activation != "tanh":
            raise ModelConfigError(f"activation {self.activation!r} is for the vanilla RNN (cell rnn); "
                                   f"the {self.cell}'s gates use fixed sigmoid and tanh")
        if self.cell != "lstm" and self.forget_bias != 0:
            raise ModelConfigError(f"forget_bias is for the LSTM (cell lstm); the {self.cell} has no forget gate")
        if self.init not in INITS:
            raise ModelConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        check_bools(self, ModelConfigError)
        check_field_types(self, ModelConfigError, label=str)     # a type first: "hidden must be an integer"
        names = ("vocab_size", "emsize", "hidden", "layers")
        for name in names if need_vocab or self.vocab_size is not None else names[1:]:
            value = getattr(self, name)
            if value is None or int(value) < 1:
                raise ModelConfigError(f"{name} must be at least 1, got {value}")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.tied and self.emsize != self.hidden:
            raise ModelConfigError(f"tied embeddings need emsize == hidden, got {self.emsize} and {self.hidden}")
        if self.dtype not in DTYPES:
            raise ModelConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.vocab_size is not None:
            _check_fits_in_memory(self)
        if not math.isfinite(self.recurrent_scale) or not math.isfinite(self.forget_bias):
            raise ModelConfigError("recurrent_scale and forget_bias must be finite")
        check_fields(self, ModelConfigError)

    def parameter_count(self) -> int:
        """Number of parameters: encoder V*E, per layer g*H*(in + H) + 2*g*H (g gates:
        rnn 1, gru 3, lstm 4; in = E for layer 0, else H), decoder H*V + V (its weight
        shared with the encoder when tied). Needs vocab_size."""
        g = {"rnn": 1, "gru": 3, "lstm": 4}.get(self.cell, 4)
        V, E, H, L = int(self.vocab_size), int(self.emsize), int(self.hidden), int(self.layers)
        recurrent = sum(g * H * ((E if layer == 0 else H) + H) + 2 * g * H for layer in range(L))
        return V * E + recurrent + (0 if self.tied else H * V) + V

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        _refuse_unknown(cls, d, "the model config has settings")
        return cls(**d)


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_fits_in_memory(config: ModelConfig) -> None:
    """ModelConfigError when parameters, gradients and one optimizer buffer (3 copies) cannot fit in
    RAM: a clear line before a MemoryError (or, with overcommit, the OOM killer) half-way through."""
    memory = physical_memory()
    need = 3 * config.parameter_count() * (8 if config.dtype == "float64" else 4)
    if memory and need > memory:
        raise ModelConfigError(f"a {config.cell} with vocab_size {config.vocab_size}, emsize {config.emsize}, "
                               f"hidden {config.hidden}, layers {config.layers} needs at least "
                               f"{fmt_bytes(need)} (parameters, gradients, optimizer state), more than "
                               f"this machine's {fmt_bytes(memory)}; use smaller --hidden, --emsize, "
                               f"--layers or --max-vocab")


# ---------------------------------------------------------------- data


@documented
@dataclass
class DataConfig:
    """Corpus, tokenizer, vocabulary and split (see data.py for the split policy)."""

    corpus: str = "machado"         # a catalog name or a path to a .txt file / folder
    corpora_dir: str | None = None  # folder holding named corpora (None: the lookup order)
    keep_case: bool = False         # False lower-cases everything
    num_token: bool = False         # True maps every number to <num>
    max_vocab: int = 10000          # 0 = no limit; counts <unk> and <eos>
    min_count: int = 1              # words seen fewer times in train become <unk>
    split_seed: int = 0             # seed of the document-level split
    valid_fraction: float = 0.05    # share of tokens held out for validation
    test_fraction: float = 0.05     # share of tokens held out for test
    use_cache: bool = True          # False re-tokenizes (and rewrites the cache)

    def __post_init__(self) -> None:
        integral_counts(self)     # hidden=8.0 -> 8
        self._paths_as_str()

    def _paths_as_str(self) -> None:
        """corpus and corpora_dir given as a pathlib.Path (any os.PathLike) become its str, as the CLI
        gives them: config.json (JSON) and the checkpoints hold a str."""
        for name in ("corpus", "corpora_dir"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(self, name, os.fspath(value))

    def validate(self) -> None:
        self._paths_as_str()    # (a Path set after construction)
        for name in ("corpus", "corpora_dir"):
            value = getattr(self, name)
            if not isinstance(value, str) and not (name == "corpora_dir" and value is None):
                what = "a corpus name or a path" if name == "corpus" else "a folder path (or None)"
                raise UserError(f"{name} must be {what}, a str or os.PathLike, got {value!r} ({kind_of(value)})")
        check_fields(self)      # (a type first: check_range)
        vf, tf = self.valid_fraction, self.test_fraction
        if not (0 <= vf < 1 and 0 <= tf < 1 and vf + tf < 1):
            raise UserError(f"--valid-fraction {vf} and --test-fraction {tf}: each must be in [0, 1) "
                            f"and together below 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DataConfig:
        _refuse_unknown(cls, d, "config has data settings")
        return cls(**d)


# ---------------------------------------------------------------- training


@documented
@dataclass
class TrainConfig:
    """Every setting of a training run; saved whole in config.json and in each checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)     # corpus and tokenizer
    model: ModelConfig = field(default_factory=ModelConfig)  # the network (vocab_size None: from the corpus)
    # batches
    bptt: int = 35                  # truncated-BPTT window length T
    batch_size: int = 32            # parallel streams B in training
    eval_batch_size: int = 10       # streams in validation/test evaluation (pytorch/examples: 10)
    # optimizer and clipping
    optimizer: str = "sgd"          # sgd | momentum | adagrad | adam
    lr: float | None = None         # None = per optimizer (DEFAULT_LR: sgd 20, momentum 2, adagrad 0.1, adam 0.001)
    momentum: float = 0.9           # momentum coefficient (optimizer momentum)
    nesterov: bool = False          # Nesterov momentum (optimizer momentum)
    beta1: float = 0.9              # Adam's first-moment decay
    beta2: float = 0.999            # Adam's second-moment decay
    clip_norm: float = 0.25         # rescale gradients whose joint L2 norm exceeds this; 0 = off
    clip_value: float = 0.0         # clip each gradient element to [-x, x]; 0 = off (exclusive with clip_norm)
    omega: float = 0.0              # weight α of the Ω regularizer (Pascanu et al. 2013; rnn only, omega.py); 0 = off
    lr_decay: float = 4.0           # divide lr by this when validation does not improve; 1 = never
    min_lr: float | None = None     # stop when annealing takes lr below it; None = lr x 1e-6 (MIN_LR_FACTOR), 0 = never
    patience: int = 3               # stop after this many evaluations in a row without improvement; 0 = never
    # budget and reporting
    epochs: int = 40                # passes over the training stream
    max_steps: int = 0              # stop after this many steps (windows) in total; 0 = no limit
    max_minutes: float = 10.0       # stop after this much wall time in total (over resumes); 0 = no limit
    eval_every: int = 1000          # also validate every this many steps (besides epoch ends); 0 = epoch ends only
    log_every: int = 10             # write a step event to metrics.jsonl every this many steps
    track_jacobian_every: int = 0   # log a cheap Jacobian lag curve every this many steps (and at step 0); 0 = off
    seed: int = 0                   # model init and dropout masks
    out: str | None = None          # run folder; None = runs/<cell>-<YYYYmmdd-HHMMSS>
    on_nonfinite: str = "stop"      # stop | skip: what a nan/inf loss or gradient does
    sample_words: int = 60          # words generated from the best model at the end; 0 = none
    progress: bool = True           # tqdm bar on stderr
    eval_minutes: float = 2.0       # report-only validation on a fixed slice of valid every N wall minutes; 0 = off
    save_minutes: float = 5.0       # also save model.npz every N wall minutes (besides evaluations, epoch ends); 0 = off
    log_interval: int = 200         # a printed progress line every N steps (instead of the bar when stderr is no terminal)
    max_skips: int = 10             # --on-nonfinite skip: stop after this many skipped steps in a row

    def __post_init__(self) -> None:
        integral_counts(self)     # hidden=8.0 -> 8

    def validate(self) -> None:
        """UserError for settings that cannot work together (the model's and the data's included)."""
        for name, cls in (("model", ModelConfig), ("data", DataConfig)):
            if not isinstance(getattr(self, name), cls):
                raise UserError(f"TrainConfig's {name} must be a {cls.__name__}, got {kind_of(getattr(self, name))}: "
                                f"write TrainConfig({name}={cls.__name__}(...))"
                                + (f" (a dict d of settings: {cls.__name__}(**d))"
                                   if isinstance(getattr(self, name), dict) else ""))
        self.model.validate(need_vocab=False)
        if self.model.vocab_size is not None:   # (to_dict leaves it out: it would not survive config.json)
            raise UserError(f"TrainConfig's model has vocab_size={self.model.vocab_size}, but a run's vocabulary "
                            "comes from its corpus: leave vocab_size out (cap it with DataConfig(max_vocab=...), "
                            "--max-vocab)")
        self.data.validate()
        check_fields(self)      # every numeric field against RANGES
        if self.data.valid_fraction == 0:
            raise UserError("train needs a validation split (it keeps best.npz and anneals the learning "
                            "rate by it): give --valid-fraction above 0 (0 = none is for baseline and "
                            "corpus info)")
        if self.clip_norm > 0 and self.clip_value > 0:
            raise UserError("choose one of --clip-norm and --clip-value (set the other to 0)")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer '{self.optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
        if self.omega > 0 and self.model.cell != "rnn":
            raise UserError(f"--omega (the Ω regularizer) is for vanilla RNNs (--cell rnn), "
                            f"not --cell {self.model.cell}")
        if self.on_nonfinite not in ON_NONFINITE:
            raise UserError(f"--on-nonfinite must be stop or skip, got '{self.on_nonfinite}'")
        if self.min_lr and self.min_lr >= self.initial_lr():
            raise UserError(f"--min-lr {self.min_lr:g} must be below the learning rate ({self.initial_lr():g}): "
                            "the run would stop before it starts; give a smaller --min-lr (0 = no floor)")

    def initial_lr(self) -> float:
        """The learning rate the run starts with (lr, or the optimizer's DEFAULT_LR)."""
        return float(self.lr) if self.lr is not None else DEFAULT_LR.get(self.optimizer, math.nan)

    def lr_floor(self) -> float:
        """--min-lr as a number: annealing that takes the lr below it stops the run (0 = never).

        min_lr, or when None the initial lr times MIN_LR_FACTOR (so it scales with any optimizer's lr).
        """
        return float(self.min_lr) if self.min_lr is not None else self.initial_lr() * MIN_LR_FACTOR

    def to_dict(self) -> dict:
        """config.json's "train": {"format": FORMAT, "data": {...}, "model": {... no vocab_size}, ...}."""
        d = dataclasses.asdict(self)
        d["model"].pop("vocab_size")
        return {"format": FORMAT, **d}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of to_dict, also for the flat format 1; unknown keys are a UserError."""
        d = _nest(d, "config")
        return cls(data=DataConfig.from_dict(d.pop("data", None) or {}),
                   model=ModelConfig.from_dict(d.pop("model", None) or {}), **d)

    def resumed(self, overrides: dict | None = None, out: str | None = None) -> TrainConfig:
        """This (saved) config with the RESUME_OVERRIDABLE settings in `overrides` applied.

        overrides: a partial config dict (either format). Any other setting
        that differs from the saved one is a UserError: it would make the
        resumed run a different experiment.
        """
        overrides = _nest(overrides or {}, "--resume")
        refused, changes, moved = [], {}, {}
        for part in ("data", "model"):
            saved, values = getattr(self, part), overrides.pop(part, None) or {}
            _refuse_unknown(type(saved), values, f"--resume has {part} settings")
            for k, v in values.items():
                if part == "data" and k in CORPUS_PLACE:
                    moved[k] = v        # where the text is, not what it is: the resume checks its checksum
                elif getattr(saved, k) != v:
                    refused.append(f"{flag(k)} ({getattr(saved, k)!r} -> {v!r})")
        for k, v in overrides.items():
            if getattr(self, k) == v:
                continue
            if k in RESUME_OVERRIDABLE:
                changes[k] = v
            else:
                refused.append(f"{flag(k)} ({getattr(self, k)!r} -> {v!r})")
        if refused:
            raise UserError(f"--resume keeps the run's settings; cannot change {', '.join(refused)} "
                            f"(only {', '.join(map(flag, RESUME_OVERRIDABLE))} may change, and --corpus or "
                            "--corpora-dir may say where its text is now)")
        data = dataclasses.replace(self.data, **moved) if moved else self.data
        return dataclasses.replace(self, out=self.out if out is None else str(out), data=data, **changes)


# Where a run's text is found, which a resume may give anew (a corpus moved, another machine's corpora
# folder): runs.resume_checkpoint then refuses text whose checksum is not the run's.
CORPUS_PLACE = ("corpus", "corpora_dir")


_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "vocab_size")


def _nest(d: dict, what: str) -> dict:
    """A (partial) TrainConfig dict in the current shape: format 1's flat model keys moved under "model"."""
    if not isinstance(d, dict):
        raise UserError(f"{what}: the train settings must be a JSON object, got {type(d).__name__}")
    d = dict(d)
    version = d.pop("format", 1)
    if not isinstance(version, int) or version > FORMAT:
        raise UserError(f"{what} has format {version!r}; this rnnlm reads formats up to {FORMAT} "
                        f"(a newer rnnlm wrote it)")
    model = dict(d.pop("model", None) or {})
    for k in _MODEL_FIELDS:
        if k in d:
            model[k] = d.pop(k)
    _refuse_unknown(TrainConfig, d, f"{what} has settings")
    if model:
        _refuse_unknown(ModelConfig, model, f"{what} has model settings")
        d["model"] = model
    return d


def given_train_settings(given: dict, resume: bool = False) -> dict:
    """The `train` flags' two conveniences, applied in place to the settings a user gave (the `train` flags,
    a sweep grid point) and returned: --clip-value alone turns norm clipping off (clip_norm 0), and a limit
    on steps or epochs (--epochs, or a --max-steps above 0) without --max-minutes replaces the default time
    budget (max_minutes 0). --max-steps 0 means no step limit, the default, so it keeps the time budget.
    resume: the settings of a --resume, to which neither applies: its clipping cannot change (--clip-value
    is then refused as the user gave it, TrainConfig.resumed, without a --clip-norm they never typed), and
    its time budget is the run's own, kept unless --max-minutes is given (a run stopped at its budget is
    refused, naming the flag to raise, rather than resumed without one)."""
    if resume:
        return given
    if "clip_value" in given and "clip_norm" not in given:
        given["clip_norm"] = 0.0
    if ("epochs" in given or given.get("max_steps")) and "max_minutes" not in given:
        given["max_minutes"] = 0.0
    return given


def config_to_dict(config: TrainConfig) -> dict:
    """TrainConfig -> config.json's "train" dict (see TrainConfig.to_dict)."""
    return config.to_dict()


def config_from_dict(d: dict) -> TrainConfig:
    """config.json's "train" dict (any format) -> TrainConfig; unknown keys are a UserError."""
    return TrainConfig.from_dict(d)


# ---------------------------------------------------------------- the jacobian command


@documented
@dataclass
class JacobianConfig:
    """`jacobian`: lag curves of a trained model (`run`) or of a freshly initialized one (`model`)."""

    run: str | None = None          # a run folder or a checkpoint .npz (exclusive with model)
    model: ModelConfig | None = None  # a fresh model with these settings (vocab from the corpus)
    checkpoint: str = "best"        # best | latest (of a run folder)
    text: str | None = None         # measure on this text file (trained models only)
    split: str = "valid"            # else the first `tokens` tokens of this split
    max_lag: int = 100              # largest lag D
    anchors: int = 32               # anchor positions K
    tokens: int = 1000              # tokens read from the start of the text
    seed: int = 0                   # anchors, and a fresh model's weights
    out: str | None = None          # JSON file; None = beside the run, or jacobian-init-<settings>.json
    data: DataConfig = field(default_factory=DataConfig)  # a fresh model's text; corpus "none" = random
    vocab_size: int = 10000         # vocabulary of the random tokens (corpus none or not found)

    def __post_init__(self) -> None:
        integral_counts(self)     # hidden=8.0 -> 8

    def validate(self) -> None:
        check_fields(self)
        if (self.run is None) == (self.model is None):
            raise UserError("give a run folder or checkpoint to measure (jacobian runs/NAME), or --init for a "
                            "fresh model (jacobian --init --cell rnn ...)"
                            + ("; not both" if self.run is not None else ""))
        if self.checkpoint not in CHECKPOINTS:
            raise UserError(f"--checkpoint must be best or latest, got '{self.checkpoint}'")
        if self.split not in SPLITS:
            raise UserError(f"--split must be train, valid or test, got '{self.split}'")
        if self.model is not None:
            if self.text is not None:
                raise UserError("--text needs a trained model's vocabulary; with --init use --corpus")
            self.model.validate(need_vocab=False)
            self.data.validate()


# ---------------------------------------------------------------- learnability (tasks.py, learnability.py, study.py)

TASK_NAMES = ("recall", "order", "agreement")     # tasks.TASKS (a test checks they agree)
LOSS_MODES = ("all", "answer")                    # tasks.LOSS_MODES


@documented
@dataclass
class TaskTrainConfig:
    """One training run on a long-range task (learnability.train_task); the study varies cell, init,
    forget_bias and seed and keeps every other field the same for every job (the budget)."""

    cell: str = "rnn"               # rnn | lstm | gru
    init: str = "default"           # default | xavier | orthogonal | identity (init.py)
    forget_bias: float = 0.0        # lstm: added to the forget-gate bias at init (the study uses 1)
    emsize: int = 16                # embedding size E
    hidden: int = 64                # hidden size H (one layer)
    optimizer: str = "adam"         # sgd | momentum | adagrad | adam (optim.py)
    lr: float = 5e-3                # learning rate
    clip_norm: float = 1.0          # global gradient-norm clip; 0 = none
    batch_size: int = 32            # sequences per step B
    steps: int = 6000               # optimizer steps (the budget)
    loss: str = "answer"            # answer: loss on the answer only | all: every position (a language model)
    bptt: int = 0                   # BPTT window in steps; 0 = the whole sequence (no truncation)
    omega: float = 0.0              # rnn only: weight of Pascanu et al.'s regularizer Ω (omega.py); 0 = off
    eval_every: int = 250           # steps between evaluations (accuracy, grad_key)
    eval_size: int = 500            # held-out sequences scored for accuracy (the first of the test split)
    probe_size: int = 32            # held-out sequences for grad_key
    jac_size: int = 8               # held-out sequences (the probe's first) for jac
    jac_every: int = 1000           # steps between jac measurements (also at step 0 and the last evaluation)
    threshold: float = 0.95         # held-out accuracy that counts as success
    patience: int = 3               # consecutive evaluations >= threshold that count as solved
    early_stop: bool = True         # stop once solved (an unsolved run always spends the whole budget)
    seed: int = 0                   # model init and batch order

    def __post_init__(self) -> None:
        integral_counts(self)     # hidden=8.0 -> 8

    def validate(self) -> "TaskTrainConfig":
        """Raise UserError (one line) for nonsense; return self."""
        if self.cell not in CELLS:
            raise UserError(f"unknown cell {self.cell!r}; choose rnn, lstm or gru")
        if self.init not in INITS:
            raise UserError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.loss not in LOSS_MODES:
            raise UserError(f"unknown loss mode {self.loss!r}; choose {' or '.join(LOSS_MODES)}")
        for f in ("emsize", "hidden", "batch_size", "steps", "eval_every", "eval_size", "probe_size", "patience",
                  "jac_size", "jac_every"):
            if int(getattr(self, f)) < 1:
                raise UserError(f"{f} must be at least 1, got {getattr(self, f)}")
        if self.bptt < 0:
            raise UserError(f"bptt must be >= 0 (0 = the whole sequence), got {self.bptt}")
        if not self.lr > 0 or self.clip_norm < 0 or self.omega < 0:
            raise UserError("lr must be > 0, clip_norm and omega >= 0")
        if self.omega and self.cell != "rnn":
            raise UserError(f"omega (Pascanu et al.'s regularizer) is for the vanilla RNN, not {self.cell}")
        if self.cell != "lstm" and self.forget_bias != 0:
            raise UserError(f"forget_bias is for the LSTM; the {self.cell} has no forget gate")
        if not 0 < self.threshold <= 1:
            raise UserError(f"threshold must be in (0, 1], got {self.threshold}")
        return self

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The one-layer, dropout-free ModelConfig of this run."""
        return ModelConfig(vocab_size=int(vocab_size), cell=self.cell, emsize=self.emsize, hidden=self.hidden,
                           layers=1, dropout=0.0, init=self.init, forget_bias=self.forget_bias)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TaskTrainConfig":
        _refuse_unknown(cls, d, "the task training settings have settings")
        return cls(**d).validate()


# The study's cells: name -> the TaskTrainConfig fields that make it.
STUDY_CELLS = {
    "rnn": {"cell": "rnn", "init": "default"},
    "rnn-orth": {"cell": "rnn", "init": "orthogonal"},
    "lstm": {"cell": "lstm", "forget_bias": 1.0},
    "gru": {"cell": "gru"},
}


@documented
@dataclass
class StudyConfig:
    """`study learnability`: every cell x distance x seed trained with the same budget (study.py)."""

    task: str = "recall"                # recall | order | agreement (tasks.py)
    keys: int = 2                       # recall: keys (chance 1/k)
    distances: str = "5,10,20,40,80,160"  # comma-separated task distances
    cells: str = "rnn,rnn-orth,lstm,gru"  # comma-separated, from STUDY_CELLS
    seeds: str = "0,1,2"                # comma-separated; each seeds the model, the batch order and the task data
    n_train: int = 2000                 # training sequences per task
    n_test: int = 500                   # held-out sequences per task
    train: TaskTrainConfig = field(default_factory=TaskTrainConfig)  # the budget, the same for every job
    quick: bool = False                 # a small study (a few minutes): see study.QUICK
    out: str | None = None              # study folder; None = runs/study-learnability (-quick)

    def __post_init__(self) -> None:
        integral_counts(self)     # hidden=8.0 -> 8

    def distance_list(self) -> list[int]:
        return _int_list(self.distances, "distances")

    def seed_list(self) -> list[int]:
        return _int_list(self.seeds, "seeds")

    def cell_list(self) -> list[str]:
        names = [c.strip() for c in str(self.cells).split(",") if c.strip()]
        bad = [c for c in names if c not in STUDY_CELLS]
        if not names or bad:
            raise UserError(f"unknown study cell(s) {bad}; choose from {', '.join(STUDY_CELLS)}")
        return names

    def validate(self) -> "StudyConfig":
        if self.task not in TASK_NAMES:
            raise UserError(f"unknown task {self.task!r}; choose one of {', '.join(TASK_NAMES)}")
        bad = [d for d in self.distance_list() if d < 1]
        if bad:
            raise UserError(f"--distances: {bad[0]} is not a distance; give integers >= 1, e.g. --distances 5,10,20")
        bad = [s for s in self.seed_list() if s < 0]
        if bad:
            raise UserError(f"--seeds: {bad[0]} is not a seed; give integers >= 0, e.g. --seeds 0,1,2")
        self.cell_list()
        if self.n_train < 1 or self.n_test < 1:
            raise UserError("n_train and n_test must be at least 1")
        self.train.validate()
        return self


def _int_list(text, what: str) -> list[int]:
    items = [x.strip() for x in str(text).split(",")]
    for x in items:
        try:
            int(x)
        except ValueError:
            bad = "an empty item" if not x else repr(x)
            raise UserError(f"--{what} must be comma-separated integers; {bad} in {text!r} is not one") from None
    out = [int(x) for x in items]
    if not out or len(set(out)) != len(out):
        raise UserError(f"--{what} must be a non-empty list without repeats, got {text!r}")
    return out
