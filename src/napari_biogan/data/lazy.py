"""Sources of training images that stay on disk: only the rows of one batch are read.

A lazy source has ``shape``, ``dtype``, ``len()`` and indexing by an integer
array (rows in any order, repeats allowed) returning a numpy array. A numpy
memory map (``np.load(..., mmap_mode="r")``) already is one; :class:`TiffPages`
(the pages of a multi-page TIFF) and :class:`ZarrRows` (a zarr array) adapt the
other formats. Families turn a lazy source into a lazy
:class:`~napari_biogan.core.dataset.Field` (see ``families/dcgan2d.py``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataError

#: rows read to estimate intensity percentiles of a lazy source
PERCENTILE_ROWS = 64


def is_lazy(data: Any) -> bool:
    """True for sources that are read on demand (memory maps, TIFF pages, zarr), not in-memory arrays."""
    if isinstance(data, np.memmap):
        return True
    return not isinstance(data, np.ndarray) and hasattr(data, "shape") and hasattr(data, "dtype") \
        and hasattr(data, "__getitem__") and not hasattr(data, "numpy")


def sample_rows(data: Any, rows: int = PERCENTILE_ROWS) -> np.ndarray:
    """Evenly spaced rows of a lazy source (for percentiles), as one in-memory array."""
    index = np.unique(np.linspace(0, len(data) - 1, min(rows, len(data))).round().astype(np.int64))
    return np.asarray(data[index])


class TiffPages:
    """The pages of a multi-page TIFF of equal shape as rows (N, Y, X[, S]), decoded only when asked.

    Only uncompressed and zlib/deflate pages are read here (tifffile alone); the
    file stays open for the source's life (one handle, guarded by a lock, since a
    training worker and a preview may read concurrently).
    """

    def __init__(self, path: str | os.PathLike):
        import tifffile

        self.path = Path(path)
        try:
            self._tif = tifffile.TiffFile(self.path)
            pages = self._tif.pages
            first = pages[0]
            self.page_shape, self.dtype = tuple(first.shape), np.dtype(first.dtype)
            self._count = len(pages)
        except Exception as err:
            raise DataError(f"{self.path.name} is not a readable TIFF (it may be truncated or damaged).") from err
        self.shape = (self._count, *self.page_shape)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index) -> np.ndarray:
        rows = np.atleast_1d(np.asarray(index, dtype=np.int64))
        out = np.empty((len(rows), *self.page_shape), self.dtype)
        with self._lock:
            for i, row in enumerate(rows):
                page = self._tif.pages[int(row)]
                if tuple(page.shape) != self.page_shape:
                    raise DataError(f"Page {row} of {self.path.name} has another size than the first page.")
                out[i] = page.asarray()
        return out

    def close(self) -> None:
        self._tif.close()


class ZarrRows:
    """A zarr array as rows: integer-array indexing through zarr's orthogonal selection."""

    def __init__(self, array: Any):
        self.array = array
        self.shape, self.dtype = tuple(array.shape), np.dtype(array.dtype)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index) -> np.ndarray:
        rows = np.atleast_1d(np.asarray(index, dtype=np.int64))
        unique, inverse = np.unique(rows, return_inverse=True)
        return np.asarray(self.array.oindex[unique.tolist()])[inverse]


def open_zarr(path: str | os.PathLike) -> ZarrRows:
    """The first array of a zarr store, as rows; a plain sentence when zarr is not installed."""
    try:
        import zarr
    except ImportError:
        raise DataError(f"Reading {Path(path).name} needs the 'zarr' package (pip install zarr).") from None
    try:
        opened = zarr.open(str(path), mode="r")
    except Exception as err:
        raise DataError(f"{Path(path).name} is not a readable zarr store ({err}).") from None
    if not hasattr(opened, "shape"):  # a group: take its first array
        arrays = list(opened.array_keys())
        if not arrays:
            raise DataError(f"{Path(path).name} holds no zarr array.")
        opened = opened[arrays[0]]
    return ZarrRows(opened)


def lazy_tiff_if_large(path: str | os.PathLike, limit: int) -> TiffPages | None:
    """A :class:`TiffPages` source for a plain multi-page TIFF that would decode to more than ``limit``
    bytes (it cannot be loaded whole, but can be trained on page by page); None otherwise."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            ours = bool(tif.imagej_metadata and "napari_biogan" in tif.imagej_metadata)
            total = int(np.prod(series.shape, dtype=np.float64)) * np.dtype(series.dtype).itemsize
            pages = len(tif.pages)
            page_bytes = int(np.prod(tif.pages[0].shape, dtype=np.float64)) * np.dtype(series.dtype).itemsize
    except Exception:
        return None  # the normal loader gives the plain sentence
    if ours or pages < 2 or total <= limit or page_bytes * PERCENTILE_ROWS > limit:
        return None
    return TiffPages(path)
