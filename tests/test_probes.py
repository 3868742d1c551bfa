"""Agreement and context probes on oracles whose answers are known, and the CLI on a tiny run."""
import json
import zlib

import numpy as np
import pytest

from rnnlm import probes as P
from rnnlm import sintetico as S
from rnnlm.errors import UserError

WORDS = ["<unk>", "<eos>"] + sorted(S.all_words())
STOI = {w: i for i, w in enumerate(WORDS)}
FEATURES = S.feature_table()


# ---------------------------------------------------------------- statistics


@pytest.mark.parametrize("k, n, lo, hi", [
    (8, 10, 0.490, 0.943),
    (0, 10, 0.000, 0.278),
    (10, 10, 0.722, 1.000),
    (50, 100, 0.404, 0.596),
    (1, 2, 0.095, 0.905),
])
def test_wilson_interval_known_values(k, n, lo, hi):
    got = P.wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=6e-4)


def test_parse_distances():
    assert P.parse_distances("1..5") == [1, 2, 3, 4, 5]
    assert P.parse_distances("1..40:10") == [1, 11, 21, 31]
    assert P.parse_distances("1,2,5,10, 5") == [1, 2, 5, 10]
    for bad in ("0..3", "a..b", "", "3..1"):
        with pytest.raises(ValueError):             # a Python caller's bad text (the commands': UserError)
            P.parse_distances(bad)
    with pytest.raises(UserError, match=r"^--distances 5\.\.1 runs backwards; give the smaller end first \(1\.\.5\)$"):
        P.parse_distances("5..1", flags=True)     # the probe commands' wording (Python's: tests/test_s29_api.py)
    with pytest.raises(ValueError, match="the step must be at least 1"):
        P.parse_distances("1..10:0")


# ---------------------------------------------------------------- agreement oracles


def _number_of(word_id):
    return FEATURES[WORDS[word_id]]


def reads_the_subject(prefixes, candidates):
    """Knows the grammar: the first noun is the subject; prefer the form that agrees with it."""
    out = []
    for prefix, (a, b) in zip(prefixes, candidates):
        n, g = next(FEATURES[WORDS[i]]["noun"] for i in prefix if "noun" in FEATURES.get(WORDS[i], {}))
        def fits(w):
            f = FEATURES[WORDS[w]]
            return f["verb"][0] == n if "verb" in f else f["adj"] == (n, g)
        out.append(float(fits(a)) - float(fits(b)))
    return np.array(out)


def reads_the_last_noun(prefixes, candidates):
    """Agrees with the nearest noun: fooled by every attractor next to the verb."""
    out = []
    for prefix, (a, b) in zip(prefixes, candidates):
        n, _ = [FEATURES[WORDS[i]]["noun"] for i in prefix if "noun" in FEATURES.get(WORDS[i], {})][-1]
        out.append(1.0 if FEATURES[WORDS[a]]["verb"][0] == n else -1.0)
    return np.array(out)


def test_a_scorer_that_cannot_tell_scores_exactly_chance():
    res = P.agreement_probe(lambda p, c: np.zeros(len(p)), STOI, [1, 5, 20], 40)
    assert res["overall"]["accuracy"] == 0.5 and res["overall"]["ties"] == 120
    assert all(b["accuracy"] == 0.5 for b in res["by_distance"])
    assert res["chance_at"] == 1


def test_a_random_scorer_is_within_the_interval_of_chance():
    rng = np.random.default_rng(0)
    res = P.agreement_probe(lambda p, c: rng.normal(size=len(p)), STOI, range(1, 21), 100, seed=1)
    o = res["overall"]
    assert o["n"] == 2000 and o["ci"][0] <= 0.5 <= o["ci"][1]
    assert o["ci"][1] - o["ci"][0] < 0.05
    inside = np.mean([b["ci"][0] <= 0.5 <= b["ci"][1] for b in res["by_distance"]])
    assert inside >= 0.8


@pytest.mark.parametrize("feature", ["number", "gender"])
def test_an_oracle_that_reads_the_subject_scores_100(feature):
    res = P.agreement_probe(reads_the_subject, STOI, [2, 3, 10, 30], 60, feature=feature)
    assert res["overall"]["accuracy"] == 1.0
    # Attractors need two tokens of filler: the verb at distance >= 3, the adjective (after the copula) >= 4.
    assert res["attractor"]["accuracy"] == 1.0 and res["attractor"]["n"] == (90 if feature == "number" else 60)
    assert res["chance_at"] is None
    assert res["coverage"] == 1.0 and res["feature"] == feature


def test_attractors_fool_a_scorer_that_reads_the_nearest_noun():
    res = P.agreement_probe(reads_the_last_noun, STOI, range(3, 15), 60)
    assert res["no_attractor"]["accuracy"] == 1.0
    assert res["attractor"]["accuracy"] < 0.75


def test_evaluate_agreement_counts_and_validates():
    res = P.evaluate_agreement(lambda p, c: np.array([1.0, -1.0, 0.0, 2.0]), [[1]] * 4, [(1, 2)] * 4,
                               [1, 1, 2, 2], [False, False, True, False])
    assert [b["correct"] for b in res["by_distance"]] == [1.0, 1.5]
    assert res["attractor"]["correct"] == 0.5 and res["no_attractor"]["correct"] == 2.0
    with pytest.raises(ValueError):
        P.evaluate_agreement(lambda p, c: np.zeros(3), [[1]] * 4, [(1, 2)] * 4, [1] * 4, [False] * 4)


# ---------------------------------------------------------------- fake models with the model API


class LastK:
    """Predicts the next token from a hash of the last k inputs (k = 0: a unigram model).

    State: the last k inputs, -1 before the sequence starts (a zero state).
    """

    def __init__(self, V, k, confidence=0.9):
        self.V, self.k, self.confidence = V, k, confidence

    def init_state(self, B):
        return (np.full((B, self.k), -1, np.int64),)

    def predict(self, history):
        return np.array([zlib.crc32(h.tobytes()) % self.V for h in history])

    def step_logprobs(self, tokens, state):
        hist = state[0]
        if self.k:
            hist = np.concatenate([hist[:, 1:], np.asarray(tokens, np.int64)[:, None]], axis=1)
        B = len(tokens)
        logp = np.full((B, self.V), np.log((1 - self.confidence) / (self.V - 1)))
        logp[np.arange(B), self.predict(hist)] = np.log(self.confidence)
        return logp, (hist,)


class LastKWithForward(LastK):
    """The same model, also offering forward_states (the path real models take)."""

    def forward_states(self, inputs, state):
        for t in range(inputs.shape[0]):
            _, state = self.step_logprobs(inputs[t], state)
        from types import SimpleNamespace
        return SimpleNamespace(state=state)


def hashed_stream(V, k, n, rng, noise=0.2):
    """Text where each token is the LastK prediction from the k before it, except for noise."""
    model = LastK(V, k)
    x = list(rng.integers(0, V, size=k))
    while len(x) < n:
        x.append(int(rng.integers(V)) if rng.random() < noise else int(model.predict(np.array([x[-k:]]))[0]))
    return np.array(x)


def test_final_logprobs_groups_by_length_and_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 50, size=L) for L in (1, 4, 4, 7, 2, 4, 1)]
    cols = rng.integers(0, 50, size=(len(rows), 3))
    for model in (LastK(50, 3), LastKWithForward(50, 3)):
        got = P.final_logprobs(model, rows, cols, batch_size=2)
        for r, c, g in zip(rows, cols, got):
            state = model.init_state(1)
            for t in r:
                logp, state = model.step_logprobs(np.array([t]), state)
            np.testing.assert_allclose(g, logp[0, c])


def test_perturb_keeps_exactly_the_last_d_tokens():
    rng = np.random.default_rng(0)
    ctx = np.arange(100, 130)
    for mode in P.MODES:
        out = P.perturb(ctx, 7, mode, rng, 1000)
        np.testing.assert_array_equal(out[-7:], ctx[-7:])
        if mode == "drop":
            assert len(out) == 7
        else:
            assert len(out) == 30 and not np.array_equal(out[:23], ctx[:23])
    assert sorted(P.perturb(ctx, 7, "shuffle", rng, 1000)[:23]) == list(ctx[:23])
    np.testing.assert_array_equal(P.perturb(ctx, 30, "replace", rng, 1000), ctx)


@pytest.mark.parametrize("mode", P.MODES)
@pytest.mark.parametrize("k, expected", [(5, 5), (3, 4)])
def test_context_probe_finds_the_oracles_context(mode, k, expected):
    V = 97
    rng = np.random.default_rng(k)
    stream = hashed_stream(V, k, 3000, rng)
    model = LastKWithForward(V, k) if mode == "shuffle" else LastK(V, k)
    res = P.context_usage(model, stream, [1, 2, 4, 5, 8, 16], mode, n_targets=150, seed=1, window=40,
                          vocab_size=V, n_boot=300)
    by_d = {r["distance"]: r for r in res["results"]}
    assert res["effective_context"] == expected
    for d, r in by_d.items():
        if d >= k:
            assert r["mean_increase"] == 0.0 and r["within_noise"]
        else:
            assert r["mean_increase"] > 1.0 and r["ci"][0] > 0
    assert json.loads(json.dumps(res)) == res


def test_context_probe_of_a_model_without_context():
    stream = np.random.default_rng(0).integers(0, 30, size=500)
    res = P.context_usage(LastK(30, 0), stream, [1, 2, 10], "replace", n_targets=50, window=20, vocab_size=30)
    assert res["effective_context"] == 1
    assert all(r["mean_increase"] == 0.0 for r in res["results"])


def test_context_probe_refuses_bad_settings():
    stream = np.arange(100) % 7
    with pytest.raises(ValueError):         # bad arguments: ValueError (a UserError before)
        P.context_usage(LastK(7, 1), stream, [1, 50], "shuffle", window=50, vocab_size=7)
    with pytest.raises(ValueError):
        P.context_usage(LastK(7, 1), stream, [1], "jumble", window=20, vocab_size=7)
    with pytest.raises(UserError):          # too short a stream: the data, not the call
        P.context_usage(LastK(7, 1), stream[:20], [1], "shuffle", window=20, vocab_size=7)


# ---------------------------------------------------------------- the CLI on a tiny untrained run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An untrained GRU saved like a training run, on a small sintetico-like text."""
    from saved_runs import untrained_gru_run
    return untrained_gru_run(tmp_path_factory.mktemp("probe_run"), 1500, 12)


def test_cli_probe_agreement(tiny_run, capsys):
    from rnnlm.cli import main
    assert main(["probe", "agreement", str(tiny_run), "--distances", "1..6", "--n", "30"]) == 0
    printed = capsys.readouterr().out
    assert "95% CI" in printed and "coverage" in printed
    res = json.loads((tiny_run / "probe-agreement-number.json").read_text())
    assert res["probe"] == "agreement" and res["cell"] == "gru"
    assert [b["distance"] for b in res["by_distance"]] == [1, 2, 3, 4, 5, 6]
    assert res["overall"]["n"] == 180 and 0.0 < res["coverage"] <= 1.0


def test_cli_probe_context(tiny_run, tmp_path, capsys):
    from rnnlm.cli import main
    out = tmp_path / "ctx.json"
    assert main(["probe", "context", str(tiny_run), "--distances", "1,2,5,10", "--window", "30",
                 "--n-targets", "40", "--mode", "drop", "--out", str(out)]) == 0
    assert "effective context" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["probe"] == "context" and res["mode"] == "drop" and res["split"] == "test"
    assert [r["distance"] for r in res["results"]] == [1, 2, 5, 10]


def test_cli_probe_errors_are_one_line(tiny_run, capsys):
    from rnnlm.cli import main
    assert main(["probe", "agreement", str(tiny_run), "--distances", "0..3"]) == 2
    assert main(["probe", "context", str(tiny_run / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.startswith("error:")


# ---------------------------------------------------------------- plotting


@pytest.fixture()
def probe_jsons(tmp_path):
    """One agreement and two context result files, as the CLI writes them, in a run folder."""
    run = tmp_path / "run"
    run.mkdir()
    agr = P.agreement_probe(reads_the_last_noun, STOI, [1, 3, 6], 20)
    (run / "probe-agreement-number.json").write_text(json.dumps({"run": str(run), "cell": "rnn", **agr}))
    V = 31
    stream = hashed_stream(V, 3, 600, np.random.default_rng(0))
    for mode in ("shuffle", "drop"):
        ctx = P.context_usage(LastK(V, 3), stream, [1, 2, 4, 8], mode, n_targets=30, window=20, vocab_size=V)
        (run / f"probe-context-{mode}.json").write_text(json.dumps({"run": str(run), "cell": "lstm", **ctx}))
    return run


def test_find_probe_results(probe_jsons):
    assert [p.name for p in P.find_probe_results([probe_jsons])] == ["probe-agreement-number.json"]
    ctx = P.find_probe_results([probe_jsons], "context")
    assert [p.name for p in ctx] == ["probe-context-drop.json", "probe-context-shuffle.json"]
    assert P.find_probe_results([ctx[0]], "agreement") == [ctx[0]]   # an explicit file is taken as given
    with pytest.raises(UserError):
        P.find_probe_results([probe_jsons / "missing.json"])
    with pytest.raises(UserError):
        P.find_probe_results([probe_jsons.parent])


def test_plot_probe_and_its_cli_subaction(probe_jsons, tmp_path):
    import argparse

    from rnnlm import cliinstruments, plotruns
    parser = argparse.ArgumentParser()
    cliinstruments._add_plot_probe(parser.add_subparsers(dest="plot_command"))
    for kind in ("agreement", "context"):
        args = parser.parse_args(["probe", str(probe_jsons), "--kind", kind])
        assert cliinstruments._run_plot_probe(args) == 0
        png = probe_jsons / "plots" / f"probe-{kind}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mixed = [probe_jsons / "probe-agreement-number.json", probe_jsons / "probe-context-drop.json"]
    with pytest.raises(UserError):
        plotruns.plot_probe(mixed, tmp_path / "x.png")
