"""The cell models in the real GUI: "Find this image in the model" on channel layers (Explore), the
single-cells mode of the training-crops widget, the yeast-cells sample and its screenshot.

Tiny untrained cell models; the rcell2 sample and the shipped model are used only where present
(skipped cleanly without ../shared/data). NAPARI_BIOGAN_SCREENSHOTS=1 writes docs/screenshots/cells.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_biogan._qt.clips_widget import CELLS, ClipsWidget
from napari_biogan._qt.explore_widget import ExploreWidget
from napari_biogan._qt.session import session_for
from napari_biogan.core.export import PROVENANCE_KEY
from napari_biogan.core.model import Model
from napari_biogan.io import output_layers

ROOT = Path(__file__).resolve().parents[2]
RCELL2 = ROOT / ".." / "shared" / "data" / "rcell2_yeast"
#: the shipped yeast-cells model (whichever variant scored best; see README "Cells")
SHIPPED = next(iter(sorted((ROOT / "src" / "napari_biogan" / "zoo").glob("yeast-cells-*.safetensors"))), ROOT / "none")
SAVE = os.environ.get("NAPARI_BIOGAN_SCREENSHOTS") == "1"


def _tiny_cells(variant: str = "star") -> Model:
    """An untrained tiny cell model whose weights are scaled up: its cells differ from seed to seed
    (an untrained generator's output is nearly flat grey)."""
    model = Model.new("cells", variant=variant, height=16, width=16, latent_dim=12, shape_latent=6, base_width=8,
                      critic_width=8, proteins=("YFP", "TFP"), shape_name="bright-field", seed=2)
    with torch.no_grad():
        for module in model.nets["generator"].modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.ConvTranspose2d)):
                module.weight.mul_(10)
    return model


def _explore(make_napari_viewer, model, show=False):
    viewer = make_napari_viewer(show=show)
    session_for(viewer).set_model(model)
    widget = ExploreWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def _settled(qtbot, widget, timeout=20000):
    qtbot.waitUntil(lambda: not widget.busy and widget.applied_id == widget.renderer.last_id, timeout=timeout)


def _channel_layers(viewer, model, seed: int, name: str, strip_metadata: bool = False) -> np.ndarray:
    """One cell of ``model`` as a user has it: one image layer per channel, named "<name> <channel>"."""
    cell = model.sample(1, seed=seed, precision="fp32")[0]
    for data, kwargs, _ in output_layers({"cell": cell}, model.outputs, "", model.family.sample_axes, name, {}):
        if strip_metadata:  # a user's own layers: only their names say the channel
            kwargs.pop("metadata")
        viewer.add_image(data, **kwargs)
    return cell


def test_find_this_image_fits_every_channel_layer_and_explore_continues_from_it(make_napari_viewer, qtbot):
    model = _tiny_cells()
    viewer, widget = _explore(make_napari_viewer, model)
    qtbot.waitUntil(lambda: bool(widget.direction_sliders), timeout=20000)
    _settled(qtbot, widget)
    assert widget.fit_button.text() == "Find this image in the model"
    target = _channel_layers(viewer, model, seed=5, name="my cell", strip_metadata=True)
    viewer.layers.selection.active = viewer.layers["my cell YFP"]  # the user selects one channel layer
    widget.fit_button.click()
    qtbot.waitUntil(lambda: widget.last_fit is not None, timeout=20000)
    _settled(qtbot, widget)
    fit = widget.last_fit
    unrelated = float(((model.sample(1, seed=0, precision="fp32")[0] - target) ** 2).mean())
    assert fit.mse < unrelated / 10  # all three channels were fitted, not only the selected one
    assert widget.source_kind() == "fitted" and "Found" in widget.status.text()
    torch.testing.assert_close(widget.current_latent(), fit.latent)
    shown = np.stack([viewer.layers[f"explore {c.name}"].data for c in model.channels])
    assert float(((shown - target) ** 2).mean()) < unrelated / 10  # the reconstruction is shown
    origin = viewer.layers["explore YFP"].metadata[PROVENANCE_KEY]["point"]["origin"]
    assert origin["fitted_to"] == "my cell bright-field, my cell YFP, my cell TFP"
    # a keyframe keeps the found cell; the class control moves on from it with the same latent
    widget.add_keyframe()
    assert widget.keyframes[-1].origin["fitted_to"].startswith("my cell bright-field")
    protein = next(w for w in widget.control_widgets if w.control.name == "protein")
    protein.setValue(2)
    _settled(qtbot, widget)
    torch.testing.assert_close(widget.current_latent(), fit.latent)
    assert float(viewer.layers["explore YFP"].data.max()) == 0.0  # only TFP shown now, same cell
    # a path from the found cell (all proteins) to the same cell showing TFP: every channel, frames on T
    widget.add_keyframe()
    widget.steps_spin.setValue(3)
    widget.path_button.click()
    qtbot.waitUntil(lambda: "explore path YFP" in viewer.layers and not widget.busy, timeout=20000)
    path = [viewer.layers[f"explore path {c.name}"] for c in model.channels]
    assert all(layer.data.shape == (4, 16, 16) for layer in path)
    record = path[0].metadata[PROVENANCE_KEY]
    assert [k["controls"]["protein"] for k in record["keyframes"]] == [0, 2]
    assert len(record["keyframes"][0]["state"]["latent"]) == 12
    np.testing.assert_allclose(path[0].data[0], target[0], atol=0.1)  # starts at the found cell's shape


def test_find_this_image_takes_one_channel_stack_and_says_which_channels_were_missing(make_napari_viewer, qtbot,
                                                                                       notifications):
    model = _tiny_cells("separable")
    viewer, widget = _explore(make_napari_viewer, model)
    qtbot.waitUntil(lambda: bool(widget.direction_sliders), timeout=20000)
    _settled(qtbot, widget)
    cell = model.sample(1, seed=7, precision="fp32")[0]
    viewer.add_image(cell, name="stack")  # (C, Y, X), as a 3-channel TIFF opens
    widget.fit_button.click()
    qtbot.waitUntil(lambda: widget.last_fit is not None, timeout=20000)
    _settled(qtbot, widget)
    assert widget._fitted[2]["fitted_to"] == "stack" and widget.last_fit.mse < 0.05
    # a (shape, YFP) pair of layers: TFP is taken as empty, and the status says so
    widget.last_fit = None
    viewer.add_image(cell[0], name="pair bright-field")
    viewer.add_image(cell[1], name="pair YFP")
    widget.fit_button.click()
    assert "TFP" in widget.status.text() and "empty" in widget.status.text()
    qtbot.waitUntil(lambda: widget.last_fit is not None, timeout=20000)
    _settled(qtbot, widget)
    # a layer that is no channel of the model: one plain sentence, nothing fitted
    widget.last_fit = None
    viewer.add_image(cell[0], name="something else")
    widget.fit_button.click()
    qtbot.wait(100)
    assert widget.last_fit is None and widget.fit_button.isEnabled()
    assert any("none of them" in str(n.message) for n in notifications)


def _field(n_cells: int = 4, size=(96, 128)):
    """A bright-field-like field with dark-rimmed round cells, and a protein channel bright in each cell."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size[0], :size[1]]
    shape = 100 + rng.normal(0, 1, size)
    protein = 10 + rng.normal(0, 1, size)
    labels = np.zeros(size, np.int32)
    centres = [(24 + 48 * (i // 2), 30 + 60 * (i % 2)) for i in range(n_cells)]
    for i, (y, x) in enumerate(centres):
        r = np.hypot(yy - y, xx - x)
        shape -= 60 * np.exp(-((r - 7) ** 2) / 4)
        protein += 80 * (r < 6)
        labels[r < 8] = i + 1
    return shape.astype(np.float32), protein.astype(np.float32), labels, np.asarray(centres, float)


def test_crop_cells_mode_from_points_labels_and_detection(make_napari_viewer, wait_workers, tmp_path):
    from napari_biogan.core.model import Model as _Model
    from napari_biogan.data.inputs import load_training_inputs

    shape, protein, labels, centres = _field()
    viewer = make_napari_viewer()
    viewer.add_image(shape, name="BF")
    viewer.add_image(protein, name="GFP", colormap="green", blending="additive")
    widget = ClipsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_mode(CELLS)
    box = widget.cells_box
    assert box.isVisibleTo(widget) and not widget.clips_box.isVisibleTo(widget)
    box.shape_picker.setCurrentText("BF")
    box.set_proteins(["GFP"])
    box.size_spin.setValue(16)
    # centres clicked as a Points layer; the crops are saved as a training folder
    viewer.add_points(centres, name="cells")
    box.set_centres_source("points")
    box.points_picker.setCurrentText("cells")
    box.folder_row.set_path(tmp_path / "crops")
    box.crop_button.click()
    wait_workers(widget)
    bf, gfp = box.crop_layers
    assert bf.name == "cells of BF BF" and bf.data.shape == (4, 16, 16) and gfp.colormap.name == "green"
    assert gfp.data[:, 8, 8].min() > 200 and gfp.data[:, 0, 0].max() < 100  # each crop centred on a cell
    assert len(viewer.layers["cell centres on BF"].data) == 4
    model = _Model.new("cells", height=16, width=16, base_width=8, critic_width=8)
    loaded = load_training_inputs(model.family, model.config, {"image": str(tmp_path / "crops")})
    assert loaded["image"].shape == (4, 2, 16, 16) and loaded["class_names"] == ["GFP"]
    # centres from a Labels layer, then found by detection: the same cells
    viewer.add_labels(labels, name="masks")
    box.folder_row.set_path("")
    box.set_centres_source("labels")
    box.labels_picker.setCurrentText("masks")
    box.crop_button.click()
    wait_workers(widget)
    np.testing.assert_allclose(box.crop_layers[0].metadata[PROVENANCE_KEY]["centres"], centres, atol=0.5)
    box.set_centres_source("detect")
    box.crop_button.click()
    wait_workers(widget)
    found = np.asarray(box.crop_layers[0].metadata[PROVENANCE_KEY]["centres"])
    assert len(found) == 4 and np.abs(np.sort(found, 0) - np.sort(centres, 0)).max() < 2.0


def test_crop_cells_mode_says_what_is_missing(make_napari_viewer, notifications):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="BF")
    widget = ClipsWidget(viewer)
    widget.set_mode(CELLS)
    widget.cells_box.crop_button.click()
    assert any("Tick the protein channel layers" in str(n.message) for n in notifications)


@pytest.mark.skipif(not RCELL2.is_dir() or not SHIPPED.is_file(), reason="needs ../shared/data and the shipped model")
def test_yeast_sample_found_in_the_shipped_model_screenshot(make_napari_viewer, qtbot, wait_workers):
    """The sample's held-out cells, the shipped model in Explore, one cell found; the README screenshot."""
    from qtpy.QtCore import Qt

    from napari_biogan.sample_data import yeast_cells

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 860)
    for data, kwargs, kind in yeast_cells():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    session_for(viewer).set_model(Model.load(SHIPPED, device="cpu"))
    dock, widget = viewer.window.add_plugin_dock_widget("napari-biogan", "Explore")
    viewer.window._qt_window.resizeDocks([dock], [430], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: bool(widget.direction_sliders), timeout=60000)
    _settled(qtbot, widget)
    viewer.dims.set_current_step(0, 2)  # a cell of median fit (benchmarks: the 16 sample cells' MSE)
    viewer.layers.selection.active = viewer.layers["yeast cells TFP"]
    widget.fit_button.click()
    qtbot.waitUntil(lambda: widget.last_fit is not None, timeout=60000)
    _settled(qtbot, widget)
    assert widget.last_fit.mse < 0.05 and "Found" in widget.status.text()
    widget.add_keyframe()  # the found cell as the first keyframe of a path
    assert widget.keyframes[0].origin["fitted_to"].startswith("yeast cells bright-field")
    # one channel a grid cell: the real cell's bright-field, YFP, TFP, then the model's
    viewer.grid.enabled, viewer.grid.shape, viewer.grid.stride = True, (2, 3), 1
    viewer.reset_view()
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    rgb = shot[..., :3].astype(np.float32)
    assert rgb.std() > 10 and len(np.unique(rgb.reshape(-1, 3)[::7], axis=0)) > 50
    if SAVE:
        import imageio.v3 as iio

        (ROOT / "docs" / "screenshots").mkdir(parents=True, exist_ok=True)
        iio.imwrite(ROOT / "docs" / "screenshots" / "cells.png", shot)


@pytest.mark.skipif(not RCELL2.is_dir(), reason="needs ../shared/data")
def test_crop_cells_of_a_real_field_screenshot(make_napari_viewer, qtbot, wait_workers):
    """One rcell2 field (bright-field, YFP, TFP layers), its cells detected and cropped; the README screenshot."""
    import tifffile
    from qtpy.QtCore import Qt

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 860)
    for channel, colour, shown in (("BF", "gray", (0.5, 99.8)), ("YFP", "green", (90, 99.95)), ("TFP", "cyan", None)):
        field = tifffile.imread(RCELL2 / "fields" / f"{channel}_Position4_time10.tif")[:400, :520]
        low, high = np.percentile(field, shown or (0.5, 99.8))  # YFP: its bright spots over the bright-field
        viewer.add_image(field, name=channel, colormap=colour, blending="additive",
                         contrast_limits=(float(low), float(high)), visible=shown is not None)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-biogan", "Clips")
    viewer.window._qt_window.resizeDocks([dock], [430], Qt.Orientation.Horizontal)
    widget.set_mode(CELLS)
    box = widget.cells_box
    box.shape_picker.setCurrentText("BF")
    box.set_proteins(["YFP", "TFP"])
    box.set_centres_source("detect")
    box.crop_button.click()
    wait_workers(widget, timeout=60000)
    crops = box.crop_layers
    assert [layer.name for layer in crops] == ["cells of BF BF", "cells of BF YFP", "cells of BF TFP"]
    assert len(crops[0].data) > 20 and crops[0].data.shape[1:] == (32, 32)
    for layer in crops:
        layer.visible = False  # the field with the crop outlines; the crops are layers of their own
    viewer.reset_view()
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot[..., :3].std() > 10
    if SAVE:
        import imageio.v3 as iio

        iio.imwrite(ROOT / "docs" / "screenshots" / "cells_crops.png", shot)
