"""2D sample stacks beside videos: napari lines layers up by their LAST axes, so a stack of 2D
samples (N, Y, X) next to a video (N, T, Y, X) would put its N on the video's T slider.

No Qt here (napari layers and numpy only). When a viewer holds a layer with a T axis, our
layers without one get length-1 axes inserted where the video has T (so (N, 1, Y, X)): a
view of the same array, with the inserted axes named, scaled to span the video's whole time
range (a length-1 axis shows nothing once the slider leaves it otherwise) and listed in the
layer's metadata under :data:`INSERTED_KEY`. :func:`layer_array` gives the layer's own array
back (a view): every place in ``_qt/`` that reads a layer's array for the plugin's own
purposes goes through it. :func:`watch` keeps a viewer aligned as layers come and go
(readers' layers arrive through the same ``inserted`` event); without a video the inserted
axes are removed again.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import numpy as np

from ..core.export import INSERTED_AXES_KEY
from ..io import named_axes

_log = logging.getLogger(__name__)

#: layer metadata key: the positions of the axes this module inserted into the layer's data
INSERTED_KEY = INSERTED_AXES_KEY
_WATCHED: "weakref.WeakSet[Any]" = weakref.WeakSet()


# -- reading a layer ---------------------------------------------------------------------------------------

def inserted_axes(layer) -> tuple[int, ...]:
    """The positions of the axes :func:`align` inserted into ``layer``'s data (() for most layers)."""
    value = (getattr(layer, "metadata", None) or {}).get(INSERTED_KEY) or ()
    return tuple(int(i) for i in value)


def layer_array(layer):
    """The layer's own array: its data without the inserted axes (a view, never a copy)."""
    data = layer.data
    inserted = inserted_axes(layer)
    if not inserted or getattr(layer, "multiscale", False):
        return data
    return data[tuple(0 if i in inserted else slice(None) for i in range(len(data.shape)))]


def data_point(layer, world_point) -> np.ndarray:
    """The viewer's position in the coordinates of :func:`layer_array` (inserted axes left out)."""
    coords = np.asarray(layer.world_to_data(world_point), dtype=float)
    inserted = inserted_axes(layer)
    return np.array([c for i, c in enumerate(coords) if i not in inserted])


def own_metadata(layer) -> dict[str, Any]:
    """The layer's metadata without the inserted-axes note (what an export or a copy should carry)."""
    return {k: v for k, v in dict(layer.metadata or {}).items() if k != INSERTED_KEY}


def own_axis_labels(layer) -> tuple[str, ...]:
    """The layer's axis labels without those of the inserted axes."""
    inserted = inserted_axes(layer)
    return tuple(a for i, a in enumerate(layer.axis_labels) if i not in inserted)


def own_axes(layer) -> str:
    """The axis letters of :func:`layer_array` ("NYX", "NTYX", "TYX"...): from our provenance, else the
    layer's axis labels when they are single letters; "" when unknown (a user's unnamed layer, RGB)."""
    if getattr(layer, "rgb", False) or getattr(layer, "multiscale", False) or not hasattr(layer, "axis_labels"):
        return ""
    ndim = len(layer_array(layer).shape)
    return named_axes(ndim, layer.metadata, own_axis_labels(layer))


# -- what to insert ------------------------------------------------------------------------------------

def wanted_axes(axes: str, video: str) -> tuple[int, ...]:
    """Where to insert length-1 axes so a layer with ``axes`` lines up with ``video``'s axes by letter.

    Both are aligned from the right over their common trailing axes (the sample's Y, X); the
    video's axes from its T up to those (usually just "T") are inserted before them, e.g.
    "NYX" beside "NTYX" -> (1,) (N, 1, Y, X). () when nothing would land on T: the layer has a
    T itself, is one sample (only the common axes), or shares a letter with what would be inserted.
    """
    if not axes or not video or "T" in axes or "T" not in video:
        return ()
    common = 0
    while common < min(len(axes), len(video)) and axes[-1 - common] == video[-1 - common]:
        common += 1
    t = video.index("T")
    between = video[t:len(video) - common]
    lead = len(axes) - common
    if common == 0 or lead == 0 or not between or t >= len(video) - common or any(a in axes for a in between):
        return ()
    return tuple(range(lead, lead + len(between)))


def video_layout(viewer, skip=None) -> tuple[str, float]:
    """(the axes of the viewer's video layer with the most axes, a scale for inserted axes that spans the
    time of every video layer); ("", 1.0) without a video. ``skip``: a layer not to count."""
    best, reach = "", 0.0
    for layer in viewer.layers:
        if layer is skip or inserted_axes(layer):
            continue
        axes = own_axes(layer)
        if "T" not in axes:
            continue
        if len(axes) > len(best):
            best = axes
        t = layer.ndim - len(axes) + axes.index("T")  # the layer's T axis (its data's, no inserted axes)
        extent = np.asarray(layer.extent.world)[:, t]
        reach = max(reach, float(np.abs(extent).max()))
    # world t maps to data t / scale, which must stay within the one plane's half-width (0.5)
    return best, 2.0 * (reach + 1.0)


def padded(data, positions: tuple[int, ...]):
    """``data`` with length-1 axes at ``positions`` (a view)."""
    if not positions:
        return data
    if isinstance(data, np.ndarray):
        return np.expand_dims(data, positions)
    # array-likes without np.expand_dims (dask, zarr): index with None where the new axes go
    return data[tuple(None if axis in positions else slice(None)
                      for axis in range(len(data.shape) + len(positions)))]


def _insert(values, positions: tuple[int, ...], fill) -> list:
    out = list(values)
    for p, value in zip(positions, fill):
        out.insert(p, value)
    return out


def prepare_new(viewer, data, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A new layer's (data, kwargs) padded for ``viewer`` before it is added (``_common.add_layers``):
    unchanged unless the viewer holds a video and the layer's axes need length-1 axes to line up."""
    if getattr(data, "ndim", None) is None or kwargs.get("rgb") or kwargs.get("multiscale"):
        return data, kwargs
    axes = named_axes(np.ndim(data), kwargs.get("metadata"), kwargs.get("axis_labels"))
    video, scale = video_layout(viewer)
    want = wanted_axes(axes, video)
    if not want:
        return data, kwargs
    letters = _letters(axes, video, want)
    kwargs = dict(kwargs)
    kwargs["metadata"] = {**(kwargs.get("metadata") or {}), INSERTED_KEY: list(want)}
    kwargs["axis_labels"] = tuple(_insert(axes, want, letters))
    for key, fill in (("scale", scale), ("translate", 0.0)):
        if kwargs.get(key) is not None:
            kwargs[key] = tuple(_insert(kwargs[key], want, [fill] * len(want)))
        elif key == "scale":
            kwargs[key] = tuple(_insert([1.0] * np.ndim(data), want, [fill] * len(want)))
    return padded(data, want), kwargs


def _letters(axes: str, video: str, want: tuple[int, ...]) -> list[str]:
    """The names of the inserted axes: the video's, from its T on (``axes`` has none of them)."""
    t = video.index("T")
    return list(video[t:t + len(want)])


# -- keeping a viewer aligned --------------------------------------------------------------------------------

def align(viewer) -> list:
    """Insert (or remove) length-1 axes in our layers so none follows a video's T slider; returns the
    layers changed. Layers without axis names of ours (or single-letter axis labels) are left alone."""
    from napari.layers import Image, Labels

    video, scale = video_layout(viewer)
    changed = []
    for layer in list(viewer.layers):
        if not isinstance(layer, (Image, Labels)) or getattr(layer, "multiscale", False) \
                or getattr(layer, "rgb", False):
            continue
        axes = own_axes(layer)
        if "T" in axes and not inserted_axes(layer):
            continue  # a video: the others line up with it
        want = wanted_axes(axes, video)
        have = inserted_axes(layer)
        if want == have and (not want or np.allclose([layer.scale[i] for i in want], scale)):
            continue
        if not _plain_transform(layer):
            continue  # rotated or sheared layers: inserting axes would need their matrices rebuilt
        set_inserted(layer, want, _letters(axes, video, want) if want else [], scale)
        changed.append(layer)
    return changed


def _plain_transform(layer) -> bool:
    n = layer.ndim
    return np.allclose(layer.rotate, np.eye(n)) and np.allclose(layer.shear, 0) \
        and np.allclose(layer.affine.affine_matrix, np.eye(n + 1))


def set_inserted(layer, want: tuple[int, ...], letters: list[str], scale: float = 1.0) -> None:
    """Give ``layer`` length-1 axes at ``want`` (none: back to its own array), named ``letters``.

    Data, scale, translate, axis labels, units and the metadata note change together with the
    layer's events held, then one data event updates the viewer: nothing reads a half-changed layer.
    """
    base = layer_array(layer)
    have = inserted_axes(layer)
    keep = [i for i in range(layer.ndim) if i not in have]
    scales = [float(layer.scale[i]) for i in keep]
    translate = [float(layer.translate[i]) for i in keep]
    labels = [layer.axis_labels[i] for i in keep]
    units = [layer.units[i] for i in keep]
    metadata = own_metadata(layer)
    if want:
        metadata[INSERTED_KEY] = list(want)
        scales = _insert(scales, want, [scale] * len(want))
        translate = _insert(translate, want, [0.0] * len(want))
        labels = _insert(labels, want, letters)
        units = _insert(units, want, ["pixel"] * len(want))
    with layer.events.blocker_all():
        layer.metadata = metadata
        layer.data = padded(base, want)
        layer.scale = scales
        layer.translate = translate
        layer.units = units
        layer.axis_labels = labels
    # the extent caches (the layer's and the layer list's) were not told while events were held;
    # refresh() skips hidden layers, so clear them directly, then one data event updates the dims
    layer._clear_extent()
    layer.events.data(value=layer.data)
    layer.refresh()


def replace_array(layer, data) -> None:
    """New data of the same own shape for ``layer``, padded like its current data."""
    layer.data = padded(data, inserted_axes(layer))


def watch(viewer) -> None:
    """Keep ``viewer`` aligned (:func:`align`) whenever a layer is added or removed; once per viewer."""
    if viewer in _WATCHED:
        return
    _WATCHED.add(viewer)
    ref = weakref.ref(viewer)

    def realign(*_) -> None:
        target = ref()
        if target is None:
            return
        try:
            align(target)
        except Exception:  # noqa: BLE001 - never break napari's layer list over a display nicety
            _log.exception("Lining up the layers' axes failed")

    viewer.layers.events.inserted.connect(realign)
    viewer.layers.events.removed.connect(realign)
    align(viewer)
