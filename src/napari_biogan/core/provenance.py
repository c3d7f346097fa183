"""The one provenance builder: what every generated layer and file records about where it came from."""

from __future__ import annotations

from typing import Any


def provenance(model, **extra: Any) -> dict[str, Any]:
    """Family, model name and sha256 of the file it was loaded from, package version, plus ``extra``
    (seed, controls, source layer, keyframes...). JSON-able; written into exported TIFFs."""
    from .. import __version__

    record = {"family": model.family.name, "model": model.name, "model_sha256": model.sha256,
              "package_version": __version__}
    record.update({k: _plain(v) for k, v in extra.items() if v is not None})
    if record.get("precision") == "auto":  # what "auto" chose here, by measurement: files say what ran
        from .device import probe_precision

        probe = probe_precision(model.device)
        record["precision"] = f"auto: {'bf16' if probe.use_bf16 else 'fp32'}"
    return record


def _plain(value: Any) -> Any:
    """Tuples, numpy scalars and small arrays as JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
