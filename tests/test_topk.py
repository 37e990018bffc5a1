"""Tests for fastknn._kernels.topk: the (value, index) max-heap and the
exact re-ranking of approximate distances (driven through the search driver)."""

import numpy as np
import pytest

from fastknn import _search
from fastknn._kernels.distances import EUCLIDEAN
from fastknn._kernels.topk import (
    GEMM_TRAIN_BLOCK,
    _heap_push,
    _heap_replace_top,
    _is_worse,
    _keep_smallest,
)

import naive


def assert_max_heap(values, indices, size):
    """Every parent ranks after (or equal to) its children by (value, index)."""
    for child in range(1, size):
        parent = (child - 1) // 2
        assert (values[parent], indices[parent]) >= (values[child], indices[child]), (
            f"heap order broken between positions {parent} and {child}: "
            f"{list(zip(values[:size], indices[:size]))}"
        )


def test_is_worse_orders_by_value_then_index():
    assert _is_worse(2.0, 0, 1.0, 5)
    assert not _is_worse(1.0, 5, 2.0, 0)
    assert _is_worse(1.0, 3, 1.0, 2)
    assert not _is_worse(1.0, 2, 1.0, 3)
    assert not _is_worse(1.0, 2, 1.0, 2)
    assert _is_worse(np.inf, 0, 1e300, 9)


@pytest.mark.parametrize("seed", range(3))
def test_heap_push_keeps_max_heap(seed):
    rng = np.random.default_rng(seed)
    n_items = 40
    # Few distinct values, so that equal values (ordered by index) abound.
    items_values = rng.integers(0, 4, size=n_items).astype(np.float64)
    items_indices = rng.permutation(n_items).astype(np.int64)
    values = np.full(n_items, np.nan)
    indices = np.full(n_items, -1, dtype=np.int64)
    for size, (value, index) in enumerate(zip(items_values, items_indices)):
        _heap_push(values, indices, size, value, index)
        assert_max_heap(values, indices, size + 1)
        top = max(zip(items_values[: size + 1], items_indices[: size + 1]))
        assert (values[0], indices[0]) == top
    assert sorted(zip(values, indices)) == sorted(zip(items_values, items_indices))


@pytest.mark.parametrize("n_keep", [1, 2, 7, 40])
@pytest.mark.parametrize("seed", range(3))
def test_heap_replace_top_keeps_the_smallest(n_keep, seed):
    """Streaming items through a bounded heap keeps the n_keep smallest by
    (value, index), the way the re-ranking uses it."""
    rng = np.random.default_rng(seed)
    n_items = 40
    items_values = rng.integers(0, 5, size=n_items).astype(np.float64)
    items_indices = rng.permutation(n_items).astype(np.int64)
    values = np.empty(n_keep)
    indices = np.empty(n_keep, dtype=np.int64)
    size = 0
    for value, index in zip(items_values, items_indices):
        if size < n_keep:
            _heap_push(values, indices, size, value, index)
            size += 1
        elif _is_worse(values[0], indices[0], value, index):
            _heap_replace_top(values, indices, size, value, index)
        assert_max_heap(values, indices, size)
    expected = sorted(zip(items_values, items_indices))[:n_keep]
    assert sorted(zip(values, indices)) == expected


@pytest.mark.parametrize("n_distinct", [2, 1000])
@pytest.mark.parametrize("m", [1, 7, 50, 300])
def test_keep_smallest_moves_the_m_smallest_first(n_distinct, m):
    rng = np.random.default_rng(m)
    size = 300
    # Few distinct values: the partition must cope with long runs of ties.
    values = rng.integers(0, n_distinct, size).astype(np.float32)
    indices = np.arange(size, dtype=np.int64)
    original = values.copy()
    largest = _keep_smallest(values, indices, size, m)
    assert sorted(values[:m]) == sorted(original)[:m]
    assert largest == max(values[:m])
    assert (values[m:] >= largest).all()
    np.testing.assert_array_equal(original[indices], values)  # indices travel with their values
    assert sorted(indices) == list(range(size))


def test_heap_replace_top_on_partial_heap():
    """``size`` bounds the heap: items beyond it are never read or moved."""
    values = np.array([5.0, 3.0, 4.0, -1.0])
    indices = np.array([0, 1, 2, 3], dtype=np.int64)
    _heap_replace_top(values, indices, 3, 1.0, 7)
    assert_max_heap(values, indices, 3)
    assert values[3] == -1.0 and indices[3] == 3
    assert sorted(zip(values[:3], indices[:3])) == [(1.0, 7), (3.0, 1), (4.0, 2)]


def perturbed_search(monkeypatch, queries, train, n_neighbors, metric, p, relative, absolute, seed):
    """Run the search driver with its fast pass replaced by adversarial values.

    The fast distances are the exact ones moved anywhere within the error
    bound the driver declares, which is widened to ``(relative, absolute)``
    so that the re-ranking has real work to do. (Overflow in the fast pass is
    tested on real overflowing data in test_neighbors.py; the Euclidean
    cross terms, computed by ``_search.euclidean_query_block``, are perturbed in
    ``perturbed_cross_select`` below.)
    """
    rng = np.random.default_rng(seed)
    calls = []

    def fake_rdist_tiles(chunk, train_rows, metric_id, power, integer_power, out):
        calls.append("tiles")
        exact = naive.rdist(chunk, train_rows, metric, p)
        low = np.maximum((exact - absolute) / (1 + relative), 0.0)
        high = (exact + absolute) / (1 - relative)
        out[...] = rng.uniform(low, high)

    monkeypatch.setattr(_search, "rounding_error_bound", lambda *args: (relative, absolute))
    monkeypatch.setattr(_search, "_rdist_tiles", fake_rdist_tiles)
    metric_name, power = _search.resolve_metric(metric, p)
    result = _search.search(queries, train, n_neighbors, metric_name, power)
    assert calls, "the driver no longer runs its fast pass through _rdist_tiles: update the fake"
    return result


def perturbed_cross_select(queries, train, n_neighbors, relative, absolute, seed):
    """The selection on Euclidean cross terms moved anywhere within the bound.

    The cross term ``q.t`` may be off by ``(r (|q|^2 + |t|^2) + a) / 2``, which
    moves the squared distance by at most ``r (|q|^2 + |t|^2) + a``: the bounds
    the Euclidean search (``_search.euclidean_query_block``) hands to the same
    scan and re-ranking.
    """
    rng = np.random.default_rng(seed)
    query_sqnorms = (queries**2).sum(axis=1)
    train_sqnorms = (train**2).sum(axis=1)
    scale = query_sqnorms[:, None] + train_sqnorms[None, :]
    cross = queries @ train.T + 0.49 * (relative * scale + absolute) * rng.uniform(-1, 1, size=scale.shape)
    rdist = np.empty((len(queries), n_neighbors))
    indices = np.empty((len(queries), n_neighbors), dtype=np.int64)
    _search.approx_query_block(
        0, len(queries), np.ascontiguousarray(cross), queries, train,
        train_sqnorms * (1 - relative) - absolute, -2.0, train_sqnorms * (1 + relative) + absolute, -2.0,
        2 * relative * query_sqnorms, EUCLIDEAN, 2.0, rdist, indices,
    )
    return rdist, indices


@pytest.mark.parametrize("metric, p", [("euclidean", 2), ("manhattan", 1), ("chebyshev", np.inf), ("minkowski", 3)])
@pytest.mark.parametrize("n_neighbors", [1, 4, 30])
def test_reranking_is_exact_whatever_the_error_within_the_bound(monkeypatch, metric, p, n_neighbors):
    """Exact neighbours and distances, ties by lower index, from approximate
    distances with errors up to the bound (integer data: ties abound)."""
    rng = np.random.default_rng(n_neighbors)
    train = rng.integers(-2, 3, size=(30, 3)).astype(np.float64)
    queries = rng.integers(-2, 3, size=(25, 3)).astype(np.float64)
    if metric == "euclidean":
        rdist, indices = perturbed_cross_select(queries, train, n_neighbors, 0.2, 0.5, seed=1)
    else:
        rdist, indices = perturbed_search(monkeypatch, queries, train, n_neighbors, metric, p, 0.2, 0.5, seed=1)
    expected_rdist, expected_indices = naive.sorted_neighbors(queries, train, metric, p)
    np.testing.assert_array_equal(indices, expected_indices[:, :n_neighbors])
    np.testing.assert_array_equal(rdist, expected_rdist[:, :n_neighbors])


@pytest.mark.parametrize("n_neighbors", [1, 7, 2 * GEMM_TRAIN_BLOCK + 500])
def test_gemm_blocks_ties_and_candidate_growth(n_neighbors):
    """Ties across several ``GEMM_TRAIN_BLOCK`` blocks: candidate lists are
    dropped to the threshold and widened, and the order stays exact."""
    rng = np.random.default_rng(n_neighbors)
    n_train = 2 * GEMM_TRAIN_BLOCK + 700
    # Four distinct points, repeated: every query ties with a quarter of the rows.
    points = rng.integers(-3, 4, size=(4, 3)).astype(np.float32)
    train = points[rng.integers(0, 4, size=n_train)]
    queries = np.ascontiguousarray(np.vstack([points, rng.integers(-3, 4, size=(9, 3))]), dtype=np.float32)
    rdist, indices = _search.search(queries, train, n_neighbors, "euclidean", None)
    expected_rdist, expected_indices = naive.sorted_neighbors(queries, train, "euclidean")
    np.testing.assert_array_equal(indices, expected_indices[:, :n_neighbors])
    np.testing.assert_array_equal(rdist, expected_rdist[:, :n_neighbors])


def test_gemm_path_exact_with_widened_bounds(monkeypatch):
    """With a bound far wider than the real error, many rows become
    candidates and are dropped as the threshold falls: still exact."""
    monkeypatch.setattr(_search, "rounding_error_bound", lambda *args: (0.05, 0.5))
    rng = np.random.default_rng(0)
    train = rng.standard_normal((GEMM_TRAIN_BLOCK * 3 + 11, 5)).astype(np.float32)
    queries = rng.standard_normal((40, 5)).astype(np.float32)
    rdist, indices = _search.search(queries, train, 5, "euclidean", None)
    expected_rdist, expected_indices = naive.sorted_neighbors(queries, train, "euclidean")
    np.testing.assert_array_equal(indices, expected_indices[:, :5])
    # float64 sums in another order: equal to the last bits only.
    np.testing.assert_allclose(rdist, expected_rdist[:, :5], rtol=1e-12)
