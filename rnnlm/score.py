"""Surprisal of given sentences under a trained model: log p of each token given the tokens before it.

What Mikolov's RNNLM toolkit prints per word (its -debug 2 test output), and what a minimal pair shows:
"O homem que usava uma peruca entrou no bar." against "... entraram no bar." differ in one word, and the
model that has learned the agreement gives the first the higher log-probability.

The one thing to know before editing: a sentence is read as `generate` reads a prime (sample.encode_prime:
the run's tokenizer and casing; a closing <eos> is kept only after a sentence-ending mark), after one
<eos>, so its first token is scored given <eos> alone, as a sentence's first word is in the corpus. All
sentences run side by side in one batch from a zero state, one `step_logprobs` call per token position.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .errors import UserError

LN2 = math.log(2.0)
RANKED = 10         # format_scores ranks at most this many sentences by name


class SentenceScore(NamedTuple):
    """One sentence's scores (score_sentences returns one per sentence, in the order given)."""
    text: str               # the sentence as given
    tokens: list            # (n,) its tokens as the model read them (an unknown word as itself, scored as <unk>)
    logprobs: np.ndarray    # (n,) float64, nats: log p(token_i | <eos>, token_0 .. token_i-1)
    unknown: list           # its words not in the vocabulary, read and scored as <unk>

    @property
    def total(self) -> float:
        """log p of the whole sentence given <eos>, in nats (the sum of `logprobs`)."""
        return float(self.logprobs.sum())

    @property
    def perplexity(self) -> float:
        """e^(-total / n): the sentence's per-token perplexity (inf when that overflows a float)."""
        mean = -self.total / len(self.logprobs)
        return math.exp(mean) if mean < 709.0 else math.inf


def score_sentences(model, vocab, sentences, *, keep_case: bool | None = None, num_token: bool | None = None,
                    batch_size: int = 128) -> list[SentenceScore]:
    """The log-probability (nats) of every token of each sentence given the tokens before it.

    model: an RNNModel (runs.load_model's first value); vocab: its Vocab; sentences: a list of str.
    keep_case / num_token: how to tokenize, None as the vocabulary was read (as generate_text).
    batch_size: sentences run side by side (a (batch_size, V) float32 array per step).
    Each token's log-probability is log softmax(logits)[token] at the step that read the token before
    it (Mikolov et al. 2010, eq. 1-4; PyTorch's log_softmax), the first token's after <eos>.
    Errors: TypeError for sentences that are not a list of str (or a model or vocab that are not ours,
    sample.check_reading), UserError for a sentence with no token, a vocab of another size, or a model
    whose log-probabilities are not finite (a diverged checkpoint, as generate_text).
    """
    from .sample import check_reading, encode_prime
    if isinstance(sentences, (str, bytes, set, frozenset, dict)) or not hasattr(sentences, "__iter__"):
        why = ("a str: wrap it in a list" if isinstance(sentences, str) else
               f"a {type(sentences).__name__}, whose order is not the sentences' (give a list)"
               if isinstance(sentences, (set, frozenset, dict)) else type(sentences).__name__)
        raise TypeError(f"score_sentences: sentences must be a list of str (one sentence each), got {why}")
    sentences = list(sentences)     # (a generator is read once, here)
    if not all(isinstance(s, str) for s in sentences):
        raise TypeError("score_sentences: sentences must be a list of str (one sentence each), got "
                        f"{[type(s).__name__ for s in sentences if not isinstance(s, str)][0]} in it")
    from .argcheck import check_int
    batch_size = check_int(batch_size, "batch_size", "score_sentences", 1)
    keep_case, num_token = check_reading(model, vocab, "", keep_case, num_token)
    V = getattr(getattr(model, "config", None), "vocab_size", None)   # (None: a stand-in model in tests)
    if V is not None and len(vocab) != V:
        raise UserError(f"the vocabulary has {len(vocab):,} words but the model was trained on {V:,}: give "
                        "the vocab.json saved with this model (runs.load_model returns the two together)")
    read = [encode_prime(s, vocab, keep_case, num_token) for s in sentences]
    for i, (tokens, _, _) in enumerate(read):
        if not tokens:
            raise UserError(f"sentence {i + 1} ({sentences[i]!r}) has no words to score")
    logprobs = []
    for first in range(0, len(read), batch_size):
        logprobs += _batch_logprobs(model, [row for _, row, _ in read[first:first + batch_size]], vocab.eos_id)
    scores = [SentenceScore(s, list(tokens), lp, list(dict.fromkeys(unknown)))
              for s, (tokens, _, unknown), lp in zip(sentences, read, logprobs)]
    for i, sc in enumerate(scores):
        if not np.isfinite(sc.logprobs).all():
            raise UserError(f"sentence {i + 1}: the model gave a log-probability that is not finite; "
                            "is the checkpoint diverged?")
    return scores


def _batch_logprobs(model, rows: list, eos_id: int) -> list:
    """log p of each token of each row of ids (a list of (n_i,) arrays), the rows run side by side from a zero
    state after one <eos> (padded with <eos> after their ends) -> a list of (n_i,) float64 arrays, nats."""
    M, n_max = len(rows), max(len(row) for row in rows)
    ids = np.full((M, n_max), eos_id, dtype=np.int64)       # (M, n_max)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    logp = np.zeros((M, n_max), dtype=np.float64)
    state = model.init_state(M)
    previous = np.full(M, eos_id, dtype=np.int64)
    for t in range(n_max):
        step, state = model.step_logprobs(previous, state)     # (M, V): the next token's log-probabilities
        logp[:, t] = step[np.arange(M), ids[:, t]]
        previous = ids[:, t]
    return [logp[i, :len(row)].copy() for i, row in enumerate(rows)]


def format_scores(scores: list, per_token: bool = True) -> str:
    """The `score` command's report: per sentence its log-probability (nats and bits), tokens and
    per-token perplexity, and (per_token) each token's surprisal -log2 p in bits; with two sentences or
    more, a line ranking them by log-probability."""
    from .runs import fmt_ppl
    lines = []
    for i, sc in enumerate(scores):
        n = len(sc.tokens)
        lines.append(f"{i + 1}. {' '.join(sc.text.split())}")     # (a line break inside it: one line here)
        lines.append(f"   log p = {sc.total:.2f} nats ({sc.total / LN2:.2f} bits) over {n} "
                     f"{'token' if n == 1 else 'tokens'}; perplexity {fmt_ppl(sc.perplexity, 1)}")
        if per_token:
            cells = [f"{'<unk>:' if t in sc.unknown else ''}{t} {-lp / LN2:.1f}"
                     for t, lp in zip(sc.tokens, sc.logprobs)]
            lines += _wrapped(cells, "   surprisal (bits): ")
    if len(scores) > 1:
        order = sorted(range(len(scores)), key=lambda i: -scores[i].total)
        best, second = order[0], order[1]
        gap = scores[best].total - scores[second].total
        ranked = ""     # sentences the model reads as the same tokens are joined by "=" (their log p is the same)
        for k, i in enumerate(order[:RANKED]):
            ranked += ("" if k == 0 else " = " if _same(scores[i], scores[order[k - 1]]) else ", ")
            ranked += str(i + 1)
        ranked += ", ..." if len(order) > RANKED else ""
        caveats = ([f"they differ in length ({', '.join(sorted({str(len(sc.tokens)) for sc in scores}, key=int))} "
                    "tokens): a longer sentence has more to pay"] if len({len(sc.tokens) for sc in scores}) > 1
                   else [])
        if any(sc.unknown for sc in scores):
            caveats.append("words outside the vocabulary are all the one token <unk>")
        same = sorted(i for i in order if _same(scores[i], scores[best]))
        if len(same) > 1:       # the same token ids: the same log p, always
            from .errors import and_list
            why = (" (words outside the vocabulary are all the one token <unk>)"
                   if len({tuple(scores[i].tokens) for i in same}) > 1 else "")
            more = [f"{len(same) - RANKED:,} more"] if len(same) > RANKED else []
            names = [str(i + 1) for i in same[:RANKED]] + more
            lines.append(f"no single most likely: sentences {and_list(names)} are the same "
                         f"tokens to the model{why}, log p {scores[best].total:.2f} nats each"
                         + (f"; ranked: {ranked}" if len(scores) > 2 else ""))
            return "\n".join(lines)
        lines.append(f"most likely: sentence {best + 1}, {gap:.2f} nats above sentence {second + 1} "
                     f"({math.exp(min(gap, 700.0)):.3g} times as likely)"
                     + (f"; ranked: {ranked}" if len(scores) > 2 else "")
                     + (f" (compare with care: {'; '.join(caveats)})" if caveats else ""))
    return "\n".join(lines)


def _as_read(sc: SentenceScore) -> tuple:
    """sc's tokens as the model reads them: each unknown word as <unk>."""
    return tuple("<unk>" if t in sc.unknown else t for t in sc.tokens)


def _same(a: SentenceScore, b: SentenceScore) -> bool:
    """Whether the model reads two sentences as the same tokens, and so gives them the same log p (to the
    rounding of a batch: scored in other rows of it, they may differ in the last digits)."""
    return _as_read(a) == _as_read(b) and math.isclose(a.total, b.total, rel_tol=1e-5, abs_tol=1e-5)


def _wrapped(cells: list, head: str, width: int = 100) -> list:
    """cells joined by two spaces into lines of at most `width` characters, the first after `head`, the
    others indented as far."""
    lines, line = [], head
    for cell in cells:
        if len(line) + len(cell) > width and line.strip() != head.strip():
            lines.append(line.rstrip())
            line = " " * len(head)
        line += cell + "  "
    lines.append(line.rstrip())
    return lines
