"""Explore written once against the model contract: an image-driven family, a seeded one, keyframe lists."""

import numpy as np
import pytest
import torch
from napari.layers import Labels

from napari_biogan._qt.explore_widget import ExploreWidget
from napari_biogan._qt.session import session_for
from napari_biogan.core.export import PROVENANCE_KEY
from napari_biogan.core.model import Model
from toy_family import toy_pairs


def _settled(qtbot, widget, timeout=10000):
    qtbot.waitUntil(lambda: not widget.busy and widget.applied_id == widget.renderer.last_id, timeout=timeout)


def _explore(make_napari_viewer, model, before=None):
    viewer = make_napari_viewer()
    if before is not None:
        before(viewer)
    session_for(viewer).set_model(model)
    widget = ExploreWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def _tiny_gan():
    return Model.new("dcgan2d", height=16, width=16, latent_dim=8, base_width=8)


def _control(widget, name):
    return next(w for w in widget.control_widgets if w.control.name == name)


def test_an_image_family_encodes_its_source_once_and_renders_every_output(make_napari_viewer, qtbot):
    images, _ = toy_pairs(4, 16)
    model = Model.new("toy-seg")
    encoded = []
    encode = model.encode
    model.encode = lambda *args, **kwargs: (encoded.append(1), encode(*args, **kwargs))[1]
    viewer, widget = _explore(make_napari_viewer, model, lambda v: v.add_image(images, name="toy"))
    # no latent: the source is an image layer, and there are no GANSpace directions or fitting
    assert widget.source_kind() == "layer" and widget.source_combo.count() == 1
    assert widget.direction_box.isHidden() and not widget.direction_sliders and widget.fit_button.isHidden()
    assert widget.apply_button.isHidden()
    widget.layer_picker.setCurrentText("toy")
    qtbot.waitUntil(lambda: "explore edited" in viewer.layers, timeout=10000)
    _settled(qtbot, widget)
    edited, change = viewer.layers["explore edited"], viewer.layers["explore change"]
    assert isinstance(viewer.layers["explore labels"], Labels) and edited.data.shape == (16, 16)
    low, high = change.contrast_limits
    assert low == -high and high > 0
    assert len(encoded) == 1
    index = widget.current_point().origin["index"]
    expected = model.run({"image": images[index[0]][None]}, precision="fp32")  # encodes (counted) too
    np.testing.assert_allclose(edited.data, expected["edited"][0, 0], atol=1e-6)
    encoded.clear()

    before = edited.data.copy()
    _control(widget, "gain").setValue(1.5)
    _settled(qtbot, widget)
    after_gain = edited.data.copy()
    assert not np.array_equal(after_gain, before)
    _control(widget, "style").setValue(1)
    _settled(qtbot, widget)
    assert not np.array_equal(edited.data, after_gain)
    point = widget.current_point()
    assert point.controls == {"style": 1, "gain": pytest.approx(1.5)}
    np.testing.assert_allclose(edited.data, model.run(point, precision="fp32")["edited"][0, 0], atol=1e-6)
    assert not encoded  # sliders re-decode the cached state
    prov = edited.metadata[PROVENANCE_KEY]
    assert prov["family"] == "toy-seg" and prov["point"]["origin"]["layer"] == "toy"

    # another sample of the layer is encoded once too; coming back uses the cache
    other = (index[0] + 1) % len(images)
    viewer.dims.set_current_step(0, other)
    qtbot.waitUntil(lambda: widget.current_point() is not None
                    and widget.current_point().origin["index"] == [other], timeout=5000)
    _settled(qtbot, widget)
    viewer.dims.set_current_step(0, index[0])
    _settled(qtbot, widget)
    assert len(encoded) == 1 and widget.current_point().origin["index"] == index

    # keyframes: state + control values + origin, shown with their source and values
    widget.add_key_button.click()
    _control(widget, "style").setValue(0)
    _control(widget, "gain").setValue(-1.0)
    widget.add_key_button.click()
    widget.key_list.setCurrentRow(0)
    widget.delete_key_button.click()
    assert widget.key_list.count() == 1 and "1 keyframe(s)" in widget.key_label.text()
    assert "layer 'toy'" in widget.key_list.item(0).text() and "style plain" in widget.key_list.item(0).text()
    _control(widget, "style").setValue(1)
    _control(widget, "gain").setValue(0.5)
    widget.add_key_button.click()
    _control(widget, "gain").setValue(2.0)
    widget.add_key_button.click()
    widget.key_list.setCurrentRow(2)
    widget.up_key_button.click()
    assert [k.controls["gain"] for k in widget.keyframes] == pytest.approx([-1.0, 2.0, 0.5])
    assert "gain +2.00" in widget.key_list.item(1).text() and widget.key_list.currentRow() == 1
    widget.steps_spin.setValue(2)
    widget.path_button.click()
    qtbot.waitUntil(lambda: "explore path labels" in viewer.layers and not widget.busy, timeout=10000)
    path = viewer.layers["explore path edited"]
    assert path.data.shape == (5, 16, 16) and tuple(path.axis_labels) == ("T", "Y", "X")
    labels = viewer.layers["explore path labels"]
    assert isinstance(labels, Labels) and labels.data.shape == (5, 16, 16)
    np.testing.assert_allclose(path.data[0], model.run(widget.keyframes[0], precision="fp32")["edited"][0, 0],
                               atol=1e-6)
    prov = path.metadata[PROVENANCE_KEY]
    assert len(prov["keyframes"]) == 3 and prov["frames_per_segment"] == 2
    assert prov["interpolation"] == "slerp latents, linear sliders, jumps for choices"
    assert len(encoded) == 1


def test_controls_that_are_not_live_wait_for_apply(make_napari_viewer, qtbot):
    images, _ = toy_pairs(2, 16)
    model = Model.new("toy-seg")
    model.family.live = False  # as a slow family declares it
    viewer, widget = _explore(make_napari_viewer, model)
    assert not widget.apply_button.isHidden()
    viewer.add_image(images[0], name="one")  # the first image layer becomes the source as it arrives
    qtbot.waitUntil(lambda: "explore edited" in viewer.layers, timeout=10000)
    _settled(qtbot, widget)
    shown, before = widget.applied_id, viewer.layers["explore edited"].data.copy()
    _control(widget, "gain").setValue(1.0)
    qtbot.wait(200)
    assert widget.renderer.last_id == shown and widget.apply_button.isEnabled()
    widget.apply_button.click()
    _settled(qtbot, widget)
    assert widget.applied_id > shown and not widget.apply_button.isEnabled()
    assert not np.array_equal(viewer.layers["explore edited"].data, before)


def test_the_explore_layer_stays_visible_and_fit_to_layer_finds_a_sample(make_napari_viewer, qtbot):
    model = _tiny_gan()
    opaque = np.ones((3, 16, 16), np.float32)
    viewer, widget = _explore(make_napari_viewer, model, lambda v: v.add_image(opaque, name="samples"))
    qtbot.waitUntil(lambda: bool(widget.direction_sliders), timeout=20000)
    _settled(qtbot, widget)
    explore = viewer.layers["explore"]
    assert viewer.layers[-1] is explore and explore.visible
    assert widget.source_kind() == "seed" and not widget.fit_button.isHidden()
    # an opaque layer arriving later (Generate's samples, as in the demo) must not hide the sliders' effect
    target = model.sample(1, seed=3, precision="fp32")[0, 0]
    viewer.add_image(target, name="cell", opacity=1.0, contrast_limits=(0, 1))
    widget.direction_sliders[0].setValue(1.0)
    _settled(qtbot, widget)
    assert viewer.layers[-1] is explore and explore.visible

    widget.layer_picker.setCurrentText("cell")
    widget.fit_button.click()
    qtbot.waitUntil(lambda: widget.last_fit is not None, timeout=20000)
    _settled(qtbot, widget)
    fit = widget.last_fit
    unrelated = float(((model.sample(1, seed=0, precision="fp32")[0, 0] - target) ** 2).mean())
    assert fit.mse < 0.01 and fit.mse < unrelated / 100
    assert widget.source_kind() == "fitted" and "MSE" in widget.status.text()
    assert [s.value() for s in widget.direction_sliders] == [0.0] * len(widget.direction_sliders)
    torch.testing.assert_close(widget.current_latent(), fit.latent)
    assert float(((explore.data - target) ** 2).mean()) < 0.01
    assert explore.metadata[PROVENANCE_KEY]["point"]["origin"]["fitted_to"] == "cell"
    # the directions move from the fitted latent; a new seed replaces it
    widget.direction_sliders[1].setValue(2.0)
    assert not torch.equal(widget.current_latent(), fit.latent)
    widget.seed_spin.setValue(3)
    assert widget.source_kind() == "seed"


def test_keyframe_list_count_and_path_button(make_napari_viewer, qtbot):
    stack = np.zeros((30, 16, 16), np.float32)
    viewer, widget = _explore(make_napari_viewer, _tiny_gan(), lambda v: v.add_image(stack, name="stack"))
    qtbot.waitUntil(lambda: bool(widget.direction_sliders), timeout=20000)
    _settled(qtbot, widget)
    assert widget.key_label.text().startswith("0 keyframe(s)") and not widget.path_button.isEnabled()
    widget.add_key_button.click()
    assert widget.key_label.text().startswith("1 keyframe(s)") and not widget.path_button.isEnabled()
    widget.seed_spin.setValue(2)
    widget.add_key_button.click()
    assert widget.key_list.count() == 2 and widget.path_button.isEnabled()
    assert "seed 2" in widget.key_list.item(1).text() and "seed 0" in widget.key_list.item(0).text()
    widget.key_list.setCurrentRow(1)
    widget.delete_key_button.click()
    assert widget.key_list.count() == 1 and widget.key_label.text().startswith("1 keyframe(s)")
    assert not widget.path_button.isEnabled()
    widget.add_key_button.click()
    widget.add_key_button.click()
    assert widget.key_label.text().startswith("3 keyframe(s)") and widget.path_button.isEnabled()
    widget.clear_keys_button.click()
    assert widget.key_list.count() == 0 and not widget.path_button.isEnabled()
    # a new path layer is shown: the viewer's position moves inside it when it was outside
    widget.add_key_button.click()
    widget.seed_spin.setValue(4)
    widget.add_key_button.click()
    widget.steps_spin.setValue(2)
    viewer.dims.set_current_step(0, 20)
    widget.path_button.click()
    qtbot.waitUntil(lambda: "explore path" in viewer.layers and not widget.busy, timeout=10000)
    assert viewer.layers["explore path"].data.shape == (3, 16, 16)
    assert viewer.dims.current_step[0] == 0


def test_status_names_the_source_shown_when_it_was_encoded_before(make_napari_viewer, qtbot):
    """Regression: going back to an already encoded source left the status at the previous one
    (seen as a stale "Encoding '...'..." beside a finished render in the MRI screenshot)."""
    images, _ = toy_pairs(4, 16)
    viewer, widget = _explore(make_napari_viewer, Model.new("toy-seg"),
                              lambda v: (v.add_image(images, name="first"), v.add_image(images[::-1], name="second")))
    for name in ("first", "second", "first"):
        widget.layer_picker.setCurrentText(name)
        qtbot.waitUntil(lambda: not widget.busy and f"'{name}'" in widget.status.text(), timeout=10000)
        _settled(qtbot, widget)
        assert "Encoding" not in widget.status.text() and f"exploring '{name}'" in widget.status.text()
