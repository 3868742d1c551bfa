"""Vocabulary, splits, the token cache, batches and `corpus info`."""
import json
import os

import numpy as np
import pytest

from rnnlm.cli import main
from rnnlm.data import DataConfig, assign_documents, batchify, contiguous_cuts, load_corpus, windows
from rnnlm.errors import UserError
from rnnlm.tokenize import EOS, UNK
from rnnlm.vocab import Vocab


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RNNLM_CACHE", str(tmp_path_factory.mktemp("rnnlm_cache")))
        mp.delenv("RNNLM_CORPORA", raising=False)
        yield


@pytest.fixture(scope="session")
def few_works(machado_dir, tmp_path_factory):
    """A folder of the small critical essays (about 25 real works, ~250 kB), as symlinks."""
    folder = tmp_path_factory.mktemp("few_works")
    for path in sorted((machado_dir / "txt" / "crítica").glob("*.txt")):
        if path.stat().st_size < 20_000:
            (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture()
def one_file(tmp_path):
    sentences = [f"Esta é a frase número {i} do texto, e fala de coisas." for i in range(400)]
    sentences[-3] = "No fim aparece uma palavra rara: zimbório."
    path = tmp_path / "um.txt"
    path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- vocab


def test_vocab_order_limits_and_json():
    counts = {"b": 3, "a": 3, "c": 5, "d": 1, EOS: 7}
    vocab = Vocab.build(counts)
    assert vocab.itos == [UNK, EOS, "c", "a", "b", "d"]
    assert (vocab.unk_id, vocab.eos_id) == (0, 1)
    assert Vocab.build(counts, max_vocab=4).itos == [UNK, EOS, "c", "a"]
    assert Vocab.build(counts, min_count=2).itos == [UNK, EOS, "c", "a", "b"]
    assert Vocab.build(dict(reversed(list(counts.items())))) == vocab      # insertion order irrelevant
    again = Vocab.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.itos == vocab.itos and again.stoi == vocab.stoi and again.counts == vocab.counts
    ids = vocab.encode(["a", "zz", EOS])
    assert ids.dtype == np.int32 and ids.tolist() == [3, 0, 1]
    assert vocab.decode(ids) == ["a", UNK, EOS]
    with pytest.raises(UserError):
        Vocab.build(counts, max_vocab=2)
    with pytest.raises(UserError):
        Vocab.from_json({"itos": ["x"]})


# ---------------------------------------------------------------- splits


def test_document_split_is_seeded():
    lengths = [100] * 40
    a = assign_documents(lengths, 0, 0.05, 0.05)
    assert a == assign_documents(lengths, 0, 0.05, 0.05)
    assert a != assign_documents(lengths, 1, 0.05, 0.05)
    assert a.count("valid") == 2 and a.count("test") == 2 and a.count("train") == 36
    assert assign_documents([10, 10], 0, 0.05, 0.05) is None             # too few documents
    assert assign_documents([1000, 5, 5, 5], 0, 0.05, 0.05) is None      # no whole work fits 5%


def test_contiguous_cuts_at_sentence_ends():
    ids = np.array([5, 6, 0] * 100, dtype=np.int32)                      # <eos> = 0 every 3 tokens
    a, b = contiguous_cuts(ids, 0, 0.05, 0.05)
    assert ids[a - 1] == 0 and ids[b - 1] == 0
    assert abs(a - 270) <= 3 and abs(b - 285) <= 3


def test_works_split_deterministic(few_works):
    base = load_corpus(DataConfig(corpus=str(few_works), max_vocab=0))
    again = load_corpus(DataConfig(corpus=str(few_works), max_vocab=0))
    other = load_corpus(DataConfig(corpus=str(few_works), max_vocab=0, split_seed=1))
    assert base.split_policy == "documents"
    assert base.documents == again.documents
    for split in ("train", "valid", "test"):
        assert np.array_equal(getattr(base, split), getattr(again, split))
    assert base.documents != other.documents
    assert base.checksum == other.checksum                               # seed is not a tokenizer setting
    names = [n for docs in base.documents.values() for n in docs]
    assert len(names) == len(set(names)) == len(list(few_works.glob("*.txt")))
    total = sum(len(getattr(base, s)) for s in ("train", "valid", "test"))
    for split in ("valid", "test"):
        assert 0.025 <= len(getattr(base, split)) / total <= 0.075
        assert getattr(base, split)[-1] == base.vocab.eos_id            # whole works end with <eos>
    # The vocabulary comes from train only: unlimited vocab, so train has no <unk>, held-out works do.
    assert base.oov_rate["train"] == 0.0 and base.oov_rate["valid"] > 0 and base.oov_rate["test"] > 0


def test_single_file_contiguous_and_vocab_from_train(one_file):
    c = load_corpus(DataConfig(corpus=str(one_file), max_vocab=0))
    assert c.split_policy == "contiguous"
    n = len(c.train) + len(c.valid) + len(c.test)
    assert abs(len(c.train) / n - 0.90) < 0.01 and abs(len(c.test) / n - 0.05) < 0.01
    assert c.train[-1] == c.valid[-1] == c.test[-1] == c.vocab.eos_id
    assert "zimbório" not in c.vocab.stoi and c.oov_rate["test"] > 0 and c.oov_rate["train"] == 0
    assert c.vocab.decode(c.train[:12]) == "esta é a frase número 0 do texto , e fala de".split()
    assert c.train.dtype == np.int32


def test_predefined_split_from_file_names(tmp_path):
    for split, word in (("train", "gato"), ("valid", "cão"), ("test", "rato")):
        (tmp_path / f"{split}.txt").write_text(f"o {word} dorme .\n\n" * 20, encoding="utf-8")
    c = load_corpus(DataConfig(corpus=str(tmp_path), split_seed=3))
    assert c.split_policy == "predefined"
    assert c.documents == {"train": ["train.txt"], "valid": ["valid.txt"], "test": ["test.txt"]}
    assert c.vocab.decode(c.valid[:5]) == ["o", "<unk>", "dorme", ".", "<eos>"]
    assert c.oov_rate["train"] == 0 and c.oov_rate["test"] == 0.2    # "rato" of "o rato dorme . <eos>"


def test_max_vocab_and_min_count(few_works):
    c = load_corpus(DataConfig(corpus=str(few_works), max_vocab=100))
    assert len(c.vocab) == 100 and c.oov_rate["train"] > 0
    assert c.vocab.itos[:2] == [UNK, EOS] and c.vocab.itos[2] == ","
    counts = c.vocab.counts[2:]
    assert counts == sorted(counts, reverse=True)
    m = load_corpus(DataConfig(corpus=str(few_works), max_vocab=0, min_count=3))
    assert min(m.vocab.counts[2:]) >= 3


def test_bad_fractions(few_works):
    with pytest.raises(UserError, match="together below 1"):
        load_corpus(DataConfig(corpus=str(few_works), valid_fraction=0.6, test_fraction=0.5))


# ---------------------------------------------------------------- cache


def test_cache_hit_is_faster_and_identical(tmp_path, machado_dir):
    folder = tmp_path / "works"
    folder.mkdir()
    for rel in ("romance/domCasmurro.txt", "conto/reliquias.txt", "teatro/aventalLuva.txt"):
        (folder / rel.replace("/", "_")).symlink_to(machado_dir / "txt" / rel)
    cold = load_corpus(DataConfig(corpus=str(folder)))
    warm = load_corpus(DataConfig(corpus=str(folder)))
    assert not cold.cache_hit and warm.cache_hit
    assert warm.seconds < cold.seconds / 3 and warm.seconds < 0.5
    assert cold.checksum == warm.checksum and cold.vocab == warm.vocab
    for split in ("train", "valid", "test"):
        assert np.array_equal(getattr(cold, split), getattr(warm, split))
    assert sorted(os.listdir(warm.cache_path)) == ["doc_offsets.npy", "ids.npy", "meta.json"]
    np.load(os.path.join(warm.cache_path, "ids.npy"), allow_pickle=False)
    refreshed = load_corpus(DataConfig(corpus=str(folder), use_cache=False))
    assert not refreshed.cache_hit and np.array_equal(refreshed.train, warm.train)
    cased = load_corpus(DataConfig(corpus=str(folder), keep_case=True))
    assert cased.checksum != warm.checksum and not cased.cache_hit


def test_changed_file_changes_checksum(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("Uma frase. Outra frase.\n" * 50, encoding="utf-8")
    first = load_corpus(DataConfig(corpus=str(path)))
    path.write_text("Uma frase. Outra coisa.\n" * 50, encoding="utf-8")
    second = load_corpus(DataConfig(corpus=str(path)))
    assert first.checksum != second.checksum and not second.cache_hit


@pytest.mark.slow
def test_full_machado_corpus(machado_dir):
    config = DataConfig(corpus="machado", corpora_dir=str(machado_dir.parent))
    cold = load_corpus(config)
    warm = load_corpus(config)
    assert warm.cache_hit and warm.seconds < 1.0
    assert cold.split_policy == "documents" and len(cold.vocab) == 10000
    total = len(cold.train) + len(cold.valid) + len(cold.test)
    assert 2_000_000 < total < 3_000_000
    assert np.array_equal(cold.test, warm.test)
    for split in ("valid", "test"):
        assert 0.025 < len(getattr(cold, split)) / total < 0.075
        assert 0 < cold.oov_rate[split] < 0.15


# ---------------------------------------------------------------- batches


def test_batchify_streams_are_contiguous():
    ids = np.arange(20, dtype=np.int32)
    batches = batchify(ids, 3)
    assert batches.shape == (6, 3) and batches.dtype == np.int32 and batches.flags.c_contiguous
    for b in range(3):
        assert batches[:, b].tolist() == list(range(6 * b, 6 * b + 6))
    with pytest.raises(UserError, match="too few"):
        batchify(ids, 15)


def test_windows_shift_targets_and_cover_the_stream():
    stream = batchify(np.arange(41, dtype=np.int32), 2)        # (20, 2)
    seen = list(windows(stream, 7))
    assert [pos for pos, _, _ in seen] == [0, 7, 14]
    assert [x.shape for _, x, _ in seen] == [(7, 2), (7, 2), (5, 2)]   # last window shorter
    for pos, inputs, targets in seen:
        assert np.array_equal(targets, inputs + 1)                 # the next token of each stream
        assert np.array_equal(inputs, stream[pos:pos + len(inputs)])
    covered = np.concatenate([x for _, x, _ in seen])
    assert np.array_equal(covered, stream[:-1])
    assert [pos for pos, _, _ in windows(stream, 7, start=7)] == [7, 14]


# ---------------------------------------------------------------- CLI


def test_corpus_info_command(few_works, capsys):
    assert main(["corpus", "info", str(few_works), "--max-vocab", "500"]) == 0
    out = capsys.readouterr().out
    assert "split: documents, seed 0" in out
    for word in ("train", "valid", "test", "OOV", "vocabulary: 500 words", "20 most frequent",
                 "tokens:", "text:", str(few_works.resolve())):
        assert word in out
    assert main(["corpus", "info", str(few_works), "--max-vocab", "500"]) == 0
    assert "cache: hit" in capsys.readouterr().out


def test_corpus_info_bad_path_is_one_line(tmp_path, capsys):
    assert main(["corpus", "info", str(tmp_path / "nada")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a named corpus" in err
