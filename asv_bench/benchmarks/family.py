"""The neighbours family (issue 18) against scikit-learn's brute force.

``KNNRegressor`` fit + predict (k=5, 10,000 x 2,000 digits, the
``fastknn bench`` shape), ``radius_neighbors`` with a radius of about 20
neighbours a query (brute force and pruned, after fit), and
``KNNTransformer(n_neighbors=90, mode="distance").fit_transform`` on 5,000
digits, the graph t-SNE asks for; with the regressor's R^2 as a ``track_``
benchmark. Versions of fastknn without these classes skip them.
"""

import numpy as np

from .common import Benchmark, digits, rng

# The radius within which the 2,000 query digits have 19.7 training digits
# on average (``fastknn.bench.radius_for_mean_neighbours`` on every tenth
# query gives 20.0 for it).
RADIUS = 4.432
GRAPH_ROWS = 5000
GRAPH_NEIGHBOURS = 90


def fastknn_class(name):
    """A class of ``fastknn``, or skip the benchmark where this version has none."""
    import fastknn

    if not hasattr(fastknn, name):
        raise NotImplementedError(f"fastknn.{name} does not exist in this version")
    return getattr(fastknn, name)


def warm_up_family(name, **params):
    """Compile fastknn's kernels for one class on a few rows (numba compiles per type)."""
    X = rng().random((128, 784)).astype(np.float32)
    estimator = fastknn_class(name)(**params)
    if name == "KNNRegressor":
        estimator.fit(X, X[:, 0]).predict(X[:8])
    elif name == "KNNTransformer":
        estimator.fit_transform(X)
    else:
        estimator.fit(X).radius_neighbors(X[:8])


class Regressor(Benchmark):
    """KNNRegressor fit + predict, k=5, 10,000 training digits, 2,000 queries."""

    params = ["fastknn", "sklearn"]
    param_names = ["library"]

    def setup(self, library):
        X, y, self.queries, self.y_queries = digits(10_000, 2000)
        self.X, self.y = X, y.astype(np.float64)
        if library == "fastknn":
            warm_up_family("KNNRegressor", n_neighbors=5)
            self.regressor = fastknn_class("KNNRegressor")(n_neighbors=5)
        else:
            from sklearn.neighbors import KNeighborsRegressor

            self.regressor = KNeighborsRegressor(n_neighbors=5, algorithm="brute")

    def time_fit_predict(self, library):
        self.regressor.fit(self.X, self.y).predict(self.queries)

    def track_r2(self, library):
        return float(self.regressor.fit(self.X, self.y).score(self.queries, self.y_queries))

    track_r2.unit = "R^2"


class RadiusNeighbors(Benchmark):
    """radius_neighbors of 2,000 digits among 10,000, about 20 neighbours a query (search alone)."""

    params = (["fastknn", "fastknn-pruned", "sklearn"],)
    param_names = ["library"]

    def setup(self, library):
        X, _, self.queries, _ = digits(10_000, 2000)
        if library.startswith("fastknn"):
            algorithm = "pruned" if library == "fastknn-pruned" else "brute"
            warm_up_family("NearestNeighbors", radius=RADIUS, algorithm=algorithm)
            self.search = fastknn_class("NearestNeighbors")(radius=RADIUS, algorithm=algorithm).fit(X)
        else:
            from sklearn.neighbors import NearestNeighbors

            self.search = NearestNeighbors(radius=RADIUS, algorithm="brute").fit(X)

    def time_radius_neighbors(self, library):
        self.search.radius_neighbors(self.queries, return_distance=False)


class Transformer(Benchmark):
    """KNNTransformer(n_neighbors=90, mode="distance").fit_transform on 5,000 digits."""

    params = ["fastknn", "sklearn"]
    param_names = ["library"]

    def setup(self, library):
        self.X = digits(GRAPH_ROWS, 1)[0]
        if library == "fastknn":
            warm_up_family("KNNTransformer", n_neighbors=GRAPH_NEIGHBOURS)
            self.transformer = fastknn_class("KNNTransformer")(n_neighbors=GRAPH_NEIGHBOURS, mode="distance")
        else:
            from sklearn.neighbors import KNeighborsTransformer

            self.transformer = KNeighborsTransformer(
                n_neighbors=GRAPH_NEIGHBOURS, mode="distance", algorithm="brute"
            )

    def time_fit_transform(self, library):
        self.transformer.fit_transform(self.X)
