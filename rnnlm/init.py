"""Parameter initializations: default (PyTorch), xavier, orthogonal, identity.

Legend: V = vocabulary, E = embedding size, H = hidden size, G = gates per
cell (rnn 1, gru 3, lstm 4). Recurrent matrices are (G·H) × in, gate blocks
stacked in PyTorch order (lstm i,f,g,o; gru r,z,n).

The one thing to know before editing: every scheme draws from one numpy
Generator in a fixed order (encoder, then layer by layer W_ih, W_hh, b_ih,
b_hh, then decoder), always in float64, and only then casts; so a seed gives
the same model in float32 and float64.
"""
from __future__ import annotations

import numpy as np

from .activations import ModelConfigError
from .config import INITS  # noqa: F401  (the option list lives in config.py)

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def orthogonal(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """An n×m matrix with orthonormal rows or columns (QR of a Gaussian, signs fixed as in PyTorch)."""
    a = rng.standard_normal((max(n, m), min(n, m)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if n >= m else q.T


def _xavier(rng, fan_out, fan_in):
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, (fan_out, fan_in))


def param_shapes(cell: str, vocab_size: int, emsize: int, hidden: int, layers: int, tied: bool) -> dict:
    """{name: shape} of every parameter init_params makes (its names, in its order), without drawing any."""
    G, H = GATES[cell], hidden
    shapes = {"encoder.weight": (vocab_size, emsize)}
    for layer in range(layers):
        n_in = emsize if layer == 0 else H
        shapes.update({f"rnn.weight_ih_l{layer}": (G * H, n_in), f"rnn.weight_hh_l{layer}": (G * H, H),
                       f"rnn.bias_ih_l{layer}": (G * H,), f"rnn.bias_hh_l{layer}": (G * H,)})
    if not tied:
        shapes["decoder.weight"] = (vocab_size, hidden)
    shapes["decoder.bias"] = (vocab_size,)
    return shapes


def init_params(cell: str, vocab_size: int, emsize: int, hidden: int, layers: int, tied: bool,
                init: str = "default", recurrent_scale: float = 1.0, forget_bias: float = 0.0,
                rng: np.random.Generator | None = None, dtype="float64") -> dict[str, np.ndarray]:
    """All parameters of the model, PyTorch word_language_model names and shapes.

    - default: every recurrent weight and bias uniform ±1/sqrt(H) (nn.RNN/LSTM/GRU);
    - xavier: W_ih and W_hh Glorot-uniform per gate block, biases 0;
    - orthogonal: W_hh an orthogonal matrix per gate block, W_ih Glorot per block, biases 0;
    - identity (IRNN, Le et al. 2015): W_hh = I per gate block, biases 0, W_ih as default.
    Encoder and decoder weights are uniform ±0.1, decoder bias 0 (pytorch/examples),
    whatever the scheme. Then lstm's forget_bias is added to bias_ih's forget
    slice, and recurrent_scale multiplies every W_hh.
    """
    if init not in INITS:
        raise ModelConfigError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    if cell not in GATES:
        raise ModelConfigError(f"unknown cell {cell!r}; choose rnn, lstm or gru")
    rng = rng if rng is not None else np.random.default_rng(0)
    G, H = GATES[cell], hidden
    p = {"encoder.weight": rng.uniform(-0.1, 0.1, (vocab_size, emsize))}
    k = 1.0 / np.sqrt(H)
    for layer in range(layers):
        n_in = emsize if layer == 0 else H
        sfx = f"_l{layer}"
        if init == "default" or init == "identity":
            W_ih = rng.uniform(-k, k, (G * H, n_in))
        else:
            W_ih = np.concatenate([_xavier(rng, H, n_in) for _ in range(G)])
        if init == "default":
            W_hh = rng.uniform(-k, k, (G * H, H))
        elif init == "xavier":
            W_hh = np.concatenate([_xavier(rng, H, H) for _ in range(G)])
        elif init == "orthogonal":
            W_hh = np.concatenate([orthogonal(rng, H, H) for _ in range(G)])
        else:
            W_hh = np.concatenate([np.eye(H) for _ in range(G)])
        if init == "default":
            b_ih = rng.uniform(-k, k, G * H)
            b_hh = rng.uniform(-k, k, G * H)
        else:
            b_ih = np.zeros(G * H)
            b_hh = np.zeros(G * H)
        if cell == "lstm":
            b_ih[H:2 * H] += forget_bias
        W_hh *= recurrent_scale
        p["rnn.weight_ih" + sfx] = W_ih
        p["rnn.weight_hh" + sfx] = W_hh
        p["rnn.bias_ih" + sfx] = b_ih
        p["rnn.bias_hh" + sfx] = b_hh
    if not tied:
        p["decoder.weight"] = rng.uniform(-0.1, 0.1, (vocab_size, hidden))
    p["decoder.bias"] = np.zeros(vocab_size)
    return {name: np.ascontiguousarray(a, dtype=dtype) for name, a in p.items()}
