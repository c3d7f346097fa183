"""Generate's Montage box: the samples of a stack layer in one grid layer, videos per frame, real beside."""

import os

import numpy as np
import pytest

from napari_biogan._qt.generate_widget import GenerateWidget
from napari_biogan._qt.layer_axes import inserted_axes
from napari_biogan._qt.session import session_for
from napari_biogan.core.export import PROVENANCE_KEY
from napari_biogan.core.model import GanModel
from napari_biogan.core.montage import GAP, MAX_SAMPLES, PAIR_GAP, montage_pair, tile

SIZE = 16


def _widget(make_napari_viewer, model):
    viewer = make_napari_viewer()
    session_for(viewer).set_model(model)
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def _generate(widget, wait_workers, n, seed=0):
    widget.n_spin.setValue(n)
    widget.seed_spin.setValue(seed)
    widget.generate_button.click()
    wait_workers(widget, timeout=60000)
    return widget.last_layers[0]


def _tiny_gan():
    return GanModel.new("dcgan2d", height=SIZE, width=SIZE, latent_dim=8, base_width=8, seed=1)


def test_montage_of_generated_samples_sits_beside_them(make_napari_viewer, wait_workers):
    model = _tiny_gan()
    viewer, widget = _widget(make_napari_viewer, model)
    stack = _generate(widget, wait_workers, 5, seed=4)
    box = widget.montage_box
    assert box.samples_picker.currentText() == stack.name  # the fresh stack is offered
    assert box.real_picker.currentText() == "(none)" and box.real_picker.layer() is None
    box.button.click()
    montage = viewer.layers[f"{stack.name} montage"]
    assert montage is box.layer and montage.data.shape == (2 * SIZE + GAP, 3 * SIZE + 2 * GAP)
    samples = model.sample(5, seed=4, precision="fp32")[:, 0]
    np.testing.assert_array_equal(montage.data, tile(samples, GAP))
    np.testing.assert_array_equal(montage.data[:SIZE, SIZE + GAP:2 * SIZE + GAP], samples[1])
    assert tuple(montage.translate) == (0.0, SIZE + PAIR_GAP)  # beside the stack, not over it
    prov = montage.metadata[PROVENANCE_KEY]
    assert prov["axes"] == "YX" and prov["montage"]["grid"] == [2, 3] and prov["seed"] == 4
    assert "5 of 5 samples" in box.status.text()
    box.button.click()  # again: the same layer is updated, not a second one added
    assert sum(layer.name.endswith("montage") for layer in viewer.layers) == 1


def test_a_video_montage_keeps_t_and_plays(make_napari_viewer, wait_workers):
    model = GanModel.new("savgan", frames=6, height=SIZE, width=SIZE, latent_dim=8, widths=(16, 8),
                         critic_widths=(8, 16), frame_critic_widths=(8, 16), landmarks=8, seed=2)
    viewer, widget = _widget(make_napari_viewer, model)
    video = _generate(widget, wait_workers, 3)
    widget.montage_box.button.click()
    montage = widget.montage_box.layer
    assert montage.data.shape == (6, 2 * SIZE + GAP, 2 * SIZE + GAP)
    assert tuple(montage.axis_labels) == ("T", "Y", "X") and not inserted_axes(montage)
    np.testing.assert_array_equal(montage.data, tile(video.data, GAP))
    viewer.dims.set_point(1, 4)  # the T slider plays the montage with the videos
    np.testing.assert_array_equal(np.asarray(montage._data_view), montage.data[4])


def test_generated_beside_real_and_a_refusal(make_napari_viewer, wait_workers, notifications):
    model = _tiny_gan()
    viewer, widget = _widget(make_napari_viewer, model)
    stack = _generate(widget, wait_workers, 4, seed=1)
    real = np.random.default_rng(0).uniform(0, 200, (9, SIZE, SIZE)).astype(np.float32)
    viewer.add_image(real, name="real", contrast_limits=(0, 200))
    box = widget.montage_box
    box.samples_picker.setCurrentText(stack.name)
    box.real_picker.setCurrentText("real")
    box.button.click()
    montage = box.layer
    assert montage.name == f"{stack.name} (left) | real (right) montage"
    expected, n = montage_pair(stack.data, real / 200, GAP)
    assert n == 4
    np.testing.assert_allclose(montage.data, expected, atol=1e-6)
    assert "(left) beside 4 of 'real' (right)" in box.status.text()
    viewer.add_image(np.zeros((3, 8, 8), np.float32), name="small")
    box.real_picker.setCurrentText("small")
    box.button.click()
    assert box.layer is montage  # nothing new
    assert any("same sample shape" in str(n.message) for n in notifications)
    assert "same sample shape" in box.status.text()


def test_at_most_max_samples_and_it_says_so(make_napari_viewer, wait_workers):
    viewer, widget = _widget(make_napari_viewer, _tiny_gan())
    _generate(widget, wait_workers, MAX_SAMPLES + 6)
    widget.montage_box.button.click()
    side = 8 * SIZE + 7 * GAP
    assert widget.montage_box.layer.data.shape == (side, side)
    assert f"the first {MAX_SAMPLES}" in widget.montage_box.status.text()
    assert f"{MAX_SAMPLES} of {MAX_SAMPLES + 6}" in widget.montage_box.status.text()


SAVE = os.environ.get("NAPARI_BIOGAN_SCREENSHOTS") == "1"


@pytest.mark.skipif(not SAVE, reason="README screenshot: set NAPARI_BIOGAN_SCREENSHOTS=1")
def test_screenshot_montage_beside_a_video(make_napari_viewer, qtbot, wait_workers):
    """Shipped models in a shown viewer: 2D digits (N, Y, X) beside Moving MNIST videos (N, T, Y, X), the
    digits off the T slider, and the montage of the digits; saved as docs/screenshots/montage.png."""
    from pathlib import Path

    import imageio.v3 as iio
    from qtpy.QtCore import Qt

    from napari_biogan.core.zoo import resolve_model

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 760)
    dock, generate = viewer.window.add_plugin_dock_widget("napari-biogan", "Generate")
    viewer.window._qt_window.resizeDocks([dock], [380], Qt.Orientation.Horizontal)
    session = session_for(viewer)
    session.set_model(GanModel.load(resolve_model("mnist-dcgan"), device="cpu"))
    digits = _generate(generate, wait_workers, 16, seed=0)
    session.set_model(GanModel.load(resolve_model("mmnist-savgan"), device="cpu"))
    videos = _generate(generate, wait_workers, 4, seed=0)
    assert inserted_axes(digits) == (1,) and videos.data.ndim == 4
    generate.montage_box.samples_picker.setCurrentText(digits.name)
    generate.montage_box.button.click()
    generate.scroll_area.ensureWidgetVisible(generate.montage_box)
    videos.translate = (0, 0, SIZE * 2 + PAIR_GAP, 0)  # below the digits; the montage is to their right
    viewer.dims.set_point(0, 0)
    viewer.dims.set_point(1, 6)  # frame 6 of the first video; the digits stay on the first digit
    np.testing.assert_array_equal(np.asarray(digits._data_view), digits.data[0, 0])
    viewer.layers.selection.active = digits
    viewer.reset_view()
    qtbot.wait(300)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot[..., :3].std() > 10
    folder = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    iio.imwrite(folder / "montage.png", shot)
