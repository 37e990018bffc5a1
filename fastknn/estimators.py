"""scikit-learn compatible estimators on top of fastknn's exact search."""

import numbers
import warnings

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import DataConversionWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._kernels.vote import GIVEN, INVERSE_DISTANCE, UNIFORM
from ._pruning import choose_algorithm, pruned_search
from ._search import (
    METRIC_ALIASES,
    as_search_dtype,
    class_votes,
    prepare_euclidean,
    rdist_to_dist,
    resolve_metric,
    search,
)


class KNNClassifier(ClassifierMixin, BaseEstimator):
    """Exact k-nearest-neighbours classifier, a drop-in for scikit-learn's.

    Same parameters, attributes, predictions and scores as
    :class:`sklearn.neighbors.KNeighborsClassifier` with
    ``algorithm="brute"`` for the metrics below, computed by parallel numba
    kernels: a BLAS matrix product with exact re-ranking for Euclidean
    distances, tiled vectorised loops for the others.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours that vote.
    weights : {"uniform", "distance"}, callable or None, default="uniform"
        ``"uniform"`` (or None): every neighbour weighs the same.
        ``"distance"``: a neighbour weighs the inverse of its distance; when a
        query has neighbours at distance 0, only those vote. A callable takes
        the distances array and returns weights of the same shape.
    metric : str, default="minkowski"
        ``"euclidean"`` (``"l2"``), ``"manhattan"`` (``"cityblock"``,
        ``"l1"``), ``"chebyshev"`` (``"infinity"``) or ``"minkowski"``.
    p : float, default=2
        Power of the Minkowski metric, >= 1; ``p=1``, ``p=2`` and ``p=inf``
        run the Manhattan, Euclidean and Chebyshev kernels. Ignored for the
        other metrics.
    n_jobs : int, default=None
        Threads for the search: None keeps numba's current setting, -1 uses
        every thread numba may use (``NUMBA_NUM_THREADS``), a positive number
        that many. The previous setting is restored after each call.
    algorithm : {"auto", "brute", "pruned"}, default="auto"
        ``"brute"`` compares every query with every training row.
        ``"pruned"`` first proves, with cheap lower bounds computed at fit,
        that most training rows cannot be among the k nearest (same results,
        exactly). ``"auto"`` prunes when a probe at fit measures that it pays
        (see Notes).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,) or list of such arrays
        Class labels (one array per output for a 2-D target).
    effective_metric_ : str
        The metric used: ``"minkowski"`` with ``p`` 1, 2 or inf is reported
        as ``"manhattan"``, ``"euclidean"`` or ``"chebyshev"``.
    effective_metric_params_ : dict
        ``{"p": p}`` for ``"minkowski"``, else empty.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names seen during fit, when X has string column names.
    n_samples_fit_ : int
        Number of training samples.
    fit_method_ : {"brute", "pruned"}
        The search used, as chosen by ``algorithm``.
    outputs_2d_ : bool
        Whether the target was 2-D at fit.

    See Also
    --------
    sklearn.neighbors.KNeighborsClassifier : The reference implementation.
    fastknn.kneighbors : The neighbour search alone.

    Notes
    -----
    Neighbours at exactly equal distances are ordered by training index,
    lower first, whatever the number of threads. A vote tie goes to the
    class that comes first in ``classes_``.

    With ``algorithm="auto"``, pruning is used for the Manhattan, Chebyshev
    and Minkowski metrics when the training set has at least 2,000 rows and,
    searching a probe of 16 training rows at fit, at most a fifth of the
    training rows survive the first bound. Euclidean search keeps brute force:
    its PCA index costs more at fit than pruning saves on a predict of a few
    thousand queries (``algorithm="pruned"`` chooses it explicitly).

    float32 training data stays float32; integers of at most 16 bits are
    stored as float32 (exactly); other numeric data as float64. Queries are
    cast to the training dtype. Distances are computed exactly in float64 for
    the candidates that can be among the nearest, and returned as float64.

    Examples
    --------
    >>> from fastknn import KNNClassifier
    >>> X = [[0.0], [1.0], [2.0], [3.0]]
    >>> y = [0, 0, 1, 1]
    >>> clf = KNNClassifier(n_neighbors=3).fit(X, y)
    >>> clf.predict([[1.1]])
    array([0])
    >>> clf.predict_proba([[0.9]])
    array([[0.666..., 0.333...]])
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "weights": [StrOptions({"uniform", "distance"}), callable, None],
        "metric": [StrOptions(set(METRIC_ALIASES))],
        "p": [Interval(numbers.Real, 1, None, closed="both")],  # p=inf: Chebyshev
        "n_jobs": [numbers.Integral, None],
        "algorithm": [StrOptions({"auto", "brute", "pruned"})],
    }

    def __init__(self, n_neighbors=5, *, weights="uniform", metric="minkowski", p=2, n_jobs=None, algorithm="auto"):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric
        self.p = p
        self.n_jobs = n_jobs
        self.algorithm = algorithm

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Store the training set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, numeric and finite. Sparse input is not supported.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels.

        Returns
        -------
        self : KNNClassifier
            The fitted classifier.
        """
        if self.n_jobs == 0:
            raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive number.")
        X, y = validate_data(self, X, y, dtype="numeric", order="C", multi_output=True)
        self.effective_metric_, power = resolve_metric(self.metric, self.p)
        self.effective_metric_params_ = {} if power is None else {"p": power}

        check_classification_targets(y)
        y = np.asarray(y)
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            if y.ndim != 1:
                warnings.warn(
                    "A column-vector y was passed when a 1d array was expected. "
                    "Please change the shape of y to (n_samples,), for example using ravel().",
                    DataConversionWarning,
                    stacklevel=2,
                )
            self.outputs_2d_ = False
            y = y.reshape((-1, 1))
        else:
            self.outputs_2d_ = True
        classes, encoded = [], np.empty(y.shape, dtype=np.int64)
        for output in range(y.shape[1]):
            classes_k, encoded[:, output] = np.unique(y[:, output], return_inverse=True)
            classes.append(classes_k)
        self.classes_ = classes if self.outputs_2d_ else classes[0]
        self._y = encoded

        self._fit_X = as_search_dtype(X)
        self._euclidean_train = prepare_euclidean(self._fit_X) if self.effective_metric_ == "euclidean" else None
        self.n_samples_fit_ = self._fit_X.shape[0]
        self.fit_method_, self._pruned_index = choose_algorithm(
            self.algorithm, self._fit_X, self.effective_metric_, power, self.n_neighbors, n_jobs=self.n_jobs
        )
        return self

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Find the nearest training samples of each query.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Queries. None means the training set, each sample excluding
            itself (as scikit-learn).
        n_neighbors : int, default=None
            Number of neighbours; defaults to the constructor's value.
        return_distance : bool, default=True
            Whether to return the distances too.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors), float64
            Distances, ascending; only when ``return_distance``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors), int64
            Training indices; equal distances are ordered by index.
        """
        check_is_fitted(self)
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, numbers.Integral):
            raise TypeError(f"n_neighbors does not take {type(n_neighbors)} value, enter integer value")
        if n_neighbors <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {n_neighbors}")

        query_is_train = X is None
        if query_is_train:
            queries = self._fit_X
            n_neighbors += 1
        else:
            X = validate_data(self, X, dtype="numeric", order="C", reset=False)
            queries = np.ascontiguousarray(X, dtype=self._fit_X.dtype)
        if n_neighbors > self.n_samples_fit_:
            if query_is_train:
                n_neighbors -= 1
            raise ValueError(
                "Expected n_neighbors <= n_samples_fit, but "
                f"n_neighbors = {n_neighbors}, n_samples_fit = {self.n_samples_fit_}, "
                f"n_samples = {queries.shape[0]}"
            )

        metric = self.effective_metric_
        power = self.effective_metric_params_.get("p")
        if self.fit_method_ == "pruned":
            rdist, neigh_ind = pruned_search(
                queries, self._fit_X, self._pruned_index, n_neighbors, n_jobs=self.n_jobs
            )
        else:
            rdist, neigh_ind = search(
                queries, self._fit_X, n_neighbors, metric, power,
                euclidean_train=self._euclidean_train, n_jobs=self.n_jobs,
            )
        neigh_dist = rdist_to_dist(rdist, metric, power)

        if query_is_train:
            # Drop each sample from its own neighbours; when exact duplicates
            # pushed it out of the list, drop the farthest neighbour instead.
            n_queries = queries.shape[0]
            sample_mask = neigh_ind != np.arange(n_queries)[:, None]
            self_absent = np.all(sample_mask, axis=1)
            sample_mask[:, -1][self_absent] = False
            neigh_ind = neigh_ind[sample_mask].reshape(n_queries, n_neighbors - 1)
            neigh_dist = neigh_dist[sample_mask].reshape(n_queries, n_neighbors - 1)
        if return_distance:
            return neigh_dist, neigh_ind
        return neigh_ind

    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity"):
        """Sparse graph of each query's nearest training samples.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Queries; None means the training set, excluding each sample itself.
        n_neighbors : int, default=None
            Number of neighbours; defaults to the constructor's value.
        mode : {"connectivity", "distance"}, default="connectivity"
            Ones, or the distances, as the matrix entries.

        Returns
        -------
        graph : scipy.sparse.csr_matrix of shape (n_queries, `n_samples_fit_`)
            Row i holds the neighbours of query i: ones, or their distances.
        """
        check_is_fitted(self)
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        if mode == "connectivity":
            neigh_ind = self.kneighbors(X, n_neighbors, return_distance=False)
            data = np.ones(neigh_ind.size)
        elif mode == "distance":
            neigh_dist, neigh_ind = self.kneighbors(X, n_neighbors, return_distance=True)
            data = neigh_dist.ravel()
        else:
            raise ValueError(
                f'Unsupported mode, must be one of "connectivity", or "distance" but got "{mode}" instead'
            )
        n_queries, n_cols = neigh_ind.shape
        indptr = np.arange(0, n_queries * n_cols + 1, n_cols)
        return csr_matrix((data, neigh_ind.ravel(), indptr), shape=(n_queries, self.n_samples_fit_))

    def _votes(self, X):
        """Unnormalised class votes, one (n_queries, n_classes) array per output."""
        if self.weights in (None, "uniform"):
            neigh_ind = self.kneighbors(X, return_distance=False)
            weighting, values = UNIFORM, np.empty((0, 0))
        else:
            neigh_dist, neigh_ind = self.kneighbors(X)
            if self.weights == "distance":
                weighting, values = INVERSE_DISTANCE, neigh_dist
            else:
                weighting = GIVEN
                values = np.ascontiguousarray(self.weights(neigh_dist), dtype=np.float64)
                if values.shape != neigh_dist.shape:
                    raise ValueError(
                        f"weights callable returned shape {values.shape}, expected {neigh_dist.shape}."
                    )
                if np.any(np.all(values == 0, axis=1)):
                    raise ValueError(
                        "All neighbors of some sample is getting zero weights. "
                        "Please modify 'weights' to avoid this case if you are using a user-defined function."
                    )
        classes = self.classes_ if self.outputs_2d_ else [self.classes_]
        votes = []
        for output, classes_k in enumerate(classes):
            labels = np.ascontiguousarray(self._y[neigh_ind, output])
            votes.append(class_votes(labels, values, weighting, classes_k.size))
        return votes

    def predict(self, X):
        """Predict the class of each query.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        y : ndarray of shape (n_queries,) or (n_queries, n_outputs)
            The class with the largest vote; ties go to the first in ``classes_``.
        """
        check_is_fitted(self)
        votes = self._votes(X)
        classes = self.classes_ if self.outputs_2d_ else [self.classes_]
        predictions = [classes_k[np.argmax(v, axis=1)] for classes_k, v in zip(classes, votes)]
        if not self.outputs_2d_:
            return predictions[0]
        return np.stack(predictions, axis=1)

    def predict_proba(self, X):
        """Class probabilities: each query's normalised neighbour votes.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        proba : ndarray of shape (n_queries, n_classes) or list of such arrays
            Columns in the order of ``classes_``; one array per output for a
            2-D target.
        """
        check_is_fitted(self)
        probabilities = []
        for votes_k in self._votes(X):
            normalizer = votes_k.sum(axis=1, keepdims=True)
            normalizer[normalizer == 0.0] = 1.0
            probabilities.append(votes_k / normalizer)
        return probabilities if self.outputs_2d_ else probabilities[0]
