"""Fréchet distance between two sets of feature vectors (the statistic behind FID/FVD)."""

from __future__ import annotations

import numpy as np


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) for features (n, d)."""
    a = np.asarray(features_a, dtype=np.float64).reshape(len(features_a), -1)
    b = np.asarray(features_b, dtype=np.float64).reshape(len(features_b), -1)
    if a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError("Fréchet distance needs two sets of at least 2 vectors of the same length.")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr sqrt(S_a S_b) = sum sqrt(eig(sqrt(S_a) S_b sqrt(S_a))): symmetric, so eigh is stable.
    vals, vecs = np.linalg.eigh(cov_a)
    root_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    return float(max(value, 0.0))


def pixel_features(images: np.ndarray, size: int = 16) -> np.ndarray:
    """Cheap, network-free features: images (n, C, ..., Y, X) average-pooled to size x size."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    x = x.reshape(len(x), -1, *x.shape[-2:])
    return F.adaptive_avg_pool2d(x, size).flatten(1).numpy()
