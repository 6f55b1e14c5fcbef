"""URL canonicalisation: one spelling per article, so copies across feeds meet.

Lowercase scheme and host, drop the default port, the fragment and tracking
parameters (utm_*, fbclid, gclid, ...), keep the remaining query in its order.
:func:`web_url` decides which links may be published at all: http(s) only.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "yclid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "ref_src",
        "cmpid",
        "ncid",
        "sr_share",
    }
)
TRACKING_PREFIXES = ("utm_", "pk_", "piwik_", "mtm_")
DEFAULT_PORTS = {"http": 80, "https": 443}
# What a browser strips from both ends of a URL (C0 controls and space) and removes
# inside it (tab, LF, CR): ``" java\tscript:x"`` is ``javascript:x`` to a browser.
_URL_EDGE = "".join(chr(code) for code in range(0x21))
_URL_INVISIBLE = {ord("\t"): None, ord("\n"): None, ord("\r"): None}
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonicalize_url(url: str) -> str:
    """Return the canonical spelling of ``url`` (unchanged if it is not http(s))."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    kept = urlencode([(k, v) for k, v in query if not is_tracking_param(k)])
    return urlunsplit((scheme, netloc, parts.path or "/", kept, ""))


def web_url(url: str, base: str = "") -> str | None:
    """``url`` as a browser would read it (resolved against ``base`` when relative),
    or None unless that is an http(s) URL with a host.

    The one test of whether a link from a feed may be published or followed:
    ``javascript:``, ``JaVaScRiPt:``, ``" javascript:"``, ``java<TAB>script:``,
    ``data:``, ``vbscript:``, ``file:`` and anything malformed give None.
    """
    cleaned = url.strip(_URL_EDGE).translate(_URL_INVISIBLE)
    if base and cleaned:
        cleaned = urljoin(base, cleaned)
    try:
        parts = urlsplit(cleaned)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return None
    return None if _CONTROL.search(cleaned) else cleaned
