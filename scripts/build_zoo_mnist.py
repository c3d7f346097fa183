"""Rebuild the shipped digit model `zoo/mnist-dcgan.safetensors` from ../shared/data/mnist.

    python scripts/build_zoo_mnist.py [--steps 3000] [--data ../shared/data/mnist/mnist_train.npz]

Trains the dcgan2d family (32x32) with a spectrally normalised critic and the hinge loss,
SAGAN's two-time-scale Adam (1e-4 / 4e-4, betas (0, 0.9)), one critic step per generator
step: WGAN-GP's 5 critic steps cost 5x the CPU time, and a plain BCE run of the same
length mode-collapsed to 4/7/9-like shapes. on the CPU through the same
training loop the plugin uses and saves the generator only (small file).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from napari_biogan.core.dataset import TrainingData
from napari_biogan.core.model import GanModel
from napari_biogan.core.training import Trainer, TrainSettings
from napari_biogan.core.zoo import ZOO_DIR

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/mnist/mnist_train.npz"))
    parser.add_argument("--out", default=str(ZOO_DIR / "mnist-dcgan.safetensors"))
    args = parser.parse_args()

    digits = np.load(args.data)["x_train"]
    model = GanModel.new("dcgan2d", latent_dim=64, base_width=32, channel_names=("digit",),
                         critic_spectral_norm=True, seed=0)
    data = model.family.prepare_data(digits, model.config)
    work = Path("/tmp/mnist-dcgan-train.safetensors")
    settings = TrainSettings(steps=args.steps, seed=0, output=str(work), overwrite=True, checkpoint_every=500,
                             preview_every=500, hparams={"batch_size": 64, "loss": "hinge", "n_critic": 1,
                                                                      "lr_g": 1e-4, "lr_d": 4e-4, "betas": (0.0, 0.9)},
                             data_description="MNIST training digits (60,000, 28x28 resized to 32x32)")
    start = time.time()
    for event in Trainer(model, data, settings).run():
        if event.kind in ("preview", "finished"):
            print(f"step {event.step}/{event.total} {event.losses} {time.time() - start:.0f}s", flush=True)
    held = data.take(torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:2000])
    metrics = model.family.metrics(model, TrainingData(held), n=2000, seed=123)
    model.save(args.out, overwrite=True, include=("generator",), card={
        "name": "mnist-dcgan", "description": "Handwritten digits, 32x32 (demo model)", "metrics": metrics,
        "training_state": None})
    print("saved", args.out, metrics)


if __name__ == "__main__":
    main()
