"""Long-range dependency probes: subject agreement and context usage.

Agreement (Linzen et al. 2016, in Portuguese): pairs of sentence prefixes from
the generator in sintetico.py, scored by whether the model gives the agreeing
form ("entraram" after "os homens que o professor viu") a higher probability
than the other one ("entrou"), binned by the distance from subject to verb,
with and without attractors. Accuracy comes with a Wilson 95% interval;
chance is 0.5. Ties (equal log-probabilities) count as half a success, so a
scorer that cannot tell the forms apart scores exactly 0.5. With many
distances, about 5% of the per-distance intervals miss 0.5 by luck alone, so
the verdict "above chance at distance d" is taken after Holm's correction for
the number of distances tested (`holm_adjust`, `chance_pattern`).

Context usage (Khandelwal et al. 2018, "Sharp Nearby, Fuzzy Far Away"): for
sampled target positions in held-out text, perturb the context farther than d
tokens back (shuffle it, replace it with random words, or drop it) and measure
how much the loss at the target rises. The effective context is the smallest
d from which the rise is within noise.

The tables the `probe` command prints of a result (`format_agreement`,
`chance_sentence`, `format_context`) are probereport.py's.

The one thing to know before editing: both probes are pure functions of a
scorer or of any object with the model API (`init_state(B)`,
`step_logprobs(tokens (B,), state)`, optionally `forward_states`), so the
tests drive them with oracles; only `run_agreement` and `run_context` load checkpoints.
Every sequence is run from a zero state, and rows are grouped by length so
that no padding ever enters a recurrent state.

Errors, as in jacobian.py, sample.py and argcheck.py: a Python caller's bad
argument is a TypeError (not the right kind of value) or a ValueError (the
right kind, out of range, or text that does not parse), one line naming the
function and the argument ("perturb: mode must be ..."); UserError is kept for
what the data or the files make impossible (too short a stream for the window,
a vocabulary that makes no pair, a diverged model, a run folder without
results) and for the command's layer (`run_agreement`, `run_context`, and the
`flags=True` checks they call), whose errors name the flags.
"""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np

from .argcheck import check_generator, check_int, check_probability, check_token_ids, is_int, is_real
from .errors import UserError, command, plural
from .fileio import atomic_write_json, check_writable, stop_says_what_is_kept

Z95 = 1.959963984540054   # two-sided 95% normal quantile
CHANCE = 0.5
FORMAT = "rnnlm-probe/1"
MODES = ("shuffle", "replace", "drop")


# ---------------------------------------------------------------- statistics


def _check_counts(successes, n, where: str) -> None:
    """TypeError unless n is an int and successes a number; ValueError for n < 0 or successes outside [0, n]."""
    check_int(n, "n", where, 0)
    if not is_real(successes):
        raise TypeError(f"{where}: successes must be a number, got {successes!r} ({type(successes).__name__})")
    if math.isnan(successes) or not 0 <= successes <= n:
        raise ValueError(f"{where}: successes must be in [0, n] = [0, {int(n)}], got {successes!r}")


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (successes may be fractional: ties).
    n = 0 gives (0, 1); ValueError for n < 0 or successes outside [0, n] (_check_counts)."""
    _check_counts(successes, n, "wilson_interval")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def chance_p_value(successes: float, n: int) -> float | None:
    """Two-sided p-value of accuracy = 0.5 from the score test (normal approximation): the test the Wilson
    interval inverts, so p < 0.05 exactly when the 95% Wilson interval excludes 0.5 (Wilson 1927, JASA 22:209).
    Ties count half, as in the accuracy; None for n = 0. ValueError for n < 0 or successes outside [0, n]."""
    _check_counts(successes, n, "chance_p_value")
    if n == 0:
        return None
    z = (successes - 0.5 * n) / (0.5 * math.sqrt(n))
    return math.erfc(abs(z) / math.sqrt(2.0))


def holm_adjust(p_values) -> list:
    """Holm's step-down adjusted p-values (Holm 1979, "A simple sequentially rejective multiple test
    procedure", Scand. J. Statist. 6:65-70): rejecting where the adjusted p-value is below alpha keeps the
    chance of any false rejection among the m tests at most alpha (family-wise), whatever their dependence.
    With the m p-values sorted, p_(i) is adjusted to max over j <= i of min(1, (m - j + 1) p_(j)). None
    entries (no data) are left out of m and come back None. Any other entry must be a number in [0, 1]
    (a nan is refused: sorted among the others it would change their adjustment): ValueError naming it."""
    for i, p in enumerate(p_values):
        check_probability(p, f"p_values[{i}]", "holm_adjust", none_ok=True)
    idx = sorted((i for i, p in enumerate(p_values) if p is not None), key=lambda i: p_values[i])
    m = len(idx)
    out: list = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def bootstrap_mean_interval(x: np.ndarray, rng, n_boot: int = 1000) -> tuple[float, float]:
    """Percentile 95% bootstrap interval of the mean of x (rng: a numpy Generator; n_boot >= 1 resamples)."""
    check_generator(rng, "bootstrap_mean_interval")
    check_int(n_boot, "n_boot", "bootstrap_mean_interval", 1)
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return (math.nan, math.nan)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


# The agreement probe's longest subject-to-target distance: its sentences put d - 1 words (nested
# prepositional phrases, relatives, adverbials) between the subject and the verb, and each distance is
# scored over a prefix that long, so 1..D costs about n D^2 / 2 tokens (1..100000 at --n 1: 5e9, hours,
# with no output). 1000 is already far beyond the corpora's sentences (sintetico's run to 40) and any BPTT.
MAX_AGREEMENT_DISTANCE = 1000
AGREEMENT_BEYOND = "the longest distance the agreement probe builds sentences for"

# Why a gender pair is never shorter than 2: its target, the predicative, sits one after the copula that
# follows the subject ("o menino estava cansado"), so make_agreement_pairs builds none at distance 1.
GENDER_SHORTEST = "a gender pair's target, the predicative, sits one after the copula, so its distance is at least 2"


def agreement_distances(feature: str, distances) -> tuple[list[int], list[int]]:
    """(probed, not probed) of the distances asked for: gender agreement has no pair at distance 1
    (GENDER_SHORTEST), number agreement has one at every distance. A distance dropped without a word
    left the table one row short under a header that promised it."""
    from .sintetico import GENDER
    least = 2 if feature == GENDER else 1
    return [d for d in distances if d >= least], [d for d in distances if d < least]


def parse_distances(text: str, *, flags: bool = False, most: int | None = None,
                    beyond: str = "the longest distance allowed") -> list[int]:
    """'1..40' (inclusive), '1..40:5' (step), '1,2,5,10' or a mix: sorted unique ints >= 1.

    Text that is none of these: a ValueError from Python ("parse_distances: text ..."), a UserError naming
    the flag with flags=True ("--distances ...": the probe commands, run_agreement/run_context).
    most: the largest distance taken (None: no limit); one above it is refused the same way, before a
    range is spelled out, saying it is beyond `beyond` (run_agreement: MAX_AGREEMENT_DISTANCE)."""
    where, name = ("", "--distances") if flags else ("parse_distances: ", "text")
    error = UserError if flags else ValueError
    try:
        return _parse_distances(text, flags, where, name, most, beyond)
    except _BadDistances as exc:
        raise error(str(exc)) from None


class _BadDistances(Exception):
    """parse_distances' refusal, raised as the caller's kind of error (ValueError or UserError)."""


def _parse_distances(text, flags: bool, where: str, name: str, most=None, beyond: str = "") -> list[int]:
    def check(largest: int) -> None:
        if most is not None and largest > most:
            raise _BadDistances(f"{'--distances' if flags else 'parse_distances'}: {largest} is beyond {beyond} "
                                f"({most}); give distances up to {most}")

    out = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            if ".." in part:
                rng, _, step = part.partition(":")
                a, b = rng.split("..")
                if int(a) > int(b):
                    shown = f"--distances {part}" if flags else f"parse_distances: {part!r}"
                    raise _BadDistances(f"{shown} runs backwards; give the smaller end first "
                                        f"({b.strip()}..{a.strip()})")
                if step and int(step) < 1:
                    shown = f"--distances {part}" if flags else f"parse_distances: {part!r}"
                    raise _BadDistances(f"{shown}: the step must be at least 1")
                by = int(step) if step else 1
                if int(b) >= 1:
                    check(int(a) + (int(b) - int(a)) // by * by)    # the range's last distance
                out.update(range(int(a), int(b) + 1, by))
            else:
                check(int(part))
                out.add(int(part))
    except ValueError:
        raise _BadDistances(f"{where}{name} must look like 1..40, 1..40:5 or 1,2,5,10; got '{text}'") from None
    if not out or min(out) < 1:
        raise _BadDistances(f"{where}{name} must give distances that are integers >= 1; got '{text}'")
    return sorted(out)


# ---------------------------------------------------------------- running a model


def _advance(model, inputs: np.ndarray, state):
    """State after feeding inputs (T, B); the output layer is skipped when the model allows."""
    forward = getattr(model, "forward_states", None)
    if forward is not None:
        return forward(inputs, state).state
    for t in range(inputs.shape[0]):
        _, state = model.step_logprobs(inputs[t], state)
    return state


def final_logprobs(model, rows, columns, batch_size: int = 256, bar: str | None = None) -> np.ndarray:
    """log p(column | row) at the end of each row, each row run from a zero state.

    rows: N int sequences (the whole context, last token included); columns:
    (N, K) word ids whose log-probabilities to return. Returns (N, K) float64.
    Rows are grouped by length and run in batches of up to `batch_size` (an int >= 1: TypeError or
    ValueError, as an empty row is a ValueError). bar: a progress bar of that name counting the rows, on
    a terminal (as evaluate_stream's).
    """
    from tqdm import tqdm

    from .runs import stderr_is_terminal
    where = "final_logprobs"
    V = getattr(getattr(model, "config", None), "vocab_size", None)
    V, source = (2**62, "no vocabulary size known") if V is None else (int(V), "the model's vocabulary")
    shape = np.shape(columns)
    columns = check_token_ids(np.reshape(columns, -1), V, where, "columns", source).reshape(shape)
    if columns.ndim == 1:
        columns = columns[:, None]
    if columns.ndim != 2 or columns.shape[0] != len(rows):
        raise ValueError(f"{where}: columns must be (N, K) ids, a row of them per row of rows (N = {len(rows)}), "
                         f"got shape {shape}")
    check_int(batch_size, "batch_size", where, 1)
    out = np.empty(columns.shape, dtype=np.float64)
    by_length: dict = {}
    rows = list(rows)
    for i, r in enumerate(rows):
        if len(r) == 0:
            raise ValueError(f"final_logprobs: rows[{i}] is empty; every row needs at least one token")
        rows[i] = check_token_ids(r, V, where, f"rows[{i}]", source)
        by_length.setdefault(len(r), []).append(i)
    show = bar is not None and stderr_is_terminal()
    with tqdm(total=len(rows), desc=bar, unit="row", disable=not show, leave=False, file=sys.stderr) as progress:
        for length, idx in sorted(by_length.items()):
            for start in range(0, len(idx), batch_size):
                chunk = idx[start:start + batch_size]
                tokens = np.ascontiguousarray(np.stack([np.asarray(rows[i]) for i in chunk], axis=1),
                                              dtype=np.int32)
                state = model.init_state(len(chunk))
                if length > 1:
                    state = _advance(model, tokens[:-1], state)
                logp, _ = model.step_logprobs(tokens[-1], state)
                logp = np.asarray(logp)
                out[chunk] = logp[np.arange(len(chunk))[:, None], columns[chunk]]
                progress.update(len(chunk))
    return out


def model_scorer(model, batch_size: int = 256, bar: str | None = None):
    """The agreement scorer of a model: logp(correct) - logp(wrong) after each prefix. batch_size (an int
    >= 1) is checked here, not at the first call; bar: final_logprobs' progress bar (a terminal's)."""
    check_int(batch_size, "batch_size", "model_scorer", 1)
    def score(prefixes, candidates):
        lp = final_logprobs(model, prefixes, np.asarray(candidates, dtype=np.int64).reshape(-1, 2), batch_size,
                            bar=bar)
        return lp[:, 0] - lp[:, 1]
    return score


# ---------------------------------------------------------------- agreement


def _accuracy_record(diffs: np.ndarray) -> dict:
    """n, successes (ties count 0.5), accuracy and its Wilson interval."""
    n = int(len(diffs))
    k = float(np.sum(diffs > 0) + 0.5 * np.sum(diffs == 0))
    lo, hi = wilson_interval(k, n)
    return {"n": n, "correct": k, "accuracy": (k / n) if n else None, "ci": [lo, hi],
            "ties": int(np.sum(diffs == 0)), "p_value": chance_p_value(k, n)}


def evaluate_agreement(score, prefixes, candidates, distances, attractors) -> dict:
    """The probe's core: score pairs and count accuracy by distance and attractor presence.

    score(prefixes: list[list[int]], candidates: list[tuple[int, int]]) ->
    array of logp(correct) - logp(wrong), one per prefix. A pair is correct
    when the difference is > 0, half correct when it is exactly 0.
    Returns {'overall', 'attractor', 'no_attractor', 'by_distance': [...],
    'diffs', and chance_pattern's fields}; chance_at is the smallest distance whose 95%
    interval contains 0.5 (None if none does). Every record has `p_value` (two-sided, of accuracy = 0.5,
    `chance_p_value`); each distance's also `p_holm`, Holm-adjusted over the distances (`holm_adjust`).
    """
    diffs = np.asarray(score(prefixes, candidates), dtype=np.float64).reshape(-1)
    if len(diffs) != len(prefixes):
        raise ValueError(f"the scorer returned {len(diffs)} values for {len(prefixes)} pairs")
    if not np.all(np.isfinite(diffs)):
        raise UserError("the model gave non-finite log-probabilities; is the checkpoint diverged?")
    distances = np.asarray(distances)
    attractors = np.asarray(attractors, dtype=bool)
    bins = []
    for d in sorted(set(distances.tolist())):
        sel = distances == d
        rec = {"distance": int(d), **_accuracy_record(diffs[sel])}
        rec["attractor"] = _accuracy_record(diffs[sel & attractors]) if np.any(sel & attractors) else None
        rec["no_attractor"] = _accuracy_record(diffs[sel & ~attractors]) if np.any(sel & ~attractors) else None
        bins.append(rec)
    holm = holm_adjust([b["p_value"] for b in bins])
    for b, ph in zip(bins, holm):
        b["p_holm"] = ph
    return {
        "overall": _accuracy_record(diffs),
        "attractor": _accuracy_record(diffs[attractors]),
        "no_attractor": _accuracy_record(diffs[~attractors]),
        "by_distance": bins,
        **chance_pattern(bins),
        "diffs": diffs,
    }


FAMILY_ALPHA = 0.05     # family-wise error of the corrected verdict over the distances tested
CORRECTION = ("Holm (1979) step-down over the distances tested, family-wise error 5%, on each distance's "
              "two-sided score test of accuracy = 0.5 (the test the Wilson interval inverts)")


def _bin_p_values(bins) -> list | None:
    """Each bin's chance p-value from its counts (n, correct); None when a bin lacks them."""
    if not all("n" in b and "correct" in b for b in bins):
        return None
    return [chance_p_value(b["correct"], b["n"]) for b in bins]


def chance_pattern(bins) -> dict:
    """Where accuracy by distance is at chance, from the bins' 95% intervals (sorted by distance), and the
    verdict corrected for testing many distances.

    chance_at: the smallest distance whose interval contains 0.5 (None if none does); it alone cannot tell
    a model that is at chance at one short distance and above it everywhere else from one that falls to
    chance and stays there, so: chance_distances, every distance whose interval contains 0.5;
    below_chance_distances, those whose interval lies below 0.5; chance_from, the smallest distance from
    which no interval is above chance any more, up to the largest probed (None when the largest is above
    chance); above_chance_from, the smallest distance from which every interval is above chance (None
    when the largest is not).

    These are per distance, uncorrected: of m distances at chance, about 5% of the 95% intervals miss 0.5
    by luck alone (expected_outside_by_luck = 0.05 m, against outside_chance_count, the number that do).
    The corrected verdict: holm_above_chance_distances / holm_below_chance_distances, the distances whose
    score-test p-value (`chance_p_value`) stays under 0.05 after Holm's step-down correction over the m
    distances (Holm 1979, Scand. J. Statist. 6:65-70; `holm_adjust`), so that the chance of calling any
    distance wrongly above or below chance is at most 5% for the whole table; None when the bins lack
    counts (n, correct)."""
    above = [(b["distance"], b["ci"][0] > CHANCE) for b in bins]
    chance = [b["distance"] for b in bins if b["ci"][0] <= CHANCE <= b["ci"][1]]
    last = above[-1][1] if above else None
    tail = None                 # the first distance of the last run of bins that are all above, or all not
    for d, is_above in reversed(above):
        if is_above != last:
            break
        tail = d
    ps = _bin_p_values(bins)
    holm_up = holm_down = None
    if ps is not None:
        adjusted = holm_adjust(ps)
        sig = [(b, ph) for b, ph in zip(bins, adjusted) if ph is not None and ph < FAMILY_ALPHA]
        holm_up = [b["distance"] for b, _ in sig if b["correct"] > 0.5 * b["n"]]
        holm_down = [b["distance"] for b, _ in sig if b["correct"] < 0.5 * b["n"]]
    return {"chance_at": chance[0] if chance else None, "chance_distances": chance,
            "below_chance_distances": [b["distance"] for b in bins if b["ci"][1] < CHANCE],
            "chance_from": tail if last is False else None, "above_chance_from": tail if last is True else None,
            "outside_chance_count": len(bins) - len(chance),
            "expected_outside_by_luck": round(FAMILY_ALPHA * len(bins), 6),
            "correction": CORRECTION,
            "holm_above_chance_distances": holm_up, "holm_below_chance_distances": holm_down}


def agreement_probe(score, stoi: dict, distances, n_per_distance: int, seed: int = 0,
                    feature: str = "number", bos: str | None = "<eos>") -> dict:
    """Generate pairs from the vocabulary `stoi` (word -> id), score them, summarize (JSON-ready).

    bos: a token put before every prefix (the models see "<eos>" before each
    sentence); skipped when not in the vocabulary. Pairs are generated from
    the words in `stoi` only; 'coverage' is the fraction of pairs from the
    full word lists that the vocabulary covers (1.0 for a sintetico model).
    stoi may be a Vocab (its .stoi is read). Bad arguments are refused before any work: TypeError (stoi
    not a dict, n_per_distance or a distance not an int) or ValueError (n_per_distance < 1, a distance < 1,
    no distance, an unknown feature, gender with no distance >= 2); a vocabulary from which no pair can be
    made is a UserError (the data, not the call).
    """
    from .sintetico import GENDER, NUMBER, make_agreement_pairs

    if hasattr(stoi, "stoi") and isinstance(stoi.stoi, dict):      # a Vocab: its word -> id map
        stoi = stoi.stoi
    if not isinstance(stoi, dict):
        raise TypeError(f"agreement_probe: stoi must be a dict of word -> id (a Vocab's .stoi), got "
                        f"{type(stoi).__name__}")
    check_int(n_per_distance, "n_per_distance", "agreement_probe", 1)
    if isinstance(distances, str):
        raise TypeError(f"agreement_probe: distances must be a list of integers, got the string {distances!r} "
                        f"(parse_distances({distances!r}) reads the command's form)")
    distances = list(distances)
    if not all(is_int(d) for d in distances):
        raise TypeError(f"agreement_probe: distances must be integers >= 1, got {distances!r}")
    if not distances or min(distances) < 1:
        raise ValueError(f"agreement_probe: distances must be integers >= 1, got {distances!r}")
    if max(distances) > MAX_AGREEMENT_DISTANCE:
        raise ValueError(f"agreement_probe: distance {max(distances)} is beyond {AGREEMENT_BEYOND} "
                         f"({MAX_AGREEMENT_DISTANCE}); give distances up to {MAX_AGREEMENT_DISTANCE}")
    if feature not in (NUMBER, GENDER):
        raise ValueError(f"agreement_probe: feature must be '{NUMBER}' or '{GENDER}', got {feature!r}")
    probed, not_probed = agreement_distances(feature, distances)
    if not probed:                      # every distance too short: gender's target sits after the copula
        raise ValueError(f"agreement_probe: no {feature} agreement pair has a distance below 2 (its target "
                         f"sits one after the copula); give distances >= 2, got {distances!r}")
    pairs, info = make_agreement_pairs(probed, n_per_distance, np.random.default_rng(seed),
                                       feature=feature, known=stoi)
    if not pairs:
        raise UserError(f"no {feature} agreement pair could be made from this vocabulary: none of the "
                        f"{info['generated']:,} sentences drawn had all their words in it (the word lists' "
                        f"coverage is {info['coverage']:.1%})")
    head = [stoi[bos]] if bos is not None and bos in stoi else []
    prefixes = [head + [stoi[w] for w in p.prefix] for p in pairs]
    candidates = [(stoi[p.correct], stoi[p.wrong]) for p in pairs]
    res = evaluate_agreement(score, prefixes, candidates, [p.distance for p in pairs],
                             [p.attractor for p in pairs])
    diffs = res.pop("diffs")
    step = max(1, len(pairs) // 6)
    examples = [{"sentence": p.sentence, "correct": p.correct, "wrong": p.wrong, "distance": p.distance,
                 "attractor": p.attractor, "logp_diff": float(diffs[i])}
                for i, p in list(enumerate(pairs))[::step][:6]]
    return {
        "format": FORMAT, "probe": "agreement", "feature": feature, "seed": seed,
        "n_per_distance": n_per_distance, "distances": [int(d) for d in distances],
        **({"not_probed": [int(d) for d in not_probed], "not_probed_why": GENDER_SHORTEST} if not_probed else {}),
        "chance": CHANCE, "ties": "a tie (equal log-probabilities) counts as half a success",
        "interval": "Wilson score, 95%",
        "coverage": info["coverage"], "pairs": len(pairs), "generated": info["generated"],
        **res, "examples": examples,
    }


# ---------------------------------------------------------------- context usage


def perturb(context: np.ndarray, d: int, mode: str, rng, vocab_size: int) -> np.ndarray:
    """The context with every token farther than d back from the target perturbed.

    context: the tokens before the target, oldest first (the last one is 1
    back). shuffle: permute the far part; replace: random ids in [0, V); drop:
    keep only the last d tokens. d: an int >= 0; rng: a numpy Generator; vocab_size: an int >= 1
    (checked first, each error naming the argument: TypeError, or ValueError as for an unknown mode).
    """
    if mode not in MODES:
        raise ValueError(f"perturb: mode must be one of {', '.join(MODES)}, got {mode!r}")
    check_int(d, "d", "perturb", 0)
    check_generator(rng, "perturb")
    check_int(vocab_size, "vocab_size", "perturb", 1)
    far = len(context) - d
    if far <= 0:
        return context.copy()
    if mode == "drop":
        return context[far:].copy()
    out = context.copy()
    if mode == "shuffle":
        out[:far] = context[:far][rng.permutation(far)]
    elif mode == "replace":
        out[:far] = rng.integers(0, vocab_size, size=far)
    else:
        raise ValueError(f"perturb: mode must be one of {', '.join(MODES)}, got {mode!r}")
    return out


def check_context_args(n_tokens: int, distances, mode: str, window: int, n_targets: int, batch_size: int = 128,
                       *, flags: bool = False) -> list[int]:
    """context_usage's settings checked before any work (stream of n_tokens tokens), each error one line naming
    the one at fault as the caller gave it: from Python ("context_usage: window=20 ..."), a TypeError (a
    setting, or a distance, not an integer) or ValueError (an unknown mode, a setting below its least value,
    no distance, a distance < 1 or not below window); with flags=True (run_context, the probe command, checks
    first so) a UserError naming the flag ("--window 20 ..."). A stream no longer than the window is a
    UserError either way (the text is too short, as lag_curve's too few tokens for max_lag). Returns the
    distances sorted, as ints."""
    def named(name):
        return "--" + name.replace("_", "-") if flags else name

    def say(name, value):
        return f"{named(name)} {value}" if flags else f"{name}={value!r}"
    where = "" if flags else "context_usage: "
    kind_error, range_error = (UserError, UserError) if flags else (TypeError, ValueError)
    if mode not in MODES:
        raise range_error(f"{where}{named('mode')} must be one of {', '.join(MODES)}, got {mode!r}")
    for name, value, lo in (("window", window, 2), ("n_targets", n_targets, 1), ("batch_size", batch_size, 1)):
        if not is_int(value) or value < lo:
            error = range_error if is_int(value) else kind_error
            raise error(f"{where}{named(name)} must be an integer >= {lo}, got {value!r}")
    if isinstance(distances, str):      # ("1..5" walked letter by letter otherwise)
        raise kind_error(f"{where}{named('distances')} must be a list of integers, got the string {distances!r} "
                         f"(parse_distances({distances!r}) reads the command's form)")
    try:
        distances = list(distances)
    except TypeError:
        raise kind_error(f"{where}{named('distances')} must be integers, got {distances!r}") from None
    if not all(is_int(d) for d in distances):     # (1.5 is not silently distance 1)
        raise kind_error(f"{where}{named('distances')} must be integers, got {distances!r}")
    distances = sorted(int(d) for d in distances)
    if not distances:
        raise range_error(f"{where}{named('distances')} is empty; give at least one distance")
    if distances[0] < 1 or distances[-1] >= window:
        bad = [d for d in distances if d < 1 or d >= window]
        raise range_error(f"{'--distances: ' if flags else where}every distance must be >= 1 and below "
                        f"{say('window', int(window))}; got "
                        f"{', '.join(map(str, bad))}" + (" (give a larger --window, or smaller --distances)"
                                                         if flags else ""))
    text = "the text" if flags else "stream"
    fix = "use a smaller --window" if flags else "pass a longer stream or a smaller window"
    if n_tokens <= window:
        raise UserError(f"{where}{text} has {n_tokens} {plural(n_tokens, 'token')}; the context probe needs more "
                        f"than {say('window', int(window))}: {fix}")
    if n_tokens == window + 1:
        raise UserError(f"{where}{text} has {n_tokens} tokens: one target past {say('window', int(window))}, and "
                        f"an interval needs at least two: {fix}")
    return distances


class FewerTargetsWarning(UserWarning):
    """context_usage was asked for more targets than the stream holds positions past the window and measured
    at all of those: the result is still a measurement, at fewer targets (its 'n_targets') than asked
    ('n_targets_asked'), so its intervals are wider. The probe command says so in its table
    (probereport.format_context) and silences this one."""


def check_context_inputs(model, stream, seed, vocab_size, n_boot) -> tuple:
    """context_usage's stream and numbers checked before any work, each error one line naming the argument:
    TypeError (ids, seed, vocab_size or n_boot not integers; float ids are refused, not truncated) or
    ValueError (a stream that is not 1-D or holds an id outside [0, vocab_size), a negative seed, vocab_size
    or n_boot below 1, a vocab_size above the model's). vocab_size None reads the model's
    (model.config.vocab_size). Returns (stream as int64, vocab_size, seed) as ints."""
    where = "context_usage"
    if vocab_size is None:
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
        if vocab_size is None:
            raise TypeError(f"{where}: vocab_size is None and the model has no config.vocab_size; "
                            "pass vocab_size")
        vocab_size = check_int(vocab_size, "model.config.vocab_size", where, 1)
        source = "the model's vocabulary"
    else:
        vocab_size = check_int(vocab_size, "vocab_size", where, 1)
        source = f"vocab_size={vocab_size}"
        own = getattr(getattr(model, "config", None), "vocab_size", None)
        if isinstance(own, (int, np.integer)) and vocab_size > own:
            raise ValueError(f"{where}: vocab_size={vocab_size} is more than the model's vocabulary ({own}): the "
                             "ids drawn or read would have no embedding; pass at most that, or leave it out")
    stream = check_token_ids(stream, vocab_size, where, "stream", source)
    seed = check_int(seed, "seed", where, 0)
    check_int(n_boot, "n_boot", where, 1)
    return stream, vocab_size, seed


def context_usage(model, stream, distances, mode: str = "shuffle", n_targets: int = 500, seed: int = 0,
                  window: int = 300, vocab_size: int | None = None, batch_size: int = 128,
                  n_boot: int = 1000, tolerance: float = 1e-4) -> dict:
    """Loss increase at target tokens when the context beyond d is perturbed, per d.

    stream: 1-D token ids (a held-out split). For each of `n_targets` sampled
    positions t >= window, the unperturbed row is stream[t-window:t] and the
    perturbed ones replace its part farther than d back; all are run from a
    zero state and scored on stream[t]. Returns a JSON-ready dict whose
    'results' hold, per d, the mean increase (nats) with a bootstrap 95%
    interval. A d is "within noise" when its interval reaches down to
    `tolerance` nats: a trained model's state still carries ~1e-6 nats of a
    context 100 tokens back, real but of no consequence, and tight enough an
    interval would otherwise call it significant. 'effective_context' is the
    smallest d from which every larger d is within noise (None if even the
    largest is not). Every argument is checked before any work, each error naming it: the stream, the seed,
    vocab_size and n_boot (check_context_inputs) and the settings (check_context_args), TypeError or
    ValueError; a stream no longer than `window` is a UserError (the data is too short for the call).
    """
    stream, vocab_size, seed = check_context_inputs(model, stream, seed, vocab_size, n_boot)
    distances = check_context_args(len(stream), distances, mode, window, n_targets, batch_size)
    if not is_real(tolerance):
        raise TypeError(f"context_usage: tolerance must be a number of nats >= 0, got {tolerance!r} "
                        f"({type(tolerance).__name__})")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"context_usage: tolerance must be a finite number of nats >= 0, got {tolerance!r}")
    rng = np.random.default_rng(seed)
    available = len(stream) - window
    n = min(n_targets, available)
    if n < n_targets:
        warnings.warn(FewerTargetsWarning(
            f"context_usage: the stream holds {available:,} positions past the window ({len(stream):,} tokens, "
            f"window={window}); measured at all {n:,}, not the {n_targets:,} asked (result['n_targets_asked'])"),
            stacklevel=2)
    targets = np.sort(rng.choice(available, size=n, replace=False) + window)
    rows, cols = [], []
    for t in targets:
        ctx = stream[t - window:t]
        rows.append(ctx)
        rows += [perturb(ctx, d, mode, rng, vocab_size) for d in distances]
        cols += [stream[t]] * (1 + len(distances))
    logp = final_logprobs(model, rows, np.asarray(cols)[:, None], batch_size)[:, 0]
    loss = -logp.reshape(n, 1 + len(distances))
    if not np.all(np.isfinite(loss)):
        raise UserError("the model gave non-finite log-probabilities; is the checkpoint diverged?")
    increase = loss[:, 1:] - loss[:, :1]
    boot = np.random.default_rng([seed, 1])
    results = []
    for j, d in enumerate(distances):
        x = increase[:, j]
        lo, hi = bootstrap_mean_interval(x, boot, n_boot)
        results.append({"distance": d, "n": int(n), "mean_increase": float(x.mean()),
                        "sem": float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
                        "ci": [lo, hi], "within_noise": bool(lo <= tolerance)})
    effective = None
    for j in range(len(results) - 1, -1, -1):
        if not results[j]["within_noise"]:
            break
        effective = results[j]["distance"]
    return {
        "format": FORMAT, "probe": "context", "mode": mode, "window": window, "seed": seed,
        "n_targets": int(n), "n_targets_asked": int(n_targets), "distances": distances, "baseline_loss": float(loss[:, 0].mean()),
        "interval": f"bootstrap percentile 95% of the mean ({n_boot} resamples)", "tolerance": tolerance,
        "results": results, "effective_context": effective,
    }


# ---------------------------------------------------------------- CLI


def _default_out(run: Path, name: str) -> Path:
    if run.is_dir():
        return run / f"{name}.json"
    return run.with_name(f"{run.stem}-{name}.json")


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, obj)


# What the flags of each probe set, as its result records them (the feature and the mode name the file)
_MEASURED_BY = {
    "agreement": (("checkpoint", "--checkpoint"), ("distances", "--distances"), ("n_per_distance", "--n"),
                  ("seed", "--seed")),
    "context": (("checkpoint", "--checkpoint"), ("split", "--split"), ("distances", "--distances"),
                ("n_targets_asked", "--n-targets"), ("window", "--window"), ("seed", "--seed")),
}


def _write_result(out: Path, res: dict, default_out: bool) -> None:
    """Write a probe's result; first the note (stderr) that it replaces a measurement of other settings, of
    another kind or of another checkpoint there (measured.replaced_note, as the jacobian command says it)."""
    from .measured import replaced_note
    note = replaced_note(out, res, _MEASURED_BY[res["probe"]], given=not default_out)
    if note:
        print(note, file=sys.stderr, flush=True)
    _write_json(out, res)


def _load(run, checkpoint: str, batch_size: int, n: int):
    from .runs import load_model

    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if n < 1:
        raise UserError("--n and --n-targets must be at least 1")
    run = Path(run)
    model, vocab, info, path = load_model(run, checkpoint)
    from .plots import clip_label
    mcfg = info.get("model", {})
    # The probed model's settings travel with the result, so that its figure can state them.
    # checkpoint_step: the step the checkpoint was saved at, read with its weights (plot probe says when the
    # run has moved on since)
    meta = {"run": str(run), "checkpoint": str(path), "checkpoint_step": model.checkpoint_step,
            "cell": mcfg.get("cell"),
            "corpus": info.get("train", {}).get("data", {}).get("corpus"),
            "model": {k: mcfg.get(k) for k in ("cell", "activation", "init", "recurrent_scale", "hidden",
                                               "emsize", "layers")},
            "clip": clip_label(info.get("train")), "omega": info.get("train", {}).get("omega"),
            "train_seed": info.get("train", {}).get("seed")}
    return run, model, vocab, info, meta


def check_agreement_vocab(feature: str, stoi, max_vocab: int | None = None) -> None:
    """UserError, in the command's flags, when the run's vocabulary cannot fill the agreement templates of
    `feature`: one line saying which roles fall short (how many entries are in the vocabulary against how many
    are needed, and a few missing words; `sinteticolex.template_shortfall`) and what to do about it.
    max_vocab: the run's --max-vocab; a larger one is advised only where it cut the vocabulary (a limit
    the corpus fills), else a corpus that holds the words."""
    from .sinteticolex import template_shortfall

    short = template_shortfall(feature, stoi)
    if short is None:
        return
    cut = max_vocab is None or (max_vocab > 0 and len(stoi) >= max_vocab)
    fixes = ["train with a larger --max-vocab (0 = no limit)" if cut else
             "train on a corpus that holds these words (machado, or sintetico, whose grammar they are): "
             "this one has no more"]
    if feature != "number" and template_shortfall("number", stoi) is None:
        fixes.append("use --feature number")
    raise UserError(f"--feature {feature}: the vocabulary ({len(stoi)} words) has too few of the words the "
                    f"{feature} agreement templates need: {short}; {', or '.join(fixes)}")


def _open(said, run, checkpoint: str, batch_size: int, n: int, out, name: str) -> tuple:
    """The probe commands' opening: the run's model (_load), the JSON to write (`out`, else <name>.json
    beside the run), watched for a Ctrl-C's line (`said`) and checked writable before the measurement.
    Returns (run, model, vocab, info, meta, out, given) with `given` the caller's --out or None."""
    if out:
        from .measured import check_measurement_out
        check_measurement_out(out)  # never a checkpoint, a run's record or another file in its place
        check_writable(out)     # a given --out: refused before the model loads (its kernels compile)
    run, model, vocab, info, meta = _load(run, checkpoint, batch_size, n)
    given = out or None
    if not out:     # the run folder's probe-*.json: not a file of the user's own of that name
        from .measured import check_replaces_a_measurement
        out = _default_out(run, name)
        check_replaces_a_measurement(out, str(out), "move it, or give the measurement --out FILE.json")
    out = Path(out)
    said.watch(out)
    check_writable(out)     # a read-only run folder: said before the measurement
    return run, model, vocab, info, meta, out, given


def run_agreement(run, *, distances: str, n: int, feature: str, seed: int, checkpoint: str,
                  batch_size: int, out=None) -> tuple[dict, Path]:
    """`probe agreement RUN`: the result (probereport.format_agreement prints it), written as JSON to `out`
    (None = probe-agreement-<feature>.json beside the run); returns (result, path written).
    The command's layer: its errors name the flags (--distances), as the other functions name their
    Python arguments. A Ctrl-C or SIGTERM raises on with the CLI's one line in `exc.line`
    (fileio.stop_says_what_is_kept: the JSON is written atomically, whole or not at all)."""
    # the distances first, before the model loads and its kernels compile (~20 s on a first run)
    ds = parse_distances(distances, flags=True, most=MAX_AGREEMENT_DISTANCE, beyond=AGREEMENT_BEYOND)
    probed, _ = agreement_distances(feature, ds)
    if not probed:
        raise UserError(f"--distances {distances}: no {feature} agreement pair is that short ({GENDER_SHORTEST}); "
                        f"give distances >= 2")
    with stop_says_what_is_kept("the agreement probe") as said:     # Ctrl-C: one line says what is kept
        run, model, vocab, info, meta, out, given = _open(said, run, checkpoint, batch_size, n, out,
                                                          f"probe-agreement-{feature}")
        check_agreement_vocab(feature, vocab.stoi,      # (then what the vocabulary lacks: also before it)
                              ((info.get("train") or {}).get("data") or {}).get("max_vocab"))
        # (the distances probed: the report says which were not, and why)
        print(f"probing {feature} agreement: up to {n:,} sentence pairs at each of {len(probed):,} "
              f"{plural(len(probed), 'distance')} ({probed[0]}{f'..{probed[-1]}' if len(probed) > 1 else ''})...",
              file=sys.stderr, flush=True)
        res = agreement_probe(model_scorer(model, batch_size, bar="scoring sentence pairs"), vocab.stoi, ds, n,
                              seed, feature)
        res = {**meta, **res}
        _write_result(out, res, default_out=given is None)
        return res, out


def run_context(run, *, split: str, distances: str, mode: str, n_targets: int, window: int, seed: int,
                checkpoint: str, batch_size: int, out=None) -> tuple[dict, Path]:
    """`probe context RUN`: the result (probereport.format_context prints it), written as JSON to `out`
    (None = probe-context-<mode>.json beside the run); returns (result, path written).
    The command's layer: its errors name the flags (--window), as context_usage's name its arguments.
    A Ctrl-C or SIGTERM raises on with the CLI's one line in `exc.line`, as run_agreement's."""
    # the settings against each other first (a distance not below --window), before the model loads and
    # its kernels compile (~20 s on a first run); the text's length is checked once it is read, below
    check_context_args(sys.maxsize, parse_distances(distances, flags=True), mode, window, n_targets, batch_size,
                       flags=True)
    with stop_says_what_is_kept("the context probe") as said:     # Ctrl-C: one line says what is kept
        run, model, vocab, info, meta, out, given = _open(said, run, checkpoint, batch_size, n_targets, out,
                                                          f"probe-context-{mode}")
        stream = _split_stream(info, vocab, split)
        ds = check_context_args(len(stream), parse_distances(distances, flags=True), mode, window, n_targets,
                                batch_size, flags=True)     # in the command's flags, before context_usage's check
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FewerTargetsWarning)    # probereport.format_context's header says it
            res = context_usage(model, stream, ds, mode, n_targets, seed, window, len(vocab), batch_size)
        res = {**meta, "split": split, **res}
        _write_result(out, res, default_out=given is None)
        return res, out


def find_probe_results(inputs, kind: str = "agreement") -> list[Path]:
    """JSON files to plot: each input is a probe JSON, or a run folder holding probe-<kind>*.json.
    ValueError for a kind other than agreement or context; UserError for an input that holds no results."""
    if kind not in ("agreement", "context"):
        raise ValueError(f"find_probe_results: kind must be 'agreement' or 'context', got {kind!r}")
    paths = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob(f"probe-{kind}*.json"))
            if not found and not (p / "config.json").is_file():     # a demo's, sweep's or study's folder
                runs = sorted({f.parent for f in p.glob(f"*/probe-{kind}*.json")})
                if runs:
                    raise UserError(f"{p} is not a run folder; the runs in it that hold probe results: give them "
                                    f"('{command()} plot probe {' '.join(str(r) for r in runs[:6])}"
                                    f"{' ...' if len(runs) > 6 else ''}"
                                    f"{' --kind context' if kind == 'context' else ''}')")
                raise UserError(f"{p} is not a run folder and holds no probe-{kind}*.json; give run folders "
                                "or probe JSON files")
            if not found:
                raise UserError(f"{p} holds no probe-{kind}*.json; run '{command()} probe {kind} {p}' first")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            raise UserError(f"no probe results at {p} (give a run folder or a probe JSON file)")
    return paths


def _split_stream(info: dict, vocab, split: str) -> np.ndarray:
    """The run's own held-out split, refusing a corpus that changed since training."""
    from .evaluate import run_text_ids

    return run_text_ids(info, vocab, split=split,
                        instead="put the corpus back as it was trained on (the probe reads the run's own split), "
                                "or train a new run on it")["ids"]
