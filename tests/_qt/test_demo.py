"""`napari-biogan demo` docks every widget and shows samples of the shipped default model."""

from napari_biogan._qt.demo import WIDGETS, open_demo
from napari_biogan._qt.session import session_for
from napari_biogan.core.zoo import resolve_model


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
