"""SAVGAN networks: the 3D generator G_V, the video critic D_V and the frame critic D_I.

Imported only when a model is built (torch at the top is fine here); the family
and its config live in :mod:`napari_biogan.families.savgan`. Layer sizes follow
REFERENCE section 1, generalised to any frames x height x width (see
:func:`generator_plan`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import DataError
from ..nn.attention import SelfAttention
from ..nn.blocks import DownConv3d, FrameNoise, LatentProjection3d, UpBlock3d, doublings, generator_norm, spectral, \
    time_up_conv, transposed_in_time, up_before_conv, with_frame_differences


def generator_plan(frames: int, height: int, width: int, levels: int,
                   start_frames: int = 0) -> tuple[tuple[int, int, int], int]:
    """Start size (T0, Y0, X0) of G_V and how many of its ``levels`` x2 up-samplings double T.

    Y and X are doubled at every level, so they must be multiples of 2**levels with
    at least 2 pixels left at the start. T is doubled at the first (coarsest) levels
    only, as often as its factors of two allow: 32 frames over 4 levels start at 2
    (the paper), 10 frames start at 5 and are doubled once, 7 frames are never
    doubled. The other levels keep T with a (3, 4, 4) kernel, stride (1, 2, 2), so
    every generated frame is one the critics see (no generate-and-crop).

    ``start_frames`` (0: the paper's plan above) sets T0 instead: ``frames`` must be it times a
    power of two no larger than ``2**levels``. With T0 = 2 every in-between frame is a blend of
    two start frames drawn independently from z, and a blend of two uncorrelated images has
    1/sqrt(2) of their contrast in the middle (docs/video_experiments.md "The faint first and last frames");
    T0 = frames gives every frame its own start features. With ``margin_frames`` the generator plans
    ``frames + 2 * margin_frames`` frames (pass that count here) and crops the margins.
    """
    if levels < 1:
        raise DataError("The generator needs at least one up-sampling level (one width).")
    if frames < 1 or any(size % 2 ** levels or size // 2 ** levels < 2 for size in (height, width)):
        raise DataError(f"A {frames}x{height}x{width} video cannot be built with {levels} up-sampling levels; "
                        f"height and width must be multiples of {2 ** levels} and at least {2 ** (levels + 1)}.")
    time_ups = doublings(frames, levels)
    if start_frames:
        ratio = frames // start_frames if start_frames > 0 and frames % start_frames == 0 else 0
        if ratio < 1 or ratio & (ratio - 1) or ratio > 2 ** levels:
            raise DataError(f"{frames} generated frames (the clip's plus both margins) cannot start from "
                            f"{start_frames}: that count must be the start frames times 1, 2, 4, ... up to "
                            f"{2 ** levels}.")
        time_ups = ratio.bit_length() - 1
    return (frames >> time_ups, height >> levels, width >> levels), time_ups


class VideoGenerator(nn.Module):
    """G_V: z -> ConvT3d to the start size -> up-blocks (SA after the last ``attention_blocks``) -> tanh."""

    def __init__(self, cfg):
        super().__init__()
        widths = tuple(cfg.widths)
        levels = len(widths)
        # generate-and-crop: G_V makes margin_frames more at each end and forward() drops them
        self.margin, self.frames = cfg.margin_frames, cfg.frames
        start, time_ups = generator_plan(cfg.frames + 2 * cfg.margin_frames, cfg.height, cfg.width, levels,
                                         cfg.start_frames)
        self.latent_dim = cfg.latent_dim
        self.start = LatentProjection3d(cfg.latent_dim, widths[0], start)  # the paper's ConvT3d k(T0, Y0, X0) from z
        self.start_norm = generator_norm(widths[0], cfg.generator_norm)
        # the last spatial_levels levels (the output layer is one) convolve each frame on its own
        first_spatial = levels - cfg.spatial_levels
        if cfg.spatial_levels > levels - time_ups:
            raise DataError(f"'spatial_levels' {cfg.spatial_levels} is more than the {levels - time_ups} last "
                            f"generator levels that keep the frame count (the first {time_ups} double it); "
                            f"use at most {levels - time_ups}, or more start_frames.")
        self.blocks = nn.ModuleList(
            UpBlock3d(c_in, c_out, double_time=i < time_ups, spectral_norm=True, time_padding=cfg.time_padding,
                      norm_kind=cfg.generator_norm, time_upsampling=cfg.time_upsampling,
                      spatial=i >= first_spatial, space_upsampling=cfg.space_upsampling)
            for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])))
        first_attended = len(self.blocks) - cfg.attention_blocks
        self.attention = nn.ModuleList(
            SelfAttention(c_out, cfg.attention, cfg.landmarks, gamma=cfg.attention_gamma)
            if cfg.attention != "none" and i >= first_attended else nn.Identity()
            for i, c_out in enumerate(widths[1:]))
        self.out, self.out_resize, self.out_crop = time_up_conv(
            widths[-1], cfg.channels, levels - 1 < time_ups, cfg.time_upsampling, cfg.time_padding,
            spectral_norm=False, spatial=cfg.spatial_levels > 0, space_upsampling=cfg.space_upsampling)
        self.time_padding = cfg.time_padding
        # the last level's map: start size x the up-samplings of every block
        last = (start[0] * 2 ** min(time_ups, levels - 1), start[1] * 2 ** (levels - 1), start[2] * 2 ** (levels - 1))
        self.noise = FrameNoise(cfg.latent_dim, widths[-1], last) if cfg.frame_noise else None

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The start map (B, C0, T0, Y0, X0): early activations for GANSpace directions."""
        return F.relu(self.start_norm(self.start(z)))

    def forward(self, z: torch.Tensor, keep_margins: bool = False) -> torch.Tensor:
        """Clips (B, C, T, Y, X) in [-1, 1]; ``keep_margins`` also returns the margin frames (for diagnostics:
        the critics and users never see them)."""
        x = self.features(z)
        for block, attention in zip(self.blocks, self.attention):
            x = attention(block(x))
        if self.noise is not None:
            x = self.noise(x, z)
        x = torch.tanh(transposed_in_time(self.out, up_before_conv(x, *self.out_resize), self.out_crop,
                                          self.time_padding))
        return x if keep_margins else x[:, :, self.margin:self.margin + self.frames]


class VideoCritic(nn.Module):
    """D_V: SN-Conv3d stack (LeakyReLU 0.1), full SA after the last ``critic_attention_layers`` layers
    (where the map is small), SN-conv to patch scores; returns their mean per video. With
    ``critic_motion`` it reads each frame's difference from the one before beside the frames."""

    def __init__(self, cfg):
        super().__init__()
        shape, c_in = (cfg.frames, cfg.height, cfg.width), cfg.channels * (2 if cfg.critic_motion else 1)
        self.motion = cfg.critic_motion
        layers, attention = [], []
        widths = tuple(cfg.critic_widths)
        for i, c_out in enumerate(widths):
            layer = DownConv3d(c_in, c_out, shape, slope=0.1, first=i == 0, time_padding=cfg.time_padding)
            layers.append(layer)
            attended = cfg.attention != "none" and i >= len(widths) - cfg.critic_attention_layers
            attention.append(SelfAttention(c_out, "full", spectral_norm=True) if attended else nn.Identity())
            shape, c_in = layer.out_shape, c_out
        self.layers, self.attention = nn.ModuleList(layers), nn.ModuleList(attention)
        self.head = spectral(nn.Conv3d(c_in, 1, 3, 1, 1))
        self.map_shapes = [l.out_shape for l in layers]  # (T, Y, X) after each layer, for docs and tests

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = with_frame_differences(x) if self.motion else x
        for layer, attention in zip(self.layers, self.attention):
            x = attention(layer(x))
        return self.head(x).flatten(1).mean(1)


class FrameCritic(nn.Module):
    """D_I: 2D critic of single frames: Conv2d k3 (stride 2, the last stride 1), InstanceNorm after the
    first, LeakyReLU 0.2, conv to patch scores; returns their mean per frame."""

    def __init__(self, cfg):
        super().__init__()
        layers, c_in, size = [], cfg.channels, min(cfg.height, cfg.width)
        widths = tuple(cfg.frame_critic_widths)
        for i, c_out in enumerate(widths):
            stride = 2 if i < len(widths) - 1 and size >= 4 else 1
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1)]
            layers += [nn.InstanceNorm2d(c_out)] if i > 0 else []
            layers += [nn.LeakyReLU(0.2)]
            c_in, size = c_out, (size + 1) // stride
        layers += [nn.Conv2d(c_in, 1, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1).mean(1)


def build_savgan(cfg) -> nn.ModuleDict:
    """The three networks of a SAVGAN (or 3DGAN) config."""
    return nn.ModuleDict({"generator": VideoGenerator(cfg), "video_critic": VideoCritic(cfg),
                          "frame_critic": FrameCritic(cfg)})
