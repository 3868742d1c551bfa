"""A user's own text is read as the user wrote it: each test fails without its fix.

- a generate prime in capitals ("O HOMEM QUE") or a lone number was dropped as a book's heading or page
  number, and the model was primed with nothing, silently;
- `evaluate --text` on a file typed in capitals said "0 tokens are too few for batch size 1; use a smaller
  batch or a larger corpus"; it is now read with its lines kept, and says so;
- a lower-case run's prime "d. joão" was split as a sentence end after "d".
"""
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm.config import DataConfig
from rnnlm.errors import UserError
from rnnlm.evaluate import _text_tokens
from rnnlm.sample import encode_prime
from rnnlm.tokenize import EOS, paragraphs, tokenize
from rnnlm.vocab import Vocab

REPO = Path(__file__).resolve().parents[1]
VOCAB = Vocab(["<unk>", "<eos>", "o", "homem", "que", "capítulo", "primeiro", "d.", "joão", "chegou", ".",
               "em", "1890"])


def test_the_corpus_reader_still_drops_headings_and_page_numbers():
    page = "CAPÍTULO II\nO homem chegou.\n12\nDepois saiu."
    assert paragraphs(page) == ["O homem chegou. Depois saiu."]
    assert paragraphs(page, layout=False) == ["CAPÍTULO II O homem chegou. 12 Depois saiu."]
    assert tokenize("CAPÍTULO PRIMEIRO") == []
    assert tokenize("CAPÍTULO PRIMEIRO", layout=False) == ["capítulo", "primeiro", EOS]


@pytest.mark.parametrize("prime, tokens", [
    ("O HOMEM QUE", ["o", "homem", "que"]),
    ("CAPÍTULO PRIMEIRO", ["capítulo", "primeiro"]),
    ("1890", ["1890"]),
    ("Em 1890", ["em", "1890"]),
])
def test_a_prime_in_capitals_or_a_lone_number_is_read_not_dropped(prime, tokens):
    got, ids, unknown = encode_prime(prime, VOCAB)
    assert got == tokens
    assert [VOCAB.itos[i] for i in ids] == tokens and unknown == []


@pytest.mark.parametrize("prime", ["d. joão chegou", "d. João chegou", "D. João chegou"])
def test_a_lower_case_initial_is_the_abbreviation_the_corpus_gave(prime):
    assert encode_prime(prime, VOCAB)[0] == ["d.", "joão", "chegou"]


def test_a_lower_case_initial_stays_split_where_the_vocabulary_has_no_abbreviation():
    vocab = Vocab(["<unk>", "<eos>", "d", ".", "joão"])
    assert encode_prime("d. joão", vocab)[0] == ["d", ".", "joão"]
    # a keep-case run's vocabulary holds the corpus's "D.": a typed "d." is that abbreviation too
    cased = Vocab(["<unk>", "<eos>", "D.", "João", "d", "."])
    assert encode_prime("d. joão", cased, keep_case=True)[0] == ["D.", "João"]


def test_a_text_in_capitals_is_read_with_its_lines_kept_and_says_so():
    tokens, note = _text_tokens("O HOMEM QUE\nCHEGOU.\n", "caps.txt", DataConfig())
    assert tokens == ["o", "homem", "que", "chegou", ".", EOS]
    assert note.startswith("every line is in capitals or a lone number")
    # a text with prose keeps the corpus's reading: its heading is dropped, and counted
    tokens, note = _text_tokens("CAPÍTULO I\n\nO homem chegou.\n", "mixed.txt", DataConfig())
    assert tokens == ["o", "homem", "chegou", ".", EOS] and note.startswith("1 line of the text ('CAPÍTULO I')")
    assert _text_tokens("O homem chegou.\n", "prose.txt", DataConfig())[1] == ""


@pytest.mark.parametrize("raw", ["   \n", "\n\n\t\n"])
def test_a_text_with_no_words_is_refused_in_one_line(raw):
    with pytest.raises(UserError, match="--text t.txt has no words; evaluation reads one token to predict the next"):
        _text_tokens(raw, "t.txt", DataConfig())
    assert _text_tokens("...", "t.txt", DataConfig()) == (["...", EOS], "")      # two tokens: one prediction


@pytest.fixture(scope="module")
def tiny_run(text, tmp_path_factory):
    """A two-step vanilla RNN on one chronicle, trained by the CLI."""
    run = tmp_path_factory.mktemp("s29") / "run"
    subprocess.run([sys.executable, str(REPO / "cli.py"), "train", "--corpus", str(text), "--cell", "rnn",
                    "--emsize", "8", "--hidden", "8", "--max-steps", "2", "--out", str(run)],
                   check=True, capture_output=True, cwd=run.parent)
    return run


def test_evaluate_on_a_text_in_capitals_prints_the_note(tmp_path, tiny_run):
    text = tmp_path / "caps.txt"
    text.write_text("O HOMEM QUE CHEGOU.\nDEPOIS SAIU.\n", encoding="utf-8")
    r = subprocess.run([sys.executable, str(REPO / "cli.py"), "evaluate", str(tiny_run), "--text", str(text)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "note: every line is in capitals or a lone number" in r.stdout
    assert "(10 tokens," in r.stdout and "over 9 predictions" in r.stdout


def test_generate_is_primed_with_a_prime_in_capitals(tiny_run):
    r = subprocess.run([sys.executable, str(REPO / "cli.py"), "generate", str(tiny_run), "--prime",
                        "O HOMEM QUE", "--words", "3", "--seed", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("O HOMEM QUE")     # shown as typed;           # before: the prime was dropped, the text began anew


# ---------------------------------------------------------------- generate_text from Python


@pytest.fixture(scope="module")
def loaded(tiny_run):
    from rnnlm.runs import load_model
    model, vocab, _, _ = load_model(tiny_run, "best")
    return model, vocab


@pytest.mark.parametrize("kw, error, words", [
    (dict(prime=None), TypeError, "prime must be a str (the text to continue, \"\" for none), got NoneType"),
    (dict(prime=["o", "homem"]), TypeError, "prime must be a str"),
    (dict(vocab=None), TypeError, "vocab must be a Vocab, got NoneType: runs.load_model(RUN) returns"),
    (dict(model="run"), TypeError, "model must be an RNNModel, got str"),
    (dict(keep_case=False, vocab=Vocab(["<unk>", "<eos>", "Homem"])), ValueError,
     "keep_case=False, but this vocabulary has capitals"),
    (dict(num_token=False, vocab=Vocab(["<unk>", "<eos>", "<num>"])), ValueError,
     "num_token=False, but this vocabulary holds <num>"),
])
def test_generate_text_says_what_is_wrong_with_its_arguments(loaded, kw, error, words):
    from rnnlm.sample import generate_text
    args = dict(model=loaded[0], vocab=loaded[1], words=2)
    args.update(kw)
    with pytest.raises(error) as e:
        generate_text(args.pop("model"), args.pop("vocab"), **args)
    assert words in str(e.value)


def test_generate_text_reads_the_prime_as_the_vocabulary_was_read(loaded):
    from rnnlm.sample import generate_text
    model, vocab = loaded
    assert vocab.reading() == {"keep_case": False, "num_token": False}
    assert Vocab(["<unk>", "<eos>", "Homem", "<num>"]).reading() == {"keep_case": True, "num_token": True}
    unknown = []
    text = generate_text(model, vocab, prime="O Homem Que", words=2, unknown_out=unknown)[0]
    assert text.startswith("O Homem Que") and unknown == []        # read as "o homem que", shown as typed
    # keep_case=True on this lower-cased vocabulary: each word read in the case the vocabulary knows it in
    unknown = []
    text = generate_text(model, vocab, prime="O Homem Que", words=2, keep_case=True, unknown_out=unknown)[0]
    assert unknown == [] and text.startswith("O Homem Que")


def test_a_keep_case_runs_prime_in_capitals_is_read_in_the_case_the_vocabulary_knows():
    vocab = Vocab(["<unk>", "<eos>", "homem", "Homem", "O", "que", "Brás"])
    assert encode_prime("O HOMEM QUE", vocab, keep_case=True)[0] == ["O", "homem", "que"]   # before: <unk> <unk>
    assert encode_prime("BRÁS e brás", vocab, keep_case=True)[0] == ["Brás", "e", "Brás"]
    assert encode_prime("BRÁS e brás", vocab, keep_case=True)[2] == ["e"]


@pytest.mark.parametrize("value", ["no", "False", 0, 1.0])
def test_keep_case_and_num_token_must_be_booleans(loaded, value):
    from rnnlm.sample import generate_text
    for name in ("keep_case", "num_token"):
        with pytest.raises(TypeError, match=f"{name} must be True, False or None .* got {value!r}"):
            generate_text(*loaded, prime="o", words=1, **{name: value})


# ---------------------------------------------------------------- evaluate --text: every token counts

SHORT = ("O homem que usava uma peruca entrou no bar. Depois saiu para a rua e viu a mulher que vendia "
         "flores. Ela sorriu.\n")          # 29 tokens


def _evaluate(run, text, *flags):
    r = subprocess.run([sys.executable, str(REPO / "cli.py"), "evaluate", str(run), "--text", str(text), *flags],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_short_text_is_read_as_one_stream_and_every_token_is_scored(tmp_path, tiny_run):
    text = tmp_path / "short.txt"
    text.write_text(SHORT, encoding="utf-8")
    out = _evaluate(tiny_run, text)
    assert "(29 tokens," in out and "over 28 predictions, batch size 1," in out   # before: 10 streams, 10 predictions
    assert "streams side by side" not in out


def test_tokens_left_out_by_a_given_batch_size_are_said(tmp_path, tiny_run):
    text = tmp_path / "short.txt"
    text.write_text(SHORT, encoding="utf-8")
    out = _evaluate(tiny_run, text, "--batch-size", "4")
    assert "over 24 predictions, batch size 4," in out
    assert ("note: read as 4 streams side by side, 24 of the text's 28 predictions are made (each stream's first "
            "token is only read, and the last token fills none), each stream from a zero state; --batch-size 1 "
            "reads it as one stream and makes them all") in out
    out = _evaluate(tiny_run, text, "--batch-size", "3")
    assert "over 24 predictions, batch size 3," in out and "only read, and the last 2 tokens fill none)" in out
    out = _evaluate(tiny_run, text, "--batch-size", "100")
    assert "over 28 predictions, batch size 1," in out
    assert "note: --batch-size 100 is more streams than the text's 29 tokens can fill (each needs two)" in out


def test_lines_the_corpus_reader_drops_are_counted_and_quoted(tmp_path, tiny_run):
    text = tmp_path / "mixed.txt"
    text.write_text("O HOMEM QUE USAVA UMA PERUCA ENTROU NO BAR.\nELE DISSE QUE NÃO SABIA.\nE saiu.\n",
                    encoding="utf-8")
    out = _evaluate(tiny_run, text)
    assert "(4 tokens," in out
    assert ("note: 2 lines of the text ('O HOMEM QUE USAVA UMA PERUCA ENTROU N...' and more) are not scored: the "
            "corpus reader drops a line in capitals as a heading and a lone number as a page number") in out
    tokens, note = _text_tokens("Ele chegou em\n1890\ne saiu.\n", "n.txt", DataConfig())
    assert "1890" not in tokens and note.startswith("1 line of the text ('1890') is not scored")


def test_a_text_mostly_out_of_the_vocabulary_is_said_to_be_scored_as_unk(tmp_path, tiny_run):
    text = tmp_path / "oov.txt"
    text.write_text("xyzzy plugh frobnicate quux zorp blah.\n", encoding="utf-8")     # 6 of 8 tokens unknown
    out = _evaluate(tiny_run, text)
    assert "% of the text is out of the vocabulary, each such word read and predicted as the one word <unk>" in out


@pytest.mark.parametrize("encoding, name", [("utf-16", "UTF-16"), ("utf-16-be", None), ("utf-32", "UTF-32")])
def test_a_utf16_or_utf32_file_with_its_byte_order_mark_is_read(tmp_path, encoding, name):
    from rnnlm.corpus import read_text
    path = tmp_path / "t.txt"
    text = "O homem chegou à estação.\nDepois saiu.\n"
    path.write_bytes((b"\xfe\xff" if name is None else b"") + text.encode(encoding))   # utf-16-be: its BOM by hand
    label = name or "UTF-16"
    with pytest.warns(UserWarning, match=f"t.txt is {label}, not UTF-8; read it as {label}"):
        assert read_text(path, corpus=False) == text      # before: "looks binary (it contains NUL bytes)"


def test_a_false_utf16_byte_order_mark_is_one_line(tmp_path):
    from rnnlm.corpus import read_text
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xff\xfeA\x00\x00\xd8")             # a lone surrogate: not UTF-16
    with pytest.raises(UserError, match="starts with a UTF-16 byte-order mark but is not UTF-16; give a plain text"):
        read_text(path, corpus=False)


# ---------------------------------------------------------------- the prime is shown as typed


@pytest.mark.parametrize("prime, shown", [
    ("Sr. Brás Cubas", "Sr. Brás Cubas"),               # the tokens re-joined: "Sr. brás cubas"
    ("— Que é isso? — perguntou ele.", "— Que é isso? — perguntou ele."),   # re-joined: a break before "—"
    ("o homem que", "O homem que"),                      # the first letter a capital, as every sentence's
    ("d. joão", "D. joão"),
    ("Ela disse: 'Não!'", "Ela disse: 'Não!'"),
    ("  O HOMEM QUE  ", "O HOMEM QUE"),
])
def test_the_prime_is_shown_as_typed_and_the_pieces_make_the_text(loaded, prime, shown):
    from rnnlm.sample import TextStream, generate_text
    model, vocab = loaded
    texts = generate_text(model, vocab, prime=prime, words=5, seed=3, num_samples=2)
    assert all(t.startswith(shown) for t in texts), texts
    stream = TextStream(model, vocab, prime=prime, words=5, seed=3, num_samples=2)
    parts = [[], []]
    for piece in stream:
        parts[piece.sample].append(piece.text)
    assert ["".join(p) for p in parts] == texts == [stream.text(0), stream.text(1)]
    # what follows the prime is what the model drew after the prime's tokens, as before
    from rnnlm.tokenize import detokenize
    rejoined = detokenize(stream.prime_tokens, capitalize=True, sentence_sep="\n")
    full = detokenize(stream.tokens[0], capitalize=True, sentence_sep="\n")
    assert texts[0][len(shown):] == full[len(rejoined):]


def test_a_prime_ending_in_an_opening_quote_is_shown_re_joined(loaded):
    from rnnlm.sample import TextStream
    from rnnlm.tokenize import detokenize
    model, vocab = loaded
    stream = TextStream(model, vocab, prime='ele disse "', words=3, seed=1)
    text = "".join(piece.text for piece in stream)
    # whether the quote opens (glued to the next word) or closes is the next token's to decide: the text is
    # the tokens re-joined, prime and all, never the typed prime followed by a re-joined quote
    assert text == detokenize(stream.tokens[0], capitalize=True, sentence_sep="\n")
    assert text.startswith("Ele disse")
