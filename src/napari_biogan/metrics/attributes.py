"""Attribute-editing metrics with a frozen evaluation classifier (shared by the MRI attribute families).

- The evaluation classifier/regressor: a small CNN (:class:`AttributeClassifier`) trained
  on the training split only and then frozen; the shipped one
  (``zoo/mri-attribute-classifier.safetensors``, built by ``scripts/build_zoo_fader.py``)
  reads the diagnosis of the 4-class dementia slices and carries its held-out per-class
  accuracy in its card. It is not a generator: the model list skips it (no family). A model
  whose attributes it does not read names its own in its card (``evaluation_classifier``, a
  file in ``zoo/``): ``zoo/ixi-position-regressor.safetensors`` reads the slice position of
  IXI axial slices, for ``ixi-fader`` (:func:`evaluation_classifier_for`).
- Swap accuracy: the fraction of held-out slices, edited to a requested class, that the
  classifier assigns to that class (per class, and their mean), beside the classifier's
  own accuracy on real slices of that class (``..._real``: what it can tell apart at all).
- Continuous attributes: the mean error of the predicted value against the requested one
  along the slider, the fraction of slices whose prediction never goes down as the
  slider goes up (monotonicity; an edit that does not move passes it), and the response:
  the least-squares slope of the prediction against the requested value (1 = follows the
  slider, 0 = does not move), mean over slices.
- Reconstruction MSE with the slices' own attributes (intensities on a [0, 1] scale), and
  the reconstruction's sharpness: its mean gradient magnitude over the input's (1 = as much
  fine detail as the input; a blurred reconstruction scores well below 1 even at a low MSE).
- Edit identity: the fraction of edited slices whose most similar input slice (pixel
  correlation, among all evaluated inputs) is their own source. 1 = every edit is still
  recognisably its own slice; an editor that draws a class template whatever the input scores
  about 1/n. A whole-slice measure: it cannot tell whether a small region (the ventricles)
  follows the input.
- Central CSF (categorical attributes, no classifier involved): the fraction of dark pixels
  in the central half of each slice, a ventricle-size proxy on axial T1 slices
  (:func:`central_csf_fraction`), for slices edited to each class beside real slices of that
  class (does the edit move ventricle size the way the disease does, and by how much?), and
  how closely the edits' values follow their inputs' (``central_csf_follows_input``: the
  correlation over slices; near 1 when each edit keeps its own slice's ventricles).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..core.errors import DataError, ModelFileError
from ..data.attributes import CONTINUOUS, AttributeSpec, parse_specs
from .pixels import centred_unit_rows

if TYPE_CHECKING:
    import torch

CLASSIFIER_FILE = Path(__file__).resolve().parent.parent / "zoo" / "mri-attribute-classifier.safetensors"
KIND = "attribute-classifier"
#: a continuous prediction may dip by this fraction of the range and still count as monotonic
MONOTONIC_TOLERANCE = 0.02
#: prepared intensities (percentiles to [-1, 1]) below this count as CSF-dark: the darkest 35 % of the range
CSF_THRESHOLD = -0.3


def build_classifier_net(specs: Sequence[AttributeSpec], size: int = 64, channels: int = 1, width: int = 32):
    """The untrained evaluation network: (N, C, size, size) in [-1, 1] -> one head per attribute."""
    from ..families.fader_nets import AttributeCNN, code_size

    return AttributeCNN(channels, size, code_size(specs), base=width, maximum=8 * width, hidden=8 * width,
                        dropout=0.3)


class AttributeClassifier:
    """A frozen evaluation classifier: ``predict`` gives (N, A) values (class indices, continuous values)."""

    def __init__(self, net, specs: Sequence[AttributeSpec], size: int, card: dict[str, Any] | None = None,
                 batch_size: int = 256):
        self.net = net.eval()
        self.specs = tuple(specs)
        self.size = int(size)
        self.card = card or {}
        self.batch_size = batch_size

    def heads(self, images: Any) -> "torch.Tensor":
        """Raw prediction heads for slices (N, 1, S, S) or (N, S, S) in [-1, 1]."""
        import torch

        from ..data.mri import resize_square

        images = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images).float()
        if images.ndim == 3:
            images = images[:, None]
        parts = []
        with torch.inference_mode():
            for chunk in images.split(self.batch_size):
                if chunk.shape[-1] != self.size or chunk.shape[-2] != self.size:
                    chunk = resize_square(chunk, self.size)
                parts.append(self.net(chunk.to(next(self.net.parameters()).device)).float().cpu())
        return torch.cat(parts) if parts else torch.zeros(0, sum(s.size for s in self.specs))

    def predict(self, images: Any) -> np.ndarray:
        from ..families.fader_nets import predict_attributes

        return predict_attributes(self.specs, self.heads(images)).numpy()

    def covers(self, spec: AttributeSpec) -> int | None:
        """The column of ``spec`` in this classifier's predictions (same name, kind and classes), or None."""
        for j, own in enumerate(self.specs):
            if own.name == spec.name and own.kind == spec.kind and own.classes == spec.classes:
                return j
        return None


def load_attribute_classifier(path: str | os.PathLike | None = None) -> AttributeClassifier:
    """The shipped evaluation classifier (or one at ``path``), from safetensors: no pickle."""
    path = Path(path) if path is not None else CLASSIFIER_FILE
    if not path.is_file():
        raise DataError(f"No evaluation classifier at {path}; build it with scripts/build_zoo_fader.py.")
    return _load(str(path))


def evaluation_classifier_for(model) -> AttributeClassifier:
    """The classifier that evaluates ``model``: the one its card names (``evaluation_classifier``, a
    file name in ``zoo/``; never a path, so a card cannot point outside the zoo), else the shipped one."""
    name = (getattr(model, "card", None) or {}).get("evaluation_classifier")
    if not name:
        return load_attribute_classifier()
    stem = Path(str(name)).name.removesuffix(".safetensors")
    return load_attribute_classifier(CLASSIFIER_FILE.parent / f"{stem}.safetensors")


@functools.lru_cache(maxsize=4)
def _load(path: str) -> AttributeClassifier:
    from ..core.checkpoint import load_tensors

    tensors, card = load_tensors(path)
    if card.get("kind") != KIND:
        raise ModelFileError(f"{Path(path).name} is not a napari-biogan attribute classifier.")
    try:
        specs = parse_specs(card["attributes"])
        size, width = int(card["size"]), int(card.get("width", 32))
        net = build_classifier_net(specs, size, int(card.get("channels", 1)), width)
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise ModelFileError(f"{Path(path).name} does not match this version's attribute classifier ({err}).") \
            from None
    return AttributeClassifier(net, specs, size, card)


def save_attribute_classifier(classifier: AttributeClassifier, path: str | os.PathLike, card: dict[str, Any],
                              overwrite: bool = True) -> Path:
    """Write the classifier (float16 weights) with a card that has no family (not a generator)."""
    from ..core.checkpoint import save_tensors

    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in classifier.net.state_dict().items()}
    full = {"kind": KIND, "attributes": [s.text() for s in classifier.specs], "size": classifier.size,
            "weights_dtype": "float16", "width": int(classifier.card.get("width", 32)), **card}
    full.pop("family", None)
    return save_tensors(path, tensors, full, overwrite=overwrite)


# -- training the evaluation classifier -------------------------------------------------------------------

def train_attribute_classifier(images: np.ndarray, values: np.ndarray, specs: Sequence[AttributeSpec], *,
                               steps: int = 3000, batch_size: int = 64, lr: float = 1e-3, width: int = 32,
                               seed: int = 0, progress: Callable[[int, float], None] | None = None
                               ) -> AttributeClassifier:
    """Train on the TRAINING split only (N, 1, S, S) in [-1, 1]; class-balanced batches for the first
    class attribute (rare classes are seen as often as common ones); shifts, left-right flips, blur
    and pixel noise (:func:`texture_jitter`)."""
    import torch

    from ..families.fader import augment
    from ..families.fader_nets import attribute_loss

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images_t = torch.as_tensor(images).float()
    values_t = torch.as_tensor(values).float()
    net = build_classifier_net(specs, images_t.shape[-1], images_t.shape[1], width)
    weights = _balancing_weights(specs, values)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    net.train()
    for step in range(steps):
        index = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
        x = augment(images_t[index], 3, 0.1, generator)
        flip = torch.rand(len(x), generator=generator) < 0.5
        x[flip] = x[flip].flip(-1)
        x = texture_jitter(x, generator)
        loss = attribute_loss(specs, net(x), values_t[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress(step + 1, loss.item())
    net.eval()
    return AttributeClassifier(net, specs, images_t.shape[-1], {"width": width})


def texture_jitter(x: "torch.Tensor", generator: "torch.Generator") -> "torch.Tensor":
    """A third of the slices blurred, a third with pixel noise: the classifier must read anatomy, so a
    generator cannot pass its test with pixel-scale marks."""
    import torch

    from ..families.fader_nets import blur

    pick = torch.randint(0, 3, (len(x),), generator=generator)
    x = x.clone()
    if bool((pick == 1).any()):
        x[pick == 1] = blur(x[pick == 1], 1.0)
    if bool((pick == 2).any()):
        noise = torch.randn(x[pick == 2].shape, generator=generator) * 0.05
        x[pick == 2] = (x[pick == 2] + noise).clamp(-1, 1)
    return x


def _balancing_weights(specs: Sequence[AttributeSpec], values: np.ndarray) -> "torch.Tensor":
    """Sampling weights that make every class of the first class attribute equally likely."""
    import torch

    weights = np.ones(len(values))
    for j, spec in enumerate(specs):
        if spec.kind != CONTINUOUS:
            column = np.asarray(values)[:, j].round().astype(int)
            counts = np.bincount(column, minlength=spec.size).astype(float)
            weights = 1.0 / np.maximum(counts[column], 1)
            break
    return torch.as_tensor(weights, dtype=torch.float64)


def classifier_scores(classifier: AttributeClassifier, images: Any, values: np.ndarray) -> dict[str, float]:
    """The classifier on real slices: accuracy per class (and mean over classes), error of continuous values."""
    predicted = classifier.predict(images)
    scores: dict[str, float] = {}
    for j, spec in enumerate(classifier.specs):
        truth = np.asarray(values)[:, j]
        if spec.kind == CONTINUOUS:
            scores[f"error_{spec.name}"] = float(np.abs(predicted[:, j] - truth).mean())
            continue
        per_class = []
        for c, name in enumerate(spec.classes):
            mask = truth.round() == c
            if mask.any():
                scores[f"accuracy_{spec.name}_{name}"] = float((predicted[mask, j] == c).mean())
                per_class.append(scores[f"accuracy_{spec.name}_{name}"])
        scores[f"accuracy_{spec.name}"] = float(np.mean(per_class)) if per_class else float("nan")
        scores[f"accuracy_{spec.name}_overall"] = float((predicted[:, j] == truth.round()).mean())
    return scores


# -- the metrics of an attribute-editing model --------------------------------------------------------------

def evaluation_subset(length: int, n: int, seed: int) -> np.ndarray:
    """The indices (sorted) of the ``n`` slices out of ``length`` that an evaluation with ``seed`` uses."""
    return np.sort(np.random.default_rng(seed).permutation(length)[:n])


def evaluate_fader(model, real, n: int = 256, seed: int = 0, classifier: AttributeClassifier | None = None,
                   grid: int = 5, batch_size: int = 64) -> dict[str, float]:
    """Swap accuracy, continuous error and monotonicity, and reconstruction MSE of ``n`` held-out slices.

    ``real``: training data prepared by the family (``image`` (N, 1, S, S) in [-1, 1] and
    ``attributes`` (N, A)); ``n`` slices are drawn with ``seed`` (all when ``n`` >= N).
    Attributes the classifier does not read get no swap accuracy or continuous error; categorical ones
    still get the classifier-free central CSF fractions.
    """
    import torch

    if "attributes" not in real:
        raise DataError("Evaluating attribute edits needs the real slices' attributes (a CSV with a 'file' or "
                        "subject id column).")
    classifier = classifier or evaluation_classifier_for(model)
    index = torch.as_tensor(evaluation_subset(len(real), n, seed))
    images = real["image"].take(index).float()
    values = real["attributes"].take(index).float()
    specs = model.config.specs

    identities: list[float] = []
    csf_inputs, csf_follows, csf_metrics = central_csf_fraction(images), [], {}  # CSF rows after the others

    def edit(wanted: "torch.Tensor") -> "torch.Tensor":
        """The slices decoded with ``wanted``; how recognisable each still is, kept for edit identity."""
        edited = decode_slices(model, images, values, wanted, batch_size)
        identities.append(identity_retrieval(edited, images))
        return edited

    rebuilt = decode_slices(model, images, values, values, batch_size)
    metrics = {"reconstruction_mse": float(((rebuilt - images) / 2).pow(2).mean()),
               "reconstruction_sharpness": sharpness(rebuilt, images)}
    real_scores = classifier_scores(classifier, images, _classifier_values(classifier, specs, values))
    for j, spec in enumerate(specs):
        column = classifier.covers(spec)
        if spec.kind == CONTINUOUS:
            if column is None:
                continue
            requested = np.linspace(spec.low, spec.high, grid)
            predictions = []
            for value in requested:
                wanted = values.clone()
                wanted[:, j] = float(value)
                predictions.append(classifier.predict(edit(wanted))[:, column])
            predictions = np.stack(predictions, 1)  # (n, grid)
            metrics[f"error_{spec.name}"] = float(np.abs(predictions - requested[None]).mean())
            metrics[f"error_{spec.name}_real"] = real_scores[f"error_{spec.name}"]
            dips = np.diff(predictions, axis=1).min(axis=1)
            metrics[f"monotonic_{spec.name}"] = float((dips >= -MONOTONIC_TOLERANCE * (spec.high - spec.low)).mean())
            metrics[f"response_{spec.name}"] = float(response_slopes(predictions, requested).mean())
            continue
        swaps = []
        for c, name in enumerate(spec.classes):
            wanted = values.clone()
            wanted[:, j] = float(c)
            edited = edit(wanted)
            csf = central_csf_fraction(edited)
            csf_metrics[f"central_csf_{spec.name}_{name}"] = float(csf.mean())
            of_class = (values[:, j] == c).numpy()
            if of_class.any():
                csf_metrics[f"central_csf_{spec.name}_{name}_real"] = float(csf_inputs[of_class].mean())
            if csf_inputs.std() > 0 and csf.std() > 0:
                csf_follows.append(float(np.corrcoef(csf_inputs, csf)[0, 1]))
            if column is None:  # the classifier does not read this attribute: no swap accuracy
                continue
            accuracy = float((classifier.predict(edited)[:, column] == c).mean())
            metrics[f"swap_accuracy_{spec.name}_{name}"] = accuracy
            reference = real_scores.get(f"accuracy_{spec.name}_{name}")
            if reference is not None:
                metrics[f"swap_accuracy_{spec.name}_{name}_real"] = reference
            swaps.append(accuracy)
        if swaps:
            metrics[f"swap_accuracy_{spec.name}"] = float(np.mean(swaps))
            metrics[f"swap_accuracy_{spec.name}_real"] = real_scores[f"accuracy_{spec.name}"]
    if identities:
        metrics["edit_identity"] = float(np.mean(identities))
    metrics.update(csf_metrics)
    if csf_follows:
        metrics["central_csf_follows_input"] = float(np.mean(csf_follows))
    return metrics


def response_slopes(predictions: np.ndarray, requested: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of ``predictions`` (n, grid) against ``requested`` (grid,):
    1 when the read value follows the slider, 0 when the edit does not move it."""
    centred = requested - requested.mean()
    return (predictions - predictions.mean(axis=1, keepdims=True)) @ centred / float(centred @ centred)


def decode_slices(model, images: "torch.Tensor", original: "torch.Tensor", wanted: "torch.Tensor",
                  batch_size: int = 64) -> "torch.Tensor":
    """Prepared slices (N, 1, S, S) in [-1, 1] with their own attribute values ``original`` (N, A), decoded
    with the values ``wanted`` (N, A), in batches; ``wanted = original`` is the reconstruction."""
    import torch

    family, config = model.family, model.config
    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size].to(model.device)
            state = family.encode(model.nets, config, {"image": chunk})
            state["original"] = original[start:start + batch_size].to(model.device)
            controls = {s.name: wanted[start:start + batch_size, j].to(model.device)
                        for j, s in enumerate(config.specs)}
            parts.append(family.decode(model.nets, config, state, controls)["image"].float().cpu())
    return torch.cat(parts).clamp(-1, 1)


def identity_retrieval(edited: "torch.Tensor", inputs: "torch.Tensor") -> float:
    """Fraction of ``edited[i]`` whose most correlated slice in ``inputs`` (pixels) is ``inputs[i]``."""
    nearest = (centred_unit_rows(edited) @ centred_unit_rows(inputs).T).argmax(1)
    return float((nearest == np.arange(len(nearest))).mean())


def central_csf_fraction(images: "torch.Tensor", threshold: float = CSF_THRESHOLD) -> np.ndarray:
    """Per prepared slice (N, 1, S, S) in [-1, 1]: the fraction of pixels below ``threshold`` in the central
    half of the slice (a quarter of the side cut on every edge).

    On axial T1 slices at the ventricles (the dementia slices) the dark pixels there are CSF, mostly
    the lateral ventricles, which widen with atrophy: a ventricle-size proxy needing no segmentation.
    Real held-out dementia slices: 0.11 non-demented, 0.15 very mild, 0.18 mild (README "Brain MRI").
    """
    side = images.shape[-1]
    cut = side // 4
    centre = images[..., cut:side - cut, cut:side - cut]
    return (centre < threshold).float().flatten(1).mean(1).numpy()


def gradient_magnitude(images: "torch.Tensor") -> "torch.Tensor":
    """Mean absolute finite difference along y and x, per image (N, ..., Y, X) -> (N,)."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(1)
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(1)
    return (dy + dx) / 2


def sharpness(decoded: "torch.Tensor", originals: "torch.Tensor") -> float:
    """How much fine detail decoded images keep: their mean gradient magnitude over the originals' (1 = as
    sharp; blur lowers it, noise or invented texture raises it above 1)."""
    reference = gradient_magnitude(originals.float()).mean().clamp_min(1e-12)
    return float(gradient_magnitude(decoded.float()).mean() / reference)


def _classifier_values(classifier: AttributeClassifier, specs, values: "torch.Tensor") -> np.ndarray:
    """The model's attribute values in the classifier's column order (NaN where the model lacks one)."""
    out = np.full((len(values), len(classifier.specs)), np.nan, np.float32)
    for j, spec in enumerate(specs):
        column = classifier.covers(spec)
        if column is not None:
            out[:, column] = values[:, j].numpy()
    return out
