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
    # httpx logs each request at INFO with its URL whole: the alert webhook's, a secret that
    # may carry a password or a token, went into the log with every notification. The
    # webhook logs its deliveries and failures itself, naming the receiver without them.
    logging.getLogger("httpx").setLevel(logging.WARNING)
