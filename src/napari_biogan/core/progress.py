"""A plain text progress bar with ETA for the CLI (napari's own bar is used in the plugin)."""

from __future__ import annotations

import sys
import time


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class TextProgress:
    """``[#####-----] 50/100 ETA 00:12 note`` on one line of stderr, redrawn at most 10 times a second."""

    def __init__(self, total: int, label: str = "", stream=None, width: int = 30):
        self.total, self.label, self.width = max(total, 1), label, width
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, done: int, note: str = "", eta_s: float | None = None, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        if eta_s is None and done:
            eta_s = (now - self.started) / done * (self.total - done)
        filled = int(self.width * min(done, self.total) / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} ETA {format_seconds(eta_s)} {note}".rstrip()
                          + "   ")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def format_duration(seconds: float | None) -> str:
    """A duration in words for people: "12 s", "4 min 10 s", "1 h 32 min"."""
    if seconds is None:
        return "unknown"
    seconds = int(round(float(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
