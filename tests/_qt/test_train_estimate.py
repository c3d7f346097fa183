"""Train's "Estimate time": a few real steps timed in a worker, the duration said under the button."""

import numpy as np

from napari_biogan._qt.train_widget import TrainWidget


def _widget(make_napari_viewer, tmp_path, layer=True):
    viewer = make_napari_viewer()
    if layer:
        rng = np.random.default_rng(0)
        viewer.add_image(rng.random((16, 16, 16)).astype(np.float32), name="blobs")
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.family_combo.setCurrentIndex(widget.family_combo.findData("dcgan2d"))
    if layer:
        widget.input_rows["image"].layer_picker.setCurrentText("blobs")
    widget.config_edit.setText("height=16, width=16, latent_dim=8, base_width=8")
    widget.steps_spin.setValue(3000)
    widget.batch_spin.setValue(4)
    widget.output_row.set_path(tmp_path / "trained.safetensors")
    return viewer, widget


def test_estimate_times_steps_in_a_worker_and_writes_nothing(make_napari_viewer, wait_workers, tmp_path):
    viewer, widget = _widget(make_napari_viewer, tmp_path)
    (tmp_path / "trained.safetensors").write_bytes(b"kept")  # an existing output does not stop an estimate
    widget.estimate_button.click()
    assert not widget.estimate_button.isEnabled() and widget.busy  # running in a worker, the viewer is free
    assert widget.estimate_label.text() == "Timing a few training steps..."
    wait_workers(widget, timeout=60000)
    estimate = widget.last_estimate
    assert estimate is not None and estimate.seconds_per_step > 0 and estimate.measured_steps == 3
    text = widget.estimate_label.text()
    assert "for 3,000 steps (" in text and "measured on cpu" in text, text
    assert text.startswith(("About", "Less than a minute"))
    assert text == estimate.describe(3000, widget.preview_spin.value()).replace("about", "About", 1) \
        .replace("less than", "Less than", 1)
    assert widget.estimate_button.isEnabled() and not widget.events  # no training was started
    assert (tmp_path / "trained.safetensors").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trained.safetensors"]


def test_estimate_without_data_says_so(make_napari_viewer, notifications, tmp_path):
    _, widget = _widget(make_napari_viewer, tmp_path, layer=False)
    widget.estimate_button.click()
    assert not widget.busy and widget.last_estimate is None
    assert "Choose an image layer" in widget.estimate_label.text()
    assert any("Choose an image layer" in str(n.message) for n in notifications)
