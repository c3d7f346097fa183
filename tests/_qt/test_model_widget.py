"""Model widget: shipped models, own files, wrong files, TIFF provenance, one session per viewer."""

from napari_biogan._qt.explore_widget import ExploreWidget
from napari_biogan._qt.model_widget import ModelWidget
from napari_biogan._qt.session import session_for
from napari_biogan.core.export import write_tiff
from napari_biogan.core.model import GanModel
from napari_biogan.core.zoo import resolve_model


def _model_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = ModelWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def test_load_the_shipped_model_and_show_its_card(make_napari_viewer, wait_workers):
    viewer, widget = _model_widget(make_napari_viewer)
    names = [widget.model_combo.itemText(i) for i in range(widget.model_combo.count())]
    assert any(name.startswith("mnist-dcgan") for name in names)
    assert not any("classifier" in name for name in names)  # only generators are offered
    widget.model_combo.setCurrentIndex(next(i for i, n in enumerate(names) if n.startswith("mnist-dcgan")))
    widget.load_button.click()
    wait_workers(widget)
    model = session_for(viewer).model
    assert model is not None and model.name == "mnist-dcgan"
    text = widget.card_view.toPlainText()
    assert "mnist-dcgan" in text and model.family.title in text and model.sha256 in text
    # plain words: a duration, the metric's meaning, no raw metric keys or bare seconds
    assert "3,000 steps in 14 min" in text and "Pixel FD" in text and "lower is closer" in text
    assert "fd_pixels" not in text and " s on" not in text


def test_the_card_names_the_3dgan_variant_and_keeps_text_entries_out_of_the_metrics():
    from napari_biogan._qt.model_widget import format_card
    from napari_biogan.core.model import GanModel
    from napari_biogan.core.zoo import ZOO_DIR

    path = ZOO_DIR / "t98g-3dgan.safetensors"
    if not path.is_file():
        import pytest

        pytest.skip("t98g-3dgan is not shipped in this checkout")
    text = format_card(GanModel.load(path, device="cpu"))
    assert "variant 3DGAN" in text and "[real 0.871]" in text
    assert "Compared with: the 188 training clips" in text and "compared_with" not in text
    # which weights the file holds, and the recipe's phases (the shipped file keeps no raw weights: no claim of them)
    assert "Weights: exponential moving average of generator (decay 0.99: about the last 100 steps)\n" in text
    assert "In phases: steps 1-2,000: ema_decay 0.999; steps 2,001-2,500: ema_decay 0.99, lr_g 2.5e-05" in text


def test_the_default_model_is_preselected_and_a_choice_survives_a_refresh(make_napari_viewer):
    _, widget = _model_widget(make_napari_viewer)
    assert widget.model_combo.currentText().startswith("mnist-dcgan")  # not whichever sorts first
    other = next(i for i in range(widget.model_combo.count()) if widget.model_combo.currentIndex() != i)
    widget.model_combo.setCurrentIndex(other)
    chosen = widget.model_combo.currentData()
    widget.refresh_models()
    assert widget.model_combo.currentData() == chosen


def test_the_list_follows_a_model_set_elsewhere(make_napari_viewer):
    viewer, widget = _model_widget(make_napari_viewer)
    session_for(viewer).set_model(GanModel.load(resolve_model("mmnist-savgan"), device="cpu"))  # as the demo does
    assert widget.model_combo.currentText().startswith("mmnist-savgan")


def test_wrong_file_gives_a_notification_and_no_crash(make_napari_viewer, wait_workers, notifications,
                                                      tiny_model_file, tmp_path):
    viewer, widget = _model_widget(make_napari_viewer)
    widget.load_model_file(tiny_model_file)
    wait_workers(widget)
    good = session_for(viewer).model
    bad = tmp_path / "not-a-model.safetensors"
    bad.write_text("hello, I am not a model")
    widget.file_row.set_path(bad)
    widget.file_button.click()
    wait_workers(widget)
    messages = [str(n.message) for n in notifications]
    assert any("not-a-model.safetensors" in m and "not a napari-biogan model" in m for m in messages)
    assert session_for(viewer).model is good  # what the user had is kept
    assert "Not loaded" in widget.status.text()
    widget.open_tiff(tmp_path / "missing.tif")
    wait_workers(widget)
    assert any("missing.tif" in str(n.message) for n in notifications)


def test_replacing_the_model_releases_the_old_one_and_all_widgets_follow(
        make_napari_viewer, wait_workers, tiny_model_file):
    viewer, widget = _model_widget(make_napari_viewer)
    session = session_for(viewer)
    first = GanModel.load(tiny_model_file, device="cpu")
    released = []
    first.release = lambda: released.append(True)
    session.set_model(first)
    explore = ExploreWidget(viewer)
    viewer.window.add_dock_widget(explore)
    assert session_for(viewer) is explore.session is widget.session
    widget.family_combo.setCurrentIndex(widget.family_combo.findData("dcgan2d"))
    widget.new_button.click()
    wait_workers(widget, explore)
    assert released == [True]
    assert session.model is not first and session.model.path is None
    assert "new dcgan2d" in widget.status.text()


def test_read_the_provenance_of_an_exported_tiff(make_napari_viewer, wait_workers, tmp_path):
    viewer, widget = _model_widget(make_napari_viewer)
    zoo = GanModel.load(resolve_model(None), device="cpu")
    images = zoo.sample(2, seed=4, precision="fp32")
    out = write_tiff(tmp_path / "made.tif", images, "NCYX",
                     {"family": "dcgan2d", "model": zoo.name, "model_sha256": zoo.sha256, "seed": 4})
    widget.tiff_row.set_path(out)
    widget.tiff_button.click()
    wait_workers(widget)
    assert '"seed": 4' in widget.card_view.toPlainText()
    assert viewer.layers[-1].data.shape == (2, 32, 32)
    assert widget.tiff_model_button.isEnabled()
    widget.tiff_model_button.click()
    wait_workers(widget)
    assert session_for(viewer).model.sha256 == zoo.sha256


def test_session_releases_on_replace_and_when_the_last_widget_goes():
    from napari_biogan._qt.session import ModelSession

    class Fake:
        def __init__(self):
            self.released = 0

        def release(self):
            self.released += 1

    session, seen = ModelSession(), []
    session.model_changed.connect(seen.append)
    a, b = Fake(), Fake()
    session.set_model(a)
    session.set_model(b)
    assert (a.released, b.released) == (1, 0) and seen == [a, b]
    session.attach("w1")
    session.attach("w2")
    session.detach(id("w1"))
    assert b.released == 0
    session.detach(id("w2"))
    assert b.released == 1 and session.model is None and seen[-1] is None
