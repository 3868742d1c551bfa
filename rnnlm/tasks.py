"""Long-range dependency tasks in language-model form: recall, temporal order, agreement.

What vanishing gradients forbid is *learning* a dependency across many steps
when nothing shorter teaches it (Hochreiter & Schmidhuber 1997, "Long
Short-Term Memory", §5 experiments; Pascanu, Mikolov & Bengio 2013, "On the
difficulty of training recurrent neural networks", §5.1). These generators
make such dependencies as next-word prediction, with exact distances,
Portuguese filler words (from `sintetico`'s word lists) and a held-out set
that shares no sequence with the training set:

    recall     [homem] ontem livro ... hoje quem [homem]
               a key word (one of k), exactly d filler words, the query word
               "quem", then the answer: the key word again. Chance is 1/k.
               H&S 1997's experiment 2 (the first symbol of a long sequence
               reappears as its last), with random Portuguese filler.
    order      [não] sempre carta [sim] ... ordem [não-sim]
               temporal order (H&S 1997 experiment 6a, one of the
               pathological problems of Pascanu et al. 2013 §5.1): two marked
               words, each "sim" or "não", the first at the key position, the
               second `second` words after it (or anywhere before the query),
               among fillers; then the query word "ordem" and the answer
               naming the pair (4 classes). H&S place the two relevant
               symbols at random positions early and mid-sequence and ask for
               the class at the end; `lead` and `second` control both here,
               and the query word turns the final classification into the
               next word.
    agreement  [os] [homens] que a menina viu ... ontem [entraram]
               `sintetico`'s sentences (no subject relatives, no lead words),
               cut after the finite verb, whose number the subject decides.

Every example of one task and distance is ONE sequence of the same length S,
so a batch is B sequences side by side, time-major, each column from a zero
state, with the whole dependency inside one window. `make_batch` gives the
(T, B) inputs and targets (T = S - 1) and a loss-weight mask for the two
training modes: loss on every position (a language model) or only on the
answer. `answer_accuracy` scores the answer from log-probabilities or
predictions; `model_answer_logprobs` computes them for an `RNNModel`.

Positions (per example, in tokens of the sequence):

    key_pos     the key (recall), the first marker (order), the subject head (agreement)
    query_pos   the last input before the answer: the query word (recall, order) or the
                last filler word (agreement). The model's output at step query_pos
                predicts the answer, so the key's information must cross
                lag = query_pos - key_pos recurrent steps.
    answer_pos  query_pos + 1

`TaskSpec.distance` counts as the issue does: recall and order, the words
strictly between the key and the query (lag = d + 1); agreement, `sintetico`'s
distance, verb position - subject head position (lag = d - 1).

The agreement filler. Wrapping `sintetico` with subject relatives off is not
enough: its sentences without an attractor make every intervening noun (and
its article, and any inner verb) take the subject's number, so the majority
number of the filler predicts the verb every time; its sentences with an
attractor force the first noun to the other number, a reversed cue. The
default `agreement_filler='independent'` builds each sentence without an
attractor for a random number and then re-inflects the subject (article and
noun) and the verb for the example's own number, drawn independently: the
filler is grammatical and carries no information about the answer (a test
checks that cue predictors score chance). 'sintetico' keeps its own mix
(attractor rate 0.5) for comparison.

The one thing to know before editing: a dataset is a pure function of its
`TaskSpec` (train from SeedSequence([seed, task, 0]), test from [seed, task, 1]),
and saved task folders are reused while their `task.json` matches the spec;
any change to what a spec generates must bump `FORMAT_VERSION`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import sintetico
from .errors import UserError
from .fileio import atomic_write, atomic_write_json
from .vocab import SPECIALS

FORMAT_VERSION = 1
TASKS = ("recall", "order", "agreement")
LOSS_MODES = ("all", "answer")   # loss on every position (language model) | on the answer only
AGREEMENT_FILLERS = ("independent", "sintetico")
MAX_DISTANCE = 5000                 # a sanity bound: lengths beyond this are typos
DEFAULT_FILLER_VOCAB = 20           # recall/order filler words (the orientation runs use 20)

# Task words, disjoint from every filler word (a test checks it).
RECALL_KEYS = tuple(sg for sg, _, _ in sintetico.ANIMATE)   # homem, mulher, menino, ...
RECALL_QUERY = "quem"
ORDER_MARKERS = ("sim", "não")
ORDER_QUERY = "ordem"
ORDER_ANSWERS = tuple(f"{a}-{b}" for a in ORDER_MARKERS for b in ORDER_MARKERS)  # class 2*first + second


def filler_pool() -> list[str]:
    """Every filler word recall and order may use, in the order they are taken.

    One-word adverbs, then inanimate nouns (singular), then modifiers
    (masculine singular), all from `sintetico`'s lists; `filler_vocab_size`
    takes a prefix, so the default 20 are the 10 adverbs and 10 nouns.
    """
    words = list(sintetico.ADVERBS_1)
    words += [sg for sg, _, _ in sintetico.INANIMATE]
    words += [forms[0] for forms in sintetico.MODIFIERS]
    taken = set(RECALL_KEYS) | {RECALL_QUERY, ORDER_QUERY} | set(ORDER_MARKERS) | set(ORDER_ANSWERS)
    seen, out = set(), []
    for w in words:
        if w not in seen and w not in taken:
            seen.add(w)
            out.append(w)
    return out


# ---------------------------------------------------------------- spec


@dataclass(frozen=True)
class TaskSpec:
    """Everything that decides a task's data; `make_task(spec)` is a pure function of it.

    Fields left None take the task's default; a field that does not apply to
    the task must stay None (it would be silently ignored otherwise).
    """

    name: str                              # recall | order | agreement
    distance: int                          # recall/order: words between key and query; agreement: verb - subject
    keys: int = 2                          # classes the key selects: recall k keys (chance 1/k); order and agreement: 2
    filler_vocab_size: int | None = None   # recall/order: distinct filler words (None: 20)
    n_train: int = 2000                    # training sequences
    n_test: int = 500                      # held-out sequences, none equal to a training one
    seed: int = 0                          # the data is a pure function of the spec
    lead: int | None = None                # recall/order: key position uniform on [0, lead] (None: 0)
    second: int | None = None              # order: second marker `second` words after the first (None: uniform 1..d)
    agreement_filler: str | None = None    # agreement: 'independent' | 'sintetico' (None: independent)

    def validate(self) -> "TaskSpec":
        """Raise UserError (one line) for nonsense; return self."""
        def is_int(x):
            return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

        if self.name not in TASKS:
            raise UserError(f"unknown task {self.name!r}; choose one of {', '.join(TASKS)}")
        for f in ("distance", "keys", "n_train", "n_test", "seed"):
            if not is_int(getattr(self, f)):
                raise UserError(f"task {f} must be an integer, got {getattr(self, f)!r}")
        for f in ("filler_vocab_size", "lead", "second"):
            if getattr(self, f) is not None and not is_int(getattr(self, f)):
                raise UserError(f"task {f} must be an integer or None, got {getattr(self, f)!r}")
        if self.n_train < 1 or self.n_test < 1:
            raise UserError(f"a task needs at least one training and one test sequence, "
                            f"got n_train={self.n_train}, n_test={self.n_test}")
        if self.seed < 0:
            raise UserError(f"task seed must be >= 0, got {self.seed}")
        if self.distance > MAX_DISTANCE:
            raise UserError(f"task distance {self.distance} is above {MAX_DISTANCE}")
        if self.name == "agreement":
            for f in ("filler_vocab_size", "lead", "second"):
                if getattr(self, f) is not None:
                    raise UserError(f"{f} is for the recall/order tasks; agreement's filler comes from sintetico")
            if self.distance < 3:
                raise UserError(f"agreement distance must be >= 3 (room for a noun between subject and verb), "
                                f"got {self.distance}")
            if self.keys != 2:
                raise UserError(f"agreement has 2 classes (singular, plural), got keys={self.keys}")
            if self.agreement_filler is not None and self.agreement_filler not in AGREEMENT_FILLERS:
                raise UserError(f"unknown agreement_filler {self.agreement_filler!r}; "
                                f"choose {' or '.join(AGREEMENT_FILLERS)}")
            return self
        if self.agreement_filler is not None:
            raise UserError("agreement_filler is for the agreement task")
        if self.distance < 1:
            raise UserError(f"{self.name} distance (filler words between key and query) must be >= 1, "
                            f"got {self.distance}")
        pool = len(filler_pool())
        if self.filler_vocab_size is not None and not 1 <= self.filler_vocab_size <= pool:
            raise UserError(f"filler_vocab_size must be in [1, {pool}], got {self.filler_vocab_size}")
        if self.lead is not None and not 0 <= self.lead <= MAX_DISTANCE:
            raise UserError(f"lead (the key's latest position) must be in [0, {MAX_DISTANCE}], got {self.lead}")
        if self.name == "recall":
            if not 2 <= self.keys <= len(RECALL_KEYS):
                raise UserError(f"recall keys must be in [2, {len(RECALL_KEYS)}], got {self.keys}")
            if self.second is not None:
                raise UserError("second (the second marker's offset) is for the order task")
        else:
            if self.keys != 2:
                raise UserError(f"order has 2 markers (4 classes), got keys={self.keys}")
            if self.second is not None and not 1 <= self.second <= self.distance:
                raise UserError(f"second (offset of the second marker after the first) must be in "
                                f"[1, distance={self.distance}], got {self.second}")
        return self

    @property
    def n_classes(self) -> int:
        """C, the answers the key chooses between: k (recall), 4 (order), 2 (agreement)."""
        return 4 if self.name == "order" else self.keys

    @property
    def chance(self) -> float:
        """The answer accuracy of a predictor that does not see the key: 1/C (order: 1/4; with the
        second marker seen, 1/2)."""
        return 1.0 / self.n_classes

    @property
    def length(self) -> int:
        """S, tokens per sequence: recall/order lead + d + 3; agreement d + 2."""
        if self.name == "agreement":
            return self.distance + 2
        return (self.lead or 0) + self.distance + 3

    @property
    def lag(self) -> int:
        """query_pos - key_pos: recurrent steps from the key's state to the state predicting the answer."""
        return self.distance - 1 if self.name == "agreement" else self.distance + 1

    def to_json(self) -> dict:
        return {k: int(v) if isinstance(v, np.integer) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> "TaskSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserError(f"unknown task settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d).validate()


# ---------------------------------------------------------------- data


class Split(NamedTuple):
    """One split of a task: N sequences of S tokens and where their dependency lives."""

    tokens: np.ndarray      # (N, S) int32 token ids
    key_pos: np.ndarray     # (N,) int32: the key / first marker / subject head
    query_pos: np.ndarray   # (N,) int32: the input whose step predicts the answer (answer_pos - 1)
    answer_pos: np.ndarray  # (N,) int32
    labels: np.ndarray      # (N,) int32 in [0, C): the class the key decides
    candidates: np.ndarray  # (N, C) int32: the answer word of each class; candidates[i, labels[i]] is the answer

    @property
    def answers(self) -> np.ndarray:
        """(N,) int32: the answer word of each sequence."""
        return self.tokens[np.arange(len(self.tokens)), self.answer_pos]

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class TaskData:
    """A generated task: its spec, vocabulary and two splits."""

    spec: TaskSpec
    vocab: list     # id -> word; starts with <unk>, <eos> (never used) so that it is a valid rnnlm Vocab
    train: Split
    test: Split

    @property
    def stoi(self) -> dict:
        return {w: i for i, w in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            raise UserError(f"a task has splits 'train' and 'test', got {name!r}")
        return self.train if name == "train" else self.test

    def render(self, split: str = "test", i: int = 0, mark: bool = True) -> str:
        """Example i as text; with `mark`, the words that decide the answer and the answer in [brackets]."""
        s = self.split(split)
        toks = [self.vocab[t] for t in s.tokens[i]]
        if mark:
            marked = {int(s.key_pos[i]), int(s.answer_pos[i])}
            if self.spec.name == "order":
                marked |= {j for j, w in enumerate(toks) if w in ORDER_MARKERS}
            if self.spec.name == "agreement":
                marked.add(int(s.key_pos[i]) - 1)   # the subject's article shows its number too
            toks = [f"[{w}]" if j in marked else w for j, w in enumerate(toks)]
        return " ".join(toks)


def task_vocab(spec: TaskSpec) -> list:
    """The vocabulary of a task: the specials, the task words, then the filler words (fixed by the spec)."""
    spec.validate()
    if spec.name == "agreement":
        return list(SPECIALS) + sorted(sintetico.all_words())
    fillers = filler_pool()[: spec.filler_vocab_size or DEFAULT_FILLER_VOCAB]
    if spec.name == "recall":
        words = list(RECALL_KEYS[: spec.keys]) + [RECALL_QUERY]
    else:
        words = list(ORDER_MARKERS) + [ORDER_QUERY] + list(ORDER_ANSWERS)
    return list(SPECIALS) + words + fillers


def _balanced_labels(rng, n, n_classes):
    """n labels, each class n // C or n // C + 1 times, in random order."""
    return rng.permutation(np.resize(np.arange(n_classes, dtype=np.int32), n)).astype(np.int32)


def _draw_recall_order(spec, stoi, rng, labels):
    """Rows for the given labels: (tokens (n, S), key_pos (n,), candidates (C,))."""
    n, S, d = len(labels), spec.length, spec.distance
    F = spec.filler_vocab_size or DEFAULT_FILLER_VOCAB
    fill = np.array([stoi[w] for w in filler_pool()[:F]], np.int32)
    tokens = fill[rng.integers(0, F, size=(n, S))]
    lead = spec.lead or 0
    key_pos = rng.integers(0, lead + 1, size=n).astype(np.int32) if lead else np.zeros(n, np.int32)
    rows = np.arange(n)
    if spec.name == "recall":
        keys = np.array([stoi[w] for w in RECALL_KEYS[: spec.keys]], np.int32)
        tokens[rows, key_pos] = keys[labels]
        tokens[rows, key_pos + d + 1] = stoi[RECALL_QUERY]
        tokens[rows, key_pos + d + 2] = keys[labels]   # the answer is the key word itself
        return tokens, key_pos, keys
    markers = np.array([stoi[w] for w in ORDER_MARKERS], np.int32)
    answers = np.array([stoi[w] for w in ORDER_ANSWERS], np.int32)
    offset = (np.full(n, spec.second, np.int64) if spec.second is not None
              else rng.integers(1, d + 1, size=n))
    tokens[rows, key_pos] = markers[labels // 2]
    tokens[rows, key_pos + offset] = markers[labels % 2]
    tokens[rows, key_pos + d + 1] = stoi[ORDER_QUERY]
    tokens[rows, key_pos + d + 2] = answers[labels]
    return tokens, key_pos, answers


_NOUN_BY_FORM = {form: noun for noun in sintetico.ANIMATE for form in noun[:2]}
_NUMBERS = (sintetico.SG, sintetico.PL)   # label 0 = singular, 1 = plural


def _agreement_sentence(spec, rng, label):
    """(tokens, (singular verb, plural verb)) of one sentence cut after its verb, subject number `label`."""
    number, d = _NUMBERS[label], spec.distance
    if (spec.agreement_filler or "independent") == "sintetico":
        # sintetico's own attractor mix, kept only when its subject has the wanted number
        while True:
            s = sintetico.generate_sentence(rng, d, rng.random() < sintetico.DEFAULTS["attractor_rate"],
                                            None, 0.0, ("verb",), 0.0)
            if s.number == number:
                break
    else:
        # no attractor: every filler noun takes this sentence's own (random) number, re-inflected below
        s = sintetico.generate_sentence(rng, d, False, None, 0.0, ("verb",), 0.0)
    t = s.targets[0]
    toks = list(s.tokens[: t.position + 1])
    verb = {s.number: t.correct, _NUMBERS[1 - _NUMBERS.index(s.number)]: t.wrong}
    if s.number != number:
        # Re-inflect the subject (article and noun) and the verb; the filler keeps the old number.
        article = sintetico.INDEFINITE if toks[0] in sintetico.INDEFINITE.values() else sintetico.DEFINITE
        toks[0] = article[(number, s.gender)]
        noun = _NOUN_BY_FORM[toks[1]]
        toks[1] = noun[0] if number == sintetico.SG else noun[1]
        toks[-1] = verb[number]
    return toks, (verb[sintetico.SG], verb[sintetico.PL])


def _draw_agreement(spec, stoi, rng, labels):
    """Rows for the given labels: (tokens (n, S), key_pos (n,), candidates (n, 2))."""
    n = len(labels)
    tokens = np.empty((n, spec.length), np.int32)
    cands = np.empty((n, 2), np.int32)
    for i, lab in enumerate(labels):
        toks, forms = _agreement_sentence(spec, rng, int(lab))
        tokens[i] = [stoi[w] for w in toks]
        cands[i] = [stoi[w] for w in forms]
    return tokens, np.ones(n, np.int32), cands


def _make_split(spec, stoi, rng, n, forbidden, max_rounds=50):
    """n sequences with balanced labels; with `forbidden` (a set of row bytes), none in it and none repeated."""
    labels = _balanced_labels(rng, n, spec.n_classes)
    draw = _draw_agreement if spec.name == "agreement" else _draw_recall_order
    tokens, key_pos, cands = draw(spec, stoi, rng, labels)
    cands = np.broadcast_to(cands, (n, spec.n_classes)).copy() if cands.ndim == 1 else cands
    if forbidden is not None:
        seen, pending = set(forbidden), range(n)
        for _ in range(max_rounds):
            bad = []
            for i in pending:
                row = tokens[i].tobytes()
                if row in seen:
                    bad.append(i)
                else:
                    seen.add(row)
            if not bad:
                break
            # Redraw the rejected rows with their own labels (balance holds) and check them again.
            t, k, c = draw(spec, stoi, rng, labels[bad])
            tokens[bad], key_pos[bad] = t, k
            if c.ndim == 2:
                cands[bad] = c
            pending = bad
        else:
            raise UserError(f"cannot draw {n} held-out {spec.name} sequences unlike the training ones at "
                            f"distance {spec.distance}: too few distinct sequences; raise distance or "
                            f"filler_vocab_size, or lower n_test")
    query_pos = (key_pos + spec.lag).astype(np.int32)
    return Split(tokens, key_pos.astype(np.int32), query_pos, (query_pos + 1).astype(np.int32),
                 labels, cands.astype(np.int32))


_TASK_INDEX = {name: i for i, name in enumerate(TASKS)}


def make_task(spec: TaskSpec) -> TaskData:
    """Generate a task's vocabulary, training and held-out splits from its spec (deterministic).

    Train and test come from separate seed streams, so the training set does
    not depend on n_test. Labels are balanced exactly (class counts differ by
    at most one); test sequences are distinct and none equals a training one.
    """
    spec.validate()
    vocab = task_vocab(spec)
    stoi = {w: i for i, w in enumerate(vocab)}
    seq = np.random.SeedSequence([spec.seed, _TASK_INDEX[spec.name]])
    train_ss, test_ss = seq.spawn(2)
    train = _make_split(spec, stoi, np.random.default_rng(train_ss), spec.n_train, None)
    forbidden = {row.tobytes() for row in train.tokens}
    test = _make_split(spec, stoi, np.random.default_rng(test_ss), spec.n_test, forbidden)
    return TaskData(spec, vocab, train, test)


# ---------------------------------------------------------------- batches and accuracy


class Batch(NamedTuple):
    """B sequences side by side, time-major; each column starts from a zero state."""

    inputs: np.ndarray      # (T, B) int32, T = S - 1: tokens[:, :-1] transposed
    targets: np.ndarray     # (T, B) int32: tokens[:, 1:] transposed
    weights: np.ndarray     # (T, B) float32: 1 where the loss counts, else 0
    key_t: np.ndarray       # (B,) int64: the step that reads the key (inputs[key_t[b], b] is the key)
    answer_t: np.ndarray    # (B,) int64: the step whose output predicts the answer (targets[answer_t[b], b])
    answers: np.ndarray     # (B,) int32
    candidates: np.ndarray  # (B, C) int32: the answer word of each class
    labels: np.ndarray      # (B,) int32


def make_batch(split: Split, index=None, mode: str = "all") -> Batch:
    """The time-major batch of the sequences `index` (default all) of a split.

    mode 'all': weight 1 on every position (a language model); 'answer': 1
    only at (answer_t[b], b). A trainer divides the weighted loss sum by
    weights.sum(). The lag key_t -> answer_t is the task's `lag`.
    """
    if mode not in LOSS_MODES:
        raise UserError(f"unknown loss mode {mode!r}; choose {' or '.join(LOSS_MODES)}")
    index = np.arange(len(split)) if index is None else np.asarray(index)
    if index.ndim != 1 or index.size == 0:
        raise UserError("a batch needs a non-empty 1-D index of sequences")
    seqs = split.tokens[index]
    B = len(index)
    inputs = np.ascontiguousarray(seqs[:, :-1].T)
    targets = np.ascontiguousarray(seqs[:, 1:].T)
    answer_t = split.answer_pos[index].astype(np.int64) - 1
    if mode == "all":
        weights = np.ones(inputs.shape, np.float32)
    else:
        weights = np.zeros(inputs.shape, np.float32)
        weights[answer_t, np.arange(B)] = 1.0
    return Batch(inputs, targets, weights, split.key_pos[index].astype(np.int64), answer_t,
                 seqs[np.arange(B), answer_t + 1].astype(np.int32), split.candidates[index], split.labels[index])


def sample_batch(split: Split, batch_size: int, rng, mode: str = "all") -> Batch:
    """A batch of `batch_size` sequences drawn without replacement (with, if the split is smaller)."""
    n = len(split)
    index = rng.choice(n, size=batch_size, replace=batch_size > n)
    return make_batch(split, index, mode)


def answer_correct(scores, batch: Batch, restrict: bool = True) -> np.ndarray:
    """(B,) bool: whether each column's answer was predicted.

    scores: log-probabilities or logits, (T, B, V) over the window or (B, V)
    at the answer step; or integer predictions, (T, B) or (B,). With
    `restrict` (scores only) the prediction is the best of the C candidate
    answers (chance 1/C); without it, the argmax over the whole vocabulary.
    """
    a = np.asarray(scores)
    B = len(batch.answers)
    cols = np.arange(B)
    integer = np.issubdtype(a.dtype, np.integer)
    if integer and a.ndim == 2:
        a = a[batch.answer_t, cols]
    elif not integer and a.ndim == 3:
        a = a[batch.answer_t, cols]
    if integer:
        if a.shape != (B,):
            raise ValueError(f"predictions must be (T, B) or (B,) with B={B}, got {np.shape(scores)}")
        return a == batch.answers
    if a.ndim != 2 or a.shape[0] != B:
        raise ValueError(f"scores must be (T, B, V) or (B, V) with B={B}, got {np.shape(scores)}")
    if restrict:
        pick = np.take_along_axis(a, batch.candidates.astype(np.int64), axis=1).argmax(axis=1)
        return batch.candidates[cols, pick] == batch.answers
    return a.argmax(axis=1) == batch.answers


def answer_accuracy(scores, batch: Batch, restrict: bool = True) -> float:
    """Fraction of columns whose answer was predicted (see `answer_correct`)."""
    return float(answer_correct(scores, batch, restrict).mean())


def model_answer_logprobs(model, split: Split, index=None, batch_size: int = 256) -> np.ndarray:
    """(N, V) float64 log-probabilities a `rnnlm.model.RNNModel` gives at each sequence's answer step.

    Each sequence runs from a zero state, without dropout, through
    `model.forward_states`; only the answer rows go through the output layer.
    """
    index = np.arange(len(split)) if index is None else np.asarray(index)
    p = model.params
    W = np.asarray(p["encoder.weight" if model.config.tied else "decoder.weight"], np.float64)
    bias = np.asarray(p["decoder.bias"], np.float64)
    out = np.empty((len(index), W.shape[0]), np.float64)
    for lo in range(0, len(index), batch_size):
        batch = make_batch(split, index[lo:lo + batch_size])
        top = model.forward_states(batch.inputs).hs[-1]                # (T, B, H)
        h = top[batch.answer_t, np.arange(len(batch.answer_t))].astype(np.float64)   # (B, H)
        logits = h @ W.T + bias
        m = logits.max(axis=1, keepdims=True)
        out[lo:lo + len(h)] = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return out


def model_accuracy(model, data: TaskData, split: str = "test", batch_size: int = 256,
                   restrict: bool = True) -> float:
    """Answer accuracy of a trained model on a split (default the held-out one)."""
    s = data.split(split)
    logp = model_answer_logprobs(model, s, batch_size=batch_size)
    return answer_accuracy(logp, make_batch(s), restrict)


# ---------------------------------------------------------------- task folders

SPEC_FILE = "task.json"
_ARRAYS = ("tokens", "key_pos", "query_pos", "answer_pos", "labels", "candidates")


def _save_npy(path: Path, arr: np.ndarray):
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))


def default_name(spec: TaskSpec) -> str:
    """A folder name that spells the spec's main settings, e.g. 'recall-d20-k2-s0'."""
    return f"{spec.name}-d{spec.distance}-k{spec.keys}-s{spec.seed}"


def save_task(data: TaskData, folder) -> Path:
    """Write a task folder: `<split>.<array>.npy` (numpy's own format, no pickle) and task.json last."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / SPEC_FILE
    meta.unlink(missing_ok=True)   # an interrupted rewrite must not pass for a complete task
    for name in ("train", "test"):
        s = data.split(name)
        for a in _ARRAYS:
            _save_npy(folder / f"{name}.{a}.npy", getattr(s, a))
    doc = {"format": FORMAT_VERSION, "spec": data.spec.to_json(), "vocab": data.vocab,
           "length": data.spec.length, "lag": data.spec.lag,
           "examples": [data.render("test", i) for i in range(min(3, len(data.test)))]}
    atomic_write_json(meta, doc)
    return folder


def load_task(folder) -> TaskData:
    """Read a folder written by `save_task`."""
    folder = Path(folder)
    meta = folder / SPEC_FILE
    if not meta.exists():
        raise UserError(f"{folder} is not a task folder (no {SPEC_FILE})")
    doc = json.loads(meta.read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT_VERSION:
        raise UserError(f"{meta} has format {doc.get('format')}, this version reads {FORMAT_VERSION}; "
                        f"delete the folder to regenerate it")
    spec = TaskSpec.from_json(doc["spec"])
    splits = {}
    for name in ("train", "test"):
        try:
            arrays = [np.load(folder / f"{name}.{a}.npy", allow_pickle=False) for a in _ARRAYS]
        except FileNotFoundError as exc:
            raise UserError(f"task folder {folder} is incomplete ({exc.filename} missing); "
                            f"delete it to regenerate") from None
        splits[name] = Split(*arrays)
    return TaskData(spec, list(doc["vocab"]), splits["train"], splits["test"])


def ensure_task(folder, spec: TaskSpec) -> TaskData:
    """The task in `folder` if it was written for this spec (and this format), else generate and save it."""
    folder = Path(folder)
    meta = folder / SPEC_FILE
    spec.validate()
    if meta.exists():
        try:
            doc = json.loads(meta.read_text(encoding="utf-8"))
            if doc.get("format") == FORMAT_VERSION and doc.get("spec") == spec.to_json():
                return load_task(folder)
        except (json.JSONDecodeError, UserError):
            pass
    data = make_task(spec)
    save_task(data, folder)
    return data
