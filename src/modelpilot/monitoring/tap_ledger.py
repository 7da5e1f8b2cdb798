"""What a ``TapProcess`` hands its monitoring process, and what one that dies takes with it.

The child counts what it takes into running totals (requests, rows, predictions by class,
labels), which the server reads with its windows every evaluation (``states``). A child that
dies (crashed, killed, or killed as hung) is replaced by one that counts from zero: the totals
it last told carry on beside the new one's, so that the model's counters never go back, and
what it was handed after it last told them (taken into its windows only, still in the pipe, or
waiting for room in it) is lost with it. That loss counts in ``dropped``, as do the rounds
refused while a child was too far behind and those answered while none ran; each is said once,
with how many requests and why.

The counters went wrong twice over where they were kept apart: a child stopped with SIGSTOP
and killed as hung lost some 6,300 requests (20 s of them) that no counter and no line told
of, and a server whose evaluation found the child dead before its replacement answered forgot
the totals it had told, so that ``modelpilot_prediction_class_total`` went back to 0.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from modelpilot.monitoring.monitor_state import MonitorState, totals_of
from modelpilot.repeated_errors import REPEAT_SECONDS

logger = logging.getLogger(__name__)


class TapLedger:
    """The requests a ``TapProcess`` handed over or dropped, and the totals of its dead
    children. Thread-safe; the tap calls ``told`` and ``died`` under the lock that orders
    its answers against the replacement of its child, so that each told state is carried
    on, or counted as lost, exactly once."""

    def __init__(self, behind_bytes: int) -> None:
        self._lock = threading.Lock()
        self._behind_bytes = behind_bytes
        """How many bytes of rounds wait for a child that is behind before rounds are refused
        (``tap_process.MAX_PENDING``), as said."""
        self.dropped = 0
        """Requests left unmonitored: refused (the child behind, or none there), or lost
        with a child that died before it told it had counted them."""
        self._carried: list[MonitorState] = []
        """The running totals of the children that died, each as it last told them."""
        self._handed = 0
        """Requests handed to this child (in the pipe, waiting for room in it, or taken)."""
        self._told: list[MonitorState] = []
        """This child's states as it last told them."""
        self._refused = 0
        """Requests refused while a child was behind, not yet said."""
        self._refused_said_at = -math.inf
        self._unserved = 0
        """Requests answered while no child ran, not yet said."""

    def handed(self, requests: int) -> None:
        with self._lock:
            self._handed += requests

    def refused(self, requests: int) -> None:
        """``requests`` were refused: the child is too far behind (more than
        ``behind_bytes`` of rounds wait for it)."""
        with self._lock:
            self.dropped += requests
            self._refused += requests

    def unserved(self, requests: int) -> None:
        """``requests`` were answered while no child ran (or after the tap closed)."""
        with self._lock:
            self.dropped += requests
            self._unserved += requests

    def told(self, states: list[MonitorState]) -> list[MonitorState]:
        """The child there now told ``states``: they, with the totals carried on from the
        children before it. Says, at most once every ``REPEAT_SECONDS``, how many requests
        were refused meanwhile (a child that fell behind and caught up)."""
        now = time.monotonic()
        with self._lock:
            self._told = states
            refused = self._refused if now - self._refused_said_at >= REPEAT_SECONDS else 0
            if refused:
                self._refused, self._refused_said_at = 0, now
            carried = list(self._carried)
        if refused:
            logger.warning(
                "the monitoring process fell behind (more than %s of rounds waited for it): "
                "%d answered requests were left unmonitored (modelpilot_monitor_dropped_total; "
                "not in the inference log, and labels for them are refused as unknown)",
                _size(self._behind_bytes),
                refused,
            )
        return [*states, *carried]

    def died(self) -> str:
        """The child there is dead: its totals carry on as it last told them, and what it
        was handed after that counts as dropped. Returns what was lost with it, to be said in
        the line that says it died."""
        with self._lock:
            told = sum(state.requests for state in self._told)
            lost = max(self._handed - told, 0)
            self.dropped += lost
            self._carried += [totals_of(state) for state in self._told]
            self._told, self._handed = [], 0
            refused, self._refused = self._refused, 0
        if not lost and not refused:
            return "It had told all it was handed: no request went unmonitored."
        said = (
            f"{lost} answered requests went unmonitored with it, handed to it after it last "
            "told its counts (in no total or window; in the inference log only as far as it "
            "had written them)"
        )
        if refused:
            said += (
                f", and {refused} more were refused as it fell behind (more than "
                f"{_size(self._behind_bytes)} of rounds waited for it)"
            )
        return said + ": counted in modelpilot_monitor_dropped_total."

    def started(self) -> int:
        """A new child starts: returns how many requests were answered while none ran."""
        with self._lock:
            self._told, self._handed = [], 0
            unserved, self._unserved = self._unserved, 0
        return unserved


def _size(count: int) -> str:
    return f"{count >> 20} MiB" if count >= 1 << 20 else f"{count} bytes"
