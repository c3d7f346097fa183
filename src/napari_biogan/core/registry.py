"""Model families by name, and what a family must provide.

A family is the unit a user picks ("Digits / images (DCGAN)", "Video (SAVGAN)").
Widgets and the CLI are written once against :class:`Family`; adding a family
touches ``families/`` and the import list below, never ``_qt/``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from .contract import LATENT, IMAGE, Channel, Control, Input, Output, TrainContext
from .errors import DataError, UnknownFamilyError

if TYPE_CHECKING:  # torch is imported lazily so napari starts fast
    import numpy as np
    import torch

    from .dataset import TrainingData

__all__ = ["Family", "register", "get_family", "family_names", "family_titles", "per_sample",
           "Channel", "Control", "Input", "Output", "TrainContext"]

# Modules that register families when imported. Kept as strings: nothing heavy at import.
FAMILY_MODULES: list[str] = [
    "napari_biogan.families.dcgan2d",
    "napari_biogan.families.savgan",
    "napari_biogan.families.tganv2",
    "napari_biogan.families.segmentation",
    "napari_biogan.families.fader",
    "napari_biogan.families.cells",
]

_FAMILIES: dict[str, type["Family"]] = {}


class Family(ABC):
    """What a model family declares. Subclasses register with :func:`register`.

    The contract (see ``core/contract.py``): a family declares its named
    :meth:`inputs`, :meth:`outputs` and :meth:`controls`; :meth:`encode` turns a
    source (a latent, an image...) into a point state and :meth:`decode` turns a
    point state plus control values into raw outputs. Training gets batches of
    named tensors and a :class:`TrainContext`. The defaults describe a seeded GAN
    (latent in, one image out) so such a family only provides its networks.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    config_cls: ClassVar[type]
    #: axes of one sample after the channel axis is split off, e.g. ("Y", "X") or ("T", "Y", "X")
    sample_axes: ClassVar[tuple[str, ...]] = ("Y", "X")
    #: False for methods that are not trained here (e.g. Deep Feature Interpolation)
    trainable: ClassVar[bool] = True
    #: False when one render is too slow for live sliders (an Apply button instead)
    live: ClassVar[bool] = True
    #: networks a model needs to run; loading refuses a file that lacks any of them
    inference_nets: ClassVar[tuple[str, ...]] = ("generator",)
    #: networks the training loop keeps an exponential moving average of, when the hyper-parameter
    #: ``ema_decay`` (which such a family declares, 0 = off) is above 0; saved files then hold the average
    ema_nets: ClassVar[tuple[str, ...]] = ()

    # -- building --------------------------------------------------------------
    def default_config(self, **overrides: Any):
        return self.config_cls(**overrides)

    def config_from_dict(self, values: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(self.config_cls)}
        return self.config_cls(**{k: (tuple(v) if isinstance(v, list) else v)
                                  for k, v in values.items() if k in names})

    @abstractmethod
    def build(self, config) -> "torch.nn.ModuleDict":
        """The networks, by name (those in :attr:`inference_nets` among them)."""

    @abstractmethod
    def channels(self, config) -> list[Channel]:
        """Channels of the main image output with their display colormaps."""

    @property
    def is_video(self) -> bool:
        """Samples have a time axis: the one rule for "is this a video" (data loading, export axes)."""
        return "T" in self.sample_axes

    # -- the contract: inputs, outputs, controls, encode, decode --------------------
    def inputs(self, config) -> list[Input]:
        """Named inputs; default: a latent to run, real images to train on."""
        return [Input("latent", LATENT, train=False, run=True, help="drawn from a seed"),
                Input("image", IMAGE, train=True, run=False, help="real images or videos to learn from")]

    def outputs(self, config) -> list[Output]:
        """Named outputs; default: one image output with :meth:`channels`."""
        return [Output("image", IMAGE, tuple(self.channels(config)))]

    def controls(self, config) -> list[Control]:
        """Sliders and pickers beyond seed and principal directions (classes, codes, attributes)."""
        return []

    def has_input(self, config, kind: str, *, run: bool | None = None) -> bool:
        return any(i.kind == kind and (run is None or i.run == run) for i in self.inputs(config))

    def latent_dim(self, config) -> int:
        """Length of one latent vector; default: ``config.latent_dim``."""
        return int(config.latent_dim)

    def sample_latent(self, config, n: int, generator: "torch.Generator") -> "torch.Tensor":
        import torch

        return torch.randn(n, self.latent_dim(config), generator=generator)

    def prepare_source(self, config, source: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        """Raw run inputs as the user has them (a layer's intensities) -> the scale the networks expect.

        Called once on the WHOLE source before any tiling or chunking, so a tiled run
        sees the same scaling as an untiled one; use the same scaling as
        :meth:`prepare_data` gives training. Default: unchanged.
        """
        return dict(source)

    def encode(self, nets, config, source: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        """A prepared source (named tensors, first axis samples) -> a point state; default: the source itself."""
        return dict(source)

    def decode(self, nets, config, state: dict[str, "torch.Tensor"],
               controls: dict[str, Any]) -> dict[str, "torch.Tensor"]:
        """Raw outputs by name: images in [-1, 1], signed maps as they are, labels as logits (N, K, ...).

        Control values are scalars or per-sample tensors (see :func:`per_sample`).
        Default: :meth:`generate` on the state's latent.
        """
        return {"image": self.generate(nets, config, state["latent"], controls or None)}

    def finish(self, config, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Converted outputs of WHOLE images (after every chunk and tile is joined) -> the final outputs.

        The place for work a tile cannot do on its own, e.g. instance labels from a class map
        (an object cut by a tile border must stay one object). Default: unchanged.
        """
        return outputs

    def generate(self, nets, config, z: "torch.Tensor", condition: Any = None) -> "torch.Tensor":
        """Images in [-1, 1], shaped (N, C, *sample_axes), from latents; default: ``nets["generator"](z)``."""
        return nets["generator"](z)

    def latent_features(self, nets, config, z: "torch.Tensor") -> "torch.Tensor":
        """Early generator activations (N, F) for GANSpace-style directions.

        Default: the generator's ``features(z)`` when it has one, else z itself.
        """
        features = getattr(nets["generator"], "features", None)
        return features(z).flatten(1) if features is not None else z

    # -- data and training ------------------------------------------------------
    @abstractmethod
    def prepare_data(self, data, config) -> "TrainingData":
        """User data -> :class:`~napari_biogan.core.dataset.TrainingData` (named fields).

        ``data`` is a dict of raw inputs by name (arrays, lazy sources), or one array
        for the family's image input. Raises DataError with a plain sentence.
        """

    def preview_source(self, config, data: "TrainingData", n: int,
                       generator: "torch.Generator") -> dict[str, "torch.Tensor"]:
        """What training previews render (fixed for a run): latents by default; image-driven
        families return validation samples from ``data``."""
        return {"latent": self.sample_latent(config, n, generator)}

    @abstractmethod
    def default_hparams(self) -> dict[str, Any]: ...

    @abstractmethod
    def make_optimizers(self, nets, hparams: dict[str, Any]) -> dict[str, "torch.optim.Optimizer"]: ...

    @abstractmethod
    def train_step(self, nets, optimizers, next_batch: Callable[[], dict[str, "torch.Tensor"]],
                   ctx: TrainContext) -> dict[str, float]:
        """One generator update (with its critic updates); returns scalar losses.

        ``next_batch()`` returns a fresh batch of named tensors on the model's device.
        """

    #: named metric sets :meth:`metrics` can compute, the first is the default
    #: (e.g. video families: "cells" and "digits" for Moving MNIST)
    metric_sets: tuple[str, ...] = ("default",)

    def default_metric_set(self, config, card: dict[str, Any]) -> str:
        """The metric set a model of this family is measured with when none is named."""
        return self.metric_sets[0]

    def metrics(self, model, real: "TrainingData", n: int, seed: int,
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


def per_sample(value: Any, n: int, dtype=None) -> "torch.Tensor":
    """A control value as one entry per sample: a scalar is repeated, a sequence must have ``n``."""
    import torch

    tensor = torch.as_tensor(value, dtype=dtype)
    if tensor.ndim == 0:
        return tensor.expand(n)
    if len(tensor) != n:
        raise DataError(f"A control has {len(tensor)} values for {n} samples.")
    return tensor


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: make a family available by its ``name``."""
    _FAMILIES[cls.name] = cls
    return cls


def _load_all() -> None:
    """Import the shipped families, then any named in $NAPARI_BIOGAN_FAMILIES (comma-separated modules:
    a user's own family, or the tests' family in a CLI subprocess)."""
    extra = [m.strip() for m in os.environ.get("NAPARI_BIOGAN_FAMILIES", "").split(",") if m.strip()]
    for module in extra:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise UnknownFamilyError(f"Cannot import the family module '{module}' named in "
                                     f"NAPARI_BIOGAN_FAMILIES ({err}).") from None
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


def family_names(trainable: bool | None = None) -> list[str]:
    """Names of all registered families (only the trainable ones with ``trainable=True``)."""
    _load_all()
    return sorted(n for n, cls in _FAMILIES.items() if trainable is None or cls.trainable == trainable)


def family_titles(trainable: bool | None = None) -> dict[str, str]:
    """Display titles by name (only the trainable families with ``trainable=True``)."""
    return {name: _FAMILIES[name].title for name in family_names(trainable)}
