"""Rebuild `zoo/mri-attribute-classifier.safetensors` and `zoo/mri-fader.safetensors` on a CPU.

    nice -n 19 python scripts/build_zoo_fader.py [--work /tmp/fader-build] [--steps 3500] [--minutes 30]

Data: ../shared/data/alzheimer_mri_4class (Kaggle "Alzheimer's Dataset (4 class of Images)",
ODbL 1.0): the TRAIN split (5,121 slices) trains both networks; the TEST split (1,279 slices
of 200 scans, kept apart by scan) is the held-out set every number is measured on. The
diagnosis is an ordered attribute (NonDemented < VeryMild < Mild < Moderate); slice
position is not known in this data set. Slices: percentiles to [-1, 1], padded square,
64x64 (``data.mri.scale_slices``).

1. The evaluation classifier (class-balanced batches, shifts, flips), trained on the
   training split only, frozen, its held-out accuracy per class in its card.
2. The Fader model (the shipped recipe, ``RECIPE_CONFIG`` and ``RECIPE_HPARAMS``: a 16x16 latent
   map, two encoder layers, and a PatchGAN on decoded slices against blur; measured against
   the first model's 4x4 map in the README) through the one Trainer (``setup_training``): checkpoints in --work;
   a run stops after --minutes and a new run resumes where it stopped (same results as
   never stopping), until --steps.
3. Evaluation on the held-out slices (metrics.attributes.evaluate_fader), written into the
   model card and --work/fader_metrics.csv; the shipped file keeps only encoder and decoder.
4. docs/figures/fader_progression.png: one held-out non-demented slice moved to moderate and
   back, with the difference maps (benchmarks/bench_fader.py draws it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alzheimer_mri_4class"
LICENCE = "ODbL 1.0 (Open Database License), as published on Kaggle"
#: the shipped model's config and hyper-parameters (--config / --hparams JSON is applied on top)
RECIPE_CONFIG = {"depth": 2, "patch_width": 16}
RECIPE_HPARAMS = {"lambda_patch": 0.01}
DATA_NAME = ("Alzheimer's Dataset (4 class of Images), Kaggle (tourist55) via github.com/Pinkshepz/Alzheimers-Class; "
             "origin undocumented (commonly held to be OASIS)")


def load_split(split: str, size: int, work: Path):
    """The slices of one split, cached as .npz in the work folder (never in the repository)."""
    from napari_biogan.data.mri import DEMENTIA_ATTRIBUTE, SliceSet, load_dementia_slices
    from napari_biogan.data.attributes import parse_specs

    cache = work / f"{split}-{size}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as npz:
            return SliceSet(npz["images"], npz["values"], parse_specs([DEMENTIA_ATTRIBUTE]), npz["subjects"],
                            list(npz["files"]), np.full(len(npz["images"]), np.nan, np.float32),
                            str(npz["description"]), bool(npz["known"]))
    data = load_dementia_slices(DATA, split, size)
    np.savez(cache, images=data.images, values=data.values, subjects=data.subjects, files=np.asarray(data.files),
             description=data.description, known=data.subjects_known)
    return data


def build_classifier(train, test, args, work: Path):
    from napari_biogan.metrics.attributes import (classifier_scores, load_attribute_classifier,
                                                  save_attribute_classifier, train_attribute_classifier)

    path = work / "mri-attribute-classifier.safetensors"
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
    card = {"name": "mri-attribute-classifier",
            "description": "Evaluation classifier of the dementia diagnosis on 64x64 axial T1 slices (swap accuracy "
                           "of MRI attribute models); trained on the training split only, then frozen.",
            "licence": f"weights trained on data under {LICENCE}",
            "architecture": "4 stride-2 convs (32-256; BatchNorm from the second; LeakyReLU 0.2) to a 4x4 map, "
                            "flattened (where a change is matters), dropout 0.3, MLP 256, one head per attribute",
            "metrics": {"held_out": {k: round(v, 4) for k, v in held.items()},
                        "training_split": {k: round(v, 4) for k, v in seen.items()}},
            "training": {"data": f"{DATA_NAME}: train split, {len(train)} slices",
                         "held_out": f"test split, {len(test)} slices of {len(set(test.subjects))} scans",
                         "steps": args.classifier_steps, "batch_size": 64, "optimizer": "AdamW one-cycle 2e-3",
                         "balanced": "class-balanced batches", "seconds": round(seconds), "seed": args.seed},
            "width": 32}
    save_attribute_classifier(classifier, path, card)
    return load_attribute_classifier(path)


def train_fader(train, args, work: Path):
    from napari_biogan.core.training import TrainSettings, setup_training

    checkpoint = work / "fader-checkpoint.safetensors"
    settings = TrainSettings(steps=args.steps, seed=args.seed, output=str(checkpoint), overwrite=True,
                             checkpoint_every=100, preview_every=10 ** 9, preview_n=4,
                             hparams={**RECIPE_HPARAMS, **(json.loads(args.hparams) if args.hparams else {})},
                             data_description=f"{DATA_NAME}: train split, {len(train)} slices, diagnosis")
    overrides = {"size": args.size, **RECIPE_CONFIG, **(json.loads(args.config) if args.config else {})}
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
    parser.add_argument("--work", default="/tmp/fader-build", help="caches and checkpoints (outside the repository)")
    parser.add_argument("--steps", type=int, default=3500)
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
    parser.add_argument("-n", type=int, default=1279, help="held-out slices evaluated (all 1,279 by default)")
    parser.add_argument("--out", default=str(ROOT / "src" / "napari_biogan" / "zoo" / "mri-fader.safetensors"))
    parser.add_argument("--classifier-out",
                        default=str(ROOT / "src" / "napari_biogan" / "zoo" / "mri-attribute-classifier.safetensors"))
    args = parser.parse_args()

    from napari_biogan.core.model import Model
    from napari_biogan.metrics import write_metrics_csv
    from napari_biogan.metrics.attributes import evaluate_fader

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train, test = load_split("train", args.size, work), load_split("test", args.size, work)
    print(f"train {len(train)} slices {train.counts('diagnosis')}; held-out {len(test)} slices "
          f"{test.counts('diagnosis')} of {len(set(test.subjects))} scans", flush=True)
    classifier = build_classifier(train, test, args, work)
    Path(args.classifier_out).write_bytes((work / "mri-attribute-classifier.safetensors").read_bytes())
    if args.classifier_only:
        return

    model, finished = train_fader(train, args, work)
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
    write_metrics_csv(work / "fader_metrics.csv", metrics, {"model": "mri-fader"}, overwrite=True)
    card = dict(model.card)
    card.pop("training_state", None)
    training = dict(card.get("training", {}))
    card.update(
        name="mri-fader",
        description="Fader Networks on 64x64 axial T1 brain slices: a diagnosis slider from non-demented to "
                    "moderate dementia (ordered classes, interpolated between, extrapolated beyond); a 16x16 "
                    "latent map and a PatchGAN on decoded slices keep the reconstruction sharp.",
        licence=f"weights trained on data under {LICENCE}",
        training={**training, "data": f"{DATA_NAME}: train split ({len(train)} slices), diagnosis"},
        evaluation={"held_out": f"test split: {min(args.n, len(held))} slices of {len(set(test.subjects))} scans",
                    "classifier": "mri-attribute-classifier (trained on the train split, frozen)",
                    "classifier_held_out": classifier.card.get("metrics", {}).get("held_out", {})},
        metrics={k: round(v, 4) for k, v in metrics.items()},
        metric_set="attributes")
    model.card = card
    model.save(args.out, overwrite=True, include=model.family.inference_nets)
    print("saved", args.out, flush=True)


if __name__ == "__main__":
    main()
