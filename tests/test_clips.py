"""Clips cropped around moving cells: synthetic movies with known motion, and the real T98G movie."""

from __future__ import annotations

import numpy as np
import pytest

from real_data import shared_data
from napari_biogan.core.errors import DataError
from napari_biogan.data.clips import (crop_moving_clips, downscale_movie, load_t98g, motion_map, read_tracks_csv,
                                      t98g_clips)


def _blob_movie(t=20, size=(96, 128), start=(60, 20), velocity=(0.0, 3.0), radius=5, seed=0):
    """A noisy still background with textured still 'cells' and one moving bright blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size[0], :size[1]]
    background = 100 + rng.normal(0, 1, size)
    background[10:30, 90:115] += 40  # a bright object that does not move
    frames, centres = [], []
    for k in range(t):
        cy, cx = start[0] + velocity[0] * k, start[1] + velocity[1] * k
        blob = 60 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius ** 2))
        frames.append(background + blob + rng.normal(0, 1, size))
        centres.append((cy, cx))
    return np.stack(frames).astype(np.uint16), np.array(centres)


def test_clip_contains_the_moving_blob():
    movie, centres = _blob_movie()
    clips, info = crop_moving_clips(movie, size=(8, 32, 32), max_clips=1)
    assert clips.shape == (1, 8, 32, 32) and clips.dtype == np.float32
    assert 0.0 <= clips.min() and clips.max() <= 1.0
    t0 = info[0]["time"]
    y0, x0 = info[0]["corner"]
    for k in range(8):  # the blob's centre is inside the clip in every frame of it
        cy, cx = centres[t0 + k]
        assert y0 + 3 <= cy <= y0 + 29 and x0 + 3 <= cx <= x0 + 29
    # and the brightest pixels of a clip frame are the blob's (the scaling saturates its top)
    ys, xs = np.nonzero(clips[0, 4] > 0.95)
    assert abs(ys.mean() + y0 - centres[t0 + 4][0]) <= 1.5 and abs(xs.mean() + x0 - centres[t0 + 4][1]) <= 1.5
    assert info[0]["motion"] > 0.05 and info[0]["particle"] is None


def test_clips_do_not_overlap_and_still_scenes_give_none():
    movie, _ = _blob_movie(t=24, size=(64, 256), start=(32, 10), velocity=(0.0, 9.0))
    clips, info = crop_moving_clips(movie, size=(8, 32, 32), min_motion=0.01)
    assert len(clips) >= 2
    scores = [i["motion"] for i in info]
    assert scores == sorted(scores, reverse=True)
    for i, a in enumerate(info):
        for b in info[i + 1:]:
            apart = (abs(a["time"] - b["time"]) >= 8 or abs(a["corner"][0] - b["corner"][0]) >= 32
                     or abs(a["corner"][1] - b["corner"][1]) >= 32)
            assert apart
    # a time stride lets clips of one place overlap in time, at least that many frames apart
    more, more_info = crop_moving_clips(movie, size=(8, 32, 32), min_motion=0.01, time_stride=2)
    assert len(more) > len(clips)
    for i, a in enumerate(more_info):
        for b in more_info[i + 1:]:
            assert (abs(a["time"] - b["time"]) >= 2 or abs(a["corner"][0] - b["corner"][0]) >= 32
                    or abs(a["corner"][1] - b["corner"][1]) >= 32)
    with pytest.raises(DataError, match="time stride"):
        crop_moving_clips(movie, size=(8, 32, 32), time_stride=9)
    still = np.repeat(movie[:1], 12, axis=0)
    clips, info = crop_moving_clips(still, size=(8, 32, 32))
    assert clips.shape == (0, 8, 32, 32) and info == []


def test_tracks_centre_clips_on_tracked_cells():
    movie, centres = _blob_movie(t=16, size=(128, 128), start=(70, 30), velocity=(1.0, 2.0))
    tracks = {"particle": np.full(16, 7), "frame": np.arange(16), "y": centres[:, 0], "x": centres[:, 1]}
    clips, info = crop_moving_clips(movie, size=(8, 48, 48), tracks=tracks, max_clips=1)
    assert len(clips) == 1 and info[0]["particle"] == 7
    t0 = info[0]["time"]
    mean_centre = centres[t0:t0 + 8].mean(0)
    assert np.allclose(info[0]["centre"], mean_centre, atol=1.0)


def test_downscale_keeps_coordinates_in_original_pixels():
    movie, centres = _blob_movie(t=12, size=(192, 256), start=(100, 60), velocity=(0.0, 6.0), radius=10)
    small = downscale_movie(movie, 2)
    assert small.shape == (12, 96, 128)
    assert np.isclose(small[0, :2, :2].mean(), movie[0, :4, :4].astype(np.float64).mean(), rtol=1e-5)
    clips, info = crop_moving_clips(movie, size=(6, 32, 32), downscale=2, max_clips=1)
    cy, cx = centres[info[0]["time"] + 3]
    y, x = info[0]["centre"]
    assert abs(cy - y) < 32 and abs(cx - x) < 32


def test_motion_ignores_global_brightness_jump():
    movie, _ = _blob_movie(t=6, velocity=(0.0, 0.0))
    movie[3:] += 30  # illumination jump, nothing moves
    motion = motion_map(movie.astype(np.float32) / 200)
    assert motion.max() < 0.05


def test_bad_requests():
    with pytest.raises(DataError):
        crop_moving_clips(np.zeros((5, 20, 20)), size=(8, 16, 16))  # more frames than the movie
    with pytest.raises(DataError):
        crop_moving_clips(np.zeros((20, 20)), size=(2, 8, 8))
    with pytest.raises(DataError, match="'y' column"):
        crop_moving_clips(np.random.rand(6, 20, 20), size=(3, 8, 8), tracks={"frame": np.arange(3)})


def test_real_t98g_clips():
    root = shared_data("usiigaci_t98g_phase_timelapse")
    movie, tracks = load_t98g(root)
    assert movie.shape == (37, 1022, 1024) and movie.dtype == np.uint16
    assert {"particle", "frame", "y", "x"} <= set(tracks) and tracks["frame"].max() == 36
    clips, info = crop_moving_clips(movie, size=(16, 32, 32), downscale=4, max_clips=20)
    assert clips.shape == (20, 16, 32, 32)
    assert all(i["motion"] >= 0.05 for i in info)
    tracked, tinfo = crop_moving_clips(movie, size=(16, 32, 32), downscale=4, tracks=tracks, max_clips=5)
    assert len(tracked) == 5 and all(i["particle"] is not None for i in tinfo)


def test_tracks_csv_reader(tmp_path):
    (tmp_path / "t.csv").write_text("particle,frame,y,x,label\n1,0,5.5,6.5,a\n1,1,6.0,7.0,b\n")
    table = read_tracks_csv(tmp_path / "t.csv")
    assert table["particle"].dtype == np.int64 and np.allclose(table["x"], [6.5, 7.0]) and "label" not in table
    with pytest.raises(DataError):
        read_tracks_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError):
        t98g_clips(root=tmp_path)
