"""The cell registry: one interface over rnn.py, lstm.py and gru.py.

Legend: T = BPTT steps, B = batch, E = input size (embedding or the layer
below), H = hidden size, G = gate blocks, S = state size (H; 2H for the
LSTM's (h, c)), K = steps asked for. Arrays are time-major.

    cell = CELLS["lstm"]
    cache = cell.forward(cell.alloc(T, B, E, H, dtype), x, state0, weights, act, plan)
    cell.backward(dx, dweights, dstate0, dhs, dh_out, scratch, cache, weights, act, plan)
    A, dsdx = cell.step_jacobian(cache, t, b, W_ih, W_hh, act, with_input)

Every cell module defines the same names (GATES, STATES, alloc,
scratch_shapes, forward, backward, step_jacobian, jacobian_advance) with the
same arguments; a cell that has no use for one (act outside the vanilla RNN)
takes it and ignores it. The model (training,
eval, generation) and the Jacobian instrument (float64, from the model's own
caches) dispatch through this table only.

The one thing to know before editing: a new cell is a module with those
names, one line here, its parameters in init.py, and its tests (the naive
step in tests/naive.py, its gradcheck and its step Jacobian against finite
differences in tests/test_jacobian.py).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from . import gru, lstm, rnn


class Cell(NamedTuple):
    name: str                   # rnn | lstm | gru
    gates: tuple                # names of the G blocks of W_ih, W_hh, b_ih, b_hh, in order ("" for the rnn's one)
    states: tuple               # what a layer carries between steps, each (B, H): ("h",) or ("h", "c")
    alloc: Callable             # (T, B, E, H, dtype) -> empty cache (a NamedTuple; its x is set by forward)
    scratch_shapes: Callable    # (T, B, H) -> {name: shape} of the backward's scratch buffers
    forward: Callable           # (cache, x (T,B,E), state0, weights, act, plan) -> cache with x set
    #                             state0: per state (B, H); weights: (W_ih, W_hh, b_ih, b_hh);
    #                             act: an Activation; plan: a paths.Plan
    backward: Callable          # (dx, dweights, dstate0, dhs, dh_out, scratch, cache, weights, act, plan)
    #                             accumulates into dweights (dW_ih, dW_hh, db_ih, db_hh) and dstate0 (per
    #                             state, (B, H)); writes dx (T,B,E) unless None, dhs (T,B,H) = dL/dh after
    #                             each step; dh_out (T,B,H): the gradient arriving from above
    step_jacobian: Callable     # (cache, t (K,), b, W_ih, W_hh, act, with_input) -> (A (K,S,S), ds/dx (K,S,E) | None)
    #                             A = ds_{t+1}/ds_t of batch row b, s = h or (h, c); float64 caches
    jacobian_advance: Callable  # (J (K,S',S), cache, t (K,), b, W_hh, act, spare dict) -> J · A_t (K,S',S)


def _cell(name, module) -> Cell:
    return Cell(name, module.GATES, module.STATES, module.alloc, module.scratch_shapes, module.forward,
                module.backward, module.step_jacobian, module.jacobian_advance)


CELLS = {"rnn": _cell("rnn", rnn), "lstm": _cell("lstm", lstm), "gru": _cell("gru", gru)}
