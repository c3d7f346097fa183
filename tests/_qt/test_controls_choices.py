"""A slider over ordered classes (e.g. a diagnosis from non-demented to moderate) names the nearest class
beside its value while it moves, beyond the training range too; built from the Control's kind and choices
alone (no family name), in the Explore/Generate/Export control editors."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt

from napari_biogan._qt.controls import ControlWidget, choice_name, value_text
from napari_biogan._qt.generate_widget import ControlsGroup
from napari_biogan.core.contract import Control
from napari_biogan.data.attributes import AttributeSpec
from napari_biogan.families.fader import attribute_control

STAGES = ("non-demented", "very mild", "mild", "moderate")


def stage_control() -> Control:
    """An ordered attribute as any family may declare it: a float slider over class indices, reaching
    one class beyond each end."""
    return Control("stage", "attribute", -1.0, 4.0, default=0.0, step=0.05, choices=STAGES)


@pytest.mark.parametrize("value, name", [
    (0.0, "non-demented"), (1.0, "very mild"), (1.2, "~ very mild"), (1.5, "~ mild"), (2.6, "~ moderate"),
    (3.0, "moderate"), (3.05, "beyond moderate"), (4.0, "beyond moderate"), (-0.4, "beyond non-demented"),
])
def test_the_nearest_class_of_a_value(value, name):
    assert choice_name(stage_control(), value) == name


def test_the_name_follows_the_slider_while_it_moves(qtbot):
    widget = ControlWidget(stage_control())
    qtbot.addWidget(widget)
    slider = widget.editor.slider
    assert widget.choice_label.text() == "non-demented"
    seen = []
    slider.valueChanged.connect(lambda *_: seen.append(widget.choice_label.text()))
    slider.setSliderDown(True)  # a drag: the slider emits as it tracks the mouse
    slider.setFocus()
    for _ in range(70):  # 0 -> 3.5 in single steps of 0.05
        qtbot.keyClick(slider, Qt.Key.Key_Right)
    slider.setSliderDown(False)
    assert widget.value() == pytest.approx(3.5)
    assert seen[19] == "very mild" and seen[29] == "~ mild" and seen[59] == "moderate"
    assert seen[-1] == widget.choice_label.text() == "beyond moderate"
    assert widget.editor.label.text() == "+3.50"  # the value itself stays beside the name
    qtbot.keyClick(slider, Qt.Key.Key_Home)
    assert widget.choice_label.text() == "beyond non-demented" and widget.value() == pytest.approx(-1.0)
    assert value_text(widget.control, 3.5) == "+3.50 (beyond moderate)"  # keyframe lists and provenance


def test_only_sliders_over_choices_name_a_class(qtbot):
    plain = ControlWidget(Control("gain", "attribute", -3, 3, step=0.1))
    picker = ControlWidget(Control("site", "class", choices=("A", "B", "C")))
    for widget in (plain, picker):
        qtbot.addWidget(widget)
    assert plain.choice_label is None and picker.choice_label is None
    assert value_text(plain.control, 2) == "+2.00" and value_text(picker.control, 1) == "B"


def test_the_fader_sliders_in_a_controls_group_name_their_classes(qtbot):
    """The Fader's declared attributes through the contract: ordered diagnosis and binary sex sliders."""
    group = ControlsGroup()
    qtbot.addWidget(group)
    specs = [AttributeSpec.parse("diagnosis:ordered:NonDemented|VeryMildDemented|MildDemented|ModerateDemented"),
             AttributeSpec.parse("sex:binary:m|f"), AttributeSpec.parse("age:continuous:20|90")]
    group.set_controls([attribute_control(s) for s in specs])
    diagnosis, sex, age = (group.editors[n] for n in ("diagnosis", "sex", "age"))
    diagnosis.setValue(4.0)
    assert diagnosis.choice_label.text() == "beyond ModerateDemented"
    diagnosis.setValue(2.0)
    assert diagnosis.choice_label.text() == "MildDemented" and group.values()["diagnosis"] == pytest.approx(2.0)
    sex.setValue(10.0)  # the Fader demo's reach, far beyond 0..1
    assert sex.choice_label.text() == "beyond f"
    assert age.choice_label is None  # continuous: the number says it all
