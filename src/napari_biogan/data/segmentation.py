"""Image / mask pairs for segmentation, as microscopes and annotation tools write them, and BBBC039.

Folders (:func:`load_pairs`): an image folder (TIFF or PNG, one image per file) and a
mask folder matched to it by file stem (``a.tif`` <-> ``a.png``, ``a_mask.png``,
``a_label.tif``...). A mask is one of:

- a label image: 0 = background, 1..K-1 = classes (TIFF or PNG, any integer type);
- an RGB(A) PNG with the label in channel 0 (BBBC039's layout);
- one mask per class: a sub-folder per class (``masks/<class>/<stem>.png``, nonzero =
  that class; classes in the order of ``class_names`` or of the sub-folder names, the
  first being label 1; where masks overlap the later class wins), or a stacked TIFF
  (K-1, Y, X) of binary masks, one plane per class.

Every mistake gets one sentence (:class:`DataError`): an image without a mask, image
and mask of different sizes, label values outside the declared classes, masks with
no foreground at all, images of different sizes in one folder.

BBBC039 (:func:`load_bbbc039`): channel 0 of the shipped RGBA masks is not a class
map but a colour-coded INSTANCE map (nuclei numbered 1, 2, 3 so that touching nuclei
differ: values 2 and 3 are whole nuclei next to a nucleus of value 1, checked on the
ten fields). So the loader labels each value's connected regions as instances and
derives three classes the way Caicedo et al. (2019) did for their U-Net: 0 background,
1 interior, 2 boundary (the inner 2-pixel rim of every nucleus, including where two
nuclei touch). Interior plus boundary is exactly the nucleus pixels, and the interiors
of touching nuclei are 4 pixels apart, so :func:`instances_from_classes` gets the
nuclei back. A separate "touching boundary" class is not kept: in the instance step it
is a boundary like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import DataError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
#: suffixes of mask names that still match the image's stem ("a_mask.png" is the mask of "a.tif")
MASK_TAGS = ("", "_mask", "_masks", "_label", "_labels", "-mask", "-label", "_seg")
#: BBBC039 fields (file name prefixes): a fixed split by field, wells kept together (A16 s2 and s3 both train)
BBBC039_TRAIN = ("IXMtest_A02_s1", "IXMtest_A06_s6", "IXMtest_A12_s7", "IXMtest_A16_s2", "IXMtest_A16_s3",
                 "IXMtest_A20_s4")
BBBC039_TEST = ("IXMtest_A09_s1", "IXMtest_A15_s5", "IXMtest_A18_s1", "IXMtest_A21_s1")
BBBC039_CLASSES = ("background", "interior", "boundary")
BBBC039_LICENCE = "CC0 1.0; Caicedo et al., Cytometry A 2019; Ljosa et al., Nat Methods 2012 (BBBC039v1)"


@dataclass
class SegmentationPairs:
    """Images (N, Y, X) or (N, C, Y, X), class maps (N, Y, X) and the file stems they came from."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    class_names: tuple[str, ...] = ()
    instances: np.ndarray | None = None  # (N, Y, X) int32 where known (BBBC039)


# -- users' folders ---------------------------------------------------------------------------------------

def load_pairs(image_folder: str | Path, mask_folder: str | Path, classes: int | None = None,
               class_names: Sequence[str] | None = None) -> SegmentationPairs:
    """Images and their class maps from two folders (see the module docstring).

    ``classes``: the number of classes including background; label values at or
    above it are refused. ``class_names`` order the per-class sub-folders.
    """
    image_folder, mask_folder = Path(image_folder), Path(mask_folder)
    for folder, what in ((image_folder, "image"), (mask_folder, "mask")):
        if not folder.is_dir():
            raise DataError(f"The {what} folder {folder} does not exist.")
    image_files = _image_files(image_folder)
    if not image_files:
        raise DataError(f"{image_folder} holds no TIFF or PNG images.")
    per_class = _class_subfolders(mask_folder, class_names)
    masks = {} if per_class else _masks_by_stem(mask_folder)
    images, labels = [], []
    for path in image_files:
        image = read_image(path)
        if per_class:
            label = _per_class_mask(per_class, path, image.shape[-2:])
        else:
            mask_path = masks.get(path.stem) or masks.get(path.stem.lower())
            if mask_path is None:
                raise DataError(f"The image {path.name} has no mask in {mask_folder} "
                                f"(looked for {path.stem}.png/.tif, {path.stem}_mask.png...).")
            label = read_mask(mask_path)
        if label.shape != image.shape[-2:]:
            raise DataError(f"The mask of {path.name} is {label.shape[0]}x{label.shape[1]} but the image is "
                            f"{image.shape[-2]}x{image.shape[-1]}; they must be the same size.")
        images.append(image)
        labels.append(label)
    shapes = {i.shape for i in images}
    if len(shapes) > 1:
        raise DataError(f"The images in {image_folder.name} have different sizes "
                        f"({', '.join(sorted('x'.join(map(str, s)) for s in shapes))}); crop them to one size.")
    names = [p.stem for p in image_files]
    labels_array = np.stack(labels)
    k = classes if classes is not None else (len(per_class) + 1 if per_class else int(labels_array.max()) + 1)
    check_labels(labels_array, k, names)
    if class_names is None:
        class_names = ["background"] + ([p.name for p in per_class] if per_class else
                                        [f"class {i}" for i in range(1, k)])
    return SegmentationPairs(np.stack(images), labels_array, names, tuple(class_names)[:k])


def check_labels(labels: np.ndarray, classes: int, names: Sequence[str] | None = None) -> None:
    """Refuse labels outside 0..classes-1 (naming the first image with such a value) or with no foreground."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise DataError("Labels must be whole numbers (0 = background, 1 and up = classes).")
    if labels.dtype.kind not in "uifb":
        raise DataError(f"Labels must be integers, not {labels.dtype}.")
    low, high = labels.min(initial=0), labels.max(initial=0)
    if low < 0 or high >= classes:
        bad = (labels < 0) | (labels >= classes)
        index = int(np.argmax(bad.reshape(len(labels), -1).any(1))) if labels.ndim > 2 else 0
        where = f" (first in {names[index]})" if names and index < len(names) else ""
        raise DataError(f"Label values must be 0 to {classes - 1} for {classes} classes, but the masks hold "
                        f"values from {low} to {high}{where}; set the number of classes or fix the masks.")
    if not np.any(labels > 0):
        raise DataError("The masks hold no foreground at all (every label is 0 = background); "
                        "there is nothing to learn to segment.")


def read_image(path: Path) -> np.ndarray:
    """One image as (Y, X) or (C, Y, X), any numeric dtype."""
    if path.suffix.lower() == ".png":
        array = _read_png(path)
        return np.moveaxis(array, -1, 0) if array.ndim == 3 else array
    from .tiff_io import read_tiff

    data, axes = read_tiff(path)
    data = np.asarray(data)
    if data.ndim == 2:
        return data
    if data.ndim == 3:
        channel = next((i for i, a in enumerate(axes) if a in "CS"), 0)
        return np.moveaxis(data, channel, 0)
    raise DataError(f"{path.name} is not a single 2D image; its shape is {data.shape}.")


def read_mask(path: Path) -> np.ndarray:
    """One mask as a class map (Y, X): a label image, channel 0 of an RGB(A) image, or per-class planes."""
    if path.suffix.lower() == ".png":
        array = _read_png(path)
        return array[..., 0] if array.ndim == 3 else array
    from .tiff_io import read_tiff

    data, axes = read_tiff(path)
    data = np.asarray(data)
    if data.ndim == 2:
        return data
    if data.ndim == 3 and axes[-1] in "S" and data.shape[-1] in (3, 4):
        return data[..., 0]  # an RGB(A) TIFF: the label in channel 0, like the PNGs
    if data.ndim == 3:  # one binary plane per class, the first plane being class 1
        if not np.isin(data, (0, 1, 255, True, False)).all():
            raise DataError(f"{path.name} has {len(data)} planes; one mask per class must be 0 or 1 (or 255).")
        label = np.zeros(data.shape[1:], np.int64)
        for index, plane in enumerate(data, start=1):
            label[plane > 0] = index
        return label
    raise DataError(f"{path.name} is not a mask image; its shape is {data.shape}.")


# -- BBBC039 ---------------------------------------------------------------------------------------------

def load_bbbc039(root: str | Path, fields: Sequence[str] | str | None = None,
                 boundary_width: int = 2) -> SegmentationPairs:
    """BBBC039 fields as images (N, 520, 696) uint16, 3-class labels, instances and field names.

    ``fields``: "train" / "test" (the fixed split :data:`BBBC039_TRAIN` / :data:`BBBC039_TEST`),
    a list of field names (prefixes of the file names), or None for every field.
    """
    root = Path(root)
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DataError(f"{root} is not a BBBC039 folder (it needs images/ and masks/).")
    wanted = {"train": BBBC039_TRAIN, "test": BBBC039_TEST}.get(fields, fields) if isinstance(fields, str) \
        else fields
    if isinstance(wanted, str):
        raise DataError(f"Unknown BBBC039 split '{fields}'; use 'train', 'test' or a list of fields.")
    files = _image_files(images_dir)
    if wanted is not None:
        chosen = [f for f in files if any(f.stem.startswith(prefix) for prefix in wanted)]
        missing = [p for p in wanted if not any(f.stem.startswith(p) for f in files)]
        if missing:
            raise DataError(f"{images_dir} has no field {missing[0]}.")
        files = chosen
    images, labels, instances, names = [], [], [], []
    for path in files:
        mask_path = masks_dir / f"{path.stem}.png"
        if not mask_path.is_file():
            raise DataError(f"The image {path.name} has no mask in {masks_dir}.")
        image = read_image(path)
        colours = read_mask(mask_path)
        if colours.shape != image.shape:
            raise DataError(f"The mask of {path.name} does not match its image in size.")
        inst = instances_from_colours(colours)
        images.append(image)
        instances.append(inst)
        labels.append(classes_from_instances(inst, boundary_width))
        names.append(field_name(path.stem))
    if not images:
        raise DataError(f"{images_dir} holds no BBBC039 fields.")
    return SegmentationPairs(np.stack(images), np.stack(labels), names, BBBC039_CLASSES, np.stack(instances))


def field_name(stem: str) -> str:
    """'IXMtest_A02_s1_w1051DAA7C-...' -> 'IXMtest_A02_s1' (well and site)."""
    return "_".join(stem.split("_")[:3])


def instances_from_colours(colours: np.ndarray) -> np.ndarray:
    """Instance ids (int32) from a colour-coded map: connected regions of each nonzero value."""
    from scipy import ndimage

    instances = np.zeros(colours.shape, np.int32)
    offset = 0
    for value in np.unique(colours):
        if value == 0:
            continue
        regions, count = ndimage.label(colours == value)
        instances[regions > 0] = regions[regions > 0] + offset
        offset += count
    return instances


def classes_from_instances(instances: np.ndarray, boundary_width: int = 2) -> np.ndarray:
    """0 background, 1 interior, 2 boundary: the inner ``boundary_width``-pixel rim of every instance
    (next to background or to another instance)."""
    from scipy import ndimage

    instances = np.asarray(instances)
    cross = ndimage.generate_binary_structure(2, 1)
    # a pixel is on an edge when a 4-neighbour has another id (background included); image borders are not edges
    padded = np.pad(instances, 1, mode="edge")
    edge = np.zeros(instances.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy:dy + instances.shape[0], dx:dx + instances.shape[1]] != instances
    edge &= instances > 0
    rim = ndimage.binary_dilation(edge, cross, iterations=max(boundary_width - 1, 0)) if boundary_width > 1 \
        else edge
    labels = np.where(instances > 0, 1, 0).astype(np.uint8)
    labels[rim & (instances > 0)] = 2
    return labels


# -- helpers ---------------------------------------------------------------------------------------------

def _image_files(folder: Path) -> list[Path]:
    from .tiff_io import natural_key

    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: natural_key(p.name))


def _masks_by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in _image_files(folder):
        stem = path.stem
        for tag in sorted(MASK_TAGS, key=len, reverse=True):
            if tag and stem.lower().endswith(tag):
                stem = stem[:-len(tag)]
                break
        found.setdefault(stem, path)
        found.setdefault(stem.lower(), path)
    return found


def _class_subfolders(folder: Path, class_names: Sequence[str] | None) -> list[Path]:
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        return []
    if class_names is not None:
        by_name = {p.name: p for p in subs}
        missing = [n for n in list(class_names)[1:] if n not in by_name]
        if missing:
            raise DataError(f"The mask folder {folder} has no sub-folder for the class '{missing[0]}'.")
        return [by_name[n] for n in list(class_names)[1:]]
    return subs


def _per_class_mask(folders: list[Path], image: Path, shape) -> np.ndarray:
    label = np.zeros(tuple(shape), np.int64)
    for index, folder in enumerate(folders, start=1):
        mask_path = _masks_by_stem(folder).get(image.stem)
        if mask_path is None:
            raise DataError(f"The image {image.name} has no mask in the class folder {folder.name}.")
        plane = read_mask(mask_path)
        if plane.shape != tuple(shape):
            raise DataError(f"The {folder.name} mask of {image.name} is {plane.shape[0]}x{plane.shape[1]} but the "
                            f"image is {shape[0]}x{shape[1]}; they must be the same size.")
        label[plane > 0] = index
    return label


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image)
    except OSError as err:
        raise DataError(f"Cannot read {path.name} as a PNG image.") from err
