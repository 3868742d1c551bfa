"""The generated Portuguese agreement corpus ("sintetico").

Grammatical Portuguese sentences in which one word must agree with a subject a
controlled distance back, across attractors of the other number and gender:

    o homem que usava uma peruca azul entrou no bar .
    as meninas que o professor da escola viu ontem estavam cansadas .

Finite verbs agree in number with the subject (entrou/entraram); predicative
adjectives and participles after a copula agree in gender and number
(cansado/cansada/cansados/cansadas). Each `Sentence` carries its metadata:
where the subject head and each agreeing word are, the distance between them,
how many intervening nouns disagree with the subject (attractors), and the
correct and the wrong form, so that the probes and the tests never re-parse
text.

The words come from sinteticolex.py (the word lists, `Lexicon`,
`feature_table`, `all_words`, `template_shortfall`); its names are re-exported
here, so `sintetico.ANIMATE` and `sintetico.Lexicon` work as before. This
module is the generator (`generate_sentence(s)`, `make_agreement_pairs`) and
the corpus files (`ensure_corpus`, `is_current`).

The one thing to know before editing: the word lists are the grammar (see
sinteticolex.py). The generator only ever picks forms through `_noun_form`,
`_verb_form` and `_adj_form`, and the filler is built to an exact token count,
so distances are exact by construction.

Distance = target position - subject head position (1 = adjacent). An
attractor needs at least two tokens of filler ("do menino"), so sentences with
distance 1 or 2 never have one; `attractor_rate` applies to the others.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .fileio import atomic_write_text
# the lexicon (sinteticolex.py), re-exported: `sintetico.ANIMATE`, `sintetico.Lexicon` work as before
from .sinteticolex import (ADVERB_PHRASES, ADVERBS_1, ANIMATE, CONTRACT, COPULAS, DEFINITE, FEM, GENDER,
                           INANIMATE, INDEFINITE, LEADS, MASC, MODIFIERS, NUMBER, OBJECT_REL_VERBS, PARTICIPLES,
                           PASSIVE, PEOPLE_MODIFIERS, PL, PREDICATIVES, PREPOSITIONS, SG, SUBJECT_REL_VERBS, VERBS,
                           Lexicon, _adj_form, _noun_form, _other_gender, _other_number, _verb_form, all_words,
                           feature_table, template_shortfall)

__all__ = [
    # the generator and the corpus files (this module)
    "DEFAULTS", "FORMAT_VERSION", "SETTINGS_FILE", "SPLITS", "AgreementPair", "Sentence", "Target",
    "ensure_corpus", "generate_sentence", "generate_sentences", "is_current", "make_agreement_pairs",
    # the lexicon (sinteticolex.py)
    "ADVERB_PHRASES", "ADVERBS_1", "ANIMATE", "CONTRACT", "COPULAS", "DEFINITE", "FEM", "GENDER", "INANIMATE",
    "INDEFINITE", "LEADS", "MASC", "MODIFIERS", "NUMBER", "OBJECT_REL_VERBS", "PARTICIPLES", "PASSIVE",
    "PEOPLE_MODIFIERS", "PL", "PREDICATIVES", "PREPOSITIONS", "SG", "SUBJECT_REL_VERBS", "VERBS", "Lexicon",
    "all_words", "feature_table", "template_shortfall",
]

FORMAT_VERSION = 1


# ---------------------------------------------------------------- sentences


@dataclass(frozen=True)
class Target:
    """One agreeing word of a sentence."""

    position: int       # token index of the agreeing word
    feature: str        # 'number' (finite verb) or 'gender' (predicative, wrong form flips gender)
    correct: str        # the form that agrees with the subject
    wrong: str          # the same word with the feature flipped
    distance: int       # position - subject head position (1 = adjacent)
    attractors: int     # intervening nouns whose `feature` differs from the subject's
    cue_distance: int   # distance back to the nearest token that shows the subject's value


@dataclass(frozen=True)
class Sentence:
    """A generated sentence and where its agreement lives."""

    tokens: tuple           # lower-case words, punctuation as its own token, ends with "."
    subject_position: int   # token index of the subject head noun
    number: str             # subject number: 'sg' | 'pl'
    gender: str             # subject gender: 'm' | 'f'
    kind: str               # 'verb' | 'copula' (copula sentences have a second, gender target)
    targets: tuple          # of Target; targets[0] is the finite verb (number)

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    @property
    def target_position(self) -> int:
        return self.targets[0].position

    @property
    def distance(self) -> int:
        return self.targets[0].distance

    @property
    def attractor(self) -> bool:
        return self.targets[0].attractors > 0

    @property
    def correct(self) -> str:
        return self.targets[0].correct

    @property
    def wrong(self) -> str:
        return self.targets[0].wrong

    def to_json(self) -> dict:
        d = asdict(self)
        d["tokens"] = self.text
        return d


class _Rng:
    """The few draws the generator makes, on Python's `random` (5x faster per scalar draw than numpy's).

    Seeded from the caller's numpy Generator, so results depend only on it.
    """

    def __init__(self, rng):
        self._r = random.Random(int(np.random.default_rng(rng).integers(2**63)))

    def integers(self, lo, hi=None):
        """An int in [0, lo), or in [lo, hi) when hi is given (numpy's convention)."""
        return self._r.randrange(lo) if hi is None else self._r.randrange(lo, hi)

    def random(self):
        return self._r.random()

    def permutation(self, n):
        order = list(range(n))
        self._r.shuffle(order)
        return order


class _Filler:
    """Builds the material between subject and target to an exact length.

    `mode` decides the features of every noun placed: 'same' as the subject
    (no attractor), or, with an attractor wanted, the first noun placed takes
    the other number and the other gender and the rest are free.
    """

    def __init__(self, lex, rng, number, gender, attractor, subject_relative_rate):
        self.lex, self.rng = lex, rng
        self.number, self.gender = number, gender
        self.need_attractor = attractor
        self.free = attractor
        self.subject_relative_rate = subject_relative_rate
        self.used_adverbs: set = set()

    def _features(self):
        if self.need_attractor:
            self.need_attractor = False
            return _other_number(self.number), _other_gender(self.gender)
        if self.free:
            return (SG, PL)[self.rng.integers(2)], (MASC, FEM)[self.rng.integers(2)]
        return self.number, self.gender

    def _choice(self, items):
        return items[self.rng.integers(len(items))]

    def _noun(self, animate):
        """(word, number, gender) of a noun with the next features."""
        n, g = self._features()
        pool = [x for x in (self.lex.animate if animate else self.lex.inanimate) if x[2] == g]
        if not pool:  # a restricted lexicon may lack a gender in one list
            pool = [x for x in self.lex.animate + self.lex.inanimate if x[2] == g]
        if not pool:
            raise UserError(f"no noun of gender {g} is in the vocabulary")
        return _noun_form(self._choice(pool), n), n, g

    def _np(self, budget, animate, prep_words=(), contract=None, indefinite_ok=True):
        """[prep words] article noun [modifier]: (tokens, noun index, n, g) or None if > budget."""
        base = len(prep_words) + 2
        if base > budget:
            return None
        word, n, g = self._noun(animate)
        if contract is not None:
            art = [CONTRACT[contract][(n, g)]]
        elif indefinite_ok and self.lex.indefinite and self.rng.random() < 0.3:
            art = [INDEFINITE[(n, g)]]
        else:
            art = [DEFINITE[(n, g)]]
        toks = list(prep_words) + art + [word]
        mods = [m for m in self.lex.modifiers if m[0] in PEOPLE_MODIFIERS] if animate else self.lex.modifiers
        if budget > base and mods and self.rng.random() < 0.3:
            toks.append(_adj_form(self._choice(mods), n, g))
        return toks, len(prep_words) + len(art), n, g

    def pp(self, budget):
        """preposition (article) noun [modifier]; "de" contracts with the article ("do menino")."""
        fits = [p for p in self.lex.prepositions if len(p[0]) + 2 <= budget]
        if not fits:
            return None
        words, contract, indef = self._choice(fits)
        toks, i, n, g = self._np(budget, self.rng.random() < 0.5, words, contract, indef)
        return toks, [(i, n, g)], []

    def adverbial(self, budget):
        phrases = [p for p in self.lex.adverb_phrases if len(p[0].split()) <= budget]
        if not self.free:  # no attractor: nouns must match the subject
            phrases = [p for p in phrases if p[1] is None or p[1][1:] == (self.number, self.gender)]
        if self.need_attractor:
            phrases = [p for p in phrases if p[1] is not None
                       and p[1][1] != self.number and p[1][2] != self.gender]
        if not phrases or (not self.need_attractor and self.rng.random() < 0.4):
            return self.adverb1()
        phrase, noun = self._choice(phrases)
        nouns = []
        if noun:
            nouns = [noun]
            if self.need_attractor:
                self.need_attractor = False
        return phrase.split(), nouns, []

    def adverb1(self):
        fresh = [a for a in self.lex.adverbs_1 if a not in self.used_adverbs] or self.lex.adverbs_1
        a = self._choice(fresh)
        self.used_adverbs.add(a)
        return [a], [], []

    def object_relative(self, budget):
        """que [article noun (PP)] verb [adverb]: the inner verb agrees with the inner subject."""
        if budget < 4 or not self.lex.object_rel_verbs:
            return None
        inner, i, n, g = self._np(budget - 2, True)
        toks, nouns = ["que"] + inner, [(1 + i, n, g)]
        if len(toks) + 1 + 2 <= budget and self.rng.random() < 0.3:
            sub = self.pp(budget - len(toks) - 1)
            if sub:
                nouns += [(len(toks) + j, nn, gg) for j, nn, gg in sub[1]]
                toks += sub[0]
        toks.append(_verb_form(self._choice(self.lex.object_rel_verbs), n))
        if len(toks) < budget and self.rng.random() < 0.3:
            toks += self.adverb1()[0]
        return toks, nouns, []

    def subject_relative(self, budget):
        """que verb article noun [modifier]: the verb agrees with the main subject (a cue)."""
        if budget < 4 or not self.lex.subject_rel_verbs:
            return None
        verb = _verb_form(self._choice(self.lex.subject_rel_verbs), self.number)
        obj, i, n, g = self._np(budget - 2, False)
        return ["que", verb] + obj, [(2 + i, n, g)], [1]

    def build(self, length):
        """(tokens, nouns [(index, n, g)], cue indices) filling exactly `length` tokens."""
        modules = []
        remaining = length
        while remaining > 0:
            if remaining == 1:
                mod = self.adverb1()
            else:
                kinds = ["pp", "relative", "adverbial"]
                # While the attractor is owed, only modules sure to hold a noun.
                weights = [3.0, 2.0 if remaining >= 4 else 0.0, 0.0 if self.need_attractor else 1.0]
                u = self.rng.random() * sum(weights)
                kind = kinds[0] if u < weights[0] else kinds[1] if u < weights[0] + weights[1] else kinds[2]
                if kind == "pp":
                    mod = self.pp(remaining)
                elif kind == "relative":
                    if self.rng.random() < self.subject_relative_rate:
                        mod = self.subject_relative(remaining)
                    else:
                        mod = self.object_relative(remaining)
                else:
                    mod = self.adverbial(remaining)
                if mod is None:
                    continue
            modules.append((kind if remaining > 1 else "adverbial", mod))
            remaining -= len(mod[0])
        # Shuffled so that the attractor is not always next to the subject, in
        # an order that keeps the sentence grammatical: a PP must follow a noun,
        # so PPs and subject relatives (which end in a noun) come first, then
        # object relatives (which end in a verb), then the adverbials.
        def rank(kind, mod):
            if kind == "adverbial":
                return 2
            return 1 if kind == "relative" and mod[2] == [] else 0

        order = self.rng.permutation(len(modules))
        order = sorted(order, key=lambda k: rank(*modules[k]))
        toks, nouns, cues = [], [], []
        for k in order:
            t, ns, cs = modules[k][1]
            nouns += [(len(toks) + i, n, g) for i, n, g in ns]
            cues += [len(toks) + i for i in cs]
            toks += t
        return toks, nouns, cues


def _target_kind(lex, rng, kinds):
    possible = [k for k in kinds if lex.can_generate(k)]
    if not possible:
        raise UserError(f"the vocabulary cannot make sentences of kind {kinds}")
    if len(possible) == 1:
        return possible[0]
    return "verb" if rng.random() < 0.6 else "copula"


def generate_sentence(rng, distance, attractor, lexicon=None, subject_relative_rate=0.25,
                      kinds=("verb", "copula"), lead_rate=0.15) -> Sentence:
    """One sentence whose first target lies exactly `distance` tokens after the subject head."""
    lex = lexicon or Lexicon()
    if distance < 1:
        raise ValueError("distance must be >= 1")
    if not isinstance(rng, _Rng):
        rng = _Rng(rng)
    number = (SG, PL)[rng.integers(2)]
    gender = (MASC, FEM)[rng.integers(2)]
    attractor = bool(attractor) and distance >= 3
    pool = [x for x in lex.animate if x[2] == gender]
    if not pool:
        gender = _other_gender(gender)
        pool = [x for x in lex.animate if x[2] == gender]
    noun = pool[rng.integers(len(pool))]
    kind = _target_kind(lex, rng, kinds)

    toks = []
    if lex.leads and rng.random() < lead_rate:
        toks += lex.leads[rng.integers(len(lex.leads))].split()
    lead = set(toks)
    art = INDEFINITE if lex.indefinite and rng.random() < 0.2 else DEFINITE
    toks += [art[(number, gender)], _noun_form(noun, number)]
    subj = len(toks) - 1

    filler_maker = _Filler(lex, rng, number, gender, attractor, subject_relative_rate)
    filler_maker.used_adverbs |= lead
    filler, nouns, cues = filler_maker.build(distance - 1)
    toks += filler
    nouns = [(subj + 1 + i, n, g) for i, n, g in nouns]
    cues = [subj + 1 + i for i in cues]
    tpos = len(toks)

    def count(feature, value):
        return sum(1 for _, n, g in nouns if (n if feature == NUMBER else g) != value)

    number_cue = tpos - max([subj] + cues)
    targets = []
    if kind == "verb":
        sg, pl, tails = lex.verbs[rng.integers(len(lex.verbs))]
        verb = (sg, pl)
        toks.append(_verb_form(verb, number))
        tail = tails[rng.integers(len(tails))]
    else:
        use_passive = (lex.passive is not None and lex.participles
                       and (not lex.copulas or not lex.predicatives or rng.random() < 0.3))
        if use_passive:
            verb = lex.passive
            forms, tails = lex.participles[rng.integers(len(lex.participles))]
            tail = tails[rng.integers(len(tails))]
        else:
            verb = lex.copulas[rng.integers(len(lex.copulas))]
            forms = lex.predicatives[rng.integers(len(lex.predicatives))]
            tail = ""
        toks.append(_verb_form(verb, number))
        toks.append(_adj_form(forms, number, gender))
    targets.append(Target(tpos, NUMBER, _verb_form(verb, number), _verb_form(verb, _other_number(number)),
                          tpos - subj, count(NUMBER, number), number_cue))
    if kind == "copula":
        targets.append(Target(tpos + 1, GENDER, _adj_form(forms, number, gender),
                              _adj_form(forms, number, _other_gender(gender)),
                              tpos + 1 - subj, count(GENDER, gender), tpos + 1 - subj))
    toks += tail.split() + ["."]
    return Sentence(tuple(toks), subj, number, gender, kind, tuple(targets))


def generate_sentences(n, rng, min_distance=1, max_distance=40, attractor_rate=0.5,
                       lexicon=None, subject_relative_rate=0.25, kinds=("verb", "copula")) -> list[Sentence]:
    """`n` sentences, distances uniform on [min_distance, max_distance].

    attractor_rate: probability of at least one attractor (a noun of the other
    number and gender between subject and target) when the distance allows
    one (>= 3). subject_relative_rate: probability that a relative clause is a
    subject relative ("que usava uma peruca"), whose verb also agrees with the
    subject and so shortens `cue_distance`; probes set it to 0.
    rng: a numpy Generator (or an int seed).
    """
    if not 1 <= min_distance <= max_distance:
        raise UserError(f"need 1 <= min_distance <= max_distance, got {min_distance}, {max_distance}")
    if not 0.0 <= attractor_rate <= 1.0:
        raise UserError(f"attractor_rate must be in [0, 1], got {attractor_rate}")
    rng = _Rng(rng)
    lex = lexicon or Lexicon()
    out = []
    for _ in range(n):
        d = int(rng.integers(min_distance, max_distance + 1))
        out.append(generate_sentence(rng, d, rng.random() < attractor_rate, lex,
                                     subject_relative_rate, kinds))
    return out


# ---------------------------------------------------------------- probe pairs


@dataclass(frozen=True)
class AgreementPair:
    """A sentence prefix and two continuations that differ only in agreement."""

    prefix: tuple       # tokens before the agreeing word (the sentence's own, no <eos>)
    correct: str
    wrong: str
    distance: int
    attractor: bool
    feature: str        # 'number' or 'gender'
    sentence: str       # the whole correct sentence, for reports


def make_agreement_pairs(distances, n_per_distance, rng, feature=NUMBER, known=None,
                         attractor_split=True, max_tries=20) -> tuple[list[AgreementPair], dict]:
    """Pairs for an agreement probe, `n_per_distance` at each distance.

    feature: 'number' scores the finite verb (correct vs wrong number);
    'gender' scores the predicative after a copula (correct vs wrong gender,
    same number). Half the pairs at each distance >= 3 have an attractor and
    half have none when `attractor_split`. Subject relatives are left out so
    that the subject head is the nearest cue (cue_distance == distance).

    known: a container of words (a vocabulary); pairs using other words are
    dropped. Generation draws from the lexicon restricted to `known`, and
    `coverage` reports the fraction of pairs from the unrestricted lexicon
    whose words are all known (measured on a sample of the same size).
    Returns (pairs, info) with info = {'coverage', 'generated', 'kept', 'lexicon'}.
    """
    rng = _Rng(rng)
    full = Lexicon()
    lex = full.restrict(known) if known is not None else full
    kinds = ("verb",) if feature == NUMBER else ("copula",)
    if feature not in (NUMBER, GENDER):
        raise UserError(f"feature must be 'number' or 'gender', got {feature!r}")
    if not lex.can_generate(kinds[0]):
        raise UserError(f"the vocabulary has too few template words for {feature} agreement: "
                        f"{template_shortfall(feature, known)}")
    shift = 0 if feature == NUMBER else 1   # the gender target sits one after the copula
    index = 0 if feature == NUMBER else 1
    pairs, generated, covered, sampled = [], 0, 0, 0
    for d in distances:
        dd = d - shift
        if dd < 1:
            continue
        if not attractor_split:
            plan = [(None, n_per_distance)]
        elif dd >= 3:
            plan = [(True, n_per_distance - n_per_distance // 2), (False, n_per_distance // 2)]
        else:  # no room for an attractor
            plan = [(False, n_per_distance)]
        for attractor, want in plan:
            got, tries = 0, 0
            while got < want and tries < max_tries * want:
                tries += 1
                attr = (rng.random() < 0.5) if attractor is None else attractor
                if known is not None:
                    # Coverage: the same kind of draw from the full lexicon.
                    full_s = generate_sentence(rng, dd, attr, full, 0.0, kinds)
                    ft = full_s.targets[index]
                    sampled += 1
                    covered += all(w in known for w in full_s.tokens[:ft.position] + (ft.correct, ft.wrong))
                s = generate_sentence(rng, dd, attr, lex, 0.0, kinds)
                t = s.targets[index]
                generated += 1
                words = s.tokens[:t.position] + (t.correct, t.wrong)
                if known is not None and not all(w in known for w in words):
                    continue
                pairs.append(AgreementPair(tuple(s.tokens[:t.position]), t.correct, t.wrong,
                                           t.distance, t.attractors > 0, feature, s.text))
                got += 1
    info = {
        "coverage": (covered / sampled) if sampled else 1.0,
        "generated": generated,
        "kept": len(pairs),
        "lexicon": {"kept": lex.sizes(), "full": full.sizes()},
    }
    return pairs, info


# ---------------------------------------------------------------- corpus files

DEFAULTS = {
    "sentences": 60000,          # total, split 90/5/5 into train/valid/test
    "min_distance": 1,           # tokens from subject head to the verb (1 = adjacent)
    "max_distance": 40,
    "attractor_rate": 0.5,       # of sentences long enough to hold an attractor (distance >= 3)
    "subject_relative_rate": 0.25,  # share of relative clauses whose verb also agrees with the subject
    "seed": 0,
}
SPLITS = (("train", 0.90), ("valid", 0.05), ("test", 0.05))
SETTINGS_FILE = "sintetico.json"


def _settings(settings: dict) -> dict:
    """The corpus' full settings (DEFAULTS with `settings` applied, and the format); UserError for unknown ones."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise UserError(f"unknown sintetico settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **settings, "format": FORMAT_VERSION}


def is_current(folder, **settings) -> bool:
    """Whether `folder` holds the corpus complete, written with these settings (nothing to regenerate)."""
    conf = _settings(settings)
    folder = Path(folder)
    meta = folder / SETTINGS_FILE
    if not (meta.exists() and all((folder / f"{name}.txt").exists() for name, _ in SPLITS)):
        return False
    try:
        return json.loads(meta.read_text(encoding="utf-8")) == conf
    except (json.JSONDecodeError, OSError, UnicodeDecodeError):
        return False


def ensure_corpus(folder, **settings) -> Path:
    """Write the corpus into `folder` unless it is already there with these settings.

    Files: train.txt, valid.txt, test.txt (one sentence per line with a blank
    line after each, lower case, punctuation separated by spaces; the data
    pipeline reads them as three documents and assigns each to a split),
    valid.meta.jsonl and test.meta.jsonl (one `Sentence.to_json()` per
    sentence, in file order) and sintetico.json (the
    settings; when they differ from the requested ones, everything is
    rewritten). Settings: see `DEFAULTS`. Returns the folder.
    """
    conf = _settings(settings)
    folder = Path(folder)
    if is_current(folder, **settings):
        return folder
    meta = folder / SETTINGS_FILE
    folder.mkdir(parents=True, exist_ok=True)
    meta.unlink(missing_ok=True)   # an interrupted rewrite must not pass for a complete corpus
    sents = generate_sentences(conf["sentences"], np.random.default_rng(conf["seed"]),
                               conf["min_distance"], conf["max_distance"], conf["attractor_rate"],
                               subject_relative_rate=conf["subject_relative_rate"])
    start = 0
    for i, (name, frac) in enumerate(SPLITS):
        stop = len(sents) if i == len(SPLITS) - 1 else start + int(round(frac * len(sents)))
        part = sents[start:stop]
        # A blank line after each sentence: the tokenizer ends a paragraph
        # there and emits <eos>, as it does after sentences in real text.
        atomic_write_text(folder / f"{name}.txt", "".join(s.text + "\n\n" for s in part))
        if name != "train":  # the held-out metadata only: train's would be ~25 MB, and the seed remakes it
            atomic_write_text(folder / f"{name}.meta.jsonl",
                          "".join(json.dumps(s.to_json(), ensure_ascii=False) + "\n" for s in part))
        start = stop
    # The settings file goes last: its presence marks a complete corpus.
    atomic_write_text(meta, json.dumps(conf, indent=2, sort_keys=True) + "\n")
    return folder
