"""Search driver: metric resolution, chunking, threads, output allocation.

Functions here take arrays that are already validated (finite, 2-D,
C-contiguous, float32 or float64, same dtype) and call the numba kernels.
"""

import contextlib
import functools
import math
import numbers
import os
import threading
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
from ._kernels.topk import (
    GEMM_TRAIN_BLOCK,
    HEAP_MIN_NEIGHBORS,
    NO_BOUND,
    POOL_FACTOR,
    RERANK_HEAP_KERNELS,
    RERANK_KERNELS,
    SCAN_SUB_BLOCK,
    _scan_values,
)
from ._kernels.vote import GIVEN, INVERSE_DISTANCE

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
    inside the pruned search's kernels, and it must be seen to be limited.
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


def queries_in_search_dtype(queries, train_dtype):
    """Dense queries in the dtype the search of ``train_dtype`` rows runs on.

    The training rows' dtype wherever the cast is exact. float64 queries
    that float32 cannot hold (against float32 rows, or small integers
    stored as float32) stay float64, and the search runs in float64, as
    scikit-learn computes: rounding them would move the queries, and could
    change their neighbours.
    """
    queries = as_search_dtype(queries)
    if queries.dtype == train_dtype:
        return queries
    with np.errstate(over="ignore"):  # a value beyond float32's range casts to inf: unequal, kept in float64
        cast = queries.astype(train_dtype)
    if train_dtype == np.float32 and not np.array_equal(cast, queries):
        return queries
    return cast


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


# Euclidean bounds grow with the squared norms of the rows multiplied, so
# rows far from the origin against their spread (uncentred features: 100
# + N(0, 1) in float32) left every row a candidate, and the search computed
# them all exactly: 4 to 7 times slower than scikit-learn's brute force at
# 64 and 256 features. The product then runs on rows less a centre, the
# mean of CENTRE_SAMPLE_ROWS sampled rows, where its squared norm exceeds
# MIN_CENTRE_SHARE of their mean squared norm: the bounds then shrink at
# least tenfold. Below it, the centred copy of the training set costs its
# memory for nothing measurable: uniform rows in [0, 1) (a share of 0.75)
# and 1 + N(0, 1) (0.5) searched as fast either way; the digits (0.41)
# keep their rows.
CENTRE_SAMPLE_ROWS = 1024
MIN_CENTRE_SHARE = 0.9
# float64 rows are multiplied in float32 (a copy, half their size) where
# their largest magnitude lies in FLOAT32_PRODUCT_RANGE (single-precision
# products cannot overflow, and the bounds' absolute term stays far below
# their distances) and they are not closer together than float32 can tell
# (see ``product_dtype``). The exact re-ranking reads the float64 rows, so the answers
# are unchanged. Fit + predict of 2,000 queries in float64 took 1.80 times
# the float32 rows' time on 50,000 Gaussian rows of 256 features, now 1.09;
# on the digits scaled to [0, 1], 1.85 and now 1.07.
FLOAT32_PRODUCT_RANGE = (1e-10, 1e15)
FLOAT32_PROBE_ROWS = 64
# Fewer probe rows for fewer rows, as the probe (probe rows x sampled rows
# x features) then outweighs the rest of a fit: at least 16, one per 64 rows.
FLOAT32_MIN_PROBE_ROWS = 16
FLOAT32_ROWS_PER_PROBE_ROW = 64
FLOAT32_MAX_BLURRED = 0.01
# The rounding of ``row - centre``, or of a float64 row to float32, adds at
# most about 4 unit roundoffs (of the product's dtype) of ``|q'|^2 +
# |t'|^2`` (the rows multiplied) to the error of the squared distance:
# ``|q - t|`` and ``|q' - t'|`` differ by at most ``u (|q'| + |t'|) / (1 -
# u)`` (centred, then cast: ``u`` is float32's plus float64's), and ``(|q'|
# + |t'|)^2 <= 2 (|q'|^2 + |t'|^2)``.
CENTRING_ROUNDOFFS = 6.0


class EuclideanTrain(NamedTuple):
    """What a Euclidean search precomputes on the training rows.

    Attributes
    ----------
    sqnorms : ndarray of shape (n_train,), float64
        Squared norms of the training rows (less ``centre``).
    columns : ndarray of int64 or None
        The columns where the training rows differ, when the others are left
        out of the matrix product; None when every column enters it.
    cross_train : ndarray of shape (n_train, n_columns)
        The training rows (less ``centre``) restricted to ``columns`` (all
        of them when ``columns`` is None), in the product's dtype: float32
        for float64 rows within :data:`FLOAT32_PRODUCT_RANGE`, else the
        rows' own.
    centre : ndarray of shape (n_features,) or None
        In the rows' dtype, subtracted from training rows and queries alike
        before the product (see :func:`product_rows`); None where the rows
        are multiplied as they are.
    """

    sqnorms: np.ndarray
    columns: np.ndarray | None
    cross_train: np.ndarray
    centre: np.ndarray | None = None


def _sampled_rows(rows, n_sample, random_state):
    """``n_sample`` rows drawn without replacement, in their order; all the rows, uncopied, where no more."""
    if rows.shape[0] <= n_sample:
        return rows
    rng = np.random.default_rng(random_state)
    return rows[np.sort(rng.choice(rows.shape[0], n_sample, replace=False))]


def euclidean_centre(train, random_state=0):
    """The centre the product's rows are taken from (see :data:`MIN_CENTRE_SHARE`), or None.

    Any centre gives valid bounds; one near the rows keeps them tight.
    """
    n_rows = train.shape[0]
    if n_rows == 0:
        return None
    sample = _sampled_rows(train, CENTRE_SAMPLE_ROWS, random_state)
    centre = sample.mean(axis=0, dtype=np.float64)
    with np.errstate(over="ignore"):  # squares beyond float64: inf, no centre (the fast pass stands down)
        mean_sqnorm = float(np.einsum("ij,ij->", sample, sample, dtype=np.float64)) / sample.shape[0]
        centre_sqnorm = float(centre @ centre)
    if not (np.isfinite(mean_sqnorm) and np.isfinite(centre_sqnorm)) or centre_sqnorm <= MIN_CENTRE_SHARE * mean_sqnorm:
        return None
    with np.errstate(over="ignore"):
        centre = centre.astype(train.dtype)
    return centre if np.isfinite(centre).all() else None


def centred_rows(rows, centre):
    """``rows - centre`` in the rows' dtype (each difference rounded once), or ``rows`` where ``centre`` is None."""
    if centre is None:
        return rows
    with np.errstate(over="ignore"):  # an infinite difference makes the fast pass stand down (fast_pass_may_overflow)
        return np.subtract(rows, centre, dtype=rows.dtype)


def product_dtype(rows, random_state=0):
    """The dtype the rows are multiplied in: float32 for float64 rows that single precision resolves.

    The rows' largest magnitude must lie within :data:`FLOAT32_PRODUCT_RANGE`,
    and the rows must not be closer together than float32's bound can tell:
    :data:`FLOAT32_PROBE_ROWS` sampled rows (fewer for fewer rows, see
    :data:`FLOAT32_MIN_PROBE_ROWS`) are compared with
    :data:`CENTRE_SAMPLE_ROWS` others, in float64, and float64 is kept where
    more than :data:`FLOAT32_MAX_BLURRED` of those lie within twice the
    float32 bound of a probe row's nearest (two clusters 1e-5 wide and 1
    apart, in float64, left half the rows candidates of every query in a
    float32 product: 5 times slower than in float64).
    """
    if rows.dtype != np.float64 or rows.shape[0] < 2:
        return rows.dtype
    largest = max(float(rows.max()), -float(rows.min()))
    low, high = FLOAT32_PRODUCT_RANGE
    if not low <= largest <= high:
        return rows.dtype
    sample = _sampled_rows(rows, CENTRE_SAMPLE_ROWS, random_state)
    n_probe = min(
        FLOAT32_PROBE_ROWS, max(FLOAT32_MIN_PROBE_ROWS, rows.shape[0] // FLOAT32_ROWS_PER_PROBE_ROW), sample.shape[0]
    )
    sqnorms = np.einsum("ij,ij->i", sample, sample)
    with blas_limit(1):
        sqdist = sqnorms[:n_probe, None] + sqnorms[None, :] - 2.0 * (sample[:n_probe] @ sample.T)
    sqdist[np.arange(n_probe), np.arange(n_probe)] = np.inf  # the probe row itself
    relative_error = rounding_error_bound(np.float32, rows.shape[1], "euclidean", 0.0)[0]
    window = 2.0 * relative_error * (sqnorms[:n_probe, None] + sqnorms[None, :])
    nearest = sqdist.min(axis=1)
    blurred = np.count_nonzero(sqdist <= nearest[:, None] + window) / sqdist.size
    return np.dtype(np.float32) if blurred <= FLOAT32_MAX_BLURRED else rows.dtype


def product_rows(rows, euclidean_train):
    """The rows as the product takes them: less ``euclidean_train.centre``, in ``cross_train``'s dtype."""
    rows = centred_rows(rows, euclidean_train.centre)
    with np.errstate(over="ignore"):  # inf makes the fast pass stand down (fast_pass_may_overflow)
        return rows.astype(euclidean_train.cross_train.dtype, copy=False)


def euclidean_error_bound(dtype, n_features, euclidean_train):
    """:func:`rounding_error_bound` of the Euclidean fast pass on rows of ``dtype``.

    In the product's dtype, with the rounding of the rows to it (centred, or
    float64 rounded to float32: :data:`CENTRING_ROUNDOFFS`).
    """
    cross_dtype = euclidean_train.cross_train.dtype
    relative, absolute = rounding_error_bound(cross_dtype, n_features, "euclidean", 0.0)
    if euclidean_train.centre is not None or cross_dtype != dtype:
        relative += CENTRING_ROUNDOFFS * float(np.finfo(cross_dtype).eps) / 2.0
    return relative, absolute


def prepare_euclidean(train):
    """Precompute the training side of a Euclidean search (see :class:`EuclideanTrain`).

    A column holding one value in every training row adds the same amount to
    the cross terms of a query with every row, so it changes no ranking and is
    left out of the product: on the digits, 114 border pixels of 784 are
    blank in every one of 10,000 training images. Rows far from the origin
    are multiplied less a centre (:data:`MIN_CENTRE_SHARE`), float64 rows
    in float32 where they fit (:data:`FLOAT32_PRODUCT_RANGE`).
    """
    constant = np.full(train.shape[1], train.shape[0] > 0)
    # In chunks of rows, so that the comparison never holds a boolean copy of
    # the whole training set; most data have no constant column left after
    # the first chunk.
    for start in range(0, train.shape[0], CONSTANT_SCAN_ROWS):
        if not constant.any():
            break
        constant &= np.all(train[start : start + CONSTANT_SCAN_ROWS] == train[:1], axis=0)
    n_constant = int(constant.sum())
    drop_constant = MIN_CONSTANT_FRACTION * train.shape[1] <= n_constant < train.shape[1]
    centre = euclidean_centre(train)
    if drop_constant and (centre is not None or np.any(train[0, constant] != 0)):
        # The columns left out must contribute nothing to the rows
        # multiplied, or the norms (which hold them) and the product (which
        # does not) disagree by 2 q.t over them: a shift that the k search's
        # ranking ignores but a radius search's fixed threshold does not. Less
        # their own value, they are exactly 0.
        if centre is None:
            centre = np.zeros(train.shape[1], dtype=train.dtype)
        centre[constant] = train[0, constant]
    rows = centred_rows(train, centre)
    rows = rows.astype(product_dtype(rows), copy=False)
    sqnorms = squared_norms(rows)
    if not drop_constant:
        return EuclideanTrain(sqnorms, None, rows, centre)
    columns = np.flatnonzero(~constant).astype(np.int64)
    return EuclideanTrain(sqnorms, columns, np.take(rows, columns, axis=1), centre)


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
        product = float(train_scale) * float(query_scale)  # python floats: inf, not a numpy overflow warning
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


def _new_worker_pool():
    """A pool of ``NUMBA_NUM_THREADS - 1`` threads, kept for the process."""
    return ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1), thread_name_prefix="fastknn")


_worker_pool = None
_worker_pool_lock = threading.Lock()


def _forget_worker_pool():
    """Drop the pool in a forked child: its threads were not copied."""
    global _worker_pool
    _worker_pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_worker_pool)


def worker_pool():
    """The process's helper threads, started on first use."""
    global _worker_pool
    with _worker_pool_lock:
        if _worker_pool is None:
            _worker_pool = _new_worker_pool()
        return _worker_pool


def run_query_blocks(kernel, n_queries, block, n_threads, *arguments):
    """Call ``kernel(first, last, *arguments)`` on blocks of ``block`` queries, in threads.

    The selection kernels release the GIL, so threads run them in parallel:
    the calling thread and ``n_threads - 1`` helpers each take the next
    block when done, which keeps them busy on a loaded machine. (A numba
    ``prange`` over the blocks would do the same but adds seconds to the
    first compilation.)

    The helpers come from a pool kept for the process: starting threads
    per call cost 1 to 2 ms each, a third of a fit + predict of 1,000
    queries among 1,000 rows. The caller works too and, once the blocks
    are taken, withdraws the helpers that have not started, so a call never
    waits for a busy pool (nor deadlocks when a kernel calls this itself).
    """
    firsts = range(0, n_queries, block)
    n_helpers = min(n_threads, len(firsts)) - 1
    if n_helpers <= 0:
        for first in firsts:
            kernel(first, min(first + block, n_queries), *arguments)
        return
    taken = iter(firsts)
    take_lock = threading.Lock()
    failed = threading.Event()

    def work():
        while not failed.is_set():
            with take_lock:
                first = next(taken, None)
            if first is None:
                return
            try:
                kernel(first, min(first + block, n_queries), *arguments)
            except BaseException:
                failed.set()
                raise

    try:
        pool = worker_pool()
        helpers = [pool.submit(work) for _ in range(n_helpers)]
    except RuntimeError:  # the interpreter is shutting down: no new threads
        helpers = []
    try:
        work()
    finally:
        for helper in helpers:
            helper.cancel()
        for helper in helpers:
            if not helper.cancelled():
                helper.result()


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


# Queries per block of ``class_votes``: bounds its temporary arrays (a few
# times ``8 * n_neighbors`` bytes a query).
VOTE_BLOCK = 8192


def class_votes(neighbor_labels, neighbor_values, weighting, n_classes):
    """Weighted class votes of each query's neighbours, with scikit-learn's rules.

    Parameters
    ----------
    neighbor_labels : ndarray of shape (n_queries, n_neighbors), int64
        Encoded class (index into ``classes_``) of each neighbour.
    neighbor_values : ndarray of shape (n_queries, n_neighbors), float64
        Distances for ``INVERSE_DISTANCE``, weights for ``GIVEN``; unread for
        ``UNIFORM`` (see ``_kernels.vote``).
    weighting : int
        ``UNIFORM``: every neighbour weighs 1. ``INVERSE_DISTANCE``: a
        neighbour weighs ``1 / distance``, except in a row holding a zero
        distance, where the zero-distance neighbours weigh 1 and the others 0
        (scikit-learn's rule). ``GIVEN``: the weights are ``neighbor_values``.
    n_classes : int

    Returns
    -------
    votes : ndarray of shape (n_queries, n_classes), float64
        Summed weights per class, unnormalised, so that the argmax is taken
        on the same sums as scikit-learn's ``weighted_mode``. Each sum adds
        a row's neighbours in order (``np.bincount`` on the keys
        ``row * n_classes + class``): NumPy, not a numba kernel, which a
        first predict would wait for.
    """
    n_queries = neighbor_labels.shape[0]
    votes = np.empty((n_queries, n_classes), dtype=np.float64)
    for first in range(0, n_queries, VOTE_BLOCK):
        last = min(first + VOTE_BLOCK, n_queries)
        weights = None
        if weighting == GIVEN:
            weights = neighbor_values[first:last].ravel()
        elif weighting == INVERSE_DISTANCE:
            distances = neighbor_values[first:last]
            at_zero = distances == 0.0
            with np.errstate(divide="ignore"):
                inverse = 1.0 / distances
            rows_at_zero = at_zero.any(axis=1)
            inverse[rows_at_zero] = at_zero[rows_at_zero]
            weights = inverse.ravel()
        keys = neighbor_labels[first:last] + n_classes * np.arange(last - first)[:, None]
        counts = np.bincount(keys.ravel(), weights, minlength=(last - first) * n_classes)
        votes[first:last] = counts.reshape(last - first, n_classes)
    return votes


def gemm_query_block(n_queries, n_neighbors, n_threads, working_memory=None):
    """Queries per task of :func:`euclidean_query_block`.

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


# Room in each query's candidate list at first, per neighbour (plus two
# sub-blocks of the scan): lists grow where more candidates stay within the
# threshold (see ``topk._scan_values``).
CANDIDATES_PER_NEIGHBOR = 4


class Candidates:
    """The state of the selection of a block of queries (``topk._scan_values``, ``topk._rerank_queries``).

    The driver feeds it the approximate values of the block of queries with
    one block of training rows after another (:meth:`scan`), then has the
    candidates re-ranked exactly (:meth:`rerank`). Each query keeps its pool
    of upper bounds, its bound and its candidates, whose lists grow here
    when a block does not fit (rarely: when many rows tie within the bound).
    """

    def __init__(self, n_queries, n_neighbors):
        self.n_neighbors = n_neighbors
        capacity = CANDIDATES_PER_NEIGHBOR * n_neighbors + 2 * SCAN_SUB_BLOCK
        self.pools = np.empty((n_queries, POOL_FACTOR * n_neighbors + 16))
        self.pool_sizes = np.zeros(n_queries, dtype=np.int64)
        self.bounds = np.full(n_queries, NO_BOUND)
        self.scratch = np.empty(self.pools.shape[1], dtype=np.int64)
        self.rows = np.empty((n_queries, capacity), dtype=np.int64)
        self.lower = np.empty((n_queries, capacity))
        self.counts = np.zeros(n_queries, dtype=np.int64)

    def reset(self):
        """Start again, for as many new queries."""
        self.pool_sizes[:] = 0
        self.bounds[:] = NO_BOUND
        self.counts[:] = 0

    def scan(self, values, first_row, column_start, column_stop, lower_offsets, lower_scale, upper_offsets,
             upper_scale, query_terms):
        """Scan ``values[:, column_start:column_stop]`` (training rows ``first_row + column``) for candidates."""
        n_queries = values.shape[0]
        start, start_column = 0, column_start
        while start < n_queries:
            start, start_column = _scan_values(
                start, start_column, values, first_row, column_start, column_stop, lower_offsets, lower_scale,
                upper_offsets, upper_scale, query_terms, self.pools, self.pool_sizes, self.bounds, self.scratch,
                self.rows, self.lower, self.counts,
            )
            if start < n_queries:  # query ``start`` needs longer candidate lists
                self.rows = _widen(self.rows, 2 * self.rows.shape[1])
                self.lower = _widen(self.lower, 2 * self.lower.shape[1])

    def rerank(self, queries, train, metric_id, power, query_terms, out_rdist, out_index):
        """Exact k nearest of each query into ``out_rdist`` and ``out_index`` (see ``topk._rerank_queries``).

        From ``topk.HEAP_MIN_NEIGHBORS`` neighbours, the kernel that keeps them in a heap.
        """
        kernels = RERANK_HEAP_KERNELS if self.n_neighbors >= HEAP_MIN_NEIGHBORS else RERANK_KERNELS
        kernels[metric_id](
            queries, train, power, self.pools, self.pool_sizes, self.scratch,
            query_terms, self.rows, self.lower, self.counts, np.empty(queries.shape[1]), out_rdist, out_index,
        )


def _widen(lists, capacity):
    """A copy of a 2-D array with ``capacity`` columns, the old ones first."""
    wider = np.empty((lists.shape[0], capacity), dtype=lists.dtype)
    wider[:, : lists.shape[1]] = lists
    return wider


# A block of fewer queries than this is multiplied by proportionally more
# training rows at a time, so that a search of a few queries does not pay a
# Python round trip (product, scan) per ``GEMM_TRAIN_BLOCK`` rows.
MIN_BLOCK_QUERIES = 64


def train_block_rows(n_queries, n_train):
    """Training rows per product and scan for a block of ``n_queries`` queries.

    ``GEMM_TRAIN_BLOCK``, or more for fewer than ``MIN_BLOCK_QUERIES``
    queries: the products then hold at most ``MIN_BLOCK_QUERIES *
    GEMM_TRAIN_BLOCK`` values, which stay in the core's cache for the scan.
    """
    return int(min(n_train, GEMM_TRAIN_BLOCK * max(1, MIN_BLOCK_QUERIES // max(1, n_queries))))


def euclidean_bounds(train_sqnorms, query_sqnorms, relative_error, absolute_error):
    """The offsets and query terms of the bounds of the Euclidean search (see ``topk._scan_values``).

    Returns
    -------
    train_lower, train_upper : ndarray of shape (n_train,), float64
        ``|t|^2 (1 - r) - a`` and ``|t|^2 (1 + r) + a``.
    query_terms : ndarray of shape (n_queries,), float64
        ``2 r |q|^2``.
    """
    train_lower = train_sqnorms * (1.0 - relative_error) - absolute_error
    train_upper = train_sqnorms * (1.0 + relative_error) + absolute_error
    return train_lower, train_upper, 2.0 * relative_error * query_sqnorms


def euclidean_query_block(
    first, last, queries, train, euclidean_train, query_terms, train_lower, train_upper, out_rdist, out_index,
    cross_queries=None, metric_id=EUCLIDEAN,
):
    """Exact Euclidean (or cosine) k nearest training rows of queries ``first`` to ``last - 1``.

    The block of queries is multiplied by ``GEMM_TRAIN_BLOCK`` training rows
    at a time (more for a few queries, see :func:`train_block_rows`), with
    NumPy's BLAS, which the caller limits to one thread (each thread of
    :func:`run_query_blocks` runs its own products), and each
    product is scanned for candidates while it is still in cache, so the
    full ``n_queries x n_train`` matrix never exists; the candidates within
    the final thresholds are then computed exactly (see :class:`Candidates`).
    The kernels release the GIL, as BLAS does.

    The product is NumPy's rather than an ``np.dot`` inside a kernel: the
    same BLAS call, but numba compiled the kernel that held it (with its
    allocations and the widening of the candidate lists, done here too)
    several times slower, and a first Euclidean predict waited for it.

    Parameters
    ----------
    first, last : int
    queries, train : ndarray
        Same float dtype, C-contiguous: the rows the exact distances are
        computed on.
    euclidean_train : EuclideanTrain
        The training side of the product (constant columns are left out of
        it); only its ``columns`` and ``cross_train`` are read.
    query_terms : ndarray of shape (n_queries,), float64
        ``2 r |q|^2``, ``r`` the relative error bound of the cross terms
        (see ``topk._scan_values``).
    train_lower, train_upper : ndarray of shape (n_train,), float64
        ``|t|^2 (1 - r) - a`` and ``|t|^2 (1 + r) + a``.
    out_rdist, out_index : ndarray of shape (n_queries, n_neighbors)
        Exact reduced distances (squared for Euclidean), ascending, and
        training indices; rows ``first`` to ``last - 1`` are written.
    cross_queries : ndarray of shape (n_queries, n_features), optional
        The query rows multiplied by ``cross_train``: ``queries`` if None
        (as :func:`product_rows` gives them where ``euclidean_train`` has a
        centre or a product dtype of its own).
    metric_id : int, default=EUCLIDEAN
        The exact distance of the re-ranking: ``EUCLIDEAN``, or ``COSINE``
        for ``_cosine.cosine_search``, which passes the unit queries as
        ``cross_queries``, the unit training rows as ``cross_train``, zero
        ``query_terms`` and the offsets of twice the cosine distance (the
        same kernels then run for both metrics).
    """
    n_train = train.shape[0]
    size = last - first
    block_queries = (queries if cross_queries is None else cross_queries)[first:last]
    if euclidean_train.columns is not None:
        block_queries = np.take(block_queries, euclidean_train.columns, axis=1)
    cross_train = euclidean_train.cross_train
    terms = query_terms[first:last]
    block_rows = train_block_rows(size, n_train)
    cross_buffer = np.empty(size * block_rows, dtype=cross_train.dtype)
    candidates = Candidates(size, out_rdist.shape[1])
    for train_start in range(0, n_train, block_rows):
        train_stop = min(train_start + block_rows, n_train)
        width = train_stop - train_start
        cross = cross_buffer[: size * width].reshape(size, width)
        np.matmul(block_queries, cross_train[train_start:train_stop].T, out=cross)
        candidates.scan(
            cross, train_start, 0, width, train_lower[train_start:train_stop], -2.0,
            train_upper[train_start:train_stop], -2.0, terms,
        )
    candidates.rerank(
        queries[first:last], train, metric_id, 2.0, terms, out_rdist[first:last], out_index[first:last]
    )


# Values (queries x training rows) per scan of ``approx_query_block``: its
# candidate lists hold up to 16 bytes a value.
APPROX_SCAN_VALUES = 2**18


def approx_query_block(
    first, last, approx, queries, train, lower_offsets, lower_scale, upper_offsets, upper_scale, query_terms,
    metric_id, power, out_rdist, out_index,
):
    """Exact k nearest training rows of queries ``first`` to ``last - 1`` from their approximate values.

    ``approx`` holds the fast reduced distances of the queries with every
    training row (see :func:`fast_pass_chunks`), bounded as described in
    ``topk._scan_values``; ``query_terms`` is zero. Each scan takes a few
    queries' whole rows (``APPROX_SCAN_VALUES`` values in all, at least one
    row): their candidate lists, as long as a row, stay small enough to be
    cached, where a block of hundreds of queries scanned 1,024 columns at a
    time (as the Euclidean search scans its products) kept the lists of all
    of them busy: that selection took 1.1x to 1.7x the time of the
    single-query kernel it replaced (asv's ``topk.SelectNearest`` set-up, a
    loaded machine).
    """
    n_train = train.shape[0]
    n_neighbors = out_rdist.shape[1]
    step = max(1, APPROX_SCAN_VALUES // n_train)
    candidates = Candidates(min(step, last - first), n_neighbors)
    for start in range(first, last, step):
        stop = min(start + step, last)
        if stop - start < candidates.counts.shape[0]:
            candidates = Candidates(stop - start, n_neighbors)
        else:
            candidates.reset()
        terms = query_terms[start:stop]
        candidates.scan(
            approx[start:stop], 0, 0, n_train, lower_offsets, lower_scale, upper_offsets, upper_scale, terms
        )
        candidates.rerank(
            queries[start:stop], train, metric_id, power, terms, out_rdist[start:stop], out_index[start:stop]
        )


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
            relative_error, absolute_error = euclidean_error_bound(dtype, n_features, euclidean_train)
            cross_queries = product_rows(queries, euclidean_train)
            train_sqnorms = euclidean_train.sqnorms
            query_sqnorms = squared_norms(cross_queries)
            train_scale, query_scale = train_sqnorms.max(), query_sqnorms.max()
            pass_dtype = euclidean_train.cross_train.dtype
        else:
            train_scale = max(train.max(), -train.min())
            query_scale = max(queries.max(), -queries.min())
            pass_dtype = dtype
        fast_pass = not fast_pass_may_overflow(metric, p, pass_dtype, n_features, train_scale, query_scale)
        if fast_pass and metric == "euclidean":
            train_lower, train_upper, query_terms = euclidean_bounds(
                train_sqnorms, query_sqnorms, relative_error, absolute_error
            )
            n_threads = numba.get_num_threads()
            block = gemm_query_block(n_queries, n_neighbors, n_threads)
            # Each thread runs its own small products: BLAS must not start
            # threads of its own inside them.
            with blas_limit(1):
                run_query_blocks(
                    euclidean_query_block, n_queries, block, n_threads,
                    queries, train, euclidean_train, query_terms, train_lower, train_upper, rdist, indices,
                    cross_queries,
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
                approx_query_block, stop - start, -(-(stop - start) // (4 * n_threads)), n_threads,
                chunk_approx, chunk, train, lower_offsets, lower_scale, upper_offsets, upper_scale,
                query_terms[start:stop], metric_id, power, rdist[start:stop], indices[start:stop],
            )
    return rdist, indices


# Training rows per thread at least in the non-Euclidean fast pass. Each
# thread takes a block of training rows against every query of the chunk,
# so each row is read once per chunk, as with the ``prange`` over tiles
# that the kernel had: blocks of queries read the training set once per
# block, and took 1.2 times as long.
TILES_BLOCK_ROWS = 1024


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
            chunk = queries[start:stop]

            def tiles_block(first, last):
                _rdist_tiles(
                    chunk, train[first:last], _METRIC_IDS[metric], dtype.type(power), integer_power,
                    chunk_approx[:, first:last],
                )

            run_row_blocks(tiles_block, n_train, min_rows=TILES_BLOCK_ROWS)
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
