"""Train the cell models of budding-yeast cells on single cells cropped from the rcell2 fields: the
star-shaped, multi-channel and separable GANs; the best by the benchmark is shipped (the separable one).

    nice -n 19 python scripts/build_zoo_cells.py [--only star multichannel separable] [--minutes 30]
                                                 [--steps 3000] [--ship] [--evaluate-only]

Data (from ../shared/data, nothing downloaded): every Cell-ID cell of the 6 rcell2 fields
(bright-field + YFP + TFP, 1040x1392) cropped to 32x32 around its centre (about 1,950
cells; each channel scaled to 8 bits by its field's percentiles). Bright-field is the
shape channel; YFP and TFP are the two protein classes. A fixed 20 % of the cells
(seed 0) is held out for C2ST and reconstruction.

Variants (the paper's settings otherwise: WGAN-GP, Adam 1e-4 (0, 0.9), lambda 10, 5 critic
steps, random flips): star-shaped and separable train on one (bright-field, protein)
image per cell and protein with one critic per protein; the multi-channel model trains on
the real 3-channel crops with one critic. All use a 100-d latent (50 for the shape), a
generator of base width 32 and critics of width 16, batch 32 (per class), sized for a
2-core CPU.

Each run trains through the plugin's one Trainer and resumes from its work file in --work,
so a build can be stopped (Ctrl-C keeps nothing newer than the last checkpoint; --minutes
stops cleanly with a checkpoint) and continued. --ship writes the generator of each variant of
--only to src/napari_biogan/zoo/yeast-cells-<variant>.safetensors with its card (data, licence,
steps, wall time, metrics); the others stay in --work for the benchmark
(benchmarks/bench_cells.py). The shipped file (yeast-cells-separable: the lowest C2ST of the
three, see README "Cells") was made by

    nice -n 19 python scripts/build_zoo_cells.py --minutes 30 --no-evaluate   # star (stopped at 30 min), ...
    nice -n 19 python benchmarks/bench_cells.py --c2st-steps 100 --json cells.json
    python scripts/build_zoo_cells.py --only separable --evaluate-only --no-evaluate --ship --metrics-from cells.json
    python benchmarks/bench_cells.py --figures-only --figures-variant separable --figures docs/figures
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_biogan.core.model import Model
from napari_biogan.core.training import Trainer, TrainSettings
from napari_biogan.core.zoo import ZOO_DIR
from napari_biogan.data.cells import RCELL2_NOTE, CellSet, zoo_cell_split

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rcell2_yeast"
VARIANTS = ("star", "multichannel", "separable")
CONFIG = dict(height=32, width=32, latent_dim=100, shape_latent=50, base_width=32, critic_width=16,
              proteins=("YFP", "TFP"), shape_name="bright-field")
HPARAMS = {"batch_size": 32}
DESCRIPTION = {
    "star": "Budding-yeast cells, 32x32: bright-field shape + YFP and TFP proteins (star-shaped GAN)",
    "multichannel": "Budding-yeast cells, 32x32: bright-field + YFP + TFP (multi-channel GAN)",
    "separable": "Budding-yeast cells, 32x32: bright-field shape + YFP and TFP proteins (separable GAN)",
}
DATA_NOTE = ("{n} single cells (32x32, bright-field + YFP + TFP) cropped around the Cell-ID centres of the "
             + RCELL2_NOTE + "; 20% of the cells held out (seed 0)")
LICENCE = ("model: as the package; training data: rcell2.examples, MIT (its DESCRIPTION and LICENCE.rcell2; a "
           "GPL-3 text is also in that repository), Beldorati Stark, Méndez, Constantinou")


def work_file(work: Path, variant: str) -> Path:
    return work / f"yeast-cells-{variant}-train.safetensors"


def generator_file(work: Path, variant: str) -> Path:
    return work / f"yeast-cells-{variant}.safetensors"


def train(variant: str, args, train_cells: CellSet) -> Path:
    """Train (or resume) one variant for at most ``args.minutes``; returns its generator-only file."""
    config = dict(CONFIG, variant=variant)
    model = Model.new("cells", seed=args.seed, **config)
    data = model.family.prepare_data(train_cells.sources(), model.config)
    work = work_file(Path(args.work), variant)
    settings = TrainSettings(steps=args.steps, seed=args.seed, output=str(work), overwrite=True,
                             checkpoint_every=args.checkpoint_every, preview_every=args.checkpoint_every,
                             hparams=dict(HPARAMS), data_description=DATA_NOTE.format(n=len(train_cells)))
    trainer = (Trainer.resume(str(work), data, settings, device="cpu") if work.exists() and not args.fresh
               else Trainer(model, data, settings))
    print(f"{variant}: {len(data)} training images, from step {trainer.step}", flush=True)
    started = time.time()
    for event in trainer.run():
        if args.minutes and time.time() - started > args.minutes * 60:
            trainer.stop()  # the next step ends the run with a checkpoint: resumable
        if event.kind in ("preview", "checkpoint", "finished", "cancelled") or event.step in (1, 10):
            losses = " ".join(f"{k}={v:.3f}" for k, v in event.losses.items())
            print(f"{variant} {event.kind} {event.step}/{event.total} {losses} {time.time() - started:.0f}s "
                  f"({event.elapsed_s / max(event.step, 1):.2f} s/step)", flush=True)
    out = generator_file(Path(args.work), variant)
    trained = trainer.model
    trained.save(out, overwrite=True, include=("generator",), card={
        "name": f"yeast-cells-{variant}", "description": DESCRIPTION[variant], "licence": LICENCE,
        "data": DATA_NOTE.format(n=len(train_cells)), "training_state": None,
        "training": {**trained.card.get("training", {}), "steps": trainer.step}})
    return out


def evaluate(path: Path, train_cells: CellSet, test_cells: CellSet, args) -> dict:
    """C2ST (quick setting, with the real-vs-real rows) and reconstruction of held-out cells, into the card."""
    import torch

    from napari_biogan.metrics.cells import QUICK_C2ST, C2stSettings, model_c2st, reconstruct_cells

    model = Model.load(path, device="cpu")
    test = test_cells.pairs()
    pairs = torch.from_numpy(test.images.astype(np.float32) / 127.5 - 1)
    settings = QUICK_C2ST if not args.c2st_steps else C2stSettings(critic_steps=args.c2st_steps, lr=1e-3,
                                                                    critic_width=16, label="quick")
    c2st = model_c2st(model, pairs, test.classes, settings, seed=0)
    print("\n".join(c2st.lines()), flush=True)
    rng = np.random.default_rng(1)
    chosen = rng.choice(len(test), args.reconstruct, replace=False)
    train = train_cells.pairs()
    rec = reconstruct_cells(model, test.images[chosen] / 255.0, test.classes[chosen], restarts=5, steps=50,
                            search=(train.images / 255.0, train.classes))
    metrics = {**{k: round(v, 4) for k, v in c2st.as_metrics().items()},
               **{k: round(v, 4) for k, v in rec.summary().items()},
               "c2st_setting": settings.describe(), "compared_with": f"{len(test_cells)} held-out cells "
               f"(C2ST); {args.reconstruct} of them reconstructed (5 restarts, L-BFGS 50 steps), nearest "
               f"neighbour among {len(train_cells)} training cells"}
    model.save(path, overwrite=True, include=("generator",), card={"metrics": metrics})
    print(json.dumps(metrics, indent=1), flush=True)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=3000, help="generator steps of a complete run")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-time budget of this invocation per variant "
                        "(0: none); the run stops with a checkpoint and resumes next time")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/napari-biogan-cells-zoo", help="resumable training files")
    parser.add_argument("--fresh", action="store_true", help="ignore existing work files")
    parser.add_argument("--evaluate-only", action="store_true", help="only (re)compute the metrics")
    parser.add_argument("--no-evaluate", action="store_true")
    parser.add_argument("--reconstruct", type=int, default=20, help="held-out cells reconstructed")
    parser.add_argument("--c2st-steps", type=int, default=0, help="critic steps of the quick C2ST (0: its default)")
    parser.add_argument("--ship", action="store_true", help="copy the models of --only into the package's zoo")
    parser.add_argument("--metrics-from", default="", metavar="JSON",
                        help="the card's metrics from benchmarks/bench_cells.py --json (with --ship)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    train_cells, test_cells = zoo_cell_split(SHARED)
    print(f"{len(train_cells)} training cells, {len(test_cells)} held out", flush=True)
    for variant in args.only:
        path = generator_file(Path(args.work), variant)
        if not args.evaluate_only:
            path = train(variant, args, train_cells)
        if not args.no_evaluate:
            evaluate(path, train_cells, test_cells, args)
        if args.ship:
            ship(path, variant, args)


def ship(path: Path, variant: str, args) -> Path:
    """A variant's generator into the package's zoo as yeast-cells-<variant>, its card with data, licence,
    steps, wall time and the metrics (from ``--metrics-from``, the benchmark's JSON, else from ``evaluate``)."""
    model = Model.load(path, device="cpu")
    metrics = dict(model.card.get("metrics") or {})
    if args.metrics_from:
        measured = json.loads(Path(args.metrics_from).read_text())[variant]
        if measured.get("steps") != model.card.get("training", {}).get("steps"):
            raise SystemExit(f"{args.metrics_from} measured the {variant} model at step {measured.get('steps')}, "
                             f"not this one ({model.card.get('training', {}).get('steps')}): run the benchmark again")
        metrics = {k: v for k, v in measured.items() if k not in ("steps", "wall_time_s")}
    if not metrics:
        raise SystemExit("No metrics for the card: evaluate first, or give --metrics-from.")
    target = ZOO_DIR / f"yeast-cells-{variant}.safetensors"
    model.save(target, overwrite=True, include=("generator",),
               card={"name": target.stem, "description": DESCRIPTION[variant], "licence": LICENCE, "metrics": metrics,
                     "data": model.card.get("training", {}).get("data") or model.card.get("data")})
    print(f"shipped {target} ({target.stat().st_size / 1e6:.1f} MB)", flush=True)
    return target


if __name__ == "__main__":
    main()
