"""Train widget: a tiny seeded model trained from a layer; loss plot, previews, cancel, resume, errors.

The contract side (the test family's image + labels rows, files, error sentences, the
progress regression) is in test_train_contract.py.
"""

import numpy as np

from napari_biogan._qt.session import session_for
from napari_biogan._qt.train_widget import TrainWidget
from napari_biogan.core.checkpoint import read_card


def _blobs(n=24, size=32, seed=0):
    """Bright discs at random places: something a GAN can start to learn."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        cy, cx, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(3, 7)
        out[i] = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32)
    return out


def _train_widget(make_napari_viewer, tmp_path, steps):
    viewer = make_napari_viewer()
    viewer.add_image(_blobs(), name="blobs")
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.family_combo.setCurrentIndex(widget.family_combo.findData("dcgan2d"))
    assert list(widget.input_rows) == ["image"]  # a seeded GAN: its latent needs no row
    widget.input_rows["image"].layer_picker.setCurrentText("blobs")
    widget.config_edit.setText("base_width=8")
    widget.steps_spin.setValue(steps)
    widget.batch_spin.setValue(8)
    widget.preview_spin.setValue(3)
    widget.output_row.set_path(tmp_path / "trained.safetensors")
    return viewer, widget


def test_train_from_a_layer_updates_plot_and_previews(make_napari_viewer, wait_workers, tmp_path):
    viewer, widget = _train_widget(make_napari_viewer, tmp_path, steps=6)
    widget.start_button.click()
    assert widget.cancel_button.isEnabled()
    wait_workers(widget, timeout=60000)
    kinds = [e.kind for e in widget.events]
    assert kinds.count("step") == 6 and kinds[-1] == "finished"
    assert set(widget.loss_plot.series) == {"critic", "generator"}
    assert widget.loss_plot.points == 12
    assert widget.previews == 2  # steps 3 and 6
    assert not widget.preview_label.pixmap().isNull()
    assert (tmp_path / "trained.safetensors").is_file()
    assert read_card(tmp_path / "trained.safetensors")["training"]["steps"] == 6
    assert widget.use_button.isEnabled() and widget.start_button.isEnabled()
    widget.use_button.click()
    wait_workers(widget)
    model = session_for(viewer).model
    assert model is not None and model.path == tmp_path / "trained.safetensors"
    assert model.config.base_width == 8


def test_cancel_keeps_a_checkpoint_and_resume_continues(make_napari_viewer, qtbot, wait_workers, tmp_path):
    viewer, widget = _train_widget(make_napari_viewer, tmp_path, steps=100_000)
    widget.start_button.click()
    qtbot.waitUntil(lambda: sum(e.kind == "step" for e in widget.events) >= 3, timeout=60000)
    widget.cancel_button.click()
    wait_workers(widget, timeout=30000)
    last = widget.events[-1]
    assert last.kind == "cancelled" and 3 <= last.step < 100_000
    path = tmp_path / "trained.safetensors"
    assert read_card(path)["training_state"]["step"] == last.step
    assert widget.resume_row.path() == str(path)
    # resume from the kept checkpoint for two more steps
    widget.steps_spin.setValue(last.step + 2)
    widget.start_button.click()
    wait_workers(widget, timeout=60000)
    assert widget.events[-1].kind == "finished" and widget.events[-1].step == last.step + 2
    assert [e.step for e in widget.events if e.kind == "step"] == [last.step + 1, last.step + 2]
    # the config text equal to the checkpoint's is not a change; a different value is refused by the core
    widget.config_edit.setText("base_width=16")
    widget.steps_spin.setValue(last.step + 4)
    widget.start_button.click()
    wait_workers(widget)
    assert "keeps the config" in widget.status.text() and "base_width" in widget.status.text()
    assert not any(e.kind == "step" for e in widget.events)


def test_bad_training_input_gives_a_notification(make_napari_viewer, wait_workers, notifications, tmp_path):
    viewer, widget = _train_widget(make_napari_viewer, tmp_path, steps=2)
    widget.config_edit.setText("no_such_option=3")
    widget.start_button.click()
    assert not widget.busy  # refused on the main thread, before a worker starts
    assert any("no_such_option" in str(n.message) and "base_width" in str(n.message) for n in notifications)
    assert "no_such_option" in widget.status.text()
    assert widget.start_button.isEnabled()
    assert not (tmp_path / "trained.safetensors").exists()
    # a layer that is not images of the right kind (5-D)
    viewer.add_image(np.zeros((5, 7, 9, 11, 3), np.float32), name="odd")
    widget.input_rows["image"].layer_picker.setCurrentText("odd")
    widget.config_edit.setText("")
    widget.start_button.click()
    wait_workers(widget)
    assert any("Expected images" in str(n.message) for n in notifications)


def test_train_from_a_folder_of_tiffs(make_napari_viewer, wait_workers, tmp_path):
    import tifffile

    folder = tmp_path / "tiffs"
    folder.mkdir()
    for i, image in enumerate(_blobs(12)):
        tifffile.imwrite(folder / f"t{i:03d}.tif", (image * 200).astype(np.uint8))
    viewer, widget = _train_widget(make_napari_viewer, tmp_path, steps=2)
    row = widget.input_rows["image"]
    row.path_row.set_path(folder)
    assert row.from_files.isChecked()  # a path typed or browsed selects the file row
    widget.start_button.click()
    wait_workers(widget, timeout=60000)
    assert widget.events[-1].kind == "finished"
    assert "tiffs" in read_card(tmp_path / "trained.safetensors")["training"]["data"]


def test_closing_the_viewer_mid_training_keeps_a_checkpoint(make_napari_viewer, qtbot, tmp_path):
    viewer, widget = _train_widget(make_napari_viewer, tmp_path, steps=100_000)
    widget.start_button.click()
    qtbot.waitUntil(lambda: sum(e.kind == "step" for e in widget.events) >= 2, timeout=60000)
    job = widget.job
    viewer.close()  # napari quits running workers; ours treats that as Cancel
    path = tmp_path / "trained.safetensors"
    qtbot.waitUntil(path.is_file, timeout=30000)
    qtbot.wait(200)
    assert read_card(path)["training_state"]["step"] == job.trainer.step >= 2


def _moving_disc_clips(n=10, frames=8, size=16, seed=0):
    """Clips (N, T, Y, X) of a disc moving right one pixel per frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    clips = np.zeros((n, frames, size, size), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(5, 11), rng.uniform(3, 6)
        for t in range(frames):
            clips[i, t] = ((yy - cy) ** 2 + (xx - cx - t) ** 2 < 9).astype(np.float32)
    return clips


def test_train_a_video_model_from_a_clips_layer_and_generate(make_napari_viewer, wait_workers, tmp_path):
    from napari_biogan._qt.generate_widget import GenerateWidget

    viewer = make_napari_viewer()
    viewer.add_image(_moving_disc_clips(), name="clips")
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.family_combo.setCurrentIndex(widget.family_combo.findData("savgan"))
    widget.input_rows["image"].layer_picker.setCurrentText("clips")
    widget.config_edit.setText("frames=8, height=16, width=16, latent_dim=16, widths=16/8, critic_widths=8/16, "
                               "frame_critic_widths=8/16, landmarks=16")
    widget.hparams_edit.setText("n_critic=1")
    widget.steps_spin.setValue(2)
    widget.batch_spin.setValue(4)
    widget.preview_spin.setValue(1)
    widget.output_row.set_path(tmp_path / "video.safetensors")
    widget.start_button.click()
    wait_workers(widget, timeout=120000)
    assert widget.events[-1].kind == "finished" and widget.previews == 2
    assert set(widget.loss_plot.series) == {"critic_video", "critic_frame", "generator"}
    assert not widget.preview_label.pixmap().isNull()
    card = read_card(tmp_path / "video.safetensors")
    assert card["family"] == "savgan" and card["config"]["widths"] == [16, 8]
    widget.use_button.click()
    wait_workers(widget)
    generate = GenerateWidget(viewer)
    generate.n_spin.setValue(3)
    generate.generate()
    wait_workers(generate, timeout=60000)
    assert generate.last_layers[0].data.shape == (3, 8, 16, 16)  # (N, T, Y, X): a slider for time
