"""Latent-space tools: interpolation of points, keyframe paths, GANSpace directions, and image -> latent.

A :class:`~napari_biogan.core.contract.Point` is interpolated field by field,
each by its own rule: slerp for latents (Gaussian latents keep a typical norm),
linear for float states and sliders, a jump for choices (class, seed).
:func:`fit_latent` is the one image -> latent call ("find this cell in the model").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from .contract import LATENT, Point
from .errors import DataError

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


# -- GANSpace: principal directions of early generator activations ----------------------------------

@dataclass
class LatentDirections:
    """Principal latent directions of a model (GANSpace): unit vectors and one-std step sizes."""

    directions: Any  # torch.Tensor (k, D)
    scales: Any  # torch.Tensor (k,): the latent distance that moves a component by one std


def gan_space(model, n: int = 512, k: int = 8, seed: int = 0) -> LatentDirections:
    """The leading ``k`` principal directions of ``model``'s early generator activations.

    ``n`` latents from ``seed`` go through ``family.latent_features``; their PCA is
    mapped back to latent space (core.latent.principal_directions).
    """
    import torch

    z = model.latents(n, seed)
    with torch.inference_mode():
        features = model.family.latent_features(model.nets, model.config, z.to(model.device))
    directions, scales = principal_directions(features.float().cpu(), z, k)
    return LatentDirections(directions, scales)


def moved_latent(base, directions: LatentDirections | None, amounts) -> Any:
    """``base`` (1, *latent) plus ``amounts[i]`` standard deviations along direction i."""
    z = base.clone().reshape(1, -1)
    if directions is not None:
        for i, amount in enumerate(list(amounts)[:len(directions.directions)]):
            if amount:
                z += float(amount) * directions.scales[i] * directions.directions[i].to(z.dtype)
    return z.reshape(base.shape)


#: the longest interpolation path rendered at once (a frame is one rendered sample)
MAX_PATH_FRAMES = 100_000


# -- paths through points ---------------------------------------------------------------------------------

def interpolate_point(a: Point, b: Point, t: float, latent_names: Sequence[str] = (LATENT,),
                      choices: Sequence[str] = ()) -> Point:
    """The point a fraction ``t`` of the way from ``a`` to ``b``.

    State tensors named in ``latent_names`` are slerped (per sample), other states
    lerped; control values named in ``choices`` jump to ``b``'s at the segment's
    middle, other numbers are lerped.
    """
    import torch

    if set(a.state) != set(b.state):
        raise DataError("Keyframes of different kinds cannot be joined by a path.")
    state = {}
    for name, va in a.state.items():
        vb = b.state[name]
        if va.shape != vb.shape:
            raise DataError(f"Keyframes differ in the shape of '{name}' ({tuple(va.shape)} vs {tuple(vb.shape)}).")
        if name in latent_names:
            state[name] = torch.stack([slerp(x, y, t) for x, y in zip(va, vb)])
        else:
            state[name] = lerp(va, vb, t)
    controls = {}
    for name in set(a.controls) | set(b.controls):
        va, vb = a.controls.get(name, b.controls.get(name)), b.controls.get(name, a.controls.get(name))
        if name in choices or not isinstance(va, (int, float)) or not isinstance(vb, (int, float)):
            controls[name] = vb if t >= 0.5 else va
        else:
            controls[name] = float(va + (vb - va) * t)
    return Point(state, controls, {"path": True})


def point_path(keyframes: Sequence[Point], steps_per_segment: int, latent_names: Sequence[str] = (LATENT,),
               choices: Sequence[str] = ()) -> Point:
    """One batched point: ``segments * steps + 1`` frames through 2+ keyframes (each of one sample).

    Controls that change along the path become per-frame lists (the model chunks them).
    """
    import torch

    if len(keyframes) < 2:
        raise DataError("An interpolation path needs at least two keyframes.")
    if steps_per_segment < 1:
        raise DataError("A path needs at least one frame per segment.")
    frames_total = (len(keyframes) - 1) * steps_per_segment + 1
    if frames_total > MAX_PATH_FRAMES:
        raise DataError(f"A path of {frames_total} frames is too long; use at most {MAX_PATH_FRAMES} "
                        "(fewer frames per segment or fewer keyframes).")
    frames = []
    for a, b in zip(keyframes[:-1], keyframes[1:]):
        frames += [interpolate_point(a, b, i / steps_per_segment, latent_names, choices)
                   for i in range(steps_per_segment)]
    last = keyframes[-1]
    frames.append(Point(dict(last.state), dict(last.controls)))
    state = {k: torch.cat([f.state[k] for f in frames]) for k in frames[0].state}
    names = set().union(*(f.controls for f in frames))
    controls: dict[str, Any] = {}
    for name in names:
        values = [f.controls.get(name) for f in frames]
        controls[name] = values[0] if all(v == values[0] for v in values) else values
    return Point(state, controls, {"keyframes": [k.describe() for k in keyframes],
                                   "frames_per_segment": steps_per_segment})


# -- image -> latent -------------------------------------------------------------------------------------

@dataclass
class LatentFit:
    """The result of :func:`fit_latent`."""

    latent: Any  # torch.Tensor (1, D): the best restart's latent
    reconstruction: Any  # numpy (1, C, *sample_axes) in [0, 1]
    mse: float  # pixel mean squared error in [0, 1] units
    nll: float  # the latent's negative log-likelihood under N(0, I), per dimension


def fit_latent(model, image, controls: dict[str, Any] | None = None, restarts: int = 4, steps: int = 30,
               seed: int = 0, output: str | None = None) -> LatentFit:
    """The latent whose output best matches ``image`` (C, *sample_axes) in [0, 1]: L-BFGS with restarts.

    All restarts are optimised together (one batch); the pixel MSE picks the best.
    """
    import numpy as np
    import torch

    if not model.has_latent:
        raise DataError(f"The '{model.family.name}' family has no latent to fit.")
    output = output or model.main_output
    target = torch.as_tensor(np.asarray(image, dtype=np.float32))
    ndim = 1 + len(model.family.sample_axes)
    if target.ndim == ndim - 1 and len(model.channels) == 1:
        target = target[None]
    if target.ndim != ndim:
        raise DataError(f"Fitting needs one image shaped (C, {', '.join(model.family.sample_axes)}); "
                        f"got {tuple(target.shape)}.")
    values = model.check_controls(controls)
    nets, config, family = model.nets, model.config, model.family
    z = model.latents(restarts, seed).to(model.device).requires_grad_(True)
    target = target.to(model.device)
    with torch.no_grad():
        made = tuple(family.decode(nets, config, {LATENT: z[:1].detach()}, values)[output].shape[1:])
    if tuple(target.shape) != made:
        raise DataError(f"The image is {tuple(target.shape)} but the model makes {made}; "
                        "resize or crop it first.")
    optimizer = torch.optim.LBFGS([z], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")
    was_training = nets.training
    nets.eval()

    def per_restart_error():
        out = family.decode(nets, config, {LATENT: z}, values)[output].float()
        out = (out.clamp(-1, 1) + 1) / 2
        return ((out - target[None]) ** 2).flatten(1).mean(1)

    def closure():
        optimizer.zero_grad()
        loss = per_restart_error().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        for parameter in nets.parameters():
            parameter.requires_grad_(False)
        try:
            optimizer.step(closure)
        finally:
            for parameter in nets.parameters():
                parameter.requires_grad_(True)
            nets.train(was_training)
    with torch.no_grad():
        errors = per_restart_error()
    best = int(errors.argmin())
    latent = z.detach()[best:best + 1].cpu()
    recon = model.run(Point({LATENT: latent}, values), precision="fp32")[output]
    nll = float(0.5 * (latent ** 2).mean() + 0.5 * np.log(2 * np.pi))
    return LatentFit(latent, recon, float(errors[best]), nll)

