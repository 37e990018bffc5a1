"""Compile fastknn's kernels ahead of use: ``fastknn warmup`` (or ``python -m fastknn warmup``).

Numba compiles each kernel the first time it is called and caches it on disk,
so the first search of a new installation waits for compilation. Running this
once (in a Docker image build, a CI cache step, after ``pip install``) pays
that cost up front: each group of kernels is compiled by a small fit and
predict through the public API, with a progress line each, so exactly the
specialisations that real calls use end up in the cache.

Example: ``fastknn warmup --profile`` compiles everything and then lists the
compile time of each kernel.
"""

import sys
import time

import numpy as np

# (label, estimator parameters, dtype): each fits and predicts once on small data.
SEARCHES = (
    ("euclidean, float32", {"metric": "euclidean", "algorithm": "brute"}, np.float32),
    ("euclidean, float64", {"metric": "euclidean", "algorithm": "brute"}, np.float64),
    ("euclidean, distance weights", {"metric": "euclidean", "algorithm": "brute", "weights": "distance"}, np.float32),
    ("manhattan", {"metric": "manhattan", "algorithm": "brute"}, np.float32),
    ("chebyshev", {"metric": "chebyshev", "algorithm": "brute"}, np.float32),
    ("minkowski p=3", {"metric": "minkowski", "p": 3, "algorithm": "brute"}, np.float32),
    ("pruned euclidean", {"metric": "euclidean", "algorithm": "pruned"}, np.float32),
    ("pruned manhattan", {"metric": "manhattan", "algorithm": "pruned"}, np.float32),
    ("pruned minkowski p=3", {"metric": "minkowski", "p": 3, "algorithm": "pruned"}, np.float32),
)

# (label, layout, dtype) of the low-dimensional and sparse searches: the
# metric is a run-time argument of their kernels, so one search per layout
# and dtype compiles them for every metric.
SHAPED_SEARCHES = (
    ("k-d tree (5 features), float32", "tree", np.float32),
    ("k-d tree (5 features), float64", "tree", np.float64),
    ("cell grid (2 features), float32", "grid", np.float32),
    ("cell grid (2 features), float64", "grid", np.float64),
    ("sparse, float32", "sparse", np.float32),
    ("sparse, float64", "sparse", np.float64),
)


def _search_step(params, dtype):
    from . import KNNClassifier

    rng = np.random.default_rng(0)
    X = rng.random((600, 64)).astype(dtype)
    y = np.arange(600) % 10
    KNNClassifier(n_neighbors=3, **params).fit(X, y).predict_proba(X[:50])


def _shaped_data(layout, dtype):
    """Training rows of a layout: ``"tree"`` (integer coordinates, so tied
    queries settle their tie balls), ``"grid"`` (evenly spread points) or
    ``"sparse"`` (a CSR matrix)."""
    import scipy.sparse

    rng = np.random.default_rng(0)
    if layout == "tree":
        return rng.integers(0, 4, size=(600, 5)).astype(dtype)
    if layout == "grid":
        return rng.random((2000, 2)).astype(dtype)
    return scipy.sparse.random(600, 200, density=0.05, random_state=0, format="csr", dtype=dtype)


def _shaped_search_step(layout, dtype):
    from . import KNNClassifier, NearestNeighbors

    X = _shaped_data(layout, dtype)
    y = np.arange(X.shape[0]) % 10
    algorithm = "kd_tree" if layout == "tree" else "auto"
    KNNClassifier(n_neighbors=3, algorithm=algorithm).fit(X, y).predict_proba(X[:50])
    # The radius search (the tree's runs on the k-d tree, the grid's too).
    NearestNeighbors(radius=0.1, algorithm=algorithm).fit(X).radius_neighbors(X[:50])


def _augment_step():
    from .augment import deskew, rotate_images

    rng = np.random.default_rng(0)
    images = rng.random((20, 28 * 28), dtype=np.float32)
    deskew(images)
    rotate_images(images, np.arange(20) % 10)


def warmup_steps():
    """The warm-up, as ``(label, function)`` pairs run in order."""
    steps = [(label, lambda p=params, d=dtype: _search_step(p, d)) for label, params, dtype in SEARCHES]
    steps += [(label, lambda s=layout, d=dtype: _shaped_search_step(s, d)) for label, layout, dtype in SHAPED_SEARCHES]
    steps.append(("augmentation (deskew, rotation)", _augment_step))
    return steps


def run_warmup(stream=None):
    """Compile (or load from the cache) every kernel of the common calls.

    Parameters
    ----------
    stream : file-like, default=None
        Where the progress lines go; None means ``sys.stderr``.

    Returns
    -------
    compilations : list of fastknn._compilation.Compilation
        What was compiled: empty when the cache already held everything.
    """
    from ._compilation import compilations, quiet

    quiet()
    stream = sys.stderr if stream is None else stream
    done_before = len(compilations())
    start = time.perf_counter()
    steps = warmup_steps()
    for number, (label, step) in enumerate(steps, start=1):
        step_start = time.perf_counter()
        print(f"[{number}/{len(steps)}] {label} ...", end=" ", file=stream, flush=True)
        step()
        print(f"{time.perf_counter() - step_start:.1f} s", file=stream, flush=True)
    compiled = compilations()[done_before:]
    print(
        f"{len(compiled)} kernel compilations in {time.perf_counter() - start:.1f} s"
        + ("" if compiled else " (all kernels were already cached)"),
        file=stream,
    )
    return compiled


def format_profile(compiled):
    """A table of compile CPU seconds per kernel, most expensive first.

    ``own`` leaves out the fastknn kernels compiled for a kernel (they have
    rows of their own), so that column adds up to the whole compile time;
    ``with callees`` includes them.
    """
    total, own, count = {}, {}, {}
    for record in compiled:
        total[record.kernel] = total.get(record.kernel, 0.0) + record.cpu_seconds
        own[record.kernel] = own.get(record.kernel, 0.0) + record.own_seconds
        count[record.kernel] = count.get(record.kernel, 0) + 1
    lines = [f"{'own s':>7} {'with callees s':>15} {'compiles':>9}  kernel"]
    for kernel in sorted(own, key=own.get, reverse=True):
        lines.append(f"{own[kernel]:7.2f} {total[kernel]:15.2f} {count[kernel]:9d}  {kernel}")
    lines.append(f"{sum(own.values()):7.2f} {'':15} {len(compiled):9d}  all")
    return "\n".join(lines)


EXAMPLE = """example:
  fastknn warmup              # compile the common kernels once, e.g. in a Docker image build
  fastknn warmup --profile    # then list the compile time of each kernel
"""


def add_arguments(parser):
    """Add the ``warmup`` options to an argparse parser."""
    parser.epilog = EXAMPLE
    parser.add_argument(
        "--profile", action="store_true", help="after compiling, list the compile time of each kernel (stdout)"
    )


def main(args):
    """Run ``fastknn warmup``; returns the exit status."""
    compiled = run_warmup()
    if args.profile:
        print(format_profile(compiled))
    return 0
