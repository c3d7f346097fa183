"""Metrics of generated images and videos (no Qt, no napari)."""

from __future__ import annotations

#: plain-words meaning of every metric key the families report: (label, how to read it)
METRIC_NOTES: dict[str, tuple[str, str]] = {
    "fd_pixels": ("Pixel FD", "Fréchet distance of raw pixels to the real images; lower is closer"),
    "fd_frames_pixels": ("Frame pixel FD", "Fréchet distance of raw frame pixels to the real frames; lower is closer"),
    "aacd": ("AACD", "average change of frame brightness over time (0-255 scale); lower is steadier"),
    "fvd_stats": ("FVD (statistics)", "Fréchet distance of appearance and motion statistics; lower is closer"),
    "fvd_digits": ("FVD (digit features)", "Fréchet distance of digit-classifier video features; lower is closer"),
    "flips_per_seq": ("Flips / sequence", "times the digit's class changes within a video; 0 is best"),
    "cos_ts": ("cosTS", "similarity of digit features of consecutive frames; 1 is best"),
    "reconstruction_mse": ("Reconstruction MSE", "pixel error of a slice decoded with its own attributes "
                           "(intensities 0..1); lower is closer"),
    "reconstruction_sharpness": ("Reconstruction sharpness", "fine detail of the reconstructed slice over the "
                                 "input's (mean gradient magnitude); 1 is as sharp, below 1 is blurred"),
    "edit_identity": ("Edit identity", "fraction of edited slices whose most similar input is their own "
                      "slice; 1 is best, a class template scores about 1/slices"),
    "central_csf_follows_input": ("Central CSF follows input", "correlation over slices between each input's "
                                  "central CSF fraction and its edits'; near 1 when edits keep their own "
                                  "slice's ventricles"),
    "pixel_accuracy": ("Pixel accuracy", "fraction of pixels given their true class; 1 is best"),
    "recon_l2": ("Reconstruction L2", "median pixel error of held-out real cells found in the model "
                 "(latent optimisation); lower is closer"),
    "recon_nll": ("Reconstruction noise NLL", "median negative log-likelihood of the found latents; "
                  "near the real reference means ordinary latents, far above means the fit is forced"),
    "nn_l2": ("Nearest training cell L2", "pixel error of the closest training cell: the baseline a "
              "reconstruction should beat"),
    "recon_seconds_per_cell": ("Seconds per found cell", "time to find one held-out cell in the model"),
    "c2st_real_other_protein": ("C2ST, real vs other protein", "the same critic score between real cells "
                                "of different proteins: what clearly different looks like"),
}


#: segmentation scores: key prefix -> (label, meaning); per class (``f1_interior``) or averaged (``mean_f1``)
_PIXEL_SCORES = {
    "f1": ("F1", "harmonic mean of precision and recall of the pixels; 1 is best"),
    "iou": ("IoU", "overlap of predicted and true pixels over their union; 1 is best"),
    "precision": ("Precision", "fraction of pixels predicted as the class that are; 1 is best"),
    "recall": ("Recall", "fraction of the class's pixels that are found; 1 is best"),
}
_SEGMENTATION_NOTES = {
    "accuracy": ("Accuracy", "fraction of pixels given their true class; 1 is best"),
    "foreground_f1": ("Pixel F1 (foreground vs background)", "F1 of every non-background pixel; 1 is best"),
    "object_precision": ("Object precision", "fraction of predicted objects matching a true one at IoU > 0.5"),
    "object_recall": ("Object recall", "fraction of true objects found by one predicted object at IoU > 0.5"),
    "object_f1": ("Object F1", "F1 of objects matched at IoU > 0.5; 1 is best"),
    "objects_true": ("Objects (true)", "number of annotated objects"),
    "objects_predicted": ("Objects (predicted)", "number of predicted objects"),
}


def _segmentation_note(key: str) -> tuple[str, str] | None:
    """Plain words for segmentation scores, with ``_field_mean`` / ``_field_sd`` over images."""
    for suffix, words in (("_field_mean", "mean over the images"), ("_field_sd", "spread over the images")):
        if key.endswith(suffix):
            base = _segmentation_note(key[:-len(suffix)])
            return (f"{base[0]}, {words}", base[1]) if base else None
    if key in _SEGMENTATION_NOTES:
        return _SEGMENTATION_NOTES[key]
    name, _, rest = key.partition("_")
    if name == "mean" and rest in _PIXEL_SCORES:
        label, meaning = _PIXEL_SCORES[rest]
        return f"Mean {label} (over classes)", meaning
    if name in _PIXEL_SCORES and rest:
        label, meaning = _PIXEL_SCORES[name]
        return f"{label} ({rest.replace('_', ' ')})", meaning
    return None


def _c2st_note(key: str) -> tuple[str, str] | None:
    """Plain words for C2ST keys: c2st[_<setting>][_<class>][_std]."""
    if not key.startswith("c2st") or key == "c2st_setting":
        return None
    parts = key.split("_")[1:]
    std = bool(parts) and parts[-1] == "std"
    parts = parts[:-1] if std else parts
    setting = parts.pop(0) if parts and parts[0] in ("quick",) else "paper"
    label = "C2ST" + (f" ({setting} setting)" if setting != "paper" else "")
    if parts:
        label += f", {' '.join(parts)}"
    if std:
        return f"{label} spread", "standard deviation over the splits"
    return label, ("two-sample critic score of generated against held-out real cells (WGAN-GP critic, "
                   "10 splits); about 0 means indistinguishable, lower is closer")


def _attribute_note(key: str) -> tuple[str, str] | None:
    """Plain words for the attribute metrics (swap accuracy per attribute and class, errors, monotonicity)."""
    for prefix, label, meaning in (
            ("swap_accuracy_", "Swap accuracy", "fraction of edited slices the evaluation classifier assigns "
                                                "to the requested value; 1 is best"),
            ("error_", "Error", "predicted minus requested value of a continuous attribute; 0 is best"),
            ("monotonic_", "Monotonic", "fraction of edited slices whose prediction never falls as the slider "
                                        "rises (an edit that does not move counts too: read with response); "
                                        "1 is best"),
            ("response_", "Response", "how far the prediction moves per unit the slider moves (least-squares "
                                      "slope, mean over slices); 1 is best, 0 is an edit that does not move"),
            ("central_csf_", "Central CSF", "fraction of dark (CSF) pixels in the slice's central half, a "
                                            "ventricle-size proxy, of slices edited to that class; compare "
                                            "with real slices of the class")):
        if key.startswith(prefix):
            return f"{label} ({key[len(prefix):].replace('_', ' ')})", meaning
    return None


def describe_metric(key: str) -> tuple[str, str]:
    """(label, meaning) of a metric key; unknown keys are shown as they are."""
    return (METRIC_NOTES.get(key) or _attribute_note(key) or _c2st_note(key) or _segmentation_note(key)
            or (key, ""))


def metric_table(metrics: dict[str, float]) -> list[tuple[str, float, float | None]]:
    """(key, value, the real data's reference value or None), in report order; ``*_real`` keys are the
    references, shown beside their metric rather than as rows."""
    return [(key, float(value), metrics.get(f"{key}_real")) for key, value in metrics.items()
            if not key.endswith("_real")]


def write_metrics_csv(path, metrics: dict[str, float], extra: dict | None = None, overwrite: bool = False):
    """THE metrics table on disk (CLI ``evaluate --csv``, the Evaluate widget, the benchmarks): one row per
    metric with its key, plain label, value, the real data's reference, meaning, then the ``extra``
    columns (model, data, metric set...). Written atomically; an existing file is kept unless ``overwrite``."""
    import csv
    import io
    from pathlib import Path

    from ..core.atomic import write_atomically

    buffer = io.StringIO()
    extra = dict(extra or {})
    writer = csv.writer(buffer)
    writer.writerow(["metric", "label", "value", "real", "meaning", *extra])
    for key, value, reference in metric_table(metrics):
        label, meaning = describe_metric(key)
        writer.writerow([key, label, f"{value:.6g}", "" if reference is None else f"{reference:.6g}", meaning,
                         *extra.values()])
    data = buffer.getvalue().encode("utf-8")
    return write_atomically(Path(path), lambda handle: handle.write(data), overwrite=overwrite)
