"""A family plus its config and networks: the object widgets, CLI and scripts share."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from . import checkpoint
from .device import inference_precision, release, resolve_device
from .errors import FamilyMismatchError, ModelFileError
from .registry import Family, get_family

if TYPE_CHECKING:
    import torch


class GanModel:
    """A ready-to-use model: build it new, or load it from a model file."""

    def __init__(self, family: Family, config, nets: "torch.nn.ModuleDict", card: dict[str, Any] | None = None,
                 device: str = "cpu", path: Path | None = None):
        self.family = family
        self.config = config
        self.nets = nets
        self.card = card or {}
        self.path = path
        self.sha256 = checkpoint.file_sha256(path) if path else None
        self.device = resolve_device(device)
        self.nets.to(self.device)
        self.nets.eval()

    # -- construction ------------------------------------------------------------------
    @classmethod
    def new(cls, family_name: str, config=None, device: str = "cpu", seed: int = 0, **overrides) -> "GanModel":
        """A freshly initialised model (weights from ``seed``)."""
        import torch

        family = get_family(family_name)
        config = config or family.default_config(**overrides)
        torch.manual_seed(seed)
        return cls(family, config, family.build(config), {"family": family.name}, device=device)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", expect_family: str | None = None) -> "GanModel":
        """Load a model file onto ``device``, whatever device it was saved from."""
        tensors, card = checkpoint.load_tensors(path)
        family_name = card.get("family")
        if not family_name:
            raise ModelFileError(f"{Path(path).name} has no model family in its card.")
        if expect_family and family_name != expect_family:
            raise FamilyMismatchError(
                f"{Path(path).name} is a '{family_name}' model, not a '{expect_family}' model.")
        family = get_family(family_name)
        config = family.config_from_dict(card.get("config", {}))
        nets = family.build(config)
        weights = {k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")}
        own = nets.state_dict()
        missing_generator = [k for k in own if k.startswith("generator.") and k not in weights]
        if missing_generator or any(k not in own or own[k].shape != v.shape for k, v in weights.items()):
            raise ModelFileError(f"The weights in {Path(path).name} do not fit its '{family_name}' config.")
        nets.load_state_dict(weights, strict=False)  # critics may be left out of shipped models
        model = cls(family, config, nets, card, device=device, path=Path(path))
        model._file_tensors = tensors
        return model

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, include: tuple[str, ...] | None = None,
             extra_tensors: dict[str, "torch.Tensor"] | None = None, card: dict[str, Any] | None = None) -> Path:
        """Write one model file; ``include`` limits the networks saved (e.g. only the generator)."""
        tensors = {f"net.{k}": v for k, v in self.nets.state_dict().items()
                   if include is None or k.split(".", 1)[0] in include}
        tensors.update(extra_tensors or {})
        full_card = {**self.card, **(card or {})}
        full_card.update(family=self.family.name, config=dataclasses.asdict(self.config),
                         package_version=__version__,
                         saved=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        written = checkpoint.save_tensors(path, tensors, full_card, overwrite=overwrite)
        self.card, self.path, self.sha256 = full_card, written, checkpoint.file_sha256(written)
        return written

    # -- sampling ------------------------------------------------------------------------
    def latents(self, n: int, seed: int) -> "torch.Tensor":
        """``n`` latent vectors from ``seed``, drawn on the CPU so every device gives the same ones."""
        import torch

        generator = torch.Generator().manual_seed(int(seed))
        return self.family.sample_latent(self.config, n, generator)

    def render(self, z: "torch.Tensor", condition: Any = None, precision: str = "auto",
               batch_size: int = 16) -> np.ndarray:
        """Images in [0, 1] as float32, shaped (N, C, *sample_axes)."""
        import torch

        outputs = []
        with torch.inference_mode(), inference_precision(self.device, precision):
            for start in range(0, len(z), batch_size):
                chunk = z[start:start + batch_size].to(self.device)
                images = self.family.generate(self.nets, self.config, chunk, condition)
                outputs.append(images.float().clamp(-1, 1).add(1).mul(0.5).cpu())
        return torch.cat(outputs).numpy()

    def sample(self, n: int, seed: int = 0, precision: str = "auto", condition: Any = None) -> np.ndarray:
        """``n`` samples from ``seed``: the same model, seed and settings give identical pixels."""
        return self.render(self.latents(n, seed), condition, precision)

    def evaluate(self, real: "torch.Tensor", n: int = 256, seed: int = 0,
                 metric_set: str | None = None) -> dict[str, float]:
        """The family's metrics of ``n`` samples against real data prepared by ``family.prepare_data``.

        With no ``metric_set``, a model trained on Moving MNIST (its card says so) gets
        the "digits" set where the family has one, any other model the family's default.
        """
        if metric_set is None and "digits" in self.family.metric_sets:
            trained_on = f"{self.card.get('data', '')} {self.card.get('training', {}).get('data', '')}"
            metric_set = "digits" if "mnist" in trained_on.lower() else None
        return self.family.metrics(self, real, n=n, seed=seed, metric_set=metric_set)

    @property
    def channels(self):
        return self.family.channels(self.config)

    @property
    def name(self) -> str:
        return self.card.get("name") or (self.path.stem if self.path else f"new {self.family.name}")

    def to(self, device: str) -> "GanModel":
        self.device = resolve_device(device)
        self.nets.to(self.device)
        return self

    def release(self) -> None:
        """Free the model's memory (off the GPU, caches emptied)."""
        release(self.nets)
