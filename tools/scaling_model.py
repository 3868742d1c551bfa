"""What a `bench --scaling ... --breakdown --json` run predicts at more threads (issue 17's model).

    python cli.py bench --scaling 1,2 --breakdown --config medium --cell lstm --json > medium.jsonl
    python tools/scaling_model.py medium.jsonl --threads 4,8,16

Each phase of the training step (benchscaling.PHASES) is fitted by Amdahl's law from its measured ms per step
at the thread counts of the run: t(n) = t(n0) · (s + (1 - s) · n0 / n), with s, the share of the phase
that does not get faster with threads, chosen by least squares over the measured counts and held in
[0, 1] (from 1 and 2 threads alone: s = 2 · t(2) / t(1) - 1). The step is the sum of the phases; the
predicted parallel efficiency is t(n0) / (n/n0 · t(n)). This is a model, not a measurement: it assumes a
phase loses at more threads only what it lost from n0 to the largest measured count, so a phase that
becomes memory-bound, or whose blocks are sized for few threads, does worse than it predicts. Print-only.
"""
import argparse
import json
import sys

PHASES = ("output", "rec_fwd", "rec_bwd", "embedding", "clip_opt", "other")


def serial_share(counts, ms):
    """Least-squares s in [0, 1] of ms[i] / ms[0] = s + (1 - s) · counts[0] / counts[i]."""
    if ms[0] <= 0 or len(counts) < 2:
        return None
    # r_i - p_i = s · (1 - p_i), with r = ms / ms[0], p = n0 / n
    p = [counts[0] / n for n in counts]
    r = [m / ms[0] for m in ms]
    num = sum((ri - pi) * (1 - pi) for ri, pi in zip(r, p))
    den = sum((1 - pi) ** 2 for pi in p)
    return min(max(num / den, 0.0), 1.0)


def predict(records, threads):
    """{(config, cell): {"serial": {phase: s}, "ms": {n: {phase: ms}}, "efficiency": {n: e}}} from the
    records of one run (each (config, cell) with at least two thread counts and a breakdown)."""
    groups = {}
    for r in records:
        groups.setdefault((r["config"], r["cell"]), []).append(r)
    out = {}
    for key, recs in groups.items():
        recs = sorted(recs, key=lambda r: r["threads"])
        if len(recs) < 2 or "phase_ms" not in recs[0]:
            continue
        counts = [r["threads"] for r in recs]
        n0 = counts[0]
        serial = {ph: serial_share(counts, [r["phase_ms"][ph] for r in recs]) for ph in PHASES}
        base = recs[0]["phase_ms"]
        ms = {n: {ph: (base[ph] * (serial[ph] + (1 - serial[ph]) * n0 / n) if serial[ph] is not None
                       else base[ph]) for ph in PHASES} for n in threads}
        step0 = sum(base.values())
        out[key] = {"serial": serial, "ms": ms, "measured": counts,
                    "efficiency": {n: step0 / (n / n0 * sum(ms[n].values())) for n in threads}}
    return out


def format_prediction(pred) -> str:
    lines = []
    for (config, cell), p in pred.items():
        lines.append(f"{config} {cell}: serial share per phase, fitted on {','.join(map(str, p['measured']))} "
                     "threads: " + ", ".join(f"{ph} {s:.2f}" if s is not None else f"{ph} -"
                                             for ph, s in p["serial"].items()))
        lines.append(f"  {'threads':>7}" + "".join(f" {ph:>9}" for ph in PHASES) + f" {'step ms':>9} {'eff':>5}")
        for n, ms in p["ms"].items():
            lines.append(f"  {n:>7}" + "".join(f" {ms[ph]:>9.2f}" for ph in PHASES)
                         + f" {sum(ms.values()):>9.2f} {p['efficiency'][n]:>5.2f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("jsonl", help="the output of bench --scaling ... --breakdown --json ('-' for stdin)")
    ap.add_argument("--threads", default="4,8,16", help="thread counts to predict (default 4,8,16)")
    args = ap.parse_args(argv)
    f = sys.stdin if args.jsonl == "-" else open(args.jsonl)
    with f:
        records = [json.loads(line) for line in f if line.strip().startswith("{")]
    pred = predict(records, [int(x) for x in args.threads.split(",")])
    if not pred:
        sys.exit("error: no (config, cell) with a breakdown at two or more thread counts in the input")
    print(format_prediction(pred))


if __name__ == "__main__":
    main()
