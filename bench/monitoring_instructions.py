"""What model monitoring costs per request, counted in instructions by callgrind.

Requests/s on a shared machine moved by half from one minute to the next here, which hides a
cost of a few percent. Instructions do not move with the neighbours: callgrind (valgrind)
counts every instruction the server's processes execute, whatever else the machine does. So
each configuration's server runs under callgrind (``--instr-atstart=no``: counting starts
once it is warm), takes a fixed number of requests from h2load, and the instructions of all
its processes (the server and, when monitoring is on, the monitoring process) are summed.

Under callgrind the server runs fifty to a hundred times slower, depending on the machine,
and parts of it work by the clock, which would put it on paths it does not take at full
speed. So:

- a model call is made on the event loop when it took under 200 us; both models here do at
  full speed, and under callgrind they are kept there (``EVERY_CALL_INLINE``);
- monitoring hands a round over every quarter second. Rounds should hold as many requests
  as at full speed, so the round is stretched by how much slower callgrind runs the server
  here, which is measured first: monitoring off, the same requests at full speed and under
  callgrind (that counted run is also the ``off`` row);
- the REST fast path looks for clients that hung up every 50 ms, among the requests still
  being answered (``MODELPILOT_HANG_UP_CHECK_SECONDS``): at full speed a few of them are; under
  callgrind nearly every request would be, and get a watcher task, as many as the clock
  allowed. It is put off too (``NEVER``); monitoring on and off pay it alike;
- drift and alerts are recomputed every 2 s and aliases re-read every 2 s, however much
  traffic there is: that work does not grow with requests (the CPU-time figures of the other
  table include it), so it is put off past the end of the run (``NEVER``). Counted, it would
  weigh fifty times as much per request as at full speed, or not at all, as the clock fell.

What still runs by the clock (the monitoring process's quarter-second tick, and the monitor
thread's in the configuration that bins on it) is counted, which makes monitoring's share a
little larger than it is. How requests share model calls still depends on timing, so two runs
differ a little (see the report).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from monitoring_cost import EVERY_CALL_INLINE, MONITORED, OFF, Variant
from servers import Server, free_port, fresh_copy, modelpilot_env, modelpilot_serve, running

from modelpilot.monitoring.monitor import SHIP_SECONDS

REQUESTS = 4000
WARMUP_REQUESTS = 1000
CONNECTIONS = 16
ROUND_SECONDS = SHIP_SECONDS
"""``MODELPILOT_MONITOR_ROUND_SECONDS``'s default, stretched as callgrind is slower."""
NEVER = str(10**6)
FIXED = {
    "monitor_interval_seconds": NEVER,
    "alias_refresh_seconds": NEVER,
    "hang_up_check_seconds": NEVER,
    "inline_predict_below_us": EVERY_CALL_INLINE,
}
"""Settings of every configuration under callgrind (see the module's docstring)."""
COUNTED = tuple(v for v in MONITORED if v.key != "hundredth")
"""The monitored configurations counted. Not a hundredth of calls watched: its warm-up
watches about one model call, so setting up a version's monitoring in the monitoring
process (its first call) would fall among the counted requests of one model or the other."""


@dataclass
class Count:
    variant: str
    model: str
    server: float
    """Instructions per request in the server process (the event loop and its threads)."""
    monitoring: float
    """Instructions per request in the monitoring process (none when off or in a thread)."""

    @property
    def total(self) -> float:
        return self.server + self.monitoring


@dataclass
class InstructionCost:
    requests: int
    counts: list[Count] = field(default_factory=list)
    stretch: float = 0.0
    """How many times slower the server ran under callgrind (monitoring off)."""

    def of(self, variant: str, model: str) -> Count:
        return next(c for c in self.counts if (c.variant, c.model) == (variant, model))


def available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def measure(registry: Path, workdir: Path, body: Path, models: list[str]) -> InstructionCost:
    """Count each configuration's instructions for ``REQUESTS`` requests to each model."""
    full_speed = _full_speed(registry, workdir, body, models)
    result = InstructionCost(REQUESTS)
    rates: list[float] = []
    for variant in (OFF, *COUNTED):  # off first: it calibrates
        settings = {**variant.settings, **FIXED}
        round_seconds = 0.0
        if variant is not OFF:
            result.stretch = full_speed / statistics.mean(rates)
            round_seconds = ROUND_SECONDS * result.stretch
            settings["monitor_round_seconds"] = f"{round_seconds:.3f}"
        copy = fresh_copy(registry, workdir, f"instructions-{variant.key}")
        dumps = workdir / f"callgrind-{variant.key}"
        shutil.rmtree(dumps, ignore_errors=True)
        dumps.mkdir()
        http = free_port()
        with running(
            _callgrind(dumps) + modelpilot_serve(copy, http, free_port()),
            f"http://127.0.0.1:{http}/v2/health/ready",
            env=modelpilot_env(**settings) | {"PYTHONHASHSEED": "0"},
            ready_timeout=600.0,
        ) as server:
            for model in models:
                count, rate = _count(server, dumps, variant, model, http, body, round_seconds)
                result.counts.append(count)
                if variant is OFF:
                    rates.append(rate)
                print(
                    f"instructions {variant.key:6} {model:7} server {count.server:9,.0f}  "
                    f"monitoring {count.monitoring:7,.0f}  per request ({rate:.0f} requests/s)",
                    file=sys.stderr,
                )
        shutil.rmtree(copy, ignore_errors=True)
    return result


def _full_speed(registry: Path, workdir: Path, body: Path, models: list[str]) -> float:
    """Requests/s of the ``off`` configuration without callgrind, the models in turn."""
    copy = fresh_copy(registry, workdir, "instructions-full-speed")
    http = free_port()
    rates = []
    with running(
        modelpilot_serve(copy, http, free_port()),
        f"http://127.0.0.1:{http}/v2/health/ready",
        env=modelpilot_env(**OFF.settings),
    ):
        for model in models:
            url = f"http://127.0.0.1:{http}/v2/models/{model}/infer"
            _h2load(url, body, WARMUP_REQUESTS)
            rates.append(_h2load(url, body, REQUESTS))
    shutil.rmtree(copy, ignore_errors=True)
    return statistics.mean(rates)


def _callgrind(dumps: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--trace-children=yes",
        # Programs the server's libraries run at start (ldconfig, uname, ...) need no counting.
        "--trace-children-skip=/bin/*,/usr/bin/*,/sbin/*,/usr/sbin/*",
        f"--callgrind-out-file={dumps}/cg.%p",
    ]


def _count(
    server: Server,
    dumps: Path,
    variant: Variant,
    model: str,
    http: int,
    body: Path,
    round_seconds: float,
) -> tuple[Count, float]:
    """``variant``'s instructions per request to ``model``, and the counted requests/s."""
    url = f"http://127.0.0.1:{http}/v2/models/{model}/infer"
    _h2load(url, body, WARMUP_REQUESTS)
    # Let the monitoring process take every round of the warm-up before counting starts
    # (the first of a model also loads its profile and sets up its log: under callgrind that
    # takes far longer than a round), and every round of the measured requests before it stops.
    _settle(server, round_seconds)
    pids = [pid for pid in server.pids() if _under_callgrind(pid)]
    _control(pids, "--instr=on")
    rate = _h2load(url, body, REQUESTS)
    _settle(server, round_seconds)
    _control(pids, "--instr=off")
    _control(pids, "--dump")
    server_pid, total = server.pid, {"server": 0, "monitoring": 0}
    for pid in pids:
        instructions = _last_dump(dumps, pid)
        total["server" if pid == server_pid else "monitoring"] += instructions
    count = Count(variant.key, model, total["server"] / REQUESTS, total["monitoring"] / REQUESTS)
    return count, rate


def _settle(server: Server, round_seconds: float, timeout: float = 600.0) -> None:
    """Wait for the last round to be handed over, then until the server's processes are
    idle: under 15% of a core over two seconds (their timers use about 8% under callgrind)."""
    time.sleep(round_seconds + 1.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = server.cpu_seconds()
        time.sleep(2.0)
        if server.cpu_seconds() - before < 0.3:
            return
    raise RuntimeError(f"the server did not settle within {timeout:.0f} s")


def _h2load(url: str, body: Path, requests: int) -> float:
    """Send ``requests`` requests (all must succeed); returns requests/s."""
    out = subprocess.run(
        [
            "h2load",
            "--h1",
            f"-n{requests}",
            f"-c{CONNECTIONS}",
            "-d",
            str(body),
            "-H",
            "content-type: application/json",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"status codes: (\d+) 2xx", out)
    if match is None or int(match.group(1)) != requests:
        raise RuntimeError(f"not every request succeeded:\n{out}")
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    if rate is None:
        raise RuntimeError(f"h2load reported no rate:\n{out}")
    return float(rate.group(1))


def _under_callgrind(pid: int) -> bool:
    try:
        return b"callgrind" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return False


def _control(pids: list[int], command: str) -> None:
    """Send ``command`` to the callgrind of each of ``pids``."""
    for pid in pids:
        subprocess.run(["callgrind_control", command, str(pid)], capture_output=True, check=True)


def _last_dump(dumps: Path, pid: int) -> int:
    """Instructions in ``pid``'s newest dump, which it is asked to write; removes the dumps."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        files = sorted(dumps.glob(f"cg.{pid}.*"), key=lambda p: int(p.suffix[1:]))
        match = files and re.search(r"^totals: (\d+)", files[-1].read_text(), re.MULTILINE)
        if match:
            for stale in files:  # the next model's count starts afresh
                stale.unlink()
            return int(match.group(1))
        time.sleep(0.2)
    raise RuntimeError(f"callgrind wrote no dump for process {pid}")


def render(result: InstructionCost, command: str, when: str) -> str:
    models = list(dict.fromkeys(c.model for c in result.counts))
    lines = [
        "## What monitoring costs, counted in instructions",
        "",
        f"`{command}`, {when}: each configuration of the table above but a hundredth "
        "watched (whose warm-up watches about one model call, so that setting up its "
        "monitoring would be counted), run under valgrind's callgrind, answering "
        f"{result.requests:,} of the same single-row requests per model "
        f"({CONNECTIONS} connections, h2load) after {WARMUP_REQUESTS:,} uncounted ones. The "
        "counts are the instructions all the server's processes executed for those requests, "
        "which the machine's other work changes less than it changes time: the server's "
        "count for one configuration has differed by up to 2-3% from run to run, as requests "
        "share model calls differently (a model call costs the same however many requests it "
        "answers), the monitoring process's by under 1%. Instructions are not time either: a "
        "copy, a cache miss or a system call weighs differently, so read these beside the "
        "CPU-time columns above.",
        "",
        f"Callgrind ran the server {result.stretch:.0f} times slower than full speed (monitoring "
        "off, measured first), so monitoring rounds were made as much longer "
        f"(`MODELPILOT_MONITOR_ROUND_SECONDS={ROUND_SECONDS * result.stretch:.2f}`) and hold "
        "about as many requests as at full speed. Every configuration ran with "
        + ", ".join(f"`MODELPILOT_{key.upper()}={value}`" for key, value in FIXED.items())
        + ": the models' calls stay on the event loop, as at full speed, and the "
        "recomputation of drift and alerts (every 2 s, however much traffic there is), the "
        "re-reading of aliases and the fast path's look for clients that hung up (every 50 ms, "
        "at the requests then in flight) are left out of these counts.",
        "",
        "| model | configuration | server process | monitoring process | total | x off |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for model in models:
        off = result.of("off", model).total
        for variant in (*COUNTED, OFF):
            count = result.of(variant.key, model)
            ratio = count.total / off
            cost = "" if variant.key == "off" else f" ({(ratio - 1) * 100:+.1f}%)"
            lines.append(
                f"| {model} | {variant.label} | {count.server:,.0f} | {count.monitoring:,.0f} "
                f"| {count.total:,.0f} | {ratio:.3f}x{cost} |"
            )
    lines += ["", "Instructions per request."]
    return "\n".join(lines) + "\n"
