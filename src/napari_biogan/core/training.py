"""The one training loop. It yields typed events (step, losses, ETA, previews,
checkpoints), stops at the next step when asked and keeps a checkpoint, resumes
bit-for-bit on the CPU, and stops on NaN/inf with the last good state kept.

Every family trains through :class:`Trainer`; a family only supplies its
optimisers and its ``train_step``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from . import checkpoint
from .errors import DataError, DeviceError, ModelFileError, TrainingDivergedError
from .device import is_out_of_memory
from .model import GanModel

if TYPE_CHECKING:
    import torch

STEP, PREVIEW, CHECKPOINT, FINISHED, CANCELLED = "step", "preview", "checkpoint", "finished", "cancelled"


@dataclass
class TrainEvent:
    """What the loop reports; widgets and the CLI only read these."""

    kind: str
    step: int
    total: int
    losses: dict[str, float] = field(default_factory=dict)
    elapsed_s: float = 0.0
    eta_s: float | None = None
    preview: np.ndarray | None = None  # (n, C, *sample_axes) in [0, 1]
    path: str | None = None


@dataclass
class TrainSettings:
    steps: int = 1000
    seed: int = 0
    output: str | None = None  # model file written at checkpoints and at the end
    overwrite: bool = False
    checkpoint_every: int = 200
    preview_every: int = 50
    preview_n: int = 8
    hparams: dict[str, Any] = field(default_factory=dict)
    data_description: str = ""


class Trainer:
    """Train ``model`` on ``data`` (a float tensor (N, C, ...) in [-1, 1])."""

    def __init__(self, model: GanModel, data: "torch.Tensor", settings: TrainSettings):
        import torch

        if data.ndim < 3 or len(data) == 0:
            raise DataError("Training data is empty or has no image axes.")
        self.model, self.data, self.settings = model, data, settings
        self.family = model.family
        self.hparams = {**self.family.default_hparams(), **settings.hparams}
        self.optimizers = self.family.make_optimizers(model.nets, self.hparams)
        self.step = 0
        self.elapsed_before = 0.0
        self.data_rng = torch.Generator().manual_seed(settings.seed)
        self.noise_rng = torch.Generator().manual_seed(settings.seed + 1)
        self.preview_z = model.latents(settings.preview_n, settings.seed + 2)
        self._stop = threading.Event()
        self._written_once = False
        torch.manual_seed(settings.seed + 3)

    # -- control ------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to stop after the current step (thread-safe); a checkpoint is kept."""
        self._stop.set()

    @classmethod
    def resume(cls, path: str, data: "torch.Tensor", settings: TrainSettings, device: str = "auto") -> "Trainer":
        """Continue from a checkpoint written by this loop: the same results as never stopping."""
        import torch

        model = GanModel.load(path, device=device)
        state = model.card.get("training_state")
        tensors = getattr(model, "_file_tensors", {})
        if not state or "rng.torch" not in tensors:
            raise ModelFileError(f"{Path(path).name} holds no training state to resume from.")
        settings = dataclasses.replace(settings, seed=state["seed"])
        trainer = cls(model, data, settings)
        trainer.hparams = {**trainer.hparams, **state["hparams"]}
        for name, opt in trainer.optimizers.items():
            opt.load_state_dict(checkpoint.unflatten_optimizer(state["optim"][name], tensors))
        trainer.step = int(state["step"])
        trainer.elapsed_before = float(state.get("elapsed_s", 0.0))
        trainer.data_rng.set_state(tensors["rng.data"])
        trainer.noise_rng.set_state(tensors["rng.noise"])
        torch.set_rng_state(tensors["rng.torch"])
        trainer._written_once = bool(settings.output) and Path(settings.output).resolve() == Path(path).resolve()
        return trainer

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> Iterator[TrainEvent]:
        total = self.settings.steps
        start_step, started = self.step, time.perf_counter()
        good = self._snapshot()
        nets = self.model.nets
        while self.step < total:
            if self._stop.is_set():
                path = self._save()
                yield TrainEvent(CANCELLED, self.step, total, elapsed_s=self._elapsed(started), path=path)
                return
            nets.train()
            try:
                losses = self.family.train_step(nets, self.optimizers, self._next_batch, self.hparams,
                                                self.noise_rng)
            except RuntimeError as err:
                if is_out_of_memory(err):
                    raise DeviceError(f"Out of memory on {self.model.device} at step {self.step + 1}; "
                                      "try a smaller batch or model, or the CPU.") from err
                raise
            if not all(math.isfinite(v) for v in losses.values()):
                self._restore(good)
                kept = self._save()
                raise TrainingDivergedError(
                    f"Training diverged at step {self.step + 1} (loss became NaN or infinite); "
                    f"the last good state (step {self.step}) was kept"
                    + (f" in {kept}." if kept else "."), step=self.step + 1, kept_path=kept)
            self.step += 1
            done = self.step - start_step
            elapsed = time.perf_counter() - started
            eta = elapsed / done * (total - self.step)
            yield TrainEvent(STEP, self.step, total, losses, self._elapsed(started), eta)
            if self.step % self.settings.preview_every == 0 or self.step == total:
                yield TrainEvent(PREVIEW, self.step, total, losses, self._elapsed(started), eta,
                                 preview=self.preview())
            if self.step % self.settings.checkpoint_every == 0 and self.step < total:
                good = self._snapshot()
                path = self._save(elapsed_s=self._elapsed(started))
                if path:
                    yield TrainEvent(CHECKPOINT, self.step, total, losses, self._elapsed(started), eta, path=path)
        path = self._save(elapsed_s=self._elapsed(started))
        yield TrainEvent(FINISHED, self.step, total, elapsed_s=self._elapsed(started), eta_s=0.0, path=path)

    def run_all(self) -> list[TrainEvent]:
        """Run to the end and return the events (scripts and tests)."""
        return list(self.run())

    # -- helpers ----------------------------------------------------------------------------
    def preview(self) -> np.ndarray:
        self.model.nets.eval()
        return self.model.render(self.preview_z, precision="fp32")

    def _elapsed(self, started: float) -> float:
        return self.elapsed_before + time.perf_counter() - started

    def _next_batch(self) -> "torch.Tensor":
        import torch

        size = int(self.hparams.get("batch_size", 16))
        index = torch.randint(len(self.data), (size,), generator=self.data_rng)
        batch = self.data[index]
        for axis in self.hparams.get("flip_axes", ()):  # random flips, one coin per sample and axis
            flip = torch.rand(size, generator=self.data_rng) < 0.5
            if flip.any():
                batch[flip] = batch[flip].flip(axis)
        return batch.to(self.model.device)

    def _snapshot(self) -> dict[str, Any]:
        return {"nets": copy.deepcopy(self.model.nets.state_dict()),
                "optim": {k: copy.deepcopy(o.state_dict()) for k, o in self.optimizers.items()}}

    def _restore(self, snapshot: dict[str, Any]) -> None:
        self.model.nets.load_state_dict(snapshot["nets"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(snapshot["optim"][name])

    def _save(self, elapsed_s: float | None = None) -> str | None:
        """Write model + optimiser + RNG state to the output file (resumable)."""
        import torch

        if not self.settings.output:
            return None
        extra: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state(),
                                          "rng.data": self.data_rng.get_state(),
                                          "rng.noise": self.noise_rng.get_state()}
        optim_plain = {}
        for name, opt in self.optimizers.items():
            tensors, plain = checkpoint.flatten_optimizer(f"optim.{name}", opt.state_dict())
            extra.update(tensors)
            optim_plain[name] = plain
        card = {
            "training": {"data": self.settings.data_description, "steps": self.step,
                         "wall_time_s": round(elapsed_s or self.elapsed_before, 1),
                         "device": str(self.model.device), "hparams": _jsonable(self.hparams)},
            "training_state": {"step": self.step, "seed": self.settings.seed, "hparams": _jsonable(self.hparams),
                               "optim": optim_plain, "elapsed_s": elapsed_s or self.elapsed_before},
        }
        # The first write honours the user's overwrite choice; later checkpoints replace our own file.
        overwrite = self.settings.overwrite or self._written_once
        path = self.model.save(self.settings.output, overwrite=overwrite, extra_tensors=extra, card=card)
        self._written_once = True
        return str(path)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
