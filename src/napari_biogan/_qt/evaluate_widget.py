"""Evaluate dock widget: the current model's metrics against real data in a layer, beside the data's own.

Written once against the family contract: besides the image layer, one row for each further
input the family trains on and so needs to be measured (a Labels layer for a labels input, a
CSV table for an attributes input), shown only when the current model's family has it. The
table shown can be saved as CSV (:func:`napari_biogan.metrics.write_metrics_csv`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from qtpy.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHeaderView, QLabel, QPushButton, QSpinBox,
                            QTableWidget, QTableWidgetItem, QWidget)

from ._common import ImageLayerPicker, LabelsLayerPicker, PathRow, ProgressTask, SessionWidget
from .layer_axes import layer_array


def evaluate_model(model, sources, n: int, seed: int, metric_set: str | None) -> dict[str, float]:
    """Worker: real data (an array, or arrays by input name) prepared as the family's training data,
    then ``model.evaluate``; the result says which metric set and how many real samples were compared."""
    from ..core.render import match_torch_threads
    from ..data.inputs import load_training_inputs

    match_torch_threads()
    sources = sources if isinstance(sources, dict) else {"image": sources}
    real = model.family.prepare_data(load_training_inputs(model.family, model.config, sources), model.config)
    compared = min(n, len(real))
    chosen = metric_set or model.family.default_metric_set(model.config, model.card)
    metrics = model.evaluate(real, n=compared, seed=seed, metric_set=chosen)
    return {**metrics, "_metric_set": chosen, "_compared": compared, "_available": len(real)}


def metric_rows(metrics: dict[str, float]) -> list[tuple[str, float, float | None, str]]:
    """(label, generated value, real data's value or None, meaning) per metric, in report order."""
    from ..metrics import describe_metric

    rows = []
    for key, value in metrics.items():
        if key.endswith("_real"):
            continue
        label, meaning = describe_metric(key)
        rows.append((label, float(value), metrics.get(f"{key}_real"), meaning))
    return rows


class EvaluateWidget(SessionWidget):
    """Generate N samples of the current model and compare them with a layer of real images or clips."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        form = QFormLayout()
        self.layer_picker = ImageLayerPicker(self.viewer)
        self.layer_picker.setToolTip("Real data: images (N, Y, X) or clips (N, T, Y, X), as for training")
        form.addRow("Real data", self.layer_picker)
        self.labels_picker = LabelsLayerPicker(self.viewer)
        self.labels_picker.setToolTip("The real data's labels, for families measured against masks")
        self.labels_label = QLabel("Real labels")
        form.addRow(self.labels_label, self.labels_picker)
        self.attributes_row = PathRow("open", "CSV tables (*.csv);;All files (*)",
                                      "attributes table keyed by file or subject")
        self.attributes_label = QLabel("Attributes table")
        form.addRow(self.attributes_label, self.attributes_row)
        self.metric_combo = QComboBox()
        form.addRow("Metrics", self.metric_combo)
        self.n_spin = QSpinBox()
        self.n_spin.setRange(2, 4096)
        self.n_spin.setValue(256)
        self.n_spin.setToolTip("Generated samples compared (the paper uses 256; fewer are faster but noisier)")
        form.addRow("Samples (N)", self.n_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        form.addRow("Seed", self.seed_spin)
        self.layout().addLayout(form)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.layout().addWidget(self.evaluate_button)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Metric", "Generated", "Real data"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(120)
        self.layout().addWidget(self.table)
        self.save_button = QPushButton("Save table as CSV...")
        self.save_button.setToolTip("Write the metrics shown, with the model, data and metric set, to a CSV table")
        self.save_button.clicked.connect(lambda *_: self.save_csv())
        self.save_button.setEnabled(False)
        self.layout().addWidget(self.save_button)
        #: asks where to save the table ("" = cancelled); Qt's save dialog asks before replacing a file
        self.choose_csv_path: Callable[[], str] = self._ask_csv_path
        self._record: dict[str, Any] = {}  # what the shown metrics measured (the CSV's extra columns)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)
        #: the last result (tests, scripts)
        self.metrics: dict[str, float] = {}
        self._bar = None
        self._on_model_changed(self.session.model)

    def _input(self, model, kind: str):
        """The family's training input of ``kind`` (its metrics need the real data's), or None."""
        if model is None:
            return None
        return next((i for i in model.inputs if i.kind == kind and i.train), None)

    def _labels_input(self, model) -> str | None:
        """The name of the family's labels input, when its metrics need the real labels."""
        spec = self._input(model, "labels")
        return None if spec is None else spec.name

    def _on_model_changed(self, model) -> None:
        for kind, label, row, text in (("labels", self.labels_label, self.labels_picker, "Real {}"),
                                       ("attributes", self.attributes_label, self.attributes_row, "{} table")):
            spec = self._input(model, kind)
            row.setVisible(spec is not None)
            label.setVisible(spec is not None)
            if spec is not None:
                label.setText(text.format(spec.name.replace("_", " ")).capitalize())
                tip = spec.help or kind
                if kind == "attributes":
                    tip += ("; rows are matched by a 'file' or subject id column where the images have file "
                            "names, else taken in the layer's order")
                row.setToolTip(tip)
        self.metric_combo.clear()
        if model is None:
            self.evaluate_button.setEnabled(False)
            self.status.setText("Choose or train a model first (Model or Train widget).")
            return
        self.metric_combo.addItem("automatic", None)
        for name in model.family.metric_sets:
            self.metric_combo.addItem(name, name)
        self.evaluate_button.setEnabled(True)
        self.status.setText(f"Model: {model.name}.")

    def evaluate(self) -> None:
        from ..core.errors import DataError
        from ._common import report_error

        model, layer = self.session.model, self.layer_picker.layer()
        if model is None or layer is None:
            report_error(DataError("Choose a model and a layer of real data to compare with."), "Evaluating")
            return
        sources = {"image": np.asarray(layer_array(layer))}
        labels_name = self._labels_input(model)
        if labels_name is not None:
            labels = self.labels_picker.layer()
            if labels is None:
                report_error(DataError(f"Choose a Labels layer with the real data's '{labels_name}'."), "Evaluating")
                return
            sources[labels_name] = np.asarray(layer_array(labels))
        record = {"data": f"napari layer '{layer.name}'"}
        attributes = self._input(model, "attributes")
        if attributes is not None:
            table = self.attributes_row.path()
            if not table:
                report_error(DataError(f"Choose a CSV table with the real data's '{attributes.name}' "
                                       f"({attributes.help or 'one row per image'})."), "Evaluating")
                return
            sources[attributes.name] = table
            record[attributes.name] = table
        if labels_name is not None:
            record[labels_name] = f"napari layer '{self.labels_picker.currentText()}'"
        self._pending = {"model": model.name, "model_sha256": model.sha256, **record}
        self.evaluate_button.setEnabled(False)
        self._bar = ProgressTask(None, f"Evaluating {model.name}")  # busy bar: metrics have no steps
        self.status.setText(f"Evaluating {model.name} against '{layer.name}'...")
        self.run_worker(evaluate_model, model, sources, self.n_spin.value(), self.seed_spin.value(),
                        self.metric_combo.currentData(), action="Evaluating",
                        on_return=lambda metrics: self._show(metrics, layer.name), on_done=self._done,
                        on_error=lambda err: self.status.setText(str(err)))

    def _show(self, metrics: dict[str, float], layer_name: str) -> None:
        self.metrics = {k: v for k, v in metrics.items() if not k.startswith("_")}
        pending = getattr(self, "_pending", {})
        self._record = {"model": pending.get("model", ""), "model_sha256": pending.get("model_sha256", ""),
                        "metric_set": metrics.get("_metric_set", ""), "samples": metrics.get("_compared", ""),
                        "real_samples": metrics.get("_compared", ""),
                        **{k: v for k, v in pending.items() if k not in ("model", "model_sha256")}}
        self.save_button.setEnabled(bool(self.metrics))
        rows = metric_rows(self.metrics)
        self.table.setRowCount(len(rows))
        for i, (label, value, real, meaning) in enumerate(rows):
            cells = (label, f"{value:.4g}", "" if real is None else f"{real:.4g}")
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(meaning)
                self.table.setItem(i, j, item)
        self.table.resizeRowsToContents()
        compared, available = metrics.get("_compared"), metrics.get("_available")
        fewer = f" (the layer has {available} samples)" if available is not None and available < self.n_spin.value() \
            else ""
        self.status.setText(f"{self.session.model.name if self.session.model else 'model'} vs '{layer_name}': "
                            f"{metrics.get('_metric_set', '')} metrics, {compared} generated vs {compared} real"
                            f"{fewer}. Hover a row for what it measures; 'Real data' is the data's own score.")

    def _done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.evaluate_button.setEnabled(self.session.model is not None)

    # -- the table as CSV ---------------------------------------------------------------------------
    def _ask_csv_path(self) -> str:
        start = str(Path.home() / "metrics.csv")
        chosen, _ = QFileDialog.getSaveFileName(self, "Save the metrics table", start, "CSV tables (*.csv)")
        return chosen

    def save_csv(self, path: str | None = None) -> Path | None:
        """Write the shown metrics (:func:`napari_biogan.metrics.write_metrics_csv`); returns the file.

        Without ``path`` the save dialog asks (a file it returns that exists was confirmed there, so it
        is replaced); a ``path`` given directly never replaces an existing file.
        """
        from ..core.errors import DataError
        from ..metrics import write_metrics_csv
        from ._common import notify, report_error

        if not self.metrics:
            report_error(DataError("Evaluate first: there is no table to save yet."), "Saving the table")
            return None
        overwrite = path is None
        if path is None:
            path = self.choose_csv_path()
            if not path:
                return None  # cancelled
        target = Path(path)
        if target.suffix.lower() != ".csv":
            target = target.with_name(target.name + ".csv")
            overwrite = overwrite and not target.exists()  # the dialog confirmed another name
        try:
            written = write_metrics_csv(target, self.metrics, self._record, overwrite=overwrite)
        except Exception as err:  # a plain sentence for refusals (exists, not writable); the log keeps others
            report_error(err, "Saving the table")
            return None
        self.status.setText(f"Table saved to {written}.")
        notify(f"Metrics table saved to {written}.")
        return Path(written)
