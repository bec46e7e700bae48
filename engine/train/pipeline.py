"""Keeps the model fed: a background thread prepares the next batches (cache slice -> device -> augment).

The main thread only runs the model. Torch kernels release the GIL, so on a CPU the preparation of batch
k+1 overlaps the forward/backward of batch k; on CUDA the thread issues its copies and augmentation on its
own stream and hands over an event the model's stream waits on (no host synchronisation).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

_DONE = object()


class Prefetcher:
    """Iterate ``prepare(job)`` for each job, computed ``depth`` jobs ahead in a daemon thread.

    ``prepare`` must return a tuple of tensors and must not use the global RNG (pass it a Generator):
    then the stream of batches is the same as a plain loop, whatever the thread timing. ``depth=0``
    prepares inline in the consumer's thread. The default (``None``) is 2 on CUDA and 0 on a CPU: there the
    model already uses every core, and a concurrent preparation thread only oversubscribes them (measured
    in bench/bench_train.py: inline ~0.9x model-only, threaded ~0.6x on 2 cores).
    """

    def __init__(self, jobs: Iterable[Any], prepare: Callable[[Any], tuple[torch.Tensor, ...]],
                 device: torch.device, depth: int | None = None) -> None:
        if depth is None:
            depth = 2 if device.type == "cuda" else 0
        self._jobs = jobs
        self._prepare = prepare
        self._cuda = device.type == "cuda"
        self._device = device
        self._inline = depth == 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ganaug-prefetch", daemon=True)
        if not self._inline:
            self._thread.start()

    def _run(self) -> None:
        stream = torch.cuda.Stream(self._device) if self._cuda else None
        ctx = torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
        try:
            with ctx:
                for job in self._jobs:
                    if self._stop.is_set():
                        return
                    out = self._prepare(job)
                    event = None
                    if stream is not None:
                        event = torch.cuda.Event()
                        event.record(stream)
                    self._put((out, event))
        except BaseException as exc:  # surfaced in the consumer thread
            self._put(exc)
            return
        self._put(_DONE)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if self._inline:
            for job in self._jobs:
                yield self._prepare(job)
            return
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            out, event = item
            if event is not None:
                current = torch.cuda.current_stream(self._device)
                current.wait_event(event)
                for t in out:
                    t.record_stream(current)
            yield out

    def close(self) -> None:
        """Stop the thread early (e.g. a graceful stop mid-epoch) and wait for it."""
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def host_batch(images: np.ndarray, index: np.ndarray, pin: bool) -> torch.Tensor:
    """Gather ``images[index]`` (sorted index: sequential reads from a memory-mapped cache) as a tensor."""
    batch = torch.from_numpy(np.ascontiguousarray(images[index]))
    return batch.pin_memory() if pin else batch
