"""Slow, readable reference implementations the tests compare fastknn with.

Nothing here imports fastknn: metric names, tie rules and voting are written
out again from their definitions, so a shared mistake cannot hide.

Reduced distances are accumulated in float64 one feature at a time. Where
every term and partial sum is an exact float64 (integer-valued data with the
Euclidean, Manhattan or Chebyshev metric, or Minkowski with a small integer
p), the result is exact whatever the order, so fastknn must agree to the last
bit, ties included. Elsewhere (Minkowski with p = 1.5, say) fastknn's float64
sum may round differently in the last place; :func:`assert_valid_kneighbors`
checks such results up to a tolerance.
"""

import math

import numpy as np
import pytest

# Every metric name fastknn accepts, mapped to its definition.
CANONICAL = {
    "euclidean": "euclidean",
    "l2": "euclidean",
    "manhattan": "manhattan",
    "cityblock": "manhattan",
    "l1": "manhattan",
    "chebyshev": "chebyshev",
    "infinity": "chebyshev",
    "minkowski": "minkowski",
    "cosine": "cosine",
}


def canonical_metric(metric, p=2):
    """Definition behind ``(metric, p)``: a name, and the power for Minkowski.

    ``minkowski`` with p = 1, 2 or infinity *is* Manhattan, Euclidean or
    Chebyshev, so it is reported as those.
    """
    name = CANONICAL[metric]
    if name != "minkowski":
        return name, None
    if p == 1:
        return "manhattan", None
    if p == 2:
        return "euclidean", None
    if math.isinf(p):
        return "chebyshev", None
    return "minkowski", float(p)


def rdist(X, Y, metric, p=2):
    """Reduced distances between every row of X and every row of Y.

    Squared distance for Euclidean, sum of ``|d|**p`` for Minkowski, the
    distance itself for Manhattan and Chebyshev.

    Parameters
    ----------
    X : array-like of shape (n_x, n_features)
    Y : array-like of shape (n_y, n_features)
    metric : str
        Any name of :data:`CANONICAL`.
    p : float
        Minkowski power.

    Returns
    -------
    ndarray of shape (n_x, n_y), float64
    """
    name, power = canonical_metric(metric, p)
    X = np.asarray(X).astype(np.float64)
    Y = np.asarray(Y).astype(np.float64)
    if name == "cosine":
        return cosine_distances(X, Y)
    out = np.zeros((X.shape[0], Y.shape[0]))
    for f in range(X.shape[1]):
        diff = np.abs(X[:, f][:, None] - Y[:, f][None, :])
        if name == "euclidean":
            out += diff * diff
        elif name == "manhattan":
            out += diff
        elif name == "chebyshev":
            np.maximum(out, diff, out=out)
        else:
            out += diff**power
    return out


def cosine_distances(X, Y):
    """``1 - x.y / sqrt(|x|^2 |y|^2)`` for every pair of rows, clipped to [0, 2], in float64.

    A zero row is at distance 1 from every row, itself included (scikit-learn's
    convention: its cosine similarity with anything is 0). The square root of
    the product keeps a row at distance exactly 0 from itself and from itself
    times a power of two.
    """
    dot = np.zeros((X.shape[0], Y.shape[0]))
    x_sq = np.zeros(X.shape[0])
    y_sq = np.zeros(Y.shape[0])
    for f in range(X.shape[1]):
        dot += X[:, f][:, None] * Y[:, f][None, :]
        x_sq += X[:, f] * X[:, f]
        y_sq += Y[:, f] * Y[:, f]
    norms = np.sqrt(x_sq[:, None] * y_sq[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.clip(1.0 - dot / norms, 0.0, 2.0)
    out[norms == 0.0] = 1.0
    return out


def to_distance(reduced, metric, p=2):
    """Distances from reduced distances (a new array)."""
    name, power = canonical_metric(metric, p)
    if name == "euclidean":
        return np.sqrt(reduced)
    if name == "minkowski":
        return reduced ** (1.0 / power)
    return np.array(reduced, dtype=np.float64)


def sorted_neighbors(X, Y, metric, p=2):
    """Every row of Y for every row of X, nearest first.

    Equal distances are ordered by row index of Y, lower first (a stable sort).

    Returns
    -------
    reduced : ndarray of shape (n_x, n_y), float64
        Reduced distances, ascending per row.
    indices : ndarray of shape (n_x, n_y), int64
    """
    all_reduced = rdist(X, Y, metric, p)
    indices = np.argsort(all_reduced, axis=1, kind="stable").astype(np.int64)
    return np.take_along_axis(all_reduced, indices, axis=1), indices


def kneighbors(X, Y, n_neighbors, metric, p=2):
    """The ``n_neighbors`` nearest rows of Y: (distances, indices), ties by index."""
    reduced, indices = sorted_neighbors(X, Y, metric, p)
    return to_distance(reduced[:, :n_neighbors], metric, p), indices[:, :n_neighbors]


def kneighbors_excluding_self(X, n_neighbors, metric, p=2):
    """Neighbours of every training row among the others (scikit-learn's rule).

    Ask for ``n_neighbors + 1`` neighbours, remove the row itself; when exact
    duplicates pushed it out of the list, remove the farthest instead.
    """
    distances, indices = kneighbors(X, X, n_neighbors + 1, metric, p)
    keep = indices != np.arange(len(indices))[:, None]
    keep[keep.all(axis=1), -1] = False
    n_rows = len(indices)
    return distances[keep].reshape(n_rows, -1), indices[keep].reshape(n_rows, -1)


def boundary_ties(X, Y, n_neighbors, metric, p=2, rtol=0.0):
    """Queries whose k-th and (k+1)-th nearest rows are (nearly) equally far.

    For such a query the set of k nearest rows is not unique, so another
    correct implementation may pick other neighbours and predict otherwise.
    ``rtol`` widens "equal" for comparisons with an oracle whose own
    distances are rounded.

    Returns
    -------
    ndarray of shape (n_x,), bool
    """
    reduced, _ = sorted_neighbors(X, Y, metric, p)
    if n_neighbors >= reduced.shape[1]:
        return np.zeros(reduced.shape[0], dtype=bool)
    kth = reduced[:, n_neighbors - 1]
    following = reduced[:, n_neighbors]
    return following <= kth + rtol * np.abs(kth)


def votes(neighbor_labels, neighbor_distances, n_classes, weights="uniform"):
    """scikit-learn's class votes of each query's neighbours.

    ``"uniform"``: one vote per neighbour. ``"distance"``: a neighbour weighs
    ``1 / distance``; in a row where some distances are 0, those neighbours
    weigh 1 and every other weighs 0.

    Returns
    -------
    ndarray of shape (n_queries, n_classes), float64
    """
    neighbor_distances = np.asarray(neighbor_distances, dtype=np.float64)
    out = np.zeros((len(neighbor_labels), n_classes))
    for i, (labels, distances) in enumerate(zip(neighbor_labels, neighbor_distances)):
        if weights == "uniform":
            weight = np.ones(len(labels))
        elif (distances == 0).any():
            weight = (distances == 0).astype(np.float64)
        else:
            weight = 1.0 / distances
        for label, w in zip(labels, weight):
            out[i, label] += w
    return out


def predict_proba(neighbor_labels, neighbor_distances, n_classes, weights="uniform"):
    """Votes normalised to sum to 1 per query."""
    v = votes(neighbor_labels, neighbor_distances, n_classes, weights)
    return v / v.sum(axis=1, keepdims=True)


def predict(neighbor_labels, neighbor_distances, n_classes, weights="uniform"):
    """Encoded class with the largest vote; a tie goes to the lowest class."""
    return np.argmax(votes(neighbor_labels, neighbor_distances, n_classes, weights), axis=1)


def classify(X_train, y_train, X_test, n_neighbors, metric, p=2, weights="uniform"):
    """A whole kNN classifier: (classes, predictions, probabilities)."""
    classes, encoded = np.unique(y_train, return_inverse=True)
    distances, indices = kneighbors(X_test, X_train, n_neighbors, metric, p)
    labels = encoded[indices]
    proba = predict_proba(labels, distances, len(classes), weights)
    return classes, classes[predict(labels, distances, len(classes), weights)], proba


def has_exact_sums(metric, p=2):
    """Whether reduced distances of small integer-valued data are exact floats."""
    name, power = canonical_metric(metric, p)
    return name != "minkowski" or float(power).is_integer()


def assert_valid_kneighbors(X, Y, distances, indices, metric, p=2, rtol=1e-12):
    """Assert that ``(distances, indices)`` is a correct k-nearest answer when
    distances are only known to ``rtol``.

    The distances are the k smallest (to rtol), each index is at its stated
    distance (to rtol), no index repeats, distances ascend, and neighbours at
    equal returned distances come by increasing index.
    """
    n_neighbors = indices.shape[1]
    expected_distances, _ = kneighbors(X, Y, n_neighbors, metric, p)
    np.testing.assert_allclose(distances, expected_distances, rtol=rtol, atol=0)
    all_distances = to_distance(rdist(X, Y, metric, p), metric, p)
    np.testing.assert_allclose(np.take_along_axis(all_distances, indices, axis=1), distances, rtol=rtol, atol=0)
    for row in indices:
        assert len(set(row.tolist())) == len(row), f"repeated neighbour in {row}"
    steps = np.diff(distances, axis=1)
    assert np.all(steps >= 0), "distances do not ascend"
    assert np.all(np.diff(indices, axis=1)[steps == 0] > 0), "equal distances not ordered by index"


# (fastknn metric, p, scikit-learn metric, p). The canonical metrics get
# every combination of options; the aliases and the Minkowski routing get a
# few, being the same kernels under other names. scikit-learn's brute force
# has no "infinity" alias; it gets "chebyshev".
METRICS = [
    pytest.param("euclidean", 2, "euclidean", 2, id="euclidean"),
    pytest.param("manhattan", 2, "manhattan", 2, id="manhattan"),
    pytest.param("chebyshev", 2, "chebyshev", 2, id="chebyshev"),
    pytest.param("minkowski", 3, "minkowski", 3, id="minkowski-3"),
    pytest.param("minkowski", 1.5, "minkowski", 1.5, id="minkowski-1.5"),
]
ALIASES = [
    pytest.param("l1", 2, "l1", 2, id="l1"),
    pytest.param("l2", 2, "l2", 2, id="l2"),
    pytest.param("cityblock", 2, "cityblock", 2, id="cityblock"),
    pytest.param("infinity", 2, "chebyshev", 2, id="infinity"),
    pytest.param("minkowski", 1, "minkowski", 1, id="minkowski-1"),
    pytest.param("minkowski", 2, "minkowski", 2, id="minkowski-2"),
    pytest.param("minkowski", np.inf, "minkowski", np.inf, id="minkowski-inf"),
]

CANONICAL_METRICS = [("euclidean", 2), ("manhattan", 2), ("chebyshev", 2), ("minkowski", 3), ("minkowski", 1.5)]


def radius_neighbors(X, Y, radius, metric, p=2):
    """Rows of Y within ``radius`` of each row of X: lists of (distances, indices).

    A row at exactly the radius is within it: the reduced distance is
    compared with the reduced radius (squared for Euclidean, to the power p
    for Minkowski), as scikit-learn compares them. Rows come in index order.
    """
    name, power = canonical_metric(metric, p)
    reduced_radius = radius * radius if name == "euclidean" else radius**power if name == "minkowski" else radius
    reduced = rdist(X, Y, metric, p)
    distances, indices = [], []
    for row in reduced:
        within = np.flatnonzero(row <= reduced_radius)
        indices.append(within)
        distances.append(to_distance(row[within], metric, p))
    return distances, indices


def regress(X_train, y_train, X_test, n_neighbors, metric, p=2, weights="uniform"):
    """Mean target of the ``n_neighbors`` nearest (ties by index); inverse-distance weighted for "distance".

    With ``"distance"``, a query with neighbours at distance 0 averages those alone.
    """
    distances, indices = kneighbors(X_test, X_train, n_neighbors, metric, p)
    targets = np.asarray(y_train, dtype=np.float64).reshape(len(X_train), -1)
    out = np.empty((len(X_test), targets.shape[1]))
    for i in range(len(X_test)):
        if weights == "uniform":
            w = np.ones(n_neighbors)
        elif (distances[i] == 0).any():
            w = (distances[i] == 0).astype(np.float64)
        else:
            w = 1.0 / distances[i]
        out[i] = (w[:, None] * targets[indices[i]]).sum(axis=0) / w.sum()
    return out.ravel() if np.ndim(y_train) == 1 else out


# --------------------------------------------------------------------------
# image distortion model (fastknn.distortion)
# --------------------------------------------------------------------------
def sobel(image):
    """Horizontal and vertical Sobel gradients of a 2-D image, zero outside it.

    Returns a float64 array of shape ``(2, height, width)``: the derivative
    along columns, then along rows, each pixel from its 3x3 neighbourhood.
    """
    height, width = image.shape
    kernel_x = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    out = np.zeros((2, height, width))
    for i in range(height):
        for j in range(width):
            for a in range(3):
                for b in range(3):
                    r, c = i + a - 1, j + b - 1
                    if 0 <= r < height and 0 <= c < width:
                        out[0, i, j] += kernel_x[a][b] * float(image[r, c])
                        out[1, i, j] += kernel_x[b][a] * float(image[r, c])
    return out


def context(gradients, i, j, context_size):
    """The gradients of the ``context_size`` square around pixel (i, j), as one vector (zeros outside)."""
    radius = context_size // 2
    _, height, width = gradients.shape
    values = []
    for a in range(-radius, radius + 1):
        for b in range(-radius, radius + 1):
            r, c = i + a, j + b
            inside = 0 <= r < height and 0 <= c < width
            values.extend(gradients[:, r, c] if inside else [0.0, 0.0])
    return np.array(values)


def idm_distance(query, reference, warp, context_size=3):
    """IDM distance of one 2-D query image to one reference, from the definition.

    Sum over the query's pixels of the smallest squared difference between
    the query pixel's context and the context of a reference pixel at most
    ``warp`` rows and columns away, inside the image.
    """
    grad_q, grad_r = sobel(query), sobel(reference)
    height, width = query.shape
    total = 0.0
    for i in range(height):
        for j in range(width):
            cq = context(grad_q, i, j, context_size)
            best = math.inf
            for r in range(max(0, i - warp), min(height, i + warp + 1)):
                for c in range(max(0, j - warp), min(width, j + warp + 1)):
                    best = min(best, float(np.sum((cq - context(grad_r, r, c, context_size)) ** 2)))
            total += best
    return total
