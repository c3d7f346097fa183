"""Video feature extractors for the Fréchet video distance, all available offline.

The standard FVD embeds each clip with an I3D network trained on Kinetics-400
(a video action classifier) and compares the Gaussian statistics of the
embeddings. Those weights cannot ship here (no download at run time, and the
network is 50 MB), so three feature sets are offered:

- ``"digits"``: :func:`digit_video_features`, for Moving MNIST. The shipped digit
  classifier's 512-d feature of every frame, averaged over time (what is shown:
  digit identity and shape) concatenated with the mean absolute change of that
  feature between consecutive frames (how steadily it is shown: a digit that
  morphs or flickers moves this half). Like I3D, it is a learned embedding
  that is sensitive to the content and to its temporal consistency; unlike
  I3D, it knows digits, which is what Moving-MNIST quality is about.
- ``"stats"``: :func:`statistical_video_features`, network-free, for cell videos
  (phase-contrast, fluorescence), where no pretrained network knows the
  content. 74 numbers per clip: appearance (intensity histogram, mean and
  spread, spatial-gradient histogram for texture and edges, 4x4 layout of the
  mean frame) and motion (mean absolute frame differences at lags 1, 2 and 4,
  their histogram and 4x4 layout, frame-to-frame correlation at lags 1, 2, 4,
  change and spread of the frame mean). It measures what I3D's features mostly
  respond to in such clips (textures, edges, how much and where things move,
  temporal smoothness) with nothing learnt, so it cannot be fooled by the
  ImageNet/Kinetics domain gap, but it ignores object identity and shape.
- a user-supplied I3D TorchScript file: :func:`load_i3d_torchscript` gives the
  standard FVD, comparable to published values.

Values from different feature sets are on different scales: compare models with
one feature set and one number of clips (the Fréchet distance is biased upward
for few clips, more so with many features; 256 clips is the paper's count).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.errors import DataError, ModelFileError
from .pixels import lagged_correlation

FeatureFunction = Callable[[np.ndarray], np.ndarray]
LAGS = (1, 2, 4)
#: the parts of :func:`statistical_video_features`, in their order: (name, number of features)
STATISTICAL_PARTS = (("intensity histogram", 16), ("mean and spread", 2), ("edges", 8), ("where it is bright", 16),
                     ("motion by lag", 3), ("motion histogram", 8), ("where it moves", 16), ("smoothness", 3),
                     ("flicker", 2))


def feature_function(features: str | FeatureFunction) -> FeatureFunction:
    """A feature extractor from a name ("stats", "digits") or a callable (returned as is)."""
    if callable(features):
        return features
    if features == "stats":
        return statistical_video_features
    if features == "digits":
        return digit_video_features
    raise DataError(f"Unknown video features '{features}'; choose 'stats', 'digits' or give a function.")


def digit_video_features(videos: np.ndarray, classifier=None) -> np.ndarray:
    """(N, T, Y, X) in [0, 1] -> (N, 1024): time-mean of the 512-d digit features, then their mean |change|."""
    if classifier is None:
        from .digit_classifier import load_digit_classifier

        classifier = load_digit_classifier()
    videos = np.asarray(videos, dtype=np.float32)
    return pool_digit_features(np.asarray(classifier.features(videos), dtype=np.float64))


def pool_digit_features(frame_features: np.ndarray) -> np.ndarray:
    """Per-frame features (N, T, d) -> (N, 2d): their time-mean, then their mean |change| between frames."""
    feats = np.asarray(frame_features, dtype=np.float64)
    change = np.abs(np.diff(feats, axis=1)).mean(1) if feats.shape[1] > 1 else np.zeros_like(feats[:, 0])
    return np.concatenate([feats.mean(1), change], axis=1)


def statistical_video_features(videos: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(N, T, Y, X) in [0, 1] -> (N, 74) network-free appearance and motion statistics."""
    videos = np.asarray(videos)
    if videos.ndim != 4 or videos.shape[1] < 2:
        raise DataError(f"Expected videos shaped (N, T, Y, X) with at least 2 frames; got {videos.shape}.")
    # in chunks: the differences and gradients of 256 clips of 32x64x64 would need ~0.5 GB at once
    return np.concatenate([_stats(videos[i:i + chunk]) for i in range(0, len(videos), chunk)])


def _stats(videos: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(videos, dtype=np.float32), 0.0, 1.0)
    t = v.shape[1]
    diff = np.abs(np.diff(v, axis=1))                              # (N, T-1, Y, X)
    grad = np.hypot(np.diff(v, axis=2)[..., :, :-1], np.diff(v, axis=3)[..., :-1, :])
    frame_means = v.mean((2, 3))                                   # (N, T)
    parts = [
        _histograms(v, 16, 1.0),                                   # 16 intensity histogram
        np.stack([v.mean((1, 2, 3)), v.std((1, 2, 3))], 1),        # 2 mean, spread
        _histograms(grad, 8, 0.5),                                 # 8 texture / edges
        _layout(v.mean(1)),                                        # 16 where it is bright
        np.stack([np.abs(v[:, k:] - v[:, :-k]).mean((1, 2, 3)) for k in _lags(t)], 1),  # 3 motion by lag
        _histograms(diff, 8, 0.5),                                 # 8 motion histogram
        _layout(diff.mean(1)),                                     # 16 where it moves
        np.stack([lagged_correlation(v, k, flat=1.0) for k in _lags(t)], 1),  # 3 smoothness (flat = alike)
        np.stack([np.abs(np.diff(frame_means, axis=1)).mean(1), frame_means.std(1)], 1),  # 2 flicker
    ]
    return np.concatenate(parts, axis=1).astype(np.float64)


def statistical_part_slices() -> dict[str, slice]:
    """Where each of :data:`STATISTICAL_PARTS` sits in a row of :func:`statistical_video_features`."""
    ends = np.cumsum([size for _, size in STATISTICAL_PARTS])
    return {name: slice(int(end - size), int(end)) for (name, size), end in zip(STATISTICAL_PARTS, ends)}


def load_i3d_torchscript(path: str | os.PathLike, size: int = 224, batch_size: int = 8, device: str = "cpu",
                         call_kwargs: dict | None = None) -> FeatureFunction:
    """Features of a user's I3D TorchScript file (e.g. StyleGAN-V's ``i3d_torchscript.pt``): the standard FVD.

    The returned function maps videos (N, T, Y, X) in [0, 1] to (N, d): frames
    are resized to ``size`` x ``size``, repeated to 3 channels, scaled to
    [-1, 1] and given as (N, 3, T, size, size), called with ``call_kwargs``
    (default ``rescale=False, resize=False, return_features=True``, the
    convention of that file; a module that takes no keywords is called plainly).
    ``torch.jit.load`` reads TorchScript, not arbitrary pickled Python objects.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"No I3D TorchScript file at {path}.")
    try:
        module = torch.jit.load(str(path), map_location=device).eval()
    except Exception as err:  # torch raises RuntimeError/ValueError variants for non-TorchScript files
        raise ModelFileError(f"{path.name} is not a TorchScript model file.") from err
    kwargs = dict(rescale=False, resize=False, return_features=True) if call_kwargs is None else dict(call_kwargs)
    state = {"kwargs": kwargs}

    def call(batch):
        if state["kwargs"]:
            try:
                return module(batch, **state["kwargs"])
            except (RuntimeError, TypeError):
                state["kwargs"] = {}  # a module without these keywords: call it plainly from now on
        return module(batch)

    def extract(videos: np.ndarray) -> np.ndarray:
        import torch.nn.functional as F

        v = torch.from_numpy(np.ascontiguousarray(videos, dtype=np.float32))
        if v.ndim != 4:
            raise DataError(f"Expected videos shaped (N, T, Y, X); got {tuple(v.shape)}.")
        outs = []
        with torch.inference_mode():
            for chunk in v.split(batch_size):
                frames = chunk.reshape(-1, 1, *chunk.shape[2:])
                frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
                clip = frames.reshape(len(chunk), chunk.shape[1], size, size)[:, None].expand(-1, 3, -1, -1, -1)
                out = call((clip * 2 - 1).to(device).contiguous())
                outs.append(out.reshape(len(chunk), -1).float().cpu())
        return torch.cat(outs).numpy().astype(np.float64)

    return extract


# -- helpers -------------------------------------------------------------------------------

def _lags(t: int) -> list[int]:
    return [min(k, t - 1) for k in LAGS]


def _histograms(values: np.ndarray, bins: int, top: float) -> np.ndarray:
    """Per-sample histograms (fractions) of values in [0, top] (larger values in the last bin)."""
    n = len(values)
    flat = values.reshape(n, -1)
    index = np.clip((flat / top * bins).astype(np.int64), 0, bins - 1) + np.arange(n)[:, None] * bins
    counts = np.bincount(index.ravel(), minlength=n * bins).reshape(n, bins)
    return counts / flat.shape[1]


def _layout(images: np.ndarray, cells: int = 4) -> np.ndarray:
    """(N, Y, X) -> (N, cells*cells) block means (rows/columns beyond a multiple of ``cells`` are dropped)."""
    if images.shape[1] < cells or images.shape[2] < cells:  # tiny frames: repeat pixels up to the grid
        images = np.repeat(np.repeat(images, cells, 1), cells, 2)
    n, y, x = images.shape
    by, bx = y // cells, x // cells
    return images[:, :by * cells, :bx * cells].reshape(n, cells, by, cells, bx).mean((2, 4)).reshape(n, -1)
