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
from numba import prange

from .._config import jit
from .distances import _exact_rdist

# Training rows scanned per step when selecting candidates: a vectorised count
# tells whether any row of a block can matter; a block that can is checked
# again in sub-blocks, and only a sub-block that can is looked at row by row.
# While the threshold is still falling, about k log(n_train / k) blocks hit,
# so small sub-blocks keep that row-by-row work small.
SCAN_BLOCK = 256
SCAN_SUB_BLOCK = 16


@jit()
def _is_worse(value_a, index_a, value_b, index_b):
    """Whether (value_a, index_a) ranks after (value_b, index_b)."""
    return value_a > value_b or (value_a == value_b and index_a > index_b)


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


@jit(finite=True)
def _upper_bound(row, j, from_cross, train_upper, relative_error, absolute_error):
    """Upper bound of the reduced distance to training row j (see _select_nearest)."""
    if from_cross:
        return train_upper[j] - 2.0 * np.float64(row[j])
    return np.float64(row[j]) * (1.0 + relative_error) + absolute_error


@jit(finite=True)
def _lower_bound(row, j, from_cross, train_lower, relative_error, absolute_error):
    """Lower bound of the reduced distance to training row j (see _select_nearest)."""
    if from_cross:
        return train_lower[j] - 2.0 * np.float64(row[j])
    return np.float64(row[j]) * (1.0 - relative_error) - absolute_error


@jit(finite=True)
def _count_lower_within(row, start, stop, from_cross, train_lower, relative_error, absolute_error, threshold):
    """How many training rows in ``start:stop`` have a lower bound <= threshold.

    A counting reduction, which LLVM vectorises (a min-reduction does not).
    """
    count = 0
    if from_cross:
        for j in range(start, stop):
            count += (train_lower[j] - 2.0 * np.float64(row[j])) <= threshold
    else:
        scale = 1.0 - relative_error
        for j in range(start, stop):
            count += (np.float64(row[j]) * scale - absolute_error) <= threshold
    return count


@jit(parallel=True)
def _select_nearest(
    approx,
    queries,
    train,
    from_cross,
    query_sqnorms,
    train_upper,
    train_lower,
    relative_error,
    absolute_error,
    metric,
    p,
    n_blocks,
    out_rdist,
    out_index,
):
    """Exact k nearest training rows for each query of a chunk.

    Parameters
    ----------
    approx : ndarray of shape (n_queries, n_train)
        Cross terms ``queries @ train.T`` when ``from_cross``, else fast
        reduced distances; finite.
    queries : ndarray of shape (n_queries, n_features)
    train : ndarray of shape (n_train, n_features)
    from_cross : bool
    query_sqnorms : ndarray of shape (n_queries,), float64
        Squared query norms (read only when ``from_cross``).
    train_upper, train_lower : ndarray of shape (n_train,), float64
        ``|t|^2 (1 + relative_error) + absolute_error`` and
        ``|t|^2 (1 - relative_error) - absolute_error`` for the training rows
        (read only when ``from_cross``).
    relative_error, absolute_error : float
        Rounding error bound of ``approx``.
    metric : int
    p : float
        Minkowski power for the exact distance.
    n_blocks : int
        Number of query blocks shared out to threads (a few per thread);
        each block allocates its scratch arrays once.
    out_rdist : ndarray of shape (n_queries, n_neighbors), float64
        Exact reduced distances, ascending.
    out_index : ndarray of shape (n_queries, n_neighbors), int64
        Training indices; ties by lower index first.

    Notes
    -----
    With ``from_cross`` the squared distance is ``|q|^2 + |t|^2 - 2 q.t``.
    The rounding error of the dot product is at most
    ``relative_error |q| |t| <= relative_error (|q|^2 + |t|^2) / 2``, so

    - upper bound: ``|q|^2 (1 + r) + train_upper - 2 q.t``
    - lower bound: ``|q|^2 (1 - r) + train_lower - 2 q.t``

    The query term is the same for every training row, so the scan compares
    ``train_upper - 2 q.t`` and ``train_lower - 2 q.t`` against thresholds
    that differ by ``2 r |q|^2``. Otherwise ``approx`` holds non-negative
    reduced distances ``d`` bounded by ``d (1 +- r) +- absolute_error``.

    One scan goes through the training rows in blocks of ``SCAN_BLOCK``
    (and sub-blocks of ``SCAN_SUB_BLOCK``),
    keeping the k smallest upper bounds in a heap and, as candidates, every
    row whose lower bound is within the current threshold (the heap's top).
    The threshold only falls, so the candidates are a superset of the rows
    within the final one, which alone are computed exactly.
    """
    n_queries, n_train = approx.shape
    n_neighbors = out_rdist.shape[1]
    n_blocks = max(1, min(n_queries, n_blocks))
    for block in prange(n_blocks):
        bound_values = np.empty(n_neighbors, dtype=np.float64)
        bound_indices = np.zeros(n_neighbors, dtype=np.int64)
        best_values = np.empty(n_neighbors, dtype=np.float64)
        best_indices = np.empty(n_neighbors, dtype=np.int64)
        candidates = np.empty(n_train, dtype=np.int64)
        for i in range(block * n_queries // n_blocks, (block + 1) * n_queries // n_blocks):
            row = approx[i]
            query_term = 2.0 * relative_error * query_sqnorms[i] if from_cross else 0.0
            # The first k rows fill the heap of upper bounds; all are candidates.
            for j in range(n_neighbors):
                upper = _upper_bound(row, j, from_cross, train_upper, relative_error, absolute_error)
                _heap_push(bound_values, bound_indices, j, upper, 0)
                candidates[j] = j
            n_candidates = n_neighbors
            threshold = bound_values[0] + query_term
            # A row whose upper bound beats the heap also has its lower bound
            # within the threshold, so blocks with no lower bound within it
            # are skipped whole.
            for start in range(n_neighbors, n_train, SCAN_BLOCK):
                stop = min(start + SCAN_BLOCK, n_train)
                if not _count_lower_within(
                    row, start, stop, from_cross, train_lower, relative_error, absolute_error, threshold
                ):
                    continue
                for sub_start in range(start, stop, SCAN_SUB_BLOCK):
                    sub_stop = min(sub_start + SCAN_SUB_BLOCK, stop)
                    if not _count_lower_within(
                        row, sub_start, sub_stop, from_cross, train_lower, relative_error, absolute_error, threshold
                    ):
                        continue
                    for j in range(sub_start, sub_stop):
                        if _lower_bound(row, j, from_cross, train_lower, relative_error, absolute_error) > threshold:
                            continue
                        candidates[n_candidates] = j
                        n_candidates += 1
                        upper = _upper_bound(row, j, from_cross, train_upper, relative_error, absolute_error)
                        if upper < bound_values[0]:
                            _heap_replace_top(bound_values, bound_indices, n_neighbors, upper, 0)
                            threshold = bound_values[0] + query_term

            # Exact distances for the candidates still within the final threshold.
            size = 0
            for position in range(n_candidates):
                j = candidates[position]
                if _lower_bound(row, j, from_cross, train_lower, relative_error, absolute_error) > threshold:
                    continue
                exact = _exact_rdist(queries[i], train[j], metric, p)
                if size < n_neighbors:
                    _heap_push(best_values, best_indices, size, exact, j)
                    size += 1
                elif exact < best_values[0]:  # j only grows: an equal value never wins
                    _heap_replace_top(best_values, best_indices, size, exact, j)

            _heap_drain_sorted(best_values, best_indices, out_rdist[i], out_index[i])
