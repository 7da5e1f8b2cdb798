"""Errors that come again and again, logged once a minute with how often, not each time.

A database that is down fails every write of the inference log and every label posted until
it is back: a traceback for each (277 of them in nine seconds, in a tester's run) buries the
one line that says what is wrong. The first of a kind is logged whole; repeats are counted and
summed up at most once every ``REPEAT_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable

REPEAT_SECONDS = 60.0
"""How often an error that keeps coming back is logged again (with how many times it came)."""


class RepeatedErrors:
    """Errors of ``logger``, each kind logged the first time and then once per interval.

    Thread-safe."""

    def __init__(
        self, logger: logging.Logger, seconds: float = REPEAT_SECONDS, level: int = logging.ERROR
    ) -> None:
        self._logger = logger
        self.seconds = seconds
        self.level = level
        """The level each is logged at."""
        self._lock = threading.Lock()
        # kind -> (when last logged, repeats since)
        self._kinds: dict[Hashable, tuple[float, int]] = {}
        # kind -> the message and arguments it was last seen with
        self._said: dict[Hashable, tuple[str, tuple[object, ...]]] = {}

    def error(
        self,
        kind: Hashable,
        message: str,
        *args: object,
        exc_info: bool | BaseException | None = False,
    ) -> bool:
        """Log ``message % args`` if ``kind`` was not logged in the last ``seconds``;
        returns whether it was. ``exc_info``: with the traceback of the exception being
        handled (True) or of the one given, the first time only (None, as False: none)."""
        now = time.monotonic()
        with self._lock:
            last = self._kinds.get(kind)
            if last is not None and now - last[0] < self.seconds:
                self._kinds[kind] = (last[0], last[1] + 1)
                self._said[kind] = (message, args)
                return False
            self._kinds[kind] = (now, 0)
        if last is None:
            self._logger.log(self.level, message, *args, exc_info=exc_info)
        else:
            self._logger.log(
                self.level,
                message + " (%d times since it was last logged: it is logged once every %g s)",
                *args,
                last[1] + 1,
                self.seconds,
            )
        return True

    def flush(self) -> None:
        """Log each kind that came again since it was last logged, with how many times (on
        the way out: a burst that stopped was otherwise never counted)."""
        with self._lock:
            pending = [(kind, repeats) for kind, (_, repeats) in self._kinds.items() if repeats]
            said = {kind: self._said[kind] for kind, _ in pending}
            for kind, _ in pending:
                self._kinds[kind] = (time.monotonic(), 0)
        for kind, repeats in pending:
            message, args = said[kind]
            self._logger.log(
                self.level,
                message + " (%d times since it was last logged)",
                *args,
                repeats,
            )


def first_line(exc: BaseException) -> str:
    """``exc``'s message up to its first line break (SQLAlchemy's go on with the statement
    and a link, which the traceback logged with the first of them shows)."""
    text = str(exc)
    return text.split("\n", 1)[0] if text else type(exc).__name__
