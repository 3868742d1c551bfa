"""gemm.gemm: np.dot's meaning, float32 on the scipy-openblas32 library, np.dot for the rest."""
import importlib.util
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from rnnlm import gemm as gemm_module
from rnnlm.gemm import blas_takes, gemm

NO_TRANS, TRANS = 111, 112
# The fallback cases hand np.dot non-contiguous views on purpose; Numba's hint that
# contiguous ones are faster is the point of those cases, not a fault.
pytestmark = pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")


@numba.njit
def _gemm(a, b, out):
    return gemm(a, b, out)


@numba.njit
def _dot(a, b, out):
    return np.dot(a, b, out)


def _row_major(rng, rows, cols, dtype, ld=None):
    """A (rows, cols) view with unit inner stride and leading dimension ld (>= cols)."""
    full = rng.standard_normal((rows, ld or cols)).astype(dtype)
    return full[:, :cols]


def _operand(rng, rows, cols, transposed, dtype, ld_pad=0):
    """A (rows, cols) operand: row-major, or the transpose of a row-major (cols, rows) view."""
    if transposed:
        return _row_major(rng, cols, rows, dtype, rows + ld_pad).T
    return _row_major(rng, rows, cols, dtype, cols + ld_pad)


@pytest.mark.parametrize("ld_pad", [0, 3])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_float32_layouts_go_to_blas_and_match_a_float64_product(ta, tb, ld_pad):
    rng = np.random.default_rng(7)
    M, K, N = 37, 19, 23
    a = _operand(rng, M, K, ta, np.float32, ld_pad)
    b = _operand(rng, K, N, tb, np.float32, ld_pad)
    out = np.full((M, N), np.nan, np.float32)
    assert blas_takes(a, b, out) == (TRANS if ta else NO_TRANS, (M if ta else K) + ld_pad,
                                     TRANS if tb else NO_TRANS, (K if tb else N) + ld_pad, N)
    returned = _gemm(a, b, out)
    assert returned is out
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_row_blocks_of_larger_arrays_as_the_kernels_slice_them():
    """x[r0:r1] · W.T into logits[r0:r1], logits[r0:r1] · W into dx[r0:r1], x[r0:r1].T · g[r0:r1]."""
    rng = np.random.default_rng(3)
    N, H, V, r0, r1 = 40, 12, 30, 9, 26
    x = rng.standard_normal((N, H)).astype(np.float32)
    W = rng.standard_normal((V, H)).astype(np.float32)
    logits = np.zeros((N, V), np.float32)
    dx = np.zeros((N, H), np.float32)
    dWT = np.zeros((H, V), np.float32)
    assert blas_takes(x[r0:r1], W.T, logits[r0:r1]) == (NO_TRANS, H, TRANS, H, V)
    _gemm(x[r0:r1], W.T, logits[r0:r1])
    _gemm(logits[r0:r1], W, dx[r0:r1])
    assert blas_takes(x[r0:r1].T, logits[r0:r1], dWT) == (TRANS, H, NO_TRANS, V, V)
    _gemm(x[r0:r1].T, logits[r0:r1], dWT)
    x64, W64 = x.astype(np.float64), W.astype(np.float64)
    expected_logits = x64[r0:r1] @ W64.T
    np.testing.assert_allclose(logits[r0:r1], expected_logits, rtol=1e-5, atol=1e-5)
    assert not logits[:r0].any() and not logits[r1:].any()          # only the block is written
    np.testing.assert_allclose(dx[r0:r1], logits[r0:r1].astype(np.float64) @ W64, rtol=1e-5, atol=1e-4)
    assert not dx[:r0].any() and not dx[r1:].any()
    np.testing.assert_allclose(dWT, x64[r0:r1].T @ logits[r0:r1].astype(np.float64), rtol=1e-5, atol=1e-4)


def test_out_with_rows_further_apart_than_its_width():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal((4, 5)).astype(np.float32)
    full = np.full((6, 9), 7.0, np.float32)
    out = full[:, 2:7]
    assert blas_takes(a, b, out) == (NO_TRANS, 4, NO_TRANS, 5, 9)
    assert _gemm(a, b, out) is out
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5, atol=1e-5)
    assert (full[:, :2] == 7).all() and (full[:, 7:] == 7).all()


@pytest.mark.parametrize("case", ["empty block", "strided columns", "reversed rows", "column-major out"])
def test_float32_layouts_blas_cannot_take_fall_back_to_np_dot(case):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((8, 6)).astype(np.float32)
    b = rng.standard_normal((6, 5)).astype(np.float32)
    out = np.zeros((8, 5), np.float32)
    if case == "empty block":
        a, out = a[3:3], out[3:3]
    elif case == "strided columns":
        b = rng.standard_normal((6, 10)).astype(np.float32)[:, ::2]
    elif case == "reversed rows":
        a = a[::-1]
    else:
        out = np.zeros((5, 8), np.float32).T
    assert blas_takes(a, b, out) == (0, 0, 0, 0, 0)
    expected = np.zeros(out.shape, np.float32)
    _dot(np.ascontiguousarray(a), np.ascontiguousarray(b), expected)
    _gemm(a, b, out)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    if case != "empty block":
        assert np.abs(out).sum() > 0


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_float64_is_numbas_np_dot_bit_for_bit(ta, tb):
    """The gradient checks run in float64 and stay on np.dot (SciPy's BLAS)."""
    rng = np.random.default_rng(11)
    a = _operand(rng, 21, 17, ta, np.float64, 2)
    b = _operand(rng, 17, 13, tb, np.float64, 2)
    out, expected = np.empty((21, 13)), np.empty((21, 13))
    _gemm(a, b, out)
    _dot(a, b, expected)
    assert np.array_equal(out, expected)


def test_from_python_it_is_np_dot():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((3, 2)).astype(np.float32)
    out = np.empty((4, 2), np.float32)
    assert gemm(a, b, out) is out
    assert np.array_equal(out, np.dot(a, b))


def test_the_library_runs_on_one_thread():
    assert gemm_module.LIBRARY.scipy_openblas_get_num_threads() == 1


def test_import_without_the_library_fails_with_one_clear_message(monkeypatch):
    """No silent fallback: a cached kernel would refer to a symbol that is not registered."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "scipy_openblas32" else real(name, *args))
    path = Path(gemm_module.__file__)
    spec = importlib.util.spec_from_file_location("rnnlm._gemm_without_library", path)
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError) as e:
        spec.loader.exec_module(module)
    message = str(e.value)
    assert "scipy-openblas32" in message and "pip install 'scipy-openblas32>=0.3.31'" in message
    assert "\n" not in message
    assert "rnnlm._gemm_without_library" not in sys.modules
