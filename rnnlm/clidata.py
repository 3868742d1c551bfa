"""The `corpus`, `baseline` and `bench` commands: their flags and what they run.

The one thing to know before editing: as in every command module, the
library is imported inside the `_run_` functions (so `--help` stays
instant), and a user mistake is a UserError that cli.main turns into one line.
"""
from __future__ import annotations

import contextlib

from . import config as C
from .cliflags import _add_data_flags, _arg, _data_config, _subcommands
from .errors import UserError
from .settings import default


def _add_corpus(sub):
    p = sub.add_parser("corpus", help="inspect, locate or download a corpus")
    csub = _subcommands(p, "corpus_command", "ACTION")
    info = csub.add_parser("info", help="token counts, vocabulary, OOV rates, samples")
    info.add_argument("corpus", nargs="?", default=default(C.DataConfig, "corpus"),
                      help="a named corpus (machado, sintetico) or a path to a .txt file or folder")
    _add_data_flags(info)
    dl = csub.add_parser("download", help="fetch a named corpus from its catalog URLs")
    dl.add_argument("corpus", help="a named corpus, e.g. machado")
    dl.add_argument("--corpora-dir", default=None,
                    help="put it in DIR/<name>/ (default: $RNNLM_CORPORA/<name>/ when set, else the repository's "
                         "corpora/<name>/, or ./corpora/<name>/ for an installed package)")
    dl.add_argument("--force", action="store_true",
                    help="fetch every file again, even when the corpus is already present and verified "
                         "(without it, a corpus the lookup finds is reported and nothing is fetched)")
    return p


def _run_corpus(args):
    from . import corpus, data
    if args.corpus_command == "download":
        found = None if args.force or args.corpus not in corpus.NAMED_CORPORA or args.corpus == "sintetico" \
            else corpus.present(args.corpus, args.corpora_dir)
        if found is not None:
            print(f"{args.corpus}: already present and verified in {found.origin}; nothing fetched "
                  f"(--force fetches it again into {corpus.download_dir(args.corpus, args.corpora_dir)})")
            return 0
        folder = corpus.download(args.corpus, args.corpora_dir, force=args.force)
        if args.corpus == "sintetico":   # made here from its settings, never fetched
            print(f"{args.corpus}: generated corpus ready in {folder} (made on this machine, not downloaded)")
        else:
            print(f"{args.corpus}: all files present and verified in {folder}")
        return 0
    print(data.info_report(data.load_corpus(_data_config(args))))
    return 0


def _add_baseline(sub):
    p = sub.add_parser("baseline", help="Kneser-Ney trigram perplexity on the same splits and vocabulary")
    _arg(p, C.DataConfig, "corpus",
         help="a named corpus (machado, sintetico) or a path to a .txt file or folder")
    _add_data_flags(p)
    p.add_argument("--split", default="both", choices=["valid", "test", "both"],
                   help="which held-out split(s) to score")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def _run_baseline(args):
    import json

    from . import baseline
    report = baseline.baseline_report(_data_config(args),
                                      splits=("valid", "test") if args.split == "both" else (args.split,))
    print(json.dumps(report, indent=2) if args.json else baseline.format_report(report))
    return 0


def _add_bench(sub):
    p = sub.add_parser("bench", help="training/inference tokens/s per cell and config")
    p.add_argument("--cell", default="all", choices=[*C.CELLS, "all"], help="the cell to time (default all)")
    p.add_argument("--config", default="all", help="tiny, small, medium, large or all (default all)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default 3)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both sides (Numba, BLAS, PyTorch; default 2, or 1 on a one-core machine); "
                        "at most the machine's cores unless --oversubscribe; not with --sweep, whose ways are fixed")
    p.add_argument("--vs-torch", action="store_true",
                   help="also time PyTorch's model in the same run, in a worker process, "
                        "interleaved with ours (needs torch importable)")
    p.add_argument("--torch-in-process", action="store_true",
                   help="with --vs-torch: time PyTorch in this process instead (the old harness)")
    p.add_argument("--torch-malloc", choices=C.TORCH_MALLOC, default=None,
                   help="with --vs-torch: PyTorch's process keeps the memory it frees for reuse (kept, the default: "
                        "glibc's mallopt, as the caching allocators of PyTorch's CPU tuning guide do), or hands large "
                        "freed blocks back to the OS as glibc does by default (default: its training windows then "
                        "page-fault, and the ratios flatter ours)")
    p.add_argument("--json", action="store_true", help="one JSON object per (cell, config)")
    p.add_argument("--compile", action="store_true",
                   help="also measure Numba compile time with an empty and a warm cache")
    p.add_argument("--jacobian", action="store_true",
                   help="also time the Jacobian lag curve at H=256, D=100, 32 anchors, and the "
                        "overhead of train --track-jacobian-every 500")
    p.add_argument("--sweep", action="store_true",
                   help="instead: the same grid of short trainings by the serial loop (2 threads), by 1 and by "
                        "2 Dask workers; jobs/min, ratios, Dask's overhead per job, peak memory per worker")
    p.add_argument("--sweep-jobs", type=int, default=None,
                   help="with --sweep: trainings in the grid, a multiple of 4 (4 recurrent scales x seeds; default 8)")
    p.add_argument("--sweep-steps", type=int, default=None, help="with --sweep: steps per training (default 300)")
    p.add_argument("--scaling", metavar="N,N,...",
                   help="instead: tokens/s at each of these thread counts (e.g. 1,2,4; each at most the machine's "
                        "cores), with --vs-torch PyTorch's at the same count and the ratio, and the parallel "
                        "efficiency (tok/s at n / (n x tok/s at 1)); not with --threads")
    p.add_argument("--breakdown", action="store_true",
                   help="with --scaling: ms per training step in the output layer, recurrent forward, recurrent "
                        "backward, embedding, clipping and optimizer, and the rest, with each one's speedup")
    p.add_argument("--oversubscribe", action="store_true",
                   help="with --threads or --scaling: allow more threads than cores (start with NUMBA_NUM_THREADS "
                        "set to the largest count)")
    return p


def _run_bench(args):
    import json

    from . import bench
    _refuse_other_modes(args)
    if args.sweep:
        sizes = {k: v for k, v in (("n_jobs", args.sweep_jobs), ("steps", args.sweep_steps)) if v is not None}
        print(bench.format_sweep_bench(bench.sweep_bench(**sizes)))
        return 0
    if args.scaling is not None:
        return _run_bench_scaling(args, bench, json)
    done, on_record = _as_done(args, json)
    with _finished_rows_on_stop(args, done, lambda: bench.format_table(done, args.vs_torch)):
        records = bench.run_bench(args.cell, args.config, repeats=args.repeats, threads=args.threads,
                                  vs_torch=args.vs_torch, torch_in_process=args.torch_in_process,
                                  torch_malloc=args.torch_malloc or "kept",
                                  oversubscribe=args.oversubscribe, progress=not args.json, on_record=on_record)
    if args.json:
        return 0
    print(bench.format_table(records, args.vs_torch))
    if args.compile:
        cells, _ = bench.selection(args.cell, args.config)
        print("\n" + bench.format_compile_times(bench.compile_times(cells), cells))
    if args.jacobian:
        print("\n" + bench.format_jacobian_times(bench.jacobian_times(), bench.jacobian_overhead()))
    print("\n" + bench.format_footer(args.vs_torch, args.torch_in_process))
    return 0


def _refuse_other_modes(args) -> None:
    """UserError (one line) for a flag that the chosen mode of `bench` would ignore: --sweep's ways and
    --scaling's thread counts are fixed by the mode, --sweep-jobs/--sweep-steps size --sweep only, and
    --breakdown is --scaling's. Every mode check of `bench` is here, before anything runs."""
    if args.sweep:
        if args.threads is not None:    # its ways are fixed (a 2-thread loop against 1-thread workers)
            raise UserError(f"--threads {args.threads}: --sweep compares fixed ways (the serial loop on 2 threads, "
                            "1 and 2 workers of one thread each); leave --threads out")
        given = [flag for flag, on in (("--scaling", args.scaling is not None), ("--vs-torch", args.vs_torch),
                                       ("--compile", args.compile), ("--jacobian", args.jacobian),
                                       ("--breakdown", args.breakdown), ("--json", args.json),
                                       ("--torch-malloc", args.torch_malloc is not None)) if on]
        if given:
            raise UserError(f"--sweep times Dask sweeps, not one model: leave out {', '.join(given)}")
        return
    if args.sweep_jobs is not None or args.sweep_steps is not None:
        flag = "--sweep-jobs" if args.sweep_jobs is not None else "--sweep-steps"
        raise UserError(f"{flag} sizes --sweep's grid only; add --sweep, or leave {flag} out")
    if args.scaling is not None and args.threads is not None:
        raise UserError(f"--threads {args.threads}: --scaling {args.scaling} gives the thread counts itself; "
                        "leave --threads out")
    if args.scaling is not None and (args.torch_in_process or args.compile or args.jacobian):
        raise UserError("--scaling does not combine with --torch-in-process, --compile or --jacobian")
    if args.torch_malloc is not None and not args.vs_torch:
        raise UserError(f"--torch-malloc {args.torch_malloc} sets PyTorch's allocator; add --vs-torch, or leave it out")
    if args.scaling is None and args.breakdown:
        raise UserError("--breakdown applies only with --scaling (e.g. --scaling 1,2)")
    if args.oversubscribe and args.scaling is None and args.threads is None:
        raise UserError("--oversubscribe applies only with --threads or --scaling (e.g. --threads 4 --oversubscribe)")


def _as_done(args, json):
    """([records so far], on_record): each record is kept as it is ready, and printed at once with --json."""
    done = []

    def on_record(record):
        done.append(record)
        if args.json:
            print(json.dumps(record), flush=True)
    return done, on_record


@contextlib.contextmanager
def _finished_rows_on_stop(args, done, table):
    """A bench stopped by Ctrl-C or SIGTERM prints the table of the rows it finished (table()) before its
    one line: minutes of measurements are not thrown away (--json printed each row as it came)."""
    try:
        yield
    except KeyboardInterrupt:
        if done and not args.json:
            print(table(), flush=True)
        raise


def _run_bench_scaling(args, bench, json):
    from . import benchscaling
    done, on_record = _as_done(args, json)
    with _finished_rows_on_stop(args, done, lambda: benchscaling.format_scaling_table(done, args.vs_torch)):
        records = benchscaling.run_scaling(args.cell, args.config, threads=args.scaling, repeats=args.repeats,
                                           vs_torch=args.vs_torch, breakdown=args.breakdown,
                                           torch_malloc=args.torch_malloc or "kept",
                                           oversubscribe=args.oversubscribe, progress=not args.json,
                                           on_record=on_record)
    if args.json:
        return 0
    print(benchscaling.format_scaling_table(records, args.vs_torch))
    if args.breakdown:
        print("\n" + benchscaling.format_breakdown(records))
    print("\n" + benchscaling.format_scaling_footer(records))
    return 0
