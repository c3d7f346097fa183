"""The torch side of a bioimage.io package: a model's run path as one module, and its input scaling.

:class:`ContractNet` is a family's ``encode`` + ``decode`` on an already scaled image,
ending in the class probabilities (softmax of a labels output's logits). It is built
from the family name and config alone, so it is also the ``pytorch_state_dict``
architecture a package names (``napari_biogan.core.bioimageio_net:ContractNet``), and
it is what the TorchScript weights are traced from.

:func:`identify_scaling` finds which bioimage.io preprocessing steps reproduce a
family's ``prepare_source`` without asking the family: it probes ``prepare_source``
with ramps (an image normalised by its own percentiles is blind to gain and offset,
and the percentiles follow from a uniform and a squared ramp), then checks the steps
on other images (:func:`check_scaling`). Nothing here knows a family by name.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .bioimageio import NotExportableError

#: side of the square probe images (pixels); small enough to be exact (no percentile subsampling)
PROBE_SIDE = 128
#: largest difference (in the network's input units) a described scaling may have from prepare_source
SCALING_TOLERANCE = 1e-3


class ContractNet(nn.Module):
    """A family's run path: scaled image (N, C, Y, X) -> probabilities of ``output_name``'s classes (N, K, Y, X).

    Holds only the networks the family needs to run (``Family.inference_nets``); in eval mode.
    """

    def __init__(self, family: str, config: dict[str, Any], input_name: str, output_name: str):
        super().__init__()
        from .registry import get_family

        self.family = get_family(family)
        self.config = self.family.config_from_dict(config)
        nets = self.family.build(self.config)
        self.nets = nn.ModuleDict({name: nets[name] for name in self.family.inference_nets})
        self.input_name, self.output_name = input_name, output_name
        self.eval()

    @classmethod
    def from_model(cls, model, input_name: str, output_name: str) -> "ContractNet":
        """The module of a loaded :class:`~napari_biogan.core.model.Model`, with its weights (on the CPU)."""
        net = cls(model.family.name, config_values(model.config), input_name, output_name)
        weights = {k: v.detach().cpu() for k, v in model.nets.state_dict().items()
                   if k.split(".", 1)[0] in net.nets}
        net.nets.load_state_dict(weights, strict=True)
        return net.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        state = self.family.encode(self.nets, self.config, {self.input_name: image})
        logits = self.family.decode(self.nets, self.config, state, {})[self.output_name]
        return logits.float().softmax(dim=1)


class FixedSize(nn.Module):
    """``net`` that refuses inputs of any other height and width than the traced ones, also once traced.

    A trace records the branches the family's code took for the traced size (e.g. exact or
    Nyström attention), so other sizes would give wrong numbers silently. Adding zeros shaped
    (1, 1, Y, 1) and (1, 1, 1, X) changes nothing but makes any other size a broadcasting error.
    """

    def __init__(self, net: nn.Module, height: int, width: int):
        super().__init__()
        self.net = net
        self.register_buffer("rows", torch.zeros(1, 1, height, 1))
        self.register_buffer("columns", torch.zeros(1, 1, 1, width))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image + self.rows + self.columns)


def config_values(config) -> dict[str, Any]:
    """A family config as plain YAML/JSON values (tuples as lists)."""
    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


# -- input scaling ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Scaling:
    """bioimage.io preprocessing: ``scale_range`` (per image and channel, over y and x), ``scale_linear``, ``clip``."""

    percentiles: tuple[float, float] | None = None  # None: no scale_range
    gain: float = 1.0
    offset: float = 0.0
    clip: tuple[float | None, float | None] = (None, None)

    def apply(self, image: np.ndarray, eps: float = 1e-6) -> np.ndarray:
        """What bioimage.io tools do to ``image`` (N, C, Y, X), in float64 (for checks)."""
        x = np.asarray(image, dtype=np.float64)
        if self.percentiles is not None:
            low, high = np.percentile(x, self.percentiles, axis=(-2, -1), keepdims=True)  # linear, as bioimageio.core
            x = (x - low) / (high - low + eps)
        x = x * self.gain + self.offset
        if self.clip != (None, None):
            x = np.clip(x, *(np.inf * s if v is None else v for v, s in zip(self.clip, (-1, 1))))
        return x

    def describe(self) -> str:
        """One plain sentence for the documentation."""
        parts = []
        if self.percentiles is not None:
            low, high = self.percentiles
            parts.append(f"each image and channel is scaled so that its percentile {low:g} maps to 0 and its "
                         f"percentile {high:g} to 1 (`scale_range`)")
        if (self.gain, self.offset) != (1.0, 0.0):
            parts.append(f"then multiplied by {self.gain:g} and shifted by {self.offset:g} (`scale_linear`)")
        if self.clip != (None, None):
            parts.append(f"then clipped to [{self.clip[0]:g}, {self.clip[1]:g}] (`clip`)")
        if not parts:
            return "None: the network takes the raw intensities."
        text = "; ".join(parts) + "."
        return text[0].upper() + text[1:]


def prepare_function(model, input_name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The family's ``prepare_source`` on (N, C, Y, X) float arrays."""
    def prepare(image: np.ndarray) -> np.ndarray:
        source = {input_name: torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))}
        return model.family.prepare_source(model.config, source)[input_name].float().cpu().numpy()
    return prepare


def identify_scaling(prepare: Callable[[np.ndarray], np.ndarray], channels: int) -> Scaling:
    """The bioimage.io steps that ``prepare`` amounts to, found by probing it; NotExportableError if none."""
    n = PROBE_SIDE * PROBE_SIDE
    ramp = np.linspace(0.0, 1.0, n)
    central = slice(n // 4, 3 * n // 4)  # away from any clipping at the ends

    def run(values: np.ndarray) -> np.ndarray:
        image = np.broadcast_to(values.reshape(1, 1, PROBE_SIDE, PROBE_SIDE), (1, channels, PROBE_SIDE, PROBE_SIDE))
        return prepare(image)[0, 0].reshape(-1).astype(np.float64)

    def line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        slope, intercept = np.polyfit(x[central], y[central], 1)
        return float(slope), float(intercept)

    plain = run(ramp)
    if np.allclose(run(ramp * 1000 + 7), plain, atol=SCALING_TOLERANCE):
        # blind to gain and offset: scaled by the image's own percentiles, then a fixed affine map.
        # On a uniform ramp over [0, 1] the p-th percentile is p/100 itself; on the squared ramp it is
        # (p/100)^2, so the two fitted lines give the sum and the product of the two percentiles.
        s1, t1 = line(ramp, plain)
        s2, t2 = line(ramp ** 2, run(ramp ** 2))
        total, product = s1 / s2, (t2 - t1) / s2
        root = np.sqrt(max(total * total - 4 * product, 0.0))
        low, high = (total - root) / 2, (total + root) / 2
        if not (0 <= low < high <= 1):
            raise NotExportableError("Its input scaling is not a percentile normalisation that bioimage.io "
                                     "preprocessing can express.")
        scaling = Scaling((round(float(low) * 100, 4), round(float(high) * 100, 4)),
                          round(s1 * float(high - low), 6), round(t1 + s1 * float(low), 6))
    else:  # a fixed map of the intensities
        s1, t1 = line(ramp, plain)
        scaling = Scaling(None, round(s1, 6), round(t1, 6))
    # clipping shows on a few far outliers (too few to move the percentiles)
    spiked = ramp.copy()
    spiked[:3], spiked[-3:] = -1e4, 1e4
    observed = run(spiked)
    expected = scaling.apply(spiked.reshape(1, 1, PROBE_SIDE, PROBE_SIDE)).reshape(-1)
    low_clip = float(observed[:3].min()) if observed[:3].min() > expected[:3].min() + SCALING_TOLERANCE else None
    high_clip = float(observed[-3:].max()) if observed[-3:].max() < expected[-3:].max() - SCALING_TOLERANCE else None
    if low_clip is not None or high_clip is not None:
        scaling = dataclasses.replace(scaling, clip=(None if low_clip is None else round(low_clip, 6),
                                                     None if high_clip is None else round(high_clip, 6)))
    return scaling


def check_scaling(prepare: Callable[[np.ndarray], np.ndarray], scaling: Scaling, images: list[np.ndarray]) -> float:
    """Largest difference between ``prepare`` and ``scaling`` on ``images``; NotExportableError above the tolerance."""
    worst = 0.0
    for image in images:
        worst = max(worst, float(np.abs(prepare(image) - scaling.apply(image)).max()))
    if not worst <= SCALING_TOLERANCE:
        raise NotExportableError(f"Its input scaling differs from the bioimage.io preprocessing it resembles "
                                 f"(by up to {worst:.3g}), so other tools would not give the same result.")
    return worst


def probe_images(channels: int, seed: int = 0) -> list[np.ndarray]:
    """Images unlike the ramps: skewed intensities, channels of very different brightness, an integer image."""
    rng = np.random.default_rng(seed)
    shape = (2, channels, 96, 80)
    skewed = rng.lognormal(3.0, 1.0, shape) * (10.0 ** np.arange(channels))[None, :, None, None]
    counts = rng.poisson(40.0, shape).astype(np.float64) + 100
    return [skewed, counts]
