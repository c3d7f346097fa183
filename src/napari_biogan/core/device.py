"""Device and precision choice: auto picks cuda, then mps, then cpu."""

from __future__ import annotations

import contextlib
import dataclasses
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
    """Whether the hardware reports bf16 support (AVX-512 BF16 / AMX, recent GPUs): a hint for
    benchmarks; "auto" precision goes by :func:`probe_precision`, which measures."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool((probe and probe()) or (amx and amx()))
    return False


#: "auto" takes bf16 only where the probe ran it at least this much faster than fp32
BF16_MIN_SPEEDUP = 1.1
_probed: dict[str, "PrecisionProbe"] = {}


@dataclasses.dataclass(frozen=True)
class PrecisionProbe:
    """What "auto" precision measured on one device: median seconds of the same small generator-like
    workload (a transposed 3D convolution + an attention-like softmax) in fp32 and under bf16 autocast:
    the fastest of a few interleaved runs each."""

    device: str
    fp32_s: float
    bf16_s: float | None  # None: bf16 autocast does not run here

    @property
    def use_bf16(self) -> bool:
        return self.bf16_s is not None and self.fp32_s >= BF16_MIN_SPEEDUP * self.bf16_s

    def describe(self) -> str:
        if self.bf16_s is None:
            return f"auto precision on {self.device}: fp32 (bf16 does not run here)"
        return (f"auto precision on {self.device}: {'bf16' if self.use_bf16 else 'fp32'} (probe: fp32 "
                f"{self.fp32_s * 1e3:.1f} ms, bf16 {self.bf16_s * 1e3:.1f} ms)")


def probe_precision(device: "torch.device", repeats: int = 5) -> PrecisionProbe:
    """Measure, once per device and process, whether bf16 autocast is faster than fp32 here.

    Flags such as AVX-512 BF16 say what an instruction set has, not what this PyTorch build
    makes of it (on a CPU without native bf16, autocast is about 5x SLOWER): so time it.
    """
    import time

    import torch

    key = str(device)
    if key in _probed:
        return _probed[key]
    if device.type not in ("cpu", "cuda"):
        _probed[key] = PrecisionProbe(key, 1.0, None)
        return _probed[key]
    generator = torch.Generator().manual_seed(0)
    layer = torch.nn.ConvTranspose3d(16, 8, 4, stride=2, padding=1).to(device)
    x = torch.randn(1, 16, 4, 16, 16, generator=generator).to(device)
    tokens = torch.randn(1, 1024, 32, generator=generator).to(device)

    def work():
        with torch.inference_mode():
            y = layer(x)
            (tokens @ tokens.transpose(1, 2)[..., :64]).softmax(-1)
            return y

    def once(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    # interleaved, after a warm-up of each, and the fastest of each kept: other work on the machine
    # (napari repainting, a training) only ever adds time, so the minimum is the fair comparison
    # one thread: with every core busy, thread barriers add tens of ms at random to either side
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        once(False)
        try:
            once(True)
        except (RuntimeError, TypeError):  # no bf16 kernels for this device/build
            _probed[key] = PrecisionProbe(key, min(once(False) for _ in range(repeats)), None)
            return _probed[key]
        fp32, bf16 = float("inf"), float("inf")
        for _ in range(repeats):
            fp32, bf16 = min(fp32, once(False)), min(bf16, once(True))
    finally:
        torch.set_num_threads(threads)
    _probed[key] = PrecisionProbe(key, fp32, bf16)
    return _probed[key]


@contextlib.contextmanager
def inference_precision(device: "torch.device", precision: str = "auto") -> Iterator[None]:
    """Autocast for inference: "bf16" always, "auto" where the measured probe found bf16 faster, else fp32."""
    import torch

    use_bf16 = precision == "bf16" or (precision == "auto" and probe_precision(device).use_bf16)
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
