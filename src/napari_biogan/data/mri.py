"""Brain MRI as training slices: NIfTI volumes and TIFF stacks, folders of 2D slices, attribute tables.

- Volumes (``.nii``/``.nii.gz`` via nibabel, reoriented to RAS; ``.tif`` stacks taken as
  Z, Y, X): axial, coronal or sagittal slices, one slice, a slab around the brain's centre,
  a range, or every slice of the brain (its slice position is then an attribute),
  resampled to square pixels, shown anterior/superior up.
- Folders of 2D slices (PNG, JPEG, TIFF), the class in sub-folders.
- Attribute tables (CSV; XLS with pandas) keyed by file or subject id (:mod:`.attributes`).
- Intensities: percentiles (0.5, 99.5) -> [-1, 1]; then padded to a square and resized to
  64 or 128 (:func:`scale_slices`, the one scaling the MRI families use for training AND runs).
- Splits by subject (or scan), never by slice, wherever an id is known.

Readers of the layouts users have: ADNI-like folders of NIfTI plus a diagnosis/score
table, the Kaggle 4-class dementia slices and the IXI T1 volumes. Every bad input is
one :class:`DataError` sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.errors import DataError
from .attributes import AttributeSpec, Table, attribute_matrix, match_rows, parse_specs, read_table

if TYPE_CHECKING:
    import torch

ORIENTATIONS = ("axial", "coronal", "sagittal")
#: the array axis of each orientation: NIfTI after reorientation to RAS; TIFF stacks as (Z, Y, X)
NIFTI_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
TIFF_AXES = {"axial": 0, "coronal": 1, "sagittal": 2}
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".tif", ".tiff")
SLICE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PERCENTILES = (0.5, 99.5)

DEMENTIA_CLASSES = ("NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented")
DEMENTIA_ATTRIBUTE = "diagnosis:ordered:" + "|".join(DEMENTIA_CLASSES)
IXI_ATTRIBUTES = ("age:continuous:20|90", "sex:binary:m|f", "position:continuous:0|1")
#: say this wherever IXI figures are shown
IXI_NOTE = "8 IXI subjects are too few for a trustworthy evaluation of sex or age."


# -- volumes ------------------------------------------------------------------------------------------------

@dataclass
class Volume:
    data: np.ndarray  # float32, 3D: RAS for NIfTI, (Z, Y, X) for TIFF
    spacing: tuple[float, float, float]
    kind: str  # "nifti" | "tiff"
    name: str


def is_volume_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and any(name.endswith(s) for s in VOLUME_SUFFIXES)


def read_volume(path: str | Path) -> Volume:
    """A 3D NIfTI (reoriented to RAS) or TIFF stack; plain sentences for 4D, empty, flat or damaged files."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No volume at {path}.")
    if path.name.lower().endswith((".tif", ".tiff")):
        from .tiff_io import load_image_stack

        data, spacing, kind = np.asarray(load_image_stack(path)), (1.0, 1.0, 1.0), "tiff"
    else:
        data, spacing, kind = _read_nifti(path)
    data = np.squeeze(data) if data.ndim > 3 else data
    if data.size == 0:
        raise DataError(f"{path.name} is empty (shape {tuple(data.shape)}).")
    if data.ndim != 3:
        raise DataError(f"{path.name} is a {data.ndim}D image (shape {tuple(data.shape)}); a 3D volume is needed.")
    if data.dtype.kind not in "uifb":
        raise DataError(f"{path.name} holds {data.dtype} values, not intensities.")
    data = data.astype(np.float32, copy=False)
    finite = np.isfinite(data)
    if not finite.all():
        if not finite.any():
            raise DataError(f"{path.name} holds no finite values.")
        data = np.where(finite, data, np.nanmin(np.where(finite, data, np.nan)))
    if float(data.max()) == float(data.min()):
        raise DataError(f"{path.name} holds no signal (every voxel is {float(data.min()):g}).")
    return Volume(data, spacing, kind, path.name)


def _read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, float, float], str]:
    import nibabel as nib

    try:
        image = nib.load(str(path))
        if len(image.shape) > 3 and all(s == 1 for s in image.shape[3:]):
            image = image.slicer[(slice(None),) * 3 + (0,) * (len(image.shape) - 3)]
        if len(image.shape) == 3:
            image = nib.as_closest_canonical(image)
        data = np.asarray(image.dataobj)
        spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path.name} is too large to read into memory.") from None
    except Exception as err:  # nibabel, gzip and zlib raise many types for damaged files
        raise DataError(f"Cannot read {path.name} as a NIfTI volume; it is damaged or not NIfTI "
                        f"({type(err).__name__}).") from None
    spacing = spacing + (1.0,) * (3 - len(spacing))
    return data, spacing, "nifti"


def crop_to_head(volume: Volume, keep: int | None = None, margin: int = 4) -> Volume:
    """The volume cut to the box around everything above background (plus ``margin`` voxels), except
    along the axis ``keep`` (slice indices stay those of the file): slices then fill the frame."""
    data = volume.data
    threshold = data.min() + 0.05 * (np.percentile(data, 99.5) - data.min())
    inside = np.argwhere(data > threshold)
    if not len(inside):
        return volume
    low = np.maximum(inside.min(0) - margin, 0)
    high = np.minimum(inside.max(0) + margin + 1, data.shape)
    box = tuple(slice(None) if axis == keep else slice(a, b) for axis, (a, b) in enumerate(zip(low, high)))
    return Volume(np.ascontiguousarray(data[box]), volume.spacing, volume.kind, volume.name)


def slice_axis(volume: Volume, orientation: str) -> int:
    if orientation not in ORIENTATIONS:
        raise DataError(f"The orientation is one of {', '.join(ORIENTATIONS)}, not '{orientation}'.")
    return (NIFTI_AXES if volume.kind == "nifti" else TIFF_AXES)[orientation]


def brain_extent(volume: Volume, axis: int, fraction: float = 0.02) -> tuple[int, int]:
    """First and last slice along ``axis`` where more than ``fraction`` of the plane is above background."""
    data = volume.data
    threshold = data.min() + 0.05 * (np.percentile(data, 99.5) - data.min())
    other = tuple(a for a in range(3) if a != axis)
    filled = (data > threshold).mean(axis=other)
    inside = np.flatnonzero(filled > fraction)
    if not len(inside):
        return 0, data.shape[axis] - 1
    return int(inside[0]), int(inside[-1])


def take_slices(volume: Volume, orientation: str = "axial", slices: Any = "centre", slab: int = 1,
                step: int = 1) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Planes (k, H, W) of a volume, their indices and positions (0..1 across the brain's extent).

    ``slices``: an index, a ``(start, stop)`` range, ``"centre"`` (``slab`` slices around the
    centre of the brain) or ``"all"`` (every ``step``-th slice of the brain).
    """
    axis = slice_axis(volume, orientation)
    count = volume.data.shape[axis]
    first, last = brain_extent(volume, axis)
    if isinstance(slices, str):
        if slices == "centre":
            if slab < 1:
                raise DataError(f"A slab has at least one slice, not {slab}.")
            start = (first + last) // 2 - (slab - 1) // 2
            indices = list(range(max(start, 0), min(start + slab, count)))
        elif slices == "all":
            indices = list(range(first, last + 1, max(int(step), 1)))
        else:
            raise DataError(f"Slices are an index, a range (start, stop), 'centre' or 'all', not '{slices}'.")
    elif isinstance(slices, (tuple, list)) and len(slices) == 2:
        start, stop = (int(s) for s in slices)
        _check_index(volume, orientation, start, count)
        _check_index(volume, orientation, stop - 1, count)
        indices = list(range(start, stop, max(int(step), 1)))
        if not indices:
            raise DataError(f"The slice range {start}-{stop} of {volume.name} is empty.")
    else:
        index = int(slices)
        _check_index(volume, orientation, index, count)
        indices = [index]
    planes = np.stack([_plane(volume, axis, i) for i in indices])
    positions = np.asarray([(i - first) / max(last - first, 1) for i in indices], dtype=np.float32)
    return planes, indices, positions


def _check_index(volume: Volume, orientation: str, index: int, count: int) -> None:
    if not 0 <= index < count:
        raise DataError(f"Slice {index} is out of range: {volume.name} has {count} {orientation} slices "
                        f"(0-{count - 1}).")


def _plane(volume: Volume, axis: int, index: int) -> np.ndarray:
    """One plane, resampled to square pixels; NIfTI planes shown anterior/superior up."""
    plane = np.take(volume.data, index, axis=axis)
    spacing = [s for a, s in enumerate(volume.spacing) if a != axis]
    if volume.kind == "nifti":
        plane, spacing = np.rot90(plane), spacing[::-1]  # (R, A) -> rows A (anterior up), columns R
    if abs(spacing[0] - spacing[1]) > 1e-3 * max(spacing):
        import torch
        import torch.nn.functional as F

        finest = min(spacing)
        shape = [max(1, round(n * s / finest)) for n, s in zip(plane.shape, spacing)]
        plane = F.interpolate(torch.from_numpy(np.ascontiguousarray(plane))[None, None], size=shape,
                              mode="bilinear", align_corners=False)[0, 0].numpy()
    return np.ascontiguousarray(plane, dtype=np.float32)


# -- the one scaling --------------------------------------------------------------------------------------

def normalise_percentiles(array: np.ndarray, percentiles: Sequence[float] = PERCENTILES) -> np.ndarray:
    """One array (a volume or a slice) mapped from its percentiles to [-1, 1] (clipped)."""
    low, high = np.percentile(array, percentiles)
    return (np.clip((array - low) / max(high - low, 1e-6), 0, 1) * 2 - 1).astype(np.float32)


def scale_slices(images: Any, size: int, percentiles: Sequence[float] = PERCENTILES,
                 chunk: int = 256) -> "torch.Tensor":
    """Images (H, W), (N, H, W) or (N, C, H, W) at any size -> (N, 1, size, size) in [-1, 1].

    Each image is mapped from its own percentiles to [-1, 1] (colour is averaged to
    grey), padded to a square with its darkest value (keeps the aspect ratio), resized
    with antialiasing and mapped from its percentiles again, so scaling a scaled slice
    changes nothing (loaders scale, then the family's ``prepare_data`` scales again).
    Training data and a user's slice both go through here.
    """
    import torch
    import torch.nn.functional as F

    images = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images).float()
    if images.ndim == 2:
        images = images[None, None]
    elif images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[-1] < 2 or images.shape[-2] < 2:
        raise DataError(f"Slices are (Y, X) images or stacks (N, Y, X); got shape {tuple(images.shape)}.")
    if not bool(torch.isfinite(images).all()):
        raise DataError("The slices contain NaN or infinite values.")
    if images.shape[1] != 1:
        images = images.mean(1, keepdim=True)  # MRI is grey: RGB renderings are averaged
    out = []
    for part in images.split(chunk):
        part = resize_square(_stretch(part, percentiles), size)
        out.append(_stretch(part, percentiles))  # idempotent: a scaled slice scales to itself
    return torch.cat(out)


def _stretch(part: "torch.Tensor", percentiles: Sequence[float]) -> "torch.Tensor":
    """Each image's percentiles -> -1 and 1, clipped."""
    import torch

    flat = part.reshape(len(part), -1)
    q = torch.quantile(flat, torch.tensor([p / 100 for p in percentiles], dtype=flat.dtype), dim=1)
    low, high = q[0][:, None, None, None], q[1][:, None, None, None]
    return ((part - low) / (high - low).clamp_min(1e-6)).clamp(0, 1) * 2 - 1


def resize_square(images: "torch.Tensor", size: int) -> "torch.Tensor":
    """(N, C, H, W) in [-1, 1] -> padded (with -1) to a centred square -> (N, C, size, size)."""
    import torch.nn.functional as F

    height, width = images.shape[-2:]
    side = max(height, width)
    if height != width:
        top, left = (side - height) // 2, (side - width) // 2
        images = F.pad(images, (left, side - width - left, top, side - height - top), value=-1.0)
    if side != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=side > size)
    return images


def unsquare(images: "torch.Tensor", height: int, width: int) -> "torch.Tensor":
    """The inverse of :func:`resize_square`: (N, C, S, S) -> (N, C, height, width)."""
    import torch.nn.functional as F

    side = max(height, width)
    if images.shape[-1] != side:
        images = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False,
                               antialias=images.shape[-1] > side)
    top, left = (side - height) // 2, (side - width) // 2
    return images[..., top:top + height, left:left + width]


# -- slice sets and subject splits ------------------------------------------------------------------------

@dataclass
class SliceSet:
    """Training slices with their attributes and subjects (slices of a subject stay on one side of a split)."""

    images: np.ndarray  # (N, 1, S, S) float32 in [-1, 1]
    values: np.ndarray  # (N, A) float32: class indices or continuous values, in ``specs`` order
    specs: tuple[AttributeSpec, ...]
    subjects: np.ndarray  # (N,) group id of each slice (subject or scan)
    files: list[str]  # where each slice came from ("file" or "file:slice")
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # 0..1 or NaN
    description: str = ""
    subjects_known: bool = True  # False: every slice is its own group (no id in the data)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: Any) -> "SliceSet":
        index = np.asarray(index)
        positions = self.positions[index] if len(self.positions) else self.positions
        return replace(self, images=self.images[index], values=self.values[index], subjects=self.subjects[index],
                       files=[self.files[i] for i in np.arange(len(self))[index]], positions=positions)

    def split(self, held_out: float = 0.2, seed: int = 0) -> tuple["SliceSet", "SliceSet"]:
        """(train, held-out) by subject: no subject has slices on both sides."""
        held = subject_split(self.subjects, held_out, seed)
        return self.subset(~held), self.subset(held)

    def column(self, name: str) -> np.ndarray:
        names = [s.name for s in self.specs]
        if name not in names:
            raise DataError(f"The slices have no attribute '{name}'; they have {', '.join(names)}.")
        return self.values[:, names.index(name)]

    def sources(self) -> dict[str, Any]:
        """Training inputs for ``setup_training``: images and a table of attributes by name."""
        return {"image": self.images, "attributes": {s.name: self.values[:, i] for i, s in enumerate(self.specs)}}

    def counts(self, name: str) -> dict[str, int]:
        """Slices per class of a class attribute."""
        spec = self.specs[[s.name for s in self.specs].index(name)]
        column = self.column(name)
        return {c: int((column == i).sum()) for i, c in enumerate(spec.classes)}


def subject_split(subjects: Sequence[Any], held_out: float = 0.2, seed: int = 0) -> np.ndarray:
    """A boolean mask of held-out slices: whole subjects drawn with ``seed``, never single slices."""
    subjects = np.asarray([str(s) for s in subjects])
    unique = np.unique(subjects)
    if len(unique) < 2:
        raise DataError(f"A split needs slices of at least two subjects; these come from {len(unique)}.")
    if not 0 < held_out < 1:
        raise DataError(f"The held-out fraction is between 0 and 1, not {held_out}.")
    order = np.random.default_rng(seed).permutation(unique)
    count = min(max(1, int(round(held_out * len(unique)))), len(unique) - 1)
    return np.isin(subjects, order[:count])


def _concat(parts: list[SliceSet], specs, description: str, known: bool = True) -> SliceSet:
    if not parts:
        raise DataError("No slices were found.")
    return SliceSet(np.concatenate([p.images for p in parts]), np.concatenate([p.values for p in parts]),
                    tuple(specs), np.concatenate([p.subjects for p in parts]), sum((p.files for p in parts), []),
                    np.concatenate([p.positions for p in parts]), description, known)


# -- folders of volumes (ADNI-like layouts, IXI) --------------------------------------------------------------

def list_volumes(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"No folder at {folder}.")
    files = sorted((p for p in folder.rglob("*") if is_volume_file(p)), key=lambda p: str(p).lower())
    if not files:
        raise DataError(f"{folder} holds no NIfTI (.nii, .nii.gz) or TIFF volumes.")
    return files


def load_volume_folder(folder: str | Path, table: str | Path | Table | None = None,
                       attributes: Sequence[str] = (), *, id_column: str | None = None,
                       orientation: str = "axial", slices: Any = "centre", slab: int = 1, step: int = 1,
                       size: int = 64, files: Sequence[Path] | None = None, crop: bool = True) -> SliceSet:
    """Slices of every volume under ``folder`` with their attributes from ``table``.

    A declared continuous attribute named ``position`` is the slice position (0..1 across
    the brain); the others come from the table (by ``file`` column, or ``id_column``, the
    subject id, which then also groups the split). Volumes without a row are left out. With
    ``crop``, each volume is first cut to the box around the head (slices fill the frame).
    """
    folder = Path(folder)
    specs = parse_specs(attributes) if attributes else ()
    files = list(files) if files is not None else list_volumes(folder)
    keys = [_relative(f, folder) for f in files]
    table_specs = [s for s in specs if s.name != "position"]
    rows: list[int | None] = [None] * len(files)
    if table_specs:
        if table is None:
            raise DataError(f"The attributes {', '.join(s.name for s in table_specs)} need a table.")
        table = table if isinstance(table, Table) else read_table(table)
        rows = match_rows(table, keys, id_column)
        ids = table.column(id_column) if id_column else None
    parts, skipped = [], 0
    for path, key, row in zip(files, keys, rows):
        if table_specs and row is None:
            skipped += 1
            continue
        images, indices, positions = volume_slices(path, orientation, slices, slab, step, size, crop)
        subject = str(ids[row]).strip() if table_specs and id_column else _stem(path)
        values = []
        for spec in specs:
            if spec.name == "position" and spec.kind == "continuous":
                values.append(spec.low + positions * (spec.high - spec.low))
            else:
                values.append(np.repeat(attribute_matrix([spec], table, [row])[:, 0], len(indices)))
        matrix = np.stack(values, 1).astype(np.float32) if values else np.zeros((len(indices), 0), np.float32)
        parts.append(SliceSet(images, matrix, specs, np.asarray([subject] * len(indices)),
                              [f"{key}:{i}" for i in indices], positions))
    note = f"; {skipped} volume(s) without a table row left out" if skipped else ""
    described = f"{sum(len(p) for p in parts)} {orientation} slices of {len(parts)} volumes in {folder.name}{note}"
    return _concat(parts, specs, described)


def volume_slices(path: str | Path, orientation: str = "axial", slices: Any = "centre", slab: int = 1,
                  step: int = 1, size: int = 64, crop: bool = True) -> tuple[np.ndarray, list[int], np.ndarray]:
    """One volume's training slices (k, 1, size, size) in [-1, 1], their indices and positions (0..1):
    read, cut to the head (``crop``), normalised by its percentiles, sliced, scaled (:func:`scale_slices`)."""
    volume = read_volume(path)
    volume = crop_to_head(volume, keep=slice_axis(volume, orientation)) if crop else volume
    volume.data = normalise_percentiles(volume.data)
    planes, indices, positions = take_slices(volume, orientation, parse_slices(slices), slab, step)
    return scale_slices(planes, size).numpy(), indices, positions


def parse_slices(value: Any) -> Any:
    """Which slices, as a config or the CLI writes them: ``"centre"``, ``"all"``, an index (``"40"``) or
    a range (``"30-50"``, ``(30, 50)``, stop excluded) -> what :func:`take_slices` takes."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if text in ("centre", "center", "all"):
        return "centre" if text == "center" else text
    match = re.fullmatch(r"(\d+)\s*(?:-|:|\.\.)\s*(\d+)", text)
    if match:
        return int(match.group(1)), int(match.group(2))
    if text.isdigit():
        return int(text)
    raise DataError(f"Slices are 'centre', 'all', an index (e.g. 40) or a range (e.g. 30-50), not '{value}'.")


def load_adni(root: str | Path, table: str | Path, *, id_column: str = "Subject",
              attributes: Sequence[str] = ("DX:ordered:CN|MCI|Dementia",), orientation: str = "axial",
              slices: Any = "centre", slab: int = 5, size: int = 64) -> SliceSet:
    """The ADNI layout: NIfTI files under subject folders (``002_S_0295/.../*.nii``) and a table with
    the subject id and the diagnosis or scores (CN/MCI/Dementia, ADAS, FAQ); split by subject."""
    return load_volume_folder(root, table, attributes, id_column=id_column, orientation=orientation,
                              slices=slices, slab=slab, size=size)


def load_ixi(root: str | Path, *, orientation: str = "axial", step: int = 4, size: int = 64,
             attributes: Sequence[str] = IXI_ATTRIBUTES) -> SliceSet:
    """The IXI T1 volumes (``skullstripped/*.nii.gz``) with age, sex (table: 1 = m, 2 = f) and slice position.

    Every ``step``-th slice of each brain. :data:`IXI_NOTE`: 8 subjects are too few to
    evaluate sex or age.
    """
    root = Path(root)
    table = read_table(root / "subjects_in_this_folder.csv")
    sex = table.find("sex(1=m,2=f)") or table.find("sex")
    if sex is not None:  # IXI codes sex 1 = m, 2 = f: as the binary attribute's 0 and 1
        table.columns["sex"] = [{"1": "m", "2": "f"}.get(str(v).strip(), v) for v in table.columns[sex]]
    if table.find("age") is None and table.find("age_years") is not None:
        table.columns["age"] = table.columns[table.find("age_years")]
    files = list_volumes(root / "skullstripped")
    data = load_volume_folder(root, table, attributes, orientation=orientation, slices="all", step=step,
                              size=size, files=files)
    data.description += ". " + IXI_NOTE
    return data


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder)).replace("\\", "/")
    except ValueError:
        return path.name


def _stem(path: Path) -> str:
    name = path.name
    return name[:-7] if name.lower().endswith(".nii.gz") else path.stem


# -- folders of 2D slices ---------------------------------------------------------------------------------

def read_slice(path: Path) -> np.ndarray:
    """One 2D slice (PNG, JPEG or TIFF) as float32 grey."""
    if path.suffix.lower() in (".tif", ".tiff"):
        from .tiff_io import load_image_stack

        data = np.squeeze(np.asarray(load_image_stack(path)))
    else:
        from PIL import Image

        try:
            with Image.open(path) as image:
                data = np.asarray(image.convert("L") if image.mode not in ("L", "I", "I;16", "F") else image)
        except OSError:
            raise DataError(f"Cannot read {path.name} as an image; it is damaged or not a PNG/JPEG.") from None
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        data = data[..., :3].mean(-1)
    if data.ndim != 2 or min(data.shape) < 2:
        raise DataError(f"{path.name} is not a 2D slice (shape {tuple(data.shape)}).")
    return data.astype(np.float32)


def load_slice_folder(root: str | Path, *, size: int = 64, attribute: str = "class",
                      classes: Sequence[str] | None = None, ordered: bool = False,
                      subject_pattern: str | None = None, unmatched: str | None = None) -> SliceSet:
    """2D slices in class sub-folders (``root/<class>/*.png``): the class is a categorical attribute.

    ``classes`` orders the sub-folders (and makes the attribute ordered with ``ordered``);
    ``subject_pattern`` is a regular expression whose first group finds the subject or scan
    id in a file name (else every slice is its own group and splits cannot keep scans together);
    ``unmatched`` is the id of names it does not match (default: the file name).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"No folder at {root}.")
    found = {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if not found:
        raise DataError(f"{root} has no class sub-folders (e.g. {root.name}/NonDemented/*.png).")
    names = list(classes) if classes else sorted(found)
    missing = [c for c in names if c not in found]
    if missing:
        raise DataError(f"{root} has no sub-folder for the class '{missing[0]}'; it has {', '.join(sorted(found))}.")
    spec = AttributeSpec.parse(f"{attribute}:{'ordered' if ordered else 'categorical'}:{'|'.join(names)}") \
        if len(names) > 1 else AttributeSpec.parse(f"{attribute}:binary:{names[0]}|other")
    pattern = re.compile(subject_pattern) if subject_pattern else None
    parts = []
    for index, name in enumerate(names):
        files = sorted((p for p in found[name].iterdir() if p.suffix.lower() in SLICE_SUFFIXES),
                       key=lambda p: _natural(p.name))
        if not files:
            continue
        planes = [read_slice(f) for f in files]
        images = np.concatenate([scale_slices(p, size).numpy() for p in planes])
        subjects = [f"{name}/{_subject(f.name, pattern, unmatched)}" for f in files]
        parts.append(SliceSet(images, np.full((len(files), 1), index, np.float32), (spec,), np.asarray(subjects),
                              [f"{name}/{f.name}" for f in files], np.full(len(files), np.nan, np.float32)))
    if not parts:
        raise DataError(f"The class sub-folders of {root} hold no PNG, JPEG or TIFF slices.")
    described = f"{sum(len(p) for p in parts)} slices of {len(parts)} classes in {root.name}"
    return _concat(parts, (spec,), described, known=pattern is not None)


def _subject(name: str, pattern, unmatched: str | None) -> str:
    match = pattern.search(name) if pattern is not None else None
    if match is None:
        return name if pattern is None or unmatched is None else unmatched
    return match.group(1) if match.groups() else match.group(0)


def _natural(name: str):
    from .tiff_io import natural_key

    return natural_key(name)


def load_dementia_slices(root: str | Path, split: str = "train", size: int = 64) -> SliceSet:
    """The Kaggle 4-class dementia slices (``alzheimer_mri_4class/<split>/<class>/*.jpg``).

    The diagnosis is an ordered attribute (NonDemented < VeryMild < Mild < Moderate). Test
    files are ``<slice> (<scan>).jpg`` (no number: scan 1): slices of a scan form one group.
    Train files carry no scan id, so each slice is its own group there (say so when splitting).
    """
    if split not in ("train", "test"):
        raise DataError(f"The dementia slices have a 'train' and a 'test' split, not '{split}'.")
    folder = Path(root) / split
    pattern = r"\((\d+)\)" if split == "test" else None
    # "26.jpg" is scan 1 (the first copy carries no number)
    data = load_slice_folder(folder, size=size, attribute="diagnosis", classes=DEMENTIA_CLASSES, ordered=True,
                             subject_pattern=pattern, unmatched="1" if pattern else None)
    data.description = f"{len(data)} {split} slices of the 4-class dementia data set ({folder})"
    return data
