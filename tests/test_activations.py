"""Every activation kind, from the one registry (config.ACTIVATION_EXAMPLES): the kernels' f and f'(h)
against the NumPy form `apply` and central finite differences in float64, fprime against the kernel's,
max_fprime against the largest slope on a grid. A kind added without a branch in a kernel computes scaled
tanh there, which these tests tell from its NumPy form; the NumPy functions raise on a kind they lack."""
import numpy as np
import pytest

from rnnlm.activations import _act_inplace, _dact, apply, fprime, max_fprime
from rnnlm.config import ACTIVATION_EXAMPLES, KINDS, SCALED_TANH, Activation, parse_activation

Z = np.linspace(-3.0, 3.0, 61) + 0.013       # (no point at relu's kink, 0)


def test_the_examples_cover_every_kind():
    assert {parse_activation(s).kind for s in ACTIVATION_EXAMPLES} == set(KINDS)
    assert len(set(KINDS)) == len(KINDS)


@pytest.mark.parametrize("spec", ACTIVATION_EXAMPLES)
def test_the_kernel_computes_the_numpy_form(spec):
    act = parse_activation(spec)
    z = Z.copy()
    _act_inplace(z, act.kind, act.a, act.b)
    np.testing.assert_allclose(z, apply(Z, act), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("spec", ACTIVATION_EXAMPLES)
def test_the_derivative_in_h_matches_central_differences(spec):
    act = parse_activation(spec)
    eps = 1e-6
    numeric = (apply(Z + eps, act) - apply(Z - eps, act)) / (2 * eps)
    h = apply(Z, act)
    kernel = np.array([_dact(v, act.kind, act.a, act.b, 1.0) for v in h])
    np.testing.assert_allclose(kernel, numeric, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fprime(h, act), kernel, rtol=0, atol=1e-15)     # (1 - t*t: fused or not)
    assert np.abs(numeric).max() <= max_fprime(act) * (1 + 1e-9)
    # the bound is attained (at z = 0 for tanh and sigmoid, anywhere z > 0 for relu)
    assert np.isclose(max(np.abs(numeric).max(), abs(fprime(apply(np.zeros(1), act), act)[0])), max_fprime(act),
                      rtol=1e-6)


def test_the_numpy_functions_refuse_a_kind_without_a_branch():
    act = Activation("softsign", max(KINDS) + 1, 1.0, 1.0)
    for f in (lambda: apply(Z, act), lambda: fprime(Z, act), lambda: max_fprime(act)):
        with pytest.raises(ValueError, match=r"activation 'softsign': kind 3 has no branch here"):
            f()
    assert parse_activation("tanh").kind == SCALED_TANH
