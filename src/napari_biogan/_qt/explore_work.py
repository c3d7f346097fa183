"""What the Explore dock's threads run, and reading a layer's current sample: no Qt here.

The render thread, the workers (encoding a layer sample, GANSpace directions,
fitting a latent, rendering a keyframe path) get plain values read on the main
thread and return plain values (arrays, points, layer tuples); the widget puts
those into layers on the main thread.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.contract import Point
from ..core.errors import DataError
from ..core.render import match_torch_threads
from ..core.zoo import load_default_model  # noqa: F401  (the widget loads it through here)
from .layer_axes import data_point, layer_array

MAX_DIRECTIONS = 12  # directions computed per model; the widget shows the first k
DEFAULT_DIRECTIONS = 5
GANSPACE_SAMPLES = 512
PATH_BATCH = 16  # frames per chunk of a path render (one progress step each)
LAYER_NAME = "explore"
PATH_LAYER_NAME = "explore path"
INTERPOLATION = "slerp latents, linear sliders, jumps for choices"


class EncodedSources:
    """Encoded layer samples, newest ``kept`` by key (model, layer, data, index), and the keys being
    encoded now, so a sample is encoded once however often the viewer's position passes over it."""

    def __init__(self, kept: int = 8):
        self.kept = kept
        self._states: OrderedDict[tuple, dict] = OrderedDict()
        self._pending: set[tuple] = set()

    def __contains__(self, key: tuple) -> bool:
        return key in self._states

    def state(self, key: tuple) -> dict:
        """A copy of the encoded state of ``key`` (the caller may change it)."""
        return dict(self._states[key])

    def start(self, key: tuple) -> bool:
        """True when ``key`` needs encoding now (neither encoded nor being encoded); marks it pending."""
        if key in self._states or key in self._pending:
            return False
        self._pending.add(key)
        return True

    def done(self, key: tuple, state: dict | None) -> None:
        """``key``'s encoding ended: with its ``state``, or None when it failed or no longer counts."""
        self._pending.discard(key)
        if state is None:
            return
        self._states[key] = state
        while len(self._states) > self.kept:
            self._states.popitem(last=False)

    def clear(self) -> None:
        self._states.clear()
        self._pending.clear()


@dataclass
class ExploreRequest:
    """One render: everything the render thread needs, read on the main thread."""

    model: Any
    point: Point
    precision: str


def render_request(request: ExploreRequest) -> list[tuple]:
    """Runs on the render thread: the point's outputs as layer tuples (provenance built here, off the
    main thread, so a slider change costs the main thread only the in-place copy)."""
    from ..core.provenance import provenance
    from ..io import output_layers

    match_torch_threads()
    model, point = request.model, request.point
    outputs = model.run(point, precision=request.precision)
    record = provenance(model, point=point.describe(), precision=request.precision)
    return output_layers({name: value[0] for name, value in outputs.items()}, model.outputs, "",
                         model.family.sample_axes, LAYER_NAME, record)


def compute_directions(model):
    from ..core.latent import gan_space

    match_torch_threads()
    return model, gan_space(model, n=GANSPACE_SAMPLES, k=MAX_DIRECTIONS, seed=0)


def encode_sample(model, input_name: str, sample: np.ndarray, key: tuple):
    """Worker: one layer sample -> the model's point state (done once per sample; sliders re-decode it)."""
    match_torch_threads()
    return model, key, model.encode({input_name: sample[None]}, precision="fp32")


def fit_sample(model, image: np.ndarray, controls: dict[str, Any], origin: dict[str, Any]):
    """Worker: the latent whose output best matches ``image`` (in [0, 1])."""
    from ..core.latent import fit_latent

    match_torch_threads()
    return model, fit_latent(model, image, controls), origin


def render_path(model, keyframes: list[Point], steps: int, latent_names: list[str], choices: list[str],
                precision: str, report: Callable[[int, int], None]):
    """Worker: every output along the path through the keyframes (first axis: frames)."""
    from ..core.latent import point_path

    match_torch_threads()
    path = point_path(keyframes, steps, latent_names=latent_names, choices=choices)
    return model, model.run(path, precision=precision, batch_size=PATH_BATCH, progress=report), len(path)


def path_layers(model, outputs: dict[str, np.ndarray], keyframes: list[Point], steps: int, precision: str
                ) -> list[tuple]:
    """The rendered path's layer tuples, with the keyframes (latents, controls) in their provenance."""
    from ..core.provenance import provenance
    from ..io import output_layers

    lead = "N" if model.family.is_video else "T"  # a video's samples already have T
    record = provenance(model, keyframes=[k.describe() for k in keyframes], frames_per_segment=steps,
                        interpolation=INTERPOLATION, precision=precision)
    return output_layers(outputs, model.outputs, lead, model.family.sample_axes, PATH_LAYER_NAME, record)


def sample_index(viewer, layer, sample_ndim: int) -> tuple[int, ...]:
    """Where the layer's current sample is: the viewer's position along the axes before one sample's
    (the first sample where the viewer is outside the layer); () for a layer that is one sample."""
    if getattr(layer, "rgb", False):
        raise DataError(f"The layer '{layer.name}' is RGB; split its colours into separate layers first.")
    shape = layer_array(layer).shape  # the layer's own axes: not those inserted to line it up with a video
    lead = len(shape) - sample_ndim
    if lead < 0:
        raise DataError(f"The layer '{layer.name}' has {len(shape)} axes but one sample of this model has "
                        f"{sample_ndim}.")
    coords = data_point(layer, viewer.dims.point)[:lead]
    index = [int(round(float(c))) for c in coords]
    return tuple(i if 0 <= i < n else 0 for i, n in zip(index, shape[:lead]))


def unit_range(image: np.ndarray, contrast_limits) -> np.ndarray:
    """``image`` scaled to [0, 1] by the layer's contrast limits (by its min and max when they are flat)."""
    low, high = (float(v) for v in contrast_limits) if contrast_limits is not None else (0.0, 0.0)
    if not high > low:
        low, high = float(image.min()), float(image.max())
    if not high > low:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)
