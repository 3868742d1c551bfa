"""The probes from Python: a Vocab is taken where its word -> id map is asked, fewer targets than asked are
said (a warning from the API, the table's header from the command), one target is refused (no interval),
and a float distance is refused rather than truncated."""
import warnings

import numpy as np
import pytest

from rnnlm import probereport as R
from rnnlm import probes as P
from rnnlm.config import ModelConfig
from rnnlm.errors import UserError
from rnnlm.model import RNNModel
from rnnlm.vocab import Vocab


def _model(V=40):
    return RNNModel(ModelConfig(vocab_size=V, cell="rnn", hidden=8, emsize=8, dropout=0.0))


def _scorer(prefixes, candidates):
    return np.ones(len(prefixes))          # the correct word always wins


def test_agreement_probe_takes_a_vocab_or_a_dict_and_refuses_anything_else():
    from rnnlm.sinteticolex import all_words    # every word of the word lists
    words = sorted(all_words())
    vocab = Vocab.build({w: 1 for w in words})
    stoi = vocab.stoi
    by_dict = P.agreement_probe(_scorer, stoi, [1, 3], 4, seed=1)
    assert by_dict["pairs"] == 8 and by_dict["overall"]["accuracy"] == 1.0
    assert P.agreement_probe(_scorer, vocab, [1, 3], 4, seed=1) == by_dict
    with pytest.raises(TypeError, match=r"^agreement_probe: stoi must be a dict of word -> id \(a Vocab's "
                                        r"\.stoi\), got list$"):
        P.agreement_probe(_scorer, words, [1, 3], 4)
    with pytest.raises(ValueError, match=r"^agreement_probe: no gender agreement pair has a distance below 2"):
        P.agreement_probe(_scorer, stoi, [1], 4, feature="gender")


def test_fewer_targets_than_asked_are_warned_and_counted():
    stream = np.arange(40) % 40
    with pytest.warns(P.FewerTargetsWarning, match=r"^context_usage: the stream holds 10 positions past the window "
                                                  r"\(40 tokens, window=30\); measured at all 10, not the 20 asked"):
        res = P.context_usage(_model(), stream, [1, 5], n_targets=20, window=30, n_boot=50)
    assert (res["n_targets"], res["n_targets_asked"]) == (10, 20)
    assert res["results"][0]["n"] == 10
    assert "10 targets (of 20 asked: the split holds only 10 positions past the window), window 30" \
        in R.format_context(res)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # as many as asked: no warning
        res = P.context_usage(_model(), stream, [1, 5], n_targets=10, window=30, n_boot=50)
    assert "(of" not in R.format_context(res).splitlines()[0]


def test_one_target_gives_no_interval_and_is_refused():
    with pytest.raises(UserError, match=r"^context_usage: stream has 31 tokens: one target past window=30, and an "
                                        r"interval needs at least two: pass a longer stream or a smaller window$"):
        P.context_usage(_model(), np.arange(31) % 40, [1, 5], n_targets=20, window=30)


def test_a_float_distance_is_refused_not_truncated():
    with pytest.raises(TypeError, match=r"^context_usage: distances must be integers, got \[1\.5, 3\]$"):
        P.context_usage(_model(), np.arange(60) % 40, [1.5, 3], window=30)


def test_a_larger_max_vocab_is_advised_only_where_the_limit_cut_the_vocabulary():
    stoi = {w: i for i, w in enumerate(["<unk>", "<eos>", "o", "a", "homem", "que"])}
    with pytest.raises(UserError, match=r"; train with a larger --max-vocab \(0 = no limit\)"):
        P.check_agreement_vocab("number", stoi, max_vocab=6)        # the limit was reached: it cut
    with pytest.raises(UserError, match=r"; train on a corpus that holds these words \(machado, or sintetico, "
                                        r"whose grammar they are\): this one has no more$"):
        P.check_agreement_vocab("number", stoi, max_vocab=10000)    # 6 words under a limit of 10,000
    with pytest.raises(UserError, match=r"this one has no more$"):
        P.check_agreement_vocab("number", stoi, max_vocab=0)        # no limit


def test_probe_context_checks_its_settings_before_loading_the_model(tmp_path, monkeypatch):
    def never(*a, **k):
        raise AssertionError("the model was loaded before the settings were checked")
    monkeypatch.setattr(P, "_load", never)
    with pytest.raises(UserError, match=r"^--distances: every distance must be >= 1 and below --window 20; got 30 "):
        P.run_context(tmp_path, split="valid", distances="5,30", mode="shuffle", n_targets=10, window=20, seed=0,
                      checkpoint="best", batch_size=8)
