"""The neighbour search alone, for users who do not need a classifier."""

import numbers

from scipy.sparse import issparse
from sklearn.utils.validation import check_array

from ._base import fit_search, kneighbors_search
from ._sparse import as_sparse_search
from ._search import as_search_dtype, queries_in_search_dtype, resolve_metric


def kneighbors(X, Y, n_neighbors=5, *, metric="euclidean", p=2, return_distance=True, n_jobs=None, algorithm="brute"):
    """Exact k nearest rows of ``Y`` for every row of ``X``.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_queries, n_features)
        Queries.
    Y : {array-like, sparse matrix} of shape (n_samples, n_features)
        The rows searched. A scipy sparse matrix or array (any format) is
        searched by the sparse method; sparse ``X`` against dense ``Y`` is
        densified, dense ``X`` against sparse ``Y`` made sparse.
    n_neighbors : int, default=5
        Number of neighbours, 1 <= n_neighbors <= n_samples.
    metric : str, default="euclidean"
        ``"euclidean"``, ``"manhattan"``, ``"chebyshev"``, ``"minkowski"``,
        ``"cosine"`` or one of scikit-learn's aliases for them (``"l2"``,
        ``"l1"``, ``"cityblock"``, ``"infinity"``).
    p : float, default=2
        Power for ``metric="minkowski"``, >= 1.
    return_distance : bool, default=True
        Whether to return the distances too.
    n_jobs : int, default=None
        Threads (None keeps numba's setting, -1 all).
    algorithm : {"brute", "pruned", "kd_tree", "ball_tree", "auto"}, default="brute"
        ``"pruned"`` builds lower-bound features of ``Y`` first, which pays
        when there are many queries; ``"kd_tree"`` and ``"ball_tree"`` (the
        same search) build a k-d tree over ``Y``, which pays on a few
        dimensions; ``"auto"`` decides as :class:`~fastknn.KNNClassifier`
        does. Results are identical. Sparse ``Y`` always runs the sparse
        search (other names than ``"brute"`` and ``"auto"`` warn).

    Returns
    -------
    distances : ndarray of shape (n_queries, n_neighbors), float64
        Ascending per row; only when ``return_distance``.
    indices : ndarray of shape (n_queries, n_neighbors), int64
        Row indices into ``Y``; equal distances are ordered by index.

    Raises
    ------
    ValueError
        For non-finite or non-numeric data, mismatched feature counts, an
        unknown metric, ``p < 1`` or ``n_neighbors`` out of range.

    Notes
    -----
    ``Y`` sets the dtype: float32 and float64 are kept, integers of at most 16
    bits run as float32, other data as float64; ``X`` is cast to it where
    that is exact, and otherwise (float64 queries of float32 rows) both run
    in float64, as scikit-learn computes.

    Examples
    --------
    >>> import numpy as np
    >>> from fastknn import kneighbors
    >>> Y = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> distances, indices = kneighbors([[0.1, 0.0]], Y, n_neighbors=2)
    >>> indices
    array([[0, 1]])
    >>> distances.round(3)
    array([[0.1, 0.9]])
    """
    metric_name, power = resolve_metric(metric, p)
    Y = check_array(Y, accept_sparse=["csr", "csc"], dtype="numeric", input_name="Y")
    Y = as_sparse_search(Y) if issparse(Y) else as_search_dtype(Y)
    X = check_array(X, accept_sparse=["csr", "csc"], dtype="numeric", input_name="X")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features but Y has {Y.shape[1]}; they must match."
        )
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, numbers.Integral):
        raise TypeError(f"n_neighbors must be an integer, got {n_neighbors!r}.")
    if not 1 <= n_neighbors <= Y.shape[0]:
        raise ValueError(
            f"n_neighbors must be between 1 and the number of rows of Y ({Y.shape[0]}), got {n_neighbors}."
        )
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral)):
        raise TypeError(f"n_jobs must be an integer or None, got {n_jobs!r}.")
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive number.")
    if algorithm not in ("brute", "pruned", "kd_tree", "ball_tree", "auto"):
        raise ValueError(f"algorithm must be 'brute', 'pruned', 'kd_tree', 'ball_tree' or 'auto', got {algorithm!r}.")
    if issparse(X) and not issparse(Y):
        X = X.toarray()
    queries = X if issparse(Y) else queries_in_search_dtype(X, Y.dtype)
    if not issparse(Y) and queries.dtype != Y.dtype:
        Y = Y.astype(queries.dtype)  # prepared once, in float64
    fitted = fit_search(Y, metric_name, power, algorithm, n_neighbors, n_jobs=n_jobs)
    distances, indices = kneighbors_search(fitted, queries, n_neighbors, n_jobs=n_jobs)
    if not return_distance:
        return indices
    return distances, indices
