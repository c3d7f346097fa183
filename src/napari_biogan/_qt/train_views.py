"""What the Train widget shows while training: a live loss plot (QPainter) and a preview grid."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QImage, QPainter, QPen, QPixmap, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

_LINE_COLORS = ("#ff7f0e", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_CHANNEL_RGB = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "magenta": (1, 0, 1),
                "cyan": (0, 1, 1), "yellow": (1, 1, 0)}


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


def preview_image(preview: np.ndarray, colormaps: Sequence[str], columns: int = 4) -> np.ndarray:
    """Samples (n, C, *axes) in [0, 1] -> one RGB uint8 grid; videos show their middle frame."""
    images = np.asarray(preview, dtype=np.float32)
    while images.ndim > 4:  # (n, C, T, Y, X) -> middle of each extra axis
        images = np.take(images, images.shape[2] // 2, axis=2)
    n, channels, height, width = images.shape
    rgb = np.zeros((n, height, width, 3), np.float32)
    for c in range(channels):
        name = colormaps[c] if c < len(colormaps) else "gray"
        color = _CHANNEL_RGB.get(name, (1, 1, 1) if channels == 1 else _CHANNEL_RGB["green"])
        rgb += images[:, c, :, :, None] * np.asarray(color, np.float32)
    rgb = np.clip(rgb, 0, 1)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    grid = np.zeros((rows * (height + 1) - 1, columns * (width + 1) - 1, 3), np.float32)
    grid[:] = 0.15
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (height + 1):r * (height + 1) + height, c * (width + 1):c * (width + 1) + width] = rgb[i]
    return (grid * 255).round().astype(np.uint8)


def to_pixmap(rgb: np.ndarray, scale: int = 2) -> QPixmap:
    """An RGB uint8 array -> a QPixmap enlarged ``scale`` times without smoothing."""
    rgb = np.ascontiguousarray(rgb)
    height, width, _ = rgb.shape
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(width * scale, height * scale,
                                           Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)
