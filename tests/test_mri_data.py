"""MRI data: NIfTI/TIFF volumes, slice folders, attribute tables, subject splits, and every bad input's sentence.

The tests build their own folders (an ADNI-like layout included: ADNI cannot be had here);
the tests of the real data sets skip with a reason when ../shared/data is absent.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from napari_biogan.core.errors import DataError
from napari_biogan.data.attributes import AttributeSpec, parse_specs, read_table, match_rows, table_from_columns
from napari_biogan.data.mri import (SliceSet, load_adni, load_slice_folder, load_volume_folder, read_volume,
                                    scale_slices, subject_split, take_slices)
from real_data import shared_data

torch.set_num_threads(1)


def head(shape=(20, 24, 16), seed=0, brightness=100.0) -> np.ndarray:
    """A synthetic 'head': a bright ellipsoid with a dark core (ventricles), zero background."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(sum(g ** 2 for g in grid))
    volume = np.where(r < 0.8, brightness, 0.0) - np.where(r < 0.25, brightness * 0.6, 0.0)
    return (volume + rng.normal(0, 2, shape) * (r < 0.8)).astype(np.float32)


def write_nifti(path, data, zooms=(1.0, 1.0, 1.0)):
    import nibabel as nib

    image = nib.Nifti1Image(data, np.diag([*zooms, 1.0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


# -- volumes -----------------------------------------------------------------------------------------------

def test_nifti_and_tiff_volumes_give_slices_in_each_orientation(tmp_path):
    import tifffile

    data = head()
    volume = read_volume(write_nifti(tmp_path / "a.nii.gz", data))
    assert volume.kind == "nifti" and volume.data.shape == data.shape
    axial, indices, positions = take_slices(volume, "axial", "centre", slab=3)
    assert axial.shape == (3, 24, 20) and indices == [6, 7, 8]  # (A, R) planes, anterior up
    assert 0.3 < positions.mean() < 0.7
    assert take_slices(volume, "coronal", 5)[0].shape == (1, 16, 20)
    assert take_slices(volume, "sagittal", (2, 6))[0].shape == (4, 16, 24)
    everything = take_slices(volume, "axial", "all", step=2)[2]
    assert everything[0] == 0 and everything[-1] <= 1 and np.all(np.diff(everything) > 0)
    tifffile.imwrite(tmp_path / "a.tif", data.transpose(2, 1, 0))  # (Z, Y, X)
    stack = read_volume(tmp_path / "a.tif")
    assert stack.kind == "tiff" and take_slices(stack, "axial", 3)[0].shape == (1, 24, 20)


def test_anisotropic_voxels_are_resampled_to_square_pixels(tmp_path):
    volume = read_volume(write_nifti(tmp_path / "b.nii", head((20, 10, 16)), zooms=(1.0, 2.0, 1.0)))
    plane = take_slices(volume, "axial", 8)[0][0]
    assert plane.shape == (20, 20)  # 10 voxels of 2 mm -> 20 pixels of 1 mm


def test_scaling_maps_percentiles_to_minus_one_one_and_keeps_the_aspect_ratio():
    slab = np.zeros((2, 30, 60), np.float32)
    slab[:, 10:20, 10:50] = np.linspace(0, 1000, 40)
    scaled = scale_slices(slab, 16)
    assert scaled.shape == (2, 1, 16, 16)
    assert float(scaled.min()) == -1.0 and float(scaled.max()) <= 1.0
    assert float((scaled[:, :, :4] + 1).abs().max()) < 1e-5  # padded above and below: the slice was wide
    assert float((scaled[:, :, -4:] + 1).abs().max()) < 1e-5 and float(scaled[:, :, 8].max()) > 0
    yy, xx = np.mgrid[:40, :48]
    head_slice = np.where(np.hypot(yy - 20, xx - 24) < 16, 50 + xx * 3.0, 0).astype(np.float32)
    once = scale_slices(head_slice, 32)
    assert float((scale_slices(once, 32) - once).abs().max()) < 0.01  # scaling twice changes (almost) nothing
    rgb = np.repeat(slab[:, None], 3, axis=1)
    assert torch.allclose(scale_slices(rgb, 16), scaled, atol=1e-6)


# -- tables and attributes --------------------------------------------------------------------------------

def test_attribute_declarations_round_trip_and_columns_convert_by_kind():
    specs = parse_specs(["dx:ordered:CN|MCI|Dementia", "sex:binary:m|f", "age:continuous:20|90", "site:categorical:A|B"])
    assert [AttributeSpec.parse(s.text()) for s in specs] == list(specs)
    dx, sex, age, site = specs
    assert dx.values(["CN", "dementia", "MCI"]).tolist() == [0, 2, 1]
    assert dx.values([0, 2, 1]).tolist() == [0, 2, 1]
    assert sex.values(["m", "f"]).tolist() == [0, 1] and sex.values(["true", "no"]).tolist() == [1, 0]
    assert age.values(["71.5", 60]).tolist() == [71.5, 60]
    assert site.values(["B"]).tolist() == [1]
    assert dx.slider_range() == (-1.0, 3.0) and sex.slider_range() == (-9.0, 10.0)
    assert age.slider_range() == (-50.0, 160.0)


@pytest.mark.parametrize("text, message", [
    ("age", "name:kind"), ("age:numeric:1|2", "kinds are"), ("dx:ordered:CN", "at least two"),
    ("sex:binary:a|b|c", "two values"), ("age:continuous", "low|high"), ("age:continuous:90|20", "lower first"),
])
def test_malformed_declarations_are_one_sentence(text, message):
    with pytest.raises(ValueError, match=message):
        AttributeSpec.parse(text)


@pytest.mark.parametrize("kind, cells, message", [
    ("age:continuous:20|90", ["71", "unknown", "60"], "mixes numbers and text"),
    ("age:continuous:20|90", ["old", "young"], "takes numbers only"),
    ("dx:ordered:CN|MCI|AD", ["CN", "2", "AD"], "mixes numbers and text"),
    ("dx:ordered:CN|MCI|AD", ["CN", "LMCI"], "'LMCI', which is not one of the declared classes"),
    ("dx:ordered:CN|MCI|AD", [0, 5], "class indices 0 to 2"),
    ("age:continuous:20|90", ["71", ""], "no value in row 2"),
])
def test_bad_columns_are_one_sentence(kind, cells, message):
    with pytest.raises(DataError, match=message):
        AttributeSpec.parse(kind).values(cells, "t.csv")


def test_tables_match_rows_by_file_or_by_subject_id(tmp_path):
    (tmp_path / "t.csv").write_text("file,dx,age\nsub-01.nii.gz,CN,70\nsub-02,AD,80\n")
    table = read_table(tmp_path / "t.csv")
    assert match_rows(table, ["x/sub-02.nii.gz", "sub-01.nii.gz", "sub-03.nii"]) == [1, 0, None]
    (tmp_path / "s.csv").write_text("Subject;DX\n002_S_0295;CN\n002_S_0413;Dementia\n")  # semicolons
    table = read_table(tmp_path / "s.csv")
    keys = ["002_S_0413/MPRAGE/scan.nii", "ADNI_002_S_0295_MR_x.nii", "1002_S_02950.nii"]
    assert match_rows(table, keys, "subject") == [1, 0, None]  # a whole word, not a substring of another id


def test_a_table_whose_ids_match_no_file_is_one_sentence(tmp_path):
    table = table_from_columns({"file": ["a.nii", "b.nii"], "dx": ["CN", "AD"]}, "t.csv")
    with pytest.raises(DataError, match="None of the ids in the 'file' column of t.csv"):
        match_rows(table, ["c.nii", "d.nii"])
    with pytest.raises(DataError, match="no 'Subject' column"):
        match_rows(table, ["a.nii"], "Subject")


def test_unreadable_tables_say_so(tmp_path):
    (tmp_path / "empty.csv").write_text("file,dx\n")
    with pytest.raises(DataError, match="no rows"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "t.xls").write_bytes(b"not a spreadsheet")
    with pytest.raises(DataError, match="t.xls"):  # either 'needs pandas with xlrd' or 'Cannot read'
        read_table(tmp_path / "t.xls")
    with pytest.raises(DataError, match="No table"):
        read_table(tmp_path / "missing.csv")


# -- folders ------------------------------------------------------------------------------------------------

def adni_folder(root, subjects=6, scans=2):
    """An ADNI-like layout: <root>/<subject>/<visit>/ADNI_<subject>_....nii plus a table with DX and ADAS."""
    rows = ["Subject,DX,ADAS13"]
    for s in range(subjects):
        sid = f"{s:03d}_S_{1000 + s}"
        for v in range(scans):
            write_nifti(root / sid / f"visit{v}" / f"ADNI_{sid}_MR_MPRAGE_{v}.nii.gz", head(seed=10 * s + v))
        rows.append(f"{sid},{['CN', 'MCI', 'Dementia'][s % 3]},{10 + 5 * s}")
    (root.parent / "adnimerge.csv").write_text("\n".join(rows) + "\n")
    return root.parent / "adnimerge.csv"


def test_adni_layout_gives_slabs_with_diagnosis_and_scores_split_by_subject(tmp_path):
    table = adni_folder(tmp_path / "ADNI")
    data = load_adni(tmp_path / "ADNI", table, attributes=("DX:ordered:CN|MCI|Dementia", "ADAS13:continuous:0|85"),
                     slab=3, size=16)
    assert len(data) == 6 * 2 * 3 and data.images.shape[1:] == (1, 16, 16)
    assert data.counts("DX") == {"CN": 12, "MCI": 12, "Dementia": 12}
    assert set(data.column("ADAS13")) == {10, 15, 20, 25, 30, 35}
    assert len(set(data.subjects)) == 6  # two scans of a subject are one group
    train, held = data.split(0.34, seed=1)
    assert not set(train.subjects) & set(held.subjects) and len(set(held.subjects)) == 2
    sources = data.sources()
    assert sources["image"].shape == (36, 1, 16, 16) and set(sources["attributes"]) == {"DX", "ADAS13"}


def test_slice_position_is_an_attribute_of_every_slice(tmp_path):
    for i in range(2):
        write_nifti(tmp_path / "v" / f"s{i}.nii", head(seed=i))
    data = load_volume_folder(tmp_path / "v", attributes=("position:continuous:0|1",), slices="all", step=3, size=16)
    column = data.column("position")
    assert column.min() == 0 and column.max() <= 1 and len(set(data.subjects)) == 2


def test_subject_split_never_mixes_subjects():
    subjects = np.repeat([f"s{i}" for i in range(10)], 7)
    for seed in range(5):
        held = subject_split(subjects, 0.3, seed)
        assert not set(subjects[held]) & set(subjects[~held]) and len(set(subjects[held])) == 3
    with pytest.raises(DataError, match="at least two subjects"):
        subject_split(["a"] * 5)


def test_png_and_jpeg_slices_in_class_folders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, suffix in (("CN", ".png"), ("AD", ".jpg")):
        (tmp_path / cls).mkdir()
        for scan in (1, 2):
            for z in (26, 27):
                pixels = (rng.random((20, 18)) * 255).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / cls / f"{z} ({scan}){suffix}")
    data = load_slice_folder(tmp_path, size=16, attribute="dx", classes=("CN", "AD"), ordered=True,
                             subject_pattern=r"\((\d+)\)")
    assert len(data) == 8 and data.specs[0].kind == "ordered" and data.counts("dx") == {"CN": 4, "AD": 4}
    assert sorted(set(data.subjects)) == ["AD/1", "AD/2", "CN/1", "CN/2"]
    with pytest.raises(DataError, match="no sub-folder for the class 'MCI'"):
        load_slice_folder(tmp_path, classes=("CN", "MCI"))


# -- every bad volume is one sentence ---------------------------------------------------------------------

def test_bad_volumes_are_one_sentence(tmp_path):
    with pytest.raises(DataError, match="4D image .* a 3D volume is needed"):
        read_volume(write_nifti(tmp_path / "4d.nii", np.ones((4, 4, 4, 3), np.float32)))
    with pytest.raises(DataError, match="holds no signal"):
        read_volume(write_nifti(tmp_path / "flat.nii", np.zeros((4, 4, 4), np.float32)))
    with pytest.raises(DataError, match="2D image"):
        read_volume(write_nifti(tmp_path / "2d.nii", np.ones((4, 4), np.float32)))
    good = write_nifti(tmp_path / "good.nii.gz", head())
    (tmp_path / "cut.nii.gz").write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match="Cannot read cut.nii.gz as a NIfTI volume"):
        read_volume(tmp_path / "cut.nii.gz")
    (tmp_path / "junk.nii").write_bytes(b"\0" * 10)
    with pytest.raises(DataError, match="Cannot read junk.nii"):
        read_volume(tmp_path / "junk.nii")
    (tmp_path / "zero.nii.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match="zero.nii.gz"):
        read_volume(tmp_path / "zero.nii.gz")
    volume = read_volume(good)
    with pytest.raises(DataError, match=r"Slice 40 is out of range: good.nii.gz has 16 axial slices \(0-15\)"):
        take_slices(volume, "axial", 40)
    with pytest.raises(DataError, match="orientation is one of"):
        take_slices(volume, "oblique", 1)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="holds no NIfTI"):
        load_volume_folder(tmp_path / "nothing")


# -- the training inputs the CLI and the widgets read (data/inputs.py) -----------------------------------------

def fader(**config):
    """The Fader family and a tiny config of it (what load_training_inputs is given)."""
    from napari_biogan.core.registry import get_family

    family = get_family("fader")
    return family, family.default_config(**{"size": 16, "depth": 2, **config})


def test_training_inputs_read_an_adni_folder_with_its_subject_table(tmp_path):
    from napari_biogan.data.inputs import load_training_inputs

    table = adni_folder(tmp_path / "ADNI", subjects=3)
    family, config = fader(attributes=("DX:ordered:CN|MCI|Dementia", "position:continuous:0|1"), slab=3)
    loaded = load_training_inputs(family, config, {"image": str(tmp_path / "ADNI"), "attributes": str(table)})
    assert loaded["image"].shape == (3 * 2 * 3, 1, 16, 16)  # 3 subjects x 2 scans x a slab of 3
    assert list(loaded["attributes"]["DX"][::6]) == ["CN", "MCI", "Dementia"]  # each scan takes its subject's row
    data = family.prepare_data(loaded, config)
    assert data.description.startswith("18 slices (DX: CN 6, MCI 6, Dementia 6; position")
    # a subject missing from the table: its volumes are left out; a coronal slab is taken when the config says so
    (tmp_path / "short.csv").write_text("Subject,DX\n000_S_1000,CN\n002_S_1002,Dementia\n")
    family, config = fader(attributes=("DX:ordered:CN|MCI|Dementia",), orientation="coronal", slices="all",
                           slice_step=4)
    loaded = load_training_inputs(family, config, {"image": str(tmp_path / "ADNI"),
                                                   "attributes": str(tmp_path / "short.csv")})
    assert set(loaded["attributes"]["DX"]) == {"CN", "Dementia"}
    assert len(loaded["image"]) == len(loaded["attributes"]["DX"]) and len(loaded["image"]) % 4 == 0


def test_training_inputs_read_one_nifti_and_folders_of_2d_slices(tmp_path):
    from PIL import Image

    from napari_biogan.data.inputs import load_image_source, load_training_inputs

    family, config = fader(slices="all", slice_step=2)
    volume = write_nifti(tmp_path / "one.nii.gz", head())
    images = load_image_source(str(volume), family, config)
    assert images.shape[1:] == (1, 16, 16) and len(images) >= 5 and images.min() >= -1 and images.max() <= 1
    rng = np.random.default_rng(0)
    for cls, suffix in (("CN", ".png"), ("AD", ".jpg")):
        (tmp_path / "slices" / cls).mkdir(parents=True)
        for scan in (1, 2):
            Image.fromarray((rng.random((20, 18)) * 255).astype(np.uint8)).save(
                tmp_path / "slices" / cls / f"26 ({scan}){suffix}")
    family, config = fader(attributes=("dx:ordered:CN|MCI|AD",))
    loaded = load_training_inputs(family, config, {"image": str(tmp_path / "slices")})  # no table: the folders
    assert loaded["image"].shape == (4, 20, 18) and list(loaded["attributes"]["dx"]) == ["AD", "AD", "CN", "CN"]
    (tmp_path / "t.csv").write_text("file,dx\nCN/26 (1).png,MCI\nCN/26 (2).png,CN\nAD/26 (1).jpg,AD\n"
                                    "AD/26 (2).jpg,AD\n")  # a table wins over the folder names
    loaded = load_training_inputs(family, config, {"image": str(tmp_path / "slices"),
                                                   "attributes": str(tmp_path / "t.csv")})
    assert list(loaded["attributes"]["dx"]) == ["AD", "AD", "MCI", "CN"]


@pytest.mark.parametrize("case, message", [
    ("4d", r"4d.nii is a 4D image .* a 3D volume is needed"),
    ("flat", "flat.nii holds no signal"),
    ("corrupt", "Cannot read corrupt.nii.gz as a NIfTI volume"),
    ("empty", r"Cannot read empty.nii.gz as a NIfTI volume; it is damaged or not NIfTI"),
    ("no voxels", r"zero.nii is empty \(shape \(0, 4, 4\)\)"),
    ("no match", "None of the ids in the 'file' column of t.csv"),
    ("missing row", r"t.csv has no row for 1 image\(s\), e.g. b.png"),
    ("mixed", "The column 'age' of the attributes mixes numbers and text"),
    ("slice", r"Slice 40 is out of range: good.nii.gz has 16 axial slices \(0-15\)"),
    ("bad slices", "Slices are 'centre', 'all', an index"),
])
def test_bad_training_inputs_are_one_sentence(tmp_path, case, message):
    from PIL import Image

    from napari_biogan.data.inputs import load_training_inputs

    family, config = fader(attributes=("age:continuous:20|90",), slices="40" if case == "slice" else "centre")
    image, table = tmp_path / "images", tmp_path / "t.csv"
    if case in ("4d", "flat", "no voxels"):
        shape = {"4d": (4, 4, 4, 3), "flat": (4, 4, 4), "no voxels": (0, 4, 4)}[case]
        name = "zero" if case == "no voxels" else case
        image = write_nifti(tmp_path / f"{name}.nii", np.ones(shape) if case == "4d" else np.zeros(shape))
    elif case in ("corrupt", "empty", "slice", "bad slices"):
        good = write_nifti(tmp_path / "good.nii.gz", head())
        image = {"corrupt": tmp_path / "corrupt.nii.gz", "empty": tmp_path / "empty.nii.gz"}.get(case, good)
        if case == "corrupt":
            image.write_bytes(good.read_bytes()[:200])
        elif case == "empty":
            image.write_bytes(gzip.compress(b""))
    else:
        image.mkdir()
        for name in ("a", "b"):
            Image.fromarray(np.full((8, 8), 100, np.uint8)).save(image / f"{name}.png")
    rows = {"no match": "file,age\nx.png,30\ny.png,40\n", "missing row": "file,age\na.png,30\n",
            "mixed": "file,age\na.png,30\nb.png,old\n"}.get(case, "file,age\nnone,30\n")
    table.write_text(rows)
    with pytest.raises(ValueError if case == "bad slices" else DataError, match=message):
        if case == "bad slices":  # refused with the config, before any data is read
            fader(slices="middle")
        loaded = load_training_inputs(family, config, {"image": str(image), "attributes": str(table)})
        family.prepare_data(loaded, config)


# -- the real data sets (skipped without ../shared/data) ------------------------------------------------------

def test_real_dementia_test_split_keeps_scans_together():
    from napari_biogan.data.mri import DEMENTIA_CLASSES, load_dementia_slices

    root = shared_data("alzheimer_mri_4class")
    data = load_dementia_slices(root, "test", size=32)
    assert data.counts("diagnosis") == dict(zip(DEMENTIA_CLASSES, (640, 448, 179, 12)))
    assert len(set(data.subjects)) == 200  # slices 26-32 of 200 scans
    train, held = data.split(0.25, seed=0)
    assert not set(train.subjects) & set(held.subjects)


def test_real_ixi_volumes_give_age_sex_and_position():
    from napari_biogan.data.mri import IXI_NOTE, load_ixi

    data = load_ixi(shared_data("ixi_t1_brain"), step=30, size=32)
    assert len(set(data.subjects)) == 8 and IXI_NOTE in data.description
    assert set(data.column("sex")) == {0, 1} and 20 < data.column("age").min() < data.column("age").max() < 90
    # the shipped IXI models' split: by subject, the two held-out subjects' slices on one side only
    from napari_biogan.data.mri import IXI_HELD_OUT, ixi_split

    train, held = ixi_split(data)
    assert {str(s).split("-")[0] for s in held.subjects} == set(IXI_HELD_OUT)
    assert not set(train.subjects) & set(held.subjects) and len(train) + len(held) == len(data)
    with pytest.raises(DataError, match="held-out subjects"):
        ixi_split(train)
