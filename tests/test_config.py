"""Kernel compilation settings: on-disk caching and its fallbacks (fastknn/_config.py)."""

import os
import subprocess
import sys
import textwrap

import numba
import pytest

from fastknn._config import FASTMATH, FASTMATH_FINITE, jit

PREDICT_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import fastknn
    rng = np.random.default_rng(0)
    X = rng.random((60, 5), dtype=np.float32)
    y = np.arange(60) % 3
    print(fastknn.KNNClassifier(n_neighbors=3).fit(X, y).predict(X[:10]).tolist())
    """
)


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter that imports this checkout's fastknn."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    import fastknn

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastknn.__file__)))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([package_parent, root]), **env)
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)


def test_fastmath_sets_keep_nan_and_inf_semantics_apart():
    assert not {"nnan", "ninf", "afn"} & FASTMATH
    assert {"nnan", "ninf"} <= FASTMATH_FINITE


def test_jit_compiles_in_memory_when_no_cache_location_is_writable(monkeypatch):
    from numba.core import caching

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])

    def double(x):
        return 2 * x

    with pytest.raises(RuntimeError):  # what numba does without a fallback
        numba.njit(cache=True)(double)
    compiled = jit()(double)
    assert compiled(21) == 42
    assert not compiled._cache_hits  # compiled in memory, nothing cached


def test_import_and_predict_with_no_writable_cache_location():
    code = (
        "from numba.core import caching\n"
        "caching.CacheImpl._locator_classes = []\n" + PREDICT_SCRIPT
    )
    completed = run_python(code)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().startswith("[")


def test_concurrent_processes_share_one_fresh_cache(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    import fastknn

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastknn.__file__)))
    environment = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([package_parent, root]),
        NUMBA_CACHE_DIR=str(tmp_path),
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PREDICT_SCRIPT],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    assert outputs[0][0] == outputs[1][0]
    assert any(name.endswith(".nbi") for _, _, files in os.walk(tmp_path) for name in files)
    # A third process finds the kernels in the cache.
    again = run_python(PREDICT_SCRIPT, NUMBA_CACHE_DIR=str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert again.stdout == outputs[0][0]
