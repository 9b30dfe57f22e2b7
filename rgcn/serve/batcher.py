"""Micro-batching: posts that arrive together are tagged together.

Each request hands its post to :meth:`MicroBatcher.submit` and awaits its result. One
collector task takes the first waiting post, then gathers more until ``max_batch`` posts
are waiting or ``max_wait_ms`` has passed since the first, and runs the whole batch through
``tag_many`` on one worker thread (the model is only ever used by that thread). While a
batch runs, new posts queue up and form the next batch at once, so under load the model
sees full batches and the service's throughput approaches ``tag_many``'s.

A batch that raises is retried post by post, so one bad post fails only its own request.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


class Busy(Exception):
    """More posts wait than the queue holds."""


@dataclass
class _Job:
    post: Any
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class Timing:
    """Where a post's time went: waiting for its batch, and the batch in the model."""

    queue_ms: float
    model_ms: float
    batch_size: int

    def as_dict(self) -> dict:
        return {"queue_ms": round(self.queue_ms, 2), "model_ms": round(self.model_ms, 2),
                "batch_size": self.batch_size}


class MicroBatcher:
    """Collect up to ``max_batch`` posts or ``max_wait_ms`` milliseconds, then tag them at once.

    Args:
        tag_many: ``tag_many(posts, batch_size=N)`` -> results in input order (the tagger's).
        max_batch: most posts in one model batch (default 32).
        max_wait_ms: longest a post waits for others to join its batch (default 5).
        max_queue: most posts waiting; beyond it :meth:`submit` raises :class:`Busy` (default 4096).
    """

    def __init__(self, tag_many: Callable[..., Iterable], max_batch: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 4096):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.tag_many, self.max_batch, self.max_wait = tag_many, max_batch, max_wait_ms / 1000
        self.max_queue = max_queue
        self.batches: list[int] = []             # the size of every batch run (bounded: the last 10,000)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tagger")
        self._task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._task = self._executor = None

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, post) -> tuple[Any, Timing]:
        """The tagger's result for ``post`` and its :class:`Timing`; the tagger's exception
        for this post when it raises one."""
        if self._queue is None or self._task is None:
            raise RuntimeError("the batcher is not started (await start() first)")
        if self._task.done():
            raise RuntimeError("the batcher's collector stopped") from self._task.exception()
        if self._queue.qsize() >= self.max_queue:
            raise Busy(f"{self._queue.qsize()} posts are waiting")
        job = _Job(post, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        return await job.future

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except (asyncio.TimeoutError, TimeoutError):
                    break
            batch = [j for j in batch if not j.future.done()]      # the client went away
            if not batch:
                continue
            started = time.perf_counter()
            outcomes = await loop.run_in_executor(self._executor, self._run, [j.post for j in batch])
            model_ms = 1000 * (time.perf_counter() - started)
            self.batches = self.batches[-9_999:] + [len(batch)]
            for job, (ok, value) in zip(batch, outcomes):
                if job.future.done():
                    continue
                if ok:
                    job.future.set_result((value, Timing(1000 * (started - job.enqueued), model_ms, len(batch))))
                else:
                    job.future.set_exception(value)

    def _run(self, posts: list) -> list[tuple[bool, Any]]:
        """``(True, result)`` or ``(False, exception)`` per post, in order."""
        try:
            results = list(self.tag_many(posts, batch_size=len(posts)))
            if len(results) != len(posts):
                raise RuntimeError(f"tag_many returned {len(results)} results for {len(posts)} posts")
            return [(True, r) for r in results]
        except Exception as e:                         # noqa: BLE001 - retried one by one below
            if len(posts) == 1:
                return [(False, e)]
        out = []
        for post in posts:
            try:
                out.append((True, next(iter(self.tag_many([post], batch_size=1)))))
            except Exception as e:                     # noqa: BLE001 - this post's own failure
                out.append((False, e))
        return out
