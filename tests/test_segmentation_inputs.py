"""Labels inputs as annotation tools write them (data/inputs.py): a label image per image matched by stem,
one mask per class in sub-folders (masks/<class>/<stem>.png) or beside each other (masks/<stem>_<class>.png),
and one sentence for each mistake: sizes that differ, values outside the declared classes, an image without
a mask, no foreground at all."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_biogan.core.errors import DataError
from napari_biogan.core.registry import get_family
from napari_biogan.data.inputs import load_training_inputs

TINY = dict(base_width=4, depth=2, disc_width=4, crop=16, landmarks=8)
STEMS = ("field2", "field10")  # natural order: field2 before field10 (plain sorting would swap them)


def labels_of(index: int, size: int = 16) -> np.ndarray:
    """0 background, a square of class 1 with a rim of class 2, placed by ``index``."""
    labels = np.zeros((size, size), np.uint8)
    labels[2 + index:10 + index, 3:11] = 2
    labels[3 + index:9 + index, 4:10] = 1
    return labels


def write_images(root, size: int = 16):
    folder = root / "images"
    folder.mkdir()
    for index, stem in enumerate(STEMS):
        tifffile.imwrite(folder / f"{stem}.tif", (labels_of(index, size).astype(np.uint16) * 300 + 50))
    return folder


def save_mask(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def load(images, masks, **config):
    family = get_family("segmentation")
    config = family.default_config(**{**TINY, **config})
    loaded = load_training_inputs(family, config, {"image": str(images), "labels": str(masks)})
    family.prepare_data(loaded, config)  # the family accepts what the loader gives
    return loaded["labels"]


def expected() -> np.ndarray:
    return np.stack([labels_of(i) for i in range(len(STEMS))])


def test_label_images_are_matched_to_their_images_by_stem(tmp_path):
    images, masks = write_images(tmp_path), tmp_path / "masks"
    for index, stem in enumerate(STEMS):  # names sort the other way round: matched by stem, not by order
        save_mask(masks / f"{stem}_mask.png", labels_of(index))
    np.testing.assert_array_equal(load(images, masks), expected())


@pytest.mark.parametrize("layout", ["sub-folders", "suffixes"])
def test_one_mask_per_class_gives_the_declared_class_values(tmp_path, layout):
    images, masks = write_images(tmp_path), tmp_path / "masks"
    for index, stem in enumerate(STEMS):
        for value, name in ((1, "interior"), (2, "boundary")):
            path = masks / name / f"{stem}.png" if layout == "sub-folders" else masks / f"{stem}_{name}.png"
            save_mask(path, (labels_of(index) == value) * 255)
    # the config's class names (background, interior, boundary) give the values, not the name order
    np.testing.assert_array_equal(load(images, masks), expected())


def test_class_names_the_config_does_not_declare_are_taken_in_name_order(tmp_path):
    images, masks = write_images(tmp_path), tmp_path / "masks"
    for index, stem in enumerate(STEMS):
        save_mask(masks / "nucleus" / f"{stem}.png", (labels_of(index) > 0) * 255)
    labels = load(images, masks, classes=2)
    np.testing.assert_array_equal(labels, (expected() > 0).astype(labels.dtype))


@pytest.mark.parametrize("mistake, message", [
    ("size", r"The mask field2_mask.png is 12x12 but the image field2 is 16x16; they must be the same size"),
    ("class size", r"The mask field10.png is 12x12 but the image field10 is 16x16"),
    ("value", r"Label values must be 0 to 2 for 3 classes, but the masks hold values from 0 to 5 "
              r"\(first in field10\)"),
    ("too many classes", r"Label values must be 0 to 1 for 2 classes"),
    ("undeclared class", "has masks of the class 'debris', which is not one of the declared classes "
                         "interior, boundary"),
    ("no mask", r"The image field10 has no mask in .*masks \(looked for field10.png/.tif"),
    ("no class mask", "The image field10 has no 'boundary' mask in masks"),
    ("no foreground", "The masks hold no foreground at all"),
    ("layer", "give the images as a folder, not a layer"),
])
def test_mistakes_in_mask_folders_are_one_sentence(tmp_path, mistake, message):
    images, masks = write_images(tmp_path), tmp_path / "masks"
    config = {"classes": 2} if mistake == "too many classes" else {}
    for index, stem in enumerate(STEMS):
        labels = labels_of(index)
        if mistake == "size" and index == 0:
            save_mask(masks / f"{stem}_mask.png", labels[:12, :12])
        elif mistake == "value" and index == 1:
            save_mask(masks / f"{stem}.png", np.where(labels == 2, 5, labels))
        elif mistake == "no mask" and index == 1:
            continue
        elif mistake == "no foreground":
            save_mask(masks / f"{stem}.png", np.zeros_like(labels))
        elif mistake in ("class size", "too many classes", "undeclared class", "no class mask", "layer"):
            for value, name in ((1, "interior"), (2, "boundary")):
                plane = (labels == value) * 255
                if mistake == "class size" and index == 1:
                    plane = plane[:12, :12]
                if not (mistake == "no class mask" and index == 1 and name == "boundary"):
                    save_mask(masks / name / f"{stem}.png", plane)
            if mistake in ("too many classes", "undeclared class"):
                save_mask(masks / ("debris" if mistake == "undeclared class" else "zz") / f"{stem}.png",
                          np.zeros_like(labels))
        else:
            save_mask(masks / f"{stem}.png", labels)
    if mistake == "too many classes":  # three class folders named as the config does not: 1, 2, 3 by name
        (masks / "interior").rename(masks / "aa")
        (masks / "boundary").rename(masks / "bb")
    if mistake == "layer":  # images from a layer have no names to match class folders by
        images = tifffile.imread(next(images.iterdir()))[None]
    with pytest.raises(DataError, match=message):
        family = get_family("segmentation")
        cfg = family.default_config(**{**TINY, **config})
        sources = {"image": images if not isinstance(images, type(tmp_path)) else str(images), "labels": str(masks)}
        load_training_inputs(family, cfg, sources)
