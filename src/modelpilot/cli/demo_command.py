"""``modelpilot demo``: train, register, serve, and call a model over REST and gRPC."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from modelpilot.cli.common import (
    ArtifactsOption,
    RegistryOption,
    err,
    make_settings,
    open_registry,
    out,
)
from modelpilot.errors import Conflict, ModelNotFound, ModelPilotError

if TYPE_CHECKING:
    from modelpilot.registry.store import Registry

MODEL = "iris"
SPARE_MODEL = "iris-demo"
"""The demo's name where the registry's ``iris`` is someone else's model."""
DESCRIPTION = "modelpilot demo: iris logistic regression"
"""The description of every version the demo registers: how it knows its own models."""
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS_FILE = Path("modelpilot-demo-rows.csv")
"""The held-out rows the demo sends, written to the working directory for ``modelpilot
predict`` to score as the closing text says."""


def _model_name(reg: Registry) -> str:
    """The name to register the demo's model under: ``iris``, unless the registry holds a
    model of that name the demo did not make, then ``iris-demo``.

    The demo moves its model's ``production`` alias, which a server follows: on a model that
    is not the demo's own, that would put the demo's version in front of the owner's
    traffic. A model is the demo's when every one of its versions is."""
    for name in (MODEL, SPARE_MODEL):
        try:
            versions = reg.list_versions(name)
        except ModelNotFound:
            return name
        if all(v.metadata.get("description") == DESCRIPTION for v in versions):
            return name
    raise Conflict(
        f"the registry at {reg.location} already holds models named {MODEL} and "
        f"{SPARE_MODEL} that the demo did not register, and the demo changes no model but "
        "its own: run it on a registry of its own, for example "
        "modelpilot demo --registry /tmp/modelpilot-demo"
    )


def _port(preferred: int, what: str) -> int:
    """``preferred`` if nobody listens there, else a free port, said so: the closing text's
    addresses and commands then differ from what the user asked for. Port 0 is any free
    port: the demo must know its ports to call them (and gRPC, which 0 turns off in
    ``serve``, is part of what it shows)."""
    with socket.socket() as sock:
        try:
            if preferred:
                sock.bind(("127.0.0.1", preferred))
                return preferred
        except OSError:
            pass
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    busy = f"port {preferred} is busy" if preferred else "port 0 takes a free port"
    err.print(f"[bold]note:[/] {busy}; serving {what} on 127.0.0.1:{port} instead", highlight=False)
    return port


def _train(workdir: Path, rows_file: Path) -> tuple[Path, Path, object, object, list[str]]:
    """A logistic regression on iris (shipped with scikit-learn), saved with its data in
    ``workdir``, and the held-out rows (which the demo sends) in ``rows_file``."""
    import joblib
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=FEATURES)
    x_train, x_test, y_train, y_test = train_test_split(
        frame, iris.target, test_size=0.2, random_state=0, stratify=iris.target
    )
    model = LogisticRegression(max_iter=500).fit(x_train, y_train)
    model_path = workdir / "iris.joblib"
    joblib.dump(model, model_path)
    reference = workdir / "iris-train.csv"
    x_train.assign(species=y_train).to_csv(reference, index=False)
    x_test.to_csv(rows_file, index=False)
    return model_path, reference, x_test, y_test, list(iris.target_names)


def demo(
    http_port: Annotated[
        int | None,
        typer.Option(
            "--http-port",
            help="REST port; a busy one (or 0) is swapped for a free one, said so. "
            "Default: $MODELPILOT_HTTP_PORT, else 8000.",
            show_default=False,
        ),
    ] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port",
            help="gRPC port; a busy one (or 0) is swapped for a free one, said so. "
            "Default: $MODELPILOT_GRPC_PORT, else 8001.",
            show_default=False,
        ),
    ] = None,
    keep_serving: Annotated[
        bool | None,
        typer.Option(
            "--keep-serving/--no-keep-serving",
            help="Keep the server up until Ctrl-C. Default: when run in a terminal.",
            show_default=False,
        ),
    ] = None,
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Train a small model, register it, serve it, and call it over REST and gRPC.

    Each run registers a new version of the model iris (or iris-demo, where the registry's
    iris is not the demo's) and points its production alias there; it touches no other
    model. The held-out rows it sends are written to modelpilot-demo-rows.csv in the current
    folder, for modelpilot predict to score. A busy port is swapped for a free one, said so.
    """
    from modelpilot.serving.registration import register_model

    serving = keep_serving if keep_serving is not None else sys.stdout.isatty()
    # As serve takes them: the settings, with the flags on top. Checked before any work.
    ports = make_settings(http_port=http_port, grpc_port=grpc_port)
    reg = open_registry(registry, artifacts, create=True)
    location = reg.location
    try:
        model = _model_name(reg)
        if model != MODEL:
            err.print(
                f"[bold]note:[/] the registry's model {MODEL} was not made by the demo, which "
                f"leaves it as it is and registers its own as {model}",
                highlight=False,
            )
        with tempfile.TemporaryDirectory(prefix="modelpilot-demo-") as tmp:
            err.print(
                "[bold]1/5[/] training a logistic regression on the iris data set; the rows "
                f"held out of training go to {escape(str(ROWS_FILE))}",
                highlight=False,
            )
            model_path, reference, x_test, y_test, names = _train(Path(tmp), ROWS_FILE)
            version = register_model(
                reg,
                model,
                model_path,
                reference=reference,
                target="species",
                aliases=["production"],
                metadata={"description": DESCRIPTION},
            )
    finally:
        reg.close()
    err.print(
        f"[bold]2/5[/] registered [bold]{model}[/] version {version.version} in "
        f"{escape(str(location))} "
        "(alias production, with a reference profile and its accuracy on the training data)",
        highlight=False,
    )
    http, grpc_ = _port(ports.http_port, "REST"), _port(ports.grpc_port, "gRPC")
    # The registry as the user named it (a location shown by the registry hides a database
    # password and turns sqlite:///FILE into FILE); without --registry, the server finds it
    # as this process did ($MODELPILOT_REGISTRY, else the default), and so do the hints.
    where = (["--registry", registry] if registry is not None else []) + (
        ["--artifacts", str(artifacts)] if artifacts is not None else []
    )
    command = [
        sys.executable,
        "-m",
        "modelpilot",
        "serve",
        *where,
        "--host",
        "127.0.0.1",
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc_),
        "--model",
        model,
        "--log-level",
        "warning",
    ]
    err.print(
        f"[bold]3/5[/] starting the server: {escape(shlex.join(command[2:]))}", highlight=False
    )
    server = subprocess.Popen(command)
    try:
        _wait_ready(f"http://127.0.0.1:{http}", server)
        err.print("[bold]4/5[/] calling it")
        _call(model, http, grpc_, x_test, y_test, names)
        if ports.monitoring:
            err.print(
                "[bold]5/5[/] watching it: scoring the held-out rows and posting their labels"
            )
            _watch(model, http, x_test, y_test)
        else:  # the server takes the setting from this environment: no labels, no drift
            err.print(
                "[bold]5/5[/] skipped: monitoring is off (MODELPILOT_MONITORING=false), so "
                "the server takes no labels and shows no drift; unset it to see this step",
                highlight=False,
            )
        if serving:
            _next_steps(model, http, grpc_, where, serving=True)
            err.print("Serving until Ctrl-C...")
            while server.poll() is None:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            # As Ctrl-C stops it: no drain, which only a load balancer needs (SIGTERM's).
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    if server.returncode not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise typer.Exit(1)
    if not serving:  # said once the server is down, so that it says what is true
        _next_steps(model, http, grpc_, where, serving=False)


READY_SAID_SECONDS = 20.0
"""After this long without the server ready, the demo says it is still waiting, and why."""


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    """Wait for the server started for the demo; on a busy machine (a load of 15 on two
    cores) it took 10-30 s by hand and over the 60 s the demo waited."""
    import httpx

    started = time.monotonic()
    deadline = started + timeout
    said = False
    while time.monotonic() < deadline:
        if not said and time.monotonic() - started > READY_SAID_SECONDS:
            said = True
            err.print(
                f"  the server is not ready yet after {READY_SAID_SECONDS:.0f} s (it loads "
                "slowly on a busy machine); waiting up to "
                f"{timeout:.0f} s",
                highlight=False,
            )
        if server.poll() is not None:
            raise ModelPilotError(f"the server exited with code {server.returncode} at start-up")
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ModelPilotError(
        f"the server was not ready after {timeout:.0f} s (its process still running): the "
        "machine may be too busy; run the demo again once it is quieter, or start the server "
        "by hand (the command above) and wait for /v2/health/ready"
    )


def _call(
    model: str, http: int, grpc_port: int, x_test: object, y_test: object, names: list[str]
) -> None:
    import grpc
    import httpx
    import numpy as np

    from modelpilot.server.grpc.generated import inference_pb2 as pb
    from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc

    rows = np.asarray(x_test)[:5]
    truth = np.asarray(y_test)[:5]
    base = f"http://127.0.0.1:{http}"
    v2 = httpx.post(
        f"{base}/v2/models/{model}/infer",
        json={
            "id": "demo-rest",
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "data": rows.ravel().tolist(),
                }
            ],
        },
        timeout=10,
    ).json()
    rest_labels = next(o["data"] for o in v2["outputs"] if o["name"] == "predict")
    simple = httpx.post(
        f"{base}/predict/{model}",
        json={"instances": [dict(zip(FEATURES, map(float, row), strict=True)) for row in rows]},
        timeout=10,
    ).json()
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name=model, id="demo-grpc")
        request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
        request.raw_input_contents.append(rows.astype("<f8").tobytes())
        reply = stub.ModelInfer(request, timeout=10)
        grpc_labels = np.frombuffer(reply.raw_output_contents[0], dtype="<i8").tolist()
    table = Table("row", "features", "truth", "REST v2", "/predict", "gRPC")
    for i, row in enumerate(rows):
        table.add_row(
            str(i),
            ", ".join(f"{v:.1f}" for v in row),
            names[int(truth[i])],
            names[rest_labels[i]],
            names[simple["predictions"][i]],
            names[grpc_labels[i]],
        )
    out.print(table)
    if not rest_labels == simple["predictions"] == grpc_labels:
        raise ModelPilotError("REST and gRPC disagree; this is a bug, please report it")


def _watch(model: str, http: int, x_test: object, y_test: object) -> None:
    """Score the held-out rows, post their true labels, and show what monitoring made of it."""
    import httpx
    import numpy as np

    base = f"http://127.0.0.1:{http}"
    rows, truth = np.asarray(x_test), np.asarray(y_test)
    with httpx.Client(base_url=base, timeout=10) as client:
        labels = []
        for start in range(0, len(rows), 5):
            reply = client.post(
                f"/predict/{model}", json={"data": rows[start : start + 5].tolist()}
            )
            reply.raise_for_status()
            labels.append(
                {"request_id": reply.json()["id"], "label": truth[start : start + 5].tolist()}
            )
        client.post(f"/api/feedback/{model}", json={"labels": labels}).raise_for_status()
        report: dict[str, object] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = client.get(f"/api/monitoring/{model}")
            if reply.status_code == 200:
                report = reply.json()
                window = report.get("drift") or {}
                # The labels show at once; the drift window at the monitor's next report
                # (every MODELPILOT_MONITOR_INTERVAL_SECONDS), which takes the scored rows.
                filled = isinstance(window, dict) and window.get("window_rows", 0) >= len(rows)
                if report.get("performance") and filled:
                    break
            time.sleep(0.3)
    performance = report.get("performance") or {}
    drift = report.get("drift") or {}
    assert isinstance(performance, dict) and isinstance(drift, dict)
    current = performance.get("current", {})
    reference = performance.get("reference", {})
    if current:
        out.print(
            f"accuracy on {performance.get('labels')} labelled rows: "
            f"{current.get('accuracy', float('nan')):.3f} "
            f"(training data: {reference.get('accuracy', float('nan')):.3f}); "
            f"drift window: {drift.get('window_rows', 0)} rows, drifted features: "
            f"{', '.join(drift.get('drifted_features', [])) or 'none'}",
            highlight=False,
        )


def _next_steps(model: str, http: int, grpc_port: int, where: list[str], serving: bool) -> None:
    """Where the model answers and what to try next: while the server runs, or, once it has
    stopped (``--no-keep-serving``), how to serve the model again first. Every command works
    as printed, from the demo's working directory (``where``: its registry flags)."""
    base = f"http://127.0.0.1:{http}"
    registry = "".join(f" {shlex.quote(arg)}" for arg in where)
    serve = (
        f"modelpilot serve --model {model} --host 127.0.0.1 --http-port {http} "
        f"--grpc-port {grpc_port}{registry}"
    )
    endpoints = [
        f"REST       {base}/v2/models/{model}   (OpenAPI docs: {base}/docs)",
        f"gRPC       127.0.0.1:{grpc_port}   (inference.GRPCInferenceService)",
        f"Dashboard  {base}/dashboard",
        f"Metrics    {base}/metrics   (Prometheus)   alerts: {base}/api/alerts",
    ]
    if not serving:
        endpoints = [
            "Serve it again, where it was:",
            f"  {serve}",
            "and it answers at:",
            *endpoints,
        ]
    text = "\n".join(
        [
            *endpoints,
            "",
            "Try next:",
            # A request id of the user's choosing, so that the label below can name it.
            f"  curl -s {base}/predict/{model} -d "
            f'\'{{"id": "try-1", "data": [5.1, 3.5, 1.4, 0.2]}}\'',
            f'  curl -s {base}/api/feedback/{model} -d \'{{"request_id": "try-1", "label": 0}}\'',
            f"  modelpilot models{registry}",
            f"  modelpilot versions {model}{registry}",
            f"  modelpilot predict {model}@production {ROWS_FILE} --output scored.csv{registry}",
            f"  modelpilot drift --model {model}{registry}   # drift of the logged traffic",
            # While the demo serves, its ports are taken: serving again waits for Ctrl-C.
            *(["", "After Ctrl-C, serve it again:", f"  {serve}"] if serving else []),
        ]
    )
    # Plain lines that never wrap, so that every command can be copied as it stands.
    out.rule("ModelPilot is serving" if serving else "The demo's server has stopped")
    out.print(text, highlight=False, soft_wrap=True)


def install(app: typer.Typer) -> None:
    app.command()(demo)
