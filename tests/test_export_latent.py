"""TIFF export with provenance, and latent paths / directions."""

import numpy as np
import pytest
import tifffile
import torch

from napari_biogan.core.errors import DataError, OutputExistsError
from napari_biogan.core.export import read_provenance, to_hyperstack, write_tiff
from napari_biogan.core.latent import keyframe_path, principal_directions, slerp


def test_hyperstack_axes():
    assert to_hyperstack(np.zeros((5, 2, 8, 9)), "NCYX").shape == (5, 1, 2, 8, 9)
    assert to_hyperstack(np.zeros((5, 2, 7, 8, 9)), "NCTYX").shape == (7, 5, 2, 8, 9)
    assert to_hyperstack(np.zeros((8, 9)), "YX").shape == (1, 1, 1, 8, 9)
    with pytest.raises(DataError):
        to_hyperstack(np.zeros((5, 8, 9)), "NCYX")


@pytest.mark.parametrize("dtype", ["float32", "uint16"])
def test_write_read_with_provenance(tmp_path, dtype):
    data = np.random.default_rng(0).random((3, 2, 4, 6, 8)).astype(np.float32)  # N C T Y X
    path = write_tiff(tmp_path / "x.tif", data, "NCTYX", {"family": "savgan", "seed": 7, "model_sha256": "ab"},
                      dtype=dtype)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "TZCYX"
        stack = tif.asarray()
    assert stack.shape == (4, 3, 2, 6, 8) and stack.dtype == np.dtype(dtype)
    back = np.transpose(stack, (1, 2, 0, 3, 4))
    if dtype == "uint16":
        np.testing.assert_allclose(back / 65535, data, atol=1 / 65535)
    else:
        np.testing.assert_array_equal(back, data)
    prov = read_provenance(path)
    assert prov["family"] == "savgan" and prov["seed"] == 7 and prov["dtype"] == dtype
    assert "package_version" in prov
    with pytest.raises(OutputExistsError):
        write_tiff(path, data, "NCTYX", {})


def test_slerp_endpoints_and_norm():
    a, b = torch.randn(64), torch.randn(64)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert mid.norm() > 0.9 * min(a.norm(), b.norm())  # lerp would shrink towards 0.7x
    path = keyframe_path([a, b, a], 4)
    assert path.shape == (9, 64) and torch.allclose(path[4], b) and torch.allclose(path[-1], a)


def test_principal_directions_recover_a_dominant_axis():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 8, generator=g)
    mixing = torch.randn(8, 20, generator=g) * 0.1
    mixing[3] *= 30  # z[3] dominates the feature variance
    dirs, scale = principal_directions(z @ mixing, z, k=3)
    assert dirs.shape == (3, 8)
    assert abs(dirs[0, 3]) > 0.95
    assert torch.allclose(dirs.norm(dim=1), torch.ones(3), atol=1e-5)
