"""Interpolated modified Kneser–Ney n-gram model: the baseline the neural models must beat.

Trained on the training split's token ids and scored on valid/test with the
same closed vocabulary (V ids, <unk> and <eos> included) and the same targets
as the neural models: every position i ≥ 1 of a split's id stream, predicting
ids[i] from the (up to N-1) ids before it. The stream is continuous across
sentences because <eos> is an ordinary token, so there is no <s> padding;
position 1 has only one word of history and uses the bigram estimate.
Cross-entropy is in nats/token; perplexity = exp(cross-entropy).

The estimate (Chen & Goodman 1998, "An empirical study of smoothing
techniques", eq. 26, interpolated), for an order-n word w after history h
(h is the last n-1 words, h' = h without its oldest word):

    P_n(w | h) = max(c_n(h w) - D_n(c_n(h w)), 0) / c_n(h ·)
                 + gamma_n(h) * P_{n-1}(w | h')
    gamma_n(h) = (D_n1 N1(h ·) + D_n2 N2(h ·) + D_n3+ N3+(h ·)) / c_n(h ·)
    P_0(w)     = 1 / V                          (so no probability is zero)

- c_N is the raw count at the highest order N. Lower orders use continuation
  counts: c_n(g) = N1+(· g), the number of distinct words seen before the
  n-gram g, i.e. the number of (n+1)-gram types whose last n words are g.
- c_n(h ·) = sum over w of c_n(h w); Nk(h ·) = number of w with c_n(h w) = k
  (N3+: ≥ 3). A history never seen at order n (c_n(h ·) = 0) falls through:
  P_n(w | h) = P_{n-1}(w | h').
- Three discounts per order, from that order's count-of-counts n_k (the
  number of n-gram types whose count at that order is k):
      Y = n1 / (n1 + 2 n2)
      D1 = 1 - 2 Y n2 / n1,  D2 = 2 - 3 Y n3 / n2,  D3+ = 3 - 4 Y n4 / n3
  D_k ≤ k always, so each numerator stays ≥ 0 and the distribution sums to 1
  exactly. D1 simplifies to Y, which is > 0 whenever n1 > 0. On toy data a
  count-of-count can be zero (a discount undefined) or D2, D3+ can come out
  ≤ 0; then the previous discount is reused (D1 = 0.5 when n1 = 0), so every
  discount is positive and every seen history passes some mass down. Corpora
  of real size never reach these guards.

The one thing to know before editing: an n-gram (a_1 .. a_n) is packed into
one int64 key ((a_1 V + a_2) V + ...) V + a_n, so key // V is its history,
key % V its last word and key % V**(n-1) its suffix. Keys sorted by np.unique
are therefore grouped by history, which is how the per-history sums come out
of np.add.reduceat, and every lookup is a searchsorted on a sorted key array.
The empty history packs to 0, so the unigram order is handled like the rest.
V**N must fit in an int64 (V up to ~2 million for a trigram).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .errors import UserError, plural
from .runs import fmt_ppl


@dataclass
class NgramOrder:
    """One order n of the model (n = 1 for unigrams): its n-gram types and per-history sums."""
    n: int
    keys: np.ndarray              # (G,) int64 packed n-gram types, sorted (hence grouped by history)
    counts: np.ndarray            # (G,) int64 raw counts (highest order) or continuation counts
    history_keys: np.ndarray      # (C,) int64 packed (n-1)-word histories, sorted
    history_totals: np.ndarray    # (C,) float64 c_n(h ·)
    history_backoff: np.ndarray   # (C,) float64 D1 N1(h ·) + D2 N2(h ·) + D3+ N3+(h ·) = gamma_n(h) c_n(h ·)
    discounts: np.ndarray         # (4,) float64 [0, D1, D2, D3+], indexed by min(count, 3)
    count_of_counts: np.ndarray   # (4,) int64 n1, n2, n3, n4

    def to_dict(self) -> dict:
        return {
            "order": self.n,
            "types": int(self.keys.size),
            "histories": int(self.history_keys.size),
            "discounts": [float(d) for d in self.discounts[1:]],
            "count_of_counts": [int(c) for c in self.count_of_counts],
        }


def modified_kn_discounts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chen & Goodman's three discounts from the count-of-counts of `counts`.

    Returns ([0, D1, D2, D3+], [n1, n2, n3, n4]); see the module docstring for
    the formula and the guards used when a count-of-count is zero.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n1, n2, n3, n4 = (int(c) for c in np.bincount(np.minimum(counts, 5), minlength=6)[1:5])
    y = n1 / (n1 + 2 * n2) if n1 > 0 else 0.5
    d1 = 1.0 - 2.0 * y * n2 / n1 if n1 > 0 else 0.5
    d2 = 2.0 - 3.0 * y * n3 / n2 if n2 > 0 else 0.0
    d2 = d2 if d2 > 0 else d1
    d3 = 3.0 - 4.0 * y * n4 / n3 if n3 > 0 else 0.0
    d3 = d3 if d3 > 0 else d2
    return np.array([0.0, d1, d2, d3]), np.array([n1, n2, n3, n4], dtype=np.int64)


def _pack(columns: list[np.ndarray], vocab_size: int, size: int) -> np.ndarray:
    """Pack equal-length int columns (oldest word first) into int64 keys; no columns -> zeros."""
    keys = np.zeros(size, dtype=np.int64)
    for column in columns:
        keys = keys * vocab_size + column
    return keys


def _lookup(sorted_keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each query in sorted_keys and whether it is there (index is clipped, valid only if found)."""
    if sorted_keys.size == 0:
        return np.zeros(queries.size, dtype=np.int64), np.zeros(queries.size, dtype=bool)
    index = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    return index, sorted_keys[index] == queries


def _make_order(n: int, keys: np.ndarray, counts: np.ndarray, vocab_size: int,
                discounts: np.ndarray | None) -> NgramOrder:
    estimated, count_of_counts = modified_kn_discounts(counts)
    if discounts is None:
        discounts = estimated
    if keys.size == 0:
        empty = np.zeros(0)
        return NgramOrder(n, keys, counts, np.zeros(0, dtype=np.int64), empty, empty,
                          discounts, count_of_counts)
    histories = keys // vocab_size
    history_keys, starts = np.unique(histories, return_index=True)
    history_totals = np.add.reduceat(counts.astype(np.float64), starts)
    history_backoff = np.add.reduceat(discounts[np.minimum(counts, 3)], starts)
    return NgramOrder(n, keys, counts, history_keys, history_totals, history_backoff,
                      discounts, count_of_counts)


class KneserNey:
    """Interpolated modified Kneser–Ney language model of any order N ≥ 1 over a closed vocabulary.

    Build with `KneserNey.fit(ids, vocab_size, order)`; score with `logprob`,
    `cross_entropy` or `prob_distribution`. `orders[n-1]` holds order n.
    """

    def __init__(self, orders: list[NgramOrder], vocab_size: int):
        self.orders = orders
        self.vocab_size = vocab_size
        self.order = len(orders)

    @classmethod
    def fit(cls, ids, vocab_size: int, order: int = 3, discounts=None) -> "KneserNey":
        """Count n-grams of the id stream `ids` and estimate the model.

        discounts: None to estimate them (modified KN), or one (D1, D2, D3+)
        triple per order, lowest order first (the tests use this to check a
        probability by hand).
        """
        ids = _check_ids(ids, vocab_size)
        if order < 1:
            raise ValueError(f"order must be ≥ 1, got {order}")
        if vocab_size ** order >= 2 ** 63:
            raise ValueError(f"vocab_size**order = {vocab_size}**{order} does not fit in an int64 key")
        if discounts is not None:
            if len(discounts) != order or any(len(d) != 3 for d in discounts):
                raise ValueError(f"discounts: need {order} triples (D1, D2, D3+), lowest order first")
            discounts = [np.array([0.0, *map(float, d)]) for d in discounts]
            if any(not (0 < d[k] <= k) for d in discounts for k in (1, 2, 3)):
                raise ValueError("discounts: need 0 < D1 ≤ 1, 0 < D2 ≤ 2, 0 < D3+ ≤ 3")
        ids64 = ids.astype(np.int64)
        # highest order: raw counts of every n-gram in the stream
        windows = max(ids64.size - order + 1, 0)
        keys = _pack([ids64[j:j + windows] for j in range(order)], vocab_size, windows)
        keys, counts = np.unique(keys, return_counts=True)
        counts = counts.astype(np.int64)
        orders = [None] * order
        for n in range(order, 0, -1):
            orders[n - 1] = _make_order(n, keys, counts, vocab_size,
                                        None if discounts is None else discounts[n - 1])
            # continuation counts for order n-1: each order-n type adds one to its suffix
            keys, counts = np.unique(keys % (vocab_size ** (n - 1)), return_counts=True)
            counts = counts.astype(np.int64)
        return cls(orders, vocab_size)

    def _probs(self, histories: np.ndarray, words: np.ndarray) -> np.ndarray:
        """P(words[m] | histories[m]) for each row m.

        histories: (M, N-1) int64, oldest word first, -1 where the history is
        shorter (left padding); words: (M,) int64. Returns (M,) float64.
        """
        V = self.vocab_size
        prob = np.full(words.size, 1.0 / V)   # P_0: uniform
        for level in self.orders:
            n = level.n
            # rows with a full (n-1)-word history, and that history's key
            if n > 1:
                recent = histories[:, histories.shape[1] - (n - 1):]
                rows = np.flatnonzero((recent >= 0).all(axis=1))
                history = _pack([recent[rows, j] for j in range(n - 1)], V, rows.size)
            else:
                rows = np.arange(words.size)
                history = np.zeros(words.size, dtype=np.int64)
            h_index, h_found = _lookup(level.history_keys, history)
            rows, history, h_index = rows[h_found], history[h_found], h_index[h_found]
            g_index, g_found = _lookup(level.keys, history * V + words[rows])
            count = np.where(g_found, level.counts[g_index], 0)
            discounted = np.maximum(count - level.discounts[np.minimum(count, 3)], 0.0)
            prob[rows] = (discounted + level.history_backoff[h_index] * prob[rows]) \
                / level.history_totals[h_index]
        return prob

    def logprob(self, ids) -> np.ndarray:
        """Natural-log probability of ids[i] given the ids before it, for i = 1 .. len(ids)-1.

        Returns (len(ids)-1,) float64; entry i-1 is for position i.
        """
        ids = _check_ids(ids, self.vocab_size).astype(np.int64)
        width = self.order - 1
        padded = np.concatenate([np.full(width, -1, dtype=np.int64), ids])
        targets = ids[1:]
        # history column j of position i is ids[i - width + j] = padded[i + j]
        histories = np.stack([padded[1 + j:1 + j + targets.size] for j in range(width)], axis=1) \
            if width else np.zeros((targets.size, 0), dtype=np.int64)
        return np.log(self._probs(histories, targets))

    def cross_entropy(self, ids) -> float:
        """Mean negative log-probability in nats/token over positions 1 .. len(ids)-1."""
        logp = self.logprob(ids)
        if logp.size == 0:
            raise ValueError("cross_entropy needs at least two ids")
        return float(-logp.mean())

    def prob_distribution(self, context=()) -> np.ndarray:
        """P(w | context) for every w in the vocabulary, shape (V,).

        context: the preceding ids, most recent last; only the last N-1 are
        used, and a shorter context backs off to the orders it allows.
        """
        width = self.order - 1
        context = [int(c) for c in context][-width:] if width else []
        _check_ids(np.array(context, dtype=np.int64), self.vocab_size)
        row = np.array([-1] * (width - len(context)) + context, dtype=np.int64)
        words = np.arange(self.vocab_size, dtype=np.int64)
        return self._probs(np.broadcast_to(row, (words.size, width)), words)

    def summary(self) -> dict:
        return {"order": self.order, "vocab_size": self.vocab_size,
                "orders": [level.to_dict() for level in self.orders]}


class KneserNeyTrigram(KneserNey):
    """The baseline: interpolated modified Kneser–Ney with N = 3."""

    @classmethod
    def fit(cls, ids, vocab_size: int, order: int = 3, discounts=None) -> "KneserNeyTrigram":
        if order != 3:
            raise ValueError("KneserNeyTrigram is order 3; use KneserNey.fit(..., order=n)")
        return super().fit(ids, vocab_size, order=3, discounts=discounts)


def _check_ids(ids, vocab_size: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError("ids must be a 1-D integer array")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids must lie in [0, {vocab_size}), got [{ids.min()}, {ids.max()}]")
    return ids


# ---------------------------------------------------------------- command


def baseline_report(data, splits=("valid", "test")) -> dict:
    """`rnnlm baseline`: fit KN trigram (and bigram, unigram) on train, score `splits`.

    data: a config.DataConfig. Returns the JSON-ready report (format_report prints it).
    """
    from .data import load_corpus

    started = time.perf_counter()
    corpus = load_corpus(data)
    load_seconds = time.perf_counter() - started
    # a held-out split needs 2 tokens (one prediction); --*-fraction 0 means none: skip it
    empty = {s: f"{getattr(corpus, s).size} {plural(getattr(corpus, s).size, 'token')} "
                f"(--{s}-fraction {getattr(data, s + '_fraction'):g})"
             for s in splits if getattr(corpus, s).size < 2}
    splits = [s for s in splits if s not in empty]
    if not splits:
        raise UserError(f"nothing to score: the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} "
                        f"hold{'' if len(empty) > 1 else 's'} {'; '.join(empty.values())}; raise "
                        f"{' or '.join('--' + s + '-fraction' for s in empty)}"
                        f"{' or choose another --split' if len(empty) == 1 else ''}")
    V = len(corpus.vocab)

    report = {"corpus": data.corpus, "checksum": corpus.checksum, "oov_rate": corpus.oov_rate,
              "vocab_size": V, "train_tokens": int(corpus.train.size),
              "load_seconds": round(load_seconds, 3), "models": {}, "skipped": empty}
    for order, name in ((3, "trigram"), (2, "bigram"), (1, "unigram")):
        started = time.perf_counter()
        model = KneserNey.fit(corpus.train, V, order=order)
        fit_seconds = time.perf_counter() - started
        entry = {"fit_seconds": round(fit_seconds, 3), **model.summary(), "splits": {}}
        for split in splits:
            ids = getattr(corpus, split)
            started = time.perf_counter()
            nats = model.cross_entropy(ids)
            entry["splits"][split] = {"tokens": int(ids.size - 1), "cross_entropy": nats,
                                      "perplexity": math.exp(nats),
                                      "seconds": round(time.perf_counter() - started, 3)}
        report["models"][name] = entry
    return report


def format_report(report: dict) -> str:
    """The table `rnnlm baseline` prints (without --json)."""
    lines = [f"corpus {report['corpus']}: V = {report['vocab_size']}, train {report['train_tokens']:,} tokens "
             f"(loaded in {report['load_seconds']:.1f}s)"]
    for name, entry in report["models"].items():
        lines.append(f"\nKneser-Ney {name} (interpolated, modified; fit {entry['fit_seconds']:.2f}s)")
        for level in entry["orders"]:
            d1, d2, d3 = level["discounts"]
            kind = "counts" if level["order"] == entry["order"] else "continuation counts"
            lines.append(f"  order {level['order']}: {level['types']:>10,} types, "
                         f"{level['histories']:>9,} histories, D1 {d1:.3f} D2 {d2:.3f} D3+ {d3:.3f} ({kind})")
        for split, result in entry["splits"].items():
            lines.append(f"  {split:5s}: {result['cross_entropy']:.4f} nats/token, "
                         f"perplexity {fmt_ppl(result['perplexity']):>8s}  ({result['tokens']:,} tokens, "
                         f"{result['seconds']:.2f}s)")
    for split, why in report.get("skipped", {}).items():
        lines.append(f"\n{split}: not scored, it holds {why}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the figure beside a training run

BASELINE_CACHE_FORMAT = "rnnlm-kn3-baseline-1"


def baseline_key(corpus) -> dict:
    """What a cached baseline figure depends on: the corpus checksum (text and tokenizer settings),
    the vocabulary settings and the split settings."""
    c = corpus.config
    return {"format": BASELINE_CACHE_FORMAT, "checksum": corpus.checksum, "max_vocab": c.max_vocab,
            "min_count": c.min_count, "valid_fraction": c.valid_fraction, "test_fraction": c.test_fraction,
            "split_seed": c.split_seed, "vocab_size": len(corpus.vocab)}


def cached_trigram(corpus) -> dict:
    """The Kneser–Ney trigram's cross-entropy and perplexity on the valid and test splits of `corpus`
    (a data.Corpus), with its vocabulary: {"valid": {"loss", "ppl", "tokens"}, "test": ..., "cached": bool}.

    Fitted once and stored as JSON beside the corpus's token cache
    (corpus.cache_path/baseline-kn3-<key hash>.json, keyed on `baseline_key`);
    with caching off or the folder not writable it is fitted every time. An
    empty split is left out.
    """
    import hashlib
    import json
    from pathlib import Path

    key = baseline_key(corpus)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(corpus.cache_path) / f"baseline-kn3-{digest}.json" if corpus.cache_path else None
    if path is not None and corpus.config.use_cache and path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("key") == key:
                return {**doc["splits"], "cached": True, "seconds": doc.get("seconds", 0.0)}
        except (OSError, ValueError, KeyError, TypeError):
            pass        # a damaged cache file is recomputed
    started = time.perf_counter()
    model = KneserNeyTrigram.fit(corpus.train, len(corpus.vocab))
    splits = {}
    for split in ("valid", "test"):
        ids = getattr(corpus, split)
        if ids.size >= 2:
            nats = model.cross_entropy(ids)
            splits[split] = {"loss": nats, "ppl": math.exp(nats) if nats < 700 else math.inf,
                             "tokens": int(ids.size - 1)}
    seconds = round(time.perf_counter() - started, 3)
    if path is not None:
        try:
            from .fileio import atomic_write_json
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, {"key": key, "splits": splits, "seconds": seconds})
        except OSError:
            pass        # an unwritable cache only costs the refit next time
    return {**splits, "cached": False, "seconds": seconds}
