"""The sharded exact search as a Dask graph, and its public function.

One task prepares each training shard (:class:`~fastknn.dask._shards.Shard`),
one task searches each (query block, shard) pair, and a tree reduction
merges each query block's per-shard candidate lists.
"""

import functools
import math
import numbers
import warnings

import dask.array as da
import numpy as np
import scipy.sparse
from dask.array.core import PerformanceWarning

from .._search import rdist_to_dist, resolve_metric
from ._shards import (
    build_shard,
    candidate_dtype,
    merge_candidates,
    merge_radius_candidates,
    search_shard,
    search_shard_radius,
)

ALGORITHMS = ("brute", "pruned", "auto", "kd_tree", "ball_tree")


def as_row_blocks(array, name):
    """``array`` as a 2-D Dask array of numbers whose blocks hold whole rows.

    A NumPy array (or anything ``np.asarray`` takes) becomes one block, a
    scipy sparse matrix or array one CSR block. A Dask array's blocks may be
    NumPy arrays or scipy sparse matrices.

    Raises
    ------
    ValueError
        For an array that is not 2-D, not numeric, has unknown chunk sizes,
        no rows, or is split along its features.
    TypeError
        For a Dask array whose blocks are neither NumPy arrays nor scipy
        sparse matrices.
    """
    if scipy.sparse.issparse(array):
        array = array.tocsr()
        array = da.from_array(
            array, chunks=(max(1, array.shape[0]), max(1, array.shape[1])), asarray=False, meta=array[:0]
        )
    elif not isinstance(array, da.Array):
        array = np.asarray(array)
        if array.dtype == object:  # numbers held as objects, which scikit-learn converts
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must hold numbers; got objects that are not.") from None
        if array.ndim == 2:
            array = da.from_array(array, chunks=(max(1, array.shape[0]), max(1, array.shape[1])))
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, of shape (n_rows, n_features); got {array.ndim} dimensions.")
    if not (isinstance(array._meta, np.ndarray) or scipy.sparse.issparse(array._meta)):
        raise TypeError(
            f"{name}'s blocks must be NumPy arrays or scipy sparse matrices, got {type(array._meta).__name__}."
        )
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers; got dtype {array.dtype}.")
    if any(math.isnan(size) for size in array.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first.")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no rows (shape {array.shape}); at least one is needed.")
    if array.numblocks[1] != 1:
        raise ValueError(
            f"{name} is split along its features (chunks {array.chunks[1]} on axis 1); every block must hold "
            f"whole rows: {name}.rechunk({{1: -1}})."
        )
    return array


def check_search_parameters(n_neighbors, n_samples, algorithm, n_jobs):
    """Raise a clear error for a bad ``n_neighbors``, ``algorithm`` or ``n_jobs``."""
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, numbers.Integral):
        raise TypeError(f"n_neighbors must be an integer, got {n_neighbors!r}.")
    if not 1 <= n_neighbors <= n_samples:
        raise ValueError(
            f"n_neighbors must be between 1 and the number of training rows ({n_samples}), got {n_neighbors}."
        )
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {list(ALGORITHMS)}, got {algorithm!r}.")
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive number.")


def shard_training_rows(Y, metric, p, algorithm, n_neighbors, targets=None):
    """One :class:`~fastknn.dask._shards.Shard` per row block of ``Y``, as a 1-D Dask array of objects.

    ``targets``, a Dask array of shape (n_samples, n_outputs) chunked like
    ``Y``'s rows, travels with the shards. Sparse blocks run the sparse
    search; an ``algorithm`` other than ``"auto"`` or ``"brute"`` warns on
    the client then, as the one-process estimators warn at ``fit``.
    """
    if scipy.sparse.issparse(Y._meta) and algorithm not in ("auto", "brute"):
        warnings.warn(
            f"cannot use {algorithm} with sparse input: using the sparse brute-force search", stacklevel=3
        )
        algorithm = "brute"
    arrays = (Y,) if targets is None else (Y, targets)
    return da.map_blocks(
        build_shard, *arrays,
        drop_axis=1, chunks=((1,) * Y.numblocks[0],), dtype=object, meta=np.empty((0,), dtype=object),
        metric=metric, p=p, algorithm=algorithm, n_neighbors=n_neighbors,
    )


def _unchanged(candidates, axis, keepdims):
    """The first step of the reduction: each shard's list is already its top k."""
    return candidates


def _merged_shard_searches(X, shards, search, width, combine, aggregate, meta, split_every, **search_arguments):
    """``search`` of each (query block, shard) pair, then ``combine`` / ``aggregate`` along the shards.

    ``search(queries, shard, **search_arguments)`` returns ``width``
    columns a query; the reduction merges them into ``width`` columns
    (the same for a merge of k nearest; 1 for the lists of a radius
    search), ``split_every`` lists per task (Dask's default when None).
    """
    with warnings.catch_warnings():
        # One block per (query block, shard) is the design, not an accident.
        warnings.simplefilter("ignore", PerformanceWarning)
        found = da.blockwise(
            search, "ij", X, "if", shards, "j",
            adjust_chunks={"j": width}, concatenate=True, dtype=meta.dtype, meta=meta, **search_arguments,
        )
    return da.reduction(
        found, chunk=_unchanged, combine=combine, aggregate=aggregate, axis=1, keepdims=True,
        dtype=meta.dtype, meta=meta, split_every=split_every, output_size=width, concatenate=True,
        name="fastknn-merge",
    )


def nearest_candidates(X, shards, n_neighbors, dtype, *, n_jobs, split_every):
    """Dask array of shape (n_queries, n_neighbors) of each query's nearest candidates (``dtype``).

    One task per (query block, shard), then a reduction along the shards,
    ``split_every`` lists merged per task (Dask's default when None).
    """
    merge = functools.partial(merge_candidates, n_neighbors=n_neighbors)
    return _merged_shard_searches(
        X, shards, search_shard, n_neighbors, merge, merge, np.empty((0, 0), dtype=dtype), split_every,
        n_neighbors=n_neighbors, n_jobs=n_jobs,
    )


def radius_candidates(X, shards, radius, *, sort_results, n_jobs, split_every):
    """Dask array of shape (n_queries, 1), objects: each query's candidates within ``radius``.

    Each item is a 1-D array of ``_shards.candidate_dtype`` (with the
    shards' targets, when they carry some), in global
    index order, or by (reduced distance, index) with ``sort_results``.
    The shards' lists are concatenated by a reduction along the shards and
    sorted once, at its last step.
    """
    return _merged_shard_searches(
        X, shards, search_shard_radius, 1,
        functools.partial(merge_radius_candidates, sort_results=False),
        functools.partial(merge_radius_candidates, sort_results=sort_results),
        np.empty((0, 0), dtype=object), split_every,
        radius=radius, n_jobs=n_jobs,
    )


def flat_radius_candidates(found, dtype):
    """A block of :func:`radius_candidates` as one flat candidate array (``dtype``) and its ``offsets``.

    Query i's candidates are ``flat[offsets[i]:offsets[i + 1]]``, the
    layout of the one-process radius search.
    """
    lists = found[:, 0]
    offsets = np.zeros(lists.shape[0] + 1, dtype=np.int64)
    np.cumsum([len(candidates) for candidates in lists], out=offsets[1:])
    flat = np.concatenate(list(lists)) if lists.shape[0] else np.empty(0, dtype=dtype)
    return flat, offsets


def distances_of(rdist, metric, p):
    """``map_blocks`` function: distances from a block of reduced distances (a copy)."""
    return rdist_to_dist(np.array(rdist, dtype=np.float64), metric, p)


def kneighbors(
    X, Y, n_neighbors=5, *, metric="euclidean", p=2, algorithm="brute", return_distance=True, n_jobs=1,
    split_every=None,
):
    """Exact k nearest rows of ``Y`` for every row of ``X``, on Dask arrays.

    The result equals :func:`fastknn.kneighbors` on the whole arrays, to
    the bit: same neighbours, same distances, equal distances ordered by
    lower global training index. Nothing is computed until the returned
    arrays are, with whatever scheduler is active (a
    ``dask.distributed.Client`` when there is one).

    Parameters
    ----------
    X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
        Queries, chunked by rows (each block holds whole rows). A NumPy
        array or scipy sparse matrix is one block; a Dask array's blocks may
        be NumPy arrays or scipy sparse matrices.
    Y : {dask.array.Array, array-like, sparse matrix} of shape (n_samples, n_features)
        Training rows, chunked by rows: each block is a shard, searched by
        its own tasks. A NumPy array or scipy sparse matrix is one shard. A
        shard whose block is a scipy sparse matrix (or sparse array, any
        format) runs the sparse search of the one-process estimators
        (``fit_method_ == "sparse"``), whatever ``algorithm`` says (other
        names than ``"auto"`` and ``"brute"`` warn), and takes sparse or
        dense queries; a dense shard densifies sparse query blocks.
    n_neighbors : int, default=5
        Number of neighbours, 1 <= n_neighbors <= n_samples; may exceed a
        shard's rows.
    metric : str, default="euclidean"
        As for :func:`fastknn.kneighbors`.
    p : float, default=2
        Power for ``metric="minkowski"``, >= 1.
    algorithm : {"brute", "pruned", "auto", "kd_tree", "ball_tree"}, default="brute"
        As for :func:`fastknn.kneighbors`, chosen per shard; a pruning
        index is built once per shard, by the task that prepares it.
    return_distance : bool, default=True
        Whether to return the distances too.
    n_jobs : int or None, default=1
        Threads per task. Dask runs one task per worker thread already, so
        one thread each keeps the cores busy without oversubscribing them.
    split_every : int, optional
        Candidate lists merged per task of the tree reduction (Dask's
        default when None).

    Returns
    -------
    distances : dask.array.Array of shape (n_queries, n_neighbors), float64
        Ascending per row; only when ``return_distance``.
    indices : dask.array.Array of shape (n_queries, n_neighbors), int64
        Global row indices into ``Y``. Both arrays have ``X``'s row chunks
        and one chunk of columns.

    Raises
    ------
    ValueError
        At the call: for arrays that are not 2-D or not numeric, blocks split
        along the features, mismatched feature counts, unknown chunk sizes,
        an unknown metric or algorithm, ``p < 1`` or ``n_neighbors`` out of
        range. At compute: for non-finite values, naming the training rows
        of the shard that holds them.

    See Also
    --------
    fastknn.kneighbors : The same search in one process.

    Notes
    -----
    Each (query block, shard) task sends back ``n_neighbors`` reduced
    distances and global indices per query (16 bytes each); a shard with
    fewer rows pads its list with infinite distances, which the merge drops.
    Candidates are merged on (reduced distance, global index), the order
    of the one-process search.

    Sparse shards travel to the workers as CSR matrices and keep there what
    the sparse search keeps at ``fit`` (the rows by rows and by columns,
    about three times the matrix); their candidates are merged exactly as
    dense shards' are, so the results equal :func:`fastknn.kneighbors` on
    the whole sparse matrix.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from fastknn.dask import kneighbors
    >>> Y = da.from_array(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), chunks=(2, 2))
    >>> distances, indices = kneighbors([[0.1, 0.0]], Y, n_neighbors=3)
    >>> indices.compute()
    array([[0, 1, 3]])
    >>> distances.compute().round(3)
    array([[0.1  , 0.9  , 1.345]])
    """
    metric_name, power = resolve_metric(metric, p)
    Y = as_row_blocks(Y, "Y")
    X = as_row_blocks(X, "X")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features but Y has {Y.shape[1]}; they must match.")
    check_search_parameters(n_neighbors, Y.shape[0], algorithm, n_jobs)
    shards = shard_training_rows(Y, metric_name, power, algorithm, n_neighbors)
    merged = nearest_candidates(X, shards, n_neighbors, candidate_dtype(), n_jobs=n_jobs, split_every=split_every)
    indices = merged["index"]
    if not return_distance:
        return indices
    distances = merged["rdist"].map_blocks(distances_of, metric_name, power, dtype=np.float64)
    return distances, indices
