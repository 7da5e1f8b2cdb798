"""How long a monitoring process that died waits to be replaced: at once after a steady run,
else after a wait that doubles with each early death in a row (``TapProcess``)."""

from __future__ import annotations

RESTART_SECONDS = 1.0
"""How long a child that died young (less than ``STEADY_SECONDS`` after its start) waits to be
replaced; the wait doubles with each such death in a row, up to ``MAX_RESTART_SECONDS``. A
child that had been running longer is replaced at once. While none runs, the server's rounds
are dropped (and counted): a fixed ten seconds between starts left a server whose child was
killed twice unmonitored for up to that, and the backoff still keeps a child that dies at
every start (its registry unreachable) from being started four times a second."""

MAX_RESTART_SECONDS = 30.0

STEADY_SECONDS = 60.0
"""A child that lived this long died of something new: it is replaced at once."""


class RestartBackoff:
    """The wait before the next child of one ``TapProcess`` starts, after one died."""

    def __init__(self) -> None:
        self.wait = 0.0
        """The last wait given (0: the child that died is replaced at once)."""

    def died(self, lived: float) -> float:
        """The wait for a child that died ``lived`` seconds after it started."""
        if lived >= STEADY_SECONDS:
            self.wait = 0.0
        else:
            wait = max(2 * self.wait, RESTART_SECONDS)
            self.wait = min(wait, MAX_RESTART_SECONDS)
        return self.wait
