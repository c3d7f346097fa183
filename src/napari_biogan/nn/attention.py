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

Speed (the module, not the raw functions): q, k come from one batched matrix
product on the channels-first map; the value projection is applied to the m
landmark averages of x instead of to all N tokens (exact, since softmax rows sum
to 1). The two N-sized products, softmax(Q~ K^T) x^T and mixed @ softmax(Q K~^T)^T,
are custom autograd Functions in nn/landmark_products.py (:class:`_LandmarkAverage`,
:class:`_Spread`): chunked, no N x m matrix in training or generation, differentiable once
only (no double backward: a gradient penalty through a Nyström block raises an error); the
full mode, which the critics use with a gradient penalty, is plain autograd and supports it.
Measured against lucidrains' ``nystrom-attention`` in benchmarks/bench_attention.py (README).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .chunks import _single_threaded_pool  # noqa: F401  (the pool: tests reach it from here)
from .landmark_products import (_accumulation_dtype, _average_forward, _LandmarkAverage, _ResidualLink, _Spread,
                                _spread_forward)

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
    return _pool_channels_first(x.transpose(1, 2), spatial_shape, landmarks).transpose(1, 2)


def _pool_channels_first(x: torch.Tensor, spatial_shape: tuple[int, ...] | None, landmarks: int) -> torch.Tensor:
    """Segment means of x (B, d, N) -> (B, d, m)."""
    b, d, n = x.shape
    if spatial_shape is not None and 1 <= len(spatial_shape) <= 3 and math.prod(spatial_shape) == n:
        grid = landmark_grid(tuple(spatial_shape), landmarks)
        if all(s % g == 0 for s, g in zip(spatial_shape, grid)):
            # equal cells: a reshape and a mean (much faster than adaptive pooling, backward included)
            split = [v for g, s in zip(grid, spatial_shape) for v in (g, s // g)]
            return x.reshape(b, d, *split).mean(dim=tuple(range(3, 2 * len(grid) + 2, 2))).reshape(b, d, -1)
        pool = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[len(spatial_shape) - 1]
        return pool(x.reshape(b, d, *spatial_shape), grid).reshape(b, d, -1)
    return F.adaptive_avg_pool1d(x, min(landmarks, n))  # no map: contiguous segments of the token sequence


def newton_schulz_pinv(k: torch.Tensor, iterations: int = 6) -> torch.Tensor:
    """Approximate Moore-Penrose inverse of square matrices k (..., m, m), in fp32.

    Z <- Z (13 I - K Z (15 I - K Z (7 I - K Z))) / 4 from Z0 = K^T / (max col-sum *
    max row-sum), the scale taken per matrix (per sample) so one badly scaled sample
    does not slow the others' convergence. Always fp32 (autocast off): k2's condition
    number reaches 1e4 and more, far beyond what bf16's 8-bit mantissa can invert.
    """
    with torch.autocast(device_type=k.device.type, enabled=False):
        k = k.to(torch.promote_types(k.dtype, torch.float32))  # fp64 stays fp64
        absk = k.abs()
        scale = absk.sum(dim=-2).amax(dim=-1) * absk.sum(dim=-1).amax(dim=-1)  # (...,)
        shape, m = k.shape, k.shape[-1]
        k = k.reshape(-1, m, m)
        z = k.transpose(1, 2) / scale.reshape(-1, 1, 1)
        eye = torch.eye(m, device=k.device, dtype=k.dtype)
        eye7, eye15, eye13 = 7 * eye, 15 * eye, 13 * eye
        for _ in range(iterations):  # fused a*I - A @ B products: 5 operations per iteration instead of 8
            kz = torch.bmm(k, z)
            inner = torch.baddbmm(eye15, kz, eye7 - kz, alpha=-1)
            inner = torch.baddbmm(eye13, kz, inner, alpha=-1)
            z = torch.baddbmm(z, z, inner, beta=0, alpha=0.25)
    return z.reshape(shape)


def nystrom_kernels(q: torch.Tensor, k: torch.Tensor, landmarks: int, spatial_shape: tuple[int, ...] | None,
                    iterations: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three Nyström factors for channels-first q, k (B, d, N), q already scaled by 1/sqrt(d).

    Returns k1 = softmax(Q K~^T) (B, N, m), k3 = softmax(Q~ K^T) (B, m, N) and
    Z ~ pinv(softmax(Q~ K~^T)) (B, m, m) in fp32. Each softmax runs over the
    contiguous last axis (about twice as fast on CPUs as over a strided one);
    the transposed operands are left to the matrix products, which need no copies.
    """
    q_l = _pool_channels_first(q, spatial_shape, landmarks)  # (B, d, m)
    k_l = _pool_channels_first(k, spatial_shape, landmarks)
    k1 = (q.transpose(1, 2) @ k_l).softmax(dim=-1)
    k3 = (q_l.transpose(1, 2) @ k).softmax(dim=-1)
    with torch.autocast(device_type=q.device.type, enabled=False):
        acc = _accumulation_dtype(q_l.dtype)
        k2 = (q_l.to(acc).transpose(1, 2) @ k_l.to(acc)).softmax(dim=-1)
    return k1, k3, newton_schulz_pinv(k2, iterations)


def nystrom_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, landmarks: int = 64,
                      spatial_shape: tuple[int, ...] | None = None, iterations: int = 6) -> torch.Tensor:
    """Nyström approximation of ``full_attention(q, k, v)`` in O(N m) memory.

    q, k: (B, N, d); v: (B, N, c); ``spatial_shape`` (product N) pools the landmarks
    on the feature map, otherwise over contiguous token segments. Always runs the
    approximation, even when m == N (then it equals exact attention up to the
    Newton-Schulz error), so tests can check it against exact attention.
    """
    q = q * q.shape[-1] ** -0.5
    k1, k3, z = nystrom_kernels(q.transpose(1, 2), k.transpose(1, 2), landmarks, spatial_shape, iterations)
    landmark_values = k3 @ v  # (B, m, c)
    with torch.autocast(device_type=q.device.type, enabled=False):
        # Z can have large entries of both signs: apply it in fp32 so bf16 rounding does not cancel badly.
        mixed = z @ landmark_values.to(z.dtype)
    return k1 @ mixed.to(k1.dtype)


class SelfAttention(nn.Module):
    """SAGAN self-attention for maps (B, C, *spatial) with any number of spatial axes.

    ``mode``: "full" (exact, N x N) or "nystrom" (``landmarks`` segment means, linear
    in N). ``key_channels`` defaults to C/8 (f and g), ``value_channels`` to C (h); a
    smaller value width adds a 1x1 output projection back to C (SAGAN's C/2 variant).
    ``spectral_norm`` wraps the 1x1 projections (for spectrally normalised networks). ``gamma`` is the
    residual weight's start value: 0 (SAGAN's) makes a fresh block the identity.
    """

    def __init__(self, channels: int, mode: str = "full", landmarks: int = 64, key_channels: int | None = None,
                 value_channels: int | None = None, iterations: int = 6, spectral_norm: bool = False,
                 gamma: float = 0.0):
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
        self.gamma = nn.Parameter(torch.full((1,), float(gamma)))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The attention output before the residual and gamma (B, C, *spatial)."""
        b, c, *spatial = x.shape
        if self.mode == "nystrom" and math.prod(spatial) > self.landmarks:
            return self._nystrom(x, None).reshape(x.shape)
        flat = x.reshape(b, c, -1)
        # q, k and v in one matrix product (B, C, N) -> (B, 2d + c, N); oneDNN's 1x1 Conv1d is far slower on CPUs
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        q, k, v = (torch.matmul(weight, flat) + bias[:, None]).transpose(1, 2).split(self.split, dim=-1)
        out = full_attention(q, k, v)
        if self.project is not None:
            out = self.project(out)
        return out.transpose(1, 2).reshape(b, -1, *spatial)

    def _nystrom(self, x: torch.Tensor, gamma: torch.Tensor | None, residual: bool = False) -> torch.Tensor:
        """gamma * attention(x) (the bare attention when gamma is None), plus x if ``residual``, as (B, C, N).

        Works channels-first end to end and folds the value projection h (and the output
        projection) into the m landmark values: softmax rows sum to 1, so k3 (x^T W_h^T +
        b_h) = (k3 x^T) W_h^T + b_h. Exact, and the N x c value map is never made.
        Under autocast the big products run in the autocast precision; Z stays in fp32.
        The two N-sized products run over chunks of tokens that stay in cache, forward and
        backward (:class:`_LandmarkAverage`, :class:`_Spread`: differentiable once only).
        """
        b, c, *spatial = x.shape
        flat_x = x.reshape(b, c, -1)
        autocast = torch.is_autocast_enabled(x.device.type)
        dtype = torch.get_autocast_dtype(x.device.type) if autocast else flat_x.dtype
        flat = flat_x.to(dtype)
        acc = _accumulation_dtype(dtype)  # fp32 (fp64 for fp64 inputs)
        with torch.autocast(device_type=x.device.type, enabled=False):
            scale = self.query.weight.shape[0] ** -0.5
            weight = torch.cat([self.query.weight * scale, self.key.weight]).to(dtype)
            bias = torch.cat([self.query.bias * scale, self.key.bias]).to(dtype)
            # a batched product with the weight expanded: matmul(weight, flat) would fold the batch into
            # a transposed (B N, C) copy of the map, forward and backward (4x slower at 131k tokens)
            q, k = torch.baddbmm(bias[None, :, None], weight.expand(b, -1, -1), flat).split(self.split[:2], dim=1)
            q_l = _pool_channels_first(q, tuple(spatial), self.landmarks)
            k_l = _pool_channels_first(k, tuple(spatial), self.landmarks)
            k2 = (q_l.to(acc).transpose(1, 2) @ k_l.to(acc)).softmax(dim=-1)
            z = newton_schulz_pinv(k2, self.iterations)
            # fp32: the residual's gradient joins x's gradient inside _LandmarkAverage's backward pass
            link = _ResidualLink() if residual and flat is flat_x else None
            # the Functions only where autograd may need them: a trace (TorchScript export) must see plain ops
            functions = torch.is_grad_enabled() and not torch.jit.is_tracing()
            if functions:
                pooled_x = _LandmarkAverage.apply(q_l, k, flat, link)  # (B, m, C) in acc
            else:
                pooled_x = _average_forward(q_l, k, flat)[0]
            values = pooled_x @ self.value.weight.to(acc).T + self.value.bias.to(acc)  # (B, m, c_v)
            mixed = z @ values  # fp32: Z has large entries of both signs
            extra = None
            if self.project is not None:
                mixed = mixed @ self.project.weight.to(acc).T
                extra = self.project.bias.to(acc)
            if gamma is not None:
                mixed = mixed * gamma.to(acc)
                extra = None if extra is None else extra * gamma.to(acc)
            mixed_t = mixed.transpose(1, 2).to(dtype)  # (B, C, m)
            if functions:
                out = _Spread.apply(mixed_t, q, k_l, flat_x if residual else None, link)  # (B, C, N)
            else:
                out = _spread_forward(mixed_t, q, k_l, flat_x if residual else None)
            if extra is not None:
                out = out + extra.to(out.dtype)[:, None]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nystrom" and math.prod(x.shape[2:]) > self.landmarks:
            return self._nystrom(x, self.gamma, residual=True).reshape(x.shape)
        return x + self.gamma * self.attend(x)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, landmarks={self.landmarks}" if self.mode == "nystrom" else "mode='full'"
