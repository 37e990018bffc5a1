"""Neighbour queries without a target on Dask arrays: :class:`NearestNeighbors`.

Its radius queries are a mixin that the radius estimators share.
"""

import numbers

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._base import drop_own_rows, split_rows
from .._radius import check_radius
from ._base import DaskNeighborsBase, check_graph_mode
from ._neighbors import as_row_blocks, distances_of, flat_radius_candidates, radius_candidates
from ._shards import candidate_dtype

def _flat_radius_block(found, block_info=None, *, exclude_self):
    """A block of merged radius candidates as flat ``(rdist, indices, offsets)``.

    With ``exclude_self``, the block's queries are the training rows from
    its first, and each is dropped from its own list (its duplicates stay).
    """
    flat, offsets = flat_radius_candidates(found, candidate_dtype())
    rdist, indices = flat["rdist"], flat["index"]
    if exclude_self:
        return drop_own_rows(rdist, indices, offsets, block_info[0]["array-location"][0][0])
    return rdist, indices, offsets


def _radius_lists_block(found, block_info=None, *, field, exclude_self, metric, p):
    """``map_blocks`` function: each query's distances or indices within the radius, as an object array."""
    rdist, indices, offsets = _flat_radius_block(found, block_info, exclude_self=exclude_self)
    return split_rows(distances_of(rdist, metric, p) if field == "distance" else indices, offsets)


def _radius_graph_block(found, block_info=None, *, mode, n_samples, exclude_self, metric, p):
    """``map_blocks`` function: the sparse radius graph of a block of queries."""
    rdist, indices, offsets = _flat_radius_block(found, block_info, exclude_self=exclude_self)
    data = distances_of(rdist, metric, p) if mode == "distance" else np.ones(indices.shape[0])
    return csr_matrix((data, indices, offsets), shape=(offsets.shape[0] - 1, n_samples))


#: The parameters of the radius estimators: those of :class:`DaskNeighborsBase` with ``radius`` for ``n_neighbors``.
RADIUS_PARAMETER_CONSTRAINTS = {
    **{name: rule for name, rule in DaskNeighborsBase._parameter_constraints.items() if name != "n_neighbors"},
    "radius": [Interval(numbers.Real, 0, None, closed="both")],
}


class RadiusNeighborsMixin:
    """``radius_neighbors`` and ``radius_neighbors_graph`` of a fitted estimator with a ``radius`` parameter."""

    def _radius_lists(self, X, radius, sort_results):
        """Merged radius candidates, shape (n_queries, 1), and whether each query is its own training row."""
        check_is_fitted(self)
        radius = check_radius(self.radius if radius is None else radius)
        queries = self._training_queries() if X is None else self._validate_queries(X)
        found = radius_candidates(
            queries, self._shards, radius, sort_results=sort_results, n_jobs=self.n_jobs,
            split_every=self.split_every,
        )
        return found, X is None

    def radius_neighbors(self, X=None, radius=None, return_distance=True, sort_results=False):
        """Find the training samples within a distance of each query, lazily.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features), default=None
            Queries, chunked by rows; None means the training set, each
            sample excluding itself (its duplicates stay).
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
        neigh_dist : dask.array.Array of shape (n_queries,), dtype=object
            Each item a float64 array of distances; only when
            ``return_distance``. Compute it together with ``neigh_ind``
            (``dask.compute(neigh_dist, neigh_ind)``) to search once.
        neigh_ind : dask.array.Array of shape (n_queries,), dtype=object
            Each item an int64 array of global training indices.
        """
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        found, exclude_self = self._radius_lists(X, radius, sort_results)
        options = {"exclude_self": exclude_self, "metric": self.effective_metric_,
                   "p": self.effective_metric_params_.get("p")}
        lists = {
            field: found.map_blocks(
                _radius_lists_block, drop_axis=1, dtype=object, meta=np.empty((0,), dtype=object),
                field=field, **options,
            )
            for field in ("distance", "index")
        }
        if return_distance:
            return lists["distance"], lists["index"]
        return lists["index"]

    def radius_neighbors_graph(self, X=None, radius=None, mode="connectivity", sort_results=False):
        """Sparse graph of the training samples within a distance of each query, lazily.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features), default=None
            Queries, chunked by rows; None means the training set, each
            sample excluding itself.
        radius : float, default=None
            Largest distance; defaults to the constructor's ``radius``.
        mode : {"connectivity", "distance"}, default="connectivity"
            Ones, or the distances, as the matrix entries.
        sort_results : bool, default=False
            Store each row's entries by increasing distance (ignored for
            ``mode="connectivity"``).

        Returns
        -------
        graph : dask.array.Array of shape (n_queries, `n_samples_fit_`)
            Blocks of ``scipy.sparse.csr_matrix`` by query block.
        """
        check_graph_mode(mode)
        found, exclude_self = self._radius_lists(X, radius, sort_results and mode == "distance")
        return found.map_blocks(
            _radius_graph_block, chunks=(found.chunks[0], (self.n_samples_fit_,)), dtype=np.float64,
            meta=csr_matrix((0, self.n_samples_fit_)), mode=mode, n_samples=self.n_samples_fit_,
            exclude_self=exclude_self, metric=self.effective_metric_, p=self.effective_metric_params_.get("p"),
        )


class NearestNeighbors(RadiusNeighborsMixin, DaskNeighborsBase):
    """Exact neighbour queries on a training set held in shards on a Dask cluster.

    :class:`fastknn.NearestNeighbors`'s parameters and results, with the
    training rows in shards on the workers and every result a lazy Dask
    array: the k nearest (:meth:`kneighbors`), those within a radius
    (:meth:`radius_neighbors`), and their sparse graphs. Each (query block,
    shard) pair is searched in one task and the shards' lists are merged by
    a tree reduction.

    Parameters
    ----------
    n_neighbors : int, default=5
        Default number of neighbours of :meth:`kneighbors`.
    radius : float, default=1.0
        Default radius of :meth:`radius_neighbors`.
    metric : str, default="minkowski"
        As for :class:`fastknn.NearestNeighbors`.
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
        The metric used, as :class:`fastknn.NearestNeighbors` reports it.
    effective_metric_params_ : dict
        ``{"p": p}`` for ``"minkowski"``, else empty.
    n_features_in_ : int
        Number of features seen during fit.
    n_samples_fit_ : int
        Number of training samples.
    shard_rows_ : ndarray of shape (n_shards,)
        Training rows per shard.

    See Also
    --------
    fastknn.NearestNeighbors : The same queries in one process.
    fastknn.dask.kneighbors : The k-nearest search as a function.

    Notes
    -----
    Results equal :class:`fastknn.NearestNeighbors`'s to the bit: the same
    neighbours (equal distances ordered by global training index), the same
    distances, a row at exactly the radius within it. The sparse graphs are
    Dask arrays whose blocks are ``scipy.sparse.csr_matrix``; ``compute()``
    stacks them into one. ``X=None`` searches the training rows, read from
    the shards on the workers, each excluding itself.

    Examples
    --------
    >>> import dask.array as da
    >>> from fastknn.dask import NearestNeighbors
    >>> X = da.from_array([[0.0], [1.0], [2.0], [4.0]], chunks=(2, 1))
    >>> nn = NearestNeighbors(n_neighbors=2, radius=1.0).fit(X)
    >>> nn.kneighbors(return_distance=False).compute()
    array([[1, 2],
           [0, 2],
           [1, 0],
           [2, 1]])
    >>> [row.tolist() for row in nn.radius_neighbors([[1.0]], return_distance=False).compute()]
    [[0, 1, 2]]
    >>> nn.kneighbors_graph([[3.5]], mode="distance").compute().toarray()
    array([[0. , 0. , 1.5, 0.5]])
    """

    _parameter_constraints = {
        **DaskNeighborsBase._parameter_constraints,
        "radius": [Interval(numbers.Real, 0, None, closed="both")],
    }

    def __init__(self, *, n_neighbors=5, radius=1.0, metric="minkowski", p=2, algorithm="auto", n_jobs=1,
                 persist=True, split_every=None):
        super().__init__(
            n_neighbors, metric=metric, p=p, algorithm=algorithm, n_jobs=n_jobs, persist=persist,
            split_every=split_every,
        )
        self.radius = radius

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Shard the training set on the workers.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, chunked by rows: each block is a shard (a scipy
            sparse block runs the sparse search; see :func:`fastknn.dask.kneighbors`).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : NearestNeighbors
            The fitted estimator.
        """
        return self._fit_shards(as_row_blocks(X, "X"))
