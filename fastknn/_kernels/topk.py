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
from .distances import CHEBYSHEV, COSINE, EUCLIDEAN, MANHATTAN, MINKOWSKI, _exact_rdist
from .prefetch import CACHE_LINE, _prefetch_to_l2

# Training rows scanned per step when selecting candidates: a vectorised count
# tells whether any row of a block can matter; a block that can is checked
# again in sub-blocks, and only a sub-block that can is looked at row by row.
# While the threshold is still falling, about k log(n_train / k) blocks hit,
# so small sub-blocks keep that row-by-row work small.
SCAN_BLOCK = 256
SCAN_SUB_BLOCK = 16

# Training rows per matrix product of the Euclidean search (and per call of
# ``_scan_values`` for the other metrics): a block of queries times this
# many rows stays in the core's cache for the scan.
GEMM_TRAIN_BLOCK = 1024

# Rows prefetched ahead of the exact distances of ``_rerank_queries``, and at most
# how many cache lines of each, into L2 (the pruned search's choice, see
# ``prefetch`` and ``pruning.EXACT_PREFETCH_LINES``).
RERANK_PREFETCH_AHEAD = 4
RERANK_PREFETCH_LINES = 64

# A query's pool of upper bounds holds this many per neighbour (plus 16)
# before the k-th smallest is taken again (see ``_scan_values``).
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
        # The median of three as a pivot, written with comparisons and
        # temporaries rather than min/max and tuple swaps, which numba
        # compiles as functions of their own (0.05 CPU s less, measured).
        a = values[low]
        b = values[(low + high) // 2]
        c = values[high]
        if a > b:
            a, b = b, a
        pivot = b if b < c else (c if c > a else a)
        i = low
        j = high
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                value = values[i]
                values[i] = values[j]
                values[j] = value
                index = indices[i]
                indices[i] = indices[j]
                indices[j] = index
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


@jit(fastmath=True)
def _scan_values(
    start, start_column, values, first_row, column_start, column_stop, lower_offsets, lower_scale, upper_offsets,
    upper_scale, query_terms, pools, pool_sizes, bounds, scratch, candidate_rows, candidate_lower, n_candidates,
):
    """Scan a block of approximate values of each query, from query ``start`` on, for candidates.

    Parameters
    ----------
    start : int
        The first query scanned (a row of ``values``).
    start_column : int
        The column its scan starts from (``column_start``, or where a
        previous call stopped for room); the later queries start at
        ``column_start``.
    values : ndarray of shape (n_queries, n_columns)
        Finite approximate values: fast reduced distances, or Euclidean
        cross terms ``q.t``. Columns ``column_start`` to ``column_stop - 1``
        are scanned; column ``c`` is training row ``first_row + c``.
    first_row, column_start, column_stop : int
    lower_offsets, upper_offsets : ndarray of shape (n_columns,), float64
    lower_scale, upper_scale : float
        The bounds of the reduced distance to the row of column ``c``, less
        the query's own term, are ``lower_offsets[c] + lower_scale *
        values[i, c]`` and ``upper_offsets[c] + upper_scale * values[i, c]``.
    query_terms : ndarray of shape (n_queries,), float64
        Added to a query's bound to get its pruning threshold.
    pools : ndarray of shape (n_queries, POOL_FACTOR * n_neighbors + 16), float64
        Each query's upper bounds that may be among the k smallest: every
        upper bound seen below its bound since the bound was last taken,
        and the k smallest before that; ``pool_sizes`` counts them.
    pool_sizes : ndarray of shape (n_queries,), int64
    bounds : ndarray of shape (n_queries,), float64
        Each query's k-th smallest upper bound when last taken (``NO_BOUND``
        until k rows have been seen): at least k rows are certainly no
        farther, so it only falls.
    scratch : ndarray of shape (pools.shape[1],), int64
        Work space for the selection.
    candidate_rows, candidate_lower : ndarray of shape (n_queries, capacity)
        Each query's candidate rows and their lower bounds, in row order;
        ``n_candidates`` counts them.
    n_candidates : ndarray of shape (n_queries,), int64

    Returns
    -------
    stop, stop_column : int
        ``n_queries`` (and ``column_stop``) when every query was scanned;
        otherwise the query, and the column, where its candidates, once
        those beyond its threshold are dropped, still fill more than half of
        its list: the driver widens the lists and scans again from there.
        Room is checked per sub-block that has a candidate, so the lists
        start short (a few times k) and grow only where many rows stay
        within the threshold: lists as long as a block of training rows
        were 16 MB for 500 queries, and writing their first candidates into
        fresh pages cost as much as the scan of 1,000 rows.

    Notes
    -----
    For fast reduced distances ``d`` with relative error ``r`` and absolute
    error ``a``, the bounds are ``d (1 - r) - a`` and ``d (1 + r) + a``:
    offsets ``-a`` and ``+a``, scales ``1 - r`` and ``1 + r``, no query term.

    For Euclidean cross terms, the squared distance is ``|q|^2 + |t|^2 - 2
    q.t``, and the rounding error of the single-precision dot product is at
    most ``r |q| |t| <= r (|q|^2 + |t|^2) / 2`` however the product is
    blocked, so the bounds are ``|q|^2 (1 - r) + |t|^2 (1 - r) - a - 2 q.t``
    and ``|q|^2 (1 + r) + |t|^2 (1 + r) + a - 2 q.t``. The query's own term
    is common to every row: rows are compared on the offsets ``|t|^2 (1 -
    r) - a`` and ``|t|^2 (1 + r) + a`` with scales -2, and the thresholds
    are apart by the query term ``2 r |q|^2``.

    A vectorised count tells whether any row of a ``SCAN_BLOCK`` can be a
    candidate; a block that can is counted again in sub-blocks, and only a
    sub-block that can is looked at row by row. Every row whose lower bound
    is within the current threshold becomes a candidate, so the candidates
    are a superset of the rows within the final one. The bound is taken
    again, by a quickselect over the pool, when the pool is full (and once k
    rows have been seen): a few passes over ``POOL_FACTOR k`` values, where a
    heap of the k smallest took a sift with mispredicted branches for every
    row that entered it.

    This kernel and ``_rerank_queries`` are the whole selection, each one
    flat function: numba compiles a chain of small kernels several times
    slower than the same code in one (each is typed, optimised and cached
    on its own, and again inside each caller), which a first search waits for.
    """
    n_neighbors = (pools.shape[1] - 16) // POOL_FACTOR
    capacity = candidate_rows.shape[1]
    for i in range(start, values.shape[0]):
        bound = bounds[i]
        query_term = query_terms[i]
        threshold = bound + query_term
        rows = candidate_rows[i]
        lower_bounds = candidate_lower[i]
        n_found = n_candidates[i]
        row_values = values[i]
        pool = pools[i]
        pool_size = pool_sizes[i]
        first_column = start_column if i == start else column_start
        for block_start in range(first_column, column_stop, SCAN_BLOCK):
            block_stop = block_start + SCAN_BLOCK if block_start + SCAN_BLOCK < column_stop else column_stop
            if not _count_within(
                row_values[block_start:block_stop], lower_offsets[block_start:block_stop], lower_scale, threshold
            ):
                continue
            for sub_start in range(block_start, block_stop, SCAN_SUB_BLOCK):
                sub_stop = sub_start + SCAN_SUB_BLOCK if sub_start + SCAN_SUB_BLOCK < block_stop else block_stop
                if not _count_within(
                    row_values[sub_start:sub_stop], lower_offsets[sub_start:sub_stop], lower_scale, threshold
                ):
                    continue
                if n_found + SCAN_SUB_BLOCK > capacity:  # drop the candidates beyond the threshold
                    kept = 0
                    for position in range(n_found):
                        if lower_bounds[position] <= threshold:
                            rows[kept] = rows[position]
                            lower_bounds[kept] = lower_bounds[position]
                            kept += 1
                    n_found = kept
                    if 2 * n_found > capacity:
                        n_candidates[i] = n_found
                        pool_sizes[i] = pool_size
                        bounds[i] = bound
                        return i, sub_start
                for c in range(sub_start, sub_stop):
                    value = np.float64(row_values[c])
                    lower = lower_offsets[c] + lower_scale * value
                    if lower > threshold:
                        continue
                    rows[n_found] = first_row + c
                    lower_bounds[n_found] = lower
                    n_found += 1
                    upper = upper_offsets[c] + upper_scale * value
                    if upper < bound:
                        pool[pool_size] = upper
                        pool_size += 1
                        if pool_size == pool.shape[0] or (pool_size == n_neighbors and bound == NO_BOUND):
                            bound = _keep_smallest(pool, scratch, pool_size, n_neighbors)
                            pool_size = n_neighbors
                            threshold = bound + query_term
        n_candidates[i] = n_found
        pool_sizes[i] = pool_size
        bounds[i] = bound
    return values.shape[0], column_stop


def _rerank_queries(metric, by_heap=False):
    """The kernel re-ranking the candidates of ``_scan_values`` exactly, for one metric.

    ``by_heap``: the kernel keeps the k best in a max-heap rather than by
    insertion (for large k, see :data:`HEAP_MIN_NEIGHBORS`); the other
    kernel's branch is pruned before typing, so the insertion kernels
    compile no heap helper.

    ``metric`` (one of ``distances.EUCLIDEAN`` ...) is a constant in the
    kernel, so numba compiles ``_exact_rdist`` for that metric alone (the
    other metrics' loops are pruned before typing): a first Euclidean
    predict compiled 0.5 CPU s less than with one kernel for every metric,
    and a search of one metric never compiles another's. Each metric's
    kernel is compiled, and cached on disk, the first time a search of that
    metric runs. ``RERANK_KERNELS`` holds them.
    """

    @jit()
    def rerank_queries(
        queries, train, p, pools, pool_sizes, scratch, query_terms, candidate_rows, candidate_lower,
        n_candidates, query, out_rdist, out_index,
    ):
        """Exact k nearest training rows of each query, once ``_scan_values`` has seen every row.

        Parameters
        ----------
        queries : ndarray of shape (n_queries, n_features)
        train : ndarray of shape (n_train, n_features)
        p : float
            As for ``distances._exact_rdist`` (read for Minkowski only).
        pools, pool_sizes, scratch, query_terms, candidate_rows, candidate_lower, n_candidates
            The scan's state (see ``_scan_values``).
        query : ndarray of shape (n_features,), float64
            Work space: each query is copied into it once, for all its exact
            distances, which then convert only the training row's features
            (see ``distances._copy_float64``).
        out_rdist, out_index : ndarray of shape (n_queries, n_neighbors)
            Exact reduced distances (float64), ascending, and training
            indices; ties by lower index first.

        Notes
        -----
        Each query's bound is taken once more over its pool; the candidates
        whose lower bound is within the threshold it gives (at least k) are
        computed exactly, in float64, and each one better than the k-th best
        so far is inserted in the query's sorted output row. The candidates
        come in ascending row order, so a later row never wins a tie and
        equal distances keep the lower training index. They are listed
        first, so that each row can be prefetched a few rows ahead of its
        distance (as the pruned search does, see ``prefetch``): at k=90 on
        5,000 digits, the rows read here are most of the search's memory
        traffic.

        The insertion moves up to k items where a heap of the k best took
        about log2(k) swaps, but it is no kernel of its own: a first search
        compiled the heap's four helper kernels (and ``_prefetch_row``) for
        0.5 CPU s. Over the few candidates within the threshold (most of
        them enter the k best once) it costs little beside their exact
        distances, n_features operations each. From
        :data:`HEAP_MIN_NEIGHBORS` neighbours the heap kernel runs instead
        (``by_heap``), compiled the first time such a search runs.
        """
        n_neighbors = out_rdist.shape[1]
        if by_heap:
            heap_values, heap_indices = _new_heap(n_neighbors)
        n_lines = (train.shape[1] * train.itemsize + CACHE_LINE - 1) // CACHE_LINE
        if n_lines > RERANK_PREFETCH_LINES:
            n_lines = RERANK_PREFETCH_LINES
        for i in range(queries.shape[0]):
            for f in range(query.shape[0]):
                query[f] = np.float64(queries[i, f])
            bound = NO_BOUND
            if pool_sizes[i] >= n_neighbors:
                bound = _keep_smallest(pools[i], scratch, pool_sizes[i], n_neighbors)
            threshold = bound + query_terms[i]
            rows = candidate_rows[i]
            lower_bounds = candidate_lower[i]
            n_within = 0
            for position in range(n_candidates[i]):
                if lower_bounds[position] <= threshold:
                    rows[n_within] = rows[position]
                    n_within += 1
            best_values = out_rdist[i]
            best_indices = out_index[i]
            size = 0
            for position in range(-RERANK_PREFETCH_AHEAD, n_within):
                ahead = position + RERANK_PREFETCH_AHEAD
                if ahead < n_within:
                    for line in range(n_lines):
                        _prefetch_to_l2(train, rows[ahead], line * CACHE_LINE)
                if position < 0:
                    continue
                j = rows[position]
                exact = _exact_rdist(query, train[j], metric, p)
                if by_heap:
                    if size < n_neighbors:
                        _heap_push(heap_values, heap_indices, size, exact, j)
                        size += 1
                    elif _is_worse(heap_values[0], heap_indices[0], exact, j):
                        _heap_replace_top(heap_values, heap_indices, size, exact, j)
                    continue
                if size < n_neighbors:
                    slot = size
                    size += 1
                elif exact < best_values[n_neighbors - 1]:
                    slot = n_neighbors - 1
                else:
                    continue
                while slot > 0 and best_values[slot - 1] > exact:
                    best_values[slot] = best_values[slot - 1]
                    best_indices[slot] = best_indices[slot - 1]
                    slot -= 1
                best_values[slot] = exact
                best_indices[slot] = j
            if by_heap:
                _heap_drain_sorted(heap_values, heap_indices, best_values, best_indices)

    return rerank_queries


# The re-ranking kernel of each metric, made at import (making one compiles
# nothing): threads that start a first search together share one kernel
# instead of each making, and compiling, its own.
RERANK_KERNELS = {metric: _rerank_queries(metric) for metric in (EUCLIDEAN, MANHATTAN, CHEBYSHEV, MINKOWSKI, COSINE)}
# From this many neighbours, the re-ranking keeps them in a heap
# (``RERANK_HEAP_KERNELS``, compiled on first use): insertion moves up to k
# items a candidate, and where k nears the training rows most candidates
# enter, so a query cost k^2 / 2 moves. 1,000 queries of 5,000 rows (64
# float32 features) at k=4,999 took 2.2 s against scikit-learn's 0.36 s.
HEAP_MIN_NEIGHBORS = 256
RERANK_HEAP_KERNELS = {
    metric: _rerank_queries(metric, by_heap=True) for metric in (EUCLIDEAN, MANHATTAN, CHEBYSHEV, MINKOWSKI, COSINE)
}


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
