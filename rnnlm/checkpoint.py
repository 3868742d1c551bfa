"""Checkpoints: self-describing `.npz` files, written atomically, read without pickle.

A checkpoint is one `.npz` whose array names say what they are:

    encoder.weight, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0,
    ..., decoder.weight, decoder.bias       model, PyTorch RNNModel names and shapes
    optim.name, optim.lr, optim.step,
    optim.<buffer>.<param>                  optimizer state (momentum_buffer, sum,
                                            exp_avg, exp_avg_sq), see optim.py
    train.<name>                            training-loop counters, carried hidden
                                            state (train.state.0, ...), RNG state (JSON)
    meta.format                             "rnnlm-checkpoint/1"
    meta.config                             the run's whole config, JSON
    meta.vocab                              the vocabulary, JSON (Vocab.to_json)

so that `generate` or `evaluate` can rebuild the model from the file alone.
Strings are stored as 0-d unicode arrays, never as object arrays.

The one thing to know before editing: `load` is the gate that turns every bad
file (missing, truncated, corrupt, pickled, foreign, wrong version, wrong
shapes) into a one-line `UserError`; do not let a raw zipfile/numpy exception
escape from it, and never pass `allow_pickle=True`. It reads the zip itself
(`_read_npz`), so that each member's compression method, declared sizes and
.npy header are checked before a byte of the array is allocated: a file of a
few bytes cannot make it allocate gigabytes.

Loading the weights into PyTorch (a 1-layer LSTM here; names are nn.LSTM's)::

    d = numpy.load("runs/NAME/best.npz", allow_pickle=False)
    sd = {k[len("rnn."):]: torch.from_numpy(d[k]) for k in d.files if k.startswith("rnn.")}
    lstm = torch.nn.LSTM(emsize, hidden, num_layers=layers); lstm.load_state_dict(sd)

(`encoder.weight` loads into `nn.Embedding`, `decoder.*` into `nn.Linear`, the
same way; together they are pytorch/examples' RNNModel state dict.)
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError, plural
from .fileio import atomic_write

FORMAT = "rnnlm-checkpoint/1"
PREFIXES = ("optim.", "train.", "meta.")

_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_PICKLE_MAGIC = b"\x80"


class CorruptCheckpoint(UserError):
    """A checkpoint file whose bytes are damaged (truncated, bit flips, members that do not add up),
    as opposed to one that is whole but not ours or not allowed: callers that know another file of the
    run add the advice to read that one instead (runs.load_model, a resume)."""


@dataclass
class Checkpoint:
    """A loaded checkpoint, split by prefix (the prefixes are stripped)."""

    path: Path
    model: dict        # name -> array, PyTorch names
    optim: dict        # e.g. "lr", "exp_avg.encoder.weight"
    train: dict        # e.g. "step", "state.0"
    config: dict       # the run's config (meta.config)
    vocab: dict | None  # Vocab.to_json() output (meta.vocab)


def string_array(s: str) -> np.ndarray:
    """A 0-d unicode array: how strings travel in a pickle-free .npz."""
    return np.array(str(s), dtype=np.str_)


def save(path, model: dict, *, config: dict, vocab: dict | None = None,
         optim: dict | None = None, train: dict | None = None) -> None:
    """Write a checkpoint atomically: temp file in the same folder, fsync, os.replace.

    `model` holds the model arrays by PyTorch name (`RNNModel.state_dict()`);
    `optim` and `train` are stored under their prefixes. A crash or Ctrl-C
    mid-write leaves the previous file intact. `config` and `vocab` must be JSON-ready dicts (TypeError
    otherwise). A model trained in Python is saved whole, with what the commands read, by runs.save_model.
    """
    from collections.abc import Mapping
    if not isinstance(model, Mapping):
        raise TypeError(f"checkpoint.save: model must be a dict of arrays (model.state_dict()), got "
                        f"{type(model).__name__}; runs.save_model(path, model, vocab, corpus) saves an RNNModel")
    for name, value in (("config", config), ("vocab", vocab)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"checkpoint.save: {name} must be a JSON-ready dict, got {type(value).__name__}"
                            + ("; give vocab.to_json()" if name == "vocab" else ""))
    path = Path(path)
    arrays = {}
    for k, v in model.items():
        if k.startswith(PREFIXES):
            raise ValueError(f"model array name '{k}' collides with a reserved prefix")
        arrays[k] = np.asarray(v)
    for prefix, part in (("optim.", optim or {}), ("train.", train or {})):
        for k, v in part.items():
            arrays[prefix + k] = string_array(v) if isinstance(v, str) else np.asarray(v)
    arrays["meta.format"] = string_array(FORMAT)
    arrays["meta.config"] = string_array(json.dumps(config, sort_keys=True))
    if vocab is not None:
        arrays["meta.vocab"] = string_array(json.dumps(vocab, ensure_ascii=False))
    for k, v in arrays.items():
        if v.dtype == object:
            raise ValueError(f"refusing to write object array '{k}' (it would need pickle)")
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path) -> Checkpoint:
    """Read and check a checkpoint; any problem becomes a one-line UserError."""
    path = Path(path)
    if path.is_dir():
        if path.suffix == ".npz":       # a run's model.npz or best.npz made a folder (by hand, or a bad copy)
            raise UserError(f"{path} is a folder, not a checkpoint file; move it away (a run folder holds "
                            "its checkpoints as files: model.npz, best.npz)")
        raise UserError(f"{path} is a folder; give a checkpoint file (e.g. {path / 'best.npz'})")
    if not path.exists():
        raise UserError(f"no checkpoint at {path}: no such file or folder")
    if not path.is_file():      # (opening a FIFO would wait for a writer; a device would be read as one)
        raise UserError(f"{path} is not a regular file (a named pipe, a device or a socket); a checkpoint is an "
                        ".npz file")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:        # what a full disk or a crash mid-copy leaves: damaged, so the run's other file is named
        raise CorruptCheckpoint(f"{path} is empty (0 bytes): corrupt or truncated")
    if head.startswith(_PICKLE_MAGIC):
        raise UserError(f"{path} is a pickle, not an rnnlm checkpoint; pickles are refused "
                        "(they can run code when loaded)")
    if head.startswith(_NPY_MAGIC):
        if _npy_is_object(path):
            raise UserError(f"{path} is a .npy file holding a pickled object array; refused, "
                            "rnnlm checkpoints never need pickle")
        raise UserError(f"{path} is a single .npy array, not an rnnlm checkpoint (.npz)")
    if not head.startswith(_ZIP_MAGIC):
        raise UserError(f"{path} is not an .npz file (it does not start like a zip archive)")
    try:
        arrays = _read_npz(path)
    except UserError:
        raise
    except MemoryError:
        raise UserError(f"not enough memory to load {path} ({path.stat().st_size / 2**20:.0f} MB on disk)") from None
    except Exception as exc:   # noqa: BLE001 - the gate: whatever zipfile/zlib/numpy raise is "corrupt"
        raise CorruptCheckpoint(f"{path} is corrupt or truncated ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
    if "meta.format" not in arrays:
        names = ", ".join(sorted(arrays)[:5]) or "no arrays"
        raise UserError(f"{path} is an .npz but not an rnnlm checkpoint (no meta.format; it holds {names})")
    fmt = str(arrays["meta.format"])
    if fmt != FORMAT:
        raise UserError(f"{path} has checkpoint format '{fmt}'; this rnnlm reads '{FORMAT}'")
    try:
        config = json.loads(str(arrays["meta.config"]))
        vocab = json.loads(str(arrays["meta.vocab"])) if "meta.vocab" in arrays else None
    except (KeyError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} has a missing or unreadable meta.config/meta.vocab ({exc})") from None
    parts = {"optim.": {}, "train.": {}}
    model = {}
    for k, v in arrays.items():
        for prefix, part in parts.items():
            if k.startswith(prefix):
                part[k[len(prefix):]] = v
                break
        else:
            if not k.startswith("meta."):
                model[k] = v
    return Checkpoint(path=path, model=model, optim=parts["optim."], train=parts["train."],
                      config=config, vocab=vocab)


def saved_step(path) -> int | None:
    """The training step a checkpoint was saved at, its `train.step` (model.npz: the loop's step count;
    best.npz: the step of the evaluation that made it the best), read from that one member alone (the
    weights are not read, so that a plot command can ask cheaply). None when the file is missing or
    unreadable, or holds no step (a checkpoint written by other code than train)."""
    try:
        with zipfile.ZipFile(path) as z, z.open("train.step.npy") as f:
            a = np.lib.format.read_array(f, allow_pickle=False)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    return int(a) if a.shape == () and a.dtype.kind in "iu" else None


def check_model_arrays(ckpt: Checkpoint, expected: dict) -> None:
    """Refuse a checkpoint whose model arrays do not match `expected` (name -> array).

    The message names the first mismatch, e.g. a vocabulary of another size
    shows up as `encoder.weight` with another first dimension.
    """
    missing = [k for k in expected if k not in ckpt.model]
    if missing:
        raise UserError(f"{ckpt.path} lacks model arrays {', '.join(missing[:3])}: "
                        "it was saved with another cell, layer count or config")
    extra = [k for k in ckpt.model if k not in expected]
    if extra:
        raise UserError(f"{ckpt.path} has unexpected model arrays {', '.join(extra[:3])}: "
                        "it was saved with another cell, layer count or config")
    for k, a in expected.items():
        got = ckpt.model[k]
        if got.shape != a.shape:
            raise UserError(f"{ckpt.path}: {k} has shape {got.shape}, the model expects {a.shape} "
                            "(another vocabulary or model size)")
        if got.dtype != a.dtype:
            raise UserError(f"{ckpt.path}: {k} is {got.dtype}, the model expects {a.dtype}")


# what np.savez writes (stored) or np.savez_compressed (deflated); the kinds of array a checkpoint holds
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_KINDS = "biufcU"
_DEFLATE_MAX_RATIO = 1100          # deflate cannot expand more than ~1032:1


def _read_npz(path: Path) -> dict:
    """{name: array} of an .npz, every member checked before it is read (see the module docstring).

    Raises UserError for what this reader refuses (foreign zip features,
    object arrays, declared sizes that do not add up); other exceptions mean
    a damaged file and are turned into UserError by `load`.
    """
    disk = path.stat().st_size
    arrays = {}
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        if sum(i.compress_size for i in infos) > disk:
            raise CorruptCheckpoint(f"{path} is corrupt or truncated (its members claim more bytes than the file has)")
        for info in infos:
            name = info.filename
            where = f"{path}: member {name!r}"
            if info.compress_type not in _COMPRESSIONS:
                raise UserError(f"{where} uses zip compression method {info.compress_type}; rnnlm reads "
                                f"only stored or deflated members (re-save it with numpy.savez)")
            if info.flag_bits & 0x1:
                raise UserError(f"{where} is encrypted; rnnlm checkpoints are not")
            if not name.endswith(".npy") or name[:-4] in arrays:
                raise UserError(f"{where} is not a uniquely named .npy array; not an rnnlm checkpoint")
            limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_MAX_RATIO)
            if info.file_size > limit + 65536:
                raise CorruptCheckpoint(f"{where} declares {info.file_size} {plural(info.file_size, 'byte')}, more than its "
                                f"{info.compress_size} stored {plural(info.compress_size, 'byte')} can hold: corrupt")
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    raise UserError(f"{where} has .npy version {version}; rnnlm writes 1.0 and 2.0")
                shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                         else np.lib.format.read_array_header_2_0)(f)
                if dtype.hasobject:
                    raise UserError(f"{path} holds object (pickled) arrays; refused, rnnlm checkpoints "
                                    "never need pickle")
                if dtype.kind not in _KINDS or dtype.names is not None or dtype.subdtype is not None:
                    raise UserError(f"{where} has dtype {dtype}, which no rnnlm checkpoint holds")
                count = 1
                for n in shape:
                    count *= int(n)
                nbytes = count * dtype.itemsize
                if f.tell() + nbytes != info.file_size:
                    raise CorruptCheckpoint(f"{where} declares shape {shape} of {dtype} ({nbytes} {plural(nbytes, 'byte')}), but the "
                                    f"member holds {info.file_size - f.tell()}: corrupt or truncated")
                data = f.read(nbytes)      # reading to the end checks the member's CRC-32
                if len(data) != nbytes or f.read(1):
                    raise CorruptCheckpoint(f"{where} is shorter or longer than declared: corrupt or truncated")
            a = np.frombuffer(data, dtype=dtype, count=count)
            arrays[name[:-4]] = (a.reshape(shape[::-1]).T if fortran else a.reshape(shape)).copy()
    return arrays


def _npy_is_object(path) -> bool:
    """Whether a .npy file's header declares an object dtype (i.e. pickled contents)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)(f)
        return header[2].hasobject
    except (ValueError, OSError, EOFError):
        return False

