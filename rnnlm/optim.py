"""Optimizers (SGD, momentum, Adagrad, Adam) and gradient clipping, for a dict of arrays.

There is no autograd: the model hands over `params` and `grads`, two dicts keyed
by the same PyTorch names, and `Optimizer.step(params, grads)` updates the
parameters *in place* (the model keeps referencing the same arrays).

The one thing to know before editing: every state a run needs to continue
bitwise after a resume (moment buffers, step count, learning rate) must travel
through `state_dict()` / `load_state_dict()` as plain arrays, because
checkpoints are `.npz` files read with `allow_pickle=False`. The update
formulas follow `torch.optim` term by term (same defaults, same epsilon
placement) so that runs can be compared with PyTorch ones.

Sources: SGD with momentum, torch.optim.SGD's form (Polyak 1964, "Some methods of
speeding up the convergence of iteration methods"; Nesterov's variant as in Sutskever
et al. 2013, "On the importance of initialization and momentum in deep learning");
Adagrad, Duchi, Hazan & Singer 2011 (JMLR 12), torch.optim.Adagrad's form; Adam,
Kingma & Ba 2015 (ICLR, Algorithm 1, bias-corrected), torch.optim.Adam's form; norm
clipping, Pascanu, Mikolov & Bengio 2013 ("On the difficulty of training recurrent
neural networks", Algorithm 1), torch.nn.utils.clip_grad_norm_'s form.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numba import prange

from ._jit import njit, njit_parallel
# DEFAULT_LR: the learning rate each optimizer gets when --lr is not given. SGD's 20
# goes with norm clipping at 0.25, as in pytorch/examples' word_language_model.
from . import config as C
from .config import DEFAULT_LR
from .errors import UserError
from .settings import default

# The momentum and Adam's betas are config.py's defaults (torch.optim's: 0.9 and (0.9, 0.999)).
MOMENTUM = default(C.TrainConfig, "momentum")
BETAS = (default(C.TrainConfig, "beta1"), default(C.TrainConfig, "beta2"))


# ---------------------------------------------------------------- clipping


# Arrays longer than CHUNK are cut into CHUNK-element pieces handled in a prange:
# the sum of squares adds the pieces' sums in their order, so the norm does not
# depend on the thread count; 64K floats = 256 KB, a piece fits a core's L2.
CHUNK = 1 << 16


@njit(reassoc=True)
def _sum_squares(flat):
    # flat: (n,) float32 or float64; the sum in float64. reassoc lets LLVM split it
    # into vector lanes (0.6 -> ~0.1 ns per element; a lane array did not vectorize,
    # see layers.py).
    total = 0.0
    for i in range(flat.shape[0]):
        v = np.float64(flat[i])
        total += v * v
    return total


@njit_parallel
def _sum_squares_chunks(flat, chunk):
    # The CHUNK pieces' sums in parallel, added in a fixed order.
    n = flat.shape[0]
    pieces = (n + chunk - 1) // chunk
    part = np.empty(pieces)
    for c in prange(pieces):
        part[c] = _sum_squares(flat[c * chunk:min(n, (c + 1) * chunk)])
    total = 0.0
    for c in range(pieces):
        total += part[c]
    return total


@njit_parallel
def _sum_squares_rows(g, rows):
    # g (V, E); rows: the rows to read, each row's sum in parallel, added in rows' order.
    part = np.empty(rows.shape[0])
    for i in prange(rows.shape[0]):
        part[i] = _sum_squares(g[rows[i]])
    total = 0.0
    for i in range(rows.shape[0]):
        total += part[i]
    return total


@njit
def _sgd_update(p, g, lr, scale):
    # the update p -= lr * (g * scale) over flat views; lr and scale have p's dtype.
    # g * scale is rounded first, as clip_grad_norm's g *= scale followed by
    # p -= lr * g rounds it: the same bits, one pass instead of two.
    for i in range(p.shape[0]):
        p[i] -= lr * (g[i] * scale)


@njit_parallel
def _sgd_update_chunks(p, g, lr, scale, chunk):
    # _sgd_update in CHUNK pieces in parallel
    n = p.shape[0]
    for c in prange((n + chunk - 1) // chunk):
        _sgd_update(p[c * chunk:min(n, (c + 1) * chunk)], g[c * chunk:min(n, (c + 1) * chunk)], lr, scale)


@njit_parallel
def _sgd_update_rows(p, g, rows, lr, scale):
    # _sgd_update on the given rows of p (V, E) and g (V, E), rows in parallel (rows unique)
    for i in prange(rows.shape[0]):
        _sgd_update(p[rows[i]], g[rows[i]], lr, scale)


def compile_sgd(dtype) -> None:
    """Run SGD's kernels once on throwaway arrays of `dtype`, so that they compile (or load
    from Numba's cache) before a training loop's first timed step rather than inside it."""
    f = np.dtype(dtype).type
    p = np.zeros(CHUNK + 1, dtype)
    _sgd_update(p, p.copy(), f(0), f(1))
    _sgd_update_chunks(p, p.copy(), f(0), f(1), CHUNK)
    p2 = np.zeros((2, 2), dtype)
    _sgd_update_rows(p2, p2.copy(), np.zeros(1, np.int64), f(0), f(1))


def _sum_squares_of(g, rows=None) -> float:
    """Σ g² in float64, of the given rows only when rows is not None."""
    if rows is not None:
        return _sum_squares_rows(g, rows)
    flat = np.ascontiguousarray(g).reshape(-1)
    return _sum_squares(flat) if flat.shape[0] <= CHUNK else _sum_squares_chunks(flat, CHUNK)


def grad_norm(grads, rows=None) -> float:
    """Joint L2 norm of all gradient arrays, accumulated in float64.

    float64 accumulation keeps a large-but-finite float32 gradient from
    overflowing the sum of squares to inf (which would look like a
    non-finite gradient), without a float64 copy of every gradient.
    Returns nan/inf if any element is nan/inf. Long arrays are summed in
    fixed pieces on Numba's threads: the same value at any thread count.

    rows: {name: sorted unique row indices (int64)} for 2-D gradients that are
    zero outside those rows (the untied embedding's, `RNNModel.train_grads`);
    only those rows are read. None: every element of every gradient.
    """
    _check_grads(grads, "grad_norm")
    _check_rows(grads, rows, "grad_norm")
    rows = rows or {}
    total = 0.0
    for name, g in grads.items():
        total += _sum_squares_of(g, rows.get(name))
    return math.sqrt(total)


def clip_coef(norm: float, max_norm: float) -> float:
    """The factor norm clipping multiplies every gradient by: max_norm / (norm + 1e-6)
    (PyTorch's clip_grad_norm_) when that is below 1, else 1.0 (no clipping; also when
    max_norm <= 0 or norm is not finite)."""
    if max_norm > 0 and math.isfinite(norm):
        coef = max_norm / (norm + 1e-6)
        if coef < 1.0:
            return coef
    return 1.0


def _scale(grads, coef: float, rows=None) -> None:
    """g *= coef for every gradient (only the given rows of those in rows)."""
    rows = rows or {}
    for name, g in grads.items():
        r = rows.get(name)
        if r is None:
            g *= g.dtype.type(coef)
        else:
            g[r] *= g.dtype.type(coef)


def _check_grads(grads, where: str, label: str = "grads") -> None:
    """TypeError (one line) unless `grads` is a mapping of name -> floating-point NumPy array (what
    loss_and_grads returns second): a list of arrays has no names to clip or update by, and a None or an
    integer array cannot hold a gradient (Numba's typing error or np.clip's cast error otherwise)."""
    if not isinstance(grads, Mapping):
        raise TypeError(f"{where}: grads must be a dict of name -> gradient array (as RNNModel.loss_and_grads "
                        f"returns), got {type(grads).__name__}")
    for name, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            what = f"a {g.dtype} array" if isinstance(g, np.ndarray) else type(g).__name__
            raise TypeError(f"{where}: {label}[{name!r}] must be a float32 or float64 NumPy array, got {what}")


def _check_rows(grads, rows, where: str) -> None:
    """ValueError/TypeError (one line) unless `rows` is None or {name: sorted unique int64 row indices} for
    2-D gradients of `grads`, each index within its gradient's rows (RNNModel.train_grads's grad_rows). The
    kernels that read only those rows index without bounds checks: a row past the end would read or write
    memory outside the array (a wrong norm, a corrupted parameter, a crash) and a repeated row would count
    twice."""
    if rows is None:
        return
    if not isinstance(rows, Mapping):
        raise TypeError(f"{where}: rows must be a dict of name -> row indices (RNNModel.train_grads's "
                        f"grad_rows) or None, got {type(rows).__name__}")
    for name, r in rows.items():
        if r is None:
            continue
        if name not in grads:
            raise ValueError(f"{where}: rows names {name!r}, which is not one of the gradients")
        g = grads[name]
        if not isinstance(r, np.ndarray) or r.dtype != np.int64 or r.ndim != 1:
            what = f"a {r.dtype} array of shape {r.shape}" if isinstance(r, np.ndarray) else type(r).__name__
            raise TypeError(f"{where}: rows[{name!r}] must be a 1-D int64 NumPy array of row indices, got {what}")
        if g.ndim != 2:
            raise ValueError(f"{where}: rows[{name!r}] picks rows of a 2-D gradient, but grads[{name!r}] has "
                             f"shape {g.shape}")
        if r.size and (r[0] < 0 or r[-1] >= g.shape[0] or (r.size > 1 and not (r[1:] > r[:-1]).all())):
            raise ValueError(f"{where}: rows[{name!r}] must be sorted unique row indices in [0, {g.shape[0]}) "
                             f"(as np.unique gives), got {r.min()} .. {r.max()} over {r.size} rows")


def _check_threshold(name: str, value, where: str = "") -> None:
    """ValueError (one line, prefixed with `where`, the function's name) for a clipping threshold that is nan
    (no comparison with it holds: the gradients would be left unclipped, or set to nan by np.clip) or not a
    real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or math.isnan(value):
        raise ValueError(f"{where + ': ' if where else ''}{name} must be a number (0 or less: no clipping), "
                         f"got {value!r}")


def clip_grad_norm(grads, max_norm: float, norm: float | None = None, rows=None) -> float:
    """Rescale all gradients together so that their joint L2 norm is at most `max_norm`.

    Returns the norm *before* clipping, like `torch.nn.utils.clip_grad_norm_`.
    `norm`: the value of `grad_norm(grads)` if the caller already has it (the
    training loop does), which saves a pass over every gradient.
    The scale factor is `max_norm / (total_norm + 1e-6)` (PyTorch's), applied
    only when it is below 1 (`clip_coef`). `max_norm <= 0` means no clipping
    (the norm is still returned). A non-finite norm leaves the gradients
    untouched: the training loop's non-finite guard, not the clipper, decides
    what to do. rows: as for grad_norm. ValueError for a max_norm that is nan
    or not a number.
    """
    _check_grads(grads, "clip_grad_norm")
    if norm is not None:        # (else grad_norm checks them)
        _check_rows(grads, rows, "clip_grad_norm")
    _check_threshold("max_norm", max_norm, "clip_grad_norm")
    total = grad_norm(grads, rows) if norm is None else float(norm)
    coef = clip_coef(total, max_norm)
    if coef != 1.0:
        _scale(grads, coef, rows)
    return total


def clip_grad_value(grads, clip_value: float) -> int:
    """Clip every gradient element to [-clip_value, clip_value] in place.

    Returns how many elements were clipped (0: nothing changed). Unlike norm
    clipping this changes the gradient's direction. `clip_value <= 0` means
    no clipping; ValueError for a nan or a value that is not a number.
    """
    _check_grads(grads, "clip_grad_value")
    _check_threshold("clip_value", clip_value, "clip_grad_value")
    if clip_value <= 0:
        return 0
    count = 0
    for g in grads.values():
        count += int(np.count_nonzero(np.abs(g) > clip_value))
        np.clip(g, -clip_value, clip_value, out=g)
    return count


def first_nonfinite(arrays) -> str | None:
    """Name of the first array (in dict order) holding a nan or inf, else None."""
    for name, a in arrays.items():
        if not np.isfinite(a).all():
            return name
    return None


# ---------------------------------------------------------------- optimizers


class Optimizer:
    """Base class: holds the learning rate, a step count and per-parameter buffers.

    `buffers` maps a buffer kind (PyTorch's names: `momentum_buffer`, `sum`,
    `exp_avg`, `exp_avg_sq`) to a dict of arrays shaped like the parameters.
    """

    name = "base"
    buffer_kinds: tuple[str, ...] = ()

    def __init__(self, params, lr: float):
        from .settings import check_range
        check_range("lr", lr, label="lr")
        if not isinstance(params, Mapping):
            raise TypeError(f"{type(self).__name__}: params must be a dict of name -> parameter array "
                            f"(RNNModel.params), got {type(params).__name__}")
        _check_grads(params, type(self).__name__, "params")
        self.lr = float(lr)
        self.steps = 0
        self.shapes = {k: p.shape for k, p in params.items()}     # what step's params and grads must be
        self.buffers = {kind: {k: np.zeros_like(p) for k, p in params.items()}
                        for kind in self.buffer_kinds}

    def _check_step(self, params, grads, rows, scale) -> None:
        """One line (TypeError/ValueError) for a step whose params are not the ones this optimizer was built
        for or whose grads do not match them: the update kernels index without bounds checks, so a smaller
        gradient would be read past its end (nan or garbage in the weights, or a crash)."""
        where = f"{type(self).__name__}.step"
        if not isinstance(params, Mapping):
            raise TypeError(f"{where}: params must be a dict of name -> parameter array, got "
                            f"{type(params).__name__}")
        _check_grads(grads, where)
        if {k: getattr(p, "shape", None) for k, p in params.items()} != self.shapes:
            raise ValueError(f"{where}: params are not the ones this optimizer was built for (names and shapes "
                             "differ); build the optimizer from the model it updates (make_optimizer(name, "
                             "model.params))")
        for k, p in params.items():
            g = grads.get(k)
            if g is None:
                raise ValueError(f"{where}: grads has no {k!r}; give one gradient per parameter (as "
                                 "RNNModel.loss_and_grads returns)")
            if g.shape != p.shape:
                raise ValueError(f"{where}: grads[{k!r}] has shape {g.shape} but the parameter has {p.shape}; "
                                 "give the gradients of this model's loss")
        _check_rows(grads, rows, where)
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) \
                or not math.isfinite(scale):
            raise ValueError(f"{where}: scale must be a finite number (clip_coef's factor; 1.0: none), got "
                             f"{scale!r}")

    def step(self, params, grads, rows=None, scale: float = 1.0) -> None:
        """Update every parameter in place from its gradient.

        scale: a factor for every gradient first (norm clipping's, `clip_coef`;
        1.0: none). SGD folds it into its update pass and leaves the gradient
        arrays as they were; the others scale the gradients in place first, as
        clip_grad_norm would. rows: as for grad_norm (gradients zero outside
        those sorted unique rows): SGD updates only those rows (the same
        result: the other rows' update is zero); the optimizers with buffers
        update every row, as PyTorch's do for a dense gradient. (An update term of
        the parameter itself, as weight decay would add, is not zero outside the
        rows: SGD's row path would then have to be left for every row.)
        """
        self._check_step(params, grads, rows, scale)
        self.steps += 1
        if scale != 1.0:
            _scale(grads, scale, rows)
        for k, p in params.items():
            self._update(k, p, grads[k])

    def _update(self, key, p, g):
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to continue bitwise: `name`, `lr`, `step`, `<buffer>.<param>`."""
        d = {"name": np.array(self.name), "lr": np.array(self.lr, dtype=np.float64),
             "step": np.array(self.steps, dtype=np.int64)}
        for kind, bufs in self.buffers.items():
            for k, b in bufs.items():
                d[f"{kind}.{k}"] = b
        return d

    def load_state_dict(self, d) -> None:
        """Restore from `state_dict()` output (keys without the `optim.` prefix)."""
        name = str(d.get("name", ""))
        if name != self.name:
            raise UserError(f"optimizer state is for '{name}', this run uses '{self.name}'")
        self.lr = float(d["lr"])
        self.steps = int(d["step"])
        for kind, bufs in self.buffers.items():
            for k, b in bufs.items():
                key = f"{kind}.{k}"
                if key not in d:
                    raise UserError(f"optimizer state lacks '{key}'")
                if d[key].shape != b.shape:
                    raise UserError(f"optimizer state '{key}' has shape {d[key].shape}, "
                                    f"the parameter has {b.shape}")
                b[...] = d[key]


class SGD(Optimizer):
    """Plain SGD: p -= lr * g (torch.optim.SGD without momentum), on Numba's threads."""

    name = "sgd"

    def step(self, params, grads, rows=None, scale: float = 1.0) -> None:
        """As Optimizer.step: p -= lr * (g * scale), every parameter in place, only the given rows of those
        in `rows`; the gradient arrays are left as they were."""
        self._check_step(params, grads, rows, scale)
        self.steps += 1
        rows = rows or {}
        for k, p in params.items():
            g = grads[k]
            f = p.dtype.type
            if not (p.flags.c_contiguous and g.flags.c_contiguous and g.dtype == p.dtype):
                if scale != 1.0:
                    _scale({k: g}, scale)
                p -= f(self.lr) * g
            elif rows.get(k) is not None and p.ndim == 2:
                _sgd_update_rows(p, g, rows[k], f(self.lr), f(scale))
            elif p.size <= CHUNK:
                _sgd_update(p.reshape(-1), g.reshape(-1), f(self.lr), f(scale))
            else:
                _sgd_update_chunks(p.reshape(-1), g.reshape(-1), f(self.lr), f(scale), CHUNK)


class Momentum(Optimizer):
    """Heavy-ball momentum as in torch.optim.SGD(momentum=mu, dampening=0).

    buf = mu * buf + g;  p -= lr * buf   (Nesterov: p -= lr * (g + mu * buf)).
    """

    name = "momentum"
    buffer_kinds = ("momentum_buffer",)

    def __init__(self, params, lr, momentum: float = MOMENTUM, nesterov: bool = False):
        super().__init__(params, lr)
        from .settings import check_range
        check_range("momentum", momentum, label="momentum")
        self.momentum = momentum
        self.nesterov = nesterov

    def _update(self, key, p, g):
        mu = p.dtype.type(self.momentum)
        buf = self.buffers["momentum_buffer"][key]
        buf *= mu
        buf += g
        if self.nesterov:
            p -= p.dtype.type(self.lr) * (g + mu * buf)
        else:
            p -= p.dtype.type(self.lr) * buf


class Adagrad(Optimizer):
    """Adagrad as in torch.optim.Adagrad: sum += g*g;  p -= lr * g / (sqrt(sum) + eps)."""

    name = "adagrad"
    buffer_kinds = ("sum",)

    def __init__(self, params, lr, eps: float = 1e-10):
        super().__init__(params, lr)
        self.eps = eps

    def _update(self, key, p, g):
        acc = self.buffers["sum"][key]
        acc += g * g
        p -= p.dtype.type(self.lr) * g / (np.sqrt(acc) + p.dtype.type(self.eps))


class Adam(Optimizer):
    """Adam as in torch.optim.Adam (bias-corrected, eps outside the square root).

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
    p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    name = "adam"
    buffer_kinds = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr, betas=BETAS, eps: float = 1e-8):
        super().__init__(params, lr)
        from .settings import check_range
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        check_range("beta1", betas[0], label="betas[0]")
        check_range("beta2", betas[1], label="betas[1]")
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = eps

    def step(self, params, grads, rows=None, scale: float = 1.0) -> None:
        """As Optimizer.step (every row updated, as torch.optim.Adam does for a dense gradient)."""
        t = self.steps + 1
        # Bias corrections in float64, once per step (as PyTorch computes them in Python floats).
        self._step_size = self.lr / (1 - self.beta1 ** t)
        self._sqrt_bc2 = math.sqrt(1 - self.beta2 ** t)
        super().step(params, grads, rows, scale)

    def _update(self, key, p, g):
        f = p.dtype.type
        m = self.buffers["exp_avg"][key]
        v = self.buffers["exp_avg_sq"][key]
        m *= f(self.beta1)
        m += f(1 - self.beta1) * g
        v *= f(self.beta2)
        v += f(1 - self.beta2) * (g * g)
        denom = np.sqrt(v)
        denom /= f(self._sqrt_bc2)
        denom += f(self.eps)
        p -= f(self._step_size) * m / denom


# config.OPTIMIZERS' names (the CLI's choices), in its order, to their classes
OPTIMIZERS = dict(zip(C.OPTIMIZERS, (SGD, Momentum, Adagrad, Adam), strict=True))


def make_optimizer(name: str, params, lr: float | None = None, *, momentum: float = MOMENTUM,
                   nesterov: bool = False, betas=BETAS, eps: float | None = None) -> Optimizer:
    """Build an optimizer by name; `lr=None` takes `DEFAULT_LR[name]`."""
    if name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer '{name}'; choose one of {', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "momentum":
        return Momentum(params, lr, momentum=momentum, nesterov=nesterov)
    if name == "adagrad":
        return Adagrad(params, lr, **({} if eps is None else {"eps": eps}))
    if name == "adam":
        return Adam(params, lr, betas=betas, **({} if eps is None else {"eps": eps}))
    return SGD(params, lr)
