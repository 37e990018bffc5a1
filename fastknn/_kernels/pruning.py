"""Exact search that proves most training rows cannot be among the k nearest.

Each training row gets cheap lower bounds of its reduced distance to the
query, from coarse to fine:

- Euclidean: the distance within a low-dimensional orthonormal projection
  (PCA of the training set) plus the difference of the residual norms,
  ``|P(q - t)|^2 + (|r_q| - |r_t|)^2 <= |q - t|^2``; stage 1 uses the first
  ``m1`` components, its cross terms taken exactly on 16-bit integer codes
  of the projections (``pair_products``) and widened by the codes' error,
  stage 2 the first ``m2``.
- Manhattan, Minkowski, Chebyshev: the same metric between block-pooled
  rows, scaled so that ``|sum_G (a - b)|^p / |G|^(p - 1) <= sum_G |a - b|^p``
  for every block G (Hoelder); stage 1 pools coarse blocks, stage 2 finer
  ones.

For each query, seeds are computed exactly first: the 2k rows of smallest
stage-1 bound (PCA), or among the 4k rows of smallest stage-1 bound the 2k
of smallest stage-2 bound (pooled). Their k-th best
distance is the threshold, which falls as better rows are found. Every other
row is computed exactly only if both of its bounds are within it: the rows
within it at stage 1 are listed (through bit masks, ``bitscan``), then
their stage-2 bounds computed, then the exact distances of the survivors,
each loop prefetching the rows it is about to read. Each bound is lowered
by a margin that covers the rounding of every step behind it (see
``_pruning.pca_bound_margin`` and ``single_precision_rounding``), so no
true neighbour is ever pruned, and the
result equals brute force: same neighbours, same order, ties to the lower
training index. The rows may be stored in another order than the training
set's (the index groups them by locality, see ``_pruning``): each carries its
training index, which the outputs and the tie-breaking use.
"""

import numpy as np
from numba import types
from numba.extending import overload

from .._config import jit
from .bitscan import _rows_within
from .distances import CHEBYSHEV, EUCLIDEAN, MANHATTAN, _copy_float64, _exact_rdist, _fast_rdist
from .pair_products import PANEL_ROWS, _code_dot, _pair_products
from .prefetch import _prefetch_row
from .topk import _heap_drain_sorted, _heap_push, _heap_replace_top, _is_worse, _keep_smallest, _new_heap

PCA = 0
POOLED = 1

# Columns of the per-row info array of the PCA features (see ``_pca_project``).
PCA_INFO_COLUMNS = 10

# Relative safety margin of the pooled bounds: float64 rounding of the sums
# behind a bound is below n_features * 2**-53 (about 1e-11 for 1e5
# features), so a bound shrunk by this much stays below the exact distance.
# The PCA bounds need a wider margin, which depends on the shapes (see
# ``_pruning.pca_bound_margin``).
BOUND_MARGIN = 1e-9

# Rows prefetched ahead of the one being read, and at most how many cache
# lines of each: all of a stage-2 row (into L1), all of a digit's training
# row (into L2; longer rows: their first 4 KiB, the hardware prefetcher
# streams the rest). Measured on the digits (see ``prefetch``); prefetching
# stage-2 rows into L2 too made pooled Manhattan at k=1 slower (1.03 to
# 1.12 of the time).
PREFETCH_AHEAD = 4
FINE_PREFETCH_LINES = 16
EXACT_PREFETCH_LINES = 64

# Rows of smallest stage-1 bound whose stage-2 bound is computed, per seed;
# the seeds are those of smallest stage-2 bound among them. The PCA stage-1
# bounds rank rows about as well as stage 2 does for this choice (70
# against 69 exact distances a query at k=25 on the digits): taking the
# seeds straight from stage 1 saves the stage-2 bounds of the other half
# and a quickselect: 0.90 to 0.97 of the search time at k=25, 0.95 to 0.99
# at k=5, the same at k=1 (A/B runs, one and two threads). The pooled
# bounds are weaker: with one candidate per seed, Manhattan took 1.06 to
# 1.14 of the time at k=5 and k=25.
PCA_SEED_CANDIDATES = 1
POOLED_SEED_CANDIDATES = 2

# Training rows per group of the seed selection (``_strided_minima``).
SEED_GROUP_ROWS = 32

# Most counts the seed selection makes over a query's group minima.
SEED_BISECTIONS = 24

# Stage-1 bounds are stored in float32 (half the memory traffic of the
# passes over them, twice the SIMD lanes). Pooled bounds are rounded down:
# lowered by one float32 ulp before rounding to nearest; PCA bounds are
# computed in float32, their margin covering it (PCA_FILL_ROUNDING). Both
# are kept within float32's range (a lower bound may always be lowered; any
# negative bound prunes nothing).
# Thresholds compared with them are rounded up the same way, and capped at
# FLOAT32_LIMIT, which every bound is within; a row already computed gets
# the bound SKIP, beyond every threshold.
FLOAT32_ULP = 2.0**-23
FLOAT32_LIMIT = float(np.finfo(np.float32).max) / 2.0
SKIP = np.float32(np.finfo(np.float32).max)
SINGLE_LIMIT = np.float32(FLOAT32_LIMIT)

# Allowance, relative to ``|q'|^2 + |t'|^2``, for the stage-1 PCA bounds
# taken in float32 (derived in ``_fill_pca_bounds``): 56 float32 unit
# roundoffs, rounded up.
PCA_FILL_ROUNDING = 64 * 2.0**-24

# Stage 1 takes the cross terms on 16-bit integer codes of the projections
# (see ``pair_products``): each row's stage-1 projection x becomes the
# integer vector Q = rint(x / s), with the scale s = |x| / CODE_NORM, so
# that |Q| <= CODE_NORM + sqrt(2 CODE_PAIRS) / 2 < 2**15 and no sum of
# products overflows int32. Each coordinate then errs by at most
# CODE_ROUNDING s: half a step, plus 2**-20 of one, which covers the
# float64 division behind the code (under 1e-11 of a step) and the float32
# rounding of the error terms built from this bound (``_quantise``).
CODE_NORM = 32763.0
CODE_ROUNDING = 0.5 + 2.0**-20

# Allowance, relative to ``|q'|^2 + |t'|^2``, for the float64 arithmetic of
# the stage-2 PCA bounds (``_stage2_bound``): a few float64 unit roundoffs
# for each of its operations, generously rounded up.
PCA_FINE_ROUNDING = 64 * 2.0**-53

# Training rows per stage-1 product of the PCA bounds: the block's cross
# terms stay in cache until the bounds are taken from them, instead of a
# product over every row (13 MB for a task of 334 queries on the digits)
# written out and read back. With the integer products, blocks of 1,024
# rows took 0.97 to 0.98 of the search time of 512, 256 rows 1.03, 2,048
# and 4,096 rows 1.01 to 1.05 (A/B runs, two threads, k = 1 and 25).
PCA_TRAIN_BLOCK = 1024

# Training rows per run of the pooled stage-1 loop: the run of every coarse
# feature (n_groups x this many float64) stays in the core's cache while the
# queries of a block stream by.
POOLED_TRAIN_BLOCK = 1024


@jit(fastmath=True)
def _pca_project(rows, positions, mean, components, n_coarse, sparse_limit, out_fine, out_codes, out_info):
    """Integer codes of the projections of ``rows[positions]`` on the PCA basis, and the norms the bounds need.

    Runs without the GIL, in the search's own threads (numpy's version of
    the same steps ran 1.36 times faster on two threads than on one).

    A row with at most ``sparse_limit`` non-zero features is projected as
    ``sum over its non-zeros f of x_f P_f``, less the projection of the
    mean, reading only those rows of the basis; the others are centred and
    projected in one matrix product. The sum over non-zeros errs by up to
    ``(n + 2) u (|x| + |mean|)`` a coordinate where the product errs by
    ``(n + 1) u |x - mean|`` (``n`` features, ``u = 2**-53``, unit
    columns), so its rows' margin weight (column 2 below) is
    ``2 (|x|^2 + |mean|^2) >= (|x| + |mean|)^2`` in place of ``|x - mean|^2``:
    every step of ``_pruning.pca_bound_margin`` holds with that norm in
    place of the centred one.

    Parameters
    ----------
    rows : ndarray of shape (n_all_rows, n_features)
    positions : ndarray of shape (n_rows,), int64
        The rows to project, in the order of the outputs.
    mean : ndarray of shape (n_features,), float64
    components : ndarray of shape (n_features, n_components), float64
        Orthonormal columns; the first ``n_coarse`` are stage 1's.
    sparse_limit : int
        Most non-zero features of a row projected through its non-zeros
        (see ``_pruning.sparse_projection_limit``); -1 projects every row
        in the matrix product.
    out_fine : ndarray of shape (n_rows, n_components), int16
        Stage 2's integer codes of the projections of the centred rows
        (computed in float64; see ``_quantise``).
    out_codes : ndarray of shape (n_rows, 2 * CODE_PAIRS), int16
        Stage 1's codes, of the first ``n_coarse`` coordinates alone,
        zero-padded.
    out_info : ndarray of shape (n_rows, PCA_INFO_COLUMNS), float64
        Squared norm of the stage-1 projection, stage-1 residual norm, the
        weight of the row's share of the bounds' margins (its squared
        centred norm, or the larger weight above), stage-2 residual norm,
        the stage-1 codes' scale and error term, squared norm of the
        stage-2 projection, the stage-2 codes' scale and error term, and
        the largest absolute value in the row itself (taken in this pass
        over the rows, which ``fit`` would otherwise read once more for
        the overflow checks).
    """
    n_rows, n_features = positions.shape[0], rows.shape[1]
    n_components = components.shape[1]
    projected = np.empty((n_rows, n_components), dtype=np.float64)
    centred_sqs = np.empty(n_rows, dtype=np.float64)
    # The centred rows of the dense path, written in the pass that counts
    # a row's non-zeros: a row that turns out sparse leaves its slot to the next.
    centred_rows = np.empty((n_rows, n_features), dtype=np.float64)
    dense = np.empty(n_rows, dtype=np.int64)
    n_dense = 0
    nonzero = np.empty(n_features, dtype=np.int64)
    mean_projection = np.empty(n_components, dtype=np.float64)
    mean_sq = -1.0  # not computed yet: only rows of the sparse path need it
    for i in range(n_rows):
        row = rows[positions[i]]
        largest = 0.0
        centred_sq = 0.0
        row_sq = 0.0
        n_nonzero = 0
        for f in range(n_features):
            value = np.float64(row[f])
            centred = value - mean[f]
            centred_rows[n_dense, f] = centred
            centred_sq += centred * centred
            row_sq += value * value
            largest = max(largest, abs(value))
            nonzero[n_nonzero] = f
            n_nonzero += value != 0.0
        out_info[i, 9] = largest
        centred_sqs[i] = centred_sq
        out_info[i, 2] = centred_sq
        if n_nonzero > sparse_limit:
            dense[n_dense] = i
            n_dense += 1
            continue
        if mean_sq < 0.0:
            mean_sq = _project_mean(mean, components, mean_projection)
        out_info[i, 2] = max(centred_sq, 2.0 * (row_sq + mean_sq))
        projection = projected[i]
        for c in range(n_components):
            projection[c] = -mean_projection[c]
        for position in range(n_nonzero):
            f = nonzero[position]
            value = np.float64(row[f])
            basis_row = components[f]
            for c in range(n_components):
                projection[c] += value * basis_row[c]
    if n_dense > 0:
        dense_projected = np.dot(centred_rows[:n_dense], components)
        for d in range(n_dense):
            projected[dense[d]] = dense_projected[d]
    for i in range(n_rows):
        coarse_sq = 0.0
        for c in range(n_coarse):
            coarse_sq += projected[i, c] * projected[i, c]
        fine_sq = coarse_sq
        for c in range(n_coarse, n_components):
            fine_sq += projected[i, c] * projected[i, c]
        out_info[i, 4], out_info[i, 5] = _quantise(projected[i, :n_coarse], coarse_sq, out_codes[i])
        out_info[i, 6] = fine_sq
        out_info[i, 7], out_info[i, 8] = _quantise(projected[i], fine_sq, out_fine[i])
        out_info[i, 0] = coarse_sq
        out_info[i, 1] = np.sqrt(max(centred_sqs[i] - coarse_sq, 0.0))
        out_info[i, 3] = np.sqrt(max(centred_sqs[i] - fine_sq, 0.0))


@jit(fastmath=True)
def _project_mean(mean, components, out):
    """The projection of ``mean`` on the basis into ``out``; returns ``|mean|^2``."""
    for c in range(components.shape[1]):
        out[c] = 0.0
    mean_sq = 0.0
    for f in range(components.shape[0]):
        value = mean[f]
        mean_sq += value * value
        for c in range(components.shape[1]):
            out[c] += value * components[f, c]
    return mean_sq


@jit()
def _quantise(projection, norm_sq, out_codes):
    """Integer codes of a projection x into ``out_codes``; returns their scale s and error term.

    ``Q = rint(x / s)`` with ``s = |x| / CODE_NORM`` (the norm from
    ``norm_sq``, its float64 square), zero-padded; ``|x_c - s Q_c| <=
    CODE_ROUNDING s`` for every coordinate. For a query q and a row t of m
    coordinates, ``x_q . x_t`` is then within ``E = s_q s_t (h (L_q + L_t)
    + m h^2)`` of ``s_q s_t Q_q . Q_t`` (``h = CODE_ROUNDING``, ``L`` the
    codes' L1 norms): expand ``(s_q Q_q + e_q) . (s_t Q_t + e_t)``. The
    error term returned is ``s (h L + m h^2 / 2)``, so that
    ``E = s_t err_q + s_q err_t``. A zero projection gets zero codes, scale
    and error term.
    """
    for c in range(out_codes.shape[0]):  # explicit loops compile much faster than slice assignment
        out_codes[c] = 0
    norm = np.sqrt(norm_sq)
    if norm == 0.0:
        return 0.0, 0.0
    scale = norm / CODE_NORM
    codes_l1 = 0.0
    for c in range(projection.shape[0]):
        code = np.rint(projection[c] / scale)
        out_codes[c] = np.int16(code)
        codes_l1 += abs(code)
    m = projection.shape[0]
    return scale, scale * (CODE_ROUNDING * codes_l1 + 0.5 * m * CODE_ROUNDING * CODE_ROUNDING)


@jit()
def _pooled_rows(rows, group_of_feature, group_scale, out):
    """Sum the features of each row by group, then scale each group.

    Parameters
    ----------
    rows : ndarray of shape (n_rows, n_features)
    group_of_feature : ndarray of shape (n_features,), int64
    group_scale : ndarray of shape (n_groups,), float64
    out : ndarray of shape (n_rows, n_groups), float64

    Serial: the driver runs blocks of rows in threads.
    """
    for i in range(rows.shape[0]):
        for g in range(out.shape[1]):  # explicit loops compile much faster than slice assignment
            out[i, g] = 0.0
        for f in range(rows.shape[1]):
            out[i, group_of_feature[f]] += np.float64(rows[i, f])
        for g in range(out.shape[1]):
            out[i, g] *= group_scale[g]


@jit()
def _pca_coarse_bounds(margin, queries_coarse, train_coarse, query_info, train_terms, bounds):
    """PCA stage-1 lower bounds of the first ``bounds.shape[0]`` queries against every training row.

    ``queries_coarse`` holds the queries' int32 code pairs, rows padded to
    a multiple of ``BLOCK_QUERIES``, ``train_coarse`` the training rows'
    code panels (``pair_products``), ``train_terms`` the rows' terms of the
    bound, ``margin`` the relative safety margin. The driver calls it (or
    ``_pooled_coarse_bounds``) for each task before the task's search, so
    that no search kernel compiles either. The cross terms of the stage-1 projections are exact integer products
    of their codes, taken against runs of ``PCA_TRAIN_BLOCK`` training rows
    whose bounds are filled in while the products are in cache; the bounds
    are then taken in ``train_terms``' precision (see ``_fill_pca_bounds``).
    """
    n_train = bounds.shape[1]
    size = bounds.shape[0]
    # The query's terms of the bound, in the fill's precision.
    dtype = train_terms.dtype
    query_terms = np.empty((size, 5), dtype=dtype)
    for b in range(size):
        query_terms[b, 0] = query_info[b, 0]
        query_terms[b, 1] = query_info[b, 1]
        query_terms[b, 2] = margin * query_info[b, 2]
        query_terms[b, 3] = query_info[b, 4]
        query_terms[b, 4] = query_info[b, 5]
    cross = np.empty((queries_coarse.shape[0], PCA_TRAIN_BLOCK), dtype=np.int32)
    for train_start in range(0, n_train, PCA_TRAIN_BLOCK):
        train_stop = min(train_start + PCA_TRAIN_BLOCK, n_train)
        n_panels = -(-(train_stop - train_start) // PANEL_ROWS)
        _pair_products(queries_coarse, train_coarse, train_start // PANEL_ROWS, n_panels, cross)
        # Each row of terms sliced alone: contiguous, where rows of a 2-D
        # slice would not be (the fill's loop then did not vectorise).
        norms_t = train_terms[0, train_start:train_stop]
        residuals_t = train_terms[1, train_start:train_stop]
        margins_t = train_terms[2, train_start:train_stop]
        scales_t = train_terms[3, train_start:train_stop]
        errors_t = train_terms[4, train_start:train_stop]
        for b in range(size):
            _fill_pca_bounds(
                cross[b], query_terms[b, 0], query_terms[b, 1], query_terms[b, 2], query_terms[b, 3],
                query_terms[b, 4], norms_t, residuals_t, margins_t, scales_t, errors_t,
                bounds[b, train_start:train_stop],
            )


@jit()
def _pooled_coarse_bounds(metric, p, margin, rounding, queries_coarse, train_coarse, query_info, train_info, bounds):
    """Pooled stage-1 lower bounds of the first ``bounds.shape[0]`` queries against every training row.

    ``queries_coarse`` holds coarse pooled rows, ``train_coarse`` those of
    the training rows transposed, ``train_info`` the (4, n_train)
    ``train_info`` of the search; ``margin`` is the relative safety margin
    of the bounds, ``rounding`` that of single-precision pooled features.
    The reduced distances between coarse pooled rows are summed feature by
    feature along contiguous runs of training rows (``train_coarse`` is
    stored transposed), which vectorises across rows; see
    ``_fill_pooled_bounds`` for ``rounding``.
    """
    n_train = bounds.shape[1]
    for train_start in range(0, n_train, POOLED_TRAIN_BLOCK):
        train_stop = min(train_start + POOLED_TRAIN_BLOCK, n_train)
        for b in range(bounds.shape[0]):
            _fill_pooled_bounds(
                queries_coarse[b], train_coarse, train_start, train_stop, metric, p, margin,
                rounding, query_info[b, 0], train_info[0], bounds[b],
            )


@jit(fastmath=True)
def _fill_pca_bounds(
    cross, norm_q, residual_q, margin_q, scale_q, error_q, norms_t, residuals_t, margins_t, scales_t, errors_t, out
):
    """``|P(q - t)|^2 + (|r_q| - |r_t|)^2``, less the margins of q and of every row t.

    ``cross`` holds the integer products of the codes (see ``_quantise``):
    ``x_q . x_t <= s_q s_t cross + s_t err_q + s_q err_t``, so
    ``|x_q|^2 + |x_t|^2 - 2 (that)`` bounds the projected term from below.
    The other inputs are in float32 on the digits (twice the SIMD lanes
    and half the memory traffic of float64: 2.4 against 4.2 us a query for
    10,000 rows, measured). The margin then also covers that arithmetic:
    with ``S = |q'|^2 + |t'|^2`` and float32's unit roundoff ``u``,
    rounding the norms to float32 moves the projected term by at most
    ``u S`` and its sum by ``u S``; the scaled product (at most ``S / 2``
    plus the small error terms, five roundings: the product, both scales,
    two multiplications) by ``5 u S`` once doubled, its sum with the error
    terms by ``u S``, the difference by ``2 u S``; the residual term
    ``(r_q - r_t)^2`` by ``10 u S`` (``r^2 <= |x'|^2``); the final sum,
    difference and store to ``out`` by ``8 u S``. ``PCA_FILL_ROUNDING`` is
    twice the total (28 u S). The error terms' own rounding is covered by
    ``CODE_ROUNDING``. In float64 (for projections too large for float32),
    the same allowance covers the rest.
    """
    for j in range(out.shape[0]):
        product = (scales_t[j] * np.float32(cross[j])) * scale_q + (scales_t[j] * error_q + scale_q * errors_t[j])
        projected = max(norm_q - norm_q, norm_q + norms_t[j] - (product + product))
        residual = residual_q - residuals_t[j]
        out[j] = min(projected + residual * residual - (margin_q + margins_t[j]), SINGLE_LIMIT)


@jit(fastmath=True)
def _fill_pooled_bounds(
    query_coarse, train_coarse, start, stop, metric, p, margin, rounding, query_magnitude, train_magnitude, out
):
    """Reduced distances between one pooled query and pooled rows ``start:stop``, less the margins.

    ``train_coarse`` has shape (n_groups, n_train): each inner loop runs along
    contiguous rows, into a fresh local accumulator. (Accumulating into
    ``out`` directly keeps LLVM from vectorising: 4x slower, measured.)

    The pooled features may be single precision (Manhattan), with sums in
    single precision: the computed distance ``S~`` is then within
    ``rounding (M_q + M_t)`` of the distance between the float64 features,
    ``M`` being the sum of a row's absolute pooled features
    (``query_magnitude``, ``train_magnitude``): each term errs by at most
    ``3 u (|a_g| + |b_g|)`` (rounding of both features and of the
    difference) and the sum of ``G`` terms by ``G u`` of their total
    (Higham, section 3.1, in any order). ``rounding`` is 0 for float64.
    """
    n_rows = stop - start
    total = np.zeros(n_rows, dtype=train_coarse.dtype)
    n_groups = query_coarse.shape[0]
    next_group = 0
    if metric == MANHATTAN:
        # Four groups a pass: one load and store of the running totals per
        # four columns instead of per column, the limit of the one-column
        # loop (24 against 27.5 us a query for the digits' 49 groups, one
        # thread, measured).
        next_group = n_groups - n_groups % 4
        for g in range(0, next_group, 4):
            v0, v1, v2, v3 = query_coarse[g], query_coarse[g + 1], query_coarse[g + 2], query_coarse[g + 3]
            c0 = train_coarse[g, start:stop]
            c1 = train_coarse[g + 1, start:stop]
            c2 = train_coarse[g + 2, start:stop]
            c3 = train_coarse[g + 3, start:stop]
            for j in range(n_rows):
                total[j] += (abs(v0 - c0[j]) + abs(v1 - c1[j])) + (abs(v2 - c2[j]) + abs(v3 - c3[j]))
    for g in range(next_group, n_groups):
        value = query_coarse[g]
        column = train_coarse[g, start:stop]
        if metric == MANHATTAN:
            for j in range(n_rows):
                total[j] += abs(value - column[j])
        elif metric == CHEBYSHEV:
            for j in range(n_rows):
                # fmax, not max: no masked store on AVX2 (see ``_strided_minima``).
                total[j] = np.fmax(total[j], abs(value - column[j]))
        elif p == 3.0:
            for j in range(n_rows):
                diff = abs(value - column[j])
                total[j] += diff * diff * diff
        else:
            for j in range(n_rows):
                total[j] += abs(value - column[j]) ** p
    out_run = out[start:stop]
    magnitudes = train_magnitude[start:stop]
    for j in range(n_rows):
        widened = rounding * (query_magnitude + magnitudes[j])
        out_run[j] = _round_down_float32(np.float64(total[j]) * (1.0 - margin) - widened)


@jit()
def _round_down_float32(value):
    """A float32 no greater than ``value`` (see FLOAT32_ULP)."""
    lowered = value - abs(value) * FLOAT32_ULP
    return np.float32(min(max(lowered, -FLOAT32_LIMIT), FLOAT32_LIMIT))


@jit()
def _float32_threshold(value):
    """A float32 no less than ``value``, or FLOAT32_LIMIT if smaller (see FLOAT32_ULP).

    A stage-1 bound (float32, at most FLOAT32_LIMIT) within ``value`` is
    then within the result.
    """
    raised = value + abs(value) * FLOAT32_ULP
    return np.float32(min(max(raised, -FLOAT32_LIMIT), FLOAT32_LIMIT))


@jit(fastmath=True)
def _count_within(bounds, threshold):
    """How many of ``bounds`` are <= threshold (a vectorised count).

    Callers pass a slice rather than a range of indices: a loop from 0 to the
    length is one LLVM vectorises well; ``range(start, stop)`` indexing ran
    5x slower (measured: 6 against 1.2 us for 10,000 float32 bounds).
    """
    count = 0
    for j in range(bounds.shape[0]):
        count += bounds[j] <= threshold
    return count


@jit(finite=True)
def _strided_minima(row, out, spare):
    """Smallest bound of each group of rows ``g, g + G, g + 2G, ...`` (``G = out.shape[0]``).

    Strided groups make the loop element-wise minima of consecutive runs of
    ``G`` bounds, which LLVM vectorises: 0.9 us for 10,000 bounds, against
    2.3 us for the minima of blocks of 32 consecutive rows, which it did not.
    ``G <= row.shape[0]``.

    Each pass takes two runs and writes the minima into the other of
    ``out`` and ``spare`` (an array of the same shape, overwritten), never
    into the array it reads: LLVM compiles an update in place,
    ``out[g] = min(out[g], run[g])``, to a masked store, which AVX2 has
    only as ``vmaskmovps``, microcoded on AMD CPUs. On a Zen 4, 10,000
    bounds took 4.9 us in place against 1.0 us so for an AVX2 build
    (``NUMBA_CPU_NAME=haswell``), and 1.1 us both ways for AVX-512.
    """
    n_groups = out.shape[0]
    n_runs = row.shape[0] // n_groups
    tail = row[n_runs * n_groups :]
    # The first pass takes runs 0 and 1 (or run 0 alone), each next pass
    # two more runs (or the last), then one pass the tail: start in the
    # array that the last pass leaves the minima in.
    n_passes = 1 + (max(n_runs - 2, 0) + 1) // 2 + (tail.shape[0] > 0)
    current, other = (out, spare) if n_passes % 2 == 1 else (spare, out)
    first = row[:n_groups]
    if n_runs >= 2:
        second = row[n_groups : 2 * n_groups]
        for g in range(n_groups):
            current[g] = min(first[g], second[g])
    else:
        for g in range(n_groups):  # explicit loops compile much faster than slice assignment
            current[g] = first[g]
    for run_id in range(2, n_runs, 2):
        run = row[run_id * n_groups : (run_id + 1) * n_groups]
        if run_id + 1 < n_runs:
            next_run = row[(run_id + 1) * n_groups : (run_id + 2) * n_groups]
            for g in range(n_groups):
                other[g] = min(current[g], min(run[g], next_run[g]))
        else:
            for g in range(n_groups):
                other[g] = min(current[g], run[g])
        current, other = other, current
    if tail.shape[0] > 0:
        for g in range(tail.shape[0]):
            other[g] = min(current[g], tail[g])
        for g in range(tail.shape[0], n_groups):
            other[g] = current[g]


@jit(finite=True)
def _seed_limit(minima, n_seeds):
    """A bound within which at least ``n_seeds`` groups, and not many more, have their minimum.

    Bisection on the value with vectorised counts: at most SEED_BISECTIONS
    counts over the group minima, stopping once at most twice ``n_seeds``
    groups are within. (A quickselect over the digits' 313 minima
    took 2.8 us a query, against 0.6 us on input it had seen before: the
    cost is mispredicted branches.) ``n_seeds < minima.shape[0]``.
    """
    low = minima[0]
    high = minima[0]
    for block_id in range(minima.shape[0]):
        low = min(low, minima[block_id])
        high = max(high, minima[block_id])
    if _count_within(minima, low) >= n_seeds:
        return low
    for _ in range(SEED_BISECTIONS):
        middle = np.float32(0.5 * (np.float64(low) + np.float64(high)))
        if middle <= low or middle >= high:
            break
        count = _count_within(minima, middle)
        if count >= n_seeds:
            high = middle
            if count <= 2 * n_seeds:
                break
        else:
            low = middle
    return high


@jit()
def _smallest_bounds(row, minima, n_seeds, seed_bounds, seed_rows):
    """Put ``n_seeds`` rows of smallest bound in ``row`` first in ``seed_rows`` (any order), their bounds in ``seed_bounds``.

    At least ``n_seeds`` rows are within ``_seed_limit`` (one per group of
    ``minima``): they are listed (``bitscan._rows_within``), and a
    quickselect keeps the ``n_seeds`` smallest. ``seed_bounds`` and
    ``seed_rows`` hold one item per training row.
    """
    limit = np.float32(FLOAT32_LIMIT)
    if n_seeds < minima.shape[0]:
        limit = _seed_limit(minima, n_seeds)
    n_held = _rows_within(row, limit, seed_rows)
    for position in range(n_held):
        seed_bounds[position] = row[seed_rows[position]]
    if n_held > n_seeds:
        _keep_smallest(seed_bounds, seed_rows, n_held, n_seeds)


@jit()
def _offer(best_values, best_indices, size, value, index):
    """Offer a row to the max-heap of the k best (capacity ``best_values.shape[0]``); return its new size."""
    if size < best_values.shape[0]:
        _heap_push(best_values, best_indices, size, value, index)
        return size + 1
    if _is_worse(best_values[0], best_indices[0], value, index):
        _heap_replace_top(best_values, best_indices, size, value, index)
    return size


@jit()
def _pca_stage2_bound(b, j, queries_fine, train_fine, query_info, train_info, metric, p, margin, rounding):
    """PCA stage-2 lower bound of the reduced distance of the task's query b and row j.

    ``|x_q|^2 + |x_t|^2 - 2 x_q . x_t`` for the stage-2 projections x, the
    cross term from the exact integer product of their codes widened by
    the codes' error as in stage 1 (see ``_quantise``), in float64; the
    codes take half the memory of float32 projections (2.6 against 5.1 MB
    for the digits), and their product fewer instructions than a float32
    squared distance (A/B against that: 0.92 of the search time at k=1,
    0.96 at k=5, 0.99 at k=25, two threads). The ``margin``, relative to
    ``|q'|^2 + |t'|^2``, covers the float64 arithmetic too. ``metric``,
    ``p`` and ``rounding`` are not read.
    """
    scale_q, scale_t = query_info[b, 7], train_info[5, j]
    product = scale_q * scale_t * np.float64(_code_dot(queries_fine[b], train_fine[j]))
    product += scale_t * query_info[b, 8] + scale_q * train_info[6, j]
    projected = max(0.0, query_info[b, 6] + train_info[4, j] - (product + product))
    residual = query_info[b, 3] - train_info[3, j]
    bound = projected + residual * residual
    return bound - margin * (query_info[b, 2] + train_info[2, j])


@jit()
def _manhattan_stage2_bound(b, j, queries_fine, train_fine, query_info, train_info, metric, p, margin, rounding):
    """Pooled Manhattan stage-2 lower bound of the task's query b and row j.

    Sums in the features' own precision (vectorised; in float32, twice the
    lanes of float64): ``rounding`` is the allowance of that sum, relative,
    as in ``_fill_pooled_bounds``, to the sums of absolute fine features in
    ``query_info[:, 1]`` and ``train_info[1]``. ``metric`` and ``p`` are not
    read.
    """
    # The literal metric makes a compilation of the sum for Manhattan alone
    # (a literal argument is a constant in the compiled callee): with the
    # metric a run-time int64, the Manhattan search took twice the time at
    # k=5 and k=25.
    bound = np.float64(_fast_rdist(queries_fine[b], train_fine[j], MANHATTAN, 1.0, 1))
    return bound * (1.0 - margin) - rounding * (query_info[b, 1] + train_info[1, j])


@jit()
def _pooled_stage2_bound(b, j, queries_fine, train_fine, query_info, train_info, metric, p, margin, rounding):
    """Pooled stage-2 lower bound of the task's query b and row j, any metric.

    Sums in float64 (``distances._exact_rdist``); ``rounding`` covers the
    features' rounding alone.
    """
    bound = _exact_rdist(queries_fine[b], train_fine[j], metric, p)
    return bound * (1.0 - margin) - rounding * (query_info[b, 1] + train_info[1, j])


def _stage2_bound(b, j, queries_fine, train_fine, query_info, train_info, metric, p, margin, rounding):
    """Stage-2 lower bound of the reduced distance of the task's query b and row j, in compiled code.

    The kernel of the search's case, chosen by type when the search
    compiles (see the overload below): ``_pca_stage2_bound`` for the PCA
    codes (int16), ``_manhattan_stage2_bound`` for a metric that is the
    constant ``MANHATTAN``, ``_pooled_stage2_bound`` otherwise. A runtime
    ``if`` would have numba type and compile the other cases' distance
    kernels too, for types they never run with.
    """
    raise NotImplementedError("only callable from compiled code; call the kernel of the case instead")


@overload(_stage2_bound, jit_options={"nogil": True, "error_model": "numpy"}, prefer_literal=True)
def _stage2_bound_by_case(b, j, queries_fine, train_fine, query_info, train_info, metric, p, margin, rounding):
    if isinstance(train_fine, types.Array) and train_fine.dtype == types.int16:
        return _pca_stage2_bound.py_func
    if isinstance(metric, types.IntegerLiteral) and metric.literal_value == MANHATTAN:
        return _manhattan_stage2_bound.py_func
    return _pooled_stage2_bound.py_func


@jit(inline=True)
def _stage2_filter(
    rows, n_rows, threshold, b, queries_fine, train_fine, query_info, train_info, metric, p, margins, out_bounds
):
    """Stage-2 bounds of the task's query b and ``rows[:n_rows]``; keep those within ``threshold``.

    The kept rows move to the front of ``rows``, in order, with their bounds
    in ``out_bounds``; returns how many. Rows a few places ahead are
    prefetched. Inlined, so that a constant metric folds into the loop.
    """
    n_kept = 0
    for position in range(n_rows):
        _prefetch_row(train_fine, rows[min(position + PREFETCH_AHEAD, n_rows - 1)], FINE_PREFETCH_LINES)
        j = rows[position]
        bound = _stage2_bound(b, j, queries_fine, train_fine, query_info, train_info, metric, p, margins[1], margins[3])
        rows[n_kept] = j
        out_bounds[n_kept] = bound
        n_kept += bound <= threshold
    return n_kept


@jit(inline=True)
def _offer_exact(rows, row_bounds, n_rows, query, train, train_ids, metric, p, best_values, best_indices, size):
    """Exact distances of ``rows[:n_rows]`` whose bound is within the k-th best so far, offered to the heap.

    Row ``j`` is offered under its training index ``train_ids[j]``, which
    also breaks ties.

    Every row is computed until the heap holds k; after that, a row whose
    bound exceeds the heap's top (equal is kept: a lower index wins a tie)
    is skipped. Rows a few places ahead are prefetched. Returns the heap's
    new size and how many distances were computed.
    """
    n_neighbors = best_values.shape[0]
    n_computed = 0
    # The first rows are requested together, so that their reads overlap
    # (0.94 to 0.99 of the search time at k=1 and k=5, A/B).
    for position in range(min(PREFETCH_AHEAD, n_rows)):
        _prefetch_row(train, rows[position], EXACT_PREFETCH_LINES, True)
    for position in range(n_rows):
        _prefetch_row(train, rows[min(position + PREFETCH_AHEAD, n_rows - 1)], EXACT_PREFETCH_LINES, True)
        if size == n_neighbors and row_bounds[position] > best_values[0]:
            continue
        j = rows[position]
        n_computed += 1
        size = _offer(best_values, best_indices, size, _exact_rdist(query, train[j], metric, p), train_ids[j])
    return size, n_computed


def _make_pruned_select(kind, metric, power):
    """One search dispatcher for one case of the index: ``kind`` and ``metric`` are constants in it.

    The body is inlined with both as constants, so its distance loops lose
    their metric switch (the stage-2 and exact distances ran 1.3 to 2.5 times
    faster so, measured). Each case is its own dispatcher, compiled the first
    time a search of that case runs: a Manhattan search never compiles the
    PCA (Euclidean) copy, nor the reverse. ``metric`` and ``power`` None
    make the general pooled search, with the metric and power passed at run
    time.
    """

    @jit()
    def pruned_select(
        positions, queries, train, train_ids, bounds, queries_fine, train_fine, query_info, train_info, metric_id, p,
        margins, n_seeds, out_rdist, out_index, out_counts,
    ):
        """Exact k nearest training rows of the queries at ``positions``, pruning with bounds.

        One call runs on one thread and releases the GIL; the driver runs tasks
        of queries in threads.

        Parameters
        ----------
        positions : ndarray of shape (n_task,), int64
            The task's queries: rows of ``queries`` and of the outputs.
        queries, train : ndarray of shape (n_queries | n_train, n_features)
        train_ids : ndarray of shape (n_train,), int64
            Training index of each row of ``train`` (and of the features below),
            which may be stored in another order: the outputs and the
            tie-breaking use these indices.
        bounds : ndarray of shape (n_task, n_train), float32
            The stage-1 lower bounds of the task's queries (rows in the order
            of ``positions``) against every row of ``train``, from
            ``_pca_coarse_bounds`` or ``_pooled_coarse_bounds``; overwritten.
        queries_fine, train_fine : ndarray of shape (n_task | n_train, n_fine)
            Stage-2 codes of the projections (PCA, int16) or fine pooled rows
            (POOLED, float32 or float64 as the index chose).
        query_info : ndarray of shape (n_task, 4), or (n_task, PCA_INFO_COLUMNS) for PCA, float64
            PCA: the ``out_info`` columns of ``_pca_project``.
        train_info : ndarray of shape (4, n_train), or (7, n_train) for PCA, float64
            PCA: squared norm of the stage-1 projection, stage-1 residual norm,
            squared norm of the centred row, stage-2 residual norm, squared norm
            of the stage-2 projection, the stage-2 codes' scale and error term.
            POOLED: the sums of absolute coarse and fine features.
        metric_id, p : int, float
            Metric and Minkowski power, read by the general pooled search
            only (the other cases hold theirs as constants).
        margins : ndarray of shape (4,), float64
            Relative safety margins of the stage-1 and stage-2 bounds, then the
            allowances for single-precision sums: stage-1 pooled sums (POOLED),
            stage-2 sums (PCA and pooled Manhattan); see
            ``_pruning.single_precision_rounding``. This kernel reads the
            stage-2 ones.
        n_seeds : int
            Rows computed exactly first (>= k): those of smallest stage-2 bound
            among the ``PCA_SEED_CANDIDATES * n_seeds`` (or
            ``POOLED_SEED_CANDIDATES * n_seeds``) rows of smallest stage-1
            bound.
        out_rdist, out_index : ndarray of shape (n_queries, n_neighbors)
            Exact reduced distances (ascending) and training indices.
        out_counts : ndarray of shape (n_queries, 2), int64
            Rows surviving stage 1 and rows computed exactly, per query.
        """
        _pruned_select_body(
            positions, queries, train, train_ids, bounds, queries_fine, train_fine, query_info, train_info, kind,
            metric_id if metric is None else metric, p if metric is None else power, margins, n_seeds, out_rdist,
            out_index, out_counts,
        )

    return pruned_select


# The cases of an index that get a search of their own, each with the
# constant power its metric runs with: PCA (Euclidean), pooled Manhattan, and
# the general pooled search (metric and power passed at run time).
PRUNED_CASES = {(PCA, EUCLIDEAN): 2.0, (POOLED, MANHATTAN): 1.0, (POOLED, None): None}


def pruned_case(kind, metric):
    """The key of :data:`PRUNED_CASES` that an index of ``kind`` searched with metric id ``metric`` runs."""
    if kind == PCA:
        return PCA, EUCLIDEAN
    if metric == MANHATTAN:
        return POOLED, MANHATTAN
    return POOLED, None


# The k search of each case (see ``_make_pruned_select``).
_PRUNED_SELECT = {case: _make_pruned_select(*case, power) for case, power in PRUNED_CASES.items()}


def pruned_select_kernel(kind, metric):
    """The compiled k search for an index of ``kind`` and a metric id (see ``_make_pruned_select``)."""
    return _PRUNED_SELECT[pruned_case(kind, metric)]


@jit(inline=True)
def _pruned_select_body(
    positions, queries, train, train_ids, bounds, queries_fine, train_fine, query_info, train_info, kind, metric, p,
    margins, n_seeds, out_rdist, out_index, out_counts,
):
    """The search of ``_make_pruned_select``'s dispatchers, inlined in each."""
    n_train = train.shape[0]
    n_neighbors = out_rdist.shape[1]
    minima = np.empty(-(-n_train // SEED_GROUP_ROWS), dtype=np.float32)
    spare_minima = np.empty_like(minima)
    seed_bounds = np.empty(n_train, dtype=np.float32)
    listed = np.empty(n_train, dtype=np.int64)
    listed_bounds = np.empty(n_train, dtype=np.float64)
    best_values, best_indices = _new_heap(n_neighbors)
    # The query in float64 for its exact distances, as brute force takes it.
    query = np.empty(queries.shape[1], dtype=np.float64)
    for b in range(positions.shape[0]):
        i = positions[b]
        row = bounds[b]
        _copy_float64(queries[i], query)
        _strided_minima(row, minima, spare_minima)

        # Seeds: among the rows of smallest stage-1 bound, those of smallest
        # stage-2 bound (PCA: all of them), computed exactly; their k-th
        # best distance is the first threshold.
        per_seed = PCA_SEED_CANDIDATES if kind == PCA else POOLED_SEED_CANDIDATES
        n_candidates = min(n_train, per_seed * n_seeds)
        _smallest_bounds(row, minima, n_candidates, seed_bounds, listed)
        if n_candidates > n_seeds:
            _stage2_filter(
                listed, n_candidates, np.inf, b, queries_fine, train_fine, query_info, train_info, metric, p,
                margins, listed_bounds,
            )
            _keep_smallest(listed_bounds, listed, n_candidates, n_seeds)
        else:
            # The seeds are all the candidates: their stage-2 bounds would
            # serve only to skip seeds beyond the k-th best so far, and on
            # the digits neither bound skips any (every seed's bound is
            # below the k-th best of the seeds, checked offline at k = 5
            # and 25). Their stage-1 bounds keep the skip valid for free:
            # 0.97 to 0.98 of the search time at k=25, 0.99 to 1.0 at k=5,
            # the same at k=1 (two A/B runs, two threads).
            for s in range(n_seeds):
                listed_bounds[s] = seed_bounds[s]
        size, n_exact = _offer_exact(
            listed, listed_bounds, n_seeds, query, train, train_ids, metric, p, best_values, best_indices, np.int64(0)
        )

        # Every other row is pruned unless both of its bounds are within the
        # threshold (equal is kept: a lower index wins a tie). First the
        # stage-1 survivors, listed in row order (the seeds' bounds are
        # raised to SKIP).
        for s in range(n_seeds):
            row[listed[s]] = SKIP
        threshold = best_values[0]
        n_listed = _rows_within(row, _float32_threshold(threshold), listed)
        n_kept = _stage2_filter(
            listed, n_listed, threshold, b, queries_fine, train_fine, query_info, train_info, metric, p,
            margins, listed_bounds,
        )
        size, n_survivors_exact = _offer_exact(
            listed, listed_bounds, n_kept, query, train, train_ids, metric, p, best_values, best_indices, size
        )
        n_exact += n_survivors_exact

        out_counts[i, 0] = n_seeds + n_listed
        out_counts[i, 1] = n_exact
        _heap_drain_sorted(best_values, best_indices, out_rdist[i], out_index[i])
