"""Opening files in napari: our reader is offered first, reads any TIFF and a folder of frames."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_biogan.io import get_reader


def test_our_reader_is_listed_first_so_the_choice_dialog_preselects_it(tmp_path, make_napari_viewer):
    from napari.plugins import _npe2

    make_napari_viewer()  # plugins discovered
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint16))
    readers = _npe2.get_readers(str(path))
    assert "napari-biogan" in readers
    # napari's reader dialog sorts display names and checks the first one
    assert sorted(readers.values())[0] == readers["napari-biogan"]


def test_a_folder_of_lzw_frames_opens_as_one_time_lapse(tmp_path, make_napari_viewer):
    frames = tmp_path / "01"
    frames.mkdir()
    for t in range(5):
        tifffile.imwrite(frames / f"t{t:03d}.tif", np.full((12, 16), t, np.uint16), compression="lzw")
    layers = get_reader(str(frames))(str(frames))
    (data, meta, kind), = layers
    assert kind == "image" and data.shape == (5, 12, 16) and tuple(meta["axis_labels"]) == ("T", "Y", "X")
    assert [int(data[t, 0, 0]) for t in range(5)] == [0, 1, 2, 3, 4]
    viewer = make_napari_viewer()
    viewer.open(str(frames), plugin="napari-biogan")
    assert viewer.layers[-1].data.shape == (5, 12, 16)


def test_a_plain_lzw_tiff_opens_with_named_axes(tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.arange(3 * 10 * 12, dtype=np.uint16).reshape(3, 10, 12), compression="lzw",
                     imagej=True, metadata={"axes": "TYX"})
    (data, meta, kind), = get_reader(str(path))(str(path))
    assert data.shape == (3, 10, 12) and tuple(meta["axis_labels"]) == ("T", "Y", "X")
    assert int(data[2, 9, 11]) == 3 * 10 * 12 - 1


def test_open_a_folder_of_frames_from_the_clips_and_train_widgets(tmp_path, make_napari_viewer, wait_workers):
    from napari_biogan._qt.clips_widget import ClipsWidget
    from napari_biogan._qt.train_widget import TrainWidget

    frames = tmp_path / "movie"
    frames.mkdir()
    for t in range(4):
        tifffile.imwrite(frames / f"t{t}.tif", np.full((10, 10), t, np.uint8), compression="lzw")
    viewer = make_napari_viewer()
    for widget_class in (ClipsWidget, TrainWidget):
        widget = widget_class(viewer)
        widget.open_frames_button.open(str(frames))
        wait_workers(widget)
        assert viewer.layers.selection.active.data.shape == (4, 10, 10)
    assert widget.input_rows["image"].layer_picker.findText("movie") >= 0


def test_pickers_outliving_their_viewer_disconnect_quietly():
    """Regression (CI): a layer picker destroyed after its viewer's emitters were cleared raised
    AttributeError in the Qt event loop, failing the next test's setup."""
    from napari.utils.events import EmitterGroup

    from napari_biogan._qt._common import _disconnect_layers, disconnect

    cleared = EmitterGroup()  # what napari leaves when the layer list is torn down
    _disconnect_layers(cleared, lambda *_: None)
    disconnect(lambda *_: None, None, object())
