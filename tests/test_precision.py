"""'auto' precision is chosen by a measured probe per device, not by CPU flags (issue: video models)."""

from __future__ import annotations

import torch

from napari_biogan.core import device as device_module
from napari_biogan.core.device import PrecisionProbe, inference_precision, probe_precision


def test_probe_measures_both_precisions_once_per_device(monkeypatch):
    monkeypatch.setattr(device_module, "_probed", {})
    threads = torch.get_num_threads()
    probe = probe_precision(torch.device("cpu"))
    assert probe.device == "cpu" and probe.fp32_s > 0 and (probe.bf16_s is None or probe.bf16_s > 0)
    assert torch.get_num_threads() == threads  # the probe's single thread is given back
    assert probe_precision(torch.device("cpu")) is probe  # measured once per process
    assert ("bf16" if probe.use_bf16 else "fp32") in probe.describe()


def test_auto_follows_the_measurement_and_explicit_choices_are_kept(monkeypatch):
    cpu = torch.device("cpu")

    def dtype_under(precision: str):
        with inference_precision(cpu, precision):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype

    monkeypatch.setattr(device_module, "_probed", {"cpu": PrecisionProbe("cpu", fp32_s=0.010, bf16_s=0.002)})
    assert dtype_under("auto") == torch.bfloat16  # bf16 measured 5x faster
    monkeypatch.setattr(device_module, "_probed", {"cpu": PrecisionProbe("cpu", fp32_s=0.002, bf16_s=0.010)})
    assert dtype_under("auto") == torch.float32  # bf16 measured 5x slower (a CPU without native bf16)
    assert dtype_under("bf16") == torch.bfloat16 and dtype_under("fp32") == torch.float32
    assert not PrecisionProbe("cpu", 0.0105, 0.010).use_bf16  # within 10 %: not worth the precision loss
    assert not PrecisionProbe("mps", 1.0, None).use_bf16


def test_provenance_says_what_auto_chose(monkeypatch):
    from napari_biogan.core.model import Model
    from napari_biogan.core.provenance import provenance

    model = Model.new("dcgan2d", height=16, width=16, latent_dim=8, base_width=8)
    monkeypatch.setattr(device_module, "_probed", {"cpu": PrecisionProbe("cpu", fp32_s=0.002, bf16_s=0.010)})
    assert provenance(model, precision="auto")["precision"] == "auto: fp32"
    assert provenance(model, precision="bf16")["precision"] == "bf16"
