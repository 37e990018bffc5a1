"""fastknn: exact k-nearest-neighbour classification with Numba kernels."""

from ._classification import KNNClassifier, RadiusNeighborsClassifier
from ._graph import KNNTransformer, RadiusNeighborsTransformer
from ._regression import KNNRegressor, RadiusNeighborsRegressor
from ._unsupervised import NearestNeighbors
from .distortion import DistortionKNNClassifier
from .model_selection import KNNClassifierCV, KNNRegressorCV
from .neighbors import kneighbors

# scikit-learn's names for the same classes: changing the module of
# ``from sklearn.neighbors import X`` is the whole migration.
KNeighborsClassifier = KNNClassifier
KNeighborsRegressor = KNNRegressor
KNeighborsTransformer = KNNTransformer

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
