"""Model dock widget: pick a family, load a shipped or own model, choose the device, read a TIFF's provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPlainTextEdit,
                            QPushButton, QVBoxLayout, QWidget)

from ..core.device import DEVICE_CHOICES
from ._common import PathRow, ProgressTask, SessionWidget, add_layers, compact, notify, report_error

ALL_FAMILIES = "All families"


def format_card(model) -> str:
    """The model card in plain words: what it makes, what it learnt from, how good it is (with the
    real data's own value beside each metric, and what the metric means)."""
    from ..core.progress import format_duration
    from ..metrics import describe_metric

    card = model.card or {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    config = card.get("config") if isinstance(card.get("config"), dict) else {}
    variant = config.get("variant")
    family = model.family.title + (f", variant {variant.upper() if variant == '3dgan' else variant}"
                                   if variant else "")
    lines = [f"{model.name}", f"Family: {family}"]
    if card.get("description"):
        lines.append(f"What it makes: {card['description']}")
    def described(o) -> str:
        if o.channels and o.kind != "labels":
            return f"{o.name} ({o.kind}: " + ", ".join(f"{c.name} in {c.colormap}" for c in o.channels) + ")"
        return f"{o.name} (labels: {', '.join(o.classes) or 'one per object'})"

    outputs = "; ".join(described(o) for o in model.outputs)
    lines.append(f"Outputs: {outputs}; axes {' x '.join(model.family.sample_axes)}")
    runs_from = [i.name for i in model.inputs if i.run]
    lines.append("Runs from: " + ", ".join("a seed" if n == "latent" else f"an {n} layer" for n in runs_from))
    if training:
        lines.append("")
        lines.append(f"Trained on: {training.get('data', 'not recorded')}")
        steps, wall = training.get("steps"), training.get("wall_time_s")
        lines.append(f"Training: {steps:,} steps" if isinstance(steps, int) else "Training: steps not recorded")
        if isinstance(wall, (int, float)):
            lines[-1] += f" in {format_duration(wall)} on {training.get('device', 'an unrecorded device')}"
        if training.get("weights"):
            lines.append(f"Weights: {training['weights']}")
        phases = training.get("phases") if isinstance(training.get("phases"), list) else []
        if phases:
            lines.append("In phases: " + "; ".join(_phase_words(phases)))
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    notes = {k: v for k, v in metrics.items() if k not in numbers}
    shown = [k for k in numbers if not k.endswith("_real")]
    if shown:
        lines += ["", "How good (generated; real data's own value in brackets):"]
        for key in shown:
            label, meaning = describe_metric(key)
            real = numbers.get(f"{key}_real")
            lines.append(f"  {label}: {numbers[key]:.3g}" + (f"  [real {real:.3g}]" if real is not None else "")
                         + (f"  ({meaning})" if meaning else ""))
    for key, value in notes.items():
        lines.append(f"  {key.replace('_', ' ').capitalize()}: {value}")
    lines.append("")
    if model.path:
        lines.append(f"File: {model.path}")
    if model.sha256:
        lines.append(f"sha256: {model.sha256}")
    lines.append(f"Device: {model.device}")
    lines.append("Config: " + ", ".join(f"{k}={v}" for k, v in config.items()))
    return "\n".join(lines)


def _phase_words(phases: list) -> list[str]:
    """``[{"until_step": 2000, "hparams": {...}}, ...]`` -> ["steps 1-2,000: ema_decay 0.999", ...]."""
    words, first = [], 1
    for phase in phases:
        until = phase.get("until_step") if isinstance(phase, dict) else None
        if not isinstance(until, int):
            continue
        settings = ", ".join(f"{k} {v}" for k, v in (phase.get("hparams") or {}).items()) or "the paper's settings"
        words.append(f"steps {first:,}-{until:,}: {settings}")
        first = until + 1
    return words


def _load_model(path: str, device: str):
    from ..core.model import GanModel

    return GanModel.load(path, device=device)


def _new_model(family: str, device: str):
    from ..core.model import GanModel

    return GanModel.new(family, device=device)


def _export_bioimageio(model, path: str, overwrite: bool):
    """Worker: write the package, yielding (done, total) steps; returns the path written."""
    from ..core.bioimageio import export_bioimageio
    from .generate_widget import with_progress

    return (yield from with_progress(lambda progress: export_bioimageio(model, path, overwrite=overwrite,
                                                                       progress=progress)))


def _read_tiff(path: str) -> tuple[dict[str, Any], list, Path | None]:
    """Provenance, layers and (if a known model has the recorded sha256) that model's file."""
    from ..core.checkpoint import file_sha256
    from ..core.errors import DataError
    from ..core.export import read_provenance
    from ..core.zoo import list_models
    from ..io import read_tiff

    provenance = read_provenance(path)
    if not provenance:
        raise DataError(f"{Path(path).name} holds no napari-biogan provenance.")
    layers = read_tiff(path)
    match = None
    wanted = provenance.get("model_sha256")
    if wanted:
        for info in list_models():
            if file_sha256(info.path) == wanted:
                match = info.path
                break
    return provenance, layers, match


def _not_exportable(reason: str):
    from ..core.bioimageio import NotExportableError

    return NotExportableError(reason)


class ModelWidget(SessionWidget):
    """Choose the current model of this viewer and see its card."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        from ..core.registry import family_titles

        self._titles = family_titles()
        self._provenance_model: Path | None = None

        pick = QGroupBox("Model")
        form = QFormLayout(pick)
        self.family_combo = compact(QComboBox())
        self.family_combo.addItem(ALL_FAMILIES, "")
        for name, title in self._titles.items():
            self.family_combo.addItem(title, name)
        self.family_combo.currentIndexChanged.connect(self.refresh_models)
        form.addRow("Family", self.family_combo)
        self.model_combo = compact(QComboBox())
        form.addRow("Model", self.model_combo)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        self.device_combo.setCurrentText(self.session.device)
        self.device_combo.currentTextChanged.connect(self.session.set_device)
        self.device_combo.setToolTip("Where the next model loaded, built or trained runs (auto: cuda, mps, cpu)")
        form.addRow("Device", self.device_combo)
        buttons = QHBoxLayout()
        self.load_button = QPushButton("Load")
        self.load_button.clicked.connect(self.load_selected)
        self.new_button = QPushButton("New untrained")
        self.new_button.setToolTip("A fresh model of the chosen family (for training)")
        self.new_button.clicked.connect(self.new_model)
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.new_button)
        form.addRow(buttons)
        self.file_row = PathRow("open", "Model files (*.safetensors)", "own model file (.safetensors)")
        self.file_button = QPushButton("Load file")
        self.file_button.clicked.connect(lambda: self.load_model_file(self.file_row.path()))
        form.addRow(self.file_row)
        form.addRow(self.file_button)
        self.layout().addWidget(pick)

        self.status = QLabel("No model loaded.")
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)
        self.card_view = QPlainTextEdit()
        self.card_view.setReadOnly(True)
        self.card_view.setMinimumHeight(300)
        self.layout().addWidget(self.card_view)
        self.bioimageio_button = QPushButton("Export for the BioImage Model Zoo...")
        self.bioimageio_button.clicked.connect(self.export_bioimageio)
        self.layout().addWidget(self.bioimageio_button)
        #: asks where to write the package (a save dialog; tests put a function here); "" cancels
        self.ask_package_path = self._package_dialog
        self._export_task: ProgressTask | None = None
        self._exporting = False

        prov = QGroupBox("Provenance of an exported TIFF")
        box = QVBoxLayout(prov)
        self.tiff_row = PathRow("open", "TIFF (*.tif *.tiff)", "exported .tif")
        box.addWidget(self.tiff_row)
        row = QHBoxLayout()
        self.tiff_button = QPushButton("Open TIFF")
        self.tiff_button.clicked.connect(lambda: self.open_tiff(self.tiff_row.path()))
        self.tiff_model_button = QPushButton("Load its model")
        self.tiff_model_button.setEnabled(False)
        self.tiff_model_button.clicked.connect(self._load_provenance_model)
        row.addWidget(self.tiff_button)
        row.addWidget(self.tiff_model_button)
        box.addLayout(row)
        self.layout().addWidget(prov)

        self.refresh_models()
        self._on_model_changed(self.session.model)

    # -- the list of models ---------------------------------------------------------------
    def refresh_models(self, *_) -> None:
        """List the models of the chosen family; keep the selection, else pick the default model."""
        from ..core.zoo import DEFAULT_MODEL, list_models

        family = self.family_combo.currentData() or ""
        previous = self.model_combo.currentData()
        self.model_combo.clear()
        for info in list_models():
            if info.family not in self._titles or (family and info.family != family):
                continue  # e.g. a digit classifier in the zoo: not a generator
            where = "shipped" if info.shipped else "yours"
            self.model_combo.addItem(f"{info.name} ({where})", str(info.path))
            self.model_combo.setItemData(self.model_combo.count() - 1, info.description or info.data,
                                         Qt.ItemDataRole.ToolTipRole)
        if not self._select_path(previous):
            self._select_path(next((self.model_combo.itemData(i) for i in range(self.model_combo.count())
                                    if Path(self.model_combo.itemData(i)).stem == DEFAULT_MODEL), None))
        self.load_button.setEnabled(self.model_combo.count() > 0)
        self.new_button.setEnabled(bool(family))

    # -- actions (buttons call these; tests too) --------------------------------------------
    def load_selected(self) -> None:
        path = self.model_combo.currentData()
        if path:
            self.load_model_file(path)

    def load_model_file(self, path: str | Path) -> None:
        """Load a model file in a worker and make it the current model."""
        if not str(path):
            notify("Choose a model file first.")
            return
        self.status.setText(f"Loading {Path(path).name}...")
        self.run_worker(_load_model, str(path), self.session.device, action="Loading the model",
                                on_return=self.session.set_model, on_error=self._failed)

    def new_model(self) -> None:
        family = self.family_combo.currentData()
        if family:
            self.run_worker(_new_model, family, self.session.device, action="Building the model",
                                    on_return=self.session.set_model, on_error=self._failed)

    def open_tiff(self, path: str | Path) -> None:
        """Show a TIFF's provenance, add its layers, and offer to load the model that made it."""
        if not str(path):
            notify("Choose an exported TIFF first.")
            return
        self.run_worker(_read_tiff, str(path), action="Reading the TIFF",
                                on_return=self._show_tiff, on_error=self._failed)

    def _show_tiff(self, result) -> None:
        provenance, layers, match = result
        add_layers(self.viewer, layers)
        self._provenance_model = match
        self.tiff_model_button.setEnabled(match is not None)
        known = f"Made by the model file {match}." if match else \
            "The model that made it is not among the known models."
        self.card_view.setPlainText("TIFF provenance:\n" + json.dumps(provenance, indent=1, default=str)
                                    + "\n\n" + known)

    def export_bioimageio(self, *_) -> None:
        """Ask for a .zip path and write the current model there as a bioimage.io package (in a worker)."""
        model = self.session.model
        if model is None:
            notify("Load a model first.")
            return
        path = self.ask_package_path(model)
        if path:
            # the save dialog already asked before replacing a file
            self.export_bioimageio_to(path, overwrite=True)

    def export_bioimageio_to(self, path: str | Path, overwrite: bool = False) -> None:
        """Write the current model as a bioimage.io package at ``path`` (a worker; progress in the activity dock)."""
        from ..core.bioimageio import why_not_exportable

        model = self.session.model
        reason = why_not_exportable(model)
        if reason is not None:
            self.status.setText(report_error(_not_exportable(reason), "Export"))
            return
        self._exporting = True
        self.bioimageio_button.setEnabled(False)
        self.status.setText(f"Exporting {model.name} for the BioImage Model Zoo...")
        self.run_worker(_export_bioimageio, model, str(path), overwrite, action="Export for the BioImage Model Zoo",
                        on_yield=self._export_progress, on_return=self._exported,
                        on_error=lambda err: self.status.setText(f"Not exported: {err}"),
                        on_done=self._export_done)

    def _package_dialog(self, model) -> str:
        suggested = str(Path.home() / f"{model.name}.bioimageio.zip")
        path, _ = QFileDialog.getSaveFileName(self, "Export for the BioImage Model Zoo", suggested,
                                              "bioimage.io model packages (*.zip)")
        if path and not path.lower().endswith(".zip"):
            path += ".zip"
        return path

    def _export_progress(self, step: tuple[int, int]) -> None:
        done, total = step
        if self._export_task is None:
            self._export_task = ProgressTask(total, "Exporting for the BioImage Model Zoo")
        self._export_task.update(done)

    def _exported(self, path) -> None:
        message = f"Wrote {path}: a bioimage.io model package that passed bioimageio.core's model test."
        self.status.setText(message)
        notify(message)

    def _export_done(self) -> None:
        self._exporting = False
        if self._export_task is not None:
            self._export_task.close()
            self._export_task = None
        self._update_export_button(self.session.model)

    def _update_export_button(self, model) -> None:
        from ..core.bioimageio import why_not_exportable

        reason = why_not_exportable(model)
        self.bioimageio_button.setEnabled(reason is None and not self._exporting)
        self.bioimageio_button.setToolTip(reason or "Write this model as a BioImage Model Zoo package (.zip): "
                                                    "rdf.yaml, TorchScript and PyTorch weights, test tensors")

    def _load_provenance_model(self) -> None:
        if self._provenance_model is not None:
            self.load_model_file(self._provenance_model)

    def _failed(self, err) -> None:
        self.status.setText(f"Not loaded: {err}")

    def _on_model_changed(self, model) -> None:
        self._update_export_button(model)
        if model is None:
            self.status.setText("No model loaded.")
            self.card_view.setPlainText("")
            return
        self.status.setText(f"Current model: {model.name} ({model.family.name}) on {model.device}.")
        self.card_view.setPlainText(format_card(model))
        self._select_path(model.path)

    def _select_path(self, path) -> bool:
        """Select the listed model file ``path`` (the previous choice, the default, the current model);
        False when it is not listed."""
        if not path:
            return False
        wanted = Path(path).resolve()
        for i in range(self.model_combo.count()):
            if Path(self.model_combo.itemData(i)).resolve() == wanted:
                self.model_combo.setCurrentIndex(i)
                return True
        return False
