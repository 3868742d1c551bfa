"""The generated agreement corpus: every sentence agrees, distances and attractors are as asked."""
import json

import numpy as np
import pytest
from scipy import stats

from rnnlm import sintetico as S
from rnnlm.errors import UserError

# ---------------------------------------------------------------- an independent checker
# Built straight from the raw word lists, not through the generator's helpers.

NOUNS = {}
for sg, pl, g in S.ANIMATE + S.INANIMATE:
    NOUNS[sg] = ("sg", g)
    NOUNS[pl] = ("pl", g)
for phrase, noun in S.ADVERB_PHRASES:
    if noun:
        NOUNS[phrase.split()[noun[0]]] = (noun[1], noun[2])

VERB_PAIRS = [(v[0], v[1]) for v in S.VERBS] + S.COPULAS + [S.PASSIVE]
VERB_NUMBER = {}
OTHER_VERB = {}
for sg, pl in VERB_PAIRS:
    VERB_NUMBER[sg], VERB_NUMBER[pl] = "sg", "pl"
    OTHER_VERB[sg], OTHER_VERB[pl] = pl, sg

ADJ = {}   # form -> (number, gender, the 4 forms)
for forms in S.PREDICATIVES + [f for f, _ in S.PARTICIPLES]:
    ms, fs, mp, fp = forms
    for w, n, g in ((ms, "sg", "m"), (fs, "sg", "f"), (mp, "pl", "m"), (fp, "pl", "f")):
        ADJ[w] = (n, g, forms)

ARTICLES = {("sg", "m"): {"o", "um"}, ("sg", "f"): {"a", "uma"},
            ("pl", "m"): {"os", "uns"}, ("pl", "f"): {"as", "umas"}}


def check_sentence(s: S.Sentence):
    """Raise AssertionError unless the sentence's agreement and metadata hold."""
    toks = s.tokens
    assert toks[-1] == "." and "." not in toks[:-1]
    subj = toks[s.subject_position]
    assert NOUNS[subj] == (s.number, s.gender), (s.text, subj)
    assert toks[s.subject_position - 1] in ARTICLES[(s.number, s.gender)], s.text
    # The subject is the first noun of the sentence (oracles rely on it).
    assert not any(t in NOUNS for t in toks[:s.subject_position]), s.text
    verb = s.targets[0]
    assert verb.feature == "number"
    assert toks[verb.position] == verb.correct
    assert VERB_NUMBER[verb.correct] == s.number, s.text
    assert verb.wrong == OTHER_VERB[verb.correct]
    assert verb.distance == verb.position - s.subject_position >= 1
    between = toks[s.subject_position + 1:verb.position]
    assert verb.attractors == sum(1 for t in between if t in NOUNS and NOUNS[t][0] != s.number), s.text
    if s.kind == "copula":
        adj = s.targets[1]
        assert adj.feature == "gender" and adj.position == verb.position + 1
        n, g, forms = ADJ[toks[adj.position]]
        assert (n, g) == (s.number, s.gender), s.text
        assert adj.correct == toks[adj.position]
        n2, g2, forms2 = ADJ[adj.wrong]
        assert forms2 == forms and n2 == n and g2 != g
        assert adj.attractors == sum(1 for t in between if t in NOUNS and NOUNS[t][1] != s.gender)
    else:
        assert len(s.targets) == 1


def test_word_lists_are_disjoint_across_roles():
    # The checker above (and any oracle) reads features by spelling.
    assert not set(NOUNS) & set(VERB_NUMBER)
    assert not set(NOUNS) & set(ADJ)
    assert not set(VERB_NUMBER) & set(ADJ)
    assert all(len(roles) == 1 for roles in S.feature_table().values())
    assert not set(S.ADVERBS_1) & set(NOUNS) and not any(w in NOUNS for l in S.LEADS for w in l.split())


def test_every_sentence_agrees():
    sents = S.generate_sentences(3000, np.random.default_rng(0), 1, 40, 0.5)
    kinds = {s.kind for s in sents}
    assert kinds == {"verb", "copula"}
    for s in sents:
        check_sentence(s)
    # Both numbers and genders, and the hard case, are well represented.
    assert 0.4 < np.mean([s.number == "pl" for s in sents]) < 0.6
    assert 0.4 < np.mean([s.gender == "f" for s in sents]) < 0.6
    assert any(s.attractor and s.distance >= 20 for s in sents)


def test_the_checker_catches_a_wrong_form():
    s = S.generate_sentence(np.random.default_rng(3), 8, True, kinds=("verb",))
    bad = list(s.tokens)
    bad[s.target_position] = s.wrong
    broken = S.Sentence(tuple(bad), s.subject_position, s.number, s.gender, s.kind, s.targets)
    with pytest.raises(AssertionError):
        check_sentence(broken)


def test_distances_are_within_range_and_uniform():
    sents = S.generate_sentences(6000, np.random.default_rng(1), 3, 14, 0.5)
    d = np.array([s.distance for s in sents])
    assert d.min() == 3 and d.max() == 14
    counts = np.bincount(d - 3, minlength=12)
    assert stats.chisquare(counts).pvalue > 1e-3
    assert all(abs(c - 500) < 100 for c in counts)


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_attractor_rate(rate):
    sents = S.generate_sentences(3000, np.random.default_rng(2), 1, 30, rate)
    roomy = [s for s in sents if s.distance >= 3]
    frac = np.mean([s.attractor for s in roomy])
    se = np.sqrt(max(rate * (1 - rate), 1e-12) / len(roomy))
    assert abs(frac - rate) <= 4 * se + 1e-9, (frac, rate)
    # No room, no attractor; and gender targets follow the same flag.
    assert not any(s.attractor for s in sents if s.distance < 3)
    for s in roomy:
        if s.kind == "copula":
            assert (s.targets[1].attractors > 0) == s.attractor


def test_subject_relatives_give_a_nearer_cue():
    none = S.generate_sentences(500, np.random.default_rng(4), 10, 30, 0.5, subject_relative_rate=0.0)
    assert all(s.targets[0].cue_distance == s.distance for s in none)
    some = S.generate_sentences(500, np.random.default_rng(4), 10, 30, 0.5, subject_relative_rate=1.0)
    assert any(s.targets[0].cue_distance < s.distance for s in some)
    for s in some:
        check_sentence(s)
        cue = s.tokens[s.target_position - s.targets[0].cue_distance]
        rel = {w: n for sg, pl in S.SUBJECT_REL_VERBS for w, n in ((sg, "sg"), (pl, "pl"))}
        assert cue == s.tokens[s.subject_position] or rel.get(cue) == s.number


def test_seeded_determinism():
    a = [s.text for s in S.generate_sentences(300, np.random.default_rng(7))]
    b = [s.text for s in S.generate_sentences(300, np.random.default_rng(7))]
    c = [s.text for s in S.generate_sentences(300, np.random.default_rng(8))]
    assert a == b
    assert a != c
    assert [s.text for s in S.generate_sentences(300, 7)] == a   # an int seed is the same seed


def test_tokenizer_keeps_the_text_as_is():
    from rnnlm.tokenize import tokenize
    sents = S.generate_sentences(200, np.random.default_rng(5))
    text = "".join(s.text + "\n\n" for s in sents)
    expected = [t for s in sents for t in list(s.tokens) + ["<eos>"]]
    assert tokenize(text) == expected


def test_ensure_corpus_writes_once_and_regenerates_on_new_settings(tmp_path):
    folder = tmp_path / "sintetico"
    out = S.ensure_corpus(folder, sentences=400, max_distance=12, seed=3)
    assert out == folder
    files = {p.name for p in folder.iterdir()}
    assert {"train.txt", "valid.txt", "test.txt", "sintetico.json", "valid.meta.jsonl", "test.meta.jsonl"} <= files
    lines = [l for n in ("train", "valid", "test")
             for l in (folder / f"{n}.txt").read_text(encoding="utf-8").split("\n") if l]
    assert len(lines) == 400
    assert len((folder / "train.txt").read_text(encoding="utf-8").split("\n\n")) - 1 == 360
    meta = [json.loads(l) for n in ("valid", "test")
            for l in (folder / f"{n}.meta.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [m["tokens"] for m in meta] == lines[360:]
    assert all(1 <= m["targets"][0]["distance"] <= 12 for m in meta)
    assert json.loads((folder / "sintetico.json").read_text())["max_distance"] == 12

    stamp = (folder / "train.txt").stat().st_mtime_ns
    S.ensure_corpus(folder, sentences=400, max_distance=12, seed=3)
    assert (folder / "train.txt").stat().st_mtime_ns == stamp          # reused
    S.ensure_corpus(folder, sentences=400, max_distance=12, seed=4)
    assert [l for l in (folder / "train.txt").read_text(encoding="utf-8").split("\n") if l] != lines[:360]
    with pytest.raises(UserError):
        S.ensure_corpus(folder, sentence=10)


def test_agreement_pairs_differ_only_in_the_agreeing_word():
    pairs, info = S.make_agreement_pairs([1, 2, 5, 12], 40, np.random.default_rng(0))
    assert info["coverage"] == 1.0 and len(pairs) == 160
    for d in (1, 2, 5, 12):
        at = [p for p in pairs if p.distance == d]
        assert len(at) == 40
        assert sum(p.attractor for p in at) == (20 if d >= 3 else 0)
    for p in pairs:
        toks = p.sentence.split()
        assert tuple(toks[:len(p.prefix)]) == p.prefix and toks[len(p.prefix)] == p.correct
        assert VERB_NUMBER[p.correct] != VERB_NUMBER[p.wrong]
        subj = next(t for t in p.prefix if t in NOUNS)
        assert VERB_NUMBER[p.correct] == NOUNS[subj][0]
    gender, _ = S.make_agreement_pairs([2, 9], 20, np.random.default_rng(0), feature="gender")
    assert len(gender) == 40 and all(p.feature == "gender" for p in gender)
    for p in gender:
        subj = next(t for t in p.prefix if t in NOUNS)
        assert ADJ[p.correct][:2] == NOUNS[subj] and ADJ[p.wrong][1] != NOUNS[subj][1]
        assert p.prefix[-1] in VERB_NUMBER   # the copula, which shows the number but not the gender


def test_agreement_pairs_restricted_to_a_vocabulary():
    everything = S.all_words()
    assert {w for s in S.generate_sentences(2000, 0) for w in s.tokens} <= everything
    dropped = {"homem", "homens", "entrou", "entraram", "peruca", "perucas", "perto", "ontem"}
    known = everything - dropped
    pairs, info = S.make_agreement_pairs(range(1, 16), 20, np.random.default_rng(1), known=known)
    assert len(pairs) == 15 * 20
    assert 0.0 < info["coverage"] < 1.0
    for p in pairs:
        assert all(w in known for w in p.prefix + (p.correct, p.wrong))
    with pytest.raises(UserError):
        S.make_agreement_pairs([3], 5, 0, known=known - {"que"})
