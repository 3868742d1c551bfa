"""Every `python cli.py ...` command in README.md runs, at tiny sizes, and exits 0: the README cannot drift.

Commands are taken from the README's fenced code blocks (one per line, `# comments` dropped) and from
its inline code spans (tables and prose; a span may wrap across lines). Each runs in-process
(`rnnlm.cli.main`) from one temporary folder (`world`) that holds what the examples name: the run
folders runs/NAME, runs/a, runs/b, runs/lstm-1h (copies of one tiny run trained once, tracked with
--track-jacobian-every, with its jacobian.json, an agreement and a context probe), a fresh model's
runs/jacobian-init/*.json (shell globs are expanded there, as a shell would) and some.txt. A RULE per command appends the flags that
make it tiny (argparse keeps the last value of a flag, so they override the README's sizes); a
command that cannot be made small (it needs the network, PyTorch, or minutes at a fixed size) is in
NOT_RUN with its reason. A README command with neither fails `test_every_readme_command_has_a_rule`.

Adding a command to the README: add one line to RULES (its leading words -> flags to append) or to
NOT_RUN (the exact command -> why it is not run).
"""
import glob
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from rnnlm.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"

# Tiny settings shared by the commands that read a corpus: the world's text, a small vocabulary.
DATA = ["--corpus", "{text}", "--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1"]
TRAIN = DATA + ["--hidden", "16", "--emsize", "16", "--bptt", "8", "--batch-size", "4", "--eval-batch-size", "4",
                "--max-steps", "4", "--max-minutes", "0", "--eval-every", "0", "--sample-words", "3",
                "--no-progress", "--out", "{fresh}"]
JACOBIAN = ["--max-lag", "5", "--anchors", "2", "--tokens", "40"]

# The leading words of a command (after `python cli.py`) -> flags appended to it; the longest match
# wins. "{text}" is the world's corpus, "{fresh}" a new folder under runs/ for each command.
RULES = {
    "corpus info": ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1"],
    "train": TRAIN,
    "evaluate": [],
    "generate": ["--words", "5"],
    "score": [],
    "baseline": DATA,
    "gradcheck": ["--cell", "rnn"],
    "jacobian": JACOBIAN,
    "jacobian --init": JACOBIAN + DATA + ["--hidden", "8", "--emsize", "8"],
    "plot": [],
    "probe agreement": ["--n", "4", "--distances", "1..3"],
    "probe context": ["--n-targets", "10", "--window", "12", "--distances", "1,2,5"],
    "demo gradients": ["--quick", "--out", "{fresh}"],
    "demo longrange": ["--quick", "--out", "{fresh}"],
    "bench": ["--cell", "rnn", "--config", "tiny", "--repeats", "1"],
    # in this process, one job after another (tests/test_sweep.py runs the Dask paths)
    "sweep run": [a for a in TRAIN if a not in ("--out", "{fresh}", "--sample-words", "3")] + ["--scheduler", "serial"],
    "sweep summarize": [],
    # --eval-every 7: 3 evaluations in 21 steps, the fewest that can count a run solved (study refuses fewer)
    "study learnability": ["--distances", "2,4", "--cells", "rnn,gru", "--seeds", "0", "--steps", "21",
                           "--n-train", "64", "--n-test", "32", "--eval-every", "7", "--nhid", "8", "--emsize", "8",
                           "--batch-size", "8", "--scheduler", "serial", "--no-progress", "--out", "runs/study-docs"],
}
# another budget (--loss all) needs its own study folder: a folder's recorded jobs keep their settings
RULES["study learnability --distances"] = RULES["study learnability"][:-1] + ["runs/study-docs-subset"]
RULES["study learnability --task"] = RULES["study learnability"][:-1] + ["runs/study-docs-task", "--distances", "3,4"]
RULES["study learnability --cells"] = RULES["study learnability"][:-1] + ["runs/study-docs-bptt"]
# (study learnability --out DIR --report-only) runs nothing, so it takes no --scheduler, and reports every run
# recorded in the folder with the settings its study.json records, so it takes no grid or budget flag either
# (it refuses them)
RULES["study learnability --out"] = ["--no-progress", "--out", "runs/study-docs"]
# the quick sentences are at most 8 words apart: a long-only corpus there starts at 3
RULES["demo longrange --min-distance"] = RULES["demo longrange"] + ["--min-distance", "3"]
# Words of a README command replaced before running it (the named corpus -> the world's text).
SUBSTITUTE = {"corpus info": {"machado": "{text}"}}

# Exact README commands (whitespace collapsed) that are not run, and why.
NOT_RUN = {
    "python cli.py corpus download machado": "needs the network (downloads and checksums the corpus)",
    "python cli.py bench --vs-torch": "needs PyTorch (not a dependency)",
    "python cli.py bench --jacobian --config tiny --cell lstm":
        "times the Jacobian at its fixed benchmark size (H = 256, D = 100, 32 anchors): minutes, no size flag",
    "python cli.py study learnability --quick":
        "minutes at its fixed grid and budget (--quick refuses the size flags); tests/test_study.py runs a tiny "
        "study end to end and checks --quick's refusal",
    "python cli.py bench --sweep":
        "24 trainings on Machado three ways (minutes); tests/test_sweep.py runs it on a small grid",
    "python cli.py sweep run --cell rnn,lstm,gru --recurrent-scale 0.5,1,2,4 --emsize 32 --hidden 32 "
    "--max-vocab 2000 --max-steps 200 --eval-every 100 --measure lag --out runs/sweep-example "
    "--scheduler tcp://HOST:8786":
        "needs a Dask scheduler started by hand (tests/test_sweep.py starts one with its workers)",
}


# ---------------------------------------------------------------- extraction


def readme_commands(text: str | None = None) -> list[str]:
    """Every `python cli.py ...` command of the README, in order, whitespace collapsed, no duplicates."""
    text = README.read_text(encoding="utf-8") if text is None else text
    found = []
    fences = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
    for block in fences.findall(text):
        block = re.sub(r"\\\n\s*", " ", block)                  # shell line continuations
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("python cli.py"):
                found.append(_strip_comment(line))
    prose = fences.sub("", text)
    for span in re.findall(r"`([^`]+)`", prose):
        span = " ".join(span.replace("\\|", "|").split())
        if span.startswith("python cli.py "):          # a command, not the words "python cli.py"
            found.append(span)
    return list(dict.fromkeys(" ".join(c.split()) for c in found))


def _strip_comment(line: str) -> str:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return " ".join(shlex.quote(t) for t in lexer)


def rule_for(command: str):
    """(key, appended flags) of the longest RULES key the command starts with, or None."""
    words = shlex.split(command)[2:]
    best = None
    for key in RULES:
        k = key.split()
        if words[:len(k)] == k and (best is None or len(k) > len(best.split())):
            best = key
    return None if best is None else (best, RULES[best])


COMMANDS = readme_commands()
RUNNABLE = [c for c in COMMANDS if c not in NOT_RUN]


def test_extraction_finds_blocks_tables_and_wrapped_spans():
    md = ("text `python cli.py train\n--max-steps 3` and | `python cli.py plot lag runs/a` |\n"
          "```sh\npython cli.py jacobian --init --hidden 8   # comment\nls\n```\n"
          "### `python cli.py demo gradients`\n")
    assert readme_commands(md) == ["python cli.py jacobian --init --hidden 8", "python cli.py train --max-steps 3",
                                   "python cli.py plot lag runs/a", "python cli.py demo gradients"]
    assert rule_for("python cli.py jacobian --init orthogonal")[0] == "jacobian --init"
    assert rule_for("python cli.py jacobian runs/NAME")[0] == "jacobian"


def test_every_readme_command_has_a_rule_or_a_reason():
    assert len(COMMANDS) >= 20, COMMANDS           # the extraction still finds the README's examples
    missing = [c for c in COMMANDS if c not in NOT_RUN and rule_for(c) is None]
    assert not missing, ("README commands with no rule in tests/test_docs.py RULES and no reason in "
                         f"NOT_RUN: {missing}")
    stale = [c for c in NOT_RUN if c not in COMMANDS]
    assert not stale, f"NOT_RUN names commands the README no longer has: {stale}"


# ---------------------------------------------------------------- the world the examples run in


@pytest.fixture(scope="module")
def world(tmp_path_factory, machado_dir):
    """A folder holding everything the README's examples name, built once: one tiny tracked run
    copied to each run name the README uses, its jacobian.json, a fresh model's curve, some.txt."""
    from rnnlm import sintetico as S

    root = tmp_path_factory.mktemp("docs")
    mp = pytest.MonkeyPatch()
    mp.setenv("RNNLM_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("MPLBACKEND", "Agg")
    mp.chdir(root)
    # sintetico sentences: the agreement probe finds pairs in this vocabulary; 3,000 sentences are
    # enough for 10% valid and test splits longer than the probes' windows
    sents = S.generate_sentences(3000, np.random.default_rng(0), 1, 8)
    text = root / "text.txt"
    text.write_text("".join(s.text + "\n\n" for s in sents), encoding="utf-8")
    shutil.copy(text, root / "some.txt")
    fill = {"text": str(text)}
    train = [a.format(**fill, fresh="runs/NAME") for a in TRAIN]
    assert main(["train", *train, "--track-jacobian-every", "2", "--eval-every", "2", "--log-every", "1"]) == 0
    # as a user runs them before `plot lag` and `plot probe`
    assert main(["jacobian", "runs/NAME", *JACOBIAN]) == 0
    assert main(["probe", "agreement", "runs/NAME", *RULES["probe agreement"]]) == 0
    assert main(["probe", "context", "runs/NAME", *RULES["probe context"]]) == 0    # for `plot probe --kind context`
    for name in ("a", "b", "lstm-1h"):
        shutil.copytree(root / "runs" / "NAME", root / "runs" / name)
    assert main(["jacobian", "--init", "--cell", "rnn", "--hidden", "8", "--corpus", "none", *JACOBIAN]) == 0
    # the committed study data, for `plot study docs/learnability` (its figures are redrawn here, not in the repo)
    shutil.copytree(README.parent / "docs" / "learnability", root / "docs" / "learnability",
                    ignore=shutil.ignore_patterns("*.png", "*.svg"))
    yield root, fill
    mp.undo()


def _argv(command: str, fill: dict, n: int) -> list[str]:
    key, extra = rule_for(command)
    words = shlex.split(command)[2:]
    words = [w for w in words if w != "..."]                           # "train --track-jacobian-every 500 ..."
    subst = SUBSTITUTE.get(key, {})
    words = [subst.get(w, w).format(**fill) for w in words]
    expanded = []
    for w in words:                                                    # shell globs, as a shell expands them
        hits = sorted(glob.glob(w)) if any(ch in w for ch in "*?[") else []
        expanded += hits or [w]
    if key.split()[0] in ("train", "demo") and "--out" in expanded:   # a fresh folder, never an existing run
        i = expanded.index("--out")
        del expanded[i:i + 2]
    fresh = f"runs/docs-{n}"
    return expanded + [a.format(**fill, fresh=fresh) for a in extra]


@pytest.mark.slow
@pytest.mark.parametrize("command", RUNNABLE)
def test_readme_command_runs(command, world, capsys):
    root, fill = world
    if rule_for(command) is None:
        pytest.fail(f"no rule for README command {command!r}: add one to RULES or a reason to NOT_RUN")
    argv = _argv(command, fill, RUNNABLE.index(command))
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 0, f"{command}\n  ran as: {' '.join(argv)}\n  exit {status}\n{err[-2000:]}"
