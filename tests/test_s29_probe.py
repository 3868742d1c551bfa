"""The agreement probe's summary corrected for testing many distances (Holm), and the one-line error naming
the template words a vocabulary lacks for --feature gender."""
import json

import numpy as np
import pytest

from rnnlm import probereport as R
from rnnlm import probes as P
from rnnlm import sintetico as S
from rnnlm.errors import UserError

HOLM = "after Holm's correction for the 40 distances tested (family-wise error 5%)"


# ---------------------------------------------------------------- 1. multiple comparisons


def test_holm_adjust_known_values():
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> 0.06 (monotone).
    assert P.holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert P.holm_adjust([0.2, None, 0.9]) == pytest.approx([0.4, None, 0.9])
    assert P.holm_adjust([0.6, 0.7]) == [1.0, 1.0]


@pytest.mark.parametrize("k, n", [(60, 100), (59, 100), (61.5, 100), (40, 100), (8, 10), (50, 100), (120, 200)])
def test_the_p_value_agrees_with_the_wilson_interval(k, n):
    lo, hi = P.wilson_interval(k, n)
    assert (P.chance_p_value(k, n) < 0.05) == (not lo <= 0.5 <= hi)
    assert P.chance_p_value(50, 100) == 1.0 and P.chance_p_value(0, 0) is None


def _result(correct_at):
    """evaluate_agreement on distances 1-40, 100 pairs each, `correct_at(d)` of them scored right."""
    ds, diffs = [], []
    for d in range(1, 41):
        k = correct_at(d)
        ds += [d] * 100
        diffs += [1.0] * k + [-1.0] * (100 - k)
    diffs = np.array(diffs)
    return P.evaluate_agreement(lambda p, c: diffs, [[0]] * len(ds), [(0, 1)] * len(ds), ds, [False] * len(ds))


def test_a_model_at_chance_with_two_lucky_distances_is_not_called_above_chance():
    res = _result(lambda d: 60 if d in (4, 25) else 50)    # 60/100: the 95% CI just misses 0.5 (p = 0.046)
    assert res["chance_distances"] == [d for d in range(1, 41) if d not in (4, 25)]   # per distance, unchanged
    assert res["holm_above_chance_distances"] == [] and res["holm_below_chance_distances"] == []
    assert res["outside_chance_count"] == 2 and res["expected_outside_by_luck"] == 2.0
    assert res["correction"].startswith("Holm (1979)")
    b4 = res["by_distance"][3]
    assert b4["p_value"] == pytest.approx(0.0455, abs=1e-4) and b4["p_holm"] == pytest.approx(1.0)
    line = R.format_agreement({"feature": "number", "pairs": 4000, "coverage": 1.0, **res}).splitlines()[-1]
    assert line == (f"accuracy: indistinguishable from chance at every distance probed (1-40), {HOLM}; "
                    "uncorrected, 2 of the 40 per-distance 95% CIs exclude 0.5 (above at distances 4 and 25), where luck "
                    "alone would put about 2 (5% of 40)"), line


def test_a_model_above_chance_at_short_distances_then_at_chance():
    res = _result(lambda d: 90 if d <= 10 else 60 if d == 25 else 50)
    assert res["holm_above_chance_distances"] == list(range(1, 11))
    line = R.chance_sentence(res["by_distance"])
    assert line.startswith(f"accuracy: above chance at distances 1-10 and indistinguishable from chance at the "
                           f"other 30, {HOLM}; uncorrected, 11 of the 40 per-distance 95% CIs exclude 0.5 (above at distances 1-10 "
                           "and 25), where luck alone would put about 2 (5% of 40)"), line


def test_a_model_above_chance_everywhere():
    res = _result(lambda d: 80)
    assert res["holm_above_chance_distances"] == list(range(1, 41))
    assert R.chance_sentence(res["by_distance"]) == (
        f"accuracy: above chance (95% CI over 0.5) at every distance probed (1-40); the same {HOLM}")


def test_the_probe_json_keeps_the_old_fields_and_adds_the_corrected_ones():
    words = ["<unk>", "<eos>"] + sorted(S.all_words())
    res = P.agreement_probe(lambda p, c: np.zeros(len(p)), {w: i for i, w in enumerate(words)}, [1, 5, 20], 40)
    for key in ("chance_at", "chance_distances", "below_chance_distances", "chance_from", "above_chance_from",
                "holm_above_chance_distances", "holm_below_chance_distances", "expected_outside_by_luck"):
        assert key in res, key
    assert res["holm_above_chance_distances"] == [] and res["expected_outside_by_luck"] == pytest.approx(0.15)
    assert json.loads(json.dumps(res)) == res


# ---------------------------------------------------------------- 2. a vocabulary short of gender words


@pytest.fixture(scope="module")
def verb_only_run(tmp_path_factory):
    """An untrained GRU saved like a training run on sentences whose targets are all verbs: its vocabulary
    has no predicative adjective or participle, so --feature gender cannot be probed."""
    from saved_runs import untrained_gru_run
    return untrained_gru_run(tmp_path_factory.mktemp("probe_verb_run"), 600, 8, kinds=("verb",))


def test_template_shortfall_names_the_role_counts_and_missing_words():
    known = S.all_words() - {w for f in S.PREDICATIVES for w in f} - {w for f, _ in S.PARTICIPLES for w in f}
    short = S.template_shortfall("gender", known)
    assert "predicative adjectives: 0 of 18 in the vocabulary with all four forms, at least 1 needed (missing " \
           "e.g. cansado, cansada, cansados, cansadas, zangado)" in short, short
    assert "participles: 0 of 9 in the vocabulary" in short and "convidado" in short
    assert S.template_shortfall("number", known) is None and S.template_shortfall("gender", S.all_words()) is None
    with pytest.raises(UserError, match="too few template words for gender agreement: .*predicative adjectives: 0 of"):
        S.make_agreement_pairs([3], 5, 0, feature="gender", known=known)


def test_cli_probe_gender_on_a_vocabulary_without_its_words_says_what_is_missing_and_the_fix(verb_only_run, capsys):
    from rnnlm.cli import main
    assert main(["probe", "agreement", str(verb_only_run), "--feature", "gender", "--distances", "1..4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --feature gender: the vocabulary ("), err
    assert "predicative adjectives: 0 of 18 in the vocabulary with all four forms, at least 1 needed (missing e.g. " \
           "cansado" in err, err
    assert "participles: 0 of 9" in err
    # a corpus of verb sentences: its 297 words are under --max-vocab, so a larger one cannot help
    assert err.rstrip().endswith("; train on a corpus that holds these words (machado, or sintetico, whose grammar "
                                 "they are): this one has no more, or use --feature number"), err
    assert not (verb_only_run / "probe-agreement-gender.json").exists()


def test_the_uncorrected_count_says_which_way_each_distance_goes():
    # 6 and 13 below chance, 7 above: "(at distances 6-7 and 13)" lumped them together
    res = _result(lambda d: 35 if d in (6, 13) else 65 if d == 7 else 50)
    line = R.chance_sentence(res["by_distance"])
    assert "3 of the 40 per-distance 95% CIs exclude 0.5 (above at distance 7; below at distances 6 and 13)" in line


def test_the_table_marks_distances_that_are_at_chance_after_the_correction():
    # distances 4 and 25 exclude 0.5 uncorrected (60/100) but not after Holm; 1-3 hold after it (90/100)
    res = _result(lambda d: 90 if d <= 3 else 60 if d in (4, 25) else 50)
    rows = R.format_agreement({"feature": "number", "pairs": 4000, "coverage": 1.0, **res}).splitlines()[2:42]
    marks = {int(r.split()[0]): r.split("  ")[-1].strip() for r in rows}
    assert all(not marks[d].startswith("~") for d in (1, 2, 3)), rows[:3]
    assert marks[4] == marks[25] == "~chance after Holm"
    assert all(marks[d] == "~chance" for d in range(5, 41) if d != 25)
