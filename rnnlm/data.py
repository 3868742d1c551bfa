"""From a corpus argument to train/valid/test id arrays, and from those to batches.

`load_corpus(DataConfig) -> Corpus` resolves the files (corpus.py), tokenizes
them (tokenize.py) or reads the tokenized cache, splits, builds the vocabulary
on the training split (vocab.py) and encodes every split as int32 ids.

Split policy (reproducible from `split_seed`):
- Predefined when every file name says its split (train.txt / valid.txt /
  test.txt, also ptb.train.txt, dev, validation) and all three are present,
  as in the generated `sintetico` corpus: the seed and fractions are unused.
- Document level when the corpus has several files: the files are shuffled
  with `numpy.random.default_rng(split_seed)`; walking that order, a file goes
  to valid while valid holds fewer than `valid_fraction` of all tokens and the
  file does not overshoot that target by more than half of it, then likewise
  to test; every other file is train. Whole works are held out, so valid and
  test measure generalisation to unseen texts, not to unseen pages.
- Contiguous otherwise (a single file, too few files, or works so large that
  no assignment gets within half of a target): the files are concatenated in
  name order and cut at the sentence boundaries (<eos>) nearest to
  1 - valid - test and 1 - test of the tokens: train, then valid, then test.
  This cut does not depend on the seed.
Each split is its files' tokens concatenated in name order; every file ends
with <eos>.

Cache: the tokenized corpus (all files, as ids over the corpus's own word
list) is stored as .npy (allow_pickle=False) with a JSON sidecar in
`caches.tokens_cache_dir()` ($RNNLM_CACHE, the per-user cache or a temp
folder; none = no cache), under `tokens/<checksum>/`. The key is
`Corpus.checksum`: SHA-256 over the file contents' hashes and the tokenizer
settings (TOKENIZER_VERSION included); a cache entry is read only when its
stored checksum equals the key, and written only under the key computed
from the bytes that were tokenized.
The vocabulary and split settings are deliberately *not* in the key: splitting
and building the vocabulary from the cached ids takes tens of milliseconds, so
changing --max-vocab or --split-seed never re-tokenizes.

The one thing to know before editing: anything that changes the cached token
stream must change the checksum (bump TOKENIZER_VERSION in tokenize.py or
CACHE_FORMAT here), or stale caches will be read silently. The cache key uses
the current TOKENIZER_VERSION; `Corpus.checksum` (what a run stores) uses the
oldest version that gives the same tokens, so a tokenizer change refuses
`--resume` (tokenizer_change, called by runs.resume_config) only for runs
whose corpus it actually re-tokenizes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import corpus as corpus_files
from .config import SPLITS, DataConfig  # noqa: F401  (DataConfig re-exported: it lives in config.py)
from .errors import UserError, plural
from .fileio import atomic_write
from .tokenize import EOS, TOKENIZER_VERSION, detokenize, tokenize
from .vocab import Vocab

CACHE_FORMAT = "rnnlm-tokens-1"


@dataclass
class Corpus:
    train: np.ndarray             # (N_train,) int32 token ids
    valid: np.ndarray             # (N_valid,) int32
    test: np.ndarray              # (N_test,) int32
    vocab: Vocab
    checksum: str                 # SHA-256 of the text and the tokenizer settings, with the oldest
    #                               tokenizer version that gives these tokens (see tokenizer_change)
    config: DataConfig
    oov_rate: dict[str, float]    # split -> share of its tokens that are <unk>
    origin: str = ""              # where the files were found
    documents: dict[str, list[str]] = field(default_factory=dict)  # split -> file names
    split_policy: str = ""        # "predefined", "documents" or "contiguous"
    cache_hit: bool = False
    cache_path: str = ""
    seconds: float = 0.0          # wall time of load_corpus


# ---------------------------------------------------------------- cache


def _tokenizer_settings(config: DataConfig, version: int = TOKENIZER_VERSION) -> dict:
    return {"tokenizer": version, "keep_case": bool(config.keep_case),
            "num_token": bool(config.num_token), "format": CACHE_FORMAT}


def _checksum(text_checksum: str, config: DataConfig, version: int = TOKENIZER_VERSION) -> str:
    payload = json.dumps({"text": text_checksum, **_tokenizer_settings(config, version)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _oldest_same_version(source, config: DataConfig, words, ids) -> int:
    """The oldest tokenizer version whose tokens of `source` equal the current ones (words, ids).

    Corpus.checksum uses it, so that a tokenizer change changes the checksum of
    exactly the corpora whose tokens it changes: runs on the others still resume.
    """
    for version in range(1, TOKENIZER_VERSION):
        old_words, old_ids, _ = _tokenize_files(source, config, version)
        if old_words == words and np.array_equal(old_ids, ids):
            return version
    return TOKENIZER_VERSION


def tokenizer_change(stored_checksum: str | None, config: DataConfig) -> str | None:
    """Why a run whose corpus checksum is `stored_checksum` cannot be resumed on `config`'s corpus
    with this tokenizer (one line, naming the tokenizer change), or None when nothing says so.

    Only a tokenizer change is diagnosed here (the stored checksum is that of the same text under an
    older TOKENIZER_VERSION whose tokens differ); other mismatches are left to the resume's own check.
    """
    if not stored_checksum:
        return None
    source = corpus_files.resolve(config.corpus, config.corpora_dir)
    text = corpus_files.source_checksum(source)
    for version in range(1, TOKENIZER_VERSION):
        if _checksum(text, config, version) == stored_checksum:
            current = load_corpus(dataclasses.replace(config, use_cache=True)).checksum
            if current == stored_checksum:
                return None                        # this corpus's tokens did not change
            return (f"the tokenizer changed since this run was made (version {version} -> "
                    f"{TOKENIZER_VERSION}: ordinal indicators such as 1.º and Ex.ª, line-break hyphens), "
                    f"so its corpus now gives other tokens; the run still evaluates and generates with "
                    f"its vocabulary, but resuming it would train on different text: start a new run")
    return None


def _write_cache(folder: Path, meta: dict, ids: np.ndarray, offsets: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "ids.npy", lambda f: np.save(f, ids, allow_pickle=False))
    atomic_write(folder / "doc_offsets.npy", lambda f: np.save(f, offsets, allow_pickle=False))
    # The JSON goes last: its presence means the arrays beside it are complete.
    atomic_write(folder / "meta.json", lambda f: f.write(json.dumps(meta, ensure_ascii=False).encode()))


def _read_cache(folder: Path, checksum: str):
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("checksum") != checksum:
            return None
        ids = np.load(folder / "ids.npy", allow_pickle=False)
        offsets = np.load(folder / "doc_offsets.npy", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if ids.dtype != np.int32 or offsets[-1] != len(ids) or len(offsets) != len(meta["documents"]) + 1:
        return None
    return meta, ids, offsets


def _read_notes(seen, source) -> list[dict]:
    """The warnings reading the corpus files gave (a file not UTF-8, read as cp1252), warned again now, and
    kept for the token cache: {"file": its name in the corpus, "note": the text with {path} for its path}, so
    that a cache hit, which reads no file, still says them (of the file where it is now)."""
    notes = []
    for w in seen:
        text = str(w.message)
        warnings.warn(text, w.category, stacklevel=3)
        for name, path in source.files:
            if str(path) in text:
                notes.append({"file": name, "note": text.replace(str(path), "{path}")})
                break
    return notes


def _repeat_read_notes(meta: dict, source) -> None:
    """On a token-cache hit, the warnings reading the files gave when the cache was made (_read_notes)."""
    paths = dict(source.files)
    for n in meta.get("read_notes") or []:
        if isinstance(n, dict) and n.get("file") in paths and isinstance(n.get("note"), str):
            warnings.warn(n["note"].replace("{path}", str(paths[n["file"]])), stacklevel=3)


def _tokenize_files(source, config: DataConfig, version: int = TOKENIZER_VERSION):
    """All files -> (word list, ids over it, document offsets). Word 0 is <eos>."""
    index = {EOS: 0}
    chunks, offsets = [], [0]
    for _, path in source.files:
        tokens = tokenize(corpus_files.read_text(path), keep_case=config.keep_case,
                          num_token=config.num_token, version=version)
        chunks.append(np.fromiter((index.setdefault(t, len(index)) for t in tokens),
                                  dtype=np.int32, count=len(tokens)))
        offsets.append(offsets[-1] + len(tokens))
    ids = np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
    return list(index), ids, np.asarray(offsets, dtype=np.int64)


# ---------------------------------------------------------------- splits


def assign_documents(lengths, seed: int, valid_fraction: float, test_fraction: float):
    """Document-level split: a list of 'train'/'valid'/'test' per document, or None if not feasible."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if len(lengths) < 3 or total == 0:
        return None
    targets = {"valid": valid_fraction * total, "test": test_fraction * total}
    filled = {"valid": 0, "test": 0}
    assignment = ["train"] * len(lengths)
    for doc in np.random.default_rng(seed).permutation(len(lengths)):
        size = int(lengths[doc])
        for split in ("valid", "test"):
            need = targets[split] - filled[split]
            if need > 0 and size <= need + 0.5 * targets[split]:
                assignment[doc] = split
                filled[split] += size
                break
    for split in ("valid", "test"):
        if filled[split] < 0.5 * targets[split]:
            return None
    if sum(int(lengths[d]) for d, s in enumerate(assignment) if s == "train") == 0:
        return None
    return assignment


def contiguous_cuts(ids: np.ndarray, eos_id: int, valid_fraction: float, test_fraction: float):
    """Indices (a, b): train = ids[:a], valid = ids[a:b], test = ids[b:], cut after an <eos>."""
    n = len(ids)
    boundaries = np.flatnonzero(ids == eos_id) + 1       # a cut right after each <eos>
    boundaries = np.concatenate([[0], boundaries, [n]])

    def nearest(position: float) -> int:
        k = int(np.argmin(np.abs(boundaries - position)))
        return int(boundaries[k])

    a = nearest(n * (1 - valid_fraction - test_fraction)) if valid_fraction + test_fraction > 0 else n
    b = nearest(n * (1 - test_fraction)) if test_fraction > 0 else n
    return a, max(a, b)


_PREDEFINED = re.compile(r"(?:^|[._-])(train|valid|validation|dev|test)$")
_PREDEFINED_SPLIT = {"train": "train", "valid": "valid", "validation": "valid", "dev": "valid", "test": "test"}


def predefined_assignment(names: list[str]):
    """'train'/'valid'/'test' per file if the file names say it (train.txt, ptb.valid.txt...), else None."""
    assignment = []
    for name in names:
        match = _PREDEFINED.search(Path(name).stem.lower())
        if not match:
            return None
        assignment.append(_PREDEFINED_SPLIT[match.group(1)])
    return assignment if set(assignment) == set(SPLITS) else None


def _split(meta: dict, ids: np.ndarray, offsets: np.ndarray, config: DataConfig):
    """-> (split -> ids over the corpus word list, split -> document names, policy)."""
    names = meta["documents"]
    lengths = np.diff(offsets)
    assignment = predefined_assignment(names)
    policy = "predefined"
    if assignment is None:
        assignment = assign_documents(lengths, config.split_seed, config.valid_fraction, config.test_fraction)
        policy = "documents"
    if assignment is not None:
        parts = {s: [ids[offsets[d]:offsets[d + 1]] for d, a in enumerate(assignment) if a == s] for s in SPLITS}
        arrays = {s: np.concatenate(p) if p else np.zeros(0, np.int32) for s, p in parts.items()}
        documents = {s: [names[d] for d, a in enumerate(assignment) if a == s] for s in SPLITS}
        return arrays, documents, policy
    a, b = contiguous_cuts(ids, 0, config.valid_fraction, config.test_fraction)   # word 0 is <eos>
    arrays = {"train": ids[:a], "valid": ids[a:b], "test": ids[b:]}
    documents = {}
    for split, (lo, hi) in zip(SPLITS, ((0, a), (a, b), (b, len(ids)))):
        documents[split] = [names[d] for d in range(len(names))
                            if hi > lo and offsets[d] < hi and offsets[d + 1] > lo]
    return arrays, documents, "contiguous"


# ---------------------------------------------------------------- load


def absolute_corpus(config: DataConfig) -> DataConfig:
    """config with a corpus given as a relative path (or ~) made absolute, as a run's config.json records it:
    "meu corpus" would name another folder, or nothing, once the run is resumed or evaluated from another
    working folder. A named corpus (machado) stays a name, found again by the corpora search."""
    import os
    corpus = config.corpus
    if not isinstance(corpus, str) or corpus in corpus_files.NAMED_CORPORA:
        return config
    path = Path(corpus).expanduser()
    if path.is_absolute() and str(path) == corpus or not path.exists():
        return config
    return dataclasses.replace(config, corpus=os.path.abspath(path))


def load_corpus(config: DataConfig) -> Corpus:
    """Read (or load from cache), split, build the vocabulary on train, encode. See the module docstring."""
    started = time.perf_counter()
    if not isinstance(config, DataConfig):
        example = f"DataConfig(corpus={config!r})" if isinstance(config, str) else 'DataConfig(corpus="machado")'
        raise TypeError(f"load_corpus: config must be a DataConfig, got {config!r} ({type(config).__name__}): "
                        f"pass {example}")
    config.validate()
    source = corpus_files.resolve(config.corpus, config.corpora_dir)
    from .caches import tokens_cache_dir
    cache_tokens = tokens_cache_dir()
    text_checksum = corpus_files.source_checksum(source)
    checksum = _checksum(text_checksum, config)     # the cache key (the current tokenizer)
    folder = cache_tokens / checksum[:32] if cache_tokens is not None else None

    cached = _read_cache(folder, checksum) if config.use_cache and folder is not None else None
    if cached is not None:
        meta, ids, offsets = cached
        _repeat_read_notes(meta, source)
    else:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            words, ids, offsets = _tokenize_files(source, config)
        notes = _read_notes(seen, source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")         # (the same files read again: their notes are said)
            same = _oldest_same_version(source, config, words, ids)
        meta = {"format": CACHE_FORMAT, "checksum": checksum, "settings": _tokenizer_settings(config),
                "corpus_checksum": _checksum(text_checksum, config, same),
                "corpus": source.name, "documents": [name for name, _ in source.files], "words": words,
                "read_notes": notes}
        try:
            # store only under the key of the bytes just tokenized: a file edited meanwhile is not cached
            if folder is not None and _checksum(corpus_files.source_checksum(source), config) == checksum:
                _write_cache(folder, meta, ids, offsets)
        except OSError as exc:
            warnings.warn(f"could not write the token cache in {folder}: {exc}", stacklevel=2)
    if len(ids) == 0:
        raise UserError(f"corpus '{config.corpus}' holds no words after tokenizing; give it some text")

    arrays, documents, policy = _split(meta, ids, offsets, config)
    if len(arrays["train"]) == 0:
        raise UserError(f"the train split of '{config.corpus}' is empty ({len(ids)} {plural(len(ids), 'token')} in all, "
                        f"{policy} split): lower --valid-fraction ({config.valid_fraction:g}) and "
                        f"--test-fraction ({config.test_fraction:g}), or give more text")
    words = meta["words"]
    counts = np.bincount(arrays["train"], minlength=len(words)).tolist()
    vocab = Vocab.build({w: n for w, n in zip(words, counts) if n},
                        max_vocab=config.max_vocab, min_count=config.min_count)
    lookup = np.fromiter((vocab.stoi.get(w, vocab.unk_id) for w in words), dtype=np.int32, count=len(words))
    encoded = {s: lookup[arrays[s]] for s in SPLITS}
    oov = {s: float(np.mean(encoded[s] == vocab.unk_id)) if len(encoded[s]) else 0.0 for s in SPLITS}
    return Corpus(train=encoded["train"], valid=encoded["valid"], test=encoded["test"], vocab=vocab,
                  checksum=meta.get("corpus_checksum", checksum), config=config, oov_rate=oov, origin=source.origin,
                  documents=documents, split_policy=policy, cache_hit=cached is not None,
                  cache_path=str(folder) if folder is not None else "", seconds=time.perf_counter() - started)


# ---------------------------------------------------------------- batches


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """(N,) ids -> (N // B, B) int32, time-major: column b is the b-th contiguous
    stretch of the text (B parallel streams); the N % B trailing tokens are dropped.

    Errors: UserError for too few tokens; TypeError for ids that are not integers (float ids are
    refused, not truncated) or a batch size that is not an int; ValueError for a batch size below 1, or
    ids that are not 1-D or outside [0, 2**31 - 1] (the int32 the kernels read).
    """
    from .argcheck import check_int
    check_int(batch_size, "batch_size", "batchify", 1)
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer) or ids.dtype == np.bool_:
        raise TypeError(f"batchify: ids must be integer token ids, got dtype {ids.dtype} (ids are not rounded "
                        "or truncated here: convert them with .astype(int) if they are whole numbers)")
    if ids.ndim != 1:
        raise ValueError(f"batchify: ids must be 1-D (one token stream), got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
        bad = ids[(ids < 0) | (ids > np.iinfo(np.int32).max)][0]
        raise ValueError(f"batchify: ids must be token ids in [0, {np.iinfo(np.int32).max:,}], got {int(bad)}")
    steps = len(ids) // batch_size
    if steps < 2:
        raise UserError(f"{len(ids)} {plural(len(ids), 'token is', 'tokens are')} too few for batch size {batch_size}; "
                        f"use a smaller batch or a larger corpus")
    return np.ascontiguousarray(ids[: steps * batch_size].reshape(batch_size, steps).T, dtype=np.int32)


def windows(stream: np.ndarray, bptt: int, start: int = 0):
    """Yield (pos, inputs, targets) over a batchified stream, `bptt` steps at a time.

    inputs = stream[pos:pos+T], targets = stream[pos+1:pos+1+T] (the next
    token), both (T, B) views; T = bptt except for a shorter last window.
    start: the first position, to resume an epoch part way.
    Errors (raised at once, not at the first window): TypeError for a stream that is not a NumPy array or a
    bptt or start that is not an int, ValueError for a bptt below 1 or a negative start.
    """
    from .argcheck import check_int
    if not isinstance(stream, np.ndarray):
        raise TypeError(f"windows: stream must be a batchified NumPy array (batchify's (N // B, B) ids), "
                        f"got {type(stream).__name__}")
    if stream.ndim != 2:        # (a 1-D one would give (T,) windows: the model's error, far from the cause)
        raise ValueError(f"windows: stream must be batchified, (N // B, B) ids (data.batchify(ids, B)), got shape "
                         f"{stream.shape}")
    check_int(bptt, "bptt", "windows", 1)
    check_int(start, "start", "windows", 0)
    return _windows(stream, bptt, start)


def _windows(stream: np.ndarray, bptt: int, start: int):
    for pos in range(start, len(stream) - 1, bptt):
        steps = min(bptt, len(stream) - 1 - pos)
        yield pos, stream[pos:pos + steps], stream[pos + 1:pos + 1 + steps]


# ---------------------------------------------------------------- corpus info


def _sample_sentences(ids: np.ndarray, eos_id: int, count: int = 3) -> list[np.ndarray]:
    ends = np.flatnonzero(ids == eos_id)
    starts = np.concatenate([[0], ends[:-1] + 1])
    good = [(s, e) for s, e in zip(starts, ends) if 8 <= e - s <= 40]
    if not good:
        return []
    picks = np.linspace(0, len(good) - 1, num=min(count, len(good)) + 2)[1:-1].astype(int)
    return [ids[good[k][0]:good[k][1] + 1] for k in picks]


def info_report(corpus: Corpus) -> str:
    """The text `corpus info` prints."""
    c = corpus.config
    n_files = len({name for names in corpus.documents.values() for name in names})
    lines = [f"corpus {c.corpus}: {n_files} {plural(n_files, 'file')} from {corpus.origin}",
             "cache: " + ("tokenized, not saved (no usable cache folder)" if not corpus.cache_path else
                          f"{'hit' if corpus.cache_hit else 'miss, tokenized and saved'} ({corpus.cache_path})")
             + f"; loaded in {corpus.seconds:.2f} s",
             f"checksum: {corpus.checksum[:16]}  (tokenizer: keep_case={c.keep_case}, num_token={c.num_token})",
             f"split: {corpus.split_policy}, seed {c.split_seed}, valid {c.valid_fraction:g}, test {c.test_fraction:g}",
             "",
             f"{'split':<6} {'files':>6} {'tokens':>11} {'OOV':>7}"]
    for split in SPLITS:
        ids = getattr(corpus, split)
        lines.append(f"{split:<6} {len(corpus.documents.get(split, [])):>6} {len(ids):>11,} "
                     f"{100 * corpus.oov_rate[split]:>6.2f}%")
    vocab = corpus.vocab
    lines += ["", f"vocabulary: {len(vocab):,} words incl. <unk> and <eos> "
                  f"(max_vocab {c.max_vocab or 'unlimited'}, min_count {c.min_count})"]
    top = vocab.itos[2:22]
    if vocab.counts is not None:
        lines.append("20 most frequent (train): " + "  ".join(f"{w} {n:,}" for w, n in zip(top, vocab.counts[2:22])))
    source = corpus.valid if len(corpus.valid) else corpus.train
    samples = _sample_sentences(source, vocab.eos_id)
    if samples:
        lines += ["", f"sample sentences ({'valid' if source is corpus.valid else 'train'}):"]
        for sentence in samples:
            tokens = vocab.decode(sentence)
            lines += ["  tokens: " + " ".join(tokens),
                      "  text:   " + detokenize(tokens, capitalize=not c.keep_case)]
    return "\n".join(lines)
