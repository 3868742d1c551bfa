"""The Python API refuses what it cannot use, in one line of a sensible type, instead of computing something
else (a truthy string ties the weights, float ids are truncated) or failing deep in NumPy or Numba."""
import json

import numpy as np
import pytest

from rnnlm.activations import ModelConfigError
from rnnlm.config import DataConfig, ModelConfig, TrainConfig
from rnnlm.data import batchify
from rnnlm.errors import UserError
from rnnlm.model import RNNModel


def _model(**kw):
    return RNNModel(ModelConfig(**{"vocab_size": 50, "hidden": 8, "emsize": 8, "cell": "rnn", "dropout": 0.0, **kw}))


@pytest.mark.parametrize("value", ["no", "false", 1, None])
def test_tied_must_be_a_bool(value):
    with pytest.raises(ModelConfigError, match=rf"^tied must be True or False, got {value!r} \("):
        _model(tied=value)


def test_bools_of_every_config_are_checked():
    with pytest.raises(UserError, match=r"^keep_case must be True or False, got 'False' \(a string\)$"):
        TrainConfig(data=DataConfig(keep_case="False")).validate()
    with pytest.raises(UserError, match=r"^nesterov must be True or False, got 'yes' \(a string\)$"):
        TrainConfig(nesterov="yes").validate()
    _model(tied=np.bool_(False))     # numpy's bool is a bool


def test_integral_float_counts_become_ints():
    m = _model(hidden=8.0, emsize=8.0, layers=1.0)
    assert (m.config.hidden, type(m.config.hidden)) == (8, int)
    assert m.params["rnn.weight_hh_l0"].shape == (8, 8)
    cfg = TrainConfig(bptt=35.0, batch_size=8.0)
    assert (cfg.bptt, cfg.batch_size) == (35, 8) and type(cfg.bptt) is int
    with pytest.raises(ModelConfigError, match=r"^hidden must be an integer, got 8\.5 \(a number\)$"):
        _model(hidden=8.5)


def test_batchify_refuses_float_and_out_of_range_ids():
    with pytest.raises(TypeError, match=r"^batchify: ids must be integer token ids, got dtype float64 "):
        batchify(np.array([0.7, 1.9, 2.5, 3.99, -0.5, 5.2]), 2)
    with pytest.raises(ValueError, match=r"^batchify: ids must be token ids in \[0, 2,147,483,647\], got "
                                         r"1099511627776$"):
        batchify(np.array([2**40, 3, 4, 5]), 2)
    with pytest.raises(ValueError, match=r"^batchify: ids must be 1-D"):
        batchify(np.arange(12).reshape(3, 4), 2)
    with pytest.raises(TypeError, match=r"^batchify: batch_size must be an int >= 1, got 2\.0"):
        batchify(np.arange(12), 2.0)
    assert batchify(np.arange(7), 2).tolist() == [[0, 3], [1, 4], [2, 5]]


def test_model_arguments():
    m = _model()
    with pytest.raises(TypeError, match=r"^init_state: batch_size must be an int >= 1, got 2\.0"):
        m.init_state(2.0)
    with pytest.raises(ValueError, match=r"^init_state: batch_size must be an int >= 1, got -1$"):
        m.init_state(-1)
    with pytest.raises(ValueError, match=r"^init_state: batch_size must be an int >= 1, got 0$"):
        m.init_state(0)
    with pytest.raises(ModelConfigError, match=r"^seed must be between 0 and 4294967295, got -1$"):
        RNNModel(m.config, seed=-1)
    with pytest.raises(ModelConfigError, match=r"^seed must be an integer, got 1\.5"):
        RNNModel(m.config, seed=1.5)
    with pytest.raises(TypeError, match=r"^RNNModel: config must be a ModelConfig, got dict"):
        RNNModel({"vocab_size": 50})
    x = np.zeros((3, 2), np.int64)
    d = _model(dropout=0.5)
    with pytest.raises(TypeError, match=r"^loss_and_grads: rng must be a numpy Generator, e\.g\. "
                                        r"np\.random\.default_rng\(0\), or None \(no dropout\), got 0 \(int\)$"):
        d.loss_and_grads(x, x, rng=0)


def test_replaced_parameters_are_named():
    m = _model()
    x = np.zeros((3, 2), np.int64)
    loss = m.loss(x, x)[0]
    m.params["rnn.weight_hh_l0"] = np.random.default_rng(0).standard_normal((8, 8))       # float64
    with pytest.raises(ValueError, match=r"^loss_and_grads: params\['rnn\.weight_hh_l0'\] must be a C-contiguous "
                                         r"float32 array of shape \(8, 8\), got shape \(8, 8\), dtype float64: assign "):
        m.loss_and_grads(x, x)
    m.params["rnn.weight_hh_l0"] = np.zeros((8, 8), np.float32, order="F")[:, ::1].T.copy(order="F")
    with pytest.raises(ValueError, match=r"not C-contiguous"):
        m.loss(x, x)
    m.params["rnn.weight_hh_l0"] = np.zeros((4, 16), np.float32)
    with pytest.raises(ValueError, match=r"got shape \(4, 16\), dtype float32"):
        m.step_logprobs(np.zeros(2, np.int64))
    m.params["rnn.weight_hh_l0"] = np.zeros((8, 8), np.float32)
    assert np.isfinite(m.loss(x, x)[0]) and m.loss(x, x)[0] != loss     # in-place shapes work, and count


def test_nonfinite_state_dict_entry_says_how_many():
    m = _model()
    d = m.state_dict()
    d["decoder.bias"][[1, 4]] = np.nan
    with pytest.raises(ModelConfigError, match=r"^state dict entry decoder\.bias: 2 of its 50 values are not "
                                               r"finite \(nan or inf\)"):
        m.load_state_dict(d)


def test_a_deleted_best_npz_is_refused_not_replaced_by_the_latest_model(text, tmp_path, capsys):
    from test_train import tiny
    from rnnlm.cli import main
    from rnnlm.runs import load_model
    from rnnlm.train import train
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=6, eval_every=3, epochs=5))
    best = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    best = min((e for e in best if e["type"] == "eval" and e["split"] == "valid"), key=lambda e: e["val_loss"])
    (run / "best.npz").unlink()
    with pytest.raises(UserError) as e:
        load_model(run)
    assert str(e.value) == (f"{run} has no best.npz, though its metrics.jsonl records 2 validations (the best at step "
                            f"{best['step']}): it was deleted or moved; restore it, or read the latest model instead "
                            f"with --checkpoint latest")
    assert load_model(run, "latest")[3] == run / "model.npz"
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    assert "has no best.npz, though" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--checkpoint", "latest"]) == 0


def test_evaluation_helpers_refuse_what_they_cannot_read(text, tmp_path):
    from test_train import tiny
    from rnnlm.evaluate import evaluate_stream, run_evaluate
    from rnnlm.train import train
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=2))
    with pytest.raises(ValueError, match=r"^evaluate_stream: stream must be a batchified \(rows, B\) array "
                                         r"\(data\.batchify\(ids, B\)\), got shape \(40,\)$"):
        evaluate_stream(_model(), np.arange(40), 5)
    for kw in ({"batch_size": 0}, {"bptt": 0}):
        with pytest.raises(UserError, match=r"^--batch-size and --bptt must be at least 1$"):
            run_evaluate(run, **kw)        # 0 is not "the run's own value"
    assert run_evaluate(run, batch_size=3)["batch_size"] == 3


def test_train_resume_with_settings_other_than_the_runs_says_how_to_build_them(text, tmp_path):
    from test_train import tiny
    from rnnlm.runs import resume_config
    from rnnlm.train import train
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=2))
    with pytest.raises(UserError) as e:
        train(tiny(text, None, hidden=32, max_steps=4), resume=run)
    msg = str(e.value)
    assert msg.startswith(f"the settings given to resume {run} are not the run's own (its config.json): cannot "
                          f"change --hidden (16 -> 32) (only --")
    assert msg.endswith("; build them with resume_config(RUN, overrides), as the CLI's --resume does")
    s = train(tiny(text, None, max_steps=4), resume=run)        # the same settings, a budget changed: resumes
    assert s["steps"] == 4
    assert train(resume_config(run, {"max_steps": 6}), resume=run)["steps"] == 6


def test_train_refuses_a_config_that_is_no_trainconfig_and_an_out_that_is_a_file(tmp_path):
    from rnnlm.train import train
    with pytest.raises(TypeError, match=r"^train: config must be a TrainConfig, got NoneType$"):
        train(None)
    with pytest.raises(TypeError, match=r"^train: config must be a TrainConfig, got dict: build one with "
                                        r"rnnlm\.config\.config_from_dict\(d\)$"):
        train({"bptt": 10})
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(UserError, match=rf"^{f} is a file, not a run folder; give another --out$"):
        train(TrainConfig(out=str(f)))
    with pytest.raises(UserError, match=rf"^{f} is not a run folder \(no config\.json\)$"):
        train(TrainConfig(), resume=f)
    assert f.read_text() == "x"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_cell_kernels_name_a_wrong_dtype_or_shape(cell):
    import importlib
    mod = importlib.import_module(f"rnnlm.{cell}")
    g = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    T, B, E, H = 4, 2, 3, 5
    rng = np.random.default_rng(0)
    W_ih, W_hh = rng.standard_normal((g * H, E)), rng.standard_normal((g * H, H))
    b = np.zeros(g * H)
    h0 = np.zeros((B, H))
    x = rng.standard_normal((T, B, E))

    def run(x=x, W_hh=W_hh, h0=h0, dtype=np.float64):
        cache = getattr(mod, f"{cell}_alloc")(T, B, E, H, dtype)
        args = (x, h0) + ((h0,) if cell == "lstm" else ()) + (W_ih, W_hh, b, b) + (("tanh",) if cell == "rnn" else ())
        return getattr(mod, f"{cell}_forward")(cache, *args)
    assert np.isfinite(run().h).all()
    with pytest.raises(ValueError, match=rf"^{cell}_forward: x must be float32 \(the cache's dtype\), got float64: "
                                         r"convert it with \.astype\(np\.float32\)$"):
        run(dtype=np.float32)
    with pytest.raises(ValueError, match=rf"^{cell}_forward: x must be \(T, B, E\), got shape \(8, 3\)$"):
        run(x=x.reshape(8, 3))
    with pytest.raises(ValueError, match=rf"^{cell}_forward: h0 must have shape \(2, 5\), got \(3, 5\)$"):
        run(h0=np.zeros((3, H)))
    with pytest.raises(TypeError, match=rf"^{cell}_forward: W_hh must be a numpy array"):
        run(W_hh=W_hh.tolist())


def test_plot_training_says_which_damaged_metrics_lines_it_skipped(tmp_path, capsys):
    from rnnlm.plotruns import read_metrics
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text("{}")
    good = [json.dumps({"type": "step", "step": k, "loss_avg": 5.0}) for k in range(1, 6)]
    (run / "metrics.jsonl").write_text("\n".join(good[:2] + ["garbage", "{cut"] + good[2:] + ['{"type": "st']))
    assert [e["step"] for e in read_metrics(run)] == [1, 2, 3, 4, 5]
    assert capsys.readouterr().err == (f"note: {run / 'metrics.jsonl'}: 2 lines before the last are not JSON (lines "
                                       f"3-4; damaged or edited by hand) and were skipped\n")
    (run / "metrics.jsonl").write_text("\n".join(good + ['{"type": "st']))       # only a cut last line: no note
    assert len(read_metrics(run)) == 5 and capsys.readouterr().err == ""


def test_help_of_every_config_says_what_each_field_means():
    import dataclasses
    import pydoc
    from rnnlm import config as C
    for cls in (C.ModelConfig, C.DataConfig, C.TrainConfig, C.JacobianConfig, C.TaskTrainConfig, C.StudyConfig):
        text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
        for f in dataclasses.fields(cls):
            assert f"\n |  {f.name}: " in text, (cls.__name__, f.name)
    doc = C.ModelConfig.__doc__
    assert "    recurrent_scale: float = 1.0\n        multiplies every W_hh after init (> 1 to provoke explosions)\n" \
        in doc
    assert "    forget_bias: float = 0.0\n        lstm: added to the forget-gate bias at init\n" in doc


def test_a_run_folder_without_config_json_says_its_checkpoints_still_read(text, tmp_path, capsys):
    from test_train import tiny
    from rnnlm.cli import main
    from rnnlm.train import train
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=3, eval_every=3))
    (run / "config.json").unlink()
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    assert capsys.readouterr().err == (
        f"error: {run} is not a run folder (no config.json), but it holds best.npz and model.npz: evaluate, "
        f"generate, jacobian and probe read a checkpoint file alone ({run / 'best.npz'}); to resume, restore "
        f"config.json\n")
    assert main(["evaluate", str(run / "best.npz")]) == 0


def test_a_wrong_recurrent_matrix_is_the_array_named():
    from rnnlm import gru
    T, B, E, H = 3, 2, 4, 5
    rng = np.random.default_rng(0)
    args = (rng.standard_normal((T, B, E)), np.zeros((B, H)), rng.standard_normal((3 * H, E)),
            rng.standard_normal((3 * H, H + 1)), np.zeros(3 * H), np.zeros(3 * H))
    with pytest.raises(ValueError, match=r"^gru_forward: W_hh must have shape \(15, 5\), got \(15, 6\)$"):
        gru.gru_forward(gru.gru_alloc(T, B, E, H, np.float64), *args)
    with pytest.raises(TypeError, match=r"^gru_forward: cache must be the cell's cache"):
        gru.gru_forward(None, *args)
    with pytest.raises(ValueError, match=r"^gru_forward: x must be \(T, B, E\) with every size at least 1, got "
                                         r"shape \(0, 2, 4\)$"):
        gru.gru_forward(gru.gru_alloc(T, B, E, H, np.float64), np.zeros((0, B, E)), *args[1:])


def test_the_learning_rate_defaults_named_in_help_are_the_ones_used():
    from rnnlm import config as C
    doc = C.TrainConfig.__doc__
    assert "DEFAULT_LR: " + ", ".join(f"{k} {v:g}" for k, v in C.DEFAULT_LR.items()) + ")" in doc
    assert f"None = lr x {C.MIN_LR_FACTOR:.0e}".replace("e-06", "e-6") + " (MIN_LR_FACTOR)" in doc
