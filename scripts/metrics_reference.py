"""Write docs/metrics.md, every ``modelpilot_*`` metric family a server exports on /metrics with
its type, labels and meaning, from the families an in-process server really exports;
``--check`` fails if the committed page is stale.

python scripts/metrics_reference.py          # rewrite docs/metrics.md
python scripts/metrics_reference.py --check  # CI: exit 1 if it differs

The server is built as the tests build one (tests/monitoring/conftest.py, ``metrics_text``):
an iris classifier and a diabetes regressor, both registered with labelled reference data,
served with monitoring on and a result cache, sent traffic (the classifier's shifted, so that
its drift alert fires), one label post and a monitoring round; /metrics then holds every family
with its HELP and TYPE lines, and a series of nearly each, whose labels the page lists. The
same server is built again without the monitoring process, without monitoring and without the
result cache, to say which families exist only with them, and as worker 0 of
``serve --workers 2``, whose per-process registry names the families exported there by
``worker``. What a family means beyond its HELP text (its unit, the values of its labels) is
written in ``NOTES`` below: a family exported but not in it stops the script, naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "metrics.md"
sys.path.insert(0, str(ROOT / "scripts"))
from metrics_notes import GROUPS, MONITORED, NOTES, Note  # noqa: E402


@dataclass
class Family:
    name: str
    """As its ``# TYPE`` line names it (counters with ``_total``)."""
    type: str
    help: str
    labels: set[str] = field(default_factory=set)
    sampled: bool = False


@dataclass
class Exported:
    families: dict[str, Family]
    """Every family of the full server (monitoring, its process, a result cache)."""
    without_process: set[str]
    without_monitoring: set[str]
    without_cache: set[str]
    per_worker: set[str]
    """The families each worker of ``serve --workers`` exports with a ``worker`` label."""


def exported() -> Exported:
    """Build the servers in a temporary directory and read what they export."""
    with tempfile.TemporaryDirectory(prefix="metrics-reference-") as scratch:
        from modelpilot.registry.store import Registry

        registry = Registry.open(Path(scratch) / "registry")
        try:
            _register(registry, Path(scratch))
            families = asyncio.run(_scrape(registry))
            return Exported(
                families,
                _names(registry, monitor_process=False),
                _names(registry, monitoring=False),
                _names(registry, result_cache="off"),
                _names(
                    registry,
                    worker_dir=Path(scratch) / "workers",
                    workers=2,
                    worker_index=0,
                    local=True,
                ),
            )
        finally:
            registry.close()


def _register(registry: object, scratch: Path) -> None:
    import joblib
    import pandas as pd
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression

    from modelpilot.registry.store import Registry
    from modelpilot.serving.registration import register_model

    assert isinstance(registry, Registry)
    iris = load_iris()
    x = pd.DataFrame(iris.data, columns=[n.removesuffix(" (cm)") for n in iris.feature_names])
    joblib.dump(LogisticRegression(max_iter=500).fit(x, iris.target), scratch / "iris.joblib")
    reference = x.assign(species=iris.target)
    register_model(registry, "iris", scratch / "iris.joblib", reference=reference, target="species")
    diabetes = load_diabetes()
    d = pd.DataFrame(diabetes.data, columns=diabetes.feature_names)
    forest = RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0)
    joblib.dump(forest.fit(d, diabetes.target), scratch / "forest.joblib")
    reference = d.assign(progression=diabetes.target)
    register_model(
        registry, "forest", scratch / "forest.joblib", reference=reference, target="progression"
    )


def _settings(registry: object, **overrides: object) -> object:
    from modelpilot.config import Settings
    from modelpilot.registry.store import Registry

    assert isinstance(registry, Registry)
    base: dict[str, object] = {
        "registry": registry.location,
        "drift_window_rows": 400,
        "performance_min_labels": 20,
        "result_cache": "memory",
        "alert_webhook_url": None,
        "shutdown_drain_seconds": 0,
    }
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


async def _scrape(registry: object) -> dict[str, Family]:
    """/metrics of the full server after traffic, a label and a monitoring round."""
    import httpx
    import numpy as np
    from sklearn.datasets import load_diabetes, load_iris

    from modelpilot.config import Settings
    from modelpilot.monitoring.process import ProcessMonitoring
    from modelpilot.registry.store import Registry
    from modelpilot.server.rest import create_app
    from modelpilot.serving.engine import InferenceEngine

    assert isinstance(registry, Registry)
    config = _settings(registry)
    assert isinstance(config, Settings)
    engine = InferenceEngine(registry, config)
    monitoring = ProcessMonitoring.for_engine(engine, config)
    assert monitoring.monitor is not None
    await engine.start()
    app = create_app(engine, config, monitoring)
    rng = np.random.default_rng(0)
    iris, diabetes = load_iris().data, load_diabetes().data
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
            ids = []
            for _ in range(20):
                rows = iris[rng.integers(0, len(iris), 10)].copy()
                rows[:, 0] += 3.0  # sepal length, four reference deviations up: drift
                reply = await client.post("/predict/iris", json={"data": rows.tolist()})
                ids.append(reply.json()["id"])
                rows = diabetes[rng.integers(0, len(diabetes), 10)]
                await client.post("/predict/forest", json={"data": rows.tolist()})
            await client.post("/predict/forest", json={"data": rows.tolist()})  # a cache hit
            await client.post("/predict/no-such-model", json={"data": [[1.0]]})  # a 404
            monitoring.monitor.flush()
            labels = {"labels": [{"request_id": i, "label": [0] * 10} for i in ids]}
            reply = await client.post("/api/feedback/iris", json=labels)
            reply.raise_for_status()
            monitoring.monitor.flush()
            text = (await client.get("/metrics")).text
    finally:
        await engine.stop()
        monitoring.stop()
    return parse(text)


def _names(registry: object, local: bool = False, **overrides: object) -> set[str]:
    """The families a server built with ``overrides`` exports (``local``: those of its
    per-process registry, which a worker exports by ``worker``), read without traffic."""
    from prometheus_client import generate_latest

    from modelpilot.config import Settings
    from modelpilot.monitoring.process import ProcessMonitoring
    from modelpilot.monitoring.siblings import prometheus_dir
    from modelpilot.registry.store import Registry
    from modelpilot.serving.engine import InferenceEngine

    assert isinstance(registry, Registry)
    config = _settings(registry, **overrides)
    assert isinstance(config, Settings)
    if config.worker_dir is not None:  # as ``serve --workers`` makes it for its workers
        prometheus_dir(config.worker_dir).mkdir(parents=True)
    engine = InferenceEngine(registry, config)
    monitoring = ProcessMonitoring.for_engine(engine, config)
    try:
        if local:
            assert monitoring.exchange is not None
            text = generate_latest(monitoring.exchange.local).decode()
        else:
            text = generate_latest(monitoring.registry).decode()
    finally:
        monitoring.stop()
    return set(parse(text))


def parse(text: str) -> dict[str, Family]:
    """The ``modelpilot_*`` families of an exposition in the Prometheus text format."""
    families: dict[str, Family] = {}
    for line in text.splitlines():
        if line.startswith("# HELP modelpilot_"):
            name, _, said = line.removeprefix("# HELP ").partition(" ")
            families.setdefault(name, Family(name, "", "")).help = _unescape(said)
        elif line.startswith("# TYPE modelpilot_"):
            name, _, kind = line.removeprefix("# TYPE ").partition(" ")
            families.setdefault(name, Family(name, "", "")).type = kind
        elif line.startswith("modelpilot_"):
            sample, _, labels = line.partition("{")
            sample = sample.split(" ")[0]
            family = families.get(sample) or next(
                (families[sample.removesuffix(s)] for s in SUFFIXES if sample.endswith(s)),
                None,
            )
            if family is None:
                continue
            family.sampled = True
            if labels:
                inner = labels.rsplit("}", 1)[0]
                family.labels |= {part.split("=")[0] for part in _pairs(inner)} - {"le"}
    return families


SUFFIXES = ("_bucket", "_sum", "_count")


def _pairs(inner: str) -> Iterator[str]:
    """The ``name="value"`` pairs of a sample's label set (values may hold commas)."""
    start, quoted, escaped = 0, False, False
    for i, char in enumerate(inner):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            yield inner[start:i].strip()
            start = i + 1
    if inner[start:].strip():
        yield inner[start:].strip()


def _unescape(text: str) -> str:
    return text.replace("\\n", " ").replace("\\\\", "\\")


HEAD = """# Metrics

Every metric family that `GET /metrics` exports, in the Prometheus text format. All are named
`modelpilot_*`; counters end in `_total`, and a histogram `NAME` is the series `NAME_bucket`
(by `le`), `NAME_sum` and `NAME_count`. There are no `_created` series. The meaning starts with
the family's own HELP text, as `/metrics` gives it.

With `serve --workers N`, whichever worker a scrape reaches answers for the whole server: the
service counters and histograms are summed over every worker that ran (a worker killed with
SIGKILL loses the counts of its last second, not yet written out; see the README, "Watching
it"), the model families are merged from every worker's windows, and the families marked
**per worker** below are exported once for each worker, with a `worker` label (`0` to `N-1`)
on top of the labels listed. No family exists only with `--workers`.

This page is generated by `python scripts/metrics_reference.py` from the families an
in-process server exports (see its docstring for the traffic it is sent); the tests check that
it is fresh. A family listed with labels has them on every series; a label's values are given
where they are fixed.
"""


def render(found: Exported) -> str:
    unknown = sorted(set(found.families) - set(NOTES))
    if unknown:
        raise SystemExit(
            f"{', '.join(unknown)}: exported on /metrics but not described in "
            "scripts/metrics_notes.py: add each to NOTES (its group, and what its HELP "
            "text leaves out: the unit, the values of its labels)"
        )
    gone = sorted(n for n, note in NOTES.items() if n not in found.families and not note.absent)
    if gone:
        raise SystemExit(
            f"{', '.join(gone)}: described in scripts/metrics_notes.py but no longer exported: "
            "remove them from NOTES (or say in `absent` where they appear)"
        )
    parts = [HEAD]
    for group, title, intro in GROUPS:
        parts.append(f"\n## {title}\n\n{intro}\n\n| name | type | labels | meaning |\n")
        parts.append("| --- | --- | --- | --- |\n")
        for name, note in NOTES.items():
            if note.group == group:
                parts.append(_row(name, note, found))
    return "".join(parts)


def _row(name: str, note: Note, found: Exported) -> str:
    family = found.families.get(name)
    if note.absent:  # exported on some machines only: as NOTES has it, the same on every one
        if family is not None:
            _same(name, note, family, name in found.per_worker)
        kind, said, labels = note.type, note.help, set(note.labels or ())
        per_worker = note.per_worker
    elif family is None:
        raise AssertionError(name)  # render() stopped on it
    else:
        kind, said, labels = family.type, family.help, family.labels
        _agree(name, note, family)
        if not family.sampled:
            labels = set(note.labels or ())
        per_worker = name in found.per_worker
    cells = ", ".join(f"`{label}`" for label in sorted(labels))
    if per_worker:
        cells = f"{cells}; per worker" if cells else "per worker"
    meaning = " ".join(
        part for part in (_sentence(said), note.meaning, _only(name, note, found)) if part
    )
    meaning = meaning.replace("|", "\\|")
    return f"| `{name}` | {kind} | {cells} | {meaning} |\n"


def _agree(name: str, note: Note, family: Family) -> None:
    """Labels written in NOTES (for a family without series in the run) must be the
    family's, once it has series; a family without series must have them written."""
    if family.sampled and note.labels is not None and set(note.labels) != family.labels:
        raise SystemExit(
            f"{name}: its series carry {sorted(family.labels)}, scripts/metrics_notes.py says "
            f"{sorted(note.labels)}: correct NOTES"
        )
    if not family.sampled and note.labels is None:
        raise SystemExit(
            f"{name} had no series in the run: write its labels in scripts/metrics_notes.py"
        )


def _same(name: str, note: Note, family: Family, per_worker: bool) -> None:
    """A family that some machines do not export must be as NOTES has it where it is."""
    exported = (family.type, family.help, family.labels, per_worker)
    noted = (note.type, note.help, set(note.labels or ()), note.per_worker)
    if exported != noted:
        raise SystemExit(
            f"{name}: exported as {exported}, but scripts/metrics_notes.py says {noted}: "
            "correct NOTES"
        )


def _only(name: str, note: Note, found: Exported) -> str:
    if note.absent:
        return note.absent
    if note.group in MONITORED and name in found.without_monitoring:
        raise SystemExit(f"{name} is exported without monitoring too: move it out of {note.group}")
    conditions = []
    if name not in found.without_process:
        conditions.append("the monitoring process (`MODELPILOT_MONITOR_PROCESS`, on by default)")
    elif name not in found.without_monitoring and note.group not in MONITORED:
        conditions.append("monitoring on (`MODELPILOT_MONITORING`, the default)")
    if name not in found.without_cache:
        conditions.append("a result cache (`serve --result-cache`)")
    return f"Only with {' and '.join(conditions)}." if conditions else ""


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text.endswith((".", ")")) else text + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/metrics.md is stale")
    args = parser.parse_args()
    page = render(exported())
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            sys.exit("docs/metrics.md is stale: run python scripts/metrics_reference.py")
        return
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":  # the monitoring process is spawned: it imports this module again
    main()
