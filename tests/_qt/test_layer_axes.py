"""A 2D sample stack beside a video: napari lines layers up from the right, so without help the
stack's N would follow the video's T slider. Our layers get a length-1 T axis (_qt/layer_axes.py)."""

import numpy as np
import pytest
import tifffile

from napari_biogan._qt._common import add_layers
from napari_biogan._qt.export_widget import ExportWidget
from napari_biogan._qt.generate_widget import GenerateWidget
from napari_biogan._qt.layer_axes import INSERTED_KEY, inserted_axes, layer_array, wanted_axes
from napari_biogan._qt.session import session_for
from napari_biogan.core.export import PROVENANCE_KEY, read_provenance
from napari_biogan.core.model import GanModel

N, FRAMES, SIZE = 4, 6, 16


def _image_model():
    return GanModel.new("dcgan2d", height=SIZE, width=SIZE, latent_dim=8, base_width=8, seed=1)


def _video_model():
    return GanModel.new("savgan", frames=FRAMES, height=SIZE, width=SIZE, latent_dim=8, widths=(16, 8),
                        critic_widths=(8, 16), frame_critic_widths=(8, 16), landmarks=8, seed=2)


def _generate(widget, wait_workers, model, n, seed):
    session_for(widget.viewer).set_model(model)
    widget.n_spin.setValue(n)
    widget.seed_spin.setValue(seed)
    widget.generate_button.click()
    wait_workers(widget, timeout=60000)
    return widget.last_layers[0]


def _shown(layer) -> np.ndarray:
    """The 2D plane the layer shows at the viewer's current position (napari's own slice)."""
    return np.asarray(layer._data_view)


def _stack_and_video(make_napari_viewer, wait_workers, video_first: bool):
    viewer = make_napari_viewer()
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    image_model, video_model = _image_model(), _video_model()
    if video_first:
        video = _generate(widget, wait_workers, video_model, 3, 5)
        viewer.dims.set_point(1, 3)
        stack = _generate(widget, wait_workers, image_model, N, 3)
        assert viewer.dims.point[1] == 3  # the new stack's first sample is shown; the video's frame stays
    else:
        stack = _generate(widget, wait_workers, image_model, N, 3)
        video = _generate(widget, wait_workers, video_model, 3, 5)
    return viewer, widget, stack, video, image_model


@pytest.mark.parametrize("video_first", [False, True], ids=["stack-then-video", "video-then-stack"])
def test_the_t_slider_leaves_a_2d_stack_alone_and_n_moves_both(make_napari_viewer, wait_workers, video_first):
    viewer, _, stack, video, image_model = _stack_and_video(make_napari_viewer, wait_workers, video_first)
    samples = image_model.sample(N, seed=3, precision="fp32")[:, 0]
    assert stack.data.shape == (N, 1, SIZE, SIZE) and inserted_axes(stack) == (1,)
    assert tuple(stack.axis_labels) == ("N", "T", "Y", "X")
    assert stack.metadata[INSERTED_KEY] == [1] and stack.metadata[PROVENANCE_KEY]["axes"] == "NYX"
    own = layer_array(stack)
    assert own.shape == (N, SIZE, SIZE) and np.shares_memory(own, stack.data)  # a view, not a copy
    np.testing.assert_array_equal(own, samples)
    assert video.data.shape == (3, FRAMES, SIZE, SIZE) and not inserted_axes(video)
    assert viewer.dims.ndim == 4 and tuple(viewer.dims.axis_labels) == ("N", "T", "Y", "X")
    assert viewer.dims.nsteps[:2] == (N, FRAMES)

    viewer.dims.set_point(0, 2)
    for t in range(FRAMES):  # every frame: the same 2D sample, never a blank (a length-1 axis left behind)
        viewer.dims.set_point(1, t)
        np.testing.assert_array_equal(_shown(stack), samples[2])
        np.testing.assert_array_equal(_shown(video), video.data[2, t])
    viewer.dims.set_point(1, 4)
    viewer.dims.set_point(0, 1)  # N moves both
    np.testing.assert_array_equal(_shown(stack), samples[1])
    np.testing.assert_array_equal(_shown(video), video.data[1, 4])


def test_removing_the_video_removes_the_inserted_axis(make_napari_viewer, wait_workers):
    viewer, _, stack, video, _ = _stack_and_video(make_napari_viewer, wait_workers, video_first=False)
    before = layer_array(stack)
    viewer.layers.remove(video)
    assert stack.data.shape == (N, SIZE, SIZE) and not inserted_axes(stack) and INSERTED_KEY not in stack.metadata
    assert tuple(stack.axis_labels) == ("N", "Y", "X") and viewer.dims.ndim == 3
    np.testing.assert_array_equal(stack.data, before)
    assert np.allclose(stack.scale, 1.0)


def test_export_of_a_padded_stack_writes_the_file_it_wrote_before(make_napari_viewer, wait_workers, tmp_path):
    viewer = make_napari_viewer()
    widget, export = GenerateWidget(viewer), ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.window.add_dock_widget(export)
    image_model = _image_model()
    stack = _generate(widget, wait_workers, image_model, N, 3)

    def written(name):
        viewer.layers.selection = {stack}
        export.output_row.set_path(tmp_path / name)
        export.export_button.click()
        wait_workers(export)
        with tifffile.TiffFile(tmp_path / name) as tif:
            return tif.asarray(), tif.series[0].axes, read_provenance(tmp_path / name)

    plain, plain_axes, plain_prov = written("before.tif")
    _generate(widget, wait_workers, _video_model(), 2, 5)
    assert inserted_axes(stack) == (1,)
    padded, padded_axes, padded_prov = written("after.tif")
    np.testing.assert_array_equal(padded, plain)
    np.testing.assert_array_equal(padded, image_model.sample(N, seed=3, precision="fp32")[:, 0])
    assert padded_axes == plain_axes
    assert padded_prov == plain_prov and padded_prov["axes_in"] == "CNYX"
    assert INSERTED_KEY not in str(padded_prov)
    # the plugin's reader opens it back beside the video with the axis inserted again, same pixels
    opened = viewer.open(tmp_path / "after.tif", plugin="napari-biogan")[0]
    assert inserted_axes(opened) == (1,) and opened.data.shape == (N, 1, SIZE, SIZE)
    np.testing.assert_array_equal(layer_array(opened), plain)


def test_save_layers_writes_a_padded_stack_without_its_inserted_axis(make_napari_viewer, wait_workers, tmp_path):
    """Regression: File > Save Layers (the npe2 writer) got the padded (N, 1, Y, X) data and wrote a
    one-frame video; it must write the generated (N, Y, X) stack."""
    from napari_biogan.io import read_tiff, write_layers

    viewer = make_napari_viewer()
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    image_model = _image_model()
    stack = _generate(widget, wait_workers, image_model, N, 3)
    _generate(widget, wait_workers, _video_model(), 2, 5)
    assert stack.data.shape == (N, 1, SIZE, SIZE)
    data, meta, kind = stack.as_layer_data_tuple()
    path = write_layers(str(tmp_path / "saved.tif"), [(data, meta, kind)])[0]
    assert read_provenance(path)["axes_in"] == "CNYX"
    (reread, _, _), = read_tiff(path)
    np.testing.assert_array_equal(reread, image_model.sample(N, seed=3, precision="fp32")[:, 0])


def test_find_this_image_generate_and_train_take_a_padded_stack(make_napari_viewer, qtbot, wait_workers,
                                                                  tmp_path):
    from napari_biogan._qt.explore_widget import ExploreWidget
    from napari_biogan._qt.train_widget import TrainWidget

    viewer, widget, stack, _, image_model = _stack_and_video(make_napari_viewer, wait_workers, False)
    samples = layer_array(stack).copy()
    # Explore "Find this image in the model": the sample under the N slider, whatever T says
    session_for(viewer).set_model(image_model)
    explore = ExploreWidget(viewer)
    viewer.window.add_dock_widget(explore)
    qtbot.waitUntil(lambda: bool(explore.direction_sliders) and not explore.busy, timeout=30000)
    viewer.dims.set_point(0, 2)
    viewer.dims.set_point(1, FRAMES - 1)
    viewer.layers.selection.active = stack
    explore.fit_to_layer()
    qtbot.waitUntil(lambda: explore.last_fit is not None, timeout=30000)
    wait_workers(explore, timeout=30000)
    origin = explore.current_point().origin
    assert origin["fitted_to"] == stack.name and origin["index"] == [2]
    assert explore.last_fit.mse < 0.01
    # Train from the layer: the worker gets the stack's own (N, Y, X) array
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(train)
    train.family_combo.setCurrentIndex(train.family_combo.findData("dcgan2d"))
    train.input_rows["image"].layer_picker.setCurrentText(stack.name)
    train.output_row.set_path(tmp_path / "t.safetensors")
    job = train.make_job()
    np.testing.assert_array_equal(job.sources["image"], samples)
    assert f"{(N, SIZE, SIZE)}" in job.settings.data_description


def test_an_image_family_runs_on_a_padded_stack(make_napari_viewer, wait_workers):
    from toy_family import toy_pairs

    viewer = make_napari_viewer()
    images, _ = toy_pairs(3, 24)
    add_layers(viewer, [(np.zeros((2, FRAMES, 24, 24), np.float32),
                         {"name": "video", "axis_labels": ("N", "T", "Y", "X")}, "image"),
                        (images, {"name": "cells", "metadata": {PROVENANCE_KEY: {"axes": "NYX"}}}, "image")])
    cells = viewer.layers["cells"]
    assert cells.data.shape == (3, 1, 24, 24)  # padded on creation: napari never saw it unaligned
    model = GanModel.new("toy-seg")
    session_for(viewer).set_model(model)
    widget = GenerateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image_picker.setCurrentText("cells")
    widget.generate_button.click()
    wait_workers(widget)
    expected = model.run({"image": images[:, None]}, precision="fp32")
    out = widget.last_layers
    assert out and all(inserted_axes(layer) == (1,) for layer in out)  # its outputs line up too
    for layer in out:
        key = layer.metadata[PROVENANCE_KEY]["output"]
        values = expected[key][:, 0] if expected[key].ndim == 4 else expected[key]
        np.testing.assert_allclose(layer_array(layer), values, atol=1e-6)


def test_in_place_updates_keep_the_inserted_axis(make_napari_viewer):
    viewer = make_napari_viewer()
    add_layers(viewer, [(np.zeros((2, FRAMES, 8, 8), np.float32), {"name": "video",
                                                                  "axis_labels": ("N", "T", "Y", "X")}, "image")])
    meta = {PROVENANCE_KEY: {"axes": "NYX"}}
    first = add_layers(viewer, [(np.zeros((3, 8, 8), np.float32), {"name": "s", "metadata": meta}, "image")])[0]
    array = first.data
    update = np.full((3, 8, 8), 0.5, np.float32)
    again = add_layers(viewer, [(update, {"name": "s", "metadata": meta}, "image")], replace=True, in_place=True)[0]
    assert again is first and first.data is array and inserted_axes(first) == (1,)  # written in place
    np.testing.assert_array_equal(layer_array(first), update)
    other = np.ones((3, 8, 8), np.float32)
    add_layers(viewer, [(other, {"name": "s", "metadata": meta}, "image")], replace=True)
    assert first.data.shape == (3, 1, 8, 8) and inserted_axes(first) == (1,)
    np.testing.assert_array_equal(layer_array(first), other)


@pytest.mark.parametrize("axes, video, expected", [
    ("NYX", "NTYX", (1,)), ("NYX", "TYX", (1,)), ("YX", "NTYX", ()), ("TYX", "NTYX", ()),
    ("NYX", "NYX", ()), ("NYX", "", ()), ("NZYX", "NTYX", (2,)), ("NYX", "NTZYX", (1, 2)), ("", "NTYX", ()),
])
def test_where_axes_are_inserted(axes, video, expected):
    assert wanted_axes(axes, video) == expected
