"""Model files read whole once (hash = bytes parsed), malformed cards and huge headers refused,
and one bad file in the user's models folder does not break the model list."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import threading

import pytest
import torch
from safetensors.torch import save_file

from napari_biogan.cli import main
from napari_biogan.core import checkpoint, zoo
from napari_biogan.core.errors import ModelFileError


def _one_sentence(err: Exception) -> str:
    message = str(err)
    assert message and "\n" not in message and message.endswith("."), message
    assert "Traceback" not in message and "Error:" not in message, message
    return message


def _raw_model(path, card, tensors=None):
    """A safetensors file with ``card`` (any JSON value, or a raw string) as the model card."""
    tensors = tensors or {"w": torch.ones(3)}
    raw = card if isinstance(card, str) and card.startswith("!") else json.dumps(card)
    save_file(tensors, str(path), metadata={checkpoint.CARD_KEY: raw.lstrip("!")})
    return path


def test_read_model_file_returns_tensors_card_and_hash(tmp_path):
    path = checkpoint.save_tensors(tmp_path / "m.safetensors", {"a": torch.arange(6.0).reshape(2, 3)},
                                   {"family": "dcgan2d", "description": "d"})
    tensors, card, sha = checkpoint.read_model_file(path)
    assert torch.equal(tensors["a"], torch.arange(6.0).reshape(2, 3)) and tensors["a"].device.type == "cpu"
    assert card["family"] == "dcgan2d" and card["format"] == "napari-biogan"
    assert sha == checkpoint.file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert checkpoint.load_tensors(path)[1] == card
    assert checkpoint.read_card(path) == card


def test_reading_while_the_file_is_replaced(tmp_path):
    """os.replace is atomic: an open file is the old or the new version, whole; never 'truncated'."""
    versions = []
    for i, n in enumerate((50_000, 90_000)):  # different sizes, so a mix could not parse
        path = checkpoint.save_tensors(tmp_path / f"v{i}.safetensors", {"w": torch.full((n,), float(i))},
                                       {"family": "dcgan2d", "version": i})
        versions.append(path.read_bytes())
    shas = {hashlib.sha256(b).hexdigest(): i for i, b in enumerate(versions)}
    target = tmp_path / "model.safetensors"
    target.write_bytes(versions[0])
    stop = threading.Event()

    def replace_forever():
        i = 0
        while not stop.is_set():
            i += 1
            staged = tmp_path / f".staged{i % 2}"
            staged.write_bytes(versions[i % 2])
            os.replace(staged, target)

    thread = threading.Thread(target=replace_forever, daemon=True)
    thread.start()
    failures, seen = [], set()
    try:
        for _ in range(200):
            try:
                tensors, card, sha = checkpoint.read_model_file(target)
            except ModelFileError as err:
                failures.append(str(err))
                continue
            assert sha in shas, "the hash must be that of one of the two versions"
            version = shas[sha]
            assert card["version"] == version  # card, tensors and hash all from the same bytes
            assert tensors["w"].numel() == (50_000, 90_000)[version] and float(tensors["w"][0]) == version
            seen.add(version)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert seen  # (usually both versions are seen; that depends on the scheduler)


@pytest.mark.parametrize("card", [
    {"format": "napari-biogan", "format_version": "abc"},
    {"format": "napari-biogan", "format_version": None},
    {"format": "napari-biogan", "format_version": "1.5"},
    {"format": "napari-biogan", "format_version": 1.5},
    {"format": "napari-biogan", "format_version": -1},
    {"format": "napari-biogan", "format_version": True},
    {"format": "napari-biogan", "format_version": 99},
    {"format": "napari-biogan", "format_version": 1, "family": 3},
    ["format", "napari-biogan"],
    "a string, not an object",
    17,
    None,
    "!{not json",
    "!" + "[" * 100_000,  # nested past Python's recursion limit
], ids=lambda c: repr(c)[:30])
def test_malformed_cards_are_refused_in_one_sentence(tmp_path, card):
    path = _raw_model(tmp_path / "bad.safetensors", card)
    for reader in (checkpoint.read_card, checkpoint.load_tensors, checkpoint.read_model_file):
        with pytest.raises(ModelFileError) as info:
            reader(path)
        assert "bad.safetensors" in _one_sentence(info.value)


def test_a_card_without_our_format_is_accepted_when_it_is_an_object(tmp_path):
    path = _raw_model(tmp_path / "plain.safetensors", {"family": "dcgan2d"})
    assert checkpoint.read_card(path) == {"family": "dcgan2d"}
    path = _raw_model(tmp_path / "v0.safetensors", {"format": "napari-biogan", "format_version": 0})
    assert checkpoint.read_model_file(path)[1]["format_version"] == 0


def _header_file(path, header: dict, data: bytes = b"", length: int | None = None, pad_to: int = 0):
    raw = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
        if pad_to:
            handle.truncate(pad_to)  # sparse: big on paper, nothing on disk
    return path


def test_huge_declared_tensor_data_is_refused_before_reading(tmp_path, monkeypatch):
    card = {checkpoint.CARD_KEY: json.dumps({"format": "napari-biogan", "format_version": 1})}
    path = _header_file(tmp_path / "huge.safetensors",
                        {"__metadata__": card, "w": {"dtype": "F32", "shape": [3 << 28], "data_offsets": [0, 3 << 30]}},
                        data=b"\0" * 16)
    reads = []
    import safetensors.torch as st

    monkeypatch.setattr(st, "load", lambda data: reads.append(len(data)))
    for reader in (checkpoint.read_card, checkpoint.read_model_file):
        with pytest.raises(ModelFileError, match="3.0 GiB") as info:
            reader(path)
        _one_sentence(info.value)
    assert reads == []


def test_huge_header_is_refused_before_reading(tmp_path, monkeypatch):
    length = 11 * 1024 * 1024
    path = _header_file(tmp_path / "head.safetensors", {}, length=length, pad_to=8 + length + 10)
    real_open, reads = open, []

    class CountingFile:
        def __init__(self, handle):
            self.handle = handle

        def read(self, n=-1):
            reads.append(n)
            return self.handle.read(n)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr("builtins.open", lambda *a, **k: CountingFile(real_open(*a, **k)))
    with pytest.raises(ModelFileError, match="header of 12 MB") as info:
        checkpoint.read_card(path)
    monkeypatch.undo()
    _one_sentence(info.value)
    assert reads == [8]  # only the length was read


@pytest.mark.parametrize("content", [b"", b"1234567", b"hello, this is a text file\n" * 3,
                                     struct.pack("<Q", 4) + b"[1]]", struct.pack("<Q", 2) + b"{}" + b"extra"])
def test_files_that_are_not_models(tmp_path, content):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as info:
        checkpoint.read_model_file(path)
    _one_sentence(info.value)


def test_truncated_model_is_refused_by_read_card_too(tmp_path):
    path = checkpoint.save_tensors(tmp_path / "m.safetensors", {"w": torch.ones(100)}, {"family": "dcgan2d"})
    path.write_bytes(path.read_bytes()[:-10])
    for reader in (checkpoint.read_card, checkpoint.read_model_file):
        with pytest.raises(ModelFileError, match="truncated"):
            reader(path)


# -- the model list ------------------------------------------------------------------------

@pytest.fixture
def user_models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("NAPARI_BIOGAN_MODELS", str(folder))
    shutil.copy(zoo.ZOO_DIR / f"{zoo.DEFAULT_MODEL}.safetensors", folder / "good.safetensors")
    return folder


BAD_CARDS = {
    "family-number": {"format": "napari-biogan", "format_version": 1, "family": 3},
    "training-string": {"format": "napari-biogan", "format_version": 1, "family": "dcgan2d", "training": "mnist"},
    "data-list": {"format": "napari-biogan", "format_version": 1, "family": "dcgan2d", "training": {"data": [1]}},
    "description-dict": {"format": "napari-biogan", "format_version": 1, "family": "dcgan2d", "description": {}},
    "version-abc": {"format": "napari-biogan", "format_version": "abc", "family": "dcgan2d"},
    "card-list": ["family", "dcgan2d"],
}


def test_one_bad_card_does_not_break_the_model_list(user_models, capsys):
    for name, card in BAD_CARDS.items():
        _raw_model(user_models / f"{name}.safetensors", card)
    (user_models / "junk.safetensors").write_bytes(b"not a model at all")
    with pytest.warns(UserWarning) as caught:
        models = zoo.list_models()
    names = {m.name for m in models}
    assert "good" in names and zoo.DEFAULT_MODEL in names
    assert not names & (set(BAD_CARDS) | {"junk"})
    messages = [str(w.message) for w in caught]
    for bad in list(BAD_CARDS) + ["junk"]:
        assert any(f"{bad}.safetensors" in m for m in messages), (bad, messages)
    assert all("\n" not in m for m in messages)
    # what used the list keeps working: name resolution and the `models` command
    with pytest.warns(UserWarning):
        assert zoo.resolve_model("good") == user_models / "good.safetensors"
    assert main(["models"]) == 0  # the CLI turns our warnings into one stderr line each
    captured = capsys.readouterr()
    assert "good" in captured.out
    skipped = [line for line in captured.err.splitlines() if "Skipped" in line]
    assert skipped and all(line.startswith("napari-biogan: warning: Skipped") for line in skipped)
