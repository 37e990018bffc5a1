"""``fastknn bench``: fastknn side by side with its references, in one process.

On the packaged digits in the original project's layout (10,000 training
images, the 2,000 validation images as queries, k=3), each metric is timed as
fit + predict for fastknn and for scikit-learn's brute force; Euclidean is
also compared with FAISS ``IndexFlatL2`` (when installed) and with the bare
single-precision matrix product of the same shape, the floor of any method
built on it. Every figure is the median of repeated runs, and the ratios are
taken between medians measured in the same run.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

K = 3
METRICS = (("euclidean", 2), ("manhattan", 1), ("minkowski", 3))

# Targets from the core issue: the speed-up over scikit-learn brute force.
SPEEDUP_TARGETS = {"euclidean": 2.0, "manhattan": 10.0, "minkowski": 50.0}

_FRESH_PROCESS_SCRIPT = """
import time
start = time.perf_counter()
import numpy as np
import fastknn
rng = np.random.default_rng(0)
X = rng.random((200, 784), dtype=np.float32)
y = np.arange(200) % 10
fastknn.KNNClassifier().fit(X, y).predict(X[:50])
print(time.perf_counter() - start)
"""


def median_time(function, repeats):
    """Median wall time of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


# Pause before each timed call of ``interleaved_medians``. After a call,
# OpenBLAS's worker threads busy-wait for 2**28 clock cycles (its default
# THREAD_TIMEOUT, about 0.1 s; OpenMathLib/OpenBLAS#5171) and OpenMP's do
# likewise for a while: without a pause, whichever method runs next shares
# the cores with them (measured: fastknn's predict 0.196 s right after a
# numpy sgemm, 0.155 s after a pause).
SETTLE_SECONDS = 0.25


def interleaved_runs(functions, settle_seconds=SETTLE_SECONDS):
    """Wall times of each function, the functions run in turn.

    Parameters
    ----------
    functions : dict
        Name -> ``(function, repeats)``. Round r runs every function that
        has had fewer than ``repeats`` runs, so that the functions compared
        share the machine's conditions (a shared, noisy machine drifts
        between consecutive blocks of runs). The order turns by one place
        each round (a b c, then b c a, ...), so that no function always
        runs first or right after the same one.
    settle_seconds : float, default=SETTLE_SECONDS
        Pause before each timed call, so that every call starts with the
        threads of the previous one idle.

    Returns
    -------
    times : dict
        Name -> list of seconds, one per round the function ran in.
    results : dict
        Name -> result of the last call.
    """
    times = {name: [] for name in functions}
    results = {}
    names = list(functions)
    for round_ in range(max(repeats for _, repeats in functions.values())):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            function, repeats = functions[name]
            if round_ < repeats:
                time.sleep(settle_seconds)
                start = time.perf_counter()
                results[name] = function()
                times[name].append(time.perf_counter() - start)
    return times, results


def interleaved_medians(functions, settle_seconds=SETTLE_SECONDS):
    """Median wall time of each function, the functions run in turn (see :func:`interleaved_runs`).

    Returns
    -------
    medians : dict
        Name -> median seconds.
    results : dict
        Name -> result of the last call.
    """
    times, results = interleaved_runs(functions, settle_seconds)
    return {name: float(np.median(values)) for name, values in times.items()}, results


def paired_ratio(times, numerator, denominator):
    """Median over rounds of ``times[numerator][r] / times[denominator][r]``.

    Each ratio compares two calls made one after the other, under the same
    conditions; the median of those ratios drifts less with a shared
    machine's load than the ratio of two medians, which may come from
    different rounds. Rounds that only one of the two ran are left out.
    """
    n_rounds = min(len(times[numerator]), len(times[denominator]))
    if n_rounds == 0:
        raise ValueError(f"no round ran both {numerator!r} and {denominator!r}")
    ratios = np.asarray(times[numerator][:n_rounds]) / np.asarray(times[denominator][:n_rounds])
    return float(np.median(ratios))


# The same job with scikit-learn's classifier, for the start-up comparison.
_SKLEARN_FRESH_PROCESS_SCRIPT = _FRESH_PROCESS_SCRIPT.replace(
    "import fastknn", "from sklearn.neighbors import KNeighborsClassifier"
).replace("fastknn.KNNClassifier()", "KNeighborsClassifier(algorithm='brute')")


def fresh_process_seconds(cache_dir, script=_FRESH_PROCESS_SCRIPT):
    """Seconds for a new interpreter to import fastknn and predict once.

    ``NUMBA_CACHE_DIR`` points at ``cache_dir``: empty, this is the first-call
    (compile) time; filled by an earlier run, the cached start-up time. None
    keeps numba's own cache (beside the installed modules). ``script`` is
    the job run, timed from its first import to the end of its predict.
    """
    env = dict(os.environ) if cache_dir is None else dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(completed.stdout.strip().splitlines()[-1])


def startup_comparison(repeats=3, cache_dir=None):
    """A fresh process importing and predicting once: fastknn against scikit-learn.

    Each run is a new interpreter that imports NumPy and the classifier,
    fits 200 digits-sized rows and predicts 50 (the job of
    :data:`_FRESH_PROCESS_SCRIPT`): fastknn's ``KNNClassifier`` with warm
    kernel caches (one unmeasured run fills them first), and scikit-learn's
    ``KNeighborsClassifier(algorithm="brute")``, in turn, ``repeats`` times
    each. On a shared machine the best run of each is the figure least
    moved by the neighbours' load.

    Returns
    -------
    figures : dict
        ``fastknn_seconds`` and ``sklearn_seconds`` (lists, one per run),
        their best, and ``extra_seconds``: fastknn's best minus
        scikit-learn's.
    """
    fresh_process_seconds(cache_dir)  # fills (or checks) the kernel cache
    runs = {"fastknn": [], "sklearn": []}
    scripts = {"fastknn": _FRESH_PROCESS_SCRIPT, "sklearn": _SKLEARN_FRESH_PROCESS_SCRIPT}
    for round_ in range(repeats):
        order = ("fastknn", "sklearn") if round_ % 2 == 0 else ("sklearn", "fastknn")
        for name in order:
            runs[name].append(fresh_process_seconds(cache_dir, scripts[name]))
    best = {name: min(seconds) for name, seconds in runs.items()}
    return {
        "fastknn_seconds": runs["fastknn"],
        "sklearn_seconds": runs["sklearn"],
        "fastknn_best_seconds": best["fastknn"],
        "sklearn_best_seconds": best["sklearn"],
        "extra_seconds": best["fastknn"] - best["sklearn"],
    }


def format_startup_report(figures):
    """The start-up comparison as lines of text."""
    return [
        "",
        "fresh process, import + fit 200 rows + predict 50 (warm kernel caches), best of "
        f"{len(figures['fastknn_seconds'])}, interleaved:",
        f"  fastknn KNNClassifier                  {figures['fastknn_best_seconds']:9.2f} s",
        f"  scikit-learn KNeighborsClassifier      {figures['sklearn_best_seconds']:9.2f} s",
        f"  fastknn's extra start-up               {figures['extra_seconds']:9.2f} s",
    ]


def _faiss_predict(train, labels, queries, k):
    import faiss

    index = faiss.IndexFlatL2(train.shape[1])
    index.add(train)
    _, neighbors = index.search(queries, k)
    votes = np.zeros((queries.shape[0], labels.max() + 1))
    np.add.at(votes, (np.arange(queries.shape[0])[:, None], labels[neighbors]), 1)
    return np.argmax(votes, axis=1)


def _faiss_available():
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def peak_memory_predict(train, labels, n_queries):
    """Peak traced memory of predicting ``n_queries`` queries, in bytes.

    The queries are training images shifted by one pixel, repeated; numpy
    reports its allocations to :mod:`tracemalloc`.
    """
    from ._classification import KNNClassifier

    images = train.reshape(-1, 28, 28)
    shifted = np.roll(images, 1, axis=2).reshape(len(train), -1)
    queries = np.resize(shifted, (n_queries, train.shape[1]))
    classifier = KNNClassifier(n_neighbors=K).fit(train, labels)
    tracemalloc.start()
    try:
        classifier.predict(queries)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def run_bench(repeats=7, reference_repeats=5, slow_reference_repeats=1, memory_queries=100_000, quick=False):
    """Measure fastknn against its references; return the figures as a dict.

    Parameters
    ----------
    repeats : int, default=7
        Runs per fastknn and sgemm measurement.
    reference_repeats : int, default=5
        Runs per scikit-learn and FAISS measurement. (Single calls on a
        shared virtual machine were seen to vary by 50% within a minute:
        fewer runs let one slow spell move a median.)
    slow_reference_repeats : int, default=1
        Runs of scikit-learn's Minkowski p=3, which takes minutes.
    memory_queries : int, default=100_000
        Queries in the peak-memory measurement (0 skips it).
    quick : bool, default=False
        Use 2,000 training images and 500 queries, for smoke tests.

    Returns
    -------
    results : dict
        ``timings`` (metric -> method -> median seconds), ``ratios``,
        ``agreement`` (fraction of equal predictions with scikit-learn),
        ``first_call_seconds``, ``cached_start_seconds`` and memory figures.
    """
    from sklearn.neighbors import KNeighborsClassifier

    from .datasets import load_mnist_split
    from ._classification import KNNClassifier

    train, train_labels, queries, _, _, _ = load_mnist_split("10000")
    if quick:
        train, train_labels, queries = train[:2000], train_labels[:2000], queries[:500]
        repeats = reference_repeats = slow_reference_repeats = 1
        memory_queries = min(memory_queries, 5000)

    results = {
        "shape": {"n_train": len(train), "n_queries": len(queries), "n_features": train.shape[1], "k": K},
        "timings": {},
        "ratios": {},
        "agreement": {},
    }
    with tempfile.TemporaryDirectory() as cache_dir:
        results["first_call_seconds"] = fresh_process_seconds(cache_dir)
        results["cached_start_seconds"] = fresh_process_seconds(cache_dir)

    for metric, p in METRICS:
        ours = KNNClassifier(n_neighbors=K, metric=metric, p=p)
        ours.fit(train[:50], train_labels[:50]).predict(queries[:5])  # compile outside timing
        theirs = KNeighborsClassifier(n_neighbors=K, metric=metric, p=p, algorithm="brute")
        n_ref = slow_reference_repeats if metric == "minkowski" else reference_repeats
        functions = {
            "fastknn": (lambda: ours.fit(train, train_labels).predict(queries), repeats),
            "sklearn_brute": (lambda: theirs.fit(train, train_labels).predict(queries), n_ref),
        }
        if metric == "euclidean":
            functions["sgemm"] = (lambda: queries @ train.T, repeats)
        timings, predictions = interleaved_medians(functions)
        ours_pred, theirs_pred = predictions["fastknn"], predictions["sklearn_brute"]
        fastknn_time = timings["fastknn"]
        ratios = {"sklearn_brute / fastknn": timings["sklearn_brute"] / fastknn_time}
        if metric == "euclidean":
            ratios["fastknn / sgemm"] = fastknn_time / timings["sgemm"]
        results["timings"][metric] = timings
        results["ratios"][metric] = ratios
        results["agreement"][metric] = float(np.mean(ours_pred == theirs_pred))

    # FAISS last: importing it doubles scikit-learn's Euclidean brute-force
    # time in the same process (0.35 s to 0.70 s here; its bundled OpenMP
    # BLAS), so every scikit-learn figure above is taken before the import.
    if _faiss_available():
        ours = KNNClassifier(n_neighbors=K, metric="euclidean")
        timings, _ = interleaved_medians({
            "fastknn": (lambda: ours.fit(train, train_labels).predict(queries), repeats),
            "faiss_flat_l2": (lambda: _faiss_predict(train, train_labels, queries, K), reference_repeats),
        })
        results["timings"]["euclidean"]["faiss_flat_l2"] = timings["faiss_flat_l2"]
        results["ratios"]["euclidean"]["faiss_flat_l2 / fastknn"] = timings["faiss_flat_l2"] / timings["fastknn"]

    results["pruning"] = run_pruning_bench(train, train_labels, queries, repeats=repeats, quick=quick)
    results["augment"] = run_augment_bench(train, train_labels, queries, repeats=repeats, quick=quick)
    results["family"] = run_family_bench(train, train_labels, queries, repeats=reference_repeats, quick=quick)
    results["distortion"] = run_distortion_bench(repeats=repeats, quick=quick)
    results["low_dimensional"] = run_low_dimensional_bench(repeats=reference_repeats, quick=quick)
    results["sparse"] = run_sparse_bench(repeats=reference_repeats, quick=quick)
    results["cosine"] = run_cosine_bench(repeats=reference_repeats, quick=quick)

    if memory_queries:
        peak = peak_memory_predict(train, train_labels, memory_queries)
        results["memory"] = {
            "n_queries": memory_queries,
            "peak_bytes": int(peak),
            "full_distance_matrix_bytes": int(memory_queries * len(train) * train.dtype.itemsize),
        }
    return results


# Targets of the neighbours family (issue 18): speed-ups over scikit-learn's brute force.
FAMILY_TARGETS = {
    "KNNRegressor fit + predict": 2.0,
    "radius_neighbors brute": 2.0,
    "radius_neighbors pruned": 4.0,
    "KNNTransformer fit_transform": 2.0,
}
# Mean neighbours a query within the radius of the radius benchmark.
RADIUS_NEIGHBOURS = 20
# The KNNTransformer benchmark: t-SNE's graph (3 x perplexity 30) on 5,000 digits.
GRAPH_ROWS = 5000
GRAPH_NEIGHBOURS = 90


def radius_for_mean_neighbours(train, queries, mean_neighbours):
    """The Euclidean radius within which ``queries`` have ``mean_neighbours`` training rows on average.

    Midway between two consecutive distances: a radius equal to one of them
    would put a row exactly on the boundary, where scikit-learn's rounded
    distances may fall on either side.
    """
    from .neighbors import kneighbors

    distances, _ = kneighbors(queries, train, n_neighbors=len(train))
    ordered = np.sort(distances, axis=None)
    position = mean_neighbours * len(queries) - 1
    return float(0.5 * (ordered[position] + ordered[position + 1]))


def run_family_bench(train, train_labels, queries, repeats=5, quick=False):
    """The neighbours family against scikit-learn's brute force, side by side (paired ratios).

    ``KNNRegressor`` (k=5) fit + predict on the digits; ``radius_neighbors``
    with a radius of about ``RADIUS_NEIGHBOURS`` neighbours a query (the
    search alone, after fit; brute force and pruned); and
    ``KNNTransformer(n_neighbors=90, mode="distance").fit_transform`` on
    ``GRAPH_ROWS`` digits. Each entry gives the median seconds, the median
    of the paired ratios, and whether the answers agree.
    """
    from sklearn.neighbors import KNeighborsRegressor, KNeighborsTransformer
    from sklearn.neighbors import NearestNeighbors as SkNearestNeighbors

    from ._graph import KNNTransformer
    from ._regression import KNNRegressor
    from ._unsupervised import NearestNeighbors

    if quick:
        repeats = 1
    report = {}
    targets = train_labels.astype(np.float64)
    ours = KNNRegressor(n_neighbors=5)
    ours.fit(train[:50], targets[:50]).predict(queries[:5])  # compile outside timing
    theirs = KNeighborsRegressor(n_neighbors=5, algorithm="brute")
    times, results = interleaved_runs({
        "fastknn": (lambda: ours.fit(train, targets).predict(queries), repeats),
        "sklearn_brute": (lambda: theirs.fit(train, targets).predict(queries), repeats),
    })
    report["KNNRegressor fit + predict"] = {
        "fastknn_seconds": float(np.median(times["fastknn"])),
        "sklearn_seconds": float(np.median(times["sklearn_brute"])),
        "speedup": paired_ratio(times, "sklearn_brute", "fastknn"),
        "largest_difference": float(np.abs(results["fastknn"] - results["sklearn_brute"]).max()),
    }

    radius = radius_for_mean_neighbours(train, queries[::10], RADIUS_NEIGHBOURS)
    brute = NearestNeighbors(radius=radius, algorithm="brute").fit(train)
    start = time.perf_counter()
    pruned = NearestNeighbors(radius=radius, algorithm="pruned").fit(train)
    build_seconds = time.perf_counter() - start
    reference = SkNearestNeighbors(radius=radius, algorithm="brute").fit(train)
    brute.radius_neighbors(queries[:5])  # compile outside timing
    pruned.radius_neighbors(queries[:5])
    times, results = interleaved_runs({
        "brute": (lambda: brute.radius_neighbors(queries, return_distance=False), repeats),
        "pruned": (lambda: pruned.radius_neighbors(queries, return_distance=False), repeats),
        "sklearn_brute": (lambda: reference.radius_neighbors(queries, return_distance=False), repeats),
    })
    expected = results["sklearn_brute"]
    for method in ("brute", "pruned"):
        report[f"radius_neighbors {method}"] = {
            "fastknn_seconds": float(np.median(times[method])),
            "sklearn_seconds": float(np.median(times["sklearn_brute"])),
            "speedup": paired_ratio(times, "sklearn_brute", method),
            "same_neighbours": all(np.array_equal(a, b) for a, b in zip(results[method], expected)),
        }
    report["radius_neighbors pruned"]["build_seconds"] = build_seconds
    report["radius"] = {"radius": radius, "mean_neighbours": float(np.mean([len(i) for i in expected]))}

    rows = train[: min(GRAPH_ROWS, len(train))]
    n_neighbors = min(GRAPH_NEIGHBOURS, len(rows) - 2)
    KNNTransformer(n_neighbors=n_neighbors).fit_transform(rows[:200])  # compile outside timing
    times, results = interleaved_runs({
        "fastknn": (lambda: KNNTransformer(n_neighbors=n_neighbors, mode="distance").fit_transform(rows), repeats),
        "sklearn_brute": (
            lambda: KNeighborsTransformer(n_neighbors=n_neighbors, mode="distance", algorithm="brute").fit_transform(rows),
            repeats,
        ),
        # The floor of any method built on the matrix product of the rows with themselves.
        "sgemm": (lambda: rows @ rows.T, repeats),
    })
    graph, expected = results["fastknn"], results["sklearn_brute"]
    same_rows = [
        np.array_equal(np.sort(graph.indices[a:b]), np.sort(expected.indices[a:b]))
        for a, b in zip(graph.indptr[:-1], graph.indptr[1:])
    ]
    report["KNNTransformer fit_transform"] = {
        "fastknn_seconds": float(np.median(times["fastknn"])),
        "sklearn_seconds": float(np.median(times["sklearn_brute"])),
        "speedup": paired_ratio(times, "sklearn_brute", "fastknn"),
        "same_neighbour_rows": float(np.mean(same_rows)),
        "fastknn / sgemm": paired_ratio(times, "fastknn", "sgemm"),
        "shape": [int(rows.shape[0]), int(n_neighbors)],
    }
    return report


def format_family_report(family):
    """The neighbours-family benchmark as lines of text."""
    radius = family["radius"]
    lines = [
        "",
        "the neighbours family against scikit-learn's brute force (median seconds, median of paired ratios):",
        f"  {'case':<30} {'fastknn s':>9} {'sklearn s':>9} {'speedup':>8} {'target':>7}  agreement",
    ]
    for case, target in FAMILY_TARGETS.items():
        entry = family[case]
        if "largest_difference" in entry:
            agreement = f"largest |difference| {entry['largest_difference']:.1e}"
        elif "same_neighbours" in entry:
            agreement = f"same neighbour sets: {entry['same_neighbours']}"
        else:
            agreement = f"rows with the same neighbours: {entry['same_neighbour_rows']:.4f}"
        lines.append(
            f"  {case:<30} {entry['fastknn_seconds']:9.3f} {entry['sklearn_seconds']:9.3f} "
            f"{entry['speedup']:8.2f} {target:>7g}  {agreement}"
        )
    lines.append(
        f"  KNNTransformer time / bare sgemm of the same rows: {family['KNNTransformer fit_transform']['fastknn / sgemm']:.2f}"
    )
    lines.append(
        f"  radius {radius['radius']:.4f}: {radius['mean_neighbours']:.1f} neighbours a query; the radius searches "
        f"exclude fit (pruned index built in {family['radius_neighbors pruned']['build_seconds']:.3f} s)"
    )
    return lines


PRUNING_KS = (1, 5, 25)


def run_pruning_bench(train, train_labels, queries, repeats=3, quick=False):
    """Pruned against brute-force search: timings and rows pruned per stage.

    Search times exclude ``fit`` (the index is built once, timed apart).
    Also times ``algorithm="auto"`` against brute force on random Gaussian
    data (20,000 x 256), where pruning cannot pay.
    """
    from ._pruning import build_index, pruned_search
    from ._search import prepare_euclidean, search

    report = {}
    for metric in ("euclidean", "manhattan"):
        start = time.perf_counter()
        index = build_index(train, metric, None)
        build_seconds = time.perf_counter() - start
        pruned_search(queries[:5], train, index, 1)  # compile outside timing
        # Brute force gets its fit-time precomputation too.
        prepared = prepare_euclidean(train) if metric == "euclidean" else None
        flat = None
        if metric == "euclidean" and _faiss_available():
            import faiss

            flat = faiss.IndexFlatL2(train.shape[1])
            flat.add(train)
        for k in PRUNING_KS:
            functions = {
                "brute": (lambda: search(queries, train, k, metric, None, euclidean_train=prepared), repeats),
                "pruned": (lambda: pruned_search(queries, train, index, k, return_counts=True), repeats),
            }
            if flat is not None:
                functions["faiss"] = (lambda: flat.search(queries, k), repeats)
            timings, results = interleaved_medians(functions)
            counts = results["pruned"][2]
            entry = {
                "brute_seconds": timings["brute"],
                "pruned_seconds": timings["pruned"],
                "build_seconds": build_seconds,
                "speedup": timings["brute"] / timings["pruned"],
                "fraction_pruned_stage1": 1.0 - counts[:, 0].mean() / len(train),
                "fraction_pruned_stage2": 1.0 - counts[:, 1].mean() / len(train),
            }
            if flat is not None:
                entry["faiss_seconds"] = timings["faiss"]
            report[f"{metric} k={k}"] = entry

    from ._classification import KNNClassifier

    # The default algorithm against brute force on the digits, fit +
    # predict (issue 17: at least 1.5x for Euclidean, 4x for Manhattan):
    # the index and the probe of "auto" are paid within the one predict.
    report["digits brute / auto"] = {}
    for metric in ("euclidean", "manhattan"):
        functions = {}
        for algorithm in ("brute", "auto"):
            clf = KNNClassifier(n_neighbors=3, metric=metric, algorithm=algorithm)
            clf.fit(train, train_labels).predict(queries[:5])
            functions[algorithm] = (lambda clf=clf: clf.fit(train, train_labels).predict(queries), repeats)
        times, _ = interleaved_runs(functions)
        report["digits brute / auto"][metric] = paired_ratio(times, "brute", "auto")

    rng = np.random.default_rng(0)
    n_rows = 4000 if quick else 20_000
    gaussian = rng.standard_normal((n_rows, 256)).astype(np.float32)
    gaussian_labels = rng.integers(0, 10, n_rows)
    gaussian_queries = rng.standard_normal((500 if quick else 2000, 256)).astype(np.float32)
    report["gaussian auto / brute"] = {}
    for metric in ("euclidean", "manhattan"):
        functions = {}
        for algorithm in ("brute", "auto"):
            clf = KNNClassifier(n_neighbors=5, metric=metric, algorithm=algorithm)
            clf.fit(gaussian[:100], gaussian_labels[:100]).predict(gaussian_queries[:5])
            # Twice the usual runs, and the median of paired ratios: the
            # ratio sits near 1 and is compared with a 5% limit, finer than
            # this machine's run-to-run noise.
            functions[algorithm] = (
                lambda clf=clf: clf.fit(gaussian, gaussian_labels).predict(gaussian_queries),
                2 * repeats,
            )
        times, _ = interleaved_runs(functions)
        report["gaussian auto / brute"][metric] = paired_ratio(times, "auto", "brute")
    return report


# Low-dimensional shapes of issue 17, (n_train, n_features, n_queries), and
# the targets of the default KNNClassifier() there (paired ratios).
LOW_DIMENSIONAL_SHAPES = ((200_000, 2, 50_000), (1_000_000, 3, 100_000))
LOW_DIMENSIONAL_TARGETS = {"sklearn_default / fastknn": 2.0, "ckdtree / fastknn": 1.0}


def run_low_dimensional_bench(repeats=5, quick=False, shapes=LOW_DIMENSIONAL_SHAPES):
    """Default estimators on uniform low-dimensional points: fit + predict, k=5.

    fastknn's ``KNNClassifier()`` (``"auto"`` picks its tree there) against
    scikit-learn's ``KNeighborsClassifier()`` (its k-d tree) and against
    ``scipy.spatial.cKDTree`` build + query with ``workers=-1`` (neighbours
    only, no vote), interleaved; ratios are medians of paired runs.
    """
    from scipy.spatial import cKDTree
    from sklearn.neighbors import KNeighborsClassifier

    from ._classification import KNNClassifier

    if quick:
        shapes, repeats = ((20_000, 2, 5_000),), 1
    rng = np.random.default_rng(0)
    report = {}
    for n_train, n_features, n_queries in shapes:
        train = rng.random((n_train, n_features))
        labels = rng.integers(0, 10, n_train)
        queries = rng.random((n_queries, n_features))
        ours = KNNClassifier()
        ours.fit(train[:100], labels[:100]).predict(queries[:5])  # compile outside timing
        theirs = KNeighborsClassifier()
        times, results = interleaved_runs({
            "fastknn": (lambda: ours.fit(train, labels).predict(queries), repeats),
            "sklearn_default": (lambda: theirs.fit(train, labels).predict(queries), repeats),
            "ckdtree": (lambda: cKDTree(train).query(queries, k=5, workers=-1), repeats),
        })
        report[f"{n_train} x {n_features}, {n_queries} queries"] = {
            "seconds": {name: float(np.median(values)) for name, values in times.items()},
            "ratios": {name: paired_ratio(times, name.split(" / ")[0], "fastknn") for name in LOW_DIMENSIONAL_TARGETS},
            "same_predictions": bool(np.array_equal(results["fastknn"], results["sklearn_default"])),
            "fit_method": ours.fit_method_,
        }
    return report


def format_low_dimensional_report(low_dimensional):
    """The low-dimensional section of the bench as lines of text."""
    lines = ["", "low-dimensional uniform points, k=5, fit + predict (median seconds; paired ratios, higher is faster):"]
    for case, entry in low_dimensional.items():
        seconds = ", ".join(f"{name} {value:.3f}" for name, value in entry["seconds"].items())
        ratios = ", ".join(
            f"{name} {value:.2f} (target >= {LOW_DIMENSIONAL_TARGETS[name]:g})" for name, value in entry["ratios"].items()
        )
        lines.append(f"  {case}: {seconds}; fastknn method {entry['fit_method']!r}")
        lines.append(f"    {ratios}; same predictions as scikit-learn: {entry['same_predictions']}")
    return lines


SPARSE_SHAPE = (20_000, 30_000, 80, 2_000)  # training rows, columns, non-zeros a row, queries
SPARSE_METRICS = ("euclidean", "cosine", "manhattan")
SPARSE_NEIGHBORS = 10
SPARSE_TARGETS = {"euclidean": 3.0, "cosine": 3.0}


def tfidf_like(n_rows, n_features, nnz_per_row, seed=0):
    """A TF-IDF-like CSR matrix, float64, rows of unit Euclidean norm.

    Each row draws ``nnz_per_row`` words with replacement from a Zipf-like
    vocabulary (word r has weight ``1 / (r + 50)``, columns shuffled); a
    word drawn twice counts twice (its term frequency), and each count is
    weighted by scikit-learn's smooth idf, ``log((1 + n) / (1 + df)) + 1``.
    The rows hold a little under ``nnz_per_row`` distinct columns (78.5
    for 80 over 30,000), and the popular columns are long: a query meets
    about 55,000 stored values of 20,000 such rows.
    """
    import scipy.sparse

    rng = np.random.default_rng(seed)
    weights = 1.0 / (np.arange(n_features) + 51.0)
    words = rng.permutation(n_features)[rng.choice(n_features, size=n_rows * nnz_per_row, p=weights / weights.sum())]
    indptr = np.arange(0, n_rows * nnz_per_row + 1, nnz_per_row)
    matrix = scipy.sparse.csr_matrix((np.ones(n_rows * nnz_per_row), words, indptr), shape=(n_rows, n_features))
    matrix.sum_duplicates()
    document_frequency = np.bincount(matrix.indices, minlength=n_features)
    matrix.data *= (np.log((1.0 + n_rows) / (1.0 + document_frequency)) + 1.0)[matrix.indices]
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    matrix.data /= np.repeat(np.where(norms > 0, norms, 1.0), np.diff(matrix.indptr))
    return matrix


def run_sparse_bench(repeats=5, quick=False, shape=SPARSE_SHAPE):
    """Sparse TF-IDF-like rows, k=10: fastknn's sparse search against scikit-learn's brute force.

    For each metric, ``NearestNeighbors`` fit + kneighbors and
    ``KNNClassifier`` fit + predict (ten random classes), fastknn's and
    scikit-learn's (``algorithm="brute"``), interleaved; ratios are medians
    of paired runs. The neighbours are compared for equality.
    """
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neighbors import NearestNeighbors as SklearnNearestNeighbors

    from ._classification import KNNClassifier
    from ._unsupervised import NearestNeighbors

    if quick:
        shape, repeats = (2_000, 3_000, 40, 200), 1
    n_train, n_features, nnz_per_row, n_queries = shape
    matrix = tfidf_like(n_train + n_queries, n_features, nnz_per_row)
    train, queries = matrix[:n_train], matrix[n_train:]
    labels = np.random.default_rng(1).integers(0, 10, n_train)
    report = {"shape": f"{n_train} x {n_features}, {matrix.nnz / matrix.shape[0]:.1f} non-zeros a row, "
              f"{n_queries} queries, k={SPARSE_NEIGHBORS}, float64"}
    for metric in SPARSE_METRICS:
        ours = NearestNeighbors(n_neighbors=SPARSE_NEIGHBORS, metric=metric)
        ours.fit(train[:50]).kneighbors(queries[:5])  # compile outside timing
        theirs = SklearnNearestNeighbors(n_neighbors=SPARSE_NEIGHBORS, metric=metric, algorithm="brute")
        ours_classifier = KNNClassifier(n_neighbors=SPARSE_NEIGHBORS, metric=metric)
        theirs_classifier = KNeighborsClassifier(n_neighbors=SPARSE_NEIGHBORS, metric=metric, algorithm="brute")
        # scikit-learn's sparse Manhattan needs sorted indices (its result is
        # wrong otherwise); every matrix here has them.
        sklearn_repeats = 1 if metric == "manhattan" else repeats
        times, results = interleaved_runs({
            "fastknn kneighbors": (lambda: ours.fit(train).kneighbors(queries), repeats),
            "sklearn kneighbors": (lambda: theirs.fit(train).kneighbors(queries), sklearn_repeats),
            "fastknn predict": (lambda: ours_classifier.fit(train, labels).predict(queries), repeats),
            "sklearn predict": (lambda: theirs_classifier.fit(train, labels).predict(queries), sklearn_repeats),
        })
        report[metric] = {
            "seconds": {name: float(np.median(values)) for name, values in times.items()},
            "ratios": {
                step: paired_ratio(times, f"sklearn {step}", f"fastknn {step}") for step in ("kneighbors", "predict")
            },
            "same_neighbours": float(np.mean(results["fastknn kneighbors"][1] == results["sklearn kneighbors"][1])),
            "largest_distance_difference": float(
                np.abs(results["fastknn kneighbors"][0] - results["sklearn kneighbors"][0]).max()
            ),
            "same_predictions": float(np.mean(results["fastknn predict"] == results["sklearn predict"])),
        }
    return report


def format_sparse_report(sparse):
    """The sparse section of the bench as lines of text."""
    lines = ["", f"sparse TF-IDF-like rows ({sparse['shape']}), fit + search (median seconds; paired ratios):"]
    for metric in SPARSE_METRICS:
        entry = sparse[metric]
        seconds = ", ".join(f"{name} {value:.3f}" for name, value in entry["seconds"].items())
        target = f" (target >= {SPARSE_TARGETS[metric]:g})" if metric in SPARSE_TARGETS else ""
        ratios = ", ".join(f"sklearn / fastknn {step} {value:.2f}{target}" for step, value in entry["ratios"].items())
        lines.append(f"  {metric}: {seconds}")
        lines.append(
            f"    {ratios}; same neighbours {entry['same_neighbours']:.4f} "
            f"(distances within {entry['largest_distance_difference']:.1e}), same predictions {entry['same_predictions']:.4f}"
        )
    return lines


COSINE_SHAPE = (100_000, 384, 2_000)
COSINE_NEIGHBOURS = 10
COSINE_TARGETS = {"sklearn_brute / fastknn": 2.0, "faiss_flat_ip / fastknn": 1.0}


def embedding_like(n_rows, n_features, rng, n_clusters=100):
    """float32 rows clustered like sentence embeddings: Gaussian centres plus Gaussian noise of 0.7 their scale."""
    centres = np.random.default_rng(12345).normal(size=(n_clusters, n_features))
    rows = centres[rng.integers(0, n_clusters, n_rows)] + 0.7 * rng.normal(size=(n_rows, n_features))
    return rows.astype(np.float32)


def run_cosine_bench(repeats=5, quick=False, shape=COSINE_SHAPE):
    """Cosine k nearest neighbours of embedding-like rows (k=10): fit + kneighbors, and the search alone.

    fastknn's ``NearestNeighbors(metric="cosine")`` against scikit-learn's
    brute force and FAISS ``IndexFlatIP`` on rows normalised by
    ``faiss.normalize_L2`` (normalising, adding and searching, against
    fastknn's fit and search), interleaved; ratios are medians of paired
    runs. Agreement is the fraction of neighbour sets equal to fastknn's.
    """
    from sklearn.neighbors import NearestNeighbors as SklearnNearestNeighbors

    from ._search import default_n_threads
    from ._unsupervised import NearestNeighbors

    if quick:
        shape, repeats = (5_000, 64, 200), 1
    n_train, n_features, n_queries = shape
    rng = np.random.default_rng(0)
    train, queries = embedding_like(n_train, n_features, rng), embedding_like(n_queries, n_features, rng)
    k = COSINE_NEIGHBOURS
    ours = NearestNeighbors(n_neighbors=k, metric="cosine")
    ours.fit(train[:100]).kneighbors(queries[:5])  # compile outside timing
    fitted = NearestNeighbors(n_neighbors=k, metric="cosine").fit(train)
    theirs = SklearnNearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute")
    functions = {
        "fastknn": (lambda: ours.fit(train).kneighbors(queries)[1], repeats),
        "sklearn_brute": (lambda: theirs.fit(train).kneighbors(queries)[1], max(1, repeats // 2)),
        "fastknn_search": (lambda: fitted.kneighbors(queries)[1], repeats),
    }
    if _faiss_available():
        import faiss

        faiss.omp_set_num_threads(default_n_threads())

        def faiss_fit_search():
            rows, unit_queries = train.copy(), queries.copy()
            faiss.normalize_L2(rows)
            faiss.normalize_L2(unit_queries)
            index = faiss.IndexFlatIP(n_features)
            index.add(rows)
            return index.search(unit_queries, k)[1]

        unit_train = train.copy()
        faiss.normalize_L2(unit_train)
        flat = faiss.IndexFlatIP(n_features)
        flat.add(unit_train)

        def faiss_search():
            unit_queries = queries.copy()
            faiss.normalize_L2(unit_queries)
            return flat.search(unit_queries, k)[1]

        functions["faiss_flat_ip"] = (faiss_fit_search, repeats)
        functions["faiss_flat_ip_search"] = (faiss_search, repeats)
    times, results = interleaved_runs(functions)
    neighbours = np.sort(results["fastknn"], axis=1)
    report = {
        "shape": {"n_train": n_train, "n_features": n_features, "n_queries": n_queries, "k": k},
        "seconds": {name: float(np.median(values)) for name, values in times.items()},
        "ratios": {
            name: paired_ratio(times, name.split(" / ")[0], "fastknn")
            for name in COSINE_TARGETS if name.split(" / ")[0] in times
        },
        "agreement": {
            name: float(np.mean(np.all(np.sort(results[name], axis=1) == neighbours, axis=1)))
            for name in ("sklearn_brute", "faiss_flat_ip") if name in results
        },
    }
    if "faiss_flat_ip_search" in times:
        report["ratios"]["faiss_flat_ip_search / fastknn_search"] = paired_ratio(
            times, "faiss_flat_ip_search", "fastknn_search"
        )
    return report


def format_cosine_report(cosine):
    """The cosine section of the bench as lines of text."""
    shape = cosine["shape"]
    lines = [
        "",
        f"cosine, embedding-like float32 rows: {shape['n_train']} x {shape['n_features']}, "
        f"{shape['n_queries']} queries, k={shape['k']} (median seconds; paired ratios, higher is faster):",
        "  " + ", ".join(f"{name} {value:.3f}" for name, value in cosine["seconds"].items()),
    ]
    for name, value in cosine["ratios"].items():
        target = f" (target >= {COSINE_TARGETS[name]:g})" if name in COSINE_TARGETS else " (search alone)"
        lines.append(f"  {name:<40} {value:6.2f}{target}")
    lines.append(
        "  queries with the same neighbours as fastknn: "
        + ", ".join(f"{name} {fraction:.4f}" for name, fraction in cosine["agreement"].items())
    )
    return lines


def _scipy_deskew_loop(images):
    """Deskew one image at a time with scipy.ndimage: the reference to beat."""
    from scipy import ndimage

    side = images.shape[1]
    rows, cols = np.indices((side, side), dtype=np.float64)
    centre = (side - 1) / 2.0
    out = np.empty(images.shape, dtype=np.float32)
    for n, image in enumerate(images.astype(np.float64)):
        mass = image.sum()
        if mass == 0:
            out[n] = image
            continue
        r0, c0 = (rows * image).sum() / mass, (cols * image).sum() / mass
        mu02 = ((rows - r0) ** 2 * image).sum()
        alpha = ((rows - r0) * (cols - c0) * image).sum() / mu02 if mu02 > 0 else 0.0
        matrix = np.array([[1.0, 0.0], [alpha, 1.0]])
        offset = np.array([r0, c0]) - matrix @ np.array([centre, centre])
        out[n] = ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="grid-constant")
    return out


def run_augment_bench(train, train_labels, queries, repeats=3, quick=False):
    """Deskew and shift expansion: speed, and what expansion costs at predict.

    Deskewing 60,000 digits (the packaged 15,000, four times) is timed
    against a per-image scipy.ndimage loop; predicting with a training set
    expanded by 1-pixel shifts in 4 directions (5x the rows) against the
    unexpanded one; and pruned against brute-force search on the expanded set.
    """
    from ._pruning import build_index, pruned_search
    from ._search import prepare_euclidean, search
    from .augment import deskew, shift_images
    from .datasets import load_mnist
    from ._classification import KNNClassifier

    images = load_mnist().images
    images = np.concatenate([images] * (1 if quick else 4))
    deskew(images[:10])
    deskew_time, _ = median_time(lambda: deskew(images), repeats)
    scipy_time, _ = median_time(lambda: _scipy_deskew_loop(images[: len(images) // 4]), 1)
    scipy_time *= len(images) / (len(images) // 4)
    report = {
        "n_images": len(images),
        "deskew_seconds": deskew_time,
        "scipy_loop_seconds": scipy_time,
        "deskew_speedup": scipy_time / deskew_time,
    }

    expanded, expanded_labels = shift_images(train, train_labels, n_pixels=1, directions=4)
    plain = KNNClassifier(n_neighbors=K, algorithm="brute").fit(train, train_labels)
    big = KNNClassifier(n_neighbors=K, algorithm="brute").fit(expanded, expanded_labels)
    report["expanded_rows"] = len(expanded)
    timings, _ = interleaved_medians(
        {"plain": (lambda: plain.predict(queries), repeats), "expanded": (lambda: big.predict(queries), repeats)}
    )
    report["predict_seconds"], report["expanded_predict_seconds"] = timings["plain"], timings["expanded"]
    report["expanded_cost_ratio"] = report["expanded_predict_seconds"] / report["predict_seconds"]

    for metric in ("euclidean", "manhattan"):
        index = build_index(expanded, metric, None)
        pruned_search(queries[:5], expanded, index, K)
        prepared = prepare_euclidean(expanded) if metric == "euclidean" else None
        timings, _ = interleaved_medians({
            "brute": (lambda: search(queries, expanded, K, metric, None, euclidean_train=prepared), repeats),
            "pruned": (lambda: pruned_search(queries, expanded, index, K), repeats),
        })
        report[f"expanded {metric} pruned speedup"] = timings["brute"] / timings["pruned"]
    return report


def select_distortion_model(X_train, y_train, X_val, y_val, n_candidates=50):
    """Choose deskewing, warp, K and weights of the IDM re-ranking on a validation set.

    :func:`fastknn.distortion.select_distortion_knn` on the raw and on the
    deskewed images (warp 1 or 2, K 1, 3 or 5, uniform or distance weights);
    the better of the two (raw first among equals).

    Returns
    -------
    deskewed : bool
        Whether the chosen model works on deskewed images.
    model : DistortionKNNClassifier
        The chosen model, fit on ``X_train`` (deskewed when ``deskewed``).
    results : list of dict
        Every combination's ``validation_accuracy``, with ``deskew`` (bool).
    """
    from .augment import deskew
    from .distortion import select_distortion_knn

    chosen, best_accuracy, results = None, -1.0, []
    for deskewed in (False, True):
        prepare = deskew if deskewed else np.asarray
        model, scores = select_distortion_knn(
            prepare(X_train), y_train, prepare(X_val), y_val, n_candidates=n_candidates
        )
        results += [dict(row, deskew=deskewed) for row in scores]
        accuracy = max(row["validation_accuracy"] for row in scores)
        if accuracy > best_accuracy:
            chosen, best_accuracy = (deskewed, model), accuracy
    return chosen[0], chosen[1], results


def run_distortion_bench(repeats=3, quick=False):
    """The IDM re-ranking: accuracy chosen on validation, speed, stability in n_candidates.

    On the packaged 10,000 / 2,000 / 2,000 split: the selection of
    :func:`select_distortion_model` with its validation and test accuracy;
    re-ranking the 2,000 (deskewed) validation digits' 50 Euclidean
    candidates (warp 2, K=1) against the exact Euclidean search that finds
    them, timed side by side (search alone, both); and the fraction of
    validation queries whose IDM top-K changes as ``n_candidates`` grows.
    """
    from .augment import deskew
    from .datasets import load_mnist_split
    from .distortion import DistortionKNNClassifier, _rerank_chunks

    X_train, y_train, X_val, y_val, X_test, y_test = load_mnist_split("10000")
    if quick:
        X_train, y_train, X_val, y_val, X_test, y_test = (
            X_train[:2000], y_train[:2000], X_val[:300], y_val[:300], X_test[:300], y_test[:300]
        )
    report = {"n_train": len(X_train), "n_queries": len(X_val)}
    start = time.perf_counter()
    deskewed, chosen, results = select_distortion_model(X_train, y_train, X_val, y_val)
    report["selection_seconds"] = time.perf_counter() - start
    report["selected"] = {
        "deskew": deskewed, "warp": chosen.warp, "n_neighbors": chosen.n_neighbors, "weights": chosen.weights
    }
    report["validation_accuracy"] = max(row["validation_accuracy"] for row in results)
    report["test_accuracy"] = float(chosen.score(deskew(X_test) if deskewed else X_test, y_test))

    train, queries = deskew(X_train), deskew(X_val)
    clf = DistortionKNNClassifier(1, n_candidates=50, warp=2).fit(train, y_train)
    clf.predict(queries[:10])
    search_candidates = lambda: clf._euclidean.kneighbors(queries, return_distance=False)  # noqa: E731
    candidates = search_candidates()
    rerank = lambda: _rerank_chunks(queries, candidates, clf._train_gradients, 1, clf._model)  # noqa: E731
    rerank_full = lambda: _rerank_chunks(queries, candidates, clf._train_gradients, 1, clf._model, abandon=False)  # noqa: E731
    times, _ = interleaved_runs(
        {"euclidean": (search_candidates, repeats), "rerank": (rerank, repeats), "rerank_no_abandon": (rerank_full, repeats)}
    )
    report["euclidean_search_seconds"] = float(np.median(times["euclidean"]))
    report["rerank_seconds"] = float(np.median(times["rerank"]))
    report["rerank_no_abandon_seconds"] = float(np.median(times["rerank_no_abandon"]))
    report["rerank / euclidean"] = paired_ratio(times, "rerank", "euclidean")
    report["abandon speedup"] = paired_ratio(times, "rerank_no_abandon", "rerank")

    # Stability: top-K of the same queries with more candidates.
    neighbours = {}
    for n_candidates in (50, 100, 200):
        model = DistortionKNNClassifier(5, n_candidates=n_candidates, warp=2).fit(train, y_train)
        neighbours[n_candidates] = model.kneighbors(queries, return_distance=False)
    stability = {}
    for k in (1, 3, 5):
        for small, large in ((50, 100), (100, 200), (50, 200)):
            changed = np.any(neighbours[small][:, :k] != neighbours[large][:, :k], axis=1)
            stability[f"K={k} N {small}->{large}"] = float(np.mean(changed))
    report["top_k_changed"] = stability
    report["validation_accuracy_by_n_candidates"] = {
        n: float(np.mean(y_train[ind[:, 0]] == y_val)) for n, ind in neighbours.items()
    }
    return report


def format_distortion_report(distortion):
    """The IDM section of the bench as lines of text."""
    lines = [
        "",
        f"IDM re-ranking ({distortion['n_train']} training digits, {distortion['n_queries']} queries):",
        f"  chosen on validation ({distortion['selection_seconds']:.1f} s, 24 combinations): {distortion['selected']}",
        f"  validation accuracy {distortion['validation_accuracy']:.4f}, test accuracy "
        f"{distortion['test_accuracy']:.4f} (target >= 0.994)",
        f"  re-rank 50 candidates (deskewed, warp 2, K=1): {distortion['rerank_seconds']:.3f} s; the Euclidean search "
        f"that found them: {distortion['euclidean_search_seconds']:.3f} s; paired ratio "
        f"{distortion['rerank / euclidean']:.2f} (target <= 5)",
        f"  early abandoning: {distortion['abandon speedup']:.2f}x (without: {distortion['rerank_no_abandon_seconds']:.3f} s)",
        "  fraction of queries whose IDM top-K changes with more candidates: "
        + ", ".join(f"{name} {value:.4f}" for name, value in distortion["top_k_changed"].items()),
        "  1-NN validation accuracy by n_candidates: "
        + ", ".join(f"{n}: {acc:.4f}" for n, acc in distortion["validation_accuracy_by_n_candidates"].items()),
    ]
    return lines


def format_report(results):
    """The bench results as a table a person can read."""
    shape = results["shape"]
    lines = [
        f"fastknn bench: {shape['n_train']} training x {shape['n_queries']} queries x "
        f"{shape['n_features']} features, k={shape['k']}, fit + predict, median seconds",
        "",
        f"{'metric':<11} {'method':<15} {'seconds':>9}",
    ]
    for metric, timings in results["timings"].items():
        for method, seconds in timings.items():
            lines.append(f"{metric:<11} {method:<15} {seconds:9.3f}")
    lines += ["", "ratios (higher means fastknn is faster, except fastknn / sgemm):"]
    for metric, ratios in results["ratios"].items():
        for name, value in ratios.items():
            target = ""
            if name == "sklearn_brute / fastknn":
                target = f"   (target >= {SPEEDUP_TARGETS[metric]:g})"
            elif name == "fastknn / sgemm":
                target = "   (target <= 1.2)"
            lines.append(f"  {metric:<11} {name:<25} {value:7.2f}{target}")
    lines += ["", "agreement of predictions with scikit-learn:"]
    for metric, fraction in results["agreement"].items():
        lines.append(f"  {metric:<11} {fraction:.4f}")
    lines += [
        "",
        f"first call in a fresh process, empty numba cache: {results['first_call_seconds']:.2f} s (target < 10)",
        f"fresh process with kernels cached:                {results['cached_start_seconds']:.2f} s (target < 2)",
    ]
    if "pruning" in results:
        lines += ["", "pruned against brute-force search (search only; index built at fit):"]
        lines.append(
            f"  {'case':<16} {'brute s':>8} {'pruned s':>9} {'speedup':>8} {'faiss s':>8} "
            f"{'pruned@1':>9} {'pruned@2':>9} {'build s':>8}"
        )
        for case, entry in results["pruning"].items():
            if case.startswith(("gaussian", "digits")):
                continue
            faiss_seconds = entry.get("faiss_seconds")
            faiss_text = f"{faiss_seconds:8.3f}" if faiss_seconds is not None else f"{'-':>8}"
            lines.append(
                f"  {case:<16} {entry['brute_seconds']:8.3f} {entry['pruned_seconds']:9.3f} "
                f"{entry['speedup']:8.2f} {faiss_text} {entry['fraction_pruned_stage1']:9.4f} "
                f"{entry['fraction_pruned_stage2']:9.4f} {entry['build_seconds']:8.3f}"
            )
        digits_default = results["pruning"]["digits brute / auto"]
        lines.append(
            "  digits, fit + predict, algorithm='brute' time / default 'auto' time (median of paired runs): "
            + ", ".join(f"{metric} {ratio:.2f}" for metric, ratio in digits_default.items())
            + " (targets >= 1.5 Euclidean, >= 4 Manhattan)"
        )
        gaussian = results["pruning"]["gaussian auto / brute"]
        lines.append(
            "  random Gaussian data (256 features), algorithm='auto' time / 'brute' time (median of paired runs): "
            + ", ".join(f"{metric} {ratio:.3f}" for metric, ratio in gaussian.items())
            + " (target <= 1.05)"
        )
    if "augment" in results:
        augment = results["augment"]
        lines += [
            "",
            f"deskew {augment['n_images']} digits: {augment['deskew_seconds']:.3f} s, per-image scipy.ndimage loop "
            f"{augment['scipy_loop_seconds']:.2f} s (a quarter timed, scaled): {augment['deskew_speedup']:.1f}x "
            "(targets < 0.5 s and >= 10x)",
            f"predict with the training set shift-expanded to {augment['expanded_rows']} rows: "
            f"{augment['expanded_predict_seconds']:.3f} s against {augment['predict_seconds']:.3f} s, "
            f"{augment['expanded_cost_ratio']:.2f}x (target <= 6)",
            "pruned / brute speed-up on the expanded set: "
            + ", ".join(
                f"{metric} {augment[f'expanded {metric} pruned speedup']:.2f}x" for metric in ("euclidean", "manhattan")
            ),
        ]
    if "family" in results:
        lines += format_family_report(results["family"])
    if "distortion" in results:
        lines += format_distortion_report(results["distortion"])
    if "low_dimensional" in results:
        lines += format_low_dimensional_report(results["low_dimensional"])
    if "sparse" in results:
        lines += format_sparse_report(results["sparse"])
    if "cosine" in results:
        lines += format_cosine_report(results["cosine"])
    if "memory" in results:
        memory = results["memory"]
        lines.append(
            f"peak memory predicting {memory['n_queries']} queries: {memory['peak_bytes'] / 2**20:.0f} MiB "
            f"(the full distance matrix would be {memory['full_distance_matrix_bytes'] / 2**20:.0f} MiB)"
        )
    return "\n".join(lines)


def format_cv_report(cv):
    """The KNNClassifierCV benchmark as lines of text."""
    lines = [
        "",
        f"choosing K, metric and weights by {cv['n_splits']}-fold CV on {cv['n_samples']} digits, "
        f"{cv['n_candidates']} candidates (median seconds):",
    ]
    for name in ("knn_classifier_cv_s", "grid_search_fastknn_s", "grid_search_sklearn_s"):
        if cv.get(name) is not None:
            lines.append(f"  {name:<40} {cv[name]:9.2f}")
    for name in ("speedup_vs_grid_search_fastknn", "speedup_vs_grid_search_sklearn"):
        if cv.get(name) is not None:
            lines.append(f"  {name:<40} {cv[name]:9.1f}x")
    lines.append(f"  same scores as GridSearchCV(KNNClassifier): {cv['same_scores']}")
    return lines


def _check_options(args):
    """Refuse option values that make no sense, before minutes of measuring."""
    from .cli import CommandLineError, check_writable_file

    if args.repeats < 1:
        raise CommandLineError(f"--repeats {args.repeats}: needs at least 1 run")
    if args.memory_queries < 0:
        raise CommandLineError(f"--memory-queries {args.memory_queries}: must be 0 (skip) or positive")
    if args.cv_sklearn and not args.cv:
        raise CommandLineError("--cv-sklearn needs --cv")
    if args.json is not None:
        if os.path.isdir(args.json):
            raise CommandLineError(f"--json {args.json} is a folder; give a file name")
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise CommandLineError(f"--json {args.json}: the folder {folder} does not exist")
        check_writable_file(args.json, "--json")  # before the run, not after it


def main(args):
    """Entry point of ``fastknn bench``: results to stdout, or also to ``--json``."""
    _check_options(args)
    if args.startup:
        figures = startup_comparison(repeats=args.repeats)
        print("\n".join(format_startup_report(figures)).lstrip("\n"))
        if args.json:
            with open(args.json, "w") as stream:
                json.dump({"startup": figures}, stream, indent=2)
        return 0
    results = run_bench(repeats=args.repeats, memory_queries=args.memory_queries, quick=args.quick)
    report = format_report(results)
    if args.cv:
        from ._cv_benchmark import benchmark_cv

        results["cv"] = benchmark_cv(
            repeats=args.repeats if not args.quick else 1, sklearn_repeats=1 if args.cv_sklearn else 0
        )
        report += "\n" + "\n".join(format_cv_report(results["cv"]))
    print(report)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(results, stream, indent=2)
    return 0


EXAMPLE = """example:
  fastknn bench --quick                  # a smoke test, about a minute
  fastknn bench --json bench.json        # every figure, also as JSON
  fastknn bench --startup --repeats 5    # fresh-process start-up against scikit-learn
"""


def add_arguments(parser):
    """Register the options of ``fastknn bench`` on an argparse parser."""
    parser.epilog = EXAMPLE
    parser.add_argument("--repeats", type=int, default=7, help="runs per fastknn measurement (median)")
    parser.add_argument(
        "--memory-queries", type=int, default=100_000, help="queries for the peak-memory check (0 skips)"
    )
    parser.add_argument("--quick", action="store_true", help="small shapes and single runs, for smoke tests")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--cv", action="store_true", help="also time KNNClassifierCV against GridSearchCV (minutes)")
    parser.add_argument(
        "--startup",
        action="store_true",
        help="only the start-up comparison: a fresh process importing and predicting once, against scikit-learn "
        "(--repeats runs each)",
    )
    parser.add_argument(
        "--cv-sklearn", action="store_true", help="with --cv, include scikit-learn's GridSearchCV (about 15 minutes)"
    )
