#!/usr/bin/env bash
# The many-core measurement of BENCHMARKS.md's "Scaling with threads", as one command that fits a
# 10-minute limit: `bench --scaling --breakdown --vs-torch --json` one config at a time, the configs
# that miss their targets first (large, medium, small, tiny), each under its own time guard, every
# record appended to OUTDIR/scaling.jsonl as soon as its (config, cell) is done, so that a run cut
# short keeps what it finished.
#
#   bash tools/scaling_run.sh OUTDIR [COUNTS] [REPEATS] [SECONDS]
#   bash tools/scaling_run.sh /tmp/out 1,2,4,8,16 3 540
#
# COUNTS defaults to 1,2,4,8,16 cut at the machine's cores; SECONDS (default 540) is shared out as
# large 36%, medium 22%, small 15%, tiny 15%, and 12% for tools/output_ab.py (the output layer's
# row blocks against OpenBLAS's threads, the most threads first, into OUTDIR/output_ab.jsonl). The Python used is $PYTHON (default python3): it
# must import numba, numpy, scipy and torch (PyTorch is compared, never imported by rnnlm).
#
# On a machine without the project installed: put the wheels of the packages it lacks in
# WHEELS (default .whl), e.g. scipy-openblas32 (gemm.py needs it) and tbb with tcmlib (Numba's
# fork-safe threading layer, see _jit.py; without it Numba falls back to workqueue, up to a third
# slower on small models); they are installed under a temporary prefix and put on the paths.
set -u
OUT=${1:?usage: bash tools/scaling_run.sh OUTDIR [COUNTS] [REPEATS] [SECONDS]}
CORES=$(nproc)
COUNTS=${2:-$(for n in 1 2 4 8 16; do [ "$n" -le "$CORES" ] && printf '%s,' "$n"; done | sed 's/,$//')}
REPEATS=${3:-3}
SECONDS_ALL=${4:-540}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
cd "$(dirname "$0")/.." || exit 2          # the repository root: cli.py and rnnlm/ are here
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
: > "$OUT/scaling.jsonl"; : > "$OUT/stderr.txt"   # this run's records only
export PYTHONUNBUFFERED=1

if compgen -G "$WHEELS/*.whl" > /dev/null; then
    PREFIX=$(mktemp -d)
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --ignore-installed \
        --prefix "$PREFIX" "$WHEELS"/*.whl || exit 2
    SITE=$(ls -d "$PREFIX"/lib/python3*/site-packages)
    export PYTHONPATH="$SITE:${PYTHONPATH:-}" LD_LIBRARY_PATH="$PREFIX/lib:${LD_LIBRARY_PATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
if ! "$PYTHON" -c 'import numba, scipy, torch, rnnlm' 2> /dev/null; then
    echo "error: $PYTHON cannot import numba, scipy, torch and rnnlm (set PYTHON to one that can;" \
         "PyTorch is what the run compares against)" >&2
    exit 2
fi

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  cores: $CORES  counts: $COUNTS  repeats: $REPEATS"
    lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Socket|L2|L3|NUMA node\(s\)' || true
    "$PYTHON" -c 'import numba, numpy, torch, rnnlm._jit as j; print("numba", numba.__version__, "numpy", numpy.__version__, "torch", torch.__version__, "threading layer", j.THREADING_LAYER, "wide vectors", j.CPU_FEATURES is not None)'
} 2>&1 | tee "$OUT/machine.txt"

for spec in large:36 medium:22 small:15 tiny:15; do
    config=${spec%%:*}
    budget=$(( SECONDS_ALL * ${spec##*:} / 100 ))
    echo "== $config: up to $budget s"
    timeout "$budget" "$PYTHON" cli.py bench --scaling "$COUNTS" --breakdown --vs-torch --repeats "$REPEATS" \
        --config "$config" --cell all --json >> "$OUT/scaling.jsonl" 2>> "$OUT/stderr.txt"
    echo "   exit $?, $(wc -l < "$OUT/scaling.jsonl") records so far"
done
budget=$(( SECONDS_ALL * 12 / 100 ))
echo "== output layer, row blocks against OpenBLAS's threads: up to $budget s"
timeout "$budget" "$PYTHON" tools/output_ab.py --counts "$(echo "$COUNTS" | tr ',' '\n' | sort -rn | paste -sd,)" \
    --config large,medium --calls 4 --alternations 2 --seconds $(( budget * 2 / 3 )) \
    > "$OUT/output_ab.jsonl" 2>> "$OUT/stderr.txt"
echo "   exit $?, $(wc -l < "$OUT/output_ab.jsonl") records"
if [ ! -s "$OUT/scaling.jsonl" ]; then
    echo "error: no record was written; see $OUT/stderr.txt" >&2
    exit 1
fi
