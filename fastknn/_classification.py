"""Neighbours classifiers: the k nearest (:class:`KNNClassifier`) or those within a radius."""

import numbers
import warnings

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.exceptions import DataConversionWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _is_arraylike, check_is_fitted

from ._base import (
    KNeighborsMixin,
    NeighborsBase,
    RadiusNeighborsMixin,
    flat_neighbor_weights,
    query_of_rows,
    scikit_learn_name_docstring,
)
from ._kernels.vote import GIVEN, INVERSE_DISTANCE, UNIFORM
from ._search import class_votes


class _ClassifierTargets:
    """Class labels encoded per output, as scikit-learn's neighbours classifiers store them."""

    def _set_targets(self, y):
        check_classification_targets(y)
        y = np.asarray(y)
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            if y.ndim != 1:
                warnings.warn(
                    "A column-vector y was passed when a 1d array was expected. "
                    "Please change the shape of y to (n_samples,), for example using ravel().",
                    DataConversionWarning,
                    stacklevel=4,
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags


class KNNClassifier(_ClassifierTargets, KNeighborsMixin, ClassifierMixin, NeighborsBase):
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
        ``"l1"``), ``"chebyshev"`` (``"infinity"``), ``"minkowski"`` or ``"cosine"``.
    p : float, default=2
        Power of the Minkowski metric, >= 1; ``p=1``, ``p=2`` and ``p=inf``
        run the Manhattan, Euclidean and Chebyshev kernels. Ignored for the
        other metrics.
    n_jobs : int, default=None
        Threads for the search: None keeps numba's current setting, -1 uses
        every thread numba may use (``NUMBA_NUM_THREADS``), a positive number
        that many. The previous setting is restored after each call.
    algorithm : {"auto", "brute", "pruned", "kd_tree", "ball_tree"}, default="auto"
        ``"brute"`` compares every query with every training row.
        ``"pruned"`` first proves, with cheap lower bounds computed at fit,
        that most training rows cannot be among the k nearest (same results,
        exactly). ``"kd_tree"`` and ``"ball_tree"`` (scikit-learn's names;
        both run the same k-d tree, ``fit_method_ == "tree"``) partition the
        training rows at fit, which pays on a few features. ``"auto"`` takes
        the tree on few features and otherwise prunes when a probe at fit
        measures that it pays (see Notes).
    leaf_size : int, default=30
        Points per leaf of the k-d tree (``fit_method_ == "tree"``), as
        scikit-learn's; it changes the tree's speed, never its results, and
        the other methods ignore it.
    metric_params : dict, default=None
        scikit-learn's extra metric arguments: ``{"p": power}`` sets the
        Minkowski power in place of ``p`` (with scikit-learn's warning). No
        other key is supported (weighted Minkowski, ``"w"``, is not
        implemented).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,) or list of such arrays
        Class labels (one array per output for a 2-D target).
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

    With ``algorithm="auto"``, the tree is used for data with at most 6
    features (Euclidean) or 8 (the other metrics), where it beats brute
    force for fit + predict (measured, see the performance page); above
    that, pruning is used for the Manhattan, Chebyshev
    and Minkowski metrics when the training set has at least 2,000 rows and,
    searching a probe of 16 training rows at fit, at most a fifth of the
    training rows survive the first bound. Euclidean search keeps brute force:
    its PCA index costs more at fit than pruning saves on a predict of a few
    thousand queries (``algorithm="pruned"`` chooses it explicitly).

    float32 training data stays float32; integers of at most 16 bits are
    stored as float32 (exactly); other numeric data as float64. Queries are
    cast to the training dtype where that is exact; float64 queries that
    float32 cannot hold are searched in float64 against float32 rows, as
    scikit-learn computes (the search is prepared again in float64 for that
    call). Distances are computed exactly in float64 for the candidates that
    can be among the nearest, and returned as float64.

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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Store the training set.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, numeric and finite. Sparse input is not supported.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels.

        Returns
        -------
        self : KNNClassifier
            The fitted classifier.
        """
        self._fit(X, y)
        return self

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
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
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
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
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


class KNeighborsClassifier(KNNClassifier):
    __doc__ = scikit_learn_name_docstring("KNeighborsClassifier", "KNNClassifier")


class RadiusNeighborsClassifier(_ClassifierTargets, RadiusNeighborsMixin, ClassifierMixin, NeighborsBase):
    """Classifier voting among the training samples within a radius, a drop-in for scikit-learn's.

    Same parameters, attributes and predictions as
    :class:`sklearn.neighbors.RadiusNeighborsClassifier` with
    ``algorithm="brute"``, on fastknn's exact radius search.

    Parameters
    ----------
    radius : float, default=1.0
        Largest distance of a voting neighbour; a sample at exactly this
        distance votes.
    weights : {"uniform", "distance"}, callable or None, default="uniform"
        As :class:`~fastknn.KNNClassifier`'s; a callable receives an object
        array holding each query's distances, and returns weights in the
        same layout.
    metric : str, default="minkowski"
        As :class:`~fastknn.KNNClassifier`'s.
    p : float, default=2
        Power of the Minkowski metric, >= 1.
    outlier_label : {manual label, "most_frequent"}, default=None
        Label of queries with no neighbour within the radius: a label (one
        per output for a 2-D target), ``"most_frequent"`` (the most frequent
        training class), or None to raise a ValueError for such queries.
    n_jobs : int, default=None
        Threads for the search, as :class:`~fastknn.KNNClassifier`'s.
    algorithm : {"auto", "brute", "pruned", "kd_tree", "ball_tree"}, default="auto"
        The search method: ``"pruned"`` computes a distance exactly only
        when cheap lower bounds of it are within the radius; ``"kd_tree"``
        and ``"ball_tree"`` (one k-d tree) visit only the tree's cells that
        reach the radius.
    leaf_size : int, default=30
        Points per leaf of the k-d tree, as :class:`~fastknn.KNNClassifier`'s.
    metric_params : dict, default=None
        ``{"p": power}`` or None, as :class:`~fastknn.KNNClassifier`'s.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,) or list of such arrays
        Class labels (one array per output for a 2-D target).
    outlier_label_ : list or None
        The label given to queries without neighbours, per output.
    effective_metric_ : str
        The metric used (see :class:`~fastknn.KNNClassifier`).
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
    outputs_2d_ : bool
        Whether the target was 2-D at fit.

    See Also
    --------
    sklearn.neighbors.RadiusNeighborsClassifier : The reference implementation.
    fastknn.KNNClassifier : Votes of a fixed number of neighbours.

    Notes
    -----
    Distances are exact in float64 at the boundary: a sample is a
    neighbour when its distance (squared for Euclidean, to the power ``p``
    for Minkowski) is at most the radius's. A vote tie goes to the class
    that comes first in ``classes_``.

    Examples
    --------
    >>> from fastknn import RadiusNeighborsClassifier
    >>> X = [[0.0], [1.0], [2.0], [3.0]]
    >>> y = [0, 0, 1, 1]
    >>> clf = RadiusNeighborsClassifier(radius=1.0, outlier_label="most_frequent").fit(X, y)
    >>> clf.predict([[0.5], [2.5], [10.0]])
    array([0, 1, 0])
    >>> clf.predict_proba([[1.0]])
    array([[0.666..., 0.333...]])
    """

    _parameter_constraints = {
        **NeighborsBase._parameter_constraints,
        "radius": [Interval(numbers.Real, 0, None, closed="both")],
        "weights": [StrOptions({"uniform", "distance"}), callable, None],
        "outlier_label": [numbers.Integral, str, "array-like", None],
    }

    def __init__(
        self, radius=1.0, *, weights="uniform", metric="minkowski", p=2, outlier_label=None, n_jobs=None,
        algorithm="auto", leaf_size=30, metric_params=None,
    ):
        self.radius = radius
        self.weights = weights
        self.metric = metric
        self.p = p
        self.outlier_label = outlier_label
        self.n_jobs = n_jobs
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric_params = metric_params

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Store the training set and resolve ``outlier_label``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, numeric and finite.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels.

        Returns
        -------
        self : RadiusNeighborsClassifier
            The fitted classifier.
        """
        self._fit(X, y)
        classes = self.classes_ if self.outputs_2d_ else [self.classes_]
        self.outlier_label_ = resolve_outlier_label(
            self.outlier_label, classes, lambda output: np.bincount(self._y[:, output])
        )
        return self

    def predict(self, X):
        """Predict the class of each query.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        y : ndarray of shape (n_queries,) or (n_queries, n_outputs)
            The class with the largest vote, or ``outlier_label_`` for a
            query without neighbours.
        """
        probabilities = self.predict_proba(X)
        classes = self.classes_
        if not self.outputs_2d_:
            probabilities, classes = [probabilities], [classes]
        predictions = radius_predictions(probabilities, classes, self.outlier_label_)
        return predictions if self.outputs_2d_ else predictions.ravel()

    def predict_proba(self, X):
        """Class probabilities: each query's normalised neighbour votes.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        proba : ndarray of shape (n_queries, n_classes) or list of such arrays
            Columns in the order of ``classes_``. A query without neighbours
            gets probability 1 for ``outlier_label_`` (0 everywhere, with a
            warning, when that label is not a training class).

        Raises
        ------
        ValueError
            When a query has no neighbour and ``outlier_label`` is None.
        """
        check_is_fitted(self)
        dist, indices, offsets = self._radius_neighbors_flat(X, None, False)
        classes = self.classes_ if self.outputs_2d_ else [self.classes_]
        probabilities = radius_proba(dist, offsets, self._y[indices], classes, self.outlier_label_, self.weights)
        return probabilities if self.outputs_2d_ else probabilities[0]


def radius_proba(dist, offsets, neighbor_labels, classes, outlier_label, weights, first_query=0):
    """Class probabilities of queries from their neighbours within a radius, as RadiusNeighborsClassifier's.

    Parameters
    ----------
    dist : ndarray of shape (n_found,)
        Each neighbour's distance, query by query (flat, as ``fastknn._base.radius_search`` gives them).
    offsets : ndarray of shape (n_queries + 1,)
        Where each query's neighbours start in ``dist``.
    neighbor_labels : ndarray of shape (n_found, n_outputs)
        Each neighbour's labels, encoded as indices into ``classes``.
    classes : list of ndarray
        The classes of each output.
    outlier_label : list or None
        The label of a query without neighbours, per output; None raises
        for such a query.
    weights : {"uniform", "distance"}, callable or None
    first_query : int, default=0
        Number of the first query, for the error naming the queries
        without neighbours.

    Returns
    -------
    probabilities : list of ndarray of shape (n_queries, n_classes)
        One per output, rows normalised; a query without neighbours gets
        probability 1 for ``outlier_label`` (0 everywhere, with a warning,
        when that label is not a class).
    """
    n_queries = offsets.shape[0] - 1
    outliers = np.flatnonzero(np.diff(offsets) == 0)
    if outlier_label is None and outliers.size > 0:
        raise ValueError(
            f"No neighbors found for test samples {outliers + first_query!r}, you can try using larger radius, "
            "giving a label for outliers, or considering removing them from your dataset."
        )
    weights = flat_neighbor_weights(dist, offsets, weights)
    query_ids = query_of_rows(offsets)
    probabilities = []
    for output, classes_k in enumerate(classes):
        n_classes = classes_k.size
        cells = query_ids * n_classes + neighbor_labels[:, output]
        proba = np.bincount(cells, weights=weights, minlength=n_queries * n_classes)
        proba = proba.reshape(n_queries, n_classes).astype(np.float64)
        if outliers.size > 0:
            label_index = np.flatnonzero(classes_k == outlier_label[output])
            if label_index.size == 1:
                proba[outliers, label_index[0]] = 1.0
            else:
                warnings.warn(
                    f"Outlier label {outlier_label[output]} is not in training classes. "
                    "All class probabilities of outliers will be assigned with 0."
                )
        normalizer = proba.sum(axis=1)[:, np.newaxis]
        normalizer[normalizer == 0.0] = 1.0
        proba /= normalizer
        probabilities.append(proba)
    return probabilities


def radius_predictions(probabilities, classes, outlier_label):
    """Predicted classes, shape (n_queries, n_outputs), from :func:`radius_proba`'s probabilities.

    The most probable class (ties to the first in ``classes``), or
    ``outlier_label`` where every probability is 0.
    """
    n_queries = probabilities[0].shape[0]
    predictions = np.empty((n_queries, len(classes)), dtype=classes[0].dtype)
    for output, proba in enumerate(probabilities):
        predictions[:, output] = classes[output].take(proba.argmax(axis=1))
        no_vote = np.flatnonzero((proba == 0).all(axis=1))
        if no_vote.size:
            predictions[no_vote, output] = outlier_label[output]
    return predictions


def resolve_outlier_label(outlier_label, classes, class_counts):
    """The ``outlier_label_`` of a radius classifier: one label per output, or None.

    Parameters
    ----------
    outlier_label : label, array-like of labels, "most_frequent" or None
        The ``outlier_label`` parameter.
    classes : list of ndarray
        The classes of each output.
    class_counts : callable
        ``class_counts(output)``: how many training samples each class of
        an output has; called only for ``"most_frequent"``.

    Returns
    -------
    outlier_label_ : list or None
    """
    if outlier_label is None:
        outlier_label_ = None
    elif isinstance(outlier_label, str) and outlier_label == "most_frequent":
        outlier_label_ = [
            classes_k[class_counts(output).argmax()] for output, classes_k in enumerate(classes)
        ]
    else:
        if _is_arraylike(outlier_label) and not isinstance(outlier_label, str):
            if len(outlier_label) != len(classes):
                raise ValueError(
                    f"The length of outlier_label: {outlier_label} is inconsistent with the "
                    f"output length: {len(classes)}"
                )
            outlier_label_ = list(outlier_label)
        else:
            outlier_label_ = [outlier_label] * len(classes)
        for classes_k, label in zip(classes, outlier_label_):
            if _is_arraylike(label) and not isinstance(label, str):
                raise TypeError(
                    f"The outlier_label of classes {classes_k} is supposed to be a scalar, got {label}."
                )
            if np.append(classes_k, label).dtype != classes_k.dtype:
                raise TypeError(
                    f"The dtype of outlier_label {label} is inconsistent with classes {classes_k} in y."
                )
    return outlier_label_
