"""Tokenizer and detokenizer: real Machado sentences, PDF-wrapping artifacts, conventions."""
import time

import pytest

from rnnlm.tokenize import EOS, detokenize, normalize, paragraphs, split_clitics, tokenize


def _read(machado_dir, rel):
    return (machado_dir / "txt" / rel).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def dom_casmurro(machado_dir):
    return _read(machado_dir, "romance/domCasmurro.txt")


@pytest.fixture(scope="module")
def dom_casmurro_tokens(dom_casmurro):
    return tokenize(dom_casmurro)


def _find(tokens, sub):
    for i in range(len(tokens) - len(sub) + 1):
        if tokens[i:i + len(sub)] == sub:
            return i
    return -1


def test_dom_casmurro_opening_sentence(dom_casmurro_tokens):
    expected = ("cumprimentou -me , sentou -se ao pé de mim , falou da lua e dos ministros , "
                "e acabou recitando -me versos . <eos>").split()
    i = dom_casmurro_tokens.index("cumprimentou")
    assert dom_casmurro_tokens[i:i + len(expected)] == expected
    # The line before it was wrapped mid-sentence: no <eos> inside "conheço de vista e de chapéu".
    assert dom_casmurro_tokens[i - 10:i] == "que eu conheço de vista e de chapéu . <eos>".split()


def test_dom_casmurro_title_and_headings(dom_casmurro_tokens):
    # "Dom Casmurro" / blank / "CAPÍTULO PRIMEIRO" / "DO TÍTULO" / "Uma noite destas..."
    assert dom_casmurro_tokens[:5] == ["dom", "casmurro", EOS, "uma", "noite"]
    # "...alguns nem tanto." / "CAPÍTULO II" / "DO LIVRO" / "Agora que expliquei..."
    assert _find(dom_casmurro_tokens, "alguns nem tanto . <eos> agora que expliquei".split()) >= 0
    assert "capítulo" not in dom_casmurro_tokens[:400]


def test_dom_casmurro_dialogue(dom_casmurro_tokens):
    seq = "— continue , disse eu acordando . <eos> — já acabei , murmurou ele . <eos> — são muito bonitos . <eos>"
    assert _find(dom_casmurro_tokens, seq.split()) >= 0


REAL_SENTENCES = [
    ("romance/domCasmurro.txt",
     "Cumprimentou-me, sentou-se ao pé de mim, falou da Lua e dos ministros, e acabou recitando-me versos."),
    ("romance/domCasmurro.txt",
     "Vi-lhe fazer um gesto para tirá-los outra vez do bolso, mas não passou do gesto; estava amuado."),
    ("romance/domCasmurro.txt",
     "Contei a anedota aos amigos da cidade, e eles, por graça, chamam-me assim, alguns em bilhetes: "
     "“Dom Casmurro, domingo vou jantar com você”."),
    ("romance/domCasmurro.txt",
     "Nem por isso me zanguei. Contei a anedota aos amigos da cidade"),
    ("romance/memoriasBras.txt",
     "Algum tempo hesitei se devia abrir estas memórias pelo princípio ou pelo fim, isto é, se poria em "
     "primeiro lugar o meu nascimento ou a minha morte."),
    ("romance/quincas.txt", "Rubião fitava a enseada, — eram oito horas da manhã."),
    ("crônica/semana.txt", "Vender-se-ão calos artificiais, quase tão dolorosos como os verdadeiros."),
    ("conto/variasHistorias.txt", "Era uma vez uma agulha, que disse a um novelo de linha:"),
]


_JOINED = {}


@pytest.mark.parametrize("rel,sentence", REAL_SENTENCES)
def test_round_trip_on_real_sentences(machado_dir, rel, sentence):
    if rel not in _JOINED:
        _JOINED[rel] = " ".join(paragraphs(normalize(_read(machado_dir, rel))))
    joined = _JOINED[rel]
    assert normalize(sentence) in joined, "the sentence must really be in the file"
    assert detokenize(tokenize(sentence, keep_case=True)) == normalize(sentence)
    assert detokenize(tokenize(sentence)) == normalize(sentence).lower()


def test_mesoclisis_from_real_text(machado_dir):
    lines = _read(machado_dir, "crônica/semana.txt").splitlines()
    k = next(i for i, line in enumerate(lines) if "Vender-se-" in line)
    tokens = tokenize("\n".join(lines[k - 3:k + 3]))
    assert _find(tokens, "vender -se -ão calos artificiais".split()) >= 0


def test_clitics_compounds_contractions():
    text = ("Disse-lhe que o guarda-chuva estava na sala; fê-lo pelo amor àquele homem, "
            "e dir-se-ia que no-lo deu no dia-a-dia da lua-de-mel, com um copo d'água.")
    assert tokenize(text) == (
        "disse -lhe que o guarda-chuva estava na sala ; fê -lo pelo amor àquele homem , "
        "e dir -se -ia que no -lo deu no dia-a-dia da lua-de-mel , com um copo d'água . <eos>").split()
    assert detokenize(tokenize(text, keep_case=True)) == text


def test_split_clitics_rules():
    assert split_clitics("dá-no-lo") == ["dá", "-no", "-lo"]
    assert split_clitics("impunha-se-lhe") == ["impunha", "-se", "-lhe"]
    assert split_clitics("far-lhe-ei") == ["far", "-lhe", "-ei"]
    assert split_clitics("bem-me-quer") == ["bem-me-quer"]
    assert split_clitics("Saint-Pierre-Port") == ["Saint-Pierre-Port"]


def test_wrapped_text_hyphens_and_page_numbers():
    text = ("Era uma vez um homem que conti-\n"
            "nuou a andar pela rua, e ativa-\n"
            "se a memória dele quando a lua-de-\n"
            "12\n"
            "mel chegou; uma lua-de-mel longa.\n")
    assert tokenize(text) == (
        "era uma vez um homem que continuou a andar pela rua , e ativa -se a memória dele "
        "quando a lua-de-mel chegou ; uma lua-de-mel longa . <eos>").split()


def test_paragraphs_and_sentence_boundaries():
    text = ("Um título\n\n"
            "CAPÍTULO IV\n"
            "O texto começa aqui e continua na linha seguinte\n"
            "sem ponto. Depois vem o Sr. Pereira... Não veio! e então?\n"
            "Curta.\n"
            "Outro parágrafo \"Entre aspas.\" Fim\n")
    assert tokenize(text) == (
        "um título <eos> o texto começa aqui e continua na linha seguinte sem ponto . <eos> "
        "depois vem o sr. pereira ... <eos> não veio ! e então ? <eos> curta . <eos> "
        "outro parágrafo \" entre aspas . \" <eos> fim <eos>").split()


def test_typographic_normalization_and_numbers():
    text = "“Olá” – disse… «sim» ‘não’ em 1892 por 200$000 e 1.000 réis."
    assert tokenize(text) == ['"', "olá", '"', "—", "disse", "...", '"', "sim", '"', "'", "não", "'",
                              "em", "1892", "por", "200$000", "e", "1.000", "réis", ".", EOS]
    assert tokenize(text, num_token=True)[-6:] == ["<num>", "e", "<num>", "réis", ".", EOS]
    assert tokenize("Dom Casmurro.", keep_case=True) == ["Dom", "Casmurro", ".", EOS]
    assert normalize("a\u00a0b  c\u00adx") == "a b cx"


def test_detokenize_spacing_and_capitals():
    tokens = ["(", "vendo", "rosinha", ")", "oh", "!", EOS, "—", "ele", "disse", "-lhe", ":",
              '"', "sim", '"', ".", EOS, "fim", "..."]
    assert detokenize(tokens) == '(vendo rosinha) oh! — ele disse-lhe: "sim". fim...'
    assert detokenize(tokens, capitalize=True, sentence_sep="\n") == '(Vendo rosinha) oh!\n— Ele disse-lhe: "sim".\nFim...'


def test_tokenize_speed(dom_casmurro):
    # ~380 kB; the whole 11 MB corpus must stay well under 30 s.
    start = time.perf_counter()
    tokenize(dom_casmurro)
    assert time.perf_counter() - start < 3.0


def test_a_clitic_drawn_after_a_mark_is_not_glued_to_it():
    # a model can draw "-la" after a comma; "animada,-la" read as a typo of the printer
    from rnnlm.tokenize import detokenize
    assert detokenize(["por", "animada", ",", "-la", "."]) == "por animada, -la."
    assert detokenize(["disse", "-lhe", "-o"]) == "disse-lhe-o"
    assert detokenize(["-me", "o"]) == "-me o"
