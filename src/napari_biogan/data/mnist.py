"""MNIST digits from the files kept beside the project (no download at run time).

Training digits: ``mnist_train.npz`` (``x_train`` (60000, 28, 28) uint8, ``y_train``;
ordered by class, so shuffle before splitting). Test digits: the original
``t10k-images-idx3-ubyte.gz`` / ``t10k-labels-idx1-ubyte.gz`` files.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ..core.errors import DataError

TRAIN_FILE = "mnist_train.npz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"


def default_mnist_dir() -> Path:
    """$NAPARI_BIOGAN_MNIST, else ``mnist`` in the shared data folder (``$NAPARI_BIOGAN_DATA`` or ``../shared/data``)."""
    if os.environ.get("NAPARI_BIOGAN_MNIST"):
        return Path(os.environ["NAPARI_BIOGAN_MNIST"])
    from .shared import shared_data_dir

    return shared_data_dir("mnist")


def _folder(path: str | os.PathLike | None) -> Path:
    folder = Path(path) if path is not None else default_mnist_dir()
    return folder.parent if folder.is_file() else folder


def load_mnist_train(path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 60,000 training digits: x uint8 (N, 28, 28), y int64 (N,). ``path``: the folder or the .npz."""
    folder = _folder(path)
    file = Path(path) if path is not None and Path(path).is_file() else folder / TRAIN_FILE
    if not file.is_file():
        raise DataError(f"The MNIST training digits are not at {file}; put {TRAIN_FILE} there or give its path.")
    try:
        with np.load(file) as archive:
            x, y = archive["x_train"], archive["y_train"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{file.name} is not an MNIST archive with x_train and y_train.") from err
    return _checked(x, y, file.name)


def load_mnist_test(path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 test digits from the original idx.gz files: x uint8 (N, 28, 28), y int64 (N,)."""
    folder = _folder(path)
    images, labels = folder / TEST_IMAGES, folder / TEST_LABELS
    for file in (images, labels):
        if not file.is_file():
            raise DataError(f"The MNIST test file {file.name} is not in {folder}.")
    x = _read_idx(images, ndim=3)
    y = _read_idx(labels, ndim=1)
    return _checked(x, y, images.name)


def _read_idx(file: Path, ndim: int) -> np.ndarray:
    """An idx file (LeCun's format): magic 0x0000 0x08 ndim, big-endian int32 sizes, uint8 data."""
    try:
        with gzip.open(file, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{file.name} is not a readable gzip file.") from err
    if len(raw) < 4 + 4 * ndim or raw[2] != 0x08 or raw[3] != ndim:
        raise DataError(f"{file.name} is not an MNIST idx file of unsigned bytes with {ndim} dimension(s).")
    shape = tuple(int(v) for v in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    start = 4 + 4 * ndim
    if len(raw) - start != int(np.prod(shape)):
        raise DataError(f"{file.name} is truncated.")
    return np.frombuffer(raw, np.uint8, offset=start).reshape(shape).copy()


def _checked(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y):
        raise DataError(f"{name} does not hold 28x28 digits with one label each.")
    return x.astype(np.uint8, copy=False), y.astype(np.int64)
