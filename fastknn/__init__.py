"""fastknn: exact k-nearest-neighbour classification with Numba kernels."""

from .estimators import KNNClassifier
from .neighbors import kneighbors

__version__ = "0.1.0.dev0"

__all__ = ["KNNClassifier", "kneighbors", "__version__"]
