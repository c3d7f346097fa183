"""The cell family (Osokin et al.): variants, controls, LIN-layout data, cropping, C2ST and reconstruction.

Tiny configs only; the LIN folders are built here (the LIN data cannot be had), and the
rcell2 / DeepLoc tests skip with a reason when ../shared/data is absent.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_biogan.core.errors import DataError
from napari_biogan.core.model import Model
from napari_biogan.core.training import TrainSettings, setup_training
from napari_biogan.data.cells import (CellSet, centres_from_labels, crop_cells, detect_centres, read_cell_folders,
                                      read_lin, synthetic_multichannel, write_cell_folders)
from napari_biogan.metrics.cells import (C2stSettings, Cancelled, c2st_scores, model_c2st, pool_sampler, real_c2st,
                                         reconstruct_cells)
from real_data import shared_data

TINY = dict(height=16, width=24, latent_dim=8, shape_latent=4, base_width=8, critic_width=8)
TINY_HPARAMS = {"batch_size": 4, "n_critic": 1}
VARIANTS = ("star", "separable", "multichannel")
#: a C2ST setting small enough for a test (labelled as such)
TOY_C2ST = C2stSettings(splits=3, critic_steps=50, batch_size=32, eval_passes=1, critic_width=8, lr=2e-3, label="test")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_cells(n: int, protein: int, size=(48, 80), seed: int = 0) -> np.ndarray:
    """(n, 3, Y, X) uint8 RGB-like cells: a red rod outline (the shape), green spots at the poles (protein 0)
    or in the middle (protein 1), an empty blue channel, as in a LIN PNG."""
    rng = np.random.default_rng(seed + 17 * protein)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    out = np.zeros((n, 3, h, w), np.uint8)
    for i in range(n):
        cy, cx = h / 2 + rng.normal(0, 1.5), w / 2 + rng.normal(0, 2)
        ry, rx = h * rng.uniform(0.22, 0.3), w * rng.uniform(0.3, 0.4)
        r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        out[i, 0] = (np.exp(-((r - 1) / 0.15) ** 2) * 220).astype(np.uint8)
        spots = [(cy, cx - 0.8 * rx), (cy, cx + 0.8 * rx)] if protein == 0 else [(cy, cx)]
        green = sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.5 ** 2)) for y, x in spots)
        out[i, 1] = (np.clip(green, 0, 1) * 230 * (r < 1.1)).astype(np.uint8)
    return out


def make_lin(root, names=("Alp14", "Arp3"), n: int = 6, split: str = "train"):
    """A small LIN-layout folder: <root>/<split>/<protein>/*.png, 48x80 RGB."""
    from PIL import Image

    for c, name in enumerate(names):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i, cell in enumerate(toy_cells(n, c)):
            Image.fromarray(np.moveaxis(cell, 0, -1)).save(folder / f"cell{i}.png")
    return root


# -- reading the LIN layout and training every variant ----------------------------------------------------

def test_lin_layout_is_read_with_classes_from_the_sub_folders(tmp_path):
    cells = read_lin(make_lin(tmp_path))
    assert cells.images.shape == (12, 2, 48, 80) and cells.images.dtype == np.uint8
    assert cells.names == ["Alp14", "Arp3"] and list(cells.classes) == [0] * 6 + [1] * 6
    assert cells.images[:, 0].max() > 100 and cells.images[:, 1].max() > 100  # red = shape, green = protein
    with pytest.raises(DataError, match="no 'test' folder"):
        read_lin(tmp_path, split="test")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_builds_runs_and_trains_from_a_lin_folder(variant, tmp_path):
    cells = read_lin(make_lin(tmp_path / "lin"))
    out = tmp_path / f"{variant}.safetensors"
    settings = TrainSettings(steps=1, output=str(out), preview_every=1, preview_n=2, hparams=TINY_HPARAMS)
    trainer = setup_training("cells", {**cells.sources(), "class_names": cells.names}, settings,
                             config_overrides=dict(TINY, variant=variant, proteins=tuple(cells.names)))
    events = trainer.run_all()
    assert [e.kind for e in events] == ["step", "preview", "finished"]
    assert all(np.isfinite(v) for v in events[0].losses.values())
    assert events[1].preview_outputs["cell"].shape == (2, 3, 16, 24)
    model = Model.load(out, device="cpu")
    assert [c.name for c in model.channels] == ["shape", "Alp14", "Arp3"]
    assert [c.colormap for c in model.channels] == ["gray", "green", "cyan"]
    names = {c.name for c in model.controls}
    assert names == ({"protein", "green seed"} if variant != "multichannel" else {"protein"})
    cell = model.run(model.seeded_point(3, 2), precision="fp32")["cell"]
    assert cell.shape == (2, 3, 16, 24) and 0 <= cell.min() and cell.max() <= 1


def test_a_tiff_class_folder_trains_through_the_shared_loader(tmp_path):
    cells = CellSet(toy_cells(4, 0)[:, :2], np.zeros(4, np.int64), ["Tea1", "Sid2"])
    cells.classes[2:] = 1
    folder = write_cell_folders(cells, tmp_path / "crops")
    assert read_cell_folders(folder).names == ["Sid2", "Tea1"]
    trainer = setup_training("cells", str(folder), TrainSettings(steps=1, hparams=TINY_HPARAMS),
                             config_overrides=dict(TINY))
    assert trainer.model.config.proteins == ("Sid2", "Tea1")  # named from the class folders
    assert trainer.run_all()[-1].kind == "finished"


def test_training_data_is_checked_in_plain_sentences():
    family = Model.new("cells", **TINY).family
    with pytest.raises(DataError, match="shape and at least one protein"):
        family.prepare_data({"image": np.zeros((4, 16, 24), np.uint8)}, family.default_config(**TINY))
    config = family.default_config(**TINY, proteins=("a", "b"))
    with pytest.raises(DataError, match="not the model's"):
        family.prepare_data({"image": toy_cells(4, 0), "class": [0, 1, 0, 1], "class_names": ["x", "y"]}, config)
    with pytest.raises(DataError, match="3 protein classes"):
        family.prepare_data({"image": toy_cells(3, 0), "class": [0, 1, 2]}, config)
    with pytest.raises(DataError, match="variant"):
        family.default_config(variant="joint")


def test_multichannel_crops_train_every_variant_with_its_own_layout():
    family = Model.new("cells", **TINY).family
    crops = np.concatenate([toy_cells(5, 0)[:, :2], toy_cells(5, 1)[:, 1:2]], 1)  # shape + two proteins
    star = family.prepare_data({"image": crops, "class": np.zeros(5)}, family.default_config(**TINY))
    assert len(star) == 10 and star["image"].source.shape[1] == 2  # one (shape, protein) image per protein
    config = family.default_config(**TINY, variant="multichannel")
    multi = family.prepare_data({"image": crops, "class": np.zeros(5)}, config)
    assert multi["image"].source.shape[1] == 3 and config.proteins == ("protein 1", "protein 2")


# -- the controls: class switch with the shape held, green seed ----------------------------------------------

def test_switching_the_protein_keeps_the_shape_of_a_star_model():
    torch.manual_seed(0)
    model = Model.new("cells", **TINY, variant="star", proteins=("Alp14", "Arp3", "Tea1"))
    point = model.seeded_point(4, 3)
    every = model.run(point, precision="fp32")["cell"]
    for protein in (1, 2, 3):
        one = model.run(point, controls={"protein": protein}, precision="fp32")["cell"]
        assert np.array_equal(one[:, 0], every[:, 0])  # the shared shape tower: the same cell
        assert np.array_equal(one[:, protein], every[:, protein])
        others = [c for c in (1, 2, 3) if c != protein]
        assert one[:, others].max() == 0.0  # the other proteins are empty, as in a one-protein image
    per_sample = model.run(point, controls={"protein": [1, 2, 3]}, precision="fp32")["cell"]
    assert np.array_equal(per_sample[:, 0], every[:, 0])


@pytest.mark.parametrize("variant", ("star", "separable"))
def test_the_green_seed_changes_the_proteins_only(variant):
    torch.manual_seed(0)
    model = Model.new("cells", **TINY, variant=variant, proteins=("a", "b"))
    point = model.seeded_point(2, 4)
    own = model.run(point, precision="fp32")["cell"]
    seeded = model.run(point, controls={"green seed": 7}, precision="fp32")["cell"]
    again = model.run(point, controls={"green seed": 7}, precision="fp32")["cell"]
    assert np.array_equal(seeded[:, 0], own[:, 0])  # the shape is held
    assert np.abs(seeded[:, 1:] - own[:, 1:]).max() > 1e-4  # the proteins change
    assert np.array_equal(seeded, again)
    assert np.array_equal(model.run(point, controls={"green seed": 0}, precision="fp32")["cell"], own)


# -- data helpers ------------------------------------------------------------------------------------------

def test_synthetic_multichannel_borrows_other_proteins_from_the_nearest_shapes():
    shapes = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 4, 4), np.float32)
    proteins = 100 + np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 4, 4), np.float32)
    pairs = np.stack([shapes, proteins], 1)
    classes = np.array([0, 0, 0, 1, 1, 1])
    out = synthetic_multichannel(pairs, classes, 2, neighbours=1)
    assert out.shape == (6, 3, 4, 4)
    assert np.array_equal(out[:, 0], shapes)
    assert [out[i, 1 + classes[i], 0, 0] for i in range(6)] == [100, 101, 102, 103, 104, 105]  # its own protein
    assert [out[i, 2, 0, 0] for i in range(3)] == [103, 103, 103]  # nearest class-1 shape is cell 3
    assert [out[i, 1, 0, 0] for i in range(3, 6)] == [102, 102, 102]


def test_cells_are_detected_and_cropped_from_a_field():
    field = np.full((120, 160), 100.0)
    yy, xx = np.mgrid[:120, :160]
    centres = [(30, 40), (60, 110), (95, 60)]
    for y, x in centres:
        field[(yy - y) ** 2 + (xx - x) ** 2 < 64] = 180.0
    found = detect_centres(field)
    assert len(found) == 3
    for y, x in centres:
        assert np.min(np.hypot(found[:, 0] - y, found[:, 1] - x)) < 2
    labels = np.zeros((120, 160), np.uint16)
    for i, (y, x) in enumerate(centres):
        labels[(yy - y) ** 2 + (xx - x) ** 2 < 64] = i + 1
    assert np.allclose(centres_from_labels(labels), centres, atol=0.5)
    crops = crop_cells([field, field * 2], np.asarray(centres), 16)
    assert crops.shape == (3, 2, 16, 16) and crops.dtype == np.uint8
    assert crops[:, 0, 8, 8].min() == 255 and crops[:, 0, 0, 0].max() == 0  # centred on the bright discs
    edge = crop_cells([field], np.array([[2, 3]]), 16)  # mirrored at the border
    assert edge.shape == (1, 1, 16, 16)


# -- C2ST and reconstruction -------------------------------------------------------------------------------

def _toy_pairs(n: int, protein: int, seed: int) -> torch.Tensor:
    cells = toy_cells(n, protein, size=(16, 24), seed=seed)[:, :2]
    return torch.from_numpy(cells.astype(np.float32) / 127.5 - 1)


def test_c2st_real_vs_real_is_about_zero_for_the_same_cells_and_clearly_above_for_other_classes():
    a, a_again, b = _toy_pairs(48, 0, 1), _toy_pairs(48, 0, 2), _toy_pairs(48, 1, 3)
    same = real_c2st(a, a_again, TOY_C2ST, seed=0)
    other = real_c2st(a, b, TOY_C2ST, seed=0)
    assert len(same) == 3 and abs(same.mean()) < 0.5
    assert other.mean() > 1.0 and other.mean() > same.mean() + 1.0


def test_c2st_of_a_model_reports_every_class_and_can_be_cancelled():
    torch.manual_seed(0)
    model = Model.new("cells", **TINY, proteins=("a", "b"))
    pairs = torch.cat([_toy_pairs(8, 0, 0), _toy_pairs(8, 1, 0)])
    classes = np.array([0] * 8 + [1] * 8)
    calls = []
    setting = C2stSettings(splits=2, critic_steps=10, batch_size=8, eval_passes=1, critic_width=8, label="quick")
    result = model_c2st(model, pairs, classes, setting, progress=lambda d, t: calls.append((d, t)))
    metrics = result.as_metrics()
    assert {"c2st_quick", "c2st_quick_std", "c2st_quick_a", "c2st_quick_b_std", "c2st_quick_real"} <= set(metrics)
    assert calls[-1] == (80, 80)  # 2 classes x (model + real reference) x 2 splits x 10 steps
    assert "quick" in result.lines()[0]
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        c2st_scores(pairs[:8], pool_sampler(pairs[8:]), setting, cancel=stop)


def test_a_models_own_sample_is_reconstructed_closely_and_fast():
    torch.manual_seed(0)
    model = Model.new("cells", **TINY, variant="star", proteins=("a", "b"))
    with torch.no_grad():  # livelier weights than the DCGAN init, so cells differ from one another
        for parameter in model.nets["generator"].parameters():
            if parameter.ndim > 1:
                parameter.mul_(8)
    cells = model.run(model.seeded_point(11, 2), controls={"protein": [1, 2]}, precision="fp32")["cell"]
    pairs = np.stack([cells[0][[0, 1]], cells[1][[0, 2]]])
    rec = reconstruct_cells(model, pairs, np.array([0, 1]), restarts=3, steps=30, seed=5)
    distinct = np.sqrt(np.mean((pairs[0] - pairs[1]) ** 2))
    assert rec.l2.max() < 0.25 * distinct
    assert rec.seconds.max() < 5.0
    assert np.all(rec.nll > 0) and rec.images.shape == (2, 2, 16, 24)
    summary = rec.summary()
    assert summary["recon_nll_real"] == pytest.approx(4 * (1 + np.log(2 * np.pi)))


# -- real cells (skip when ../shared/data is absent) --------------------------------------------------------

def test_rcell2_fields_give_about_1800_three_channel_cells():
    from napari_biogan.data.cells import rcell2_cells

    cells = rcell2_cells(shared_data("rcell2_yeast"), 32)
    assert 1700 <= len(cells) <= 2100
    assert cells.images.shape[1:] == (3, 32, 32) and cells.images.dtype == np.uint8
    assert len(set(cells.info["groups"])) == 6
    pairs = cells.pairs()
    assert len(pairs) == 2 * len(cells) and pairs.names == ["YFP", "TFP"]
    assert np.array_equal(pairs.images[:len(cells), 0], pairs.images[len(cells):, 0])  # the same shapes


def test_deeploc_cells_are_read_as_shape_and_protein():
    from napari_biogan.data.cells import read_deeploc

    cells = read_deeploc(shared_data("deeploc_yeast"))
    assert cells.images.shape == (36, 2, 64, 64) and len(cells.names) >= 2
    family = Model.new("cells", **TINY).family
    config = family.default_config(**TINY)
    data = family.prepare_data({"image": cells.images, "class": cells.classes, "class_names": cells.names}, config)
    assert len(data) == 36 and config.proteins == tuple(cells.names)


def test_a_users_field_is_cropped_and_a_crop_is_found_in_the_model():
    from napari_biogan.data.cells import crop_field_cells
    from napari_biogan.metrics.cells import find_cell

    field = np.full((80, 96), 50.0)
    yy, xx = np.mgrid[:80, :96]
    for y, x in ((20, 30), (55, 70)):
        field[(yy - y) ** 2 + (xx - x) ** 2 < 49] = 200.0
    cells = crop_field_cells([field, field[::-1], field[:, ::-1]], size=16, channel_names=("BF", "YFP", "TFP"))
    assert cells.images.shape == (2, 3, 16, 16) and cells.names == ["YFP", "TFP"]
    torch.manual_seed(0)
    model = Model.new("cells", **dict(TINY, height=16, width=16), proteins=("YFP", "TFP"))
    fit, point = find_cell(model, cells.images[0], restarts=2, steps=5)
    assert point.state["latent"].shape == (1, 8) and point.controls["protein"] == 0
    fit, point = find_cell(model, cells.images[0][[0, 2]], protein=2, restarts=2, steps=5)
    assert point.controls["protein"] == 2 and fit.reconstruction.shape == (1, 3, 16, 16)
    with pytest.raises(DataError, match="needs its protein"):
        find_cell(model, cells.images[0][:2])


# -- crop-cells (CLI) and the yeast-cells sample -------------------------------------------------------------

def _field_files(tmp_path):
    """A two-channel field as channel TIFFs and as one (C, Y, X) TIFF, its three cell centres and Labels."""
    import tifffile

    yy, xx = np.mgrid[:90, :120]
    shape, protein, labels = np.full((90, 120), 100.0), np.full((90, 120), 5.0), np.zeros((90, 120), np.uint16)
    centres = [(25, 30), (60, 85), (70, 25)]
    for i, (y, x) in enumerate(centres):
        disc = (yy - y) ** 2 + (xx - x) ** 2 < 49
        shape[disc], protein[disc], labels[disc] = 180.0, 90.0 + 10 * i, i + 1
    tifffile.imwrite(tmp_path / "bf.tif", shape.astype(np.float32))
    tifffile.imwrite(tmp_path / "gfp.tif", protein.astype(np.float32))
    tifffile.imwrite(tmp_path / "field.tif", np.stack([shape, protein]).astype(np.uint16))
    tifffile.imwrite(tmp_path / "masks.tif", labels)
    return np.asarray(centres, float)


def test_crop_cells_cli_from_a_table_labels_or_detection_gives_a_training_folder(tmp_path, capsys):
    from napari_biogan.cli import main
    from napari_biogan.data.inputs import load_training_inputs

    centres = _field_files(tmp_path)
    table = tmp_path / "centres.csv"
    table.write_text("index,axis-0,axis-1\n" + "".join(f"{i},{y},{x}\n" for i, (y, x) in enumerate(centres)))
    fields = f"{tmp_path / 'bf.tif'},{tmp_path / 'gfp.tif'}"
    assert main(["crop-cells", fields, "-o", str(tmp_path / "a"), "--centres", str(table), "--size", "16",
                 "--names", "BF,GFP"]) == 0
    assert "cropped 3 cells of 16x16 (BF, GFP)" in capsys.readouterr().out
    crops = read_cell_folders(tmp_path / "a")
    assert crops.images.shape == (3, 2, 16, 16) and crops.names == ["GFP"]
    assert crops.images[:, 0, 8, 8].min() == 255 and crops.images[:, 0, 0, 0].max() == 0  # centred on each cell
    rows = (tmp_path / "a" / "crops.csv").read_text().splitlines()
    assert rows[0] == "file,field,y,x" and rows[1].startswith("GFP/00000.tif") and len(rows) == 4
    assert main(["crop-cells", str(tmp_path / "field.tif"), "-o", str(tmp_path / "b"), "--labels",
                 str(tmp_path / "masks.tif"), "--size", "16"]) == 0
    assert main(["crop-cells", str(tmp_path / "field.tif"), "-o", str(tmp_path / "c"), "--detect",
                 "--size", "16"]) == 0
    detected = read_cell_folders(tmp_path / "c")
    assert np.array_equal(read_cell_folders(tmp_path / "b").images, crops.images) and len(detected) == 3
    model = Model.new("cells", **dict(TINY, height=16, width=16))
    loaded = load_training_inputs(model.family, model.config, {"image": str(tmp_path / "b")})
    assert loaded["image"].shape == (3, 2, 16, 16)


@pytest.mark.parametrize("argv, words", [
    (["--detect"], "needs a shape channel and at least one protein"),  # one channel only
    (["--centres", "missing.csv"], "Cannot read missing.csv"),
    (["--labels", "masks.tif", "--labels", "masks.tif"], "one --labels file per field"),
])
def test_crop_cells_cli_refuses_bad_input_in_one_sentence(argv, words, tmp_path, capsys, monkeypatch):
    from napari_biogan.cli import main

    _field_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    field = "bf.tif" if argv == ["--detect"] else "field.tif"
    assert main(["crop-cells", field, "-o", "out", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and err.count("\n") == 0
    assert not (tmp_path / "out").exists()
    assert main(["crop-cells", "field.tif", "-o", "out", "--detect"]) == 0
    assert main(["crop-cells", "field.tif", "-o", "out", "--detect"]) == 2  # never into a full folder
    assert "not an empty folder" in capsys.readouterr().err


def test_the_yeast_sample_is_held_out_cells_or_one_sentence(monkeypatch, tmp_path):
    from napari_biogan.sample_data import yeast_cells

    monkeypatch.setenv("NAPARI_BIOGAN_DATA", str(tmp_path))
    with pytest.raises(DataError, match="rcell2_yeast"):
        yeast_cells()
    monkeypatch.setenv("NAPARI_BIOGAN_DATA", str(shared_data("rcell2_yeast").parent))
    layers = yeast_cells()
    assert [kw["name"] for _, kw, _ in layers] == ["yeast cells bright-field", "yeast cells YFP", "yeast cells TFP"]
    assert [kw["colormap"] for _, kw, _ in layers] == ["gray", "green", "cyan"]
    from napari_biogan.data.cells import zoo_cell_split

    train, _ = zoo_cell_split(shared_data("rcell2_yeast"))
    seen = {cell.tobytes() for cell in train.images}
    shown = np.stack([data for data, _, _ in layers], 1)
    assert shown.shape == (16, 3, 32, 32) and not any(cell.tobytes() in seen for cell in shown)
