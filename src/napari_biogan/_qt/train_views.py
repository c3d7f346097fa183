"""What the Train widget shows: one row per training input, a live loss plot (QPainter), the preview picture."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QImage, QPainter, QPen, QPixmap, QPolygonF
from qtpy.QtWidgets import (QButtonGroup, QFileDialog, QGridLayout, QLabel, QPushButton, QRadioButton,
                            QSizePolicy, QWidget)

from ..core.estimate import format_duration
from ..core.montage import tile
from ._common import ImageLayerPicker, LabelsLayerPicker, PathRow
from .layer_axes import layer_array

_LINE_COLORS = ("#ff7f0e", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_CHANNEL_RGB = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "magenta": (1, 0, 1),
                "cyan": (0, 1, 1), "yellow": (1, 1, 0)}
#: label colours by value (0 is transparent); values past the end wrap around
LABEL_PALETTE = np.array([(0, 0, 0), (1.0, 0.2, 0.2), (0.2, 0.8, 0.2), (0.25, 0.45, 1.0), (1.0, 0.85, 0.1),
                          (0.9, 0.3, 0.9), (0.1, 0.9, 0.9), (1.0, 0.55, 0.1), (0.6, 0.4, 0.2)], np.float32)
LABEL_ALPHA = 0.55
_GAP = 0.15  # the grey between samples and panels


def format_eta(seconds: float | None) -> str:
    """Time left in words: "about 3 min left", "about 1 h 05 min left" (``format_seconds`` gives mm:ss)."""
    if seconds is None or not math.isfinite(seconds):
        return "estimating the time left"
    return f"{format_duration(seconds)} left"


# -- training inputs ----------------------------------------------------------------------------------------

class DataPathRow(PathRow):
    """A path row whose Browse picks a file and whose Folder... picks a folder (data can be either)."""

    def __init__(self, filter: str = "", placeholder: str = "", parent=None):
        super().__init__("open", filter, placeholder, parent)
        self.folder_button = QPushButton("Folder...")
        self.folder_button.clicked.connect(self.browse_folder)
        self.layout().addWidget(self.folder_button)

    def browse_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", self.edit.text() or "")
        if chosen:
            self.edit.setText(chosen)


_IMAGE_FILES = "Images (*.tif *.tiff *.npy *.npz *.png);;All files (*)"
_ROW_TEXT = {  # kind -> (layer radio, files radio, files placeholder)
    "image": ("Image layer", "TIFF file/folder",
              "TIFF file or folder, or .npy; a folder of class sub-folders also gives the classes"),
    "labels": ("Labels layer", "mask file/folder", "label TIFF/PNG file or folder, or .npy"),
}


class InputRow(QWidget):
    """Where one training input comes from, built from its :class:`~napari_biogan.core.contract.Input`.

    image / labels: a layer of the viewer or a file/folder; class: a note (the classes are the
    sub-folders of the image folder); attributes: a CSV table.
    """

    def __init__(self, viewer, spec, parent=None):
        super().__init__(parent)
        self.spec = spec
        self.layer_picker = self.from_layer = self.from_files = self.path_row = None
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        title = QLabel(f"<b>{spec.name}</b>" + (f": {spec.help}" if spec.help else ""))
        title.setWordWrap(True)
        grid.addWidget(title, 0, 0, 1, 2)
        if spec.kind in _ROW_TEXT:
            layer_text, files_text, placeholder = _ROW_TEXT[spec.kind]
            picker_class = LabelsLayerPicker if spec.kind == "labels" else ImageLayerPicker
            self.from_layer, self.from_files = QRadioButton(layer_text), QRadioButton(files_text)
            self.layer_picker = picker_class(viewer)
            self.path_row = DataPathRow(_IMAGE_FILES, placeholder)
            group = QButtonGroup(self)  # one choice per input, independent of the other rows
            group.addButton(self.from_layer)
            group.addButton(self.from_files)
            self.from_layer.setChecked(True)
            # choosing in a picker selects its radio: the row uses what was touched last
            self.layer_picker.activated.connect(lambda *_: self.from_layer.setChecked(True))
            self.path_row.edit.textChanged.connect(lambda text: text.strip() and self.from_files.setChecked(True))
            grid.addWidget(self.from_layer, 1, 0)
            grid.addWidget(self.layer_picker, 1, 1)
            grid.addWidget(self.from_files, 2, 0)
            grid.addWidget(self.path_row, 2, 1)
        elif spec.kind == "class":
            note = QLabel("classes come from the sub-folders of the image folder")
            note.setWordWrap(True)
            grid.addWidget(note, 1, 0, 1, 2)
        elif spec.kind == "attributes":
            self.path_row = PathRow("open", "CSV tables (*.csv);;All files (*)",
                                    "attributes table keyed by file or subject")
            grid.addWidget(QLabel("CSV table"), 1, 0)
            grid.addWidget(self.path_row, 1, 1)
        grid.setColumnStretch(1, 1)

    def source(self) -> tuple[Any, str]:
        """(a copy of the layer's array, or a path, or None; a description for the model card).

        Main thread only: layers are read here, never in the worker. DataError when nothing is chosen.
        """
        from ..core.errors import DataError

        spec = self.spec
        if self.from_layer is not None and self.from_layer.isChecked():
            layer = self.layer_picker.layer()
            if layer is None:
                kind = "a Labels layer" if spec.kind == "labels" else "an image layer"
                raise DataError(f"Choose {kind} for '{spec.name}' ({spec.help or spec.kind}), "
                                f"or a {self.from_files.text()}.")
            data = np.array(layer_array(layer), copy=True)  # the worker trains on a snapshot, not the live layer
            return data, f"{spec.name}: napari layer '{layer.name}' {data.shape}"
        if self.path_row is not None:
            path = self.path_row.path()
            if path:
                return path, f"{spec.name}: {path}"
            if spec.kind not in ("class", "attributes"):
                raise DataError(f"Choose a file or folder for '{spec.name}' ({spec.help or spec.kind}).")
        # classes, and attributes that are classes: from the image folder's sub-folders (the loader
        # says so in one sentence when it has none)
        return None, ""


def input_rows(viewer, family, config=None) -> list[InputRow]:
    """One row per input ``family`` trains on (latent inputs show nothing); ``config``: the default one."""
    config = family.default_config() if config is None else config
    return [InputRow(viewer, spec) for spec in family.inputs(config) if spec.train and spec.kind != "latent"]


class LossPlot(QWidget):
    """Losses against training step, one line per loss name, drawn with QPainter (no matplotlib)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.series: dict[str, list[tuple[int, float]]] = {}
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def clear(self) -> None:
        self.series.clear()
        self.update()

    def add(self, step: int, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            if math.isfinite(value):
                self.series.setdefault(name, []).append((step, float(value)))
        self.update()  # repaint later, once per event-loop turn however many steps came in

    @property
    def points(self) -> int:
        return sum(len(v) for v in self.series.values())

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(44, 8, -8, -20)
        painter.fillRect(self.rect(), QColor("#262930"))
        painter.setPen(QPen(QColor("#888888"), 1))
        painter.drawRect(rect)
        if not self.series or rect.width() < 10 or rect.height() < 10:
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "losses appear here while training")
            painter.end()
            return
        steps = [s for pts in self.series.values() for s, _ in pts]
        values = np.array([v for pts in self.series.values() for _, v in pts])
        lo, hi = np.percentile(values, [1, 99]) if len(values) > 20 else (values.min(), values.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 1, hi + 1
        s0, s1 = min(steps), max(max(steps), min(steps) + 1)

        def to_px(step: float, value: float) -> QPointF:
            value = min(max(value, lo), hi)
            return QPointF(rect.left() + (step - s0) / (s1 - s0) * rect.width(),
                           rect.bottom() - (value - lo) / (hi - lo) * rect.height())

        painter.setPen(QColor("#bbbbbb"))
        painter.drawText(QRectF(0, rect.top() - 6, 42, 14), Qt.AlignmentFlag.AlignRight, f"{hi:.3g}")
        painter.drawText(QRectF(0, rect.bottom() - 8, 42, 14), Qt.AlignmentFlag.AlignRight, f"{lo:.3g}")
        painter.drawText(QRectF(rect.left(), rect.bottom() + 2, rect.width(), 16),
                         Qt.AlignmentFlag.AlignRight, f"step {s1}")
        if lo < 0 < hi:  # the zero line helps reading WGAN losses
            painter.setPen(QPen(QColor("#555555"), 1, Qt.PenStyle.DashLine))
            painter.drawLine(to_px(s0, 0.0), to_px(s1, 0.0))
        stride_px = max(1, int(rect.width()))
        series = sorted(self.series.items())
        for i, (name, pts) in enumerate(series):
            stride = max(1, len(pts) // stride_px)  # about one point per pixel column
            painter.setPen(QPen(QColor(_LINE_COLORS[i % len(_LINE_COLORS)]), 1.5))
            painter.drawPolyline(QPolygonF([to_px(s, v) for s, v in pts[::stride]] + [to_px(*pts[-1])]))
        legend = QRectF(rect.left() + 4, rect.top() + 4, 150, 6 + 15 * len(series))
        painter.fillRect(legend, QColor(38, 41, 48, 210))  # keep the legend readable over the lines
        for i, (name, pts) in enumerate(series):
            painter.setPen(QColor(_LINE_COLORS[i % len(_LINE_COLORS)]))
            painter.drawText(QPointF(legend.left() + 4, legend.top() + 15 + 15 * i), f"{name} {pts[-1][1]:.3f}")
        painter.end()


# -- the preview picture (pure numpy: testable without a display) -------------------------------------------

def preview_image(preview: np.ndarray, colormaps: Sequence[str], columns: int = 4) -> np.ndarray:
    """Samples (n, C, *axes) in [0, 1] -> one RGB uint8 grid; videos show their middle frame."""
    return _to_uint8(_grid(_channels_rgb(preview, colormaps), columns))


def preview_picture(outputs: Mapping[str, np.ndarray], output_specs: Sequence[Any],
                    columns: int = 4) -> np.ndarray | None:
    """Every output of a preview as one RGB uint8 picture, panels side by side in declared order.

    ``outputs``: :attr:`TrainEvent.preview_outputs` (output name -> array, plus "source" for
    image-driven families); ``output_specs``: the model's :class:`Output` list. Image outputs
    show their channels in their colormaps, signed maps a diverging green/magenta picture
    (symmetric range, never clamped to [0, 1] first), labels are coloured (0 transparent)
    over the source image (else the first image output). None when nothing can be shown.
    """
    panels: list[np.ndarray] = []
    first_image = None
    for spec in output_specs:
        value = outputs.get(spec.name)
        if value is None:
            continue
        if spec.kind == "image":
            rgb = _channels_rgb(value, [c.colormap for c in spec.channels])
            first_image = rgb if first_image is None else first_image
            panels.append(rgb)
        elif spec.kind == "signed":
            panels.append(signed_rgb(value))
        elif spec.kind == "labels":
            panels.append(None)  # placeholder: its background may be an image output declared later
    labels_specs = [s for s in output_specs if s.kind == "labels" and outputs.get(s.name) is not None]
    if labels_specs:
        source = outputs.get("source")
        background = _channels_rgb(source, ["gray"] if np.shape(source)[1:2] == (1,) else
                                   _first_colormaps(output_specs)) if source is not None else first_image
        labelled = iter(labels_rgb(outputs[s.name], background) for s in labels_specs)
        panels = [next(labelled) if p is None else p for p in panels]
    if not panels:
        return None
    columns = columns if len(panels) == 1 else max(1, columns // 2)  # several panels: keep it narrow
    grids = [_grid(p, columns) for p in panels]
    height = max(g.shape[0] for g in grids)
    parts = []
    for i, grid in enumerate(grids):
        if i:
            parts.append(np.full((height, 3, 3), _GAP, np.float32))  # a wider gap between panels
        parts.append(np.pad(grid, ((0, height - grid.shape[0]), (0, 0), (0, 0)), constant_values=_GAP))
    return _to_uint8(np.concatenate(parts, axis=1))


def labels_rgb(labels: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
    """Class maps (n, *axes) -> (n, Y, X, 3) float: the fixed palette over ``background`` (0 transparent)."""
    labels = np.asarray(labels)
    while labels.ndim > 3:  # videos: the middle frame
        labels = np.take(labels, labels.shape[1] // 2, axis=1)
    n, height, width = labels.shape
    base = np.zeros((n, height, width, 3), np.float32)
    if background is not None and background.shape[:3] == labels.shape:
        base = background.astype(np.float32)
    index = np.where(labels > 0, (labels.astype(np.int64) - 1) % (len(LABEL_PALETTE) - 1) + 1, 0)
    colors = LABEL_PALETTE[index]
    alpha = np.where(labels > 0, LABEL_ALPHA, 0.0).astype(np.float32)[..., None]
    return base * (1 - alpha) + colors * alpha


def signed_rgb(values: np.ndarray) -> np.ndarray:
    """Signed maps (n, C, *axes) -> (n, Y, X, 3): green above zero, magenta below, scaled by the largest |value|."""
    values = _middle_frames(np.asarray(values, dtype=np.float32)).mean(axis=1)
    scale = float(np.nanmax(np.abs(values))) if values.size else 0.0
    scaled = np.nan_to_num(values / scale) if scale > 0 else np.zeros_like(values)
    positive, negative = np.clip(scaled, 0, 1)[..., None], np.clip(-scaled, 0, 1)[..., None]
    return positive * np.array(_CHANNEL_RGB["green"], np.float32) + negative * np.array(_CHANNEL_RGB["magenta"],
                                                                                         np.float32)


def _first_colormaps(output_specs: Sequence[Any]) -> list[str]:
    for spec in output_specs:
        if spec.kind == "image":
            return [c.colormap for c in spec.channels]
    return []


def _middle_frames(images: np.ndarray) -> np.ndarray:
    while images.ndim > 4:  # (n, C, T, Y, X) -> the middle of each extra axis
        images = np.take(images, images.shape[2] // 2, axis=2)
    return images


def _channels_rgb(images: np.ndarray, colormaps: Sequence[str]) -> np.ndarray:
    """(n, C, *axes) in [0, 1] -> (n, Y, X, 3) float, each channel in its colormap's colour."""
    images = _middle_frames(np.asarray(images, dtype=np.float32))
    n, channels, height, width = images.shape
    rgb = np.zeros((n, height, width, 3), np.float32)
    for c in range(channels):
        name = colormaps[c] if c < len(colormaps) else "gray"
        color = _CHANNEL_RGB.get(name, (1, 1, 1) if channels == 1 else _CHANNEL_RGB["green"])
        rgb += images[:, c, :, :, None] * np.asarray(color, np.float32)
    return np.clip(rgb, 0, 1)


def _grid(rgb: np.ndarray, columns: int) -> np.ndarray:
    """(n, Y, X, 3) -> one (rows*(Y+1)-1, columns*(X+1)-1, 3) grid, samples separated by a grey line."""
    channels_first = np.moveaxis(np.asarray(rgb, np.float32), -1, 1)  # tile() wants Y, X last
    grid = tile(channels_first, gap=1, columns=columns, limit=len(rgb), fill=_GAP, empty=_GAP)
    return np.moveaxis(grid, 0, -1)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def to_pixmap(rgb: np.ndarray, scale: int = 2) -> QPixmap:
    """An RGB uint8 array -> a QPixmap enlarged ``scale`` times without smoothing."""
    rgb = np.ascontiguousarray(rgb)
    height, width, _ = rgb.shape
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(width * scale, height * scale,
                                           Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)
