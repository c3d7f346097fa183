"""`napari-biogan crop-cells`: single-cell training crops from a user's own multi-channel fields.

    napari-biogan crop-cells FIELD [FIELD ...] -o DIR (--centres CSV | --labels TIF | --detect) [--size 32]

A FIELD is one multi-channel TIFF (C, Y, X) or its channel files joined by commas
(``BF.tif,YFP.tif,TFP.tif``); the shape channel (bright-field, a membrane marker) comes
first, then the proteins. Cell centres come from a CSV table (columns y and x, or the
napari Points export axis-0 / axis-1, or Cell-ID's ypos / xpos; with several fields a
``field`` column gives each row's field, by 0-based index or file name), from one Labels
TIFF per field (object centroids), or from simple detection on the shape channel. The
crops are written as uint8 (C, size, size) TIFFs in a class sub-folder of DIR (each
channel scaled by its field's percentiles, as the shipped model's training crops), with
``crops.csv`` saying where each crop was cut; ``napari-biogan train --family cells --data DIR``
trains on them. The work is :func:`napari_biogan.data.cells.crop_field_cells`, as the widget's.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..core.errors import DataError


def add_parser(sub) -> None:
    """Register the sub-command on the CLI's sub-parsers."""
    p = sub.add_parser("crop-cells", help="crop single cells around their centres from multi-channel fields "
                                          "(training crops for the cell models)")
    p.add_argument("fields", nargs="+", metavar="FIELD",
                   help="a multi-channel TIFF (C, Y, X), or channel files joined by commas (shape first)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the crops (created)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--centres", metavar="CSV", help="table of cell centres (y, x[, field])")
    where.add_argument("--labels", action="append", metavar="TIF",
                       help="a Labels TIFF of the cells (one per field, in the fields' order)")
    where.add_argument("--detect", action="store_true", help="detect cells on the shape channel")
    p.add_argument("--size", type=int, default=32, help="crop height and width in pixels (default 32)")
    p.add_argument("--names", default=None, metavar="SHAPE,PROTEIN,...",
                   help="channel names, shape first (default: shape, protein 1, ...)")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")
    p.set_defaults(func=cmd_crop_cells)


def read_field(spec: str) -> list[np.ndarray]:
    """One field's channels (each (Y, X)) from a multi-channel TIFF or comma-joined channel files."""
    from ..data.cells import read_crop

    parts = [s for s in spec.split(",") if s.strip()]
    planes: list[np.ndarray] = []
    for part in parts:
        path = Path(part.strip())
        if not path.is_file():
            raise DataError(f"No field file at {path}.")
        data = np.squeeze(read_crop(path))
        planes += [data] if data.ndim == 2 else list(data)
    if len(planes) < 2 or any(p.ndim != 2 for p in planes):
        raise DataError(f"The field {spec} needs a shape channel and at least one protein channel, each 2D "
                        "(one (C, Y, X) TIFF, or channel files joined by commas).")
    return planes


def cmd_crop_cells(args) -> int:
    import tifffile

    from ..core.atomic import write_atomically
    from ..data.cells import CellSet, crop_field_cells, read_centre_table, write_cell_folders

    if args.size < 4:
        raise DataError(f"The crop size must be at least 4 pixels, not {args.size}.")
    if args.labels and len(args.labels) != len(args.fields):
        raise DataError(f"Give one --labels file per field: {len(args.fields)} field(s), "
                        f"{len(args.labels)} Labels file(s).")
    fields = [read_field(spec) for spec in args.fields]
    if len({len(f) for f in fields}) > 1:
        raise DataError("Every field needs the same channels.")
    names = [n.strip() for n in args.names.split(",")] if args.names else []
    if names and len(names) != len(fields[0]):
        raise DataError(f"--names gives {len(names)} names for {len(fields[0])} channels.")
    centres: list = [None] * len(fields)
    if args.centres:  # rows name their field by index or by the file name of its first channel
        centres = read_centre_table(args.centres, [f.split(",")[0] for f in args.fields])
    sets, where = [], []
    for index, (planes, spec) in enumerate(zip(fields, args.fields)):
        labels = None
        if args.labels:
            try:
                labels = np.squeeze(tifffile.imread(args.labels[index]))
            except Exception as err:
                raise DataError(f"{Path(args.labels[index]).name} is not a readable TIFF.") from err
        if centres[index] is not None and not len(centres[index]):
            continue  # no cell of the table in this field
        cells = crop_field_cells(planes, centres=centres[index], labels=labels, size=args.size,
                                 channel_names=names)
        sets.append(cells)
        where += [(spec, float(y), float(x)) for y, x in cells.info["centres"]]
    if not sets or not sum(len(s) for s in sets):
        raise DataError("No cells to crop: the table has no centres in these fields.")
    channel_names = sets[0].channel_names
    # one class folder: the protein's name for (shape, protein) crops; "cells" for several proteins
    folder_name = channel_names[1] if len(channel_names) == 2 else "cells"
    images = np.concatenate([s.images for s in sets])
    crops = CellSet(images, np.zeros(len(images), np.int64), [folder_name], channel_names=channel_names)
    out = write_cell_folders(crops, args.output, overwrite=args.overwrite)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["file", "field", "y", "x"])
    for i, (spec, y, x) in enumerate(where):
        writer.writerow([f"{folder_name}/{i:05d}.tif", spec, f"{y:.2f}", f"{x:.2f}"])
    write_atomically(out / "crops.csv", lambda handle: handle.write(table.getvalue().encode()),
                     overwrite=args.overwrite)
    print(f"cropped {len(images)} cells of {args.size}x{args.size} ({', '.join(channel_names)}) from "
          f"{len(args.fields)} field(s) into {out / folder_name}")
    return 0

