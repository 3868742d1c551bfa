"""Checks made before the work: an --out that cannot be written, agreement distances beyond the probe's
longest, and Python arguments of the wrong kind named in one line."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlm import jacobianrun, probes
from rnnlm.cli import main
from rnnlm.config import DataConfig, ModelConfig, TrainConfig, config_to_dict
from rnnlm.errors import UserError
from rnnlm.fileio import atomic_write_json, check_writable

ADVICE = "give --out FILE.json in a writable folder"


def _pseudo(folder: str) -> None:
    """Skip where `folder` is not a pseudo file system that takes no new files (not Linux)."""
    try:
        fd = os.open(os.path.join(folder, "rnnlm-s32-probe"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return
    os.close(fd)
    os.remove(os.path.join(folder, "rnnlm-s32-probe"))
    pytest.skip(f"{folder} takes new files here")


# ---------------------------------------------------------------- 1. --out checked by trying, before measuring


@pytest.mark.parametrize("folder", ["/proc", "/sys"])
def test_check_writable_refuses_a_folder_that_takes_no_new_files(folder):
    _pseudo(folder)
    with pytest.raises(UserError) as e:
        check_writable(f"{folder}/x.json")
    msg = str(e.value)     # (/proc: No such file or directory; /sys: Permission denied, even to root)
    assert msg.startswith(f"cannot write {folder}/x.json: the folder {folder} does not take new files (")
    assert msg.endswith(f"); {ADVICE}") and "\n" not in msg
    with pytest.raises(UserError, match=rf"cannot write {folder}/a/b/x.json: the folder {folder} does not take "
                                        rf"new folders \("):
        check_writable(f"{folder}/a/b/x.json")


def test_check_writable_leaves_nothing_behind(tmp_path):
    check_writable(tmp_path / "x.json")
    check_writable(tmp_path / "new" / "sub" / "x.json")
    assert list(tmp_path.iterdir()) == []


def _refuse():
    def measured(*args, **kwargs):
        raise AssertionError("loaded or measured before --out was checked")
    return measured


def test_jacobian_init_refuses_an_out_in_proc_before_loading_anything(monkeypatch, capsys):
    _pseudo("/proc")
    monkeypatch.setattr(jacobianrun, "_init_model", _refuse())
    monkeypatch.setattr(jacobianrun, "lag_curve", _refuse())
    capsys.readouterr()
    assert main(["jacobian", "--init", "orthogonal", "--cell", "lstm", "--hidden", "256", "--max-lag", "100",
                 "--anchors", "32", "--out", "/proc/x.json"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: cannot write /proc/x.json: the folder /proc does not take new files (No such file or directory); "
        f"{ADVICE}"]


def test_jacobian_still_writes_a_writable_out(tmp_path, capsys):
    out = tmp_path / "j.json"
    assert main(["jacobian", "--init", "orthogonal", "--cell", "rnn", "--hidden", "4", "--emsize", "4",
                 "--corpus", "none", "--vocab-size", "10", "--max-lag", "3", "--anchors", "2", "--tokens", "20",
                 "--out", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["meta"]["max_lag"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.json"]


def test_probe_refuses_an_out_in_proc_before_the_model_loads(tmp_path, monkeypatch, capsys):
    _pseudo("/proc")
    monkeypatch.setattr(probes, "_load", _refuse())
    capsys.readouterr()
    assert main(["probe", "agreement", str(tmp_path), "--out", "/proc/x.json"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: cannot write /proc/x.json: the folder /proc does not take new files (No such file or directory); "
        f"{ADVICE}"]


# ---------------------------------------------------------------- 2. agreement distances: at most 1000

BEYOND = "the longest distance the agreement probe builds sentences for (1000); give distances up to 1000"


def test_probe_agreement_refuses_a_distance_beyond_the_longest_before_the_model_loads(tmp_path, monkeypatch,
                                                                                         capsys):
    monkeypatch.setattr(probes, "_load", _refuse())
    capsys.readouterr()
    assert main(["probe", "agreement", str(tmp_path), "--distances", "1..100000", "--n", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: --distances: 100000 is beyond {BEYOND}"]


def test_parse_distances_limit():
    assert probes.parse_distances("1..1000", most=1000)[-1] == 1000
    assert probes.parse_distances("2..1001:7", most=1000)[-1] == 996      # the range's last distance counts
    assert probes.parse_distances("1..100000")[-1] == 100000             # no limit unless asked (context)
    with pytest.raises(ValueError) as e:
        probes.parse_distances("5,2000", most=1000)
    assert str(e.value) == "parse_distances: 2000 is beyond the longest distance allowed (1000); give distances up to 1000"
    with pytest.raises(UserError) as e:
        probes.parse_distances("1..100000:7", flags=True, most=probes.MAX_AGREEMENT_DISTANCE,
                               beyond=probes.AGREEMENT_BEYOND)
    assert str(e.value) == f"--distances: 99996 is beyond {BEYOND}"


def test_agreement_probe_refuses_a_distance_beyond_the_longest():
    def score(prefixes, candidates):
        raise AssertionError("scored before the distances were checked")
    with pytest.raises(ValueError) as e:
        probes.agreement_probe(score, {"<eos>": 0}, [1, 1001], 1)
    assert str(e.value) == ("agreement_probe: distance 1001 is beyond the longest distance the agreement probe "
                            "builds sentences for (1000); give distances up to 1000")


# ---------------------------------------------------------------- 3. Python arguments named


@pytest.mark.parametrize("corpus, shown", [(5, "5 (an integer)"), (None, "None (null)")])
def test_data_config_refuses_a_corpus_that_is_no_path(corpus, shown):
    from rnnlm.data import load_corpus
    msg = f"corpus must be a corpus name or a path, a str or os.PathLike, got {shown}"
    with pytest.raises(UserError) as e:
        DataConfig(corpus=corpus).validate()
    assert str(e.value) == msg
    with pytest.raises(UserError) as e:
        load_corpus(DataConfig(corpus=corpus))
    assert str(e.value) == msg


def test_a_path_corpus_is_kept_as_its_str_and_written_to_json(tmp_path):
    text = tmp_path / "t.txt"
    data = DataConfig(corpus=text, corpora_dir=tmp_path)
    assert data.corpus == str(text) and data.corpora_dir == str(tmp_path)
    data.validate()
    later = DataConfig()
    later.corpus = text              # set after construction: validate makes it a str too
    later.validate()
    assert later.corpus == str(text)
    d = config_to_dict(TrainConfig(data=DataConfig(corpus=text)))
    atomic_write_json(tmp_path / "config.json", {"train": d})
    assert json.loads((tmp_path / "config.json").read_text())["train"]["data"]["corpus"] == str(text)


def test_a_path_corpus_trains_and_its_config_json_holds_a_str(tmp_path, text):
    from rnnlm.train import train
    out = tmp_path / "run"
    cfg = TrainConfig(data=DataConfig(corpus=Path(text), max_vocab=300, valid_fraction=0.1, test_fraction=0.1),
                      model=ModelConfig(cell="rnn", emsize=8, hidden=8), bptt=8, batch_size=4, eval_batch_size=4,
                      max_steps=3, eval_every=0, progress=False, sample_words=0, out=str(out))
    train(cfg)
    assert json.loads((out / "config.json").read_text())["train"]["data"]["corpus"] == str(text)


def test_load_corpus_refuses_a_name_in_place_of_a_data_config():
    from rnnlm.data import load_corpus
    with pytest.raises(TypeError) as e:
        load_corpus("machado")
    assert str(e.value) == ("load_corpus: config must be a DataConfig, got 'machado' (str): "
                            "pass DataConfig(corpus='machado')")


def test_load_model_and_train_name_a_run_that_is_no_path():
    from rnnlm.runs import load_model
    from rnnlm.train import train
    with pytest.raises(TypeError) as e:
        load_model(123)
    assert str(e.value) == "load_model: run must be a run folder or a checkpoint .npz, a str or os.PathLike, got 123 (int)"
    with pytest.raises(TypeError) as e:
        train(TrainConfig(max_steps=3), resume=123)
    assert str(e.value) == "train: resume must be a run folder, a str or os.PathLike, got 123 (int)"


def test_lag_curve_tol_of_the_wrong_kind_is_a_type_error():
    from rnnlm.jacobian import lag_curve
    from rnnlm.model import RNNModel
    model = RNNModel(ModelConfig(vocab_size=10, cell="rnn", emsize=4, hidden=4), seed=0)
    tokens = np.arange(10) % 10
    with pytest.raises(TypeError) as e:
        lag_curve(model, tokens, max_lag=2, anchors=2, tol="x")
    assert str(e.value) == "lag_curve: tol must be a number in (0, 1), got 'x' (str)"
    with pytest.raises(ValueError) as e:
        lag_curve(model, tokens, max_lag=2, anchors=2, tol=2.0)
    assert str(e.value) == "lag_curve: tol must be a number in (0, 1), got 2.0"


def test_the_agreement_probe_says_what_it_scores_and_shows_a_bar_on_a_terminal(monkeypatch):
    """A long probe was silent (stderr a file: not a line; a terminal: no bar)."""
    import io
    import numpy as np
    from rnnlm import probes, runs
    from rnnlm.config import ModelConfig
    from rnnlm.model import RNNModel
    model = RNNModel(ModelConfig(vocab_size=20, cell="gru", emsize=4, hidden=4), seed=0)
    rows = [[1, 2, 3], [4, 5], [6, 7, 8], [9]]
    err = io.StringIO()
    monkeypatch.setattr(runs, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(probes.sys, "stderr", err)
    lp = probes.final_logprobs(model, rows, np.array([[1, 2]] * 4), batch_size=2, bar="scoring sentence pairs")
    assert lp.shape == (4, 2) and np.all(np.isfinite(lp))
    assert err.getvalue().startswith("\rscoring sentence pairs:   0%|") and "| 0/4 [" in err.getvalue()
    assert np.array_equal(lp, probes.final_logprobs(model, rows, np.array([[1, 2]] * 4), batch_size=2))
