"""Service metrics in Prometheus form: requests, latency, queueing, batches, errors, uptime."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric

from modelpilot.monitoring.histogram_tally import Tally
from modelpilot.monitoring.service_collectors import Exported, Flush, Uptime
from modelpilot.serving.engine import UNKNOWN_MODEL, InferenceEngine
from modelpilot.serving.observers import InferenceObserver

# Sub-millisecond to tens of seconds: a cache hit, an ONNX forest, a slow pipeline. Prometheus
# interpolates a quantile within its bucket, so from 0.5 s (the latency alert's threshold) to
# 5 s each bound is at most 5/3 of the one below: from 1.0 straight to 2.5, a p99 of 1.2 s read
# 2.48 s. Each bound is a series per model, version and transport of three histograms.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SERVER_STATUSES = ("500", "503", "504")
"""The statuses of the server's own failures (the model failed, overloaded or not ready,
past its deadline): a version's series of them start at 0 (``ServiceMetrics.start_at_zero``)."""
SERVER_TRANSPORTS = ("rest", "grpc")
"""The transports of ``serve``: a version's series of each start at 0 once it is loaded."""
FLUSH_SECONDS = 1.0
"""Most seconds that counts gathered on the request path wait before they reach Prometheus.

A scrape of the process flushes them first, and so does a clean shutdown (``serve`` after its
last answer), which loses none. A process killed (SIGKILL, the OOM killer) loses what it
gathered in its last FLUSH_SECONDS at most: with ``serve --workers``, the counters summed over
the workers miss that much of a killed worker's requests, for good: of every family alike
(requests, their errors and timeouts, latencies), so that they still agree with each other.
(A shorter wait would only shrink the loss: the requests a killed worker was answering are
lost with it anyway.)"""
LOOP_FLUSH_WAIT_SECONDS = 1.0
"""Most seconds that a read of the metrics on another thread waits for the event loop to
flush (``ServiceMetrics.flush_on_loop``); a loop held up longer leaves the counts of the
last FLUSH_SECONDS to the next read."""


class ServiceMetrics(InferenceObserver):
    """The engine's observer that keeps Prometheus metrics, on a registry of its own.

    Nothing is registered globally: whoever builds the server makes one of these (tests make
    fresh ones) and exposes ``registry`` on ``/metrics``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        process_registry: CollectorRegistry | None = None,
    ) -> None:
        """``process_registry`` takes what only makes sense per process (uptime); with
        ``serve --workers`` it is the worker's own registry, exported with a worker label,
        while ``registry`` is backed by prometheus_client's multiprocess files."""
        # The request path only counts, in plain Python numbers (a Counter.inc or
        # Histogram.observe takes a lock and, with worker processes, writes a shared file:
        # together about a tenth of a request's CPU). flush() hands the counts to the
        # Prometheus objects: at least every FLUSH_SECONDS, and whenever a registry that
        # shows them is read (flush_when_read, first in it).
        self._requests: dict[tuple[str, str, str, str], int] = {}
        self._latency: dict[tuple[str, str, str], Tally] = {}
        self._queue: dict[tuple[str, str], Tally] = {}
        self._batch_rows: dict[tuple[str, str], Tally] = {}
        self._compute: dict[tuple[str, str], Tally] = {}
        self._failed_seconds: dict[tuple[str, str], float] = {}
        self._errors: dict[tuple[str, str, str], int] = {}
        """(model, version, kind) -> failed requests: flushed with the requests that count
        them, so that a worker killed between two flushes loses both alike (written through,
        ``modelpilot_errors_total`` came out above the failed ``modelpilot_requests_total``)."""
        self._cached: dict[tuple[str, str, bool], list[float]] = {}
        """(model, version, hit) -> [lookups, seconds]"""
        self._flush_due = False
        self._loop: asyncio.AbstractEventLoop | None = None
        """The event loop that serves, on which the request path counts (once known)."""
        self._at_zero: set[tuple[str, str, str]] = set()
        """(model, version, transport) whose series start at 0 already (``start_at_zero``)."""
        self._engine: InferenceEngine | None = None
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.flush_when_read(r)
        # On no registry (not even prometheus_client's global one): ``Exported`` shows them
        # on ``registry`` without their ``_created`` series, as the multiprocess collector of
        # ``serve --workers`` does.
        self.requests = Counter(
            "modelpilot_requests",
            "Inference requests answered, by outcome: status is ok, or the HTTP status of the "
            "error (499: the client gave up first).",
            ["model", "version", "transport", "status"],
            registry=None,
        )
        self.latency = Histogram(
            "modelpilot_request_duration_seconds",
            "Time from a request reaching the engine to its answer.",
            ["model", "version", "transport"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.queue = Histogram(
            "modelpilot_queue_duration_seconds",
            "Time a request waited in the queue: for its batch to start, or, if it timed out "
            "or its client gave up there, until then.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.batch_rows = Histogram(
            "modelpilot_batch_size_rows",
            "Rows per model call that answered (a failed call scored none and is not counted).",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=None,
        )
        self.compute = Histogram(
            "modelpilot_model_call_duration_seconds",
            "Time the model call that answered a request took (a batch's call, counted once "
            "for each request in it).",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.failed_seconds = Counter(
            "modelpilot_failed_request_duration_seconds",
            "Time that failed requests took, in all (their share of the request duration's sum).",
            ["model", "version"],
            registry=None,
        )
        self.last_request = Gauge(
            "modelpilot_last_request_time_seconds",
            "When the version last answered a request (Unix time, to within a second).",
            ["model", "version"],
            registry=None,
            multiprocess_mode="max",
        )
        self.errors = Counter(
            "modelpilot_errors",
            "Failed requests by kind of error.",
            ["model", "version", "kind"],
            registry=None,
        )
        self.timeouts = Counter(
            "modelpilot_timeouts",
            "Requests that ran past their deadline.",
            ["model", "version"],
            registry=None,
        )
        self.cache_hits = Counter(
            "modelpilot_result_cache_hits",
            "Requests answered from the result cache.",
            ["model", "version"],
            registry=None,
        )
        self.cache_misses = Counter(
            "modelpilot_result_cache_misses",
            "Requests the result cache could not answer (the model answered them).",
            ["model", "version"],
            registry=None,
        )
        self.cache_seconds = Counter(
            "modelpilot_result_cache_duration_seconds",
            "Time spent asking the result cache, in all: the lookup, on a hit and on a miss "
            "(a miss's answer is stored after it is sent, and not counted here).",
            ["model", "version", "result"],
            registry=None,
        )
        started = time.time()
        self.start_time = Gauge(
            "modelpilot_start_time_seconds",
            "When the server started serving (Unix time; the first worker's start).",
            registry=None,
            multiprocess_mode="min",
        )
        self.start_time.set(started)
        r.register(
            Exported(
                (
                    self.requests,
                    self.latency,
                    self.queue,
                    self.batch_rows,
                    self.compute,
                    self.failed_seconds,
                    self.last_request,
                    self.errors,
                    self.timeouts,
                    self.cache_hits,
                    self.cache_misses,
                    self.cache_seconds,
                    self.start_time,
                )
            )
        )
        # Read at scrape time, from no Gauge: with worker processes a Gauge also writes a
        # shared file, which the summed metrics showed as a second family of zeros by pid.
        (process_registry or r).register(Uptime(started))

    def watch(self, engine: InferenceEngine) -> None:
        """Count ``engine``'s requests, and start the series of each version it loads at 0
        before its first request (see ``start_at_zero``)."""
        engine.add_observer(self)
        self._engine = engine
        self._loop = _running_loop() or self._loop

    def request_finished(
        self,
        model: str,
        version: str,
        transport: str,
        status: str,
        seconds: float,
        error: str | None,
    ) -> None:
        key = (model, version, transport, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        if status != "ok":
            series = (model, version)
            self._failed_seconds[series] = self._failed_seconds.get(series, 0.0) + seconds
        tally = self._latency.get((model, version, transport))
        if tally is None:
            tally = self._latency[(model, version, transport)] = Tally(LATENCY_BUCKETS)
        tally.add(seconds)
        if error is not None:
            kind = (model, version, error)
            self._errors[kind] = self._errors.get(kind, 0) + 1
        if not self._flush_due:
            self._schedule_flush()

    def batch_finished(
        self,
        model: str,
        version: str,
        rows: int,
        requests: int,
        seconds: float,
    ) -> None:
        rows_tally = self._batch_rows.get((model, version))
        if rows_tally is None:
            rows_tally = self._batch_rows[(model, version)] = Tally(BATCH_BUCKETS)
            self._compute[(model, version)] = Tally(LATENCY_BUCKETS)
        rows_tally.add(rows)
        # Each request in the batch waited for the whole call.
        self._compute[(model, version)].add(seconds, requests)
        if not self._flush_due:
            self._schedule_flush()

    def queue_left(self, model: str, version: str, queue_seconds: Sequence[float]) -> None:
        queue = self._queue.get((model, version))
        if queue is None:
            queue = self._queue[(model, version)] = Tally(LATENCY_BUCKETS)
        for waited in queue_seconds:
            queue.add(waited)
        if not self._flush_due:
            self._schedule_flush()

    def cache_looked_up(self, model: str, version: str, hit: bool, seconds: float) -> None:
        key = (model, version, hit)
        tally = self._cached.get(key)
        if tally is None:
            tally = self._cached[key] = [0, 0.0]
        tally[0] += 1
        tally[1] += seconds
        if not self._flush_due:
            self._schedule_flush()

    def flush(self) -> None:
        """Hand the counts gathered since the last flush to the Prometheus metrics.

        Call it on the thread that serves (the event loop), or once serving has stopped;
        elsewhere, ``flush_on_loop``.
        """
        self._flush_due = False
        if self._engine is not None:
            for loaded in self._engine.pool.loaded():
                for transport in SERVER_TRANSPORTS:
                    series = (loaded.version.model, str(loaded.version.version), transport)
                    if series not in self._at_zero:
                        self.start_at_zero(*series)
        requests, self._requests = self._requests, {}
        now = time.time()
        for key, count in requests.items():
            if key[:3] not in self._at_zero:
                self.start_at_zero(*key[:3])
            self.requests.labels(*key).inc(count)
        for model, version in {key[:2] for key in requests}:
            self.last_request.labels(model, version).set(now)
        errors, self._errors = self._errors, {}
        for (model, version, kind), count in errors.items():
            self.errors.labels(model, version, kind).inc(count)
            if kind == "InferenceTimeout":
                self.timeouts.labels(model, version).inc(count)
        failed, self._failed_seconds = self._failed_seconds, {}
        for (model, version), seconds in failed.items():
            self.failed_seconds.labels(model, version).inc(seconds)
        for series, tally in self._latency.items():
            tally.flush_into(self.latency.labels(*series))
        for (model, version), tally in self._queue.items():
            tally.flush_into(self.queue.labels(model, version))
        for (model, version), tally in self._batch_rows.items():
            tally.flush_into(self.batch_rows.labels(model, version))
        for (model, version), tally in self._compute.items():
            tally.flush_into(self.compute.labels(model, version))
        cached, self._cached = self._cached, {}
        for (model, version, hit), (lookups, seconds) in cached.items():
            (self.cache_hits if hit else self.cache_misses).labels(model, version).inc(lookups)
            result = "hit" if hit else "miss"
            self.cache_seconds.labels(model, version, result).inc(seconds)

    def flush_on_loop(self) -> None:
        """``flush`` on the event loop that serves, from whichever thread, and return once it
        has (or after LOOP_FLUSH_WAIT_SECONDS).

        ``/metrics`` renders on a thread of its own, not to hold serving up for a scrape;
        the request path counts on the loop, in plain dicts and lists without a lock, which a
        flush on another thread meanwhile could lose or count twice, or fail on a dict that
        grew as it was read. Where no loop serves (a script, a test, serving has stopped)
        it flushes on the calling thread.
        """
        loop = self._loop
        if loop is None or not loop.is_running() or _running_loop() is loop:
            self.flush()
            return
        flushed: concurrent.futures.Future[None] = concurrent.futures.Future()

        def flush() -> None:
            try:
                self.flush()
            except BaseException as error:
                flushed.set_exception(error)
                raise
            flushed.set_result(None)

        try:
            loop.call_soon_threadsafe(flush)
        except RuntimeError:  # the loop closed meanwhile: serving has stopped
            self.flush()
            return
        # A loop held up longer: the flush runs when it gets to it.
        with contextlib.suppress(concurrent.futures.TimeoutError):
            flushed.result(LOOP_FLUSH_WAIT_SECONDS)

    def start_at_zero(self, model: str, version: str, transport: str) -> None:
        """Start the series that the alerting rules and the dashboard read of a version's
        requests over ``transport`` at 0: its answers (ok) and failures (5xx, timeouts), and
        its latency.

        ``rate()`` and ``increase()`` see no rise in a series' first sample: a version's
        first failures, counted in the scrape that first showed its series, were lost to the
        error-rate rule (a burst of 30 failures before the first scrape, never seen). So each
        version the engine of ``watch`` holds loaded gets its series over the transports of
        ``serve`` in the first flush after it loaded (a scrape flushes first): the versions a
        server loads at start are at 0 from its first scrape on. A version loaded only as
        requests come for it (one asked for by number; one an alias moved to, whose traffic
        moves as soon as it has loaded), and other transports, may start with the flush that
        counts their first requests: what of them failed before the next scrape stays hidden.
        """
        self._at_zero.add((model, version, transport))
        if model == UNKNOWN_MODEL or version == "unknown":  # (no version was answering)
            return
        for status in ("ok", *SERVER_STATUSES):
            self.requests.labels(model, version, transport, status)
        self.latency.labels(model, version, transport)
        self.timeouts.labels(model, version)

    def families(self) -> Iterator[Metric]:
        """This process's service metrics alone (flushed first), as a registry collects them."""
        self.flush()
        yield from Exported(
            (
                self.requests,
                self.latency,
                self.failed_seconds,
                self.last_request,
                self.queue,
                self.batch_rows,
                self.compute,
                self.cache_hits,
                self.cache_misses,
                self.cache_seconds,
            )
        ).collect()

    def flush_when_read(self, registry: CollectorRegistry) -> None:
        """Flush whenever ``registry`` is collected, before the collectors registered after
        this call: the registry these metrics live on, or the one a scrape reads (with worker
        processes, prometheus_client's multiprocess collector)."""
        registry.register(Flush(self))

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not serving on a loop (a script, a test): no one to wait for
            self.flush()
            return
        self._loop = loop
        self._flush_due = True
        loop.call_later(FLUSH_SECONDS, self.flush)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running on this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
