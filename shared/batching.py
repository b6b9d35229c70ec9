"""Group work that concurrent requests hand over at the same time into one call.

The pattern of the job-state writer's group commit, for anything whose fixed cost per
call dominates — a hop to a thread, a Redis round trip: items submitted while a call is
in flight go together into the next one, so under load the cost is paid per batch, and a
lone item waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 256


class Batcher(Generic[Item, Result]):
    """Runs `run(items)` for batches of submitted items; one per event loop.

    `run` returns one result per item, in order: a value, or an exception that fails only
    that item's `submit`. An exception raised by `run` fails the whole batch.
    """

    def __init__(
        self, run: Callable[[list[Item]], Awaitable[Sequence[Result | Exception]]]
    ) -> None:
        self._run = run
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:
                results = [exc] * len(batch)
            except BaseException:  # cancelled (the loop is closing): so are the waiters
                for _, future in [*batch, *self._pending]:
                    future.cancel()
                self._pending.clear()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its waiter was cancelled
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
