"""TIFF export: ImageJ hyperstacks (TZCYX) with provenance in the description."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .atomic import exists_message, write_atomically
from .errors import DataError, OutputExistsError

PROVENANCE_KEY = "napari_biogan"
#: layer metadata key: positions of length-1 axes the plugin inserted into a layer's data so that a
#: stack without T lines up with a video in napari (_qt/layer_axes.py); never written to files
INSERTED_AXES_KEY = "napari_biogan_inserted_axes"
DTYPES = ("float32", "uint16")  # pixel types of image exports (the Export widget's choices)
LABELS_DTYPE = "labels"  # integer class maps, written as they are (never scaled)
#: ImageJ stores no int32: larger label values go in float32, which holds whole numbers exactly up to 2**24
MAX_LABEL = 2 ** 24


def to_hyperstack(data: np.ndarray, axes: str) -> np.ndarray:
    """Reorder an array with named axes (letters from N, T, Z, C, Y, X) to ImageJ's TZCYX.

    N (samples) becomes ImageJ's T when there is no T, else Z (ImageJ has no N axis).
    """
    axes = axes.upper()
    if data.ndim != len(axes) or not axes.endswith("YX") or len(set(axes)) != len(axes):
        raise DataError(f"Cannot export an array of shape {data.shape} with axes '{axes}'.")
    mapping = {"N": "T" if "T" not in axes else "Z"}
    named = "".join(mapping.get(a, a) for a in axes)
    if len(set(named)) != len(named) or any(a not in "TZCYX" for a in named):
        raise DataError(f"Axes '{axes}' do not fit an ImageJ hyperstack (TZCYX).")
    for missing in "TZC":
        if missing not in named:
            data, named = data[np.newaxis], missing + named
    order = [named.index(a) for a in "TZCYX"]
    return np.transpose(data, order)


def from_hyperstack(stack: np.ndarray, axes_in: str, name: str = "The TIFF") -> np.ndarray:
    """Undo :func:`to_hyperstack`: a (T, Z, C, Y, X[, S=1]) stack back to the axes it was written with."""
    axes_in = axes_in.upper()
    if stack.ndim == 6 and stack.shape[-1] == 1:  # tifffile's samples-per-pixel axis
        stack = stack[..., 0]
    mapping = {"N": "T" if "T" not in axes_in else "Z"}
    named = "".join(mapping.get(a, a) for a in axes_in)
    if (stack.ndim != 5 or not axes_in.endswith("YX") or len(set(named)) != len(named)
            or any(a not in "TZCYX" for a in named)):
        raise DataError(f"{name} records axes '{axes_in}' that do not fit its shape {stack.shape}.")
    keep = ["TZCYX".index(a) for a in named]
    dropped = tuple(i for i in range(5) if i not in keep)
    if any(stack.shape[i] != 1 for i in dropped):
        raise DataError(f"{name} has shape {stack.shape}, which does not match its recorded axes '{axes_in}'.")
    data = np.squeeze(stack, axis=dropped)
    left = sorted(keep)  # the axes left after squeezing, in TZCYX order
    return np.transpose(data, [left.index(i) for i in keep])


def write_tiff(path: str | os.PathLike, data: np.ndarray, axes: str, provenance: dict[str, Any],
               dtype: str = "float32", overwrite: bool = False) -> Path:
    """Write ``data`` as an ImageJ hyperstack with provenance.

    dtype "float32" writes values as they are ([0, 1] for images, signed maps
    unclamped); "uint16" scales [0, 1] to 0..65535 (the scale is written in the
    provenance); "labels" writes whole non-negative class values as they are, in the
    smallest type ImageJ stores (uint8, uint16, else float32 holding whole numbers) and
    records ``"layer_type": "labels"``. The file appears whole or not at all, and never
    replaces an existing file unless ``overwrite`` (see :mod:`.atomic`).
    """
    import tifffile

    path = Path(path)
    if not overwrite and os.path.lexists(path):  # before converting: refuse without doing the work
        raise OutputExistsError(exists_message(path))
    if dtype not in (*DTYPES, LABELS_DTYPE):
        raise DataError(f"Unknown export type '{dtype}'; choose one of {', '.join((*DTYPES, LABELS_DTYPE))}.")
    info = {**provenance, "package_version": __version__, "axes_in": axes.upper(), "dtype": dtype}
    if dtype == LABELS_DTYPE:
        stack = to_hyperstack(label_values(data), axes)
        info.update(layer_type="labels", stored_as=str(stack.dtype))
    else:
        stack = to_hyperstack(np.asarray(data, dtype=np.float32), axes)
    if dtype == "uint16":
        stack = np.round(np.clip(stack, 0.0, 1.0) * 65535).astype(np.uint16)
        info["scale"] = "value / 65535 = generator output in [0, 1]"
    metadata = {"axes": "TZCYX", "Info": json.dumps(info), PROVENANCE_KEY: json.dumps(info)}

    def write(handle) -> None:
        tifffile.imwrite(handle, stack, imagej=True, metadata=metadata)

    return write_atomically(path, write, overwrite=overwrite)


def label_values(data: np.ndarray) -> np.ndarray:
    """Class values as the smallest type ImageJ stores them in: uint8, uint16, else float32.

    DataError for negative or fractional values, and for values float32 cannot hold exactly.
    """
    data = np.asarray(data)
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype.kind not in "uif":
        raise DataError(f"Labels must be whole numbers, not {data.dtype} values.")
    if data.size == 0:
        raise DataError("There are no labels to write.")
    if data.dtype.kind == "f" and not (np.isfinite(data).all() and np.array_equal(data, np.round(data))):
        raise DataError("Labels must be whole numbers; these have fractional or missing values.")
    low, high = data.min(), data.max()
    if low < 0:
        raise DataError(f"Labels must be 0 or more; the smallest here is {low:g}.")
    if high <= np.iinfo(np.uint8).max:
        return data.astype(np.uint8)
    if high <= np.iinfo(np.uint16).max:
        return data.astype(np.uint16)
    if high <= MAX_LABEL:
        return data.astype(np.float32)
    raise DataError(f"Label values up to {MAX_LABEL:,} fit an ImageJ TIFF; the largest here is {high:g}.")


def read_labels(data: np.ndarray) -> np.ndarray:
    """Stored labels back as integers (float32 storage holds whole numbers; see :func:`label_values`)."""
    data = np.asarray(data)
    return data.astype(np.int32) if data.dtype.kind == "f" else data


def provenance_of(tif) -> dict[str, Any]:
    """The provenance in an open ``tifffile.TiffFile`` ({} if it has none)."""
    meta = tif.imagej_metadata or {}
    for key in (PROVENANCE_KEY, "Info"):
        if key in meta:
            try:
                found = json.loads(meta[key])
            except (TypeError, json.JSONDecodeError):
                continue
            if isinstance(found, dict):
                return found
    return {}


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance written by :func:`write_tiff` ({} if the file has none)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return provenance_of(tif)
    except (OSError, ValueError, tifffile.TiffFileError) as err:
        raise DataError(f"Cannot read {Path(path).name} as a TIFF file.") from err


def read_tiff_axes(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """A TIFF written by :func:`write_tiff` as (array, axes) in the axes it was written with.

    E.g. clips written with axes "NTYX" come back (N, T, Y, X), not as ImageJ's (T=frames,
    Z=clips). Values are as stored (uint16 exports stay 0..65535). DataError for a TIFF
    without our provenance: its axes are unknown. (data.tiff_io reads any TIFF, with
    memory and damage checks, and uses :func:`from_hyperstack` for ours.)
    """
    import tifffile

    name = Path(path).name
    try:
        with tifffile.TiffFile(path) as tif:
            axes_in = str(provenance_of(tif).get("axes_in", "")).upper()
            if not axes_in:
                raise DataError(f"{name} was not written by napari-biogan, so its axes are not recorded.")
            series = tif.series[0]
            stack = series.asarray().reshape(series.get_shape(False))
    except DataError:
        raise
    except Exception as err:  # tifffile, zlib and OS errors all mean: this file cannot be read
        raise DataError(f"Cannot read {name} as a TIFF file.") from err
    return from_hyperstack(stack, axes_in, name), axes_in


# -- every output of a model, one file each --------------------------------------------------------------

def output_paths(path: str | os.PathLike, names: list[str], overwrite: bool = False) -> dict[str, Path]:
    """Where each output goes: ``path`` (``.tif`` added if missing) for one output, else
    ``STEM_<output>.tif`` beside it; all are checked before any work (OutputExistsError)."""
    base = Path(path)
    if base.suffix.lower() not in (".tif", ".tiff"):
        base = base.with_name(base.name + ".tif")
    stem, suffix = base.name[:-len(base.suffix)], base.suffix
    paths = {names[0]: base} if len(names) == 1 else {n: base.with_name(f"{stem}_{n}{suffix}") for n in names}
    taken = [p for p in paths.values() if os.path.lexists(p)]
    if taken and not overwrite:
        raise OutputExistsError(exists_message(taken[0]))
    return paths


def write_outputs(paths: dict[str, Path], outputs: dict[str, np.ndarray], specs, lead: str,
                  sample_axes: str, provenance: dict[str, Any], dtype: str = "float32",
                  overwrite: bool = False) -> list[Path]:
    """Every output of a model (``Model.run``) into its TIFF: images as ``dtype``, signed maps float32
    (never clamped), labels as integers; each file's provenance names its output, kind and channels."""
    from .contract import LABELS, SIGNED

    kinds = {spec.name: spec for spec in specs}
    written = []
    for name, path in paths.items():
        spec = kinds[name]
        info: dict[str, Any] = {**provenance, "output": name, "output_kind": spec.kind}
        if spec.kind == LABELS:
            axes, kind_dtype, info["classes"] = lead + sample_axes, LABELS_DTYPE, list(spec.classes)
        else:
            axes, kind_dtype = lead + "C" + sample_axes, "float32" if spec.kind == SIGNED else dtype
            info["channels"] = [{"name": c.name, "colormap": c.colormap} for c in spec.channels]
        written.append(write_tiff(path, outputs[name], axes, info, dtype=kind_dtype, overwrite=overwrite))
    return written
