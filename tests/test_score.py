"""`score`: each token's log-probability given the tokens before it, checked against the model's own loss
over the same tokens; sentences scored together as alone; the command's report, TSV and errors."""
import math

import numpy as np
import pytest

from rnnlm import cli
from rnnlm.errors import UserError
from rnnlm.runs import load_model
from rnnlm.sample import encode_prime
from rnnlm.score import LN2, SentenceScore, format_scores, score_sentences
from rnnlm.train import train

from test_train import tiny

PAIR = ["O homem que usava uma peruca entrou no bar.", "O homem que usava uma peruca entraram no bar."]


@pytest.fixture(scope="module")
def run(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("score") / "r"
    train(tiny(text, out, max_steps=6, cell="gru"))
    return out


def test_each_tokens_log_probability_is_the_models_cross_entropy_at_that_token(run):
    model, vocab, _, _ = load_model(run)
    (sc,) = score_sentences(model, vocab, ["A casa era grande, e o jardim também."])
    _, ids, _ = encode_prime("A casa era grande, e o jardim também.", vocab)
    inputs = np.array([vocab.eos_id, *ids[:-1]], dtype=np.int64)[:, None]     # (T, 1): <eos>, then the tokens
    targets = np.asarray(ids, dtype=np.int64)[:, None]
    for t in range(len(ids)):           # the loss at position t alone (weights pick it): -log p(token_t | ...)
        w = np.zeros(targets.shape, np.float32)
        w[t] = 1.0
        loss, _ = model.loss(inputs, targets, weights=w)
        assert sc.logprobs[t] == pytest.approx(-loss, rel=1e-5, abs=1e-5)
    mean, _ = model.loss(inputs, targets)
    assert sc.total == pytest.approx(-mean * len(ids), rel=1e-5)
    assert sc.perplexity == pytest.approx(math.exp(mean), rel=1e-5)
    assert sc.tokens[-2:] == [".", "<eos>"] and sc.tokens[0] == "a"


def test_sentences_scored_together_score_as_each_alone(run):
    model, vocab, _, _ = load_model(run)
    texts = PAIR + ["Sim.", "E depois, quando a noite veio, ninguém disse mais nada sobre aquilo"]
    together = score_sentences(model, vocab, texts)
    # (in batches of 3 and 1: the same to float32's roundoff, not bitwise: OpenBLAS picks its kernel's edge
    # handling by the number of rows, which on an AMD EPYC moved one log-probability by 5e-7 of itself)
    for sc, by3 in zip(together, score_sentences(model, vocab, texts, batch_size=3)):
        np.testing.assert_allclose(by3.logprobs, sc.logprobs, rtol=1e-6, atol=1e-6)
    for sc, text in zip(together, texts):
        (alone,) = score_sentences(model, vocab, [text])
        np.testing.assert_allclose(sc.logprobs, alone.logprobs, rtol=1e-6, atol=1e-6)
        assert sc.tokens == alone.tokens and sc.text == text
    assert together[3].tokens[-1] == "aquilo"     # no closing mark: no <eos>
    assert "<eos>" not in together[3].tokens and "usava" in together[0].tokens


def test_unknown_words_are_listed_and_scored_as_unk(run):
    model, vocab, _, _ = load_model(run)
    (sc,) = score_sentences(model, vocab, ["O zzyzx chegou."])
    assert sc.unknown == ["zzyzx"] and "zzyzx" in sc.tokens


@pytest.mark.parametrize("sentences, error, line", [
    ("Uma frase.", TypeError, "score_sentences: sentences must be a list of str (one sentence each), got a str: "
                              "wrap it in a list"),
    (["Uma frase.", 3], TypeError, "score_sentences: sentences must be a list of str (one sentence each), got int "
                                   "in it"),
    (["Uma frase.", "   "], UserError, "sentence 2 ('   ') has no words to score"),
])
def test_bad_sentences_are_one_line(run, sentences, error, line):
    model, vocab, _, _ = load_model(run)
    with pytest.raises(error) as raised:
        score_sentences(model, vocab, sentences)
    assert str(raised.value) == line


def test_the_report_ranks_a_minimal_pair_by_log_probability():
    a = SentenceScore("a b.", ["a", "b", "."], np.log([0.5, 0.25, 0.5]), [])
    b = SentenceScore("a c.", ["a", "c", "."], np.log([0.5, 0.125, 0.5]), ["c"])
    text = format_scores([a, b])
    assert text.splitlines() == [
        "1. a b.",
        f"   log p = {math.log(1 / 16):.2f} nats (-4.00 bits) over 3 tokens; perplexity {16 ** (1 / 3):.1f}",
        "   surprisal (bits): a 1.0  b 2.0  . 1.0",
        "2. a c.",
        f"   log p = {math.log(1 / 32):.2f} nats (-5.00 bits) over 3 tokens; perplexity {32 ** (1 / 3):.1f}",
        "   surprisal (bits): a 1.0  <unk>:c 3.0  . 1.0",
        f"most likely: sentence 1, {math.log(2):.2f} nats above sentence 2 (2 times as likely) (compare with care: "
        "words outside the vocabulary are all the one token <unk>)",
    ]
    assert format_scores([a], per_token=False).splitlines()[1:] == [
        f"   log p = {math.log(1 / 16):.2f} nats (-4.00 bits) over 3 tokens; perplexity {16 ** (1 / 3):.1f}"]


def test_the_score_command_prints_the_report_and_a_tsv(run, capsys, tmp_path):
    assert cli.main(["score", str(run), *PAIR]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines()[0] == f"checkpoint: {run / 'best.npz'}"
    lines = out.splitlines()
    assert lines[0] == "1. " + PAIR[0] and lines[1].startswith("   log p = ") and lines[-1].startswith("most likely")
    model, vocab, _, _ = load_model(run)
    expect = score_sentences(model, vocab, PAIR)
    (tmp_path / "s.txt").write_text(PAIR[1] + "\n\n", encoding="utf-8")
    assert cli.main(["score", str(run), PAIR[0], "--file", str(tmp_path / "s.txt"), "--tsv"]) == 0
    rows = [r.split("\t") for r in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["sentence", "position", "token", "logp_nats", "surprisal_bits", "in_vocabulary"]
    assert len(rows) == 1 + len(expect[0].tokens) + len(expect[1].tokens)
    for row in rows[1:]:
        sc = expect[int(row[0]) - 1]
        j = int(row[1]) - 1
        assert row[2] == sc.tokens[j] and float(row[3]) == pytest.approx(sc.logprobs[j], abs=1e-6)
        assert float(row[4]) == pytest.approx(-sc.logprobs[j] / LN2, abs=1e-6)


@pytest.mark.parametrize("extra, line", [
    ([], "no sentence to score; give sentences as arguments (in quotes) or --file FILE with one per line"),
    (["x.", "--file", "nowhere.txt"], "--file nowhere.txt does not exist; give a UTF-8 text file with one sentence "
                                      "per line"),
    (["x.", "--tsv", "--totals"], "--tsv prints every token and --totals only each sentence's sum; give one of them"),
    (["x.", " "], "sentence 2 is empty; give each sentence as a non-empty argument in quotes"),
])
def test_the_score_commands_mistakes_are_one_line(run, capsys, monkeypatch, tmp_path, extra, line):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["score", str(run), *extra]) == 2
    assert capsys.readouterr().err == f"error: {line}\n"


def test_a_stop_in_score_says_nothing_was_lost(monkeypatch, capsys):
    from test_s34_stops import _stopping
    _stopping(monkeypatch, "score", KeyboardInterrupt())
    assert cli.main(["score", "runs/x", "Uma frase."]) == 130
    assert capsys.readouterr().err == ("interrupted: score writes no files, so nothing was lost; run it again for "
                                       "its result\n")


def test_a_diverged_model_is_one_line(run):
    model, vocab, _, _ = load_model(run)
    model.params["decoder.bias"][:] = np.nan
    with pytest.raises(UserError, match=r"^sentence 1: the model gave a log-probability that is not finite; is the "
                                        r"checkpoint diverged\?$"):
        score_sentences(model, vocab, ["Uma frase."])


def test_score_reads_standard_input_as_it_reads_a_file(run, capsys, monkeypatch):
    import io
    import sys
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(PAIR[0].encode() + b"\n")))
    assert cli.main(["score", str(run), "--file", "-", "--totals"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "1. " + PAIR[0]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("Uma ca\u00e7a.".encode("latin-1"))))
    with pytest.warns(UserWarning, match=r"^standard input is not UTF-8; read it as cp1252$"):
        assert cli.main(["score", str(run), "--file", "-", "--totals"]) == 0      # (as a cp1252 --file is read)
    assert capsys.readouterr().out.splitlines()[0] == "1. Uma ca\u00e7a."
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(bytes(range(256)) * 4)))
    assert cli.main(["score", str(run), "--file", "-"]) == 2
    assert capsys.readouterr().err == ("error: standard input looks binary (it contains NUL bytes); give a plain "
                                       "text file\n")
    assert cli.main(["score", str(run), "ca\udce7a"]) == 2
    assert capsys.readouterr().err.startswith("error: sentence 1 is not valid UTF-8 (bytes \\xe7); give the text")


def test_sentences_may_come_after_the_flags_and_after_a_double_dash(run, capsys):
    assert cli.main(["score", str(run), "--totals", PAIR[0], PAIR[1]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1. " + PAIR[0] and lines[2] == "2. " + PAIR[1] and len(lines) == 5
    assert cli.main(["score", str(run), PAIR[0], "--totals", "--", "-se foi."]) == 0
    assert capsys.readouterr().out.splitlines()[2] == "2. -se foi."
    assert cli.main(["score", str(run), "--totals", PAIR[0], "--bogus"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_the_tsv_reads_back_row_for_row_with_a_quote_token(run, capsys):
    import csv
    import io
    assert cli.main(["score", str(run), 'Ele disse "sim" e saiu.', "--tsv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out), delimiter="\t"))
    model, vocab, _, _ = load_model(run)
    (sc,) = score_sentences(model, vocab, ['Ele disse "sim" e saiu.'])
    assert [r[2] for r in rows[1:]] == sc.tokens and '"' in sc.tokens


def test_score_sentences_takes_a_generator_and_refuses_an_unordered_collection(run):
    model, vocab, _, _ = load_model(run)
    assert len(score_sentences(model, vocab, (s for s in PAIR))) == 2
    with pytest.raises(TypeError, match=r"got a set, whose order is not the sentences' \(give a list\)$"):
        score_sentences(model, vocab, set(PAIR))
    with pytest.raises(TypeError, match=r"got NoneType$"):
        score_sentences(model, vocab, None)


def test_a_huge_perplexity_is_inf_and_the_report_caveats_length_and_unknown_words():
    huge = SentenceScore("a.", ["a", "."], np.array([-800.0, -900.0]), [])
    assert huge.perplexity == math.inf
    short = SentenceScore("b", ["zz"], np.array([-2.0]), ["zz"])
    text = format_scores([huge, short], per_token=False)
    assert "perplexity inf" in text
    assert text.splitlines()[-1] == (
        "most likely: sentence 2, 1698.00 nats above sentence 1 (1.01e+304 times as likely) (compare with care: "
        "they differ in length (1, 2 tokens): a longer sentence has more to pay; words outside the vocabulary "
        "are all the one token <unk>)")
    many = [SentenceScore(f"s{i}", [f"w{i}"], np.array([-float(i + 1)]), []) for i in range(12)]
    assert format_scores(many, per_token=False).splitlines()[-1].endswith("; ranked: 1, 2, 3, 4, 5, 6, 7, 8, 9, "
                                                                           "10, ...")


def test_score_reads_a_pipe_given_as_a_file(run, capsys, tmp_path):
    import os
    import threading
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(PAIR[0] + "\n", encoding="utf-8"))
    writer.start()
    assert cli.main(["score", str(run), "--file", str(fifo), "--totals"]) == 0
    writer.join()
    assert capsys.readouterr().out.splitlines()[0] == "1. " + PAIR[0]


def test_sentences_the_model_reads_as_the_same_tokens_have_no_single_most_likely():
    a = SentenceScore("a zzyzx.", ["a", "zzyzx", "."], np.log([0.5, 0.25, 0.5]), ["zzyzx"])
    b = SentenceScore("a qwxy.", ["a", "qwxy", "."], np.log([0.5, 0.25, 0.5]), ["qwxy"])
    c = SentenceScore("a b.", ["a", "b", "."], np.log([0.5, 0.125, 0.5]), [])
    assert format_scores([c, a, b], per_token=False).splitlines()[-1] == (
        f"no single most likely: sentences 2 and 3 are the same tokens to the model (words outside the "
        f"vocabulary are all the one token <unk>), log p {math.log(1 / 16):.2f} nats each; ranked: 2 = 3, 1")
    assert format_scores([c, c], per_token=False).splitlines()[-1] == (
        f"no single most likely: sentences 1 and 2 are the same tokens to the model, log p {math.log(1 / 32):.2f} "
        "nats each")
    assert format_scores([a, b, c, a], per_token=False).splitlines()[-1].startswith(
        "no single most likely: sentences 1, 2 and 4 are the same tokens to the model (words outside")


def test_a_files_sentences_are_its_lines_split_at_line_ends_only_and_blank_ones_are_named(run, capsys, tmp_path):
    (tmp_path / "s.txt").write_text("O homem\fentrou.\n\nA mulher\u2028saiu.\n\n\nEle foi.\n\n", encoding="utf-8")
    assert cli.main(["score", str(run), "--file", str(tmp_path / "s.txt"), "--totals"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines()[0] == "note: --file: blank lines 2, 4-5 skipped; the sentences are numbered without them"
    assert [x for x in out.splitlines() if x[:1].isdigit()] == ["1. O homem entrou.", "2. A mulher saiu.",
                                                                "3. Ele foi."]
