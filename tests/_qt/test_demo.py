"""`napari-biogan demo` docks every widget and shows samples of the shipped default model."""

import pytest

from napari_biogan._qt.demo import WIDGETS, open_demo
from napari_biogan._qt.session import session_for
from napari_biogan.core.zoo import DEMO_MODEL, ZOO_DIR, demo_model, resolve_model


def test_demo_docks_widgets_and_generates(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widgets = open_demo(viewer, resolve_model(None), n=4, seed=1)
    assert set(widgets) == set(WIDGETS)
    assert session_for(viewer).model.name == "mnist-dcgan"
    samples = lambda: [layer for layer in viewer.layers if layer.name.startswith("mnist-dcgan seed 1")]  # noqa: E731
    qtbot.waitUntil(lambda: len(samples()) == 1, timeout=30000)
    layer = samples()[0]
    assert layer.data.shape == (4, 32, 32)
    assert layer.data.std() > 0.05  # digits, not a blank or constant image


def test_demo_falls_back_to_the_default_model_without_the_cell_video_model(monkeypatch, tmp_path):
    from napari_biogan.core import zoo

    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)  # a zoo without the cell-video model
    monkeypatch.setattr(zoo, "resolve_model", lambda name=None: tmp_path / "mnist-dcgan.safetensors")
    assert zoo.demo_model().stem == "mnist-dcgan"


@pytest.mark.skipif(not (ZOO_DIR / f"{DEMO_MODEL}.safetensors").is_file(),
                    reason=f"the cell-video model {DEMO_MODEL} is not shipped in this checkout")
def test_demo_opens_the_cell_video_model_when_shipped(make_napari_viewer, qtbot, wait_workers):
    path = demo_model()
    assert path.stem == DEMO_MODEL
    viewer = make_napari_viewer()
    widgets = open_demo(viewer, path, n=2, seed=0)
    model = session_for(viewer).model
    # the T98G-recipe 3DGAN: frames generated beyond the clip and cropped (the paper's network has none)
    assert model.family.name == "savgan" and model.config.variant == "3dgan" and model.config.margin_frames == 8
    videos = lambda: [layer for layer in viewer.layers if layer.name.startswith(DEMO_MODEL)]  # noqa: E731
    qtbot.waitUntil(lambda: len(videos()) == 1, timeout=60000)
    assert videos()[0].data.shape == (2, model.config.frames, model.config.height, model.config.width)
    # Explore's principal directions take seconds for this video model: a worker left running at exit
    # has its signals deleted under it and aborts the test process
    wait_workers(*widgets.values(), timeout=120000)
