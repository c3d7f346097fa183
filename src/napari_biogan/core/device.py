"""Device and precision choice: auto picks cuda, then mps, then cpu."""

from __future__ import annotations

import contextlib
import gc
from typing import TYPE_CHECKING, Iterator

from .errors import DeviceError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str = "auto") -> "torch.device":
    """A torch device from a user's choice; a clear error if it is not available."""
    import torch

    name = (name or "auto").lower()
    if name not in DEVICE_CHOICES:
        raise DeviceError(f"Unknown device '{name}'; choose one of {', '.join(DEVICE_CHOICES)}.")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was asked for, but no CUDA GPU is available here; choose 'auto' or 'cpu'.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("Apple MPS was asked for, but it is not available here; choose 'auto' or 'cpu'.")
    return torch.device(name)


def bf16_supported(device: "torch.device") -> bool:
    """Whether bf16 autocast is fast on this device (CPUs with AVX-512 BF16 / AMX, recent GPUs)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool((probe and probe()) or (amx and amx()))
    return False


@contextlib.contextmanager
def inference_precision(device: "torch.device", precision: str = "auto") -> Iterator[None]:
    """Autocast for inference: bf16 where supported ("auto"/"bf16"), plain fp32 otherwise."""
    import torch

    use_bf16 = precision == "bf16" or (precision == "auto" and bf16_supported(device))
    if use_bf16 and device.type in ("cpu", "cuda"):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def release(module) -> None:
    """Move a model off the GPU and empty the caches, so its memory is really given back."""
    import torch

    if module is not None:
        with contextlib.suppress(Exception):
            module.to("cpu")
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        mps.empty_cache()


def is_out_of_memory(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()
