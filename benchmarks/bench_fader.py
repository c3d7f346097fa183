"""The Fader model's evaluation table (and its figure) on the held-out dementia slices.

    python benchmarks/bench_fader.py [--model mri-fader] [-n 1279] [--seed 0] [--csv OUT.csv]
                                     [--picture docs/figures/fader_progression.png]

Loads the shipped (or given) Fader model and the frozen evaluation classifier, prepares the
TEST split of ../shared/data/alzheimer_mri_4class (slices of 200 scans the model and the
classifier never saw) as the family prepares training data, and prints one markdown table:
per diagnosis class, the classifier's own accuracy on real held-out slices beside the swap
accuracy (held-out slices edited to that class and classified as it) and the central CSF
fraction (a ventricle-size proxy, no classifier) of real slices of the class beside that of
slices edited to it, then the reconstruction MSE with the slices' own diagnosis; the seed
report's CelebA figures beside.
``--picture`` draws one held-out non-demented slice moved to moderate and back, with the
difference maps (edited minus the reconstruction with its own diagnosis).
``--reconstructions`` draws held-out slices (one per class, two of the common ones) above
their reconstructions by each model given (``--model a b``: one row each), so blur is seen,
not only read from the sharpness figure (the reconstruction's mean gradient magnitude over
the input's: 1 is as sharp).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alzheimer_mri_4class"
#: the seed report's swap accuracies of Fader Networks on CelebA (REFERENCE section 3)
SEED_FIGURES = {"sex (CelebA)": 0.971, "smile (CelebA)": 0.911}
#: the held-out slice of the figure and the diagnosis values it passes through (there and back)
FIGURE_SLICE = ("NonDemented", "26 (62).jpg")
FIGURE_PATH = (0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 0.0)
#: the held-out slices of the reconstruction figure (index into the sorted test split)
RECONSTRUCTION_SLICES = (0, 700, 1100, 1270, 300, 900)


def table(metrics: dict[str, float], classes: tuple[str, ...], held_counts: dict[str, int]) -> str:
    lines = ["| diagnosis | held-out slices | classifier accuracy (real) | swap accuracy (edited) "
             "| central CSF, real slices | central CSF, edited to the class |",
             "|---|---:|---:|---:|---:|---:|"]

    def shown(key: str, form: str) -> str:
        return "-" if metrics.get(key) is None else format(metrics[key], form)

    for name in classes:
        lines.append(f"| {name} | {held_counts.get(name, 0)} | {shown(f'swap_accuracy_diagnosis_{name}_real', '.1%')} "
                     f"| {shown(f'swap_accuracy_diagnosis_{name}', '.1%')} "
                     f"| {shown(f'central_csf_diagnosis_{name}_real', '.3f')} "
                     f"| {shown(f'central_csf_diagnosis_{name}', '.3f')} |")
    lines.append(f"| mean over classes | {sum(held_counts.values())} | {shown('swap_accuracy_diagnosis_real', '.1%')} "
                 f"| {shown('swap_accuracy_diagnosis', '.1%')} | | |")
    lines.append("")
    lines.append(f"Reconstruction with the slices' own diagnosis: MSE (intensities 0..1) "
                 f"{metrics['reconstruction_mse']:.4f}, sharpness (1 = as sharp as the input) "
                 f"{metrics.get('reconstruction_sharpness', float('nan')):.3f}")
    lines.append(f"Edit identity (edited slices whose most similar input is their own, over every class): "
                 f"{metrics.get('edit_identity', float('nan')):.1%}")
    lines.append(f"Central CSF (dark pixels in the central half: a ventricle-size proxy) of edits follows their "
                 f"inputs': correlation over slices {shown('central_csf_follows_input', '.3f')}")
    lines.append("Seed report, Fader Networks on CelebA: " +
                 ", ".join(f"{k} swap accuracy {v:.1%}" for k, v in SEED_FIGURES.items()))
    return "\n".join(lines)


def diverging(values: np.ndarray, limit: float) -> np.ndarray:
    """Signed values -> RGB uint8: magenta below 0, white at 0, green above (PiYG-like), clipped at +-limit."""
    t = np.clip(values / max(limit, 1e-6), -1, 1)[..., None]
    white, green, magenta = np.array([247, 247, 247.0]), np.array([39, 100, 25.0]), np.array([142, 1, 82.0])
    rgb = np.where(t >= 0, white + (green - white) * t, white + (magenta - white) * (-t))
    return rgb.astype(np.uint8)


def draw_progression(model, out: Path, scale: int = 3) -> Path:
    """One held-out slice moved along FIGURE_PATH: edited slices above, difference maps below."""
    from PIL import Image, ImageDraw

    from napari_biogan.core.contract import Point

    source = np.asarray(Image.open(DATA / "test" / FIGURE_SLICE[0] / FIGURE_SLICE[1]), dtype=np.float32)
    state = model.encode({"image": source})
    classes = [c for c in model.controls if c.name == "diagnosis"][0].choices
    edited, differences = [], []
    for value in FIGURE_PATH:
        out_value = model.run(Point(state, {"diagnosis": value}), precision="fp32")
        edited.append(out_value["image"][0, 0])
        differences.append(out_value["difference"][0, 0])
    limit = float(np.percentile(np.abs(np.stack(differences)), 99.5)) or 1.0
    source_view = (source - source.min()) / max(float(source.max() - source.min()), 1e-6)
    height, width = source.shape
    tile_w, tile_h, label_h = width, height, 18
    canvas = Image.new("RGB", ((len(FIGURE_PATH) + 1) * tile_w, 2 * (tile_h + label_h)), "white")
    draw = ImageDraw.Draw(canvas)
    canvas.paste(Image.fromarray((source_view * 255).astype(np.uint8)).convert("RGB"), (0, label_h))
    draw.text((4, 2), "held-out input", fill="black")
    draw.text((4, tile_h + label_h + 2), f"difference +-{limit:.2f}", fill="black")
    for i, (value, image, difference) in enumerate(zip(FIGURE_PATH, edited, differences), start=1):
        x = i * tile_w
        canvas.paste(Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).convert("RGB"), (x, label_h))
        canvas.paste(Image.fromarray(diverging(difference, limit)), (x, 2 * label_h + tile_h))
        name = classes[int(value)].replace("Demented", "")
        draw.text((x + 4, 2), f"{value:g}: {name}", fill="black")
    canvas = canvas.resize((canvas.width * scale // 2, canvas.height * scale // 2), Image.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def draw_reconstructions(models: dict[str, object], held, out: Path, scale: int = 3) -> Path:
    """Held-out slices (top row) and each model's reconstruction with the slices' own diagnosis (a row each)."""
    import torch
    from PIL import Image, ImageDraw

    from napari_biogan.metrics.attributes import decode_slices

    index = torch.as_tensor([i for i in RECONSTRUCTION_SLICES if i < len(held)])
    images, values = held["image"].take(index).float(), held["attributes"].take(index).float()
    rows = [("held-out input", images)] + [(name, decode_slices(model, images, values, values))
                                           for name, model in models.items()]
    side, label_w = images.shape[-1], 150
    canvas = Image.new("RGB", (label_w + len(index) * side, len(rows) * side), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, row) in enumerate(rows):
        draw.text((4, r * side + side // 2 - 6), name[:24], fill="black")
        for c, image in enumerate(row):
            pixels = ((image[0].numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
            canvas.paste(Image.fromarray(pixels).convert("RGB"), (label_w + c * side, r * side))
    canvas = canvas.resize((canvas.width * scale, canvas.height * scale), Image.NEAREST)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["mri-fader"],
                        help="model names or .safetensors paths (the table is printed for each)")
    parser.add_argument("--classifier", default=None, help="evaluation classifier (default: the shipped one)")
    parser.add_argument("-n", type=int, default=1279)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default=None, help="also write the metrics to this CSV")
    parser.add_argument("--picture", default=None, help="also draw the progression figure of the first model (PNG)")
    parser.add_argument("--reconstructions", default=None,
                        help="also draw held-out slices and every model's reconstruction of them (PNG)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from napari_biogan.core.errors import BioGanError
    from napari_biogan.core.model import Model
    from napari_biogan.core.zoo import resolve_model
    from napari_biogan.data.mri import load_dementia_slices
    from napari_biogan.metrics import write_metrics_csv
    from napari_biogan.metrics.attributes import evaluate_fader, evaluation_subset, load_attribute_classifier

    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        sys.exit(f"The held-out slices are not here: {DATA} is missing.")
    models = {}
    try:
        classifier = load_attribute_classifier(args.classifier)
        for name in args.model:
            models[name] = Model.load(resolve_model(name), device="cpu")
        size = next(iter(models.values())).config.size
        test = load_dementia_slices(DATA, "test", size)
    except BioGanError as err:
        sys.exit(str(err))
    counts = test.subset(evaluation_subset(len(test), args.n, args.seed)).counts("diagnosis")
    first_held = None
    for name, model in models.items():
        try:
            held = model.family.prepare_data(test.sources(), model.config)
            first_held = held if first_held is None else first_held
            metrics = evaluate_fader(model, held, n=args.n, seed=args.seed, classifier=classifier)
        except BioGanError as err:
            sys.exit(f"{name}: {err}")
        evaluated = min(args.n, len(held))
        training = model.card.get("training", {})
        print(f"{name} ({model.name}): {training.get('steps', '?')} steps, "
              f"{training.get('wall_time_s', 0) / 60:.0f} min on {training.get('device', '?')}; {evaluated} held-out "
              f"slices of {len(set(test.subjects))} scans")
        print()
        print(table(metrics, test.specs[0].classes, counts))
        print()
        if args.csv:
            csv_path = Path(args.csv)
            if len(models) > 1:
                csv_path = csv_path.with_name(f"{csv_path.stem}-{Path(name).stem}{csv_path.suffix}")
            print("wrote", write_metrics_csv(csv_path, metrics, {"model": model.name, "held_out_slices": evaluated},
                                             overwrite=True))
    first = next(iter(models.values()))
    if args.picture:
        print("wrote", draw_progression(first, Path(args.picture)))
    if args.reconstructions:
        stems = [Path(name).stem for name in models]  # two files of one name: say which folder each is in
        labels = {name: Path(name).stem if stems.count(Path(name).stem) == 1 else
                  f"{Path(name).parent.name}/{Path(name).stem}" for name in models}
        print("wrote", draw_reconstructions({labels[n]: m for n, m in models.items()}, first_held,
                                            Path(args.reconstructions)))


if __name__ == "__main__":
    main()
