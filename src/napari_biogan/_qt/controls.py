"""The Explore dock's parts: widgets for a family's :class:`core.contract.Control` list, the GANSpace
direction sliders and the keyframe list (points with their source and control values)."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget, QPushButton,
                            QSlider, QSpinBox, QVBoxLayout, QWidget)


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
        self.choice_label = None  # a slider over ordered classes names the nearest one beside its value
        if isinstance(self.editor, FloatSlider) and control.choices:
            self.choice_label = QLabel()
            self.choice_label.setMinimumWidth(90)
            self.choice_label.setToolTip(f"nearest of {', '.join(control.choices)}")
            row.addWidget(self.choice_label)
            self.editor.valueChanged.connect(self._name_choice)  # while dragging too: the slider tracks
            self._name_choice(self.editor.value())

    def value(self):
        """The control's value: the choice's index for "class", an int for "seed", else a float."""
        if isinstance(self.editor, QComboBox):
            return self.editor.currentIndex()
        return self.editor.value()

    def setValue(self, value) -> None:
        """Show ``value`` (a choice's index for "class"); emits ``changed`` when it differs."""
        if isinstance(self.editor, QComboBox):
            self.editor.setCurrentIndex(int(value))
        elif isinstance(self.editor, QSpinBox):
            self.editor.setValue(int(value))
        else:
            self.editor.setValue(float(value))

    def text(self) -> str:
        return value_text(self.control, self.value())

    def _name_choice(self, value: float) -> None:
        self.choice_label.setText(choice_name(self.control, value))

    def reset(self) -> None:
        if isinstance(self.editor, QComboBox):
            self.editor.setCurrentIndex(int(self.control.default) if self.control.choices else 0)
        else:
            self.editor.setValue(self.control.default)


def value_text(control, value) -> str:
    """A control value as a user reads it: the choice's name, a whole seed, a signed number (with the
    nearest class of a slider over ordered classes)."""
    if isinstance(value, (list, tuple)):
        return "per frame"
    if control.kind == "class" and control.choices:
        index = int(value)
        return control.choices[index] if 0 <= index < len(control.choices) else str(value)
    if control.kind == "seed":
        return str(int(value))
    try:
        number = f"{float(value):+.2f}"
    except (TypeError, ValueError):
        return str(value)
    name = choice_name(control, value)
    return f"{number} ({name})" if name else number


def choice_name(control, value) -> str:
    """The class a slider over a control's ``choices`` (index 0, 1, ...) is at or nearest to: the name
    on a class, "~ name" between classes, "beyond name" past the first or last class; "" for a
    control without choices or a choice picker ("class": its box shows the name)."""
    if control.kind == "class" or not control.choices:
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    last, tolerance = len(control.choices) - 1, 1e-6
    if number > last + tolerance:
        return f"beyond {control.choices[-1]}"
    if number < -tolerance:
        return f"beyond {control.choices[0]}"
    index = min(max(int(np.floor(number + 0.5)), 0), last)  # halves go up, as a reader rounds
    return control.choices[index] if abs(number - index) < tolerance else f"~ {control.choices[index]}"


class DirectionSliders(QGroupBox):
    """Sliders along the first k principal latent directions (in standard deviations); emits ``changed``."""

    changed = Signal()

    def __init__(self, maximum: int, default: int, parent=None):
        super().__init__("Principal directions (GANSpace, in std)", parent)
        box = QVBoxLayout(self)
        k_form = QFormLayout()
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, maximum)
        self.k_spin.setValue(default)
        self.k_spin.valueChanged.connect(self._k_changed)
        k_form.addRow("Directions", self.k_spin)
        box.addLayout(k_form)
        self.form = QFormLayout()
        box.addLayout(self.form)
        self.sliders: list[FloatSlider] = []
        self.available = 0
        self.set_available(0)

    def set_available(self, available: int) -> None:
        """Show sliders for the first min(k, available) directions, keeping the values they had."""
        self.available = available
        old = self.values()
        while self.form.rowCount():
            self.form.removeRow(0)
        self.sliders = []
        for i in range(min(self.k_spin.value(), available)):
            slider = FloatSlider(-3.0, 3.0, 0.05, old[i] if i < len(old) else 0.0)
            slider.valueChanged.connect(lambda *_: self.changed.emit())
            self.form.addRow(f"PC{i + 1}", slider)
            self.sliders.append(slider)
        if not available:
            self.form.addRow(QLabel("(computed when a model is loaded)"))

    def values(self) -> list[float]:
        return [s.value() for s in self.sliders]

    def zero(self) -> None:
        """Every slider to 0, without a ``changed`` per slider."""
        for slider in self.sliders:
            slider.blockSignals(True)
            slider.setValue(0.0)
            slider._show()
            slider.blockSignals(False)

    def _k_changed(self, *_) -> None:
        self.set_available(self.available)
        self.changed.emit()


def describe_point(point, controls) -> str:
    """One line for a keyframe: where the point came from, its directions and control values."""
    origin = point.origin
    where = "".join(f" #{i}" for i in origin.get("index", []))
    if "fitted_to" in origin:
        parts = [f"fitted to '{origin['fitted_to']}'{where}"]
    elif "layer" in origin:
        parts = [f"layer '{origin['layer']}'{where}"]
    else:
        parts = [f"seed {origin.get('seed', '?')}"]
    parts += [f"PC{i + 1} {a:+.2f}" for i, a in enumerate(origin.get("directions", [])) if a]
    parts += [f"{c.name} {value_text(c, point.controls[c.name])}" for c in controls if c.name in point.controls]
    return ", ".join(parts)


class KeyframeList(QGroupBox):
    """Keyframes (points) listed with their source and control values; Delete, Move up, Move down,
    Clear; "Render path" enabled from two keyframes. ``add_requested``/``path_requested`` ask the owner."""

    add_requested = Signal()
    path_requested = Signal()

    def __init__(self, parent=None):
        super().__init__("Keyframes", parent)
        self.points: list[Any] = []
        self.controls: list = []  # the family's controls, to name choices
        self.busy = False  # a path is rendering
        box = QVBoxLayout(self)
        self.list_widget = QListWidget()
        self.list_widget.setMaximumHeight(110)
        self.list_widget.currentRowChanged.connect(lambda *_: self._update_buttons())
        box.addWidget(self.list_widget)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add keyframe")
        self.delete_button = QPushButton("Delete")
        self.up_button = QPushButton("Move up")
        self.down_button = QPushButton("Move down")
        self.clear_button = QPushButton("Clear")
        for button, slot in ((self.add_button, self.add_requested.emit), (self.delete_button, self.delete_current),
                             (self.up_button, lambda: self.move_current(-1)),
                             (self.down_button, lambda: self.move_current(1)), (self.clear_button, self.clear)):
            button.clicked.connect(lambda *_, slot=slot: slot())
            row.addWidget(button)
        box.addLayout(row)
        form = QFormLayout()
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 256)
        self.steps_spin.setValue(16)
        form.addRow("Frames per segment", self.steps_spin)
        self.path_button = QPushButton("Render path")
        self.path_button.clicked.connect(lambda *_: self.path_requested.emit())
        form.addRow(self.path_button)
        self.label = QLabel()
        form.addRow(self.label)
        box.addLayout(form)
        self.refresh()

    def add(self, point) -> None:
        self.points.append(point)
        self.refresh(len(self.points) - 1)

    def delete_current(self) -> None:
        row = self.list_widget.currentRow()
        if 0 <= row < len(self.points):
            del self.points[row]
            self.refresh(min(row, len(self.points) - 1))

    def move_current(self, offset: int) -> None:
        row, new = self.list_widget.currentRow(), self.list_widget.currentRow() + offset
        if 0 <= row < len(self.points) and 0 <= new < len(self.points):
            self.points[row], self.points[new] = self.points[new], self.points[row]
            self.refresh(new)

    def clear(self) -> None:
        self.points.clear()
        self.refresh()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_buttons()

    def refresh(self, select: int | None = None) -> None:
        """List the points again (and keep the count and the buttons current)."""
        self.list_widget.blockSignals(True)
        self.list_widget.clear()
        for i, point in enumerate(self.points):
            self.list_widget.addItem(f"{i + 1}. {describe_point(point, self.controls)}")
        if select is not None and 0 <= select < len(self.points):
            self.list_widget.setCurrentRow(select)
        self.list_widget.blockSignals(False)
        self._update_buttons()

    def _update_buttons(self) -> None:
        n, row = len(self.points), self.list_widget.currentRow()
        self.label.setText(f"{n} keyframe(s); a path needs at least 2.")
        self.path_button.setEnabled(n >= 2 and not self.busy)
        self.delete_button.setEnabled(0 <= row < n)
        self.up_button.setEnabled(0 < row < n)
        self.down_button.setEnabled(0 <= row < n - 1)
        self.clear_button.setEnabled(n > 0)
