"""``inference.GRPCInferenceService`` over the engine: decode, call, encode."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from google.protobuf import json_format
from google.protobuf.message import Message

import modelpilot
from modelpilot.errors import BadRequest, ModelPilotError
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.protocol.types import answerable_request_id
from modelpilot.server.grpc import codec
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.triton_extensions import configuration, statistics
from modelpilot.serving.engine import InferenceEngine

EXTENSIONS = ["model_repository", "model_configuration", "statistics"]
SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
INFER = f"/{SERVICE.full_name}/ModelInfer"
"""The path of the one method whose calls the service metrics count."""


REQUEST_ID = "x-request-id"
"""The call metadata that carries a request id, both ways, as REST's header of that name."""


def adopt_request_id(request: pb.ModelInferRequest, sent: str | None) -> None:
    """The call's ``x-request-id`` metadata (``sent``) as ``request``'s id when the message
    has none, as REST takes that header's when the body has none: a proxy (Envoy) or a
    tracing layer sets it on gRPC calls as on HTTP ones, and labels posted under it must find
    the prediction. Checked with the message's own (``codec.decode_request``)."""
    if sent is not None and not request.id:
        request.id = sent


def id_metadata(request_id: str | None) -> tuple[tuple[str, str], ...]:
    """The ``x-request-id`` metadata of an answer for ``request_id``: none for an id beyond
    ASCII, which gRPC metadata cannot carry (the answer's ``id`` field does)."""
    if not request_id or not request_id.isascii():
        return ()
    return ((REQUEST_ID, request_id),)


def echoed_id(request: Message | None, sent: str | None) -> tuple[tuple[str, str], ...]:
    """The ``x-request-id`` metadata of a failed ModelInfer call: the client's id (the
    message's, else the metadata's), as REST echoes it on errors; none if it gave none, or
    one that is no valid id (the answer to that must not fail on it)."""
    given = request.id if isinstance(request, pb.ModelInferRequest) and request.id else sent
    try:
        return id_metadata(answerable_request_id(given))
    except BadRequest:
        return ()


STREAM_INFER = f"/{SERVICE.full_name}/ModelStreamInfer"
"""Triton's bidirectional streaming method, which this server does not serve."""
NOT_STREAMED = (
    "ModelStreamInfer (Triton's streaming extension, for decoupled models) is not served: "
    "send each request as a unary ModelInfer call (tritonclient: infer or async_infer, not "
    "start_stream; perf_analyzer: without --streaming); calls share one connection"
)


class Method(NamedTuple):
    """One RPC: its path (``/inference.GRPCInferenceService/ModelInfer``), its request
    message type, and the servicer's coroutine that answers it."""

    path: str
    request_type: type[Message]
    call: Callable[[Any], Awaitable[Message]]


def methods(servicer: InferenceServicer) -> dict[str, Method]:
    """Every RPC of the service, by path, bound to ``servicer``."""
    return {
        f"/{SERVICE.full_name}/{m.name}": Method(
            f"/{SERVICE.full_name}/{m.name}",
            getattr(pb, m.input_type.name),
            getattr(servicer, m.name),
        )
        for m in SERVICE.methods
    }


class InferenceServicer:
    """The protocol's RPCs; each one is a thin shell around an engine call.

    Errors are raised as ``ModelPilotError``; the server in front maps them to statuses.
    """

    def __init__(
        self, engine: InferenceEngine, monitoring: ProcessMonitoring | None = None
    ) -> None:
        self.engine = engine
        self.monitoring = monitoring

    async def ServerLive(self, request: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.engine.live)

    async def ServerReady(self, request: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.engine.ready)

    async def ModelReady(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        ready = await self.engine.model_ready(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name="modelpilot", version=modelpilot.__version__, extensions=EXTENSIONS
        )

    async def ModelMetadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        meta = await self.engine.metadata(request.name, request.version or None)
        response = pb.ModelMetadataResponse(
            name=meta.name, versions=list(meta.versions), platform=meta.platform
        )
        for spec in meta.inputs:
            response.inputs.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
        for spec in meta.outputs:
            response.outputs.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
        return response

    async def ModelInfer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        started = time.perf_counter()
        try:
            inference = codec.decode_request(request)
        except ModelPilotError as exc:
            elapsed = time.perf_counter() - started
            version = request.model_version or None
            raise await self.engine.refused(
                request.model_name, version, "grpc", exc, elapsed
            ) from None
        except Exception as exc:
            self.engine.failed(request.model_name, "grpc", exc, time.perf_counter() - started)
            raise
        result = await self.engine.infer(
            request.model_name, inference, request.model_version or None, transport="grpc"
        )
        return codec.encode_response(result)

    async def ModelConfig(self, request: pb.ModelConfigRequest) -> pb.ModelConfigResponse:
        config = await configuration(self.engine, request.name, request.version or None)
        return pb.ModelConfigResponse(config=json_format.ParseDict(config, pb.ModelConfig()))

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest
    ) -> pb.ModelStatisticsResponse:
        found = await statistics(
            self.engine, self.monitoring, request.name or None, request.version or None
        )
        return json_format.ParseDict({"model_stats": found}, pb.ModelStatisticsResponse())

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest
    ) -> pb.RepositoryIndexResponse:
        entries = await self.engine.repository_index(request.ready)
        response = pb.RepositoryIndexResponse()
        for e in entries:
            response.models.add(name=e.name, version=e.version, state=e.state, reason=e.reason)
        return response

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest
    ) -> pb.RepositoryModelLoadResponse:
        await self.engine.load_model(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest
    ) -> pb.RepositoryModelUnloadResponse:
        await self.engine.unload_model(request.model_name)
        return pb.RepositoryModelUnloadResponse()
