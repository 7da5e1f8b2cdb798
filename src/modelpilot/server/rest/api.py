"""Monitoring management under ``/api``: delayed labels, alerts, drift and quality reports."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, ValidationError, model_validator

from modelpilot.config import Settings
from modelpilot.errors import BadRequest, InvalidInput, NotFound, PayloadTooLarge, quoted
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.overview import Overview, dumps
from modelpilot.monitoring.process import labels_apart
from modelpilot.registry.quality import label_key
from modelpilot.server.rest.body import decompress, documented_json_body, json_object
from modelpilot.server.rest.errors import invalid_request
from modelpilot.server.rest.openapi import errors
from modelpilot.server.rest.params import VersionNumber
from modelpilot.serving.served import require_name

router = APIRouter(prefix="/api", tags=["Monitoring"])


class Label(BaseModel):
    request_id: str = Field(description="The id a prediction was answered with.")
    label: Any = Field(
        description="The true value; a list with one per row for several rows. Of a regressor "
        "of several targets, a list of one number a target (a list of those for several rows)."
    )


class Feedback(BaseModel):
    """One label (``request_id`` + ``label``) or many (``labels``)."""

    request_id: str | None = None
    label: Any = None
    labels: list[Label] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Feedback:
        if (self.labels is None) == (self.request_id is None):
            raise ValueError('send {"request_id": ..., "label": ...} or {"labels": [...]}')
        if self.request_id is not None and self.label is None:
            if "label" not in self.model_fields_set:
                raise ValueError("label is missing")
            raise ValueError(
                "label is null: send the true value, or leave the request out until it is known"
            )
        return self

    def pairs(self) -> dict[str, Any]:
        """The labels by request id (``by_request_id``)."""
        if self.labels is None:
            assert self.request_id is not None
            return {self.request_id: self.label}
        return by_request_id([(item.request_id, item.label) for item in self.labels])


MAX_LABELS = 100_000
"""The most labels one post may carry. Every post is read, checked and joined whole before it
is answered; a million labels (41 MB, under the body limit) took 5-20 s and 900 MB."""


def feedback_pairs(payload: dict[str, Any]) -> dict[str, Any]:
    """The labels of a feedback body by request id: PayloadTooLarge (413) for more than
    ``MAX_LABELS``, ValidationError or InvalidInput (422) for a body that does not fit.

    A list of well-formed labels is read without a pydantic model per label (12.9 s for a
    million of them, as long as the event loop was held); pydantic reads the rest, and words
    what is wrong with them."""
    labels = payload.get("labels")
    if isinstance(labels, list) and payload.get("request_id") is None:
        if len(labels) > MAX_LABELS:
            raise _too_many(len(labels))
        if all(
            isinstance(item, dict) and type(item.get("request_id")) is str and "label" in item
            for item in labels
        ):
            return by_request_id([(item["request_id"], item["label"]) for item in labels])
    return Feedback.model_validate(payload).pairs()


def _too_many(count: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the body has {count} labels, over the limit of {MAX_LABELS} a post; split them "
        f"into posts of at most {MAX_LABELS}"
    )


def by_request_id(labels: list[tuple[str, Any]]) -> dict[str, Any]:
    """``labels`` (request id, label) by request id.

    InvalidInput (422) for a request given two different labels in one call: which one is
    meant is the client's to say (a later call may correct a label, and its label replaces
    the first). The same label twice is taken once, as a retry is."""
    pairs: dict[str, Any] = {}
    first: dict[str, int] = {}
    for index, (key, label) in enumerate(labels):
        if key not in pairs:
            pairs[key], first[key] = label, index
        elif _as_compared(label) != _as_compared(pairs[key]):
            raise InvalidInput(
                f"labels[{first[key]}] and labels[{index}] give request {quoted(key)} "
                "different labels; send one label per request (a list of one per row for "
                "several rows), and correct a label in a later call, which replaces it"
            )
    return pairs


def _as_compared(label: Any) -> Any:
    """A label (or a list of one per row) as the metrics compare labels: 1, 1.0 and "1" alike
    (``label_key``), so that sending one class twice in two spellings is no conflict."""
    if isinstance(label, list):
        return [label_key(value) for value in label]
    return label_key(label)


_LABEL_VALUE = {"type": ["string", "number", "boolean"]}
_TARGETS = {"type": "array", "minItems": 1, "items": {"type": "number"}}
"""A row's label of a regressor of several targets: one number a target."""
_LABEL = {
    "description": "the true value; a list of one per row; of a regressor of several targets, "
    "a list of one number a target (a list of those for several rows)",
    "anyOf": [
        _LABEL_VALUE,
        {"type": "array", "minItems": 1, "items": {"anyOf": [_LABEL_VALUE, _TARGETS]}},
    ],
}

FEEDBACK_BODY = documented_json_body(
    {
        "type": "object",
        "oneOf": [
            {"required": ["request_id", "label"], "not": {"required": ["labels"]}},
            {"required": ["labels"], "not": {"required": ["request_id"]}},
        ],
        "properties": {
            "request_id": {"type": "string"},
            "label": _LABEL,
            "labels": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_LABELS,
                "items": {
                    "type": "object",
                    "properties": {"request_id": {"type": "string"}, "label": _LABEL},
                    "required": ["request_id", "label"],
                },
            },
        },
    },
    {
        "one": {"request_id": "3f9c0a1e00000001", "label": 2},
        "many": {
            "labels": [
                {"request_id": "3f9c0a1e00000001", "label": 2},
                {"request_id": "3f9c0a1e00000002", "label": [0, 1]},
            ]
        },
    },
)


class FeedbackReply(BaseModel):
    accepted: int = Field(description="Rows whose label joined a logged prediction.")
    unknown: list[str] = Field(description="Request ids with no prediction of this model.")


def _monitor(request: Request) -> Monitor:
    monitoring = request.app.state.monitoring
    if monitoring is None or monitoring.monitor is None:
        raise NotFound("monitoring is off on this server (MODELPILOT_MONITORING=false)")
    monitor: Monitor = monitoring.monitor
    return monitor


@router.post(
    "/feedback/{model}",
    summary="Post delayed labels",
    response_model=FeedbackReply,
    openapi_extra=FEEDBACK_BODY,
    responses=errors(400, 404, 413, 422, 503),
)
async def feedback(model: str, request: Request) -> FeedbackReply:
    """Join true labels to earlier predictions by request id; they feed accuracy monitoring.

    Answers 400 when the body cannot be parsed (not JSON, or not a JSON object), and 422
    when it parses but does not fit: not one of the two forms, two different labels for one
    request, or a label that does not fit its prediction (not one label per predicted row;
    for a classifier, none of its classes, or where it does not list them, of those its
    reference data named; for a regression, not a finite JSON number, or for one of several
    targets, not a list of one a target). A call answered with an error keeps none of its
    labels. Answers 404 when no id matched a prediction of ``model`` (saying so, or that no
    model has that name); ids that did not match are listed in ``unknown`` otherwise. Answers
    413 for more than ``MAX_LABELS`` (100,000) labels in one post: split them into several.
    """
    monitor = _monitor(request)
    # The body is JSON whatever its Content-Type says, as for predictions: `curl -d` sends
    # form-encoded, and FastAPI would parse a declared model only from application/json.
    limit = request.app.state.settings.max_request_bytes
    body = await request.body()
    try:
        # Off the event loop: reading a large post there held up every other client's
        # predictions, and the health probes, for as long.
        pairs = await asyncio.to_thread(_read_feedback, body, request.headers, limit)
    except (BadRequest, PayloadTooLarge, ValidationError) as exc:
        # A made-up model is what the client hears of first, whatever the body, as from
        # the inference endpoints.
        await _registered(monitor, model)
        if not isinstance(exc, ValidationError):
            raise
        raise InvalidInput(invalid_request(exc.errors())) from None
    if not pairs:
        raise InvalidInput("no labels given")
    result = await monitor.feedback_async(model, pairs)
    if result.accepted == 0:
        await _registered(monitor, model)
        sampled = ""
        if monitor.call_sample_rate < 1:
            sampled = (
                f" (the monitor watches {monitor.call_sample_rate:.0%} of model calls, "
                "MODELPILOT_MONITOR_SAMPLE_RATE: the others' predictions take no labels)"
            )
        dropped = ""
        if monitor.dropped:
            # Not the log's length: these were never on record (modelpilot_monitor_dropped_total).
            dropped = (
                f"; {monitor.dropped} answered request(s) were left unmonitored, as the monitor "
                "fell behind, or its process died or was being replaced, and take no labels"
            )
        settings = request.app.state.settings
        apart = labels_apart(settings)
        raise NotFound(
            f"no prediction of model {quoted(model)} has the request id(s) {_ids(result.unknown)}; "
            "use the id a prediction was answered with (the response's id, or x-request-id); "
            f"predictions stay on record for labels {_on_record(settings, apart is None)}"
            + sampled
            + dropped
            + ("" if apart is None else f"; {apart}")
        )
    return FeedbackReply(accepted=result.accepted, unknown=result.unknown)


def _read_feedback(body: bytes, headers: Mapping[str, str], limit: int) -> dict[str, Any]:
    """The labels of a feedback post's ``body`` by request id (``feedback_pairs``).

    Too many labels are counted before the body is parsed: parsing holds the GIL, and so the
    event loop, whatever thread it runs in (0.5 s and more for a million labels). The count is
    exact for labels sent as the documented objects (a quote inside a JSON string is escaped);
    others are counted once parsed."""
    data = decompress(body, headers.get("content-encoding", ""), limit)
    count = data.count(b'"request_id"')
    if count > MAX_LABELS:
        raise _too_many(count)
    return feedback_pairs(json_object(data, {}, limit))


def _on_record(settings: Settings, in_memory: bool) -> str:
    """How long a prediction takes labels, as a 404 for unknown request ids says; with
    ``in_memory``, also those the log leaves out (else ``labels_apart`` says what of them)."""
    logged = (
        "as long as the inference log keeps them (its last MODELPILOT_INFERENCE_LOG_MAX_ROWS "
        "requests)"
    )
    if not settings.inference_log:
        return "for the last MODELPILOT_INFERENCE_LOG_MAX_ROWS requests, in memory until a restart"
    if in_memory and settings.inference_log_sample_rate < 1:
        return (
            f"{logged}, and those it leaves out (MODELPILOT_INFERENCE_LOG_SAMPLE_RATE) for "
            "the last as many requests, in memory until a restart"
        )
    return logged


def _ids(unknown: list[str]) -> str:
    """The first of the request ids that matched nothing, as a 404 quotes them."""
    more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
    return ", ".join(quoted(i) for i in unknown[:10]) + more


async def _registered(monitor: Monitor, model: str, version: int | None = None) -> None:
    """ModelNotFound, as ``/v2/models/{model}`` answers, unless ``model`` is registered (and
    VersionNotFound unless it has ``version``, if one is given).

    Asked only when there is nothing to answer with (no label joined, no report): labels for
    the logged predictions of a version no longer served, or of a model no longer
    registered, join all the same, and their reports are shown all the same."""
    require_name(model)
    if version is None:
        await asyncio.to_thread(monitor.registry.latest, model)
    else:
        await asyncio.to_thread(monitor.registry.get_version, model, version)


_OFF = errors(404)
"""What the monitoring routes answer on a server with monitoring off."""

# The readers below read the monitor in a thread, and serialise there too. The monitor's
# lock is held by its thread for the whole of an evaluation (0.2-0.7 s with 2,000 features)
# and of a large label post's join (1 s): taken on the event loop, it stopped every other
# request, health probes and gRPC calls included, for as long. And a 2,000-feature model's
# report (900 KB of JSON) took 35-150 ms to build and serialise, held the loop as long, for
# every poll of every open dashboard page; each report's entry is now made once
# (``SerialisedEntries``), in the thread of whichever reader comes first.


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get(
    "/alerts",
    summary="Active and recent alerts",
    response_model=dict[str, Any],
    responses=_OFF,
)
async def alerts(request: Request) -> Response:
    monitor = _monitor(request)
    return _json(await asyncio.to_thread(_alerts, monitor))


def _alerts(monitor: Monitor) -> bytes:
    book = monitor.alert_state()  # with the reports of versions given labels made again
    return dumps(
        {
            "active": [a.to_dict() for a in book.active],
            "pending": book.waiting(monitor.rules),
            "history": [a.to_dict() for a in book.history],
        }
    )


@router.get(
    "/monitoring",
    summary="Drift, predictions and quality of every watched version",
    response_model=list[dict[str, Any]],
    responses=_OFF,
)
async def monitoring(request: Request) -> Response:
    monitor = _monitor(request)
    overview = await _settled(request, monitor)
    answered = overview.answered()  # (on the loop: it reads the loop's counts)
    return _json(await asyncio.to_thread(_entries, overview, answered))


def _entries(overview: Overview, answered: Mapping[tuple[str, str], int]) -> bytes:
    # With the versions that answered requests but have no report (failed every one).
    monitor = overview.monitor
    traffic = monitor.traffic()
    reports = [*monitor.reports(), *monitor.unwatched(traffic)]
    return overview.entries_json(reports, answered, traffic)


@router.get(
    "/monitoring/{model}",
    summary="Drift, predictions and quality of one model",
    response_model=dict[str, Any],
    responses=errors(404, 422),
)
async def monitoring_model(
    model: str, request: Request, version: VersionNumber | None = None
) -> Response:
    monitor = _monitor(request)
    serving = dict(request.app.state.engine.served.current_versions()).get(model)
    number = serving.version if serving is not None else None
    overview = await _settled(request, monitor)
    answered = overview.answered()  # (on the loop: it reads the loop's counts)
    try:
        body = await asyncio.to_thread(_model_entry, overview, model, version, number, answered)
    except NotFound:
        # "No data yet" is for a model that may have some: one not registered never will.
        await _registered(monitor, model, version)
        raise
    return _json(body)


def _model_entry(
    overview: Overview,
    model: str,
    version: int | None,
    serving: int | None,
    answered: Mapping[tuple[str, str], int],
) -> bytes:
    """``model``'s report (``Monitor.report``) as its entry, as JSON."""
    report = overview.monitor.report(model, version, serving=serving)
    # As the dashboard's entries say it: a version asked for by number may be one rolled
    # back from, whose drift and quality no longer answer for the model.
    return overview.entry_json(report, report.version == str(serving), answered)


@router.get(
    "/dashboard",
    summary="Everything the live dashboard draws",
    response_model=dict[str, Any],
    responses=_OFF,
)
async def dashboard_data(request: Request) -> Response:
    monitor = _monitor(request)
    overview = await _settled(request, monitor)
    answered = overview.answered()  # (on the loop: it reads the loop's counts)
    return _json(await asyncio.to_thread(overview.read_json, answered))


async def _settled(request: Request, monitor: Monitor) -> Overview:
    """The server's overview, once it has its sibling workers' figures: with workers, a
    worker's first answers wait for them, as /metrics's do (``Overview.settle``). The
    monitoring routes wait too: a worker started in place of one that died answered
    /api/monitoring/{model} 404 ("still putting its windows back") for 1.5 s, while its
    siblings answered with the server's report."""
    state = request.app.state
    # Made on the first request and kept: it holds the dashboard's own baseline of the
    # machine's CPU (a fresh one each time would measure nothing).
    if getattr(state, "overview", None) is None:
        state.overview = Overview(monitor, state.engine, statistics=state.monitoring.statistics)
    overview: Overview = state.overview
    await overview.settle()
    return overview
