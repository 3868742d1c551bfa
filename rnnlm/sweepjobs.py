"""Job functions of sweeps (run on Dask workers) and the corpus payload they read.

`train_job(settings, payload) -> JobResult` trains one TrainConfig on token
arrays shipped from the client (`corpus_payload`), in a temporary folder on
the worker, optionally measures the trained model (`MEASURES`: the Jacobian
lag curve; the agreement probe of `probe agreement`), and returns
the run folder's files as bytes and a flat row for sweep.jsonl. `noop_job`
does nothing: the bench times Dask's round trip with it.

Settings of a train job: {"train": TrainConfig.to_dict(), "measure": [names],
"keep_models": bool}. The client validates the TrainConfig before anything runs.

The one thing to know before editing: a job must give the same row and files
wherever it runs (a worker process, a machine without the corpus, the client),
so it reads nothing from disk but its own temporary folder and takes every
setting from `settings` and every token from the payload.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import math
from pathlib import Path

import numpy as np

from .errors import UserError
from .sweep import Terminated, check_stop, temp_folder
from .sweeprecord import JobResult

MEASURES = ("lag", "agreement")
RUN_FILES = ("config.json", "metrics.jsonl", "vocab.json")
MODEL_FILES = ("model.npz", "best.npz")
SPLITS = ("train", "valid", "test")
# The lag measurement of `--measure lag`: a cheap curve of the trained (best) model.
LAG = dict(max_lag=30, anchors=8, tokens=300, seed=0)
# The agreement probe of `--measure agreement` (probes.py, as `probe agreement`): distances 1, 5, ..., 25.
AGREEMENT = dict(distances="1..25:4", n=40, seed=0, feature="number")


# ---------------------------------------------------------------- payload


def corpus_payload(corpus) -> dict:
    """A data.Corpus as NumPy arrays (what is shipped to the workers once): ids, words, checksum, OOV rates."""
    d = {s: np.ascontiguousarray(getattr(corpus, s), dtype=np.int32) for s in SPLITS}
    d["itos"] = np.array(corpus.vocab.itos, dtype=np.str_)
    if corpus.vocab.counts is not None:
        d["counts"] = np.array(corpus.vocab.counts, dtype=np.int64)
    d["checksum"] = np.array(corpus.checksum, dtype=np.str_)
    d["oov_rate"] = np.array([float(corpus.oov_rate.get(s, 0.0)) for s in SPLITS], dtype=np.float64)
    return d


def corpus_from_payload(payload: dict, data_config):
    """The data.Corpus a payload describes (`data_config` is recorded, not read)."""
    from .data import Corpus
    from .vocab import Vocab
    if payload is None or "train" not in payload:
        raise UserError("a train job needs the corpus payload (Job.data names it)")
    counts = payload["counts"].tolist() if "counts" in payload else None
    vocab = Vocab([str(w) for w in payload["itos"].tolist()], counts)
    return Corpus(train=payload["train"], valid=payload["valid"], test=payload["test"], vocab=vocab,
                  checksum=str(payload["checksum"]), config=data_config,
                  oov_rate={s: float(r) for s, r in zip(SPLITS, payload["oov_rate"])}, origin="sweep payload")


# ---------------------------------------------------------------- jobs


def noop_job(settings: dict, payload) -> JobResult:
    """Does nothing (the bench's measure of Dask's per-job overhead)."""
    return JobResult(row={}, files={})


def train_job(settings: dict, payload) -> JobResult:
    """Train settings["train"] on the payload's corpus; measure; return the run's files and its row."""
    from .config import TrainConfig
    from .train import train
    measures = list(settings.get("measure") or [])
    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise UserError(f"unknown measurement {unknown[0]!r}; choose from {', '.join(MEASURES)}")
    config = TrainConfig.from_dict(dict(settings["train"]))
    corpus = corpus_from_payload(payload, config.data)
    with temp_folder() as tmp:
        run = Path(tmp) / "run"
        config = dataclasses.replace(config, out=str(run), progress=False)
        # train's lines (its run folder is the worker's temp folder; its evaluation bars): not in the
        # sweep's output, and a closed pipe on the client's side cannot fail the job
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            summary = train(config, corpus=corpus, on_step=lambda step: check_stop())
        if summary["stopped"] == "interrupted":     # Ctrl-C or SIGTERM reached train() (serial path): stop the sweep
            raise Terminated if summary.get("signal") == "SIGTERM" else KeyboardInterrupt
        row = summary_row(summary)
        files = {}
        for m in measures:
            if m == "lag":
                row.update(_measure_lag(run, corpus, files))
            elif m == "agreement":
                row.update(_measure_agreement(run, config, files, settings["train"].get("out")))
        names = RUN_FILES + (MODEL_FILES if settings.get("keep_models") else ())
        for name in names:
            if (run / name).exists():
                files[name] = (run / name).read_bytes()
        files["config.json"] = _with_out(files["config.json"], settings["train"].get("out"))
    return JobResult(row=row, files=files)


def train_settings_as_run(settings: dict) -> dict:
    """train_job's settings as the job runs them, to compare a recorded job with a rerun's
    (sweeprecord.check_recorded reads it as train_job.settings_as_run): the train config read back (any
    format) and written in the current one, with lr and min_lr left to their defaults (None) replaced
    by what they resolve to (TrainConfig.initial_lr, lr_floor), and without its out (the job's folder,
    which the sweep folder decides, however it was spelled). Settings this version cannot read as a
    TrainConfig are returned as they are."""
    from .config import TrainConfig
    try:
        config = TrainConfig.from_dict(settings.get("train"))
    except (UserError, TypeError, ValueError):
        return settings
    train = config.to_dict()
    train.update(lr=config.initial_lr(), min_lr=config.lr_floor())
    train.pop("out", None)
    out = {**settings, "train": train}
    if isinstance(settings.get("measure"), list):
        # the measurements are a set: "lag,agreement" and "agreement,lag" (or "lag,lag" and "lag", as
        # folders of earlier versions recorded it) take the same measurements, so they are the same job
        out["measure"] = measure_set(settings["measure"])
    return out


train_job.settings_as_run = train_settings_as_run


def measure_set(measure) -> list:
    """The measurements `measure` names, each once, in MEASURES' order (then any unknown name, as given):
    the form a job records, so that the same set given in another order, or with a name twice, is the
    same job (and not an axis of the table)."""
    measure = list(dict.fromkeys(measure))
    return [m for m in MEASURES if m in measure] + [m for m in measure if m not in MEASURES]


def _with_out(config_json: bytes, out) -> bytes:
    """config.json with train.out set to the folder the client writes the run to (not the worker's temp)."""
    import json
    d = json.loads(config_json)
    d["train"]["out"] = out
    return (json.dumps(d, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def summary_row(s: dict) -> dict:
    """The flat row of a train() summary: perplexities, steps, speed, how it stopped."""
    def num(x):
        return float(x) if x is not None and math.isfinite(x) else None
    row = {"stopped": s["stopped"], "steps": s["steps"], "tokens": s["tokens"], "params": s["params"],
           "train_s": round(s["elapsed_s"], 3), "tokens_per_s": round(s["tokens_per_s"], 1),
           "val_ppl": num(s["val_ppl"]), "best_val_ppl": num(s["best_val_ppl"]),
           "test_ppl": num(s.get("test_ppl")), "clip_fraction": s["clip_fraction"], "skipped": s["skipped"],
           "lr_final": s["lr"]}
    if s.get("nonfinite"):
        row["nonfinite_step"] = s["nonfinite"]["step"]
    return row


def _main_quantity(cell: str) -> str:
    return "state" if cell == "lstm" else "h"


def curve_numbers(doc: dict) -> dict:
    """The headline numbers of a lag_curve doc: its main quantity's spectral-norm curve. zero_lag: the
    lag from which that curve is exactly 0 (every unit saturated; decay_rate and factor_per_step are
    then undefined, None, when it is 0 from lag 1 or 2), None if it never is."""
    from .jacobian import curve_zero_lag
    q = _main_quantity(doc["meta"]["cell"])
    s = doc["curves"]["layer0"][q]
    med = s["spectral"]["median"]
    rate = s["decay_rate"]["spectral"]
    return {"quantity": q, "median_lag1": med[0], "median_last": med[-1], "max_lag": len(med),
            "decay_rate": rate, "factor_per_step": None if rate is None else float(f"{math.exp(rate):.4g}"),
            "vanish_lag": s["vanish_lag"]["spectral"], "zero_lag": curve_zero_lag(s, "spectral"),
            "flow_vanish_lag": doc["curves"]["layer0"]["flow"]["vanish_lag"],
            "bound_per_step": (doc["meta"].get("bound_per_step") or [None])[0]}


def _measure_lag(run: Path, corpus, files: dict) -> dict:
    """Jacobian lag curve of the run's best model on the start of the validation split: jacobian.json + summary."""
    import json

    from .jacobian import lag_curve
    from .optim import first_nonfinite
    from .runs import load_model
    from .plots import clip_label
    model, _, info, path = load_model(run, "best")
    if first_nonfinite(model.params) is not None:
        return {"lag": "skipped: non-finite parameters"}
    stream = corpus.valid if len(corpus.valid) >= LAG["tokens"] else corpus.train
    tokens = np.asarray(stream[:LAG["tokens"]])
    max_lag = min(LAG["max_lag"], len(tokens) - LAG["anchors"] - 2)
    doc = lag_curve(model, tokens, max_lag, LAG["anchors"], np.random.default_rng(LAG["seed"]), per_step=False)
    # the clipping the job trained with, as `jacobian` records it (plot lag's subtitle reads it)
    # and the checkpoint measured (best.npz, or model.npz before any validation) with its step, as `jacobian` does
    doc["meta"].update(source=f"{len(tokens)} validation tokens", seed=LAG["seed"], clip=clip_label(info.get("train")),
                       checkpoint=path.name, checkpoint_step=model.checkpoint_step)
    files["jacobian.json"] = (json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8")
    n = curve_numbers(doc)
    return {f"lag_{k}": v for k, v in n.items() if k != "quantity"}


def agreement_numbers(res: dict) -> dict:
    """The row columns of an agreement_probe result: overall accuracy and its interval, by distance, far end."""
    def acc(rec):
        return None if rec is None or rec["accuracy"] is None else round(rec["accuracy"], 4)
    bins = res["by_distance"]
    return {"accuracy": acc(res["overall"]), "ci": [round(c, 4) for c in res["overall"]["ci"]],
            "attractor": acc(res["attractor"]), "no_attractor": acc(res["no_attractor"]),
            "by_distance": [[b["distance"], acc(b)] for b in bins], "far": acc(bins[-1]) if bins else None,
            "chance_at": res["chance_at"], "pairs": res["pairs"], "coverage": res["coverage"]}


def _measure_agreement(run: Path, config, files: dict, out=None) -> dict:
    """Subject-verb agreement probe of the run's best model: probe-agreement-number.json + summary.

    On any corpus, as `probe agreement`: the pairs are drawn from the sintetico grammar's words that the
    run's vocabulary holds (all of them for a sintetico corpus, about a fifth of the pairs for Machado:
    agreement_coverage). A vocabulary from which no pair can be made (a corpus in another language) is
    "not applicable" with the probe's own reason, not a failed job: the training is the job's result.
    """
    import json

    from .optim import first_nonfinite
    from .probes import agreement_probe, model_scorer, parse_distances
    from .runs import load_model
    model, vocab, _, path = load_model(run, "best")
    if first_nonfinite(model.params) is not None:
        return {"agreement": "skipped: non-finite parameters"}
    a = AGREEMENT
    try:
        res = agreement_probe(model_scorer(model), vocab.stoi, parse_distances(a["distances"]), a["n"], a["seed"],
                              a["feature"])
    except UserError as exc:        # (the vocabulary lacks the grammar's words: the probe says which)
        return {"agreement": f"not applicable: {exc}"}
    files[f"probe-agreement-{a['feature']}.json"] = (json.dumps(
        {"run": out, "cell": config.model.cell, "label": Path(out).name if out else config.model.cell,
         "checkpoint": path.name, "checkpoint_step": model.checkpoint_step, **res},
        ensure_ascii=False) + "\n").encode("utf-8")
    return {f"agreement_{k}": v for k, v in agreement_numbers(res).items()}
