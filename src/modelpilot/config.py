"""Settings: one typed object read from ``MODELPILOT_*`` environment variables at start-up."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REGISTRY = "./modelpilot-registry"


def _lower(value: object) -> object:
    """A choice in any case: ``INFO``, as the logging module spells it, is ``info``."""
    return value.lower() if isinstance(value, str) else value


class Settings(BaseSettings):
    """Everything a ModelPilot process can be told; built once and handed down."""

    model_config = SettingsConfigDict(
        env_prefix="MODELPILOT_", extra="ignore", use_attribute_docstrings=True
    )

    registry: str = DEFAULT_REGISTRY
    """Registry location: a directory (SQLite + artifact files) or a ``postgresql://`` URL."""

    artifacts: Path | None = None
    """Artifact directory; required when the registry is a database URL, else inside it.
    Empty is unset (as for every optional path and URL here)."""

    redis_url: str | None = None
    """Redis URL of the result cache that servers share (``--result-cache redis``)."""

    host: str = "0.0.0.0"
    """Interface the HTTP and gRPC servers bind to."""

    http_port: int = Field(default=8000, ge=0, le=65535)
    """Port of the REST server (Open Inference Protocol v2, ``/predict``, ``/metrics``); 0 takes
    a free port the system picks (printed at start; with ``--workers N`` it is picked once, and
    every worker serves on it)."""

    grpc_port: int = Field(default=8001, ge=0, le=65535)
    """Port of the gRPC server (``inference.GRPCInferenceService``); 0 disables it."""

    workers: int = Field(default=1, ge=1)
    """Number of server processes sharing the ports."""

    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest request body accepted over REST; larger ones get 413."""

    grpc_max_message_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest gRPC message sent or received."""

    grpc_server: Literal["native", "grpcio"] = "native"
    """gRPC front: ModelPilot's own HTTP/2 (fast, unary calls) or grpcio's asyncio server."""

    max_connections: int = Field(default=1000, ge=1)
    """Most connections each port (REST, gRPC) of a server process keeps open; one more is
    refused at once (REST: 503; gRPC: its calls UNAVAILABLE, then GOAWAY). Lowered at start,
    with a warning, to what the process's open-file limit (``ulimit -n``) leaves room for."""

    header_timeout_seconds: float = Field(default=10.0, gt=0.0)
    """How long a client has to send a request's line and headers (REST: from the connection's
    start, or the request's first byte; 408 past it) or the HTTP/2 preface (gRPC); a
    connection that sends nothing is closed then too."""

    body_timeout_seconds: float = Field(default=60.0, gt=0.0)
    """How long a request's body has to arrive once its headers have: past it REST answers 408
    and closes the connection, gRPC resets the call (RST_STREAM CANCEL); what came is freed."""

    grpc_idle_timeout_seconds: float = Field(default=300.0, gt=0.0)
    """How long a gRPC connection with no call open is kept; then GOAWAY and closed (clients
    connect again for their next call). REST connections wait 5 s between requests."""

    send_timeout_seconds: float = Field(default=60.0, gt=0.0)
    """How long an answer may wait for its client: a connection whose client takes nothing of
    what waits for it for this long is dropped (REST, gRPC), and a gRPC answer that the
    client's flow-control window holds back this long is reset (RST_STREAM CANCEL)."""

    model_memory_budget_bytes: int = Field(default=2 * 1024 * 1024 * 1024, ge=0)
    """Memory the model pool may use for versions that are not pinned; LRU beyond it."""

    alias_refresh_seconds: float = Field(default=2.0, ge=0.0)
    """How often served references (``NAME``, ``NAME@production``) are looked up again, so that
    a moved alias reaches the server (which loads the new version, then switches to it); at
    least every 0.1 s, whatever smaller figure is set."""

    request_timeout_seconds: float = Field(default=30.0, gt=0.0)
    """Deadline for one inference; past it the caller gets 504 / DEADLINE_EXCEEDED."""

    rollout_stall_seconds: float = Field(default=120.0, gt=0.0)
    """How long a served reference's new version may take to load before the rollout counts
    as stalled (alert ``rollout_stalled``); the load goes on, and traffic moves once it is done.
    Requests for a version still loading wait for it up to the request timeout, then get 503."""

    inference_threads: int = Field(default=4, ge=1)
    """Threads that run model code off the event loop (all but the fastest models')."""

    onnx: bool = True
    """Serve scikit-learn, XGBoost and LightGBM models through ONNX Runtime when the converted
    model agrees with them."""

    result_cache: Literal["off", "memory", "disk", "redis"] = "off"
    """Cache answers to repeated identical inputs: off, memory, disk or redis."""

    result_cache_ttl_seconds: float = Field(default=300.0, gt=0.0)
    """How long a cached answer is served."""

    result_cache_max_entries: int = Field(default=10_000, ge=1)
    """Most answers the memory cache keeps (least recently used go first), or about as many
    the disk cache does (the oldest go first)."""

    result_cache_dir: Path | None = None
    """Directory of the disk cache (shared by the workers of one machine)."""

    max_batch_size: int = Field(default=64, ge=1)
    """Most rows one model call takes when requests are batched (per model: metadata key)."""

    max_batch_latency_ms: float = Field(default=0.0, ge=0.0)
    """How long a batch short of the maximum may wait for more rows while other clients are
    about (a batch running, or requests arriving together); a lone client never waits."""

    batch_concurrency: int = Field(default=1, ge=1)
    """Batches of one model version that may run at the same time."""

    inline_predict_below_us: float = Field(default=200.0, ge=0.0)
    """A model whose calls all take less than this many microseconds of CPU is called on the
    event loop, where a thread handover would cost more than the call, unless they keep
    taking far longer than their CPU time there (waiting for something); 0 keeps every call
    on the thread pool (per model: metadata key)."""

    hang_up_check_seconds: float = Field(default=0.05, gt=0.0)
    """How often the REST fast path looks for clients that hung up among the requests it is
    still answering (it cancels them, counted as 499): a request answered sooner than this
    after its client left counts as answered."""

    max_queue_rows: int = Field(default=10_000, ge=1)
    """Rows allowed to wait for one model version before requests get 503 + Retry-After."""

    shutdown_drain_seconds: float = Field(default=5.0, ge=0.0)
    """On SIGTERM, how long the server answers not-ready (``/v2/health/ready`` 503) yet goes on
    taking connections and serving them before it closes its ports, so that load balancers (a
    Kubernetes Service's endpoints) stop sending to it first; skipped on Ctrl-C (SIGINT) and
    cut short by a second signal (one of the same kind within a second is the same request:
    a SIGTERM sent to a process group reaches each ``--workers`` worker twice)."""

    shutdown_grace_seconds: float = Field(default=20.0, ge=0.0)
    """On SIGTERM or Ctrl-C, once the ports are closed, how long in-flight requests get to
    finish before the process exits."""

    log_level: Annotated[
        Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(_lower)
    ] = "info"
    """Log level of the server processes."""

    monitoring: bool = True
    """Watch served models (drift, predictions, labels, alerts) and keep the inference log."""

    drift_window_rows: int = Field(default=5000, ge=1)
    """Rows in a version's drift window: at least these, in whole monitoring rounds."""

    drift_window_seconds: float = Field(default=3600.0, gt=0.0)
    """Oldest a row in the drift window may be."""

    drift_min_rows: int = Field(default=30, ge=1)
    """Fewer rows than this in the window: no drift verdict. At most drift_window_rows (a
    window that never holds this many never gives one)."""

    drift_large_sample_rows: int = Field(default=1000, ge=1)
    """Windows under this many rows need a numeric feature's tests (KS, missing share) to find
    its shift past chance too, as do windows of any size against a reference of fewer values
    than this; from this many on both sides, PSI alone decides."""

    drift_p_value: float = Field(default=0.01, gt=0.0, lt=1.0)
    """Significance level of the drift tests on small windows, for all features together
    (each feature's two tests run at it divided by twice the number of features); the server
    splits it over the looks a window gets as well (three for each doubling from
    drift_min_rows to drift_window_rows: 24 for the defaults), so that it bounds the chance
    of a false data-drift alert while a window fills, not at each look; and of concept drift
    for a window of labels as it fills (split over each look's tests and the window's sizes:
    see performance_min_labels)."""

    drift_psi_threshold: float = Field(default=0.2, gt=0.0)
    """PSI at or above which a numeric feature drifted, on any window (under
    drift_large_sample_rows, when its tests also find the shift significant)."""

    drift_js_threshold: float = Field(default=0.19, gt=0.0, le=1.0)
    """Jensen-Shannon distance at or above which a categorical feature drifted, on any window,
    once its chi-squared or rare-category test also finds the difference significant at
    drift_p_value (0.19: the size of move that drift_psi_threshold's 0.2 is for numbers)."""

    drift_dataset_share: float = Field(default=0.5, gt=0.0, le=1.0)
    """Share of drifted features at which the whole window counts as drifted
    (``modelpilot_dataset_drift``, ``drift --fail-on-drift``); the server's ``data_drift``
    alert does not wait for it: it fires once one feature drifted."""

    performance_window_rows: int = Field(default=1000, ge=1)
    """Labelled predictions that accuracy and friends are computed over."""

    performance_min_labels: int = Field(default=30, ge=1)
    """Fewer labels than this: quality is shown but not judged; at most
    performance_window_rows, the most labels the window holds. From here to
    performance_window_rows, each doubling of the window is a size that drift_p_value is
    split over (six for the defaults), with the tests of a look (up to four)."""

    performance_max_drop: float = Field(default=0.1, gt=0.0, le=1.0)
    """Fall of accuracy, F1 or AUC below the registered value that flags concept drift (when
    the window's bootstrap also finds it significant at ``drift_p_value`` split over the
    look's tests and the window's sizes)."""

    performance_max_error_increase: float = Field(default=0.2, gt=0.0)
    """Rise of MAE or RMSE, as a share of the registered value (taken as at least 1% of the
    target's scale, so that a model that fitted its reference exactly is not judged against
    0), that flags concept drift (when the window's bootstrap also finds it significant at
    ``drift_p_value`` split over the look's tests and the window's sizes)."""

    performance_label_shift: float = Field(default=0.1, gt=0.0, le=1.0)
    """Jensen-Shannon distance of a classifier's window of labels from its reference labels
    (registered with --target) that flags concept drift (when a chi-squared test also finds
    it significant at ``drift_p_value`` split over the look's tests and the window's sizes).
    A regressor's labels' distribution is not judged."""

    performance_window_seconds: float = Field(default=86_400.0, gt=0.0)
    """Age (from when the label came) past which a label leaves the quality window."""

    monitor_sample_rate: float = Field(default=1.0, gt=0.0, le=1.0)
    """Share of model calls the monitor watches, drawn at random as they are answered: their
    requests count in drift, the prediction distribution, quality from labels and the
    inference log. The rest cost serving only the draw. (Service metrics and the error and
    latency alerts count every request.)"""

    inference_log: bool = True
    """Keep sampled requests (inputs, outputs, labels) in the inference log."""

    inference_log_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of the watched requests the inference log keeps."""

    inference_log_max_rows: int = Field(default=200_000, ge=100)
    """Requests the inference log keeps, oldest going first: it trims once it holds a tenth
    more (counted in the log, across restarts and workers), so it holds up to some 10% more;
    servers sharing one log all trim it by the smallest bound of those running, whichever
    writes (200,000 single-row requests of 20 features take some 45 MB when they came in
    rounds of hundreds, as under load; more in rounds of a few)."""

    alert_error_rate: float = Field(default=0.05, gt=0.0, le=1.0)
    """Share of requests the server failed (5xx) over the last minute that raises an alert;
    client errors (4xx) do not count."""

    alert_min_requests: int = Field(default=20, ge=1)
    """Fewer requests than this over the last minute: the error rate and the p99 latency are not
    judged, so that a few failures, or one slow request, among a handful raise no alert; nor
    do they resolve one that fires (too few to judge is not healthy)."""

    alert_model_min_requests: int = Field(default=5, ge=1)
    """Fewer requests of one model version than this over the last minute: that version's own
    error rate is not judged (the server's, over every request, still is). Each version's
    rule fires only on evidence, as the server's does: failures that a 5% rate would give by
    chance less than one time in 20 (2 failures of 5 requests; one failure never)."""

    alert_latency_p99_seconds: float = Field(default=0.5, gt=0.0)
    """p99 latency over the last minute that raises an alert."""

    alert_for_seconds: float = Field(default=0.0, ge=0.0)
    """How long data drift or concept drift must hold, at every evaluation, before its alert
    fires (pending meanwhile: not sent, shown as pending on /api/alerts and /metrics); one
    evaluation where it does not hold starts the wait over, and so does one whose window is
    too small to judge (no rows, fewer than drift_min_rows, fewer labels than
    performance_min_labels), as Prometheus drops a pending alert whose expression returns
    nothing. Started over rather than paused: flags on either side of a quiet spell, by
    chance, are no drift seen to hold for the wait. 0 fires at once, so that a drift is seen
    as soon as a window shows it. A wait keeps a feature flagged by chance in one
    window from firing, but also holds back a drift that short windows show only most of the
    time: with a wait, keep the drift window long enough to show a drift in every
    evaluation."""

    alert_keep_firing_seconds: float = Field(default=60.0, ge=0.0)
    """How long a firing data drift, concept drift, error-rate or latency alert must not hold
    before it resolves (its message saying since when it has not held); if it holds again
    before, it stays the same alert. Each evaluation judges a sample that moves: a steady shift
    that five drift windows in six showed fired and resolved ten times in two minutes without
    it, and one burst of failures, whose share of the last minute's requests crossed 5% back
    and forth as requests slid past it, three times in 40 s. A minute makes one incident one
    firing and one resolution, the resolution sent a minute after the rule stops holding."""

    alert_monitoring_loss_for_seconds: float = Field(default=300.0, ge=0.0)
    """How long monitoring must go on losing requests (leaving answered requests unmonitored,
    or unwritten to the inference log) before the monitoring_losing alert fires: its rule holds
    while requests were lost within the last two minutes, so that one monitoring process
    replaced, whose lost requests hold it for two minutes, fires nothing, and a replacement
    loop, a monitor that cannot keep up or an inference log out of reach for minutes does
    (deploy/monitoring's ModelPilotMonitoringLosing waits the same five minutes). Under 120,
    a single monitoring process replaced under traffic fires it."""

    alert_webhook_url: str | None = None
    """URL that alert changes are POSTed to as JSON (optional); whitespace around it, such as
    the newline that ends a secret mounted from a file, is dropped."""

    @field_validator("alert_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """Checked at start-up, not first when an alert fires (and fails to be sent): by
        httpx, which sends it, as well as for its parts. (``urlsplit`` alone drops control
        characters that httpx refuses, and a URL it took failed at every notification.)"""
        value = value.strip() if value else value
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL with a host")
            try:
                parts.port  # noqa: B018 (read for its check: a port past 65535 raises)
            except ValueError as exc:
                raise ValueError(f"has a bad port: {exc}") from None
            import httpx  # only where a webhook is set: the settings module imports fast

            try:
                httpx.URL(value)
            except httpx.InvalidURL as exc:
                raise ValueError(f"is no URL that can be sent to: {exc}") from None
        return value or None

    alert_webhook_timeout_seconds: float = Field(default=10.0, gt=0.0, le=300.0)
    """How long each attempt at a webhook notification waits for the receiver's answer. A
    receiver that answers later (or not at all) is sent the notification again, with the same
    ``id`` and ``state``, which tell it the notification it already has: keep it above the
    receiver's slowest answer (a ticketing system or a chat relay that does its work before
    answering). At shutdown the webhook gets 5 s in all, whatever this is."""

    server_name: str | None = Field(default=None, max_length=200)
    """This server's name among those of its registry: its alert book is kept under it, and
    its webhook notifications carry it as ``server``. Unset, the machine's name and the HTTP
    port (``HOST:PORT``), which a Kubernetes Deployment's new pod does not keep: name a
    single-replica Deployment's server for its replacement to take its alerts over (a
    StatefulSet's pods keep their names). Servers that share a registry need names of their
    own: of two that run under one name, the one started last keeps the book, and the other
    says so in its log. Whitespace around it is dropped, and empty is unset."""

    @field_validator("artifacts", "redis_url", "result_cache_dir", "worker_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty value is unset: a script or compose file passing ``MODELPILOT_ARTIFACTS=``
        had its artifacts written to the current directory (``Path("")`` is ``.``), and a
        PostgreSQL registry's check for the setting passed."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("server_name")
    @classmethod
    def _printable_name(cls, value: str | None) -> str | None:
        value = value.strip() if value else value
        if value and not value.isprintable():
            raise ValueError("must be printable text (no control characters)")
        return value or None

    monitor_interval_seconds: float = Field(default=2.0, gt=0.0)
    """How often drift, quality and alerts are recomputed."""

    monitor_round_seconds: float = Field(default=0.25, gt=0.0, le=60.0)
    """How often the event loop hands what it answered to the monitoring process, as one
    round: longer rounds cost serving less per request, and hold more in memory."""

    monitor_restore: bool = True
    """Start the drift and prediction windows (the last drift_window_seconds) and the quality
    windows (labels of the last day) from the inference log, and the alerts from the alert book
    this server kept (same ids, not announced again), so that a restarted server watches on
    where it stopped."""

    monitor_process: bool = True
    """Bin and log predictions in a process of its own beside each server process, so that
    monitoring never competes with serving for the interpreter lock; off, a thread does it."""

    worker_dir: Path | None = None
    """Directory the worker processes of one server share metrics and monitoring state in
    (made by ``serve --workers``; not set by hand)."""

    worker_index: int = Field(default=0, ge=0)
    """This process's slot among the workers; slot 0 sends the alert webhooks."""

    @model_validator(mode="after")
    def _minimums_within_their_windows(self) -> Settings:
        """A minimum its window can never hold was taken, and drift or quality then never
        judged, with nothing at start saying why (each value was in range alone)."""
        for minimum, window, what in (
            ("drift_min_rows", "drift_window_rows", "the drift window"),
            ("performance_min_labels", "performance_window_rows", "the quality window"),
        ):
            low, size = getattr(self, minimum), getattr(self, window)
            if low > size:
                raise ValueError(
                    f"MODELPILOT_{minimum.upper()}={low} is more than "
                    f"MODELPILOT_{window.upper()}={size}: {what} would never hold enough for "
                    "a verdict; lower the one or raise the other"
                )
        return self


NOT_SETTINGS = frozenset({"MODELPILOT_REQUIRE_SERVICES"})
"""``MODELPILOT_*`` variables read elsewhere than ``Settings`` (the test suite's)."""


SUGGESTED_AT_MOST = 5
"""How many settings an unknown name's warning suggests at most (``MODELPILOT_TIMEOUT`` has
five that time something out)."""


def unknown_settings(environ: Mapping[str, str]) -> list[str]:
    """Each ``MODELPILOT_*`` variable in ``environ`` that names no setting, with the settings
    it likely meant: pydantic ignores them, so a typo would silently leave a default."""
    known = {f"MODELPILOT_{name.upper()}" for name in Settings.model_fields}
    found = []
    for name in sorted(environ):
        upper = name.upper()  # settings are read whatever the case of their names
        if not upper.startswith("MODELPILOT_") or upper in known or upper in NOT_SETTINGS:
            continue
        if upper.startswith("MODELPILOT_TEST_"):
            continue
        close = [f"MODELPILOT_{meant.upper()}" for meant in likely_meant(upper[11:])]
        if close:
            meant = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
            found.append(f"{name} (did you mean {meant}?)")
        else:
            found.append(name)
    return found


def likely_meant(typed: str) -> list[str]:
    """The settings a name typed after the prefix (``PORT``, ``DRIFT_WINDOW_ROW``) likely
    meant, closest first: those with each of its words, spelt alike, among theirs (``PORT``:
    ``http_port``, ``grpc_port``); else the one spelt most alike.

    Compared whole, with the prefix that every name shares, the prefix decided: PORT was
    taken for HOST, TIMEOUT for HOST, THREADS for REDIS_URL."""
    typed = typed.lower()
    words = [word for word in typed.split("_") if word]
    alike = [
        setting
        for setting in Settings.model_fields
        if words
        and all(difflib.get_close_matches(word, setting.split("_"), cutoff=0.8) for word in words)
    ]
    if alike:
        closest = sorted(alike, key=lambda s: -difflib.SequenceMatcher(None, typed, s).ratio())
        return closest[:SUGGESTED_AT_MOST]
    return difflib.get_close_matches(typed, list(Settings.model_fields), n=1)
