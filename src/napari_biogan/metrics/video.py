"""Video metrics of SAVGAN (REFERENCE section 1): AACD, flips/seq, cosTS, FVD.

Videos are arrays (N, T, Y, X) (a channel axis after T, (N, T, C, Y, X), is
averaged where a metric needs one image per frame) with intensities in
``value_range`` (default [0, 1], what ``GanModel.render`` and the data loaders give).

AACD scale: the paper's values (0.47 to 2.26) only make sense on a 0..255 scale
(a Moving-MNIST frame's mean is about 6 on that scale and 0.025 on a 0..1 one),
so :func:`aacd` maps ``value_range`` to 0..``scale`` with ``scale`` = 255 by
default; pass ``scale=1`` for AACD in the videos' own units.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from ..core.errors import DataError
from .frechet import frechet_distance
from .pixels import lagged_correlation, paired_correlation, scale_bands


class FrameClassifier(Protocol):
    """What flips/seq and cosTS need: labels and feature vectors of frames (n, Y, X) in [0, 1]."""

    def predict(self, frames: np.ndarray) -> np.ndarray: ...

    def features(self, frames: np.ndarray) -> np.ndarray: ...


def as_videos(videos, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(N, T, Y, X) float64 rescaled from ``value_range`` to [0, 1]; (N, T, C, Y, X) is averaged over C."""
    data = np.asarray(videos)
    if data.dtype.kind not in "uifb":
        raise DataError(f"Videos must be numeric, not {data.dtype}.")
    if data.ndim == 5:
        data = data.mean(2)
    if data.ndim != 4:
        raise DataError(f"Expected videos shaped (N, T, Y, X); got {data.shape}.")
    if data.shape[0] < 1 or data.shape[1] < 2:
        raise DataError("Video metrics need at least one video of at least 2 frames.")
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise DataError(f"The value range {value_range} must be (low, high) with high > low.")
    return (data.astype(np.float64) - low) / (high - low)


def aacd(videos, value_range: tuple[float, float] = (0.0, 1.0), scale: float = 255.0) -> float:
    """Average absolute change in mean intensity between consecutive frames (lower = steadier).

    Per video: m_t = mean intensity of frame t; ACD = mean over t of |m_{t+1} - m_t|;
    AACD = mean of ACD over videos, on a 0..``scale`` intensity scale.
    """
    data = as_videos(videos, value_range) * scale
    means = data.mean(axis=(2, 3))                      # (N, T)
    return float(np.abs(np.diff(means, axis=1)).mean(axis=1).mean())


def _lagged_videos(videos, lag: int, value_range: tuple[float, float]) -> np.ndarray:
    """:func:`as_videos`, refused in one sentence when the clips are too short for ``lag``."""
    data = as_videos(videos, value_range)
    if not 1 <= lag < data.shape[1]:
        raise DataError(f"A lag of {lag} frames needs videos longer than {lag} frames (these have {data.shape[1]}).")
    return data


def frame_correlation(videos, lag: int = 1, value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Mean pixel correlation of frames ``lag`` apart (1: a still video; ~0: unrelated frames)."""
    return float(lagged_correlation(_lagged_videos(videos, lag, value_range), lag).mean())


def frame_correlation_by_scale(videos, lag: int = 1, edges: tuple[int, ...] = (2, 4, 8),
                               value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """:func:`frame_correlation` of each detail band of :func:`~napari_biogan.metrics.pixels.scale_bands`
    (finest first): how fast detail of each size changes. Real cell clips lose their fine detail from one
    frame to the next (noise and fast texture) and keep their coarse shapes; a generator that draws the
    same fine texture on every frame scores about 1 at every size."""
    data = _lagged_videos(videos, lag, value_range)
    return np.array([float(lagged_correlation(band, lag).mean()) for band in scale_bands(data, edges)])


def detail_memory(videos, lags: tuple[int, ...] = (1, 2, 4, 8), edges: tuple[int, ...] = (2, 4, 8),
                  value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(bands, lags): :func:`frame_correlation_by_scale` at each lag. Lag 1 alone cannot tell detail renewed
    every frame (sensor noise) from detail that drifts away over a few frames; the decay over lags can."""
    return np.stack([frame_correlation_by_scale(videos, lag, edges, value_range) for lag in lags], axis=1)


def renewed_share(memory: np.ndarray) -> np.ndarray:
    """Each band's share of variance renewed every frame, from :func:`detail_memory` at lags 1 and 2 (its
    first two columns), if the band is a white part (noise) plus a part whose correlation decays
    geometrically: then r1^2 / r2 is the lasting part's share. Negative where the correlation falls faster
    than geometrically: detail smooth over a few frames, then gone."""
    memory = np.asarray(memory, dtype=np.float64)
    return 1 - memory[:, 0] ** 2 / memory[:, 1]


def crossfade_correlation(videos, value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Pixel correlation of each video's middle frame with the average of its first and last frames.

    High when the middle of a clip is a cross-fade between its ends. A cross-fade of two
    unrelated images has 1/sqrt(2) of their contrast halfway, which is how a generator that
    interpolates between few time anchors sags in mid-clip (README "Video").
    """
    data = as_videos(videos, value_range)
    ends = (data[:, 0] + data[:, -1]) / 2
    return float(paired_correlation(data[:, data.shape[1] // 2], ends).mean())


def _classifier(classifier):
    if classifier is None:
        from .digit_classifier import load_digit_classifier

        return load_digit_classifier()
    return classifier


def flips_per_sequence(videos, classifier: FrameClassifier | None = None,
                       value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Mean over videos of the number of t with label_t != label_{t-1} (0 is best).

    Labels come from ``classifier`` (default: the shipped digit classifier).
    """
    data = as_videos(videos, value_range).astype(np.float32)
    return _flips(np.asarray(_classifier(classifier).predict(data)).reshape(data.shape[:2]))


def cos_ts(videos, classifier: FrameClassifier | None = None,
           value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Mean cosine similarity of classifier features of frames t and t+1 (over t and videos; 1 is best)."""
    data = as_videos(videos, value_range).astype(np.float32)
    feats = np.asarray(_classifier(classifier).features(data), dtype=np.float64)
    return _cos_ts(feats.reshape(*data.shape[:2], -1))


def _flips(labels: np.ndarray) -> float:
    return float((labels[:, 1:] != labels[:, :-1]).sum(axis=1).mean())


def _cos_ts(feats: np.ndarray) -> float:
    a, b = feats[:, :-1], feats[:, 1:]
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return float(((a * b).sum(-1) / np.maximum(norms, 1e-12)).mean())


def frechet_video_distance(real, fake, features: str | Callable[[np.ndarray], np.ndarray] = "stats",
                           value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Fréchet distance between video features of ``real`` and ``fake`` clips (lower = closer).

    ``features``: "stats" (network-free appearance + motion statistics, for any
    videos, e.g. cells), "digits" (the shipped digit classifier's per-frame
    features pooled over time, for Moving MNIST), or a callable videos (N, T, Y, X)
    in [0, 1] -> (N, d), e.g. :func:`~napari_biogan.metrics.video_features.load_i3d_torchscript`'s
    result for the standard I3D FVD. Values from different feature sets are not comparable.
    """
    from .video_features import feature_function

    extract = feature_function(features)
    real_v, fake_v = _fvd_sets(real, fake, value_range)
    return frechet_distance(extract(real_v), extract(fake_v))


def _fvd_sets(real, fake, value_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Both sets of clips as float32 (N, T, Y, X) in [0, 1], refused in one sentence when too few."""
    real_v = as_videos(real, value_range).astype(np.float32)
    fake_v = as_videos(fake, value_range).astype(np.float32)
    if len(real_v) < 2 or len(fake_v) < 2:
        raise DataError("FVD needs at least 2 real and 2 generated videos (256 or more for stable values).")
    return real_v, fake_v


def statistical_fvd_parts(real, fake, value_range: tuple[float, float] = (0.0, 1.0)) -> dict[str, float]:
    """The statistical FVD's Fréchet distance on each part of its features alone (intensity histogram,
    edges, motion...; :data:`~napari_biogan.metrics.video_features.STATISTICAL_PARTS`): which part sets two
    sets of clips apart. The parts do not add up to the whole, which also counts their covariances."""
    from .video_features import statistical_part_slices, statistical_video_features

    real_v, fake_v = _fvd_sets(real, fake, value_range)
    real_f, fake_f = statistical_video_features(real_v), statistical_video_features(fake_v)
    return {name: frechet_distance(real_f[:, part], fake_f[:, part])
            for name, part in statistical_part_slices().items()}


def moving_mnist_metrics(fake, real=None, classifier=None,
                         value_range: tuple[float, float] = (0.0, 1.0)) -> dict[str, float]:
    """The paper's Moving-MNIST table: AACD, flips/seq, cosTS, and a digit-feature FVD when ``real`` is given.

    ``classifier``: a :class:`~napari_biogan.metrics.digit_classifier.DigitClassifier` (default: the shipped one);
    the generated frames go through it once for all three classifier metrics.
    """
    from .video_features import pool_digit_features

    classifier = _classifier(classifier)
    data = as_videos(fake, value_range).astype(np.float32)
    labels, feats = classifier.labels_and_features(data)
    feats = np.asarray(feats, dtype=np.float64)
    out = {"aacd": aacd(data), "flips_per_seq": _flips(np.asarray(labels)),
           "cos_ts": _cos_ts(feats)}
    if real is not None:
        real_v = as_videos(real, value_range).astype(np.float32)
        real_feats = np.asarray(classifier.features(real_v), dtype=np.float64)
        out["fvd_digits"] = frechet_distance(pool_digit_features(real_feats), pool_digit_features(feats))
    return out


#: the metric sets of :func:`video_report`: network-free for any videos, or the Moving-MNIST table
VIDEO_METRIC_SETS = ("cells", "digits")


def video_report(fake, real=None, metric_set: str = "cells", classifier=None,
                 value_range: tuple[float, float] = (0.0, 1.0)) -> dict[str, float]:
    """The paper's metrics of generated videos, with the real videos' own values beside them.

    ``metric_set``: "cells" (AACD and the statistical FVD; any videos) or "digits"
    (AACD, flips/seq, cosTS and the digit-feature FVD; Moving MNIST). Keys ending in
    ``_real`` hold the metric of ``real`` itself: what a perfect generator would score.
    """
    if metric_set not in VIDEO_METRIC_SETS:
        raise DataError(f"Unknown video metrics '{metric_set}'; choose one of {', '.join(VIDEO_METRIC_SETS)}.")
    if metric_set == "digits":
        out = moving_mnist_metrics(fake, real, classifier, value_range)
        if real is not None:
            reference = moving_mnist_metrics(real, None, classifier, value_range)
            out.update({f"{k}_real": v for k, v in reference.items()})
        return out
    out = cell_video_metrics(fake, real, value_range)
    if real is not None:
        out["aacd_real"] = aacd(real, value_range)
    return out


def cell_video_metrics(fake, real=None, value_range: tuple[float, float] = (0.0, 1.0)) -> dict[str, float]:
    """AACD of generated cell videos and, with ``real`` clips, the network-free statistical FVD."""
    out = {"aacd": aacd(fake, value_range)}
    if real is not None:
        out["fvd_stats"] = frechet_video_distance(real, fake, "stats", value_range)
    return out
