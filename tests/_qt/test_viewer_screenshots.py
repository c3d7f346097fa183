"""The plugin as a user sees it: widgets docked from the manifest, a shown viewer, screenshots.

Set NAPARI_BIOGAN_SCREENSHOTS=1 to also write the README screenshots to docs/screenshots/
(the Explore and Train-mid-run shots are only taken then, to keep the default run short).
"""

import os
from pathlib import Path

import numpy as np
import pytest

from napari_biogan._qt.session import session_for

SAVE = os.environ.get("NAPARI_BIOGAN_SCREENSHOTS") == "1"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _save(image: np.ndarray, name: str) -> None:
    if SAVE:
        import imageio.v3 as iio  # napari depends on imageio

        SHOTS.mkdir(parents=True, exist_ok=True)
        iio.imwrite(SHOTS / name, image)


def _shown_viewer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 860)
    qtbot.wait(50)
    return viewer


def _narrow(viewer, qtbot, dock, width=430):
    """Give the canvas room: docks default to their widest widget."""
    from qtpy.QtCore import Qt

    viewer.window._qt_window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    qtbot.wait(50)


def _share_height(viewer, qtbot, top, bottom, top_height: int) -> None:
    """Two stacked docks: the top one ``top_height`` px, the rest for the bottom one (docks scroll)."""
    from qtpy.QtCore import Qt

    window = viewer.window._qt_window
    window.resizeDocks([top, bottom], [top_height, max(200, window.height() - top_height - 120)],
                       Qt.Orientation.Vertical)
    qtbot.wait(50)


def _sample_viewer(make_napari_viewer, qtbot, data_folder: str, sample: str):
    """A shown viewer with one of our samples opened (skipped when ../shared/data lacks its set)."""
    if not (SHARED_DATA / data_folder).is_dir():
        pytest.skip(f"{data_folder} is not in ../shared/data")
    viewer = _shown_viewer(make_napari_viewer, qtbot)
    viewer.open_sample("napari-biogan", sample)
    return viewer


def _not_blank(image: np.ndarray) -> None:
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
    rgb = image[..., :3].astype(np.float32)
    assert rgb.std() > 10  # not one flat colour
    assert len(np.unique(rgb.reshape(-1, 3)[::7], axis=0)) > 50  # widgets, text and an image


def test_docked_widgets_and_generated_digits(make_napari_viewer, qtbot, wait_workers):
    viewer = _shown_viewer(make_napari_viewer, qtbot)
    dock, model_widget = viewer.window.add_plugin_dock_widget("napari-biogan", "Model")
    generate_dock, generate = viewer.window.add_plugin_dock_widget("napari-biogan", "Generate")
    assert model_widget.session is generate.session
    _narrow(viewer, qtbot, dock)
    _share_height(viewer, qtbot, dock, generate_dock, 560)
    model_widget.load_selected()
    wait_workers(model_widget)
    generate.n_spin.setValue(16)
    generate.generate_button.click()
    wait_workers(generate)
    layer = viewer.layers[-1]
    assert layer.data.shape == (16, 32, 32)
    viewer.grid.enabled = False
    viewer.dims.set_current_step(0, 0)
    viewer.reset_view()
    qtbot.wait(100)
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    assert canvas[..., :3].std() > 10  # the digit is drawn, not an empty canvas
    shot = viewer.screenshot(canvas_only=False, flash=False)
    _not_blank(shot)
    _save(shot, "model_generate.png")


@pytest.mark.skipif(not SAVE, reason="README screenshots: set NAPARI_BIOGAN_SCREENSHOTS=1")
def test_screenshot_explore(make_napari_viewer, qtbot, wait_workers):
    viewer = _shown_viewer(make_napari_viewer, qtbot)
    _, model_widget = viewer.window.add_plugin_dock_widget("napari-biogan", "Model")
    model_widget.load_selected()
    wait_workers(model_widget)
    dock, explore = viewer.window.add_plugin_dock_widget("napari-biogan", "Explore")
    viewer.window.remove_dock_widget(viewer.window._dock_widgets["Model (napari-biogan)"])
    _narrow(viewer, qtbot, dock)
    qtbot.waitUntil(lambda: len(explore.direction_sliders) > 0 and not explore.busy, timeout=30000)
    explore.seed_spin.setValue(2)
    explore.add_key_button.click()
    explore.direction_sliders[0].setValue(1.5)
    explore.direction_sliders[2].setValue(-1.0)
    explore.add_key_button.click()
    explore.steps_spin.setValue(8)
    explore.path_button.click()
    wait_workers(explore)
    qtbot.waitUntil(lambda: explore.applied_id == explore.renderer.last_id, timeout=5000)
    viewer.layers.selection.active = viewer.layers["explore"]
    viewer.grid.enabled = True
    viewer.reset_view()
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    _not_blank(shot)
    _save(shot, "explore.png")


@pytest.mark.skipif(not SAVE, reason="README screenshots: set NAPARI_BIOGAN_SCREENSHOTS=1")
def test_screenshot_train_mid_run(make_napari_viewer, qtbot, wait_workers, tmp_path):
    viewer = _shown_viewer(make_napari_viewer, qtbot)
    if (SHARED_DATA / "mnist").is_dir():
        from napari_biogan.data.mnist import load_mnist_test

        digits, _ = load_mnist_test(SHARED_DATA / "mnist")
        viewer.add_image(digits[:2000], name="MNIST test digits")
    else:
        viewer.add_image(np.random.default_rng(0).random((64, 32, 32), np.float32), name="noise")
    dock, train = viewer.window.add_plugin_dock_widget("napari-biogan", "Train")
    _narrow(viewer, qtbot, dock)
    train.family_combo.setCurrentIndex(train.family_combo.findData("dcgan2d"))
    train.config_edit.setText("base_width=16")
    train.steps_spin.setValue(3000)
    train.batch_spin.setValue(32)
    train.preview_spin.setValue(20)
    train.output_row.set_path(tmp_path / "digits.safetensors")
    train.start_button.click()
    qtbot.waitUntil(lambda: train.previews >= 15, timeout=900000)  # WGAN-GP, step 300: shapes appear
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    train.cancel_button.click()
    wait_workers(train, timeout=60000)
    assert train.events[-1].kind == "cancelled"
    _not_blank(shot)
    _save(shot, "train.png")
    assert session_for(viewer).model is None


@pytest.mark.skipif(not SAVE, reason="README screenshots: set NAPARI_BIOGAN_SCREENSHOTS=1")
def test_screenshot_clips_and_evaluate(make_napari_viewer, qtbot, wait_workers):
    """The T98G time-lapse with the found clips outlined, and a shipped cell-video model evaluated on them."""
    from napari_biogan.core.model import GanModel
    from napari_biogan.core.zoo import resolve_model
    from napari_biogan.data.clips import load_t98g

    if not (SHARED_DATA / "usiigaci_t98g_phase_timelapse").is_dir():
        pytest.skip("the T98G time-lapse is not beside the project")
    viewer = _shown_viewer(make_napari_viewer, qtbot)
    movie, _ = load_t98g()
    viewer.add_image(movie, name="T98G")
    dock, clips = viewer.window.add_plugin_dock_widget("napari-biogan", "Clips")
    evaluate_dock, evaluate = viewer.window.add_plugin_dock_widget("napari-biogan", "Evaluate")
    _narrow(viewer, qtbot, dock)
    _share_height(viewer, qtbot, dock, evaluate_dock, 390)  # room for the evaluation's results
    clips.layer_picker.setCurrentText("T98G")
    clips.find_button.click()
    wait_workers(clips, timeout=120000)
    session_for(viewer).set_model(GanModel.load(resolve_model("t98g-savgan"), device="cpu"))
    evaluate.layer_picker.setCurrentText("clips of T98G")
    evaluate.n_spin.setValue(64)
    evaluate.evaluate_button.click()
    wait_workers(evaluate, timeout=120000)
    viewer.layers["clips of T98G"].visible = False
    outlines = viewer.layers["clip outlines on T98G"]
    outlines.visible = True
    viewer.dims.set_current_step(0, int(outlines.data[0][0, 0]))
    viewer.reset_view()
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    _not_blank(shot)
    _save(shot, "clips_evaluate.png")


@pytest.mark.skipif(not SAVE, reason="README screenshots: set NAPARI_BIOGAN_SCREENSHOTS=1")
def test_screenshot_video_model(make_napari_viewer, qtbot, wait_workers):
    """A shipped Moving MNIST SAVGAN: generated videos (N, T, Y, X) in a grid, explore sliders docked."""
    from napari_biogan.core.model import GanModel
    from napari_biogan.core.zoo import resolve_model

    viewer = _shown_viewer(make_napari_viewer, qtbot)
    session_for(viewer).set_model(GanModel.load(resolve_model("mmnist-savgan"), device="cpu"))
    dock, generate = viewer.window.add_plugin_dock_widget("napari-biogan", "Generate")
    explore_dock, explore = viewer.window.add_plugin_dock_widget("napari-biogan", "Explore")
    _narrow(viewer, qtbot, dock)
    _share_height(viewer, qtbot, dock, explore_dock, 200)
    generate.n_spin.setValue(12)
    generate.generate_button.click()
    wait_workers(generate, timeout=60000)
    videos = viewer.layers[-1]
    assert videos.data.ndim == 4  # (N, T, Y, X)
    qtbot.waitUntil(lambda: len(explore.direction_sliders) > 0 and not explore.busy, timeout=60000)
    explore.direction_sliders[0].setValue(1.0)
    qtbot.waitUntil(lambda: explore.applied_id == explore.renderer.last_id, timeout=10000)
    viewer.layers["explore"].visible = False
    viewer.layers.selection.active = videos
    viewer.dims.set_current_step(1, 8)  # frame 8 of the first video; the N and T sliders play the rest
    viewer.reset_view()
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    _not_blank(shot)
    _save(shot, "video.png")


@pytest.mark.skipif(not SAVE, reason="README screenshots: set NAPARI_BIOGAN_SCREENSHOTS=1")
def test_screenshot_image_driven_family(make_napari_viewer, qtbot, wait_workers):
    """The contract's image-driven corner through the same widgets: the tests' toy family (an image in;
    an edited image, a signed change map and a Labels map out; a class control and a slider)."""
    from napari_biogan.core.training import TrainSettings, setup_training
    from toy_family import toy_pairs

    images, labels = toy_pairs(24, 48, seed=3)
    trainer = setup_training("toy-seg", {"image": images, "labels": labels}, TrainSettings(steps=150, seed=0))
    trainer.run_all()
    trainer.model.card["name"] = "toy-seg"
    viewer = _shown_viewer(make_napari_viewer, qtbot)
    viewer.add_image(images[:4], name="cells")
    session_for(viewer).set_model(trainer.model)
    dock, generate = viewer.window.add_plugin_dock_widget("napari-biogan", "Generate")
    _narrow(viewer, qtbot, dock)
    generate.pickers["image"].setCurrentText("cells")
    generate.tile_spin.setValue(32)
    generate.overlap_spin.setValue(8)
    generate.generate()
    wait_workers(generate)
    for layer in viewer.layers:
        layer.visible = layer.name in ("cells", "toy-seg on cells labels")
    viewer.reset_view()
    qtbot.wait(300)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    _not_blank(shot)
    _save(shot, "image_family.png")


@pytest.mark.skipif(not SAVE, reason="README screenshots: set NAPARI_BIOGAN_SCREENSHOTS=1")
def test_screenshot_nuclei_segmentation(make_napari_viewer, qtbot, wait_workers):
    """The shipped nuclei-seg model on the held-out sample field, tiled, instances over the image."""
    from napari_biogan.core.zoo import resolve_model

    viewer = _sample_viewer(make_napari_viewer, qtbot, "bbbc039_nuclei", "nuclei-field")
    field = viewer.layers[-2].name
    dock, model_widget = viewer.window.add_plugin_dock_widget("napari-biogan", "Model")
    generate_dock, generate = viewer.window.add_plugin_dock_widget("napari-biogan", "Generate")
    _narrow(viewer, qtbot, dock)
    _share_height(viewer, qtbot, dock, generate_dock, 430)
    model_widget.load_model_file(resolve_model("nuclei-seg"))
    wait_workers(model_widget)
    generate.pickers["image"].setCurrentText(field)
    generate.tile_spin.setValue(256)
    generate.overlap_spin.setValue(64)
    generate.generate()
    wait_workers(generate)
    objects = [layer for layer in viewer.layers if layer.name.endswith("instances")]
    assert objects and objects[0].data.max() > 20  # dozens of nuclei
    for layer in viewer.layers:
        layer.visible = layer.name == field or layer is objects[0]
    objects[0].contour = 2
    viewer.reset_view()
    qtbot.wait(300)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    _not_blank(shot)
    _save(shot, "segmentation.png")


def _attribute_slider_shot(make_napari_viewer, qtbot, wait_workers, data_folder: str, sample: str, model: str,
                           control: str, value: float, file: str) -> None:
    """A Fader model on one of our held-out slice samples: ``control`` moved to ``value`` in Explore; the
    original, the edited slice and the difference map side by side (grid mode)."""
    from napari_biogan.core.zoo import resolve_model

    viewer = _sample_viewer(make_napari_viewer, qtbot, data_folder, sample)
    slice_name = viewer.layers[-1].name
    dock, model_widget = viewer.window.add_plugin_dock_widget("napari-biogan", "Model")
    model_widget.load_model_file(resolve_model(model))
    wait_workers(model_widget)
    explore_dock, explore = viewer.window.add_plugin_dock_widget("napari-biogan", "Explore")
    viewer.window.remove_dock_widget(viewer.window._dock_widgets["Model (napari-biogan)"])
    _narrow(viewer, qtbot, explore_dock)
    explore.layer_picker.setCurrentText(slice_name)
    qtbot.waitUntil(lambda: "explore image" in viewer.layers, timeout=30000)
    slider = next(w for w in explore.control_widgets if w.control.name == control)
    before = np.array(viewer.layers["explore image"].data, copy=True)
    slider.setValue(value)
    # the slider moves the slice (live re-decoding)
    qtbot.waitUntil(lambda: not np.array_equal(viewer.layers["explore image"].data, before), timeout=30000)
    qtbot.wait(500)
    for layer in viewer.layers:
        layer.visible = layer.name in (slice_name, "explore image", "explore difference")
    viewer.grid.enabled = True
    viewer.reset_view()
    qtbot.wait(300)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    _not_blank(shot)
    _save(shot, file)


@pytest.mark.skipif(not SAVE, reason="README screenshots: set NAPARI_BIOGAN_SCREENSHOTS=1")
def test_screenshot_mri_attribute_slider(make_napari_viewer, qtbot, wait_workers):
    """The shipped Fader model on the held-out MRI sample slice: the diagnosis slider at ModerateDemented."""
    _attribute_slider_shot(make_napari_viewer, qtbot, wait_workers, "alzheimer_mri_4class", "mri-slice",
                           "mri-fader", "diagnosis", 3, "mri.png")


@pytest.mark.skipif(not SAVE, reason="README screenshots: set NAPARI_BIOGAN_SCREENSHOTS=1")
def test_screenshot_ixi_slice_position_slider(make_napari_viewer, qtbot, wait_workers):
    """The IXI slice-position model on the held-out IXI sample slice (mid-brain), moved down the brain."""
    _attribute_slider_shot(make_napari_viewer, qtbot, wait_workers, "ixi_t1_brain", "ixi-slice",
                           "ixi-fader", "position", 0.25, "ixi.png")
