"""Self-attention on feature maps of any dimension: exact (full) or linear-cost Nyström.

One implementation for every family. :class:`SelfAttention` is the SAGAN block
(f, g: 1x1 convs to C/8; h: 1x1 conv to C; softmax(f^T g / sqrt(C/8)); y = gamma *
out + x with gamma starting at 0, so a fresh block is the identity) on maps
(B, C, *spatial) with 1, 2 or 3 spatial axes (2D images, 2D+t videos).

Nyström mode (Xiong et al., Nyströmformer, 2021) approximates
softmax(Q K^T) V by k1 pinv(k2) k3 V with

    k1 = softmax(Q K~^T), k2 = softmax(Q~ K~^T), k3 = softmax(Q~ K^T)

where Q~, K~ are m landmarks. Choices, and why (REFERENCE section 1):

- Landmarks are segment means: adaptive average pooling of the query and key
  maps on a grid of at most m cells. Deterministic (the SAVGAN reference draws
  random token indices at every forward, which makes G stochastic for a fixed
  z), works for any T, H, W, and neighbouring tokens of a smooth map are
  well represented by their mean.
- pinv(k2) by 6 Newton-Schulz iterations in fp32 with autocast off, started
  from Z0 = k2^T / (max column sum * max row sum) computed per sample; the
  truncated iteration is better conditioned than an exact (SVD) inverse.
- The output is computed right to left, k1 @ (Z @ (k3 @ V)): the largest
  intermediate is N x m, never N x N, so memory grows linearly with N.
- When N <= m the module uses exact attention (cheaper and exact).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("full", "nystrom")


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exact softmax attention softmax(q k^T / sqrt(d)) v; q, k (..., N, d), v (..., N, c).

    Forms the N x N matrix (quadratic memory): meant for small maps (critics) and as
    the reference the Nyström approximation is measured against. Supports double
    backward (WGAN-GP on critics with attention).
    """
    scores = q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5)
    return scores.softmax(dim=-1) @ v


def landmark_grid(spatial_shape: tuple[int, ...], landmarks: int) -> tuple[int, ...]:
    """The pooling grid for ``landmarks`` segment means over a map of ``spatial_shape``.

    Starts from one cell and doubles the axis whose cells are currently longest until
    the next doubling would exceed ``landmarks`` cells (or no axis can be split): cells
    stay as cube-like as the map allows, e.g. 64 landmarks on 16x32x32 -> 4x4x4 cells
    of 4x8x8 tokens. The number of landmarks used is the product of the grid (a power
    of two, at most ``landmarks``; equal to the number of tokens on small maps).
    """
    grid = [1] * len(spatial_shape)
    while True:
        candidates = [i for i, (g, s) in enumerate(zip(grid, spatial_shape)) if g < s]
        if not candidates or math.prod(grid) * 2 > landmarks:
            break
        axis = max(candidates, key=lambda i: (spatial_shape[i] / grid[i], -i))
        grid[axis] = min(grid[axis] * 2, spatial_shape[axis])
    return tuple(grid)


def pool_landmarks(x: torch.Tensor, spatial_shape: tuple[int, ...] | None, landmarks: int) -> torch.Tensor:
    """Segment means of tokens x (B, N, d) -> (B, m, d), pooled on the map when its shape is known."""
    b, n, d = x.shape
    if spatial_shape is not None and 1 <= len(spatial_shape) <= 3 and math.prod(spatial_shape) == n:
        grid = landmark_grid(tuple(spatial_shape), landmarks)
        if all(s % g == 0 for s, g in zip(spatial_shape, grid)):
            # equal cells: a reshape and a mean (much faster than adaptive pooling, backward included)
            split = [v for g, s in zip(grid, spatial_shape) for v in (g, s // g)]
            cells = x.reshape(b, *split, d).mean(dim=tuple(range(2, 2 * len(grid) + 1, 2)))
            return cells.reshape(b, -1, d)
        pool = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[len(spatial_shape) - 1]
        pooled = pool(x.transpose(1, 2).reshape(b, d, *spatial_shape), grid)
    else:  # no map: contiguous segments of the token sequence
        pooled = F.adaptive_avg_pool1d(x.transpose(1, 2), min(landmarks, n))
    return pooled.reshape(b, d, -1).transpose(1, 2)


def newton_schulz_pinv(k: torch.Tensor, iterations: int = 6) -> torch.Tensor:
    """Approximate Moore-Penrose inverse of square matrices k (..., m, m), in fp32.

    Z <- Z (13 I - K Z (15 I - K Z (7 I - K Z))) / 4 from Z0 = K^T / (max col-sum *
    max row-sum), the scale taken per matrix (per sample) so one badly scaled sample
    does not slow the others' convergence. Autocast is off: in bf16 the iteration diverges.
    """
    with torch.autocast(device_type=k.device.type, enabled=False):
        k = k.float()
        absk = k.abs()
        scale = absk.sum(dim=-2).amax(dim=-1) * absk.sum(dim=-1).amax(dim=-1)  # (...,)
        z = k.transpose(-1, -2) / scale[..., None, None]
        eye = torch.eye(k.shape[-1], device=k.device, dtype=k.dtype)
        for _ in range(iterations):
            kz = k @ z
            z = 0.25 * z @ (13 * eye - kz @ (15 * eye - kz @ (7 * eye - kz)))
    return z


def nystrom_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, landmarks: int = 64,
                      spatial_shape: tuple[int, ...] | None = None, iterations: int = 6) -> torch.Tensor:
    """Nyström approximation of ``full_attention(q, k, v)`` in O(N m) memory.

    q, k: (B, N, d); v: (B, N, c); ``spatial_shape`` (product N) pools the landmarks
    on the feature map, otherwise over contiguous token segments. Always runs the
    approximation, even when m == N (then it equals exact attention up to the
    Newton-Schulz error), so tests can check it against exact attention.
    """
    q = q * q.shape[-1] ** -0.5  # scale the queries once, not the N x m score matrices
    q_l = pool_landmarks(q, spatial_shape, landmarks)
    k_l = pool_landmarks(k, spatial_shape, landmarks)
    k1 = (q @ k_l.transpose(1, 2)).softmax(dim=-1)  # (B, N, m)
    k3 = (q_l @ k.transpose(1, 2)).softmax(dim=-1)  # (B, m, N)
    with torch.autocast(device_type=q.device.type, enabled=False):
        k2 = (q_l.float() @ k_l.float().transpose(1, 2)).softmax(dim=-1)  # (B, m, m) in fp32
    z = newton_schulz_pinv(k2, iterations)
    landmark_values = k3 @ v  # (B, m, c)
    with torch.autocast(device_type=q.device.type, enabled=False):
        # Z can have large entries of both signs: apply it in fp32 so bf16 rounding does not cancel badly.
        mixed = z @ landmark_values.float()
    return k1 @ mixed.to(k1.dtype)


class SelfAttention(nn.Module):
    """SAGAN self-attention for maps (B, C, *spatial) with any number of spatial axes.

    ``mode``: "full" (exact, N x N) or "nystrom" (``landmarks`` segment means, linear
    in N). ``key_channels`` defaults to C/8 (f and g), ``value_channels`` to C (h); a
    smaller value width adds a 1x1 output projection back to C (SAGAN's C/2 variant).
    ``spectral_norm`` wraps the 1x1 projections (for spectrally normalised networks).
    """

    def __init__(self, channels: int, mode: str = "full", landmarks: int = 64, key_channels: int | None = None,
                 value_channels: int | None = None, iterations: int = 6, spectral_norm: bool = False):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"Unknown attention mode '{mode}'; choose one of {', '.join(MODES)}.")
        self.mode, self.landmarks, self.iterations = mode, int(landmarks), int(iterations)
        key_channels = key_channels or max(1, channels // 8)
        value_channels = value_channels or channels
        norm = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda layer: layer)
        # 1x1 convolutions as linear layers on the flattened map: one layer serves 1D, 2D and 3D maps.
        self.query = norm(nn.Linear(channels, key_channels))
        self.key = norm(nn.Linear(channels, key_channels))
        self.value = norm(nn.Linear(channels, value_channels))
        self.project = norm(nn.Linear(value_channels, channels)) if value_channels != channels else None
        self.split = (key_channels, key_channels, value_channels)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The attention output before the residual (B, C, *spatial)."""
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)
        # q, k and v in one matrix product (B, C, N) -> (B, 2d + c, N); oneDNN's 1x1 Conv1d is far slower on CPUs
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        q, k, v = (torch.matmul(weight, flat) + bias[:, None]).transpose(1, 2).split(self.split, dim=-1)
        if self.mode == "nystrom" and flat.shape[-1] > self.landmarks:
            out = nystrom_attention(q, k, v, self.landmarks, tuple(spatial), self.iterations)
        else:
            out = full_attention(q, k, v)
        if self.project is not None:
            out = self.project(out)
        return out.transpose(1, 2).reshape(b, -1, *spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.attend(x)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, landmarks={self.landmarks}" if self.mode == "nystrom" else "mode='full'"
