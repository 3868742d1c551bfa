"""Portuguese word tokenizer and detokenizer for PDF-extracted text.

`tokenize(text)` runs three stages:

1. `normalize`: Unicode NFC; “ ” « » „ -> ", ‘ ’ -> ', – ― -> —, … -> ...,
   non-breaking and odd spaces -> space, soft hyphens removed.
2. `paragraphs`: rebuild paragraphs from page-wrapped lines. A paragraph ends
   at a blank line, before a line opening with a dialogue dash, and after a
   short line (under 75% of the document's typical width) that ends in . ! ?
   or ... when the next line starts with a capital. Lone page numbers (a line
   of 1-4 digits) are dropped without breaking the paragraph. Heading lines
   (all capitals: CAPÍTULO II, DO LIVRO, ÍNDICE, a play's speaker names,
   Roman numerals) are dropped and end the paragraph, so they act as a
   sentence boundary. A line ending in "letter-" is decided from the
   document itself: the hyphen stays when the hyphenated form occurs
   elsewhere in it (lua-de- / mel -> lua-de-mel); else the halves are joined
   when the joined word occurs elsewhere (mui- / to -> muito, although "to"
   looks like a clitic); else the hyphen stays when the next word is a
   clitic (ativa- / as -> ativa-as) and the halves are joined otherwise
   (compa- / ração -> comparação). Words split *without* a hyphen by the PDF
   extraction ("Tratase") cannot be repaired and stay as they are.
3. Words and punctuation, then `<eos>`: after . ! ? ... (and any closing
   quote or bracket) when the next token starts a sentence (a capital, a
   dialogue dash, or an opening quote before a capital), and at every
   paragraph end. Then lower-casing (unless keep_case) and numbers -> <num>
   (if num_token).

Token conventions:
- Punctuation is one token per mark; "..." is one token; every dash is "—".
- Clitic pronouns are split off as tokens that keep their hyphen:
  "disse-lhe" -> disse -lhe, "fê-lo" -> fê -lo, "dá-no-lo" -> dá -no -lo,
  and mesoclisis "vender-se-ão" -> vender -se -ão. This keeps the vocabulary
  small (the verb form is shared with its unhyphenated uses) and makes
  detokenization unambiguous: a token starting with "-" glues to the previous.
  A text that opens with one ("-se foi", a generate prime continuing a verb)
  is split by `leading_clitics`; `tokenize` itself reads "-se" there as a dash.
- Other hyphenated words are one token: guarda-chuva, lua-de-mel, dia-a-dia.
- Contractions are words: do, na, pelo, àquele, d'água.
- Abbreviations keep their period and never end a sentence: sr., dr., d., v.,
  etc., and single capital initials (J. M.).
- Numbers are one token (1.000, 200$000, 1°; version 2: 1890-91, 100$).
- Ordinal indicators stay with their number or abbreviation: 1.º, 2.ª, 1º,
  n.º, N.º, V. Ex.ª -> V. / Ex.ª (version 2).

Versions: TOKENIZER_VERSION is part of every corpus checksum. Older
versions stay reproducible through `tokenize(..., version=v)` so that data.py
can tell whether a run made before a change would see other tokens (see
`data.tokenizer_change`). 1: the first; 2: ordinal indicators, line-break
hyphens decided by the joined word.

Round trip: for every paragraph p of the corpus, detokenize of p's tokens equals
p up to these normalisations (tests/test_tokenize_pt.py checks all ~38k): every
dash is —, ellipses and dot leaders are ..., the spacing around dashes,
quotes, brackets, marks and a URL's / = & + % is re-derived (a URL comes back as
http:/ / host), a space follows a period, repeated marks (* * *) are one run.

The one thing to know before editing: `detokenize(tokenize(s, keep_case=True))
== normalize(s)` holds for ordinary prose and is tested on real sentences;
any change to spacing rules must keep both functions in step, and must bump
TOKENIZER_VERSION so cached corpora are rebuilt.
"""
from __future__ import annotations

import re
import unicodedata

TOKENIZER_VERSION = 2   # part of the cache key: bump when the output of tokenize() changes (keep the old
#                         behaviour reachable through `version`, see the module docstring)

EOS = "<eos>"
UNK = "<unk>"
NUM = "<num>"
DASH = "—"
ELLIPSIS = "..."

# Enclitic and mesoclitic pronoun forms, as the segment after a hyphen.
CLITICS = frozenset("""
    me te se lhe lhes o a os as lo la los las no na nos nas vos vo
    mo ma mos mas to ta tos tas lho lha lhos lhas
""".split())
# Future/conditional endings that follow a mesoclitic pronoun (dir-se-ia, far-lhe-ei).
_MESOCLISIS_ENDINGS = frozenset("ei ás á emos eis ão ia ias íamos íeis iam".split())

_ABBREVIATIONS = ("sr sra srs sras srta dr dra drs exa exmo exma ilmo ilma revmo sto sta "
                  "etc pág págs cap caps vol vols cf mme mlle mr mrs gal cel ten cia av pe fr obs "
                  "ex dd digmo").split()

_TRANSLATE = str.maketrans({
    "“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‟": '"',
    "‘": "'", "’": "'", "‚": "'", "‛": "'",
    "–": DASH, "―": DASH, "‒": DASH,
    "…": ELLIPSIS,
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2007": " ", "\t": " ", "\u200b": "",
    "\u00ad": "",   # soft hyphen: invisible, only a break opportunity
    "_": "",        # underscores mark italics or blanks in a few works, never words
    "\ufeff": "",
})

# 1.º 2.ª 1.° 1.o 2.a (digits: the old typography's plain o/a too), n.º N.º Ex.ª (version 2)
# n.o N.° (número), Ex.mo Il.ma Rev.mos (superscript endings printed inline)
_ORDINAL = (r"(?P<ordinal>(?<!\w)(?:\d+\.[ºª°oa]|[nN]\.?[º°]|[nN]\.o|[^\W\d_]{1,3}\.[ºª°]|(?i:ex|il|rev)\.m[oa]s?)"
            r"(?!\w))")
_TOKEN_PATTERN = r"""
    %s(?P<abbr>(?<!\w)(?:(?i:%s)|(?![AEOÀÁÂÉÊÓÔ])[A-ZÀ-Ý])\.%s)   # sr.  etc.  J. (not the words A. É. O.)
  | (?P<num>%s)          # 1.000  200$000  1°
  | (?P<word>[^\W_]+(?:['-][^\W_]+)*)            # words, hyphenated words, d'água
  | (?P<ellipsis>\.{2,})
  | (?P<dash>—+|-+)                             # a hyphen not inside a word is a dash
  | (?P<other>\S)
"""
_ABBREVIATION_RE = "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True))
# version 2 also: an initial before an ellipsis is a word, not an abbreviation (T... stays T...)
# version 2 also: number ranges and a trailing $ stay in the number (1890-91, 100$)
_NUM = {1: r"\d+(?:[.,$:/]\d+)*°?(?!\w)", 2: r"\d+(?:[-.,$:/]\d+)*\$?°?(?!\w)"}
_TOKEN_RES = {1: re.compile(_TOKEN_PATTERN % ("", _ABBREVIATION_RE, "", _NUM[1]), re.VERBOSE),
              2: re.compile(_TOKEN_PATTERN % (_ORDINAL + "\n  | ", _ABBREVIATION_RE, "(?!\\.)", _NUM[2]),
                            re.VERBOSE)}
_TOKEN_RE = _TOKEN_RES[TOKENIZER_VERSION]
_WORD = re.compile(r"[^\W_]+")

_SENTENCE_END = frozenset({".", "!", "?", ELLIPSIS})
_CLOSERS = frozenset({")", "]", "}"})
_PAGE_NUMBER = re.compile(r"\d{1,4}")
_ROMAN = re.compile(r"[IVXLCDM]+\.?")
_HYPHENATED = re.compile(r"\w+(?:-\w+)+")
_LINE_END_HYPHEN = re.compile(r"(\w+(?:-\w+)*)-$")
_FIRST_WORD = re.compile(r"\w+")
_MULTISPACE = re.compile(r" {2,}")


def normalize(text: str) -> str:
    """NFC, typographic quotes/dashes/ellipsis to plain forms, one space between words per line."""
    text = unicodedata.normalize("NFC", text).translate(_TRANSLATE)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _MULTISPACE.sub(" ", text)


def _is_heading(line: str) -> bool:
    # All letters upper case: CAPÍTULO II, DO LIVRO, a speaker's name. Single
    # capitals only as Roman numerals, so a wrapped "A" or "É" stays text.
    if line != line.upper() or line == line.lower():
        return False
    letters = sum(ch.isalpha() for ch in line)
    return letters >= 2 or bool(_ROMAN.fullmatch(line))


def paragraphs(text: str, version: int = TOKENIZER_VERSION, layout: bool = True,
               dropped: list | None = None) -> list[str]:
    """Rebuild paragraphs from normalized, page-wrapped text (see the module docstring).

    layout: read the text as a page of a book, dropping lone page numbers and
    heading lines (all capitals); False keeps every line as text (a prime a
    user typed: "O HOMEM QUE", "1890"). dropped: a list that receives the
    lines so dropped, in order (to tell a user whose text lost them).
    """
    lines = [line.strip() for line in text.split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    width = lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0
    short = 0.75 * width
    hyphenated = None   # built on first need: hyphenated words of this document
    words = None        # and its words (version 2)
    result: list[str] = []
    current: list[str] = []
    previous = ""

    def flush():
        if current:
            result.append(" ".join(current))
            current.clear()

    for line in lines:
        if not line:
            flush()
            continue
        if layout and _PAGE_NUMBER.fullmatch(line):
            if dropped is not None:
                dropped.append(line)
            continue
        if layout and _is_heading(line):
            if dropped is not None:
                dropped.append(line)
            flush()
            continue
        if line[0] == DASH or line.startswith("- "):
            flush()
        elif current and line[0].isupper() and len(previous) < short and previous.endswith(
                (".", "!", "?", '."', '!"', '?"')):
            flush()
        if current and current[-1].endswith("-"):
            match = _LINE_END_HYPHEN.search(current[-1])
            first = _FIRST_WORD.match(line)
            if match and first:
                if hyphenated is None:
                    hyphenated = {w.lower() for w in _HYPHENATED.findall(text)}
                head, tail = match.group(1), first.group(0)
                if version >= 2:
                    if words is None:
                        words = {w.lower() for w in _WORD.findall(text)}
                    keep = f"{head}-{tail}".lower() in hyphenated or (
                        f"{head}{tail}".lower() not in words and tail.lower() in CLITICS)
                else:
                    keep = tail.lower() in CLITICS or f"{head}-{tail}".lower() in hyphenated
                if keep:
                    current[-1] += line
                else:
                    current[-1] = current[-1][:-1] + line
                previous = line
                continue
        current.append(line)
        previous = line
    flush()
    return result


def split_clitics(word: str) -> list[str]:
    """'disse-lhe' -> ['disse', '-lhe']; 'vender-se-ão' -> ['vender', '-se', '-ão']; compounds unchanged."""
    parts = word.split("-")
    if len(parts) < 2 or not parts[0]:
        return [word]
    tail: list[str] = []
    if len(parts) >= 3 and parts[-1].lower() in _MESOCLISIS_ENDINGS and parts[-2].lower() in CLITICS:
        tail = ["-" + parts[-2], "-" + parts[-1]]
        parts = parts[:-2]
    while len(parts) > 1 and parts[-1].lower() in CLITICS:
        tail.insert(0, "-" + parts.pop())
    if not tail:
        return [word]
    return ["-".join(parts)] + tail


_LEADING_CLITICS = re.compile(r"\s*-([^\W\d_]+(?:-[^\W\d_]+)*)(?![\w-])")


def leading_clitics(text: str) -> tuple[list[str], str]:
    """(clitic tokens, the rest) of a text that opens with clitics glued to no word: "-se foi" ->
    (["-se"], " foi"), "-se-ão" -> (["-se", "-ão"], ""); ([], text) for any other ("-Sim", "-casa", "a-se").

    tokenize reads a hyphen before a word as a dash ("-Sim" is a dialogue's "— Sim"), right for prose;
    a text that continues another one (a generate prime) means the clitic of the word before it.
    """
    m = _LEADING_CLITICS.match(text)
    if m is None:
        return [], text
    parts = split_clitics("x-" + m.group(1))       # a stand-in for the word the clitics belong to
    if len(parts) < 2 or parts[0] != "x":
        return [], text
    return parts[1:], text[m.end():]


def _paragraph_tokens(paragraph: str, clitic_cache: dict, token_re=_TOKEN_RE) -> list[str]:
    tokens: list[str] = []
    append = tokens.append
    for match in token_re.finditer(paragraph):
        kind = match.lastgroup
        text = match.group()
        if kind == "word":
            if "-" in text:
                split = clitic_cache.get(text)
                if split is None:
                    split = clitic_cache[text] = split_clitics(text)
                tokens.extend(split)
            else:
                append(text)
        elif kind == "ellipsis":
            append(ELLIPSIS)
        elif kind == "dash":
            append(DASH)
        else:
            append(text)
    return tokens


def _starts_sentence(tokens: list[str], j: int) -> bool:
    token = tokens[j]
    if token[0].isupper() or token == DASH:
        return True
    return token in ('"', "'", "(") and j + 1 < len(tokens) and tokens[j + 1][0].isupper()


def _with_sentence_ends(tokens: list[str]) -> list[str]:
    """Insert <eos> after sentence-final punctuation that is followed by a new sentence."""
    n = len(tokens)
    # A quote is closing when an odd number of the same quote precedes it in the paragraph.
    closing = [False] * n
    open_quote = {'"': False, "'": False}
    for k, token in enumerate(tokens):
        if token in open_quote:
            closing[k] = open_quote[token]
            open_quote[token] = not open_quote[token]
    out: list[str] = []
    pending = -1   # index after which an <eos> goes
    for i, token in enumerate(tokens):
        out.append(token)
        if i == pending:
            out.append(EOS)
            pending = -1
        elif token in _SENTENCE_END and pending < 0:
            j = i + 1
            while j < n and (tokens[j] in _CLOSERS or closing[j]):
                j += 1
            if j < n and _starts_sentence(tokens, j):
                if j == i + 1:
                    out.append(EOS)
                else:
                    pending = j - 1
    if not out or out[-1] != EOS:
        out.append(EOS)
    return out


def tokenize(text: str, keep_case: bool = False, num_token: bool = False,
             version: int = TOKENIZER_VERSION, layout: bool = True, dropped: list | None = None) -> list[str]:
    """Portuguese text -> word and punctuation tokens with <eos> at sentence ends.

    keep_case: keep capitals (default lower-cases everything).
    num_token: replace every number by <num>.
    version: an older TOKENIZER_VERSION's output (1 or 2), to compare with runs made before.
    layout: drop page numbers and all-capital heading lines as the corpus reader
    does (see `paragraphs`); False for text that is not a book page, such as a
    generate prime, where "CAPÍTULO PRIMEIRO" or "1890" are the user's words.
    dropped: a list that receives the lines layout dropped (see `paragraphs`).
    """
    if version not in _TOKEN_RES:
        raise ValueError(f"tokenizer version {version}: this rnnlm has {sorted(_TOKEN_RES)}")
    clitic_cache: dict = {}
    result: list[str] = []
    token_re = _TOKEN_RES[version]
    for paragraph in paragraphs(normalize(text), version, layout, dropped):
        tokens = _paragraph_tokens(paragraph, clitic_cache, token_re)
        if tokens:
            result.extend(_with_sentence_ends(tokens))
    if not keep_case:
        result = [t if t == EOS else t.lower() for t in result]
    if num_token:
        result = [NUM if t[0].isdigit() else t for t in result]
    return result


# ---------------------------------------------------------------- detokenize

_NO_SPACE_BEFORE = frozenset({",", ".", ";", ":", "!", "?", ")", "]", "}", ELLIPSIS, "%"})
_NO_SPACE_AFTER = frozenset({"(", "[", "{"})
_QUOTES = frozenset({'"', "'"})


def detokenize(tokens, capitalize: bool = False, sentence_sep: str = " ") -> str:
    """Tokens -> readable Portuguese text.

    No space before , . ; : ! ? ) ... and after (; clitic tokens ("-lhe")
    re-attach to the previous word (one a model draws after a mark stays
    apart: "animada, -la"); a quote opens or closes by alternation,
    corrected by context (a quote before punctuation closes, one at a
    sentence start or after a bracket or dash opens). `<eos>` becomes
    `sentence_sep` (a space by default; "\\n" gives one sentence per line).
    capitalize: upper-case the first letter of every sentence.
    """
    d = Detokenizer(capitalize=capitalize, sentence_sep=sentence_sep)
    return "".join([d.feed(token) for token in tokens]) + d.close()


class Detokenizer:
    """detokenize one token at a time, for text shown while it is drawn (generate).

    `feed(token)` returns the text that token makes final and `close()` the
    rest, so that "".join(feed(t) for t in tokens) + close() is
    detokenize(tokens) and every prefix of it stays as it was printed. A
    token's text waits for the next token (a quote looks one ahead), and a
    sentence end's `sentence_sep` for the next word (none after the last).
    """

    def __init__(self, capitalize: bool = False, sentence_sep: str = " "):
        self.capitalize, self.sentence_sep = capitalize, sentence_sep
        self.pending = None         # the token fed last, not yet written
        self.previous = None        # previous token; None at the start and after <eos>
        self.after_opener = True    # the previous token wants no space after it
        self.quote_open = {'"': False, "'": False}
        self.sentence_start = True
        self.wrote = False          # any text written yet (a sentence end before it writes nothing)
        self.sep_due = False        # a sentence end was read since the last word written

    def feed(self, token: str) -> str:
        out = "" if self.pending is None else self._write(self.pending, token)
        self.pending = token
        return out

    def close(self) -> str:
        out = "" if self.pending is None else self._write(self.pending, EOS)
        self.pending = None
        return out

    def _write(self, token: str, following: str) -> str:
        if token == EOS:
            self.sep_due = self.wrote
            self.previous, self.after_opener, self.sentence_start = None, True, True
            return ""
        opening_quote = False
        if token in _QUOTES:
            opening_quote = not self.quote_open[token]
            if opening_quote and (following == EOS or following in _NO_SPACE_BEFORE):
                opening_quote = False
            elif not opening_quote and (self.previous is None or self.previous in _NO_SPACE_AFTER
                                        or self.previous == DASH):
                opening_quote = True
            self.quote_open[token] = opening_quote
        glue = (self.after_opener
                or token in _NO_SPACE_BEFORE
                # a clitic joins the word before it (disse -lhe); after a mark it stays apart (animada, -la)
                or (token[0] == "-" and len(token) > 1 and self.previous is not None and self.previous[-1].isalnum())
                or (token in _QUOTES and not opening_quote))
        out = (self.sentence_sep if self.sep_due else "") + ("" if glue else " ")
        if self.capitalize and self.sentence_start and token[0].isalnum():
            token = token[0].upper() + token[1:]
            self.sentence_start = False
        elif token[0] == "-" and token[1:2].isalnum():     # a clitic ("-se" opening a prime) continues a sentence
            self.sentence_start = False
        self.previous = token
        self.after_opener = token in _NO_SPACE_AFTER or opening_quote
        self.sep_due, self.wrote = False, True
        return out + token
