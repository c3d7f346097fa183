"""The clips the shipped video models were trained on and are compared with.

One definition for ``scripts/build_zoo_video.py`` (training, the metrics in the
cards) and ``benchmarks/bench_video_models.py`` (the comparison tables), so the
two can never evaluate against different clips.
"""

from __future__ import annotations

import numpy as np

#: Moving MNIST clips in the training set (the paper's count) and in the held-out set
MMNIST_TRAIN_CLIPS = 2225
MMNIST_HELD_OUT_CLIPS = 256
DATASETS = ("mmnist", "t98g")


def zoo_training_clips(dataset: str, frames: int, seed: int = 0, n: int = MMNIST_TRAIN_CLIPS) -> np.ndarray:
    """Training clips (N, T, Y, X) in [0, 1].

    "mmnist": ``n`` clips of one MNIST *training* digit bouncing horizontally on 64x64.
    "t98g": every ``frames`` x 32 x 32 clip around moving cells of the Usiigaci T98G
    movie, 4 frames apart where they overlap (the movie has only 37 frames).
    """
    if dataset == "mmnist":
        from .moving_mnist import load_moving_mnist

        return load_moving_mnist(n_clips=n, frames=frames, size=64, seed=seed, split="train")
    if dataset == "t98g":
        from .clips import t98g_clips

        return t98g_clips(size=(frames, 32, 32), time_stride=4)[0]
    raise ValueError(f"Unknown zoo data set '{dataset}'; choose one of {', '.join(DATASETS)}.")


def zoo_reference_clips(dataset: str, frames: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """The real clips generated clips are measured against, and what they are.

    Moving MNIST: 256 held-out clips of MNIST *test* digits (``seed + 1``). T98G: the
    training clips themselves; the movie has no others, so its metrics measure fit.
    """
    if dataset == "mmnist":
        from .moving_mnist import load_moving_mnist

        clips = load_moving_mnist(n_clips=MMNIST_HELD_OUT_CLIPS, frames=frames, size=64, seed=seed + 1,
                                  split="test")
        return clips, f"{len(clips)} held-out clips (MNIST test digits)"
    clips = zoo_training_clips(dataset, frames, seed)
    return clips, f"the {len(clips)} training clips"
