"""config.py: one default per setting, read by the CLI; dict round trips; the README's API names."""
import dataclasses
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm import cli, clitrain
from rnnlm.config import (FORMAT, DataConfig, JacobianConfig, ModelConfig, TrainConfig, config_from_dict,
                          config_to_dict)
from rnnlm.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def _help(argv, capsys):
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())   # argparse wraps lines: compare word sequences


def _field(cls, name):
    return {f.name: f for f in dataclasses.fields(cls)}[name]


# ---------------------------------------------------------------- one set of defaults


def test_one_set_of_defaults():
    """The train command's model (E = H = 256, dropout 0.2) is the library's default model."""
    m = ModelConfig()
    assert (m.cell, m.emsize, m.hidden, m.layers, m.dropout) == ("lstm", 256, 256, 1, 0.2)
    assert TrainConfig().model == m and TrainConfig().data == DataConfig()
    assert m.vocab_size is None and m.with_vocab(50) == dataclasses.replace(m, vocab_size=50)


def test_train_help_shows_the_dataclass_defaults():
    out = subprocess.run([sys.executable, "cli.py", "train", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    text = " ".join(out.split())
    m, t = ModelConfig(), TrainConfig()
    for phrase in (f"embedding size (default {m.emsize})", f"hidden size (default {m.hidden})",
                   f"dropout probability, 0 = none (default {m.dropout})", f"BPTT window length (default {t.bptt})",
                   f"training streams (default {t.batch_size})", f"0 or none = off (default {t.clip_norm})",
                   f"passes over the training text (default {t.epochs})", "--hidden HIDDEN, --nhid HIDDEN",
                   "--layers LAYERS, --nlayers LAYERS", "{rnn,lstm,gru}", "{sgd,momentum,adagrad,adam}",
                   "learning rate (default per optimizer: sgd 20, momentum 2, adagrad 0.1, adam 0.001)"):
        assert phrase in text, phrase


def test_jacobian_help_and_init_take_the_same_defaults(capsys, monkeypatch):
    text = _help(["jacobian"], capsys)
    assert f"hidden size H (default {ModelConfig().hidden})" in text
    assert f"largest lag D (default {JacobianConfig().max_lag})" in text
    seen = {}

    def fake(config, **kw):
        seen["config"] = config
        raise UserError("stop here")

    from rnnlm import jacobianrun
    monkeypatch.setattr(jacobianrun, "run_jacobian", fake)
    assert cli.main(["jacobian", "--init"]) == 2
    assert seen["config"].model == ModelConfig()                       # bare --init = ModelConfig's defaults
    assert seen["config"].data == DataConfig() and seen["config"].vocab_size == JacobianConfig().vocab_size
    assert cli.main(["jacobian", "--init", "orthogonal", "--hidden", "32", "--cell", "rnn"]) == 2
    assert seen["config"].model == ModelConfig(init="orthogonal", hidden=32, cell="rnn")


def test_data_flags_default_to_the_dataclass():
    args = cli.build_parser().parse_args(["corpus", "info"])
    assert clitrain._data_config(args) == DataConfig()
    args = cli.build_parser().parse_args(["baseline", "--no-cache", "--max-vocab", "50"])
    assert clitrain._data_config(args) == DataConfig(use_cache=False, max_vocab=50)


def test_a_changed_dataclass_default_changes_the_parser(monkeypatch, capsys):
    monkeypatch.setattr(_field(ModelConfig, "hidden"), "default", 512)
    monkeypatch.setattr(_field(TrainConfig, "bptt"), "default", 70)
    monkeypatch.setattr(_field(DataConfig, "max_vocab"), "default", 777)
    text = _help(["train"], capsys)
    assert "hidden size (default 512)" in text and "BPTT window length (default 70)" in text
    assert "hidden size H (default 512)" in _help(["jacobian"], capsys)
    assert cli.build_parser().parse_args(["corpus", "info"]).max_vocab == 777


def test_train_flags_build_the_config():
    args = cli.build_parser().parse_args(["train", "--cell", "gru", "--nhid", "64", "--emsize", "64", "--tied",
                                          "--clip-value", "1", "--max-steps", "5", "--no-progress",
                                          "--corpus", "sintetico", "--max-vocab", "300"])
    config, resume = clitrain._train_config(args)
    assert resume is None
    assert config == TrainConfig(data=DataConfig(corpus="sintetico", max_vocab=300),
                                 model=ModelConfig(cell="gru", hidden=64, emsize=64, tied=True),
                                 clip_value=1.0, clip_norm=0.0, max_steps=5, max_minutes=0.0, progress=False)
    config, _ = clitrain._train_config(cli.build_parser().parse_args(["train"]))
    assert config == TrainConfig()


# ---------------------------------------------------------------- validation, dicts, format


def test_clip_rule_is_checked_by_the_config():
    with pytest.raises(UserError, match="choose one of --clip-norm and --clip-value"):
        TrainConfig(clip_norm=1.0, clip_value=1.0).validate()
    TrainConfig(clip_norm=0.0, clip_value=1.0).validate()
    with pytest.raises(UserError, match="not allowed with argument"):     # argparse's exclusion, one line
        cli.build_parser().parse_args(["train", "--clip-norm", "1", "--clip-value", "1"])


def test_validation_covers_model_and_data():
    TrainConfig().validate()                                    # no vocab_size yet: fine
    with pytest.raises(UserError, match="vocab_size must be at least 1"):
        ModelConfig().validate()                                # a model to build needs one
    ModelConfig(vocab_size=10).validate()
    with pytest.raises(UserError, match="unknown cell"):
        TrainConfig(model=ModelConfig(cell="transformer")).validate()
    with pytest.raises(UserError, match="--valid-fraction"):
        TrainConfig(data=DataConfig(valid_fraction=0.6, test_fraction=0.5)).validate()
    with pytest.raises(UserError, match="--omega"):
        TrainConfig(omega=1.0).validate()                      # lstm by default: Ω is rnn only
    with pytest.raises(UserError, match="not both"):
        JacobianConfig(run="runs/x", model=ModelConfig()).validate()


def test_dict_round_trip_and_format():
    cfg = TrainConfig(data=DataConfig(corpus="sintetico"), model=ModelConfig(cell="rnn", activation="relu"),
                      bptt=20, lr=1.0)
    d = config_to_dict(cfg)
    assert d["format"] == FORMAT and d["model"]["activation"] == "relu" and "vocab_size" not in d["model"]
    assert config_from_dict(d) == cfg and TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict(ModelConfig(vocab_size=9).to_dict()) == ModelConfig(vocab_size=9)
    assert DataConfig.from_dict(DataConfig(max_vocab=5).to_dict()) == DataConfig(max_vocab=5)


def test_the_flat_format_of_earlier_runs_still_loads():
    legacy = {k: v for k, v in config_to_dict(TrainConfig()).items() if k not in ("format", "model")}
    legacy.update(cell="gru", emsize=32, hidden=32, dropout=0.0)
    assert config_from_dict(legacy) == TrainConfig(model=ModelConfig(cell="gru", emsize=32, hidden=32, dropout=0.0))


@pytest.mark.parametrize("d,message", [
    ({"bptt": 3, "colour": "red"}, "does not know: colour"),
    ({"model": {"cell": "rnn", "wings": 2}}, "does not know: wings"),
    ({"data": {"corpus": "x", "language": "pt"}}, "does not know: language"),
    ({"format": FORMAT + 1}, "a newer rnnlm"),
])
def test_unknown_keys_are_one_user_error(d, message):
    with pytest.raises(UserError, match=message) as info:
        config_from_dict(d)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="does not know: depth"):
        ModelConfig.from_dict({"depth": 3})


def test_resume_changes_only_the_budget():
    saved = TrainConfig(model=ModelConfig(hidden=64), out="runs/a")
    assert saved.resumed({"epochs": 5, "model": {"hidden": 64}}) == dataclasses.replace(saved, epochs=5)
    assert saved.resumed({"max_steps": 9}, out="runs/b").out == "runs/b"
    for overrides in ({"hidden": 32}, {"model": {"hidden": 32}}, {"data": {"max_vocab": 5}}, {"bptt": 70}):
        with pytest.raises(UserError, match="--resume keeps the run's settings"):
            saved.resumed(overrides)


# ---------------------------------------------------------------- layering


def test_config_and_the_parser_load_no_numerics():
    code = ("import sys; from rnnlm import cli; cli.build_parser().format_help(); "
            "assert not {'numpy', 'numba'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_argparse_only_in_the_cli():
    for path in sorted((ROOT / "rnnlm").glob("*.py")):
        if path.name.startswith("cli"):       # cli.py and its command modules (cliflags.py, clitrain.py, ...)
            continue
        src = path.read_text(encoding="utf-8")
        assert "argparse" not in src, path.name
        assert not re.search(r"\bargs\.\w", src), f"{path.name} reads an argparse Namespace"


# ---------------------------------------------------------------- the README's Python API


def _readme_names():
    """(module, name) for every API name the README shows: `from rnnlm.x import a, b` (in code blocks or
    inline), `from rnnlm import x`, inline `rnnlm.x.y` and `rnnlm.x.a/b`, and `Name.attr` where Name is
    one of those imports (`jacobian.lag_curve(...)`, `RNNModel.bptt(...)`, `TrainConfig.to_dict()`)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    names, imported = set(), {}
    for mod, items in re.findall(r"\bfrom (rnnlm(?:\.\w+)*) import ([\w, ]+)", text):
        for item in (i.strip() for i in items.split(",")):
            names.add((mod, item))
            imported[item] = mod
    for dotted in re.findall(r"\brnnlm(?:\.\w+)+(?:/\w+)*", text):
        head, *alternatives = dotted.split("/")
        mod, name = head.rsplit(".", 1)
        names |= {(mod, n) for n in [name, *alternatives]}
    for name, attr in re.findall(r"(?<![\w.])(\w+)\.(\w+)\(", text):
        if name in imported:
            names.add((imported[name], f"{name}.{attr}"))
    return sorted(names)


def test_readme_api_names_import_from_where_the_readme_says():
    names = _readme_names()
    for expected in (("rnnlm.model", "ModelConfig"), ("rnnlm.config", "TrainConfig"), ("rnnlm.train", "train"),
                     ("rnnlm", "jacobian.lag_curve"), ("rnnlm.model", "RNNModel.loss_and_grads"),
                     ("rnnlm.config", "TrainConfig.from_dict"), ("rnnlm.config", "JacobianConfig"),
                     ("rnnlm.step", "train_step"), ("rnnlm.summary", "format_summary")):
        assert expected in names
    missing = [f"{mod}: {name}" for mod, name in names if _resolve(mod, name) is None]
    assert not missing, f"the README shows names the code lacks: {missing}"
    assert _resolve("rnnlm.model", "RNNModel.no_such_method") is None and _resolve("rnnlm.nothing", "x") is None


def _resolve(mod, name):
    """The object `name` (dotted) of module `mod`, importing submodules on the way; None if absent."""
    try:
        obj = importlib.import_module(mod)
    except ImportError:
        return None
    for part in name.split("."):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(f"{obj.__name__}.{part}")
        except (ImportError, AttributeError):
            return None
    return obj


@pytest.mark.parametrize("part,key,value", [("model", "hidden", "big"), ("model", "hidden", 16.5),
                                            ("model", "dropout", "x"), (None, "bptt", "x"),
                                            (None, "nesterov", 1), ("data", "max_vocab", True),
                                            ("model", "cell", None)])
def test_a_setting_of_the_wrong_type_is_one_line(part, key, value):
    """A hand-edited config.json ("hidden": "big") is refused by name, not with a TypeError."""
    d = TrainConfig().to_dict()
    (d[part] if part else d)[key] = value
    with pytest.raises(UserError, match=f"setting '{key}' must be"):
        TrainConfig.from_dict(d)
    ok = TrainConfig().to_dict()
    ok["lr"], ok["model"]["dropout"] = 20, 0      # ints where floats are asked are fine
    assert TrainConfig.from_dict(ok).lr == 20


def test_a_refused_resume_names_flags_not_config_fields():
    from rnnlm.config import TrainConfig
    from rnnlm.settings import flag
    from rnnlm.errors import UserError
    assert (flag("max_steps"), flag("progress"), flag("task_bptt"), flag("lr")) == \
        ("--max-steps", "--no-progress", "--bptt", "--lr")
    with pytest.raises(UserError) as info:
        TrainConfig().resumed({"lr": 1.0, "model": {"hidden": 7}})
    message = str(info.value)
    assert "cannot change --hidden (" in message and "--lr (" in message
    assert "(only --epochs, --max-steps, --max-minutes," in message and "max_steps" not in message


def test_every_flag_a_resume_may_change_is_a_train_flag():
    from rnnlm import config as C
    from rnnlm.settings import flag
    train = [a for a in cli.build_parser()._actions if a.__class__.__name__ == "_SubParsersAction"][0].choices["train"]
    options = {o for a in train._actions for o in a.option_strings}
    assert [flag(n) for n in C.RESUME_OVERRIDABLE if flag(n) not in options] == []
