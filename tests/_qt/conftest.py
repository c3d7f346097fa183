"""Fixtures for the widget tests (run under xvfb-run; they need a display)."""

from __future__ import annotations

import pytest
import torch

from napari_biogan.core.model import GanModel


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread for the widget tests (restored after each module).

    They run tiny models; on a small shared machine two OpenMP threads fighting other
    processes (and the GUI thread) for two cores make each training step 5-10x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_model_file(tmp_path):
    """A small untrained 2D model file (fast to load and render)."""
    return GanModel.new("dcgan2d", base_width=8, seed=1).save(tmp_path / "tiny.safetensors")


@pytest.fixture
def notifications():
    """Messages napari shows in its notification area during the test."""
    from napari.utils.notifications import notification_manager

    seen: list = []

    def record(event):
        seen.append(event)

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture
def wait_workers(qtbot):
    """wait_workers(*widgets): wait until the widgets' background workers are done."""

    def wait(*widgets, timeout: int = 20000) -> None:
        qtbot.waitUntil(lambda: not any(w.busy for w in widgets), timeout=timeout)

    return wait
