"""The one "current model" per viewer, shared by the dock widgets.

Each widget looks up the session of its viewer with :func:`session_for` and
listens to ``model_changed``. Replacing the model releases the old one (off
the GPU, caches emptied); so does the last widget of a viewer going away.
No Qt here (psygnal only), so the session can be tested headless.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from psygnal import Signal

if TYPE_CHECKING:
    from ..core.model import GanModel


class ModelSession:
    """The current model of one viewer, the device choice, and who is using them."""

    #: emitted with the new model (or None) whenever the current model changes
    model_changed = Signal(object)
    #: emitted with the new device name ("auto", "cuda", "mps", "cpu")
    device_changed = Signal(str)

    def __init__(self) -> None:
        self.model: GanModel | None = None
        self.device: str = "auto"
        self._users: set[int] = set()

    def set_model(self, model: "GanModel | None") -> None:
        """Make ``model`` current; the model it replaces is released."""
        old, self.model = self.model, model
        if old is not None and old is not model:
            old.release()
        self.model_changed.emit(model)

    def set_device(self, device: str) -> None:
        if device != self.device:
            self.device = device
            self.device_changed.emit(device)

    def close(self) -> None:
        """Release the current model (the viewer or its last widget went away)."""
        if self.model is not None:
            model, self.model = self.model, None
            model.release()
            self.model_changed.emit(None)

    # -- widget bookkeeping: the last widget to go releases the model -------------------
    def attach(self, user: Any) -> None:
        self._users.add(id(user))

    def detach(self, user_id: int) -> None:
        self._users.discard(user_id)
        if not self._users:
            self.close()

    @property
    def users(self) -> int:
        return len(self._users)


_SESSIONS: "weakref.WeakKeyDictionary[Any, ModelSession]" = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> ModelSession:
    """The session of ``viewer`` (made on first use; forgotten with the viewer)."""
    session = _SESSIONS.get(viewer)
    if session is None:
        session = _SESSIONS[viewer] = ModelSession()
    return session
