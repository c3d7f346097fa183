"""Generate widget: layers with named axes, provenance, bit-identical repeats."""

import numpy as np
import pytest

from napari_biogan._qt.generate_widget import GenerateWidget
from napari_biogan._qt.session import session_for
from napari_biogan.core.export import PROVENANCE_KEY
from napari_biogan.core.model import GanModel


def test_generate_is_reproducible_and_records_provenance(make_napari_viewer, wait_workers, tiny_model_file):
    viewer = make_napari_viewer()
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    model = GanModel.load(tiny_model_file, device="cpu")
    session_for(viewer).set_model(model)
    widget.n_spin.setValue(5)
    widget.seed_spin.setValue(7)
    widget.generate_button.click()
    wait_workers(widget)
    widget.generate_button.click()
    wait_workers(widget)
    assert len(viewer.layers) == 2
    first, second = viewer.layers
    assert first.data.shape == (5, 32, 32)
    assert tuple(first.axis_labels) == ("N", "Y", "X")
    assert np.array_equal(first.data, second.data)
    assert first.data.min() >= 0 and first.data.max() <= 1 and first.data.std() > 0
    prov = first.metadata[PROVENANCE_KEY]
    assert prov["family"] == "dcgan2d" and prov["seed"] == 7 and prov["n"] == 5
    assert prov["model_sha256"] == model.sha256
    # the same pixels as the core call: the widget adds nothing of its own
    assert np.array_equal(first.data, model.sample(5, seed=7, precision="fp32")[:, 0])
    widget.seed_spin.setValue(8)
    widget.generate_button.click()
    wait_workers(widget)
    assert not np.array_equal(viewer.layers[-1].data, first.data)


def test_generate_without_a_model_uses_the_default(make_napari_viewer, wait_workers):
    viewer = make_napari_viewer()
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.n_spin.setValue(2)
    widget.generate_button.click()
    wait_workers(widget)
    session = session_for(viewer)
    assert session.model is not None and session.model.name == "mnist-dcgan"
    assert viewer.layers[-1].data.shape == (2, 32, 32)


def test_two_channels_become_two_layers_with_their_colormaps(make_napari_viewer, wait_workers):
    viewer = make_napari_viewer()
    model = GanModel.new("dcgan2d", channels=2, channel_names=("cell", "protein"), colormaps=("red", "green"),
                         base_width=8)
    session_for(viewer).set_model(model)
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.n_spin.setValue(3)
    widget.generate_button.click()
    wait_workers(widget)
    red, green = widget.last_layers
    assert red.colormap.name == "red" and green.colormap.name == "green"
    assert red.name.endswith("cell") and green.name.endswith("protein")
    images = model.sample(3, seed=0, precision="fp32")
    np.testing.assert_array_equal(red.data, images[:, 0])
    np.testing.assert_array_equal(green.data, images[:, 1])


def test_a_video_family_gives_n_t_y_x_layers(make_napari_viewer, qtbot, wait_workers):
    from napari_biogan._qt.explore_widget import PATH_LAYER_NAME, ExploreWidget
    from napari_biogan.core.registry import family_names

    video = [name for name in ("savgan", "tganv2") if name in family_names()]
    if not video:
        pytest.skip("no video family is registered in this installation")
    viewer = make_napari_viewer()
    model = GanModel.new(video[0])
    session_for(viewer).set_model(model)
    frames, height, width = model.sample(1, seed=0, precision="fp32").shape[2:]
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.n_spin.setValue(2)
    widget.generate_button.click()
    wait_workers(widget, timeout=60000)
    layer = widget.last_layers[0]
    assert layer.data.shape == (2, frames, height, width)
    assert tuple(layer.axis_labels) == ("N", "T", "Y", "X")
    explore = ExploreWidget(viewer)
    viewer.window.add_dock_widget(explore)
    qtbot.waitUntil(lambda: bool(explore.direction_sliders) and not explore.busy, timeout=60000)
    assert viewer.layers["explore"].data.shape == (frames, height, width)
    explore.add_key_button.click()
    explore.seed_spin.setValue(1)
    explore.add_key_button.click()
    explore.steps_spin.setValue(2)
    explore.path_button.click()
    qtbot.waitUntil(lambda: PATH_LAYER_NAME in viewer.layers, timeout=60000)
    path = viewer.layers[PATH_LAYER_NAME]
    assert path.data.shape == (3, frames, height, width)
    assert tuple(path.axis_labels) == ("N", "T", "Y", "X")


def _toy_viewer(make_napari_viewer, size=40):
    from toy_family import toy_pairs

    viewer = make_napari_viewer()
    model = GanModel.new("toy-seg")
    session_for(viewer).set_model(model)
    images, _ = toy_pairs(3, size)
    viewer.add_image(images, name="cells")
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, model, images


def test_generate_runs_an_image_family_in_tiles_with_its_controls(make_napari_viewer, wait_workers):
    viewer, widget, model, images = _toy_viewer(make_napari_viewer)
    assert widget.latent_box.isHidden() and not widget.source_box.isHidden()  # no seed, no N
    assert widget.image_picker.currentText() == "cells"
    assert set(widget.controls_box.editors) == {"style", "gain"}
    widget.tile_spin.setValue(16)
    widget.overlap_spin.setValue(8)
    widget.controls_box.editors["style"].editor.setCurrentText("bright")
    widget.precision_combo.setCurrentText("fp32")
    widget.generate_button.click()
    wait_workers(widget)
    name = f"{model.name} on cells"
    edited, change, labels = (viewer.layers[f"{name} {key}"] for key in ("edited", "change", "labels"))
    assert [layer.name for layer in widget.last_layers] == [edited.name, change.name, labels.name]
    assert type(edited).__name__ == "Image" and edited.data.shape == (3, 40, 40)
    assert type(change).__name__ == "Image" and change.data.min() < 0  # signed: never clamped
    low, high = change.contrast_limits
    assert low == -high > -np.inf and high > 0
    assert type(labels).__name__ == "Labels" and labels.data.dtype.kind in "iu"
    # tiling is exact for this family (its receptive field is inside the blended overlap)
    untiled = model.run({"image": images[:, None]}, {"style": 1}, precision="fp32")
    np.testing.assert_array_equal(labels.data, untiled["labels"])
    np.testing.assert_allclose(edited.data, untiled["edited"][:, 0], atol=1e-5)
    prov = labels.metadata[PROVENANCE_KEY]
    assert prov["source"] == "cells" and prov["tile"] == 16 and prov["overlap"] == 8
    assert prov["controls"] == {"style": 1, "gain": 0.0} and prov["n"] == 3 and "seed" not in prov
    assert prov["classes"] == ["background", "cell", "edge"]
    # a seeded family shows seed and N again
    session_for(viewer).set_model(GanModel.new("dcgan2d", height=16, width=16, latent_dim=8, base_width=8))
    assert not widget.latent_box.isHidden() and widget.source_box.isHidden()
    assert widget.image_picker is None


def test_generate_without_an_image_layer_says_so(make_napari_viewer, notifications):
    viewer, widget, _, _ = _toy_viewer(make_napari_viewer)
    viewer.layers.clear()
    widget.generate_button.click()
    assert any("Choose a layer for the model's 'image' input" in str(n.message) for n in notifications)
    assert not widget.busy and len(viewer.layers) == 0


def test_new_samples_are_shown_after_a_big_stack(make_napari_viewer, wait_workers):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((300, 16, 16), np.float32), name="stack")
    viewer.dims.set_current_step(0, 299)
    assert viewer.dims.current_step[0] == 299
    session_for(viewer).set_model(GanModel.new("dcgan2d", height=16, width=16, latent_dim=8, base_width=8))
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.n_spin.setValue(4)
    widget.generate_button.click()
    wait_workers(widget)
    layer = widget.last_layers[0]
    assert layer.data.shape == (4, 16, 16)
    assert viewer.dims.current_step[0] == 0  # its first sample, not the stack's 299th (an empty view)
    assert viewer.dims.point[0] == layer.extent.world[0][0]
