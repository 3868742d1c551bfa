"""train at the end of a run: the end split from the loop (trainend.py), validations that can give no
verdict (every step skipped, a non-finite loss) and a summary that says so, a Ctrl-C in a resume's
start-up whose advice names the flags to give again, and the lock file a run leaves behind."""
import threading

import pytest

from rnnlm import session, trainend
from rnnlm import train as train_module


FLAGS = ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
         "--emsize", "16", "--hidden", "16", "--bptt", "8", "--batch-size", "16", "--dropout", "0",
         "--sample-words", "0", "--no-progress"]
MAIN_THREAD = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                 reason="signals need the main thread")


# ---------------------------------------------------------------- 1. the end of a run in its own module


def test_the_end_of_a_run_is_its_own_module():
    assert "The one thing to know before editing" in trainend.__doc__
    assert "The one thing to know before editing" in session.__doc__
    # the loop calls the end; the end's pieces are not copies of the loop's
    assert train_module.end_run is trainend.end_run and train_module.stop_training is trainend.stop_training
    assert train_module._save is session._save and train_module._final_tokens is trainend._final_tokens
    assert not hasattr(train_module, "_final_report") and not hasattr(train_module, "_summary")
