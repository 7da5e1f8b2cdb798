"""The dashboard's and the management API's answers are gzipped for a client that accepts it:
the page polled 580 KB of JSON every 2 s as it was (tester "scale" F5). Inference answers are
not: a client reads a binary tensor's header length off the raw body."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import numpy as np

from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored

GZIP = {"accept-encoding": "gzip"}


async def raw(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> tuple[httpx.Response, bytes]:
    """The answer, and its body as sent (not decoded)."""
    async with client.stream("GET", path, headers=headers) as response:
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


async def test_the_dashboards_answers_are_gzipped_for_a_client_that_accepts_it(
    labelled_iris: Registry,
) -> None:
    async with monitored(labelled_iris) as served:
        client = served.client
        rows = np.tile([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], (5, 1)).tolist()
        reply = await client.post("/predict/iris", json={"data": rows}, headers=GZIP)
        assert reply.status_code == 200 and "content-encoding" not in reply.headers
        await asyncio.to_thread(served.monitor.flush)
        for path in ("/api/dashboard", "/api/monitoring/iris", "/dashboard"):
            packed, packed_body = await raw(client, path, GZIP)
            plain, plain_body = await raw(client, path, {"accept-encoding": "identity"})
            assert packed.status_code == plain.status_code == 200, path
            assert packed.headers["content-encoding"] == "gzip", path
            assert "accept-encoding" in packed.headers["vary"].lower(), path
            assert "content-encoding" not in plain.headers, path
            assert len(packed_body) < len(plain_body) / 2, path
            if path != "/api/dashboard":  # (its figures of time and the machine change)
                assert gzip.decompress(packed_body) == plain_body, path
        # A small answer goes as it is.
        small, _ = await raw(client, "/api/alerts", GZIP)
        assert small.status_code == 200 and "content-encoding" not in small.headers
        # As does an inference answer, however large.
        body = {"data": np.tile(rows, (200, 1)).tolist()}
        async with client.stream("POST", "/predict/iris", json=body, headers=GZIP) as big:
            assert big.status_code == 200 and "content-encoding" not in big.headers
