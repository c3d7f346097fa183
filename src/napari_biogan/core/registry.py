"""Model families by name, and what a family must provide.

A family is the unit a user picks ("Digits / images (DCGAN)", "Video (SAVGAN)").
Widgets and the CLI are written once against :class:`Family`; adding a family
touches ``families/`` and the import list below, never ``_qt/``.
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from .errors import DataError, UnknownFamilyError

if TYPE_CHECKING:  # torch is imported lazily so napari starts fast
    import torch

# Modules that register families when imported. Kept as strings: nothing heavy at import.
FAMILY_MODULES: list[str] = [
    "napari_biogan.families.dcgan2d",
    "napari_biogan.families.savgan",
    "napari_biogan.families.tganv2",
]

_FAMILIES: dict[str, type["Family"]] = {}


@dataclass(frozen=True)
class Control:
    """One slider or picker the Explore widget shows.

    kind: "seed" (integer picker), "direction" (latent direction, float),
    "code" (InfoGAN-like code), "attribute", "class" (choice from ``choices``).
    """

    name: str
    kind: str
    minimum: float = -3.0
    maximum: float = 3.0
    default: float = 0.0
    step: float = 0.1
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class Channel:
    name: str
    colormap: str = "gray"


class Family(ABC):
    """What a model family declares. Subclasses register with :func:`register`."""

    name: ClassVar[str]
    title: ClassVar[str]
    config_cls: ClassVar[type]
    #: axes of one sample after the channel axis is split off, e.g. ("Y", "X") or ("T", "Y", "X")
    sample_axes: ClassVar[tuple[str, ...]] = ("Y", "X")

    # -- building --------------------------------------------------------------
    def default_config(self, **overrides: Any):
        return self.config_cls(**overrides)

    def config_from_dict(self, values: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(self.config_cls)}
        return self.config_cls(**{k: (tuple(v) if isinstance(v, list) else v)
                                  for k, v in values.items() if k in names})

    @abstractmethod
    def build(self, config) -> "torch.nn.ModuleDict":
        """The networks; must hold a ``generator``."""

    @abstractmethod
    def channels(self, config) -> list[Channel]:
        """Output channels with their display colormaps."""

    def latent_dim(self, config) -> int:
        """Length of one latent vector; default: ``config.latent_dim``."""
        return int(config.latent_dim)

    def sample_latent(self, config, n: int, generator: "torch.Generator") -> "torch.Tensor":
        import torch

        return torch.randn(n, self.latent_dim(config), generator=generator)

    def generate(self, nets, config, z: "torch.Tensor", condition: Any = None) -> "torch.Tensor":
        """Images in [-1, 1], shaped (N, C, *sample_axes); default: ``nets["generator"](z)``."""
        return nets["generator"](z)

    def latent_features(self, nets, config, z: "torch.Tensor") -> "torch.Tensor":
        """Early generator activations (N, F) for GANSpace-style directions.

        Default: the generator's ``features(z)`` when it has one, else z itself.
        """
        features = getattr(nets["generator"], "features", None)
        return features(z).flatten(1) if features is not None else z

    def controls(self, config) -> list[Control]:
        """Extra controls beyond seed and principal directions (codes, attributes...)."""
        return []

    # -- data and training ------------------------------------------------------
    @abstractmethod
    def prepare_data(self, array, config) -> "torch.Tensor":
        """Validate user data and turn it into a float tensor (N, C, *sample_axes) in [-1, 1]."""

    @abstractmethod
    def default_hparams(self) -> dict[str, Any]: ...

    @abstractmethod
    def make_optimizers(self, nets, hparams: dict[str, Any]) -> dict[str, "torch.optim.Optimizer"]: ...

    @abstractmethod
    def train_step(self, nets, optimizers, next_batch: Callable[[], "torch.Tensor"],
                   hparams: dict[str, Any], generator: "torch.Generator") -> dict[str, float]:
        """One generator update (with its critic updates); returns scalar losses."""

    #: named metric sets :meth:`metrics` can compute, the first is the default
    #: (e.g. video families: "cells" and "digits" for Moving MNIST)
    metric_sets: tuple[str, ...] = ("default",)

    def metrics(self, model, real: "torch.Tensor", n: int, seed: int,
                metric_set: str | None = None) -> dict[str, float]:
        """Family metrics of ``n`` samples of ``model`` against real data prepared by :meth:`prepare_data`.

        Keys ending in ``_real`` are the same metric of the real data (a reference to
        read the generated value against), where the metric has one.
        """
        return {}

    def check_metric_set(self, metric_set: str | None) -> str:
        """``metric_set`` or the default one; a plain error for unknown names."""
        if metric_set is None:
            return self.metric_sets[0]
        if metric_set not in self.metric_sets:
            raise DataError(f"The '{self.name}' family has no '{metric_set}' metrics; "
                            f"choose one of {', '.join(self.metric_sets)}.")
        return metric_set


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: make a family available by its ``name``."""
    _FAMILIES[cls.name] = cls
    return cls


def _load_all() -> None:
    for module in FAMILY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:  # a family still being written must not break others
            if err.name != module:
                raise


def get_family(name: str) -> Family:
    """The family registered under ``name``; :class:`UnknownFamilyError` if none."""
    _load_all()
    try:
        return _FAMILIES[name]()
    except KeyError:
        known = ", ".join(sorted(_FAMILIES)) or "none"
        raise UnknownFamilyError(f"Unknown model family '{name}'. Known families: {known}.") from None


def family_names() -> list[str]:
    """Names of all registered families."""
    _load_all()
    return sorted(_FAMILIES)


def family_titles() -> dict[str, str]:
    _load_all()
    return {name: cls.title for name, cls in sorted(_FAMILIES.items())}
