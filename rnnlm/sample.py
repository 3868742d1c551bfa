"""Text generation from a trained model: temperature, top-k and top-p (nucleus) sampling.

Generation starts from the sentence-boundary token `<eos>` (what the model saw
before every sentence in training), then reads the prime, then draws one token
at a time from the model's next-token distribution, feeding each draw back in,
until the sample holds the words asked for (punctuation and <eos> are drawn but
not counted; <eos> is printed as a line break).
`<unk>` is never drawn unless asked for (its probability is set to zero
before the filters), so the text contains only real words. generate_text
returns the samples whole; TextStream gives the same text piece by piece
while it is drawn (the CLI's generate prints it so, and keeps it on Ctrl-C).

The one thing to know before editing: determinism. All randomness comes from
one `numpy.random.default_rng(seed)` and each step draws exactly one uniform
per sample (inverse-CDF sampling), so the same seed and arguments give the
same text on any machine with the same model file. A distribution that is
not finite or does not sum to 1 (a diverged checkpoint) is refused, never
turned into a word.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .settings import check_range
from .errors import UserError
from .fileio import fmt_bytes
from .tokenize import EOS

# A temperature below this is greedy decoding: dividing log-probabilities by it
# would overflow, and exp(-gap / T) of every runner-up is 0 in float64 anyway.
GREEDY_BELOW = 1e-6
_SENTENCE_END = frozenset({".", "!", "?", "..."})
# generate_text stops a sample that draws no more words (only punctuation or <eos>) after
# this many draws per word asked for, plus this many (Machado's text has ~1.2 tokens per word).
MAX_DRAWS_PER_WORD = 10
MAX_DRAWS_EXTRA = 100


def next_token_probs(logp, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                     banned=()) -> np.ndarray:
    """Filtered next-token distributions from log-probabilities (B, V) -> probabilities (B, V), float64.

    temperature 0 (or below GREEDY_BELOW) means greedy (all mass on the most likely token); banned ids
    get probability 0; top_k > 0 keeps the k most likely tokens; top_p < 1
    keeps the smallest set of most likely tokens whose mass reaches top_p.
    Ties at the cut are broken by token id (a stable sort), never randomly.
    Raises UserError for an option out of range (settings.RANGES) and for
    log-probabilities that are NaN or +inf (a diverged model).
    """
    for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)):
        check_range(name, value)
    z = np.array(logp, dtype=np.float64, ndmin=2)
    if np.isnan(z).any() or np.isposinf(z).any():
        raise UserError("the model gave NaN or +inf log-probabilities; is the checkpoint diverged? "
                        "(evaluate it, or use an earlier checkpoint)")
    if len(banned):
        z[:, list(banned)] = -np.inf
    B, V = z.shape
    if V == 0 or np.isneginf(z).all(axis=1).any():
        raise UserError("no word can be drawn: every word has probability 0 or is banned")
    if temperature < GREEDY_BELOW:
        p = np.zeros_like(z)
        p[np.arange(B), np.argmax(z, axis=1)] = 1.0
        return p
    z = z / temperature
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    if (top_k and top_k < V) or top_p < 1:
        order = np.argsort(-p, axis=1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=1)
        keep = np.ones_like(sorted_p, dtype=bool)
        if top_k and top_k < V:
            keep[:, top_k:] = False
        if top_p < 1:
            before = np.cumsum(sorted_p, axis=1) - sorted_p   # mass strictly above each token
            keep &= before < top_p                            # the token that crosses top_p stays
        mask = np.zeros_like(keep)
        np.put_along_axis(mask, order, keep, axis=1)
        p = np.where(mask, p, 0.0)
        p /= p.sum(axis=1, keepdims=True)
    return p


def draw(probs, rng) -> np.ndarray:
    """One token id per row of probs (B, V), by inverse CDF with one uniform per row.

    Raises UserError when a row is not a distribution (non-finite or negative
    entries, or a sum off 1 by more than 1e-6: e.g. every word banned). The
    id drawn always has probability > 0.
    """
    probs = np.asarray(probs, dtype=np.float64)
    sums = probs.sum(axis=1) if probs.size else np.zeros(len(probs))
    if probs.shape[1:] == (0,) or not np.isfinite(probs).all() or (probs < 0).any() \
            or not np.allclose(sums, 1.0, rtol=0, atol=1e-6):
        raise UserError("the next-token distribution is not finite or does not sum to 1 "
                        f"(sums {np.round(sums[:3], 6).tolist()}); is the checkpoint diverged, or is "
                        f"every word banned?")
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cdf[:, -1]
    ids = np.array([np.searchsorted(c, x, side="right") for c, x in zip(cdf, u)], dtype=np.int64)
    # u * total can round up to the total: take the last word with mass, not one past it
    last = probs.shape[1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)
    return np.minimum(ids, last)


def _lowercase_initials(tokens: list, vocab) -> list:
    """A prime's "d. joão" typed in lower case -> the abbreviation "D. João" gave: d. in a lower-case run's
    vocabulary, D. in a keep-case one's.

    The tokenizer knows a single-letter abbreviation by its capital (D. J. V.);
    typed in lower case, "d" "." and a sentence end come out instead. Where the
    vocabulary holds the abbreviation ("d.", or "D."), the letter and its period
    are joined again and the <eos> after them dropped.
    """
    out: list = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        known = next((a for a in (f"{t}.", f"{t.upper()}.") if a in vocab.stoi), None)
        if (len(t) == 1 and t.islower() and i + 1 < len(tokens) and tokens[i + 1] == "."
                and i + 2 < len(tokens) and known is not None):
            out.append(known)
            i += 3 if tokens[i + 2] == EOS else 2
            continue
        out.append(t)
        i += 1
    return out


def _known_casing(token: str, vocab) -> str:
    """A keep-case prime's word as the vocabulary knows it: as typed, else the most frequent of its lower-case,
    capitalized and upper-case forms that the vocabulary holds ("HOMEM" -> "homem", "BRÁS" -> "Brás"),
    else as typed (an unknown word)."""
    if token in vocab.stoi or token.lower() == token.upper():
        return token
    known = [v for v in (token.lower(), token.capitalize(), token.upper()) if v in vocab.stoi]
    return min(known, key=vocab.stoi.__getitem__) if known else token


def encode_prime(prime: str, vocab, keep_case: bool = False, num_token: bool = False):
    """Tokenize a prime as the corpus was -> (tokens, ids, unknown words).

    The tokenizer closes every paragraph with <eos>; that closing <eos> is
    dropped unless the prime ends a sentence, so "O homem que" is continued
    mid-sentence. A prime that opens with a clitic ("-se foi") continues a verb: its
    "-se" is the clitic token, not a dialogue dash (tokenize.leading_clitics).
    A prime is the user's words, not a book page: a line in capitals ("O HOMEM
    QUE") or a lone number is read as text, not dropped as a heading or page
    number (tokenize's layout=False). In a lower-case run, an initial typed in
    lower case ("d. joão") is the abbreviation the corpus's "D. João" gave; in a
    keep-case run, a word the vocabulary knows only in another case is read in
    its most frequent known case (`_known_casing`: "O HOMEM" -> O homem).
    Unknown words map to <unk> and are listed, not refused.
    """
    from .tokenize import leading_clitics, tokenize
    lead, rest = leading_clitics(prime)
    tokens = lead if keep_case else [t.lower() for t in lead]
    if rest.strip():
        tokens = tokens + tokenize(rest, keep_case=keep_case, num_token=num_token, layout=False)
    tokens = _lowercase_initials(tokens, vocab)
    if keep_case:
        tokens = [_known_casing(t, vocab) for t in tokens]
    if tokens and tokens[-1] == EOS and (len(tokens) < 2 or tokens[-2] not in _SENTENCE_END):
        tokens = tokens[:-1]
    ids = vocab.encode(tokens) if tokens else np.zeros(0, dtype=np.int32)
    unknown = [t for t, i in zip(tokens, ids) if i == vocab.unk_id and t != vocab.itos[vocab.unk_id]]
    return tokens, ids, unknown


def _draws(model, prime_ids, rng, *, eos_id: int, temperature: float, top_k: int, top_p: float, banned,
           num_samples: int):
    """Yield one drawn token id per stream (num_samples,) int64 at a time, without end.

    All streams read <eos> and then the prime, and are sampled in one batch; the
    model reads a draw only when the next one is asked for (no step after the last).
    """
    M = num_samples
    state = model.init_state(M)
    logp = None
    for t in [eos_id, *[int(i) for i in prime_ids]]:
        logp, state = model.step_logprobs(np.full(M, t, dtype=np.int64), state)
    while True:
        tok = draw(next_token_probs(logp, temperature, top_k, top_p, banned), rng)
        yield tok
        logp, state = model.step_logprobs(tok, state)


def sample_ids(model, prime_ids, words: int, rng, *, eos_id: int, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, banned=(), num_samples: int = 1) -> np.ndarray:
    """Generate `words` token ids for each of `num_samples` streams -> (num_samples, words) int64.

    Every draw counts, <eos> and punctuation included (generate_text counts words only).
    All streams read <eos> and then the prime, and are sampled in one batch.
    """
    out = np.zeros((num_samples, words), dtype=np.int64)
    stream = _draws(model, prime_ids, rng, eos_id=eos_id, temperature=temperature, top_k=top_k, top_p=top_p,
                    banned=banned, num_samples=num_samples)
    for j in range(words):
        out[:, j] = next(stream)
    return out


def is_word(token: str) -> bool:
    """Whether a token counts as a word of generated text: it holds a letter or a digit (so
    "casa", "-lhe", "1890" and <unk>/<num> do; "," "..." "—" and <eos> do not)."""
    return token != EOS and any(ch.isalnum() for ch in token)


def _word_draws(model, prime_ids, words: int, rng, *, vocab, temperature: float, top_k: int, top_p: float,
                banned, num_samples: int):
    """Yield (ids (num_samples,) int64, open (k,) int64) per draw: every stream's token, and the streams that
    keep it (those still short of `words` words when it was drawn). Ends when every stream holds `words`
    words, or after the cap of sample_words."""
    counts = np.array([is_word(t) for t in vocab.itos], dtype=bool)     # (V,)
    found = np.zeros(num_samples, dtype=np.int64)
    stream = _draws(model, prime_ids, rng, eos_id=vocab.eos_id, temperature=temperature, top_k=top_k,
                    top_p=top_p, banned=banned, num_samples=num_samples)
    for _ in range(max_draws(words)):
        if (found >= words).all():
            break
        tok = next(stream)
        keep = np.flatnonzero(found < words)
        found[keep] += counts[tok[keep]]
        yield tok, keep


def max_draws(words: int) -> int:
    """The most tokens drawn for a sample of `words` words: MAX_DRAWS_PER_WORD per word + MAX_DRAWS_EXTRA
    (0 for 0 words). A model that draws punctuation and <eos> instead of words is cut there."""
    return MAX_DRAWS_PER_WORD * words + MAX_DRAWS_EXTRA if words else 0


def sample_words(model, prime_ids, words: int, rng, *, vocab, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, banned=(), num_samples: int = 1) -> list[np.ndarray]:
    """Token ids holding `words` words (is_word) for each of `num_samples` streams -> list of (n_i,) int64.

    Punctuation and <eos> are drawn as usual but not counted; each stream ends
    at its `words`-th word. The streams are drawn in one batch until all are
    done, so stream i's tokens are sample_ids's row i cut there (same seed,
    same draws). A model that stops drawing words (only punctuation or <eos>)
    is cut after max_draws(words) = MAX_DRAWS_PER_WORD * words + MAX_DRAWS_EXTRA draws.
    """
    rows: list[list[int]] = [[] for _ in range(num_samples)]
    for tok, keep in _word_draws(model, prime_ids, words, rng, vocab=vocab, temperature=temperature,
                                 top_k=top_k, top_p=top_p, banned=banned, num_samples=num_samples):
        for i in keep:
            rows[i].append(int(tok[i]))
    return [np.array(r, dtype=np.int64) for r in rows]


def sampling_bytes(vocab_size: int, words: int, num_samples: int, layers: int = 1, hidden: int = 0) -> int:
    """About how many bytes drawing `num_samples` samples of `words` words takes at its peak: the samples are
    drawn in one batch, each with its next-token distribution in ~8 float64 (V,) arrays at a time
    (next_token_probs, draw) and the model's state and one step's caches, and each keeps its text (a token
    reference and a held piece of text per token, ~1.2 tokens a word) and ~1 KB of bookkeeping."""
    per_sample = 64 * vocab_size + 64 * layers * hidden + 1024 + 80 * words
    return int(num_samples) * int(per_sample)


def check_fits_in_memory(model, vocab_size: int, words: int, num_samples: int) -> None:
    """UserError, before anything is drawn, when sampling_bytes is more than this machine's memory (a
    --num-samples or --words of 10**9 is a typo, not a plan, and would otherwise run out of memory, or be
    killed, after a long while); nothing is checked where the OS does not say how much memory there is."""
    from .config import physical_memory
    memory = physical_memory()
    cfg = getattr(model, "config", None)
    need = sampling_bytes(vocab_size, words, num_samples, int(getattr(cfg, "layers", 1) or 1),
                          int(getattr(cfg, "hidden", 0) or 0))
    if memory and need > memory:
        if num_samples == 1:
            raise UserError(f"--words {words:,} needs about {fmt_bytes(need)} of memory (the text drawn is kept), more "
                            f"than this machine's {fmt_bytes(memory)}; give fewer --words")
        raise UserError(f"--num-samples {num_samples:,} of --words {words:,} needs about {fmt_bytes(need)} of memory "
                        f"(the samples are drawn together, each from a {vocab_size:,}-word vocabulary), more "
                        f"than this machine's {fmt_bytes(memory)}; give fewer --num-samples or --words (or draw "
                        f"them in several runs, each with its own --seed)")


class Piece(NamedTuple):
    """Text of one sample that has become final (TextStream yields these in the order drawn)."""
    sample: int     # which sample, 0 .. num_samples - 1
    text: str       # to append to that sample's text as printed so far
    done: bool      # the sample's last piece: it holds its words (or was cut: TextStream.short)


def check_reading(model, vocab, prime, keep_case, num_token) -> tuple[bool, bool]:
    """generate_text's arguments checked (TypeError, ValueError: one line each) -> (keep_case, num_token).

    keep_case / num_token None: as the vocabulary was read (Vocab.reading). Given, a value the vocabulary
    rules out is a ValueError: keep_case=False for a vocabulary with capitals, num_token=False for one
    with <num>. (The other way round is allowed: a keep-case corpus may have no capitals, one read with
    <num> no number; a prime's word it knows only in another case is read in that case, _known_casing.)
    """
    from .vocab import Vocab
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a Vocab, got {type(vocab).__name__}: runs.load_model(RUN) returns "
                        f"(model, vocab, info, path)")
    if not callable(getattr(model, "step_logprobs", None)):
        raise TypeError(f"model must be an RNNModel, got {type(model).__name__}: runs.load_model(RUN) returns "
                        f"(model, vocab, info, path)")
    if not isinstance(prime, str):
        raise TypeError(f"prime must be a str (the text to continue, \"\" for none), got {type(prime).__name__}")
    seen = vocab.reading()
    given = {"keep_case": keep_case, "num_token": num_token}
    for name, value in given.items():
        if value is not None and not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True, False or None (as the vocabulary was read), got {value!r}")
    for name, how in (("keep_case", "has capitals"), ("num_token", "holds <num>")):
        if given[name] is not None and not given[name] and seen[name]:
            raise ValueError(f"{name}={given[name]!r}, but this vocabulary {how}, so its corpus was read with "
                             f"{name}=True; leave {name} out to read the prime as the corpus was")
    return tuple(seen[k] if v is None else bool(v) for k, v in given.items())


class TextStream:
    """One call of generate_text, shown while it is drawn: iterate it for Pieces of text.

    Concatenating each sample's pieces gives exactly what generate_text
    returns for the same arguments (the same draws; generate_text is built
    on it). The prime's text comes first, then each sample's text grows by
    one piece per draw that makes text final (a token's text waits for the
    next token, see tokenize.Detokenizer), and a sample's last piece has
    done=True. Samples are drawn in one batch, so their pieces interleave.
    `text(i)` is sample i's whole text drawn so far (after a Ctrl-C it
    holds what the pieces have not yet given: a prefix of it was printed).
    Counters: `words_drawn` (num_samples,) words per sample so far;
    `unknown` the prime words not in the vocabulary. Options and errors as
    generate_text (UserError for a value out of range, a diverged model).
    Iterate it once: the draws start from `seed` and the counters fill.
    """

    def __init__(self, model, vocab, *, words: int = 100, prime: str = "", temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0, num_samples: int = 1,
                 keep_case: bool | None = None, num_token: bool | None = None, allow_unk: bool = False,
                 sentence_sep: str = "\n"):
        for name, value in (("words", words), ("num_samples", num_samples), ("seed", seed),
                            ("temperature", temperature), ("top_k", top_k), ("top_p", top_p)):
            if value is None:   # (check_range lets None pass as an option left unset: here it has no default)
                raise UserError(f"{name} must be a number, got None")
        if not isinstance(sentence_sep, str):
            raise TypeError(f"sentence_sep must be a str (what is printed between sentences), got "
                            f"{type(sentence_sep).__name__}")
        for name, value in (("words", words), ("num_samples", num_samples), ("seed", seed)):
            check_range(name, value)
        words, num_samples, seed = int(words), int(num_samples), int(seed)      # (5.0 passes as 5)
        for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)):
            check_range(name, value)
        if temperature == 0 and (top_k != 0 or top_p != 1):     # (the CLI says it with its flags first)
            given = " and ".join(f for f, on in ((f"top_k={top_k}", top_k != 0), (f"top_p={top_p!r}", top_p != 1))
                                 if on)
            raise UserError(f"{given} cannot act with temperature=0, which always takes the most likely word; "
                            "leave out one or the other")
        keep_case, num_token = check_reading(model, vocab, prime, keep_case, num_token)
        V = getattr(getattr(model, "config", None), "vocab_size", None)   # (None: a stand-in model in tests)
        if V is not None and len(vocab) != V:
            raise UserError(f"the vocabulary has {len(vocab):,} words but the model was trained on {V:,}: give "
                            "the vocab.json saved with this model (runs.load_model returns the two together)")
        check_fits_in_memory(model, len(vocab), words, num_samples)
        self.model, self.vocab, self.words, self.num_samples = model, vocab, words, num_samples
        self.prime_tokens, self.prime_ids, self.unknown = encode_prime(prime, vocab, keep_case, num_token)
        self.options = dict(temperature=temperature, top_k=top_k, top_p=top_p,
                            banned=() if allow_unk else (vocab.unk_id,))
        self.seed, self.capitalize, self.sentence_sep = seed, not keep_case, sentence_sep
        self._echo = self._prime_echo(prime)
        self.tokens = [list(self.prime_tokens) for _ in range(num_samples)]   # each sample's, prime first
        self.words_drawn = np.zeros(num_samples, dtype=np.int64)             # (num_samples,)

    @property
    def short(self) -> list[int]:
        """The samples that hold fewer than `words` words (all while drawing; after it, the ones cut)."""
        return [int(i) for i in np.flatnonzero(self.words_drawn < self.words)]

    def short_note(self, flags: bool = False) -> str | None:
        """After drawing: None if every sample holds its `words` words, else one line saying which hold fewer
        (cut after max_draws(words) draws of mostly punctuation) and what may help, naming the command's flags
        (`flags`: --temperature) or generate_text's arguments (temperature=)."""
        short = self.short
        if not short:
            return None
        from .errors import plural
        words, M = self.words, len(self.tokens)
        got = ", ".join(f"{self.words_drawn[i]:,}" for i in short)
        whose = (("printed" if flags else "the sample holds") if M == 1 else
                 f"{plural(len(short), 'sample')} {', '.join(str(i + 1) for i in short)} "
                 f"{plural(len(short), 'holds', 'hold')}")
        temperature, top_k = ("--temperature ", "--top-k") if flags else ("temperature=", "top_k")
        # greedy decoding (temperature 0) repeats the most likely token: a lower one cannot help there
        helps = (f"a better-trained checkpoint or a {temperature.strip('= ')} above 0 (0 always draws the most "
                 "likely token, so it repeats the same punctuation)" if self.options["temperature"] == 0 else
                 f"a better-trained checkpoint, a lower {temperature.strip('= ')} or {top_k}")
        return (f"{whose} {got} of the {words:,} {plural(words, 'word')} asked: the model drew "
                f"{max_draws(words):,} tokens, mostly punctuation or sentence ends, the most generate draws "
                f"({MAX_DRAWS_PER_WORD} per word asked + {MAX_DRAWS_EXTRA}); {helps} may help")

    def _prime_echo(self, prime: str):
        """(the prime as typed, its first letter as the sample's text has it, and the length of its tokens'
        detokenized text) when the prime is shown as the
        user typed it, else None: no prime tokens, or tokens whose text is not a fixed prefix of every sample's
        (a last quote opens or closes as the next token decides), so that it could not be cut off."""
        from .tokenize import EOS, detokenize
        if not self.prime_tokens or not prime.strip():
            return None
        rejoin = lambda tokens: detokenize(tokens, capitalize=self.capitalize,       # noqa: E731
                                           sentence_sep=self.sentence_sep)
        rejoined = rejoin(self.prime_tokens)
        if not all(rejoin(self.prime_tokens + [after]).startswith(rejoined) for after in ("a", ",", '"', EOS)):
            return None
        typed = prime.strip()
        if typed[:1].islower() and rejoined[:1] == typed[:1].upper():
            typed = rejoined[:1] + typed[1:]        # the text's first letter, a capital as every sentence's
        return typed, len(rejoined)

    def _as_typed(self, text: str) -> str:
        """A sample's detokenized text with its prime's part replaced by the prime as typed."""
        return text if self._echo is None else self._echo[0] + text[self._echo[1]:]

    def text(self, i: int) -> str:
        """Sample i's text from everything drawn so far (the prime first, as typed)."""
        from .tokenize import detokenize
        return self._as_typed(detokenize(self.tokens[i], capitalize=self.capitalize, sentence_sep=self.sentence_sep))

    def __iter__(self):
        M = self.num_samples
        skip = [0 if self._echo is None else self._echo[1]] * M     # characters of the rejoined prime still due
        if self._echo is not None:
            for i in range(M):
                yield Piece(i, self._echo[0], False)
        for piece in self._pieces():
            i, text = piece.sample, piece.text
            if skip[i]:                 # the rejoined prime's text: shown as typed instead (_prime_echo)
                cut = min(skip[i], len(text))
                skip[i] -= cut
                text = text[cut:]
            if text or piece.done:
                yield Piece(i, text, piece.done)

    def _pieces(self):
        """The samples' pieces with the prime as the tokenizer read it (rejoined), then as drawn; __iter__
        shows the prime as typed in its place."""
        from .tokenize import Detokenizer
        M, itos = self.num_samples, self.vocab.itos
        detok = [Detokenizer(capitalize=self.capitalize, sentence_sep=self.sentence_sep) for _ in range(M)]
        for i in range(M):
            head = "".join([detok[i].feed(t) for t in self.prime_tokens])
            if head:
                yield Piece(i, head, False)
        open_ = set(range(M))
        for tok, keep in _word_draws(self.model, self.prime_ids, self.words, np.random.default_rng(self.seed),
                                     vocab=self.vocab, num_samples=M, **self.options):
            for i in keep:
                token = itos[tok[i]]
                self.tokens[i].append(token)
                self.words_drawn[i] += is_word(token)
                text = detok[i].feed(token)
                if self.words_drawn[i] >= self.words:
                    open_.discard(i)
                    yield Piece(int(i), text + detok[i].close(), True)
                elif text:
                    yield Piece(int(i), text, False)
        for i in sorted(open_):         # words=0, or cut by max_draws
            yield Piece(i, detok[i].close(), True)


def generate_text(model, vocab, *, words: int = 100, prime: str = "", temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, seed: int = 0, num_samples: int = 1,
                  keep_case: bool | None = None, num_token: bool | None = None, allow_unk: bool = False,
                  unknown_out: list | None = None, sentence_sep: str = "\n") -> list[str]:
    """Detokenized samples (prime first), each continuing the prime by `words` words.

    Returns a list of `num_samples` strings (list[str], one per sample, in the
    order drawn), also for num_samples=1: `generate_text(...)[0]` is the text
    of a single sample.

    A word is a token with a letter or a digit (is_word); punctuation marks and
    sentence ends (<eos>) are generated as the model draws them but not counted,
    so each sample holds exactly `words` words after the prime (fewer only from
    a model that stops drawing words, see sample_words). A sentence end is shown
    as `sentence_sep` (a line break: one sentence per line). Unknown prime words
    are appended to `unknown_out` when given. The prime is shown as typed
    (its first letter a capital, as every sentence's; not as <unk>), the
    sample continuing it as the model read it: "Sr. Brás Cubas", not the
    tokens' "Sr. brás cubas" (re-joined only where that is not a fixed prefix
    of the sample: a prime ending in an opening quote). To show the text while it is
    drawn, iterate a TextStream with the same arguments (this function joins
    its pieces).

    keep_case, num_token: how the prime is tokenized; by default as the
    vocabulary's corpus was (Vocab.reading: capitals kept if it has any, numbers
    as <num> if it holds <num>). False where the vocabulary needs True is a
    ValueError (keep_case=False for one with capitals, num_token=False for one
    with <num>: its words could not be read); True where it has neither is
    allowed (a keep-case corpus may have no capitals, and a prime's word known
    only in another case is read in that case). TypeError for a prime that is not a str, a vocab that is not a
    Vocab, or a model without step_logprobs; UserError for a value out of range.
    """
    stream = TextStream(model, vocab, words=words, prime=prime, temperature=temperature, top_k=top_k,
                        top_p=top_p, seed=seed, num_samples=num_samples, keep_case=keep_case,
                        num_token=num_token, allow_unk=allow_unk, sentence_sep=sentence_sep)
    if unknown_out is not None:
        unknown_out.extend(stream.unknown)
    parts: list[list[str]] = [[] for _ in range(num_samples)]
    for piece in stream:
        parts[piece.sample].append(piece.text)
    if (note := stream.short_note()) is not None:
        import warnings
        warnings.warn(ShortSampleWarning(f"generate_text: {note}"), stacklevel=2)
    return ["".join(p) for p in parts]


class ShortSampleWarning(UserWarning):
    """generate_text's warning that a sample holds fewer words than asked (the model drew punctuation)."""
