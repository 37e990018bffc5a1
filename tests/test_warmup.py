"""``fastknn warmup`` (fastknn/warmup.py)."""

import numpy as np

from fastknn._compilation import Compilation
from fastknn.cli import main
from fastknn.warmup import format_profile, warmup_steps


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

    layouts = {(layout, np.dtype(dtype)) for _, layout, dtype in SHAPED_SEARCHES}
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
