"""Adaptive batching: requests for one model version that arrive together run as one call.

A lone request on an idle model runs at once; no timer holds it back. While the model is busy,
requests queue, and when a slot frees, everything queued (up to ``max_batch_size`` rows) runs
as one batch. ``max_latency`` lets a batch wait a little longer for company when the queue is
short but traffic is steady; it only applies while other batches are running, so it never
delays a request on an idle model. A batch that fails is retried request by request, so that a
request the model chokes on fails alone.

Model calls run on a thread pool, off the event loop, with one exception: a model whose calls
all finish within ``inline_below`` (an ONNX forest answers 16 rows in tens of microseconds) is
called on the loop itself, because handing such a call to a thread costs more than the call:
a future, a thread wake-up, and two handovers of the interpreter lock, during which the loop
waits. The batcher times every call; only after ``INLINE_AFTER`` calls in a row came in under
the bound does it call inline, and one inline call over twice the bound sends it back to the
thread pool. So a slow model never holds the loop for more than one call.

Calls are timed in the CPU time of the thread that makes them, which leaves out the waits for
the interpreter lock that a busy server imposes on any thread. A model that waits for
something else (a sleep, a socket) shows it in wall time instead; so a call also counts as
fast only if its wall time exceeds its budget by less than one switch interval of the
interpreter lock (``sys.getswitchinterval()``, the longest such a wait should last).

That slack lets through a model that waits a little on every call (a millisecond for a
feature store, say): harmless on the pool, but on the loop each such wait stops every other
request. So on the loop a call should take about its CPU time; when most calls of a stretch
of ``STALL_WINDOW`` take more than twice that, calls go back to the pool and must prove fast
twice as long as before (up to ``INLINE_AFTER_MAX`` calls) before they try the loop again.

Calls on the loop leave no time for requests to pile up behind a running call, which is how
batches form on the pool. So when other clients are active, a batch lets the loop turn up to
``GATHER_TURNS`` times before it runs: requests being read, and the next requests of the clients
just answered, join it. Other clients are active when the server holds requests for the model
that have not reached the queue (see ``in_flight``), when the last batch served several callers
and ended under ``BUSY_GAP`` ago, or when, in the last ``PEAK_WINDOW``, a request arrived while
others were in the server. The last rule is the one gRPC needs: grpc.aio hands each call to the
loop through several callbacks, so the next requests are on their way but not yet in the server,
and batches of one would otherwise keep themselves at one. The wait ends early once the queue
holds as many rows as the server holds requests, or held at the busiest moment of that window. A
turn with nothing else to do takes microseconds; a lone client has nobody to wait for and runs
at once. (Stopping as soon as a turn brought nobody gave half the batch size and none of the
throughput: arrivals come in bursts a few turns apart.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from modelpilot.errors import Overloaded, Unavailable
from modelpilot.runtimes.base import Batch, batch_rows

logger = logging.getLogger(__name__)

INLINE_AFTER = 64
"""Calls in a row under ``inline_below`` on the thread pool before calls move to the loop."""
INLINE_AFTER_MAX = 64 * INLINE_AFTER
"""The most fast calls asked for after calls on the loop kept stalling."""
GATHER_TURNS = 48
"""Most turns of the loop a batch run on the loop waits for company."""
PEAK_WINDOW = 0.01
"""Seconds for which a moment with several requests in the server counts as recent."""
BUSY_GAP = 0.001
"""Seconds after a batch of several callers during which the model counts as busy."""
STALL_WINDOW = 64
"""Calls on the loop judged together: back to the pool if most of them stalled."""
STALL_SLACK = 20e-6
"""Seconds of wall time beyond twice its CPU time that a call on the loop may take."""

Predict = Callable[[Batch, list[str]], dict[str, np.ndarray]]
OnBatch = Callable[[int, list[float], float], None]
"""Told as each batch has run: its rows, how long each caller waited in the queue, and the
seconds its model call took (with the calls of its requests alone, if one of them broke it)."""
Predicted = Callable[[list[str], list[int], Batch, dict[str, np.ndarray]], None]
"""Told after each successful model call: the callers' tags, their row counts, the inputs
and the outputs of the call (all rows, in the callers' order; a caller that gave up while
the call ran is still among them, since the model did answer it)."""


@dataclass(frozen=True, slots=True)
class BatchingPolicy:
    """How one model version batches."""

    max_batch_size: int = 64
    """Most rows in one call to the model."""
    max_latency: float = 0.0
    """Seconds a batch may wait for more rows while the model is busy (0: never wait)."""
    concurrency: int = 1
    """Batches of this version that may run at once (threads, or ONNX sessions in parallel)."""
    max_queue_rows: int = 10_000
    """Rows allowed to wait; past that, requests are refused with 503 and Retry-After."""
    inline_below: float = 0.0
    """Seconds under which a model call runs on the event loop (0: always on the pool)."""


@dataclass(slots=True)
class _Item:
    batch: Batch
    outputs: tuple[str, ...]
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]] = field(repr=False)
    queued_at: float = 0.0
    tag: str = ""


class AdaptiveBatcher:
    """Queues requests for one runtime and runs them in batches on ``executor``."""

    def __init__(
        self,
        predict: Predict,
        executor: Executor,
        policy: BatchingPolicy,
        on_batch: OnBatch | None = None,
        on_predicted: Predicted | None = None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self._predict = predict
        self._on_batch = on_batch
        self._on_predicted = on_predicted
        self._in_flight = in_flight
        """Requests for this model the server holds, queued here or not (see _gather)."""
        self._executor = executor
        self.policy = policy
        self._queue: list[_Item] = []
        self._queued_rows = 0
        self._running = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0
        self.batched_rows = 0
        self.inline = False
        """Calls run on the event loop (fast model, see the module's docstring)."""
        self._fast_calls = 0
        self._inline_after = INLINE_AFTER
        self._last_callers = 0
        self._last_finish = -1.0
        self._peak = 0
        """Most requests in the server at an arrival, over the last ``PEAK_WINDOW``."""
        self._peak_at = -1.0
        self._loop_calls = 0
        self._stalled_calls = 0

    def listen(self, on_batch: OnBatch | None, on_predicted: Predicted | None) -> None:
        """Who is told of each model call from now on (see ``__init__``)."""
        self._on_batch, self._on_predicted = on_batch, on_predicted

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def submit(
        self, batch: Batch, outputs: Sequence[str], tag: str = ""
    ) -> dict[str, np.ndarray]:
        """Run ``batch`` (possibly with others) and return its own rows of every output."""
        return await self.enqueue(batch, outputs, tag)

    def enqueue(
        self, batch: Batch, outputs: Sequence[str], tag: str = ""
    ) -> asyncio.Future[dict[str, np.ndarray]]:
        """Queue ``batch``; the future gets its rows of every output (cancel it to give up).

        ``tag`` (the request id) is handed back to ``on_predicted`` with the batch it ran in.
        """
        rows = batch_rows(batch)
        if self._queued_rows + rows > self.policy.max_queue_rows and self._queued_rows:
            raise Overloaded(
                f"{self._queued_rows} rows are already waiting for this model; retry shortly "
                "or add workers",
                retry_after=1.0,
            )
        loop = asyncio.get_running_loop()
        now = time.perf_counter()  # (uvloop's loop.time() moves in whole milliseconds)
        if self._in_flight is not None:
            held = self._in_flight()
            if held >= self._peak or now - self._peak_at > PEAK_WINDOW:
                self._peak, self._peak_at = held, now
        item = _Item(batch, tuple(outputs), rows, loop.create_future(), now, tag)
        self._queue.append(item)
        self._queued_rows += rows
        self._ensure_worker()
        assert self._wakeup is not None
        self._wakeup.set()
        return item.future

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.create_task(self._run(), name="modelpilot-batcher")

    def cancel(self, reason: str = "the model was unloaded") -> None:
        """Stop the worker, and fail whatever still waits with ``Unavailable(reason)`` (the
        model is going away; the calls already made finish). Not cancelled: a future that
        is cancelled raises CancelledError in its caller, which then has no error to answer
        with (REST gave a plain-text 500, gRPC no answer at all)."""
        if self._worker is not None:
            self._worker.cancel()
        for item in self._queue:
            if not item.future.done():
                item.future.set_exception(Unavailable(f"{reason}; send the request again"))
        self._queue.clear()
        self._queued_rows = 0

    async def close(self) -> None:
        worker = self._worker
        self.cancel("the server is stopping")
        if worker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _run(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        while True:
            await wakeup.wait()
            wakeup.clear()
            while self._queue and self._running < self.policy.concurrency:
                if self._running and self.policy.max_latency > 0 and self._short_queue():
                    # Busy and the queue is thin: give it a moment to fill.
                    try:
                        await asyncio.wait_for(wakeup.wait(), self.policy.max_latency)
                        wakeup.clear()
                    except asyncio.TimeoutError:
                        pass
                    if self._running >= self.policy.concurrency:
                        break
                elif self.inline and not self._running:
                    await self._gather()
                    if not self._queue:  # cancelled meanwhile
                        break
                items = self._take()
                self._last_callers = len(items)
                self._running += 1
                task = asyncio.create_task(self._execute(items))
                task.add_done_callback(self._finished)

    def _short_queue(self) -> bool:
        return self._queued_rows < self.policy.max_batch_size

    async def _gather(self) -> None:
        """Let the loop turn a few times while other clients are active (module docstring)."""
        if self._in_flight is None:
            return
        now = time.perf_counter()
        peak = self._peak if now - self._peak_at <= PEAK_WINDOW else 0
        held = self._in_flight()
        busy = peak > 1 or (self._last_callers > 1 and now - self._last_finish < BUSY_GAP)
        if not busy and held <= len(self._queue):
            return
        enough = min(max(peak, held, 2), self.policy.max_batch_size)
        for _ in range(GATHER_TURNS):
            if self._queued_rows >= enough:
                return
            await asyncio.sleep(0)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running -= 1
        self._last_finish = time.perf_counter()
        if not task.cancelled() and task.exception() is not None:
            logger.error("batch task failed", exc_info=task.exception())
        if self._wakeup is not None:
            self._wakeup.set()

    def _take(self) -> list[_Item]:
        """The oldest request and every queued one that fits with it and asks the same."""
        first = self._queue[0]
        taken = [first]
        rows = first.rows
        keep: list[_Item] = []
        for item in self._queue[1:]:
            if (
                rows + item.rows <= self.policy.max_batch_size
                and item.outputs == first.outputs
                and _compatible(first.batch, item.batch)
            ):
                taken.append(item)
                rows += item.rows
            else:
                keep.append(item)
        self._queue = keep
        self._queued_rows -= rows
        return taken

    async def _execute(self, items: list[_Item]) -> None:
        items = [i for i in items if not i.future.done()]  # cancelled or timed out
        if not items:
            return
        loop = asyncio.get_running_loop()
        if self._on_batch is None:
            await self._run_batch(loop, items)
            return
        started = time.perf_counter()
        waits = [started - i.queued_at for i in items]
        try:
            await self._run_batch(loop, items)
        finally:
            try:
                self._on_batch(sum(i.rows for i in items), waits, time.perf_counter() - started)
            except Exception:
                logger.exception("batch observer failed")

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, items: list[_Item]) -> None:
        outputs = list(items[0].outputs)
        if len(items) == 1:
            await self._run_one(loop, items[0], outputs)
            return
        merged = {name: np.concatenate([i.batch[name] for i in items]) for name in items[0].batch}
        try:
            result = await self._call(loop, merged, outputs)
        except Exception:
            # Someone in the batch broke it; find out who by running each alone.
            await asyncio.gather(*(self._run_one(loop, i, outputs) for i in items))
            return
        self.batches += 1
        self.batched_rows += sum(i.rows for i in items)
        start = 0
        unanswered: list[int] = []
        for index, item in enumerate(items):
            end = start + item.rows
            if item.future.done():  # timed out or cancelled during the call
                unanswered.append(index)
            else:
                item.future.set_result({k: v[start:end] for k, v in result.items()})
            start = end
        if unanswered:
            self._tell_answered(items, unanswered, merged, result)
        else:
            self._tell(items, merged, result)

    async def _run_one(
        self, loop: asyncio.AbstractEventLoop, item: _Item, outputs: list[str]
    ) -> None:
        try:
            result = await self._call(loop, item.batch, outputs)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return
        self.batches += 1
        self.batched_rows += item.rows
        if not item.future.done():  # else timed out or cancelled during the call
            item.future.set_result(result)
            self._tell([item], item.batch, result)

    async def _call(
        self, loop: asyncio.AbstractEventLoop, batch: Batch, outputs: list[str]
    ) -> dict[str, np.ndarray]:
        """One model call: on the loop if the model is fast enough, else on the pool; timed."""
        bound = self.policy.inline_below
        if bound <= 0:
            return await loop.run_in_executor(self._executor, self._predict, batch, outputs)
        if self.inline:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return self._predict(batch, outputs)
            finally:
                self._judge_loop_call((time.thread_time() - cpu, time.perf_counter() - started))
        result, timing = await loop.run_in_executor(
            self._executor, _timed, self._predict, batch, outputs
        )
        self._fast_calls = self._fast_calls + 1 if _within(timing, bound) else 0
        self.inline = self._fast_calls >= self._inline_after
        return result

    def _judge_loop_call(self, timing: tuple[float, float]) -> None:
        """Back to the pool after a slow call, or a stretch of mostly stalled ones."""
        if not _within(timing, 2 * self.policy.inline_below):
            self.inline, self._fast_calls = False, 0
            self._loop_calls = self._stalled_calls = 0
            return
        cpu, wall = timing
        self._loop_calls += 1
        self._stalled_calls += wall > 2 * cpu + STALL_SLACK
        if self._loop_calls < STALL_WINDOW:
            return
        stalled = 2 * self._stalled_calls > self._loop_calls
        self._loop_calls = self._stalled_calls = 0
        if stalled:
            self.inline, self._fast_calls = False, 0
            self._inline_after = min(2 * self._inline_after, INLINE_AFTER_MAX)
        else:
            self._inline_after = INLINE_AFTER

    def _tell_answered(
        self,
        items: list[_Item],
        unanswered: list[int],
        batch: Batch,
        result: dict[str, np.ndarray],
    ) -> None:
        """Tell of the rows of a call's requests that were answered, leaving out those whose
        clients had gone (a timeout, a hang-up): no one saw those predictions, so they are
        neither monitored nor logged, and a label for them is for no answer."""
        if self._on_predicted is None or len(unanswered) == len(items):
            return
        ends = np.cumsum([i.rows for i in items])
        left_out = set(unanswered)
        kept = [i for n, i in enumerate(items) if n not in left_out]
        rows = np.concatenate(
            [np.arange(ends[n] - i.rows, ends[n]) for n, i in enumerate(items) if n not in left_out]
        )
        self._tell(
            kept, {k: v[rows] for k, v in batch.items()}, {k: v[rows] for k, v in result.items()}
        )

    def _tell(self, items: list[_Item], batch: Batch, result: dict[str, np.ndarray]) -> None:
        if self._on_predicted is None:
            return
        if len(items) == 1:  # most calls, when load is light or the model is fast
            tags, rows = [items[0].tag], [items[0].rows]
        else:
            tags, rows = [i.tag for i in items], [i.rows for i in items]
        try:
            self._on_predicted(tags, rows, batch, result)
        except Exception:
            logger.exception("prediction observer failed")


def _timed(
    predict: Predict, batch: Batch, outputs: list[str]
) -> tuple[dict[str, np.ndarray], tuple[float, float]]:
    """``predict``'s result, and the call's (CPU, wall) seconds on this thread."""
    started, cpu = time.perf_counter(), time.thread_time()
    result = predict(batch, outputs)
    return result, (time.thread_time() - cpu, time.perf_counter() - started)


def _within(timing: tuple[float, float], budget: float) -> bool:
    """CPU time under ``budget``, and wall time only a lock handover more (see above)."""
    cpu, wall = timing
    return cpu < budget and wall < budget + sys.getswitchinterval()


def _compatible(a: Batch, b: Batch) -> bool:
    """Same inputs with the same dtypes and per-row shapes: safe to concatenate."""
    if a.keys() != b.keys():
        return False
    return all(a[k].dtype == b[k].dtype and a[k].shape[1:] == b[k].shape[1:] for k in a)
