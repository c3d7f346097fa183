"""Read users' TIFFs as microscopes and tools write them.

- one file: multi-page stacks and ImageJ hyperstacks in their own axes (tifffile's
  first series), uncompressed or deflate/zlib-compressed (tifffile, no extra
  package); LZW and PackBits need ``imagecodecs`` in tifffile >= 2023, so when it
  is missing those files are decoded page by page with Pillow's libtiff instead;
- a folder of single-frame TIFFs (``t000.tif``, ``t001.tif``, ..., as the Cell
  Tracking Challenge names them) stacked in natural name order (t2 before t10).

Everything a user can get wrong (no such path, empty folder, no TIFFs, truncated
or damaged file, frames of different shapes, non-numeric pixels) is a
:class:`DataError` with one plain sentence.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from ..core.errors import DataError

TIFF_SUFFIXES = (".tif", ".tiff")
#: axes letters tifffile uses for channels / samples
CHANNEL_AXES = "CS"
_DAMAGE_WORDS = ("invalid", "corrupt", "truncat", "failed")


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: t2 < t10 (Cell Tracking Challenge names)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_tiffs(folder: str | os.PathLike) -> list[Path]:
    """The TIFF files of a folder in natural order; DataError if it is empty or has none."""
    folder = Path(folder)
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DataError(f"The folder {folder} is empty.")
    files = sorted((p for p in entries if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise DataError(f"The folder {folder} has no TIFF files (.tif or .tiff).")
    return files


def read_tiff(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """One TIFF file as (array, axes), axes as tifffile names them (e.g. "TZCYX", "YX", "YXS")."""
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"No TIFF file at {path}.")
    size = path.stat().st_size
    warnings = _TiffWarnings()
    try:
        with warnings, tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
            pages = [p for p in series.pages if p is not None]
            _check_extent(path, pages, size)
            try:
                data = series.asarray()
            except (KeyError, ValueError) as err:
                if "imagecodecs" not in str(err):
                    raise
                data = _read_with_pillow(path, pages, shape, str(err))
    except DataError:
        raise
    except Exception as err:  # tifffile, struct, zlib and OS errors all mean: this file cannot be read
        raise DataError(f"{path.name} is not a readable TIFF (it may be truncated or damaged).") from err
    if warnings.damaged:
        raise DataError(f"{path.name} looks truncated or damaged: {warnings.damaged[0]}.")
    return _numeric(data, path.name), axes


def load_image_stack(path: str | os.PathLike) -> np.ndarray:
    """A TIFF file in its own axes, or a folder of TIFF frames stacked on a new first axis (name order)."""
    path = Path(path)
    if path.is_dir():
        files = list_tiffs(path)
        return _stack([read_tiff(file)[0] for file in files], files)
    if not path.exists():
        raise DataError(f"No file or folder at {path}.")
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise DataError(f"{path.name} is not a TIFF file (.tif or .tiff).")
    return read_tiff(path)[0]


def load_training_images(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Images for a 2D family: (N, Y, X), or (N, C, Y, X) when the TIFFs have channels.

    A folder of 2D TIFFs gives one image per file; a stack (any leading axes:
    T, Z, pages) gives one image per plane; a folder of stacks gives all their
    planes. ``size`` = (Y, X) resizes every image, so files of different sizes
    can be mixed; without it they must all have the same size.
    """
    path = Path(path)
    if path.is_dir():
        files = list_tiffs(path)
        parts = [_as_planes(*read_tiff(file), file.name, size) for file in files]
        _same_plane_shape(parts, files)
        images = np.concatenate(parts)
    else:
        if not path.exists():
            raise DataError(f"No file or folder at {path}.")
        images = _as_planes(*read_tiff(path), path.name, size)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    return images


# -- helpers -------------------------------------------------------------------------------

class _TiffWarnings(logging.Handler):
    """Collects tifffile's logged warnings: it logs, rather than raises, for a cut-off page chain."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.damaged: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(word in message.lower() for word in _DAMAGE_WORDS):
            self.damaged.append(message.split("> ", 1)[-1])

    def __enter__(self):
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("tifffile").removeHandler(self)
        return False


def _check_extent(path: Path, pages, size: int) -> None:
    """Every page's pixel data must lie inside the file: a cut-off download fails here, clearly."""
    for page in pages:
        offsets = getattr(page, "dataoffsets", ()) or ()
        counts = getattr(page, "databytecounts", ()) or ()
        for offset, count in zip(offsets, counts):
            if offset + count > size:
                raise DataError(f"{path.name} is truncated: its pixel data ends after the end of the file.")


def _read_with_pillow(path: Path, pages, shape: tuple[int, ...], reason: str) -> np.ndarray:
    """Decode LZW/PackBits pages with Pillow (libtiff) when tifffile lacks ``imagecodecs``."""
    try:
        from PIL import Image, ImageSequence
    except ImportError as err:
        raise DataError(f"{path.name} is compressed in a way that needs the 'imagecodecs' package "
                        "(pip install imagecodecs).") from err
    try:
        with Image.open(path) as image:
            planes = [np.array(frame) for _, frame in zip(range(len(pages)), ImageSequence.Iterator(image))]
        data = np.stack(planes)
        return data.reshape(shape)
    except Exception as err:
        raise DataError(f"{path.name} could not be decoded without the 'imagecodecs' package "
                        "(pip install imagecodecs).") from err


def _numeric(data: np.ndarray, name: str) -> np.ndarray:
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype.kind not in "uif":
        raise DataError(f"{name} holds {data.dtype} pixels; only integer or real-valued images can be used.")
    if data.size == 0:
        raise DataError(f"{name} holds no pixels.")
    return data


def _stack(frames: list[np.ndarray], files: list[Path]) -> np.ndarray:
    first = frames[0].shape
    for frame, file in zip(frames, files):
        if frame.shape != first:
            raise DataError(f"Frames differ in shape: {file.name} is {frame.shape}, {files[0].name} is {first}.")
    return np.stack(frames)


def _as_planes(data: np.ndarray, axes: str, name: str, size) -> np.ndarray:
    """(..., [C], Y, X) in any axes order tifffile reports -> (N, C, Y, X)."""
    if len(axes) != data.ndim:  # defensive: tifffile always gives one letter per axis
        axes = "Q" * (data.ndim - 2) + "YX"
    if "Y" not in axes or "X" not in axes:
        raise DataError(f"{name} has no Y and X axes (axes {axes}).")
    channel_axes = [i for i, a in enumerate(axes) if a in CHANNEL_AXES]
    lead = [i for i, a in enumerate(axes) if a not in "YX" and a not in CHANNEL_AXES]
    order = lead + channel_axes + [axes.index("Y"), axes.index("X")]
    data = np.transpose(data, order)
    n = int(np.prod([data.shape[i] for i in range(len(lead))])) if lead else 1
    channels = int(np.prod(data.shape[len(lead):len(lead) + len(channel_axes)])) if channel_axes else 1
    planes = data.reshape(n, channels, *data.shape[-2:])
    if size is not None and tuple(planes.shape[-2:]) != tuple(size):
        planes = _resize(planes, tuple(size))
    return planes


def _resize(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=True).numpy()


def _same_plane_shape(parts: list[np.ndarray], files: list[Path]) -> None:
    first = parts[0].shape[1:]
    for part, file in zip(parts, files):
        if part.shape[1:] != first:
            raise DataError(f"Images differ in shape: {file.name} is {part.shape[1:]}, "
                            f"{files[0].name} is {first}; give a size to resize them all.")
