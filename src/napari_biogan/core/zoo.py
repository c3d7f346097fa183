"""Shipped models (``napari_biogan/zoo``) and the user's own model folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import checkpoint
from .errors import ModelFileError

ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
#: the model `generate` and the plugin use when none is named
DEFAULT_MODEL = "mnist-dcgan"
#: the model `napari-biogan demo` opens: the cell-video SAVGAN (the default model where it is missing)
DEMO_MODEL = "t98g-savgan"


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
    """Shipped models first, then the user's folder; files that are not models are skipped."""
    folders = [(ZOO_DIR, True)] + ([(user_model_dir(), False)] if include_user else [])
    found = []
    for folder, shipped in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.safetensors")):
            try:
                card = checkpoint.read_card(path)
            except ModelFileError:
                continue
            if "family" not in card:  # e.g. the digit classifier: shipped, but not a generator
                continue
            found.append(ModelInfo(name=path.stem, family=card.get("family", "?"), path=path,
                                   data=card.get("training", {}).get("data", ""),
                                   description=card.get("description", ""), shipped=shipped))
    return found


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
