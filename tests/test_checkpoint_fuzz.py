"""Every malformed checkpoint is refused in one line (or, where the damage is in a field no reader
uses, read back exactly): truncations, bit flips, foreign zip features, absurd declared shapes.

Seeded and small: a few hundred cases in a few seconds.
"""
import io
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnnlm import checkpoint
from rnnlm.cli import main
from rnnlm.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small real checkpoint and its arrays as load() returns them."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.npz"
    checkpoint.save(path, {"encoder.weight": rng.standard_normal((7, 4)).astype(np.float32),
                           "decoder.bias": rng.standard_normal(7).astype(np.float32)},
                    config={"train": {"format": 2}}, vocab={"itos": ["<unk>", "<eos>", "a"]},
                    optim={"lr": 0.5, "step": 3}, train={"rng": "{}"})
    return path, path.read_bytes(), checkpoint.load(path)


def _same(a, b) -> bool:
    return (a.config == b.config and a.vocab == b.vocab
            and all(set(x) == set(y) and all(np.array_equal(x[k], y[k]) and x[k].dtype == y[k].dtype
                                             for k in x)
                    for x, y in ((a.model, b.model), (a.optim, b.optim), (a.train, b.train))))


def _outcome(path, reference):
    """'refused' (one-line UserError), or 'exact' (loaded and equal to the reference); else fail."""
    try:
        got = checkpoint.load(path)
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message and message, message
        return "refused"
    assert _same(got, reference), f"{path} loaded but differs from the original"
    return "exact"


def test_truncations(good, tmp_path):
    path, data, ref = good
    rng = np.random.default_rng(1)
    cuts = sorted(set(rng.integers(0, len(data), 100).tolist()) | {0, 1, 4, 30, len(data) - 1})
    for n in cuts:
        bad = tmp_path / f"cut{n}.npz"
        bad.write_bytes(data[:n])
        assert _outcome(bad, ref) == "refused", n


def test_bit_flips(good, tmp_path):
    path, data, ref = good
    rng = np.random.default_rng(2)
    seen = {"refused": 0, "exact": 0}
    for i in range(250):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, len(b)))
            b[pos] ^= 1 << int(rng.integers(0, 8))
        bad = tmp_path / "flip.npz"
        bad.write_bytes(bytes(b))
        seen[_outcome(bad, ref)] += 1
    assert seen["refused"] > 150        # most flips land in data covered by a CRC or a checked header


def _rezip(members: dict, compression=zipfile.ZIP_STORED, comment=b"") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        z.comment = comment
        for name, payload in members.items():
            z.writestr(name, payload)
    return buf.getvalue()


def _members(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _npy(shape, dtype="<f4", fortran=False, payload=b"") -> bytes:
    header = repr({"descr": dtype, "fortran_order": fortran, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


@pytest.mark.parametrize("method,word", [(zipfile.ZIP_BZIP2, "compression method 12"),
                                         (zipfile.ZIP_LZMA, "compression method 14")])
def test_foreign_compression_is_refused(good, tmp_path, method, word):
    bad = tmp_path / "foreign.npz"
    bad.write_bytes(_rezip(_members(good[1]), method))
    with pytest.raises(UserError, match=word):
        checkpoint.load(bad)


def test_deflated_checkpoints_read_exactly(good, tmp_path):
    ok = tmp_path / "deflated.npz"
    ok.write_bytes(_rezip(_members(good[1]), zipfile.ZIP_DEFLATED))
    assert _outcome(ok, good[2]) == "exact"


def test_other_foreign_zip_features(good, tmp_path):
    members = _members(good[1])
    cases = {
        "a directory entry": dict(members, **{"dir/": b""}),
        "a member that is not .npy": dict(members, **{"notes.txt": b"hello"}),
        "an object array": dict(members, **{"x.npy": _npy((1,), "|O", payload=b"\x80\x04N.")}),
        "a structured dtype": dict(members, **{"x.npy": _npy((1,), [("a", "<f4")], payload=b"\0" * 4)}),
        "npy version 3": dict(members, **{"x.npy": b"\x93NUMPY\x03\x00" + b"\0" * 60}),
        "an empty member": dict(members, **{"x.npy": b""}),
    }
    for what, m in cases.items():
        bad = tmp_path / "feature.npz"
        bad.write_bytes(_rezip(m))
        assert _outcome(bad, good[2]) == "refused", what
    # the encryption flag on a member (zipfile cannot write encrypted archives: set the bit)
    data = bytearray(good[1])
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        for m in re.finditer(re.escape(sig), bytes(data)):
            off = m.start() + (6 if sig == b"PK\x03\x04" else 8)
            data[off] |= 1
    bad = tmp_path / "encrypted.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(UserError, match="encrypted"):
        checkpoint.load(bad)
    # a comment on the archive is harmless
    ok = tmp_path / "comment.npz"
    ok.write_bytes(_rezip(members, comment=b"hello"))
    assert _outcome(ok, good[2]) == "exact"


@pytest.mark.parametrize("shape", [(2**40, 2**40), (10**12,), (2**62,), (7, 5), (0,), (3, 2**61)])
def test_absurd_declared_shapes_are_refused_before_allocating(good, tmp_path, shape):
    members = _members(good[1])
    payload = members["encoder.weight.npy"]
    members["encoder.weight.npy"] = _npy(shape, payload=payload[-7 * 4 * 4:])
    bad = tmp_path / "shape.npz"
    bad.write_bytes(_rezip(members))
    with pytest.raises(UserError, match=r"declares shape"):
        checkpoint.load(bad)


def test_a_declared_uncompressed_size_larger_than_the_data_is_refused(good, tmp_path):
    data = bytearray(good[1])
    central = bytes(data).index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 2**31)          # uncompressed size of the first member
    bad = tmp_path / "bomb.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(UserError, match="declares 2147483648 bytes"):
        checkpoint.load(bad)


def test_through_the_cli_a_sample_is_exit_2_and_one_line(good, tmp_path, capsys):
    data = good[1]
    rng = np.random.default_rng(3)
    samples = [data[:len(data) // 2], data[:-10], _rezip(_members(data), zipfile.ZIP_BZIP2)]
    for _ in range(5):
        b = bytearray(data)
        b[int(rng.integers(100, len(b) - 200))] ^= 0xFF
        samples.append(bytes(b))
    refused = 0
    for i, blob in enumerate(samples):
        bad = tmp_path / f"cli{i}.npz"
        bad.write_bytes(blob)
        for argv in (["generate", str(bad), "--words", "3"], ["evaluate", str(bad)]):
            code = main(argv)
            err = capsys.readouterr().err
            if code == 2:
                refused += 1
                assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert refused >= 2 * 3


def test_no_pickle_anywhere_in_the_package():
    """Every numpy load passes allow_pickle=False; nothing imports pickle or passes allow_pickle=True."""
    for py in sorted((REPO / "rnnlm").glob("*.py")):
        text = py.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib)\b", text, re.M), py.name
        assert not re.search(r"(?<!`)allow_pickle\s*=\s*True", text), py.name   # `quoted` in prose is fine
        for call in re.finditer(r"np\.load\(([^()]|\([^()]*\))*\)", text):
            assert "allow_pickle=False" in call.group(0), f"{py.name}: {call.group(0)}"
