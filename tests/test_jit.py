"""_jit.py's vector width: 16 float32 lanes on a CPU with AVX-512, the user's setting kept."""
import os
import subprocess
import sys
from pathlib import Path

import llvmlite.binding as ll

from rnnlm import _jit

REPO = Path(__file__).resolve().parents[1]


class _Features:
    def __init__(self, text):
        self.text = text

    def flatten(self):
        return self.text


def test_wide_vectors_only_with_avx512(monkeypatch):
    monkeypatch.setattr(ll, "get_process_triple", lambda: "x86_64-unknown-linux-gnu")
    monkeypatch.setattr(ll, "get_host_cpu_features", lambda: _Features("+avx2,+fma,+avx512f,-avx512fp16"))
    assert _jit._wide_vector_features({}) == "+avx2,+fma,+avx512f,-avx512fp16,-prefer-256-bit"
    monkeypatch.setattr(ll, "get_host_cpu_features", lambda: _Features("+avx2,+fma,-avx512f"))
    assert _jit._wide_vector_features({}) is None
    monkeypatch.setattr(ll, "get_host_cpu_features", lambda: _Features("+neon,+avx512f"))
    monkeypatch.setattr(ll, "get_process_triple", lambda: "aarch64-unknown-linux-gnu")
    assert _jit._wide_vector_features({}) is None


def test_the_users_cpu_settings_are_kept(monkeypatch):
    monkeypatch.setattr(ll, "get_process_triple", lambda: "x86_64-unknown-linux-gnu")
    monkeypatch.setattr(ll, "get_host_cpu_features", lambda: _Features("+avx512f"))
    assert _jit._wide_vector_features({"NUMBA_CPU_FEATURES": "+avx2"}) is None
    assert _jit._wide_vector_features({"NUMBA_CPU_NAME": "generic"}) is None
    assert _jit._wide_vector_features({"NUMBA_CPU_NAME": ""}) is not None   # empty: not set


_CODE = r"""
import numpy as np, numba, llvmlite.binding as ll
from rnnlm import layers                      # imports _jit first
f = numba.njit(layers._xent_rows.py_func)     # a fresh, uncached compile of the eval cross-entropy
N, V = 4, 64
f(np.zeros((N, V), np.float32), np.zeros(N), np.zeros(V, np.float32), np.zeros(N, np.int64), 0, N)
asm = "".join(f.inspect_asm().values())
print("+avx512f" in ll.get_host_cpu_features().flatten().split(","), "zmm" in asm, numba.config.CPU_FEATURES)
"""


def test_a_kernel_compiled_after_import_uses_the_wide_vectors():
    """In a fresh process: 512-bit registers in the cross-entropy's machine code iff the CPU has AVX-512."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME")}
    r = subprocess.run([sys.executable, "-c", _CODE], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**env, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-2000:]
    has_avx512, uses_zmm, features = r.stdout.split()[:3]
    assert uses_zmm == has_avx512, r.stdout
    assert features.endswith(",-prefer-256-bit") == (has_avx512 == "True"), r.stdout
