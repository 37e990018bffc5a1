"""Radius search driver: every training row within a distance of each query.

Takes validated arrays, as ``_search.search`` does, and returns the
variable-length result flat: ``(rdist, rows, offsets)``, query i's rows being
``rows[offsets[i]:offsets[i + 1]]``. The pruned variant is
``_pruning.pruned_radius_search``; the kernels are in ``_kernels/radius.py``.
"""

import math
import numbers

import numba
import numpy as np

from ._kernels.radius import _radius_select, _radius_select_gemm
from ._search import (
    _METRIC_IDS,
    blas_limit,
    euclidean_error_bound,
    fast_pass_chunks,
    fast_pass_may_overflow,
    gemm_query_block,
    prepare_euclidean,
    product_rows,
    rounding_error_bound,
    run_query_blocks,
    squared_norms,
    thread_limit,
)


def check_radius(radius):
    """``radius`` as a float, or scikit-learn's ValueError for one that is not a number >= 0 (NaN included)."""
    if isinstance(radius, bool) or not isinstance(radius, numbers.Real) or not radius >= 0:
        raise ValueError(f"radius == {radius!r}, must be >= 0.")
    return float(radius)


def reduced_radius(radius, metric, p):
    """The radius on the scale of the reduced distance (see ``_kernels.distances``).

    Squared for Euclidean, to the power ``p`` for Minkowski, as scikit-learn
    compares them: a row at exactly the radius is within it.
    """
    if metric == "euclidean":
        return float(radius) * float(radius)
    if metric == "minkowski":
        with np.errstate(over="ignore"):  # a radius beyond float64's range takes every row
            return float(np.float64(radius) ** p)
    return float(radius)


def concatenate_tasks(tasks, n_queries):
    """Flat ``(rdist, rows, offsets)`` from tasks' ``(positions, (counts, rows, rdist))``.

    Each task's buffers may be longer than what they hold; the rows of each
    query are placed at its position.
    """
    counts = np.zeros(n_queries, dtype=np.int64)
    for positions, (task_counts, _, _) in tasks:
        counts[positions] = task_counts
    offsets = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    rows = np.empty(offsets[-1], dtype=np.int64)
    rdist = np.empty(offsets[-1], dtype=np.float64)
    for positions, (task_counts, task_rows, task_rdist) in tasks:
        if np.all(np.diff(positions) == 1) and positions.size:
            # Consecutive queries: one copy.
            first, last = offsets[positions[0]], offsets[positions[-1] + 1]
            rows[first:last] = task_rows[: last - first]
            rdist[first:last] = task_rdist[: last - first]
            continue
        task_offsets = np.concatenate(([0], np.cumsum(task_counts)))
        for b, i in enumerate(positions):
            rows[offsets[i] : offsets[i + 1]] = task_rows[task_offsets[b] : task_offsets[b + 1]]
            rdist[offsets[i] : offsets[i + 1]] = task_rdist[task_offsets[b] : task_offsets[b + 1]]
    return rdist, rows, offsets


def radius_search(queries, train, radius, metric, p, *, euclidean_train=None, n_jobs=None, sort_distances=False):
    """Every training row within the reduced ``radius`` of each query, by brute force.

    Parameters
    ----------
    queries, train, metric, p, euclidean_train, n_jobs
        As for ``_search.search``.
    radius : float
        Reduced radius (see :func:`reduced_radius`); a row is kept when its
        exact float64 reduced distance is ``<= radius``.
    sort_distances : bool, default=False
        Order each query's rows by distance (ties by training index), not
        by training index.

    Returns
    -------
    rdist : ndarray of shape (n_found,), float64
        Exact reduced distances.
    rows : ndarray of shape (n_found,), int64
        Training indices.
    offsets : ndarray of shape (n_queries + 1,), int64
        Query i's rows are ``rows[offsets[i]:offsets[i + 1]]``.
    """
    n_queries, n_features = queries.shape
    n_train = train.shape[0]
    dtype = train.dtype
    power = 0.0 if p is None else float(p)
    relative_error, absolute_error = rounding_error_bound(dtype, n_features, metric, power)
    radius = float(radius)
    tasks = []
    if n_queries == 0 or n_train == 0 or math.isnan(radius):
        return np.empty(0), np.empty(0, dtype=np.int64), np.zeros(n_queries + 1, dtype=np.int64)
    with thread_limit(n_jobs):
        n_threads = numba.get_num_threads()
        if metric == "euclidean":
            if euclidean_train is None:
                euclidean_train = prepare_euclidean(train)
            relative_error, absolute_error = euclidean_error_bound(dtype, n_features, euclidean_train)
            cross_queries = product_rows(queries, euclidean_train)
            query_sqnorms = squared_norms(cross_queries)
            train_scale, query_scale = euclidean_train.sqnorms.max(), query_sqnorms.max()
            pass_dtype = euclidean_train.cross_train.dtype
        else:
            train_scale = max(train.max(), -train.min())
            query_scale = max(queries.max(), -queries.min())
            pass_dtype = dtype
        fast_pass = not fast_pass_may_overflow(metric, p, pass_dtype, n_features, train_scale, query_scale)
        if fast_pass and metric == "euclidean":
            train_lower = euclidean_train.sqnorms * (1.0 - relative_error) - absolute_error
            thresholds = radius - query_sqnorms * (1.0 - relative_error)
            columns = euclidean_train.columns
            if columns is None:
                columns = np.empty(0, dtype=np.int64)
            block = gemm_query_block(n_queries, 0, n_threads)

            def gemm_task(first, last):
                found = _radius_select_gemm(
                    first, last, queries, cross_queries, train, columns, euclidean_train.cross_train, thresholds,
                    train_lower, radius, sort_distances,
                )
                tasks.append((np.arange(first, last), found))

            # Each thread runs its own small products: BLAS must not start
            # threads of its own inside them.
            with blas_limit(1):
                run_query_blocks(gemm_task, n_queries, block, n_threads)
            return concatenate_tasks(tasks, n_queries)

        metric_id = _METRIC_IDS[metric]
        if fast_pass:
            lower_offsets = np.full(n_train, -absolute_error)
            lower_scale = 1.0 - relative_error
        else:
            # Every bound is 0: every row is computed exactly.
            lower_offsets = np.zeros(n_train)
            lower_scale = 0.0
        for start, stop, chunk_approx in fast_pass_chunks(queries, train, metric, p, fast_pass):
            chunk = queries[start:stop]

            def task(first, last, chunk=chunk, chunk_approx=chunk_approx, start=start):
                found = _radius_select(
                    first, last, chunk_approx, chunk, train, lower_offsets, lower_scale, radius, metric_id, power,
                    sort_distances,
                )
                tasks.append((np.arange(start + first, start + last), found))

            run_query_blocks(task, stop - start, -(-(stop - start) // (4 * n_threads)), n_threads)
    return concatenate_tasks(tasks, n_queries)
