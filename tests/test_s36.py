"""A researcher's and a teacher's trials: the optimizers, grad_norm and RNNModel(params=) check what their
unchecked kernels would index past; the probes, Vocab.decode and context_usage refuse what they used to
truncate or ignore; train --out refuses a folder whose config.json, vocab.json or metrics.jsonl are not a
run's (they were overwritten) and leaves no lock file where it made one; a standard output that cannot encode
Portuguese writes escapes instead of ending in a traceback."""
import dataclasses
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlm import cli, optim
from rnnlm.config import ModelConfig, TrainConfig
from rnnlm.errors import UserError
from rnnlm.model import RNNModel
from rnnlm.probes import context_usage, final_logprobs
from rnnlm.settings import check_range
from rnnlm.train import train
from rnnlm.vocab import Vocab

from test_train import tiny


def _pair():
    a = RNNModel(ModelConfig(vocab_size=300, emsize=8, hidden=8))
    b = RNNModel(ModelConfig(vocab_size=30, emsize=8, hidden=8))
    x = np.arange(10, dtype=np.int64).reshape(5, 2)
    return a, b, x


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "adam"])
def test_a_step_with_another_models_gradients_is_refused_and_changes_nothing(name):
    a, b, x = _pair()
    _, g_b, _ = b.loss_and_grads(x, x)
    before = {k: v.copy() for k, v in a.params.items()}
    opt = optim.make_optimizer(name, a.params, lr=0.1)
    with pytest.raises(ValueError) as found:
        opt.step(a.params, g_b)
    assert str(found.value) == (f"{type(opt).__name__}.step: grads['encoder.weight'] has shape (30, 8) but the "
                                "parameter has (300, 8); give the gradients of this model's loss")
    assert all(np.array_equal(before[k], a.params[k]) for k in before) and opt.steps == 0
    with pytest.raises(ValueError, match=r"params are not the ones this optimizer was built for"):
        opt.step(b.params, g_b)
    _, g_a, _ = a.loss_and_grads(x, x)
    with pytest.raises(ValueError, match=r"^[A-Za-z]+\.step: grads has no 'decoder.bias'; give one gradient per"):
        opt.step(a.params, {k: v for k, v in g_a.items() if k != "decoder.bias"})
    opt.step(a.params, g_a)     # the right ones still step
    assert opt.steps == 1 and not np.array_equal(before["decoder.bias"], a.params["decoder.bias"])


@pytest.mark.parametrize("rows, error, said", [
    (np.array([5, 10**6]), ValueError, "grad_norm: rows['w'] must be sorted unique row indices in [0, 10) (as "
                                       "np.unique gives), got 5 .. 1000000 over 2 rows"),
    (np.array([1, 1, 1]), ValueError, "grad_norm: rows['w'] must be sorted unique row indices in [0, 10) (as "
                                      "np.unique gives), got 1 .. 1 over 3 rows"),
    (np.array([-1, 2]), ValueError, "grad_norm: rows['w'] must be sorted unique row indices in [0, 10) (as "
                                    "np.unique gives), got -1 .. 2 over 2 rows"),
    ([1, 2], TypeError, "grad_norm: rows['w'] must be a 1-D int64 NumPy array of row indices, got list"),
    (np.array([1.0]), TypeError, "grad_norm: rows['w'] must be a 1-D int64 NumPy array of row indices, got a "
                                 "float64 array of shape (1,)"),
])
def test_grad_norm_refuses_rows_its_kernel_would_read_out_of_bounds_or_twice(rows, error, said):
    grads = {"w": np.ones((10, 4), np.float32)}
    with pytest.raises(error) as found:       # (row 10**6 crashed the interpreter; [1, 1, 1] gave sqrt(12))
        optim.grad_norm(grads, rows={"w": rows})
    assert str(found.value) == said
    assert optim.grad_norm(grads, rows={"w": np.array([1, 3], np.int64)}) == pytest.approx(np.sqrt(8))
    assert optim.grad_norm(grads, rows={"w": np.array([], np.int64)}) == 0.0
    params = {"w": np.zeros((10, 4), np.float32)}
    bad = rows if error is ValueError else np.array([3, 2])      # (unsorted)
    with pytest.raises(ValueError, match=r"^SGD.step: rows\['w'\] must be sorted unique"):
        optim.make_optimizer("sgd", params).step(params, grads, rows={"w": bad})
    assert not params["w"].any()


def test_optimizer_settings_are_checked_with_the_options_ranges():
    p = {"w": np.zeros(3, np.float32)}
    for make, said in [(lambda: optim.make_optimizer("sgd", p, lr="1"), "lr must be a number, got '1' (a string)"),
                       (lambda: optim.make_optimizer("sgd", p, lr=-1.0), "lr must be a finite positive number, "
                                                                         "got -1.0"),
                       (lambda: optim.make_optimizer("momentum", p, momentum=1.5), "momentum must be a number in "
                                                                                   "[0, 1), got 1.5"),
                       (lambda: optim.make_optimizer("adam", p, betas=(0.9, 1.0)), "betas[1] must be a number in "
                                                                                   "[0, 1), got 1.0")]:
        with pytest.raises(UserError) as found:
            make()
        assert str(found.value) == said
    assert optim.make_optimizer("sgd", p, lr=np.float32(0.5)).lr == 0.5     # a NumPy scalar is a number


def test_a_numpy_scalar_passes_a_range_check_as_the_number_it_holds():
    check_range("temperature", np.float32(0.8))
    check_range("words", np.int64(3))
    with pytest.raises(UserError, match=r"^--words must be an integer, at least 0, got inf$"):
        check_range("words", np.float64("inf"))
    with pytest.raises(UserError, match=r"^--lr must be a number, got np.True_ \(a bool\)$"):
        check_range("lr", np.True_)


def test_rnnmodel_checks_the_params_it_is_given_against_its_config():
    c = ModelConfig(vocab_size=50, emsize=8, hidden=8)
    p = RNNModel(c).params
    with pytest.raises(ValueError) as found:        # (a loss of 9.65e+31 from memory past the bias's end)
        RNNModel(c, params={**p, "decoder.bias": np.zeros(3, np.float32)})
    assert str(found.value).startswith("params['decoder.bias'] must be a C-contiguous float32 array of shape "
                                       "(50,), got shape (3,), dtype float32")
    with pytest.raises(ValueError, match=r"^params\['encoder.weight'\] must be .* of shape \(50, 8\), got shape "
                                         r"\(10, 8\)"):
        RNNModel(c, params={**p, "encoder.weight": np.zeros((10, 8), np.float32)})
    with pytest.raises(ValueError, match=r"^RNNModel: params must be a dict holding exactly this config's "
                                         r"parameters \(encoder.weight, .*\), got list; load weights into a built "
                                         r"model with model.load_state_dict\(d\)$"):
        RNNModel(c, params=[1, 2])
    with pytest.raises(ValueError, match=r"got names rnn.weight_ih_l0, .*, decoder.bias; load"):
        RNNModel(c, params={k: v for k, v in p.items() if k != "encoder.weight"})
    shared = RNNModel(c, params=p)          # used as they are (documented): the same arrays
    assert shared.params["encoder.weight"] is p["encoder.weight"]
    lstm = ModelConfig(vocab_size=50, emsize=8, hidden=6, layers=2, tied=False, cell="lstm")
    assert RNNModel(lstm).to_dtype("float64").params["rnn.weight_ih_l1"].shape == (24, 6)


def test_final_logprobs_refuses_float_ids_and_columns_of_the_wrong_shape():
    m = RNNModel(ModelConfig(vocab_size=50, emsize=8, hidden=8))
    for rows, cols, error, said in [
            ([[1]], np.array([[1.7]]), TypeError, "final_logprobs: columns must be integer token ids, got dtype "
                                                  "float64 (ids are not rounded"),
            ([[1]], [[50]], ValueError, "final_logprobs: columns must be ids in [0, 49] (the model's vocabulary), "
                                        "got 50"),
            ([[1], [2]], [[1]], ValueError, "final_logprobs: columns must be (N, K) ids, a row of them per row of "
                                            "rows (N = 2), got shape (1, 1)"),
            ([[1.5]], [[1]], TypeError, "final_logprobs: rows[0] must be integer token ids")]:
        with pytest.raises(error) as found:
            final_logprobs(m, rows, cols)
        assert str(found.value).startswith(said)
    out = final_logprobs(m, [[1, 2], [3]], [[1, 2], [3, 4]])
    logp, _ = m.step_logprobs(np.array([3], np.int32), m.init_state(1))
    assert out.shape == (2, 2) and out[1].tolist() == pytest.approx(np.asarray(logp)[0, [3, 4]].tolist())


@pytest.mark.parametrize("tolerance, error", [(float("nan"), ValueError), (-1, ValueError), ("x", TypeError)])
def test_context_usage_checks_its_tolerance_before_any_work(tolerance, error):
    m = RNNModel(ModelConfig(vocab_size=50, emsize=8, hidden=8))
    with pytest.raises(error, match=r"^context_usage: tolerance must be a (finite )?number of nats >= 0, got"):
        context_usage(m, np.arange(400) % 50, [1], tolerance=tolerance)


def test_vocab_decode_refuses_ids_outside_the_vocabulary():
    v = Vocab(["<unk>", "<eos>", "a", "b"])
    assert v.decode(np.array([2, 3], np.int32)) == ["a", "b"] and v.decode([]) == []
    with pytest.raises(ValueError, match=r"^Vocab.decode: ids must be ids in \[0, 3\] \(the vocabulary\), got -1$"):
        v.decode([-1])          # (it was the last word)
    with pytest.raises(TypeError, match=r"^Vocab.decode: ids must be integer token ids, got dtype float64"):
        v.decode([1.7])


def test_a_train_config_with_a_vocab_size_is_refused_rather_than_replaced():
    with pytest.raises(UserError, match=r"^TrainConfig's model has vocab_size=50, but a run's vocabulary comes from "
                                        r"its corpus: leave vocab_size out"):
        TrainConfig(model=ModelConfig(vocab_size=50)).validate()


@pytest.mark.parametrize("files, named", [
    ({"config.json": '{"my": "precious settings"}', "notes.txt": "notes"}, "config.json"),
    ({"config.json": "not json"}, "config.json"),
    ({"vocab.json": '["a"]'}, "vocab.json"),
    ({"metrics.jsonl": '{"a": 1}\n', "vocab.json": "[]"}, "vocab.json and metrics.jsonl"),
])
def test_train_out_into_a_folder_of_someone_elses_files_is_refused_and_leaves_them(
        text, tmp_path, capsys, files, named):
    out = tmp_path / "mine"
    out.mkdir()
    for name, body in files.items():
        (out / name).write_text(body, encoding="utf-8")
    assert cli.main(["train", "--corpus", str(text), "--max-steps", "1", "--hidden", "8", "--emsize", "8",
                     "--no-progress", "--out", str(out)]) == 2
    n = len(named.split(" and "))
    assert capsys.readouterr().err == (f"error: {out} holds {named} that no run of this tool wrote, and a new run "
                                       f"would replace {'it' if n == 1 else 'them'}; give the run a new or empty "
                                       "folder as --out\n")
    assert sorted(p.name for p in out.iterdir()) == sorted(files)         # as they were: no .train.lock either
    assert all((out / name).read_text(encoding="utf-8") == body for name, body in files.items())


def test_a_refused_train_keeps_a_lock_file_that_was_there_before(text, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "vocab.json").write_text("[]")
    (out / ".train.lock").write_text("")
    assert cli.main(["train", "--corpus", str(text), "--max-steps", "1", "--no-progress", "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == [".train.lock", "vocab.json"]


def test_a_run_of_this_tool_stopped_before_its_checkpoint_is_still_taken_over(text, tmp_path):
    out = tmp_path / "r"
    train(tiny(text, out, max_steps=1))
    (out / "model.npz").unlink()
    (out / "best.npz").unlink()
    (out / "metrics.jsonl").write_text("")          # (no "end": it stopped)
    train(tiny(text, out, max_steps=1))
    assert (out / "model.npz").exists()


def test_an_output_encoding_without_portuguese_writes_escapes(monkeypatch, capsys):
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stream)
    with cli._stdout_named():
        print("Coração é ótimo.")
    stream.flush()
    assert raw.getvalue() == b"Cora\\xe7\\xe3o \\xe9 \\xf3timo.\n"
    assert capsys.readouterr().err == ("note: standard output is ascii: a character it cannot write comes out as a "
                                       "\\x escape (PYTHONIOENCODING=utf-8 writes every one as it is)\n")


def test_a_relative_corpus_is_recorded_as_an_absolute_path(text, tmp_path, monkeypatch):
    import json
    import shutil
    (tmp_path / "meu corpus").mkdir()
    shutil.copyfile(text, tmp_path / "meu corpus" / text.name)
    monkeypatch.chdir(tmp_path)
    train(tiny("meu corpus", tmp_path / "r", max_steps=1))
    saved = json.loads((tmp_path / "r" / "config.json").read_text())["train"]["data"]["corpus"]
    assert saved == str(tmp_path / "meu corpus")        # (as typed it named nothing from another folder)


def test_a_moved_corpus_is_given_to_the_resume_with_corpus_and_recorded_for_evaluate(text, tmp_path, capsys):
    import json
    import shutil
    first, moved = tmp_path / "a" / text.name, tmp_path / "b" / text.name
    first.parent.mkdir()
    moved.parent.mkdir()
    shutil.copyfile(text, first)
    run = tmp_path / "r"
    train(tiny(first, run, max_steps=2))
    first.rename(moved)
    capsys.readouterr()
    assert cli.main(["evaluate", str(run)]) == 2
    assert capsys.readouterr().err == (f"error: the run's corpus {first} (recorded when it was trained) is not there "
                                       "any more; give its new place with --corpus PATH (the checksum says whether "
                                       "it is the same text), or use a text file with --text\n")
    assert cli.main(["evaluate", str(run), "--corpus", str(moved)]) == 0          # (a finished run: no resume)
    assert "perplexity:" in capsys.readouterr().out
    assert cli.main(["evaluate", str(run), "--corpus", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == (f"error: --corpus {tmp_path / 'nowhere'} does not exist; give the file or "
                                       "folder the run's text is in now\n")
    other_text = tmp_path / "other_text.txt"
    other_text.write_text(text.read_text(encoding="utf-8")[:-2000], encoding="utf-8")
    assert cli.main(["evaluate", str(run), "--corpus", str(other_text)]) == 2
    assert capsys.readouterr().err == (f"error: --corpus {other_text} holds other text than the run was trained on, "
                                       "or is read another way (checksum differs; it covers the files' names too: "
                                       f"if other_text.txt is the run's text renamed, name it {text.name} again, the "
                                       "name it was trained under); give the folder or file the run's own text is "
                                       "in now, or use a text file with --text\n")
    from rnnlm.evaluate import run_text_ids
    from rnnlm.runs import load_model
    _, vocab, info, _ = load_model(run)
    with pytest.raises(UserError, match=r"is not there any more; use a text file with --text instead \(or put the "
                                        r"corpus back at that path; evaluate RUN --corpus NEWPATH reads it "
                                        r"elsewhere\)$"):
        run_text_ids(info, vocab, "valid")          # (jacobian's and the probes' reading: no --corpus there)
    assert cli.main(["train", "--resume", str(run), "--max-steps", "3", "--corpus", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == (f"error: --corpus {tmp_path / 'nowhere'} does not exist; give the file or "
                                       "folder the run's text is in now (a resume checks by checksum that it is the "
                                       "same text)\n")
    assert cli.main(["train", "--resume", str(run), "--max-steps", "3", "--corpus", str(moved), "--no-progress",
                     "--sample-words", "0"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["data"]["corpus"] == str(moved)
    capsys.readouterr()
    assert cli.main(["evaluate", str(run)]) == 0       # (best.npz may be step 2's, which names the old place)
    assert "perplexity:" in capsys.readouterr().out
    other = tmp_path / "other.txt"
    other.write_text(text.read_text(encoding="utf-8")[:-2000], encoding="utf-8")
    assert cli.main(["train", "--resume", str(run), "--max-steps", "4", "--corpus", str(other), "--no-progress"]) == 2
    assert "checksum differs" in capsys.readouterr().err


def test_a_run_given_no_out_takes_the_next_name_when_its_second_is_taken(text, tmp_path, monkeypatch):
    import rnnlm.train as train_module
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train_module.time, "strftime", lambda fmt: "20261202-120000")
    (tmp_path / "runs" / "lstm-20261202-120000").mkdir(parents=True)     # (another run started this second)
    config = dataclasses.replace(tiny(text, None, max_steps=1), out=None)
    s = train(config)
    assert s["run_dir"] == str(Path("runs") / "lstm-20261202-120000-2")
    assert (tmp_path / s["run_dir"] / "model.npz").exists()
    folder, new = train_module.reserve_default_out(config)
    assert folder == Path("runs/lstm-20261202-120000-3") and folder.is_dir() and new == (tmp_path / folder)


def test_a_test_split_too_short_to_evaluate_is_said_in_the_summary(text, tmp_path):
    from rnnlm.summary import format_summary
    config = tiny(text, tmp_path / "r", max_steps=1)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, test_fraction=0.001),
                                 eval_batch_size=64)
    s = train(config)
    assert "test_ppl" not in s
    line = [x for x in format_summary(s).splitlines() if x.startswith("test ppl")]
    assert len(line) == 1 and line[0].startswith("test ppl: none; the test split ") and \
        line[0].endswith("give a larger --test-fraction or more text")


def test_a_validation_split_too_small_for_the_texts_sentences_says_its_size(tmp_path, capsys):
    small = tmp_path / "small.txt"
    small.write_text(("O gato " + "e o cão " * 10 + "dorme. ") * 2 + "\n", encoding="utf-8")   # two long sentences
    assert cli.main(["train", "--corpus", str(small), "--no-cache", "--hidden", "8", "--emsize", "8", "--batch-size",
                     "1", "--bptt", "4", "--max-steps", "1", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (
        "error: the validation split is empty: --valid-fraction 0.05 asks for about 4 of the text's 70 tokens, and "
        "it is cut only after a sentence end (. ! ? before a capital) or at a blank line, and none lies near enough "
        "to where the split would start; give a larger --valid-fraction, more text, or a text whose paragraphs are "
        "separated by blank lines\n")


def test_a_run_being_trained_before_its_first_checkpoint_says_so(tmp_path):
    import os
    from rnnlm.runs import load_model
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text('{"train": {}}')
    (run / ".train.lock").write_text(f"{os.getpid()}\n")      # (a live process's pid)
    with pytest.raises(UserError) as found:
        load_model(run)
    assert str(found.value) == (f"{run} holds no checkpoint (no best.npz or model.npz) yet: it is being trained now "
                                f"(pid {os.getpid()} holds {run / '.train.lock'}) and has not saved its first; try "
                                "again after its first validation")


def test_a_corpus_file_that_cannot_be_read_is_said_to_be_read_not_written(tmp_path, monkeypatch):
    from rnnlm import corpus
    (tmp_path / "a.txt").write_text("O gato dorme.")

    def refused(path, mode="r", *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(corpus, "open", refused, raising=False)
    with pytest.raises(UserError) as found:
        corpus.sha256_file(tmp_path / "a.txt")
    assert str(found.value) == (f"cannot read {tmp_path / 'a.txt'}: Permission denied; make it readable, or move it "
                                "out of the corpus folder")


def test_a_corpus_folder_reads_every_txt_file_once_and_says_what_it_leaves_out(tmp_path):
    import os
    from rnnlm.corpus import list_txt_files
    corpus_dir, outside = tmp_path / "c", tmp_path / "out"
    (corpus_dir / "sub").mkdir(parents=True)
    outside.mkdir()
    for path, text in ((corpus_dir / "a.txt", "O gato."), (corpus_dir / "DUP.TXT", "O cão."),
                       (corpus_dir / "sub" / "b.txt", "A casa."), (outside / "c.txt", "O sol.")):
        path.write_text(text, encoding="utf-8")
    os.symlink(corpus_dir / "sub", corpus_dir / "linked")      # inside: read at its own place, once
    os.symlink(corpus_dir, corpus_dir / "sub" / "up")          # a loop
    os.symlink(outside, corpus_dir / "ext")                    # outside: followed
    os.symlink(tmp_path / "nowhere.txt", corpus_dir / "broken.txt")
    with pytest.warns(UserWarning, match=r"^left out of the corpus .*: broken.txt \(a link to nothing\)$"):
        files = list_txt_files(corpus_dir)
    assert [name for name, _ in files] == ["DUP.TXT", "a.txt", "ext/c.txt", "sub/b.txt"]


def test_a_corpus_subfolder_that_cannot_be_read_is_refused(tmp_path, monkeypatch):
    import os
    from rnnlm.corpus import list_txt_files
    walk = os.walk

    def unreadable(top, onerror=None, **kw):
        onerror(PermissionError(13, "Permission denied", str(tmp_path / "locked")))
        yield from walk(top, onerror=onerror, **kw)
    monkeypatch.setattr(os, "walk", unreadable)
    with pytest.raises(UserError) as found:
        list_txt_files(tmp_path)
    assert str(found.value) == (f"cannot read the folder {tmp_path / 'locked'} inside the corpus {tmp_path}: "
                                "Permission denied; make it readable, or move it out of the corpus folder")


def test_a_quoted_tilde_in_a_path_flag_is_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    args = cli._parse(cli.build_parser(), ["plot", "lag", "~/runs/a", "x", "--out", "~/fig"])
    assert args.inputs == [str(tmp_path / "runs/a"), "x"] and args.out == str(tmp_path / "fig")


def test_plot_out_does_not_replace_an_image_this_tool_did_not_draw(tmp_path, capsys):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rnnlm.plots import figure_replaceable, write_figure
    (tmp_path / "j.json").write_text("{}")
    (tmp_path / "holiday.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)     # a photo of one's own
    fig = plt.figure()
    fig.savefig(tmp_path / "mine.png")           # a matplotlib figure of one's own
    plt.close(fig)
    for name in ("holiday", "mine"):
        before = (tmp_path / f"{name}.png").read_bytes()
        assert cli.main(["plot", "lag", str(tmp_path / "j.json"), "--out", str(tmp_path / name)]) == 2
        assert capsys.readouterr().err == (f"error: --out {tmp_path / name}: the figure would replace "
                                           f"{tmp_path / name}.png, which this tool did not draw (an image or a "
                                           "figure of your own); give another name, or move that file\n")
        assert (tmp_path / f"{name}.png").read_bytes() == before
    fig = plt.figure()
    write_figure(fig, {tmp_path / "ours.png": {}, tmp_path / "ours.svg": {}})
    assert figure_replaceable(tmp_path / "ours.png") and figure_replaceable(tmp_path / "ours.svg")
    assert not figure_replaceable(tmp_path / "mine.png")            # (at a run's own place too)
    docs = Path(__file__).parents[1] / "docs"
    for earlier in ("figures/demo-explosion.png", "figures/demo-explosion.svg", "learnability/agreement/success.png"):
        assert figure_replaceable(docs / earlier)       # drawn before figures were marked: still redrawn
    with pytest.raises(UserError, match=r"holiday.png exists and is not a figure this tool drew \(an image of your "
                                        r"own\?\); move it, or give the figure another place \(plot's --out\)$"):
        write_figure(fig, {tmp_path / "holiday.png": {}})       # (a run's plots/ folder holding one's photo)
    plt.close(fig)
    (tmp_path / "empty.svg").write_bytes(b"")
    assert figure_replaceable(tmp_path / "empty.svg")


def test_a_measurement_at_its_own_place_in_a_run_folder_does_not_replace_a_file_of_ones_own(tmp_path):
    from rnnlm.measured import check_replaces_a_measurement
    (tmp_path / "jacobian.json").write_text('{"my": "notes"}')
    with pytest.raises(UserError) as found:
        check_replaces_a_measurement(tmp_path / "jacobian.json", str(tmp_path / "jacobian.json"),
                                     "move it, or give the measurement --out FILE.json")
    assert str(found.value) == (f"{tmp_path / 'jacobian.json'} exists and holds no jacobian or probe measurement; "
                                "move it, or give the measurement --out FILE.json (a measurement replaces only an "
                                "earlier measurement)")
    check_replaces_a_measurement(tmp_path / "none.json", "x", "y")       # (nothing there: nothing to keep)


def test_none_where_a_value_has_no_default_is_one_line_not_pythons_error():
    from rnnlm.sample import generate_text
    from rnnlm.sweepcluster import check_scheduler
    v = Vocab(["<unk>", "<eos>", "a", "b"])
    m = RNNModel(ModelConfig(vocab_size=4, emsize=4, hidden=4))
    for kw, error, said in [(dict(temperature=None), UserError, "temperature must be a number, got None"),
                            (dict(words=None), UserError, "words must be a number, got None"),
                            (dict(sentence_sep=None), TypeError, "sentence_sep must be a str (what is printed "
                                                                 "between sentences), got NoneType")]:
        with pytest.raises(error) as found:
            generate_text(m, v, **kw)
        assert str(found.value) == said
    with pytest.raises(TypeError, match=r"^RNNModel: seed must be an int >= 0 \(the weights' draw\), got None$"):
        RNNModel(ModelConfig(vocab_size=4, emsize=4, hidden=4), seed=None)
    with pytest.raises(TypeError, match=r"^load_state_dict: d must be a dict of name -> array"):
        m.load_state_dict(None)
    with pytest.raises(UserError, match=r"^--workers must be at least 1, got 0$"):
        check_scheduler(None, 0)


def test_windows_refuses_a_stream_that_is_not_batchified_and_train_step_its_stand_ins():
    from rnnlm.data import windows
    from rnnlm.step import train_step
    with pytest.raises(ValueError, match=r"^windows: stream must be batchified, \(N // B, B\) ids \(data.batchify\("
                                         r"ids, B\)\), got shape \(20,\)$"):
        windows(np.arange(20), 4)
    m = RNNModel(ModelConfig(vocab_size=20, emsize=4, hidden=4))
    x = np.zeros((3, 2), np.int64)
    with pytest.raises(TypeError, match=r"^train_step: opt must be an optimizer"):
        train_step(m, None, TrainConfig(), x, x, None, None)
    with pytest.raises(TypeError, match=r"^train_step: config must be a TrainConfig .*, got dict$"):
        train_step(m, optim.make_optimizer("sgd", m.params), {}, x, x, None, None)


def test_utf16_text_without_its_byte_order_mark_is_told_how_to_convert(tmp_path):
    from rnnlm.corpus import read_text
    for name in ("utf-16le", "utf-16be"):
        path = tmp_path / f"{name}.txt"
        path.write_bytes("O gato dorme na casa.\n".encode(name))
        with pytest.raises(UserError) as found:
            read_text(path)
        assert str(found.value) == (f"{path} looks like {name.upper()} text without a byte-order mark (every other "
                                    f"byte is NUL); a corpus must be plain text files in UTF-8: convert it (iconv -f "
                                    f"{name} -t utf-8)")
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UserError, match=r"looks binary \(it contains NUL bytes\); a corpus must be plain text files$"):
        read_text(tmp_path / "bin.txt")


def test_plot_study_writes_into_another_folder_with_out(tmp_path, capsys):
    import shutil
    study = tmp_path / "study"
    shutil.copytree(Path(__file__).parents[1] / "docs" / "learnability", study,
                    ignore=shutil.ignore_patterns("*.png", "*.svg"))
    assert cli.main(["plot", "study", str(study), "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "gradient.png", "gradient.svg", "steps.png", "steps.svg", "success.png", "success.svg"]
    assert not list(study.glob("*.png"))
    (tmp_path / "afile").write_text("x")
    assert cli.main(["plot", "study", str(study), "--out", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err.endswith(f"error: --out {tmp_path / 'afile'} is a file; give a folder to write the "
                                            "study's figures into\n")


def test_generate_text_refuses_a_filter_that_greedy_decoding_would_ignore():
    from rnnlm.sample import generate_text
    m = RNNModel(ModelConfig(vocab_size=4, emsize=4, hidden=4))
    v = Vocab(["<unk>", "<eos>", "a", "b"])
    with pytest.raises(UserError, match=r"^top_k=5 cannot act with temperature=0, which always takes the most likely "
                                        r"word; leave out one or the other$"):
        generate_text(m, v, words=3, temperature=0, top_k=5)
    assert generate_text(m, v, words=3, temperature=0) == generate_text(m, v, words=3, temperature=0, seed=1)


def test_the_training_bar_on_a_narrow_terminal_shows_its_figures_not_its_graphic(monkeypatch):
    from tqdm import tqdm
    from rnnlm.progress import terminal_columns, train_bar_format
    out = io.StringIO()
    bar = tqdm(total=150, initial=100, desc="train", file=out, ncols=40, bar_format=train_bar_format(40))
    bar.set_postfix_str("loss 5.123 ppl 167.8 | left 3m 10s (time budget)")
    bar.refresh()
    assert out.getvalue().split("\r")[-1].startswith("train  67% 100/150, loss 5.123 ppl 167.8")
    assert "{bar}" in train_bar_format(120)
    monkeypatch.setenv("COLUMNS", "40")
    assert terminal_columns() == 40


def test_a_folder_named_config_json_and_a_runs_file_are_one_line(text, tmp_path, monkeypatch, capsys):
    (tmp_path / "o" / "config.json").mkdir(parents=True)
    assert cli.main(["train", "--corpus", str(text), "--max-steps", "1", "--no-progress",
                     "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'o'} holds config.json that no run of this tool wrote, "
                                       "and a new run would replace it; give the run a new or empty folder as --out\n")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["config.json"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("my notes")
    assert cli.main(["train", "--corpus", str(text), "--max-steps", "1", "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'runs'} is a file, and a run given no --out is written "
                                       "under runs/; give --out a folder for the run\n")


def test_a_named_pipe_in_a_corpus_folder_is_named_as_left_out(tmp_path):
    import os
    from rnnlm.corpus import list_txt_files
    (tmp_path / "a.txt").write_text("O gato.")
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.warns(UserWarning, match=r"left out of the corpus .*: pipe.txt \(not a regular file: a named pipe or "
                                         r"a device\)$"):
        assert [n for n, _ in list_txt_files(tmp_path)] == ["a.txt"]
