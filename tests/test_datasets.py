"""Tests for fastknn.datasets and the packaged digits it loads."""

import doctest
import gzip
import io
import os
import pathlib
import pickle
import struct

import numpy as np
import pytest

from fastknn import datasets
from fastknn.datasets import (
    UnsafePickleError,
    load_mnist,
    load_mnist_pickle,
    load_mnist_split,
    read_idx,
    save_mnist_pickle,
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


def write_plain_pickle(path, obj, protocol=2):
    with gzip.open(path, "wb") as file:
        pickle.dump(obj, file, protocol=protocol)


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
# save_mnist_pickle / load_mnist_pickle
# --------------------------------------------------------------------------


def test_pickle_round_trip(small_split, tmp_path):
    path = save_mnist_pickle(tmp_path / "mnist_1000.pkl.gz", small_split)
    loaded = load_mnist_pickle(path)
    assert len(loaded) == 6
    for original, read_back in zip(small_split, loaded, strict=True):
        assert read_back.dtype == original.dtype
        np.testing.assert_array_equal(read_back, original)


def test_saved_pickle_opens_with_plain_pickle(small_split, tmp_path):
    path = save_mnist_pickle(tmp_path / "mnist_1000.pkl.gz", small_split)
    with gzip.open(path, "rb") as file:
        raw = file.read()
    assert raw[:2] == b"\x80\x02"  # PROTO opcode, protocol 2
    loaded = pickle.load(io.BytesIO(raw), encoding="latin1")
    assert isinstance(loaded, tuple) and len(loaded) == 6
    for original, read_back in zip(small_split, loaded, strict=True):
        np.testing.assert_array_equal(read_back, original)


def test_saved_pickle_is_byte_reproducible(small_split, tmp_path):
    first = save_mnist_pickle(tmp_path / "first.pkl.gz", small_split)
    second = save_mnist_pickle(tmp_path / "second.pkl.gz", small_split)
    assert first.read_bytes() == second.read_bytes()


def make_tiny_split(n_features=16, data_dtype=np.float64, label_dtype=np.int32):
    rng = np.random.default_rng(0)
    parts = []
    for n_samples in (6, 3, 2):
        parts.append(rng.random((n_samples, n_features)).astype(data_dtype))
        parts.append(rng.integers(0, 10, n_samples).astype(label_dtype))
    return tuple(parts)


def test_load_plain_protocol_2_pickle_and_coerce_dtypes(tmp_path):
    arrays = make_tiny_split()
    path = tmp_path / "plain.pkl.gz"
    write_plain_pickle(path, arrays)
    loaded = load_mnist_pickle(path)
    for original, read_back in zip(arrays, loaded, strict=True):
        assert read_back.dtype in (np.float32, np.int64)
        np.testing.assert_allclose(read_back, original, rtol=1e-6)


def test_load_pickle_with_numpy_1_module_names(tmp_path):
    arrays = make_tiny_split()
    raw = pickle.dumps(arrays, protocol=2)
    # numpy 1.x wrote numpy.core; numpy 2.x writes numpy._core.
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw
    path = tmp_path / "numpy1.pkl.gz"
    path.write_bytes(gzip.compress(raw))
    for original, read_back in zip(arrays, load_mnist_pickle(path), strict=True):
        np.testing.assert_allclose(read_back, original, rtol=1e-6)


class Python2StylePickler(pickle._Pickler):
    """Pickles bytes as Python 2 ``str`` (BINSTRING), not ``_codecs.encode``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes_as_python2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes_as_python2_str


def test_load_python2_style_pickle(tmp_path):
    arrays = make_tiny_split(data_dtype=np.float32, label_dtype=np.int64)
    buffer = io.BytesIO()
    Python2StylePickler(buffer, protocol=2).dump(arrays)
    raw = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"_codecs" not in raw
    path = tmp_path / "python2.pkl.gz"
    path.write_bytes(gzip.compress(raw))
    for original, read_back in zip(arrays, load_mnist_pickle(path), strict=True):
        np.testing.assert_array_equal(read_back, original)


class RunsShellCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class CallsEval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    "make_payload, refused",
    [
        (lambda marker: RunsShellCommand(f"touch '{marker}'"), r"(posix|nt)\.system"),
        (lambda marker: CallsEval(marker), r"(builtins|__builtin__)\.eval"),
    ],
    ids=["os.system", "eval"],
)
def test_malicious_pickle_is_refused_without_running(
    tmp_path, protocol, make_payload, refused
):
    marker = tmp_path / "MARKER"
    arrays = list(make_tiny_split())
    arrays[0] = make_payload(marker)
    path = tmp_path / "evil.pkl.gz"
    write_plain_pickle(path, tuple(arrays), protocol=protocol)

    with pytest.raises(UnsafePickleError, match=f"refused to load global '{refused}'"):
        load_mnist_pickle(path)
    assert not marker.exists()


def test_unsafe_pickle_error_is_a_value_error():
    assert issubclass(UnsafePickleError, ValueError)
    assert issubclass(UnsafePickleError, pickle.UnpicklingError)


def test_refused_module_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "IMPORTED"
    module_dir = tmp_path / "modules"
    module_dir.mkdir()
    (module_dir / "booby_trap.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef build():\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(module_dir))
    raw = b"\x80\x02cbooby_trap\nbuild\n)R."
    path = tmp_path / "import.pkl.gz"
    path.write_bytes(gzip.compress(raw))

    with pytest.raises(UnsafePickleError, match="booby_trap.build"):
        load_mnist_pickle(path)
    assert not marker.exists()


def test_codecs_encode_only_allows_latin1(tmp_path):
    raw = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R."
    path = tmp_path / "codec.pkl.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(UnsafePickleError, match="base64"):
        load_mnist_pickle(path)


def test_reconstruct_may_not_allocate_a_chosen_shape(tmp_path):
    raw = pickle.dumps(np.zeros(3), protocol=2)
    empty_shape = b"K\x00\x85"  # BININT1 0, TUPLE1: the (0,) numpy writes
    assert raw.count(empty_shape) == 1
    raw = raw.replace(empty_shape, b"J\x00\x00\x00\x40\x85")  # (2**30,)
    path = tmp_path / "huge.pkl.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(UnsafePickleError, match="only ever ask for an empty"):
        load_mnist_pickle(path)


def test_truncated_gzip_file(small_split, tmp_path):
    path = save_mnist_pickle(tmp_path / "mnist_1000.pkl.gz", small_split)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(ValueError, match="truncated") as excinfo:
        load_mnist_pickle(path)
    assert str(path) in str(excinfo.value)



@pytest.mark.parametrize("cut", [1, 4, 8])
def test_gzip_file_without_its_trailer(small_split, tmp_path, cut):
    # The pickle itself is whole: only gzip's CRC and length are cut short.
    path = save_mnist_pickle(tmp_path / "mnist_1000.pkl.gz", small_split)
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist_pickle(path)


def test_corrupt_compressed_data_fails_the_crc(tmp_path):
    # A stored (level 0) deflate block holds the pickle's bytes as they are:
    # changing one pixel's byte keeps a valid pickle, so only the CRC can tell.
    path = tmp_path / "flipped.pkl.gz"
    content = bytearray(gzip.compress(pickle.dumps(make_tiny_split(), protocol=2), compresslevel=0))
    content[len(content) // 2] ^= 0x40
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="CRC check failed"):
        load_mnist_pickle(path)


def test_data_after_the_pickle_is_refused(tmp_path):
    path = tmp_path / "two.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(make_tiny_split(), protocol=2) + b"more"))
    with pytest.raises(ValueError, match="4 bytes after its pickle"):
        load_mnist_pickle(path)

def test_not_a_gzip_file(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(make_tiny_split(), protocol=2))
    with pytest.raises(ValueError, match="not a gzip-compressed pickle"):
        load_mnist_pickle(path)


def test_truncated_pickle_inside_valid_gzip(tmp_path):
    raw = pickle.dumps(make_tiny_split(), protocol=2)
    path = tmp_path / "short.pkl.gz"
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(ValueError, match=str(path)):
        load_mnist_pickle(path)


def replace_part(position, value):
    def change(arrays):
        arrays = list(arrays)
        arrays[position] = value(arrays[position]) if callable(value) else value
        return tuple(arrays)

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda arrays: (), "expected a tuple of 6 arrays.*tuple of length 0"),
        (lambda arrays: arrays[:5], "expected a tuple of 6 arrays.*length 5"),
        (lambda arrays: arrays + arrays[:1], "expected a tuple of 6 arrays.*length 7"),
        (lambda arrays: list(arrays), "expected a tuple of 6 arrays.*list"),
        (lambda arrays: {"train": arrays}, "expected a tuple of 6 arrays.*dict"),
        (replace_part(0, lambda data: data.ravel()), "trainData should be a 2-D float"),
        (replace_part(2, lambda data: data[:, :-1]), "valData has 15 columns"),
        (
            replace_part(1, lambda labels: labels[:, None]),
            "trainLabels should be a 1-D",
        ),
        (
            replace_part(5, lambda labels: labels.astype(float)),
            "testLabels should be.*integer",
        ),
        (
            replace_part(4, lambda data: data.astype(np.uint8)),
            "testData should be.*float",
        ),
        (
            replace_part(3, lambda labels: labels[:-1]),
            "valData has 3 rows but valLabels has 2",
        ),
        (replace_part(1, [1, 2, 3]), "trainLabels should be a numpy array"),
    ],
)
def test_wrong_structure_is_rejected(tmp_path, change, message):
    path = tmp_path / "wrong.pkl.gz"
    write_plain_pickle(path, change(make_tiny_split()))
    with pytest.raises(ValueError, match=message):
        load_mnist_pickle(path)
    not_written = tmp_path / "not_written.pkl.gz"
    with pytest.raises(ValueError, match=message):
        save_mnist_pickle(not_written, change(make_tiny_split()))
    assert not not_written.exists()


def test_non_square_feature_count_is_rejected(tmp_path):
    path = tmp_path / "wide.pkl.gz"
    write_plain_pickle(path, make_tiny_split(n_features=15))
    with pytest.raises(ValueError, match="15 columns; expected a square image"):
        load_mnist_pickle(path)


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


def test_a_split_with_an_empty_part_round_trips(tmp_path):
    # An empty array pickles its buffer as bytes(), which the safe load allows
    # with no argument only.
    rng = np.random.default_rng(0)
    parts = (rng.random((3, 4), dtype=np.float32), np.arange(3), np.zeros((0, 4), np.float32), np.arange(0),
             rng.random((2, 4), dtype=np.float32), np.arange(2))
    loaded = load_mnist_pickle(save_mnist_pickle(tmp_path / "split.pkl.gz", parts))
    assert [part.shape for part in loaded] == [(3, 4), (3,), (0, 4), (0,), (2, 4), (2,)]


def test_bytes_with_an_argument_is_refused(tmp_path):
    path = tmp_path / "alloc.pkl.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(b"\x80\x02c__builtin__\nbytes\nK\x10\x85R.")  # bytes(16)
    with pytest.raises(UnsafePickleError, match="bytes"):
        load_mnist_pickle(path)
    assert pickle.loads(b"\x80\x02c__builtin__\nbytes\nK\x10\x85R.") == bytes(16)


def test_nan_pixels_are_refused(tmp_path):
    parts = list(load_mnist_split("1000"))
    parts[4] = parts[4].copy()
    parts[4][5, 5] = np.nan
    with pytest.raises(ValueError, match="testData holds NaN"):
        save_mnist_pickle(tmp_path / "nan.pkl.gz", tuple(parts))


def test_float64_pixels_beyond_float32_are_refused(tmp_path):
    # Finite in float64, infinite once kept as float32.
    parts = list(make_tiny_split())
    parts[2] = parts[2].astype(np.float64)
    parts[2][0, 1] = 1e300
    path = tmp_path / "huge.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(tuple(parts), protocol=2)))
    with pytest.raises(ValueError, match="valData holds pixel values beyond float32's range"):
        load_mnist_pickle(path)
