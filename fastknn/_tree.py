"""Driver of the tree search (``algorithm="kd_tree"`` or ``"ball_tree"``).

On a few dimensions a space-partitioning tree visits a handful of leaves
per query where brute force computes every distance. fastknn uses scipy's
``cKDTree`` (built once at fit, queried by all threads) to *find*
candidates, and its own exact float64 sums (those of brute force) to
*rank* them, so the answers equal brute force's, ties included:

1. the tree fetches ``k + 1`` neighbours of every query;
2. their exact reduced distances are computed and the first ``k`` ordered
   by (distance, training index);
3. where the ``k``-th exact distance is not clearly below the tree's
   ``(k + 1)``-th (a tie, or rounding too close to call), every training
   row within the ``k``-th distance is fetched (``query_ball_point``) and
   ranked the same way.

Step 3 runs only for the queries that need it; on integer grids that can
be most of them, and each then costs its tie group.
"""

import itertools
import math

import numba
import numpy as np
from scipy.spatial import cKDTree

from ._config import WORKING_MEMORY_BYTES
from ._kernels.tree import _pair_rdist, _rank_fetched
from ._radius import radius_search as brute_radius_search
from ._search import _METRIC_IDS, effective_n_threads, rdist_to_dist, search, thread_limit

# The tree's float64 distance and the exact one differ by a few units in
# the last place; this relative margin, far above that, decides when the
# tree's order is trusted and widens the ball that settles the rest.
RELATIVE_MARGIN = 1e-9

# scikit-learn's names for its trees; both run this search.
TREE_ALGORITHMS = ("kd_tree", "ball_tree")

# ``algorithm="auto"`` takes the tree up to this many features: Euclidean
# brute force is a matrix product and catches up sooner than the other
# metrics' (measured crossovers for fit + predict, see docs/performance.rst).
AUTO_TREE_MAX_FEATURES = 6
AUTO_TREE_MAX_FEATURES_NON_EUCLIDEAN = 8

# Points per leaf of the k-d tree (scipy's default; not tuned).
LEAF_SIZE = 16


def tree_power(metric, p):
    """The Minkowski power ``cKDTree`` takes for a canonical metric."""
    return {"euclidean": 2.0, "manhattan": 1.0, "chebyshev": math.inf}.get(metric, p)


def tree_workers(n_jobs):
    """Threads for the tree's queries: ``n_jobs`` as for numba, None keeps numba's count."""
    n_threads = effective_n_threads(n_jobs)
    return numba.get_num_threads() if n_threads is None else n_threads


def tree_pays(train, metric):
    """Whether ``algorithm="auto"`` should search ``train`` with the tree: few features."""
    limit = AUTO_TREE_MAX_FEATURES if metric == "euclidean" else AUTO_TREE_MAX_FEATURES_NON_EUCLIDEAN
    return train.shape[1] <= limit


def within_tree_range(queries, train, metric, p, radius=0.0):
    """Whether the tree's float64 sums of ``|a - b| ** power`` (and ``radius ** power``) cannot overflow.

    scipy's tree refuses such data, or (from its worker threads) returns
    nothing: outside this range the search falls back to brute force,
    whose exact pass handles it.
    """
    power = tree_power(metric, p)
    exponent = 1.0 if math.isinf(power) else power
    largest = max(
        2.0 * max(float(np.abs(rows).max(initial=0.0)) for rows in (queries, train)),
        float(rdist_to_dist(np.array([float(radius)]), metric, p)[0]),
    )
    if largest == 0.0:
        return True
    return exponent * math.log10(largest) + math.log10(train.shape[1] + 1) < 300.0


def build_tree(train):
    """A ``cKDTree`` over the training rows (kept in float64 by scipy)."""
    return cKDTree(train, leafsize=LEAF_SIZE, balanced_tree=False, compact_nodes=False)


def pair_rdist(queries, train, query_of, rows, metric, p):
    """Exact reduced distances of the pairs ``(queries[query_of], train[rows])``, float64."""
    out = np.empty(rows.shape[0], dtype=np.float64)
    if rows.shape[0]:
        power = 0.0 if p is None else float(p)
        _pair_rdist(queries, train, query_of, rows, _METRIC_IDS[metric], power, out)
    return out


def ball_rows(tree, queries, radii, power, workers):
    """Training rows within ``radii`` (tree units) of each query, flat with offsets."""
    found = tree.query_ball_point(queries, radii, p=power, workers=workers, return_sorted=False)
    counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
    offsets = np.concatenate(([0], np.cumsum(counts)))
    rows = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=int(offsets[-1]))
    return rows, offsets


def settle_ties(queries, train, tree, group, radii, k, metric, p, power, workers, rdist, indices):
    """Rank every row within ``radii`` of the queries ``group``, and write their first ``k`` rows."""
    ball, offsets = ball_rows(tree, queries[group], radii, power, workers)
    counts = np.diff(offsets)
    if np.any(counts < k):  # the ball holds the k rows found by the first pass
        raise RuntimeError("tree search: a tie ball lost rows; please report this as a bug.")
    ball_query = np.repeat(np.arange(group.shape[0], dtype=np.int64), counts)
    ball_rdist = pair_rdist(queries, train, group[ball_query], ball, metric, p)
    order = np.lexsort((ball, ball_rdist, ball_query))
    first_k = order[(offsets[:-1, None] + np.arange(k)).ravel()]
    rdist[group] = ball_rdist[first_k].reshape(-1, k)
    indices[group] = ball[first_k].reshape(-1, k)


def tree_search(queries, train, tree, n_neighbors, metric, p, n_jobs=None):
    """Exact k nearest training rows of every query, through the tree.

    Parameters
    ----------
    queries : ndarray of shape (n_queries, n_features)
        Same dtype as ``train``, C-contiguous, finite.
    train : ndarray of shape (n_train, n_features)
        The rows ``tree`` was built on.
    tree : scipy.spatial.cKDTree
        :func:`build_tree` of ``train``.
    n_neighbors : int
        1 <= n_neighbors <= n_train.
    metric, p
        As returned by ``_search.resolve_metric``.
    n_jobs : int or None

    Returns
    -------
    rdist : ndarray of shape (n_queries, n_neighbors), float64
        Exact reduced distances, ascending per row (as ``_search.search``).
    indices : ndarray of shape (n_queries, n_neighbors), int64
        Training indices; equal distances are ordered by index.
    """
    n_queries, n_train, k = queries.shape[0], train.shape[0], n_neighbors
    if n_queries == 0:
        return np.empty((0, k)), np.empty((0, k), dtype=np.int64)
    if not within_tree_range(queries, train, metric, p):
        return search(queries, train, k, metric, p, n_jobs=n_jobs)
    power, workers = tree_power(metric, p), tree_workers(n_jobs)
    n_fetch = min(k + 1, n_train)
    with thread_limit(n_jobs):
        tree_dist, rows = tree.query(queries, k=n_fetch, p=power, workers=workers)
        tree_dist = tree_dist.reshape(n_queries, n_fetch)
        rows = rows.reshape(n_queries, n_fetch).astype(np.int64, copy=False)
        rdist = np.empty((n_queries, k))
        indices = np.empty((n_queries, k), dtype=np.int64)
        unsettled = np.empty(n_queries, dtype=np.bool_)
        power_or_zero = 0.0 if p is None else float(p)
        _rank_fetched(
            queries, train, rows, tree_dist, _METRIC_IDS[metric], power_or_zero, RELATIVE_MARGIN,
            rdist, indices, unsettled,
        )
        unsettled = np.flatnonzero(unsettled)
        if unsettled.shape[0]:
            radii = rdist_to_dist(rdist[unsettled, -1].copy(), metric, p) * (1.0 + 4 * RELATIVE_MARGIN)
            # A tie ball can hold much of the training set (duplicate rows):
            # count first, and settle the queries in groups whose balls fit
            # the working memory (pairs cost 24 bytes here).
            sizes = tree.query_ball_point(queries[unsettled], radii, p=power, workers=workers, return_length=True)
            budget = max(WORKING_MEMORY_BYTES // 24, int(sizes.max()))
            ends = np.cumsum(sizes)
            first = 0
            while first < unsettled.shape[0]:
                before = ends[first - 1] if first else 0
                last = max(first + 1, int(np.searchsorted(ends, before + budget, side="right")))
                group = unsettled[first:last]
                settle_ties(queries, train, tree, group, radii[first:last], k, metric, p, power, workers, rdist, indices)
                first = last
    return rdist, indices


def tree_radius_search(queries, train, tree, radius, metric, p, n_jobs=None, sort_distances=False):
    """Every training row within the reduced ``radius`` of each query, through the tree.

    Parameters and returns as ``_radius.radius_search`` (``tree`` as for
    :func:`tree_search`): the tree fetches the rows of a ball slightly wider
    than ``radius``, and a row is kept when its exact float64 reduced
    distance is ``<= radius``, as brute force decides.
    """
    n_queries = queries.shape[0]
    if n_queries == 0:
        return np.empty(0), np.empty(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    if not within_tree_range(queries, train, metric, p, radius):
        return brute_radius_search(queries, train, radius, metric, p, n_jobs=n_jobs, sort_distances=sort_distances)
    power, workers = tree_power(metric, p), tree_workers(n_jobs)
    wide = rdist_to_dist(np.array([float(radius)]), metric, p)[0] * (1.0 + 4 * RELATIVE_MARGIN)
    with thread_limit(n_jobs):
        ball, offsets = ball_rows(tree, queries, wide, power, workers)
        ball_query = np.repeat(np.arange(n_queries, dtype=np.int64), np.diff(offsets))
        rdist = pair_rdist(queries, train, ball_query, ball, metric, p)
    within = rdist <= radius
    ball, rdist, ball_query = ball[within], rdist[within], ball_query[within]
    order = np.lexsort((ball, rdist, ball_query) if sort_distances else (ball, ball_query))
    offsets = np.concatenate(([0], np.cumsum(np.bincount(ball_query, minlength=n_queries))))
    return rdist[order], ball[order], offsets
