"""PNG figures of ``fastknn experiment``, drawn with matplotlib's Agg canvas.

Figures are built with :class:`matplotlib.figure.Figure` directly rather than
through ``pyplot``, so no global backend is selected or changed and nothing
needs a display. Grids of digits are assembled into one image with NumPy
and drawn with a single ``imshow``, which keeps drawing fast.
"""

import textwrap

import numpy as np
from matplotlib.figure import Figure

DPI = 100
_CMAP = "gray_r"  # dark ink on white paper

#: The PNG file each figure is saved as, by its key in ``results["figures"]``.
FILE_NAMES = {
    "samples": "sample_digits.png",
    "validation": "validation_accuracy.png",
    "confusion": "confusion_matrix.png",
    "errors": "misclassified.png",
    "deskew": "deskew.png",
    "distortion": "idm_example.png",
}


def _show_mosaic(figure, canvas, row_ticks, row_labels, title):
    """Draw a mosaic of digits on ``figure`` with labelled rows and no frame."""
    axes = figure.add_subplot()
    axes.imshow(canvas, cmap=_CMAP, interpolation="nearest")
    axes.set_yticks(row_ticks, row_labels)
    axes.set_xticks([])
    axes.tick_params(length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.set_title(title)

def _mosaic(images, n_columns, gap=2):
    """Tile ``(n, side, side)`` images into one array, ``gap`` blank pixels apart.

    Empty cells are NaN, drawn as background.
    """
    n_images, side, _ = images.shape
    n_rows = max(1, -(-n_images // n_columns))
    cell = side + gap
    canvas = np.full((n_rows * cell - gap, n_columns * cell - gap), np.nan, dtype=np.float32)
    for position, image in enumerate(images):
        row, column = divmod(position, n_columns)
        canvas[row * cell : row * cell + side, column * cell : column * cell + side] = image
    return canvas


def _images(rows, side):
    return np.asarray(rows, dtype=np.float32).reshape(-1, side, side)


def _save(figure, path):
    figure.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")


def sample_digits(X, y, side, path, per_class=12):
    """One row of training images per class, labelled by class.

    Parameters
    ----------
    X : ndarray of shape (n_samples, side * side)
    y : ndarray of shape (n_samples,)
    side : int
    path : path-like
        PNG file to write.
    per_class : int, default=12
        Images per row (fewer when a class has fewer).
    """
    classes = np.unique(y)[:20]
    images = []
    for label in classes:
        rows = np.flatnonzero(y == label)[:per_class]
        block = np.full((per_class, side, side), np.nan, dtype=np.float32)
        block[: rows.size] = _images(X[rows], side)
        images.append(block)
    canvas = _mosaic(np.concatenate(images), per_class)
    cell = side + 2
    figure = Figure(figsize=(0.45 * per_class + 0.6, 0.45 * len(classes) + 0.5))
    _show_mosaic(
        figure, canvas, np.arange(len(classes)) * cell + side / 2 - 0.5, [str(c) for c in classes],
        "Training digits, one row per class",
    )
    _save(figure, path)


def validation_curves(curves, path, max_columns=3):
    """Validation accuracy against K, one colour per metric, one panel per transform.

    Parameters
    ----------
    curves : dict
        ``{transform label: {metric label: {weighting: {K: accuracy}}}}``;
        uniform votes are drawn solid, distance-weighted votes dashed.
    path : path-like
    max_columns : int, default=3
        Panels per row.
    """
    n_panels = len(curves)
    n_columns = min(n_panels, max_columns)
    n_rows = -(-n_panels // n_columns)
    figure = Figure(figsize=(4.3 * n_columns, 3.3 * n_rows + 0.6), layout="constrained")
    axes_grid = figure.subplots(n_rows, n_columns, sharey=True, squeeze=False)
    markers = "osD^v"
    styles = {"uniform": "-", "distance": "--"}
    handles = {}
    for axes, (transform, by_metric) in zip(axes_grid.flat, curves.items()):
        for position, (metric, by_weighting) in enumerate(by_metric.items()):
            for weighting, by_k in by_weighting.items():
                ks = sorted(by_k)
                label = metric if weighting == "uniform" else f"{metric}, distance-weighted"
                (line,) = axes.plot(
                    ks,
                    [100 * by_k[k] for k in ks],
                    linestyle=styles.get(weighting, ":"),
                    marker=markers[position % len(markers)],
                    color=f"C{position}",
                    markersize=3 if weighting == "distance" else 5,
                    alpha=0.6 if weighting == "distance" else 1.0,
                    label=label,
                )
                handles.setdefault(label, line)
        axes.set_title(textwrap.fill(transform, 40), fontsize="medium")
        axes.set_xlabel("K (neighbours)")
        axes.set_xticks(ks if len(ks) <= 8 else [1, *range(5, ks[-1] + 1, 5)])
        axes.grid(alpha=0.3)
    for axes in axes_grid[:, 0]:
        axes.set_ylabel("validation accuracy (%)")
    for axes in list(axes_grid.flat)[n_panels:]:
        axes.set_visible(False)
    figure.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=3, fontsize="small")
    _save(figure, path)


def confusion_heatmap(matrix, labels, path, title=""):
    """The confusion matrix as a heatmap, every cell annotated with its count.

    Correct predictions are blue, errors red; the shade is the square root of
    the cell's share of its true class, errors scaled to the largest error so
    that a single misclassified image still shows.

    Parameters
    ----------
    matrix : ndarray of shape (n_classes, n_classes)
        Rows are true classes, columns predicted ones.
    labels : sequence
        Class names in matrix order.
    path : path-like
    title : str, default=""
    """
    matrix = np.asarray(matrix)
    n = len(labels)
    size = max(4.5, 0.55 * n + 1.5)
    figure = Figure(figsize=(size + 0.8, size), layout="constrained")
    axes = figure.add_subplot()
    # Colour by share of the true class, so that off-diagonal errors show.
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    off_diagonal = np.where(np.eye(n, dtype=bool), np.nan, shares)
    worst = max(float(np.nanmax(off_diagonal)), 1e-9) if n > 1 else 1e-9
    axes.imshow(np.sqrt(shares), cmap="Blues", vmin=0, vmax=1)
    if n > 1:
        axes.imshow(np.sqrt(off_diagonal), cmap="Reds", vmin=0, vmax=np.sqrt(worst))
    for row in range(n):
        for column in range(n):
            value = matrix[row, column]
            if value == 0:
                continue
            if row == column:
                dark = shares[row, column] > 0.5
            else:
                dark = off_diagonal[row, column] > 0.6 * worst
            axes.text(
                column, row, str(value), ha="center", va="center", fontsize="small", color="white" if dark else "black"
            )
    axes.set_xticks(range(n), [str(label) for label in labels])
    axes.set_yticks(range(n), [str(label) for label in labels])
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(textwrap.fill(title, 60), fontsize="medium")
    _save(figure, path)


def digit_grid(X, side, captions, path, title="", n_columns=8):
    """Digits with a caption under each.

    Parameters
    ----------
    X : ndarray of shape (n_images, side * side)
    side : int
    captions : sequence of str
    path : path-like
    title : str, default=""
    n_columns : int, default=8
    """
    images = _images(X, side)
    n_columns = min(n_columns, len(images))
    n_rows = -(-len(images) // n_columns)
    figure = Figure(figsize=(1.35 * n_columns, 1.6 * n_rows + 0.4), layout="constrained")
    axes_grid = figure.subplots(n_rows, n_columns, squeeze=False)
    for position, axes in enumerate(axes_grid.flat):
        axes.set_axis_off()
        if position < len(images):
            axes.imshow(images[position], cmap=_CMAP, interpolation="nearest")
            axes.set_title(captions[position], fontsize="x-small")
    if title:
        figure.suptitle(title)
    _save(figure, path)


def before_after(before, after, side, path):
    """Digits in the top row and their transformed versions below.

    Parameters
    ----------
    before, after : ndarray of shape (n_images, side * side)
    side : int
    path : path-like
    """
    n_images = len(before)
    canvas = _mosaic(np.concatenate([_images(before, side), _images(after, side)]), n_images)
    cell = side + 2
    figure = Figure(figsize=(0.6 * n_images + 1.2, 1.9))
    _show_mosaic(
        figure, canvas, [side / 2 - 0.5, cell + side / 2 - 0.5], ["before", "deskewed"],
        "Deskewing: each digit sheared upright and centred",
    )
    _save(figure, path)


def distortion_example(panels, captions, field, path, title=""):
    """A query, two of its neighbours and the displacement field, side by side.

    Parameters
    ----------
    panels : sequence of three ndarray of shape (side, side)
        The query, its Euclidean nearest and its IDM nearest training image.
    captions : sequence of four str
        Titles of the three images and of the field.
    field : ndarray of shape (side, side, 2)
        ``(row, column)`` offset of each query pixel's best match, as
        :func:`fastknn.distortion.idm_displacements` returns it; drawn as
        arrows over the query's ink (pixels of at least a quarter of its
        largest value; pixels that stay in place get none).
    path : path-like
    title : str, default=""
    """
    figure = Figure(figsize=(8.4, 2.6), layout="constrained")
    axes_row = figure.subplots(1, 4)
    for axes, image, caption in zip(axes_row, [*panels, panels[0]], captions):
        axes.imshow(image, cmap=_CMAP, interpolation="nearest", alpha=0.35 if axes is axes_row[3] else 1.0)
        axes.set_title(caption, fontsize="small")
        axes.set_axis_off()
    query = np.asarray(panels[0])
    rows, columns = np.nonzero(np.any(field != 0, axis=2) & (query >= 0.25 * query.max()))
    # imshow puts row 0 on top, so a positive row offset points down the screen.
    axes_row[3].quiver(
        columns, rows, field[rows, columns, 1], -field[rows, columns, 0],
        angles="uv", scale_units="xy", scale=1, color="C3", width=0.005, headwidth=3, headlength=3,
    )
    if title:
        figure.suptitle(title, fontsize="medium")
    _save(figure, path)


def draw_figures(results, data, out_dir, augment):
    """Draw the study's PNG figures into ``out_dir``; return name -> file name."""
    figures = {}
    side = data.side
    figures["samples"] = FILE_NAMES["samples"]
    sample_digits(data.train_X, data.train_y, side, out_dir / figures["samples"])

    curves = {}
    for entry in results["augmentation"]["transforms"].values():
        curves[entry["label"]] = {
            results["metrics"][m]["label"]: {
                weighting: {int(k): acc for k, acc in by_k.items()} for weighting, by_k in cell["validation"].items()
            }
            for m, cell in entry["metrics"].items()
            if cell is not None
        }
    figures["validation"] = FILE_NAMES["validation"]
    validation_curves(curves, out_dir / figures["validation"])

    figures["confusion"] = FILE_NAMES["confusion"]
    confusion_heatmap(
        np.asarray(results["confusion_matrix"]["matrix"]),
        np.asarray(results["confusion_matrix"]["labels"]),
        out_dir / figures["confusion"],
        title=f"Test set, {results['best']['label']}",
    )

    errors = results["most_confident_errors"]
    if errors:
        figures["errors"] = FILE_NAMES["errors"]
        rows = [e["test_index"] for e in errors]
        captions = [f"true {e['true']}, pred {e['predicted']}\nvotes {100 * e['vote_share']:.0f} %" for e in errors]
        digit_grid(
            data.test_X[rows],
            side,
            captions,
            out_dir / figures["errors"],
            title="Most confidently misclassified test digits",
        )

    if augment:
        from ..augment import deskew

        figures["deskew"] = FILE_NAMES["deskew"]
        first_per_class = [np.flatnonzero(data.train_y == c)[0] for c in np.unique(data.train_y)[:10]]
        before = data.train_X[first_per_class]
        before_after(before, deskew(before), side, out_dir / figures["deskew"])

    example = results["distortion"].get("example")
    if example is not None:
        from ..augment import deskew
        from ..distortion import idm_displacements

        figures["distortion"] = FILE_NAMES["distortion"]
        query = deskew(data.test_X[[example["test_index"]]])[0].reshape(side, side)
        neighbours = deskew(data.train_X[[example["euclidean_index"], example["idm_index"]]]).reshape(-1, side, side)
        field, _ = idm_displacements(query, neighbours[1], warp=example["warp"], image_shape=(side, side))
        labels = [data.test_y[example["test_index"]], *data.train_y[[example["euclidean_index"], example["idm_index"]]]]
        distortion_example(
            [query, *neighbours],
            [
                f"test #{example['test_index']}: {labels[0]}",
                f"Euclidean 1-NN: {labels[1]}",
                f"IDM 1-NN: {labels[2]}",
                f"displacements (w={example['warp']})",
            ],
            field,
            out_dir / figures["distortion"],
            title="Deskewed query, its nearest training images, and where its pixels match the IDM nearest",
        )
    return figures
