"""Several server processes on the same ports, restarted when one dies."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue
from pathlib import Path
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from modelpilot.config import Settings
from modelpilot.errors import ModelPilotError
from modelpilot.monitoring.siblings import prometheus_dir, retired_snapshot
from modelpilot.registry.refs import ModelRef
from modelpilot.server.sockets import bound_socket

logger = logging.getLogger("modelpilot.supervisor")

YOUNG_SECONDS = 30.0
"""A worker that dies sooner than this after it started is taken to have failed at start-up.
By the clock, because the supervisor cannot ask one worker whether it is ready: the workers
share one port. Long enough for loading large models, short next to a worker's life."""


RETRY_SECONDS = 60.0
"""How often a worker that keeps failing at start-up is started again while the others serve."""


def serving_mark(shared: Path, pid: int) -> Path:
    """The file in the workers' shared directory by which worker ``pid`` tells the supervisor
    that it serves: its models are loaded and its port listens (``runner.serve_async``)."""
    return shared / f"worker-{pid}.serving"


PR_SET_PDEATHSIG = 1
"""prctl(2)'s option: the signal the kernel sends a process when its parent dies."""


def follow_supervisor(supervisor: int) -> bool:
    """Have the kernel send this process SIGTERM when ``supervisor``, its parent, dies; False
    if it has died already.

    A supervisor killed outright (SIGKILL, the OOM killer) left its workers serving, adopted by
    init, and a new ``serve --workers`` on the same port then shared it with them
    (SO_REUSEPORT): two generations answered at once. On SIGTERM a worker drains (not ready,
    for MODELPILOT_SHUTDOWN_DRAIN_SECONDS), finishes what is in flight and exits, as when the
    supervisor passes one on.

    Linux only (prctl's PR_SET_PDEATHSIG, through ctypes); elsewhere, or if prctl refuses,
    a worker outlives a killed supervisor as before. The kernel signals for a parent that
    dies after this call, and only when the thread that started the process ends: the
    supervisor starts every worker from the thread it runs in, which ends with it. A parent
    gone before the call shows in ``getppid()``: this process has been adopted by then.
    """
    if sys.platform != "linux":
        return True
    why = None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        why = "this C library has no prctl"
    else:
        args = (signal.SIGTERM, 0, 0, 0)  # prctl is variadic: each as the unsigned long it takes
        if prctl(PR_SET_PDEATHSIG, *(ctypes.c_ulong(a) for a in args)) != 0:
            why = os.strerror(ctypes.get_errno())
    if why is not None:
        logger.warning(
            "worker pid %d will not stop by itself if its supervisor is killed: "
            "prctl(PR_SET_PDEATHSIG) failed (%s)",
            os.getpid(),
            why,
        )
    return os.getppid() == supervisor


def _worker(
    settings_json: str,
    models: list[str],
    log_level: str,
    errors: SimpleQueue[tuple[int, str]],
    supervisor: int,
) -> None:
    from modelpilot.server.logs import configure_logging

    configure_logging(log_level)
    settings = Settings.model_validate_json(settings_json)
    # First: a worker whose supervisor died while it started has nobody to serve for.
    if not follow_supervisor(supervisor):
        logger.warning(
            "worker %d not starting: its supervisor (pid %d) is gone",
            settings.worker_index,
            supervisor,
        )
        return
    from modelpilot.server.runner import serve

    try:
        serve(settings, [ModelRef.parse(m) for m in models], reuse_port=True)
    except ModelPilotError as exc:
        # One line that says what to fix (a missing model, a bad registry): a traceback per
        # worker and restart would bury it. The supervisor repeats it if it gives up.
        logger.error("worker %d stopped: %s", settings.worker_index, exc.message)
        errors.put((settings.worker_index, exc.message))
        sys.exit(1)


class Supervisor:
    """Starts ``workers`` processes that share the HTTP and gRPC ports through SO_REUSEPORT.

    The kernel spreads new connections across the processes. A worker that exits on its own
    is started again, with a growing pause if it keeps dying young. One that dies young
    ``give_up_after`` times in a row fails at start-up (a bad setting, a model that does not
    load): while another worker serves, it is started again every ``RETRY_SECONDS`` and the
    others serve on; else the supervisor stops every worker and raises the worker's error,
    rather than start it again forever. SIGTERM or SIGINT is passed on to every worker as it
    came, SIGHUP as SIGTERM unless it was ignored at start (``nohup``); on SIGTERM a worker
    serves on, not ready, for the drain period. So is a second one (which ends that period,
    if it comes a second or more after the first: a worker also
    signalled directly, by systemd or ``kill -TERM -PGID``, takes the supervisor's copy for the
    same request, ``runner.StopRequests``); the workers finish what is in flight and exit, and the
    supervisor waits for them. A supervisor that dies without passing it on (SIGKILL)
    has the kernel send SIGTERM to its workers instead, on Linux (``follow_supervisor``).
    """

    def __init__(
        self,
        settings: Settings,
        models: Sequence[ModelRef],
        workers: int,
        *,
        give_up_after: int = 5,
        young_seconds: float = YOUNG_SECONDS,
    ) -> None:
        self.settings = settings
        self.shared: Path | None = None
        self.models = [str(m) for m in models]
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, BaseProcess] = {}
        self._started_at: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        """Deaths in a row of each slot's worker, each within ``young_seconds`` of starting."""
        self._errors: SimpleQueue[tuple[int, str]] | None = None
        """What workers said as they failed: their slot and ``ModelPilotError`` message."""
        self._said: dict[int, str] = {}
        """The last of those by slot, until the supervisor sees that worker dead."""
        self.give_up_after = give_up_after
        self.young_seconds = young_seconds
        self._stopping = False
        self._signal = signal.SIGTERM
        """What the workers are told to stop with: the signal the supervisor got first."""
        self._told = False
        self.restarts = 0

    def _start(self, slot: int) -> None:
        settings = self.settings.model_copy(update={"worker_index": slot})
        process = self._context.Process(
            target=_worker,
            args=(
                settings.model_dump_json(),
                self.models,
                self.settings.log_level,
                self._errors,
                os.getpid(),
            ),
            name=f"modelpilot-worker-{slot}",
            daemon=False,
        )
        process.start()
        self._processes[slot] = process
        self._started_at[slot] = time.monotonic()
        logger.info("worker %d started (pid %s)", slot, process.pid)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self._told:
            self._tell(signum)  # a second signal: it ends the workers' drain
        elif not self._stopping:
            self._signal = signal.Signals(signum)
        self._stopping = True

    def _hangup(self, signum: int, frame: FrameType | None) -> None:
        """SIGHUP stops the workers as SIGTERM does (drained); it killed the supervisor."""
        logger.info("SIGHUP: stopping as on SIGTERM")
        self._stop(signal.SIGTERM, frame)

    def run(self) -> int:
        reservation = self._settle_ports()
        try:
            return self._run_in_shared_dir()
        finally:
            if reservation is not None:
                reservation.close()

    def _settle_ports(self) -> socket.socket | None:
        """Check the ports are free to share, and turn an HTTP port of 0 into one port for
        every worker; the socket that holds that port for them, if one was chosen.

        Each worker asked the system for a free port of its own: two workers served on two
        ports, and clients reached one of them. Checked early so that a port taken by
        something that is not sharing it fails clearly, once, rather than in every worker.
        """
        host = self.settings.host
        for port in (self.settings.http_port, self.settings.grpc_port):
            if port:
                # Bound, not listening: the kernel deals a listening one connections.
                bound_socket(host, port, reuse_port=True).close()
        reservation = None
        if not self.settings.http_port:
            reservation = reserve_port(host)
            port = reservation.getsockname()[1]
            self.settings = self.settings.model_copy(update={"http_port": port})
        logger.info(
            "%d workers share http://%s:%d%s",
            self.workers,
            host,
            self.settings.http_port,
            f" and gRPC on port {self.settings.grpc_port}" if self.settings.grpc_port else "",
        )
        return reservation

    def _run_in_shared_dir(self) -> int:
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
        handlers = {
            signum: signal.signal(signum, self._stop) for signum in (signal.SIGTERM, signal.SIGINT)
        }
        if hangup_stops():
            handlers[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._hangup)
        self._errors = self._context.SimpleQueue()
        try:
            failed = self._watch()
            self._shutdown()
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            self._errors.close()
        if failed is not None:
            raise ModelPilotError(failed)
        return 0

    def _watch(self) -> str | None:
        """Keep the workers running until told to stop (None), or until one fails at start-up
        ``give_up_after`` times in a row while no other worker serves (what to tell the
        user)."""
        for slot in range(self.workers):
            self._start(slot)
        due: dict[int, float] = {}
        """Slots whose worker died, and when each is started again: each waits on its own,
        so that one slot's pause holds up no other's restart."""
        while not self._stopping:
            time.sleep(0.2)
            for slot, process in list(self._processes.items()):
                if slot in due or process.is_alive() or self._stopping:
                    continue
                process.join()
                lived = time.monotonic() - self._started_at[slot]
                young = lived < self.young_seconds
                self._failures[slot] = self._failures.get(slot, 0) + 1 if young else 0
                self._forget(process, slot)
                why = self._why(slot)
                failures = self._failures[slot]
                if failures < self.give_up_after:
                    pause = min(10.0, 0.5 * 2 ** max(failures - 1, 0))
                    logger.error(
                        "worker %d (pid %s) exited with %s after %.1f s; restarting in %.1f s",
                        slot,
                        process.pid,
                        process.exitcode,
                        lived,
                        pause,
                    )
                elif self._serving_besides(slot):
                    pause = RETRY_SECONDS
                    logger.error(
                        "worker %d cannot start: %s (%s); the other workers serve on without "
                        "it, and it is started again every %.0f s",
                        slot,
                        why or "its errors are above",
                        self._deaths(slot),
                        pause,
                    )
                else:
                    del self._processes[slot]
                    return self._giving_up(slot, why)
                due[slot] = time.monotonic() + pause
            for slot, when in list(due.items()):
                if when <= time.monotonic() and not self._stopping:
                    del due[slot]
                    self.restarts += 1
                    self._start(slot)
        return None

    def _serving_besides(self, slot: int) -> bool:
        """Whether a worker of another slot is alive and serving (it has marked itself so,
        ``serving_mark``): then one slot that cannot start (its models do not load, the
        registry does not answer it) must not take down the ones that serve. Stopping them
        all turned a worker's crash into an outage of every model."""
        assert self.shared is not None
        return any(
            other != slot
            and process.is_alive()
            and process.pid is not None
            and serving_mark(self.shared, process.pid).exists()
            for other, process in self._processes.items()
        )

    def _why(self, slot: int) -> str | None:
        """The error the dead worker of ``slot`` said, if it said one. Read at every death, so
        that the queue's pipe never fills (a worker would block on it as it exits)."""
        assert self._errors is not None
        while not self._errors.empty():
            index, message = self._errors.get()
            self._said[index] = message
        return self._said.pop(slot, None)

    def _giving_up(self, slot: int, why: str | None) -> str:
        """The one line the user is told when a worker keeps failing at start-up."""
        how = self._deaths(slot)
        if why is None:
            return f"the workers keep dying: {how} (its errors are above)"
        return f"the workers cannot start: {why} ({how})"

    def _deaths(self, slot: int) -> str:
        return (
            f"worker {slot} died {self._failures[slot]} times in a row, each time within "
            f"{self.young_seconds:.0f} s of starting"
        )

    def _shutdown(self) -> None:
        logger.info("stopping %d workers", len(self._processes))
        self._told = True
        self._tell(self._signal)
        drain, grace = self.settings.shutdown_drain_seconds, self.settings.shutdown_grace_seconds
        deadline = time.monotonic() + drain + grace + 10
        for process in self._processes.values():
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()

    def _tell(self, signum: int) -> None:
        for process in list(self._processes.values()):
            if process.is_alive() and process.pid is not None:
                with_signal(process.pid, signum)

    def _forget(self, process: BaseProcess, slot: int) -> None:
        """A dead worker's live gauges go; its counters stay summed, and its monitoring
        snapshot is left to the worker that takes its ``slot`` (``WorkerExchange.inherit``)."""
        if process.pid is None or self.shared is None:
            return
        serving_mark(self.shared, process.pid).unlink(missing_ok=True)
        mark_process_dead(process.pid, str(prometheus_dir(self.shared)))  # type: ignore[no-untyped-call]
        with contextlib.suppress(FileNotFoundError):
            snapshot = self.shared / f"worker-{process.pid}.snapshot"
            snapshot.replace(retired_snapshot(self.shared, slot, process.pid))


def reserve_port(host: str) -> socket.socket:
    """A socket bound to a free port of ``host``, not listening, that workers may share.

    Held while the supervisor runs, so that nothing else takes the port between the choice
    and the workers' binding, or while every worker is being restarted. Not listening, it
    is no member of the port's group of listeners: the kernel hands it no connection.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, 0))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}: {exc.strerror or exc}") from None
    return sock


def hangup_stops() -> bool:
    """Whether SIGHUP should stop this process gracefully: unless it was ignored at start
    (``nohup``, or a supervisor's worker of such a server), as then the server is meant to
    outlive its terminal. Its default action killed the server at once, undrained, with the
    last round of the inference log."""
    return signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN


def with_signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
