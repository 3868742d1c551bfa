"""Stop 37's trials: a float flag whose literal float64 cannot hold (1e-400, 1e400) is refused as typed,
not reported as the 0.0 or inf it reads as."""
import pytest

from rnnlm.cli import main


def _cli(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err.strip().splitlines()


@pytest.mark.parametrize("text, says", [("1e-400", "'1e-400' is too small for a float64 (it reads as 0.0)"),
                                        ("-2.5e-999", "'-2.5e-999' is too small for a float64 (it reads as 0.0)"),
                                        ("1e400", "'1e400' is too large for a float64 (it reads as inf)"),
                                        ("-1e400", "'-1e400' is too large for a float64 (it reads as -inf)")])
@pytest.mark.parametrize("flag", ["--lr", "--clip-norm", "--dropout"])
def test_a_float_beyond_float64_is_refused_as_typed(capsys, tmp_path, flag, text, says):
    status, out, err = _cli(["train", f"{flag}={text}", "--out", tmp_path / "r"], capsys)
    assert status == 2 and out == ""
    assert err == [f"error: python cli.py train: argument {flag}: {says} (see 'python cli.py train --help')"]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("text", ["0", "0.000", "0e5", "-0.0", "inf"])
def test_a_typed_zero_or_inf_still_meets_the_range_check(capsys, tmp_path, text):
    status, _, err = _cli(["train", f"--lr={text}", "--out", tmp_path / "r"], capsys)
    assert status == 2
    assert err == [f"error: --lr must be a finite positive number, got {float(text)!r}"]


def test_a_sweep_list_names_the_item_beyond_float64(capsys):
    status, _, err = _cli(["sweep", "run", "--lr", "1,1e-400"], capsys)
    assert status == 2
    assert err == ["error: python cli.py sweep run: argument --lr: '1e-400' is too small for a float64 (it reads as 0.0) "
                   "(item 2 of the list '1,1e-400') (see 'python cli.py sweep run --help')"]
    status, _, err = _cli(["sweep", "run", "--lr", "1,x"], capsys)
    assert err == ["error: python cli.py sweep run: argument --lr: 'x' is not a number (item 2 of the list '1,x') "
                   "(see 'python cli.py sweep run --help')"]


def test_a_word_that_is_no_number_keeps_argparses_wording(capsys, tmp_path):
    status, _, err = _cli(["generate", "--temperature", "warm", tmp_path], capsys)
    assert status == 2
    assert err == ["error: python cli.py generate: argument --temperature: invalid float value: 'warm' "
                   "(see 'python cli.py generate --help')"]
