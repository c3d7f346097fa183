"""`napari-biogan export-bioimageio`: a segmentation model as a BioImage Model Zoo package (.zip).

    napari-biogan export-bioimageio --model nuclei-seg -o nuclei-seg.bioimageio.zip [--test-image field.tif]

The package (bioimage.io model format 0.5) holds the rdf.yaml, TorchScript and
pytorch_state_dict weights, a test input and output and a README with the model
card's facts; it is tested with bioimageio.core before it is written. The work is
:func:`napari_biogan.core.bioimageio.export_bioimageio`, as the Model widget's.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    """Register the sub-command on the CLI's sub-parsers."""
    from . import POSITIVE

    p = sub.add_parser("export-bioimageio", help="write a segmentation model as a BioImage Model Zoo package (.zip)")
    p.add_argument("--model", required=True, help="shipped/user model name or a .safetensors file, e.g. nuclei-seg")
    p.add_argument("-o", "--output", required=True, help="package to write (.zip)")
    p.add_argument("--test-image", default=None, metavar="TIF",
                   help="a 2D TIFF whose central tile becomes the test input (default: a synthetic image of discs)")
    p.add_argument("--tile", type=POSITIVE, default=256,
                   help="tile side in pixels the package runs on (tools tile larger images; default 256)")
    p.add_argument("--author", action="append", default=[], metavar="NAME", help="an author of the package")
    p.add_argument("--overwrite", action="store_true")
    # SUPPRESS: given after the command it sets --debug; left out it keeps the value given before the command
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and warnings")
    p.set_defaults(func=cmd_export_bioimageio)


def cmd_export_bioimageio(args) -> int:
    from ..core.bioimageio import export_bioimageio
    from ..core.errors import DataError
    from ..core.model import Model
    from ..core.progress import TextProgress
    from ..core.zoo import resolve_model

    model = Model.load(resolve_model(args.model), device="cpu")  # tracing and the package test run on the CPU
    image = None
    if args.test_image:
        from ..data.tiff_io import read_tiff

        try:
            image, _axes = read_tiff(args.test_image)
        except OSError as err:
            raise DataError(f"Cannot read the test image {args.test_image} ({err.strerror or err}).") from None
    bars: list[TextProgress] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(TextProgress(total, "export"))
        bars[0].update(done, force=done >= total)

    try:
        written = export_bioimageio(model, args.output, overwrite=args.overwrite, test_image=image, tile=args.tile,
                                    authors=args.author, progress=update)
    finally:
        for bar in bars:
            bar.close()
    print(f"wrote {written} (bioimage.io model package; passed bioimageio.core's model test)")
    return 0
