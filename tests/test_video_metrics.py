"""AACD, flips/seq, cosTS and FVD on hand-made videos whose values are known; the shipped classifier."""

from __future__ import annotations

import numpy as np
import pytest

from real_data import shared_data
from napari_biogan.core.errors import DataError, ModelFileError
from napari_biogan.metrics.digit_classifier import DIGIT_CLASSIFIER_FILE
from napari_biogan.metrics.video import (aacd, cell_video_metrics, cos_ts, crossfade_correlation,
                                         flips_per_sequence, frame_correlation, frame_correlation_by_scale,
                                         frechet_video_distance,
                                         moving_mnist_metrics, statistical_fvd_parts, video_report)
from napari_biogan.metrics.video_features import (STATISTICAL_PARTS, digit_video_features, load_i3d_torchscript,
                                                  statistical_part_slices, statistical_video_features)


class PixelClassifier:
    """Hand-made 'classifier': the label is 10 x pixel (0, 0); the feature is pixels (0, 0) and (0, 1)."""

    def predict(self, frames):
        return np.rint(np.asarray(frames)[..., 0, 0] * 10).astype(int)

    def features(self, frames):
        return np.asarray(frames)[..., 0, :2]

    def labels_and_features(self, frames):
        return self.predict(frames), self.features(frames)


def _constant_video(levels, size=8):
    return np.stack([np.full((size, size), v, np.float32) for v in levels])


def test_aacd_by_hand():
    steady = _constant_video([0.2] * 4)
    jumpy = _constant_video([0.0, 0.5, 0.5, 1.0])        # |changes| 0.5, 0, 0.5: ACD = 1/3
    videos = np.stack([steady, jumpy])
    assert aacd(videos) == pytest.approx(255 / 6)         # (0 + 1/3) / 2 on the 0..255 scale
    assert aacd(videos, scale=1.0) == pytest.approx(1 / 6)
    assert aacd(videos * 2 - 1, value_range=(-1, 1)) == pytest.approx(255 / 6)
    # only the frame mean counts: a pattern moving across the frame is steady
    moving = np.zeros((1, 5, 8, 8), np.float32)
    for t in range(5):
        moving[0, t, 2:4, t:t + 3] = 1
    assert aacd(moving) == 0.0
    with pytest.raises(DataError):
        aacd(np.zeros((2, 1, 8, 8)))


def test_flips_per_sequence_by_hand():
    a = _constant_video([0.1, 0.1, 0.2, 0.2, 0.1])        # labels 1 1 2 2 1: 2 flips
    b = _constant_video([0.3] * 5)                        # no flip
    assert flips_per_sequence(np.stack([a, b]), PixelClassifier()) == 1.0
    assert flips_per_sequence(np.stack([b, b]), PixelClassifier()) == 0.0


def test_cos_ts_by_hand():
    video = np.zeros((1, 3, 4, 4), np.float32)
    video[0, 0, 0, :2] = (1, 0)
    video[0, 1, 0, :2] = (0, 1)                           # cos((1,0),(0,1)) = 0
    video[0, 2, 0, :2] = (1, 1)                           # cos((0,1),(1,1)) = 1/sqrt(2)
    assert cos_ts(video, PixelClassifier()) == pytest.approx(0.5 / np.sqrt(2))
    steady = np.repeat(video[:, :1], 3, axis=1)
    assert cos_ts(steady, PixelClassifier()) == pytest.approx(1.0)


def test_fvd_with_known_features():
    rng = np.random.default_rng(0)
    real = rng.random((200, 2, 4, 4)).astype(np.float32)
    first_pixels = lambda v: v.reshape(len(v), -1)[:, :3]  # noqa: E731
    assert frechet_video_distance(real, real, first_pixels) == pytest.approx(0.0, abs=1e-9)
    # a pure shift of 0.1 on 3 features: FD = 3 * 0.1^2 exactly (same covariance)
    assert frechet_video_distance(real, real + 0.1, first_pixels, value_range=(0, 1)) == pytest.approx(0.03)
    with pytest.raises(DataError):
        frechet_video_distance(real, real, "no-such-features")


def test_statistical_features_separate_motion_from_stillness():
    rng = np.random.default_rng(1)

    def clips(n, speed):
        out = np.zeros((n, 8, 32, 32), np.float32)
        for i in range(n):
            y, x = rng.integers(4, 20, 2)
            for t in range(8):
                xs = (x + speed * t) % 28
                out[i, t, y:y + 6, xs:xs + 6] = 0.8
        return out + rng.random(out.shape).astype(np.float32) * 0.05

    feats = statistical_video_features(clips(4, 2))
    assert feats.shape == (4, 74) and np.isfinite(feats).all()
    moving_a, moving_b, still = clips(60, 2), clips(60, 2), clips(60, 0)
    same = frechet_video_distance(moving_a, moving_b, "stats")
    different = frechet_video_distance(moving_a, still, "stats")
    assert different > 5 * same
    table = cell_video_metrics(still, moving_a)
    assert table["aacd"] >= 0 and table["fvd_stats"] == pytest.approx(different)


def test_statistical_fvd_parts_put_shuffled_frames_down_to_motion_not_appearance():
    rng = np.random.default_rng(2)
    clips = np.zeros((64, 8, 32, 32), np.float32)
    for clip in clips:  # a square drifting right, on faint noise
        y, x = rng.integers(4, 20, 2)
        for t, frame in enumerate(clip):
            frame[y:y + 6, (x + 2 * t) % 26:(x + 2 * t) % 26 + 6] = 0.8
    clips += rng.random(clips.shape).astype(np.float32) * 0.05
    shuffled = np.stack([clip[rng.permutation(len(clip))] for clip in clips])  # the same frames, out of order
    widths = [s.stop - s.start for s in statistical_part_slices().values()]
    assert widths == [size for _, size in STATISTICAL_PARTS]
    assert sum(widths) == statistical_video_features(clips[:2]).shape[1]
    parts = statistical_fvd_parts(clips, shuffled)
    assert list(parts) == [name for name, _ in STATISTICAL_PARTS]
    for appearance in ("intensity histogram", "mean and spread", "edges", "where it is bright"):
        assert parts[appearance] < 1e-9, appearance  # every clip keeps its frames: nothing to see here
    for motion in ("motion by lag", "motion histogram", "where it moves", "smoothness"):
        assert parts[motion] > 1e-4, motion  # measured 8e-4 to 0.28
    with pytest.raises(DataError, match="at least 2"):
        statistical_fvd_parts(clips[:1], shuffled)


def test_i3d_torchscript_wrapper(tmp_path):
    torch = pytest.importorskip("torch")

    class FakeI3D(torch.nn.Module):
        def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                    return_features: bool = False) -> torch.Tensor:
            n = x.shape[0]
            flags = torch.tensor([float(rescale), float(resize), float(return_features)]).expand(n, 3)
            shape = torch.tensor([float(x.shape[1]), float(x.shape[2]), float(x.shape[3]), float(x.shape[4])])
            stats = torch.stack([x.amin((1, 2, 3, 4)), x.amax((1, 2, 3, 4)), x.mean((1, 2, 3, 4))], 1)
            return torch.cat([stats, flags, shape.expand(n, 4)], 1)

    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean((2, 3, 4))

    torch.jit.script(FakeI3D()).save(str(tmp_path / "i3d.pt"))
    torch.jit.script(Plain()).save(str(tmp_path / "plain.pt"))
    videos = np.zeros((3, 5, 16, 16), np.float32)
    videos[:, :, 4:8, 4:8] = 1.0
    out = load_i3d_torchscript(tmp_path / "i3d.pt", size=32)(videos)
    assert out.shape == (3, 10)
    assert out[0, 0] == pytest.approx(-1.0) and out[0, 1] == pytest.approx(1.0)    # scaled to [-1, 1]
    assert list(out[0, 3:6]) == [0.0, 0.0, 1.0]                                      # our call convention
    assert list(out[0, 6:]) == [3.0, 5.0, 32.0, 32.0]                                # (3, T, size, size)
    plain = load_i3d_torchscript(tmp_path / "plain.pt", size=16)
    assert plain(videos).shape == (3, 3)
    rng = np.random.default_rng(0)
    fake = rng.random((6, 5, 16, 16)).astype(np.float32)
    assert frechet_video_distance(fake, fake, plain) == pytest.approx(0.0, abs=1e-6)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFileError):
        load_i3d_torchscript(tmp_path / "junk.pt")
    with pytest.raises(ModelFileError):
        load_i3d_torchscript(tmp_path / "missing.pt")


# -- the shipped digit classifier ------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier():
    if not DIGIT_CLASSIFIER_FILE.is_file():
        pytest.fail(f"the shipped digit classifier is missing: {DIGIT_CLASSIFIER_FILE}")
    from napari_biogan.metrics.digit_classifier import load_digit_classifier

    return load_digit_classifier()


def test_shipped_classifier_card_and_size(classifier):
    from napari_biogan.core.checkpoint import read_card

    card = read_card(DIGIT_CLASSIFIER_FILE)
    assert card["kind"] == "digit-classifier" and "family" not in card
    assert card["metrics"]["test_accuracy"] >= 0.98
    assert DIGIT_CLASSIFIER_FILE.stat().st_size < 2_000_000
    assert classifier.features(np.zeros((2, 64, 64), np.float32)).shape == (2, 512)


def test_shipped_classifier_on_moving_mnist(classifier):
    from napari_biogan.data.mnist import load_mnist_test
    from napari_biogan.data.moving_mnist import build_moving_mnist

    x, y = load_mnist_test(shared_data("mnist"))
    videos, labels = build_moving_mnist(x[:3000], 40, frames=10, seed=5, labels=y[:3000], return_labels=True)
    predicted, _ = classifier.labels_and_features(videos)           # (40, 10)
    assert (predicted == labels[:, None]).mean() >= 0.97
    # a 'video' whose frames are different digits flips often and is less similar frame to frame
    shuffled = videos.reshape(-1, 64, 64)[np.random.default_rng(0).permutation(400)].reshape(40, 10, 64, 64)
    real = moving_mnist_metrics(videos[20:], videos[:20], classifier)
    mixed = moving_mnist_metrics(shuffled[20:], videos[:20], classifier)
    assert real["aacd"] == pytest.approx(0.0, abs=1e-9)             # one whole digit: constant frame mean
    assert real["flips_per_seq"] < 0.3 and mixed["flips_per_seq"] > 6
    assert real["cos_ts"] > 0.85 and mixed["cos_ts"] < real["cos_ts"] - 0.1
    assert mixed["fvd_digits"] > 2 * real["fvd_digits"]
    # the one-pass table agrees with the single metrics
    assert real["flips_per_seq"] == flips_per_sequence(videos[20:], classifier)
    assert real["cos_ts"] == pytest.approx(cos_ts(videos[20:], classifier))
    pooled = digit_video_features(videos[:3], classifier)
    per_frame = classifier.features(videos[:3])                      # (3, 10, 512)
    assert pooled.shape == (3, 1024) and np.allclose(pooled[:, :512], per_frame.mean(1), atol=1e-5)
    assert np.allclose(pooled[:, 512:], np.abs(np.diff(per_frame, axis=1)).mean(1), atol=1e-5)


def test_video_report_puts_the_real_values_beside_the_generated():
    rng = np.random.default_rng(0)
    real = np.repeat(rng.random((6, 1, 8, 8), dtype=np.float32), 5, axis=1)     # still videos
    fake = rng.random((6, 5, 8, 8), dtype=np.float32)                            # flicker
    cells = video_report(fake, real, "cells")
    assert set(cells) == {"aacd", "aacd_real", "fvd_stats"}
    assert cells["aacd_real"] == 0.0 and cells["aacd"] > 1 and cells["fvd_stats"] > 0
    digits = video_report(fake, real, "digits", classifier=PixelClassifier())
    assert {"flips_per_seq", "cos_ts", "fvd_digits", "flips_per_seq_real", "cos_ts_real"} <= set(digits)
    assert digits["flips_per_seq_real"] == 0.0 and digits["cos_ts_real"] == pytest.approx(1.0)
    assert digits["flips_per_seq"] > 0
    with pytest.raises(DataError, match="cells, digits"):
        video_report(fake, real, "faces")


def test_frame_and_crossfade_correlation_tell_a_cross_fade_from_fresh_frames():
    rng = np.random.default_rng(0)
    start, end = rng.random((2, 20, 1, 16, 16))
    weights = np.linspace(0, 1, 9)[None, :, None, None]
    crossfade = (1 - weights) * start + weights * end  # (20, 9, 16, 16): the ends blended
    fresh = rng.random((20, 9, 16, 16))  # every frame new
    still = np.repeat(start, 9, axis=1)
    assert frame_correlation(still) == pytest.approx(1.0)
    assert abs(frame_correlation(fresh)) < 0.05 and frame_correlation(crossfade) > 0.9
    assert frame_correlation(crossfade, lag=8) < 0.1  # its ends are unrelated
    assert crossfade_correlation(crossfade) == pytest.approx(1.0)
    assert abs(crossfade_correlation(fresh)) < 0.1
    # and the contrast sag the metric explains: the middle frame has 1/sqrt(2) of the ends' contrast
    contrast = crossfade.reshape(20, 9, -1).std(-1).mean(0)
    assert contrast[4] / contrast[[0, -1]].mean() == pytest.approx(2 ** -0.5, abs=0.05)
    assert frame_correlation(np.zeros((2, 3, 4, 4))) == 0.0  # flat frames: no correlation, no NaN
    with pytest.raises(DataError, match="lag"):
        frame_correlation(fresh, lag=9)


def test_scale_bands_sum_back_to_the_image_and_sort_detail_by_size():
    from napari_biogan.metrics.pixels import scale_bands

    rng = np.random.default_rng(1)
    images = rng.random((3, 16, 16))
    bands = scale_bands(images)
    assert len(bands) == 4 and np.allclose(sum(bands), images)
    coarse = np.kron(rng.random((3, 2, 2)), np.ones((8, 8)))  # 8x8 blocks: only the coarsest band has them
    assert np.allclose(scale_bands(coarse)[-1], coarse) and all(np.allclose(b, 0) for b in scale_bands(coarse)[:3])
    with pytest.raises(DataError, match="blocks"):
        scale_bands(np.zeros((2, 12, 12)))


def test_frame_correlation_by_scale_finds_fine_detail_that_changes_every_frame():
    """Real cell clips lose fine detail from frame to frame and keep coarse shapes; a generator that
    draws the same fine texture on every frame does not (docs/video_experiments.md, "... detail that
    changes at one speed")."""
    rng = np.random.default_rng(2)
    shapes = np.kron(rng.random((10, 1, 4, 4)), np.ones((8, 8)))   # (10, 1, 32, 32): coarse, fixed in time
    noisy = np.repeat(shapes, 6, 1) + 0.3 * rng.standard_normal((10, 6, 32, 32))  # + new pixel noise per frame
    frozen = np.repeat(shapes + 0.3 * rng.standard_normal((10, 1, 32, 32)), 6, 1)  # the same noise every frame
    by_scale_noisy, by_scale_frozen = frame_correlation_by_scale(noisy), frame_correlation_by_scale(frozen)
    assert by_scale_noisy.shape == (4,) and abs(by_scale_noisy[0]) < 0.05 and by_scale_noisy[-1] > 0.95
    assert np.allclose(by_scale_frozen, 1.0)
    with pytest.raises(DataError, match="lag"):
        frame_correlation_by_scale(noisy, lag=6)


def test_renewed_share_tells_noise_renewed_every_frame_from_detail_that_drifts_away():
    """Real T98G clips' finest detail correlates 0.47 with the next frame, generated clips' 0.76; yet two
    frames on, generated detail is the less alike. The lag-1 figure mixes noise renewed every frame with
    lasting detail; detail_memory over lags and renewed_share separate them."""
    from napari_biogan.metrics.video import detail_memory, renewed_share

    rng = np.random.default_rng(0)
    n, t, share, rho = 48, 16, 0.3, 0.8
    lasting = np.empty((n, t, 32, 32))
    lasting[:, 0] = rng.standard_normal((n, 32, 32))
    for i in range(1, t):  # stationary AR(1) in time: correlation rho ** lag
        lasting[:, i] = rho * lasting[:, i - 1] + np.sqrt(1 - rho ** 2) * rng.standard_normal((n, 32, 32))
    noisy = np.sqrt(1 - share) * lasting + np.sqrt(share) * rng.standard_normal((n, t, 32, 32))
    memory = detail_memory(noisy, lags=(1, 2, 4), value_range=(-6.0, 6.0))
    assert memory.shape == (4, 3)
    assert np.allclose(memory[:, 0], (1 - share) * rho, atol=0.03)
    assert np.allclose(renewed_share(memory), share, atol=0.06)
    # detail smooth over a few frames and then gone (what the generators draw): no white part, a negative share
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)
    white = rng.standard_normal((n, t + 8, 32, 32))
    smooth = sum(w * white[:, i:i + t] for i, w in enumerate(kernel / np.sqrt((kernel ** 2).sum())))
    assert (renewed_share(detail_memory(smooth, lags=(1, 2), value_range=(-6.0, 6.0))) < -0.1).all()


def test_grid_peaks_find_a_fixed_grid_of_dots_that_contrast_figures_reward():
    """The wider-last-level run met the contrast target through dots printed every few pixels at the same
    place in every clip (README "Video"); the grid measure must single that out and leave smooth images
    and moving objects at about 1."""
    from napari_biogan.metrics.artefacts import grid_peaks

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    blobs = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))  # cells anywhere, any size
                      for cy, cx, s in zip(rng.uniform(0, 32, 96), rng.uniform(0, 32, 96), rng.uniform(1, 5, 96))])
    clean = blobs + 0.05 * rng.standard_normal(blobs.shape)
    assert all(0.6 < v < 1.6 for v in grid_peaks(clean).values()), grid_peaks(clean)
    assert set(grid_peaks(clean)) == {2, 4, 8}
    for period in (2, 4, 8):
        dots = np.zeros((32, 32))
        dots[::period, ::period] = 1.0
        dotted = grid_peaks(clean + 0.3 * dots)  # a grid as faint as a third of a cell's peak
        assert dotted[period] > 5 * max(grid_peaks(clean).values()), (period, dotted)
    # taking the grid out gives back the contrast of the clean images, and leaves clean images almost as they were
    from napari_biogan.metrics.artefacts import without_grid

    dots = np.zeros((32, 32))
    dots[::4, ::4] = 1.0
    dotted = clean + 0.6 * dots
    assert dotted.std(axis=(1, 2)).mean() > 1.15 * clean.std(axis=(1, 2)).mean()
    cleaned = without_grid(dotted)
    assert abs(cleaned.std(axis=(1, 2)).mean() / clean.std(axis=(1, 2)).mean() - 1) < 0.05
    assert max(grid_peaks(cleaned).values()) < 1.6
    assert abs(without_grid(clean).std(axis=(1, 2)).mean() / clean.std(axis=(1, 2)).mean() - 1) < 0.02
    # shorter periods' frequencies are not counted again, and a period that does not divide is skipped
    assert set(grid_peaks(np.zeros((2, 12, 12)) + rng.random((2, 12, 12)))) == {2, 4}
