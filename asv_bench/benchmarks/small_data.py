"""Small data: scikit-learn's own example datasets, where a call's fixed costs are most of its time.

``library`` is fastknn's default ``KNNClassifier()`` or scikit-learn's
default ``KNeighborsClassifier()``. ``time_fit_predict`` fits on the first
four fifths of the rows and predicts the rest, as one fold of a
cross-validation does; ``time_grid_search`` runs a 5-fold ``GridSearchCV``
over k = 1, 3, 5, 9, 15 and the Euclidean and Manhattan metrics (50 fits).
The datasets ship with scikit-learn: nothing is downloaded.
"""

import numpy as np

from .common import Benchmark

DATASETS = ["iris", "breast_cancer", "digits"]
GRID = {"n_neighbors": [1, 3, 5, 9, 15], "metric": ["euclidean", "manhattan"]}


def _classifier(library):
    if library == "fastknn":
        from fastknn import KNNClassifier

        return KNNClassifier()
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier()


class SmallData(Benchmark):
    params = (["fastknn", "sklearn"], DATASETS)
    param_names = ["library", "dataset"]
    repeat = (3, 20, 10.0)

    def setup(self, library, dataset):
        from sklearn import datasets

        X, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
        order = np.random.default_rng(0).permutation(len(y))
        self.X, self.y = X[order], y[order]
        self.n_fit = len(y) * 4 // 5
        self.classifier = _classifier(library)
        for metric in GRID["metric"]:  # compile outside timing
            _classifier(library).set_params(metric=metric).fit(self.X, self.y).predict(self.X[:5])

    def time_fit_predict(self, library, dataset):
        self.classifier.fit(self.X[: self.n_fit], self.y[: self.n_fit]).predict(self.X[self.n_fit :])

    def time_grid_search(self, library, dataset):
        from sklearn.model_selection import GridSearchCV

        GridSearchCV(_classifier(library), GRID, cv=5).fit(self.X, self.y)
