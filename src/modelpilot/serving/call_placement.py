"""Where a batcher's model calls run: on the event loop when the model is fast, else on a pool.

Model calls run on a thread pool, off the event loop, with one exception: a model whose calls
all finish within ``inline_below`` (an ONNX forest answers 16 rows in tens of microseconds) is
called on the loop itself, because handing such a call to a thread costs more than the call:
a future, a thread wake-up, and two handovers of the interpreter lock, during which the loop
waits. Every call is timed; only after ``INLINE_AFTER`` calls in a row came in under the bound
are calls made inline, and one inline call over twice the bound sends them back to the thread
pool. So a slow model never holds the loop for more than one call.

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
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from modelpilot.runtimes.base import Batch

INLINE_AFTER = 64
"""Calls in a row under ``inline_below`` on the thread pool before calls move to the loop."""
INLINE_AFTER_MAX = 64 * INLINE_AFTER
"""The most fast calls asked for after calls on the loop kept stalling."""
STALL_WINDOW = 64
"""Calls on the loop judged together: back to the pool if most of them stalled."""
STALL_SLACK = 20e-6
"""Seconds of wall time beyond twice its CPU time that a call on the loop may take."""

Predict = Callable[[Batch, list[str]], dict[str, np.ndarray]]


class CallPlacement:
    """Makes one version's model calls, each where it costs the server least (see above)."""

    def __init__(self, predict: Predict, executor: Executor, inline_below: float) -> None:
        self._predict = predict
        self._executor = executor
        self._inline_below = inline_below
        """Seconds under which a model call runs on the event loop (0: always on the pool)."""
        self.inline = False
        """Calls run on the event loop (fast model)."""
        self._fast_calls = 0
        self._inline_after = INLINE_AFTER
        self._loop_calls = 0
        self._stalled_calls = 0

    async def call(
        self, loop: asyncio.AbstractEventLoop, batch: Batch, outputs: list[str]
    ) -> dict[str, np.ndarray]:
        """One model call: on the loop if the model is fast enough, else on the pool; timed."""
        bound = self._inline_below
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
        if not _within(timing, 2 * self._inline_below):
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
