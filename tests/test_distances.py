"""Tests for fastknn._kernels.distances against scipy.spatial.distance."""

import numpy as np
import pytest
from scipy.spatial import distance

from fastknn._kernels.distances import (
    CHEBYSHEV,
    EUCLIDEAN,
    MANHATTAN,
    MINKOWSKI,
    _exact_rdist,
    _fast_rdist,
    _rdist_tiles,
    _squared_norms,
)
from fastknn._search import rounding_error_bound

# (kernel metric id, name for rounding_error_bound, p) for every loop the
# kernels have: p = 3 and 4 have dedicated loops, 5 the generic integer
# loop, 1.5 and 2.5 the pow loop.
METRICS = [
    pytest.param(EUCLIDEAN, "euclidean", 0.0, id="euclidean"),
    pytest.param(MANHATTAN, "manhattan", 0.0, id="manhattan"),
    pytest.param(CHEBYSHEV, "chebyshev", 0.0, id="chebyshev"),
    pytest.param(MINKOWSKI, "minkowski", 3.0, id="minkowski-3"),
    pytest.param(MINKOWSKI, "minkowski", 4.0, id="minkowski-4"),
    pytest.param(MINKOWSKI, "minkowski", 5.0, id="minkowski-5"),
    pytest.param(MINKOWSKI, "minkowski", 1.5, id="minkowski-1.5"),
    pytest.param(MINKOWSKI, "minkowski", 2.5, id="minkowski-2.5"),
]

DTYPES = [np.float32, np.float64]


def scipy_rdist(u, v, metric, p):
    """Reduced distance of two rows computed by scipy, in float64."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if metric == EUCLIDEAN:
        return distance.sqeuclidean(u, v)
    if metric == MANHATTAN:
        return distance.cityblock(u, v)
    if metric == CHEBYSHEV:
        return distance.chebyshev(u, v)
    return distance.minkowski(u, v, p) ** p


def integer_power(p):
    """The ``integer_p`` argument the search driver passes for ``p``."""
    return int(p) if float(p).is_integer() and p <= 64 else 0


def rows(dtype, n_rows=9, n_features=17, scale=1.0, seed=0):
    """Random rows with an all-zero row and a duplicated row at the end."""
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=scale, size=(n_rows, n_features))
    X = np.vstack([X, np.zeros((1, n_features)), X[:1]])
    return np.ascontiguousarray(X, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric, name, p", METRICS)
def test_exact_rdist_matches_scipy(metric, name, p, dtype):
    X = rows(dtype, scale=3.0)
    for u in X:
        for v in X:
            expected = scipy_rdist(u, v, metric, p)
            got = _exact_rdist(u, v, metric, p)
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric, name, p", METRICS)
def test_exact_rdist_of_identical_rows_is_zero(metric, name, p, dtype):
    # Large values: any cancellation error would show.
    X = rows(dtype, scale=1e3)
    for u in X:
        assert _exact_rdist(u, u.copy(), metric, p) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric, name, p", METRICS)
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_fast_rdist_within_rounding_bound(metric, name, p, dtype, scale):
    """The fast value brackets the exact one by the bound the re-ranking uses.

    This is what makes the search exact: topk keeps every row whose interval
    ``fast -/+ (relative * |fast| + absolute)`` can hold a winner.
    """
    X = rows(dtype, n_rows=12, n_features=33, scale=scale, seed=1)
    relative, absolute = rounding_error_bound(np.dtype(dtype), X.shape[1], name, p)
    typed_p = dtype(p)
    for u in X:
        for v in X:
            exact = scipy_rdist(u, v, metric, p)
            fast = float(_fast_rdist(u, v, metric, typed_p, integer_power(p)))
            error = relative * abs(fast) + absolute
            assert fast - error <= exact <= fast + error


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric, name, p", METRICS)
def test_rdist_tiles_matches_cdist(metric, name, p, dtype):
    # Shapes that are not multiples of the query tile (8), of the 4-query
    # inner block, or of the training tile (256).
    queries = rows(dtype, n_rows=11, n_features=5, seed=2)
    train = rows(dtype, n_rows=298, n_features=5, seed=3)
    out = np.full((len(queries), len(train)), np.nan, dtype=dtype)
    _rdist_tiles(queries, train, metric, dtype(p), integer_power(p), out)
    expected = np.array([[scipy_rdist(u, v, metric, p) for v in train] for u in queries])
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rdist_tiles_single_query_and_row(dtype):
    queries = np.array([[1.0, -2.0]], dtype=dtype)
    train = np.array([[4.0, 2.0]], dtype=dtype)
    out = np.empty((1, 1), dtype=dtype)
    _rdist_tiles(queries, train, EUCLIDEAN, dtype(0.0), 0, out)
    assert out[0, 0] == 25.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_squared_norms(dtype):
    X = rows(dtype, scale=10.0)
    out = np.empty(len(X), dtype=np.float64)
    _squared_norms(X, out)
    expected = (X.astype(np.float64) ** 2).sum(axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    assert out[-2] == 0.0
