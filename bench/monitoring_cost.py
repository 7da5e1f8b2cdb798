"""What model monitoring costs ModelPilot in serving throughput: on, on in a thread, on
without log, off.

Every configuration's server runs for the whole measurement, each from its own copy of the
same registry (whose models carry a reference profile, so drift binning really runs and the
inference log starts empty); only the one being measured gets traffic. Runs are short and
interleaved: round after round, for each model, the configurations take their turn back to
back, in alternating order (on, thread, log off, off, then off, log off, thread, on, ...).
A shared machine's slow spells last longer than a round's turns, so each configuration is
compared with monitoring off in the same round and model, and the figure reported is the
median of those paired ratios. At the end the benchmark checks that each configuration took
effect: drift windows filled (or ``/api/monitoring`` absent when off) and inference log rows
written (or not).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from load import wrk
from servers import Server, free_port, fresh_copy, modelpilot_env, modelpilot_serve, running

CONNECTIONS = 16
WARMUP_SECONDS = 1.0


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    settings: dict[str, str]
    """``MODELPILOT_*`` variables set for the server (lower-case, without the prefix)."""


VARIANTS = (
    Variant("on", "monitoring on (default)", {}),
    Variant("thread", "monitoring on, in a thread", {"monitor_process": "false"}),
    Variant("nolog", "monitoring on, inference log off", {"inference_log": "false"}),
    Variant("off", "monitoring off", {"monitoring": "false"}),
)


@dataclass
class Run:
    variant: str
    model: str
    round: int
    rps: float
    p99_ms: float
    errors: int
    cpu_us: float
    """Server CPU time (all its threads) per request answered, in microseconds."""


@dataclass
class MonitoringCost:
    seconds: float
    rounds: int
    runs: list[Run] = field(default_factory=list)
    drift_rows: dict[str, int] = field(default_factory=dict)
    """Rows in the drift windows (all models) at the end, by variant."""
    log_rows: dict[str, int] = field(default_factory=dict)
    """Inference log rows written, by variant."""

    def of(self, variant: str, model: str) -> list[Run]:
        return [r for r in self.runs if (r.variant, r.model) == (variant, model)]

    def paired(self, variant: str, model: str, value: Callable[[Run], float]) -> float:
        """Median over the rounds of ``value`` against monitoring off's in the same round."""
        off = {r.round: value(r) for r in self.of("off", model)}
        return statistics.median(value(r) / off[r.round] for r in self.of(variant, model))


def measure(
    registry: Path,
    workdir: Path,
    body: Path,
    models: list[str],
    seconds: float,
    rounds: int,
) -> MonitoringCost:
    """Serve ``models`` from ``registry`` in every configuration, ``rounds`` times each."""
    result = MonitoringCost(seconds, rounds)
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[Server, int, Path]] = {}
        for variant in VARIANTS:
            copy = fresh_copy(registry, workdir, f"monitoring-{variant.key}")
            http = free_port()
            server = stack.enter_context(
                running(
                    modelpilot_serve(copy, http, free_port()),
                    f"http://127.0.0.1:{http}/v2/health/ready",
                    env=modelpilot_env(**variant.settings),
                )
            )
            servers[variant.key] = (server, http, copy)
            for model in models:
                wrk(_url(http, model), body, CONNECTIONS, WARMUP_SECONDS)
        for round_ in range(rounds):
            order = VARIANTS if round_ % 2 == 0 else tuple(reversed(VARIANTS))
            for model in models:
                for variant in order:
                    server, http, _ = servers[variant.key]
                    cpu = server.cpu_seconds()
                    rps, _, p99, errors = wrk(_url(http, model), body, CONNECTIONS, seconds)
                    cpu_us = (server.cpu_seconds() - cpu) / max(rps * seconds, 1) * 1e6
                    result.runs.append(Run(variant.key, model, round_, rps, p99, errors, cpu_us))
                    print(
                        f"monitoring {variant.key:6} round {round_:2} {model:7} "
                        f"{rps:9.0f} req/s  p99 {p99:6.2f} ms  errors {errors}  "
                        f"CPU {cpu_us:5.1f} us/request",
                        file=sys.stderr,
                    )
        for variant in VARIANTS:
            _, http, _ = servers[variant.key]
            result.drift_rows[variant.key] = _drift_rows(http, models, variant)
    for variant in VARIANTS:  # the servers have stopped: their logs are complete
        copy = servers[variant.key][2]
        result.log_rows[variant.key] = _log_rows(copy, variant)
        shutil.rmtree(copy, ignore_errors=True)
    return result


def _url(http: int, model: str) -> str:
    return f"http://127.0.0.1:{http}/v2/models/{model}/infer"


def _drift_rows(http: int, models: list[str], variant: Variant) -> int:
    """Rows in the models' drift windows; raises if the configuration did not take effect."""
    if variant.settings.get("monitoring") == "false":
        status = httpx.get(f"http://127.0.0.1:{http}/api/monitoring").status_code
        if status != 404:
            raise RuntimeError(f"monitoring was meant to be off, but /api/monitoring is {status}")
        return 0
    time.sleep(2.5)  # one evaluation interval, so the reports include the last requests
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
    if (rows > 0) != (variant.settings.get("inference_log") != "false" and variant.key != "off"):
        raise RuntimeError(f"{variant.label}: the inference log holds {rows} rows")
    return rows


def cost(ratio: float) -> str:
    """``0.97x (3% cost)``, or no cost when monitoring came out as fast or faster."""
    if ratio >= 0.995:
        return f"{ratio:.2f}x (no measurable cost)"
    return f"{ratio:.2f}x ({(1 - ratio) * 100:.0f}% cost)"


def render(result: MonitoringCost, command: str, when: str) -> str:
    models = list(dict.fromkeys(r.model for r in result.runs))
    lines = [
        "## What monitoring costs",
        "",
        f"`{command}`, {when}: ModelPilot as one process, the same single-row JSON requests "
        f"(Open Inference Protocol v2) as above over {CONNECTIONS} connections with wrk. "
        "A server for each configuration ran throughout, each from a copy of the same "
        "registry, its models registered with a reference profile (`modelpilot register NAME "
        f"FILE --reference DATA`), and took {result.seconds:g} s of traffic per turn: "
        f"{result.rounds} rounds, in each of which, model by model, the configurations took "
        "their turns back to back in alternating order (on, thread, log off, off, then off, "
        "log off, thread, on, ...). The shared machine's speed changes from minute to minute "
        "(requests/s of one configuration ranged as the column shows), so each turn is "
        "compared with monitoring off's turn of the same round and model, and the ratios "
        "reported are the medians of those pairs.",
        "",
        "With monitoring on, the default, each model call (a batch of requests) is appended to "
        "a queue on the event loop, and each request's latency to the service history. Every "
        "50 ms the loop joins the queued calls into one array per input and output and writes "
        "them to a pipe; a process of its own (niced) bins the inputs against the reference "
        "profile (drift window of the last 5,000 rows), counts the predictions, and writes "
        "inputs and outputs of every request to the inference log (SQLite), where delayed "
        "labels find them. Every 2 s the server's monitor thread gathers that process's "
        "windows and recomputes drift (PSI, Jensen-Shannon, KL, Wasserstein, KS, "
        'chi-squared) and the alerts. "In a thread" (`MODELPILOT_MONITOR_PROCESS=false`) '
        "does the binning and logging on that thread instead, inside the server process. "
        "`MODELPILOT_INFERENCE_LOG=false` leaves out only the inference log; "
        "`MODELPILOT_MONITORING=false` leaves out all of it (the service metrics on "
        "`/metrics` stay).",
        "",
        "The last two columns measure the same cost another way: the CPU time the server "
        "used (all its processes and threads, from /proc) per request answered. With one "
        "process per core (`serve --workers N`), it is what bounds throughput.",
        "",
        "| model | configuration | requests/s | range over rounds | p99 ms | errors | x off "
        "| CPU per request | x off |",
        "| --- | --- | ---: | --- | ---: | ---: | --- | ---: | --- |",
    ]
    for model in models:
        for variant in VARIANTS:
            runs = result.of(variant.key, model)
            rps = [r.rps for r in runs]
            p99 = statistics.median(r.p99_ms for r in runs)
            cpu_us = statistics.median(r.cpu_us for r in runs)
            ratio, cpu_ratio = "1.00x", "1.00x"
            if variant.key != "off":
                ratio = cost(result.paired(variant.key, model, lambda r: r.rps))
                cpu_ratio = f"{result.paired(variant.key, model, lambda r: r.cpu_us):.2f}x"
            lines.append(
                f"| {model} | {variant.label} | {statistics.median(rps):,.0f} | "
                f"{min(rps):,.0f}-{max(rps):,.0f} | {p99:.2f} | "
                f"{sum(r.errors for r in runs)} | {ratio} | {cpu_us:.0f} µs | {cpu_ratio} |"
            )
    drift, logged = result.drift_rows.get("on", 0), result.log_rows.get("on", 0)
    if drift and logged:
        lines += [
            "",
            f"Checked at the end: with monitoring on the drift windows held {drift:,} rows "
            f"over the {len(models)} models, and the inference log {logged:,} rows (none with "
            "it off); with monitoring off `/api/monitoring` answered 404. The benchmark sends "
            "one row over and over, so drift is flagged and its alert raised: the same work as "
            "for real traffic.",
        ]
    return "\n".join(lines) + "\n"
