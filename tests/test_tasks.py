"""The long-range tasks: exact distances, answers decided by the key, held-out disjoint, chance without the key."""
from collections import Counter

import numpy as np
import pytest

from rnnlm import sintetico as S
from rnnlm import tasks as K
from rnnlm.errors import UserError
from rnnlm.vocab import Vocab

# ---------------------------------------------------------------- an independent checker (sintetico's raw lists)

NOUN_NUMBER = {}
for sg, pl, _ in S.ANIMATE + S.INANIMATE:
    NOUN_NUMBER[sg], NOUN_NUMBER[pl] = "sg", "pl"
for phrase, noun in S.ADVERB_PHRASES:
    if noun:
        NOUN_NUMBER[phrase.split()[noun[0]]] = noun[1]
VERB_NUMBER, VERB_PAIR = {}, {}
for sg, pl, _ in S.VERBS:
    VERB_NUMBER[sg], VERB_NUMBER[pl] = "sg", "pl"
    VERB_PAIR[sg] = VERB_PAIR[pl] = (sg, pl)
ARTICLE_NUMBER = {"o": "sg", "a": "sg", "um": "sg", "uma": "sg", "os": "pl", "as": "pl", "uns": "pl", "umas": "pl"}


def tol(p, n, z=4.0):
    """A z-sigma binomial tolerance on an accuracy of chance p over n trials."""
    return z * np.sqrt(p * (1 - p) / n)


def words(data, split, i):
    return [data.vocab[t] for t in data.split(split).tokens[i]]


@pytest.fixture(scope="module")
def recall():
    return K.make_task(K.TaskSpec("recall", 12, keys=3, n_train=3000, n_test=3000, seed=1))


@pytest.fixture(scope="module")
def order():
    return K.make_task(K.TaskSpec("order", 10, n_train=3000, n_test=3000, seed=2, lead=3))


@pytest.fixture(scope="module")
def agreement():
    return K.make_task(K.TaskSpec("agreement", 15, n_train=2000, n_test=2000, seed=3))


# ---------------------------------------------------------------- spec


@pytest.mark.parametrize("kw, msg", [
    (dict(name="copy", distance=5), "unknown task"),
    (dict(name="recall", distance=0), "distance"),
    (dict(name="recall", distance=5, keys=1), "keys"),
    (dict(name="recall", distance=5, keys=len(K.RECALL_KEYS) + 1), "keys"),
    (dict(name="recall", distance=5, filler_vocab_size=0), "filler_vocab_size"),
    (dict(name="recall", distance=5, filler_vocab_size=10 ** 6), "filler_vocab_size"),
    (dict(name="recall", distance=5, n_test=0), "n_test"),
    (dict(name="recall", distance=5, seed=-1), "seed"),
    (dict(name="recall", distance=5, lead=-1), "lead"),
    (dict(name="recall", distance=5, second=2), "order task"),
    (dict(name="recall", distance=5.0), "integer"),
    (dict(name="recall", distance=K.MAX_DISTANCE + 1), "above"),
    (dict(name="recall", distance=5, agreement_filler="independent"), "agreement task"),
    (dict(name="order", distance=5, keys=3), "markers"),
    (dict(name="order", distance=5, second=6), "second"),
    (dict(name="order", distance=5, second=0), "second"),
    (dict(name="agreement", distance=2), "agreement distance"),
    (dict(name="agreement", distance=10, filler_vocab_size=20), "filler_vocab_size"),
    (dict(name="agreement", distance=10, lead=1), "lead"),
    (dict(name="agreement", distance=10, keys=3), "2 classes"),
    (dict(name="agreement", distance=10, agreement_filler="random"), "agreement_filler"),
])
def test_spec_refuses_nonsense_with_one_line(kw, msg):
    with pytest.raises(UserError, match=msg) as e:
        K.make_task(K.TaskSpec(**kw))
    assert "\n" not in str(e.value)


def test_spec_json_roundtrip_and_unknown_keys():
    spec = K.TaskSpec("order", 7, second=3, seed=4)
    assert K.TaskSpec.from_json(spec.to_json()) == spec
    with pytest.raises(UserError, match="unknown task settings"):
        K.TaskSpec.from_json({**spec.to_json(), "bptt": 5})


def test_filler_words_are_portuguese_and_disjoint_from_task_words():
    pool = K.filler_pool()
    assert len(pool) == len(set(pool)) >= K.DEFAULT_FILLER_VOCAB
    assert set(pool) <= S.all_words()
    task_words = set(K.RECALL_KEYS) | {K.RECALL_QUERY, K.ORDER_QUERY} | set(K.ORDER_MARKERS) | set(K.ORDER_ANSWERS)
    assert not set(pool) & task_words


@pytest.mark.parametrize("spec", [K.TaskSpec("recall", 6, keys=4, filler_vocab_size=7),
                                  K.TaskSpec("order", 6), K.TaskSpec("agreement", 6)])
def test_vocab_is_a_valid_rnnlm_vocab_and_covers_the_data(spec):
    data = K.make_task(spec.__class__(**{**spec.to_json(), "n_train": 200, "n_test": 100}))
    v = Vocab(data.vocab)   # specials first, no repeats
    assert len(v) == data.vocab_size
    used = np.unique(np.concatenate([data.train.tokens.ravel(), data.test.tokens.ravel()]))
    assert used.min() >= len(v.itos[:2])   # the specials are never used
    assert used.max() < data.vocab_size
    if spec.name == "recall":
        assert data.vocab_size == 2 + 4 + 1 + 7


# ---------------------------------------------------------------- determinism and layout


def test_deterministic_and_train_independent_of_n_test():
    a = K.make_task(K.TaskSpec("recall", 8, n_train=300, n_test=100, seed=5))
    b = K.make_task(K.TaskSpec("recall", 8, n_train=300, n_test=100, seed=5))
    c = K.make_task(K.TaskSpec("recall", 8, n_train=300, n_test=50, seed=5))
    d = K.make_task(K.TaskSpec("recall", 8, n_train=300, n_test=100, seed=6))
    for x, y in zip(a.train + a.test, b.train + b.test):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.train.tokens, c.train.tokens)
    assert not np.array_equal(a.train.tokens, d.train.tokens)


@pytest.mark.parametrize("fixture", ["recall", "order", "agreement"])
def test_shapes_and_dtypes(fixture, request):
    data = request.getfixturevalue(fixture)
    spec = data.spec
    for s, n in ((data.train, spec.n_train), (data.test, spec.n_test)):
        assert s.tokens.shape == (n, spec.length) and s.tokens.dtype == np.int32
        for a in (s.key_pos, s.query_pos, s.answer_pos, s.labels):
            assert a.shape == (n,) and a.dtype == np.int32
        assert s.candidates.shape == (n, spec.n_classes) and s.candidates.dtype == np.int32
        assert spec.chance == 1 / spec.n_classes == {"recall": 1 / 3, "order": 1 / 4, "agreement": 1 / 2}[spec.name]
        # the lag is exact, the same for every sequence
        assert np.all(s.query_pos - s.key_pos == spec.lag)
        assert np.all(s.answer_pos == s.query_pos + 1)
        assert np.all(s.answer_pos < spec.length)
        np.testing.assert_array_equal(s.answers, s.candidates[np.arange(n), s.labels])


def test_recall_layout_exact_distance_and_answer_from_key(recall):
    d, k = recall.spec.distance, recall.spec.keys
    keys = K.RECALL_KEYS[:k]
    fillers = set(K.filler_pool()[:K.DEFAULT_FILLER_VOCAB])
    assert recall.spec.length == d + 3 and recall.spec.lag == d + 1
    for split in ("train", "test"):
        s = recall.split(split)
        for i in range(0, len(s), 7):
            w = words(recall, split, i)
            kp = int(s.key_pos[i])
            assert kp == 0
            assert w[kp] in keys and w[kp + d + 1] == K.RECALL_QUERY
            assert w[kp + d + 2] == w[kp]                       # the answer is the key word
            assert keys.index(w[kp]) == s.labels[i]
            between = w[kp + 1: kp + d + 1]
            assert len(between) == d and set(between) <= fillers   # exactly d filler words


def test_recall_lead_moves_the_key_keeps_the_distance():
    data = K.make_task(K.TaskSpec("recall", 5, n_train=400, n_test=100, lead=4))
    s = data.train
    assert data.spec.length == 4 + 5 + 3
    assert set(s.key_pos.tolist()) == set(range(5))
    for i in range(len(s)):
        w = words(data, "train", i)
        kp = int(s.key_pos[i])
        assert w[kp] in K.RECALL_KEYS and w[kp + 6] == K.RECALL_QUERY and w[kp + 7] == w[kp]
        assert sum(x in K.RECALL_KEYS for x in w) == 2 and w.count(K.RECALL_QUERY) == 1


def test_order_layout_two_markers_and_the_class_names_their_order(order):
    d = order.spec.distance
    offsets = Counter()
    for split in ("train", "test"):
        s = order.split(split)
        for i in range(len(s)):
            w = words(order, split, i)
            kp = int(s.key_pos[i])
            assert 0 <= kp <= 3
            marks = [j for j, x in enumerate(w) if x in K.ORDER_MARKERS]
            assert len(marks) == 2 and marks[0] == kp and kp < marks[1] <= kp + d
            offsets[marks[1] - kp] += 1
            assert w[kp + d + 1] == K.ORDER_QUERY
            assert w[kp + d + 2] == f"{w[marks[0]]}-{w[marks[1]]}"
            assert K.ORDER_ANSWERS.index(w[kp + d + 2]) == s.labels[i]
    assert sorted(offsets) == list(range(1, d + 1))   # the second marker anywhere between


def test_order_second_marker_at_a_fixed_offset():
    data = K.make_task(K.TaskSpec("order", 9, second=4, n_train=300, n_test=100))
    for i in range(len(data.train)):
        w = words(data, "train", i)
        assert [j for j, x in enumerate(w) if x in K.ORDER_MARKERS] == [0, 4]


def check_agreement_sentence(w, key_pos, answer_pos, candidates, label, vocab):
    """Subject, article and verb agree; the verb is `distance` after the subject head."""
    subj, verb = w[key_pos], w[answer_pos]
    number = NOUN_NUMBER[subj]
    assert ARTICLE_NUMBER[w[key_pos - 1]] == number
    assert subj in {x for n in S.ANIMATE for x in n[:2]}
    assert VERB_NUMBER[verb] == number == ("sg", "pl")[label]
    assert tuple(vocab[c] for c in candidates) == VERB_PAIR[verb]
    assert not any(x in NOUN_NUMBER for x in w[:key_pos])   # the subject is the first noun


@pytest.mark.parametrize("filler", ["independent", "sintetico"])
def test_agreement_grammatical_exact_distance(filler):
    data = K.make_task(K.TaskSpec("agreement", 9, n_train=300, n_test=300, agreement_filler=filler))
    for split in ("train", "test"):
        s = data.split(split)
        assert np.all(s.key_pos == 1) and np.all(s.answer_pos == 10)
        for i in range(len(s)):
            check_agreement_sentence(words(data, split, i), 1, 10, s.candidates[i], s.labels[i], data.vocab)


def test_agreement_filler_is_grammatical(agreement):
    """Re-inflection touches only the subject and the verb: inside the filler, articles agree with nouns."""
    for i in range(200):
        w = words(agreement, "test", i)
        filler = w[2:-1]
        for a, b in zip(filler, filler[1:]):
            if a in ARTICLE_NUMBER and b in NOUN_NUMBER:
                assert ARTICLE_NUMBER[a] == NOUN_NUMBER[b], " ".join(w)


# ---------------------------------------------------------------- held out, balance, chance


@pytest.mark.parametrize("fixture", ["recall", "order", "agreement"])
def test_test_set_disjoint_from_training_and_distinct(fixture, request):
    data = request.getfixturevalue(fixture)
    train = {row.tobytes() for row in data.train.tokens}
    test = [row.tobytes() for row in data.test.tokens]
    assert not train & set(test)
    assert len(set(test)) == len(test)


def test_held_out_rows_are_redrawn_not_dropped():
    # 2 keys x 2 fillers, d = 4: 32 distinct sequences; 16 training ones cover about 12 of them
    data = K.make_task(K.TaskSpec("recall", 4, filler_vocab_size=2, n_train=16, n_test=12, seed=0))
    train = {row.tobytes() for row in data.train.tokens}
    assert not train & {row.tobytes() for row in data.test.tokens}
    assert len({row.tobytes() for row in data.test.tokens}) == 12
    assert sorted(Counter(data.test.labels.tolist()).values()) == [6, 6]


def test_too_small_a_task_for_a_held_out_set_is_refused():
    with pytest.raises(UserError, match="held-out"):
        K.make_task(K.TaskSpec("recall", 1, filler_vocab_size=1, n_train=50, n_test=5))


@pytest.mark.parametrize("fixture", ["recall", "order", "agreement"])
def test_classes_balanced(fixture, request):
    data = request.getfixturevalue(fixture)
    for s in (data.train, data.test):
        counts = np.bincount(s.labels, minlength=data.spec.n_classes)
        assert counts.max() - counts.min() <= 1


def naive_bayes(train_feats, train_labels, test_feats, n_classes):
    """Multinomial naive Bayes with add-one smoothing on bags of tokens -> predicted labels."""
    V = max(max(f) for f in train_feats + test_feats) + 1
    counts = np.ones((n_classes, V))
    for f, y in zip(train_feats, train_labels):
        np.add.at(counts[y], f, 1)
    logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    prior = np.log(np.bincount(train_labels, minlength=n_classes) / len(train_labels))
    return np.array([(prior + logp[:, f].sum(axis=1)).argmax() for f in test_feats])


def without(s, i, drop):
    return [int(t) for j, t in enumerate(s.tokens[i][: s.answer_pos[i]]) if j not in drop]


def test_recall_without_the_key_is_chance(recall):
    tr, te, k = recall.train, recall.test, recall.spec.keys
    n = len(te)
    # the marginal predictor: the most frequent training answer
    majority = np.bincount(tr.labels).argmax()
    assert abs(np.mean(te.labels == majority) - 1 / k) <= tol(1 / k, n)
    # everything before the answer except the key, as a bag of words
    feats = lambda s: [without(s, i, {int(s.key_pos[i])}) for i in range(len(s))]
    pred = naive_bayes(feats(tr), tr.labels, feats(te), k)
    assert abs(np.mean(pred == te.labels) - 1 / k) <= tol(1 / k, n)
    # the same predictor with the key is perfect: the key decides the answer
    pred = naive_bayes([without(tr, i, set()) for i in range(len(tr))], tr.labels,
                       [without(te, i, set()) for i in range(n)], k)
    assert np.mean(pred == te.labels) == 1.0


def test_order_without_the_markers_is_chance(order):
    tr, te = order.train, order.test
    n = len(te)

    def marks(s, i):
        return {j for j, t in enumerate(s.tokens[i]) if order.vocab[t] in K.ORDER_MARKERS}

    # neither marker: 1/4; the second but not the first (the key): 1/2
    feats = lambda s: [without(s, i, marks(s, i)) for i in range(len(s))]
    pred = naive_bayes(feats(tr), tr.labels, feats(te), 4)
    assert abs(np.mean(pred == te.labels) - 0.25) <= tol(0.25, n)
    second_only = lambda s: [without(s, i, {int(s.key_pos[i])}) for i in range(len(s))]
    pred = naive_bayes(second_only(tr), tr.labels, second_only(te), 4)
    assert abs(np.mean(pred == te.labels) - 0.5) <= tol(0.5, n)
    assert np.all(pred % 2 == te.labels % 2)   # what it does see, it gets right


def agreement_cues(data, s):
    """Label predictions of three cue readers that never see the subject or the verb."""
    nearest, majority, feats = [], [], []
    for i in range(len(s)):
        w = [data.vocab[t] for t in s.tokens[i]]
        filler = w[s.key_pos[i] + 1: s.answer_pos[i]]
        nums = [NOUN_NUMBER[x] for x in filler if x in NOUN_NUMBER]
        nearest.append(("sg", "pl").index(nums[-1]) if nums else 0)
        majority.append(int(2 * nums.count("pl") > len(nums)))
        feats.append([int(t) for t in s.tokens[i][s.key_pos[i] + 1: s.answer_pos[i]]])
    return np.array(nearest), np.array(majority), feats


def test_agreement_filler_says_nothing_about_the_subject(agreement):
    tr, te = agreement.train, agreement.test
    n = len(te)
    nearest, majority, feats = agreement_cues(agreement, te)
    assert abs(np.mean(nearest == te.labels) - 0.5) <= tol(0.5, n)
    assert abs(np.mean(majority == te.labels) - 0.5) <= tol(0.5, n)
    pred = naive_bayes(agreement_cues(agreement, tr)[2], tr.labels, feats, 2)
    assert abs(np.mean(pred == te.labels) - 0.5) <= tol(0.5, n)


def test_sintetico_filler_does_tell_the_subject_number():
    """Why 'independent' is the default: sintetico's own mix leaves the filler's nouns a cue."""
    data = K.make_task(K.TaskSpec("agreement", 15, n_train=200, n_test=2000, seed=3, agreement_filler="sintetico"))
    _, majority, _ = agreement_cues(data, data.test)
    assert abs(np.mean(majority == data.test.labels) - 0.5) > 0.1


# ---------------------------------------------------------------- batches and accuracy


@pytest.mark.parametrize("mode", K.LOSS_MODES)
def test_batch_time_major_and_weights(order, mode):
    s = order.train
    idx = np.array([5, 0, 17, 3])
    b = K.make_batch(s, idx, mode)
    T, B = order.spec.length - 1, 4
    for a in (b.inputs, b.targets, b.weights):
        assert a.shape == (T, B)
    assert b.weights.dtype == np.float32
    for col, i in enumerate(idx):
        np.testing.assert_array_equal(b.inputs[:, col], s.tokens[i, :-1])
        np.testing.assert_array_equal(b.targets[:, col], s.tokens[i, 1:])
        assert b.inputs[b.key_t[col], col] == s.tokens[i, s.key_pos[i]]
        assert order.vocab[b.inputs[b.answer_t[col], col]] == K.ORDER_QUERY
        assert b.targets[b.answer_t[col], col] == b.answers[col] == s.answers[i]
    assert np.all(b.answer_t - b.key_t == order.spec.lag)
    if mode == "all":
        assert np.all(b.weights == 1)
    else:
        assert b.weights.sum() == B
        assert np.all(b.weights[b.answer_t, np.arange(B)] == 1)


def test_batch_refuses_unknown_mode(order):
    with pytest.raises(UserError, match="loss mode"):
        K.make_batch(order.train, [0], "last")


def test_sample_batch_deterministic(order):
    a = K.sample_batch(order.train, 8, np.random.default_rng(0))
    b = K.sample_batch(order.train, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(a.inputs, b.inputs)
    assert a.inputs.shape == (order.spec.length - 1, 8)


def test_accuracy_from_scores_and_predictions(recall):
    b = K.make_batch(recall.test, np.arange(40))
    T, B, V = b.inputs.shape + (recall.vocab_size,)
    rng = np.random.default_rng(0)
    logp = rng.normal(size=(T, B, V))
    cols = np.arange(B)
    logp[b.answer_t, cols, b.answers] = 100.0          # right everywhere
    assert K.answer_accuracy(logp, b) == 1.0
    assert K.answer_accuracy(logp[b.answer_t, cols], b) == 1.0
    assert K.answer_accuracy(logp.argmax(axis=2), b) == 1.0
    assert K.answer_accuracy(b.answers, b) == 1.0
    # wrong on the first 10 columns: another candidate wins
    wrong = b.candidates[cols, (b.labels + 1) % recall.spec.keys]
    logp[b.answer_t[:10], cols[:10], wrong[:10]] = 200.0
    assert K.answer_accuracy(logp, b) == 0.75
    # a filler word on top counts against the plain accuracy, not the restricted one
    logp[b.answer_t[10:20], cols[10:20], recall.stoi[K.filler_pool()[0]]] = 300.0
    assert K.answer_accuracy(logp, b) == 0.75
    assert K.answer_accuracy(logp, b, restrict=False) == 0.5
    with pytest.raises(ValueError):
        K.answer_accuracy(np.zeros((3, V)), b)


def test_a_scorer_that_cannot_see_the_key_scores_chance(recall):
    """Scores that depend only on the words after the key: chance on the answer."""
    b = K.make_batch(recall.test)
    V, B = recall.vocab_size, len(recall.test)
    # per-word random scores summed over the window after the key: blind to the key, same law for every class
    table = np.random.default_rng(1).normal(size=(V, V))
    after = [b.inputs[b.key_t[c] + 1: b.answer_t[c] + 1, c] for c in range(B)]
    scores = np.stack([table[a].sum(axis=0) for a in after])   # (B, V)
    k = recall.spec.keys
    assert abs(K.answer_accuracy(scores, b) - 1 / k) <= tol(1 / k, B)


# ---------------------------------------------------------------- a model


def test_model_answer_logprobs_match_stepping():
    from rnnlm.model import ModelConfig, RNNModel

    data = K.make_task(K.TaskSpec("recall", 4, n_train=20, n_test=10))
    model = RNNModel(ModelConfig(vocab_size=data.vocab_size, cell="rnn", emsize=8, hidden=8), seed=0)
    logp = K.model_answer_logprobs(model, data.test, batch_size=4)
    assert logp.shape == (10, data.vocab_size)
    s = data.test
    state = None
    for t in range(int(s.answer_pos[0])):
        step, state = model.step_logprobs(s.tokens[:, t], state)
    np.testing.assert_allclose(logp, step, rtol=1e-4, atol=1e-5)
    acc = K.model_accuracy(model, data)
    assert acc == K.answer_accuracy(logp, K.make_batch(data.test))


# ---------------------------------------------------------------- folders


def test_save_load_roundtrip_and_reuse(tmp_path):
    spec = K.TaskSpec("order", 6, n_train=50, n_test=20, seed=9)
    folder = tmp_path / K.default_name(spec)
    data = K.ensure_task(folder, spec)
    assert folder.name == "order-d6-k2-s9"
    back = K.load_task(folder)
    assert back.spec == spec and back.vocab == data.vocab
    for x, y in zip(data.train + data.test, back.train + back.test):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype
    for f in folder.glob("*.npy"):
        np.load(f, allow_pickle=False)
    stamp = (folder / "train.tokens.npy").stat().st_mtime_ns
    K.ensure_task(folder, spec)   # same spec: reused
    assert (folder / "train.tokens.npy").stat().st_mtime_ns == stamp
    other = K.ensure_task(folder, K.TaskSpec("order", 6, n_train=50, n_test=20, seed=10))
    assert K.load_task(folder).spec.seed == 10
    assert not np.array_equal(other.train.tokens, data.train.tokens)
    (folder / "test.labels.npy").unlink()
    with pytest.raises(UserError, match="incomplete"):
        K.load_task(folder)
    with pytest.raises(UserError, match="not a task folder"):
        K.load_task(tmp_path / "nothing")


def test_render_marks_the_dependency(recall, agreement):
    text = recall.render("test", 0)
    w = text.split()
    assert w[0].startswith("[") and w[-1] == w[0] and w[-2] == K.RECALL_QUERY
    assert len(w) == recall.spec.length
    assert "[" not in recall.render("test", 0, mark=False)
    w = agreement.render("train", 0).split()
    assert w[0].startswith("[") and w[1].startswith("[") and w[-1].startswith("[")
