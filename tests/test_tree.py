"""The tree search (``algorithm="kd_tree"`` / ``"ball_tree"``) against brute force, ties included."""

import numba
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastknn import KNNClassifier, KNNRegressor, kneighbors
from fastknn._base import fit_search, kneighbors_search, radius_search
from fastknn._search import search
from fastknn._tree import (
    AUTO_TREE_MAX_FEATURES,
    AUTO_TREE_PROBE_MAX_FEATURES,
    DUPLICATE_GROUP_ROWS,
    GRID_MAX_FEATURES,
    GRID_MIN_ROWS,
    CellGrid,
    DistinctRowsTree,
    build_grid,
    build_kd_tree,
    grid_search,
    tree_probe_cost,
    tree_workers,
)

METRICS = [("euclidean", 2), ("manhattan", 2), ("chebyshev", 2), ("minkowski", 3), ("minkowski", 1.5)]


def low_dimensional(kind, rng):
    """Training rows and queries: uniform floats, or integer grids whose distances tie everywhere."""
    if kind == "uniform":
        return rng.random((400, 3)), rng.random((60, 3))
    if kind == "grid":
        train = rng.integers(0, 5, (300, 2)).astype(np.float64)
        return train, np.ascontiguousarray(train[:60] + rng.integers(-1, 2, (60, 2)) * 0.5)
    if kind == "float32 duplicates":
        train = rng.integers(0, 3, (200, 3)).astype(np.float32)  # many duplicate rows
        return train, np.ascontiguousarray(train[:60] + rng.integers(-1, 2, (60, 3)), dtype=np.float32)
    train = rng.integers(0, 3, (1500, 2)).astype(np.float64)  # 9 distinct rows: a DistinctRowsTree
    return train, np.ascontiguousarray(train[:60] + rng.integers(-1, 2, (60, 2)) * 0.5)


@pytest.fixture(scope="module", params=["uniform", "grid", "float32 duplicates", "heavy duplicates"])
def data(request):
    return low_dimensional(request.param, np.random.default_rng(7))


@pytest.mark.parametrize("metric, p", METRICS)
def test_equals_brute_force_and_sklearn(data, metric, p):
    train, queries = data
    n_train = train.shape[0]
    for algorithm in ("kd_tree", "ball_tree"):
        for k in (1, 6, n_train):
            got_dist, got_ind = kneighbors(queries, train, k, metric=metric, p=p, algorithm=algorithm)
            want_dist, want_ind = kneighbors(queries, train, k, metric=metric, p=p, algorithm="brute")
            np.testing.assert_array_equal(got_ind, want_ind)
            np.testing.assert_array_equal(got_dist, want_dist)
    reference = NearestNeighbors(n_neighbors=6, algorithm="brute", metric=metric, p=p).fit(train.astype(np.float64))
    want_dist, want_ind = reference.kneighbors(queries.astype(np.float64))
    got_dist, got_ind = kneighbors(queries, train, 6, metric=metric, p=p, algorithm="kd_tree")
    np.testing.assert_allclose(got_dist, want_dist, rtol=1e-12, atol=1e-12)
    # scikit-learn's brute force does not promise an order among equal distances.
    untied = np.all(np.diff(want_dist, axis=1) > 1e-9, axis=1)
    np.testing.assert_array_equal(got_ind[untied], want_ind[untied])


@pytest.mark.parametrize("metric, p", METRICS)
@pytest.mark.parametrize("sort_results", [False, True])
@pytest.mark.parametrize("through", ["tree", "brute force where balls are crowded"])
def test_radius_equals_brute_force(data, metric, p, sort_results, through, monkeypatch):
    import fastknn._tree

    if through == "tree":  # however many rows a ball holds
        monkeypatch.setattr(fastknn._tree, "RADIUS_BRUTE_SHARE", 1.0)
    train, queries = data
    tree = fit_search(train, metric, None if metric != "minkowski" else float(p), "kd_tree", 5)
    brute = fit_search(train, metric, None if metric != "minkowski" else float(p), "brute", 5)
    for radius in (0.0, 0.5, 1.0, 2.0):
        got = radius_search(tree, queries, radius, sort_results=sort_results)
        want = radius_search(brute, queries, radius, sort_results=sort_results)
        for got_part, want_part in zip(got, want):
            np.testing.assert_array_equal(got_part, want_part)


def test_no_queries():
    train = np.random.default_rng(0).random((30, 2))
    fitted = fit_search(train, "euclidean", None, "kd_tree", 3)
    dist, ind = kneighbors_search(fitted, np.empty((0, 2)), 3)
    assert dist.shape == ind.shape == (0, 3)
    dist, ind, offsets = radius_search(fitted, np.empty((0, 2)), 1.0)
    assert dist.shape == ind.shape == (0,) and offsets.tolist() == [0]


def test_classifier_on_a_grid_equals_brute_force():
    rng = np.random.default_rng(3)
    X = rng.integers(0, 6, (500, 2)).astype(np.float64)
    y = rng.integers(0, 3, 500)
    queries = rng.integers(0, 6, (200, 2)) + 0.5 * rng.integers(0, 2, (200, 2))
    tree = KNNClassifier(n_neighbors=7, algorithm="kd_tree").fit(X, y)
    brute = KNNClassifier(n_neighbors=7, algorithm="brute").fit(X, y)
    assert tree.fit_method_ == "tree"
    np.testing.assert_array_equal(tree.predict(queries), brute.predict(queries))
    np.testing.assert_array_equal(tree.predict_proba(queries), brute.predict_proba(queries))
    for got, want in zip(tree.kneighbors(), brute.kneighbors()):  # X=None: each sample without itself
        np.testing.assert_array_equal(got, want)
    # Without ties, scikit-learn's default (its k-d tree) agrees too.
    uniform, uniform_queries = rng.random((500, 2)), rng.random((200, 2))
    ours = KNNClassifier(n_neighbors=7).fit(uniform, y)
    theirs = KNeighborsClassifier(n_neighbors=7).fit(uniform, y)
    np.testing.assert_array_equal(ours.predict(uniform_queries), theirs.predict(uniform_queries))


def test_regressor_equals_brute_force():
    rng = np.random.default_rng(4)
    X, y, queries = rng.random((300, 2)), rng.random(300), rng.random((50, 2))
    tree = KNNRegressor(weights="distance", metric="manhattan", algorithm="ball_tree").fit(X, y)
    brute = KNNRegressor(weights="distance", metric="manhattan", algorithm="brute").fit(X, y)
    np.testing.assert_array_equal(tree.predict(queries), brute.predict(queries))


def test_auto_takes_the_tree_only_on_few_features():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 200)
    assert KNNClassifier().fit(rng.random((200, 2)), y).fit_method_ == "tree"
    assert KNNClassifier().fit(rng.random((200, AUTO_TREE_MAX_FEATURES)), y).fit_method_ == "tree"
    assert KNNClassifier().fit(rng.random((200, 64)), y).fit_method_ != "tree"
    assert KNNClassifier(algorithm="brute").fit(rng.random((200, 2)), y).fit_method_ == "brute"


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_auto_probes_the_tree_between_few_and_many_features(metric):
    """From 7 features (9 for the other metrics) to 16, the probe takes the
    tree for rows near a 3-D subspace and leaves Gaussian noise to brute
    force; the answers are brute force's either way."""
    rng = np.random.default_rng(6)
    n_features, n_rows = 10, 12000
    y = rng.integers(0, 3, n_rows)
    near_subspace = rng.standard_normal((n_rows, 3)) @ rng.standard_normal((3, n_features))
    near_subspace += 0.01 * rng.standard_normal(near_subspace.shape)
    noise = rng.standard_normal((n_rows, n_features))
    for rows, method in ((near_subspace, "tree"), (noise, "brute")):
        assert KNNClassifier(metric=metric).fit(rows, y).fit_method_ == method
        queries = rows[:50] + 0.1 * rng.standard_normal((50, n_features))
        auto = KNNClassifier(n_neighbors=4, metric=metric).fit(rows, y).kneighbors(queries)
        brute = KNNClassifier(n_neighbors=4, metric=metric, algorithm="brute").fit(rows, y).kneighbors(queries)
        for got, want in zip(auto, brute):
            np.testing.assert_array_equal(got, want)
    assert tree_probe_cost(near_subspace, metric, None, 5) < 0.25 < 1.0 < tree_probe_cost(noise, metric, None, 5)
    wide = np.hstack([near_subspace] * 2)[:, : AUTO_TREE_PROBE_MAX_FEATURES + 1]
    assert KNNClassifier(metric=metric).fit(wide, y).fit_method_ != "tree"


def test_auto_probes_the_tree_of_distinct_rows_where_rows_repeat():
    """20 distinct rows of 10 features, 150 copies each: every copy is at
    distance 0, but the tree holds each distinct row once
    (``DistinctRowsTree``), so the probe counts distinct rows. Brute force
    took 3 times as long as scikit-learn's tree there."""
    rng = np.random.default_rng(8)
    rows = rng.standard_normal((20, 10))[rng.integers(0, 20, 3000)]
    y = rng.integers(0, 2, 3000)
    auto = KNNClassifier().fit(rows, y)
    assert auto.fit_method_ == "tree" and isinstance(auto._search_state.tree, DistinctRowsTree)
    queries = rows[:40] + 0.01 * rng.standard_normal((40, 10))
    brute = KNNClassifier(algorithm="brute").fit(rows, y)
    for got, want in zip(auto.kneighbors(queries), brute.kneighbors(queries)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("rows", [np.ones((1, 9)), np.eye(9)[:2], np.full((40, 9), 1e300), np.zeros((40, 9))])
def test_tree_probe_cost_on_degenerate_rows(rows):
    """One or two rows, distances that overflow, every row a copy: a finite
    or infinite cost, never an error; ``k`` and the leaf may exceed the rows."""
    cost = tree_probe_cost(rows, "minkowski", 3.0, 50, leaf_size=100)
    assert cost >= 0.0
    assert KNNClassifier(n_neighbors=1, p=3).fit(rows, np.arange(len(rows)) % 2).predict(rows[:1]).shape == (1,)


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="algorithm must be"):
        kneighbors(np.zeros((1, 2)), np.zeros((3, 2)), 1, algorithm="cover_tree")
    with pytest.raises(ValueError, match="algorithm"):
        KNNClassifier(algorithm="cover_tree").fit(np.zeros((3, 2)), [0, 1, 0])


@parametrize_with_checks([KNNClassifier(algorithm="kd_tree"), KNNRegressor(weights="distance", algorithm="ball_tree")])
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("scale", [1e300, 1e-300])
@pytest.mark.parametrize("metric, p", METRICS)
def test_extreme_scales_equal_brute_force(scale, metric, p):
    """Sums that overflow the tree's float64 (scipy refuses them) fall back to brute force.

    Where the reduced distances themselves overflow (squares or powers of
    1e300), both refuse to order the k nearest alike.
    """
    rng = np.random.default_rng(9)
    train, queries = rng.random((50, 3)) * scale, rng.random((5, 3)) * scale
    power = float(p) if metric == "minkowski" else None
    overflows = scale > 1.0 and metric in ("euclidean", "minkowski")
    answers = []
    for algorithm in ("kd_tree", "brute"):
        fitted = fit_search(train, metric, power, algorithm, 3)
        answer = radius_search(fitted, queries, 0.5 * scale, sort_results=True)
        if overflows:
            with pytest.raises(ValueError, match="overflow float64"):
                kneighbors_search(fitted, queries, 3)
        else:
            answer = kneighbors_search(fitted, queries, 3) + answer
        answers.append(answer)
    for got_part, want_part in zip(*answers):
        np.testing.assert_array_equal(got_part, want_part)


def test_tie_balls_are_settled_in_groups_within_the_working_memory(monkeypatch):
    """Duplicate rows make each query's tie ball hold hundreds of rows; a small budget splits them into groups."""
    import fastknn._tree

    rng = np.random.default_rng(1)
    train = rng.integers(0, 3, (3000, 2)).astype(np.float64)
    queries = rng.integers(0, 3, (200, 2)).astype(np.float64)
    want = kneighbors(queries, train, 7, algorithm="brute")
    monkeypatch.setattr(fastknn._tree, "WORKING_MEMORY_BYTES", 24 * 100)
    got = kneighbors(queries, train, 7, algorithm="kd_tree")
    for got_part, want_part in zip(got, want):
        np.testing.assert_array_equal(got_part, want_part)


def grid_cases(rng):
    """Shapes for the cell grid (from GRID_MIN_ROWS rows): even spread, ties, a flat axis, far queries."""
    n = GRID_MIN_ROWS + 500
    return {
        "uniform, queries around": (rng.random((n, 2)), rng.random((80, 2)) * 1.6 - 0.3),
        "float32 3-D": (rng.random((n, 3)).astype(np.float32), rng.random((80, 3)).astype(np.float32)),
        "integer grid ties": (rng.integers(0, 30, (n, 2)).astype(np.float64), rng.integers(-2, 32, (80, 2)) * 1.0),
        "3-D half-step ties": (rng.integers(0, 10, (n, 3)).astype(np.float64), rng.integers(0, 20, (80, 3)) * 0.5),
        "flat axis": (np.c_[rng.random(n), np.zeros(n)], rng.random((80, 2))),
        "one feature": (rng.random((n, 1)), rng.random((80, 1)) * 3.0),
        "axes 100 times apart": (rng.random((n, 3)) * [100.0, 100.0, 1.0], rng.random((80, 3)) * [100.0, 100.0, 1.0]),
        "one thin axis of three": (rng.random((n, 3)) * [1.0, 1e-6, 1e3], rng.random((80, 3)) * [1.0, 1e-6, 1e3]),
    }


@pytest.mark.parametrize("case", list(grid_cases(np.random.default_rng(0))))
def test_grid_equals_brute_force(case):
    """The cell grid's rings, its stopping test and its hand-over of far
    queries to the k-d tree give brute force's neighbours, ties by index."""
    train, queries = grid_cases(np.random.default_rng(0))[case]
    queries = np.ascontiguousarray(queries, dtype=train.dtype)
    grid = build_grid(train)
    assert isinstance(grid, CellGrid)
    for metric, p in METRICS:
        power = None if metric != "minkowski" else float(p)
        for k in (1, 6, 40):
            got = grid_search(queries, train, grid, k, metric, power)
            want = search(queries, train, k, metric, power)
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[0], want[0])


def test_rows_repeated_many_times_are_held_once(monkeypatch):
    """A tie among the copies of a row costs its first k copies, not all of them.

    20,000 rows of 8 distinct values: over every row, each query settled a
    tie among its row's 2,500 copies (15 s to predict them all at k=5).
    """
    import fastknn._tree

    rng = np.random.default_rng(3)
    train = rng.integers(0, 2, (20_000, 3)).astype(np.float64)
    queries = np.vstack([train[:300], rng.integers(0, 2, (100, 3)) + 0.5])
    pairs = []
    exact = fastknn._tree.pair_rdist

    def counted(queries, train, query_of, rows, *args):
        pairs.append(rows.shape[0])
        return exact(queries, train, query_of, rows, *args)

    monkeypatch.setattr(fastknn._tree, "pair_rdist", counted)
    for k in (1, 5, 40):
        pairs.clear()
        tree = fit_search(train, "euclidean", None, "kd_tree", k)
        assert isinstance(tree.tree, DistinctRowsTree) and tree.tree.tree.n == 8
        brute = fit_search(train, "euclidean", None, "brute", k)
        for got, want in zip(kneighbors_search(tree, queries, k), kneighbors_search(brute, queries, k)):
            np.testing.assert_array_equal(got, want)
        assert sum(pairs) <= len(queries) * 8 * k  # at most k copies of each of the 8 distinct rows
        got = radius_search(tree, queries[:20], 1.0, sort_results=True)
        for got_part, want_part in zip(got, radius_search(brute, queries[:20], 1.0, sort_results=True)):
            np.testing.assert_array_equal(got_part, want_part)
    # Rows repeated fewer times keep the plain k-d tree.
    fewer_copies = np.repeat(rng.random((300, 3)), DUPLICATE_GROUP_ROWS - 1, axis=0)
    assert not isinstance(build_kd_tree(fewer_copies), DistinctRowsTree)
    assert isinstance(build_kd_tree(np.repeat(rng.random((30, 3)), DUPLICATE_GROUP_ROWS, axis=0)), DistinctRowsTree)


def test_grid_cells_are_nearly_cubic(monkeypatch):
    """As many cells along every axis made flat cells of rows spread 100 times wider
    along two axes than the third: every query outran its rings and went to the
    k-d tree (10 to 16 times slower than scikit-learn's tree)."""
    import fastknn._tree

    rng = np.random.default_rng(4)
    scale = np.array([100.0, 100.0, 1.0])
    train, queries = rng.random((50_000, 3)) * scale, rng.random((2000, 3)) * scale
    grid = build_grid(train)
    assert isinstance(grid, CellGrid)
    sides = grid.width
    assert sides.max() / sides.min() < 2.0 and 0.5 < np.prod(grid.n_cells) / (50_000 / 2.0) <= 1.0
    handed_over = []
    tree_search = fastknn._tree.tree_search

    def counted(queries, *args, **kwargs):
        handed_over.append(queries.shape[0])
        return tree_search(queries, *args, **kwargs)

    monkeypatch.setattr(fastknn._tree, "tree_search", counted)
    for k in (5, 50):
        got = grid_search(queries, train, grid, k, "euclidean", None)
        for got_part, want_part in zip(got, search(queries, train, k, "euclidean", None)):
            np.testing.assert_array_equal(got_part, want_part)
    assert sum(handed_over) <= 0.01 * 2 * len(queries)  # nearly every query settled in its rings


def test_radius_balls_holding_much_of_the_training_set_go_to_brute_force(monkeypatch):
    """The tree costs about 0.2 us a row found, brute force a few ns a row: a radius
    catching most rows ran 13 to 18 times slower than scikit-learn's tree."""
    import fastknn._tree

    rng = np.random.default_rng(6)
    train, queries = rng.random((3000, 3)), rng.random((100, 3))
    tree = fit_search(train, "euclidean", None, "kd_tree", 5)
    brute = fit_search(train, "euclidean", None, "brute", 5)
    listed = []
    ball_rows = fastknn._tree.ball_rows

    def counted(*args, **kwargs):
        listed.append(1)
        return ball_rows(*args, **kwargs)

    monkeypatch.setattr(fastknn._tree, "ball_rows", counted)
    for radius, through_tree in ((0.05, True), (1.5, False)):  # about 0.05 % and 100 % of the rows
        listed.clear()
        got = radius_search(tree, queries, radius, sort_results=True)
        for got_part, want_part in zip(got, radius_search(brute, queries, radius, sort_results=True)):
            np.testing.assert_array_equal(got_part, want_part)
        assert bool(listed) == through_tree


def test_radius_probe_counts_the_copies_of_distinct_rows():
    from fastknn._tree import _ball_share

    rng = np.random.default_rng(8)
    train = np.repeat(rng.random((40, 3)), DUPLICATE_GROUP_ROWS + rng.integers(0, 5, 40), axis=0)
    queries = rng.random((30, 3))
    tree = build_kd_tree(train)
    assert isinstance(tree, DistinctRowsTree)
    for radius in (0.1, 0.4, 2.0):
        within = (np.linalg.norm(queries[:, None] - train[None], axis=2) <= radius).sum()
        assert _ball_share(tree, queries, radius, 2.0) == within / (len(queries) * len(train))


def test_radius_beyond_the_trees_range_builds_no_tree():
    """Out of scipy's range, brute force runs at once: a grid builds no k-d tree for it.

    Rows of 1e160 also check that the grid's cells are counted without
    overflow (a product of the extents, 1e160 squared, would be infinite)."""
    rng = np.random.default_rng(9)
    train = rng.random((GRID_MIN_ROWS, 2)) * 1e160
    grid = build_grid(train)
    assert isinstance(grid, CellGrid)
    fitted = fit_search(train, "euclidean", None, "kd_tree", 5)
    brute = fit_search(train, "euclidean", None, "brute", 5)
    got = radius_search(fitted._replace(tree=grid), train[:5], 1e159)
    for got_part, want_part in zip(got, radius_search(brute, train[:5], 1e159)):
        np.testing.assert_array_equal(got_part, want_part)
    assert grid._kd_tree is None


def test_crowded_rows_get_the_kd_tree():
    """Rows piled into a few cells (clusters, duplicates) are left to the k-d tree."""
    rng = np.random.default_rng(1)
    clustered = np.r_[rng.random((GRID_MIN_ROWS, 2)) * 1e-3, rng.random((10, 2))]
    assert build_grid(clustered) is None
    assert build_grid(rng.random((GRID_MIN_ROWS - 1, 2))) is None
    assert build_grid(rng.random((GRID_MIN_ROWS, GRID_MAX_FEATURES + 1))) is None
    assert isinstance(build_grid(rng.random((GRID_MIN_ROWS, 2))), CellGrid)
    y = rng.integers(0, 3, len(clustered))
    fitted = KNNClassifier().fit(clustered, y)
    assert fitted.fit_method_ == "tree"
    np.testing.assert_array_equal(
        fitted.predict(clustered[:50]), KNNClassifier(algorithm="brute").fit(clustered, y).predict(clustered[:50])
    )


def test_tree_workers_start_threads_only_for_queries_enough_to_share():
    """scipy starts its threads at each query: a few queries run on one."""
    assert tree_workers(None, 10, 4) == 1
    assert tree_workers(-1, 10**6, 2) == numba.config.NUMBA_NUM_THREADS
    assert tree_workers(2, 10**6, 2) == min(2, numba.config.NUMBA_NUM_THREADS)
    assert tree_workers(8, 1024, 2) == 1  # 1,024 queries per thread in 2-D
    assert tree_workers(8, 2048, 2) == min(2, numba.config.NUMBA_NUM_THREADS)
    assert tree_workers(8, 2048, 6) == min(4, numba.config.NUMBA_NUM_THREADS)  # 512 per thread in 6-D
