"""Moving MNIST as SAVGAN builds it, and the MNIST loaders."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from real_data import shared_data
from napari_biogan.core.errors import DataError
from napari_biogan.data.mnist import load_mnist_test, load_mnist_train
from napari_biogan.data.moving_mnist import bounce_positions, build_moving_mnist


def _digits(n=20, seed=0):
    """Fake 28x28 'digits': a solid 10x6 block, so positions can be read back exactly."""
    digits = np.zeros((n, 28, 28), np.uint8)
    digits[:, 9:19, 11:17] = 255
    return digits, np.arange(n) % 10


def _boxes(clips):
    """(row, column) of the block's top-left corner in every frame."""
    out = np.zeros(clips.shape[:2] + (2,), int)
    for i, clip in enumerate(clips):
        for t, frame in enumerate(clip):
            ys, xs = np.nonzero(frame)
            out[i, t] = ys.min(), xs.min()
    return out


def test_shape_range_and_determinism():
    digits, labels = _digits()
    a = build_moving_mnist(digits, 12, frames=10, size=64, seed=3)
    b = build_moving_mnist(digits, 12, frames=10, size=64, seed=3)
    c = build_moving_mnist(digits, 12, frames=10, size=64, seed=4)
    assert a.shape == (12, 10, 64, 64) and a.dtype == np.float32
    assert a.min() == 0.0 and a.max() == 1.0
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    clips, clip_labels = build_moving_mnist(digits, 12, seed=3, labels=labels, return_labels=True)
    assert np.array_equal(clips, a) and clip_labels.shape == (12,) and clip_labels.dtype == np.int64


def test_one_digit_stays_in_frame_and_moves_horizontally_at_constant_speed():
    digits, _ = _digits()
    clips = build_moving_mnist(digits, 200, frames=10, seed=0)
    # the whole digit is always in view: every frame holds the full 60 pixels of the block
    assert np.all((clips > 0).sum(axis=(2, 3)) == 60)
    boxes = _boxes(clips)
    assert np.all(boxes[:, :, 0] == boxes[:, :1, 0])              # the row never changes
    assert boxes[:, :, 1].min() >= 0 and boxes[:, :, 1].max() <= 64 - 28 + 11
    columns = boxes[:, :, 1] - 11                                 # the digit's left edge, 0..36
    steps = np.diff(columns, axis=1)
    speed = np.abs(steps).max(axis=1)
    assert np.all(speed >= 2) and np.all(speed <= 5)                # speeds 2..5 pixels per frame
    # constant speed: each step is the full speed, or an exact reflection off the left/right border
    a, b, v = columns[:, :-1], columns[:, 1:], speed[:, None]
    full = np.abs(steps) == v
    off_right = a + b + v == 2 * 36
    off_left = a + b == v
    assert np.all(full | off_right | off_left)
    assert full.mean() > 0.8


def test_bounces_reflect_at_the_borders():
    # triangle wave on 0..36: 30 -> 34 -> 36 (bounce) -> 32 ...; the speed is kept through the bounce
    assert list(bounce_positions(30, 4, 5, 36)) == [30, 34, 34, 30, 26]
    assert list(bounce_positions(2, 3, 4, 36)) == [2, 5, 8, 11]
    digits, _ = _digits()
    boxes = _boxes(build_moving_mnist(digits, 300, frames=10, seed=1))[:, :, 1]
    signs = np.sign(np.diff(boxes, axis=1))
    bounced = (np.diff(signs, axis=1) != 0).any(axis=1)
    assert 0.2 < bounced.mean() < 0.9           # many clips bounce within 10 frames, not all
    # every direction change happens at a border: the digit's left edge near column 0 or 36
    columns = boxes - 11
    for clip, sign in zip(columns, signs):
        for t in np.nonzero(np.diff(sign) != 0)[0]:
            window = clip[t:t + 3]
            assert window.min() <= 5 or window.max() >= 31


def test_bad_inputs_raise_data_errors():
    with pytest.raises(DataError):
        build_moving_mnist(np.zeros((3, 80, 80)), 2)
    with pytest.raises(DataError):
        build_moving_mnist(np.zeros((3, 28)), 2)
    with pytest.raises(DataError):
        build_moving_mnist(np.zeros((3, 28, 28)), 2, return_labels=True)


def test_mnist_loaders_on_real_data():
    folder = shared_data("mnist")
    x, y = load_mnist_train(folder)
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8 and set(np.unique(y)) == set(range(10))
    xt, yt = load_mnist_test(folder)
    assert xt.shape == (10000, 28, 28) and yt.shape == (10000,) and xt.max() == 255
    assert list(yt[:5]) == [7, 2, 1, 0, 4]    # the first MNIST test labels, as published
    clips, labels = build_moving_mnist(xt[:50], 5, labels=yt[:50], return_labels=True)
    assert clips.shape == (5, 10, 64, 64) and np.all(labels < 10)


def test_mnist_missing_or_damaged(tmp_path):
    with pytest.raises(DataError, match="not at"):
        load_mnist_train(tmp_path)
    with pytest.raises(DataError, match="t10k"):
        load_mnist_test(tmp_path)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"\x00\x00\x08\x03" + np.array([10, 28, 28], ">i4").tobytes() + b"\x00" * 100)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(b"\x00\x00\x08\x01" + np.array([10], ">i4").tobytes() + b"\x00" * 10)
    with pytest.raises(DataError, match="truncated"):
        load_mnist_test(tmp_path)
