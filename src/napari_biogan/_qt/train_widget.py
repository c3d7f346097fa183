"""Train dock widget: train (or resume) a model of any trainable family in a worker.

Written once against the family contract: one input row per training input the
family declares, the text fields parsed by :mod:`napari_biogan.core.settings`, and
the run started by :func:`napari_biogan.core.training.setup_training`, the same call
the CLI makes. Progress, losses and previews come from the loop's TrainEvents.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari.qt.threading import GeneratorWorker
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                            QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ..core.errors import BioGanError
from ._common import (OpenFramesButton, PathRow, ProgressTask, SessionWidget, compact, notify,
                      report_error)
from .train_views import InputRow, LossPlot, format_eta, input_rows, preview_picture, to_pixmap

#: what the worker yields once the data is loaded and the trainer built (before the first step)
PREPARED = "prepared"


@dataclass
class TrainJob:
    """Everything the training worker needs, read from the widgets on the main thread."""

    family: str
    sources: dict[str, Any]  # input name -> a copy of a layer's array, or a path
    settings: Any  # core.training.TrainSettings
    config_overrides: dict[str, Any] = field(default_factory=dict)
    resume: str = ""
    device: str = "auto"
    _stop: threading.Event = field(default_factory=threading.Event)
    trainer: Any = None

    def stop(self) -> None:
        """Cancel: the trainer stops at the next step and keeps a checkpoint."""
        self._stop.set()
        if self.trainer is not None:
            self.trainer.stop()


def run_training(job: TrainJob):
    """Worker: set up the run exactly as the CLI does, then yield its TrainEvents; returns the last one."""
    from ..core.render import match_torch_threads
    from ..core.training import setup_training

    match_torch_threads()  # training on this worker thread reproduces a run on the main thread
    trainer = setup_training(job.family, job.sources, job.settings, config_overrides=job.config_overrides,
                             resume=job.resume or None, device=job.device)
    job.trainer = trainer
    if job._stop.is_set():  # cancelled while the data was being prepared
        trainer.stop()
    yield PREPARED
    last = None
    for event in trainer.run():
        last = event
        yield event
    return last


def estimate_job(job: TrainJob):
    """Worker: :func:`~napari_biogan.core.estimate.estimate_training` of the job (a throwaway run)."""
    from ..core.estimate import estimate_training
    from ..core.render import match_torch_threads

    match_torch_threads()  # the same threads as the training worker: the same speed
    return estimate_training(job.family, job.sources, job.settings, config_overrides=job.config_overrides,
                             resume=job.resume or None, device=job.device)


class TrainWorker(GeneratorWorker):
    """A generator worker whose quit() is a Cancel: napari's activity-dock cancel and closing
    the viewer stop training at the next step WITH a checkpoint, instead of dropping the run."""

    job: TrainJob | None = None

    def quit(self) -> None:
        if self.job is not None and self.job.trainer is not None:
            self.job.stop()  # the loop saves, yields "cancelled" and ends: the worker finishes normally
        else:
            if self.job is not None:
                self.job.stop()
            super().quit()


def _load(path: str, device: str):
    from ..core.model import Model

    return Model.load(path, device=device)


class TrainWidget(SessionWidget):
    """Train a new model (or resume one) without blocking the viewer."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        from ..core.registry import family_titles

        self.job: TrainJob | None = None
        jobs = self._jobs = []  # the running job, stopped (checkpoint kept) if Qt deletes the widget
        self.destroyed.connect(lambda *_: [job.stop() for job in jobs])
        self.trained_path: str | None = None
        self.events: list = []  # every TrainEvent of the current run (tests, scripts)
        self.previews = 0
        self.task: ProgressTask | None = None
        self.input_rows: dict[str, InputRow] = {}
        self.preview_array = None  # the last preview picture (RGB uint8), as shown

        top = QFormLayout()
        self.family_combo = compact(QComboBox())
        for name, title in family_titles(trainable=True).items():
            self.family_combo.addItem(title, name)
        top.addRow("Family", self.family_combo)
        self.layout().addLayout(top)
        self.data_box = QGroupBox("Training data")
        QVBoxLayout(self.data_box)
        self.layout().addWidget(self.data_box)
        self.open_frames_button = OpenFramesButton(self)
        self.layout().addWidget(self.open_frames_button)

        form = QFormLayout()
        self.config_edit = QLineEdit()
        self.config_edit.setPlaceholderText("config, e.g. height=48, width=80")
        form.addRow("Config", self.config_edit)
        self.hparams_edit = QLineEdit()
        self.hparams_edit.setPlaceholderText("training, e.g. loss=bce, n_critic=1, lr_g=2e-4")
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
        estimate_row = QHBoxLayout()
        self.estimate_button = QPushButton("Estimate time")
        self.estimate_button.setToolTip("Time a few real training steps of these settings on this device (in the "
                                        "background; nothing is written), then say how long the run would take")
        self.estimate_button.clicked.connect(self.estimate)
        estimate_row.addWidget(self.estimate_button)
        self.estimate_label = QLabel("")
        self.estimate_label.setWordWrap(True)
        estimate_row.addWidget(self.estimate_label, 1)
        self.layout().addLayout(estimate_row)
        #: the last :class:`~napari_biogan.core.estimate.TrainEstimate` (tests, scripts)
        self.last_estimate = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)
        self.loss_plot = LossPlot()
        self.layout().addWidget(self.loss_plot)
        self.preview_label = QLabel("previews appear here while training")
        self.preview_label.setMinimumHeight(80)
        self.layout().addWidget(self.preview_label)
        self.family_combo.currentIndexChanged.connect(self._family_changed)
        self._family_changed()

    # -- the family decides the rows ------------------------------------------------------------
    @property
    def family_name(self) -> str:
        return self.family_combo.currentData() or ""

    def _family_changed(self, *_) -> None:
        """Rebuild one input row per training input of the chosen family; suggest an output name."""
        from ..core.registry import get_family
        from ..core.settings import describe_hparams

        layout = self.data_box.layout()
        for row in self.input_rows.values():
            layout.removeWidget(row)
            row.deleteLater()
        self.input_rows = {}
        if not self.family_name:
            return
        family = get_family(self.family_name)
        for row in input_rows(self.viewer, family):
            self.input_rows[row.spec.name] = row
            layout.addWidget(row)
        self.hparams_edit.setToolTip(f"Overrides of the defaults: {describe_hparams(family)}")
        self._suggest_output()

    def _suggest_output(self) -> None:
        from ..core.zoo import user_model_dir

        current = self.output_row.path()
        if not current or Path(current).parent == user_model_dir():
            self.output_row.set_path(user_model_dir() / f"{self.family_name or 'model'}-trained.safetensors")

    # -- starting and stopping ----------------------------------------------------------------
    def make_job(self, for_estimate: bool = False) -> TrainJob:
        """The job the current settings describe (main thread).

        Everything that can be checked without loading data is checked here, with the
        core's own functions, so bad text or an existing output is refused before a
        worker starts: the key=value text, the hyper-parameter and config names and
        types, and the output file (not ``for_estimate``: an estimate writes nothing).
        Raises a BioGanError with one sentence.
        """
        from ..core.errors import DataError
        from ..core.registry import get_family
        from ..core.settings import check_hparams, make_config, parse_assignments
        from ..core.training import TrainSettings, check_output

        if not self.family_name:
            raise DataError("No trainable model family is installed.")
        family = get_family(self.family_name)
        sources, described = {}, []
        for name, row in self.input_rows.items():
            value, description = row.source()
            if value is not None:
                sources[name] = value
                described.append(description)
        overrides = parse_assignments(self.config_edit.text(), "config value")
        hparams = parse_assignments(self.hparams_edit.text(), "hyper-parameter")
        if self.batch_spin.value():
            hparams["batch_size"] = self.batch_spin.value()
        check_hparams(family, hparams)
        resume = self.resume_row.path()
        if resume:
            overrides = _changed_config(family, resume, overrides)
        else:
            make_config(family, overrides)  # names and types, before any data is loaded
        output = self.output_row.path() or resume
        if not output and not for_estimate:
            raise DataError("Choose an output model file.")
        if not for_estimate:
            in_place = bool(resume) and Path(resume).resolve() == Path(output).resolve()
            check_output(output, self.overwrite_check.isChecked() or in_place)
        settings = TrainSettings(steps=self.steps_spin.value(), seed=self.seed_spin.value(), output=output or None,
                                 overwrite=self.overwrite_check.isChecked(),
                                 checkpoint_every=self.checkpoint_spin.value(),
                                 preview_every=self.preview_spin.value(), hparams=hparams,
                                 data_description="; ".join(described))
        return TrainJob(family=family.name, sources=sources, settings=settings, config_overrides=overrides,
                        resume=resume, device=self.session.device)

    def start(self) -> None:
        self.status.setText("")  # an earlier error must not linger over a new run
        try:
            job = self.make_job()
        except Exception as err:  # noqa: BLE001  (anything from reading the layers: one sentence)
            self.status.setText(report_error(err, "Training"))
            return
        self.job = job
        self._jobs[:] = [job]
        self.events, self.trained_path, self.previews = [], None, 0
        self.loss_plot.clear()
        self.use_button.setEnabled(False)
        self.start_button.setEnabled(False)
        self.estimate_button.setEnabled(False)  # timing steps beside a run would slow both and mislead
        self.cancel_button.setEnabled(True)
        self.status.setText("Preparing the data...")
        self.task = ProgressTask(job.settings.steps, f"Training {job.family}: preparing the data")
        self.run_worker(run_training, job, action="Training", on_yield=self._on_event, on_error=self._on_error,
                        on_done=self._done, _worker_class=TrainWorker,
                        configure=lambda worker: setattr(worker, "job", job))

    def estimate(self) -> None:
        """Time a few steps of the run the fields describe, in a worker; the answer goes under the button."""
        try:
            job = self.make_job(for_estimate=True)
        except Exception as err:  # noqa: BLE001  (anything from reading the layers: one sentence)
            self.estimate_label.setText(report_error(err, "Estimating the training time"))
            return
        self.estimate_button.setEnabled(False)
        self.estimate_label.setText("Timing a few training steps...")
        steps, preview_every = job.settings.steps, job.settings.preview_every
        self.run_worker(estimate_job, job, action="Estimating the training time",
                        on_return=lambda estimate: self._estimated(estimate, steps, preview_every),
                        on_error=lambda err: self.estimate_label.setText(str(err)),
                        on_done=lambda: self.estimate_button.setEnabled(True))

    def _estimated(self, estimate, steps: int, preview_every: int) -> None:
        self.last_estimate = estimate
        text = estimate.describe(steps, preview_every)
        self.estimate_label.setText(text[:1].upper() + text[1:])

    def cancel(self) -> None:
        """Stop at the next step; the checkpoint is kept (and offered for Resume)."""
        if self.job is not None:
            self.job.stop()
            self.status.setText("Stopping after the current step...")

    # -- events from the worker ---------------------------------------------------------------------
    def _on_event(self, event) -> None:
        # A local task: napari's bar may process events inside update(), and a finished slot
        # running there closes the task; ProgressTask ignores updates after close.
        task, job = self.task, self.job
        if isinstance(event, str):  # PREPARED: the data is loaded, the first step is being taken
            self.status.setText("Training... first step")
            if task is not None:
                task.update(0, f"Training {job.family}: first step")
            return
        self.events.append(event)
        if event.kind == "step":
            self.loss_plot.add(event.step, event.losses)
            eta = format_eta(event.eta_s)
            if task is not None:
                losses = " ".join(f"{k} {v:.3f}" for k, v in event.losses.items())
                task.update(event.step, f"Training {job.family}: {eta} ({losses})")
            self.status.setText(f"Step {event.step}/{event.total}, {eta}.")
        elif event.kind == "preview":
            self._show_preview(event)
        elif event.kind == "checkpoint":
            self.status.setText(f"Step {event.step}: checkpoint written to {event.path}.")
        elif event.kind == "finished":
            self._finished(event.path, f"Training finished ({event.step} steps): {event.path}.")
        elif event.kind == "cancelled":
            if event.path:
                self.resume_row.set_path(event.path)
            self._finished(event.path, f"Cancelled at step {event.step}; checkpoint kept in {event.path} "
                                       "(set as 'Resume from').")

    def _show_preview(self, event) -> None:
        trainer = self.job.trainer if self.job is not None else None
        if trainer is None:
            return
        outputs = event.preview_outputs
        if outputs is None and event.preview is not None:
            outputs = {trainer.model.main_output: event.preview}
        picture = preview_picture(outputs or {}, trainer.model.outputs)
        if picture is not None:
            self.preview_array = picture
            self.preview_label.setPixmap(to_pixmap(picture))
            self.previews += 1

    def _finished(self, path: str | None, message: str) -> None:
        self.trained_path = path
        self.use_button.setEnabled(bool(path))
        self.status.setText(message)
        notify(message + (" Click 'Use trained model' to explore it." if path else ""))

    def _on_error(self, err) -> None:
        # the notification came from start_worker; the status keeps the same sentence in view
        self.status.setText(str(err) if isinstance(err, BioGanError) else f"Training failed: {err}.")

    def _done(self) -> None:
        if self.task is not None:
            self.task.close()  # safe when closed already; the object stays, so no None mid-handler
        trainer = self.job.trainer if self.job is not None else None
        if trainer is not None:
            trainer.model.release()  # the widget keeps the file, not the training copy
        self.start_button.setEnabled(True)
        self.estimate_button.setEnabled(True)
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


def _changed_config(family, resume: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The config values that differ from the checkpoint's (setup_training refuses those with one sentence).

    After a Cancel the checkpoint is offered for Resume with the config text still in the
    field; values equal to what the run was started with are not a change, so they are dropped.
    """
    from ..core.checkpoint import read_card

    if not overrides or not Path(resume).is_file():
        return overrides  # setup_training says what is wrong with the file
    try:
        card = read_card(resume)
    except BioGanError:
        return overrides
    if card.get("family") != family.name:
        return overrides  # the family mismatch is setup_training's sentence
    try:
        saved = family.config_from_dict(card.get("config", {}))
    except (TypeError, ValueError):
        return overrides
    return {k: v for k, v in overrides.items() if not hasattr(saved, k) or getattr(saved, k) != v}


def _spin(low: int, high: int, value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin
