"""Training sets read from files, shard by shard, by the workers."""

import dask.array as da
import numpy as np


class NpyRows:
    """A ``.npy`` file as an array-like that Dask slices: only the path travels.

    Each slice memory-maps the file in the process that asks for it and
    returns a copy of the rows, so the file is never pickled, never read
    whole and never held mapped between tasks.
    """

    def __init__(self, path):
        self.path = str(path)
        header = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = header.shape, header.dtype, header.ndim

    def __getitem__(self, key):
        return np.array(np.load(self.path, mmap_mode="r")[key])


def from_npy(path, rows_per_shard):
    """A Dask array of the rows of a ``.npy`` file, read shard by shard where each task runs.

    For training sets larger than memory: only the file's path enters the
    task graph, and each task memory-maps the file and copies its own block
    of rows, so a worker holds one shard at a time, not the file.
    (``da.from_array(np.load(path, mmap_mode="r"))`` would pickle the whole
    mapped array into the graph.) Zarr and HDF5 files need no helper:
    ``da.from_zarr`` and ``da.from_array`` on an ``h5py`` dataset read
    chunk by chunk already.

    Parameters
    ----------
    path : str or path-like
        A 2-D ``.npy`` file (C order), on a file system every worker can read.
    rows_per_shard : int
        Rows per block (the last block holds the rest).

    Returns
    -------
    rows : dask.array.Array of shape (n_rows, n_features)
        Chunked by rows, one chunk of columns.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from fastknn.dask import from_npy
    >>> path = os.path.join(tempfile.mkdtemp(), "rows.npy")
    >>> np.save(path, np.arange(12.0).reshape(6, 2))
    >>> rows = from_npy(path, rows_per_shard=4)
    >>> rows.chunks
    ((4, 2), (2,))
    >>> rows[4:].compute()
    array([[ 8.,  9.],
           [10., 11.]])
    """
    source = NpyRows(path)
    if source.ndim != 2:
        raise ValueError(f"{path} holds an array of {source.ndim} dimensions; expected 2 (n_rows, n_features).")
    return da.from_array(source, chunks=(rows_per_shard, -1), asarray=False, fancy=False, meta=np.empty((0, 0), source.dtype))
