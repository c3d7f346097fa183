"""Latent-space tools: interpolation paths, keyframes, principal directions (GANSpace-style)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch


def lerp(a: "torch.Tensor", b: "torch.Tensor", t: float) -> "torch.Tensor":
    return a + (b - a) * t


def slerp(a: "torch.Tensor", b: "torch.Tensor", t: float) -> "torch.Tensor":
    """Spherical interpolation: keeps Gaussian latents at a typical norm along the path."""
    import torch

    a_n, b_n = a / a.norm(), b / b.norm()
    omega = torch.arccos(torch.clamp((a_n * b_n).sum(), -1.0, 1.0))
    if omega.abs() < 1e-6:
        return lerp(a, b, t)
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def keyframe_path(keyframes: Sequence["torch.Tensor"], steps_per_segment: int, method: str = "slerp"
                  ) -> "torch.Tensor":
    """Latents along a path through 2+ keyframes: (segments * steps + 1, *latent_shape)."""
    import torch

    if len(keyframes) < 2:
        raise ValueError("An interpolation path needs at least two keyframes.")
    step = slerp if method == "slerp" else lerp
    frames = []
    for a, b in zip(keyframes[:-1], keyframes[1:]):
        for i in range(steps_per_segment):
            frames.append(step(a, b, i / steps_per_segment))
    frames.append(keyframes[-1])
    return torch.stack(frames)


def principal_directions(features: "torch.Tensor", z: "torch.Tensor", k: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """GANSpace: PCA of early generator activations, mapped back to latent space.

    ``features`` (n, F) are activations for latents ``z`` (n, D). The principal
    components of the features are regressed onto z (least squares), giving k
    unit directions in latent space, ordered by explained variance. Returns
    (directions (k, D), standard deviation of each component's coordinate in z units).
    """
    import torch

    feats = features.reshape(len(features), -1).double()
    feats = feats - feats.mean(0)
    _, _, v = torch.linalg.svd(feats, full_matrices=False)
    k = min(k, v.shape[0], z.shape[1])
    coords = feats @ v[:k].T  # (n, k) coordinates along each component
    coords = coords / coords.std(0).clamp_min(1e-12)
    zc = (z.reshape(len(z), -1).double() - z.reshape(len(z), -1).double().mean(0))
    # z ~ coords @ W: W[i] is the latent direction that moves component i by one std.
    w = torch.linalg.lstsq(coords, zc).solution  # (k, D)
    norms = w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (w / norms).float(), norms.squeeze(1).float()
