"""The shipped digit classifier used by the Moving-MNIST metrics (flips/seq, cosTS, digit FVD).

The paper used a ResNet-18 trained on MNIST; we ship a small CNN that runs on a
CPU in milliseconds and reads 64x64 Moving-MNIST frames directly: it was
trained on MNIST training digits pasted at random positions of a black 64x64
canvas (every position the digit fits), so the frame needs no cropping or
centring. Four stride-2 convolutions (5x5 then 3x3; BatchNorm, ReLU) and a
global max-pool make it translation-tolerant; a 512-d ReLU layer follows, the
**penultimate feature** used for cosTS (512-d like ResNet-18's), then a
10-way linear layer. Rebuild it with ``scripts/build_digit_classifier.py``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataError, ModelFileError

CANVAS = 64
FEATURE_DIM = 512
DIGIT_CLASSIFIER_FILE = Path(__file__).resolve().parent.parent / "zoo" / "digit-classifier.safetensors"
WIDTHS = (32, 64, 128, 192)


def build_digit_net():
    """The untrained network: (n, 1, 64, 64) in [0, 1] -> logits (n, 10); ``.features`` gives (n, 512)."""
    import torch
    from torch import nn

    class DigitNet(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c_in = [], 1
            for i, c_out in enumerate(WIDTHS):
                k = 5 if i == 0 else 3
                layers += [nn.Conv2d(c_in, c_out, k, 2, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
                c_in = c_out
            self.trunk = nn.Sequential(*layers)
            self.embed = nn.Sequential(nn.Linear(c_in, FEATURE_DIM), nn.ReLU(True))
            self.head = nn.Linear(FEATURE_DIM, 10)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            # max over positions: the answer does not depend on where the digit is
            return self.embed(torch.amax(self.trunk(x), dim=(2, 3)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x))

    return DigitNet()


def place_digits(digits: np.ndarray, rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """Digits (n, h, w) in [0, 1] pasted at random positions of black size x size canvases."""
    n, h, w = digits.shape
    canvases = np.zeros((n, size, size), dtype=np.float32)
    ys = rng.integers(0, size - h + 1, n)
    xs = rng.integers(0, size - w + 1, n)
    for i in range(n):
        canvases[i, ys[i]:ys[i] + h, xs[i]:xs[i] + w] = digits[i]
    return canvases


class DigitClassifier:
    """A loaded digit classifier: ``predict`` labels and ``features`` (512-d) of frames in [0, 1]."""

    feature_dim = FEATURE_DIM

    def __init__(self, net, card: dict[str, Any], batch_size: int = 512):
        self.net = net.eval()
        self.card = card
        self.batch_size = batch_size

    def labels_and_features(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels (...) and 512-d features (..., 512) of frames (..., Y, X) in [0, 1], in one pass."""
        logits, feats = self._run(frames)
        return logits.argmax(-1), feats

    def _run(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch
        import torch.nn.functional as F

        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim < 2:
            raise DataError(f"Frames must be (..., Y, X) images; got shape {frames.shape}.")
        lead = frames.shape[:-2]
        flat = torch.from_numpy(np.ascontiguousarray(frames.reshape(-1, 1, *frames.shape[-2:])))
        logits, feats = [torch.zeros(0, 10)], [torch.zeros(0, FEATURE_DIM)]
        with torch.inference_mode():
            for chunk in flat.split(self.batch_size):
                if tuple(chunk.shape[-2:]) != (CANVAS, CANVAS):
                    chunk = F.interpolate(chunk, size=(CANVAS, CANVAS), mode="bilinear", align_corners=False)
                feats.append(self.net.features(chunk))
                logits.append(self.net.head(feats[-1]))
        return (torch.cat(logits).numpy().reshape(*lead, 10),
                torch.cat(feats).numpy().reshape(*lead, FEATURE_DIM))

    def logits(self, frames: np.ndarray) -> np.ndarray:
        """Class scores (..., 10) for frames (..., Y, X) in [0, 1]; other sizes are resized to 64x64."""
        return self._run(frames)[0]

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """Digit labels (...) for frames (..., Y, X) in [0, 1]."""
        return self.logits(frames).argmax(-1)

    def features(self, frames: np.ndarray) -> np.ndarray:
        """Penultimate 512-d features (..., 512) for frames (..., Y, X) in [0, 1]."""
        return self._run(frames)[1]


def load_digit_classifier(path: str | os.PathLike | None = None) -> DigitClassifier:
    """The shipped classifier (or one at ``path``), loaded from safetensors: no pickle."""
    return _load(str(Path(path) if path is not None else DIGIT_CLASSIFIER_FILE))


@functools.lru_cache(maxsize=2)
def _load(path: str) -> DigitClassifier:
    from ..core.checkpoint import load_tensors

    tensors, card = load_tensors(path)
    if card.get("kind") != "digit-classifier":
        raise ModelFileError(f"{Path(path).name} is not a napari-biogan digit classifier.")
    net = build_digit_net()
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    except RuntimeError as err:
        raise ModelFileError(f"{Path(path).name} does not match this version's digit classifier.") from err
    return DigitClassifier(net, card)
