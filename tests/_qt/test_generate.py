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
