"""How long will training take? A few real steps of the chosen run, timed on the chosen device.

:func:`estimate_training` starts the run exactly as training would (:func:`core.training.setup_training`:
the same data, config, hyper-parameters, batch size and device), takes one warm-up step and then
a few measured ones through the loop's own ``train_step``, times one preview, and throws the
run away: no file is written (the throwaway run has no output) and the global torch random
state is put back, so the real run that follows is the same as without an estimate.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

#: steps timed after the warm-up step (which pays for lazy initialisation and is not counted)
MEASURED_STEPS = 3
WARMUP_STEPS = 1


@dataclass(frozen=True)
class TrainEstimate:
    """What was measured; :meth:`seconds` and :meth:`describe` turn it into a duration."""

    seconds_per_step: float
    preview_s: float
    setup_s: float  # loading the data and building the model (the real run pays it once too)
    measured_steps: int
    device: str
    start_step: int = 0  # a resumed run continues from its checkpoint's step

    def seconds(self, steps: int, preview_every: int | None = None) -> float:
        """Training time for a run of ``steps`` in all (those before ``start_step`` are done), with a
        preview every ``preview_every`` steps; checkpoint writes are not counted."""
        remaining = max(0, int(steps) - self.start_step)
        previews = remaining // int(preview_every) if preview_every else 0
        return remaining * self.seconds_per_step + previews * self.preview_s

    def describe(self, steps: int, preview_every: int | None = None) -> str:
        """"about 25 min for 3,000 steps (0.50 s/step measured on cpu)"."""
        remaining = max(0, int(steps) - self.start_step)
        left = f"{remaining:,} steps" + (f" (from step {self.start_step:,})" if self.start_step else "")
        return (f"{format_duration(self.seconds(steps, preview_every))} for {left} "
                f"({format_rate(self.seconds_per_step)} measured on {self.device}).")


def format_duration(seconds: float) -> str:
    """A duration in words: "less than a minute", "about 25 min", "about 3 h 05 min"."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return "less than a minute"
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"about {minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes:02d} min"


def format_rate(seconds_per_step: float) -> str:
    if seconds_per_step >= 0.1:
        return f"{seconds_per_step:.2f} s/step"
    return f"{seconds_per_step * 1000:.1f} ms/step"


def estimate_training(family_name: str, sources: Any, settings, *, config_overrides: dict | None = None,
                      resume: str | None = None, device: str = "auto", steps: int = MEASURED_STEPS,
                      warmup: int = WARMUP_STEPS) -> TrainEstimate:
    """Time ``steps`` real training steps (after ``warmup``) of the run these arguments describe.

    The arguments are :func:`core.training.setup_training`'s; ``settings.output`` is ignored
    (nothing is written) and so are its step count and intervals. Raises what starting the run
    would raise (bad data, unknown names: one sentence).
    """
    import torch

    from .training import STEP, setup_training

    if steps < 1 or warmup < 0:
        raise ValueError("an estimate needs at least one measured step")
    throwaway = dataclasses.replace(settings, output=None, overwrite=False, steps=2**62,
                                    checkpoint_every=2**62, preview_every=2**62)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):  # the caller's random state is put back afterwards
        started = time.perf_counter()
        trainer = setup_training(family_name, sources, throwaway, config_overrides=config_overrides,
                                 resume=resume, device=device)
        setup_s = time.perf_counter() - started
        start_step = trainer.step
        try:
            times = _step_times(trainer, warmup + steps, STEP)[warmup:]
            began = time.perf_counter()
            trainer.preview_outputs()
            _synchronise(trainer.model.device)
            preview_s = time.perf_counter() - began
        finally:
            trainer.model.release()
    return TrainEstimate(seconds_per_step=sum(times) / len(times), preview_s=preview_s, setup_s=setup_s,
                         measured_steps=len(times), device=str(trainer.model.device), start_step=start_step)


def _step_times(trainer, count: int, step_kind: str) -> list[float]:
    """Seconds of each of the next ``count`` steps of ``trainer``'s own loop (then the loop is closed:
    it neither previews nor saves)."""
    times: list[float] = []
    events = trainer.run()
    try:
        last = time.perf_counter()
        for event in events:
            if event.kind != step_kind:
                continue
            _synchronise(trainer.model.device)  # a GPU step is done when its kernels are, not when queued
            now = time.perf_counter()
            times.append(now - last)
            last = now
            if len(times) == count:
                break
    finally:
        events.close()
    return times


def _synchronise(device) -> None:
    import torch

    kind = getattr(device, "type", str(device))
    if kind == "cuda":
        torch.cuda.synchronize()
    elif kind == "mps" and hasattr(torch, "mps"):
        torch.mps.synchronize()
