"""The README picture of the shipped nuclei segmenter on a held-out BBBC039 field.

Three panels of the field's top-left 320x400 pixels: the Hoechst image, the predicted classes over
it (interior green, boundary red) and the nuclei (instances, one colour each, outlined).
Run: python benchmarks/picture_segmentation.py [--out docs/figures/nuclei_seg.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/bbbc039_nuclei"))
    parser.add_argument("--out", default=str(ROOT / "docs/figures/nuclei_seg.png"))
    args = parser.parse_args()

    import imageio.v3 as iio
    from scipy import ndimage

    from napari_biogan.core.model import Model
    from napari_biogan.core.zoo import resolve_model
    from napari_biogan.data.segmentation import load_bbbc039
    from napari_biogan.families.segmentation import instances

    model = Model.load(resolve_model("nuclei-seg"), device="cpu")
    field = load_bbbc039(args.data, "test")
    image = field.images[:1].astype(np.float32)
    labels = model.run({"image": image}, tile=256, overlap=64, precision="fp32")["labels"][0]
    nuclei = instances(model.config, labels)
    crop = (slice(0, 320), slice(0, 400))
    grey = image[0][crop]
    low, high = np.percentile(grey, [0.5, 99.8])
    grey = np.clip((grey - low) / (high - low), 0, 1)
    base = np.repeat(grey[..., None], 3, axis=2)
    classes = base.copy()
    classes[labels[crop] == 1] = 0.55 * classes[labels[crop] == 1] + 0.45 * np.array([0.2, 0.8, 0.3])
    classes[labels[crop] == 2] = np.array([0.85, 0.2, 0.2])
    objects = base.copy()
    rng = np.random.default_rng(0)
    colours = rng.uniform(0.3, 1.0, (int(nuclei.max()) + 1, 3))
    inside = nuclei[crop] > 0
    objects[inside] = 0.5 * objects[inside] + 0.5 * colours[nuclei[crop][inside]]
    edges = inside & ~ndimage.binary_erosion(inside, iterations=1)
    edges |= (ndimage.grey_dilation(nuclei[crop], size=3) != nuclei[crop]) & inside
    objects[edges] = 1.0
    gap = np.ones((grey.shape[0], 6, 3))
    picture = np.concatenate([base, gap, classes, gap, objects], axis=1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out, (picture * 255).round().astype(np.uint8))
    print(f"{field.names[0]}: {int(nuclei.max())} nuclei; wrote {args.out}")


if __name__ == "__main__":
    main()
