"""Triton's own load generator, ``perf_analyzer`` (it comes with tritonclient), measures a real
``modelpilot serve`` over HTTP and gRPC: it reads each model's configuration and metadata,
makes up inputs from them (strings included), sends them without an error, and reads the
server's side of the measurement from the statistics extension.

The binary needs two shared libraries that tritonclient does not bring: libb64 (Debian's
``libb64-0d``) and the CUDA runtime's libcudart (``pip install nvidia-cuda-runtime-cu12``; it
runs without a GPU). Without them the test is skipped, saying which is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.processes import Server, start, stop


def _environment() -> dict[str, str]:
    """The environment with the CUDA runtime's wheel on the library path, if installed."""
    env = dict(os.environ)
    try:
        from nvidia import cuda_runtime  # type: ignore[import-not-found]
    except ImportError:
        return env
    for root in cuda_runtime.__path__:
        library = Path(root) / "lib"
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(library), env.get("LD_LIBRARY_PATH", "")) if p
        )
    return env


@pytest.fixture(scope="module")
def perf_analyzer() -> tuple[str, dict[str, str]]:
    binary = shutil.which("perf_analyzer", path=str(Path(sys.executable).parent))
    binary = binary or shutil.which("perf_analyzer")
    if binary is None:
        pytest.skip("perf_analyzer is not installed (it comes with tritonclient's wheel)")
    env = _environment()
    probe = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, env=env, timeout=30
    )
    missing = re.search(r"error while loading shared libraries: (\S+):", probe.stderr)
    if missing:
        pytest.skip(
            f"perf_analyzer cannot start: {missing.group(1)} is missing (libb64-0d from "
            "Debian, libcudart from `pip install nvidia-cuda-runtime-cu12`)"
        )
    return binary, env


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    iris_model_path: Path,
    iris_csv: Path,
    shop_files: tuple[Path, Path],
) -> Iterator[Server]:
    registry = Registry.open(tmp_path_factory.mktemp("registry"))
    register_model(registry, "iris", iris_model_path, reference=iris_csv)
    model, reference = shop_files
    register_model(registry, "shop", model, reference=reference, target="bought")
    running = start(registry, "--no-monitoring")
    yield running
    stop(running)
    registry.close()


@pytest.mark.parametrize(
    ("model", "protocol", "batch"),
    [("iris", "http", 1), ("iris", "grpc", 8), ("shop", "http", 4), ("shop", "grpc", 1)],
)
def test_perf_analyzer_measures_the_server(
    perf_analyzer: tuple[str, dict[str, str]], server: Server, model: str, protocol: str, batch: int
) -> None:
    binary, env = perf_analyzer
    port = server.http if protocol == "http" else server.grpc
    command = [
        binary,
        "-m",
        model,
        "-u",
        f"127.0.0.1:{port}",
        "-i",
        protocol,
        "-b",
        str(batch),
        "--concurrency-range",
        "2",
        "--measurement-mode",
        "count_windows",
        "--measurement-request-count",
        "50",
        "--max-trials",
        "3",
        "--stability-percentage",
        "999",
    ]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "error" not in output.lower(), output
    throughput = re.search(r"Throughput: ([\d.]+) infer/sec", output)
    assert throughput is not None and float(throughput.group(1)) > 0, output
    # The server's side, from the statistics extension: the queue and the model's share.
    server_side = re.search(r"queue (\d+) usec .* compute infer (\d+) usec", output)
    assert server_side is not None and int(server_side.group(2)) > 0, output
