"""Model files: safetensors + card, atomic writes, no pickle, clear errors."""

import json
import struct

import numpy as np
import pytest
import torch

from napari_biogan.core import checkpoint
from napari_biogan.core.errors import FamilyMismatchError, ModelFileError, OutputExistsError, WriteError
from napari_biogan.core.model import GanModel


@pytest.fixture
def tiny():
    return GanModel.new("dcgan2d", base_width=8, latent_dim=16, seed=3)


def test_round_trip_keeps_weights_and_card(tiny, tmp_path):
    path = tiny.save(tmp_path / "m.safetensors", card={"description": "tiny"})
    loaded = GanModel.load(path, device="cpu")
    assert loaded.family.name == "dcgan2d"
    assert loaded.config == tiny.config
    assert loaded.card["description"] == "tiny"
    for key, value in tiny.nets.state_dict().items():
        assert torch.equal(value, loaded.nets.state_dict()[key])
    assert loaded.sha256 == checkpoint.file_sha256(path)
    assert np.array_equal(loaded.sample(4, seed=9, precision="fp32"), tiny.sample(4, seed=9, precision="fp32"))


def test_same_seed_same_pixels_other_seed_other_pixels(tiny):
    a, b = tiny.sample(5, seed=1), tiny.sample(5, seed=1)
    assert a.shape == (5, 1, 32, 32) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, tiny.sample(5, seed=2))
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_generator_only_file_loads(tiny, tmp_path):
    path = tiny.save(tmp_path / "g.safetensors", include=("generator",))
    keys = checkpoint.load_tensors(path)[0].keys()
    assert keys and all(k.startswith("net.generator.") for k in keys)
    assert GanModel.load(path).sample(1, seed=0).shape == (1, 1, 32, 32)


def test_no_silent_overwrite(tiny, tmp_path):
    path = tiny.save(tmp_path / "m.safetensors")
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        tiny.save(path)
    assert path.read_bytes() == before
    tiny.save(path, overwrite=True)


def test_unwritable_path_is_a_write_error(tiny, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WriteError):
        tiny.save(blocker / "sub" / "m.safetensors")


def test_not_a_model_file(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(ModelFileError, match="not a napari-biogan model"):
        GanModel.load(junk)
    with pytest.raises(ModelFileError, match="No model file"):
        GanModel.load(tmp_path / "missing.safetensors")


def test_plain_safetensors_without_card(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError, match="no model card"):
        GanModel.load(path)


def test_truncated_file(tiny, tmp_path):
    path = tiny.save(tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        GanModel.load(path)


def test_newer_format_is_refused(tiny, tmp_path):
    path = tiny.save(tmp_path / "m.safetensors")
    # rewrite the card with a future format version, same tensors
    tensors, card = checkpoint.load_tensors(path)
    card["format_version"] = checkpoint.FORMAT_VERSION + 1
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={checkpoint.CARD_KEY: json.dumps(card)})
    with pytest.raises(ModelFileError, match="newer"):
        GanModel.load(path)


def test_wrong_family_is_refused(tiny, tmp_path):
    path = tiny.save(tmp_path / "m.safetensors")
    with pytest.raises(FamilyMismatchError):
        GanModel.load(path, expect_family="savgan")


def test_loading_never_unpickles(tiny, tmp_path, monkeypatch):
    import pickle

    path = tiny.save(tmp_path / "m.safetensors")
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle used"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load used"))
    GanModel.load(path)
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    header = json.loads(path.read_bytes()[8:8 + header_len])
    assert "__metadata__" in header  # the card travels in the safetensors header


def test_zoo_lists_generators_only(tiny, tmp_path, monkeypatch):
    from napari_biogan.core import zoo

    monkeypatch.setenv("NAPARI_BIOGAN_MODELS", str(tmp_path))
    tiny.save(tmp_path / "mine.safetensors")
    checkpoint.save_tensors(tmp_path / "classifier.safetensors", {"w": torch.zeros(2)}, {"kind": "classifier"})
    (tmp_path / "junk.safetensors").write_text("not a model")
    names = {info.name: info for info in zoo.list_models()}
    assert "mine" in names and not names["mine"].shipped
    assert "classifier" not in names and "junk" not in names
    assert names["mnist-dcgan"].shipped and names["mnist-dcgan"].family == "dcgan2d"
    assert zoo.resolve_model("mine") == tmp_path / "mine.safetensors"


def test_every_shipped_generator_loads_generates_and_has_a_full_card():
    """What `napari-biogan models` promises: each shipped model generates offline and says how it was made."""
    import numpy as np

    from napari_biogan.core import zoo
    from napari_biogan.core.model import GanModel

    shipped = [info for info in zoo.list_models(include_user=False)]
    assert any(info.name == zoo.DEFAULT_MODEL for info in shipped)
    for info in shipped:
        model = GanModel.load(info.path, device="cpu")
        card = model.card
        assert card["description"] and card["training"]["data"], info.name
        assert card["training"]["steps"] > 0 and card["training"]["wall_time_s"] > 0, info.name
        assert card["metrics"] and card.get("training_state") is None, info.name
        tensors, _ = checkpoint.load_tensors(info.path)
        needed = tuple(f"net.{net}." for net in model.family.inference_nets)
        assert all(name.startswith(needed) for name in tensors), info.name  # what runs, no critics: small files
        if not model.has_latent:
            continue  # image-driven models run from images (tests/test_contract.py runs every shipped model)
        samples = model.sample(2, seed=0, precision="fp32")
        assert np.isfinite(samples).all() and 0 <= samples.min() and samples.max() <= 1, info.name
        assert samples.std() > 0.01, info.name  # not a blank image
        assert np.array_equal(samples, model.sample(2, seed=0, precision="fp32")), info.name
    video = {info.name for info in shipped if info.family == "savgan"}
    assert not video or any("savgan" in n for n in video) and any("3dgan" in n for n in video)
