"""The service metrics are read on a thread of their own (``/metrics`` renders off the event
loop) while the loop counts requests: the flush that a read starts with runs on the loop.

The request path counts in plain dicts, without a lock; a flush on the reading thread
meanwhile lost or doubled counts, or failed on a dict that grew as it was read."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from modelpilot.monitoring.service import ServiceMetrics


@pytest.fixture
def switching_often() -> Iterator[None]:
    """Threads switch every 0.1 ms (not every 5), so that a race shows in a few reads."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(before)


def requests_counted(metrics: ServiceMetrics) -> float:
    return sum(
        sample.value
        for family in metrics.families()
        if family.name == "modelpilot_requests"
        for sample in family.samples
        if sample.name == "modelpilot_requests_total"
    )


async def test_reads_on_another_thread_lose_and_double_no_count(switching_often: None) -> None:
    metrics = ServiceMetrics()
    sent = 0
    for number in range(1500):  # series enough that a flush takes a while to go through
        metrics.request_finished("m", str(number), "rest", "ok", 0.001, None)
        sent += 1
    metrics.flush()

    def read() -> None:
        for _ in range(5):
            next(iter(metrics.registry.collect()), None)  # the flush, which comes first

    reads = asyncio.create_task(asyncio.to_thread(read))
    while not reads.done():  # new series as the reads go on, as versions loaded bring
        if sent < 2500:
            metrics.request_finished("n", str(sent), "rest", "ok", 0.001, None)
            sent += 1
        await asyncio.sleep(0)
    await reads  # (a read that failed on a dict that grew fails here)
    metrics.flush()
    assert requests_counted(metrics) == sent
