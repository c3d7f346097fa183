"""Labels in our TIFFs: integers written as they are and read back as Labels layers; signed maps keep
their negative values; labels and images never share a file."""

import numpy as np
import pytest
import tifffile

from napari_biogan import io
from napari_biogan.core.errors import DataError, OutputExistsError
from napari_biogan.core.export import PROVENANCE_KEY, read_provenance, read_tiff_axes, write_tiff
from napari_biogan.core.model import Model
from napari_biogan.core.provenance import provenance
from toy_family import toy_pairs


@pytest.mark.parametrize("high, stored", [(2, np.uint8), (255, np.uint8), (300, np.uint16),
                                          (70_000, np.float32)])
def test_labels_are_written_as_they_are(tmp_path, high, stored):
    labels = np.zeros((3, 6, 8), np.int64)
    labels[1, 2:4, 3:5] = high
    labels[2, 0, 0] = 1
    path = write_tiff(tmp_path / "labels.tif", labels, "NYX", {"family": "toy-seg"}, dtype="labels")
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.series[0].axes == "TYX"  # N -> ImageJ's T, as for images
        assert tif.series[0].dtype == stored
    prov = read_provenance(path)
    assert prov["dtype"] == "labels" and prov["layer_type"] == "labels" and "scale" not in prov
    assert prov["family"] == "toy-seg" and prov["axes_in"] == "NYX"
    back, axes = read_tiff_axes(path)
    assert axes == "NYX"
    np.testing.assert_array_equal(back, labels)  # never scaled
    with pytest.raises(OutputExistsError):
        write_tiff(path, labels, "NYX", {}, dtype="labels")


@pytest.mark.parametrize("bad, words", [(np.array([[-1, 0], [1, 2]]), "0 or more"),
                                        (np.array([[0.5, 0.0], [1.0, 2.0]]), "whole numbers"),
                                        (np.array([[np.nan, 0.0], [1.0, 2.0]]), "whole numbers"),
                                        (np.array([[2 ** 25, 0], [1, 2]]), "fit an ImageJ TIFF")])
def test_bad_labels_are_refused_in_one_sentence(tmp_path, bad, words):
    with pytest.raises(DataError, match=words) as info:
        write_tiff(tmp_path / "bad.tif", bad, "YX", {}, dtype="labels")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "bad.tif").exists()


def test_whole_float_labels_are_accepted(tmp_path):
    path = write_tiff(tmp_path / "f.tif", np.array([[0.0, 3.0], [1.0, 2.0]]), "YX", {}, dtype="labels")
    np.testing.assert_array_equal(read_tiff_axes(path)[0], [[0, 3], [1, 2]])


def _toy_layers():
    model = Model.new("toy-seg")
    images, _ = toy_pairs(3, 24)
    outputs = model.run({"image": images}, {"style": 1}, precision="fp32")
    record = provenance(model, source="cells", controls={"style": 1})
    return {meta["name"]: (data, meta, kind)
            for data, meta, kind in io.output_layers(outputs, model.outputs, "N", ("Y", "X"), "toy", record)}


def test_a_labels_layer_round_trips_through_the_npe2_writer_and_reader(tmp_path):
    data, meta, kind = _toy_layers()["toy labels"]
    assert kind == "labels"
    written = io.write_layers(str(tmp_path / "labels"), [(data, meta, kind)])  # the .tif suffix is added
    assert written == [str(tmp_path / "labels.tif")]
    reader = io.get_reader(written[0])
    assert reader is io.read_tiff
    (back, back_meta, back_kind), = reader(written[0])
    assert back_kind == "labels"
    assert back.dtype.kind in "iu"
    np.testing.assert_array_equal(back, data)
    assert tuple(back_meta["axis_labels"]) == ("N", "Y", "X")
    ours, theirs = meta["metadata"][PROVENANCE_KEY], back_meta["metadata"][PROVENANCE_KEY]
    assert theirs["classes"] == ["background", "cell", "edge"]
    for key in ("family", "model", "source", "controls", "output", "output_kind", "classes"):
        assert theirs[key] == ours[key], key
    assert theirs["layer_type"] == "labels" and theirs["source_file"] == written[0]


def test_a_signed_layer_keeps_its_negative_values(tmp_path):
    data, meta, kind = _toy_layers()["toy change"]
    assert data.min() < 0
    written = io.write_layers(str(tmp_path / "change.tif"), [(data, meta, kind)])
    (back, back_meta, back_kind), = io.read_tiff(written[0])
    assert back_kind == "image"
    np.testing.assert_array_equal(back, data)
    low, high = back_meta["contrast_limits"]
    assert low == -high and high == pytest.approx(float(np.abs(data).max()))
    assert back_meta["colormap"] == "PiYG"  # the family's diverging colormap
    assert back_meta["metadata"][PROVENANCE_KEY]["output_kind"] == "signed"


def test_signed_maps_are_never_scaled_to_uint16(tmp_path):
    data, meta, kind = _toy_layers()["toy change"]
    stack, axes, record, dtype = io.file_contents([(data, meta, kind)], dtype="uint16")
    assert dtype == "float32"


def test_labels_and_images_do_not_share_a_file(tmp_path):
    layers = _toy_layers()
    with pytest.raises(DataError, match="Save labels and images to separate files"):
        io.write_layers(str(tmp_path / "mixed.tif"), [layers["toy edited"], layers["toy labels"]])
    with pytest.raises(DataError, match="one Labels layer per file"):
        io.write_layers(str(tmp_path / "two.tif"), [layers["toy labels"], layers["toy labels"]])
    assert not list(tmp_path.iterdir())
