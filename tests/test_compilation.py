"""What a first call compiles, in fresh processes with an empty kernel cache (fastknn/_compilation.py).

Each test starts new interpreters with ``NUMBA_CACHE_DIR`` (or the user cache
directory) set to a new folder, so that numba compiles instead of loading:
the set of kernels a call compiles is a figure like its speed, and these
tests fail when a change makes a call compile more than it needs.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from fastknn._compilation import NOTICE

# Fits, predicts, then prints the fastknn kernels compiled, as JSON.
SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import fastknn
    from fastknn._compilation import compilations
    rng = np.random.default_rng(0)
    X = rng.random((400, 30), dtype=np.float32)
    y = np.arange(400) % 4
    getattr(fastknn, {estimator!r})(**{params!r}).fit(X, y).predict(X[:20])
    print(json.dumps([[c.kernel, c.signature] for c in compilations()]))
    """
)

# Everything a Euclidean brute-force predict needs, and nothing else.
EUCLIDEAN_KERNELS = {
    "distances._exact_rdist",
    "distances._squared_norms",
    "topk._count_within",
    "topk._keep_smallest",
    "topk._rerank_queries.<locals>.rerank_queries",
    "topk._scan_values",
}


def run_fresh(params, cache_dir, estimator="KNNClassifier", **env):
    """Run SCRIPT in a new interpreter importing this checkout's fastknn; return (compiled, stderr)."""
    import fastknn

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastknn.__file__)))
    environment = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    if estimator == "KNNClassifier":
        params = {"n_neighbors": 3, **params}
    environment.update(PYTHONPATH=package_parent, FASTKNN_COMPILE_NOTICE="1", **env)
    if cache_dir is not None:
        environment["NUMBA_CACHE_DIR"] = str(cache_dir)
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(estimator=estimator, params=params)],
        env=environment,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    compiled = json.loads(completed.stdout.strip().splitlines()[-1])
    return compiled, completed.stderr


def kernels(compiled):
    return [kernel for kernel, _ in compiled]


@pytest.fixture(scope="module")
def euclidean_runs(tmp_path_factory):
    """A first Euclidean predict with an empty cache, then a second process on the filled cache."""
    cache = tmp_path_factory.mktemp("numba-cache")
    first = run_fresh({}, cache)
    second = run_fresh({}, cache)
    return first, second


def test_first_euclidean_predict_compiles_only_its_kernels_once_each(euclidean_runs):
    (compiled, _), _ = euclidean_runs
    names = kernels(compiled)
    # One signature each: no second copy for a literal argument, another
    # layout or a read-only array.
    assert sorted(names) == sorted(EUCLIDEAN_KERNELS)


def test_notice_once_on_first_compilation_and_silence_once_cached(euclidean_runs):
    (_, first_stderr), (compiled_again, second_stderr) = euclidean_runs
    assert first_stderr.count(NOTICE) == 1
    assert compiled_again == []
    assert NOTICE not in second_stderr


def test_first_manhattan_brute_predict_compiles_no_euclidean_or_pruning_kernel(tmp_path):
    compiled, _ = run_fresh({"metric": "manhattan", "algorithm": "brute"}, tmp_path)
    names = kernels(compiled)
    # The fast pass, then the same selection as Euclidean: no Euclidean,
    # pruning or augmentation kernel, one signature each.
    fast_pass = {"distances._rdist_tiles", "distances._fast_rdist", "distances._fast_rdist_x4"}
    assert sorted(names) == sorted((EUCLIDEAN_KERNELS - {"distances._squared_norms"}) | fast_pass)
    assert len(names) == len(set(names)), sorted(names)


def test_first_cosine_predict_compiles_the_euclidean_kernels_only(tmp_path):
    # The unit rows' product is scanned and re-ranked by the Euclidean
    # search's kernels, the cosine distance a case of ``_exact_rdist``:
    # nothing of its own to compile, one signature each.
    compiled, _ = run_fresh({"metric": "cosine"}, tmp_path)
    assert sorted(kernels(compiled)) == sorted(EUCLIDEAN_KERNELS)


def test_first_pruned_manhattan_predict_compiles_one_case_of_the_pruned_search(tmp_path):
    compiled, _ = run_fresh({"metric": "manhattan", "algorithm": "pruned"}, tmp_path)
    names = kernels(compiled)
    assert names.count("pruning._make_pruned_select.<locals>.pruned_select") == 1
    # The PCA (Euclidean) index is neither built nor searched.
    pca_kernels = {
        "pair_products._pair_products",
        "pruning._pca_project",
        "pruning._pca_coarse_bounds",
        "pruning._fill_pca_bounds",
        "pruning._pca_stage2_bound",
        "distances._squared_norms",
    }
    assert not pca_kernels & set(names), names
    assert not any(name.startswith("augment.") for name in names), names


def test_first_pruned_radius_predict_compiles_one_case_of_the_pruned_radius_search(tmp_path):
    params = {"radius": 8.0, "metric": "manhattan", "algorithm": "pruned", "outlier_label": "most_frequent"}
    compiled, _ = run_fresh(params, tmp_path, estimator="RadiusNeighborsClassifier")
    names = kernels(compiled)
    assert names.count("radius._make_pruned_radius_select.<locals>.pruned_radius_select") == 1
    assert "pruning._pca_project" not in names and "topk._scan_values" not in names


def test_read_only_install_keeps_its_cache_in_the_user_cache_directory(tmp_path):
    """An installation whose folders cannot hold numba's cache (site-packages owned
    by root) caches in the user's cache directory, and a second process loads it."""
    import fastknn

    install = tmp_path / "site-packages"
    shutil.copytree(
        os.path.dirname(os.path.abspath(fastknn.__file__)),
        install / "fastknn",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for folder, _, _ in os.walk(install):
        # A file where numba would create its cache folder: the in-tree
        # cache is impossible even for root, whom permissions do not stop.
        with open(os.path.join(folder, "__pycache__"), "w"):
            pass
    for folder, _, files in os.walk(install):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
    user_cache = tmp_path / "user-cache"
    env = {"PYTHONPATH": str(install), "XDG_CACHE_HOME": str(user_cache), "PYTHONDONTWRITEBYTECODE": "1"}

    def run():
        completed = subprocess.run(
            [sys.executable, "-c", SCRIPT.format(estimator="KNNClassifier", params={"n_neighbors": 3})],
            env={**{k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}, **env},
            cwd=tmp_path,  # not the checkout, whose fastknn would come first on sys.path
            capture_output=True,
            text=True,
        )
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout.strip().splitlines()[-1])

    assert set(kernels(run())) == EUCLIDEAN_KERNELS
    cached = [name for _, _, files in os.walk(user_cache) for name in files if name.endswith(".nbi")]
    assert cached, "nothing was cached in the user cache directory"
    assert run() == []  # the second process compiles nothing
