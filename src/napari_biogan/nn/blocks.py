"""Building blocks shared by the video families (SAVGAN, 3DGAN, TGANv2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def spectral(layer: nn.Module, enabled: bool = True) -> nn.Module:
    """``layer`` with spectral normalisation of its weight when ``enabled``."""
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


def doublings(size: int, levels: int) -> int:
    """How many of ``levels`` x2 up-samplings an axis of ``size`` can take (its factors of two, capped)."""
    count = 0
    while count < levels and size % 2 == 0:
        size //= 2
        count += 1
    return count


#: how time is padded inside G_V and D_V: "zeros" (the paper's), "replicate", "reflect" or "circular"
TIME_PADDINGS = ("zeros", "replicate", "reflect", "circular")


def time_crop(double_time: bool, time_padding: str) -> int:
    """Frames to crop from each end of a transposed convolution's output after padding its input in time.

    ``time_padding="zeros"`` (the paper's): none; the first and last output frames then get half
    the kernel taps of the others at every level, so they come out faint. ``"replicate"`` and
    ``"reflect"``: the input is padded by one frame at each end (the edge frame repeated, or its
    neighbour mirrored), which adds ``stride`` output frames at each end (2 when time doubles,
    else 1): cropped, every frame has all its taps. Same weights. ``"circular"``: the last frame
    pads the start and the first the end.

    Why the choice matters for contrast: where neighbouring frames differ, a temporal filter
    averages them, which lowers a frame's contrast. Zero padding averages edge frames with
    nothing (they come out faint: the shipped models); replicate and reflect average them with
    copies of frames they already contain (less averaging: edge frames come out over-contrasted,
    1.2-1.4x the middle for four k3 mean filters on independent frames, see the tests); circular
    padding gives every frame other frames as neighbours, so all frames are averaged alike.
    """
    if time_padding not in TIME_PADDINGS:
        raise ValueError(f"Unknown time padding '{time_padding}'; one of {', '.join(TIME_PADDINGS)}.")
    return 0 if time_padding == "zeros" else 2 if double_time else 1


def pad_time(x: torch.Tensor, mode: str) -> torch.Tensor:
    """One frame of ``mode`` padding ("replicate", "reflect", "circular") at each end of time (N, C, T, Y, X)."""
    if mode == "reflect" and x.shape[2] < 2:  # a single frame has no neighbour to mirror
        mode = "replicate"
    return F.pad(x, (0, 0, 0, 0, 1, 1), mode=mode)


def transposed_in_time(conv: nn.Module, x: torch.Tensor, crop: int, mode: str = "replicate") -> torch.Tensor:
    """``conv(x)`` with the frames padded (``mode``) and the extra output frames cropped (see :func:`time_crop`)."""
    if not crop:
        return conv(x)
    out = conv(pad_time(x, mode))
    return out[:, :, crop:out.shape[2] - crop]


class FrameNorm(nn.Module):
    """Instance normalisation of each frame on its own (over Y and X, per channel), no affine.

    InstanceNorm3d pools a channel's statistics over the whole clip, so a channel may be strong in
    late frames and weak in early ones: a contrast ramp over time survives every level. Normalising
    each frame gives every frame the same feature scale (``generator_norm="frame"``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(3, 4), keepdim=True)
        var = x.var(dim=(3, 4), keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(var + 1e-5)


def generator_norm(channels: int, kind: str) -> nn.Module:
    """The generator's normalisation: ``"video"`` (InstanceNorm3d over T, Y, X: the paper's) or ``"frame"``."""
    if kind == "video":
        return nn.InstanceNorm3d(channels)
    if kind == "frame":
        return FrameNorm()
    raise ValueError(f"Unknown generator norm '{kind}'; 'video' or 'frame'.")


def up_in_time(x: torch.Tensor, resize: str) -> torch.Tensor:
    """Time doubled before a k3 stride-1 convolution in time (``resize``: see :func:`time_kernel`; "": as is).

    "nearest" repeats each frame twice, so a smooth change of the coarser frames arrives as a
    staircase (frame pairs, then a step); "linear" interpolates (edge frames replicated), so it
    arrives as a ramp."""
    if resize == "nearest":
        return x.repeat_interleave(2, dim=2)
    if resize == "linear":
        return F.interpolate(x, scale_factor=(2.0, 1.0, 1.0), mode="trilinear", align_corners=False)
    return x


#: how a generator level doubles Y and X: "transposed" (the paper's k4 stride-2 transposed convolution)
#: or "linear" (bilinear x2, then a k3 stride-1 convolution: no uneven overlap of kernel taps, so no
#: checkerboard; Odena et al., Distill 2016)
SPACE_UPSAMPLINGS = ("transposed", "linear")


def up_before_conv(x: torch.Tensor, time_mode: str, space_mode: str) -> torch.Tensor:
    """The x2 resizing a level does before its stride-1 convolution: in time (:func:`up_in_time`) and, for
    ``space_mode`` "linear", in Y and X (bilinear); "transposed" leaves Y and X to the convolution."""
    x = up_in_time(x, time_mode)  # the modes were checked when the level was built (time_up_conv)
    if space_mode == "linear":
        x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="trilinear", align_corners=False)
    return x


def time_kernel(double_time: bool, time_upsampling: str, spatial: bool = False) -> tuple[int, int, str]:
    """(kernel, stride, resize) in time of one generator level.

    ``"transposed"`` (the paper's): a k4 stride-2 transposed convolution doubles time; its taps
    alternate between even and odd output frames (a checkerboard in time). ``"resize"``: frames
    are repeated (nearest), then a k3 stride-1 convolution: every output frame gets the same taps,
    but frames come in pairs. ``"linear"``: frames are interpolated, then the same convolution.
    ``resize`` is the :func:`up_in_time` mode ("" when time is not resized). A level that keeps
    time has a k3 kernel, or k1 when ``spatial`` (each frame drawn from its own features only).
    """
    modes = {"transposed": "", "resize": "nearest", "linear": "linear"}
    if time_upsampling not in modes:
        raise ValueError(f"Unknown time up-sampling '{time_upsampling}'; one of {', '.join(modes)}.")
    if not double_time:
        return (1 if spatial else 3), 1, ""
    if spatial:
        raise ValueError("A level that doubles time cannot be purely spatial.")
    return (3, 1, modes[time_upsampling]) if modes[time_upsampling] else (4, 2, "")


def time_up_conv(c_in: int, c_out: int, double_time: bool, time_upsampling: str, time_padding: str,
                 spectral_norm: bool, spatial: bool = False,
                 space_upsampling: str = "transposed") -> tuple[nn.Module, tuple[str, str], int]:
    """One generator level's x2 transposed convolution in Y and X (or, with ``space_upsampling`` "linear",
    a k3 stride-1 one after a bilinear x2), and in time as :func:`time_kernel` says (doubled, kept with k3,
    or kept with k1 when ``spatial``); returns it with the (time, space) modes of :func:`up_before_conv`
    and the frames :func:`transposed_in_time` crops (see :func:`time_crop`).

    ``spatial`` levels never mix frames: nothing to pad or crop in time, and no linear filter across
    frames averages a changing frame's detail with its neighbours' (a cross-fade)."""
    if space_upsampling not in SPACE_UPSAMPLINGS:
        raise ValueError(f"Unknown space up-sampling '{space_upsampling}'; one of {', '.join(SPACE_UPSAMPLINGS)}.")
    kernel_t, stride_t, resize = time_kernel(double_time, time_upsampling, spatial)
    kernel_s, stride_s = (4, 2) if space_upsampling == "transposed" else (3, 1)
    conv = spectral(nn.ConvTranspose3d(c_in, c_out, (kernel_t, kernel_s, kernel_s), (stride_t, stride_s, stride_s),
                                       (0 if kernel_t == 1 else 1, 1, 1)), spectral_norm)
    return conv, (resize, space_upsampling), 0 if kernel_t == 1 else time_crop(stride_t == 2, time_padding)


class UpBlock3d(nn.Module):
    """ConvTranspose3d k4 s2 p1 (x2 in Y and X; in T too, or k3 s1 p1 when ``double_time`` is False, k1 when
    ``spatial``), then InstanceNorm and ReLU: one SAVGAN generator level. ``time_padding``: see
    :func:`time_crop`; ``norm_kind``: see :func:`generator_norm`; ``time_upsampling``: see :func:`time_kernel`;
    ``space_upsampling``: see :data:`SPACE_UPSAMPLINGS`."""

    def __init__(self, c_in: int, c_out: int, double_time: bool = True, spectral_norm: bool = True,
                 norm: bool = True, time_padding: str = "zeros", norm_kind: str = "video",
                 time_upsampling: str = "transposed", spatial: bool = False, space_upsampling: str = "transposed"):
        super().__init__()
        self.conv, self.resize, self.crop = time_up_conv(c_in, c_out, double_time, time_upsampling, time_padding,
                                                         spectral_norm, spatial, space_upsampling)
        self.norm = generator_norm(c_out, norm_kind) if norm else nn.Identity()
        self.pad_mode = time_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(transposed_in_time(self.conv, up_before_conv(x, *self.resize), self.crop,
                                                   self.pad_mode)))


def with_frame_differences(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, Y, X) -> (B, 2C, T, Y, X): the clip and each frame minus the one before (zero for the first).

    In the differences a frame-to-frame change of the whole frame's brightness is a uniform map, where
    in the raw frames it is a small offset between neighbours (``SavganConfig.critic_motion``)."""
    differences = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:] - x[:, :, :-1]], dim=2)
    return torch.cat([x, differences], dim=1)


class DownConv3d(nn.Module):
    """Spectrally normalised Conv3d + LeakyReLU for a map of ``shape`` (T, Y, X).

    Each axis of 4 or more is halved (k4 s2 p1), a shorter one kept (k3 s1 p1). ``first``
    gives SAVGAN's first critic layer: k4 with stride 1 in T (T -> T - 1). ``time_padding``
    "replicate", "reflect" or "circular" pads time with frames of the clip instead of zeros (same
    shapes; see :func:`time_crop`), so the critic weighs edge frames as much as the others.
    """

    def __init__(self, c_in: int, c_out: int, shape: tuple[int, int, int], slope: float = 0.1,
                 first: bool = False, time_padding: str = "zeros"):
        super().__init__()
        time_crop(False, time_padding)  # checks the name
        kernel, stride = [], []
        for axis, size in enumerate(shape):
            if size < 4:
                kernel.append(3), stride.append(1)
            else:
                kernel.append(4), stride.append(1 if (axis == 0 and first) else 2)
        self.pad_mode = None if time_padding == "zeros" else time_padding
        padding = (1 if self.pad_mode is None else 0, 1, 1)  # otherwise time is padded in forward
        self.conv = spectral(nn.Conv3d(c_in, c_out, tuple(kernel), tuple(stride), padding))
        self.slope = slope
        self.out_shape = tuple((s + 2 - k) // st + 1 for s, k, st in zip(shape, kernel, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_mode is not None:
            x = pad_time(x, self.pad_mode)
        return F.leaky_relu(self.conv(x), self.slope)


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell (Shi et al. 2015): the gates are 3x3 convolutions of [x, h]."""

    def __init__(self, c_in: int, c_hidden: int, kernel: int = 3):
        super().__init__()
        self.c_hidden = c_hidden
        self.gates = nn.Conv2d(c_in + c_hidden, 4 * c_hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.c_hidden, *x.shape[2:])
            state = (zeros, zeros)
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ResUp2d(nn.Module):
    """BigGAN/TGANv2-style residual up-block for 2D maps: BN-ReLU-up-conv3-BN-ReLU-conv3 + up-conv1 skip."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResDown3d(nn.Module):
    """Residual down-block for video critics: LReLU-conv3-LReLU-conv3, average-pooled, + pooled conv1 skip.

    Pools x2 in Y and X, and in T while T >= 2; no normalisation (WGAN-GP critics).
    """

    def __init__(self, c_in: int, c_out: int, pool: bool = True, slope: float = 0.2):
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv3d(c_in, c_out, 1)
        self.pool, self.slope = pool, slope

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        if not self.pool:
            return x
        return F.avg_pool3d(x, (2 if x.shape[2] >= 2 else 1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(x, self.slope))
        h = self.conv2(F.leaky_relu(h, self.slope))
        return self._down(h) + self._down(self.skip(x))


class LatentProjection3d(nn.Module):
    """z (B, D) -> (B, C, T, Y, X): a ConvTranspose3d with kernel (T, Y, X) applied to z as a 1x1x1 map.

    Same weights (D, C, T, Y, X) and per-channel bias as that layer, computed as one
    matrix product: on CPUs the transposed convolution of a 1x1x1 map is ~100x slower.
    """

    def __init__(self, latent_dim: int, channels: int, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = tuple(shape)
        layer = nn.ConvTranspose3d(latent_dim, channels, self.shape)  # for its default initialisation
        self.weight, self.bias = nn.Parameter(layer.weight.detach().clone()), nn.Parameter(layer.bias.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = z.reshape(len(z), -1) @ self.weight.flatten(1)
        return out.view(len(z), self.weight.shape[1], *self.shape) + self.bias.view(1, -1, 1, 1, 1)


class FrameNoise(nn.Module):
    """Adds new detail to every frame: ``x + GAIN * weight[c] * noise``, with ``noise`` (B, 1, T, Y, X) about
    N(0, 1) per pixel and per frame and ``weight`` learnt per channel from 0 (the generator is unchanged
    until training uses it; StyleGAN's noise inputs). Adam moves a weight by about the learning rate per
    step: at the paper's 1e-4 a weight started at 0 would need thousands of steps to reach the features'
    scale (about 1); :data:`GAIN` lets it move as fast as StyleGAN's (learning rate 2e-3).

    The noise is not drawn at random but made from z through a fixed random projection, so the same z
    gives the same clip (the model contract), and a latent slider changes it smoothly. The projection is
    rebuilt from :data:`SEED` (not saved in files: its values depend only on the shapes).
    """

    SEED = 20261124
    GAIN = 20.0

    def __init__(self, latent_dim: int, channels: int, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = tuple(shape)
        generator = torch.Generator().manual_seed(self.SEED)
        projection = torch.randn(latent_dim, math.prod(self.shape), generator=generator) / latent_dim ** 0.5
        self.register_buffer("projection", projection, persistent=False)
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        noise = (z.reshape(len(z), -1).to(self.projection.dtype) @ self.projection).view(len(z), 1, *self.shape)
        return x + (self.GAIN * self.weight).view(1, -1, 1, 1, 1) * noise.to(x.dtype)
