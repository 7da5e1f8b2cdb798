"""``GET /metrics`` renders on a thread of its own, and gzips when asked.

A scrape rendered on the event loop held up every request that arrived meanwhile for the
whole scrape (130-280 ms with 20 models of 3 versions); and its 842 KB went out plain to
Prometheus, which asks for gzip (53 KB).
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Metric
from prometheus_client.parser import text_string_to_metric_families

from modelpilot.server.rest import metrics


class HeldCollector:
    """A collector whose collection waits until the test lets it go: a scrape that renders
    for as long as the test wants."""

    def __init__(self) -> None:
        self.collecting = threading.Event()
        self.let_go = threading.Event()

    def collect(self) -> Iterator[Metric]:
        self.collecting.set()
        self.let_go.wait(3)  # (on the loop: the whole test held up)
        return iter(())


def metrics_app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()
    app.include_router(metrics.router)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app.state.monitoring = SimpleNamespace(registry=registry, exchange=None, monitor=None)
    return app


async def test_requests_are_answered_while_a_scrape_renders() -> None:
    registry = CollectorRegistry()
    Counter("modelpilot_example", "an example", registry=registry).inc()
    held = HeldCollector()
    registry.register(held)
    transport = httpx.ASGITransport(app=metrics_app(registry))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            scrape = asyncio.create_task(client.get("/metrics"))
            # Rendering, held: on the loop it would hold this wait, and the ping, up too.
            assert await asyncio.to_thread(held.collecting.wait, 10)
            ping = await asyncio.wait_for(client.get("/ping"), timeout=5)
            assert ping.json() == {"pong": "yes"}
            assert not scrape.done()
            held.let_go.set()
            scraped = await scrape
        assert scraped.status_code == 200
        assert "modelpilot_example_total 1.0" in scraped.text
    finally:
        held.let_go.set()


async def test_a_scrape_is_gzipped_when_the_client_asks() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("modelpilot_example", "an example", ["model"], registry=registry)
    for number in range(500):
        gauge.labels(f"model-{number}").set(number)
    transport = httpx.ASGITransport(app=metrics_app(registry))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        # httpx asks for gzip (as Prometheus does) and decodes it, as a scraper would.
        zipped = await client.get("/metrics")
        plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert zipped.request.headers["accept-encoding"].startswith("gzip")
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 4
    assert "content-encoding" not in plain.headers
    assert zipped.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
    assert zipped.headers["content-type"] == plain.headers["content-type"]
    assert zipped.text == plain.text
    (family,) = text_string_to_metric_families(zipped.text)
    assert sum(sample.value for sample in family.samples) == sum(range(500))


def test_render_gzips_what_it_renders() -> None:
    registry = CollectorRegistry()
    Counter("modelpilot_example", "an example", registry=registry).inc(3)
    assert gzip.decompress(metrics.render(registry, compress=True)) == metrics.render(
        registry, compress=False
    )
