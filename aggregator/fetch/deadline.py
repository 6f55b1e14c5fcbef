"""The total deadline of one request: every socket operation, the name lookup included,
must end by it.

httpx's timeouts apply per socket operation, so a server sending one byte a second
(of the headers or of the body) would never trip them. ``request_deadline`` sets the
moment the calling thread's request must be over by; ``time_left`` shortens each
operation's own timeout to what is left of it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class _Deadline(threading.local):
    """The monotonic time the current thread's request must be over by, if any."""

    at: float | None = None


_deadline = _Deadline()


@contextmanager
def request_deadline(seconds: float | None) -> Iterator[float | None]:
    """Give every socket operation of this thread's request at most ``seconds`` in all."""
    previous = _deadline.at
    _deadline.at = time.monotonic() + seconds if seconds else None
    try:
        yield _deadline.at
    finally:
        _deadline.at = previous


def time_left(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the deadline; raises once it passed."""
    at = _deadline.at
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the total deadline passed")
    return left if timeout is None else min(timeout, left)
