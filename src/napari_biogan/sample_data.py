"""File > Open Sample > napari-biogan: generated digits, Moving MNIST, T98G cell clips, a nuclei field.

The digits come from the shipped demo model, so they always work. Moving MNIST
and the T98G clips are built from public data sets that live beside the project
(not in the package); without them the entry fails with one plain sentence.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .core.errors import DataError

LayerData = tuple[Any, dict[str, Any], str]

#: samples shown by "Synthetic digits"
DIGITS_N, DIGITS_SEED = 16, 0
#: Moving MNIST clips built for the sample (the paper's 10 frames of 64x64)
MMNIST_CLIPS = 16
#: T98G clips: (frames, height, width) and how many
T98G_CLIP_SIZE, T98G_MAX_CLIPS = (16, 64, 64), 12
#: the held-out BBBC039 field shown by "Nuclei field" (one of data.segmentation.BBBC039_TEST)
NUCLEI_FIELD = "IXMtest_A09_s1"


def synthetic_digits() -> list[LayerData]:
    """16 digits from the shipped demo model, seed 0, as one (N, Y, X) layer with provenance."""
    from .core.model import GanModel
    from .core.zoo import resolve_model
    from .io import sample_layers

    model = GanModel.load(resolve_model(None), device="cpu")
    try:
        images = model.sample(DIGITS_N, seed=DIGITS_SEED, precision="fp32")
    finally:
        model.release()
    provenance = {"family": model.family.name, "model": model.name, "model_sha256": model.sha256,
                  "seed": DIGITS_SEED, "n": DIGITS_N, "latent": "torch.randn from seed (CPU generator)",
                  "precision": "fp32"}
    return sample_layers(images, model.channels, "NC" + "".join(model.family.sample_axes),
                         "synthetic digits", provenance)


def moving_mnist() -> list[LayerData]:
    """16 Moving MNIST clips (N, T, Y, X): one digit bouncing horizontally on a 64x64 canvas."""
    mnist = _data_module("mnist", "Moving MNIST")
    moving = _data_module("moving_mnist", "Moving MNIST")
    digits, _ = mnist.load_mnist_test()
    clips = np.asarray(moving.build_moving_mnist(digits, MMNIST_CLIPS, frames=10, size=64, seed=0),
                       dtype=np.float32)
    return [(clips, {"name": "moving mnist", "axis_labels": ("N", "T", "Y", "X"), "colormap": "gray",
                     "contrast_limits": (0.0, 1.0),
                     "metadata": {"source": "MNIST test digits, Moving MNIST (SAVGAN layout), seed 0"}},
             "image")]


def t98g_clips() -> list[LayerData]:
    """Clips (N, T, Y, X) cropped around moving T98G glioblastoma cells (Usiigaci time-lapse)."""
    clips_module = _data_module("clips", "The T98G cell clips")
    # t98g_clips picks the down-scaling that keeps one whole cell in a clip (see data/clips.py)
    clips, info = clips_module.t98g_clips(size=T98G_CLIP_SIZE, max_clips=T98G_MAX_CLIPS)
    clips = np.asarray(clips, dtype=np.float32)
    if len(clips) == 0:
        raise DataError("No moving cells were found in the T98G time-lapse.")
    low, high = np.percentile(clips, [0.5, 99.5])
    return [(clips, {"name": "t98g clips", "axis_labels": ("N", "T", "Y", "X"), "colormap": "gray",
                     "contrast_limits": (float(low), float(high)),
                     "metadata": {"source": "Usiigaci T98G phase-contrast time-lapse (MIT, OIST 2018)",
                                  "clips": [dict(i) for i in info or []]}},
             "image")]


def nuclei_field() -> list[LayerData]:
    """One HELD-OUT BBBC039 field of U2OS nuclei (never seen by the shipped nuclei-seg model) and its
    annotation, hidden, for Evaluate; segment the field with the nuclei-seg model in Generate."""
    segmentation = _data_module("segmentation", "The nuclei field")
    from .data.shared import shared_data_dir

    root = shared_data_dir("bbbc039_nuclei", "The nuclei field", must_exist=True)
    pairs = segmentation.load_bbbc039(root, [NUCLEI_FIELD])
    image = pairs.images[0]
    low, high = np.percentile(image, [0.5, 99.8])
    source = (f"BBBC039 field {NUCLEI_FIELD} (U2OS nuclei, Hoechst; Broad Bioimage Benchmark Collection, "
              "CC0), held out from the shipped nuclei-seg model's training")
    return [(image, {"name": f"nuclei {NUCLEI_FIELD}", "colormap": "gray",
                     "contrast_limits": (float(low), float(high)), "metadata": {"source": source}}, "image"),
            (pairs.labels[0], {"name": f"nuclei {NUCLEI_FIELD} annotated classes", "visible": False,
                               "metadata": {"source": source, "classes": list(pairs.class_names)}}, "labels")]


def yeast_cells(n: int = 16) -> list[LayerData]:
    """``n`` HELD-OUT rcell2 budding-yeast cells (never seen by the shipped yeast-cells model), 32x32, as one
    (N, Y, X) layer per channel: bright-field (shape, grey), YFP (green), TFP (cyan), additive."""
    cells_data = _data_module("cells", "The yeast-cells sample")
    from .core.export import PROVENANCE_KEY
    from .data.shared import shared_data_dir

    root = shared_data_dir("rcell2_yeast", "The yeast-cells sample", must_exist=True)
    _, held_out = cells_data.zoo_cell_split(root)
    images = held_out.images[np.linspace(0, len(held_out) - 1, n).astype(int)]
    source = f"{n} held-out cells of the " + cells_data.RCELL2_NOTE
    names, colours = held_out.channel_names, ("gray", "green", "cyan")
    listed = [{"name": c, "colormap": m} for c, m in zip(names, colours)]
    # each channel its layer, named and tagged with its channel so "Find this image in the model" takes all
    return [(images[:, c], {"name": f"yeast cells {name}", "colormap": colours[c], "blending": "additive",
                            "contrast_limits": (0, 255), "axis_labels": ("N", "Y", "X"),
                            "metadata": {"source": source, PROVENANCE_KEY: {"axes": "NYX", "channel": name,
                                                                            "channels": listed}}}, "image")
            for c, name in enumerate(names)]


def mri_slice(name: str = "NonDemented/26 (62).jpg") -> list[LayerData]:
    """One HELD-OUT axial T1 slice of the 4-class dementia set (its test split: never seen by the shipped
    mri-fader model or its evaluation classifier), raw 8-bit grey (Y, X), for the Fader sliders in Explore."""
    mri = _data_module("mri", "The MRI slice")
    from .data.shared import shared_data_dir

    root = shared_data_dir("alzheimer_mri_4class", "The MRI slice", must_exist=True)
    path = root / "test" / name
    if not path.is_file():
        raise DataError(f"The MRI slice sample needs {path}, which is not there.")
    source = (f"held-out test slice {name} of the Kaggle 'Alzheimer's Dataset (4 class of Images)' (ODbL 1.0), "
              "never seen by the shipped mri-fader model")
    title = f"mri slice {name.rsplit('/', 1)[-1].rsplit('.', 1)[0]} (held out)"
    return [(mri.read_slice(path), {"name": title, "colormap": "gray", "contrast_limits": (0.0, 255.0),
                                    "metadata": {"source": source}}, "image")]


def ixi_slice(position: float = 0.5) -> list[LayerData]:
    """One axial T1 slice of a HELD-OUT IXI subject (``data.mri.IXI_HELD_OUT[0]``: never seen by the
    shipped ixi-fader model or its position regressor), the brain's slice nearest ``position`` (0 = its
    lowest slice, 1 = its top), raw intensities (Y, X), cut to the head as the training slices were,
    for the slice-position slider in Explore."""
    mri = _data_module("mri", "The IXI slice")
    from .data.shared import shared_data_dir

    root = shared_data_dir("ixi_t1_brain", "The IXI slice", must_exist=True)
    subject = mri.IXI_HELD_OUT[0]
    files = sorted((root / "skullstripped").glob(f"{subject}-*.nii*"))
    if not files:
        raise DataError(f"The IXI slice sample needs {root / 'skullstripped'}/{subject}-*.nii.gz, which is not there.")
    # cut to the box around the head, as the training slices were: the model expects the brain to fill the frame
    planes, indices, positions = mri.head_planes(files[0], "axial", "all")
    nearest = int(np.abs(positions - position).argmin())
    source = (f"held-out subject {subject} of the IXI data set (CC BY-SA 3.0), axial slice {indices[nearest]} "
              f"(position {positions[nearest]:.2f} of the brain), never seen by the shipped ixi-fader model")
    image = planes[nearest].astype(np.float32)
    return [(image, {"name": f"ixi {subject} axial {indices[nearest]} (held out)", "colormap": "gray",
                     "contrast_limits": (float(image.min()), float(np.percentile(image, 99.8))),
                     "metadata": {"source": source}}, "image")]


def _data_module(name: str, what: str):
    """A module of ``napari_biogan.data``, or a plain DataError if this installation lacks it."""
    try:
        return importlib.import_module(f"napari_biogan.data.{name}")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("napari_biogan"):
            raise DataError(f"{what} needs napari_biogan.data.{name}, which this installation lacks.") from None
        raise
