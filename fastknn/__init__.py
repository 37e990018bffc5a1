"""fastknn: exact k-nearest-neighbour classification with Numba kernels."""

import importlib

__version__ = "0.1.0.dev0"

__all__ = ["KNNClassifier", "KNNClassifierCV", "kneighbors", "__version__"]

# Public name -> module defining it. Imported on first use (module __getattr__,
# PEP 562), so that ``import fastknn`` loads neither numba nor scikit-learn's
# model selection until a name that needs them is used.
_LAZY = {
    "KNNClassifier": "estimators",
    "KNNClassifierCV": "model_selection",
    "kneighbors": "neighbors",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if not name.startswith("__"):  # a submodule, as ``fastknn.estimators`` was before names were lazy
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
