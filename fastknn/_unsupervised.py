"""Neighbour search without a target: :class:`NearestNeighbors`."""

import numbers

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval

from ._base import KNeighborsMixin, NeighborsBase, RadiusNeighborsMixin


class NearestNeighbors(KNeighborsMixin, RadiusNeighborsMixin, NeighborsBase):
    """Exact neighbour queries on a fitted training set, a drop-in for scikit-learn's.

    Same parameters, attributes and results as
    :class:`sklearn.neighbors.NearestNeighbors` with ``algorithm="brute"``:
    the k nearest (:meth:`kneighbors`) or those within a radius
    (:meth:`radius_neighbors`), and their sparse graphs.

    Parameters
    ----------
    n_neighbors : int, default=5
        Default number of neighbours of :meth:`kneighbors`.
    radius : float, default=1.0
        Default radius of :meth:`radius_neighbors`.
    metric : str, default="minkowski"
        ``"euclidean"`` (``"l2"``), ``"manhattan"`` (``"cityblock"``,
        ``"l1"``), ``"chebyshev"`` (``"infinity"``), ``"minkowski"`` or ``"cosine"``.
    p : float, default=2
        Power of the Minkowski metric, >= 1.
    n_jobs : int, default=None
        Threads for the search: None keeps numba's setting, -1 uses all.
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
        Number of training samples.
    fit_method_ : {"brute", "pruned", "tree", "sparse"}
        The search used.

    See Also
    --------
    sklearn.neighbors.NearestNeighbors : The reference implementation.
    fastknn.kneighbors : The k-nearest search as a function.

    Notes
    -----
    Neighbours at equal distances are ordered by training index, lower
    first. Radius queries are exact in float64 at the boundary: a sample at
    exactly the radius is a neighbour.

    Examples
    --------
    >>> from fastknn import NearestNeighbors
    >>> X = [[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]]
    >>> nn = NearestNeighbors(n_neighbors=2, radius=1.0).fit(X)
    >>> nn.kneighbors([[0.1, 0.0]])
    (array([[0.1, 0.9]]), array([[0, 1]]))
    >>> distances, indices = nn.radius_neighbors([[1.0, 0.0]], sort_results=True)
    >>> indices[0], distances[0]
    (array([1, 0]), array([0., 1.]))
    """

    _parameter_constraints = {
        **NeighborsBase._parameter_constraints,
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "radius": [Interval(numbers.Real, 0, None, closed="both")],
    }

    def __init__(
        self, *, n_neighbors=5, radius=1.0, metric="minkowski", p=2, n_jobs=None, algorithm="auto",
        leaf_size=30, metric_params=None,
    ):
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.metric = metric
        self.p = p
        self.n_jobs = n_jobs
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric_params = metric_params

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
        self : NearestNeighbors
            The fitted estimator.
        """
        self._fit(X)
        return self
