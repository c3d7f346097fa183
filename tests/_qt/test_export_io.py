"""Export widget, npe2 writer and reader: TIFFs whose provenance reads back; no silent overwrite."""

import numpy as np
import tifffile

from napari_biogan._qt.export_widget import ExportWidget
from napari_biogan._qt.generate_widget import GenerateWidget
from napari_biogan._qt.session import session_for
from napari_biogan.core.export import PROVENANCE_KEY, read_provenance
from napari_biogan.core.model import GanModel


def _generated(make_napari_viewer, wait_workers, model_file, n=4, seed=3):
    viewer = make_napari_viewer()
    model = GanModel.load(model_file, device="cpu")
    session_for(viewer).set_model(model)
    gen, export = GenerateWidget(viewer), ExportWidget(viewer)
    viewer.window.add_dock_widget(gen)
    viewer.window.add_dock_widget(export)
    gen.n_spin.setValue(n)
    gen.seed_spin.setValue(seed)
    gen.generate_button.click()
    wait_workers(gen)
    return viewer, export, model


def test_export_selected_layer_writes_provenance_and_never_overwrites(
        make_napari_viewer, wait_workers, notifications, tiny_model_file, tmp_path):
    viewer, export, model = _generated(make_napari_viewer, wait_workers, tiny_model_file)
    layer = viewer.layers[-1]
    viewer.layers.selection = {layer}
    out = tmp_path / "digits.tif"
    export.output_row.set_path(out)
    export.export_button.click()
    wait_workers(export)
    assert export.written == str(out)
    prov = read_provenance(out)
    assert prov["family"] == "dcgan2d" and prov["seed"] == 3 and prov["model_sha256"] == model.sha256
    assert prov["axes_in"] == "CNYX" and prov["dtype"] == "float32"
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "TYX"
        np.testing.assert_array_equal(tif.asarray(), layer.data)
    # exporting again without the overwrite box refuses, with a notification, and keeps the file
    before = out.stat().st_mtime_ns
    export.export_button.click()
    wait_workers(export)
    assert any("already exists" in str(n.message) for n in notifications)
    assert out.stat().st_mtime_ns == before
    export.overwrite_check.setChecked(True)
    export.dtype_combo.setCurrentText("uint16")
    export.export_button.click()
    wait_workers(export)
    with tifffile.TiffFile(out) as tif:
        stored = tif.asarray()
    assert stored.dtype == np.uint16
    np.testing.assert_allclose(stored / 65535.0, layer.data, atol=1 / 65535)


def test_export_fresh_samples(make_napari_viewer, wait_workers, tiny_model_file, tmp_path):
    viewer, export, model = _generated(make_napari_viewer, wait_workers, tiny_model_file)
    export.from_model.setChecked(True)
    export.n_spin.setValue(3)
    export.seed_spin.setValue(11)
    export.output_row.set_path(tmp_path / "fresh")  # the .tif suffix is added
    export.export_button.click()
    wait_workers(export)
    assert export.written == str(tmp_path / "fresh.tif")
    with tifffile.TiffFile(export.written) as tif:
        data = tif.asarray()
    np.testing.assert_array_equal(data, model.sample(3, seed=11, precision="fp32")[:, 0])
    assert read_provenance(export.written)["n"] == 3


def test_nothing_selected_gives_a_notification(make_napari_viewer, wait_workers, notifications, tiny_model_file,
                                               tmp_path):
    viewer, export, _ = _generated(make_napari_viewer, wait_workers, tiny_model_file)
    viewer.layers.selection.clear()
    export.output_row.set_path(tmp_path / "x.tif")
    export.export_button.click()
    wait_workers(export)
    assert any("Select one or more image layers" in str(n.message) for n in notifications)
    assert not (tmp_path / "x.tif").exists()


def test_save_layers_and_open_with_the_plugin(make_napari_viewer, wait_workers, tiny_model_file, tmp_path):
    viewer, _, model = _generated(make_napari_viewer, wait_workers, tiny_model_file)
    layer = viewer.layers[-1]
    out = tmp_path / "saved.tif"
    written = viewer.layers.save(str(out), selected=False, plugin="napari-biogan")
    assert written == [str(out)]
    assert read_provenance(out)["model_sha256"] == model.sha256
    opened = viewer.open(str(out), plugin="napari-biogan")
    assert len(opened) == 1
    back = opened[0]
    np.testing.assert_array_equal(back.data, layer.data)
    assert tuple(back.axis_labels) == ("N", "Y", "X")
    assert back.metadata[PROVENANCE_KEY]["seed"] == 3


def _toy_outputs(make_napari_viewer, wait_workers):
    """A viewer with the toy family's three outputs of a 'cells' image layer (Generate widget)."""
    from toy_family import toy_pairs

    viewer = make_napari_viewer()
    session_for(viewer).set_model(GanModel.new("toy-seg"))
    viewer.add_image(toy_pairs(2, 24)[0], name="cells")
    gen, export = GenerateWidget(viewer), ExportWidget(viewer)
    viewer.window.add_dock_widget(gen)
    viewer.window.add_dock_widget(export)
    gen.generate_button.click()
    wait_workers(gen)
    return viewer, export, {layer.name.rsplit(" ", 1)[-1]: layer for layer in gen.last_layers}


def test_export_a_labels_layer_and_open_it_with_the_plugin(make_napari_viewer, wait_workers, notifications,
                                                          tmp_path):
    from napari.layers import Labels

    from napari_biogan.io import get_reader

    viewer, export, layers = _toy_outputs(make_napari_viewer, wait_workers)
    labels = layers["labels"]
    assert isinstance(labels, Labels)
    # labels and images do not share a file
    viewer.layers.selection = {labels, layers["edited"]}
    export.output_row.set_path(tmp_path / "mixed.tif")
    export.export_button.click()
    assert any("Save labels and images to separate files" in str(n.message) for n in notifications)
    assert not (tmp_path / "mixed.tif").exists()
    viewer.layers.selection = {labels}
    out = tmp_path / "labels.tif"
    export.output_row.set_path(out)
    export.dtype_combo.setCurrentText("uint16")  # labels are written as integers whatever is chosen
    export.export_button.click()
    wait_workers(export)
    assert export.written == str(out)
    (data, meta, kind), = get_reader(str(out))(str(out))
    assert kind == "labels" and data.dtype.kind in "iu"
    np.testing.assert_array_equal(data, labels.data)
    ours, back = labels.metadata[PROVENANCE_KEY], meta["metadata"][PROVENANCE_KEY]
    assert {k: back[k] for k in ours if k != "axes"} == {k: v for k, v in ours.items() if k != "axes"}
    assert back["layer_type"] == "labels" and back["axes"] == "NYX"
    opened, = viewer.open(str(out), plugin="napari-biogan")
    assert isinstance(opened, Labels) and tuple(opened.axis_labels) == ("N", "Y", "X")
    # File > Save Layers with one Labels layer picks the plugin's labels writer
    saved = viewer.layers.save(str(tmp_path / "saved.tif"), selected=True, plugin="napari-biogan")
    assert saved == [str(tmp_path / "saved.tif")] and read_provenance(saved[0])["layer_type"] == "labels"


def test_fresh_samples_need_a_seeded_model(make_napari_viewer, wait_workers, notifications, tmp_path):
    viewer, export, _ = _toy_outputs(make_napari_viewer, wait_workers)
    assert set(export.controls_box.editors) == {"style", "gain"}
    export.from_model.setChecked(True)
    export.output_row.set_path(tmp_path / "fresh.tif")
    export.export_button.click()
    wait_workers(export)
    messages = [str(n.message) for n in notifications]
    assert any("from its 'image' input, not from a seed" in m for m in messages), messages
    assert not list(tmp_path.iterdir())


def test_several_outputs_go_to_one_file_each(tmp_path):
    from napari_biogan.core.export import output_paths

    assert output_paths(str(tmp_path / "x.tif"), ["image"]) == {"image": tmp_path / "x.tif"}
    assert output_paths(str(tmp_path / "x.tif"), ["edited", "labels"]) == {
        "edited": tmp_path / "x_edited.tif", "labels": tmp_path / "x_labels.tif"}
