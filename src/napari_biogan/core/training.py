"""The one training loop. It yields typed events (step, losses, ETA, previews,
checkpoints), stops at the next step when asked and keeps a checkpoint, resumes
bit-for-bit on the CPU, and stops on NaN/inf with the last good state kept.

Every family trains through :class:`Trainer`; a family only supplies its
optimisers and its ``train_step``. :func:`setup_training` is the one way the
CLI and the widgets start or resume a run.
"""

from __future__ import annotations

import contextlib
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
from .contract import TrainContext
from .dataset import TrainingData, as_training_data
from .errors import DataError, DeviceError, FamilyMismatchError, ModelFileError, OutputExistsError, \
    TrainingDivergedError, WriteError
from .device import is_out_of_memory
from .model import Model

if TYPE_CHECKING:
    import torch

STEP, PREVIEW, CHECKPOINT, FINISHED, CANCELLED = "step", "preview", "checkpoint", "finished", "cancelled"
#: the largest training seed (torch generators take 64-bit seeds; the loop uses seed + 3)
MAX_SEED = 2 ** 63 - 4


@dataclass
class TrainEvent:
    """What the loop reports; widgets and the CLI only read these."""

    kind: str
    step: int
    total: int
    losses: dict[str, float] = field(default_factory=dict)
    elapsed_s: float = 0.0
    eta_s: float | None = None
    preview: np.ndarray | None = None  # the main image output (n, C, *sample_axes) in [0, 1]
    #: every output of the preview, converted by kind, plus "source" for image-driven families
    preview_outputs: dict[str, np.ndarray] | None = None
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
    """Train ``model`` on ``data``: :class:`TrainingData` (or one tensor (N, C, ...) in [-1, 1])."""

    def __init__(self, model: Model, data: "TrainingData | torch.Tensor", settings: TrainSettings):
        import torch

        if settings.steps < 1:
            raise DataError("Training needs at least 1 step.")
        if settings.checkpoint_every < 1 or settings.preview_every < 1:
            raise DataError("Checkpoints and previews need an interval of at least 1 step.")
        if not 0 <= int(settings.seed) <= MAX_SEED:  # the loop seeds four generators from seed .. seed + 3
            raise DataError(f"A training seed must be a whole number from 0 to {MAX_SEED}, not {settings.seed}.")
        self.model, self.data, self.settings = model, as_training_data(data), settings
        self.family = model.family
        self.hparams = {**self.family.default_hparams(), **settings.hparams}
        self.optimizers = self.family.make_optimizers(model.nets, self.hparams)
        self.step = 0
        self.elapsed_before = 0.0
        self.data_rng = torch.Generator().manual_seed(settings.seed)
        self.noise_rng = torch.Generator().manual_seed(settings.seed + 1)
        preview_rng = torch.Generator().manual_seed(settings.seed + 2)
        self.preview_source = self.family.preview_source(model.config, self.data, settings.preview_n, preview_rng)
        self._stop = threading.Event()
        self._written_once = False
        self.ema = WeightAverage.for_trainer(model, self.hparams)
        torch.manual_seed(settings.seed + 3)

    @property
    def preview_z(self):
        """The fixed latents previews render (latent families)."""
        return self.preview_source.get("latent")

    # -- control ------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to stop after the current step (thread-safe); a checkpoint is kept."""
        self._stop.set()

    @classmethod
    def resume(cls, path: str, data: "torch.Tensor", settings: TrainSettings, device: str = "auto") -> "Trainer":
        """Continue from a checkpoint written by this loop: the same results as never stopping."""
        import torch

        model = Model.load(path, device=device)
        state = model.card.get("training_state")
        tensors = getattr(model, "_file_tensors", {})
        if not state or "rng.torch" not in tensors:
            raise ModelFileError(f"{Path(path).name} holds no training state to resume from.")
        settings = dataclasses.replace(settings, seed=state["seed"])
        explicit = dict(settings.hparams)  # what the user set now wins over what the run had
        trainer = cls(model, data, settings)
        trainer.hparams = {**trainer.hparams, **_tuples(state["hparams"]), **explicit}
        # the moments come from the file; the learning rates and betas from the hparams now in force (a saved
        # optimizer state would otherwise bring back the old ones and silently ignore e.g. a lowered lr_g)
        wanted = trainer.family.make_optimizers(model.nets, trainer.hparams)
        for name, opt in trainer.optimizers.items():
            opt.load_state_dict(checkpoint.unflatten_optimizer(state["optim"][name], tensors))
            for group, fresh in zip(opt.param_groups, wanted[name].param_groups):
                group.update({k: v for k, v in fresh.items() if k != "params"})
        trainer.step = int(state["step"])
        # with the run's own hparams now known: the file's nets are the average; the raw weights train on
        trainer.ema = WeightAverage.for_trainer(model, trainer.hparams)  # = the file's weights
        if trainer.ema is not None:
            raw = {k[len(RAW_PREFIX):]: v for k, v in tensors.items() if k.startswith(RAW_PREFIX)}
            if raw:
                model.nets.load_state_dict(raw, strict=False)
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
        good = self._snapshot(started)
        nets = self.model.nets
        while self.step < total:
            if self._stop.is_set():
                path = self._save(elapsed_s=self._elapsed(started))
                self.use_averaged_weights()  # the model in memory now runs what the file holds
                yield TrainEvent(CANCELLED, self.step, total, elapsed_s=self._elapsed(started), path=path)
                return
            nets.train()
            ctx = TrainContext(self.model.config, self.hparams, self.step, self.noise_rng, self.model.device)
            try:
                losses = self.family.train_step(nets, self.optimizers, self._next_batch, ctx)
            except (RuntimeError, MemoryError) as err:
                if isinstance(err, MemoryError) or is_out_of_memory(err):
                    raise DeviceError(f"Out of memory on {self.model.device} at step {self.step + 1}; "
                                      "try a smaller batch or model, or the CPU.") from err
                raise
            if not all(math.isfinite(v) for v in losses.values()):
                bad_step = self.step + 1
                self._restore(good)  # weights, optimisers, RNGs and step of ONE earlier step
                kept = self._save(elapsed_s=good["elapsed_s"])
                raise TrainingDivergedError(
                    f"Training diverged at step {bad_step} (loss became NaN or infinite); "
                    f"the last good state (step {self.step}) was kept"
                    + (f" in {kept}." if kept else "."), step=bad_step, kept_path=kept)
            self.step += 1
            if self.ema is not None:
                self.ema.update(self.model.nets, self.step)
            done = self.step - start_step
            elapsed = time.perf_counter() - started
            eta = elapsed / done * (total - self.step)
            yield TrainEvent(STEP, self.step, total, losses, self._elapsed(started), eta)
            if self.step % self.settings.preview_every == 0 or self.step == total:
                outputs = self.preview_outputs()
                yield TrainEvent(PREVIEW, self.step, total, losses, self._elapsed(started), eta,
                                 preview=outputs.get(self.model.main_output), preview_outputs=outputs)
            if self.step % self.settings.checkpoint_every == 0 and self.step < total:
                good = self._snapshot(started)
                path = self._save(elapsed_s=self._elapsed(started))
                if path:
                    yield TrainEvent(CHECKPOINT, self.step, total, losses, self._elapsed(started), eta, path=path)
        path = self._save(elapsed_s=self._elapsed(started))
        self.use_averaged_weights()  # the model in memory now runs what the file holds
        yield TrainEvent(FINISHED, self.step, total, elapsed_s=self._elapsed(started), eta_s=0.0, path=path)

    def run_all(self) -> list[TrainEvent]:
        """Run to the end and return the events (scripts and tests)."""
        return list(self.run())

    # -- helpers ----------------------------------------------------------------------------
    def preview(self) -> np.ndarray:
        """The main image output of the fixed preview source."""
        return self.preview_outputs()[self.model.main_output]

    def preview_outputs(self) -> dict[str, np.ndarray]:
        """Every output of the fixed preview source (plus its "source" image, for image-driven families)."""
        self.model.nets.eval()
        with self._averaged_weights():  # previews show what the saved file will run
            outputs = self.model.run(self.preview_source, precision="fp32")
        for name, value in self.preview_source.items():
            if name != "latent" and name not in outputs and hasattr(value, "numpy"):
                outputs["source" if name == "image" else name] = (value.float().clamp(-1, 1).numpy() + 1) / 2 \
                    if value.is_floating_point() else value.numpy()
        return outputs

    def _elapsed(self, started: float) -> float:
        return self.elapsed_before + time.perf_counter() - started

    def _next_batch(self) -> dict[str, "torch.Tensor"]:
        size = int(self.hparams.get("batch_size", 16))
        batch = self.data.batch(size, self.data_rng, self.hparams.get("flip_axes", ()))
        return {name: value.to(self.model.device) for name, value in batch.items()}

    def _snapshot(self, started: float) -> dict[str, Any]:
        """Everything a checkpoint holds, at the current step: restoring it gives one consistent state."""
        import torch

        return {"nets": copy.deepcopy(self.model.nets.state_dict()),
                "ema": None if self.ema is None else copy.deepcopy(self.ema.average),
                "optim": {k: copy.deepcopy(o.state_dict()) for k, o in self.optimizers.items()},
                "rng": (torch.get_rng_state(), self.data_rng.get_state(), self.noise_rng.get_state()),
                "step": self.step, "elapsed_s": self._elapsed(started)}

    def _restore(self, snapshot: dict[str, Any]) -> None:
        import torch

        self.model.nets.load_state_dict(snapshot["nets"])
        if self.ema is not None:
            self.ema.average = copy.deepcopy(snapshot["ema"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(snapshot["optim"][name])
        torch_state, data_state, noise_state = snapshot["rng"]
        torch.set_rng_state(torch_state)
        self.data_rng.set_state(data_state)
        self.noise_rng.set_state(noise_state)
        self.step = snapshot["step"]

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
        if self.ema is not None:  # the file's nets hold the average; the raw weights go beside, to resume
            extra.update({f"{RAW_PREFIX}{k}": v.detach().clone() for k, v in self.model.nets.state_dict().items()
                          if k.split(".", 1)[0] in self.ema.nets})
        card = {
            "training": {"data": self.settings.data_description, "steps": self.step,
                         "wall_time_s": round(elapsed_s or self.elapsed_before, 1),
                         "device": str(self.model.device), "hparams": _jsonable(self.hparams),
                         "weights": self.weights_description()},
            "training_state": {"step": self.step, "seed": self.settings.seed, "hparams": _jsonable(self.hparams),
                               "optim": optim_plain, "elapsed_s": elapsed_s or self.elapsed_before},
        }
        # The first write honours the user's overwrite choice; later checkpoints replace our own file.
        overwrite = self.settings.overwrite or self._written_once
        with self._averaged_weights():
            path = self.model.save(self.settings.output, overwrite=overwrite, extra_tensors=extra, card=card)
        self._written_once = True
        return str(path)

    def weights_description(self) -> str:
        """What the saved nets hold, for the card: true of every file saved from them (a file that also
        keeps the raw training weights says so by its ``raw.*`` tensors, not here)."""
        if self.ema is None:
            return "as trained"
        return (f"exponential moving average of {', '.join(self.ema.nets)} (decay {self.ema.decay}: about the "
                f"last {self.ema.window(self.step)} steps)")

    def _averaged_weights(self):
        """Context: the averaged weights in the nets (previews, saving); the raw ones back after."""
        return self.ema.swapped_in(self.model.nets) if self.ema is not None else contextlib.nullcontext()

    def use_averaged_weights(self) -> None:
        """Put the averaged weights in the nets for good (build scripts, before shipping a model)."""
        if self.ema is not None:
            self.model.nets.load_state_dict(self.ema.average, strict=False)


#: saved tensors holding the raw training weights of averaged nets (``raw.<net>.<param>``)
RAW_PREFIX = "raw."


class WeightAverage:
    """Exponential moving average of some networks' weights (the family's ``ema_nets``).

    ``average = d * average + (1 - d) * weights`` after each step, with the usual warm-up
    ``d = min(decay, (1 + step) / (10 + step))`` so early averages do not drag the random
    initialisation along. Integer buffers are copied. Kept in fp32 on the nets' device.
    """

    def __init__(self, nets, names: tuple[str, ...], decay: float):
        self.nets, self.decay = names, decay
        self.average = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                        for k, v in nets.state_dict().items() if k.split(".", 1)[0] in names}

    @classmethod
    def for_trainer(cls, model, hparams: dict[str, Any]) -> "WeightAverage | None":
        decay = float(hparams.get("ema_decay") or 0.0)
        names = tuple(n for n in model.family.ema_nets if n in model.nets)
        return cls(model.nets, names, decay) if decay > 0 and names else None

    def decay_at(self, step: int) -> float:
        """The decay used at ``step`` (the warm-up holds it below ``decay`` for the first steps)."""
        return min(self.decay, (1 + step) / (10 + step))

    def window(self, step: int) -> int:
        """About how many of the last steps the average spans at ``step``: 1 / (1 - decay)."""
        return round(1 / (1 - self.decay_at(step)))

    def update(self, nets, step: int) -> None:
        import torch

        d = self.decay_at(step)
        state = nets.state_dict()
        with torch.no_grad():
            for key, avg in self.average.items():
                value = state[key]
                if avg.is_floating_point():
                    avg.mul_(d).add_(value.detach().float(), alpha=1 - d)
                else:
                    avg.copy_(value)

    @contextlib.contextmanager
    def swapped_in(self, nets):
        raw = {k: v.detach().clone() for k, v in nets.state_dict().items() if k in self.average}
        nets.load_state_dict(self.average, strict=False)
        try:
            yield
        finally:
            nets.load_state_dict(raw, strict=False)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}


def check_output(path: str | Path, overwrite: bool, expected: str = "a model file name ending in .safetensors") -> None:
    """Refuse, before any long work, an output that exists (unless allowed) or cannot be written;
    ``expected`` says what to give instead of a folder."""
    import os
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise WriteError(f"{path} is a folder; give {expected}.")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; choose another name or allow overwriting.")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise WriteError(f"Cannot write to {folder}: {err.strerror or err}.") from None


def setup_training(family_name: str, sources: Any, settings: TrainSettings, *,
                   config_overrides: dict | None = None, resume: str | None = None,
                   device: str = "auto") -> Trainer:
    """The one way to start or resume a run (CLI and Train widget).

    ``sources``: the training inputs by name, each an array (a layer's data) or a
    path (see :mod:`napari_biogan.data.inputs`); one array or path alone is the
    image input. The output is checked before anything is loaded or trained;
    ``settings.hparams`` are checked against the family's names and types. A
    resumed run keeps its config (changing it is refused) and continues with the
    user's hyper-parameters on top of the saved ones.
    """
    from ..data.inputs import load_training_inputs

    from .checkpoint import read_card
    from .registry import get_family
    from .settings import check_hparams, make_config

    family = get_family(family_name)
    if not isinstance(sources, dict):
        sources = {"image": sources}
    if not family.trainable:
        raise DataError(f"The '{family.name}' family is not trained; it runs as it is.")
    settings = dataclasses.replace(settings, hparams=check_hparams(family, settings.hparams))
    if settings.output:
        resuming_in_place = resume and Path(resume).resolve() == Path(settings.output).resolve()
        check_output(settings.output, settings.overwrite or bool(resuming_in_place))
    if resume:
        card = read_card(resume)
        if card.get("family") != family.name:
            raise FamilyMismatchError(f"{Path(resume).name} is a '{card.get('family')}' model, "
                                      f"not a '{family.name}' model; resume it with that family.")
        config = family.config_from_dict(card.get("config", {}))
        if config_overrides:  # values equal to the run's own are fine (a form that still shows them)
            asked = dataclasses.asdict(make_config(family, config_overrides))
            kept = dataclasses.asdict(config)
            changed = [k for k in config_overrides if k in kept and asked.get(k) != kept[k]]
            if changed:
                raise DataError("A resumed run keeps the config it was started with; leave out the changed "
                                f"config values ({', '.join(changed)}).")
        prepared = family.prepare_data(load_training_inputs(family, config, sources), config)
        return Trainer.resume(resume, prepared, settings, device=device)
    config = make_config(family, config_overrides or {})
    prepared = family.prepare_data(load_training_inputs(family, config, sources), config)
    model = Model.new(family.name, config=config, device=device, seed=settings.seed)
    return Trainer(model, prepared, settings)
