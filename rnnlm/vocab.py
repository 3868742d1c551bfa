"""The vocabulary: a fixed list of words and the ids that index it.

Order is part of the model (row i of the embedding is word i), so it is fully
deterministic: the specials first (<unk> = 0, <eos> = 1), then words by
training-split count, descending, ties broken alphabetically (by code point).

The one thing to know before editing: a Vocab is saved with checkpoints
through `to_json()`; changing the order rule or the specials breaks every
saved model, so bump `FORMAT` and keep reading the old one.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .errors import UserError
from .tokenize import EOS, NUM, UNK

FORMAT = "rnnlm-vocab-1"
SPECIALS = (UNK, EOS)


class Vocab:
    """Words <-> int ids. `itos[i]` is word i; `stoi[word]` its id."""

    def __init__(self, itos: list[str], counts: list[int] | None = None):
        if list(itos[:2]) != list(SPECIALS):
            raise ValueError(f"a vocabulary starts with {SPECIALS}, got {itos[:2]}")
        if len(set(itos)) != len(itos):
            raise ValueError("a vocabulary lists each word once")
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        self.unk_id: int = self.stoi[UNK]
        self.eos_id: int = self.stoi[EOS]
        # Training-split count of each word (0 for <unk>), kept for reports; may be None.
        self.counts: list[int] | None = list(counts) if counts is not None else None

    @classmethod
    def build(cls, counts: Mapping[str, int], max_vocab: int = 0, min_count: int = 1) -> Vocab:
        """From word counts of the training split.

        max_vocab: total size including <unk> and <eos>; 0 = no limit.
        min_count: words seen fewer times become <unk>.
        """
        if max_vocab < 0 or max_vocab in (1, 2):
            raise UserError(f"--max-vocab {max_vocab}: must be 0 (no limit) or at least 3 "
                            f"(it counts <unk> and <eos>)")
        if min_count < 1:
            raise UserError(f"--min-count {min_count}: must be at least 1")
        # (-count, word) tuples sort in C: count descending, then alphabetically.
        ranked = sorted((-c, w) for w, c in counts.items() if c >= min_count and w not in SPECIALS)
        words = [c for w, c in counts.items() if w not in SPECIALS]
        if not ranked and words:    # every word below --min-count: a model of <unk> and <eos> alone
            raise UserError(f"--min-count {min_count} leaves no word in the vocabulary (the most frequent word "
                            f"of the training split occurs {max(words):,} times); give a smaller --min-count")
        if max_vocab:
            ranked = ranked[: max_vocab - len(SPECIALS)]
        return cls(list(SPECIALS) + [w for _, w in ranked],
                   [0, int(counts.get(EOS, 0))] + [-int(c) for c, _ in ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab({len(self)} words)"

    def __contains__(self, word) -> bool:
        """Whether `word` is one of the vocabulary's words (as written: the vocabulary of a lower-cased corpus
        holds "homem", not "Homem"). Anything but a str is no word of it (False, not a TypeError for a list)."""
        return isinstance(word, str) and word in self.stoi

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Tokens (an iterable of words) -> (n,) int32 ids; unknown words -> unk_id. Words are looked up as
        given: text is first split (and lower-cased, numbers mapped) the corpus's way by
        `rnnlm.tokenize.tokenize(text, keep_case=..., num_token=...)`. TypeError for a str (its characters
        would be read as words) or a token that is not a str."""
        if isinstance(tokens, (str, bytes)):
            raise TypeError(f"Vocab.encode takes a list of words, got a {type(tokens).__name__}: split it first "
                            "(rnnlm.tokenize.tokenize(text)), or wrap one word in a list")
        try:
            tokens = list(tokens)
        except TypeError:
            raise TypeError(f"Vocab.encode takes a list of words, got {type(tokens).__name__} {tokens!r:.40}")\
                from None
        bad = [t for t in tokens if not isinstance(t, str)][:1]     # (a list: the bad token may be None)
        if bad:
            raise TypeError(f"Vocab.encode: every token must be a str, got {type(bad[0]).__name__} {bad[0]!r}")
        get, unk = self.stoi.get, self.unk_id
        return np.fromiter((get(t, unk) for t in tokens), dtype=np.int32)

    def decode(self, ids) -> list[str]:
        """Ids (1-D integers in [0, len(self))) -> tokens; TypeError for ids that are not integers (a float id
        is refused, not truncated), ValueError for an id outside the vocabulary (a negative one would count
        from the end) or ids that are not 1-D."""
        from .argcheck import check_token_ids
        itos = self.itos
        return [itos[i] for i in check_token_ids(ids, len(itos), "Vocab.decode", "ids", "the vocabulary").tolist()]

    def reading(self) -> dict:
        """How the text of this vocabulary was tokenized, as seen in its words: {"keep_case", "num_token"}.

        keep_case: some word has a capital (a lower-cased corpus has none);
        num_token: the vocabulary holds <num>. generate_text reads a prime this way
        when not told.
        """
        return {"keep_case": any(w != w.lower() for w in self.itos[len(SPECIALS):]),
                "num_token": NUM in self.stoi}

    def to_json(self) -> dict:
        """A plain JSON-serializable dict (saved beside checkpoints and caches)."""
        d = {"format": FORMAT, "itos": self.itos}
        if self.counts is not None:
            d["counts"] = self.counts
        return d

    @classmethod
    def from_json(cls, d: dict) -> Vocab:
        if not isinstance(d, dict) or d.get("format") != FORMAT or "itos" not in d:
            raise UserError(f"not an rnnlm vocabulary (expected format {FORMAT!r})")
        return cls(d["itos"], d.get("counts"))
