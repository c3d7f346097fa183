"""`napari-biogan` command: the same core calls as the plugin, headless.

Every command prints `--help`; a bad argument or file exits non-zero with one
plain sentence on stderr (add `--debug` for the traceback). The commands are
written once against the family contract (inputs, outputs, controls): no
family is named here.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

from . import __version__
from .core.errors import BioGanError, DataError, OutputExistsError


class _Parser(argparse.ArgumentParser):
    """One sentence for a bad argument (no usage dump); an epilog that may be built only when shown."""

    epilog_factory = None

    def error(self, message: str):
        self.exit(2, f"napari-biogan: {message} (see --help).\n")

    def format_help(self) -> str:
        if self.epilog_factory is not None:  # lists the families: imported only when help is asked for
            self.epilog = self.epilog_factory()
        return super().format_help()


def _at_least(low: int):
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes a whole number, not '{text}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value
    return check


POSITIVE, NON_NEGATIVE = _at_least(1), _at_least(0)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="shipped/user model name or a .safetensors file (default: demo model)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto: bf16 where the device supports it")


def _add_control_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control", action="append", default=[], metavar="NAME=VALUE",
                   help="a control of the model's family (a class by index or name, an attribute value...)")


def _add_output_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-o", "--output", required=True,
                   help=f"output .tif ({what}); a model with several outputs writes OUT_<output>.tif for each")
    p.add_argument("--dtype", default="float32", choices=("float32", "uint16"),
                   help="image outputs (signed maps stay float32, labels integers)")
    p.add_argument("--overwrite", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="napari-biogan", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"napari-biogan {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and warnings")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("models", help="list shipped models and those in the user model folder")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("generate", help="run a model (from seeds or from images) into ImageJ TIFFs with provenance")
    _add_model_args(p)
    p.add_argument("-n", type=POSITIVE, default=None, help="samples to draw (models with a latent; default 16)")
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument("--input", action="append", default=[], metavar="[NAME=]PATH",
                   help="what a model that runs from images needs: a TIFF, a folder of TIFFs or a .npy "
                        "(NAME=PATH for each when it needs several)")
    p.add_argument("--tile", type=POSITIVE, default=None, help="run large images in tiles of N pixels")
    p.add_argument("--overlap", type=NON_NEGATIVE, default=None, help="tile overlap in pixels (default: tile/4, at most 32)")
    _add_control_arg(p)
    _add_output_args(p, "samples on the lead axis")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("train", help="train a model from TIFF stacks/folders or a .npy/.npz array",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.epilog_factory = _train_epilog
    p.add_argument("--family", required=True)
    p.add_argument("--data", default=None, help="the image input: TIFF file, folder of TIFFs, .npy or .npz")
    p.add_argument("--input", action="append", default=[], metavar="NAME=PATH",
                   help="another training input the family declares, e.g. --input labels=masks/")
    p.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    p.add_argument("--steps", type=POSITIVE, default=1000, help="total steps of the run (a resumed run counts on)")
    p.add_argument("--batch-size", type=POSITIVE, default=None, help="shortcut for --hparam batch_size=N")
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument("--resume", default=None, help="checkpoint to continue from")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config value, e.g. --set height=48 --set width=80 (see the list below)")
    p.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE",
                   help="training hyper-parameter, e.g. --hparam loss=hinge --hparam n_critic=1")
    p.add_argument("--checkpoint-every", type=POSITIVE, default=200)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="the family's metrics of a model against real data")
    _add_model_args(p)
    p.add_argument("--data", required=True, help="real images: TIFF file, folder of TIFFs, .npy or .npz")
    p.add_argument("--input", action="append", default=[], metavar="NAME=PATH",
                   help="other real inputs the family trains on, e.g. --input labels=masks/")
    p.add_argument("-n", type=POSITIVE, default=256, help="number of samples compared")
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument("--metrics", default=None, metavar="SET",
                   help="metric set, e.g. 'cells' or 'digits' (default: the family's choice for this model)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="render a path through keyframes (seeds, or images) as a TIFF stack")
    _add_model_args(p)
    p.add_argument("--seeds", default=None, help="keyframe seeds, e.g. 1,7,3 (models with a latent)")
    p.add_argument("--input", action="append", default=[], metavar="[NAME=]PATH",
                   help="keyframe images, one keyframe per image (models that run from images)")
    _add_control_arg(p)
    p.add_argument("--steps", type=POSITIVE, default=16, help="frames per segment")
    _add_output_args(p, "frames on the lead axis")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("clips", help="crop 2D+t clips around moving cells of a time-lapse into one TIFF")
    p.add_argument("input", help="time-lapse: a multi-page TIFF or a folder of single-frame TIFFs")
    p.add_argument("-o", "--output", required=True, help="output .tif with clips (N, T, Y, X)")
    p.add_argument("--size", default="32x64x64", help="clip size TxYxX (default 32x64x64)")
    p.add_argument("--max-clips", type=POSITIVE, default=None)
    p.add_argument("--downscale", type=POSITIVE, default=1, help="average k x k pixel blocks first (big cells)")
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


class _Aborted(KeyboardInterrupt):
    """A second interrupt during training: stop now, with the signal's exit code."""

    def __init__(self, exit_code: int):
        super().__init__()
        self.exit_code = exit_code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():  # restores the filters and showwarning afterwards
        if not args.debug:
            # Library warnings are noise for a CLI user; our own say something, on one line.
            warnings.simplefilter("ignore")
            warnings.filterwarnings("default", category=UserWarning)
            warnings.showwarning = _one_line_warning
        try:
            return int(args.func(args) or 0)
        except BioGanError as err:
            if args.debug:
                raise
            print(f"napari-biogan: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as err:
            print("\nnapari-biogan: interrupted.", file=sys.stderr)
            return getattr(err, "exit_code", 130)
        except Exception as err:  # anything unexpected: still one sentence unless --debug
            if args.debug:
                raise
            print(f"napari-biogan: unexpected error ({type(err).__name__}: {err}); run with --debug for details.",
                  file=sys.stderr)
            return 1


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings (e.g. a model file skipped in a listing) as one line; other libraries' are dropped."""
    if Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent):
        print(f"napari-biogan: warning: {' '.join(str(message).split())}", file=sys.stderr)


# -- shared helpers -----------------------------------------------------------------------------------

def _load(args):
    from .core.model import Model
    from .core.zoo import resolve_model

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
    from .core.contract import IMAGE

    trained = [i for i in inputs if i.train]
    image = next((i.name for i in trained if i.kind == IMAGE), "image")
    sources = {image: data} if data else {}
    return {**sources, **_named_paths(items, [i for i in trained if i.name not in sources], family.name)}


def _run_sources(model, items: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The inputs a model runs from besides its latent, loaded from ``--input`` paths by kind; and the paths."""
    import numpy as np

    from .core.contract import LABELS
    from .data.inputs import load_image_source, load_labels_source

    specs = model.run_inputs()
    paths = _named_paths(items, specs, model.family.name)
    for spec in specs:
        if spec.name not in paths:
            raise DataError(f"The '{model.family.name}' family runs from '{spec.name}' ({spec.help or spec.kind}); "
                            f"give it with --input {'PATH' if len(specs) == 1 else spec.name + '=PATH'}.")
    return {s.name: np.asarray(load_labels_source(paths[s.name]) if s.kind == LABELS
                               else load_image_source(paths[s.name], model.family)) for s in specs}, paths


def _controls(model, items: list[str]) -> dict[str, Any]:
    """``--control NAME=VALUE`` -> checked control values (a class by its index or its name)."""
    from .core.settings import parse_assignments

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
    """Where each output goes: ``-o`` for one output, else OUT_<name>.tif each; all checked before any work."""
    base, names = Path(output), [o.name for o in model.outputs]
    tif = base.suffix.lower() in (".tif", ".tiff")
    stem, suffix = (base.name[:-len(base.suffix)], base.suffix) if tif else (base.name, ".tif")
    targets = {names[0]: base} if len(names) == 1 else {n: base.with_name(f"{stem}_{n}{suffix}") for n in names}
    for path in targets.values():
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} already exists; choose another name or add --overwrite.")
    return targets


def _write_outputs(model, outputs: dict, targets: dict[str, Path], lead: str, record: dict, dtype: str,
                   overwrite: bool) -> list[Path]:
    """Every output into its TIFF: images as ``dtype``, signed maps float32, labels as integers."""
    from .core.contract import IMAGE, LABELS, SIGNED
    from .core.export import write_tiff

    kinds = {o.name: o.kind for o in model.outputs}
    sample_axes = "".join(model.family.sample_axes)
    written = []
    for name, path in targets.items():
        kind = kinds.get(name, IMAGE)
        axes = lead + sample_axes if kind == LABELS else lead + "C" + sample_axes
        kind_dtype = {LABELS: "labels", SIGNED: "float32"}.get(kind, dtype)
        info = {**record, "output": name, "output_kind": kind} if len(targets) > 1 else record
        written.append(write_tiff(path, outputs[name], axes, info, dtype=kind_dtype, overwrite=overwrite))
    return written


def _run_with_bar(model, source, label: str, **kwargs) -> dict:
    """``model.run`` with a text bar (made at the first chunk, when the total is known)."""
    from .core.progress import TextProgress

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
    from .core.zoo import DEFAULT_MODEL, list_models, user_model_dir

    models = list_models()
    width = max([len("family")] + [len(m.family) for m in models])
    print(f"{'name':<22} {'family':<{width}} {'where':<8} trained on")
    for info in models:
        mark = "*" if info.name == DEFAULT_MODEL else " "
        print(f"{info.name + mark:<22} {info.family:<{width}} {'shipped' if info.shipped else 'user':<8} {info.data}")
    print(f"(* default; user models folder: {user_model_dir()})")
    return 0


def cmd_generate(args) -> int:
    from .core.model import LATENT_NOTE
    from .core.provenance import provenance

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
    from .core.progress import TextProgress
    from .core.registry import get_family
    from .core.settings import parse_assignments
    from .core.training import CANCELLED, FINISHED, STEP, TrainSettings, setup_training
    from .data.inputs import describe_sources

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

    from .core.registry import family_titles, get_family
    from .core.settings import describe_hparams

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

    from .data.inputs import load_training_inputs

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
    return 0


def cmd_export(args) -> int:
    from .core.contract import LATENT, Point
    from .core.latent import point_path
    from .core.model import LATENT_NOTE
    from .core.provenance import provenance

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
