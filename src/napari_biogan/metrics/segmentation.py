"""Segmentation metrics: pixel scores per class (the seed's tables) and object-level F1 at IoU 0.5.

Pure numpy / scipy, no torch. Pixel scores come from one confusion matrix summed
over all images (micro average, as the seed reports them); object scores match
ground-truth and predicted instances one to one at IoU > 0.5 (above 0.5 a match
is unique, so no assignment solver is needed) and sum TP / FP / FN over images.

Instances come from class maps with :func:`instances_from_classes`: connected
components of the interior class, grown into the boundary class (each boundary
pixel joins its nearest interior component); boundary pixels no interior
reaches form instances of their own (small nuclei predicted as boundary only).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

#: the object-matching threshold of "object F1" (Caicedo et al. 2019 report F1 at IoU 0.5 and above)
IOU_THRESHOLD = 0.5


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts (classes x classes): rows are true classes, columns predicted ones."""
    true, predicted = np.asarray(true).ravel(), np.asarray(predicted).ravel()
    if true.shape != predicted.shape:
        raise ValueError(f"True and predicted maps differ in size ({true.size} vs {predicted.size} pixels).")
    index = true.astype(np.int64) * classes + predicted.astype(np.int64)
    return np.bincount(index, minlength=classes * classes)[:classes * classes].reshape(classes, classes)


def class_scores(matrix: np.ndarray, names: Sequence[str] | None = None) -> dict[str, float]:
    """Per-class precision, recall, F1 and IoU, their means over classes, and accuracy, from a confusion matrix.

    A class absent from both truth and prediction scores 1 (nothing to get wrong).
    Keys: ``f1_<name>``, ``iou_<name>``, ``precision_<name>``, ``recall_<name>``,
    ``mean_f1``, ``mean_iou``, ``mean_precision``, ``mean_recall``, ``accuracy``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    k = len(matrix)
    names = list(names or []) + [f"class{i}" for i in range(len(names or []), k)]
    tp = np.diag(matrix)
    fp, fn = matrix.sum(0) - tp, matrix.sum(1) - tp
    scores: dict[str, float] = {}
    per = {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
           "f1": _ratio(2 * tp, 2 * tp + fp + fn), "iou": _ratio(tp, tp + fp + fn)}
    for metric in ("f1", "iou", "precision", "recall"):
        for i in range(k):
            scores[f"{metric}_{_key(names[i])}"] = float(per[metric][i])
    for metric in ("f1", "iou", "precision", "recall"):
        scores[f"mean_{metric}"] = float(per[metric].mean())
    scores["accuracy"] = float(tp.sum() / max(matrix.sum(), 1))
    return scores


def foreground_f1(true: np.ndarray, predicted: np.ndarray) -> float:
    """Pixel F1 of "any object class" against background (what a thresholding baseline is scored on)."""
    t, p = np.asarray(true) > 0, np.asarray(predicted) > 0
    tp = float(np.sum(t & p))
    denominator = float(t.sum() + p.sum())
    return 1.0 if denominator == 0 else 2 * tp / denominator


def instances_from_classes(labels_map: np.ndarray, interior: int = 1, boundary: int | None = 2,
                           min_size: int = 0, erode: int = 0) -> np.ndarray:
    """Instance labels (int32, 0 = background) from a class map (Y, X).

    Connected components (4-connected) of the ``interior`` class, optionally eroded
    ``erode`` pixels first (cuts thin necks where a predicted boundary has a gap), then
    grown back into the interior and ``boundary`` pixels: each joins the component
    nearest to it (Euclidean) within its own connected foreground region, so two nuclei
    split by a predicted boundary stay apart. Foreground regions that hold no component
    (boundary only, or too thin to survive the erosion) become instances of their own.
    Objects smaller than ``min_size`` pixels are dropped. With ``boundary=None`` the
    result is the components of ``interior`` (grown back after any erosion).
    """
    from scipy import ndimage

    labels_map = np.asarray(labels_map)
    if labels_map.ndim != 2:
        raise ValueError(f"A class map has two axes (Y, X), not {labels_map.ndim}.")
    inside = labels_map == interior
    foreground = inside | (labels_map == boundary) if boundary is not None else inside
    seeds = ndimage.binary_erosion(inside, iterations=erode, border_value=1) if erode > 0 else inside
    cores, count = ndimage.label(seeds)
    instances = cores.astype(np.int32)
    rest = foreground & (cores == 0)
    if count and rest.any():
        # nearest seed pixel of every pixel (indices of the nearest zero of "not a seed")
        _, (iy, ix) = ndimage.distance_transform_edt(cores == 0, return_indices=True)
        # only within the same foreground region: a boundary pixel never jumps over background
        regions, _ = ndimage.label(foreground)
        grow = rest & (regions[iy, ix] == regions)
        instances[grow] = cores[iy, ix][grow]
        _grow_geodesic(instances, rest)
    leftover, extra = ndimage.label(foreground & (instances == 0))
    if extra:
        instances[leftover > 0] = leftover[leftover > 0] + instances.max()
    if min_size > 0 and instances.max():
        sizes = np.bincount(instances.ravel())
        small = sizes < min_size
        small[0] = False
        instances[small[instances]] = 0
    return _relabel(instances)


def _grow_geodesic(instances: np.ndarray, edge: np.ndarray, limit: int = 10_000) -> None:
    """Give boundary pixels still unassigned (their nearest interior lay across background) the label
    of an assigned 4-neighbour, step by step inside the boundary class (in place)."""
    from scipy import ndimage

    cross = ndimage.generate_binary_structure(2, 1)
    for _ in range(limit):
        todo = edge & (instances == 0)
        if not todo.any():
            return
        grown = ndimage.grey_dilation(instances, footprint=cross)
        take = todo & (grown > 0)
        if not take.any():
            return
        instances[take] = grown[take]


def _relabel(instances: np.ndarray) -> np.ndarray:
    """Consecutive ids 1..n in order of first appearance of the sorted ids (stable, background kept 0)."""
    ids = np.unique(instances)
    ids = ids[ids > 0]
    lookup = np.zeros(int(instances.max()) + 1, dtype=np.int32)
    lookup[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lookup[instances]


def match_instances(true: np.ndarray, predicted: np.ndarray,
                    threshold: float = IOU_THRESHOLD) -> tuple[int, int, int, list[float]]:
    """(TP, FP, FN, IoUs of the matches) for two instance maps; a match needs IoU > ``threshold``.

    With a threshold of 0.5 or more, each object has at most one partner above it,
    so the matching is unique without an assignment solver.
    """
    true, predicted = np.asarray(true).ravel(), np.asarray(predicted).ravel()
    n_true, n_pred = int(true.max(initial=0)), int(predicted.max(initial=0))
    true_ids, pred_ids = np.unique(true[true > 0]), np.unique(predicted[predicted > 0])
    if not len(true_ids) or not len(pred_ids):
        return 0, len(pred_ids), len(true_ids), []
    overlap = np.bincount(true.astype(np.int64) * (n_pred + 1) + predicted.astype(np.int64),
                          minlength=(n_true + 1) * (n_pred + 1)).reshape(n_true + 1, n_pred + 1)
    true_area, pred_area = overlap.sum(1), overlap.sum(0)
    inter = overlap[1:, 1:].astype(np.float64)
    union = true_area[1:, None] + pred_area[None, 1:] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    if threshold >= 0.5:
        hits = iou > threshold
    else:  # greedy one-to-one by descending IoU (not used by the default metrics)
        hits = np.zeros_like(iou, dtype=bool)
        for flat in np.argsort(-iou, axis=None):
            i, j = np.unravel_index(flat, iou.shape)
            if iou[i, j] <= threshold:
                break
            if not hits[i].any() and not hits[:, j].any():
                hits[i, j] = True
    tp = int(hits.sum())
    return tp, len(pred_ids) - tp, len(true_ids) - tp, [float(v) for v in iou[hits]]


def object_f1(tp: int, fp: int, fn: int) -> float:
    """2 TP / (2 TP + FP + FN); 1 when there is nothing to find and nothing was found."""
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2 * tp / denominator


def segmentation_scores(true_maps: Iterable[np.ndarray], predicted_maps: Iterable[np.ndarray],
                        class_names: Sequence[str], interior: int = 1, boundary: int | None = 2,
                        true_instances: Iterable[np.ndarray] | None = None,
                        predicted_instances: Iterable[np.ndarray] | None = None,
                        instance_rule: dict | None = None) -> dict[str, float]:
    """Every score of a set of images: pixel scores per class and their means, foreground F1,
    and object precision / recall / F1 at IoU 0.5 (instances from the class maps unless given:
    the truth's plainly, the prediction's with ``instance_rule``, e.g. {"erode": 2, "min_size": 10}).
    """
    true_maps, predicted_maps = [np.asarray(t) for t in true_maps], [np.asarray(p) for p in predicted_maps]
    if len(true_maps) != len(predicted_maps):
        raise ValueError("True and predicted maps differ in number.")
    k = len(class_names)
    matrix = np.zeros((k, k), dtype=np.int64)
    fg_tp = fg_true = fg_pred = 0
    tp = fp = fn = 0
    true_inst = list(true_instances) if true_instances is not None else [None] * len(true_maps)
    pred_inst = list(predicted_instances) if predicted_instances is not None else [None] * len(true_maps)
    for t, p, ti, pi in zip(true_maps, predicted_maps, true_inst, pred_inst):
        matrix += confusion_matrix(t, p, k)
        fg_tp += int(np.sum((t > 0) & (p > 0)))
        fg_true += int(np.sum(t > 0))
        fg_pred += int(np.sum(p > 0))
        ti = instances_from_classes(t, interior, boundary) if ti is None else ti
        pi = instances_from_classes(p, interior, boundary, **(instance_rule or {})) if pi is None else pi
        a, b, c, _ = match_instances(ti, pi)
        tp, fp, fn = tp + a, fp + b, fn + c
    scores = class_scores(matrix, class_names)
    scores["foreground_f1"] = 1.0 if fg_true + fg_pred == 0 else 2 * fg_tp / (fg_true + fg_pred)
    scores["object_precision"] = tp / (tp + fp) if tp + fp else 1.0
    scores["object_recall"] = tp / (tp + fn) if tp + fn else 1.0
    scores["object_f1"] = object_f1(tp, fp, fn)
    scores["objects_true"] = float(tp + fn)
    scores["objects_predicted"] = float(tp + fp)
    return scores


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.ones_like(numerator, dtype=np.float64), where=denominator > 0)


def _key(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower()) or "class"
