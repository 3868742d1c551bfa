"""A fifth new-user trial's findings in generate and the training summary: each test fails without its fix.

- generate_text with a vocabulary of another size than the model's: one UserError, not wrong words or an
  IndexError;
- a model worse than a uniform guess (perplexity above the vocabulary's size: exploding, not short of
  steps) is not told to train longer;
- `generate|jacobian|probe FILE.npz --checkpoint ...` is refused as evaluate's is, not silently ignored.
"""
import pytest

from rnnlm.cli import main
from rnnlm.errors import UserError
from rnnlm.summary import format_summary

from test_train_ux3 import FLAGS, _summary


@pytest.fixture(scope="module")
def run(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("trial5") / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "1", "--out", str(out)]) == 0
    return out


def test_generate_text_refuses_a_vocabulary_of_another_size(run):
    from rnnlm.runs import load_model
    from rnnlm.sample import TextStream, generate_text
    from rnnlm.vocab import Vocab
    model, vocab, _, _ = load_model(run)
    assert generate_text(model, vocab, words=3)[0]                      # the matched pair works
    for n in (len(vocab) - 20, len(vocab) + 20):                        # a smaller one, a larger one
        other = Vocab(list(vocab.itos[:2]) + [f"w{i}" for i in range(n - 2)])
        with pytest.raises(UserError, match=rf"the vocabulary has {n:,} words but the model was trained on "
                                            rf"{len(vocab):,}: give the vocab.json saved with this model"):
            generate_text(model, other, words=3)
        with pytest.raises(UserError, match="trained on"):
            TextStream(model, other, words=3)


def test_a_model_worse_than_uniform_is_told_it_may_be_diverging():
    V = 5000
    exploded = _summary("max_steps", vocab_size=V, clipping=False, val_ppl=2.06e13, best_val_ppl=2.06e13,
                        val_loss=30.66, best_val_loss=30.66)
    printed = format_summary(exploded)
    assert "NOT beaten it yet on valid" in printed
    assert "(train longer: raise --max-steps)" not in printed
    assert ("(worse than a uniform guess over its 5,000 words, so probably diverging: try a smaller --lr or "
            "--clip-norm 0.25, clipping being off; a run only a few steps old may still come down: raise "
            "--max-steps to see)") in printed
    # stopped early (patience): no "raise" half, the divergence half stays
    early = format_summary({**exploded, "stopped": "early_stop"})
    assert "so probably diverging: try a smaller --lr or --clip-norm 0.25, clipping being off)" in early
    clipped = format_summary({**exploded, "clipping": True})
    assert "try a smaller --lr; a run only" in clipped and "clip-norm" not in clipped
    # below V the advice is unchanged (the limit that stopped it)
    assert "(train longer: raise --max-steps)" in format_summary(_summary("max_steps", vocab_size=V))
    # a summary without the field (an older caller) keeps the old advice
    old_caller = _summary("max_steps", val_ppl=2e13, best_val_ppl=2e13, best_val_loss=30.6)
    assert "(train longer: raise --max-steps)" in format_summary(old_caller)


def test_the_training_summary_carries_what_the_advice_needs(run):
    import json
    start = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"start"' in line][0]
    from rnnlm.runs import resume_config
    from rnnlm.train import train
    s = train(resume_config(run, {"max_steps": 2}), resume=run)
    assert s["vocab_size"] == start["vocab_size"] and s["clipping"] is True      # the default --clip-norm 0.25


_QUICK = {"generate": ["--words", "2"], "evaluate": [],
          "jacobian": ["--max-lag", "2", "--anchors", "1", "--no-progress"],
          "probe context": ["--n-targets", "4", "--distances", "1,2", "--window", "8"]}


@pytest.mark.parametrize("command", list(_QUICK))
def test_checkpoint_with_a_checkpoint_file_is_refused(run, command, capsys, tmp_path):
    args = command.split()
    out = ["--out", str(tmp_path / "x.json")] if command in ("jacobian", "probe context") else []
    capsys.readouterr()
    assert main([*args, str(run / "model.npz"), "--checkpoint", "best", *_QUICK[command], *out]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err == [f"error: --checkpoint picks a file inside a run folder; {run / 'model.npz'} is already a "
                   "checkpoint file"], err
    assert not (tmp_path / "x.json").exists()
    # without the flag the file is used, and a folder takes the flag
    assert main([*args, str(run / "model.npz"), *_QUICK[command], *out]) == 0
    assert main([*args, str(run), "--checkpoint", "latest", *_QUICK[command], *out]) == 0
