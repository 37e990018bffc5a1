"""Cosine distance on dense rows: exact k-nearest and radius searches.

The cosine distance ``1 - x.y / (|x| |y|)`` of two rows is a function of
their directions only. The training rows are scaled to unit norm once, at
fit (a zero row stays zero); a search multiplies the unit queries by the unit
training rows (BLAS, in single precision): each cross term ``g``
approximates the cosine similarity ``c`` within a rigorous bound ``e``
(:func:`cosine_error_bound`), so ``1 - g - e <= d <= 1 - g + e``. These
bounds feed the selection of the Euclidean search
(``_search.euclidean_query_block``, block by block, in cache, with the same
kernels ``_kernels.topk._scan_values`` and ``_rerank_queries``) and the
radius search of the other metrics (``_kernels.radius._radius_select``),
which compute the cosine distance exactly, in float64 and from the rows as
given, for the rows that can still matter (``_kernels.distances._exact_rdist``):
the neighbours are the exact ones, ties ordered by training index.

Zero rows follow scikit-learn: their cosine similarity with any row is 0,
their distance 1. No other row is taken for zero: a float64 row whose
squares under- or overflow is divided by a power of two first
(:func:`usual_scale`), so that the distances depend on the rows' directions
alone, at any scale. A zero training row has cross terms 0, inside the bounds
above; a zero query is at distance 1 from every row, so its neighbours are
the first training rows, and it skips the search.
"""

from typing import NamedTuple

import numba
import numpy as np

from ._kernels.distances import COSINE
from ._kernels.radius import _radius_select
from ._radius import concatenate_tasks
from ._search import (
    EuclideanTrain,
    blas_limit,
    chunk_size,
    euclidean_query_block,
    gemm_query_block,
    rounding_error_bound,
    run_query_blocks,
    run_row_blocks,
    squared_norms,
    thread_limit,
)
from ._tree import TREE_ALGORITHMS

# Squared norms within which a row's cosine distances are taken from the row
# as given. Outside, a nonzero float64 row's squares have underflowed (its
# squared norm possibly to 0), lost digits to subnormal numbers, or
# overflowed; such a row is divided by a power of two first, which is exact
# and leaves its direction, so every cosine distance, unchanged. float32
# rows are always within (their squares are taken in float64).
COSINE_SQUARED_MIN = 2.0**-960
COSINE_SQUARED_MAX = 2.0**960
# Rows of unusual scale rescaled at a time by ``usual_scale``.
RESCALE_BLOCK_ROWS = 1024


class CosineTrain(NamedTuple):
    """What a cosine search precomputes on the training rows.

    Attributes
    ----------
    unit_rows : ndarray of shape (n_train, n_features)
        The training rows scaled to unit norm, in float32 (see :func:`unit_rows`); zero rows stay zero.
    rows : ndarray of shape (n_train, n_features)
        The training rows of :func:`usual_scale`, which the exact distances
        read: the training set itself unless a row had to be rescaled.
    """

    unit_rows: np.ndarray
    rows: np.ndarray


def check_cosine_algorithm(algorithm):
    """Raise for an ``algorithm`` that cannot search with the cosine distance.

    The trees need a true metric, which the cosine distance is not:
    scikit-learn refuses it for ``"kd_tree"`` and ``"ball_tree"`` with a
    message that starts as this one (code that matches it keeps working);
    the rest says what fastknn takes instead, where scikit-learn's adds
    that a metric may be a callable, which fastknn's may not. The pruned
    index bounds Minkowski distances only.
    """
    if algorithm in TREE_ALGORITHMS:
        raise ValueError(
            f"Metric 'cosine' not valid. Use sorted(sklearn.neighbors.VALID_METRICS['{algorithm}']) "
            "to get valid options: fastknn's trees take 'euclidean', 'manhattan', 'chebyshev' and "
            "'minkowski'; algorithm='brute' or 'auto' takes 'cosine'."
        )
    if algorithm == "pruned":
        raise ValueError("algorithm='pruned' does not support metric='cosine'; use 'auto' or 'brute'.")


def power_of_two_scales(largest):
    """The powers of two ``s`` with ``1 <= largest / s < 2``, for magnitudes ``largest > 0``.

    Dividing a row by ``s`` is exact, barring values far below its
    largest that become subnormal, and ``s`` is a finite float for every
    finite ``largest``.
    """
    return np.ldexp(1.0, np.frexp(largest)[1] - 1)


def usual_scale(rows):
    """The rows with each nonzero row of unusual squared norm divided by a power of two, and their squared norms.

    A row whose squared norm (float64) is outside ``COSINE_SQUARED_MIN``
    to ``COSINE_SQUARED_MAX`` and that has a nonzero value is divided by
    :func:`power_of_two_scales` of its largest magnitude; its squared norm
    is then between 1 and ``4 n_features``. Only float64 rows of
    magnitudes beyond about 1e-150 or 1e150 are rescaled.

    Returns
    -------
    rows : ndarray of shape (n_rows, n_features)
        The rows given when none is rescaled, else a copy.
    sqnorms : ndarray of shape (n_rows,), float64
        Squared norms of the returned rows.
    """
    sqnorms = squared_norms(rows)
    suspect = np.flatnonzero(~((sqnorms >= COSINE_SQUARED_MIN) & (sqnorms <= COSINE_SQUARED_MAX)))
    rescaled = None
    for start in range(0, suspect.shape[0], RESCALE_BLOCK_ROWS):
        positions = suspect[start : start + RESCALE_BLOCK_ROWS]
        block = rows[positions]
        largest = np.abs(block).max(axis=1)
        nonzero = largest > 0.0  # zero rows stay as they are
        if not nonzero.any():
            continue
        if rescaled is None:
            rescaled = rows.copy()
        block = block[nonzero] / power_of_two_scales(largest[nonzero])[:, None]
        rescaled[positions[nonzero]] = block
        sqnorms[positions[nonzero]] = squared_norms(block)
    return (rows if rescaled is None else rescaled), sqnorms


def unit_rows(rows, sqnorms):
    """The rows scaled to unit Euclidean norm, in float32, and which rows are zero.

    float32 for float64 rows too: their products then take about half the
    time (fit + predict of 1,000 queries of float64 rows took 1.34 to 1.8
    times the float32 rows' time), and :func:`cosine_error_bound` holds for
    the rounding of each feature to float32 whatever the rows' dtype; the
    exact distances read the rows themselves.

    Parameters
    ----------
    rows : ndarray of shape (n_rows, n_features)
        Rows of :func:`usual_scale`.
    sqnorms : ndarray of shape (n_rows,), float64
        Their squared norms.

    Returns
    -------
    unit : ndarray of shape (n_rows, n_features), float32
        ``rows[i] / |rows[i]|``, the norm and the quotient in float64, then
        rounded once to float32; a row of squared norm 0 stays zero.
    zero : ndarray of shape (n_rows,), bool
    """
    zero = sqnorms == 0.0
    with np.errstate(divide="ignore"):
        inverse = np.where(zero, 0.0, 1.0 / np.sqrt(sqnorms))
    unit = np.empty(rows.shape, dtype=np.float32)

    def scale_block(first, last):
        np.multiply(rows[first:last], inverse[first:last, None], out=unit[first:last], casting="unsafe")

    run_row_blocks(scale_block, rows.shape[0], min_rows=1024)
    return unit, zero


def prepare_cosine(train):
    """Precompute the training side of a cosine search (see :class:`CosineTrain`)."""
    rows, sqnorms = usual_scale(train)
    return CosineTrain(unit_rows(rows, sqnorms)[0], rows)


def cosine_error_bound(dtype, n_features):
    """Bound ``e`` on ``|g - c|``: cross term of the unit rows against the true cosine similarity.

    Three errors add up: each unit row's features are rounded once to
    ``dtype`` (relative ``u``, so the exact product of the rounded unit rows
    is within about ``2 u`` of ``c``, by Cauchy-Schwarz); the matrix product
    of rows of norm at most ``1 + u`` is within the relative bound of
    ``_search.rounding_error_bound``; and the float64 distance the
    re-ranking computes is itself off by about ``n_features`` float64
    roundings. Each is taken with a margin.
    """
    relative, absolute = rounding_error_bound(dtype, n_features, "euclidean", None)
    unit_roundoff = float(np.finfo(dtype).eps) / 2.0
    float64_eps = float(np.finfo(np.float64).eps)
    return 1.01 * relative + 3.0 * unit_roundoff + (n_features + 16.0) * float64_eps + absolute


def cosine_search(queries, train, n_neighbors, *, cosine_train=None, n_jobs=None):
    """Exact k nearest training rows of every query by cosine distance.

    The unit queries are multiplied by the unit training rows block by
    block, each thread scanning its products while they are in cache, as
    the Euclidean search does (``_search.euclidean_query_block``).

    Parameters
    ----------
    queries, train, n_neighbors, n_jobs
        As for ``_search.search``.
    cosine_train : CosineTrain, optional
        ``prepare_cosine(train)`` (computed if None).

    Returns
    -------
    dist : ndarray of shape (n_queries, n_neighbors), float64
        Exact cosine distances, ascending per row (the cosine distance is
        its own reduced distance).
    indices : ndarray of shape (n_queries, n_neighbors), int64
        Training indices; equal distances are ordered by index.
    """
    n_queries = queries.shape[0]
    dist = np.empty((n_queries, n_neighbors), dtype=np.float64)
    indices = np.empty((n_queries, n_neighbors), dtype=np.int64)
    if n_queries == 0:
        return dist, indices
    with thread_limit(n_jobs):
        if cosine_train is None:
            cosine_train = prepare_cosine(train)
        queries, query_sqnorms = usual_scale(queries)
        unit_queries, zero = unit_rows(queries, query_sqnorms)
        dist[zero] = 1.0
        indices[zero] = np.arange(n_neighbors)
        searched = np.flatnonzero(~zero)
        if searched.shape[0] < n_queries:
            queries, unit_queries = queries[searched], unit_queries[searched]
        found_dist = np.empty((searched.shape[0], n_neighbors), dtype=np.float64)
        found_indices = np.empty((searched.shape[0], n_neighbors), dtype=np.int64)
        # Bounds on twice the distance: the kernel scales the cross terms by -2.
        lower_offsets, upper_offsets = bound_offsets(cosine_train.unit_rows, 2.0)
        # The block reads only the product's training side: the unit rows, every column.
        product_train = EuclideanTrain(None, None, cosine_train.unit_rows)
        n_threads = numba.get_num_threads()
        block = gemm_query_block(searched.shape[0], n_neighbors, n_threads)
        # Each thread runs its own small products: BLAS must not start
        # threads of its own inside them.
        with blas_limit(1):
            run_query_blocks(
                euclidean_query_block, searched.shape[0], block, n_threads,
                queries, cosine_train.rows, product_train, np.zeros(searched.shape[0]), lower_offsets, upper_offsets,
                found_dist, found_indices, unit_queries, COSINE,
            )
        dist[searched] = found_dist
        indices[searched] = found_indices
    return dist, indices


def cosine_radius_search(queries, train, radius, *, cosine_train=None, n_jobs=None, sort_distances=False):
    """Every training row within cosine distance ``radius`` of each query (flat, as ``_radius.radius_search``).

    A row is kept when its exact float64 cosine distance is ``<= radius``.
    """
    n_queries = queries.shape[0]
    if n_queries == 0 or train.shape[0] == 0 or np.isnan(radius):
        return np.empty(0), np.empty(0, dtype=np.int64), np.zeros(n_queries + 1, dtype=np.int64)
    tasks = []
    with thread_limit(n_jobs):
        if cosine_train is None:
            cosine_train = prepare_cosine(train)
        queries, query_sqnorms = usual_scale(queries)
        unit_queries, _ = unit_rows(queries, query_sqnorms)
        lower_offsets, _ = bound_offsets(cosine_train.unit_rows, 1.0)
        n_threads = numba.get_num_threads()
        for start, stop, cross in cross_term_chunks(unit_queries, cosine_train.unit_rows):
            chunk = queries[start:stop]

            def task(first, last, chunk=chunk, cross=cross, start=start):
                found = _radius_select(
                    first, last, cross, chunk, cosine_train.rows, lower_offsets, -1.0, float(radius), COSINE, 0.0,
                    sort_distances,
                )
                tasks.append((np.arange(start + first, start + last), found))

            run_query_blocks(task, stop - start, -(-(stop - start) // (4 * n_threads)), n_threads)
    return concatenate_tasks(tasks, n_queries)


def bound_offsets(unit_train, scale):
    """Per-row offsets of the bounds ``scale (1 - e - g)`` and ``scale (1 + e - g)`` on ``scale`` times
    the cosine distance, the cross term ``g`` of the unit rows (``unit_train``, in the product's dtype)
    being scaled by ``-scale`` where they are used."""
    error = cosine_error_bound(unit_train.dtype, unit_train.shape[1])
    return np.full(unit_train.shape[0], scale * (1.0 - error)), np.full(unit_train.shape[0], scale * (1.0 + error))


def cross_term_chunks(unit_queries, unit_train):
    """Chunks of queries with their cross terms ``unit_queries @ unit_train.T``.

    Yields ``(start, stop, cross)``; the chunks share one buffer of at most
    ``WORKING_MEMORY_BYTES`` (``_search.chunk_size``), each overwritten by
    the next. The product runs on BLAS's threads (limited by the caller).
    """
    n_queries, n_train = unit_queries.shape[0], unit_train.shape[0]
    step = chunk_size(n_queries, n_train, unit_train.dtype.itemsize)
    buffer = np.empty((min(step, n_queries), n_train), dtype=unit_train.dtype)
    for start in range(0, n_queries, step):
        stop = min(start + step, n_queries)
        cross = buffer[: stop - start]
        np.dot(unit_queries[start:stop], unit_train.T, out=cross)
        yield start, stop, cross
