"""What every neighbours estimator on Dask shares: parameters, a fit that
leaves the training shards on the workers, ``kneighbors`` and ``kneighbors_graph``.

An estimator adds only what differs: the targets its shards carry (encoded
labels for the classifier) and what it does with each query's neighbours
(a vote), block by block, with ``map_blocks``.
"""

import math
import numbers

import dask
import dask.array as da
import numpy as np
from scipy.sparse import csr_matrix, issparse
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._base import DEFAULT_PROBE_NEIGHBORS, exclude_self, knn_graph
from .._search import METRIC_ALIASES, as_search_dtype, resolve_metric
from ._neighbors import (
    ALGORITHMS,
    as_row_blocks,
    check_search_parameters,
    distances_of,
    nearest_candidates,
    shard_training_rows,
)
from ._shards import candidate_dtype

GRAPH_MODES = ("connectivity", "distance")


def check_graph_mode(mode):
    """Raise scikit-learn's error for a graph ``mode`` other than ``"connectivity"`` or ``"distance"``."""
    if mode not in GRAPH_MODES:
        raise ValueError(f'Unsupported mode, must be one of "connectivity", or "distance" but got "{mode}" instead')


def _shard_rows(shard):
    """``map_blocks`` function: the rows a shard holds (touching it surfaces its build errors)."""
    return np.array([shard.rows.shape[0]], dtype=np.int64)


def _shard_training_rows(shard):
    """``map_blocks`` function: a shard's training rows, as queries."""
    return shard.rows


def _without_self(candidates, n_neighbors, block_info=None):
    """``map_blocks`` function: each training row's candidates less the row itself.

    The block's queries are the training rows from its first; see
    ``fastknn._base.exclude_self``.
    """
    first_query = block_info[0]["array-location"][0][0]
    keep = exclude_self(candidates["index"], first_query)
    return candidates[keep].reshape(candidates.shape[0], n_neighbors)


class DaskNeighborsBase(BaseEstimator):
    """Parameters, ``fit`` and ``kneighbors`` of the Dask estimators."""

    _parameter_constraints = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "metric": [StrOptions(set(METRIC_ALIASES))],
        "p": [Interval(numbers.Real, 1, None, closed="both")],
        "algorithm": [StrOptions(set(ALGORITHMS))],
        "n_jobs": [numbers.Integral, None],
        "persist": ["boolean"],
        "split_every": [Interval(numbers.Integral, 2, None, closed="left"), None],
    }

    def __init__(self, n_neighbors=5, *, metric="minkowski", p=2, algorithm="auto", n_jobs=1, persist=True,
                 split_every=None):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.p = p
        self.algorithm = algorithm
        self.n_jobs = n_jobs
        self.persist = persist
        self.split_every = split_every

    def _fit_shards(self, X, targets=None):
        """Shard ``X`` (with ``targets``, shape (n_samples, n_outputs)) and keep the shards.

        With ``persist``, the shards are built and held on the workers now,
        and a bad shard (NaN, infinity) raises here; the client receives one
        row count per shard, never the data. Without it, they are rebuilt
        from ``X``'s source at each search (for training sets larger than
        the cluster's memory).
        """
        check_search_parameters(1, 1, self.algorithm, self.n_jobs)
        self.effective_metric_, power = resolve_metric(self.metric, self.p)
        self.effective_metric_params_ = {} if power is None else {"p": power}
        self.n_features_in_ = X.shape[1]
        self.n_samples_fit_ = X.shape[0]
        # The radius estimators have no n_neighbors: the one-process default sizes the pruning probe.
        n_neighbors = getattr(self, "n_neighbors", DEFAULT_PROBE_NEIGHBORS)
        shards = shard_training_rows(
            X, self.effective_metric_, power, self.algorithm, min(n_neighbors, X.shape[0]), targets
        )
        if self.persist:
            shards = shards.persist()
            shard_rows = shards.map_blocks(_shard_rows, dtype=np.int64, meta=np.empty((0,), dtype=np.int64))
            self.shard_rows_ = dask.compute(shard_rows)[0]
        else:
            self.shard_rows_ = np.array(X.chunks[0], dtype=np.int64)
        self._shards = shards
        self._fit_dtype = as_search_dtype(np.empty((0, 0), dtype=X.dtype)).dtype
        self._fit_sparse = issparse(X._meta)
        self._candidate_dtype = candidate_dtype() if targets is None else candidate_dtype(targets.dtype, targets.shape[1])
        return self

    def _validate_queries(self, X):
        check_is_fitted(self)
        X = as_row_blocks(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X

    def _training_queries(self):
        """The training rows as queries, block by block from the shards (never through the client)."""
        rows = tuple(int(n) for n in self.shard_rows_)
        if self._fit_sparse:
            meta = csr_matrix((0, self.n_features_in_), dtype=self._fit_dtype)
        else:
            meta = np.empty((0, 0), dtype=self._fit_dtype)
        return self._shards.map_blocks(
            _shard_training_rows, new_axis=1, chunks=(rows, (self.n_features_in_,)), dtype=self._fit_dtype, meta=meta
        )

    def _given_n_neighbors(self, n_neighbors):
        """``n_neighbors``, or the estimator's; the radius estimators have none and need it given."""
        if n_neighbors is not None:
            return n_neighbors
        if not hasattr(self, "n_neighbors"):
            raise ValueError(f"{type(self).__name__} has no n_neighbors parameter: pass n_neighbors.")
        return self.n_neighbors

    def _candidates(self, X, n_neighbors):
        """Each query's ``n_neighbors`` nearest candidates, with their targets.

        ``X=None`` takes the training rows, each excluding itself, as the
        in-memory estimators' ``kneighbors(None)`` does: one neighbour more
        is searched, and the row itself (or, among exact duplicates, the
        farthest) is dropped.
        """
        check_is_fitted(self)
        if X is None:
            if isinstance(n_neighbors, numbers.Integral) and n_neighbors >= self.n_samples_fit_:
                raise ValueError(
                    f"n_neighbors must be below the number of training rows ({self.n_samples_fit_}) for X=None, "
                    f"where each row's neighbours exclude itself; got {n_neighbors}."
                )
            check_search_parameters(n_neighbors, self.n_samples_fit_, self.algorithm, self.n_jobs)
            merged = nearest_candidates(
                self._training_queries(), self._shards, n_neighbors + 1, self._candidate_dtype,
                n_jobs=self.n_jobs, split_every=self.split_every,
            )
            return merged.map_blocks(
                _without_self, n_neighbors, chunks=(merged.chunks[0], (n_neighbors,)), dtype=merged.dtype,
                meta=np.empty((0, 0), dtype=merged.dtype),
            )
        X = self._validate_queries(X)
        check_search_parameters(n_neighbors, self.n_samples_fit_, self.algorithm, self.n_jobs)
        return nearest_candidates(
            X, self._shards, n_neighbors, self._candidate_dtype, n_jobs=self.n_jobs, split_every=self.split_every
        )

    def _score_inputs(self, X, y, sample_weight):
        """``score``'s arguments checked on the client: ``(X, y, weights)``.

        ``y`` of shape (n_queries, n_outputs) with the fitted number of
        outputs, ``weights`` float64 of shape (n_queries,) chunked like
        ``y``'s rows, or None.
        """
        X = as_row_blocks(X, "X")
        y = as_dask_targets(y, X)
        n_outputs = self._candidate_dtype["target"].shape[0]
        if y.shape[1] != n_outputs:
            raise ValueError(f"y has {y.shape[1]} outputs, but {type(self).__name__} was fitted on {n_outputs}.")
        if sample_weight is None:
            return X, y, None
        weights = sample_weight if isinstance(sample_weight, da.Array) else np.asarray(sample_weight)
        if weights.ndim != 1:
            raise ValueError(f"sample_weight must be 1-D, of shape (n_queries,); got shape {weights.shape}.")
        if weights.dtype.kind not in "biuf":
            raise ValueError(f"sample_weight must hold numbers; got dtype {weights.dtype}.")
        if weights.shape[0] != y.shape[0]:
            raise ValueError(
                f"sample_weight has {weights.shape[0]} values but X has {y.shape[0]} rows; they must match."
            )
        return X, y, da.asarray(weights).astype(np.float64).rechunk((y.chunks[0],))

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Find the nearest training samples of each query, lazily.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features), default=None
            Queries, chunked by rows. None means the training set, each
            sample excluding itself (as the in-memory estimators); its
            rows are read from the shards on the workers, in their blocks.
        n_neighbors : int, default=None
            Number of neighbours; defaults to the constructor's value.
        return_distance : bool, default=True
            Whether to return the distances too.

        Returns
        -------
        neigh_dist : dask.array.Array of shape (n_queries, n_neighbors), float64
            Distances, ascending; only when ``return_distance``.
        neigh_ind : dask.array.Array of shape (n_queries, n_neighbors), int64
            Global training indices; equal distances are ordered by index.
        """
        merged = self._candidates(X, self._given_n_neighbors(n_neighbors))
        indices = merged["index"]
        if not return_distance:
            return indices
        power = self.effective_metric_params_.get("p")
        distances = merged["rdist"].map_blocks(distances_of, self.effective_metric_, power, dtype=np.float64)
        return distances, indices

    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity"):
        """Sparse graph of each query's nearest training samples, lazily.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features), default=None
            Queries, chunked by rows; None means the training set, each
            sample excluding itself.
        n_neighbors : int, default=None
            Number of neighbours; defaults to the constructor's value.
        mode : {"connectivity", "distance"}, default="connectivity"
            Ones, or the distances, as the matrix entries.

        Returns
        -------
        graph : dask.array.Array of shape (n_queries, `n_samples_fit_`)
            Blocks of ``scipy.sparse.csr_matrix`` by query block; row i
            holds the neighbours of query i.
        """
        check_graph_mode(mode)
        merged = self._candidates(X, self._given_n_neighbors(n_neighbors))
        return merged.map_blocks(
            _knn_graph_block, mode, self.n_samples_fit_, self.effective_metric_,
            self.effective_metric_params_.get("p"),
            chunks=(merged.chunks[0], (self.n_samples_fit_,)), dtype=np.float64,
            meta=csr_matrix((0, self.n_samples_fit_)),
        )


def _knn_graph_block(candidates, mode, n_samples, metric, p):
    """``map_blocks`` function: the sparse k-nearest graph of a block of queries."""
    data = distances_of(candidates["rdist"], metric, p).ravel() if mode == "distance" else np.ones(candidates.size)
    return knn_graph(data, candidates["index"], n_samples)


def as_dask_targets(y, X):
    """``y`` as a Dask array of shape (n_samples, n_outputs), chunked like ``X``'s rows."""
    if y is None:
        raise ValueError("This estimator requires y to be passed, but the target y is None.")
    if not isinstance(y, da.Array):
        y = np.asarray(y)
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got {y.ndim} dimensions.")
    if math.isnan(y.shape[0]):
        raise ValueError("y has unknown chunk sizes; call y.compute_chunk_sizes() first.")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}; they must match.")
    if y.ndim == 2 and y.shape[1] == 0:
        raise ValueError(f"y has no outputs (shape {y.shape}); at least one is needed.")
    if not isinstance(y, da.Array):
        y = da.from_array(y, chunks=(X.chunks[0],) + y.shape[1:])
    y = y[:, None] if y.ndim == 1 else y
    return y.rechunk({0: X.chunks[0], 1: -1})
