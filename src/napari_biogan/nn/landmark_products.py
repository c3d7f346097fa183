"""The two N-sized products of Nyström attention, chunked: forward and backward in O(N) memory.

softmax(Q~ K^T) x^T (the m landmark averages of the map, :class:`_LandmarkAverage`) and
mixed @ softmax(Q K~^T)^T (the landmark values spread back to every token, :class:`_Spread`),
the only parts of nn/attention.py's Nyström block whose cost grows with the N tokens. Both are
custom autograd Functions that run over chunks of CHUNK tokens, flash-attention style: the
forward pass saves only its inputs and two (B, m) statistics; the backward pass recomputes
each chunk's probabilities and accumulates the gradients chunk by chunk. The forward passes
need no softmax pass and no running maximum: the logits are shifted by upper bounds of their
maxima known before the first chunk (from the keys' per-channel extremes), the shift rides in
the logits' product, and the normalisation is left to the few output values (exact fallbacks
where a bound is too loose). The temporaries stay in cache and no N x m matrix exists, in
training or in generation. On CPU the chunks are shared out to torch's threads by
nn/chunks.py, each running its chunks single-threaded (one synchronisation per product
instead of one per operation, and balanced when another job holds a core); partial results
are combined in chunk order, so the numbers do not depend on the thread count. Both Functions
are differentiable once only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch.autograd.function import once_differentiable

from .chunks import for_each_chunk

T = TypeVar("T")

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
