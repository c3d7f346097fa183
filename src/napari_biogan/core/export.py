"""TIFF export: ImageJ hyperstacks (TZCYX) with provenance in the description."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .errors import DataError, OutputExistsError, WriteError

PROVENANCE_KEY = "napari_biogan"
DTYPES = ("float32", "uint16")


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


def write_tiff(path: str | os.PathLike, data: np.ndarray, axes: str, provenance: dict[str, Any],
               dtype: str = "float32", overwrite: bool = False) -> Path:
    """Write ``data`` (values in [0, 1]) as an ImageJ hyperstack with provenance.

    dtype "uint16" scales [0, 1] to 0..65535; the scale is written in the provenance.
    """
    import tifffile

    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; choose another name or allow overwriting.")
    if dtype not in DTYPES:
        raise DataError(f"Unknown export type '{dtype}'; choose one of {', '.join(DTYPES)}.")
    stack = to_hyperstack(np.asarray(data, dtype=np.float32), axes)
    if dtype == "uint16":
        stack = np.round(np.clip(stack, 0.0, 1.0) * 65535).astype(np.uint16)
    info = {**provenance, "package_version": __version__, "axes_in": axes.upper(), "dtype": dtype}
    if dtype == "uint16":
        info["scale"] = "value / 65535 = generator output in [0, 1]"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(tmp, stack, imagej=True, metadata={"axes": "TZCYX", "Info": json.dumps(info),
                                                            PROVENANCE_KEY: json.dumps(info)})
        os.replace(tmp, path)
    except OSError as err:
        raise WriteError(f"Cannot write {path}: {err.strerror or err}.") from err
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance written by :func:`write_tiff` ({} if the file has none)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            meta = tif.imagej_metadata or {}
    except (OSError, ValueError, tifffile.TiffFileError) as err:
        raise DataError(f"Cannot read {Path(path).name} as a TIFF file.") from err
    for key in (PROVENANCE_KEY, "Info"):
        if key in meta:
            try:
                return json.loads(meta[key])
            except (TypeError, json.JSONDecodeError):
                continue
    return {}
