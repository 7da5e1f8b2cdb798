"""Large label posts: read off the event loop, so that other clients are answered meanwhile,
and refused past the limit of labels a post with a word on how to send them."""

from __future__ import annotations

import asyncio
import time

import orjson

from tests.monitoring.conftest import Served

MAX_LABELS = 100_000
"""The labels a post may carry, as the 413 and the docs say."""


def _labels(count: int) -> bytes:
    """A feedback body of ``count`` labels for ids no prediction had."""
    labels = [{"request_id": f"unknown-{i}", "label": i % 3} for i in range(count)]
    return orjson.dumps({"labels": labels})


async def test_a_large_label_post_leaves_the_event_loop_free_for_other_clients(
    served: Served,
) -> None:
    """A million labels took 5-20 s to read, all of it on the event loop: other clients'
    predictions and the health probes waited as long."""
    body = _labels(MAX_LABELS)
    gaps: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def post() -> int:
        reply = await served.client.post("/api/feedback/iris", content=body)
        done.set()
        return reply.status_code

    probing = asyncio.create_task(probe())
    await asyncio.sleep(0.01)  # the probe is under way before the post is read
    started = time.perf_counter()
    status = await post()
    took = time.perf_counter() - started
    await probing
    assert status == 404  # read whole, and none of the ids matched a prediction
    # The loop turned all along: no pause near the post's own length (it was 90% of it;
    # now a parse of the body, which holds the GIL in any thread, about a quarter).
    assert len(gaps) > 10 and max(gaps) < took / 2, (max(gaps), took)


async def test_a_post_of_more_labels_than_the_limit_is_refused_with_how_to_send_them(
    served: Served,
) -> None:
    reply = await served.client.post("/api/feedback/iris", content=_labels(MAX_LABELS + 1))
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"] == (
        f"the body has {MAX_LABELS + 1} labels, over the limit of {MAX_LABELS} a post; split "
        f"them into posts of at most {MAX_LABELS}"
    )
    # Counted once parsed as well, whatever the spelling of the key.
    escaped = _labels(MAX_LABELS + 1).replace(b'"request_id"', b'"request\\u005fid"')
    reply = await served.client.post("/api/feedback/iris", content=escaped)
    assert reply.status_code == 413, reply.text
    # A made-up model is still what the client hears of first.
    reply = await served.client.post("/api/feedback/nosuch", content=_labels(MAX_LABELS + 1))
    assert reply.status_code == 404, reply.text
