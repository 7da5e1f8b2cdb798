"""Taps left open as the program exits, closed on its way out.

A program that ends without closing its taps has them closed here: multiprocessing's own
exit hook, which joins children after a SIGTERM, would otherwise wait for ours forever.
"""

from __future__ import annotations

import atexit

# Its exit hook is registered on import: before ours, so it runs after ours.
import multiprocessing.util  # noqa: F401
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelpilot.monitoring.tap_process import TapProcess

_open: weakref.WeakSet[TapProcess] = weakref.WeakSet()
"""Taps whose child was started, until they are closed or dropped."""


def opened(tap: TapProcess) -> None:
    """``tap`` started a child: it is closed at exit unless it is closed before."""
    _open.add(tap)


def closed(tap: TapProcess) -> None:
    _open.discard(tap)


@atexit.register
def _close_left_open() -> None:
    """Close the taps still open as this process exits (their rounds are written, as on any
    clean shutdown): their children ignore the SIGTERM that multiprocessing sends at exit,
    then it waits for them, and they for pipes that close only once this process is gone."""
    for tap in list(_open):
        tap.close()
