"""Brain MRI slices: the one scaling, slice sets with subject splits, folders of 2D slices, the dementia set.

- Intensities: percentiles (0.5, 99.5) -> [-1, 1]; then padded to a square and resized to
  64 or 128 (:func:`scale_slices`, the one scaling the MRI families use for training AND runs).
- Folders of 2D slices (PNG, JPEG, TIFF), the class in sub-folders; the Kaggle 4-class
  dementia slices (:func:`load_dementia_slices`).
- Splits by subject (or scan), never by slice, wherever an id is known (:class:`SliceSet`).
- Volumes (NIfTI, TIFF stacks, ADNI-like folders, IXI) are read by :mod:`.mri_volumes`; their
  names are importable from here too.
- Attribute tables (CSV; XLS with pandas) keyed by file or subject id: :mod:`.attributes`.

Every bad input is one :class:`DataError` sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.errors import DataError
from .attributes import AttributeSpec

if TYPE_CHECKING:
    import torch

SLICE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PERCENTILES = (0.5, 99.5)

DEMENTIA_CLASSES = ("NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented")
DEMENTIA_ATTRIBUTE = "diagnosis:ordered:" + "|".join(DEMENTIA_CLASSES)
#: the volume readers live in mri_volumes; these names stay importable from here (scripts, tests)
_VOLUME_NAMES = ("ORIENTATIONS", "NIFTI_AXES", "TIFF_AXES", "VOLUME_SUFFIXES", "IXI_ATTRIBUTES", "IXI_NOTE",
                 "Volume", "is_volume_file", "read_volume", "crop_to_head", "slice_axis", "brain_extent",
                 "take_slices", "volume_slices", "parse_slices", "list_volumes", "load_volume_folder", "load_adni",
                 "load_ixi", "IXI_HELD_OUT", "ixi_split", "head_planes", "head_volume")


def __getattr__(name: str) -> Any:
    # lazily: mri_volumes imports this module (scaling, SliceSet), so it cannot be imported at the top
    if name in _VOLUME_NAMES:
        from . import mri_volumes

        return getattr(mri_volumes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
