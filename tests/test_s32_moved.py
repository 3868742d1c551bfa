"""A run whose corpus was moved (config.json's "corpus" edited to its new place) still resumes: the path
is where the text is looked up, and the checksum, not the path, says whether it is the same text. A
config.json pointed at other text is refused by that checksum, and nothing in the run is changed."""
import json
import shutil

import pytest

from rnnlm.errors import UserError
from rnnlm.runs import resume_config
from rnnlm.train import train

from test_train import tiny


def _point_at(run, corpus):
    info = json.loads((run / "config.json").read_text())
    info["train"]["data"]["corpus"] = str(corpus)
    (run / "config.json").write_text(json.dumps(info))


def test_a_run_whose_corpus_moved_resumes_from_its_new_place(text, tmp_path):
    moved = tmp_path / "elsewhere" / text.name
    moved.parent.mkdir()
    shutil.copyfile(text, moved)
    run = tmp_path / "r"
    first = train(tiny(text, run, max_steps=2))
    _point_at(run, moved)
    s = train(resume_config(run, {"max_steps": 4}), resume=run)
    assert s["steps"] == 4 and first["steps"] == 2
    assert json.loads((run / "config.json").read_text())["train"]["data"]["corpus"] == str(moved)


def test_a_config_json_pointed_at_other_text_is_refused_by_its_checksum(text, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text(text.read_text(encoding="utf-8")[:-2000], encoding="utf-8")
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=2))
    _point_at(run, other)
    before = (run / "model.npz").read_bytes()
    with pytest.raises(UserError, match=r"the corpus or tokenizer changed since .* was trained \(checksum differs\)"):
        train(resume_config(run, {"max_steps": 4}), resume=run)
    assert (run / "model.npz").read_bytes() == before


def test_a_renamed_corpus_file_is_refused_saying_that_names_count(text, tmp_path):
    renamed = tmp_path / "elsewhere" / "renamed.txt"
    renamed.parent.mkdir()
    shutil.copyfile(text, renamed)
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=2))
    _point_at(run, renamed)
    with pytest.raises(UserError, match=r"\(the checksum covers the names of the corpus's files too: a renamed "
                                        r"file counts as other text\)"):
        train(resume_config(run, {"max_steps": 4}), resume=run)


def test_a_corpus_that_is_gone_is_said_with_where_its_name_comes_from(text, tmp_path):
    gone = tmp_path / "gone" / text.name
    gone.parent.mkdir()
    shutil.copyfile(text, gone)
    run = tmp_path / "r"
    train(tiny(gone, run, max_steps=2))
    gone.unlink()
    with pytest.raises(UserError) as e:
        resume_config(run, {"max_steps": 4})
    assert str(e.value) == (f"cannot resume {run}: its corpus {gone} (\"corpus\" in {run / 'config.json'}) is not "
                            f"there any more; if the text moved, give its new place with --corpus PATH (a resume "
                            f"checks by checksum that it is the same text)")
