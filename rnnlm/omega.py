"""The Pascanu, Mikolov & Bengio (2013) regularizer Ω for vanilla RNNs, and its W_hh gradient.

Legend: T = BPTT steps, B = batch, H = hidden size, L = layers, N = T*B.
Arrays are time-major; row-vector convention as in rnn.py (z = ... + h_prev · W_hhᵀ).

Ω asks the backpropagated gradient to keep its norm from one step to the previous:

    Ω = mean_b Σ_k ( ‖δ_{k+1} · ∂h_{k+1}/∂h_k‖ / ‖δ_{k+1}‖ − 1 )²,     δ_{k+1} = ∂L/∂h_{k+1}

summed over layers, each layer with its own W_hh. For h_{k+1} = f(z_{k+1}),
z_{k+1} = W_ih x + b_ih + W_hh h_k + b_hh:

    u_k = δ_{k+1} ⊙ f'(z_{k+1})          (what the backward calls dz)
    v_k = u_k · W_hh                      (= δ_{k+1} · ∂h_{k+1}/∂h_k, a row vector)
    r_k = ‖v_k‖ / ‖δ_{k+1}‖,             Ω term = (r_k − 1)²

Following the paper, δ and f' are held constant ("immediate derivative"):
only the W_hh inside v_k is differentiated, which gives

    dΩ/dW_hh = mean_b Σ_k 2 (r_k − 1) / ‖δ_{k+1}‖ · u_kᵀ (v_k / ‖v_k‖)      (H, H), an outer product

(with PyTorch's layout: v_j = Σ_i u_i W_hh[i, j], so d‖v‖/dW_hh[i, j] = u_i v_j / ‖v‖).

The k run over the T steps of the window, k = 0..T−1 (the step from the
carried state h_0 to h_1 included). In BPTTResult arrays, with t = k:
δ_{k+1} = dhs[layer][t] (the *total* gradient wrt the state after step t:
the output path plus the recurrent path from step t+1) and f' comes from
h_{k+1} = hs[layer][t] (activations' derivatives are written in h).

Skipping rule: a term whose ‖δ_{k+1}‖ or ‖v_k‖ is below MIN_NORM (1e-12,
absolute) is left out of both Ω and its gradient; the ratio, or the direction
v/‖v‖, is then noise. This happens when no gradient reaches a step, or when
every unit of a ReLU layer is off at it (f' = 0, so v = 0). Typical training
δ norms are ~1e-3 (the loss is a mean over T·B tokens), far above it.

Public API:
    fprime_from_h(h, act) -> f'(z) as an array like h
    omega_layer(dhs, hs, W_hh, act) -> OmegaLayer(omega, dW_hh, used, skipped)
    omega_and_grad(model, bptt_result, alpha=1.0) -> (omega, {"rnn.weight_hh_l{k}": alpha * dΩ/dW_hh})

The one thing to know before editing: Ω is a *function of W_hh with δ and f'
frozen*; the finite-difference tests perturb W_hh only inside omega_layer,
never rerunning BPTT, and that is the definition the gradient matches.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import fprime as fprime_from_h   # f'(z) in h = f(z); re-exported under its old name
from .errors import UserError

MIN_NORM = 1e-12   # terms with ‖δ_{k+1}‖ or ‖v_k‖ below this are skipped (see the module docstring)


class OmegaLayer(NamedTuple):
    omega: float         # Ω of one layer: mean over the batch of the sum over the T steps
    dW_hh: np.ndarray    # (H, H) dΩ/dW_hh, δ and f' held constant
    used: int            # (t, b) terms included
    skipped: int         # (t, b) terms left out by the MIN_NORM rule


def omega_layer(dhs: np.ndarray, hs: np.ndarray, W_hh: np.ndarray, act) -> OmegaLayer:
    """Ω and dΩ/dW_hh of one vanilla-RNN layer.

    dhs (T, B, H): δ, the total gradient wrt the state after each step (BPTTResult.dhs[layer]);
    hs (T, B, H): the states after each step (BPTTResult.hs[layer]); W_hh (H, H).
    Computed in the dtype of dhs.
    """
    T, B, H = dhs.shape
    delta = dhs.reshape(T * B, H)
    # forward: h_{k+1} = f(z_{k+1});  backward: u = δ ⊙ f'(z)
    u = delta * fprime_from_h(hs.reshape(T * B, H), act)
    # forward: z_{k+1} = ... + h_k · W_hhᵀ;  backward: δ_{k+1} ∂h_{k+1}/∂h_k = u · W_hh
    v = u @ W_hh
    delta_norm = np.sqrt(np.einsum("nh,nh->n", delta, delta))
    v_norm = np.sqrt(np.einsum("nh,nh->n", v, v))
    keep = (delta_norm >= MIN_NORM) & (v_norm >= MIN_NORM)
    # Skipped terms get a denominator of 1 and a zero coefficient: no 0/0 anywhere.
    safe_delta = np.where(keep, delta_norm, 1)
    safe_v = np.where(keep, v_norm, 1)
    r = v_norm / safe_delta
    excess = np.where(keep, r - 1, 0)
    omega = float(np.dot(excess, excess)) / B
    # d(r-1)^2/dW_hh = 2 (r-1) / ‖δ‖ · d‖v‖/dW_hh,  d‖v‖/dW_hh[i, j] = u_i v_j / ‖v‖
    coef = (2 * excess / (safe_delta * safe_v)).astype(dhs.dtype)
    dW_hh = (u * coef[:, None]).T @ v / B
    used = int(keep.sum())
    return OmegaLayer(omega, dW_hh, used, T * B - used)


def omega_and_grad(model, bptt_result, alpha: float = 1.0) -> tuple[float, dict]:
    """Ω of a vanilla-RNN model over one BPTT window, and alpha · dΩ/dW_hh per layer.

    model: an RNNModel with cell "rnn"; bptt_result: what model.bptt(...)
    returned for that window (its hs and dhs). Returns (omega, grads) where
    omega is the unweighted Ω summed over layers (what metrics log) and grads
    maps "rnn.weight_hh_l{k}" to alpha · dΩ/dW_hh, ready to add to the loss
    gradients before clipping. UserError for lstm/gru models.
    """
    if model.config.cell != "rnn":
        raise UserError(f"the Ω regularizer (--omega) is for vanilla RNNs (--cell rnn), "
                        f"not --cell {model.config.cell}")
    if bptt_result.dhs is None or bptt_result.hs is None:
        raise ValueError("omega_and_grad needs model.bptt(...)'s result (hs and dhs), not loss_and_grads'")
    omega, grads = 0.0, {}
    for layer in range(model.config.layers):
        name = f"rnn.weight_hh_l{layer}"
        W_hh = model.params[name]
        r = omega_layer(bptt_result.dhs[layer], bptt_result.hs[layer], W_hh, model.act)
        omega += r.omega
        grads[name] = (alpha * r.dW_hh).astype(W_hh.dtype, copy=False)
    return omega, grads
