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


def test_a_learning_rate_set_on_resume_is_the_one_used(tmp_path):
    """Regression: the saved optimizer state used to bring back the run's old learning rates."""
    data = _model().family.prepare_data(_data(), _model().config)
    path = str(tmp_path / "run.safetensors")
    Trainer(_model(), data, _settings(steps=2, output=path)).run_all()
    kept = Trainer.resume(path, data, _settings(steps=4, output=path), device="cpu")
    old = {name: [g["lr"] for g in opt.param_groups] for name, opt in kept.optimizers.items()}
    changed = Trainer.resume(path, data, _settings(steps=4, output=path, hparams={"lr_g": 1e-5, "lr_d": 2e-5}),
                             device="cpu")
    new = {name: [g["lr"] for g in opt.param_groups] for name, opt in changed.optimizers.items()}
    assert old != new and sorted(lr for lrs in new.values() for lr in lrs) == [1e-5, 2e-5]
    assert changed.optimizers["generator"].state  # the moments still come from the file


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


# -- exponential moving average of the generator (issue: video models) ------------------------------------

def _ema_settings(**kw):
    settings = _settings(**kw)
    settings.hparams = {**settings.hparams, "ema_decay": 0.9}
    return settings


def test_ema_is_off_unless_asked_and_the_card_says_which_weights_are_saved(tmp_path):
    from napari_biogan.core import checkpoint

    data = _model().family.prepare_data(_data(), _model().config)
    Trainer(_model(), data, _settings(output=str(tmp_path / "plain.safetensors"))).run_all()
    tensors, card, _ = checkpoint.read_model_file(tmp_path / "plain.safetensors")
    assert not any(k.startswith("raw.") for k in tensors) and card["training"]["weights"] == "as trained"

    model = _model()
    trainer = Trainer(model, data, _ema_settings(output=str(tmp_path / "ema.safetensors")))
    raw_seen = {}
    for event in trainer.run():
        if event.kind == "step" and event.step == 4:
            raw_seen = {k: v.clone() for k, v in model.nets.state_dict().items()}
    tensors, card, _ = checkpoint.read_model_file(tmp_path / "ema.safetensors")
    # true of every file saved from these nets, the generator-only ones too (no claim about raw.* tensors)
    # (at step 4 the warm-up holds the decay at 5/14: a window of 1 / (1 - 5/14), about 2 steps)
    assert card["training"]["weights"] == "exponential moving average of generator (decay 0.9: about the last 2 steps)"
    generator_keys = [k for k in raw_seen if k.startswith("generator.") and raw_seen[k].is_floating_point()]
    # the file: the average in net.*, the raw training weights beside it in raw.*; critics as trained
    assert all(torch.equal(tensors[f"raw.{k}"], raw_seen[k]) for k in generator_keys)
    assert any(not torch.equal(tensors[f"net.{k}"], raw_seen[k]) for k in generator_keys)
    assert not any(k.startswith("raw.critic") for k in tensors)
    # after the run, the model in memory runs what the file holds
    assert all(torch.equal(model.nets.state_dict()[k], tensors[f"net.{k}"]) for k in generator_keys)


def test_ema_average_follows_its_formula():
    from napari_biogan.core.training import WeightAverage

    net = torch.nn.ModuleDict({"generator": torch.nn.Linear(2, 2), "critic": torch.nn.Linear(2, 1)})
    average = WeightAverage(net, ("generator",), decay=0.99)
    start = net["generator"].weight.detach().clone()
    with torch.no_grad():
        net["generator"].weight.add_(1.0)
    average.update(net, step=1)  # warm-up: d = min(0.99, 2 / 11)
    d = 2 / 11
    assert torch.allclose(average.average["generator.weight"], d * start + (1 - d) * (start + 1))
    assert set(average.average) == {"generator.weight", "generator.bias"}
    with average.swapped_in(net):
        assert torch.equal(net["generator"].weight, average.average["generator.weight"])
    assert torch.equal(net["generator"].weight, start + 1)  # raw weights back


def test_ema_resume_matches_an_uninterrupted_run_bit_for_bit(tmp_path):
    data = _model().family.prepare_data(_data(), _model().config)
    full = _model()
    Trainer(full, data, _ema_settings(steps=6, output=str(tmp_path / "full.safetensors"))).run_all()
    part = _model()
    trainer = Trainer(part, data, _ema_settings(steps=6, output=str(tmp_path / "part.safetensors")))
    for event in trainer.run():
        if event.step == 3:
            trainer.stop()
    resumed = Trainer.resume(str(tmp_path / "part.safetensors"), data,
                             _settings(steps=6, output=str(tmp_path / "part.safetensors")), device="cpu")
    assert resumed.ema is not None and resumed.ema.decay == 0.9  # the run's own setting comes back
    resumed.run_all()
    from napari_biogan.core import checkpoint

    a, _, _ = checkpoint.read_model_file(tmp_path / "full.safetensors")
    b, _, _ = checkpoint.read_model_file(tmp_path / "part.safetensors")
    for key in a:
        if key.startswith(("net.", "raw.")):
            assert torch.equal(a[key], b[key]), key


def test_ema_decay_out_of_range_is_one_sentence():
    from napari_biogan.core.registry import get_family
    from napari_biogan.core.settings import check_hparams

    with pytest.raises(DataError, match="'ema_decay' is from 0"):
        check_hparams(get_family("savgan"), {"ema_decay": 1.0})
    assert check_hparams(get_family("dcgan2d"), {"ema_decay": 0.999}) == {"ema_decay": 0.999}
