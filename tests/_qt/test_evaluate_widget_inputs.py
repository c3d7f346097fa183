"""The Evaluate widget's rows for the further inputs a family trains on (an attributes table for the Fader
family, read from the contract) and its "Save table as CSV..." button, driven through the real widget."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_biogan._qt.evaluate_widget import EvaluateWidget
from napari_biogan._qt.session import session_for
from napari_biogan.core.model import Model

TINY_FADER = dict(size=16, depth=2, base_width=4, max_width=8, hidden=8, estimator_width=4,
                  attributes=("dx:ordered:CN|MCI|AD",))


def slices(n: int = 6, size: int = 20) -> np.ndarray:
    """Raw 'slices': a bright disc with a dark core that grows with the index."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    return np.stack([200.0 * (r < size * 0.4) - 150.0 * (r < 1 + i % 4) + rng.normal(0, 3, (size, size))
                     for i in range(n)]).clip(0, 255).astype(np.float32)


@pytest.fixture
def fader_widget(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(slices(), name="slices")
    widget = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    model = Model.new("fader", config=Model.new("fader", **TINY_FADER).config)
    session_for(viewer).set_model(model)
    widget.layer_picker.setCurrentText("slices")
    widget.n_spin.setValue(6)
    table = tmp_path / "dx.csv"
    table.write_text("dx\nCN\nCN\nMCI\nMCI\nAD\nAD\n")  # a layer has no file names: rows in its order
    return viewer, widget, table


def test_the_attributes_row_follows_the_model_family(fader_widget):
    viewer, widget, _ = fader_widget
    assert widget.attributes_row.isVisibleTo(widget) and widget.attributes_label.text() == "Attributes table"
    assert not widget.labels_picker.isVisibleTo(widget)  # the Fader family has no labels input
    assert "keyed by file or subject" in widget.attributes_row.edit.placeholderText()
    session_for(viewer).set_model(Model.new("dcgan2d", height=16, width=16, latent_dim=8, base_width=8))
    assert not widget.attributes_row.isVisibleTo(widget) and not widget.attributes_label.isVisibleTo(widget)


def test_evaluating_without_a_table_is_one_sentence(fader_widget, notifications, qtbot):
    _, widget, _ = fader_widget
    widget.evaluate()
    qtbot.waitUntil(lambda: bool(notifications), timeout=5000)
    assert "Choose a CSV table with the real data's 'attributes'" in str(notifications[-1].message)
    assert widget.evaluate_button.isEnabled() and not widget.busy  # nothing started


def test_evaluate_with_a_table_then_save_the_shown_metrics_as_csv(fader_widget, wait_workers, tmp_path,
                                                                  notifications):
    _, widget, table = fader_widget
    assert not widget.save_button.isEnabled()  # nothing to save yet
    widget.attributes_row.set_path(table)
    widget.evaluate_button.click()
    wait_workers(widget, timeout=60000)
    assert 0 <= widget.metrics["reconstruction_mse"] < 1  # 'dx' is not read by the evaluation classifier:
    shown = [widget.table.item(i, 0).text() for i in range(widget.table.rowCount())]  # no swap accuracy
    assert shown[:6] == ["Reconstruction MSE", "Reconstruction sharpness", "Edit identity", "Central CSF (dx CN)",
                         "Central CSF (dx MCI)", "Central CSF (dx AD)"]  # then how CSF follows the input, if it varies
    assert widget.save_button.isEnabled()

    target = tmp_path / "out" / "metrics.csv"
    widget.choose_csv_path = lambda: str(target)  # what the save dialog would return
    widget.save_button.click()
    with open(target, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["metric"] for r in rows] == [key for key in widget.metrics if not key.endswith("_real")]
    assert rows[3]["metric"] == "central_csf_dx_CN" and rows[3]["real"]  # the real slices' value beside it
    assert float(rows[0]["value"]) == pytest.approx(widget.metrics["reconstruction_mse"], rel=1e-5)
    assert rows[0]["attributes"] == str(table) and rows[0]["data"] == "napari layer 'slices'"
    assert rows[0]["metric_set"] == "attributes" and rows[0]["real_samples"] == "6"
    assert f"saved to {target}" in widget.status.text()

    before = target.read_bytes()
    target.write_text("the user's own table\n")
    assert widget.save_csv(str(target)) is None  # a path not confirmed in the dialog: never replaced
    assert target.read_text() == "the user's own table\n"
    assert "exists" in str(notifications[-1].message)
    widget.save_button.click()  # the dialog returned it: the user confirmed replacing it there
    assert target.read_bytes() == before
    widget.choose_csv_path = lambda: ""  # cancelled: nothing written, nothing said
    count = len(notifications)
    assert widget.save_csv() is None and len(notifications) == count
