"""The CLI: same core calls, plain one-sentence errors, reproducible output."""

import numpy as np
import pytest
import tifffile

from napari_biogan.cli import main
from napari_biogan.core.export import read_provenance
from napari_biogan.core.model import GanModel


@pytest.fixture
def model_file(tmp_path):
    return str(GanModel.new("dcgan2d", base_width=8, latent_dim=16, seed=2).save(tmp_path / "tiny.safetensors"))


def test_models_lists_the_shipped_default(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dcgan2d" in out and "mnist-dcgan" in out


def test_generate_is_reproducible_and_has_provenance(model_file, tmp_path):
    for name in ("a.tif", "b.tif"):
        assert main(["generate", "--model", model_file, "-n", "3", "--seed", "4", "-o", str(tmp_path / name)]) == 0
    a, b = (tifffile.imread(tmp_path / name) for name in ("a.tif", "b.tif"))
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        assert tif.series[0].get_axes(squeeze=False) == "TZCYXS"
        assert tif.series[0].get_shape(squeeze=False)[:5] == (3, 1, 1, 32, 32)  # samples on ImageJ's T
    assert np.array_equal(a, b)
    prov = read_provenance(tmp_path / "a.tif")
    assert prov["seed"] == 4 and prov["family"] == "dcgan2d" and len(prov["model_sha256"]) == 64


def test_generate_with_the_default_model(tmp_path):
    assert main(["generate", "-n", "2", "-o", str(tmp_path / "d.tif"), "--dtype", "uint16"]) == 0
    assert tifffile.imread(tmp_path / "d.tif").dtype == np.uint16


def test_train_then_resume(tmp_path, capsys):
    data = np.random.default_rng(0).random((32, 20, 20)).astype(np.float32)
    np.save(tmp_path / "x.npy", data)
    out = str(tmp_path / "m.safetensors")
    args = ["train", "--family", "dcgan2d", "--data", str(tmp_path / "x.npy"), "-o", out, "--batch-size", "4",
            "--device", "cpu"]
    assert main(args + ["--steps", "2", "--set", "base_width=8", "--set", "latent_dim=8"]) == 0
    assert main(args + ["--steps", "3", "--resume", out]) == 0  # a resumed run keeps its config
    assert GanModel.load(out).card["training_state"]["step"] == 3
    assert "finished at step 3" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["generate", "--model", "nope", "-o", "x.tif"], "No model named 'nope'"),
    (["train", "--family", "nofamily", "--data", "x", "-o", "y"], "Unknown model family"),
    (["generate", "-n", "0", "-o", "x.tif"], "at least 1"),
    (["export", "--seeds", "1", "-o", "x.tif"], "at least two seeds"),
    (["generate"], "required"),
])
def test_bad_arguments_give_one_sentence(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code != 0
    assert words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_not_a_model_file(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("hello")
    assert main(["generate", "--model", str(bad), "-o", str(tmp_path / "o.tif")]) == 2
    assert "not a napari-biogan model" in capsys.readouterr().err


def test_export_path_and_refuse_overwrite(model_file, tmp_path, capsys):
    out = tmp_path / "path.tif"
    assert main(["export", "--model", model_file, "--seeds", "1,2,3", "--steps", "4", "-o", str(out)]) == 0
    stack = tifffile.imread(out)
    assert stack.shape[0] == 9  # 2 segments x 4 + the last keyframe
    assert read_provenance(out)["keyframe_seeds"] == [1, 2, 3]
    before = out.read_bytes()
    assert main(["export", "--model", model_file, "--seeds", "1,2", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before


def test_evaluate_prints_metrics(model_file, tmp_path, capsys):
    np.save(tmp_path / "real.npy", np.random.default_rng(1).random((40, 32, 32)).astype(np.float32))
    assert main(["evaluate", "--model", model_file, "--data", str(tmp_path / "real.npy"), "-n", "20"]) == 0
    assert "fd_pixels" in capsys.readouterr().out


def test_evaluate_writes_a_csv_table_and_never_replaces_one(model_file, tmp_path, capsys):
    import csv

    np.save(tmp_path / "real.npy", np.random.default_rng(1).random((40, 32, 32)).astype(np.float32))
    table = tmp_path / "metrics.csv"
    argv = ["evaluate", "--model", model_file, "--data", str(tmp_path / "real.npy"), "-n", "20", "--csv", str(table)]
    assert main(argv) == 0
    rows = list(csv.DictReader(table.open()))
    printed = capsys.readouterr().out
    assert [r["metric"] for r in rows] == ["fd_pixels"] and rows[0]["label"] == "Pixel FD"
    assert f"{float(rows[0]['value']):.4f}"[:5] in printed and rows[0]["samples"] == "20"
    before = table.read_bytes()
    assert main(argv) == 2  # refused before evaluating: the table is kept
    assert "already exists" in capsys.readouterr().err and table.read_bytes() == before
    assert main(argv + ["--overwrite"]) == 0


@pytest.mark.parametrize("command", ["models", "generate", "train", "evaluate", "export", "clips", "demo"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "usage" in capsys.readouterr().out


def _moving_blob_movie(frames=12, size=96):
    movie = np.zeros((frames, size, size), np.float32)
    yy, xx = np.mgrid[:size, :size]
    for t in range(frames):
        movie[t] = np.exp(-((yy - 48) ** 2 + (xx - 20 - 4 * t) ** 2) / 40.0)
    return movie + np.random.default_rng(0).normal(0, 0.01, movie.shape).astype(np.float32)


def test_clips_finds_the_moving_cell(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "movie.tif", _moving_blob_movie(), compression="zlib")
    out = tmp_path / "clips.tif"
    assert main(["clips", str(tmp_path / "movie.tif"), "-o", str(out), "--size", "8x32x32", "--max-clips", "3"]) == 0
    assert "found" in capsys.readouterr().out
    prov = read_provenance(out)
    assert prov["clip_size"] == [8, 32, 32] and len(prov["clips"]) >= 1
    centre = prov["clips"][0]["centre"]
    assert abs(centre[0] - 48) < 16  # the blob's row
    assert main(["clips", str(tmp_path / "movie.tif"), "-o", str(out), "--size", "8x32x32", "--time-stride", "2",
                 "--overwrite"]) == 0
    assert read_provenance(out)["time_stride"] == 2 and len(read_provenance(out)["clips"]) >= len(prov["clips"])


def test_clips_bad_size_and_still_movie(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "still.tif", np.zeros((6, 40, 40), np.float32))
    assert main(["clips", str(tmp_path / "still.tif"), "-o", str(tmp_path / "c.tif"), "--size", "8x32"]) == 2
    assert "--size" in capsys.readouterr().err
    assert main(["clips", str(tmp_path / "still.tif"), "-o", str(tmp_path / "c.tif"), "--size", "4x16x16"]) == 2
    assert not (tmp_path / "c.tif").exists()
