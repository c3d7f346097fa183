"""The Montage box (in Generate): a stack layer's samples tiled in one image layer, optionally beside
real samples of the same shape. The tiling is :mod:`napari_biogan.core.montage`; this only reads the
layers and adds the montage layer (next to the stack, so both are seen at once)."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QFormLayout, QGroupBox, QLabel, QPushButton, QWidget

from ..core.errors import BioGanError, DataError
from ..core.export import PROVENANCE_KEY
from ..core.montage import GAP, MAX_SAMPLES, PAIR_GAP, grid_shape, montage_pair, tile
from ._common import ImageLayerPicker, add_layers, report_error
from .explore_work import unit_range
from .layer_axes import layer_array, own_axes, own_metadata

NONE = "(none)"


def stack_of(layer) -> tuple[np.ndarray, str]:
    """(the layer's samples (N, *middle, Y, X), their axes without N) for a montage; DataError otherwise."""
    if getattr(layer, "rgb", False) or getattr(layer, "multiscale", False):
        raise DataError(f"'{layer.name}' is an RGB or multiscale layer; a montage tiles a stack of samples.")
    data = np.asarray(layer_array(layer))
    axes = own_axes(layer) or ("N" + "TYX"[-(data.ndim - 1):] if 3 <= data.ndim <= 4 else "")
    if data.ndim < 3 or not axes.startswith("N"):
        raise DataError(f"'{layer.name}' is one sample ({data.ndim} axes); a montage tiles a stack of samples "
                        "(N, Y, X) or videos (N, T, Y, X).")
    return data, axes[1:]


def montage_layer(layer, real=None, limit: int = MAX_SAMPLES) -> tuple[tuple, str]:
    """(the montage's layer tuple for ``add_layers``, a sentence saying what it shows)."""
    data, axes = stack_of(layer)
    total = len(data)
    kwargs: dict[str, Any] = {"name": f"{layer.name} montage", "axis_labels": tuple(axes)}
    if real is None:
        image, n = tile(data, GAP, limit=limit), min(total, limit)
        kwargs.update(colormap=getattr(layer.colormap, "name", "gray"),
                      contrast_limits=tuple(float(v) for v in layer.contrast_limits))
        said = f"{n} of {total} samples of '{layer.name}'"
    else:
        real_data, _ = stack_of(real)
        # each side in [0, 1] by its own layer's contrast limits: raw microscope counts beside [0, 1] samples
        image, n = montage_pair(unit_range(data.astype(np.float32), layer.contrast_limits),
                                unit_range(real_data.astype(np.float32), real.contrast_limits), GAP, limit=limit)
        kwargs.update(name=f"{layer.name} (left) | {real.name} (right) montage", colormap="gray",
                      contrast_limits=(0.0, 1.0))
        said = f"{n} generated samples of '{layer.name}' (left) beside {n} of '{real.name}' (right)"
    rows, cols = grid_shape(n)
    if n < total:
        said += f" (the first {n}; a montage shows at most {limit})"
    record = {k: v for k, v in (own_metadata(layer).get(PROVENANCE_KEY) or {}).items() if k != "channel"}
    record.update(axes=axes, montage={"of": layer.name, "samples": n, "of_total": total, "grid": [rows, cols],
                                      "gap": GAP, "real": real.name if real is not None else None})
    kwargs["metadata"] = {PROVENANCE_KEY: record}
    # beside the stack, not over it: shifted right by one sample and a gap, in the stack's pixel size
    sy, sx = (float(v) for v in layer.scale[-2:])
    ty, tx = (float(v) for v in layer.translate[-2:])
    lead = len(axes) - 2
    kwargs["scale"] = (1.0,) * lead + (sy, sx)
    kwargs["translate"] = (0.0,) * lead + (ty, tx + (data.shape[-1] + PAIR_GAP) * sx)
    return (image, kwargs, "image"), f"Montage of {said}, {rows} x {cols}."


class MontageBox(QGroupBox):
    """Pick a stack layer (and optionally a real one) -> one montage image layer beside it."""

    def __init__(self, viewer, parent: QWidget | None = None):
        super().__init__("Montage", parent)
        self.viewer = viewer
        form = QFormLayout(self)
        self.samples_picker = ImageLayerPicker(viewer)
        self.samples_picker.setToolTip("The stack whose samples are tiled (the last generated one by default)")
        form.addRow("Samples", self.samples_picker)
        self.real_picker = ImageLayerPicker(viewer, none_text=NONE)
        self.real_picker.setToolTip("Real samples of the same shape, tiled on the right (optional)")
        form.addRow("Beside (real)", self.real_picker)
        self.button = QPushButton("Show montage")
        self.button.setToolTip(f"The first {MAX_SAMPLES} samples in a grid; videos are tiled frame by frame")
        self.button.clicked.connect(self.show_montage)
        form.addRow(self.button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form.addRow(self.status)
        #: the montage layer made last (tests, scripts)
        self.layer = None

    def follow(self, layer) -> None:
        """Offer ``layer`` (a freshly generated stack) as the samples to tile."""
        if layer is not None and self.samples_picker.findText(layer.name) >= 0:
            self.samples_picker.setCurrentText(layer.name)

    def show_montage(self) -> None:
        layer = self.samples_picker.layer()
        try:
            if layer is None:
                raise DataError("Choose a layer of samples to tile (generate some first).")
            made, said = montage_layer(layer, self.real_picker.layer())
        except BioGanError as err:
            self.status.setText(report_error(err, "Montage"))
            return
        self.layer = add_layers(self.viewer, [made], replace=True)[0]
        self.viewer.reset_view()
        self.status.setText(said)
