"""SAVGAN generator speed: time per 32x64x64 video with and without attention, fp32 and bf16.

    python benchmarks/bench_video_generator.py [--batch 4] [--repeats 5] [--full]

The paper-size G_V ("paper" preset: 3.8 M parameters, Nyström SA at 2k and 16k
tokens) against the same network without attention (the 3DGAN ablation), in
inference mode on the CPU, fp32 and bf16 autocast (the precision the plugin
uses where the CPU supports it). Time per video = fastest of ``--repeats``
batches (after a warm-up batch) / batch size; the variants take turns batch by
batch, so load changes on a shared machine do not bias the ratios. ``--full`` adds exact attention
(quadratic memory: about 1 GiB per video per attention map at 16k tokens).
``--baseline FILE`` adds the Nyström generator with an earlier nn/attention.py (same weights;
e.g. ``git show HEAD:src/napari_biogan/nn/attention.py > old.py``), timed in the same turns;
``--landmarks 32 16`` adds the Nyström generator with fewer landmarks in every attention layer
(a model change: the weights stay, the approximation coarsens; the speed side of that trade).
Prints the measurements and the ratios from this one run. Targets: attention
costs <= 1.3x, and <= 100 ms per video with bf16 on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import time


def interleaved_ms(models: dict, batch: int, repeats: int, precision: str) -> dict[str, float]:
    """Fastest time per video of each model; the models take turns, so a load change on a
    shared machine hits them alike instead of biasing the ratio."""
    import torch

    from napari_biogan.core.device import inference_precision

    best = {name: float("inf") for name in models}
    with torch.inference_mode():
        for name, model in models.items():  # warm-up: oneDNN picks its kernels on the first call
            with inference_precision(model.device, precision):
                model.nets["generator"](model.latents(batch, seed=0))
        for _ in range(repeats):
            for name, model in models.items():
                z = model.latents(batch, seed=0)
                with inference_precision(model.device, precision):
                    start = time.perf_counter()
                    model.nets["generator"](z)
                    best[name] = min(best[name], time.perf_counter() - start)
    return {name: value / batch * 1000 for name, value in best.items()}


def attention_blocks(model) -> list:
    """The generator's self-attention blocks."""
    from napari_biogan.nn.attention import SelfAttention

    return [block for block in model.nets["generator"].modules() if isinstance(block, SelfAttention)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--full", action="store_true", help="also time exact (N x N) attention")
    parser.add_argument("--baseline", metavar="FILE", help="also the Nyström generator with an earlier nn/attention.py")
    parser.add_argument("--landmarks", type=int, nargs="*", default=[], help="also Nyström with these landmark counts")
    args = parser.parse_args()

    import torch

    from napari_biogan.core.device import bf16_supported
    from napari_biogan.core.model import GanModel

    fewer = [f"m{m}" for m in args.landmarks]
    modes = ["none", "nystrom"] + (["full"] if args.full else []) + (["baseline"] if args.baseline else []) + fewer
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; bf16 fast on this CPU: "
          f"{bf16_supported(torch.device('cpu'))}; preset {args.preset}, batch {args.batch}; "
          f"load average {os.getloadavg()[0]:.1f}")
    models = {mode: GanModel.new("savgan", preset=args.preset, attention="nystrom" if mode == "baseline" or mode in fewer
                                 else mode, seed=0, device="cpu") for mode in modes}
    for mode, count in zip(fewer, args.landmarks):
        for block in attention_blocks(models[mode]):
            block.landmarks = count
    if args.baseline:  # the same network and weights, its attention blocks running the earlier code
        from bench_attention import load_baseline

        earlier = load_baseline(args.baseline).SelfAttention
        for block in attention_blocks(models["baseline"]):
            block.__class__ = earlier
    cfg = models["none"].config
    times: dict[tuple[str, str], float] = {}
    for precision in ("fp32", "bf16"):
        for mode, ms in interleaved_ms(models, args.batch, args.repeats, precision).items():
            times[(mode, precision)] = ms
            print(f"{cfg.frames}x{cfg.height}x{cfg.width} attention={mode:<8} {precision}: {ms:8.2f} ms/video",
                  flush=True)
    print("\nratios measured in this run:")
    for precision in ("fp32", "bf16"):
        base = times[("none", precision)]
        for mode in modes[1:]:
            print(f"{precision}: {mode} / no attention = x{times[(mode, precision)] / base:.2f}")
    print(f"bf16 / fp32 (Nyström): x{times[('nystrom', 'bf16')] / times[('nystrom', 'fp32')]:.2f}")
    if args.baseline:
        for precision in ("fp32", "bf16"):
            base = times[("none", precision)]
            print(f"{precision}: attention's cost (ms/video), earlier / this code: "
                  f"{times[('baseline', precision)] - base:.2f} / {times[('nystrom', precision)] - base:.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
