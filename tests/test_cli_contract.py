"""The CLI written once against the family contract: settings, hyper-parameters, any family's inputs,
outputs and controls, and a training run that stops cleanly on Ctrl-C / SIGTERM."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_biogan.cli import main
from napari_biogan.core.checkpoint import read_card
from napari_biogan.core.errors import FamilyMismatchError
from napari_biogan.core.export import read_provenance
from napari_biogan.core.model import Model
from napari_biogan.core.training import TrainSettings, setup_training

from toy_family import toy_pairs

TESTS = Path(__file__).resolve().parent
TINY = ["--set", "height=16", "--set", "width=16", "--set", "latent_dim=8", "--set", "base_width=8"]


@pytest.fixture
def digits(tmp_path) -> str:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).random((8, 16, 16)).astype(np.float32))
    return str(path)


def _train(digits: str, out: Path, *extra: str) -> list[str]:
    return ["train", "--family", "dcgan2d", "--data", digits, "-o", str(out), "--device", "cpu",
            "--batch-size", "2", *extra]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "napari_biogan.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "NAPARI_BIOGAN_FAMILIES": "toy_family",
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def test_set_and_hparam_reach_the_card(digits, tmp_path):
    out = tmp_path / "m.safetensors"
    argv = _train(digits, out, *TINY, "--set", "critic_spectral_norm=false", "--hparam", "loss=hinge",
                  "--hparam", "n_critic=1", "--steps", "2")
    assert main(argv) == 0
    card = read_card(out)
    assert card["config"]["critic_spectral_norm"] is False  # "false" was truthy once
    hparams = card["training"]["hparams"]
    assert hparams["loss"] == "hinge" and hparams["n_critic"] == 1 and hparams["batch_size"] == 2


@pytest.mark.parametrize("extra, words", [
    (["--hparam", "lr_g=fast"], "lr_g"),
    (["--set", "heigth=3"], "heigth"),
    (["--hparam", "nonsense=1"], "nonsense"),
    (["--batch-size", "0"], "--batch-size"),
    (["--steps", "0"], "--steps"),
    (["--checkpoint-every", "0"], "--checkpoint-every"),
    (["--set", "height"], "key=value"),
])
def test_bad_training_values_give_one_line(extra, words, digits, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    try:
        code = main(_train(digits, out, *TINY, *extra))
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and words in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_resuming_another_family_gives_the_core_sentence(digits, tmp_path, capsys):
    toy = Model.new("toy-seg").save(tmp_path / "toy.safetensors")
    settings = TrainSettings(steps=2, output=str(tmp_path / "direct.safetensors"))
    with pytest.raises(FamilyMismatchError) as expected:
        setup_training("dcgan2d", {"image": digits}, settings, resume=str(toy))
    out = tmp_path / "m.safetensors"
    assert main(_train(digits, out, "--steps", "2", "--resume", str(toy))) == 2
    assert capsys.readouterr().err.strip() == f"napari-biogan: {expected.value}"
    assert not out.exists()


def test_existing_output_is_refused_before_any_step(digits, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"the user's file")
    assert main(_train(digits, out, *TINY, "--steps", "2")) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "train [" not in err
    assert out.read_bytes() == b"the user's file"


def test_resume_below_the_reached_step_is_refused(digits, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(_train(digits, out, *TINY, "--steps", "3")) == 0
    capsys.readouterr()
    assert main(_train(digits, out, "--steps", "2", "--resume", str(out))) == 2
    err = capsys.readouterr().err
    assert "already at step 3" in err and "3/2" not in err


def test_train_help_shows_how_to_set_hyper_parameters(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "--hparam" in out and "n_critic=5" in out and "critic_spectral_norm=false" in out
    assert "toy-seg" in out and "--input labels=PATH" in out


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_with_a_checkpoint(signum, code, digits, tmp_path, capsys, monkeypatch):
    from napari_biogan.core import progress

    original = progress.TextProgress.update

    def update_then_signal(self, done, *args, **kwargs):
        original(self, done, *args, **kwargs)
        if done == 1:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(progress.TextProgress, "update", update_then_signal)
    out = tmp_path / "m.safetensors"
    before = signal.getsignal(signum)
    assert main(_train(digits, out, *TINY, "--steps", "50", "--checkpoint-every", "1000")) == code
    assert signal.getsignal(signum) is before  # the handlers are put back
    assert f"checkpoint is {out}" in capsys.readouterr().err
    assert read_card(out)["training_state"]["step"] == 1


def test_a_second_interrupt_aborts(digits, tmp_path, capsys, monkeypatch):
    from napari_biogan.core import progress

    def interrupt_twice(self, done, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(progress.TextProgress, "update", interrupt_twice)
    assert main(_train(digits, tmp_path / "m.safetensors", *TINY, "--steps", "50")) == 130
    assert "interrupted" in capsys.readouterr().err


def test_sigint_in_a_subprocess_keeps_a_resumable_checkpoint(digits, tmp_path):
    out = tmp_path / "m.safetensors"
    argv = _cli(*_train(digits, out, *TINY, "--steps", "100000", "--checkpoint-every", "1000"))
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=_env())
    seen, deadline = b"", time.monotonic() + 120
    try:
        while b"train [" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stderr], [], [], 1.0)[0]:
                seen += os.read(proc.stderr.fileno(), 4096)
        assert b"train [" in seen, seen.decode(errors="replace")
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = (seen + rest).decode(errors="replace")
    assert proc.returncode == 130, err
    assert f"checkpoint is {out}" in err
    step = read_card(out)["training_state"]["step"]
    assert 1 <= step < 100000
    resumed = subprocess.run(_cli(*_train(digits, out, "--steps", str(step + 2), "--resume", str(out))),
                             capture_output=True, text=True, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"finished at step {step + 2}" in resumed.stdout
    assert read_card(out)["training_state"]["step"] == step + 2


# -- an image-driven family (the tests' toy family) through the CLI ---------------------------------------

@pytest.fixture
def toy_files(tmp_path):
    images, labels = toy_pairs(8, 16)
    tifffile.imwrite(tmp_path / "images.tif", images)
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, mask in enumerate(labels):
        tifffile.imwrite(masks / f"mask_{i:02d}.tif", mask)
    big, _ = toy_pairs(2, 20, seed=3)
    tifffile.imwrite(tmp_path / "big.tif", big)
    return tmp_path


def test_toy_family_in_a_subprocess(toy_files):
    def run(*args):
        done = subprocess.run(_cli(*args), capture_output=True, text=True, env=_env(), timeout=300)
        assert done.returncode == 0, done.stderr
        return done

    d = toy_files
    model_file = d / "toy.safetensors"
    run("train", "--family", "toy-seg", "--data", str(d / "images.tif"), "--input", f"labels={d / 'masks'}",
        "-o", str(model_file), "--steps", "3", "--device", "cpu")
    run("generate", "--model", str(model_file), "--input", str(d / "big.tif"), "--tile", "8", "--overlap", "4",
        "--control", "style=bright", "--control", "gain=0.5", "-o", str(d / "out.tif"),
        "--device", "cpu", "--precision", "fp32")
    files = {name: d / f"out_{name}.tif" for name in ("edited", "change", "labels")}
    assert all(f.exists() for f in files.values()) and not (d / "out.tif").exists()
    model = Model.load(model_file, device="cpu")
    expected = model.run({"image": tifffile.imread(d / "big.tif")}, {"style": 1, "gain": 0.5}, precision="fp32",
                         tile=8, overlap=4)
    labels = tifffile.imread(files["labels"])
    assert labels.dtype.kind in "ui"
    assert np.array_equal(np.squeeze(labels), np.squeeze(expected["labels"]))
    assert np.allclose(np.squeeze(tifffile.imread(files["change"])), np.squeeze(expected["change"]), atol=1e-5)
    prov = read_provenance(files["edited"])
    assert prov["family"] == "toy-seg" and prov["controls"] == {"style": 1, "gain": 0.5} and prov["tile"] == 8
    assert prov["source"] == {"image": str(d / "big.tif")} and prov["output"] == "edited"
    done = run("evaluate", "--model", str(model_file), "--data", str(d / "images.tif"),
               "--input", f"labels={d / 'masks'}", "-n", "4", "--device", "cpu")
    assert "pixel_accuracy" in done.stdout and "'segmentation'" in done.stdout and "4 real samples" in done.stdout


def test_toy_family_in_process_errors_and_export(toy_files, capsys):
    d = toy_files
    model_file = d / "toy.safetensors"
    assert main(["train", "--family", "toy-seg", "--data", str(d / "images.tif"), "--input", str(d / "masks"),
                 "-o", str(model_file), "--steps", "2", "--device", "cpu"]) == 0
    model = ["--model", str(model_file), "--device", "cpu"]
    for argv, words in [
        (["generate", *model, "-o", str(d / "g.tif")], "give it with --input"),
        (["generate", *model, "--input", str(d / "big.tif"), "-n", "3", "-o", str(d / "g.tif")], "-n is for"),
        (["generate", *model, "--input", str(d / "big.tif"), "--control", "style=fancy", "-o", str(d / "g.tif")],
         "plain, bright"),
        (["generate", *model, "--input", str(d / "big.tif"), "--control", "nope=1", "-o", str(d / "g.tif")],
         "no control 'nope'"),
        (["export", *model, "--seeds", "1,2", "-o", str(d / "p.tif")], "not seeds"),
    ]:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert not list(d.glob("g*.tif")) and not list(d.glob("p*.tif"))
    # image keyframes: one per image of --input
    assert main(["export", *model, "--input", str(d / "big.tif"), "--steps", "3", "--control", "style=1",
                 "-o", str(d / "p.tif")]) == 0
    assert tifffile.imread(d / "p_edited.tif").shape[0] == 4  # 1 segment x 3 + the last keyframe
    assert read_provenance(d / "p_labels.tif")["layer_type"] == "labels"


def test_training_needs_every_declared_input(toy_files, capsys):
    d = toy_files
    assert main(["train", "--family", "toy-seg", "--data", str(d / "images.tif"), "-o", str(d / "t.safetensors"),
                 "--steps", "1"]) == 2
    assert "'labels'" in capsys.readouterr().err and not (d / "t.safetensors").exists()


def test_warnings_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NAPARI_BIOGAN_MODELS", str(tmp_path))
    (tmp_path / "bad.safetensors").write_text("not a model")
    assert main(["models"]) == 0
    captured = capsys.readouterr()
    assert "mnist-dcgan" in captured.out
    assert captured.err.strip().startswith("napari-biogan: warning: Skipped") and len(captured.err.splitlines()) == 1
