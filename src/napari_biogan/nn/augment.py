"""Augmentations for training on small data sets, shared by the families.

:func:`diff_augment` is differentiable augmentation (Zhao et al., NeurIPS 2020, "DiffAugment"):
the same random transform is applied to real and generated samples before the critics, and
gradients flow through it into the generator, so the critics cannot memorise the few real
samples and the generator is not taught the augmentation (it never sees augmented targets of its
own). For videos every frame of a clip gets the same transform, so no motion is invented.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..core.errors import DataError

if TYPE_CHECKING:  # torch is imported where augmenting happens, so checking a policy stays light
    import torch

#: ``diff_augment`` policy names: "shift" (circular shift up to 1/8 of the side), "cutout" (a
#: mid-grey square of half the side)
AUGMENTATIONS = ("shift", "cutout")


def augment_policy(text: str | tuple[str, ...]) -> tuple[str, ...]:
    """``"shift,cutout"`` (or ``shift+cutout``, ``""`` for none) -> the names, checked. A list of names is
    taken too: training files written before hyper-parameters were checked in the build script keep one."""
    text = text if isinstance(text, str) else ",".join(map(str, text))
    names = tuple(name for name in re.split(r"[,+/\s]+", text.strip()) if name)
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise DataError(f"Unknown augmentation {', '.join(map(repr, unknown))}; choose from {', '.join(AUGMENTATIONS)}.")
    return names


def random_shift(x: "torch.Tensor", shift: int, generator: "torch.Generator") -> "torch.Tensor":
    """Each sample rolled by its own random (dy, dx) in [-shift, shift] over the last two axes (every frame
    and channel of a sample alike)."""
    import torch

    if shift <= 0:
        return x
    moves = torch.randint(-shift, shift + 1, (len(x), 2), generator=generator).tolist()
    return torch.stack([torch.roll(s, (dy, dx), (-2, -1)) for s, (dy, dx) in zip(x, moves)])


def random_cutout(x: "torch.Tensor", size: int, generator: "torch.Generator") -> "torch.Tensor":
    """Each sample with a ``size`` x ``size`` square (its own random place, the same in every frame) set to 0,
    mid-grey for images in [-1, 1]."""
    import torch

    height, width = x.shape[-2:]
    corners = torch.stack([torch.randint(0, height - size + 1, (len(x),), generator=generator),
                           torch.randint(0, width - size + 1, (len(x),), generator=generator)], 1).tolist()
    keep = torch.ones((len(x),) + (1,) * (x.dim() - 3) + (height, width), device=x.device, dtype=x.dtype)
    for mask, (y, x0) in zip(keep, corners):
        mask[..., y:y + size, x0:x0 + size] = 0
    return x * keep


def diff_augment(x: "torch.Tensor", policy: tuple[str, ...], generator: "torch.Generator") -> "torch.Tensor":
    """``x`` (N, C, [T,] Y, X) through the ``policy``'s augmentations (see :data:`AUGMENTATIONS`)."""
    side = min(x.shape[-2:])
    if "shift" in policy:
        x = random_shift(x, side // 8, generator)
    if "cutout" in policy:
        x = random_cutout(x, side // 2, generator)
    return x
