"""TIFF loading: decompression bombs are refused before decoding, and our own exports
come back in the axes they were written with (clips stay (N, T, Y, X))."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_biogan.core.errors import DataError
from napari_biogan.core.export import read_tiff_axes, write_tiff
from napari_biogan.data import tiff_io
from napari_biogan.data.tiff_io import load_image_stack, load_training_images, max_decoded_bytes, read_tiff


@pytest.fixture
def bomb(tmp_path):
    """64 MB of zeros in a ~70 KB zlib TIFF (a real bomb declares GBs; the limit is lowered instead)."""
    path = tmp_path / "bomb.tif"
    tifffile.imwrite(path, np.zeros((4, 4000, 4000), np.uint8), compression="zlib")
    assert path.stat().st_size < 200_000
    return path


def test_zlib_bomb_is_refused_before_decoding(bomb, monkeypatch):
    monkeypatch.setenv(tiff_io.MAX_BYTES_ENV, str(10_000_000))

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", no_decoding)
    for load in (load_image_stack, load_training_images, read_tiff):
        with pytest.raises(DataError, match=r"0\.064 GB") as info:
            load(bomb)
        message = str(info.value)
        assert "bomb.tif" in message and "\n" not in message and message.endswith(".")


def test_the_limit_holds_for_a_folder_together(tmp_path, monkeypatch):
    for i in range(3):
        tifffile.imwrite(tmp_path / f"t{i}.tif", np.zeros((1000, 1000), np.uint32), compression="zlib")
    monkeypatch.setenv(tiff_io.MAX_BYTES_ENV, str(10_000_000))  # each file is 4 MB: two fit, three do not
    for load in (load_image_stack, load_training_images):
        with pytest.raises(DataError, match="t2.tif"):
            load(tmp_path)
    monkeypatch.setenv(tiff_io.MAX_BYTES_ENV, str(13_000_000))
    assert load_image_stack(tmp_path).shape == (3, 1000, 1000)


def test_default_limit_is_part_of_the_memory(monkeypatch):
    monkeypatch.delenv(tiff_io.MAX_BYTES_ENV, raising=False)
    limit = max_decoded_bytes()
    assert 0 < limit < 1 << 62
    monkeypatch.setenv(tiff_io.MAX_BYTES_ENV, "lots")
    with pytest.raises(DataError, match=tiff_io.MAX_BYTES_ENV):
        max_decoded_bytes()


def _clips(n=5, t=7, y=12, x=10) -> np.ndarray:
    """Clip i, frame j holds (10 i + j) / 100 everywhere: any mix-up of the axes shows."""
    values = (10 * np.arange(n)[:, None] + np.arange(t)[None, :]) / 100.0
    return np.broadcast_to(values[:, :, None, None], (n, t, y, x)).astype(np.float32)


@pytest.mark.parametrize("dtype", ["float32", "uint16"])
def test_clips_round_trip_keeps_clips_and_frames(tmp_path, dtype):
    clips = _clips()
    path = write_tiff(tmp_path / "clips.tif", clips, "NTYX", {"source": "test"}, dtype=dtype)
    # ImageJ stores them as T = frames, Z = clips; read naively they would be frames x clips
    assert tifffile.imread(path).shape[:2] == (7, 5)
    stack = load_image_stack(path)
    assert stack.shape == (5, 7, 12, 10)
    scale = 65535 if dtype == "uint16" else 1
    assert np.allclose(stack[:, :, 0, 0] / scale, clips[:, :, 0, 0], atol=1e-4)
    assert np.allclose(stack / scale, clips, atol=1e-4)
    data, axes = read_tiff_axes(path)
    assert axes == "NTYX" and np.array_equal(data, stack)
    assert read_tiff(path)[1] == "NTYX"
    # a 2D family gets one plane per clip and frame, clip-major
    planes = load_training_images(path)
    assert planes.shape == (35, 12, 10)
    assert np.allclose(planes[:, 0, 0] / scale, clips[:, :, 0, 0].reshape(-1), atol=1e-4)


def test_video_samples_with_one_channel_load_as_clips(tmp_path):
    samples = _clips(3, 4)[:, None]  # (N, C=1, T, Y, X), as `generate` writes a video family
    path = write_tiff(tmp_path / "samples.tif", samples, "NCTYX", {})
    assert load_image_stack(path).shape == (3, 4, 12, 10)
    assert np.array_equal(load_image_stack(path), samples[:, 0])
    assert read_tiff_axes(path)[0].shape == (3, 1, 4, 12, 10)


def test_several_channels_are_refused_for_stacks(tmp_path):
    two = np.stack([_clips(2, 3), _clips(2, 3)], axis=1)  # (N, C=2, T, Y, X)
    path = write_tiff(tmp_path / "two.tif", two, "NCTYX", {})
    with pytest.raises(DataError, match="2 channels") as info:
        load_image_stack(path)
    assert "two.tif" in str(info.value) and "\n" not in str(info.value)
    # a 2D family takes channels: one (C, Y, X) image per clip and frame
    assert load_training_images(path).shape == (6, 2, 12, 10)


def test_folder_of_our_clips_stacks_them(tmp_path):
    clips = _clips(3, 4)
    for i, clip in enumerate(clips):
        write_tiff(tmp_path / f"clip{i}.tif", clip, "TYX", {})
    assert np.array_equal(load_image_stack(tmp_path), clips)


def test_generated_images_load_for_training(tmp_path):
    images = _clips(6, 1)  # (N, C=1, Y, X), as `generate` writes a 2D family
    path = write_tiff(tmp_path / "gen.tif", images, "NCYX", {})
    assert np.array_equal(load_training_images(path), images[:, 0])


def test_read_tiff_axes_needs_our_provenance(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DataError, match="not written by napari-biogan"):
        read_tiff_axes(tmp_path / "plain.tif")
    # and other TIFFs read as before
    assert load_image_stack(tmp_path / "plain.tif").shape == (3, 8, 8)
