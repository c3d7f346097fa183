"""Cell family: separable, multi-channel and star-shaped GANs of multi-channel cells (Osokin et al., ICCV 2017).

One output, "cell": the shape channel (bright-field, Bgs4...) then one protein
channel per class, each its own napari layer (additive blending). Variants
(``config.variant``; networks in :mod:`.cells_nets`):

- ``star``: a shared shape tower and one protein tower per class, all from the same
  latent; one critic per class sees (shape, protein k). Switching the protein keeps
  the cell's shape.
- ``separable``: the shape from the first ``shape_latent`` latent entries and its own
  features; one protein tower (k outputs) sees everything; one critic per class.
- ``multichannel``: one DCGAN generator of 1 + k channels and one critic, trained on
  the paper's synthetic multi-channel images (or real multi-channel crops).

Controls: "protein" (0 = every protein channel, i = only protein i: the others are
left empty, as in a real one-protein image) and, for the separable and star models,
"green seed": 0 uses the point's own latent; any other value replaces the protein
part of the latent (entries ``shape_latent:``) by a draw from that seed, so the
proteins change and the shape stays. Samples that share a green seed share the
protein latent (so a chunked run gives the same pixels as one batch).

Training data: one-protein images (N, 2, Y, X) with a class each (the LIN layout,
class sub-folders), or multi-channel crops (N, 1 + k, Y, X) with a constant class
(e.g. the rcell2 cells); 8-bit data is scaled /255 like the paper's PNGs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.contract import CLASS, IMAGE, LATENT, Channel, Control, Input, Output
from ..core.errors import DataError
from ..core.registry import Family, per_sample, register

VARIANTS = ("star", "separable", "multichannel")
#: config loss -> the shared loss name (nn.losses)
LOSSES = {"wgan-gp": "wgan-gp", "dcgan": "bce"}
#: Adam settings of the reference code per loss: (lr, betas)
OPTIMISER = {"wgan-gp": (1e-4, (0.0, 0.9)), "dcgan": (2e-4, (0.5, 0.999))}
PROTEIN_COLOURS = ("green", "cyan", "yellow", "bop orange", "red", "blue", "bop purple", "bop blue")
ALL_PROTEINS = "all"


@dataclass
class CellsConfig:
    variant: str = "star"  # "star" | "separable" | "multichannel"
    loss: str = "wgan-gp"  # "wgan-gp" | "dcgan"
    height: int = 48
    width: int = 80
    #: protein class names (class i = sub-folder i in name order); () = taken from the training data
    proteins: tuple[str, ...] = ()
    latent_dim: int = 100
    shape_latent: int = 50  # leading latent entries that alone make the shape (separable, star)
    base_width: int = 64  # generator channels at the last hidden layer, doubling at each coarser one
    critic_width: int = 64  # critic channels at its first layer, doubling at each
    shape_name: str = "shape"
    shape_colormap: str = "gray"  # "gray" or "magenta"

    def __post_init__(self):
        for name in ("height", "width", "latent_dim", "shape_latent", "base_width", "critic_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(f"'{name}' must be a whole number of at least 1, not {value!r}.")
        if self.variant not in VARIANTS:
            raise DataError(f"'variant' is one of {', '.join(VARIANTS)}, not {self.variant!r}.")
        if self.loss not in LOSSES:
            raise DataError(f"'loss' is one of {', '.join(LOSSES)}, not {self.loss!r}.")
        if self.variant != "multichannel" and self.shape_latent >= self.latent_dim:
            raise DataError(f"'shape_latent' ({self.shape_latent}) must be smaller than 'latent_dim' "
                            f"({self.latent_dim}): the rest of the latent makes the proteins.")
        if self.shape_colormap not in ("gray", "magenta"):
            raise DataError(f"'shape_colormap' is gray or magenta, not {self.shape_colormap!r}.")
        if isinstance(self.proteins, str):
            self.proteins = (self.proteins,)
        self.proteins = tuple(str(p) for p in self.proteins)
        if len(set(self.proteins)) != len(self.proteins) or any(not p.strip() for p in self.proteins):
            raise DataError("Protein names must be distinct and not empty.")
        if ALL_PROTEINS in self.proteins:
            raise DataError(f"'{ALL_PROTEINS}' cannot name a protein (it is the choice that shows every one).")
        if self.base_width * 2 ** 5 * self.latent_dim * max(1, len(self.proteins)) > 2 ** 32:
            raise DataError(f"A base width of {self.base_width} makes a network too large to build here.")
        from .dcgan2d import upsampling_levels

        upsampling_levels(self.height, self.width)  # a plain error for sizes that do not halve

    @property
    def protein_names(self) -> tuple[str, ...]:
        return self.proteins or ("protein",)

    @property
    def split(self) -> bool:
        """The shape has its own part of the latent (separable and star models)."""
        return self.variant != "multichannel"


@register
class CellsFamily(Family):
    name = "cells"
    title = "Cells (separable / multi-channel / star-shaped GAN)"
    config_cls = CellsConfig
    sample_axes = ("Y", "X")
    metric_sets = ("c2st-quick", "c2st", "reconstruction")

    # -- declarations ----------------------------------------------------------------------------------
    def build(self, config):
        from .cells_nets import build_cell_nets

        return build_cell_nets(config.variant, len(config.protein_names), config.latent_dim, config.shape_latent,
                               config.height, config.width, config.base_width, config.critic_width,
                               critic_batch_norm=config.loss == "dcgan")

    def channels(self, config):
        colours = [c for c in PROTEIN_COLOURS if c != config.shape_colormap]
        return [Channel(config.shape_name, config.shape_colormap)] + \
            [Channel(name, colours[i % len(colours)]) for i, name in enumerate(config.protein_names)]

    def inputs(self, config):
        return [Input("latent", LATENT, train=False, run=True, help="drawn from a seed"),
                Input("image", IMAGE, train=True, run=False,
                      help="cell crops: (shape, protein) per class sub-folder, or (shape, protein 1..k)"),
                Input("class", CLASS, train=True, run=False, help="the protein of each crop (its sub-folder)")]

    def outputs(self, config):
        return [Output("cell", IMAGE, tuple(self.channels(config)),
                       help="the shape channel, then one channel per protein")]

    def controls(self, config):
        controls = [Control("protein", "class", default=0, choices=(ALL_PROTEINS,) + config.protein_names,
                            help="which protein channel the cell shows (all: every one); the shape is kept")]
        if config.split:
            controls.append(Control("green seed", "seed", minimum=0, maximum=2 ** 31 - 1, default=0, step=1,
                                    help="0: the cell's own proteins; another seed draws new proteins "
                                         "for the same shape"))
        return controls

    # -- decode --------------------------------------------------------------------------------------------
    def decode(self, nets, config, state, controls):
        import torch

        z = state[LATENT]
        n = len(z)
        if config.split:
            z = with_green_seed(z, config, per_sample(controls.get("green seed", 0), n, torch.long))
        images = nets["generator"](z)
        protein = per_sample(controls.get("protein", 0), n, torch.long).to(images.device)
        index = torch.arange(1, images.shape[1], device=images.device)
        keep = (protein[:, None] == 0) | (protein[:, None] == index[None])
        proteins = torch.where(keep[:, :, None, None], images[:, 1:], torch.full_like(images[:, 1:], -1.0))
        return {"cell": torch.cat([images[:, :1], proteins], 1)}

    # -- data ----------------------------------------------------------------------------------------------
    def prepare_data(self, data, config):
        """Cells -> TrainingData: "image" (one-protein pairs, or 1 + k channels for the multi-channel
        model), "class", and for the multi-channel model "pair" (its real one-protein image).

        With ``config.proteins`` empty the proteins are named from the data's classes (the
        config is completed here, before the model is built).
        """
        import torch

        from ..core.dataset import Field, TrainingData

        images, classes, names = _unpack(data)
        scaled = _scaled(images, (config.height, config.width))
        constant = classes is None or len(np.unique(classes)) <= 1
        k_config = len(config.proteins)
        rgb = scaled.shape[1] in (3, 4) and not scaled[:, 2].any()  # an RGB(A) PNG: its blue is empty
        multi = constant and scaled.shape[1] > 2 and not rgb and (scaled.shape[1] == 1 + k_config or not k_config)
        if multi:  # multi-channel crops: every protein of every cell
            k = scaled.shape[1] - 1
            pairs = np.concatenate([scaled[:, [0, 1 + c]] for c in range(k)])
            pair_classes = np.repeat(np.arange(k), len(scaled))
        else:
            pairs = scaled[:, :2]  # red/green of RGB crops; channels past the protein are ignored
            pair_classes = np.zeros(len(scaled), np.int64) if classes is None else classes
            k = max(int(pair_classes.max()) + 1, len(names or ()), 1)
        _name_proteins(config, k, names if not multi else None)
        k = len(config.protein_names)
        if int(pair_classes.max()) >= k:
            raise DataError(f"The data has {int(pair_classes.max()) + 1} protein classes but the model has {k} "
                            f"({', '.join(config.protein_names)}).")
        description = f"{len(pairs)} cells of {k} protein class(es)"
        if config.variant != "multichannel":
            return TrainingData({"image": Field(torch.from_numpy(pairs * 2 - 1), spatial=2),
                                 "class": torch.from_numpy(pair_classes.astype(np.int64))}, description)
        if multi:
            full = scaled
            own = np.arange(len(scaled)) % k  # the real pair kept beside each crop, classes in turn
        else:
            from ..data.cells import synthetic_multichannel

            full, own = synthetic_multichannel(pairs, pair_classes, k), pair_classes
        pair = np.stack([full[:, 0], full[np.arange(len(full)), 1 + own]], 1)
        return TrainingData({"image": Field(torch.from_numpy(full * 2 - 1), spatial=2),
                             "pair": Field(torch.from_numpy(pair * 2 - 1), spatial=2),
                             "class": torch.from_numpy(own.astype(np.int64))}, description)

    # -- training ------------------------------------------------------------------------------------------
    def default_hparams(self) -> dict[str, Any]:
        # Osokin et al.: WGAN-GP Adam 1e-4 (0, 0.9), 5 critic steps, lambda 10, batch 64 per class;
        # DCGAN loss Adam 2e-4 (0.5, 0.999) (lr none and betas () pick these by loss; the paper's
        # DCGAN runs used n_critic=1); random horizontal and vertical flips.
        return {"lr": None, "betas": (), "n_critic": 5, "gp_weight": 10.0, "batch_size": 64,
                "flip_axes": (-2, -1)}

    def make_optimizers(self, nets, hparams):
        import torch

        lr = hparams.get("lr") or 1e-4
        betas = tuple(hparams.get("betas") or (0.0, 0.9))
        return {"generator": torch.optim.Adam(nets["generator"].parameters(), lr, betas=betas),
                "critic": torch.optim.Adam(nets["critics"].parameters(), lr, betas=betas)}

    def train_step(self, nets, optimizers, next_batch: Callable, ctx):
        import torch

        from ..nn import losses

        config, hp = ctx.config, ctx.hparams
        kind = LOSSES[config.loss]
        lr, betas = OPTIMISER[config.loss]
        lr, betas = float(hp.get("lr") or lr), tuple(hp.get("betas") or betas)
        for optimizer in optimizers.values():  # by loss, every step: a resumed run keeps them too
            for group in optimizer.param_groups:
                group["lr"], group["betas"] = lr, betas
        gen, critics = nets["generator"], nets["critics"]
        opt_g, opt_d = optimizers["generator"], optimizers["critic"]
        size = int(hp.get("batch_size", 64))
        noise = lambda n: self.sample_latent(config, n, ctx.rng).to(ctx.device)  # noqa: E731
        for _ in range(int(hp.get("n_critic", 5))):
            reals = self._real_sets(next_batch, config, len(critics), size)
            with torch.no_grad():
                fake = gen(noise(max(len(r) for r in reals if r is not None)))
            parts = []
            for c, real in enumerate(reals):
                if real is None:
                    continue
                fake_c = _critic_view(fake, c, config)[:len(real)]
                parts.append(losses.critic_objective(kind, critics[c], real, fake_c, hp.get("gp_weight", 10.0),
                                                     generator=ctx.rng))
            loss_d = torch.stack(parts).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        fake = gen(noise(size))
        present = [c for c, r in enumerate(reals) if r is not None]
        loss_g = torch.stack([losses.generator_loss(kind, critics[c](_critic_view(fake, c, config)))
                              for c in present]).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return {"critic": loss_d.item(), "generator": loss_g.item()}

    @staticmethod
    def _real_sets(next_batch, config, critics: int, size: int) -> list:
        """Real batches per critic: one batch per class (k draws, split by class) or one multi-channel batch."""
        import torch

        if config.variant == "multichannel":
            return [next_batch()["image"]]
        pools: list[list] = [[] for _ in range(critics)]
        for _ in range(critics):  # one batch per class on average, as the reference code draws
            batch = next_batch()
            for c in range(critics):
                pools[c].append(batch["image"][batch["class"] == c])
        reals = [torch.cat(p)[:size] for p in pools]
        return [r if len(r) else None for r in reals]

    # -- metrics -------------------------------------------------------------------------------------------
    def metrics(self, model, real, n, seed, metric_set=None):
        from ..metrics.cells import PAPER_C2ST, QUICK_C2ST, model_c2st, reconstruction_metrics, real_pairs

        metric_set = self.check_metric_set(metric_set)
        pairs, classes = real_pairs(real, n)
        if metric_set == "reconstruction":
            return reconstruction_metrics(model, pairs, classes, n=min(n, 16), seed=seed)
        settings = QUICK_C2ST if metric_set == "c2st-quick" else PAPER_C2ST
        return model_c2st(model, pairs, classes, settings, seed=seed).as_metrics(with_real=True)


def _critic_view(fake, c: int, config):
    """What critic ``c`` sees of generated cells: all channels (multi-channel) or (shape, protein c)."""
    return fake if config.variant == "multichannel" else fake[:, [0, 1 + c]]


def with_green_seed(z, config, seeds):
    """``z`` with the protein part (entries ``shape_latent:``) drawn from each non-zero seed in ``seeds``."""
    import torch

    seeds = seeds.to("cpu")
    if not bool((seeds != 0).any()):
        return z
    width = config.latent_dim - config.shape_latent
    drawn = torch.zeros(len(z), width, dtype=z.dtype)
    for seed in torch.unique(seeds[seeds != 0]).tolist():
        generator = torch.Generator().manual_seed(int(seed) % 2 ** 63)
        drawn[seeds == seed] = torch.randn(width, generator=generator).to(z.dtype)
    mask = (seeds != 0)[:, None].to(z.device)
    return torch.cat([z[:, :config.shape_latent], torch.where(mask, drawn.to(z.device), z[:, config.shape_latent:])], 1)


def _unpack(data) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    if not isinstance(data, dict):
        data = {"image": data}
    images = data.get("image")
    if images is None:
        raise DataError("Training the cell family needs cell crops.")
    classes = data.get("class")
    if classes is not None:
        classes = np.asarray(classes).reshape(-1)
        whole = classes.dtype.kind in "uib" or (classes.dtype.kind == "f" and np.all(np.mod(classes, 1) == 0))
        if not whole or (len(classes) and classes.min() < 0):
            raise DataError("Protein classes must be whole numbers from 0.")
        classes = classes.astype(np.int64)
        if len(classes) != len(images):
            raise DataError(f"There are {len(classes)} classes for {len(images)} cells.")
    names = data.get("class_names")
    return np.asarray(images), classes, (list(names) if names else None)


def _name_proteins(config, k: int, names: list[str] | None) -> None:
    """Complete ``config.proteins`` from the data (when empty), or check that the data fits it."""
    if not config.proteins:
        config.proteins = tuple(names) if names else (("protein",) if k == 1 else
                                                       tuple(f"protein {i + 1}" for i in range(k)))
        return
    if names and tuple(names) != tuple(config.proteins):
        raise DataError(f"The data's protein classes ({', '.join(names)}) are not the model's "
                        f"({', '.join(config.proteins)}).")


def _scaled(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crops -> float32 (N, C, *size) in [0, 1]: 8-bit /255, [0, 1] floats as they are, other data by
    each channel's 0.5 / 99.5 percentiles over the set; RGB(A) channels-last moved first."""
    data = images
    if data.ndim == 4 and data.shape[-1] in (2, 3, 4) and data.shape[1] > 4:
        data = np.moveaxis(data, -1, 1)
    if data.ndim != 4 or data.shape[1] < 2 or len(data) == 0:
        raise DataError(f"Cells are images with a shape and at least one protein channel, (N, C, Y, X); "
                        f"got {tuple(np.shape(images))}.")
    if data.dtype.kind not in "uifb":
        raise DataError(f"Cell images must be numeric, not {data.dtype}.")
    if data.dtype == np.uint8:
        scaled = data.astype(np.float32) / 255.0
    else:
        scaled = data.astype(np.float32)
        if not np.isfinite(scaled).all():
            raise DataError("The cell images contain NaN or infinite values.")
        if scaled.min() < 0 or scaled.max() > 1:
            low = np.percentile(scaled, 0.5, axis=(0, 2, 3), keepdims=True)
            high = np.percentile(scaled, 99.5, axis=(0, 2, 3), keepdims=True)
            scaled = np.clip((scaled - low) / np.maximum(high - low, 1e-12), 0, 1)
    if tuple(scaled.shape[2:]) != tuple(size):
        import torch
        import torch.nn.functional as F

        tensor = F.interpolate(torch.from_numpy(np.ascontiguousarray(scaled)), size=size, mode="bilinear",
                               align_corners=False, antialias=True)
        scaled = tensor.clamp(0, 1).numpy()
    return np.ascontiguousarray(scaled, dtype=np.float32)
