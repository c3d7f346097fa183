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
are custom autograd Functions (:class:`_LandmarkAverage`, :class:`_Spread`) that
run over chunks of CHUNK tokens, flash-attention style: the forward pass saves
only its inputs and two (B, m) statistics; the backward pass recomputes each
chunk's probabilities and accumulates the gradients chunk by chunk. The forward
passes need no softmax pass and no running maximum: the logits are shifted by
upper bounds of their maxima known before the first chunk (from the keys'
per-channel extremes), the shift rides in the logits' product, and the
normalisation is left to the few output values (exact fallbacks where a bound is
too loose). The temporaries stay in cache and no N x m matrix exists, in training
or in generation. On CPU the chunks are shared out to torch's threads by
nn/chunks.py, each running its chunks single-threaded (one
synchronisation per product instead of one per operation, and balanced when
another job holds a core); partial results are combined in chunk order, so the
numbers do not depend on the thread count. These two Functions are
differentiable once only (no double backward: a gradient penalty through a
Nyström block raises an error); the full mode, which the critics use with a
gradient penalty, is plain autograd and supports it. Measured against
lucidrains' ``nystrom-attention`` in benchmarks/bench_attention.py (README).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .chunks import _single_threaded_pool, for_each_chunk  # noqa: F401  (the pool: tests reach it from here)

MODES = ("full", "nystrom")
T = TypeVar("T")


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


CHUNK = 2048  # tokens per chunk: 2048 x 64 landmarks x 4 bytes = 512 KiB per sample, cache-sized (measured)

def _for_each_chunk(n: int, device: torch.device, body: Callable[[slice], T]) -> list[T]:
    """[body(chunk) for each chunk of the n tokens], in order, by :func:`.chunks.for_each_chunk` (CHUNK tokens)."""
    return for_each_chunk(n, device, body, CHUNK)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for bf16/fp16/fp32 work, fp64 for fp64 (gradcheck)."""
    return torch.promote_types(dtype, torch.float32)


def _sum(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    """Sum in list order (deterministic)."""
    total = None
    for part in parts:
        total = part if total is None else total + part
    return total


def _logit_bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Upper bounds of max_j a_i . b_j for every column a_i of a (B, d, I) over the columns of b (B, d, J): (B, I).

    The box bound sum_c max(a_ci min_j b_cj, a_ci max_j b_cj), which needs only b's per-channel
    extremes, never the I x J products, written as a_i . mid + |a_i| . half (mid and half the
    box's centre and half-widths: one product of 2d channels). In the shipped SAVGANs it lies
    0.1-0.4 nats above the true maxima (median; at most 4.7), far from where exp() underflows;
    Cauchy-Schwarz was looser there. In fp32 (fp64 for fp64 inputs).
    """
    acc = _accumulation_dtype(a.dtype)
    a, b = a.to(acc), b.to(acc)
    low, high = b.amin(dim=-1), b.amax(dim=-1)  # (B, d)
    box = torch.cat([(high + low) / 2, (high - low) / 2], dim=1)[:, None]  # (B, 1, 2d)
    return (box @ torch.cat([a, a.abs()], dim=1))[:, 0]


def _with_row(features: torch.Tensor, row: torch.Tensor | float) -> torch.Tensor:
    """(B, d, X) features with one more channel (B, d + 1, X): ``row`` (B, X), or a constant."""
    extra = features.new_full(features[:, :1].shape, row) if isinstance(row, float) else row[:, None]
    return torch.cat([features, extra.to(features.dtype)], dim=1)


# exp() underflows below about -87 (fp32 and bf16 alike): a softmax denominator below exp(-60) means a
# bound overshot the true maximum so far that small terms were lost, and the pass is redone exactly
_LOOSE_BOUND = math.exp(-60)


def _average_forward(q_l: torch.Tensor, k: torch.Tensor, x: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """softmax(Q~ K^T) x^T (B, m, C) in fp32, one chunk of tokens at a time.

    Also returns the shift subtracted from each landmark's logits and the softmax denominator
    per landmark, (B, 1, m) fp32 each: all the backward pass needs to recompute the
    probabilities. The shift is an upper bound of each landmark's maximum logit
    (:func:`_logit_bound`), known before any chunk, so no chunk needs its own maximum or a
    rescaling, and it rides in the logits' matrix product (keys with a row of ones against
    landmarks with the shift): per chunk one product, one in-place exp, one product, one sum.
    Where a bound is too loose to trust (a denominator below exp(-60)), the pass is redone with
    exact maxima (:func:`_average_forward_exact`; also under a trace, which records one path).
    Nothing larger than CHUNK x m is made. The chunk's scores are laid out (tokens, landmarks)
    and the products as x @ E: with q_l, k and x as they come, these are the layouts CPU
    matrix kernels are fastest on.
    """
    if torch.jit.is_tracing():
        return _average_forward_exact(q_l, k, x)
    acc = _accumulation_dtype(x.dtype)
    shift = _logit_bound(q_l, k).to(x.dtype)  # in the products' precision: the backward pass subtracts it there
    keys, landmarks = _with_row(k, 1.0), _with_row(q_l, -shift)

    def chunk(part: slice) -> tuple[torch.Tensor, torch.Tensor]:
        weights = (keys[:, :, part].transpose(1, 2) @ landmarks).exp_()  # (B, chunk, m): exp(S - shift)
        average = (x[:, :, part] @ weights).to(acc)  # (B, C, m)
        return average, weights.sum(dim=1, keepdim=True).to(acc)  # CPU and CUDA sums of bf16 accumulate in fp32

    parts, totals = (torch.stack(values) for values in zip(*_for_each_chunk(k.shape[-1], k.device, chunk)))
    numerator, denominator = parts.sum(dim=0), totals.sum(dim=0)  # in chunk order, batched
    if denominator.amin() < _LOOSE_BOUND:
        return _average_forward_exact(q_l, k, x)
    return (numerator / denominator).transpose(1, 2), shift[:, None].to(acc), denominator


def _average_forward_exact(q_l: torch.Tensor, k: torch.Tensor, x: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_average_forward` with each chunk's exact maxima (online softmax): the fallback for loose bounds.

    Also returns the final maximum and the softmax denominator per landmark, (B, 1, m) fp32
    each: all the backward pass needs to recompute the probabilities. Each chunk's sums are
    taken relative to the chunk's maximum and merged in chunk order, rescaled to the running
    maximum (the flash-attention recurrence), so the exponentials stay finite. Nothing
    larger than CHUNK x m is made. The chunk's scores are laid out (tokens, landmarks) and
    the products as x @ E: with q_l, k and x as they come, these are the layouts CPU matrix
    kernels are fastest on.
    """
    acc = _accumulation_dtype(x.dtype)

    def chunk(part: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = k[:, :, part].transpose(1, 2) @ q_l  # (B, chunk, m)
        chunk_max = logits.amax(dim=1, keepdim=True)  # (B, 1, m)
        weights = logits.sub_(chunk_max).exp_()
        average = (x[:, :, part] @ weights).to(acc)  # (B, C, m)
        total = weights.sum(dim=1, keepdim=True).to(acc)  # CPU and CUDA sums of bf16 accumulate in fp32
        return average, total, chunk_max.to(acc)

    parts, totals, maxima = (torch.stack(values) for values in zip(*_for_each_chunk(k.shape[-1], k.device, chunk)))
    # the chunks' sums rescaled to the overall maximum, in a few batched operations (many tiny ones
    # are slow where each may wake a thread team)
    running_max = maxima.amax(dim=0)  # (B, 1, m)
    scales = (maxima - running_max).exp_()  # (chunks, B, 1, m)
    numerator = (parts * scales).sum(dim=0)
    denominator = (totals * scales).sum(dim=0)
    return (numerator / denominator).transpose(1, 2), running_max, denominator


class _ResidualLink:
    """Carries the residual's gradient from :class:`_Spread`'s backward to :class:`_LandmarkAverage`'s.

    In the block out = x + spread(..., average(x)), x's gradient is the sum of the residual's
    (the output gradient itself) and the average's: adding them where the latter is made
    saves autograd a pass over two (B, C, N) maps. Autograd runs _Spread's backward first
    (its input depends on _LandmarkAverage's output), and whenever x needs a gradient it runs
    _LandmarkAverage's backward too (x is its input), so the hand-over is safe.
    """

    grad: torch.Tensor | None = None


class _LandmarkAverage(torch.autograd.Function):
    """softmax(Q~ K^T) x^T for q_l (B, d, m), k (B, d, N), x (B, C, N) -> (B, m, C) fp32, in O(m) extra memory.

    Forward: :func:`_average_forward`; saves the inputs, the (B, m, C) output and two (B, 1, m)
    statistics. Backward recomputes each chunk's exponentials E = exp(S - shift) and, with the
    1 / denominator folded into the (B, m, C) output gradient, accumulates the gradients
    chunk by chunk (the softmax over N: dS = P * (dP - delta), delta = rowsum(dOut * Out)).
    Not twice differentiable (no double backward; the critics' gradient penalty uses "full").
    """

    @staticmethod
    def forward(ctx, q_l: torch.Tensor, k: torch.Tensor, x: torch.Tensor, link: _ResidualLink | None = None
                ) -> torch.Tensor:
        ctx.link = link
        out, shift, denominator = _average_forward(q_l, k, x)
        ctx.save_for_backward(q_l, k, x, out, shift, denominator)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q_l, k, x, out, shift, denominator = ctx.saved_tensors
        need_q_l, need_k, need_x = ctx.needs_input_grad[:3]
        dtype, acc = x.dtype, _accumulation_dtype(x.dtype)
        residual_grad, ctx.link = (ctx.link.grad, None) if ctx.link is not None else (None, None)
        with torch.autocast(device_type=x.device.type, enabled=False):
            grad_out = grad_out.to(acc) / denominator.transpose(1, 2)  # (B, m, C): dOut / denominator
            neg_delta = -(grad_out * out).sum(dim=-1)[:, None, :].to(dtype)  # (B, 1, m), over the denominator
            grad_out_t = grad_out.transpose(1, 2).to(dtype)  # (B, C, m)
            # the forward pass's logits, by the same product: keys with a row of ones, landmarks with -shift
            keys, landmarks = _with_row(k, 1.0), _with_row(q_l, -shift[:, 0])
            grad_k = torch.empty_like(k) if need_k else None
            grad_x = torch.empty_like(x) if need_x else None

            def chunk(part: slice) -> torch.Tensor | None:
                k_c, x_c = k[:, :, part], x[:, :, part]
                weights = (keys[:, :, part].transpose(1, 2) @ landmarks).exp_()  # (B, chunk, m): P * denominator
                if need_x and residual_grad is not None:  # x's gradient and the residual's in one pass
                    torch.baddbmm(residual_grad[:, :, part], grad_out_t, weights.transpose(1, 2), out=grad_x[:, :, part])
                elif need_x:
                    torch.bmm(grad_out_t, weights.transpose(1, 2), out=grad_x[:, :, part])
                if not (need_q_l or need_k):
                    return None
                grad_logits = torch.baddbmm(neg_delta, x_c.transpose(1, 2), grad_out_t).mul_(weights)
                if need_k:
                    torch.bmm(q_l, grad_logits.transpose(1, 2), out=grad_k[:, :, part])
                return (k_c @ grad_logits).to(acc) if need_q_l else None

            grad_q_l = _sum(_for_each_chunk(k.shape[-1], k.device, chunk))
        return None if grad_q_l is None else grad_q_l.to(q_l.dtype), grad_k, grad_x, None


def _spread_forward(mixed_t: torch.Tensor, q: torch.Tensor, k_l: torch.Tensor,
                    residual: torch.Tensor | None) -> torch.Tensor:
    """mixed_t @ softmax(Q K~^T)^T (B, C, N), plus ``residual`` (B, C, N) if given, chunk by chunk.

    No softmax pass: each token's logits are shifted by an upper bound of their maximum
    (:func:`_logit_bound`), which rides in the logits' product (tokens with -shift against
    landmarks with a row of ones), exponentiated in place, and the normalisation is left to
    the output: a row of ones under ``mixed_t`` makes the product return each token's
    denominator beside its C values, and one fused residual + values / denominator writes the
    output. Where a bound is too loose to trust (a denominator below exp(-60)), the pass is
    redone by exact softmax (:func:`_spread_forward_exact`; also under a trace).
    """
    if torch.jit.is_tracing():
        return _spread_forward_exact(mixed_t, q, k_l, residual)
    b, c, n = mixed_t.shape[0], mixed_t.shape[1], q.shape[-1]
    out_dtype = residual.dtype if residual is not None else mixed_t.dtype
    out = torch.empty(b, c, n, dtype=out_dtype, device=q.device)
    tokens, landmarks = _with_row(q, -_logit_bound(q, k_l)), _with_row(k_l, 1.0)
    values = _with_row(mixed_t, 1.0)  # (B, C + 1, m): the last output row is the denominator

    def chunk(part: slice) -> torch.Tensor:
        weights = (tokens[:, :, part].transpose(1, 2) @ landmarks).exp_()  # (B, chunk, m): exp(S - shift)
        spread = values @ weights.transpose(1, 2)  # (B, C + 1, chunk)
        denominator = spread[:, c:]
        if residual is not None:
            torch.addcdiv(residual[:, :, part], spread[:, :c], denominator, out=out[:, :, part])
        else:
            torch.div(spread[:, :c], denominator, out=out[:, :, part])
        return denominator.amin()

    if torch.stack(_for_each_chunk(n, q.device, chunk)).amin() < _LOOSE_BOUND:
        return _spread_forward_exact(mixed_t, q, k_l, residual)
    return out


def _spread_forward_exact(mixed_t: torch.Tensor, q: torch.Tensor, k_l: torch.Tensor,
                          residual: torch.Tensor | None) -> torch.Tensor:
    """:func:`_spread_forward` by each chunk's exact softmax: the fallback for loose bounds."""
    b, c, n = mixed_t.shape[0], mixed_t.shape[1], q.shape[-1]
    out_dtype = residual.dtype if residual is not None else mixed_t.dtype
    out = torch.empty(b, c, n, dtype=out_dtype, device=q.device)

    def chunk(part: slice) -> None:
        k1 = (q[:, :, part].transpose(1, 2) @ k_l).softmax(dim=-1)  # (B, chunk, m)
        spread = mixed_t @ k1.transpose(1, 2)
        if residual is not None:
            torch.add(residual[:, :, part], spread.to(out_dtype), out=out[:, :, part])
        else:
            out[:, :, part] = spread

    _for_each_chunk(n, q.device, chunk)
    return out


class _Spread(torch.autograd.Function):
    """mixed_t @ softmax(Q K~^T)^T (+ residual) for mixed_t (B, C, m), q (B, d, N), k_l (B, d, m) -> (B, C, N).

    Forward: :func:`_spread_forward`; saves only the inputs (the softmax is over the m
    landmarks of each token, so a chunk's probabilities need nothing from other chunks).
    Backward recomputes each chunk's probabilities and accumulates the gradients chunk by
    chunk (dS = P * (dP - rowsum(dP * P)) per token). Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, mixed_t: torch.Tensor, q: torch.Tensor, k_l: torch.Tensor, residual: torch.Tensor | None,
                link: _ResidualLink | None = None) -> torch.Tensor:
        ctx.save_for_backward(mixed_t, q, k_l)
        ctx.link = link
        return _spread_forward(mixed_t, q, k_l, residual)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        mixed_t, q, k_l = ctx.saved_tensors
        need_mixed, need_q, need_k_l, need_residual = ctx.needs_input_grad[:4]
        if need_residual and ctx.link is not None:  # handed to _LandmarkAverage's backward (it runs later)
            ctx.link.grad, need_residual = grad_out, False
        ctx.link = None
        dtype, acc = mixed_t.dtype, _accumulation_dtype(mixed_t.dtype)
        with torch.autocast(device_type=q.device.type, enabled=False):
            grad = grad_out.to(dtype)
            grad_q = torch.empty_like(q) if need_q else None

            def chunk(part: slice) -> tuple[torch.Tensor | None, torch.Tensor | None]:
                q_c, grad_c = q[:, :, part], grad[:, :, part]
                probs = (q_c.transpose(1, 2) @ k_l).softmax(dim=-1)  # (B, chunk, m)
                grad_mixed = (grad_c @ probs).to(acc) if need_mixed else None
                if not (need_q or need_k_l):
                    return grad_mixed, None
                grad_probs = grad_c.transpose(1, 2) @ mixed_t  # (B, chunk, m)
                grad_logits = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
                if need_q:
                    torch.bmm(k_l, grad_logits.transpose(1, 2), out=grad_q[:, :, part])
                return grad_mixed, (q_c @ grad_logits).to(acc) if need_k_l else None

            parts = _for_each_chunk(q.shape[-1], q.device, chunk)
            grad_mixed, grad_k_l = _sum([p[0] for p in parts]), _sum([p[1] for p in parts])
        return (None if grad_mixed is None else grad_mixed.to(dtype), grad_q,
                None if grad_k_l is None else grad_k_l.to(k_l.dtype), grad_out if need_residual else None, None)
