"""Session 38: what a Python user, a hostile tester and a review found (see each test's docstring)."""
import pytest

from rnnlm.cli import main


def test_gradcheck_reads_all_and_tanh_in_any_case(capsys):
    """`--activation Tanh` was accepted (names are read in any case) but `ALL` was refused as unknown."""
    assert main(["gradcheck", "--cell", "rnn", "--activation", "ALL"]) == 0
    out = capsys.readouterr().out
    for kind in ("tanh", "relu", "sigmoid"):
        assert f"gradcheck rnn activation={kind} layers=1" in out
    assert out.strip().splitlines()[-1].endswith("-> PASS")
    assert main(["gradcheck", "--cell", "lstm", "--activation", " Tanh "]) == 0
    assert capsys.readouterr().out.strip().endswith("-> PASS")
    assert main(["gradcheck", "--cell", "gru", "--activation", "All"]) == 2
    assert "is for --cell rnn" in capsys.readouterr().err
