"""Export dock widget: selected layers or fresh samples to an ImageJ TIFF with provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image
from napari.utils import progress
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QLabel, QPushButton, QRadioButton, QSpinBox,
                            QWidget)

from ..core.export import DTYPES
from ._common import PathRow, SessionWidget, notify, report_error
from .generate_widget import LATENT_NOTE, generate_samples, provenance_for


def layer_tuple(layer) -> tuple[Any, dict[str, Any], str]:
    """A napari image layer as (data, meta, "image"), the form the npe2 writer receives (data copied)."""
    cmap = getattr(layer.colormap, "name", "gray")
    # a copy: the file is written on another thread while the layer may change (Explore updates in place)
    return (np.array(layer.data), {"name": layer.name, "metadata": dict(layer.metadata),
                                     "axis_labels": tuple(layer.axis_labels), "rgb": bool(layer.rgb),
                                     "colormap": cmap}, "image")


def write_stack(path: str, stack: np.ndarray, axes: str, provenance: dict[str, Any], dtype: str,
                overwrite: bool) -> str:
    from ..core.export import write_tiff

    return str(write_tiff(path, stack, axes, provenance, dtype=dtype, overwrite=overwrite))


def write_fresh(model, n: int, seed: int, precision: str, device: str, path: str, dtype: str,
                overwrite: bool):
    """Worker: generate ``n`` samples (yielding progress) and write them."""
    from ..core.export import write_tiff

    if Path(path).exists() and not overwrite:  # refuse before spending time on generation
        from ..core.errors import OutputExistsError

        raise OutputExistsError(f"{path} already exists; choose another name or allow overwriting.")
    model, images = yield from generate_samples(model, n, seed, precision, device)
    provenance = provenance_for(model, seed=seed, n=n, latent=LATENT_NOTE, precision=precision,
                                channels=[{"name": c.name, "colormap": c.colormap} for c in model.channels])
    axes = "NC" + "".join(model.family.sample_axes)
    return str(write_tiff(path, images, axes, provenance, dtype=dtype, overwrite=overwrite))


class ExportWidget(SessionWidget):
    """Write TIFFs that ImageJ/Fiji open as hyperstacks and that remember how they were made."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        form = QFormLayout()
        self.from_layers = QRadioButton("Selected layers")
        self.from_layers.setChecked(True)
        form.addRow(self.from_layers)
        self.from_model = QRadioButton("Fresh samples of the current model")
        form.addRow(self.from_model)
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 100_000)
        self.n_spin.setValue(16)
        form.addRow("Samples (N)", self.n_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        form.addRow("Seed", self.seed_spin)
        self.output_row = PathRow("save", "TIFF (*.tif *.tiff)", "output .tif")
        form.addRow("Output", self.output_row)
        self.dtype_combo = QComboBox()
        self.dtype_combo.addItems(DTYPES)
        self.dtype_combo.setToolTip("uint16 scales [0, 1] to 0..65535 (the scale is in the provenance)")
        form.addRow("Pixel type", self.dtype_combo)
        self.overwrite_check = QCheckBox("Overwrite an existing file")
        form.addRow(self.overwrite_check)
        self.layout().addLayout(form)
        self.export_button = QPushButton("Export")
        self.export_button.clicked.connect(self.export)
        self.layout().addWidget(self.export_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)
        #: the file written by the last export
        self.written: str | None = None
        self.from_model.toggled.connect(self._toggle)
        self._toggle()

    def _toggle(self, *_) -> None:
        fresh = self.from_model.isChecked()
        self.n_spin.setEnabled(fresh)
        self.seed_spin.setEnabled(fresh)

    def export(self) -> None:
        """Write the chosen layers or samples (in a worker); never replaces a file unless allowed."""
        from ..core.errors import BioGanError, DataError
        from ..io import stack_layers

        path = self.output_row.path()
        dtype, overwrite = self.dtype_combo.currentText(), self.overwrite_check.isChecked()
        try:
            if not path:
                raise DataError("Choose an output file.")
            if Path(path).suffix.lower() not in (".tif", ".tiff"):
                path += ".tif"
            if self.from_model.isChecked():
                worker_args = (write_fresh, self.session.model, self.n_spin.value(), self.seed_spin.value(),
                               "fp32", self.session.device, path, dtype, overwrite)
            else:
                layers = [layer for layer in self.viewer.layers.selection if isinstance(layer, Image)]
                if not layers:
                    raise DataError("Select one or more image layers to export.")
                layers.sort(key=lambda layer: self.viewer.layers.index(layer))
                stack, axes, provenance = stack_layers([layer_tuple(layer) for layer in layers])
                worker_args = (write_stack, path, stack, axes, provenance, dtype, overwrite)
        except BioGanError as err:
            report_error(err, "Export")
            self.status.setText(str(err))
            return
        self.export_button.setEnabled(False)
        self.status.setText(f"Writing {Path(path).name}...")
        total = self.n_spin.value() if self.from_model.isChecked() else 0
        bar = progress(total=total or None, desc=f"Exporting {Path(path).name}")
        self.run_worker(*worker_args, action="Export", on_return=self._written,
                        on_yield=(lambda done: bar.update(done - bar.n)) if total else None,
                        on_error=lambda err: self.status.setText(str(err)),
                        on_done=lambda: (bar.close(), self.export_button.setEnabled(True)))

    def _written(self, path: str) -> None:
        self.written = path
        self.status.setText(f"Wrote {path}.")
        notify(f"Wrote {path}.")
