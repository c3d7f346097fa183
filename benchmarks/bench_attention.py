"""Our Nyström attention vs lucidrains' ``nystrom-attention`` (and vs full attention): time and peak memory.

    python benchmarks/bench_attention.py [--rounds 3] [--repeats 5] [--full]
    nice -n 19 python benchmarks/bench_attention.py          # on a shared machine

The case is the SAGAN block of nn/attention.py (C = 32 channels, f and g to one head
of C/8 = 4, m = 64 landmarks, batch 2, fp32 on the CPU) on 3D feature maps of
16x32x32 (16k tokens) and 32x64x64 (131k tokens), measured for training (forward +
backward of ``out.sum()``) and for inference (forward under ``torch.no_grad()``),
beside the implementation most people would pick, lucidrains' ``NystromAttention``
(PyPI ``nystrom-attention``; not a project dependency: install it into the venv with
``.venv/bin/pip install nystrom-attention``; its cases are skipped when it is absent).

lucidrains' module is configured as the closest equivalent: ``dim=C, dim_head=C/8,
heads=1, num_landmarks=64, pinv_iterations=6, residual=False``. The two do comparable,
not identical, work: its input is the token sequence (B, N, C), ours the map
(B, C, *spatial), each in its natural layout; it projects q, k and v (one head of
C/8 = 4 channels) on every token and its output back to C on every token, while ours
projects q and k on every token and folds the value projection (to C channels,
SAGAN's h) into the m landmark averages, so its attention products carry 4 value
channels and ours 32; its landmarks are means of contiguous token segments, ours
means of cube-like map cells (both m = 64 segment means); it pads N to a multiple
of m (no padding at these sizes); our block adds the residual x + gamma * out, its
block (residual=False) does not; its pinv scale is one maximum over the whole batch,
ours per sample; both run 6 Newton-Schulz iterations in fp32.

Every case runs in its own fresh subprocess; cases are interleaved (all cases of a
round, then the next round), so a burst of load from other jobs hits them alike.
Peak memory: the growth of the process's peak resident set size (``ru_maxrss``)
over the first pass once module and input exist (every temporary of the pass,
forward and backward). Time: the fastest of ``--repeats`` passes after it. The
table gives, per case, the best time over the rounds and the spread (slowest
round's best); ratios are lucidrains / ours per round, as median and range.
``--full`` adds our full (exact) attention at 2k and 16k tokens, against ours;
``--baseline FILE`` adds an earlier version of nn/attention.py (same cases).
``--threads`` sets torch's thread count in the subprocesses (default: torch's).
``--live-memory`` fixes glibc's mmap threshold (MALLOC_MMAP_THRESHOLD_=131072) in
the subprocesses: by default glibc raises it as large blocks are freed and then
keeps freed blocks (per thread) for reuse, which the resident set size counts;
with it fixed, peak memory is that of the live tensors (times are then slower:
every large block is a fresh mapping). Both implementations are measured alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SHAPES = {"2k": (8, 16, 16), "16k": (16, 32, 32), "131k": (32, 64, 64)}
PASSES = ("train", "infer")


def _lucidrains_available() -> bool:
    try:
        import nystrom_attention  # noqa: F401
    except ImportError:
        return False
    return True


def load_baseline(path: str):
    """An earlier nn/attention.py (e.g. ``git show HEAD:src/napari_biogan/nn/attention.py > old.py``) as a module.

    Loaded inside the napari_biogan.nn package, so its relative imports (``.chunks``) resolve.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("napari_biogan.nn._baseline_attention", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_case(impl: str, size: str, mode: str, batch: int, channels: int, landmarks: int, repeats: int,
             threads: int, baseline: str | None = None) -> dict:
    """One measurement, in this process (called in a fresh subprocess)."""
    import resource

    import torch

    if threads:
        torch.set_num_threads(threads)

    from napari_biogan.nn.attention import SelfAttention

    torch.manual_seed(0)
    shape = SHAPES[size]
    if impl == "lucidrains":
        from nystrom_attention import NystromAttention

        module = NystromAttention(dim=channels, dim_head=channels // 8, heads=1, num_landmarks=landmarks,
                                  pinv_iterations=6, residual=False)
        x = torch.randn(batch, shape[0] * shape[1] * shape[2], channels)
    else:
        if impl == "baseline":  # an earlier version of nn/attention.py, loaded from a file
            SelfAttention = load_baseline(baseline).SelfAttention  # noqa: N806
        module = SelfAttention(channels, "full" if impl == "full" else "nystrom", landmarks=landmarks)
        with torch.no_grad():
            module.gamma.fill_(1.0)  # so the attention path is in the graph
        x = torch.randn(batch, channels, *shape)
    x.requires_grad_(mode == "train")

    def once() -> float:
        start = time.perf_counter()
        if mode == "train":
            module(x).sum().backward()
        else:
            with torch.no_grad():
                module(x)
        elapsed = time.perf_counter() - start
        x.grad = None
        module.zero_grad(set_to_none=True)
        return elapsed

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    first = once()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base  # KiB on Linux; one cold pass
    times = [once() for _ in range(repeats)] if first < 5.0 else [first]
    return {"time_s": min(times), "peak_mb": peak / 1024}


def _child(args: argparse.Namespace, impl: str, size: str, mode: str) -> dict | str:
    command = [sys.executable, __file__, "--case", impl, size, mode, "--batch", str(args.batch),
               "--channels", str(args.channels), "--landmarks", str(args.landmarks), "--repeats", str(args.repeats),
               "--threads", str(args.threads)] + (["--baseline", args.baseline] if args.baseline else [])
    env = os.environ.copy()
    if args.live_memory:  # glibc: blocks >= 128 KiB mmapped and returned when freed, not kept for reuse
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return f"failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--landmarks", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per subprocess (fastest counts)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of fresh subprocesses")
    parser.add_argument("--baseline", metavar="FILE", help="also an earlier nn/attention.py, e.g. from "
                        "git show <commit>:src/napari_biogan/nn/attention.py > before.py")
    parser.add_argument("--live-memory", action="store_true",
                        help="fix glibc's mmap threshold in the subprocesses, so peak memory counts live tensors "
                             "rather than freed blocks the allocator keeps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sizes", nargs="+", default=["16k", "131k"], choices=list(SHAPES))
    parser.add_argument("--full", action="store_true", help="also our full attention (2k and 16k tokens, training)")
    parser.add_argument("--case", nargs=3, metavar=("IMPL", "SIZE", "PASS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:  # child process: one measurement, printed as JSON
        impl, size, mode = args.case
        print(json.dumps(run_case(impl, size, mode, args.batch, args.channels, args.landmarks, args.repeats,
                                  args.threads, args.baseline)))
        return

    import torch

    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, CPU; batch {args.batch}, "
          f"C = {args.channels}, one head of C/8, m = {args.landmarks} landmarks; fp32; "
          f"{args.rounds} rounds x {args.repeats} passes; load average {os.getloadavg()[0]:.1f}", flush=True)
    impls = ("ours", "lucidrains") + (("baseline",) if args.baseline else ())
    cases = [(impl, size, mode) for size in args.sizes for mode in PASSES for impl in impls]
    if not _lucidrains_available():
        print("lucidrains' nystrom-attention is not installed (.venv/bin/pip install nystrom-attention): "
              "its cases are skipped")
        cases = [case for case in cases if case[0] != "lucidrains"]
    if args.full:  # full attention keeps ~3 N x N fp32 matrices per sample: 2k and 16k only (16k: ~6 GB)
        cases += [(impl, size, "train") for size in ("2k", "16k") for impl in ("ours", "full")
                  if (impl, size, "train") not in cases]
    results: dict[tuple[str, str, str], list[dict]] = {case: [] for case in cases}
    for round_ in range(args.rounds):
        for case in cases:
            result = _child(args, *case)
            if isinstance(result, str):
                print(f"round {round_ + 1} {' '.join(case)}: {result}", flush=True)
                continue
            results[case].append(result)
            print(f"round {round_ + 1} {case[1]:>5} {case[2]:>5} {case[0]:>10}: {result['time_s'] * 1000:9.1f} ms "
                  f"{result['peak_mb']:8.1f} MB", flush=True)

    print(f"\nbest over {args.rounds} rounds (slowest round's best in brackets), peak memory (max over rounds):")
    for case, runs in results.items():
        if runs:
            times = [r["time_s"] * 1000 for r in runs]
            print(f"{case[1]:>5} {case[2]:>5} {case[0]:>10}: {min(times):9.1f} ms [{max(times):8.1f}] "
                  f"{max(r['peak_mb'] for r in runs):8.1f} MB")
    print("\nratios per round (median, range):")
    for other, label in (("lucidrains", "lucidrains / ours"), ("baseline", "baseline / ours"), ("full", "full / ours")):
        for size in SHAPES:
            for mode in PASSES:
                ours, theirs = results.get(("ours", size, mode), []), results.get((other, size, mode), [])
                if not ours or not theirs:
                    continue
                time_ratios = [t["time_s"] / o["time_s"] for o, t in zip(ours, theirs)]
                mem_ratios = [t["peak_mb"] / max(o["peak_mb"], 1e-3) for o, t in zip(ours, theirs)]
                print(f"{label:>18} {size:>5} {mode:>5}: time x{statistics.median(time_ratios):.2f} "
                      f"({min(time_ratios):.2f}-{max(time_ratios):.2f}), memory "
                      f"x{statistics.median(mem_ratios):.2f} ({min(mem_ratios):.2f}-{max(mem_ratios):.2f})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
