"""Video training and sampling cost: one full SAVGAN step vs the 3DGAN step, the loop's own overhead,
and sampling throughput of the shipped models.

    python benchmarks/bench_video_training.py [--part step|overhead|recipes|throughput|all] [--preset paper]
                                              [--batch 4] [--repeats 2] [--threads 0]

step: one full training step (5 critic steps on D_V and D_I with their gradient penalties, then
  one G_V step) of SAVGAN (Nyström attention) and of the 3DGAN (the same network without
  attention) at the ``--preset`` size (paper: 32x64x64, batch 4, the paper's memory figure), each
  in a fresh subprocess: wall time (fastest of the first and ``--repeats`` more steps) and peak
  memory (growth of the process's peak resident set), first of G_V's forward + backward alone
  (what the reference's figure measured), then of the whole step. The public reference
  implementation needs 88 s and 9.2 GB for its Nyström G_V alone (REFERENCE section 1).
overhead: the one training loop (core.training.Trainer: data batches, RNG bookkeeping, events,
  previews every 50 steps, checkpoints every 200) against the bare family step on the same data,
  "cpu-small" preset, the loop and the bare steps taking turns: (loop - bare) / loop per step.
recipes: one bare "cpu-small" SAVGAN step (batch 8) with the paper's recipe and with the faster
  ones in :data:`RECIPES` (hinge loss, one critic step, R1), taking turns; times and ratios.
throughput: videos per second at batch 16 of every shipped video model, fp32 and bf16 autocast.

Prints the measurements and ratios from this one run (shared CPUs are noisy: compare ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def one_step_case(attention: str, preset: str, batch: int, repeats: int) -> dict:
    """Time and peak memory of full SAVGAN/3DGAN training steps, in this (fresh) process."""
    import resource

    import torch

    from napari_biogan.core.contract import TrainContext
    from napari_biogan.core.model import Model
    from napari_biogan.families.savgan import savgan_config

    config = savgan_config(preset, attention=attention)
    model = Model.new("savgan", config=config, seed=0)
    family = model.family
    hparams = {**family.default_hparams(), "batch_size": batch}
    optimizers = family.make_optimizers(model.nets, hparams)
    real = torch.rand(batch, config.channels, config.frames, config.height, config.width) * 2 - 1
    rng = torch.Generator().manual_seed(0)
    ctx = TrainContext(config, hparams, 0, rng, model.device)

    def once() -> float:
        start = time.perf_counter()
        family.train_step(model.nets, optimizers, lambda: {"image": real}, ctx)
        return time.perf_counter() - start

    def generator_pass(size: int = batch) -> float:  # what the reference's 88 s / 9.2 GB measured: G_V fwd + bwd
        start = time.perf_counter()
        model.nets["generator"](model.latents(size, seed=0)).square().mean().backward()
        model.nets["generator"].zero_grad(set_to_none=True)
        return time.perf_counter() - start

    def resident_kb() -> int:  # the process's resident set now (ru_maxrss is its peak so far)
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    generator_pass(1)  # thread pools, kernel caches and attention workers start here, not in the figure
    before, peak_before = resident_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    g_first = generator_pass()  # first at full batch: its peak memory is the generator's alone
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # growth from the resident set before the pass to the new peak; if the pass set no new peak,
    # the old peak minus the start is an upper bound
    g_peak_mb = (max(peak_after, peak_before) - before) / 1024
    base = peak_after
    g_time = min([g_first] + [generator_pass() for _ in range(repeats)])
    first = once()
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    # the fastest of every step: the first one only pays kernel selection, other jobs only add time
    times = [first] + [once() for _ in range(repeats)]
    return {"time_s": min(times), "first_s": first, "peak_mb": peak_mb, "g_peak_mb": g_peak_mb, "g_time_s": g_time,
            "generator_params": sum(p.numel() for p in model.nets["generator"].parameters())}


def run_subprocess(args: list[str], live_memory: bool = False) -> dict:
    env = dict(os.environ)
    if live_memory:  # glibc: blocks >= 128 KiB mmapped and returned when freed, so the peak counts live tensors
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    out = subprocess.run([sys.executable, __file__, "--case", *args], capture_output=True, text=True, check=True,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_step(args) -> None:
    print(f"Full training step (5 critic + 1 generator), preset {args.preset}, batch {args.batch}, fp32 CPU, "
          f"load average {os.getloadavg()[0]:.1f}{', live-tensor memory (mmap threshold fixed)' if args.live_memory else ''}")
    results = {}
    for attention in ("nystrom", "none"):
        results[attention] = run_subprocess([attention, args.preset, str(args.batch), str(args.repeats),
                                             str(args.threads)], args.live_memory)
        r = results[attention]
        name = "SAVGAN (Nyström)" if attention == "nystrom" else "3DGAN (no attention)"
        print(f"  {name}: {r['time_s']:.2f} s/step (first {r['first_s']:.2f} s), peak +{r['peak_mb']:.0f} MB; "
              f"G_V alone fwd+bwd {r['g_time_s']:.2f} s, peak +{r['g_peak_mb']:.0f} MB; "
              f"{r['generator_params'] / 1e6:.2f} M parameters")
    s, d = results["nystrom"], results["none"]
    print(f"  SAVGAN / 3DGAN step time: {s['time_s'] / d['time_s']:.2f}x (target <= 1.3x); "
          f"memory {s['peak_mb'] / max(d['peak_mb'], 1):.2f}x")
    print(f"  reference Nyström G_V alone: 88 s, 9.2 GB -> our G_V alone {88 / s['g_time_s']:.0f}x faster, "
          f"{9.2 * 1024 / max(s['g_peak_mb'], 1):.0f}x less memory (target >= 50x); our whole step "
          f"{9.2 * 1024 / max(s['peak_mb'], 1):.0f}x less than the reference's G_V alone")


def part_overhead(args) -> None:
    import numpy as np
    import torch

    from napari_biogan.core.model import Model
    from napari_biogan.core.training import Trainer, TrainSettings

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    clips = rng.random((64, 16, 32, 32)).astype(np.float32)
    clips[:, :, 8:24, 8:24] += np.linspace(0, 1, 16)[None, :, None, None]  # something that changes in time
    steps, rounds = 50, 3
    loop_times, bare_times = [], []
    for round_ in range(rounds):
        model = Model.new("savgan", seed=round_)
        data = model.family.prepare_data(clips, model.config)
        # the loop as users run it: previews every 50 steps, a checkpoint every 200 (here 1 per round,
        # i.e. 4x more often than by default), events, RNG bookkeeping
        settings = TrainSettings(steps=steps, seed=round_, output=str(Path(args.tmp) / f"overhead{round_}.safetensors"),
                                 overwrite=True, checkpoint_every=steps - 1, preview_every=50,
                                 hparams={"batch_size": 8})
        trainer = Trainer(model, data, settings)
        start = time.perf_counter()
        trainer.run_all()
        loop_times.append((time.perf_counter() - start) / steps)

        bare_times.append(bare_step_time(data, {"batch_size": 8}, round_, steps))
    loop, bare = np.array(loop_times), np.array(bare_times)
    overhead = (loop - bare) / loop
    print(f"Loop overhead, cpu-small preset, batch 8, {steps} steps x {rounds} rounds (loop and bare in turn):")
    print(f"  loop {loop.mean() * 1000:.0f} ± {loop.std() * 1000:.0f} ms/step, bare step "
          f"{bare.mean() * 1000:.0f} ± {bare.std() * 1000:.0f} ms/step, overhead {overhead.mean() * 100:.1f} ± "
          f"{overhead.std() * 100:.1f} % (target <= 15 %)")


def bare_step_time(data, hparams: dict, seed: int, steps: int) -> float:
    """Seconds per bare family step (no loop: pre-made batches) of a fresh "cpu-small" SAVGAN with ``hparams``."""
    import torch

    from napari_biogan.core.contract import TrainContext
    from napari_biogan.core.model import Model

    model = Model.new("savgan", seed=seed)
    family = model.family
    hparams = {**family.default_hparams(), **hparams}
    optimizers = family.make_optimizers(model.nets, hparams)
    generator = torch.Generator().manual_seed(seed)
    size = hparams["batch_size"]
    batches = [data.batch(size, generator)["image"] for _ in range(8)]  # pre-made: no data work at all
    ctx = TrainContext(model.config, hparams, 0, generator, model.device)
    counter = iter(range(10 ** 9))
    start = time.perf_counter()
    for _ in range(steps):
        family.train_step(model.nets, optimizers, lambda: {"image": batches[next(counter) % 8]}, ctx)
    return (time.perf_counter() - start) / steps


#: training recipes compared by ``--part recipes``: the paper's, and the faster ones measured in the README
RECIPES = {"paper (WGAN-GP, 5 critic steps)": {},
           "hinge, 1 critic step": {"loss": "hinge", "n_critic": 1},
           "hinge + R1, 1 critic step": {"loss": "hinge", "n_critic": 1, "r1_weight": 1.0}}


def part_recipes(args) -> None:
    import numpy as np
    import torch

    from napari_biogan.core.model import Model

    if args.threads:
        torch.set_num_threads(args.threads)
    clips = np.random.default_rng(0).random((64, 16, 32, 32)).astype(np.float32)
    model = Model.new("savgan", seed=0)
    data = model.family.prepare_data(clips, model.config)
    steps, rounds, batch = 10, 3, 8  # batch 8: what the shipped models trained with
    times = {name: [] for name in RECIPES}
    for round_ in range(rounds):  # the recipes take turns, so load changes hit them alike
        for name, hparams in RECIPES.items():
            times[name].append(bare_step_time(data, {"batch_size": batch, **hparams}, round_, steps))
    paper = np.array(times[next(iter(RECIPES))])
    print(f"Training step by recipe, cpu-small SAVGAN, batch {batch}, {steps} steps x {rounds} rounds in turn:")
    for name, values in times.items():
        values = np.array(values)
        ratio = values / paper
        print(f"  {name}: {values.mean() * 1000:.0f} ± {values.std() * 1000:.0f} ms/step, "
              f"{ratio.mean():.2f}x the paper's [{ratio.min():.2f}-{ratio.max():.2f}]")


def part_throughput(args) -> None:
    import torch

    from napari_biogan.core.model import Model
    from napari_biogan.core.zoo import list_models

    if args.threads:
        torch.set_num_threads(args.threads)
    print("Sampling throughput, batch 16 (fastest of 3 batches after a warm-up):")
    for info in list_models():
        if info.family not in ("savgan", "tganv2") or not info.shipped:
            continue
        model = Model.load(info.path, device="cpu")
        row = []
        for precision in ("fp32", "bf16"):
            model.sample(16, seed=0, precision=precision)
            best = float("inf")
            for repeat in range(3):
                start = time.perf_counter()
                model.sample(16, seed=repeat, precision=precision)
                best = min(best, time.perf_counter() - start)
            row.append(f"{precision} {16 / best:.1f} videos/s")
        print(f"  {info.name} ({'x'.join(map(str, (model.config.frames, model.config.height, model.config.width)))}): "
              + ", ".join(row))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        attention, preset, batch, repeats, threads = sys.argv[2:7]
        if int(threads):
            import torch

            torch.set_num_threads(int(threads))
        print(json.dumps(one_step_case(attention, preset, int(batch), int(repeats))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("step", "overhead", "recipes", "throughput", "all"), default="all")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--live-memory", action="store_true",
                        help="step part: fix glibc's mmap threshold so peak memory counts live tensors, not "
                             "freed blocks glibc keeps (times are then slower)")
    parser.add_argument("--tmp", default="/tmp", help="where the overhead part writes its checkpoints")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d')}, torch {__import__('torch').__version__}, {os.cpu_count()} CPUs")
    for part, run in (("step", part_step), ("overhead", part_overhead), ("recipes", part_recipes),
                      ("throughput", part_throughput)):
        if args.part in (part, "all"):
            run(args)


if __name__ == "__main__":
    main()
