"""Shipped models (``napari_biogan/zoo``) and the user's own model folder."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import checkpoint
from .errors import BioGanError, ModelFileError

ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
#: the model `generate` and the plugin use when none is named
DEFAULT_MODEL = "mnist-dcgan"
#: the model `napari-biogan demo` opens: the cell-video 3DGAN built with the T98G recipe (the SAVGAN of
#: the same recipe ties it on frame contrast and samples 1.18x slower), or the default model
DEMO_MODEL = "t98g-3dgan"


def user_model_dir() -> Path:
    """Where users keep their own models: $NAPARI_BIOGAN_MODELS or ~/.napari-biogan/models."""
    return Path(os.environ.get("NAPARI_BIOGAN_MODELS", Path.home() / ".napari-biogan" / "models"))


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    path: Path
    data: str
    description: str
    shipped: bool


def list_models(include_user: bool = True) -> list[ModelInfo]:
    """Shipped models first, then the user's folder.

    A file that cannot be listed (not a model, damaged, or a card with fields of the wrong
    type) is skipped with a warning naming it: one bad file must not hide the others.
    """
    folders = [(ZOO_DIR, True)] + ([(user_model_dir(), False)] if include_user else [])
    found = []
    for folder, shipped in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.safetensors")):
            try:
                info = _model_info(path, shipped)
            except Exception as err:  # anything at all: the listing goes on without this file
                reason = str(err) if isinstance(err, BioGanError) else f"{type(err).__name__}: {err}."
                warnings.warn(f"Skipped {path} in the model list: {reason}", stacklevel=2)
                continue
            if info is not None:
                found.append(info)
    return found


def _model_info(path: Path, shipped: bool) -> ModelInfo | None:
    """The listing of one model file; None for a valid file that is not a generator."""
    card = checkpoint.read_card(path)
    if "family" not in card:  # e.g. the digit classifier: shipped, but not a generator
        return None
    training = card.get("training")
    training = {} if training is None else training
    if not isinstance(training, dict):
        raise ModelFileError("its card's training entry is not a set of named values.")
    family, description, data = card["family"], card.get("description", ""), training.get("data", "")
    for field, value in (("family", family), ("description", description), ("training data", data)):
        if not isinstance(value, str) or (field == "family" and not value):
            raise ModelFileError(f"its card has an invalid {field} ({json.dumps(value)[:40]}).")
    return ModelInfo(name=path.stem, family=family, path=path, data=data, description=description,
                     shipped=shipped)


def demo_model() -> Path:
    """The file `napari-biogan demo` opens: :data:`DEMO_MODEL` if shipped, else the default model."""
    shipped = ZOO_DIR / f"{DEMO_MODEL}.safetensors"
    return shipped if shipped.is_file() else resolve_model(None)


def resolve_model(name_or_path: str | os.PathLike | None = None) -> Path:
    """A model file from a shipped/user model name or a path; the default model if None."""
    name = str(name_or_path or DEFAULT_MODEL)
    path = Path(name).expanduser()
    if path.suffix == ".safetensors" or path.exists():
        if not path.is_file():
            raise ModelFileError(f"No model file at {path}.")
        return path
    for info in list_models():
        if info.name == name:
            return info.path
    known = ", ".join(i.name for i in list_models()) or "none"
    raise ModelFileError(f"No model named '{name}'. Known models: {known}.")


def load_default_model(device: str = "auto"):
    """The shipped default model (what the widgets use when no model was chosen yet)."""
    from .model import Model

    return Model.load(resolve_model(None), device=device)
