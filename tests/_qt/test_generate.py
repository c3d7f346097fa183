"""Generate widget: layers with named axes, provenance, bit-identical repeats."""

import numpy as np

from napari_biogan._qt.generate_widget import GenerateWidget
from napari_biogan._qt.session import session_for
from napari_biogan.core.export import PROVENANCE_KEY
from napari_biogan.core.model import GanModel


def test_generate_is_reproducible_and_records_provenance(make_napari_viewer, wait_workers, tiny_model_file):
    viewer = make_napari_viewer()
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    model = GanModel.load(tiny_model_file, device="cpu")
    session_for(viewer).set_model(model)
    widget.n_spin.setValue(5)
    widget.seed_spin.setValue(7)
    widget.generate_button.click()
    wait_workers(widget)
    widget.generate_button.click()
    wait_workers(widget)
    assert len(viewer.layers) == 2
    first, second = viewer.layers
    assert first.data.shape == (5, 32, 32)
    assert tuple(first.axis_labels) == ("N", "Y", "X")
    assert np.array_equal(first.data, second.data)
    assert first.data.min() >= 0 and first.data.max() <= 1 and first.data.std() > 0
    prov = first.metadata[PROVENANCE_KEY]
    assert prov["family"] == "dcgan2d" and prov["seed"] == 7 and prov["n"] == 5
    assert prov["model_sha256"] == model.sha256
    # the same pixels as the core call: the widget adds nothing of its own
    assert np.array_equal(first.data, model.sample(5, seed=7, precision="fp32")[:, 0])
    widget.seed_spin.setValue(8)
    widget.generate_button.click()
    wait_workers(widget)
    assert not np.array_equal(viewer.layers[-1].data, first.data)


def test_generate_without_a_model_uses_the_default(make_napari_viewer, wait_workers):
    viewer = make_napari_viewer()
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.n_spin.setValue(2)
    widget.generate_button.click()
    wait_workers(widget)
    session = session_for(viewer)
    assert session.model is not None and session.model.name == "mnist-dcgan"
    assert viewer.layers[-1].data.shape == (2, 32, 32)
