"""The Python API and the CLI name the same mistakes each in its own words.

1. The jacobian and probe functions name their Python arguments ("lag_curve: max_lag=9 ..."), the commands
   their flags ("--max-lag 20 ..."); lag_curve asked for more anchors than the tokens hold warns
   (FewerAnchorsWarning) instead of capping them silently, and the jacobian command says it once, in flags.
2. lag_jacobians and gradient_rows check their arguments: one line naming the one at fault, not an
   IndexError deep inside (or, for anchors before max_lag, a silently wrong answer).
3. generate refuses a --num-samples or --words that cannot fit in memory up front, in one line, status 2.

Tiny float64 models (H = 5) and one untrained GRU run folder (H = 8): the file runs in seconds.
"""
import re
import warnings

import numpy as np
import pytest

from rnnlm import jacobian as jac
from rnnlm import probes as P
from rnnlm.errors import UserError
from rnnlm.model import ModelConfig, RNNModel

V, E, H = 11, 4, 5


def make_model(cell="rnn", layers=1, seed=0):
    cfg = ModelConfig(vocab_size=V, cell=cell, emsize=E, hidden=H, layers=layers, dropout=0.0, dtype="float64")
    return RNNModel(cfg, seed=seed)


def tokens(seed=0, n=16):
    return np.random.default_rng(seed).integers(0, V, n)


# the jacobian command on a fresh model and random tokens, as small as it goes
FRESH = ["jacobian", "--init", "--cell", "rnn", "--hidden", "5", "--emsize", "4", "--corpus", "none",
         "--vocab-size", "50", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An untrained GRU saved like a training run, on a small sintetico text."""
    from saved_runs import untrained_gru_run
    return untrained_gru_run(tmp_path_factory.mktemp("s29_run"), 300, 8)


def _cli(argv, capsys):
    from rnnlm.cli import main
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


# ---------------------------------------------------------------- 1. Python names from Python, flags from the CLI


def test_lag_curve_too_few_tokens_names_max_lag_not_the_flag():
    with pytest.raises(UserError) as info:
        jac.lag_curve(make_model(), tokens(0, 10), 9, 4)
    assert str(info.value) == ("lag_curve: max_lag=9 needs at least max_lag + 2 = 11 tokens, got 10: "
                               "pass more tokens or a smaller max_lag")


def test_pick_anchors_names_its_own_arguments():
    with pytest.raises(UserError, match=r"^pick_anchors: max_lag=20 needs at least max_lag \+ 2 = 22 tokens, got 16"):
        jac.pick_anchors(16, 20, 4, np.random.default_rng(0))


def test_lag_curve_warns_when_it_measures_fewer_anchors_than_asked():
    with pytest.warns(jac.FewerAnchorsWarning) as caught:
        doc = jac.lag_curve(make_model(), tokens(), 10, 40, np.random.default_rng(0), per_step=False)
    assert [str(w.message) for w in caught] == [
        "lag_curve: anchors=40, but 16 tokens hold only 6 anchor positions for max_lag=10 (t from 10 to 15); "
        "measuring at all 6 (more tokens, or a smaller max_lag, gives more)"]
    assert caught[0].filename == __file__                  # it points at the caller's line
    assert issubclass(jac.FewerAnchorsWarning, UserWarning)
    assert doc["meta"]["anchors"] == 6


def test_lag_curve_with_room_for_every_anchor_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        doc = jac.lag_curve(make_model(), tokens(), 10, 6, np.random.default_rng(0), per_step=False)
    assert doc["meta"]["anchors"] == 6


def test_the_jacobian_command_names_its_flags_for_too_few_tokens(tmp_path, capsys):
    status, out, err = _cli([*FRESH, "--tokens", "10", "--max-lag", "20", "--out", tmp_path / "j.json"], capsys)
    assert status == 2 and out == ""
    assert err == ["error: --max-lag 20 needs at least --max-lag + 2 = 22 tokens, the text read has 10: "
                   "use a larger --tokens or a smaller --max-lag"]
    assert not (tmp_path / "j.json").exists()


def test_the_jacobian_command_says_fewer_anchors_once_in_flags(tmp_path, capsys):
    status, _, err = _cli([*FRESH, "--tokens", "40", "--max-lag", "10", "--anchors", "100",
                           "--out", tmp_path / "j.json"], capsys)
    assert status == 0
    assert err == ["note: --anchors 100: the 40 tokens read hold only 30 anchor positions (t from --max-lag 10 to "
                   "39); measuring at all 30 (a larger --tokens, or a smaller --max-lag, gives more)"]


@pytest.mark.parametrize("text, python, cli", [
    ("5..1", "parse_distances: '5..1' runs backwards; give the smaller end first (1..5)",
     "--distances 5..1 runs backwards; give the smaller end first (1..5)"),
    ("1..10:0", "parse_distances: '1..10:0': the step must be at least 1", "--distances 1..10:0: the step must be at least 1"),
    ("a..b", "parse_distances: text must look like 1..40, 1..40:5 or 1,2,5,10; got 'a..b'",
     "--distances must look like 1..40, 1..40:5 or 1,2,5,10; got 'a..b'"),
    ("0..3", "parse_distances: text must give distances that are integers >= 1; got '0..3'",
     "--distances must give distances that are integers >= 1; got '0..3'"),
])
def test_parse_distances_names_text_from_python_and_the_flag_for_the_commands(text, python, cli):
    with pytest.raises(ValueError) as info:         # a Python caller's bad argument (a UserError before)
        P.parse_distances(text)
    assert str(info.value) == python
    with pytest.raises(UserError) as info:
        P.parse_distances(text, flags=True)
    assert str(info.value) == cli


STREAM = np.arange(100) % 7


@pytest.mark.parametrize("kw, exc, python, cli", [
    (dict(distances=[1, 50], window=50), ValueError,
     "context_usage: every distance must be >= 1 and below window=50; got 50",
     "--distances: every distance must be >= 1 and below --window 50; got 50 (give a larger --window, or smaller "
     "--distances)"),
    (dict(mode="jumble"), ValueError, "context_usage: mode must be one of shuffle, replace, drop, got 'jumble'",
     "--mode must be one of shuffle, replace, drop, got 'jumble'"),
    (dict(n_tokens=20), UserError,      # the data too short for the call: a UserError from Python too
     "context_usage: stream has 20 tokens; the context probe needs more than window=20: pass a "
     "longer stream or a smaller window",
     "the text has 20 tokens; the context probe needs more than --window 20: use a smaller --window"),
    (dict(n_targets=0), ValueError, "context_usage: n_targets must be an integer >= 1, got 0",
     "--n-targets must be an integer >= 1, got 0"),
    (dict(distances=[]), ValueError, "context_usage: distances is empty; give at least one distance",
     "--distances is empty; give at least one distance"),
])
def test_context_checks_name_arguments_from_python_and_flags_for_the_command(kw, exc, python, cli):
    args = dict(n_tokens=100, distances=[1, 2], mode="shuffle", window=20, n_targets=5)
    args.update(kw)
    with pytest.raises(exc) as info:
        P.check_context_args(**args)
    assert str(info.value) == python
    with pytest.raises(UserError) as info:
        P.check_context_args(**args, flags=True)
    assert str(info.value) == cli


def test_context_usage_itself_names_its_arguments():
    """Refused before the model is touched (None here) or a stream is drawn from."""
    with pytest.raises(ValueError) as info:
        P.context_usage(None, STREAM, [1, 50], "shuffle", window=50, vocab_size=7)
    assert str(info.value) == "context_usage: every distance must be >= 1 and below window=50; got 50"
    with pytest.raises(UserError) as info:                 # was "... use --window smaller"
        P.context_usage(None, STREAM[:20], [1], "shuffle", window=20, vocab_size=7)
    assert str(info.value) == ("context_usage: stream has 20 tokens; the context probe needs more than window=20: "
                               "pass a longer stream or a smaller window")


def test_probe_functions_name_their_python_arguments():
    with pytest.raises(ValueError) as info:
        P.perturb(np.arange(5), 2, "jumble", np.random.default_rng(0), 5)
    assert str(info.value) == "perturb: mode must be one of shuffle, replace, drop, got 'jumble'"
    with pytest.raises(ValueError) as info:
        P.find_probe_results([], "bogus")
    assert str(info.value) == "find_probe_results: kind must be 'agreement' or 'context', got 'bogus'"
    with pytest.raises(ValueError) as info:                # was "no agreement pair could be made from this vocabulary"
        P.agreement_probe(lambda p, c: np.zeros(len(p)), {}, [1, 2], 0)
    assert str(info.value) == "agreement_probe: n_per_distance must be an int >= 1, got 0"
    with pytest.raises(ValueError) as info:
        P.agreement_probe(lambda p, c: np.zeros(len(p)), {}, [0, 2], 5)
    assert str(info.value) == "agreement_probe: distances must be integers >= 1, got [0, 2]"
    with pytest.raises(ValueError) as info:                # was range()'s "arg 3 must not be zero"
        P.final_logprobs(None, [[1, 2]], [[0]], batch_size=0)
    assert str(info.value) == "final_logprobs: batch_size must be an int >= 1, got 0"


def test_the_probe_context_command_names_its_flags(tiny_run, tmp_path, capsys):
    status, _, err = _cli(["probe", "context", tiny_run, "--window", "100000", "--distances", "1,2",
                           "--out", tmp_path / "c.json"], capsys)
    assert status == 2
    assert len(err) == 1 and re.fullmatch(r"error: the text has [\d,]+ tokens; the context probe needs more than "
                                          r"--window 100000: use a smaller --window", err[0]), err
    status, _, err = _cli(["probe", "context", tiny_run, "--window", "10", "--distances", "1,12",
                           "--out", tmp_path / "c.json"], capsys)
    assert status == 2
    assert err == ["error: --distances: every distance must be >= 1 and below --window 10; got 12 (give a larger "
                   "--window, or smaller --distances)"]


def test_the_probe_agreement_command_names_its_flag(tiny_run, tmp_path, capsys):
    status, _, err = _cli(["probe", "agreement", tiny_run, "--distances", "5..1", "--out", tmp_path / "a.json"], capsys)
    assert status == 2
    assert err == ["error: --distances 5..1 runs backwards; give the smaller end first (1..5)"]


# ---------------------------------------------------------------- 2. lag_jacobians and gradient_rows check their arguments


GOOD = dict(tokens=tokens(), anchors=np.array([5, 9]), max_lag=4)


@pytest.mark.parametrize("fn", ["lag_jacobians", "gradient_rows"])
@pytest.mark.parametrize("kw, exc, message", [
    (dict(anchors=8), TypeError, "anchors must be a 1-D array of 1-based anchor steps t with max_lag <= t <= N-1 "
                                 "(4 to 15 here), not a count as lag_curve's anchors; got 8 "
                                 "(pick_anchors(len(tokens), max_lag, 8, rng) picks that many)"),
    (dict(anchors=[1, 9]), ValueError, "anchors must be 1-based anchor steps t with max_lag <= t <= N-1 "
                                       "(4 to 15 here), got 1"),
    (dict(anchors=[5, 16]), ValueError, "anchors must be 1-based anchor steps t with max_lag <= t <= N-1 "
                                        "(4 to 15 here), got 16"),
    (dict(anchors=[-3]), ValueError, "anchors must be 1-based anchor steps t with max_lag <= t <= N-1 "
                                     "(4 to 15 here), got -3"),
    (dict(anchors=np.array([5.0, 9.0])), TypeError, "anchors must be a 1-D array of integer 1-based anchor steps t "
                                                    "with max_lag <= t <= N-1 (4 to 15 here), got dtype float64"),
    (dict(anchors=np.array([[5, 9]])), ValueError, "anchors must be a 1-D array of 1-based anchor steps t with "
                                                   "max_lag <= t <= N-1 (4 to 15 here), got shape (1, 2)"),
    (dict(anchors=[]), ValueError, "anchors is empty; give at least one of the 1-based anchor steps t with "
                                   "max_lag <= t <= N-1 (4 to 15 here)"),
    (dict(max_lag=0), ValueError, "max_lag must be at least 1, got 0"),
    (dict(max_lag=-2), ValueError, "max_lag must be at least 1, got -2"),
    (dict(max_lag=2.0), TypeError, "max_lag must be an int, got 2.0 (float)"),
    (dict(max_lag=20), UserError, "max_lag=20 needs at least max_lag + 2 = 22 tokens, got 16: pass more tokens or "
                                  "a smaller max_lag"),
    (dict(tokens=tokens() + V), ValueError, "tokens must be ids in [0, 10] (the model's vocabulary), got 20"),
    (dict(tokens=tokens().astype(float)), TypeError, "tokens must be integer token ids, got dtype float64"),
    (dict(tokens=tokens().reshape(2, 8)), ValueError, "tokens must be 1-D (one sequence), got shape (2, 8)"),
    (dict(scope="stacked"), ValueError, "scope must be one of layer0 for a 1-layer model, got 'stacked'"),
    (dict(scope="layer1"), ValueError, "scope must be one of layer0 for a 1-layer model, got 'layer1'"),
    (dict(model=object()), TypeError, "model must have .config and .params (an RNNModel), got object"),
])
def test_lag_jacobians_and_gradient_rows_refuse_bad_arguments_by_name(fn, kw, exc, message):
    args = dict(model=make_model(), **GOOD, scope="layer0")
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(exc) as info:
            getattr(jac, fn)(**args)
    assert str(info.value).startswith(f"{fn}: "), str(info.value)
    assert message in str(info.value)


def test_lag_jacobians_refuses_a_quantity_the_cell_has_not():
    with pytest.raises(ValueError) as info:
        jac.lag_jacobians(make_model("rnn"), **GOOD, quantity="c")
    assert str(info.value) == "lag_jacobians: quantity must be one of h for a rnn model, got 'c'"
    assert jac.lag_jacobians(make_model("lstm"), **GOOD, quantity="c").shape == (4, 2, H, H)


def test_a_model_of_the_wrong_kind_is_one_line():
    from types import SimpleNamespace
    params = make_model().params
    other = SimpleNamespace(config=SimpleNamespace(cell="transformer", layers=1, hidden=H), params=params)
    with pytest.raises(ValueError) as info:
        jac.lag_jacobians(other, **GOOD)
    assert str(info.value) == ("lag_jacobians: model must be a recurrent model with cell rnn, lstm, gru, got cell "
                               "'transformer' (SimpleNamespace)")
    partial = SimpleNamespace(config=make_model().config,
                              params={k: v for k, v in params.items() if k != "rnn.weight_hh_l0"})
    with pytest.raises(ValueError) as info:               # was KeyError: 'rnn.weight_hh_l0'
        jac.gradient_rows(partial, **GOOD)
    assert str(info.value) == "gradient_rows: model.params lacks rnn.weight_hh_l0 (PyTorch names, as RNNModel.params)"


def test_gradient_rows_of_a_stacked_model_needs_the_stacked_scope():
    model = make_model("lstm", layers=2)
    with pytest.raises(ValueError) as info:               # was TypeError: 'NoneType' object is not subscriptable
        jac.gradient_rows(model, tokens(), [6, 9], 3, "layer0")
    assert str(info.value) == ("gradient_rows: a 2-layer model's gradient rows (flows of every layer and of the "
                               "stack) come from scope 'stacked'; scope 'layer0' is one layer's Jacobian alone, with "
                               "the layers above held fixed")
    rows = jac.gradient_rows(model, tokens(), [6, 9], 3, "stacked")
    assert {k: v.shape for k, v in rows.items()} == {"layer0": (3, 2, H), "layer1": (3, 2, H), "stacked": (3, 2, 2 * H)}


def test_valid_arguments_still_give_the_same_jacobians():
    """A list of numpy ints as anchors and a numpy int max_lag are taken, and give lag_curve's anchors' J."""
    model = make_model("gru")
    anchors = jac.pick_anchors(16, 4, 3, np.random.default_rng(0))
    a = jac.lag_jacobians(model, tokens(), anchors, np.int64(4))
    b = jac.lag_jacobians(model, tokens().astype(np.int32), list(anchors), 4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 3, H, H)


# ---------------------------------------------------------------- 3. generate refuses counts that cannot fit


def test_generate_refuses_zero_or_negative_samples_and_words(tiny_run, capsys):
    for argv, line in ((["--num-samples", "0"], "error: --num-samples must be at least 1, got 0"),
                       (["--num-samples", "-3"], "error: --num-samples must be at least 1, got -3"),
                       (["--words", "-1"], "error: --words must be at least 0, got -1"),
                       (["--words", "0"], "error: --words 0 with no --prime has nothing to print; give --words 1 or "
                                          "more (with a --prime, --words 0 prints the prime alone)"),
                       (["--prime", "   "],
                        "error: --prime is blank; give it some words, or leave it out to start from a sentence end")):
        status, out, err = _cli(["generate", tiny_run, *argv], capsys)
        assert (status, out, err) == (2, "", [line])


def test_generate_with_no_words_prints_the_prime_alone(tiny_run, capsys):
    status, out, err = _cli(["generate", tiny_run, "--words", "0", "--prime", "O homem que"], capsys)
    assert status == 0 and out.strip() == "O homem que"


def test_sampling_bytes_counts_the_batch_and_the_text():
    from rnnlm.sample import sampling_bytes
    # per sample: 64 V + 64 L H + 1 KiB + 80 a word
    assert sampling_bytes(10000, 100, 1000, layers=1, hidden=256) == 1000 * (640000 + 16384 + 1024 + 8000)


@pytest.fixture
def memory_8gib(monkeypatch):
    monkeypatch.setattr("rnnlm.config.physical_memory", lambda: 8 * 2**30)


def test_generate_refuses_a_billion_samples_in_one_line(tiny_run, capsys, memory_8gib):
    status, out, err = _cli(["generate", tiny_run, "--num-samples", str(10**9)], capsys)
    assert status == 2 and out == ""
    assert len(err) == 1, err                              # not even the "checkpoint:" line first
    assert re.fullmatch(r"error: --num-samples 1,000,000,000 of --words 100 needs about [\d.]+ TiB of memory \(the "
                        r"samples are drawn together, each from a [\d,]+-word vocabulary\), more than this machine's "
                        r"8\.0 GiB; give fewer --num-samples or --words \(or draw them in several runs, each with "
                        r"its own --seed\)", err[0]), err


def test_generate_refuses_two_billion_words_in_one_line(tiny_run, capsys, memory_8gib):
    status, out, err = _cli(["generate", tiny_run, "--words", str(2 * 10**9)], capsys)
    assert status == 2 and out == ""
    assert len(err) == 1 and re.fullmatch(r"error: --words 2,000,000,000 needs about [\d.]+ GiB of memory \(the text "
                                          r"drawn is kept\), more than this machine's 8\.0 GiB; give fewer --words",
                                          err[0]), err


def test_generate_text_refuses_it_too_and_small_counts_still_run(tiny_run, memory_8gib):
    from rnnlm.runs import load_model
    from rnnlm.sample import generate_text
    model, vocab, _, _ = load_model(tiny_run, "best")
    with pytest.raises(UserError, match=r"^--num-samples 1,000,000,000 of --words 5 needs about"):
        generate_text(model, vocab, words=5, num_samples=10**9)
    texts = generate_text(model, vocab, words=3, num_samples=2)
    assert len(texts) == 2
