"""BioImage Model Zoo export: packages bioimageio.core accepts offline, whose outputs are Model.run's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_biogan.core.bioimageio import (NotExportableError, export_bioimageio, load_bioimageio,
                                           synthetic_image, why_not_exportable)
from napari_biogan.core.bioimageio_net import (Scaling, check_scaling, identify_scaling, prepare_function,
                                               probe_images)
from napari_biogan.core.errors import DataError, OutputExistsError
from napari_biogan.core.model import Model
from napari_biogan.core.zoo import resolve_model

pytest.importorskip("bioimageio.core")

TINY = dict(base_width=4, depth=2, disc_width=4, crop=16, landmarks=8)
TILE = 64


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """No connection leaves the process (any attempt fails the test) and the library's cache is private."""
    from bioimageio.spec._internal._settings import settings

    def refuse(sock, address, *args):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access to {address}")
        return connect(sock, address, *args)

    connect = socket.socket.connect
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(settings, "cache_path", tmp_path_factory.mktemp("bioimageio-cache"))
        patch.setenv("BIOIMAGEIO_CACHE_PATH", str(settings.cache_path))
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(offline, tmp_path_factory):
    """A tiny segmenter and its package (tested by bioimageio.core inside the export)."""
    model = Model.new("segmentation", **TINY)
    path = export_bioimageio(model, tmp_path_factory.mktemp("tiny") / "tiny.zip", tile=TILE,
                             test_image=discs(80, seed=1))
    return model, path


def discs(size: int, seed: int = 0) -> np.ndarray:
    return synthetic_image(size, 1, seed)[0] * 5 + 300  # raw intensities of another scale than the default


def package_predict(path: Path, image: np.ndarray, weight_format: str) -> np.ndarray:
    """The package's output for one tile-sized image, as bioimageio.core computes it (its preprocessing)."""
    from bioimageio.core import create_prediction_pipeline, load_model_description
    from bioimageio.core.digest_spec import create_sample_for_model

    descr = load_model_description(path)
    sample = create_sample_for_model(descr, inputs={"image": image[None, None].astype(np.float32)})
    with create_prediction_pipeline(bioimageio_model=descr, weight_format=weight_format) as pipeline:
        out = pipeline.predict_sample_without_blocking(sample, skip_input_padding=True, skip_output_cropping=True)
    return out.members["probabilities"].data.to_numpy()


def assert_matches_run(model: Model, probabilities: np.ndarray, image: np.ndarray) -> None:
    """Class map = arg-max of the probabilities (where the top two classes differ by more than float noise);
    probability = 1 - P(background)."""
    ours = model.run({"image": image[None]}, precision="fp32")
    top = np.sort(probabilities, axis=1)
    clear = (top[:, -1] - top[:, -2]) > 1e-4
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(probabilities.argmax(1)[clear], ours["labels"][clear])
    np.testing.assert_allclose(1 - probabilities[:, 0], ours["probability"][:, 0], atol=1e-4)


def rdf(path: Path) -> dict:
    from ruyaml import YAML

    with zipfile.ZipFile(path) as archive:
        return YAML(typ="safe").load(archive.read("rdf.yaml").decode())


# -- the tiny model: format, offline test, outputs, reading back ------------------------------------------

def test_tiny_package_passes_bioimageio_core_offline(tiny):
    from bioimageio.core import test_model

    _, path = tiny
    summary = test_model(path)
    assert summary.status == "passed", summary.format()
    tests = {d.name: d.status for d in summary.details}
    assert tests["Reproduce test outputs from test inputs (torchscript)"] == "passed"
    assert tests["Reproduce test outputs from test inputs (pytorch_state_dict)"] == "passed"
    with zipfile.ZipFile(path) as archive:
        assert {"rdf.yaml", "README.md", "weights.pt", "weights.torchscript", "test_input.npy",
                "test_output.npy", "environment.yaml"} <= set(archive.namelist())


@pytest.mark.parametrize("weight_format", ["torchscript", "pytorch_state_dict"])
def test_package_output_equals_model_run(tiny, weight_format):
    model, path = tiny
    image = discs(TILE, seed=7)  # not the test input
    assert_matches_run(model, package_predict(path, image, weight_format), image)


def test_torchscript_refuses_other_sizes_instead_of_answering_wrongly(tiny):
    _, path = tiny
    with zipfile.ZipFile(path) as archive, archive.open("weights.torchscript") as handle:
        traced = torch.jit.load(handle)
    assert traced(torch.zeros(1, 1, TILE, TILE)).shape == (1, 3, TILE, TILE)
    with pytest.raises(RuntimeError):
        traced(torch.zeros(1, 1, TILE + 16, TILE))


def test_reads_its_own_package_back(tiny):
    model, path = tiny
    back = load_bioimageio(path)
    image = discs(72, seed=3)
    ours, theirs = (m.run({"image": image[None]}, precision="fp32") for m in (model, back))
    np.testing.assert_array_equal(ours["labels"], theirs["labels"])
    np.testing.assert_array_equal(ours["probability"], theirs["probability"])
    assert back.family.name == "segmentation" and back.config == model.config


def test_describes_the_model(tiny):
    model, path = tiny
    description = rdf(path)
    image, = description["inputs"]
    steps = [(s["id"], s.get("kwargs", {})) for s in image["preprocessing"]]
    assert [s for s, _ in steps] == ["ensure_dtype", "scale_range", "scale_linear", "clip", "ensure_dtype"]
    assert steps[1][1]["min_percentile"] == 1.0 and steps[1][1]["max_percentile"] == 99.8
    assert steps[1][1]["axes"] == ["y", "x"]
    assert steps[2][1] == {"gain": 2.0, "offset": -1.0} and steps[3][1] == {"min": -1.5, "max": 3.0}
    assert [a["type"] for a in image["axes"]] == ["batch", "channel", "space", "space"]
    output, = description["outputs"]
    assert output["id"] == "probabilities"
    assert output["axes"][1]["channel_names"] == ["background", "interior", "boundary"]
    assert output["axes"][2]["halo"] == TILE // 8
    assert description["weights"]["torchscript"]["parent"] == "pytorch_state_dict"
    assert description["config"]["napari_biogan"]["family"] == "segmentation"


# -- the shipped nuclei model ---------------------------------------------------------------------------

def test_shipped_nuclei_model_exports_with_its_card(offline, tmp_path):
    model = Model.load(resolve_model("nuclei-seg"), device="cpu")
    path = export_bioimageio(model, tmp_path / "nuclei.zip", tile=128)  # bioimageio.core test inside
    image = discs(128, seed=5)
    assert_matches_run(model, package_predict(path, image, "torchscript"), image)
    description = rdf(path)
    assert description["name"] == "nuclei-seg"
    assert description["config"]["napari_biogan"]["sha256"] == model.sha256
    assert description["config"]["napari_biogan"]["card"]["metrics"]["object_f1"] == 0.9628
    assert {c["doi"] for c in description["cite"]} == {"10.1002/cyto.a.23863", "10.1038/nmeth.2083"}
    assert description["training_data"]["license"] == "CC0-1.0"
    assert "BBBC039" in description["training_data"]["description"]
    assert description["config"]["bioimageio"]["training"]["steps"] == 1400
    with zipfile.ZipFile(path) as archive:
        readme = archive.read("README.md").decode()
    assert "## Validation" in readme and "object_f1 | 0.9628" in readme and model.sha256 in readme


# -- what is refused --------------------------------------------------------------------------------------

def test_a_seeded_gan_is_refused_with_one_sentence(tmp_path):
    gan = Model.new("dcgan2d", height=16, width=16, latent_dim=8, base_width=8)
    reason = why_not_exportable(gan)
    assert reason and "\n" not in reason and reason.endswith(".") and "seed" in reason
    with pytest.raises(NotExportableError, match="seed"):
        export_bioimageio(gan, tmp_path / "gan.zip")
    assert not (tmp_path / "gan.zip").exists()
    assert why_not_exportable(Model.new("segmentation", **TINY)) is None


def test_never_overwrites_unless_asked(offline, tmp_path):
    model = Model.new("segmentation", **TINY)
    target = tmp_path / "there.zip"
    target.write_bytes(b"the user's file")
    with pytest.raises(OutputExistsError):
        export_bioimageio(model, target, tile=TILE)
    assert target.read_bytes() == b"the user's file"
    with pytest.raises(DataError, match=r"\.zip"):
        export_bioimageio(model, tmp_path / "package.yaml", tile=TILE)
    with pytest.raises(DataError, match="at least 64x64"):
        export_bioimageio(model, tmp_path / "small.zip", tile=TILE, test_image=np.ones((40, 90)))
    export_bioimageio(model, target, tile=TILE, overwrite=True, check=False)
    assert zipfile.is_zipfile(target) and [p.name for p in tmp_path.iterdir()] == ["there.zip"]


# -- input scaling found by probing prepare_source --------------------------------------------------------

def test_scaling_is_found_by_probing_and_checked():
    model = Model.new("segmentation", **TINY)
    prepare = prepare_function(model, "image")
    scaling = identify_scaling(prepare, 1)
    assert scaling == Scaling((1.0, 99.8), 2.0, -1.0, (-1.5, 3.0))
    assert check_scaling(prepare, scaling, probe_images(1)) < 1e-4

    def affine(x):
        return x * 0.5 + 3

    assert identify_scaling(affine, 1) == Scaling(None, 0.5, 3.0)
    assert identify_scaling(lambda x: x, 2) == Scaling()

    def zscore(x):  # blind to gain and offset too, but no percentile range expresses it
        return (x - x.mean(axis=(-2, -1), keepdims=True)) / x.std(axis=(-2, -1), keepdims=True)

    with pytest.raises(NotExportableError, match="input scaling"):
        check_scaling(zscore, identify_scaling(zscore, 1), probe_images(1))


# -- the command ------------------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "napari_biogan.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_cli_exports_and_refuses_in_one_sentence(offline, tmp_path):
    import tifffile

    model_file = Model.new("segmentation", **TINY).save(tmp_path / "tiny.safetensors")
    tifffile.imwrite(tmp_path / "field.tif", discs(90, seed=2).astype(np.uint16))
    out = tmp_path / "tiny.zip"
    args = ("export-bioimageio", "--model", str(model_file), "-o", str(out), "--test-image",
            str(tmp_path / "field.tif"), "--tile", str(TILE))
    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and zipfile.is_zipfile(out)
    assert rdf(out)["config"]["napari_biogan"]["source_file"] == "tiny.safetensors"
    again = _cli(*args)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    gan = _cli("export-bioimageio", "--model", "mnist-dcgan", "-o", str(tmp_path / "gan.zip"))
    assert gan.returncode == 2 and "seed" in gan.stderr and len(gan.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "gan.zip").exists()
