"""The worker side of the sharded search: a training shard prepared once, its
search against a block of queries, and the merge of per-shard candidates.

Everything here runs inside Dask tasks, on NumPy or scipy sparse blocks.
"""

import numpy as np
from scipy.sparse import issparse
from sklearn.utils.validation import check_array

from .._base import fit_search, kneighbors_rdist, radius_rdist, split_rows
from .._search import as_search_dtype, queries_in_search_dtype
from .._sparse import as_sparse_search

# Index of a padding candidate: a shard with fewer rows than ``n_neighbors``
# pads its list with (+inf, PAD_INDEX), which sorts after every real
# candidate, even one at an infinite distance.
PAD_INDEX = np.iinfo(np.int64).max


def candidate_dtype(target_dtype=None, n_outputs=0):
    """Structured dtype of one candidate neighbour.

    ``rdist`` is the exact reduced distance (squared for Euclidean, p-th
    power for Minkowski): candidates are merged on it, not on the distance,
    because the square root maps distinct reduced distances to one float
    and the order would then fall back on the index where the one-process
    search does not. ``index`` is the global training index. ``target``,
    for the estimators, holds the neighbour's ``n_outputs`` targets.
    """
    fields = [("rdist", np.float64), ("index", np.int64)]
    if target_dtype is not None:
        fields.append(("target", target_dtype, (n_outputs,)))
    return np.dtype(fields)


class Shard:
    """One shard of training rows, prepared for search on the worker that holds it.

    Parameters
    ----------
    rows : ndarray or scipy sparse matrix of shape (n_rows, n_features)
        The shard's training rows; sparse ones are kept as canonical CSR
        and searched by the sparse search (``fastknn._sparse``).
    first_row : int
        Global index of its first row.
    metric, p
        As returned by ``_search.resolve_metric``.
    algorithm : {"brute", "pruned", "auto", "kd_tree", "ball_tree"}
        Chosen for this shard as ``fastknn.kneighbors`` chooses for a whole
        training set; ``"pruned"`` builds the shard's pruning index here,
        once.
    n_neighbors : int
        Neighbours a search will ask for (``"auto"``'s probe uses it).
    targets : ndarray of shape (n_rows, n_outputs), optional
        Targets carried along with the candidates (the estimators' labels).

    Raises
    ------
    ValueError
        When the rows, or float targets, are not finite numbers, naming
        the shard's rows.
    """

    def __init__(self, rows, first_row, metric, p, algorithm, n_neighbors, targets=None):
        self.first_row = int(first_row)
        last_row = self.first_row + rows.shape[0] - 1
        try:
            rows = check_array(rows, accept_sparse=True, dtype="numeric", ensure_min_samples=0, input_name="Y")
        except ValueError as error:
            raise ValueError(f"training shard of rows {self.first_row} to {last_row}: {error}") from None
        if issparse(rows):
            # A canonical CSR copy, as the estimators' fit makes: the sparse search.
            self.rows = as_sparse_search(rows)
        else:
            # Blocks that Dask deserialised are often read-only; a writable
            # copy keeps the kernels' types those of the one-process search,
            # so that workers load its compiled kernels from numba's disk
            # cache instead of compiling read-only variants.
            self.rows = as_search_dtype(rows if rows.flags.writeable else rows.copy())
        k = min(n_neighbors, self.rows.shape[0])
        # The shard's search, prepared as an estimator's fit prepares its
        # own (method, pruning index, Euclidean norms); an empty shard (a
        # row selection can leave one) only pads, and prepares nothing.
        self.fitted = fit_search(self.rows, metric, p, algorithm, k, n_jobs=1) if k else None
        if targets is not None and targets.dtype.kind == "f" and not np.isfinite(targets).all():
            # A regressor's targets (a classifier's are encoded labels): checked where they are, as the rows.
            raise ValueError(
                f"training shard of rows {self.first_row} to {last_row}: Input y contains NaN or infinity."
            )
        self.targets = targets

    def __sizeof__(self):
        """Bytes held, so that Dask's memory accounting and scheduling see the shard's weight."""
        size = _nbytes(self.rows)
        euclidean = self.fitted and self.fitted.euclidean_train
        for part in (self.targets, euclidean and euclidean.cross_train, euclidean and euclidean.sqnorms):
            if part is not None and part is not self.rows:
                size += part.nbytes
        index = self.fitted and self.fitted.pruned_index
        if index is not None:
            size += sum(value.nbytes for value in vars(index).values() if isinstance(value, np.ndarray))
        sparse_train = self.fitted and self.fitted.sparse_train
        if sparse_train is not None:
            parts = (*sparse_train.rows, sparse_train.col_indptr, sparse_train.col_rows, sparse_train.col_data)
            size += sum(part.nbytes for part in parts if isinstance(part, np.ndarray))
        return size

    def _queries(self, queries):
        """A block of validated queries as the one-process estimators pass them to the search.

        Against sparse rows, as given (the sparse search converts them);
        against dense rows, dense (sparse queries densified), in the search
        dtype (``_search.queries_in_search_dtype``), writable (see ``__init__``).
        """
        if issparse(self.rows):
            return queries
        if issparse(queries):
            queries = queries.toarray()
        queries = queries_in_search_dtype(queries, self.rows.dtype)
        return queries if queries.flags.writeable else queries.copy()

    def _candidate_dtype(self):
        """The :func:`candidate_dtype` of this shard's candidates: with its targets when it has them."""
        return candidate_dtype() if self.targets is None else candidate_dtype(self.targets.dtype, self.targets.shape[1])

    def search(self, queries, n_neighbors, n_jobs):
        """Candidates of each query: the shard's ``min(n_neighbors, n_rows)`` nearest rows, padded.

        Parameters
        ----------
        queries : ndarray or scipy sparse matrix of shape (n_queries, n_features)
        n_neighbors : int
        n_jobs : int or None
            Threads for this task.

        Returns
        -------
        candidates : ndarray of shape (n_queries, n_neighbors), :func:`candidate_dtype`
            Ascending by (reduced distance, global index); padded with
            (+inf, :data:`PAD_INDEX`) past the shard's rows.
        """
        queries = self._queries(queries)
        k = min(n_neighbors, self.rows.shape[0])
        if k == 0:
            rdist, indices = np.empty((queries.shape[0], 0)), np.empty((queries.shape[0], 0), dtype=np.int64)
        else:
            rdist, indices = kneighbors_rdist(self.fitted, queries, k, n_jobs=n_jobs)
        has_targets = self.targets is not None
        dtype = self._candidate_dtype()
        candidates = np.empty((queries.shape[0], n_neighbors), dtype=dtype)
        candidates["rdist"][:, :k] = rdist
        candidates["index"][:, :k] = indices + self.first_row
        candidates["rdist"][:, k:] = np.inf
        candidates["index"][:, k:] = PAD_INDEX
        if has_targets:
            candidates["target"][:, :k] = self.targets[indices]
            candidates["target"][:, k:] = 0
        return candidates

    def radius_search(self, queries, radius, n_jobs):
        """Candidates of each query: the shard's rows within ``radius``.

        Parameters
        ----------
        queries : ndarray or scipy sparse matrix of shape (n_queries, n_features)
        radius : float
            A row at exactly this distance is within it.
        n_jobs : int or None
            Threads for this task.

        Returns
        -------
        candidates : ndarray of shape (n_queries, 1), object
            Item ``[i, 0]`` holds query i's candidates, a 1-D array of
            :func:`candidate_dtype` (with the shard's targets, when it has
            them) in global index order.
        """
        queries = self._queries(queries)
        if self.fitted is None:
            offsets = np.zeros(queries.shape[0] + 1, dtype=np.int64)
            rdist, indices = np.empty(0), np.empty(0, dtype=np.int64)
        else:
            rdist, indices, offsets = radius_rdist(self.fitted, queries, radius, n_jobs)
        has_targets = self.targets is not None
        dtype = self._candidate_dtype()
        found = np.empty(indices.shape[0], dtype=dtype)
        found["rdist"] = rdist
        found["index"] = indices + self.first_row
        if has_targets:
            found["target"] = self.targets[indices]
        return split_rows(found, offsets)[:, None]


def _nbytes(rows):
    """Bytes of a dense or sparse block of rows."""
    if issparse(rows):
        return rows.data.nbytes + rows.indices.nbytes + rows.indptr.nbytes
    return rows.nbytes


def build_shard(rows, *targets, block_info=None, metric, p, algorithm, n_neighbors):
    """``map_blocks`` function: the :class:`Shard` of one block of training rows."""
    first_row = block_info[0]["array-location"][0][0]
    return Shard(rows, first_row, metric, p, algorithm, n_neighbors, targets[0] if targets else None)


def search_shard(queries, shard, *, n_neighbors, n_jobs):
    """``blockwise`` function: one block of queries against one shard (a block may be empty)."""
    queries = check_array(queries, accept_sparse=True, dtype="numeric", ensure_min_samples=0, input_name="X")
    return shard.search(queries, n_neighbors, n_jobs)


def search_shard_radius(queries, shard, *, radius, n_jobs):
    """``blockwise`` function: the rows of one shard within ``radius`` of a block of queries (maybe none)."""
    queries = check_array(queries, accept_sparse=True, dtype="numeric", ensure_min_samples=0, input_name="X")
    return shard.radius_search(queries, radius, n_jobs)


def merge_candidates(candidates, axis, keepdims, n_neighbors):
    """``reduction`` function: the ``n_neighbors`` smallest candidates of each row.

    Ordered by (reduced distance, global index), which is the order of the
    one-process search: merging shards' sorted lists in any grouping gives
    the same list.
    """
    order = np.lexsort((candidates["index"], candidates["rdist"]), axis=1)[:, :n_neighbors]
    return np.take_along_axis(candidates, order, axis=1)


def merge_radius_candidates(candidates, axis, keepdims, sort_results):
    """``reduction`` function: each query's candidates of several shards, as one list.

    The shards come in the order of their rows, so their lists, each in
    global index order, concatenate into one in that order; with
    ``sort_results``, it is ordered by (reduced distance, global index),
    the order of the one-process search (a stable sort on the distance).
    """
    merged = np.empty((candidates.shape[0], 1), dtype=object)
    for i in range(candidates.shape[0]):
        found = np.concatenate(list(candidates[i]))
        if sort_results:
            found = found[np.lexsort((found["index"], found["rdist"]))]
        merged[i, 0] = found
    return merged
