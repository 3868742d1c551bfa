"""A run folder has one writer, even around a start-up that gives the folder up: the lock file of a
folder another process took meanwhile is never removed from under it, and a lock taken on a file removed
meanwhile is taken again on the file the path names (else two processes would each hold "the" lock)."""
import subprocess
import sys
import textwrap

import pytest

from rnnlm import folderlock
from rnnlm.errors import UserError
from rnnlm.folderlock import lock_run
from rnnlm.runs import LOCK
from rnnlm.train import _give_up_folder


def _holder(folder):
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from rnnlm.folderlock import lock_run
        lock = lock_run({str(folder)!r})
        print("locked", flush=True)
        sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_a_start_up_given_up_before_its_lock_leaves_another_process_its_folder(tmp_path):
    folder = tmp_path / "r"          # both processes saw it missing: each would remove it on giving up
    p = _holder(folder)
    try:
        _give_up_folder(folder, None, folder)
        assert (folder / LOCK).exists()
        with pytest.raises(UserError, match=r"is being trained by another process \(pid \d+ holds"):
            lock_run(folder)
    finally:
        p.stdin.close()
        p.wait(timeout=30)
    _give_up_folder(folder, None, folder)       # nobody holds it now: the folder it created goes
    assert not folder.exists()


def test_a_start_up_given_up_removes_the_folders_it_created(tmp_path):
    folder = tmp_path / "a" / "r"
    _give_up_folder(folder, lock_run(folder), tmp_path / "a")
    assert not (tmp_path / "a").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    _give_up_folder(kept, lock_run(kept), None)          # it existed before: kept, and free
    assert kept.is_dir() and lock_run(kept).is_locked


def test_a_lock_on_a_file_removed_meanwhile_is_taken_again(tmp_path, monkeypatch):
    cls = folderlock._pid_lock_class()
    removed = []

    class Racing(cls):
        def acquire(self, *a, **k):
            got = super().acquire(*a, **k)
            if not removed:             # the holder before us removed the file we opened
                removed.append(self.lock_file)
                folderlock.Path(self.lock_file).unlink()
            return got

    monkeypatch.setattr(folderlock, "_pid_lock_class", lambda: Racing)
    folder = tmp_path / "r"
    lock = lock_run(folder)
    assert removed and lock.is_locked and (folder / LOCK).exists()
    p = subprocess.run([sys.executable, "-c", f"from rnnlm.folderlock import lock_run; lock_run({str(folder)!r})"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "is being trained by another process" in p.stderr


def test_a_resume_refused_by_the_lock_is_told_to_wait_not_to_use_another_out(text, tmp_path, capsys):
    from rnnlm.cli import main
    from rnnlm.runs import resume_config
    from rnnlm.train import train
    from test_train import tiny
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=2))
    p = _holder(run)
    try:
        with pytest.raises(UserError) as e:
            train(resume_config(run, {"max_steps": 4}), resume=run)
        assert str(e.value) == (f"{run} is being trained by another process (pid {p.pid} holds {run / LOCK}); "
                                f"wait for it to end, then resume")
        assert main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]) == 2
        assert capsys.readouterr().err.endswith("; wait for it to end, then resume\n")
    finally:
        p.stdin.close()
        p.wait(timeout=30)


def test_a_resume_of_a_run_still_in_its_start_up_is_told_to_wait(tmp_path):
    from rnnlm.runs import resume_config
    run = tmp_path / "r"            # locked, no config.json yet: a new run reading its corpus
    p = _holder(run)
    try:
        with pytest.raises(UserError) as e:
            resume_config(run, {"max_steps": 4})
        assert str(e.value) == (f"{run} is being trained by another process (pid {p.pid} holds {run / LOCK}) that "
                                f"has not written its config.json yet; wait for it to end, then resume")
    finally:
        p.stdin.close()
        p.wait(timeout=30)
    with pytest.raises(UserError, match="is not a run folder"):
        resume_config(run, {"max_steps": 4})        # nobody holds it: what it is, as before
