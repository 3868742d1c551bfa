"""One validation layer: every numeric flag of every command is checked against settings.RANGES.

The parametrized test walks the real parser, so a new numeric flag without a
range fails here; each bad value must give exit status 2 and one line.
"""
import argparse
import math

import numpy as np
import pytest

from rnnlm import cli, cliflags
from rnnlm import config as C
from rnnlm import settings as S
from rnnlm.cli import main
from rnnlm.errors import UserError
from rnnlm.sample import GREEDY_BELOW, draw, generate_text, next_token_probs


def _subparsers(parser):
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def _all_actions(parser=None, path=()):
    """(command path, action) for every flag of every (sub)command, a subcommand's before its parent's."""
    parser = parser or cli.build_parser()
    found = []
    for sub in _subparsers(parser):
        for name, child in sub.choices.items():
            found += _all_actions(child, path + (name,))
    return found + [(path, a) for a in parser._actions if a.option_strings]


def _numeric_flags():
    """(command path, dest, option string, kind) for every int/float flag of every (sub)command."""
    return [(path, a.dest, a.option_strings[0], int if a.type is int else float) for path, a in _all_actions()
            if a.type in (int, float, cliflags.float_arg, cliflags._clip_arg)]


def _positionals(path):
    """Placeholder positional arguments: numbers are checked before anything is read."""
    parser = cli.build_parser()
    for name in path:
        parser = next(s.choices[name] for s in _subparsers(parser))
    return ["nowhere" for a in parser._actions if not a.option_strings and a.nargs in (None, "+")]


FLAGS = _numeric_flags()


def test_the_discovery_finds_every_numeric_flag():
    # a flag whose type the list above lacks would leave these tests silently (float_arg once dropped 162)
    numeric = {(path, a.dest) for path, a in _all_actions() if getattr(a.type, "__name__", "") in ("int", "float")}
    assert numeric <= {(path, dest) for path, dest, _, _ in FLAGS}
    assert len(FLAGS) > 100


def _bad_values(dest, kind):
    r = S.RANGES.get(dest, S.Range(float))
    # (a huge finite float is refused only where the range has an upper bound: --lr 1e38 is an experiment)
    values = ["nan", "inf", "-inf"] if kind is float else ["nan", "1" + "0" * 20, "-" + "1" * 20]
    if math.isfinite(r.lo):
        below = r.lo - 1 if kind is int else (r.lo if r.lo_open else r.lo - max(0.5, abs(r.lo)))
        if below not in r.allow:
            values.append(str(int(below)) if kind is int else repr(below))
    if math.isfinite(r.hi):
        values.append(str(int(r.hi) + 1) if kind is int else repr(r.hi if r.hi_open else r.hi + max(0.5, abs(r.hi))))
    return values


def test_the_walk_finds_every_command():
    commands = {path[0] for path, *_ in FLAGS}
    assert {"bench", "baseline", "train", "evaluate", "generate", "gradcheck", "probe", "jacobian",
            "demo", "corpus"} <= commands
    assert len(FLAGS) > 60


@pytest.mark.parametrize("dest", sorted({dest for _, dest, _, _ in FLAGS}))
def test_every_numeric_flag_has_a_range(dest):
    assert dest in S.RANGES, f"add '{dest}' to settings.RANGES"


CASES = [(path, flag, value) for path, dest, flag, kind in FLAGS for value in _bad_values(dest, kind)]


@pytest.mark.parametrize("path,flag,value", CASES, ids=[f"{' '.join(p)} {f}={v}" for p, f, v in CASES])
def test_a_bad_number_is_exit_2_and_one_line(capsys, monkeypatch, path, flag, value):
    def ran(args):
        raise AssertionError(f"{path} ran with {flag}={value}: the value was accepted")
    monkeypatch.setattr(cli, "COMMANDS", [(name, add, ran) for name, add, _ in cli.COMMANDS])
    argv = [*path, *_positionals(path), f"{flag}={value}"]
    if path == ("jacobian",):
        argv = ["jacobian", "nowhere", f"{flag}={value}"]
        if flag in ("--hidden", "--emsize", "--layers", "--recurrent-scale", "--forget-bias", "--vocab-size"):
            argv.insert(2, "--init")
            argv.remove("nowhere")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert flag in err or flag.lstrip("-").replace("-", "_") in err or "argument" in err


def test_the_messages_say_the_range_and_the_value():
    with pytest.raises(UserError, match=r"--temperature must be a finite number >= 0 \(0 = greedy\), got nan"):
        S.check_range("temperature", float("nan"))
    with pytest.raises(UserError, match=r"--seed must be between 0 and 4294967295, got -1"):
        S.check_range("seed", -1)
    with pytest.raises(UserError, match=r"--top-p must be a number in \(0, 1\]"):
        S.check_range("top_p", 0.0)
    with pytest.raises(UserError, match=r"--max-vocab must be 0 \(no limit\) or at least 3"):
        S.check_range("max_vocab", 2)
    S.check_range("max_vocab", 0)
    S.check_range("lr", 1e38)                       # huge but finite: a deliberate divergence experiment
    with pytest.raises(UserError, match=r"^--recurrent-scale must be a number in \[-1e\+30, 1e\+30\], got inf$"):
        S.check_range("recurrent_scale", float("inf"))
    with pytest.raises(UserError, match=r"^--recurrent-scale must be a number in \[-1e\+30, 1e\+30\], got 1e\+39$"):
        S.check_range("recurrent_scale", 1e39)      # W_hh beyond float32: inf weights (a trial's traceback)
    S.check_range("recurrent_scale", -1e30)


def test_the_configs_use_the_same_table():
    for bad in (dict(lr=float("nan")), dict(max_minutes=float("inf")), dict(seed=-1), dict(momentum=1.0),
                dict(beta2=float("nan")), dict(bptt=0), dict(eval_every=-1)):
        with pytest.raises(UserError, match="--" + next(iter(bad)).replace("_", "-")):
            C.TrainConfig(**bad).validate()
    with pytest.raises(UserError, match="--split-seed"):
        C.DataConfig(split_seed=-5).validate()
    with pytest.raises(UserError, match="--valid-fraction"):
        C.DataConfig(valid_fraction=float("nan")).validate()
    with pytest.raises(UserError, match="--seed"):
        C.JacobianConfig(run="x", seed=2**40).validate()
    with pytest.raises(C.ModelConfigError, match="--dropout"):
        S.check_fields(C.ModelConfig(dropout=float("nan")), C.ModelConfigError)


# ---------------------------------------------------------------- the sampler

P = np.log([[0.1, 0.4, 0.2, 0.3]])


def test_a_tiny_temperature_is_greedy():
    for t in (1e-300, 5e-324, GREEDY_BELOW / 2):
        np.testing.assert_array_equal(next_token_probs(P, temperature=t), [[0, 1, 0, 0]])
    p = next_token_probs(P, temperature=GREEDY_BELOW * 10)
    assert np.isfinite(p).all() and p[0, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("logp", [np.log([[0.5, np.nan, 0.5]]), [[0.0, np.inf, -1.0]]])
def test_non_finite_log_probabilities_are_refused(logp):
    with pytest.raises(UserError, match="diverged"):
        next_token_probs(logp)


def test_every_word_banned_is_refused():
    with pytest.raises(UserError, match="banned"):
        next_token_probs(np.log([[0.5, 0.5]]), banned=(0, 1))
    with pytest.raises(UserError, match="banned"):
        next_token_probs(np.log([[0.5, 0.5]]), temperature=0, banned=(0, 1))


@pytest.mark.parametrize("probs", [[[0.5, np.nan, 0.5]], [[0.2, 0.2, 0.2]], [[1.5, -0.5, 0.0]],
                                   [[np.inf, 0.0, 0.0]], [[0.0, 0.0, 0.0]]])
def test_draw_refuses_what_is_not_a_distribution(probs):
    with pytest.raises(UserError, match="not finite or does not sum to 1"):
        draw(np.array(probs), np.random.default_rng(0))


def test_draw_never_returns_a_word_without_mass():
    class One:                                       # a generator whose uniform is the largest double < 1
        def random(self, n):
            return np.full(n, np.nextafter(1.0, 0.0))
    probs = np.array([[0.3, 0.7, 0.0, 0.0]])
    assert draw(probs, One()).tolist() == [1]


def test_generate_text_checks_its_numbers_before_the_model():
    for kw, flag in ((dict(seed=-1), "--seed"), (dict(words=-1), "--words"), (dict(num_samples=0), "--num-samples")):
        with pytest.raises(UserError, match=flag):
            generate_text(None, None, **kw)


# ---------------------------------------------------------------- held-out splits


@pytest.fixture()
def small_txt(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "small.txt"
    path.write_text("\n".join(f"A casa número {i} fica na rua {i % 7}." for i in range(300)) + "\n",
                    encoding="utf-8")
    return path


def test_baseline_valid_fraction_0_scores_test_only(small_txt, capsys):
    assert main(["baseline", "--corpus", str(small_txt), "--valid-fraction", "0", "--json"]) == 0
    import json
    report = json.loads(capsys.readouterr().out)
    assert list(report["models"]["trigram"]["splits"]) == ["test"]
    assert report["skipped"] == {"valid": "0 tokens (--valid-fraction 0)"}
    assert main(["baseline", "--corpus", str(small_txt), "--valid-fraction", "0"]) == 0
    assert "valid: not scored, it holds 0 tokens (--valid-fraction 0)" in capsys.readouterr().out


def test_baseline_with_nothing_to_score_names_the_flags(small_txt, capsys):
    assert main(["baseline", "--corpus", str(small_txt), "--valid-fraction", "0", "--split", "valid"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "raise --valid-fraction or choose another --split" in err
    assert main(["baseline", "--corpus", str(small_txt), "--valid-fraction", "0", "--test-fraction", "0"]) == 2
    assert "raise --valid-fraction or --test-fraction" in capsys.readouterr().err


def test_train_says_it_needs_a_validation_split(small_txt, capsys, tmp_path):
    assert main(["train", "--corpus", str(small_txt), "--valid-fraction", "0",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train needs a validation split" in err and "--valid-fraction" in err
    assert not (tmp_path / "run").exists()


def test_an_empty_train_split_names_the_fractions(tmp_path, monkeypatch):
    from rnnlm.data import load_corpus
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "short.txt"
    path.write_text("Uma frase só.\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"train split .* is empty.*--valid-fraction.*--test-fraction"):
        load_corpus(C.DataConfig(corpus=str(path), valid_fraction=0.6, test_fraction=0.3))
