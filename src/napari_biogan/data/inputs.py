"""Training inputs from what users have: layer arrays or paths, one loader per input kind.

The CLI (``--data``, ``--input NAME=PATH``) and the Train/Evaluate widgets' pickers all
come here, so a folder, a TIFF or an ``.npy`` means the same thing in each.

- ``image``: a TIFF file, a folder of TIFFs, a ``.npy`` (memory-mapped: only the
  rows of a batch are read), a ``.zarr`` store (read lazily) or ``.npz``; a multi-page
  TIFF too big for memory is read page by page; for video families a multi-page TIFF is
  one time-lapse or (N, T, Y, X) clips, a folder of 2D frames one time-lapse and a
  folder of 3D stacks one clip per file. A folder of 2D slices (PNG, JPEG, TIFF; read as
  grey by :func:`.mri.read_slice`). A NIfTI volume (``.nii``/``.nii.gz``) or a folder of
  them (sub-folders too, e.g. ADNI's): slices taken as the family's config says
  (``orientation``, ``slices``, ``slab``, ``slice_step``, ``size``; axial, the centre slice
  and 64 pixels when it says nothing), read by :mod:`.mri_volumes`. A folder whose
  sub-folders hold the images gives the ``class`` input too (one class per sub-folder, in
  name order) and, for an ``attributes`` input, a column of class names named after the
  control whose choices they are.
- ``labels``: an integer TIFF stack, a folder of label images (TIFF or PNG, matched to the
  images by file stem where their names are known), a folder of one mask per class
  (``masks/<class>/<stem>.png`` or ``masks/<stem>_<class>.png``), or ``.npy``.
- ``class``: integers per sample (array), or from class sub-folders of the image folder.
- ``attributes``: a table (CSV; XLS with pandas) read by :func:`.attributes.read_table`,
  matched to the images by a ``file`` column or a subject id column (``subject``,
  ``subject_id``, ``ptid``, ``id``...) through :func:`.attributes.match_rows`; slices of a
  volume take their volume's row (volumes without a row are left out) and a ``position``
  column (0..1 across the brain) when the table has none; without file names (a layer),
  rows are taken in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.contract import ATTRIBUTES, CLASS, IMAGE, LABELS
from ..core.errors import DataError
from .mri_volumes import is_nifti, nifti_files

#: 2D image files a folder of images or slices may hold
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
#: what a user's picture formats are read with Pillow (TIFF goes through tiff_io)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: columns a table's rows are matched to images by, the first found wins (case, spaces, _ and - ignored)
KEY_COLUMNS = ("file", "filename", "subject_id", "subject", "participant_id", "ptid", "scan_id", "scan", "id")


@dataclass
class Samples:
    """What the image loader learnt about each sample besides its pixels."""

    keys: list[str] = field(default_factory=list)  # its file (relative to the data folder); a slice: its volume
    classes: np.ndarray | None = None  # class index per sample (class sub-folders)
    class_names: list[str] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # values found with the images (slice position)
    volumes: bool = False  # slices of volumes: a volume without a table row is left out


def load_training_inputs(family, config, sources: dict[str, Any]) -> dict[str, Any]:
    """Raw training inputs by name for ``family.prepare_data``: every input the family trains on.

    ``sources`` maps input names to arrays (from layers) or paths; missing inputs
    get one sentence naming them.
    """
    loaded: dict[str, Any] = {}
    samples, image_name = Samples(), None
    wanted = [i for i in family.inputs(config) if i.train]
    for spec in wanted:
        if spec.kind != IMAGE:
            continue
        value = sources.get(spec.name)
        if value is None:
            raise DataError(f"Training needs '{spec.name}' ({spec.help or 'images'}).")
        loaded[spec.name], samples = load_images(value, family, config)
        image_name = spec.name
    count = len(loaded[image_name]) if image_name is not None else None
    for spec in wanted:
        if spec.kind == IMAGE:
            continue
        value = sources.get(spec.name)
        if spec.kind == CLASS and value is None and samples.classes is not None:
            loaded[spec.name] = samples.classes
            continue
        if spec.kind == ATTRIBUTES and value is None and (samples.columns or samples.classes is not None):
            loaded[spec.name] = found_columns(samples, family, config)
            continue
        if value is None:
            what = {LABELS: "a Labels layer or a folder of masks", CLASS: "class sub-folders of the image folder",
                    ATTRIBUTES: "an attributes CSV"}.get(spec.kind, "data")
            raise DataError(f"Training needs '{spec.name}': {spec.help or what}.")
        if spec.kind == LABELS:
            shape = tuple(np.shape(loaded[image_name])[-2:]) if image_name is not None else None
            loaded[spec.name] = load_labels_source(value, samples.keys, shape, config)
        elif spec.kind == CLASS:
            loaded[spec.name] = np.asarray(value, dtype=np.int64)
        elif spec.kind == ATTRIBUTES and _is_path(value):
            columns, keep = read_attributes(value, samples, count, found_columns(samples, family, config))
            loaded[spec.name] = columns
            if keep is not None and image_name is not None:  # volumes without a table row are left out
                loaded[image_name] = np.asarray(loaded[image_name])[keep]
        else:
            loaded[spec.name] = value
    if samples.class_names:
        loaded["class_names"] = samples.class_names
    return loaded


def load_images(value: Any, family, config=None) -> tuple[Any, Samples]:
    """An image input and what is known of its samples (file keys, classes, slice positions)."""
    if not _is_path(value):
        return value, Samples()
    path = Path(value)
    if is_nifti(path) or (path.is_dir() and nifti_files(path)):
        return load_volumes(path, config)
    if _class_folders(path):
        images, classes, names, keys = load_class_folders(path, family, config)
        return images, Samples(keys, classes, names)
    images = load_image_source(path, family, config)
    keys = _file_names(path)
    return images, Samples(keys if len(keys) == len(images) else [])  # stacks: no name per sample


def describe_sources(sources: dict[str, Any]) -> str:
    """One line for the model card: where each input came from."""
    parts = []
    for name, value in sources.items():
        if value is None:
            continue
        parts.append(f"{name}: {value}" if _is_path(value) else f"{name}: array {tuple(np.shape(value))}")
    return "; ".join(parts)


# -- one loader per kind ---------------------------------------------------------------------------------

def load_image_source(value: Any, family, config=None) -> Any:
    """Images or videos from an array or a path (see the module docstring); ``.npy`` stays on disk."""
    if not _is_path(value):
        return value
    path = Path(value)
    if not path.exists():
        raise DataError(f"No data at {path}.")
    if is_nifti(path) or (path.is_dir() and nifti_files(path)):
        return load_volumes(path, config)[0]
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
    if path.suffix.lower() in PICTURE_SUFFIXES or (path.is_dir() and _pictures(path)):
        return load_slice_files([path] if path.is_file() else _image_files(path), config)
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


def load_slice_files(files: list[Path], config=None) -> np.ndarray:
    """2D slices (PNG, JPEG, TIFF) as grey (N, Y, X); of different sizes, each scaled to the config's
    ``size`` as MRI slices are (:func:`.mri.scale_slices`: (N, 1, size, size) in [-1, 1])."""
    from .mri import read_slice, scale_slices

    if not files:
        raise DataError("No PNG, JPEG or TIFF slices were found.")
    planes = [read_slice(f) for f in files]
    shapes = {p.shape for p in planes}
    if len(shapes) == 1:
        return np.stack(planes)
    size = _size(config)
    if size is None:
        sizes = ", ".join(sorted("x".join(map(str, s)) for s in shapes))
        raise DataError(f"The slices in {files[0].parent.name} have different sizes ({sizes}); crop them to one "
                        "size.")
    return np.concatenate([scale_slices(p, size).numpy() for p in planes])


def load_volumes(path: Path, config=None) -> tuple[np.ndarray, Samples]:
    """Slices (N, 1, S, S) of a NIfTI volume or of every NIfTI volume under a folder, as the config says
    (:func:`.mri_volumes.volume_options`), keyed by their volume, with their slice positions."""
    from .mri_volumes import load_volumes as slices_of_volumes
    from .mri_volumes import volume_options

    images, keys, positions = slices_of_volumes(path, **volume_options(config))
    return images, Samples(keys, columns={"position": positions}, volumes=True)


def load_class_folders(folder: Path, family, config=None) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Images from class sub-folders: (images, class index per image, class names, file keys ``class/name``)."""
    images, classes, names, files = [], [], [], []
    for index, sub in enumerate(_class_folders(folder)):
        data = np.asarray(load_image_source(sub, family, config))
        images.append(data)
        classes += [index] * len(data)
        names.append(sub.name)
        keys = _file_names(sub)
        files += [f"{sub.name}/{k}" for k in keys] if len(keys) == len(data) else [""] * len(data)
    shapes = {i.shape[1:] for i in images}
    if len(shapes) > 1:
        size = _size(config)
        if size is None:
            raise DataError(f"The class folders of {folder.name} hold images of different sizes.")
        from .mri import scale_slices

        images = [scale_slices(i, size).numpy() for i in images]
    return np.concatenate(images), np.asarray(classes, np.int64), names, files if all(files) else []


# -- attributes ------------------------------------------------------------------------------------------

def read_attributes(path: str | Path, samples: Samples | None = None, count: int | None = None,
                    found: dict[str, np.ndarray] | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """A table (:func:`.attributes.read_table`) as columns, one value per sample, and which samples are kept.

    Rows are matched to ``samples.keys`` by the first of :data:`KEY_COLUMNS` the table has
    (:func:`.attributes.match_rows`: a file name or path, or a subject id found in the path);
    without keys or such a column, rows are taken in order. ``found``: columns known from the
    images (class names, slice position), added where the table lacks them. The mask is None
    when every sample is kept.
    """
    from .attributes import match_rows, read_table

    samples = samples or Samples()
    table = read_table(path)
    key = next((table.find(c) for c in KEY_COLUMNS if table.find(c) is not None), None)
    keep = None
    if samples.keys and key is not None:
        file_column = table.find("file") or table.find("filename")
        rows = match_rows(table, samples.keys, None if key == file_column else key)
        missing = [k for k, r in zip(samples.keys, rows) if r is None]
        if missing and not samples.volumes:
            raise DataError(f"{table.name} has no row for {len(missing)} image(s), e.g. {missing[0]}.")
        if missing:
            keep = np.asarray([r is not None for r in rows])
        cells = {h: [column[r] for r in rows if r is not None] for h, column in table.columns.items()}
    else:
        if count is not None and len(table) != count:
            how = "and no file or subject id column to match them by" if samples.keys else \
                "(without file names, rows are taken in order)"
            raise DataError(f"{table.name} has {len(table)} rows for {count} images {how}.")
        cells = dict(table.columns)
    columns = {h: _column(v) for h, v in cells.items()}
    for name, values in (found or {}).items():
        if table.find(name) is None:
            columns[name] = np.asarray(values)[keep] if keep is not None else np.asarray(values)
    return columns, keep


def found_columns(samples: Samples, family, config) -> dict[str, np.ndarray]:
    """Attribute columns the images themselves give: their class (named after the control whose
    choices are the class sub-folders, else ``class``) and a slice's position in its volume."""
    columns = dict(samples.columns)
    if samples.classes is not None and samples.class_names:
        names = {n.lower() for n in samples.class_names}
        controls = family.controls(config)
        name = next((c.name for c in controls if c.choices and names <= {x.lower() for x in c.choices}), "class")
        columns[name] = np.asarray(samples.class_names, dtype=object)[samples.classes]
    return columns


def _column(values: list[Any]) -> np.ndarray:
    """Numbers where every cell is a number, else the cells as text (attribute specs check the kinds)."""
    try:
        return np.asarray([float(v) for v in values])
    except (TypeError, ValueError):
        return np.asarray(values, dtype=object)


# -- labels ----------------------------------------------------------------------------------------------

def load_labels_source(value: Any, keys: list[str] | None = None, shape: tuple[int, ...] | None = None,
                       config=None) -> np.ndarray:
    """Integer label images (N, *spatial) from an array, a TIFF/PNG file, a folder of label images or a
    folder of one mask per class (see :func:`load_mask_folder`); checked against the config's ``classes``
    where it has them (values outside them, or no foreground at all, are refused)."""
    if not _is_path(value):
        labels = np.asarray(value)
    else:
        path = Path(value)
        if not path.exists():
            raise DataError(f"No labels at {path}.")
        if path.suffix == ".npy":
            labels = _load_npy(path, mmap=False)
        elif path.is_dir():
            labels = load_mask_folder(path, keys or [], shape, config)
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
    classes = getattr(config, "classes", None)
    if isinstance(classes, int) and not isinstance(classes, bool):
        from .segmentation import check_labels

        names = [Path(k).stem for k in keys] if keys and len(keys) == len(labels) else None
        check_labels(labels, classes, names)
    return labels


def load_mask_folder(folder: Path, keys: list[str], shape: tuple[int, ...] | None, config=None) -> np.ndarray:
    """Masks matched to the images (``keys``: their file names) by stem, in the images' order:

    - one label image per image (``a.tif`` <-> ``a.png``, ``a_mask.png``...: :func:`.segmentation.read_mask`);
    - one mask per class, in sub-folders (``masks/<class>/a.png``) or beside each other
      (``masks/a_<class>.png``): nonzero = that class, the class's value being its place in the
      config's ``class_names`` (background first) or, when the folder names none of them, in name order.

    Without image names (a layer) the label images are taken in name order.
    """
    from .segmentation import _image_files as mask_files
    from .segmentation import _masks_by_stem

    stems = [Path(k).stem for k in keys]
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subs:
        if not stems:
            raise DataError(f"The masks in the class folders of {folder.name} are matched to the images by file "
                            "name: give the images as a folder, not a layer.")
        masks = {p.name: _masks_by_stem(p) for p in subs}
        return _per_class(stems, _class_values([p.name for p in subs], config, folder.name),
                          lambda cls, stem: masks[cls].get(stem) or masks[cls].get(stem.lower()), shape, folder)
    files = mask_files(folder)
    if not files:
        raise DataError(f"{folder} holds no TIFF or PNG masks.")
    whole = _masks_by_stem(folder)
    found = [whole.get(s) or whole.get(s.lower()) for s in stems]
    if stems and not all(found):
        by_class = _suffix_classes(stems, files)
        if by_class:
            values = _class_values(sorted(by_class), config, folder.name)
            return _per_class(stems, values, lambda cls, stem: by_class[cls].get(stem.lower()), shape, folder)
        if any(found):
            missing = stems[found.index(None)]
            raise DataError(f"The image {missing} has no mask in {folder} (looked for {missing}.png/.tif, "
                            f"{missing}_mask.png...).")
    if stems and all(found):
        planes = [_mask(path, stem, shape) for path, stem in zip(found, stems)]
    else:  # names that match no image: taken in name order
        planes = [_read_plane(f) for f in files]
        if len({p.shape for p in planes}) > 1:
            raise DataError(f"The label images in {folder.name} have different sizes.")
    return np.stack(planes)


def _class_values(found: list[str], config, where: str) -> list[tuple[int, str]]:
    """(label value, class) of the per-class masks found: their place in the config's class names
    (background first) where the folder uses them, else 1, 2... in name order."""
    declared = [str(c).lower() for c in (getattr(config, "class_names", None) or ())][1:]
    if declared and any(f.lower() in declared for f in found):
        unknown = [f for f in found if f.lower() not in declared]
        if unknown:
            raise DataError(f"{where} has masks of the class '{unknown[0]}', which is not one of the declared "
                            f"classes {', '.join(getattr(config, 'class_names')[1:])}.")
        return sorted((declared.index(f.lower()) + 1, f) for f in found)
    return list(enumerate(sorted(found), start=1))


def _suffix_classes(stems: list[str], files: list[Path]) -> dict[str, dict[str, Path]]:
    """Masks named ``<image stem>_<class>`` (or ``-<class>``): {class: {image stem (lower case): file}}."""
    known = sorted({s.lower() for s in stems}, key=len, reverse=True)  # the longest stem that fits
    found: dict[str, dict[str, Path]] = {}
    for path in files:
        name = path.stem.lower()
        stem = next((s for s in known if name.startswith(s) and name[len(s):len(s) + 1] in ("_", "-")
                     and len(name) > len(s) + 1), None)
        if stem is not None:
            cls = path.stem[len(stem) + 1:]
            found.setdefault(cls, {})[stem] = path
    for tag in ("mask", "masks", "label", "labels", "seg"):  # a label image per image, not a class
        found.pop(tag, None)
    return found


def _per_class(stems: list[str], values: list[tuple[int, str]], find, shape, folder: Path) -> np.ndarray:
    """One class map per image from its per-class masks (nonzero = the class; later classes win)."""
    labels = []
    for stem in stems:
        label = None
        for value, cls in values:
            path = find(cls, stem)
            if path is None:
                raise DataError(f"The image {stem} has no '{cls}' mask in {folder.name} (looked for "
                                f"{cls}/{stem}.png and {stem}_{cls}.png).")
            plane = _mask(path, stem, shape)
            label = np.zeros(plane.shape, np.int64) if label is None else label
            if plane.shape != label.shape:
                raise DataError(f"The masks of {stem} have different sizes.")
            label[plane > 0] = value
        labels.append(label)
    if len({lab.shape for lab in labels}) > 1:
        raise DataError(f"The masks in {folder.name} have different sizes; every image and mask must be one size.")
    return np.stack(labels)


def _mask(path: Path, stem: str, shape) -> np.ndarray:
    """One mask (:func:`.segmentation.read_mask`), the same size as its image where that is known."""
    from .segmentation import read_mask

    plane = read_mask(path)
    if shape is not None and tuple(plane.shape) != tuple(shape):
        raise DataError(f"The mask {path.name} is {plane.shape[0]}x{plane.shape[1]} but the image {stem} is "
                        f"{shape[0]}x{shape[1]}; they must be the same size.")
    return plane


# -- helpers ---------------------------------------------------------------------------------------------

def _is_path(value: Any) -> bool:
    return isinstance(value, (str, Path))


def _size(config) -> int | None:
    size = getattr(config, "size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 1 else None


def _class_folders(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    subs = sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    has_files = any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file())
    return subs if subs and not has_files else []


def _image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: _natural(p.name))


def _pictures(folder: Path) -> bool:
    """A folder of PNG/JPEG slices (TIFF-only folders keep the TIFF reader: stacks, channels, big files)."""
    return any(p.suffix.lower() in PICTURE_SUFFIXES for p in folder.iterdir() if p.is_file())


def _file_names(value: Any) -> list[str]:
    if _is_path(value) and Path(value).is_dir():
        return [p.name for p in _image_files(Path(value))]
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
