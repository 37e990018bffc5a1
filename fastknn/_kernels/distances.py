"""Distance kernels over rows of two 2-D arrays.

Every metric is handled through its *reduced* distance, a cheaper monotone
surrogate that ranks neighbours identically:

=========  ==============================  =======================
metric     reduced distance                distance
=========  ==============================  =======================
euclidean  sum (a - b)**2                  sqrt(reduced)
manhattan  sum |a - b|                     reduced
chebyshev  max |a - b|                     reduced
minkowski  sum |a - b|**p                  reduced ** (1 / p)
cosine     1 - a.b / (|a| |b|)             reduced
=========  ==============================  =======================

The cosine distance of a zero row to any row is 1, as in scikit-learn.

Two flavours exist. :func:`_rdist_tiles` works in the input precision with
fast-math reductions, for speed; :func:`_exact_rdist` accumulates in float64
and is used to re-rank the few candidates that can still be among the k
nearest (see ``topk.py``).
"""

import numpy as np

from .._config import jit

EUCLIDEAN = 0
MANHATTAN = 1
CHEBYSHEV = 2
MINKOWSKI = 3
COSINE = 4

# Tile sizes of ``_rdist_tiles``: a tile of query rows meets a tile of
# training rows that stays in the per-core cache while query tiles stream by.
QUERY_TILE = 8
TRAIN_TILE = 256


@jit(fastmath=True)
def _exact_rdist(query, train_row, metric, p):
    """Reduced distance between two 1-D rows, accumulated in float64.

    ``p`` is only read for ``MINKOWSKI``. The sum is vectorised (its order is
    fixed by the compiled code, so equal inputs give equal results); its
    float64 rounding is what "exact" means throughout fastknn.
    """
    total = 0.0
    n_features = query.shape[0]
    if metric == EUCLIDEAN:
        for f in range(n_features):
            diff = np.float64(query[f]) - np.float64(train_row[f])
            total += diff * diff
    elif metric == MANHATTAN:
        for f in range(n_features):
            total += abs(np.float64(query[f]) - np.float64(train_row[f]))
    elif metric == CHEBYSHEV:
        for f in range(n_features):
            # A comparison, not max(): numba compiles each min/max of new
            # types as a function of its own, for every metric's first
            # search (this function is typed whole for each metric).
            diff = abs(np.float64(query[f]) - np.float64(train_row[f]))
            if diff > total:
                total = diff
    elif metric == COSINE:
        # 1 - q.t / sqrt(|q|^2 |t|^2) (see _cosine_from_sums).
        query_sq = 0.0
        train_sq = 0.0
        for f in range(n_features):
            q = np.float64(query[f])
            t = np.float64(train_row[f])
            total += q * t
            query_sq += q * q
            train_sq += t * t
        return _cosine_from_sums(total, query_sq, train_sq)
    elif p == 3.0:
        for f in range(n_features):
            diff = abs(np.float64(query[f]) - np.float64(train_row[f]))
            total += diff * diff * diff
    else:
        for f in range(n_features):
            total += abs(np.float64(query[f]) - np.float64(train_row[f])) ** p
    return total


@jit(inline=True)
def _cosine_from_sums(dot, query_sq, train_sq):
    """Cosine distance ``1 - dot / sqrt(query_sq train_sq)`` from float64 sums, clipped to [0, 2].

    A row of squared norm 0 is at distance 1 from every row, as in
    scikit-learn. The square root of the product, not the product of
    square roots, keeps a row exactly at 0 from itself and from itself
    times a power of two (``sqrt(fl(a * a)) == a``). The dense and the
    sparse exact distances both end here, so that rows whose sums are
    exact (integer values) get the same distance either way. The callers
    pass rows of usual scale (``_cosine.usual_scale``), whose sums neither
    overflow nor lose digits to subnormal numbers. Inlined into its
    callers: as a function of its own, every metric's first search would
    compile it too (``_exact_rdist`` is typed whole for each metric; 0.13
    to 0.17 s of compilation, measured uncached).
    """
    if query_sq == 0.0 or train_sq == 0.0:
        return 1.0
    product = query_sq * train_sq
    if product > 1e300 or product < 1e-300:  # over- or underflow: the slower, safe way
        norms = np.sqrt(query_sq) * np.sqrt(train_sq)
    else:
        norms = np.sqrt(product)
    distance = 1.0 - dot / norms
    return 0.0 if distance < 0.0 else (2.0 if distance > 2.0 else distance)


@jit()
def _copy_float64(row, out):
    """Copy a 1-D row into the float64 buffer ``out`` (same length).

    Callers of :func:`_exact_rdist` pass a query in float64 this way, once
    for all its exact distances: each then converts only the training
    row's features (84 against 111 ns a digit from cache, measured; the
    values are the same, float32 to float64 being exact). Brute force and
    the pruned search both do it, so both run the same compiled sum.
    """
    for f in range(row.shape[0]):
        out[f] = np.float64(row[f])


@jit(fastmath=True)
def _fast_rdist(query, train_row, metric, p, integer_p):
    """Reduced distance between two 1-D rows in their own precision.

    Sums are vectorised (fast-math reassociation), so the result carries a
    rounding error bounded in ``topk.rdist_error_bound``. ``integer_p`` is
    ``p`` when it is a small integer, else 0; it selects loops that multiply
    instead of calling ``pow``.
    """
    total = query[0] - query[0]  # a zero of the input dtype
    n_features = query.shape[0]
    if metric == EUCLIDEAN:
        for f in range(n_features):
            diff = query[f] - train_row[f]
            total += diff * diff
    elif metric == MANHATTAN:
        for f in range(n_features):
            total += abs(query[f] - train_row[f])
    elif metric == CHEBYSHEV:
        for f in range(n_features):
            total = max(total, abs(query[f] - train_row[f]))
    elif integer_p == 3:
        for f in range(n_features):
            diff = abs(query[f] - train_row[f])
            total += diff * diff * diff
    elif integer_p == 4:
        for f in range(n_features):
            diff = query[f] - train_row[f]
            square = diff * diff
            total += square * square
    elif integer_p > 0:
        for f in range(n_features):
            diff = abs(query[f] - train_row[f])
            term = diff
            for _ in range(integer_p - 1):
                term *= diff
            total += term
    else:
        for f in range(n_features):
            total += abs(query[f] - train_row[f]) ** p
    return total


@jit(fastmath=True)
def _fast_rdist_x4(queries, first, train_row, metric, p, integer_p, out, column):
    """Fast reduced distances of queries[first:first + 4] to one training row.

    Four queries share each load of the training row, which halves the
    memory traffic of the innermost loop. Results go to
    ``out[first:first + 4, column]``. Powers other than 1, 2, 3, 4 and inf
    fall back to :func:`_fast_rdist` per query.
    """
    q0 = queries[first]
    q1 = queries[first + 1]
    q2 = queries[first + 2]
    q3 = queries[first + 3]
    a0 = q0[0] - q0[0]  # a zero of the input dtype
    a1 = a0
    a2 = a0
    a3 = a0
    n_features = q0.shape[0]
    if metric == EUCLIDEAN:
        for f in range(n_features):
            t = train_row[f]
            d0 = q0[f] - t
            d1 = q1[f] - t
            d2 = q2[f] - t
            d3 = q3[f] - t
            a0 += d0 * d0
            a1 += d1 * d1
            a2 += d2 * d2
            a3 += d3 * d3
    elif metric == MANHATTAN:
        for f in range(n_features):
            t = train_row[f]
            a0 += abs(q0[f] - t)
            a1 += abs(q1[f] - t)
            a2 += abs(q2[f] - t)
            a3 += abs(q3[f] - t)
    elif metric == CHEBYSHEV:
        for f in range(n_features):
            t = train_row[f]
            a0 = max(a0, abs(q0[f] - t))
            a1 = max(a1, abs(q1[f] - t))
            a2 = max(a2, abs(q2[f] - t))
            a3 = max(a3, abs(q3[f] - t))
    elif integer_p == 3:
        for f in range(n_features):
            t = train_row[f]
            d0 = abs(q0[f] - t)
            d1 = abs(q1[f] - t)
            d2 = abs(q2[f] - t)
            d3 = abs(q3[f] - t)
            a0 += d0 * d0 * d0
            a1 += d1 * d1 * d1
            a2 += d2 * d2 * d2
            a3 += d3 * d3 * d3
    else:
        a0 = _fast_rdist(q0, train_row, metric, p, integer_p)
        a1 = _fast_rdist(q1, train_row, metric, p, integer_p)
        a2 = _fast_rdist(q2, train_row, metric, p, integer_p)
        a3 = _fast_rdist(q3, train_row, metric, p, integer_p)
    out[first, column] = a0
    out[first + 1, column] = a1
    out[first + 2, column] = a2
    out[first + 3, column] = a3


@jit(fastmath=True)
def _rdist_tiles(queries, train, metric, p, integer_p, out):
    """Fill ``out[i, j]`` with the fast reduced distance of queries[i] and train[j].

    Parameters
    ----------
    queries : ndarray of shape (n_queries, n_features), float32 or float64
    train : ndarray of shape (n_train, n_features), same dtype as ``queries``
    metric : int
        One of ``EUCLIDEAN``, ``MANHATTAN``, ``CHEBYSHEV``, ``MINKOWSKI``.
    p : float of the input dtype
        Minkowski power.
    integer_p : int
        ``p`` when it is an integer, else 0.
    out : ndarray of shape (n_queries, n_train), same dtype as ``queries``

    Notes
    -----
    Work is split into (query tile, training tile) pairs; consecutive pairs
    share a training tile so that it stays in cache while query tiles stream
    by, and within a tile four queries at a time share each training row.
    Serial: the driver runs blocks of training rows in its threads
    (``_search.fast_pass_chunks``). A ``prange`` over the tiles ran on
    numba's OpenMP threads, and GNU OpenMP kills a forked child
    (``multiprocessing``'s default on Linux) that enters a parallel region
    once its parent has used one.
    """
    n_queries = queries.shape[0]
    n_train = train.shape[0]
    n_query_tiles = (n_queries + QUERY_TILE - 1) // QUERY_TILE
    n_train_tiles = (n_train + TRAIN_TILE - 1) // TRAIN_TILE
    for tile in range(n_query_tiles * n_train_tiles):
        train_start = (tile // n_query_tiles) * TRAIN_TILE
        query_start = (tile % n_query_tiles) * QUERY_TILE
        train_stop = min(train_start + TRAIN_TILE, n_train)
        query_stop = min(query_start + QUERY_TILE, n_queries)
        for j in range(train_start, train_stop):
            i = query_start
            while i + 4 <= query_stop:
                _fast_rdist_x4(queries, i, train[j], metric, p, integer_p, out, j)
                i += 4
            while i < query_stop:
                out[i, j] = _fast_rdist(queries[i], train[j], metric, p, integer_p)
                i += 1


@jit(fastmath=True)
def _squared_norms(rows, out):
    """Squared Euclidean norm of each row of ``rows``, in float64, into ``out``."""
    for i in range(rows.shape[0]):
        total = 0.0
        for f in range(rows.shape[1]):
            value = np.float64(rows[i, f])
            total += value * value
        out[i] = total
