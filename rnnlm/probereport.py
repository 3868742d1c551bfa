"""How a probe's result reads: the agreement and context tables the `probe` command prints.

`format_agreement` is the agreement table (per distance: pairs, accuracy and
its Wilson 95% interval, with and without an attractor) ending in
`chance_sentence`, what the table says of chance; `format_context` is the
context-usage table (per distance: the mean loss increase, its 95% interval,
whether it is within noise) ending in the effective context. Each reads the
result dict that probes.py's `agreement_probe` / `context_usage` return (and
`run_agreement` / `run_context` write as JSON), and nothing else.

    print(format_agreement(res))        # res: run_agreement(...)[0]
    chance_sentence(res["by_distance"]) # "accuracy: above chance at every distance from 2 on ..."

The one thing to know before editing: `chance_sentence` states the verdict
corrected for the number of distances tested (Holm 1979, probes.chance_pattern)
before the uncorrected per-distance pattern, and says "falls to chance" only
after distances mostly above chance: with 40 distances about 2 intervals miss
0.5 by luck alone, and a sentence that read them as a finding would mislead.
The statistics are probes.py's; this module only words them.
"""
from __future__ import annotations

import math

from .errors import and_list, consecutive_runs, plural
from .probes import CHANCE, FAMILY_ALPHA, chance_pattern

def _fmt_ci(rec) -> str:
    if rec is None or rec.get("accuracy") is None:   # no pair in this cell (n = 0): nothing to report
        return f"{'-':>5}"
    return f"{rec['accuracy']:5.3f} [{rec['ci'][0]:.3f}, {rec['ci'][1]:.3f}]"


def format_agreement(res: dict) -> str:
    """The agreement table: per distance n, accuracy and 95% interval, all/with/without attractor."""
    lines = [f"agreement ({res['feature']}), {res['pairs']} {plural(res['pairs'], 'pair')}, "
             f"coverage {res['coverage']:.1%}, chance 0.5",
             *_not_probed(res),
             f"{'dist':>4} {'n':>5}  {'accuracy  95% CI':<23} {'with attractor':<23} {'no attractor':<23}"]
    bins = res["by_distance"]
    held = None     # distances outside chance after Holm's correction (None: bins without counts)
    if len(bins) > 1:
        p = chance_pattern(bins)
        if p["holm_above_chance_distances"] is not None:
            held = set(p["holm_above_chance_distances"]) | set(p["holm_below_chance_distances"])
    for b in bins:
        mark = "  ~chance" if b["ci"][0] <= CHANCE <= b["ci"][1] else \
            "  ~chance after Holm" if held is not None and b["distance"] not in held else ""
        lines.append(f"{b['distance']:>4} {b['n']:>5}  {_fmt_ci(b):<23} {_fmt_ci(b['attractor']):<23} "
                     f"{_fmt_ci(b['no_attractor']):<23}{mark}")
    o = res["overall"]
    lines.append(f" all {o['n']:>5}  {_fmt_ci(o):<23} {_fmt_ci(res['attractor']):<23} {_fmt_ci(res['no_attractor']):<23}")
    lines.append(chance_sentence(res["by_distance"]))
    return "\n".join(lines)


def _not_probed(res: dict) -> list[str]:
    """The line saying which distances asked for have no row, and why (gender's distance 1); none if all do."""
    skipped = res.get("not_probed")
    if not skipped:
        return []
    return [f"{plural(len(skipped), 'distance')} {_distance_list(skipped)} not probed: {res.get('not_probed_why')}"]


def _distance_list(ds) -> str:
    """'1', '1 and 4', '3, 5-8 and 12': runs of consecutive distances as ranges."""
    return and_list(f"{a}" if a == b else f"{a}-{b}" for a, b in consecutive_runs(ds))


def _corrected_clause(p: dict, bins) -> str:
    """The verdict after Holm's correction (chance_pattern's holm_* fields), as words."""
    m = len(bins)
    up, down = p["holm_above_chance_distances"], p["holm_below_chance_distances"]
    every = f"every distance probed ({bins[0]['distance']}-{bins[-1]['distance']})"
    parts = []
    if up:
        parts.append(f"above chance at {every}" if len(up) == m else
                     f"above chance at {plural(len(up), 'distance')} {_distance_list(up)}")
    if down:
        parts.append(f"below chance at {every}" if len(down) == m else
                     f"below chance at {plural(len(down), 'distance')} {_distance_list(down)}")
    rest = m - len(up) - len(down)
    if not parts:
        parts.append(f"indistinguishable from chance at {every}")
    elif rest:
        parts.append(f"indistinguishable from chance at the other {rest}")
    return (f"{' and '.join(parts)}, after Holm's correction for the {m} distances tested "
            f"(family-wise error {FAMILY_ALPHA:.0%})")


def chance_sentence(bins) -> str:
    """What the agreement table's last line says of chance (`chance_pattern`).

    First the verdict corrected for the number of distances tested (Holm 1979: `holm_adjust`): where accuracy
    is above or below chance with at most a 5% chance of any false call in the whole table; then how many
    per-distance 95% intervals exclude 0.5 against the ~5% that luck alone would (an untrained model probed
    at 40 distances has about 2 "above chance" by luck); then the uncorrected pattern: the distances at chance
    (and below it), and whether accuracy is above chance from some distance on or falls to chance and
    stays there: a model at chance only at distance 1 is not one that fails from distance 1 on, and "falls"
    is said only after distances mostly above chance (an untrained model above chance at one distance by
    luck did not fall from it). When the correction changes nothing, it is said after the pattern instead; with
    one distance, or bins without counts (n, correct), no correction is said."""
    if not bins:
        return "no distance probed"
    p = chance_pattern(bins)
    first, last = bins[0]["distance"], bins[-1]["distance"]
    at, below = p["chance_distances"], p["below_chance_distances"]
    parts = []
    if at:
        parts.append(f"95% CI contains 0.5 (chance) at {plural(len(at), 'distance')} {_distance_list(at)}")
    if below:
        parts.append(f"below chance (95% CI under 0.5) at {plural(len(below), 'distance')} {_distance_list(below)}")
    to_last = f"(to {last}, the largest probed)"
    if p["above_chance_from"] is not None:
        start = p["above_chance_from"]
        if start == first:
            parts.append(f"above chance (95% CI over 0.5) at every distance probed ({first}-{last})"
                         if first != last else f"above chance (95% CI over 0.5) at the one distance probed ({first})")
        elif start == last:
            parts.append(f"above chance at the largest distance probed ({last})")
        elif all(b["ci"][0] <= CHANCE for b in bins if b["distance"] < start):
            parts.append(f"above chance at every distance from {start} on {to_last}")
        else:
            parts.append(f"above chance at every other distance, and at every distance from {start} on {to_last}")
    else:
        start = p["chance_from"]
        fall = "chance or below" if any(d >= start for d in below) else "chance"
        every = f"every distance probed ({first}-{last})" if first != last else f"the one distance probed ({first})"
        if start == first and not below:
            parts = [f"95% CI contains 0.5 (chance) at {every}"]
        elif start == first:
            parts.append(f"above chance at no distance probed ({first}-{last})" if first != last else
                         f"not above chance at the one distance probed ({first})")
        elif start == last:
            parts.append(f"at {fall} at the largest distance probed ({last})")
        else:
            earlier = [b for b in bins if b["distance"] < start]
            above = [b["distance"] for b in earlier if b["ci"][0] > CHANCE]
            if 2 * len(above) > len(earlier):   # mostly above chance up to `start`, then at chance: a decline
                parts.append(f"falls to {fall} from distance {start} on and stays there {to_last}")
            else:                               # above chance only here and there before: no decline to speak of
                parts.append(f"above chance only at {plural(len(above), 'distance')} {_distance_list(above)}, "
                             f"and not from distance {start} on {to_last}")
    m = len(bins)
    pattern = "; ".join(parts)
    if m == 1:
        return "accuracy: " + pattern
    uncorrected_up = [b["distance"] for b in bins if b["ci"][0] > CHANCE]
    k = p["outside_chance_count"]
    luck = (f"{k} of the {m} per-distance 95% CIs {'excludes' if k == 1 else 'exclude'} 0.5, where luck alone would put "
            f"about {FAMILY_ALPHA * m:.2g} ({FAMILY_ALPHA:.0%} of {m})")
    if p["holm_above_chance_distances"] is None:      # bins without counts: no correction to state
        return f"accuracy: {luck}: {pattern}" if p["outside_chance_count"] else "accuracy: " + pattern
    if p["holm_above_chance_distances"] == uncorrected_up and p["holm_below_chance_distances"] == below:
        return (f"accuracy: {pattern}; the same after Holm's correction for the {m} distances tested "
                f"(family-wise error {FAMILY_ALPHA:.0%})")
    ups = [b["distance"] for b in bins if b["ci"][0] > CHANCE]
    downs = [b["distance"] for b in bins if b["ci"][1] < CHANCE]
    where = "; ".join(f"{way} at {plural(len(ds), 'distance')} {_distance_list(ds)}"
                      for way, ds in (("above", ups), ("below", downs)) if ds)
    luck = (f"{k} of the {m} per-distance 95% CIs {'excludes' if k == 1 else 'exclude'} 0.5 ({where}), where "
            f"luck alone would put about {FAMILY_ALPHA * m:.2g} ({FAMILY_ALPHA:.0%} of {m})")
    return f"accuracy: {_corrected_clause(p, bins)}; uncorrected, {luck}"


def _nats(x: float, sign: str = "") -> str:
    """x to 4 decimals, with no "-0.0000" (a tiny negative increase rounds to zero, not below it)."""
    text = f"{x:{sign}.4f}"
    return f"{0.0:{sign}.4f}" if float(text) == 0 else text


def _outward(lo: float, hi: float, decimals: int = 4) -> tuple[float, float]:
    """An interval rounded outward to `decimals` (its lower end down, its upper end up), so that the table
    never shows an interval narrower than the JSON's: a lower end of -2.9e-5 is -0.0001, not +0.0000, which
    read as an increase above zero."""
    scale = 10 ** decimals
    return math.floor(round(lo * scale, 6)) / scale, math.ceil(round(hi * scale, 6)) / scale


def _no_gain(r: dict, tolerance: float) -> str:
    """The label of a distance whose farther context does not raise the loss significantly: "within noise",
    or, when perturbing it significantly *lowers* the loss (the interval lies below -tolerance: the model
    reads that context, but to its cost), "lower when perturbed"; "" when it raises it."""
    if not r["within_noise"]:
        return ""
    return "  lower when perturbed" if r["ci"][1] < -tolerance else "  within noise"


def format_context(res: dict) -> str:
    """The context table: per d, mean loss increase and its 95% interval."""
    asked = res.get("n_targets_asked") or res["n_targets"]
    fewer = (f" (of {asked:,} asked: the split holds only {res['n_targets']:,} positions past the window)"
             if asked > res["n_targets"] else "")
    lines = [f"context usage ({res['mode']}), {res['n_targets']} {plural(res['n_targets'], 'target')}{fewer}, "
             f"window {res['window']}, baseline loss {res['baseline_loss']:.3f} nats",
             f"{'d':>5} {'increase':>9}  {'95% CI':<20}"]
    if any(r.get("within_noise") for r in res["results"]):      # (an interval of +0.0000 to +0.0001 read as a gain)
        lines[0] += f"; within noise: the interval's lower end at or below {res.get('tolerance', 1e-4):g} nats"
    for r in res["results"]:
        lo, hi = _outward(*r["ci"])
        lines.append(f"{r['distance']:>5} {_nats(r['mean_increase']):>9}  [{_nats(lo, '+')}, {_nats(hi, '+')}]"
                     f"{_no_gain(r, res.get('tolerance', 1e-4))}")
    eff = res["effective_context"]
    lines.append(f"effective context: {eff} {plural(eff, 'token')}" if eff is not None else
                 f"effective context: beyond {res['distances'][-1]} {plural(res['distances'][-1], 'token')}")
    return "\n".join(lines)
