"""``inference.GRPCInferenceService`` over the engine: decode, call, encode."""

from __future__ import annotations

from typing import Any

import grpc

import modelpilot
from modelpilot.server.grpc import codec
from modelpilot.server.grpc.errors import mapped_errors
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.serving.engine import InferenceEngine

EXTENSIONS = ["model_repository"]
Context = grpc.aio.ServicerContext[Any, Any]


class InferenceServicer:
    """The protocol's RPCs; each one is a thin shell around an engine call."""

    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine

    @mapped_errors
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.engine.live)

    @mapped_errors
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.engine.ready)

    @mapped_errors
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        ready = await self.engine.model_ready(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=ready)

    @mapped_errors
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name="modelpilot", version=modelpilot.__version__, extensions=EXTENSIONS
        )

    @mapped_errors
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        meta = await self.engine.metadata(request.name, request.version or None)
        response = pb.ModelMetadataResponse(
            name=meta.name, versions=list(meta.versions), platform=meta.platform
        )
        for spec in meta.inputs:
            response.inputs.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
        for spec in meta.outputs:
            response.outputs.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
        return response

    @mapped_errors
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        inference = codec.decode_request(request)
        result = await self.engine.infer(
            request.model_name, inference, request.model_version or None, transport="grpc"
        )
        return codec.encode_response(result)

    @mapped_errors
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        entries = await self.engine.repository_index(request.ready)
        response = pb.RepositoryIndexResponse()
        for e in entries:
            response.models.add(name=e.name, version=e.version, state=e.state, reason=e.reason)
        return response

    @mapped_errors
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        await self.engine.load_model(request.model_name)
        return pb.RepositoryModelLoadResponse()

    @mapped_errors
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        await self.engine.unload_model(request.model_name)
        return pb.RepositoryModelUnloadResponse()
