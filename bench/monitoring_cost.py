"""What model monitoring costs ModelPilot in serving throughput: on, on in a thread, on
without log, off.

The configurations are started in turn, round after round, in alternating order (on,
thread, log off, off, then off, log off, thread, on, ...), so that a slow spell of a shared
machine falls on all of them; each figure is the median over the rounds. Every server starts
from a fresh copy of the same registry, whose models carry a reference profile, so drift
binning really runs and the inference log starts empty. After each run the benchmark checks that the
configuration took effect: drift windows filled (or ``/api/monitoring`` absent when off) and
inference log rows written (or not).
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from load import wrk
from servers import free_port, fresh_copy, modelpilot_env, modelpilot_serve, running

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
    drift_rows: dict[str, list[int]] = field(default_factory=dict)
    """Rows in the drift windows (all models) at the end of each run, by variant."""
    log_rows: dict[str, list[int]] = field(default_factory=dict)
    """Inference log rows written by each run, by variant."""

    def of(self, variant: str, model: str) -> list[Run]:
        return [r for r in self.runs if (r.variant, r.model) == (variant, model)]


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
    for round_ in range(rounds):
        order = VARIANTS if round_ % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            copy = fresh_copy(registry, workdir, f"monitoring-{variant.key}")
            http = free_port()
            with running(
                modelpilot_serve(copy, http, free_port()),
                f"http://127.0.0.1:{http}/v2/health/ready",
                env=modelpilot_env(**variant.settings),
            ) as server:
                for model in models:
                    url = f"http://127.0.0.1:{http}/v2/models/{model}/infer"
                    wrk(url, body, CONNECTIONS, WARMUP_SECONDS)
                    cpu = server.cpu_seconds()
                    rps, _, p99, errors = wrk(url, body, CONNECTIONS, seconds)
                    cpu_us = (server.cpu_seconds() - cpu) / max(rps * seconds, 1) * 1e6
                    result.runs.append(Run(variant.key, model, round_, rps, p99, errors, cpu_us))
                    print(
                        f"monitoring {variant.key:5} round {round_} {model:7} c={CONNECTIONS} "
                        f"{rps:9.0f} req/s  p99 {p99:6.2f} ms  errors {errors}  "
                        f"CPU {cpu_us:5.1f} us/request",
                        file=sys.stderr,
                    )
                drift = _drift_rows(http, models, variant)
            result.drift_rows.setdefault(variant.key, []).append(drift)
            result.log_rows.setdefault(variant.key, []).append(_log_rows(copy, variant))
            shutil.rmtree(copy, ignore_errors=True)
    return result


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
        f"(Open Inference Protocol v2) as above over {CONNECTIONS} connections with wrk, "
        f"{result.seconds:g} s per point after a {WARMUP_SECONDS:g} s warm-up. The "
        f"configurations were started in turn, {result.rounds} rounds in alternating order "
        "(on, thread, log off, off, then off, log off, thread, on, ...), so that a slow spell "
        "of the shared machine falls on all of them; figures are medians over the rounds, "
        "with each round's requests/s alongside. Every server started from a copy of the "
        "same registry, its models registered with a reference profile (`modelpilot "
        "register NAME FILE --reference DATA`).",
        "",
        "With monitoring on, the default, each model call (a batch of requests) is appended to "
        "a queue on the event loop, and each request's latency counted for the error-rate and "
        "latency alerts. Every 50 ms the loop joins the queued calls into one array per input "
        "and output and writes them, pickled, to a pipe; a process of its own (niced) bins the "
        "inputs against the reference profile (drift window of the last 5,000 rows), counts "
        "the predictions, and writes inputs and outputs of every request to the inference log "
        "(SQLite), where delayed labels find them. Every 2 s the server's monitor thread "
        "gathers that process's windows and recomputes drift (PSI, Jensen-Shannon, KL, "
        'Wasserstein, KS, chi-squared) and the alerts. "In a thread" '
        "(`MODELPILOT_MONITOR_PROCESS=false`) does the binning and logging on that thread "
        "instead, inside the server process. `MODELPILOT_INFERENCE_LOG=false` leaves out only "
        "the inference log; `MODELPILOT_MONITORING=false` leaves out all of it (the service "
        "metrics on `/metrics` stay).",
        "",
        "The last two columns measure the same cost another way: the CPU time the server "
        "used (all its processes and threads, from /proc) per request answered, which a shared "
        "machine's slow spells move far less than requests/s. With one process per core "
        "(`serve --workers N`), it is what bounds throughput.",
        "",
        "| model | configuration | requests/s | rounds, requests/s | p99 ms | errors | x off "
        "| CPU per request | x off |",
        "| --- | --- | ---: | --- | ---: | ---: | --- | ---: | --- |",
    ]
    for model in models:
        off = statistics.median(r.rps for r in result.of("off", model))
        off_cpu = statistics.median(r.cpu_us for r in result.of("off", model))
        for variant in VARIANTS:
            runs = result.of(variant.key, model)
            rps = statistics.median(r.rps for r in runs)
            p99 = statistics.median(r.p99_ms for r in runs)
            cpu_us = statistics.median(r.cpu_us for r in runs)
            rounds = " / ".join(f"{r.rps:,.0f}" for r in sorted(runs, key=lambda r: r.round))
            ratio = "1.00x" if variant.key == "off" else cost(rps / off)
            cpu_ratio = "1.00x" if variant.key == "off" else f"{cpu_us / off_cpu:.2f}x"
            lines.append(
                f"| {model} | {variant.label} | {rps:,.0f} | {rounds} | {p99:.2f} | "
                f"{sum(r.errors for r in runs)} | {ratio} | {cpu_us:.0f} µs | {cpu_ratio} |"
            )
    drift = result.drift_rows.get("on", [])
    logged = result.log_rows.get("on", [])
    if drift and logged:
        lines += [
            "",
            f"Checked after each run: with monitoring on the drift windows held "
            f"{min(drift):,}-{max(drift):,} rows over the {len(models)} models, and the "
            f"inference log {min(logged):,}-{max(logged):,} rows (none with it off); with "
            "monitoring off `/api/monitoring` answered 404. The benchmark sends one row over "
            "and over, so drift is flagged and its alert raised: the same work as for real "
            "traffic.",
        ]
    return "\n".join(lines) + "\n"
