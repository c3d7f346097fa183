"""Adversarial losses shared by every family: WGAN-GP, hinge and non-saturating BCE, and the two
gradient penalties (WGAN-GP's on interpolates, R1 on real samples)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("wgan-gp", "hinge", "bce")


def unknown_loss(kind: str) -> str:
    """The one sentence for a loss name that is not in :data:`LOSSES`."""
    return f"Unknown loss '{kind}'; choose one of {', '.join(LOSSES)}."


def critic_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The critic's loss on real and fake scores (any shape; averaged)."""
    if kind == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    if kind == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    if kind == "bce":
        return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    raise ValueError(unknown_loss(kind))


def generator_loss(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    if kind in ("wgan-gp", "hinge"):
        return -d_fake.mean()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    raise ValueError(unknown_loss(kind))


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """WGAN-GP: (|grad D(x_hat)| - 1)^2 on random interpolates of real and fake samples."""
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    alpha = torch.rand(shape, generator=generator).to(real.device, real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    grads, = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(real_scores: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al., 2018): half the mean squared norm of the critic's gradient at the real
    samples, ``real`` (which must require grad) having given ``real_scores``; weighted by gamma."""
    grads, = torch.autograd.grad(real_scores.sum(), real, create_graph=True)
    return 0.5 * grads.pow(2).flatten(1).sum(1).mean()


def critic_objective(kind: str, critic, real: torch.Tensor, fake: torch.Tensor, gp_weight: float = 10.0,
                     r1_weight: float = 0.0, generator: torch.Generator | None = None,
                     fake_first: bool = False) -> torch.Tensor:
    """The critic's loss on a real and a fake batch with its penalties: WGAN-GP's gradient penalty
    (``gp_weight``) for "wgan-gp", and R1 on the real batch (``r1_weight`` > 0) for any loss.
    ``fake_first`` scores the fake batch first: a spectrally normalised critic runs a power iteration
    on every call, so the order changes the numbers, and each family keeps the order it trained with."""
    if r1_weight:
        real = real.detach().requires_grad_(True)
    if fake_first:
        d_fake, d_real = critic(fake), critic(real)
    else:
        d_real, d_fake = critic(real), critic(fake)
    loss = critic_loss(kind, d_real, d_fake)
    if kind == "wgan-gp":
        loss = loss + gp_weight * gradient_penalty(critic, real.detach(), fake, generator)
    if r1_weight:
        loss = loss + r1_weight * r1_penalty(d_real, real)
    return loss
