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


# ---------------------------------------------------------------- a model trained in Python, saved

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny gru trained a few windows in the user's own loop on sintetico, as the README's Python API does."""
    import numpy as np

    from rnnlm.data import DataConfig, batchify, load_corpus, windows
    from rnnlm.model import ModelConfig, RNNModel
    corpus = load_corpus(DataConfig(corpus="sintetico"))
    model = RNNModel(ModelConfig(vocab_size=len(corpus.vocab), cell="gru", emsize=8, hidden=8), seed=0)
    state, rng = model.init_state(4), np.random.default_rng(0)
    for i, (_, x, y) in enumerate(windows(batchify(corpus.train, 4), 10)):
        _, grads, state = model.loss_and_grads(x, y, state, rng=rng)
        for k, g in grads.items():
            model.params[k] -= 0.5 * g
        if i == 5:
            break
    return model, corpus, tmp_path_factory.mktemp("saved")


def test_a_model_saved_from_python_is_read_by_every_command(trained, capsys, monkeypatch):
    """A Python user found no documented save; checkpoint.save with the model's settings alone gave a file
    that evaluate and jacobian crashed on (KeyError: 'train'). runs.save_model writes what every command
    reads, and the commands' figures are the model's own."""
    import numpy as np

    from rnnlm.evaluate import evaluate_stream
    from rnnlm.data import batchify
    from rnnlm.runs import load_model, save_model
    model, corpus, folder = trained
    path = save_model(folder / "m.npz", model, corpus.vocab, corpus)
    assert path == folder / "m.npz"
    back, vocab, info, _ = load_model(path)
    assert back.config == model.config and vocab == corpus.vocab
    assert all(np.array_equal(back.params[k], model.params[k]) for k in model.params)
    assert info["corpus"]["checksum"] == corpus.checksum and info["train"]["model"]["cell"] == "gru"
    loss, _ = evaluate_stream(model, batchify(corpus.test, 10), 35)
    assert main(["evaluate", str(path), "--split", "test"]) == 0
    assert f"perplexity: {np.exp(loss):.2f}" in capsys.readouterr().out
    monkeypatch.chdir(folder)        # (the corpus's place is recorded whole: read from any folder)
    assert main(["jacobian", "m.npz", "--max-lag", "3", "--anchors", "2", "--out", "j.json", "--no-progress"]) == 0
    assert main(["generate", "m.npz", "--words", "5", "--seed", "1"]) == 0
    assert main(["score", "m.npz", "o menino que"]) == 0
    capsys.readouterr()


def test_save_model_refuses_what_would_not_read_back(trained):
    from rnnlm.config import ModelConfig, TrainConfig
    from rnnlm.errors import UserError
    from rnnlm.runs import save_model
    from rnnlm.vocab import Vocab
    model, corpus, folder = trained
    with pytest.raises(TypeError, match="save_model: vocab must be a rnnlm.vocab.Vocab, got dict"):
        save_model(folder / "x.npz", model, corpus.vocab.to_json(), corpus)
    with pytest.raises(UserError, match="path must end in .npz"):
        save_model(folder / "x.txt", model, corpus.vocab, corpus)
    with pytest.raises(UserError, match="the folder .*nowhere does not exist"):
        save_model(folder / "nowhere" / "x.npz", model, corpus.vocab, corpus)
    with pytest.raises(UserError, match="the model has 450 words, the vocabulary 3"):
        save_model(folder / "x.npz", model, Vocab(["<unk>", "<eos>", "a"]), corpus)
    with pytest.raises(UserError, match="config.model is not the model's settings"):
        save_model(folder / "x.npz", model, corpus.vocab, corpus,
                   config=TrainConfig(data=corpus.config, model=ModelConfig(cell="lstm")))
    assert not list(folder.glob("x.*"))


def test_a_checkpoint_without_training_settings_is_refused_in_one_line(trained, capsys):
    """The file a Python user wrote with checkpoint.save and the model's settings alone: evaluate said
    `KeyError: 'train'` in a traceback (exit 1). Now one line, exit 2, saying how to save it."""
    from rnnlm import checkpoint
    model, corpus, folder = trained
    path = folder / "bare.npz"
    checkpoint.save(path, model.state_dict(), config={"model": model.config_dict()}, vocab=corpus.vocab.to_json())
    for argv in (["evaluate", str(path), "--split", "test"], ["evaluate", str(path), "--text", str(path)],
                 ["jacobian", str(path), "--max-lag", "3", "--anchors", "2", "--no-progress"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {path}: the checkpoint records no training settings") or \
            err.startswith("error: the checkpoint records no training settings"), err
        assert err.endswith("rnnlm.runs.save_model(path, model, vocab, corpus), which records them")
        assert "\n" not in err


def test_a_checkpoint_without_a_corpus_checksum_reads_text_but_not_a_split(trained, capsys):
    """Training settings but no checksum: a split was refused as 'the corpus ... changed (checksum differs)',
    though the file had none to differ. Now it says there is none, and what to do."""
    from rnnlm import checkpoint
    from rnnlm.config import TrainConfig
    import dataclasses
    model, corpus, folder = trained
    path = folder / "nosum.npz"
    train = TrainConfig(data=corpus.config, model=dataclasses.replace(model.config, vocab_size=None)).to_dict()
    checkpoint.save(path, model.state_dict(), config={"model": model.config_dict(), "train": train},
                    vocab=corpus.vocab.to_json())
    assert main(["evaluate", str(path), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the checkpoint records no checksum of its corpus") and "--text" in err
    text = folder / "t.txt"
    text.write_text("o menino que entrou no bar.\n", encoding="utf-8")
    assert main(["evaluate", str(path), "--text", str(text)]) == 0
    assert "perplexity:" in capsys.readouterr().out


def test_vocab_encode_refuses_a_string_and_vocab_answers_in(trained):
    """vocab.encode("o homem") encoded its seven characters (mostly <unk>) without a word."""
    _, corpus, _ = trained
    vocab = corpus.vocab
    with pytest.raises(TypeError, match="takes a list of words, got a str: split it first"):
        vocab.encode("o menino")
    with pytest.raises(TypeError, match="every token must be a str, got int 3"):
        vocab.encode(["o", 3])
    assert vocab.encode(["o", "menino", "zzz"]).tolist() == [vocab.stoi["o"], vocab.stoi["menino"], vocab.unk_id]
    assert vocab.encode(iter(["o"])).tolist() == [vocab.stoi["o"]]
    assert "menino" in vocab and "Menino" not in vocab and "<unk>" in vocab


def test_the_readme_python_api_block_runs(tmp_path, monkeypatch):
    """The README's Python example, run as written (its corpus machado, a GRU of 128): it must not drift."""
    import re
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Python API\n.*?```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["curve"]["meta"]["cell"] == "gru" and scope["norm"] > 0


@pytest.mark.parametrize("kw, error, words", [
    (dict(eps=0.0), ValueError, "gradcheck: eps must be a finite number > 0, got 0.0"),
    (dict(eps=float("nan")), ValueError, "gradcheck: eps must be a finite number > 0, got nan"),
    (dict(eps="1e-3"), TypeError, "gradcheck: eps must be a number, got '1e-3' (str)"),
    (dict(weight_scale=-1.0), ValueError, "gradcheck: weight_scale must be a finite number > 0, got -1.0"),
    (dict(max_entries=0), ValueError, "gradcheck: max_entries must be an int >= 1, got 0"),
    (dict(T=0), ValueError, "gradcheck: T must be an int >= 1, got 0"),
])
def test_gradcheck_checks_its_own_numbers(kw, error, words):
    """gradcheck(eps=0) raised ZeroDivisionError, eps=nan returned a FAIL of nan, max_entries=0 numpy's
    'zero-size array to reduction operation'."""
    from rnnlm.gradcheck import gradcheck
    with pytest.raises(error) as info:
        gradcheck(**kw)
    assert str(info.value) == words


def test_pick_anchors_and_draw_masks_name_a_missing_generator():
    """rng=None gave AttributeError: 'NoneType' object has no attribute 'choice' (and 'random')."""
    import numpy as np

    from rnnlm.jacobian import pick_anchors
    from rnnlm.model import ModelConfig, RNNModel
    with pytest.raises(TypeError, match=r"^pick_anchors: rng must be a numpy Generator, e\.g\. np\.random"):
        pick_anchors(100, 5, 3, None)
    assert pick_anchors(100, 5, 3, np.random.default_rng(0)).tolist() == \
        np.sort(np.random.default_rng(0).choice(np.arange(5, 100), 3, replace=False)).tolist()
    model = RNNModel(ModelConfig(vocab_size=10, emsize=4, hidden=4, dropout=0.5))
    with pytest.raises(TypeError, match=r"^draw_masks: rng must be a numpy Generator"):
        model.draw_masks(3, 2, None)
    assert RNNModel(ModelConfig(vocab_size=10, emsize=4, hidden=4, dropout=0.0)).draw_masks(3, 2, None) is None


def test_checkpoint_save_names_an_argument_of_the_wrong_kind(tmp_path):
    """checkpoint.save(p, model) said "'RNNModel' object has no attribute 'items'"; vocab=Vocab failed seven
    frames deep in json ('Object of type Vocab is not JSON serializable')."""
    from rnnlm import checkpoint
    from rnnlm.model import ModelConfig, RNNModel
    from rnnlm.vocab import Vocab
    model = RNNModel(ModelConfig(vocab_size=3, emsize=2, hidden=2))
    with pytest.raises(TypeError, match=r"model must be a dict of arrays \(model.state_dict\(\)\), got RNNModel; "
                                        r"runs.save_model"):
        checkpoint.save(tmp_path / "a.npz", model, config={})
    with pytest.raises(TypeError, match=r"vocab must be a JSON-ready dict, got Vocab; give vocab.to_json\(\)"):
        checkpoint.save(tmp_path / "a.npz", model.state_dict(), config={}, vocab=Vocab(["<unk>", "<eos>", "a"]))
    with pytest.raises(TypeError, match="config must be a JSON-ready dict, got ModelConfig"):
        checkpoint.save(tmp_path / "a.npz", model.state_dict(), config=model.config)
    assert not list(tmp_path.iterdir())
