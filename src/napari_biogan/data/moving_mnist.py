"""Moving MNIST as in SAVGAN (REFERENCE section 1): one digit per clip, bouncing horizontally.

Each clip: one 28x28 MNIST digit on a black ``size`` x ``size`` canvas at a fixed,
random row; it moves horizontally at a constant integer speed and reflects at
the left and right borders, so it is always entirely in frame. Integer
positions keep the digit's pixels exact (no resampling blur), which also makes
the real data's AACD exactly 0: the mean intensity of a frame does not change
while the whole digit stays in view.

Choices the paper does not state (ours, documented here): start column and
row uniform over the positions that keep the digit in frame; speed uniform
over the integers ``speed`` (default 2..5 pixels per frame) with a random
direction. With 10 frames and a 36-pixel track, about half the clips bounce.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import DataError

#: the paper's data set size
PAPER_CLIPS = 2225


def bounce_positions(start: int, velocity: int, frames: int, span: int) -> np.ndarray:
    """Positions 0..span of a point moving at ``velocity`` per frame, reflecting at 0 and ``span``."""
    if span <= 0:
        return np.zeros(frames, dtype=np.int64)
    unfolded = (start + velocity * np.arange(frames)) % (2 * span)  # a triangle wave of period 2*span
    return np.where(unfolded <= span, unfolded, 2 * span - unfolded).astype(np.int64)


def build_moving_mnist(digits: np.ndarray, n_clips: int, frames: int = 10, size: int = 64, seed: int = 0,
                       labels: np.ndarray | None = None, return_labels: bool = False,
                       speed: tuple[int, int] = (2, 5)):
    """Clips (n_clips, frames, size, size) float32 in [0, 1], each with one digit bouncing horizontally.

    ``digits``: (N, h, w) images (uint8 0..255 or floats in [0, 1]); the digit of
    each clip is drawn at random (seeded, deterministic). With ``return_labels``
    the result is ``(clips, clip_labels)`` and ``labels`` (one per digit) is needed.
    """
    digits = np.asarray(digits)
    if digits.ndim != 3 or len(digits) == 0:
        raise DataError(f"Expected digits shaped (N, height, width); got {digits.shape}.")
    if digits.dtype.kind not in "uif":
        raise DataError(f"Digits must be numeric, not {digits.dtype}.")
    h, w = digits.shape[1:]
    if h > size or w > size:
        raise DataError(f"Digits of {h}x{w} do not fit a {size}x{size} canvas.")
    if n_clips < 0 or frames < 1:
        raise DataError("Moving MNIST needs a non-negative number of clips and at least one frame.")
    lo, hi = int(speed[0]), int(speed[1])
    if not 0 <= lo <= hi:
        raise DataError(f"The speed range {speed} must be two non-negative integers, low first.")
    if return_labels and (labels is None or len(labels) != len(digits)):
        raise DataError("Labels for every digit are needed to return the clip labels.")

    scale = 255.0 if digits.dtype.kind in "ui" else 1.0
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(digits), n_clips)
    span_x, span_y = size - w, size - h
    rows = rng.integers(0, span_y + 1, n_clips)
    starts = rng.integers(0, span_x + 1, n_clips)
    velocities = rng.integers(lo, hi + 1, n_clips) * rng.choice([-1, 1], n_clips)

    clips = np.zeros((n_clips, frames, size, size), dtype=np.float32)
    for i in range(n_clips):
        digit = np.clip(digits[chosen[i]].astype(np.float32) / scale, 0.0, 1.0)
        # a start moving left is the mirror of a start moving right from (2*span - start)
        start = starts[i] if velocities[i] >= 0 else (2 * span_x - starts[i]) % max(2 * span_x, 1)
        xs = bounce_positions(int(start), abs(int(velocities[i])), frames, span_x)
        for t, x in enumerate(xs):
            clips[i, t, rows[i]:rows[i] + h, x:x + w] = digit
    if return_labels:
        return clips, np.asarray(labels)[chosen].astype(np.int64)
    return clips


def load_moving_mnist(n_clips: int = PAPER_CLIPS, frames: int = 10, size: int = 64, seed: int = 0,
                      split: str = "train", return_labels: bool = False, path=None):
    """Moving MNIST built from the MNIST digits kept beside the project (``split``: "train" or "test")."""
    from .mnist import load_mnist_test, load_mnist_train

    if split not in ("train", "test"):
        raise DataError(f"Unknown MNIST split '{split}'; choose 'train' or 'test'.")
    x, y = (load_mnist_train if split == "train" else load_mnist_test)(path)
    return build_moving_mnist(x, n_clips, frames=frames, size=size, seed=seed, labels=y,
                              return_labels=return_labels)
