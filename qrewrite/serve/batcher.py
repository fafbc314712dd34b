"""Micro-batching for the server: questions from concurrent requests are rewritten together, off the event loop.

Each request's questions join one FIFO queue, each with its own future. A single worker takes the oldest
question and waits for more until a gap passes without a new one (or ``max_batch`` are there, or
``MAX_WAIT_GAPS`` gaps have passed), then runs the batch in a one-thread executor: the model is
used by one batch at a time, and the event loop keeps accepting requests meanwhile. Results go back through
the futures, so a request only ever sees its own answers. A batch of one question takes the backend's
single-question path (prompt lookup); ``max_batch=1`` turns batching off.

The gap is ``max_wait_ms``, or ``GAP_FRACTION`` of a batch's recent running time when that is longer: clients
answered together by one batch come back spread over many milliseconds on a busy machine, and waiting a
fixed few milliseconds would split them into alternating part-batches, while a gap of 2 % of a batch's time
costs little.

The queue is bounded in questions (accepted and not yet answered): past ``max_queue`` a request is refused at
once with :class:`QueueFull`, so a flood costs a 429, never unbounded memory.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

MAX_WAIT_GAPS = 10
GAP_FRACTION = 0.02


class QueueFull(Exception):
    def __init__(self, pending: int, limit: int, retry_after: int):
        super().__init__(f"the rewrite queue is full ({pending} questions waiting, limit {limit}); "
                         f"retry in {retry_after} s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    pass


@dataclass
class _Item:
    question: str
    future: asyncio.Future


class Batcher:
    def __init__(self, backend, *, max_batch: int = 32, max_wait_ms: float = 5.0, max_queue: int = 256,
                 threads: int | None = None):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.backend, self.max_batch, self.max_queue, self.threads = backend, max_batch, max_queue, threads
        self.max_wait = max_wait_ms / 1000
        self.pending = 0  # questions accepted and not yet answered (queued or being generated)
        self.batches = self.rewritten = 0
        self.batch_seconds = 0.0  # running estimate of one batch's time: the wait for company, Retry-After
        self._queue: collections.deque[_Item] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="qrewrite-generate", initializer=_set_threads,
                                            initargs=(self.threads,))
        self._worker = asyncio.create_task(self._run(), name="qrewrite-batcher")

    async def close(self) -> None:
        """Stop the worker; anything still queued fails with ShuttingDown (the server drains requests first)."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(ShuttingDown("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def rewrite(self, questions: list[str], timeout: float | None = None) -> list[str]:
        """The rewrites of ``questions``, in order. Raises QueueFull at once, TimeoutError after ``timeout`` s."""
        if self._worker is None or self._worker.done():
            raise ShuttingDown("the server is not running")
        if self.pending + len(questions) > self.max_queue:
            raise QueueFull(self.pending, self.max_queue, self.retry_after())
        loop = asyncio.get_running_loop()
        items = [_Item(q, loop.create_future()) for q in questions]
        self.pending += len(items)
        self._queue.extend(items)
        self._arrived.set()
        try:
            return await asyncio.wait_for(asyncio.gather(*(i.future for i in items)), timeout)
        finally:
            for item in items:  # on timeout or cancellation: the worker drops cancelled items unrun
                item.future.cancel()

    def retry_after(self) -> int:
        batches_ahead = math.ceil(max(self.pending, 1) / self.max_batch)
        return max(1, min(60, math.ceil(batches_ahead * self.batch_seconds)))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            gap = max(self.max_wait, GAP_FRACTION * self.batch_seconds)
            cap = loop.time() + gap * MAX_WAIT_GAPS
            while len(self._queue) < self.max_batch and (left := min(gap, cap - loop.time())) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
            batch = []
            while self._queue and len(batch) < self.max_batch:
                item = self._queue.popleft()
                if item.future.done():  # its request timed out while queued
                    self.pending -= 1
                else:
                    batch.append(item)
            if batch:
                await self._generate(loop, batch)

    async def _generate(self, loop, batch: list[_Item]) -> None:
        questions = [i.question for i in batch]
        start = time.perf_counter()
        try:
            if len(questions) == 1:
                results = [await loop.run_in_executor(self._executor, self.backend.rewrite_one, questions[0])]
            else:
                results = await loop.run_in_executor(self._executor, self.backend.rewrite, questions)
        except Exception as e:  # noqa: BLE001 - the requests in this batch get the error, the server goes on
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(e)
        else:
            for item, text in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(text)
            self.batches += 1
            self.rewritten += len(batch)
            took = time.perf_counter() - start
            self.batch_seconds = took if self.batches == 1 else 0.8 * self.batch_seconds + 0.2 * took
        finally:
            self.pending -= len(batch)


def _set_threads(threads: int | None) -> None:
    """torch's intra-op threads for the generation thread (where it is set, as OpenMP keeps it per thread)."""
    if threads:
        import torch
        torch.set_num_threads(threads)
