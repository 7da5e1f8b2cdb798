"""``GET /metrics``: this process's metrics in the Prometheus text format."""

from __future__ import annotations

import asyncio
import gzip
import logging
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.exposition import gzip_accepted
from prometheus_client.registry import Collector

from modelpilot.errors import NotFound
from modelpilot.monitoring.feature_exposition import exposition
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.siblings import WorkerExchange
from modelpilot.server.rest.openapi import errors

logger = logging.getLogger(__name__)

router = APIRouter(tags=["Monitoring"])

FIRST_SCRAPE_WAIT_SECONDS = 5.0
"""How long a worker's first scrapes wait for every worker's first snapshot: well under
Prometheus' default scrape timeout (10 s), and longer than a monitoring process takes to start."""

CATCH_UP_WAIT_SECONDS = 1.0
"""How long a scrape waits for reports made again from its siblings' newer snapshots (see
``catch_up``) before it answers with the figures at hand; the reports go on for the next."""

GZIP_LEVEL = 6
"""zlib's default: a 60-version scrape of 842 KB in 53 KB and 9 ms of CPU, where level 9
(``gzip.compress``'s default) took 33 ms for 49 KB."""


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "The Prometheus text format."}, **errors(404)},
)
async def metrics(request: Request) -> Response:
    monitoring = request.app.state.monitoring
    if monitoring is None:
        raise NotFound("metrics are not collected by this app (it was built without monitoring)")
    state = request.app.state
    if monitoring.exchange is not None and not getattr(state, "first_snapshots_seen", False):
        workers = state.settings.workers
        await asyncio.to_thread(
            every_worker_published, monitoring.exchange, workers, FIRST_SCRAPE_WAIT_SECONDS
        )
        # Once only, whatever came of it: a worker that cannot start must not slow every
        # scrape down; it shows when it has started.
        state.first_snapshots_seen = True
    if monitoring.exchange is not None and monitoring.monitor is not None:
        catching_up: asyncio.Task[None] | None = getattr(state, "metrics_catching_up", None)
        if catching_up is None or catching_up.done():
            catching_up = asyncio.create_task(
                asyncio.to_thread(catch_up, monitoring.exchange, monitoring.monitor)
            )
            catching_up.add_done_callback(_logged)
            state.metrics_catching_up = catching_up
        # Not waited for past a second: it waits on the monitor's round, which a restart's
        # restore of a large label history held for 10-18 s, past Prometheus' scrape timeout.
        await asyncio.wait({catching_up}, timeout=CATCH_UP_WAIT_SECONDS)
    compress = gzip_accepted(request.headers.get("accept-encoding", ""))
    rendering: asyncio.Lock | None = getattr(state, "metrics_rendering", None)
    if rendering is None:
        rendering = state.metrics_rendering = asyncio.Lock()
    async with rendering:
        body = await asyncio.to_thread(render, monitoring.registry, compress)
    headers = {"Vary": "Accept-Encoding"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers=headers)


def render(registry: Collector, compress: bool) -> bytes:
    """``registry`` in the text format, gzipped if ``compress``: the scrape's work, done on a
    thread of its own (``metrics`` renders one scrape at a time).

    On the event loop it held up every request that arrived meanwhile for the whole scrape:
    130-280 ms with 20 models of 3 versions (9,461 lines, 842 KB), a p99.9 of 13 ms that became
    195 ms at one scrape a second. The service metrics' flush, which reading the registry
    starts with, still runs on the loop, where the request path counts
    (``ServiceMetrics.flush_on_loop``). One at a time, as they were on the loop: collectors
    keep state from one scrape to the next (the machine's CPU share since the last one).
    Prometheus asks for gzip: 16 times fewer bytes, as prometheus_client's own exposition sends.
    On a thread, the scrape still held the interpreter lock against the loop, which waited for
    it: a 2,000-feature model's 14,600 lines stalled serving 150-190 ms a scrape, so its
    per-feature series are written as text once per drift report (``exposition``).
    """
    body = exposition(registry)
    return gzip.compress(body, GZIP_LEVEL) if compress else body


def _logged(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("reporting again for a scrape failed", exc_info=task.exception())


def every_worker_published(exchange: WorkerExchange, workers: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until each of the ``workers`` has published a snapshot
    (``exchange``'s own worker included); whether they all have.

    ``serve --workers`` answers ``/metrics`` from the workers' snapshots, which each worker
    writes at the end of its monitoring rounds, the first once its monitoring process has
    started: for a second or more after a worker said ready, a scrape held none of its figures
    (1 sample line, then 29, then 204), and a scrape that reached a worker whose first round
    had not ended lacked every model's figures (204, 67, 204). Waited for in the first scrapes
    of each worker process only (a worker restarted later waits in its own first scrapes).
    Whatever came of it, the scrape holds the answering worker's own figures: it publishes
    them as the scrape reads the snapshots if its first round has not ended (``SiblingCollector``).
    """
    wanted = set(range(workers)) | {exchange.index}
    deadline = time.monotonic() + timeout
    while True:
        published = {snapshot.index for snapshot in exchange.workers()}
        if wanted <= published:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def catch_up(exchange: WorkerExchange, monitor: Monitor) -> None:
    """Have ``monitor`` report again if a sibling worker published a snapshot after this
    worker's last one, which its reports were made with (each round ends by publishing).

    Each worker reports the models from its own latest round, merged with its siblings'
    snapshots as they were then: after new traffic, a scrape answered by one worker held the
    drift windows' figures, and the next, answered by the other worker, did not, until its
    next round (185 sample lines, then 139, then 185). Reports made again from the newest
    snapshots hold everything the scrapes before held. One evaluation per scrape at most (as
    a label posted costs), and none when no sibling has published since this worker's last
    round or scrape."""
    own, newest = 0.0, 0.0
    for snapshot in exchange.workers():
        if snapshot.pid == exchange.pid:
            own = snapshot.at
        else:
            newest = max(newest, snapshot.at)
    if newest > own:
        monitor.refresh()
