"""Bad requests and damaged inputs refused in one sentence, in the core (issue: hardening)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_biogan.core import checkpoint
from napari_biogan.core.errors import DataError, ModelFileError
from napari_biogan.core.model import Model

TINY = dict(height=16, width=16, latent_dim=8, base_width=8)


def test_nan_weights_are_refused_at_load(tmp_path):
    model = Model.new("dcgan2d", **TINY)
    with torch.no_grad():
        model.nets["generator"].project.weight[0, 0] = float("nan")
    path = model.save(tmp_path / "nan.safetensors")
    with pytest.raises(ModelFileError, match="NaN or infinite weights"):
        Model.load(path, device="cpu")


def test_a_request_bigger_than_memory_is_refused_after_one_chunk(monkeypatch):
    model = Model.new("dcgan2d", **TINY)
    monkeypatch.setenv("NAPARI_BIOGAN_MAX_BYTES", str(1_000_000))
    calls = []
    with pytest.raises(DataError, match="10000000 samples would need .* GB"):
        model.run(model.seeded_point(0, n=10_000_000), progress=lambda done, total: calls.append(done))
    assert calls == []  # refused after the first chunk, before any progress was reported
    assert model.sample(4, seed=0).shape == (4, 1, 16, 16)  # small requests still work


def test_a_path_too_long_is_refused_before_building_it():
    from napari_biogan.core.latent import point_path

    model = Model.new("dcgan2d", **TINY)
    keys = [model.seeded_point(1), model.seeded_point(2)]
    with pytest.raises(DataError, match="too long"):
        point_path(keys, 100_000_000)
    with pytest.raises(DataError, match="at least one frame"):
        point_path(keys, 0)


@pytest.mark.parametrize("bad", [dict(latent_dim=0), dict(height=-4), dict(base_width=True), dict(width=2.5)])
def test_impossible_configs_are_one_sentence(bad):
    with pytest.raises(DataError, match="must be a whole number"):
        Model.new("dcgan2d", **{**TINY, **bad})


def test_seeds_beyond_63_bits_are_refused():
    model = Model.new("dcgan2d", **TINY)
    with pytest.raises(DataError, match="2\\^63"):
        model.latents(1, 2 ** 63)


def test_a_card_with_an_invalid_config_is_one_sentence(tmp_path):
    model = Model.new("dcgan2d", **TINY)
    path = model.save(tmp_path / "m.safetensors")
    tensors, card = checkpoint.load_tensors(path)
    card["config"]["height"] = "abc"
    forged = checkpoint.save_tensors(tmp_path / "f.safetensors", tensors, card)
    with pytest.raises(ModelFileError, match="not valid for a 'dcgan2d' model"):
        Model.load(forged, device="cpu")


@pytest.mark.parametrize("kwargs, message", [
    (dict(downscale=1000), "leaves nothing"),
    (dict(max_clips=-1), "at least 1"),
    (dict(max_clips=0), "at least 1"),
])
def test_clip_requests_that_cannot_work_say_why(kwargs, message):
    from napari_biogan.data.clips import crop_moving_clips

    movie = np.random.default_rng(0).random((12, 40, 40)).astype(np.float32)
    with pytest.raises(DataError, match=message):
        crop_moving_clips(movie, (4, 8, 8), **kwargs)


def test_a_movie_with_nan_says_so_not_no_moving_cells():
    from napari_biogan.data.clips import crop_moving_clips

    movie = np.random.default_rng(0).random((12, 40, 40)).astype(np.float32)
    movie[3, 5, 5] = np.nan
    with pytest.raises(DataError, match="NaN"):
        crop_moving_clips(movie, (4, 8, 8))


def test_rgb_data_for_a_grey_model_is_refused():
    from napari_biogan.core.registry import get_family

    video, images = get_family("savgan"), get_family("dcgan2d")
    with pytest.raises(DataError, match="RGB"):
        video.prepare_data(np.zeros((20, 40, 40, 3), np.uint8), video.default_config())
    with pytest.raises(DataError, match="RGB"):
        images.prepare_data(np.zeros((5, 32, 32, 3), np.uint8), images.default_config())


def _blob(centre, size=48):
    yy, xx = np.mgrid[:size, :size]
    return np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / 18.0) * 1000


def test_a_stack_of_unrelated_images_is_not_taken_for_a_time_lapse():
    """Regression (hardening): a digits-like stack given to a video family trained as one time-lapse."""
    from napari_biogan.core.registry import get_family

    rng = np.random.default_rng(0)
    unrelated = np.stack([_blob(rng.uniform(8, 40, 2)) for _ in range(40)]).astype(np.float32)
    moving = np.stack([_blob((24, 8 + t)) for t in range(32)]).astype(np.float32)  # one blob drifting
    video = get_family("savgan")
    config = video.default_config(frames=8, height=16, width=16)
    with pytest.raises(DataError, match="do not look like one time-lapse"):
        video.prepare_data(unrelated, config)
    assert len(video.prepare_data(moving, config)) == 4  # 32 frames -> 4 clips of 8
    # clips (N, T, Y, X) are the user's explicit choice: not second-guessed
    assert len(video.prepare_data(unrelated.reshape(5, 8, 48, 48), config)) == 5


def test_a_training_seed_beyond_64_bits_is_one_sentence():
    from napari_biogan.core.training import TrainSettings, setup_training

    images = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    with pytest.raises(DataError, match="training seed"):
        setup_training("dcgan2d", images, TrainSettings(steps=1, seed=2 ** 63), config_overrides=TINY)
