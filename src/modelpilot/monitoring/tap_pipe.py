"""The write end of the pipe that carries rounds to the monitoring process: written without
blocking, what the pipe cannot take yet waits in a buffer (``pending``) for ``push``.

The event loop writes rounds (``TapProcess.take``) and must never wait for the child; a
question pushes what waits first (``TapProcess._flush_pending``), waiting for room itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from multiprocessing.connection import Connection

from modelpilot.monitoring.tap import TapFailed
from modelpilot.monitoring.tap_child import PIPE_BYTES


class RoundPipe:
    """The server's end of the data pipe to one child, with the rounds waiting for room."""

    def __init__(self, connection: Connection) -> None:
        self._data = connection
        os.set_blocking(self._data.fileno(), False)
        with contextlib.suppress(OSError, AttributeError):  # Linux only; a hint
            fcntl.fcntl(self._data.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self.pending = bytearray()
        """Bytes of rounds handed over that the pipe has not taken yet."""

    def fileno(self) -> int:
        return self._data.fileno()

    def close(self) -> None:
        self._data.close()

    def send(self, frame: bytes, blob: bytes) -> None:
        """Write a round to the pipe, straight from ``blob`` when nothing waits before it;
        what does not fit waits in the buffer (with the tap's write lock held)."""
        written = 0
        if not self.pending:
            try:
                written = os.writev(self._data.fileno(), [frame, blob])
            except BlockingIOError:
                pass
            except OSError as exc:
                raise TapFailed(f"the monitoring process is gone ({exc})") from exc
        if written < len(frame):
            self.pending += frame[written:]
            self.pending += blob
        elif written < len(frame) + len(blob):
            self.pending += memoryview(blob)[written - len(frame) :]
        self.push()

    def push(self) -> None:
        """Write what fits in the pipe now of the pending rounds (with the tap's write lock
        held)."""
        pending, fd = self.pending, self._data.fileno()
        while pending:
            try:
                written = os.write(fd, memoryview(pending)[:PIPE_BYTES])
            except BlockingIOError:
                return
            except OSError as exc:
                raise TapFailed(f"the monitoring process is gone ({exc})") from exc
            del pending[:written]
