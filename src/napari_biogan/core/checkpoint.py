"""One model = one ``.safetensors`` file, its model card (JSON) in the header.

Loading never unpickles: tensors come from safetensors, everything else from
JSON. Writes go to a temporary file in the same folder and are published
atomically (:mod:`.atomic`), so a crash never leaves a half-written model behind
and a file is never replaced unless asked. Reads take the file's bytes once, so
the sha256 recorded in provenance is that of the weights loaded. Training
checkpoints (optimiser state, RNG state, step) use the same format.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import exists_message, write_atomically
from .errors import ModelFileError, OutputExistsError

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "napari-biogan"
FORMAT_VERSION = 1
CARD_KEY = "napari_biogan_card"
#: a header (tensor names, shapes, card) larger than this is refused unread: real ones are kilobytes
MAX_HEADER_BYTES = 10 * 1024 * 1024
#: tensor data larger than this is refused before reading: our models are megabytes, this is not one
MAX_TENSOR_BYTES = 2 * 1024 ** 3


def save_tensors(path: str | os.PathLike, tensors: dict[str, "torch.Tensor"], card: dict[str, Any],
                 overwrite: bool = False) -> Path:
    """Write tensors and a model card atomically; refuse to replace a file unless ``overwrite``.

    Two writers racing for one new name: exactly one succeeds, the other gets OutputExistsError.
    """
    from safetensors.torch import save

    path = Path(path)
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(exists_message(path))
    card = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **card}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    # serialised in memory, then written through the temporary file's own descriptor:
    # nothing is ever opened again by name, so no link planted meanwhile is followed
    data = save(tensors, metadata={CARD_KEY: json.dumps(card)})
    return write_atomically(path, lambda handle: handle.write(data), overwrite=overwrite)


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The model card alone (only the header is read)."""
    path = _existing(path)
    try:
        with open(path, "rb") as handle:
            header, _ = _read_header(handle, path)
    except OSError as err:
        raise ModelFileError(f"Cannot read {path.name}: {err.strerror or err}.") from err
    return _check_card(path, header.get("__metadata__") or {})


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, "torch.Tensor"], dict[str, Any], str]:
    """All tensors (on the CPU), the model card, and the sha256 (hex) of exactly the bytes parsed.

    The file is opened once and read whole, then hashed and parsed from memory: a file
    replaced meanwhile (``os.replace`` is atomic) is seen as the old or the new version,
    whole, and the hash always belongs to the tensors returned.
    """
    from safetensors.torch import load

    path = _existing(path)
    try:
        with open(path, "rb") as handle:
            header, head_bytes = _read_header(handle, path)
            card = _check_card(path, header.get("__metadata__") or {})
            data = head_bytes + handle.read()
    except OSError as err:
        raise ModelFileError(f"Cannot read {path.name}: {err.strerror or err}.") from err
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        tensors = load(data)
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise ModelFileError(f"{path.name} is not a napari-biogan model file (or it is truncated).") from err
    return tensors, card, sha256


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """All tensors (on the CPU) and the model card."""
    tensors, card, _ = read_model_file(path)
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


def _read_header(handle, path: Path) -> tuple[dict[str, Any], bytes]:
    """The safetensors header of an open file, checked for size before it is read, and its raw bytes.

    Layout: 8 bytes little-endian header length, the JSON header, then the tensor data.
    """
    damaged = ModelFileError(f"{path.name} is not a napari-biogan model file (or it is damaged).")
    prefix = handle.read(8)
    if len(prefix) < 8:
        raise damaged
    length = struct.unpack("<Q", prefix)[0]
    size = os.fstat(handle.fileno()).st_size  # of the file opened, even if the path is replaced meanwhile
    if 8 + length > size:  # e.g. a text file: its first 8 bytes read as a huge length
        raise ModelFileError(f"{path.name} is not a napari-biogan model file (or it is truncated).")
    if length > MAX_HEADER_BYTES:
        raise ModelFileError(f"{path.name} has a header of {length / 1e6:.0f} MB, far more than a model's; "
                             "it is not a napari-biogan model file.")
    raw = handle.read(length)
    if len(raw) < length:
        raise ModelFileError(f"{path.name} is not a napari-biogan model file (or it is truncated).")
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past Python's limit
        raise damaged from None
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__") or {}, dict):
        raise damaged
    end = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)):
            raise damaged
        end = max(end, offsets[1])
    if end > MAX_TENSOR_BYTES:
        raise ModelFileError(f"{path.name} declares {end / 1024 ** 3:.1f} GiB of weights, more than the "
                             f"{MAX_TENSOR_BYTES / 1024 ** 3:.0f} GiB a napari-biogan model may have.")
    if size != 8 + length + end:  # safetensors files end where the data ends
        raise ModelFileError(f"{path.name} is not a napari-biogan model file (or it is truncated).")
    return header, prefix + raw


def _check_card(path: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """The model card from the header metadata, refused in one sentence when it is malformed."""
    raw = metadata.get(CARD_KEY)
    if raw is None:
        raise ModelFileError(f"{path.name} is a safetensors file but not a napari-biogan model (no model card).")
    try:
        card = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        card = None
    if not isinstance(card, dict):  # a list, a string or a number is not a card, however valid as JSON
        raise ModelFileError(f"The model card in {path.name} is damaged.")
    version = card.get("format_version", 0)
    # JSON true is a Python int: refuse bools with the strings, floats and negatives
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ModelFileError(f"The model card in {path.name} has an invalid format version "
                             f"({json.dumps(version)[:40]}).")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path.name} was written by a newer napari-biogan (format {version}); please update the plugin.")
    if "family" in card and not isinstance(card["family"], str):
        raise ModelFileError(f"The model card in {path.name} has an invalid family "
                             f"({json.dumps(card['family'])[:40]}); it must be a name.")
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
