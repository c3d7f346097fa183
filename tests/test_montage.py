"""core/montage.py: samples tiled in a near-square grid, videos per frame, generated beside real."""

import numpy as np
import pytest

from napari_biogan.core.errors import DataError
from napari_biogan.core.montage import MAX_SAMPLES, grid_shape, montage_pair, side_by_side, tile


def _numbered(n, *shape):
    """Sample i is filled with the value i + 1 (0 is left for the empty grid cells)."""
    return np.stack([np.full(shape, i + 1, np.float32) for i in range(n)])


@pytest.mark.parametrize("n, expected", [(1, (1, 1)), (2, (1, 2)), (4, (2, 2)), (5, (2, 3)), (10, (3, 4)),
                                         (64, (8, 8))])
def test_grid_is_near_square(n, expected):
    assert grid_shape(n) == expected


def test_tiles_row_by_row_with_a_gap():
    stack = _numbered(5, 4, 6)
    out = tile(stack, gap=2, fill=-1, empty=0)
    assert out.shape == (2 * 4 + 2, 3 * 6 + 2 * 2)  # 2 rows x 3 columns
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(out[r * 6:r * 6 + 4, c * 8:c * 8 + 6], i + 1)
    assert (out[4:6, :] == -1).all() and (out[:, 6:8] == -1).all()  # the gaps
    assert (out[6:, 16:] == 0).all()  # the sixth cell has no sample
    assert out.dtype == np.float32


def test_default_gap_is_bright_and_empty_cells_dark():
    out = tile(_numbered(3, 2, 2), gap=1)
    assert out[2, 0] == 3 and out[0, 2] == 3  # the samples' maximum
    assert (out[3:, 3:] == 1).all()  # the fourth cell: the minimum


def test_video_samples_are_tiled_per_frame_and_keep_t():
    video = np.arange(4 * 3 * 2 * 2, dtype=np.float32).reshape(4, 3, 2, 2)  # N, T, Y, X
    out = tile(video, gap=1)
    assert out.shape == (3, 5, 5)  # T kept: the montage plays
    for t in range(3):
        np.testing.assert_array_equal(out[t, :2, :2], video[0, t])
        np.testing.assert_array_equal(out[t, :2, 3:], video[1, t])
        np.testing.assert_array_equal(out[t, 3:, :2], video[2, t])
        np.testing.assert_array_equal(out[t, 3:, 3:], video[3, t])


def test_channel_axis_kept_and_labels_stay_integers():
    labels = np.random.default_rng(0).integers(0, 4, (3, 2, 5, 5)).astype(np.int32)  # N, C, Y, X
    out = tile(labels, gap=0, fill=0)
    assert out.shape == (2, 10, 10) and out.dtype == np.int32
    np.testing.assert_array_equal(out[:, 5:, :5], labels[2])


def test_at_most_max_samples():
    out = tile(_numbered(MAX_SAMPLES + 36, 2, 2), gap=0)
    assert out.shape == (16, 16) and out.max() == MAX_SAMPLES
    assert tile(_numbered(10, 2, 2), gap=0, limit=4).shape == (4, 4)


def test_refuses_mixed_shapes_and_non_stacks_in_one_sentence():
    with pytest.raises(DataError, match="one shape; got"):
        tile([np.zeros((4, 4)), np.zeros((4, 5))])
    with pytest.raises(DataError, match=r"\(N, Y, X\)"):
        tile(np.zeros((4, 4)))
    with pytest.raises(DataError, match="no samples"):
        tile(np.zeros((0, 4, 4)))


def test_generated_left_real_right_same_grid():
    generated, real = _numbered(6, 3, 3), -_numbered(9, 3, 3)
    out, n = montage_pair(generated, real, gap=1, pair_gap=4)
    assert n == 6  # the fewer of the two, in the same grid on both sides
    half = 3 * 3 + 2  # 3 columns
    assert out.shape == (2 * 3 + 1, 2 * half + 4)
    np.testing.assert_array_equal(out[:3, :3], 1)
    np.testing.assert_array_equal(out[:3, half + 4:half + 7], -1)
    np.testing.assert_array_equal(out[4:7, half + 4 + 8:half + 4 + 11], -6)  # real sample 6, row 2, column 3
    assert (out[:, half:half + 4] == 6).all()  # the pair gap: the brightest value of both


def test_pair_refuses_other_sample_shapes():
    with pytest.raises(DataError, match="same sample shape") as info:
        montage_pair(np.zeros((4, 8, 16, 16)), np.zeros((4, 16, 16)))
    assert "16 x 16" in str(info.value) and "8 x 16 x 16" in str(info.value)
    assert str(info.value).count(".") == 1  # one sentence


def test_side_by_side_pads_the_shorter():
    out = side_by_side(np.ones((2, 3), np.uint8), np.ones((4, 2), np.uint8), gap=1, fill=0)
    assert out.shape == (4, 6) and (out[2:, :3] == 0).all() and out.dtype == np.uint8
