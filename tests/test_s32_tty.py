"""On a terminal the progress bar (stderr) and "run folder: X" (stdout) share one screen: the bar is made
after the run's first line is printed, else that line is written at the end of the bar's."""
from rnnlm import train as train_module
from rnnlm.cli import main
from rnnlm.progress import _Progress

from test_train_ux3 import FLAGS


def test_the_bar_is_drawn_after_the_runs_first_line(text, tmp_path, capsys, monkeypatch):
    printed_before_the_bar = []

    class Spy(_Progress):
        def __init__(self, *a, **k):
            printed_before_the_bar.append(capsys.readouterr().out)
            super().__init__(*a, **k)

    monkeypatch.setattr(train_module, "_Progress", Spy)
    run = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(run)]) == 0
    assert printed_before_the_bar == [f"run folder: {run}\n"]
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "3"]) == 0
    assert printed_before_the_bar[1] == f"resuming {run} from step 2 (epoch 1)\n"
