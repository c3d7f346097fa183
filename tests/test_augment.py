"""Differentiable augmentation (nn.augment): the same transform for every frame of a clip, gradients
through it, one sentence for an unknown name, and the video family training with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_biogan.core.errors import DataError
from napari_biogan.core.registry import get_family
from napari_biogan.core.settings import check_hparams
from napari_biogan.nn.augment import augment_policy, diff_augment, random_cutout, random_shift


def _clips(n=4, frames=3, side=16):
    """Clips whose frames are all the same picture: an augmentation that treats frames alike keeps them equal."""
    picture = torch.randn(n, 1, 1, side, side, generator=torch.Generator().manual_seed(0))
    return picture.expand(n, 1, frames, side, side).clone()


def test_every_frame_of_a_clip_gets_the_same_shift_and_cutout():
    clips = _clips()
    out = diff_augment(clips, ("shift", "cutout"), torch.Generator().manual_seed(1))
    assert out.shape == clips.shape
    assert torch.equal(out[:, :, 0], out[:, :, 1]) and torch.equal(out[:, :, 0], out[:, :, 2])
    assert not torch.equal(out, clips)
    again = diff_augment(clips, ("shift", "cutout"), torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # one seed, one augmentation: training resumes exactly


def test_cutout_greys_one_square_per_clip_and_shift_only_moves_pixels():
    ones = torch.ones(5, 1, 2, 16, 16)
    cut = random_cutout(ones, 8, torch.Generator().manual_seed(0))
    assert (cut[:, :, 0] == 0).flatten(1).sum(1).tolist() == [64] * 5
    clips = _clips()
    moved = random_shift(clips, 2, torch.Generator().manual_seed(0))
    assert torch.allclose(moved.flatten(1).sort(1).values, clips.flatten(1).sort(1).values)
    assert random_shift(clips, 0, torch.Generator()) is clips


def test_gradients_reach_the_generator_through_the_augmentation():
    clips = _clips().requires_grad_(True)
    diff_augment(clips, ("shift", "cutout"), torch.Generator().manual_seed(0)).sum().backward()
    grad = clips.grad
    assert grad is not None and (grad == 1).float().mean() > 0.5 and (grad == 0).any()  # the cut-out has none


def test_an_unknown_augmentation_is_one_sentence_before_training():
    assert augment_policy("shift+cutout") == augment_policy("shift, cutout") == ("shift", "cutout")
    assert augment_policy("") == () and augment_policy(("shift",)) == ("shift",)
    family = get_family("savgan")
    assert check_hparams(family, {"diff_augment": ("shift", "cutout")}) == {"diff_augment": "shift,cutout"}
    with pytest.raises(DataError, match="Unknown augmentation 'rotate'; choose from shift, cutout"):
        check_hparams(family, {"diff_augment": "shift,rotate"})


def test_the_video_family_trains_with_diff_augment(tmp_path):
    from napari_biogan.core.model import GanModel
    from napari_biogan.core.training import Trainer, TrainSettings

    tiny = dict(frames=8, height=16, width=16, latent_dim=16, widths=(16, 8), critic_widths=(8, 16),
                frame_critic_widths=(8, 16), landmarks=16)
    losses = {}
    for policy in ("", "shift,cutout"):
        model = GanModel.new("savgan", seed=0, **tiny)
        videos = np.random.default_rng(0).integers(0, 255, (6, 8, 16, 16)).astype(np.uint8)
        data = model.family.prepare_data({"image": videos}, model.config)
        settings = TrainSettings(steps=2, seed=1, output=str(tmp_path / f"v{len(policy)}.safetensors"),
                                 preview_every=100, checkpoint_every=100,
                                 hparams={"batch_size": 2, "n_critic": 1, "diff_augment": policy})
        events = Trainer(model, data, settings).run_all()
        losses[policy] = [e.losses["critic_video"] for e in events if e.kind == "step"]
    assert all(np.isfinite(v).all() for v in losses.values())
    assert losses[""] != losses["shift,cutout"]  # the critics saw other clips
