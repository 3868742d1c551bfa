"""The Kneser–Ney baseline: counts, discounts, normalization, a probability by hand, and a slow
dictionary-based reference implementation the vectorized model must match position by position."""
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from rnnlm.baseline import KneserNey, KneserNeyTrigram, modified_kn_discounts

# "a b c a b d a b c" with a=0 b=1 c=2 d=3; id 4 is in the vocabulary but never seen
TOY = np.array([0, 1, 2, 0, 1, 3, 0, 1, 2], dtype=np.int32)
TOY_V = 5
# fixed discounts (D1, D2, D3+) per order, lowest first, so that the hand computation is short
TOY_DISCOUNTS = [(0.4, 0.8, 1.2), (0.5, 1.0, 1.5), (0.6, 1.2, 1.8)]


def _types(order):
    """The order's n-gram types as tuples, with their counts."""
    V = order.keys.dtype.type(TOY_V)
    grams = []
    for key in order.keys:
        gram = []
        for _ in range(order.n):
            gram.append(int(key % V))
            key //= V
        grams.append(tuple(reversed(gram)))
    return dict(zip(grams, order.counts.tolist()))


def test_counts_and_continuation_counts():
    model = KneserNeyTrigram.fit(TOY, TOY_V)
    unigram, bigram, trigram = model.orders
    # raw trigram counts of the stream
    assert _types(trigram) == {(0, 1, 2): 2, (1, 2, 0): 1, (2, 0, 1): 1,
                               (0, 1, 3): 1, (1, 3, 0): 1, (3, 0, 1): 1}
    # bigram continuation counts: distinct words seen before the bigram; "a b" follows c and d
    assert _types(bigram) == {(0, 1): 2, (1, 2): 1, (1, 3): 1, (2, 0): 1, (3, 0): 1}
    # unigram continuation counts: distinct words before w among bigram types; "a" follows c and d
    assert _types(unigram) == {(0,): 2, (1,): 1, (2,): 1, (3,): 1}
    # per-history sums at the trigram order: history (a, b) has c = 3
    index = np.searchsorted(trigram.history_keys, 0 * TOY_V + 1)
    assert trigram.history_totals[index] == 3


def test_discounts_follow_chen_goodman():
    counts = np.array([1] * 10 + [2] * 4 + [3] * 3 + [4] * 2 + [7] * 5)
    discounts, count_of_counts = modified_kn_discounts(counts)
    n1, n2, n3, n4 = 10, 4, 3, 2
    assert count_of_counts.tolist() == [n1, n2, n3, n4]
    y = n1 / (n1 + 2 * n2)
    expected = [0.0, 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3]
    np.testing.assert_allclose(discounts, expected, rtol=0, atol=1e-15)


def test_discount_guards_keep_every_discount_positive():
    # no singletons, and n3 large enough that the D3+ formula goes negative
    discounts, _ = modified_kn_discounts(np.array([3, 3, 3, 3, 4]))
    assert (discounts[1:] > 0).all() and (discounts[1:] <= [1, 2, 3]).all()
    discounts, _ = modified_kn_discounts(np.array([], dtype=np.int64))
    assert (discounts[1:] > 0).all()


def test_one_trigram_probability_by_hand():
    model = KneserNeyTrigram.fit(TOY, TOY_V, discounts=TOY_DISCOUNTS)
    # unigram, continuation counts a:2 b:1 c:1 d:1 e:0, total 5; three 1s and one 2:
    #   gamma = (0.4*3 + 0.8*1) / 5 = 0.4;  P1(c) = (1 - 0.4)/5 + 0.4 * 1/5 = 0.2
    p1 = (1 - 0.4) / 5 + (0.4 * 3 + 0.8 * 1) / 5 * (1 / 5)
    # bigram after b, continuation counts (b c):1 (b d):1, total 2:
    #   gamma = 0.5*2 / 2 = 0.5;  P2(c | b) = (1 - 0.5)/2 + 0.5 * 0.2 = 0.35
    p2 = (1 - 0.5) / 2 + (0.5 * 2) / 2 * p1
    # trigram after (a b), counts (a b c):2 (a b d):1, total 3:
    #   gamma = (0.6*1 + 1.2*1) / 3 = 0.6;  P3(c | a b) = (2 - 1.2)/3 + 0.6 * 0.35 = 0.47666...
    p3 = (2 - 1.2) / 3 + (0.6 * 1 + 1.2 * 1) / 3 * p2
    assert p1 == pytest.approx(0.2) and p2 == pytest.approx(0.35) and p3 == pytest.approx(1.43 / 3)
    assert model.prob_distribution([0, 1])[2] == pytest.approx(p3, abs=1e-15)
    # the same number through logprob: position 2 of "a b c" predicts c after (a b)
    assert np.exp(model.logprob(np.array([0, 1, 2]))[1]) == pytest.approx(p3, abs=1e-15)
    # an unseen history (e e) falls through to the unigram estimate; the unseen word e gets mass
    assert model.prob_distribution([4, 4])[2] == pytest.approx(p1, abs=1e-15)
    assert model.prob_distribution([4, 4])[4] == pytest.approx(0.4 / 5, abs=1e-15)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_distributions_sum_to_one(order):
    rng = np.random.default_rng(order)
    V = 40
    ids = rng.zipf(1.4, 5000) % V
    model = KneserNey.fit(ids, V, order=order)
    contexts = [(), (int(ids[10]),), (int(ids[10]), int(ids[11])),   # seen
                (V - 1, V - 1), (0, V - 1)]                            # likely unseen
    contexts += [tuple(int(c) for c in rng.integers(0, V, 2)) for _ in range(5)]
    for context in contexts:
        dist = model.prob_distribution(context)
        assert dist.shape == (V,)
        assert (dist > 0).all()
        assert abs(dist.sum() - 1) < 1e-9, (context, dist.sum())


def test_unseen_context_of_a_model_fit_on_a_short_stream_is_uniform_fallback():
    model = KneserNeyTrigram.fit(np.array([0, 1], dtype=np.int32), 6)
    dist = model.prob_distribution([5, 5])
    assert abs(dist.sum() - 1) < 1e-12 and (dist > 0).all()


def _reference_kn(train, V, order):
    """Slow, obvious interpolated modified KN from Python dictionaries (discounts by the formula)."""
    counts = [None] * (order + 1)
    counts[order] = Counter(tuple(train[i:i + order]) for i in range(len(train) - order + 1))
    for n in range(order - 1, 0, -1):
        counts[n] = Counter(gram[1:] for gram in counts[n + 1])
    discounts, totals, classes = {}, {}, {}
    for n in range(1, order + 1):
        c = counts[n]
        k = Counter(min(v, 5) for v in c.values())
        y = k[1] / (k[1] + 2 * k[2])
        discounts[n] = {0: 0.0, 1: 1 - 2 * y * k[2] / k[1], 2: 2 - 3 * y * k[3] / k[2],
                        3: 3 - 4 * y * k[4] / k[3]}
        totals[n], classes[n] = defaultdict(float), defaultdict(float)
        for gram, value in c.items():
            totals[n][gram[:-1]] += value
            classes[n][gram[:-1]] += discounts[n][min(value, 3)]

    def prob(history, w):
        p = 1.0 / V
        for n in range(1, order + 1):
            if len(history) < n - 1:
                break
            h = tuple(history[len(history) - (n - 1):]) if n > 1 else ()
            if h not in totals[n]:
                continue
            c = counts[n].get(h + (w,), 0)
            p = (max(c - discounts[n][min(c, 3)], 0) + classes[n][h] * p) / totals[n][h]
        return p

    return prob, discounts


@pytest.mark.parametrize("order", [1, 2, 3])
def test_matches_dictionary_reference(order):
    rng = np.random.default_rng(10 + order)
    V = 400   # large enough that every order has types seen 1, 2, 3 and 4 times
    train = (rng.zipf(1.3, 4000) % V).tolist()
    held_out = (rng.zipf(1.3, 600) % V).tolist()
    prob, discounts = _reference_kn(train, V, order)
    model = KneserNey.fit(np.array(train), V, order=order)
    for n in range(1, order + 1):
        np.testing.assert_allclose(model.orders[n - 1].discounts,
                                   [discounts[n][k] for k in range(4)], atol=1e-14)
    expected = [np.log(prob(held_out[max(0, i - order + 1):i], held_out[i]))
                for i in range(1, len(held_out))]
    np.testing.assert_allclose(model.logprob(np.array(held_out)), expected, rtol=0, atol=1e-12)


def test_kn_beats_add_one_unigram_on_held_out_text():
    # a second-order Markov source: the next word depends on the two before it
    rng = np.random.default_rng(7)
    V = 30
    table = rng.dirichlet(np.full(V, 0.1), size=(V, V))
    stream = [0, 1]
    for _ in range(30000):
        stream.append(int(rng.choice(V, p=table[stream[-2], stream[-1]])))
    stream = np.array(stream)
    train, held_out = stream[:25000], stream[25000:]
    add_one = (np.bincount(train, minlength=V) + 1) / (train.size + V)
    add_one_nats = -np.log(add_one[held_out[1:]]).mean()
    kn_nats = KneserNeyTrigram.fit(train, V).cross_entropy(held_out)
    bigram_nats = KneserNey.fit(train, V, order=2).cross_entropy(held_out)
    assert kn_nats < bigram_nats < add_one_nats
    assert kn_nats < add_one_nats - 0.5


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        KneserNeyTrigram.fit(np.array([0, 1, 5]), 5)
    with pytest.raises(ValueError):
        KneserNeyTrigram.fit(np.array([0.5, 1.0]), 5)
    with pytest.raises(ValueError):
        KneserNey.fit(np.array([0, 1]), 3_000_000, order=3)
    with pytest.raises(ValueError):
        KneserNeyTrigram.fit(TOY, TOY_V, discounts=[(0.5, 0.5, 0.5)] * 2)
    with pytest.raises(ValueError):
        KneserNeyTrigram.fit(TOY, TOY_V).prob_distribution([0, 7])


TEXT = (
    "Capítulo primeiro. Uma noite destas, vindo da cidade para o Engenho Novo, "
    "encontrei no trem da Central um rapaz aqui do bairro, que eu conheço de vista "
    "e de chapéu. Cumprimentou-me, sentou-se ao pé de mim, falou da lua e dos "
    "ministros, e acabou recitando-me versos. A viagem era curta, e os versos pode "
    "ser que não fossem inteiramente maus. Sucedeu, porém, que, como eu estava "
    "cansado, fechei os olhos três ou quatro vezes; tanto bastou para que ele "
    "interrompesse a leitura e metesse os versos no bolso.\n"
)


@pytest.fixture
def small_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "texto"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT * 40, encoding="utf-8")
    return folder / "a.txt"


def test_baseline_command_end_to_end(small_corpus, capsys):
    from rnnlm.cli import main

    assert main(["baseline", "--corpus", str(small_corpus), "--split", "both", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["models"]) == {"trigram", "bigram", "unigram"}
    for entry in report["models"].values():
        for split in ("valid", "test"):
            result = entry["splits"][split]
            assert np.isfinite(result["cross_entropy"]) and result["perplexity"] > 1
    # repeated text: the trigram model should be far better than the unigram one
    trigram = report["models"]["trigram"]["splits"]["valid"]["perplexity"]
    assert trigram < report["models"]["unigram"]["splits"]["valid"]["perplexity"] / 3

    assert main(["baseline", "--corpus", str(small_corpus), "--split", "valid"]) == 0
    out = capsys.readouterr().out
    split_lines = [line.split(":")[0].strip() for line in out.splitlines() if "perplexity" in line]
    assert split_lines == ["valid"] * 3 and "D3+" in out
