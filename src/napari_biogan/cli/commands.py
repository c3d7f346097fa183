"""The commands of `napari-biogan` and the helpers they share (the parser and `main` are in __init__)."""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from ..core.errors import BioGanError, DataError


class _Aborted(KeyboardInterrupt):
    """A second interrupt during training: stop now, with the signal's exit code."""

    def __init__(self, exit_code: int):
        super().__init__()
        self.exit_code = exit_code


# -- shared helpers -----------------------------------------------------------------------------------

def _load(args):
    from ..core.model import Model
    from ..core.zoo import resolve_model

    return Model.load(resolve_model(args.model), device=args.device)


def _named_paths(items: list[str], specs: list, family_name: str) -> dict[str, str]:
    """``--input`` items -> {input name: path}: ``NAME=PATH``, or a bare path when one input fits."""
    names, found = [s.name for s in specs], {}
    for item in items:
        key, sep, value = (part.strip() for part in item.partition("="))
        if sep and key in names:
            name, path = key, value
        elif sep and key.isidentifier() and not Path(item).exists():
            raise DataError(f"The '{family_name}' family has no input '{key}' here; --input takes: "
                            f"{', '.join(names) or 'nothing'}.")
        elif len(names) == 1:
            name, path = names[0], item
        else:
            raise DataError(f"Write --input NAME=PATH for each of: {', '.join(names)}." if names
                            else f"The '{family_name}' family takes no --input here.")
        if not path or name in found:
            raise DataError(f"--input {name}= needs a path." if not path else f"--input gives '{name}' twice.")
        found[name] = path
    return found


def _training_sources(family, inputs: list, data: str | None, items: list[str]) -> dict[str, str]:
    """``--data`` (the image input) and ``--input NAME=PATH`` (any other input the family trains on)."""
    from ..core.contract import IMAGE

    trained = [i for i in inputs if i.train]
    image = next((i.name for i in trained if i.kind == IMAGE), "image")
    sources = {image: data} if data else {}
    return {**sources, **_named_paths(items, [i for i in trained if i.name not in sources], family.name)}


def _run_sources(model, items: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The inputs a model runs from besides its latent, loaded from ``--input`` paths by kind; and the paths."""
    import numpy as np

    from ..core.contract import LABELS
    from ..data.inputs import load_image_source, load_labels_source

    specs = model.run_inputs()
    paths = _named_paths(items, specs, model.family.name)
    for spec in specs:
        if spec.name not in paths:
            raise DataError(f"The '{model.family.name}' family runs from '{spec.name}' ({spec.help or spec.kind}); "
                            f"give it with --input {'PATH' if len(specs) == 1 else spec.name + '=PATH'}.")
    return {s.name: np.asarray(load_labels_source(paths[s.name]) if s.kind == LABELS
                               else load_image_source(paths[s.name], model.family, model.config)) for s in specs}, paths


def _controls(model, items: list[str]) -> dict[str, Any]:
    """``--control NAME=VALUE`` -> checked control values (a class by its index or its name)."""
    from ..core.settings import parse_assignments

    values = parse_assignments(items, "control")
    for control in model.controls:
        if control.choices and control.name in values:
            names = [c.lower() for c in control.choices]
            given = values[control.name]
            chosen = [names.index(v.lower()) if isinstance(v, str) and v.lower() in names else v
                      for v in (given if isinstance(given, tuple) else (given,))]
            if any(isinstance(v, str) for v in chosen):
                raise DataError(f"'{control.name}' takes one of {', '.join(control.choices)} (or its index), "
                                f"not '{given}'.")
            values[control.name] = chosen if isinstance(given, tuple) else chosen[0]
    return model.check_controls(values)


def _targets(model, output: str, overwrite: bool) -> dict[str, Path]:
    """Where each output goes (core.export.output_paths), checked before any work."""
    from ..core.export import output_paths

    return output_paths(output, [o.name for o in model.outputs], overwrite)


def _write_outputs(model, outputs: dict, targets: dict[str, Path], lead: str, record: dict, dtype: str,
                   overwrite: bool) -> list[Path]:
    """Every output into its TIFF through the one writer of outputs (core.export.write_outputs)."""
    from ..core.export import write_outputs

    return write_outputs(targets, outputs, model.outputs, lead, "".join(model.family.sample_axes), record,
                         dtype, overwrite)


def _run_with_bar(model, source, label: str, **kwargs) -> dict:
    """``model.run`` with a text bar (made at the first chunk, when the total is known)."""
    from ..core.progress import TextProgress

    bars: list[TextProgress] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(TextProgress(total, label))
        bars[0].update(done, force=done >= total)

    try:
        return model.run(source, progress=update, **kwargs)
    finally:
        for bar in bars:
            bar.close()


# -- commands -----------------------------------------------------------------------------------------

def cmd_models(args) -> int:
    from ..core.zoo import DEFAULT_MODEL, list_models, user_model_dir

    models = list_models()
    width = max([len("family")] + [len(m.family) for m in models])
    print(f"{'name':<22} {'family':<{width}} {'where':<8} trained on")
    for info in models:
        mark = "*" if info.name == DEFAULT_MODEL else " "
        print(f"{info.name + mark:<22} {info.family:<{width}} {'shipped' if info.shipped else 'user':<8} {info.data}")
    print(f"(* default; user models folder: {user_model_dir()})")
    return 0


def cmd_generate(args) -> int:
    from ..core.model import LATENT_NOTE
    from ..core.provenance import provenance

    model = _load(args)
    controls = _controls(model, args.control)
    targets = _targets(model, args.output, args.overwrite)
    overlap = args.overlap if args.overlap is not None else min(32, (args.tile or 128) // 4)
    record: dict[str, Any] = {"controls": controls, "precision": args.precision}
    if model.run_inputs():
        if args.n is not None and not model.has_latent:
            raise DataError(f"-n is for models that draw samples from a seed; the '{model.family.name}' family "
                            "runs on the images given with --input.")
        source, paths = _run_sources(model, args.input)
        if model.has_latent:  # a latent beside the image: one per image, from the seed
            source["latent"] = model.latents(len(next(iter(source.values()))), args.seed)
            record.update(seed=args.seed, latent=LATENT_NOTE)
        record.update(source=paths, tile=args.tile, overlap=overlap if args.tile else None)
    else:
        if args.input:
            raise DataError(f"The '{model.family.name}' family runs from a seed; it takes no --input.")
        source = model.seeded_point(args.seed, args.n or 16, controls)
        record.update(seed=args.seed, n=args.n or 16, latent=LATENT_NOTE)
    outputs = _run_with_bar(model, source, "generate", controls=controls, precision=args.precision,
                            tile=args.tile, overlap=overlap)
    written = _write_outputs(model, outputs, targets, "N", provenance(model, **record), args.dtype, args.overwrite)
    print(f"wrote {len(next(iter(outputs.values())))} samples to {', '.join(map(str, written))}")
    return 0


def cmd_train(args) -> int:
    from ..core.progress import TextProgress
    from ..core.registry import get_family
    from ..core.settings import parse_assignments
    from ..core.training import CANCELLED, FINISHED, STEP, TrainSettings, setup_training
    from ..data.inputs import describe_sources

    family = get_family(args.family)
    overrides = parse_assignments(args.set, "config value (--set)")
    hparams = parse_assignments(args.hparam, "hyper-parameter (--hparam)")
    if args.batch_size is not None:
        hparams["batch_size"] = args.batch_size
    sources = _training_sources(family, _family_inputs(family), args.data, args.input)
    settings = TrainSettings(steps=args.steps, seed=args.seed, output=args.output, overwrite=args.overwrite,
                             checkpoint_every=args.checkpoint_every, hparams=hparams,
                             data_description=describe_sources(sources))
    trainer = setup_training(family.name, sources, settings, config_overrides=overrides, resume=args.resume,
                             device=args.device)
    if trainer.step >= args.steps:  # the bar must never read "300/50"
        raise DataError(f"{Path(args.resume).name} is already at step {trainer.step}; --steps is the run's total, "
                        f"so give more than {trainer.step} to train further.")
    if trainer.step:
        print(f"resuming from step {trainer.step} of {args.steps}", file=sys.stderr)
    bar = TextProgress(args.steps, "train")  # the run's total; a resumed run's first update is its next step
    with _stop_on_signals(trainer) as received:
        try:
            for event in trainer.run():
                if event.kind in (STEP, "preview", "checkpoint"):
                    note = " ".join(f"{k}={v:.3f}" for k, v in event.losses.items())
                    bar.update(event.step, note, event.eta_s, force=event.kind != STEP)
        finally:  # an error's sentence starts on its own line
            bar.close()
    if event.kind == CANCELLED:
        print(f"napari-biogan: stopped at step {event.step} of {event.total}; the checkpoint is {event.path} "
              f"(continue with --resume {event.path}).", file=sys.stderr)
        return 128 + int(received[0] if received else signal.SIGINT)  # 130 for Ctrl-C, 143 for SIGTERM
    print(f"{event.kind} at step {event.step}; model written to {event.path}")
    return 0 if event.kind == FINISHED else 1


def _family_inputs(family) -> list:
    """A family's inputs for its default config (input names do not depend on sizes)."""
    try:
        return family.inputs(family.default_config())
    except (TypeError, ValueError, BioGanError):
        return []


@contextlib.contextmanager
def _stop_on_signals(trainer):
    """While training, Ctrl-C / SIGTERM ask the loop to stop with a checkpoint; a second one aborts."""
    received: list[int] = []

    def handler(signum, frame):
        if received:
            raise _Aborted(128 + signum)
        received.append(signum)
        trainer.stop()
        print("\nnapari-biogan: stopping after this step and keeping a checkpoint "
              "(press Ctrl-C again to abort now).", file=sys.stderr)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (an embedding program): keep its handlers
            pass
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _train_epilog() -> str:
    """How to set config values and hyper-parameters, and each trainable family's names and defaults."""
    import dataclasses
    import textwrap

    from ..core.registry import family_titles, get_family
    from ..core.settings import describe_hparams

    def show(value):
        if isinstance(value, (tuple, list)):
            return "/".join(str(v) for v in value) or "(none)"
        return str(value).lower() if isinstance(value, bool) or value is None else str(value)

    def wrap(label: str, text: str) -> str:
        return textwrap.fill(text, 100, initial_indent=f"    {label}: ", subsequent_indent=" " * 6)

    lines = ["--set KEY=VALUE sets the model's config (sizes; fixed once trained); --hparam KEY=VALUE a training",
             "hyper-parameter (kept in the checkpoint; may change on resume). Numbers, true/false, none and tuples",
             "as a/b are understood, e.g. --hparam loss=hinge --hparam n_critic=1 --set critic_spectral_norm=true",
             "", "trainable families: hyper-parameters and config (defaults), and what they train on:"]
    for name, title in family_titles(trainable=True).items():
        family = get_family(name)
        try:
            config = dataclasses.asdict(family.default_config())
        except (TypeError, ValueError, BioGanError):
            config = {f.name: "?" for f in dataclasses.fields(family.config_cls)}
        inputs = [f"{i.name} ({'--data' if i.kind == 'image' else '--input ' + i.name + '=PATH'})"
                  for i in _family_inputs(family) if i.train]
        lines += [f"  {name}: {title}", wrap("hyper-parameters", describe_hparams(family)),
                  wrap("config", ", ".join(f"{k}={show(v)}" for k, v in config.items())),
                  wrap("trains on", ", ".join(inputs) or "-")]
    return "\n".join(lines)


def cmd_evaluate(args) -> int:
    import json

    from ..data.inputs import load_training_inputs

    from ..core.training import check_output
    from ..metrics import write_metrics_csv

    if args.csv:  # refuse an existing table before the (long) evaluation, not after
        check_output(args.csv, args.overwrite, expected="a file name ending in .csv")
    model = _load(args)
    family = model.family
    sources = _training_sources(family, model.inputs, args.data, args.input)
    real = family.prepare_data(load_training_inputs(family, model.config, sources), model.config)
    metric_set = family.check_metric_set(args.metrics or family.default_metric_set(model.config, model.card))
    metrics = model.evaluate(real, n=args.n, seed=args.seed, metric_set=metric_set)
    if not metrics:
        print(f"The '{family.name}' family declares no metrics.")
        return 0
    compared = min(args.n, len(real))  # the families compare with the first n real samples
    print(f"metric set '{metric_set}': {args.n} model samples against {compared} real samples")
    print(json.dumps({"model": model.name, "metric_set": metric_set, "n": args.n, "real_samples": compared,
                      **{k: round(v, 4) for k, v in metrics.items()}}, indent=2))
    if args.csv:
        written = write_metrics_csv(args.csv, metrics, {"model": model.name, "model_sha256": model.sha256,
                                                        "metric_set": metric_set, "samples": args.n,
                                                        "real_samples": compared, "data": args.data},
                                    overwrite=args.overwrite)
        print(f"wrote {written}")
    return 0


def cmd_export(args) -> int:
    from ..core.contract import LATENT, Point
    from ..core.latent import point_path
    from ..core.model import LATENT_NOTE
    from ..core.provenance import provenance

    model = _load(args)
    controls = _controls(model, args.control)
    targets = _targets(model, args.output, args.overwrite)
    record: dict[str, Any] = {"steps_per_segment": args.steps, "controls": controls, "precision": args.precision}
    if model.has_latent and not model.run_inputs():  # keyframes from seeds
        try:
            seeds = [int(s) for s in (args.seeds or "").split(",") if s.strip()]
        except ValueError:
            raise DataError(f"--seeds takes integers separated by commas, not '{args.seeds}'.") from None
        if len(seeds) < 2:
            raise DataError("--seeds needs at least two seeds to interpolate between, e.g. --seeds 1,7,3.")
        keys = [model.seeded_point(s, controls=controls) for s in seeds]
        record.update(keyframe_seeds=seeds, latent=LATENT_NOTE, method="slerp")
    else:  # keyframes from images: each image of --input, encoded
        if args.seeds:
            raise DataError(f"The '{model.family.name}' family runs from images, not seeds; "
                            "give the keyframe images with --input.")
        source, record["source"] = _run_sources(model, args.input)
        state = model.encode(source, precision=args.precision)
        keys = [Point({k: v[i:i + 1] for k, v in state.items()}, controls, {"image": i})
                for i in range(len(next(iter(state.values()))))]
        if len(keys) < 2:
            raise DataError("A path needs at least two keyframe images in --input.")
    path = point_path(keys, args.steps, latent_names=(LATENT,), choices=[c.name for c in model.controls
                                                                        if c.is_choice])
    record["keyframes"] = path.origin.get("keyframes")
    outputs = _run_with_bar(model, path, "export", precision=args.precision)
    lead = "N" if model.family.is_video else "T"  # a video's own T axis keeps its name
    written = _write_outputs(model, outputs, targets, lead, provenance(model, **record), args.dtype, args.overwrite)
    frames = len(next(iter(outputs.values())))
    print(f"wrote a {frames}-frame path through {len(keys)} keyframes to {', '.join(map(str, written))}")
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
    from ..core.export import write_tiff
    from ..data.clips import crop_moving_clips, read_tracks_csv
    from ..data.tiff_io import load_image_stack

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
    from ..core.zoo import demo_model, resolve_model

    model_path = resolve_model(args.model) if args.model else demo_model()
    import napari

    from .._qt.demo import open_demo

    viewer = napari.Viewer(title="napari-biogan demo")
    open_demo(viewer, model_path)
    napari.run()
    return 0

