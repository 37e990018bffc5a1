"""Low-dimensional points (issue 17): the default classifiers' fit + predict, and a bare cKDTree.

``library`` is fastknn's ``KNNClassifier()`` (``"auto"`` takes its tree
there), scikit-learn's default ``KNeighborsClassifier()`` (its k-d tree) or
``scipy.spatial.cKDTree`` build + query with ``workers=-1`` (neighbours
only). Uniform points, k=5; ``LowDimensionalAgreement`` checks fastknn's
predictions against scikit-learn's.
"""

import numpy as np

from .common import Benchmark, rng

# (n_train, n_features, n_queries) as the issue states them.
SHAPES = {"200000x2": (200_000, 2, 50_000), "1000000x3": (1_000_000, 3, 100_000)}


def _points(shape):
    """Training points, labels and queries of one shape, uniform in the unit cube."""
    n_train, n_features, n_queries = SHAPES[shape]
    generator = rng()
    X = generator.random((n_train, n_features))
    y = generator.integers(0, 10, n_train)
    return X, y, generator.random((n_queries, n_features))


class LowDimensional(Benchmark):
    params = (["fastknn", "sklearn", "ckdtree"], list(SHAPES))
    param_names = ["library", "shape"]
    timeout = 300

    def setup(self, library, shape):
        self.X, self.y, self.queries = _points(shape)
        if library == "ckdtree":
            from scipy.spatial import cKDTree

            self.run = lambda: cKDTree(self.X).query(self.queries, k=5, workers=-1)
            return
        if library == "fastknn":
            from fastknn import KNNClassifier

            classifier = KNNClassifier()
            classifier.fit(self.X[:100], self.y[:100]).predict(self.queries[:5])  # compile outside timing
        else:
            from sklearn.neighbors import KNeighborsClassifier

            classifier = KNeighborsClassifier()
        self.run = lambda: classifier.fit(self.X, self.y).predict(self.queries)

    def time_fit_predict(self, library, shape):
        self.run()


class LowDimensionalAgreement(Benchmark):
    """1.0 when the default ``KNNClassifier()``'s predictions equal scikit-learn's default."""

    params = [list(SHAPES)]
    param_names = ["shape"]
    timeout = 300

    def setup(self, shape):
        self.X, self.y, self.queries = _points(shape)

    def track_same_predictions(self, shape):
        from sklearn.neighbors import KNeighborsClassifier

        from fastknn import KNNClassifier

        ours = KNNClassifier().fit(self.X, self.y).predict(self.queries)
        theirs = KNeighborsClassifier().fit(self.X, self.y).predict(self.queries)
        return float(np.mean(ours == theirs))
