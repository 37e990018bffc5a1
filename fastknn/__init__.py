"""fastknn: exact k-nearest-neighbour classification with Numba kernels."""

from .distortion import DistortionKNNClassifier
from .estimators import KNNClassifier
from .model_selection import KNNClassifierCV
from .neighbors import kneighbors

__version__ = "0.1.0.dev0"

__all__ = ["DistortionKNNClassifier", "KNNClassifier", "KNNClassifierCV", "kneighbors", "__version__"]
