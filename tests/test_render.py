"""The latest-only render queue (core/render.py): no Qt, no model needed."""

import threading

import pytest

from napari_biogan.core.render import LatestOnlyRenderer


class _Recorder:
    def __init__(self):
        self.results = []
        self.lock = threading.Lock()

    def __call__(self, result):
        with self.lock:
            self.results.append(result)


def test_renders_a_single_request():
    rec = _Recorder()
    renderer = LatestOnlyRenderer(lambda r: r * 2, rec)
    try:
        rid = renderer.submit(21)
        assert renderer.wait_idle(5)
        assert [(r.request_id, r.value) for r in rec.results] == [(rid, 42)]
        assert renderer.skipped == 0 and renderer.rendered == 1
    finally:
        renderer.close()


def test_a_fast_burst_renders_the_newest_and_skips_stale_ones():
    gate, started = threading.Event(), threading.Event()
    rec = _Recorder()

    def slow(request):
        started.set()
        gate.wait(5)  # the first render is held until all requests are in
        return request

    renderer = LatestOnlyRenderer(slow, rec)
    try:
        renderer.submit(0)
        assert started.wait(5)  # the thread has taken request 0
        for value in range(1, 100):
            renderer.submit(value)
        gate.set()
        assert renderer.wait_idle(5)
        values = [r.value for r in rec.results]
        # request 0 was already rendering; of 1..99 only the newest survives
        assert values == [0, 99]
        assert renderer.skipped == 98
        assert rec.results[-1].skipped_before == 98
        assert renderer.rendered == 2
    finally:
        renderer.close()


def test_ids_increase_and_latency_times_are_ordered():
    rec = _Recorder()
    renderer = LatestOnlyRenderer(lambda r: r, rec)
    try:
        ids = [renderer.submit(i) for i in range(3)]
        assert ids == sorted(ids) and renderer.last_id == ids[-1]
        assert renderer.wait_idle(5)
        last = rec.results[-1]
        assert last.request_id == ids[-1]
        assert last.submitted_at <= last.started_at <= last.finished_at
    finally:
        renderer.close()


def test_errors_reach_the_callback_and_the_thread_survives():
    rec = _Recorder()

    def render(request):
        if request == "bad":
            raise ValueError("boom")
        return request

    renderer = LatestOnlyRenderer(render, rec)
    try:
        renderer.submit("bad")
        assert renderer.wait_idle(5)
        renderer.submit("good")
        assert renderer.wait_idle(5)
        assert isinstance(rec.results[0].error, ValueError)
        assert rec.results[1].value == "good" and rec.results[1].error is None
    finally:
        renderer.close()


def test_a_failing_callback_does_not_kill_the_thread():
    seen = []

    def callback(result):
        seen.append(result.value)
        if result.value == 1:
            raise RuntimeError("widget is gone")

    renderer = LatestOnlyRenderer(lambda r: r, callback)
    try:
        renderer.submit(1)
        assert renderer.wait_idle(5)
        renderer.submit(2)
        assert renderer.wait_idle(5)
        assert seen == [1, 2]
    finally:
        renderer.close()


def test_close_stops_the_thread_and_refuses_new_work():
    renderer = LatestOnlyRenderer(lambda r: r, lambda result: None)
    renderer.close()
    assert renderer.closed
    assert not renderer._thread.is_alive()
    with pytest.raises(RuntimeError):
        renderer.submit(1)


# -- GANSpace directions and moved latents (what the Explore widget renders) ----------------------

def test_gan_space_gives_unit_directions_and_moved_latent_follows_them():
    import torch

    from napari_biogan.core.model import GanModel
    from napari_biogan.core.latent import gan_space, moved_latent

    model = GanModel.new("dcgan2d", base_width=8, seed=0)
    space = gan_space(model, n=128, k=4, seed=0)
    assert space.directions.shape == (4, 64) and space.scales.shape == (4,)
    torch.testing.assert_close(space.directions.norm(dim=1), torch.ones(4))
    assert (space.scales > 0).all()
    base = model.latents(1, seed=3)
    assert torch.equal(moved_latent(base, space, [0.0, 0.0]), base)
    assert torch.equal(moved_latent(base, None, [2.0]), base)
    moved = moved_latent(base, space, [0.0, 2.0])
    torch.testing.assert_close(moved - base, (2.0 * space.scales[1] * space.directions[1])[None])
    assert moved.shape == base.shape and torch.equal(base, model.latents(1, seed=3))  # base untouched


def test_match_torch_threads_makes_worker_renders_identical():
    import torch

    from napari_biogan.core.model import GanModel
    from napari_biogan.core.render import match_torch_threads

    model = GanModel.new("dcgan2d", base_width=8, seed=1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main = model.sample(4, seed=7, precision="fp32")
        out = []

        def work():
            match_torch_threads()
            out.append(model.sample(4, seed=7, precision="fp32"))

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        assert (out[0] == main).all()
    finally:
        torch.set_num_threads(before)
