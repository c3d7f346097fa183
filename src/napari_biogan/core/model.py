"""A family plus its config and networks (:class:`Model`): the object widgets, CLI and scripts share."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .. import __version__
from . import checkpoint
from .device import inference_precision, is_out_of_memory, release, resolve_device
from .contract import IMAGE, LABELS, LATENT, SIGNED, Point
from .errors import BioGanError, DataError, DeviceError, FamilyMismatchError, ModelFileError
from .registry import Family, get_family

if TYPE_CHECKING:
    import torch

    from .dataset import TrainingData

#: how seeded latents are drawn (provenance)
LATENT_NOTE = "family.sample_latent from seed (CPU generator)"


class Model:
    """A ready-to-use model of any family: build it new, or load it from a model file.

    It runs any source through the family's ``encode`` and ``decode``, in chunks of
    samples (every per-sample tensor and control is chunked), optionally in
    overlapping tiles, and converts each output by its kind: images to [0, 1],
    signed maps as they are, labels to arg-max class maps.
    """

    def __init__(self, family: Family, config, nets: "torch.nn.ModuleDict", card: dict[str, Any] | None = None,
                 device: str = "cpu", path: Path | None = None, sha256: str | None = None):
        self.family = family
        self.config = config
        self.nets = nets
        self.card = card or {}
        self.path = path
        self.sha256 = sha256 or (checkpoint.file_sha256(path) if path else None)
        self.device = resolve_device(device)
        self.nets.to(self.device)
        self.nets.eval()

    # -- construction ------------------------------------------------------------------
    @classmethod
    def new(cls, family_name: str, config=None, device: str = "cpu", seed: int = 0, **overrides) -> "Model":
        """A freshly initialised model (weights from ``seed``)."""
        import torch

        family = get_family(family_name)
        config = config or family.default_config(**overrides)
        torch.manual_seed(seed)
        return cls(family, config, family.build(config), {"family": family.name}, device=device)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", expect_family: str | None = None) -> "Model":
        """Load a model file onto ``device``, whatever device it was saved from.

        Every network the family needs to run must be in the file, with the shapes
        its config gives (checked on shapes alone before any weight is allocated);
        networks only needed for training (critics) may be left out.
        """
        tensors, card, sha256 = _read(path)
        name = Path(path).name
        family_name = card.get("family")
        if not family_name or not isinstance(family_name, str):
            raise ModelFileError(f"{name} has no model family in its card.")
        if expect_family and family_name != expect_family:
            raise FamilyMismatchError(f"{name} is a '{family_name}' model, not a '{expect_family}' model.")
        family = get_family(family_name)
        config_values = card.get("config", {})
        if not isinstance(config_values, dict):
            raise ModelFileError(f"The config in {name} is not a table of values.")
        try:
            config = family.config_from_dict(config_values)
        except (TypeError, ValueError, BioGanError) as err:
            raise ModelFileError(f"The config in {name} is not valid for a '{family_name}' model ({err}).") from None
        weights = {k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")}
        _check_weights(family, config, weights, name)
        damaged = [k for k, v in weights.items() if v.is_floating_point() and not bool(v.isfinite().all())]
        if damaged:
            raise ModelFileError(f"{name} holds NaN or infinite weights ({damaged[0]}); it was saved from a "
                                 "diverged run or is damaged.")
        nets = family.build(config)
        nets.load_state_dict(weights, strict=False)  # critics may be left out of shipped models
        model = cls(family, config, nets, card, device=device, path=Path(path), sha256=sha256)
        model._file_tensors = tensors
        return model

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, include: tuple[str, ...] | None = None,
             extra_tensors: dict[str, "torch.Tensor"] | None = None, card: dict[str, Any] | None = None) -> Path:
        """Write one model file; ``include`` limits the networks saved (e.g. only the generator)."""
        tensors = {f"net.{k}": v for k, v in self.nets.state_dict().items()
                   if include is None or k.split(".", 1)[0] in include}
        tensors.update(extra_tensors or {})
        full_card = {**self.card, **(card or {})}
        full_card.update(family=self.family.name, config=dataclasses.asdict(self.config),
                         package_version=__version__,
                         saved=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        written = checkpoint.save_tensors(path, tensors, full_card, overwrite=overwrite)
        self.card, self.path, self.sha256 = full_card, written, checkpoint.file_sha256(written)
        return written

    # -- what it declares ---------------------------------------------------------------
    @property
    def inputs(self):
        return self.family.inputs(self.config)

    @property
    def outputs(self):
        return self.family.outputs(self.config)

    @property
    def controls(self):
        return self.family.controls(self.config)

    @property
    def has_latent(self) -> bool:
        """Runs from a seed (Generate shows seed and N; Explore shows GANSpace directions)."""
        return self.family.has_input(self.config, LATENT, run=True)

    def run_inputs(self):
        """Inputs a source must hold to run (besides the latent, which comes from a seed)."""
        return [i for i in self.inputs if i.run and i.kind != LATENT]

    def check_controls(self, values: dict[str, Any] | None) -> dict[str, Any]:
        """Control values by name with defaults filled in; DataError for unknown names or bad values."""
        controls = {c.name: c for c in self.controls}
        values = dict(values or {})
        unknown = sorted(set(values) - set(controls))
        if unknown:
            known = ", ".join(controls) or "none"
            raise DataError(f"The '{self.family.name}' family has no control {', '.join(map(repr, unknown))}; "
                            f"its controls: {known}.")
        checked = {}
        for name, control in controls.items():
            value = values.get(name, control.default)
            try:
                checked[name] = (value if _is_sequence(value) else control.check(value))
            except ValueError as err:
                raise DataError(str(err)) from None
        return checked

    # -- sources and points -------------------------------------------------------------
    def latents(self, n: int, seed: int) -> "torch.Tensor":
        """``n`` latent vectors from ``seed``, drawn on the CPU so every device gives the same ones."""
        import torch

        if not 0 <= int(seed) < 2 ** 63:
            raise DataError(f"A seed must be a whole number from 0 to 2^63 - 1, not {seed}.")
        generator = torch.Generator().manual_seed(int(seed))
        return self.family.sample_latent(self.config, n, generator)

    def seeded_point(self, seed: int, n: int = 1, controls: dict[str, Any] | None = None) -> Point:
        """The point of ``n`` latents from ``seed`` (a latent family's source)."""
        return Point({"latent": self.latents(n, seed)}, self.check_controls(controls),
                     {"seed": int(seed), "latent": LATENT_NOTE})

    def _prepared(self, source: dict[str, Any]) -> dict[str, "torch.Tensor"]:
        """Named arrays -> tensors scaled by the family's :meth:`~Family.prepare_source` (whole images)."""
        import torch

        tensors = {k: v if torch.is_tensor(v) else torch.as_tensor(_writable(np.asarray(v))) for k, v in source.items()}
        if getattr(source, "prepared", False):
            return tensors
        return self.family.prepare_source(self.config, tensors)

    def encode(self, source: dict[str, Any], precision: str = "fp32", batch_size: int = 16) -> dict[str, "torch.Tensor"]:
        """A source (named arrays as the user has them, first axis samples) -> the family's point state, in chunks."""
        import torch

        tensors = self._prepared(source)
        n = _batch_len(tensors)
        parts = []
        with torch.inference_mode(), inference_precision(self.device, precision):
            for start in range(0, n, batch_size):
                chunk = {k: v[start:start + batch_size].to(self.device) for k, v in tensors.items()}
                parts.append({k: v.float().cpu() for k, v in
                              self.family.encode(self.nets, self.config, chunk).items()})
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}

    def run(self, source: dict[str, Any] | Point, controls: dict[str, Any] | None = None, precision: str = "auto",
            batch_size: int = 16, tile: int | None = None, overlap: int = 32,
            progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
        """Outputs by name (numpy) for a source or a :class:`Point`, converted by output kind.

        A dict ``source`` is encoded first; with ``tile``, an image source is encoded
        and decoded tile by tile (overlap blended), so large images fit in memory.
        ``progress(done, total)`` is called after each chunk or tile.
        """
        import torch

        if isinstance(source, Point):
            state, values = source.state, {**source.controls, **(controls or {})}
            if tile:
                raise DataError("Tiling needs an image source, not an encoded point.")
        else:
            state, values = None, controls
        values = self.check_controls(values)
        kinds = {o.name: o.kind for o in self.outputs}
        if state is None and tile:
            raw = self._run_tiled(source, values, precision, tile, overlap, progress)
        else:
            if state is None:
                state = self.encode(source, precision=precision, batch_size=batch_size)
            raw = self._decode_chunks(state, values, precision, batch_size, progress)
        converted = {name: convert_output(kinds.get(name, IMAGE), tensor) for name, tensor in raw.items()}
        return self.family.finish(self.config, converted)

    def _decode_chunks(self, state, controls, precision, batch_size, progress) -> dict[str, "torch.Tensor"]:
        import torch

        n = _batch_len(state)
        per_sample = {k: v for k, v in controls.items() if _is_sequence(v)}
        for name, value in per_sample.items():
            if len(value) != n:
                raise DataError(f"The control '{name}' has {len(value)} values for {n} samples.")
        parts: list[dict[str, torch.Tensor]] = []
        total = -(-n // batch_size)
        with torch.inference_mode(), inference_precision(self.device, precision):
            for index, start in enumerate(range(0, n, batch_size)):
                chunk = {k: v[start:start + batch_size].to(self.device) for k, v in state.items()}
                chunk_controls = {**controls, **{k: torch.as_tensor(np.asarray(v)[start:start + batch_size])
                                                 .to(self.device) for k, v in per_sample.items()}}
                try:
                    outputs = self.family.decode(self.nets, self.config, chunk, chunk_controls)
                except (RuntimeError, MemoryError) as err:
                    if isinstance(err, MemoryError) or is_out_of_memory(err):
                        raise DeviceError(f"Out of memory on {self.device} while generating; use fewer samples, "
                                          "a smaller tile or the CPU.") from err
                    raise
                parts.append({k: v.float().cpu() for k, v in outputs.items()})
                if index == 0:
                    check_request_memory(parts[0], len(chunk[next(iter(chunk))]), n)
                if progress is not None:
                    progress(index + 1, total)
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}

    def _run_tiled(self, source, controls, precision, tile, overlap, progress) -> dict[str, "torch.Tensor"]:
        import torch

        from .tiling import run_tiled

        spatial = [i.name for i in self.run_inputs() if i.kind in (IMAGE, LABELS)]
        if len(spatial) != 1:
            raise DataError(f"The '{self.family.name}' family runs from no single image, so it cannot be tiled.")
        key = spatial[0]
        prepared = self._prepared(source)  # scaled as a whole: tiles must not rescale themselves
        image = prepared[key].float()
        others = {k: v for k, v in prepared.items() if k != key}

        def one_tile(crop):
            state = self.encode(_Prepared({key: crop, **others}), precision=precision, batch_size=len(crop))
            return self._decode_chunks(state, controls, precision, len(crop), None)

        return run_tiled(one_tile, image, tile, overlap, progress)

    # -- the seeded-GAN shortcuts (Generate, Explore, metrics) --------------------------------------
    def render(self, z: "torch.Tensor", condition: Any = None, precision: str = "auto",
               batch_size: int = 16) -> np.ndarray:
        """The main image output in [0, 1] (float32, (N, C, *sample_axes)) for latents ``z``."""
        outputs = self.run(Point({"latent": z}, dict(condition or {})), precision=precision, batch_size=batch_size)
        return outputs[self.main_output]

    def sample(self, n: int, seed: int = 0, precision: str = "auto", condition: Any = None) -> np.ndarray:
        """``n`` samples from ``seed``: the same model, seed and settings give identical pixels."""
        return self.render(self.latents(n, seed), condition, precision)

    @property
    def main_output(self) -> str:
        """The first image output: what previews, metrics and thumbnails show."""
        outputs = self.outputs
        return next((o.name for o in outputs if o.kind == IMAGE), outputs[0].name)

    def evaluate(self, real: "TrainingData", n: int = 256, seed: int = 0,
                 metric_set: str | None = None) -> dict[str, float]:
        """The family's metrics of ``n`` samples against real data prepared by ``family.prepare_data``.

        With no ``metric_set``, the family picks its default for this model.
        """
        from .dataset import as_training_data

        if n < 1:
            raise DataError("Evaluation needs at least one sample (-n 1 or more).")
        if metric_set is None:
            metric_set = self.family.default_metric_set(self.config, self.card)
        return self.family.metrics(self, as_training_data(real), n=n, seed=seed, metric_set=metric_set)

    @property
    def channels(self):
        return self.family.channels(self.config)

    @property
    def name(self) -> str:
        return self.card.get("name") or (self.path.stem if self.path else f"new {self.family.name}")

    def to(self, device: str) -> "GanModel":
        self.device = resolve_device(device)
        self.nets.to(self.device)
        return self

    def release(self) -> None:
        """Free the model's memory (off the GPU, caches emptied)."""
        release(self.nets)


#: the name every earlier script and test used
GanModel = Model


class _Prepared(dict):
    """A source already scaled by ``prepare_source`` (tiles of a prepared image)."""

    prepared = True


def convert_output(kind: str, tensor: "torch.Tensor") -> np.ndarray:
    """A raw decoded output -> what a layer shows: image [0, 1], signed as is, labels as class indices."""
    if kind == IMAGE:
        return tensor.float().clamp(-1, 1).add(1).mul(0.5).numpy()
    if kind == SIGNED:
        return tensor.float().numpy()
    if kind == LABELS:
        labels = tensor.argmax(1) if tensor.is_floating_point() else tensor
        return labels.to(dtype=_label_dtype(tensor)).numpy()
    raise DataError(f"Unknown output kind '{kind}'.")


def _label_dtype(tensor):
    import torch

    classes = tensor.shape[1] if tensor.is_floating_point() and tensor.ndim > 1 else 65536
    return torch.uint8 if classes <= 255 else torch.int32


def check_request_memory(first: dict[str, "torch.Tensor"], first_n: int, n: int) -> None:
    """Refuse, after the first chunk, a request whose outputs would not fit in memory (e.g. -n 10000000)."""
    from ..data.tiff_io import max_decoded_bytes

    per_sample = sum(v.element_size() * v.numel() for v in first.values()) / max(first_n, 1)
    needed = per_sample * n * 2  # the chunks and their concatenation
    limit = max_decoded_bytes()
    if needed > limit:
        raise DataError(f"{n} samples would need {needed / 1e9:.3g} GB of memory, more than the "
                        f"{limit / 1e9:.3g} GB that can be spared; ask for at most {int(limit // (per_sample * 2))}.")


def _writable(array: np.ndarray) -> np.ndarray:
    """torch warns on read-only arrays (a PIL image, a memory map): copy those, share the rest."""
    return array if array.flags.writeable else array.copy()


def _batch_len(tensors: dict[str, Any]) -> int:
    lengths = {len(v) for v in tensors.values()}
    if len(lengths) > 1:
        raise DataError("The inputs have different numbers of samples.")
    return lengths.pop() if lengths else 0


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray)) or (hasattr(value, "ndim") and getattr(value, "ndim") > 0)


def _read(path) -> tuple[dict, dict, str]:
    """Tensors, card and the sha256 of exactly the bytes read (a file replaced meanwhile cannot mix in)."""
    return checkpoint.read_model_file(path)


def _check_weights(family: Family, config, weights: dict[str, Any], name: str) -> None:
    """Refuse, before allocating anything, weights that do not fit the config or miss a needed network."""
    import torch

    try:
        with torch.device("meta"):  # shapes only: a card asking for a huge network costs nothing here
            expected = {k: tuple(v.shape) for k, v in family.build(config).state_dict().items()}
    except BioGanError:
        raise
    except Exception as err:
        raise ModelFileError(f"{name} describes a '{family.name}' network that cannot be built ({err}).") from None
    needed = [k for k in expected if k.split(".", 1)[0] in family.inference_nets]
    missing = [k for k in needed if k not in weights]
    if missing:
        nets = sorted({k.split(".", 1)[0] for k in missing})
        raise ModelFileError(f"{name} lacks the {', '.join(nets)} network(s) a '{family.name}' model needs to run.")
    unexpected = [k for k in weights if k not in expected]
    mismatched = [k for k, v in weights.items() if k in expected and tuple(v.shape) != expected[k]]
    if unexpected or mismatched:
        raise ModelFileError(f"The weights in {name} do not fit its '{family.name}' config "
                             f"({len(mismatched)} with other shapes, {len(unexpected)} unknown).")
