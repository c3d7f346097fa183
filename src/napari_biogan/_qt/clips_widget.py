"""Training crops dock widget ("Clips" in the plugin menu): cut training data from a user's own images.

Two modes: 2D+t clips around moving cells of a time-lapse layer (video models), and single
cells of a multi-channel field (shape + protein layers) cropped around their centres (a
Points layer, a Labels layer, a CSV table, or simple detection) for the cell models; the
work is the core's (:func:`data.clips.crop_moving_clips`, :func:`data.cells.crop_field_cells`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QWidget

from ._common import (ImageLayerPicker, OpenFramesButton, PathRow, ProgressTask, SessionWidget, add_layers,
                      disconnect)
from .crops_cells import CellCropsBox
from .layer_axes import layer_array

CLIPS, CELLS = "clips", "cells"
MODE_TITLES = {CLIPS: "Clips around moving cells (time-lapse)", CELLS: "Single cells (multi-channel field)"}


def parse_clip_size(text: str) -> tuple[int, int, int]:
    """'16x32x32' -> (16, 32, 32) (frames x height x width)."""
    from ..core.errors import DataError

    try:
        size = tuple(int(part) for part in text.lower().replace(" ", "").split("x"))
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise DataError(f"The clip size takes three positive numbers like 16x32x32 (frames x height x width), "
                        f"not '{text}'.")
    return size  # type: ignore[return-value]


def find_clips(movie: np.ndarray, size: tuple[int, int, int], downscale: int, max_clips: int | None,
               tracks_path: str | None, time_stride: int | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Worker: :func:`~napari_biogan.data.clips.crop_moving_clips` on a (T, Y, X) movie."""
    from ..core.errors import DataError
    from ..data.clips import crop_moving_clips, read_tracks_csv

    movie = np.squeeze(np.asarray(movie))
    if movie.ndim != 3:
        raise DataError(f"Choose a single-channel time-lapse layer (T, Y, X); this one is shaped {movie.shape}.")
    tracks = read_tracks_csv(tracks_path) if tracks_path else None
    return crop_moving_clips(movie, size, max_clips=max_clips, tracks=tracks, downscale=downscale,
                             time_stride=time_stride)


def clip_outlines(info: list[dict[str, Any]], size: tuple[int, int, int]) -> list[np.ndarray]:
    """One rectangle (4 vertices of (t, y, x), original pixels) per clip, on the clip's first frame."""
    outlines = []
    for clip in info:
        t, (y0, x0), scale = clip["time"], clip["corner"], clip["downscale"]
        y1, x1 = y0 + size[1] * scale, x0 + size[2] * scale
        outlines.append(np.array([[t, y0, x0], [t, y0, x1], [t, y1, x1], [t, y1, x0]], dtype=float))
    return outlines


CLIPS_NOTE = ("Clips are cropped where frames change most (moving cells); train a video model on the "
              "clips layer.")


class ClipsWidget(SessionWidget):
    """Training crops: clips around moving cells of a time-lapse (a new (N, T, Y, X) layer), or single cells
    of a multi-channel field (one (N, Y, X) layer per channel, optionally saved as a training folder)."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        self.mode_combo = QComboBox()
        for mode, title in MODE_TITLES.items():
            self.mode_combo.addItem(title, mode)
        self.mode_combo.setToolTip("What to cut: clips of a time-lapse for video models, or single cells of a "
                                   "multi-channel field for the cell models")
        top = QFormLayout()
        top.addRow("Crop", self.mode_combo)
        self.layout().addLayout(top)
        self.clips_box = QWidget()
        form = QFormLayout(self.clips_box)
        form.setContentsMargins(0, 0, 0, 0)
        self.layer_picker = ImageLayerPicker(self.viewer)
        self.layer_picker.setToolTip("A time-lapse (T, Y, X): phase contrast, brightfield or fluorescence")
        form.addRow("Time-lapse", self.layer_picker)
        self.open_frames_button = OpenFramesButton(self)
        form.addRow(self.open_frames_button)
        self.size_edit = QLineEdit("16x32x32")
        self.size_edit.setToolTip("Clip size after down-scaling: frames x height x width")
        form.addRow("Clip size (TxYxX)", self.size_edit)
        self.downscale_spin = QSpinBox()
        self.downscale_spin.setRange(1, 16)
        self.downscale_spin.setValue(4)
        self.downscale_spin.setToolTip("Block-average the frames by this factor first (cells must fit the clip)")
        form.addRow("Down-scale", self.downscale_spin)
        self.max_spin = QSpinBox()
        self.max_spin.setRange(0, 100_000)
        self.max_spin.setSpecialValueText("all")
        form.addRow("At most", self.max_spin)
        self.stride_spin = QSpinBox()
        self.stride_spin.setRange(0, 10_000)
        self.stride_spin.setSpecialValueText("no overlap")
        self.stride_spin.setToolTip("Let clips of one place overlap in time, starting at least this many frames "
                                    "apart: more (correlated) clips from a short time-lapse")
        form.addRow("Time stride", self.stride_spin)
        self.tracks_check = QCheckBox("centre on tracked cells (CSV with frame, y, x)")
        self.tracks_row = PathRow("open", "CSV (*.csv)", "tracks.csv (optional)")
        form.addRow(self.tracks_check)
        form.addRow("Tracks", self.tracks_row)
        self.find_button = QPushButton("Find clips")
        self.find_button.clicked.connect(self.find)
        form.addRow(self.find_button)
        self.layout().addWidget(self.clips_box)
        self.cells_box = CellCropsBox(self)
        self.layout().addWidget(self.cells_box)
        self.status = QLabel(CLIPS_NOTE)
        self.status.setWordWrap(True)
        self.layout().addWidget(self.status)
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        self._mode_changed()
        #: the last clips layer (tests, scripts)
        self.clips_layer = None
        self._bar = None
        selection = self.viewer.layers.selection.events.active
        selection.connect(self._follow_selection)
        self.destroyed.connect(lambda *_: disconnect(self._follow_selection, selection))
        steps = self.viewer.dims.events.current_step
        steps.connect(self._place_clip)
        self.destroyed.connect(lambda *_: disconnect(self._place_clip, steps))
        self._follow_selection()

    def mode(self) -> str:
        """CLIPS or CELLS."""
        return self.mode_combo.currentData()

    def set_mode(self, mode: str) -> None:
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(mode))

    def _mode_changed(self, *_) -> None:
        clips = self.mode() == CLIPS
        self.clips_box.setVisible(clips)
        self.cells_box.setVisible(not clips)
        self.status.setText(CLIPS_NOTE if clips else self.cells_box.NOTE)

    def _follow_selection(self, *_) -> None:
        """The selected layer becomes the time-lapse to crop, when it is one (T, Y, X)."""
        layer = self.viewer.layers.selection.active
        if layer is not None and layer.ndim == 3 and self.layer_picker.findText(layer.name) >= 0 \
                and self.mode() == CLIPS:
            self.layer_picker.setCurrentText(layer.name)

    def find(self) -> None:
        from ..core.errors import DataError
        from ._common import report_error

        layer = self.layer_picker.layer()
        try:
            if layer is None:
                raise DataError("Open a time-lapse first (File > Open, or a sample: File > Open Sample).")
            size = parse_clip_size(self.size_edit.text())
            tracks = self.tracks_row.path() if self.tracks_check.isChecked() else None
            if self.tracks_check.isChecked() and not tracks:
                raise DataError("Choose the tracks CSV, or untick 'centre on tracked cells'.")
        except DataError as err:
            report_error(err, "Finding clips")
            return
        self.find_button.setEnabled(False)
        self._bar = ProgressTask(None, f"Finding moving cells in {layer.name}")
        settings = {"size": size, "downscale": self.downscale_spin.value(), "source": layer.name}
        self.run_worker(find_clips, np.asarray(layer_array(layer)), size, self.downscale_spin.value(),
                        self.max_spin.value() or None, tracks, self.stride_spin.value() or None,
                        action="Finding clips",
                        on_return=lambda result: self._show(result, settings), on_done=self._done,
                        on_error=lambda err: self.status.setText(str(err)))

    def _show(self, result, settings: dict[str, Any]) -> None:
        clips, info = result
        size, source = settings["size"], settings["source"]
        if len(clips) == 0:
            self.status.setText(f"No moving cells found in '{source}' for clips of {size}. Try a smaller clip, "
                                "a larger down-scale, or a longer time-lapse.")
            return
        metadata = {"napari_biogan": {"source": source, "clip_size": list(size),
                                      "downscale": settings["downscale"],
                                      "clips": [{k: v for k, v in c.items() if k != "particle"} for c in info]}}
        name = f"clips of {source}"
        down = settings["downscale"]
        self.clips_layer = add_layers(self.viewer, [(clips, {"name": name, "metadata": metadata, "colormap": "gray",
                                                             "axis_labels": ("N", "T", "Y", "X"),
                                                             "scale": (1, 1, down, down)}, "image")],
                                      replace=True)[0]
        self._clip_info = info
        self._place_clip()  # each clip drawn where (and when) it was cut from the time-lapse
        self.viewer.dims.set_current_step(0, 0)
        self.viewer.dims.set_current_step(1, int(info[0]["time"]))
        outlines = f"clip outlines on {source}"
        if outlines in self.viewer.layers:
            self.viewer.layers.remove(outlines)
        source_layer = self.viewer.layers[source] if source in self.viewer.layers else None
        if source_layer is not None and source_layer.ndim == 3:
            self.viewer.add_shapes(clip_outlines(info, size), shape_type="rectangle", name=outlines,
                                   edge_color="yellow", face_color="transparent", edge_width=2,
                                   scale=source_layer.scale)
        self.status.setText(f"Found {len(clips)} clips of {size[0]}x{size[1]}x{size[2]} in '{source}' "
                            f"(layer '{name}'; outlines on the first frame of each in '{outlines}').")

    def _place_clip(self, *_) -> None:
        """Move the clips layer onto the clip the N slider shows: its corner and first frame in the movie."""
        layer, info = self.clips_layer, getattr(self, "_clip_info", None)
        if layer is None or not info or layer not in self.viewer.layers:
            return
        index = int(np.clip(self.viewer.dims.current_step[0], 0, len(info) - 1))
        clip = info[index]
        translate = (0.0, float(clip["time"]), float(clip["corner"][0]), float(clip["corner"][1]))
        if tuple(layer.translate) != translate:
            layer.translate = translate

    def _done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.find_button.setEnabled(True)
