"""What a family declares: its inputs, outputs and controls, and what flows between them.

A model maps named inputs to named outputs. Sampling from a seed is the input
kind ``latent``; an image-driven family (Fader, segmentation) takes the input
kind ``image``. Everything the widgets and the CLI show is built from these
declarations, so a new family never needs a new path through ``_qt/`` or
``cli.py``. No torch at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# -- input kinds ------------------------------------------------------------------------------------------
LATENT = "latent"  # a vector drawn from a seed (no user data)
IMAGE = "image"  # images or videos (N, C, *sample_axes), from a layer or files
LABELS = "labels"  # integer class maps (N, *spatial), from a Labels layer or a mask folder
CLASS = "class"  # one integer class per sample (from class sub-folders)
ATTRIBUTES = "attributes"  # a table of per-sample values (CSV keyed by file or subject)
INPUT_KINDS = (LATENT, IMAGE, LABELS, CLASS, ATTRIBUTES)

# -- output kinds -----------------------------------------------------------------------------------------
SIGNED = "signed"  # a signed map shown as a diverging overlay; never clamped
OUTPUT_KINDS = (IMAGE, SIGNED, LABELS)  # image: values in [0, 1] after conversion; labels: arg-max classes

# -- control kinds ----------------------------------------------------------------------------------------
CONTROL_KINDS = ("seed", "direction", "code", "class", "attribute")


@dataclass(frozen=True)
class Channel:
    """One output channel: its name and display colormap."""

    name: str
    colormap: str = "gray"


@dataclass(frozen=True)
class Input:
    """A named input of a family.

    ``train``: the training data must hold it; ``run``: generating needs it (the
    source Generate and Explore ask for). A GAN's real images are ``train`` only,
    its latent is ``run`` only; a segmenter's image is both, its labels ``train`` only.
    """

    name: str
    kind: str
    train: bool = True
    run: bool = True
    help: str = ""

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"Unknown input kind '{self.kind}'; one of {INPUT_KINDS}.")


@dataclass(frozen=True)
class Output:
    """A named output: ``kind`` decides how it is converted and shown (Image, signed overlay, Labels)."""

    name: str
    kind: str = IMAGE
    channels: tuple[Channel, ...] = (Channel("image"),)
    #: class names of a labels output (index 0 is background)
    classes: tuple[str, ...] = ()
    help: str = ""

    def __post_init__(self):
        if self.kind not in OUTPUT_KINDS:
            raise ValueError(f"Unknown output kind '{self.kind}'; one of {OUTPUT_KINDS}.")


@dataclass(frozen=True)
class Control:
    """One slider or picker the widgets show, and a value ``decode`` receives by name.

    kind: "seed" (integer picker), "direction" (latent direction, float),
    "code" (InfoGAN-like code), "attribute" (float slider), "class" (choice from
    ``choices``: the value is the index). ``live``: re-render while dragging
    (False: an Apply button, e.g. a slow optimisation).
    """

    name: str
    kind: str
    minimum: float = -3.0
    maximum: float = 3.0
    default: float = 0.0
    step: float = 0.1
    choices: tuple[str, ...] = ()
    help: str = ""
    live: bool = True

    @property
    def is_choice(self) -> bool:
        """Integer-valued (class, seed): paths jump between values instead of interpolating them."""
        return self.kind in ("class", "seed")

    def check(self, value: Any) -> Any:
        """``value`` as this control's type and in its range; ValueError with a plain sentence otherwise."""
        if self.kind == "class" and self.choices:
            index = _as_number(self.name, value, int)
            if not 0 <= index < len(self.choices):
                raise ValueError(f"'{self.name}' takes a class index from 0 to {len(self.choices) - 1} "
                                 f"({', '.join(self.choices)}), not {value}.")
            return index
        number = _as_number(self.name, value, int if self.kind == "seed" else float)
        return number


def _as_number(name: str, value: Any, cast):
    try:
        if isinstance(value, str):
            value = float(value)
        if cast is int and float(value) != int(float(value)):
            raise ValueError
        return cast(value)
    except (TypeError, ValueError):
        kind = "a whole number" if cast is int else "a number"
        raise ValueError(f"'{name}' takes {kind}, not {value!r}.") from None


@dataclass
class Point:
    """What Explore renders and a keyframe stores: an encoded state and control values.

    ``state`` holds batched tensors (first axis: samples), e.g. ``{"latent": (1, D)}``
    for a seeded GAN or the encoder's output for an image-driven family;
    ``controls`` maps control names to values; ``origin`` says where the state came
    from (a seed, a layer) for provenance.
    """

    state: dict[str, "torch.Tensor"]
    controls: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.state.values()))) if self.state else 0

    def describe(self, digits: int = 6) -> dict[str, Any]:
        """A JSON-able record (provenance, keyframe lists): latents in full (they ARE the sample), other
        states (an encoder's features of an image) by shape only: the origin says how to remake them."""
        state = {}
        for name, tensor in self.state.items():
            if name == LATENT:
                state[name] = [round(float(v), digits) for v in tensor.reshape(-1).tolist()]
            else:
                state[name] = {"shape": list(tensor.shape)}
        return {"origin": dict(self.origin), "controls": dict(self.controls), "state": state}


@dataclass
class TrainContext:
    """What a family's ``train_step`` gets besides networks, optimisers and batches."""

    config: Any
    hparams: dict[str, Any]
    step: int  # the step being taken, counted from 0
    rng: "torch.Generator"  # the loop's noise generator: draw ALL randomness from it (bit-exact resume)
    device: Any
