"""How validated inputs reach the model: one call per request, or adaptive batches.

Both runners are awaited with the feeds and the row count of one request and return that
request's own output rows. A batch failure is set on every caller's future.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import InferenceFailed

Feeds = dict[str, np.ndarray]
RunFn = Callable[[Feeds], list[np.ndarray]]
# Called once per inference with (rows, seconds) so metrics stay out of this module.
BatchObserver = Callable[[int, float], None]


def _timed(run: RunFn, feeds: Feeds) -> tuple[list[np.ndarray], float]:
    start = time.perf_counter()
    out = run(feeds)
    return out, time.perf_counter() - start


class DirectRunner:
    """No batching. Fast models run right on the event loop: a hop to a thread costs more
    than they do. Slow ones run in a worker thread so the loop keeps answering probes."""

    def __init__(self, run: RunFn, *, inline: bool, observe: BatchObserver) -> None:
        self._run = run
        self._inline = inline
        self._observe = observe
        self._pool = None if inline else ThreadPoolExecutor(1, thread_name_prefix="infer")

    async def __call__(self, feeds: Feeds, rows: int) -> list[np.ndarray]:
        try:
            if self._pool is None:
                start = time.perf_counter()
                out = self._run(feeds)
                seconds = time.perf_counter() - start
            else:
                loop = asyncio.get_running_loop()
                out, seconds = await loop.run_in_executor(self._pool, _timed, self._run, feeds)
        except Exception as exc:
            raise InferenceFailed(f"inference failed: {exc}") from exc
        self._observe(rows, seconds)
        return out


_Pending = tuple[Feeds, int, "asyncio.Future[list[np.ndarray]]"]


class Batcher:
    """Adaptive batching: requests wait up to ``max_latency_s`` for others to join, and a batch
    runs as soon as it holds ``max_rows`` rows. Each caller gets exactly its own rows back."""

    def __init__(
        self,
        run: RunFn,
        *,
        max_rows: int,
        max_latency_s: float,
        inline: bool,
        observe: BatchObserver,
    ) -> None:
        self._run = run
        self._max_rows = max_rows
        self._max_latency_s = max_latency_s
        self._observe = observe
        self._pool = None if inline else ThreadPoolExecutor(1, thread_name_prefix="infer")
        self._queue: list[_Pending] = []
        self._rows = 0
        self._timer: asyncio.TimerHandle | None = None

    async def __call__(self, feeds: Feeds, rows: int) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[np.ndarray]] = loop.create_future()
        if self._queue and self._rows + rows > self._max_rows:
            self._flush()  # this request would overfill the batch: send what is there first
        self._queue.append((feeds, rows, future))
        self._rows += rows
        if self._rows >= self._max_rows:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_latency_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._queue, self._rows = self._queue, [], 0
        if not batch:
            return
        try:
            feeds = (
                batch[0][0]
                if len(batch) == 1
                else {n: np.concatenate([item[0][n] for item in batch]) for n in batch[0][0]}
            )
        except ValueError as exc:  # variable non-batch dims that differ between requests
            self._fail(batch, exc)
            return
        if self._pool is None:
            try:
                result = _timed(self._run, feeds)
            except Exception as exc:
                self._fail(batch, exc)
                return
            self._deliver(batch, result)
            return
        done = asyncio.get_running_loop().run_in_executor(self._pool, _timed, self._run, feeds)
        done.add_done_callback(lambda f: self._settle(batch, f))

    def _settle(
        self, batch: list[_Pending], done: asyncio.Future[tuple[list[np.ndarray], float]]
    ) -> None:
        exc = done.exception()
        if exc is not None:
            self._fail(batch, exc)
        else:
            self._deliver(batch, done.result())

    def _fail(self, batch: list[_Pending], exc: BaseException) -> None:
        error = InferenceFailed(f"inference failed for a batch of {len(batch)} requests: {exc}")
        for _, _, future in batch:
            if not future.done():
                future.set_exception(error)

    def _deliver(self, batch: list[_Pending], result: tuple[list[np.ndarray], float]) -> None:
        outputs, seconds = result
        total = sum(rows for _, rows, _ in batch)
        self._observe(total, seconds)
        start = 0
        for _, rows, future in batch:
            end = start + rows
            if not future.done():
                # Outputs without a batch dimension (rare) go to everyone whole.
                future.set_result(
                    [o[start:end] if o.ndim and o.shape[0] == total else o for o in outputs]
                )
            start = end
