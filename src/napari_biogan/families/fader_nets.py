"""Fader Networks (Lample et al. 2017) with the report's extensions: the networks and the attribute math.

- :class:`FaderEncoder`: Conv k4 s2 (BatchNorm after the first, LeakyReLU 0.2) down to a
  feature map; it also holds ``estimator``, a small image classifier of the attributes (of
  blurred slices, see :func:`blur`):
  the report's classifier discriminator during training, and at run time the estimate of
  a user's slice's own attributes (what the "difference" output is measured from).
- :class:`FaderDecoder`: ConvTranspose k4 s2 back up (the image layer: upsampling and a 3x3
  convolution, no checkerboard); the attribute code, broadcast over the plane, is
  concatenated to the input of EVERY layer; dropout in the last layers.
- :class:`LatentDiscriminator`: convolutions to 1x1 and an MLP (dropout 0.3) that predict
  the attributes from the latent map.
- :class:`PatchDiscriminator` (optional, ``patch_width`` > 0): a spectrally normalised
  PatchGAN that tells real slices from decoded ones patch by patch; fooling it is what
  makes decoded slices sharp (a squared error alone averages fine detail away).

Attribute values are one float per attribute (class index, or the continuous value);
:func:`attribute_code` turns them into the decoder's code, :func:`attribute_loss` scores a
prediction head, :func:`flip_attributes` draws the values the encoder must hide
(binary 1 - y, categorical another class, continuous a Gaussian draw with the batch's
mean and std). These are shared with the evaluation classifier (metrics/attributes.py).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.attributes import BINARY, CONTINUOUS, AttributeSpec


def widths(base: int, maximum: int, depth: int) -> list[int]:
    return [min(base * 2 ** i, maximum) for i in range(depth)]


def _down(c_in: int, c_out: int, norm: bool, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class AttributeCNN(nn.Module):
    """An image (N, C, S, S) in [-1, 1] -> one prediction head per attribute (N, sum of spec sizes).

    Convolutions down to 4x4; the 4x4 map is flattened (co-registered slices: WHERE a change
    is, e.g. the ventricles, matters), then an MLP with dropout.
    """

    def __init__(self, channels: int, size: int, head: int, base: int = 16, maximum: int = 128,
                 hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        layers, c_in = [], channels
        count = max(1, size.bit_length() - 3)  # down to 4x4
        for i, c_out in enumerate(widths(base, maximum, count)):
            layers.append(_down(c_in, c_out, norm=i > 0))
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        side = max(size // 2 ** count, 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in * side * side, hidden),
                                  nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, head))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """A fixed Gaussian blur (5x5): what the classifier discriminator sees. Without it the decoder learns
    pixel-scale textures that classifiers read as a class (adversarial marks), not anatomy."""
    radius = 2
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, -1, -1)
    return F.conv2d(F.pad(x, (radius,) * 4, mode="replicate"), kernel, groups=x.shape[1])


class FaderEncoder(nn.Module):
    def __init__(self, channels: int, size: int, layer_widths: Sequence[int], head: int, estimator_width: int):
        super().__init__()
        layers, c_in = [], channels
        for i, c_out in enumerate(layer_widths):
            layers.append(_down(c_in, c_out, norm=i > 0))
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        self.estimator = AttributeCNN(channels, size, head, base=estimator_width, maximum=8 * estimator_width,
                                      hidden=8 * estimator_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def estimate(self, x: torch.Tensor) -> torch.Tensor:
        """The attribute heads of (blurred) slices: the classifier discriminator, and the estimate of a
        user's slice's own attributes."""
        return self.estimator(blur(x))


class FaderDecoder(nn.Module):
    def __init__(self, channels: int, layer_widths: Sequence[int], code: int, dropout: float):
        super().__init__()
        layers = []
        depth = len(layer_widths)
        for i in reversed(range(depth)):  # mirrors the encoder; the code joins every layer's input
            c_in, c_out = layer_widths[i] + code, (layer_widths[i - 1] if i > 0 else channels)
            if i > 0:
                block: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out)]
                if dropout > 0 and i <= 2:  # the last layers before the image (as the official code)
                    block.append(nn.Dropout(dropout))
                block.append(nn.ReLU(inplace=True))
            else:  # the image layer: upsampling + 3x3 convolution (a transposed one leaves a checkerboard)
                block = [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Tanh()]
            layers.append(nn.Sequential(*block))
        self.layers = nn.ModuleList(layers)

    def forward(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = z
        for layer in self.layers:
            plane = code[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
            h = layer(torch.cat([h, plane.to(h.dtype)], 1))
        return h


class LatentDiscriminator(nn.Module):
    """The latent map (N, C, s, s) -> attribute predictions; convolutions to 1x1, then an MLP."""

    def __init__(self, latent_width: int, latent_size: int, head: int, hidden: int, dropout: float):
        super().__init__()
        layers, c_in, side = [], latent_width, latent_size
        while side > 1:
            layers.append(_down(c_in, c_in, norm=False, dropout=dropout))
            side //= 2
        self.convs = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(c_in, hidden), nn.LeakyReLU(0.2, inplace=True),
                                 nn.Dropout(dropout), nn.Linear(hidden, head))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.convs(z))


class PatchDiscriminator(nn.Module):
    """Slices (N, C, S, S) -> a map of real/decoded logits, one per ~22-pixel patch (3 convolutions, the
    first two stride 2, spectral norm: a bounded critic needs no gradient penalty)."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        from ..nn.blocks import spectral

        self.net = nn.Sequential(
            spectral(nn.Conv2d(channels, width, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True),
            spectral(nn.Conv2d(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True),
            spectral(nn.Conv2d(2 * width, 4 * width, 3, 1, 1)), nn.LeakyReLU(0.2, inplace=True),
            spectral(nn.Conv2d(4 * width, 1, 3, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# -- attribute math -------------------------------------------------------------------------------------------

def code_size(specs: Sequence[AttributeSpec]) -> int:
    return sum(s.size for s in specs)


def attribute_code(specs: Sequence[AttributeSpec], values: torch.Tensor) -> torch.Tensor:
    """Values (N, A) -> the decoder's code (N, code size).

    Binary a -> [1 - a, a] (a beyond 0..1 extrapolates, as Fader's alpha); a class index t
    (a float) -> the one-hot codes of the two neighbouring classes mixed linearly, extended
    linearly beyond the first and last class; continuous -> the training range mapped to [-1, 1].
    """
    parts = []
    values = values.float()
    for j, spec in enumerate(specs):
        v = values[:, j]
        if spec.kind == CONTINUOUS:
            parts.append((2 * (v - spec.low) / (spec.high - spec.low) - 1)[:, None])
            continue
        k = len(spec.classes)
        lower = v.floor().clamp(0, k - 2)
        frac = (v - lower)[:, None]
        eye = torch.eye(k, device=v.device)
        a, b = eye[lower.long()], eye[(lower + 1).long()]
        parts.append((1 - frac) * a + frac * b)
    return torch.cat(parts, 1)


def attribute_loss(specs: Sequence[AttributeSpec], head: torch.Tensor, values: torch.Tensor,
                   weight: torch.Tensor | None = None,
                   soft: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
    """Cross-entropy per class attribute (binary: 2 classes) + MSE of continuous ones on the [-1, 1] scale;
    ``weight`` (N,) weighs the samples (rare classes). ``soft[j]`` (N, classes), where given, replaces
    class attribute j's one-hot target by a distribution (:class:`RealPosteriors`)."""
    loss = head.new_zeros(())
    start = 0
    for j, spec in enumerate(specs):
        part = head[:, start:start + spec.size]
        start += spec.size
        if spec.kind == CONTINUOUS:
            target = 2 * (values[:, j].float() - spec.low) / (spec.high - spec.low) - 1
            loss = loss + weighted_mean((part[:, 0] - target).pow(2), weight)
        else:
            target = class_indices(spec, values[:, j])
            if soft is not None and soft[j] is not None:
                target = soft[j].to(part.dtype)
            loss = loss + weighted_mean(F.cross_entropy(part, target, reduction="none"), weight)
    return loss


def class_indices(spec: AttributeSpec, column: torch.Tensor) -> torch.Tensor:
    """A class attribute's values (N,) -> the nearest class index of each, within the classes."""
    return column.round().long().clamp(0, spec.size - 1)


class RealPosteriors(nn.Module):
    """For each class attribute, how the classifier discriminator reads REAL slices of each class: a running
    mean of its softmax per true class (row c: real slices of class c), kept as buffers so that it is saved
    in training files and resumed with them.

    Used as the target of edits (``classifier_target="real"``): a one-hot target rewards an edit the
    classifier is surer of than of any real slice, so edits overshoot the class (measured on the dementia
    data: twice the real ventricle step); this target is met once an edit reads like real slices of its
    class. Rows start one-hot (the one-hot target) until a class has been seen.
    """

    def __init__(self, specs: Sequence[AttributeSpec], rate: float = 0.01):
        super().__init__()
        self.rate = rate
        self.columns = [j for j, spec in enumerate(specs) if spec.kind != CONTINUOUS]  # the class attributes
        for j in self.columns:
            self.register_buffer(f"mean_{j}", torch.eye(specs[j].size))
            self.register_buffer(f"seen_{j}", torch.zeros(specs[j].size))

    @torch.no_grad()
    def update(self, specs: Sequence[AttributeSpec], head: torch.Tensor, values: torch.Tensor) -> None:
        """Fold in the classifier's heads (N, ...) on real slices with their true values (N, A): a plain mean
        while a batch's slices of a class are more than ``rate`` of all its slices seen so far (about its
        first 1 / ``rate`` batches), an exponential one (weight ``rate``) after."""
        for j in self.columns:
            mean, seen = getattr(self, f"mean_{j}"), getattr(self, f"seen_{j}")
            probabilities = class_probabilities(specs[j], head.float(), specs)
            classes = class_indices(specs[j], values[:, j])
            for c in classes.unique().tolist():
                rows = probabilities[classes == c]
                seen[c] += len(rows)
                step = max(self.rate, len(rows) / float(seen[c]))
                mean[c] += step * (rows.mean(0) - mean[c])

    def confidence(self) -> float:
        """The mean probability real slices get for their own class (over the classes seen): 1 would be the
        one-hot target; logged while training."""
        diagonals = [getattr(self, f"mean_{j}").diagonal()[getattr(self, f"seen_{j}") > 0] for j in self.columns]
        values = torch.cat(diagonals) if diagonals else torch.ones(0)
        return float(values.mean()) if len(values) else 1.0

    def targets(self, specs: Sequence[AttributeSpec], values: torch.Tensor) -> list[torch.Tensor | None]:
        """Soft targets for slices asked to show ``values`` (N, A): their classes' rows; None for continuous
        attributes (a squared error already has its minimum at the value)."""
        out: list[torch.Tensor | None] = [None] * len(specs)
        for j in self.columns:
            mean = getattr(self, f"mean_{j}")
            out[j] = mean[class_indices(specs[j], values[:, j]).to(mean.device)]
        return out


def weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return values.mean()
    weight = weight.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1e-12)


def predict_attributes(specs: Sequence[AttributeSpec], head: torch.Tensor) -> torch.Tensor:
    """Prediction heads -> values (N, A): arg-max class indices, continuous values in their units."""
    out, start = [], 0
    for spec in specs:
        part = head[:, start:start + spec.size]
        start += spec.size
        if spec.kind == CONTINUOUS:
            out.append(spec.low + (part[:, 0] + 1) / 2 * (spec.high - spec.low))
        else:
            out.append(part.argmax(1).float())
    return torch.stack(out, 1)


def class_probabilities(spec: AttributeSpec, head: torch.Tensor, specs: Sequence[AttributeSpec]) -> torch.Tensor:
    """The softmax of one class attribute's head slice."""
    start = 0
    for s in specs:
        if s is spec or s.name == spec.name:
            return head[:, start:start + s.size].softmax(1)
        start += s.size
    raise KeyError(spec.name)


def flip_attributes(specs: Sequence[AttributeSpec], values: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The values the encoder must make the latent discriminator believe, by kind:
    binary 1 - y; categorical a different class, uniformly; continuous a Gaussian draw with the
    batch's mean and std, kept in the training range."""
    flipped = values.clone().float()
    n = len(values)
    for j, spec in enumerate(specs):
        v = values[:, j].float().cpu()
        if spec.kind == BINARY:
            new = 1 - v.round()
        elif spec.kind == CONTINUOUS:
            std = v.std() if n > 1 else torch.tensor(0.0)
            std = std if float(std) > 1e-6 else torch.tensor((spec.high - spec.low) / 4)
            new = (v.mean() + std * torch.randn(n, generator=generator)).clamp(spec.low, spec.high)
        else:
            k = spec.size
            shift = torch.randint(1, k, (n,), generator=generator).float()
            new = (v.round() + shift) % k
        flipped[:, j] = new.to(flipped.device)
    return flipped


def random_attributes(specs: Sequence[AttributeSpec], n: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform draws over each attribute's training range (classes: uniform over the classes)."""
    columns = []
    for spec in specs:
        if spec.kind == CONTINUOUS:
            columns.append(spec.low + torch.rand(n, generator=generator) * (spec.high - spec.low))
        else:
            columns.append(torch.randint(0, spec.size, (n,), generator=generator).float())
    return torch.stack(columns, 1)
