"""rnnlm: recurrent language models with hand-written backpropagation through time.

Vanilla RNN, LSTM and GRU cells in Numba, trained on Portuguese text, with
instruments that measure vanishing and exploding gradients.
"""
__version__ = "0.2.0"

from . import threadlayer as _threadlayer     # noqa: E402,F401  (Numba's threading layer, before any kernel)


def __getattr__(name):
    """`rnnlm.runs.load_model(...)` after a bare `import rnnlm`, as the README writes the names: a submodule
    is imported when first named (PEP 562), so that `import rnnlm` itself stays instant (no Numba)."""
    import importlib
    if name.startswith("_"):    # (no private module, no dunder probe such as __wrapped__, is imported here)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
