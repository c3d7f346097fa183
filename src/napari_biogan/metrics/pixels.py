"""Pixel correlation, shared by the video and the attribute-editing metrics and the time-lapse check (numpy)."""

from __future__ import annotations

import numpy as np


def centred_unit_rows(images) -> np.ndarray:
    """(N, ...) images -> (N, pixels) float64 rows with mean 0 and norm 1 (a flat image stays all zeros), so
    the dot product of two rows is the Pearson correlation of their pixels."""
    rows = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    rows = rows - rows.mean(1, keepdims=True)
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norm, out=np.zeros_like(rows), where=norm > 1e-12)


def paired_correlation(a, b, flat: float = 0.0) -> np.ndarray:
    """Pixel correlation of ``a[i]`` with ``b[i]``, one value per pair; ``flat`` where either has no contrast."""
    a, b = centred_unit_rows(a), centred_unit_rows(b)
    defined = a.any(1) & b.any(1)
    return np.where(defined, (a * b).sum(1), flat)


def lagged_correlation(videos, lag: int, flat: float = 0.0) -> np.ndarray:
    """Per video (N, T, ...): the mean pixel correlation of frames t and t + ``lag`` (N,)."""
    videos = np.asarray(videos)
    n, t = videos.shape[:2]
    early = videos[:, :t - lag].reshape(n * (t - lag), -1)
    late = videos[:, lag:].reshape(n * (t - lag), -1)
    return paired_correlation(early, late, flat).reshape(n, t - lag).mean(1)


def scale_bands(images, edges: tuple[int, ...] = (2, 4, 8)) -> list[np.ndarray]:
    """Split images (..., Y, X) into detail bands that sum back to them: the image minus its 2x2 block
    means (detail finer than 2 px), those block means minus the 4x4 ones, and so on for each of ``edges``;
    the last band is the coarsest block means. Y and X must be multiples of every edge."""
    from ..core.errors import DataError

    data = np.asarray(images, dtype=np.float64)
    y, x = data.shape[-2:]
    if any(y % size or x % size for size in edges):
        raise DataError(f"{y}x{x} images cannot be split into blocks of {', '.join(map(str, edges))} pixels.")
    bands, finer = [], data
    for size in edges:
        blocks = data.reshape(*data.shape[:-2], y // size, size, x // size, size).mean((-3, -1))
        coarser = np.repeat(np.repeat(blocks, size, -2), size, -1)
        bands.append(finer - coarser)
        finer = coarser
    bands.append(finer)
    return bands
