"""The Fader models' evaluation tables (and their figures) on held-out slices.

    python benchmarks/bench_fader.py [--model mri-fader] [-n 1279] [--seed 0] [--csv OUT.csv]
                                     [--picture docs/figures/fader_progression.png]
    python benchmarks/bench_fader.py --dataset ixi [--model ixi-fader] [--picture docs/figures/ixi_positions.png]

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

``--dataset ixi``: the slice-position model on the axial slices of the two held-out IXI
subjects (``data.mri.IXI_HELD_OUT``): the frozen position regressor's own error on real
slices beside the error of edits (the position requested against the position the regressor
reads in the edited slice, over 5 requested positions), the response (the slope of the read
position against the requested one: 1 follows the slider, 0 does not move), the fraction of
slices whose read position never goes down as the slider goes up, and the reconstruction
figures. ``--picture``
draws one held-out slice from the middle of the brain moved to lower and higher positions,
above the same subject's REAL slices at those positions and the difference maps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alzheimer_mri_4class"
IXI_DATA = ROOT.parent / "shared" / "data" / "ixi_t1_brain"
IXI_ATTRIBUTE = "position:continuous:0|1"
#: the positions the IXI figure's held-out slice (from the middle of the brain) is moved to
IXI_PATH = (0.5, 0.2, 0.35, 0.65, 0.8)
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


def position_table(metrics: dict[str, float], held_slices: int, subjects: int) -> str:
    """The slice-position model's row: what the regressor reads in real and in edited slices."""
    lines = ["| held-out slices | regressor error on real slices | error of edits (requested vs read) "
             "| response (read per requested; 1 = follows) | edits whose read position never falls "
             "| reconstruction MSE | sharpness |",
             "|---:|---:|---:|---:|---:|---:|---:|",
             f"| {held_slices} ({subjects} subjects) | {metrics['error_position_real']:.3f} "
             f"| {metrics['error_position']:.3f} | {metrics['response_position']:.2f} "
             f"| {metrics['monotonic_position']:.1%} "
             f"| {metrics['reconstruction_mse']:.4f} | {metrics.get('reconstruction_sharpness', float('nan')):.3f} |",
             "",
             "Errors are mean absolute differences in slice position (0 = the lowest slice of the brain, 1 = the top)."]
    return "\n".join(lines)


def same_subject_similarity(model, held, test, requested=(0.2, 0.35, 0.65, 0.8)) -> tuple[float, float, float]:
    """Does an edit to position p look like the same subject's REAL slice at p? (no regressor involved).

    For every held-out slice and requested position: the pixel correlation of the edit with the subject's
    real slice nearest p, against that of the slice's reconstruction (what not moving would score) and of
    the real slice's own reconstruction (what a perfect move would score at this model's sharpness)."""
    import torch

    from napari_biogan.metrics.attributes import decode_slices
    from napari_biogan.metrics.pixels import paired_correlation

    images, values = held["image"].source.float(), held["attributes"].source.float()
    positions, subjects = values[:, 0].numpy(), np.asarray(test.subjects)
    rebuilt = decode_slices(model, images, values, values)
    edit_r, still_r, ceiling_r = [], [], []
    for p in requested:
        targets = np.array([np.flatnonzero(subjects == s)[np.abs(positions[subjects == s] - p).argmin()]
                            for s in subjects])
        keep = np.abs(positions - p) > 0.1  # slices already near p would pass without moving
        wanted = values.clone()
        wanted[:, 0] = p
        edited = decode_slices(model, images, values, wanted)
        real_targets = images[targets].numpy()
        score = lambda x: paired_correlation(x.numpy(), real_targets)[keep]  # noqa: E731
        edit_r.append(score(edited))
        still_r.append(score(rebuilt))
        ceiling_r.append(score(rebuilt[torch.as_tensor(targets)]))
    return tuple(float(np.concatenate(r).mean()) for r in (edit_r, still_r, ceiling_r))


def diverging(values: np.ndarray, limit: float) -> np.ndarray:
    """Signed values -> RGB uint8: magenta below 0, white at 0, green above (PiYG-like), clipped at +-limit."""
    t = np.clip(values / max(limit, 1e-6), -1, 1)[..., None]
    white, green, magenta = np.array([247, 247, 247.0]), np.array([39, 100, 25.0]), np.array([142, 1, 82.0])
    rgb = np.where(t >= 0, white + (green - white) * t, white + (magenta - white) * (-t))
    return rgb.astype(np.uint8)


def dementia_figure_source() -> tuple[np.ndarray, str, tuple[float, ...], list[str], None]:
    """The dementia figure: one held-out non-demented slice along FIGURE_PATH (there and back)."""
    from PIL import Image

    from napari_biogan.data.mri import DEMENTIA_CLASSES

    source = np.asarray(Image.open(DATA / "test" / FIGURE_SLICE[0] / FIGURE_SLICE[1]), dtype=np.float32)
    labels = [f"{v:g}: {DEMENTIA_CLASSES[int(v)].replace('Demented', '')}" for v in FIGURE_PATH]
    return source, "diagnosis", FIGURE_PATH, labels, None


def ixi_figure_source() -> tuple[np.ndarray, str, tuple[float, ...], list[str], list[np.ndarray]]:
    """The IXI figure: a held-out subject's slice at position IXI_PATH[0], moved along IXI_PATH, with the
    same subject's real slices nearest each position (what the edit should look like)."""
    from napari_biogan.data.mri import IXI_HELD_OUT, head_planes

    path = next(p for p in sorted((IXI_DATA / "skullstripped").glob("*.nii.gz")) if p.name.startswith(IXI_HELD_OUT[0]))
    planes, _, positions = head_planes(path, "axial", "all")
    nearest = [int(np.abs(positions - value).argmin()) for value in IXI_PATH]
    labels = [f"position {positions[i]:.2f}" for i in nearest]
    return planes[nearest[0]], "position", IXI_PATH, labels, [planes[i] for i in nearest]


def draw_progression(model, source: np.ndarray, control: str, path: tuple[float, ...], labels: list[str],
                     out: Path, reference: list[np.ndarray] | None = None, scale: int = 3) -> Path:
    """One held-out slice moved along ``path`` of ``control``: edited slices on top, the real slices
    ``reference`` (if given) below them, the difference maps (edited minus the reconstruction) at the bottom."""
    from PIL import Image, ImageDraw

    from napari_biogan.core.contract import Point

    state = model.encode({"image": source})
    edited, differences = [], []
    for value in path:
        out_value = model.run(Point(state, {control: value}), precision="fp32")
        edited.append(out_value["image"][0, 0])
        differences.append(out_value["difference"][0, 0])
    limit = float(np.percentile(np.abs(np.stack(differences)), 99.5)) or 1.0

    def unit(image: np.ndarray) -> np.ndarray:
        return (image - image.min()) / max(float(image.max() - image.min()), 1e-6)

    height, width = source.shape
    tile_w, tile_h, label_h = width, height, 18
    rows = 3 if reference is not None else 2
    canvas = Image.new("RGB", ((len(path) + 1) * tile_w, rows * (tile_h + label_h)), "white")
    draw = ImageDraw.Draw(canvas)

    def paste(pixels: np.ndarray, column: int, row: int) -> None:
        image = Image.fromarray(pixels if pixels.ndim == 3 else (np.clip(pixels, 0, 1) * 255).astype(np.uint8))
        canvas.paste(image.convert("RGB"), (column * tile_w, row * (tile_h + label_h) + label_h))

    paste(unit(source), 0, 0)
    draw.text((4, 2), "held-out input", fill="black")
    if reference is not None:
        draw.text((4, tile_h + label_h + 2), "real slices:", fill="black")
    draw.text((4, (rows - 1) * (tile_h + label_h) + 2), f"difference +-{limit:.2f}", fill="black")
    for i, (label, image, difference) in enumerate(zip(labels, edited, differences), start=1):
        paste(image, i, 0)
        draw.text((i * tile_w + 4, 2), label, fill="black")
        if reference is not None:
            paste(unit(reference[i - 1]), i, 1)
        paste(diverging(difference, limit), i, rows - 1)
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
    parser.add_argument("--dataset", choices=("dementia", "ixi"), default="dementia")
    parser.add_argument("--model", nargs="+", default=None,
                        help="model names or .safetensors paths (the table is printed for each; default mri-fader, "
                             "or ixi-fader with --dataset ixi)")
    parser.add_argument("--classifier", default=None,
                        help="evaluation classifier (default: the one the model's card names, else the shipped one)")
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
    from napari_biogan.data.mri import ixi_split, load_dementia_slices, load_ixi
    from napari_biogan.metrics import write_metrics_csv
    from napari_biogan.metrics.attributes import evaluate_fader, evaluation_subset, load_attribute_classifier

    torch.set_num_threads(args.threads)
    ixi = args.dataset == "ixi"
    root = IXI_DATA if ixi else DATA
    if not root.is_dir():
        sys.exit(f"The held-out slices are not here: {root} is missing.")
    models = {}
    try:
        classifier = load_attribute_classifier(args.classifier) if args.classifier else None
        for name in args.model or (["ixi-fader"] if ixi else ["mri-fader"]):
            models[name] = Model.load(resolve_model(name), device="cpu")
        size = next(iter(models.values())).config.size
        test = (ixi_split(load_ixi(IXI_DATA, step=1, size=size, attributes=(IXI_ATTRIBUTE,)))[1] if ixi
                else load_dementia_slices(DATA, "test", size))
    except BioGanError as err:
        sys.exit(str(err))
    counts = None if ixi else test.subset(evaluation_subset(len(test), args.n, args.seed)).counts("diagnosis")
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
        print(position_table(metrics, evaluated, len(set(test.subjects))) if ixi
              else table(metrics, test.specs[0].classes, counts))
        if ixi:
            edit_r, still_r, ceiling_r = same_subject_similarity(model, held, test)
            print(f"Same subject's real slice at the requested position (positions 0.2, 0.35, 0.65, 0.8; slices "
                  f"more than 0.1 away; pixel correlation, no regressor): the edit {edit_r:.3f}, the unmoved "
                  f"reconstruction {still_r:.3f}, the real slice's own reconstruction {ceiling_r:.3f} (a perfect "
                  f"move at this model's sharpness)")
        print()
        if args.csv:
            csv_path = Path(args.csv)
            if len(models) > 1:
                csv_path = csv_path.with_name(f"{csv_path.stem}-{Path(name).stem}{csv_path.suffix}")
            print("wrote", write_metrics_csv(csv_path, metrics, {"model": model.name, "held_out_slices": evaluated},
                                             overwrite=True))
    first = next(iter(models.values()))
    if args.picture:
        source, control, path, labels, reference = ixi_figure_source() if ixi else dementia_figure_source()
        print("wrote", draw_progression(first, source, control, path, labels, Path(args.picture), reference))
    if args.reconstructions:
        stems = [Path(name).stem for name in models]  # two files of one name: say which folder each is in
        labels = {name: Path(name).stem if stems.count(Path(name).stem) == 1 else
                  f"{Path(name).parent.name}/{Path(name).stem}" for name in models}
        print("wrote", draw_reconstructions({labels[n]: m for n, m in models.items()}, first_held,
                                            Path(args.reconstructions)))


if __name__ == "__main__":
    main()
