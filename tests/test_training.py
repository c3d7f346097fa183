"""The one training loop: events, checkpoints, resume, cancel, NaN."""

import numpy as np
import pytest
import torch

from napari_biogan.core.errors import DataError, TrainingDivergedError
from napari_biogan.core.model import GanModel
from napari_biogan.core.training import Trainer, TrainSettings


def _data(n=64):
    rng = np.random.default_rng(0)
    images = rng.random((n, 32, 32)).astype(np.float32)
    images[:, 8:24, 8:24] += 2.0  # some structure
    return images


def _model():
    return GanModel.new("dcgan2d", base_width=8, latent_dim=16, seed=1)


def _settings(**kw):
    base = dict(steps=4, seed=5, checkpoint_every=2, preview_every=2, preview_n=3,
                hparams={"batch_size": 8, "n_critic": 2})
    base.update(kw)
    return TrainSettings(**base)


def test_events_losses_preview_and_eta(tmp_path):
    model = _model()
    data = model.family.prepare_data(_data(), model.config)
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    events = Trainer(model, data, _settings(output=str(tmp_path / "m.safetensors"))).run_all()
    kinds = [e.kind for e in events]
    assert kinds.count("step") == 4 and kinds[-1] == "finished"
    assert "checkpoint" in kinds
    steps = [e for e in events if e.kind == "step"]
    assert all(np.isfinite(list(e.losses.values())).all() for e in steps)
    assert steps[-1].eta_s == pytest.approx(0.0) and steps[0].eta_s > 0
    preview = next(e.preview for e in events if e.kind == "preview")
    assert preview.shape == (3, 1, 32, 32)
    changed = [k for k, v in model.nets.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "training did not change any weight"
    saved = GanModel.load(tmp_path / "m.safetensors")
    assert saved.card["training"]["steps"] == 4


def test_resume_matches_an_uninterrupted_run(tmp_path):
    data = _model().family.prepare_data(_data(), _model().config)
    full = _model()
    Trainer(full, data, _settings(steps=6, output=str(tmp_path / "full.safetensors"))).run_all()

    part = _model()
    trainer = Trainer(part, data, _settings(steps=6, output=str(tmp_path / "part.safetensors")))
    for event in trainer.run():
        if event.step == 3:
            trainer.stop()
    assert GanModel.load(tmp_path / "part.safetensors").card["training_state"]["step"] == 3
    resumed = Trainer.resume(str(tmp_path / "part.safetensors"), data, _settings(steps=6, output=str(tmp_path / "part.safetensors")),
                             device="cpu")
    assert resumed.step == 3
    resumed.run_all()
    for key, value in full.nets.state_dict().items():
        assert torch.equal(value, resumed.model.nets.state_dict()[key]), key


def test_cancel_stops_at_next_step_and_keeps_checkpoint(tmp_path):
    model = _model()
    data = model.family.prepare_data(_data(), model.config)
    trainer = Trainer(model, data, _settings(steps=50, output=str(tmp_path / "c.safetensors")))
    events = []
    for event in trainer.run():
        events.append(event)
        if event.kind == "step" and event.step == 1:
            trainer.stop()
    assert events[-1].kind == "cancelled" and events[-1].step == 1
    assert GanModel.load(tmp_path / "c.safetensors").card["training_state"]["step"] == 1


def test_nan_stops_and_keeps_last_good_state(tmp_path, monkeypatch):
    model = _model()
    data = model.family.prepare_data(_data(), model.config)
    trainer = Trainer(model, data, _settings(steps=10, checkpoint_every=2, output=str(tmp_path / "n.safetensors")))
    real_step = model.family.train_step
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        losses = real_step(*args, **kwargs)
        return {**losses, "critic": float("nan")} if calls["n"] == 3 else losses

    monkeypatch.setattr(model.family, "train_step", poisoned)
    with pytest.raises(TrainingDivergedError, match="step 3") as info:
        trainer.run_all()
    assert info.value.step == 3
    kept = GanModel.load(info.value.kept_path)
    assert kept.card["training_state"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in kept.nets.state_dict().values() if v.is_floating_point())


def test_bad_training_data():
    model = _model()
    with pytest.raises(DataError):
        model.family.prepare_data(np.zeros((4, 32, 32)), model.config)  # constant
    with pytest.raises(DataError):
        model.family.prepare_data(np.zeros((32, 32)), model.config)  # no sample axis
    with pytest.raises(DataError):
        model.family.prepare_data(np.array([["a"]]), model.config)


def test_the_state_kept_at_a_nan_stop_is_one_consistent_step(tmp_path, monkeypatch):
    """Weights, optimisers, RNGs and step of the kept file all belong to the last checkpointed step:
    resuming from it gives exactly what an uninterrupted run gives (regression: RNG was from the NaN step)."""
    from napari_biogan.core.training import Trainer as _Trainer

    model = _model()
    data = model.family.prepare_data(_data(), model.config)
    out = tmp_path / "n.safetensors"
    trainer = _Trainer(model, data, _settings(steps=6, checkpoint_every=2, output=str(out)))
    real_step, calls = model.family.train_step, {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        losses = real_step(*args, **kwargs)
        return {**losses, "critic": float("nan")} if calls["n"] == 3 else losses

    monkeypatch.setattr(model.family, "train_step", poisoned)
    with pytest.raises(TrainingDivergedError):
        trainer.run_all()
    monkeypatch.undo()
    resumed = _Trainer.resume(str(out), data, _settings(steps=4, output=str(tmp_path / "r.safetensors")))
    assert resumed.step == 2
    resumed.run_all()
    straight_model = _model()
    _Trainer(straight_model, data, _settings(steps=4)).run_all()
    for key, value in straight_model.nets.state_dict().items():
        assert torch.equal(value, resumed.model.nets.state_dict()[key]), key
