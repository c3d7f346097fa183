"""TIFF reading: stacks, hyperstacks, compression, folders in natural order, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_biogan.core.errors import DataError
from napari_biogan.data.tiff_io import load_image_stack, load_training_images, natural_key, read_tiff


def _stack(shape=(5, 20, 30), dtype=np.uint16, seed=0):
    return (np.random.default_rng(seed).random(shape) * 1000).astype(dtype)


def test_multipage_stack_roundtrip(tmp_path):
    data = _stack()
    tifffile.imwrite(tmp_path / "s.tif", data)
    out = load_image_stack(tmp_path / "s.tif")
    assert out.dtype == np.uint16 and np.array_equal(out, data)


def test_imagej_hyperstack_keeps_axes(tmp_path):
    data = _stack((3, 4, 2, 16, 18))  # T, Z, C, Y, X
    tifffile.imwrite(tmp_path / "h.tif", data, imagej=True, metadata={"axes": "TZCYX"})
    out, axes = read_tiff(tmp_path / "h.tif")
    assert axes == "TZCYX" and np.array_equal(out, data)
    # a 2D family gets one image per (T, Z) plane with its channels
    planes = load_training_images(tmp_path / "h.tif")
    assert planes.shape == (12, 2, 16, 18)
    assert np.array_equal(planes[5], data[1, 1])


@pytest.mark.parametrize("compression", ["zlib", "deflate", "lzma"])
def test_compressed_without_imagecodecs(tmp_path, compression):
    data = _stack()
    tifffile.imwrite(tmp_path / "c.tif", data, compression=compression)
    assert tifffile.TiffFile(tmp_path / "c.tif").pages[0].compression != 1
    assert np.array_equal(load_image_stack(tmp_path / "c.tif"), data)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_lzw_reads_without_imagecodecs(tmp_path, dtype):
    # tifffile needs imagecodecs to write or read LZW; Pillow's libtiff writes it here and
    # our reader falls back to Pillow when imagecodecs is missing.
    Image = pytest.importorskip("PIL.Image")
    data = _stack((3, 20, 30), dtype=dtype)
    frames = [Image.fromarray(frame) for frame in data]
    frames[0].save(tmp_path / "lzw.tif", compression="tiff_lzw", save_all=True, append_images=frames[1:])
    assert tifffile.TiffFile(tmp_path / "lzw.tif").pages[0].compression == 5
    out = load_image_stack(tmp_path / "lzw.tif")
    assert out.dtype == data.dtype and np.array_equal(out, data)


def test_folder_in_natural_order(tmp_path):
    # Cell Tracking Challenge style names, plus unpadded numbers where plain sorting fails
    for t in (0, 1, 2, 10, 11):
        tifffile.imwrite(tmp_path / f"t{t}.tif", np.full((8, 9), t, np.uint16))
    (tmp_path / "notes.txt").write_text("not an image")
    out = load_image_stack(tmp_path)
    assert out.shape == (5, 8, 9)
    assert list(out[:, 0, 0]) == [0, 1, 2, 10, 11]
    assert sorted(["t10", "t2", "t1"], key=natural_key) == ["t1", "t2", "t10"]


def test_training_images_from_folder(tmp_path):
    for i in range(4):
        tifffile.imwrite(tmp_path / f"cell_{i:03d}.tiff", np.full((12, 10), i, np.uint8))
    images = load_training_images(tmp_path)
    assert images.shape == (4, 12, 10) and list(images[:, 0, 0]) == [0, 1, 2, 3]
    tifffile.imwrite(tmp_path / "cell_004.tiff", np.zeros((6, 6), np.uint8))
    with pytest.raises(DataError, match="differ in shape"):
        load_training_images(tmp_path)
    assert load_training_images(tmp_path, size=(12, 10)).shape == (5, 12, 10)


def test_training_images_feed_dcgan(tmp_path):
    from napari_biogan.families.dcgan2d import prepare_images

    tifffile.imwrite(tmp_path / "stack.tif", _stack((6, 32, 32)))
    tensor = prepare_images(load_training_images(tmp_path / "stack.tif"), 1, (32, 32))
    assert tuple(tensor.shape) == (6, 1, 32, 32)


def test_errors_are_plain_data_errors(tmp_path):
    with pytest.raises(DataError, match="No file or folder"):
        load_image_stack(tmp_path / "missing.tif")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="is empty"):
        load_image_stack(empty)
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes(b"\x89PNG")
    with pytest.raises(DataError, match="no TIFF files"):
        load_image_stack(other)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    tifffile.imwrite(mixed / "t000.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(mixed / "t001.tif", np.zeros((8, 9), np.uint8))
    with pytest.raises(DataError, match="t001.tif is \\(8, 9\\)"):
        load_image_stack(mixed)
    tifffile.imwrite(tmp_path / "complex.tif", np.ones((4, 4), np.complex64))
    with pytest.raises(DataError, match="complex64"):
        load_image_stack(tmp_path / "complex.tif")
    (tmp_path / "fake.tif").write_bytes(b"this is not a tiff at all")
    with pytest.raises(DataError, match="not a readable TIFF"):
        load_image_stack(tmp_path / "fake.tif")


@pytest.mark.parametrize("imagej,fraction", [(False, 0.5), (True, 0.5), (False, 0.9), (True, 0.2)])
def test_truncated_files_fail_clearly(tmp_path, imagej, fraction):
    data = _stack((6, 40, 50))
    whole = tmp_path / "whole.tif"
    kwargs = {"imagej": True, "metadata": {"axes": "TYX"}} if imagej else {}
    tifffile.imwrite(whole, data, **kwargs)
    raw = whole.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(raw[:int(len(raw) * fraction)])
    with pytest.raises(DataError, match="cut.tif"):
        load_image_stack(cut)


def test_truncated_compressed_file(tmp_path):
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, _stack((4, 40, 50)), compression="zlib")
    raw = whole.read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[:len(raw) * 3 // 4])
    with pytest.raises(DataError, match="cut.tif"):
        load_image_stack(tmp_path / "cut.tif")
