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
    "pixel_accuracy": ("Pixel accuracy", "fraction of pixels given their true class; 1 is best"),
}


def _attribute_note(key: str) -> tuple[str, str] | None:
    """Plain words for the attribute metrics (swap accuracy per attribute and class, errors, monotonicity)."""
    for prefix, label, meaning in (
            ("swap_accuracy_", "Swap accuracy", "fraction of edited slices the evaluation classifier assigns "
                                                "to the requested value; 1 is best"),
            ("error_", "Error", "predicted minus requested value of a continuous attribute; 0 is best"),
            ("monotonic_", "Monotonic", "fraction of slider moves the prediction follows; 1 is best")):
        if key.startswith(prefix):
            return f"{label} ({key[len(prefix):].replace('_', ' ')})", meaning
    return None


def describe_metric(key: str) -> tuple[str, str]:
    """(label, meaning) of a metric key; unknown keys are shown as they are."""
    return METRIC_NOTES.get(key) or _attribute_note(key) or (key, "")


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
