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

import contextlib
import os
import subprocess
import sys
import threading
import time
from functools import partial
from typing import Callable, NamedTuple

import numpy as np

# (key, label, estimator parameters, dtype): each fits and predicts once on small data.
SEARCHES = (
    ("euclidean", "euclidean, float32", {"metric": "euclidean", "algorithm": "brute"}, np.float32),
    ("euclidean-float64", "euclidean, float64", {"metric": "euclidean", "algorithm": "brute"}, np.float64),
    (
        "euclidean-distance",
        "euclidean, distance weights",
        {"metric": "euclidean", "algorithm": "brute", "weights": "distance"},
        np.float32,
    ),
    ("manhattan", "manhattan", {"metric": "manhattan", "algorithm": "brute"}, np.float32),
    ("chebyshev", "chebyshev", {"metric": "chebyshev", "algorithm": "brute"}, np.float32),
    ("minkowski", "minkowski p=3", {"metric": "minkowski", "p": 3, "algorithm": "brute"}, np.float32),
    ("pruned-euclidean", "pruned euclidean", {"metric": "euclidean", "algorithm": "pruned"}, np.float32),
    ("pruned-manhattan", "pruned manhattan", {"metric": "manhattan", "algorithm": "pruned"}, np.float32),
    (
        "pruned-minkowski",
        "pruned minkowski p=3",
        {"metric": "minkowski", "p": 3, "algorithm": "pruned"},
        np.float32,
    ),
)

# (key, label, layout, dtype) of the low-dimensional and sparse searches: the
# metric is a run-time argument of their kernels, so one search per layout
# and dtype compiles them for every metric.
SHAPED_SEARCHES = (
    ("tree", "k-d tree (5 features), float32", "tree", np.float32),
    ("tree-float64", "k-d tree (5 features), float64", "tree", np.float64),
    ("grid", "cell grid (2 features), float32", "grid", np.float32),
    ("grid-float64", "cell grid (2 features), float64", "grid", np.float64),
    ("sparse", "sparse, float32", "sparse", np.float32),
    ("sparse-float64", "sparse, float64", "sparse", np.float64),
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


def _distortion_step():
    from .distortion import DistortionKNNClassifier

    rng = np.random.default_rng(0)
    images = rng.random((40, 28 * 28), dtype=np.float32)
    DistortionKNNClassifier(n_neighbors=3, n_candidates=5).fit(images, np.arange(40) % 10).predict(images[:4])


class WarmupStep(NamedTuple):
    """One step of the warm-up: ``function()`` compiles a group of kernels."""

    key: str
    label: str
    function: Callable[[], None]


def warmup_steps(keys=None):
    """The warm-up's steps, in the order they run.

    Parameters
    ----------
    keys : sequence of str, default=None
        The steps to keep, in this order (see :data:`SEARCHES` and
        :data:`SHAPED_SEARCHES` for their keys, plus ``"augmentation"`` and
        ``"distortion"``); None keeps them all, in the default order.

    Returns
    -------
    steps : list of WarmupStep
    """
    steps = [WarmupStep(key, label, partial(_search_step, params, dtype)) for key, label, params, dtype in SEARCHES]
    steps += [
        WarmupStep(key, label, partial(_shaped_search_step, layout, dtype))
        for key, label, layout, dtype in SHAPED_SEARCHES
    ]
    steps.append(WarmupStep("augmentation", "augmentation (deskew, rotation)", _augment_step))
    steps.append(WarmupStep("distortion", "image distortion model (IDM) re-ranking", _distortion_step))
    if keys is None:
        return steps
    by_key = {step.key: step for step in steps}
    unknown = [key for key in keys if key not in by_key]
    if unknown:
        raise ValueError(f"unknown warm-up step(s) {unknown}; expected some of {list(by_key)}")
    return [by_key[key] for key in keys]


def run_warmup(stream=None, keys=None):
    """Compile (or load from the cache) every kernel of the common calls.

    Parameters
    ----------
    stream : file-like, default=None
        Where the progress lines go; None means ``sys.stderr``.
    keys : sequence of str, default=None
        Only these steps, in this order (see :func:`warmup_steps`).

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
    steps = warmup_steps(keys)
    for number, (_, label, step) in enumerate(steps, start=1):
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


# The second process of ``compile_ahead``: this checkout's fastknn, at a lower
# priority, its progress lines discarded.
_AHEAD_SCRIPT = """
import os, sys
sys.path.insert(0, sys.argv[1])
if hasattr(os, "nice"):
    os.nice(10)
from fastknn.warmup import run_warmup
with open(os.devnull, "w") as devnull:
    run_warmup(stream=devnull, keys=sys.argv[2].split(","))
"""


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _SecondProcess:
    """The second process of :func:`compile_ahead`, started on demand."""

    def __init__(self, keys):
        self.keys = keys
        self.process = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def started(self):
        """Whether the second process was started."""
        return self.process is not None

    def start(self):
        with self._lock:
            if self.process is not None or self._closed:
                return
            package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            try:
                self.process = subprocess.Popen(
                    [sys.executable, "-c", _AHEAD_SCRIPT, package_parent, ",".join(self.keys)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except OSError:
                # No second process (no interpreter path, a process limit):
                # this one compiles everything itself, as without it. This
                # runs inside numba's compile event, which must not fail.
                self._closed = True

    def wait(self, timeout=None):
        """Wait for the second process, if started, to finish its steps; returns its exit status or None."""
        return None if self.process is None else self.process.wait(timeout)

    def close(self):
        with self._lock:
            self._closed = True
        if self.process is not None and self.process.poll() is None:
            # Whatever it compiles now, this process no longer needs.
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def compile_ahead(keys, n_jobs=None):
    """Within the block, compile the warm-up steps ``keys`` in a second process once this one compiles.

    Numba compiles one kernel at a time in a process, so a first run that
    compiles many kernels leaves the other cores idle while it waits. With
    this, the first time a fastknn kernel starts compiling here, a second
    Python process runs the warm-up steps ``keys`` (at a lower priority),
    which write their kernels to the same on-disk cache; when this process
    later needs one of them, numba loads it from the cache instead of
    compiling it. Give ``keys`` in the order the work needs them, leaving
    out what it needs first (this process compiles that while the second
    one starts). Nothing starts when nothing compiles (a warm cache), with
    one usable core, with ``n_jobs=1``, or with ``FASTKNN_COMPILE_AHEAD=0``;
    the second process is stopped at the end of the block.

    Parameters
    ----------
    keys : sequence of str
        Warm-up steps (see :func:`warmup_steps`).
    n_jobs : int, default=None
        The threads the work uses; 1 starts nothing.

    Yields
    ------
    second : object
        ``second.started`` tells whether the second process started, and
        ``second.wait(timeout)`` waits for it.
    """
    warmup_steps(keys)  # unknown keys fail here, not in the second process
    second = _SecondProcess(tuple(keys))
    if os.environ.get("FASTKNN_COMPILE_AHEAD", "1") == "0" or n_jobs == 1 or _usable_cores() < 2 or not keys:
        yield second
        return
    from ._compilation import when_compiling

    stop_listening = when_compiling(second.start)
    try:
        yield second
    finally:
        stop_listening()
        second.close()


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
