"""Export dock widget: selected layers or fresh samples to ImageJ TIFFs with provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QPushButton, QRadioButton, QWidget

from ..core.export import DTYPES
from ._common import PathRow, ProgressTask, SessionWidget, notify, report_error
from .generate_widget import ControlsGroup, run_model, spin
from .layer_axes import layer_array, own_axis_labels, own_metadata


def layer_tuple(layer) -> tuple[Any, dict[str, Any], str]:
    """A napari Image or Labels layer as (data, meta, kind), the form the npe2 writer receives (data copied)."""
    # a copy: the file is written on another thread while the layer may change (Explore updates in place)
    # the layer's own array and axes: axes inserted to line it up with a video are not written
    meta = {"name": layer.name, "metadata": own_metadata(layer), "axis_labels": own_axis_labels(layer)}
    if isinstance(layer, Labels):
        return np.array(layer_array(layer)), meta, "labels"
    meta.update(rgb=bool(layer.rgb), colormap=getattr(layer.colormap, "name", "gray"))
    return np.array(layer_array(layer)), meta, "image"


def write_stack(path: str, stack: np.ndarray, axes: str, provenance: dict[str, Any], dtype: str,
                overwrite: bool) -> list[str]:
    from ..core.export import write_tiff

    return [str(write_tiff(path, stack, axes, provenance, dtype=dtype, overwrite=overwrite))]


def write_fresh(model, n: int, seed: int, precision: str, device: str, path: str, dtype: str,
                overwrite: bool, controls: dict[str, Any] | None = None):
    """Worker: generate ``n`` samples of every output (yielding progress) and write a file per output."""
    from ..core.errors import DataError
    from ..core.export import output_paths, write_outputs
    from ..core.model import LATENT_NOTE
    from ..core.provenance import provenance
    from .generate_widget import load_default_model

    if model is None:
        model = load_default_model(device)
    if not model.has_latent:
        names = " and ".join(f"'{spec.name}'" for spec in model.run_inputs())
        raise DataError(f"A '{model.family.name}' model makes its outputs from its {names} input, not from a "
                        "seed; run it on a layer with Generate and export the layers.")
    paths = output_paths(path, [spec.name for spec in model.outputs], overwrite)  # before generating
    request = {"n": n, "seed": seed, "controls": controls}
    model, outputs = yield from run_model(model, request, precision, device)
    record = provenance(model, seed=seed, n=n, latent=LATENT_NOTE, precision=precision,
                        controls=dict(controls or {}) or None)
    written = write_outputs(paths, outputs, model.outputs, "N", "".join(model.family.sample_axes), record,
                            dtype, overwrite)
    return [str(p) for p in written]


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
        self.n_spin = spin(1, 100_000, 16)
        form.addRow("Samples (N)", self.n_spin)
        self.seed_spin = spin(0, 2**31 - 1, 0)
        form.addRow("Seed", self.seed_spin)
        self.layout().addLayout(form)
        self.controls_box = ControlsGroup()
        self.layout().addWidget(self.controls_box)
        form = QFormLayout()
        self.output_row = PathRow("save", "TIFF (*.tif *.tiff)", "output .tif")
        form.addRow("Output", self.output_row)
        self.dtype_combo = QComboBox()
        self.dtype_combo.addItems(DTYPES)
        self.dtype_combo.setToolTip("uint16 scales [0, 1] to 0..65535 (the scale is in the provenance); "
                                    "labels are written as integers and signed maps as float32 whatever is chosen")
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
        #: the first file written by the last export, and all of them (fresh samples: one per output)
        self.written: str | None = None
        self.written_files: list[str] = []
        self._task: ProgressTask | None = None
        self.from_model.toggled.connect(self._toggle)
        self._on_model_changed(self.session.model)

    def _on_model_changed(self, model) -> None:
        self.controls_box.set_controls(model.controls if model is not None else ())
        self._toggle()

    def _toggle(self, *_) -> None:
        fresh = self.from_model.isChecked()
        self.n_spin.setEnabled(fresh)
        self.seed_spin.setEnabled(fresh)
        self.controls_box.setEnabled(fresh)

    def export(self) -> None:
        """Write the chosen layers or samples (in a worker); never replaces a file unless allowed."""
        from ..core.errors import BioGanError, DataError
        from ..io import file_contents

        path = self.output_row.path()
        dtype, overwrite = self.dtype_combo.currentText(), self.overwrite_check.isChecked()
        try:
            if not path:
                raise DataError("Choose an output file.")
            if Path(path).suffix.lower() not in (".tif", ".tiff"):
                path += ".tif"
            if self.from_model.isChecked():
                worker_args = (write_fresh, self.session.model, self.n_spin.value(), self.seed_spin.value(),
                               "fp32", self.session.device, path, dtype, overwrite, self.controls_box.values())
            else:
                layers = [layer for layer in self.viewer.layers.selection if isinstance(layer, (Image, Labels))]
                if not layers:
                    raise DataError("Select one or more image layers (or one Labels layer) to export.")
                layers.sort(key=lambda layer: self.viewer.layers.index(layer))
                # the npe2 writer's path: the same file from File > Save Layers and from here
                stack, axes, provenance, dtype = file_contents([layer_tuple(layer) for layer in layers], dtype)
                worker_args = (write_stack, path, stack, axes, provenance, dtype, overwrite)
        except BioGanError as err:
            self.status.setText(report_error(err, "Export"))
            return
        self.export_button.setEnabled(False)
        self.status.setText(f"Writing {Path(path).name}...")
        description = f"Exporting {Path(path).name}"
        # fresh samples: the worker's first step gives the total; layers: a busy bar while writing
        fresh = self.from_model.isChecked()
        self._task = None if fresh else ProgressTask(None, description)
        self.run_worker(*worker_args, action="Export", on_return=self._written,
                        on_yield=(lambda step: self._progress(step, description)) if fresh else None,
                        on_error=lambda err: self.status.setText(str(err)), on_done=self._done)

    def _progress(self, step: tuple[int, int], description: str) -> None:
        done, total = step
        if self._task is None:
            self._task = ProgressTask(total, description)
        self._task.update(done)

    def _done(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None
        self.export_button.setEnabled(True)

    def _written(self, paths: list[str]) -> None:
        self.written_files = list(paths)
        self.written = paths[0] if paths else None
        message = f"Wrote {', '.join(paths)}."
        self.status.setText(message)
        notify(message)
