"""Generate dock widget: run the current model on any source (a seed, or image layers) into layers.

Written once against the family contract: a model with a latent input shows a seed
and N; a model that runs on images shows a layer picker per input, and tile size and
overlap (tiling lives in the core). The family's controls get one editor each. Each
output becomes layers by its kind (image, signed overlay, labels), with provenance.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Generator

import numpy as np
from qtpy.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QPushButton, QSpinBox, QWidget

from ._common import (PRECISIONS, ImageLayerPicker, LabelsLayerPicker, ProgressTask, SessionWidget, add_layers,
                      report_error)
from ..core.zoo import load_default_model
from .controls import ControlWidget
from .layer_axes import inserted_axes, layer_array
from .montage_box import MontageBox

CHUNK = 16  # samples per step of the progress bar (and per forward pass)
DEFAULT_OVERLAP = 32


# -- workers (no Qt, no layers) ----------------------------------------------------------------------------

def with_progress(run: Callable[[Callable[[int, int], None]], Any]) -> Generator[tuple[int, int], None, Any]:
    """Call ``run(progress)`` on a helper thread and yield each ``progress(done, total)`` call.

    ``Model.run`` reports progress through a callback; a napari generator worker can
    only report by yielding. Returns what ``run`` returns; re-raises what it raises.
    """
    from ..core.render import match_torch_threads

    events: queue.Queue = queue.Queue()
    result: dict[str, Any] = {}

    def target() -> None:
        match_torch_threads()  # the same pixels on every thread
        try:
            result["value"] = run(lambda done, total: events.put((int(done), int(total))))
        except BaseException as err:  # handed to the worker thread, which reports it
            result["error"] = err
        finally:
            events.put(None)

    thread = threading.Thread(target=target, name="napari-biogan run", daemon=True)
    thread.start()
    while (event := events.get()) is not None:
        yield event
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def steps(n: int, tile: int | None, overlap: int, shape: tuple[int, ...] | None) -> int:
    """How many progress steps ``Model.run`` reports: tiles when tiling, else chunks of samples."""
    if tile and shape is not None:
        from ..core.tiling import tile_starts

        return len(tile_starts(shape[-2], tile, overlap)) * len(tile_starts(shape[-1], tile, overlap))
    return max(1, -(-n // CHUNK))


def run_model(model, request: dict[str, Any], precision: str, device: str):
    """Worker: run ``model`` (the shipped default if None) on ``request``.

    ``request``: "controls" by name, and "seed" and "n" for a latent model, or
    "source" (input name -> samples array), "tile" and "overlap" for one that runs on
    images. Yields (done, total); returns (model, {output name: array}).
    """
    from ..core.errors import DataError

    if model is None:
        model = load_default_model(device)
    controls = dict(request.get("controls") or {})
    source = request.get("source")
    tile, overlap = request.get("tile") or None, int(request.get("overlap", DEFAULT_OVERLAP))
    if source:
        source = dict(source)
        n = len(next(iter(source.values())))
        if model.has_latent:  # a family that takes noise besides its images
            source["latent"] = model.latents(n, int(request.get("seed", 0)))
        shape = next((np.shape(v) for k, v in source.items() if k != "latent"), None)
    elif model.has_latent:
        n = int(request["n"])
        source, tile, shape = model.seeded_point(int(request["seed"]), n, controls), None, None
        controls = {}  # already in the point
    else:
        names = ", ".join(i.name for i in model.run_inputs())
        raise DataError(f"{model.name} runs on {names}; choose a layer for it.")
    yield 0, steps(n, tile, overlap, shape)
    outputs = yield from with_progress(lambda progress: model.run(
        source, controls, precision=precision, batch_size=CHUNK, tile=tile, overlap=overlap, progress=progress))
    return model, outputs


def generate_samples(model, n: int, seed: int, precision: str, device: str,
                     controls: dict[str, Any] | None = None):
    """Worker: ``n`` seeded samples; yields samples done so far; returns (model, main image output
    (N, C, *axes) in [0, 1])."""
    worker = run_model(model, {"n": n, "seed": seed, "controls": controls}, precision, device)
    try:
        while True:
            done, total = next(worker)
            yield min(n, done * CHUNK) if total > 0 else 0
    except StopIteration as stop:
        model, outputs = stop.value
    return model, outputs[model.main_output]


# -- layer data -> a source -------------------------------------------------------------------------------

def layer_samples(layer, kind: str, sample_axes: tuple[str, ...]) -> np.ndarray:
    """A layer's data as samples of an input: images (N, C, *axes) float32, labels (N, *axes).

    A layer with just the sample axes is one sample; an RGB layer's colours are channels.
    """
    from ..core.contract import LABELS
    from ..core.errors import DataError

    data = np.asarray(layer.data[0] if getattr(layer, "multiscale", False) else layer_array(layer))
    given = data.ndim
    k = len(sample_axes)
    axes = "".join(sample_axes)
    if kind == LABELS:
        data = data[np.newaxis] if data.ndim == k else data
        if data.ndim != k + 1:
            raise DataError(f"'{layer.name}' has {data.ndim} axes; labels for this model are {axes} "
                            f"(one sample) or N{axes}.")
        return data.astype(np.int64)
    if getattr(layer, "rgb", False):
        data = np.moveaxis(data, -1, -1 - k)
        data = data[np.newaxis] if data.ndim == k + 1 else data
    else:
        data = data[np.newaxis] if data.ndim == k else data
        data = data[:, np.newaxis] if data.ndim == k + 1 else data
    if data.ndim != k + 2:
        raise DataError(f"'{layer.name}' has {given} axes; this model runs on {axes} images "
                        f"(one sample) or stacks of them (N{axes}).")
    return data.astype(np.float32)


def show_first_sample(viewer, layers) -> None:
    """Move the sliders to the first sample/frame of the new layers (not left at N = 999 of an earlier stack)."""
    if not layers:
        return
    layer = layers[0]
    offset = viewer.dims.ndim - layer.ndim  # napari aligns layers by their trailing axes
    low = layer.extent.world[0]
    inserted = inserted_axes(layer)  # a 2D stack's length-1 T beside a video: the video's frame stays
    axes = [i for i in range(layer.ndim) if offset + i not in viewer.dims.displayed and i not in inserted]
    if axes:
        viewer.dims.set_point([offset + i for i in axes], [float(low[i]) for i in axes])


# -- widgets ----------------------------------------------------------------------------------------------------

class ControlsGroup(QGroupBox):
    """One editor per family control (hidden when the family has none); also used by Export."""

    def __init__(self, title: str = "Controls", parent: QWidget | None = None):
        super().__init__(title, parent)
        self.setLayout(QFormLayout())
        self.editors: dict[str, ControlWidget] = {}
        self.set_controls(())

    def set_controls(self, controls) -> None:
        layout = self.layout()
        while layout.rowCount():
            layout.removeRow(0)
        self.editors = {}
        for control in controls:
            self.editors[control.name] = ControlWidget(control)
            layout.addRow(control.name, self.editors[control.name])
        self.setVisible(bool(self.editors))

    def values(self) -> dict[str, Any]:
        return {name: editor.value() for name, editor in self.editors.items()}


def spin(low: int, high: int, value: int, tip: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class GenerateWidget(SessionWidget):
    """Run the current model (the shipped demo model if none is chosen) on a seed or on image layers."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        # a seed and N: models with a latent input
        self.latent_box = QWidget()
        form = QFormLayout(self.latent_box)
        form.setContentsMargins(0, 0, 0, 0)
        self.n_spin = spin(1, 4096, 16)
        form.addRow("Samples (N)", self.n_spin)
        self.seed_spin = spin(0, 2**31 - 1, 0)
        form.addRow("Seed", self.seed_spin)
        self.layout().addWidget(self.latent_box)
        # layers: models that run on images (or labels)
        self.source_box = QWidget()
        self.source_form = QFormLayout(self.source_box)
        self.source_form.setContentsMargins(0, 0, 0, 0)
        self.tile_spin = spin(0, 65536, 0, "Run in tiles of this many pixels (0: the whole image at once)")
        self.overlap_spin = spin(0, 4096, DEFAULT_OVERLAP, "Pixels tiles share; their seams are blended")
        self.source_form.addRow("Tile size", self.tile_spin)
        self.source_form.addRow("Overlap", self.overlap_spin)
        self.layout().addWidget(self.source_box)
        #: one layer picker per input the model runs on (input name -> picker)
        self.pickers: dict[str, Any] = {}
        self.controls_box = ControlsGroup()
        self.layout().addWidget(self.controls_box)
        other = QFormLayout()
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(PRECISIONS)
        self.precision_combo.setToolTip("fp32: exact everywhere; bf16: faster on CPUs with native bf16 and GPUs; "
                                        "auto: bf16 only where a quick measurement on this device found it faster")
        other.addRow("Precision", self.precision_combo)
        self.layout().addLayout(other)
        self.generate_button = QPushButton("Generate")
        self.generate_button.clicked.connect(self.generate)
        self.layout().addWidget(self.generate_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)
        self.montage_box = MontageBox(self.viewer)  # the samples in one grid, or beside real ones
        self.layout().addWidget(self.montage_box)
        self._task: ProgressTask | None = None
        #: layers added by the last generation (tests, scripts)
        self.last_layers: list = []
        self._on_model_changed(self.session.model)

    @property
    def image_picker(self):
        """The picker of the first image input (None for a latent model)."""
        return next(iter(self.pickers.values()), None)

    def _on_model_changed(self, model) -> None:
        from ..core.contract import LABELS

        for picker in self.pickers.values():  # rows of the previous model's inputs
            self.source_form.removeRow(picker)
        self.pickers = {}
        inputs = model.run_inputs() if model is not None else []
        for row, spec in enumerate(inputs):
            picker = (LabelsLayerPicker if spec.kind == LABELS else ImageLayerPicker)(self.viewer)
            picker.setToolTip(spec.help)
            self.source_form.insertRow(row, spec.name.capitalize(), picker)
            self.pickers[spec.name] = picker
        self.latent_box.setVisible(model is None or model.has_latent)
        self.source_box.setVisible(bool(inputs))
        self.controls_box.set_controls(model.controls if model is not None else ())
        self.status.setText(f"Model: {model.name}." if model is not None
                            else "Model: the shipped demo model (none chosen yet).")

    def request(self) -> dict[str, Any]:
        """What to run, from the widget's fields (see :func:`run_model`); DataError if incomplete."""
        from ..core.errors import DataError

        model = self.session.model
        request: dict[str, Any] = {"controls": self.controls_box.values()}
        if model is None or model.has_latent:
            request.update(n=self.n_spin.value(), seed=self.seed_spin.value())
        if not self.pickers:
            return request
        source, names = {}, []
        inputs = {spec.name: spec for spec in model.run_inputs()}
        for key, picker in self.pickers.items():
            layer = picker.layer()
            if layer is None:
                raise DataError(f"Choose a layer for the model's '{key}' input.")
            source[key] = layer_samples(layer, inputs[key].kind, tuple(model.family.sample_axes))
            names.append(layer.name)
        if len({len(v) for v in source.values()}) > 1:
            raise DataError("The chosen layers hold different numbers of samples.")
        request.update(source=source, layer=", ".join(names), tile=self.tile_spin.value() or None,
                       overlap=self.overlap_spin.value())
        return request

    def generate(self) -> None:
        """Run the model in a worker; layers are added when it returns."""
        from ..core.errors import BioGanError

        try:
            request = self.request()
        except BioGanError as err:
            self.status.setText(report_error(err, "Generate"))
            return
        precision = self.precision_combo.currentText()
        self.generate_button.setEnabled(False)
        self.status.setText("Generating...")
        self.run_worker(run_model, self.session.model, request, precision, self.session.device,
                        action="Generating", on_yield=self._progress,
                        on_return=lambda result: self._show(result, request, precision),
                        on_error=lambda err: self.status.setText(str(err)), on_done=self._done)

    def _progress(self, step: tuple[int, int]) -> None:
        done, total = step
        if self._task is None:  # the first step gives the total (tiles or chunks of samples)
            self._task = ProgressTask(total, "Generating")
        self._task.update(done)

    def _show(self, result, request: dict[str, Any], precision: str) -> None:
        from ..core.model import LATENT_NOTE
        from ..core.provenance import provenance
        from ..io import output_layers

        model, outputs = result
        if self.session.model is None:
            self.session.set_model(model)  # the default model became the current one
        n = len(next(iter(outputs.values()))) if outputs else 0
        seeded = "seed" in request
        name = f"{model.name} on {request['layer']}" if "layer" in request \
            else f"{model.name} seed {request['seed']}"
        tile = request.get("tile")
        record = provenance(model, seed=request.get("seed"), n=n, latent=LATENT_NOTE if seeded else None,
                            controls=request["controls"] or None, source=request.get("layer"), tile=tile,
                            overlap=request.get("overlap") if tile else None, precision=precision)
        layers = output_layers(outputs, model.outputs, lead="N", sample_axes=model.family.sample_axes,
                               name=name, provenance=record)
        self.last_layers = add_layers(self.viewer, layers)
        show_first_sample(self.viewer, self.last_layers)
        self.montage_box.follow(self.last_layers[0] if self.last_layers else None)
        self.status.setText(f"{n} sample{'s' if n != 1 else ''}: {name}.")

    def _done(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None
        self.generate_button.setEnabled(True)
