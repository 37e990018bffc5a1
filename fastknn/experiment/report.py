"""The study's words: the terminal summary, ``report.md`` and ``results.json``."""

import numpy as np


def _pct(value):
    return f"{100 * value:.2f} %"


def format_summary(results, out_dir):
    """The terminal summary: the headline first, then the tables."""
    data = results["data"]
    best, baseline, agreement = results["best"], results["baseline"], results["sklearn_agreement"]
    metrics = list(results["validation"])
    lines = [
        f"fastknn experiment on {data['source']}: {data['n_train']:,} training, "
        f"{data['n_validation']:,} validation, {data['n_test']:,} test images",
        "",
        f"Chosen on validation : {best['label']} (validation {_pct(best['validation_accuracy'])})",
        f"Test accuracy        : {_pct(results['test_accuracy'])} ({results['test_correct']:,} / {data['n_test']:,})",
        f"Baseline (raw pixels, Euclidean, K={baseline['k']}): test {_pct(baseline['test_accuracy'])}",
        "",
        "1. Validation accuracy (%), raw pixels, all K from one neighbour search per metric",
        "   " + f"{'K':>4}" + "".join(f"{results['metrics'][m]['label']:>16}" for m in metrics),
    ]
    for k in results["k_grid"]:
        lines.append("   " + f"{k:>4}" + "".join(f"{100 * results['validation'][m][str(k)]:>16.2f}" for m in metrics))
    lines.append(
        "   " + f"{'best':>4}" + "".join(f"{'K=' + str(results['best_k_per_metric'][m]['k']):>16}" for m in metrics)
    )
    lines += [
        "",
        f"2. Baseline: Euclidean, K={baseline['k']} (best on validation), retrained on the training set: "
        f"test accuracy {_pct(baseline['test_accuracy'])}",
        "",
        f"3. scikit-learn check (KNeighborsClassifier, algorithm='brute', K={agreement['k']}): "
        f"{agreement['n_agree']:,} / {agreement['n_queries']:,} predictions agree",
        "   " + _agreement_sentence(agreement),
        f"   fit + predict: fastknn {agreement['fastknn_seconds']:.2f} s, "
        f"scikit-learn {agreement['sklearn_seconds']:.2f} s",
    ]
    transforms = results["augmentation"]["transforms"]
    if results["augmentation"]["enabled"]:
        lines += [
            "",
            f"4. Augmentation: best validation accuracy (%) over K = 1..{results['selection_k'][-1]} and the vote "
            "weighting, per transform and metric",
        ]
    else:
        lines += ["", "4. Augmentation skipped (--no-augment); metrics on raw pixels:"]
    width = max(len(entry["label"]) for entry in transforms.values()) + 2
    lines.append("   " + " " * width + "".join(f"{results['metrics'][m]['label']:>24}" for m in metrics))
    for entry in transforms.values():
        cells = "".join(f"{_cell_text(entry['metrics'][m]):>24}" for m in metrics)
        lines.append("   " + f"{entry['label']:<{width}}" + cells)
    if any(cell is None for entry in transforms.values() for cell in entry["metrics"].values()):
        lines.append("   (-: not searched; see report.md)")
    idm = results["distortion"]
    if idm["enabled"]:
        lines += ["", f"   {idm['label']} (N={idm['n_candidates']}): validation accuracy (%), per warp w and K"]
        lines += ["   " + line for line in _distortion_rows(idm)]
        lines.append(
            f"   best: {idm['best']['label']}: {_pct(idm['best']['validation_accuracy'])}"
            f" ({'chosen' if idm['chosen'] else 'not chosen: not strictly above the best other candidate'})"
        )
    lines += [
        "",
        f"5. Chosen model on test: {best['label']}: {_pct(results['test_accuracy'])}",
        "",
        "   Per-class report:",
        *("   " + line for line in results["_report_text"].rstrip().splitlines()),
        "",
        "   Confusion matrix (rows: true digit, columns: predicted):",
        *("   " + line for line in _matrix_text(results["confusion_matrix"]).splitlines()),
        "",
        f"Report: {out_dir / 'report.md'}",
        f"Results: {out_dir / 'results.json'}",
        f"Elapsed: {results['timings']['total']:.1f} s on {results['n_threads']} thread(s)",
    ]
    return "\n".join(lines)


def _cell_text(cell, missing="-"):
    """``"98.20 (K=5)"``, with ``", distance"`` for distance-weighted votes."""
    if cell is None:
        return missing
    weighting = ", distance" if cell["weights"] == "distance" else ""
    return f"{100 * cell['validation_accuracy']:.2f} (K={cell['k']}{weighting})"


def _distortion_grid(idm):
    """``(header, rows)`` of the IDM step's validation accuracies: one row per (warp, K), one column per weighting."""
    by_cell = {(r["warp"], r["n_neighbors"], r["weights"]): r["validation_accuracy"] for r in idm["validation"]}
    header = ["w", "K", *("distance-weighted votes" if w == "distance" else f"{w} votes" for w in idm["weights"])]
    rows = [
        [w, k, *(f"{100 * by_cell[w, k, weighting]:.2f}" for weighting in idm["weights"])]
        for w in idm["warps"]
        for k in idm["n_neighbors"]
    ]
    return header, rows


def _distortion_rows(idm):
    """The IDM grid as aligned text lines for the terminal summary."""
    header, rows = _distortion_grid(idm)
    widths = [4, 4] + [len(cell) + 2 for cell in header[2:]]
    return ["".join(f"{cell!s:>{width}}" for cell, width in zip(row, widths)) for row in [header, *rows]]


def _agreement_sentence(agreement):
    n = agreement["n_disagree"]
    if n == 0:
        return "No disagreement."
    if agreement["all_disagreements_at_ties"]:
        return (
            f"All {n} disagreement(s) occur at exactly equal distances: the K-th and (K+1)-th nearest "
            "training images are equally far, and each library keeps a different one."
        )
    return (
        f"{agreement['n_disagree_at_ties']} of {n} disagreement(s) occur at exactly equal distances; "
        f"the other {n - agreement['n_disagree_at_ties']} do not (see results.json)."
    )


def _matrix_text(confusion):
    labels, matrix = confusion["labels"], confusion["matrix"]
    width = max(5, max(len(str(value)) for row in matrix for value in row) + 1)
    lines = [" " * 6 + "".join(f"{label!s:>{width}}" for label in labels)]
    for label, row in zip(labels, matrix):
        lines.append(f"{label!s:>6}" + "".join(f"{value:>{width}}" for value in row))
    return "\n".join(lines)


def _markdown_table(header, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def format_report(results, figures, command):
    """``report.md``: headline, data, the five steps, timings, method notes."""
    data = results["data"]
    best, baseline, agreement = results["best"], results["baseline"], results["sklearn_agreement"]
    metrics = list(results["validation"])
    metric_labels = [results["metrics"][m]["label"] for m in metrics]
    timings = results["timings"]
    out = []
    add = out.append

    add("# k-nearest neighbours on handwritten digits")
    add("")
    n_images = data["n_train"] + data["n_validation"] + data["n_test"]
    add(
        f"Exact k-nearest-neighbour classification of {n_images:,} handwritten digits with fastknn "
        f"{results['fastknn_version']}. Data: {results['_description']}"
    )
    add("")
    add(
        "Every choice (K, metric, image transform) is made on the validation set; the test set is used "
        "once per reported model, after the choice."
    )
    add("")
    add("## Headline")
    add("")
    add(
        _markdown_table(
            ["", ""],
            [
                ["Chosen on validation", f"{best['label']} (validation {_pct(best['validation_accuracy'])})"],
                [
                    "**Test accuracy, chosen model**",
                    f"**{_pct(results['test_accuracy'])}** ({results['test_correct']:,} / {data['n_test']:,})",
                ],
                [
                    f"Test accuracy, raw pixels, Euclidean, K={baseline['k']} (baseline)",
                    f"{_pct(baseline['test_accuracy'])} ({baseline['test_correct']:,} / {data['n_test']:,})",
                ],
                [
                    "Predictions equal to scikit-learn's (baseline)",
                    f"{agreement['n_agree']:,} / {agreement['n_queries']:,}",
                ],
                ["Time for the whole experiment", f"{timings['total']:.1f} s on {results['n_threads']} thread(s)"],
            ],
            align=["---", "---"],
        )
    )
    add("")
    add("## The data")
    add("")
    add(
        _markdown_table(
            ["part", "images", "used for"],
            [
                ["training", f"{data['n_train']:,}", "the neighbours"],
                ["validation", f"{data['n_validation']:,}", "choosing K, metric and transform"],
                ["test", f"{data['n_test']:,}", "the final accuracy, once per model"],
            ],
            align=["---", "---:", "---"],
        )
    )
    add("")
    if "samples" in figures:
        add(f"![Sample training digits, one row per class]({figures['samples']})")
        add("")

    add("## 1. Choosing K on validation")
    add("")
    add(
        f"One neighbour search per metric finds the {max(results['k_grid'])} nearest training images of "
        "every validation image; the vote for each smaller K uses the first K of them. Accuracy in %, raw "
        "pixels, best per metric in bold (ties go to the smaller K)."
    )
    add("")
    rows = []
    for k in results["k_grid"]:
        row = [str(k)]
        for m in metrics:
            cell = f"{100 * results['validation'][m][str(k)]:.2f}"
            row.append(f"**{cell}**" if results["best_k_per_metric"][m]["k"] == k else cell)
        rows.append(row)
    add(_markdown_table(["K", *metric_labels], rows))
    add("")
    if "validation" in figures:
        add(f"![Validation accuracy against K]({figures['validation']})")
        add("")

    add("## 2. The baseline on test")
    add("")
    add(
        f"Raw pixels, Euclidean distance, K={baseline['k']} (best on validation, "
        f"{_pct(baseline['validation_accuracy'])}), fitted on the training set alone: "
        f"**{_pct(baseline['test_accuracy'])}** on the test set."
    )
    add("")

    add("## 3. Agreement with scikit-learn")
    add("")
    add(
        f'scikit-learn\'s `KNeighborsClassifier(n_neighbors={agreement["k"]}, algorithm="brute")` on the same '
        f"split: {agreement['n_agree']:,} of {agreement['n_queries']:,} test predictions are equal "
        f"({100 * agreement['fraction']:.2f} %). {_agreement_sentence(agreement)}"
    )
    add("")
    if agreement["disagreements"]:
        add(
            "Each disagreement was checked with exact distances (float32 pixels, squared differences summed "
            "with `math.fsum`):"
        )
        add("")
        rows = [
            [
                d["query"],
                d["fastknn"],
                d["sklearn"],
                f"{d['kth_distance']:.6f}",
                "" if d["next_distance"] is None else f"{d['next_distance']:.6f}",
                "yes" if d["tie"] else "**no**",
            ]
            for d in agreement["disagreements"]
        ]
        add(
            _markdown_table(
                ["test image", "fastknn", "scikit-learn", "K-th distance", "(K+1)-th distance", "tie"], rows
            )
        )
        add("")
    add(
        _markdown_table(
            ["fit + predict", "seconds"],
            [
                ["fastknn", f"{agreement['fastknn_seconds']:.3f}"],
                ["scikit-learn, brute force", f"{agreement['sklearn_seconds']:.3f}"],
            ],
        )
    )
    add("")
    add("One run each, fastknn's kernels compiled beforehand; `fastknn bench` gives repeated measurements.")
    add("")

    add("## 4. Metrics and augmentation")
    add("")
    over = (
        f"over every K from 1 to {results['selection_k'][-1]} (one neighbour search gives them all) and the "
        "vote weighting (uniform, or inverse distance where marked)"
    )
    if results["augmentation"]["enabled"]:
        add(" ".join(results["augmentation"]["descriptions"]))
        add("")
        add(
            f"Best validation accuracy (%) of each transform and metric, {over}. The chosen configuration, "
            "the best of the whole table, is in bold."
        )
    else:
        add(f"Augmentation was skipped (`--no-augment`). Best validation accuracy (%) of each metric, {over}.")
    add("")
    rows = []
    for tk, entry in results["augmentation"]["transforms"].items():
        row = [entry["label"]]
        for m in metrics:
            text = _cell_text(entry["metrics"][m], missing="—")
            chosen = tk == best["transform"] and m == best["metric"]
            row.append(f"**{text}**" if chosen else text)
        rows.append(row)
    add(_markdown_table(["transform", *metric_labels], rows))
    add("")
    skipped = [
        (entry, m)
        for entry in results["augmentation"]["transforms"].values()
        for m in metrics
        if entry["metrics"][m] is None
    ]
    if skipped:
        sizes = sorted({entry["n_train"] for entry, _ in skipped})
        add(
            "—: not searched. On the largest expanded training sets "
            f"({', '.join(f'{n:,}' for n in sizes)} images) only the Euclidean kernel, the fastest, is run, "
            "so that the whole experiment takes a couple of minutes at most."
        )
        add("")
    if "deskew" in figures:
        add(f"![Digits before (top) and after (bottom) deskewing]({figures['deskew']})")
        add("")
    idm = results["distortion"]
    if idm["enabled"]:
        add("### Re-ranking with an image distortion model")
        add("")
        add(
            f"Deskewed images; the {idm['n_candidates']} exact Euclidean nearest training images of each "
            "validation image are re-ranked by their IDM distance, once per warp w, and every K and vote "
            "weighting is scored from the same re-ranked lists (`fastknn.distortion.select_distortion_knn`). "
            "Validation accuracy (%):"
        )
        add("")
        header, rows = _distortion_grid(idm)
        add(_markdown_table(header, rows))
        add("")
        outcome = (
            "chosen for the test, being strictly above every other candidate"
            if idm["chosen"]
            else "not chosen: the other candidates' best is at least as high, and ties go to the simpler model"
        )
        add(f"Best: {idm['best']['label']}, {_pct(idm['best']['validation_accuracy'])}; {outcome}.")
        add("")
        example = idm.get("example")
        if "distortion" in figures and example is not None:
            add(
                f"Of the {example['n_euclidean_wrong']} test images whose Euclidean nearest neighbour (deskewed "
                f"images) has the wrong class, {example['n_fixed']} have an IDM nearest neighbour (w="
                f"{example['warp']}) of the right class. The first of them by index, test image "
                f"{example['test_index']}, is drawn below with both neighbours; the arrows show where each pixel "
                "of its ink finds its match in the IDM nearest."
            )
            add("")
            alt = "A query, its Euclidean and IDM nearest neighbours, and the displacement field"
            add(f"![{alt}]({figures['distortion']})")
            add("")
        elif example is None:
            add("No test image has a wrong Euclidean nearest neighbour and a right IDM nearest neighbour.")
            add("")

    add("## 5. The chosen model on test")
    add("")
    add(
        f"{best['label']}: fitted on the {best['n_train']:,} (transformed) training images, test accuracy "
        f"**{_pct(results['test_accuracy'])}** ({results['test_correct']:,} of {data['n_test']:,}), against "
        f"{_pct(baseline['test_accuracy'])} for the baseline."
    )
    add("")
    report = results["classification_report"]
    labels = results["confusion_matrix"]["labels"]
    rows = []
    for label in labels:
        entry = report[str(label)]
        rows.append(
            [
                label,
                f"{entry['precision']:.4f}",
                f"{entry['recall']:.4f}",
                f"{entry['f1-score']:.4f}",
                int(entry["support"]),
            ]
        )
    for name in ("macro avg", "weighted avg"):
        entry = report[name]
        rows.append(
            [
                name,
                f"{entry['precision']:.4f}",
                f"{entry['recall']:.4f}",
                f"{entry['f1-score']:.4f}",
                int(entry["support"]),
            ]
        )
    add(_markdown_table(["class", "precision", "recall", "F1", "support"], rows))
    add("")
    if "confusion" in figures:
        add(f"![Confusion matrix of the chosen model on test]({figures['confusion']})")
        add("")
        add("Blue cells are correct predictions, red cells errors (darker: a larger share of the true class).")
        add("")
    matrix = results["confusion_matrix"]["matrix"]
    add("Confusion matrix (rows: true class, columns: predicted class):")
    add("")
    add(
        _markdown_table(
            ["true \\ predicted", *map(str, labels)], [[f"**{label}**", *row] for label, row in zip(labels, matrix)]
        )
    )
    add("")
    if "errors" in figures:
        add(
            "The test images misclassified with the largest share of the K votes: each caption gives the "
            "true and the predicted class and the vote share."
        )
        add("")
        add(f"![Most confidently misclassified test digits]({figures['errors']})")
        add("")

    add("## Timings")
    add("")
    rows = [[name, f"{seconds:.2f}"] for name, seconds in _flat_timings(timings, results)]
    add(_markdown_table(["step", "seconds"], rows))
    add("")
    add("## How to reproduce")
    add("")
    add("```")
    add(command)
    add("```")
    add("")
    add(
        "Neighbours are exact; neighbours at equal distances are ordered by training index, and a tied vote "
        "goes to the smallest class. When two configurations have the same validation accuracy, the one "
        "searched first wins: transforms in the order of the table, then Euclidean, Manhattan, Minkowski "
        "p=3, then the smaller K, then uniform before distance-weighted votes (the order of "
        "`KNNClassifierCV`'s `cv_results_`). The IDM re-ranking is searched after every transform (warp, then "
        "K, then uniform before distance-weighted votes), so it is chosen only when strictly better. The "
        "numbers are in `results.json`."
    )
    add("")
    return "\n".join(out)


def _flat_timings(timings, results):
    """``(readable step name, seconds)`` for the timings table."""
    names = {
        "load": "loading the data",
        "sklearn_check": "scikit-learn check (both fits and predictions, tie checks)",
        "fastknn_fit_predict": "- fastknn fit + predict",
        "sklearn_fit_predict": "- scikit-learn fit + predict",
        "final_test": "chosen model: test predictions",
        "distortion_example": "IDM example for the figure (Euclidean and IDM 1-NN of the test images)",
        "figures": "figures",
        "total": "**total**",
    }
    transforms = results["augmentation"]["transforms"]
    for name, value in timings.items():
        if name == "validation":
            for key, seconds in value.items():
                if key in transforms:
                    yield f"validation: {transforms[key]['label']} (transforms, every metric's search)", seconds
                else:
                    yield f"validation: {results['distortion']['label']} (every warp's re-ranking)", seconds
        else:
            yield names.get(name, name), value


def json_ready(results):
    """``results`` without its private entries, with NumPy scalars as Python ones."""

    def convert(value):
        if isinstance(value, dict):
            return {str(key): convert(item) for key, item in value.items() if not str(key).startswith("_")}
        if isinstance(value, (list, tuple)):
            return [convert(item) for item in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return convert(results)
