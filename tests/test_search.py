"""Tests for the search driver fastknn._search: metric resolution, dtypes,
threads, chunking and memory."""

import math
import threading
import time
import tracemalloc

import naive
import numba
import numpy as np
import pytest

from fastknn import _search
from fastknn._radius import radius_search
from fastknn._search import (
    as_search_dtype,
    chunk_size,
    effective_n_threads,
    rdist_to_dist,
    resolve_metric,
    rounding_error_bound,
    search,
    thread_limit,
)


@pytest.mark.parametrize(
    "metric, p, expected",
    [
        ("euclidean", 2, ("euclidean", None)),
        ("l2", 7, ("euclidean", None)),  # p is ignored by the named metrics
        ("manhattan", 2, ("manhattan", None)),
        ("cityblock", 2, ("manhattan", None)),
        ("l1", 2, ("manhattan", None)),
        ("chebyshev", 2, ("chebyshev", None)),
        ("infinity", 2, ("chebyshev", None)),
        ("minkowski", 1, ("manhattan", None)),
        ("minkowski", 1.0, ("manhattan", None)),
        ("minkowski", 2, ("euclidean", None)),
        ("minkowski", np.float32(2), ("euclidean", None)),
        ("minkowski", np.inf, ("chebyshev", None)),
        ("minkowski", 3, ("minkowski", 3.0)),
        ("minkowski", 1.5, ("minkowski", 1.5)),
    ],
)
def test_resolve_metric(metric, p, expected):
    name, power = resolve_metric(metric, p)
    assert (name, power) == expected
    assert power is None or type(power) is float


@pytest.mark.parametrize(
    "metric, p, match",
    [
        ("hamming", 2, "metric must be one of"),
        ("Euclidean", 2, "metric must be one of"),
        (None, 2, "metric must be one of"),
        ("minkowski", 0.5, "p must be a real number >= 1"),
        ("minkowski", -np.inf, "p must be a real number >= 1"),
        ("minkowski", np.nan, "p must be a real number >= 1"),
        ("minkowski", None, "p must be a real number >= 1"),
        ("minkowski", "2", "p must be a real number >= 1"),
        ("minkowski", True, "p must be a real number >= 1"),
    ],
)
def test_resolve_metric_errors(metric, p, match):
    with pytest.raises(ValueError, match=match):
        resolve_metric(metric, p)


def test_effective_n_threads():
    available = numba.config.NUMBA_NUM_THREADS
    assert effective_n_threads(None) is None
    assert effective_n_threads(1) == 1
    assert effective_n_threads(-1) == available
    assert effective_n_threads(10**6) == available
    assert effective_n_threads(-(10**6)) == 1
    if available >= 2:
        assert effective_n_threads(-2) == available - 1


def test_thread_limit_sets_then_restores():
    before = numba.get_num_threads()
    with thread_limit(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with thread_limit(None):
        assert numba.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"):
        with thread_limit(1):
            raise RuntimeError("boom")
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("n_threads", [1, 2, 8])
def test_run_query_blocks_calls_every_block_once(n_threads):
    calls = []
    _search.run_query_blocks(lambda first, last, tag: calls.append((first, last, tag)), 103, 10, n_threads, "x")
    assert sorted(calls) == [(first, min(first + 10, 103), "x") for first in range(0, 103, 10)]


def test_run_query_blocks_raises_what_a_block_raised():
    def kernel(first, last):
        if first == 30:
            raise ValueError("block 30")

    with pytest.raises(ValueError, match="block 30"):
        _search.run_query_blocks(kernel, 100, 10, 4)


def test_run_query_blocks_keeps_its_helper_threads():
    """The helpers are the same threads from call to call, at most the pool's ``NUMBA_NUM_THREADS - 1``
    (a pool per call started new ones each time)."""

    def helpers():
        threads = set()

        def kernel(first, last):
            time.sleep(0.005)  # long enough for a helper to take blocks too
            threads.add(threading.current_thread())

        _search.run_query_blocks(kernel, 200, 10, 2)
        return threads - {threading.current_thread()}

    threads_before = threading.active_count()
    seen = [helpers() for _ in range(6)]
    assert all(seen)
    assert len(set().union(*seen)) <= max(1, numba.config.NUMBA_NUM_THREADS - 1)
    assert all(thread.name.startswith("fastknn") for thread in set().union(*seen))
    assert threading.active_count() <= threads_before + max(1, numba.config.NUMBA_NUM_THREADS - 1)


def test_nested_run_query_blocks_finish_when_every_helper_is_busy():
    """Blocks that call run_query_blocks themselves, more than the pool has threads: a call that waited for
    helpers queued behind its own would never return."""
    found = []

    def inner(first, last, outer_first):
        found.extend((outer_first, i) for i in range(first, last))

    def outer(first, last):
        for outer_first in range(first, last):
            _search.run_query_blocks(inner, 20, 3, 8, outer_first)

    caller = threading.Thread(target=_search.run_query_blocks, args=(outer, 16, 1, 8), daemon=True)
    caller.start()
    caller.join(timeout=60)
    assert not caller.is_alive()
    assert sorted(found) == [(o, i) for o in range(16) for i in range(20)]


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs NUMBA_NUM_THREADS >= 2")
def test_thread_limit_restores_a_non_default_setting():
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with thread_limit(-1):
            assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize(
    "dtype, expected",
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.uint8, np.float32),
        (np.int8, np.float32),
        (np.int16, np.float32),
        (np.uint16, np.float32),
        (np.bool_, np.float32),
        (np.int32, np.float64),
        (np.int64, np.float64),
        (np.float16, np.float64),
    ],
)
def test_as_search_dtype(dtype, expected):
    array = np.asfortranarray(np.arange(12).reshape(3, 4).astype(dtype))
    out = as_search_dtype(array)
    assert out.dtype == expected
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, array.astype(np.float64))


def test_as_search_dtype_does_not_copy_what_it_keeps():
    array = np.ones((3, 2), dtype=np.float32)
    assert as_search_dtype(array) is array


def test_chunk_size():
    assert chunk_size(1000, 100, 8, working_memory=8000) == 10
    assert chunk_size(1000, 100, 8, working_memory=8799) == 10
    assert chunk_size(5, 100, 8, working_memory=10**9) == 5  # never more than the queries
    assert chunk_size(1000, 10**6, 8, working_memory=1) == 1  # never less than one
    assert chunk_size(10**6, 10**4, 4) == _search.WORKING_MEMORY_BYTES // (10**4 * 4)


def test_rounding_error_bound():
    rel32, abs32 = rounding_error_bound(np.dtype(np.float32), 784, "euclidean", 0.0)
    rel64, abs64 = rounding_error_bound(np.dtype(np.float64), 784, "euclidean", 0.0)
    assert 0 < rel64 < rel32 < 1e-3
    assert 0 < abs64 < abs32
    assert rounding_error_bound(np.dtype(np.float32), 10, "minkowski", 7.0)[0] > rel32 * 10 / 784
    assert rounding_error_bound(np.dtype(np.float32), 1000, "manhattan", 0.0)[0] > rel32


@pytest.mark.parametrize("metric, p", [("euclidean", None), ("minkowski", 2.5)])
def test_rdist_to_dist_in_place(metric, p):
    rdist = np.array([[0.0, 4.0, 9.0]])
    out = rdist_to_dist(rdist, metric, p)
    assert out is rdist
    expected = [0.0, 2.0, 3.0] if metric == "euclidean" else [0.0, 4.0 ** (1 / 2.5), 9.0 ** (1 / 2.5)]
    np.testing.assert_allclose(out[0], expected, rtol=1e-15)


def test_rdist_to_dist_leaves_manhattan_and_chebyshev():
    for metric in ("manhattan", "chebyshev"):
        rdist = np.array([[0.0, 4.0]])
        np.testing.assert_array_equal(rdist_to_dist(rdist, metric, None), [[0.0, 4.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_search_without_queries(dtype):
    train = np.ones((4, 3), dtype=dtype)
    rdist, indices = search(np.empty((0, 3), dtype=dtype), train, 2, "euclidean", None)
    assert rdist.shape == indices.shape == (0, 2)
    assert rdist.dtype == np.float64 and indices.dtype == np.int64


@pytest.mark.parametrize("metric, p", [("euclidean", None), ("manhattan", None), ("minkowski", 3.0)])
def test_search_returns_exact_reduced_distances(integer_split, metric, p):
    X_train, _, X_test, _ = integer_split
    rdist, indices = search(np.ascontiguousarray(X_test), X_train, 7, metric, p)
    expected_rdist, expected_indices = naive.sorted_neighbors(X_test, X_train, metric, p or 2)
    np.testing.assert_array_equal(indices, expected_indices[:, :7])
    np.testing.assert_array_equal(rdist, expected_rdist[:, :7])


@pytest.fixture
def chunk_spy(monkeypatch):
    """Count the chunks the driver hands to the selection kernel (which
    takes each chunk in blocks of queries: the first block records it)."""
    calls = []
    kernel = _search.approx_query_block

    def spy(first, last, approx, *args):
        if first == 0:
            calls.append(approx.shape)
        return kernel(first, last, approx, *args)

    monkeypatch.setattr(_search, "approx_query_block", spy)
    return calls


@pytest.mark.parametrize("metric, p", [("manhattan", None), ("chebyshev", None), ("minkowski", 1.5)])
def test_small_working_memory_splits_queries_into_chunks(monkeypatch, chunk_spy, integer_split, metric, p):
    """The working-memory constant is read at search time; results do not
    depend on the chunking."""
    X_train, _, X_test, _ = integer_split
    queries = np.ascontiguousarray(X_test)
    expected = search(queries, X_train, 5, metric, p)
    assert chunk_spy == [(len(queries), len(X_train))]

    chunk_spy.clear()
    # Room for the distances of 7 queries: chunks of 7, 7, 7, 7, 2.
    monkeypatch.setattr(_search, "WORKING_MEMORY_BYTES", 7 * len(X_train) * 8 + 5)
    got = search(queries, X_train, 5, metric, p)
    assert chunk_spy == [(7, len(X_train))] * 4 + [(2, len(X_train))]
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_gemm_blocks_shrink_with_the_working_memory(monkeypatch, integer_split):
    """Euclidean search runs in blocks of queries sized from the working
    memory (read at search time); results do not depend on the blocks."""
    X_train, _, X_test, _ = integer_split
    queries = np.ascontiguousarray(X_test)
    expected = search(queries, X_train, 5, "euclidean", None)
    blocks = []
    real_block = _search.gemm_query_block

    def spy(*args):
        blocks.append(real_block(*args))
        return blocks[-1]

    monkeypatch.setattr(_search, "gemm_query_block", spy)
    monkeypatch.setattr(_search, "WORKING_MEMORY_BYTES", 1)
    got = search(queries, X_train, 5, "euclidean", None)
    assert blocks == [1]
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize(
    "n_queries, n_neighbors, n_threads, working_memory, expected",
    [
        (2000, 3, 2, 2**27, 500),  # two blocks a thread
        (10**6, 3, 2, 2**27, 512),  # at most 512
        (7, 3, 4, 2**27, 1),
        (2000, 10**5, 2, 2**27, 20),  # large k: heaps and candidates bound the block
        (2000, 3, 2, 1, 1),
    ],
)
def test_gemm_query_block(n_queries, n_neighbors, n_threads, working_memory, expected):
    assert _search.gemm_query_block(n_queries, n_neighbors, n_threads, working_memory) == expected


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_peak_memory_is_bounded_by_the_working_memory(monkeypatch, metric):
    """Predicting many queries never holds their whole distance matrix.

    numpy reports its allocations to tracemalloc, so the peak covers the
    driver's distance buffer and outputs (the kernels' small per-thread
    scratch arrays are not numpy allocations and are not counted).
    """
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2000, 4))
    queries = rng.normal(size=(3000, 4))
    full_matrix = queries.shape[0] * train.shape[0] * train.itemsize  # 48 MB
    monkeypatch.setattr(_search, "WORKING_MEMORY_BYTES", 2**20)
    search(queries[:10], train, 3, metric, None)  # compile outside the measurement
    tracemalloc.start()
    try:
        rdist, indices = search(queries, train, 3, metric, None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20 + 2 * 2**20  # the buffer, plus outputs and norms
    assert peak < full_matrix / 10
    # Spot-check correctness of the chunked result.
    rows = slice(0, 3000, 97)
    expected_rdist, expected_indices = naive.sorted_neighbors(queries[rows], train, metric)
    np.testing.assert_array_equal(indices[rows], expected_indices[:, :3])
    np.testing.assert_allclose(rdist[rows], expected_rdist[:, :3], rtol=1e-14)
    assert math.isfinite(rdist.sum())


@pytest.mark.parametrize("constant_value", [0.0, 5.0, -1e3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_training_columns_leave_the_product_not_the_result(constant_value, dtype):
    """Columns holding one value in every training row are left out of the
    matrix product; neighbours and distances stay exact (the queries do vary
    in those columns, and integer data makes ties abound)."""
    rng = np.random.default_rng(0)
    train = rng.integers(-3, 4, size=(300, 12)).astype(dtype)
    train[:, [0, 5, 6, 11]] = constant_value
    queries = rng.integers(-3, 4, size=(40, 12)).astype(dtype)
    prepared = _search.prepare_euclidean(train)
    np.testing.assert_array_equal(prepared.columns, [1, 2, 3, 4, 7, 8, 9, 10])
    centred = _search.product_rows(train, prepared)
    # The rows are centred where -1e3 dominates them; nonzero constant columns are taken less their value
    # (see test_radius.test_constant_columns_left_out_of_the_product), zero ones as they are.
    assert (prepared.centre is not None) == (constant_value != 0.0)
    np.testing.assert_array_equal(centred[:, [0, 5, 6, 11]], 0.0)
    np.testing.assert_array_equal(prepared.cross_train, centred[:, prepared.columns])
    for n_neighbors in (1, 9, 300):
        rdist, indices = search(queries, train, n_neighbors, "euclidean", None, euclidean_train=prepared)
        expected_rdist, expected_indices = naive.sorted_neighbors(queries, train, "euclidean")
        np.testing.assert_array_equal(indices, expected_indices[:, :n_neighbors])
        np.testing.assert_array_equal(rdist, expected_rdist[:, :n_neighbors])


def test_constant_columns_are_found_chunk_by_chunk(monkeypatch):
    """Constant columns are looked for a few rows at a time; a column that
    varies only in the last chunk is not constant."""
    monkeypatch.setattr(_search, "CONSTANT_SCAN_ROWS", 7)
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 20))
    train[:, [2, 9, 15]] = 3.0
    train[49, 15] = 4.0
    prepared = _search.prepare_euclidean(train)
    np.testing.assert_array_equal(prepared.columns, [c for c in range(20) if c not in (2, 9)])


def test_prepare_euclidean_keeps_every_column_when_dropping_does_not_pay():
    rng = np.random.default_rng(0)
    varied = rng.normal(size=(50, 40))
    assert _search.prepare_euclidean(varied).columns is None
    one_constant = varied.copy()
    one_constant[:, 3] = 1.0  # 1 of 40 columns: under MIN_CONSTANT_FRACTION
    assert _search.prepare_euclidean(one_constant).columns is None
    identical_rows = np.repeat(varied[:1], 50, axis=0)  # every column constant
    prepared = _search.prepare_euclidean(identical_rows)
    assert prepared.columns is None and prepared.centre is not None  # the rows are all their centre
    np.testing.assert_array_equal(prepared.cross_train, _search.product_rows(identical_rows, prepared))
    single_row = varied[:1]
    assert _search.prepare_euclidean(single_row).columns is None


def candidates_per_query(monkeypatch):
    """Record the candidates each Euclidean search block re-ranks, per query (a list, filled as searches run)."""
    seen = []
    rerank = _search.Candidates.rerank

    def counting_rerank(self, queries, *arguments):
        seen.append(self.counts[: queries.shape[0]].mean())
        return rerank(self, queries, *arguments)

    monkeypatch.setattr(_search.Candidates, "rerank", counting_rerank)
    return seen


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_far_from_the_origin_are_multiplied_less_a_centre(monkeypatch, dtype):
    """Uncentred rows (100 + noise) made the bounds so loose that every row
    was a candidate, and computed exactly: 7 times slower than
    scikit-learn's brute force at 256 float32 features. Less their centre,
    few rows are; the answers stay exact, ties included."""
    rng = np.random.default_rng(3)
    train = (100 + rng.integers(-3, 4, size=(2000, 64))).astype(dtype)
    queries = (100 + rng.integers(-3, 4, size=(30, 64))).astype(dtype)
    prepared = _search.prepare_euclidean(train)
    assert prepared.centre is not None and prepared.centre.dtype == dtype
    seen = candidates_per_query(monkeypatch)
    rdist, indices = search(queries, train, 5, "euclidean", None, euclidean_train=prepared)
    assert max(seen) < 0.1 * len(train)
    expected_rdist, expected_indices = naive.sorted_neighbors(queries, train, "euclidean")
    np.testing.assert_array_equal(indices, expected_indices[:, :5])
    np.testing.assert_array_equal(rdist, expected_rdist[:, :5])
    radius = float(np.median(expected_rdist[:, 20]))
    _, found_rows, offsets = radius_search(queries, train, radius, "euclidean", None, euclidean_train=prepared)
    for query in range(len(queries)):
        within = np.flatnonzero(naive.rdist(queries[query : query + 1], train, "euclidean")[0] <= radius)
        np.testing.assert_array_equal(np.sort(found_rows[offsets[query] : offsets[query + 1]]), within)
    # Rows near the origin, or spread wide around their centre, are multiplied as they are.
    assert _search.prepare_euclidean(train - 100).centre is None
    assert _search.prepare_euclidean(rng.uniform(0, 10, (100, 8))).centre is None


def test_a_centre_whose_differences_overflow_leaves_the_search_exact():
    """A row far on the other side of the centre overflows float32 once
    centred: the fast pass then stands down, as for any overflowing rows."""
    train = np.full((50, 4), 3e38, dtype=np.float32)
    train[:, 1] = np.arange(50)
    train[7] = -3e38
    assert np.isfinite(_search.prepare_euclidean(train).centre).all()
    queries = train[[3, 7, 20]]
    _, indices = search(queries, train, 3, "euclidean", None)
    _, expected_indices = naive.sorted_neighbors(queries, train, "euclidean")
    np.testing.assert_array_equal(indices, expected_indices[:, :3])


@pytest.mark.parametrize("metric, p", [("euclidean", None), ("manhattan", None), ("chebyshev", None), ("minkowski", 3.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_neighbours_are_kept_in_a_heap(monkeypatch, metric, p, dtype):
    """From ``topk.HEAP_MIN_NEIGHBORS`` neighbours the re-ranking keeps them in a heap instead of inserting each
    (k^2 / 2 moves a query where k nears the training rows); integer rows tie everywhere, ties go to the lower
    index as by insertion."""
    from fastknn._kernels import topk

    rng = np.random.default_rng(4)
    train = rng.integers(-2, 3, size=(600, 5)).astype(dtype)
    queries = rng.integers(-2, 3, size=(20, 5)).astype(dtype)
    used = []
    monkeypatch.setattr(
        _search, "RERANK_HEAP_KERNELS",
        {key: (lambda kernel: lambda *arguments: used.append(1) or kernel(*arguments))(kernel)
         for key, kernel in topk.RERANK_HEAP_KERNELS.items()},
    )
    expected_rdist, expected_indices = naive.sorted_neighbors(queries, train, metric, 2 if p is None else p)
    for n_neighbors in (topk.HEAP_MIN_NEIGHBORS - 1, topk.HEAP_MIN_NEIGHBORS, 599, 600):
        used.clear()
        rdist, indices = search(queries, train, n_neighbors, metric, p)
        assert bool(used) == (n_neighbors >= topk.HEAP_MIN_NEIGHBORS)
        np.testing.assert_array_equal(indices, expected_indices[:, :n_neighbors])
        np.testing.assert_allclose(rdist, expected_rdist[:, :n_neighbors], rtol=1e-12)


def test_float64_rows_are_multiplied_in_float32_and_ranked_in_float64():
    """float64 rows within ``FLOAT32_PRODUCT_RANGE`` are multiplied in float32 (half the time); the re-ranking
    reads the float64 rows, so rows that float32 cannot tell apart (1e-12 apart) still rank exactly."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((200, 16))
    train = np.concatenate([base, base + 1e-12, base - 1e-12])  # three near-copies of each row
    queries = base[:30] + rng.choice([-1, 1], size=(30, 1)) * 3e-13
    prepared = _search.prepare_euclidean(train)
    assert prepared.cross_train.dtype == np.float32 and prepared.centre is None
    expected_rdist, expected_indices = naive.sorted_neighbors(queries, train, "euclidean")
    for n_neighbors in (1, 3, 7):
        rdist, indices = search(queries, train, n_neighbors, "euclidean", None, euclidean_train=prepared)
        np.testing.assert_array_equal(indices, expected_indices[:, :n_neighbors])
        np.testing.assert_allclose(rdist, expected_rdist[:, :n_neighbors], rtol=1e-14)  # numpy sums in another order
    radius = 4e-24  # (2e-12)^2: a query's near-copies at 1e-12 +- 3e-13 and itself-ish at 3e-13, not the far one
    _, found_rows, offsets = radius_search(queries, train, radius, "euclidean", None, euclidean_train=prepared)
    for query in range(len(queries)):
        within = np.flatnonzero(naive.rdist(queries[query : query + 1], train, "euclidean")[0] <= radius)
        np.testing.assert_array_equal(np.sort(found_rows[offsets[query] : offsets[query + 1]]), within)
    # Values float32 would flush or overflow keep the float64 product.
    for scale in (1e-12, 1e20):
        assert _search.prepare_euclidean(base * scale).cross_train.dtype == np.float64
    # So do rows closer together than float32's bound can tell, where every row of a cluster would be a
    # candidate of every query (two clusters 1e-5 wide, 1 apart: 5 times slower in float32).
    clusters = np.repeat([[-0.5], [0.5]], 1000, axis=0) * np.eye(16)[0] + 1e-5 * rng.standard_normal((2000, 16))
    assert _search.prepare_euclidean(clusters).cross_train.dtype == np.float64
    spread = np.repeat([[-0.5], [0.5]], 1000, axis=0) * np.eye(16)[0] + 0.1 * rng.standard_normal((2000, 16))
    assert _search.prepare_euclidean(spread).cross_train.dtype == np.float32  # clusters 0.1 wide
    # Fewer rows get fewer probe rows (16 for 300 rows), which still tell.
    assert _search.prepare_euclidean(clusters[700:1000 + 300]).cross_train.dtype == np.float64
    assert _search.prepare_euclidean(spread[700:1000 + 300]).cross_train.dtype == np.float32


@pytest.mark.parametrize("metric, p", [("euclidean", None), ("manhattan", None)])
def test_candidate_lists_start_short_and_grow_where_rows_tie(monkeypatch, metric, p):
    """Lists of a few times k, widened mid-row where thousands of rows stay within the threshold: many
    copies of the nearest rows, then distinct rows, so that some queries' lists overflow in the middle of
    a block of training rows and the scan resumes there."""
    rng = np.random.default_rng(5)
    widths = []
    widen = _search._widen
    monkeypatch.setattr(_search, "_widen", lambda lists, capacity: widths.append(capacity) or widen(lists, capacity))
    train = rng.integers(0, 4, size=(3000, 6)).astype(np.float64)
    train[100:2600] = train[7]
    queries = np.vstack([train[7] + 0.25, rng.integers(0, 4, size=(40, 6))]).astype(np.float64)
    rdist, indices = search(queries, train, 5, metric, p)
    expected_rdist, expected_indices = naive.sorted_neighbors(queries, train, metric)
    np.testing.assert_array_equal(indices, expected_indices[:, :5])
    np.testing.assert_array_equal(rdist, expected_rdist[:, :5])
    assert _search.Candidates(3, 5).rows.shape[1] == 4 * 5 + 2 * 16
    assert max(widths) >= 2048  # the lists held the 2,500 copies
