"""Starting and stopping the servers under test, all on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
MLSERVER_VENV = BENCH / ".venv-mlserver"
# uvloop 0.22 broke MLServer 1.7 worker start-up (get_event_loop in a fresh process).
MLSERVER_PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"]


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


@dataclass(frozen=True)
class Server:
    """A server started by :func:`running`."""

    ready_seconds: float
    """Process start to ready."""
    pid: int
    """Its process, which leads a process group of its own (with any workers it starts)."""

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by every process of the server's group."""
        return sum(_cpu_seconds(fields) for _, fields in self._group())

    def own_cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server's own process (all threads)."""
        return _cpu_seconds(_stat(Path(f"/proc/{self.pid}")))

    def threads(self) -> list[int]:
        """The thread ids of the server's own process."""
        with contextlib.suppress(FileNotFoundError):
            return [int(t) for t in os.listdir(f"/proc/{self.pid}/task")]
        return []

    def pids(self) -> list[int]:
        """Every process of the server's group (the server, its workers, its helpers)."""
        return [pid for pid, _ in self._group()]

    def _group(self) -> Iterator[tuple[int, list[str]]]:
        """(pid, /proc stat fields after the name) of each process in the server's group."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = _stat(entry)
            except OSError:  # gone meanwhile
                continue
            if int(fields[2]) == self.pid:  # process group id
                yield int(entry.name), fields


def _stat(process: Path) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command's name (which may hold spaces)."""
    return (process / "stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(fields: list[str]) -> float:
    """User plus system CPU time in ``_stat``'s fields, in seconds."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pinned(cmd: list[str], cpus: set[int] | None) -> list[str]:
    """``cmd`` run on the cores ``cpus`` only (util-linux's taskset), or as it is."""
    if cpus is None:
        return cmd
    return ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus))), *cmd]


@contextlib.contextmanager
def running(
    cmd: list[str],
    ready_url: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    ready_timeout: float = 120.0,
    cpus: set[int] | None = None,
    own_session: bool = True,
) -> Iterator[Server]:
    """Run a server for the block.

    ``env`` is the whole environment of the server when given, else this process's; ``cpus``
    the cores it (and every process it starts) may run on, when given. The server leads a
    process group of its own, in a session of its own unless ``own_session`` is False: where
    Linux's autogroup scheduling is on, a session is a scheduling group of its own (see
    ``monitoring_cost.OWN_SESSION`` for what that did to two servers sharing a core).
    """
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the server's lifetime
        prefix="bench-server-", suffix=".log", delete=False
    )
    process = subprocess.Popen(
        pinned(cmd, cpus),
        cwd=cwd,
        env=dict(os.environ) if env is None else env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=own_session,
        process_group=None if own_session else 0,
    )
    try:
        try:
            yield Server(wait_ready(ready_url, process, ready_timeout), process.pid)
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


def modelpilot_env(**settings: str) -> dict[str, str]:
    """This environment without any ``MODELPILOT_*`` variable, plus ``settings``.

    So a server runs in its default configuration unless the benchmark says otherwise,
    whatever the shell that started the benchmark had set.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPILOT_")}
    env.update({f"MODELPILOT_{key.upper()}": value for key, value in settings.items()})
    return env


def register(registry: Path, name: str, model: Path, reference: Path | None) -> None:
    """``modelpilot register`` through the CLI, as a user would; alias production."""
    cmd = [sys.executable, "-m", "modelpilot", "register", name, str(model)]
    cmd += ["--registry", str(registry), "--alias", "production"]
    if reference is not None:
        cmd += ["--reference", str(reference)]
    subprocess.run(cmd, check=True, capture_output=True, env=modelpilot_env())


def modelpilot_serve(
    registry: Path, http: int, grpc: int, workers: int = 1, quiet: bool = True
) -> list[str]:
    cmd = [sys.executable, "-m", "modelpilot", "serve", "--registry", str(registry)]
    cmd += ["--host", "127.0.0.1", "--http-port", str(http), "--grpc-port", str(grpc)]
    cmd += ["--workers", str(workers)]
    return cmd + (["--log-level", "warning"] if quiet else [])


def fresh_copy(registry: Path, workdir: Path, label: str) -> Path:
    """A copy of ``registry`` for one server run, so each starts with an empty inference log."""
    copy = workdir / f"registry-{label}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(registry, copy)
    return copy


def ensure_mlserver() -> Path:
    """The ``mlserver`` binary of bench/.venv-mlserver, creating the venv on first use."""
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


def wait_models_ready(http: int, models: list[str], timeout: float = 60.0) -> None:
    """MLServer answers ready before its models have loaded: wait for each of them."""
    deadline = time.time() + timeout
    for model in models:
        url = f"http://127.0.0.1:{http}/v2/models/{model}/ready"
        while httpx.get(url).status_code != 200:
            if time.time() > deadline:
                raise RuntimeError(f"MLServer model {model} not ready after {timeout} s")
            time.sleep(0.05)


def failed_calls(http: int, transport: str) -> int:
    """Requests of ``transport`` that a ModelPilot server answered with an error, so far.

    h2load counts a gRPC call as done whatever its ``grpc-status`` says (the HTTP status of
    a failed call is 200 too), so the server's own counters tell the failures. Calls the
    client gave up (499) are not failures: h2load cancels the ones in flight when its time
    is up.
    """
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{http}/metrics", timeout=30).text
    return round(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "modelpilot_requests"
            for sample in family.samples
            if sample.name == "modelpilot_requests_total"
            and sample.labels.get("transport") == transport
            and sample.labels.get("status") not in ("ok", "499")
        )
    )
