"""Tests for fastknn.bench's timing helpers (the bench itself is a command run by hand)."""

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
