"""Found in review of the day's fixes: each test fails without its fix.

- a failed job's error holding a | or a line break broke summary.md's table (the cell ended early);
- `sweep summarize`'s heading said nothing of the learning rate of jobs run without --lr (the figure's
  title had just been fixed to say "lr=20 (sgd default)").
"""
import json


from rnnlm.sweepgrid import summarize



def _row(name, status="done", error=None, **result):
    train = {"format": 2, "data": {"corpus": "machado"}, "model": {"cell": "rnn", "hidden": 16},
             "optimizer": "sgd", "lr": None, "max_steps": 30}
    row = {"name": name, "fn": "rnnlm.sweepjobs:train_job", "settings": {"train": train, "axes": {"hidden": 16}},
           "status": status, "wall_s": 1.0, "worker": "w", "attempts": 1, "max_rss_mb": None, **result}
    if error is not None:
        row["error"] = error
    return row


def test_a_failed_jobs_error_with_a_bar_or_a_line_break_stays_in_its_cell(tmp_path):
    rows = [_row("a", best_val_ppl=120.0), _row("b", status="failed", error="ValueError: a | b\nsecond line")]
    (tmp_path / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    table = summarize(tmp_path)
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    width = lines[0].count(" | ")
    assert all(line.replace("\\|", "").count(" | ") == width for line in lines), table
    assert "failed: ValueError: a \\| b second line" in table


def test_the_heading_names_the_learning_rate_of_jobs_run_without_lr(tmp_path):
    rows = [_row("a", best_val_ppl=120.0), _row("b", best_val_ppl=130.0)]
    (tmp_path / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    head = summarize(tmp_path).splitlines()[0]
    assert "optimizer=sgd" in head and "lr=20 (sgd default)" in head, head


def test_a_single_text_with_no_sentence_end_to_cut_at_says_why_its_validation_split_is_empty(tmp_path, capsys):
    # every line runs on into a lower-case one: one sentence, no place to cut a validation split
    from rnnlm.cli import main
    text = tmp_path / "runon.txt"
    text.write_text("o homem viu a casa.\nela disse que sim.\n" * 400, encoding="utf-8")
    assert main(["train", "--corpus", str(text), "--no-cache", "--hidden", "8", "--emsize", "8",
                 "--max-steps", "2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err == ("error: the validation split is empty: --valid-fraction 0.05 asks for about 220 of the text's "
                   "4,401 tokens, and it is cut only after a sentence end (. ! ? before a capital) or at a blank "
                   "line, and the text holds no such place (its lines run on into lower-case ones); separate its "
                   "paragraphs by blank lines, or give a folder of several files\n")
    assert not (tmp_path / "r").exists()
