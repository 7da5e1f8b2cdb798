"""What model monitoring costs ModelPilot in serving throughput: on, on in a thread, on
without log, against off.

Each configuration is measured side by side with a server of its own with monitoring off, its
partner: the two take the same load at the same time, for a short turn, on one and the same
core (their load generators, and the monitoring process, niced as always, on the others), so
that whatever else the shared machine does in that turn slows both alike, and the core's time
is shared between them evenly (see ``OWN_SESSION``). The ratio of the two is the turn's figure;
the median over the rounds is reported. Partners are loaded only with each other, so both have
had the same history when a turn starts (a server that has been idle runs its first requests
slower than one kept busy). A pair of two servers with monitoring off takes its turns like the
others, as a control: its ratio shows how far from 1.00 the method itself lands. Every server
is started ``LIVES`` times in a run (see there), the rounds split between its lives.

Every turn is taken twice: with the two servers scheduled as Linux does by default
(``SHARED``: it switches between them every few milliseconds, and each switch costs a server
a refill of its caches) and, where this process may, in long slices (``SLICED``, ``SCHED_RR``),
closer to a server with a core of its own.

At the end of each life the benchmark checks that each configuration took effect: drift
windows filled (or ``/api/monitoring`` absent when off) and inference log rows written (or
not).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from load import wrk
from servers import Server, free_port, fresh_copy, modelpilot_env, modelpilot_serve, running

from modelpilot.monitoring.monitor import SHIP_SECONDS

CONNECTIONS = 16
WARMUP_SECONDS = 1.0
ROUND_MS = SHIP_SECONDS * 1000
"""How often a server hands its answered calls to its monitoring process, by default."""
LIVES = 6
"""Times each server is started in a run, the rounds split between its lives. Two servers
of the same configuration do not run equally fast for as long as they live (the control
pair has come out from 0.98x to 1.01x from run to run, both models alike): whatever makes
one faster, likely how its memory happened to be laid out, stays with the process. Within
one life, a pair's rounds agree to about a percent; from life to life its median moves by
two or three (four lives of monitoring on against off, in a scratch run: 1.024-1.045x). So
the rounds are spread over six lives rather than three: six partners per configuration."""
OWN_SESSION = False
"""Whether each server runs in a session of its own: no, in this benchmark's (each in a
process group of its own, which is what stopping it needs).

Where Linux's autogroup scheduling is on (the default on most distributions, for processes
outside containers' cgroups), each session is a scheduling group of its own. A server in a
session of its own, as this benchmark once started them, shares its group with its
monitoring process, and lost throughput against a partner without one as that process
worked, although it worked on the other core, which was mostly idle: in a scratch run (the
forest, four lives of four 4-s rounds) monitoring on came out at 0.946x against off, and a
monitoring process that read the rounds and dropped them at 0.973x; with autogroup turned
off (``/proc/sys/kernel/sched_autogroup_enabled``), at 0.975x and 0.983x. (The scheduler
spreads a group's weight over the cores its tasks are busy on; whether that is all of it,
those runs do not say: running the monitoring process as ``SCHED_IDLE`` did not help.)
In one session all processes are scheduled as one group, so each server's share of the core
is its busy thread's, whatever its monitoring process does elsewhere, as for a server with
a core of its own; the monitoring process's CPU time is reported beside it (the total
columns). The share is then per thread, though: a server that keeps a second thread busy, as
monitoring in a thread does, gets more than half of the core, and its requests/s flatter it
(0.96x in the first run so, against 1.073x CPU per request); read its CPU per request."""
EVERY_CALL_INLINE = str(10**9)
"""``MODELPILOT_INLINE_PREDICT_BELOW_US`` that keeps every model call on the event loop.

Both bench models' calls take 30-50 µs and run there at full speed; on half a core their
wall time doubles as the core is shared, and the server would move them to its thread pool."""


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    settings: dict[str, str]
    """``MODELPILOT_*`` variables set for the server (lower-case, without the prefix)."""


MONITORED = (
    Variant("on", "monitoring on (default)", {}),
    Variant("thread", "monitoring on, in a thread", {"monitor_process": "false"}),
    Variant("nolog", "monitoring on, inference log off", {"inference_log": "false"}),
    Variant("sampled", "monitoring on, a fifth of calls watched", {"monitor_sample_rate": "0.2"}),
    Variant(
        "hundredth", "monitoring on, a hundredth of calls watched", {"monitor_sample_rate": "0.01"}
    ),
)
OFF = Variant("off", "monitoring off", {"monitoring": "false"})
CONTROL = Variant("control", "monitoring off (control: a second server)", OFF.settings)
VARIANTS = (*MONITORED, CONTROL)
"""Each measured side by side with ``OFF``."""


@dataclass
class Usage:
    """One server's share of a turn."""

    rps: float
    errors: int
    server_us: float
    """CPU time (all threads) of the server's own process per request answered, in µs."""
    helpers_us: float
    """CPU time of its other processes (the monitoring process) per request answered."""
    handover_us: float = 0.0
    """CPU time its event loop spent handing calls to the monitoring process, per request
    answered (``modelpilot_monitor_handover_seconds_total``; part of ``server_us``)."""

    @property
    def cpu_us(self) -> float:
        return self.server_us + self.helpers_us


SHARED, SLICED = "shared", "sliced"
"""How the two servers of a turn share their core: by Linux's default scheduler, which
switches between them every few milliseconds, or in long slices (``SCHED_RR``, 100 ms each
unless a server waits for work first), as a server with a core to itself would run."""


@dataclass
class Turn:
    variant: str
    model: str
    round: int
    measured: Usage
    off: Usage
    """Monitoring off's server, loaded at the same time."""
    scheduling: str = SHARED
    life: int = 0


@dataclass
class MonitoringCost:
    seconds: float
    rounds: int
    lives: int = 1
    """Times every server was started (the rounds split between its lives)."""
    turns: list[Turn] = field(default_factory=list)
    drift_rows: dict[str, int] = field(default_factory=dict)
    """Rows in the drift windows (all models) at the end of the last life, by variant."""
    log_rows: dict[str, int] = field(default_factory=dict)
    """Inference log rows written in all lives, by variant."""

    def of(
        self, variant: str, model: str, scheduling: str = SHARED, life: int | None = None
    ) -> list[Turn]:
        """The turns of ``variant`` on ``model`` scheduled so (in one life, or in all)."""
        return [
            t
            for t in self.turns
            if (t.variant, t.model, t.scheduling) == (variant, model, scheduling)
            and (life is None or t.life == life)
        ]

    def paired(
        self,
        variant: str,
        model: str,
        value: Callable[[Usage], float],
        scheduling: str = SHARED,
        life: int | None = None,
    ) -> float:
        """Median over the rounds (of one life, or of all) of ``value`` against monitoring
        off's in the same turn."""
        turns = self.of(variant, model, scheduling, life)
        return statistics.median(value(t.measured) / value(t.off) for t in turns)

    @property
    def schedulings(self) -> list[str]:
        return list(dict.fromkeys(t.scheduling for t in self.turns))


def measure(
    registry: Path,
    workdir: Path,
    body: Path,
    models: list[str],
    seconds: float,
    rounds: int,
    lives: int = LIVES,
) -> MonitoringCost:
    """Serve ``models`` from ``registry`` in every configuration, ``rounds`` turns each, the
    servers started ``lives`` times (the rounds split evenly between their lives)."""
    lives = max(1, min(lives, rounds))
    result = MonitoringCost(seconds, rounds, lives)
    schedulings = [SHARED, SLICED] if can_slice() else [SHARED]
    bounds = [rounds * life // lives for life in range(lives + 1)]
    for life in range(lives):
        _live(
            result,
            registry,
            workdir,
            body,
            models,
            range(bounds[life], bounds[life + 1]),
            life,
            schedulings,
        )
    return result


def _live(
    result: MonitoringCost,
    registry: Path,
    workdir: Path,
    body: Path,
    models: list[str],
    rounds: range,
    life: int,
    schedulings: list[str],
) -> None:
    """One life of the servers: start them all, warm them up, take ``rounds``, check that
    each configuration took effect, stop them."""
    seconds = result.seconds
    cores = sorted(os.sched_getaffinity(0))
    serving, loading = {cores[-1]}, set(cores[:-1] or cores)
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        servers: dict[tuple[str, str], tuple[Variant, Server, int, Path]] = {}
        for variant in VARIANTS:
            for side, configuration in (("measured", variant), ("off", OFF)):
                copy = fresh_copy(registry, workdir, f"monitoring-{variant.key}-{side}-{life}")
                http = free_port()
                server = stack.enter_context(
                    running(
                        modelpilot_serve(copy, http, free_port()),
                        f"http://127.0.0.1:{http}/v2/health/ready",
                        env=modelpilot_env(
                            **configuration.settings, inline_predict_below_us=EVERY_CALL_INLINE
                        ),
                        cpus=serving,
                        own_session=OWN_SESSION,
                    )
                )
                servers[variant.key, side] = (configuration, server, http, copy)

        def load(key: tuple[str, str], model: str, seconds: float) -> Usage:
            _, server, http, _ = servers[key]
            handed = _handover_seconds(http)  # read outside the CPU times' span
            before = server.cpu_seconds(), server.own_cpu_seconds()
            rps, _, _, errors = wrk(_url(http, model), body, CONNECTIONS, seconds, loading)
            total = server.cpu_seconds() - before[0]
            own = server.own_cpu_seconds() - before[1]
            handed = _handover_seconds(http) - handed
            answered = max(rps * seconds, 1)
            return Usage(
                rps,
                errors,
                own / answered * 1e6,
                (total - own) / answered * 1e6,
                handed / answered * 1e6,
            )

        def turn(
            variant: Variant, model: str, seconds: float, scheduling: str = SHARED
        ) -> tuple[Usage, Usage]:
            for side in ("measured", "off"):
                schedule(servers[variant.key, side][1], scheduling)
            measured = pool.submit(load, (variant.key, "measured"), model, seconds)
            off = pool.submit(load, (variant.key, "off"), model, seconds)
            return measured.result(), off.result()

        for _, server, _, _ in servers.values():
            for pid in server.pids():  # its monitoring process, beside wrk (niced, as always)
                if pid != server.pid:
                    with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                        os.sched_setaffinity(pid, loading)
        for variant in VARIANTS:
            for model in models:
                turn(variant, model, WARMUP_SECONDS)
        for round_ in rounds:
            order = VARIANTS if round_ % 2 == 0 else tuple(reversed(VARIANTS))
            for model, variant, scheduling in itertools.product(models, order, schedulings):
                measured, off = turn(variant, model, seconds, scheduling)
                result.turns.append(
                    Turn(variant.key, model, round_, measured, off, scheduling, life)
                )
                print(
                    f"monitoring {variant.key:7} {scheduling:6} round {round_:2} {model:7} "
                    f"{measured.rps:7.0f} req/s, off {off.rps:7.0f} req/s; CPU "
                    f"{measured.server_us:5.1f} + {measured.helpers_us:4.1f} us, "
                    f"off {off.cpu_us:5.1f} us per request",
                    file=sys.stderr,
                )
        for _, server, _, _ in servers.values():
            schedule(server, SHARED)
        time.sleep(2.5)  # one evaluation interval, so the reports include the last requests
        for configuration, _, http, _ in servers.values():
            result.drift_rows[configuration.key] = _drift_rows(http, models, configuration)
    for configuration, _, _, copy in servers.values():  # stopped: their logs are complete
        logged = _log_rows(copy, configuration)
        result.log_rows[configuration.key] = result.log_rows.get(configuration.key, 0) + logged
        shutil.rmtree(copy, ignore_errors=True)


def can_slice() -> bool:
    """Whether this process may run servers in long slices (``SCHED_RR`` needs privileges)."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    except (PermissionError, AttributeError):
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


def schedule(server: Server, scheduling: str) -> None:
    """Every thread of the server's own process (not its monitoring process) by
    ``scheduling``; threads and processes it starts later get the default."""
    if scheduling == SLICED:
        policy, priority = os.SCHED_RR | os.SCHED_RESET_ON_FORK, 1
    else:
        policy, priority = os.SCHED_OTHER, 0
    for thread in server.threads():
        with contextlib.suppress(ProcessLookupError):  # ended meanwhile
            os.sched_setscheduler(thread, policy, os.sched_param(priority))


def _url(http: int, model: str) -> str:
    return f"http://127.0.0.1:{http}/v2/models/{model}/infer"


def _handover_seconds(http: int) -> float:
    """The server's ``modelpilot_monitor_handover_seconds_total`` (0 when monitoring is off)."""
    text = httpx.get(f"http://127.0.0.1:{http}/metrics").text
    match = re.search(r"^modelpilot_monitor_handover_seconds_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _drift_rows(http: int, models: list[str], variant: Variant) -> int:
    """Rows in the models' drift windows; raises if the configuration did not take effect.

    (Read an evaluation interval after the last requests, so the reports include them.)"""
    if variant.settings.get("monitoring") == "false":
        status = httpx.get(f"http://127.0.0.1:{http}/api/monitoring").status_code
        if status != 404:
            raise RuntimeError(f"monitoring was meant to be off, but /api/monitoring is {status}")
        return 0
    rows = 0
    for model in models:
        report = httpx.get(f"http://127.0.0.1:{http}/api/monitoring/{model}").json()
        drift = report.get("drift") or {}
        if not drift.get("window_rows"):
            raise RuntimeError(f"no drift window for {model}: is its reference profile missing?")
        rows += int(drift["window_rows"])
    return rows


def _log_rows(registry: Path, variant: Variant) -> int:
    """Inference log rows the stopped server left in ``registry``; checks they fit ``variant``."""
    path = registry / "inference-log.db"
    rows = 0
    if path.exists():
        with sqlite3.connect(path) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            if "inference_log_batches" in tables:
                query = "SELECT coalesce(sum(size), 0) FROM inference_log_batches"
                rows = int(db.execute(query).fetchone()[0])
    monitored = variant.settings.get("monitoring") != "false"
    if (rows > 0) != (monitored and variant.settings.get("inference_log") != "false"):
        raise RuntimeError(f"{variant.label}: the inference log holds {rows} rows")
    return rows
