"""Glue the dock widgets share: the session base class, workers, errors, path rows, layers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QComboBox, QFileDialog, QFrame, QHBoxLayout, QLineEdit, QPushButton, QScrollArea,
                            QVBoxLayout, QWidget)

from ..core.errors import BioGanError
from .layer_axes import INSERTED_KEY, inserted_axes, layer_array, prepare_new, replace_array, watch
from .session import ModelSession, session_for

_log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "auto", "bf16")


def report_error(err: BaseException, action: str) -> str:
    """Show one plain sentence in napari's notifications; the traceback goes to the log only."""
    if isinstance(err, BioGanError):
        message = str(err)
    else:
        _log.error("%s failed", action, exc_info=(type(err), err, err.__traceback__))
        message = f"{action} failed: {err or type(err).__name__}."
    show_error(message)
    return message


def start_worker(func: Callable, *args, action: str, on_yield: Callable | None = None,
                 on_return: Callable | None = None, on_error: Callable | None = None,
                 on_done: Callable | None = None, start: bool = True, **kwargs):
    """Run ``func`` in a napari worker thread; errors become a notification (and ``on_error``).

    With ``start=False`` the caller connects more slots first, then calls ``worker.start()``
    (a fast worker can finish before a late connection is made).
    """

    def errored(err: BaseException) -> None:
        report_error(err, action)
        if on_error is not None:
            on_error(err)

    connect: dict[str, Any] = {"errored": errored}
    if on_yield is not None:
        connect["yielded"] = on_yield
    if on_return is not None:
        connect["returned"] = on_return
    if on_done is not None:
        connect["finished"] = on_done
    return create_worker(func, *args, _connect=connect, _start_thread=start, **kwargs)


def notify(message: str) -> None:
    show_info(message)


def unwrap_viewer(viewer):
    """The viewer itself when napari hands a plugin widget its public-only proxy: through the proxy every
    ``viewer.layers[name]`` is a new wrapper object, so a layer is never ``is`` itself and caches keyed by
    layer identity never hit (Explore re-encoded its source on every dims step)."""
    return getattr(viewer, "__wrapped__", viewer)


class SessionWidget(QWidget):
    """A dock widget bound to its viewer's :class:`ModelSession`."""

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(parent)
        napari_viewer = unwrap_viewer(napari_viewer)
        self.viewer = napari_viewer
        self.session: ModelSession = session_for(napari_viewer)
        self.session.attach(self)
        self.session.model_changed.connect(self._on_model_changed)
        watch(napari_viewer)  # readers' layers too: a 2D stack beside a video keeps off the T slider
        self.workers: list = []  # running workers, so tests and closing can wait for them
        session, uid, slot = self.session, id(self), self._on_model_changed
        # Qt deletes the widget with the viewer; forget it then (no reference to self kept here)
        self.destroyed.connect(lambda *_: _forget(session, uid, slot))
        # The content scrolls: a dock never demands more height than the screen has (the demo must fit
        # 1280x800 with several docks), and widgets add rows to ``self.layout()`` as usual.
        self._content = QWidget()
        inner = QVBoxLayout(self._content)
        inner.setAlignment(Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.scroll_area = scroll

    def sizeHint(self):  # noqa: N802 - Qt API: docks start at the content's natural size...
        content = self.__dict__.get("_content")
        return content.sizeHint() if content is not None else super().sizeHint()

    def minimumSizeHint(self):  # noqa: N802 - ...but may shrink (the content then scrolls)
        hint = super().minimumSizeHint()
        hint.setHeight(min(hint.height(), 120))
        return hint

    def layout(self):  # noqa: D102 - the scrolled content's layout, where widgets put their rows
        content = self.__dict__.get("_content")
        return content.layout() if content is not None else super().layout()

    def _on_model_changed(self, model) -> None:  # overridden by widgets
        pass

    def run_worker(self, func: Callable, *args, action: str, configure: Callable | None = None, **kwargs):
        """:func:`start_worker`, kept in :attr:`workers` until it finishes; ``configure(worker)`` runs
        before the thread starts."""
        worker = start_worker(func, *args, action=action, start=False, **kwargs)
        if configure is not None:
            configure(worker)
        self.workers.append(worker)
        worker.finished.connect(lambda: self.workers.remove(worker) if worker in self.workers else None)
        worker.start()
        return worker

    @property
    def busy(self) -> bool:
        return bool(self.workers)

    def closeEvent(self, event) -> None:
        self.teardown()
        super().closeEvent(event)

    def teardown(self) -> None:
        """Stop background work; overridden by widgets with threads of their own."""
        for worker in list(self.workers):
            quit_ = getattr(worker, "quit", None)
            if quit_ is not None:
                quit_()


def _forget(session: ModelSession, uid: int, slot) -> None:
    try:
        session.model_changed.disconnect(slot)
    except (ValueError, RuntimeError):
        pass
    session.detach(uid)


def compact(combo: QComboBox, characters: int = 16) -> QComboBox:
    """Keep a combo box with long entries from widening the whole dock."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    return combo


class PathRow(QWidget):
    """A path field with a Browse button: mode "open", "save" or "folder"."""

    def __init__(self, mode: str = "open", filter: str = "", placeholder: str = "", parent=None):
        super().__init__(parent)
        self.mode, self.filter = mode, filter
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.button = QPushButton("Browse...")
        self.button.clicked.connect(self.browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.button)

    def browse(self) -> None:
        start = self.edit.text() or str(Path.home())
        if self.mode == "folder":
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        elif self.mode == "save":
            chosen, _ = QFileDialog.getSaveFileName(self, "Save as", start, self.filter)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Open", start, self.filter)
        if chosen:
            self.edit.setText(chosen)

    def path(self) -> str:
        return self.edit.text().strip()

    def set_path(self, path: str | Path) -> None:
        self.edit.setText(str(path))


class LayerPicker(QComboBox):
    """A combo box of the viewer's layers of one type (Image by default, or Labels), kept up to date."""

    layer_type: type = Image

    def __init__(self, viewer, parent=None, layer_type: type | None = None, none_text: str | None = None):
        super().__init__(parent)
        compact(self)
        self.viewer = viewer
        self.none_text = none_text  # an optional choice: this first entry picks no layer
        if layer_type is not None:
            self.layer_type = layer_type
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self.refresh)
        refresh = self.refresh
        self.destroyed.connect(lambda *_: _disconnect_layers(events, refresh))
        self.refresh()

    def refresh(self, *_) -> None:
        current = self.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, self.layer_type)]
        if self.none_text is not None:
            names.insert(0, self.none_text)
        self.blockSignals(True)
        self.clear()
        self.addItems(names)
        if current in names:
            self.setCurrentText(current)
        self.blockSignals(False)

    def layer(self):
        name = self.currentText()
        if self.none_text is not None and self.currentIndex() == 0:
            return None
        return self.viewer.layers[name] if name in self.viewer.layers else None


class ImageLayerPicker(LayerPicker):
    """A combo box of the viewer's image layers."""

    layer_type = Image


class LabelsLayerPicker(LayerPicker):
    """A combo box of the viewer's Labels layers."""

    layer_type = Labels


class OpenFramesButton(QPushButton):
    """"Open a folder of frames...": a Cell Tracking Challenge-style folder of TIFF frames (LZW and
    other compressions included) becomes one (T, Y, X) image layer, loaded in a worker, then selected."""

    def __init__(self, widget: "SessionWidget", text: str = "Open a folder of frames..."):
        super().__init__(text)
        self.owner = widget
        self.setToolTip("A folder of single-frame TIFFs (t000.tif, t001.tif...) as one time-lapse layer")
        self.clicked.connect(self.choose)

    def choose(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of TIFF frames", str(Path.home()))
        if folder:
            self.open(folder)

    def open(self, folder: str):
        """Load ``folder`` in a worker; the layer is added and selected on the main thread."""
        from ..io import read_timelapse

        viewer = self.owner.viewer

        def show(layer_data):
            layers = add_layers(viewer, layer_data)
            viewer.layers.selection.active = layers[0]
            viewer.reset_view()

        return self.owner.run_worker(read_timelapse, folder, action="Opening the time-lapse", on_return=show)


class ProgressTask:
    """The one progress bar helper of the widgets: napari's activity-dock bar, safe to update or
    close at any time (closing twice, or updating after close, does nothing)."""

    def __init__(self, total: int | None, description: str):
        from napari.utils import progress

        self._bar = progress(total=total or 0, desc=description)
        self.description = description

    def update(self, done: int, description: str | None = None) -> None:
        bar = self._bar  # a local: a finished-slot may close (and clear) it while this runs
        if bar is None:
            return
        bar.update(max(0, done - bar.n))
        if description is not None:
            bar.set_description(description)

    def close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()

    @property
    def closed(self) -> bool:
        return self._bar is None


def disconnect(slot, *events) -> None:
    """Forget ``slot`` on each event, quietly: at teardown the viewer may already be gone."""
    for event in events:
        try:
            event.disconnect(slot)
        except (AttributeError, ValueError, RuntimeError, TypeError):
            pass


def _disconnect_layers(events, slot) -> None:
    """Forget a picker's layer-list slots; the viewer may already be gone (its emitters cleared)."""
    for name in ("inserted", "removed", "reordered"):
        disconnect(slot, getattr(events, name, None))


def add_layers(viewer, layer_data: Sequence[tuple], replace: bool = False, in_place: bool = False) -> list:
    """Add (data, kwargs, "image" | "labels") tuples to ``viewer``: the one place our layers are made.

    ``replace``: a layer of the same name gets the new data instead of a new layer being added.
    ``in_place``: and when shape and dtype match, its array is overwritten in place and the
    layer refreshed, which skips napari's dims update (live sliders: ~1 ms instead of ~3).
    Beside a video, a stack of 2D samples gets length-1 axes where the video has T
    (:mod:`.layer_axes`), so it does not follow the T slider; shapes here are the layers' own.
    """
    watch(viewer)
    layers = []
    for data, kwargs, kind in layer_data:
        name = kwargs.get("name")
        layer_class = Labels if kind == "labels" else Image
        if replace and name in viewer.layers:
            layer = viewer.layers[name]
            own = layer_array(layer)
            if type(layer) is layer_class and own.shape == data.shape:
                inserted = inserted_axes(layer)
                metadata = dict(kwargs.get("metadata", {}))
                if inserted:  # the layer keeps its inserted axes (and says so)
                    metadata[INSERTED_KEY] = list(inserted)
                layer.metadata = metadata
                if in_place and isinstance(own, np.ndarray) and own.dtype == data.dtype and own.flags.writeable:
                    own[...] = data  # a view: this writes into the layer's (maybe padded) array
                    layer.refresh()
                else:
                    replace_array(layer, data)
                layers.append(layer)
                continue
            viewer.layers.remove(layer)
        data, kwargs = prepare_new(viewer, data, kwargs)
        layers.append(viewer.add_labels(data, **kwargs) if kind == "labels" else viewer.add_image(data, **kwargs))
    return layers
