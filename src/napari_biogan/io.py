"""napari layers <-> our TIFFs: the npe2 writer and reader, and generated samples as layer data.

No Qt here. A model's outputs become layers by kind (:func:`output_layers`): an
image output one image layer per channel, a signed map a diverging overlay, a labels
output a Labels layer; each with named axes and the provenance in
``metadata["napari_biogan"]``. File > Save Layers writes the same ImageJ hyperstack
with provenance as the Export widget (core/export.py; Labels layers as integer
labels files), and the reader opens such a file back into the same kind of layer,
provenance included. TIFFs without our provenance are left to napari's own reader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .core.errors import DataError
from .core.export import INSERTED_AXES_KEY, LABELS_DTYPE, PROVENANCE_KEY, read_provenance, write_tiff

LayerData = tuple[Any, dict[str, Any], str]
TIFF_SUFFIXES = (".tif", ".tiff")
_AXIS_LETTERS = "NTZCYX"


# -- generated samples -> layers --------------------------------------------------------------

def sample_layers(images: np.ndarray, channels: Sequence[Any], axes: str, name: str,
                  provenance: dict[str, Any]) -> list[LayerData]:
    """One image layer per channel from ``images`` shaped like ``axes`` with a "C" axis.

    ``axes`` names every axis of ``images`` (e.g. "NCYX", "NCTYX", "CYX");
    ``channels`` are :class:`core.registry.Channel`-like (``name``, ``colormap``).
    """
    axes = axes.upper()
    if images.ndim != len(axes) or "C" not in axes:
        raise DataError(f"Cannot split an array of shape {images.shape} with axes '{axes}' into channels.")
    c_axis = axes.index("C")
    layer_axes = axes.replace("C", "")
    listed = [{"name": ch.name, "colormap": ch.colormap} for ch in channels]
    layers = []
    for index, channel in enumerate(channels):
        data = np.take(images, index, axis=c_axis)
        label = name if len(channels) == 1 else f"{name} {channel.name}"
        meta = {**provenance, "axes": layer_axes, "channel": channel.name, "channels": listed}
        layers.append((data, {"name": label, "colormap": channel.colormap, "blending": "additive"
                              if len(channels) > 1 else "translucent", "contrast_limits": (0.0, 1.0),
                              "axis_labels": tuple(layer_axes), "metadata": {PROVENANCE_KEY: meta}},
                       "image"))
    return layers


def output_layers(outputs: dict[str, np.ndarray], specs: Sequence[Any], lead: str, sample_axes: Sequence[str],
                  name: str, provenance: dict[str, Any]) -> list[LayerData]:
    """Layer tuples for a model's converted outputs (``Model.run``), by output kind.

    ``lead`` names the axes before the sample axes ("N" for N samples, "T" for a
    path, "" for one sample). Image outputs give one Image layer per channel;
    signed maps an Image layer with a diverging colormap and symmetric contrast
    (an overlay, never clamped); labels a Labels layer.
    """
    from .core.contract import LABELS, SIGNED

    by_name = {spec.name: spec for spec in specs}
    several = len([k for k in outputs if k in by_name]) > 1
    layers: list[LayerData] = []
    for key, data in outputs.items():
        spec = by_name.get(key)
        if spec is None:
            continue
        label = f"{name} {key}" if several else name
        meta = {**provenance, "output": key, "output_kind": spec.kind}
        if spec.kind == LABELS:
            axes = lead + "".join(sample_axes)
            labels_meta = {**meta, "axes": axes, "classes": list(spec.classes)}
            layers.append((np.asarray(data), {"name": label, "axis_labels": tuple(axes),
                                              "metadata": {PROVENANCE_KEY: labels_meta}}, "labels"))
            continue
        axes = lead + "C" + "".join(sample_axes)
        made = sample_layers(np.asarray(data), spec.channels, axes, label, meta)
        if spec.kind == SIGNED:
            limit = float(np.abs(data).max()) or 1.0
            for _, kwargs, _ in made:
                kwargs.update(contrast_limits=(-limit, limit), blending="translucent", opacity=0.7)
        layers.extend(made)
    return layers


# -- layers -> one array with named axes ------------------------------------------------------------

def named_axes(ndim: int, metadata: dict[str, Any] | None, axis_labels, ends_yx: bool = False) -> str:
    """Axis letters from our provenance (``metadata[PROVENANCE_KEY]["axes"]``), else from axis labels
    that are distinct single letters (ending in Y, X when ``ends_yx``); "" when neither names them."""
    ours = str(((metadata or {}).get(PROVENANCE_KEY) or {}).get("axes", "")).upper()
    if len(ours) == ndim:
        return ours
    labels = [str(a).upper() for a in (axis_labels or ())]
    if len(labels) == ndim and all(len(a) == 1 and a in _AXIS_LETTERS for a in labels) \
            and len(set(labels)) == ndim and (not ends_yx or labels[-2:] == ["Y", "X"]):
        return "".join(labels)
    return ""


def layer_axes(data: np.ndarray, meta: dict[str, Any]) -> str:
    """The axis letters of a layer: from our provenance, else its axis labels, else a guess by ndim."""
    ndim = np.ndim(data)
    axes = named_axes(ndim, meta.get("metadata"), meta.get("axis_labels"), ends_yx=True)
    if axes:
        return axes
    guesses = {2: "YX", 3: "NYX", 4: "NTYX"}
    if ndim not in guesses:
        raise DataError(f"Cannot tell the axes of a {ndim}-D layer; export 2-D to 4-D image layers.")
    return guesses[ndim]


def own_data(data: Any, meta: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """A layer's data and meta without the length-1 axes the plugin inserted to line it up with a
    video (``INSERTED_AXES_KEY``), so a file holds the stack as it was generated."""
    data = np.asarray(data)
    inserted = tuple(int(i) for i in (meta.get("metadata") or {}).get(INSERTED_AXES_KEY) or ())
    inserted = tuple(i for i in inserted if 0 <= i < data.ndim and data.shape[i] == 1)
    if not inserted:
        return data, meta
    labels = meta.get("axis_labels")
    meta = {**meta, "axis_labels": tuple(a for i, a in enumerate(labels) if i not in inserted)} if labels else meta
    return np.squeeze(data, axis=inserted), meta


def stack_layers(layer_data: Sequence[LayerData]) -> tuple[np.ndarray, str, dict[str, Any]]:
    """Image layers of one shape -> (array, axes, provenance); several layers become channels."""
    images = [own_data(d, m) for d, m, kind in layer_data if kind == "image"]
    if not images:
        raise DataError("There is no image layer to save.")
    arrays, axes_list, names, provs = [], [], [], []
    for data, meta in images:
        axes = layer_axes(data, meta)
        if meta.get("rgb") and data.shape[-1] in (3, 4):  # RGB layers: colour becomes the channel axis
            data, axes = np.moveaxis(data, -1, 0), "C" + axes[:-1]
        arrays.append(data)
        axes_list.append(axes)
        names.append(str(meta.get("name", f"layer {len(names)}")))
        provs.append((meta.get("metadata") or {}).get(PROVENANCE_KEY) or {})
    if len({a.shape for a in arrays}) > 1 or len(set(axes_list)) > 1:
        shapes = ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrays))
        raise DataError(f"Layers saved together must have the same shape and axes; got {shapes}.")
    axes = axes_list[0]
    if len(arrays) == 1:
        stack = arrays[0] if "C" in axes else arrays[0][np.newaxis]
        axes = axes if "C" in axes else "C" + axes
    elif "C" in axes:
        raise DataError("Several layers that each have channels cannot be saved as one file.")
    else:
        stack, axes = np.stack(arrays), "C" + axes
    provenance = {k: v for k, v in provs[0].items() if k not in ("axes", "channel")}
    provenance["channels"] = [{"name": p.get("channel", n), "colormap": str(_colormap_name(m))}
                              for p, n, (_, m) in zip(provs, names, images)] if len(images) > 1 \
        else provs[0].get("channels") or [{"name": provs[0].get("channel", names[0]),
                                           "colormap": str(_colormap_name(images[0][1]))}]
    provenance["layers"] = names
    return stack, axes, provenance


def _colormap_name(meta: dict[str, Any]) -> str:
    cmap = meta.get("colormap", "gray")
    return getattr(cmap, "name", cmap) if not isinstance(cmap, dict) else cmap.get("name", "gray")


def labels_stack(data: np.ndarray, meta: dict[str, Any]) -> tuple[np.ndarray, str, dict[str, Any]]:
    """A Labels layer -> (integer array, axes, provenance) for :func:`core.export.write_tiff` "labels"."""
    data, meta = own_data(data, meta)
    axes = layer_axes(data, meta)
    if "C" in axes:
        raise DataError("A Labels layer with a channel axis cannot be saved; labels have no channels.")
    ours = (meta.get("metadata") or {}).get(PROVENANCE_KEY) or {}
    provenance = {k: v for k, v in ours.items() if k not in ("axes", "channel", "channels")}
    provenance["layers"] = [str(meta.get("name", "labels"))]
    return data, axes, provenance


# -- npe2 writer ---------------------------------------------------------------------------------------

def file_contents(layer_data: Sequence[LayerData],
                  dtype: str = "float32") -> tuple[np.ndarray, str, dict[str, Any], str]:
    """Layers saved together -> (array, axes, provenance, dtype) for :func:`core.export.write_tiff`.

    Image layers of one shape become channels of one file in ``dtype``; a signed map
    is always float32 (uint16 would clamp its negative values); one Labels layer is
    written as labels. Labels and images do not mix in one file.
    """
    kinds = {kind for _, _, kind in layer_data}
    if "labels" in kinds and kinds - {"labels"}:
        raise DataError("Save labels and images to separate files.")
    if "labels" in kinds:
        if len(layer_data) > 1:
            raise DataError("Save one Labels layer per file.")
        data, axes, provenance = labels_stack(layer_data[0][0], layer_data[0][1])
        return data, axes, provenance, LABELS_DTYPE
    stack, axes, provenance = stack_layers(layer_data)
    if provenance.get("output_kind") == "signed":
        dtype = "float32"
    return np.asarray(stack, dtype=np.float32), axes, provenance, dtype


def write_layers(path: str, layer_data: list[LayerData]) -> list[str]:
    """npe2 writer: image layers -> one ImageJ TIFF with provenance (float32); one Labels layer ->
    a labels TIFF (integers as they are).

    napari's Save dialog has already asked before replacing a file, so this overwrites.
    """
    data, axes, provenance, dtype = file_contents(layer_data)
    if Path(path).suffix.lower() not in TIFF_SUFFIXES:
        path = f"{path}.tif"
    return [str(write_tiff(path, data, axes, provenance, dtype=dtype, overwrite=True))]


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 writer for one Labels layer (npe2 calls a one-layer writer with data and meta, not a list)."""
    return write_layers(path, [(data, meta, "labels")])


# -- npe2 reader -----------------------------------------------------------------------------------------

def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """npe2 reader hook: our TIFFs (layers as they were saved, with provenance), any other TIFF
    (LZW and other compressions included, named axes), and a folder of TIFF frames (one time-lapse)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if os.path.isdir(path):
        try:
            from .data.tiff_io import list_tiffs

            return read_timelapse if len(list_tiffs(path)) >= 1 else None
        except DataError:
            return None
    if not str(path).lower().endswith(TIFF_SUFFIXES) or not os.path.isfile(path):
        return None
    try:
        ours = bool(read_provenance(path).get("axes_in"))
    except DataError:
        return None
    return read_tiff if ours else read_plain_tiff


def read_timelapse(path: str | list[str]) -> list[LayerData]:
    """A folder of TIFF frames (t000.tif, t001.tif... in natural order) -> one (T, Y, X) image layer."""
    from .data.tiff_io import load_image_stack

    if isinstance(path, (list, tuple)):
        path = path[0]
    movie = load_image_stack(path)
    axes = "T" + "YX" if movie.ndim == 3 else None
    meta: dict[str, Any] = {"name": Path(path).name or str(path),
                            "metadata": {"source_file": str(path), "frames": len(movie)}}
    if axes:
        meta["axis_labels"] = tuple(axes)
    return [(movie, meta, "image")]


def read_plain_tiff(path: str | list[str]) -> list[LayerData]:
    """A TIFF without our provenance, as microscopes write it -> one image layer with its axes named."""
    from .data.tiff_io import read_tiff as read_any_tiff

    if isinstance(path, (list, tuple)):
        path = path[0]
    data, axes = read_any_tiff(path)
    meta: dict[str, Any] = {"name": Path(path).stem, "metadata": {"source_file": str(path), "axes": axes}}
    rgb = axes.endswith("S") and data.shape[-1] in (3, 4)
    named = axes[:-1] if rgb else axes
    if len(set(named)) == len(named) and named.endswith("YX"):
        meta["axis_labels"] = tuple(named)
    if rgb:
        meta["rgb"] = True
    return [(data, meta, "image")]


def read_tiff(path: str | list[str]) -> list[LayerData]:
    """Our TIFF -> the layers it was saved from, provenance as layer metadata.

    Images give one image layer per channel; a signed map (provenance ``output_kind``
    "signed") an image layer with a diverging colormap and symmetric contrast; a labels
    file (``layer_type`` "labels") a Labels layer with its class names.
    """
    from .core.contract import IMAGE, LABELS, SIGNED, Channel, Output
    from .core.export import read_labels
    from .data.tiff_io import read_tiff as read_any_tiff

    if isinstance(path, (list, tuple)):
        path = path[0]
    provenance = read_provenance(path)
    data, axes = read_any_tiff(path)  # memory and damage checks; our files come back in their written axes
    if provenance.get("layer_type") == LABELS or provenance.get("dtype") == LABELS_DTYPE:
        kind = LABELS
        data = read_labels(data)
    else:
        kind = SIGNED if provenance.get("output_kind") == SIGNED else IMAGE
        if provenance.get("dtype") == "uint16" and data.dtype == np.uint16:
            data = data.astype(np.float32) / 65535.0  # back to the generator's [0, 1]
        # the channel axis first: output_layers splits "C" + the other axes
        data, axes = (np.moveaxis(data, axes.index("C"), 0), "C" + axes.replace("C", "")) if "C" in axes \
            else (data[np.newaxis], "C" + axes)
    listed = list(provenance.get("channels") or [])
    n_channels = data.shape[0] if kind != LABELS else 0
    fallback = "PiYG" if kind == SIGNED else "gray"
    channels = [Channel(str(c.get("name", f"channel {i}")), str(c.get("colormap", fallback)))
                for i, c in enumerate(listed[:n_channels])]
    channels += [Channel(f"channel {i}", fallback) for i in range(len(channels), n_channels)]
    spec = Output(str(provenance.get("output", "image")), kind, tuple(channels) or (Channel("image"),),
                  tuple(str(c) for c in provenance.get("classes") or ()))
    clean = {k: v for k, v in provenance.items() if k not in ("axes_in", "layers")}
    clean["source_file"] = str(path)
    return output_layers({spec.name: data}, [spec], "", axes.replace("C", ""), Path(path).stem, clean)
