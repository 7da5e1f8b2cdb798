"""Starting a served model on the version before the one its reference points at, when that
one does not load at start-up: served as a stalled rollout (``ServedModels.stalled``).

``previous_versions`` finds the version before; this serves it, on ``ServedModels``'s behalf
(``ServedModels.start``), or says why it cannot.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from modelpilot.errors import ArtifactError, MissingExtra
from modelpilot.registry.refs import PRODUCTION
from modelpilot.serving.previous_versions import (
    alias_history,
    first_that_loads,
    versions_before_latest,
    way_back,
    way_back_from_latest,
)

if TYPE_CHECKING:
    from modelpilot.serving.served import ServedModels

# Said as the served models' own, as it was before it moved here (log filters name it).
logger = logging.getLogger("modelpilot.serving.served")


async def start_on_previous(
    self: ServedModels, model: str, exc: ArtifactError | MissingExtra
) -> None:
    """Serve ``model`` at the version before the one its reference points at, when that
    one did not load at start-up (``exc``): as a stalled rollout, the way a running server
    keeps serving the version before (the same ``rollout_stalled`` alert, the same
    retries, and traffic moves when the reference does). The version before is the one
    the alias pointed at before, or, for a model served at its latest version (no
    ``production`` alias), the newest one registered before it; back through either to
    the newest that loads. Else raise ``exc``, saying how to get back.

    A server restarted after a rollout stalled (a pod restarted, a deploy) did not start
    at all, so that every model it served went down, where the running server had kept
    them all up; with ``--workers``, a worker started in place of one that died did not
    start either, and the supervisor, giving up on it, stopped the others. A version
    asked for by number has no version before: a server does not start while a model it
    serves that way fails to load (Triton's default, ``--exit-on-error``).
    """
    ref = self._served[model].ref
    if ref.version is not None:
        raise exc
    alias = ref.alias or PRODUCTION
    number, earlier = await alias_history(self.registry, self._executor, model, alias)
    latest = number is None and ref.alias is None
    if latest:
        number, earlier = await versions_before_latest(self.registry, self._executor, model)
    if number is None or (model, number) in self.pool:
        raise exc
    previous, failed = await first_that_loads(
        self.registry, self.pool, self._executor, model, earlier
    )
    if previous is None:
        others = [str(s.ref) for name, s in self._served.items() if name != model]
        if latest:
            advice = way_back_from_latest(model, number, earlier, failed, others)
        else:
            advice = way_back(model, alias, number, earlier, failed, others)
        if advice is None:
            raise exc
        said = exc.message
        raise ArtifactError(f"{said}{' ' if said.endswith('.') else '. '}{advice}") from exc
    run = asyncio.get_running_loop().run_in_executor  # registry lookups block
    mv = await run(self._executor, self.registry.get_version, model, number)
    self.pool.pin(previous.key)
    self._served[model].current = previous
    self.stalled = {**self.stalled, model: (mv, str(exc))}
    where = (
        f"the newest version that loads before {model}'s latest (no alias {PRODUCTION})"
        if latest
        else f"where {model}@{alias} pointed before"
    )
    logger.error(
        "serving %s, %s: %s did not load (trying again every %g s): %s",
        previous,
        where,
        mv,
        self.settings.alias_refresh_seconds,
        exc,
    )
