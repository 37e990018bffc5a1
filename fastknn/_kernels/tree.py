"""Exact distances of the candidate pairs a space-partitioning tree found.

The tree (``scipy.spatial.cKDTree``) ranks with its own float64 sums; the
distances fastknn returns, and the order it breaks ties in, come from
:func:`~fastknn._kernels.distances._exact_rdist`, the sum brute force uses.
"""

import numpy as np
from numba import prange

from .._config import jit
from .distances import EUCLIDEAN, MINKOWSKI, _copy_float64, _exact_rdist


@jit(parallel=True)
def _pair_rdist(queries, train, query_of, rows, metric, p, out):
    """Exact reduced distance of every pair ``(queries[query_of[j]], train[rows[j]])``.

    queries : (n_queries, n_features), float32 or float64
    train : (n_train, n_features), same dtype
    query_of, rows : (n_pairs,), int64
    out : (n_pairs,), float64, written
    """
    n_pairs = rows.shape[0]
    n_features = queries.shape[1]
    n_blocks = (n_pairs + 255) // 256
    for b in prange(n_blocks):
        query = np.empty(n_features, dtype=np.float64)
        last_query = -1
        for j in range(b * 256, min(n_pairs, (b + 1) * 256)):
            if query_of[j] != last_query:
                last_query = query_of[j]
                _copy_float64(queries[last_query], query)
            out[j] = _exact_rdist(query, train[rows[j]], metric, p)


@jit(parallel=True)
def _rank_fetched(queries, train, fetched, tree_dist, metric, p, margin, rdist, indices, unsettled):
    """Rank the tree's first ``k`` rows of each query exactly; flag the queries it cannot settle.

    queries : (n_queries, n_features), float32 or float64
    train : (n_train, n_features), same dtype
    fetched : (n_queries, n_fetch), int64, the tree's nearest rows, n_fetch in {k, k + 1}
    tree_dist : (n_queries, n_fetch), float64, the tree's distances to them
    margin : float, relative rounding margin between the tree's distances and exact ones
    rdist : (n_queries, k), float64, written: exact reduced distances, ascending
    indices : (n_queries, k), int64, written: rows, equal distances by lower index
    unsettled : (n_queries,), bool, written: True where the (k + 1)-th fetched row
        is not clearly farther than the k-th, so rows outside may tie with it
    """
    n_queries, k = rdist.shape
    n_features = queries.shape[1]
    has_next = fetched.shape[1] > k
    for i in prange(n_queries):
        query = np.empty(n_features, dtype=np.float64)
        _copy_float64(queries[i], query)
        for j in range(k):
            row = fetched[i, j]
            value = _exact_rdist(query, train[row], metric, p)
            position = j
            while position > 0 and (
                rdist[i, position - 1] > value or (rdist[i, position - 1] == value and indices[i, position - 1] > row)
            ):
                rdist[i, position] = rdist[i, position - 1]
                indices[i, position] = indices[i, position - 1]
                position -= 1
            rdist[i, position] = value
            indices[i, position] = row
        if has_next:
            kth = rdist[i, k - 1]
            if metric == EUCLIDEAN:
                kth = np.sqrt(kth)
            elif metric == MINKOWSKI:
                kth = kth ** (1.0 / p)
            unsettled[i] = not (kth * (1.0 + 2.0 * margin) < tree_dist[i, k])
        else:
            unsettled[i] = False
