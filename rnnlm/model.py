"""The language model: Embedding → L recurrent layers → dropout → Linear → softmax cross-entropy.

Legend: T = BPTT steps, B = batch, E = embedding size, H = hidden size,
V = vocabulary, L = layers, N = T*B. Arrays are time-major.

Parameter names and shapes are those of pytorch/examples' word_language_model
RNNModel, so weights move between the projects unchanged. Dropout (inverted,
as nn.Dropout) is applied to the embedding output, between layers and to the
last layer's output, each with its own mask.

The one thing to know before editing: a model keeps a *workspace* of forward
caches and scratch buffers per (T, B) shape and reuses it on every call (no
big allocations or zero-fills in a training step). Anything pointing into the
workspace is overwritten by the next call; whatever a public method returns
(loss, grads, states, `bptt` extras) is a fresh array, safe to keep, except
`train_grads`'s gradients: the training step's, in buffers the model keeps
(`_GradBuffers`) and overwrites on its next call.
Each workspace also carries its `paths.Plan`, the fast paths its steps take,
decided once when it is allocated. The layers go through the cell registry
(cells.CELLS): nothing here knows which cell it runs, except that the
overlapped path (overlap.py) exists only for the LSTM.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, replace
from functools import partial
from typing import NamedTuple

import numpy as np

from . import layers, overlap, paths
from .activations import ModelConfigError, parse_activation
from .cells import CELLS
from .config import ModelConfig  # noqa: F401  (re-export: the class lives in config.py)
from .init import GATES, init_params, param_shapes

_WORKSPACES = 3   # (T, B) shapes kept per model: training window, last short window, step


class ForwardResult(NamedTuple):
    hs: list        # per layer (T, B, H): the layer's outputs h_1..h_T (before dropout)
    caches: list    # per layer: the cell's cache (RNNCache / LSTMCache / GRUCache)
    state: tuple    # final state, (h,) or (h, c), each (L, B, H)


class BPTTResult(NamedTuple):
    loss: float     # mean nats/token over T*B positions (weighted: Σ w·nll / Σ w)
    grads: dict     # name -> gradient, keyed like params
    state: tuple    # final state (detached copy)
    hs: list        # per layer (T, B, H) outputs h_1..h_T
    dhs: list       # per layer (T, B, H): dL/dh_t, the state after step t (t = 1..T)
    dstate0: tuple  # (dh0,) or (dh0, dc0), each (L, B, H): gradient of the initial state


class StepGrads(NamedTuple):
    loss: float     # mean nats/token over T*B positions
    grads: dict     # name -> gradient, keyed like params: the model's buffers (decoder.bias: a fresh
                    # (V,) sum), overwritten by the next call
    state: tuple    # final state (a fresh copy)
    grad_rows: dict  # name -> sorted unique rows (int64) outside which that gradient is zero
                     # (the untied embedding's: the token ids of the window); {} when tied


class _GradBuffers:
    """The gradient arrays of train_grads, allocated on first use and kept: a training
    step then neither allocates nor zero-fills the (V, E) and (V, H) gradients (at
    V = 30000, H = 512 a fresh pair cost 10-20 ms of page faults per step, measured).
    The embedding's gradient is zero outside `rows`, the rows written by the last
    call; the next call clears only those before its scatter-add."""

    def __init__(self):
        self.arrays = {}
        self.rows = None            # sorted unique rows the last call wrote into encoder.weight's gradient

    def get(self, name, shape, dtype, zero=False):
        a = self.arrays.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = self.arrays[name] = np.zeros(shape, dtype)
            if name == "encoder.weight":
                self.rows = None
        elif zero:
            a.fill(0)
        return a


class _Workspace:
    """Named scratch buffers for one (T, B) shape, allocated on first use, and the
    fast paths its steps take (paths.Plan, decided once here)."""

    def __init__(self, plan: paths.Plan):
        self.buffers = {}
        self.plan = plan

    def get(self, name, shape, dtype):
        a = self.buffers.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = self.buffers[name] = np.empty(shape, dtype)
        return a


class RNNModel:
    """Word-level language model with hand-written BPTT (see the module docstring).

    model = RNNModel(config, seed=0)  weights drawn from seed (config.init's scheme)
    RNNModel(config, params=d)        d's arrays used as they are, not copied (PyTorch names, init.param_shapes'
                                      shapes, C-contiguous config.dtype; ValueError otherwise): to copy
                                      weights in, build the model and call model.load_state_dict(d)
    model.params                      dict name -> ndarray (PyTorch names); updated in place by optimizers
    model.init_state(B)               zeros, (h,) or (h, c), each (L, B, H)
    model.loss_and_grads(inputs, targets, state, rng=None, masks=None, weights=None) -> (loss, grads, state)
    model.bptt(...)                   same, plus per-step hidden states and state gradients
    model.loss(inputs, targets, state, weights=None) -> (loss, state)
                                      weights (T, B): per-position loss weights (the learnability
                                      tasks); None = the plain mean, on the fused kernels
    model.step_logprobs(tokens, state) -> (logp (B, V), state)
    model.forward_states(inputs, state, masks=None) -> ForwardResult
    model.draw_masks(T, B, rng)       dropout masks to pass as masks= (fixed-mask gradcheck)
    model.state_dict() / model.load_state_dict(d)
    model.to_dtype("float64")         a converted copy
    model.checkpoint_step             the training step of the checkpoint runs.load_model read it from
                                      (None: made in code, or a checkpoint without one)
    """

    checkpoint_step: int | None = None

    def __init__(self, config: ModelConfig, seed: int = 0, params: dict | None = None):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"RNNModel: config must be a ModelConfig, got {type(config).__name__}: "
                            f"RNNModel(ModelConfig(vocab_size=V, ...))")
        config.validate()
        from .settings import check_range
        if seed is None:        # (None would draw fresh weights each time: give a seed, or params=)
            raise TypeError("RNNModel: seed must be an int >= 0 (the weights' draw), got None")
        check_range("seed", seed, ModelConfigError, label="seed")
        self.config = config
        self.dtype = np.dtype(config.dtype)
        self.act = parse_activation(config.activation)
        self.gates = GATES[config.cell]
        self.cell = CELLS[config.cell]
        # what every parameter must be and stay (the kernels read C-contiguous arrays of the model dtype,
        # without bounds checks): _check_params compares against it, so an array given or replaced by hand
        # is a ValueError, not Numba's error, a read past its end or a crash
        self._param_spec = {k: (shape, self.dtype) for k, shape in param_shapes(
            config.cell, config.vocab_size, config.emsize, config.hidden, config.layers, config.tied).items()}
        if params is None:
            params = init_params(config.cell, config.vocab_size, config.emsize, config.hidden,
                                 config.layers, config.tied, config.init, config.recurrent_scale,
                                 config.forget_bias, np.random.default_rng(seed), config.dtype)
        elif not isinstance(params, Mapping) or set(params) != set(self._param_spec):
            got = (f"names {', '.join(map(str, params))}" if isinstance(params, Mapping)
                   else type(params).__name__)
            raise ValueError(f"RNNModel: params must be a dict holding exactly this config's parameters "
                             f"({', '.join(self._param_spec)}), got {got}; load weights into a built model "
                             "with model.load_state_dict(d)")
        self.params = params
        self._check_params()
        self._workspaces = OrderedDict()
        self._grad_buffers = _GradBuffers()

    # ------------------------------------------------------------ small helpers

    @property
    def n_state(self) -> int:
        return len(self.cell.states)

    def num_params(self) -> int:
        """The number of weights (every array in `params`; a tied decoder counted once, as the encoder)."""
        return int(sum(p.size for p in self.params.values()))

    def _decoder_weight(self):
        return self.params["encoder.weight" if self.config.tied else "decoder.weight"]

    def _layer_weights(self, layer):
        p, s = self.params, f"_l{layer}"
        return p["rnn.weight_ih" + s], p["rnn.weight_hh" + s], p["rnn.bias_ih" + s], p["rnn.bias_hh" + s]

    def _workspace(self, T, B) -> _Workspace:
        key = (T, B)
        ws = self._workspaces.pop(key, None)
        if ws is None:
            ws = _Workspace(paths.plan(self.config.cell, self.config.hidden))
            while len(self._workspaces) >= _WORKSPACES:
                self._workspaces.popitem(last=False)
        self._workspaces[key] = ws
        return ws

    def _check_ids(self, ids, what, ndim):
        a = np.asarray(ids)
        if a.ndim != ndim or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{what} must be a non-empty {ndim}-D integer array, got shape {a.shape} dtype {a.dtype}")
        lo, hi = a.min(), a.max()
        if lo < 0 or hi >= self.config.vocab_size:
            raise ValueError(f"{what} has token ids outside [0, {self.config.vocab_size}): min {lo}, max {hi}")
        return np.ascontiguousarray(a, dtype=np.int64)

    def _check_params(self):
        """ValueError when an entry of self.params was replaced by an array the kernels cannot read (another
        shape, dtype or memory order), naming it and how to assign it; in-place updates always pass."""
        for name, (shape, dtype) in self._param_spec.items():
            a = self.params.get(name)
            if a is None:
                raise ValueError(f"params[{name!r}] is missing; the model needs every parameter it was "
                                 f"built with ({', '.join(self._param_spec)})")
            if (not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype
                    or not a.flags.c_contiguous):
                got = (f"shape {a.shape}, dtype {a.dtype}{'' if a.flags.c_contiguous else ', not C-contiguous'}"
                       if isinstance(a, np.ndarray) else type(a).__name__)
                raise ValueError(f"params[{name!r}] must be a C-contiguous {dtype} array of shape {shape}, got "
                                 f"{got}: assign np.ascontiguousarray(a, dtype=np.{dtype}), or write into it "
                                 f"with params[{name!r}][...] = a")

    def _check_state(self, state, B):
        L, H = self.config.layers, self.config.hidden
        if state is None:
            return self.init_state(B)
        if not isinstance(state, (tuple, list)) or len(state) != self.n_state:
            raise ValueError(f"state must be a tuple of {self.n_state} array(s) of shape {(L, B, H)}")
        out = []
        for s in state:
            s = np.asarray(s)
            if s.shape != (L, B, H):
                raise ValueError(f"state arrays must have shape {(L, B, H)}, got {s.shape}")
            out.append(np.ascontiguousarray(s, dtype=self.dtype))
        return tuple(out)

    def init_state(self, batch_size: int) -> tuple:
        """Zero initial state: (h,) for rnn/gru, (h, c) for lstm; each (L, B, H) in the model dtype.
        TypeError for a batch size that is not an int, ValueError for one below 1."""
        from .argcheck import check_int
        batch_size = check_int(batch_size, "batch_size", "init_state", lo=1)
        shape = (self.config.layers, batch_size, self.config.hidden)
        return tuple(np.zeros(shape, self.dtype) for _ in range(self.n_state))

    def draw_masks(self, T: int, B: int, rng: np.random.Generator) -> list | None:
        """Inverted-dropout masks (values 0 or 1/(1-p)) for one window, or None when dropout is 0.

        masks[0] (T, B, E) is on the embedding output, masks[l+1] (T, B, H) on layer l's output.
        Draws in that order from rng.
        """
        p = self.config.dropout
        if p == 0.0:
            return None
        from .argcheck import check_generator
        check_generator(rng, "draw_masks")
        keep = 1.0 / (1.0 - p)
        shapes = [(T, B, self.config.emsize)] + [(T, B, self.config.hidden)] * self.config.layers
        return [((rng.random(s) >= p) * keep).astype(self.dtype) for s in shapes]

    def _check_masks(self, masks, T, B):
        if masks is None:
            return None
        shapes = [(T, B, self.config.emsize)] + [(T, B, self.config.hidden)] * self.config.layers
        if len(masks) != len(shapes) or any(np.shape(m) != s for m, s in zip(masks, shapes)):
            raise ValueError(f"masks must be {len(shapes)} arrays of shapes {shapes}")
        return [np.ascontiguousarray(m, dtype=self.dtype) for m in masks]

    # ------------------------------------------------------------ forward

    def _forward(self, ids, state, masks, ws, n_layers=None):
        """Embedding and the first n_layers recurrent layers (default all); returns
        (their output, (T, B, H) or the embedding's (T, B, E), caches)."""
        cfg, dt = self.config, self.dtype
        T, B = ids.shape
        E, H = cfg.emsize, cfg.hidden
        emb = ws.get("emb", (T, B, E), dt)
        layers.embedding_forward(emb, ids, self.params["encoder.weight"])
        x = emb
        if masks is not None:
            x = ws.get("x0", (T, B, E), dt)
            np.multiply(emb, masks[0], out=x)
        caches = []
        cell = self.cell
        for layer in range(cfg.layers if n_layers is None else n_layers):
            key = f"cache{layer}"
            buf = ws.buffers.get(key) or cell.alloc(T, B, x.shape[2], H, dt)
            cache = cell.forward(buf, x, tuple(s[layer] for s in state), self._layer_weights(layer), self.act,
                                 ws.plan)
            ws.buffers[key] = cache
            caches.append(cache)
            x = cache.h[1:]
            if masks is not None:
                y = ws.get(f"x{layer + 1}", (T, B, H), dt)
                np.multiply(x, masks[layer + 1], out=y)
                x = y
        return x, caches

    def _forward_overlapped(self, ids, tgt, state, masks, ws, scratch, dtop, grads=True):
        """The forward with the top layer's serial LSTM recurrence overlapped with the
        output layer (overlap.py; when the plan says so): (loss, dbias, caches, x_top).
        dtop (N, H) receives dL/d(top output); grads=False: the loss only (dbias None).
        x_top: the top output after its dropout mask (None without masks: it is h)."""
        T, B = ids.shape
        L, H = self.config.layers, self.config.hidden
        x_in, caches = self._forward(ids, state, masks, ws, n_layers=L - 1)
        key = f"cache{L - 1}"
        buf = ws.buffers.get(key) or self.cell.alloc(T, B, x_in.shape[2], H, self.dtype)
        # forward: top = h_L * mask, as _forward's x{L}
        mask, x_top = (None, None) if masks is None else (masks[L], ws.get(f"x{L}", (T, B, H), self.dtype))
        cache, loss, dbias = overlap.lstm_forward_and_output(
            buf, x_in, tuple(s[L - 1] for s in state), self._layer_weights(L - 1),
            scratch, dtop, self._decoder_weight(), self.params["decoder.bias"], tgt, grads, mask, x_top)
        ws.buffers[key] = cache
        return loss, dbias, caches + [cache], x_top

    def _final_state(self, caches):
        return tuple(np.stack([getattr(c, name)[-1] for c in caches]) for name in self.cell.states)

    def _prepare(self, inputs, targets, state, masks, where: str, weights=None):
        """The arguments of the public method `where` checked (its name before each ValueError's text) and
        made contiguous: (ids, targets, state, masks, weights)."""
        try:
            self._check_params()
            ids = self._check_ids(inputs, "inputs", 2)
            T, B = ids.shape
            tgt = None
            if targets is not None:
                tgt = self._check_ids(targets, "targets", 2)
                if tgt.shape != ids.shape:
                    raise ValueError(f"targets shape {tgt.shape} != inputs shape {ids.shape}")
            w = None if weights is None else self._check_weights(weights, T, B)
            return ids, tgt, self._check_state(state, B), self._check_masks(masks, T, B), w
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def forward_states(self, inputs, state=None, masks=None) -> ForwardResult:
        """Per-layer hidden sequences and caches for inputs (T, B), in the model dtype.

        Everything returned is freshly allocated (not the workspace), so it can
        be kept and fed to the cell backward functions by the instruments.
        """
        ids, _, state, masks, _ = self._prepare(inputs, None, state, masks, "forward_states")
        _, caches = self._forward(ids, state, masks, _Workspace(paths.plan(self.config.cell, self.config.hidden)))
        return ForwardResult([c.h[1:] for c in caches], caches, self._final_state(caches))

    def loss(self, inputs, targets, state=None, masks=None, weights=None):
        """Mean cross-entropy (nats/token) of a window, no gradients -> (loss, state).

        No dropout unless explicit masks (from draw_masks) are given: the
        finite-difference gradcheck uses that to hold a mask fixed.
        weights (T, B) >= 0 with a positive sum: the loss is Σ w·nll / Σ w
        (layers.output_loss_weighted); None = the plain mean over T*B.
        """
        ids, tgt, state, masks, w = self._prepare(inputs, targets, state, masks, "loss", weights)
        T, B = ids.shape
        N, V, H = T * B, self.config.vocab_size, self.config.hidden
        ws = self._workspace(T, B)
        if weights is not None:
            top, caches = self._forward(ids, state, masks, ws)
            loss, _ = layers.output_loss_weighted(top.reshape(N, H), self._decoder_weight(),
                                                  self.params["decoder.bias"], tgt.reshape(N), w)
            return loss, self._final_state(caches)
        if ws.plan.overlapped:
            scratch = self._output_scratch(ws, N)
            dtop = ws.get("dtop", (T, B, H), self.dtype).reshape(N, H)
            loss, _, caches, _ = self._forward_overlapped(ids, tgt, state, masks, ws, scratch, dtop, grads=False)
            return loss, self._final_state(caches)
        top, caches = self._forward(ids, state, masks, ws)
        logits = ws.get("logits", (N, V), self.dtype)
        loss = layers.output_loss(logits, top.reshape(N, -1), self._decoder_weight(),
                                  self.params["decoder.bias"], tgt, ws.plan.output_blas)
        return loss, self._final_state(caches)

    def step_logprobs(self, tokens, state=None):
        """One step for generation: tokens (B,) -> (log-probabilities (B, V), state)."""
        try:
            self._check_params()
            ids = self._check_ids(tokens, "tokens", 1)[None, :]
            state = self._check_state(state, ids.shape[1])
        except ValueError as exc:
            raise ValueError(f"step_logprobs: {exc}") from None
        ws = self._workspace(1, ids.shape[1])
        top, caches = self._forward(ids, state, None, ws)
        logp = np.empty((ids.shape[1], self.config.vocab_size), self.dtype)
        layers.output_log_softmax(logp, top[0], self._decoder_weight(), self.params["decoder.bias"])
        return logp, self._final_state(caches)

    # ------------------------------------------------------------ backward

    def loss_and_grads(self, inputs, targets, state=None, rng=None, masks=None, weights=None):
        """Mean cross-entropy (nats/token: natural log, perplexity = e^loss) over the T*B positions, its
        gradients (name -> array shaped as the parameter, d loss / d param), and the final state.

        inputs, targets (T, B) int. state: from init_state or a previous call
        (treated as a constant: no gradient flows across windows). rng: a numpy
        Generator to draw dropout masks (None = no dropout); masks: explicit
        masks from draw_masks (overrides rng). weights (T, B) >= 0 with a
        positive sum: per-position loss weights, loss = Σ w·nll / Σ w (as
        PyTorch's CrossEntropyLoss with weights, a 0 acting as ignore_index);
        the output layer then runs layers.output_loss_weighted instead of the
        fused kernels (None, the default, is the language-model path, unchanged).
        Returns (loss, grads, state); grads and state are fresh arrays.
        Errors: ValueError for ids outside the vocabulary, shapes that disagree or a parameter array
        replaced by one of another shape or dtype; TypeError for an rng that is not a Generator.
        """
        r = self._bptt(inputs, targets, state, rng, masks, extras=False, weights=weights, where="loss_and_grads")
        return r.loss, r.grads, r.state

    def train_grads(self, inputs, targets, state=None, rng=None) -> StepGrads:
        """loss_and_grads for the training step (step.train_step), without its allocations.

        The gradients are arrays the model keeps and overwrites on the next call
        of train_grads (copy what must outlive it; decoder.bias is a fresh (V,)
        array); StepGrads.grad_rows names, for the untied embedding, the rows its
        gradient can be nonzero in (the window's token ids, sorted and unique), so
        that the norm and the SGD update read at most T·B rows instead of V
        (optim.grad_norm, Optimizer.step's rows). The same values as
        loss_and_grads, bit for bit.

        The one rule for callers: leave the embedding's gradient zero outside
        grad_rows. The next call clears only the rows this one wrote, so a value
        written elsewhere (weight decay added in place to the whole array, say)
        would stay in the next step's gradient; scaling it in place is fine.
        """
        r = self._bptt(inputs, targets, state, rng, None, extras=False, reuse=True, where="train_grads")
        rows = {} if self.config.tied else {"encoder.weight": self._grad_buffers.rows}
        return StepGrads(r.loss, r.grads, r.state, rows)

    def bptt(self, inputs, targets, state=None, rng=None, masks=None, weights=None) -> BPTTResult:
        """loss_and_grads plus hs, dhs per layer and the initial-state gradient (all fresh copies)."""
        return self._bptt(inputs, targets, state, rng, masks, extras=True, weights=weights, where="bptt")

    def _check_weights(self, weights, T, B):
        w = np.asarray(weights)
        if w.shape != (T, B):
            raise ValueError(f"weights must have the inputs' shape {(T, B)}, got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
            raise ValueError("weights must be finite, >= 0, with a positive sum")
        return np.ascontiguousarray(w, dtype=self.dtype).reshape(T * B)

    def _forward_and_output_weighted(self, ids, tgt, state, masks, ws, w, dtop, dW_dec):
        """_forward_and_output with per-position loss weights w (N,): the plain forward
        (never the overlapped one) and layers.output_loss_weighted."""
        N, H = dtop.shape
        top, caches = self._forward(ids, state, masks, ws)
        loss, ddec_b = layers.output_loss_weighted(top.reshape(N, H), self._decoder_weight(),
                                                   self.params["decoder.bias"], tgt.reshape(N), w, dtop, dW_dec)
        return loss, ddec_b, caches, self.cell.backward

    def _output_scratch(self, ws, N):
        """The output layer's scratch buffers in ws (layers.output_scratch_shapes, as the plan says)."""
        shapes = layers.output_scratch_shapes(N, self.config.vocab_size, self.config.hidden, ws.plan.dW_transposed,
                                              ws.plan.output_blas)
        return {name: ws.get(name, shape, self.dtype) for name, shape in shapes.items()}

    def _forward_and_output(self, ids, tgt, state, masks, ws, scratch, dtop, dW_dec):
        """The forward and the output layer's loss and gradients, on the plan's path:
        (loss, dbias, caches, top_backward). dtop (N, H) receives dL/d(top output) (before
        the top dropout mask's backward); dW_dec (V, H) the decoder's gradient, written here
        or by top_backward, the top layer's backward (with cells.Cell.backward's arguments)."""
        N, H = dtop.shape
        if ws.plan.overlapped:
            loss, ddec_b, caches, x_top = self._forward_overlapped(ids, tgt, state, masks, ws, scratch, dtop)
            return loss, ddec_b, caches, partial(overlap.lstm_backward_and_output_dW, scratch, dW_dec, x_top)
        top, caches = self._forward(ids, state, masks, ws)
        # output layer: logits, softmax cross-entropy and the three gradients, one fused kernel
        loss, ddec_b = layers.output_loss_and_grads(scratch, dtop, dW_dec, top.reshape(N, H), self._decoder_weight(),
                                                    self.params["decoder.bias"], tgt, ws.plan.dW_transposed,
                                                    ws.plan.output_blas)
        return loss, ddec_b, caches, self.cell.backward

    def _bptt(self, inputs, targets, state, rng, masks, extras, weights=None, reuse=False, where="bptt"):
        """reuse: the gradients in self._grad_buffers (train_grads) instead of fresh arrays; where: the
        public method called (named in the errors of its arguments)."""
        cfg, dt, P, cell = self.config, self.dtype, self.params, self.cell
        buffers = self._grad_buffers if reuse else None
        ids, tgt, state, masks, w = self._prepare(inputs, targets, state, masks, where, weights)
        T, B = ids.shape
        N, V, E, H = T * B, cfg.vocab_size, cfg.emsize, cfg.hidden
        if masks is None and rng is not None:
            from .argcheck import check_generator
            check_generator(rng, where, or_none="no dropout")
            masks = self.draw_masks(T, B, rng)
        ws = self._workspace(T, B)
        scratch = self._output_scratch(ws, N)
        dtop = ws.get("dtop", (T, B, H), dt)
        if reuse and not cfg.tied:
            dW_dec = buffers.get("decoder.weight", (V, H), dt)
        elif reuse:
            dW_dec = buffers.get("encoder.weight", (V, H), dt)
        else:
            dW_dec = np.empty((V, H), dt)
        if weights is None:
            loss, ddec_b, caches, top_backward = self._forward_and_output(ids, tgt, state, masks, ws, scratch,
                                                                          dtop.reshape(N, H), dW_dec)
        else:
            loss, ddec_b, caches, top_backward = self._forward_and_output_weighted(
                ids, tgt, state, masks, ws, w, dtop.reshape(N, H), dW_dec)
        grads = {"decoder.bias": ddec_b}
        if masks is not None:
            # forward: top = h_L * mask
            dtop *= masks[cfg.layers]

        dstate0 = tuple(np.zeros((cfg.layers, B, H), dt) for _ in range(self.n_state))
        dh_out = dtop
        dhs_all = [None] * cfg.layers
        for layer in range(cfg.layers - 1, -1, -1):
            weights = self._layer_weights(layer)
            s = f"_l{layer}"
            if reuse:
                dweights = tuple(buffers.get(n + s, w.shape, dt, zero=True)
                                 for n, w in zip(("rnn.weight_ih", "rnn.weight_hh", "rnn.bias_ih", "rnn.bias_hh"),
                                                 weights))
            else:
                dweights = tuple(np.zeros_like(w) for w in weights)
            dx = ws.get(f"dx{layer}", (T, B, weights[0].shape[1]), dt)
            dhs = ws.get(f"dhs{layer}", (T, B, H), dt)
            cell_scratch = {name: ws.get(f"{name}{layer}", shape, dt)
                            for name, shape in cell.scratch_shapes(T, B, H).items()}
            backward = top_backward if layer == cfg.layers - 1 else cell.backward
            backward(dx, dweights, tuple(d[layer] for d in dstate0), dhs, dh_out, cell_scratch, caches[layer],
                     weights, self.act, ws.plan)
            grads["rnn.weight_ih" + s], grads["rnn.weight_hh" + s] = dweights[0], dweights[1]
            grads["rnn.bias_ih" + s], grads["rnn.bias_hh" + s] = dweights[2], dweights[3]
            dhs_all[layer] = dhs
            if masks is not None:
                # forward: x_layer = (embedding or h of the layer below) * mask
                dx *= masks[layer]
            dh_out = dx

        # forward: emb = encoder.weight[ids]; tied: logits also used encoder.weight
        if cfg.tied:
            dW_enc = dW_dec
        elif reuse:
            # the buffer is zero outside the rows the last call wrote: clear those, then scatter
            dW_enc = buffers.get("encoder.weight", (V, E), dt)
            if buffers.rows is not None:
                layers.clear_rows(dW_enc, buffers.rows)
            buffers.rows = np.unique(ids)
            grads["decoder.weight"] = dW_dec
        else:
            dW_enc = np.zeros((V, E), dt)
            grads["decoder.weight"] = dW_dec
        layers.embedding_backward(dW_enc, dh_out, ids)
        grads["encoder.weight"] = dW_enc
        grads = {name: grads[name] for name in P}   # params order
        final = self._final_state(caches)
        if not extras:
            return BPTTResult(loss, grads, final, None, None, dstate0)
        return BPTTResult(loss, grads, final, [c.h[1:].copy() for c in caches],
                          [d.copy() for d in dhs_all], dstate0)

    # ------------------------------------------------------------ parameters

    def state_dict(self) -> dict:
        """Copies of all parameters, PyTorch names; a tied model also writes decoder.weight."""
        d = {name: a.copy() for name, a in self.params.items()}
        if self.config.tied:
            d["decoder.weight"] = self.params["encoder.weight"].copy()
        return d

    def load_state_dict(self, d: dict) -> None:
        """Copy parameters in (cast to the model dtype); checks names and shapes first.

        A tied model accepts a decoder.weight entry only if it equals encoder.weight.
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"load_state_dict: d must be a dict of name -> array (state_dict()'s, a checkpoint's "
                            f"model arrays), got {type(d).__name__}")
        d = dict(d)
        if self.config.tied and "decoder.weight" in d:
            dec = np.asarray(d.pop("decoder.weight"))
            if "encoder.weight" in d and not np.array_equal(dec, np.asarray(d["encoder.weight"])):
                raise ModelConfigError("tied model: decoder.weight differs from encoder.weight in the state dict")
        missing = sorted(set(self.params) - set(d))
        unexpected = sorted(set(d) - set(self.params))
        if missing or unexpected:
            raise ModelConfigError(f"state dict does not match the model ({self.config.cell}, "
                                   f"{self.config.layers} layer(s), tied={self.config.tied}): "
                                   f"missing {missing}, unexpected {unexpected}")
        for name, p in self.params.items():
            a = np.asarray(d[name])
            if a.shape != p.shape:
                raise ModelConfigError(f"state dict entry {name}: shape {a.shape}, model expects {p.shape}")
            if not np.issubdtype(a.dtype, np.floating):
                raise ModelConfigError(f"state dict entry {name}: must be floats, got {a.dtype}")
            if not np.all(np.isfinite(a)):
                bad = int(a.size - np.count_nonzero(np.isfinite(a)))
                raise ModelConfigError(f"state dict entry {name}: {bad:,} of its {a.size:,} values are not "
                                       f"finite (nan or inf): these weights diverged or the file is damaged")
        for name, p in self.params.items():
            p[...] = np.asarray(d[name])

    def to_dtype(self, dtype: str) -> "RNNModel":
        """A copy of this model with parameters cast to dtype ("float32" or "float64")."""
        cfg = replace(self.config, dtype=str(np.dtype(dtype)))
        return RNNModel(cfg, params={k: np.ascontiguousarray(v, dtype=cfg.dtype) for k, v in self.params.items()})

    def config_dict(self) -> dict:
        """The model's settings (ModelConfig, vocab_size included) as a JSON-ready dict: ModelConfig(**d)
        rebuilds them. A checkpoint records them with the training settings: save with runs.save_model."""
        return asdict(self.config)
