"""Adaptive batching: no added latency when idle, merging when busy, failures stay alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from modelpilot.errors import Overloaded, Unavailable
from modelpilot.runtimes.base import Batch
from modelpilot.serving.batcher import PEAK_WINDOW, AdaptiveBatcher, BatchingPolicy
from modelpilot.serving.call_placement import INLINE_AFTER, STALL_WINDOW

INLINE_BELOW = 0.05
"""The bound of the tests that move calls onto the loop: far above a fast call's time, so
that a test process put off a core for a few milliseconds (the tests run in parallel, beside
servers) does not count as a slow call and send the calls back to the pool."""


class DoublingModel:
    """Doubles its input; records every batch size; rows holding -1 make it raise."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch: Batch, outputs: list[str]) -> dict[str, np.ndarray]:
        self.gate.wait(5)
        x = batch["x"]
        self.sizes.append(x.shape[0])
        if (x == -1).any():
            raise ValueError("cannot take -1")
        if self.delay:
            threading.Event().wait(self.delay)
        return {"y": x[:, 0] * 2}


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(4)
    yield pool
    pool.shutdown()


def rows(*values: float) -> Batch:
    return {"x": np.array(values, dtype=np.float64).reshape(-1, 1)}


async def test_a_lone_request_runs_at_once(executor: ThreadPoolExecutor) -> None:
    model = DoublingModel()
    batcher = AdaptiveBatcher(model, executor, BatchingPolicy(max_latency=10.0))
    result = await asyncio.wait_for(batcher.submit(rows(3), ["y"]), timeout=2)
    assert result["y"].tolist() == [6.0]
    await batcher.close()


async def test_requests_arriving_while_busy_share_a_batch(executor: ThreadPoolExecutor) -> None:
    model = DoublingModel()
    batcher = AdaptiveBatcher(model, executor, BatchingPolicy(max_batch_size=64))
    model.gate.clear()  # hold the first batch so that the others queue behind it
    first = asyncio.create_task(batcher.submit(rows(0), ["y"]))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(batcher.submit(rows(i, i + 0.5), ["y"])) for i in range(1, 11)]
    await asyncio.sleep(0.05)
    model.gate.set()
    results = await asyncio.gather(first, *rest)
    assert model.sizes == [1, 20]
    for i, result in enumerate(results[1:], start=1):
        assert result["y"].tolist() == [2 * i, 2 * i + 1]
    assert (batcher.batches, batcher.batched_rows) == (2, 21)
    await batcher.close()


async def test_batches_close_at_max_batch_size(executor: ThreadPoolExecutor) -> None:
    model = DoublingModel()
    batcher = AdaptiveBatcher(model, executor, BatchingPolicy(max_batch_size=4))
    model.gate.clear()
    tasks = [asyncio.create_task(batcher.submit(rows(i), ["y"])) for i in range(9)]
    await asyncio.sleep(0.05)
    model.gate.set()
    await asyncio.gather(*tasks)
    assert model.sizes == [4, 4, 1]
    await batcher.close()


async def test_a_failing_request_fails_alone(executor: ThreadPoolExecutor) -> None:
    model = DoublingModel()
    batcher = AdaptiveBatcher(model, executor, BatchingPolicy())
    model.gate.clear()
    first = asyncio.create_task(batcher.submit(rows(1), ["y"]))
    await asyncio.sleep(0.05)
    good = [asyncio.create_task(batcher.submit(rows(i), ["y"])) for i in range(2, 5)]
    bad = asyncio.create_task(batcher.submit(rows(-1), ["y"]))
    await asyncio.sleep(0.05)
    model.gate.set()
    assert (await first)["y"].tolist() == [2.0]
    assert [(await g)["y"].tolist() for g in good] == [[4.0], [6.0], [8.0]]
    with pytest.raises(ValueError, match="cannot take -1"):
        await bad
    await batcher.close()


async def test_different_outputs_or_shapes_are_not_mixed(executor: ThreadPoolExecutor) -> None:
    model = DoublingModel()
    batcher = AdaptiveBatcher(model, executor, BatchingPolicy())
    model.gate.clear()
    first = asyncio.create_task(batcher.submit(rows(1), ["y"]))
    await asyncio.sleep(0.05)
    wide = {"x": np.ones((2, 3))}
    others = [
        asyncio.create_task(batcher.submit(rows(2), ["y"])),
        asyncio.create_task(batcher.submit(wide, ["y"])),
        asyncio.create_task(batcher.submit(rows(3), ["y"])),
    ]
    await asyncio.sleep(0.05)
    model.gate.set()
    await asyncio.gather(first, *others)
    assert sorted(model.sizes) == [1, 2, 2]
    await batcher.close()


async def test_a_full_queue_is_refused_with_retry_after(executor: ThreadPoolExecutor) -> None:
    model = DoublingModel()
    batcher = AdaptiveBatcher(model, executor, BatchingPolicy(max_queue_rows=3))
    model.gate.clear()
    running = asyncio.create_task(batcher.submit(rows(1), ["y"]))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(batcher.submit(rows(1, 2, 3), ["y"]))
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded) as info:
        await batcher.submit(rows(4), ["y"])
    assert info.value.retry_after > 0
    model.gate.set()
    await asyncio.gather(running, queued)
    await batcher.close()


async def test_a_cancelled_caller_does_not_break_the_batch(executor: ThreadPoolExecutor) -> None:
    model = DoublingModel()
    batcher = AdaptiveBatcher(model, executor, BatchingPolicy())
    model.gate.clear()
    first = asyncio.create_task(batcher.submit(rows(1), ["y"]))
    await asyncio.sleep(0.05)
    gone = asyncio.create_task(batcher.submit(rows(2), ["y"]))
    kept = asyncio.create_task(batcher.submit(rows(3), ["y"]))
    await asyncio.sleep(0.01)
    gone.cancel()
    model.gate.set()
    assert (await first)["y"].tolist() == [2.0]
    assert (await kept)["y"].tolist() == [6.0]
    await batcher.close()


async def test_each_model_call_is_told_once_with_its_callers(
    executor: ThreadPoolExecutor,
) -> None:
    model = DoublingModel()
    told: list[tuple[list[str], list[int], list[float], list[float]]] = []

    def on_predicted(
        tags: list[str], counts: list[int], inputs: Batch, outputs: dict[str, np.ndarray]
    ) -> None:
        told.append((tags, counts, inputs["x"][:, 0].tolist(), outputs["y"].tolist()))

    batcher = AdaptiveBatcher(model, executor, BatchingPolicy(), on_predicted=on_predicted)
    model.gate.clear()
    first = asyncio.create_task(batcher.submit(rows(1), ["y"], "first"))
    await asyncio.sleep(0.05)
    rest = [
        asyncio.create_task(batcher.submit(rows(2, 3), ["y"], "two-rows")),
        asyncio.create_task(batcher.submit(rows(-1), ["y"], "bad")),
        asyncio.create_task(batcher.submit(rows(4), ["y"], "last")),
    ]
    await asyncio.sleep(0.05)
    model.gate.set()
    await asyncio.gather(first, *rest, return_exceptions=True)
    assert told[0] == (["first"], [1], [1.0], [2.0])
    # The merged call failed (a row of -1), so each request ran alone; the bad one was never
    # answered and is not told.
    assert sorted(told[1:]) == [
        (["last"], [1], [4.0], [8.0]),
        (["two-rows"], [2], [2.0, 3.0], [4.0, 6.0]),
    ]
    model.sizes.clear()
    told.clear()
    model.gate.clear()
    first = asyncio.create_task(batcher.submit(rows(1), ["y"], "a"))
    await asyncio.sleep(0.05)
    rest = [
        asyncio.create_task(batcher.submit(rows(2, 3), ["y"], "b")),
        asyncio.create_task(batcher.submit(rows(4), ["y"], "c")),
    ]
    await asyncio.sleep(0.05)
    model.gate.set()
    await asyncio.gather(first, *rest)
    assert model.sizes == [1, 3]
    assert told[1] == (["b", "c"], [2, 1], [2.0, 3.0, 4.0], [4.0, 6.0, 8.0])
    await batcher.close()


class TurnstileModel(DoublingModel):
    """Doubles its input, each call waiting for a turn the test gives (``turns.release()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.turns = threading.Semaphore(0)
        self.waiting = 0

    def __call__(self, batch: Batch, outputs: list[str]) -> dict[str, np.ndarray]:
        self.waiting += 1
        self.turns.acquire(timeout=5)
        return super().__call__(batch, outputs)


async def test_requests_whose_callers_left_during_the_call_are_not_told(
    executor: ThreadPoolExecutor,
) -> None:
    """A request that timed out (504) or whose client hung up (499) while its model call ran
    was told all the same: monitored, logged, and open to a label, though no one got it."""
    model = TurnstileModel()
    told: list[tuple[list[str], list[int], list[float], list[float]]] = []

    def on_predicted(
        tags: list[str], counts: list[int], inputs: Batch, outputs: dict[str, np.ndarray]
    ) -> None:
        told.append((tags, counts, inputs["x"][:, 0].tolist(), outputs["y"].tolist()))

    async def called(times: int) -> None:
        for _ in range(200):
            if model.waiting == times:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"the model was called {model.waiting} times, not {times}")

    batcher = AdaptiveBatcher(model, executor, BatchingPolicy(), on_predicted=on_predicted)
    first = asyncio.create_task(batcher.submit(rows(1), ["y"], "a"))
    await called(1)
    rest = {
        tag: asyncio.create_task(batcher.submit(values, ["y"], tag))
        for tag, values in [("b", rows(2, 3)), ("c", rows(4)), ("d", rows(5))]
    }
    await asyncio.sleep(0.02)
    model.turns.release()
    await first
    await called(2)  # b, c and d in one call
    rest["c"].cancel()
    await asyncio.sleep(0.01)
    model.turns.release()
    assert (await rest["d"])["y"].tolist() == [10.0]
    await rest["b"]
    assert model.sizes == [1, 4]
    assert told == [
        (["a"], [1], [1.0], [2.0]),
        (["b", "d"], [2, 1], [2.0, 3.0, 5.0], [4.0, 6.0, 10.0]),
    ]
    alone = asyncio.create_task(batcher.submit(rows(6), ["y"], "e"))
    await called(3)
    alone.cancel()
    await asyncio.sleep(0.01)
    model.turns.release()
    await asyncio.sleep(0.05)
    assert model.sizes == [1, 4, 1] and len(told) == 2  # ran, and not told
    await batcher.close()


async def test_requests_still_queued_when_the_model_goes_fail_as_unavailable(
    executor: ThreadPoolExecutor,
) -> None:
    """They were cancelled: their callers got CancelledError, no error to answer with (REST
    answered a plain-text 500, gRPC nothing at all). The call already made finishes."""
    model = TurnstileModel()
    batcher = AdaptiveBatcher(model, executor, BatchingPolicy())
    running = asyncio.create_task(batcher.submit(rows(1), ["y"], "a"))
    for _ in range(200):  # until the model holds it
        if model.waiting:
            break
        await asyncio.sleep(0.005)
    queued = asyncio.create_task(batcher.submit(rows(2), ["y"], "b"))
    await asyncio.sleep(0.01)
    batcher.cancel("iris:1 was unloaded while this request waited for it")
    with pytest.raises(Unavailable, match="iris:1 was unloaded while this request waited"):
        await queued
    model.turns.release()
    assert (await running)["y"].tolist() == [2.0]
    await batcher.close()


class ThreadRecordingModel(DoublingModel):
    """Doubles its input, records the thread of every call, and may burn CPU for a while."""

    def __init__(self, delay: float = 0.0, spin: float = 0.0) -> None:
        super().__init__(delay)
        self.spin = spin
        self.threads: list[int] = []

    def __call__(self, batch: Batch, outputs: list[str]) -> dict[str, np.ndarray]:
        self.threads.append(threading.get_ident())
        until = time.thread_time() + self.spin
        while time.thread_time() < until:
            pass
        return super().__call__(batch, outputs)


async def test_a_fast_model_moves_onto_the_loop_and_back_when_it_slows(
    executor: ThreadPoolExecutor,
) -> None:
    model = ThreadRecordingModel()
    batcher = AdaptiveBatcher(model, executor, BatchingPolicy(inline_below=INLINE_BELOW))
    loop_thread = threading.get_ident()
    for i in range(INLINE_AFTER):
        assert (await batcher.submit(rows(i), ["y"]))["y"].tolist() == [2.0 * i]
    assert loop_thread not in model.threads  # the pool until it has proven fast
    assert batcher.inline
    for i in range(2 * STALL_WINDOW):  # calls that take their CPU time stay on the loop
        assert (await batcher.submit(rows(i), ["y"]))["y"].tolist() == [2.0 * i]
    assert batcher.inline and model.threads[-1] == loop_thread
    model.delay = 0.2  # slower than twice the bound: this call is the last on the loop
    await batcher.submit(rows(1), ["y"])
    assert not batcher.inline
    await batcher.submit(rows(1), ["y"])
    assert model.threads[-1] != loop_thread
    await batcher.close()


async def test_slow_or_unbounded_models_stay_on_the_pool(executor: ThreadPoolExecutor) -> None:
    loop_thread = threading.get_ident()
    for policy, model in (
        (BatchingPolicy(inline_below=0.001), ThreadRecordingModel(spin=0.002)),  # CPU-bound
        (BatchingPolicy(inline_below=0.001), ThreadRecordingModel(delay=0.01)),  # waits
        (BatchingPolicy(inline_below=0.0), ThreadRecordingModel()),
    ):
        batcher = AdaptiveBatcher(model, executor, policy)
        for i in range(INLINE_AFTER + 5):
            await batcher.submit(rows(i), ["y"])
        assert not batcher.inline and loop_thread not in model.threads
        await batcher.close()


async def test_calls_that_stall_the_loop_go_back_to_the_pool_for_longer_each_time(
    executor: ThreadPoolExecutor,
) -> None:
    # Under a millisecond of waiting (no CPU) passes as fast on the pool, but on the loop each
    # call holds the loop for far more than its CPU time.
    model = ThreadRecordingModel(delay=0.0005)
    batcher = AdaptiveBatcher(model, executor, BatchingPolicy(inline_below=INLINE_BELOW))
    loop_thread = threading.get_ident()
    for i in range(INLINE_AFTER):
        await batcher.submit(rows(i), ["y"])
    assert batcher.inline
    for i in range(STALL_WINDOW):
        await batcher.submit(rows(i), ["y"])
    assert model.threads[-1] == loop_thread and not batcher.inline
    for i in range(INLINE_AFTER):
        await batcher.submit(rows(i), ["y"])
    assert not batcher.inline  # it must now prove fast twice as long
    assert loop_thread not in model.threads[-INLINE_AFTER:]
    for i in range(INLINE_AFTER):
        await batcher.submit(rows(i), ["y"])
    assert batcher.inline
    await batcher.close()


class Clients:
    """Requests to one batcher on the loop, counted as the engine counts those it holds."""

    def __init__(self, model: ThreadRecordingModel, executor: ThreadPoolExecutor) -> None:
        self.held = 0
        self.batcher = AdaptiveBatcher(
            model, executor, BatchingPolicy(inline_below=INLINE_BELOW), in_flight=lambda: self.held
        )

    async def arrive(self, value: float, turns: int = 0, counted: bool = False) -> list[float]:
        """A request that reaches the queue ``turns`` turns after the server counts it."""
        if not counted:
            self.held += 1
        for _ in range(turns):  # being read and decoded, say
            await asyncio.sleep(0)
        try:
            result: list[float] = (await self.batcher.submit(rows(value), ["y"]))["y"].tolist()
            return result
        finally:
            self.held -= 1

    async def later(self, value: float, turns: int) -> list[float]:
        """A request after ``turns`` turns of the loop in which the server knew nothing of it."""
        for _ in range(turns):
            await asyncio.sleep(0)
        return await self.arrive(value)

    async def onto_the_loop(self) -> None:
        for i in range(INLINE_AFTER):  # one at a time: each alone, none waits
            await self.arrive(i)
        assert self.batcher.inline


async def test_calls_on_the_loop_wait_a_few_turns_for_company_but_never_alone(
    executor: ThreadPoolExecutor,
) -> None:
    model = ThreadRecordingModel()
    clients = Clients(model, executor)
    await clients.onto_the_loop()
    await asyncio.sleep(PEAK_WINDOW * 2)  # the model has been idle for a while
    model.sizes.clear()
    # A request alone runs before one that reaches the server two turns later.
    results = await asyncio.gather(clients.arrive(1), clients.later(2.0, 2))
    assert results == [[2.0], [4.0]] and model.sizes == [1, 1]
    await asyncio.sleep(PEAK_WINDOW * 2)
    model.sizes.clear()
    # Three clients at once: the first finds the others in the server, on their way to the
    # queue, and the loop turns until they join its batch.
    clients.held = 2
    together = [
        clients.arrive(1),
        clients.arrive(2, 1, counted=True),
        clients.arrive(3, 3, counted=True),
    ]
    assert await asyncio.gather(*together) == [[2.0], [4.0], [6.0]]
    assert model.sizes == [3]
    assert model.threads[-1] == threading.get_ident()
    await clients.batcher.close()


async def test_after_a_moment_of_company_calls_on_the_loop_wait_for_requests_on_their_way(
    executor: ThreadPoolExecutor,
) -> None:
    # gRPC's case: the next request is many turns away from the server (grpc.aio hands it over
    # through several callbacks), so in_flight shows nobody and the last batch had one caller.
    model = ThreadRecordingModel()
    clients = Clients(model, executor)
    await clients.onto_the_loop()
    await asyncio.sleep(PEAK_WINDOW * 2)
    model.sizes.clear()
    # Alone, a request does not wait for one ten turns behind it.
    assert await asyncio.gather(clients.arrive(1), clients.later(2.0, 10)) == [[2.0], [4.0]]
    assert model.sizes == [1, 1]
    # A request arrives while another caller is still in the server (answered, say, but not
    # yet resumed): from then on, for a while, batches wait for the requests on their way.
    clients.held += 1
    await clients.arrive(3)
    clients.held -= 1
    model.sizes.clear()
    assert await asyncio.gather(clients.arrive(1), clients.later(2.0, 10)) == [[2.0], [4.0]]
    assert model.sizes == [2]
    assert model.threads[-1] == threading.get_ident()
    await clients.batcher.close()


def test_queue_times_are_measured_finer_than_uvloops_clock() -> None:
    """uvloop's loop.time() moves in whole milliseconds: queue times read from it were 0 or
    1 ms, never the microseconds a request really waits."""
    import uvloop

    calls: list[float] = []
    waits: list[float] = []

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = AdaptiveBatcher(DoublingModel(), pool, BatchingPolicy(max_batch_size=8))
            batcher.listen(lambda rows, n, seconds: calls.append(seconds), None, waits.extend)
            for _ in range(20):
                await batcher.enqueue(rows(1.0), ["y"]).future  # one at a time: a lone wait each
            batcher.cancel()

    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    with runner:
        runner.run(main())
    assert len(waits) == 20
    assert all(w > 0 for w in waits), waits  # on uvloop's clock, most were exactly 0
    assert len(calls) == 20 and all(seconds > 0 for seconds in calls)


class HoldingModel(DoublingModel):
    """Doubles its input; a call holding a row of 777 waits until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()

    def __call__(self, batch: Batch, outputs: list[str]) -> dict[str, np.ndarray]:
        if (batch["x"] == 777).any():
            self.held.wait(5)
        return super().__call__(batch, outputs)


async def arrive_apart(
    batcher: AdaptiveBatcher, values: list[float]
) -> list[asyncio.Task[dict[str, np.ndarray]]]:
    """One request per value, 20 ms apart (clients arriving one after another)."""
    tasks = []
    for value in values:
        tasks.append(asyncio.create_task(batcher.submit(rows(value), ["y"])))
        await asyncio.sleep(0.02)
    return tasks


async def test_max_latency_gathers_requests_until_the_batch_is_full(
    executor: ThreadPoolExecutor,
) -> None:
    """With a batch running, the next one waited only for the next single arrival (batches
    of two), not up to ``max_latency`` for more rows, as Triton's ``max_queue_delay`` does."""
    model = HoldingModel()
    policy = BatchingPolicy(max_batch_size=6, max_latency=5.0, concurrency=2)
    batcher = AdaptiveBatcher(model, executor, policy)
    holder = asyncio.create_task(batcher.submit(rows(777), ["y"]))
    await asyncio.sleep(0.05)
    tasks = await arrive_apart(batcher, [1, 2, 3, 4, 5, 6])
    results = await asyncio.wait_for(asyncio.gather(*tasks), 2)  # full: no 5 s wait
    assert [r["y"].tolist() for r in results] == [[2.0], [4.0], [6.0], [8.0], [10.0], [12.0]]
    assert model.sizes == [6]
    model.held.set()
    await holder
    await batcher.close()


async def test_max_latency_applies_at_the_default_concurrency(
    executor: ThreadPoolExecutor,
) -> None:
    """At a concurrency of one, the wait needed a batch running while a slot was free: it
    never happened. With other requests in the server (on their way to the queue), a batch
    now waits for them."""
    model = DoublingModel()
    policy = BatchingPolicy(max_batch_size=4, max_latency=5.0)
    batcher = AdaptiveBatcher(model, executor, policy, in_flight=lambda: 4)
    tasks = await arrive_apart(batcher, [1, 2, 3, 4])
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert model.sizes == [4]
    await batcher.close()


async def test_a_short_batch_waits_out_max_latency_for_company(
    executor: ThreadPoolExecutor,
) -> None:
    model = HoldingModel()
    policy = BatchingPolicy(max_batch_size=64, max_latency=0.2, concurrency=2)
    batcher = AdaptiveBatcher(model, executor, policy)
    holder = asyncio.create_task(batcher.submit(rows(777), ["y"]))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    tasks = await arrive_apart(batcher, [1, 2])
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert time.perf_counter() - started >= 0.2  # held for company, as asked
    assert model.sizes == [2]
    model.held.set()
    await holder
    await batcher.close()


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_a_lone_client_never_waits_for_max_latency(
    executor: ThreadPoolExecutor, concurrency: int
) -> None:
    """One request at a time, nobody else in the server: nothing to wait for."""
    model = DoublingModel()
    policy = BatchingPolicy(max_latency=30.0, concurrency=concurrency)
    batcher = AdaptiveBatcher(model, executor, policy, in_flight=lambda: 1)
    for value in range(5):
        result = await asyncio.wait_for(batcher.submit(rows(value), ["y"]), 2)
        assert result["y"].tolist() == [2.0 * value]
    assert model.sizes == [1] * 5
    await batcher.close()
