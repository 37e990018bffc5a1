"""``fastknn warmup`` (fastknn/warmup.py)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastknn import KNNClassifier
from fastknn._compilation import Compilation
from fastknn.cli import main
from fastknn.warmup import compile_ahead, format_profile, warmup_steps


def test_warmup_compiles_every_step_with_a_progress_line_and_profiles(capsys):
    # Most kernels are compiled (or cached) by the tests before this one; the
    # command then mostly loads them, which is what a second warm-up does.
    assert main(["warmup", "--profile"]) == 0
    captured = capsys.readouterr()
    steps = warmup_steps()
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert len(progress) == len(steps)
    assert progress[-1].startswith(f"[{len(steps)}/{len(steps)}]") and progress[-1].endswith(" s")
    assert "kernel compilations in" in captured.err
    assert captured.out.splitlines()[0].split()[:2] == ["own", "s"]
    assert captured.out.splitlines()[-1].endswith("all")


def test_profile_own_seconds_add_up_to_the_whole():
    compiled = [
        Compilation("topk._is_worse", "(float64,)", 0.5, 0.5, True),
        Compilation("topk._heap_push", "(...)", 2.0, 1.5, True),
        Compilation("topk._select_nearest_gemm", "(...)", 5.0, 3.0, False),
        Compilation("topk._heap_push", "(other)", 1.0, 1.0, False),
    ]
    table = format_profile(compiled).splitlines()
    rows = {line.split()[-1]: line.split() for line in table[1:-1]}
    assert table[1].split()[-1] == "topk._select_nearest_gemm"  # most expensive first
    assert rows["topk._heap_push"][:3] == ["2.50", "3.00", "2"]
    assert table[-1].split()[:2] == ["6.00", "4"]  # 0.5 + 2.5 + 3.0, four compilations


def test_help_shows_an_example(capsys):
    assert main(["warmup", "--help"]) == 0
    assert "fastknn warmup --profile" in capsys.readouterr().out


def test_shaped_steps_reach_the_tree_grid_and_sparse_methods():
    # Each layout must run the search whose kernels its step claims to
    # compile (the metric is a run-time argument of those kernels).
    from scipy.spatial import cKDTree

    from fastknn import KNNClassifier
    from fastknn._tree import CellGrid
    from fastknn.warmup import SHAPED_SEARCHES, _shaped_data

    layouts = {(layout, np.dtype(dtype)) for _, _, layout, dtype in SHAPED_SEARCHES}
    assert layouts == {(layout, np.dtype(dtype)) for layout in ("tree", "grid", "sparse")
                       for dtype in (np.float32, np.float64)}
    expected = {"tree": ("tree", cKDTree), "grid": ("tree", CellGrid), "sparse": ("sparse", type(None))}
    for layout, dtype in layouts:
        X = _shaped_data(layout, dtype)
        model = KNNClassifier(n_neighbors=3, algorithm="kd_tree" if layout == "tree" else "auto")
        model.fit(X, np.arange(X.shape[0]) % 10)
        method, index_type = expected[layout]
        assert model.fit_method_ == method and isinstance(model._search_state.tree, index_type), layout
        assert model._fit_X.dtype == dtype
    # The tree's integer coordinates hold exact ties, which its tie balls settle.
    X = _shaped_data("tree", np.float64)
    assert np.unique(X, axis=0).shape[0] < X.shape[0]


def test_steps_are_chosen_by_key_in_the_order_given():
    keys = [step.key for step in warmup_steps()]
    assert len(keys) == len(set(keys))
    assert {"euclidean", "pruned-manhattan", "sparse-float64", "augmentation", "distortion"} <= set(keys)
    assert [step.key for step in warmup_steps(["distortion", "euclidean"])] == ["distortion", "euclidean"]
    with pytest.raises(ValueError, match=r"unknown warm-up step\(s\) \['nope'\]"):
        warmup_steps(["euclidean", "nope"])
    with pytest.raises(ValueError, match="unknown warm-up step"):
        with compile_ahead(["nope"]):
            pass


def test_compile_ahead_starts_nothing_when_turned_off_or_on_one_thread(monkeypatch):
    from fastknn import _compilation

    _compilation.listen()
    listening = _compilation._recorder.callbacks
    # conftest.py sets FASTKNN_COMPILE_AHEAD=0 for the tests: nothing listens
    # for compilations, so none can start the second process.
    with compile_ahead(["augmentation"]) as second:
        assert second.start not in listening
        KNNClassifier(n_neighbors=1, metric="chebyshev").fit(np.eye(5), np.arange(5)).predict(np.eye(5))
    assert not second.started and second.wait() is None
    monkeypatch.setenv("FASTKNN_COMPILE_AHEAD", "1")
    with compile_ahead(["augmentation"], n_jobs=1) as second:
        assert second.start not in listening
    assert not second.started
    # Turned on, with more than one thread, it listens, and stops at the end.
    monkeypatch.setattr("fastknn.warmup._usable_cores", lambda: 2)
    with compile_ahead(["augmentation"], n_jobs=2) as second:
        assert second.start in listening
    assert second.start not in listening and not second.started


# A first Euclidean predict inside compile_ahead(["augmentation"]); then the
# augmentation's own calls. Prints whether the second process started, its
# exit status, and the fastknn kernels this process compiled.
AHEAD_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    from fastknn import KNNClassifier
    from fastknn._compilation import compilations
    from fastknn.warmup import compile_ahead, warmup_steps
    with compile_ahead(["augmentation"]) as second:
        if PREDICT:
            X = np.random.default_rng(0).random((200, 20), dtype=np.float32)
            KNNClassifier(n_neighbors=3, algorithm="brute").fit(X, np.arange(200) % 3).predict(X[:10])
            status = second.wait(timeout=300)
        else:
            warmup_steps(["augmentation"])[0].function()
            status = second.wait()
    print(json.dumps([second.started, status, sorted({c.kernel for c in compilations()})]))
    """
)


def test_compile_ahead_compiles_the_steps_in_a_second_process_into_the_cache(tmp_path):
    import fastknn

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastknn.__file__)))
    environment = dict(
        os.environ, PYTHONPATH=package_parent, NUMBA_CACHE_DIR=str(tmp_path), FASTKNN_COMPILE_AHEAD="1",
        FASTKNN_COMPILE_NOTICE="0",
    )

    def run(predict):
        completed = subprocess.run(
            [sys.executable, "-c", AHEAD_SCRIPT.replace("PREDICT", str(predict))], env=environment, capture_output=True,
            text=True,
        )
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout.strip().splitlines()[-1])

    # The cache is empty: the predict compiles, which starts the second
    # process; it compiles the augmentation, and exits normally.
    started, status, compiled = run(predict=True)
    assert started and status == 0
    assert "topk._scan_values" in compiled and not any(kernel.startswith("augment.") for kernel in compiled)
    # A new process finds the augmentation's kernels in the cache: it
    # compiles nothing, so it starts no second process either.
    assert run(predict=False) == [False, None, []]


def test_compile_ahead_compiles_here_when_no_process_can_start(monkeypatch):
    import fastknn.warmup as warmup

    def refuse(*args, **kwargs):
        raise OSError("no processes left")

    monkeypatch.setenv("FASTKNN_COMPILE_AHEAD", "1")
    monkeypatch.setattr(warmup, "_usable_cores", lambda: 2)
    monkeypatch.setattr(warmup.subprocess, "Popen", refuse)
    with compile_ahead(["augmentation"]) as second:
        second.start()  # what the first compile event calls
        second.start()
    assert not second.started and second.wait() is None
