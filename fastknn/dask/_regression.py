"""Neighbours regression on Dask arrays: the k nearest, or those within a radius."""

import warnings

import dask.array as da
import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils._param_validation import StrOptions

from .._regression import neighbor_mean, radius_mean
from .._search import rdist_to_dist
from ._base import DaskNeighborsBase, as_dask_targets
from ._neighbors import as_row_blocks, flat_radius_candidates
from ._unsupervised import RADIUS_PARAMETER_CONSTRAINTS, RadiusNeighborsMixin


def _predict_block(candidates, outputs_2d, weights, metric, p):
    """``map_blocks`` function: the (weighted) mean target of each query of a block.

    The mean of :class:`fastknn.KNNRegressor`, on the targets the merged
    candidates carry.
    """
    distances = None
    if weights not in (None, "uniform"):
        distances = rdist_to_dist(np.array(candidates["rdist"]), metric, p)
    predictions = neighbor_mean(candidates["target"], distances, weights)
    return predictions if outputs_2d else predictions[:, 0]


def _fit_targets(estimator, X, y):
    """Set ``estimator.outputs_2d_``; ``y`` as float64 targets of shape (n_samples, n_outputs), lazily."""
    estimator.outputs_2d_ = np.ndim(y) == 2
    y = as_dask_targets(y, X)
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise ValueError(f"y must hold real numbers, got dtype {y.dtype}.")
    return y.astype(np.float64)


class KNNRegressor(RegressorMixin, DaskNeighborsBase):
    """Exact k-nearest-neighbours regressor on Dask arrays.

    :class:`fastknn.KNNRegressor`'s parameters and predictions, with the
    training set in shards on the workers of a Dask cluster and every
    prediction a lazy Dask array. Each (query block, shard) pair is searched
    in one task; the shards' candidates, with their targets, are merged by a
    tree reduction and averaged per query block.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours averaged.
    weights : {"uniform", "distance"}, callable or None, default="uniform"
        As for :class:`fastknn.KNNRegressor`; a callable runs on the workers,
        on each block's distances.
    metric : str, default="minkowski"
        As for :class:`fastknn.KNNRegressor`.
    p : float, default=2
        Power of the Minkowski metric, >= 1.
    algorithm : {"auto", "brute", "pruned", "kd_tree", "ball_tree"}, default="auto"
        Chosen per shard, as for :class:`fastknn.dask.KNNClassifier`.
    n_jobs : int or None, default=1
        Threads per task (see :func:`fastknn.dask.kneighbors`).
    persist : bool, default=True
        Build the shards at ``fit`` and keep them in the workers' memory
        (see :class:`fastknn.dask.KNNClassifier`).
    split_every : int, optional
        Candidate lists merged per task of the tree reduction.

    Attributes
    ----------
    effective_metric_ : str
        The metric used, as :class:`fastknn.KNNRegressor` reports it.
    effective_metric_params_ : dict
        ``{"p": p}`` for ``"minkowski"``, else empty.
    n_features_in_ : int
        Number of features seen during fit.
    n_samples_fit_ : int
        Number of training samples.
    shard_rows_ : ndarray of shape (n_shards,)
        Training rows per shard.
    outputs_2d_ : bool
        Whether the target was 2-D at fit.

    See Also
    --------
    fastknn.KNNRegressor : The same regressor in one process.
    fastknn.dask.KNNClassifier : The classifier on Dask arrays.

    Notes
    -----
    Predictions equal :class:`fastknn.KNNRegressor`'s: the same neighbours
    (ties by global training index) and the same arithmetic for the mean.
    The training rows and targets never travel to the client.

    Examples
    --------
    >>> import dask.array as da
    >>> from fastknn.dask import KNNRegressor
    >>> X = da.from_array([[0.0], [1.0], [2.0], [3.0]], chunks=(2, 1))
    >>> y = da.from_array([0.0, 0.0, 1.0, 1.0], chunks=2)
    >>> reg = KNNRegressor(n_neighbors=2).fit(X, y)
    >>> reg.predict(da.from_array([[1.4], [2.6]], chunks=(1, 1))).compute()
    array([0.5, 1. ])
    """

    _parameter_constraints = {
        **DaskNeighborsBase._parameter_constraints,
        "weights": [StrOptions({"uniform", "distance"}), callable, None],
    }

    def __init__(self, n_neighbors=5, *, weights="uniform", metric="minkowski", p=2, algorithm="auto", n_jobs=1,
                 persist=True, split_every=None):
        super().__init__(
            n_neighbors, metric=metric, p=p, algorithm=algorithm, n_jobs=n_jobs, persist=persist,
            split_every=split_every,
        )
        self.weights = weights

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Shard the training set on the workers, with its targets.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, chunked by rows: each block is a shard (a scipy
            sparse block runs the sparse search; see :func:`fastknn.dask.kneighbors`).
        y : dask.array.Array or array-like of shape (n_samples,) or (n_samples, n_outputs)
            Numeric targets; rechunked to ``X``'s rows.

        Returns
        -------
        self : KNNRegressor
            The fitted regressor.
        """
        X = as_row_blocks(X, "X")
        return self._fit_shards(X, _fit_targets(self, X, y))

    def predict(self, X):
        """Predict the target of each query, lazily: the (weighted) mean of its neighbours'.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
            Queries, chunked by rows.

        Returns
        -------
        y : dask.array.Array of shape (n_queries,) or (n_queries, n_outputs), float64
            Predicted targets.
        """
        merged = self._candidates(X, self.n_neighbors)
        power = self.effective_metric_params_.get("p")
        arguments = (self.outputs_2d_, self.weights, self.effective_metric_, power)
        if self.outputs_2d_:
            n_outputs = self._candidate_dtype["target"].shape[0]
            return merged.map_blocks(
                _predict_block, *arguments, dtype=np.float64, chunks=(merged.chunks[0], (n_outputs,))
            )
        return merged.map_blocks(_predict_block, *arguments, dtype=np.float64, drop_axis=1)

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R² of the predictions, as a lazy 0-d Dask array.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
            Queries, chunked by rows.
        y : dask.array.Array or array-like of shape (n_queries,) or (n_queries, n_outputs)
            True targets.
        sample_weight : dask.array.Array or array-like of shape (n_queries,), optional
            Weights of the queries.

        Returns
        -------
        score : dask.array.Array of shape ()
            scikit-learn's ``r2_score`` (outputs averaged uniformly; an
            output whose targets are all equal scores 1 when predicted
            exactly, else 0), summed block by block on the workers.
        """
        X, y, weights = self._score_inputs(X, y, sample_weight)
        if y.shape[0] < 2:
            warnings.warn("R^2 score is not well-defined with less than two samples.", UndefinedMetricWarning)
            return da.from_array(np.array(np.nan))
        predictions = self.predict(X)
        y = y.astype(np.float64)
        if predictions.ndim == 1:
            predictions = predictions[:, None]
        if weights is None:
            weights = da.ones((y.shape[0], 1), chunks=(y.chunks[0], 1))
        else:
            weights = weights[:, None]
        residual = (weights * (y - predictions) ** 2).sum(axis=0)
        mean = (weights * y).sum(axis=0) / weights.sum()
        total = (weights * (y - mean) ** 2).sum(axis=0)
        perfect = da.where(residual == 0.0, 1.0, 0.0)
        return da.where(total == 0.0, perfect, 1.0 - residual / da.where(total == 0.0, 1.0, total)).mean()


def _radius_predict_block(found, outputs_2d, *, weights, metric, p, candidate_dtype):
    """``map_blocks`` function: the (weighted) mean target within the radius of each query of a block.

    The mean of :class:`fastknn.RadiusNeighborsRegressor`, on the targets the
    merged candidates carry.
    """
    flat, offsets = flat_radius_candidates(found, candidate_dtype)
    distances = rdist_to_dist(np.array(flat["rdist"]), metric, p)
    predictions = radius_mean(distances, offsets, flat["target"], weights)
    return predictions if outputs_2d else predictions[:, 0]


class RadiusNeighborsRegressor(RadiusNeighborsMixin, RegressorMixin, DaskNeighborsBase):
    """Regressor averaging the training samples within a radius, on Dask arrays.

    :class:`fastknn.RadiusNeighborsRegressor`'s parameters and predictions,
    with the training set in shards on the workers of a Dask cluster and
    every prediction a lazy Dask array. Each (query block, shard) pair is
    searched in one task; the shards' lists, with their targets, are
    concatenated by a tree reduction and averaged per query block.

    Parameters
    ----------
    radius : float, default=1.0
        Largest distance of a neighbour; a sample at exactly this distance
        counts.
    weights : {"uniform", "distance"}, callable or None, default="uniform"
        As for :class:`fastknn.RadiusNeighborsRegressor`; a callable runs on
        the workers, on each block's distances.
    metric : str, default="minkowski"
        As for :class:`fastknn.RadiusNeighborsRegressor`.
    p : float, default=2
        Power of the Minkowski metric, >= 1.
    algorithm : {"auto", "brute", "pruned", "kd_tree", "ball_tree"}, default="auto"
        Chosen per shard, as for :class:`fastknn.dask.KNNClassifier`.
    n_jobs : int or None, default=1
        Threads per task (see :func:`fastknn.dask.kneighbors`).
    persist : bool, default=True
        Build the shards at ``fit`` and keep them in the workers' memory
        (see :class:`fastknn.dask.KNNClassifier`).
    split_every : int, optional
        Lists merged per task of the tree reduction.

    Attributes
    ----------
    effective_metric_ : str
        The metric used, as :class:`fastknn.RadiusNeighborsRegressor` reports it.
    effective_metric_params_ : dict
        ``{"p": p}`` for ``"minkowski"``, else empty.
    n_features_in_ : int
        Number of features seen during fit.
    n_samples_fit_ : int
        Number of training samples.
    shard_rows_ : ndarray of shape (n_shards,)
        Training rows per shard.
    outputs_2d_ : bool
        Whether the target was 2-D at fit.

    See Also
    --------
    fastknn.RadiusNeighborsRegressor : The same regressor in one process.
    fastknn.dask.KNNRegressor : The mean of a fixed number of neighbours.

    Notes
    -----
    Predictions equal :class:`fastknn.RadiusNeighborsRegressor`'s: the same
    neighbours and the same arithmetic for the mean. A query without
    neighbours is predicted NaN; the warning about it is raised on the
    worker that computed its block.

    Examples
    --------
    >>> import dask.array as da
    >>> from fastknn.dask import RadiusNeighborsRegressor
    >>> X = da.from_array([[0.0], [1.0], [2.0], [3.0]], chunks=(2, 1))
    >>> y = da.from_array([0.0, 0.0, 1.0, 1.0], chunks=2)
    >>> reg = RadiusNeighborsRegressor(radius=1.0).fit(X, y)
    >>> reg.predict(da.from_array([[1.5], [2.0]], chunks=(1, 1))).compute().round(3)
    array([0.5  , 0.667])
    """

    _parameter_constraints = {
        **RADIUS_PARAMETER_CONSTRAINTS,
        "weights": [StrOptions({"uniform", "distance"}), callable, None],
    }

    def __init__(self, radius=1.0, *, weights="uniform", metric="minkowski", p=2, algorithm="auto", n_jobs=1,
                 persist=True, split_every=None):
        self.radius = radius
        self.weights = weights
        self.metric = metric
        self.p = p
        self.algorithm = algorithm
        self.n_jobs = n_jobs
        self.persist = persist
        self.split_every = split_every

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Shard the training set on the workers, with its targets.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, chunked by rows: each block is a shard (a scipy
            sparse block runs the sparse search; see :func:`fastknn.dask.kneighbors`).
        y : dask.array.Array or array-like of shape (n_samples,) or (n_samples, n_outputs)
            Numeric targets; rechunked to ``X``'s rows.

        Returns
        -------
        self : RadiusNeighborsRegressor
            The fitted regressor.
        """
        X = as_row_blocks(X, "X")
        return self._fit_shards(X, _fit_targets(self, X, y))

    def predict(self, X):
        """Predict the target of each query, lazily: the (weighted) mean of its neighbours' within the radius.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
            Queries, chunked by rows.

        Returns
        -------
        y : dask.array.Array of shape (n_queries,) or (n_queries, n_outputs), float64
            Predicted targets; NaN for a query without neighbours.
        """
        found, _ = self._radius_lists(X, None, False)
        options = {
            "weights": self.weights, "metric": self.effective_metric_,
            "p": self.effective_metric_params_.get("p"), "candidate_dtype": self._candidate_dtype,
        }
        if self.outputs_2d_:
            n_outputs = self._candidate_dtype["target"].shape[0]
            return found.map_blocks(
                _radius_predict_block, True, dtype=np.float64, chunks=(found.chunks[0], (n_outputs,)),
                meta=np.empty((0, 0)), **options,
            )
        return found.map_blocks(
            _radius_predict_block, False, dtype=np.float64, drop_axis=1, meta=np.empty((0,)), **options
        )

    score = KNNRegressor.score
