"""SAVGAN vs 3DGAN vs TGANv2: the paper's metrics of the shipped (or given) video models.

    python benchmarks/bench_video_models.py [--dataset mmnist|t98g] [--models DIR] [-n 256]
                                            [--seeds 123 124 125] [--picture OUT.png] [--fvd-parts]

``--dataset mmnist`` (default) evaluates ``mmnist-savgan``, ``mmnist-3dgan`` and
``mmnist-tganv2`` from ``--models`` (default: the shipped zoo; build them with
scripts/build_zoo_video.py) on ``n`` generated clips against ``n`` held-out real
clips built the same way from the MNIST *test* digits (16 frames, 64x64 resized
to 32x32, as the models were trained), with the "digits" metrics; ``--dataset mmnist64``
the same for ``mmnist64-savgan`` and ``mmnist64-3dgan``, the paper's size (10 frames of 64x64,
the ``mmnist`` preset). ``--dataset t98g``
evaluates ``t98g-savgan`` and ``t98g-3dgan`` against the T98G training clips (the
movie has no others) with the "cells" metrics. One code path for every model:
:meth:`GanModel.evaluate`. Prints one markdown table with the training budget from
each model card and the real clips' own values; for Moving MNIST also the paper's
numbers (10 frames of 64x64, 300k steps on a GPU; the I3D FVD there, a
digit-feature FVD here, so FVDs are not comparable across). ``--fvd-parts`` (cells) adds the
statistical FVD of each part of its features alone (intensity histogram, edges, motion...), to
see which part sets a model apart.

Every figure is the mean ± std over the sample ``--seeds`` (which clips are generated, and for
Moving MNIST which real clips are drawn); SAVGAN is called better than 3DGAN on a metric only
where the means differ by more than the two spreads together. AACD is compared by its distance
from the real clips' own AACD: below it, clips change too little (the paper's "lower is better"
assumed generated clips above it, where the two readings agree).
"""

from __future__ import annotations

import argparse
import numbers
from pathlib import Path

import numpy as np

PAPER = {  # REFERENCE section 1: MMNIST FVD (I3D), AACD, flips/seq, cosTS
    "tganv2": (84.97, 1.218, 3.42, 0.63),
    "3dgan": (80.4, 1.040, 3.1, 0.69),
    "savgan": (81.29, 0.469, 1.76, 0.76),
}
#: the models of each model set (files <set>-<variant>)
VARIANTS = {"mmnist": ("savgan", "3dgan", "tganv2"), "mmnist64": ("savgan", "3dgan"), "t98g": ("savgan", "3dgan")}
#: the zoo data set each model set was trained on and is compared with ("mmnist64": the paper's 10 x 64 x 64)
DATASET = {"mmnist": "mmnist", "mmnist64": "mmnist", "t98g": "t98g"}
#: per data set, the comparison the paper reports on it
PAPER_ORDER = {"mmnist": "the paper: AACD, flips/seq, cosTS", "t98g": "the paper, on tumour-on-chip clips: AACD, FVD"}
TITLES = {"savgan": "SAVGAN", "3dgan": "3DGAN", "tganv2": "TGANv2"}
#: per data set: metric set, (column title, metric key, format), lower-is-better keys compared
COLUMNS = {
    "mmnist": ("digits", [("AACD (-> real)", "aacd", ".3f"), ("flips/seq ↓", "flips_per_seq", ".2f"),
                          ("cosTS ↑", "cos_ts", ".3f"), ("FVD digits ↓", "fvd_digits", ".1f"),
                          ("frame pixel FD ↓", "fd_frames_pixels", ".2f")]),
    "t98g": ("cells", [("AACD (-> real)", "aacd", ".3f"), ("FVD stats ↓", "fvd_stats", ".3f"),
                       ("frame pixel FD ↓", "fd_frames_pixels", ".3f")]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(VARIANTS), default="mmnist")
    parser.add_argument("--models", default=None, help="folder with <dataset>-*.safetensors (default: the zoo)")
    parser.add_argument("-n", type=int, default=256)
    parser.add_argument("--seeds", type=int, nargs="+", default=[123, 124, 125],
                        help="sample seeds: every figure is the mean ± std over them")
    parser.add_argument("--picture", default=None, help="also write a PNG: rows of real and generated clips")
    parser.add_argument("--fvd-parts", action="store_true",
                        help="cells: also the statistical FVD of each part of its features (which part differs)")
    args = parser.parse_args()

    from napari_biogan.core.model import GanModel
    from napari_biogan.core.zoo import ZOO_DIR
    from napari_biogan.data.zoo_clips import zoo_reference_clips
    from napari_biogan.metrics.video import statistical_fvd_parts, video_report

    metric_set, columns = COLUMNS[DATASET[args.dataset]]
    folder = Path(args.models) if args.models else ZOO_DIR
    rows, real_row, strips, loaded, part_rows = [], None, [], {}, []
    for variant in VARIANTS[args.dataset]:
        path = folder / f"{args.dataset}-{variant}.safetensors"
        if not path.is_file():
            print(f"(no {path.name} in {folder}: skipped)")
            continue
        model = GanModel.load(path, device="cpu")
        frames = model.config.frames
        if frames not in loaded:  # the models of one data set share their clips: load them once
            loaded[frames] = zoo_reference_clips(DATASET[args.dataset], frames)
        clips, described = loaded[frames]
        real = model.family.prepare_data(clips, model.config)
        n = min(args.n, len(real))
        runs = [model.evaluate(real, n=n, seed=seed, metric_set=metric_set) for seed in args.seeds]
        metrics = {key: (float(np.mean([r[key] for r in runs])), float(np.std([r[key] for r in runs])))
                   for key in runs[0] if all(isinstance(r[key], numbers.Real) for r in runs)}
        training = model.card.get("training", {})
        rows.append((variant, metrics, training.get("steps"), training.get("wall_time_s")))
        real01 = (real.head(n)["image"].numpy()[:, 0] + 1) / 2
        if real_row is None:  # the real clips against themselves: what a perfect generator scores
            real_row = video_report(real01, None, metric_set)
            strips.append(("real", real01[:: max(1, n // 3)][:3]))
        strips.append((variant, model.sample(3, seed=args.seeds[0], precision="fp32")[:, 0]))
        if args.fvd_parts and metric_set == "cells":
            parts = [statistical_fvd_parts(real01, model.sample(n, seed=seed, precision="fp32")[:, 0])
                     for seed in args.seeds]
            part_rows.append((variant, {k: (np.mean([p[k] for p in parts]), np.std([p[k] for p in parts]))
                                        for k in parts[0]}))

    paper = DATASET[args.dataset] == "mmnist"
    print(f"{args.dataset}: up to {args.n} generated clips vs {described} (as in the model cards); "
          f"mean ± std over sample seeds {', '.join(map(str, args.seeds))}\n")
    print("| model | steps (CPU time) | " + " | ".join(title for title, _, _ in columns)
          + (" | paper AACD / flips / cosTS / FVD (I3D) |" if paper else " |"))
    print("|---" * (len(columns) + 2 + paper) + "|")
    for variant, m, steps, wall in rows:
        budget = f"{steps} ({wall / 60:.0f} min)" if steps and wall else "?"
        cells = " | ".join(f"{format(m[key][0], fmt)} ± {format(m[key][1], fmt)}" for _, key, fmt in columns)
        extra = " | {1} / {2} / {3} / {0}".format(*PAPER[variant]) if paper else ""
        print(f"| {TITLES[variant]} | {budget} | {cells}{extra} |")
    if real_row is not None:
        cells = " | ".join(format(real_row[key], fmt) if key in real_row else "0" for _, key, fmt in columns)
        print(f"| real clips | - | {cells}" + (" | - |" if paper else " |"))
    by = {variant: m for variant, m, _, _ in rows}
    if "savgan" in by and "3dgan" in by:
        s, d = by["savgan"], by["3dgan"]

        def score(m: dict, key: str) -> float:  # AACD: the distance from the real clips' (lower is better)
            if key == "aacd" and real_row is not None and key in real_row:
                return abs(m[key][0] - real_row[key])
            return m[key][0]

        def beyond_spread(key: str, sign: int) -> bool:  # sign +1: SAVGAN lower; -1: SAVGAN higher
            return sign * (score(d, key) - score(s, key)) > s[key][1] + d[key][1]

        better = [title for title, key, _ in columns if beyond_spread(key, -1 if key == "cos_ts" else 1)]
        worse = [title for title, key, _ in columns if beyond_spread(key, 1 if key == "cos_ts" else -1)]
        print(f"\nBeyond the spread, SAVGAN better than 3DGAN on: {', '.join(better) or 'none'}; worse on: "
              f"{', '.join(worse) or 'none'} ({PAPER_ORDER[DATASET[args.dataset]]})")
    if part_rows:
        print("\nThe statistical FVD of each part of its features alone (mean ± std over the seeds; the parts do "
              "not add up to the whole)\n")
        names = list(part_rows[0][1])
        print("| model | " + " | ".join(names) + " |\n" + "|---" * (len(names) + 1) + "|")
        for variant, parts in part_rows:
            cells = " | ".join(f"{parts[k][0]:.3g} ± {parts[k][1]:.2g}" for k in names)
            print(f"| {TITLES[variant]} | {cells} |")
    if args.picture and strips:
        write_picture(args.picture, strips)


def write_picture(path: str, strips: list, frames: int = 8) -> None:
    """One block per source (3 clips x ``frames`` evenly spaced frames), separated by grey lines, 3x enlarged."""
    import numpy as np
    from PIL import Image, ImageDraw

    blocks = []
    for _, clips in strips:
        index = np.linspace(0, clips.shape[1] - 1, frames).round().astype(int)
        rows = [np.concatenate([np.pad(f, 1, constant_values=0.3) for f in clip[index]], axis=1) for clip in clips]
        blocks.append(np.concatenate(rows, axis=0))
    label_width = 24
    image = np.concatenate([np.pad(b, ((0, 4), (label_width, 0)), constant_values=1.0) for b in blocks], axis=0)
    picture = Image.fromarray((image * 255).astype(np.uint8)).resize((image.shape[1] * 3, image.shape[0] * 3),
                                                                     Image.NEAREST).convert("RGB")
    draw, y = ImageDraw.Draw(picture), 0
    for (name, _), block in zip(strips, blocks):
        draw.text((4, y * 3 + 8), name, fill=(200, 0, 0))
        y += block.shape[0] + 4
    picture.save(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
