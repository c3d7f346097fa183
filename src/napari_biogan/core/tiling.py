"""Run a fully convolutional model over a large image in overlapping tiles, then blend.

Each tile's raw outputs are weighted by a window that ignores the outer half of
the overlap (where zero padding makes a convolution differ from the untiled
run) and ramps up over the inner half (so seams fade instead of cutting), and summed; dividing by the summed weights
gives the blended output. Labels are blended as logits and take their arg-max
afterwards (in :mod:`.model`), so a class boundary is decided by all the tiles
that see it. Only one tile is in memory at a time besides the output canvas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .errors import DataError

if TYPE_CHECKING:
    import torch


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``size`` with at least ``overlap`` shared."""
    if tile >= size:
        return [0]
    if overlap >= tile:
        raise DataError(f"The tile overlap ({overlap}) must be smaller than the tile ({tile}).")
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> "torch.Tensor":
    """1-D weights at inner edges: zero over the outer half of the overlap (where padding
    changes a convolution's result), then rising; flat at the image border.

    The neighbouring tile's zero half is this tile's rising half, so every pixel
    keeps a positive total weight.
    """
    import torch

    weights = torch.ones(length)
    dead = overlap // 2
    ramp = torch.cat([torch.zeros(dead), (torch.arange(overlap - dead, dtype=torch.float32) + 1)
                      / (overlap - dead + 1)])
    if overlap and not at_start:
        weights[:overlap] = ramp
    if overlap and not at_end:
        weights[length - overlap:] = torch.minimum(weights[length - overlap:], ramp.flip(0))
    return weights


def run_tiled(fn: Callable[["torch.Tensor"], dict[str, "torch.Tensor"]], image: "torch.Tensor",
              tile: int | tuple[int, int], overlap: int,
              progress: Callable[[int, int], None] | None = None) -> dict[str, "torch.Tensor"]:
    """Blend ``fn`` over tiles of ``image`` (N, C, ..., Y, X); ``fn`` keeps each tile's Y, X size.

    Returns every output of ``fn`` at the full size, as float32 on the CPU.
    """
    import torch

    tile_y, tile_x = (tile, tile) if isinstance(tile, int) else tile
    if min(tile_y, tile_x) < 1 or overlap < 0:
        raise DataError("Tiles need a positive size and a non-negative overlap.")
    height, width = image.shape[-2:]
    ys, xs = tile_starts(height, tile_y, overlap), tile_starts(width, tile_x, overlap)
    sums: dict[str, torch.Tensor] = {}
    weight_sum = torch.zeros(height, width)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        for x in xs:
            crop = image[..., y:y + tile_y, x:x + tile_x]
            h, w = crop.shape[-2:]
            outputs = fn(crop)
            window = (_ramp(h, min(overlap, h // 2), y == 0, y + h >= height)[:, None]
                      * _ramp(w, min(overlap, w // 2), x == 0, x + w >= width)[None, :])
            for name, value in outputs.items():
                value = value.detach().float().cpu()
                if tuple(value.shape[-2:]) != (h, w):
                    raise DataError(f"Output '{name}' does not keep the tile size; it cannot be tiled.")
                if name not in sums:
                    sums[name] = torch.zeros(*value.shape[:-2], height, width)
                sums[name][..., y:y + h, x:x + w] += value * window
            weight_sum[y:y + h, x:x + w] += window
            done += 1
            if progress is not None:
                progress(done, total)
    weight_sum = weight_sum.clamp_min(1e-12)
    return {name: total_ / weight_sum for name, total_ in sums.items()}
