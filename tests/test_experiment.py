"""Tests of ``fastknn experiment`` on the small layout and on a user's file."""

import contextlib
import datetime
import io
import json
import re

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from fastknn import KNNClassifier, cli, experiment
from fastknn.augment import deskew, gaussian_blur, rotate_images, shift_images
from fastknn.datasets import load_mnist_split, save_mnist_pickle

FIGURES = ("sample_digits.png", "validation_accuracy.png", "confusion_matrix.png", "misclassified.png", "deskew.png")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The whole command on the small layout, through the CLI, run once."""
    out = tmp_path_factory.mktemp("small") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main(["experiment", "--small", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    return {"status": status, "out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "results": results}


@pytest.fixture(scope="module")
def small_split():
    return load_mnist_split("1000", random_state=0)


def test_cli_writes_report_results_and_figures(small_run):
    assert small_run["status"] == 0
    out = small_run["out"]
    for name in ("report.md", "results.json", *FIGURES):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(linked) == sorted(FIGURES)
    assert all((out / link).is_file() for link in linked)  # relative links resolve
    assert "Creative Commons" in report and "## Headline" in report


def test_terminal_summary_and_progress(small_run):
    stdout, stderr = small_run["stdout"], small_run["stderr"]
    assert "Test accuracy" in stdout and "Elapsed:" in stdout
    assert "precision" in stdout and "Confusion matrix" in stdout
    assert "validation: deskew + shift" in stderr  # one progress line per search
    assert "drawing figures" in stderr


def test_results_json_keys(small_run):
    results = small_run["results"]
    for key in ("validation", "best", "test_accuracy", "baseline_test_accuracy", "sklearn_agreement", "timings"):
        assert key in results
    assert set(results["validation"]) == {"euclidean", "manhattan", "minkowski_p3"}
    assert set(results["validation"]["euclidean"]) == {"1", "3", "5", "9", "15", "25"}
    assert set(results["best"]) >= {"k", "metric", "transform", "weights"}
    assert list(results["augmentation"]["transforms"]) == list(experiment.TRANSFORMS_BY_KEY)
    assert results["timings"]["total"] > 0
    assert sum(map(sum, results["confusion_matrix"]["matrix"])) == results["data"]["n_test"] == 200


def test_validation_accuracy_matches_a_direct_computation(small_run, small_split):
    X, y, X_val, y_val, _, _ = small_split
    results = small_run["results"]
    for metric, p, key in (("euclidean", 2, "euclidean"), ("minkowski", 3, "minkowski_p3")):
        for k in (1, 9):
            direct = KNNClassifier(n_neighbors=k, metric=metric, p=p).fit(X, y).score(X_val, y_val)
            assert results["validation"][key][str(k)] == pytest.approx(direct, abs=1e-12)
    deskewed = results["augmentation"]["transforms"]["deskew"]["metrics"]["euclidean"]["validation"]
    for weights in ("uniform", "distance"):
        direct = KNNClassifier(n_neighbors=5, weights=weights).fit(deskew(X), y).score(deskew(X_val), y_val)
        assert deskewed[weights]["5"] == pytest.approx(direct, abs=1e-12)


def test_choice_is_the_best_on_validation_and_its_test_accuracy_is_direct(small_run, small_split):
    X, y, _, _, X_test, y_test = small_split
    results = small_run["results"]
    best = results["best"]
    table = results["augmentation"]["transforms"]
    every = [
        accuracy
        for entry in table.values()
        for cell in entry["metrics"].values()
        if cell is not None
        for by_k in cell["validation"].values()
        for accuracy in by_k.values()
    ]
    assert best["validation_accuracy"] == max(every)
    chosen = table[best["transform"]]["metrics"][best["metric"]]["validation"][best["weights"]][str(best["k"])]
    assert chosen == best["validation_accuracy"]

    # Retrain the chosen configuration on the training data alone: maps on
    # every image, expansions on training images only.
    maps = {
        "deskew": deskew,
        "blur": lambda images: gaussian_blur(images, sigma=experiment.BLUR_SIGMA),
        "normalize": experiment._normalize,
    }
    expansions = {
        "shift": lambda images, labels: shift_images(images, labels, n_pixels=1, directions=4),
        "rotate": lambda images, labels: rotate_images(images, labels, degrees=experiment.ROTATION_DEGREES),
    }
    for step in best["steps"]:
        if step in maps:
            X, X_test = maps[step](X), maps[step](X_test)
        else:
            X, y = expansions[step](X, y)
    assert len(X) == best["n_train"] and len(X_test) == 200
    spec = results["metrics"][best["metric"]]
    model = KNNClassifier(n_neighbors=best["k"], weights=best["weights"], metric=spec["metric"], p=spec["p"])
    model.fit(X, y)
    assert results["test_accuracy"] == pytest.approx(model.score(X_test, y_test), abs=1e-12)


def test_baseline_and_sklearn_agreement(small_run, small_split):
    X, y, X_val, y_val, X_test, y_test = small_split
    results = small_run["results"]
    k = results["baseline"]["k"]
    scores = {kk: acc for kk, acc in results["validation"]["euclidean"].items()}
    assert scores[str(k)] == max(scores.values())
    assert results["baseline_test_accuracy"] == pytest.approx(KNNClassifier(k).fit(X, y).score(X_test, y_test))
    agreement = results["sklearn_agreement"]
    reference = KNeighborsClassifier(k, algorithm="brute").fit(X, y).predict(X_test)
    ours = KNNClassifier(k).fit(X, y).predict(X_test)
    assert agreement["n_agree"] == int(np.sum(ours == reference))
    assert agreement["n_agree"] + agreement["n_disagree"] == agreement["n_queries"] == 200
    assert agreement["all_disagreements_at_ties"]
    assert agreement["fastknn_seconds"] > 0 and agreement["sklearn_seconds"] > 0


def test_data_file_without_augmentation(tmp_path, small_split):
    # A 300 / 100 / 100 file in the original format, with labels that are not 0-9.
    X, y, X_val, y_val, X_test, y_test = small_split
    parts = (X[:300], y[:300] + 10, X_val[:100], y_val[:100] + 10, X_test[:100], y_test[:100] + 10)
    path = save_mnist_pickle(tmp_path / "mine.pkl.gz", parts)
    stdout = io.StringIO()
    results = experiment.run(
        path,
        out=tmp_path / "out",
        augment=False,
        stream=stdout,
        progress_stream=io.StringIO(),
        metrics=("euclidean",),
    )
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["data"]["source"] == str(path)
    assert (written["data"]["n_train"], written["data"]["n_validation"], written["data"]["n_test"]) == (300, 100, 100)
    assert written["data"]["classes"] == list(range(10, 20))
    assert written["augmentation"]["enabled"] is False
    assert set(written["augmentation"]["transforms"]) == {"none"}
    assert written["best"]["transform"] == "none"
    assert not (tmp_path / "out" / "deskew.png").exists()
    k = written["best"]["k"]
    direct = KNNClassifier(k).fit(parts[0], parts[1]).score(parts[4], parts[5])
    assert written["test_accuracy"] == pytest.approx(direct)
    assert results["out_dir"] == str(tmp_path / "out")
    assert "--data" in (tmp_path / "out" / "report.md").read_text()


def test_refuses_a_non_empty_out_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert cli.main(["experiment", "--small", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_default_out_folder_is_new(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = datetime.datetime(2024, 1, 2, 3, 4, 5)
    first = experiment.prepare_out_dir(None, now=now)
    second = experiment.prepare_out_dir(None, now=now)  # same second: a suffix, never the same folder
    assert first.name == "fastknn-experiment-20240102-030405" and first.is_dir()
    assert second.name == "fastknn-experiment-20240102-030405-2" and second.is_dir()


def test_cumulative_votes_match_the_classifier(small_split):
    X, y, X_val, _, _, _ = small_split
    classes, encoded = np.unique(y, return_inverse=True)
    neighbors = KNNClassifier(25).fit(X, y).kneighbors(X_val[:50], return_distance=False)
    votes = experiment.cumulative_votes(encoded[neighbors], len(classes))
    for k in (1, 2, 4, 25):  # even K produce vote ties: lowest class wins in both
        expected = KNNClassifier(k).fit(X, y).predict(X_val[:50])
        np.testing.assert_array_equal(classes[np.argmax(votes[:, k - 1], axis=1)], expected)


def test_distance_weighted_cumulative_votes_match_the_classifier(small_split):
    X, y, X_val, _, _, _ = small_split
    queries = np.concatenate([X_val[:40], X[:5]])  # training images: neighbours at distance 0
    classes, encoded = np.unique(y, return_inverse=True)
    distances, neighbors = KNNClassifier(25).fit(X, y).kneighbors(queries)
    votes = experiment.cumulative_votes(encoded[neighbors], len(classes), distances)
    for k in (1, 2, 6, 25):
        expected = KNNClassifier(k, weights="distance").fit(X, y).predict(queries)
        np.testing.assert_array_equal(classes[np.argmax(votes[:, k - 1], axis=1)], expected)


def test_best_k_breaks_ties_to_the_smaller_k():
    assert experiment.best_k({1: 5, 3: 7, 5: 7, 9: 2}) == 3


def test_encode_labels_marks_unknown_labels():
    np.testing.assert_array_equal(experiment.encode_labels(np.array([3, 7, 5]), np.array([3, 5])), [0, -1, 1])


class _ReversedTies(KNeighborsClassifier):
    """A stand-in reference that breaks distance ties the other way (highest index)."""

    def fit(self, X, y):
        self._ours = KNNClassifier(self.n_neighbors).fit(X[::-1], y[::-1])
        self._n = len(X)
        return self

    def predict(self, X):
        return self._ours.predict(X)

    def kneighbors(self, X, n_neighbors=None, return_distance=True):
        return self._n - 1 - self._ours.kneighbors(X, n_neighbors, return_distance=False)


class _SkipsNearest(_ReversedTies):
    """A wrong stand-in: votes with the 2nd to (K+1)-th neighbours."""

    def fit(self, X, y):
        self._X, self._y = X, y
        self._ours = KNNClassifier(self.n_neighbors + 1).fit(X, y)
        return self

    def kneighbors(self, X, n_neighbors=None, return_distance=True):
        return self._ours.kneighbors(X, self.n_neighbors + 1, return_distance=False)[:, 1:]

    def predict(self, X):
        labels = self._y[self.kneighbors(X)]
        return np.array([np.bincount(row, minlength=3).argmax() for row in labels])


def _tied_data():
    # Unit vectors and half-unit queries: many training points at exactly equal distances.
    rng = np.random.default_rng(0)
    X = np.zeros((60, 4), dtype=np.float32)
    X[np.arange(60), rng.integers(0, 4, 60)] = 1
    queries = np.zeros((40, 4), dtype=np.float32)
    queries[np.arange(40), rng.integers(0, 4, 40)] = 0.5
    return X, rng.integers(0, 3, 60), queries


def test_sklearn_check_recognises_tie_disagreements(monkeypatch):
    X, y, queries = _tied_data()
    monkeypatch.setattr("sklearn.neighbors.KNeighborsClassifier", _ReversedTies)
    agreement = experiment.compare_with_sklearn(X, y, queries, n_neighbors=3)
    assert agreement["n_disagree"] > 0
    assert agreement["n_disagree_at_ties"] == agreement["n_disagree"]
    assert agreement["all_disagreements_at_ties"]
    assert all(d["kth_distance"] == d["next_distance"] for d in agreement["disagreements"])


def test_sklearn_check_flags_disagreements_that_are_not_ties(monkeypatch):
    rng = np.random.default_rng(1)  # continuous data: no two distances are equal
    X, y, queries = rng.random((60, 4), dtype=np.float32), rng.integers(0, 3, 60), rng.random((40, 4), dtype=np.float32)
    monkeypatch.setattr("sklearn.neighbors.KNeighborsClassifier", _SkipsNearest)
    agreement = experiment.compare_with_sklearn(X, y, queries, n_neighbors=1)
    assert agreement["n_disagree"] > 0
    assert not agreement["all_disagreements_at_ties"]
    assert agreement["n_disagree_at_ties"] == 0


def test_normalize_gives_unit_rows_and_keeps_zero_rows():
    from sklearn.preprocessing import normalize

    X = np.random.default_rng(0).random((5, 16), dtype=np.float32)
    X[2] = 0
    out = experiment._normalize(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, normalize(X), rtol=1e-6, atol=1e-7)
    assert not out[2].any()


def test_every_transform_keeps_queries_unexpanded(small_split):
    data = experiment.ExperimentData(*[part[:40] for part in small_split], source="test", description="")
    transformed = experiment._TransformedData(data)
    for transform in experiment.TRANSFORMS:
        train_X, train_y = transformed.train(transform)
        expansion = {"shift": 5, "rotate": 3}
        factor = int(np.prod([expansion.get(step, 1) for step in transform.steps]))
        assert train_X.shape == (40 * factor, 784) and len(train_y) == 40 * factor
        assert transformed.queries(transform, "val").shape == (40, 784)
        assert transformed.queries(transform, "test").shape == (40, 784)


def test_exact_squared_distances_are_correctly_rounded():
    query = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    rows = np.array([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]], dtype=np.float32)
    exact = experiment.exact_squared_distances(query, rows)
    assert exact[0] == 0.0
    assert exact[1] == sum(float(v) ** 2 for v in query)
