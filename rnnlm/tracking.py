"""Jacobian tracking during training (--track-jacobian-every): lag curves of one run over its steps.

`jacobian_event(model, tokens, step)` measures ||dh_t/dh_{t-k}|| for lags
k = 1..TRACK_MAX_LAG at TRACK_ANCHORS anchor positions (jacobian.lag_curve)
and returns the metrics.jsonl event train() logs; `tracking_tokens(corpus)`
is the fixed token slice every curve of a run is measured on.

The one thing to know before editing: tracking only reports. It draws its
anchors and Lanczos starts from a Generator of its own (TRACK_SEED), never the
training one, and touches no parameter, so a run with and without
--track-jacobian-every trains bitwise the same.
"""
from __future__ import annotations

import math
import time

from .errors import UserError


# Cheap settings of --track-jacobian-every. At the default model (LSTM E=H=256,
# B=32, T=35) one curve costs about as much as a few training steps, so
# recording every 500 steps stays far below 10% (`python cli.py bench --jacobian`
# prints the measured figure). Same tokens, same anchors every time, so the
# curves of one run differ only by the weights.
TRACK_MAX_LAG = 30      # lags 1..30
TRACK_ANCHORS = 4       # anchor positions t
TRACK_TOKENS = 200      # tokens from the start of the validation split (train if it is too short)
TRACK_SEED = 0          # anchors and Lanczos starts; a Generator of its own, never the training one


def tracking_tokens(corpus):
    """The fixed token slice every --track-jacobian-every curve of a run is measured on."""
    need = TRACK_MAX_LAG + TRACK_ANCHORS + 2
    stream = corpus.valid if len(corpus.valid) >= need else corpus.train
    if len(stream) < TRACK_ANCHORS + 3:
        raise UserError(f"too little text ({len(stream)} tokens) for --track-jacobian-every")
    return stream[:TRACK_TOKENS]


def _compact(x):
    """Floats to 5 significant digits (non-finite to null) so a metrics line stays small."""
    if isinstance(x, dict):
        return {k: _compact(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_compact(v) for v in x]
    if isinstance(x, float):
        return float(f"{x:.5g}") if math.isfinite(x) else None
    return x


def jacobian_event(model, tokens, step: int) -> dict:
    """The metrics.jsonl event of --track-jacobian-every: lag-curve summaries at `step`."""
    import numpy as np

    from .jacobian import lag_curve
    t0 = time.perf_counter()
    max_lag = min(TRACK_MAX_LAG, len(tokens) - TRACK_ANCHORS - 1)
    doc = lag_curve(model, tokens, max_lag=max_lag, anchors=TRACK_ANCHORS,
                    rng=np.random.default_rng(TRACK_SEED), per_step=False)
    keep = ("max_lag", "anchors", "tokens", "spectral_radius_Whh", "norm_Whh", "bound_per_step")
    return {"type": "jacobian", "step": step, "seconds": round(time.perf_counter() - t0, 3),
            "meta": _compact({k: doc["meta"].get(k) for k in keep}), "curves": _compact(doc["curves"])}
