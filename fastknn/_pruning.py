"""Driver of the pruned exact search (``algorithm="pruned"``).

:func:`build_index` runs at ``fit``: it computes the training rows' lower-bound
features (PCA projections for Euclidean, block-pooled rows otherwise), and
stores the rows grouped by locality. :func:`pruned_search` then answers
queries, grouped the same way, with the same results as ``_search.search``;
see ``_kernels/pruning.py`` for the method.
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
from scipy.linalg import solve_triangular

from ._cosine import check_cosine_algorithm
from ._kernels.pair_products import BLOCK_QUERIES, CODE_PAIRS, PANEL_ROWS
from ._kernels.pruning import (
    BOUND_MARGIN,
    PCA,
    PCA_FILL_ROUNDING,
    PCA_FINE_ROUNDING,
    PCA_INFO_COLUMNS,
    POOLED,
    _pca_coarse_bounds,
    _pca_project,
    _pooled_coarse_bounds,
    _pooled_rows,
    pruned_select_kernel,
)
from ._kernels.radius import pruned_radius_kernel
from ._radius import concatenate_tasks, radius_search
from ._search import (
    _METRIC_IDS,
    blas_limit,
    fast_pass_may_overflow,
    run_query_blocks,
    run_row_blocks,
    search,
    thread_limit,
)

# PCA dimensions of the two Euclidean stages. Stage 1's product over every
# training row is most of a search's cost: with 48 components instead of 64,
# twice the rows survive it (37 against 18 a query at k=1 on the digits)
# but the search took 0.94 to 0.96 of the time at k=1 and 5, the same at
# k=25 (three A/B runs in one process); 32 was slower from k=5. Stage 1's
# integer codes hold at most 2 * CODE_PAIRS components.
COARSE_COMPONENTS = 48
FINE_COMPONENTS = 128
# Stage 2's components in the index that ``"auto"`` builds, which one fit +
# predict pays for: the basis and the training set's float64 projection
# (about half of ``auto``'s fit on the digits) shrink with them, while the
# search computes a few more rows exactly. On the digits (10,000 training
# rows, 2,000 queries, fit + predict against brute force, 7 interleaved
# rounds, paired ratios) at k = 1 / 3 / 5 / 25: 128 components 1.17 /
# 1.17 / 1.14 / 1.04, 96 1.32 / 1.33 / 1.27 / 1.09, 80 1.43 / 1.38 / 1.32
# / 1.09, 64 1.47 / 1.38 / 1.30 / 1.00 on an AVX-512 Xeon; on AVX2
# (``NUMBA_CPU_NAME=haswell``) 128 1.46 / 1.43 / 1.40 / 1.29, 80 1.79 /
# 1.70 / 1.63 / 1.34, 64 1.86 / 1.72 / 1.62 / 1.27. ``"pruned"`` keeps
# FINE_COMPONENTS for those who search one index many times.
AUTO_FINE_COMPONENTS = 80
# Rows used to estimate the centre and the principal subspace (any centre
# and orthonormal basis give valid bounds; a better one only prunes more).
# On the digits, a basis from 1,024 rows and one power iteration in single
# precision took 35 ms against 100 ms for 2,048 rows, two iterations in
# float64, and left 321 rows a query after stage 1 at k=25 instead of 304
# (77 computed exactly instead of 73); 512 rows left 359 and 86.
PCA_SAMPLE = 1024
# Training rows projected per call at fit (see ``_pca_features``).
PCA_PROJECT_ROWS = 1024
# Rows with at most this share of non-zero features are projected through
# their non-zeros rather than in the matrix product (see ``_pca_project``).
SPARSE_PROJECTION_SHARE = 0.25
# Block sides of the pooled stages for square images; flat rows use groups
# of COARSE_BLOCK**2 and FINE_BLOCK**2 consecutive features.
COARSE_BLOCK = 4
FINE_BLOCK = 2
# "auto" prunes when the training set has at least AUTO_MIN_TRAIN rows and,
# searching AUTO_PROBE training rows among a sample of AUTO_PROBE_SAMPLE
# others, at most AUTO_MAX_SURVIVING of the sample survives stage 1.
AUTO_MAX_SURVIVING = 0.2
# Euclidean "auto" keeps brute force without a probe where stage 1's
# components capture less than this share of the variance: 0.27 on
# Gaussian noise (20,000 x 256), where the probe cost 20 to 40 ms of a
# 0.1 to 0.4 s fit + predict; 0.81 on the digits.
AUTO_MIN_COARSE_VARIANCE = 0.5
# Euclidean "auto" keeps brute force, without a probe, up to this many
# features: stage 1 computes bounds over COARSE_COMPONENTS components for
# every training row, and brute force's matrix product over fewer than
# twice as many features costs no more. Fit + predict of 2,000 queries
# among 200,000 rows with decaying spectra (pruned / brute force, AVX2):
# 2.4 to 2.8 at 16 features, 1.4 to 2.1 at 48, 0.95 to 1.03 at 96, 0.67
# to 0.78 at 192; Gaussian rows of 12 features among 1,000,000 took 12 s
# pruned against 1.9 s.
AUTO_MIN_PRUNED_FEATURES = 2 * COARSE_COMPONENTS + 1
VARIANCE_SAMPLE = 512
AUTO_MIN_TRAIN = 2000
AUTO_PROBE = 16
AUTO_PROBE_SAMPLE = 2048
# Seeds computed exactly first, per neighbour sought: their k-th best
# distance is the first pruning threshold (see ``_kernels/pruning.py``).
SEEDS_PER_NEIGHBOUR = 2

# Queries per task of the pruned search: at most this many, and few enough
# that the task's stage-1 bounds (float32, one per query and training row)
# fit PRUNED_BOUNDS_BYTES. Larger tasks amortise the stage-1 product's
# packing of the training side over more queries: on the 50,000-row
# shift-expanded digits, stage 1 alone took 205, 130 and 110 us a query on
# one thread in tasks of 20, 64 and 128 queries (20 was the old limit's).
# With stage 1 on integer codes (``pair_products``), which need no
# packing, smaller PCA tasks pay instead: the stage-1 bounds of a task of
# 334 queries take 13 MB, one task a thread, beside 31 MB of training rows
# in a 32 MB L3 (presumably they pushed out the rows that the exact
# distances read; 64 queries take 2.6 MB). On the
# digits, tasks of 64 queries took 0.69 to 0.82 of the time of 334 at
# k=25 and 0.53 to 0.88 at k=1 (two threads; one thread 0.98 and 0.86);
# 32, 48 and 96 were within 5% of 64. Pooled Manhattan: 32 or 64 were
# within 4% of 128, which it keeps.
PCA_QUERY_BLOCK = 64
POOLED_QUERY_BLOCK = 128
PRUNED_BOUNDS_BYTES = 16 * 2**20
# Within a task, the stage-1 bounds are taken and searched in sub-blocks of
# queries whose bounds (float32, one per training row) fit this many
# bytes, so that the search's three passes over each query's bounds (its
# seeds' group minima, then two listings) read them from the core's L2
# cache rather than from L3: 16 queries for the digits' 10,000 rows, 640
# KB of a Zen 4's 1 MB L2, where a task of 64 queries writes 2.6 MB. The
# task still projects its queries in one matrix product. On the digits,
# pruned Euclidean search, two threads, A/B in one process: 0.89 to 0.93
# of the time at k=25, 0.87 to 0.99 at k=5, 0.96 to 1.02 at k=1, on both
# AVX-512 and AVX2 builds (one thread, sub-blocks of 8, 12 and 24 were
# within the noise of 16). Pooled Manhattan: 0.90 to 0.97 at k=1, 0.94
# to 1.04 at k=5, 1.00 to 1.09 at k=25.
BOUNDS_BLOCK_BYTES = 640 * 2**10

# Locality order (see ``_locality_centres``): the index stores the training
# rows grouped by their nearest of LOCALITY_CLUSTERS centres, and the search
# runs the queries grouped the same way, so that the rows one query computes
# exactly are still in cache for the next ones. The centres come from
# LOCALITY_ITERATIONS Lloyd iterations on LOCALITY_SAMPLE training rows.
# On the digits (A/B runs in one process, two threads), Euclidean searches
# took 0.88 to 0.91 of the time at k=25, 0.96 to 0.99 at k=5, 1.01 to 1.02
# at k=1; Manhattan 0.90 to 0.95 at k=25. Each order alone gained at most
# 2%. 8, 32 or 64 centres: 1.01 to 1.03 times the time of 16. The cost: a
# second copy of the training set, and about 15 ms at fit for the digits
# (centres 5 ms, assigning the rows 6 ms, the copy 4 ms; on one BLAS
# thread, see ``build_index``).
LOCALITY_CLUSTERS = 16
LOCALITY_SAMPLE = 1024
LOCALITY_ITERATIONS = 6


@dataclass
class PrunedIndex:
    """Lower-bound features of a training set (built by :func:`build_index`)."""

    kind: int
    metric: str
    p: float
    # The training rows in locality order, the training index of each, and
    # the centres that order the queries (None: no reordering).
    rows: np.ndarray = None
    row_ids: np.ndarray = None
    centres: np.ndarray = None
    # Relative safety margins of the stage-1 and stage-2 bounds, and the
    # rounding factors of single-precision pooled features at both stages.
    margins: np.ndarray = None
    # PCA
    mean: np.ndarray = None
    components: np.ndarray = None  # (n_features, FINE_COMPONENTS or AUTO_FINE_COMPONENTS)
    n_coarse: int = 0
    # POOLED
    coarse_groups: tuple = None  # (group_of_feature, group_scale)
    fine_groups: tuple = None
    # Per training row
    train_coarse: np.ndarray = None  # PCA: code panels (see _pca_code_panels); POOLED: (n_coarse, n_train)
    train_fine: np.ndarray = None  # PCA: int16 stage-2 codes; POOLED: fine pooled rows
    train_info: np.ndarray = None  # (4, n_train), PCA (7, n_train): see _kernels.pruning._make_pruned_select
    train_terms: np.ndarray = None  # PCA: (5, n_train), the stage-1 terms; POOLED: train_info
    # Largest absolute value in the training rows, for the overflow checks.
    train_scale: float = 0.0
    # PCA, when built with keep_features: the rows' (fine, codes, info) from
    # _pca_features, in the order of ``rows``.
    features: tuple = None


def _orthonormal_basis(rows, n_components, random_state=0):
    """A centre and an orthonormal basis close to the top principal subspace of ``rows``.

    Both come from a sample of :data:`PCA_SAMPLE` rows: the sample's mean,
    and a randomized range finder with one power iteration, its products in
    single precision, ordered by explained variance. Any centre and any
    orthonormal basis give valid bounds (the bound of a pair depends on the
    centre only through rounding, which the margins cover for any), so an
    estimate from a sample costs nothing in exactness; a basis closer to the
    true PCA only prunes more. The last step, a float64 Householder QR,
    gives the exact orthonormality (to float64 rounding) the margins assume.

    Returns
    -------
    mean : ndarray of shape (n_features,), float64
    basis : ndarray of shape (n_features, n_components), float64
    """
    rng = np.random.default_rng(random_state)
    n_rows, n_features = rows.shape
    n_components = min(n_components, n_features, n_rows)
    if n_rows > PCA_SAMPLE:
        rows = rows[np.sort(rng.choice(n_rows, PCA_SAMPLE, replace=False))]
    mean = rows.mean(axis=0, dtype=np.float64)
    # Single precision unless the products could overflow it: they only
    # steer the basis, whose orthonormality comes from the last QR.
    centred = rows - mean
    if np.abs(centred).max(initial=0.0) < 1e15:
        centred = centred.astype(np.float32)
    with np.errstate(all="ignore"):
        sketch = centred.T @ (centred @ rng.standard_normal((n_features, n_components)).astype(centred.dtype))
        sketch = _orthonormal_columns(sketch)
        sketch = centred.T @ (centred @ sketch)
    basis = _orthonormal_columns(sketch.astype(np.float64))
    # Rotate within the subspace so that components come by decreasing variance.
    with np.errstate(all="ignore"):
        projected = centred @ basis.astype(centred.dtype)
        gram = projected.T.astype(np.float64) @ projected
    if np.all(np.isfinite(gram)):
        basis = basis @ np.linalg.eigh(gram)[1][:, ::-1]
    basis, _ = np.linalg.qr(basis)  # orthonormal to float64 rounding
    return mean, basis


def coarse_variance_share(train, random_state=1):
    """About the share of ``train``'s variance that stage 1's components capture (0 to 1).

    A quick estimate, before any basis is computed: a single-precision
    randomized range finder of :data:`COARSE_COMPONENTS` columns with one
    power iteration on :data:`VARIANCE_SAMPLE` rows (a few ms), which
    slightly underestimates the share of the true principal components.
    Where stage 1 leaves most of the variance in the residual, its bounds
    are loose and pruning cannot pay, whatever the probe would find.
    """
    rng = np.random.default_rng(random_state)
    n_rows, n_features = train.shape
    sample = train[np.sort(rng.choice(n_rows, min(n_rows, VARIANCE_SAMPLE), replace=False))]
    n_components = min(COARSE_COMPONENTS, n_features, sample.shape[0])
    with np.errstate(all="ignore"):
        centred = (sample - sample.mean(axis=0, dtype=np.float64)).astype(np.float32)
        total = float(np.einsum("ij,ij->", centred, centred, dtype=np.float64))
        sketch = centred.T @ (centred @ rng.standard_normal((n_features, n_components)).astype(np.float32))
        sketch = _orthonormal_columns(sketch)
        sketch = _orthonormal_columns(centred.T @ (centred @ sketch))
        captured = float(np.square(centred @ sketch, dtype=np.float64).sum())
    if not (np.isfinite(total) and np.isfinite(captured)) or total <= 0.0:
        return 1.0  # no estimate: the probe decides
    return captured / total


def _orthonormal_columns(matrix):
    """An orthonormal basis of ``matrix``'s columns, in their dtype.

    Cholesky QR (a Gram matrix, its Cholesky factor and a triangular
    solve: 1 to 2 ms for 784 x 128, against about 5 ms for a Householder
    QR) where the columns are well conditioned, Householder QR otherwise.
    Only the basis's final QR must be orthonormal to float64 rounding
    (see :func:`_orthonormal_basis`); this one steers the power iteration.
    """
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(matrix)):
            matrix = np.nan_to_num(matrix, nan=0.0, posinf=1.0, neginf=-1.0)
        largest = np.abs(matrix).max(initial=0.0)
        if largest > 0:
            matrix = matrix / largest
        gram = matrix.T.astype(np.float64) @ matrix
        try:
            factor = np.linalg.cholesky(gram)
        except np.linalg.LinAlgError:
            factor = None
        if factor is not None and np.all(np.diag(factor) > 1e-4 * np.sqrt(gram.trace() / max(1, gram.shape[0]))):
            return solve_triangular(factor, matrix.T, lower=True).T.astype(matrix.dtype)
    return np.linalg.qr(matrix)[0]


def pca_bound_margin(n_features, n_components):
    """Relative safety margin of the PCA bound ``|P(q - t)|^2 + (r_q - r_t)^2``.

    The residual norm ``r = sqrt(max(0, |x'|^2 - |P x'|^2))`` of a centred row
    ``x'`` comes from a difference of float64 sums whose error is at most
    ``kappa |x'|^2``, with ``kappa = (3 n sqrt(m) + 8) u`` (``n`` features,
    ``m`` components, ``u = 2**-53``: each projected coordinate is a dot
    product of length ``n`` with a unit vector). Since
    ``|sqrt(a) - sqrt(b)| <= sqrt(|a - b|)``, the computed residual is within
    ``sqrt(kappa) |x'|`` of the true one: rounding can move it by far more
    than its own relative precision when the row lies almost inside the
    subspace. The residual term is then off by at most
    ``(2 sqrt(kappa) + kappa) 2 S`` with ``S = |q'|^2 + |t'|^2``, and the
    projected term by ``8 sqrt(m) n u S``; the margin covers both twice over.
    (A margin of 1e-9, as for the pooled bounds, was measured to fail: a
    query built with a residual of 1e-8 of its norm got a bound above its
    exact distance by 2.6e-8 S.)
    """
    unit_roundoff = float(np.finfo(np.float64).eps) / 2.0
    kappa = (3.0 * n_features * math.sqrt(n_components) + 8.0) * unit_roundoff
    projected = 8.0 * math.sqrt(n_components) * n_features * unit_roundoff
    return 2.0 * (2.0 * (2.0 * math.sqrt(kappa) + kappa) + projected)


def _pca_may_overflow_float32(centred_sqnorms):
    """Whether single-precision products of projections of rows this long could overflow."""
    largest = float(centred_sqnorms.max()) if centred_sqnorms.size else 0.0
    return largest > float(np.finfo(np.float32).max) / 64.0


def single_precision_rounding(dtype, n_terms):
    """Relative allowance for an ``n_terms``-term sum of float32 features (0 for float64).

    A sum of ``n`` terms, each computed in float32 from features rounded to
    float32 (one rounding of each feature, of their difference or product,
    of the term), errs by at most ``(n + 3) u`` times the sum of the terms'
    magnitudes (Higham, section 3.1, in any order of summation; ``u`` is
    float32's unit roundoff); this returns 1.5 times that factor. For
    pooled Manhattan, at both stages, the allowance is relative to
    ``M_q + M_t``, the sums of the two rows' absolute pooled features (see
    ``_kernels.pruning._fill_pooled_bounds``). (The PCA bounds take their
    cross terms from exact integer products instead, see
    ``_kernels.pruning._quantise``.)
    """
    if dtype == np.float64:
        return 0.0
    unit_roundoff = float(np.finfo(np.float32).eps) / 2.0
    return 1.5 * (n_terms + 3.0) * unit_roundoff


def _pooled_dtype(metric, pooled):
    """dtype of the coarse pooled features.

    float32 for Manhattan, where the stage-1 sums are plain sums of
    differences whose single-precision rounding ``single_precision_rounding`` bounds
    (twice the SIMD lanes of float64), unless the sums could overflow it.
    """
    if metric != "manhattan" or _may_overflow_float32(pooled):
        return np.float64
    return np.float32


def _may_overflow_float32(pooled):
    """Whether L1 sums of pooled rows of this size could overflow float32."""
    largest = float(np.abs(pooled).max()) if pooled.size else 0.0
    return 2.0 * largest * pooled.shape[1] > float(np.finfo(np.float32).max) / 8.0


def _feature_groups(n_features, block):
    """Group id of each feature and the per-group scale exponent base (sizes)."""
    side = math.isqrt(n_features)
    if side * side == n_features and side >= 2 * block:
        rows, cols = np.divmod(np.arange(n_features), side)
        blocks_per_row = -(-side // block)
        groups = (rows // block) * blocks_per_row + cols // block
    else:
        groups = np.arange(n_features) // (block * block)
    sizes = np.bincount(groups).astype(np.float64)
    return groups.astype(np.int64), sizes


def _group_scale(sizes, metric, p):
    """Scale of each pooled feature so that the pooled distance is a lower bound."""
    if metric == "manhattan":
        return np.ones_like(sizes)
    if metric == "chebyshev":
        return 1.0 / sizes
    power = 2.0 if metric == "euclidean" else p
    return sizes ** (-(power - 1.0) / power)


# Rows per thread at least when pooling: below it, starting a thread costs
# more than the rows take.
POOL_BLOCK_ROWS = 1024


def _pool(rows, groups):
    group_of_feature, group_scale = groups
    out = np.empty((rows.shape[0], group_scale.shape[0]), dtype=np.float64)

    def pool_block(first, last):
        _pooled_rows(rows[first:last], group_of_feature, group_scale, out[first:last])

    run_row_blocks(pool_block, rows.shape[0], min_rows=POOL_BLOCK_ROWS)
    return out


def _pca_features(index, rows, known=None):
    """Stage-2 codes (int16), stage-1 codes (int16, rows zero-padded to a multiple of
    ``PANEL_ROWS``) and the (n, PCA_INFO_COLUMNS) info array of ``rows`` (see ``_pca_project``).

    Projected PCA_PROJECT_ROWS rows per call, the calls in numba's threads
    with single-threaded BLAS each: each call's float64 copy of the
    centred rows stays that small, however many rows there are, and no
    BLAS thread is left spinning for the search that follows the fit (see
    ``build_index``).

    ``known``: ``(positions, features)``, the three arrays this function
    returned for ``rows[positions]`` on the same centre and basis (the
    probe's sample, see :func:`choose_algorithm`). They are copied in, and
    only the other rows are projected. Each row's features depend on that
    row alone, so any rows' features give valid bounds together.
    """
    n_rows = rows.shape[0]
    fine = np.empty((n_rows, index.components.shape[1]), dtype=np.int16)
    codes = np.zeros((_round_up(n_rows, PANEL_ROWS), 2 * CODE_PAIRS), dtype=np.int16)
    info = np.empty((n_rows, PCA_INFO_COLUMNS), dtype=np.float64)
    if known is None:
        pending = None
    else:
        known_positions, (known_fine, known_codes, known_info) = known
        fine[known_positions] = known_fine
        codes[known_positions] = known_codes[: known_positions.shape[0]]
        info[known_positions] = known_info
        is_pending = np.ones(n_rows, dtype=bool)
        is_pending[known_positions] = False
        pending = np.flatnonzero(is_pending)
    sparse_limit = sparse_projection_limit(rows.shape[1])

    def project(start, stop):
        if pending is None:
            _pca_project(
                rows, np.arange(start, stop), index.mean, index.components, index.n_coarse, sparse_limit,
                fine[start:stop], codes[start:stop], info[start:stop],
            )
            return
        positions = pending[start:stop]
        block_fine = np.empty((stop - start, fine.shape[1]), dtype=np.int16)
        block_codes = np.empty((stop - start, codes.shape[1]), dtype=np.int16)
        block_info = np.empty((stop - start, PCA_INFO_COLUMNS), dtype=np.float64)
        _pca_project(
            rows, positions, index.mean, index.components, index.n_coarse, sparse_limit, block_fine, block_codes,
            block_info,
        )
        fine[positions], codes[positions], info[positions] = block_fine, block_codes, block_info

    with blas_limit(1):
        n_pending = n_rows if pending is None else pending.shape[0]
        run_query_blocks(project, n_pending, PCA_PROJECT_ROWS, numba.get_num_threads())
    return fine, codes, info


def sparse_projection_limit(n_features):
    """Most non-zero features of a row that ``_pca_project`` projects through its non-zeros."""
    return int(SPARSE_PROJECTION_SHARE * n_features)


def _round_up(value, multiple):
    """The smallest multiple of ``multiple`` that is at least ``value``."""
    return -(-value // multiple) * multiple


def _pca_code_panels(codes):
    """The training rows' stage-1 codes in ``pair_products``' panel layout.

    ``codes``: int16, shape (n_rows, 2 * CODE_PAIRS), ``n_rows`` a multiple
    of ``PANEL_ROWS``. Returns int32 code pairs of shape
    (n_rows / PANEL_ROWS, CODE_PAIRS, PANEL_ROWS).
    """
    pairs = codes.view(np.int32)
    return np.ascontiguousarray(pairs.reshape(-1, PANEL_ROWS, CODE_PAIRS).transpose(0, 2, 1))


def build_index(train, metric, p, locality=True, basis=None, known=None, keep_features=False):
    """Lower-bound features of ``train`` for :func:`pruned_search`.

    Parameters
    ----------
    train : ndarray of shape (n_train, n_features), float32 or float64
    metric, p
        As returned by ``_search.resolve_metric``.
    locality : bool, default=True
        Store a copy of the training rows in locality order (see
        ``LOCALITY_CLUSTERS``); without it, the index refers to ``train``
        itself and the search keeps the queries' order.
    basis : tuple of two ndarrays, optional
        Euclidean: the centre and orthonormal basis (:func:`_orthonormal_basis`)
        to project on, for instance those ``"auto"``'s probe estimated on
        the same training set; by default estimated from ``train``.
    known : tuple, optional
        Euclidean, with ``basis``: ``(positions, features)``, the
        ``features`` of ``train[positions]`` kept by an index built on
        those rows alone with ``keep_features`` (see :func:`_pca_features`);
        only the other rows are projected.
    keep_features : bool, default=False
        Euclidean: keep the rows' features in ``index.features``, for a
        later ``known``.

    Returns
    -------
    index : PrunedIndex
    """
    centres = None
    row_ids = np.arange(train.shape[0])
    # On one BLAS thread (the training set's projection runs in numba's
    # threads instead, see ``_pca_features``): after a multi-threaded call,
    # OpenBLAS's threads spin for about 0.1 s on the cores the next search
    # needs, and the first search after fit took 80 to 88 ms at k=25 on the
    # digits, against 53 to 65 ms for the next ones.
    with blas_limit(1):
        if locality and train.shape[0] > LOCALITY_CLUSTERS:
            centres = _locality_centres(train)
            row_ids = np.argsort(_nearest_centres_in_threads(train, centres), kind="stable")
            train = train[row_ids]
            if known is not None:  # the known rows' new places
                new_place = np.empty_like(row_ids)
                new_place[row_ids] = np.arange(row_ids.shape[0])
                known = (new_place[known[0]], known[1])
        index = _bound_features(train, metric, p, basis, known, keep_features)
    index.rows, index.row_ids, index.centres = train, row_ids, centres
    if index.kind == POOLED:  # the PCA features come with it
        index.train_scale = _largest_magnitude(train)
    return index


def _locality_centres(train, random_state=0):
    """Centres of ``LOCALITY_CLUSTERS`` groups of similar training rows, in ``train``'s dtype.

    Lloyd iterations on a row sample, starting from sample rows, in the
    rows' precision. Only an order comes of them: any centres give the same
    search results, and tighter groups a faster search.
    """
    rng = np.random.default_rng(random_state)
    n_rows = train.shape[0]
    sample = train[rng.choice(n_rows, min(n_rows, LOCALITY_SAMPLE), replace=False)]
    centres = sample[:LOCALITY_CLUSTERS].copy()
    n_clusters = centres.shape[0]
    # Rows near the dtype's range may give infinite scores: still an order.
    with np.errstate(all="ignore"):
        for _ in range(LOCALITY_ITERATIONS):
            membership = _nearest_centre(sample, centres) == np.arange(n_clusters)[:, None]
            sizes = membership.sum(axis=1)
            # The members' sums as one matrix product (a loop of masked
            # means took twice as long).
            sums = membership.astype(sample.dtype) @ sample
            filled = sizes > 0
            centres[filled] = sums[filled] / sizes[filled, None]
    return centres


def _nearest_centres_in_threads(rows, centres):
    """:func:`_nearest_centre` of blocks of ``rows`` in threads (single-threaded BLAS each)."""
    nearest = np.empty(rows.shape[0], dtype=np.int64)

    def assign_block(first, last):
        nearest[first:last] = _nearest_centre(rows[first:last], centres)

    run_row_blocks(assign_block, rows.shape[0], min_rows=LOCALITY_SAMPLE)
    return nearest


def _nearest_centre(rows, centres):
    """Index of the nearest of ``centres`` (Euclidean, same dtype) to each of ``rows``."""
    with np.errstate(all="ignore"):
        scores = rows @ centres.T
        scores *= -2.0
        scores += np.einsum("ij,ij->i", centres, centres)
    return scores.argmin(axis=1)


def _bound_features(train, metric, p, basis=None, known=None, keep_features=False):
    """The :class:`PrunedIndex` of ``train``'s rows in their order, less the locality fields.

    ``basis``, ``known`` and ``keep_features``: Euclidean only, as in
    :func:`build_index` (``known``'s positions in ``train``'s order).
    """
    if metric == "euclidean":
        mean, components = _orthonormal_basis(train, FINE_COMPONENTS) if basis is None else basis
        n_coarse = min(COARSE_COMPONENTS, components.shape[1])
        index = PrunedIndex(kind=PCA, metric=metric, p=p, mean=mean, components=components, n_coarse=n_coarse)
        fine, codes, info = _pca_features(index, train, known)
        if keep_features:
            index.features = (fine, codes, info)
        index.train_info = np.ascontiguousarray(info[:, [0, 1, 2, 3, 6, 7, 8]].T)
        index.train_scale = float(info[:, 9].max(initial=0.0))
        index.train_coarse = _pca_code_panels(codes)
        index.train_fine = fine
        # Stage-1 bounds taken in single precision unless the squared norms
        # could overflow it; the margins then also cover their rounding.
        dtype = np.float64 if _pca_may_overflow_float32(info[:, 2]) else np.float32
        n_fine = components.shape[1]
        index.margins = np.array([
            pca_bound_margin(train.shape[1], n_coarse) + PCA_FILL_ROUNDING,
            pca_bound_margin(train.shape[1], n_fine) + PCA_FINE_ROUNDING,
            0.0,
            0.0,
        ])
        index.train_terms = np.array(
            [info[:, 0], info[:, 1], index.margins[0] * info[:, 2], info[:, 4], info[:, 5]], dtype=dtype
        )
        return index
    n_features = train.shape[1]
    coarse_of, coarse_sizes = _feature_groups(n_features, COARSE_BLOCK)
    fine_of, fine_sizes = _feature_groups(n_features, FINE_BLOCK)
    index = PrunedIndex(
        kind=POOLED, metric=metric, p=p,
        coarse_groups=(coarse_of, _group_scale(coarse_sizes, metric, p)),
        fine_groups=(fine_of, _group_scale(fine_sizes, metric, p)),
    )
    coarse = _pool(train, index.coarse_groups)
    fine = _pool(train, index.fine_groups)
    dtype = np.float64 if np.float64 in (_pooled_dtype(metric, coarse), _pooled_dtype(metric, fine)) else np.float32
    # Stage 2 sums Manhattan's float32 features in float32 too; other
    # metrics sum in float64, where only the features' rounding remains
    # (at most u (|a_g| + |b_g|) a term, the allowance for 0 terms).
    n_stage2_terms = fine.shape[1] if metric == "manhattan" else 0
    index.margins = np.array([
        BOUND_MARGIN,
        BOUND_MARGIN,
        single_precision_rounding(dtype, coarse.shape[1]),
        single_precision_rounding(dtype, n_stage2_terms),
    ])
    # train_info[0] and [1]: sums of absolute coarse and fine features, for
    # the rounding allowances.
    index.train_info = np.zeros((4, train.shape[0]), dtype=np.float64)
    index.train_info[0] = np.abs(coarse).sum(axis=1)
    index.train_info[1] = np.abs(fine).sum(axis=1)
    index.train_terms = index.train_info
    # Transposed: the stage-1 loop runs along training rows.
    index.train_coarse = np.ascontiguousarray(coarse.T, dtype=dtype)
    index.train_fine = np.ascontiguousarray(fine, dtype=dtype)
    return index


def pruned_search(queries, train, index, n_neighbors, *, n_jobs=None, return_counts=False):
    """Exact k nearest training rows of every query, pruning with bounds.

    Same contract as ``_search.search``; with ``return_counts``, also the
    (n_queries, 2) array of rows surviving stage 1 and rows computed exactly.
    """
    n_queries = queries.shape[0]
    n_train = train.shape[0]
    features = _query_features(queries, index)
    if features is None:
        # Bounds could overflow: brute force computes each distance exactly.
        return _brute_fallback(queries, train, index, n_neighbors, n_jobs, return_counts)
    metric_id = _METRIC_IDS[index.metric]
    power = 0.0 if index.p is None else float(index.p)
    rdist = np.empty((n_queries, n_neighbors), dtype=np.float64)
    indices = np.empty((n_queries, n_neighbors), dtype=np.int64)
    counts = np.empty((n_queries, 2), dtype=np.int64)
    n_seeds = min(n_train, SEEDS_PER_NEIGHBOUR * n_neighbors)

    select = pruned_select_kernel(index.kind, metric_id)

    def search_block(positions):
        for sub_positions, bounds, block_fine, block_info in _bounded_sub_blocks(
            queries, index, features, metric_id, power, positions
        ):
            select(
                sub_positions, queries, index.rows, index.row_ids, bounds, block_fine, index.train_fine, block_info,
                index.train_info, metric_id, power, index.margins, n_seeds, rdist, indices, counts,
            )

    run_pruned_tasks(search_block, queries, index, n_jobs)
    if return_counts:
        return rdist, indices, counts
    return rdist, indices


def pruned_radius_search(queries, train, index, radius, *, n_jobs=None, sort_distances=False):
    """Every training row within the reduced ``radius`` of each query, pruning with bounds.

    Same contract as ``_radius.radius_search``: ``(rdist, rows, offsets)``,
    query i's rows being ``rows[offsets[i]:offsets[i + 1]]``. A row is
    computed exactly only when both of its lower bounds are within the
    radius (see ``_kernels.radius._make_pruned_radius_select``).
    """
    features = _query_features(queries, index)
    if features is None:
        return radius_search(queries, train, radius, index.metric, index.p, n_jobs=n_jobs,
                             sort_distances=sort_distances)
    metric_id = _METRIC_IDS[index.metric]
    power = 0.0 if index.p is None else float(index.p)
    select = pruned_radius_kernel(index.kind, metric_id)
    tasks = []

    def search_block(positions):
        for sub_positions, bounds, block_fine, block_info in _bounded_sub_blocks(
            queries, index, features, metric_id, power, positions
        ):
            found = select(
                sub_positions, queries, index.rows, index.row_ids, bounds, block_fine, index.train_fine, block_info,
                index.train_info, metric_id, power, index.margins, float(radius), sort_distances,
            )
            tasks.append((sub_positions, found))  # list.append is atomic under the GIL

    run_pruned_tasks(search_block, queries, index, n_jobs)
    return concatenate_tasks(tasks, queries.shape[0])


def _query_features(queries, index):
    """What the tasks of a pruned search share: pooled query features (POOLED), or () (PCA).

    None when the queries' bounds could overflow the index's precision:
    the caller then falls back to brute force.
    """
    n_features = queries.shape[1]
    # The training side was measured at fit: no pass over (or copy of) the
    # training set here.
    scale = max(index.train_scale, _largest_magnitude(queries))
    overflow_metric, overflow_power = ("manhattan", 2.0) if index.metric == "euclidean" else (index.metric, index.p)
    if fast_pass_may_overflow(overflow_metric, overflow_power, np.float64, n_features, scale, scale):
        return None
    if index.kind == PCA:
        if index.train_terms.dtype == np.float32 and n_features * (2.0 * scale) ** 2 > np.finfo(np.float32).max / 64:
            # These queries' projections could overflow the index's float32.
            return None
        return ()
    # Pooled here, in threads of its own, before the tasks' threads.
    coarse = _pool(queries, index.coarse_groups)
    fine = _pool(queries, index.fine_groups)
    if index.train_coarse.dtype == np.float32 and (_may_overflow_float32(coarse) or _may_overflow_float32(fine)):
        # These queries' pooled sums could overflow the index's float32.
        return None
    query_info = np.zeros((queries.shape[0], 4), dtype=np.float64)
    query_info[:, 0] = np.abs(coarse).sum(axis=1)
    query_info[:, 1] = np.abs(fine).sum(axis=1)
    return coarse.astype(index.train_coarse.dtype), fine.astype(index.train_fine.dtype), query_info


def _task_features(queries, index, features, positions):
    """The coarse and fine features and the info array of the queries at ``positions``."""
    if index.kind == PCA:
        # Projected here, in the task's thread: a multi-threaded BLAS call
        # before the tasks would leave BLAS threads spinning on the cores
        # the tasks need.
        size = positions.shape[0]
        block_fine = np.empty((size, index.train_fine.shape[1]), dtype=np.int16)
        codes = np.zeros((_round_up(size, BLOCK_QUERIES), 2 * CODE_PAIRS), dtype=np.int16)
        block_info = np.empty((size, PCA_INFO_COLUMNS), dtype=np.float64)
        _pca_project(
            queries, positions, index.mean, index.components, index.n_coarse,
            sparse_projection_limit(queries.shape[1]), block_fine, codes, block_info,
        )
        return codes.view(np.int32), block_fine, block_info
    queries_coarse, queries_fine, query_info = features
    return queries_coarse[positions], queries_fine[positions], query_info[positions]


def _bounded_sub_blocks(queries, index, features, metric_id, power, positions):
    """A task's queries in sub-blocks, each with its stage-1 bounds, for the search kernels.

    The task's features come first, all at once (the PCA projection is a
    matrix product that pays for packing the basis once per call); then
    each sub-block of :func:`bounds_block_queries` queries gets its
    stage-1 bounds, which the search reads while they are still in the
    core's cache. Yields ``(positions, bounds, fine, info)`` per sub-block.
    """
    block_coarse, block_fine, block_info = _task_features(queries, index, features, positions)
    size = bounds_block_queries(index.rows.shape[0])
    for first in range(0, positions.shape[0], size):
        last = min(first + size, positions.shape[0])
        # PCA codes are padded to whole blocks of the stage-1 product; the
        # pooled bounds read the first ``last - first`` rows alone.
        coarse = block_coarse[first : _round_up(last, BLOCK_QUERIES)]
        bounds = _coarse_bounds(index, metric_id, power, coarse, block_info[first:last], last - first)
        yield positions[first:last], bounds, block_fine[first:last], block_info[first:last]


def bounds_block_queries(n_train):
    """Queries per sub-block of a task (see ``BOUNDS_BLOCK_BYTES``): a multiple of ``BLOCK_QUERIES``."""
    fits = BOUNDS_BLOCK_BYTES // (4 * max(1, n_train))
    return max(BLOCK_QUERIES, fits - fits % BLOCK_QUERIES)


def _coarse_bounds(index, metric_id, power, queries_coarse, query_info, n_task):
    """Stage-1 lower bounds of a task's ``n_task`` queries against every training row of the index.

    ``queries_coarse`` and ``query_info`` are the task's features from
    :func:`_task_features`. Returns a float32 array of shape
    ``(n_task, n_train)``, which the search kernels take (and overwrite).
    Called in the task's thread, before its search: each kind's kernel
    compiles alone, and no search kernel compiles it a second time (see
    ``_kernels.pruning._pca_coarse_bounds`` and ``_pooled_coarse_bounds``).
    """
    bounds = np.empty((n_task, index.rows.shape[0]), dtype=np.float32)
    if index.kind == PCA:
        _pca_coarse_bounds(index.margins[0], queries_coarse, index.train_coarse, query_info, index.train_terms, bounds)
    else:
        _pooled_coarse_bounds(
            metric_id, power, index.margins[0], index.margins[2], queries_coarse, index.train_coarse, query_info,
            index.train_terms, bounds,
        )
    return bounds


def run_pruned_tasks(search_block, queries, index, n_jobs):
    """Call ``search_block(positions)`` on tasks of queries in locality order, in threads."""
    n_queries = queries.shape[0]
    with thread_limit(n_jobs):
        n_threads = numba.get_num_threads()
        # Each thread runs its own small products: BLAS must not start
        # threads of its own inside them.
        with blas_limit(1):
            query_order = _query_order(queries, index, n_threads)
            largest = PCA_QUERY_BLOCK if index.kind == PCA else POOLED_QUERY_BLOCK
            block = pruned_query_block(n_queries, index.rows.shape[0], n_threads, largest)
            run_query_blocks(
                lambda first, last: search_block(query_order[first:last]), n_queries, block, n_threads
            )


def _query_order(queries, index, n_threads):
    """The order in which to search ``queries``: by nearest centre of the index (see ``LOCALITY_CLUSTERS``).

    Stable, so that queries keep their order within a group; the identity
    for an index without centres.
    """
    n_queries = queries.shape[0]
    if index.centres is None:
        return np.arange(n_queries)
    nearest = np.empty(n_queries, dtype=np.int64)

    def assign_block(first, last):
        nearest[first:last] = _nearest_centre(queries[first:last], index.centres)

    # In the threads too: on one thread, this took 0.8 to 1.3 ms of a
    # 55 ms search (2,000 digits, k=25, two threads).
    run_query_blocks(assign_block, n_queries, -(-n_queries // n_threads), n_threads)
    return np.argsort(nearest, kind="stable")


def _largest_magnitude(rows):
    """Largest absolute value in ``rows`` (0 if empty), without an ``abs`` copy."""
    if rows.size == 0:
        return 0.0
    return max(float(rows.max()), -float(rows.min()))


def _brute_fallback(queries, train, index, n_neighbors, n_jobs, return_counts):
    """Brute-force search with ``pruned_search``'s outputs (every row counted as computed)."""
    rdist, indices = search(queries, train, n_neighbors, index.metric, index.p, n_jobs=n_jobs)
    if return_counts:
        return rdist, indices, np.full((queries.shape[0], 2), train.shape[0], dtype=np.int64)
    return rdist, indices


def pruned_query_block(n_queries, n_train, n_threads, largest):
    """Queries per task of :func:`pruned_search`.

    The fewest tasks such that each has at most ``largest`` queries,
    stage-1 bounds within ``PRUNED_BOUNDS_BYTES``, and every thread two
    tasks or more; their number is then rounded up to a multiple of the
    threads, so that the threads finish together.
    """
    n_threads = max(1, n_threads)
    fits = max(1, PRUNED_BOUNDS_BYTES // (4 * max(1, n_train)))
    n_tasks = max(2 * n_threads, -(-n_queries // min(largest, fits)))
    n_tasks = -(-n_tasks // n_threads) * n_threads
    return max(1, -(-n_queries // n_tasks))


def choose_algorithm(algorithm, train, metric, p, n_neighbors, n_jobs=None):
    """The search to use and its index: ``("brute", None)`` or ``("pruned", index)``.

    ``"auto"`` keeps brute force for small training sets (fewer than
    :data:`AUTO_MIN_TRAIN` rows), for Euclidean data of fewer than
    :data:`AUTO_MIN_PRUNED_FEATURES` features, for Euclidean data whose stage-1
    components capture less than :data:`AUTO_MIN_COARSE_VARIANCE` of the
    variance (:func:`coarse_variance_share`), and otherwise prunes when
    the probe (:func:`run_probe`) finds that it pays. For Euclidean data
    the probe projects on the basis that the index then keeps, so that
    choosing costs one basis (about 12 ms on the digits), not two; both
    have :data:`AUTO_FINE_COMPONENTS` components, and the index reuses
    the probe sample's projections.
    """
    if algorithm == "brute":
        return "brute", None
    if metric == "cosine":  # brute force only (``_cosine``)
        check_cosine_algorithm(algorithm)
        return "brute", None
    if algorithm == "auto":
        basis = None
        if train.shape[0] < AUTO_MIN_TRAIN:
            return "brute", None
        if metric == "euclidean":
            if train.shape[1] < AUTO_MIN_PRUNED_FEATURES:
                return "brute", None
            with blas_limit(1):
                if coarse_variance_share(train) < AUTO_MIN_COARSE_VARIANCE:
                    return "brute", None
                basis = _orthonormal_basis(train, AUTO_FINE_COMPONENTS)
        probe = run_probe(train, metric, p, n_neighbors, n_jobs=n_jobs, basis=basis)
        if not probe.pays:
            return "brute", None
        # "auto" builds the index without the locality order: on the digits
        # it costs about 15 ms at fit (30 under load) and saves at most 1 to
        # 3 ms of one predict of 2,000 queries at small k. The probe's
        # sample is not projected again.
        return "pruned", build_index(train, metric, p, basis=basis, locality=False, known=probe.known)
    # "pruned" keeps the locality order, for those who search the same
    # index many times.
    return "pruned", build_index(train, metric, p)


class Probe(NamedTuple):
    """What :func:`run_probe` found.

    Attributes
    ----------
    pays : bool
        Whether ``"auto"`` should prune.
    known : tuple or None
        Euclidean: ``(positions, features)``, the sample's rows in the
        training set and their PCA features, for :func:`build_index` to
        reuse; None otherwise.
    """

    pays: bool
    known: tuple | None


def run_probe(train, metric, p, n_neighbors, random_state=0, n_jobs=None, basis=None):
    """Whether ``"auto"`` should prune: a measured probe on the training rows.

    :data:`AUTO_PROBE` training rows are searched, as queries, among a
    sample of at most :data:`AUTO_PROBE_SAMPLE` others (a sparser set than
    the full one, so the estimate errs towards brute force). Pruning is
    chosen when at most :data:`AUTO_MAX_SURVIVING` of the sample survives
    stage 1 on average. The probe costs a small fraction of one search.
    ``basis``: Euclidean, the centre and basis to project on (see
    :func:`build_index`).

    Returns
    -------
    probe : Probe
    """
    n_train = train.shape[0]
    rng = np.random.default_rng(random_state)
    chosen = rng.choice(n_train, min(n_train, AUTO_PROBE + AUTO_PROBE_SAMPLE), replace=False)
    probe, sample = train[chosen[:AUTO_PROBE]], np.ascontiguousarray(train[chosen[AUTO_PROBE:]])
    k = min(sample.shape[0], n_neighbors)
    index = build_index(sample, metric, p, locality=False, basis=basis, keep_features=True)
    _, _, counts = pruned_search(np.ascontiguousarray(probe), sample, index, k, n_jobs=n_jobs, return_counts=True)
    pays = counts[:, 0].mean() / sample.shape[0] <= AUTO_MAX_SURVIVING
    known = None if index.features is None else (chosen[AUTO_PROBE:], index.features)
    return Probe(bool(pays), known)
