"""Every metric a shipped model's card reports is shown in plain words (Model card, Evaluate, CSV)."""

from __future__ import annotations

from napari_biogan.core import checkpoint
from napari_biogan.core.zoo import list_models
from napari_biogan.metrics import describe_metric

#: suffixes shown beside their metric rather than as rows of their own
BESIDE = ("_real", "_real_std", "_mad")


def test_every_shipped_metric_has_a_plain_label_and_meaning():
    raw = []
    for info in list_models():
        if not info.shipped:
            continue
        metrics = checkpoint.read_card(info.path).get("metrics") or {}
        for key, value in metrics.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or key.endswith(BESIDE):
                continue
            label, meaning = describe_metric(key)
            if label == key or not meaning:
                raw.append(f"{info.name}: {key}")
    assert not raw, "metric keys without plain words: " + ", ".join(raw)


def test_c2st_keys_read_as_words():
    assert describe_metric("c2st_quick_YFP") == (
        "C2ST (quick setting), YFP", describe_metric("c2st_quick")[1])
    assert describe_metric("c2st_quick_std")[0] == "C2ST (quick setting) spread"
    assert describe_metric("c2st")[0] == "C2ST"
