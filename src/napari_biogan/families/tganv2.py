"""Video 2D+t family: TGANv2 (Saito et al., IJCV 2020), SAVGAN's comparison (REFERENCE section 1).

"Train sparsely, generate densely": z (uniform) -> linear -> a ConvLSTM unrolled
over the frames -> per-frame 2D residual up-blocks, one level per block, each
level with its own render layer (to image) and its own 3D residual critic.
During training the frames are subsampled before every level after the first
(every 2nd frame from a random offset 0 or 1), so the high-resolution levels see
few frames and cost little; the real batch goes through the same subsampling and
is average-pooled to each level's size. At generation time every frame goes
through every block and only the last level is rendered.

A faithful but small implementation. Simplifications, deliberate:

- the ConvLSTM gets the projected z as its input at every step (state starts at 0);
- plain BatchNorm in the up-blocks (no conditional BN), no self-attention;
- the level critics are small 3D ResNets (two convs + average pooling per block,
  global mean pooling and a linear head), not the paper's exact widths;
- the same random frame offsets are used for the real and the fake batch of one
  critic step (so the gradient penalty can interpolate between them);
- WGAN-GP (lambda 10), Adam 1e-4, betas (0, 0.9), 5 critic steps, as in REFERENCE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..core.errors import DataError
from ..core.settings import check_whole_numbers
from ..core.registry import register
from .video import VideoFamily


@dataclass
class Tganv2Config:
    """Sizes of a TGANv2 model (recorded in the model card)."""

    frames: int = 16
    height: int = 32
    width: int = 32
    channels: int = 1
    latent_dim: int = 256
    widths: tuple[int, ...] = (128, 64, 32, 16)  # [0]: ConvLSTM at the start map; then one up-block (level) each
    critic_widths: tuple[int, ...] = (32, 64, 128)  # per critic block, coarse-to-fine levels share them
    preset: str = "custom"
    metric_set: str = ""  # "cells" or "digits" (Moving MNIST); "" lets the family decide

    def __post_init__(self):
        check_whole_numbers(self, ("frames", "height", "width", "channels", "latent_dim"),
                            ("widths", "critic_widths"))
        self.widths, self.critic_widths = tuple(self.widths), tuple(self.critic_widths)
        levels = len(self.widths) - 1
        if levels < 1 or not self.critic_widths:
            raise DataError("TGANv2 needs at least two generator widths and one critic width.")
        if self.frames < 1 or any(s % 2 ** levels or s // 2 ** levels < 2 for s in (self.height, self.width)):
            raise DataError(f"A {self.frames}x{self.height}x{self.width} TGANv2 needs height and width that are "
                            f"multiples of {2 ** levels} and at least {2 ** (levels + 1)}.")


PRESETS: dict[str, dict[str, Any]] = {
    "cpu-small": dict(frames=16, height=32, width=32, widths=(128, 64, 32, 16), critic_widths=(32, 64, 128)),
    "mmnist": dict(frames=10, height=64, width=64, widths=(256, 128, 64, 32, 16), critic_widths=(32, 64, 128, 256)),
    "paper": dict(frames=32, height=64, width=64, widths=(256, 128, 64, 32, 16), critic_widths=(32, 64, 128, 256)),
}


def tganv2_config(preset: str = "cpu-small", **overrides: Any) -> Tganv2Config:
    """A config from a named preset ("cpu-small", "mmnist", "paper")."""
    if preset not in PRESETS:
        raise DataError(f"Unknown TGANv2 preset '{preset}'; choose one of {', '.join(PRESETS)}.")
    return Tganv2Config(**{**PRESETS[preset], "preset": preset, **overrides})


def level_frames(offsets: list[int], frames: int) -> list[list[int]]:
    """The original frame indices each level sees for the given per-level offsets (level 0 sees all)."""
    kept, result = list(range(frames)), []
    for level, offset in enumerate(offsets):
        if level > 0:
            kept = kept[offset::2] or kept[:1]
        result.append(kept)
    return result


def _build_nets(cfg: Tganv2Config):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from ..nn.blocks import ConvLSTMCell, ResDown3d, ResUp2d

    levels = len(cfg.widths) - 1
    h0, w0, c0 = cfg.height >> levels, cfg.width >> levels, cfg.widths[0]

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.latent_dim = cfg.latent_dim
            self.project = nn.Linear(cfg.latent_dim, c0 * h0 * w0)
            self.lstm = ConvLSTMCell(c0, c0)
            self.blocks = nn.ModuleList(ResUp2d(a, b) for a, b in zip(cfg.widths[:-1], cfg.widths[1:]))
            self.renders = nn.ModuleList(
                nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, cfg.channels, 3, 1, 1))
                for c in cfg.widths[1:])

        def features(self, z):
            return self.project(z).view(len(z), c0, h0, w0)

        def forward(self, z, offsets: list[int] | None = None):
            """Dense video (B, C, T, Y, X); with per-level ``offsets``: the sparse level videos (a list)."""
            x, state, steps = self.features(z), None, []
            for _ in range(cfg.frames):
                state = self.lstm(x, state)
                steps.append(state[0])
            h = torch.stack(steps, 1)  # (B, T, C0, h0, w0)
            outputs = []
            for level, (block, render) in enumerate(zip(self.blocks, self.renders)):
                if offsets is not None and level > 0:
                    h = h[:, offsets[level]::2] if h.shape[1] > 1 else h
                b, t = h.shape[:2]
                y = block(h.flatten(0, 1))
                h = y.view(b, t, *y.shape[1:])
                if offsets is not None or level == levels - 1:
                    image = torch.tanh(render(y))
                    outputs.append(image.view(b, t, *image.shape[1:]).transpose(1, 2))
            return outputs if offsets is not None else outputs[-1]

    class LevelCritic(nn.Module):
        """3D ResNet critic of one level's videos; one down-block per halving down to 4 pixels."""

        def __init__(self, size: int):
            super().__init__()
            blocks, c_in, n = [], cfg.channels, 0
            while size > 4 * 2 ** n:
                n += 1
            for i in range(max(n, 1)):
                c_out = cfg.critic_widths[min(i, len(cfg.critic_widths) - 1)]
                blocks.append(ResDown3d(c_in, c_out, pool=True))
                c_in = c_out
            self.blocks = nn.Sequential(*blocks)
            self.head = nn.Linear(c_in, 1)

        def forward(self, x):
            h = F.leaky_relu(self.blocks(x), 0.2)
            return self.head(h.mean(dim=(2, 3, 4))).squeeze(1)

    sizes = [min(h0, w0) * 2 ** (level + 1) for level in range(levels)]
    return nn.ModuleDict({"generator": Generator(), "critics": nn.ModuleList(LevelCritic(s) for s in sizes)})


@register
class Tganv2Family(VideoFamily):
    name = "tganv2"
    title = "Video 2D+t (TGANv2)"
    config_cls = Tganv2Config

    def default_config(self, preset: str = "cpu-small", **overrides: Any) -> Tganv2Config:
        return tganv2_config(preset, **overrides)

    def build(self, config):
        return _build_nets(config)

    def sample_latent(self, config, n, generator):
        import torch

        return torch.rand(n, config.latent_dim, generator=generator) * 2 - 1  # uniform, as in TGANv2

    def default_hparams(self) -> dict[str, Any]:
        return {"lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.0, 0.9), "n_critic": 5, "gp_weight": 10.0,
                "batch_size": 8, "flip_axes": (), "ema_decay": 0.0}

    def make_optimizers(self, nets, hparams):
        import torch

        betas = tuple(hparams["betas"])
        return {"generator": torch.optim.Adam(nets["generator"].parameters(), hparams["lr_g"], betas=betas),
                "critic": torch.optim.Adam(nets["critics"].parameters(), hparams["lr_d"], betas=betas)}

    def train_step(self, nets, optimizers, next_batch: Callable, ctx):
        return tganv2_step(nets, optimizers, lambda: next_batch()["image"], ctx.hparams, ctx.rng,
                           lambda n: self.sample_latent(ctx.config, n, ctx.rng))


def real_levels(real, offsets: list[int], sizes: list[tuple[int, int]]):
    """The real batch as each level sees it: the level's frames, average-pooled to its size."""
    import torch.nn.functional as F

    views = []
    for frames, size in zip(level_frames(offsets, real.shape[2]), sizes):
        clip = real[:, :, frames]
        if tuple(clip.shape[-2:]) != tuple(size):
            clip = F.adaptive_avg_pool3d(clip, (len(frames), *size))
        views.append(clip)
    return views


def tganv2_step(nets, optimizers, next_batch: Callable, hparams, generator, sample_noise: Callable
                ) -> dict[str, float]:
    """``n_critic`` updates of all level critics (WGAN-GP), then one sparse generator update.

    ``sample_noise(n)`` draws n latents (the family's uniform latent) from ``generator``.
    """
    import torch

    from ..nn.losses import gradient_penalty

    gen, critics = nets["generator"], nets["critics"]
    gp_weight, levels = float(hparams["gp_weight"]), len(critics)

    def noise(n, device):
        return sample_noise(n).to(device)

    def offsets():
        return [0] + torch.randint(2, (levels - 1,), generator=generator).tolist()

    critics.requires_grad_(True)
    for _ in range(int(hparams.get("n_critic", 5))):
        real = next_batch()
        chosen = offsets()
        with torch.no_grad():
            fakes = gen(noise(len(real), real.device), chosen)
        reals = real_levels(real, chosen, [tuple(f.shape[-2:]) for f in fakes])
        loss_d = sum(critic(f).mean() - critic(r).mean() + gp_weight * gradient_penalty(critic, r, f, generator)
                     for critic, r, f in zip(critics, reals, fakes))
        optimizers["critic"].zero_grad(set_to_none=True)
        loss_d.backward()
        optimizers["critic"].step()

    critics.requires_grad_(False)
    fakes = gen(noise(len(real), real.device), offsets())
    loss_g = -sum(critic(f).mean() for critic, f in zip(critics, fakes))
    optimizers["generator"].zero_grad(set_to_none=True)
    loss_g.backward()
    optimizers["generator"].step()
    critics.requires_grad_(True)
    return {"critic": loss_d.item(), "generator": loss_g.item()}
