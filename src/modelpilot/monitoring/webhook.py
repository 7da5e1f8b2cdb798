"""Alert notifications to a webhook: sent off the caller's thread, in order, and retried.

The monitor decides on alerts while it holds the lock that reports are read under, and the
event loop reads reports (``/metrics``, ``/api/monitoring``): a receiver that took its time
would hold up serving. So notifications wait in a queue, and a thread of their own posts
them, one at a time and in the order they came, so that a receiver never sees an alert
resolve before it fired. A notification the receiver did not take (it is down, answered 5xx,
408 or 429, or did not answer in time) is tried again after ``RETRY_SECONDS``; a "resolved"
lost for good would leave the receiver's alert firing forever. One it did not answer in time
may have been taken all the same: sent again, it comes twice, which the receiver tells by its
alerts' ``id`` and ``state``; the wait for an answer (``TIMEOUT_SECONDS``) is a setting, to be
kept above the receiver's slowest answer. Any other 4xx answer is final:
sending the same body again would get the same answer. A 307 or 308 redirect is followed (they
keep the POST and its body); 301, 302 and 303 are refusals, as following them would turn the
POST into a bodiless GET. Whatever else goes wrong with a notification is counted as a failure
and logged, and the thread goes on with the next: one that died left every later
notification waiting, unsent and uncounted.

The log names the receiver by its scheme, host and port alone (``shown_url``): a webhook URL
is a secret, as a chat relay's carries its token in its path, and others a password or a
``?token=``; written whole into every warning, it went wherever the server's log goes.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from modelpilot.repeated_errors import RepeatedErrors, first_line

logger = logging.getLogger(__name__)

RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Pauses before each further attempt at one notification: it is given up after the last."""

TIMEOUT_SECONDS = 10.0
"""How long an attempt waits for the receiver's answer, by default
(``MODELPILOT_ALERT_WEBHOOK_TIMEOUT_SECONDS``). It was 5 s, fixed and said nowhere: a receiver
that did some work before answering 200 in 6 s (a ticketing system, a chat relay) was sent each
notification four times, and each attempt counted as failed."""

MAX_WAITING = 1000
"""Notifications allowed to wait; past that, the oldest waiting one is dropped."""

CLOSE_SECONDS = 5.0
"""How long ``close`` waits for the notifications still waiting (one attempt each)."""

MAX_REDIRECTS = 5
"""307 or 308 redirects followed for one attempt; one more is a refusal (a loop)."""

_KEEPING_POST = (307, 308)
"""Redirects that keep the method and the body (RFC 9110, 15.4): the only ones followed."""


def shown_url(url: str | httpx.URL) -> str:
    """``url`` as the log may show it: its scheme, host and port, without the user and
    password, the path and the query (``/***`` where it has either), which may hold
    credentials."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(a URL that cannot be read)"
    hidden = "/***" if parsed.path not in ("", "/") or parsed.query else ""
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}{hidden}"


def _failure_said(exc: Exception, url: str) -> str:
    """What went wrong with an attempt, for the log, without the URL: httpx says a refusal
    with it whole (``... for url 'http://user:password@...'``)."""
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        return f"answered {response.status_code} {response.reason_phrase}".rstrip()
    said = first_line(exc)
    try:
        written = {url, str(httpx.URL(url))}
    except httpx.InvalidURL:
        written = {url}
    for secret in written:
        said = said.replace(secret, shown_url(url))
    return said


def _final(response: httpx.Response) -> bool:
    """Whether the receiver's answer says that sending again would not help (a 4xx but a
    timeout, 408, or too many requests, 429)."""
    return response.status_code < 500 and response.status_code not in (408, 429)


def _redirect_said(exc: httpx.HTTPError) -> str:
    """What to do about a redirect that was not followed, for the log."""
    if not isinstance(exc, httpx.HTTPStatusError) or not exc.response.is_redirect:
        return ""
    if exc.response.status_code in _KEEPING_POST:
        return f" (more than {MAX_REDIRECTS} redirects)"
    location = exc.response.headers.get("location")
    where = "where it points"
    if location:
        # Shown as the receiver is: the place it points to may hold the same token.
        where += f", {shown_url(exc.response.url.join(location))} (its answer's Location)"
    return (
        " (a 301, 302 or 303 would turn the POST into a GET without the notification: set "
        f"MODELPILOT_ALERT_WEBHOOK_URL to {where})"
    )


def _timeout_said(exc: httpx.HTTPError, timeout: float, again: bool) -> str:
    """What an attempt that got no answer in time means, for the log: the receiver may have
    taken it, and (``again``) is sent it again."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f" (no connection in {timeout:g} s)"
    if not isinstance(exc, httpx.TimeoutException):
        return ""
    sent = ", and gets it again with the same id and state" if again else ""
    return (
        f" (no answer in {timeout:g} s, MODELPILOT_ALERT_WEBHOOK_TIMEOUT_SECONDS: the receiver "
        f"may have taken it{sent}; keep the setting above its slowest answer)"
    )


def described(payload: dict[str, Any]) -> str:
    """Which notification ``payload`` is, for the log: each alert's state, rule, model and
    id, so that an operator can tell which one a receiver missed (a ``resolved`` lost leaves
    the receiver's alert firing, to be closed by hand)."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        return "a notification"
    said = [
        f"{a.get('state')} {a.get('rule')} {a.get('model') or '(service)'} id {a.get('id')}"
        for a in alerts
        if isinstance(a, dict)
    ]
    return f"the notification of {', '.join(said)}"


class Webhook:
    """Posts JSON notifications to ``url`` from a thread of its own. Thread-safe."""

    def __init__(
        self,
        url: str,
        timeout: float = TIMEOUT_SECONDS,
        retry_seconds: Sequence[float] = RETRY_SECONDS,
        max_waiting: int = MAX_WAITING,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """``timeout``: how long each attempt waits for the receiver (to connect, and for
        its answer); ``on_done`` is called, from the webhook's thread, after each
        notification is delivered or given up."""
        self.url = url
        self.shown = shown_url(url)
        """The receiver as the log names it (``shown_url``)."""
        self.on_done = on_done
        self.timeout = timeout
        self.retry_seconds = tuple(retry_seconds)
        self.max_waiting = max_waiting
        self.failures = 0
        """Attempts the receiver did not accept (each retry that fails counts)."""
        self.dropped = 0
        """Notifications never delivered: given up after every retry, refused with a 4xx,
        or pushed out of a full queue."""
        self._waiting: deque[dict[str, Any]] = deque()
        self._sending: dict[str, Any] | None = None
        self._changed = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None
        """Made, and closed, by the webhook's thread."""
        self._moved_said = False
        self._cut: list[dict[str, Any]] = []
        """Notifications whose retries the shutdown cut short (their last attempt failed)."""
        self._unsent: list[dict[str, Any]] | None = None
        """What ``close`` left undelivered, in order (kept for the next start by the alert
        book's keeper, where the book is kept)."""
        self._errors = RepeatedErrors(logger)

    def send(self, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for delivery; returns at once."""
        with self._changed:
            if self._closing:
                return
            if len(self._waiting) >= self.max_waiting:
                oldest = self._waiting.popleft()
                self.dropped += 1
                # Once a minute, with how many: a receiver down for long dropped one a line.
                self._errors.error(
                    "full",
                    "alert webhook %s: too many notifications waiting (%d); dropped the oldest, %s",
                    self.shown,
                    self.max_waiting,
                    described(oldest),
                )
            self._waiting.append(payload)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="modelpilot-webhook", daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def undelivered(self) -> list[dict[str, Any]]:
        """The notifications not yet delivered, in order: the one being sent, and those
        waiting (after ``close``, those it left)."""
        with self._changed:
            if self._unsent is not None:
                return list(self._unsent)
            sending = [] if self._sending is None else [self._sending]
            return [*self._cut, *sending, *self._waiting]

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Try what still waits once more each, for up to ``timeout`` seconds, then stop.
        What is left undelivered stays in ``undelivered``."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            thread = self._thread
        if thread is None:
            return
        thread.join(timeout)
        with self._changed:
            # Those cut short, the one being sent, and those waiting, in the order they came.
            sending = [self._sending] if thread.is_alive() and self._sending is not None else []
            left = [*self._cut, *sending, *self._waiting]
            self._waiting.clear()
            self._unsent = left
        self._errors.flush()
        if left:
            self.dropped += len(left)
            logger.error(
                "alert webhook %s: %d notification(s) not delivered before shutdown: %s",
                self.shown,
                len(left),
                "; ".join(described(payload) for payload in left),
            )

    def _run(self) -> None:
        try:
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: self._waiting or self._closing)
                    if not self._waiting:
                        return
                    payload = self._sending = self._waiting.popleft()
                self._deliver(payload)
                with self._changed:
                    self._sending = None
                if self.on_done is not None:
                    try:
                        self.on_done()
                    except Exception:
                        logger.exception("alert webhook %s: after a delivery", self.shown)
        finally:
            if self._client is not None:
                self._client.close()

    def _deliver(self, payload: dict[str, Any]) -> None:
        attempts = (0.0, *self.retry_seconds)
        cut = False
        for attempt, pause in enumerate(attempts, 1):
            last = attempt == len(attempts)
            if pause and not self._pause(pause):
                # Closing: this attempt, with no wait before it, is the last.
                last = cut = True
            try:
                self._post(payload)
                logger.info("alert webhook %s took %s", self.shown, described(payload))
                return
            except httpx.HTTPError as exc:
                self.failures += 1
                refused = isinstance(exc, httpx.HTTPStatusError) and _final(exc.response)
                if cut and not refused:
                    # Not given up: left undelivered at shutdown (``close`` says so, and
                    # counts it), which a server that keeps its alert book sends next start.
                    with self._changed:
                        self._cut.append(payload)
                    return
                if refused or last:
                    outcome = "refused" if refused else f"not taken after {attempt} attempts"
                    logger.error(
                        "alert webhook %s: %s %s: %s%s",
                        self.shown,
                        described(payload),
                        outcome,
                        _failure_said(exc, self.url),
                        _redirect_said(exc) or _timeout_said(exc, self.timeout, again=False),
                    )
                    break
                logger.warning(
                    "alert webhook %s (attempt %d, %s): %s%s",
                    self.shown,
                    attempt,
                    described(payload),
                    _failure_said(exc, self.url),
                    _timeout_said(exc, self.timeout, again=True),
                )
            except Exception as exc:
                # Neither the receiver's answer nor the network: the URL (httpx.InvalidURL is
                # no HTTPError), the payload, the client. Sending again would fail alike. The
                # traceback goes to the debug log alone: its last line may quote the URL.
                self.failures += 1
                logger.error(
                    "alert webhook %s: %s could not be sent: %s: %s",
                    self.shown,
                    described(payload),
                    type(exc).__name__,
                    _failure_said(exc, self.url),
                )
                logger.debug("alert webhook: the sending failed", exc_info=True)
                break
        self.dropped += 1

    def _post(self, payload: dict[str, Any]) -> None:
        """POST ``payload``, following the redirects that keep a POST what it is; raises
        for any final answer but 2xx."""
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        response = self._client.post(self.url, json=payload)
        for _ in range(MAX_REDIRECTS):
            if response.status_code not in _KEEPING_POST or response.next_request is None:
                break
            if response.status_code == 308 and not self._moved_said:
                self._moved_said = True
                logger.warning(
                    "alert webhook %s has moved for good to %s (its answer's Location): set "
                    "MODELPILOT_ALERT_WEBHOOK_URL to it (followed meanwhile)",
                    self.shown,
                    shown_url(response.next_request.url),
                )
            response = self._client.send(response.next_request)
        response.raise_for_status()

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` before another attempt; False if closing (no more waits)."""
        with self._changed:
            return not self._changed.wait_for(lambda: self._closing, timeout=seconds)
