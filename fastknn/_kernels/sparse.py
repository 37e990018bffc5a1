"""Exact neighbours of sparse rows through an inverted index of the training rows.

A query's distance to a training row it shares no column with follows from
the two rows' norms alone; only the rows sharing a column need the query's
values. The training matrix is kept twice: by rows (CSR: ``indptr``,
``indices``, ``data``) for the exact distances, and by columns (CSC:
``col_indptr``, ``col_rows``, ``col_data``) as the inverted index. For each
query, :func:`_accumulate` walks the columns of its non-zeros and adds, for
every training row found there, the column's share of the distance:

- Euclidean: ``|q - t|^2 = |q|^2 + |t|^2 - 2 q.t``, the share ``q_c t_c``;
- cosine: ``1 - q.t / (|q| |t|)``, the share ``q_c t_c``;
- Manhattan and Minkowski: ``sum |q|^p + sum |t|^p`` corrected on the shared
  columns by ``|q_c - t_c|^p - |q_c|^p - |t_c|^p``;
- Chebyshev: a row sharing no column is at ``max(max|q|, max|t|)``, exactly;
  the others are computed exactly.

These fast distances carry rounding; each has a bound
(:func:`_candidates`, :func:`_error_coefficient`) that covers its distance
to the exact value, :func:`_exact_rdist`, a float64 sum over the union of
the two rows' columns in column order. A row is ranked exactly only when
its lower bound can still reach the k-th smallest upper bound, so the
answer is the exact one, ties by lower training index. Euclidean and
cosine take :func:`_product_candidates`, whose pass over the rows is
vectorised (on TF-IDF-like rows a query meets most training rows through
their common words, so every row is looked at anyway).

Cosine rows come at a usual scale, their squares within float64's range
(the driver divides other rows by a power of two, ``_sparse.sparse_rows``).
Row values and norms are float64 and CSR index arrays int64; the inverted
index holds 16-bit row numbers up to 65,536 training rows (wider above)
and, for Euclidean and cosine, float32 values (their rounding bounded, see
:func:`_product_candidates`), else the training dtype (float32 values are
widened exactly as they are read). Queries and training rows are CSR with
sorted, unique column indices.
"""

import numpy as np

from .._config import jit
from .distances import CHEBYSHEV, EUCLIDEAN, MANHATTAN, MINKOWSKI, _cosine_from_sums
from .radius import INITIAL_ROWS_PER_QUERY, _append, _order_segment

COSINE = 4

# Bounds on rounding: float64 unit roundoff, and an absolute term for
# underflowing products.
UNIT_ROUNDOFF = 2.0**-53
TINY = 2.0**-1000


@jit()
def _power(value, metric, p):
    """``|value|`` to the metric's power: 1 for Manhattan, ``p`` for Minkowski (as the dense sum)."""
    value = abs(value)
    if metric == MANHATTAN:
        return value
    if metric == EUCLIDEAN:
        return value * value
    if p == 3.0:
        return value * value * value
    return value**p


@jit()
def _row_norm(data, metric, p):
    """The norm term of one row's values, in column order, float64.

    Squared norm for Euclidean, ``sqrt`` of it for cosine, ``sum |x|`` for
    Manhattan, ``sum |x|^p`` for Minkowski, ``max |x|`` for Chebyshev.
    """
    total = 0.0
    if metric == CHEBYSHEV:
        for v in data:
            total = max(total, abs(v))
        return total
    if metric == COSINE:
        for v in data:
            total += v * v
        return np.sqrt(total)
    for v in data:
        total += _power(v, metric, p)
    return total


@jit()
def _row_norms(indptr, data, metric, p, out):
    """:func:`_row_norm` of every CSR row into ``out`` (n_rows,), float64."""
    for i in range(out.shape[0]):
        out[i] = _row_norm(data[indptr[i] : indptr[i + 1]], metric, p)


@jit()
def _within(data, smallest, largest):
    """Whether every nonzero ``|value|`` of ``data`` lies in [``smallest``, ``largest``] (NaN does not)."""
    for value in data:
        magnitude = abs(value)
        if magnitude != 0.0 and not (magnitude >= smallest and magnitude <= largest):
            return False
    return True


@jit()
def _dot(q_indices, q_data, t_indices, t_data):
    """Dot product of two sparse rows (sorted, unique columns), in column order."""
    a, b = 0, 0
    total = 0.0
    while a < q_indices.shape[0] and b < t_indices.shape[0]:
        if q_indices[a] == t_indices[b]:
            total += q_data[a] * t_data[b]
            a += 1
            b += 1
        elif q_indices[a] < t_indices[b]:
            a += 1
        else:
            b += 1
    return total


@jit()
def _squared_sum(data):
    """``sum v^2`` over a row's values, in column order."""
    total = 0.0
    for v in data:
        total += v * v
    return total


@jit()
def _exact_rdist(q_indices, q_data, t_indices, t_data, metric, p):
    """Exact reduced distance of two sparse rows (sorted, unique columns).

    Reduced as for dense rows: squared for Euclidean, p-th power for
    Minkowski; the cosine distance itself, from the sums of dense rows
    (``distances._cosine_from_sums``) taken in column order: 1 when either
    row is zero (as scikit-learn's ``cosine_distances``), exactly 0 from
    itself, and for integer values the dense search's distance.
    """
    if metric == COSINE:
        dot = _dot(q_indices, q_data, t_indices, t_data)
        return _cosine_from_sums(dot, _squared_sum(q_data), _squared_sum(t_data))
    n_q, n_t = q_indices.shape[0], t_indices.shape[0]
    a, b = 0, 0
    total = 0.0
    while a < n_q or b < n_t:
        if b == n_t or (a < n_q and q_indices[a] < t_indices[b]):
            diff = q_data[a]
            a += 1
        elif a == n_q or t_indices[b] < q_indices[a]:
            diff = t_data[b]
            b += 1
        else:
            diff = q_data[a] - t_data[b]
            a += 1
            b += 1
        if metric == CHEBYSHEV:
            total = max(total, abs(diff))
        else:
            total += _power(diff, metric, p)
    return total


@jit()
def _accumulate(q_indices, q_data, col_indptr, col_rows, col_data, metric, p, shares):
    """Add every shared column's share to ``shares`` (n_train,), zero on entry, of the rows the query meets.

    For Chebyshev, a met row's share is set to 1: it only marks the row.
    """
    for a in range(q_indices.shape[0]):
        column, value = q_indices[a], q_data[a]
        first, last = col_indptr[column], col_indptr[column + 1]
        if metric == EUCLIDEAN or metric == COSINE:
            for position in range(first, last):
                shares[col_rows[position]] += value * col_data[position]
        elif metric == CHEBYSHEV:
            for position in range(first, last):
                shares[col_rows[position]] = 1.0
        else:
            own = _power(value, metric, p)
            for position in range(first, last):
                t_value = col_data[position]
                shares[col_rows[position]] += _power(value - t_value, metric, p) - own - _power(t_value, metric, p)


@jit()
def _error_coefficient(metric, p):
    """Bound on |fast - exact| reduced distance, per stored value of the pair and unit of scale.

    A float64 sum of ``n`` terms is off by at most about ``n u`` times the
    sum of their magnitudes (Higham, *Accuracy and Stability of Numerical
    Algorithms*, section 3.1); the shares' magnitudes are bounded by the
    norms (Cauchy-Schwarz for the products; ``|a - b|^p <= 2^(p-1)(|a|^p +
    |b|^p)`` for powers, each off by about ``p`` units through its base).
    The scale is ``|q| + |t|`` as :func:`_row_norm` gives them, 1 for
    cosine. The coefficients take that with a factor of 4 to spare, for
    both the fast value and the exact one.
    """
    if metric == COSINE or metric == EUCLIDEAN:
        return 16.0 * UNIT_ROUNDOFF
    if metric == MANHATTAN:
        return 24.0 * UNIT_ROUNDOFF
    return 4.0 * (p + 4.0) * (2.0 ** (p - 1.0) + 3.0) * UNIT_ROUNDOFF


@jit(inline=True)
def _keep_smallest(heap, value):
    """Keep the ``heap.shape[0]`` smallest values seen in the max-heap ``heap`` (its root the largest)."""
    k = heap.shape[0]
    if k == 0 or not value < heap[0]:
        return
    position = 0
    while True:
        child = 2 * position + 1
        if child >= k:
            break
        if child + 1 < k and heap[child + 1] > heap[child]:
            child += 1
        if heap[child] <= value:
            break
        heap[position] = heap[child]
        position = child
    heap[position] = value


@jit()
def _candidates(q_indices, q_data, q_norm, indptr, indices, data, norms, shares, metric, p, heap, radius, rows, rdist):
    """Exact reduced distances of the training rows that can be among the answer, in row order.

    One pass over the training rows computes each fast distance and its
    error bound (the exact reduced distance lies within ``fast +- error``;
    Chebyshev's is exact), zeroes ``shares`` for the next query, and
    keeps in ``heap`` (k,) the k smallest upper bounds; a row is noted when
    its lower bound is within the k-th smallest upper bound so far (which
    only decreases), or within ``radius`` when k = 0. The notes are then
    filtered with the final bound and ranked exactly. Writes ``rows`` and
    ``rdist`` (n_train,) and returns their count.
    """
    n_q = q_indices.shape[0]
    coefficient = _error_coefficient(metric, p)
    factor = -2.0 if metric == EUCLIDEAN else 1.0
    k = heap.shape[0]
    heap[:] = np.inf
    limit = radius if k == 0 else np.inf
    noted = 0
    for row in range(norms.shape[0]):
        share = shares[row]
        shares[row] = 0.0
        t_norm = norms[row]
        if metric == CHEBYSHEV:
            # Exact: the max of a row met by the query, else of both rows' largest values.
            error = 0.0
            if share != 0.0:
                first, last = indptr[row], indptr[row + 1]
                fast = _exact_rdist(q_indices, q_data, indices[first:last], data[first:last], metric, p)
            else:
                fast = max(q_norm, t_norm)
        else:
            n_terms = n_q + indptr[row + 1] - indptr[row] + 8.0
            if metric == COSINE:
                scale = q_norm * t_norm
                fast = 1.0 - share / scale if scale != 0.0 else 1.0
                error = coefficient * n_terms
            else:
                fast = q_norm + t_norm + factor * share
                error = coefficient * n_terms * (q_norm + t_norm) + TINY * n_terms
            if not np.isfinite(fast + error):  # overflow: ranked exactly
                fast, error = 0.0, np.inf
        if k > 0:
            _keep_smallest(heap, fast + error)
            limit = heap[0]
        if fast - error <= limit:
            rows[noted] = row
            rdist[noted] = fast - error  # the lower bound for now (Chebyshev's: exact)
            noted += 1
    count = 0
    for c in range(noted):
        row = rows[c]
        if rdist[c] > limit:
            continue
        value = rdist[c]
        if metric != CHEBYSHEV:
            first, last = indptr[row], indptr[row + 1]
            value = _exact_rdist(q_indices, q_data, indices[first:last], data[first:last], metric, p)
        rows[count] = row
        rdist[count] = value
        count += 1
    return count


# Largest finite float64: ``abs(x) <= LARGEST`` is false for inf and NaN,
# and unlike ``np.isfinite`` it keeps a loop vectorisable.
LARGEST = np.finfo(np.float64).max


@jit()
def _product_bounds(q_norm, norms, shares, metric, coefficient, tiny, upper):
    """Lower bounds of every row's reduced distance into ``shares`` (n_train,), upper ones into ``upper``.

    Euclidean and cosine (see :func:`_product_candidates`); branch-free so
    that it vectorises. A row whose fast distance overflows, or whose
    cosine scale leaves the normal range (the quotient is then off by more
    than the bound), gets infinite bounds: it is ranked exactly.
    """
    if metric == COSINE:
        for row in range(norms.shape[0]):
            scale = q_norm * norms[row]
            fast = 1.0 - shares[row] / scale
            if q_norm == 0.0 or norms[row] == 0.0:
                fast = 1.0
            elif not (scale >= 2.0**-1022 and scale <= LARGEST and abs(fast) <= LARGEST):
                fast = np.nan
            lower, high = fast - coefficient, fast + coefficient
            finite = fast == fast
            shares[row] = lower if finite else -np.inf
            upper[row] = high if finite else np.inf
    else:
        for row in range(norms.shape[0]):
            t_norm = norms[row]
            fast = q_norm + t_norm - 2.0 * shares[row]
            error = coefficient * (q_norm + t_norm) + tiny
            high = fast + error
            finite = abs(high) <= LARGEST
            shares[row] = fast - error if finite else -np.inf
            upper[row] = high if finite else np.inf


@jit()
def _most_terms(indptr):
    """The largest number of stored values of a CSR row (0 for no rows)."""
    most = 0
    for row in range(indptr.shape[0] - 1):
        most = max(most, indptr[row + 1] - indptr[row])
    return most


@jit()
def _product_candidates(
    q_indices, q_data, q_norm, indptr, indices, data, norms, most_terms, value_rounding, shares, metric, heap, radius,
    rows, rdist, upper,
):
    """:func:`_candidates` for Euclidean and cosine, whose fast distance is the row's share and norm alone.

    Same arguments, result and bounds (``upper`` (n_train,) is scratch),
    with each row's count of stored values replaced by the training set's
    largest, ``most_terms`` (:func:`_most_terms`), so that a row's bound
    is a multiple of its norm (Euclidean) or a constant (cosine); and
    without ``p``, which neither metric reads. The inverted index's values
    may be rounded, each within a relative ``value_rounding`` of the
    training value: a share is then off by at most ``value_rounding |q|
    |t|`` more (Cauchy-Schwarz over the shared columns), so the Euclidean
    fast distance (twice the share) by at most ``value_rounding (|q|^2 +
    |t|^2)`` and the cosine by ``value_rounding``; the bound adds 4 times
    that. :func:`_product_bounds` writes every row's bounds at once
    (vectorised); the scan then reads the lower bounds only and takes the
    slow step (keep the k smallest upper bounds, note the row) only for a
    row whose lower bound is within the k-th smallest upper bound so far
    (or within ``radius`` when k = 0): rare once k rows are seen. A row
    whose upper bound can enter the heap has its lower bound below it, so
    the one test serves both.
    """
    n_train = norms.shape[0]
    n_terms = q_indices.shape[0] + most_terms + 8.0
    coefficient = _error_coefficient(metric, 0.0) * n_terms + 4.0 * value_rounding
    _product_bounds(q_norm, norms, shares, metric, coefficient, TINY * n_terms, upper)
    k = heap.shape[0]
    heap[:] = np.inf
    limit = radius if k == 0 else np.inf
    noted = 0
    for row in range(n_train):
        lower = shares[row]
        if lower <= limit:
            if k > 0:
                _keep_smallest(heap, upper[row])
                limit = heap[0]
            if lower <= limit:
                rows[noted] = row
                rdist[noted] = lower
                noted += 1
    shares[:] = 0.0
    count = 0
    for c in range(noted):
        row = rows[c]
        if rdist[c] > limit:
            continue
        first, last = indptr[row], indptr[row + 1]
        rows[count] = row
        rdist[count] = _exact_rdist(q_indices, q_data, indices[first:last], data[first:last], metric, 0.0)
        count += 1
    return count


@jit()
def _sparse_kneighbors(
    first, last, q_indptr, q_indices, q_data, q_norms,
    indptr, indices, data, norms, col_indptr, col_rows, col_data, value_rounding, metric, p, rdist, neighbors,
):
    """Exact k nearest training rows of queries ``first`` to ``last - 1``.

    q_indptr, q_indices, q_data, q_norms : the queries' CSR arrays and :func:`_row_norms`
    indptr, indices, data, norms : the training rows' CSR arrays and norms
    col_indptr, col_rows, col_data : the training rows by column (the inverted index)
    value_rounding : relative rounding of ``col_data`` (Euclidean and cosine, see :func:`_product_candidates`)
    rdist : (n_queries, k), float64, written: exact reduced distances, ascending
    neighbors : (n_queries, k), int64, written: rows, equal distances by lower index
    """
    n_train = norms.shape[0]
    k = rdist.shape[1]
    shares = np.zeros(n_train)
    heap = np.empty(k)
    rows = np.empty(n_train, dtype=np.int64)
    exact = np.empty(n_train)
    upper = np.empty(n_train if metric == EUCLIDEAN or metric == COSINE else 0)
    most_terms = _most_terms(indptr)
    for i in range(first, last):
        q_idx = q_indices[q_indptr[i] : q_indptr[i + 1]]
        q_val = q_data[q_indptr[i] : q_indptr[i + 1]]
        _accumulate(q_idx, q_val, col_indptr, col_rows, col_data, metric, p, shares)
        if metric == EUCLIDEAN or metric == COSINE:
            count = _product_candidates(
                q_idx, q_val, q_norms[i], indptr, indices, data, norms, most_terms, value_rounding, shares,
                metric, heap, 0.0, rows, exact, upper,
            )
        else:
            count = _candidates(
                q_idx, q_val, q_norms[i], indptr, indices, data, norms, shares, metric, p, heap, 0.0, rows, exact
            )
        # The k smallest by (distance, row): candidates come in row order, so
        # a strict comparison keeps the lower row first among equals.
        filled = 0
        for c in range(count):
            value = exact[c]
            if filled == k and value >= rdist[i, k - 1]:
                continue
            position = filled if filled < k else k - 1
            while position > 0 and rdist[i, position - 1] > value:
                rdist[i, position] = rdist[i, position - 1]
                neighbors[i, position] = neighbors[i, position - 1]
                position -= 1
            rdist[i, position] = value
            neighbors[i, position] = rows[c]
            if filled < k:
                filled += 1


@jit()
def _sparse_radius(
    first, last, q_indptr, q_indices, q_data, q_norms,
    indptr, indices, data, norms, col_indptr, col_rows, col_data, value_rounding, metric, p, radius, sort_distances,
):
    """Training rows within the reduced ``radius`` of queries ``first`` to ``last - 1``.

    Arrays as :func:`_sparse_kneighbors`. Returns ``(counts, rows, rdist)``:
    the number of rows of each query, then their rows and exact reduced
    distances one query after another (buffers may be longer), by row
    index, or by (distance, row) when ``sort_distances``.
    """
    n_train = norms.shape[0]
    shares = np.zeros(n_train)
    no_heap = np.empty(0)
    rows = np.empty(n_train, dtype=np.int64)
    exact = np.empty(n_train)
    upper = np.empty(n_train if metric == EUCLIDEAN or metric == COSINE else 0)
    most_terms = _most_terms(indptr)
    counts = np.zeros(last - first, dtype=np.int64)
    found_rows = np.empty(INITIAL_ROWS_PER_QUERY * (last - first), dtype=np.int64)
    found_rdist = np.empty(found_rows.shape[0])
    n_found = 0
    for i in range(first, last):
        q_idx = q_indices[q_indptr[i] : q_indptr[i + 1]]
        q_val = q_data[q_indptr[i] : q_indptr[i + 1]]
        _accumulate(q_idx, q_val, col_indptr, col_rows, col_data, metric, p, shares)
        if metric == EUCLIDEAN or metric == COSINE:
            count = _product_candidates(
                q_idx, q_val, q_norms[i], indptr, indices, data, norms, most_terms, value_rounding, shares,
                metric, no_heap, radius, rows, exact, upper,
            )
        else:
            count = _candidates(
                q_idx, q_val, q_norms[i], indptr, indices, data, norms, shares, metric, p, no_heap, radius, rows, exact
            )
        start = n_found
        for c in range(count):
            if exact[c] <= radius:
                found_rows, found_rdist, n_found = _append(found_rows, found_rdist, n_found, rows[c], exact[c])
        _order_segment(found_rows, found_rdist, start, n_found, False, sort_distances)
        counts[i - first] = n_found - start
    return counts, found_rows, found_rdist
