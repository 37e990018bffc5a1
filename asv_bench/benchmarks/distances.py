"""Distance kernels: the exact k-nearest search per metric and dtype.

``fastknn.kneighbors`` (validation, the fast distance pass, selection and
exact re-ranking) against scikit-learn's ``NearestNeighbors`` brute force and
FAISS ``IndexFlatL2`` on the same digits. Shapes per metric are in
``common.SHAPES``.
"""

import numpy as np

from .common import LIBRARIES, METRIC_PARAMS, SHAPES, Benchmark, K, digits, require_library, warm_up


def make_search(library, metric, n_neighbors):
    """A function ``search(X_query, X_train)`` returning distances and indices."""
    params = METRIC_PARAMS[metric]
    if library == "fastknn":
        from fastknn import kneighbors

        return lambda queries, train: kneighbors(queries, train, n_neighbors, **params)
    if library == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        def search(queries, train):
            index = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute", **params)
            return index.fit(train).kneighbors(queries)

        return search
    if library == "faiss":
        import faiss

        def search(queries, train):
            index = faiss.IndexFlatL2(train.shape[1])
            index.add(train)
            squared, indices = index.search(queries, n_neighbors)
            return np.sqrt(np.maximum(squared, 0.0)), indices

        return search
    raise ValueError(f"unknown library {library!r}")


class KNeighborsSearch(Benchmark):
    """Build (where a library has an index) and search, k=3."""

    params = (LIBRARIES, list(METRIC_PARAMS), ["float32", "float64"])
    param_names = ["library", "metric", "dtype"]

    def setup(self, library, metric, dtype):
        require_library(library, metric, dtype)
        n_train, n_queries = SHAPES[metric]
        self.train, _, self.queries, _ = digits(n_train, n_queries, dtype)
        self.search = make_search(library, metric, K)
        warm_up(library, metric, dtype)

    def time_kneighbors(self, library, metric, dtype):
        self.search(self.queries, self.train)
