"""Numba decorators, in one place.

Every kernel is compiled with `cache=True` so that a second run starts fast.
fastmath is limited to flags that keep NaN and inf meaningful: the training
loop's non-finite guard depends on them (never `nnan`/`ninf`).
error_model="numpy": a float division by zero gives inf/NaN as in NumPy
instead of raising, which also removes the per-element zero test that kept
LLVM from vectorizing loops such as the gates' 1 / (1 + exp(-a)).

The one thing to know before editing: the compiled cache lives in
`caches.numba_cache_dir()`, a folder keyed on a hash of every module holding
Numba code, never in the package's __pycache__ (which may be read-only). The
folder is handed to Numba per decorated kernel (Numba picks a kernel's cache
locator when it is decorated), so other Numba code in the process keeps its
own settings; with no writable folder anywhere kernels compile uncached.

Threading layer: threadlayer.py chooses it (tbb where its library loads, else
workqueue; both fork-safe) when the package is imported.
"""
import os

import numba
from numba.core import config as _numba_config

from . import threadlayer as _threadlayer
from .caches import numba_cache_dir

# the threading layer, chosen when the package was imported (threadlayer.py); choose() again sets it in
# Numba's config, now imported (it is chosen once: the environment holds it)
THREADING_LAYER = _threadlayer.choose()


def _wide_vector_features(env=os.environ):
    """The host's LLVM feature string plus "-prefer-256-bit" on an x86-64 CPU with AVX-512,
    else None (also when $NUMBA_CPU_NAME or $NUMBA_CPU_FEATURES is set: the user's choice).

    LLVM's tuning for the AVX-512 Xeons (skylake-avx512 to emeraldrapids) makes
    its vectorizer use 256-bit vectors (8 float32 lanes), for fear of the
    512-bit clock penalty of the first of them; the ISA is there all the same.
    With 16 lanes the cross-entropy's passes over the logits ran 20-35% faster
    (ns per logit, one thread, six interleaved pairs of processes on an
    Emerald Rapids Xeon: eval 0.70-1.05 -> 0.47-0.75, training 0.87-1.52 ->
    0.61-0.96). Where the CPU has no AVX-512 the string is not changed.
    """
    if env.get("NUMBA_CPU_NAME") or env.get("NUMBA_CPU_FEATURES"):
        return None
    import llvmlite.binding as ll
    try:
        features = ll.get_host_cpu_features().flatten()
    except RuntimeError:          # llvmlite cannot read them on this platform
        return None
    if "+avx512f" not in features.split(",") or not ll.get_process_triple().startswith("x86_64"):
        return None
    return features + ",-prefer-256-bit"


CPU_FEATURES = _wide_vector_features()
if CPU_FEATURES is not None:
    # as the threading layer: through the environment (Numba re-reads its config from it
    # before compiling) and now. It applies to every kernel compiled after Numba's
    # code generator starts, which is at the first @njit of the process; it is a
    # tuning choice, not an ISA one (the same instructions are allowed either way).
    os.environ["NUMBA_CPU_FEATURES"] = CPU_FEATURES
    _numba_config.CPU_FEATURES = CPU_FEATURES

FASTMATH = {"contract", "arcp"}
CACHE_DIR = numba_cache_dir()       # None: no writable cache folder, compile on every start
_OPTIONS = dict(cache=CACHE_DIR is not None, fastmath=FASTMATH, nogil=True, error_model="numpy")


def cache_is_warm(*kernels: str) -> bool:
    """True when the compiled-kernel cache already holds kernels (Numba's *.nbi index files, in a
    subfolder per source tree), so a start-up reads them instead of compiling for about 30 s. kernels:
    glob patterns of the index files that must be there ("layers._embedding_backward*": a training's, which
    an evaluation does not compile); none: any kernel."""
    if CACHE_DIR is None:
        return False
    return all(any(CACHE_DIR.glob(f"**/{k}.nbi")) for k in kernels or ("*",))


def _decorate(fn, options):
    """numba.njit(**options)(fn) with Numba's cache folder set to ours while the locator is chosen."""
    saved = _numba_config.CACHE_DIR
    _numba_config.CACHE_DIR = str(CACHE_DIR) if CACHE_DIR is not None else saved
    try:
        return numba.njit(**options)(fn)
    finally:
        _numba_config.CACHE_DIR = saved


def njit(fn=None, *, reassoc=False, **extra):
    """`@njit`, `@njit(inline="always")` or `@njit(reassoc=True)`: numba.njit with the
    project's options (reassoc: as for njit_parallel)."""
    options = dict(_OPTIONS, fastmath=FASTMATH | {"reassoc"}) if reassoc else _OPTIONS
    if fn is None:
        return lambda f: _decorate(f, dict(options, **extra))
    return _decorate(fn, options)


def njit_parallel(fn=None, *, reassoc=False):
    """numba.njit(parallel=True) with the project's options, for top-level kernels called from Python only,
    not from another kernel (ARCHITECTURE.md, "Threads and the Numba cache": one thread pool, Numba's).

    reassoc=True also lets LLVM reorder floating-point sums (so that a dot
    product vectorizes); results then depend on the vector width, not on NaN/inf.
    """
    options = dict(_OPTIONS, fastmath=FASTMATH | {"reassoc"}) if reassoc else _OPTIONS
    if fn is None:
        return lambda f: _decorate(f, dict(options, parallel=True))
    return _decorate(fn, dict(options, parallel=True))
