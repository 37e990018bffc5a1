"""Compile time, measured on its own in a fresh interpreter.

The timing benchmarks compile (or load) fastknn's kernels in ``setup``; here
a new Python process imports fastknn and fits and predicts once on tiny
data, with ``NUMBA_CACHE_DIR`` pointing at a new, empty directory: the
first-call time a user sees after installing, dominated by numba's
compilation. A second process with the same, now filled, directory gives the
start-up time once the kernels are cached.
"""

import os
import subprocess
import sys
import tempfile

from .common import METRIC_PARAMS

# Prints the seconds from before ``import fastknn`` to the end of a first
# prediction with the given metric arguments.
_SCRIPT = """
import sys, time
start = time.perf_counter()
import numpy as np
from fastknn import KNNClassifier
params = {params!r}
rng = np.random.default_rng(0)
X = rng.random((200, 784), dtype=np.float32)
y = np.arange(200) % 10
KNNClassifier(n_neighbors=3, **params).fit(X, y).predict(X[:50])
print(time.perf_counter() - start)
"""


def fresh_process_seconds(metric, cache_dir):
    """Seconds for a new interpreter to import fastknn and predict once.

    The child imports the fastknn this process imports (asv may put it on
    ``sys.path`` without ``PYTHONPATH``), with ``NUMBA_CACHE_DIR`` set to
    ``cache_dir``.
    """
    import fastknn

    location = os.path.dirname(os.path.dirname(os.path.abspath(fastknn.__file__)))
    python_path = os.pathsep.join(filter(None, [location, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=python_path)
    completed = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(params=METRIC_PARAMS[metric])],
        env=env,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the fresh process failed:\n{completed.stderr}")
    return float(completed.stdout.strip().splitlines()[-1])


class FirstCall:
    """Import + first fit/predict in a fresh process, per metric."""

    params = ["euclidean", "manhattan", "minkowski"]
    param_names = ["metric"]
    unit = "seconds"
    timeout = 300
    rounds = 1

    def setup(self, metric):
        self.cache = tempfile.TemporaryDirectory(prefix="fastknn-numba-cache-")

    def teardown(self, metric):
        self.cache.cleanup()

    def track_first_call_empty_cache(self, metric):
        return fresh_process_seconds(metric, self.cache.name)

    def track_start_with_cached_kernels(self, metric):
        fresh_process_seconds(metric, self.cache.name)  # fills the cache
        return fresh_process_seconds(metric, self.cache.name)
