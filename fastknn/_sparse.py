"""Driver of the sparse search (``fit_method_ == "sparse"``): scipy CSR/CSC matrices and sparse arrays.

``fit`` keeps the training matrix by rows and by columns (an inverted
index, see ``_kernels.sparse``); each query then meets only the training
rows that share a column with it, and ranks the others by their norms.
Nothing dense of the training set's size is ever built: each thread holds
a few arrays of ``n_train`` values.

Which side is converted when only one is sparse: dense queries against a
sparse training set become CSR (their zeros dropped); sparse queries
against a dense training set are densified by the estimators (the dense
search needs them dense; the queries are the side given at query time).
"""

from typing import NamedTuple

import numba
import numpy as np
import scipy.sparse

from ._cosine import COSINE_SQUARED_MAX, COSINE_SQUARED_MIN, power_of_two_scales
from ._kernels.distances import CHEBYSHEV, EUCLIDEAN, MANHATTAN, MINKOWSKI
from ._kernels.sparse import COSINE, _row_norms, _sparse_kneighbors, _sparse_radius, _within
from ._radius import concatenate_tasks
from ._search import as_search_dtype, thread_limit, run_query_blocks

SPARSE_METRIC_IDS = {
    "euclidean": EUCLIDEAN,
    "manhattan": MANHATTAN,
    "chebyshev": CHEBYSHEV,
    "minkowski": MINKOWSKI,
    "cosine": COSINE,
}

# Queries per task: enough that starting a task costs little against its
# queries, few enough that the threads share the work on a loaded machine.
QUERY_BLOCK = 64


def as_sparse_search(matrix):
    """A validated sparse matrix as the CSR matrix the sparse search runs on.

    A new ``csr_matrix`` (the caller's matrix is never changed): canonical
    (sorted column indices, duplicates summed, explicit zeros kept as
    values), in the search dtype of :func:`_search.as_search_dtype`.
    """
    csr = scipy.sparse.csr_matrix(matrix, copy=True)
    csr.sum_duplicates()  # also sorts the indices
    dtype = as_search_dtype(np.empty(0, dtype=csr.dtype)).dtype
    return csr.astype(dtype, copy=False)


class SparseRows(NamedTuple):
    """CSR arrays of canonical rows in the kernels' types, with the metric's row norms.

    Attributes
    ----------
    indptr, indices : ndarray of int64
    data : ndarray of float64
    norms : ndarray of shape (n_rows,), float64
        ``_kernels.sparse._row_norm`` of each row.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    norms: np.ndarray


def sparse_rows(csr, metric, p):
    """:class:`SparseRows` of a canonical CSR matrix (see :func:`as_sparse_search`).

    For cosine, a row of unusual scale is divided by a power of two, as
    ``_cosine.usual_scale`` does for dense rows.
    """
    indptr = csr.indptr.astype(np.int64)
    data = csr.data.astype(np.float64, copy=False)  # the caller's own canonical copy, never written
    norms = np.empty(csr.shape[0])
    _row_norms(indptr, data, SPARSE_METRIC_IDS[metric], 0.0 if p is None else float(p), norms)
    if metric == "cosine":
        data, norms = _usual_scale(indptr, data, norms)
    return SparseRows(indptr, csr.indices.astype(np.int64), data, norms)


def _usual_scale(indptr, data, norms):
    """Cosine rows' values and norms, each row of unusual squared norm with a nonzero value divided by a power of two.

    The rows and the bounds of ``_cosine.usual_scale``; a copy of the
    values only when a row is rescaled.
    """
    squared = norms * norms
    lengths = np.diff(indptr)
    suspect = np.flatnonzero(~((squared >= COSINE_SQUARED_MIN) & (squared <= COSINE_SQUARED_MAX)) & (lengths > 0))
    if suspect.shape[0] == 0:
        return data, norms
    # The suspect rows' values, gathered one row after another.
    lengths = lengths[suspect]
    starts = np.cumsum(lengths) - lengths
    positions = np.repeat(indptr[suspect] - starts, lengths) + np.arange(lengths.sum())
    largest = np.maximum.reduceat(np.abs(data[positions]), starts)
    scales = np.ones(suspect.shape[0])
    scales[largest > 0.0] = power_of_two_scales(largest[largest > 0.0])  # explicit zeros stay as they are
    data = data.copy()
    data[positions] /= np.repeat(scales, lengths)
    norms = np.empty_like(norms)
    _row_norms(indptr, data, COSINE, 0.0, norms)
    return data, norms


class SparseTrain(NamedTuple):
    """What ``fit`` keeps for the sparse search.

    Attributes
    ----------
    rows : SparseRows
        The training rows.
    col_indptr : ndarray of int64
    col_rows : ndarray of uint16, int32 or int64
    col_data : ndarray of float32 or float64
        The training rows by column (CSC): column c holds the rows
        ``col_rows[col_indptr[c]:col_indptr[c + 1]]``, in increasing order.
    value_rounding : float
        Bound on the relative error of each ``col_data`` value against the
        training value: ``2**-24`` where float64 values were rounded to
        float32 (see :func:`prepare_sparse`), else 0.
    """

    rows: SparseRows
    col_indptr: np.ndarray
    col_rows: np.ndarray
    col_data: np.ndarray
    value_rounding: float = 0.0


# Up to this many training rows the inverted index stores row numbers in
# 16 bits.
UINT16_ROWS = 2**16
# Nonzero values of magnitude in this range round to float32 within a
# relative 2**-24 (normal float32 numbers: no underflow, no overflow).
FLOAT32_NORMAL = (float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max))


def _compact_values(data, metric):
    """The inverted index's values: float32 where rounding them is bounded, else as given; and that bound.

    Only Euclidean and cosine shares are products, whose error from a
    relative rounding of one factor the kernels bound
    (``_kernels.sparse._product_candidates``); every nonzero value must be
    a normal float32 number.
    """
    if data.dtype == np.float32 or metric not in ("euclidean", "cosine") or not _within(data, *FLOAT32_NORMAL):
        return data, 0.0
    return data.astype(np.float32), 2.0**-24


def prepare_sparse(train, metric, p):
    """The inverted index of a canonical CSR training matrix (see :class:`SparseTrain`)."""
    rows = sparse_rows(train, metric, p)
    if train.dtype == np.float64 and rows.data is not train.data:
        # Cosine rows rescaled (only float64 rows can be): the index holds the same values.
        train = scipy.sparse.csr_matrix((rows.data, train.indices, train.indptr), shape=train.shape)
    by_column = train.tocsc()
    by_column.sort_indices()
    # The inverted index is what every query streams through (measured: the
    # accumulation is the search's largest cost), so it is kept small: row
    # numbers in 16 bits up to UINT16_ROWS rows, else 32 where they fit;
    # values in float32 for Euclidean and cosine where the rounding is
    # bounded (see _compact_values), else in the training dtype (float32
    # values are widened exactly as they are read). On the TF-IDF-like
    # figure of docs/performance.rst the 12 bytes a stored value became 6,
    # the search alone 1.27x to 1.31x faster (1 thread, CPU time).
    if train.shape[0] <= UINT16_ROWS:
        row_dtype = np.uint16
    else:
        row_dtype = np.int32 if train.shape[0] < 2**31 else np.int64
    values, rounding = _compact_values(by_column.data, metric)
    return SparseTrain(rows, by_column.indptr.astype(np.int64), by_column.indices.astype(row_dtype), values, rounding)


def sparse_queries(queries, n_features, metric, p):
    """Queries, sparse or dense (validated), as :class:`SparseRows`."""
    if not scipy.sparse.issparse(queries):
        # In the search dtype first: scipy.sparse cannot hold float16.
        queries = scipy.sparse.csr_matrix(as_search_dtype(np.asarray(queries)))
    queries = as_sparse_search(queries)
    if queries.shape[1] != n_features:
        raise ValueError(f"queries have {queries.shape[1]} features, the training set {n_features}.")
    return sparse_rows(queries, metric, p)


def _kernel_arguments(queries, sparse_train):
    train = sparse_train.rows
    return (
        queries.indptr, queries.indices, queries.data, queries.norms,
        train.indptr, train.indices, train.data, train.norms,
        sparse_train.col_indptr, sparse_train.col_rows, sparse_train.col_data, sparse_train.value_rounding,
    )


def sparse_search(queries, train, sparse_train, n_neighbors, metric, p, n_jobs=None):
    """Exact k nearest training rows of every query, sparse training set.

    Parameters
    ----------
    queries : sparse matrix or ndarray of shape (n_queries, n_features)
        Validated (finite, numeric).
    train : csr_matrix of shape (n_train, n_features)
        Canonical (:func:`as_sparse_search`).
    sparse_train : SparseTrain
        ``prepare_sparse(train, metric, p)``.
    n_neighbors : int
        1 <= n_neighbors <= n_train.
    metric, p
        As returned by ``_search.resolve_metric``.
    n_jobs : int or None

    Returns
    -------
    rdist : ndarray of shape (n_queries, n_neighbors), float64
        Exact reduced distances (as ``_search.search``; cosine distances
        for cosine), ascending per row.
    indices : ndarray of shape (n_queries, n_neighbors), int64
        Training indices; equal distances are ordered by index.
    """
    query_rows = sparse_queries(queries, train.shape[1], metric, p)
    n_queries = query_rows.norms.shape[0]
    rdist = np.empty((n_queries, n_neighbors))
    indices = np.empty((n_queries, n_neighbors), dtype=np.int64)
    arguments = _kernel_arguments(query_rows, sparse_train)
    power = 0.0 if p is None else float(p)
    with thread_limit(n_jobs):
        run_query_blocks(
            _sparse_kneighbors, n_queries, QUERY_BLOCK, numba.get_num_threads(),
            *arguments, SPARSE_METRIC_IDS[metric], power, rdist, indices,
        )
    return rdist, indices


def sparse_radius_search(queries, train, sparse_train, radius, metric, p, n_jobs=None, sort_distances=False):
    """Every training row within the reduced ``radius`` of each query, sparse training set.

    Parameters as :func:`sparse_search`; ``radius`` is reduced (see
    ``_radius.reduced_radius``) and a row at exactly it is within it.
    Returns ``(rdist, rows, offsets)`` as ``_radius.radius_search``.
    """
    query_rows = sparse_queries(queries, train.shape[1], metric, p)
    n_queries = query_rows.norms.shape[0]
    arguments = _kernel_arguments(query_rows, sparse_train)
    power = 0.0 if p is None else float(p)
    tasks = []

    def task(first, last):
        found = _sparse_radius(first, last, *arguments, SPARSE_METRIC_IDS[metric], power, float(radius), sort_distances)
        tasks.append((np.arange(first, last), found))

    with thread_limit(n_jobs):
        run_query_blocks(task, n_queries, QUERY_BLOCK, numba.get_num_threads())
    return concatenate_tasks(tasks, n_queries)
