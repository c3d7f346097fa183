"""Per-frame contrast of generated videos against real clips: the time-boundary fade, measured.

    python benchmarks/bench_video_fade.py MODEL [MODEL ...] [--dataset t98g] [-n 64] [--seeds 0 1 2]
                                          [--plot docs/figures/t98g_frame_contrast.png]

MODEL is a zoo name, a .safetensors file, or ``FILE:raw`` for the last training weights kept
in a training file beside the moving average (``raw.*`` tensors; see core/training.py), so
one run compares a generator with and without its weight average. For every model and
sample seed: the mean pixel standard deviation of each frame over ``n`` clips (the
"contrast profile"), the worst frame's deviation from the real clips' mean frame contrast
(the issue's target: within 15 %), AACD (0..255 scale; target <= 1.5x the real clips'), the
pixel correlation of consecutive frames, and that of the middle frame with the average of the
first and last (high for a clip that cross-fades between its ends, which sags in mid-clip), and where the
AACD comes from (:func:`aacd_parts`: background brightness, objects, a staircase in time);
``--margins`` profiles the frames G_V generates beyond the clip's ends and crops (``margin_frames``).
Where the contrast goes: pixel percentiles (:data:`PERCENTILES`) of generated against real
clips, so a low contrast shows whether the bulk of the pixels or the darkest and brightest few
are missing, and at which size (:func:`contrast_by_scale`: detail finer than 2 px, 2-4 px, 4-8
px and coarser, each as a fraction of the real clips'), how fast the detail of each size changes from
frame to frame (:func:`napari_biogan.metrics.video.frame_correlation_by_scale`) and how long it lasts
(:func:`napari_biogan.metrics.video.detail_memory` and ``renewed_share``: noise renewed every frame, or detail that drifts away), how much of a frame is
off the background (:func:`off_background`), and whether a fixed grid of dots is printed on every frame
(:func:`napari_biogan.metrics.artefacts.grid_peaks`: about 1 for real clips; a grid can lift every
contrast figure above while the picture is wrong) and the worst frame once it is taken out
(:func:`~napari_biogan.metrics.artefacts.without_grid`). Prints mean ± std over the seeds; ``--plot``
draws the profiles (PIL, no matplotlib).
``--critics`` (training files only: they keep the critics) asks which way the critics pull the contrast:
their scores of real and generated clips whose contrast is scaled about each clip's mean
(:func:`critic_contrast_response`). ``--picture OUT.png`` draws 3 real clips and 3 clips of each
model (8 of their frames; ``--labels`` names the rows, default the files' names).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


#: the pixel percentiles of the "where the contrast goes" table
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def load(spec: str):
    """A model from a zoo name or file; ``FILE:raw`` swaps in the raw training weights of an averaged run."""
    from napari_biogan.core.model import GanModel
    from napari_biogan.core.training import RAW_PREFIX
    from napari_biogan.core.zoo import resolve_model

    path, _, weights = spec.partition(":raw")
    model = GanModel.load(resolve_model(path) if not Path(path).is_file() else path, device="cpu")
    if spec.endswith(":raw"):
        raw = {k[len(RAW_PREFIX):]: v for k, v in model._file_tensors.items() if k.startswith(RAW_PREFIX)}
        if not raw:
            raise SystemExit(f"{path} keeps no raw training weights (it was not trained with ema_decay > 0).")
        model.nets.load_state_dict(raw, strict=False)
    return model


def frame_contrast(videos: np.ndarray) -> np.ndarray:
    """(N, T, Y, X) in [0, 1] -> mean over clips of each frame's pixel standard deviation (T,)."""
    return videos.reshape(*videos.shape[:2], -1).std(-1).mean(0)


def worst_frame(profile: np.ndarray, real_profile: np.ndarray) -> float:
    """The largest deviation of any frame's contrast from the real clips' mean frame contrast (the issue's
    target: at most 0.15)."""
    return float(np.abs(profile / real_profile.mean() - 1).max())


def aacd_parts(videos: np.ndarray) -> tuple[float, float, float]:
    """Where AACD comes from, on its 0..255 scale: the same frame-to-frame change measured on each frame's
    median (the background's brightness), on its mean minus median (the objects), and the ratio of the
    mean change at odd transitions (frame 2->3, 4->5...) to even ones (1->2, 3->4...): far from 1 when
    frames come in pairs (a staircase in time)."""
    pixels = videos.reshape(*videos.shape[:2], -1) * 255
    median, mean = np.median(pixels, -1), pixels.mean(-1)
    change = lambda series: np.abs(np.diff(series, axis=1))  # noqa: E731
    steps = change(mean).mean(0)
    return float(change(median).mean()), float(change(mean - median).mean()), float(steps[1::2].mean() / steps[::2].mean())


#: the band edges (pixels) of the "contrast by scale" table: detail finer than 2 px, 2-4 px, 4-8 px, coarser
SCALE_EDGES = (2, 4, 8)
#: frame lags of the "how long detail lasts" table (the first, 1, also gives the consecutive-frame table)
LAGS = (1, 2, 4, 8)


def contrast_by_scale(videos: np.ndarray, edges: tuple[int, ...] = SCALE_EDGES) -> np.ndarray:
    """(N, T, Y, X) -> the mean over frames of each band's pixel standard deviation (len(edges) + 1,), the
    bands of :func:`napari_biogan.metrics.pixels.scale_bands` (finest first). Says at which size a contrast
    deficit sits."""
    from napari_biogan.metrics.pixels import scale_bands

    return np.array([float(band.std((-2, -1)).mean()) for band in scale_bands(videos, edges)])


#: how far (0..1 scale) a pixel is from its frame's median to count in the "off the background" table
OFF_BACKGROUND = (0.1, 0.2, 0.3)


def off_background(videos: np.ndarray, thresholds: tuple[float, ...] = OFF_BACKGROUND) -> np.ndarray:
    """(N, T, Y, X) -> the share of pixels further than each threshold from their frame's median (the
    background's level): how much of a frame cells and their halos cover, by strength."""
    median = np.median(videos.reshape(*videos.shape[:2], -1), -1)[..., None, None]
    distance = np.abs(videos - median)
    return np.array([float((distance > t).mean()) for t in thresholds])


def margin_profile(model, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every frame G_V generates, the margin frames it crops included: (contrast per frame, pixel correlation
    of each frame with the next), over ``n`` clips of latent ``seed``."""
    import torch

    with torch.inference_mode():
        videos = model.nets["generator"](model.latents(n, seed).to(model.device), keep_margins=True)
    from napari_biogan.metrics.pixels import paired_correlation

    frames = (videos.float().cpu().numpy()[:, 0] + 1) / 2
    t = frames.shape[1]
    pairs = (frames[:, :-1].reshape(n * (t - 1), -1), frames[:, 1:].reshape(n * (t - 1), -1))
    return frame_contrast(frames), paired_correlation(*pairs).reshape(n, t - 1).mean(0)


#: contrast scales of the --critics table (1: the clips as they are)
CONTRAST_SCALES = (0.7, 1.0, 1.3)


def critic_contrast_response(model, real, n: int, seed: int) -> list[tuple[str, float, float, float, float]]:
    """Which way the critics pull the contrast: for each :data:`CONTRAST_SCALES` ``a``, every real and
    generated clip (``n`` of each, in [-1, 1]) made ``mean + a * (clip - mean)`` (clipped to [-1, 1]) and
    scored by D_V (whole clips) and D_I (every frame; higher = more real). Rows: (kind, a, D_V, D_I,
    generator loss -D_V - w * D_I with the model's frame-critic weight w), the last for generated clips."""
    import torch

    weight = float(model.config.image_critic_weight)
    video, frame = model.nets["video_critic"].eval(), model.nets["frame_critic"].eval()
    rows = []
    with torch.inference_mode():
        fake = model.nets["generator"](model.latents(n, seed).to(model.device)).float().cpu()
        for kind, clips in (("real", real[:n]), ("generated", fake)):
            mean = clips.mean(dim=(1, 2, 3, 4), keepdim=True)
            for scale in CONTRAST_SCALES:
                scaled = (mean + scale * (clips - mean)).clamp(-1, 1)
                frames = scaled.transpose(1, 2).reshape(-1, scaled.shape[1], *scaled.shape[3:])
                d_v, d_i = float(video(scaled).mean()), float(frame(frames).mean())
                rows.append((kind, scale, d_v, d_i, -d_v - weight * d_i))
    return rows


def print_critic_contrast(spec: str, model, real_clips, n: int) -> None:
    """The --critics table of one training file."""
    import torch

    if "video_critic" not in model.nets or not any(k.startswith("net.video_critic.") for k in model._file_tensors):
        print(f"- {spec}: keeps no critics (a shipped generator); give its training file")
        return
    rows = critic_contrast_response(model, torch.as_tensor(real_clips), n, seed=7)
    print(f"\nCritic scores against contrast, {spec} ({n} clips each; higher = more real; contrast scaled "
          "about each clip's mean)\n")
    print("| clips | contrast x | D_V | D_I (every frame) | generator loss (generated clips) |")
    print("|---|---|---|---|---|")
    for kind, scale, d_v, d_i, loss in rows:  # the generator's loss means something for its own clips only
        print(f"| {kind} | {scale:.1f} | {d_v:.2f} | {d_i:.2f} | {f'{loss:.1f}' if kind == 'generated' else '-'} |")


def print_spread_row(name: str, values, digits: int = 3) -> None:
    """One markdown row: each column's mean ± std over the rows of ``values`` (seeds x columns); the mean
    alone for a single row (the real clips)."""
    values = np.asarray(values)
    cells = (f"{m:.{digits}f} ± {d:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"
             for m, d in zip(values.mean(0), values.std(0)))
    print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--dataset", default="t98g", choices=("t98g", "mmnist"))
    parser.add_argument("-n", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--plot", default=None)
    parser.add_argument("--margins", action="store_true",
                        help="also profile the margin frames G_V generates and crops (margin_frames > 0)")
    parser.add_argument("--picture", default=None, help="also write a PNG: rows of real and generated clips")
    parser.add_argument("--labels", nargs="+", default=None, help="row names of the models in --picture")
    parser.add_argument("--critics", action="store_true",
                        help="training files: the critics' scores of real and generated clips at scaled contrast")
    args = parser.parse_args()

    import torch

    from napari_biogan.data.zoo_clips import zoo_reference_clips
    from napari_biogan.metrics.artefacts import GRID_PERIODS, grid_peaks, without_grid
    from napari_biogan.metrics.video import aacd, crossfade_correlation, detail_memory, frame_correlation, \
        renewed_share

    torch.set_num_threads(1)
    profiles, rows, real, parts, margins, tails, scales, changes, covers, grids, critics, strips = (
        {}, [], None, {}, {}, {}, {}, {}, {}, {}, [], [])
    memories = {}
    labels = args.labels or [Path(spec).name.replace(".safetensors", "") for spec in args.models]
    if len(labels) != len(args.models):
        raise SystemExit(f"--labels names {len(labels)} rows for {len(args.models)} models.")
    for spec, label in zip(args.models, labels):
        model = load(spec)
        if real is None:
            clips, described = zoo_reference_clips(args.dataset, model.config.frames)
            real_clips = model.family.prepare_data(clips, model.config).head(len(clips))["image"].numpy()
            real = (real_clips[:, 0] + 1) / 2
            strips.append(("real", real[:: max(1, len(real) // 3)][:3]))
            real_profile = frame_contrast(real)
            real_lag1, real_fade = frame_correlation(real), crossfade_correlation(real)
            profiles["real clips"] = real_profile
            print(f"{args.dataset}: {len(real)} real clips ({described}); real frame contrast "
                  f"{real_profile.min():.3f}-{real_profile.max():.3f}, mean {real_profile.mean():.3f}, "
                  f"AACD {aacd(real):.3f}, consecutive-frame correlation {real_lag1:.2f}, "
                  f"middle frame vs its ends {real_fade:.2f}")
        runs = []
        for seed in args.seeds:
            videos = np.asarray(model.sample(args.n, seed=seed, precision="fp32"))[:, 0]
            profile = frame_contrast(videos)
            worst = worst_frame(profile, real_profile)
            runs.append((profile, worst, aacd(videos), frame_correlation(videos), crossfade_correlation(videos)))
            parts.setdefault(spec, []).append(aacd_parts(videos))
            tails.setdefault(spec, []).append(np.percentile(videos, PERCENTILES))
            scales.setdefault(spec, []).append(contrast_by_scale(videos))
            memory = detail_memory(videos, LAGS, SCALE_EDGES)  # LAGS[0] is 1: its first column is lag 1
            changes.setdefault(spec, []).append(memory[:, 0])
            memories.setdefault(spec, []).append(memory)
            covers.setdefault(spec, []).append(off_background(videos))
            degridded = frame_contrast(without_grid(videos, GRID_PERIODS))  # the contrast the grid does not make
            grids.setdefault(spec, []).append(list(grid_peaks(videos, GRID_PERIODS).values())
                                              + [worst_frame(degridded, real_profile)])
            if seed == args.seeds[0]:
                strips.append((label, videos[:3]))
        if args.critics:
            critics.append((spec, model))
        if args.margins and getattr(model.config, "margin_frames", 0):
            whole = [margin_profile(model, args.n, seed) for seed in args.seeds]
            margins[spec] = (model.config.margin_frames, *(np.mean([w[i] for w in whole], axis=0) for i in (0, 1)))
        mean_profile = np.mean([r[0] for r in runs], axis=0)
        profiles[spec] = mean_profile
        worst, clip_aacd, lag1, fade = (np.array([r[i] for r in runs]) for i in range(1, 5))
        rows.append((spec, model.card.get("training", {}).get("steps"), mean_profile, worst, clip_aacd, lag1, fade))

    real_aacd = aacd(real)
    print(f"\n{len(args.seeds)} sample seeds x {args.n} clips; mean ± std over the seeds\n")
    # The worst frame of each seed's profile is the largest of 16 noisy deviations, so it is biased upwards by
    # the sampling noise of n clips; the profile of all seeds' clips together has less of that bias.
    print("| model | steps | frame 1 / middle / last contrast | worst frame vs real mean | worst frame, all "
          f"{len(args.seeds) * args.n} clips | AACD | AACD / real | consecutive-frame correlation | middle frame vs ends |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec, steps, profile, worst, clip_aacd, lag1, fade in rows:
        middle = profile[len(profile) // 2]
        print(f"| {spec} | {steps} | {profile[0]:.3f} / {middle:.3f} / {profile[-1]:.3f} | "
              f"{worst.mean() * 100:.0f} ± {worst.std() * 100:.0f} % | {worst_frame(profile, real_profile) * 100:.1f} % "
              f"| {clip_aacd.mean():.3f} ± {clip_aacd.std():.3f} "
              f"| {clip_aacd.mean() / real_aacd:.2f} | {lag1.mean():.2f} ± {lag1.std():.2f} | {fade.mean():.2f} ± {fade.std():.2f} |")
    print(f"| real clips | - | {real_profile[0]:.3f} / {real_profile[len(real_profile) // 2]:.3f} / "
          f"{real_profile[-1]:.3f} | - | - | {real_aacd:.3f} | 1.00 | {real_lag1:.2f} | {real_fade:.2f} |")
    print("\nWhere AACD comes from (0..255 scale; mean ± std over the seeds): frame-to-frame change of each "
          "frame's median (background) and of its mean minus median (objects); odd/even transition ratio "
          "(1: no staircase)\n")
    print("| model | background | objects | odd / even transitions |")
    print("|---|---|---|---|")
    for name, values in [("real clips", [aacd_parts(real)])] + list(parts.items()):
        print_spread_row(name, values)
    print("\nWhere the contrast goes: pixel percentiles (0..1 scale; mean over seeds)\n")
    print("| model | " + " | ".join(f"{q} %" for q in PERCENTILES) + " |")
    print("|---|" + "---|" * len(PERCENTILES))
    for name, values in [("real clips", [np.percentile(real, PERCENTILES)])] + list(tails.items()):
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in np.mean(values, 0)) + " |")
    real_scales = contrast_by_scale(real)
    bands = [f"< {SCALE_EDGES[0]} px"] + [f"{a}-{b} px" for a, b in zip(SCALE_EDGES, SCALE_EDGES[1:])] + \
        [f"> {SCALE_EDGES[-1]} px"]
    print("\nContrast by scale: each band's pixel std as a fraction of the real clips' (mean ± std over seeds; "
          "real clips: " + ", ".join(f"{b} {v:.3f}" for b, v in zip(bands, real_scales)) + ")\n")
    print("| model | " + " | ".join(bands) + " |")
    print("|---|" + "---|" * len(bands))
    for name, values in scales.items():
        print_spread_row(name, np.array(values) / real_scales, digits=2)
    print("\nHow fast detail of each size changes: correlation of consecutive frames within each band "
          "(metrics.video.frame_correlation_by_scale; 1: the same detail on every frame; mean ± std over seeds)\n")
    print("| model | " + " | ".join(bands) + " |")
    print("|---|" + "---|" * len(bands))
    real_memory = detail_memory(real, LAGS, SCALE_EDGES)
    for name, values in [("real clips", [real_memory[:, 0]])] + list(changes.items()):
        print_spread_row(name, values, digits=2)
    lags = " / ".join(str(lag) for lag in LAGS)
    print(f"\nHow long detail lasts: correlation of frames {lags} apart within each band, and the share of the "
          "band renewed every frame (renewed_share: 1 - r1^2/r2; negative: smooth over a few frames, then gone); "
          "mean over seeds\n")
    print("| model | " + " | ".join(f"{b}: r at {lags} (renewed)" for b in bands) + " |")
    print("|---|" + "---|" * len(bands))
    for name, values in [("real clips", [real_memory])] + list(memories.items()):
        memory = np.mean(values, 0)
        print(f"| {name} | " + " | ".join(" / ".join(f"{v:.2f}" for v in row) + f" ({share:+.2f})"
                                          for row, share in zip(memory, renewed_share(memory))) + " |")
    print("\nOff the background: share of pixels further than d from their frame's median (mean ± std over seeds)\n")
    print("| model | " + " | ".join(f"d > {t}" for t in OFF_BACKGROUND) + " |")
    print("|---|" + "---|" * len(OFF_BACKGROUND))
    for name, values in [("real clips", [off_background(real)])] + list(covers.items()):
        print_spread_row(name, values)
    print("\nA grid printed on every frame: power at the grid's frequencies over its neighbours' in the mean "
          "spectrum, per period (about 1: none), and the worst frame's contrast against the real mean once "
          "the grid is taken out (metrics.artefacts.without_grid); mean ± std over seeds\n")
    print("| model | " + " | ".join(f"{p} px" for p in GRID_PERIODS) + " | worst frame, grid out |")
    print("|---|" + "---|" * (len(GRID_PERIODS) + 1))
    real_degridded = frame_contrast(without_grid(real, GRID_PERIODS))
    real_grid = list(grid_peaks(real, GRID_PERIODS).values()) + [worst_frame(real_degridded, real_profile)]
    for name, values in [("real clips", [real_grid])] + list(grids.items()):
        print_spread_row(name, values, digits=2)
    print("\nWhole profiles (each frame's contrast, mean over seeds):")
    for name, profile in profiles.items():
        print(f"- {name}: " + " ".join(f"{v:.3f}" for v in profile))
    if args.margins:
        print("\nEvery generated frame, margins included ([ ] marks the frames the clip keeps; mean over seeds):")
        for spec in args.models:
            if spec not in margins:
                print(f"- {spec}: no margin frames")
                continue
            margin, contrast, lag1 = margins[spec]
            mark = lambda t, text: f"[{text}]" if margin <= t < len(contrast) - margin else text  # noqa: E731
            print(f"- {spec} contrast: " + " ".join(mark(t, f"{v:.3f}") for t, v in enumerate(contrast)))
            print(f"  {' ' * len(spec)} next-frame r: " + " ".join(f"{v:.2f}" for v in lag1))
    for spec, model in critics:
        print_critic_contrast(spec, model, real_clips, args.n)
    if args.picture:
        from bench_video_models import write_picture  # the same picture as the model comparison's

        write_picture(args.picture, strips)
    if args.plot:
        plot(args.plot, profiles)
        print(f"\nwrote {args.plot}")


def plot(path: str, profiles: dict[str, np.ndarray], width: int = 720, height: int = 360) -> None:
    """Frame contrast against frame index, one coloured line per model, the real clips in black, and the
    target band (the real clips' mean contrast +-15 %) in grey."""
    from PIL import Image, ImageDraw

    colours = [(214, 39, 40), (31, 119, 180), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 60, width - 250, 20, height - 40
    top_value = max(float(p.max()) for p in profiles.values()) * 1.1
    frames = max(len(p) for p in profiles.values())
    x = lambda t: left + (right - left) * t / max(frames - 1, 1)  # noqa: E731
    y = lambda v: bottom - (bottom - top) * v / top_value  # noqa: E731
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black")
    for tick in np.linspace(0, top_value, 5):
        draw.text((8, y(tick) - 6), f"{tick:.2f}", fill="black")
    for t in range(frames):
        draw.text((x(t) - 4, bottom + 6), str(t + 1), fill="black")
    draw.text((left, height - 18), "frame", fill="black")
    draw.text((left + 4, 2), "mean pixel std per frame (contrast)", fill="black")
    real = profiles.get("real clips")
    if real is not None:  # the target: every frame within 15 % of the real clips' mean contrast
        low, high = y(0.85 * float(real.mean())), y(1.15 * float(real.mean()))
        draw.rectangle([left + 1, high, right, low], fill=(232, 232, 232))
        draw.text((right + 12, height - 56), "grey: real mean +-15 %", fill=(110, 110, 110))
    for i, (name, profile) in enumerate(profiles.items()):
        colour = (0, 0, 0) if name == "real clips" else colours[i % len(colours)]
        draw.line([(x(t), y(v)) for t, v in enumerate(profile)], fill=colour, width=3)
        draw.text((right + 12, top + 16 * i), Path(name).name.replace(".safetensors", "")[:38], fill=colour)
    image.save(path)


if __name__ == "__main__":
    main()
