"""Exact distances of the candidate pairs a space-partitioning tree found, and the grid search.

The kernels are serial: the driver (``fastknn._tree``) runs them on blocks
of pairs or queries in its threads, as every fastknn kernel runs, since a
``prange`` on numba's GNU OpenMP threads kills a forked child that enters a
parallel region once its parent has used one.

The tree (``scipy.spatial.cKDTree``) ranks with its own float64 sums; the
distances fastknn returns, and the order it breaks ties in, come from
:func:`~fastknn._kernels.distances._exact_rdist`, the sum brute force uses.
The cell grid (``_grid_select``) computes those exact sums itself.
"""

import numpy as np

from .._config import jit
from .distances import EUCLIDEAN, MINKOWSKI, _copy_float64, _exact_rdist


@jit()
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
    for b in range(n_blocks):
        query = np.empty(n_features, dtype=np.float64)
        last_query = -1
        for j in range(b * 256, min(n_pairs, (b + 1) * 256)):
            if query_of[j] != last_query:
                last_query = query_of[j]
                _copy_float64(queries[last_query], query)
            out[j] = _exact_rdist(query, train[rows[j]], metric, p)


@jit()
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
    for i in range(n_queries):
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


@jit()
def _grid_cell(row, low, width, n_cells, strides):
    """Linear index of the grid cell holding ``row`` (coordinates clamped into the grid)."""
    cell = 0
    for f in range(row.shape[0]):
        position = int(np.floor((np.float64(row[f]) - low[f]) / width[f])) if n_cells[f] > 1 else 0
        position = min(max(position, 0), n_cells[f] - 1)
        cell += position * strides[f]
    return cell


@jit()
def _grid_cells(rows, low, width, n_cells, strides, out):
    """:func:`_grid_cell` of every row of ``rows`` into ``out`` (int64)."""
    for i in range(rows.shape[0]):
        out[i] = _grid_cell(rows[i], low, width, n_cells, strides)


@jit()
def _grid_sort(rows, cells, cell_start, out_rows, out_ids):
    """Counting sort of ``rows`` by cell, stable: ``out_rows`` and ``out_ids`` written.

    cell_start : (n_cells_total + 1,), int64, the cells' first positions
        (the cumulative counts); left unchanged
    """
    next_free = cell_start[:-1].copy()
    for i in range(rows.shape[0]):
        position = next_free[cells[i]]
        next_free[cells[i]] += 1
        out_ids[position] = i
        for f in range(rows.shape[1]):
            out_rows[position, f] = rows[i, f]


@jit()
def _grid_select(queries, order, points, point_ids, cell_start, low, width, n_cells, strides, metric, p, margin,
                 max_rings, rdist, indices, unfinished):
    """Exact k nearest training rows of every query, visiting grid cells in rings.

    queries : (n_queries, n_features), float32 or float64
    order : (n_ordered,), int64, the queries to answer (the driver gives each
        of its threads a block of them), in the order to answer them:
        by cell, so that consecutive queries read the same cells from cache
        (on 200,000 x 2 uniform rows, half the time of a random order)
    points : (n_train, n_features), the training rows sorted by cell (same dtype)
    point_ids : (n_train,), int64, the training index of each sorted row
        (ascending within a cell)
    cell_start : (n_cells_total + 1,), int64, the first sorted row of each cell
    low, width : (n_features,), float64, the grid's origin and cell sides
    n_cells, strides : (n_features,), int64, cells along each axis and the
        linear index's stride of each axis
    margin : float, relative margin of the stopping test
    max_rings : int, the last ring a query may visit
    rdist, indices : (n_queries, k), written as ``_rank_fetched`` writes them
    unfinished : (n_queries,), bool, written: True where the search stopped
        at ``max_rings`` without settling the query (a query far from the
        rows, or rows spread along a line), which the caller then answers
        another way; its ``rdist`` and ``indices`` are then meaningless

    A query starts in its own cell (clamped into the grid) and visits the
    cells at Chebyshev ring distance 0, 1, 2, ... from it, computing every
    row's exact reduced distance (``_exact_rdist``, as brute force) and
    keeping the ``k`` best by (distance, training index). After ring r, a
    row in no visited cell is farther than the gap between the query and
    the visited block along some axis, a lower bound for every Minkowski
    metric; the search stops once that gap, lowered by a slack for the
    rounding of the cells' boundaries, exceeds the k-th distance by the
    relative ``margin``, so rows that tie with the k-th are always visited.
    """
    n_ordered, k = order.shape[0], rdist.shape[1]
    n_features = queries.shape[1]
    n_blocks = (n_ordered + 63) // 64
    for b in range(n_blocks):
        query = np.empty(n_features, dtype=np.float64)
        centre = np.empty(n_features, dtype=np.int64)
        offset = np.empty(n_features, dtype=np.int64)
        first_offset = np.empty(n_features, dtype=np.int64)
        last_offset = np.empty(n_features, dtype=np.int64)
        slack = np.empty(n_features, dtype=np.float64)
        for position_in_order in range(b * 64, min(n_ordered, (b + 1) * 64)):
            i = order[position_in_order]
            _copy_float64(queries[i], query)
            for f in range(n_features):
                position = int(np.floor((query[f] - low[f]) / width[f])) if n_cells[f] > 1 else 0
                centre[f] = min(max(position, 0), n_cells[f] - 1)
                slack[f] = 1e-12 * (abs(low[f]) + n_cells[f] * width[f] + abs(query[f]))
            found = 0
            ring = 0
            unfinished[i] = False
            while True:
                # Every cell of the block [centre - ring, centre + ring], clipped
                # to the grid, on the ring's surface.
                for f in range(n_features):
                    first_offset[f] = max(-ring, -centre[f])
                    last_offset[f] = min(ring, n_cells[f] - 1 - centre[f])
                    offset[f] = first_offset[f]
                while True:
                    on_surface = ring == 0
                    cell = 0
                    for f in range(n_features):
                        if offset[f] == ring or offset[f] == -ring:
                            on_surface = True
                        cell += (centre[f] + offset[f]) * strides[f]
                    if on_surface:
                        for j in range(cell_start[cell], cell_start[cell + 1]):
                            value = _exact_rdist(query, points[j], metric, p)
                            row = point_ids[j]
                            if found == k:
                                if value > rdist[i, k - 1] or (value == rdist[i, k - 1] and row > indices[i, k - 1]):
                                    continue
                                position = k - 1
                            else:
                                position = found
                                found += 1
                            while position > 0 and (
                                rdist[i, position - 1] > value
                                or (rdist[i, position - 1] == value and indices[i, position - 1] > row)
                            ):
                                rdist[i, position] = rdist[i, position - 1]
                                indices[i, position] = indices[i, position - 1]
                                position -= 1
                            rdist[i, position] = value
                            indices[i, position] = row
                    # Next offset (an odometer over the clipped block).
                    f = n_features - 1
                    while f >= 0 and offset[f] == last_offset[f]:
                        offset[f] = first_offset[f]
                        f -= 1
                    if f < 0:
                        break
                    offset[f] += 1
                # The smallest gap between the query and the cells outside the block.
                gap = np.inf
                for f in range(n_features):
                    if centre[f] - ring > 0:
                        gap = min(gap, query[f] - (low[f] + (centre[f] - ring) * width[f]) - slack[f])
                    if centre[f] + ring + 1 < n_cells[f]:
                        gap = min(gap, low[f] + (centre[f] + ring + 1) * width[f] - query[f] - slack[f])
                if gap == np.inf:
                    break  # the block covers the grid
                if found == k:
                    kth = rdist[i, k - 1]
                    if metric == EUCLIDEAN:
                        kth = np.sqrt(kth)
                    elif metric == MINKOWSKI:
                        kth = kth ** (1.0 / p)
                    if gap > kth * (1.0 + margin):
                        break
                if ring == max_rings:
                    unfinished[i] = True
                    break
                ring += 1
