"""Checkpoint files: round trip, atomic writes, and every kind of bad file refused with one line."""
import pickle

import numpy as np
import pytest

from rnnlm import checkpoint
from rnnlm.errors import UserError


def _model_arrays():
    rng = np.random.default_rng(0)
    return {"encoder.weight": rng.standard_normal((7, 4)).astype(np.float32),
            "rnn.weight_hh_l0": rng.standard_normal((16, 4)).astype(np.float32),
            "decoder.bias": np.zeros(7, dtype=np.float32)}


def _save(path, **kw):
    checkpoint.save(path, _model_arrays(), config={"cell": "lstm", "seed": 3},
                    vocab={"itos": ["<unk>", "<eos>", "olá"]},
                    optim={"name": "adam", "lr": np.array(0.5), "exp_avg.decoder.bias": np.ones(7, np.float32)},
                    train={"step": np.array(12), "rng": '{"state": 1}'}, **kw)


def test_round_trip(tmp_path):
    p = tmp_path / "model.npz"
    _save(p)
    ck = checkpoint.load(p)
    for k, a in _model_arrays().items():
        np.testing.assert_array_equal(ck.model[k], a)
        assert ck.model[k].dtype == a.dtype
    assert set(ck.model) == set(_model_arrays())
    assert ck.config == {"cell": "lstm", "seed": 3}
    assert ck.vocab == {"itos": ["<unk>", "<eos>", "olá"]}
    assert str(ck.optim["name"]) == "adam" and float(ck.optim["lr"]) == 0.5
    np.testing.assert_array_equal(ck.optim["exp_avg.decoder.bias"], np.ones(7))
    assert int(ck.train["step"]) == 12 and str(ck.train["rng"]) == '{"state": 1}'
    # Self-describing and pickle-free: a plain numpy reader sees the names and the format.
    with np.load(p, allow_pickle=False) as z:
        assert str(z["meta.format"]) == checkpoint.FORMAT
        assert "optim.exp_avg.decoder.bias" in z.files and "train.step" in z.files


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "model.npz"
    _save(p)
    before = p.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        _save(p)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["model.npz"]


def test_object_arrays_are_never_written(tmp_path):
    with pytest.raises(ValueError, match="object"):
        checkpoint.save(tmp_path / "x.npz", {"a": np.array([{"x": 1}], dtype=object)}, config={})


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_file_refused(tmp_path, cut):
    p = tmp_path / "model.npz"
    _save(p)
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(UserError, match="corrupt or truncated"):
        checkpoint.load(p)


def test_corrupted_bytes_refused(tmp_path):
    p = tmp_path / "model.npz"
    _save(p)
    data = bytearray(p.read_bytes())
    data[200:260] = b"x" * 60
    p.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt or truncated"):
        checkpoint.load(p)


def test_foreign_npz_refused(tmp_path):
    p = tmp_path / "weights.npz"
    np.savez(p, W=np.ones(3), b=np.zeros(2))
    with pytest.raises(UserError, match="not an rnnlm checkpoint.*W, b"):
        checkpoint.load(p)


def test_pickled_npy_refused(tmp_path):
    p = tmp_path / "model.npz"
    with open(p, "wb") as f:
        np.save(f, np.array([{"encoder.weight": np.ones(2)}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="pickled"):
        checkpoint.load(p)


def test_npz_with_object_member_refused(tmp_path):
    p = tmp_path / "model.npz"
    np.savez(p, **{"meta.format": np.array(checkpoint.FORMAT), "x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(UserError, match="pickled"):
        checkpoint.load(p)


def test_raw_pickle_refused(tmp_path):
    p = tmp_path / "model.npz"
    p.write_bytes(pickle.dumps({"encoder.weight": [1.0, 2.0]}))
    with pytest.raises(UserError, match="pickle"):
        checkpoint.load(p)


def test_other_files_refused(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        checkpoint.load(tmp_path / "missing.npz")
    with pytest.raises(UserError, match="folder"):
        checkpoint.load(tmp_path)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(UserError, match="not an .npz"):
        checkpoint.load(text)
    plain = tmp_path / "one.npz"
    with open(plain, "wb") as f:
        np.save(f, np.ones(3))
    with pytest.raises(UserError, match="single .npy"):
        checkpoint.load(plain)


def test_other_format_version_refused(tmp_path):
    p = tmp_path / "model.npz"
    np.savez(p, **{"meta.format": np.array("rnnlm-checkpoint/99"), "meta.config": np.array("{}")})
    with pytest.raises(UserError, match="rnnlm-checkpoint/99"):
        checkpoint.load(p)


def test_check_model_arrays_names_the_mismatch(tmp_path):
    p = tmp_path / "model.npz"
    _save(p)
    ck = checkpoint.load(p)
    checkpoint.check_model_arrays(ck, _model_arrays())
    bigger = dict(_model_arrays(), **{"encoder.weight": np.zeros((9, 4), np.float32)})
    with pytest.raises(UserError, match=r"encoder.weight has shape \(7, 4\).*\(9, 4\)"):
        checkpoint.check_model_arrays(ck, bigger)
    with pytest.raises(UserError, match="lacks model arrays rnn.weight_ih_l0"):
        checkpoint.check_model_arrays(ck, dict(_model_arrays(), **{"rnn.weight_ih_l0": np.zeros(1)}))
