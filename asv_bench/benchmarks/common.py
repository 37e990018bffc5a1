"""Shared set-up of the fastknn benchmarks.

Data
    The real digits packaged with fastknn (:mod:`fastknn.datasets`), read once
    per process and cached at module level, in the dtype a benchmark asks for.
    Anything random comes from :func:`rng`, seeded with :data:`SEED`.

Libraries
    Each case runs for ``"fastknn"`` and for its references, scikit-learn's
    ``KNeighborsClassifier(algorithm="brute")`` (``"sklearn"``) and FAISS
    ``IndexFlatL2`` (``"faiss"``: float32 Euclidean only, where faiss-cpu is
    installed), as one parameter of the same benchmark, so a ratio reads off
    one asv run. A combination that does not apply raises
    ``NotImplementedError`` in ``setup``, which asv reports as skipped (n/a).

Compilation
    ``setup`` calls :func:`warm_up` on tiny data, so numba's compilation (or
    its load from the on-disk cache) is never timed; ``compile.py`` tracks the
    first-call time on its own, in a fresh process.
"""

import contextlib
import functools
import importlib

import numpy as np

#: Seed of every random draw in the suite.
SEED = 0

#: Neighbours of the original project's classifier (and of ``fastknn bench``).
K = 3

#: The libraries compared; ``"faiss"`` covers float32 Euclidean only.
LIBRARIES = ["fastknn", "sklearn", "faiss"]

#: Constructor arguments, shared by fastknn and scikit-learn, per metric case.
METRIC_PARAMS = {
    "euclidean": {"metric": "euclidean"},
    "manhattan": {"metric": "manhattan"},
    "chebyshev": {"metric": "chebyshev"},
    "minkowski": {"metric": "minkowski", "p": 3},
}

#: (n_train, n_queries) per metric for the search and prediction cases.
#: scikit-learn's brute force is slow for some metrics (Minkowski p=3 takes
#: about 100 s on the full 10,000 x 2,000 layout), so those cases are small
#: enough for the reference to finish in a second or two; fastknn runs the
#: same shape, so the ratio stays meaningful.
SHAPES = {
    "euclidean": (2000, 500),
    "manhattan": (2000, 500),
    "chebyshev": (2000, 500),
    "minkowski": (1000, 200),
}


class Benchmark:
    """Timing defaults for cases that take from a few ms to a few seconds.

    One call per sample (``number = 1``), at most five samples or ten seconds
    per round, no warm-up calls (``setup`` already compiled the kernels).
    """

    number = 1
    repeat = (1, 5, 10.0)
    warmup_time = 0.0
    timeout = 120


def rng():
    """A new generator seeded with :data:`SEED` (same draws on every call)."""
    return np.random.default_rng(SEED)


def import_or_skip(module_name):
    """Import a module, or skip the benchmark where it does not exist.

    Benchmarks of modules added late (``fastknn.augment``,
    ``fastknn.experiment``) call this in ``setup``, so running the suite on
    older commits reports them as skipped instead of failing.

    Only the absence of that very module skips: any other import error
    (fastknn itself missing, a broken dependency) fails the benchmark.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise NotImplementedError(f"{module_name} does not exist in this version") from error


def require_library(library, metric="euclidean", dtype="float32"):
    """Skip (``NotImplementedError``) a library that cannot run this case."""
    if library not in LIBRARIES:
        raise ValueError(f"unknown library {library!r}")
    if library == "faiss":
        if metric != "euclidean" or dtype != "float32":
            raise NotImplementedError("the FAISS reference is IndexFlatL2: float32 Euclidean only")
        import_or_skip("faiss")


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


@functools.cache
def mnist_split(layout="10000"):
    """``fastknn.datasets.load_mnist_split(layout)``, read once, read-only.

    Six arrays: training, validation and test images (float32 in [0, 1], one
    784-pixel row per digit) and their int64 labels.
    """
    from fastknn.datasets import load_mnist_split

    parts = load_mnist_split(layout)
    for part in parts:
        part.flags.writeable = False
    return parts


@functools.cache
def digits(n_train, n_queries, dtype="float32"):
    """Training and query digits of the ``"10000"`` layout, C-contiguous copies.

    Returns ``(X_train, y_train, X_query, y_query)``: the first ``n_train``
    training digits (at most 10,000), and the first ``n_queries`` held-out
    digits (validation then test, at most 4,000) in ``dtype``.
    """
    X_train, y_train, X_val, y_val, X_test, y_test = mnist_split("10000")
    X_held = np.concatenate([X_val, X_test])
    y_held = np.concatenate([y_val, y_test])
    if n_train > len(X_train) or n_queries > len(X_held):
        raise ValueError(f"at most {len(X_train)} training and {len(X_held)} query digits")
    # Writeable copies: numba compiles separately for read-only arrays, and
    # users' arrays are usually writeable.
    return (
        np.array(X_train[:n_train], dtype=dtype, order="C"),
        y_train[:n_train].copy(),
        np.array(X_held[:n_queries], dtype=dtype, order="C"),
        y_held[:n_queries].copy(),
    )


@functools.cache
def many_queries(n_queries, dtype="float32"):
    """``n_queries`` realistic digits, none equal to a training image.

    Every one of the 15,000 packaged digits, in turn, moved by a random shift
    of one or two pixels along each axis (drawn from :func:`rng`), for
    prediction on large query sets (50,000 to 100,000 rows). Built in blocks,
    so that making the queries needs little memory beyond the result (the
    ``peakmem_`` benchmarks count the whole process, set-up included).
    """
    X_train, _, X_val, _, X_test, _ = mnist_split("10000")
    pool = np.concatenate([X_train, X_val, X_test]).reshape(-1, 28, 28)
    steps = np.array([-2, -1, 1, 2])
    shifts = steps[rng().integers(0, len(steps), size=(n_queries, 2))]
    out = np.empty((n_queries, 28, 28), dtype=dtype)
    for start in range(0, n_queries, len(pool)):
        block = slice(start, min(start + len(pool), n_queries))
        images = pool[: block.stop - block.start]
        for d_row in steps:
            for d_col in steps:
                rows = np.flatnonzero((shifts[block, 0] == d_row) & (shifts[block, 1] == d_col))
                out[start + rows] = np.roll(images[rows], (d_row, d_col), axis=(1, 2))
    return out.reshape(n_queries, 784)


# --------------------------------------------------------------------------
# estimators and searches of each library
# --------------------------------------------------------------------------


def warm_up(library="fastknn", metric="euclidean", dtype="float32", weights="uniform"):
    """Compile (or load from numba's cache) fastknn's kernels for a case.

    Numba compiles once per argument type, so a fit and predict on a few rows
    of the same dtype is enough for every later call: with brute force, and
    with the pruned search where this version of fastknn has one
    (``algorithm="auto"`` may choose it at fit). Nothing to do for the other
    libraries.
    """
    if library != "fastknn":
        return
    from fastknn import KNNClassifier

    X = rng().random((64, 64)).astype(dtype)
    y = np.arange(64) % 3
    classifier = KNNClassifier(n_neighbors=3, weights=weights, **METRIC_PARAMS[metric])
    classifier.fit(X, y).predict_proba(X[:8])
    if has_algorithm_parameter():
        classifier.set_params(algorithm="pruned").fit(X, y).predict_proba(X[:8])


def has_algorithm_parameter():
    """Whether ``KNNClassifier`` has the ``algorithm`` parameter (pruned search)."""
    from fastknn import KNNClassifier

    return "algorithm" in KNNClassifier().get_params()


def make_classifier(library, n_neighbors=K, metric="euclidean", weights="uniform", n_jobs=None):
    """An unfitted classifier of ``library`` with the given settings.

    ``"sklearn"`` is ``KNeighborsClassifier(algorithm="brute")``;
    ``"faiss"`` is :class:`FaissFlatL2Classifier` (Euclidean, uniform only).
    """
    params = dict(n_neighbors=n_neighbors, weights=weights, n_jobs=n_jobs, **METRIC_PARAMS[metric])
    if library == "fastknn":
        from fastknn import KNNClassifier

        return KNNClassifier(**params)
    if library == "sklearn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(algorithm="brute", **params)
    if library == "faiss":
        if metric != "euclidean" or weights != "uniform":
            raise NotImplementedError("the FAISS reference votes uniformly over IndexFlatL2 neighbours")
        return FaissFlatL2Classifier(n_neighbors=n_neighbors, n_jobs=n_jobs)
    raise ValueError(f"unknown library {library!r}")


class FaissFlatL2Classifier:
    """Uniform k-NN vote over the neighbours of a FAISS ``IndexFlatL2``.

    A reference only: the few methods the benchmarks call, with
    scikit-learn's conventions (distances, not squared distances; a vote tie
    goes to the first class in ``classes_``). Data must be float32.
    """

    def __init__(self, n_neighbors=K, n_jobs=None):
        self.n_neighbors = n_neighbors
        self.n_jobs = n_jobs

    @contextlib.contextmanager
    def _threads(self):
        import faiss

        if self.n_jobs is None or self.n_jobs < 0:
            yield
            return
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(self.n_jobs)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(previous)

    def fit(self, X, y):
        import faiss

        X = np.ascontiguousarray(X, dtype=np.float32)
        self.classes_, self._y = np.unique(y, return_inverse=True)
        self._index = faiss.IndexFlatL2(X.shape[1])
        self._index.add(X)
        return self

    def kneighbors(self, X, n_neighbors=None, return_distance=True):
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        with self._threads():
            squared, indices = self._index.search(np.ascontiguousarray(X, dtype=np.float32), k)
        if not return_distance:
            return indices
        return np.sqrt(np.maximum(squared, 0.0, out=squared), out=squared), indices

    def predict_proba(self, X):
        indices = self.kneighbors(X, return_distance=False)
        n_queries, n_classes = indices.shape[0], len(self.classes_)
        codes = np.arange(n_queries)[:, None] * n_classes + self._y[indices]
        votes = np.bincount(codes.ravel(), minlength=n_queries * n_classes)
        return votes.reshape(n_queries, n_classes) / indices.shape[1]

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
