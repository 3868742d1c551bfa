"""The probe and jacobian functions refuse impossible arguments up front, in one line naming the function and the
argument, instead of truncating, indexing from the end or failing deep inside.

1. context_usage: float ids, ids outside the vocabulary, a stream that is not 1-D, a seed that is negative or
   not an int (and n_boot, vocab_size).
2. perturb's d and rng, bootstrap_mean_interval's rng and n_boot, agreement_probe's feature, final_logprobs's
   empty row, model_scorer's batch_size.
3. holm_adjust's p-values, wilson_interval's and chance_p_value's counts.
4. lag_curve's quantities: an empty list, a string that is not one name.

Tiny float64 models (H = 5): the file runs in seconds.
"""
import math

import numpy as np
import pytest

from rnnlm import jacobian as jac
from rnnlm import probes as P
from rnnlm.model import ModelConfig, RNNModel

V, E, H = 11, 4, 5
STREAM = np.arange(60) % V


def make_model(cell="rnn", seed=0):
    cfg = ModelConfig(vocab_size=V, cell=cell, emsize=E, hidden=H, layers=1, dropout=0.0, dtype="float64")
    return RNNModel(cfg, seed=seed)


def tokens(seed=0, n=16):
    return np.random.default_rng(seed).integers(0, V, n)


def _context(stream=STREAM, **kw):
    args = dict(distances=[1, 2], mode="shuffle", n_targets=5, window=10, n_boot=20)
    args.update(kw)
    return P.context_usage(make_model(), stream, **args)


# ---------------------------------------------------------------- 1. context_usage


@pytest.mark.parametrize("stream, exc, message", [
    (STREAM + 0.7, TypeError,                                      # was truncated to STREAM silently
     "context_usage: stream must be integer token ids, got dtype float64 (ids are not rounded or truncated here: "
     "convert them with .astype(int) if they are whole numbers)"),
    (np.where(STREAM == 3, -1, STREAM), ValueError,                # was read from the end of the vocabulary
     "context_usage: stream must be ids in [0, 10] (the model's vocabulary), got -1"),
    (np.where(STREAM == 3, V, STREAM), ValueError,                 # was an IndexError, or nothing
     "context_usage: stream must be ids in [0, 10] (the model's vocabulary), got 11"),
    (STREAM.reshape(30, 2), ValueError,                            # was "inputs must be ..."
     "context_usage: stream must be 1-D (one sequence), got shape (30, 2)"),
])
def test_context_usage_refuses_a_stream_it_cannot_read(stream, exc, message):
    with pytest.raises(exc) as info:
        _context(stream)
    assert str(info.value) == message


def test_context_usage_checks_ids_against_the_vocab_size_given():
    with pytest.raises(ValueError) as info:
        _context(STREAM, vocab_size=7)
    assert str(info.value) == "context_usage: stream must be ids in [0, 6] (vocab_size=7), got 7"


@pytest.mark.parametrize("kw, exc, message", [
    (dict(seed=-1), ValueError, "context_usage: seed must be an int >= 0, got -1"),   # was numpy's wording
    (dict(seed=1.5), TypeError, "context_usage: seed must be an int >= 0, got 1.5 (float)"),  # was SeedSequence's
    (dict(n_boot=0), ValueError, "context_usage: n_boot must be an int >= 1, got 0"),
    (dict(vocab_size=0), ValueError, "context_usage: vocab_size must be an int >= 1, got 0"),
])
def test_context_usage_refuses_a_bad_seed_and_counts_by_name(kw, exc, message):
    with pytest.raises(exc) as info:
        _context(**kw)
    assert str(info.value) == message


def test_context_usage_without_a_vocab_size_needs_the_models():
    with pytest.raises(TypeError) as info:
        P.context_usage(None, STREAM, [1], window=10)
    assert str(info.value) == ("context_usage: vocab_size is None and the model has no config.vocab_size; "
                               "pass vocab_size")


def test_valid_context_arguments_give_what_they_gave():
    a = _context(STREAM, seed=3)
    b = _context(list(STREAM), seed=np.int64(3), vocab_size=V)
    assert a == b and b["seed"] == 3 and type(b["seed"]) is int


# ---------------------------------------------------------------- 2. the other probe functions


@pytest.mark.parametrize("call, exc, message", [
    (lambda: P.perturb(np.arange(5), -1, "shuffle", np.random.default_rng(0), 5), ValueError,   # was IndexError
     "perturb: d must be an int >= 0, got -1"),
    (lambda: P.perturb(np.arange(5), 1.5, "shuffle", np.random.default_rng(0), 5), TypeError,
     "perturb: d must be an int >= 0, got 1.5 (float)"),
    (lambda: P.perturb(np.arange(5), 2, "shuffle", 0, 5), TypeError,
     "perturb: rng must be a numpy Generator, e.g. np.random.default_rng(0), got 0 (int)"),
    (lambda: P.perturb(np.arange(5), 9, "jumble", np.random.default_rng(0), 5), ValueError,    # d past the start
     "perturb: mode must be one of shuffle, replace, drop, got 'jumble'"),
    (lambda: P.bootstrap_mean_interval(np.ones(4), 0), TypeError,                               # was AttributeError
     "bootstrap_mean_interval: rng must be a numpy Generator, e.g. np.random.default_rng(0), got 0 (int)"),
    (lambda: P.bootstrap_mean_interval(np.ones(4), np.random.default_rng(0), 0), ValueError,  # was IndexError
     "bootstrap_mean_interval: n_boot must be an int >= 1, got 0"),
    (lambda: P.agreement_probe(lambda p, c: np.zeros(len(p)), {}, [1, 2], 5, feature="zz"), ValueError,
     "agreement_probe: feature must be 'number' or 'gender', got 'zz'"),
    (lambda: P.final_logprobs(None, [[1], []], [[0], [0]]), ValueError,
     "final_logprobs: rows[1] is empty; every row needs at least one token"),
    (lambda: P.model_scorer(None, batch_size=-1), ValueError,                                  # was accepted
     "model_scorer: batch_size must be an int >= 1, got -1"),
    (lambda: P.model_scorer(None, batch_size=2.0), TypeError,
     "model_scorer: batch_size must be an int >= 1, got 2.0 (float)"),
])
def test_probe_functions_refuse_bad_arguments_by_name(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert str(info.value) == message


def test_perturb_and_bootstrap_still_work_on_valid_arguments():
    ctx = np.arange(10)
    assert list(P.perturb(ctx, 0, "drop", np.random.default_rng(0), 10)) == []
    np.testing.assert_array_equal(P.perturb(ctx, 10, "shuffle", np.random.default_rng(0), 10), ctx)
    assert P.bootstrap_mean_interval(np.ones(4), np.random.default_rng(0), 1) == (1.0, 1.0)
    score = P.model_scorer(make_model(), batch_size=1)
    assert score([[1, 2], [3]], [(4, 4), (5, 6)]).shape == (2,)


# ---------------------------------------------------------------- 3. statistics of impossible counts


@pytest.mark.parametrize("p_values, exc, message", [
    ([math.nan, 0.01], ValueError,                  # was [1.0, 1.0]: the nan erased the 0.01's significance
     "holm_adjust: p_values[0] must be a number in [0, 1] (or None for no data), got nan"),
    ([0.5, 1.2], ValueError, "holm_adjust: p_values[1] must be a number in [0, 1] (or None for no data), got 1.2"),
    ([None, -0.1], ValueError,
     "holm_adjust: p_values[1] must be a number in [0, 1] (or None for no data), got -0.1"),
    (["0.1"], TypeError, "holm_adjust: p_values[0] must be a number in [0, 1] or None, got '0.1' (str)"),
])
def test_holm_adjust_refuses_impossible_p_values(p_values, exc, message):
    with pytest.raises(exc) as info:
        P.holm_adjust(p_values)
    assert str(info.value) == message


@pytest.mark.parametrize("fn", [P.wilson_interval, P.chance_p_value])
@pytest.mark.parametrize("successes, n, exc, message", [
    (5, 3, ValueError, "successes must be in [0, n] = [0, 3], got 5"),     # was a bound above 1
    (-1, 3, ValueError, "successes must be in [0, n] = [0, 3], got -1"),
    (math.nan, 3, ValueError, "successes must be in [0, n] = [0, 3], got nan"),
    (1, -2, ValueError, "n must be an int >= 0, got -2"),
    (1, 2.5, TypeError, "n must be an int >= 0, got 2.5 (float)"),
])
def test_binomial_statistics_refuse_impossible_counts(fn, successes, n, exc, message):
    with pytest.raises(exc) as info:
        fn(successes, n)
    assert str(info.value) == f"{fn.__name__}: {message}"


def test_valid_counts_and_p_values_give_what_they_gave():
    assert P.holm_adjust([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06])
    assert P.holm_adjust([0.0, 1.0]) == [0.0, 1.0]
    assert P.wilson_interval(0, 0) == (0.0, 1.0) and P.chance_p_value(0, 0) is None
    assert P.wilson_interval(2.5, 5) == pytest.approx((0.1704, 0.8296), abs=1e-4)
    assert P.wilson_interval(np.float64(3), np.int64(3))[1] == 1.0


# ---------------------------------------------------------------- 4. lag_curve's quantities


def test_lag_curve_refuses_an_empty_list_of_quantities():
    with pytest.raises(ValueError) as info:             # was: every quantity measured
        jac.lag_curve(make_model("lstm"), tokens(), 4, 2, quantities=[])
    assert str(info.value) == ("lag_curve: quantities is empty; give at least one of h, c, state, or None for "
                               "all of them")


def test_lag_curve_takes_one_name_as_a_string_but_no_other_string():
    doc = jac.lag_curve(make_model("lstm"), tokens(), 4, 2, quantities="state", per_step=False)
    assert sorted(doc["curves"]["layer0"]) == ["flow", "state"]
    with pytest.raises(TypeError) as info:
        jac.lag_curve(make_model("lstm"), tokens(), 4, 2, quantities="h,c")
    assert str(info.value) == ("lag_curve: quantities must be a list of h, c, state, got the string 'h,c': pass a "
                               "list, e.g. ['h', 'c'] (one name alone is taken as that one)")
    with pytest.raises(ValueError, match=r"^lag_curve: quantities: unknown 'c'; a rnn model has h"):
        jac.lag_curve(make_model(), tokens(), 4, 2, quantities="c")
