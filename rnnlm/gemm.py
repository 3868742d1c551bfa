"""`gemm(a, b, out)`: np.dot(a, b, out) for the kernels, float32 on a newer OpenBLAS.

Inside `@njit` code Numba's np.dot calls SciPy's bundled OpenBLAS (SciPy
1.17: OpenBLAS 0.3.30); `gemm` calls `cblas_sgemm` of the `scipy-openblas32`
wheel (the SciPy project's own OpenBLAS build, >= 0.3.31, a dependency) for
float32, and is np.dot for everything else. Measured in @njit, one thread, on
an AVX-512 Xeon, interleaved (N = 1120 rows): the output layer's dWᵀ = xᵀ · g
(the form used up to paths.DW_TRANSPOSED_MAX_H) runs 1.25-1.68x faster (H =
256, V = 10000: 53 ms against 42), the GRU's per-step products and the RNN's
backward one 1.2-1.5x; the output layer's other products are even (±10%).

    gemm(a (M, K), b (K, N), out (M, N)) -> out,   out = a · b

float32 a, b, out go to cblas_sgemm when BLAS takes their layouts as they are:
a and b each row-major with unit inner stride (a row block x[r0:r1] of a
C-contiguous x is one: its leading dimension is x's row length) or the
transpose of such a view (W.T, x[r0:r1].T: passed with the trans flag), and
out row-major with unit inner stride (its rows may be further apart than N).
Anything else falls back to np.dot, decided per call from the strides:
float64 (the gradient checks, which must stay on np.dot), mixed dtypes, other
strides, and empty blocks (M, N or K = 0). Numba's np.dot writes only into an
out typed C-contiguous, so for any other out the fallback is np.dot(a, b)
copied into out.

The one thing to know before editing: the library is loaded and its
`cblas_sgemm` registered with LLVM under `SYMBOL` when this module is
imported, and cached kernels that call gemm refer to that symbol by name, so
every module whose kernels call gemm must import this one (it then loads
before any such kernel). If the library cannot be loaded the import fails with
an ImportError naming the package: a silent fallback would leave cached
kernels referring to a symbol that is not there.

The library is opened privately (RTLD_LOCAL), not by `import scipy_openblas32`:
that import loads it with RTLD_GLOBAL, and a SciPy imported afterwards then
binds its own BLAS calls (and so Numba's np.dot) to it. Its thread count is
set to 1 here and held there by `_blas.one_blas_thread` (every call runs in a
recurrence or a row block on Numba's threads, see _blas.py).

Source: the CBLAS interface, https://www.netlib.org/blas/blast-forum/cinterface.pdf
(row-major `cblas_sgemm`: C = alpha·op(A)·op(B) + beta·C, lda = the row
length of A as stored); the wheel: https://pypi.org/project/scipy-openblas32/
"""
from __future__ import annotations

import ctypes
import importlib.util
import os

import llvmlite.binding as llvm
import numpy as np
from numba import types
from numba.extending import overload

from ._jit import njit

PACKAGE = "scipy-openblas32"
SYMBOL = "rnnlm_scipy_openblas32_cblas_sgemm"   # our name for the library's scipy_cblas_sgemm
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112   # CBLAS enums
_INT_MAX = 2 ** 31 - 1                           # the library's integers are 32-bit (LP64)


def _library_path() -> str:
    """Path of the wheel's shared library, found without importing the package (see above)."""
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the package is not installed")
    lib_dir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    names = sorted(n for n in os.listdir(lib_dir)
                   if n.startswith("libscipy_openblas") and n.endswith((".so", ".dylib", ".dll")))
    if not names:
        raise FileNotFoundError(f"no libscipy_openblas library in {lib_dir}")
    return os.path.join(lib_dir, names[0])


def _load():
    """(the ctypes library, the address of its scipy_cblas_sgemm); ImportError when it cannot be loaded."""
    try:
        lib = ctypes.CDLL(_library_path())
        address = ctypes.cast(lib.scipy_cblas_sgemm, ctypes.c_void_p).value
        lib.scipy_openblas_set_num_threads.argtypes = [ctypes.c_int]
        lib.scipy_openblas_get_num_threads.restype = ctypes.c_int
    except (OSError, AttributeError) as e:
        raise ImportError(f"rnnlm needs the OpenBLAS of the '{PACKAGE}' package for its float32 products "
                          f"({e}); install it: pip install '{PACKAGE}>=0.3.31'") from e
    return lib, address


LIBRARY, _ADDRESS = _load()
LIBRARY.scipy_openblas_set_num_threads(1)
llvm.add_symbol(SYMBOL, _ADDRESS)

_i = types.intc
_sgemm = types.ExternalFunction(SYMBOL, types.void(_i, _i, _i, _i, _i, _i, types.float32, types.voidptr, _i,
                                                   types.voidptr, _i, types.float32, types.voidptr, _i))


def gemm(a, b, out):
    """out (M, N) = a (M, K) · b (K, N), written in place and returned: np.dot(a, b, out).

    In @njit code float32 operands BLAS takes as they are go to the newer
    OpenBLAS's cblas_sgemm (module docstring); called from Python it is np.dot.
    Errors: as np.dot's (shapes that do not match raise ValueError).
    """
    return np.dot(a, b, out)


@njit(inline="always")
def _operand(m, rows, cols):
    """(CBLAS trans flag, leading dimension) of a float32 2-D view, or (0, 0) when BLAS cannot take it."""
    s0, s1 = m.strides
    if s1 == 4 and s0 % 4 == 0 and max(1, cols) <= s0 // 4 <= _INT_MAX:
        return _NO_TRANS, s0 // 4           # row-major, rows s0/4 elements apart
    if s0 == 4 and s1 % 4 == 0 and max(1, rows) <= s1 // 4 <= _INT_MAX:
        return _TRANS, s1 // 4              # the transpose of a row-major (cols, rows) view
    return 0, 0


@njit
def blas_takes(a, b, out):
    """(trans_a, lda, trans_b, ldb, ldc) of the cblas_sgemm call for float32 a, b, out;
    trans_a = 0 when gemm falls back to np.dot (the tests read it)."""
    M, K = a.shape
    N = b.shape[1]
    ta, lda = _operand(a, M, K)
    tb, ldb = _operand(b, K, N)
    tc, ldc = _operand(out, M, N)
    if (ta != 0 and tb != 0 and tc == _NO_TRANS and b.shape[0] == K and out.shape[0] == M
            and out.shape[1] == N and 0 < M <= _INT_MAX and 0 < N <= _INT_MAX and 0 < K <= _INT_MAX):
        return ta, lda, tb, ldb, ldc
    return 0, 0, 0, 0, 0


@njit
def _dot_into(a, b, out):
    return np.dot(a, b, out)


@njit
def _dot_copied(a, b, out):
    """For an out Numba does not know to be C-contiguous (its np.dot writes only into such)."""
    out[:] = np.dot(a, b)
    return out


@overload(gemm)
def _gemm(a, b, out):
    if not all(isinstance(t, types.Array) and t.ndim == 2 for t in (a, b, out)):
        return None
    fallback = _dot_into if out.layout == "C" else _dot_copied
    if not (a.dtype == b.dtype == out.dtype == types.float32):
        return lambda a, b, out: fallback(a, b, out)

    def impl(a, b, out):
        ta, lda, tb, ldb, ldc = blas_takes(a, b, out)
        if ta == 0:
            return fallback(a, b, out)
        _sgemm(_ROW_MAJOR, ta, tb, a.shape[0], b.shape[1], a.shape[1], np.float32(1.0), a.ctypes.data, lda,
               b.ctypes.data, ldb, np.float32(0.0), out.ctypes.data, ldc)
        return out
    return impl
