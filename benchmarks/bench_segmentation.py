"""Held-out comparison on BBBC039 nuclei: the full model, its ablations, and Otsu + watershed.

    python benchmarks/bench_segmentation.py [--steps 1400] [--work /tmp/nuclei-seg-work] [--seeds 0]
                                            [--variants full,no-adversarial,no-attention] [--no-train] [--large]

Every method is scored on the same 4 held-out fields (data.segmentation.BBBC039_TEST; trained
on BBBC039_TRAIN, no field or well in both):

- full: the segmentation family as shipped (adversarial weight 0.05, attention at the bottleneck);
- no-adversarial: the same U-Net trained without the discriminator (adversarial_weight = 0);
- no-attention: the same, adversarial, without the self-attention (attention = "none");
- Otsu + watershed: Gaussian (sigma 1), Otsu threshold, holes filled, objects < 25 px removed,
  distance-transform watershed from its smoothed maxima; ``min_distance`` chosen on the
  TRAINING fields (best object F1), then applied unchanged to the held-out ones.

Pixel F1 is nucleus-vs-background F1 (the only pixel score a threshold can have); object F1
counts a nucleus found when a predicted instance overlaps it at IoU > 0.5, over every annotated
nucleus. Spreads are the SD over the held-out fields (and over training seeds with --seeds 0,1,2).
The networks are trained through scripts/build_zoo_nuclei.py (resumable checkpoints in --work;
one training at a time); already-trained checkpoints are only evaluated. --large also checks
tiling with the first variant: tiled (256, overlap 64) vs whole-field labels on the held-out
fields, and the time and peak memory of a 4096 x 4096 mosaic of them run in tiles.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _build_script():
    spec = importlib.util.spec_from_file_location("build_zoo_nuclei", ROOT / "scripts" / "build_zoo_nuclei.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def otsu_scores(pairs, min_distance: int) -> list[dict]:
    """Per-field scores of Otsu + watershed (instances -> 3 classes like the annotations)."""
    from napari_biogan.data.segmentation import BBBC039_CLASSES, classes_from_instances
    from napari_biogan.families.segmentation import otsu_watershed
    from napari_biogan.metrics.segmentation import segmentation_scores

    scores = []
    for image, labels, truth in zip(pairs.images, pairs.labels, pairs.instances):
        found = otsu_watershed(image, min_distance=min_distance)
        scores.append(segmentation_scores([labels], [classes_from_instances(found)], BBBC039_CLASSES,
                                          true_instances=[truth], predicted_instances=[found]))
    return scores


def summary(name: str, per_field: list[dict], extra: str = "") -> str:
    def cell(key):
        values = np.array([s[key] for s in per_field])
        return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}"

    cells = " | ".join(cell(key) for key in ("foreground_f1", "object_f1", "mean_f1", "mean_iou"))
    return f"| {name} | {cells} | {extra} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1400)
    parser.add_argument("--work", default="/tmp/nuclei-seg-work")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    parser.add_argument("--variants", default="full,no-adversarial,no-attention")
    parser.add_argument("--no-train", action="store_true", help="only evaluate checkpoints that exist")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--large", action="store_true", help="also time a 4096 x 4096 tiled run (first variant)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    build = _build_script()
    from napari_biogan.data.segmentation import load_bbbc039

    if not build.DATA.is_dir():
        raise SystemExit(f"BBBC039 is not at {build.DATA}.")
    train_pairs, test_pairs = load_bbbc039(build.DATA, "train"), load_bbbc039(build.DATA, "test")
    rows, by_field = [], {}
    try:
        import skimage  # noqa: F401
    except ImportError:
        print("scikit-image is not installed: no Otsu + watershed row")
    else:
        tuned = {d: np.mean([s["object_f1"] for s in otsu_scores(train_pairs, d)]) for d in (3, 5, 7, 9, 11, 13)}
        best = max(tuned, key=tuned.get)
        print("Otsu + watershed, object F1 on the training fields by min_distance:",
              ", ".join(f"{d}: {v:.3f}" for d, v in tuned.items()), f"-> {best}")
        otsu = otsu_scores(test_pairs, best)
        rows.append(summary("Otsu + watershed (scikit-image)", otsu, f"min_distance {best}"))
        by_field["Otsu + watershed"] = [s["object_f1"] for s in otsu]
        every = load_bbbc039(build.DATA)
        all_fields = otsu_scores(every, best)
        print("Otsu + watershed over all 10 fields:", summary("", all_fields))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    last_model = None
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        per_field, wall = [], []
        for seed in seeds:
            checkpoint = Path(args.work) / f"{variant}-seed{seed}.safetensors"
            if args.no_train and not checkpoint.exists():
                print(f"{variant} seed {seed}: no checkpoint at {checkpoint}; skipped")
                continue
            started = time.time()
            if args.no_train:
                model = _load(checkpoint)
            else:
                model = build.train(variant, args.steps, Path(args.work), seed=seed,
                                    log=lambda text: print(text, flush=True))
            steps = model.card.get("training", {}).get("steps")
            wall.append(model.card.get("training", {}).get("wall_time_s", time.time() - started))
            result = build.evaluate(model, test_pairs)
            last_model = last_model or model
            per_field += list(result["per_field"].values())
        if per_field:
            by_field[variant] = [s["object_f1"] for s in per_field]
            rows.append(summary(f"{variant} ({len(seeds)} seed{'s' * (len(seeds) > 1)})", per_field,
                                f"{steps} steps, {np.mean(wall) / 60:.0f} min training"))
    shipped = build.ZOO_FILE
    if shipped.is_file():
        model = _load(shipped)
        result = build.evaluate(model, test_pairs)
        rows.append(summary("shipped zoo/nuclei-seg (full)", list(result["per_field"].values()),
                            f"{model.card['training']['steps']} steps, "
                            f"{model.card['training']['wall_time_s'] / 60:.0f} min training"))
    if args.large and last_model is not None:
        large_image_check(last_model, test_pairs)
    print()
    print(f"Held-out BBBC039 fields ({', '.join(test_pairs.names)}); mean ± SD over fields"
          + (" and seeds" if len(seeds) > 1 else ""))
    print("| method | pixel F1 | object F1 (IoU > 0.5) | mean F1 (3 classes) | mean IoU (3 classes) | notes |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    print()
    print("object F1 per held-out field (" + ", ".join(test_pairs.names) + ", then the next seed's):")
    for name, values in by_field.items():
        print(f"  {name}: " + " ".join(f"{v:.3f}" for v in values))


def large_image_check(model, pairs, tile: int = 256, overlap: int = 64) -> None:
    """Tiled vs untiled labels on the held-out fields, then a 4096 x 4096 mosaic of them in tiles."""
    import resource

    agree = []
    for image in pairs.images:
        whole = model.run({"image": image[None]}, precision="fp32")["labels"][0]
        tiled = model.run({"image": image[None]}, precision="fp32", tile=tile, overlap=overlap)["labels"][0]
        agree.append(float((whole[16:-16, 16:-16] == tiled[16:-16, 16:-16]).mean()))
    print(f"tiles of {tile} (overlap {overlap}) vs whole fields: {100 * np.mean(agree):.2f}% of labels equal "
          f"away from the borders (lowest field {100 * min(agree):.2f}%)")
    rows = [np.concatenate([pairs.images[(r + c) % len(pairs.images)] for c in range(6)], 1) for r in range(8)]
    mosaic = np.concatenate(rows, 0)[:4096, :4096]
    started, ticks = time.time(), []
    out = model.run({"image": mosaic[None]}, precision="fp32", tile=tile, overlap=overlap,
                    progress=lambda done, total: ticks.append(done))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"4096 x 4096 mosaic in {len(ticks)} tiles: {time.time() - started:.0f} s, peak memory {peak:.0f} MB, "
          f"{(out['labels'] > 0).mean():.1%} foreground")


def _load(path):
    from napari_biogan.core.model import Model

    return Model.load(path, device="cpu")


if __name__ == "__main__":
    main()
