"""Partial top-k selection with exact re-ranking.

The fast distance pass (a BLAS matrix product for Euclidean, ``_rdist_tiles``
otherwise) is rounded. For each query this module

1. bounds every approximate reduced distance from below and above, using a
   rigorous bound on its rounding error;
2. takes ``threshold``, the k-th smallest *upper* bound: at least k training
   rows are certainly no farther than it;
3. recomputes in float64 only the rows whose *lower* bound does not exceed
   ``threshold`` (every true neighbour is among them), keeping the k best in a
   max-heap ordered by (distance, training index).

So the neighbours are the exact nearest ones and ties between equal distances
go to the lower training index, whatever the number of threads: each query is
handled by one thread from start to end.
"""

import numpy as np

from .._config import jit
from .distances import _copy_float64, _exact_rdist
from .prefetch import _prefetch_row

# Training rows scanned per step when selecting candidates: a vectorised count
# tells whether any row of a block can matter; a block that can is checked
# again in sub-blocks, and only a sub-block that can is looked at row by row.
# While the threshold is still falling, about k log(n_train / k) blocks hit,
# so small sub-blocks keep that row-by-row work small.
SCAN_BLOCK = 256
SCAN_SUB_BLOCK = 16

# Training rows per matrix product in ``_select_nearest_gemm``: a block of
# queries times this many rows stays in the core's cache for the scan.
GEMM_TRAIN_BLOCK = 1024

# Rows prefetched ahead of the exact distances of ``_rerank``, and at most
# how many cache lines of each, into L2 (the pruned search's choice, see
# ``prefetch`` and ``pruning.EXACT_PREFETCH_LINES``).
RERANK_PREFETCH_AHEAD = 4
RERANK_PREFETCH_LINES = 64

# A query's pool of upper bounds holds this many per neighbour (plus 16)
# before the k-th smallest is taken again (see ``_scan_row``).
POOL_FACTOR = 4

# The bound before k rows have been seen: every row is a candidate. (Bounds
# can be any finite float64, so the loops that compare with it are compiled
# with inf support.)
NO_BOUND = np.inf


@jit()
def _is_worse(value_a, index_a, value_b, index_b):
    """Whether (value_a, index_a) ranks after (value_b, index_b)."""
    return value_a > value_b or (value_a == value_b and index_a > index_b)


@jit()
def _new_heap(size):
    """Value and index arrays for a heap of ``size`` items (contents unset)."""
    return np.empty(size, dtype=np.float64), np.zeros(size, dtype=np.int64)


@jit()
def _heap_push(values, indices, size, value, index):
    """Add an item to a max-heap holding ``size`` items (room must exist)."""
    position = size
    values[position] = value
    indices[position] = index
    while position > 0:
        parent = (position - 1) // 2
        if not _is_worse(values[position], indices[position], values[parent], indices[parent]):
            break
        values[position], values[parent] = values[parent], values[position]
        indices[position], indices[parent] = indices[parent], indices[position]
        position = parent


@jit()
def _heap_replace_top(values, indices, size, value, index):
    """Replace the worst item of a max-heap of ``size`` items and restore order."""
    values[0] = value
    indices[0] = index
    position = 0
    while True:
        left = 2 * position + 1
        if left >= size:
            break
        child = left
        right = left + 1
        if right < size and _is_worse(values[right], indices[right], values[left], indices[left]):
            child = right
        if not _is_worse(values[child], indices[child], values[position], indices[position]):
            break
        values[position], values[child] = values[child], values[position]
        indices[position], indices[child] = indices[child], indices[position]
        position = child


@jit()
def _keep_smallest(values, indices, size, m):
    """Move the ``m`` smallest of the first ``size`` values to the front; return the largest of them.

    A quickselect (Hoare partition, median-of-three pivot) that carries
    ``indices`` along; the ``m`` items in front come in no particular order.
    ``values`` must hold no NaN and ``1 <= m <= size``. Selecting this way
    costs a few passes over the items, where keeping a heap of ``m`` costs a
    sift (and its mispredicted branches) per item that enters it.
    """
    target = m - 1
    low = 0
    high = size - 1
    while low < high:
        middle = (low + high) // 2
        a, b, c = values[low], values[middle], values[high]
        pivot = max(min(a, b), min(max(a, b), c))
        i = low
        j = high
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                indices[i], indices[j] = indices[j], indices[i]
                i += 1
                j -= 1
        if target <= j:
            high = j
        elif target >= i:
            low = i
        else:
            break
    return values[target]


@jit()
def _heap_drain_sorted(values, indices, out_values, out_indices):
    """Empty a full max-heap into ascending (value, index) order.

    ``out_values`` and ``out_indices`` have the heap's size; the heap arrays
    are left in an unspecified order.
    """
    size = out_values.shape[0]
    for position in range(size - 1, -1, -1):
        out_values[position] = values[0]
        out_indices[position] = indices[0]
        if position > 0:
            _heap_replace_top(values, indices, position, values[position], indices[position])


@jit(fastmath=True)
def _count_within(values, offsets, scale, threshold):
    """How many ``offsets[j] + scale * values[j]`` are <= threshold.

    A counting reduction, which LLVM vectorises (a min-reduction does not).
    """
    count = 0
    for j in range(values.shape[0]):
        count += offsets[j] + scale * np.float64(values[j]) <= threshold
    return count


@jit()
def _pool_size(n_neighbors):
    """Capacity of a query's pool of upper bounds (see ``_scan_row``)."""
    return POOL_FACTOR * n_neighbors + 16


@jit()
def _pool_bound(pool, scratch, size, n_neighbors):
    """The ``n_neighbors``-th smallest of the first ``size`` values of ``pool`` (``NO_BOUND`` if fewer).

    Keeps those smallest in front of ``pool`` and returns the size now held.
    """
    if size < n_neighbors:
        return NO_BOUND, size
    return _keep_smallest(pool, scratch, size, n_neighbors), n_neighbors


@jit(fastmath=True)
def _scan_row(
    values,
    first_row,
    lower_offsets,
    lower_scale,
    upper_offsets,
    upper_scale,
    query_term,
    pool,
    scratch,
    pool_size,
    bound,
    candidate_rows,
    candidate_lower,
    n_candidates,
):
    """Scan one query's approximate values for consecutive training rows.

    Parameters
    ----------
    values : ndarray of shape (width,)
        Approximate values of training rows ``first_row`` to
        ``first_row + width - 1``.
    first_row : int
    lower_offsets, upper_offsets : ndarray of shape (width,), float64
    lower_scale, upper_scale : float
        The bounds of row ``first_row + j`` are
        ``lower_offsets[j] + lower_scale * values[j]`` and
        ``upper_offsets[j] + upper_scale * values[j]``.
    query_term : float
        Added to ``bound`` to get the pruning threshold.
    pool : ndarray of shape (_pool_size(n_neighbors),), float64
        Upper bounds that may be among the k smallest: every upper bound
        seen below ``bound`` since ``bound`` was last taken, and the k
        smallest before that.
    scratch : ndarray of shape (_pool_size(n_neighbors),), int64
        Work space for the selection.
    pool_size : int
        Values held in ``pool``.
    bound : float
        The k-th smallest upper bound when it was last taken
        (``NO_BOUND`` until k rows have been seen): at least k rows are
        certainly no farther, so it only falls.
    candidate_rows, candidate_lower : ndarray
        Candidate rows and their lower bounds, appended in row order; room
        for ``width`` more must exist.
    n_candidates : int
        Candidates held so far.

    Returns
    -------
    n_candidates, pool_size, bound
        Their values now.

    Notes
    -----
    The bound is taken again, by a quickselect over the pool, when the pool
    is full (and once k rows have been seen): a few passes over
    ``POOL_FACTOR k`` values, where a heap of the k smallest took a sift
    with mispredicted branches for every row that entered it (at k=91 on
    5,000 digits, about 4 a neighbour, which made the k-th smallest cost a
    microsecond a neighbour).
    """
    n_neighbors = (pool.shape[0] - 16) // POOL_FACTOR  # see _pool_size
    width = values.shape[0]
    threshold = bound + query_term
    for start in range(0, width, SCAN_BLOCK):
        stop = min(start + SCAN_BLOCK, width)
        if not _count_within(values[start:stop], lower_offsets[start:stop], lower_scale, threshold):
            continue
        for sub_start in range(start, stop, SCAN_SUB_BLOCK):
            sub_stop = min(sub_start + SCAN_SUB_BLOCK, stop)
            if not _count_within(
                values[sub_start:sub_stop], lower_offsets[sub_start:sub_stop], lower_scale, threshold
            ):
                continue
            for j in range(sub_start, sub_stop):
                value = np.float64(values[j])
                lower = lower_offsets[j] + lower_scale * value
                if lower > threshold:
                    continue
                candidate_rows[n_candidates] = first_row + j
                candidate_lower[n_candidates] = lower
                n_candidates += 1
                upper = upper_offsets[j] + upper_scale * value
                if upper < bound:
                    pool[pool_size] = upper
                    pool_size += 1
                    if pool_size == pool.shape[0] or (pool_size == n_neighbors and bound == NO_BOUND):
                        bound, pool_size = _pool_bound(pool, scratch, pool_size, n_neighbors)
                        threshold = bound + query_term
    return n_candidates, pool_size, bound


@jit()
def _drop_candidates_beyond(candidate_rows, candidate_lower, n_candidates, threshold):
    """Keep, in order, the candidates whose lower bound is <= threshold; return how many."""
    kept = 0
    for position in range(n_candidates):
        if candidate_lower[position] <= threshold:
            candidate_rows[kept] = candidate_rows[position]
            candidate_lower[kept] = candidate_lower[position]
            kept += 1
    return kept


@jit()
def _rerank(query, train, candidate_rows, candidate_lower, n_candidates, threshold, metric, p,
            best_values, best_indices, out_rdist, out_index):
    """Exact distances of the candidates within ``threshold``; the k best, sorted, into the outputs.

    ``query`` is float64 (see ``distances._copy_float64``). The candidates
    come in ascending row order, so a later row never wins a tie and equal
    distances keep the lower training index. The candidates within the
    threshold are listed first, so that each row can be prefetched a few
    rows ahead of its distance (as the pruned search does, see
    ``prefetch``): at k=90 on 5,000 digits, the rows read here are most of
    the search's memory traffic.
    """
    n_neighbors = out_rdist.shape[0]
    n_within = _drop_candidates_beyond(candidate_rows, candidate_lower, n_candidates, threshold)
    for position in range(min(RERANK_PREFETCH_AHEAD, n_within)):
        _prefetch_row(train, candidate_rows[position], RERANK_PREFETCH_LINES, True)
    size = np.int64(0)  # not the literal 0: numba would compile the heap helpers for it too
    for position in range(n_within):
        ahead = position + RERANK_PREFETCH_AHEAD
        if ahead < n_within:
            _prefetch_row(train, candidate_rows[ahead], RERANK_PREFETCH_LINES, True)
        j = candidate_rows[position]
        exact = _exact_rdist(query, train[j], metric, p)
        if size < n_neighbors:
            _heap_push(best_values, best_indices, size, exact, j)
            size += 1
        elif exact < best_values[0]:
            _heap_replace_top(best_values, best_indices, size, exact, j)
    _heap_drain_sorted(best_values, best_indices, out_rdist, out_index)


@jit()
def _select_nearest(first, last, approx, queries, train, lower_offsets, lower_scale, upper_offsets, upper_scale,
                    query_terms, metric, p, out_rdist, out_index):
    """Exact k nearest training rows for each query, from approximate values.

    Parameters
    ----------
    first, last : int
        The queries handled: ``first`` to ``last - 1``. One call runs on one
        thread and releases the GIL; the driver runs blocks in threads.
    approx : ndarray of shape (n_queries, n_train)
        Finite approximate values: fast reduced distances, or cross terms
        ``queries @ train.T`` (see ``_select_nearest_gemm``).
    queries : ndarray of shape (n_queries, n_features)
    train : ndarray of shape (n_train, n_features)
    lower_offsets, upper_offsets : ndarray of shape (n_train,), float64
    lower_scale, upper_scale : float
        Bounds of the reduced distance to row j, less the query's own term:
        ``lower_offsets[j] + lower_scale * approx[i, j]`` and likewise above.
    query_terms : ndarray of shape (n_queries,), float64
        Width of the gap between the two bounds that does not depend on j.
    metric : int
    p : float
        Minkowski power for the exact distance.
    out_rdist : ndarray of shape (n_queries, n_neighbors), float64
        Exact reduced distances, ascending.
    out_index : ndarray of shape (n_queries, n_neighbors), int64
        Training indices; ties by lower index first.

    Notes
    -----
    For fast reduced distances ``d`` with relative error ``r`` and absolute
    error ``a``, the bounds are ``d (1 - r) - a`` and ``d (1 + r) + a``:
    offsets ``-a`` and ``+a``, scales ``1 - r`` and ``1 + r``, no query term.

    One scan goes through the training rows (``_scan_row``) keeping the k
    smallest upper bounds in a heap and, as candidates, every row whose lower
    bound is within the current threshold (the heap's top plus the query
    term). The threshold only falls, so the candidates are a superset of the
    rows within the final one, which alone are computed exactly.
    """
    n_train = approx.shape[1]
    n_neighbors = out_rdist.shape[1]
    pool = np.empty(_pool_size(n_neighbors), dtype=np.float64)
    scratch = np.empty(pool.shape[0], dtype=np.int64)
    best_values, best_indices = _new_heap(n_neighbors)
    candidate_rows = np.empty(n_train, dtype=np.int64)
    candidate_lower = np.empty(n_train, dtype=np.float64)
    query = np.empty(queries.shape[1], dtype=np.float64)
    for i in range(first, last):
        n_candidates, pool_size, bound = _scan_row(
            approx[i], 0, lower_offsets, lower_scale, upper_offsets, upper_scale, query_terms[i],
            pool, scratch, 0, NO_BOUND, candidate_rows, candidate_lower, 0,
        )
        bound, _ = _pool_bound(pool, scratch, pool_size, n_neighbors)
        _copy_float64(queries[i], query)
        _rerank(
            query, train, candidate_rows, candidate_lower, n_candidates,
            bound + query_terms[i], metric, p, best_values, best_indices,
            out_rdist[i], out_index[i],
        )


@jit()
def _select_nearest_gemm(
    first, last, queries, train, cross_queries, columns, cross_train, query_terms, train_lower, train_upper, metric,
    out_rdist, out_index
):
    """Exact Euclidean (or cosine) k nearest training rows, the cross terms computed block by block.

    Parameters
    ----------
    first, last, queries, train
        As for ``_select_nearest`` (same float dtype, C-contiguous): the
        rows the exact distances are computed on.
    cross_queries : ndarray of shape (n_queries, n_features)
        The query rows multiplied by ``cross_train``: ``queries`` for
        Euclidean, the queries scaled to unit norm for cosine.
    columns : ndarray of shape (n_columns,), int64
        The columns that enter the cross terms, or an empty array for all of
        them. A column where every training row holds the same value adds
        the same amount to every cross term of a query, which shifts all of
        its bounds alike and changes no comparison between them: such
        columns can be left out.
    cross_train : ndarray of shape (n_train, n_columns)
        ``train`` restricted to ``columns`` (``train`` itself if all).
    query_terms : ndarray of shape (n_queries,), float64
        ``2 r |q|^2`` per query, ``r`` the relative rounding error bound of
        the cross terms.
    train_lower, train_upper : ndarray of shape (n_train,), float64
        ``|t|^2 (1 - r) - a`` and ``|t|^2 (1 + r) + a`` for the training rows.
    metric : int
        ``EUCLIDEAN``, or ``COSINE`` (see ``_cosine``: ``cross_queries`` and
        ``cross_train`` are then unit rows, whose cross term ``g`` bounds
        twice the cosine distance by ``2 (1 - e) - 2 g`` and
        ``2 (1 + e) - 2 g``, the offsets given as ``train_lower`` and
        ``train_upper``, with ``query_terms`` zero).
    out_rdist, out_index : ndarray of shape (n_queries, n_neighbors)
        Exact reduced distances, ascending (squared for Euclidean), and
        their training indices.

    Notes
    -----
    The squared distance is ``|q|^2 + |t|^2 - 2 q.t``, and the rounding error
    of the single-precision dot product is at most
    ``r |q| |t| <= r (|q|^2 + |t|^2) / 2`` however the product is blocked, so

    - upper bound: ``|q|^2 (1 + r) + train_upper - 2 q.t``
    - lower bound: ``|q|^2 (1 - r) + train_lower - 2 q.t``

    The query's own term is common to every row: rows are compared on
    ``train_lower - 2 q.t`` and ``train_upper - 2 q.t``, with thresholds
    apart by ``query_terms``.

    The query block is multiplied by ``GEMM_TRAIN_BLOCK`` training
    rows at a time (BLAS, which the caller limits to one thread) and scans the
    product while it is still in cache, so the full ``n_queries x n_train``
    matrix never exists. Candidates are kept per query, in row order, and
    dropped once beyond the threshold when room runs out.
    """
    n_train = train.shape[0]
    n_neighbors = out_rdist.shape[1]
    size = last - first
    block_queries = cross_queries[first:last]
    if columns.shape[0]:
        block_queries = _take_columns(cross_queries, first, last, columns)
    cross_buffer = np.empty(size * min(GEMM_TRAIN_BLOCK, n_train), dtype=cross_queries.dtype)
    pools = np.empty((size, _pool_size(n_neighbors)), dtype=np.float64)
    pool_sizes = np.zeros(size, dtype=np.int64)
    bounds = np.full(size, NO_BOUND)
    scratch = np.empty(pools.shape[1], dtype=np.int64)
    capacity = 2 * GEMM_TRAIN_BLOCK + n_neighbors
    candidate_rows = np.empty((size, capacity), dtype=np.int64)
    candidate_lower = np.empty((size, capacity), dtype=np.float64)
    n_candidates = np.zeros(size, dtype=np.int64)
    for train_start in range(0, n_train, GEMM_TRAIN_BLOCK):
        train_stop = min(train_start + GEMM_TRAIN_BLOCK, n_train)
        width = train_stop - train_start
        cross = cross_buffer[: size * width].reshape((size, width))
        np.dot(block_queries, cross_train[train_start:train_stop].T, cross)
        for i in range(size):
            if n_candidates[i] + width > capacity:
                threshold = bounds[i] + query_terms[first + i]
                n_candidates[i] = _drop_candidates_beyond(
                    candidate_rows[i], candidate_lower[i], n_candidates[i], threshold
                )
            if n_candidates[i] + width > capacity:
                capacity = max(2 * capacity, n_candidates[i] + width)
                candidate_rows = _widen(candidate_rows, capacity)
                candidate_lower = _widen(candidate_lower, capacity)
            n_candidates[i], pool_sizes[i], bounds[i] = _scan_row(
                cross[i], train_start,
                train_lower[train_start:train_stop], -2.0,
                train_upper[train_start:train_stop], -2.0,
                query_terms[first + i], pools[i], scratch, pool_sizes[i], bounds[i],
                candidate_rows[i], candidate_lower[i], n_candidates[i],
            )
    best_values, best_indices = _new_heap(n_neighbors)
    query = np.empty(queries.shape[1], dtype=np.float64)
    for i in range(size):
        bound, _ = _pool_bound(pools[i], scratch, pool_sizes[i], n_neighbors)
        _copy_float64(queries[first + i], query)
        _rerank(
            query, train, candidate_rows[i], candidate_lower[i], n_candidates[i],
            bound + query_terms[first + i], metric, 2.0,
            best_values, best_indices, out_rdist[first + i], out_index[first + i],
        )


@jit()
def _take_columns(rows, first, last, columns):
    """``rows[first:last][:, columns]`` as a new C-contiguous array."""
    out = np.empty((last - first, columns.shape[0]), dtype=rows.dtype)
    for i in range(last - first):
        row = rows[first + i]
        taken = out[i]
        for c in range(columns.shape[0]):
            taken[c] = row[columns[c]]
    return out


@jit()
def _widen(rows, capacity):
    """A copy of a 2-D array with ``capacity`` columns, the old ones first."""
    wider = np.empty((rows.shape[0], capacity), dtype=rows.dtype)
    for i in range(rows.shape[0]):  # explicit loops compile much faster than slice assignment
        for j in range(rows.shape[1]):
            wider[i, j] = rows[i, j]
    return wider
