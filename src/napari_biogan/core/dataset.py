"""Training data as named fields (images, labels, classes, attributes...), indexed once per batch.

A field is either a tensor already in memory, or a lazy source (a memory-mapped
``.npy``, the pages of a TIFF, a zarr array: anything with ``len()`` and
indexing by an integer array) plus a ``transform`` that turns the fetched rows
into a tensor (normalisation, resizing). Lazy fields let data bigger than memory
train: only the rows of one batch are ever read.

Every field is indexed with the SAME sample indices, and random flips are
applied to every spatial field with the SAME coins, so an image and its mask
stay aligned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import numpy as np

from .errors import DataError

if TYPE_CHECKING:
    import torch


@dataclass
class Field:
    """One named field: ``source`` rows -> tensors; ``spatial`` trailing axes take part in flips."""

    source: Any  # torch.Tensor, or a lazy indexable source
    spatial: int = 0  # how many trailing axes are spatial (flipped with the images); 0: not spatial
    transform: Callable[[np.ndarray], "torch.Tensor"] | None = None  # lazy sources only

    def __len__(self) -> int:
        return len(self.source)

    @property
    def lazy(self) -> bool:
        import torch

        return not torch.is_tensor(self.source)

    def take(self, index: "torch.Tensor") -> "torch.Tensor":
        """The rows at ``index`` (a 1-D integer tensor) as a new tensor."""
        import torch

        if not self.lazy:
            return self.source[index]
        order = index.numpy()
        unique, inverse = np.unique(order, return_inverse=True)  # read each row once, in file order
        rows = np.asarray(self.source[unique])[inverse]
        out = self.transform(rows) if self.transform is not None else torch.from_numpy(np.array(rows))
        return out


class TrainingData:
    """Named fields of equal length: what the training loop draws batches from."""

    def __init__(self, fields: Mapping[str, "Field | torch.Tensor"], description: str = ""):
        import torch

        self.fields: dict[str, Field] = {}
        for name, value in fields.items():
            if torch.is_tensor(value):
                value = Field(value, spatial=max(0, value.ndim - 2))
            self.fields[name] = value
        if not self.fields:
            raise DataError("The training data has no fields.")
        lengths = {name: len(f) for name, f in self.fields.items()}
        if len(set(lengths.values())) != 1:
            detail = ", ".join(f"{n}: {k}" for n, k in lengths.items())
            raise DataError(f"The training inputs have different numbers of samples ({detail}).")
        if next(iter(lengths.values())) == 0:
            raise DataError("The training data is empty.")
        self.description = description

    def __len__(self) -> int:
        return len(next(iter(self.fields.values())))

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def __getitem__(self, name: str) -> Field:
        return self.fields[name]

    @property
    def names(self) -> list[str]:
        return list(self.fields)

    def take(self, index: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        """Every field at the same sample ``index``."""
        return {name: f.take(index) for name, f in self.fields.items()}

    def head(self, n: int) -> dict[str, "torch.Tensor"]:
        """The first ``n`` samples of every field (evaluation, previews)."""
        import torch

        return self.take(torch.arange(min(n, len(self))))

    def batch(self, size: int, rng: "torch.Generator", flip_axes: Iterable[int] = (),
              reference: str | None = None) -> dict[str, "torch.Tensor"]:
        """``size`` random samples; each flip axis gets one coin per sample, shared by all spatial fields.

        ``flip_axes`` count in the layout of the ``reference`` field (the first
        spatial one by default), e.g. (3, 4) flips Y and X of (N, C, T, Y, X) videos;
        they are mapped to each field's own trailing spatial axes.
        """
        import torch

        index = torch.randint(len(self), (size,), generator=rng)
        batch = self.take(index)
        axes = [int(a) for a in flip_axes]
        if not axes:
            return batch
        ref = reference or next((n for n, f in self.fields.items() if f.spatial), None)
        if ref is None:
            return batch
        ref_ndim = batch[ref].ndim
        for axis in axes:
            from_end = axis - ref_ndim if axis >= 0 else axis  # e.g. -1 is X in every spatial field
            flip = torch.rand(size, generator=rng) < 0.5
            if not flip.any():
                continue
            for name, f in self.fields.items():
                if f.spatial and -from_end <= f.spatial:
                    tensor = batch[name]
                    tensor[flip] = tensor[flip].flip(from_end)
        return batch


def as_training_data(data: Any, name: str = "image") -> TrainingData:
    """A :class:`TrainingData` from itself, a dict of fields, or one tensor (the ``name`` field)."""
    import torch

    if isinstance(data, TrainingData):
        return data
    if isinstance(data, Mapping):
        return TrainingData(data)
    if torch.is_tensor(data):
        if data.ndim < 3:
            raise DataError("Training data is empty or has no image axes.")
        return TrainingData({name: data})
    raise DataError(f"Cannot train on {type(data).__name__}; expected prepared training data.")
