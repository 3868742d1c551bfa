"""How a sweep reaches its workers: the scheduler address, the handshake, and a LocalCluster's start and close.

`check_scheduler(address, n_workers)` says in one line what is wrong with a
--scheduler/--workers pair before anything is written (the rule is Dask's own
address parsing, the wording ours); `check_answers(address)` asks a scheduler
who it is, the whole exchange bounded, because distributed.Client bounds only
the TCP connection and waits forever on a server of another kind;
`check_reachable` is that check for the commands that print a first line.
`_client(...)` yields a distributed.Client on a fresh LocalCluster of
one-thread worker processes (`WORKER_ENV`), or on a scheduler started by hand,
and closes what it started. `_Shield` holds Ctrl-C and SIGTERM back while a
cluster starts (`_starting`) or closes, so that neither is cut short into a
page of Dask tracebacks; the signal is raised once all is closed.

sweep.py runs the jobs on what `_client` yields (`run_sweep`); the workers' side
(`dask_setup`, stopping jobs) stays there, and `_client` preloads it.

The one thing to know before editing: a LocalCluster's start and close must
never be interrupted half-way (half-made worker processes log tracebacks and
leave the scratch folder behind), so every path through `_client` raises the
shield before it starts or closes the cluster and reraises what it held after.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading

from .errors import UserError, plural, raise_for_signal
from .settings import check_range

SERIAL = "serial"           # scheduler value: run the jobs in this process, no Dask


# Set in every LocalCluster worker process before it imports NumPy or Numba.
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}


JOB_TMP = "RNNLM_JOB_TMP"    # set in LocalCluster workers: the scratch folder their jobs' temporary folders go in


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Shield:
    """Ctrl-C and SIGTERM held back while a sweep cleans up (stops jobs, closes the cluster); `lower` restores them.

    A second Ctrl-C in the middle of closing the cluster would leave worker
    processes and temporary folders behind, and one that lands while a
    finished sweep closes its cluster would remove the scratch folder under
    workers still shutting down (Dask then logs an ERROR for each); cleaning
    up takes a few seconds. A signal that arrives meanwhile is remembered in
    `pending` (the sweep then ends as interrupted once clean: `reraise`).
    Logging of Dask's closing (workers leaving, lost data) is silenced with it.
    """

    def __init__(self):
        self.previous = {}
        self.levels = {}
        self.pending = None

    def _note(self, signum, frame=None):
        self.pending = self.pending or signum

    def raise_(self) -> None:
        if not self.previous and threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:      # a signal this process was started to ignore stays ignored
                was = signal.getsignal(s)
                self.previous[s] = signal.signal(s, signal.SIG_IGN if was is signal.SIG_IGN else self._note)
        for name in ("distributed", "tornado", "asyncio"):
            log = logging.getLogger(name)
            self.levels.setdefault(name, log.level)
            log.setLevel(logging.CRITICAL + 1)

    def lower(self) -> None:
        for s, handler in self.previous.items():
            if handler is not None:     # None: a handler not set from Python, which cannot be put back
                signal.signal(s, handler)
        self.previous = {}
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        self.levels = {}

    def reraise(self) -> None:
        """Raise what a signal held back during a clean close would have raised (nothing if none came)."""
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise_for_signal(signum)


def check_scheduler(scheduler: str | None, n_workers: int | None = None) -> None:
    """UserError (one line) unless `scheduler` is None, "serial" or an address Dask can connect to
    (scheme://HOST:PORT, tcp:// by default); the rule is distributed's own address parsing. It says
    nothing of whether a scheduler listens there (`_client` finds that out). With a local cluster
    (None) also unless n_workers is at most the machine's cores (each worker is a process); with
    "serial" unless n_workers is None (there are no workers: it would be ignored). With an external
    scheduler n_workers is the count of its workers to wait for before the jobs are sent."""
    cores = os.cpu_count() or 1
    if n_workers is not None:
        check_range("workers", n_workers)       # (0, -1, 2.5: a count of at least 1)
    if scheduler is None and n_workers is not None and n_workers > cores:
        raise UserError(f"--workers {n_workers}: this machine has {cores} {plural(cores, 'core')} and a local "
                        f"cluster's workers run one job each on one thread; give at most {cores}, or a --scheduler")
    if scheduler == SERIAL and n_workers is not None:
        raise UserError(f"--workers {n_workers}: --scheduler {SERIAL} runs the jobs in this process, one after "
                        "another; leave --workers out, or leave --scheduler out for a local cluster of that many "
                        "workers")
    if scheduler is None or scheduler == SERIAL:
        return
    why = _address_problem(scheduler)
    if why:
        raise UserError(f"--scheduler {scheduler!r} is not a Dask scheduler address ({why}); give "
                        f"tcp://HOST:PORT (e.g. tcp://127.0.0.1:8786), '{SERIAL}' to run the jobs in this process, "
                        "or leave --scheduler out for a local cluster")


SCHEMES = ("tcp", "tls", "ws", "wss")    # the protocols a scheduler of another process listens on


def _address_problem(address: str) -> str | None:
    """What is wrong with a scheduler address in our words (None: nothing). What passes is Dask's own rule
    (distributed's get_address_host_port) with the port between 1 and 65535; its messages are Python's
    int()'s or name the address without its scheme, so the reason is told apart here."""
    from distributed.comm.addressing import get_address_host_port, parse_address
    try:
        _, port = get_address_host_port(address)
    except ValueError:
        pass
    else:
        return None if 0 < port < 65536 else f"port {port} is not between 1 and 65535"
    scheme, loc = parse_address(address)
    if scheme not in SCHEMES:
        return f"{scheme}:// is not one of {', '.join(s + '://' for s in SCHEMES)}"
    if not loc:
        return "it gives no host and no port"
    tail = loc[loc.find("]") + 1:] if loc.startswith("[") else loc     # (an IPv6 host: [::1]:8786)
    port = tail.rpartition(":")[2] if ":" in tail else ""
    if not port:
        return "it gives no port"
    return f"port {port!r} is not a number" if not port.isdigit() else "not HOST:PORT"


CONNECT_TIMEOUT = 20    # s: Dask's connection attempts to a --scheduler (check_answers)


def check_answers(scheduler: str, timeout: float | None = None) -> None:
    """UserError (one line) unless a Dask scheduler answers at `scheduler` within about `timeout` s
    (None: CONNECT_TIMEOUT, read at the call).

    distributed.Client bounds the TCP connection only: a server of another
    kind that takes it (an HTTP server, a proxy) never sends Dask's handshake,
    and Client waits forever; a proxy's "HTTP/1.1 400" read as a Dask frame
    asks for exabytes (a MemoryError that is not ours). So the scheduler is
    asked who it is first ({"op": "identity"}), the whole exchange bounded.
    """
    import asyncio

    from distributed.comm import connect
    from distributed.comm.core import CommClosedError

    timeout = CONNECT_TIMEOUT if timeout is None else timeout

    async def identity():
        comm = await connect(scheduler, timeout=timeout)
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            comm.abort()
    wait = timeout + min(timeout, 5)       # the connection's time, and some for the handshake
    other = ("; give the address that 'dask scheduler' prints (tcp://HOST:8786 by default), "
             "or leave --scheduler out")
    try:
        reply = _run_coroutine(asyncio.wait_for(identity(), wait))
    except (asyncio.TimeoutError, TimeoutError):
        raise UserError(f"{scheduler} took the connection but did not answer as a Dask scheduler within "
                        f"{wait:g} s (a server of another kind listens there?){other}") from None
    except CommClosedError:     # (an OSError) connected, then closed on Dask's handshake
        reply = None
    except OSError as exc:
        raise UserError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); "
                        "start one with 'dask scheduler' or leave --scheduler out") from None
    except Exception:   # noqa: BLE001 - an answer that is not Dask's (MemoryError, a decoding error)
        reply = None
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        what = (f"a Dask {str(kind).lower()}, not a scheduler" if kind else
                "not a Dask scheduler (it answered Dask's handshake with something else)")
        raise UserError(f"{scheduler} is {what}{other}")


def check_reachable(scheduler: str | None) -> bool:
    """`check_answers` for an external scheduler (None and "serial" need none); True when it asked.

    A command that prints a first line calls it before that line, so that an unreachable scheduler is
    the command's only line; it then passes run_sweep `scheduler_checked=True`, and the handshake is not
    done twice (Client's own connection, bounded by CONNECT_TIMEOUT, still catches a scheduler gone since).
    """
    if scheduler is None or scheduler == SERIAL:
        return False
    check_answers(scheduler)
    return True


def _run_coroutine(coro):
    """asyncio.run(coro), in a thread of its own when this one runs an event loop already (a notebook)."""
    import asyncio
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@contextlib.contextmanager
def _client(scheduler: str | None, n_workers: int | None, retries: int, progress: bool, shield: _Shield,
            checked: bool = False, preload: str = "rnnlm.sweep"):
    """A distributed.Client on a fresh LocalCluster (closed on exit) or on the given scheduler (asked who
    it is first, `check_answers`, unless the caller did: checked). preload: the module whose
    `dask_setup`/`dask_teardown` every LocalCluster worker runs (sweep.py's: Ctrl-C ignored, jobs stopped)."""
    import dask
    from distributed import Client, LocalCluster
    if scheduler:
        if not checked:
            check_answers(scheduler)
        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT}s")
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); "
                            "start one with 'dask scheduler' or leave --scheduler out") from None
        with client:
            yield client
            shield.raise_()     # the sweep is over: its close is not to be cut short by a late Ctrl-C
        return
    n = n_workers or os.cpu_count() or 1
    # One scratch folder for the whole cluster (Dask's worker spaces, every job's temporary folder), removed
    # after the workers are: nothing stays behind even when a worker had to be killed mid-job.
    scratch = tempfile.mkdtemp(prefix="rnnlm-sweep-")
    # The active memory manager would drop the payload's extra copies, which a dying worker then takes along.
    # The rest: less background work in each worker process, whose event loop and profiler threads take the
    # GIL from the job's thread (the serial loop has none of them): no statistical profiler (a stack sample
    # every 10 ms), event-loop health ticks every 1 s instead of 20 ms, the system monitor every 2 s instead
    # of 0.5 s, and (memory_limit=0 below) no memory monitor polling the process every 100 ms in the worker
    # and in its nanny; a worker the OS kills for memory is still restarted and its job retried.
    cfg = {"distributed.scheduler.allowed-failures": retries,
           "distributed.scheduler.active-memory-manager.start": False,
           "distributed.worker.daemon": True,
           "distributed.admin.system-monitor.gil.enabled": False,
           "distributed.worker.profile.enabled": False,
           "distributed.admin.tick.interval": "1s",
           "distributed.admin.system-monitor.interval": "2s",
           "temporary-directory": scratch}
    with dask.config.set(cfg):
        try:
            import bokeh  # noqa: F401
            dashboard = True
        except ImportError:
            dashboard = False
        cluster = None
        try:
            try:
                with contextlib.redirect_stdout(sys.stderr), _starting(shield):
                    # preload: the workers ignore the terminal's Ctrl-C and stop their jobs when closed (dask_setup)
                    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           env={**WORKER_ENV, JOB_TMP: scratch}, local_directory=scratch,
                                           memory_limit=0,
                                           dashboard_address=":0", silence_logs=logging.ERROR,
                                           preload=[preload])
            except Exception as exc:
                # A Ctrl-C or a SIGTERM sent to the process group (`timeout`, a batch system) also stops the
                # worker processes still starting, and the start fails ("Nanny failed to start"): the signal
                # held back is what happened, so the sweep stops as stopped. Any other failure is one line.
                shield.reraise()
                raise UserError(f"the local Dask cluster of {n} {plural(n, 'worker')} failed to start "
                                f"({type(exc).__name__}: {exc}); run the command again, give fewer --workers, "
                                f"or --scheduler {SERIAL} to run the jobs in this process") from None
            shield.reraise()    # a Ctrl-C or SIGTERM held back while the cluster started: now it can be closed
            with Client(cluster) as client:
                if dashboard and progress:
                    print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr, flush=True)
                yield client
                # the sweep is over; a Ctrl-C in its close would remove the scratch folder under workers still
                # shutting down (each then logs an ERROR): it is held back and raised once all is closed
                shield.raise_()
        except BaseException:
            shield.raise_()
            raise
        finally:
            try:
                if cluster is not None:
                    cluster.close(timeout=20)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)


# The resource tracker's note on the worker processes' semaphores when a stop of the whole process group
# (`timeout`, a batch system) killed them before they released them: it cleans them up all the same, so the
# note would only add two lines after the sweep's one. Its message starts with "resource_tracker" (the
# -W syntax cannot hold the colon after it).
TRACKER_QUIET = "ignore:resource_tracker:UserWarning:multiprocessing.resource_tracker"


def _start_resource_tracker() -> None:
    """multiprocessing's resource tracker process, started now (if it is not running) with TRACKER_QUIET
    among its warning options: it takes them from sys.warnoptions, and it outlives the workers and the
    signal that stopped them (it ignores SIGINT and SIGTERM), so its warning at exit cannot be caught here."""
    from multiprocessing import resource_tracker
    sys.warnoptions.append(TRACKER_QUIET)
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(TRACKER_QUIET)


@contextlib.contextmanager
def _starting(shield: _Shield):
    """A LocalCluster's start with Ctrl-C and SIGTERM held back (`shield`; `reraise` raises them after).

    Cut short, the start leaves half-made processes that log tracebacks, and
    a terminal's Ctrl-C reaches the worker processes too while they import
    (before `dask_setup` ignores it). SIGINT is blocked in this thread for
    the start: the cluster's threads, made now, inherit the mask (dask_setup
    unblocks it where a worker inherited it). Worker processes started by
    spawn begin with no signal blocked, so a Ctrl-C or a SIGTERM sent to the
    process group can still stop a worker while it starts: `_client` then
    raises the signal held back instead of the failed start.
    """
    mask = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
    if mask:    # started now, or the first worker's start would start it and unblock SIGINT in its thread
        _start_resource_tracker()
    shield.raise_()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if mask else None
    try:
        yield
    finally:
        if before is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)
        shield.lower()


def _attempts(client, keys) -> dict:
    """{task key: times it ran}: 1 + the times its worker died under it (the scheduler's count)."""
    def count(dask_scheduler, keys=keys):
        return {k: (dask_scheduler.tasks[k].suspicious if k in dask_scheduler.tasks else 0) for k in keys}
    try:
        return {k: 1 + n for k, n in client.run_on_scheduler(count).items()}
    except Exception:   # noqa: BLE001 - a count for the record only
        return {k: None for k in keys}
