"""File > Open Sample entries and the reader's choice of files."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_biogan import sample_data
from napari_biogan.core.errors import DataError
from napari_biogan.core.export import PROVENANCE_KEY
from napari_biogan.io import get_reader

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def test_synthetic_digits_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-biogan", "synthetic-digits")
    layer = viewer.layers[-1]
    assert layer.data.shape == (16, 32, 32) and tuple(layer.axis_labels) == ("N", "Y", "X")
    assert layer.metadata[PROVENANCE_KEY]["model"] == "mnist-dcgan"
    assert 0 <= layer.data.min() and layer.data.max() <= 1 and layer.data.std() > 0.05


def test_moving_mnist_sample(make_napari_viewer):
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"MNIST is not in {SHARED_DATA} (shared data absent)")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-biogan", "moving-mnist")
    layer = viewer.layers[-1]
    assert layer.data.shape == (16, 10, 64, 64) and tuple(layer.axis_labels) == ("N", "T", "Y", "X")


def test_missing_data_module_is_one_plain_sentence(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *args):
        if name == "napari_biogan.data.clips":
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real(name, *args)

    monkeypatch.setattr(sample_data.importlib, "import_module", fake)
    with pytest.raises(DataError, match="T98G cell clips needs napari_biogan.data.clips"):
        sample_data.t98g_clips()


def test_reader_takes_tiffs_and_folders_of_frames_only(tmp_path):
    from napari_biogan.io import read_plain_tiff, read_tiff

    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((4, 5), np.uint8))
    assert get_reader(str(plain)) is read_plain_tiff  # any TIFF: chosen in napari's dialog, it must work
    (data, meta, kind), = read_plain_tiff(str(plain))
    assert data.shape == (4, 5) and "napari_biogan" not in meta["metadata"]
    assert read_tiff is not read_plain_tiff
    assert get_reader(str(tmp_path / "missing.tif")) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert get_reader(str(empty)) is None  # a folder without TIFF frames is not ours
    assert get_reader(str(tmp_path / "model.safetensors")) is None


def test_nuclei_sample_is_a_held_out_field_the_shipped_model_segments(make_napari_viewer):
    if not (SHARED_DATA / "bbbc039_nuclei").is_dir():
        pytest.skip(f"BBBC039 is not in {SHARED_DATA} (shared data absent)")
    from napari_biogan.core.model import Model
    from napari_biogan.core.zoo import resolve_model
    from napari_biogan.data.segmentation import BBBC039_TEST, BBBC039_TRAIN

    assert sample_data.NUCLEI_FIELD in BBBC039_TEST and sample_data.NUCLEI_FIELD not in BBBC039_TRAIN
    viewer = make_napari_viewer()
    viewer.open_sample("napari-biogan", "nuclei-field")
    image, truth = viewer.layers[-2], viewer.layers[-1]
    assert image.data.shape == (520, 696) and truth.data.shape == (520, 696) and not truth.visible
    model = Model.load(resolve_model("nuclei-seg"), device="cpu")
    out = model.run({"image": image.data[None]}, precision="fp32")
    from napari_biogan.metrics.segmentation import segmentation_scores

    scores = segmentation_scores(truth.data[None], out["labels"], model.outputs[0].classes, interior=1, boundary=2)
    assert scores["foreground_f1"] > 0.9  # the shipped model's held-out pixel F1 is about 0.97
    assert len(np.unique(out["instances"])) > 20  # dozens of nuclei on this field


def test_nuclei_sample_without_the_data_is_one_plain_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_BIOGAN_DATA", str(tmp_path))
    with pytest.raises(DataError, match="needs the public data set 'bbbc039_nuclei'"):
        sample_data.nuclei_field()
