"""docs/benchmarks.md: one section per part of the benchmark, each replaceable on its own."""

from __future__ import annotations

import os
import re
from pathlib import Path

from load import Point

SECTIONS = ("comparison", "monitoring", "instructions")
TITLE = "# Benchmarks"
INTRO = (
    "Written by `python bench/run.py`; each section names the command and the day it was "
    "measured, because `--only` re-measures one section and keeps the others. Absolute numbers "
    "depend on the machine and on what else runs on it; the ratios, measured in one run, are "
    "what to read."
)


def render_comparison(
    points: list[Point],
    cold: dict[str, float],
    command: str,
    when: str,
    seconds: float,
    features: int,
) -> str:
    def ref(p: Point, server: str) -> Point | None:
        for q in points:
            if (q.server, q.model, q.transport, q.concurrency) == (
                server,
                p.model,
                p.transport,
                p.concurrency,
            ):
                return q
        return None

    lines = [
        "## ModelPilot, MLServer and a plain FastAPI endpoint",
        "",
        f"`{command}`, {when}, on {os.cpu_count()} cores, {seconds:g} s per point, single-row "
        "requests over loopback, load generator on the same machine. Models: logistic "
        f"regression and a random forest (50 trees, depth 8), {features} features. Ratios are "
        "requests/s against MLServer in the same run.",
        "",
        "ModelPilot ran as shipped, with monitoring on (the default: drift on the reference "
        "profile its models were registered with, prediction distribution, inference log, "
        "alerts); the next section measures what that costs.",
        "",
        "ModelPilot answers gRPC with its own HTTP/2 front (the default). The row "
        "`MODELPILOT_GRPC_SERVER=grpcio` is the same server on grpcio's asyncio server "
        "instead, and the row of grpc.aio answering a canned response "
        "(`bench/grpc_ceiling.py`) is no inference server: it parses each request and returns "
        "a fixed answer at once, on uvloop, which is the most requests/s any grpc.aio server "
        "can answer here (MLServer's gRPC is one). h2load counts a gRPC call as done whatever "
        "its status; ModelPilot's errors over gRPC are read from its `/metrics` (leaving out the "
        "calls in flight that h2load cancels when its time is up).",
        "",
        "| server | model | transport | connections | requests/s | p50 ms | p99 ms | errors "
        "| x MLServer | x MLServer+batching |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in points:
        ratios = []
        for server in ("MLServer 1.7", "MLServer 1.7 + adaptive batching"):
            q = ref(p, server)
            ratios.append(f"{p.rps / q.rps:.2f}" if q and q.rps else "")
        lines.append(
            f"| {p.server} | {p.model} | {p.transport} | {p.concurrency} | {p.rps:,.0f} | "
            f"{p.p50_ms:.2f} | {p.p99_ms:.2f} | {p.errors} | {ratios[0]} | {ratios[1]} |"
        )
    if cold:
        lines += ["", "Cold start, process start to ready with 10 models:", ""]
        lines += [f"- {server}: {secs:.2f} s" for server, secs in cold.items()]
    return "\n".join(lines) + "\n"


def _marker(name: str, end: bool = False) -> str:
    return f"<!-- bench:{'/' if end else ''}{name} -->"


def existing_sections(text: str) -> dict[str, str]:
    found = {}
    for name in SECTIONS:
        pattern = re.escape(_marker(name)) + r"\n(.*?)" + re.escape(_marker(name, end=True))
        match = re.search(pattern, text, re.DOTALL)
        if match:
            found[name] = match.group(1)
    return found


def write(path: Path, sections: dict[str, str]) -> str:
    """Write ``sections`` to ``path``, keeping the sections of the file this run did not measure."""
    kept = existing_sections(path.read_text()) if path.exists() else {}
    merged = {**kept, **sections}
    parts = [TITLE, "", INTRO, ""]
    for name in SECTIONS:
        if name in merged:
            parts += [_marker(name), merged[name].rstrip("\n"), _marker(name, end=True), ""]
    text = "\n".join(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
