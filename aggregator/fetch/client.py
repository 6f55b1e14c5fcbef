"""The HTTP clients: our User-Agent, timeouts, redirect policy and transports."""

from __future__ import annotations

import httpx

from aggregator.config import Settings
from aggregator.fetch.dns import Resolver
from aggregator.fetch.guard import FeedRedirectGuard, GuardedTransport
from aggregator.fetch.transport import ACCEPT_ENCODING, DeadlineTransport, SafeBodyTransport

MAX_REDIRECTS = 5


def make_client(
    settings: Settings,
    *,
    guard: bool,
    transport: httpx.BaseTransport | None = None,
    resolve: Resolver | None = None,
) -> httpx.Client:
    """An httpx client with our User-Agent, timeouts and redirect policy.

    Feed clients (URLs the admin wrote) use ``guard=False``: the listed host is fetched
    as given, any other host a feed leads to is guarded (``FeedRedirectGuard``).
    Article-page clients (URLs strangers wrote) use ``guard=True``. Neither guards
    when the settings allow private addresses. ``resolve`` replaces the system's name
    lookups for the guard's checks (tests).
    """
    guarded = guard and not settings.allow_private_addresses
    inner = transport if transport is not None else _default_transport()
    wrapped: httpx.BaseTransport = SafeBodyTransport(inner)
    if guarded:
        wrapped = GuardedTransport(wrapped, resolve=resolve)
    elif not settings.allow_private_addresses:
        # The hops share the feed's own transport: their requests, pinned to the
        # addresses checked, fall in pools of their own (a site is the address and
        # the name connected for), so one CA store and one set of pools serve both.
        guarded_hops = GuardedTransport(wrapped, resolve=resolve)
        wrapped = FeedRedirectGuard(wrapped, guarded_hops, resolve=resolve)
    return httpx.Client(
        transport=wrapped,
        headers={"User-Agent": settings.effective_user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        timeout=httpx.Timeout(settings.timeout.total_seconds()),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        # Proxies from the environment would connect on our behalf and bypass the guard.
        trust_env=not guarded,
    )


def _default_transport() -> httpx.BaseTransport:
    """Connections kept alive in a pool per site, guarded or not: the guard sends a
    request to the address it checked with the host's name as the TLS server name,
    and a site is the address and that name (pools.py), so a connection verified for
    one host never carries a request for another host behind the same address."""
    return DeadlineTransport(httpx.Limits(max_connections=100, max_keepalive_connections=40))
