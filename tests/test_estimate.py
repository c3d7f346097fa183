"""core/estimate.py: a few real training steps timed on a throwaway run; nothing written, nothing changed."""

import os

import numpy as np
import pytest
import torch

from napari_biogan.core.errors import DataError
from napari_biogan.core.estimate import TrainEstimate, estimate_training, format_duration
from napari_biogan.core.training import TrainSettings, setup_training

CONFIG = {"height": 16, "width": 16, "latent_dim": 8, "base_width": 8}


def _images(n=16):
    rng = np.random.default_rng(0)
    images = rng.random((n, 16, 16)).astype(np.float32)
    images[:, 4:12, 4:12] += 2.0
    return images


def _settings(output, **kw):
    base = dict(steps=3000, seed=5, output=str(output), preview_every=500, hparams={"batch_size": 4})
    base.update(kw)
    return TrainSettings(**base)


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_times_real_steps_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "run" / "model.safetensors"
    rng_before = torch.get_rng_state()
    calls = []
    from napari_biogan.core.registry import get_family

    family = type(get_family("dcgan2d"))  # families are made per call: count on the class
    step = family.train_step
    monkeypatch.setattr(family, "train_step", lambda self, *a, **k: (calls.append(1), step(self, *a, **k))[1])
    estimate = estimate_training("dcgan2d", {"image": _images()}, _settings(output), config_overrides=CONFIG,
                                 device="cpu", steps=2, warmup=1)
    assert len(calls) == 3  # one warm-up and two measured steps, through the family's own train_step
    assert estimate.measured_steps == 2 and estimate.seconds_per_step > 0 and estimate.preview_s > 0
    assert estimate.device == "cpu" and estimate.start_step == 0
    assert estimate.seconds(3000, 500) > 0
    assert not output.exists() and _files(tmp_path) == []  # no model file, no folder, nothing
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's random state is back


def test_the_estimate_does_not_change_the_run_that_follows(tmp_path):
    def trained(with_estimate):
        settings = _settings(tmp_path / f"m{with_estimate}.safetensors", steps=2, preview_every=10)
        if with_estimate:
            estimate_training("dcgan2d", _images(), settings, config_overrides=CONFIG, device="cpu", steps=1)
        trainer = setup_training("dcgan2d", _images(), settings, config_overrides=CONFIG, device="cpu")
        trainer.run_all()
        return trainer.model.nets.state_dict()

    plain, after = trained(False), trained(True)
    assert all(torch.equal(plain[k], after[k]) for k in plain)


def test_duration_scales_linearly_with_steps_and_counts_previews():
    estimate = TrainEstimate(seconds_per_step=0.5, preview_s=2.0, setup_s=1.0, measured_steps=3, device="cpu")
    assert estimate.seconds(1000) == pytest.approx(500.0)
    assert estimate.seconds(3000) == pytest.approx(3 * estimate.seconds(1000))
    assert estimate.seconds(3000, preview_every=500) == pytest.approx(1500.0 + 6 * 2.0)
    assert estimate.describe(3000) == "about 25 min for 3,000 steps (0.50 s/step measured on cpu)."
    resumed = TrainEstimate(0.5, 0.0, 1.0, 3, "cpu", start_step=1000)
    assert resumed.seconds(3000) == pytest.approx(1000.0)  # the checkpoint's steps are done
    assert "2,000 steps (from step 1,000)" in resumed.describe(3000)


def test_resume_estimates_the_steps_left(tmp_path):
    checkpoint = tmp_path / "c.safetensors"
    trainer = setup_training("dcgan2d", _images(), _settings(checkpoint, steps=2, preview_every=10),
                             config_overrides=CONFIG, device="cpu")
    trainer.run_all()
    stamp = os.stat(checkpoint).st_mtime_ns
    estimate = estimate_training("dcgan2d", _images(), _settings(checkpoint, steps=10), resume=str(checkpoint),
                                 device="cpu", steps=1)
    assert estimate.start_step == 2 and estimate.seconds(10) == pytest.approx(8 * estimate.seconds_per_step)
    assert os.stat(checkpoint).st_mtime_ns == stamp  # the checkpoint is read, never written


def test_bad_data_is_the_same_sentence_as_starting(tmp_path):
    with pytest.raises(DataError):
        estimate_training("dcgan2d", {"image": np.zeros((2, 3))}, _settings(tmp_path / "m.safetensors"),
                          config_overrides=CONFIG, device="cpu")


@pytest.mark.parametrize("seconds, words", [(5, "less than a minute"), (1500, "about 25 min"),
                                            (3 * 3600 + 300, "about 3 h 05 min")])
def test_format_duration(seconds, words):
    assert format_duration(seconds) == words
