"""Explore's layer handling, no Qt: the image "Find this image in the model" fits, and how the explore
layers are placed in the viewer (added or overwritten, kept on top, shown where the viewer looks).

A model with several channels (a shape and its proteins, each its own layer) is fitted to
all of them: the picked layer is one (C, *sample) layer, or one channel layer whose
siblings are found by the model's channel names (our own layers carry the channel in
their metadata; a user's layers are matched by name, e.g. "cell 3 YFP"). Channels with no
layer are taken as empty, and the caller is told which.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import DataError
from ..core.export import PROVENANCE_KEY
from ._common import add_layers
from .explore_work import sample_index, unit_range
from .layer_axes import layer_array, own_axes


def fit_image(viewer, layer, model) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    """(image (C, *sample) in [0, 1], origin, channel names taken as empty) for fitting ``model`` to
    ``layer``'s current sample (and, for a model with several channels, its sibling channel layers)."""
    channels = [c.name for c in model.channels]
    ndim = len(model.family.sample_axes)
    if len(channels) == 1:
        index = sample_index(viewer, layer, ndim)
        image = unit_range(np.asarray(layer_array(layer)[index], dtype=np.float32), layer.contrast_limits)
        return image, {"fitted_to": layer.name, "index": list(index)}, []
    if _channel_axis(layer, ndim, len(channels)):
        index = sample_index(viewer, layer, ndim + 1)
        image = unit_range(np.asarray(layer_array(layer)[index], dtype=np.float32), layer.contrast_limits)
        return image, {"fitted_to": layer.name, "index": list(index)}, []
    found = channel_layers(viewer, layer, channels)
    index = sample_index(viewer, layer, ndim)
    image = np.zeros((len(channels), *layer_array(layer).shape[-ndim:]), np.float32)
    for c, member in found.items():
        image[c] = unit_range(np.asarray(layer_array(member)[index], dtype=np.float32), member.contrast_limits)
    empty = [name for c, name in enumerate(channels) if c not in found]
    origin = {"fitted_to": ", ".join(found[c].name for c in sorted(found)), "index": list(index)}
    if empty:
        origin["empty_channels"] = empty
    return image, origin, empty


def channel_layers(viewer, layer, channels: list[str]) -> dict[int, Any]:
    """The image layers holding the model's ``channels`` beside ``layer`` (same shape), by channel index."""
    own = _channel_of(layer, channels)
    if own is None:
        raise DataError(f"The model makes {len(channels)} channels ({', '.join(channels)}); '{layer.name}' is "
                        "none of them. Pick a layer named after its channel (e.g. '... "
                        f"{channels[-1]}'), or one layer with the {len(channels)} channels on its first axis.")
    prefix = _prefix(layer.name, channels[own])
    found = {own: layer}
    for candidate in viewer.layers:
        if candidate is layer or getattr(candidate, "_type_string", "") != "image" or candidate.rgb \
                or tuple(layer_array(candidate).shape) != tuple(layer_array(layer).shape):
            continue
        c = _channel_of(candidate, channels)
        if c is not None and c not in found and _prefix(candidate.name, channels[c]) == prefix:
            found[c] = candidate
    return found


def _channel_of(layer, channels: list[str]) -> int | None:
    """The model channel a layer holds: from our provenance, else the end of its name."""
    ours = (layer.metadata or {}).get(PROVENANCE_KEY) or {}
    if ours.get("channel") in channels:
        return channels.index(ours["channel"])
    name = layer.name.strip().lower()
    ends = [c for c, channel in enumerate(channels) if name == channel.lower() or name.endswith(" " + channel.lower())]
    return max(ends, key=lambda c: len(channels[c])) if ends else None


def _prefix(name: str, channel: str) -> str:
    """The part of a layer's name before its channel name ("cell 3 YFP" -> "cell 3")."""
    name = name.strip()
    return name[:len(name) - len(channel)].strip().lower() if name.lower().endswith(channel.lower()) else name.lower()


def _channel_axis(layer, ndim: int, count: int) -> bool:
    """Whether the axis before the sample axes holds the channels: labelled "C", or, on a layer of one
    sample with no axis names of ours, as many planes as the model has channels."""
    shape = layer_array(layer).shape  # the layer's own axes (none inserted beside a video)
    if len(shape) < ndim + 1 or getattr(layer, "rgb", False):
        return False
    axes = own_axes(layer)
    if axes:
        return axes[len(shape) - ndim - 1] == "C" and shape[len(shape) - ndim - 1] == count
    return len(shape) == ndim + 1 and shape[0] == count


# -- placing the explore layers -------------------------------------------------------------------------

def add_shown(viewer, tuples: list[tuple], in_place: bool = False) -> list:
    """add_layers, then: a signed map's limits widen to keep it unclamped, new layers are shown."""
    before = {kw["name"]: viewer.layers[kw["name"]] for _, kw, _ in tuples if kw["name"] in viewer.layers}
    layers = add_layers(viewer, tuples, replace=True, in_place=in_place)
    new = [layer for layer in layers if before.get(layer.name) is not layer]
    for layer, (_, kwargs, _) in zip(layers, tuples):
        limits = kwargs.get("contrast_limits")
        if before.get(layer.name) is layer and limits is not None and limits[0] < 0 \
                and layer.contrast_limits[1] < limits[1]:
            layer.contrast_limits = limits
    if new:
        show(viewer, new)
    return layers


def keep_on_top(viewer, layers: list) -> None:
    """The explore layers above everything (an opaque layer above them hides every slider change)."""
    stack = viewer.layers
    if all(a is b for a, b in zip(list(stack)[-len(layers):], layers)):
        return  # already on top: no layer-list events on a slider change
    for layer in layers:
        stack.move(stack.index(layer), len(stack))


def show(viewer, layers: list) -> None:
    """New layers visible, and the viewer's position on their leading axes inside them."""
    dims = viewer.dims
    for layer in layers:
        layer.visible = True
        lead = layer.ndim - dims.ndisplay
        inside = layer.world_to_data(dims.point)[:lead]
        origin = layer.data_to_world([0] * layer.ndim)
        for axis in range(lead):
            if not 0 <= round(float(inside[axis])) < layer.data.shape[axis]:
                dims.set_point(dims.ndim - layer.ndim + axis, float(origin[axis]))
