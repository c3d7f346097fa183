"""Training inputs from what users have: layer arrays or paths, one loader per input kind.

The CLI (``--data``, ``--input NAME=PATH``) and the Train widget's pickers both
come here, so a folder, a TIFF or an ``.npy`` means the same thing in both.

- ``image``: a TIFF file, a folder of TIFFs, a ``.npy`` (memory-mapped: only the
  rows of a batch are read), a ``.zarr`` store (read lazily) or ``.npz``; a multi-page
  TIFF too big for memory is read page by page; for video families a multi-page TIFF is
  one time-lapse or (N, T, Y, X) clips, a folder of 2D frames one time-lapse and a
  folder of 3D stacks one clip per file. A folder whose sub-folders hold the
  images gives the ``class`` input too (one class per sub-folder, in name order).
- ``labels``: an integer TIFF stack, a folder of label images (TIFF or PNG), or ``.npy``.
- ``class``: integers per sample (array), or from class sub-folders of the image folder.
- ``attributes``: a CSV table; with a ``file`` column and an image folder its rows
  follow the files' order, otherwise rows are taken in order.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..core.contract import ATTRIBUTES, CLASS, IMAGE, LABELS
from ..core.errors import DataError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")


def load_training_inputs(family, config, sources: dict[str, Any]) -> dict[str, Any]:
    """Raw training inputs by name for ``family.prepare_data``: every input the family trains on.

    ``sources`` maps input names to arrays (from layers) or paths; missing inputs
    get one sentence naming them.
    """
    loaded: dict[str, Any] = {}
    class_names: list[str] = []
    files: list[str] = []
    wanted = [i for i in family.inputs(config) if i.train]
    for spec in wanted:
        value = sources.get(spec.name)
        if spec.kind == IMAGE:
            if value is None:
                raise DataError(f"Training needs '{spec.name}' ({spec.help or 'images'}).")
            if _is_path(value) and _class_folders(Path(value)):
                loaded[spec.name], classes, class_names, files = load_class_folders(Path(value), family)
                loaded["_classes"] = classes
            else:
                loaded[spec.name] = load_image_source(value, family)
                files = _file_names(value)
    for spec in wanted:
        if spec.kind == IMAGE:
            continue
        value = sources.get(spec.name)
        if spec.kind == CLASS and value is None and "_classes" in loaded:
            loaded[spec.name] = loaded["_classes"]
            continue
        if value is None:
            what = {LABELS: "a Labels layer or a folder of masks", CLASS: "class sub-folders of the image folder",
                    ATTRIBUTES: "an attributes CSV"}.get(spec.kind, "data")
            raise DataError(f"Training needs '{spec.name}': {spec.help or what}.")
        if spec.kind == LABELS:
            loaded[spec.name] = load_labels_source(value)
        elif spec.kind == CLASS:
            loaded[spec.name] = np.asarray(value, dtype=np.int64)
        elif spec.kind == ATTRIBUTES:
            loaded[spec.name] = read_attributes(value, files) if _is_path(value) else value
        else:
            loaded[spec.name] = value
    loaded.pop("_classes", None)
    if class_names:
        loaded["class_names"] = class_names
    return loaded


def describe_sources(sources: dict[str, Any]) -> str:
    """One line for the model card: where each input came from."""
    parts = []
    for name, value in sources.items():
        if value is None:
            continue
        parts.append(f"{name}: {value}" if _is_path(value) else f"{name}: array {tuple(np.shape(value))}")
    return "; ".join(parts)


# -- one loader per kind ---------------------------------------------------------------------------------

def load_image_source(value: Any, family) -> Any:
    """Images or videos from an array or a path (see the module docstring); ``.npy`` stays on disk."""
    if not _is_path(value):
        return value
    path = Path(value)
    if not path.exists():
        raise DataError(f"No data at {path}.")
    if path.suffix == ".npy":
        return _load_npy(path)
    if path.suffix == ".zarr":
        from .lazy import open_zarr

        return open_zarr(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            if not npz.files:
                raise DataError(f"{path.name} holds no arrays.")
            key = "x_train" if "x_train" in npz.files else npz.files[0]
            return npz[key]
    from .tiff_io import list_tiffs, load_image_stack, load_training_images

    if not family.is_video:
        if path.is_file():
            from .lazy import lazy_tiff_if_large
            from .tiff_io import max_decoded_bytes

            pages = lazy_tiff_if_large(path, max_decoded_bytes())
            if pages is not None:  # bigger than memory: trained on page by page
                return pages
        return load_training_images(path)
    if path.is_dir():
        stacks = [load_image_stack(file) for file in list_tiffs(path)]
        if stacks and stacks[0].ndim == 2:  # single frames: one time-lapse
            return load_image_stack(path)
        if len({s.shape for s in stacks}) > 1:
            raise DataError(f"The TIFF stacks in {path.name} have different shapes; crop them to one size.")
        return np.stack(stacks)
    return load_image_stack(path)


def load_labels_source(value: Any) -> np.ndarray:
    """Integer label images (N, *spatial) from an array or a TIFF/PNG file or folder."""
    if not _is_path(value):
        labels = np.asarray(value)
    else:
        path = Path(value)
        if not path.exists():
            raise DataError(f"No labels at {path}.")
        if path.suffix == ".npy":
            labels = _load_npy(path, mmap=False)
        elif path.is_dir():
            files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                           key=lambda p: _natural(p.name))
            if not files:
                raise DataError(f"{path} holds no TIFF or PNG label images.")
            planes = [_read_plane(f) for f in files]
            if len({p.shape for p in planes}) > 1:
                raise DataError(f"The label images in {path.name} have different sizes.")
            labels = np.stack(planes)
        else:
            labels = _read_plane(path, stack=True)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise DataError("Labels must be whole numbers (0 = background).")
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "uib":
        raise DataError(f"Labels must be integers, not {labels.dtype}.")
    if labels.size and labels.min() < 0:
        raise DataError("Labels must not be negative (0 = background).")
    return labels


def load_class_folders(folder: Path, family) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Images from class sub-folders: (images, class index per image, class names, file names)."""
    images, classes, names, files = [], [], [], []
    for index, sub in enumerate(_class_folders(folder)):
        data = load_image_source(sub, family)
        images.append(np.asarray(data))
        classes += [index] * len(data)
        names.append(sub.name)
        files += _file_names(sub)
    shapes = {i.shape[1:] for i in images}
    if len(shapes) > 1:
        raise DataError(f"The class folders of {folder.name} hold images of different sizes.")
    return np.concatenate(images), np.asarray(classes, np.int64), names, files


def read_attributes(path: str | Path, files: list[str] | None = None) -> dict[str, np.ndarray]:
    """A CSV table as columns (numbers where every value is a number, else text).

    With a ``file`` column and ``files`` (the images' names, in training order),
    rows are matched to the files by name (with or without suffix).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"Cannot read {path.name} as a CSV table ({err}).") from None
    if not rows:
        raise DataError(f"{path.name} has no rows.")
    if files and "file" in rows[0]:
        by_name = {}
        for row in rows:
            key = str(row["file"]).strip()
            by_name[key] = by_name[Path(key).stem] = row
        missing = [f for f in files if f not in by_name and Path(f).stem not in by_name]
        if missing:
            raise DataError(f"{path.name} has no row for {len(missing)} image(s), e.g. {missing[0]}.")
        rows = [by_name.get(f) or by_name[Path(f).stem] for f in files]
    columns = {}
    for key in rows[0]:
        values = [row.get(key, "") for row in rows]
        try:
            columns[key] = np.asarray([float(v) for v in values])
        except (TypeError, ValueError):
            columns[key] = np.asarray(values, dtype=object)
    return columns


# -- helpers ---------------------------------------------------------------------------------------------

def _is_path(value: Any) -> bool:
    return isinstance(value, (str, Path))


def _class_folders(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    subs = sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    has_files = any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file())
    return subs if subs and not has_files else []


def _file_names(value: Any) -> list[str]:
    if _is_path(value) and Path(value).is_dir():
        return [p.name for p in sorted(Path(value).iterdir(), key=lambda p: _natural(p.name))
                if p.suffix.lower() in IMAGE_SUFFIXES]
    return []


def _natural(name: str):
    from .tiff_io import natural_key

    return natural_key(name)


def _load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"Cannot read {path.name} as a numeric .npy array ({err}).") from None
    if array.dtype.kind not in "uifb":
        raise DataError(f"{path.name} holds {array.dtype} values, not numbers.")
    return array


def _read_plane(path: Path, stack: bool = False) -> np.ndarray:
    if path.suffix.lower() == ".png":
        from PIL import Image

        try:
            with Image.open(path) as image:
                return np.asarray(image)
        except OSError as err:
            raise DataError(f"Cannot read {path.name} as a PNG image.") from err
    from .tiff_io import load_image_stack

    data = load_image_stack(path)
    if not stack and data.ndim != 2:
        raise DataError(f"{path.name} is not a single label image; its shape is {data.shape}.")
    return data
