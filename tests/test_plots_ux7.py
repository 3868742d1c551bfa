"""A trial user's `plot sweep`, seventh round: a wrong --y answered with a 912-character list of every
column; now one readable line that names the flag and a few columns, the likeliest first."""
import dataclasses
import json

from rnnlm.cli import main
from rnnlm.config import TrainConfig


def _wide_sweep(folder):
    """sweep.jsonl rows as a real sweep writes them: every training setting, two of them varying."""
    base = {k: v for k, v in dataclasses.asdict(TrainConfig()).items() if not isinstance(v, dict)}
    rows = [{"name": f"cell={c},recurrent_scale={s}", "fn": "x:y", "status": "done",
             "settings": {**base, "cell": c, "recurrent_scale": s}, "best_val_ppl": 100.0 + s, "val_ppl": 110.0,
             "steps": 10, "wall_s": 1.0, "tokens_per_s": 5e3, "worker": "w", "attempts": 1}
            for c in ("rnn", "gru") for s in (0.5, 2.0)]
    folder.mkdir()
    (folder / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len({k for r in rows for k in r if k != "settings"} | set(rows[0]["settings"]))


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_a_wrong_column_is_one_short_line_naming_the_flag_and_the_likeliest_columns(tmp_path, capsys):
    folder = tmp_path / "s"
    n = _wide_sweep(folder)
    assert n > 30                                   # the old message listed them all
    err = _error(capsys, ["plot", "sweep", str(folder), "--x", "recurrent_scale", "--y", "best_val_pl"])
    assert err.startswith(f"error: --y best_val_pl: no column 'best_val_pl' in {folder}; columns: best_val_ppl, ")
    assert err.endswith(f" and {n - 8} more (the keys of a sweep.jsonl row, settings flattened)")
    assert len(err) < 250 + len(str(folder))
    # --x and --hue: the grid's varying settings come first
    err = _error(capsys, ["plot", "sweep", str(folder), "--x", "scale"])
    assert "--x scale: no column 'scale'" in err and "columns: recurrent_scale, cell, " in err
    err = _error(capsys, ["plot", "sweep", str(folder), "--x", "recurrent_scale", "--hue", "cel"])
    assert "--hue cel: no column 'cel'" in err and "columns: cell, recurrent_scale, " in err
    # a text column as y: the numeric columns, as short
    err = _error(capsys, ["plot", "sweep", str(folder), "--x", "recurrent_scale", "--y", "cell"])
    assert "--y cell: not a numeric column" in err and " more (the keys of a sweep.jsonl row" in err
    assert len(err) < 300 + len(str(folder))
    assert not list(folder.glob("*.png"))
