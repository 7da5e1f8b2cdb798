"""What model monitoring costs per request, counted in instructions by callgrind.

Requests/s on a shared machine moved by half from one minute to the next here, which hides a
cost of a few percent. Instructions do not move with the neighbours: callgrind (valgrind)
counts every instruction the server's processes execute, whatever else the machine does. So
each configuration's server runs under callgrind (``--instr-atstart=no``: counting starts
once it is warm), takes a fixed number of requests from h2load, and the instructions of all
its processes (the server and, when monitoring is on, the monitoring process) are summed.

Under callgrind the server runs some fifty times slower, and parts of it work by the clock:
monitoring hands a round over every 50 ms and recomputes drift and alerts every 2 s, the
engine re-reads aliases every 2 s and calls a model on the event loop when it takes under
200 us. Left as they are, the rounds would hold a fiftieth of the requests they hold at full
speed, clock-driven work would be counted fifty times over per request, and no call would run
on the loop. So those settings are stretched by ``STRETCH`` (``FIXED``), which keeps the
server on the path it takes at full speed. The recomputation every 2 s, whose cost does not
grow with traffic, then falls outside the counted requests (it is in the CPU-time figures of
the other table). What still runs by the clock (the monitor's and the monitoring process's
quarter-second ticks) is counted, which makes monitoring's share a little larger than it is.
How requests share model calls still depends on timing, so two runs differ, by up to 0.6%
here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from monitoring_cost import VARIANTS, Variant
from servers import Server, free_port, fresh_copy, modelpilot_env, modelpilot_serve, running

REQUESTS = 4000
WARMUP_REQUESTS = 1000
CONNECTIONS = 16
STRETCH = 50
"""How much slower the server runs under callgrind (measured here: 11,000 against 220
requests/s), and so how much longer its monitoring rounds are made."""
ROUND_SECONDS = 0.05 * STRETCH
INTERVAL_SECONDS = 2.0 * STRETCH
FIXED = {
    "monitor_round_seconds": str(ROUND_SECONDS),
    "monitor_interval_seconds": str(INTERVAL_SECONDS),
    # Aliases are re-read every 2 s, which would be fifty times as often per request.
    "alias_refresh_seconds": str(2.0 * STRETCH),
    # A model call is made on the event loop when it takes under 200 us; under callgrind every
    # call takes longer, so the bound is stretched too.
    "inline_predict_below_us": str(200 * STRETCH),
}


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

    def of(self, variant: str, model: str) -> Count:
        return next(c for c in self.counts if (c.variant, c.model) == (variant, model))


def available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def measure(registry: Path, workdir: Path, body: Path, models: list[str]) -> InstructionCost:
    """Count each configuration's instructions for ``REQUESTS`` requests to each model."""
    result = InstructionCost(REQUESTS)
    for variant in VARIANTS:
        copy = fresh_copy(registry, workdir, f"instructions-{variant.key}")
        dumps = workdir / f"callgrind-{variant.key}"
        shutil.rmtree(dumps, ignore_errors=True)
        dumps.mkdir()
        http = free_port()
        settings = {**variant.settings, **FIXED}
        with running(
            _callgrind(dumps) + modelpilot_serve(copy, http, free_port()),
            f"http://127.0.0.1:{http}/v2/health/ready",
            env=modelpilot_env(**settings),
            ready_timeout=600.0,
        ) as server:
            for model in models:
                count = _count(server, dumps, variant, model, http, body)
                result.counts.append(count)
                print(
                    f"instructions {variant.key:6} {model:7} server {count.server:9,.0f}  "
                    f"monitoring {count.monitoring:7,.0f}  per request",
                    file=sys.stderr,
                )
        shutil.rmtree(copy, ignore_errors=True)
    return result


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
    server: Server, dumps: Path, variant: Variant, model: str, http: int, body: Path
) -> Count:
    url = f"http://127.0.0.1:{http}/v2/models/{model}/infer"
    _h2load(url, body, WARMUP_REQUESTS)
    # Let the monitoring process take every round of the warm-up before counting starts, and
    # every round of the measured requests before it stops.
    settle = 2 * ROUND_SECONDS + 1.0
    time.sleep(settle)
    pids = [pid for pid in server.pids() if _under_callgrind(pid)]
    _control(pids, "--instr=on")
    _h2load(url, body, REQUESTS)
    time.sleep(settle)
    _control(pids, "--instr=off")
    _control(pids, "--dump")
    server_pid, total = server.pid, {"server": 0, "monitoring": 0}
    for pid in pids:
        instructions = _last_dump(dumps, pid)
        total["server" if pid == server_pid else "monitoring"] += instructions
    return Count(variant.key, model, total["server"] / REQUESTS, total["monitoring"] / REQUESTS)


def _h2load(url: str, body: Path, requests: int) -> None:
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
        f"`{command}`, {when}: each configuration of the table above, run under valgrind's "
        f"callgrind, answering {result.requests:,} of the same single-row requests per model "
        f"({CONNECTIONS} connections, h2load) after {WARMUP_REQUESTS:,} uncounted ones. The "
        "counts are the instructions all the server's processes executed for those requests, "
        "which the machine's other work changes little (two runs of a configuration differed "
        "by 0.6% at most), so a cost of a few percent is visible here where requests/s cannot "
        "show it. Instructions are not time: a copy or a system call weighs differently, so "
        "read these beside the CPU-time column above.",
        "",
        f"Callgrind runs the server some {STRETCH} times slower, so the settings that work by "
        f"the clock were made {STRETCH} times longer, to keep the server on the path it takes "
        "at full speed: "
        + ", ".join(f"`MODELPILOT_{key.upper()}={value}`" for key, value in FIXED.items())
        + ". Monitoring rounds then hold about as many requests as at full speed; the "
        "recomputation of drift and alerts, every 2 s however much traffic there is, is not "
        "in these counts.",
        "",
        "| model | configuration | server process | monitoring process | total | x off |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for model in models:
        off = result.of("off", model).total
        for variant in VARIANTS:
            count = result.of(variant.key, model)
            ratio = count.total / off
            cost = "" if variant.key == "off" else f" ({(ratio - 1) * 100:+.1f}%)"
            lines.append(
                f"| {model} | {variant.label} | {count.server:,.0f} | {count.monitoring:,.0f} "
                f"| {count.total:,.0f} | {ratio:.3f}x{cost} |"
            )
    lines += ["", "Instructions per request."]
    return "\n".join(lines) + "\n"
