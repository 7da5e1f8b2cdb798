"""gRPC transport: ``inference.GRPCInferenceService`` of the Open Inference Protocol v2."""

from modelpilot.server.grpc.server import create_grpc_server

__all__ = ["create_grpc_server"]
