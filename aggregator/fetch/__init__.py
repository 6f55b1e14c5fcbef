"""Fetching: the only package that speaks HTTP (httpx).

| module | what it does |
| --- | --- |
| ``client`` | builds the httpx clients: User-Agent, timeouts, redirect policy |
| ``transport`` | sockets bounded by the request's deadline; bodies read in small steps |
| ``pools`` | a connection pool per site, so a request looks only at its own site's connections |
| ``deadline`` | the total deadline of one request |
| ``dns`` | name lookups inside the request's limits, on a pool of lookup threads |
| ``guard`` | the private-address guard for URLs strangers wrote |
| ``fetcher`` | GET a feed or a page, every failure mapped to our errors; the WebSub ping |
| ``polite`` | how many fetches run at once, overall and per site |

Callers import from here.
"""

import httpx

from aggregator.fetch.client import make_client
from aggregator.fetch.fetcher import FEED_ACCEPT, fetch_feed, fetch_page, ping_websub_hub
from aggregator.fetch.guard import check_url_allowed
from aggregator.fetch.polite import HostSlots, host_key, polite_map

# What the rest of the service calls a client, so that only this package imports httpx.
HttpClient = httpx.Client

__all__ = [
    "FEED_ACCEPT",
    "HostSlots",
    "HttpClient",
    "check_url_allowed",
    "fetch_feed",
    "fetch_page",
    "host_key",
    "make_client",
    "ping_websub_hub",
    "polite_map",
]
