"""Explore dock widget: one point of the current model, re-rendered live as its sliders move.

Written once against the model contract (core/contract.py). The source is a seed, an image layer's
current sample (encoded ONCE in a worker and cached), or a latent found for a layer ("Find this
image in the model", :mod:`.explore_layers`). The family's controls, and GANSpace directions where
there is a latent, move the point. Every change goes to ONE :class:`core.render.LatestOnlyRenderer`
thread, which renders only the newest request; results come back through a queued Qt signal and
overwrite the explore layers in place. Keyframes are points; a path through them renders in a worker.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget

from ..core.contract import IMAGE, LATENT, Point
from ..core.errors import BioGanError, DataError
from ..core.render import LatestOnlyRenderer
from ._common import PRECISIONS, ImageLayerPicker, ProgressTask, SessionWidget, disconnect, report_error
from .controls import ControlWidget, DirectionSliders, KeyframeList
from .explore_layers import add_shown, fit_image, keep_on_top
from .layer_axes import layer_array
from .explore_work import (DEFAULT_DIRECTIONS, INTERPOLATION, LAYER_NAME, MAX_DIRECTIONS, PATH_BATCH,  # noqa: F401
                           PATH_LAYER_NAME, EncodedSources, ExploreRequest, compute_directions, encode_sample,
                           fit_sample, load_default_model, path_layers, render_path, render_request,
                           sample_index)

ENCODED_KEPT = 8  # encoded layer samples cached per model
SEED, LAYER, FITTED = "seed", "layer", "fitted"
SOURCE_TITLES = {SEED: "Seed", LAYER: "Image layer", FITTED: "Image found in the model"}


class _Bridge(QObject):
    """Carries results from background threads to the main thread (queued signals)."""

    result_ready = Signal(object)
    progress = Signal(int, int)


class ExploreWidget(SessionWidget):
    """Live exploration of the current model's point, with keyframes and interpolation paths."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        self._quiet = True  # no renders while widgets are (re)built
        self._directions = None
        self._latent_names: list[str] = []
        self._image_input: str | None = None
        self._seed_base: tuple[Any, int, Any] | None = None  # (model, seed, latent)
        self._fitted: tuple[Any, Any, dict] | None = None  # (model, latent, origin)
        self._encoded = EncodedSources(ENCODED_KEPT)
        self._source_key: tuple | None = None
        self._source_origin: dict[str, Any] = {}
        self._source_error = ""
        self._applied_values: dict[str, Any] = {}  # controls with live=False: the values last applied
        self._path_task: ProgressTask | None = None
        self._live_layers: list = []  # the layers the sliders overwrite
        self.last_fit = None
        #: slider-to-layer latencies in seconds (benchmarks and tests read them)
        self.latencies: list[float] = []
        #: (request id, time.perf_counter()) of every render shown
        self.applied_log: list[tuple[int, float]] = []
        self.applied_id = 0
        self._error_shown = False

        self._bridge = _Bridge(self)
        self._bridge.result_ready.connect(self._apply)
        self._bridge.progress.connect(self._path_progress)
        self.renderer = LatestOnlyRenderer(render_request, self._bridge.result_ready.emit)
        self._build_ui()

        renderer, events = self.renderer, self._viewer_events()
        slot = self._layer_source_changed
        for event in events:
            event.connect(slot, position="last")  # after the picker has refreshed for a new layer
        self.destroyed.connect(lambda *_: (renderer.close(timeout=0.5), disconnect(slot, *events)))
        self._quiet = False
        if self.session.model is None:
            self.status.setText("Loading the shipped demo model...")
            self.run_worker(load_default_model, self.session.device, action="Loading the demo model",
                            on_return=self._default_loaded,
                            on_error=lambda err: self.status.setText("No model: load one in the Model widget."))
        else:
            self._on_model_changed(self.session.model)

    # -- building ------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.form = form = QFormLayout()
        self.source_combo = QComboBox()
        self.source_combo.currentIndexChanged.connect(self._source_kind_changed)
        form.addRow("Source", self.source_combo)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.valueChanged.connect(self._seed_changed)
        form.addRow("Seed", self.seed_spin)
        self.layer_picker = ImageLayerPicker(self.viewer)
        self.layer_picker.currentTextChanged.connect(self._layer_source_changed)
        form.addRow("Image layer", self.layer_picker)
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(PRECISIONS)
        self.precision_combo.currentTextChanged.connect(lambda *_: self._on_change())
        form.addRow("Precision", self.precision_combo)
        self.layout().addLayout(form)

        self.direction_box = DirectionSliders(MAX_DIRECTIONS, DEFAULT_DIRECTIONS)
        self.direction_box.changed.connect(self._on_change)
        self.k_spin = self.direction_box.k_spin
        self.layout().addWidget(self.direction_box)
        self.control_box = QGroupBox("Model controls")
        self.control_form = QFormLayout(self.control_box)
        self.control_widgets: list[ControlWidget] = []
        self.layout().addWidget(self.control_box)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("These controls are slow to render: changes show when applied.")
        self.apply_button.clicked.connect(self.apply)
        self.layout().addWidget(self.apply_button)
        row = QHBoxLayout()
        self.reset_button = QPushButton("Reset sliders")
        self.reset_button.clicked.connect(self.reset)
        self.fit_button = QPushButton("Find this image in the model")
        self.fit_button.setToolTip("Find the model's closest image to the selected image layer (with its other "
                                   "channel layers), show it, and explore from there: the sliders and "
                                   "keyframes start from the image found.")
        self.fit_button.clicked.connect(self.fit_to_layer)
        row.addWidget(self.reset_button)
        row.addWidget(self.fit_button)
        self.layout().addLayout(row)

        self.keys = KeyframeList()
        self.keys.add_requested.connect(self.add_keyframe)
        self.keys.path_requested.connect(self.render_path)
        self.layout().addWidget(self.keys)
        # the names scripts, benchmarks and tests use
        self.keyframes = self.keys.points
        self.key_list, self.key_label, self.steps_spin = self.keys.list_widget, self.keys.label, self.keys.steps_spin
        self.add_key_button, self.delete_key_button = self.keys.add_button, self.keys.delete_button
        self.up_key_button, self.down_key_button = self.keys.up_button, self.keys.down_button
        self.clear_keys_button, self.path_button = self.keys.clear_button, self.keys.path_button
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)

    def _viewer_events(self) -> list:
        """What can change a layer source's current sample: layers coming and going, the dims position."""
        return [self.viewer.layers.events.inserted, self.viewer.layers.events.removed,
                self.viewer.dims.events.current_step]

    # -- the model --------------------------------------------------------------------------------
    def _default_loaded(self, model) -> None:
        if self.session.model is None:
            self.session.set_model(model)
        else:
            model.release()

    def _on_model_changed(self, model) -> None:
        self._quiet = True
        self._directions, self._seed_base, self._fitted, self._source_key = None, None, None, None
        self._encoded.clear()
        self._applied_values = {c.name: c.default for c in model.controls} if model is not None else {}
        self._latent_names = [i.name for i in model.inputs if i.kind == LATENT] if model is not None else []
        images = [i.name for i in model.run_inputs() if i.kind == IMAGE] if model is not None else []
        self._image_input = images[0] if images else None
        self.source_combo.clear()
        for kind, present in ((SEED, model is not None and model.has_latent), (LAYER, bool(images))):
            if present:
                self.source_combo.addItem(SOURCE_TITLES[kind], kind)
        self.direction_box.set_available(0)
        self._build_controls(model)
        has_latent = model is not None and model.has_latent
        self.direction_box.setVisible(has_latent)
        self.fit_button.setVisible(has_latent)
        self.apply_button.setVisible(model is not None and (not model.family.live
                                                            or any(not c.live for c in model.controls)))
        self.apply_button.setEnabled(False)
        self.keys.controls = model.controls if model is not None else []
        self.keys.clear()
        self._update_source_rows()
        self._quiet = False
        if model is None:
            self.status.setText("No model: load one in the Model widget.")
            return
        if not self.source_combo.count():
            self.status.setText(f"{model.name}: Explore needs a latent or an image input, and this family "
                                "has neither.")
            return
        self.status.setText(f"{model.name}: " + ("finding principal directions..." if has_latent
                                                 else "choose an image layer as the source."))
        if has_latent:
            self.run_worker(compute_directions, model, action="Finding latent directions",
                            on_return=self._directions_ready)
        if self.source_kind() == LAYER:
            self._layer_source_changed()
        else:
            self.request_render()

    def _directions_ready(self, result) -> None:
        model, directions = result
        if model is not self.session.model:
            return  # a newer model came in meanwhile
        self._directions = directions
        self.direction_box.set_available(len(directions.directions))
        self.status.setText(f"{model.name}: {len(directions.directions)} principal directions ready.")

    def _build_controls(self, model) -> None:
        while self.control_form.rowCount():
            self.control_form.removeRow(0)
        self.control_widgets = []
        controls = model.controls if model is not None else []
        for control in controls:
            widget = ControlWidget(control)
            widget.changed.connect(lambda c=control: self._on_change(c))
            self.control_form.addRow(control.name + ("" if control.live else " (apply)"), widget)
            self.control_widgets.append(widget)
        self.control_box.setVisible(bool(controls))

    # -- the source -------------------------------------------------------------------------------
    def source_kind(self) -> str | None:
        """SEED, LAYER or FITTED: where the current point's state comes from."""
        return self.source_combo.currentData()

    def _set_source(self, kind: str) -> None:
        index = self.source_combo.findData(kind)
        if index < 0:
            self.source_combo.addItem(SOURCE_TITLES[kind], kind)
            index = self.source_combo.count() - 1
        quiet, self._quiet = self._quiet, True
        self.source_combo.setCurrentIndex(index)
        self._quiet = quiet
        self._update_source_rows()

    def _update_source_rows(self) -> None:
        kind, model = self.source_kind(), self.session.model
        self.form.setRowVisible(self.source_combo, self.source_combo.count() > 1)
        self.form.setRowVisible(self.seed_spin, kind in (SEED, FITTED))
        # the picker is also the layer "Fit to layer" reads
        self.form.setRowVisible(self.layer_picker, kind == LAYER or (model is not None and model.has_latent))

    def _source_kind_changed(self, *_) -> None:
        self._update_source_rows()
        if self._quiet:
            return
        if self.source_kind() == LAYER:
            self._source_key = None
            self._layer_source_changed()
        else:
            self.request_render()

    def _seed_changed(self, *_) -> None:
        if self.source_kind() == FITTED:
            self._set_source(SEED)  # a new seed replaces the fitted latent
        self._on_change()

    def _chosen_sample(self) -> tuple[Any, tuple[int, ...]]:
        """The picked layer and its current sample's index; DataError when there is none."""
        model, layer = self.session.model, self.layer_picker.layer()
        if layer is None:
            raise DataError("Choose an image layer as the source.")
        if any(layer is own for own in self._live_layers):  # it would feed on itself
            raise DataError(f"'{layer.name}' is what Explore shows; choose another image layer.")
        return layer, sample_index(self.viewer, layer, len(model.family.sample_axes))

    def _layer_source_changed(self, *_) -> None:
        """The picked layer or the viewer's position changed: encode the new sample (once), then render."""
        model = self.session.model
        if self._quiet or model is None or self.source_kind() != LAYER or self._image_input is None:
            return
        try:
            layer, index = self._chosen_sample()
        except BioGanError as err:
            if str(err) != self._source_error:  # one message per problem, not one per dims step
                self._source_error = str(err)
                self.status.setText(str(err))
            return
        self._source_error = ""
        key = (id(model), id(layer), id(layer.data), index)
        if key == self._source_key:
            return
        self._source_key, self._source_origin = key, {"layer": layer.name, "index": list(index)}
        if key in self._encoded:
            self.status.setText(f"{model.name}: exploring '{layer.name}'.")  # not a stale "Encoding ..."
            self.request_render()  # a new source renders even when the family waits for Apply
            return
        if not self._encoded.start(key):
            return
        sample = np.array(layer_array(layer)[index], dtype=np.float32)  # a copy: the layer may change meanwhile
        self.status.setText(f"Encoding '{layer.name}'" + "".join(f" #{i}" for i in index) + "...")
        self.run_worker(encode_sample, model, self._image_input, sample, key, action="Encoding the source",
                        on_return=self._encoded_ready, on_error=lambda err, k=key: self._encoded.done(k, None))

    def _encoded_ready(self, result) -> None:
        model, key, state = result
        self._encoded.done(key, state if model is self.session.model else None)
        if model is not self.session.model:
            return
        if key == self._source_key:
            self.status.setText(f"{model.name}: exploring '{self._source_origin['layer']}'.")
            self.request_render()  # a new source renders even when the family waits for Apply

    # -- the current point ------------------------------------------------------------------------
    @property
    def direction_sliders(self) -> list:
        """The GANSpace sliders shown (none without a latent)."""
        return self.direction_box.sliders

    def current_controls(self) -> dict[str, Any]:
        """Control values by name; a control with live=False keeps its last applied value."""
        return {w.control.name: (w.value() if w.control.live else self._applied_values.get(w.control.name))
                for w in self.control_widgets}

    def current_point(self) -> Point | None:
        """The point the widgets describe (None while a layer source is still being encoded)."""
        from ..core.latent import moved_latent
        from ..core.model import LATENT_NOTE

        model, kind = self.session.model, self.source_kind()
        if model is None or kind is None:
            return None
        if kind == SEED:
            seed = self.seed_spin.value()
            if self._seed_base is None or self._seed_base[0] is not model or self._seed_base[1] != seed:
                self._seed_base = (model, seed, model.latents(1, seed))
            state, origin = {self._latent_names[0]: self._seed_base[2]}, {"seed": seed, "latent": LATENT_NOTE}
        elif kind == FITTED:
            if self._fitted is None or self._fitted[0] is not model:
                return None
            state, origin = {self._latent_names[0]: self._fitted[1]}, dict(self._fitted[2])
        else:
            if self._source_key not in self._encoded:
                return None
            state, origin = self._encoded.state(self._source_key), dict(self._source_origin)
        amounts = self.direction_box.values()
        if self._directions is not None and amounts:
            state.update({n: moved_latent(state[n], self._directions, amounts)
                          for n in self._latent_names if n in state})
            origin["directions"] = [round(a, 4) for a in amounts]
        return Point(state, self.current_controls(), origin)

    def current_latent(self):
        """The current point's latent, (1, *latent) (None without one)."""
        point = self.current_point()
        return None if point is None or not self._latent_names else point.state.get(self._latent_names[0])

    def _on_change(self, control=None) -> None:
        """A widget changed: render now, or wait for Apply (a family or a control that is not live)."""
        model = self.session.model
        if self._quiet or model is None:
            return
        if not model.family.live or (control is not None and not control.live):
            self.apply_button.setEnabled(True)
            return
        self.request_render()

    def apply(self) -> None:
        """Render the controls that wait for Apply."""
        self._applied_values.update({w.control.name: w.value() for w in self.control_widgets})
        self.apply_button.setEnabled(False)
        self.request_render()

    def request_render(self, *_) -> int | None:
        """Submit the current point to the render thread; returns the request id."""
        model = self.session.model
        if self._quiet or model is None or self.renderer.closed:
            return None
        try:
            point = self.current_point()
        except BioGanError as err:
            report_error(err, "Rendering")
            return None
        if point is None:
            return None
        return self.renderer.submit(ExploreRequest(model, point, self.precision_combo.currentText()))

    def _apply(self, result) -> None:
        """Main thread: show a finished render unless a newer one was shown already."""
        if result.request_id <= self.applied_id or result.request.model is not self.session.model:
            return  # stale: a newer render was shown, or the model was replaced
        if result.error is not None:
            if result.request_id == self.renderer.last_id and not self._error_shown:
                report_error(result.error, "Rendering")  # one notification per drag, not per slider step
                self._error_shown = True
            return
        self._error_shown = False
        self._live_layers = layers = add_shown(self.viewer, result.value, in_place=True)
        keep_on_top(self.viewer, layers)
        self.applied_id = result.request_id
        now = time.perf_counter()
        self.latencies.append(now - result.submitted_at)
        self.applied_log.append((result.request_id, now))

    def reset(self) -> None:
        """Directions to 0 and controls to their defaults (one render)."""
        self._quiet = True
        self.direction_box.zero()
        for widget in self.control_widgets:
            widget.reset()
        self._quiet = False
        self._on_change()
        if any(not w.control.live and w.value() != self._applied_values.get(w.control.name)
               for w in self.control_widgets):
            self.apply_button.setEnabled(True)

    # -- fitting a latent to an image --------------------------------------------------------------
    def fit_to_layer(self) -> None:
        """"Find this image in the model": the latent whose output best reproduces the selected image
        layer's current sample (every channel layer of it), fitted in a worker; Explore then starts there."""
        model = self.session.model
        if model is None or not model.has_latent:
            return
        active = self.viewer.layers.selection.active
        if active is not None and self.layer_picker.findText(active.name) >= 0 \
                and not any(active is own for own in self._live_layers) and self.source_kind() != LAYER:
            self.layer_picker.setCurrentText(active.name)  # the selected layer is the one a user means
        try:
            layer, _ = self._chosen_sample()
            image, origin, empty = fit_image(self.viewer, layer, model)
        except BioGanError as err:
            report_error(err, "Finding the image")
            return
        self.fit_button.setEnabled(False)
        self.status.setText(f"Finding '{origin['fitted_to']}' in the model..."
                            + (f" ({', '.join(empty)}: no layer, taken as empty)" if empty else ""))
        self.run_worker(fit_sample, model, image, self.current_controls(), origin,
                        action="Finding the image in the model", on_return=self._fit_ready,
                        on_done=lambda: self.fit_button.setEnabled(True))

    def _fit_ready(self, result) -> None:
        model, fit, origin = result
        if model is not self.session.model:
            return
        self.last_fit = fit
        self._fitted = (model, fit.latent, {**origin, "latent": "fitted (core.latent.fit_latent)",
                                            "fit_mse": round(fit.mse, 8)})
        self.direction_box.zero()  # the directions now move from the fitted latent
        self._set_source(FITTED)
        self.status.setText(f"Found '{origin['fitted_to']}' in the model (reconstruction MSE {fit.mse:.2e}); "
                            "the sliders and keyframes now start from it.")
        self.request_render()

    # -- keyframes and paths ----------------------------------------------------------------------
    def add_keyframe(self) -> None:
        """Keep the current point (its state, control values and origin) as a keyframe."""
        point = self.current_point()
        if point is None:
            self.status.setText("Nothing to keep yet: choose a source first.")
            return
        self.keys.add(Point({k: v.clone() for k, v in point.state.items()}, dict(point.controls),
                            dict(point.origin)))

    def clear_keyframes(self) -> None:
        self.keys.clear()

    def render_path(self) -> None:
        """Render the path through the keyframes (every output, one frame per step) in a worker."""
        model = self.session.model
        if model is None or len(self.keyframes) < 2 or self.keys.busy:
            return
        keyframes, steps = list(self.keyframes), self.steps_spin.value()
        precision = self.precision_combo.currentText()
        choices = [c.name for c in model.controls if c.is_choice]
        frames = (len(keyframes) - 1) * steps + 1
        self._path_task = ProgressTask(math.ceil(frames / PATH_BATCH), "Rendering the explore path")
        self.keys.set_busy(True)
        self.run_worker(render_path, model, keyframes, steps, list(self._latent_names), choices, precision,
                        self._bridge.progress.emit, action="Rendering the path",
                        on_return=lambda result: self._show_path(result, keyframes, steps, precision),
                        on_done=self._path_done)

    def _path_progress(self, done: int, total: int) -> None:
        if self._path_task is not None:
            self._path_task.update(done)

    def _path_done(self) -> None:
        task, self._path_task = self._path_task, None
        if task is not None:
            task.close()
        self.keys.set_busy(False)

    def _show_path(self, result, keyframes: list[Point], steps: int, precision: str) -> None:
        model, outputs, frames = result
        add_shown(self.viewer, path_layers(model, outputs, keyframes, steps, precision))
        self.status.setText(f"Path of {frames} frames through {len(keyframes)} keyframes.")

    def teardown(self) -> None:
        self.renderer.close(timeout=0.5)
        disconnect(self._layer_source_changed, *self._viewer_events())
        if self._path_task is not None:
            self._path_task.close()
        super().teardown()

    @property
    def busy(self) -> bool:
        return bool(self.workers) or not self.renderer.idle()
