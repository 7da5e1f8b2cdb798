"""Side-by-side benchmark: ModelPilot against MLServer and a plain FastAPI endpoint.

Starts each server on loopback, drives it with the same load (wrk for HTTP, h2load for gRPC),
and prints a table of requests/s, p50, p99 and errors, with ratios to MLServer. A second part
measures what model monitoring costs ModelPilot: monitoring on, in a thread and without the
inference log, each loaded side by side with monitoring off, over several rounds; a third
counts the same configurations' instructions per request under valgrind's callgrind, which
the machine's other work does not move. All are written to docs/benchmarks.md. Absolute
numbers depend on the machine and what else runs on it; the ratios, measured in one run, are
what to read.

    python bench/run.py                       # everything (about an hour)
    python bench/run.py --quick               # 3 s per point, concurrency 16 only, 3 rounds
    python bench/run.py --only monitoring     # just the monitoring cost (about 35 minutes)
    python bench/run.py --only instructions   # just the instruction counts (3-11 minutes)

--only re-measures one section of docs/benchmarks.md and keeps the others as they were.
Needs wrk and h2load (Debian: apt-get install wrk nghttp2-client), and valgrind for the
instruction counts. MLServer runs from its own
virtual environment (bench/.venv-mlserver, created on first use) because its pinned
dependencies clash with ours.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import joblib
import monitoring_cost
import monitoring_instructions
import monitoring_table
import numpy as np
import report
from load import Point, grpc_body, h2load_grpc, wrk
from servers import (
    ensure_mlserver,
    failed_calls,
    free_port,
    fresh_copy,
    mlserver_repo,
    modelpilot_env,
    modelpilot_serve,
    register,
    running,
    wait_models_ready,
)
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
FEATURES = 20
MONITORING_LABEL = "(monitoring on)"
GRPCIO_LABEL = "ModelPilot, MODELPILOT_GRPC_SERVER=grpcio"
GRPC_CEILING = "grpc.aio answering a canned response"
MONITORING_TURN_SECONDS = 4.0
"""Load per turn in the monitoring comparison: short turns, many rounds (see monitoring_cost)."""


def train(workdir: Path) -> tuple[dict[str, Path], Path]:
    """The two models' files, and their training rows as reference data for drift."""
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
    reference = workdir / "reference.npy"
    np.save(reference, x[:500])
    return paths, reference


class Comparison:
    """The main table: every server, model, transport and concurrency, plus cold start."""

    def __init__(self, args: argparse.Namespace, workdir: Path, paths: dict[str, Path]) -> None:
        self.args, self.workdir, self.paths = args, workdir, paths
        self.levels = [int(c) for c in args.concurrency.split(",")]
        self.points: list[Point] = []
        self.cold: dict[str, float] = {}
        row = np.round(np.random.default_rng(1).normal(size=FEATURES), 4).tolist()
        self.v2 = v2_body(workdir, row)
        self.simple = workdir / "simple.json"
        self.simple.write_text(json.dumps({"data": row}))
        self.grpc_bodies = {name: workdir / f"{name}.grpc" for name in paths}
        for name, path in self.grpc_bodies.items():
            path.write_bytes(grpc_body(name, row))

    def record(self, point: Point) -> None:
        self.points.append(point)
        print(
            f"{point.server:28} {point.model:7} {point.transport} c={point.concurrency:<3} "
            f"{point.rps:9.0f} req/s  p50 {point.p50_ms:6.2f} ms  p99 {point.p99_ms:6.2f} ms"
            f"  errors {point.errors}",
            file=sys.stderr,
        )

    def sweep(
        self, server: str, http: int, grpc: int | None, ours: bool = False, rest: bool = True
    ) -> None:
        """OIP v2 JSON over HTTP at every concurrency, and gRPC at 16, for each model.

        ``ours``: a ModelPilot server, whose metrics also count the gRPC calls that failed.
        """
        for model in self.paths:
            url = f"http://127.0.0.1:{http}/v2/models/{model}/infer"
            for c in self.levels if rest else ():
                rps, p50, p99, errors = wrk(url, self.v2, c, self.args.seconds)
                self.record(Point(server, model, "http", c, rps, p50, p99, errors))
            if grpc is not None and 16 in self.levels:
                url = f"http://127.0.0.1:{grpc}/inference.GRPCInferenceService/ModelInfer"
                body = self.grpc_bodies[model]
                failed = failed_calls(http, "grpc") if ours else 0
                rps, p50, p99, errors = h2load_grpc(url, body, 16, self.args.seconds)
                if ours:
                    errors += failed_calls(http, "grpc") - failed
                self.record(Point(server, model, "grpc", 16, rps, p50, p99, errors))

    def modelpilot(self, registry: Path) -> None:
        """ModelPilot as one process and as one process per core, in its default settings;
        then its gRPC on grpcio's server instead of its own HTTP/2 front."""
        for workers in (1, 2):
            http, grpc = free_port(), free_port()
            label = "ModelPilot" if workers == 1 else f"ModelPilot --workers {workers}"
            with running(
                modelpilot_serve(fresh_copy(registry, self.workdir, "main"), http, grpc, workers),
                f"http://127.0.0.1:{http}/v2/health/ready",
                env=modelpilot_env(),
            ):
                self.sweep(f"{label} {MONITORING_LABEL}", http, grpc, ours=True)
        http, grpc = free_port(), free_port()
        with running(
            modelpilot_serve(fresh_copy(registry, self.workdir, "grpcio"), http, grpc),
            f"http://127.0.0.1:{http}/v2/health/ready",
            env=modelpilot_env(grpc_server="grpcio"),
        ):
            self.sweep(f"{GRPCIO_LABEL} {MONITORING_LABEL}", http, grpc, ours=True, rest=False)

    def fastapi(self) -> None:
        for model, path in self.paths.items():
            port = free_port()
            with running(
                [sys.executable, str(BENCH / "fastapi_baseline.py"), str(path), str(port)],
                f"http://127.0.0.1:{port}/docs",
            ):
                url = f"http://127.0.0.1:{port}/predict"
                for c in self.levels:
                    rps, p50, p99, errors = wrk(url, self.simple, c, self.args.seconds)
                    label = "FastAPI (plain endpoint)"
                    self.record(Point(label, model, "http", c, rps, p50, p99, errors))

    def grpc_ceiling(self) -> None:
        """grpc.aio answering a canned response: the bound on any grpc.aio server here."""
        grpc, http = free_port(), free_port()
        with running(
            [sys.executable, str(BENCH / "grpc_ceiling.py"), str(grpc), str(http)],
            f"http://127.0.0.1:{http}/",
        ):
            url = f"http://127.0.0.1:{grpc}/inference.GRPCInferenceService/ModelInfer"
            for model, body in self.grpc_bodies.items():
                rps, p50, p99, errors = h2load_grpc(url, body, 16, self.args.seconds)
                self.record(Point(GRPC_CEILING, model, "grpc", 16, rps, p50, p99, errors))

    def mlserver(self, binary: Path) -> None:
        for batching in (False, True):
            http, grpc = free_port(), free_port()
            repo = mlserver_repo(self.workdir, self.paths, batching, http, grpc)
            label = "MLServer 1.7" + (" + adaptive batching" if batching else "")
            with running(
                [str(binary), "start", str(repo)],
                f"http://127.0.0.1:{http}/v2/health/ready",
                cwd=repo,
            ):
                wait_models_ready(http, list(self.paths))
                self.sweep(label, http, grpc)

    def cold_start(self, reference: Path, binary: Path | None) -> None:
        """Process start to ready, with 10 models registered (with reference profiles)."""
        registry10 = self.workdir / "registry10"
        for i in range(5):
            for name, path in self.paths.items():
                register(registry10, f"{name}{i}", path, reference)
        http = free_port()
        with running(
            modelpilot_serve(registry10, http, free_port(), quiet=False),
            f"http://127.0.0.1:{http}/v2/health/ready",
            env=modelpilot_env(),
        ) as server:
            self.cold[f"ModelPilot {MONITORING_LABEL}"] = server.ready_seconds
        if binary is not None:
            http = free_port()
            repo = mlserver_repo(self.workdir, self.paths, False, http, free_port(), copies=5)
            started = time.perf_counter()
            with running(
                [str(binary), "start", str(repo)],
                f"http://127.0.0.1:{http}/v2/health/ready",
                cwd=repo,
            ):
                wait_models_ready(http, [f"{n}{i}" for n in self.paths for i in range(5)])
                self.cold["MLServer 1.7"] = time.perf_counter() - started


def v2_body(workdir: Path, row: list[float]) -> Path:
    body = workdir / "v2.json"
    tensor = {"name": "input-0", "shape": [1, FEATURES], "datatype": "FP64", "data": row}
    body.write_text(json.dumps({"inputs": [tensor]}))
    return body


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration per point")
    parser.add_argument(
        "--concurrency", default="1,16,64", help="comma-separated connection counts"
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 s per point at 16 connections, 3 rounds"
    )
    parser.add_argument("--skip-mlserver", action="store_true", help="leave MLServer out")
    parser.add_argument(
        "--only", choices=report.SECTIONS, help="measure one section, keep the others"
    )
    parser.add_argument(
        "--rounds", type=int, help="rounds of the monitoring comparison (default 12, quick 3)"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.concurrency = 3.0, "16"
    rounds = args.rounds or (3 if args.quick else 12)
    if rounds < 2:
        parser.error("--rounds must be at least 2")
    turn_seconds = 2.0 if args.quick else MONITORING_TURN_SECONDS
    sections = [args.only] if args.only else list(report.SECTIONS)
    tools = {"comparison": ("wrk", "h2load"), "monitoring": ("wrk",), "instructions": ("h2load",)}
    for tool in sorted({tool for section in sections for tool in tools[section]}):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: apt-get install wrk nghttp2-client")
    command = shlex.join(["python", "bench/run.py", *sys.argv[1:]])
    when = time.strftime("%Y-%m-%d", time.gmtime())
    written: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="modelpilot-bench-") as tmp:
        workdir = Path(tmp)
        paths, reference = train(workdir)
        registry = workdir / "registry"
        for name, path in paths.items():
            register(registry, name, path, reference)
        if "comparison" in sections:
            comparison = Comparison(args, workdir, paths)
            comparison.modelpilot(registry)
            comparison.fastapi()
            comparison.grpc_ceiling()
            binary = None if args.skip_mlserver else ensure_mlserver()
            if binary is not None:
                comparison.mlserver(binary)
            comparison.cold_start(reference, binary)
            written["comparison"] = report.render_comparison(
                comparison.points, comparison.cold, command, when, args.seconds, FEATURES
            )
            report.write(args.output, written)  # keep what took minutes, whatever comes next
        if "monitoring" in sections:
            row = np.round(np.random.default_rng(1).normal(size=FEATURES), 4).tolist()
            models = ["forest", "logreg"]
            result = monitoring_cost.measure(
                registry, workdir, v2_body(workdir, row), models, turn_seconds, rounds
            )
            written["monitoring"] = monitoring_table.render(result, command, when)
            report.write(args.output, written)
        if "instructions" in sections:
            if monitoring_instructions.available():
                row = np.round(np.random.default_rng(1).normal(size=FEATURES), 4).tolist()
                counted = monitoring_instructions.measure(
                    registry, workdir, v2_body(workdir, row), ["forest", "logreg"]
                )
                written["instructions"] = monitoring_instructions.render(counted, command, when)
            else:
                print("valgrind is not installed: no instruction counts", file=sys.stderr)
    print(report.write(args.output, written))


if __name__ == "__main__":
    main()
