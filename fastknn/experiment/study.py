"""The study: every candidate scored on validation, the chosen one on test.

Each step is a public call: :func:`fastknn.model_selection.fit_with_validation`
fits a candidate's model around a :class:`~fastknn.KNNClassifierCV`, which
scores every K, metric and vote weighting from one neighbour search per
metric; :func:`fastknn.distortion.select_distortion_knn` scores the
re-ranking with an image distortion model (IDM) on the deskewed images; the
best candidate's model, which then predicts with a
:class:`~fastknn.KNNClassifier`, classifies the test images; scikit-learn's
``classification_report`` and ``confusion_matrix`` describe the result.
"""

import contextlib
import sys
from time import perf_counter

import numpy as np

from .candidates import BASELINE_METRIC, CANDIDATES_BY_KEY, DISTORTION, METRICS, step_descriptions

K_GRID = (1, 3, 5, 9, 15, 25)

# Vote weightings tried in the choice of the final model; both vote on the same neighbour lists.
WEIGHTS = ("uniform", "distance")


class Progress:
    """One stderr line per long step: elapsed time, what runs, how long it took."""

    def __init__(self, stream=None, enabled=True):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.start = perf_counter()

    def elapsed(self):
        """Seconds since the experiment started."""
        return perf_counter() - self.start

    @contextlib.contextmanager
    def step(self, text, timings=None, key=None):
        """Report ``text`` now and its duration when the block ends (stored in ``timings[key]``)."""
        if self.enabled:
            print(f"[{self.elapsed():6.1f} s] {text} ...", end="", file=self.stream, flush=True)
        start = perf_counter()
        try:
            yield
        except BaseException:
            if self.enabled:
                print(" failed", file=self.stream, flush=True)
            raise
        seconds = perf_counter() - start
        if timings is not None and key is not None:
            timings[key] = seconds
        if self.enabled:
            print(f" {seconds:.1f} s", file=self.stream, flush=True)


def validation_table(search, metric_keys):
    """``{(metric key, weighting): {K: accuracy}}`` from a fitted search's ``cv_results_``."""
    by_name = {METRICS[key][1]: key for key in metric_keys}
    table = {}
    results = search.cv_results_
    for params, score in zip(results["params"], results["mean_test_score"]):
        table.setdefault((by_name[params["metric"]], params["weights"]), {})[params["n_neighbors"]] = float(score)
    return table


def _first_best(scores):
    """Key of the highest score, the first such key on ties."""
    return max(scores, key=lambda key: (scores[key], -list(scores).index(key)))


def _configuration_label(candidate_key, metric_key, weighting, k):
    votes = "distance-weighted votes" if weighting == "distance" else "uniform votes"
    return f"{CANDIDATES_BY_KEY[candidate_key].label}, {METRICS[metric_key][0]}, K={k}, {votes}"


def _distortion_label(row):
    votes = "distance-weighted votes" if row["weights"] == "distance" else "uniform votes"
    return f"{DISTORTION.label}, w={row['warp']}, N={DISTORTION.n_candidates}, K={row['n_neighbors']}, {votes}"


def _distortion_example(data, warp, n_jobs):
    """The first test image (by index) whose Euclidean 1-NN is wrong and whose IDM 1-NN is right.

    Both on the deskewed images; the IDM 1-NN is the best of the Euclidean
    candidates after re-ranking with ``warp``. None when there is no such image.
    """
    from .. import KNNClassifier
    from ..augment import deskew
    from ..distortion import DistortionKNNClassifier

    train, test = deskew(data.train_X), deskew(data.test_X)
    euclidean = KNNClassifier(1, n_jobs=n_jobs).fit(train, data.train_y).kneighbors(test, return_distance=False)[:, 0]
    wrong = np.flatnonzero(data.train_y[euclidean] != data.test_y)
    if not wrong.size:
        return None
    idm = DistortionKNNClassifier(
        1, n_candidates=DISTORTION.n_candidates, warp=warp, image_shape=(data.side, data.side), n_jobs=n_jobs
    )
    nearest = idm.fit(train, data.train_y).kneighbors(test[wrong], return_distance=False)[:, 0]
    fixed = np.flatnonzero(data.train_y[nearest] == data.test_y[wrong])
    if not fixed.size:
        return None
    first = fixed[0]
    return {
        "test_index": int(wrong[first]),
        "euclidean_index": int(euclidean[wrong[first]]),
        "idm_index": int(nearest[first]),
        "warp": int(warp),
        "n_fixed": int(fixed.size),
        "n_euclidean_wrong": int(wrong.size),
    }


def _distortion_results(step):
    """The IDM step's entry of ``results.json``; ``{"enabled": False}`` when it did not run."""
    if step is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "key": DISTORTION.key,
        "label": DISTORTION.label,
        "n_candidates": DISTORTION.n_candidates,
        "warps": list(DISTORTION.warps),
        "n_neighbors": sorted({row["n_neighbors"] for row in step["rows"]}),
        "weights": list(DISTORTION.weights),
        "validation": step["rows"],
        "best": {**step["best"], "label": _distortion_label(step["best"])},
        "chosen": bool(step["chosen"]),
        "example": step.get("example"),
    }


def run_experiment(
    data,
    *,
    augment=True,
    k_grid=K_GRID,
    metrics=tuple(METRICS),
    transforms=tuple(CANDIDATES_BY_KEY),
    weights=WEIGHTS,
    select_every_k=True,
    distortion=True,
    n_jobs=None,
    progress=None,
):
    """Run the study on a split; return every number as a JSON-ready dict.

    Parameters
    ----------
    data : ExperimentData
        As returned by :func:`~fastknn.experiment.load_data`.
    augment : bool, default=True
        Try every candidate; when False only raw pixels.
    k_grid : sequence of int, default=K_GRID
        Values of K in the tables (those above the number of training images are dropped).
    metrics : sequence of str, default=all keys of METRICS
        Metrics compared; Euclidean is always included (the baseline).
    transforms : sequence of str, default=all keys of CANDIDATES
        Candidates tried when ``augment``; ``"none"`` is always included.
    weights : sequence of {"uniform", "distance"}, default=WEIGHTS
        Vote weightings tried; ``"uniform"`` is always included.
    select_every_k : bool, default=True
        Choose among every K from 1 to ``max(k_grid)`` (one search gives them
        all); ``k_grid`` alone when False.
    distortion : bool, default=True
        Also try the IDM re-ranking (:data:`~fastknn.experiment.candidates.DISTORTION`)
        when ``augment``. It is searched last: it is chosen only when its
        best validation accuracy is strictly above every other candidate's.
    n_jobs : int or None
        Threads, as for :class:`~fastknn.KNNClassifier`.
    progress : Progress, optional
        Where to report the long steps; a silent one when None.

    Returns
    -------
    results : dict
        The contents of ``results.json``, plus private entries starting with
        ``_`` for the summary.
    """
    from sklearn.metrics import classification_report, confusion_matrix

    from .. import KNNClassifierCV, __version__
    from ..model_selection import fit_with_validation
    from .agreement import compare_with_sklearn

    progress = Progress(enabled=False) if progress is None else progress
    n_train, n_val, n_test = len(data.train_X), len(data.val_X), len(data.test_X)
    k_grid = tuple(sorted({int(k) for k in k_grid if 1 <= k <= n_train}))
    if not k_grid:
        raise ValueError(f"no K of the grid is at most the number of training images ({n_train})")
    select_ks = tuple(range(1, max(k_grid) + 1)) if select_every_k else k_grid
    metrics = (BASELINE_METRIC,) + tuple(key for key in metrics if key != BASELINE_METRIC)
    candidate_keys = ("none",) + tuple(key for key in transforms if key != "none") if augment else ("none",)
    weights = ("uniform",) + tuple(w for w in weights if w != "uniform")
    for name, keys, known in (("metric", metrics, METRICS), ("transform", candidate_keys, CANDIDATES_BY_KEY)):
        for key in keys:
            if key not in known:
                raise ValueError(f"unknown {name} {key!r}; expected one of {sorted(known)}")
    if not set(weights) <= {"uniform", "distance"}:
        raise ValueError(f"weights must be 'uniform' or 'distance', got {weights!r}")

    # Every candidate on validation: one KNNClassifierCV per candidate, every
    # (metric, K, weighting) from one search per metric. The leader (strictly
    # better than every earlier candidate) is kept for the test.
    timings, search_seconds, tables, by_candidate = {}, {}, {}, {}
    leader = None
    for key in candidate_keys:
        candidate = CANDIDATES_BY_KEY[key]
        metric_keys = [m for m in metrics if candidate.metrics is None or m in candidate.metrics]
        search = KNNClassifierCV(
            select_ks,
            metrics=[METRICS[m][1] for m in metric_keys],
            weights=weights,
            p=METRICS["minkowski_p3"][2],  # used by "minkowski" only
            n_jobs=n_jobs,
        )
        model = candidate.build(search)
        labels = ", ".join(METRICS[m][0] for m in metric_keys)
        with progress.step(f"validation: {candidate.label}: {labels}, K <= {max(select_ks)}", search_seconds, key):
            search = fit_with_validation(model, data.train_X, data.train_y, data.val_X, data.val_y)
        tables[key] = validation_table(search, metric_keys)
        by_candidate[key] = {"n_train": int(search.best_estimator_.n_samples_fit_), "metric_keys": metric_keys}
        if leader is None or search.best_score_ > leader[2].best_score_:
            leader = (key, model, search)
        del model
    distortion_step = None
    if augment and distortion:
        text = f"validation: {DISTORTION.label}: N={DISTORTION.n_candidates}, w in {DISTORTION.warps}"
        with progress.step(text, search_seconds, DISTORTION.key):
            idm_model, idm_rows = DISTORTION.select(
                data.train_X, data.train_y, data.val_X, data.val_y, data.side, n_jobs
            )
        idm_best = max(idm_rows, key=lambda row: row["validation_accuracy"])  # the first among equals
        chosen = idm_best["validation_accuracy"] > leader[2].best_score_  # strictly: ties keep the leader
        distortion_step = {"rows": idm_rows, "best": idm_best, "chosen": chosen}
        if distortion_step["chosen"]:
            leader = None  # the test uses idm_model
        else:
            del idm_model
    timings["validation"] = search_seconds

    # The raw Euclidean baseline, uniform votes, best K of the grid, and the check against scikit-learn.
    raw = tables["none"]
    baseline_k = _first_best({k: raw[BASELINE_METRIC, "uniform"][k] for k in k_grid})
    with progress.step(f"scikit-learn check and baseline test: Euclidean, K={baseline_k}", timings, "sklearn_check"):
        agreement = compare_with_sklearn(data.train_X, data.train_y, data.test_X, baseline_k, n_jobs)
    baseline_pred = agreement.pop("fastknn_pred")
    baseline_correct = int(np.count_nonzero(baseline_pred == data.test_y))
    timings["fastknn_fit_predict"] = agreement["fastknn_seconds"]
    timings["sklearn_fit_predict"] = agreement["sklearn_seconds"]

    # The candidate chosen on validation, on test.
    if leader is None:
        chosen_key, model, metric_key = DISTORTION.key, idm_model, "idm"
        best = {"n_neighbors": distortion_step["best"]["n_neighbors"], "weights": distortion_step["best"]["weights"]}
        label = _distortion_label(distortion_step["best"])
        best_score = distortion_step["best"]["validation_accuracy"]
        n_train_chosen, chosen_steps = n_train, DISTORTION.steps
        del idm_model
    else:
        chosen_key, model, search = leader
        del leader
        best = search.best_params_
        metric_key = next(m for m in by_candidate[chosen_key]["metric_keys"] if METRICS[m][1] == best["metric"])
        label = _configuration_label(chosen_key, metric_key, best["weights"], best["n_neighbors"])
        best_score = tables[chosen_key][metric_key, best["weights"]][best["n_neighbors"]]
        n_train_chosen, chosen_steps = by_candidate[chosen_key]["n_train"], CANDIDATES_BY_KEY[chosen_key].steps
        del search
    with progress.step(f"test: {label}", timings, "final_test"):
        test_pred = model.predict(data.test_X)
        wrong = np.flatnonzero(test_pred != data.test_y)
        vote_share = model.predict_proba(data.test_X[wrong]).max(axis=1) if wrong.size else np.empty(0)
    classes = model.classes_
    del model
    if distortion_step is not None:
        with progress.step("IDM example: Euclidean 1-NN wrong, IDM 1-NN right", timings, "distortion_example"):
            distortion_step["example"] = _distortion_example(data, distortion_step["best"]["warp"], n_jobs)
    test_correct = n_test - wrong.size

    labels = np.union1d(classes, np.unique(data.test_y))
    report_dict = classification_report(data.test_y, test_pred, labels=labels, output_dict=True, zero_division=0)
    report_text = classification_report(data.test_y, test_pred, labels=labels, digits=4, zero_division=0)
    matrix = confusion_matrix(data.test_y, test_pred, labels=labels)

    # The most confidently misclassified test images: largest vote share for the wrong class, then lower index.
    order = np.argsort(-vote_share, kind="stable")[:16]
    most_confident_errors = [
        {
            "test_index": int(wrong[i]),
            "true": data.test_y[wrong[i]].item(),
            "predicted": test_pred[wrong[i]].item(),
            "vote_share": float(vote_share[i]),
        }
        for i in order
    ]

    def accuracies(by_k, ks=k_grid):
        return {str(k): by_k[k] for k in ks}

    def best_cell(key, metric):
        """Best (K, weighting) of a candidate and metric, in KNNClassifierCV's order: smaller K, then uniform."""
        if (metric, "uniform") not in tables[key]:
            return None  # not searched
        scores = {(k, w): tables[key][metric, w][k] for k in select_ks for w in weights}
        k, w = _first_best(scores)
        return {
            "weights": w,
            "k": k,
            "validation_accuracy": scores[k, w],
            "validation": {w2: accuracies(tables[key][metric, w2], select_ks) for w2 in weights},
        }

    per_metric = {}
    for metric in metrics:
        k = _first_best({kk: raw[metric, "uniform"][kk] for kk in k_grid})
        per_metric[metric] = {"label": METRICS[metric][0], "k": k, "validation_accuracy": raw[metric, "uniform"][k]}
    by_transform = {
        key: {
            "label": CANDIDATES_BY_KEY[key].label,
            "steps": list(CANDIDATES_BY_KEY[key].steps),
            "n_train": by_candidate[key]["n_train"],
            "metrics": {metric: best_cell(key, metric) for metric in metrics},
        }
        for key in candidate_keys
    }
    return {
        "fastknn_version": __version__,
        "data": {"source": data.source, **data.sizes(), "classes": labels.tolist()},
        "k_grid": list(k_grid),
        "selection_k": list(select_ks),
        "weights_grid": list(weights),
        "metrics": {m: {"label": METRICS[m][0], "metric": METRICS[m][1], "p": METRICS[m][2]} for m in metrics},
        "validation": {metric: accuracies(raw[metric, "uniform"]) for metric in metrics},
        "best_k_per_metric": per_metric,
        "augmentation": {
            "enabled": bool(augment),
            "transforms": by_transform,
            "descriptions": step_descriptions(candidate_keys + ((DISTORTION.key,) if distortion_step else ())),
        },
        "distortion": _distortion_results(distortion_step),
        "baseline": {
            "transform": "none",
            "metric": BASELINE_METRIC,
            "weights": "uniform",
            "k": baseline_k,
            "validation_accuracy": raw[BASELINE_METRIC, "uniform"][baseline_k],
            "test_accuracy": baseline_correct / n_test,
            "test_correct": baseline_correct,
        },
        "baseline_test_accuracy": baseline_correct / n_test,
        "best": {
            "transform": chosen_key,
            "metric": metric_key,
            "weights": best["weights"],
            "k": best["n_neighbors"],
            "label": label,
            "validation_accuracy": best_score,
            "n_train": n_train_chosen,
            "steps": list(chosen_steps),
        },
        "test_accuracy": test_correct / n_test,
        "test_correct": int(test_correct),
        "classification_report": report_dict,
        "confusion_matrix": {"labels": labels.tolist(), "matrix": matrix.tolist()},
        "most_confident_errors": most_confident_errors,
        "sklearn_agreement": agreement,
        "timings": timings,
        "n_threads": threads_in_use(n_jobs),
        "_report_text": report_text,
        "_test_pred": test_pred,
    }


def threads_in_use(n_jobs):
    """Threads of the neighbour searches, as ``n_jobs`` sets them (joblib's convention, as fastknn's)."""
    import numba

    if n_jobs is None:
        return int(numba.get_num_threads())
    available = numba.config.NUMBA_NUM_THREADS
    return int(max(1, available + 1 + n_jobs) if n_jobs < 0 else min(n_jobs, available))
