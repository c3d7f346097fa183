"""Read users' TIFFs as microscopes and tools write them.

- one file: multi-page stacks and ImageJ hyperstacks in their own axes (tifffile's
  first series), uncompressed or deflate/zlib-compressed (tifffile, no extra
  package); LZW and PackBits need ``imagecodecs`` in tifffile >= 2023, so when it
  is missing those files are decoded page by page with Pillow's libtiff instead;
- a folder of single-frame TIFFs (``t000.tif``, ``t001.tif``, ..., as the Cell
  Tracking Challenge names them) stacked in natural name order (t2 before t10).

TIFFs written by napari-biogan (``core.export.write_tiff``) come back in the axes they
were written with (e.g. clips "NTYX"), not in ImageJ's TZCYX order, which has no N.

Everything a user can get wrong (no such path, empty folder, no TIFFs, truncated
or damaged file, frames of different shapes, non-numeric pixels, a file that would
not fit in memory once decoded) is a :class:`DataError` with one plain sentence.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from ..core.export import from_hyperstack, provenance_of

TIFF_SUFFIXES = (".tif", ".tiff")
#: axes letters tifffile uses for channels / samples
CHANNEL_AXES = "CS"
_DAMAGE_WORDS = ("invalid", "corrupt", "truncat", "failed")
#: environment variable that sets the most bytes a loader may decode (tests, shared machines)
MAX_BYTES_ENV = "NAPARI_BIOGAN_MAX_BYTES"


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


def read_tiff(path: str | os.PathLike, max_bytes: int | None = None) -> tuple[np.ndarray, str]:
    """One TIFF file as (array, axes).

    Axes as tifffile names them (e.g. "TZCYX", "YX", "YXS"), or, for a TIFF napari-biogan
    wrote, the axes it was written with (e.g. "NTYX"). A file that would decode to more
    than ``max_bytes`` (default :func:`max_decoded_bytes`) is refused before decoding.
    """
    data, axes, _ = _read(Path(path), max_bytes)
    return data, axes


def _read(path: Path, max_bytes: int | None) -> tuple[np.ndarray, str, bool]:
    """:func:`read_tiff` and whether the file carries napari-biogan's recorded axes."""
    import tifffile

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
            # from the headers alone: a few MB of zlib can declare many GB of zeros
            _check_memory(path.name, int(np.prod(shape, dtype=np.float64)) * np.dtype(series.dtype).itemsize,
                          max_bytes)
            written_axes = str(provenance_of(tif).get("axes_in", "")).upper()
            full_shape = tuple(series.get_shape(False))
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
    if written_axes:  # ours: ImageJ's T/Z back to N/T as written (see core.export.to_hyperstack)
        data, axes = from_hyperstack(data.reshape(full_shape), written_axes, path.name), written_axes
    return _numeric(data, path.name), axes, bool(written_axes)


def max_decoded_bytes() -> int:
    """The most bytes one load may decode: $NAPARI_BIOGAN_MAX_BYTES, else half the available memory.

    Half, because a loaded stack is usually converted (to float, to a tensor) at least once.
    """
    value = os.environ.get(MAX_BYTES_ENV, "").strip()
    if value:
        try:
            return int(float(value))
        except ValueError:
            raise DataError(f"{MAX_BYTES_ENV} must be a number of bytes, not '{value}'.") from None
    available = _available_memory()
    return available // 2 if available else 1 << 62  # unknown: no limit rather than a wrong one


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation, where the system says."""
    try:  # Linux: MemAvailable counts reclaimable page cache, which MemFree (SC_AVPHYS_PAGES) does not
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def load_image_stack(path: str | os.PathLike) -> np.ndarray:
    """A TIFF file in its own axes, or a folder of TIFF frames stacked on a new first axis (name order).

    A TIFF napari-biogan wrote comes back in its written axes (clips: (N, T, Y, X)), with a
    single channel axis dropped; one with several channels is refused (training uses one).
    """
    path = Path(path)
    if path.is_dir():
        files = list_tiffs(path)
        return _stack([_single_channel(*read) for read in _read_all(files)], files)
    if not path.exists():
        raise DataError(f"No file or folder at {path}.")
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise DataError(f"{path.name} is not a TIFF file (.tif or .tiff).")
    data, axes, ours = _read(path, None)
    return _single_channel(data, axes, path.name, ours)


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
        parts = [_as_planes(data, axes, name, size) for data, axes, name, _ in _read_all(files)]
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

def _check_memory(name: str, nbytes: int, max_bytes: int | None = None) -> None:
    """Refuse, before decoding, a file whose pixels would not fit in the memory that can be spared."""
    limit = max_decoded_bytes() if max_bytes is None else max_bytes
    if nbytes > limit:
        raise DataError(f"{name} would take {nbytes / 1e9:.3g} GB of memory once decoded, more than the "
                        f"{limit / 1e9:.3g} GB that can be spared; crop it or split it into smaller files.")


def _read_all(files: list[Path]) -> list[tuple[np.ndarray, str, str, bool]]:
    """(data, axes, name, ours) of each file; the memory limit holds for all of them together."""
    limit, used, out = max_decoded_bytes(), 0, []
    for file in files:
        data, axes, ours = _read(file, max_bytes=limit - used)
        used += data.nbytes
        out.append((data, axes, file.name, ours))
    return out


def _single_channel(data: np.ndarray, axes: str, name: str, ours: bool) -> np.ndarray:
    """Our TIFFs come back without a channel axis of 1; several channels are refused.

    A stack here is (T, Y, X) or (N, T, Y, X) for video training and clip cropping, which
    have no place for channels. Other TIFFs stay as tifffile reads them (it drops axes of 1).
    """
    if not ours or "C" not in axes:
        return data
    channels = data.shape[axes.index("C")]
    if channels > 1:
        raise DataError(f"{name} has {channels} channels; only single-channel stacks can be used here, "
                        "so save one channel per file.")
    return np.squeeze(data, axis=axes.index("C"))


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
