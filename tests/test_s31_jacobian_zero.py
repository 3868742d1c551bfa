"""A lag curve that is 0 because W_hh is 0 (--recurrent-scale 0) says so; saturation is said only where it is
the reason (a trial: tanh at scale 0, whose f'(z) is near 1, was called 'every unit saturated')."""
from rnnlm.activations import zero_reason
from rnnlm.cli import main


def test_a_zero_recurrent_matrix_is_the_reason_given(tmp_path, capsys):
    out = tmp_path / "j.json"
    assert main(["jacobian", "--init", "orthogonal", "--cell", "rnn", "--recurrent-scale", "0", "--hidden", "8",
                 "--emsize", "8", "--max-lag", "4", "--anchors", "2", "--tokens", "40", "--no-progress",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert (" spectral: exactly 0 from lag 1: W_hh is 0 (a recurrent scale of 0), so h_t does not depend on "
            "h_(t-1) and nothing flows back; vanish lag 1") in text
    assert "saturated" not in text


def test_saturation_stays_the_reason_when_w_hh_is_not_zero():
    assert zero_reason("rnn", 1, [0.0, 2.5]) == ("exactly 0 from lag 1: every unit saturated (f'(z) = 0), "
                                                 "nothing flows back")
    assert zero_reason("rnn", 3, None).startswith("exactly 0 from lag 3: at a step within 3 steps back every unit")
    assert zero_reason("lstm", 2, [0.0]).startswith("exactly 0 from lag 2: W_hh is 0")


def test_the_jacobian_command_prints_every_layer_then_the_stack(tmp_path, capsys):
    assert main(["jacobian", "--init", "orthogonal", "--cell", "gru", "--layers", "2", "--hidden", "8", "--emsize",
                 "8", "--max-lag", "4", "--anchors", "2", "--tokens", "40", "--no-progress",
                 "--out", str(tmp_path / "j.json")]) == 0
    scopes = [line.split("; scope ")[1].split(",")[0] for line in capsys.readouterr().out.splitlines()
              if "; scope " in line]
    assert scopes == ["layer0", "layer1", "stacked"]


def test_a_gated_cell_with_a_zero_recurrent_matrix_says_so_too():
    assert zero_reason("lstm", 1, [{"i": 0.0, "f": 0.0, "g": 0.0, "o": 0.0}]).startswith(
        "exactly 0 from lag 1: W_hh is 0")
    assert "saturated" in zero_reason("gru", 1, [{"r": 0.0, "z": 1.0, "n": 0.0}])


def test_a_stacked_measurement_s_log_line_says_the_lags_per_scope(tmp_path, capsys):
    assert main(["jacobian", "--init", "orthogonal", "--cell", "gru", "--layers", "2", "--hidden", "8", "--emsize",
                 "8", "--max-lag", "5", "--anchors", "2", "--tokens", "40", "--out", str(tmp_path / "j.json")]) == 0
    assert ("measuring the Jacobian norms: 15 lags (5 in each of 3 scopes: the layers and their stack) at 2 "
            "anchors...") in capsys.readouterr().err
