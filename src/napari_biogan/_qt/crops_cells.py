"""The "single cells" mode of the training-crops (Clips) widget: crop cells of a multi-channel field.

The channels are image layers (the shape channel: bright-field, a membrane marker; then the
protein layers ticked in the list), or one (C, Y, X) layer with the shape first. Centres
come from a Points layer, a Labels layer, a CSV table (y, x) or simple detection on the
shape channel. The crops are cut in a worker by :func:`data.cells.crop_field_cells` (the
CLI's ``crop-cells`` too) and come back as one (N, Y, X) layer per channel in the source
layers' colours, named after their channel, with the centres as a Points layer on the
field; a folder, when chosen, receives them as a training folder for the cell models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Points
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QComboBox, QFormLayout, QListWidget, QListWidgetItem, QPushButton, QSizePolicy, QSpinBox,
                            QWidget)

from ..core.errors import BioGanError, DataError
from ..core.export import PROVENANCE_KEY
from ._common import ImageLayerPicker, LabelsLayerPicker, LayerPicker, PathRow, add_layers, disconnect, report_error
from .layer_axes import layer_array

POINTS, LABELS, TABLE, DETECT = "points", "labels", "table", "detect"
CENTRE_TITLES = {POINTS: "Points layer", LABELS: "Labels layer", TABLE: "CSV table (y, x)", DETECT: "Detect cells"}


def crop_field(planes: list[np.ndarray], names: list[str], how: str, where: Any, size: int,
               folder: str | None):
    """Worker: the cells of one field (:func:`data.cells.crop_field_cells`), written to ``folder`` as a
    training folder when one is given; returns (CellSet, the folder written or None)."""
    from ..data.cells import CellSet, crop_field_cells, read_centre_table, write_cell_folders

    centres = labels = None
    if how == POINTS:
        centres = np.asarray(where, dtype=np.float64)[:, -2:]
        if not len(centres):
            raise DataError("The Points layer has no points: click the cells' centres first.")
    elif how == LABELS:
        labels = np.asarray(where)
    elif how == TABLE:
        centres = read_centre_table(where)[0]
    cells = crop_field_cells(planes, centres=centres, labels=labels, size=size, channel_names=names)
    if folder:
        # one class folder: the protein's name for (shape, protein) crops, "cells" for several proteins
        name = names[1] if len(names) == 2 else "cells"
        write_cell_folders(CellSet(cells.images, cells.classes, [name], channel_names=names), folder)
    return cells, folder or None


class CellCropsBox(QWidget):
    """The single-cells controls; ``owner`` is the dock widget (its viewer, workers and status line)."""

    NOTE = ("Cells are cropped around their centres from the shape layer and the ticked protein layers; "
            "save them to a folder to train a cell model on it (Train: image from a TIFF folder).")

    def __init__(self, owner, parent: QWidget | None = None):
        super().__init__(parent)
        self.owner, viewer = owner, owner.viewer
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.shape_picker = ImageLayerPicker(viewer)
        self.shape_picker.setToolTip("The shape channel (bright-field, a membrane marker) of the field, or one "
                                     "(C, Y, X) layer with every channel, shape first")
        form.addRow("Shape channel", self.shape_picker)
        self.protein_list = QListWidget()
        self.protein_list.setToolTip("Tick the protein channel layers of the same field")
        self.protein_list.setMaximumHeight(90)
        form.addRow("Protein channels", self.protein_list)
        self.centres_combo = QComboBox()
        for key, title in CENTRE_TITLES.items():
            self.centres_combo.addItem(title, key)
        form.addRow("Cell centres from", self.centres_combo)
        self.points_picker = LayerPicker(viewer, layer_type=Points)
        form.addRow("Points layer", self.points_picker)
        self.labels_picker = LabelsLayerPicker(viewer)
        form.addRow("Labels layer", self.labels_picker)
        self.table_row = PathRow("open", "CSV (*.csv)", "centres.csv (columns y, x)")
        form.addRow("Table", self.table_row)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(8, 512)
        self.size_spin.setValue(32)
        self.size_spin.setToolTip("Crop height and width in pixels: a whole cell with a margin")
        form.addRow("Crop size", self.size_spin)
        self.folder_row = PathRow("folder", "", "training folder (optional, new or empty)")
        form.addRow("Save to", self.folder_row)
        self.crop_button = QPushButton("Crop cells")
        self.crop_button.clicked.connect(self.crop)
        form.addRow(self.crop_button)
        self._form = form
        # as tall as its rows: the dock's spare height goes below the status line, not between rows
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        for row in (self.table_row, self.folder_row):
            row.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.centres_combo.currentIndexChanged.connect(self._centres_changed)
        events = viewer.layers.events
        for event in (events.inserted, events.removed):
            event.connect(self.refresh_proteins)
        refresh = self.refresh_proteins
        self.destroyed.connect(lambda *_: disconnect(refresh, events.inserted, events.removed))
        self.refresh_proteins()
        self._centres_changed()
        #: the crop layers of the last run (tests, scripts)
        self.crop_layers: list = []

    # -- the controls -----------------------------------------------------------------------------------
    def refresh_proteins(self, *_) -> None:
        """The protein list: every image layer, ticks kept across refreshes."""
        ticked = set(self.protein_names())
        self.protein_list.clear()
        for layer in self.owner.viewer.layers:
            if isinstance(layer, Image) and not layer.rgb:
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if layer.name in ticked else Qt.CheckState.Unchecked)
                self.protein_list.addItem(item)

    def protein_names(self) -> list[str]:
        items = [self.protein_list.item(i) for i in range(self.protein_list.count())]
        return [i.text() for i in items if i.checkState() == Qt.CheckState.Checked]

    def set_proteins(self, names: list[str]) -> None:
        """Tick exactly these protein layers (scripts, tests)."""
        for i in range(self.protein_list.count()):
            item = self.protein_list.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    def centres_source(self) -> str:
        return self.centres_combo.currentData()

    def set_centres_source(self, key: str) -> None:
        self.centres_combo.setCurrentIndex(self.centres_combo.findData(key))

    def _centres_changed(self, *_) -> None:
        how = self.centres_source()
        for row, key in ((self.points_picker, POINTS), (self.labels_picker, LABELS), (self.table_row, TABLE)):
            self._form.setRowVisible(row, how == key)

    # -- cropping ---------------------------------------------------------------------------------------
    def channels(self) -> tuple[list[np.ndarray], list[str], list[Any]]:
        """(planes (Y, X) shape first, their names, their layers) read on the main thread."""
        viewer, shape = self.owner.viewer, self.shape_picker.layer()
        if shape is None:
            raise DataError("Open a field first: its shape channel (bright-field) and protein channels as image "
                            "layers.")
        proteins = [viewer.layers[n] for n in self.protein_names() if n in viewer.layers and n != shape.name]
        data = np.asarray(layer_array(shape))
        if not proteins and data.ndim == 3 and 2 <= data.shape[0] <= 8:  # one (C, Y, X) layer
            return [np.array(p) for p in data], [shape.name] + [f"protein {i}" for i in range(1, len(data))], \
                [shape] * len(data)
        if not proteins:
            raise DataError("Tick the protein channel layers of the field (or pick one (C, Y, X) layer).")
        layers = [shape] + proteins
        arrays = [np.array(layer_array(layer)) for layer in layers]
        if any(a.ndim != 2 or a.shape != data.shape for a in arrays):
            raise DataError("The shape and protein layers must be 2D fields of the same size.")
        return arrays, [layer.name for layer in layers], layers

    def crop(self) -> None:
        """Read the layers and the centres here; crop (and save) in a worker."""
        how = self.centres_source()
        try:
            planes, names, layers = self.channels()
            where: Any = None
            if how == POINTS:
                points = self.points_picker.layer()
                if points is None:
                    raise DataError("Add a Points layer with a point on each cell, or choose another centre source.")
                # the points in the field's pixels, whatever the two layers' scales and offsets
                where = np.asarray([layers[0].world_to_data(points.data_to_world(p))[-2:]
                                    for p in np.asarray(points.data)]).reshape(-1, 2)
            elif how == LABELS:
                labels = self.labels_picker.layer()
                if labels is None:
                    raise DataError("Choose the Labels layer of the cells, or another centre source.")
                where = np.array(layer_array(labels))
            elif how == TABLE:
                where = self.table_row.path()
                if not where:
                    raise DataError("Choose the CSV table of cell centres (columns y and x).")
        except BioGanError as err:
            report_error(err, "Cropping cells")
            return
        self.crop_button.setEnabled(False)
        colours = [getattr(layer.colormap, "name", "gray") for layer in layers]
        source = layers[0].name
        self.owner.run_worker(crop_field, planes, names, how, where, self.size_spin.value(),
                              self.folder_row.path() or None, action="Cropping cells",
                              on_return=lambda result: self._show(result, colours, source, layers[0]),
                              on_error=lambda err: self.owner.status.setText(str(err)),
                              on_done=lambda: self.crop_button.setEnabled(True))

    def _show(self, result, colours: list[str], source: str, shape_layer) -> None:
        cells, folder = result
        viewer, names = self.owner.viewer, cells.channel_names
        listed = [{"name": n, "colormap": c} for n, c in zip(names, colours)]
        info = {"source": source, "centres": np.round(cells.info["centres"], 2).tolist(), "axes": "NYX",
                "channels": listed}
        tuples = [(cells.images[:, c], {"name": f"cells of {source} {name}", "colormap": colours[c],
                                        "blending": "additive", "contrast_limits": (0, 255),
                                        "axis_labels": ("N", "Y", "X"),
                                        "metadata": {PROVENANCE_KEY: {**info, "channel": name}}}, "image")
                  for c, name in enumerate(names)]
        self.crop_layers = add_layers(viewer, tuples, replace=True)
        marks = f"cell centres on {source}"
        if marks in viewer.layers:
            viewer.layers.remove(marks)
        viewer.add_points(cells.info["centres"], name=marks, size=self.size_spin.value(), face_color="transparent",
                          border_color="yellow", symbol="square", scale=shape_layer.scale[-2:],
                          translate=shape_layer.translate[-2:])
        where = f"; saved to {folder}" if folder else ""
        self.owner.status.setText(f"Cropped {len(cells)} cells of {self.size_spin.value()} pixels ({', '.join(names)})"
                                  f"{where}.")

