"""2D+t clips cropped around moving cells of a time-lapse (T, Y, X), as SAVGAN's tumour-on-chip clips.

Motion measure. The paper thresholds optical-flow magnitude. We threshold the
magnitude of smoothed frame differences instead: |G*I_{t+1} - G*I_t| with a
Gaussian G (sigma ``sigma`` pixels after down-scaling) on frames whose median
has been subtracted (so a global illumination jump, like the one at frame 25
of the T98G movie, is not taken for motion). For the task, *where* cells move,
this marks the same pixels as flow magnitude does (a moving textured cell
changes the pixels it enters and leaves; a still one changes none), it needs no
flow solver or extra package, and it costs two convolutions per frame instead of
an iterative flow estimate. It does not give the direction or speed of motion,
which clip cropping does not need. A voxel moves when its difference exceeds
``median + 6 MAD`` of all differences (robust noise level; about 7 noise
standard deviations), unless ``motion_threshold`` is given.

Clip choice. A clip's motion score is the fraction of its (T-1) x Y x X
difference voxels that move. Clips are picked greedily, highest score first,
so that no two clips overlap in space-time and each lies wholly inside the
movie; picking stops at ``max_clips`` or when the best remaining score is below
``min_motion``. With ``tracks`` (a cell-tracking table) the candidate clips are
centred on tracked cells (the mean centroid of a cell over the clip's frames)
instead of every position; crops are fixed windows: cells move inside them.

Down-scaling. ``downscale`` = k averages k x k pixel blocks first (rows or
columns beyond a multiple of k are dropped). T98G (1022 x 1024, cells with a
median equivalent diameter of 44 px and bounding boxes up to ~160 px) needs
k = 2 for 64 x 64 clips: a clip then spans a 128 x 128-pixel field, one typical
cell and its neighbourhood, whole; :data:`T98G_FIELD` keeps that field for
other clip sizes (k = 4 for 32 x 32 clips).

Output intensities: the movie is scaled once by its own 0.5 / 99.5 percentiles
to [0, 1] (clipped), so clips of one movie share one scale (AACD compares them).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.errors import DataError

#: the field of view (original pixels) a T98G clip spans: one typical cell, whole
T98G_FIELD = 128
T98G_DIR = "usiigaci_t98g_phase_timelapse"
MAD_FACTOR = 6.0


def default_t98g_dir() -> Path:
    """``usiigaci_t98g_phase_timelapse`` in the shared data folder (``$NAPARI_BIOGAN_DATA`` or ``../shared/data``)."""
    from .shared import shared_data_dir

    return shared_data_dir(T98G_DIR)


def read_tracks_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A tracking table (CSV with a header) as columns of floats; 'particle' and 'frame' become ints."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No tracks file at {path}.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path.name} is not a tracks table (a CSV with frame, y, x columns).") from err
    if not rows:
        raise DataError(f"The tracks file {path.name} has no rows.")
    missing = [c for c in ("frame", "y", "x") if c not in rows[0]]
    if missing:
        raise DataError(f"The tracks file {path.name} has no {', '.join(missing)} column(s); "
                        "it needs frame, y and x (and optionally particle).")
    columns: dict[str, np.ndarray] = {}
    for key in rows[0]:
        try:
            columns[key] = np.array([float(row[key]) for row in rows])
        except (TypeError, ValueError):
            continue  # text columns are not needed
    for key in ("particle", "frame"):
        if key in columns:
            columns[key] = np.rint(columns[key]).astype(np.int64)
    return columns


def load_t98g(root: str | os.PathLike | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The T98G phase-contrast movie (37, 1022, 1024) uint16 and its tracks.

    Tracks: the columns of ``tracks.csv`` with ``y`` / ``x`` replaced by the
    centroids in pixels (the file's ``wtd_y`` / ``wtd_x``, which match the ID
    masks; its own ``y`` / ``x`` are in another unit, 1.149 pixels each; they are
    kept as ``y_file`` / ``x_file``), ``frame`` 0-based and ``particle`` the cell id.
    """
    from .tiff_io import load_image_stack

    root = Path(root) if root is not None else default_t98g_dir()
    if not (root / "T98G_sample").is_dir():
        raise DataError(f"The T98G time-lapse is not at {root}; it should hold the T98G_sample folder.")
    movie = load_image_stack(root / "T98G_sample")
    found = sorted(root.glob("*/tracks.csv")) + sorted(root.glob("tracks.csv"))
    if not found:
        raise DataError(f"No tracks.csv under {root}.")
    tracks = read_tracks_csv(found[0])
    if "wtd_y" in tracks and "wtd_x" in tracks:
        tracks["y_file"], tracks["x_file"] = tracks["y"], tracks["x"]
        tracks["y"], tracks["x"] = tracks["wtd_y"], tracks["wtd_x"]
    return movie, tracks


def downscale_movie(movie: np.ndarray, factor: int) -> np.ndarray:
    """(T, Y, X) -> (T, Y // factor, X // factor) float32 by block means."""
    movie = np.asarray(movie, dtype=np.float32)
    factor = int(factor)
    if factor < 1:
        raise DataError(f"The down-scaling factor must be a whole number of at least 1, not {factor}.")
    t, y, x = movie.shape
    if factor > min(y, x):
        raise DataError(f"A down-scaling factor of {factor} leaves nothing of {y}x{x} frames; "
                        f"use at most {min(y, x)}.")
    if factor == 1:
        return movie
    y, x = y // factor * factor, x // factor * factor
    return movie[:, :y, :x].reshape(t, y // factor, factor, x // factor, factor).mean((2, 4), dtype=np.float32)


def normalise_movie(movie: np.ndarray) -> np.ndarray:
    """Scale by the movie's 0.5 / 99.5 percentiles to [0, 1] (clipped), float32."""
    movie = np.asarray(movie, dtype=np.float32)
    if not np.isfinite(movie).all():
        raise DataError("The time-lapse contains NaN or infinite values; clean or crop it first.")
    sample = movie[:, ::2, ::2] if movie.size > 4_000_000 else movie  # percentiles need no full pass
    low, high = np.percentile(sample, [0.5, 99.5])
    if not high > low:
        high = low + 1.0
    return np.clip((movie - np.float32(low)) / np.float32(high - low), 0.0, 1.0)


def motion_map(movie: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """|G*I_{t+1} - G*I_t| (T-1, Y, X) of median-subtracted, Gaussian-smoothed frames."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(movie, dtype=np.float32))[:, None]
    x = x - x.flatten(1).median(1).values[:, None, None, None]
    if sigma > 0:
        radius = max(1, int(round(3 * sigma)))
        kernel = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
        kernel = kernel / kernel.sum()
        x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return (x[1:] - x[:-1]).abs()[:, 0].numpy()


def robust_threshold(motion: np.ndarray, factor: float = MAD_FACTOR) -> float:
    """median + factor * MAD (scaled to a Gaussian's sigma) of the differences."""
    sample = motion.ravel()[:: max(1, motion.size // 2_000_000)]
    med = float(np.median(sample))
    return med + factor * 1.4826 * float(np.median(np.abs(sample - med)))


def crop_moving_clips(movie: np.ndarray, size: tuple[int, int, int] = (32, 64, 64), max_clips: int | None = None,
                      tracks: Mapping[str, np.ndarray] | None = None, seed: int = 0, downscale: int = 1,
                      min_motion: float = 0.05, motion_threshold: float | None = None,
                      sigma: float = 1.0, time_stride: int | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Clips (N, T, Y, X) float32 in [0, 1] around moving cells, and one info dict per clip.

    ``movie``: (T, Y, X) any numeric dtype. ``size``: clip (T, Y, X) after
    down-scaling by ``downscale``. ``tracks``: columns 'frame', 'y', 'x' (pixels
    of the original movie) and optionally 'particle' to centre clips on tracked
    cells. ``seed`` only breaks ties between equal scores (reproducibly).
    ``time_stride``: clips of the same place must start at least this many frames
    apart (default: the clip length, so clips never overlap); a smaller stride gives
    more, overlapping clips from a short movie (more training data, correlated).
    Info: ``centre`` (y, x) and ``corner`` (y, x) in original pixels, ``time``
    (first frame), ``motion`` (fraction of moving voxels), ``particle`` (or None).
    """
    movie = np.asarray(movie)
    if movie.ndim != 3 or movie.dtype.kind not in "uifb":
        raise DataError(f"Expected a numeric movie shaped (T, Y, X); got {movie.shape} of {movie.dtype}.")
    size = tuple(int(s) for s in size)
    if max_clips is not None and int(max_clips) < 1:
        raise DataError(f"The number of clips must be at least 1, not {max_clips}.")
    if len(size) != 3 or min(size) < 1:
        raise DataError(f"The clip size must be three positive numbers (T, Y, X), not {size}.")
    work = normalise_movie(downscale_movie(movie, downscale))
    t_len, y_len, x_len = size
    gap = t_len if time_stride is None else int(time_stride)
    if not 1 <= gap <= t_len:
        raise DataError(f"The time stride must be between 1 and the clip length {t_len}, not {time_stride}.")
    if t_len < 2 or any(s > m for s, m in zip(size, work.shape)):
        raise DataError(f"Clips of {size} (T, Y, X) do not fit a movie of {work.shape} after down-scaling "
                        f"by {downscale}; clips need at least 2 frames.")
    motion = motion_map(work, sigma)
    threshold = robust_threshold(motion) if motion_threshold is None else float(motion_threshold)
    moving = (motion > threshold).astype(np.float32)
    scores = _box_means(moving, (t_len - 1, y_len, x_len))  # score[t, y, x]: clip starting at (t, y, x)
    rng = np.random.default_rng(seed)
    scores = scores + rng.random(scores.shape, dtype=np.float32) * 1e-6  # seeded tie-breaking

    if tracks is None:
        picks = _pick_dense(scores, size, max_clips, min_motion, gap)
        particles = [None] * len(picks)
    else:
        candidates = _track_candidates(tracks, size, work.shape, downscale)
        picks, particles = _pick_candidates(scores, candidates, size, max_clips, min_motion, gap)

    clips = np.stack([work[t:t + t_len, y:y + y_len, x:x + x_len] for t, y, x in picks]) if picks else \
        np.zeros((0, *size), np.float32)
    info = [{"centre": ((y + y_len / 2) * downscale, (x + x_len / 2) * downscale),
             "corner": (y * downscale, x * downscale), "time": int(t),
             "motion": round(float(scores[t, y, x]), 4), "particle": particle, "downscale": downscale}
            for (t, y, x), particle in zip(picks, particles)]
    return clips.astype(np.float32, copy=False), info


def t98g_clips(size: tuple[int, int, int] = (32, 64, 64), downscale: int | None = None, root=None,
               use_tracks: bool = False, **options) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Clips from the T98G movie; ``downscale`` defaults to T98G_FIELD / clip width (2 for 64 x 64)."""
    movie, tracks = load_t98g(root)
    factor = downscale if downscale is not None else max(1, round(T98G_FIELD / size[2]))
    return crop_moving_clips(movie, size, tracks=tracks if use_tracks else None, downscale=factor, **options)


# -- selection helpers ---------------------------------------------------------------------

def _box_means(volume: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """Mean of ``volume`` over every box position (valid positions only), by a summed-volume table."""
    table = np.zeros(tuple(s + 1 for s in volume.shape), np.float64)
    table[1:, 1:, 1:] = volume.cumsum(0, dtype=np.float64).cumsum(1).cumsum(2)
    a, b, c = box
    t, y, x = (s - k + 1 for s, k in zip(volume.shape, box))
    s = (table[a:a + t, b:b + y, c:c + x] - table[:t, b:b + y, c:c + x] - table[a:a + t, :y, c:c + x]
         - table[a:a + t, b:b + y, :x] + table[:t, :y, c:c + x] + table[:t, b:b + y, :x]
         + table[a:a + t, :y, :x] - table[:t, :y, :x])
    return (s / (a * b * c)).astype(np.float32)


def _pick_dense(scores: np.ndarray, size, max_clips, min_motion, gap: int) -> list[tuple[int, int, int]]:
    """Greedy picks over every position, best first: none overlap in space unless ``gap`` frames apart."""
    scores = scores.copy()
    picks: list[tuple[int, int, int]] = []
    while max_clips is None or len(picks) < max_clips:
        flat = int(np.argmax(scores))
        t, y, x = np.unravel_index(flat, scores.shape)
        if not scores[t, y, x] >= min_motion:
            break
        picks.append((int(t), int(y), int(x)))
        # starts closer than the gap in time and one clip size in space are too close to this clip
        scores[max(0, t - gap + 1):t + gap, max(0, y - size[1] + 1):y + size[1],
               max(0, x - size[2] + 1):x + size[2]] = -np.inf
    return picks


def _track_candidates(tracks, size, shape, downscale) -> list[tuple[int, int, int, Any]]:
    """(t, y, x, particle) clip corners centred on each tracked cell for each start frame it spans."""
    for key in ("frame", "y", "x"):
        if key not in tracks:
            raise DataError(f"The tracks table needs a '{key}' column.")
    frame = np.asarray(tracks["frame"]).astype(np.int64)
    ys = np.asarray(tracks["y"], dtype=np.float64) / downscale
    xs = np.asarray(tracks["x"], dtype=np.float64) / downscale
    ids = np.asarray(tracks["particle"]) if "particle" in tracks else np.zeros(len(frame), np.int64)
    t_len, y_len, x_len = size
    out = []
    for particle in np.unique(ids):
        sel = ids == particle
        f, y, x = frame[sel], ys[sel], xs[sel]
        for t0 in range(0, shape[0] - t_len + 1):
            inside = (f >= t0) & (f < t0 + t_len)
            if inside.sum() < max(2, t_len // 2):  # the cell must be tracked for most of the clip
                continue
            cy = int(round(y[inside].mean() - y_len / 2))
            cx = int(round(x[inside].mean() - x_len / 2))
            cy, cx = min(max(cy, 0), shape[1] - y_len), min(max(cx, 0), shape[2] - x_len)
            out.append((t0, cy, cx, particle.item()))
    return out


def _pick_candidates(scores, candidates, size, max_clips, min_motion, gap: int):
    ranked = sorted(candidates, key=lambda c: -scores[c[0], c[1], c[2]])
    picks, particles = [], []
    for t, y, x, particle in ranked:
        if max_clips is not None and len(picks) >= max_clips:
            break
        if scores[t, y, x] < min_motion:
            break
        if any(abs(t - pt) < gap and abs(y - py) < size[1] and abs(x - px) < size[2] for pt, py, px in picks):
            continue
        picks.append((t, y, x))
        particles.append(particle)
    return picks, particles
