"""Tests for fastknn.datasets and the packaged digits it loads."""

import doctest
import gzip
import io
import pathlib

import numpy as np
import pytest

from fastknn import datasets
from fastknn.datasets import (
    load_mnist,
    load_mnist_split,
    read_idx,
)

SHARED_MNIST = pathlib.Path(__file__).resolve().parents[1].parent / "shared/data/mnist"

# Digits per class in the MNIST test set; the CSV sample adds 500 of each.
MNIST_TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

SPLIT_SIZES = {"10000": (10_000, 2_000, 2_000), "1000": (1_000, 200, 200)}


@pytest.fixture(scope="module", params=sorted(SPLIT_SIZES))
def layout_and_split(request):
    return request.param, load_mnist_split(request.param)


@pytest.fixture(scope="module")
def small_split():
    return load_mnist_split("1000")


def rows_as_bytes(data):
    return {row.tobytes() for row in data}


# --------------------------------------------------------------------------
# load_mnist
# --------------------------------------------------------------------------


def test_load_mnist_shapes_and_dtypes():
    digits = load_mnist()
    assert digits.data.shape == (15_000, 784) and digits.data.dtype == np.uint8
    assert digits.target.shape == (15_000,) and digits.target.dtype == np.int64
    assert digits.images.shape == (15_000, 28, 28)
    assert np.shares_memory(digits.images, digits.data)
    np.testing.assert_array_equal(digits.target_names, np.arange(10))
    assert "Creative Commons Attribution-Share Alike 3.0" in digits.DESCR


def test_load_mnist_classes_and_sources():
    digits = load_mnist()
    expected_counts = np.array(MNIST_TEST_CLASS_COUNTS) + 500
    np.testing.assert_array_equal(np.bincount(digits.target), expected_counts)

    np.testing.assert_array_equal(np.bincount(digits.source), [10_000, 5_000])
    assert len(digits.source_names) == 2
    np.testing.assert_array_equal(digits.source_index[:10_000], np.arange(10_000))
    np.testing.assert_array_equal(digits.source_index[10_000:], np.arange(5_000))
    # The CSV sample is balanced: 500 of each digit.
    sample_counts = np.bincount(digits.target[digits.source == 1])
    np.testing.assert_array_equal(sample_counts, np.full(10, 500))


def test_load_mnist_digits_are_distinct():
    data = load_mnist().data
    assert np.unique(data, axis=0).shape[0] == data.shape[0]


def test_load_mnist_return_X_y_matches_bunch():
    digits = load_mnist()
    X, y = load_mnist(return_X_y=True)
    np.testing.assert_array_equal(X, digits.data)
    np.testing.assert_array_equal(y, digits.target)


def test_load_mnist_mutations_do_not_reach_the_cache():
    first = load_mnist()
    original_pixel = first.data[0, 300]
    original_label = first.target[0]
    first.data[0, 300] = original_pixel + 1
    first.images[1] = 0
    first.target[0] = original_label + 1
    first.source[:] = 7

    X, y = load_mnist(return_X_y=True)
    X[:] = 0

    again = load_mnist()
    assert again.data[0, 300] == original_pixel
    assert again.data[1].any()
    assert again.target[0] == original_label
    assert set(np.unique(again.source)) == {0, 1}


# --------------------------------------------------------------------------
# load_mnist_split
# --------------------------------------------------------------------------


def test_split_sizes_and_dtypes(layout_and_split):
    layout, parts = layout_and_split
    assert len(parts) == 6
    for (data, labels), n_samples in zip(
        zip(parts[::2], parts[1::2], strict=True), SPLIT_SIZES[layout], strict=True
    ):
        assert data.shape == (n_samples, 784) and data.dtype == np.float32
        assert labels.shape == (n_samples,) and labels.dtype == np.int64
        assert data.min() >= 0.0 and data.max() <= 1.0


def test_split_values_are_pixels_over_255(small_split):
    pixels, labels = load_mnist(return_X_y=True)
    by_content = {
        row.tobytes(): (row, label) for row, label in zip(pixels, labels, strict=True)
    }
    train_data, train_labels = small_split[0], small_split[1]
    for row, label in zip(train_data[:20], train_labels[:20], strict=True):
        original, original_label = by_content[
            np.rint(row * 255).astype(np.uint8).tobytes()
        ]
        np.testing.assert_allclose(row, original / np.float32(255), rtol=1e-6)
        assert label == original_label


def test_split_parts_are_disjoint(layout_and_split):
    _, parts = layout_and_split
    train, val, test = (rows_as_bytes(data) for data in parts[::2])
    assert len(train) == parts[0].shape[0]
    assert not train & val and not train & test and not val & test


def test_split_is_stratified(layout_and_split):
    _, parts = layout_and_split
    overall = np.bincount(load_mnist().target, minlength=10) / 15_000
    for labels in parts[1::2]:
        counts = np.bincount(labels, minlength=10)
        assert np.all(np.abs(counts - overall * labels.shape[0]) <= 2)


def test_split_is_deterministic_for_a_seed(small_split):
    again = load_mnist_split("1000", random_state=0)
    for first, second in zip(small_split, again, strict=True):
        np.testing.assert_array_equal(first, second)
    other_seed = load_mnist_split("1000", random_state=1)
    assert not np.array_equal(small_split[1], other_seed[1])


@pytest.mark.parametrize("layout", ["100", 10000, "", None])
def test_split_rejects_unknown_layout(layout):
    with pytest.raises(ValueError, match="unknown layout.*'10000', '1000'"):
        load_mnist_split(layout)


# --------------------------------------------------------------------------
# read_idx
# --------------------------------------------------------------------------


def idx_bytes(array, type_code):
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_idx_round_trip_uint8_images(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    content = idx_bytes(images, 0x08)
    path = tmp_path / ("images.idx3" + (".gz" if compress else ""))
    path.write_bytes(gzip.compress(content) if compress else content)
    read_back = read_idx(path)
    assert read_back.dtype == np.uint8 and read_back.flags.writeable
    np.testing.assert_array_equal(read_back, images)
    np.testing.assert_array_equal(read_idx(str(path)), images)
    with open(path, "rb") as file:
        np.testing.assert_array_equal(read_idx(file), images)


@pytest.mark.parametrize(
    "dtype, type_code",
    [
        (np.int8, 0x09),
        (np.int16, 0x0B),
        (np.int32, 0x0C),
        (np.float32, 0x0D),
        (np.float64, 0x0E),
    ],
)
def test_idx_round_trip_other_types_in_native_order(dtype, type_code):
    array = (np.arange(-6, 6).reshape(3, 4) * 3).astype(dtype)
    read_back = read_idx(io.BytesIO(idx_bytes(array, type_code)))
    assert read_back.dtype == np.dtype(dtype)
    assert read_back.dtype.isnative
    np.testing.assert_array_equal(read_back, array)


@pytest.mark.parametrize(
    "header_start",
    [b"\x01\x00\x08\x01", b"\x00\x07\x08\x01", b"\x00\x00\x0a\x01"],
    ids=["first-byte", "second-byte", "unknown-type"],
)
def test_idx_bad_magic_number(header_start):
    content = header_start + (2).to_bytes(4, "big") + b"\x00\x00"
    with pytest.raises(ValueError, match="bad magic number 0x.* expected 0x0000"):
        read_idx(io.BytesIO(content))


@pytest.mark.parametrize("extra", [-1, 1], ids=["too-short", "too-long"])
def test_idx_data_length_must_match_header(tmp_path, extra):
    content = idx_bytes(np.zeros((2, 3), np.uint8), 0x08)
    content = content[:extra] if extra < 0 else content + b"\x00" * extra
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path}: .*6 data bytes.*holds {6 + extra}"):
        read_idx(path)


def test_idx_truncated_header():
    with pytest.raises(ValueError, match="ends inside its IDX header"):
        read_idx(io.BytesIO(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big")))
    with pytest.raises(ValueError, match="too short"):
        read_idx(io.BytesIO(b"\x00\x00"))


def test_idx_truncated_gzip():
    compressed = gzip.compress(idx_bytes(np.zeros((50, 50), np.uint8), 0x08))
    with pytest.raises(ValueError, match="truncated or corrupt gzip"):
        read_idx(io.BytesIO(compressed[: len(compressed) // 2]))


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST files absent")
def test_idx_reads_published_test_labels():
    labels = read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10_000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, load_mnist().target[:10_000])


# --------------------------------------------------------------------------
# The build script and the examples
# --------------------------------------------------------------------------


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST files absent")
def test_packaged_file_matches_a_fresh_build(tmp_path):
    from fastknn.data import build_digits

    output = tmp_path / "rebuilt.npz"
    build_digits.main(["--source", str(SHARED_MNIST), "--output", str(output)])
    packaged = datasets._load_packaged_arrays()
    with np.load(output, allow_pickle=False) as rebuilt:
        assert sorted(rebuilt.files) == sorted(packaged)
        for name in rebuilt.files:
            np.testing.assert_array_equal(rebuilt[name], packaged[name])


def test_docstring_examples():
    results = doctest.testmod(datasets, optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0 and results.failed == 0
