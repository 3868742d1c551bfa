"""Run folders made without training, for tests of the commands that read a run (probe, jacobian, generate).

`untrained_gru_run(root, n, max_distance)`: a GRU (E = H = 8) with its initial weights, saved as
`train` saves a run (config.json, vocab.json, best.npz) on a generated agreement text of n sentences.
"""
from dataclasses import asdict

import numpy as np

from rnnlm import checkpoint, fileio
from rnnlm import sintetico as S
from rnnlm.config import TrainConfig, config_to_dict
from rnnlm.data import DataConfig, load_corpus
from rnnlm.model import ModelConfig, RNNModel


def untrained_gru_run(root, n: int, max_distance: int, **kinds):
    """root/run, a GRU saved like a training run on root/text.txt: n sentences of the agreement corpus
    (distances 1..max_distance; kinds: generate_sentences' keyword arguments, e.g. kinds=("verb",))."""
    text = root / "text.txt"
    sents = S.generate_sentences(n, np.random.default_rng(0), 1, max_distance, **kinds)
    text.write_text("".join(s.text + "\n\n" for s in sents), encoding="utf-8")
    data = DataConfig(corpus=str(text), use_cache=False)
    corpus = load_corpus(data)
    mcfg = ModelConfig(vocab_size=len(corpus.vocab), cell="gru", emsize=8, hidden=8)
    info = {"train": config_to_dict(TrainConfig(data=data, model=ModelConfig(cell="gru", emsize=8, hidden=8))),
            "model": asdict(mcfg), "corpus": {"checksum": corpus.checksum}}
    run = root / "run"
    run.mkdir()
    fileio.atomic_write_json(run / "config.json", info)
    fileio.atomic_write_json(run / "vocab.json", corpus.vocab.to_json())
    checkpoint.save(run / "best.npz", RNNModel(mcfg, seed=0).state_dict(), config=info,
                    vocab=corpus.vocab.to_json())
    return run
