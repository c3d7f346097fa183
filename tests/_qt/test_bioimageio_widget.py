"""Model widget: "Export for the BioImage Model Zoo..." (enabled only for exportable models, a worker, messages)."""

from __future__ import annotations

import zipfile

import pytest

from napari_biogan._qt.model_widget import ModelWidget
from napari_biogan._qt.session import session_for
from napari_biogan.core.model import Model

pytest.importorskip("bioimageio.core")

TINY = dict(base_width=4, depth=2, disc_width=4, crop=16, landmarks=8)


@pytest.fixture
def widget(make_napari_viewer, tmp_path, monkeypatch):
    from bioimageio.spec._internal._settings import settings

    monkeypatch.setattr(settings, "cache_path", tmp_path / "bioimageio-cache")
    viewer = make_napari_viewer()
    widget = ModelWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def test_the_button_follows_the_model_and_says_why_not(widget):
    button = widget.bioimageio_button
    assert button.text() == "Export for the BioImage Model Zoo..."
    assert not button.isEnabled() and button.toolTip() == "Load a model first."
    session_for(widget.viewer).set_model(Model.new("dcgan2d", height=16, width=16, latent_dim=8, base_width=8))
    assert not button.isEnabled() and "seed" in button.toolTip()
    session_for(widget.viewer).set_model(Model.new("segmentation", **TINY))
    assert button.isEnabled() and "BioImage Model Zoo package" in button.toolTip()


def test_export_writes_a_tested_package_with_progress(widget, tmp_path, qtbot, wait_workers, notifications,
                                                      monkeypatch):
    import napari_biogan.core.bioimageio as bioimageio

    session_for(widget.viewer).set_model(Model.new("segmentation", **TINY))
    target = tmp_path / "tiny.zip"
    asked = []
    widget.ask_package_path = lambda model: asked.append(model.name) or str(target)
    steps = []
    original = widget._export_progress
    monkeypatch.setattr(widget, "_export_progress", lambda step: (steps.append(step), original(step)))
    real_export = bioimageio.export_bioimageio
    monkeypatch.setattr(bioimageio, "export_bioimageio",  # a small tile keeps the package test quick
                        lambda *args, **kwargs: real_export(*args, tile=64, **kwargs))
    widget.bioimageio_button.click()
    assert asked and not widget.bioimageio_button.isEnabled()  # no second export while one runs
    wait_workers(widget, timeout=240000)
    assert zipfile.is_zipfile(target)
    assert steps and steps[-1][0] == steps[-1][1]  # the bar reached its end
    assert "passed bioimageio.core's model test" in widget.status.text()
    assert any(str(target) in str(n.message) for n in notifications)
    assert widget.bioimageio_button.isEnabled() and widget._export_task is None


def test_refusals_and_errors_are_one_notification(widget, tmp_path, wait_workers, notifications):
    session_for(widget.viewer).set_model(Model.new("dcgan2d", height=16, width=16, latent_dim=8, base_width=8))
    widget.export_bioimageio_to(tmp_path / "gan.zip")
    assert not (tmp_path / "gan.zip").exists()
    assert any("seed" in str(n.message) for n in notifications)
    session_for(widget.viewer).set_model(Model.new("segmentation", **TINY))
    existing = tmp_path / "mine.zip"
    existing.write_bytes(b"keep me")
    widget.export_bioimageio_to(existing)  # not confirmed by a dialog: never overwritten
    wait_workers(widget, timeout=60000)
    assert existing.read_bytes() == b"keep me"
    assert any("already exists" in str(n.message) for n in notifications)
    assert "Not exported" in widget.status.text() and widget.bioimageio_button.isEnabled()
    widget.ask_package_path = lambda model: ""  # a cancelled dialog does nothing
    widget.bioimageio_button.click()
    assert not widget.busy
