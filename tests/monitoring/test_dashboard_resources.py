"""``/api/dashboard``'s CPU and memory are the server's: the monitoring process's included."""

from __future__ import annotations

import asyncio

import psutil
import pytest

from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored


async def test_the_servers_memory_holds_its_monitoring_process(labelled_iris: Registry) -> None:
    """t6's case: the page's memory was the serving process's alone, some 60% of the
    server's; a container sized by it ran short."""
    async with monitored(labelled_iris) as served:
        pid = served.monitor.tap.pid
        assert pid is not None
        await asyncio.to_thread(served.monitor.flush)  # closes a service interval
        payload = (await served.client.get("/api/dashboard")).json()
        monitoring = psutil.Process(pid).memory_info().rss
    system, last = payload["system"], payload["series"][-1]
    assert monitoring > 10_000_000
    assert system["monitor_memory_bytes"] == last["monitor_memory_bytes"]
    assert system["monitor_memory_bytes"] == pytest.approx(monitoring, rel=0.1)
    serving = system["process_memory_bytes"]
    assert system["memory_bytes"] == pytest.approx(serving + monitoring, rel=0.1)
    assert 0 <= system["monitor_cpu_percent"] <= system["cpu_percent"]
