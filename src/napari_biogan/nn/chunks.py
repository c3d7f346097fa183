"""Token chunks shared out to single-threaded worker threads (the Nyström products of nn/attention.py).

One synchronisation per call instead of one per operation: the per-operation barriers of
intra-op parallelism cost more than a chunk's arithmetic when another job holds a core.
Results come back in chunk order, so callers combine them deterministically.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _reset_pool_after_fork() -> None:
    global _pool, _pool_size
    _pool, _pool_size = None, 0  # a forked child has none of the parent's threads


if hasattr(os, "register_at_fork"):  # POSIX only; Windows has no fork
    os.register_at_fork(after_in_child=_reset_pool_after_fork)


def _single_threaded_pool(workers: int) -> ThreadPoolExecutor:
    """``workers`` threads whose torch operations run single-threaded (made once, grown on demand).

    torch.set_num_threads(1) in a thread of its own sets that thread's OpenMP and MKL thread
    counts (once torch's lazy per-thread set-up has run there); it also sets the default for
    threads made later, which the caller then restores.
    """
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            caller = torch.get_num_threads()
            started = threading.Barrier(workers)

            def start() -> None:  # runs in each new thread; the barrier makes the pool start them all now
                torch.get_num_threads()  # torch's lazy per-thread set-up first: it would undo the next line later
                torch.set_num_threads(1)
                started.wait()

            old, _pool, _pool_size = _pool, ThreadPoolExecutor(workers, thread_name_prefix="nystrom"), workers
            for future in [_pool.submit(start) for _ in range(workers)]:
                future.result()
            torch.set_num_threads(caller)
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def for_each_chunk(n: int, device: torch.device, body: Callable[[slice], T], chunk: int) -> list[T]:
    """[body(chunk) for each chunk of the n tokens], in order; on CPU spread over torch's threads.

    Chunks are ``chunk`` tokens, or a quarter of a smaller map (at least 256 tokens), so that small
    maps are shared out too; the size depends on n only, never on the thread count.

    Each thread takes the next chunk when done with its last and runs every operation of
    it single-threaded: one synchronisation per call instead of one per operation (the
    per-operation barriers of intra-op parallelism cost more than the chunk's arithmetic
    when another job holds a core), and a thread that falls behind simply takes fewer
    chunks. Results come back in chunk order and are combined in that order by the
    callers, so the numbers do not depend on the number of threads.
    """
    size = min(chunk, max(256, -(-n // 4)))
    chunks = [slice(start, start + size) for start in range(0, n, size)]
    # the tracer records this thread's operations only: a trace runs the chunks here, in turn
    workers = min(torch.get_num_threads(), len(chunks)) if device.type == "cpu" and not torch.jit.is_tracing() else 1
    if workers <= 1:
        return [body(part) for part in chunks]
    results: list = [None] * len(chunks)
    taken = iter(range(len(chunks)))
    lock = threading.Lock()
    inference = torch.is_inference_mode_enabled()

    def work() -> None:  # grad and inference modes are per thread: the caller's, without autograd
        with torch.inference_mode(inference), torch.no_grad():
            while True:
                with lock:
                    index = next(taken, None)
                if index is None:
                    return
                results[index] = body(chunks[index])

    for future in [_single_threaded_pool(workers).submit(work) for _ in range(workers)]:
        future.result()
    return results
