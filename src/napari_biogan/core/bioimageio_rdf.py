"""The ``rdf.yaml`` of an exported package (bioimage.io model format 0.5) and its README.

Every fact comes from the model, its family's declarations or its card; the card is
copied whole into ``config.napari_biogan`` so napari-biogan can read the package back.
No URLs are written (a URL makes the bioimage.io validator reach the network).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .. import __version__

if TYPE_CHECKING:
    from .bioimageio import ExportPlan
    from .bioimageio_net import Scaling
    from .model import Model

#: the halo is this fraction of the tile: consumers overlap tiles by twice it (64 pixels of a 256 tile)
HALO_FRACTION = 8


def build_description(model: "Model", plan: "ExportPlan", scaling: "Scaling", folder: Path, *, channels: int,
                      tile: int, authors: Sequence[str], parameters: int):
    """A validated ``bioimageio.spec`` ModelDescr of the files in ``folder`` (README.md and environment.yaml
    are written here)."""
    import torch
    from bioimageio.spec import ValidationContext
    from bioimageio.spec.model import v0_5 as bio

    from .bioimageio import CONFIG_KEY, OUTPUT_ID, card_json, known_dois
    from .bioimageio_net import config_values

    card = model.card or {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    data = card.get("data") if isinstance(card.get("data"), dict) else {}
    halo = max(1, tile // HALO_FRACTION)
    (folder / "README.md").write_text(documentation(model, plan, scaling, channels, tile, halo), encoding="utf-8")
    torch_version = torch.__version__.split("+")[0]
    (folder / "environment.yaml").write_text(
        "name: napari-biogan\nchannels:\n  - conda-forge\n  - nodefaults\ndependencies:\n  - python>=3.10\n"
        f"  - pytorch>={torch_version.rsplit('.', 1)[0]}\n  - pip\n  - pip:\n      - napari-biogan>={__version__}\n",
        encoding="utf-8")
    input_id = bio.TensorId(plan.input_name.lower())
    preprocessing = _preprocessing(bio, scaling)
    space_in = [bio.SpaceInputAxis(id=bio.AxisId(a), size=tile) for a in ("y", "x")]
    space_out = [bio.SpaceOutputAxisWithHalo(id=bio.AxisId(a), halo=halo,
                                              size=bio.SizeReference(tensor_id=input_id, axis_id=bio.AxisId(a)))
                 for a in ("y", "x")]
    channel_names = [f"channel{i}" for i in range(channels)] if channels > 1 else ["intensity"]
    citation_text = " ".join(str(v) for v in (card.get("licence"), data.get("licence"), data.get("name")) if v)
    with ValidationContext(root=folder, perform_io_checks=True):
        return bio.ModelDescr(
            name=_name(model.name),
            description=_description(model, plan),
            authors=[bio.Author(name=a) for a in authors if a.strip()],
            cite=[bio.CiteEntry(text=text, doi=bio.Doi(doi)) for text, doi in known_dois(citation_text)],
            license=bio.LicenseId(_model_licence(card)),
            tags=_tags(model, plan),
            documentation=bio.FileDescr(source=folder / "README.md"),
            version=__version__,
            inputs=[bio.InputTensorDescr(
                id=input_id, description=f"raw intensities of one image ({channels} channel(s))",
                axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=channel_names), *space_in],
                test_tensor=bio.FileDescr(source=folder / "test_input.npy"),
                data=bio.IntervalOrRatioDataDescr(type="float32"),
                preprocessing=preprocessing)],
            outputs=[bio.OutputTensorDescr(
                id=bio.TensorId(OUTPUT_ID), description="probability of each class (softmax); the class map is "
                                                         "the arg-max over channels",
                axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=list(plan.classes)), *space_out],
                test_tensor=bio.FileDescr(source=folder / "test_output.npy"),
                data=bio.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)))],
            weights=bio.WeightsDescr(
                pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
                    source=folder / "weights.pt", pytorch_version=bio.Version(torch_version),
                    architecture=bio.ArchitectureFromLibraryDescr(
                        callable=bio.Identifier("ContractNet"), import_from="napari_biogan.core.bioimageio_net",
                        kwargs={"family": model.family.name, "config": config_values(model.config),
                                "input_name": plan.input_name, "output_name": plan.output_name}),
                    dependencies=bio.FileDescr(source=folder / "environment.yaml")),
                torchscript=bio.TorchscriptWeightsDescr(
                    source=folder / "weights.torchscript", pytorch_version=bio.Version(torch_version),
                    parent="pytorch_state_dict")),
            training_data=_training_data(bio, card, data, training),
            config=bio.Config(bioimageio=bio.BioimageioConfig(
                architecture_type=model.family.name[:32],
                architecture_description=f"napari-biogan family '{model.family.name}' ({model.family.title}); "
                                         "the network's config is in the pytorch_state_dict kwargs",
                task="semantic segmentation", model_parameter_count=int(parameters),
                training=_training_details(bio, training)),
                **{CONFIG_KEY: {"family": model.family.name, "config": config_values(model.config),
                                "input": plan.input_name, "output": plan.output_name, "sha256": model.sha256,
                                "source_file": model.path.name if model.path else None, "version": __version__,
                                "card": card_json(card)}}),
        )


def _preprocessing(bio, scaling: "Scaling") -> list:
    steps: list[Any] = []
    if scaling.percentiles is not None:
        low, high = scaling.percentiles
        steps.append(bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(
            axes=[bio.AxisId("y"), bio.AxisId("x")], min_percentile=float(low), max_percentile=float(high))))
    if (scaling.gain, scaling.offset) != (1.0, 0.0):
        steps.append(bio.ScaleLinearDescr(kwargs=bio.ScaleLinearKwargs(gain=float(scaling.gain),
                                                                      offset=float(scaling.offset))))
    if scaling.clip != (None, None):
        steps.append(bio.ClipDescr(kwargs=bio.ClipKwargs(min=scaling.clip[0], max=scaling.clip[1])))
    return steps


def _training_data(bio, card: dict, data: dict, training: dict):
    """The card's training data as an inline dataset description (None when the card names none)."""
    from bioimageio.spec.dataset.v0_3 import DatasetDescr

    what = training.get("data") or data.get("name")
    if not what:
        return None
    notes = [str(what)] + [f"{k}: {data[k]}" for k in ("labels",) if data.get(k)]
    licence = _spdx(str(data.get("licence") or ""))
    return DatasetDescr(name=_name(str(data.get("name") or what)), description=_clip("; ".join(notes), 1024),
                        **({"license": bio.LicenseId(licence)} if licence else {}))


def _training_details(bio, training: dict):
    hparams = training.get("hparams") if isinstance(training.get("hparams"), dict) else {}
    extra = {k: training[k] for k in ("steps", "device", "variant") if training.get(k) is not None}
    extra["hparams"] = _plain(hparams)
    wall = training.get("wall_time_s")
    return bio.TrainingDetails(
        training_batch_size=hparams.get("batch_size"),
        training_duration=round(float(wall) / 3600, 3) if isinstance(wall, (int, float)) else None,
        **extra)


def documentation(model: "Model", plan: "ExportPlan", scaling: "Scaling", channels: int, tile: int,
                  halo: int) -> str:
    """The package's README.md: what goes in and out, the training, the held-out figures, the provenance."""
    card = model.card or {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    data = card.get("data") if isinstance(card.get("data"), dict) else {}
    lines = [f"# {model.name}", "", _description(model, plan), "",
             f"Exported by napari-biogan {__version__} from a '{model.family.name}' model "
             f"({model.family.title})" + (f", file `{model.path.name}`" if model.path else "")
             + (f", sha256 `{model.sha256}`." if model.sha256 else " (never saved to a file)."), "",
             "## Input", "",
             f"`{plan.input_name}`: raw intensities of one 2D image, {channels} channel(s), axes batch, channel, y, x.",
             f"Preprocessing: {scaling.describe()}", "",
             f"The TorchScript weights were traced at a fixed tile of {tile} x {tile} pixels, so the input has that "
             f"size; tools tile larger images, discarding a halo of {halo} pixels on each side of every tile. "
             "Percentiles are taken over the whole image before tiling.", "",
             "## Output", "",
             "`probabilities`: one channel per class (softmax), axes batch, channel, y, x. Classes: "
             + ", ".join(f"{i} = {c}" for i, c in enumerate(plan.classes))
             + ". The class map napari-biogan shows is the arg-max over the channels.", ""]
    lines += ["## Training", ""]
    facts = [("Data", training.get("data") or data.get("name")), ("Labels", data.get("labels")),
             ("Licence of the training data", data.get("licence")), ("Licence", card.get("licence")),
             ("Training steps", training.get("steps")), ("Device", training.get("device")),
             ("Split", _split(card.get("split")))]
    lines += [f"- {k}: {v}" for k, v in facts if v] or ["The model card records no training."]
    lines += ["", "## Validation", ""]
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    if metrics:
        lines += [str(card.get("metrics_note") or "Figures from the model card."), "", "| metric | value |",
                  "| --- | --- |"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()
                  if isinstance(v, (int, float))]
    else:
        lines += ["The model card holds no held-out figures: validate the model on annotated images of your own "
                  "(e.g. napari-biogan's Evaluate widget or `napari-biogan evaluate`)."]
    lines += ["", "The package's test output is what napari-biogan's own run path gives on the test input "
                  "(fp32); `bioimageio.core.test_model` reproduces it from both weight formats.", "",
              "## Limitations", "",
              "- napari-biogan takes the percentiles of images over 2^18 pixels from an even subsample; "
              "bioimage.io tools take them exactly, so results on very large images can differ slightly.",
              "- The pytorch_state_dict weights need napari-biogan installed (the architecture is its "
              "`ContractNet`); the TorchScript weights need only PyTorch.", ""]
    return "\n".join(lines)


# -- small helpers -----------------------------------------------------------------------------------------

def _description(model: "Model", plan: "ExportPlan") -> str:
    text = str((model.card or {}).get("description") or
               f"{model.family.title}: image -> {', '.join(plan.classes)}")
    return _clip(text, 1024)


def _name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", text).strip() or "napari-biogan model"
    return (name if len(name) >= 5 else f"{name} segmenter")[:128]


def _tags(model: "Model", plan: "ExportPlan") -> list[str]:
    tags = ["napari-biogan", model.family.name, "segmentation", "semantic-segmentation", "2d", "pytorch",
            "torchscript", *(c.lower() for c in plan.classes if c.lower() != "background")]
    return list(dict.fromkeys(t.replace(" ", "-") for t in tags))


def _model_licence(card: dict) -> str:
    """The SPDX id the card gives the model ('model: BSD-3-Clause ...'), else this package's own licence."""
    text = str(card.get("licence") or "")
    match = re.search(r"model:\s*([^;,(]+)", text)
    return _spdx(match.group(1) if match else text) or "BSD-3-Clause"


def _spdx(text: str) -> str | None:
    """The first SPDX licence id in ``text`` ('CC0 1.0' -> 'CC0-1.0'), None when there is none."""
    from bioimageio.spec.model.v0_5 import LicenseId

    for part in re.split(r"[;,]", text):
        words = part.split()
        for size in (1, 2):
            candidate = "-".join(words[:size])
            if not candidate:
                continue
            try:
                return str(LicenseId(candidate))
            except ValueError:
                continue
    return None


def _split(split: Any) -> str | None:
    if not isinstance(split, dict):
        return None
    parts = [f"{k}: {', '.join(map(str, v))}" if isinstance(v, list) else f"{k}: {v}" for k, v in split.items()]
    return "; ".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
