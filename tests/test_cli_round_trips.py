"""Every file the CLI writes reopens exactly through every reader of ours (regression: clips read with
their N and T axes swapped, so each "video" mixed frames of different clips)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_biogan.cli import main


def _moving_blobs(t=24, size=64):
    """Four bright blobs moving in different directions over a noisy still field."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    frames = []
    for k in range(t):
        frame = 100 + rng.normal(0, 1, (size, size))
        for cy, cx, vy, vx in ((16, 10, 0, 1), (48, 50, 0, -1), (12, 44, 1, 0), (50, 14, -1, 0)):
            frame += 80 * np.exp(-((yy - cy - vy * k) ** 2 + (xx - cx - vx * k) ** 2) / 18)
        frames.append(frame)
    return np.stack(frames).astype(np.uint16)


def test_clips_written_by_the_cli_train_and_evaluate_as_clips(tmp_path, capsys):
    from napari_biogan.core.export import read_provenance
    from napari_biogan.data.inputs import load_image_source
    from napari_biogan.core.registry import get_family

    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, _moving_blobs())
    clips = tmp_path / "clips.tif"
    assert main(["clips", str(movie), "-o", str(clips), "--size", "8x16x16", "--max-clips", "3",
                 "--min-motion", "0.01"]) == 0
    written = read_provenance(clips)
    n = len(written["clips"])
    loaded = load_image_source(str(clips), get_family("savgan"))
    assert loaded.shape == (n, 8, 16, 16)  # N clips of T frames, not T "clips" of N frames
    # consecutive frames of one clip are alike; the same frame of different clips is not
    adjacent = np.corrcoef(loaded[0, 0].ravel(), loaded[0, 1].ravel())[0, 1]
    assert adjacent > 0.5
    # the napari reader gives the same (N, T, Y, X)
    from napari_biogan.io import read_tiff

    (data, meta, kind), = read_tiff(str(clips))
    assert kind == "image" and data.shape == loaded.shape and np.allclose(data, loaded)


def test_generated_video_samples_keep_time_on_imagej_t(tmp_path):
    """Fiji users: video time on ImageJ's T axis, samples on Z; Python users get (N, C, T, Y, X) back."""
    from napari_biogan.core.export import read_tiff_axes
    from napari_biogan.core.model import Model

    model = Model.new("savgan", frames=4, height=8, width=8, latent_dim=8, widths=(8, 8), critic_widths=(8,),
                      frame_critic_widths=(8,), landmarks=4)
    path = model.save(tmp_path / "v.safetensors")
    out = tmp_path / "v.tif"
    assert main(["generate", "--model", str(path), "-n", "3", "--precision", "fp32", "-o", str(out)]) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes.startswith("TZ") and tif.imagej_metadata["frames"] == 4
        assert tif.imagej_metadata["slices"] == 3
    data, axes = read_tiff_axes(out)
    assert axes == "NCTYX" and data.shape == (3, 1, 4, 8, 8)
    assert np.allclose(data, model.sample(3, seed=0, precision="fp32"), atol=1e-6)


def test_a_tracks_argument_that_is_not_a_table_says_so(tmp_path, capsys):
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, _moving_blobs(t=12))
    assert main(["clips", str(movie), "-o", str(tmp_path / "c.tif"), "--size", "8x16x16",
                 "--tracks", str(movie)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tracks" in err[0]
    assert not (tmp_path / "c.tif").exists()
