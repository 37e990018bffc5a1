"""Exact radius search: every training row within a fixed reduced radius.

The same fast pass as the k-nearest search (``topk.py``) comes first, a BLAS
matrix product for Euclidean or ``_rdist_tiles`` otherwise, with the same
rigorous bounds on its rounding error. The threshold is fixed, so one scan
suffices: a row whose *lower* bound exceeds the reduced radius cannot be
within it and is skipped; every other row gets its exact float64 reduced
distance, and is kept when that is ``<= radius`` (a row exactly at the
radius counts, as in scikit-learn). The pruned variant takes its lower
bounds from the pruned index instead (``pruning.py``): a row is computed
exactly only when both of its stage bounds are within the radius.

The number of rows found per query is not known in advance. Each call
handles one task of queries and returns its rows in buffers that grow by
doubling (``_append``), with a count per query; the driver concatenates the
tasks. So memory is the output itself plus one task's working arrays.

Each query's rows come out in ascending training index, or, when
``sort_distances``, by ascending distance with ties in training-index order.
"""

import numpy as np

from .._config import jit
from .bitscan import _rows_within
from .distances import EUCLIDEAN, _copy_float64, _exact_rdist
from .pruning import PRUNED_CASES, _float32_threshold, _stage2_filter, pruned_case
from .topk import GEMM_TRAIN_BLOCK, SCAN_BLOCK, SCAN_SUB_BLOCK, _count_within, _take_columns

# Rows held per query of a task before its buffers first grow.
INITIAL_ROWS_PER_QUERY = 32


@jit()
def _grow(values, capacity):
    """A copy of a 1-D array with room for ``capacity`` items, the old ones first."""
    wider = np.empty(capacity, dtype=values.dtype)
    for position in range(values.shape[0]):
        wider[position] = values[position]
    return wider


@jit(inline=True)
def _append(rows, rdist, size, row, value):
    """Append ``(row, value)`` to the buffers holding ``size`` items; return them and the new size."""
    if size == rows.shape[0]:
        rows = _grow(rows, 2 * size + 16)
        rdist = _grow(rdist, 2 * size + 16)
    rows[size] = row
    rdist[size] = value
    return rows, rdist, size + 1


@jit()
def _order_segment(rows, rdist, start, stop, by_index, by_distance):
    """Sort ``rows[start:stop]`` (and ``rdist`` alike) by training index, then stably by distance.

    ``by_index``: the rows are not yet in ascending order (the pruned index
    stores them in locality order). ``by_distance``: sort by distance,
    equal distances keeping ascending training index.
    """
    if stop - start < 2 or not (by_index or by_distance):
        return
    segment_rows = rows[start:stop].copy()
    segment_rdist = rdist[start:stop].copy()
    if by_index:
        order = np.argsort(segment_rows)
        segment_rows = segment_rows[order]
        segment_rdist = segment_rdist[order]
    if by_distance:
        order = np.argsort(segment_rdist, kind="mergesort")
        segment_rows = segment_rows[order]
        segment_rdist = segment_rdist[order]
    for position in range(stop - start):
        rows[start + position] = segment_rows[position]
        rdist[start + position] = segment_rdist[position]


@jit(inline=True)
def _keep_within(query, train, first_row, values, offsets, scale, threshold, radius, metric, p, rows, rdist, size):
    """Exact distances of rows ``first_row + j`` whose bound ``offsets[j] + scale * values[j]`` is within
    ``threshold``; those within ``radius`` are appended. Blocks with no such row are skipped by a
    vectorised count, as in ``topk._scan_values``. Returns the buffers and their size."""
    width = values.shape[0]
    for start in range(0, width, SCAN_BLOCK):
        stop = min(start + SCAN_BLOCK, width)
        if not _count_within(values[start:stop], offsets[start:stop], scale, threshold):
            continue
        for sub_start in range(start, stop, SCAN_SUB_BLOCK):
            sub_stop = min(sub_start + SCAN_SUB_BLOCK, stop)
            if not _count_within(values[sub_start:sub_stop], offsets[sub_start:sub_stop], scale, threshold):
                continue
            for j in range(sub_start, sub_stop):
                if offsets[j] + scale * np.float64(values[j]) > threshold:
                    continue
                exact = _exact_rdist(query, train[first_row + j], metric, p)
                if exact <= radius:
                    rows, rdist, size = _append(rows, rdist, size, first_row + j, exact)
    return rows, rdist, size


@jit()
def _radius_select(first, last, approx, queries, train, lower_offsets, lower_scale, radius, metric, p,
                   sort_distances):
    """Rows within ``radius`` of queries ``first`` to ``last - 1``, from approximate values.

    Parameters
    ----------
    first, last : int
        Rows of ``approx`` and ``queries`` handled by this call (one thread,
        GIL released).
    approx : ndarray of shape (n_queries, n_train)
        Fast reduced distances (``_rdist_tiles``), float32 or float64.
    queries, train : ndarray of shape (n_queries | n_train, n_features)
    lower_offsets : ndarray of shape (n_train,), float64
    lower_scale : float
        Lower bound of the reduced distance to row j:
        ``lower_offsets[j] + lower_scale * approx[i, j]`` (all zeros: every
        row is computed exactly).
    radius : float
        Reduced radius (squared for Euclidean, p-th power for Minkowski).
    metric : int
    p : float
    sort_distances : bool

    Returns
    -------
    counts : ndarray of shape (last - first,), int64
        Rows found per query.
    rows : ndarray of shape (>= counts.sum(),), int64
        Their training indices, query after query.
    rdist : ndarray of shape (>= counts.sum(),), float64
        Their exact reduced distances.
    """
    n_queries = last - first
    counts = np.zeros(n_queries, dtype=np.int64)
    rows = np.empty(INITIAL_ROWS_PER_QUERY * n_queries, dtype=np.int64)
    rdist = np.empty(INITIAL_ROWS_PER_QUERY * n_queries, dtype=np.float64)
    size = 0
    query = np.empty(queries.shape[1], dtype=np.float64)
    for b in range(n_queries):
        i = first + b
        _copy_float64(queries[i], query)
        start = size
        rows, rdist, size = _keep_within(
            query, train, 0, approx[i], lower_offsets, lower_scale, radius, radius, metric, p, rows, rdist, size
        )
        counts[b] = size - start
        _order_segment(rows, rdist, start, size, False, sort_distances)
    return counts, rows, rdist


@jit()
def _radius_select_gemm(first, last, queries, cross_queries, train, columns, cross_train, thresholds, train_lower,
                        radius, sort_distances):
    """Rows within the squared Euclidean ``radius`` of queries ``first`` to ``last - 1``.

    Parameters
    ----------
    first, last, queries, train
        As for ``_search.euclidean_query_block``.
    cross_queries : ndarray of shape (n_queries, n_features)
        The query rows multiplied by ``cross_train``: ``queries``, or as
        ``_search.product_rows`` gives them (less the training rows' centre,
        in ``cross_train``'s dtype).
    columns : ndarray of shape (n_columns,), int64
        The columns that enter the cross terms (those where the training
        rows differ), or an empty array for all of them.
    cross_train : ndarray of shape (n_train, n_columns)
        ``train`` restricted to ``columns`` (``train`` itself if all).
    train_lower : ndarray of shape (n_train,), float64
        ``|t|^2 (1 - r) - a`` per training row.
    thresholds : ndarray of shape (n_queries,), float64
        ``radius - |q|^2 (1 - r)`` per query: row j can be within the radius
        only if ``train_lower[j] - 2 q.t <= thresholds[i]`` (the lower bound
        of ``topk._scan_values``'s Notes, the query's term moved across).
    radius : float
        The squared radius.
    sort_distances : bool

    Returns
    -------
    counts, rows, rdist
        As for ``_radius_select``.

    Notes
    -----
    The cross terms are computed ``GEMM_TRAIN_BLOCK`` training rows at a
    time and scanned while in cache; a row that can be within the radius
    gets its exact distance at once, so rows come out per training block.
    Each query's rows are then put back in query order.
    """
    n_train = train.shape[0]
    size_block = last - first
    block_queries = cross_queries[first:last]
    if columns.shape[0]:
        block_queries = _take_columns(cross_queries, first, last, columns)
    cross_buffer = np.empty(size_block * min(GEMM_TRAIN_BLOCK, n_train), dtype=cross_train.dtype)
    query_rows = np.empty((size_block, queries.shape[1]), dtype=np.float64)
    for b in range(size_block):
        _copy_float64(queries[first + b], query_rows[b])
    # Found rows in training-block order, each tagged with its query.
    found_query = np.empty(INITIAL_ROWS_PER_QUERY * size_block, dtype=np.int64)
    rows = np.empty(INITIAL_ROWS_PER_QUERY * size_block, dtype=np.int64)
    rdist = np.empty(INITIAL_ROWS_PER_QUERY * size_block, dtype=np.float64)
    size = 0
    for train_start in range(0, n_train, GEMM_TRAIN_BLOCK):
        train_stop = min(train_start + GEMM_TRAIN_BLOCK, n_train)
        width = train_stop - train_start
        cross = cross_buffer[: size_block * width].reshape((size_block, width))
        np.dot(block_queries, cross_train[train_start:train_stop].T, cross)
        lower = train_lower[train_start:train_stop]
        for b in range(size_block):
            before = size
            rows, rdist, size = _keep_within(
                query_rows[b], train, train_start, cross[b], lower, -2.0, thresholds[first + b], radius,
                EUCLIDEAN, 2.0, rows, rdist, size,
            )
            if size > found_query.shape[0]:
                found_query = _grow(found_query, rows.shape[0])
            for position in range(before, size):
                found_query[position] = b
    # Group by query, keeping each query's rows in training order (stable).
    counts = np.zeros(size_block, dtype=np.int64)
    for position in range(size):
        counts[found_query[position]] += 1
    offsets = np.zeros(size_block + 1, dtype=np.int64)
    for b in range(size_block):
        offsets[b + 1] = offsets[b] + counts[b]
    out_rows = np.empty(size, dtype=np.int64)
    out_rdist = np.empty(size, dtype=np.float64)
    filled = offsets[:-1].copy()
    for position in range(size):
        b = found_query[position]
        out_rows[filled[b]] = rows[position]
        out_rdist[filled[b]] = rdist[position]
        filled[b] += 1
    if sort_distances:
        for b in range(size_block):
            _order_segment(out_rows, out_rdist, offsets[b], offsets[b + 1], False, True)
    return counts, out_rows, out_rdist


def _make_pruned_radius_select(kind, metric, power):
    """One radius-search dispatcher for one case of the index (see ``pruning._make_pruned_select``).

    Each case compiles the first time a radius search of that case runs, its
    metric constant in the inlined body (the kind follows from the types of
    the stage-2 features). The stage-1 bounds come from the driver.
    """

    @jit()
    def pruned_radius_select(
        positions, queries, train, train_ids, bounds, queries_fine, train_fine, query_info, train_info, metric_id, p,
        margins, radius, sort_distances,
    ):
        """Rows within ``radius`` of the queries at ``positions``, pruning with the index's bounds.

        The arrays are those of ``pruning._make_pruned_select``'s searches
        (same meaning and layout). The threshold is the radius itself from
        the start, so no seeds are needed: the rows whose stage-1 bound is
        within it are listed, their stage-2 bounds computed, and the
        survivors computed exactly.

        Returns
        -------
        counts : ndarray of shape (positions.shape[0],), int64
            Rows found per query, in the order of ``positions``.
        rows, rdist
            As for ``_radius_select``, with training indices (``train_ids``).
        """
        return _pruned_radius_body(
            positions, queries, train, train_ids, bounds, queries_fine, train_fine, query_info, train_info,
            metric_id if metric is None else metric, p if metric is None else power, margins, radius, sort_distances,
        )

    return pruned_radius_select


_PRUNED_RADIUS_SELECT = {case: _make_pruned_radius_select(*case, power) for case, power in PRUNED_CASES.items()}


def pruned_radius_kernel(kind, metric):
    """The compiled radius search for an index of ``kind`` and a metric id."""
    return _PRUNED_RADIUS_SELECT[pruned_case(kind, metric)]


@jit(inline=True)
def _pruned_radius_body(
    positions, queries, train, train_ids, bounds, queries_fine, train_fine, query_info, train_info, metric, p, margins,
    radius, sort_distances,
):
    """The search of ``_make_pruned_radius_select``'s dispatchers, inlined in each."""
    n_train = train.shape[0]
    n_task = positions.shape[0]
    listed = np.empty(n_train, dtype=np.int64)
    listed_bounds = np.empty(n_train, dtype=np.float64)
    counts = np.zeros(n_task, dtype=np.int64)
    rows = np.empty(INITIAL_ROWS_PER_QUERY * n_task, dtype=np.int64)
    rdist = np.empty(INITIAL_ROWS_PER_QUERY * n_task, dtype=np.float64)
    size = 0
    query = np.empty(queries.shape[1], dtype=np.float64)
    stage1_threshold = _float32_threshold(radius)
    for b in range(n_task):
        _copy_float64(queries[positions[b]], query)
        n_listed = _rows_within(bounds[b], stage1_threshold, listed)
        n_kept = _stage2_filter(
            listed, n_listed, radius, b, queries_fine, train_fine, query_info, train_info, metric, p,
            margins, listed_bounds,
        )
        start = size
        for position in range(n_kept):
            j = listed[position]
            exact = _exact_rdist(query, train[j], metric, p)
            if exact <= radius:
                rows, rdist, size = _append(rows, rdist, size, train_ids[j], exact)
        counts[b] = size - start
        _order_segment(rows, rdist, start, size, True, sort_distances)
    return counts, rows, rdist
