"""Explore widget: live sliders through the latest-only render thread, keyframe paths."""

import numpy as np

from napari_biogan._qt.explore_widget import LAYER_NAME, PATH_LAYER_NAME, ExploreWidget
from napari_biogan._qt.session import session_for
from napari_biogan.core.export import PROVENANCE_KEY
from napari_biogan.core.model import GanModel


def _explore(make_napari_viewer, qtbot, model_file):
    viewer = make_napari_viewer()
    model = GanModel.load(model_file, device="cpu")
    session_for(viewer).set_model(model)
    widget = ExploreWidget(viewer)
    viewer.window.add_dock_widget(widget)
    qtbot.waitUntil(lambda: len(widget.direction_sliders) > 0 and not widget.busy, timeout=20000)
    qtbot.waitUntil(lambda: widget.applied_id == widget.renderer.last_id, timeout=5000)
    return viewer, widget, model


def _settled(qtbot, widget):
    qtbot.waitUntil(lambda: widget.renderer.idle() and widget.applied_id == widget.renderer.last_id,
                    timeout=10000)


def test_slider_drag_updates_the_layer_and_skips_stale_renders(make_napari_viewer, qtbot, tiny_model_file):
    viewer, widget, model = _explore(make_napari_viewer, qtbot, tiny_model_file)
    layer = viewer.layers[LAYER_NAME]
    assert layer.data.shape == (32, 32)
    before = layer.data.copy()
    rendered_before = widget.renderer.rendered
    slider = widget.direction_sliders[0]
    # a fast drag: 60 values with no event processing in between, as a mouse drag outruns renders
    for value in np.linspace(-3, 3, 60):
        slider.setValue(float(value))
    _settled(qtbot, widget)
    assert widget.renderer.skipped > 0
    assert widget.renderer.rendered - rendered_before < 60
    assert not np.array_equal(layer.data, before)
    # the layer shows the LAST slider position, exactly as the core renders it
    expected = model.render(widget.current_latent(), precision="fp32")[0, 0]
    np.testing.assert_array_equal(layer.data, expected)
    point = layer.metadata[PROVENANCE_KEY]["point"]  # the rendered Point, described
    assert point["origin"]["directions"][0] == 3.0 and len(point["state"]["latent"]) == 64


def test_seed_changes_the_sample_and_reset_restores_it(make_napari_viewer, qtbot, tiny_model_file):
    viewer, widget, model = _explore(make_napari_viewer, qtbot, tiny_model_file)
    layer = viewer.layers[LAYER_NAME]
    seed0 = layer.data.copy()
    np.testing.assert_array_equal(seed0, model.sample(1, seed=0, precision="fp32")[0, 0])
    widget.seed_spin.setValue(3)
    _settled(qtbot, widget)
    np.testing.assert_array_equal(layer.data, model.sample(1, seed=3, precision="fp32")[0, 0])
    widget.direction_sliders[1].setValue(2.0)
    _settled(qtbot, widget)
    widget.seed_spin.setValue(0)
    widget.reset()
    _settled(qtbot, widget)
    np.testing.assert_array_equal(layer.data, seed0)


def test_keyframe_path_layer(make_napari_viewer, qtbot, tiny_model_file):
    viewer, widget, model = _explore(make_napari_viewer, qtbot, tiny_model_file)
    assert not widget.path_button.isEnabled()
    widget.add_key_button.click()
    widget.seed_spin.setValue(5)
    widget.add_key_button.click()
    widget.direction_sliders[0].setValue(1.5)
    widget.add_key_button.click()
    assert widget.path_button.isEnabled()
    widget.steps_spin.setValue(4)
    widget.path_button.click()
    qtbot.waitUntil(lambda: PATH_LAYER_NAME in viewer.layers, timeout=10000)
    path = viewer.layers[PATH_LAYER_NAME]
    assert path.data.shape == (2 * 4 + 1, 32, 32)
    assert tuple(path.axis_labels) == ("T", "Y", "X")
    # the path starts and ends on the keyframes
    np.testing.assert_allclose(path.data[0], model.sample(1, seed=0, precision="fp32")[0, 0], atol=1e-5)
    last = widget.keyframes[-1].state["latent"]  # keyframes are Points
    np.testing.assert_allclose(path.data[-1], model.render(last, precision="fp32")[0, 0], atol=1e-5)
    assert len(path.metadata[PROVENANCE_KEY]["keyframes"]) == 3


def test_through_napari_s_plugin_proxy_a_layer_source_is_encoded_once(make_napari_viewer, qtbot):
    """Regression: napari hands plugin widgets a public-only proxy of the viewer, through which every
    ``viewer.layers[name]`` is a new wrapper; Explore's encoded-source cache never hit, so it encoded its
    source again on every dims step and its status stayed at 'Encoding ...'."""
    from napari.utils._proxies import PublicOnlyProxy

    from napari_biogan.core.model import Model
    from napari_biogan.core.zoo import resolve_model

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.random((40, 36)).astype(np.float32) * 200, name="slice")
    session_for(viewer).set_model(Model.load(resolve_model("mri-fader"), device="cpu"))
    widget = ExploreWidget(PublicOnlyProxy(viewer))
    viewer.window.add_dock_widget(widget)
    widget.layer_picker.setCurrentText("slice")
    qtbot.waitUntil(lambda: "explore image" in viewer.layers and not widget.busy, timeout=30000)
    encodes = []
    widget.run_worker = lambda *args, **kwargs: encodes.append(args[0])  # any new worker would land here
    for _ in range(3):
        viewer.dims.events.current_step(value=viewer.dims.current_step)
        viewer.add_points(name=f"p{_}")  # layers coming and going fire the source check too
    qtbot.wait(100)
    assert encodes == []
    assert widget.status.text().startswith("mri-fader: exploring 'slice'")
