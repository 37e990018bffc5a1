"""The neighbours base every estimator stands on, as scikit-learn's ``neighbors/_base.py``.

:class:`NeighborsBase` holds the shared parameters, ``fit`` (validation, the
effective metric, the choice of search method and its index),
:class:`KNeighborsMixin` the k-nearest queries and graphs,
:class:`RadiusNeighborsMixin` the radius queries and graphs. The search
itself runs through :func:`kneighbors_search` and :func:`radius_search`, the
only places that look at the method ``fit`` chose: estimators never branch
on it.
"""

import numbers
import warnings
from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_array, csr_matrix, issparse
from sklearn import get_config
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._cosine import check_cosine_algorithm, cosine_radius_search, cosine_search, prepare_cosine
from ._pruning import PrunedIndex, choose_algorithm, pruned_radius_search, pruned_search
from ._radius import radius_search as brute_radius_search
from ._radius import check_radius, reduced_radius
from ._self_graph import self_graph_fits, self_graph_search
from ._sparse import as_sparse_search, prepare_sparse, sparse_radius_search, sparse_search
from ._tree import LEAF_SIZE, TREE_ALGORITHMS, build_tree, tree_pays, tree_radius_search, tree_search
from ._search import (
    METRIC_ALIASES,
    EuclideanTrain,
    as_search_dtype,
    prepare_euclidean,
    queries_in_search_dtype,
    rdist_to_dist,
    resolve_metric,
    search,
)

# ``algorithm="auto"`` probes whether pruning pays for this many neighbours
# when the estimator has no ``n_neighbors`` (the radius estimators).
DEFAULT_PROBE_NEIGHBORS = 5


class FittedSearch(NamedTuple):
    """What ``fit`` keeps for the search: the method and its precomputed data.

    Attributes
    ----------
    method : {"brute", "pruned", "tree", "sparse"}
    train : ndarray or csr_matrix of shape (n_train, n_features)
        The training rows, float32 or float64, C-contiguous (canonical CSR
        for ``"sparse"``, see ``_sparse.as_sparse_search``).
    metric : str
        Canonical metric name (``_search.resolve_metric``).
    p : float or None
        Minkowski power, for ``"minkowski"`` only.
    euclidean_train : EuclideanTrain or None
        Brute-force Euclidean precomputation.
    pruned_index : PrunedIndex or None
        The pruned method's index.
    tree : CellGrid, scipy.spatial.cKDTree, _tree.DistinctRowsTree or None
        The tree method's index.
    sparse_train : _sparse.SparseTrain or None
        The sparse method's inverted index.
    cosine_train : CosineTrain or None
        Brute-force cosine precomputation (``_cosine``).
    leaf_size : int
        Points per leaf of the tree method's index.
    """

    method: str
    train: np.ndarray
    metric: str
    p: float | None
    euclidean_train: EuclideanTrain | None
    pruned_index: PrunedIndex | None
    tree: object = None
    sparse_train: object = None
    cosine_train: object = None
    leaf_size: int = LEAF_SIZE


def fit_search(train, metric, p, algorithm, n_neighbors, n_jobs=None, self_queries=False, leaf_size=LEAF_SIZE):
    """Choose the search method for ``train`` and precompute what it needs.

    Parameters
    ----------
    train : ndarray or csr_matrix of shape (n_train, n_features)
        Validated, in the search dtype (``_search.as_search_dtype``); a
        sparse matrix (canonical, ``_sparse.as_sparse_search``) always runs
        the sparse method (``_sparse``).
    metric, p
        As returned by ``_search.resolve_metric``.
    algorithm : {"auto", "brute", "pruned", "kd_tree", "ball_tree"}
        Both tree names run the tree method (``_tree``); ``"auto"`` takes it
        when :func:`_tree.tree_pays`, else chooses as ``_pruning.choose_algorithm``.
        With sparse ``train``, names other than ``"auto"`` and ``"brute"`` warn.
    n_neighbors : int
        Neighbours the probe of ``"auto"`` searches for.
    n_jobs : int or None
    self_queries : bool, default=False
        The caller's next search is of ``train`` itself (a transformer's
        ``fit_transform``). ``"auto"`` then takes brute force, without its
        probe, where the Euclidean graph of the training set with itself
        runs (``_self_graph``): that search reads no pruned index.
    leaf_size : int, default=LEAF_SIZE
        Points per leaf of the k-d tree, where the tree method runs.

    Returns
    -------
    fitted : FittedSearch
    """
    check_finite_despite_config(train, "X")
    if issparse(train):
        if algorithm not in ("auto", "brute"):
            # As scikit-learn, which warns likewise for its trees.
            warnings.warn(
                f"cannot use {algorithm} with sparse input: using the sparse brute-force search", stacklevel=3
            )
        return FittedSearch("sparse", train, metric, p, None, None, sparse_train=prepare_sparse(train, metric, p))
    if metric == "cosine":
        check_cosine_algorithm(algorithm)
        return FittedSearch("brute", train, metric, p, None, None, cosine_train=prepare_cosine(train))
    if algorithm in TREE_ALGORITHMS or (algorithm == "auto" and tree_pays(train, metric, p, n_neighbors, leaf_size)):
        return FittedSearch("tree", train, metric, p, None, None, build_tree(train, leaf_size), leaf_size=leaf_size)
    if algorithm == "auto" and self_queries and metric == "euclidean":
        euclidean_train = prepare_euclidean(train)
        if self_graph_fits(train, euclidean_train):
            return FittedSearch("brute", train, metric, p, euclidean_train, None)
    method, index = choose_algorithm(algorithm, train, metric, p, min(n_neighbors, train.shape[0]), n_jobs=n_jobs)
    euclidean_train = prepare_euclidean(train) if metric == "euclidean" and method == "brute" else None
    return FittedSearch(method, train, metric, p, euclidean_train, index)


def kneighbors_rdist(fitted, queries, n_neighbors, n_jobs=None):
    """Exact k nearest training rows of every query, with their *reduced* distances.

    The one place that runs the k search by the method ``fit`` chose
    (``queries`` that are ``fitted.train`` itself, the graph of the
    training set, run ``_self_graph`` where it fits). Reduced distances (squared for Euclidean, p-th power for Minkowski) are
    what a caller merging several searches must compare: the square root can
    map two of them to the same float. Same parameters as
    :func:`kneighbors_search`, which returns distances.
    """
    if queries is not fitted.train:
        check_finite_despite_config(queries, "X")
    fitted = _in_dtype_of(queries, fitted, n_neighbors, n_jobs)
    if fitted.method == "sparse":
        found = sparse_search(queries, fitted.train, fitted.sparse_train, n_neighbors, fitted.metric, fitted.p, n_jobs)
    elif fitted.metric == "cosine":
        found = cosine_search(queries, fitted.train, n_neighbors, cosine_train=fitted.cosine_train, n_jobs=n_jobs)
    elif queries is fitted.train and fitted.euclidean_train is not None and self_graph_fits(queries, fitted.euclidean_train):
        found = self_graph_search(queries, fitted.euclidean_train, n_neighbors, n_jobs=n_jobs)
    elif fitted.method == "tree":
        found = tree_search(queries, fitted.train, fitted.tree, n_neighbors, fitted.metric, fitted.p, n_jobs=n_jobs)
    elif fitted.method == "pruned":
        found = pruned_search(queries, fitted.train, fitted.pruned_index, n_neighbors, n_jobs=n_jobs)
    else:
        found = search(
            queries, fitted.train, n_neighbors, fitted.metric, fitted.p,
            euclidean_train=fitted.euclidean_train, n_jobs=n_jobs,
        )
    _check_no_overflow(found[0], fitted.metric)
    return found


def check_finite_despite_config(rows, name):
    """Raise for NaN or infinity in ``rows`` (dense or sparse) where scikit-learn's ``assume_finite`` skipped that check.

    ``sklearn.set_config(assume_finite=True)`` turns validation's check
    off, but the kernels order rows by comparisons that NaN fails: they
    would return rows never written, or index with them.
    """
    if not get_config()["assume_finite"]:
        return  # validation checked them
    values = rows.data if issparse(rows) else rows
    if not np.isfinite(values).all():
        raise ValueError(
            f"Input {name} contains NaN or infinity; fastknn's search needs finite values, "
            "also under scikit-learn's assume_finite=True."
        )


# The ``algorithm`` that prepares each method again.
_METHOD_ALGORITHMS = {"brute": "brute", "pruned": "pruned", "tree": "kd_tree"}


def _in_dtype_of(queries, fitted, n_neighbors, n_jobs):
    """``fitted``, or for float64 queries of float32 rows the same method prepared on the rows in float64.

    Such queries are those that float32 cannot hold
    (``_search.queries_in_search_dtype``): the search runs in float64, as
    scikit-learn's, and its preparation is made for this call and dropped,
    so the estimator keeps no float64 copy of its training set.
    """
    if fitted.method == "sparse" or queries.dtype == fitted.train.dtype:
        return fitted
    return fit_search(
        fitted.train.astype(np.float64), fitted.metric, fitted.p, _METHOD_ALGORITHMS[fitted.method], n_neighbors,
        n_jobs, leaf_size=fitted.leaf_size,
    )


def _check_no_overflow(rdist, metric):
    """Raise where a k-th reduced distance overflowed float64, which leaves the neighbours beyond it unordered.

    The inputs are finite, so an infinite reduced distance is an overflow:
    a squared Euclidean distance or a sum of p-th powers above the largest
    float64 (distances above about 1.3e154 for Euclidean); each row is
    ascending, so its last distance tells.
    """
    if rdist.shape[0] and rdist.shape[1] and not np.isfinite(rdist[:, -1]).all():
        raise ValueError(
            f"The {metric} distances between these rows overflow float64 (the metric's reduced distance, a "
            "sum of squares or powers, exceeds the largest float), so their order is lost. Divide the training "
            "rows and the queries by the same constant (their largest absolute value, for example): the "
            "neighbours stay the same."
        )


def kneighbors_search(fitted, queries, n_neighbors, n_jobs=None):
    """Exact k nearest training rows of every query, by the method ``fit`` chose.

    Parameters
    ----------
    fitted : FittedSearch
    queries : ndarray of shape (n_queries, n_features)
        C-contiguous, finite, as ``_search.queries_in_search_dtype`` casts
        them (or any validated matrix, sparse or dense, for the
        ``"sparse"`` method).
    n_neighbors : int
        1 <= n_neighbors <= n_train.
    n_jobs : int or None

    Returns
    -------
    dist : ndarray of shape (n_queries, n_neighbors), float64
        Distances, ascending per row.
    indices : ndarray of shape (n_queries, n_neighbors), int64
        Training indices; equal distances are ordered by index.
    """
    rdist, indices = kneighbors_rdist(fitted, queries, n_neighbors, n_jobs=n_jobs)
    return rdist_to_dist(rdist, fitted.metric, fitted.p), indices


def radius_rdist(fitted, queries, radius, n_jobs=None, sort_results=False):
    """Every training row within ``radius`` of each query, with its *reduced* distance.

    The one place that runs the radius search by the method ``fit`` chose;
    same parameters and layout as :func:`radius_search`, which returns
    distances. A caller merging several searches orders on these (see
    :func:`kneighbors_rdist`).
    """
    if not radius >= 0:  # also NaN: no distance is within it
        return np.empty(0), np.empty(0, dtype=np.int64), np.zeros(queries.shape[0] + 1, dtype=np.int64)
    if queries is not fitted.train:
        check_finite_despite_config(queries, "X")
    fitted = _in_dtype_of(queries, fitted, DEFAULT_PROBE_NEIGHBORS, n_jobs)
    reduced = reduced_radius(radius, fitted.metric, fitted.p)
    if fitted.method == "sparse":
        return sparse_radius_search(
            queries, fitted.train, fitted.sparse_train, reduced, fitted.metric, fitted.p, n_jobs, sort_results
        )
    if fitted.metric == "cosine":
        return cosine_radius_search(
            queries, fitted.train, reduced, cosine_train=fitted.cosine_train, n_jobs=n_jobs, sort_distances=sort_results
        )
    if fitted.method == "tree":
        return tree_radius_search(
            queries, fitted.train, fitted.tree, reduced, fitted.metric, fitted.p, n_jobs=n_jobs, sort_distances=sort_results
        )
    if fitted.method == "pruned":
        return pruned_radius_search(
            queries, fitted.train, fitted.pruned_index, reduced, n_jobs=n_jobs, sort_distances=sort_results
        )
    return brute_radius_search(
        queries, fitted.train, reduced, fitted.metric, fitted.p,
        euclidean_train=fitted.euclidean_train, n_jobs=n_jobs, sort_distances=sort_results,
    )


def radius_search(fitted, queries, radius, n_jobs=None, sort_results=False):
    """Every training row within ``radius`` of each query, by the method ``fit`` chose.

    Parameters
    ----------
    fitted : FittedSearch
    queries : ndarray of shape (n_queries, n_features)
        As :func:`kneighbors_search` takes them.
    radius : float
        A row at distance exactly ``radius`` is within it.
    n_jobs : int or None
    sort_results : bool, default=False
        Order each query's rows by distance (ties by training index), not
        by training index.

    Returns
    -------
    dist : ndarray of shape (n_found,), float64
    indices : ndarray of shape (n_found,), int64
    offsets : ndarray of shape (n_queries + 1,), int64
        Query i's rows are ``indices[offsets[i]:offsets[i + 1]]``.
    """
    rdist, indices, offsets = radius_rdist(fitted, queries, radius, n_jobs, sort_results)
    return rdist_to_dist(rdist, fitted.metric, fitted.p), indices, offsets


def exclude_self(neigh_ind, first_query=0):
    """Mask of the k nearest found for training rows as queries, less each row itself.

    Query i is training row ``first_query + i``, searched for one neighbour
    more than asked. The mask drops the row from its own neighbours, or,
    when exact duplicates pushed it out of the list, the last neighbour
    instead: every neighbour listed is then a copy at distance 0, and the
    copies of lowest index are kept, as ties are everywhere (scikit-learn
    drops its first instead, so the copies it keeps may differ); each row
    of the mask keeps ``neigh_ind.shape[1] - 1`` entries.
    """
    own = np.arange(first_query, first_query + neigh_ind.shape[0])[:, None]
    keep = neigh_ind != own
    self_absent = np.all(keep, axis=1)
    keep[:, -1][self_absent] = False
    return keep


def split_rows(values, offsets):
    """Object array whose item i is ``values[offsets[i]:offsets[i + 1]]`` (views)."""
    out = np.empty(offsets.shape[0] - 1, dtype=object)
    for i in range(out.shape[0]):
        out[i] = values[offsets[i] : offsets[i + 1]]
    return out


def query_of_rows(offsets):
    """The query of each flat row: ``i`` repeated ``offsets[i + 1] - offsets[i]`` times."""
    return np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets))


def drop_own_rows(dist, indices, offsets, first_query=0):
    """Radius results of training rows as queries, less each row itself (its duplicates stay).

    Query i is training row ``first_query + i``; the arguments and the
    returned ``(dist, indices, offsets)`` are laid out as :func:`radius_search`'s.
    """
    query_ids = query_of_rows(offsets)
    keep = indices != query_ids + first_query
    kept_per_query = np.bincount(query_ids[keep], minlength=offsets.shape[0] - 1)
    kept_offsets = np.zeros_like(offsets)
    np.cumsum(kept_per_query, out=kept_offsets[1:])
    return dist[keep], indices[keep], kept_offsets


def minkowski_power(p, metric_params):
    """The Minkowski power: ``metric_params["p"]`` where given (with scikit-learn's warning), else ``p``.

    Raises
    ------
    ValueError
        For any other key of ``metric_params``: fastknn's metrics take no
        other argument.
    """
    if not metric_params:
        return p
    unsupported = sorted(set(metric_params) - {"p"}, key=str)
    if unsupported:
        raise ValueError(
            f"metric_params {unsupported} are not supported: fastknn's metrics take only 'p', the Minkowski "
            "power (weighted Minkowski, 'w', is not implemented)."
        )
    warnings.warn(
        "Parameter p is found in metric_params. The corresponding parameter from __init__ is ignored.",
        SyntaxWarning,
        stacklevel=5,  # the caller of fit
    )
    return metric_params["p"]


def knn_graph(data, neigh_ind, n_samples_fit):
    """CSR graph of each query's k neighbours ``neigh_ind`` (2-D), entries ``data`` (one a neighbour, flat)."""
    n_queries, n_neighbors = neigh_ind.shape
    indptr = np.arange(0, n_queries * n_neighbors + 1, n_neighbors)
    return csr_graph(data, neigh_ind.ravel(), indptr, (n_queries, n_samples_fit))


def csr_graph(data, indices, indptr, shape):
    """A CSR graph as scikit-learn's neighbours return one.

    int64 indices (``csr_matrix`` from arrays would shrink them to int32),
    and a ``csr_array`` where scikit-learn's ``sparse_interface`` setting
    says ``"sparray"`` (scikit-learn 1.9), else a ``csr_matrix``.
    """
    graph = csr_array((data, indices.astype(np.int64, copy=False), indptr.astype(np.int64, copy=False)), shape=shape)
    if get_config().get("sparse_interface", "spmatrix") == "sparray":
        return graph
    return csr_matrix(graph)


def neighbor_weights(dist, weights):
    """Weights of neighbours at distances ``dist`` (2-D), as scikit-learn's ``_get_weights``.

    None for uniform weights; for ``"distance"``, inverse distances, except
    that a query with neighbours at distance 0 weighs those 1 and the others
    0; a callable is applied to ``dist``.
    """
    if weights in (None, "uniform"):
        return None
    if weights == "distance":
        with np.errstate(divide="ignore"):
            inverse = 1.0 / dist
        at_zero = np.isinf(inverse)
        rows = np.any(at_zero, axis=1)
        inverse[rows] = at_zero[rows]
        return inverse
    return weights(dist)


def flat_neighbor_weights(dist, offsets, weights):
    """:func:`neighbor_weights` for radius results, flat (see :func:`radius_search`).

    A callable receives, as in scikit-learn, an object array holding each
    query's distances, and returns weights of the same layout.
    """
    if weights in (None, "uniform"):
        return None
    if weights == "distance":
        with np.errstate(divide="ignore"):
            inverse = 1.0 / dist
        at_zero = dist == 0.0
        query_has_zero = np.bincount(query_of_rows(offsets)[at_zero], minlength=offsets.shape[0] - 1) > 0
        zero_rows = np.repeat(query_has_zero, np.diff(offsets))
        inverse[zero_rows] = at_zero[zero_rows]
        return inverse
    given = weights(split_rows(dist.copy(), offsets))
    if len(given) != offsets.shape[0] - 1:
        raise ValueError(f"weights callable returned {len(given)} rows, expected {offsets.shape[0] - 1}.")
    flat = np.concatenate([np.asarray(row, dtype=np.float64).ravel() for row in given] + [np.empty(0)])
    if flat.shape != dist.shape:
        raise ValueError("weights callable must return one weight per neighbour of each query.")
    return flat


class NeighborsBase(BaseEstimator):
    """Parameters and ``fit`` shared by every neighbours estimator.

    Subclasses declare their own ``__init__`` (keyword arguments stored as
    given) and call :meth:`_fit`. The fitted state is public
    ``effective_metric_``, ``effective_metric_params_``, ``n_features_in_``,
    ``n_samples_fit_``, ``fit_method_``; private ``_fit_X`` (the training
    rows in the search dtype) and ``_search_state`` (:class:`FittedSearch`).
    """

    _parameter_constraints = {
        "metric": [StrOptions(set(METRIC_ALIASES))],
        "p": [Interval(numbers.Real, 1, None, closed="both")],  # p=inf: Chebyshev
        "n_jobs": [numbers.Integral, None],
        "algorithm": [StrOptions({"auto", "brute", "pruned", *TREE_ALGORITHMS})],
        "leaf_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "metric_params": [dict, None],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _fit(self, X, y=None, self_queries=False):
        """Validate ``X`` (and ``y``, 1-D or 2-D, stored by ``_set_targets``), prepare the search.

        ``self_queries``: the next search is of ``X`` itself (see :func:`fit_search`).
        """
        if self.n_jobs == 0:
            raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive number.")
        if y is None:
            # Raises scikit-learn's error for the estimators that need y.
            X = validate_data(self, X, y=None, accept_sparse=["csr", "csc"], dtype="numeric", order="C")
        else:
            X, y = validate_data(
                self, X, y, accept_sparse=["csr", "csc"], dtype="numeric", order="C", multi_output=True
            )
        metric, power = resolve_metric(self.metric, minkowski_power(self.p, self.metric_params))
        # scikit-learn's: an alias stays as given, "minkowski" is named after its power.
        self.effective_metric_ = metric if self.metric == "minkowski" else self.metric
        self.effective_metric_params_ = {} if power is None else {"p": power}
        if y is not None:
            self._set_targets(y)
        self._fit_X = as_sparse_search(X) if issparse(X) else as_search_dtype(X)
        self.n_samples_fit_ = self._fit_X.shape[0]
        n_neighbors = getattr(self, "n_neighbors", None) or DEFAULT_PROBE_NEIGHBORS
        self._search_state = fit_search(
            self._fit_X, metric, power, self.algorithm, n_neighbors, self.n_jobs, self_queries=self_queries,
            leaf_size=self.leaf_size,
        )
        self.fit_method_ = self._search_state.method

    def _set_targets(self, y):
        """Check and store the validated target (before the search is prepared)."""
        self._y = y

    def _queries(self, X):
        """Validated queries in the search dtype, or the training set itself for None.

        Against a sparse training set, queries stay as given (sparse or
        dense; the sparse search converts them); against a dense one,
        sparse queries are densified.
        """
        if X is None:
            return self._fit_X
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype="numeric", order="C", reset=False)
        if issparse(self._fit_X):
            return X
        if issparse(X):
            X = X.toarray()
        return queries_in_search_dtype(X, self._fit_X.dtype)


class KNeighborsMixin:
    """``kneighbors`` and ``kneighbors_graph`` on a fitted :class:`NeighborsBase`."""

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Find the nearest training samples of each query.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features), default=None
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
        queries = self._queries(X)
        if query_is_train:
            n_neighbors += 1
        if n_neighbors > self.n_samples_fit_:
            if query_is_train:
                n_neighbors -= 1
            relation = "<" if query_is_train else "<="  # X=None leaves each sample out of its own list
            raise ValueError(
                f"Expected n_neighbors {relation} n_samples_fit, but "
                f"n_neighbors = {n_neighbors}, n_samples_fit = {self.n_samples_fit_}, "
                f"n_samples = {queries.shape[0]}"
            )
        neigh_dist, neigh_ind = kneighbors_search(self._search_state, queries, n_neighbors, self.n_jobs)

        if query_is_train:
            # Drop each sample from its own neighbours; when exact duplicates
            # pushed it out of the list, drop the last of them instead.
            n_queries = queries.shape[0]
            sample_mask = exclude_self(neigh_ind)
            neigh_ind = neigh_ind[sample_mask].reshape(n_queries, n_neighbors - 1)
            neigh_dist = neigh_dist[sample_mask].reshape(n_queries, n_neighbors - 1)
        if return_distance:
            return neigh_dist, neigh_ind
        return neigh_ind

    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity"):
        """Sparse graph of each query's nearest training samples.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features), default=None
            Queries; None means the training set, excluding each sample itself.
        n_neighbors : int, default=None
            Number of neighbours; defaults to the constructor's value.
        mode : {"connectivity", "distance"}, default="connectivity"
            Ones, or the distances, as the matrix entries.

        Returns
        -------
        graph : scipy.sparse.csr_matrix or csr_array of shape (n_queries, `n_samples_fit_`)
            Row i holds the neighbours of query i: ones, or their distances.
            A ``csr_array`` where scikit-learn's ``sparse_interface`` setting
            is ``"sparray"``, as scikit-learn's.
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
        return knn_graph(data, neigh_ind, self.n_samples_fit_)


class RadiusNeighborsMixin:
    """``radius_neighbors`` and ``radius_neighbors_graph`` on a fitted :class:`NeighborsBase`."""

    def _radius_neighbors_flat(self, X, radius, sort_results):
        """``(dist, indices, offsets)`` of :func:`radius_search`; X=None excludes each sample itself."""
        check_is_fitted(self)
        radius = check_radius(self.radius if radius is None else radius)
        queries = self._queries(X)
        dist, indices, offsets = radius_search(self._search_state, queries, radius, self.n_jobs, sort_results)
        if X is None:
            dist, indices, offsets = drop_own_rows(dist, indices, offsets)
        return dist, indices, offsets

    def radius_neighbors(self, X=None, radius=None, return_distance=True, sort_results=False):
        """Find the training samples within a distance of each query.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features), default=None
            Queries. None means the training set, each sample excluding
            itself (its duplicates stay).
        radius : float, default=None
            Largest distance; defaults to the constructor's ``radius``. A
            sample at exactly this distance is within it.
        return_distance : bool, default=True
            Whether to return the distances too.
        sort_results : bool, default=False
            Sort each query's neighbours by distance (equal distances by
            training index); needs ``return_distance=True``. Otherwise they
            come in training-index order.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries,), dtype=object
            Each item a float64 array of distances; only when ``return_distance``.
        neigh_ind : ndarray of shape (n_queries,), dtype=object
            Each item an int64 array of training indices.
        """
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        dist, indices, offsets = self._radius_neighbors_flat(X, radius, sort_results)
        if return_distance:
            return split_rows(dist, offsets), split_rows(indices, offsets)
        return split_rows(indices, offsets)

    def radius_neighbors_graph(self, X=None, radius=None, mode="connectivity", sort_results=False):
        """Sparse graph of the training samples within a distance of each query.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features), default=None
            Queries; None means the training set, excluding each sample itself.
        radius : float, default=None
            Largest distance; defaults to the constructor's ``radius``.
        mode : {"connectivity", "distance"}, default="connectivity"
            Ones, or the distances, as the matrix entries.
        sort_results : bool, default=False
            Store each row's entries by increasing distance (ignored for ``mode="connectivity"``).

        Returns
        -------
        graph : scipy.sparse.csr_matrix or csr_array of shape (n_queries, `n_samples_fit_`)
            Row i holds the samples within the radius of query i.
        """
        if mode not in ("connectivity", "distance"):
            raise ValueError(
                f'Unsupported mode, must be one of "connectivity", or "distance" but got "{mode}" instead'
            )
        # As scikit-learn: the order of a connectivity row does not matter.
        sort_results = sort_results and mode == "distance"
        dist, indices, offsets = self._radius_neighbors_flat(X, radius, sort_results)
        data = np.ones(indices.shape[0]) if mode == "connectivity" else dist
        return csr_graph(data, indices, offsets, (offsets.shape[0] - 1, self.n_samples_fit_))


def scikit_learn_name_docstring(name, base):
    """The docstring of ``name``, a subclass of ``base`` that adds only scikit-learn's name for it.

    Parameters
    ----------
    name, base : str
        The subclass's name (``"KNeighborsClassifier"``) and its base's
        (``"KNNClassifier"``).
    """
    step = name.lower()
    return f""":class:`{base}` under scikit-learn's name, ``{name}``.

    The same estimator: parameters, attributes and methods are
    :class:`{base}`'s. What depends on the class's name is scikit-learn's:
    the step name that ``make_pipeline`` gives it, and so the parameter
    names of a grid search over the pipeline, the repr, the messages and
    any ``get_feature_names_out`` prefix. Code written for
    :class:`sklearn.neighbors.{name}` runs unchanged with this import.

    See Also
    --------
    {base} : The same estimator under fastknn's name.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from fastknn import {name}
    >>> pipeline = make_pipeline(StandardScaler(), {name}(n_neighbors=3))
    >>> pipeline.set_params({step}__n_neighbors=1).steps[-1]
    ('{step}', {name}(n_neighbors=1))
    """
