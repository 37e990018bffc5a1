"""Tests for fastknn.bench: the timing helpers, and the family section on a slice (the full bench is run by hand)."""

import pytest

from fastknn.bench import interleaved_medians, interleaved_runs, paired_ratio


def test_interleaved_runs_alternate_the_functions_round_by_round_in_turning_order():
    calls = []

    def recorder(name):
        def function():
            calls.append(name)
            return name

        return function

    times, results = interleaved_runs(
        {"a": (recorder("a"), 3), "b": (recorder("b"), 1), "c": (recorder("c"), 2)}, settle_seconds=0
    )
    # Rounds in the orders a b c, b c a, c a b, less the functions done.
    assert calls == ["a", "b", "c", "c", "a", "a"]
    assert {name: len(values) for name, values in times.items()} == {"a": 3, "b": 1, "c": 2}
    assert all(seconds >= 0 for values in times.values() for seconds in values)
    assert results == {"a": "a", "b": "b", "c": "c"}

    medians, _ = interleaved_medians({"a": (recorder("a"), 3)}, settle_seconds=0)
    assert set(medians) == {"a"} and medians["a"] >= 0


def test_paired_ratio_is_the_median_of_same_round_ratios():
    # A machine that slows down between rounds: the medians of the two lists
    # come from different conditions, the paired ratios do not.
    times = {"auto": [1.0, 2.2, 4.0, 8.8, 16.0], "brute": [1.0, 2.0, 4.0, 8.0, 16.0]}
    assert paired_ratio(times, "auto", "brute") == pytest.approx(1.0)
    assert paired_ratio({"x": [3.0, 1.0], "y": [1.0, 1.0, 5.0]}, "x", "y") == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no round ran both 'x' and 'y'"):
        paired_ratio({"x": [], "y": [1.0]}, "x", "y")


def test_startup_comparison_runs_both_jobs_in_fresh_processes():
    from fastknn.bench import format_startup_report, startup_comparison

    figures = startup_comparison(repeats=1)  # numba's own cache, warm after the first run
    assert len(figures["fastknn_seconds"]) == len(figures["sklearn_seconds"]) == 1
    assert figures["fastknn_best_seconds"] > 0 and figures["sklearn_best_seconds"] > 0
    assert figures["extra_seconds"] == figures["fastknn_best_seconds"] - figures["sklearn_best_seconds"]
    assert "fastknn's extra start-up" in "\n".join(format_startup_report(figures))
def test_family_bench_runs_on_a_slice():
    """The neighbours-family section of ``fastknn bench`` on small shapes: answers agree, the report formats."""
    from fastknn.bench import format_family_report, run_family_bench
    from fastknn.datasets import load_mnist_split

    train, labels, queries = load_mnist_split("1000")[:3]
    family = run_family_bench(train[:400], labels[:400], queries[:60], quick=True)
    assert family["KNNRegressor fit + predict"]["largest_difference"] <= 1e-9
    assert family["radius_neighbors brute"]["same_neighbours"]
    assert family["radius_neighbors pruned"]["same_neighbours"]
    assert family["KNNTransformer fit_transform"]["same_neighbour_rows"] > 0.95
    assert family["radius"]["mean_neighbours"] > 1
    report = "\n".join(format_family_report(family))
    assert "radius_neighbors pruned" in report and "KNNTransformer fit_transform" in report


def test_low_dimensional_bench_runs_on_a_small_shape():
    """The low-dimensional section of ``fastknn bench``: the tree is chosen, predictions agree, the report formats."""
    from fastknn.bench import format_low_dimensional_report, run_low_dimensional_bench

    report = run_low_dimensional_bench(repeats=1, shapes=((3000, 2, 500),))
    (entry,) = report.values()
    assert entry["fit_method"] == "tree" and entry["same_predictions"]
    assert set(entry["ratios"]) == {"sklearn_default / fastknn", "ckdtree / fastknn"}
    assert "ckdtree / fastknn" in "\n".join(format_low_dimensional_report(report))


def test_sparse_bench_runs_on_a_small_shape():
    """The sparse section of ``fastknn bench``: the matrix is TF-IDF-like, the answers agree, the report formats."""
    import numpy as np

    from fastknn.bench import format_sparse_report, run_sparse_bench, tfidf_like

    matrix = tfidf_like(300, 500, 20)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, 1.0)
    assert 15 < matrix.nnz / 300 <= 20 and matrix.has_canonical_format
    report = run_sparse_bench(repeats=1, shape=(600, 800, 20, 60))
    for metric in ("euclidean", "cosine", "manhattan"):
        assert report[metric]["same_neighbours"] == 1.0
        assert report[metric]["largest_distance_difference"] < 1e-9
    assert "sklearn / fastknn kneighbors" in "\n".join(format_sparse_report(report))


def test_cosine_bench_runs_on_a_small_shape():
    """The cosine section of ``fastknn bench``: the neighbours agree with scikit-learn's and FAISS's, the report formats."""
    from fastknn.bench import format_cosine_report, run_cosine_bench

    report = run_cosine_bench(repeats=1, shape=(3000, 32, 100))
    assert report["agreement"]["sklearn_brute"] == 1.0
    assert report["agreement"].get("faiss_flat_ip", 1.0) == 1.0
    assert "sklearn_brute / fastknn" in report["ratios"]
    assert "sklearn_brute / fastknn" in "\n".join(format_cosine_report(report))
