"""`napari-biogan demo` docks every widget and shows samples of the shipped default model."""

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


def test_demo_opens_the_cell_video_model_when_shipped(make_napari_viewer, qtbot):
    path = demo_model()
    shipped = (ZOO_DIR / f"{DEMO_MODEL}.safetensors").is_file()
    assert path.stem == (DEMO_MODEL if shipped else "mnist-dcgan")
    if not shipped:
        return
    viewer = make_napari_viewer()
    open_demo(viewer, path, n=2, seed=0)
    model = session_for(viewer).model
    assert model.family.name == "savgan" and model.config.attention == "nystrom"
    videos = lambda: [layer for layer in viewer.layers if layer.name.startswith(DEMO_MODEL)]  # noqa: E731
    qtbot.waitUntil(lambda: len(videos()) == 1, timeout=60000)
    assert videos()[0].data.shape == (2, model.config.frames, model.config.height, model.config.width)
