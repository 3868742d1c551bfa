"""Grids of trainings for `sweep run`, and the table of `sweep summarize`.

A grid is a dict {setting: value or list of values}: every key a field of
TrainConfig, ModelConfig or DataConfig (underscored, e.g. recurrent_scale,
clip_norm, max_vocab); a list is an axis of the grid, anything else a fixed
setting. `expand_grid` takes the product of the axes (in the order given,
seeds innermost), validates every point as a TrainConfig before anything runs
and names each point by its axis values ("cell=rnn,recurrent_scale=2,seed=1").
`train_sweep_jobs` turns the points into sweep Jobs of `sweepjobs.train_job`,
with the corpus read and tokenized here once per distinct DataConfig.

Grid files: JSON (always) or TOML (Python >= 3.11, tomllib), the same flat
dict plus optional "seeds" (N: seeds 0..N-1), "measure" (list) and
"keep_models" (bool). Example: {"cell": ["rnn", "lstm"], "recurrent_scale":
[0.5, 1, 2], "seeds": 3, "max_steps": 200, "emsize": 32, "hidden": 32}.

The one thing to know before editing: a point's name is its folder and its
identity in sweep.jsonl (a rerun skips names already recorded), so the name
must be a pure function of the point's axis values; changing the naming rule
makes old sweeps rerun every point.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from pathlib import Path

from .config import DEFAULT_LR, DataConfig, ModelConfig, TrainConfig, given_train_settings
from .errors import UserError, plural
from .settings import check_types
from .sweeprecord import TASK_JOB, TRAIN_JOB  # the job functions of a `sweep run` point and a study run

EXTRA_KEYS = ("seeds", "measure", "keep_models")
MAX_GRID_BYTES = 1 << 20    # a grid file is a few lines; more is a wrong file (or a device that never ends)
MAX_JOBS = 100_000          # points in one sweep: each is a training and a folder (1,000 is already days)
# Sweep defaults that differ from `train`'s: no sample text, no bar inside a job.
SWEEP_DEFAULTS = {"sample_words": 0, "progress": False}
_FIELDS = {
    "model": {f.name for f in dataclasses.fields(ModelConfig)} - {"vocab_size"},
    "data": {f.name for f in dataclasses.fields(DataConfig)},
    "train": {f.name for f in dataclasses.fields(TrainConfig)} - {"data", "model", "out", "progress"},
}


def read_grid_file(path) -> dict:
    """A grid file (.json, or .toml on Python >= 3.11) as a dict; UserError when it is missing, a folder,
    larger than MAX_GRID_BYTES (or never ends: /dev/zero), not UTF-8, not valid, or not one object."""
    from .corpus import read_bytes
    path = Path(path)
    if not path.exists():
        raise UserError(f"grid file {path} does not exist")
    if path.is_dir():
        raise UserError(f"grid file {path} is a folder; give a JSON (or TOML) grid file")
    raw = read_bytes(path, MAX_GRID_BYTES, advice="a grid file is a few lines of JSON (or TOML); give the grid file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"grid file {path} is not UTF-8 text; give a JSON (or TOML) grid file") from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:
            raise UserError("TOML grid files need Python >= 3.11 (tomllib); write the grid as JSON") from None
        try:
            d = tomllib.loads(text)     # (a key given twice is a TOMLDecodeError)
        except tomllib.TOMLDecodeError as exc:
            if "Cannot overwrite a value" in str(exc):      # (tomllib's words for a key given twice)
                raise UserError(f"grid file {path} sets a key twice ({exc}); keep one (a list gives several "
                                "values)") from None
            raise UserError(f"{path}: not valid TOML ({exc})") from None
    else:
        d = _read_json_grid(text, path)
    _refuse_unknown(set(d) - set(EXTRA_KEYS), f"grid file {path}", ", or seeds, measure, keep_models")
    return d


def _read_json_grid(text: str, path) -> dict:
    """A JSON grid file's one object; UserError when it is not valid, not one object, or gives a key twice."""

    def once(pairs):        # a key given twice: json keeps the last silently
        keys = [k for k, _ in pairs]
        twice = next((k for k in keys if keys.count(k) > 1), None)
        if twice is not None:
            raise UserError(f"grid file {path} sets {twice!r} twice; keep one (a list gives several values)")
        return dict(pairs)
    try:
        d = json.loads(text, object_pairs_hook=once)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise UserError(f"{path}: a grid file holds one object {{setting: value or list}}")
    return d


def _refuse_unknown(keys, where: str, more: str = "") -> None:
    """UserError naming the first of `keys` that is no setting of train, data or model."""
    unknown = sorted(set(keys) - set().union(*_FIELDS.values()))
    if unknown:
        raise UserError(f"unknown setting {unknown[0]!r} in {where}; use the names of the train flags "
                        f"with underscores (e.g. recurrent_scale){more}")


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v).replace("/", "_").replace(" ", "_").replace(":", "_")


def point_name(point: dict, axes: list[str]) -> str:
    """The folder name of a grid point: its axis values, in axis order (other characters, e.g. ô, become _)."""
    return re.sub(r"[^A-Za-z0-9._+=,-]", "_", ",".join(f"{k}={_short(point[k])}" for k in axes)) or "run"


def names_apart(points, jobs, rows) -> list:
    """`points` with a new name for each whose job (in `jobs`, the same order) is a training the folder's
    `rows` do not record (sweeprecord.recorded_jobs) while a row of other settings holds its name: a grid
    that names its jobs by fewer axes than an earlier one into the folder (`--dropout 0` alone names
    "seed=2"; an earlier grid's "seed=2" had dropout 0.2). The name gains the settings that tell it from
    that row, as the axes spell them ("seed=2,dropout=0"), so that it is trained and recorded instead of
    refused: only where each of those settings already takes several values among the folder's jobs (an
    earlier grid's axis). A setting changed for the whole grid (--lr 5 into a folder trained at lr 20) keeps
    the name, and check_recorded refuses it, as it does a point whose longer name is taken too."""
    from .sweeprecord import _leaves, _resolved, recorded_jobs
    found = recorded_jobs(rows, jobs)
    held = {r.get("name"): r for r in rows}
    taken = set(held) | {job.name for job in jobs}

    def train_leaves(fn, settings) -> dict:
        r = _resolved(fn, settings)
        return dict(_leaves(r["train"])) if isinstance(r, dict) and isinstance(r.get("train"), dict) else {}

    values = {}         # each setting's values among the folder's jobs (a setting they vary: an axis)
    for r in rows:
        for path, v in train_leaves(r.get("fn"), r.get("settings")).items():
            values.setdefault(path, set()).add(json.dumps(v, sort_keys=True))
    out = []
    for (name, point, config), job in zip(points, jobs):
        row = held.get(name)
        if name in found or row is None or row.get("fn") != job.fn:
            out.append((name, point, config))
            continue
        mine = train_leaves(job.fn, json.loads(json.dumps(job.settings)))
        theirs = train_leaves(row["fn"], row.get("settings"))
        differ = [(path, value) for path, value in mine.items()
                  if path and path[-1] != "out" and theirs.get(path, object()) != value]
        longer = re.sub(r"[^A-Za-z0-9._+=,-]", "_", ",".join([name] + [f"{p[-1]}={_short(v)}" for p, v in differ]))
        if not differ or longer in taken or any(len(values.get(p, ())) < 2 for p, _ in differ):
            out.append((name, point, config))
            continue
        taken.add(longer)
        out.append((longer, point, config))
    return out


def make_config(point: dict) -> TrainConfig:
    """A validated TrainConfig from a flat {field: value} dict (the `train` command's conveniences applied)."""
    _refuse_unknown(point, "the grid")
    given = {k: v for k, v in point.items() if k in _FIELDS["train"]}
    for cls, part in ((DataConfig, "data"), (ModelConfig, "model"), (TrainConfig, "train")):
        # a type first, as config.json's are checked: "'hidden' must be an integer, got 'abc' (a string)"
        check_types(cls, {k: v for k, v in point.items() if k in _FIELDS[part]}, prefix="")
    given_train_settings(given)
    for k, v in SWEEP_DEFAULTS.items():
        given.setdefault(k, v)
    try:
        config = TrainConfig(data=DataConfig(**{k: v for k, v in point.items() if k in _FIELDS["data"]}),
                             model=ModelConfig(**{k: v for k, v in point.items() if k in _FIELDS["model"]}),
                             **given)
        config.validate()
    except TypeError as exc:
        raise UserError(f"a grid setting has the wrong type ({exc})") from None
    return config


def expand_grid(grid: dict) -> tuple[list[tuple[str, dict, TrainConfig]], list[str]]:
    """[(name, point, TrainConfig)] for every point of `grid`, and the axis names.

    grid: {setting: value | list}, plus "seeds": N (an axis seed = 0..N-1
    unless "seed" is given). A list of one value is fixed, not an axis. Every
    point is validated; the first bad one is a UserError naming it.
    """
    grid = {k: v for k, v in grid.items() if k not in ("measure", "keep_models")}
    seeds = grid.pop("seeds", None)
    if seeds is not None:
        if "seed" in grid:
            raise UserError("give either seeds (a count) or seed (values), not both")
        if isinstance(seeds, float) and seeds.is_integer():     # 3.0, 1e3 (JSON's numbers with a point or e)
            seeds = int(seeds)
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise UserError(f"seeds must be a positive whole number (a count, such as 3), got {seeds!r}")
        if seeds > MAX_JOBS:
            raise UserError(f"seeds is {seeds:,}, more than a sweep runs ({MAX_JOBS:,} jobs at most); give fewer")
        grid["seed"] = list(range(seeds))
    empty = [k for k, v in grid.items() if isinstance(v, list) and not v]
    if empty:
        raise UserError(f"the grid gives {empty[0]} an empty list; give it at least one value")
    axes = [k for k, v in grid.items() if isinstance(v, list) and len(v) > 1]
    if "seed" in axes:                     # seeds innermost: one setting's seeds side by side
        axes = [a for a in axes if a != "seed"] + ["seed"]
    fixed = {k: (v[0] if isinstance(v, list) else v) for k, v in grid.items() if k not in axes}
    count = math.prod(len(grid[a]) for a in axes)
    if count > MAX_JOBS:
        raise UserError(f"the grid has {count:,} points ({' x '.join(str(len(grid[a])) for a in axes)}), more "
                        f"than a sweep runs ({MAX_JOBS:,} jobs at most); give fewer values")
    points = []
    for values in itertools.product(*(grid[a] for a in axes)):
        point = {**fixed, **dict(zip(axes, values))}
        name = point_name(point, axes)
        try:
            config = make_config(point)
        except UserError as exc:
            raise UserError(f"grid point {name}: {exc}") from None
        points.append((name, point, config))
    names = [n for n, _, _ in points]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UserError(f"two grid points are both named {dup!r}; give distinct values")
    return points, axes


def check_corpora(points) -> None:
    """UserError (one line) when a point's corpus cannot be found (a --corpora-dir without it, a path that
    is not there): each distinct one looked up, not read, so that `sweep run` says it before its first
    line (reading and tokenizing come after that line)."""
    from .corpus import resolve
    seen = set()
    for _, _, config in points:
        key = (config.data.corpus, config.data.corpora_dir)
        if key not in seen:
            seen.add(key)
            config.data.validate()
            resolve(*key)


def train_sweep_jobs(points, measure=(), keep_models: bool = False, folder=None, load: bool = True):
    """(jobs, data) for run_sweep: one train_job per (name, point, TrainConfig); each DataConfig's corpus loaded once.

    folder: the sweep folder; each config's `out` becomes folder/name (what its config.json records).
    load=False: the jobs only (data {}), e.g. to check them against the record before reading any corpus.
    """
    from .data import load_corpus
    from .sweeprecord import Job
    from .sweepjobs import MEASURES, corpus_payload, measure_set
    for m in measure:
        if m not in MEASURES:
            raise UserError(f"unknown measurement {m!r}; choose from {', '.join(MEASURES)}")
    measure = measure_set(measure)      # a set: each once, in one order (a name given twice is taken once)
    data, keys, jobs = {}, {}, []
    for name, _, config in points:
        dkey = json.dumps(config.data.to_dict(), sort_keys=True)
        if dkey not in keys:
            keys[dkey] = f"corpus-{len(keys)}"
            if load:
                data[keys[dkey]] = corpus_payload(load_corpus(config.data))
        if folder is not None:
            config = dataclasses.replace(config, out=str(Path(folder) / name))
        jobs.append(Job(name, TRAIN_JOB,
                        {"train": config.to_dict(), "measure": list(measure), "keep_models": bool(keep_models)},
                        keys[dkey]))
    return jobs, data


# ---------------------------------------------------------------- reading a sweep back


def flat_settings(settings: dict) -> dict:
    """A train job's settings as {leaf name: value} (train.model.cell -> cell); other jobs: as they are.
    A study's task job names its step budget (its train.steps) max_steps, as a train job's is named:
    the table's steps column is the steps a job ran."""
    if "train" not in settings:
        return {k: v for k, v in settings.items() if not isinstance(v, dict)}
    t = settings["train"]
    flat = {k: v for k, v in t.items() if k not in ("format", "data", "model", "out")}
    if "task" in settings and "steps" in flat:
        flat["max_steps"] = flat.pop("steps")
    flat.update(t.get("model", {}))
    flat.update(t.get("data", {}))
    if settings.get("measure"):
        from .sweepjobs import measure_set
        flat["measure"] = ",".join(measure_set(settings["measure"]))     # (one spelling of the set: not an axis)
    return flat


def table_rows(rows: list[dict]) -> list[dict]:
    """Each row with its settings flattened into columns (the row's own keys win); steps is the steps
    the job ran (a study row's steps_run: it may stop before its budget, max_steps)."""
    out = []
    for r in rows:
        flat = flat_settings(r.get("settings", {}))
        out.append({**flat, **{k: v for k, v in r.items() if k != "settings"}})
        if r.get("steps_run") is not None:
            out[-1]["steps"] = r["steps_run"]
    return out


# The fixed settings a sweep's table and figure name (what a reader needs to compare its numbers with
# others: the vocabulary changes every perplexity); in this order.
FIXED_KEYS = ("corpus", "max_vocab", "cell", "activation", "emsize", "hidden", "layers", "init", "recurrent_scale",
              "optimizer", "lr", "clip_norm", "bptt", "batch_size", "max_steps", "max_minutes", "eval_every",
              "dropout", "seed")
_ZERO_IS_NONE = ("max_steps", "max_minutes", "max_vocab", "eval_every")    # 0 means "no limit": left out


def shown_fixed(key: str, value) -> bool:
    """Whether a fixed setting is named in the table's head and the figure's title (not None, not a 0 limit)."""
    return value is not None and not (key in _ZERO_IS_NONE and not value)


def varying(rows: list[dict]) -> tuple[list[str], dict]:
    """(settings that differ between rows, settings that are the same in all): the grid's axes and fixed part."""
    flats = [flat_settings(r.get("settings", {})) for r in rows]
    keys = []
    for f in flats:
        keys += [k for k in f if k not in keys]
    axes = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    fixed = {k: flats[0].get(k) for k in keys if k not in axes} if flats else {}
    return axes, fixed


RESULT_COLUMNS = ("status", "best_val_ppl", "val_ppl", "steps", "stopped", "tokens_per_s", "wall_s",
                  "lag_factor_per_step", "lag_vanish_lag", "agreement_accuracy", "agreement_far",
                  "agreement_chance_at", "worker")
# A measurement that did not run records why under its own name (e.g. "agreement": "not applicable: ...");
# its first column in the table then says "n/a" or "skipped".
MEASURE_COLUMNS = {"lag": "lag_factor_per_step", "agreement": "agreement_accuracy"}


# The job functions whose rows the table knows (RESULT_COLUMNS): a `sweep run` training, a study's task.
KNOWN_JOBS = (TRAIN_JOB, TASK_JOB)


def result_fields(rows: list[dict], shown: set) -> list[str]:
    """The numeric result fields of the rows of other job functions than KNOWN_JOBS (a JobResult's row
    from Python, e.g. "value"), in the order first met: columns for the table, besides `shown` and the
    engine's own (attempts, max_rss_mb)."""
    from .sweeprecord import ENGINE_KEYS
    out = []
    for r in rows:
        if r.get("fn") in KNOWN_JOBS:
            continue
        for k, v in r.items():
            if (k not in ENGINE_KEYS and k not in shown and k not in out and isinstance(v, (int, float))
                    and not isinstance(v, bool)):
                out.append(k)
    return out


def with_default_lr(fixed: dict) -> dict:
    """The fixed settings with the learning rate the jobs started with: a train job records lr None when
    --lr was not given (the optimizer's default, config.DEFAULT_LR), and a figure's title or the table's
    heading then said nothing of the setting that decides whether an RNN trains; now 'lr=20 (sgd default)'."""
    if "lr" not in fixed or fixed["lr"] is not None or "optimizer" not in fixed:
        return fixed
    lr = DEFAULT_LR.get(fixed["optimizer"])
    return {**fixed, "lr": f"{lr:g} ({fixed['optimizer']} default)"} if lr is not None else fixed


def _markdown(cell: str) -> str:
    """A table cell as Markdown reads it: a | escaped and line breaks as spaces (an error message may hold
    either, and would otherwise end the cell or the row)."""
    return " ".join(cell.replace("|", "\\|").split("\n"))


def _cell(v, column: str = "") -> str:
    if v is None:
        return "-"
    if column.endswith("ppl") and isinstance(v, (int, float)) and not isinstance(v, bool):
        from .runs import fmt_ppl
        return fmt_ppl(v)       # as every report prints perplexities: 141.19, or 1.99e+21 for an exploded run
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def summarize(folder) -> str:
    """The table of a sweep folder: one line per recorded job, in sweep.jsonl's order (the jobs' order as
    given to the sweep, so two runs of one sweep print the same table), its axis settings and results (the
    known RESULT_COLUMNS; for a job function of one's own, the numeric fields of its rows, `result_fields`).
    A failed job's status cell says its error and, for one that raised, where and which file holds the
    traceback (sweeprecord.where_failed)."""
    from .sweeprecord import empty_reason, read_rows, where_failed
    rows = read_rows(folder)
    if not rows:
        raise UserError(empty_reason(folder))
    axes, fixed = varying(rows)
    flat = table_rows(rows)
    cols = ["name"] + [a for a in axes if a not in ("seed",)] + (["seed"] if "seed" in axes else [])
    notes = {}
    for r in flat:
        for m, col in MEASURE_COLUMNS.items():
            why = r.get(m)
            if isinstance(why, str) and r.get(col) is None:
                r[col] = "n/a" if why.startswith("not applicable") else "skipped"
                notes.setdefault(f"{m}: {why}", []).append(r["name"])
        if r.get("lag_zero_lag") is not None and r.get("lag_factor_per_step") is None:
            # a curve exactly 0 from lag 1 or 2 has no slope to fit: say so rather than "-"
            r["lag_factor_per_step"] = f"undefined: 0 from lag {r['lag_zero_lag']}"
    cols += [c for c in RESULT_COLUMNS if any(r.get(c) is not None for r in flat)]
    # a job function of one's own (run_sweep from Python): the numeric fields of its results, after status
    extra = result_fields(rows, set(cols))
    at = cols.index("status") + 1 if "status" in cols else len(cols)
    cols[at:at] = extra
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in flat:
        cells = [_cell(r.get(c), c) for c in cols]
        if r.get("status") == "failed":
            # where a job of one's own raised, and its traceback's file (sweeprecord.where_failed)
            cells[cols.index("status")] = f"failed: {r.get('error')}{where_failed(r, folder)}"
        lines.append("| " + " | ".join(_markdown(c) for c in cells) + " |")
    done = sum(r.get("status") == "done" for r in rows)
    own = all(r.get("fn") not in KNOWN_JOBS for r in rows)     # only jobs of one's own: all their fixed settings
    fixed = with_default_lr(fixed)
    named = ", ".join(f"{k}={_cell(fixed[k])}" for k in (fixed if own else FIXED_KEYS)
                      if shown_fixed(k, fixed.get(k)))
    head = f"{folder}: {len(rows)} {plural(len(rows), 'job')} ({done} done, {len(rows) - done} failed)"
    head += f"; fixed: {named}" if named else ""
    tail = [f"{why} ({len(names)} job{'s' if len(names) > 1 else ''})" for why, names in notes.items()]
    return head + "\n\n" + "\n".join(lines) + ("\n\n" + "\n".join(tail) if tail else "")
