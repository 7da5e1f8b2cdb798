"""Log format of the server processes."""

from __future__ import annotations

import logging


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # uvicorn's own error logger would print each message twice through ours.
    logging.getLogger("uvicorn.error").propagate = True
