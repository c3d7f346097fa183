"""Train the shipped video models: SAVGAN and its 3DGAN ablation on Moving MNIST and on T98G cell clips.

    python scripts/build_zoo_video.py [--steps K] [--only mmnist-savgan t98g-3dgan] [--batch 8] [--threads 1]

Writes, generator only (small files), with model cards:

    src/napari_biogan/zoo/mmnist-savgan.safetensors   src/napari_biogan/zoo/mmnist-3dgan.safetensors
    src/napari_biogan/zoo/t98g-savgan.safetensors     src/napari_biogan/zoo/t98g-3dgan.safetensors
    src/napari_biogan/zoo/mmnist-tganv2.safetensors   (the TGANv2 comparison, "cpu-small" TGANv2 config)

and, on request (``--only mmnist64-savgan mmnist64-3dgan``; not shipped: see the README), the paper's
Moving MNIST size: the "mmnist" preset, 10 frames of 64x64 with the paper's networks (G_V 3.8 M
parameters, about 10 s per step on one CPU core at batch 8).

Every shipped model is the "cpu-small" SAVGAN config (16 frames of 32x32, 1.19 M generator
parameters; the 3DGAN is the same network without its attention layers), trained
on the CPU through the plugin's own training loop with the paper's settings
(WGAN-GP, 5 critic steps, Adam 1e-4 / 4e-4, betas (0, 0.9), frame-critic weight 50).
The T98G models follow :data:`T98G_RECIPE` on top of that (a wider last level, frames generated
beyond the clip and cropped, interpolation in time; 2,000 steps, then 500 at a quarter of the
learning rates, shipping a weight average), both with 16 start frames instead of 8
(:data:`T98G_RECIPE_16`); ``--steps K`` cuts or extends a recipe to K steps,
``--recipe paper`` leaves it out (the paper's networks and settings, what every run before had).
``--init-from WORK_FILE --set frame_noise=true`` starts an experiment from a trained run's weights
(:func:`warm_start`; not how any shipped model was made).

Data, built from ../shared/data (nothing is downloaded):
- Moving MNIST: 2,225 clips (the paper's count) of 16 frames, one MNIST training
  digit bouncing horizontally on a 64x64 canvas, resized to 32x32.
- T98G: 188 16-frame clips cropped around moving glioblastoma cells of the Usiigaci
  phase-contrast time-lapse (4x down-scaled, so a 32x32 clip spans 128x128 pixels;
  clips of one place may overlap in time, starting 4 frames apart, as the movie has
  only 37 frames), with random horizontal and vertical flips while training.

Each run resumes from its work file in --work if one exists (so a long build can be
stopped and continued); the metrics in the card compare generated clips with held-out
or training clips: AACD, digit flips/seq, cosTS and a digit-feature FVD for Moving
MNIST; AACD and the network-free statistical FVD for cells.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path


from napari_biogan.core.checkpoint import read_card
from napari_biogan.core.model import GanModel
from napari_biogan.core.settings import check_hparams, parse_assignments
from napari_biogan.core.training import RAW_PREFIX, Trainer, TrainSettings
from napari_biogan.core.zoo import ZOO_DIR
from napari_biogan.data.zoo_clips import MMNIST_TRAIN_CLIPS, zoo_reference_clips, zoo_training_clips
from napari_biogan.families.savgan import savgan_config
from napari_biogan.families.tganv2 import tganv2_config

MODELS = {  # name: (data set, variant, preset)
    "mmnist-savgan": ("mmnist", "nystrom", "cpu-small"),
    "mmnist-3dgan": ("mmnist", "none", "cpu-small"),
    "mmnist-tganv2": ("mmnist", "tganv2", "cpu-small"),
    "t98g-savgan": ("t98g", "nystrom", "cpu-small"),
    "t98g-3dgan": ("t98g", "none", "cpu-small"),
    # the paper's Moving MNIST size: 10 frames of 64x64, the paper's networks (G_V 3.8 M parameters)
    "mmnist64-savgan": ("mmnist", "nystrom", "mmnist"),
    "mmnist64-3dgan": ("mmnist", "none", "mmnist"),
}
#: the models in the zoo (the paper-size Moving MNIST ones are built on request only)
SHIPPED = [name for name, (_, _, preset) in MODELS.items() if preset == "cpu-small"]
#: generator steps (default 3000): TGANv2 costs about 5x more per step on the CPU (3D ResNet critics at
#: every level), so it gets about the same CPU time, not the same number of steps
STEPS = {"mmnist-tganv2": 700}


@dataclass(frozen=True)
class Recipe:
    """How a model is trained beyond the paper's settings: config changes for a fresh run, then phases,
    each ``(last step, hyper-parameters)``, run one after the other through the loop's own resume."""

    config: dict = field(default_factory=dict)
    phases: tuple = ()


#: T98G (docs/video_experiments.md "A recipe that settles", 2026-11-24): a wider last level (G_V widths 128/64/64; the
#: cpu-small 128/64/32 loses fine detail), 8 extra frames generated at each end and cropped (the edge
#: frames' missing kernel taps), interpolation then a k3 convolution in time with replicate
#: padding (no pairs of frames, no zero frames at the ends), a spatial output layer, 8 start frames;
#: 2,000 steps at the paper's learning rates, then 500 at a quarter of them with a 100-step weight
#: average, so the shipped average holds the last weights' contrast (at the paper's rates the
#: generator swings and a weight average blends the swings into lower contrast)
T98G_RECIPE = Recipe(
    config={"time_padding": "replicate", "time_upsampling": "linear", "margin_frames": 8, "spatial_levels": 1,
            "start_frames": 8, "widths": (128, 64, 64)},
    phases=((2000, {"ema_decay": 0.999}), (2500, {"ema_decay": 0.99, "lr_g": 2.5e-5, "lr_d": 1e-4})))
#: the same with 16 start frames (each spans 2 of the 32 generated frames, not 4): detail changes faster from frame to
#: frame and the video statistics come 2.7-2.8x closer for both models; AACD rises (3DGAN 1.6x the real clips', contrast
#: target met; SAVGAN 1.4x, contrast still 20 % off) (docs/video_experiments.md "Sixteen start frames" and "The SAVGAN
#: with sixteen start frames", 2026-11-25); what both T98G models ship
T98G_RECIPE_16 = Recipe(config={**T98G_RECIPE.config, "start_frames": 16}, phases=T98G_RECIPE.phases)
RECIPES = {"t98g-savgan": T98G_RECIPE_16, "t98g-3dgan": T98G_RECIPE_16}
VARIANT_NOTES = {"nystrom": " (SAVGAN: Nyström self-attention)", "none": " (3DGAN: no attention)",
                 "tganv2": " (TGANv2 comparison)"}
DESCRIPTIONS = {  # by (data set, preset)
    ("mmnist", "cpu-small"): "Moving MNIST videos, 16 frames of 32x32: one digit bouncing horizontally (demo model)",
    ("mmnist", "mmnist"): "Moving MNIST videos at the paper's size, 10 frames of 64x64: one digit bouncing "
                          "horizontally",
    ("t98g", "cpu-small"): "Phase-contrast videos of migrating T98G glioblastoma cells, 16 frames of 32x32 "
                           "(demo model)",
}
_MNIST_LICENCE = "(MNIST: LeCun, Cortes, Burges; CC BY-SA 3.0)"
DATA_NOTES = {  # by (data set, preset)
    ("mmnist", "cpu-small"): "Moving MNIST built from the MNIST training digits: 2,225 clips, 16 frames, 64x64 "
                             f"resized to 32x32 {_MNIST_LICENCE}",
    ("mmnist", "mmnist"): f"Moving MNIST built from the MNIST training digits: 2,225 clips, 10 frames of 64x64 "
                          f"{_MNIST_LICENCE}",
    ("t98g", "cpu-small"): "188 clips (16 frames, 4 apart where they overlap) around moving cells of the Usiigaci "
                           "T98G phase-contrast time-lapse, 4x down-scaled "
                           "(MIT, (c) 2018 OIST; Tsai et al., SoftwareX 9 (2019) 230-237)",
}


def build(name: str, args) -> None:
    dataset, variant, preset = MODELS[name]
    if args.evaluate_only:
        path = Path(args.out_dir) / f"{name}.safetensors"
        evaluate(name, path, args.seed)
        return
    recipe = RECIPES.get(name, Recipe()) if args.recipe == "shipped" else Recipe()
    config_changes = {**recipe.config, **args.set}
    if variant == "tganv2":
        family, config = "tganv2", tganv2_config("cpu-small", metric_set=METRIC_SETS[dataset], **config_changes)
    else:
        family, config = "savgan", savgan_config(preset, attention=variant, metric_set=METRIC_SETS[dataset],
                                                 **config_changes)
    clips = zoo_training_clips(dataset, config.frames, args.seed, args.clips)
    model = GanModel.new(family, config=config, seed=args.seed)
    data = model.family.prepare_data(clips, config)
    print(f"{name}: {len(data)} training clips {tuple(data.head(1)['image'].shape[1:])}", flush=True)
    work = Path(args.work) / f"{name}-train.safetensors"
    if args.init_from and (args.fresh or not work.exists()):
        warm_start(model, args.init_from)
    # the card alone (the header): warm_start above already read the tensors
    started_from = read_card(args.init_from).get("training", {}).get("steps") if args.init_from else None
    phases = recipe.phases or ((STEPS.get(name, 3000), {}),)
    if args.steps:
        phases = phases_to(phases, args.steps)
    explicit = {**({} if args.ema_decay is None else {"ema_decay": args.ema_decay}), **args.hparam}
    trainer = None
    for until, phase_hparams in phases:
        # checked like the CLI's (a misspelt name or an unknown augmentation stops here, before training)
        hparams = check_hparams(model.family, {"batch_size": args.batch,
                                               "flip_axes": (3, 4) if dataset == "t98g" else (),
                                               **phase_hparams, **explicit})
        settings = TrainSettings(steps=until, seed=args.seed, output=str(work), overwrite=True,
                                 checkpoint_every=args.checkpoint_every, preview_every=args.checkpoint_every,
                                 hparams=hparams, data_description=DATA_NOTES[dataset, preset])
        fresh = args.fresh and trainer is None
        trainer = (Trainer.resume(str(work), data, settings, device="cpu") if work.exists() and not fresh
                   else Trainer(model, data, settings))
        if trainer.step >= until:
            continue  # this phase was run before
        run_phase(name, trainer)
    trainer.use_averaged_weights()  # what the work file's nets hold (also when every phase ran before)
    model = trainer.model
    out = Path(args.out_dir) / f"{name}.safetensors"
    training = {**model.card.get("training", {}), "steps": trainer.step, "weights": trainer.weights_description()}
    if len(phases) > 1:
        training["phases"] = [{"until_step": until, "hparams": hp} for until, hp in phases]
    if args.init_from:  # these steps came after the other run's
        training["warm_start"] = {"from": Path(args.init_from).name, "its_steps": started_from}
    model.save(out, overwrite=True, include=("generator",), card={
        "name": name, "description": DESCRIPTIONS[dataset, preset] + VARIANT_NOTES[variant],
        "data": DATA_NOTES[dataset, preset], "training": training, "training_state": None})
    evaluate(name, out, args.seed)


def warm_start(model: GanModel, path: str) -> None:
    """Give ``model``'s networks the training weights of the run in ``path`` (its raw weights where it
    averaged them), for a fresh run that adds to a trained one: parameters the config adds (e.g.
    ``--set frame_noise=true``) keep their own initialisation, and a tensor that grew along one axis
    (D_V's first layer with ``critic_motion=true`` reads 2 channels instead of 1) gets the old values
    first and zeros after, so the networks compute what they did; any other difference stops here."""
    import torch

    source = GanModel.load(path, device="cpu")
    weights = source.nets.state_dict()
    weights.update({k[len(RAW_PREFIX):]: v for k, v in source._file_tensors.items() if k.startswith(RAW_PREFIX)})
    target = model.nets.state_dict()
    grown = [k for k, v in weights.items() if k in target and target[k].shape != v.shape and grew(v, target[k])]
    unmatched = [k for k, v in weights.items() if k not in target or (target[k].shape != v.shape and k not in grown)]
    if unmatched:
        raise SystemExit(f"{path} does not fit this model: {len(unmatched)} tensors differ, e.g. {unmatched[0]}.")
    for key in grown:
        padded = torch.zeros_like(target[key])
        padded[tuple(slice(0, n) for n in weights[key].shape)] = weights[key]
        weights[key] = padded
    model.nets.load_state_dict(weights, strict=False)
    added = sorted(k for k in target if k not in weights)
    print(f"warm start from {path}: {len(weights)} tensors, grown with zeros: {', '.join(grown) or 'none'}; "
          f"starting fresh: {', '.join(added) or 'none'}", flush=True)


def grew(old, new) -> bool:
    """Whether ``new`` is ``old``'s shape with one axis longer."""
    longer = [(a, b) for a, b in zip(old.shape, new.shape) if a != b]
    return old.dim() == new.dim() and len(longer) == 1 and longer[0][0] < longer[0][1]


def phases_to(phases: tuple, steps: int) -> tuple:
    """The phases cut or extended to end at ``steps``, with the settings the recipe has there."""
    kept = tuple((until, hparams) for until, hparams in phases if until < steps)
    there = next((hparams for until, hparams in phases if until >= steps), phases[-1][1])
    return kept + ((steps, there),)


def run_phase(name: str, trainer: Trainer) -> None:
    """Run the loop to the trainer's step count, printing progress."""
    start = time.time()
    for event in trainer.run():
        if event.kind in ("preview", "finished", "checkpoint") or event.step in (1, 10):
            losses = " ".join(f"{k}={v:.3f}" for k, v in event.losses.items())
            print(f"{name} {event.kind} {event.step}/{event.total} {losses} "
                  f"{time.time() - start:.0f}s ({event.elapsed_s / max(event.step, 1):.2f} s/step)", flush=True)


#: the metrics each data set's models are measured with (recorded in the config, read by the family)
METRIC_SETS = {"mmnist": "digits", "t98g": "cells"}


def evaluate(name: str, path: Path, seed: int) -> None:
    """Write the paper's metrics of up to 256 generated clips into the model's card, against
    :func:`zoo_reference_clips` (held-out clips for Moving MNIST, the training clips for T98G)."""
    dataset = MODELS[name][0]
    model = GanModel.load(path, device="cpu")
    clips, described = zoo_reference_clips(dataset, model.config.frames, seed)
    real = model.family.prepare_data(clips, model.config)
    metrics = model.evaluate(real, n=min(256, len(real)), seed=123)  # the family picks digits for Moving MNIST
    metrics = {k: round(float(v), 4) for k, v in metrics.items()}
    metrics["compared_with"] = described
    model.save(path, overwrite=True, include=("generator",), card={"metrics": metrics})
    print(f"saved {path}: {metrics}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None,
                        help="train to this step, the recipe's phases cut or extended to it (default: 3000; "
                             "TGANv2 700, about the same CPU time; T98G the recipe's 2,000 + 500)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="recompute the metrics in the cards of already built models")
    parser.add_argument("--only", nargs="+", choices=sorted(MODELS), default=SHIPPED,
                        help=f"models to build (default: the shipped ones, {', '.join(SHIPPED)})")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--clips", type=int, default=MMNIST_TRAIN_CLIPS,
                        help="Moving MNIST training clips (the paper's 2,225)")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="ship an exponential moving average of the generator (e.g. 0.999; 0: the last weights; "
                             "default: the model's recipe, the last weights for all but T98G)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config changes for a fresh run, e.g. time_padding=replicate generator_norm=frame "
                             "time_upsampling=resize (a resumed run keeps its file's config)")
    parser.add_argument("--hparam", nargs="+", default=[], metavar="KEY=VALUE",
                        help="training hyper-parameters beside the paper's, e.g. diff_augment=shift,cutout")
    parser.add_argument("--recipe", choices=("shipped", "paper"), default="shipped",
                        help="shipped: each model's recipe (RECIPES); paper: the paper's networks and settings "
                             "only, as the T98G runs before 2026-11-24's sixth session used")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--work", default="/tmp/napari-biogan-video-zoo", help="resumable training files")
    parser.add_argument("--fresh", action="store_true", help="ignore existing work files")
    parser.add_argument("--init-from", default=None, metavar="FILE",
                        help="a new run starts from this training file's weights (a warm start; parameters the "
                             "config adds, e.g. --set frame_noise=true, start from their own initialisation)")
    parser.add_argument("--out-dir", default=str(ZOO_DIR))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    args.set = parse_assignments(args.set, "config value")
    args.hparam = parse_assignments(args.hparam, "hyper-parameter")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # two builds side by side on 2 cores: 1 thread each
    for name in args.only:
        build(name, args)


if __name__ == "__main__":
    main()
