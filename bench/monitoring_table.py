"""The monitoring section of docs/benchmarks.md: ``monitoring_cost``'s result as a table,
with the text that says how it was measured."""

from __future__ import annotations

import statistics

from monitoring_cost import (
    CONNECTIONS,
    EVERY_CALL_INLINE,
    ROUND_MS,
    SHARED,
    SLICED,
    VARIANTS,
    MonitoringCost,
    Usage,
    Variant,
)


def _sliced_saving(result: MonitoringCost) -> str:
    """How much less CPU per request the monitoring-off servers used sliced than shared."""
    savings = []
    for model in dict.fromkeys(t.model for t in result.turns):
        shared, sliced = (
            statistics.median(
                t.off.server_us
                for t in result.turns
                if (t.model, t.scheduling) == (model, scheduling)
            )
            for scheduling in (SHARED, SLICED)
        )
        savings.append(1 - sliced / shared)
    low, high = min(savings) * 100, max(savings) * 100
    return f"{low:.0f}%" if round(low) == round(high) else f"{low:.0f}-{high:.0f}%"


def _lives(result: MonitoringCost, variant: Variant, model: str, scheduling: str) -> str:
    """The lowest and highest of the lives' own medians of the serving process's ratio:
    ``(1.04-1.07)``."""
    if result.lives < 2:
        return ""
    lives = sorted({t.life for t in result.of(variant.key, model, scheduling)})
    medians = [result.paired(variant.key, model, _server, scheduling, life) for life in lives]
    return f"({min(medians):.2f}-{max(medians):.2f})"


def _server(usage: Usage) -> float:
    return usage.server_us


def _total(usage: Usage) -> float:
    return usage.cpu_us


def cost(ratio: float) -> str:
    """``0.97x (3% cost)``, or no cost when monitoring came out as fast or faster."""
    if ratio >= 0.995:
        return f"{ratio:.2f}x (no measurable cost)"
    return f"{ratio:.2f}x ({(1 - ratio) * 100:.0f}% cost)"


def render(result: MonitoringCost, command: str, when: str) -> str:
    models = list(dict.fromkeys(t.model for t in result.turns))
    lines = [
        "## What monitoring costs",
        "",
        f"`{command}`, {when}: ModelPilot as one process, the same single-row JSON requests "
        f"(Open Inference Protocol v2) as above over {CONNECTIONS} connections with wrk. "
        f"A server for each configuration, started {result.lives} times in the run (the "
        "rounds split between its lives), each time from a copy of the same "
        "registry, its models registered with a reference profile (`modelpilot register NAME "
        "FILE --reference DATA`). Each configuration was measured side by side with a server "
        "of its own with monitoring off: the two took the same load at the same time for "
        f"{result.seconds:g} s, on the same core, so that the shared machine's changes of "
        "speed, which move one configuration's requests/s by a third from minute to minute "
        "and differ from core to core, slowed both alike. All servers ran in the benchmark's "
        "session (where Linux's autogroup scheduling is on, a server in a session of its own "
        "got less of the shared core the busier its monitoring process was on the other "
        "core), so the two shared the core's time evenly, thread by thread (a server that "
        "keeps a second thread busy, as monitoring in a thread does, gets more: read its CPU "
        "per request). wrk and the monitoring "
        "process (niced, as always) ran on the other core, where the monitoring process "
        "runs when a server has a spare core beside it. The two were loaded only together, "
        "so that neither had sat idle longer than the other when a turn began. Model calls "
        "were kept on the event loop (`MODELPILOT_INLINE_PREDICT_BELOW_US="
        f"{EVERY_CALL_INLINE}`), where they run at full speed; on half a core their wall "
        "time doubles and the server would hand them to its thread pool. "
        f"{result.rounds} rounds, in each of which, model by model, every configuration took "
        "its turn; the figures are the medians over the rounds of each turn's ratio. The "
        "control is a pair of two servers with monitoring off, measured the same way: how "
        "far from 1.00 the method itself lands; a pair keeps its own lean for as long as it "
        "lives (the control has come out from 0.98x to 1.01x from run to run, both models "
        "alike), so each configuration's figures come from several pairs; beside the serving "
        "process's ratios, in brackets, the lowest and highest of the lives' own medians. "
        "Requests/s are those of a server with half a core.",
        "",
        "With monitoring on, the default, each model call (a batch of requests) is appended "
        "to a queue on the event loop, and each request's latency to the service history. "
        f"Every {ROUND_MS:.0f} ms the loop joins the queued calls into one array per input and "
        "output and writes them to a pipe; a process of its own (niced) bins the inputs "
        "against the reference profile (drift window of the last 5,000 rows), counts the "
        "predictions, and writes inputs and outputs of every request to the inference log "
        "(a SQLite row per round, its contents appended to a segment file beside it), where "
        "delayed labels find them. Every 2 s the server's monitor thread "
        "gathers that process's windows and recomputes drift (PSI, Jensen-Shannon, KL, "
        'Wasserstein, KS, chi-squared) and the alerts. "In a thread" '
        "(`MODELPILOT_MONITOR_PROCESS=false`) does the binning and logging on that thread "
        "instead, inside the server process. `MODELPILOT_INFERENCE_LOG=false` leaves out only"
        " the inference log; `MODELPILOT_MONITOR_SAMPLE_RATE=0.2` has the monitor watch a "
        "fifth of the model calls, drawn at random, and pass the others by, and `0.01` a "
        "hundredth (its drift windows then hold under 1,000 rows for much of the run, which "
        "are judged by the KS test on their rows); "
        "`MODELPILOT_MONITORING=false` leaves out all of it (the service metrics on "
        "`/metrics` stay).",
        "",
        "CPU time per request answered, from /proc, is split by process: the server's own "
        "process, which bounds the throughput of a server with a core to itself (its "
        "monitoring process runs niced beside it, on another core where there is one), and "
        "the monitoring process, which takes its share from the rest of the machine: where "
        "every core serves (`serve --workers N`), the total is what bounds throughput. Of the "
        'server\'s own, "of which handover" is the CPU time its event loop spent handing '
        "the calls over (`modelpilot_monitor_handover_seconds_total`, read from `/metrics` "
        "before and after each turn); the rest of monitoring's share there is the queueing "
        "of each call, the latency history and, likely, the handovers' effect on the serving "
        "around them (their data displaces serving's in the caches).",
        "",
        "Two servers on one core are not quite two servers with a core each: Linux's "
        "scheduler switches between them every few milliseconds, and after each switch a "
        "server first refills its caches, the more so the more memory it works on. So "
        + (
            'every turn was taken twice: once so ("shared"), and once with both servers '
            "in long slices (`SCHED_RR`, 100 ms each unless a server runs out of requests "
            'first; "sliced"), as a server runs that has a core to itself. In long slices '
            f"the servers with monitoring off spent {_sliced_saving(result)} less CPU per "
            "request than shared, and monitoring's share of it shrank too. The sliced turns' "
            "requests/s say little (the scheduler, not speed, decides each server's share); "
            "their CPU per request is the closer figure for a server with a core of its own. "
            "The requests/s and µs columns are the shared turns'."
            if SLICED in result.schedulings
            else "the figures below, all shared, weigh monitoring's memory more than a server "
            "with a core to itself would (long slices need `SCHED_RR`, which this run was "
            "not allowed)."
        ),
        "",
    ]
    sliced = SLICED in result.schedulings
    head = (
        "| model | configuration | requests/s | x off, same time | server process, CPU per "
        "request | of which handover | x off, shared | "
    )
    rule = "| --- | --- | ---: | --- | ---: | ---: | --- | "
    if sliced:
        head += "x off, sliced | "
        rule += "--- | "
    head += "monitoring process | total x off, shared |"
    rule += "---: | --- |"
    if sliced:
        head += " total x off, sliced |"
        rule += " --- |"
    lines += [head, rule]
    for model in models:
        for variant in VARIANTS:
            turns = result.of(variant.key, model)
            rps = statistics.median(t.measured.rps for t in turns)
            server_us = statistics.median(t.measured.server_us for t in turns)
            helpers_us = statistics.median(t.measured.helpers_us for t in turns)
            handover_us = statistics.median(t.measured.handover_us for t in turns)
            handover = f"{handover_us:.2f} µs" if handover_us else ""
            ratio = cost(result.paired(variant.key, model, lambda u: u.rps))
            server = result.paired(variant.key, model, _server)
            total = result.paired(variant.key, model, _total)
            row = f"| {model} | {variant.label} | {rps:,.0f} | {ratio} | {server_us:.1f} µs | "
            row += f"{handover} | {server:.3f}x {_lives(result, variant, model, SHARED)} | "
            if sliced:
                row += f"{result.paired(variant.key, model, _server, SLICED):.3f}x "
                row += f"{_lives(result, variant, model, SLICED)} | "
            row += f"{helpers_us:.1f} µs | {total:.3f}x |"
            if sliced:
                row += f" {result.paired(variant.key, model, _total, SLICED):.3f}x |"
            lines.append(row)
    drift, logged = result.drift_rows.get("on", 0), result.log_rows.get("on", 0)
    errors = sum(t.measured.errors + t.off.errors for t in result.turns)
    if drift and logged:
        lines += [
            "",
            "Checked at the end of every life: with monitoring on the drift windows held "
            f"{drift:,} rows over the {len(models)} models at the last, and the inference logs "
            f"{logged:,} rows in all (none with it off); with monitoring off `/api/monitoring` "
            "answered 404. "
            + (f"{errors} requests failed. " if errors else "No request failed. ")
            + "The benchmark sends one row over and over, so drift is flagged and its alert "
            "raised: the same work as for real traffic.",
        ]
    return "\n".join(lines) + "\n"
