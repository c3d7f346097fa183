"""Explore dock widget: seed, GANSpace direction sliders and family controls re-render one layer live.

Every change submits a request to ONE long-lived :class:`core.render.LatestOnlyRenderer`
thread, which renders only the newest request; its results come back to the
main thread through a queued Qt signal and replace the layer's data there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSpinBox,
                            QWidget)

from ..core.render import LatestOnlyRenderer, match_torch_threads
from ._common import PRECISIONS, SessionWidget, add_layers, report_error
from .controls import ControlWidget, FloatSlider
from .generate_widget import load_default_model, provenance_for

MAX_DIRECTIONS = 12  # directions computed per model; the widget shows the first k
DEFAULT_DIRECTIONS = 5
GANSPACE_SAMPLES = 512
LAYER_NAME = "explore"
PATH_LAYER_NAME = "explore path"


@dataclass
class ExploreRequest:
    """One render: everything the render thread needs, read on the main thread."""

    model: Any
    z: Any  # torch.Tensor (1, *latent)
    condition: Any
    precision: str
    settings: dict[str, Any]


def render_request(request: ExploreRequest):
    """Runs on the render thread: (1, C, *sample_axes) in [0, 1]."""
    match_torch_threads()
    return request.model.render(request.z, request.condition, precision=request.precision)


def compute_directions(model):
    from ..core.latent import gan_space

    match_torch_threads()
    return model, gan_space(model, n=GANSPACE_SAMPLES, k=MAX_DIRECTIONS, seed=0)


def render_path(model, keyframes: list, steps: int, condition, precision: str):
    """Worker: a slerp path through the keyframes' latents, rendered (P, C, *sample_axes)."""
    from ..core.latent import keyframe_path

    match_torch_threads()
    path = keyframe_path([z.reshape(-1) for z in keyframes], steps, "slerp")
    latents = path.reshape(len(path), *keyframes[0].shape[1:])
    return model, model.render(latents, condition, precision=precision), path


class _Bridge(QObject):
    """Carries render results from the render thread to the main thread (queued signal)."""

    result_ready = Signal(object)


class ExploreWidget(SessionWidget):
    """Live latent exploration of the current model, with keyframes and interpolation paths."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        self._directions = None
        self._direction_model = None
        self._base: tuple[Any, int, Any] | None = None  # (model, seed, latent)
        self.keyframes: list = []
        #: slider-to-layer latencies in seconds (benchmarks and tests read them)
        self.latencies: list[float] = []
        #: (request id, time.perf_counter()) of every render shown
        self.applied_log: list[tuple[int, float]] = []
        self.applied_id = 0
        self._error_shown = False

        form = QFormLayout()
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.valueChanged.connect(self.request_render)
        form.addRow("Seed", self.seed_spin)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, MAX_DIRECTIONS)
        self.k_spin.setValue(DEFAULT_DIRECTIONS)
        self.k_spin.valueChanged.connect(self._build_direction_sliders)
        form.addRow("Directions", self.k_spin)
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(PRECISIONS)
        self.precision_combo.currentTextChanged.connect(self.request_render)
        form.addRow("Precision", self.precision_combo)
        self.layout().addLayout(form)

        self.direction_box = QGroupBox("Principal directions (GANSpace, in std)")
        self.direction_form = QFormLayout(self.direction_box)
        self.direction_sliders: list[FloatSlider] = []
        self.layout().addWidget(self.direction_box)
        self.control_box = QGroupBox("Model controls")
        self.control_form = QFormLayout(self.control_box)
        self.control_widgets: list[ControlWidget] = []
        self.layout().addWidget(self.control_box)
        self.reset_button = QPushButton("Reset sliders")
        self.reset_button.clicked.connect(self.reset)
        self.layout().addWidget(self.reset_button)

        keys = QGroupBox("Keyframes")
        key_form = QFormLayout(keys)
        row = QHBoxLayout()
        self.add_key_button = QPushButton("Add keyframe")
        self.add_key_button.clicked.connect(self.add_keyframe)
        self.clear_keys_button = QPushButton("Clear")
        self.clear_keys_button.clicked.connect(self.clear_keyframes)
        row.addWidget(self.add_key_button)
        row.addWidget(self.clear_keys_button)
        key_form.addRow(row)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 256)
        self.steps_spin.setValue(16)
        key_form.addRow("Frames per segment", self.steps_spin)
        self.path_button = QPushButton("Render path")
        self.path_button.clicked.connect(self.render_path)
        key_form.addRow(self.path_button)
        self.key_label = QLabel()
        key_form.addRow(self.key_label)
        self.layout().addWidget(keys)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)

        self._bridge = _Bridge(self)
        self._bridge.result_ready.connect(self._apply)
        self.renderer = LatestOnlyRenderer(render_request, self._bridge.result_ready.emit)
        renderer = self.renderer
        self.destroyed.connect(lambda *_: renderer.close(timeout=0.5))
        self._update_key_label()
        if self.session.model is None:
            self.status.setText("Loading the shipped demo model...")
            self.run_worker(load_default_model, self.session.device, action="Loading the demo model",
                            on_return=self._default_loaded,
                            on_error=lambda err: self.status.setText("No model: load one in the Model widget."))
        else:
            self._on_model_changed(self.session.model)

    # -- model -------------------------------------------------------------------------------
    def _default_loaded(self, model) -> None:
        if self.session.model is None:
            self.session.set_model(model)
        else:
            model.release()

    def _on_model_changed(self, model) -> None:
        self._directions, self._direction_model, self._base = None, None, None
        self._build_direction_sliders()
        self._build_controls(model)
        self.keyframes.clear()
        self._update_key_label()
        if model is None:
            self.status.setText("No model: load one in the Model widget.")
            return
        self.status.setText(f"{model.name}: finding principal directions...")
        self.run_worker(compute_directions, model, action="Finding latent directions",
                        on_return=self._directions_ready)
        self.request_render()

    def _directions_ready(self, result) -> None:
        model, directions = result
        if model is not self.session.model:
            return  # a newer model came in meanwhile
        self._directions, self._direction_model = directions, model
        self._build_direction_sliders()
        self.status.setText(f"{model.name}: {len(directions.directions)} principal directions ready.")

    def _build_direction_sliders(self, *_) -> None:
        old = [s.value() for s in self.direction_sliders]
        while self.direction_form.rowCount():
            self.direction_form.removeRow(0)
        self.direction_sliders = []
        available = 0 if self._directions is None else len(self._directions.directions)
        for i in range(min(self.k_spin.value(), available)):
            slider = FloatSlider(-3.0, 3.0, 0.05, old[i] if i < len(old) else 0.0)
            slider.valueChanged.connect(self.request_render)
            self.direction_form.addRow(f"PC{i + 1}", slider)
            self.direction_sliders.append(slider)
        if not available:
            self.direction_form.addRow(QLabel("(computed when a model is loaded)"))

    def _build_controls(self, model) -> None:
        while self.control_form.rowCount():
            self.control_form.removeRow(0)
        self.control_widgets = []
        controls = model.family.controls(model.config) if model is not None else []
        for control in controls:
            widget = ControlWidget(control)
            widget.changed.connect(self.request_render)
            self.control_form.addRow(control.name, widget)
            self.control_widgets.append(widget)
        self.control_box.setVisible(bool(controls))

    # -- the current point in latent space ----------------------------------------------------
    def current_latent(self):
        """The latent the sliders describe: seed's latent moved along the directions, (1, *latent)."""
        from ..core.latent import moved_latent

        model, seed = self.session.model, self.seed_spin.value()
        if self._base is None or self._base[0] is not model or self._base[1] != seed:
            self._base = (model, seed, model.latents(1, seed))
        return moved_latent(self._base[2], self._directions, [s.value() for s in self.direction_sliders])

    def current_condition(self) -> dict[str, Any] | None:
        """Family control values by name (None when the family has no controls)."""
        if not self.control_widgets:
            return None
        return {w.control.name: w.value() for w in self.control_widgets}

    def settings(self) -> dict[str, Any]:
        return {"seed": self.seed_spin.value(),
                "directions": [round(s.value(), 4) for s in self.direction_sliders],
                "controls": self.current_condition() or {}}

    def request_render(self, *_) -> int | None:
        """Submit the current sliders to the render thread; returns the request id."""
        model = self.session.model
        if model is None or self.renderer.closed:
            return None
        request = ExploreRequest(model, self.current_latent(), self.current_condition(),
                                 self.precision_combo.currentText(), self.settings())
        return self.renderer.submit(request)

    def _apply(self, result) -> None:
        """Main thread: show a finished render unless a newer one was shown already."""
        from ..io import sample_layers

        if result.request_id <= self.applied_id:
            return
        request = result.request
        if result.error is not None:
            if not self._error_shown:  # one notification per drag, not one per slider step
                report_error(result.error, "Rendering")
                self._error_shown = True
            return
        self._error_shown = False
        model = request.model
        provenance = provenance_for(model, latent=[round(v, 6) for v in request.z.reshape(-1).tolist()],
                                    precision=request.precision, **request.settings)
        axes = "C" + "".join(model.family.sample_axes)
        add_layers(self.viewer, sample_layers(result.value[0], model.channels, axes, LAYER_NAME, provenance),
                   replace=True, in_place=True)
        self.applied_id = result.request_id
        now = time.perf_counter()
        self.latencies.append(now - result.submitted_at)
        self.applied_log.append((result.request_id, now))

    def reset(self) -> None:
        for slider in self.direction_sliders:
            slider.setValue(0.0)
        for widget in self.control_widgets:
            widget.reset()

    # -- keyframes and paths --------------------------------------------------------------------
    def add_keyframe(self) -> None:
        if self.session.model is None:
            return
        self.keyframes.append(self.current_latent())
        self._update_key_label()

    def clear_keyframes(self) -> None:
        self.keyframes.clear()
        self._update_key_label()

    def _update_key_label(self) -> None:
        self.key_label.setText(f"{len(self.keyframes)} keyframe(s); a path needs at least 2.")
        self.path_button.setEnabled(len(self.keyframes) >= 2)

    def render_path(self) -> None:
        """Render the slerp path through the keyframes as a stack layer, in a worker."""
        model = self.session.model
        if model is None or len(self.keyframes) < 2:
            return
        self.path_button.setEnabled(False)
        self.run_worker(render_path, model, list(self.keyframes), self.steps_spin.value(),
                        self.current_condition(), self.precision_combo.currentText(),
                        action="Rendering the path", on_return=self._show_path, on_done=self._update_key_label)

    def _show_path(self, result) -> None:
        from ..io import sample_layers

        model, images, path = result
        lead = "T" if "T" not in model.family.sample_axes else "N"
        provenance = provenance_for(model, keyframes=[[round(v, 6) for v in z.reshape(-1).tolist()]
                                                      for z in self.keyframes],
                                    frames_per_segment=self.steps_spin.value(), interpolation="slerp",
                                    precision=self.precision_combo.currentText())
        axes = lead + "C" + "".join(model.family.sample_axes)
        add_layers(self.viewer, sample_layers(images, model.channels, axes, PATH_LAYER_NAME, provenance),
                   replace=True)
        self.status.setText(f"Path of {len(path)} frames through {len(self.keyframes)} keyframes.")

    def teardown(self) -> None:
        self.renderer.close(timeout=0.5)
        super().teardown()

    @property
    def busy(self) -> bool:
        return bool(self.workers) or not self.renderer.idle()
