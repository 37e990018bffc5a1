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
be most of them, and each then costs its tie group. Where training rows
repeat many times (categorical or rounded features), the tree holds each
distinct row once with its training indices (:class:`DistinctRowsTree`), so
that a tie among the copies of a row costs its first ``k`` copies, not all.
"""

import itertools
import math

import numba
import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from ._config import WORKING_MEMORY_BYTES
from ._kernels.tree import _grid_cells, _grid_select, _grid_sort, _pair_rdist, _rank_fetched
from ._radius import radius_search as brute_radius_search
from ._search import _METRIC_IDS, effective_n_threads, rdist_to_dist, run_row_blocks, search, thread_limit

# Pairs or queries per thread at least in the tree's and the grid's
# kernels, which the driver runs in blocks in its threads: fewer cost less
# than handing them to a thread.
KERNEL_BLOCK_ROWS = 256

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

# From there up to AUTO_TREE_PROBE_MAX_FEATURES features, "auto" takes the
# tree where a probe predicts that it pays (see :func:`tree_probe_cost`).
# At 7 to 12 features the tree was 3 to 12 times faster than brute force
# (fit + predict) on clustered or low-rank rows, and up to 13 times slower
# on Gaussian noise. TREE_PROBE_QUERIES sampled rows are compared with
# TREE_PROBE_ROWS others. The tree is taken where the cost is at most
# AUTO_TREE_MAX_COST (twice that for the other metrics, whose brute force
# costs more a pair), times the square root of the training rows per
# sampled row. That factor is capped at TREE_PROBE_DENSITY_CAP, as building
# the tree (n log n) pays back only over many queries: uncapped, 1,000,000
# rows and 2,000 queries took the tree where it cost 1.25 to 1.4 times
# brute force. Measured on 20,000, 50,000, 200,000 and 1,000,000 rows of
# seven kinds of data at 7 to 16 features, k=5 (docs/performance.rst).
AUTO_TREE_PROBE_MAX_FEATURES = 16
TREE_PROBE_QUERIES = 32
TREE_PROBE_ROWS = 16384
AUTO_TREE_MAX_COST = 0.4
TREE_PROBE_DENSITY_CAP = 4

# Points per leaf of the k-d tree where the caller gives none: scikit-learn's
# default ``leaf_size`` (scipy's is 16). On 200,000 uniform points and 50,000
# queries, k=6, build + query took 0.55 / 1.25 / 3.56 s at 4 / 6 / 8
# features against 0.57 / 1.24 / 3.81 s with 16 (best of 3, all cores).
LEAF_SIZE = 30

# The k-d tree holds each distinct row once (:class:`DistinctRowsTree`) where
# a probe of DUPLICATE_PROBE_ROWS training rows (evenly spaced) finds one
# with DUPLICATE_GROUP_ROWS copies or more. Over every row, each query near
# such a row settles a tie among all its copies: 20,000 rows of 8 distinct
# values took 15 s to predict themselves at k=5, against 1.5 s for brute
# force. The probe costs about 2 ms.
DUPLICATE_GROUP_ROWS = 64
DUPLICATE_PROBE_ROWS = 1024

# A radius search runs brute force's instead where the balls around a
# probe of RADIUS_PROBE_QUERIES queries hold more than RADIUS_BRUTE_SHARE of
# the training rows on average: the tree costs about 0.2 us a row found
# (the rows listed by scipy, their exact distances, the sort), brute force
# a few ns a training row. They cost the same at about 0.3 % (20,000 x 3,
# 200,000 x 2 and 200,000 x 5 uniform rows, 500 queries); at 10 % the tree
# took 2.2 to 3.7 times as long, and at 90 % (a radius catching most of the
# rows) scikit-learn's tree was 13 to 18 times faster than it.
RADIUS_BRUTE_SHARE = 0.003
RADIUS_PROBE_QUERIES = 64

# The cell grid (see :class:`CellGrid`): used instead of the k-d tree up to
# GRID_MAX_FEATURES features, from GRID_MIN_ROWS training rows, with about
# GRID_ROWS_PER_CELL rows a cell, unless the rows crowd into few cells: a
# training row's cell holds GRID_MAX_CROWDING rows or more on average.
GRID_MAX_FEATURES = 3
GRID_MIN_ROWS = 1000
GRID_ROWS_PER_CELL = 2.0
GRID_MAX_CROWDING = 16.0
# Rings of cells a grid search visits beyond those that k evenly spread
# rows would fill, before it hands the query to the k-d tree.
GRID_EXTRA_RINGS = 4


def tree_power(metric, p):
    """The Minkowski power ``cKDTree`` takes for a canonical metric."""
    return {"euclidean": 2.0, "manhattan": 1.0, "chebyshev": math.inf}.get(metric, p)


# Queries per thread of a tree query, times ``n_features + 2``: scipy starts
# its threads at every query, which cost about 0.3 ms on a 2-core machine,
# the time of 1,000 queries of k=5 in 2-D or 400 in 8-D among 20,000 rows
# (where 2 threads and 1 took the same time).
TREE_QUERIES_PER_WORKER = 4096


def tree_workers(n_jobs, n_queries, n_features):
    """Threads for a tree query of ``n_queries``: ``n_jobs`` as for numba (None keeps numba's count), fewer
    where each would get fewer than ``TREE_QUERIES_PER_WORKER / (n_features + 2)`` queries."""
    n_threads = effective_n_threads(n_jobs)
    n_threads = numba.get_num_threads() if n_threads is None else n_threads
    return int(max(1, min(n_threads, n_queries * (n_features + 2) // TREE_QUERIES_PER_WORKER)))


def tree_pays(train, metric, p, n_neighbors, leaf_size=LEAF_SIZE):
    """Whether ``algorithm="auto"`` should search ``train`` with the tree.

    Always up to :data:`AUTO_TREE_MAX_FEATURES` features
    (:data:`AUTO_TREE_MAX_FEATURES_NON_EUCLIDEAN` for the other metrics),
    never beyond :data:`AUTO_TREE_PROBE_MAX_FEATURES`. In between, where
    :func:`tree_probe_cost` is at most :data:`AUTO_TREE_MAX_COST` (twice
    that for the other metrics) times the square root of the training rows
    per sampled row, up to :data:`TREE_PROBE_DENSITY_CAP`: the probe's
    sample is sparser than the training set, and a tree gains on brute
    force as the rows grow denser.
    """
    n_train, n_features = train.shape
    euclidean = metric == "euclidean"
    if n_features <= (AUTO_TREE_MAX_FEATURES if euclidean else AUTO_TREE_MAX_FEATURES_NON_EUCLIDEAN):
        return True
    if n_features > AUTO_TREE_PROBE_MAX_FEATURES:
        return False
    density = min(max(n_train, TREE_PROBE_ROWS), TREE_PROBE_DENSITY_CAP * TREE_PROBE_ROWS) / TREE_PROBE_ROWS
    limit = AUTO_TREE_MAX_COST * (1.0 if euclidean else 2.0) * math.sqrt(density)
    return tree_probe_cost(train, metric, p, n_neighbors, leaf_size) <= limit


def tree_probe_cost(train, metric, p, n_neighbors, leaf_size=LEAF_SIZE, random_state=0):
    """The predicted cost of the tree's search against brute force's, from a probe.

    A k-d tree visits the leaves that meet a query's ball of its ``k``
    neighbours; a leaf of ``leaf_size`` rows reaches about as far as a
    row's ``leaf_size``-th neighbour. So it computes about the rows within
    the sum of those two distances of the query, where brute force computes
    every row. The probe counts them for :data:`TREE_PROBE_QUERIES` rows
    among :data:`TREE_PROBE_ROWS` sampled training rows (all of them if
    fewer), as a share of the sample, and weighs the share by
    ``n_features ** 2 / 8``: each row costs the tree a distance over the
    features, and its boxes fit the data worse as they grow (measured, see
    :data:`AUTO_TREE_MAX_COST`). Where rows repeat enough for the tree to
    hold each distinct row once (:class:`DistinctRowsTree`), the distinct
    rows are counted. The count, not a timing, decides, so that the same
    data gives the same choice on every machine.

    Returns
    -------
    cost : float
    """
    n_train, n_features = train.shape
    rng = np.random.default_rng(random_state)
    n_rows = min(n_train, TREE_PROBE_ROWS)
    if n_rows < 2:
        return 0.0
    rows = train[np.sort(rng.choice(n_train, n_rows, replace=False))] if n_rows < n_train else train
    n_probe = min(n_rows, TREE_PROBE_QUERIES)
    chosen = rng.choice(n_rows, n_probe, replace=False)
    dist = _probe_distances(rows[chosen], rows, metric, p)
    if np.count_nonzero(dist == 0.0, axis=1).max() * n_train >= DUPLICATE_GROUP_ROWS * n_rows:
        # Copies enough for the k-d tree to hold each distinct row once
        # (DistinctRowsTree): it visits the distinct rows, and lists at most
        # k copies of each.
        distinct = rows[np.unique(row_bytes(rows), return_index=True)[1]]
        dist = _probe_distances(rows[chosen], distinct, metric, p)
    else:
        dist[np.arange(n_probe), chosen] = np.inf  # the probe row itself
    k, leaf = min(n_neighbors, dist.shape[1] - 1), min(leaf_size, dist.shape[1] - 1)
    if k < 1:  # a single distinct row
        return 0.0
    # One selection over the rows, then a sort of the few nearest: half the
    # time of selecting the two ranks over the rows.
    nearest = np.sort(np.partition(dist, max(k, leaf) - 1, axis=1)[:, : max(k, leaf)], axis=1)
    with np.errstate(over="ignore"):
        reach = nearest[:, k - 1] + nearest[:, leaf - 1]
    share = np.count_nonzero(dist <= reach[:, None]) / (n_probe * n_rows)
    return share * n_features**2 / 8.0


def _probe_distances(probe, rows, metric, p):
    """The distances of the probe rows to ``rows`` (scipy's ``cdist``, float64); inf where they overflow."""
    names = {"euclidean": "euclidean", "manhattan": "cityblock", "chebyshev": "chebyshev", "minkowski": "minkowski"}
    options = {"p": p} if metric == "minkowski" else {}
    with np.errstate(over="ignore"):  # overflowing distances are inf: every row counts, brute force is chosen
        return cdist(probe, rows, names[metric], **options)


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


def build_tree(train, leaf_size=LEAF_SIZE):
    """The space partition of the training rows: a :class:`CellGrid`, or a ``cKDTree``.

    The grid where it applies (:func:`build_grid`), else scipy's k-d tree
    (which keeps the rows in float64) with ``leaf_size`` points a leaf.
    """
    grid = build_grid(train, leaf_size)
    if grid is not None:
        return grid
    return build_kd_tree(train, leaf_size)


def build_kd_tree(train, leaf_size=LEAF_SIZE):
    """A ``cKDTree`` over the training rows (kept in float64 by scipy), ``leaf_size`` points a leaf.

    A :class:`DistinctRowsTree` instead where rows repeat many times (see
    :data:`DUPLICATE_GROUP_ROWS`).
    """
    tree = _kd_tree(train, leaf_size)
    n_train = train.shape[0]
    if n_train >= DUPLICATE_GROUP_ROWS:
        probe = train[np.linspace(0, n_train - 1, min(n_train, DUPLICATE_PROBE_ROWS)).astype(np.int64)]
        # Only the rows at distance 0 (below 1e-150, whose square float64 holds) are searched for.
        copies, _ = tree.query(probe, k=DUPLICATE_GROUP_ROWS, distance_upper_bound=1e-150)
        if np.any(copies[:, -1] == 0.0):
            return DistinctRowsTree(train, leaf_size)
    return tree


def row_bytes(rows):
    """Each row as one opaque value of its bytes, for ``np.unique`` (rows of equal bytes are the same)."""
    return np.ascontiguousarray(rows).view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()


def _kd_tree(rows, leaf_size):
    return cKDTree(rows, leafsize=leaf_size, balanced_tree=False, compact_nodes=False)


class DistinctRowsTree:
    """A ``cKDTree`` over one copy of each distinct training row, with the training indices of each.

    Rows are the same when their bytes are (a row with -0.0 and one with
    0.0 stay apart: they only tie, as any two rows at equal distances do).

    Attributes
    ----------
    tree : scipy.spatial.cKDTree
        Over the distinct rows, in the order of their bytes.
    group_start : ndarray of shape (n_distinct + 1,), int64
        Where each distinct row's training indices start in ``members``.
    members : ndarray of shape (n_train,), int64
        The training indices of each distinct row, ascending, one row after
        the other.
    leafsize : int
        Points per leaf of ``tree``.
    """

    def __init__(self, train, leaf_size=LEAF_SIZE):
        _, first, group_of = np.unique(row_bytes(train), return_index=True, return_inverse=True)
        self.tree = _kd_tree(train[first], leaf_size)
        self.members = np.argsort(group_of.ravel(), kind="stable").astype(np.int64, copy=False)
        self.group_start = np.zeros(first.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(group_of.ravel(), minlength=first.shape[0]), out=self.group_start[1:])
        self.leafsize = leaf_size

    def group_sizes(self, groups):
        """Training rows of each distinct row in ``groups`` (any shape)."""
        return self.group_start[groups + 1] - self.group_start[groups]

    def rows_of(self, groups, counts):
        """The first ``counts`` training indices of each of ``groups``, flat, group after group."""
        groups, counts = groups.ravel(), counts.ravel()
        ends = np.cumsum(counts)
        position = np.arange(int(ends[-1]) if ends.shape[0] else 0) - np.repeat(ends - counts, counts)
        return self.members[np.repeat(self.group_start[groups], counts) + position]


class CellGrid:
    """The training rows sorted into a regular grid of cells (few features, evenly spread rows).

    On 2 or 3 features and rows spread over their bounding box, a query's
    nearest rows lie in its own cell and the ones around it: the search
    (``_kernels.tree._grid_select``) visits the cells ring by ring and
    computes each row's exact distance, stopping when no unvisited cell can
    hold a row within the k-th distance. The cells are built by a counting
    sort, stable, so each cell lists its rows by training index.

    Attributes
    ----------
    points : ndarray of shape (n_train, n_features)
        The training rows in cell order, in the training dtype.
    point_ids : ndarray of shape (n_train,), int64
        The training index of each of ``points``.
    cell_start : ndarray of shape (n_cells_total + 1,), int64
        Where each cell's rows start in ``points``.
    low, width : ndarray of shape (n_features,), float64
        The grid's origin and the side of a cell along each axis.
    n_cells, strides : ndarray of shape (n_features,), int64
        Cells along each axis, and each axis's stride in a cell's linear index.
    train : ndarray
        The training rows, for the k-d tree a radius search builds on demand.
    leaf_size : int
        Points per leaf of that tree.
    """

    def __init__(self, train, points, point_ids, cell_start, low, width, n_cells, strides, leaf_size=LEAF_SIZE):
        self.train, self.leaf_size = train, leaf_size
        self.points, self.point_ids, self.cell_start = points, point_ids, cell_start
        self.low, self.width, self.n_cells, self.strides = low, width, n_cells, strides
        self._kd_tree = None

    def kd_tree(self):
        """A k-d tree of the same rows (:func:`build_kd_tree`), built on first use (radius searches run on it)."""
        if self._kd_tree is None:
            self._kd_tree = build_kd_tree(self.train, self.leaf_size)
        return self._kd_tree


def build_grid(train, leaf_size=LEAF_SIZE):
    """A :class:`CellGrid` of ``train`` (its on-demand k-d tree ``leaf_size`` points a leaf), or None where the grid does not apply.

    None for more than :data:`GRID_MAX_FEATURES` features, fewer than
    :data:`GRID_MIN_ROWS` rows, rows whose extent is not finite in float64,
    or rows so unevenly spread that a row's cell holds
    :data:`GRID_MAX_CROWDING` rows or more on average (clustered data, where
    the k-d tree adapts and the grid does not).
    """
    n_train, n_features = train.shape
    if n_features > GRID_MAX_FEATURES or n_features == 0 or n_train < GRID_MIN_ROWS:
        return None
    low = train.min(axis=0).astype(np.float64)
    high = train.max(axis=0).astype(np.float64)
    with np.errstate(all="ignore"):
        extent = high - low
    if not np.all(np.isfinite(extent)):
        return None
    n_cells = grid_shape(extent, n_train / GRID_ROWS_PER_CELL)
    width = np.where(extent > 0, extent / n_cells, 1.0)
    strides = np.ones(n_features, dtype=np.int64)
    for f in range(n_features - 2, -1, -1):
        strides[f] = strides[f + 1] * n_cells[f + 1]
    cells = np.empty(n_train, dtype=np.int64)
    _grid_cells(train, low, width, n_cells, strides, cells)
    counts = np.bincount(cells, minlength=int(np.prod(n_cells)))
    if float(np.dot(counts, counts)) / n_train >= GRID_MAX_CROWDING:
        return None
    cell_start = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=cell_start[1:])
    points = np.empty_like(train)
    point_ids = np.empty(n_train, dtype=np.int64)
    _grid_sort(train, cells, cell_start, points, point_ids)
    return CellGrid(train, points, point_ids, cell_start, low, width, n_cells, strides, leaf_size)


def grid_shape(extent, n_target_cells):
    """Cells along each axis of ``extent``: about ``n_target_cells`` cells in all, nearly cubic.

    Cubic cells keep :func:`grid_rings` right on any axis: with as many
    cells along each axis, rows spread 100 times wider along two axes than
    the third sat in flat cells, and the rings a query visits spanned a
    sliver of the wide axes, so every query went on to the k-d tree
    (50,000 such rows predicted 10 to 16 times slower than scikit-learn's
    tree). An axis narrower than a cell gets one cell, and the others share
    the count.
    """
    n_cells = np.ones(extent.shape[0], dtype=np.int64)
    axes = np.flatnonzero(extent > 0)
    while axes.shape[0]:
        # In logarithms: a product of extents leaves float64's range (1e160 squared, 1e-200 squared).
        log_side = (np.log(extent[axes]).sum() - math.log(max(n_target_cells, 1.0))) / axes.shape[0]
        log_ratio = np.log(extent[axes]) - log_side  # the axis's extent in cells
        narrow = log_ratio < 0.0
        if not narrow.any():
            n_cells[axes] = np.maximum(1, np.exp(log_ratio + 1e-9).astype(np.int64))
            break
        axes = axes[~narrow]
    return n_cells


def grid_search(queries, train, grid, n_neighbors, metric, p, n_jobs=None):
    """Exact k nearest training rows of every query through a :class:`CellGrid` (see :func:`tree_search`).

    A query visits at most :func:`grid_rings` rings of cells; the few that
    that does not settle (far from the rows, or rows along a line) go to
    the k-d tree instead.
    """
    n_queries = queries.shape[0]
    rdist = np.empty((n_queries, n_neighbors))
    indices = np.empty((n_queries, n_neighbors), dtype=np.int64)
    unfinished = np.empty(n_queries, dtype=np.bool_)
    power = 0.0 if p is None else float(p)
    cells = np.empty(n_queries, dtype=np.int64)
    _grid_cells(queries, grid.low, grid.width, grid.n_cells, grid.strides, cells)
    order = np.argsort(cells)
    rings = grid_rings(n_neighbors, grid_axes(grid))

    def select_block(first, last):
        _grid_select(
            queries, order[first:last], grid.points, grid.point_ids, grid.cell_start, grid.low, grid.width,
            grid.n_cells, grid.strides, _METRIC_IDS[metric], power, RELATIVE_MARGIN, rings, rdist, indices, unfinished,
        )

    with thread_limit(n_jobs):
        run_row_blocks(select_block, n_queries, min_rows=KERNEL_BLOCK_ROWS)
    unfinished = np.flatnonzero(unfinished)
    if unfinished.shape[0]:
        rdist[unfinished], indices[unfinished] = tree_search(
            np.ascontiguousarray(queries[unfinished]), train, grid.kd_tree(), n_neighbors, metric, p, n_jobs=n_jobs
        )
    return rdist, indices


def grid_axes(grid):
    """Axes along which ``grid`` has more than one cell: the dimension its rings spread in."""
    return max(1, int(np.count_nonzero(grid.n_cells > 1)))


def grid_rings(n_neighbors, n_features):
    """The last ring of cells a grid search visits: a few beyond what ``n_neighbors`` evenly spread rows fill."""
    return GRID_EXTRA_RINGS + math.ceil((n_neighbors / GRID_ROWS_PER_CELL) ** (1.0 / n_features))


def pair_rdist(queries, train, query_of, rows, metric, p):
    """Exact reduced distances of the pairs ``(queries[query_of], train[rows])``, float64."""
    out = np.empty(rows.shape[0], dtype=np.float64)
    power = 0.0 if p is None else float(p)

    def pairs_block(first, last):
        _pair_rdist(queries, train, query_of[first:last], rows[first:last], _METRIC_IDS[metric], power, out[first:last])

    run_row_blocks(pairs_block, rows.shape[0], min_rows=KERNEL_BLOCK_ROWS)
    return out


def nearest_rows(tree, queries, n_fetch, power, workers):
    """The tree's ``n_fetch`` nearest training rows of each query: ``(tree_dist, rows)``, each (n_queries, n_fetch).

    From a :class:`DistinctRowsTree`, the copies of its nearest distinct
    rows, each one's lowest indices first, until ``n_fetch`` are listed.
    """
    if isinstance(tree, cKDTree):
        tree_dist, rows = tree.query(queries, k=n_fetch, p=power, workers=workers)
        return tree_dist.reshape(-1, n_fetch), rows.reshape(-1, n_fetch).astype(np.int64, copy=False)
    n_groups = min(n_fetch, tree.tree.n)  # their copies number n_fetch at least
    group_dist, groups = tree.tree.query(queries, k=n_groups, p=power, workers=workers)
    group_dist, groups = group_dist.reshape(-1, n_groups), groups.reshape(-1, n_groups)
    sizes = tree.group_sizes(groups)
    taken = np.clip(n_fetch - (np.cumsum(sizes, axis=1) - sizes), 0, sizes)
    rows = tree.rows_of(groups, taken).reshape(-1, n_fetch)
    return np.repeat(group_dist.ravel(), taken.ravel()).reshape(-1, n_fetch), rows


def ball_sizes(tree, queries, radii, power, workers, copies_limit):
    """Training rows :func:`ball_rows` lists for each query (an upper bound for a :class:`DistinctRowsTree`)."""
    if isinstance(tree, cKDTree):
        return tree.query_ball_point(queries, radii, p=power, workers=workers, return_length=True)
    return tree.tree.query_ball_point(queries, radii, p=power, workers=workers, return_length=True) * copies_limit


def ball_rows(tree, queries, radii, power, workers, copies_limit=None):
    """Training rows within ``radii`` (tree units) of each query, flat with offsets.

    From a :class:`DistinctRowsTree`, the first ``copies_limit`` copies of
    each distinct row in the ball (all of them for None).
    """
    source = tree if isinstance(tree, cKDTree) else tree.tree
    found = source.query_ball_point(queries, radii, p=power, workers=workers, return_sorted=False)
    counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
    offsets = np.concatenate(([0], np.cumsum(counts)))
    rows = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=int(offsets[-1]))
    if source is tree:
        return rows, offsets
    taken = tree.group_sizes(rows)
    if copies_limit is not None:
        taken = np.minimum(taken, copies_limit)
    return tree.rows_of(rows, taken), np.concatenate(([0], np.cumsum(taken)))[offsets]


def settle_ties(queries, train, tree, group, radii, k, metric, p, power, workers, rdist, indices):
    """Rank every row within ``radii`` of the queries ``group``, and write their first ``k`` rows."""
    ball, offsets = ball_rows(tree, queries[group], radii, power, workers, copies_limit=k)
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
    tree : scipy.spatial.cKDTree, DistinctRowsTree or CellGrid
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
    if isinstance(tree, CellGrid):
        return grid_search(queries, train, tree, k, metric, p, n_jobs=n_jobs)
    power, workers = tree_power(metric, p), tree_workers(n_jobs, n_queries, queries.shape[1])
    n_fetch = min(k + 1, n_train)
    with thread_limit(n_jobs):
        tree_dist, rows = nearest_rows(tree, queries, n_fetch, power, workers)
        rdist = np.empty((n_queries, k))
        indices = np.empty((n_queries, k), dtype=np.int64)
        unsettled = np.empty(n_queries, dtype=np.bool_)
        power_or_zero = 0.0 if p is None else float(p)

        def rank_block(first, last):
            _rank_fetched(
                queries[first:last], train, rows[first:last], tree_dist[first:last], _METRIC_IDS[metric],
                power_or_zero, RELATIVE_MARGIN, rdist[first:last], indices[first:last], unsettled[first:last],
            )

        run_row_blocks(rank_block, n_queries, min_rows=KERNEL_BLOCK_ROWS)
        unsettled = np.flatnonzero(unsettled)
        if unsettled.shape[0]:
            radii = rdist_to_dist(rdist[unsettled, -1].copy(), metric, p) * (1.0 + 4 * RELATIVE_MARGIN)
            # A tie ball can hold much of the training set (duplicate rows):
            # count first, and settle the queries in groups whose balls fit
            # the working memory (pairs cost 24 bytes here).
            sizes = ball_sizes(tree, queries[unsettled], radii, power, workers, k)
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


def _ball_share(tree, queries, radius, power):
    """The share of the training rows in the balls of ``radius`` (tree units) around a probe of the queries."""
    probe = queries[:: max(1, queries.shape[0] // RADIUS_PROBE_QUERIES)][:RADIUS_PROBE_QUERIES]
    if isinstance(tree, cKDTree):
        found, n_train = tree.query_ball_point(probe, radius, p=power, return_length=True).sum(), tree.n
    else:
        # The copies of the distinct rows in each ball, one query at a time:
        # listing them all at once would hold up to 64 times the training set.
        found = sum(
            int(tree.group_sizes(np.asarray(tree.tree.query_ball_point(query, radius, p=power), dtype=np.int64)).sum())
            for query in probe
        )
        n_train = tree.members.shape[0]
    return found / (probe.shape[0] * n_train)


def tree_radius_search(queries, train, tree, radius, metric, p, n_jobs=None, sort_distances=False):
    """Every training row within the reduced ``radius`` of each query, through the tree.

    Parameters and returns as ``_radius.radius_search`` (``tree`` as for
    :func:`tree_search`): the tree fetches the rows of a ball slightly wider
    than ``radius``, and a row is kept when its exact float64 reduced
    distance is ``<= radius``, as brute force decides. Where a probe of the
    queries finds more than :data:`RADIUS_BRUTE_SHARE` of the training rows
    in a ball, brute force's radius search runs instead.
    """
    n_queries = queries.shape[0]
    if n_queries == 0:
        return np.empty(0), np.empty(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    if not within_tree_range(queries, train, metric, p, radius):  # scipy's sums would overflow
        return brute_radius_search(queries, train, radius, metric, p, n_jobs=n_jobs, sort_distances=sort_distances)
    if isinstance(tree, CellGrid):
        tree = tree.kd_tree()
    power, workers = tree_power(metric, p), tree_workers(n_jobs, n_queries, queries.shape[1])
    wide = rdist_to_dist(np.array([float(radius)]), metric, p)[0] * (1.0 + 4 * RELATIVE_MARGIN)
    if _ball_share(tree, queries, wide, power) > RADIUS_BRUTE_SHARE:
        return brute_radius_search(queries, train, radius, metric, p, n_jobs=n_jobs, sort_distances=sort_distances)
    with thread_limit(n_jobs):
        ball, offsets = ball_rows(tree, queries, wide, power, workers)
        ball_query = np.repeat(np.arange(n_queries, dtype=np.int64), np.diff(offsets))
        rdist = pair_rdist(queries, train, ball_query, ball, metric, p)
    within = rdist <= radius
    ball, rdist, ball_query = ball[within], rdist[within], ball_query[within]
    order = np.lexsort((ball, rdist, ball_query) if sort_distances else (ball, ball_query))
    offsets = np.concatenate(([0], np.cumsum(np.bincount(ball_query, minlength=n_queries))))
    return rdist[order], ball[order], offsets
