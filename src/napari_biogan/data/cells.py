"""Multi-channel cell crops: readers, the synthetic multi-channel set, and cropping cells from fields.

- :func:`read_lin`: the LIN fission-yeast layout of Osokin et al.
  (``<root>/<split>/<protein>/*.png``, 48x80 RGB, red = Bgs4 shape, green = the
  protein; the class is the sub-folder), and :func:`read_cell_folders`: any folder of
  multi-channel TIFF/PNG crops with class sub-folders (channel 0 = shape, channel 1 =
  protein).
- :func:`synthetic_multichannel`: the paper's 1 + k channel images for the
  multi-channel model, built from one-protein images by borrowing each other class's
  protein channel from one of the nearest shape neighbours in that class.
- :func:`crop_cells` and :func:`rcell2_cells`: single cells cropped around centres
  (a Cell-ID table, a Labels array, or :func:`detect_centres`) from whole fields.

Crops are uint8 (each channel scaled by its field's percentiles) so they read the same
as the paper's 8-bit PNGs; no torch at import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import DataError

CROP_SUFFIXES = (".png", ".tif", ".tiff")


@dataclass
class CellSet:
    """Cells with their classes: ``images`` (N, C, Y, X) with channel 0 the shape; ``classes`` (N,)."""

    images: np.ndarray
    classes: np.ndarray
    names: list[str]
    files: list[str] = field(default_factory=list)
    channel_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def sources(self) -> dict[str, np.ndarray]:
        """The training sources of the cell family (``setup_training(..., sources)``)."""
        return {"image": self.images, "class": self.classes}

    def subset(self, index) -> "CellSet":
        index = np.asarray(index)
        files = [self.files[i] for i in index] if self.files else []
        info = {k: (v[index] if isinstance(v, np.ndarray) and len(v) == len(self) else v) for k, v in self.info.items()}
        return CellSet(self.images[index], self.classes[index], list(self.names), files,
                       list(self.channel_names), info)

    def split(self, fraction: float = 0.2, seed: int = 0) -> tuple["CellSet", "CellSet"]:
        """(kept, held out): a fixed random ``fraction`` of the cells held out (C2ST, reconstruction)."""
        order = np.random.default_rng(seed).permutation(len(self))
        n_held = int(round(fraction * len(self)))
        return self.subset(np.sort(order[n_held:])), self.subset(np.sort(order[:n_held]))

    def pairs(self) -> "CellSet":
        """One (shape, protein) image per cell and protein: multi-channel crops -> one-protein images."""
        if self.images.shape[1] == 2:
            return self
        k = self.images.shape[1] - 1
        images = np.concatenate([self.images[:, [0, 1 + c]] for c in range(k)])
        classes = np.repeat(np.arange(k), len(self.images))
        files = [f for _ in range(k) for f in self.files]
        names = self.channel_names[1:] if len(self.channel_names) == k + 1 else self.names
        return CellSet(images, classes, list(names), files, list(self.channel_names[:1]) + ["protein"], dict(self.info))


# -- readers -----------------------------------------------------------------------------------------------

def read_lin(root: str | Path, split: str | None = "train") -> CellSet:
    """The LIN layout: ``<root>/<split>/<protein>/*.png`` (or ``<root>/<protein>/*.png`` without a split).

    RGB 8-bit PNGs: red is the Bgs4 shape channel, green the tagged protein (blue is empty).
    Returns (N, 2, Y, X) uint8 images; classes in the sub-folders' name order.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"No folder at {root}.")
    if split and (root / split).is_dir():
        return read_cell_folders(root / split)
    holds_crops = any(p.suffix.lower() in CROP_SUFFIXES for sub in _class_dirs(root) for p in sub.iterdir())
    if split and not holds_crops:
        raise DataError(f"{root} has no '{split}' folder and no protein sub-folders of crops (LIN layout: "
                        "<root>/<split>/<protein>/*.png).")
    return read_cell_folders(root)


def read_cell_folders(folder: str | Path) -> CellSet:
    """Crops from class sub-folders (PNG or TIFF): channel 0 = shape, channel 1 = protein.

    RGB PNGs give red and green; a TIFF gives its first two channels (C, Y, X) or (Y, X, C).
    Every crop must have the same size.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"No folder at {folder}.")
    classes = _class_dirs(folder)
    if not classes:
        raise DataError(f"{folder} has no class sub-folders (one folder of crops per protein).")
    images, labels, files = [], [], []
    for index, sub in enumerate(classes):
        paths = sorted((p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in CROP_SUFFIXES),
                       key=lambda p: _natural(p.name))
        if not paths:
            raise DataError(f"The class folder {sub.name} holds no PNG or TIFF crops.")
        for path in paths:
            images.append(_two_channels(read_crop(path), path.name))
            labels.append(index)
            files.append(f"{sub.name}/{path.name}")
    shapes = {i.shape for i in images}
    if len(shapes) > 1:
        raise DataError(f"The crops in {folder.name} have different sizes ({', '.join(map(str, sorted(shapes)))}).")
    return CellSet(np.stack(images), np.asarray(labels, np.int64), [c.name for c in classes], files,
                   ["shape", "protein"])


def read_crop(path: str | Path) -> np.ndarray:
    """One crop as (C, Y, X) in its own dtype."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        from PIL import Image

        try:
            with Image.open(path) as image:
                data = np.asarray(image)
        except OSError as err:
            raise DataError(f"Cannot read {path.name} as a PNG image.") from err
        return data[None] if data.ndim == 2 else np.moveaxis(data, -1, 0)
    import tifffile

    try:
        data = tifffile.imread(path)
    except Exception as err:  # tifffile and OS errors alike: the file cannot be used
        raise DataError(f"{path.name} is not a readable TIFF.") from err
    if data.ndim == 3 and data.shape[-1] in (2, 3, 4) and data.shape[0] > 4:
        data = np.moveaxis(data, -1, 0)
    return data[None] if data.ndim == 2 else data


def read_deeploc(path: str | Path) -> CellSet:
    """The DeepLoc test cells (``schuldiner_test_set_converted.npz``): bright-field as shape, GFP as protein."""
    path = Path(path)
    if path.is_dir():
        path = path / "schuldiner_test_set_converted.npz"
    if not path.is_file():
        raise DataError(f"No DeepLoc file at {path}.")
    with np.load(path, allow_pickle=False) as npz:
        images, labels = npz["images"], np.asarray(npz["label"]).reshape(-1)
        names = [str(n) for n in npz["class_names"]]
        channels = [str(c).lower() for c in npz["channel_names"]]
    shape = next((i for i, c in enumerate(channels) if "bright" in c), 1)
    protein = 1 - shape
    used = sorted(set(int(v) for v in labels))
    remap = {old: new for new, old in enumerate(used)}
    return CellSet(np.ascontiguousarray(images[:, [shape, protein]]), np.asarray([remap[int(v)] for v in labels]),
                   [names[i] for i in used], channel_names=["bright-field", "GFP"],
                   info={"source": "DeepLoc (Kraus et al. 2017), BSD-3-Clause"})


def _two_channels(data: np.ndarray, name: str) -> np.ndarray:
    if data.shape[0] < 2:
        raise DataError(f"{name} has one channel; a cell crop needs a shape and a protein channel.")
    return data[:2]


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def write_cell_folders(cells: CellSet, folder: str | Path, overwrite: bool = False) -> Path:
    """Write ``cells`` as ``<folder>/<class>/<n>.tif`` (C, Y, X) crops: a layout the trainer reads."""
    import tifffile

    from ..core.atomic import write_atomically

    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not overwrite:
        raise DataError(f"{folder} is not an empty folder; choose an empty one (or allow overwriting).")
    for index, (image, label) in enumerate(zip(cells.images, cells.classes)):
        crop = np.ascontiguousarray(image)
        # each file whole or not at all; axes CYX: read back as channels, not as pages
        write_atomically(folder / cells.names[int(label)] / f"{index:05d}.tif",
                         lambda handle, crop=crop: tifffile.imwrite(handle, crop, photometric="minisblack",
                                                                    metadata={"axes": "CYX"}),
                         overwrite=overwrite)
    return folder


# -- the paper's synthetic multi-channel set ------------------------------------------------------------

def synthetic_multichannel(pairs: np.ndarray, classes: np.ndarray, proteins: int, neighbours: int = 5,
                           seed: int = 0) -> np.ndarray:
    """(N, 1 + k) images from (N, 2) one-protein images: image i keeps its shape and its own protein
    (channel 1 + its class); every other class's channel is the protein of one of the ``neighbours``
    nearest images of that class by the shape channel (L2), picked at random (Osokin et al.)."""
    pairs = np.asarray(pairs)
    classes = np.asarray(classes).astype(np.int64)
    n = len(pairs)
    rng = np.random.default_rng(seed)
    shapes = pairs[:, 0].reshape(n, -1).astype(np.float32)
    out = np.zeros((n, 1 + proteins, *pairs.shape[2:]), dtype=pairs.dtype)
    out[:, 0] = pairs[:, 0]
    out[np.arange(n), 1 + classes] = pairs[:, 1]
    norms = (shapes ** 2).sum(1)
    for c in range(proteins):
        members = np.flatnonzero(classes == c)
        others = np.flatnonzero(classes != c)
        if len(members) == 0 or len(others) == 0:
            continue
        for start in range(0, len(others), 512):  # distances in blocks: bounded memory
            block = others[start:start + 512]
            d = norms[block, None] + norms[None, members] - 2 * shapes[block] @ shapes[members].T
            near = np.argsort(d, axis=1)[:, :min(neighbours, len(members))]
            pick = near[np.arange(len(block)), rng.integers(0, near.shape[1], len(block))]
            out[block, 1 + c] = pairs[members[pick], 1]
    return out


# -- cropping cells from fields ----------------------------------------------------------------------------

def scale_to_uint8(field_image: np.ndarray, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """One channel of a whole field -> uint8 by its own ``low``/``high`` percentiles."""
    data = np.asarray(field_image, dtype=np.float32)
    lo, hi = np.percentile(data, [low, high])
    if hi <= lo:
        raise DataError("A field channel is constant; there is nothing to crop.")
    return (np.clip((data - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)


def crop_cells(channels: Sequence[np.ndarray], centres: np.ndarray, size: int | tuple[int, int] = 32,
               scale: bool = True) -> np.ndarray:
    """(M, C, size, size) crops of a field's ``channels`` (each (Y, X)) centred on ``centres`` (M, 2) = (y, x).

    Channels are scaled to uint8 by their own field percentiles when ``scale``; the field
    is mirrored at its borders so cells near an edge still give full crops.
    """
    size_y, size_x = (size, size) if isinstance(size, int) else size
    planes = [np.asarray(c) for c in channels]
    if not planes or any(p.ndim != 2 or p.shape != planes[0].shape for p in planes):
        raise DataError("Cropping needs one or more field channels of the same 2D shape.")
    if scale:
        planes = [scale_to_uint8(p) for p in planes]
    stack = np.stack(planes)
    pad_y, pad_x = size_y // 2 + 1, size_x // 2 + 1
    padded = np.pad(stack, ((0, 0), (pad_y, pad_y), (pad_x, pad_x)), mode="reflect")
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    crops = np.empty((len(centres), len(planes), size_y, size_x), dtype=stack.dtype)
    for i, (y, x) in enumerate(centres):
        top = int(round(y)) - size_y // 2 + pad_y
        left = int(round(x)) - size_x // 2 + pad_x
        if not (0 <= top and top + size_y <= padded.shape[1] and 0 <= left and left + size_x <= padded.shape[2]):
            raise DataError(f"The cell centre ({y:.0f}, {x:.0f}) lies outside the field {planes[0].shape}.")
        crops[i] = padded[:, top:top + size_y, left:left + size_x]
    return crops


def centres_from_labels(labels: np.ndarray) -> np.ndarray:
    """(M, 2) centroids (y, x) of the objects of a 2D Labels array (0 = background), in label order."""
    from scipy import ndimage

    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "uib":
        raise DataError("Cell centres come from one 2D integer Labels image.")
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if not len(ids):
        raise DataError("The Labels image has no cells (only background).")
    return np.asarray(ndimage.center_of_mass(np.ones_like(labels, dtype=np.float32), labels, ids)).reshape(-1, 2)


def detect_centres(image: np.ndarray, min_area: int = 40, max_area: int = 2000, sigma: float = 2.0) -> np.ndarray:
    """Simple cell detection on a bright-field or fluorescence field: local contrast (|image - smooth
    background|), smoothed, Otsu threshold, holes filled, objects of ``min_area``..``max_area`` pixels."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    data = np.asarray(image, dtype=np.float32)
    if data.ndim != 2:
        raise DataError("Cell detection needs one 2D field.")
    background = ndimage.gaussian_filter(data, 8 * sigma)
    contrast = ndimage.gaussian_filter(np.abs(data - background), sigma)
    if float(contrast.max()) <= float(contrast.min()):
        raise DataError("The field is flat; no cells can be detected.")
    mask = ndimage.binary_fill_holes(contrast > threshold_otsu(contrast))
    labels, count = ndimage.label(mask)
    if count == 0:
        raise DataError("No cells were detected in the field.")
    areas = ndimage.sum(np.ones_like(labels), labels, np.arange(1, count + 1))
    keep = np.flatnonzero((areas >= min_area) & (areas <= max_area)) + 1
    if not len(keep):
        raise DataError(f"No detected object has a cell's size ({min_area}-{max_area} pixels).")
    return np.asarray(ndimage.center_of_mass(mask, labels, keep)).reshape(-1, 2)


def read_cellid_centres(table: str | Path, frame: int | None = None) -> dict[int, np.ndarray]:
    """Cell centres (y, x) per time frame from a Cell-ID ``*_out_all`` table (one row per cell and channel)."""
    import pandas as pd

    try:
        data = pd.read_csv(table, sep=r"\s+")
    except Exception as err:
        raise DataError(f"Cannot read {Path(table).name} as a Cell-ID table ({err}).") from None
    needed = {"cellID", "t.frame", "xpos", "ypos"}
    if not needed <= set(data.columns):
        raise DataError(f"{Path(table).name} lacks the Cell-ID columns {', '.join(sorted(needed))}.")
    data = data.drop_duplicates(["cellID", "t.frame"]).sort_values(["t.frame", "cellID"])
    frames = {int(t): rows[["ypos", "xpos"]].to_numpy(np.float64) for t, rows in data.groupby("t.frame")}
    return {frame: frames[frame]} if frame is not None else frames


#: centre columns a table may use, in order of preference: (y, x) (napari's Points export: axis-0, axis-1)
CENTRE_COLUMNS = (("y", "x"), ("axis-0", "axis-1"), ("ypos", "xpos"), ("centroid-0", "centroid-1"))


def read_centre_table(table: str | Path, fields: Sequence[str] = ("",)) -> list[np.ndarray]:
    """Cell centres (M, 2) = (y, x) per field from a CSV table (columns y and x, or one of
    :data:`CENTRE_COLUMNS`); with several ``fields`` (file names) a ``field`` column gives each row's
    field by 0-based index or file name."""
    import csv

    path = Path(table)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"Cannot read {path.name} as a CSV table ({err}).") from None
    if not rows:
        raise DataError(f"{path.name} has no rows.")
    columns = {c.strip().lower(): c for c in rows[0] if c}
    pair = next(((columns[y], columns[x]) for y, x in CENTRE_COLUMNS if y in columns and x in columns), None)
    if pair is None:
        raise DataError(f"{path.name} needs the columns y and x (or axis-0 and axis-1) of the cell centres.")
    field_column = columns.get("field")
    if field_column is None and len(fields) > 1:
        raise DataError(f"{path.name} needs a 'field' column to tell which of the {len(fields)} fields "
                        "each cell is in.")
    names = {str(i): i for i in range(len(fields))}
    for i, name in enumerate(fields):
        names.setdefault(Path(name).name, i)
        names.setdefault(Path(name).stem, i)
    out: list[list[tuple[float, float]]] = [[] for _ in fields]
    for number, row in enumerate(rows, start=2):
        try:
            y, x = float(row[pair[0]]), float(row[pair[1]])
        except (TypeError, ValueError):
            raise DataError(f"Row {number} of {path.name} has no numeric centre.") from None
        where = 0 if field_column is None else names.get(str(row[field_column]).strip())
        if where is None:
            raise DataError(f"Row {number} of {path.name} names the field '{row[field_column]}', which is not "
                            "among the fields given.")
        out[where].append((y, x))
    return [np.asarray(c, dtype=np.float64).reshape(-1, 2) for c in out]


#: rcell2 channels: bright-field is the shape, YFP and TFP are the two protein classes
RCELL2_CHANNELS = ("BF", "YFP", "TFP")
RCELL2_NOTE = ("rcell2.examples budding-yeast fields (bright-field + YFP + TFP, Cell-ID centres; MIT, "
               "Beldorati Stark, Méndez, Constantinou; github.com/darksideoftheshmoo/rcell2.examples)")


def rcell2_cells(root: str | Path, size: int | tuple[int, int] = 32) -> CellSet:
    """Every Cell-ID cell of the rcell2 fields as a (3, size, size) uint8 crop: bright-field, YFP, TFP.

    About 1,800 cells (6 fields: positions 4 and 12 at times 10, 20, 30); ``classes`` are
    zeros (each crop holds both proteins; :meth:`CellSet.pairs` gives one image per protein),
    ``info["groups"]`` the field of each cell (to split train/test by field).
    """
    import tifffile

    root = Path(root)
    fields, tables = root / "fields", root / "cellid"
    if not fields.is_dir() or not tables.is_dir():
        raise DataError(f"{root} is not the rcell2 folder (it needs fields/ and cellid/).")
    crops, groups, files = [], [], []
    for table in sorted(tables.glob("Position*_out_all")):
        position = table.name.split("_")[0]
        for frame, centres in read_cellid_centres(table).items():
            time = 10 * (frame + 1)
            planes = []
            for channel in RCELL2_CHANNELS:
                path = fields / f"{channel}_{position}_time{time}.tif"
                if not path.is_file():
                    raise DataError(f"The rcell2 field {path.name} is missing.")
                planes.append(tifffile.imread(path))
            crops.append(crop_cells(planes, centres, size))
            groups += [f"{position}_time{time}"] * len(centres)
            files += [f"{position}_time{time}_cell{i}" for i in range(len(centres))]
    if not crops:
        raise DataError(f"{tables} holds no Cell-ID tables (Position*_out_all).")
    images = np.concatenate(crops)
    return CellSet(images, np.zeros(len(images), np.int64), ["YFP", "TFP"], files,
                   ["bright-field", "YFP", "TFP"], {"groups": np.asarray(groups), "source": RCELL2_NOTE})


#: the shipped cell model's data (build script and benchmark): 32x32 rcell2 crops, 20 % of the cells held out
ZOO_CROP, ZOO_HELD_OUT, ZOO_SPLIT_SEED = 32, 0.2, 0


def zoo_cell_split(root: str | Path) -> tuple[CellSet, CellSet]:
    """(training, held-out) rcell2 cells of the shipped model: the one split its card's metrics use."""
    return rcell2_cells(root, ZOO_CROP).split(ZOO_HELD_OUT, ZOO_SPLIT_SEED)


def crop_field_cells(channels: Sequence[np.ndarray], centres: np.ndarray | None = None,
                     labels: np.ndarray | None = None, size: int = 32,
                     channel_names: Sequence[str] = ()) -> CellSet:
    """The "crop cells" step on a user's own field (CLI and widget): ``channels`` (shape first, then the
    proteins; arrays (Y, X) as the layers hold them) -> a :class:`CellSet` of (C, size, size) uint8 crops.

    Centres come from ``centres`` ((M, 2) y, x: a table, a Points layer), else from ``labels`` (a
    Labels layer), else from :func:`detect_centres` on the shape channel.
    """
    if centres is None:
        centres = centres_from_labels(labels) if labels is not None else detect_centres(channels[0])
    crops = crop_cells(channels, np.asarray(centres), size)
    names = list(channel_names) or ["shape"] + [f"protein {i + 1}" for i in range(len(channels) - 1)]
    return CellSet(crops, np.zeros(len(crops), np.int64), names[1:] or ["protein"],
                   [f"cell{i}" for i in range(len(crops))], names, {"centres": np.asarray(centres)})
