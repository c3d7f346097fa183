"""Video 2D+t family: SAVGAN (Manandhar et al., ISBI 2022) and its 3DGAN ablation.

One 3D generator G_V, a 3D video critic D_V and a 2D frame critic D_I trained with
WGAN-GP (REFERENCE section 1). The networks are in :mod:`.savgan_nets`; this
module holds the config, the named presets and the training step (data preparation and
metrics are shared with TGANv2 in :mod:`.video`).

Deliberate differences from the reference code, and why:

- Attention in G_V is :class:`~napari_biogan.nn.attention.SelfAttention` in Nyström
  mode with deterministic segment-mean landmarks (m = 64) and a linear-memory
  product; the reference draws 512 random landmarks per forward and forms the
  N x N matrix. ``attention="full"`` gives exact attention (quadratic memory);
  ``attention="none"`` is the 3DGAN ablation (the same network without any SA
  layer, in G_V and D_V).
- Frame counts that are not a power of two (Moving MNIST: 10 frames) are built by
  doubling T only at the first levels (10 = 5 x 2) and keeping it at the others
  with (3, 4, 4) kernels, rather than generating 16 frames and cropping.
- z is Gaussian (as in the reference code; the paper says uniform).
- D_I's InstanceNorm has no affine parameters; the critics' patch scores are
  averaged to one score per sample (so the gradient penalty is per sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..core.errors import DataError
from ..core.settings import as_number, check_whole_numbers
from ..core.registry import register
from .video import VideoFamily

#: how G_V's transposed convolutions and D_V's convolutions pad time (nn.blocks.time_crop, DownConv3d):
#: "replicate", "reflect" and "circular" leave no frame short of kernel taps in G_V and weigh edge frames
#: fully in D_V; only "circular" averages edge frames in time like the others (nn.blocks.time_crop);
#: "zeros" is the paper's (faint first and last frames). The names of nn.blocks.TIME_PADDINGS (no torch here)
TIME_PADDING = ("replicate", "zeros", "reflect", "circular")
#: G_V's normalisation (nn.blocks.generator_norm): "video" pools each channel over the clip (the
#: paper's InstanceNorm3d), "frame" normalises every frame on its own (no contrast ramp over time)
GENERATOR_NORMS = ("video", "frame")
#: how G_V doubles time (nn.blocks.time_kernel): "transposed" (the paper's k4 s2, even/odd frame
#: checkerboard), "resize" (repeat frames, then k3 s1: frames come in pairs) or "linear" (interpolate
#: frames, then k3 s1)
TIME_UPSAMPLINGS = ("transposed", "resize", "linear")
#: how G_V doubles Y and X: the names of nn.blocks.SPACE_UPSAMPLINGS (no torch here)
SPACE_UPSAMPLINGS = ("transposed", "linear")

ATTENTION_MODES = ("nystrom", "full", "none")


@dataclass
class SavganConfig:
    """Sizes and switches of a SAVGAN / 3DGAN model (recorded in the model card)."""

    frames: int = 16
    height: int = 32
    width: int = 32
    channels: int = 1
    latent_dim: int = 128
    widths: tuple[int, ...] = (128, 64, 32)  # G_V channels, coarse to fine: one x2 up-sampling per width
    critic_widths: tuple[int, ...] = (16, 32, 64, 128)  # D_V
    frame_critic_widths: tuple[int, ...] = (32, 64, 128, 256)  # D_I
    attention: str = "nystrom"  # "nystrom" | "full" | "none" (3DGAN)
    landmarks: int = 64
    attention_blocks: int = 2  # SA after the last N up-blocks of G_V
    #: the start value of G_V's attention weights gamma (0: SAGAN's and the paper's, each block starts as the
    #: identity). With Adam at 1e-4 a gamma moves at most about 1e-4 a step, so short runs that start at 0
    #: end with attention that adds almost nothing (README "SAVGAN vs 3DGAN on T98G cell clips")
    attention_gamma: float = 0.0
    critic_attention_layers: int = 2  # full SA after the last N layers of D_V
    image_critic_weight: float = 50.0  # weight of D_I in the generator loss
    variant: str = "savgan"  # a label: "savgan" or "3dgan"
    preset: str = "custom"
    metric_set: str = ""  # "cells" or "digits" (Moving MNIST); "" lets the family decide
    #: TIME_PADDING: "zeros" (the paper's; faint edge frames), "replicate", "reflect" or "circular" (no frame
    #: short of kernel taps; none yet shown to meet the contrast and AACD targets, README "Video")
    time_padding: str = "zeros"
    generator_norm: str = "video"  # GENERATOR_NORMS; "video" is the paper's
    time_upsampling: str = "transposed"  # TIME_UPSAMPLINGS; "transposed" is the paper's
    #: frames of G_V's start map (0: the paper's, as few as the up-samplings allow; see generator_plan)
    start_frames: int = 0
    #: frames G_V generates beyond each end of the clip and crops away (generate-and-crop), so the
    #: clip's first and last frames have generated neighbours like the others, whatever the padding
    #: (0: the paper's, every generated frame is shown)
    margin_frames: int = 0
    #: D_V also reads each frame's difference from the one before (nn.blocks.with_frame_differences)
    #: beside the frames (False: the paper's critic)
    critic_motion: bool = False
    #: G_V's last N levels (the output layer counts as one) draw each frame from its own features (time
    #: kernel 1), so no linear filter across frames can cross-fade a changing frame's detail with its
    #: neighbours'; only levels that keep the frame count can be (0: the paper's, every level k3 in time).
    #: Measured on T98G: no contrast gained (docs/video_experiments.md "Frames drawn one by one")
    spatial_levels: int = 0
    #: how G_V doubles Y and X (SPACE_UPSAMPLINGS): "transposed" (the paper's k4 s2) or "linear" (bilinear,
    #: then a k3 convolution: no uneven overlap of taps, so no grid printed on every frame)
    space_upsampling: str = "transposed"
    #: G_V adds new detail to every frame of its last level (nn.blocks.FrameNoise: per-pixel noise made from
    #: z, learnt weights from 0): without it nothing in G_V changes faster than its interpolated start map,
    #: and fine detail stays the same from frame to frame
    #: (docs/video_experiments.md "... detail that changes at one speed")
    frame_noise: bool = False

    def __post_init__(self):
        check_whole_numbers(self, ("frames", "height", "width", "channels", "latent_dim"),
                            ("widths", "critic_widths"))
        for name, zero_means in (("start_frames", "the paper's plan"), ("margin_frames", "no extra frames"),
                                 ("spatial_levels", "the paper's generator")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DataError(f"'{name}' must be a whole number (0 for {zero_means}), not {value!r}.")
        self.attention_gamma = as_number("attention_gamma", self.attention_gamma)
        if not math.isfinite(self.attention_gamma):
            raise DataError(f"'attention_gamma' must be a finite number (0 for the paper's), not {self.attention_gamma}.")
        for name in ("critic_motion", "frame_noise"):
            if not isinstance(getattr(self, name), bool):
                raise DataError(f"'{name}' is true or false, not {getattr(self, name)!r}.")
        if self.time_padding not in TIME_PADDING:
            raise DataError(f"Unknown time_padding '{self.time_padding}'; choose one of {', '.join(TIME_PADDING)}.")
        if self.generator_norm not in GENERATOR_NORMS:
            raise DataError(f"Unknown generator_norm '{self.generator_norm}'; "
                            f"choose one of {', '.join(GENERATOR_NORMS)}.")
        if self.time_upsampling not in TIME_UPSAMPLINGS:
            raise DataError(f"Unknown time_upsampling '{self.time_upsampling}'; "
                            f"choose one of {', '.join(TIME_UPSAMPLINGS)}.")
        if self.space_upsampling not in SPACE_UPSAMPLINGS:
            raise DataError(f"Unknown space_upsampling '{self.space_upsampling}'; "
                            f"choose one of {', '.join(SPACE_UPSAMPLINGS)}.")
        if self.attention not in ATTENTION_MODES:
            raise DataError(f"Unknown attention '{self.attention}'; choose one of {', '.join(ATTENTION_MODES)}.")
        self.widths, self.critic_widths = tuple(self.widths), tuple(self.critic_widths)
        self.frame_critic_widths = tuple(self.frame_critic_widths)


_PAPER_NETS = dict(latent_dim=128, widths=(256, 128, 64, 32), critic_widths=(32, 64, 128, 256),
                   frame_critic_widths=(64, 128, 256, 512))

#: named configurations: the paper's two data sets and a CPU-sized model
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(frames=32, height=64, width=64, **_PAPER_NETS),  # tumour-on-chip clips, 3.8 M parameters
    "mmnist": dict(frames=10, height=64, width=64, **_PAPER_NETS),  # Moving MNIST, 10 frames
    "cpu-small": dict(frames=16, height=32, width=32, latent_dim=128, widths=(128, 64, 32),
                      critic_widths=(16, 32, 64, 128), frame_critic_widths=(32, 64, 128, 256)),
}


def savgan_config(preset: str = "cpu-small", attention: str = "nystrom", **overrides: Any) -> SavganConfig:
    """A config from a named preset ("paper", "mmnist", "cpu-small"); ``attention="none"`` is the 3DGAN."""
    if preset not in PRESETS:
        raise DataError(f"Unknown SAVGAN preset '{preset}'; choose one of {', '.join(PRESETS)}.")
    values = {**PRESETS[preset], "attention": attention, "preset": preset,
              "variant": "3dgan" if attention == "none" else "savgan", **overrides}
    return SavganConfig(**values)


@register
class SavganFamily(VideoFamily):
    name = "savgan"
    title = "Video 2D+t (SAVGAN)"
    config_cls = SavganConfig

    def default_config(self, preset: str = "cpu-small", **overrides: Any) -> SavganConfig:
        return savgan_config(preset, **overrides)

    def config_from_dict(self, values):
        # files saved before these switches existed were built the paper's way
        return super().config_from_dict({"time_padding": "zeros", "generator_norm": "video",
                                         "time_upsampling": "transposed", **values})

    def build(self, config):
        from .savgan_nets import build_savgan

        return build_savgan(config)

    def default_hparams(self) -> dict[str, Any]:
        # REFERENCE section 1: Adam (0, 0.9), TTUR 1e-4 / 4e-4, 5 critic steps, GP 10, batch 8.
        # "loss" / "r1_weight": hinge with R1 and fewer critic steps is the usual faster recipe (n_critic 1-2).
        return {"loss": "wgan-gp", "lr_g": 1e-4, "lr_d": 4e-4, "betas": (0.0, 0.9), "n_critic": 5,
                "gp_weight": 10.0, "r1_weight": 0.0, "batch_size": 8, "image_critic_weight": None, "flip_axes": (),
                "ema_decay": 0.0, "diff_augment": ""}

    def make_optimizers(self, nets, hparams):
        import torch

        betas = tuple(hparams["betas"])
        critics = list(nets["video_critic"].parameters()) + list(nets["frame_critic"].parameters())
        # One Adam over both critics equals two (Adam is per parameter); both use the critics' lr.
        return {"generator": torch.optim.Adam(nets["generator"].parameters(), hparams["lr_g"], betas=betas),
                "critic": torch.optim.Adam(critics, hparams["lr_d"], betas=betas)}

    def train_step(self, nets, optimizers, next_batch: Callable, ctx):
        weight = ctx.hparams.get("image_critic_weight")  # None: the config's weight
        weight = float(ctx.config.image_critic_weight if weight is None else weight)
        return savgan_step(nets, optimizers, lambda: next_batch()["image"], ctx.hparams, ctx.rng, weight,
                           lambda n: self.sample_latent(ctx.config, n, ctx.rng))


def random_frames(videos, generator):
    """One random frame per video: (N, C, T, Y, X) -> (N, C, Y, X)."""
    import torch

    index = torch.randint(videos.shape[2], (len(videos),), generator=generator).to(videos.device)
    return videos[torch.arange(len(videos), device=videos.device), :, index]


def savgan_step(nets, optimizers, next_batch: Callable, hparams, generator, image_critic_weight: float,
                sample_noise: Callable) -> dict[str, float]:
    """``n_critic`` updates of D_V and D_I (loss + GP in one step each), then one G_V update.

    ``next_batch()`` gives real videos; ``sample_noise(n)`` draws n latents from ``generator``.
    ``hparams["loss"]`` is one of nn.losses.LOSSES (the paper's "wgan-gp" adds its gradient penalty,
    ``gp_weight``); ``r1_weight`` > 0 adds R1 on the real clips and frames, for any loss.
    ``hparams["diff_augment"]`` (e.g. "shift,cutout"; "" off, the paper's) passes real and generated
    clips through the same kind of random augmentation before both critics (nn.augment).
    """
    import torch

    from ..nn import losses
    from ..nn.augment import augment_policy, diff_augment

    gen, d_video, d_frame = nets["generator"], nets["video_critic"], nets["frame_critic"]
    critics = (d_video, d_frame)
    kind = hparams.get("loss", "wgan-gp")
    gp_weight, r1_weight = float(hparams["gp_weight"]), float(hparams.get("r1_weight", 0.0))
    policy = augment_policy(hparams.get("diff_augment", ""))

    def seen(videos):  # what the critics see: the clips through DiffAugment, when asked for
        return diff_augment(videos, policy, generator) if policy else videos

    def noise(n, device):
        return sample_noise(n).to(device)

    def critic_objective(critic, real, fake):  # fake first, as the paper's step always scored them
        return losses.critic_objective(kind, critic, real, fake, gp_weight, r1_weight, generator, fake_first=True)

    for critic in critics:
        critic.requires_grad_(True)
    for _ in range(int(hparams.get("n_critic", 5))):
        real = next_batch()
        with torch.no_grad():
            fake = gen(noise(len(real), real.device))
        real, fake = seen(real), seen(fake)
        loss_v = critic_objective(d_video, real, fake)
        loss_i = critic_objective(d_frame, random_frames(real, generator), random_frames(fake, generator))
        optimizers["critic"].zero_grad(set_to_none=True)
        (loss_v + loss_i).backward()
        optimizers["critic"].step()

    for critic in critics:  # the G step needs gradients through the critics, not of their weights
        critic.requires_grad_(False)
    fake = seen(gen(noise(len(real), real.device)))
    loss_g = (losses.generator_loss(kind, d_video(fake))
              + image_critic_weight * losses.generator_loss(kind, d_frame(random_frames(fake, generator))))
    optimizers["generator"].zero_grad(set_to_none=True)
    loss_g.backward()
    optimizers["generator"].step()
    for critic in critics:
        critic.requires_grad_(True)
    return {"critic_video": loss_v.item(), "critic_frame": loss_i.item(), "generator": loss_g.item()}


__all__ = ["SavganConfig", "SavganFamily", "PRESETS", "savgan_config", "savgan_step", "random_frames",
           "ATTENTION_MODES"]
