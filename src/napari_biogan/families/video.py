"""What every video (2D+t) family shares: axes, channels, data preparation and metrics.

SAVGAN (with its 3DGAN ablation) and TGANv2 differ in their networks and training
steps only; they take user videos and are evaluated by the same code, so the
comparison between them measures the models, not two pipelines.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import DataError
from ..core.registry import Channel, Family
from ..metrics.pixels import centred_unit_rows


class VideoFamily(Family):
    """Base of the video families: samples (C, T, Y, X), one "video" channel per input channel,
    user clips through :func:`prepare_videos`, the "cells" and "digits" metric sets."""

    sample_axes = ("T", "Y", "X")
    metric_sets = ("cells", "digits")
    ema_nets = ("generator",)

    def channels(self, config):
        return [Channel("video" if config.channels == 1 else f"channel {i}") for i in range(config.channels)]

    def prepare_data(self, data, config):
        from ..core.dataset import TrainingData

        array = data.get("image") if isinstance(data, dict) else data
        if array is None:
            raise DataError("Training this family needs videos.")
        return TrainingData({"image": prepare_videos(array, config.channels,
                                                     (config.frames, config.height, config.width))})

    def default_metric_set(self, config, card) -> str:
        """"digits" for models of Moving MNIST, else "cells".

        The config's ``metric_set`` says it; model files written before that field
        existed (every version-1 video model) are told apart by their training data.
        """
        chosen = getattr(config, "metric_set", "")
        if chosen:
            return self.check_metric_set(chosen)
        training = card.get("training") if isinstance(card.get("training"), dict) else {}
        trained_on = f"{card.get('data', '')} {training.get('data', '')}".lower()
        return "digits" if "mnist" in trained_on else "cells"

    def metrics(self, model, real, n, seed, metric_set=None) -> dict[str, Any]:
        return video_metrics(model, real.head(n)["image"], n, seed, self.check_metric_set(metric_set))


def frame_correlations(stack: np.ndarray, pairs: int = 64) -> tuple[float, float]:
    """Median correlation of consecutive frames and of frames half the stack apart (T, Y, X),
    from at most ``pairs`` pairs of frames sub-sampled to about 64 x 64 pixels."""
    t = len(stack)
    step_y, step_x = max(1, stack.shape[1] // 64), max(1, stack.shape[2] // 64)
    small = centred_unit_rows(stack[:, ::step_y, ::step_x])
    starts = np.unique(np.linspace(0, t - 2, min(pairs, t - 1)).astype(int))
    near = np.median([small[i] @ small[i + 1] for i in starts])
    far = np.median([small[i] @ small[(i + t // 2) % t] for i in starts])
    return float(near), float(far)


#: consecutive frames of a time-lapse are alike: refuse a stack whose neighbours are not (unrelated images)
MIN_NEIGHBOUR_CORRELATION, MIN_NEIGHBOUR_GAIN = 0.5, 0.1


def check_time_lapse(stack: np.ndarray) -> None:
    """DataError for a (T, Y, X) stack that is a set of unrelated images rather than one time-lapse:
    consecutive frames barely alike and no more alike than frames far apart (e.g. a digits stack)."""
    if len(stack) < 4 or not np.isfinite(stack[:: max(1, len(stack) // 64)]).all():
        return  # too short to judge; NaNs are refused below with their own sentence
    near, far = frame_correlations(stack)
    if near < MIN_NEIGHBOUR_CORRELATION and near - far < MIN_NEIGHBOUR_GAIN:
        raise DataError(f"These {len(stack)} images do not look like one time-lapse: consecutive frames are no "
                        f"more alike than frames far apart (correlation {near:.2f} vs {far:.2f}). A video model "
                        "needs a time-lapse (T, Y, X) or clips (N, T, Y, X); images of separate objects "
                        "train an image family.")


def prepare_videos(array, channels: int, size: tuple[int, int, int]):
    """User videos -> float tensor (N, C, T, Y, X) in [-1, 1] of ``size`` = (frames, height, width).

    Accepts (N, T, Y, X) (one channel), one time-lapse (T, Y, X) or (N, C, T, Y, X),
    any numeric dtype. Clips
    longer than ``frames`` are cut into consecutive windows of ``frames`` (the rest is
    dropped); frames are centre-cropped to the model's aspect ratio and resized with
    antialiasing; intensities are scaled by the data's 0.5 / 99.5 percentiles.
    """
    import torch
    import torch.nn.functional as F

    data = np.asarray(array)
    if data.dtype.kind not in "uif" and data.dtype != bool:
        raise DataError(f"Videos must be numeric, not {data.dtype}.")
    if channels == 1 and data.ndim in (4, 5) and data.shape[-1] in (3, 4) and min(data.shape[-3:-1]) > 8:
        raise DataError(f"These videos look like RGB colour {tuple(data.shape)}; the model is grey: "
                        "convert them to one channel first.")
    if data.ndim == 3 and channels == 1:  # one time-lapse (T, Y, X): cut into windows below
        check_time_lapse(data)
        data = data[None]
    if data.ndim == 4 and channels == 1:
        data = data[:, None]
    if data.ndim != 5 or data.shape[1] != channels or 0 in data.shape:
        raise DataError(f"Expected videos shaped (N, T, Y, X) or (N, {channels}, T, Y, X); "
                        f"got {tuple(np.shape(array))}.")
    frames, height, width = size
    n, _, t, y, x = data.shape
    if t < frames:
        raise DataError(f"The clips have {t} frames but the model makes {frames}; use longer clips "
                        "or a model with fewer frames.")
    windows = t // frames  # long clips give several training clips
    data = data[:, :, :windows * frames].reshape(n, channels, windows, frames, y, x)
    data = np.moveaxis(data, 2, 1).reshape(n * windows, channels, frames, y, x)
    # centre-crop to the model's aspect ratio, so resizing does not stretch cells
    if y * width > x * height:
        keep = max(1, round(x * height / width))
        data = data[..., (y - keep) // 2:(y - keep) // 2 + keep, :]
    elif y * width < x * height:
        keep = max(1, round(y * width / height))
        data = data[..., (x - keep) // 2:(x - keep) // 2 + keep]
    sample = data.reshape(-1)[:: max(1, data.size // 4_000_000)].astype(np.float64)  # percentiles from <= 4 M values
    if not np.isfinite(sample).all() or not np.isfinite(data).all():
        raise DataError("The videos contain NaN or infinite values.")
    low, high = np.percentile(sample, [0.5, 99.5])
    if high <= low:
        raise DataError("The videos are constant; there is nothing to learn from.")
    out = torch.empty(len(data), channels, frames, height, width)
    for start in range(0, len(data), 64):  # in chunks: user stacks can be large
        chunk = torch.from_numpy(np.ascontiguousarray(data[start:start + 64], dtype=np.float32))
        chunk = ((chunk - low) / (high - low)).clamp(0, 1) * 2 - 1
        if chunk.shape[-2:] != (height, width):
            flat = chunk.reshape(-1, 1, *chunk.shape[-2:])
            flat = F.interpolate(flat, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
            chunk = flat.clamp(-1, 1).reshape(len(chunk), channels, frames, height, width)
        out[start:start + len(chunk)] = chunk
    return out


def video_metrics(model, real, n: int, seed: int, metric_set: str = "cells") -> dict[str, float]:
    """Metrics of ``n`` generated videos against real ones prepared by :func:`prepare_videos` ([-1, 1]).

    The Fréchet distance of frame pixels (cheap, network-free), then
    :func:`~napari_biogan.metrics.video.video_report`'s ``metric_set``: "cells"
    (AACD, statistical FVD) or "digits" (AACD, flips/seq, cosTS, digit FVD).
    """
    from ..metrics.frechet import frechet_distance, pixel_features
    from ..metrics.video import video_report

    n = min(n, len(real))
    fake = model.sample(n, seed=seed, precision="fp32")  # (n, C, T, Y, X) in [0, 1]
    real01 = (real[:n].cpu().numpy() + 1) / 2

    def frames(videos):
        return np.moveaxis(videos, 2, 1).reshape(-1, videos.shape[1], *videos.shape[-2:])

    result = {"fd_frames_pixels": frechet_distance(pixel_features(frames(fake)), pixel_features(frames(real01)))}
    fake_t, real_t = np.moveaxis(fake, 1, 2), np.moveaxis(real01, 1, 2)  # (N, T, C, Y, X): C is averaged
    result.update(video_report(fake_t, real_t if n >= 2 else None, metric_set))
    if n < 2:
        result["aacd_real"] = video_report(real_t, None, "cells")["aacd"]
    return result
