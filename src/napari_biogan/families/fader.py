"""Fader Networks for brain MRI: sliders that move a slice's attributes (diagnosis, age, sex, slice position).

An encoder maps a slice to a feature map from which a latent discriminator must not be
able to tell the attributes (the encoder is trained to fool it, with a weight that ramps
up from 0: the lambda warm-up); the decoder gets the attribute code at every layer, so
it alone decides how the attributes look. With ``lambda_classifier`` > 0 a classifier
discriminator (trained on real slices) also asks that reconstructed slices show their
attributes and slices decoded with flipped attributes the flipped ones: the report's improvement. Attributes are declared in
the config (``attributes``: ``name:kind[:values]``, see data/attributes.py), binary,
categorical (ordered or not) or continuous, each with its own loss and flip procedure.

Running: a slice (or a stack) is scaled as training data is (percentiles to [-1, 1],
padded square, resized: ``prepare_source``), encoded ONCE into its feature map plus an
estimate of its own attributes; every slider change only decodes. Outputs: ``image``
(the slice with the slider values, at the source's size) and ``difference`` (that image
minus the reconstruction with the slice's own estimated attributes: signed, never clamped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.contract import ATTRIBUTES, IMAGE, SIGNED, Channel, Control, Input, Output
from ..core.errors import DataError
from ..core.registry import Family, per_sample, register
from ..data.attributes import CATEGORICAL, CONTINUOUS, ORDERED, AttributeSpec, parse_specs, table_from_columns
from ..data.mri import DEMENTIA_ATTRIBUTE, PERCENTILES

NAME = "fader"
CLASSIFIER_TARGETS = ("class", "real")


@dataclass
class FaderConfig:
    #: one declaration per attribute: name:kind[:values] (binary, categorical, ordered, continuous)
    attributes: tuple[str, ...] = (DEMENTIA_ATTRIBUTE,)
    size: int = 64  # slices are padded square and resized to size x size (64 or 128)
    channels: int = 1
    depth: int = 4  # encoder layers: the latent map is size / 2**depth pixels a side
    base_width: int = 32
    max_width: int = 256
    decoder_dropout: float = 0.1
    latent_dropout: float = 0.3
    hidden: int = 256  # latent discriminator MLP
    estimator_width: int = 16  # the attribute estimator / classifier discriminator
    #: a PatchGAN on decoded slices against blur (0 = none, the paper's network); weighted by the
    #: ``lambda_patch`` hyper-parameter
    patch_width: int = 0
    #: what the classifier discriminator asks of decoded slices: "class" (the report's: a confident read of
    #: the requested class, one-hot) or "real" (read as real slices of that class are read, on average:
    #: :class:`~.fader_nets.RealPosteriors`; against edits that overshoot the class)
    classifier_target: str = "class"
    percentiles: tuple[float, ...] = PERCENTILES
    restore_size: bool = True  # outputs at the source slice's size (they overlay its layer)
    #: slices of a rare class of the first class attribute weigh in the losses as if the class made up
    #: this fraction of the data (the dementia data has 1% moderate slices)
    min_class_fraction: float = 0.05
    #: how training slices are taken from NIfTI volumes (data/inputs.py, data/mri.py): the plane, which
    #: slices ("centre": ``slab`` slices around the brain's centre; "all": every ``slice_step``-th slice
    #: of the brain; an index "40" or a range "30-50")
    orientation: str = "axial"
    slices: str = "centre"
    slab: int = 1
    slice_step: int = 1

    def __post_init__(self):
        if isinstance(self.attributes, str):
            self.attributes = (self.attributes,)
        self.attributes = tuple(str(a) for a in self.attributes)
        parse_specs(self.attributes)  # ValueError with a plain sentence when malformed
        if self.size < 8 or self.size & (self.size - 1):
            raise ValueError(f"size must be a power of two of at least 8 (64 or 128), not {self.size}")
        if not 1 <= self.depth or 2 ** self.depth > self.size:
            raise ValueError(f"depth must be 1 to {self.size.bit_length() - 1} for size {self.size}")
        for name in ("channels", "base_width", "max_width", "hidden", "estimator_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.patch_width < 0:
            raise ValueError("patch_width must be 0 (no patch discriminator) or more")
        if self.classifier_target not in CLASSIFIER_TARGETS:
            raise ValueError(f"classifier_target is one of {', '.join(CLASSIFIER_TARGETS)}, "
                             f"not '{self.classifier_target}'")
        for name in ("decoder_dropout", "latent_dropout", "min_class_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 0 and below 1")
        from ..data.mri_volumes import ORIENTATIONS, parse_slices

        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"orientation is one of {', '.join(ORIENTATIONS)}, not '{self.orientation}'")
        if isinstance(self.slices, (tuple, list)) and len(self.slices) == 2:  # --set slices=30/50
            self.slices = f"{self.slices[0]}-{self.slices[1]}"
        self.slices = str(self.slices)
        try:
            parse_slices(self.slices)
        except DataError as err:
            raise ValueError(str(err)) from None
        if self.slab < 1 or self.slice_step < 1:
            raise ValueError("slab and slice_step must be at least 1")
        if len(self.percentiles) != 2 or not 0 <= self.percentiles[0] < self.percentiles[1] <= 100:
            raise ValueError("percentiles are two numbers from 0 to 100, the lower first (e.g. 0.5/99.5)")

    @property
    def specs(self) -> tuple[AttributeSpec, ...]:
        return parse_specs(self.attributes)


def attribute_control(spec: AttributeSpec) -> Control:
    """One control per attribute: unordered classes are a choice; the rest are sliders reaching beyond
    the training range (ordered classes: a float over the class index, codes mixed in between)."""
    if spec.kind == CATEGORICAL:
        return Control(spec.name, "class", choices=spec.classes, default=0,
                       help=f"{spec.name}: one of {', '.join(spec.classes)}")
    low, high = spec.slider_range()
    if spec.kind == CONTINUOUS:
        width = spec.high - spec.low
        return Control(spec.name, "attribute", low, high, default=(spec.low + spec.high) / 2, step=width / 100,
                       help=f"{spec.name}: trained on {spec.low:g} to {spec.high:g}; beyond that is extrapolated")
    names = ", ".join(f"{i} = {c}" for i, c in enumerate(spec.classes))
    help_text = (f"{spec.name}: {names}; values between classes mix their codes, values beyond "
                 f"{'0 and 1' if spec.kind != ORDERED else 'the first and last class'} extrapolate")
    return Control(spec.name, "attribute", low, high, default=0.0, step=0.05, choices=spec.classes, help=help_text)


@register
class FaderFamily(Family):
    name = NAME
    title = "MRI attributes (Fader Networks)"
    config_cls = FaderConfig
    sample_axes = ("Y", "X")
    inference_nets = ("encoder", "decoder")
    metric_sets = ("attributes",)

    # -- networks -----------------------------------------------------------------------------------
    def build(self, config):
        from torch import nn

        from .fader_nets import (FaderDecoder, FaderEncoder, LatentDiscriminator, PatchDiscriminator,
                                 RealPosteriors, code_size, widths)

        specs = config.specs
        layer_widths = widths(config.base_width, config.max_width, config.depth)
        size = code_size(specs)
        nets = {"encoder": FaderEncoder(config.channels, config.size, layer_widths, size, config.estimator_width),
                "decoder": FaderDecoder(config.channels, layer_widths, size, config.decoder_dropout),
                "latent_discriminator": LatentDiscriminator(layer_widths[-1], config.size // 2 ** config.depth,
                                                            size, config.hidden, config.latent_dropout)}
        if config.patch_width:
            nets["patch_discriminator"] = PatchDiscriminator(config.channels, config.patch_width)
        if config.classifier_target == "real":  # training state only (not in inference_nets)
            nets["real_posteriors"] = RealPosteriors(specs)
        return nn.ModuleDict(nets)

    def channels(self, config):
        return [Channel("image", "gray")] * config.channels

    # -- the contract -------------------------------------------------------------------------------
    def inputs(self, config):
        names = ", ".join(s.name for s in config.specs)
        return [Input("image", IMAGE, train=True, run=True, help="brain MRI slices: one slice or a stack"),
                Input("attributes", ATTRIBUTES, train=True, run=False,
                      help=f"a table with the attributes {names} of every slice (CSV with a 'file' or "
                           "subject id column; a class attribute can also come from class sub-folders)")]

    def outputs(self, config):
        return [Output("image", IMAGE, tuple(self.channels(config)), help="the slice with the attribute values set"),
                Output("difference", SIGNED, (Channel("difference", "PiYG"),),
                       help="the edited slice minus its reconstruction with its own (estimated) attributes")]

    def controls(self, config):
        return [attribute_control(s) for s in config.specs]

    def prepare_source(self, config, source):
        """A user's slices (Y, X), (N, Y, X) or (N, C, Y, X), raw intensities -> scaled as training data,
        with their original size kept so the outputs come back at it."""
        import torch

        from ..data.mri import scale_slices

        if "image" not in source:
            raise DataError("The Fader family runs on an image: a slice or a stack of slices.")
        image = source["image"]
        height, width = int(image.shape[-2]), int(image.shape[-1])
        scaled = scale_slices(image, config.size, config.percentiles)
        size = torch.tensor([[height, width]], dtype=torch.float32).expand(len(scaled), 2).clone()
        return {**source, "image": scaled, "size": size}

    def encode(self, nets, config, source):
        """Slices (N, 1, S, S) in [-1, 1] -> their feature map and their estimated attributes."""
        from ..data.mri import resize_square
        from .fader_nets import predict_attributes

        image = source["image"].float()
        if image.ndim == 3:
            image = image[:, None]
        if image.shape[-1] != config.size or image.shape[-2] != config.size:
            image = resize_square(image, config.size)  # e.g. a tile, already scaled
        state = {"features": nets["encoder"](image),
                 "original": predict_attributes(config.specs, nets["encoder"].estimate(image))}
        if "size" in source:
            state["size"] = source["size"].float()
        return state

    def decode(self, nets, config, state, controls):
        import torch

        from ..data.mri import unsquare
        from .fader_nets import attribute_code

        features = state["features"]
        n, device = len(features), features.device
        specs = config.specs
        wanted = torch.stack([per_sample(controls.get(s.name, attribute_control(s).default), n, torch.float32)
                              .to(device) for s in specs], 1)
        original = state.get("original")
        original = wanted if original is None else original.to(device)
        edited = nets["decoder"](features, attribute_code(specs, wanted))
        rebuilt = nets["decoder"](features, attribute_code(specs, original))
        size = state.get("size")
        if config.restore_size and size is not None and len(size):
            height, width = (int(round(float(v))) for v in size[0].tolist())
            edited, rebuilt = unsquare(edited, height, width), unsquare(rebuilt, height, width)
        return {"image": edited, "difference": edited - rebuilt}

    # -- data -----------------------------------------------------------------------------------------
    def prepare_data(self, data, config):
        import torch

        from ..core.dataset import Field, TrainingData
        from ..data.mri import scale_slices

        if not isinstance(data, dict) or data.get("image") is None:
            raise DataError("The Fader family trains on slices with a table of their attributes.")
        if data.get("attributes") is None:
            raise DataError("The Fader family trains on slices WITH their attributes (a CSV with a 'file' or "
                            f"subject id column and the columns {', '.join(s.name for s in config.specs)}).")
        raw = np.asarray(data["image"])
        if raw.ndim == 2:
            raw = raw[None]
        images = scale_slices(raw, config.size, config.percentiles)
        values = attribute_values(config.specs, data["attributes"], len(images))
        counts = "; ".join(_spread(spec, values[:, j]) for j, spec in enumerate(config.specs))
        weights = class_weights(config.specs, values, config.min_class_fraction)
        return TrainingData({"image": Field(images.contiguous(), spatial=2),
                             "attributes": Field(torch.from_numpy(values), spatial=0),
                             "weight": Field(torch.from_numpy(weights), spatial=0)},
                            description=f"{len(images)} slices ({counts})")

    def preview_source(self, config, data, n, generator):
        """Slices spread over the training data (not only its first class)."""
        import torch

        index = torch.linspace(0, len(data) - 1, n).round().long()
        return {"image": data["image"].take(index)}

    # -- training -------------------------------------------------------------------------------------
    def default_hparams(self) -> dict[str, Any]:
        # Fader: Adam 2e-4 (0.5, 0.999), batch 32, gradient clip 5, lambda ramped 0 -> lambda_latent over
        # lambda_schedule steps (500k steps there; a CPU run has thousands, so the weights are larger).
        return {"lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999), "batch_size": 32, "lambda_latent": 0.01,
                "lambda_classifier": 0.03, "lambda_patch": 0.01, "lambda_schedule": 1000, "grad_clip": 5.0,
                "flip_axes": (-1,), "shift": 3, "intensity_jitter": 0.1}

    def make_optimizers(self, nets, hparams):
        import itertools

        import torch

        betas = tuple(hparams["betas"])
        autoencoder = itertools.chain(nets["encoder"].trunk.parameters(), nets["decoder"].parameters())
        optimizers = {
            "autoencoder": torch.optim.Adam(autoencoder, hparams["lr_g"], betas=betas),
            "latent": torch.optim.Adam(nets["latent_discriminator"].parameters(), hparams["lr_d"], betas=betas),
            "estimator": torch.optim.Adam(nets["encoder"].estimator.parameters(), hparams["lr_d"], betas=betas)}
        if "patch_discriminator" in nets:
            optimizers["patch"] = torch.optim.Adam(nets["patch_discriminator"].parameters(), hparams["lr_d"],
                                                   betas=betas)
        return optimizers

    def train_step(self, nets, optimizers, next_batch, ctx):
        import torch
        import torch.nn.functional as F

        from .fader_nets import attribute_code, attribute_loss, flip_attributes, weighted_mean

        config, hp = ctx.config, ctx.hparams
        specs = config.specs
        encoder, decoder, latent = nets["encoder"], nets["decoder"], nets["latent_discriminator"]
        estimator = encoder.estimator
        batch = next_batch()
        x = augment(batch["image"].float(), int(hp.get("shift", 0)), float(hp.get("intensity_jitter", 0.0)), ctx.rng)
        y = batch["attributes"].float()
        w = batch["weight"].float() if "weight" in batch else None
        clip = float(hp.get("grad_clip", 0.0))
        warm = min(1.0, ctx.step / max(float(hp.get("lambda_schedule", 1)), 1.0))  # the lambda warm-up

        z = encoder(x)
        # 1. the latent discriminator learns to read the true attributes from the latent
        loss_lat = attribute_loss(specs, latent(z.detach()), y, w)
        _update(optimizers["latent"], loss_lat, latent.parameters(), clip)

        # 2. the autoencoder: reconstruct with the true attributes, hide them from the latent discriminator
        flipped = flip_attributes(specs, y, ctx.rng).to(x.device)
        recon = decoder(z, attribute_code(specs, y))
        loss_rec = weighted_mean((recon - x).pow(2).flatten(1).mean(1), w)
        latent.requires_grad_(False)
        loss_adv = attribute_loss(specs, latent(z), flipped)
        loss = loss_rec + float(hp["lambda_latent"]) * warm * loss_adv
        result = {"reconstruction": loss_rec.item(), "latent_discriminator": loss_lat.item(),
                  "latent_fooling": loss_adv.item(), "lambda_latent": float(hp["lambda_latent"]) * warm}
        weight = float(hp.get("lambda_classifier", 0.0))
        patch = nets["patch_discriminator"] if "patch_discriminator" in nets else None
        patch_weight = float(hp.get("lambda_patch", 0.0)) if patch is not None else 0.0
        swapped = decoder(z, attribute_code(specs, flipped)) if weight > 0 or patch_weight > 0 else None
        if weight > 0:  # the classifier discriminator: reconstructed slices must show their attributes, and
            estimator.requires_grad_(False)  # slices decoded with flipped attributes the flipped ones
            estimator.eval()
            soft_flipped = soft_true = None
            if "real_posteriors" in nets:  # targets: how the classifier reads real slices of those classes
                posteriors = nets["real_posteriors"]
                with torch.no_grad():
                    posteriors.update(specs, encoder.estimate(x), y)
                soft_flipped, soft_true = posteriors.targets(specs, flipped), posteriors.targets(specs, y)
                result["target_confidence"] = posteriors.confidence()
            loss_clf = attribute_loss(specs, encoder.estimate(swapped), flipped, soft=soft_flipped)
            loss = loss + weight * warm * (loss_clf + attribute_loss(specs, encoder.estimate(recon), y, w,
                                                                     soft=soft_true))
            result["classifier_swap"] = loss_clf.item()
        decoded = None
        if patch is not None:  # what the patch discriminator judges: reconstructed (and edited) slices
            decoded = recon if swapped is None else torch.cat([recon, swapped])
        if patch_weight > 0:  # decoded slices (reconstructed and edited) must pass for real ones, patch by patch
            patch.requires_grad_(False)
            loss_patch = F.softplus(-patch(decoded)).mean()
            loss = loss + patch_weight * loss_patch
            result["patch_fooling"] = loss_patch.item()
        autoencoder = [p for group in optimizers["autoencoder"].param_groups for p in group["params"]]
        _update(optimizers["autoencoder"], loss, autoencoder, clip)
        latent.requires_grad_(True)
        estimator.requires_grad_(True)
        estimator.train()
        if patch is not None:  # the patch discriminator: real slices against decoded ones (non-saturating loss)
            patch.requires_grad_(True)
            loss_d = F.softplus(-patch(x)).mean() + F.softplus(patch(decoded.detach())).mean()
            _update(optimizers["patch"], loss_d, patch.parameters(), clip)
            result["patch_discriminator"] = loss_d.item()

        # 3. the estimator (classifier discriminator) learns the attributes from REAL slices only: trained on
        # decoded ones too, it would learn to read whatever mark the decoder leaves (the two would collude)
        loss_est = attribute_loss(specs, encoder.estimate(x), y, w)
        _update(optimizers["estimator"], loss_est, estimator.parameters(), clip)
        result["estimator"] = loss_est.item()
        return result

    # -- evaluation -----------------------------------------------------------------------------------
    def metrics(self, model, real, n, seed, metric_set=None):
        from ..metrics.attributes import evaluate_fader

        self.check_metric_set(metric_set)
        return evaluate_fader(model, real, n=n, seed=seed)


def _update(optimizer, loss, parameters, clip: float) -> None:
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(list(parameters), clip)
    optimizer.step()


def augment(x, shift: int, jitter: float, generator):
    """Small random shifts (pixels, per slice) and intensity scaling against over-fitting on small data;
    flips come from the training data's ``flip_axes``."""
    import torch

    from ..nn.augment import random_shift

    x = random_shift(x, shift, generator)
    if jitter > 0:
        scale = 1 + (torch.rand(len(x), 1, 1, 1, generator=generator) * 2 - 1) * jitter
        x = ((x + 1) * scale.to(x.device) - 1).clamp(-1, 1)  # the background (-1) stays background
    return x


def attribute_values(specs, attributes: Any, n: int) -> np.ndarray:
    """The declared attributes of ``n`` slices as (n, A) float32, from a table of columns by name
    (a CSV read by the data loader, a dict of arrays) or an array (n,) / (n, A) in the declared order."""
    if isinstance(attributes, dict):
        table = table_from_columns({k: v for k, v in attributes.items() if np.ndim(v) >= 1}, "the attributes")
        if len(table) != n:
            raise DataError(f"The attributes table has {len(table)} rows for {n} slices.")
        columns = []
        for spec in specs:
            found = table.find(spec.name)
            if found is None:
                raise DataError(f"The attributes have no column '{spec.name}'; they have "
                                f"{', '.join(table.columns) or 'none'}.")
            columns.append(spec.values(table.columns[found], "the attributes"))
        return np.stack(columns, 1).astype(np.float32)
    array = np.asarray(attributes)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != len(specs):
        raise DataError(f"Expected {len(specs)} attribute value(s) per slice ({', '.join(s.name for s in specs)}); "
                        f"got an array shaped {array.shape}.")
    if len(array) != n:
        raise DataError(f"The attributes have {len(array)} rows for {n} slices.")
    return np.stack([spec.values(array[:, j].tolist(), "the attributes") for j, spec in enumerate(specs)], 1)


def class_weights(specs, values: np.ndarray, fraction: float) -> np.ndarray:
    """Per-slice loss weights: a class of the first class attribute rarer than ``fraction`` of the slices
    weighs as if it made up ``fraction`` (``fraction / its share``); all others weigh 1."""
    weights = np.ones(len(values), np.float32)
    column = next((j for j, s in enumerate(specs) if s.kind != CONTINUOUS), None)
    if column is None or fraction <= 0 or not len(values):
        return weights
    classes = values[:, column].round().astype(int)
    for c in np.unique(classes):
        share = float((classes == c).mean())
        if share < fraction:
            weights[classes == c] = fraction / share
    return weights


def _spread(spec: AttributeSpec, column: np.ndarray) -> str:
    if spec.kind == CONTINUOUS:
        return f"{spec.name} {column.min():g} to {column.max():g}"
    counts = ", ".join(f"{c} {int((column == i).sum())}" for i, c in enumerate(spec.classes))
    return f"{spec.name}: {counts}"
