"""Nyström vs full self-attention: time and peak memory of forward + backward.

    python benchmarks/bench_attention.py [--batch 2] [--channels 32] [--landmarks 64] [--repeats 3]

The case is the SAGAN block of nn/attention.py (C = 32 channels, f and g to C/8)
on 3D feature maps of 8x16x16 (2k tokens), 16x32x32 (16k) and 32x64x64 (131k),
batch 2, forward + backward, fp32 on the CPU. Each case runs in its own fresh
subprocess; peak memory is the growth of the process's peak resident set size
(``ru_maxrss``) during the first forward + backward pass over its value once the
inputs exist, so it counts every temporary of the pass (later passes only add
allocator fragmentation). Time: the fastest of ``--repeats`` runs after that
first one (the first one alone for cases slower than 5 s). The machine's load
average is printed before and after: on a shared CPU, times are noisy. Full
attention is skipped where its N x N matrices alone would not fit in memory.
Prints the measurements and the full / Nyström ratios from this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SHAPES = {"2k": (8, 16, 16), "16k": (16, 32, 32), "131k": (32, 64, 64)}


def run_case(mode: str, shape: tuple[int, ...], batch: int, channels: int, landmarks: int, repeats: int) -> dict:
    """One measurement, in this process (called in a fresh subprocess)."""
    import resource

    import torch

    from napari_biogan.nn.attention import SelfAttention

    torch.manual_seed(0)
    module = SelfAttention(channels, mode, landmarks=landmarks)
    with torch.no_grad():
        module.gamma.fill_(1.0)  # so the attention path is in the graph
    x = torch.randn(batch, channels, *shape, requires_grad=True)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def once() -> float:
        start = time.perf_counter()
        module(x).sum().backward()
        x.grad = None
        module.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    first = once()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base  # KiB on Linux; one cold pass
    times = [once() for _ in range(repeats)] if first < 5.0 else [first]
    return {"time_s": min(times), "peak_mb": peak / 1024, "runs": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--landmarks", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-limit-gb", type=float, default=12.0,
                        help="skip full attention when its N x N matrices need more than this")
    parser.add_argument("--case", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:  # child process: one measurement, printed as JSON
        mode, size = args.case
        print(json.dumps(run_case(mode, SHAPES[size], args.batch, args.channels, args.landmarks, args.repeats)))
        return

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; batch {args.batch}, "
          f"C = {args.channels}, m = {args.landmarks} landmarks; forward + backward, fp32; "
          f"load average {os.getloadavg()[0]:.1f}")
    results: dict[tuple[str, str], dict] = {}
    for size, shape in SHAPES.items():
        n = shape[0] * shape[1] * shape[2]
        for mode in ("nystrom", "full"):
            # full attention keeps ~3 N x N fp32 matrices per sample alive (scores, softmax, its gradient)
            need_gb = 3 * args.batch * n * n * 4 / 2 ** 30
            if mode == "full" and need_gb > args.memory_limit_gb:
                print(f"{size:>5} ({n:>6} tokens) {mode:>8}: skipped, needs about {need_gb:,.0f} GB")
                continue
            command = [sys.executable, __file__, "--case", mode, size, "--batch", str(args.batch),
                       "--channels", str(args.channels), "--landmarks", str(args.landmarks),
                       "--repeats", str(args.repeats)]
            out = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
            if out.returncode != 0:
                print(f"{size:>5} ({n:>6} tokens) {mode:>8}: failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results[(size, mode)] = result
            print(f"{size:>5} ({n:>6} tokens) {mode:>8}: {result['time_s'] * 1000:9.1f} ms  "
                  f"{result['peak_mb']:9.1f} MB peak", flush=True)
    print("\nfull / Nyström, measured in this run:")
    for size in SHAPES:
        full, nys = results.get((size, "full")), results.get((size, "nystrom"))
        if full and nys:
            print(f"{size:>5}: time x{full['time_s'] / nys['time_s']:.1f}, "
                  f"memory x{full['peak_mb'] / max(nys['peak_mb'], 1e-3):.1f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if ("131k", "nystrom") in results:
        print(f" 131k Nyström peak: {results[('131k', 'nystrom')]['peak_mb'] / 1024:.2f} GB (target: fits in 2 GB)")


if __name__ == "__main__":
    main()
