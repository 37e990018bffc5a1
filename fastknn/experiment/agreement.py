"""The check of fastknn's baseline against scikit-learn's brute force."""

import math
from time import perf_counter

import numpy as np


def exact_squared_distances(query, rows):
    """Squared Euclidean distances of float32 data, correctly rounded.

    Each term ``(a - b) ** 2`` of float32 ``a`` and ``b`` is exact in float64
    (the difference needs at most 25 significant bits, its square 50), and
    :func:`math.fsum` rounds the sum of the terms once, so two distances are
    equal here when their exact values are, up to that single rounding.
    """
    differences = rows.astype(np.float64) - query.astype(np.float64)
    return np.array([math.fsum(row) for row in differences * differences])


def compare_with_sklearn(train_X, train_y, test_X, n_neighbors, n_jobs=None):
    """fastknn against scikit-learn's brute force, Euclidean, on one split.

    Both classifiers are fitted on the training data and predict the test
    images, each timed once (fastknn's kernels are compiled beforehand).
    For every query on which they disagree, the exact distances say whether
    the disagreement is a tie: the query's K-th and (K+1)-th nearest
    distances are equal, and the neighbours scikit-learn chose are exactly as
    near as fastknn's, so either set is a correct K-nearest list.

    Returns
    -------
    agreement : dict
        ``n_queries``, ``n_agree``, ``fraction``, ``n_disagree``,
        ``n_disagree_at_ties``, ``all_disagreements_at_ties``,
        ``disagreements`` (per query: index, both predictions, K-th and
        (K+1)-th exact distances, tie), ``fastknn_seconds``,
        ``sklearn_seconds`` and the predictions ``fastknn_pred``.
    """
    from sklearn.neighbors import KNeighborsClassifier

    from .. import KNNClassifier

    ours = KNNClassifier(n_neighbors=n_neighbors, metric="euclidean", n_jobs=n_jobs)
    ours.fit(train_X[: n_neighbors + 1], train_y[: n_neighbors + 1]).predict(test_X[:2])  # warm up
    start = perf_counter()
    ours_pred = ours.fit(train_X, train_y).predict(test_X)
    fastknn_seconds = perf_counter() - start

    theirs = KNeighborsClassifier(n_neighbors=n_neighbors, metric="euclidean", algorithm="brute", n_jobs=n_jobs)
    start = perf_counter()
    theirs_pred = theirs.fit(train_X, train_y).predict(test_X)
    sklearn_seconds = perf_counter() - start

    differing = np.flatnonzero(ours_pred != theirs_pred)
    details = []
    if differing.size:
        n_search = min(n_neighbors + 1, len(train_X))
        our_neighbors = ours.kneighbors(test_X[differing], n_search, return_distance=False)
        their_neighbors = theirs.kneighbors(test_X[differing], n_neighbors, return_distance=False)
        for row, query in enumerate(differing):
            ours_sq = exact_squared_distances(test_X[query], train_X[our_neighbors[row]])
            theirs_sq = np.sort(exact_squared_distances(test_X[query], train_X[their_neighbors[row]]))
            boundary_tie = n_search > n_neighbors and ours_sq[n_neighbors - 1] == ours_sq[n_neighbors]
            same_distances = bool(np.array_equal(np.sort(ours_sq[:n_neighbors]), theirs_sq))
            details.append(
                {
                    "query": int(query),
                    "fastknn": ours_pred[query].item(),
                    "sklearn": theirs_pred[query].item(),
                    "kth_distance": math.sqrt(ours_sq[n_neighbors - 1]),
                    "next_distance": math.sqrt(ours_sq[n_neighbors]) if n_search > n_neighbors else None,
                    "tie": bool(boundary_tie and same_distances),
                }
            )
    n_ties = sum(detail["tie"] for detail in details)
    n_queries = len(test_X)
    return {
        "metric": "euclidean",
        "k": int(n_neighbors),
        "n_queries": int(n_queries),
        "n_agree": int(n_queries - differing.size),
        "fraction": float((n_queries - differing.size) / n_queries),
        "n_disagree": int(differing.size),
        "n_disagree_at_ties": int(n_ties),
        "all_disagreements_at_ties": bool(n_ties == differing.size),
        "disagreements": details,
        "fastknn_seconds": fastknn_seconds,
        "sklearn_seconds": sklearn_seconds,
        "fastknn_pred": ours_pred,
    }
