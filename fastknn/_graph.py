"""Neighbour graphs as transformers, for the "precomputed neighbours" pipelines.

t-SNE, Isomap, spectral clustering, DBSCAN or UMAP accept a sparse graph of
neighbour distances (``metric="precomputed"``); these transformers compute it
with fastknn's exact search, as scikit-learn's ``KNeighborsTransformer`` and
``RadiusNeighborsTransformer`` do.
"""

import numbers

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import (
    KNeighborsMixin,
    NeighborsBase,
    RadiusNeighborsMixin,
    kneighbors_search,
    knn_graph,
    scikit_learn_name_docstring,
)


class _GraphTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, NeighborsBase):
    """``fit`` and ``fit_transform`` of the graph transformers; each gives its ``transform``."""

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Store the training set.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, numeric and finite.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        self._fit(X)
        self._n_features_out = self.n_samples_fit_
        return self

    def fit_transform(self, X, y=None):
        """Fit on ``X``, then return the graph of ``X`` itself.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        graph : scipy.sparse.csr_matrix or csr_array of shape (n_samples, n_samples)
            As :meth:`transform` returns it.
        """
        return self.fit(X).transform(X)


class KNNTransformer(KNeighborsMixin, _GraphTransformer):
    """Sparse graph of each sample's k nearest neighbours, a drop-in for scikit-learn's.

    Same parameters, attributes and graphs as
    :class:`sklearn.neighbors.KNeighborsTransformer` with
    ``algorithm="brute"``. In ``"distance"`` mode, each row holds
    ``n_neighbors + 1`` entries, the sample itself (at distance 0, stored
    explicitly) included, as estimators taking a precomputed graph expect.

    Parameters
    ----------
    mode : {"distance", "connectivity"}, default="distance"
        Distances, or ones, as the matrix entries.
    n_neighbors : int, default=5
        Neighbours of each sample (plus one in ``"distance"`` mode).
    metric : str, default="minkowski"
        ``"euclidean"`` (``"l2"``), ``"manhattan"`` (``"cityblock"``,
        ``"l1"``), ``"chebyshev"`` (``"infinity"``), ``"minkowski"`` or ``"cosine"``.
    p : float, default=2
        Power of the Minkowski metric, >= 1.
    n_jobs : int, default=None
        Threads for the search.
    algorithm : {"auto", "brute", "pruned", "kd_tree", "ball_tree"}, default="auto"
        The search method, as :class:`~fastknn.KNNClassifier`'s.
    leaf_size : int, default=30
        Points per leaf of the k-d tree, as :class:`~fastknn.KNNClassifier`'s.
    metric_params : dict, default=None
        ``{"p": power}`` or None, as :class:`~fastknn.KNNClassifier`'s.

    Attributes
    ----------
    effective_metric_ : str
        The metric used.
    effective_metric_params_ : dict
        ``{"p": p}`` for ``"minkowski"``, else empty.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names seen during fit, when X has string column names.
    n_samples_fit_ : int
        Number of training samples: the graph's number of columns.
    fit_method_ : {"brute", "pruned", "tree", "sparse"}
        The search used.

    See Also
    --------
    sklearn.neighbors.KNeighborsTransformer : The reference implementation.
    fastknn.RadiusNeighborsTransformer : The graph of the neighbours within a radius.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.manifold import TSNE
    >>> from sklearn.pipeline import make_pipeline
    >>> from fastknn import KNNTransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> graph = KNNTransformer(n_neighbors=5).fit_transform(X[:100])
    >>> graph.shape, graph.nnz
    ((100, 100), 600)
    >>> tsne = make_pipeline(
    ...     KNNTransformer(n_neighbors=31, mode="distance"),
    ...     TSNE(metric="precomputed", init="random", perplexity=10, random_state=0),
    ... )
    >>> tsne.fit_transform(X[:100]).shape
    (100, 2)
    """

    _parameter_constraints = {
        **NeighborsBase._parameter_constraints,
        "mode": [StrOptions({"distance", "connectivity"})],
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(
        self, *, mode="distance", n_neighbors=5, metric="minkowski", p=2, n_jobs=None, algorithm="auto",
        leaf_size=30, metric_params=None,
    ):
        self.mode = mode
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.p = p
        self.n_jobs = n_jobs
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric_params = metric_params

    def transform(self, X):
        """The graph of each query's nearest training samples.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        graph : scipy.sparse.csr_matrix or csr_array of shape (n_queries, `n_samples_fit_`)
            ``n_neighbors`` entries a row (one more in ``"distance"`` mode).
        """
        check_is_fitted(self)
        add_one = self.mode == "distance"
        return self.kneighbors_graph(X, mode=self.mode, n_neighbors=self.n_neighbors + add_one)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit on ``X``, then return the graph of ``X`` itself.

        The graph :meth:`transform` gives for ``X``, searched as the graph
        of the training set with itself: for the Euclidean brute-force
        search, one triangle of the symmetric product of the rows with
        themselves, while it fits the working memory (see ``fastknn._self_graph``).
        There ``algorithm="auto"`` takes brute force without probing whether
        pruning pays: the graph of ``X`` reads no pruned index.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        graph : scipy.sparse.csr_matrix or csr_array of shape (n_samples, n_samples)
            As :meth:`transform` returns it.
        """
        self._fit(X, self_queries=True)
        self._n_features_out = self.n_samples_fit_
        n_neighbors = self.n_neighbors + (self.mode == "distance")
        if n_neighbors > self.n_samples_fit_:
            return self.transform(X)  # raises kneighbors' error
        neigh_dist, neigh_ind = kneighbors_search(self._search_state, self._fit_X, n_neighbors, self.n_jobs)
        data = neigh_dist.ravel() if self.mode == "distance" else np.ones(neigh_ind.size)
        return knn_graph(data, neigh_ind, self.n_samples_fit_)

class KNeighborsTransformer(KNNTransformer):
    __doc__ = scikit_learn_name_docstring("KNeighborsTransformer", "KNNTransformer")


class RadiusNeighborsTransformer(RadiusNeighborsMixin, _GraphTransformer):
    """Sparse graph of the neighbours within a radius of each sample, a drop-in for scikit-learn's.

    Same parameters, attributes and graphs as
    :class:`sklearn.neighbors.RadiusNeighborsTransformer` with
    ``algorithm="brute"``; each row's entries are sorted by distance.

    Parameters
    ----------
    mode : {"distance", "connectivity"}, default="distance"
        Distances, or ones, as the matrix entries.
    radius : float, default=1.0
        Largest distance of a neighbour; a sample at exactly this distance
        is one.
    metric : str, default="minkowski"
        ``"euclidean"`` (``"l2"``), ``"manhattan"`` (``"cityblock"``,
        ``"l1"``), ``"chebyshev"`` (``"infinity"``), ``"minkowski"`` or ``"cosine"``.
    p : float, default=2
        Power of the Minkowski metric, >= 1.
    n_jobs : int, default=None
        Threads for the search.
    algorithm : {"auto", "brute", "pruned", "kd_tree", "ball_tree"}, default="auto"
        The search method (see :class:`~fastknn.RadiusNeighborsClassifier`).
    leaf_size : int, default=30
        Points per leaf of the k-d tree, as :class:`~fastknn.KNNClassifier`'s.
    metric_params : dict, default=None
        ``{"p": power}`` or None, as :class:`~fastknn.KNNClassifier`'s.

    Attributes
    ----------
    effective_metric_ : str
        The metric used.
    effective_metric_params_ : dict
        ``{"p": p}`` for ``"minkowski"``, else empty.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names seen during fit, when X has string column names.
    n_samples_fit_ : int
        Number of training samples: the graph's number of columns.
    fit_method_ : {"brute", "pruned", "tree", "sparse"}
        The search used.

    See Also
    --------
    sklearn.neighbors.RadiusNeighborsTransformer : The reference implementation.
    fastknn.KNNTransformer : The graph of the k nearest neighbours.

    Examples
    --------
    >>> from fastknn import RadiusNeighborsTransformer
    >>> X = [[0.0], [1.0], [3.0]]
    >>> graph = RadiusNeighborsTransformer(radius=1.0).fit_transform(X)
    >>> graph.toarray()
    array([[0., 1., 0.],
           [1., 0., 0.],
           [0., 0., 0.]])
    """

    _parameter_constraints = {
        **NeighborsBase._parameter_constraints,
        "mode": [StrOptions({"distance", "connectivity"})],
        "radius": [Interval(numbers.Real, 0, None, closed="both")],
    }

    def __init__(
        self, *, mode="distance", radius=1.0, metric="minkowski", p=2, n_jobs=None, algorithm="auto",
        leaf_size=30, metric_params=None,
    ):
        self.mode = mode
        self.radius = radius
        self.metric = metric
        self.p = p
        self.n_jobs = n_jobs
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric_params = metric_params

    def transform(self, X):
        """The graph of the training samples within the radius of each query.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        graph : scipy.sparse.csr_matrix or csr_array of shape (n_queries, `n_samples_fit_`)
            Entries sorted by distance within each row.
        """
        check_is_fitted(self)
        return self.radius_neighbors_graph(X, mode=self.mode, sort_results=True)
