"""Evaluating a model: cross-entropy over a token stream, and a run's model on a split or any text file.

`evaluate_stream(model, stream, bptt)` is the one evaluation loop: the
training loop's validations and its final test (session.py, train.py,
trainend.py) call it, and so does `run_evaluate`, the `evaluate` command's
job, which reads a run folder or a checkpoint (runs.load_model). `run_text_ids`
gives the token ids of a split of the run's own corpus, or of a text file
read the run's way (its tokenizer settings, its vocabulary): the jacobian
command and the probes read their text through it too.

The one thing to know before editing: evaluation only measures. It carries
the hidden state from window to window as training does, from a zero state
of its own, and changes nothing the training loop keeps (the model, the
optimizer, the loop state, the dropout Generator): the loop evaluates between
steps, and a run stopped and resumed must still end bitwise equal to an
uninterrupted one. A split is read only when the corpus and tokenizer
are those the run was trained on (checksum); a text file is tokenized with
the run's settings and its unknown words count as <unk>. This module imports
nothing heavy at import time (train.py imports it for the CLI's --help).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from .errors import UserError, plural
from .runs import load_model, ppl, stderr_is_terminal


def evaluate_stream(model, stream, bptt: int, bar: str | None = None) -> tuple[float, int]:
    """Mean cross-entropy (nats/token) over a batchified stream (rows, B), state carried throughout.

    Returns (loss, number of predicted tokens). bar: a description to show a
    tqdm bar (on stderr, only when it is a terminal) counting the predicted tokens.
    A model whose weights hold nan or inf gives a nan (or inf) loss, not an error: the training loop
    reads that as divergence (generate_text, score_sentences and the probes refuse such a model).
    """
    import sys

    import numpy as np
    from tqdm import tqdm

    from .data import windows
    if not isinstance(stream, np.ndarray) or stream.ndim != 2:
        got = f"shape {stream.shape}" if isinstance(stream, np.ndarray) else type(stream).__name__
        raise ValueError(f"evaluate_stream: stream must be a batchified (rows, B) array (data.batchify(ids, B)), "
                         f"got {got}")
    state = model.init_state(stream.shape[1])
    total, count = 0.0, 0
    show = bar is not None and stderr_is_terminal()
    with tqdm(total=max(stream.shape[0] - 1, 0) * stream.shape[1], desc=bar, unit="tok", unit_scale=True,
              disable=not show, leave=False, file=sys.stderr) as progress:
        for _, inputs, targets in windows(stream, bptt):
            loss, state = model.loss(inputs, targets, state)
            total += float(loss) * targets.size
            count += targets.size
            progress.update(targets.size)
    if count == 0:
        raise UserError(f"too little text to evaluate ({stream.size} {plural(stream.size, 'token')} in "
                        f"{stream.shape[1]} {plural(stream.shape[1], 'stream')})")
    return total / count, count


def _text_tokens(raw: str, name, data) -> tuple[list, str]:
    """A --text file's tokens read as the corpus was (DataConfig `data`), and a note ("" or why it was not).

    The corpus reader drops all-capital lines as headings and lone numbers as page
    numbers; a file made only of such lines (a text typed in capitals) is read
    with every line kept instead, and the note says so; a file that loses some
    lines so gets a note counting them and quoting the first. A file with no
    tokens (only spaces) is refused.
    """
    from .tokenize import tokenize
    dropped: list = []
    tokens = tokenize(raw, keep_case=data.keep_case, num_token=data.num_token, dropped=dropped)
    note = ""
    if not tokens:
        tokens = tokenize(raw, keep_case=data.keep_case, num_token=data.num_token, layout=False)
        note = ("every line is in capitals or a lone number, which the corpus reader drops as headings and "
                "page numbers; read as text instead") if tokens else ""
    elif dropped:
        first = dropped[0] if len(dropped[0]) <= 40 else dropped[0][:37] + "..."
        note = (f"{len(dropped)} {plural(len(dropped), 'line')} of the text ({first!r}"
                f"{' and more' if len(dropped) > 1 else ''}) {plural(len(dropped), 'is', 'are')} not scored: the "
                f"corpus reader drops a line in capitals as a heading and a lone number as a page number; write "
                f"{plural(len(dropped), 'it', 'them')} in lower case (or join a number to its sentence) to have "
                f"{plural(len(dropped), 'it', 'them')} scored")
    if not tokens:
        raise UserError(f"--text {name} has no words; evaluation reads one token to predict the next, so give "
                        f"a text of at least a sentence")
    return tokens, note


def trained_config(info: dict, path=None):
    """The TrainConfig a checkpoint's meta.config records (its "train"): how the model's text was read.
    UserError when it records none (a file written by hand with checkpoint.save) or one that does not load."""
    from .config import config_from_dict
    where = f"{path}: " if path is not None else ""
    train = info.get("train") if isinstance(info, dict) else None
    if not isinstance(train, dict) or not train:
        raise UserError(f"{where}the checkpoint records no training settings (meta.config has no \"train\"), so "
                        "how the model reads text is unknown; save a model trained in Python with "
                        "rnnlm.runs.save_model(path, model, vocab, corpus), which records them")
    try:
        return config_from_dict(train)
    except UserError as exc:
        raise UserError(f"{where}meta.config's \"train\": {exc}") from None


def _text_result(vocab, tokens: list, source: str, note: str) -> dict:
    """run_text_ids' answer for a text: its ids and how many of its tokens are out of the vocabulary."""
    ids = vocab.encode(tokens)
    unk = [t for t, i in zip(tokens, ids) if i == vocab.unk_id and t != vocab.itos[vocab.unk_id]]
    return {"ids": ids, "source": source, "tokens": len(ids), "oov": len(unk),
            "oov_rate": len(unk) / max(len(ids), 1), "note": note}


def run_text_ids(info: dict, vocab, split: str = "valid", text=None, instead: str = "use a text file with --text "
                 "instead", corpus=None, corpus_flag: bool = False) -> dict:
    """Token ids of a split of a run's own corpus, or of any text file read the run's way.

    info: the run's config (load_model's third value); vocab: its Vocab. text: a file's path, or "-" for
    standard input (read up to corpus.MAX_TEXT_BYTES, as score --file - reads it).
    A text file is tokenized with the run's tokenizer settings and encoded with
    its vocabulary (unknown words become <unk> and are counted). A split is
    refused when the corpus or tokenizer changed since training (checksum).
    A file whose every line is in capitals is read with those lines kept (see
    `_text_tokens`); "note" says so. `instead`: the advice of the changed-corpus error (a command without
    --text gives its own). corpus: where the run's corpus is now (a moved one; held to the run by its
    checksum); corpus_flag: the command takes --corpus, so that its errors may advise it. Returns {"ids",
    "source", "tokens", "oov", "oov_rate", "note"} ("note" for a text file only; "" when read as the corpus
    was).
    """
    from .corpus import read_text

    tcfg = trained_config(info)
    if text == "-":     # standard input, as score --file - reads it (a pipe: `pdftotext x.pdf - | evaluate ...`)
        from .corpus import decode_text, read_stdin
        raw = read_stdin(advice="give a smaller text, or split it into several files")
        tokens, note = _text_tokens(decode_text(raw, "standard input"), "standard input", tcfg.data)
        return _text_result(vocab, tokens, "standard input", note)
    if text is not None:
        p = Path(text)
        if not p.exists() or p.is_dir():    # (a named pipe, <(...), /dev/stdin: read, up to MAX_TEXT_BYTES)
            raise UserError(f"--text {text} {'is a folder' if p.is_dir() else 'does not exist'}; give a UTF-8 "
                            ".txt file")
        tokens, note = _text_tokens(read_text(p, corpus=False), text, tcfg.data)
        return _text_result(vocab, tokens, str(p), note)
    if split not in ("train", "valid", "test"):
        raise UserError(f"--split must be train, valid or test, got '{split}'")
    from .corpus import NAMED_CORPORA
    from .data import absolute_corpus, load_corpus
    if corpus is not None:      # where the run's text is now (moved): the checksum below says if it is the same
        if corpus not in NAMED_CORPORA and not Path(corpus).expanduser().exists():
            raise UserError(f"--corpus {corpus} does not exist; give the file or folder the run's text is in now")
        tcfg = dataclasses.replace(tcfg, data=absolute_corpus(dataclasses.replace(tcfg.data, corpus=corpus)))
    place = tcfg.data.corpus
    if place not in NAMED_CORPORA and not Path(place).expanduser().exists():
        raise UserError(f"the run's corpus {place} (recorded when it was trained) is not there any more; "
                        + ("give its new place with --corpus PATH (the checksum says whether it is the same "
                           f"text), or {instead.removesuffix(' instead')}" if corpus_flag else
                           f"{instead} (or put the corpus back at that path; evaluate RUN --corpus NEWPATH reads "
                           "it elsewhere)"))
    given = corpus
    corpus = load_corpus(tcfg.data)
    if not (info.get("corpus") or {}).get("checksum"):
        raise UserError("the checkpoint records no checksum of its corpus (meta.config's \"corpus\"), so a split "
                        f"read now cannot be checked to be the text it was trained on; {instead} (or save the "
                        "model with rnnlm.runs.save_model, which records it)")
    if corpus.checksum != info.get("corpus", {}).get("checksum"):
        if given is not None:
            raise UserError(f"--corpus {given} holds other text than the run was trained on, or is read another "
                            "way (checksum differs; it covers the files' names too" + _renamed(given, info)
                            + f"); give the folder or file the run's own text is in now, or "
                            f"{instead.removesuffix(' instead')}")
        raise UserError("the corpus or tokenizer settings changed since this run was trained "
                        f"(checksum differs); {instead}")
    if corpus.vocab.to_json() != vocab.to_json():
        raise UserError("the corpus vocabulary differs from the run's vocab.json")
    ids = getattr(corpus, split)
    return {"ids": ids, "source": f"{tcfg.data.corpus}:{split}", "tokens": len(ids),
            "oov": int((ids == vocab.unk_id).sum()), "oov_rate": float(corpus.oov_rate.get(split, math.nan))}


# predictions from which an evaluation says it has begun where no bar is drawn (a log, an IDE's 0 x 0 pty):
# Machado's training split (2.1M tokens) took five minutes at H = 64 with --batch-size 1, without a word
LONG_EVALUATION = 1_000_000


def _say_long(stream, what: str) -> None:
    """One line on stderr for a long evaluation where the bar is not drawn (stderr not a terminal)."""
    import sys
    n = max(stream.shape[0] - 1, 0) * stream.shape[1]
    if n >= LONG_EVALUATION and not stderr_is_terminal():
        print(f"{what}: {n:,} tokens in {stream.shape[1]:,} {plural(stream.shape[1], 'stream')}...",
              file=sys.stderr, flush=True)


def _renamed(given: str, info: dict) -> str:
    """': if NAME is the run's text renamed, name it OLD again, ...' when --corpus names a single file under
    another name than the run recorded (the checksum covers the name: the same bytes renamed are another
    corpus); '' otherwise."""
    recorded = (((info.get("train") or {}).get("data") or {}).get("corpus"))
    p = Path(given).expanduser()
    if not (isinstance(recorded, str) and p.is_file()):
        return ""
    old = Path(recorded).name
    return (f": if {p.name} is the run's text renamed, name it {old} again, the name it was trained under"
            if old != p.name else "")


def run_evaluate(run, split="valid", text=None, which="best", batch_size=None, bptt=None, corpus=None) -> dict:
    """Cross-entropy and perplexity of a run's model on a split or on any text file.

    A text file is tokenized with the run's tokenizer settings and encoded with
    its vocabulary; unknown words count as <unk> (their number is reported).
    The text is read as batch_size streams side by side (data.batchify), each
    from a zero state; "unscored" counts the last tokens that fill no stream
    (len % batch_size), which are not predicted: batch_size=1 scores every token.
    A text file whose streams would each be shorter than one window (bptt) is
    read as one stream unless batch_size is given. corpus: where the run's text is now, when it moved since
    training (UserError when its checksum is not the run's).
    A bar counts the tokens predicted (on a terminal).
    """
    from .data import batchify

    model, vocab, info, path = load_model(run, which)
    tcfg = trained_config(info, path)
    B = tcfg.eval_batch_size if batch_size is None else batch_size      # (0 is refused below, not a default)
    T = tcfg.bptt if bptt is None else bptt
    if B < 1 or T < 1:
        raise UserError("--batch-size and --bptt must be at least 1")
    result = {"checkpoint": str(path), "checkpoint_step": model.checkpoint_step}
    text_ids = run_text_ids(info, vocab, split=split, text=text, corpus=corpus, corpus_flag=True)
    ids = text_ids.pop("ids")
    result.update(text_ids)
    if text is None and len(ids) < 2:       # (batchify's "too few for batch size 1" would advise a smaller batch)
        fraction = getattr(tcfg.data, f"{split}_fraction", None)
        why = f" (the run was trained with --{split}-fraction {fraction:g})" if fraction is not None else ""
        raise UserError(f"the run's {split} split holds {len(ids)} {plural(len(ids), 'token')}{why}: nothing to "
                        f"evaluate; give another --split, or a text with --text FILE")
    if len(ids) < 2 * B or (text is not None and batch_size is None and len(ids) // B < T):
        B = 1       # (a short text read as B streams would lose most of its context: one stream)
    stream = batchify(ids, B)
    _say_long(stream, f"evaluating {result['source']}")
    loss, count = evaluate_stream(model, stream, T, bar=f"evaluating {result['source']}")
    result.update(loss=loss, ppl=ppl(loss), predicted=count, batch_size=B, bptt=T,
                  unscored=len(ids) - stream.size)
    return result
