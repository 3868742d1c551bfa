"""Sampling filters on known distributions, and generation from a tiny trained model."""
import os

import numpy as np
import pytest

from rnnlm import runs
from rnnlm.cli import main
from rnnlm.data import DataConfig
from rnnlm.errors import UserError
from rnnlm.model import ModelConfig
from rnnlm.sample import draw, encode_prime, generate_text, next_token_probs, sample_ids
from rnnlm.train import TrainConfig, train

P = np.log(np.array([[0.1, 0.4, 0.2, 0.3]]))


def test_temperature_zero_is_greedy_and_one_is_identity():
    np.testing.assert_array_equal(next_token_probs(P, temperature=0), [[0, 1, 0, 0]])
    np.testing.assert_allclose(next_token_probs(P), [[0.1, 0.4, 0.2, 0.3]])


def test_temperature_sharpens_and_flattens():
    # p^(1/T) renormalized: T = 0.5 squares the probabilities.
    sq = np.array([0.01, 0.16, 0.04, 0.09])
    np.testing.assert_allclose(next_token_probs(P, temperature=0.5), [sq / sq.sum()])
    flat = next_token_probs(P, temperature=100.0)
    assert flat.max() - flat.min() < 0.01


def test_top_k_and_top_p():
    np.testing.assert_allclose(next_token_probs(P, top_k=2), [[0, 0.4 / 0.7, 0, 0.3 / 0.7]])
    # Sorted: 0.4, 0.3, 0.2, 0.1. top_p 0.5: 0.4 < 0.5 so 0.3 (which crosses it) stays too.
    np.testing.assert_allclose(next_token_probs(P, top_p=0.5), [[0, 0.4 / 0.7, 0, 0.3 / 0.7]])
    np.testing.assert_allclose(next_token_probs(P, top_p=0.4), [[0, 1, 0, 0]])
    np.testing.assert_allclose(next_token_probs(P, top_p=0.75), [[0, 0.4 / 0.9, 0.2 / 0.9, 0.3 / 0.9]])


def test_banned_tokens_get_zero_probability():
    p = next_token_probs(P, banned=(1,))
    np.testing.assert_allclose(p, [[0.1 / 0.6, 0, 0.2 / 0.6, 0.3 / 0.6]])
    assert next_token_probs(P, temperature=0, banned=(1,)).argmax() == 3


def test_bad_filter_values_refused():
    with pytest.raises(UserError):
        next_token_probs(P, top_p=0)
    with pytest.raises(UserError):
        next_token_probs(P, temperature=-1)


def test_draw_follows_the_distribution_and_the_seed():
    probs = np.tile([[0.0, 0.25, 0.0, 0.75]], (4000, 1))
    ids = draw(probs, np.random.default_rng(0))
    assert set(ids.tolist()) == {1, 3}
    assert abs((ids == 3).mean() - 0.75) < 0.03
    np.testing.assert_array_equal(ids, draw(probs, np.random.default_rng(0)))


@pytest.fixture(scope="module")
def run(machado_dir, tmp_path_factory):
    old = os.environ.get("RNNLM_CACHE")
    os.environ["RNNLM_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    out = tmp_path_factory.mktemp("runs") / "gen"
    # A vocabulary of 60 words makes <unk> the most frequent token: masking it is then visible.
    train(TrainConfig(data=DataConfig(corpus=str(machado_dir / "txt" / "crônica" / "velhoSenado.txt"),
                                      max_vocab=60, valid_fraction=0.1, test_fraction=0.1),
                      model=ModelConfig(emsize=16, hidden=16, dropout=0.0), bptt=8, batch_size=16, eval_batch_size=4,
                      epochs=1, max_minutes=0, progress=False, sample_words=0, out=str(out)))
    yield out
    if old is None:
        os.environ.pop("RNNLM_CACHE", None)
    else:
        os.environ["RNNLM_CACHE"] = old


def test_same_seed_same_text(run):
    model, vocab, _, _ = runs.load_model(run)
    a = generate_text(model, vocab, words=30, seed=5, num_samples=2)
    b = generate_text(model, vocab, words=30, seed=5, num_samples=2)
    c = generate_text(model, vocab, words=30, seed=6, num_samples=2)
    assert a == b and a != c and len(a) == 2 and a[0] != a[1]


def test_unk_is_masked_unless_allowed(run):
    model, vocab, _, _ = runs.load_model(run)
    kw = dict(eos_id=vocab.eos_id, num_samples=8)
    masked = sample_ids(model, [], 50, np.random.default_rng(0), banned=(vocab.unk_id,), **kw)
    assert not (masked == vocab.unk_id).any()
    free = sample_ids(model, [], 50, np.random.default_rng(0), **kw)
    assert (free == vocab.unk_id).sum() >= 3


def test_prime_comes_first_and_unknown_words_are_reported(run):
    model, vocab, _, _ = runs.load_model(run)
    tokens, ids, unknown = encode_prime("O senado xyzzyq", vocab)
    assert tokens == ["o", "senado", "xyzzyq"] and unknown == ["xyzzyq"] and ids[2] == vocab.unk_id
    unknown_out = []
    text = generate_text(model, vocab, words=5, prime="O senado xyzzyq", seed=1, unknown_out=unknown_out)[0]
    assert text.startswith("O senado xyzzyq") and unknown_out == ["xyzzyq"]
    # A prime that ends a sentence keeps its <eos>; one that does not is continued mid-sentence.
    assert encode_prime("Era velho.", vocab)[0][-1] == "<eos>"


def test_generate_command(run, capsys):
    argv = ["generate", str(run), "--prime", "O senado xyzzyq", "--words", "12", "--seed", "3",
            "--top-k", "20", "--temperature", "0.8"]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert first.out.startswith("O senado xyzzyq") and "xyzzyq" in first.err
    assert main(argv) == 0
    assert capsys.readouterr().out == first.out
    assert main(["generate", str(run / "nothing")]) == 2


# ---------------------------------------------------------------- --words counts words, not <eos> or punctuation


def test_words_counts_words_only_and_sentence_ends_are_line_breaks(run):
    from rnnlm import sample
    from rnnlm.tokenize import detokenize
    model, vocab, _, _ = runs.load_model(run)
    kw = dict(temperature=1.0, top_k=0, top_p=1.0, banned=(vocab.unk_id,), num_samples=4)
    rows = sample.sample_words(model, [], 30, np.random.default_rng(5), vocab=vocab, **kw)
    drawn = sample_ids(model, [], max(len(r) for r in rows), np.random.default_rng(5), eos_id=vocab.eos_id, **kw)
    texts = generate_text(model, vocab, words=30, seed=5, num_samples=4)
    eos_seen = 0
    for row, full, text in zip(rows, drawn, texts):
        tokens = vocab.decode(row)
        assert sum(map(sample.is_word, tokens)) == 30 and sample.is_word(tokens[-1])   # ends at the 30th word
        np.testing.assert_array_equal(row, full[:len(row)])        # the same draws, cut at the 30th word
        eos_seen += tokens.count("<eos>")
        assert len(row) > 30 or "<eos>" not in tokens             # what is not a word comes on top
        assert "<eos>" not in text and text == detokenize(tokens, capitalize=True, sentence_sep="\n")
    assert eos_seen >= 3 and sum(t.count("\n") for t in texts) >= 1    # sentence ends drawn, shown as line breaks
    assert sample.is_word("-lhe") and sample.is_word("1890") and not sample.is_word("...") \
        and not sample.is_word("—") and not sample.is_word("<eos>")


class _OnlyCommas:
    """A model whose every next token is ',' (id 2): it never draws a word."""

    def init_state(self, M):
        return None

    def step_logprobs(self, tok, state):
        logp = np.full((len(tok), 4), -np.inf)
        logp[:, 2] = 0.0
        return logp, state


def test_a_model_that_draws_no_word_is_cut_after_a_bounded_number_of_draws():
    from rnnlm import sample
    from rnnlm.vocab import Vocab
    vocab = Vocab(["<unk>", "<eos>", ",", "casa"])
    (row,) = sample.sample_words(_OnlyCommas(), [], 5, np.random.default_rng(0), vocab=vocab)
    assert len(row) == sample.MAX_DRAWS_PER_WORD * 5 + sample.MAX_DRAWS_EXTRA and set(row.tolist()) == {2}
    assert generate_text(_OnlyCommas(), vocab, words=0) == [""]


def test_generate_help_says_what_words_counts(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "words to generate after the prime, counting tokens with a letter or digit; punctuation marks and " \
           "sentence ends (<eos>, printed as line breaks) are not counted" in help_text


# ---------------------------------------------------------------- generate streams its text; a stop keeps it


class _Counting:
    """A model that counts its steps and raises `error` at step `stop` (a Ctrl-C or SIGTERM mid-sample)."""

    def __init__(self, model, stop=None, error=KeyboardInterrupt):
        self.model, self.steps, self.stop, self.error = model, 0, stop, error

    def init_state(self, M):
        return self.model.init_state(M)

    def step_logprobs(self, tok, state):
        self.steps += 1
        if self.stop is not None and self.steps >= self.stop:
            raise self.error()
        return self.model.step_logprobs(tok, state)


def _serve(monkeypatch, model, vocab, info=None, path="m.npz"):
    """generate reads `model` whatever run it is given."""
    monkeypatch.setattr(runs, "load_model", lambda *a, **k: (model, vocab, info or {}, path))


def test_a_text_stream_gives_generate_texts_piece_by_piece(run):
    from rnnlm.sample import TextStream
    model, vocab, _, _ = runs.load_model(run)
    kw = dict(words=25, prime="O senado", seed=5, num_samples=3, temperature=0.9)
    stream = TextStream(model, vocab, **kw)
    texts, done, pieces = ["", "", ""], [], 0
    for piece in stream:
        assert piece.sample not in done                     # nothing after a sample's last piece
        texts[piece.sample] += piece.text
        pieces += 1
        if piece.done:
            done.append(piece.sample)
        assert stream.text(piece.sample).startswith(texts[piece.sample])   # given text is never taken back
    assert texts == generate_text(model, vocab, **kw) and sorted(done) == [0, 1, 2]
    assert stream.words_drawn.tolist() == [25, 25, 25] and stream.short == [] and pieces >= 3 * 25


def test_generate_prints_the_text_while_it_draws(run, monkeypatch, capsys):
    import io
    import sys
    model, vocab, info, path = runs.load_model(run)
    counting = _Counting(model)

    class Out(io.StringIO):
        flushed = []

        def flush(self):
            self.flushed.append((counting.steps, self.getvalue()))

    out = Out()
    _serve(monkeypatch, counting, vocab, info, path)
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["generate", str(run), "--words", "60", "--seed", "2"]) == 0
    want = generate_text(model, vocab, words=60, seed=2)[0]
    assert out.getvalue() == want + "\n"
    while_drawing = {text for steps, text in out.flushed if steps < counting.steps}
    assert len(while_drawing) >= 50 and all(want.startswith(t) for t in while_drawing)   # about one per word


@pytest.mark.parametrize("samples", [1, 2])
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_stop_while_generating_keeps_the_text_drawn_and_says_so(run, monkeypatch, capsys, signal_name, samples):
    from rnnlm.sample import is_word
    from rnnlm.sweep import Terminated
    from rnnlm.tokenize import detokenize
    model, vocab, info, path = runs.load_model(run)
    error, status, word = ((KeyboardInterrupt, 130, "interrupted") if signal_name == "SIGINT"
                           else (Terminated, 143, "terminated"))
    _serve(monkeypatch, _Counting(model, stop=41, error=error), vocab, info, path)    # step 41: after 40 draws
    argv = ["generate", str(run), "--words", "100000", "--seed", "7", "--num-samples", str(samples)]
    assert main(argv) == status
    out, err = capsys.readouterr()
    rows = sample_ids(model, [], 40, np.random.default_rng(7), eos_id=vocab.eos_id, banned=(vocab.unk_id,),
                      num_samples=samples)
    tokens = [vocab.decode(r) for r in rows]
    assert out == "\n\n".join(detokenize(t, capitalize=True, sentence_sep="\n") for t in tokens) + "\n"
    n = sum(is_word(t) for row in tokens for t in row)
    assert 0 < n <= 40 * samples
    tail = "" if samples == 1 else " (2 samples of 100,000)"
    assert err.splitlines()[-1] == (f"{word} after {n} of {100_000 * samples:,} words{tail}; "
                                    f"the text drawn so far is printed")


@pytest.mark.slow
@pytest.mark.parametrize("signal_name, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_to_a_long_generate_keeps_what_it_printed(run, signal_name, status):
    import re
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    proc = subprocess.Popen([sys.executable, "cli.py", "generate", str(run), "--words", "100000000", "--seed", "4"],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        os.set_blocking(proc.stdout.fileno(), False)
        got, start = b"", time.monotonic()
        while len(got) < 500 and time.monotonic() - start < 240:   # the text comes while it is drawn
            got += proc.stdout.read() or b""
            time.sleep(0.05)
        assert len(got) >= 500, proc.stderr.read().decode()
        proc.send_signal(getattr(signal, signal_name))
        assert proc.wait(timeout=60) == status
    finally:
        proc.kill()
    os.set_blocking(proc.stdout.fileno(), True)
    out, err = (got + proc.stdout.read()).decode(), proc.stderr.read().decode()
    word = "interrupted" if signal_name == "SIGINT" else "terminated"
    m = re.fullmatch(rf"{word} after ([\d,]+) of 100,000,000 words; the text drawn so far is printed", err.splitlines()[-1])
    assert m and "Traceback" not in err, err
    n = int(m.group(1).replace(",", ""))
    model, vocab, _, _ = runs.load_model(run)
    assert out.endswith("\n") and out.startswith(generate_text(model, vocab, words=n, seed=4)[0])


def test_generate_says_when_the_model_drew_fewer_words_than_asked(monkeypatch, capsys):
    from rnnlm.vocab import Vocab
    _serve(monkeypatch, _OnlyCommas(), Vocab(["<unk>", "<eos>", ",", "casa"]))
    assert main(["generate", "m.npz", "--words", "5"]) == 0
    out, err = capsys.readouterr()
    assert out == "," * 150 + "\n"          # the cap: 10 draws per word asked + 100
    assert err.splitlines() == [
        "checkpoint: m.npz",
        "note: printed 0 of the 5 words asked: the model drew 150 tokens, mostly punctuation or sentence ends, the "
        "most generate draws (10 per word asked + 100); a better-trained checkpoint, a lower --temperature or "
        "--top-k may help"]


class _SecondOnlyCommas(_OnlyCommas):
    """Stream 0 draws 'casa' (id 3) every time, stream 1 only ','."""

    def step_logprobs(self, tok, state):
        logp, state = super().step_logprobs(tok, state)
        logp[0] = -np.inf
        logp[0, 3] = 0.0
        return logp, state


def test_generate_names_the_samples_cut_short(monkeypatch, capsys):
    from rnnlm.vocab import Vocab
    _serve(monkeypatch, _SecondOnlyCommas(), Vocab(["<unk>", "<eos>", ",", "casa"]))
    assert main(["generate", "m.npz", "--words", "1", "--num-samples", "2"]) == 0
    out, err = capsys.readouterr()
    assert out == "Casa\n\n" + "," * 110 + "\n"
    assert err.splitlines()[-1].startswith("note: sample 2 holds 0 of the 1 word asked: the model drew 110 tokens")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_generate_into_a_full_disk_is_one_line_that_advises_a_redirection(run, unbuffered):
    import subprocess
    import sys
    from pathlib import Path
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "cli.py", "generate", str(run), "--words", "5"], stdout=full,
                              stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1], timeout=300,
                              env={**os.environ, "PYTHONUNBUFFERED": unbuffered})
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        f"checkpoint: {run / 'best.npz'}",
        "error: No space left on device: standard output (free some space, or redirect the output to a file on "
        "another disk (> FILE))"]
