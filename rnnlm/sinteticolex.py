"""The lexicon of the generated agreement corpus (sintetico.py): its word lists and their features.

Every noun, verb, adjective, adverbial and preposition the generator can write,
each form stored with its number and gender: nouns as (singular, plural,
gender), adjectives as (ms, fs, mp, fp), verbs as (singular, plural[, tails]),
and the determiners and contractions keyed by (number, gender). `Lexicon`
bundles the lists the generator draws from, and `restrict` keeps only the
entries a vocabulary knows; `template_shortfall` says why a vocabulary cannot
fill the agreement templates; `feature_table` and `all_words` read the lists
back (a word's features by its spelling; every word the generator can write).

The one thing to know before editing: the word lists are the grammar. Every
form is stored with its number and gender, and the generator only ever picks
forms through `_noun_form`, `_verb_form` and `_adj_form`. Keep the lists
disjoint across roles (a test checks it): the independent checker in the tests
looks a token's features up by its spelling.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import UserError

SG, PL = "sg", "pl"
MASC, FEM = "m", "f"
NUMBER, GENDER = "number", "gender"

# ---------------------------------------------------------------- word lists
# Written for this project. Nouns: (singular, plural, gender).

ANIMATE = [
    ("homem", "homens", MASC), ("mulher", "mulheres", FEM),
    ("menino", "meninos", MASC), ("menina", "meninas", FEM),
    ("rapaz", "rapazes", MASC), ("moça", "moças", FEM),
    ("professor", "professores", MASC), ("professora", "professoras", FEM),
    ("médico", "médicos", MASC), ("médica", "médicas", FEM),
    ("vizinho", "vizinhos", MASC), ("vizinha", "vizinhas", FEM),
    ("padre", "padres", MASC), ("freira", "freiras", FEM),
    ("soldado", "soldados", MASC), ("costureira", "costureiras", FEM),
    ("senhor", "senhores", MASC), ("senhora", "senhoras", FEM),
    ("irmão", "irmãos", MASC), ("irmã", "irmãs", FEM),
    ("amigo", "amigos", MASC), ("amiga", "amigas", FEM),
    ("marinheiro", "marinheiros", MASC), ("cozinheira", "cozinheiras", FEM),
    ("aluno", "alunos", MASC), ("aluna", "alunas", FEM),
    ("criado", "criados", MASC), ("criada", "criadas", FEM),
    ("pescador", "pescadores", MASC), ("viúva", "viúvas", FEM),
]

INANIMATE = [
    ("livro", "livros", MASC), ("carta", "cartas", FEM),
    ("chapéu", "chapéus", MASC), ("peruca", "perucas", FEM),
    ("casaco", "casacos", MASC), ("mesa", "mesas", FEM),
    ("jardim", "jardins", MASC), ("janela", "janelas", FEM),
    ("relógio", "relógios", MASC), ("escola", "escolas", FEM),
    ("vestido", "vestidos", MASC), ("igreja", "igrejas", FEM),
    ("barco", "barcos", MASC), ("loja", "lojas", FEM),
    ("quadro", "quadros", MASC), ("flor", "flores", FEM),
    ("caderno", "cadernos", MASC), ("chave", "chaves", FEM),
    ("sapato", "sapatos", MASC), ("cadeira", "cadeiras", FEM),
    ("papel", "papéis", MASC), ("bolsa", "bolsas", FEM),
    ("teatro", "teatros", MASC), ("praça", "praças", FEM),
    ("hotel", "hotéis", MASC), ("fazenda", "fazendas", FEM),
    ("armário", "armários", MASC), ("luva", "luvas", FEM),
]

# Adjectives that modify nouns inside the filler: (ms, fs, mp, fp).
MODIFIERS = [
    ("velho", "velha", "velhos", "velhas"), ("novo", "nova", "novos", "novas"),
    ("pequeno", "pequena", "pequenos", "pequenas"), ("vermelho", "vermelha", "vermelhos", "vermelhas"),
    ("preto", "preta", "pretos", "pretas"), ("branco", "branca", "brancos", "brancas"),
    ("antigo", "antiga", "antigos", "antigas"), ("bonito", "bonita", "bonitos", "bonitas"),
    ("azul", "azul", "azuis", "azuis"), ("verde", "verde", "verdes", "verdes"),
    ("grande", "grande", "grandes", "grandes"), ("amarelo", "amarela", "amarelos", "amarelas"),
]

# Of these, the ones that also describe people (no "padre amarelo").
PEOPLE_MODIFIERS = {"velho", "novo", "pequeno", "bonito", "grande"}

# Predicative adjectives after a state copula: every one inflects for gender.
PREDICATIVES = [
    ("cansado", "cansada", "cansados", "cansadas"), ("zangado", "zangada", "zangados", "zangadas"),
    ("calado", "calada", "calados", "caladas"), ("preocupado", "preocupada", "preocupados", "preocupadas"),
    ("assustado", "assustada", "assustados", "assustadas"), ("sozinho", "sozinha", "sozinhos", "sozinhas"),
    ("tranquilo", "tranquila", "tranquilos", "tranquilas"), ("nervoso", "nervosa", "nervosos", "nervosas"),
    ("pronto", "pronta", "prontos", "prontas"), ("ocupado", "ocupada", "ocupados", "ocupadas"),
    ("animado", "animada", "animados", "animadas"), ("sentado", "sentada", "sentados", "sentadas"),
    ("molhado", "molhada", "molhados", "molhadas"), ("orgulhoso", "orgulhosa", "orgulhosos", "orgulhosas"),
    ("furioso", "furiosa", "furiosos", "furiosas"), ("satisfeito", "satisfeita", "satisfeitos", "satisfeitas"),
    ("distraído", "distraída", "distraídos", "distraídas"), ("atrasado", "atrasada", "atrasados", "atrasadas"),
]

# Participles after "foi/foram", each with the tails that fit it.
PARTICIPLES = [
    (("convidado", "convidada", "convidados", "convidadas"), ["para o jantar", "para a festa"]),
    (("chamado", "chamada", "chamados", "chamadas"), ["pelo padre", "de volta"]),
    (("visto", "vista", "vistos", "vistas"), ["na praça", "perto do rio"]),
    (("preso", "presa", "presos", "presas"), ["pela polícia", "no porto"]),
    (("ferido", "ferida", "feridos", "feridas"), ["na guerra", "na estrada"]),
    (("esquecido", "esquecida", "esquecidos", "esquecidas"), ["na estação", ""]),
    (("recebido", "recebida", "recebidos", "recebidas"), ["com alegria", "na sala"]),
    (("escolhido", "escolhida", "escolhidos", "escolhidas"), ["para a viagem", ""]),
    (("levado", "levada", "levados", "levadas"), ["para casa", "ao médico"]),
]

# State copulas (singular, plural); "foi/foram" is the passive one.
COPULAS = [("estava", "estavam"), ("era", "eram"), ("ficou", "ficaram"), ("parecia", "pareciam"),
           ("está", "estão"), ("é", "são"), ("continuava", "continuavam")]
PASSIVE = ("foi", "foram")

# Main verbs of the sentence: (singular, plural, tails).
VERBS = [
    ("entrou", "entraram", ["no bar", "na sala", "em casa", "na igreja"]),
    ("saiu", "saíram", ["de casa", "cedo", "sem dizer nada"]),
    ("chegou", "chegaram", ["tarde", "cedo", "ao porto", "à cidade"]),
    ("dormiu", "dormiram", ["na sala", "cedo", "no sofá"]),
    ("voltou", "voltaram", ["para casa", "à cidade", "no dia seguinte"]),
    ("morava", "moravam", ["perto do rio", "na cidade", "no campo"]),
    ("trabalhava", "trabalhavam", ["no porto", "na fazenda", "de noite"]),
    ("falou", "falaram", ["com o padre", "muito alto", "da viagem"]),
    ("sorriu", "sorriram", ["", "de novo"]),
    ("correu", "correram", ["pela rua", "até a praça"]),
    ("tem", "têm", ["um cachorro", "uma casa na cidade", "medo do escuro"]),
    ("comprou", "compraram", ["um chapéu", "pão", "flores"]),
    ("leu", "leram", ["a carta", "o jornal"]),
    ("escreveu", "escreveram", ["uma carta", "um poema"]),
    ("gosta", "gostam", ["de música", "do mar"]),
    ("canta", "cantam", ["na igreja", "muito bem"]),
    ("vai", "vão", ["à missa", "ao mercado"]),
    ("pode", "podem", ["entrar", "esperar"]),
]

# Transitive verbs inside object relatives ("que o professor VIU"), agreeing
# with the relative clause's own subject, and verbs of subject relatives ("que
# USAVA uma peruca"), agreeing with the main subject.
OBJECT_REL_VERBS = [("viu", "viram"), ("conhecia", "conheciam"), ("encontrou", "encontraram"),
                    ("chamou", "chamaram"), ("esperava", "esperavam"), ("procurou", "procuraram"),
                    ("ajudou", "ajudaram"), ("visitou", "visitaram"), ("admirava", "admiravam"),
                    ("seguiu", "seguiram")]
SUBJECT_REL_VERBS = [("usava", "usavam"), ("carregava", "carregavam"), ("vendia", "vendiam"),
                     ("segurava", "seguravam"), ("trazia", "traziam"), ("guardava", "guardavam"),
                     ("perdeu", "perderam"), ("achou", "acharam")]

# Adverbials. One-token ones glue fillers to an exact length; phrases carry
# the features of their noun, if any, as (noun index in the phrase, number,
# gender), so that they count as attractors like any other noun.
ADVERBS_1 = ["ontem", "hoje", "ainda", "sempre", "também", "depois", "agora", "então", "logo", "nunca"]
ADVERB_PHRASES = [
    ("de repente", None), ("de novo", None), ("mais tarde", None), ("muito cedo", None),
    ("de manhã", (1, SG, FEM)), ("à noite", (1, SG, FEM)), ("no sábado", (1, SG, MASC)),
    ("no domingo", (1, SG, MASC)), ("naquele dia", (1, SG, MASC)), ("naquela noite", (1, SG, FEM)),
    ("todos os dias", (2, PL, MASC)), ("às vezes", (1, PL, FEM)),
    ("naqueles anos", (1, PL, MASC)), ("naquelas manhãs", (1, PL, FEM)),
]
# Sentence openers: no nouns, so the first noun of a sentence is its subject.
LEADS = ["ontem", "hoje", "depois", "então", "de repente"]

# Determiners and preposition contractions, keyed by (number, gender).
DEFINITE = {(SG, MASC): "o", (SG, FEM): "a", (PL, MASC): "os", (PL, FEM): "as"}
INDEFINITE = {(SG, MASC): "um", (SG, FEM): "uma", (PL, MASC): "uns", (PL, FEM): "umas"}
CONTRACT = {  # preposition -> definite article forms
    "de": {(SG, MASC): "do", (SG, FEM): "da", (PL, MASC): "dos", (PL, FEM): "das"},
    "em": {(SG, MASC): "no", (SG, FEM): "na", (PL, MASC): "nos", (PL, FEM): "nas"},
    "por": {(SG, MASC): "pelo", (SG, FEM): "pela", (PL, MASC): "pelos", (PL, FEM): "pelas"},
}
# PPs inside the filler: (words before the article, preposition to contract
# with it or None, whether an indefinite article may replace the definite).
PREPOSITIONS = [((), "de", False), (("com",), None, True), (("perto",), "de", False),
                (("ao", "lado"), "de", False), (("junto",), "de", False), (("sem",), None, True)]


def _other_number(n):
    return PL if n == SG else SG


def _other_gender(g):
    return FEM if g == MASC else MASC


def _noun_form(noun, number):
    return noun[0] if number == SG else noun[1]


def _verb_form(verb, number):
    return verb[0] if number == SG else verb[1]


def _adj_form(forms, number, gender):
    return forms[(0 if gender == MASC else 1) + (0 if number == SG else 2)]


# ---------------------------------------------------------------- lexicon


@dataclass
class Lexicon:
    """The word lists the generator draws from; `restrict` keeps known words only."""

    animate: list = field(default_factory=lambda: list(ANIMATE))
    inanimate: list = field(default_factory=lambda: list(INANIMATE))
    modifiers: list = field(default_factory=lambda: list(MODIFIERS))
    predicatives: list = field(default_factory=lambda: list(PREDICATIVES))
    participles: list = field(default_factory=lambda: list(PARTICIPLES))
    copulas: list = field(default_factory=lambda: list(COPULAS))
    passive: tuple | None = PASSIVE
    verbs: list = field(default_factory=lambda: list(VERBS))
    object_rel_verbs: list = field(default_factory=lambda: list(OBJECT_REL_VERBS))
    subject_rel_verbs: list = field(default_factory=lambda: list(SUBJECT_REL_VERBS))
    adverbs_1: list = field(default_factory=lambda: list(ADVERBS_1))
    adverb_phrases: list = field(default_factory=lambda: list(ADVERB_PHRASES))
    leads: list = field(default_factory=lambda: list(LEADS))
    prepositions: list = field(default_factory=lambda: list(PREPOSITIONS))
    indefinite: bool = True   # whether um/uma/uns/umas may be used

    def restrict(self, known) -> "Lexicon":
        """A lexicon keeping only entries whose every form (and tail) is in `known`.

        `known` is a container of words (a set, or a Vocab's `stoi`). Function
        words (articles, contractions, "que", ".") are required, not filtered:
        a vocabulary without them cannot be probed at all.
        """
        def ok(*phrases):
            return all(w in known for p in phrases for w in p.split())

        def tails_ok(tails):
            return [t for t in tails if ok(t)]

        required = ["que", "."] + list(DEFINITE.values()) + list(CONTRACT["de"].values())
        missing = [w for w in required if w not in known]
        if missing:
            raise UserError(f"the vocabulary lacks function words the agreement templates need: {missing}")
        verbs = [(s, p, tails_ok(t)) for s, p, t in self.verbs if ok(s, p) and tails_ok(t)]
        parts = [(f, tails_ok(t)) for f, t in self.participles if ok(*f) and tails_ok(t)]
        return Lexicon(
            animate=[n for n in self.animate if ok(n[0], n[1])],
            inanimate=[n for n in self.inanimate if ok(n[0], n[1])],
            modifiers=[f for f in self.modifiers if ok(*f)],
            predicatives=[f for f in self.predicatives if ok(*f)],
            participles=parts,
            copulas=[c for c in self.copulas if ok(*c)],
            passive=self.passive if self.passive and ok(*self.passive) else None,
            verbs=verbs,
            object_rel_verbs=[v for v in self.object_rel_verbs if ok(*v)],
            subject_rel_verbs=[v for v in self.subject_rel_verbs if ok(*v)],
            adverbs_1=[a for a in self.adverbs_1 if ok(a)],
            adverb_phrases=[a for a in self.adverb_phrases if ok(a[0])],
            leads=[a for a in self.leads if ok(a)],
            prepositions=[p for p in self.prepositions if all(w in known for w in p[0])],
            indefinite=self.indefinite and all(w in known for w in INDEFINITE.values()),
        )

    def sizes(self) -> dict:
        """Entries per list, for coverage reports."""
        return {k: (len(v) if isinstance(v, list) else int(v is not None)) for k, v in asdict(self).items()}

    def can_generate(self, kind: str) -> bool:
        """Whether sentences with target `kind` ('verb' or 'copula') are possible."""
        base = len(self.animate) >= 1 and len(self.adverbs_1) >= 1
        if kind == "verb":
            return base and bool(self.verbs)
        return base and ((bool(self.copulas) and bool(self.predicatives))
                         or (self.passive is not None and bool(self.participles)))


def _missing_words(entries, words_of, known, k=5) -> list:
    """The first k distinct words of `entries` (in list order) that `known` lacks."""
    out: list = []
    for e in entries:
        for w in words_of(e):
            if w not in known and w not in out:
                out.append(w)
                if len(out) == k:
                    return out
    return out


def template_shortfall(feature: str, known) -> str | None:
    """Why the agreement templates for `feature` cannot be filled from the words in `known` (a vocabulary),
    as one clause naming each role that falls short: how many of its entries the vocabulary holds (every
    form of an entry is needed), how many are needed, and a few of the missing words. None when pairs can
    be made. 'number' needs a subject noun, a one-word adverb and a main verb with a tail; 'gender' needs a
    subject noun, a one-word adverb, and a copula with a predicative adjective or "foi/foram" with a
    participle and its tail."""
    if feature not in (NUMBER, GENDER):
        raise UserError(f"feature must be 'number' or 'gender', got {feature!r}")
    required = ["que", "."] + list(DEFINITE.values()) + list(CONTRACT["de"].values())
    gone = [w for w in required if w not in known]
    if gone:
        return (f"function words: {len(required) - len(gone)} of {len(required)} in the vocabulary, all "
                f"{len(required)} needed (missing {', '.join(gone)})")
    full = Lexicon()
    lex = full.restrict(known)
    if lex.can_generate("verb" if feature == NUMBER else "copula"):
        return None

    def role(name, kept, entries, words_of, forms):
        missing = _missing_words(entries, words_of, known)
        return (f"{name}: {len(kept)} of {len(entries)} in the vocabulary{forms}, at least 1 needed"
                + (f" (missing e.g. {', '.join(missing)})" if missing else ""))

    short = []
    if not lex.animate:
        short.append(role("subject nouns", lex.animate, full.animate, lambda e: e[:2], " with both numbers"))
    if not lex.adverbs_1:
        short.append(role("one-word adverbs", lex.adverbs_1, full.adverbs_1, lambda e: [e], ""))
    if feature == NUMBER:
        if not lex.verbs:
            short.append(role("main verbs", lex.verbs, full.verbs,
                              lambda e: [e[0], e[1]] + [w for t in e[2] for w in t.split()],
                              " with both numbers and a continuation"))
        return "; ".join(short)
    pairs = []
    if not (lex.copulas and lex.predicatives):
        if not lex.copulas:
            pairs.append(role("copulas", lex.copulas, full.copulas, lambda e: e, " with both numbers"))
        if not lex.predicatives:
            pairs.append(role("predicative adjectives", lex.predicatives, full.predicatives, lambda e: e,
                              " with all four forms"))
    if not (lex.passive and lex.participles):
        if not lex.passive:
            pairs.append(f"passive {'/'.join(full.passive)}: not in the vocabulary")
        if not lex.participles:
            pairs.append(role("participles", lex.participles, full.participles,
                              lambda e: list(e[0]) + [w for t in e[1] for w in t.split()],
                              " with all four forms and a continuation"))
    if pairs:
        short.append("the adjective after the verb (a copula with a predicative adjective, or "
                     f"{'/'.join(full.passive)} with a participle): " + "; ".join(pairs))
    return "; ".join(short)


def feature_table(lexicon: Lexicon | None = None) -> dict:
    """word -> {'noun'|'verb'|'adj': (number, gender or None)}, from the word lists.

    Used by tests and oracles to read a token's features by its spelling.
    """
    lex = lexicon or Lexicon()
    table: dict = {}
    for sg, pl, g in lex.animate + lex.inanimate:
        table.setdefault(sg, {})["noun"] = (SG, g)
        table.setdefault(pl, {})["noun"] = (PL, g)
    for phrase, noun in lex.adverb_phrases:
        if noun:
            i, n, g = noun
            table.setdefault(phrase.split()[i], {})["noun"] = (n, g)
    verbs = [(v[0], v[1]) for v in lex.verbs] + list(lex.copulas) + [lex.passive or ("", "")]
    verbs += list(lex.object_rel_verbs) + list(lex.subject_rel_verbs)
    for sg, pl in verbs:
        if sg:
            table.setdefault(sg, {})["verb"] = (SG, None)
            table.setdefault(pl, {})["verb"] = (PL, None)
    for forms in lex.predicatives + [f for f, _ in lex.participles] + lex.modifiers:
        for n in (SG, PL):
            for g in (MASC, FEM):
                w = _adj_form(forms, n, g)
                # An adjective like "azul" is the same word for both genders.
                if forms[0] == forms[1]:
                    table.setdefault(w, {})["adj"] = (n, None)
                else:
                    table.setdefault(w, {})["adj"] = (n, g)
    return table


def all_words(lexicon: Lexicon | None = None) -> set:
    """Every word the generator can write with this lexicon (function words and "." included)."""
    lex = lexicon or Lexicon()
    words = set(feature_table(lex)) | {"que", "."}
    words |= set(DEFINITE.values()) | set(INDEFINITE.values())
    words |= {w for t in CONTRACT.values() for w in t.values()}
    phrases = [t for v in lex.verbs for t in v[2]] + [t for _, ts in lex.participles for t in ts]
    phrases += [p for p, _ in lex.adverb_phrases] + lex.adverbs_1 + lex.leads
    phrases += [" ".join(p[0]) for p in lex.prepositions]
    return words | {w for p in phrases for w in p.split()}
