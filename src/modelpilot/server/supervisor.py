"""Several server processes on the same ports, restarted when one dies."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from modelpilot.config import Settings
from modelpilot.monitoring.siblings import prometheus_dir, retired_snapshot
from modelpilot.registry.refs import ModelRef
from modelpilot.server.sockets import bind_socket

logger = logging.getLogger("modelpilot.supervisor")


def _worker(settings_json: str, models: list[str], log_level: str) -> None:
    from modelpilot.server.logs import configure_logging
    from modelpilot.server.runner import serve

    configure_logging(log_level)
    settings = Settings.model_validate_json(settings_json)
    serve(settings, [ModelRef.parse(m) for m in models], reuse_port=True)


class Supervisor:
    """Starts ``workers`` processes that share the HTTP and gRPC ports through SO_REUSEPORT.

    The kernel spreads new connections across the processes. A worker that exits on its own
    is started again, with a growing pause if it keeps dying young. SIGTERM or SIGINT is passed
    on to every worker, which drains and exits; the supervisor waits for them.
    """

    def __init__(self, settings: Settings, models: Sequence[ModelRef], workers: int) -> None:
        self.settings = settings
        self.shared: Path | None = None
        self.models = [str(m) for m in models]
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, BaseProcess] = {}
        self._started_at: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._stopping = False
        self.restarts = 0

    def _start(self, slot: int) -> None:
        settings = self.settings.model_copy(update={"worker_index": slot})
        process = self._context.Process(
            target=_worker,
            args=(settings.model_dump_json(), self.models, self.settings.log_level),
            name=f"modelpilot-worker-{slot}",
            daemon=False,
        )
        process.start()
        self._processes[slot] = process
        self._started_at[slot] = time.monotonic()
        logger.info("worker %d started (pid %s)", slot, process.pid)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        # Fail early, and clearly, if the port is taken by something that is not sharing it.
        bind_socket(self.settings.host, self.settings.http_port, reuse_port=True).close()
        if self.settings.grpc_port:
            bind_socket(self.settings.host, self.settings.grpc_port, reuse_port=True).close()
        # The workers' shared directory (owner-only): metrics in prometheus_client's
        # multiprocess mode, and monitoring snapshots (see monitoring.siblings).
        self.shared = Path(tempfile.mkdtemp(prefix="modelpilot-workers-"))
        try:
            prometheus_dir(self.shared).mkdir()
            self.settings = self.settings.model_copy(update={"worker_dir": self.shared})
            # prometheus_client picks its storage when imported: spawned workers inherit this.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prometheus_dir(self.shared))
            return self._supervise()
        finally:
            shutil.rmtree(self.shared, ignore_errors=True)

    def _supervise(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for slot in range(self.workers):
            self._start(slot)
        while not self._stopping:
            time.sleep(0.2)
            for slot, process in list(self._processes.items()):
                if process.is_alive() or self._stopping:
                    continue
                lived = time.monotonic() - self._started_at[slot]
                self._failures[slot] = self._failures.get(slot, 0) + 1 if lived < 10 else 1
                pause = min(10.0, 0.5 * 2 ** (self._failures[slot] - 1))
                logger.error(
                    "worker %d (pid %s) exited with %s after %.1f s; restarting in %.1f s",
                    slot,
                    process.pid,
                    process.exitcode,
                    lived,
                    pause,
                )
                process.join()
                self._forget(process, slot)
                deadline = time.monotonic() + pause
                while time.monotonic() < deadline and not self._stopping:
                    time.sleep(0.05)
                if not self._stopping:
                    self.restarts += 1
                    self._start(slot)
        return self._shutdown()

    def _shutdown(self) -> int:
        logger.info("stopping %d workers", len(self._processes))
        for process in self._processes.values():
            if process.is_alive() and process.pid is not None:
                with_signal(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds + 10
        for process in self._processes.values():
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
        return 0

    def _forget(self, process: BaseProcess, slot: int) -> None:
        """A dead worker's live gauges go; its counters stay summed, and its monitoring
        snapshot is left to the worker that takes its ``slot`` (``WorkerExchange.inherit``)."""
        if process.pid is None or self.shared is None:
            return
        mark_process_dead(process.pid, str(prometheus_dir(self.shared)))  # type: ignore[no-untyped-call]
        with contextlib.suppress(FileNotFoundError):
            snapshot = self.shared / f"worker-{process.pid}.snapshot"
            snapshot.replace(retired_snapshot(self.shared, slot, process.pid))


def with_signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
