"""Search driver: metric resolution, chunking, threads, output allocation.

Functions here take arrays that are already validated (finite, 2-D,
C-contiguous, float32 or float64, same dtype) and call the numba kernels.
"""

import contextlib
import functools
import math
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from ._config import WORKING_MEMORY_BYTES
from ._kernels.distances import (
    CHEBYSHEV,
    EUCLIDEAN,
    MANHATTAN,
    MINKOWSKI,
    _rdist_tiles,
    _squared_norms,
)
from ._kernels.topk import GEMM_TRAIN_BLOCK, _select_nearest, _select_nearest_gemm
from ._kernels.vote import _vote

# Names scikit-learn accepts for the metrics fastknn implements.
METRIC_ALIASES = {
    "euclidean": "euclidean",
    "l2": "euclidean",
    "manhattan": "manhattan",
    "cityblock": "manhattan",
    "l1": "manhattan",
    "chebyshev": "chebyshev",
    "infinity": "chebyshev",
    "minkowski": "minkowski",
    "cosine": "cosine",
}

_METRIC_IDS = {
    "euclidean": EUCLIDEAN,
    "manhattan": MANHATTAN,
    "chebyshev": CHEBYSHEV,
    "minkowski": MINKOWSKI,
}


def resolve_metric(metric, p):
    """Canonical metric name and Minkowski power for a metric and ``p``.

    ``minkowski`` with ``p`` equal to 1, 2 or infinity becomes the dedicated
    metric, so it runs the dedicated kernel.

    Parameters
    ----------
    metric : str
        A key of :data:`METRIC_ALIASES`.
    p : float
        Minkowski power, read only for ``metric="minkowski"``.

    Returns
    -------
    name : str
        One of ``"euclidean"``, ``"manhattan"``, ``"chebyshev"``, ``"minkowski"``, ``"cosine"``.
    p : float or None
        The power for ``"minkowski"``, else None.

    Raises
    ------
    ValueError
        For an unknown metric or a ``p`` that is not a number >= 1.
    """
    if not isinstance(metric, str) or metric not in METRIC_ALIASES:
        raise ValueError(
            f"metric must be one of {sorted(METRIC_ALIASES)}, got {metric!r}."
        )
    name = METRIC_ALIASES[metric]
    if name != "minkowski":
        return name, None
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not (p >= 1):
        raise ValueError(f"p must be a real number >= 1 for the minkowski metric, got {p!r}.")
    if p == 1:
        return "manhattan", None
    if p == 2:
        return "euclidean", None
    if math.isinf(p):
        return "chebyshev", None
    return "minkowski", float(p)


def effective_n_threads(n_jobs):
    """Number of numba threads for ``n_jobs`` (joblib's convention), or None.

    None keeps numba's current setting; -1 means every thread numba may use
    (``NUMBA_NUM_THREADS``); -2 all but one, and so on.
    """
    if n_jobs is None:
        return None
    available = numba.config.NUMBA_NUM_THREADS
    if n_jobs < 0:
        return max(1, available + 1 + n_jobs)
    return min(n_jobs, available)


@functools.lru_cache(maxsize=None)
def _threadpools():
    """The process's thread pools (BLAS, OpenMP), inspected once: a fresh
    inspection per call costs milliseconds.

    SciPy's BLAS is loaded first: it is the one numba's ``np.dot`` calls
    inside ``_select_nearest_gemm``, and it must be seen to be limited.
    """
    import scipy.linalg.cython_blas  # noqa: F401

    return ThreadpoolController()


def blas_limit(n_threads):
    """Context manager limiting BLAS to ``n_threads`` threads, then restoring."""
    return _threadpools().limit(limits=n_threads, user_api="blas")


@contextlib.contextmanager
def thread_limit(n_jobs):
    """Run the block with ``n_jobs`` threads for numba and BLAS, then restore."""
    n_threads = effective_n_threads(n_jobs)
    if n_threads is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        with blas_limit(n_threads):
            yield
    finally:
        numba.set_num_threads(previous)


def as_search_dtype(array):
    """The array in the float dtype the kernels run on, as a C-contiguous array.

    float32 and float64 are kept (no silent upcast); integers of at most 16
    bits become float32, where every value is exact; other numeric data
    becomes float64.
    """
    dtype = array.dtype
    if dtype not in (np.float32, np.float64):
        small_integer = dtype.kind in "biu" and dtype.itemsize <= 2
        dtype = np.float32 if small_integer else np.float64
    return np.ascontiguousarray(array, dtype=dtype)


# Rows per thread at least when computing norms: below it, starting a
# thread costs more than the rows take.
NORM_BLOCK_ROWS = 8192


def squared_norms(rows):
    """Squared Euclidean norms of the rows, in float64."""
    out = np.empty(rows.shape[0], dtype=np.float64)

    def norms_block(first, last):
        _squared_norms(rows[first:last], out[first:last])

    run_row_blocks(norms_block, rows.shape[0], min_rows=NORM_BLOCK_ROWS)
    return out


# Constant training columns are left out of the matrix product only when at
# least this fraction of the columns is constant: below it, the copy of the
# training set costs more memory than the product saves time.
MIN_CONSTANT_FRACTION = 0.05
# Training rows compared at a time when looking for constant columns.
CONSTANT_SCAN_ROWS = 4096


class EuclideanTrain(NamedTuple):
    """What a Euclidean search precomputes on the training rows.

    Attributes
    ----------
    sqnorms : ndarray of shape (n_train,), float64
        Squared norms of the training rows.
    columns : ndarray of int64 or None
        The columns where the training rows differ, when the others are left
        out of the matrix product; None when every column enters it.
    cross_train : ndarray of shape (n_train, n_columns)
        The training rows restricted to ``columns`` (the rows themselves when
        ``columns`` is None).
    """

    sqnorms: np.ndarray
    columns: np.ndarray | None
    cross_train: np.ndarray


def prepare_euclidean(train):
    """Precompute the training side of a Euclidean search (see :class:`EuclideanTrain`).

    A column holding one value in every training row adds the same amount to
    the cross terms of a query with every row, so it changes no ranking and is
    left out of the product: on the digits, 114 border pixels of 784 are
    blank in every one of 10,000 training images.
    """
    sqnorms = squared_norms(train)
    constant = np.full(train.shape[1], train.shape[0] > 0)
    # In chunks of rows, so that the comparison never holds a boolean copy of
    # the whole training set; most data have no constant column left after
    # the first chunk.
    for start in range(0, train.shape[0], CONSTANT_SCAN_ROWS):
        if not constant.any():
            break
        constant &= np.all(train[start : start + CONSTANT_SCAN_ROWS] == train[:1], axis=0)
    n_constant = int(constant.sum())
    if n_constant < MIN_CONSTANT_FRACTION * train.shape[1] or n_constant == train.shape[1]:
        return EuclideanTrain(sqnorms, None, train)
    columns = np.flatnonzero(~constant).astype(np.int64)
    return EuclideanTrain(sqnorms, columns, np.take(train, columns, axis=1))


def rounding_error_bound(dtype, n_features, metric, p):
    """Relative and absolute error bounds of the fast distance pass.

    A sum of ``n`` rounded terms, each itself a product of ``m`` rounded
    factors, is off by at most ``(n + m) u / (1 - (n + m) u)`` relative to the
    exact sum of absolute values (Higham, *Accuracy and Stability of Numerical
    Algorithms*, 2nd ed., section 3.1), with ``u`` the unit roundoff. The
    bounds below take that with a margin; for the matrix product, the relative
    bound applies to ``|q|^2 + |t|^2`` (see ``topk._rdist_bounds``). The
    absolute term covers underflow of tiny terms.
    """
    finfo = np.finfo(dtype)
    unit_roundoff = float(finfo.eps) / 2.0
    if metric == "minkowski":
        operations = n_features + 2.0 * math.ceil(p) + 16.0
    else:
        operations = n_features + 8.0
    relative = 1.5 * operations * unit_roundoff
    # The float64 arithmetic of the bounds themselves.
    relative += 16.0 * np.finfo(np.float64).eps
    absolute = 4.0 * (n_features + 1.0) * float(finfo.tiny)
    return relative, absolute


def fast_pass_may_overflow(metric, p, dtype, n_features, train_scale, query_scale):
    """Whether the fast distance pass could overflow ``dtype``.

    ``train_scale`` and ``query_scale`` bound the data: the largest squared
    row norm for Euclidean (cross terms are at most ``|q| |t|``), else the
    largest absolute value (a reduced distance is at most
    ``n_features (2 max|x|)^p``). The selection kernel assumes finite fast
    distances, so the driver skips the fast pass when this returns true.
    """
    log_limit = math.log(float(np.finfo(dtype).max) / 8.0)
    if metric == "euclidean":
        product = train_scale * query_scale
        return product > 0 and 0.5 * math.log(product) > log_limit
    largest = float(max(train_scale, query_scale))  # a python float: no numpy overflow warning
    if largest == 0:
        return False
    power = 1.0 if p is None else p
    return math.log(n_features) + power * math.log(2.0 * largest) > log_limit


def chunk_size(n_queries, n_train, itemsize, working_memory=None):
    """Queries per chunk so that one chunk's distance buffer fits ``working_memory``.

    ``working_memory`` defaults to :data:`WORKING_MEMORY_BYTES`, read at call time.
    """
    if working_memory is None:
        working_memory = WORKING_MEMORY_BYTES
    return int(max(1, min(n_queries, working_memory // max(1, n_train * itemsize))))


def run_query_blocks(kernel, n_queries, block, n_threads, *arguments):
    """Call ``kernel(first, last, *arguments)`` on blocks of ``block`` queries, in threads.

    The selection kernels release the GIL, so a thread pool runs them in
    parallel; each thread takes the next block when it is done, which keeps
    the threads busy on a loaded machine. (A numba ``prange`` over the blocks
    would do the same but adds seconds to the first compilation.)
    """
    firsts = range(0, n_queries, block)
    if n_threads <= 1 or len(firsts) <= 1:
        for first in firsts:
            kernel(first, min(first + block, n_queries), *arguments)
        return
    with ThreadPoolExecutor(max_workers=min(n_threads, len(firsts))) as pool:
        futures = [pool.submit(kernel, first, min(first + block, n_queries), *arguments) for first in firsts]
        for future in futures:
            future.result()


def run_row_blocks(block_function, n_rows, min_rows=1):
    """Call ``block_function(first, last)`` on about two blocks of rows per thread, in threads.

    For row-wise kernels (norms, pooled rows, image moments and warps):
    the driver slices the rows and runs a serial kernel per block, rather
    than the kernel running a numba ``prange``, whose parallel compilation
    adds about a second to the first call of each such kernel (measured with
    numba's compile events). ``min_rows`` keeps blocks from getting so small
    that threads cost more than they save.
    """
    n_threads = numba.get_num_threads()
    block = max(min_rows, -(-n_rows // (2 * n_threads)))
    run_query_blocks(block_function, n_rows, block, n_threads)


# Queries per block of ``class_votes``: voting costs nanoseconds a neighbour,
# so only large batches are worth threads.
VOTE_BLOCK = 65536


def class_votes(neighbor_labels, neighbor_values, weighting, n_classes):
    """Class votes of each query's neighbours (see ``_kernels.vote._vote``).

    Returns
    -------
    votes : ndarray of shape (n_queries, n_classes), float64
    """
    n_queries = neighbor_labels.shape[0]
    votes = np.empty((n_queries, n_classes), dtype=np.float64)
    run_query_blocks(
        _vote, n_queries, VOTE_BLOCK, numba.get_num_threads(), neighbor_labels, neighbor_values, weighting, votes
    )
    return votes


def gemm_query_block(n_queries, n_neighbors, n_threads, working_memory=None):
    """Queries per task of ``_select_nearest_gemm``.

    About two blocks per thread, so that a thread finishing early takes
    another; at most 512, as larger blocks gained nothing on the packaged
    digits (256 to 1,000 queries were measured; the cross terms of 512
    queries with ``GEMM_TRAIN_BLOCK`` training rows fit the shared cache);
    and few enough that the tasks' heaps and candidate lists, about
    ``32 (GEMM_TRAIN_BLOCK + n_neighbors)`` bytes a query, fit
    ``working_memory`` together.
    """
    if working_memory is None:
        working_memory = WORKING_MEMORY_BYTES
    per_query = 32 * (GEMM_TRAIN_BLOCK + n_neighbors)
    fits = working_memory // (per_query * max(1, n_threads))
    return int(max(1, min(512, -(-n_queries // (2 * max(1, n_threads))), fits)))


def search(queries, train, n_neighbors, metric, p, *, euclidean_train=None, n_jobs=None):
    """Exact k nearest training rows of every query.

    Parameters
    ----------
    queries : ndarray of shape (n_queries, n_features)
        C-contiguous, finite, float32 or float64.
    train : ndarray of shape (n_train, n_features)
        Same dtype as ``queries``, C-contiguous, finite.
    n_neighbors : int
        1 <= n_neighbors <= n_train.
    metric, p
        As returned by :func:`resolve_metric`.
    euclidean_train : EuclideanTrain, optional
        ``prepare_euclidean(train)``, for Euclidean (computed if None).
    n_jobs : int or None

    Returns
    -------
    rdist : ndarray of shape (n_queries, n_neighbors), float64
        Exact reduced distances (squared for Euclidean, p-th power for
        Minkowski), ascending per row.
    indices : ndarray of shape (n_queries, n_neighbors), int64
        Training indices; equal distances are ordered by index.
    """
    if metric == "cosine":
        from ._cosine import cosine_search  # it builds on this module

        return cosine_search(queries, train, n_neighbors, n_jobs=n_jobs)
    n_queries, n_features = queries.shape
    n_train = train.shape[0]
    dtype = train.dtype
    metric_id = _METRIC_IDS[metric]
    power = 0.0 if p is None else float(p)
    relative_error, absolute_error = rounding_error_bound(dtype, n_features, metric, power)

    rdist = np.empty((n_queries, n_neighbors), dtype=np.float64)
    indices = np.empty((n_queries, n_neighbors), dtype=np.int64)
    if n_queries == 0:
        return rdist, indices
    with thread_limit(n_jobs):
        if metric == "euclidean":
            if euclidean_train is None:
                euclidean_train = prepare_euclidean(train)
            train_sqnorms = euclidean_train.sqnorms
            query_sqnorms = squared_norms(queries)
            train_scale, query_scale = train_sqnorms.max(), query_sqnorms.max()
        else:
            train_scale = max(train.max(), -train.min())
            query_scale = max(queries.max(), -queries.min())
        fast_pass = not fast_pass_may_overflow(metric, p, dtype, n_features, train_scale, query_scale)
        if fast_pass and metric == "euclidean":
            train_lower = train_sqnorms * (1.0 - relative_error) - absolute_error
            train_upper = train_sqnorms * (1.0 + relative_error) + absolute_error
            query_terms = 2.0 * relative_error * query_sqnorms
            columns = euclidean_train.columns
            if columns is None:
                columns = np.empty(0, dtype=np.int64)
            n_threads = numba.get_num_threads()
            block = gemm_query_block(n_queries, n_neighbors, n_threads)
            # Each thread runs its own small products: BLAS must not start
            # threads of its own inside them.
            with blas_limit(1):
                run_query_blocks(
                    _select_nearest_gemm, n_queries, block, n_threads,
                    queries, train, queries, columns, euclidean_train.cross_train,
                    query_terms, train_lower, train_upper, EUCLIDEAN, rdist, indices,
                )
            return rdist, indices

        if fast_pass:
            lower_offsets = np.full(n_train, -absolute_error)
            upper_offsets = np.full(n_train, absolute_error)
            lower_scale, upper_scale = 1.0 - relative_error, 1.0 + relative_error
        else:
            # Every bound is 0, so every row ties and is a candidate: each
            # distance is computed exactly, in float64.
            lower_offsets = upper_offsets = np.zeros(n_train)
            lower_scale = upper_scale = 0.0
        query_terms = np.zeros(n_queries)
        for start, stop, chunk_approx in fast_pass_chunks(queries, train, metric, p, fast_pass):
            chunk = queries[start:stop]
            n_threads = numba.get_num_threads()
            run_query_blocks(
                _select_nearest, stop - start, -(-(stop - start) // (4 * n_threads)), n_threads,
                chunk_approx, chunk, train, lower_offsets, lower_scale, upper_offsets, upper_scale,
                query_terms[start:stop], metric_id, power, rdist[start:stop], indices[start:stop],
            )
    return rdist, indices


def fast_pass_chunks(queries, train, metric, p, fast_pass):
    """Chunks of queries with their fast reduced distances to every training row (non-Euclidean metrics).

    Yields ``(start, stop, approx)``: ``approx`` of shape
    ``(stop - start, n_train)`` holds ``_rdist_tiles`` of
    ``queries[start:stop]``, or zeros when not ``fast_pass``. The chunks
    share one buffer of at most ``WORKING_MEMORY_BYTES`` (see
    :func:`chunk_size`): each is overwritten by the next.
    """
    n_queries, n_train, dtype = queries.shape[0], train.shape[0], train.dtype
    power = 0.0 if p is None else float(p)
    integer_power = int(power) if power.is_integer() and power <= 64 else 0
    step = chunk_size(n_queries, n_train, dtype.itemsize)
    approx = np.zeros((step, n_train), dtype=dtype)
    for start in range(0, n_queries, step):
        stop = min(start + step, n_queries)
        chunk_approx = approx[: stop - start]
        if fast_pass:
            _rdist_tiles(
                queries[start:stop], train, _METRIC_IDS[metric], dtype.type(power), integer_power, chunk_approx
            )
        yield start, stop, chunk_approx


def rdist_to_dist(rdist, metric, p):
    """Turn reduced distances into distances, in place, and return them."""
    if metric == "euclidean":
        np.sqrt(rdist, out=rdist)
    elif metric == "minkowski":
        np.power(rdist, 1.0 / p, out=rdist)
    return rdist


def default_n_threads():
    """Threads numba uses now (for reports)."""
    return numba.get_num_threads() if os.environ.get("NUMBA_DISABLE_JIT") != "1" else 1
