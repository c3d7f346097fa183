"""TGANv2 video family: sparse training levels, dense generation, training, model files."""

import numpy as np
import pytest
import torch

from napari_biogan.core.errors import DataError
from napari_biogan.core.model import GanModel
from napari_biogan.core.registry import family_names, get_family
from napari_biogan.core.training import Trainer, TrainSettings
from napari_biogan.families.tganv2 import PRESETS, level_frames, real_levels, tganv2_config

TINY = dict(frames=8, height=16, width=16, latent_dim=16, widths=(32, 16, 8), critic_widths=(8, 16))


def _videos(n=12, frames=8, size=16):
    rng = np.random.default_rng(0)
    videos = rng.random((n, frames, size, size)).astype(np.float32) * 0.2
    for i in range(n):
        for t in range(frames):
            videos[i, t, 4:8, (i + t) % (size - 4):(i + t) % (size - 4) + 4] += 1.0
    return videos


def test_registered_and_uniform_latents():
    assert "tganv2" in family_names()
    model = GanModel.new("tganv2", seed=0, **TINY)
    z = model.latents(256, seed=0)
    assert z.shape == (256, 16) and z.min() >= -1 and z.max() <= 1 and z.min() < -0.9  # uniform in [-1, 1]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_generate_densely(preset):
    model = GanModel.new("tganv2", preset=preset, seed=0)
    cfg = model.config
    assert model.sample(1, seed=0, precision="fp32").shape == (1, 1, cfg.frames, cfg.height, cfg.width)


def test_sparse_levels_halve_the_frames_and_double_the_size():
    model = GanModel.new("tganv2", seed=0, **TINY)
    gen = model.nets["generator"].train()
    with torch.no_grad():
        levels = gen(torch.rand(2, 16) * 2 - 1, offsets=[0, 1])
    assert [tuple(v.shape) for v in levels] == [(2, 1, 8, 8, 8), (2, 1, 4, 16, 16)]
    assert level_frames([0, 1], 8) == [list(range(8)), [1, 3, 5, 7]]
    assert level_frames([0, 0, 1], 8)[2] == [2, 6]
    real = torch.arange(8.0).view(1, 1, 8, 1, 1).expand(2, 1, 8, 16, 16)
    views = real_levels(real, [0, 1], [(8, 8), (16, 16)])
    assert views[0].shape == (2, 1, 8, 8, 8) and views[1][0, 0, :, 0, 0].tolist() == [1, 3, 5, 7]


def test_same_seed_same_video():
    model = GanModel.new("tganv2", seed=0, **TINY)
    assert np.array_equal(model.sample(2, seed=4, precision="fp32"), model.sample(2, seed=4, precision="fp32"))


def test_training_steps_change_generator_and_every_level_critic(tmp_path):
    model = GanModel.new("tganv2", seed=0, **TINY)
    data = model.family.prepare_data(_videos(), model.config)
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    settings = TrainSettings(steps=2, seed=0, output=str(tmp_path / "t.safetensors"), preview_every=2,
                             preview_n=2, checkpoint_every=100, hparams={"batch_size": 4, "n_critic": 2})
    events = Trainer(model, data, settings).run_all()
    assert [e.kind for e in events].count("step") == 2
    assert all(np.isfinite(list(e.losses.values())).all() for e in events if e.kind == "step")
    after = model.nets.state_dict()
    for prefix in ("generator.", "critics.0.", "critics.1."):
        assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith(prefix)), prefix
    loaded = GanModel.load(tmp_path / "t.safetensors", device="cpu")
    assert loaded.family.name == "tganv2" and loaded.card["training"]["steps"] == 2
    assert np.array_equal(loaded.sample(1, seed=2, precision="fp32"), model.sample(1, seed=2, precision="fp32"))


def test_config_errors():
    with pytest.raises(DataError):
        tganv2_config("cpu-small", height=20)
    with pytest.raises(DataError):
        get_family("tganv2").default_config(preset="huge")
