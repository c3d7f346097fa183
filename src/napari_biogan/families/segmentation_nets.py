"""Networks of the segmentation family: a U-Net of ResNet blocks with SAGAN self-attention, and a
spectrally normalised SAGAN discriminator of (image, segmentation) pairs (REFERENCE section 4).

Why these choices:
- BatchNorm in the generator: in eval mode it is a fixed per-channel affine map, so a
  pixel's output depends only on its receptive field (and the attention), which keeps
  tiled runs seamless. Instance or group norm would normalise over the whole tile.
- Every attention is :class:`napari_biogan.nn.attention.SelfAttention` (the one
  implementation): with mode "nystrom" it is exact where a map has no more tokens than
  landmarks and Nyström (linear memory) where it has more, so a 4096 x 4096 image runs
  untiled memory-wise at the bottleneck too. SAGAN's widths: f, g -> C/8, h -> C/2 with a
  1x1 projection back to C; gamma starts at 0 (a fresh block is the identity).
- Up-sampling is nearest + 3x3 convolution (no checkerboard pattern of transposed
  convolutions, which would show in tiled outputs).
- The discriminator is SAGAN's: spectral norm on every layer, LeakyReLU 0.1, attention
  on its middle map, patch scores (one per 8x8 pixels) for the hinge loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.attention import SelfAttention
from ..nn.blocks import spectral


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True))


class ResBlock(nn.Module):
    """conv3-BN-ReLU-conv3-BN plus the input (1x1 projected when the width changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x), inplace=True)


def attention_block(channels: int, mode: str, landmarks: int, spectral_norm: bool = False) -> SelfAttention:
    """SAGAN's block: keys/queries C/8, values C/2 projected back to C."""
    return SelfAttention(channels, mode=mode, landmarks=landmarks, key_channels=max(1, channels // 8),
                         value_channels=max(1, channels // 2), spectral_norm=spectral_norm)


class UNetGenerator(nn.Module):
    """Image (N, C, Y, X), Y and X multiples of 2**depth -> class logits (N, K, Y, X)."""

    def __init__(self, in_channels: int, classes: int, base_width: int, depth: int, blocks: int,
                 attention: str, mode: str, landmarks: int):
        super().__init__()
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.stem = conv_bn_relu(in_channels, widths[0])
        self.encoder = nn.ModuleList(nn.Sequential(*[ResBlock(w, w) for _ in range(blocks)]) for w in widths[:-1])
        self.down = nn.ModuleList(conv_bn_relu(a, b, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        bottom = widths[-1]
        self.bottleneck = nn.ModuleList(ResBlock(bottom, bottom) for _ in range(blocks))
        self.bottleneck_attention = attention_block(bottom, mode, landmarks) if attention != "none" else None
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(depth)):
            self.up.append(conv_bn_relu(widths[level + 1], widths[level]))
            self.decoder.append(nn.Sequential(ResBlock(2 * widths[level], widths[level]),
                                              *[ResBlock(widths[level], widths[level]) for _ in range(blocks - 1)]))
        # attention after the first (coarsest) decoder level as well: long-range context at 1/2**(depth-1)
        self.decoder_attention = attention_block(widths[depth - 1], mode, landmarks) \
            if attention == "bottleneck+decoder" else None
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        skips = []
        for block, down in zip(self.encoder, self.down):
            h = block(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck[0](h)
        if self.bottleneck_attention is not None:
            h = self.bottleneck_attention(h)
        for block in self.bottleneck[1:]:
            h = block(h)
        for index, (up, block) in enumerate(zip(self.up, self.decoder)):
            h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
            h = block(torch.cat([h, skips.pop()], dim=1))
            if index == 0 and self.decoder_attention is not None:
                h = self.decoder_attention(h)
        return self.head(h)


class PairDiscriminator(nn.Module):
    """SAGAN-style critic of (image, segmentation) pairs: (N, C + K, Y, X) -> patch scores (N, 1, Y/8, X/8)."""

    def __init__(self, in_channels: int, classes: int, width: int, mode: str, landmarks: int):
        super().__init__()
        self.conv1 = spectral(nn.Conv2d(in_channels + classes, width, 4, 2, 1))
        self.conv2 = spectral(nn.Conv2d(width, 2 * width, 4, 2, 1))
        self.attention = attention_block(2 * width, mode, landmarks, spectral_norm=True)
        self.conv3 = spectral(nn.Conv2d(2 * width, 4 * width, 4, 2, 1))
        self.score = spectral(nn.Conv2d(4 * width, 1, 3, 1, 1))

    def forward(self, image: torch.Tensor, segmentation: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(torch.cat([image, segmentation], dim=1)), 0.1)
        h = self.attention(F.leaky_relu(self.conv2(h), 0.1))
        h = F.leaky_relu(self.conv3(h), 0.1)
        return self.score(h)
