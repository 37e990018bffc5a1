"""fastknn: exact k-nearest-neighbour classification with Numba kernels."""

import importlib as _importlib

__version__ = "0.1.0.dev0"

__all__ = [
    "DistortionKNNClassifier",
    "KNNClassifier",
    "KNNClassifierCV",
    "KNNRegressor",
    "KNNRegressorCV",
    "KNNTransformer",
    "KNeighborsClassifier",
    "KNeighborsRegressor",
    "KNeighborsTransformer",
    "NearestNeighbors",
    "RadiusNeighborsClassifier",
    "RadiusNeighborsRegressor",
    "RadiusNeighborsTransformer",
    "kneighbors",
    "__version__",
]

# Public name -> (module, name there). Imported on first use (module
# __getattr__, PEP 562), so that ``import fastknn`` loads neither numba nor
# scikit-learn's model selection until a name that needs them is used.
# scikit-learn's names are those classes, or (KNeighbors*) subclasses that
# differ only in name, since pipelines name their steps after the class:
# changing the module of ``from sklearn.neighbors import X`` is the whole
# migration.
_LAZY = {
    "KNNClassifier": ("_classification", "KNNClassifier"),
    "KNeighborsClassifier": ("_classification", "KNeighborsClassifier"),
    "RadiusNeighborsClassifier": ("_classification", "RadiusNeighborsClassifier"),
    "KNNTransformer": ("_graph", "KNNTransformer"),
    "KNeighborsTransformer": ("_graph", "KNeighborsTransformer"),
    "RadiusNeighborsTransformer": ("_graph", "RadiusNeighborsTransformer"),
    "KNNRegressor": ("_regression", "KNNRegressor"),
    "KNeighborsRegressor": ("_regression", "KNeighborsRegressor"),
    "RadiusNeighborsRegressor": ("_regression", "RadiusNeighborsRegressor"),
    "NearestNeighbors": ("_unsupervised", "NearestNeighbors"),
    "DistortionKNNClassifier": ("distortion", "DistortionKNNClassifier"),
    "KNNClassifierCV": ("model_selection", "KNNClassifierCV"),
    "KNNRegressorCV": ("model_selection", "KNNRegressorCV"),
    "kneighbors": ("neighbors", "kneighbors"),
}


def __getattr__(name):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(_importlib.import_module(f".{module}", __name__), attribute)
        globals()[name] = value  # later look-ups skip this function
        return value
    if not name.startswith("__"):  # a submodule, as ``fastknn.estimators`` was before names were lazy
        try:
            return _importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
