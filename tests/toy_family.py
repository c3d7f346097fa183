"""A family that exists only in the tests: the contract's image-driven corner, kept tiny.

An image goes in (no latent); it is encoded once into features; a class control
("style") and an attribute slider ("gain") re-decode it into three outputs: an
edited image, a signed change map (edited - input, never clamped) and a labels
map. Training needs images AND labels (image/mask pairs, flipped together).

It drives the real widgets and the CLI in the tests, and it is the worked
example of "How to add a family" in the README. Import this module (or set
NAPARI_BIOGAN_FAMILIES=toy_family with tests/ on the path) to register it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_biogan.core.contract import IMAGE, LABELS, SIGNED, Channel, Control, Input, Output
from napari_biogan.core.errors import DataError
from napari_biogan.core.registry import Family, per_sample, register

NAME = "toy-seg"


@dataclass
class ToyConfig:
    channels: int = 1
    classes: int = 3  # label values 0..classes-1 (0: background)
    styles: tuple[str, ...] = ("plain", "bright")
    width: int = 8


def _build(cfg: ToyConfig):
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(cfg.channels, cfg.width, 3, padding=1)

        def forward(self, image):
            return self.conv(image).relu()

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.style = nn.Embedding(len(cfg.styles), cfg.width)
            self.image = nn.Conv2d(cfg.width, cfg.channels, 3, padding=1)
            self.labels = nn.Conv2d(cfg.width, cfg.classes, 3, padding=1)

        def forward(self, features, style, gain):
            h = features + self.style(style)[:, :, None, None] * (1 + gain[:, None, None, None])
            return self.image(h).tanh(), self.labels(h)

    return nn.ModuleDict({"encoder": Encoder(), "decoder": Decoder()})


@register
class ToyFamily(Family):
    name = NAME
    title = "Test family (image -> edited image, change map, labels)"
    config_cls = ToyConfig
    sample_axes = ("Y", "X")
    inference_nets = ("encoder", "decoder")
    metric_sets = ("segmentation",)

    def build(self, config):
        return _build(config)

    def channels(self, config):
        return [Channel("image", "gray")] * config.channels

    def inputs(self, config):
        return [Input("image", IMAGE, train=True, run=True, help="images to edit and segment"),
                Input("labels", LABELS, train=True, run=False, help="a class per pixel, 0 = background")]

    def outputs(self, config):
        return [Output("edited", IMAGE, tuple(self.channels(config))),
                Output("change", SIGNED, (Channel("change", "PiYG"),), help="edited minus input"),
                Output("labels", LABELS, classes=("background", "cell", "edge")[:config.classes])]

    def controls(self, config):
        return [Control("style", "class", choices=tuple(config.styles), default=0),
                Control("gain", "attribute", minimum=-2.0, maximum=2.0, default=0.0, step=0.1)]

    def prepare_source(self, config, source):
        """Raw intensities -> [-1, 1] by each image's own percentiles (as prepare_data scales training)."""
        image = source["image"].float()
        return {**source, "image": scale_images(image[:, None] if image.ndim == 3 else image)}

    def encode(self, nets, config, source):
        image = source["image"]
        return {"features": nets["encoder"](image), "image": image}

    def decode(self, nets, config, state, controls):
        import torch

        n = len(state["features"])
        device = state["features"].device
        style = per_sample(controls.get("style", 0), n, torch.long).to(device)
        gain = per_sample(controls.get("gain", 0.0), n, torch.float32).to(device)
        edited, logits = nets["decoder"](state["features"], style, gain)
        return {"edited": edited, "change": edited - state["image"], "labels": logits}

    # -- data and training -------------------------------------------------------------------------
    def prepare_data(self, data, config):
        import torch

        from napari_biogan.core.dataset import Field, TrainingData

        if not isinstance(data, dict) or data.get("image") is None or data.get("labels") is None:
            raise DataError("This family trains on images with their labels.")
        image = np.asarray(data["image"], dtype=np.float32)
        labels = np.asarray(data["labels"])
        if image.ndim == 3:
            image = image[:, None]
        if image.ndim != 4 or image.shape[1] != config.channels:
            raise DataError(f"Expected images shaped (N, Y, X); got {tuple(np.shape(data['image']))}.")
        if labels.shape != (image.shape[0], *image.shape[2:]):
            raise DataError(f"The labels {labels.shape} do not match the images {image.shape}.")
        if labels.min() < 0 or labels.max() >= config.classes:
            raise DataError(f"Label values must be 0 to {config.classes - 1}; found {labels.min()} to {labels.max()}.")
        scaled = scale_images(torch.from_numpy(image))
        return TrainingData({"image": Field(scaled, spatial=2),
                             "labels": Field(torch.from_numpy(labels.astype(np.int64)), spatial=2)})

    def preview_source(self, config, data, n, generator):
        return {"image": data.head(n)["image"]}

    def default_hparams(self) -> dict[str, Any]:
        return {"lr": 1e-2, "batch_size": 4, "flip_axes": (-1, -2)}

    def make_optimizers(self, nets, hparams):
        import torch

        return {"all": torch.optim.Adam(nets.parameters(), hparams["lr"])}

    def train_step(self, nets, optimizers, next_batch, ctx):
        import torch
        import torch.nn.functional as F

        batch = next_batch()
        style = torch.randint(len(ctx.config.styles), (len(batch["image"]),), generator=ctx.rng)
        state = self.encode(nets, ctx.config, {"image": batch["image"]})
        out = self.decode(nets, ctx.config, state, {"style": style.to(ctx.device), "gain": 0.0})
        loss_seg = F.cross_entropy(out["labels"], batch["labels"])
        loss_img = (out["edited"] - batch["image"]).abs().mean()
        optimizers["all"].zero_grad(set_to_none=True)
        (loss_seg + loss_img).backward()
        optimizers["all"].step()
        return {"segmentation": loss_seg.item(), "reconstruction": loss_img.item()}

    def metrics(self, model, real, n, seed, metric_set=None):
        self.check_metric_set(metric_set)
        head = real.head(n)
        predicted = model.run({"image": head["image"]}, precision="fp32")["labels"]
        return {"pixel_accuracy": float((predicted == head["labels"].numpy()).mean())}


def scale_images(images):
    """(N, C, Y, X) -> [-1, 1] by each image's 0.5 / 99.5 percentiles (the one scaling of this family)."""
    import torch

    flat = images.reshape(len(images), -1).float()
    low = torch.quantile(flat, 0.005, dim=1)[:, None, None, None]
    high = torch.quantile(flat, 0.995, dim=1)[:, None, None, None]
    return ((images - low) / (high - low).clamp_min(1e-6)).clamp(0, 1) * 2 - 1


def toy_pairs(n: int = 6, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images with bright discs and their labels (1 inside, 2 on a ring, 0 outside)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = np.zeros((n, size, size), np.float32), np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(size * 0.3, size * 0.7, 2).tolist() + [size * 0.25]
        d = np.hypot(yy - cy, xx - cx)
        labels[i][d < r + 1] = 2
        labels[i][d < r - 1] = 1
        images[i] = (d < r) * 0.8 + rng.normal(0, 0.05, (size, size))
    return images, labels
