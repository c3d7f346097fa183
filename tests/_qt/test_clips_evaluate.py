"""Clips widget (moving cells of a time-lapse layer -> clips layer) and Evaluate widget (metrics table)."""

from __future__ import annotations

import numpy as np

from napari_biogan._qt.clips_widget import ClipsWidget, clip_outlines, parse_clip_size
from napari_biogan._qt.evaluate_widget import EvaluateWidget, metric_rows
from napari_biogan._qt.session import session_for
from napari_biogan.core.model import GanModel

TINY_VIDEO = dict(frames=8, height=16, width=16, latent_dim=16, widths=(16, 8), critic_widths=(8, 16),
                  frame_critic_widths=(8, 16), landmarks=16)


def _moving_blob(t=24, size=(64, 96), radius=4):
    """A still noisy field with one bright blob moving right 2 px per frame from (32, 16)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size[0], :size[1]]
    frames = [100 + 60 * np.exp(-((yy - 32) ** 2 + (xx - 16 - 2 * k) ** 2) / (2 * radius ** 2))
              + rng.normal(0, 1, size) for k in range(t)]
    return np.stack(frames).astype(np.uint16)


def test_find_clips_adds_a_clips_layer_around_the_moving_cell(make_napari_viewer, wait_workers):
    viewer = make_napari_viewer()
    viewer.add_image(_moving_blob(), name="movie")
    widget = ClipsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.layer_picker.setCurrentText("movie")
    widget.size_edit.setText("8x16x16")
    widget.downscale_spin.setValue(2)
    widget.max_spin.setValue(1)
    widget.find_button.click()
    wait_workers(widget)
    layer = viewer.layers["clips of movie"]
    assert layer is widget.clips_layer and layer.data.shape == (1, 8, 16, 16)
    assert tuple(layer.axis_labels) == ("N", "T", "Y", "X")  # the viewer's sliders say clip and frame
    clip = layer.metadata["napari_biogan"]["clips"][0]
    y0, x0 = clip["corner"]
    t0 = clip["time"]
    # the blob (original pixels) is inside the clip's box on its first and last frame
    assert y0 < 32 < y0 + 32 and x0 < 16 + 2 * t0 < x0 + 32 and x0 < 16 + 2 * (t0 + 7) < x0 + 32
    outlines = viewer.layers["clip outlines on movie"]
    assert len(outlines.data) == 1 and outlines.data[0][0, 0] == t0
    assert "Found 1 clips" in widget.status.text()


def test_find_clips_explains_bad_input(make_napari_viewer, wait_workers, notifications):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 5, 16, 16), np.float32), name="stack")
    widget = ClipsWidget(viewer)
    widget.size_edit.setText("8 by 16")
    widget.find_button.click()
    assert "like 16x32x32" in str(notifications[-1].message)
    widget.size_edit.setText("2x8x8")
    widget.find_button.click()
    wait_workers(widget)
    assert "single-channel time-lapse" in widget.status.text()
    assert widget.find_button.isEnabled()


def test_clip_size_and_outlines():
    assert parse_clip_size("32x64x64") == (32, 64, 64)
    box = clip_outlines([{"time": 3, "corner": (10, 20), "downscale": 2}], (8, 16, 16))[0]
    assert box.tolist() == [[3, 10, 20], [3, 10, 52], [3, 42, 52], [3, 42, 20]]


def test_evaluate_shows_generated_and_real_values(make_napari_viewer, wait_workers):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    still = np.repeat(rng.random((6, 1, 16, 16), dtype=np.float32), 8, axis=1)  # still clips: AACD 0
    viewer.add_image(still, name="real clips")
    widget = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert not widget.evaluate_button.isEnabled()  # no model yet
    session_for(viewer).set_model(GanModel.new("savgan", seed=0, **TINY_VIDEO))
    assert [widget.metric_combo.itemData(i) for i in range(widget.metric_combo.count())] == [None, "cells", "digits"]
    widget.layer_picker.setCurrentText("real clips")
    widget.n_spin.setValue(6)
    widget.evaluate_button.click()
    wait_workers(widget, timeout=60000)
    assert widget.metrics["aacd_real"] == 0.0 and widget.metrics["aacd"] > 0
    labels = [widget.table.item(i, 0).text() for i in range(widget.table.rowCount())]
    assert labels == ["Frame pixel FD", "AACD", "FVD (statistics)"]
    assert widget.table.item(1, 2).text() == "0" and widget.table.item(2, 2).text() == ""
    assert "steadier" in widget.table.item(1, 0).toolTip()


def test_metric_rows_pair_values():
    rows = metric_rows({"aacd": 2.0, "aacd_real": 0.5, "mystery": 1.0})
    assert rows[0][:3] == ("AACD", 2.0, 0.5) and rows[1][:3] == ("mystery", 1.0, None)


def test_clips_widget_follows_the_selected_time_lapse(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(_moving_blob(t=6), name="movie A")
    widget = ClipsWidget(viewer)
    viewer.add_image(np.zeros((5, 4, 16, 16), np.float32), name="clips")  # 4-D: not a time-lapse
    assert widget.layer_picker.currentText() == "movie A"
    viewer.add_image(_moving_blob(t=6), name="movie B")
    assert widget.layer_picker.currentText() == "movie B"
    viewer.layers.selection.active = viewer.layers["movie A"]
    assert widget.layer_picker.currentText() == "movie A"


def test_evaluate_a_family_measured_against_labels(make_napari_viewer, wait_workers):
    """An image-driven family (the tests' toy-seg) is evaluated against an image layer AND a Labels layer."""
    from toy_family import toy_pairs

    viewer = make_napari_viewer()
    images, labels = toy_pairs(5, 16)
    viewer.add_image(images, name="cells")
    viewer.add_labels(labels, name="truth")
    widget = EvaluateWidget(viewer)
    session_for(viewer).set_model(GanModel.new("toy-seg"))
    assert widget.labels_picker.isVisibleTo(widget)
    widget.layer_picker.setCurrentText("cells")
    widget.labels_picker.setCurrentText("truth")
    widget.n_spin.setValue(8)
    widget.evaluate()
    wait_workers(widget)
    assert 0.0 <= widget.metrics["pixel_accuracy"] <= 1.0
    assert "5 generated vs 5 real" in widget.status.text() and "has 5 samples" in widget.status.text()
    session_for(viewer).set_model(GanModel.new("dcgan2d", height=16, width=16, latent_dim=8, base_width=8))
    assert not widget.labels_picker.isVisibleTo(widget)


def test_each_clip_is_drawn_where_and_when_it_was_cut(make_napari_viewer, wait_workers):
    viewer = make_napari_viewer()
    viewer.add_image(_moving_blob(t=24), name="movie")
    widget = ClipsWidget(viewer)
    widget.layer_picker.setCurrentText("movie")
    widget.size_edit.setText("8x16x16")
    widget.downscale_spin.setValue(2)
    widget.max_spin.setValue(2)
    widget.stride_spin.setValue(4)
    widget.find_button.click()
    wait_workers(widget)
    layer, clips = widget.clips_layer, widget.clips_layer.metadata["napari_biogan"]["clips"]
    assert len(clips) == 2 and tuple(layer.scale[-2:]) == (2, 2)  # at the movie's scale
    for index in (0, 1):
        viewer.dims.set_current_step(0, index)
        clip = clips[index]
        assert tuple(layer.translate) == (0, clip["time"], *clip["corner"])
