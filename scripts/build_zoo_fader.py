"""Rebuild the shipped Fader models and their evaluation classifiers on a CPU.

    nice -n 19 python scripts/build_zoo_fader.py [--dataset dementia|ixi] [--work DIR] [--steps N] [--minutes 30]

``--dataset dementia`` (the default) builds `zoo/mri-attribute-classifier.safetensors` and
`zoo/mri-fader.safetensors`. Data: ../shared/data/alzheimer_mri_4class (Kaggle "Alzheimer's
Dataset (4 class of Images)", ODbL 1.0): the TRAIN split (5,121 slices) trains both networks;
the TEST split (1,279 slices of 200 scans, kept apart by scan) is the held-out set every number
is measured on. The diagnosis is an ordered attribute (NonDemented < VeryMild < Mild <
Moderate); slice position is not known in this data set.

``--dataset ixi`` builds `zoo/ixi-position-regressor.safetensors` and `zoo/ixi-fader.safetensors`:
a slider that moves an axial slice up and down the brain (slice position, 0 = the lowest slice
of the brain, 1 = the top). Data: ../shared/data/ixi_t1_brain (IXI, CC BY-SA 3.0): every axial
slice of the 8 skull-stripped T1 volumes, their position across the brain's extent as a
continuous attribute; subjects ``data.mri.IXI_HELD_OUT`` (2 of 8) are held out, never seen by
either network. Age and sex are not attributes of this model: 6 training subjects cannot
teach or test them (``data.mri.IXI_NOTE``).

Slices: percentiles to [-1, 1], padded square, 64x64 (``data.mri.scale_slices``).

1. The evaluation classifier / regressor (class-balanced batches where there are classes,
   shifts, flips), trained on the training slices only, frozen, its held-out accuracy per
   class or error in its card.
2. The Fader model (the data set's recipe, ``RECIPES``; the dementia one is a 16x16 latent
   map, two encoder layers, and a PatchGAN on decoded slices against blur, measured against
   the first model's 4x4 map in the README) through the one Trainer (``setup_training``):
   checkpoints in --work; a run stops after --minutes and a new run resumes where it stopped
   (same results as never stopping), until --steps.
3. Evaluation on the held-out slices (metrics.attributes.evaluate_fader), written into the
   model card and --work/fader_metrics.csv; the shipped file keeps only encoder and decoder.
   The IXI model's card names its evaluation regressor (``evaluation_classifier``), so every
   evaluation of it (CLI, widget) reads the slice position with it.
4. The pictures and tables in the README: benchmarks/bench_fader.py [--dataset ixi].
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "src" / "napari_biogan" / "zoo"
DATA = ROOT.parent / "shared" / "data" / "alzheimer_mri_4class"
IXI_DATA = ROOT.parent / "shared" / "data" / "ixi_t1_brain"
IXI_ATTRIBUTE = "position:continuous:0|1"


@dataclass(frozen=True)
class Recipe:
    """What differs between the data sets: names, texts, the model's config and hyper-parameters."""

    model: str
    classifier: str
    data_name: str
    licence: str
    attribute: str
    #: the shipped model's config and hyper-parameters (--config / --hparams JSON is applied on top)
    config: dict
    hparams: dict
    description: str
    classifier_description: str
    steps: int


RECIPES = {
    "dementia": Recipe(
        model="mri-fader", classifier="mri-attribute-classifier",
        data_name="Alzheimer's Dataset (4 class of Images), Kaggle (tourist55) via github.com/Pinkshepz/Alzheimers-Class; "
                  "origin undocumented (commonly held to be OASIS)",
        licence="ODbL 1.0 (Open Database License), as published on Kaggle", attribute="diagnosis",
        config={"depth": 2, "patch_width": 16}, hparams={"lambda_patch": 0.01},
        description="Fader Networks on 64x64 axial T1 brain slices: a diagnosis slider from non-demented to "
                    "moderate dementia (ordered classes, interpolated between, extrapolated beyond); a 16x16 "
                    "latent map and a PatchGAN on decoded slices keep the reconstruction sharp.",
        classifier_description="Evaluation classifier of the dementia diagnosis on 64x64 axial T1 slices (swap "
                               "accuracy of MRI attribute models); trained on the training split only, then frozen.",
        steps=3500),
    "ixi": Recipe(
        model="ixi-fader", classifier="ixi-position-regressor",
        data_name="IXI T1 brain volumes (brain-development.org/ixi-dataset), 8 skull-stripped subjects via "
                  "github.com/charliepublic/BrainAge",
        licence="CC BY-SA 3.0 (IXI data set)", attribute="position",
        # a 4x4 latent map: moving a slice up the brain redraws its whole anatomy, which a 16x16 map keeps
        # (measured in the README: edits did not move); the PatchGAN against the blur of the narrow map
        # slices "all": how the CLI and the widgets read volumes for this model (every slice, each with its
        # position); training takes the slices from the arrays built here
        config={"attributes": IXI_ATTRIBUTE, "depth": 4, "patch_width": 16, "slices": "all"},
        hparams={"lambda_patch": 0.01},
        description="Fader Networks on 64x64 axial T1 brain slices of healthy adults (IXI): a slice-position "
                    "slider (0 = the lowest slice of the brain, 1 = the top) that moves a slice up and down the "
                    "brain. Trained on 6 subjects; 2 held out.",
        classifier_description="Evaluation regressor of an axial slice's position in the brain (0 = lowest "
                               "slice, 1 = top) on 64x64 IXI T1 slices; trained on 6 subjects, then frozen.",
        steps=2500),
}


def load_splits(dataset: str, size: int, work: Path):
    """The training and held-out slices, cached as .npz in the work folder (never in the repository);
    the IXI volumes are read once for both splits."""
    from napari_biogan.data.attributes import parse_specs
    from napari_biogan.data.mri import (DEMENTIA_ATTRIBUTE, SliceSet, ixi_split, load_dementia_slices,
                                        load_ixi)

    caches = [work / f"{dataset}-{split}-{size}.npz" for split in ("train", "test")]
    if all(cache.exists() for cache in caches):
        splits = []
        for cache in caches:
            with np.load(cache, allow_pickle=False) as npz:
                splits.append(SliceSet(npz["images"], npz["values"], parse_specs(list(npz["specs"])),
                                       npz["subjects"], list(npz["files"]),
                                       np.full(len(npz["images"]), np.nan, np.float32),
                                       str(npz["description"]), bool(npz["known"])))
        return tuple(splits)
    if dataset == "ixi":
        splits, specs = ixi_split(load_ixi(IXI_DATA, step=1, size=size, attributes=(IXI_ATTRIBUTE,))), [IXI_ATTRIBUTE]
    else:
        splits = tuple(load_dementia_slices(DATA, split, size) for split in ("train", "test"))
        specs = [DEMENTIA_ATTRIBUTE]
    for data, cache in zip(splits, caches):
        np.savez(cache, images=data.images, values=data.values, subjects=data.subjects,
                 files=np.asarray(data.files), description=data.description, known=data.subjects_known,
                 specs=np.asarray(specs))
    return tuple(splits)


def describe(data) -> str:
    """Slices per class, or the spread of a continuous attribute."""
    spec = data.specs[0]
    if spec.classes:
        return str(data.counts(spec.name))
    column = data.column(spec.name)
    return f"{spec.name} {column.min():.2f}-{column.max():.2f}"


def build_classifier(train, test, args, work: Path, recipe: Recipe):
    from napari_biogan.metrics.attributes import (classifier_scores, load_attribute_classifier,
                                                  save_attribute_classifier, train_attribute_classifier)

    path = work / f"{recipe.classifier}.safetensors"
    if path.exists():
        return load_attribute_classifier(path)
    start = time.time()

    def progress(step, loss):
        if step % 100 == 0:
            print(f"classifier step {step}/{args.classifier_steps} loss {loss:.3f} {time.time() - start:.0f}s",
                  flush=True)

    classifier = train_attribute_classifier(train.images, train.values, train.specs, steps=args.classifier_steps,
                                            batch_size=64, lr=2e-3, seed=args.seed, progress=progress)
    seconds = time.time() - start
    held = classifier_scores(classifier, test.images, test.values)
    seen = classifier_scores(classifier, train.images, train.values)
    print("classifier held-out:", json.dumps({k: round(v, 3) for k, v in held.items()}), flush=True)
    card = {"name": recipe.classifier, "description": recipe.classifier_description,
            "licence": f"weights trained on data under {recipe.licence}",
            "architecture": "4 stride-2 convs (32-256; BatchNorm from the second; LeakyReLU 0.2) to a 4x4 map, "
                            "flattened (where a change is matters), dropout 0.3, MLP 256, one head per attribute",
            "metrics": {"held_out": {k: round(v, 4) for k, v in held.items()},
                        "training_split": {k: round(v, 4) for k, v in seen.items()}},
            "training": {"data": f"{recipe.data_name}: training split, {len(train)} slices of "
                                 f"{len(set(train.subjects))} scans",
                         "held_out": f"{len(test)} slices of {len(set(test.subjects))} other scans",
                         "steps": args.classifier_steps, "batch_size": 64, "optimizer": "AdamW one-cycle 2e-3",
                         "balanced": "class-balanced batches" if train.specs[0].classes else "none",
                         "seconds": round(seconds), "seed": args.seed},
            "width": 32}
    save_attribute_classifier(classifier, path, card)
    return load_attribute_classifier(path)


def train_fader(train, args, work: Path, recipe: Recipe):
    from napari_biogan.core.training import TrainSettings, setup_training

    checkpoint = work / "fader-checkpoint.safetensors"
    settings = TrainSettings(steps=args.steps, seed=args.seed, output=str(checkpoint), overwrite=True,
                             checkpoint_every=100, preview_every=10 ** 9, preview_n=4,
                             hparams={**recipe.hparams, **(json.loads(args.hparams) if args.hparams else {})},
                             data_description=f"{recipe.data_name}: training split, {len(train)} slices, "
                                              f"{recipe.attribute}")
    overrides = {"size": args.size, **recipe.config, **(json.loads(args.config) if args.config else {})}
    resume = str(checkpoint) if checkpoint.exists() else None
    trainer = setup_training("fader", train.sources(), settings, config_overrides=overrides, resume=resume,
                             device="cpu")
    if trainer.step >= args.steps:
        return trainer.model, True
    started, last = time.time(), time.time()
    finished = False
    for event in trainer.run():
        if event.kind == "step" and (event.step % 25 == 0 or time.time() - last > 120):
            last = time.time()
            losses = " ".join(f"{k} {v:.4f}" for k, v in event.losses.items())
            print(f"fader step {event.step}/{event.total} {losses} elapsed {event.elapsed_s:.0f}s", flush=True)
        if time.time() - started > args.minutes * 60:
            trainer.stop()  # checkpoint at the next step; run again to resume
        finished = event.kind == "finished"
    return trainer.model, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(RECIPES), default="dementia")
    parser.add_argument("--work", default=None, help="caches and checkpoints, outside the repository "
                                                     "(default /tmp/fader-build, /tmp/fader-build-ixi)")
    parser.add_argument("--steps", type=int, default=None, help="Fader steps (default: the recipe's)")
    parser.add_argument("--minutes", type=float, default=30.0, help="stop (with a checkpoint) after this long")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--classifier-steps", type=int, default=2000)
    parser.add_argument("--hparams", default="",
                        help='JSON hyper-parameters over the recipe, e.g. {"lambda_latent": 0.01}')
    parser.add_argument("--config", default="",
                        help='JSON config over the recipe, e.g. {"depth": 4, "patch_width": 0} (the first model)')
    parser.add_argument("--classifier-only", action="store_true", help="stop after the evaluation classifier")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-n", type=int, default=1279, help="held-out slices evaluated (at most all of them)")
    parser.add_argument("--out", default=None, help="the model file (default: zoo/<the recipe's model>)")
    parser.add_argument("--classifier-out", default=None, help="the classifier file (default: zoo/<its name>)")
    args = parser.parse_args()
    recipe = RECIPES[args.dataset]
    args.steps = args.steps or recipe.steps
    out = Path(args.out or ZOO / f"{recipe.model}.safetensors")
    classifier_out = Path(args.classifier_out or ZOO / f"{recipe.classifier}.safetensors")

    from napari_biogan.core.model import Model
    from napari_biogan.metrics import write_metrics_csv
    from napari_biogan.metrics.attributes import evaluate_fader

    torch.set_num_threads(args.threads)
    work = Path(args.work or ("/tmp/fader-build" if args.dataset == "dementia" else f"/tmp/fader-build-{args.dataset}"))
    work.mkdir(parents=True, exist_ok=True)
    train, test = load_splits(args.dataset, args.size, work)
    print(f"train {len(train)} slices of {len(set(train.subjects))} scans ({describe(train)}); held-out "
          f"{len(test)} slices of {len(set(test.subjects))} scans ({describe(test)})", flush=True)
    classifier = build_classifier(train, test, args, work, recipe)
    classifier_out.write_bytes((work / f"{recipe.classifier}.safetensors").read_bytes())
    if args.classifier_only:
        return

    model, finished = train_fader(train, args, work, recipe)
    if not finished:
        print("stopped for the time budget; run the same command again to resume", flush=True)
        return
    model = Model.load(work / "fader-checkpoint.safetensors", device="cpu")
    held = model.family.prepare_data(test.sources(), model.config)
    start = time.time()
    metrics = evaluate_fader(model, held, n=args.n, seed=args.seed, classifier=classifier)
    print(f"evaluated {min(args.n, len(held))} held-out slices in {time.time() - start:.0f}s", flush=True)
    for key, value in metrics.items():
        print(f"  {key}: {value:.4f}")
    write_metrics_csv(work / "fader_metrics.csv", metrics, {"model": recipe.model}, overwrite=True)
    card = dict(model.card)
    card.pop("training_state", None)
    training = dict(card.get("training", {}))
    card.update(
        name=recipe.model, description=recipe.description,
        licence=f"weights trained on data under {recipe.licence}",
        training={**training, "data": f"{recipe.data_name}: training split ({len(train)} slices of "
                                      f"{len(set(train.subjects))} scans), {recipe.attribute}"},
        evaluation={"held_out": f"{min(args.n, len(held))} slices of {len(set(test.subjects))} other scans",
                    "classifier": f"{recipe.classifier} (trained on the training split, frozen)",
                    "classifier_held_out": classifier.card.get("metrics", {}).get("held_out", {})},
        evaluation_classifier=recipe.classifier,
        metrics={k: round(v, 4) for k, v in metrics.items()},
        metric_set="attributes")
    model.card = card
    model.save(out, overwrite=True, include=model.family.inference_nets)
    print("saved", out, flush=True)


if __name__ == "__main__":
    main()
