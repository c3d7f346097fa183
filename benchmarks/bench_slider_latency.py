"""Slider-to-layer latency of the Explore widget during a scripted drag.

A 64x64 dcgan2d model (untrained: the time per render is the same as trained),
a shown napari viewer, and 100 slider values set at mouse-drag pace (one every
``--interval-ms``, events processed in between). Prints, in one run:

- per slider event: the time until the layer shows that value or a newer one
  (what the hand feels), median and p95;
- per render shown: submit-to-layer time, median and p95;
- renders done and requests skipped as stale.

Run with a display (or ``xvfb-run -a``):
    python benchmarks/bench_slider_latency.py [--values 100] [--interval-ms 16] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=100)
    parser.add_argument("--interval-ms", type=float, default=16.0, help="time between slider events (60 Hz)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "auto", "bf16"))
    parser.add_argument("--hidden", action="store_true",
                        help="do not show the viewer: no canvas painting (isolates the render pipeline)")
    args = parser.parse_args()

    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_biogan._qt.explore_widget import ExploreWidget
    from napari_biogan._qt.session import session_for
    from napari_biogan.core.model import GanModel

    if args.threads:
        torch.set_num_threads(args.threads)
    app = QApplication.instance() or QApplication([])

    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.0005)

    def wait_for(condition, timeout: float = 60.0) -> None:
        end = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > end:
                raise TimeoutError("the widget did not settle")
            pump(0.005)

    viewer = napari.Viewer(show=not args.hidden)
    model = GanModel.new("dcgan2d", height=args.size, width=args.size, device="cpu", seed=0)
    session_for(viewer).set_model(model)
    widget = ExploreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Explore")
    widget.precision_combo.setCurrentText(args.precision)
    wait_for(lambda: len(widget.direction_sliders) > 0 and not widget.busy)
    slider = widget.direction_sliders[0]
    for value in (0.5, -0.5, 0.0):  # warm-up renders
        slider.setValue(value)
        wait_for(lambda: widget.renderer.idle() and widget.applied_id == widget.renderer.last_id)

    results = []  # every RenderResult, to split the latency into queue / render / hand-over to the layer
    forward = widget.renderer._on_result
    widget.renderer._on_result = lambda result: (results.append(result), forward(result))
    skipped0, rendered0 = widget.renderer.skipped, widget.renderer.rendered
    widget.latencies.clear()
    widget.applied_log.clear()
    submitted: list[tuple[int, float]] = []
    started = time.perf_counter()
    for value in np.linspace(-3.0, 3.0, args.values):
        before = widget.renderer.last_id
        slider.setValue(float(value))
        if widget.renderer.last_id != before:
            submitted.append((widget.renderer.last_id, widget.renderer._pending[2]
                              if widget.renderer._pending else time.perf_counter()))
        pump(args.interval_ms / 1000)
    wait_for(lambda: widget.renderer.idle() and widget.applied_id == widget.renderer.last_id)
    drag_s = time.perf_counter() - started

    applied = widget.applied_log
    felt = []
    for request_id, t_submit in submitted:
        shown = next(t for rid, t in applied if rid >= request_id)
        felt.append(shown - t_submit)
    felt_ms, shown_ms = np.array(felt) * 1e3, np.array(widget.latencies) * 1e3
    print(f"model: dcgan2d {args.size}x{args.size}, precision {args.precision}, "
          f"torch threads {torch.get_num_threads()}, interval {args.interval_ms:.0f} ms, "
          f"viewer {'hidden' if args.hidden else 'shown'}")
    print(f"slider events: {len(submitted)} in {drag_s:.2f} s")
    print(f"slider-to-layer (per event, value or newer shown): median {np.median(felt_ms):.1f} ms, "
          f"p95 {np.percentile(felt_ms, 95):.1f} ms, max {felt_ms.max():.1f} ms")
    print(f"submit-to-layer (per render shown): median {np.median(shown_ms):.1f} ms, "
          f"p95 {np.percentile(shown_ms, 95):.1f} ms")
    shown_at = dict(applied)
    parts = np.array([(r.started_at - r.submitted_at, r.finished_at - r.started_at,
                       shown_at[r.request_id] - r.finished_at) for r in results if r.request_id in shown_at]) * 1e3
    print("median split: waiting for the render thread {:.1f} ms, render {:.1f} ms, "
          "to the layer on the main thread {:.1f} ms".format(*np.median(parts, axis=0)))
    print(f"renders: {widget.renderer.rendered - rendered0}, skipped as stale: "
          f"{widget.renderer.skipped - skipped0}")
    widget.teardown()
    viewer.close()


if __name__ == "__main__":
    main()
