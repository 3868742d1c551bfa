"""The scripted demonstrations, run with --quick (tiny sizes): figures, summaries, sane numbers."""
import json
import math
from pathlib import Path

import pytest

from rnnlm import plotlag, plotruns, plots
from rnnlm.cli import main
from rnnlm.demogradients import ACTIVATIONS, GAINS
from rnnlm.demolongrange import count_params, matched_hidden


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("RNNLM_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("MPLBACKEND", "Agg")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def titles():
    """{figure file stem: its title and subtitle text}, of every figure the demos save (the `_save` of plots.py
    and the ones plotruns.py and plotlag.py import from it: each module looks up its own)."""
    seen = {}
    original = plots._save

    def save(fig, out):
        sup = fig._suptitle.get_text() if fig._suptitle is not None else ""
        seen[Path(out).stem] = " ".join((sup + "\n" + "\n".join(ax.get_title() for ax in fig.axes)).split())
        return original(fig, out)

    mp = pytest.MonkeyPatch()
    mp.setattr(plots, "_save", save)
    mp.setattr(plotruns, "_save", save)
    mp.setattr(plotlag, "_save", save)
    yield seen
    mp.undo()


@pytest.fixture(scope="module")
def gradients(machado_dir, cache, titles, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "gradients"
    assert main(["demo", "gradients", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "summary.json").read_text(encoding="utf-8")), dict(titles)


@pytest.fixture(scope="module")
def longrange(cache, titles, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "longrange"
    assert main(["demo", "longrange", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "summary.json").read_text(encoding="utf-8")), dict(titles)


def _finite(x):
    return x is not None and math.isfinite(x)


def test_gradients_writes_every_figure_and_summary(gradients):
    out, s, _ = gradients
    names = [f"init-rnn-{label}" for label, _, _ in ACTIVATIONS] + [
        "init-lstm", "init-gru", "init-summary", "tanh-n", "explosion", "trained-rnn", "trained-lstm",
        "trained-gru", "trained-all"]
    for name in names:
        for ext in ("png", "svg"):
            assert (out / f"{name}.{ext}").stat().st_size > 1000, name
    md = (out / "summary.md").read_text(encoding="utf-8")
    for name in names:
        assert f"`{name}.png`" in md
    assert s["wall_s"]["total"] > 0


def test_gradients_init_curves_vanish_below_the_edge_and_grow_above(gradients):
    init = gradients[1]["init"]
    for label, _, fmax in ACTIVATIONS:
        runs = sorted((r for k, r in init.items() if k.startswith(f"rnn-{label}-")), key=lambda r: r["gain"])
        assert [r["gain"] for r in runs] == list(GAINS)
        for r in runs:
            assert _finite(r["median_lag1"]) and _finite(r["decay_rate"])
            # The per-step bound ||W_hh|| max|f'| is never exceeded at lag 1.
            assert r["median_lag1"] <= r["bound_per_step"] * (1 + 1e-6)
        # Larger scale, slower decay: the factor per step rises with the gain.
        assert runs[0]["factor_per_step"] < runs[1]["factor_per_step"] < runs[2]["factor_per_step"]
    low, high = init["rnn-tanh-x0.5"], init["rnn-tanh-x2"]
    assert low["decay_rate"] < -0.3 and low["median_last"] < 1e-2 * low["median_lag1"]
    assert high["median_lag1"] > 1.0 and high["decay_rate"] > 0
    for cell in ("lstm", "gru"):
        assert 0 < init[cell]["median_lag1"] < 2 and _finite(init[cell]["decay_rate"])


def test_gradients_tanh_n_equivalence_and_curves(gradients):
    q = gradients[1]["tanh_n"]
    assert set(q["max_abs_state_difference"]) >= {"1.7", "3"}      # not only exact powers of two
    assert q["max_error"] < 1e-10 and q["dtype"] == "float64"
    # Lag-1 norms grow with n (the bound n ||W_hh|| grows); n = 0.5 decays at about 0.5 per step.
    lag1 = [q["curves"][n]["median_lag1"] for n in ("0.5", "1", "2", "4")]
    assert lag1 == sorted(lag1)
    assert q["curves"]["0.5"]["factor_per_step"] == pytest.approx(0.5, abs=0.05)


def test_gradients_explosion_and_training_numbers(gradients):
    s = gradients[1]
    runs = s["explosion"]["runs"]
    assert runs["noclip"]["clip_norm"] == 0 and runs["clip"]["clip_norm"] == 0.25
    assert runs["clip"]["stopped"] == "max_steps" and _finite(runs["clip"]["val_ppl"])
    # Without clipping, lr 20 and W_hh x3: the loss leaves its starting value far behind.
    assert runs["noclip"]["nonfinite_step"] is not None or runs["noclip"]["loss_jump"] > 3
    assert runs["clip"]["clip_fraction"] > 0.5
    for cell in ("rnn", "lstm", "gru"):
        t = s["trained"][cell]
        assert t["steps"] == s["sizes"]["train_steps"] and _finite(t["best_val_ppl"])
        assert _finite(t["init"]["median_lag1"]) and _finite(t["trained"]["median_lag1"])


def test_matched_hidden_sizes_are_within_five_percent():
    for V, E, H in ((300, 64, 128), (5000, 128, 256)):
        target = count_params("lstm", V, E, H)
        for cell in ("rnn", "gru"):
            h = matched_hidden(cell, target, V, E)
            assert abs(count_params(cell, V, E, h) - target) < 0.05 * target
            assert h > H        # fewer gates, more units


def test_longrange_figures_table_and_numbers(longrange):
    out, s, _ = longrange
    for name in ("agreement", "context", "jacobian", "agreement-main", "agreement-far"):
        assert (out / f"{name}.png").stat().st_size > 1000
    models = s["models"]
    assert {"rnn-clip", "rnn-noclip", "lstm-clip", "lstm-noclip", "gru-clip", "gru-noclip"} <= set(models)
    counts = [r["params"] for r in models.values()]
    assert max(counts) < 1.05 * min(counts)
    for name, r in models.items():
        assert r["params"] == count_params(r["cell"], s["corpus"]["vocab"], s["sizes"]["emsize"], r["hidden"])
        assert _finite(r["valid_ppl"]) and r["valid_ppl"] < s["corpus"]["vocab"]
        for b in r["agreement"].values():
            assert 0 <= b["ci"][0] <= b["accuracy"] <= b["ci"][1] <= 1 and b["n"] > 0
        assert _finite(r["jacobian"]["median_lag1"])
        far = r["agreement_far"]
        assert far["range"] == [10, 12] and 0 <= far["accuracy"] <= 1
        assert (out / name / "probe-agreement-number.json").exists()
    md = (out / "summary.md").read_text(encoding="utf-8")
    assert "| rnn-clip |" in md and "| gru-noclip |" in md
    assert s["shape"]["holds"] in (True, False)


def test_longrange_refuses_a_nonpositive_budget(capsys):
    assert main(["demo", "longrange", "--minutes", "0"]) == 2
    assert "error: --minutes must be a finite positive number" in capsys.readouterr().err


def test_longrange_refuses_bad_min_distance_and_omega(capsys):
    assert main(["demo", "longrange", "--quick", "--min-distance", "0"]) == 2
    assert "error: --min-distance must be between 1" in capsys.readouterr().err
    assert main(["demo", "longrange", "--quick", "--min-distance", "99"]) == 2
    assert main(["demo", "longrange", "--quick", "--omega", "-1"]) == 2
    assert "error: --omega must be a finite number >= 0" in capsys.readouterr().err


# ---------------------------------------------------------------- what each figure states (issue 14)


def _states_its_settings(name, text):
    """cell, init, recurrent scale, clipping and the anchors/pairs/seeds behind it, none of them unknown."""
    for want in ("cell ", "init ", "W_hh ×"):
        assert want in text, (name, want, text)
    assert any(c in text for c in ("at init (no training", "clip-norm", "no clipping")), (name, text)
    assert "seed" in text and any(w in text for w in ("anchors", "pairs", "targets", "one run")), (name, text)
    assert "not recorded" not in text and "init ?" not in text and "×?" not in text, (name, text)


def test_gradients_figures_state_cell_init_scale_clipping_anchors_and_seed(gradients):
    out, s, titles = gradients
    sz = s["sizes"]
    pngs = {p.stem for p in out.glob("*.png")}
    assert pngs <= set(titles) and len(pngs) >= 16
    for name in pngs:
        _states_its_settings(name, titles[name])
    behind = f"{sz['anchors']} anchors × {sz['curve_tokens']} tokens of velhoSenado.txt:valid"
    for label, _, _ in ACTIVATIONS:
        t = titles[f"init-rnn-{label}"]
        assert f"cell rnn {label};" in t and "init orthogonal" in t and "at init (no training)" in t, t
        assert f"H={sz['hidden']}" in t and behind in t and "seed 0" in t, t
    for cell in ("lstm", "gru"):
        t = titles[f"init-{cell}"]
        assert f"cell {cell};" in t and "at init (no training)" in t and behind in t and "seed 0" in t, t
        t = titles[f"trained-{cell}"]
        assert "at init (no training) / clip-norm 0.25" in t and "seed 0" in t and behind in t, t
        assert "clip-norm 0.25" in titles[f"trained-{cell}-over-training"]
    t = titles["init-summary"]
    for want in ("rnn tanh / relu / sigmoid / lecun-tanh", "lstm", "gru", "init orthogonal",
                 "at init (no training, no clipping)", f"H={sz['hidden']}", behind, "seed 0"):
        assert want in t, (want, t)
    assert "cell rnn tanh" in titles["tanh-n"]
    assert "at init (no training)" in titles["tanh-n"] and behind in titles["tanh-n"]
    t = titles["trained-all"]
    assert "cell rnn tanh / lstm / gru" in t and "clip-norm 0.25" in t and "at init" not in t, t
    t = titles["explosion"]
    assert "no clipping / clip-norm 0.25" in t and f"W_hh ×{sz['explode_scale']:g}" in t and "seed 0" in t, t


def test_longrange_figures_state_clipping_omega_and_what_is_behind_them(longrange):
    out, s, titles = longrange
    pngs = {p.stem for p in out.glob("*.png")}
    assert {"agreement", "context", "jacobian", "agreement-main", "context-main", "jacobian-main",
            "agreement-far"} <= pngs <= set(titles)
    for name in pngs:
        _states_its_settings(name, titles[name])
    sz = s["sizes"]
    t = titles["jacobian"]
    assert "clip-norm 0.25 / no clipping" in t and "Ω α=0 / 1" in t, t
    assert f"{sz['anchors']} anchors × {sz['curve_tokens']} tokens" in t and "seed 0" in t, t
    t = titles["jacobian-main"]
    assert "no clipping" not in t and "clip-norm 0.25" in t, t
    assert f"{sz['probe_n']} pairs per distance" in titles["agreement"] and "probe seed 0" in titles["agreement"]


def test_longrange_passes_the_subject_relative_rate_to_its_corpus(monkeypatch, tmp_path, capsys):
    # The controlled agreement corpus: no relative clause restates the subject's number.
    import rnnlm.sintetico as sintetico
    seen = {}

    class Stop(Exception):
        pass

    def fake_ensure(folder, **settings):
        seen.update(settings)
        raise Stop

    monkeypatch.setattr(sintetico, "ensure_corpus", fake_ensure)
    with pytest.raises(Stop):
        main(["demo", "longrange", "--quick", "--subject-relative-rate", "0", "--min-distance", "3",
              "--out", str(tmp_path / "lr")])
    assert seen["subject_relative_rate"] == 0.0 and seen["min_distance"] == 3
    assert main(["demo", "longrange", "--quick", "--subject-relative-rate", "1.5"]) == 2
    assert "--subject-relative-rate must be" in capsys.readouterr().err
