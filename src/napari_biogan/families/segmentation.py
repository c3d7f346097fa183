"""Adversarial segmentation: a U-Net of ResNet blocks with self-attention maps an image to a class map;
a spectrally normalised SAGAN discriminator judges (image, segmentation) pairs (REFERENCE section 4).

The generator is trained with cross-entropy (+ soft Dice) and, with ``adversarial_weight`` > 0,
the hinge loss of the discriminator, which sees real pairs (image, one-hot annotation) and
generated ones (image, one-hot arg-max of the prediction with the softmax's gradient: a
straight-through estimate, so the critic cannot tell the two apart by softness alone).
``adversarial_weight = 0`` is the plain supervised U-Net (the ablation); ``attention = "none"``
removes the self-attention.

Runs on images of any size (fully convolutional): ``prepare_source`` normalises each WHOLE
image by its own 1st / 99.8th percentiles to [-1, 1] (once, before any tiling, as
``prepare_data`` does for training); ``encode`` pads to a multiple of 2**depth and
``decode`` gives logits cropped back. The attention at the bottleneck sees the whole tile,
so tiled outputs are not bit-identical to untiled ones: use tiles of 256 pixels or more
with an overlap of 64 (tested: >= 99% of the labels agree away from the borders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.contract import IMAGE, LABELS, Channel, Input, Output
from ..core.errors import DataError
from ..core.registry import Family, register

NAME = "segmentation"
ATTENTION = ("none", "bottleneck", "bottleneck+decoder")
#: percentiles an image (or a crop, or a tile) is normalised by
PERCENTILES = (1.0, 99.8)
#: normalised values are kept in this range (bright debris cannot dominate; empty tiles stay bounded)
VALUE_RANGE = (-1.5, 3.0)
#: sides above this are pre-cut into overlapping training tiles (a batch never copies whole huge images)
MAX_TRAIN_SIDE = 1024
#: how predicted class maps become instances (metrics.segmentation.instances_from_classes): interiors
#: eroded 2 pixels (cuts thin necks where a predicted boundary has a gap), specks under 10 pixels
#: dropped; chosen on the BBBC039 TRAINING fields (object F1), never on the held-out ones
INSTANCE_RULE = {"erode": 2, "min_size": 10}


def default_class_names(classes: int) -> tuple[str, ...]:
    if classes == 2:
        return ("background", "foreground")
    return (("background", "interior", "boundary") + tuple(f"class {i}" for i in range(3, classes)))[:classes]


@dataclass
class SegmentationConfig:
    in_channels: int = 1
    classes: int = 3  # including background (label 0)
    class_names: tuple[str, ...] = ()  # default: background, interior, boundary (, class 3...)
    base_width: int = 12  # channels of the first level; doubles at each level down
    depth: int = 3  # down-samplings: images are padded to a multiple of 2**depth
    blocks: int = 1  # ResNet blocks per level
    attention: str = "bottleneck"  # none | bottleneck | bottleneck+decoder
    attention_mode: str = "nystrom"  # nystrom: exact on maps up to `landmarks` tokens, Nyström above; or full
    landmarks: int = 64
    adversarial_weight: float = 0.05  # 0: the plain supervised U-Net (no discriminator training)
    disc_width: int = 16
    crop: int = 128  # training crop (pixels a side)

    def __post_init__(self):
        from ..nn.attention import MODES

        if self.classes < 2:
            raise ValueError("a segmentation needs at least 2 classes (background and one more)")
        if self.attention not in ATTENTION:
            raise ValueError(f"attention is one of {', '.join(ATTENTION)}, not '{self.attention}'")
        if self.attention_mode not in MODES:
            raise ValueError(f"attention_mode is one of {', '.join(MODES)}, not '{self.attention_mode}'")
        for name in ("in_channels", "base_width", "blocks", "landmarks", "disc_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 1 <= self.depth <= 6:
            raise ValueError("depth must be 1 to 6")
        if self.crop < 2 ** self.depth:
            raise ValueError(f"crop must be at least 2**depth = {2 ** self.depth} pixels")
        if self.adversarial_weight < 0:
            raise ValueError("adversarial_weight must not be negative")
        names = tuple(self.class_names) or default_class_names(self.classes)
        if len(names) != self.classes:
            raise ValueError(f"{len(names)} class names for {self.classes} classes")
        self.class_names = names


@register
class SegmentationFamily(Family):
    name = NAME
    title = "Segmentation (adversarial U-Net + self-attention)"
    config_cls = SegmentationConfig
    sample_axes = ("Y", "X")
    inference_nets = ("generator",)

    # -- networks ---------------------------------------------------------------------------------
    def build(self, config):
        from torch import nn

        from .segmentation_nets import PairDiscriminator, UNetGenerator

        return nn.ModuleDict({
            "generator": UNetGenerator(config.in_channels, config.classes, config.base_width, config.depth,
                                       config.blocks, config.attention, config.attention_mode, config.landmarks),
            "discriminator": PairDiscriminator(config.in_channels, config.classes, config.disc_width,
                                               config.attention_mode, config.landmarks)})

    def channels(self, config):
        return [Channel("foreground", "magma")]

    # -- the contract ------------------------------------------------------------------------------
    def inputs(self, config):
        return [Input("image", IMAGE, train=True, run=True, help="images to segment"),
                Input("labels", LABELS, train=True, run=False, help="a class per pixel, 0 = background")]

    def outputs(self, config):
        outputs = [Output("labels", LABELS, classes=tuple(config.class_names), help="the class of every pixel"),
                   Output("probability", IMAGE, tuple(self.channels(config)),
                          help="probability of any class but background")]
        if boundary_class(config) is not None:  # objects can be split along predicted boundaries
            outputs.append(Output("instances", LABELS, help="one label per object: interiors split along "
                                                            "the predicted boundaries"))
        return outputs

    def finish(self, config, outputs):
        """Instances from the joined class maps: a tile border never cuts an object in two."""
        labels = outputs.get("labels")
        if labels is None or boundary_class(config) is None:
            return outputs
        flat = labels.reshape(-1, *labels.shape[-2:])
        objects = np.stack([instances(config, m) for m in flat]) if len(flat) else np.zeros(flat.shape, np.int32)
        return {**outputs, "instances": objects.reshape(labels.shape)}

    def prepare_source(self, config, source):
        """Raw intensities of whole images -> normalised (N, C, Y, X), as training data is."""
        return {**source, "image": normalise(as_nchw(source["image"], config.in_channels))}

    def encode(self, nets, config, source):
        import torch
        import torch.nn.functional as F

        image = as_nchw(source["image"], config.in_channels)  # already normalised by prepare_source
        n, _, height, width = image.shape
        multiple = 2 ** config.depth
        pad_y, pad_x = -height % multiple, -width % multiple
        if pad_y or pad_x:  # mirror padding: no artificial edge for the convolutions to react to
            mode = "reflect" if pad_y < height and pad_x < width else "replicate"
            image = F.pad(image, (0, pad_x, 0, pad_y), mode=mode)
        size = torch.tensor([[height, width]], dtype=torch.float32, device=image.device).expand(n, 2)
        return {"image": image, "size": size}

    def decode(self, nets, config, state, controls):
        logits = nets["generator"](state["image"])
        height, width = (int(v) for v in state["size"][0].tolist()) if len(state["size"]) else logits.shape[-2:]
        logits = logits[..., :height, :width]
        foreground = 1 - logits.float().softmax(dim=1)[:, :1]
        return {"labels": logits, "probability": foreground * 2 - 1}

    # -- data ----------------------------------------------------------------------------------------
    def prepare_data(self, data, config):
        import torch

        from ..core.dataset import Field, TrainingData
        from ..data.segmentation import check_labels

        if not isinstance(data, dict) or data.get("image") is None or data.get("labels") is None:
            raise DataError("The segmentation family trains on images with their labels "
                            "(a Labels layer or a folder of masks for every image).")
        labels = np.asarray(data["labels"])
        images = as_nchw(data["image"], config.in_channels).numpy()
        if labels.ndim in (3, 4) and labels.shape[-1] in (3, 4) and labels.shape[-3:-1] == images.shape[2:]:
            labels = labels[..., 0]  # RGB(A) masks as PNG files are read: the label in channel 0 (BBBC039)
        if labels.ndim == 2:
            labels = labels[None]
        if labels.ndim != 3:
            raise DataError(f"Labels must be a class map (Y, X) or a stack (N, Y, X), not shaped {labels.shape}.")
        if len(labels) != len(images):
            raise DataError(f"There are {len(images)} images but {len(labels)} masks; every image needs its mask.")
        if labels.shape[1:] != images.shape[2:]:
            raise DataError(f"The masks are {labels.shape[1]}x{labels.shape[2]} but the images are "
                            f"{images.shape[2]}x{images.shape[3]}; they must be the same size.")
        if not np.isfinite(images).all():
            raise DataError("The images contain NaN or infinite values.")
        check_labels(labels, config.classes)
        side = 2 ** config.depth
        if min(images.shape[2:]) < side:
            raise DataError(f"Images must be at least {side}x{side} pixels for a depth of {config.depth}.")
        labels = labels.astype(np.uint8 if config.classes <= 255 else np.int64)
        images = normalise(torch.from_numpy(images)).numpy()  # whole images, as prepare_source scales a run
        if max(images.shape[2:]) > MAX_TRAIN_SIDE:
            images, labels = cut_tiles(images, labels, 4 * config.crop, config.crop)
        return TrainingData({"image": Field(torch.from_numpy(np.ascontiguousarray(images)), spatial=2),
                             "labels": Field(torch.from_numpy(np.ascontiguousarray(labels)), spatial=2)},
                            description=f"{len(images)} images with {config.classes}-class masks")

    def preview_source(self, config, data, n, generator):
        """Fixed validation crops (up to 256 pixels a side) at positions drawn once for the run."""
        import torch

        images = data["image"].take(torch.arange(len(data)))
        height, width = images.shape[-2:]
        size_y, size_x = min(256, height), min(256, width)
        crops = []
        for i in range(n):
            y = int(torch.randint(height - size_y + 1, (1,), generator=generator))
            x = int(torch.randint(width - size_x + 1, (1,), generator=generator))
            crops.append(images[i % len(images), :, y:y + size_y, x:x + size_x])
        return {"image": torch.stack(crops)}

    # -- training --------------------------------------------------------------------------------------
    def default_hparams(self) -> dict[str, Any]:
        # SAGAN (REFERENCE section 4): Adam lr 1e-4 (G) / 4e-4 (D), beta1 = 0; a CPU-sized batch of crops.
        return {"lr_g": 1e-4, "lr_d": 4e-4, "betas": (0.0, 0.9), "batch_size": 8, "dice_weight": 1.0,
                "flip_axes": (-1, -2), "rotate": True, "intensity_jitter": 0.1}

    def make_optimizers(self, nets, hparams):
        import torch

        betas = tuple(hparams["betas"])
        return {"generator": torch.optim.Adam(nets["generator"].parameters(), hparams["lr_g"], betas=betas),
                "discriminator": torch.optim.Adam(nets["discriminator"].parameters(), hparams["lr_d"], betas=betas)}

    def train_step(self, nets, optimizers, next_batch, ctx):
        import torch.nn.functional as F

        from ..nn import losses

        config, hparams = ctx.config, ctx.hparams
        batch = next_batch()
        image, labels = random_crops(batch["image"].float(), batch["labels"].long(), config.crop,
                                     2 ** config.depth, ctx.rng, bool(hparams.get("rotate", True)))
        image = jitter_intensity(image, float(hparams.get("intensity_jitter", 0.0)), ctx.rng)
        logits = nets["generator"](image)
        cross_entropy = F.cross_entropy(logits, labels)
        probabilities = logits.softmax(dim=1)
        truth = F.one_hot(labels, config.classes).permute(0, 3, 1, 2).float()
        dice = soft_dice(probabilities, truth)
        loss = cross_entropy + float(hparams.get("dice_weight", 1.0)) * dice
        result = {"cross_entropy": cross_entropy.item(), "dice": dice.item()}
        weight = float(config.adversarial_weight)
        if weight > 0:
            critic = nets["discriminator"]
            hard = F.one_hot(probabilities.argmax(1), config.classes).permute(0, 3, 1, 2).float()
            generated = hard + probabilities - probabilities.detach()  # straight-through one-hot
            loss_d = losses.critic_loss("hinge", critic(image, truth), critic(image, generated.detach()))
            optimizers["discriminator"].zero_grad(set_to_none=True)
            loss_d.backward()
            optimizers["discriminator"].step()
            critic.requires_grad_(False)  # the generator's step needs gradients to the input only
            adversarial = losses.generator_loss("hinge", critic(image, generated))
            critic.requires_grad_(True)
            loss = loss + weight * adversarial
            result.update(adversarial=adversarial.item(), critic=loss_d.item())
        optimizers["generator"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["generator"].step()
        return result

    # -- evaluation --------------------------------------------------------------------------------------
    def metrics(self, model, real, n, seed, metric_set=None):
        self.check_metric_set(metric_set)
        head = real.head(n)
        predicted = predict_labels(model, head["image"].numpy())
        return score_labels(model.config, head["labels"].numpy(), predicted)


# -- helpers shared by the family, the build script and the benchmark ---------------------------------------

def as_nchw(image, channels: int):
    """Images as a float tensor (N, C, Y, X) from (Y, X), (N, Y, X), (N, C, Y, X) or (N, Y, X, C)."""
    import torch

    if not torch.is_tensor(image):
        image = np.asarray(image)
        if image.dtype.kind not in "uifb":
            raise DataError(f"Images must be numeric, not {image.dtype}.")
        image = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    image = image.float()
    if image.ndim == 2:
        image = image[None, None] if channels == 1 else image[None]
    elif image.ndim == 3:
        if channels == 1:
            image = image[:, None]  # a stack of single-channel images
        elif image.shape[0] == channels:
            image = image[None]
        elif image.shape[-1] == channels:
            image = image.permute(2, 0, 1)[None]
    elif image.ndim == 4 and image.shape[1] != channels and image.shape[-1] == channels:
        image = image.permute(0, 3, 1, 2)
    if image.ndim != 4 or image.shape[1] != channels:
        raise DataError(f"Expected images shaped (N, {'C, ' if channels > 1 else ''}Y, X) with {channels} "
                        f"channel(s); got {tuple(image.shape)}.")
    return image.contiguous()


def normalise(image):
    """(N, C, Y, X) -> each image and channel mapped by its 1st / 99.8th percentiles to [-1, 1] (kept in
    :data:`VALUE_RANGE`). Percentiles of large images come from an even subsample of at most 2**18 pixels."""
    import torch

    image = image.float()
    flat = image.flatten(2)
    step = max(1, -(-flat.shape[-1] // 2 ** 18))
    sample = flat[..., ::step]
    q = torch.tensor([p / 100 for p in PERCENTILES], dtype=torch.float32, device=image.device)
    low, high = torch.quantile(sample, q, dim=-1)  # (N, C) each
    scale = (high - low).clamp_min(1e-6 * (high.abs() + 1))
    out = (image - low[..., None, None]) / scale[..., None, None] * 2 - 1
    return out.clamp(*VALUE_RANGE)


def random_crops(image, labels, crop: int, multiple: int, rng, rotate: bool):
    """One random crop per sample (positions and a quarter-turn from ``rng``), a multiple of ``multiple``."""
    import torch

    height, width = image.shape[-2:]
    size = max(multiple, min(crop, height, width) // multiple * multiple)
    ys = torch.randint(height - size + 1, (len(image),), generator=rng).tolist()
    xs = torch.randint(width - size + 1, (len(image),), generator=rng).tolist()
    image = torch.stack([im[:, y:y + size, x:x + size] for im, y, x in zip(image, ys, xs)])
    labels = torch.stack([lb[y:y + size, x:x + size] for lb, y, x in zip(labels, ys, xs)])
    if rotate:
        turns = int(torch.randint(4, (1,), generator=rng))
        image, labels = torch.rot90(image, turns, (-2, -1)), torch.rot90(labels, turns, (-2, -1))
    return image.contiguous(), labels.contiguous()


def jitter_intensity(image, amount: float, rng):
    """Per-sample gain 1 +- ``amount`` and offset +- ``amount`` (percentile estimates vary between images)."""
    import torch

    if amount <= 0:
        return image
    gain = 1 + (torch.rand(len(image), generator=rng) * 2 - 1) * amount
    offset = (torch.rand(len(image), generator=rng) * 2 - 1) * amount
    return image * gain.to(image.device)[:, None, None, None] + offset.to(image.device)[:, None, None, None]


def soft_dice(probabilities, truth, smooth: float = 1.0):
    """1 - mean over the object classes (not background) of the soft Dice coefficient on the batch."""
    dims = (0, 2, 3)
    inter = (probabilities * truth).sum(dims)
    total = probabilities.sum(dims) + truth.sum(dims)
    dice = (2 * inter + smooth) / (total + smooth)
    return 1 - dice[1:].mean()


def cut_tiles(images: np.ndarray, labels: np.ndarray, tile: int, crop: int):
    """Overlapping tiles of ``tile`` pixels sharing ``crop`` pixels: every crop-sized window lies in one."""
    from ..core.tiling import tile_starts

    height, width = images.shape[-2:]
    ty, tx = min(tile, height), min(tile, width)
    ys = tile_starts(height, ty, min(crop, ty - 1))
    xs = tile_starts(width, tx, min(crop, tx - 1))
    image_tiles = [im[:, y:y + ty, x:x + tx] for im in images for y in ys for x in xs]
    label_tiles = [lb[y:y + ty, x:x + tx] for lb in labels for y in ys for x in xs]
    return np.stack(image_tiles), np.stack(label_tiles)


def boundary_class(config) -> int | None:
    """The class instances are split along: the one named "boundary", else none."""
    names = [n.lower() for n in config.class_names]
    return names.index("boundary") if "boundary" in names else None


def predict_labels(model, images: np.ndarray, tile: int = 512, overlap: int = 64) -> np.ndarray:
    """Class maps of whole images (one at a time; in tiles when a side exceeds 1024 pixels)."""
    maps = []
    for image in images:
        big = max(image.shape[-2:]) > 1024
        out = model.run({"image": image[None]}, precision="fp32", batch_size=1,
                        tile=tile if big else None, overlap=overlap)
        maps.append(out["labels"][0])
    return np.stack(maps) if maps else np.zeros((0,), np.uint8)


def score_labels(config, true_maps, predicted_maps, true_instances=None) -> dict[str, float]:
    """Pixel and object scores (see :func:`napari_biogan.metrics.segmentation.segmentation_scores`)."""
    from ..metrics.segmentation import segmentation_scores

    return segmentation_scores(true_maps, predicted_maps, config.class_names, interior=1,
                               boundary=boundary_class(config), true_instances=true_instances,
                               instance_rule=INSTANCE_RULE)


def instances(config, labels_map: np.ndarray) -> np.ndarray:
    """Instance labels (Y, X) from a predicted class map, by this family's :data:`INSTANCE_RULE`."""
    from ..metrics.segmentation import instances_from_classes

    return instances_from_classes(labels_map, interior=1, boundary=boundary_class(config), **INSTANCE_RULE)


def otsu_watershed(image: np.ndarray, sigma: float = 1.0, min_distance: int = 7, min_size: int = 25) -> np.ndarray:
    """The classical baseline a biologist tries first: Otsu threshold + distance-transform watershed.

    Returns instance labels (Y, X). Needs scikit-image (imported here only).
    """
    from scipy import ndimage
    from skimage import feature, filters, measure, morphology, segmentation

    image = np.asarray(image, dtype=np.float32)
    smooth = filters.gaussian(image, sigma=sigma, preserve_range=True) if sigma else image
    mask = smooth > filters.threshold_otsu(smooth)
    mask = ndimage.binary_fill_holes(mask)
    try:  # scikit-image >= 0.26 names the limit max_size (objects up to it are removed)
        mask = morphology.remove_small_objects(mask, max_size=min_size - 1)
    except TypeError:
        mask = morphology.remove_small_objects(mask, min_size=min_size)
    distance = ndimage.distance_transform_edt(mask)
    regions = measure.label(mask)
    peaks = feature.peak_local_max(ndimage.gaussian_filter(distance, 1.0), min_distance=min_distance,
                                   labels=regions, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    instances = segmentation.watershed(-distance, markers, mask=mask)
    # a region without a peak (tiny, flat) keeps its own label rather than vanishing
    orphans = regions * ((instances == 0) & mask)
    if orphans.any():
        instances = np.where(orphans > 0, orphans + instances.max(), instances)
    return instances.astype(np.int32)
