"""Neighbours regressors: the mean target of the k nearest, or of those within a radius."""

import numbers
import warnings

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import (
    KNeighborsMixin,
    NeighborsBase,
    RadiusNeighborsMixin,
    flat_neighbor_weights,
    neighbor_weights,
    query_of_rows,
    scikit_learn_name_docstring,
)


class _RegressorTargets:
    """``fit`` of the regressors: targets stored as given (1-D or 2-D), as scikit-learn's."""

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Store the training set.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, numeric and finite.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.

        Returns
        -------
        self : object
            The fitted regressor.
        """
        self._fit(X, y)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class KNNRegressor(_RegressorTargets, KNeighborsMixin, RegressorMixin, NeighborsBase):
    """Exact k-nearest-neighbours regressor, a drop-in for scikit-learn's.

    Same parameters, attributes and predictions as
    :class:`sklearn.neighbors.KNeighborsRegressor` with ``algorithm="brute"``
    for the metrics below, on fastknn's exact search (see
    :class:`~fastknn.KNNClassifier`).

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours averaged.
    weights : {"uniform", "distance"}, callable or None, default="uniform"
        ``"uniform"`` (or None): the plain mean. ``"distance"``: weighted by
        inverse distance; when a query has neighbours at distance 0, only
        those count. A callable takes the distances array and returns
        weights of the same shape.
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
        The metric, as given (an alias such as ``"l1"`` stays), except that
        ``"minkowski"`` with ``p`` 1, 2 or inf is reported as
        ``"manhattan"``, ``"euclidean"`` or ``"chebyshev"``, as scikit-learn's.
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
    sklearn.neighbors.KNeighborsRegressor : The reference implementation.
    fastknn.model_selection.KNNRegressorCV : ``n_neighbors`` chosen by cross-validation.

    Notes
    -----
    Neighbours at equal distances are ordered by training index, lower
    first, so which of them count when they straddle the k-th place is
    fixed.

    Examples
    --------
    >>> from fastknn import KNNRegressor
    >>> X = [[0.0], [1.0], [2.0], [3.0]]
    >>> y = [0.0, 0.0, 1.0, 1.0]
    >>> reg = KNNRegressor(n_neighbors=2).fit(X, y)
    >>> reg.predict([[1.5]])
    array([0.5])
    """

    _parameter_constraints = {
        **NeighborsBase._parameter_constraints,
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "weights": [StrOptions({"uniform", "distance"}), callable, None],
    }

    def __init__(
        self, n_neighbors=5, *, weights="uniform", metric="minkowski", p=2, n_jobs=None, algorithm="auto",
        leaf_size=30, metric_params=None,
    ):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric
        self.p = p
        self.n_jobs = n_jobs
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric_params = metric_params

    def predict(self, X):
        """Predict the target of each query: the (weighted) mean of its neighbours'.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        y : ndarray of shape (n_queries,) or (n_queries, n_outputs), float64
            Predicted targets.
        """
        check_is_fitted(self)
        if self.weights in (None, "uniform"):
            neigh_ind = self.kneighbors(X, return_distance=False)
            neigh_dist = None
        else:
            neigh_dist, neigh_ind = self.kneighbors(X)
        targets = self._y.reshape((-1, 1)) if self._y.ndim == 1 else self._y
        predictions = neighbor_mean(targets[neigh_ind], neigh_dist, self.weights)
        return predictions.ravel() if self._y.ndim == 1 else predictions


class KNeighborsRegressor(KNNRegressor):
    __doc__ = scikit_learn_name_docstring("KNeighborsRegressor", "KNNRegressor")


def neighbor_mean(neighbor_targets, neigh_dist, weights):
    """The (weighted) mean of each query's neighbour targets, as scikit-learn's KNeighborsRegressor takes it.

    Parameters
    ----------
    neighbor_targets : ndarray of shape (n_queries, n_neighbors, n_outputs)
    neigh_dist : ndarray of shape (n_queries, n_neighbors) or None
        Needed unless ``weights`` is uniform.
    weights : {"uniform", "distance"}, callable or None

    Returns
    -------
    predictions : ndarray of shape (n_queries, n_outputs), float64
    """
    weights = neighbor_weights(neigh_dist, weights)
    if weights is None:
        return np.mean(neighbor_targets, axis=1)
    predictions = np.empty((neighbor_targets.shape[0], neighbor_targets.shape[2]), dtype=np.float64)
    denominator = np.sum(weights, axis=1)
    for output in range(neighbor_targets.shape[2]):
        predictions[:, output] = np.sum(neighbor_targets[:, :, output] * weights, axis=1) / denominator
    return predictions


class RadiusNeighborsRegressor(_RegressorTargets, RadiusNeighborsMixin, RegressorMixin, NeighborsBase):
    """Regressor averaging the training samples within a radius, a drop-in for scikit-learn's.

    Same parameters, attributes and predictions as
    :class:`sklearn.neighbors.RadiusNeighborsRegressor` with
    ``algorithm="brute"``, on fastknn's exact radius search.

    Parameters
    ----------
    radius : float, default=1.0
        Largest distance of a neighbour; a sample at exactly this distance
        counts.
    weights : {"uniform", "distance"}, callable or None, default="uniform"
        As :class:`~fastknn.KNNRegressor`'s; a callable receives an object
        array holding each query's distances, and returns weights in the
        same layout.
    metric : str, default="minkowski"
        As :class:`~fastknn.KNNRegressor`'s.
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
        Number of training samples.
    fit_method_ : {"brute", "pruned", "tree", "sparse"}
        The search used.

    See Also
    --------
    sklearn.neighbors.RadiusNeighborsRegressor : The reference implementation.

    Notes
    -----
    A query without neighbours within the radius is predicted NaN, with a
    warning, as scikit-learn does.

    Examples
    --------
    >>> from fastknn import RadiusNeighborsRegressor
    >>> X = [[0.0], [1.0], [2.0], [3.0]]
    >>> y = [0.0, 0.0, 1.0, 1.0]
    >>> reg = RadiusNeighborsRegressor(radius=1.0).fit(X, y)
    >>> reg.predict([[1.5], [2.0]]).round(3)
    array([0.5  , 0.667])
    """

    _parameter_constraints = {
        **NeighborsBase._parameter_constraints,
        "radius": [Interval(numbers.Real, 0, None, closed="both")],
        "weights": [StrOptions({"uniform", "distance"}), callable, None],
    }

    def __init__(
        self, radius=1.0, *, weights="uniform", metric="minkowski", p=2, n_jobs=None, algorithm="auto",
        leaf_size=30, metric_params=None,
    ):
        self.radius = radius
        self.weights = weights
        self.metric = metric
        self.p = p
        self.n_jobs = n_jobs
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric_params = metric_params

    def predict(self, X):
        """Predict the target of each query: the (weighted) mean of its neighbours within the radius.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        y : ndarray of shape (n_queries,) or (n_queries, n_outputs), float64
            Predicted targets; NaN for a query without neighbours.
        """
        check_is_fitted(self)
        dist, indices, offsets = self._radius_neighbors_flat(X, None, False)
        targets = self._y.reshape((-1, 1)) if self._y.ndim == 1 else self._y
        predictions = radius_mean(dist, offsets, targets[indices], self.weights)
        return predictions.ravel() if self._y.ndim == 1 else predictions


def radius_mean(dist, offsets, neighbor_targets, weights):
    """The (weighted) mean target of each query's neighbours within a radius, as RadiusNeighborsRegressor's.

    Parameters
    ----------
    dist : ndarray of shape (n_found,)
        Each neighbour's distance, query by query (flat, as ``fastknn._base.radius_search`` gives them).
    offsets : ndarray of shape (n_queries + 1,)
        Where each query's neighbours start in ``dist``.
    neighbor_targets : ndarray of shape (n_found, n_outputs)
        Each neighbour's targets.
    weights : {"uniform", "distance"}, callable or None

    Returns
    -------
    predictions : ndarray of shape (n_queries, n_outputs), float64
        NaN, with a warning, for a query without neighbours.

    Raises
    ------
    ZeroDivisionError
        Where a query's neighbours' weights sum to zero, as scikit-learn's.
    """
    n_queries = offsets.shape[0] - 1
    weights = flat_neighbor_weights(dist, offsets, weights)
    if weights is None:
        weights = np.ones(neighbor_targets.shape[0])
    query_ids = query_of_rows(offsets)
    totals = np.bincount(query_ids, weights=weights, minlength=n_queries)
    no_neighbors = np.diff(offsets) == 0
    if np.any((totals == 0) & ~no_neighbors):
        # scikit-learn's error (from np.average), for a callable's weights that cancel out.
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    predictions = np.empty((n_queries, neighbor_targets.shape[1]), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for output in range(neighbor_targets.shape[1]):
            sums = np.bincount(query_ids, weights=neighbor_targets[:, output] * weights, minlength=n_queries)
            predictions[:, output] = sums / totals
    predictions[no_neighbors] = np.nan
    if np.any(no_neighbors):
        warnings.warn("One or more samples have no neighbors within specified radius; predicting NaN.")
    return predictions
