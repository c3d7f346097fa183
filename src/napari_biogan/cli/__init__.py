"""`napari-biogan` command: the same core calls as the plugin, headless.

Every command prints `--help`; a bad argument or file exits non-zero with one
plain sentence on stderr (add `--debug` for the traceback). The commands are
written once against the family contract (inputs, outputs, controls): no
family is named here.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .. import __version__
from ..core.errors import BioGanError
from .commands import (_train_epilog, cmd_clips, cmd_demo, cmd_evaluate, cmd_export, cmd_generate,  # noqa: F401
                       cmd_models, cmd_train, parse_size)


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
                   help="auto: bf16 only where a quick measurement on this device found it faster than fp32")


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
    p.add_argument("--csv", default=None, metavar="PATH",
                   help="also write the metrics as a table (metric, label, value, real, meaning, model...)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
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

    from .crop_cells import add_parser as add_crop_cells  # its own module: argparse and the command
    add_crop_cells(sub)

    from .export_bioimageio import add_parser as add_export_bioimageio  # its own module: argparse and the command
    add_export_bioimageio(sub)

    p = sub.add_parser("demo", help="open napari with the plugin docked and videos of the shipped cell-video model")
    p.add_argument("--model", default=None)
    p.set_defaults(func=cmd_demo)
    return parser


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
    if Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent.parent):
        print(f"napari-biogan: warning: {' '.join(str(message).split())}", file=sys.stderr)
