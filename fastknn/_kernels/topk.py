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
def _rdist_bounds(approx, i, j, from_cross, query_sqnorms, train_sqnorms, relative_error, absolute_error):
    """Lower and upper bounds of the exact reduced distance of query i, row j.

    With ``from_cross``, ``approx`` holds matrix-product cross terms and the
    squared distance is ``|q|^2 + |t|^2 - 2 q.t``; the rounding error of a
    dot product is at most ``relative_error * |q| |t|``, bounded here by
    ``relative_error * (|q|^2 + |t|^2) / 2`` per cross term. Otherwise
    ``approx`` holds reduced distances with a relative error bound.
    """
    if from_cross:
        scale = query_sqnorms[i] + train_sqnorms[j]
        estimate = scale - 2.0 * np.float64(approx[i, j])
        error = relative_error * scale + absolute_error
    else:
        estimate = np.float64(approx[i, j])
        error = relative_error * abs(estimate) + absolute_error
    if not abs(estimate) < np.inf:  # overflow in the fast pass: no information
        return -np.inf, np.inf
    return estimate - error, estimate + error


@jit(parallel=True)
def _select_nearest(
    approx,
    queries,
    train,
    from_cross,
    query_sqnorms,
    train_sqnorms,
    relative_error,
    absolute_error,
    metric,
    p,
    out_rdist,
    out_index,
):
    """Exact k nearest training rows for each query of a chunk.

    Parameters
    ----------
    approx : ndarray of shape (n_queries, n_train)
        Cross terms ``queries @ train.T`` when ``from_cross``, else fast
        reduced distances.
    queries : ndarray of shape (n_queries, n_features)
    train : ndarray of shape (n_train, n_features)
    from_cross : bool
    query_sqnorms, train_sqnorms : ndarray of float64
        Squared norms (read only when ``from_cross``).
    relative_error, absolute_error : float
        Rounding error bound of ``approx`` (see ``_rdist_bounds``).
    metric : int
    p : float
        Minkowski power for the exact distance.
    out_rdist : ndarray of shape (n_queries, n_neighbors), float64
        Exact reduced distances, ascending.
    out_index : ndarray of shape (n_queries, n_neighbors), int64
        Training indices; ties by lower index first.
    """
    n_queries, n_train = approx.shape
    n_neighbors = out_rdist.shape[1]
    for i in prange(n_queries):
        bound_values = np.empty(n_neighbors, dtype=np.float64)
        bound_indices = np.zeros(n_neighbors, dtype=np.int64)
        size = 0
        for j in range(n_train):
            upper = _rdist_bounds(
                approx, i, j, from_cross, query_sqnorms, train_sqnorms, relative_error, absolute_error
            )[1]
            if size < n_neighbors:
                _heap_push(bound_values, bound_indices, size, upper, 0)
                size += 1
            elif upper < bound_values[0]:
                _heap_replace_top(bound_values, bound_indices, size, upper, 0)
        threshold = bound_values[0]

        best_values = np.empty(n_neighbors, dtype=np.float64)
        best_indices = np.empty(n_neighbors, dtype=np.int64)
        size = 0
        for j in range(n_train):
            lower = _rdist_bounds(
                approx, i, j, from_cross, query_sqnorms, train_sqnorms, relative_error, absolute_error
            )[0]
            if lower > threshold:
                continue
            exact = _exact_rdist(queries[i], train[j], metric, p)
            if size < n_neighbors:
                _heap_push(best_values, best_indices, size, exact, j)
                size += 1
            elif exact < best_values[0]:  # j only grows: an equal value never wins
                _heap_replace_top(best_values, best_indices, size, exact, j)

        for position in range(n_neighbors - 1, -1, -1):
            out_rdist[i, position] = best_values[0]
            out_index[i, position] = best_indices[0]
            size -= 1
            if size > 0:
                _heap_replace_top(best_values, best_indices, size, best_values[size], best_indices[size])
