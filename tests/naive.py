"""A slow, obvious NumPy reference of the cells and the whole model (forward and loss only).

Written separately from the package on purpose: no imports from rnnlm, one
time step and one example at a time, the equations of the PyTorch docs
spelled out. Only used by the tests to check the kernels' forward and loss.
"""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def activation(spec):
    """The function named by an activation string, written out independently."""
    if spec == "tanh":
        return np.tanh
    if spec == "relu":
        return lambda z: np.where(z > 0, z, 0.0)
    if spec == "sigmoid":
        return sigmoid
    if spec.startswith("tanh:"):
        n = float(spec.split(":")[1])
        return lambda z: np.tanh(n * z)
    if spec.startswith("scaled-tanh:"):
        a, b = (float(v) for v in spec.split(":")[1].split(","))
        return lambda z: a * np.tanh(b * z)
    raise ValueError(spec)


def rnn_step(x, h, W_ih, W_hh, b_ih, b_hh, f):
    """One example: x (E,), h (H,) -> h'."""
    return f(W_ih @ x + b_ih + W_hh @ h + b_hh)


def lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[0]
    a = W_ih @ x + b_ih + W_hh @ h + b_hh
    i = sigmoid(a[0:H])
    f = sigmoid(a[H:2 * H])
    g = np.tanh(a[2 * H:3 * H])
    o = sigmoid(a[3 * H:4 * H])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def gru_step(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[0]
    gi = W_ih @ x + b_ih
    gh = W_hh @ h + b_hh
    r = sigmoid(gi[0:H] + gh[0:H])
    z = sigmoid(gi[H:2 * H] + gh[H:2 * H])
    n = np.tanh(gi[2 * H:3 * H] + r * gh[2 * H:3 * H])
    return (1 - z) * n + z * h


def model_forward(params, cell, activation_spec, layers, tied, inputs, state, masks=None):
    """Hidden outputs of the top layer and the final state, all in float64.

    params: PyTorch names; inputs (T, B) ints; state: (h,) or (h, c), each (L, B, H);
    masks: None or [emb (T,B,E), layer outputs (T,B,H) ...] multiplied in.
    Returns (top (T, B, H), per-layer outputs list, final state tuple).
    """
    P = {k: np.asarray(v, np.float64) for k, v in params.items()}
    T, B = inputs.shape
    f = activation(activation_spec)
    h = np.array(state[0], np.float64)
    c = np.array(state[1], np.float64) if cell == "lstm" else None
    xs = np.stack([[P["encoder.weight"][inputs[t, b]] for b in range(B)] for t in range(T)])
    if masks is not None:
        xs = xs * masks[0]
    outs = []
    for layer in range(layers):
        W_ih, W_hh = P[f"rnn.weight_ih_l{layer}"], P[f"rnn.weight_hh_l{layer}"]
        b_ih, b_hh = P[f"rnn.bias_ih_l{layer}"], P[f"rnn.bias_hh_l{layer}"]
        ys = np.zeros((T, B, h.shape[2]))
        for b in range(B):
            hb = h[layer, b].copy()
            cb = c[layer, b].copy() if c is not None else None
            for t in range(T):
                if cell == "rnn":
                    hb = rnn_step(xs[t, b], hb, W_ih, W_hh, b_ih, b_hh, f)
                elif cell == "lstm":
                    hb, cb = lstm_step(xs[t, b], hb, cb, W_ih, W_hh, b_ih, b_hh)
                else:
                    hb = gru_step(xs[t, b], hb, W_ih, W_hh, b_ih, b_hh)
                ys[t, b] = hb
            h[layer, b] = hb
            if c is not None:
                c[layer, b] = cb
        outs.append(ys)
        xs = ys if masks is None else ys * masks[layer + 1]
    final = (h, c) if cell == "lstm" else (h,)
    return xs, outs, final


def model_loss(params, cell, activation_spec, layers, tied, inputs, targets, state, masks=None):
    """Mean cross-entropy in nats over all T*B positions, and the final state."""
    top, _, final = model_forward(params, cell, activation_spec, layers, tied, inputs, state, masks)
    W = np.asarray(params["encoder.weight" if tied else "decoder.weight"], np.float64)
    bias = np.asarray(params["decoder.bias"], np.float64)
    T, B = inputs.shape
    total = 0.0
    for t in range(T):
        for b in range(B):
            z = W @ top[t, b] + bias
            m = z.max()
            total += m + np.log(np.exp(z - m).sum()) - z[targets[t, b]]
    return total / (T * B), final
