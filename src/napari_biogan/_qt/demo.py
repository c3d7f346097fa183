"""`napari-biogan demo`: the plugin's widgets docked and samples of a shipped model shown."""

from __future__ import annotations

from pathlib import Path

WIDGETS = ("Model", "Generate", "Explore", "Train", "Export", "Evaluate", "Clips")


def open_demo(viewer, model_path: str | Path, n: int = 16, seed: int = 0) -> dict:
    """Dock the plugin's widgets in ``viewer``, make ``model_path`` the current model, generate ``n`` samples.

    Returns the widgets by name. Generation runs in the Generate widget's worker,
    so the window is up before the samples arrive.
    """
    from ..core.model import GanModel
    from .session import session_for

    session_for(viewer).set_model(GanModel.load(model_path, device=session_for(viewer).device))
    widgets, docks = {}, {}
    for name in WIDGETS:
        dock, widget = viewer.window.add_plugin_dock_widget("napari-biogan", name, tabify=False)
        widgets[name], docks[name] = widget, dock
        if name != WIDGETS[0]:  # one tab group: the window fits a 1280x800 screen, the canvas stays wide
            viewer.window._qt_window.tabifyDockWidget(docks[WIDGETS[0]], dock)
    from qtpy.QtCore import QTimer

    QTimer.singleShot(0, docks["Explore"].raise_)  # the sliders are what the demo is for (after Qt lays out tabs)
    generate = widgets["Generate"]
    generate.n_spin.setValue(n)
    generate.seed_spin.setValue(seed)
    generate.generate()
    return widgets
