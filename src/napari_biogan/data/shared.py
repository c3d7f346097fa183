"""Where the public data sets used by the sample-data entries, build scripts and benchmarks live.

They are never shipped in the package: ``$NAPARI_BIOGAN_DATA`` points at a folder holding them,
else the project's checkout keeps them beside the repository in ``../shared/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import DataError


def shared_data_dir(name: str, what: str | None = None, must_exist: bool = False) -> Path:
    """The folder of the data set ``name``; with ``must_exist``, a DataError naming ``what`` if it is absent."""
    root = os.environ.get("NAPARI_BIOGAN_DATA")
    # src/napari_biogan/data/shared.py -> parents[3] is the repository root
    base = Path(root) if root else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    folder = base / name
    if must_exist and not folder.is_dir():
        raise DataError(f"{what or name} needs the public data set '{name}' in {base}, which is not there "
                        "(set NAPARI_BIOGAN_DATA to the folder holding it).")
    return folder
