"""Networks of the cell family (Osokin et al., ICCV 2017; REFERENCE section 2).

Every generator maps a latent (N, D) to (N, 1 + k, H, W) in [-1, 1]: the shape
channel first, then one protein channel per class.

- :class:`SplitGenerator` with one protein tower of k outputs is the **separable**
  generator: at every layer the shape half of the features is computed from the
  shape half only (and the first ``shape_latent`` latent entries), while the protein
  half sees everything. With one tower per class (one output each) it is the
  **star-shaped** generator: a shared shape tower, one protein tower per class, all
  from the same latent.
- :class:`JointGenerator` is the plain DCGAN generator with 1 + k outputs (the
  **multi-channel** model).
- :class:`CellCritic` is the DCGAN critic (LeakyReLU 0.2; batch norm only for the
  non-Wasserstein loss), used for training and, fresh, for C2ST.

Deliberate differences from the reference code: the first layer is a linear map
(the same as its transposed convolution from 1x1), and any size whose sides halve
evenly down to 3-7 pixels is built (48x80 -> 3x5 start, as in the paper).
"""

from __future__ import annotations

import torch
from torch import nn


def layout(height: int, width: int, base_width: int) -> tuple[int, int, list[int]]:
    """(start height, start width, hidden widths coarse to fine) of a DCGAN tower for (height, width)."""
    from .dcgan2d import upsampling_levels

    levels = upsampling_levels(height, width)
    return height >> levels, width >> levels, [base_width * 2 ** (levels - 1 - i) for i in range(levels)]


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN initialisation the reference code uses: N(0, 0.02) weights, BN scales N(1, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def _up(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)


class _Start(nn.Module):
    """latent -> (N, C, h0, w0), batch norm, ReLU: the first generator layer."""

    def __init__(self, z_dim: int, channels: int, h0: int, w0: int):
        super().__init__()
        self.shape = (channels, h0, w0)
        self.project = nn.Linear(z_dim, channels * h0 * w0, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.project(z).view(len(z), *self.shape)))


class _ProteinTower(nn.Module):
    """Protein features at every level from the shape features of that level and its own."""

    def __init__(self, z_dim: int, red: list[int], green: list[int], h0: int, w0: int, outputs: int):
        super().__init__()
        self.start = _Start(z_dim, green[0], h0, w0)
        self.ups = nn.ModuleList(_up(r + g, g_next) for r, g, g_next in zip(red[:-1], green[:-1], green[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm2d(g) for g in green[1:])
        self.out = nn.ConvTranspose2d(red[-1] + green[-1], outputs, 4, 2, 1)

    def forward(self, z: torch.Tensor, reds: list[torch.Tensor]) -> torch.Tensor:
        g = self.start(z)
        for red, up, norm in zip(reds[:-1], self.ups, self.norms):
            g = torch.relu(norm(up(torch.cat([red, g], 1))))
        return torch.tanh(self.out(torch.cat([reds[-1], g], 1)))


class SplitGenerator(nn.Module):
    """Shape tower from ``z[:, :shape_latent]``; ``towers`` protein towers of ``outputs_per_tower``
    channels each, every one seeing the shape features and the whole latent."""

    def __init__(self, latent_dim: int, shape_latent: int, height: int, width: int, base_width: int,
                 towers: int, outputs_per_tower: int):
        super().__init__()
        h0, w0, widths = layout(height, width, base_width)
        red = [max(1, w // 2) for w in widths]
        green = [max(1, w - r) for w, r in zip(widths, red)]
        self.shape_latent = shape_latent
        self.start = _Start(shape_latent, red[0], h0, w0)
        self.ups = nn.ModuleList(_up(a, b) for a, b in zip(red[:-1], red[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm2d(b) for b in red[1:])
        self.out = nn.ConvTranspose2d(red[-1], 1, 4, 2, 1)
        self.towers = nn.ModuleList(_ProteinTower(latent_dim, red, green, h0, w0, outputs_per_tower)
                                    for _ in range(towers))
        dcgan_init(self)

    def shape_features(self, z: torch.Tensor) -> list[torch.Tensor]:
        r = self.start(z[:, :self.shape_latent])
        reds = [r]
        for up, norm in zip(self.ups, self.norms):
            r = torch.relu(norm(up(r)))
            reds.append(r)
        return reds

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """First-layer activations of the shape tower and the first protein tower (GANSpace)."""
        return torch.cat([self.start(z[:, :self.shape_latent]).flatten(1),
                          self.towers[0].start(z).flatten(1)], 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        reds = self.shape_features(z)
        shape = torch.tanh(self.out(reds[-1]))
        return torch.cat([shape] + [tower(z, reds) for tower in self.towers], 1)


class JointGenerator(nn.Module):
    """The DCGAN generator with ``channels`` outputs: every channel from every feature (multi-channel)."""

    def __init__(self, latent_dim: int, height: int, width: int, base_width: int, channels: int):
        super().__init__()
        h0, w0, widths = layout(height, width, base_width)
        self.start = _Start(latent_dim, widths[0], h0, w0)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [_up(a, b), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.ups = nn.Sequential(*layers)
        dcgan_init(self)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        return self.start(z).flatten(1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.ups(self.start(z))


class CellCritic(nn.Module):
    """DCGAN critic: stride-2 convolutions (LeakyReLU 0.2) down to the start size, then one score.

    ``batch_norm``: the reference code's critic for the non-Wasserstein (DCGAN) loss; the
    WGAN-GP critic has none (the gradient penalty is per sample).
    """

    def __init__(self, channels: int, height: int, width: int, base_width: int, batch_norm: bool = False):
        super().__init__()
        h0, w0, widths = layout(height, width, base_width)
        layers: list[nn.Module] = []
        c_in = channels
        for index, c_out in enumerate(reversed(widths)):
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm or index == 0))
            if batch_norm and index > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, True))
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * h0 * w0, 1)
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).flatten(1)).squeeze(1)


def build_cell_nets(variant: str, proteins: int, latent_dim: int, shape_latent: int, height: int, width: int,
                    base_width: int, critic_width: int, critic_batch_norm: bool) -> nn.ModuleDict:
    """The generator and the critics of one variant ("star", "separable" or "multichannel").

    Star and separable models have one critic per class, each seeing (shape, protein k);
    the multi-channel model has one critic seeing all 1 + k channels.
    """
    if variant == "star":
        generator: nn.Module = SplitGenerator(latent_dim, shape_latent, height, width, base_width, proteins, 1)
    elif variant == "separable":
        generator = SplitGenerator(latent_dim, shape_latent, height, width, base_width, 1, proteins)
    else:
        generator = JointGenerator(latent_dim, height, width, base_width, 1 + proteins)
    if variant == "multichannel":
        critics = [CellCritic(1 + proteins, height, width, critic_width, critic_batch_norm)]
    else:
        critics = [CellCritic(2, height, width, critic_width, critic_batch_norm) for _ in range(proteins)]
    return nn.ModuleDict({"generator": generator, "critics": nn.ModuleList(critics)})
