"""The versions before the one a reference points at, to start on when that one does not load.

Owns the alias's history as the registry tells it (and, for a model served at its latest
version, the versions registered before it), the walk back through them to the newest version
that loads, and the way back to tell the operator when none does. ``ServedModels`` decides
when to start on one, and ``stalled_start`` serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Executor

from modelpilot.errors import ArtifactError, MissingExtra, ModelPilotError
from modelpilot.registry.refs import PRODUCTION
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.pool import ModelPool


async def alias_history(
    registry: Registry, executor: Executor, model: str, alias: str
) -> tuple[int | None, list[int]]:
    """The version ``model@alias`` points at, and those it pointed at before, newest first
    (None, and none before, when the registry cannot say)."""
    run = asyncio.get_running_loop().run_in_executor  # registry lookups block
    number: int | None = None
    earlier: list[int] = []
    with contextlib.suppress(ModelPilotError):
        number = (await run(executor, registry.aliases, model)).get(alias)
        if number is not None:
            earlier = await run(executor, registry.previous_targets, model, alias)
    return number, earlier


async def versions_before_latest(
    registry: Registry, executor: Executor, model: str
) -> tuple[int | None, list[int]]:
    """``model``'s latest version, and those registered before it, newest first (None, and
    none before, when the registry cannot say): where a model served at its latest version
    was before, as a running server stays on the version it served when a newer one does
    not load."""
    run = asyncio.get_running_loop().run_in_executor  # registry lookups block
    numbers: list[int] = []
    with contextlib.suppress(ModelPilotError):
        numbers = sorted(v.version for v in await run(executor, registry.list_versions, model))
    if not numbers:
        return None, []
    return numbers[-1], numbers[-2::-1]


async def first_that_loads(
    registry: Registry, pool: ModelPool, executor: Executor, model: str, earlier: list[int]
) -> tuple[ModelVersion | None, ArtifactError | MissingExtra | None]:
    """The newest of ``earlier`` (versions of ``model``, newest first) loaded into ``pool``;
    else None, and the last one's error (None when ``earlier`` names none)."""
    run = asyncio.get_running_loop().run_in_executor  # registry lookups block
    failed = None
    # Back through the history to the newest version that loads: an alias moved to two
    # broken versions in a row left a running server on the one before both.
    for before in earlier:
        previous = await run(executor, registry.get_version, model, before)
        try:
            await pool.get(previous)
        except (ArtifactError, MissingExtra) as again:
            failed = again
            continue
        return previous, None
    return None, failed


def way_back(
    model: str,
    alias: str,
    number: int,
    earlier: list[int],
    failed: ArtifactError | MissingExtra | None,
    others: list[str],
) -> str:
    """What to do when ``model@alias`` points at version ``number``, which does not load,
    and there is no version before it to start on: the history names none (``earlier``),
    or none of those loaded either (the last one's error, ``failed``). ``others``: the
    references of the other models served, to serve without it."""
    if failed is None:
        # Not `modelpilot rollback`: it goes only where the history says, as here.
        back = (
            "and its history names no version it pointed at before, to start on instead. "
            f"Point the alias at a version that loads with "
            f"`modelpilot alias {model} {alias} VERSION`"
        )
    else:
        versions = (
            f"does version {earlier[0]}"
            if len(earlier) == 1
            else f"do versions {', '.join(map(str, earlier))}"
        )
        back = (
            f"nor {versions}, where it pointed before ({failed.message.rstrip('.')}). "
            f"Point the alias at a version that loads with "
            f"`modelpilot alias {model} {alias} VERSION`"
        )
    without = f", or serve the other models without it: --model {' --model '.join(others)}"
    return (
        f"{model}@{alias} points at version {number}, which does not load, {back}"
        f"{without if others else ''}."
    )


def way_back_from_latest(
    model: str,
    number: int,
    earlier: list[int],
    failed: ArtifactError | MissingExtra | None,
    others: list[str],
) -> str | None:
    """What to do when ``model`` is served at its latest version, ``number``, which does not
    load, and no version registered before it (``earlier``) loads either (the last one's
    error, ``failed``); None when there is nothing to add to the load's own error (the
    model's only version, and no other model served)."""
    if not earlier and not others:
        return None
    if failed is None:
        back = "and it has no version before it to start on instead"
    else:
        versions = (
            f"does version {earlier[0]}"
            if len(earlier) == 1
            else f"do versions {', '.join(map(str, earlier))}"
        )
        back = f"nor {versions}, registered before it ({failed.message.rstrip('.')})"
    without = f", or serve the other models without it: --model {' --model '.join(others)}"
    return (
        f"{model}:{number}, its latest version (served as no alias {PRODUCTION} names one), "
        f"does not load, {back}. Register a version that loads with `modelpilot register "
        f"{model} FILE`{without if others else ''}."
    )
