"""A latest-only render queue: one background thread that always renders the newest request.

Live sliders submit a request per value change. A fast drag produces requests
much faster than a model renders, so queueing them would make the picture lag
further and further behind the hand. Here there is a single pending slot: a new
request replaces a pending one (which is counted as skipped-as-stale), and the
thread renders whatever is in the slot when it becomes free. The newest request
is therefore always rendered, and at most one render is ever behind.

No Qt here: results go to a plain callback, called on the render thread. The
Qt side marshals them to the main thread (a queued signal).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

_log = logging.getLogger(__name__)


@dataclass
class RenderResult:
    """What one render produced, handed to the result callback."""

    request_id: int
    request: Any
    value: Any = None
    error: BaseException | None = None
    submitted_at: float = 0.0  # time.perf_counter() when submitted
    started_at: float = 0.0
    finished_at: float = 0.0
    #: requests dropped as stale between the previous render and this one
    skipped_before: int = field(default=0)


class LatestOnlyRenderer:
    """Render requests on one long-lived thread, dropping all but the newest pending one.

    ``render(request) -> value`` runs on the background thread;
    ``on_result(RenderResult)`` is called there too, after every render
    (errors included: ``result.error`` is set and the thread keeps going).
    """

    def __init__(self, render: Callable[[Any], Any], on_result: Callable[[RenderResult], None],
                 name: str = "napari-biogan-render"):
        self._render = render
        self._on_result = on_result
        self._cond = threading.Condition()
        self._pending: tuple[int, Any, float] | None = None
        self._next_id = 0
        self._closed = False
        self._busy = False
        self._skipped_since_last = 0
        #: requests replaced before they were rendered
        self.skipped = 0
        #: requests rendered (successfully or not)
        self.rendered = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- the caller's side ----------------------------------------------------------
    def submit(self, request: Any) -> int:
        """Queue ``request``, replacing any pending one; returns its id (increasing)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("This renderer is closed.")
            self._next_id += 1
            if self._pending is not None:
                self.skipped += 1
                self._skipped_since_last += 1
            self._pending = (self._next_id, request, time.perf_counter())
            self._cond.notify()
            return self._next_id

    @property
    def last_id(self) -> int:
        """The id of the newest submitted request (0 if none)."""
        return self._next_id

    def idle(self) -> bool:
        """True when nothing is pending or rendering."""
        with self._cond:
            return self._pending is None and not self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until idle (tests, scripts); False on timeout."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                left = None if deadline is None else deadline - time.perf_counter()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread after the current render; pending requests are dropped."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the render thread -------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    self._cond.notify_all()
                    return
                request_id, request, submitted = self._pending
                self._pending = None
                self._busy = True
                skipped, self._skipped_since_last = self._skipped_since_last, 0
            result = RenderResult(request_id, request, submitted_at=submitted, started_at=time.perf_counter(),
                                  skipped_before=skipped)
            try:
                result.value = self._render(request)
            except Exception as err:  # reported to the callback; the thread must survive bad requests
                result.error = err
            result.finished_at = time.perf_counter()
            try:
                if not self._closed:
                    self._on_result(result)
            except Exception:  # a broken callback must not kill the one render thread
                _log.exception("render result callback failed")
            finally:
                with self._cond:
                    self.rendered += 1
                    self._busy = False
                    self._cond.notify_all()


def match_torch_threads() -> None:
    """Give the calling thread torch's global intra-op thread count.

    OpenMP keeps the thread count per OS thread, and a new thread starts from the
    default, not from what ``torch.set_num_threads`` set elsewhere. The thread count
    changes the order of floating-point sums, so without this a render on a worker
    thread can differ in the last bit from the same render on the main thread (or on
    another worker). Call it at the start of work on any background thread; it costs
    well under a microsecond.
    """
    import torch

    torch.set_num_threads(torch.get_num_threads())
