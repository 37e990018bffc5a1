"""Draw the performance figure (and table) of the docs from ``fastknn bench`` JSON.

Usage, from the repository root::

    fastknn bench --json bench.json
    python docs/make_performance_plot.py bench.json docs/images/performance.png --rst

The figure shows, per metric, the median fit + predict seconds of each
method that ``fastknn bench`` timed (log scale), with the speed-up of fastknn
over scikit-learn's brute force. ``--rst`` also prints the table of
``docs/performance.rst`` for the same run.
"""

import argparse
import json
import pathlib

from matplotlib.figure import Figure

# Display name and colour of each method of ``fastknn bench``, in plot order.
METHODS = {
    "fastknn": ("fastknn", "#1f77b4"),
    "sklearn_brute": ("scikit-learn brute", "#ff7f0e"),
    "faiss_flat_l2": ("FAISS IndexFlatL2", "#2ca02c"),
    "sgemm": ("bare sgemm", "#7f7f7f"),
}
METRIC_LABELS = {"euclidean": "Euclidean", "manhattan": "Manhattan", "minkowski": "Minkowski p=3"}


def draw(results, path, title=None):
    """Write the figure for a ``fastknn bench`` results dict to ``path``."""
    timings = results["timings"]
    metrics = list(timings)
    shape = results["shape"]
    figure = Figure(figsize=(7.5, 1.5 + 1.1 * len(metrics)), layout="constrained")
    axes = figure.subplots()
    bar_height = 0.8 / len(METHODS)
    for position, (method, (label, colour)) in enumerate(METHODS.items()):
        rows = [i for i, metric in enumerate(metrics) if method in timings[metric]]
        if not rows:
            continue
        y = [i + (position - (len(METHODS) - 1) / 2) * bar_height for i in rows]
        seconds = [timings[metrics[i]][method] for i in rows]
        axes.barh(y, seconds, height=bar_height, color=colour, label=label)
        for y_i, s in zip(y, seconds, strict=True):
            axes.annotate(f" {s:.3g} s", (s, y_i), va="center", fontsize=7)
    axes.set_yticks(range(len(metrics)))
    axes.set_yticklabels(
        [
            f"{METRIC_LABELS.get(m, m)}\n{results['ratios'][m]['sklearn_brute / fastknn']:.1f}x vs scikit-learn"
            for m in metrics
        ],
        fontsize=8,
    )
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("fit + predict, median seconds (log scale; shorter is faster)")
    axes.set_title(
        title
        or f"{shape['n_train']:,} training x {shape['n_queries']:,} query digits, "
        f"{shape['n_features']} features, k={shape['k']}",
        fontsize=9,
    )
    figure.legend(fontsize=7, loc="outside lower center", ncol=len(METHODS))
    axes.margins(x=0.25)
    figure.savefig(path, dpi=120)


def rst_table(results):
    """The results as an RST list-table: seconds and ratios per metric."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - metric",
        "     - fastknn (s)",
        "     - scikit-learn brute (s)",
        "     - scikit-learn / fastknn",
        "     - FAISS IndexFlatL2 (s)",
        "     - fastknn / sgemm",
        "     - agreement with scikit-learn",
    ]
    for metric, timings in results["timings"].items():
        ratios = results["ratios"][metric]
        cells = [
            METRIC_LABELS.get(metric, metric),
            f"{timings['fastknn']:.3f}",
            f"{timings['sklearn_brute']:.3f}",
            f"{ratios['sklearn_brute / fastknn']:.1f}",
            f"{timings['faiss_flat_l2']:.3f}" if "faiss_flat_l2" in timings else "",
            f"{ratios['fastknn / sgemm']:.2f}" if "fastknn / sgemm" in ratios else "",
            f"{results['agreement'][metric]:.4f}",
        ]
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {cell}" for cell in cells[1:]]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=pathlib.Path, help="output of `fastknn bench --json`")
    parser.add_argument("png", type=pathlib.Path, help="figure to write")
    parser.add_argument("--title", help="figure title (default: the benchmark's shape)")
    parser.add_argument("--rst", action="store_true", help="also print the RST table")
    args = parser.parse_args(argv)
    results = json.loads(args.json.read_text())
    draw(results, args.png, args.title)
    if args.rst:
        print(rst_table(results))


if __name__ == "__main__":
    main()
