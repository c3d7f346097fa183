"""`napari-biogan` command: the same core calls as the plugin, headless.

Every command prints `--help`; a bad argument or file exits non-zero with one
plain sentence on stderr (add `--debug` for the traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .core.errors import BioGanError, DataError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence, no usage dump
        self.exit(2, f"napari-biogan: {message} (see --help).\n")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="shipped/user model name or a .safetensors file (default: demo model)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto: bf16 where the device supports it")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="napari-biogan", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"napari-biogan {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("models", help="list shipped models and those in the user model folder")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("generate", help="generate N samples into an ImageJ TIFF with provenance")
    _add_model_args(p)
    p.add_argument("-n", type=int, default=16, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="output .tif")
    p.add_argument("--dtype", default="float32", choices=("float32", "uint16"))
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("train", help="train a model from TIFF stacks/folders or a .npy/.npz array")
    p.add_argument("--family", required=True)
    p.add_argument("--data", required=True, help="TIFF file, folder of TIFFs, .npy or .npz")
    p.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", default=None, help="checkpoint to continue from")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config value, e.g. --set height=48 --set width=80")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="the family's metrics of a model against real data")
    _add_model_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("-n", type=int, default=256, help="number of generated samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metrics", default=None, metavar="SET",
                   help="metric set, e.g. 'cells' or 'digits' for video models (default: digits for models "
                        "trained on Moving MNIST, else the family's first)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="render a slerp path through seeds' latents as a T-stack TIFF")
    _add_model_args(p)
    p.add_argument("--seeds", required=True, help="keyframe seeds, e.g. 1,7,3")
    p.add_argument("--steps", type=int, default=16, help="frames per segment")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--dtype", default="float32", choices=("float32", "uint16"))
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("clips", help="crop 2D+t clips around moving cells of a time-lapse into one TIFF")
    p.add_argument("input", help="time-lapse: a multi-page TIFF or a folder of single-frame TIFFs")
    p.add_argument("-o", "--output", required=True, help="output .tif with clips (N, T, Y, X)")
    p.add_argument("--size", default="32x64x64", help="clip size TxYxX (default 32x64x64)")
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--downscale", type=int, default=1, help="average k x k pixel blocks first (big cells)")
    p.add_argument("--tracks", default=None, help="tracking table (CSV with frame, y, x[, particle]) to centre clips")
    p.add_argument("--min-motion", type=float, default=0.05, help="least fraction of moving voxels in a clip")
    p.add_argument("--time-stride", type=int, default=None,
                   help="let clips of one place overlap in time, starting at least this many frames apart "
                        "(more clips from a short movie; default: no overlap)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_clips)

    p = sub.add_parser("demo", help="open napari with the plugin docked and videos of the shipped cell-video model")
    p.add_argument("--model", default=None)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BioGanError as err:
        if args.debug:
            raise
        print(f"napari-biogan: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-biogan: interrupted.", file=sys.stderr)
        return 130
    except Exception as err:  # anything unexpected: still one sentence unless --debug
        if args.debug:
            raise
        print(f"napari-biogan: unexpected error ({type(err).__name__}: {err}); run with --debug for details.",
              file=sys.stderr)
        return 1


# -- commands -----------------------------------------------------------------------------------------

def cmd_models(args) -> int:
    from .core.zoo import DEFAULT_MODEL, list_models, user_model_dir

    models = list_models()
    print(f"{'name':<22} {'family':<10} {'where':<8} trained on")
    for info in models:
        mark = "*" if info.name == DEFAULT_MODEL else " "
        print(f"{info.name + mark:<22} {info.family:<10} {'shipped' if info.shipped else 'user':<8} {info.data}")
    print(f"(* default; user models folder: {user_model_dir()})")
    return 0


def _load(args):
    from .core.model import GanModel
    from .core.zoo import resolve_model

    return GanModel.load(resolve_model(args.model), device=args.device)


def _provenance(model, **extra) -> dict:
    return {"family": model.family.name, "model": model.name, "model_sha256": model.sha256, **extra}


def _axes(model, leading: str) -> str:
    return leading + "C" + "".join(model.family.sample_axes)


def cmd_generate(args) -> int:
    from .core.export import write_tiff
    from .core.progress import TextProgress

    if args.n < 1:
        raise DataError("-n must be at least 1.")
    model = _load(args)
    bar = TextProgress(args.n, "generate")
    chunks, done = [], 0
    latents = model.latents(args.n, args.seed)
    for start in range(0, args.n, 16):
        chunks.append(model.render(latents[start:start + 16], precision=args.precision))
        done += len(chunks[-1])
        bar.update(done)
    bar.close()
    import numpy as np

    images = np.concatenate(chunks)
    path = write_tiff(args.output, images, _axes(model, "N"),
                      _provenance(model, seed=args.seed, n=args.n, latent="torch.randn from seed (CPU generator)",
                                  precision=args.precision), dtype=args.dtype, overwrite=args.overwrite)
    print(f"wrote {len(images)} samples {images.shape[1:]} to {path}")
    return 0


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "," in text:
        return tuple(_parse_value(t) for t in text.split(","))
    return text


def load_array(path: str, family=None):
    """Training data from a TIFF file or folder, or a .npy / .npz (first array, or x_train).

    Video families get the stack with its own axes; 2D families get a stack of planes.
    """
    import numpy as np

    p = Path(path)
    if not p.exists():
        raise DataError(f"No data at {p}.")
    if p.suffix == ".npy":
        return np.load(p, allow_pickle=False)
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as npz:
            key = "x_train" if "x_train" in npz.files else npz.files[0]
            return npz[key]
    from .data.tiff_io import load_image_stack, load_training_images

    if family is not None and "T" in family.sample_axes:
        return load_image_stack(p)
    return load_training_images(p)


def cmd_train(args) -> int:
    from .core.model import GanModel
    from .core.progress import TextProgress
    from .core.registry import get_family
    from .core.training import Trainer, TrainSettings

    family = get_family(args.family)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if not value:
            raise DataError(f"--set takes KEY=VALUE, not '{item}'.")
        overrides[key] = _parse_value(value)
    hparams = {"batch_size": args.batch_size} if args.batch_size else {}
    settings = TrainSettings(steps=args.steps, seed=args.seed, output=args.output, overwrite=args.overwrite,
                             checkpoint_every=args.checkpoint_every, hparams=hparams,
                             data_description=str(args.data))
    if args.resume:
        from .core.checkpoint import read_card

        card = read_card(args.resume)
        if card.get("family") != family.name:
            raise DataError(f"{args.resume} is a '{card.get('family')}' model, not a '{family.name}' model.")
        config = family.config_from_dict(card.get("config", {}))
        data = family.prepare_data(load_array(args.data, family), config)
        trainer = Trainer.resume(args.resume, data, settings, device=args.device)
    else:
        try:
            config = family.default_config(**overrides)
        except TypeError as err:
            raise DataError(f"Unknown config value for family '{family.name}': {err}.") from None
        model = GanModel.new(family.name, config=config, device=args.device, seed=args.seed)
        data = family.prepare_data(load_array(args.data, family), config)
        trainer = Trainer(model, data, settings)
    bar = TextProgress(args.steps, "train")
    for event in trainer.run():
        note = " ".join(f"{k}={v:.3f}" for k, v in event.losses.items())
        bar.update(event.step, note, event.eta_s, force=event.kind != "step")
        if event.kind in ("finished", "cancelled"):
            bar.close()
            print(f"{event.kind} at step {event.step}; model written to {event.path}")
    return 0


def cmd_evaluate(args) -> int:
    import json

    model = _load(args)
    real = model.family.prepare_data(load_array(args.data, model.family), model.config)
    metrics = model.evaluate(real, n=args.n, seed=args.seed, metric_set=args.metrics)
    if not metrics:
        print(f"The '{model.family.name}' family declares no metrics.")
        return 0
    print(json.dumps({"model": model.name, "n": args.n, **{k: round(v, 4) for k, v in metrics.items()}}, indent=2))
    return 0


def cmd_export(args) -> int:
    from .core.export import write_tiff
    from .core.latent import keyframe_path

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise DataError(f"--seeds takes integers separated by commas, not '{args.seeds}'.") from None
    if len(seeds) < 2:
        raise DataError("--seeds needs at least two seeds to interpolate between.")
    model = _load(args)
    keys = [model.latents(1, s)[0] for s in seeds]
    path_z = keyframe_path(keys, args.steps)
    frames = model.render(path_z, precision=args.precision)  # (T, C, ...)
    axes = "TC" + "".join(model.family.sample_axes)
    if "T" in model.family.sample_axes:
        axes = "NC" + "".join(model.family.sample_axes)
    path = write_tiff(args.output, frames, axes,
                      _provenance(model, keyframe_seeds=seeds, steps_per_segment=args.steps, method="slerp"),
                      dtype=args.dtype, overwrite=args.overwrite)
    print(f"wrote a {len(frames)}-frame path through seeds {seeds} to {path}")
    return 0


def parse_size(text: str) -> tuple[int, ...]:
    """'32x64x64' -> (32, 64, 64)."""
    try:
        size = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise DataError(f"--size takes three positive numbers like 32x64x64 (T x Y x X), not '{text}'.")
    return size


def cmd_clips(args) -> int:
    from .core.export import write_tiff
    from .data.clips import crop_moving_clips, read_tracks_csv
    from .data.tiff_io import load_image_stack

    size = parse_size(args.size)
    movie = load_image_stack(args.input)
    if movie.ndim != 3:
        raise DataError(f"{args.input} is not a single-channel time-lapse (T, Y, X); its shape is {movie.shape}.")
    tracks = read_tracks_csv(args.tracks) if args.tracks else None
    clips, info = crop_moving_clips(movie, size, max_clips=args.max_clips, tracks=tracks,
                                    downscale=args.downscale, min_motion=args.min_motion,
                                    time_stride=args.time_stride)
    if len(clips) == 0:
        raise DataError(f"No moving cells found in {args.input} for clips of {args.size}; try a smaller size, "
                        "--downscale, or a lower --min-motion.")
    path = write_tiff(args.output, clips, "NTYX",
                      {"source": str(args.input), "clip_size": list(size), "downscale": args.downscale,
                       "time_stride": args.time_stride,
                       "clips": [{k: v for k, v in i.items() if k != "particle"} for i in info]},
                      overwrite=args.overwrite)
    print(f"found {len(clips)} clips of {args.size} in {args.input}; wrote {path}")
    return 0


def cmd_demo(args) -> int:
    from .core.zoo import demo_model, resolve_model

    model_path = resolve_model(args.model) if args.model else demo_model()
    import napari

    from ._qt.demo import open_demo

    viewer = napari.Viewer(title="napari-biogan demo")
    open_demo(viewer, model_path)
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
