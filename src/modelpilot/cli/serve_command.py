"""``modelpilot serve``: REST and gRPC servers over the registry."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelpilot.cli.common import ArtifactsOption, RegistryOption, make_settings
from modelpilot.errors import BadRequest, RegistryError

if TYPE_CHECKING:
    from modelpilot.config import Settings
    from modelpilot.registry.refs import ModelRef

logger = logging.getLogger("modelpilot.settings")


def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="REF",
            help="Serve NAME, NAME:VERSION or NAME@ALIAS (repeatable). Without it, every model "
            "in the registry at its production alias, else its latest version.",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Interface to bind. 0.0.0.0 serves every network the machine is on, with no "
            "authentication; 127.0.0.1 keeps it to this machine. "
            "Default: $MODELPILOT_HOST, else 0.0.0.0."
        ),
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(
            "--http-port",
            help="REST port; 0 takes a free port the system picks (printed at start). "
            "Default: $MODELPILOT_HTTP_PORT, else 8000.",
        ),
    ] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port",
            help="gRPC port; 0 turns gRPC off. Default: $MODELPILOT_GRPC_PORT, else 8001.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Server processes sharing the ports. Default: $MODELPILOT_WORKERS, else 1.",
        ),
    ] = None,
    onnx: Annotated[
        bool | None,
        typer.Option(
            "--onnx/--no-onnx",
            help="Serve scikit-learn, XGBoost and LightGBM models through ONNX Runtime when "
            "parity holds. Default: on.",
            show_default=False,
        ),
    ] = None,
    monitoring: Annotated[
        bool | None,
        typer.Option(
            "--monitoring/--no-monitoring",
            help="Watch served models: drift, predictions, labels, alerts, the inference log "
            "and /dashboard. Default: on.",
            show_default=False,
        ),
    ] = None,
    inference_log: Annotated[
        bool | None,
        typer.Option(
            "--inference-log/--no-inference-log",
            help="Keep inputs and outputs of requests next to the registry. Default: on.",
            show_default=False,
        ),
    ] = None,
    result_cache: Annotated[
        str | None,
        typer.Option(
            help="Cache answers to repeated inputs: off, memory, disk or redis "
            "(MODELPILOT_RESULT_CACHE_DIR / MODELPILOT_REDIS_URL). Default: off.",
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning, error or critical. Default: info."),
    ] = None,
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Serve models over REST (Open Inference Protocol v2, /predict, /docs) and gRPC.

    Stops gracefully on SIGTERM, SIGHUP (a closed terminal; ignored under nohup) or Ctrl-C:
    readiness turns false (on SIGTERM or SIGHUP the server goes on serving for
    MODELPILOT_SHUTDOWN_DRAIN_SECONDS, 5 s, so that load balancers stop sending first), then
    no new connections are taken, requests in flight finish, and the process exits.
    """
    from modelpilot.config import unknown_settings
    from modelpilot.registry.refs import ModelRef
    from modelpilot.server.logs import configure_logging

    settings = make_settings(
        warn_typos=False,  # logged below, where the server's log says the rest
        registry=registry,
        artifacts=artifacts,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        workers=workers,
        log_level=log_level,
        onnx=onnx,
        monitoring=monitoring,
        inference_log=inference_log,
        result_cache=result_cache,
    )
    _check_result_cache(settings, result_cache)
    refs = one_each([ModelRef.parse(m) for m in model or []])
    configure_logging(settings.log_level)
    for name in unknown_settings(os.environ):
        logger.warning("%s is no setting of ModelPilot's; ignored (see docs/settings.md)", name)
    created = registry_to_create(settings.registry)
    if created is not None:
        logger.warning(
            "there is no registry at %s: serving a new, empty one created there, which serves "
            "the models registered in it from now on; if you meant an existing registry, "
            "check --registry or MODELPILOT_REGISTRY",
            created,
        )
    if settings.workers > 1:
        from modelpilot.server.supervisor import Supervisor

        check_models(settings, refs)
        raise typer.Exit(Supervisor(settings, refs, settings.workers).run())
    from modelpilot.server.runner import serve as run

    run(settings, refs)


def _check_result_cache(settings: Settings, flag: str | None) -> None:
    """BadRequest if ``--result-cache`` asks for a cache whose setting is missing: said by the
    flag's name, where the engine, not knowing a flag, names MODELPILOT_RESULT_CACHE."""
    needs = {"disk": "MODELPILOT_RESULT_CACHE_DIR", "redis": "MODELPILOT_REDIS_URL"}
    if flag is None or flag not in needs:
        return
    have = settings.result_cache_dir if flag == "disk" else settings.redis_url
    if not have:
        raise BadRequest(f"--result-cache {flag} needs {needs[flag]}")


def one_each(refs: list[ModelRef]) -> list[ModelRef]:
    """``refs``, or BadRequest if two name one model: a server serves one reference of each
    model (its requests without a version go there; any version is reachable by number)."""
    seen: dict[str, ModelRef] = {}
    for ref in refs:
        earlier = seen.setdefault(ref.name, ref)
        if earlier is not ref:
            raise BadRequest(
                f"--model {earlier} and --model {ref} name the same model: a server serves "
                f"one reference of each (its requests without a version go there; any "
                f"version is reachable as /v2/models/{ref.name}/versions/N)"
            )
    return refs


def registry_to_create(location: str) -> Path | None:
    """The directory ``serve`` is to create an empty registry in (None: there is one, or the
    location is a URL); RegistryError if not even its parent directory exists.

    A server started on an empty registry serves the models registered in it later (a fresh
    start: a volume mounted empty), so ``serve`` creates one where there is none, as
    ``register`` does; but a mistyped path did the same, said only that it had no models
    yet, and reported ready, while the read commands refused it. Now it says that it created
    the registry, and a path whose parent is missing, more likely a typo than a fresh start,
    is refused as the read commands refuse it."""
    if "://" in location:
        return None
    directory = Path(location)
    if (directory / "registry.db").is_file():
        return None
    parent = directory.absolute().parent
    if not parent.is_dir():
        raise RegistryError(
            f"there is no registry at {location} (no such directory, nor its parent {parent} "
            "to create an empty one in): check --registry or MODELPILOT_REGISTRY; to start on "
            f"an empty registry there, create {parent} first"
        )
    return directory


def check_models(settings: Settings, refs: Sequence[ModelRef]) -> None:
    """Raise, as one process serving alone would, if a reference names no version.

    Before workers start: each worker would fail on it and be started again, and the error
    would reach the user as the workers' tracebacks rather than as one line."""
    from modelpilot.registry.store import Registry

    if not refs:
        return
    registry = Registry.open(settings.registry, settings.artifacts)
    try:
        for ref in refs:
            registry.resolve(ref)
    finally:
        registry.close()


def install(app: typer.Typer) -> None:
    app.command()(serve)
