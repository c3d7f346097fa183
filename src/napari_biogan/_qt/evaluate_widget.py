"""Evaluate dock widget: the current model's metrics against real data in a layer, beside the data's own."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (QComboBox, QFormLayout, QHeaderView, QLabel, QPushButton, QSpinBox,
                            QTableWidget, QTableWidgetItem, QWidget)

from ._common import ImageLayerPicker, LabelsLayerPicker, ProgressTask, SessionWidget


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
        self.layer_picker = ImageLayerPicker(napari_viewer)
        self.layer_picker.setToolTip("Real data: images (N, Y, X) or clips (N, T, Y, X), as for training")
        form.addRow("Real data", self.layer_picker)
        self.labels_picker = LabelsLayerPicker(napari_viewer)
        self.labels_picker.setToolTip("The real data's labels, for families measured against masks")
        self.labels_label = QLabel("Real labels")
        form.addRow(self.labels_label, self.labels_picker)
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
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)
        #: the last result (tests, scripts)
        self.metrics: dict[str, float] = {}
        self._bar = None
        self._on_model_changed(self.session.model)

    def _labels_input(self, model) -> str | None:
        """The name of the family's labels input, when its metrics need the real labels."""
        from ..core.contract import LABELS

        if model is None:
            return None
        return next((i.name for i in model.inputs if i.kind == LABELS and i.train), None)

    def _on_model_changed(self, model) -> None:
        needs_labels = self._labels_input(model) is not None
        self.labels_picker.setVisible(needs_labels)
        self.labels_label.setVisible(needs_labels)
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
        sources = {"image": np.asarray(layer.data)}
        labels_name = self._labels_input(model)
        if labels_name is not None:
            labels = self.labels_picker.layer()
            if labels is None:
                report_error(DataError(f"Choose a Labels layer with the real data's '{labels_name}'."), "Evaluating")
                return
            sources[labels_name] = np.asarray(labels.data)
        self.evaluate_button.setEnabled(False)
        self._bar = ProgressTask(None, f"Evaluating {model.name}")  # busy bar: metrics have no steps
        self.status.setText(f"Evaluating {model.name} against '{layer.name}'...")
        self.run_worker(evaluate_model, model, sources, self.n_spin.value(), self.seed_spin.value(),
                        self.metric_combo.currentData(), action="Evaluating",
                        on_return=lambda metrics: self._show(metrics, layer.name), on_done=self._done,
                        on_error=lambda err: self.status.setText(str(err)))

    def _show(self, metrics: dict[str, float], layer_name: str) -> None:
        self.metrics = {k: v for k, v in metrics.items() if not k.startswith("_")}
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
