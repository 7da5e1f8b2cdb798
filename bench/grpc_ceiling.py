"""The most a grpc.aio server can do here: a ModelInfer that answers at once, canned.

It parses the request (grpc.aio does that before the handler runs) and returns a fixed
one-row response, on uvloop like ModelPilot. No grpc.aio server (MLServer's, or ModelPilot's
with MODELPILOT_GRPC_SERVER=grpcio) can answer faster on this machine, so the ratio of this
row to MLServer's gRPC bounds what any of them can reach.

Run: python bench/grpc_ceiling.py GRPC_PORT HTTP_PORT (the HTTP port only answers "ready").
"""

from __future__ import annotations

import asyncio
import sys

import grpc
import uvloop

from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc

ANSWER = pb.ModelInferResponse(model_name="canned", model_version="1")
ANSWER.outputs.add(name="predict", datatype="INT64", shape=[1])
ANSWER.raw_output_contents.append(bytes(8))


class Canned(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    async def ModelInfer(
        self,
        request: pb.ModelInferRequest,
        context: grpc.aio.ServicerContext[pb.ModelInferRequest, pb.ModelInferResponse],
    ) -> pb.ModelInferResponse:
        return ANSWER


async def ready(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    await writer.drain()
    writer.close()


async def main(grpc_port: int, http_port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Canned(), server)
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    health = await asyncio.start_server(ready, "127.0.0.1", http_port)
    async with health:
        await server.wait_for_termination()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
