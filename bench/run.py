"""Side-by-side benchmark: ModelPilot against MLServer and a plain FastAPI endpoint.

Starts each server on loopback, drives it with the same load (wrk for HTTP, h2load for gRPC),
and prints a table of requests/s, p50, p99 and errors, with ratios to MLServer. The table is
also written to docs/benchmarks.md. Absolute numbers depend on the machine and what else runs
on it; the ratios, measured in one run, are what to read.

    python bench/run.py                 # everything (about 6 minutes)
    python bench/run.py --quick         # 3 s per point, concurrency 16 only

Needs wrk and h2load (Debian: apt-get install wrk nghttp2-client). MLServer runs from its own
virtual environment (bench/.venv-mlserver, created on first use) because its pinned
dependencies clash with ours.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
MLSERVER_VENV = BENCH / ".venv-mlserver"
# uvloop 0.22 broke MLServer 1.7 worker start-up (get_event_loop in a fresh process).
MLSERVER_PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"]
FEATURES = 20


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> float:
    """Seconds until ``url`` answers 200; raises if the process dies or time runs out."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@contextlib.contextmanager
def running(
    cmd: list[str], ready_url: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[float]:
    """Run a server for the block; yields its start-to-ready time."""
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the server's lifetime
        prefix="bench-server-", suffix=".log", delete=False
    )
    process = subprocess.Popen(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            yield wait_ready(ready_url, process)
        except RuntimeError:
            log.flush()
            print(Path(log.name).read_text()[-3000:], file=sys.stderr)
            raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        os.unlink(log.name)


def wrk(url: str, body: Path, concurrency: int, seconds: float) -> tuple[float, float, float, int]:
    # One load thread for every server: the machine's other core belongs to the server.
    out = subprocess.run(
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


def train(workdir: Path) -> dict[str, Path]:
    x, y = make_classification(
        n_samples=4000, n_features=FEATURES, n_informative=10, random_state=0
    )
    models = {
        "logreg": LogisticRegression(max_iter=1000).fit(x, y),
        "forest": RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(x, y),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = workdir / f"{name}.joblib"
        joblib.dump(model, paths[name])
    np.save(workdir / "reference.npy", x[:500])
    return paths


def ensure_mlserver() -> Path:
    binary = MLSERVER_VENV / "bin" / "mlserver"
    if not binary.exists():
        print("creating bench/.venv-mlserver for MLServer (one time)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        subprocess.run(
            [str(MLSERVER_VENV / "bin" / "pip"), "install", "-q", *MLSERVER_PACKAGES], check=True
        )
    return binary


def mlserver_repo(
    workdir: Path, paths: dict[str, Path], batching: bool, http: int, grpc: int, copies: int = 1
) -> Path:
    repo = workdir / f"mlserver-{'batch' if batching else 'plain'}-{copies}"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir()
    (repo / "settings.json").write_text(
        json.dumps(
            {
                "http_port": http,
                "grpc_port": grpc,
                "metrics_port": free_port(),
                "host": "127.0.0.1",
                "debug": False,
            }
        )
    )
    for name, path in paths.items():
        for copy in range(copies):
            model_name = name if copies == 1 else f"{name}{copy}"
            model_dir = repo / model_name
            model_dir.mkdir()
            settings: dict[str, object] = {
                "name": model_name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(path)},
            }
            if batching:
                settings.update(max_batch_size=64, max_batch_time=0.002)
            (model_dir / "model-settings.json").write_text(json.dumps(settings))
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration per point")
    parser.add_argument(
        "--concurrency", default="1,16,64", help="comma-separated connection counts"
    )
    parser.add_argument("--quick", action="store_true", help="3 s per point at 16 connections")
    parser.add_argument("--skip-mlserver", action="store_true", help="leave MLServer out")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.concurrency = 3.0, "16"
    levels = [int(c) for c in args.concurrency.split(",")]
    for tool in ("wrk", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: apt-get install wrk nghttp2-client")
    points: list[Point] = []
    cold: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="modelpilot-bench-") as tmp:
        workdir = Path(tmp)
        paths = train(workdir)
        row = np.round(np.random.default_rng(1).normal(size=FEATURES), 4).tolist()
        v2 = workdir / "v2.json"
        v2.write_text(
            json.dumps(
                {
                    "inputs": [
                        {"name": "input-0", "shape": [1, FEATURES], "datatype": "FP64", "data": row}
                    ]
                }
            )
        )
        simple = workdir / "simple.json"
        simple.write_text(json.dumps({"data": row}))
        grpc_bodies = {name: workdir / f"{name}.grpc" for name in paths}
        for name, path in grpc_bodies.items():
            path.write_bytes(grpc_body(name, row))

        def record(point: Point) -> None:
            points.append(point)
            print(
                f"{point.server:28} {point.model:7} {point.transport} c={point.concurrency:<3} "
                f"{point.rps:9.0f} req/s  p50 {point.p50_ms:6.2f} ms  p99 {point.p99_ms:6.2f} ms"
                f"  errors {point.errors}",
                file=sys.stderr,
            )

        def sweep(
            server: str, http: int, grpc: int | None, path_for: dict[str, str], body: Path
        ) -> None:
            for model in paths:
                for c in levels:
                    url = f"http://127.0.0.1:{http}{path_for[model]}"
                    rps, p50, p99, errors = wrk(url, body, c, args.seconds)
                    record(Point(server, model, "http", c, rps, p50, p99, errors))
                if grpc is not None and 16 in levels:
                    url = f"http://127.0.0.1:{grpc}/inference.GRPCInferenceService/ModelInfer"
                    rps, p50, p99, errors = h2load_grpc(url, grpc_bodies[model], 16, args.seconds)
                    record(Point(server, model, "grpc", 16, rps, p50, p99, errors))

        # ModelPilot, as one process and as one process per core
        registry = workdir / "registry"
        for name, path in paths.items():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "modelpilot",
                    "register",
                    name,
                    str(path),
                    "--registry",
                    str(registry),
                    "--alias",
                    "production",
                ],
                check=True,
                capture_output=True,
            )
        for workers in (1, 2):
            http, grpc = free_port(), free_port()
            label = "ModelPilot" if workers == 1 else f"ModelPilot --workers {workers}"
            with running(
                [
                    sys.executable,
                    "-m",
                    "modelpilot",
                    "serve",
                    "--registry",
                    str(registry),
                    "--host",
                    "127.0.0.1",
                    "--http-port",
                    str(http),
                    "--grpc-port",
                    str(grpc),
                    "--workers",
                    str(workers),
                    "--log-level",
                    "warning",
                ],
                f"http://127.0.0.1:{http}/v2/health/ready",
            ):
                sweep(label, http, grpc, {m: f"/v2/models/{m}/infer" for m in paths}, v2)

        # The plain FastAPI endpoint
        for model, path in paths.items():
            port = free_port()
            with running(
                [sys.executable, str(BENCH / "fastapi_baseline.py"), str(path), str(port)],
                f"http://127.0.0.1:{port}/docs",
            ):
                for c in levels:
                    rps, p50, p99, errors = wrk(
                        f"http://127.0.0.1:{port}/predict", simple, c, args.seconds
                    )
                    label = "FastAPI (plain endpoint)"
                    record(Point(label, model, "http", c, rps, p50, p99, errors))

        if not args.skip_mlserver:
            binary = ensure_mlserver()
            for batching in (False, True):
                http, grpc = free_port(), free_port()
                repo = mlserver_repo(workdir, paths, batching, http, grpc)
                label = "MLServer 1.7" + (" + adaptive batching" if batching else "")
                with running(
                    [str(binary), "start", str(repo)],
                    f"http://127.0.0.1:{http}/v2/health/ready",
                    cwd=repo,
                ):
                    for model in paths:  # MLServer answers ready before its models load
                        wait_model = f"http://127.0.0.1:{http}/v2/models/{model}/ready"
                        deadline = time.time() + 60
                        while time.time() < deadline and httpx.get(wait_model).status_code != 200:
                            time.sleep(0.1)
                    sweep(label, http, grpc, {m: f"/v2/models/{m}/infer" for m in paths}, v2)

        # Cold start: process start to ready, with 10 models registered.
        registry10 = workdir / "registry10"
        for i in range(5):
            for name, path in paths.items():
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "modelpilot",
                        "register",
                        f"{name}{i}",
                        str(path),
                        "--registry",
                        str(registry10),
                    ],
                    check=True,
                    capture_output=True,
                )
        http = free_port()
        with running(
            [
                sys.executable,
                "-m",
                "modelpilot",
                "serve",
                "--registry",
                str(registry10),
                "--host",
                "127.0.0.1",
                "--http-port",
                str(http),
                "--grpc-port",
                str(free_port()),
            ],
            f"http://127.0.0.1:{http}/v2/health/ready",
        ) as seconds:
            cold["ModelPilot"] = seconds
        if not args.skip_mlserver:
            http = free_port()
            repo = mlserver_repo(workdir, paths, False, http, free_port(), copies=5)
            started = time.perf_counter()
            with running(
                [str(binary), "start", str(repo)],
                f"http://127.0.0.1:{http}/v2/health/ready",
                cwd=repo,
            ):
                for name in paths:
                    for i in range(5):
                        while (
                            httpx.get(
                                f"http://127.0.0.1:{http}/v2/models/{name}{i}/ready"
                            ).status_code
                            != 200
                        ):
                            time.sleep(0.05)
                cold["MLServer 1.7"] = time.perf_counter() - started

    report = render(points, cold, args)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)


def render(points: list[Point], cold: dict[str, float], args: argparse.Namespace) -> str:
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
        "# Benchmarks",
        "",
        f"`python bench/run.py{' --quick' if args.quick else ''}` on {os.cpu_count()} cores, "
        f"{args.seconds:g} s per point, single-row requests over loopback, load generator on "
        "the same machine. Models: logistic regression and a random forest (50 trees, depth 8), "
        f"{FEATURES} features. Ratios are requests/s against MLServer in the same run.",
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
        lines += [f"- {server}: {seconds:.2f} s" for server, seconds in cold.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
