"""One model = one ``.safetensors`` file, its model card (JSON) in the header.

Loading never unpickles: tensors come from safetensors, everything else from
JSON. Writes go to a temporary file in the same folder and are renamed into
place, so a crash never leaves a half-written model behind. Training
checkpoints (optimiser state, RNG state, step) use the same format.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelFileError, OutputExistsError, WriteError

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "napari-biogan"
FORMAT_VERSION = 1
CARD_KEY = "napari_biogan_card"


def save_tensors(path: str | os.PathLike, tensors: dict[str, "torch.Tensor"], card: dict[str, Any],
                 overwrite: bool = False) -> Path:
    """Write tensors and a model card atomically; refuse to replace a file unless ``overwrite``."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; choose another name or allow overwriting.")
    card = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **card}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise WriteError(f"Cannot write to {path.parent}: {err.strerror or err}.") from err
    try:
        save_file(tensors, tmp, metadata={CARD_KEY: json.dumps(card)})
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a model is meant to be shared
        os.replace(tmp, path)
    except OSError as err:
        raise WriteError(f"Cannot write {path}: {err.strerror or err}.") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The model card alone (no tensors are read)."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for damaged headers
        raise ModelFileError(f"{path.name} is not a napari-biogan model file (or it is damaged).") from err
    return _check_card(path, metadata)


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """All tensors (on the CPU) and the model card."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            card = _check_card(path, handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except ModelFileError:
        raise
    except Exception as err:
        raise ModelFileError(f"{path.name} is not a napari-biogan model file (or it is truncated).") from err
    return tensors, card


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"No model file at {path}.")
    return path


def _check_card(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    raw = metadata.get(CARD_KEY)
    if raw is None:
        raise ModelFileError(f"{path.name} is a safetensors file but not a napari-biogan model (no model card).")
    try:
        card = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"The model card in {path.name} is damaged.") from err
    version = int(card.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path.name} was written by a newer napari-biogan (format {version}); please update the plugin.")
    return card


# -- optimiser state without pickle ------------------------------------------------

def flatten_optimizer(prefix: str, state: dict[str, Any]) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors and a JSON-able remainder."""
    import torch

    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, slots in state["state"].items():
        entry = {}
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{index}.{key}"] = value
                entry[key] = {"tensor": f"{prefix}.{index}.{key}"}
            else:
                entry[key] = value
        plain["state"][str(index)] = entry
    return tensors, plain


def unflatten_optimizer(plain: dict[str, Any], tensors: dict[str, "torch.Tensor"]) -> dict[str, Any]:
    state = {}
    for index, slots in plain["state"].items():
        state[int(index)] = {key: (tensors[value["tensor"]] if isinstance(value, dict) and "tensor" in value
                                   else value) for key, value in slots.items()}
    return {"state": state, "param_groups": plain["param_groups"]}
