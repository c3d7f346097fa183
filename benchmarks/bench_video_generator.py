"""SAVGAN generator speed: time per 32x64x64 video with and without attention, fp32 and bf16.

    python benchmarks/bench_video_generator.py [--batch 4] [--repeats 5] [--full]

The paper-size G_V ("paper" preset: 3.8 M parameters, Nyström SA at 2k and 16k
tokens) against the same network without attention (the 3DGAN ablation), in
inference mode on the CPU, fp32 and bf16 autocast (the precision the plugin
uses where the CPU supports it). Time per video = fastest of ``--repeats``
batches (after a warm-up batch) / batch size. ``--full`` adds exact attention
(quadratic memory: about 1 GiB per video per attention map at 16k tokens).
Prints the measurements and the ratios from this one run. Targets: attention
costs <= 1.3x, and <= 100 ms per video with bf16 on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import time


def per_video_ms(model, batch: int, repeats: int, precision: str) -> float:
    import torch

    from napari_biogan.core.device import inference_precision

    z = model.latents(batch, seed=0)
    gen = model.nets["generator"]
    with torch.inference_mode(), inference_precision(model.device, precision):
        gen(z)  # warm-up: oneDNN picks its kernels on the first call
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            gen(z)
            best = min(best, time.perf_counter() - start)
    return best / batch * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--full", action="store_true", help="also time exact (N x N) attention")
    args = parser.parse_args()

    import torch

    from napari_biogan.core.device import bf16_supported
    from napari_biogan.core.model import GanModel

    modes = ["none", "nystrom"] + (["full"] if args.full else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; bf16 fast on this CPU: "
          f"{bf16_supported(torch.device('cpu'))}; preset {args.preset}, batch {args.batch}")
    times: dict[tuple[str, str], float] = {}
    for mode in modes:
        model = GanModel.new("savgan", preset=args.preset, attention=mode, seed=0, device="cpu")
        cfg = model.config
        for precision in ("fp32", "bf16"):
            ms = per_video_ms(model, args.batch, args.repeats, precision)
            times[(mode, precision)] = ms
            print(f"{cfg.frames}x{cfg.height}x{cfg.width} attention={mode:<8} {precision}: {ms:8.1f} ms/video",
                  flush=True)
    print("\nratios measured in this run:")
    for precision in ("fp32", "bf16"):
        base = times[("none", precision)]
        for mode in modes[1:]:
            print(f"{precision}: {mode} / no attention = x{times[(mode, precision)] / base:.2f}")
    print(f"bf16 / fp32 (Nyström): x{times[('nystrom', 'bf16')] / times[('nystrom', 'fp32')]:.2f}")


if __name__ == "__main__":
    main()
