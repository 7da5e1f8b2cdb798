"""Load drivers: wrk for HTTP, h2load for gRPC, and the request bodies they send."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from servers import pinned

BENCH = Path(__file__).resolve().parent


@dataclass
class Point:
    server: str
    model: str
    transport: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk(
    url: str, body: Path, concurrency: int, seconds: float, cpus: set[int] | None = None
) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, errors) of POSTing ``body`` to ``url`` for ``seconds``
    (from the cores ``cpus``, when given)."""
    # One load thread for every server: the machine's other core belongs to the server.
    out = subprocess.run(
        pinned(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "5s",
                "-s",
                str(BENCH / "post.lua"),
                url,
            ],
            cpus,
        ),
        env={**os.environ, "BODY": str(body)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"RESULT (.*)", out)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    values = dict(item.split("=") for item in match.group(1).split())
    errors = int(values["errors"]) + int(values["status"]) + int(values["timeouts"])
    rps = int(values["requests"]) / float(values["seconds"])
    return rps, float(values["p50"]) / 1000, float(values["p99"]) / 1000, errors


def h2load_grpc(
    url: str, body: Path, concurrency: int, seconds: float
) -> tuple[float, float, float, int]:
    """Like :func:`wrk`, for unary gRPC calls whose framed request is ``body``."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "requests.log"
        out = subprocess.run(
            [
                "h2load",
                "-c",
                str(concurrency),
                "-m",
                "1",
                "-t",
                "1",
                "-D",
                str(max(1, round(seconds))),
                "-d",
                str(body),
                "-H",
                "content-type: application/grpc",
                "-H",
                "te: trailers",
                "--log-file",
                str(log),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lines = [line.split("\t") for line in log.read_text().splitlines() if line]
    latencies = sorted(int(parts[2]) / 1e3 for parts in lines)  # microseconds -> ms
    failed = sum(1 for parts in lines if parts[1] != "200")
    match = re.search(r"finished in ([\d.]+)(m?s)", out)
    elapsed = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1) if match else seconds
    errors = failed + int(re.search(r"(\d+) errored", out).group(1))  # type: ignore[union-attr]
    if not latencies:
        return 0.0, 0.0, 0.0, errors
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / elapsed, p50, p99, errors


def grpc_body(model: str, row: list[float]) -> bytes:
    """A length-prefixed gRPC frame holding one ModelInferRequest with raw contents."""
    from modelpilot.server.grpc.generated import inference_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, len(row)])
    request.raw_input_contents.append(np.asarray(row, dtype="<f8").tobytes())
    payload = request.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload
