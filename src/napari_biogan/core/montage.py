"""Samples tiled into one picture (a montage), and generated samples beside real ones: numpy only.

A stack (N, *middle, Y, X) becomes one image (*middle, H, W): the first samples (at most
:data:`MAX_SAMPLES`) in a near-square grid, row by row, with a thin gap between them. The
middle axes (a video's T, a channel or Z axis) are kept, so a montage of videos still plays
on its T slider. :func:`montage_pair` puts a montage of generated samples on the left and one
of real samples of the same shape on the right.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .errors import DataError

#: samples shown at most (a montage of thousands would be too large to see anything)
MAX_SAMPLES = 64
#: pixels between samples; between the generated and the real half: PAIR_GAP
GAP = 2
PAIR_GAP = 8


def grid_shape(n: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of a near-square grid for ``n`` samples (more columns than rows when uneven)."""
    if n < 1:
        raise DataError("A montage needs at least one sample.")
    cols = max(1, min(n, int(columns))) if columns else math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def as_stack(samples: np.ndarray | Sequence[np.ndarray], what: str = "samples") -> np.ndarray:
    """``samples`` as one array (N, *middle, Y, X); a list of arrays must share one shape."""
    if not isinstance(samples, np.ndarray):
        shapes = {np.shape(s) for s in samples}
        if len(shapes) > 1:
            listed = ", ".join(str(s) for s in sorted(shapes))
            raise DataError(f"The {what} of a montage must all have one shape; got {listed}.")
        samples = np.stack([np.asarray(s) for s in samples]) if shapes else np.zeros((0, 1, 1))
    if samples.ndim < 3:
        raise DataError(f"A montage tiles a stack of {what} (N, Y, X) or (N, T, Y, X); got one array of shape "
                        f"{samples.shape}.")
    if len(samples) == 0:
        raise DataError(f"There are no {what} to put in a montage.")
    return samples


def tile(samples: np.ndarray | Sequence[np.ndarray], gap: int = GAP, columns: int | None = None,
         limit: int = MAX_SAMPLES, fill: float | None = None, empty: float | None = None) -> np.ndarray:
    """The first ``limit`` samples of (N, *middle, Y, X) tiled row by row into (*middle, H, W).

    ``fill``: the value of the gaps (default: the samples' maximum, a bright line between
    dark-background images); ``empty``: grid cells past the last sample (default: the minimum).
    The dtype is kept (labels stay integers).
    """
    stack = as_stack(samples)[:max(1, int(limit))]
    if gap < 0:
        raise DataError(f"A montage gap must be 0 or more pixels, not {gap}.")
    n, height, width = len(stack), stack.shape[-2], stack.shape[-1]
    rows, cols = grid_shape(n, columns)
    fill = stack.max() if fill is None else fill
    empty = stack.min() if empty is None else empty
    middle = stack.shape[1:-2]
    out = np.full((*middle, rows * height + (rows - 1) * gap, cols * width + (cols - 1) * gap), fill,
                  dtype=stack.dtype)
    for index in range(rows * cols):
        r, c = divmod(index, cols)
        y, x = r * (height + gap), c * (width + gap)
        out[..., y:y + height, x:x + width] = stack[index] if index < n else empty
    return out


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = PAIR_GAP, fill: float | None = None) -> np.ndarray:
    """Two pictures (*middle, H, W) next to each other, the shorter padded at the bottom."""
    if left.shape[:-2] != right.shape[:-2]:
        raise DataError(f"Pictures put side by side must share their leading axes; got {left.shape} and "
                        f"{right.shape}.")
    dtype = np.result_type(left.dtype, right.dtype)
    fill = max(left.max(), right.max()) if fill is None else fill
    height = max(left.shape[-2], right.shape[-2])
    out = np.full((*left.shape[:-2], height, left.shape[-1] + gap + right.shape[-1]), fill, dtype=dtype)
    out[..., :left.shape[-2], :left.shape[-1]] = left
    out[..., :right.shape[-2], left.shape[-1] + gap:] = right
    return out


def montage_pair(generated: np.ndarray | Sequence[np.ndarray], real: np.ndarray | Sequence[np.ndarray],
                 gap: int = GAP, columns: int | None = None, limit: int = MAX_SAMPLES,
                 pair_gap: int = PAIR_GAP) -> tuple[np.ndarray, int]:
    """(generated on the left, real on the right, the number of samples in each half).

    Both halves tile the same number of samples (the fewer of the two, at most ``limit``) in the
    same grid; their samples must have one shape (a video beside clips of other sizes is refused).
    """
    generated, real = as_stack(generated, "generated samples"), as_stack(real, "real samples")
    if generated.shape[1:] != real.shape[1:]:
        raise DataError(f"The real samples are {_shape(real)} and the generated ones {_shape(generated)}; "
                        "choose real data of the same sample shape.")
    n = min(len(generated), len(real), max(1, int(limit)))
    fill = max(generated[:n].max(), real[:n].max())
    left = tile(generated[:n], gap, columns, n, fill=fill)
    right = tile(real[:n], gap, columns, n, fill=fill)
    return side_by_side(left, right, pair_gap, fill=fill), n


def _shape(stack: np.ndarray) -> str:
    return " x ".join(str(s) for s in stack.shape[1:])
