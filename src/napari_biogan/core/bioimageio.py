"""Export a segmenter as a BioImage Model Zoo package (bioimage.io model format 0.5), and read one back.

Written against the family contract, never a family name: a model is exportable when
it runs from ONE image input (no latent, no controls), has 2D samples, and has a
labels output with class names whose raw output is one score per class and pixel.
The package holds:

- ``rdf.yaml``: input ``image`` (batch, channel, y, x) with the family's
  ``prepare_source`` expressed as bioimage.io preprocessing (found by probing it and
  checked, see :mod:`.bioimageio_net`); output ``probabilities`` (batch, channel =
  one per class, y, x), the softmax of the labels output; a fixed tile size with a
  halo (consumers tile larger images); the model card's facts (description, tags,
  cite, training data, training details, held-out figures, source sha256);
- weights as ``pytorch_state_dict`` (converted from the safetensors file; the
  architecture is :class:`~.bioimageio_net.ContractNet`, so napari-biogan must be
  installed) and TorchScript (traced from it at the tile size; needs only PyTorch);
- a test input (a crop of the given image, or of a synthetic image of discs) and the
  test output our own run path gives (``Model.encode`` + the family's ``decode``);
- ``README.md`` (the documentation) and ``environment.yaml`` (for the state dict).

Before the package is published (atomically, never over a file unless asked) it is
tested with ``bioimageio.core.test_model``. No URLs are written, so nothing in it
sends the library to the network.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .. import __version__
from .atomic import exists_message, write_atomically
from .contract import IMAGE, LABELS
from .errors import BioGanError, DataError, ModelFileError, OutputExistsError

if TYPE_CHECKING:
    from .model import Model

#: default side of the square tile the TorchScript is traced at (pixels)
DEFAULT_TILE = 256
#: the output id (the class probabilities)
OUTPUT_ID = "probabilities"
#: where the package keeps what napari-biogan needs to read it back (under config)
CONFIG_KEY = "napari_biogan"
#: DOIs of citations model cards give as text (the card is the source; this only adds the identifier)
KNOWN_DOIS = {"Caicedo et al., Cytometry A 2019": "10.1002/cyto.a.23863",
              "Ljosa et al., Nat Methods 2012": "10.1038/nmeth.2083"}
#: steps reported to ``progress``
STEPS = 6


class NotExportableError(BioGanError):
    """A model that a bioimage.io package cannot describe (the message says why)."""


@dataclass(frozen=True)
class ExportPlan:
    """What the package describes: the run input, the labels output and the input channels."""

    input_name: str
    output_name: str
    classes: tuple[str, ...]


def export_plan(model: "Model") -> ExportPlan:
    """The plan for ``model``; NotExportableError (one sentence) when a package cannot describe it."""
    name = f"The '{model.family.name}' model"
    if model.has_latent:
        raise NotExportableError(f"{name} generates from a seed; only models that map an image to classes "
                                 "can be exported for the BioImage Model Zoo.")
    run = model.run_inputs()
    if len(run) != 1 or run[0].kind != IMAGE:
        raise NotExportableError(f"{name} does not run from exactly one image, so a BioImage Model Zoo package "
                                 "cannot describe its input.")
    if model.controls:
        raise NotExportableError(f"{name} has controls ({', '.join(c.name for c in model.controls)}) that a "
                                 "BioImage Model Zoo package cannot set.")
    if tuple(model.family.sample_axes) != ("Y", "X"):
        raise NotExportableError(f"{name} works on {'x'.join(model.family.sample_axes)} samples; only 2D images "
                                 "can be exported for the BioImage Model Zoo so far.")
    labels = [o for o in model.outputs if o.kind == LABELS and len(o.classes) >= 2]
    if not labels:
        raise NotExportableError(f"{name} has no class-map output, so there is no segmentation to export.")
    return ExportPlan(run[0].name, labels[0].name, tuple(labels[0].classes))


def why_not_exportable(model: "Model | None") -> str | None:
    """None when ``model`` can be exported, else the sentence saying why not (for buttons' tooltips)."""
    if model is None:
        return "Load a model first."
    try:
        export_plan(model)
    except NotExportableError as err:
        return str(err)
    return None


def export_bioimageio(model: "Model", path, *, overwrite: bool = False, test_image: np.ndarray | None = None,
                      tile: int = DEFAULT_TILE, authors: Sequence[str] = (), check: bool = True,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Write ``model`` as a bioimage.io model package (.zip) at ``path``; returns the path written.

    ``test_image``: (Y, X) or (C, Y, X) raw intensities, cropped to its central ``tile`` x
    ``tile`` pixels (default: a synthetic image of discs). ``check``: test the package with
    bioimageio.core before publishing it. ``progress(done, total)`` after each step.
    """
    import torch

    from .bioimageio_net import (ContractNet, FixedSize, check_scaling, identify_scaling, prepare_function,
                                 probe_images)

    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise DataError(f"A BioImage Model Zoo package is a .zip file, not '{path.name}'.")
    if not overwrite and path.exists():  # before the work; the atomic write checks again
        raise OutputExistsError(exists_message(path))
    plan = export_plan(model)
    step = _Steps(progress)
    net = ContractNet.from_model(model, plan.input_name, plan.output_name)
    prepare = prepare_function(model, plan.input_name)
    channels = _input_channels(net, prepare, len(plan.classes), model.family.name)
    scaling = identify_scaling(prepare, channels)
    image = _test_input(test_image, channels, tile)
    check_scaling(prepare, scaling, probe_images(channels) + [image])
    step()
    expected = _reference_output(model, plan, image)
    step()
    with tempfile.TemporaryDirectory(prefix="biogan-bioimageio-") as folder:
        folder = Path(folder)
        np.save(folder / "test_input.npy", image)
        np.save(folder / "test_output.npy", expected)
        torch.save(net.state_dict(), folder / "weights.pt")
        # traced without autograd (the attention's chunked inference path): the weights must not ask for
        # gradients either, or a caller that forgets no_grad gets an error from those in-place kernels
        net.requires_grad_(False)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings: shapes are fixed by the tile, on purpose
                traced = torch.jit.trace(FixedSize(net, tile, tile), torch.from_numpy(prepare(image)))
            traced.save(str(folder / "weights.torchscript"))
        except RuntimeError as err:  # e.g. a custom autograd Function in the run path: TorchScript cannot hold it
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise NotExportableError(f"The '{model.family.name}' model's network cannot be written as TorchScript "
                                     f"({reason.rstrip('.:')}).") from err
        step()
        from .bioimageio_rdf import build_description

        descr = build_description(model, plan, scaling, folder, channels=channels, tile=tile, authors=authors,
                                  parameters=sum(p.numel() for p in net.parameters()))
        step()
        package = folder / "package.zip"
        _save_package(descr, package)
        step()
        if check:
            check_package(package)
        written = write_atomically(path, lambda handle: _copy(package, handle), overwrite=overwrite)
        step()
    return written


def check_package(package: Path) -> None:
    """Run ``bioimageio.core.test_model`` on ``package`` (offline); NotExportableError with the first failure."""
    from bioimageio.core import test_model

    import torch

    state = torch.random.get_rng_state(), np.random.get_state()
    try:
        with _quiet():
            summary = test_model(package)  # seeds torch and numpy (and reports, not raises, failures)
    finally:
        torch.random.set_rng_state(state[0])
        np.random.set_state(state[1])
    if summary.status != "passed":
        failures = [f"{d.name}: {e.msg}" for d in summary.details for e in d.errors]
        raise NotExportableError("The package failed the bioimage.io model test ("
                                 f"{failures[0] if failures else summary.status}).")


def load_bioimageio(path) -> "Model":
    """A :class:`~.model.Model` from a package napari-biogan exported (its pytorch_state_dict weights)."""
    import torch

    from .model import Model
    from .registry import get_family

    path = Path(path)
    name = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            rdf = _read_yaml(archive.read("rdf.yaml"))
            info = (rdf.get("config") or {}).get(CONFIG_KEY)
            if not isinstance(info, dict):
                raise ModelFileError(f"{name} is a bioimage.io package that napari-biogan did not export; "
                                     "it can only read back its own.")
            weights = rdf["weights"]["pytorch_state_dict"]["source"]
            with archive.open(weights) as handle:
                state = torch.load(handle, map_location="cpu", weights_only=True)
    except (OSError, zipfile.BadZipFile, KeyError) as err:
        raise ModelFileError(f"{name} is not a readable bioimage.io package ({err}).") from None
    family = get_family(info["family"])
    config = family.config_from_dict(info["config"])
    nets = family.build(config)
    prefix = "nets."
    try:
        nets.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=False)
    except RuntimeError as err:
        raise ModelFileError(f"The weights in {name} do not fit its config ({err}).") from None
    card = dict(info.get("card") or {})
    card.setdefault("family", family.name)
    return Model(family, config, nets, card, device="cpu", sha256=info.get("sha256"))


# -- steps ------------------------------------------------------------------------------------------------

class _Steps:
    def __init__(self, progress):
        self.progress, self.done = progress, 0

    def __call__(self):
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, STEPS)


def _input_channels(net, prepare, classes: int, family: str) -> int:
    """How many channels the model's image has: the first count (1 to 4) its run path accepts."""
    import torch

    rng = np.random.default_rng(0)
    for channels in range(1, 5):
        probe = rng.random((1, channels, 64, 64)).astype(np.float32)
        try:
            with torch.no_grad():
                out = net(torch.from_numpy(prepare(probe)))
        except Exception:  # noqa: BLE001 - any refusal of this channel count: try the next one
            continue
        if tuple(out.shape) != (1, classes, 64, 64):
            raise NotExportableError(f"The '{family}' model's class-map output is not one score per class and "
                                     "pixel, so a package cannot describe it.")
        return channels
    raise NotExportableError(f"The '{family}' model takes no image of 1 to 4 channels that could be described.")


def _test_input(image: np.ndarray | None, channels: int, tile: int) -> np.ndarray:
    """(1, C, tile, tile) float32: the central crop of ``image`` or of a synthetic image of discs."""
    if tile < 16:
        raise DataError(f"The package's tile must be at least 16 pixels, not {tile}.")
    if image is None:
        image = synthetic_image(tile, channels)
    image = np.asarray(image)
    if image.dtype.kind not in "uif":
        raise DataError(f"The test image must hold numbers, not {image.dtype}.")
    if image.ndim == 2:
        image = image[None]
    elif image.ndim == 3 and image.shape[0] != channels and image.shape[-1] == channels:
        image = np.moveaxis(image, -1, 0)
    if image.ndim != 3 or image.shape[0] != channels:
        want = "(Y, X)" if channels == 1 else f"(C, Y, X) with {channels} channels"
        raise DataError(f"The test image must be one 2D image {want}, not shaped {tuple(image.shape)}.")
    height, width = image.shape[-2:]
    if min(height, width) < tile:
        raise DataError(f"The test image is {height}x{width} pixels; it must be at least {tile}x{tile} "
                        "(the package's tile).")
    y, x = (height - tile) // 2, (width - tile) // 2
    crop = np.ascontiguousarray(image[:, y:y + tile, x:x + tile], dtype=np.float32)[None]
    if not np.isfinite(crop).all():
        raise DataError("The test image contains NaN or infinite values.")
    return crop


def synthetic_image(size: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(C, size, size) float32: bright blurred discs on a dim noisy background (a stand-in for nuclei)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    image = np.full((size, size), 100.0, np.float32)
    radius = max(3.0, size / 20)
    for _ in range(max(3, (size // 24) ** 2)):
        cy, cx = rng.uniform(0, size, 2)
        edge = (np.hypot(yy - cy, xx - cx) - radius * rng.uniform(0.7, 1.3)) * 1.5
        image += 700.0 / (1 + np.exp(np.clip(edge, -30, 30)))
    image += rng.normal(0, 15, image.shape).astype(np.float32)
    return np.repeat(image[None], channels, axis=0).astype(np.float32)


def _reference_output(model: "Model", plan: ExportPlan, image: np.ndarray) -> np.ndarray:
    """The class probabilities by our own run path: ``Model.encode`` (prepare_source and the family's
    encode) and the family's ``decode`` in fp32, as ``Model.run`` computes the labels output."""
    import copy

    import torch

    if str(model.device) != "cpu":  # GPU convolutions may run in TF32: the reference is taken on the CPU
        from .model import Model

        model = Model(model.family, model.config, copy.deepcopy(model.nets).cpu(), model.card, device="cpu",
                      sha256=model.sha256)
    state = model.encode({plan.input_name: image}, precision="fp32")
    controls = model.check_controls(None)
    with torch.inference_mode():
        raw = model.family.decode(model.nets, model.config, {k: v.to(model.device) for k, v in state.items()},
                                  controls)[plan.output_name]
    return raw.float().softmax(dim=1).cpu().numpy().astype(np.float32)


def _save_package(descr, package: Path) -> None:
    from bioimageio.spec import save_bioimageio_package

    with _quiet():
        save_bioimageio_package(descr, output_path=package)


def _copy(source: Path, handle) -> None:
    with open(source, "rb") as src:
        shutil.copyfileobj(src, handle)


def _read_yaml(data: bytes) -> dict[str, Any]:
    from ruyaml import YAML

    loaded = YAML(typ="safe").load(data.decode("utf-8"))
    return loaded if isinstance(loaded, dict) else {}


@contextlib.contextmanager
def _quiet():
    """bioimageio logs each step with loguru: keep a plugin's console and a CLI's stderr clean."""
    from loguru import logger

    logger.disable("bioimageio")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.enable("bioimageio")


def card_json(card: dict[str, Any]) -> dict[str, Any]:
    """The card as plain JSON values (for the package's config)."""
    return json.loads(json.dumps(card, default=str))


def known_dois(text: str) -> list[tuple[str, str]]:
    """(citation, DOI) pairs for the citations in ``text``: DOIs written in it and :data:`KNOWN_DOIS`."""
    found = [(citation, doi) for citation, doi in KNOWN_DOIS.items() if citation in text]
    for doi in re.findall(r"\b10\.\d{4,9}/[^\s;,)]+", text):
        if doi not in {d for _, d in found}:
            found.append((doi, doi))
    return found
