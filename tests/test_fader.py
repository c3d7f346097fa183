"""The Fader family through the contract: encode once, sliders re-decode, signed difference, attribute kinds
(codes, losses, flips), training through the one Trainer, attribute metrics and the evaluation classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_biogan.core.contract import Point
from napari_biogan.core.errors import DataError, OutputExistsError
from napari_biogan.core.model import Model
from napari_biogan.core.training import TrainSettings, setup_training
from napari_biogan.data.attributes import parse_specs
from napari_biogan.families.fader_nets import (attribute_code, attribute_loss, flip_attributes, predict_attributes,
                                               random_attributes)
from real_data import shared_data

torch.set_num_threads(1)
TINY = dict(size=16, depth=2, base_width=4, max_width=8, hidden=8, estimator_width=4)
MIXED = ("dx:ordered:CN|MCI|AD", "sex:binary:m|f", "age:continuous:20|90", "site:categorical:A|B|C")


def slices(n: int = 6, size: int = 20, seed: int = 0) -> np.ndarray:
    """Raw 'slices': a bright disc whose dark core grows with the index (ventricles), in 0..255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        out[i] = 200.0 * (r < size * 0.4) - 150.0 * (r < 1 + i % 4) + rng.normal(0, 3, (size, size))
    return out.clip(0, 255)


def tiny_model(**overrides) -> Model:
    torch.manual_seed(0)
    return Model.new("fader", **{**TINY, **overrides})


# -- the contract ------------------------------------------------------------------------------------------

def test_controls_come_from_the_declared_attributes():
    model = tiny_model(attributes=MIXED)
    controls = {c.name: c for c in model.controls}
    assert (controls["dx"].kind, controls["dx"].minimum, controls["dx"].maximum) == ("attribute", -1.0, 3.0)
    assert controls["dx"].choices == ("CN", "MCI", "AD") and not controls["dx"].is_choice  # a slider, interpolated
    assert (controls["sex"].minimum, controls["sex"].maximum) == (-9.0, 10.0)  # beyond 0..1, as Fader's demo
    assert (controls["age"].minimum, controls["age"].maximum, controls["age"].default) == (-50.0, 160.0, 55.0)
    assert controls["site"].kind == "class" and controls["site"].choices == ("A", "B", "C")
    assert [o.kind for o in model.outputs] == ["image", "signed"]
    assert {i.name: (i.train, i.run) for i in model.inputs} == {"image": (True, True), "attributes": (True, False)}


def test_a_slice_is_encoded_once_and_sliders_only_decode(monkeypatch):
    model = tiny_model()
    raw = slices(2, size=24)[:, 2:22]  # 20 x 24 slices: outputs come back at the source's size
    state = model.encode({"image": raw})
    assert set(state) == {"features", "original", "size"} and state["features"].shape[0] == 2
    calls = []
    encode = model.family.encode
    monkeypatch.setattr(model.family, "encode", lambda *a, **k: calls.append(1) or encode(*a, **k))
    outputs = [model.run(Point(state, {"diagnosis": v}), precision="fp32") for v in (0.0, 1.5, 3.0, 6.0)]
    assert not calls  # moving a slider never re-encodes
    for out in outputs:
        assert out["image"].shape == (2, 1, 20, 24) and out["difference"].shape == (2, 1, 20, 24)
        assert 0 <= out["image"].min() and out["image"].max() <= 1
    assert not np.allclose(outputs[0]["image"], outputs[2]["image"])  # the slider changes the slice
    assert not np.allclose(outputs[2]["image"], outputs[3]["image"])  # beyond the last class it extrapolates
    # difference = edited - reconstruction with the slice's own (estimated) attributes, signed, never clamped
    own = state["original"][:, 0].tolist()
    at_own = model.run(Point(state, {"diagnosis": own}), precision="fp32")
    assert np.allclose(at_own["difference"], 0, atol=1e-6)
    far = outputs[3]["difference"]
    assert far.dtype == np.float32 and far.min() < 0 and np.abs(far).max() > 0.01  # signed, not an image in 0..1


def test_ordered_classes_interpolate_between_one_hot_codes_and_extrapolate_beyond():
    (dx,) = parse_specs(["dx:ordered:CN|MCI|AD|Severe"])
    code = attribute_code([dx], torch.tensor([[0.0], [1.5], [3.0], [-1.0], [4.0]]))
    assert torch.allclose(code[0], torch.tensor([1.0, 0, 0, 0]))
    assert torch.allclose(code[1], torch.tensor([0, 0.5, 0.5, 0]))
    assert torch.allclose(code[2], torch.tensor([0, 0, 0, 1.0]))
    assert torch.allclose(code[3], torch.tensor([2.0, -1, 0, 0]))  # one class before the first
    assert torch.allclose(code[4], torch.tensor([0, 0, -1.0, 2]))  # one class after the last
    sex, age = parse_specs(["sex:binary", "age:continuous:20|90"])
    assert torch.allclose(attribute_code([sex, age], torch.tensor([[-9.0, 55.0]])), torch.tensor([[10.0, -9.0, 0.0]]))


def test_keyframes_on_attribute_values_render_a_progression():
    from napari_biogan.core.latent import point_path

    model = tiny_model()
    state = model.encode({"image": slices(1)})
    keys = [Point(state, {"diagnosis": 0.0}), Point(state, {"diagnosis": 3.0}), Point(state, {"diagnosis": 0.0})]
    path = point_path(keys, 4, choices=[c.name for c in model.controls if c.is_choice])
    assert path.controls["diagnosis"] == [0.0, 0.75, 1.5, 2.25, 3.0, 2.25, 1.5, 0.75, 0.0]
    frames = model.run(path, precision="fp32")
    assert frames["image"].shape[0] == 9
    assert np.allclose(frames["image"][0], frames["image"][-1])  # there and back


# -- attribute kinds: losses and flips ---------------------------------------------------------------------

def test_each_kind_has_its_loss_and_its_flip():
    specs = parse_specs(MIXED)
    g = torch.Generator().manual_seed(0)
    values = random_attributes(specs, 400, g)
    flipped = flip_attributes(specs, values, g)
    dx, sex, age, site = (values[:, j] for j in range(4))
    assert torch.all(flipped[:, 1] == 1 - sex)  # binary: 1 - y
    for j, k in ((0, 3), (3, 3)):  # categorical: always another class, every other class drawn
        assert torch.all(flipped[:, j] != values[:, j]) and set(flipped[:, j].tolist()) == set(range(k))
    assert 20 <= flipped[:, 2].min() and flipped[:, 2].max() <= 90  # continuous: a draw in range,
    assert abs(float(flipped[:, 2].mean() - age.mean())) < 5  # from the batch's distribution
    assert abs(float(flipped[:, 2].std() - age.std())) < 5
    # a head that predicts the values exactly has a small loss; predictions invert it
    head = torch.cat([torch.nn.functional.one_hot(dx.long(), 3) * 20.0, torch.nn.functional.one_hot(sex.long(), 2) * 20.0,
                      ((age - 20) / 70 * 2 - 1)[:, None], torch.nn.functional.one_hot(site.long(), 3) * 20.0], 1)
    assert float(attribute_loss(specs, head, values)) < 1e-6
    assert torch.allclose(predict_attributes(specs, head), values, atol=1e-4)
    assert float(attribute_loss(specs, head, flipped)) > 10


def test_rare_classes_weigh_more_in_the_losses():
    from napari_biogan.families.fader import class_weights
    from napari_biogan.families.fader_nets import weighted_mean

    specs = parse_specs(["age:continuous:20|90", "dx:ordered:CN|MCI|AD"])
    values = np.stack([np.full(100, 50.0), np.r_[np.zeros(90), np.ones(9), [2]]], 1)
    weights = class_weights(specs, values, 0.05)
    assert weights[0] == 1 and weights[95] == 1 and weights[99] == pytest.approx(5.0)  # 1% -> as if 5%
    assert float(weighted_mean(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 3.0]))) == pytest.approx(2.5)


def test_training_ramps_lambda_and_runs_through_the_one_trainer(tmp_path):
    import tifffile

    folder = tmp_path / "slices"  # a folder of TIFF slices and a CSV keyed by file: what a user has
    folder.mkdir()
    rows = ["file,dx,age"]
    for i, image in enumerate(slices(8)):
        tifffile.imwrite(folder / f"s{i}.tif", image.astype(np.uint8))
        rows.append(f"s{i},{['CN', 'MCI', 'AD'][i % 3]},{30 + 5 * i}")
    (tmp_path / "attributes.csv").write_text("\n".join(rows) + "\n")
    settings = TrainSettings(steps=6, output=str(tmp_path / "f.safetensors"), preview_every=6, checkpoint_every=3,
                             hparams={"batch_size": 4, "lambda_schedule": 4, "lambda_latent": 0.1})
    trainer = setup_training("fader", {"image": str(folder), "attributes": str(tmp_path / "attributes.csv")},
                             settings, config_overrides={**TINY, "attributes": ("dx:ordered:CN|MCI|AD",
                                                                                 "age:continuous:20|90")})
    assert "dx: CN 3, MCI 3, AD 2" in trainer.data.description
    events = [e for e in trainer.run_all() if e.kind == "step"]
    assert [round(e.losses["lambda_latent"], 3) for e in events] == [0.0, 0.025, 0.05, 0.075, 0.1, 0.1]
    assert {"reconstruction", "latent_discriminator", "classifier_swap", "estimator"} <= set(events[0].losses)
    loaded = Model.load(tmp_path / "f.safetensors", device="cpu")
    assert [c.name for c in loaded.controls] == ["dx", "age"]


def test_real_posteriors_average_how_real_slices_are_read_and_stop_rewarding_overshoot():
    from napari_biogan.families.fader_nets import RealPosteriors

    specs = parse_specs(["dx:ordered:CN|MCI|AD", "age:continuous:20|90"])
    posteriors = RealPosteriors(specs, rate=0.5)
    read = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])  # how the classifier reads CN and MCI slices
    values = torch.tensor([[0.0, 50.0], [0.0, 60.0], [1.0, 40.0]])
    posteriors.update(specs, torch.cat([read[[0, 0, 1]].log(), torch.zeros(3, 1)], 1), values)
    assert torch.allclose(posteriors.mean_0, torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.0, 0.0, 1.0]]))
    posteriors.update(specs, torch.tensor([[0.0, 0.0, 0.0, 0.0]]), torch.tensor([[0.0, 50.0]]))  # uniform read
    assert torch.allclose(posteriors.mean_0[0], 0.5 * read[0] + 0.5 / 3)  # then a running mean (rate 0.5)
    assert posteriors.seen_0.tolist() == [3.0, 1.0, 0.0]  # AD never seen: its target stays one-hot
    assert posteriors.confidence() == pytest.approx((0.5 * 0.7 + 0.5 / 3 + 0.6) / 2)
    wanted = torch.tensor([[1.0, 30.0]])
    soft = posteriors.targets(specs, wanted)
    assert soft[1] is None and torch.allclose(soft[0], read[1:2])
    # the one-hot target keeps rewarding a surer read; the real one is lowest at the real slices' read
    matching, surer = read[1:2].log(), torch.tensor([[-9.0, 9.0, -9.0]])
    age = torch.tensor([[-(2 / 7)]])  # the head's age: exactly 30 on the [-1, 1] scale

    def loss(head, soft_targets):
        return float(attribute_loss(specs, torch.cat([head, age], 1), wanted, soft=soft_targets))

    assert loss(surer, None) < loss(matching, None)
    assert loss(matching, soft) < loss(surer, soft)


@pytest.mark.parametrize("extra, net", [({"patch_width": 4}, "patch_discriminator"),
                                        ({"classifier_target": "real"}, "real_posteriors")])
def test_training_only_nets_train_resume_exactly_and_are_left_out_of_the_shipped_file(tmp_path, extra, net):
    data = {"image": slices(8), "attributes": np.arange(8) % 4}
    config = {**TINY, **extra}
    hparams = {"batch_size": 4, "lambda_patch": 0.5, "lambda_schedule": 2}

    def settings(steps, name):
        return TrainSettings(steps=steps, seed=3, output=str(tmp_path / name), checkpoint_every=2,
                             preview_every=100, hparams=hparams)

    straight = setup_training("fader", data, settings(4, "a.safetensors"), config_overrides=config)
    losses = [e.losses for e in straight.run_all() if e.kind == "step"]
    if net == "patch_discriminator":
        assert {"patch_fooling", "patch_discriminator"} <= set(losses[0])
    first = setup_training("fader", data, settings(2, "b.safetensors"), config_overrides=config)
    list(first.run_all())
    resumed = setup_training("fader", data, settings(4, "b.safetensors"), config_overrides=config,
                             resume=str(tmp_path / "b.safetensors"))
    assert [e.losses for e in resumed.run_all() if e.kind == "step"] == losses[2:]
    model = Model.load(tmp_path / "a.safetensors", device="cpu")
    assert net in model.nets
    if net == "real_posteriors":  # learnt from the real slices, not left at the one-hot start
        assert model.nets[net].seen_0.sum() == 4 * 4 and not torch.equal(model.nets[net].mean_0, torch.eye(4))
    model.save(tmp_path / "shipped.safetensors", include=model.family.inference_nets)
    shipped = Model.load(tmp_path / "shipped.safetensors", device="cpu")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "shipped.safetensors"), "pt") as handle:
        assert not [k for k in handle.keys() if net in k or "latent_discriminator" in k]
    assert all(getattr(shipped.config, key) == value for key, value in extra.items())
    out = shipped.family.decode(shipped.nets, shipped.config,
                                shipped.family.encode(shipped.nets, shipped.config,
                                                      {"image": model.family.prepare_source(
                                                          model.config, {"image": slices(2)})["image"]}),
                                {"diagnosis": 2.0})
    assert out["image"].shape[-2:] == (16, 16)


def test_sharpness_is_one_for_the_input_and_falls_with_blur():
    from napari_biogan.families.fader_nets import blur
    from napari_biogan.metrics.attributes import sharpness

    images = torch.from_numpy(slices(4, size=32))[:, None] / 127.5 - 1
    assert sharpness(images, images) == pytest.approx(1.0)
    blurred = [sharpness(blur(images, sigma), images) for sigma in (0.5, 1.0, 2.0)]
    assert 1 > blurred[0] > blurred[1] > blurred[2] > 0
    assert sharpness(images + torch.randn(images.shape, generator=torch.Generator().manual_seed(0)) * 0.2,
                     images) > 1  # noise is not detail, and the score says so by going above 1


def test_edit_identity_keeps_a_faithful_edit_and_catches_a_class_template():
    from napari_biogan.metrics.attributes import identity_retrieval

    images = torch.from_numpy(slices(8, size=32))[:, None] / 127.5 - 1
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    assert identity_retrieval(images + 0.1 * noise + 0.3, images) == 1.0  # brighter, noisier: still itself
    template = images.mean(0, keepdim=True).expand_as(images) + 0.01 * noise  # the input ignored
    assert identity_retrieval(template, images) <= 0.25


def test_central_csf_counts_dark_pixels_in_the_central_half_only():
    from napari_biogan.metrics.attributes import central_csf_fraction

    images = torch.ones(3, 1, 32, 32)
    images[1, 0, 12:20, 12:20] = -1  # an 8x8 "ventricle" in the 16x16 centre
    images[2, 0, :4, :] = -1  # dark background at the top edge: outside the centre, not counted
    assert central_csf_fraction(images).tolist() == [0.0, 0.25, 0.0]


@pytest.mark.parametrize("attributes, message", [
    ({"diagnosis": ["NonDemented", "Oops", "MildDemented"]}, "'Oops', which is not one of the declared classes"),
    ({"diagnosis": ["NonDemented", 2, "x"]}, "mixes numbers and text"),
    ({"dx": [0, 1, 2]}, "no column 'diagnosis'; they have dx"),
    ({"diagnosis": [0, 1]}, "2 rows for 3 slices"),
    (np.zeros((3, 2)), "1 attribute value"),
])
def test_bad_attributes_are_one_sentence(attributes, message):
    family = Model.new("fader", **TINY).family
    config = family.default_config(**TINY)
    with pytest.raises(DataError, match=message):
        family.prepare_data({"image": slices(3), "attributes": attributes}, config)


def test_bad_configs_are_one_sentence():
    from napari_biogan.core.settings import make_config, parse_assignments

    family = Model.new("fader", **TINY).family
    with pytest.raises(DataError, match="name:kind"):
        make_config(family, {"attributes": ("diagnosis",)})
    with pytest.raises(DataError, match="power of two"):
        make_config(family, {"size": 100})
    with pytest.raises(DataError, match="classifier_target is one of class, real"):
        make_config(family, {"classifier_target": "soft"})
    # the CLI's text: two attributes separated by a comma, class lists by '|'
    values = parse_assignments(["attributes=dx:ordered:CN|MCI|AD,age:continuous:20|90"])
    assert make_config(family, values).attributes == ("dx:ordered:CN|MCI|AD", "age:continuous:20|90")


# -- evaluation -------------------------------------------------------------------------------------------

def test_attribute_metrics_and_the_evaluation_classifier(tmp_path):
    from napari_biogan.core import checkpoint
    from napari_biogan.core.zoo import _model_info
    from napari_biogan.metrics.attributes import (evaluate_fader, load_attribute_classifier,
                                                  save_attribute_classifier, train_attribute_classifier)
    from napari_biogan.metrics import write_metrics_csv

    model = tiny_model(attributes=("dx:ordered:CN|MCI|AD", "age:continuous:20|90"))
    real = model.family.prepare_data({"image": slices(9), "attributes": {"dx": np.arange(9) % 3,
                                                                          "age": 20 + 7.0 * np.arange(9)}},
                                     model.config)
    classifier = train_attribute_classifier(real["image"].source.numpy(), real["attributes"].source.numpy(),
                                            model.config.specs, steps=3, batch_size=4, width=4)
    path = save_attribute_classifier(classifier, tmp_path / "clf.safetensors", {"name": "clf"})
    assert _model_info(path, True) is None  # not a generator: the model list skips it
    assert "family" not in checkpoint.read_card(path)
    loaded = load_attribute_classifier(path)
    assert np.array_equal(loaded.predict(real["image"].source), classifier.predict(real["image"].source)) or \
        loaded.card["weights_dtype"] == "float16"
    metrics = evaluate_fader(model, real, n=6, seed=0, classifier=loaded, grid=3)
    for name in ("CN", "MCI", "AD"):
        assert 0 <= metrics[f"swap_accuracy_dx_{name}"] <= 1
    assert 0 < metrics["reconstruction_sharpness"] < 10 and 0 <= metrics["edit_identity"] <= 1
    for name in ("CN", "MCI", "AD"):  # ventricle-size proxy of edits to each class, beside real slices of it
        assert 0 <= metrics[f"central_csf_dx_{name}"] <= 1
    assert {"central_csf_dx_CN_real", "central_csf_dx_MCI_real"} <= set(metrics)
    age_only = train_attribute_classifier(real["image"].source.numpy(), real["attributes"].source.numpy()[:, 1:],
                                          model.config.specs[1:], steps=1, batch_size=4, width=4)
    unread = evaluate_fader(model, real, n=6, seed=0, classifier=age_only, grid=3)
    assert "swap_accuracy_dx" not in unread and "error_age" in unread  # dx is not read by this classifier,
    assert 0 <= unread["central_csf_dx_AD"] <= 1  # but its ventricle check needs none
    assert {"reconstruction_mse", "swap_accuracy_dx", "swap_accuracy_dx_real", "error_age", "monotonic_age"} <= \
        set(metrics)
    csv_path = write_metrics_csv(tmp_path / "m.csv", metrics, {"model": "tiny"})
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "metric,label,value,real,meaning,model"
    assert any(line.startswith("swap_accuracy_dx,Swap accuracy (dx),") for line in lines)
    with pytest.raises(OutputExistsError):
        write_metrics_csv(csv_path, metrics)
    with pytest.raises(DataError, match="No evaluation classifier"):
        load_attribute_classifier(tmp_path / "none.safetensors")


def test_the_response_is_the_slope_of_the_read_value_against_the_slider():
    from napari_biogan.metrics.attributes import response_slopes

    requested = np.linspace(0, 1, 5)
    predictions = np.stack([requested, np.full(5, 0.4), 0.1 + 0.5 * requested, requested[::-1]])
    # follows, does not move (which monotonicity alone would pass), half-way, backwards
    np.testing.assert_allclose(response_slopes(predictions, requested), [1.0, 0.0, 0.5, -1.0], atol=1e-12)


def test_a_model_card_names_its_evaluation_classifier_in_the_zoo(tmp_path, monkeypatch):
    from napari_biogan.metrics import attributes
    from napari_biogan.metrics.attributes import (evaluate_fader, evaluation_classifier_for,
                                                  save_attribute_classifier, train_attribute_classifier)

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    monkeypatch.setattr(attributes, "CLASSIFIER_FILE", zoo / "default-classifier.safetensors")
    model = tiny_model(attributes=("position:continuous:0|1",))
    real = model.family.prepare_data({"image": slices(6), "attributes": {"position": np.linspace(0, 1, 6)}},
                                     model.config)
    regressor = train_attribute_classifier(real["image"].source.numpy(), real["attributes"].source.numpy(),
                                           model.config.specs, steps=1, batch_size=4, width=4)
    save_attribute_classifier(regressor, zoo / "position-regressor.safetensors", {"name": "position-regressor"})
    with pytest.raises(DataError, match="default-classifier"):  # no name in the card: the shipped default
        evaluation_classifier_for(model)
    model.card["evaluation_classifier"] = "position-regressor"
    assert evaluation_classifier_for(model).card["name"] == "position-regressor"
    metrics = evaluate_fader(model, real, n=6, seed=0, grid=3)  # the card's regressor reads the position
    assert 0 <= metrics["error_position"] and 0 <= metrics["monotonic_position"] <= 1
    assert np.isfinite(metrics["response_position"])
    # a card names a file in the zoo, never a path elsewhere
    save_attribute_classifier(regressor, tmp_path / "outside.safetensors", {"name": "outside"})
    model.card["evaluation_classifier"] = "../outside.safetensors"
    with pytest.raises(DataError, match="No evaluation classifier"):
        evaluation_classifier_for(model)


# -- the shipped model (skipped until it is built; real slices skipped without ../shared/data) ---------------

def test_the_shipped_model_moves_a_real_held_out_slice():
    from napari_biogan.core.zoo import ZOO_DIR

    path = ZOO_DIR / "mri-fader.safetensors"
    if not path.exists():
        pytest.skip("zoo/mri-fader.safetensors is not built (scripts/build_zoo_fader.py)")
    from PIL import Image

    model = Model.load(path, device="cpu")
    assert model.card["licence"].startswith("weights trained on data under ODbL")
    assert {"swap_accuracy_diagnosis", "reconstruction_mse"} <= set(model.card["metrics"])
    image = np.array(Image.open(shared_data("alzheimer_mri_4class", "test", "NonDemented", "26 (62).jpg")))
    state = model.encode({"image": image})
    healthy = model.run(Point(state, {"diagnosis": 0.0}), precision="fp32")
    moderate = model.run(Point(state, {"diagnosis": 3.0}), precision="fp32")
    assert healthy["image"].shape == (1, 1, *image.shape)
    assert np.abs(healthy["difference"]).mean() < np.abs(moderate["difference"]).mean()

    # its reconstruction keeps the fine detail: the first model (a 4x4 latent map, no patch critic) gave 0.75
    from napari_biogan.metrics.attributes import sharpness

    scaled = model.family.prepare_source(model.config, {"image": image})["image"]
    with torch.inference_mode():
        state = model.family.encode(model.nets, model.config, {"image": scaled})
        rebuilt = model.family.decode(model.nets, model.config, state, {"diagnosis": 0.0})["image"]
    assert sharpness(rebuilt, scaled) > 0.8
    assert float(((rebuilt - scaled) / 2).pow(2).mean()) < 0.005


def test_the_shipped_model_gives_the_same_pixels():
    from napari_biogan.core.zoo import ZOO_DIR

    path = ZOO_DIR / "mri-fader.safetensors"
    if not path.exists():
        pytest.skip("zoo/mri-fader.safetensors is not built (scripts/build_zoo_fader.py)")
    model = Model.load(path, device="cpu")
    # mean pixel of a synthetic slice at diagnosis 0 and 3, measured when the model was shipped
    for value, mean in ((0.0, 0.4269210), (3.0, 0.4107488)):
        out = model.run({"image": slices(1, size=40)}, controls={"diagnosis": value}, precision="fp32")
        assert abs(float(out["image"].astype(np.float64).mean()) - mean) < 2e-5


# -- sample data: a real held-out slice for the sliders on first run -------------------------------------------

def test_the_mri_slice_sample_is_a_held_out_slice_the_shipped_model_moves():
    from napari_biogan import sample_data
    from napari_biogan.core.zoo import ZOO_DIR

    held_out = shared_data("alzheimer_mri_4class", "test", "NonDemented", "26 (62).jpg")
    (image, meta, kind), = sample_data.mri_slice()
    assert kind == "image" and image.shape == (208, 176) and image.dtype == np.float32
    assert "held out" in meta["name"] and "ODbL" in meta["metadata"]["source"]
    from PIL import Image

    np.testing.assert_array_equal(image, np.asarray(Image.open(held_out), dtype=np.float32))  # the test split's
    path = ZOO_DIR / "mri-fader.safetensors"
    if not path.exists():
        pytest.skip("zoo/mri-fader.safetensors is not built (scripts/build_zoo_fader.py)")
    model = Model.load(path, device="cpu")
    state = model.encode({"image": image})  # as Explore does with the layer: encoded once
    moderate = model.run(Point(state, {"diagnosis": 3.0}), precision="fp32")
    assert moderate["image"].shape == (1, 1, 208, 176) and np.abs(moderate["difference"]).mean() > 0


def test_the_mri_slice_sample_without_the_data_is_one_sentence(monkeypatch, tmp_path):
    from napari_biogan import sample_data

    monkeypatch.setenv("NAPARI_BIOGAN_DATA", str(tmp_path))
    with pytest.raises(DataError, match="The MRI slice needs the public data set 'alzheimer_mri_4class'"):
        sample_data.mri_slice()
    (tmp_path / "alzheimer_mri_4class" / "test").mkdir(parents=True)
    with pytest.raises(DataError, match=r"The MRI slice sample needs .*26 \(62\).jpg, which is not there"):
        sample_data.mri_slice()


def test_the_mri_slice_sample_is_in_the_manifest():
    import importlib.resources

    import yaml

    from napari_biogan import sample_data

    manifest = yaml.safe_load((importlib.resources.files("napari_biogan") / "napari.yaml").read_text())
    commands = {c["id"]: c for c in manifest["contributions"]["commands"]}
    entry = next(s for s in manifest["contributions"]["sample_data"] if s["key"] == "mri-slice")
    assert entry["display_name"] == "MRI slice (held-out, dementia set)"
    module, function = commands[entry["command"]]["python_name"].split(":")
    assert module == "napari_biogan.sample_data" and getattr(sample_data, function) is sample_data.mri_slice


def test_the_ixi_slice_sample_is_a_held_out_subjects_mid_brain_slice(monkeypatch, tmp_path):
    import importlib.resources

    import yaml

    from napari_biogan import sample_data
    from napari_biogan.data.mri import IXI_HELD_OUT

    manifest = yaml.safe_load((importlib.resources.files("napari_biogan") / "napari.yaml").read_text())
    commands = {c["id"]: c for c in manifest["contributions"]["commands"]}
    entry = next(s for s in manifest["contributions"]["sample_data"] if s["key"] == "ixi-slice")
    module, function = commands[entry["command"]]["python_name"].split(":")
    assert getattr(sample_data, function) is sample_data.ixi_slice
    monkeypatch.setenv("NAPARI_BIOGAN_DATA", str(tmp_path))
    with pytest.raises(DataError, match="The IXI slice needs the public data set 'ixi_t1_brain'"):
        sample_data.ixi_slice()
    (tmp_path / "ixi_t1_brain" / "skullstripped").mkdir(parents=True)
    with pytest.raises(DataError, match="The IXI slice sample needs .*IXI057-\\*.nii.gz, which is not there"):
        sample_data.ixi_slice()
    monkeypatch.delenv("NAPARI_BIOGAN_DATA")
    shared_data("ixi_t1_brain", "skullstripped")  # the real volume: skipped without ../shared/data
    (image, meta, kind), = sample_data.ixi_slice()
    assert kind == "image" and image.ndim == 2 and image.dtype == np.float32 and image.std() > 0
    assert IXI_HELD_OUT[0] in meta["name"] and "held out" in meta["name"]
    assert "CC BY-SA" in meta["metadata"]["source"] and "(position 0.5" in meta["metadata"]["source"]


def test_the_shipped_ixi_model_moves_a_held_out_slice_up_and_down_the_brain():
    from napari_biogan import sample_data
    from napari_biogan.core.zoo import ZOO_DIR
    from napari_biogan.metrics.attributes import evaluation_classifier_for

    path = ZOO_DIR / "ixi-fader.safetensors"
    if not path.exists():
        pytest.skip("zoo/ixi-fader.safetensors is not built (scripts/build_zoo_fader.py --dataset ixi)")
    model = Model.load(path, device="cpu")
    assert model.card["licence"] == "weights trained on data under CC BY-SA 3.0 (IXI data set)"
    regressor = evaluation_classifier_for(model)  # the card names it; it is shipped beside the model
    assert regressor.card["name"] == "ixi-position-regressor"
    assert {"error_position", "response_position", "reconstruction_mse"} <= set(model.card["metrics"])
    shared_data("ixi_t1_brain", "skullstripped")
    (image, _, _), = sample_data.ixi_slice()  # a held-out subject, mid-brain
    scaled = model.family.prepare_source(model.config, {"image": image})["image"]
    with torch.inference_mode():
        state = model.family.encode(model.nets, model.config, {"image": scaled})
        edits = [model.family.decode(model.nets, model.config, state, {"position": v})["image"] for v in (0.2, 0.5, 0.8)]
    read = [float(regressor.predict(edit)[0, 0]) for edit in edits]
    assert read[0] < read[1] < read[2] and read[2] - read[0] > 0.3  # the regressor sees the slice move
    # mean pixel of a synthetic slice at positions 0.2 and 0.8, measured when the model was shipped
    for value, mean in ((0.2, 0.3335495), (0.8, 0.4774763)):
        out = model.run({"image": slices(1, size=40)}, controls={"position": value}, precision="fp32")
        assert abs(float(out["image"].astype(np.float64).mean()) - mean) < 2e-5
