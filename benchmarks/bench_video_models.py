"""SAVGAN vs 3DGAN vs TGANv2 on Moving MNIST: the paper's metrics of the shipped (or given) models.

    python benchmarks/bench_video_models.py [--models DIR] [-n 256] [--seed 123]

Evaluates ``mmnist-savgan``, ``mmnist-3dgan`` and ``mmnist-tganv2`` from ``--models``
(default: the shipped zoo; build them with scripts/build_zoo_video.py) on ``n``
generated clips against ``n`` held-out real clips built the same way from the
MNIST *test* digits (16 frames, 64x64 resized to 32x32, as the models were
trained), with one code path: :meth:`GanModel.evaluate` with the "digits" set.
Prints one markdown table with the training budget from each model card, the real
clips' own values, and the paper's numbers (10 frames of 64x64, 300k steps on a GPU;
the I3D FVD there, a digit-feature FVD here, so FVDs are not comparable across).
"""

from __future__ import annotations

import argparse
from pathlib import Path

PAPER = {  # REFERENCE section 1: MMNIST FVD (I3D), AACD, flips/seq, cosTS
    "tganv2": (84.97, 1.218, 3.42, 0.63),
    "3dgan": (80.4, 1.040, 3.1, 0.69),
    "savgan": (81.29, 0.469, 1.76, 0.76),
}
VARIANTS = ("savgan", "3dgan", "tganv2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="folder with mmnist-*.safetensors (default: the zoo)")
    parser.add_argument("-n", type=int, default=256)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--picture", default=None, help="also write a PNG: rows of real and generated clips")
    args = parser.parse_args()

    from napari_biogan.core.model import GanModel
    from napari_biogan.core.zoo import ZOO_DIR
    from napari_biogan.data.moving_mnist import load_moving_mnist
    from napari_biogan.metrics.video import video_report

    folder = Path(args.models) if args.models else ZOO_DIR
    rows, real_row, strips = [], None, []
    for variant in VARIANTS:
        path = folder / f"mmnist-{variant}.safetensors"
        if not path.is_file():
            print(f"(no {path.name} in {folder}: skipped)")
            continue
        model = GanModel.load(path, device="cpu")
        cfg = model.config
        clips = load_moving_mnist(n_clips=args.n, frames=cfg.frames, size=64, seed=1, split="test")
        real = model.family.prepare_data(clips, cfg)
        metrics = model.evaluate(real, n=args.n, seed=args.seed, metric_set="digits")
        training = model.card.get("training", {})
        rows.append((variant, metrics, training.get("steps"), training.get("wall_time_s")))
        if real_row is None:  # the real clips against themselves: what a perfect generator scores
            real01 = (real.numpy()[:, 0] + 1) / 2
            real_row = video_report(real01, None, "digits")
            strips.append(("real", real01[:3]))
        strips.append((variant, model.sample(3, seed=args.seed, precision="fp32")[:, 0]))

    print(f"Moving MNIST, {args.n} generated vs {args.n} held-out real clips (MNIST test digits)\n")
    print("| model | steps (CPU time) | AACD ↓ | flips/seq ↓ | cosTS ↑ | FVD digits ↓ | frame pixel FD ↓ "
          "| paper AACD / flips / cosTS / FVD (I3D) |")
    print("|---|---|---|---|---|---|---|---|")
    for variant, m, steps, wall in rows:
        paper = PAPER[variant]
        budget = f"{steps} ({wall / 60:.0f} min)" if steps and wall else "?"
        print(f"| {variant.upper() if variant != 'tganv2' else 'TGANv2'} | {budget} | {m['aacd']:.3f} "
              f"| {m['flips_per_seq']:.2f} | {m['cos_ts']:.3f} | {m['fvd_digits']:.1f} | {m['fd_frames_pixels']:.2f} "
              f"| {paper[1]} / {paper[2]} / {paper[3]} / {paper[0]} |")
    if real_row is not None:
        print(f"| real clips | - | {real_row['aacd']:.3f} | {real_row['flips_per_seq']:.2f} "
              f"| {real_row['cos_ts']:.3f} | 0 | 0 | - |")
    by = {variant: m for variant, m, _, _ in rows}
    if "savgan" in by and "3dgan" in by:
        s, d = by["savgan"], by["3dgan"]
        better = [name for name, ok in (("AACD", s["aacd"] < d["aacd"]),
                                        ("flips/seq", s["flips_per_seq"] < d["flips_per_seq"]),
                                        ("cosTS", s["cos_ts"] > d["cos_ts"])) if ok]
        print(f"\nSAVGAN better than 3DGAN on: {', '.join(better) or 'none'} (the paper: AACD, flips/seq, cosTS)")
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
