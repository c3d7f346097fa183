"""Generate dock widget: N samples from a seed, one layer per channel, provenance kept for export."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.utils import progress
from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QPushButton, QSpinBox, QWidget

from ._common import PRECISIONS, SessionWidget, add_layers

CHUNK = 16  # samples rendered per step of the progress bar
LATENT_NOTE = "torch.randn from seed (CPU generator)"


def load_default_model(device: str):
    """The shipped default model (used when no model was chosen yet)."""
    from ..core.model import GanModel
    from ..core.zoo import resolve_model

    return GanModel.load(resolve_model(None), device=device)


def generate_samples(model, n: int, seed: int, precision: str, device: str):
    """Worker: yields samples done so far; returns (model, images (N, C, *axes) in [0, 1])."""
    from ..core.render import match_torch_threads

    match_torch_threads()  # the same pixels on every thread
    if model is None:
        model = load_default_model(device)
    latents = model.latents(n, seed)
    chunks = []
    for start in range(0, n, CHUNK):
        chunks.append(model.render(latents[start:start + CHUNK], precision=precision))
        yield start + len(chunks[-1])
    return model, np.concatenate(chunks)


def provenance_for(model, **extra: Any) -> dict[str, Any]:
    """What a generated layer records about where it came from (written into exported TIFFs)."""
    from .. import __version__

    return {"family": model.family.name, "model": model.name, "model_sha256": model.sha256,
            "package_version": __version__, **extra}


class GenerateWidget(SessionWidget):
    """N samples of the current model (the shipped demo model if none is chosen)."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        form = QFormLayout()
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 4096)
        self.n_spin.setValue(16)
        form.addRow("Samples (N)", self.n_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        form.addRow("Seed", self.seed_spin)
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(PRECISIONS)
        self.precision_combo.setToolTip("fp32: exact everywhere; auto/bf16: bf16 autocast where supported")
        form.addRow("Precision", self.precision_combo)
        self.layout().addLayout(form)
        self.generate_button = QPushButton("Generate")
        self.generate_button.clicked.connect(self.generate)
        self.layout().addWidget(self.generate_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)
        self._bar = None
        #: layers added by the last generation (tests, scripts)
        self.last_layers: list = []
        self._on_model_changed(self.session.model)

    def generate(self) -> None:
        """Start generating in a worker; layers are added when it returns."""
        n, seed, precision = self.n_spin.value(), self.seed_spin.value(), self.precision_combo.currentText()
        self.generate_button.setEnabled(False)
        self._bar = progress(total=n, desc=f"Generating {n} samples")
        settings = {"n": n, "seed": seed, "precision": precision}
        self.run_worker(
            generate_samples, self.session.model, n, seed, precision, self.session.device,
            action="Generating", on_yield=self._progress,
            on_return=lambda result: self._show(result, settings), on_done=self._done)

    def _progress(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)

    def _show(self, result, settings: dict[str, Any]) -> None:
        from ..io import sample_layers

        model, images = result
        if self.session.model is None:
            self.session.set_model(model)  # the default model became the current one
        provenance = provenance_for(model, seed=settings["seed"], n=settings["n"], latent=LATENT_NOTE,
                                    precision=settings["precision"])
        name = f"{model.name} seed {settings['seed']}"
        axes = "NC" + "".join(model.family.sample_axes)
        self.last_layers = add_layers(self.viewer, sample_layers(images, model.channels, axes, name, provenance))
        self.status.setText(f"{settings['n']} samples of {model.name}, seed {settings['seed']}.")

    def _done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.generate_button.setEnabled(True)

    def _on_model_changed(self, model) -> None:
        self.status.setText(f"Model: {model.name}." if model is not None
                            else "Model: the shipped demo model (none chosen yet).")
