"""Brain MRI volumes as training slices: NIfTI (nibabel) and TIFF stacks, folders of them, ADNI and IXI.

- Volumes (``.nii``/``.nii.gz`` via nibabel, reoriented to RAS; ``.tif`` stacks taken as
  Z, Y, X): axial, coronal or sagittal slices, one slice, a slab around the brain's centre,
  a range, or every slice of the brain (its slice position is then an attribute),
  resampled to square pixels, shown anterior/superior up; then scaled as every MRI slice
  is (:func:`.mri.scale_slices`).
- Folders of volumes with an attribute table keyed by file or subject id (ADNI-like layouts:
  NIfTI under subject folders plus a diagnosis/score table; the IXI T1 volumes with age/sex).
- What :mod:`.inputs` reads for the CLI and the widgets: :func:`load_volumes` with the
  slicing a family's config gives (:func:`volume_options`).

Every bad volume is one :class:`DataError` sentence (not 3D, empty, flat, damaged, a slice
out of range).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import DataError
from .attributes import Table, attribute_matrix, match_rows, parse_specs, read_table
from .mri import SliceSet, _concat, normalise_percentiles, scale_slices

ORIENTATIONS = ("axial", "coronal", "sagittal")
#: the array axis of each orientation: NIfTI after reorientation to RAS; TIFF stacks as (Z, Y, X)
NIFTI_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
TIFF_AXES = {"axial": 0, "coronal": 1, "sagittal": 2}
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".tif", ".tiff")
IXI_ATTRIBUTES = ("age:continuous:20|90", "sex:binary:m|f", "position:continuous:0|1")
#: say this wherever IXI figures are shown
IXI_NOTE = "8 IXI subjects are too few for a trustworthy evaluation of sex or age."
#: the IXI subjects every shipped IXI model and its regressor leave out (a woman of 28, a man of 72)
IXI_HELD_OUT = ("IXI057", "IXI497")


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


def head_planes(path: str | Path, orientation: str = "axial", slices: Any = "all", slab: int = 1,
                step: int = 1) -> tuple[np.ndarray, list[int], np.ndarray]:
    """A volume's planes at its own intensities, cut to the box around the head as training slices are
    (:func:`volume_slices`), with their indices and positions (0..1): what a user would open and edit."""
    return take_slices(head_volume(path, orientation), orientation, parse_slices(slices), slab, step)


def head_volume(path: str | Path, orientation: str = "axial", crop: bool = True) -> Volume:
    """A volume read and (``crop``) cut to the box around the head, keeping every plane along
    ``orientation``'s axis: the one cut that training slices and the samples both go through."""
    volume = read_volume(path)
    return crop_to_head(volume, keep=slice_axis(volume, orientation)) if crop else volume


def volume_slices(path: str | Path, orientation: str = "axial", slices: Any = "centre", slab: int = 1,
                  step: int = 1, size: int = 64, crop: bool = True) -> tuple[np.ndarray, list[int], np.ndarray]:
    """One volume's training slices (k, 1, size, size) in [-1, 1], their indices and positions (0..1):
    read, cut to the head (``crop``), normalised by its percentiles, sliced, scaled (:func:`scale_slices`)."""
    volume = head_volume(path, orientation, crop)
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


def ixi_split(data: SliceSet, held_out: Sequence[str] = IXI_HELD_OUT) -> tuple[SliceSet, SliceSet]:
    """Training and held-out slices of :func:`load_ixi`'s set, split by subject: the ``held_out``
    subjects' slices (IXI ids, e.g. "IXI057") on one side, everyone else's on the other."""
    ids = np.asarray([str(s).split("-")[0] for s in data.subjects])
    held = np.isin(ids, list(held_out))
    if not held.any() or held.all():
        raise DataError(f"The IXI slices must include the held-out subjects ({', '.join(held_out)}) and others.")
    return data.subset(np.flatnonzero(~held)), data.subset(np.flatnonzero(held))


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder)).replace("\\", "/")
    except ValueError:
        return path.name


def _stem(path: Path) -> str:
    name = path.name
    return name[:-7] if name.lower().endswith(".nii.gz") else path.stem


# -- what the CLI and the widgets read (data/inputs.py) -----------------------------------------------------

def is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith((".nii", ".nii.gz"))


def nifti_files(folder: Path) -> list[Path]:
    """NIfTI volumes anywhere under ``folder`` (ADNI keeps them in subject/visit folders), in path order."""
    return sorted((p for p in Path(folder).rglob("*") if is_nifti(p)), key=lambda p: str(p).lower())


def volume_options(config=None) -> dict[str, Any]:
    """How volumes are sliced, from a config's fields where it has them (``orientation``, ``slices``,
    ``slab``, ``slice_step``, ``size``), else axial, the centre slice, 64 pixels."""
    size = getattr(config, "size", None)
    size = size if isinstance(size, int) and not isinstance(size, bool) and size > 1 else 64
    return {"orientation": getattr(config, "orientation", "axial"), "slices": getattr(config, "slices", "centre"),
            "slab": int(getattr(config, "slab", 1)), "step": int(getattr(config, "slice_step", 1)), "size": size}


def load_volumes(path: str | Path, **options: Any) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Slices (N, 1, S, S) of a NIfTI volume, or of every NIfTI volume under a folder (:func:`volume_slices`
    with ``options``), the volume of each (its path relative to the folder) and its position (0..1)."""
    path = Path(path)
    files = [path] if path.is_file() else nifti_files(path)
    if not files:
        raise DataError(f"{path} holds no NIfTI volumes (.nii, .nii.gz).")
    parts, keys, positions = [], [], []
    for file in files:
        images, indices, where = volume_slices(file, **options)
        parts.append(images)
        keys += [file.name if file == path else _relative(file, path)] * len(indices)
        positions.append(where)
    return np.concatenate(parts), keys, np.concatenate(positions)
