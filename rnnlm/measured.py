"""What a measurement's JSON on disk says about itself: older than its checkpoint, or of other settings.

The `jacobian` and `probe` commands write a JSON (a lag curve, a probe
result) that records the checkpoint it read, the step that checkpoint was
saved at and the settings it was measured with. `measurement_age_note` is
the note `plot lag` and `plot probe` print when the run trained further
since (the checkpoint now holds a later step), with the command that
measures it again (`_remeasure_command`: the same kind and the settings the
JSON records where not the default); `replaced_note` is the note the
commands print when the JSON they are about to write at its default path
replaces a measurement of other settings.

The one thing to know before editing: both notes only advise, and never
raise: a JSON or checkpoint that cannot be read, or that records too little,
gives no note (the plot says what it cannot read). A rerun command must
repeat the measurement: a setting a measurement's JSON records and
`_measured_flags` drops would have it measure something else under the same
file name; the defaults compared with are config.JacobianConfig's and
config.PROBE_DEFAULTS.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError, command
from .runs import CONFIG, LATEST

# the files a run, a sweep or a study keeps under these names: a measurement's --out never takes their place
_RECORDS = {"config.json", "vocab.json", "study.json", "summary.json", "sweep.json"}


def is_measurement(doc) -> bool:
    """Whether a JSON document is a measurement of ours: a `jacobian` lag curve or a `probe` result."""
    return isinstance(doc, dict) and ("curves" in doc or str(doc.get("format", "")).startswith("rnnlm-probe"))


def check_measurement_out(out) -> None:
    """UserError (one line) for a `jacobian` or `probe` --out that would replace something other than a
    measurement: a name that is not .json (a run's best.npz, its metrics.jsonl, a sweep's sweep.jsonl), the
    name of a run's, sweep's or study's own record (config.json, vocab.json, study.json), or an existing file
    that holds no jacobian or probe result. An existing measurement may be replaced (the command says so)."""
    path = Path(out)
    if path.is_dir():
        raise UserError(f"--out {out} is a folder; give a FILE.json name (in it, or elsewhere)")
    if path.exists() and not path.is_file():
        raise UserError(f"--out {out} is not a regular file; give a FILE.json name")
    if path.suffix.lower() != ".json":
        raise UserError(f"--out {out}: a measurement is written as JSON; give a FILE.json name (it would "
                        f"replace {path.name} otherwise)" if path.exists() else
                        f"--out {out}: a measurement is written as JSON; give a FILE.json name")
    if path.name.lower() in _RECORDS:
        raise UserError(f"--out {out}: {path.name} is the name of a run's, sweep's or study's own record; give "
                        "another FILE.json name")
    check_replaces_a_measurement(path, f"--out {out}", "give another FILE.json name")


def check_replaces_a_measurement(path: Path, named: str, advice: str) -> None:
    """UserError (one line) when `path` exists and holds no jacobian or probe measurement (a JSON of the
    user's own at that name): a measurement replaces only an earlier measurement, at a given --out (named
    "--out X") or at the command's own place in a run folder (named by its path; advice: give --out)."""
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            doc = None
        if not is_measurement(doc):
            raise UserError(f"{named} exists and holds no jacobian or probe measurement; {advice} (a "
                            "measurement replaces only an earlier measurement)")


def _measured_checkpoint(json_path: Path, recorded) -> Path | None:
    """The checkpoint file a measurement's JSON says it read (`recorded`, as the command was given it), as it
    is found now: the file of that name beside the JSON when the JSON sits in a run folder (the folder may
    have moved or been copied since, or the command have run from another folder; None when that folder has
    no such file), else the recorded path (None when it is not there)."""
    if not isinstance(recorded, str) or not recorded.endswith(".npz"):
        return None         # a fresh model ("init"), a sweep job's "N validation tokens", nothing recorded
    if (json_path.parent / CONFIG).is_file():
        # a run folder's measurement is of that folder's checkpoint, wherever it was measured (a copied
        # folder's JSON records the original's path): never the recorded one elsewhere
        beside = json_path.parent / Path(recorded).name
        return beside if beside.is_file() else None
    return Path(recorded) if Path(recorded).is_file() else None


def _other_run(json_path: Path, recorded) -> Path | None:
    """The run folder of the checkpoint a measurement's JSON records when that is another run than the one the
    JSON sits in (a --out into another run's folder), else None: the recorded checkpoint's folder is a run
    folder, not this one, and its config.json differs from this one's (a copied run's JSON records the
    original's path, and the two configs are the same)."""
    if not isinstance(recorded, str) or not recorded.endswith(".npz") or not (json_path.parent / CONFIG).is_file():
        return None
    folder = Path(recorded).parent
    try:
        if folder.resolve() == json_path.parent.resolve() or not (folder / CONFIG).is_file():
            return None
        if (folder / CONFIG).read_bytes() == (json_path.parent / CONFIG).read_bytes():
            return None
    except OSError:
        return None
    return folder


def _distances_flag(distances) -> str:
    """A list of distances as the probe's --distances takes it: 1..40 when consecutive, 1..25:4 when evenly
    spaced, else 1,2,5."""
    ds = [int(d) for d in distances]
    step = ds[1] - ds[0] if len(ds) >= 3 else 0
    if step >= 1 and ds == list(range(ds[0], ds[-1] + 1, step)):
        return f"{ds[0]}..{ds[-1]}" + (f":{step}" if step > 1 else "")
    return ",".join(map(str, ds))


def _measured_flags(doc: dict, meta: dict) -> list[str]:
    """The flags that repeat what a measurement's JSON records it measured with, where that differs from
    the command's default (config.JacobianConfig's, config.PROBE_DEFAULTS)."""
    from .config import PROBE_DEFAULTS, SPLITS, JacobianConfig
    from .settings import default
    flags = []
    if "curves" in doc:
        text = meta.get("text")
        if isinstance(text, str) and text:
            source, _, split = text.rpartition(":")
            if source and split in SPLITS and not Path(text).is_file():
                if split != default(JacobianConfig, "split"):
                    flags.append(f"--split {split}")
            elif not text.startswith("random"):
                flags.append(f"--text {text}")
        for key in ("max_lag", "anchors", "tokens", "seed"):
            value = meta.get(key)
            if value is not None and value != default(JacobianConfig, key):
                flags.append(f"--{key.replace('_', '-')} {value}")
        return flags
    kind = doc.get("probe")
    defaults = PROBE_DEFAULTS.get(kind, {})
    if kind == "agreement" and doc.get("feature") not in (None, "number"):
        flags.append(f"--feature {doc['feature']}")
    if kind == "context" and doc.get("mode") not in (None, "shuffle"):
        flags.append(f"--mode {doc['mode']}")
    recorded = {"split": doc.get("split"), "seed": doc.get("seed"), "window": doc.get("window"),
                "n": doc.get("n_per_distance"), "n_targets": doc.get("n_targets_asked"),
                "distances": _distances_flag(doc["distances"]) if isinstance(doc.get("distances"), list) else None}
    for key, default_value in defaults.items():
        value = recorded.get(key)
        if value is not None and str(value) != str(default_value):
            flags.append(f"--{key.replace('_', '-')} {value}")
    return flags


def _remeasure_command(doc: dict, meta: dict, ckpt: Path, json_path: Path | None = None) -> str:
    """The command that measures the checkpoint again as the JSON's own did: its kind, feature or mode, the
    settings it records (_measured_flags), and --out the JSON when it is not where that command writes."""
    folder = ckpt.parent if (ckpt.parent / CONFIG).is_file() else None
    target = str(folder) if folder is not None else str(ckpt)
    latest = ["--checkpoint latest"] if folder is not None and ckpt.name == LATEST else []
    if "curves" in doc:
        head, name = f"{command()} jacobian {target}", "jacobian"
    else:
        kind = doc.get("probe")
        head = f"{command()} probe {kind} {target}"
        name = f"probe-{kind}-{doc.get('feature') if kind == 'agreement' else doc.get('mode')}"
    flags = _measured_flags(doc, meta) + latest
    if json_path is not None:
        written = folder / f"{name}.json" if folder is not None else ckpt.with_name(f"{ckpt.stem}-{name}.json")
        if Path(json_path).resolve() != written.resolve():
            flags.append(f"--out {json_path}")
    return " ".join([head] + flags)


def _kind(doc: dict) -> str:
    """A measurement's kind in words: "Jacobian lag curve", "agreement probe (number)", "context probe (shuffle)"."""
    if "curves" in doc:
        return "Jacobian lag curve"
    kind = doc.get("probe")
    return f"{kind} probe ({doc.get('feature') if kind == 'agreement' else doc.get('mode')})"


def replaced_note(out, new: dict, measured_by, inside: str | None = None, new_doc: dict | None = None,
                  given: bool = False) -> str | None:
    """The note that a measurement's JSON about to be written (a run's jacobian.json, probe-context-shuffle.json,
    or the file a --out names: `given`) replaces a measurement of other settings, naming each as
    "--flag old -> new", or one of another kind or of another checkpoint; None when there is no such file,
    it is not a measurement, or it measured the same (a repeat needs no word).
    new: the settings of the new measurement (new_doc: the whole document, when `new` is a part of it);
    measured_by: (key, flag) pairs, the keys of `new` and of the earlier JSON (of its `inside` object: a lag
    curve's "meta") that the flags set, compared where the earlier one records them; a checkpoint's path
    ("source", "checkpoint") is shown by its file name, or whole when the two are of other folders; a list of
    distances as --distances takes it (_distances_flag: 1..40, 1..25:4, 1,2,5)."""
    try:
        whole = json.loads(Path(out).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not is_measurement(whole):
        return None
    keep = "give another --out to keep each measurement" if given else "give --out FILE to keep each measurement"
    new_doc = new if new_doc is None else new_doc
    if _kind(whole) != _kind(new_doc):
        return f"note: {out} held a {_kind(whole)}; replaced by this {_kind(new_doc)} ({keep})"
    old = whole.get(inside) if inside else whole
    if not isinstance(old, dict):
        return None

    def shown(key, value, other):
        if key in ("source", "checkpoint") and isinstance(value, str):
            same_folder = isinstance(other, str) and Path(value).parent.resolve() == Path(other).parent.resolve()
            return Path(value).name if same_folder else value
        if isinstance(value, list):     # (distances: 1..1000 rather than a thousand numbers)
            return _distances_flag(value) if all(isinstance(v, int) for v in value) else ",".join(map(str, value))
        return value
    changed = []
    for k, flag in measured_by:
        if k in old and old.get(k) != new.get(k):
            if k in ("source", "checkpoint") and isinstance(old.get(k), str) and isinstance(new.get(k), str) \
                    and Path(old[k]).parent.resolve() != Path(new[k]).parent.resolve():
                flag = "checkpoint"     # another run's: not what --checkpoint picks
            changed.append(f"{flag} {shown(k, old.get(k), new.get(k))} -> {shown(k, new.get(k), old.get(k))}")
    if not changed:
        return None
    return f"note: {out} held a measurement of other settings ({'; '.join(changed)}); replaced ({keep})"


def measurement_age_note(json_path) -> str | None:
    """The note that a measurement of a checkpoint (a `jacobian` lag curve, a `probe` result) is older than
    that checkpoint is now, or None: what `plot lag` and `plot probe` say on stderr before they redraw it.

    The measurement's JSON records the checkpoint it read (jacobian: meta.source; probe: checkpoint) and the
    step that checkpoint was saved at (meta.checkpoint_step / checkpoint_step, checkpoint.saved_step); when
    the run was resumed and trained since, the same file holds a later step: "... measured best.npz at step
    500; the run's best.npz is now at step 1,200 ...: rerun '...'". The checkpoint compared with is, for a JSON
    in a run folder, the file of that name in that folder (a copied folder is not compared with the
    original's), and the rerun advice names that folder and keeps the settings the JSON records (--split,
    --window, ... where not the default; --out the JSON where it is not the default file). A JSON written
    before the step was recorded (or of a checkpoint holding none) is said to be possibly older only when the
    checkpoint file was saved after the JSON was written (its modification time), and its step is said to be
    unknown; otherwise nothing is said. Never raises: an unreadable JSON or checkpoint says nothing (the plot says what it can
    not read)."""
    from .checkpoint import saved_step
    json_path = Path(json_path)
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    meta = doc.get("meta") if "curves" in doc else doc
    if not isinstance(meta, dict) or ("curves" not in doc and not str(doc.get("format", "")).startswith("rnnlm-probe")):
        return None
    recorded = meta.get("source") if "curves" in doc else meta.get("checkpoint")
    if (other := _other_run(json_path, recorded)) is not None:
        return (f"note: {json_path} measured {recorded}, a checkpoint of another run ({other}), not of the run "
                f"it sits in (written there with --out): it is drawn as that run's")
    ckpt = _measured_checkpoint(json_path, recorded)
    if ckpt is None:
        return None
    now, then = saved_step(ckpt), meta.get("checkpoint_step")
    rerun = _remeasure_command(doc, meta, ckpt, json_path)
    if isinstance(then, int) and not isinstance(then, bool):
        if now is None or now == then:
            return None
        return (f"note: {json_path} measured {ckpt.name} at step {then:,}; the run's {ckpt.name} is now at step "
                f"{now:,} (the run trained further since): rerun '{rerun}' to measure it")
    try:
        newer = ckpt.stat().st_mtime > json_path.stat().st_mtime
    except OSError:
        return None
    if not newer:
        return None
    at = f" (now at step {now:,})" if now is not None else ""
    why = ("the checkpoint it read held none" if "checkpoint_step" in meta
           else "it was written by an earlier rnnlm")
    return (f"note: {json_path} may be older than what it measured: {ckpt}{at} was saved after it was written, "
            f"and the step it measured is unknown ({why}); rerun '{rerun}' to measure the checkpoint as it is now")
