"""Adaptive batching: requests for one model version that arrive together run as one call.

A lone request on an idle model runs at once; no timer holds it back. While the model is busy,
requests queue, and when a slot frees, everything queued (up to ``max_batch_size`` rows) runs
as one batch. A batch that fails is retried request by request, so that a request the model
chokes on fails alone. Where the calls run (the event loop or a thread pool) is
``call_placement``'s concern.

``max_latency`` (Triton's ``max_queue_delay``) lets a batch that is short of ``max_batch_size``
wait for company until its oldest request has waited that long, but only while other clients
are about: another batch of the version is running, the server holds requests for the model
that have not reached the queue yet, or, within the last ``max_latency``, a request arrived
while another was in the server. Requests that never overlap in the server leave the model
idle between them: it keeps up, so holding them would add latency and save nothing, and a lone
client (one request at a time) never waits. Behind a busy model at the default concurrency of
one, requests queue anyway; the wait then applies when the model frees before the oldest of
them has waited ``max_latency``.

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

What the observers are told: each model call that answered (its rows, requests and time; a
call that failed scored nothing and is not told, so a batch one request broke shows as the
calls that then ran its requests alone), and how long each request waited in the queue, also
one that timed out or was given up there (in an overload those are the waits that matter).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from modelpilot.errors import Overloaded, Unavailable
from modelpilot.runtimes.base import Batch, batch_rows
from modelpilot.serving.call_placement import CallPlacement, Predict

logger = logging.getLogger(__name__)

GATHER_TURNS = 48
"""Most turns of the loop a batch run on the loop waits for company."""
PEAK_WINDOW = 0.01
"""Seconds for which a moment with several requests in the server counts as recent."""
BUSY_GAP = 0.001
"""Seconds after a batch of several callers during which the model counts as busy."""

OnBatch = Callable[[int, int, float], None]
"""Told after each model call that answered: its rows, its requests, and its seconds. A call
that failed is not told: it scored no row (its requests fail with their own errors, and
when a batch broke, the calls that then run its requests alone are told, each on its own)."""
OnQueued = Callable[[list[float]], None]
"""Told as requests leave the queue: how long each waited there, for its batch to start, or
until it timed out, its caller gave up, or the model went away while it was queued."""
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
    """Seconds a batch may wait for more rows while other clients are about (0: never wait;
    see the module's docstring)."""
    concurrency: int = 1
    """Batches of this version that may run at once (threads, or ONNX sessions in parallel)."""
    max_queue_rows: int = 10_000
    """Rows allowed to wait; past that, requests are refused with 503 and Retry-After."""
    inline_below: float = 0.0
    """Seconds under which a model call runs on the event loop (0: always on the pool)."""


@dataclass(slots=True)
class Queued:
    """A request in the batcher's queue (``enqueue``): its answer is ``future``'s."""

    batch: Batch
    outputs: tuple[str, ...]
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]] = field(repr=False)
    queued_at: float = 0.0
    tag: str = ""
    started: bool = False
    """Its batch started, which told its queue wait (or ``left`` told it)."""


class AdaptiveBatcher:
    """Queues requests for one runtime and runs them in batches on ``executor``."""

    def __init__(
        self,
        predict: Predict,
        executor: Executor,
        policy: BatchingPolicy,
        on_batch: OnBatch | None = None,
        on_predicted: Predicted | None = None,
        on_queued: OnQueued | None = None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self._on_batch = on_batch
        self._on_predicted = on_predicted
        self._on_queued = on_queued
        self._in_flight = in_flight
        """Requests for this model the server holds, queued here or not (see _gather)."""
        self._calls = CallPlacement(predict, executor, policy.inline_below)
        self.policy = policy
        self._queue: list[Queued] = []
        self._queued_rows = 0
        self._running = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0
        self.batched_rows = 0
        self._last_callers = 0
        self._last_finish = -1.0
        self._peak = 0
        """Most requests in the server at an arrival, over the last ``PEAK_WINDOW``."""
        self._peak_at = -1.0
        self._company_at = -1.0
        """When a request last arrived while another was in the server (for ``max_latency``)."""

    def listen(
        self,
        on_batch: OnBatch | None,
        on_predicted: Predicted | None,
        on_queued: OnQueued | None = None,
    ) -> None:
        """Who is told of each model call and queue wait from now on (see ``__init__``)."""
        self._on_batch, self._on_predicted, self._on_queued = on_batch, on_predicted, on_queued

    @property
    def inline(self) -> bool:
        """Calls run on the event loop (a fast model, see ``call_placement``)."""
        return self._calls.inline

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def submit(
        self, batch: Batch, outputs: Sequence[str], tag: str = ""
    ) -> dict[str, np.ndarray]:
        """Run ``batch`` (possibly with others) and return its own rows of every output."""
        queued = self.enqueue(batch, outputs, tag)
        try:
            return await queued.future
        except BaseException:
            self.left(queued)
            raise

    def enqueue(self, batch: Batch, outputs: Sequence[str], tag: str = "") -> Queued:
        """Queue ``batch``; its ``future`` gets its rows of every output (cancel it to give
        up). A caller that gives up or fails tells ``left``, so that a wait that ended
        before its batch started is observed too (as ``submit`` does).

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
            if held > 1:
                self._company_at = now
        elif self._queue or self._running:
            self._company_at = now
        item = Queued(batch, tuple(outputs), rows, loop.create_future(), now, tag)
        self._queue.append(item)
        self._queued_rows += rows
        self._ensure_worker()
        assert self._wakeup is not None
        self._wakeup.set()
        return item

    def left(self, item: Queued) -> None:
        """``item``'s caller gave up on it or failed: if its batch had not started (it timed
        out or was cancelled in the queue), its wait is observed now. Told by the caller
        rather than by a callback on every future, which cost every request (a partial and
        a callback added and taken off) for the few that give up."""
        if not item.started:
            item.started = True
            self._observe_waits([time.perf_counter() - item.queued_at])

    def _observe_waits(self, waits: list[float]) -> None:
        if self._on_queued is None:
            return
        try:
            self._on_queued(waits)
        except Exception:
            logger.exception("queue observer failed")

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
                if self.policy.max_latency > 0 and self._short_queue() and self._company():
                    await self._fill(wakeup)
                elif self.inline and not self._running:
                    await self._gather()
                if not self._queue:  # cancelled meanwhile
                    break
                items = self._take()
                if not items:  # every queued request had gone
                    continue
                self._last_callers = len(items)
                self._running += 1
                task = asyncio.create_task(self._execute(items))
                task.add_done_callback(self._finished)

    def _short_queue(self) -> bool:
        return self._queued_rows < self.policy.max_batch_size

    def _company(self) -> bool:
        """Whether other clients are about, so that a short batch may wait for them."""
        if self._running:
            return True
        if time.perf_counter() - self._company_at <= self.policy.max_latency:
            return True
        return self._in_flight is not None and self._in_flight() > len(self._queue)

    async def _fill(self, wakeup: asyncio.Event) -> None:
        """Wait until the queue holds a full batch or its oldest request has waited
        ``max_latency`` (Triton's ``max_queue_delay``), whichever comes first."""
        deadline = self._queue[0].queued_at + self.policy.max_latency
        while self._queue and self._short_queue():
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wakeup.wait(), left)

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

    def _take(self) -> list[Queued]:
        """The oldest request and every queued one that fits with it and asks the same;
        requests that gave up while queued leave the queue without taking room in a batch."""
        taken: list[Queued] = []
        rows = 0
        keep: list[Queued] = []
        for item in self._queue:
            if item.future.done():  # timed out or cancelled while queued
                self._queued_rows -= item.rows
                continue
            if not taken:
                taken.append(item)
                rows = item.rows
            elif (
                rows + item.rows <= self.policy.max_batch_size
                and item.outputs == taken[0].outputs
                and _compatible(taken[0].batch, item.batch)
            ):
                taken.append(item)
                rows += item.rows
            else:
                keep.append(item)
        self._queue = keep
        self._queued_rows -= rows
        return taken

    async def _execute(self, items: list[Queued]) -> None:
        # A request may have gone (timed out, cancelled) since _take: its caller tells its
        # wait (``left``).
        items = [i for i in items if not i.future.done()]
        if not items:
            return
        if self._on_queued is not None:
            started = time.perf_counter()
            for item in items:
                item.started = True
            self._observe_waits([started - i.queued_at for i in items])
        await self._run_batch(asyncio.get_running_loop(), items)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, items: list[Queued]) -> None:
        outputs = list(items[0].outputs)
        if len(items) == 1:
            await self._run_one(loop, items[0], outputs)
            return
        merged = {name: np.concatenate([i.batch[name] for i in items]) for name in items[0].batch}
        rows = sum(i.rows for i in items)
        started = time.perf_counter()
        try:
            result = await self._calls.call(loop, merged, outputs)
        except Exception:
            # Someone in the batch broke it; find out who by running each alone.
            await asyncio.gather(*(self._run_one(loop, i, outputs) for i in items))
            return
        self._called(rows, len(items), time.perf_counter() - started)
        self.batches += 1
        self.batched_rows += rows
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
        self, loop: asyncio.AbstractEventLoop, item: Queued, outputs: list[str]
    ) -> None:
        started = time.perf_counter()
        try:
            result = await self._calls.call(loop, item.batch, outputs)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return
        self._called(item.rows, 1, time.perf_counter() - started)
        self.batches += 1
        self.batched_rows += item.rows
        if not item.future.done():  # else timed out or cancelled during the call
            item.future.set_result(result)
            self._tell([item], item.batch, result)

    def _called(self, rows: int, requests: int, seconds: float) -> None:
        if self._on_batch is None:
            return
        try:
            self._on_batch(rows, requests, seconds)
        except Exception:
            logger.exception("batch observer failed")

    def _tell_answered(
        self,
        items: list[Queued],
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

    def _tell(self, items: list[Queued], batch: Batch, result: dict[str, np.ndarray]) -> None:
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


def _compatible(a: Batch, b: Batch) -> bool:
    """Same inputs with the same dtypes and per-row shapes: safe to concatenate."""
    if a.keys() != b.keys():
        return False
    return all(a[k].dtype == b[k].dtype and a[k].shape[1:] == b[k].shape[1:] for k in a)
