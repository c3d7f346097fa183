"""Slider and picker widgets built from a family's :class:`core.registry.Control` list."""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSlider, QSpinBox, QWidget


class FloatSlider(QWidget):
    """A horizontal slider over floats (minimum..maximum in ``step``s) with its value shown."""

    valueChanged = Signal(float)

    def __init__(self, minimum: float, maximum: float, step: float, default: float = 0.0, parent=None):
        super().__init__(parent)
        self.minimum, self.step = float(minimum), float(step) if step > 0 else 0.01
        ticks = max(1, int(round((maximum - minimum) / self.step)))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, ticks)
        self.slider.setPageStep(max(1, ticks // 10))
        self.label = QLabel()
        self.label.setMinimumWidth(42)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        self.slider.valueChanged.connect(self._changed)
        self.setValue(default)
        self._show()

    def value(self) -> float:
        return self.minimum + self.slider.value() * self.step

    def setValue(self, value: float) -> None:
        self.slider.setValue(int(round((value - self.minimum) / self.step)))

    def _show(self) -> None:
        self.label.setText(f"{self.value():+.2f}")

    def _changed(self, _ticks: int) -> None:
        self._show()
        self.valueChanged.emit(self.value())


class ControlWidget(QWidget):
    """One family control: a slider, an integer picker or a choice; emits ``changed``."""

    changed = Signal()

    def __init__(self, control, parent=None):
        super().__init__(parent)
        self.control = control
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        if control.kind == "class" and control.choices:
            self.editor = QComboBox()
            self.editor.addItems(list(control.choices))
            self.editor.setCurrentIndex(int(control.default) if 0 <= control.default < len(control.choices) else 0)
            self.editor.currentIndexChanged.connect(lambda *_: self.changed.emit())
        elif control.kind == "seed":
            self.editor = QSpinBox()
            self.editor.setRange(int(control.minimum), int(control.maximum))
            self.editor.setValue(int(control.default))
            self.editor.valueChanged.connect(lambda *_: self.changed.emit())
        else:
            self.editor = FloatSlider(control.minimum, control.maximum, control.step, control.default)
            self.editor.valueChanged.connect(lambda *_: self.changed.emit())
        if control.help:
            self.setToolTip(control.help)
        row.addWidget(self.editor)

    def value(self):
        """The control's value: the choice's index for "class", an int for "seed", else a float."""
        if isinstance(self.editor, QComboBox):
            return self.editor.currentIndex()
        return self.editor.value()

    def reset(self) -> None:
        if isinstance(self.editor, QComboBox):
            self.editor.setCurrentIndex(int(self.control.default) if self.control.choices else 0)
        else:
            self.editor.setValue(self.control.default)
