"""Neighbours classification on Dask arrays: the k nearest, or those within a radius."""

import numbers
import warnings

import dask
import dask.array as da
import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.exceptions import DataConversionWarning
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import check_classification_targets

from .._classification import radius_predictions, radius_proba, resolve_outlier_label
from .._search import rdist_to_dist
from ..model_selection import _neighbor_votes as neighbor_votes
from ._base import DaskNeighborsBase, as_dask_targets
from ._neighbors import as_row_blocks, flat_radius_candidates
from ._unsupervised import RADIUS_PARAMETER_CONSTRAINTS, RadiusNeighborsMixin


def _encode_labels(block, classes):
    """``map_blocks`` function: labels as indices into each output's classes."""
    return np.stack([np.searchsorted(c, block[:, k]) for k, c in enumerate(classes)], axis=1).astype(np.int64)


def _neighbour_votes(candidates, output, n_classes, weights, metric, p):
    """Unnormalised class votes of a block of merged candidates for one output, shape (n_queries, n_classes).

    The vote of :class:`fastknn.KNNClassifier`, on the labels the candidates carry.
    """
    distances = rdist_to_dist(np.array(candidates["rdist"]), metric, p)
    return neighbor_votes(candidates["target"][:, :, output], distances, weights, n_classes)


def _predict_block(candidates, classes, outputs_2d, weights, metric, p):
    """``map_blocks`` function: the predicted classes of a block of queries."""
    predictions = [
        c[np.argmax(_neighbour_votes(candidates, k, c.size, weights, metric, p), axis=1)] for k, c in enumerate(classes)
    ]
    return np.stack(predictions, axis=1) if outputs_2d else predictions[0]


def _proba_block(candidates, output, n_classes, weights, metric, p):
    """``map_blocks`` function: class probabilities of a block of queries for one output."""
    votes = _neighbour_votes(candidates, output, n_classes, weights, metric, p)
    normalizer = votes.sum(axis=1, keepdims=True)
    normalizer[normalizer == 0.0] = 1.0
    return votes / normalizer


def _fit_labels(estimator, X, y):
    """Set ``estimator``'s ``classes_`` and ``outputs_2d_`` from ``y``; the labels encoded, lazily.

    Returns a Dask array of shape (n_samples, n_outputs) of indices into
    each output's classes, chunked like ``X``'s rows.
    """
    if np.ndim(y) == 2 and np.shape(y)[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. "
            "Please change the shape of y to (n_samples,), for example using ravel().",
            DataConversionWarning,
            stacklevel=3,
        )
    y = as_dask_targets(y, X)
    estimator.outputs_2d_ = y.shape[1] > 1
    classes = list(dask.compute(*[da.unique(y[:, k]) for k in range(y.shape[1])]))
    for classes_k in classes:
        check_classification_targets(classes_k)
    estimator.classes_ = classes if estimator.outputs_2d_ else classes[0]
    return y.map_blocks(_encode_labels, classes, dtype=np.int64)


class KNNClassifier(ClassifierMixin, DaskNeighborsBase):
    """Exact k-nearest-neighbours classifier on Dask arrays.

    :class:`fastknn.KNNClassifier`'s parameters and predictions, with the
    training set in shards on the workers of a Dask cluster (its row
    blocks) and every prediction a lazy Dask array. Each (query block,
    shard) pair is searched in one task; the shards' candidates, with their
    labels, are merged by a tree reduction and voted on per query block.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours that vote.
    weights : {"uniform", "distance"}, callable or None, default="uniform"
        As for :class:`fastknn.KNNClassifier`; a callable runs on the
        workers, on each block's distances.
    metric : str, default="minkowski"
        As for :class:`fastknn.KNNClassifier`.
    p : float, default=2
        Power of the Minkowski metric, >= 1.
    algorithm : {"auto", "brute", "pruned", "kd_tree", "ball_tree"}, default="auto"
        As for :class:`fastknn.KNNClassifier`, chosen per shard; a pruning
        index is built once per shard and kept with it.
    n_jobs : int or None, default=1
        Threads per task (see :func:`fastknn.dask.kneighbors`).
    persist : bool, default=True
        Build the shards at ``fit`` and keep them in the workers' memory.
        False leaves them lazy: every search reads and prepares each shard
        again, for training sets larger than the cluster's memory (read
        from files, for instance).
    split_every : int, optional
        Candidate lists merged per task of the tree reduction.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,) or list of such arrays
        Class labels (one array per output for a 2-D target).
    effective_metric_ : str
        The metric used, as :class:`fastknn.KNNClassifier` reports it.
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
    fastknn.KNNClassifier : The same classifier in one process.
    fastknn.dask.kneighbors : The sharded search alone.

    Notes
    -----
    Predictions equal :class:`fastknn.KNNClassifier`'s: neighbours at
    equal distances are ordered by global training index, a vote tie goes
    to the class first in ``classes_``. ``fit`` computes only the classes
    (and, with ``persist``, one row count per shard); the training rows
    never travel to the client.

    Examples
    --------
    >>> import dask.array as da
    >>> from fastknn.dask import KNNClassifier
    >>> X = da.from_array([[0.0], [1.0], [2.0], [3.0]], chunks=(2, 1))
    >>> y = da.from_array([0, 0, 1, 1], chunks=2)
    >>> clf = KNNClassifier(n_neighbors=3).fit(X, y)
    >>> clf.predict(da.from_array([[1.1], [2.6]], chunks=(1, 1))).compute()
    array([0, 1])
    >>> clf.predict_proba([[0.9]]).compute()
    array([[0.666..., 0.333...]])
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
        """Shard the training set on the workers, with its labels.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, chunked by rows: each block is a shard (a scipy
            sparse block runs the sparse search; see :func:`fastknn.dask.kneighbors`).
        y : dask.array.Array or array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels; rechunked to ``X``'s rows.

        Returns
        -------
        self : KNNClassifier
            The fitted classifier.
        """
        X = as_row_blocks(X, "X")
        return self._fit_shards(X, _fit_labels(self, X, y))

    def _classes_list(self):
        return self.classes_ if self.outputs_2d_ else [self.classes_]

    def predict(self, X):
        """Predict the class of each query, lazily.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
            Queries, chunked by rows.

        Returns
        -------
        y : dask.array.Array of shape (n_queries,) or (n_queries, n_outputs)
            The class with the largest vote; ties go to the first in ``classes_``.
        """
        merged = self._candidates(X, self.n_neighbors)
        classes = self._classes_list()
        power = self.effective_metric_params_.get("p")
        arguments = (classes, self.outputs_2d_, self.weights, self.effective_metric_, power)
        dtype = np.result_type(*classes)
        if self.outputs_2d_:
            return merged.map_blocks(_predict_block, *arguments, dtype=dtype, chunks=(merged.chunks[0], (len(classes),)))
        return merged.map_blocks(_predict_block, *arguments, dtype=dtype, drop_axis=1)

    def predict_proba(self, X):
        """Class probabilities, lazily: each query's normalised neighbour votes.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
            Queries, chunked by rows.

        Returns
        -------
        proba : dask.array.Array of shape (n_queries, n_classes) or list of such arrays
            Columns in the order of ``classes_``; one array per output for a
            2-D target.
        """
        merged = self._candidates(X, self.n_neighbors)
        power = self.effective_metric_params_.get("p")
        probabilities = [
            merged.map_blocks(
                _proba_block, k, c.size, self.weights, self.effective_metric_, power,
                dtype=np.float64, chunks=(merged.chunks[0], (c.size,)),
            )
            for k, c in enumerate(self._classes_list())
        ]
        return probabilities if self.outputs_2d_ else probabilities[0]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on the queries, as a lazy 0-d Dask array.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
            Queries, chunked by rows.
        y : dask.array.Array or array-like of shape (n_queries,) or (n_queries, n_outputs)
            True labels; for a 2-D target a query counts as right when every
            output is (scikit-learn's subset accuracy).
        sample_weight : dask.array.Array or array-like of shape (n_queries,), optional
            Weights of the queries.

        Returns
        -------
        score : dask.array.Array of shape ()
            The (weighted) fraction of queries predicted right.
        """
        X, y, weights = self._score_inputs(X, y, sample_weight)
        for classes in self._classes_list():
            numbers = [dtype.kind in "biuf" for dtype in (classes.dtype, y.dtype) if dtype.kind != "O"]
            if len(numbers) == 2 and numbers[0] != numbers[1]:
                raise ValueError(
                    f"Mix of label input types: y holds labels of dtype {y.dtype}, but the classes seen at fit "
                    f"are of dtype {classes.dtype}."
                )
        predictions = self.predict(X)
        if predictions.ndim == 1:
            predictions = predictions[:, None]
        right = (predictions == y).all(axis=1)
        if weights is None:
            return right.mean()
        return (right * weights).sum() / weights.sum()


def _radius_proba_block(found, block_info=None, *, classes, outlier_label, weights, metric, p, candidate_dtype):
    """The probabilities of ``fastknn._classification.radius_proba`` for a block of radius candidates."""
    flat, offsets = flat_radius_candidates(found, candidate_dtype)
    first_query = block_info[0]["array-location"][0][0]
    distances = rdist_to_dist(np.array(flat["rdist"]), metric, p)
    return radius_proba(distances, offsets, flat["target"], classes, outlier_label, weights, first_query)


def _radius_proba_output_block(found, output, block_info=None, **options):
    """``map_blocks`` function: the class probabilities of a block of queries for one output."""
    return _radius_proba_block(found, block_info, **options)[output]


def _radius_predict_block(found, outputs_2d, block_info=None, **options):
    """``map_blocks`` function: the predicted classes of a block of queries."""
    predictions = radius_predictions(
        _radius_proba_block(found, block_info, **options), options["classes"], options["outlier_label"]
    )
    return predictions if outputs_2d else predictions[:, 0]


class RadiusNeighborsClassifier(RadiusNeighborsMixin, ClassifierMixin, DaskNeighborsBase):
    """Classifier voting among the training samples within a radius, on Dask arrays.

    :class:`fastknn.RadiusNeighborsClassifier`'s parameters and predictions,
    with the training set in shards on the workers of a Dask cluster (its
    row blocks) and every prediction a lazy Dask array. Each (query block,
    shard) pair is searched in one task; the shards' lists, with their
    labels, are concatenated by a tree reduction and voted on per query
    block.

    Parameters
    ----------
    radius : float, default=1.0
        Largest distance of a voting neighbour; a sample at exactly this
        distance votes.
    weights : {"uniform", "distance"}, callable or None, default="uniform"
        As for :class:`fastknn.RadiusNeighborsClassifier`; a callable runs
        on the workers, on each block's distances.
    metric : str, default="minkowski"
        As for :class:`fastknn.RadiusNeighborsClassifier`.
    p : float, default=2
        Power of the Minkowski metric, >= 1.
    outlier_label : {manual label, "most_frequent"}, default=None
        Label of queries with no neighbour within the radius, as for
        :class:`fastknn.RadiusNeighborsClassifier`; with None, computing
        the predictions of such a query raises a ValueError.
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
    classes_ : ndarray of shape (n_classes,) or list of such arrays
        Class labels (one array per output for a 2-D target).
    outlier_label_ : list or None
        The label given to queries without neighbours, per output.
    effective_metric_ : str
        The metric used, as :class:`fastknn.RadiusNeighborsClassifier` reports it.
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
    fastknn.RadiusNeighborsClassifier : The same classifier in one process.
    fastknn.dask.KNNClassifier : Votes of a fixed number of neighbours.

    Notes
    -----
    Probabilities and predictions equal
    :class:`fastknn.RadiusNeighborsClassifier`'s: the same neighbours and
    the same vote, on each query block. ``fit`` computes the classes (and
    the class counts for ``outlier_label="most_frequent"``); the training
    rows never travel to the client.

    Examples
    --------
    >>> import dask.array as da
    >>> from fastknn.dask import RadiusNeighborsClassifier
    >>> X = da.from_array([[0.0], [1.0], [2.0], [3.0]], chunks=(2, 1))
    >>> y = da.from_array([0, 0, 1, 1], chunks=2)
    >>> clf = RadiusNeighborsClassifier(radius=1.0, outlier_label="most_frequent").fit(X, y)
    >>> clf.predict(da.from_array([[0.5], [2.5], [10.0]], chunks=(2, 1))).compute()
    array([0, 1, 0])
    >>> clf.predict_proba([[1.0]]).compute()
    array([[0.666..., 0.333...]])
    """

    _parameter_constraints = {
        **RADIUS_PARAMETER_CONSTRAINTS,
        "weights": [StrOptions({"uniform", "distance"}), callable, None],
        "outlier_label": [numbers.Integral, str, "array-like", None],
    }

    def __init__(self, radius=1.0, *, weights="uniform", metric="minkowski", p=2, outlier_label=None,
                 algorithm="auto", n_jobs=1, persist=True, split_every=None):
        self.radius = radius
        self.weights = weights
        self.metric = metric
        self.p = p
        self.outlier_label = outlier_label
        self.algorithm = algorithm
        self.n_jobs = n_jobs
        self.persist = persist
        self.split_every = split_every

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Shard the training set on the workers, with its labels, and resolve ``outlier_label``.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, chunked by rows: each block is a shard (a scipy
            sparse block runs the sparse search; see :func:`fastknn.dask.kneighbors`).
        y : dask.array.Array or array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels; rechunked to ``X``'s rows.

        Returns
        -------
        self : RadiusNeighborsClassifier
            The fitted classifier.
        """
        X = as_row_blocks(X, "X")
        encoded = _fit_labels(self, X, y)
        classes = self._classes_list()

        def class_counts(output):
            return da.bincount(encoded[:, output], minlength=classes[output].size).compute()

        self.outlier_label_ = resolve_outlier_label(self.outlier_label, classes, class_counts)
        return self._fit_shards(X, encoded)

    _classes_list = KNNClassifier._classes_list

    def _block_options(self):
        return {
            "classes": self._classes_list(), "outlier_label": self.outlier_label_, "weights": self.weights,
            "metric": self.effective_metric_, "p": self.effective_metric_params_.get("p"),
            "candidate_dtype": self._candidate_dtype,
        }

    def predict(self, X):
        """Predict the class of each query, lazily.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
            Queries, chunked by rows.

        Returns
        -------
        y : dask.array.Array of shape (n_queries,) or (n_queries, n_outputs)
            The class with the largest vote, or ``outlier_label_`` for a
            query without neighbours.
        """
        found, _ = self._radius_lists(X, None, False)
        classes = self._classes_list()
        dtype = classes[0].dtype
        options = self._block_options()
        if self.outputs_2d_:
            return found.map_blocks(
                _radius_predict_block, True, dtype=dtype, chunks=(found.chunks[0], (len(classes),)),
                meta=np.empty((0, 0), dtype=dtype), **options,
            )
        return found.map_blocks(
            _radius_predict_block, False, dtype=dtype, drop_axis=1, meta=np.empty((0,), dtype=dtype), **options
        )

    def predict_proba(self, X):
        """Class probabilities, lazily: each query's normalised neighbour votes.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
            Queries, chunked by rows.

        Returns
        -------
        proba : dask.array.Array of shape (n_queries, n_classes) or list of such arrays
            Columns in the order of ``classes_``; one array per output for a
            2-D target. A query without neighbours gets probability 1 for
            ``outlier_label_``.
        """
        found, _ = self._radius_lists(X, None, False)
        options = self._block_options()
        probabilities = [
            found.map_blocks(
                _radius_proba_output_block, k, dtype=np.float64, chunks=(found.chunks[0], (c.size,)),
                meta=np.empty((0, 0), dtype=np.float64), **options,
            )
            for k, c in enumerate(options["classes"])
        ]
        return probabilities if self.outputs_2d_ else probabilities[0]

    score = KNNClassifier.score
