"""C2ST per protein and reconstruction L2 / NLL of the three cell-GAN variants on held-out rcell2 cells,
beside the real-vs-real rows and the nearest-training-neighbour baseline (Osokin et al., Tables 2-3).

    nice -n 19 python benchmarks/bench_cells.py [--work /tmp/napari-biogan-cells-zoo] [--c2st-steps 100]
                                                [--paper] [--reconstruct 20] [--figures docs/figures]
                                                [--json cells.json]

Models: the generators scripts/build_zoo_cells.py leaves in --work (yeast-cells-{variant}.safetensors);
a shipped one (zoo/yeast-cells-separable) stands in where its work file is missing. Data: the same held-out 20 % of
the rcell2 cells as the build (data.cells.zoo_cell_split). C2ST runs in the labelled quick setting
unless --paper (5,000 critic steps a split: hours on a CPU); the README's table used
--c2st-steps 100 (about 30 min for the three models on 2 shared cores). --figures also writes
cells-real-vs-generated.png and cells-interpolation.png (of --figures-variant; --figures-only: just those).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rcell2_yeast"
VARIANTS = ("star", "multichannel", "separable")
#: the paper's LIN figures (6 proteins, WGAN-GP), for the README table
PAPER = {"star": "1.41 ± 0.15", "multichannel": "3.72 ± 0.14", "separable": "0.76-1.1 (one class)"}


#: the colour of each protein channel in the pictures (as the plugin's layers: green, cyan...)
PROTEIN_RGB = ((0.2, 1.0, 0.2), (0.1, 0.9, 1.0), (1.0, 0.9, 0.1))
ZOOM, GAP, MARGIN = 3, 2, 150
#: held-out cells (zoo_cell_split) on the picture's cell-cycle path: small, grown, small bud, large bud
CYCLE_CELLS, CYCLE_STEPS = (24, 19, 8, 32), 4


def tile(plane: np.ndarray, colour=(1.0, 1.0, 1.0)) -> np.ndarray:
    """One channel in [0, 1] -> an RGB uint8 tile, ZOOM times larger, in ``colour`` (grey: white)."""
    rgb = np.clip(plane[..., None] * np.asarray(colour, np.float32), 0, 1)
    return np.kron((rgb * 255).astype(np.uint8), np.ones((ZOOM, ZOOM, 1), np.uint8))


def strip(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles side by side with white gaps."""
    gap = np.full((tiles[0].shape[0], GAP, 3), 255, np.uint8)
    return np.concatenate([part for t in tiles for part in (t, gap)][:-1], 1)


def labelled(rows: list[tuple[str, np.ndarray]], path: Path) -> None:
    """Rows of tiles, each with its label in a left margin, white gaps between rows."""
    from PIL import Image, ImageDraw

    width = max(r.shape[1] for _, r in rows) + MARGIN
    parts = []
    for label, row in rows:
        canvas = np.full((row.shape[0] + GAP * 2, width, 3), 255, np.uint8)
        canvas[GAP:GAP + row.shape[0], MARGIN:MARGIN + row.shape[1]] = row
        image = Image.fromarray(canvas)
        ImageDraw.Draw(image).text((6, row.shape[0] // 2 - 4), label, fill=(0, 0, 0))
        parts.append(np.asarray(image))
    Image.fromarray(np.concatenate(parts)).save(path)


def figures(model, test_cells, folder: Path, names) -> None:
    """Real vs generated cells per protein (bright-field row, protein row), and a slerp path through four
    held-out cells found in the model (the real keyframes, then the shape and every protein per frame)."""
    from napari_biogan.core.latent import point_path
    from napari_biogan.metrics.cells import find_cell

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for c, name in enumerate(names):
        real = test_cells.images[rng.choice(len(test_cells), 8, replace=False)][:, [0, 1 + c]] / 255.0
        fake = model.run(model.seeded_point(100 + c, 8), controls={"protein": c + 1}, precision="fp32")["cell"]
        fake = fake[:, [0, 1 + c]]
        for what, group in (("real", real), ("generated", fake)):
            rows.append((f"{what}: bright-field", strip([tile(p[0]) for p in group])))
            rows.append((f"{what}: {name}", strip([tile(p[1], PROTEIN_RGB[c]) for p in group])))
    labelled(rows, folder / "cells-real-vs-generated.png")
    # a cell-cycle path: held-out real cells (small, grown, small bud, large bud) found in the model
    keys = [find_cell(model, test_cells.images[i])[1] for i in CYCLE_CELLS]
    path = point_path(keys, CYCLE_STEPS, choices=("protein", "green seed"))
    cells = model.run(path, precision="fp32")["cell"]  # (frames, 1 + k, Y, X)
    real = [test_cells.images[CYCLE_CELLS[f // CYCLE_STEPS], 0] / 255.0 if f % CYCLE_STEPS == 0 else None
            for f in range(len(cells))]
    rows = [("real keyframe cells", strip([tile(r) if r is not None else np.full_like(tile(cells[0, 0]), 255)
                                           for r in real]))]
    rows += [("bright-field", strip([tile(cell[0]) for cell in cells]))]
    rows += [(name, strip([tile(cell[1 + c], PROTEIN_RGB[c]) for cell in cells])) for c, name in enumerate(names)]
    labelled(rows, folder / "cells-interpolation.png")
    print(f"figures written to {folder}", flush=True)


def _progress(what: str):
    """Prints a line at every tenth of a long C2ST (a bench on a shared CPU runs for a while)."""
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done % max(total // 10, 1) < 10 or done == total:
            print(f"  {what}: {done}/{total} critic steps, {time.perf_counter() - started:.0f} s", flush=True)
    return report


def main() -> None:
    import torch

    from napari_biogan.core.model import Model
    from napari_biogan.core.zoo import ZOO_DIR
    from napari_biogan.data.cells import zoo_cell_split
    from napari_biogan.metrics.cells import (PAPER_C2ST, QUICK_C2ST, C2stSettings, model_c2st, real_c2st,
                                             reconstruct_cells)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/napari-biogan-cells-zoo")
    parser.add_argument("--only", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--c2st-steps", type=int, default=0, help="critic steps of the quick C2ST (0: its default)")
    parser.add_argument("--paper", action="store_true", help="the paper's C2ST (5,000 critic steps, width 64)")
    parser.add_argument("--reconstruct", type=int, default=20)
    parser.add_argument("--figures", default="", help="folder for the README pictures (of --figures-variant)")
    parser.add_argument("--figures-variant", default="star", choices=VARIANTS, help="the model the pictures show")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--figures-only", action="store_true", help="only the pictures (no C2ST, no reconstruction)")
    parser.add_argument("--json", default="", help="also write every variant's metrics (the card's keys) here; "
                        "scripts/build_zoo_cells.py --ship --metrics-from reads it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train_cells, test_cells = zoo_cell_split(SHARED)
    if args.figures_only:
        path = Path(args.work) / f"yeast-cells-{args.figures_variant}.safetensors"
        model = Model.load(path if path.exists() else ZOO_DIR / path.name, device="cpu")
        figures(model, test_cells, Path(args.figures or "docs/figures"), list(test_cells.pairs().names))
        return
    test, train = test_cells.pairs(), train_cells.pairs()
    pairs = torch.from_numpy(test.images.astype(np.float32) / 127.5 - 1)
    settings = PAPER_C2ST if args.paper else (
        C2stSettings(critic_steps=args.c2st_steps, critic_width=16, lr=1e-3, label="quick")
        if args.c2st_steps else QUICK_C2ST)
    print(f"{len(train_cells)} training cells, {len(test_cells)} held out; {settings.describe()}")
    names = list(test.names)
    rows, real_rows, card = [], None, {}
    # real vs real: one protein against the other (different classes), on the same held-out cells
    other = real_c2st(pairs[torch.from_numpy(test.classes == 0)], pairs[torch.from_numpy(test.classes == 1)],
                      settings, seed=0, progress=_progress("real vs real"))
    print(f"real vs real, {names[0]} vs {names[1]}: {other.mean():.2f} ± {other.std():.2f}", flush=True)
    for variant in args.only:
        path = Path(args.work) / f"yeast-cells-{variant}.safetensors"
        if not path.exists():  # the shipped model stands in for its missing work file
            path = ZOO_DIR / path.name
        if not path.exists():
            print(f"{variant}: no model at {path}; run scripts/build_zoo_cells.py first")
            continue
        model = Model.load(path, device="cpu")
        if args.figures and variant == args.figures_variant:
            figures(model, test_cells, Path(args.figures), names)
        started = time.perf_counter()
        c2st = model_c2st(model, pairs, test.classes, settings, seed=0, with_real=variant == args.only[0],
                          progress=_progress(variant))
        print("\n".join([f"{variant} ({model.card.get('training', {}).get('steps', '?')} steps):"] + c2st.lines()),
              f"\n  [{time.perf_counter() - started:.0f} s]", flush=True)
        chosen = np.random.default_rng(1).choice(len(test), args.reconstruct, replace=False)
        rec = reconstruct_cells(model, test.images[chosen] / 255.0, test.classes[chosen], restarts=5, steps=50,
                                search=(train.images / 255.0, train.classes))
        s = rec.summary()
        rows.append((variant, c2st, s))
        real_rows = real_rows or (c2st if c2st.real else None)
        print("  reconstruction: " + ", ".join(f"{k} {v:.4g}" for k, v in s.items()), flush=True)
        card[variant] = {**{k: round(v, 4) for k, v in c2st.as_metrics().items()},
                         **{k: round(v, 4) for k, v in s.items()},
                         "c2st_setting": settings.describe(),
                         "c2st_real_other_protein": round(float(other.mean()), 4),
                         "c2st_real_other_protein_std": round(float(other.std()), 4),
                         **{f"{settings.prefix}_{n}_real_std": round(float(v.std()), 4) for n, v in c2st.real.items()},
                         "compared_with": f"{len(test_cells)} held-out cells (C2ST, {len(test)} (shape, protein) "
                         f"images); {args.reconstruct} of them reconstructed (5 restarts, L-BFGS 50 steps), nearest "
                         f"neighbour among {len(train_cells)} training cells",
                         "steps": model.card.get("training", {}).get("steps"),
                         "wall_time_s": model.card.get("training", {}).get("wall_time_s")}
        if real_rows is not None:  # the real-vs-real references (data, not model) beside every variant's figures
            for entry in card.values():
                entry.update({k: v for k, v in card[args.only[0]].items() if "_real" in k and k not in entry})
        if args.json:
            Path(args.json).write_text(json.dumps(card, indent=1))

    def row(*cells: str) -> None:
        print("| " + " | ".join(cells) + " |")

    k = len(names)
    print()
    row("model", *(f"C2ST {n}" for n in names), "C2ST mean", "recon L2", "recon NLL", "paper (LIN): C2ST mean")
    row(*["---"] * (k + 5))
    for variant, c2st, s in rows:
        row(variant, *(f"{c2st.scores[n].mean():.2f} ± {c2st.scores[n].std():.2f}" for n in names),
            f"{c2st.mean:.2f} ± {c2st.std:.2f}", f"{s['recon_l2']:.3f} ± {s['recon_l2_mad']:.3f}",
            f"{s['recon_nll']:.0f} ± {s['recon_nll_mad']:.0f}", PAPER[variant])
    if rows and real_rows is not None:
        s = rows[0][2]
        row("real vs real, same protein", *(f"{real_rows.real[n].mean():.2f} ± {real_rows.real[n].std():.2f}"
                                            for n in names), "", "", "", "-0.6 to 0.8")
        row(f"real vs real, {names[0]} vs {names[1]}", *[""] * k, f"{other.mean():.2f} ± {other.std():.2f}", "", "",
            "2.8 to 23.9")
        row("nearest training cell", *[""] * (k + 1), f"{s['nn_l2']:.3f} ± {s['nn_l2_mad']:.3f}", "", "L2 0.079")
        row("latents drawn from N(0, I)", *[""] * (k + 2), f"{s['recon_nll_real']:.0f}", "NLL 142 ± 7")
        print(f"reconstruction: {rows[0][2]['recon_seconds_per_cell']:.2f} s a cell (5 restarts, L-BFGS 50 steps)")


if __name__ == "__main__":
    main()
