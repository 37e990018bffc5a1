"""Pruned exact search (fastknn/_pruning.py, fastknn/_kernels/pruning.py).

The pruned path must give exactly the brute-force result: same neighbours,
same order, same distances, ties to the lower training index.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from fastknn import KNNClassifier, _pruning, kneighbors
from fastknn._kernels.distances import MANHATTAN
from fastknn._kernels.pair_products import BLOCK_QUERIES, CODE_PAIRS, PANEL_ROWS
from fastknn._kernels.prefetch import _prefetch_row
from fastknn._kernels.pruning import (
    CODE_ROUNDING,
    PCA_INFO_COLUMNS,
    PCA_TRAIN_BLOCK,
    POOLED_TRAIN_BLOCK,
    SEED_GROUP_ROWS,
    FLOAT32_LIMIT,
    SKIP,
    _float32_threshold,
    _manhattan_stage2_bound,
    _pca_coarse_bounds,
    _pca_project,
    _pca_stage2_bound,
    _pooled_coarse_bounds,
    _quantise,
    _smallest_bounds,
    _strided_minima,
)
from fastknn._pruning import (
    _pca_features,
    _pool,
    build_index,
    choose_algorithm,
    pruned_radius_search,
    pruned_search,
    sparse_projection_limit,
)
from fastknn._radius import radius_search
from fastknn._search import search
from fastknn.datasets import load_mnist_split

METRICS = [("euclidean", None), ("manhattan", None), ("chebyshev", None), ("minkowski", 3.0)]


@pytest.fixture(scope="module")
def digits():
    X_train, y_train, X_val, _, _, _ = load_mnist_split("1000")
    return X_train, y_train, X_val


def assert_same_as_brute(queries, train, metric, p, k):
    index = build_index(train, metric, p)
    rdist, indices, counts = pruned_search(queries, train, index, k, return_counts=True)
    brute_rdist, brute_indices = search(queries, train, k, metric, p)
    np.testing.assert_array_equal(indices, brute_indices)
    np.testing.assert_array_equal(rdist, brute_rdist)
    assert np.all(counts[:, 1] <= counts[:, 0]) and np.all(counts[:, 0] <= train.shape[0])
    return counts


@pytest.mark.parametrize("metric, p", METRICS)
@pytest.mark.parametrize("k", [1, 5, 25])
def test_digits_equal_brute_force_and_prune(digits, metric, p, k):
    X_train, _, X_val = digits
    counts = assert_same_as_brute(X_val, X_train, metric, p, k)
    if metric in ("euclidean", "manhattan"):
        # Real digits are where the bounds pay: most rows are never computed.
        assert counts[:, 1].mean() < 0.2 * X_train.shape[0]


def test_fit_projects_the_training_set_in_chunks(monkeypatch):
    """_pca_features projects PCA_PROJECT_ROWS rows per call at fit: several
    chunks, the last one shorter, give the features of a single call."""
    rng = np.random.default_rng(5)
    train = rng.random((103, 20)).astype(np.float32)
    index = build_index(train, "euclidean", None)
    whole_fine, whole_codes, whole_info = _pca_features(index, train)
    monkeypatch.setattr(_pruning, "PCA_PROJECT_ROWS", 25)
    chunked_fine, chunked_codes, chunked_info = _pca_features(index, train)
    np.testing.assert_allclose(chunked_fine, whole_fine, rtol=1e-12, atol=1e-12)
    # Columns 1 and 3 are residual norms, sqrt(max(|x|^2 - |projection|^2, 0)):
    # where a row lies almost in the subspace they are square roots of the
    # products' rounding, which BLAS blocks differently for 25 rows than for
    # 103 (seen: 0 against 1.5e-8), so they agree to sqrt(eps |x|^2) only.
    residual = [1, 3]
    exact = [c for c in range(whole_info.shape[1]) if c not in residual]
    np.testing.assert_allclose(chunked_info[:, exact], whole_info[:, exact], rtol=1e-12, atol=1e-12)
    rounding = np.sqrt(64 * np.finfo(np.float64).eps * whole_info[:, 2:3])
    assert np.all(np.abs(chunked_info[:, residual] - whole_info[:, residual]) <= rounding + 1e-12 * whole_info[:, residual])
    assert np.abs(chunked_codes.astype(np.int32) - whole_codes).max() <= 1
    # The padding rows stay zero.
    assert whole_codes.shape[0] % PANEL_ROWS == 0 and not whole_codes[len(train):].any()


@pytest.mark.parametrize("locality", [False, True])
def test_index_reuses_the_features_of_known_rows(monkeypatch, locality):
    """``build_index(known=...)`` copies the known rows' features (the probe's
    sample, in ``"auto"``) and projects only the others; the search still
    equals brute force, with or without the locality order."""
    rng = np.random.default_rng(11)
    train = rng.random((300, 20)).astype(np.float32)
    queries = rng.random((40, 20)).astype(np.float32)
    basis = _pruning._orthonormal_basis(train, 16)
    positions = rng.choice(300, 120, replace=False)
    sample = build_index(train[positions], "euclidean", None, locality=False, basis=basis, keep_features=True)
    known_fine, _, known_info = sample.features
    projected = []

    def counting_project(rows, row_positions, *arguments):
        projected.append(row_positions.shape[0])
        return project(rows, row_positions, *arguments)

    project = _pruning._pca_project
    monkeypatch.setattr(_pruning, "_pca_project", counting_project)
    index = build_index(train, "euclidean", None, locality=locality, basis=basis, known=(positions, sample.features))
    assert sum(projected) == 300 - 120
    monkeypatch.undo()
    direct = build_index(train, "euclidean", None, locality=locality, basis=basis)
    np.testing.assert_array_equal(index.row_ids, direct.row_ids)
    place = np.empty(300, dtype=np.int64)
    place[index.row_ids] = np.arange(300)  # each training row's place in the index
    stored = [0, 1, 2, 3, 6, 7, 8]  # the info columns the index keeps (train_info)
    np.testing.assert_array_equal(index.train_fine[place[positions]], known_fine)
    np.testing.assert_array_equal(index.train_info[:, place[positions]], known_info[:, stored].T)
    others = place[np.setdiff1d(np.arange(300), positions)]
    # Squared norms of the projections and of the centred rows: computed
    # for these rows alone, as the direct index computed them among all.
    np.testing.assert_allclose(index.train_info[[0, 2, 4]][:, others], direct.train_info[[0, 2, 4]][:, others], rtol=1e-12)
    assert build_index(train, "euclidean", None, basis=basis).features is None
    rdist, indices = pruned_search(queries, train, index, 5)
    brute_rdist, brute_indices = search(queries, train, 5, "euclidean", None)
    np.testing.assert_array_equal(indices, brute_indices)
    np.testing.assert_array_equal(rdist, brute_rdist)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
@pytest.mark.parametrize("locality", [False, True])
def test_index_scale_is_the_largest_magnitude(metric, locality):
    """The overflow checks' scale: the largest absolute value of the training
    rows, taken by the PCA projection's pass over the rows (Euclidean), from
    known rows' features too, or by a pass of its own (pooled)."""
    rng = np.random.default_rng(5)
    train = rng.standard_normal((700, 24)).astype(np.float32)
    train[417, 3] = -37.5  # the largest magnitude, negative, in a later block
    index = build_index(train, metric, None, locality=locality)
    assert index.train_scale == 37.5
    if metric == "euclidean":
        basis = _pruning._orthonormal_basis(train, 16)
        positions = np.array([417, 2, 650])
        sample = build_index(train[positions], metric, None, locality=False, basis=basis, keep_features=True)
        assert sample.train_scale == 37.5
        known = build_index(train, metric, None, locality=locality, basis=basis, known=(positions, sample.features))
        assert known.train_scale == 37.5


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_training_sets_spanning_several_stage1_runs(metric):
    """Stage 1 takes runs of PCA_TRAIN_BLOCK or POOLED_TRAIN_BLOCK rows, the last one shorter."""
    rng = np.random.default_rng(3)
    n_train = 2 * max(PCA_TRAIN_BLOCK, POOLED_TRAIN_BLOCK) + 77
    centres = rng.random((12, 36))
    train = (centres[rng.integers(0, 12, n_train)] + 0.05 * rng.standard_normal((n_train, 36))).astype(np.float32)
    queries = (centres[rng.integers(0, 12, 40)] + 0.05 * rng.standard_normal((40, 36))).astype(np.float32)
    counts = assert_same_as_brute(queries, train, metric, None, 5)
    assert counts[:, 1].mean() < 0.5 * n_train


@pytest.mark.parametrize("metric, p", METRICS)
def test_k_equal_to_n_train(metric, p):
    rng = np.random.default_rng(0)
    train = rng.random((40, 16)).astype(np.float32)
    queries = rng.random((7, 16)).astype(np.float32)
    assert_same_as_brute(queries, train, metric, p, 40)


@pytest.mark.parametrize("metric, p", METRICS)
def test_many_duplicates_and_ties(metric, p):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 3, size=(30, 36)).astype(np.float64)
    train = base[rng.integers(0, 30, size=300)]  # every row repeated ~10 times
    queries = np.concatenate([base[:5], rng.integers(0, 3, size=(10, 36)).astype(np.float64)])
    assert_same_as_brute(queries, train, metric, p, 7)


def test_ties_go_to_the_lower_training_index_whatever_the_stored_order():
    """The index stores the rows grouped by locality, not by training index:
    exact duplicates stored out of order must still tie to the lower index."""
    rng = np.random.default_rng(2)
    base = rng.integers(0, 3, size=(40, 36)).astype(np.float32)
    train = base[rng.integers(0, 40, size=400)]  # every row repeated ~10 times
    index = build_index(train, "euclidean", None)
    assert np.any(np.diff(index.row_ids) < 0)
    np.testing.assert_array_equal(index.rows, train[index.row_ids])
    for metric in ("euclidean", "manhattan"):
        assert_same_as_brute(base[:10], train, metric, None, 12)


def test_rows_and_queries_are_grouped_by_locality():
    """Shuffled rows of four distant clusters are stored, and searched, a
    cluster at a time: each locality group lies within one cluster."""
    rng = np.random.default_rng(4)
    centres = 10 * rng.standard_normal((4, 30))
    train_labels, query_labels = rng.integers(0, 4, 2000), rng.integers(0, 4, 300)
    train = (centres[train_labels] + rng.standard_normal((2000, 30))).astype(np.float32)
    queries = (centres[query_labels] + rng.standard_normal((300, 30))).astype(np.float32)
    index = build_index(train, "euclidean", None)
    assert np.count_nonzero(np.diff(train_labels[index.row_ids])) <= _pruning.LOCALITY_CLUSTERS - 1
    order = _pruning._query_order(queries, index, n_threads=2)
    np.testing.assert_array_equal(np.sort(order), np.arange(300))
    assert np.count_nonzero(np.diff(query_labels[order])) <= _pruning.LOCALITY_CLUSTERS - 1
    # Without locality, the index keeps the training set itself, in order.
    plain = build_index(train, "euclidean", None, locality=False)
    assert plain.rows is train and plain.centres is None
    np.testing.assert_array_equal(_pruning._query_order(queries, plain, n_threads=2), np.arange(300))


@pytest.mark.parametrize(
    "n_queries, n_train, n_threads, largest, expected",
    [
        (2000, 10_000, 2, 512, 334),  # bounds limit 419: 5 tasks, rounded up to 6
        (2000, 10_000, 2, 128, 125),  # 16 tasks
        (2000, 50_000, 2, 512, 77),  # bounds limit 83: 25 tasks, rounded up to 26
        (10, 10_000, 4, 512, 2),  # two tasks a thread
        (1, 10, 1, 128, 1),
    ],
)
def test_pruned_tasks_are_balanced_across_threads(n_queries, n_train, n_threads, largest, expected):
    block = _pruning.pruned_query_block(n_queries, n_train, n_threads, largest)
    assert block == expected
    assert block <= largest and 4 * block * n_train <= _pruning.PRUNED_BOUNDS_BYTES


@pytest.mark.parametrize(
    "n_train, expected",
    [
        (10_000, 16),  # 640 KiB of float32 bounds: 16.4 queries, a multiple of BLOCK_QUERIES below
        (1_000, 160),
        (50_000, 4),  # 3.3 queries: never fewer than BLOCK_QUERIES
        (10**7, 4),
    ],
)
def test_bounds_sub_blocks_fit_the_cache_budget(n_train, expected):
    size = _pruning.bounds_block_queries(n_train)
    assert size == expected and size % BLOCK_QUERIES == 0
    assert size == BLOCK_QUERIES or 4 * size * n_train <= _pruning.BOUNDS_BLOCK_BYTES


@pytest.mark.parametrize("metric, p", METRICS)
def test_tasks_split_in_sub_blocks_equal_brute_force(digits, monkeypatch, metric, p):
    """Sub-blocks of BLOCK_QUERIES queries, the last one shorter (and padded
    for the stage-1 product), give brute force's neighbours and radius
    neighbours."""
    X_train, _, X_val = digits
    queries = X_val[:45]
    monkeypatch.setattr(_pruning, "BOUNDS_BLOCK_BYTES", 4 * X_train.shape[0] * BLOCK_QUERIES)
    assert _pruning.bounds_block_queries(X_train.shape[0]) == BLOCK_QUERIES
    assert_same_as_brute(queries, X_train, metric, p, 5)
    index = build_index(X_train, metric, p)
    rdist, _ = search(queries, X_train, 5, metric, p)
    radius = float(np.median(rdist[:, -1]))
    rdist, rows, offsets = pruned_radius_search(queries, X_train, index, radius, sort_distances=True)
    brute_rdist, brute_rows, brute_offsets = radius_search(queries, X_train, radius, metric, p, sort_distances=True)
    np.testing.assert_array_equal(offsets, brute_offsets)
    np.testing.assert_array_equal(rows, brute_rows)
    np.testing.assert_array_equal(rdist, brute_rdist)


@settings(max_examples=40, deadline=None)
@given(
    n_train=st.integers(1, 60),
    n_features=st.sampled_from([1, 3, 16, 25, 40]),
    n_queries=st.integers(1, 8),
    metric_index=st.integers(0, len(METRICS) - 1),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_property_equal_to_brute_force(n_train, n_features, n_queries, metric_index, seed, data):
    rng = np.random.default_rng(seed)
    k = data.draw(st.integers(1, n_train))
    train = rng.integers(-2, 3, size=(n_train, n_features)).astype(np.float64)
    train[rng.integers(0, n_train, size=n_train // 2)] = train[0]
    queries = rng.integers(-2, 3, size=(n_queries, n_features)).astype(np.float64)
    metric, p = METRICS[metric_index]
    assert_same_as_brute(queries, train, metric, p, k)


@pytest.fixture(scope="module")
def digits_2000():
    """Enough training digits (AUTO_MIN_TRAIN) for ``"auto"`` to probe."""
    X_train, y_train, X_val = load_mnist_split("10000")[:3]
    return X_train[:2500], y_train[:2500], X_val[:300]


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_estimator_algorithms_agree(digits_2000, metric):
    """On digits, ``"auto"`` prunes for both metrics (for Euclidean on the
    basis its probe estimated), with brute force's neighbours and distances."""
    X_train, y_train, X_val = digits_2000
    results = {}
    for algorithm in ("brute", "pruned", "auto"):
        clf = KNNClassifier(n_neighbors=3, metric=metric, algorithm=algorithm).fit(X_train, y_train)
        results[algorithm] = clf.kneighbors(X_val)
        assert clf.fit_method_ == ("brute" if algorithm == "brute" else "pruned")
    for algorithm in ("pruned", "auto"):
        np.testing.assert_array_equal(results[algorithm][1], results["brute"][1])
        np.testing.assert_array_equal(results[algorithm][0], results["brute"][0])


@pytest.mark.parametrize("rank", [3, 40])
def test_basis_is_orthonormal_even_for_rank_deficient_rows(rank):
    """The basis comes from a sample and a single-precision sketch; its last
    QR must still make it orthonormal to float64 rounding, also where the
    rows span fewer dimensions than the basis has columns (Cholesky QR
    fails there and Householder QR takes over)."""
    rng = np.random.default_rng(rank)
    rows = (rng.standard_normal((3000, rank)) @ rng.standard_normal((rank, 200))).astype(np.float32)
    mean, basis = _pruning._orthonormal_basis(rows, 128)
    assert basis.shape == (200, 128) and mean.shape == (200,)
    np.testing.assert_allclose(basis.T @ basis, np.eye(128), atol=1e-13)
    # The leading components span the rows' subspace.
    centred = rows - mean
    leading = basis[:, :rank]
    residual = centred - (centred @ leading) @ leading.T
    assert np.linalg.norm(residual) < 1e-4 * np.linalg.norm(centred)
    queries = rows[:50] + rng.standard_normal((50, 200)).astype(np.float32)
    assert_same_as_brute(queries, rows[:1000], "euclidean", None, 5)


def test_low_level_search_accepts_algorithm(digits):
    X_train, _, X_val = digits
    brute = kneighbors(X_val[:20], X_train, 4, metric="manhattan")
    pruned = kneighbors(X_val[:20], X_train, 4, metric="manhattan", algorithm="pruned")
    np.testing.assert_array_equal(brute[1], pruned[1])
    with pytest.raises(ValueError, match="algorithm"):
        kneighbors(X_val[:2], X_train, 4, algorithm="cover_tree")


def test_auto_falls_back_to_brute_force_where_pruning_cannot_pay():
    rng = np.random.default_rng(0)
    small = rng.standard_normal((100, 8))
    assert choose_algorithm("auto", small, "manhattan", None, 5)[0] == "brute"
    gaussian = rng.standard_normal((3000, 256))  # high intrinsic dimension
    assert choose_algorithm("auto", gaussian, "manhattan", None, 5)[0] == "brute"
    assert choose_algorithm("auto", gaussian, "euclidean", None, 5)[0] == "brute"
    # Euclidean noise stops at the variance check, before any basis or probe.
    assert _pruning.coarse_variance_share(gaussian) < _pruning.AUTO_MIN_COARSE_VARIANCE
    low_rank = rng.standard_normal((3000, 10)) @ rng.standard_normal((10, 256))
    assert _pruning.coarse_variance_share(low_rank) > 0.99
    assert choose_algorithm("pruned", small, "manhattan", None, 5)[0] == "pruned"


def test_auto_keeps_euclidean_brute_force_below_twice_the_stage_one_components():
    """Stage 1 then costs as much as brute force's product: a 12-feature
    Gaussian among 1,000,000 rows took 12 s pruned, 1.9 s brute. The data
    would pass every other check (all their variance is in stage 1)."""
    rng = np.random.default_rng(1)
    for n_features in (12, _pruning.AUTO_MIN_PRUNED_FEATURES - 1):
        rows = rng.standard_normal((3000, n_features)) / np.arange(1, n_features + 1)
        assert _pruning.coarse_variance_share(rows) > 0.99
        assert choose_algorithm("auto", rows, "euclidean", None, 5)[0] == "brute"
    low_rank = rng.standard_normal((3000, 10)) @ rng.standard_normal((10, _pruning.AUTO_MIN_PRUNED_FEATURES))
    assert choose_algorithm("auto", low_rank, "euclidean", None, 5)[0] == "pruned"


def test_huge_values_fall_back_to_exact_search():
    rng = np.random.default_rng(0)
    train = rng.random((50, 10)) * 1e300
    queries = rng.random((5, 10)) * 1e300
    assert_same_as_brute(queries, train, "manhattan", None, 3)


def bound_excess(index, query, stage):
    """Largest (bound - exact distance) / scale of ``query`` against every row of ``index``.

    The bounds as the search takes them: stage 1 from the integer codes,
    then in float32; stage 2 in float64. Positive means a bound failed.
    """
    fine, codes, info = _pca_features(index, query[None, :])
    exact = ((query - index.rows) ** 2).sum(axis=1)  # the index's row order
    scale = info[0, 2] + index.train_info[2]
    if stage == "coarse":
        bounds = np.empty((1, len(index.rows)), dtype=np.float32)
        _pca_coarse_bounds(index.margins[0], codes[:4].view(np.int32), index.train_coarse, info, index.train_terms, bounds)
        bounds = bounds[0]
    else:
        bounds = np.array([
            _pca_stage2_bound(
                0, t, fine, index.train_fine, info, index.train_info, 0, 0.0, index.margins[1], index.margins[3]
            )
            for t in range(len(index.rows))
        ])
    return ((bounds - exact) / scale).max()


@pytest.mark.parametrize("stage", ["coarse", "fine"])
def test_pca_bounds_hold_for_rows_almost_inside_the_subspace(stage):
    """A query whose residual is a tiny fraction of its norm, pointing along a
    training row's residual: the bound then equals the exact distance in
    exact arithmetic, and rounding of the residual (a square root of a
    difference) must not lift it above. A 1e-9 margin failed this."""
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 784))
    index = build_index(train, "euclidean", None)
    n_components = index.n_coarse if stage == "coarse" else index.components.shape[1]
    basis = index.components[:, :n_components]
    worst = -np.inf
    for _ in range(100):
        j = rng.integers(len(train))
        centred = train[j] - index.mean
        residual = centred - basis @ (basis.T @ centred)
        coefficients = rng.normal(size=n_components) * np.linalg.norm(centred) / np.sqrt(n_components)
        size = 10 ** rng.uniform(-10, -6) * np.linalg.norm(coefficients)
        query = index.mean + basis @ coefficients + size * residual / np.linalg.norm(residual)
        worst = max(worst, bound_excess(index, query, stage))
    assert worst <= 0.0, f"a bound exceeded the exact distance by {worst:.2e} of the scale"


@pytest.mark.parametrize("stage", ["coarse", "fine"])
def test_pca_bounds_hold_for_sparse_rows_far_from_the_origin(stage):
    """Rows with few non-zeros are projected through them, less the mean's
    projection (``_pca_project``): rounding then scales with |x| + |mean|,
    not with the centred norm. Rows 1e8 from the origin and about 1e-4
    apart, in a subspace the basis spans (so that the bound is the exact
    distance in exact arithmetic), must keep their bounds below the exact
    distances; with the centred norm as their margin's weight, they
    exceeded them by about 1.3e-4 of the scale (1e6 and 1e-3 did not show
    it)."""
    rng = np.random.default_rng(3)
    n_features, n_active = 784, 40
    train = np.zeros((300, n_features))
    train[:, :n_active] = 1e8 + rng.normal(size=(300, n_active)) * 1e-4
    index = build_index(train, "euclidean", None)
    assert sparse_projection_limit(n_features) >= n_active  # the sparse path is the one under test
    worst = -np.inf
    for _ in range(100):
        query = train[rng.integers(len(train))].copy()
        query[:n_active] += rng.normal(size=n_active) * 10 ** rng.uniform(-7, -4)
        worst = max(worst, bound_excess(index, query, stage))
    assert worst <= 0.0, f"a bound exceeded the exact distance by {worst:.2e} of the scale"


@pytest.mark.parametrize("share", [0.01, 0.3, 0.9])
def test_sparse_and_dense_projections_agree(share):
    """Both ways of ``_pca_project`` give the same projections up to rounding,
    and the search on them equals brute force, whichever way each row took."""
    rng = np.random.default_rng(4)
    rows = rng.random((120, 64)) * (rng.random((120, 64)) < share)
    index = build_index(rows, "euclidean", None)
    features = {}
    for limit in (-1, rows.shape[1]):  # every row dense, then every row sparse
        fine = np.empty((len(rows), index.components.shape[1]), dtype=np.int16)
        codes = np.zeros((len(rows) + PANEL_ROWS, 2 * CODE_PAIRS), dtype=np.int16)
        info = np.empty((len(rows), PCA_INFO_COLUMNS))
        _pca_project(rows, np.arange(len(rows)), index.mean, index.components, index.n_coarse, limit, fine, codes, info)
        features[limit] = fine, codes, info
    (dense_fine, dense_codes, dense_info), (sparse_fine, sparse_codes, sparse_info) = features.values()
    assert np.abs(dense_fine.astype(np.int32) - sparse_fine).max() <= 1
    assert np.abs(dense_codes.astype(np.int32) - sparse_codes).max() <= 1
    same = [0, 4, 6, 7, 9]  # squared norms of the projections, the codes' scales, the largest value
    np.testing.assert_allclose(sparse_info[:, same], dense_info[:, same], rtol=1e-9)
    # The margin's weight of the sparse path bounds (|x| + |mean|)^2.
    weight = (np.linalg.norm(rows, axis=1) + np.linalg.norm(index.mean)) ** 2
    assert np.all(sparse_info[:, 2] >= weight * (1 - 1e-12))
    np.testing.assert_allclose(dense_info[:, 2], ((rows - index.mean) ** 2).sum(axis=1), rtol=1e-12)
    queries = rng.random((30, 64)) * (rng.random((30, 64)) < share)
    rdist, indices = pruned_search(queries, rows, index, 5)
    brute_rdist, brute_indices = search(queries, rows, 5, "euclidean", None)
    np.testing.assert_array_equal(indices, brute_indices)
    np.testing.assert_array_equal(rdist, brute_rdist)


def test_single_precision_pooled_bounds_hold_for_near_duplicates():
    """Manhattan's stage 1 runs on float32 pooled features. A query equal to
    a training row but for one feature moved by a hair has a pooled distance
    equal to its exact one, so the rounding allowance must keep the bound
    below it however small the move."""
    rng = np.random.default_rng(0)
    train = rng.uniform(0, 1, size=(200, 64)) * rng.choice([1.0, 1e3], size=(200, 1))
    index = build_index(train, "manhattan", None)
    assert index.train_coarse.dtype == np.float32 and index.margins[2] > 0
    queries = train[rng.integers(0, len(train), size=60)].copy()
    columns = rng.integers(0, train.shape[1], size=len(queries))
    queries[np.arange(len(queries)), columns] += 10.0 ** rng.uniform(-9, -3, size=len(queries))
    coarse = _pool(queries, index.coarse_groups)
    query_info = np.zeros((len(queries), 4))
    query_info[:, 0] = np.abs(coarse).sum(axis=1)
    bounds = np.empty((len(queries), len(train)), dtype=np.float32)
    _pooled_coarse_bounds(
        MANHATTAN, 0.0, index.margins[0], index.margins[2], coarse.astype(np.float32), index.train_coarse,
        query_info, index.train_info, bounds,
    )
    exact = np.abs(queries[:, None, :] - index.rows[None, :, :]).sum(axis=2)  # the index's row order
    assert np.all(bounds <= exact)
    # Without the allowance, some bound would exceed its exact distance.
    tight = bounds + index.margins[2] * (query_info[:, :1] + index.train_info[0][None, :])
    assert np.any(tight > exact)
    # Stage 2, on float32 fine features summed in float64.
    assert index.train_fine.dtype == np.float32 and index.margins[3] > 0
    fine = _pool(queries, index.fine_groups)
    query_info[:, 1] = np.abs(fine).sum(axis=1)
    fine32 = fine.astype(np.float32)
    fine_bounds = np.array([
        [
            _manhattan_stage2_bound(
                i, j, fine32, index.train_fine, query_info, index.train_info, MANHATTAN, 0.0, index.margins[1],
                index.margins[3],
            )
            for j in range(len(train))
        ]
        for i in range(len(queries))
    ])
    assert np.all(fine_bounds <= exact)
    tight = fine_bounds + index.margins[3] * (query_info[:, 1:2] + index.train_info[1][None, :])
    assert np.any(tight > exact)


@pytest.mark.parametrize("metric, size", [("manhattan", 1e37), ("euclidean", 1e18)])
def test_queries_too_large_for_the_float32_index_fall_back_to_brute_force(metric, size):
    """Sums (Manhattan) or products (Euclidean) beyond float32, not float64."""
    rng = np.random.default_rng(0)
    train = rng.random((300, 16))
    index = build_index(train, metric, None)
    # Euclidean: the stage-1 bounds' terms; Manhattan: the pooled rows.
    assert (index.train_terms if metric == "euclidean" else index.train_fine).dtype == np.float32
    queries = rng.random((7, 16)) * size
    rdist, indices, counts = pruned_search(queries, train, index, 3, return_counts=True)
    brute_rdist, brute_indices = search(queries, train, 3, metric, None)
    np.testing.assert_array_equal(indices, brute_indices)
    np.testing.assert_array_equal(rdist, brute_rdist)
    assert np.all(counts == len(train))


@pytest.mark.parametrize("n_groups", [1, 2, 7])
def test_strided_minima_for_any_number_of_runs(n_groups):
    """The minima alternate between two arrays, one pass per two runs and
    one for the tail: whatever the number of passes, they end in ``out``,
    and each group's minimum is that of its rows."""
    rng = np.random.default_rng(n_groups)
    for n_rows in range(n_groups, 7 * n_groups + 1):
        row = rng.standard_normal(n_rows).astype(np.float32)
        minima = np.full(n_groups, np.nan, dtype=np.float32)
        _strided_minima(row, minima, np.full(n_groups, np.nan, dtype=np.float32))
        np.testing.assert_array_equal(minima, [row[g::n_groups].min() for g in range(n_groups)])


@pytest.mark.parametrize("n_train", [1, SEED_GROUP_ROWS - 3, 10 * SEED_GROUP_ROWS + 5])
@pytest.mark.parametrize("n_distinct", [1, 3, 10_000])
def test_seeds_are_rows_of_smallest_bound(n_train, n_distinct):
    """Whatever the ties and however many seeds (up to every row), the seeds
    are distinct rows whose bounds are the smallest ones."""
    rng = np.random.default_rng(n_train + n_distinct)
    row = rng.integers(0, n_distinct, n_train).astype(np.float32) - 2.5
    minima = np.empty(-(-n_train // SEED_GROUP_ROWS), dtype=np.float32)
    _strided_minima(row, minima, np.empty_like(minima))
    np.testing.assert_array_equal(minima, [row[g :: len(minima)].min() for g in range(len(minima))])
    for n_seeds in sorted({1, min(n_train, 2), min(n_train, 50), n_train}):
        seed_bounds = np.empty(n_train, dtype=np.float32)
        seed_rows = np.empty(n_train, dtype=np.int64)
        _smallest_bounds(row, minima, n_seeds, seed_bounds, seed_rows)
        seeds = seed_rows[:n_seeds]
        assert len(set(seeds)) == n_seeds
        np.testing.assert_array_equal(np.sort(row[seeds]), np.sort(row)[:n_seeds])
        # Their bounds, in the same order: the search skips seeds by them.
        np.testing.assert_array_equal(seed_bounds[:n_seeds], row[seeds])


def test_float32_thresholds_never_fall_below_the_float64_one():
    """Stage-1 listing compares float32 bounds with a float32 threshold: it
    must round up (no bound within the float64 threshold is missed), stay
    within a few float32 steps of it, and stay below SKIP, the bound of rows
    already computed, however large."""
    rng = np.random.default_rng(0)
    values = np.concatenate([
        [0.0, 1e-45, 1e-38, 1.0, FLOAT32_LIMIT, 2 * FLOAT32_LIMIT, 1e300],
        10.0 ** rng.uniform(-30, 38, 2000),
        np.nextafter(np.float32(rng.random(200)).astype(np.float64), 2.0),  # just above a float32
    ])
    for value in values:
        threshold = _float32_threshold(value)
        assert threshold < SKIP
        if value >= FLOAT32_LIMIT:
            assert threshold == np.float32(FLOAT32_LIMIT)
        else:
            assert np.float64(threshold) >= value
            # Lists at most the rows within 2**-21 of the threshold besides
            # those within it (1e-45: float32's smallest step, for subnormals).
            assert np.float64(threshold) <= value * (1 + 2.0**-21) + 1e-45


def test_prefetch_is_a_hint_with_no_effect():
    """The prefetch intrinsics (into L1 or into L2) compile for 2-D arrays of
    any dtype and layout and leave data and results alone; they refuse what
    is not a 2-D array."""

    @njit
    def prefetch_then_sum(array, to_l2):
        for row in range(array.shape[0]):
            _prefetch_row(array, row, 64, to_l2)
        return array.sum()

    for array in (np.arange(12.0).reshape(3, 4), np.ones((5, 300), np.float32), np.ones((4, 6), np.int8)[:, ::2]):
        for to_l2 in (False, True):
            before = array.copy()
            assert prefetch_then_sum(array, to_l2) == before.sum()
            np.testing.assert_array_equal(array, before)

    @njit
    def prefetch_vector(vector):
        _prefetch_row(vector, 0, 1)

    with pytest.raises(Exception, match="(?i)typing|resolution|invalid"):
        prefetch_vector(np.ones(3))


@pytest.mark.parametrize("magnitude", [0.0, 1e-30, 1e-3, 1.0, 1e30])
def test_codes_bound_the_stage1_cross_terms(magnitude):
    """_quantise's codes: each coordinate within CODE_ROUNDING steps, norms
    below 2**15 (no int32 overflow in their products), and every cross term
    within the error terms of its integer product."""
    rng = np.random.default_rng(int(magnitude > 1))
    m = 48
    projections = rng.normal(size=(60, m)) * magnitude * rng.uniform(0, 1, size=(60, 1))
    projections[1, 1:] = 0.0  # all of the norm on one coordinate
    projections[2] = projections[3] * (1 + 1e-15)  # near duplicates
    codes = np.empty((len(projections), m), dtype=np.int16)
    scales, errors = np.empty(len(projections)), np.empty(len(projections))
    for i, x in enumerate(projections):
        scales[i], errors[i] = _quantise(x, float(x @ x), codes[i])
    assert np.all(np.linalg.norm(codes.astype(np.float64), axis=1) < 2**15)
    assert np.all(np.abs(projections - scales[:, None] * codes) <= CODE_ROUNDING * scales[:, None] * (1 + 1e-12))
    exact = projections @ projections.T
    integer = codes.astype(np.int64) @ codes.astype(np.int64).T
    estimate = scales[:, None] * scales[None, :] * integer
    allowed = scales[None, :] * errors[:, None] + scales[:, None] * errors[None, :]
    assert np.all(np.abs(exact - estimate) <= allowed * (1 + 1e-9) + 1e-300)
    if magnitude == 0.0:
        assert not codes.any() and not scales.any() and not errors.any()
