"""Limits on what a client may send before its request is read (issue 19).

uvicorn's httptools protocol buffers a request line and headers of any size (four
128 MB headers took the daemon from 290 MB to 865 MB; a 230 MB header was answered
200), and waits for a head that arrives a byte at a time for ever (1,100 such
clients used up the open-file limit and /healthz stopped answering). uvicorn's
``h11_max_incomplete_event_size`` applies only to its slower h11 protocol, and it has
no header timeout at all, so this subclass of its httptools protocol adds both:

* a request head (request line and headers) over MAX_REQUEST_HEAD_BYTES is answered
  ``431 Request Header Fields Too Large`` and the connection closed, the rest unread;
* a head not complete HEAD_TIMEOUT_SECONDS after its first byte (or after the
  connection opened) is answered ``408 Request Timeout`` and closed (silently when
  nothing was sent).

Bytes are counted as they arrive, before the parser buffers them, so the memory a
client can make the server hold is the cap plus one read (64 KB).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "HEAD_TIMEOUT_SECONDS",
    "MAX_REQUEST_HEAD_BYTES",
    "LimitedHttpToolsProtocol",
    "raise_open_file_limit",
    "uvicorn_config",
]

log = logging.getLogger(__name__)

# nginx allows 4 x 8 KB of header lines by default, Node 16 KB: 64 KB is generous for
# any feed reader or browser, and small beside what a flood could cost.
MAX_REQUEST_HEAD_BYTES: Final = 64 * 1024
HEAD_TIMEOUT_SECONDS: Final = 10.0
# What the daemon asks for when the soft open-file limit is lower (often 1,024).
WANTED_OPEN_FILES: Final = 65536


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size cap and a deadline on request heads."""

    # Class attributes, so a test can shorten them on a subclass.
    max_head_bytes = MAX_REQUEST_HEAD_BYTES
    head_timeout = HEAD_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._awaiting_head = True  # from the connection, and after each request
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, "Request Header Fields Too Large")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # a keep-alive connection's next request
            self._start_head_clock()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._stop_head_clock()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_head, self._head_bytes = True, 0  # what follows is the next head
        super().on_message_complete()

    def _start_head_clock(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self._awaiting_head or self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(408, "Request Timeout")
        else:  # an idle connection (a browser's preconnect): nothing to answer
            self.transport.close()

    def _refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` and close: the rest of what the client sends is not read."""
        self._refused = True
        self._stop_head_clock()
        log.info("refused a request head from %s: %d %s", self.client, status, reason)
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # mid-response: an answer now would corrupt it
            return
        body = f"{reason}\n".encode()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()


def uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """The daemon's server settings: our protocol with its limits, quiet logs."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=LimitedHttpToolsProtocol,
        # Only used if someone switches to h11; the same cap on its buffer.
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        log_level="warning",
        access_log=False,
    )


def raise_open_file_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Raise the soft limit on open files towards ``wanted`` (never past the hard
    limit): each client holds one, and at the common 1,024 a crowd of slow clients
    left none for /healthz. Returns the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not on Windows: nothing to raise
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d: %s", soft, exc)
            return soft
        log.info("open-file limit raised from %d to %d", soft, target)
        return target
    return soft
