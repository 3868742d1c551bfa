"""Small API findings: a perplexity is e^loss up to float64's end (~709.78 nats), not only below 700; a
cell's cache allocation says which size or dtype is wrong instead of NumPy's error from inside."""
import math

import numpy as np
import pytest

from rnnlm.gru import gru_alloc
from rnnlm.lstm import lstm_alloc
from rnnlm.rnn import rnn_alloc
from rnnlm.runs import fmt_ppl, ppl


def test_a_perplexity_is_e_to_the_loss_until_float64_overflows():
    assert ppl(705.0) == pytest.approx(math.exp(705.0), rel=1e-15)
    assert fmt_ppl(ppl(709.7)) == "1.65e+308"
    assert ppl(709.8) == math.inf and ppl(math.inf) == math.inf
    assert math.isnan(ppl(math.nan)) and ppl(math.log(141.19)) == pytest.approx(141.19)


@pytest.mark.parametrize("alloc, name", [(rnn_alloc, "rnn_alloc"), (lstm_alloc, "lstm_alloc"),
                                         (gru_alloc, "gru_alloc")])
def test_a_cache_allocation_names_the_wrong_size_or_dtype(alloc, name):
    with pytest.raises(TypeError, match=rf"^{name}: T must be an int >= 1, got 3.0 \(float\)$"):
        alloc(3.0, 2, 4, 5, np.float64)
    with pytest.raises(ValueError, match=rf"^{name}: H must be an int >= 1, got -1$"):
        alloc(3, 2, 4, -1, np.float64)
    with pytest.raises(TypeError, match=rf"^{name}: dtype must be np.float32 or np.float64, got <class 'int'>$"):
        alloc(3, 2, 4, 5, int)
    for wrong in ("flaot32", None, "banana"):       # (numpy takes None as float64; "x" is no dtype at all)
        with pytest.raises(TypeError, match=rf"^{name}: dtype must be np.float32 or np.float64, got {wrong!r}$"):
            alloc(3, 2, 4, 5, wrong)
    cache = alloc(np.int64(3), 2, 4, 5, "float32")
    assert cache.h.shape == (4, 2, 5) and cache.h.dtype == np.float32


def test_a_memory_refusal_gives_a_readable_size(monkeypatch):
    from rnnlm import config
    from rnnlm.config import ModelConfig, ModelConfigError
    from rnnlm.fileio import fmt_bytes
    assert [fmt_bytes(n) for n in (512, 3 * 2**29, 2**40, 3 * 2**60)] == ["512 bytes", "1.5 GiB", "1.0 TiB",
                                                                       "3,072.0 PiB"]
    monkeypatch.setattr(config, "physical_memory", lambda: 8 * 2**30)
    with pytest.raises(ModelConfigError, match=r"needs at least 426\.3 PiB \(parameters, gradients, optimizer state\), "
                                               r"more than this machine's 8\.0 GiB;"):
        ModelConfig(vocab_size=10000, hidden=100_000_000).validate()


def test_a_file_read_as_cp1252_is_said_on_a_token_cache_hit_too(tmp_path, monkeypatch):
    from rnnlm.config import DataConfig
    from rnnlm.data import load_corpus
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_bytes("olá mundo, coração de pedra. ".encode("cp1252") * 40)
    (folder / "b.txt").write_text("uma outra linha, em utf-8. " * 40, encoding="utf-8")
    said = []
    for _ in range(2):
        with pytest.warns(UserWarning) as w:
            corpus = load_corpus(DataConfig(corpus=str(folder), valid_fraction=0.0, test_fraction=0.0))
        said.append((corpus.cache_hit, [str(x.message) for x in w]))
    assert said == [(False, [f"{folder / 'a.txt'} is not UTF-8; read it as cp1252"]),
                    (True, [f"{folder / 'a.txt'} is not UTF-8; read it as cp1252"])]
    moved = tmp_path / "moved"
    folder.rename(moved)            # the same bytes elsewhere: the cache hits, and names the file where it is
    with pytest.warns(UserWarning) as w:
        assert load_corpus(DataConfig(corpus=str(moved), valid_fraction=0.0, test_fraction=0.0)).cache_hit
    assert [str(x.message) for x in w] == [f"{moved / 'a.txt'} is not UTF-8; read it as cp1252"]


def test_a_utf8_file_with_a_few_bad_bytes_stays_utf8(tmp_path):
    """It was read as latin-1 whole: every accented letter garbled ('nÃ£o'), with only a warning."""
    from pathlib import Path
    from rnnlm.corpus import read_text
    good = "Não há coração que aguente; a razão é outra.\n".encode("utf-8") * 50
    cut = tmp_path / "cut.txt"
    cut.write_bytes(good + "ã".encode("utf-8")[:1])                     # cut in the middle of a character
    with pytest.warns(UserWarning) as w:
        text = read_text(cut)
    assert [str(x.message) for x in w] == [f"{cut} is UTF-8 except at byte {len(good):,}; read it as UTF-8 with "
                                           "that byte replaced by U+FFFD"]
    assert text == good.decode("utf-8") + "\ufffd"
    pasted = tmp_path / "pasted.txt"
    pasted.write_bytes(good[:100] + b"caf\xe9 e ma\xe7\xe3 " + good[100:])   # three cp1252 bytes in UTF-8 text
    with pytest.warns(UserWarning, match=r"is UTF-8 except at 3 places, the first at byte 103; read it as UTF-8 "
                                         r"with those replaced by U\+FFFD$"):
        assert read_text(pasted).count("coração") == 50
    old = tmp_path / "old.txt"          # a cp1252 file: still read as cp1252
    old.write_bytes("Não há “aspas” aqui — coração".encode("cp1252") * 30)
    with pytest.warns(UserWarning, match=r"old.txt is not UTF-8; read it as cp1252$"):
        assert read_text(Path(old)).endswith("coração")


def test_distances_are_said_as_the_flag_takes_them():
    """A replaced-measurement note listed a thousand distances one by one."""
    from rnnlm.measured import _distances_flag
    from rnnlm.probes import parse_distances
    for text, said in (("1..1000", "1..1000"), ("1..25:4", "1..25:4"), ("1,2,5", "1,2,5"), ("3", "3"),
                       ("1,3", "1,3"), ("2..8:3", "2..8:3")):
        assert _distances_flag(parse_distances(text)) == said
        assert parse_distances(said) == parse_distances(text)
