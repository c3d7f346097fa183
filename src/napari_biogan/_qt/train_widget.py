"""Train dock widget: train a model from a layer or TIFFs in a worker, with progress, losses and previews."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from napari.qt.threading import GeneratorWorker
from napari.utils import progress
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                            QPushButton, QRadioButton, QSpinBox, QWidget)

from ._common import ImageLayerPicker, PathRow, SessionWidget, compact, notify
from .train_views import LossPlot, preview_image, to_pixmap


@dataclass
class TrainJob:
    """Everything the training worker needs, read from the widgets on the main thread."""

    family: str
    overrides: dict[str, Any]
    data: Any  # an array (from a layer) or a path (TIFF file or folder)
    steps: int
    seed: int
    output: str
    overwrite: bool = False
    batch_size: int = 0  # 0: the family's default
    resume: str = ""
    device: str = "auto"
    preview_every: int = 50
    checkpoint_every: int = 200
    description: str = ""
    hparams: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    trainer: Any = None

    def stop(self) -> None:
        """Cancel: the trainer stops at the next step and keeps a checkpoint."""
        self._stop.set()
        if self.trainer is not None:
            self.trainer.stop()


def parse_overrides(text: str) -> dict[str, Any]:
    """"height=48, width=80" -> {"height": 48, "width": 80} (numbers, tuples with '/', text)."""
    from ..core.errors import DataError

    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.replace(";", ",").split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise DataError(f"Config values are written key=value, not '{item}'.")
        values[key.strip()] = _parse_value(raw.strip())
    return values


def _parse_value(text: str):
    if "/" in text:
        return tuple(_parse_value(t) for t in text.split("/"))
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def load_training_array(path: str, video: bool = False) -> np.ndarray:
    """Images from a TIFF file or folder: 2D planes (N, Y, X) or, for video families, clips (N, T, Y, X)."""
    from ..core.errors import DataError
    from ..data.tiff_io import list_tiffs, load_image_stack, load_training_images

    path = Path(path)
    if not path.exists():
        raise DataError(f"No TIFF file or folder at {path}.")
    if not video:
        return load_training_images(path)
    if path.is_dir():  # one clip (T, Y, X) per file
        clips = [load_image_stack(file) for file in list_tiffs(path)]
        if len({c.shape for c in clips}) > 1:
            raise DataError(f"The TIFF stacks in {path.name} have different shapes; crop them to one size.")
        return np.stack(clips)
    stack = load_image_stack(path)
    return stack[np.newaxis] if stack.ndim == 3 else stack


def run_training(job: TrainJob):
    """Worker: build (or resume) a trainer and yield its TrainEvents; returns the last event."""
    from ..core.checkpoint import read_card
    from ..core.errors import DataError, FamilyMismatchError
    from ..core.model import GanModel
    from ..core.registry import get_family
    from ..core.render import match_torch_threads
    from ..core.training import Trainer, TrainSettings

    match_torch_threads()  # training on this worker thread reproduces a run on the main thread
    family = get_family(job.family)
    video = len(family.sample_axes) > 2
    array = load_training_array(job.data, video) if isinstance(job.data, (str, Path)) else job.data
    hparams = {**job.hparams, **({"batch_size": job.batch_size} if job.batch_size else {})}
    settings = TrainSettings(steps=job.steps, seed=job.seed, output=job.output, overwrite=job.overwrite,
                             checkpoint_every=job.checkpoint_every, preview_every=job.preview_every,
                             hparams=hparams, data_description=job.description)
    if job.resume:
        card = read_card(job.resume)
        if card.get("family") != family.name:
            raise FamilyMismatchError(f"{Path(job.resume).name} is a '{card.get('family')}' model, "
                                      f"not a '{family.name}' model.")
        config = family.config_from_dict(card.get("config", {}))
        trainer = Trainer.resume(job.resume, family.prepare_data(array, config), settings, device=job.device)
    else:
        try:
            config = family.default_config(**job.overrides)
        except TypeError as err:
            raise DataError(f"Unknown config value for family '{family.name}': {err}.") from None
        model = GanModel.new(family.name, config=config, device=job.device, seed=job.seed)
        trainer = Trainer(model, family.prepare_data(array, config), settings)
    job.trainer = trainer
    if job._stop.is_set():
        trainer.stop()
    last = None
    for event in trainer.run():
        last = event
        yield event
    return last


class TrainWorker(GeneratorWorker):
    """A generator worker whose quit() is a Cancel: napari's activity-dock cancel and closing
    the viewer stop training at the next step WITH a checkpoint, instead of dropping the run."""

    job: TrainJob | None = None

    def quit(self) -> None:
        if self.job is not None and self.job.trainer is not None:
            self.job.stop()  # the loop saves, yields "cancelled" and ends: the worker finishes normally
        else:
            super().quit()


def _load(path: str, device: str):
    from ..core.model import GanModel

    return GanModel.load(path, device=device)


class TrainWidget(SessionWidget):
    """Train a new model (or resume one) without blocking the viewer."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        from ..core.registry import family_titles

        self.job: TrainJob | None = None
        jobs = self._jobs = []  # the running job, stopped (checkpoint kept) if Qt deletes the widget
        self.destroyed.connect(lambda *_: [job.stop() for job in jobs])
        self.trained_path: str | None = None
        self.events: list = []  # every event of the current run (tests, scripts)
        self._bar = None

        data_box = QGroupBox("Training data")
        data_form = QFormLayout(data_box)
        self.from_layer = QRadioButton("Image layer")
        self.from_layer.setChecked(True)
        self.layer_picker = ImageLayerPicker(napari_viewer)
        data_form.addRow(self.from_layer, self.layer_picker)
        self.from_files = QRadioButton("TIFF file/folder")
        self.data_row = PathRow("folder", placeholder="folder of TIFF stacks")
        data_form.addRow(self.from_files, self.data_row)
        self.layout().addWidget(data_box)

        form = QFormLayout()
        self.family_combo = compact(QComboBox())
        for name, title in family_titles().items():
            self.family_combo.addItem(title, name)
        self.family_combo.currentIndexChanged.connect(self._suggest_output)
        form.addRow("Family", self.family_combo)
        self.config_edit = QLineEdit()
        self.config_edit.setPlaceholderText("config, e.g. height=48, width=80")
        form.addRow("Config", self.config_edit)
        self.hparams_edit = QLineEdit()
        self.hparams_edit.setPlaceholderText("training, e.g. loss=bce, n_critic=1, lr_g=2e-4")
        self.hparams_edit.setToolTip("Overrides of the family's default hyper-parameters; tuples as a/b")
        form.addRow("Hyper-parameters", self.hparams_edit)
        self.steps_spin = _spin(1, 10_000_000, 1000)
        form.addRow("Steps", self.steps_spin)
        self.batch_spin = _spin(0, 4096, 0)
        self.batch_spin.setSpecialValueText("family default")
        form.addRow("Batch size", self.batch_spin)
        self.seed_spin = _spin(0, 2**31 - 1, 0)
        form.addRow("Seed", self.seed_spin)
        self.preview_spin = _spin(1, 1_000_000, 50)
        form.addRow("Preview every", self.preview_spin)
        self.checkpoint_spin = _spin(1, 1_000_000, 200)
        form.addRow("Checkpoint every", self.checkpoint_spin)
        self.output_row = PathRow("save", "Model files (*.safetensors)", "model file to write")
        form.addRow("Output", self.output_row)
        self.overwrite_check = QCheckBox("Overwrite an existing output file")
        form.addRow(self.overwrite_check)
        self.resume_row = PathRow("open", "Model files (*.safetensors)", "checkpoint to continue (optional)")
        form.addRow("Resume from", self.resume_row)
        self.layout().addLayout(form)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button = QPushButton("Use trained model")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self.use_trained_model)
        for button in (self.start_button, self.cancel_button, self.use_button):
            buttons.addWidget(button)
        self.layout().addLayout(buttons)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)
        self.loss_plot = LossPlot()
        self.layout().addWidget(self.loss_plot)
        self.preview_label = QLabel("previews appear here while training")
        self.preview_label.setMinimumHeight(80)
        self.layout().addWidget(self.preview_label)
        self.previews = 0
        self._suggest_output()

    def _suggest_output(self, *_) -> None:
        from ..core.zoo import user_model_dir

        family = self.family_combo.currentData() or "model"
        current = self.output_row.path()
        if not current or Path(current).parent == user_model_dir():
            self.output_row.set_path(user_model_dir() / f"{family}-trained.safetensors")

    # -- starting and stopping ----------------------------------------------------------------
    def make_job(self) -> TrainJob:
        """The job the current settings describe (main thread; raises DataError on bad input)."""
        from ..core.errors import DataError

        if self.from_layer.isChecked():
            layer = self.layer_picker.layer()
            if layer is None:
                raise DataError("Choose an image layer to train on (or a TIFF file or folder).")
            data, description = np.asarray(layer.data), f"napari layer '{layer.name}' {layer.data.shape}"
        else:
            data = self.data_row.path()
            if not data:
                raise DataError("Choose a TIFF file or folder to train on.")
            description = str(data)
        output = self.output_row.path() or self.resume_row.path()
        if not output:
            raise DataError("Choose an output model file.")
        return TrainJob(family=self.family_combo.currentData(), overrides=parse_overrides(self.config_edit.text()),
                        data=data, steps=self.steps_spin.value(), seed=self.seed_spin.value(), output=output,
                        overwrite=self.overwrite_check.isChecked(), batch_size=self.batch_spin.value(),
                        resume=self.resume_row.path(), device=self.session.device,
                        preview_every=self.preview_spin.value(), checkpoint_every=self.checkpoint_spin.value(),
                        description=description, hparams=parse_overrides(self.hparams_edit.text()))

    def start(self) -> None:
        from ._common import report_error
        from ..core.errors import BioGanError

        try:
            self.job = self.make_job()
        except BioGanError as err:
            report_error(err, "Training")
            return
        self._jobs[:] = [self.job]
        self.events, self.trained_path, self.previews = [], None, 0
        self.loss_plot.clear()
        self.use_button.setEnabled(False)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Preparing the data...")
        self._bar = progress(total=self.job.steps, desc=f"Training {self.job.family}")
        job = self.job
        self.run_worker(run_training, job, action="Training", on_yield=self._on_event, on_error=self._on_error,
                        on_done=self._done, _worker_class=TrainWorker,
                        configure=lambda worker: setattr(worker, "job", job))

    def cancel(self) -> None:
        """Stop at the next step; the checkpoint is kept (and offered for Resume)."""
        if self.job is not None:
            self.job.stop()
            self.status.setText("Stopping after the current step...")

    # -- events from the worker ---------------------------------------------------------------------
    def _on_event(self, event) -> None:
        from ..core.progress import format_seconds

        self.events.append(event)
        if event.kind == "step":
            self.loss_plot.add(event.step, event.losses)
            if self._bar is not None:
                self._bar.update(event.step - self._bar.n)
                losses = " ".join(f"{k} {v:.3f}" for k, v in event.losses.items())
                self._bar.set_description(f"Training {self.job.family}: ETA {format_seconds(event.eta_s)} "
                                          f"({losses})")
            self.status.setText(f"Step {event.step}/{event.total}, ETA {format_seconds(event.eta_s)}.")
        elif event.kind == "preview" and event.preview is not None:
            colormaps = [c.colormap for c in self._channels()]
            self.preview_label.setPixmap(to_pixmap(preview_image(event.preview, colormaps)))
            self.previews += 1
        elif event.kind == "checkpoint":
            self.status.setText(f"Step {event.step}: checkpoint written to {event.path}.")
        elif event.kind == "finished":
            self._finished(event.path, f"Training finished ({event.step} steps): {event.path}.")
        elif event.kind == "cancelled":
            if event.path:
                self.resume_row.set_path(event.path)
            self._finished(event.path, f"Cancelled at step {event.step}; checkpoint kept in {event.path} "
                                       "(set as 'Resume from').")

    def _channels(self):
        trainer = self.job.trainer if self.job is not None else None
        return trainer.model.channels if trainer is not None else []

    def _finished(self, path: str | None, message: str) -> None:
        self.trained_path = path
        self.use_button.setEnabled(bool(path))
        self.status.setText(message)
        notify(message + (" Click 'Use trained model' to explore it." if path else ""))

    def _on_error(self, err) -> None:
        self.status.setText(f"Training stopped: {err}")

    def _done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        trainer = self.job.trainer if self.job is not None else None
        if trainer is not None:
            trainer.model.release()  # the widget keeps the file, not the training copy
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def use_trained_model(self) -> None:
        """Load the trained file as this viewer's current model."""
        if self.trained_path:
            self.run_worker(_load, self.trained_path, self.session.device, action="Loading the trained model",
                            on_return=self.session.set_model)

    def teardown(self) -> None:
        if self.job is not None:
            self.job.stop()
        super().teardown()


def _spin(low: int, high: int, value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin
