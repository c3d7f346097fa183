"""fp32 against bf16 autocast for every shipped model that samples from latents, and what "auto" picks.

    python benchmarks/bench_precision.py [--threads 2] [--repeats 7] [--batches 1 16]

"auto" precision takes bf16 where one small measured probe (``core/device.probe_precision``)
found it faster on this device, for every model alike. This script checks that choice model
by model: the time of ``Model.sample`` (the path Generate, Explore and the CLI use) at
batch 1 (one Explore render) and batch 16 (Generate's chunk), fp32 and bf16 taking turns,
the fastest of ``--repeats`` after a warm-up of each. Prints the times, the fp32 / bf16
ratio (above 1: bf16 is faster) and the probe's own measurement, all from this one run.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()

    import torch

    from napari_biogan.core.device import bf16_supported, probe_precision
    from napari_biogan.core.model import Model
    from napari_biogan.core.zoo import list_models

    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU flags say bf16: "
          f"{bf16_supported(cpu)}; {probe_precision(cpu).describe()}; load average {os.getloadavg()[0]:.1f}")
    for info in list_models(include_user=False):
        model = Model.load(info.path, device="cpu")
        if not model.has_latent or model.run_inputs():  # encoders, segmenters, classifiers run from images
            continue
        row = []
        for batch in args.batches:
            best = {"fp32": float("inf"), "bf16": float("inf")}
            for precision in best:  # warm-up: oneDNN picks its kernels on the first call
                model.sample(batch, seed=0, precision=precision)
            for repeat in range(args.repeats):
                for precision in best:
                    start = time.perf_counter()
                    model.sample(batch, seed=repeat, precision=precision)
                    best[precision] = min(best[precision], time.perf_counter() - start)
            row.append(f"batch {batch}: fp32 {best['fp32'] * 1e3:7.1f} ms, bf16 {best['bf16'] * 1e3:7.1f} ms "
                       f"(fp32 / bf16 x{best['fp32'] / best['bf16']:.2f})")
        print(f"{info.name:24s} " + "; ".join(row), flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
