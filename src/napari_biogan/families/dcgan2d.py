"""2D DCGAN / WGAN-GP image family: digits, cells, any small 2D images with 1+ channels.

The Osokin et al. DCGAN (REFERENCE section 2) generalised to any size whose
sides halve evenly down to 3..7 pixels: 32x32 digits, 48x80 yeast cells, 64x64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.errors import DataError
from ..core.settings import check_whole_numbers
from ..core.registry import Channel, Family, register


@dataclass
class Dcgan2dConfig:
    height: int = 32
    width: int = 32
    channels: int = 1
    latent_dim: int = 64
    base_width: int = 32  # channels of the last hidden layer; doubles at each coarser level
    channel_names: tuple[str, ...] = ("image",)
    colormaps: tuple[str, ...] = ("gray",)
    critic_spectral_norm: bool = False  # SNGAN/SAGAN-style critic for hinge/BCE training

    def __post_init__(self):
        check_whole_numbers(self, ("height", "width", "channels", "latent_dim", "base_width"))
        if self.base_width * 2 ** 5 * self.latent_dim > 2 ** 31:
            raise DataError(f"A base width of {self.base_width} makes a network too large to build here.")
        self.channel_names, self.colormaps = tuple(self.channel_names), tuple(self.colormaps)


def upsampling_levels(height: int, width: int) -> int:
    """How many x2 up-samplings reach (height, width) from a start of at least 3 pixels a side."""
    levels = 0
    while height % 2 == 0 and width % 2 == 0 and height // 2 >= 3 and width // 2 >= 3 and levels < 5:
        height, width, levels = height // 2, width // 2, levels + 1
    if levels == 0:
        raise DataError(f"Image size {height}x{width} cannot be built by up-sampling; use even sides.")
    return levels


def _build_nets(cfg: Dcgan2dConfig):
    from torch import nn

    levels = upsampling_levels(cfg.height, cfg.width)
    h0, w0 = cfg.height >> levels, cfg.width >> levels
    widths = [cfg.base_width * 2 ** (levels - 1 - i) for i in range(levels)]

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(cfg.latent_dim, widths[0] * h0 * w0)
            self.start = nn.Sequential(nn.BatchNorm2d(widths[0]), nn.ReLU(True))
            ups = []
            for c_in, c_out in zip(widths[:-1], widths[1:]):
                ups += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
            ups += [nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1), nn.Tanh()]
            self.ups = nn.Sequential(*ups)

        def features(self, z):
            return self.start(self.project(z).view(len(z), widths[0], h0, w0))

        def forward(self, z):
            return self.ups(self.features(z))

    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c_in = [], cfg.channels
            norm = nn.utils.spectral_norm if cfg.critic_spectral_norm else (lambda layer: layer)
            for c_out in reversed(widths):
                layers += [norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
                c_in = c_out
            self.trunk = nn.Sequential(*layers)
            self.head = norm(nn.Linear(c_in * h0 * w0, 1))

        def forward(self, x):
            return self.head(self.trunk(x).flatten(1))

    return nn.ModuleDict({"generator": Generator(), "critic": Critic()})


@register
class Dcgan2dFamily(Family):
    name = "dcgan2d"
    title = "Images 2D (DCGAN / WGAN-GP)"
    config_cls = Dcgan2dConfig
    sample_axes = ("Y", "X")
    ema_nets = ("generator",)

    def build(self, config):
        return _build_nets(config)

    def channels(self, config):
        names = list(config.channel_names) + [f"channel {i}" for i in range(len(config.channel_names), config.channels)]
        maps = list(config.colormaps) + ["gray"] * config.channels
        return [Channel(names[i], maps[i]) for i in range(config.channels)]

    def prepare_data(self, data, config):
        from ..core.dataset import TrainingData

        array = data.get("image") if isinstance(data, dict) else data
        if array is None:
            raise DataError("Training this family needs images.")
        image = prepare_images(array, config.channels, (config.height, config.width))
        return TrainingData({"image": image}, description="images")

    def default_hparams(self) -> dict[str, Any]:
        # Osokin et al. WGAN-GP settings (REFERENCE section 2).
        return {"loss": "wgan-gp", "lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.0, 0.9), "n_critic": 5,
                "gp_weight": 10.0, "batch_size": 64, "flip_axes": (), "ema_decay": 0.0}

    def make_optimizers(self, nets, hparams):
        import torch

        betas = tuple(hparams["betas"])
        return {"generator": torch.optim.Adam(nets["generator"].parameters(), hparams["lr_g"], betas=betas),
                "critic": torch.optim.Adam(nets["critic"].parameters(), hparams["lr_d"], betas=betas)}

    def train_step(self, nets, optimizers, next_batch: Callable, ctx):
        return adversarial_step(nets["generator"], nets["critic"], optimizers["generator"], optimizers["critic"],
                                lambda: next_batch()["image"], ctx.hparams, ctx.rng,
                                lambda n: self.sample_latent(ctx.config, n, ctx.rng))

    def metrics(self, model, real, n, seed, metric_set=None):
        from ..metrics.frechet import frechet_distance, pixel_features

        self.check_metric_set(metric_set)
        n = min(n, len(real))
        fake = model.sample(n, seed=seed, precision="fp32") * 2 - 1
        return {"fd_pixels": frechet_distance(pixel_features(fake), pixel_features(real.head(n)["image"].numpy()))}


def adversarial_step(gen, critic, opt_g, opt_d, next_batch, hparams, generator, noise) -> dict[str, float]:
    """One generator update after ``n_critic`` critic updates (fresh real batch each).

    ``next_batch()`` gives real images; ``noise(n)`` draws n latents (from the loop's RNG).
    """
    import torch

    from ..nn import losses

    kind = hparams["loss"]
    n_critic = int(hparams.get("n_critic", 1))
    for _ in range(n_critic):
        real = next_batch()
        z = noise(len(real)).to(real.device)
        with torch.no_grad():
            fake = gen(z)
        loss_d = losses.critic_objective(kind, critic, real, fake, hparams["gp_weight"], generator=generator)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    z = noise(len(real)).to(real.device)
    loss_g = losses.generator_loss(kind, critic(gen(z)))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return {"critic": loss_d.item(), "generator": loss_g.item()}


def prepare_images(array, channels: int, size: tuple[int, ...]):
    """User images -> float tensor (N, C, *size) in [-1, 1], or a lazy field for data on disk.

    Accepts (N, Y, X) for one channel or (N, C, Y, X) / (N, Y, X, C) for several,
    any numeric dtype; resizes to ``size``; scales by the 0.5 / 99.5 percentiles.
    A lazy source (a memory-mapped ``.npy``, TIFF pages, zarr: :mod:`napari_biogan.data.lazy`)
    gives a lazy :class:`~napari_biogan.core.dataset.Field`: percentiles from 64 evenly
    spaced rows, and only a batch's rows are read and scaled per step.
    """
    from ..core.dataset import Field
    from ..data.lazy import is_lazy, sample_rows

    lazy = is_lazy(array)
    data = array if lazy else np.asarray(array)
    if data.dtype.kind not in "uif" and data.dtype != bool:
        raise DataError(f"Images must be numeric, not {data.dtype}.")
    spatial = len(size)
    if channels == 1 and data.ndim == spatial + 2 and data.shape[-1] in (3, 4) and min(data.shape[1:-1]) > 8:
        raise DataError(f"These images look like RGB colour {tuple(data.shape)}; the model has one channel: "
                        "convert them to grey, or set channels=3.")
    layout = _image_layout(data.shape, channels, spatial, tuple(np.shape(array)))
    if lazy:
        low, high = _scale_limits(sample_rows(data).astype(np.float32))
        return Field(data, spatial=spatial, transform=lambda rows: _scaled(rows, layout, low, high, size))
    low, high = _scale_limits(data.astype(np.float32))
    return _scaled(data, layout, low, high, size)


def _image_layout(shape, channels: int, spatial: int, original) -> str:
    """How user images hold their channels: "none" (N, *S), "first" (N, C, *S) or "last" (N, *S, C)."""
    ndim = len(shape)
    if ndim == spatial + 1 and channels == 1:
        layout = "none"
    elif ndim == spatial + 2 and shape[-1] == channels and shape[1] != channels:
        layout = "last"
    else:
        layout = "first"
    ok = ndim == spatial + (1 if layout == "none" else 2) and shape[0] > 0 and \
        (layout == "none" or shape[1 if layout == "first" else -1] == channels)
    if not ok:
        raise DataError(f"Expected images shaped (N, {'C, ' if channels > 1 else ''}"
                        f"{', '.join('TYX'[-spatial:])}) with {channels} channel(s); got {original}.")
    return layout


def _scale_limits(values: np.ndarray) -> tuple[float, float]:
    if not np.isfinite(values).all():
        raise DataError("The images contain NaN or infinite values.")
    low, high = np.percentile(values, [0.5, 99.5])
    if high <= low:
        raise DataError("The images are constant; there is nothing to learn from.")
    return float(low), float(high)


def _scaled(rows, layout: str, low: float, high: float, size: tuple[int, ...]):
    """Rows of user images -> (n, C, *size) float tensor in [-1, 1]."""
    import torch
    import torch.nn.functional as F

    data = np.asarray(rows, dtype=np.float32)
    if layout == "none":
        data = data[:, None]
    elif layout == "last":
        data = np.moveaxis(data, -1, 1)
    if not np.isfinite(data).all():
        raise DataError("The images contain NaN or infinite values.")
    tensor = torch.from_numpy((np.clip((data - low) / (high - low), 0, 1) * 2 - 1).astype(np.float32))
    if tuple(tensor.shape[2:]) != tuple(size):
        mode = "bilinear" if len(size) == 2 else "trilinear"
        tensor = F.interpolate(tensor, size=size, mode=mode, align_corners=False)
    return tensor.contiguous()
