"""Train widget against the family contract: one row per training input (the test family needs an
image AND labels), training from layers and from files, errors in one sentence before any step,
the progress-bar regression, and the preview picture (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from toy_family import NAME as TOY, ToyFamily, toy_pairs

from napari_biogan._qt._common import ProgressTask
from napari_biogan._qt.session import session_for
from napari_biogan._qt.train_views import format_eta, labels_rgb, preview_picture, LABEL_PALETTE
from napari_biogan._qt.train_widget import TrainJob, TrainWidget
from napari_biogan.core import registry
from napari_biogan.core.contract import Channel, Input, Output
from napari_biogan.core.errors import FamilyMismatchError
from napari_biogan.core.training import TrainEvent, TrainSettings, setup_training


def _toy_widget(make_napari_viewer, tmp_path, steps=2, labels_layer=True):
    viewer = make_napari_viewer()
    images, labels = toy_pairs(8, 16)
    viewer.add_image(images, name="cells")
    if labels_layer:
        viewer.add_labels(labels, name="masks")
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.family_combo.setCurrentIndex(widget.family_combo.findData(TOY))
    widget.steps_spin.setValue(steps)
    widget.preview_spin.setValue(3)
    widget.output_row.set_path(tmp_path / "toy.safetensors")
    return viewer, widget


def _messages(notifications) -> list[str]:
    return [str(n.message) for n in notifications]


def test_toy_family_trains_from_an_image_and_a_labels_layer(make_napari_viewer, wait_workers, notifications,
                                                            monkeypatch, tmp_path):
    viewer, widget = _toy_widget(make_napari_viewer, tmp_path, steps=6)
    assert list(widget.input_rows) == ["image", "labels"]  # one row per training input, in declared order
    image_row, labels_row = widget.input_rows["image"], widget.input_rows["labels"]
    assert image_row.from_layer.text() == "Image layer" and labels_row.from_layer.text() == "Labels layer"
    assert labels_row.from_files.text() == "mask file/folder"
    assert [image_row.layer_picker.itemText(i) for i in range(image_row.layer_picker.count())] == ["cells"]
    assert [labels_row.layer_picker.itemText(i) for i in range(labels_row.layer_picker.count())] == ["masks"]
    image_row.layer_picker.setCurrentText("cells")
    labels_row.layer_picker.setCurrentText("masks")
    widget.status.setText("an earlier error")
    shown: list[str] = []
    set_text = widget.status.setText
    monkeypatch.setattr(widget.status, "setText", lambda text: (shown.append(text), set_text(text)))
    widget.start_button.click()
    assert widget.status.text() == "Preparing the data..."  # the old error is gone at once
    wait_workers(widget, timeout=30000)
    assert shown[:3] == ["", "Preparing the data...", "Training... first step"]
    kinds = [e.kind for e in widget.events]
    assert kinds.count("step") == 6 and kinds[-1] == "finished"
    assert set(widget.loss_plot.series) == {"segmentation", "reconstruction"}
    assert widget.previews == 2 and not widget.preview_label.pixmap().isNull()
    preview = next(e for e in widget.events if e.kind == "preview")
    assert set(preview.preview_outputs) == {"edited", "change", "labels", "source"}
    picture = widget.preview_array
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.max() > 0
    assert picture.shape[1] > 3 * 2 * 16  # three panels (edited, change, labels over source) side by side
    widget.use_button.click()
    wait_workers(widget)
    model = session_for(viewer).model
    assert model is not None and model.family.name == TOY and model.path == tmp_path / "toy.safetensors"
    assert not any("fail" in m for m in _messages(notifications))


def test_toy_family_trains_from_files(make_napari_viewer, wait_workers, tmp_path):
    import tifffile
    from PIL import Image
    from napari_biogan.core.checkpoint import read_card

    images, labels = toy_pairs(8, 16)
    tifffile.imwrite(tmp_path / "cells.tif", (np.clip(images, 0, 1) * 255).astype(np.uint8))
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, plane in enumerate(labels):
        Image.fromarray(plane).save(masks / f"m{i:02d}.png")
    viewer, widget = _toy_widget(make_napari_viewer, tmp_path, steps=2, labels_layer=False)
    widget.input_rows["image"].from_files.setChecked(True)
    widget.input_rows["image"].path_row.set_path(tmp_path / "cells.tif")
    widget.input_rows["labels"].from_files.setChecked(True)
    widget.input_rows["labels"].path_row.set_path(masks)
    widget.start_button.click()
    wait_workers(widget, timeout=30000)
    assert widget.events and widget.events[-1].kind == "finished", widget.status.text()
    data = read_card(tmp_path / "toy.safetensors")["training"]["data"]
    assert "cells.tif" in data and "masks" in data


def test_errors_are_one_sentence_before_training(make_napari_viewer, wait_workers, notifications, tmp_path):
    viewer, widget = _toy_widget(make_napari_viewer, tmp_path, labels_layer=False)

    def refused(expected: str) -> str:
        before = len(notifications)
        widget.start_button.click()
        assert not widget.busy and widget.events == []  # refused on the main thread: no worker, no step
        message = _messages(notifications)[before:][-1]
        assert expected in message and widget.status.text() == message
        return message

    # the labels input is missing (no Labels layer, no mask folder)
    assert "'labels'" in refused("Choose a Labels layer")
    viewer.add_labels(toy_pairs(8, 16)[1], name="masks")
    widget.hparams_edit.setText("lr=fast")
    assert refused("'lr' takes a number") == "'lr' takes a number, not 'fast'."
    widget.hparams_edit.setText("")
    widget.config_edit.setText("heigth=3")
    assert "it has: channels, classes, styles, width" in refused("no config value 'heigth'")
    widget.config_edit.setText("")
    # an existing output is refused before training, and left as it was
    existing = tmp_path / "toy.safetensors"
    existing.write_bytes(b"keep me")
    refused("already exists")
    assert existing.read_bytes() == b"keep me"
    # a checkpoint of another family, resumed as the test family: the CLI's sentence
    images = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    seeded = tmp_path / "seeded.safetensors"
    setup_training("dcgan2d", {"image": images}, TrainSettings(steps=1, output=str(seeded), hparams={"batch_size": 4}),
                   config_overrides=dict(height=16, width=16, latent_dim=8, base_width=8)).run_all()
    with pytest.raises(FamilyMismatchError) as expected:
        setup_training(TOY, {"image": images}, TrainSettings(steps=2), resume=str(seeded))
    widget.resume_row.set_path(seeded)
    widget.output_row.set_path(tmp_path / "resumed.safetensors")
    before = len(notifications)
    widget.start_button.click()
    wait_workers(widget)
    assert str(expected.value) in _messages(notifications)[before:]
    assert widget.status.text() == str(expected.value)
    assert not any(e.kind == "step" for e in widget.events) and widget.start_button.isEnabled()


def test_progress_after_close_is_ignored(make_napari_viewer, monkeypatch):
    """Regression: ``'NoneType' object has no attribute 'set_description'`` at the end of a run.

    napari's bar processes events inside update(); the worker's finished slot then ran in the
    middle of the step handler and cleared the bar. Here: close first, then a step arrives;
    and a close from inside update(), as processEvents did.
    """
    task = ProgressTask(5, "plain")
    task.close()
    task.update(3, "after close")  # nothing happens
    task.close()  # twice is fine
    assert task.closed

    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    widget.job = TrainJob(family=TOY, sources={}, settings=TrainSettings(steps=5))
    widget.task = ProgressTask(5, "training")
    step = TrainEvent("step", 1, 5, {"loss": 0.5}, eta_s=200.0)
    widget._done()  # the worker finished (or was cancelled) ...
    widget._on_event(step)  # ... and a step event queued before it is delivered
    assert widget.status.text() == "Step 1/5, about 3 min left."

    widget.task = ProgressTask(5, "training")
    bar = widget.task._bar
    real_update = type(bar).update

    def update_then_finish(self, n=1):  # the finished slot runs inside napari's update
        real_update(self, n)
        widget._done()

    monkeypatch.setattr(type(bar), "update", update_then_finish)
    widget._on_event(TrainEvent("step", 2, 5, {"loss": 0.4}, eta_s=3900.0))
    assert widget.task.closed and widget.status.text() == "Step 2/5, about 1 h 05 min left."


def test_only_trainable_families_and_rows_for_every_input_kind(make_napari_viewer, monkeypatch):
    class Frozen(ToyFamily):
        name, title, trainable = "frozen-test", "Not trained here", False

    class Everything(ToyFamily):
        name, title = "every-input-test", "Every input kind"

        def inputs(self, config):
            return [Input("latent", "latent", train=False, run=True),
                    Input("image", "image", help="pictures"), Input("cls", "class", run=False, help="groups"),
                    Input("table", "attributes", run=False, help="per-image values")]

    monkeypatch.setitem(registry._FAMILIES, Frozen.name, Frozen)
    monkeypatch.setitem(registry._FAMILIES, Everything.name, Everything)
    widget = TrainWidget(make_napari_viewer())
    names = [widget.family_combo.itemData(i) for i in range(widget.family_combo.count())]
    assert "frozen-test" not in names and {"dcgan2d", TOY, "every-input-test"} <= set(names)
    widget.family_combo.setCurrentIndex(names.index("every-input-test"))
    rows = widget.input_rows
    assert list(rows) == ["image", "cls", "table"]  # the latent shows nothing
    assert rows["image"].from_files.text() == "TIFF file/folder"
    assert rows["cls"].path_row is None and rows["cls"].source() == (None, "")
    assert rows["table"].path_row is not None and "keyed by file or subject" in \
        rows["table"].path_row.edit.placeholderText()
    widget.family_combo.setCurrentIndex(names.index(TOY))
    assert list(widget.input_rows) == ["image", "labels"]  # rebuilt with the family


# -- pure numpy: no display needed ----------------------------------------------------------------------------

def test_format_eta_in_words():
    assert format_eta(None) == "estimating the time left"
    assert format_eta(20) == "less than a minute left"
    assert format_eta(185) == "about 3 min left"
    assert format_eta(3900) == "about 1 h 05 min left"


def test_preview_picture_composes_outputs():
    image_spec = Output("edited", "image", (Channel("image", "gray"),))
    labels_spec = Output("labels", "labels", classes=("background", "cell"))
    signed_spec = Output("change", "signed", (Channel("change", "PiYG"),))
    source = np.full((2, 1, 4, 5), 0.5, np.float32)
    labels = np.zeros((2, 4, 5), np.int64)
    labels[:, 1, 1] = 1
    outputs = {"edited": np.ones((2, 1, 4, 5), np.float32), "labels": labels, "source": source,
               "change": np.linspace(-3, 3, 40, dtype=np.float32).reshape(2, 1, 4, 5)}
    only_image = preview_picture(outputs, [image_spec])
    assert only_image.shape == (4, 11, 3) and only_image.dtype == np.uint8  # one row of two samples
    both = preview_picture(outputs, [image_spec, labels_spec])
    assert both.shape == (4, 11 + 3 + 11, 3)  # side by side, a gap between panels
    overlay = both[:, 14:]
    assert tuple(overlay[0, 0]) == (128, 128, 128)  # label 0: the source shows through
    assert overlay[1, 1, 0] > overlay[1, 1, 1]  # label 1: the palette's red over the grey source
    three = preview_picture(outputs, [image_spec, signed_spec, labels_spec])
    change = three[:, 14:25]
    assert change[0, 0, 0] > 200 and change[0, 0, 1] == 0  # most negative: magenta, not clamped to black
    assert preview_picture({}, [image_spec]) is None
    # a labels output without a source sits on the first image output; videos show their middle frame
    video_labels = np.zeros((1, 3, 4, 5), np.int64)
    video_labels[0, 1] = 2
    rgb = labels_rgb(video_labels)
    assert rgb.shape == (1, 4, 5, 3) and np.allclose(rgb[0, 0, 0], LABEL_PALETTE[2] * 0.55)
