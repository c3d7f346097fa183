"""C2ST per protein and reconstruction L2 / NLL of the three cell-GAN variants on held-out rcell2 cells,
beside the real-vs-real rows and the nearest-training-neighbour baseline (Osokin et al., Tables 2-3).

    nice -n 19 python benchmarks/bench_cells.py [--work /tmp/napari-biogan-cells-zoo] [--c2st-steps 200]
                                                [--paper] [--reconstruct 20] [--figures docs/figures]

Models: the generators scripts/build_zoo_cells.py leaves in --work (yeast-cells-{variant}.safetensors);
the shipped star model stands in where its work file is missing. Data: the same held-out 20 % of
the rcell2 cells as the build (data.cells.zoo_cell_split). C2ST runs in the labelled quick setting
unless --paper (5,000 critic steps a split: hours on a CPU). --figures also writes
cells-real-vs-generated.png and cells-interpolation.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rcell2_yeast"
VARIANTS = ("star", "multichannel", "separable")
#: the paper's LIN figures (6 proteins, WGAN-GP), for the README table
PAPER = {"star": "1.41 ± 0.15", "multichannel": "3.72 ± 0.14", "separable": "0.76-1.1 (one class)"}


def composite(pair: np.ndarray, zoom: int = 3) -> np.ndarray:
    """(2, Y, X) [0, 1] (shape, protein) -> RGB uint8: shape in magenta, protein in green."""
    shape, protein = pair[0], pair[1]
    rgb = np.stack([shape * 0.8, np.clip(shape * 0.35 + protein, 0, 1), shape * 0.8], -1)
    return np.kron((rgb * 255).astype(np.uint8), np.ones((zoom, zoom, 1), np.uint8))


def figures(model, test_cells, folder: Path, names) -> None:
    """Real vs generated cells per protein, and a 3-keyframe slerp path (shape and every protein per frame)."""
    from PIL import Image

    from napari_biogan.core.contract import Point
    from napari_biogan.core.latent import point_path

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    gap = np.full((4, 8 * 96 + 7 * 2, 3), 255, np.uint8)
    for c, name in enumerate(names):
        real = test_cells.images[rng.choice(len(test_cells), 8, replace=False)][:, [0, 1 + c]] / 255.0
        fake = model.run(model.seeded_point(100 + c, 8), controls={"protein": c + 1}, precision="fp32")["cell"]
        fake = fake[:, [0, 1 + c]]
        for group in (real, fake):
            tiles = [composite(p) for p in group]
            row = tiles[0]
            for tile in tiles[1:]:
                row = np.concatenate([row, np.full((96, 2, 3), 255, np.uint8), tile], 1)
            rows += [row, gap]
    Image.fromarray(np.concatenate(rows[:-1])).save(folder / "cells-real-vs-generated.png")
    keys = [Point({"latent": model.latents(1, s)}, {"protein": 0}) for s in (3, 14, 27)]
    path = point_path(keys, 6, choices=("protein", "green seed"))
    cells = model.run(path, precision="fp32")["cell"]  # (frames, 1 + k, Y, X)
    grey = [np.concatenate(list(cells[:, ch]), 1) for ch in range(cells.shape[1])]
    colour = [np.concatenate([composite(cell[[0, 1 + c]], 1) for cell in cells], 1) for c in range(len(names))]
    strip = np.concatenate([np.repeat((g[..., None] * 255).astype(np.uint8), 3, -1) for g in grey] + colour, 0)
    Image.fromarray(np.kron(strip, np.ones((3, 3, 1), np.uint8))).save(folder / "cells-interpolation.png")
    print(f"figures written to {folder}")


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
    parser.add_argument("--figures", default="", help="folder for the README pictures (star model)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train_cells, test_cells = zoo_cell_split(SHARED)
    test, train = test_cells.pairs(), train_cells.pairs()
    pairs = torch.from_numpy(test.images.astype(np.float32) / 127.5 - 1)
    settings = PAPER_C2ST if args.paper else (
        C2stSettings(critic_steps=args.c2st_steps, critic_width=16, lr=1e-3, label="quick")
        if args.c2st_steps else QUICK_C2ST)
    print(f"{len(train_cells)} training cells, {len(test_cells)} held out; {settings.describe()}")
    names = list(test.names)
    rows, real_rows = [], None
    # real vs real: one protein against the other (different classes), on the same held-out cells
    other = real_c2st(pairs[torch.from_numpy(test.classes == 0)], pairs[torch.from_numpy(test.classes == 1)],
                      settings, seed=0)
    for variant in args.only:
        path = Path(args.work) / f"yeast-cells-{variant}.safetensors"
        if not path.exists() and variant == "star":
            path = ZOO_DIR / "yeast-cells-star.safetensors"
        if not path.exists():
            print(f"{variant}: no model at {path}; run scripts/build_zoo_cells.py first")
            continue
        model = Model.load(path, device="cpu")
        started = time.perf_counter()
        c2st = model_c2st(model, pairs, test.classes, settings, seed=0, with_real=variant == args.only[0])
        print("\n".join([f"{variant} ({model.card.get('training', {}).get('steps', '?')} steps):"] + c2st.lines()),
              f"\n  [{time.perf_counter() - started:.0f} s]", flush=True)
        chosen = np.random.default_rng(1).choice(len(test), args.reconstruct, replace=False)
        rec = reconstruct_cells(model, test.images[chosen] / 255.0, test.classes[chosen], restarts=5, steps=50,
                                search=(train.images / 255.0, train.classes))
        s = rec.summary()
        rows.append((variant, c2st, s))
        real_rows = real_rows or (c2st if c2st.real else None)
        if args.figures and variant == "star":
            figures(model, test_cells, Path(args.figures), names)

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
