"""An invented defence-news corpus for the benchmarks (issue 8), served on loopback.

``build_corpus(feeds, items)`` writes nothing: it returns every body keyed by URL
path. Each feed is an outlet's RSS (every fifth one Atom) listing ``items`` article
pages; the pages look like real news sites (a long head of meta tags and inline
scripts, cookie banners, menus, share bars, an ad between paragraphs, a "read next"
list, a comment section, a fat footer), about 40-70 KB each. About one item in ten
is a wire story republished by another outlet (same text, different site template and
a credit line) and one in ten is another outlet's own report of an event already
covered (shared names and numbers, different words): clustering has work to do.

Every word is generated here from small invented word lists; nothing is copied.
``serve_corpus`` runs the bodies on ``sites`` loopback ports (one port per outlet
group, so the per-host limit applies as on the internet), with ETags and 304s; a
shared ``generation`` value switches on the "one new item" variants of some feeds.
"""

from __future__ import annotations

import functools
import hashlib
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import wordfreq

PLACES = (
    "Kelvik",
    "Port Calloway",
    "Brennholm",
    "Ostrava Bay",
    "Marrow Sound",
    "Telmar",
    "Gdarsk",
    "Halvern",
    "Sabrenne",
    "Quillon",
    "Eastmere",
    "Dunlow Ridge",
    "Varsen",
)
SERVICES = ("navy", "air force", "army", "coast guard", "marine corps", "border guard")
SYSTEMS = (
    "frigate",
    "patrol ship",
    "corvette",
    "submarine",
    "tanker aircraft",
    "trainer jet",
    "air-defence battery",
    "infantry fighting vehicle",
    "self-propelled howitzer",
    "maritime patrol aircraft",
    "minehunter",
    "heavy-lift helicopter",
    "radar system",
)
VENDORS = (
    "Arkwright Marine",
    "Tessaly Dynamics",
    "Holm & Vane",
    "Corvid Aerospace",
    "Northgate Systems",
    "Pellor Yards",
    "Ostwind Defence",
    "Braxton Munitions",
)
ACTIONS = (
    "signed a contract for",
    "took delivery of",
    "ordered",
    "began sea trials of",
    "cancelled plans for",
    "extended support for",
    "completed acceptance tests of",
)
FILLER = (
    "Officials said the schedule depends on funding approved in the next budget.",
    "The programme has faced delays linked to supplier shortages and rising costs.",
    "Analysts noted that the order is smaller than the one first announced.",
    "Crews will begin training at the school in the spring, according to the ministry.",
    "The vendor declined to comment on the value of the follow-on options.",
    "A spokesperson described the milestone as a turning point for the fleet.",
    "Parliament's defence committee will review the contract before final approval.",
    "Local shipyard workers welcomed the news after months of uncertainty.",
    "The first unit is expected to reach initial operating capability within two years.",
    "Industry sources said export variants are being discussed with two partners.",
    "The deal includes spare parts, simulators and a decade of maintenance support.",
    "Observers pointed to growing activity near the northern approaches as a driver.",
)
# Sentences are drawn from these parts, so unrelated articles share few word triples
# (as real ones do) and only copies look like copies to the near-duplicate check.
SUBJECTS = (
    "a senior official",
    "the deputy minister",
    "the programme office",
    "one analyst",
    "the prime contractor",
    "a union representative",
    "the chief of staff",
    "an industry source",
    "the audit office",
    "a parliamentary aide",
    "the fleet commander",
    "the test pilot",
    "a procurement lawyer",
    "the regional governor",
    "a retired admiral",
    "the budget committee",
    "the project manager",
    "a logistics officer",
)
VERBS = (
    "warned that",
    "argued that",
    "confirmed that",
    "denied that",
    "suggested that",
    "estimated that",
    "told reporters that",
    "wrote in a memo that",
    "hinted that",
    "said privately that",
    "noted in a briefing that",
    "insisted that",
    "admitted that",
)
CLAUSES = (
    "the {system} would need {n} more months of testing",
    "costs had risen by {n} percent since the first estimate",
    "{vendor} was negotiating a second batch with {place}",
    "the crews at {place} had logged {n} hours on simulators",
    "spare parts for the {system} were still arriving late",
    "the schedule left little margin for the winter exercises",
    "a rival bid from {vendor} had been rejected on price",
    "the radar suite failed {n} of the acceptance trials",
    "export rules could delay deliveries to {place}",
    "the dockyard at {place} would run a second shift",
    "funding for {n} further units was not yet secured",
    "the engines had been redesigned after a fire in {place}",
    "training for {n} technicians starts at {place} in March",
    "the old {system} fleet would be retired by {year}",
    "the contract includes a penalty clause worth {n} million",
)
CONNECTORS = ("Meanwhile", "In addition", "Separately", "However", "At the same time")


@dataclass(frozen=True)
class Event:
    """One thing that happened; several articles may report it."""

    number: int
    service: str
    system: str
    vendor: str
    place: str
    action: str
    count: int
    value: int

    @property
    def headline(self) -> str:
        plural = "s" if self.count > 1 else ""
        return (
            f"{self.place} {self.service} {self.action} {self.count} {self.system}{plural}"
            f" from {self.vendor}"
        )[:1].upper() + (
            f"{self.place} {self.service} {self.action} {self.count} {self.system}{plural}"
            f" from {self.vendor}"
        )[1:]


@dataclass
class Corpus:
    """Every body of the benchmark, keyed by URL path; URLs use ``{{BASE:n}}``."""

    feeds: int
    items: int
    sites: int
    bodies: dict[str, bytes] = field(default_factory=dict)
    # generation 1: the same feeds, a few with one new item on top
    changed: dict[str, bytes] = field(default_factory=dict)
    feed_paths: list[str] = field(default_factory=list)
    article_paths: list[str] = field(default_factory=list)
    late_paths: list[str] = field(default_factory=list)


def site_of(feed: int, feeds_per_site: int) -> int:
    return feed // feeds_per_site


SYLLABLES = (
    *("kel", "var", "ost", "bren", "mar", "tel", "hal", "sab", "quil", "dun", "rov", "ith"),
    *("an", "or", "ek", "ul", "ra", "mo", "sten", "gard", "holm", "vik", "burg", "ness"),
)


def made_up_name(rng: random.Random) -> str:
    """A fresh proper name: real coverage is full of names, and names are what tell
    one event from another."""
    name = "".join(rng.choice(SYLLABLES) for _ in range(3))
    return name.title()


def make_event(rng: random.Random, number: int) -> Event:
    return Event(
        number=number,
        service=rng.choice(SERVICES),
        system=f"{made_up_name(rng)}-class {rng.choice(SYSTEMS)}",
        vendor=f"{made_up_name(rng)} {rng.choice(('Marine', 'Dynamics', 'Systems', 'Yards'))}",
        place=made_up_name(rng),
        action=rng.choice(ACTIONS),
        count=rng.randint(1, 24),
        value=rng.randint(40, 9000),
    )


@functools.cache
def _vocabulary() -> tuple[str, ...]:
    """Common English words (from wordfreq, already a dependency), for filler prose."""
    return tuple(w for w in wordfreq.top_n_list("en", 6000) if w.isalpha() and len(w) > 1)


def _prose(rng: random.Random) -> str:
    """A sentence of common words: real articles' vocabulary is wide, so two reports
    of different events share mostly common words, which weigh little."""
    vocabulary = _vocabulary()
    # skewed towards the frequent words, as text is
    words = [
        vocabulary[int(len(vocabulary) * rng.random() ** 2)] for _ in range(rng.randint(8, 22))
    ]
    return f"{words[0].title()} {' '.join(words[1:])}."


def _sentence(rng: random.Random, event: Event) -> str:
    if rng.random() < 0.6:
        return _prose(rng)
    clause = rng.choice(CLAUSES).format(
        system=rng.choice((event.system, rng.choice(SYSTEMS))),
        vendor=event.vendor,
        place=event.place,
        n=rng.choice((event.count, event.value)),  # random numbers would be rare shared terms
        year=rng.randint(2027, 2040),
    )
    subject = rng.choice(SUBJECTS)
    return f"{subject[:1].upper()}{subject[1:]} {rng.choice(VERBS)} {clause}."


def article_paragraphs(rng: random.Random, event: Event) -> list[str]:
    """8-14 paragraphs about ``event``, in this outlet's own (random) words."""
    first = (
        f"The {event.service} of {event.place} has {event.action} {event.count}"
        f" {event.system}s from {event.vendor}, in a deal worth about {event.value} million"
        f" euros, officials confirmed on {rng.choice(('Monday', 'Tuesday', 'Thursday'))}."
    )
    paragraphs = [first]
    for n in range(rng.randint(10, 18)):
        sentences = [_sentence(rng, event) for _ in range(rng.randint(3, 5))]
        if n % 3 == 1:
            sentences.insert(
                0,
                f"{rng.choice(CONNECTORS)}, {event.vendor} said work on the"
                f" {event.system} line at {event.place} would add"
                f" {event.value // 10} jobs over {event.count} years.",
            )
        if n % 4 == 2:
            sentences.append(
                f"Contract number {event.number:05d}-{event.count} covers"
                f" {event.count} {event.system}s and options for more."
            )
        paragraphs.append(" ".join(sentences))
    return paragraphs


def _script_blob(rng: random.Random, size: int) -> str:
    """Minified-looking tracking and layout scripts: bytes real pages carry."""
    parts: list[str] = []
    while sum(len(p) for p in parts) < size:
        key = rng.randint(1000, 99999)
        parts.append(
            f"!function(w,d){{var k{key}=w.dl||[];k{key}.push({{e:'pv',id:{key},"
            f"t:+new Date}});d.addEventListener('scroll',function(){{k{key}.push({{e:'sc'}})}})}}"
            f"(window,document);"
        )
    return "".join(parts)


def _menu(rng: random.Random, base: str, outlet: str, n: int) -> str:
    links = "".join(
        f'<li class="menu-item"><a href="{base}/{outlet}/section/{i}/">'
        f"{rng.choice(SYSTEMS).title()}s</a></li>"
        for i in range(n)
    )
    return f'<nav class="main-navigation"><ul class="menu">{links}</ul></nav>'


def _mega_menu(rng: random.Random, base: str, outlet: str) -> str:
    """Real sites ship hundreds of nested menu nodes on every page; extraction walks them."""
    columns = []
    for column in range(rng.randint(6, 10)):
        entries = "".join(
            f'<li class="mm-item"><div class="mm-wrap"><a class="mm-link" '
            f'href="{base}/{outlet}/topic/{column}-{i}/"><span class="mm-label">'
            f"{rng.choice(PLACES)} {rng.choice(SYSTEMS)}</span></a></div></li>"
            for i in range(rng.randint(10, 20))
        )
        columns.append(
            f'<div class="mm-col"><h4>{rng.choice(SERVICES).title()}</h4><ul>{entries}</ul></div>'
        )
    return f'<div class="mega-menu"><div class="mm-inner">{"".join(columns)}</div></div>'


def _sidebar(rng: random.Random, base: str, outlet: str) -> str:
    cards = "".join(
        f'<div class="card"><div class="card-media"><a href="{base}/{outlet}/m/{i}.html">'
        f'<img src="{base}/{outlet}/img/t{i}.jpg" width="120" height="80" alt=""></a></div>'
        f'<div class="card-body"><h5><a href="{base}/{outlet}/m/{i}.html">'
        f"{escape(make_event(rng, i).headline)}</a></h5><p>{rng.choice(FILLER)}</p>"
        f'<span class="meta">{rng.randint(1, 59)} min read</span></div></div>'
        for i in range(rng.randint(15, 30))
    )
    widget = f'<section class="widget most-read"><h3>Most read</h3>{cards}</section>'
    return f'<aside class="sidebar">{widget}</aside>'


def _read_next(rng: random.Random, base: str, outlet: str) -> str:
    items = "".join(
        f'<li><a href="{base}/{outlet}/more/{rng.randint(1, 99999)}.html">'
        f"{escape(make_event(rng, i).headline)}</a>"
        f' <span class="date">{rng.randint(1, 28)} Nov</span></li>'
        for i in range(12)
    )
    return f'<aside class="read-next"><h3>Read next</h3><ul>{items}</ul></aside>'


def _comments(rng: random.Random) -> str:
    names = ("harbourfan", "old_salt", "J. Verne", "radarguy", "anon", "Pellor watcher")
    bodies = "".join(
        f'<li class="comment"><cite>{rng.choice(names)}</cite><p>{rng.choice(FILLER)}</p>'
        f'<a class="reply" href="#reply">Reply</a></li>'
        for _ in range(rng.randint(3, 15))
    )
    return f'<section id="comments"><h3>Comments</h3><ol>{bodies}</ol></section>'


def article_page(
    rng: random.Random, base: str, outlet: str, title: str, paragraphs: list[str], credit: str
) -> bytes:
    """One article page in a messy, real-site shape."""
    body = []
    for n, paragraph in enumerate(paragraphs):
        body.append(f'<div class="para-wrap"><p>{escape(paragraph)}</p></div>')
        if n == 3:
            body.append(
                '<div class="ad-slot" data-slot="mid"><span>Advertisement</span>'
                f"<script>{_script_blob(rng, 600)}</script></div>"
            )
        if n == 5:
            body.append(
                f'<figure class="wp-block-image"><img src="{base}/{outlet}/img/{n}.jpg"'
                ' width="1200" height="675" alt=""><figcaption>File photo.</figcaption></figure>'
            )
    if credit:
        body.append(f'<p class="credit"><em>{credit}</em></p>')
    footer_links = "".join(
        f'<li><a href="{base}/{outlet}/page/{i}/">Page {i}</a></li>' for i in range(40)
    )
    published = f"2026-11-{rng.randint(1, 24):02d}T{rng.randint(0, 23):02d}:15:00Z"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(title)} | {outlet.title()}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta property="og:title" content="{escape(title)}">
<meta property="og:site_name" content="{outlet}">
<meta property="article:published_time" content="{published}">
<script>{_script_blob(rng, rng.randint(8000, 20000))}</script>
<style>{"".join(f".c{i}{{margin:{i}px;padding:0}}" for i in range(rng.randint(200, 600)))}</style>
</head><body class="post-template-default single">
<div id="cookie-notice" class="cookie-banner"><p>We use cookies to measure audiences and
show advertising. You can change your choices at any time.</p><button>Accept all</button></div>
<header class="site-header"><a class="logo" href="{base}/{outlet}/">{outlet}</a>
{_menu(rng, base, outlet, rng.randint(15, 40))}{_mega_menu(rng, base, outlet)}</header>
<div class="share-bar"><a href="#">Share</a><a href="#">Post</a><a href="#">Email</a></div>
<main id="primary"><article class="post">
<h1 class="entry-title">{escape(title)}</h1>
<div class="byline">By <span class="author">Staff writer</span></div>
<div class="entry-content">{"".join(body)}</div>
</article>
{_sidebar(rng, base, outlet)}
{_read_next(rng, base, outlet)}
{_comments(rng)}
</main>
<footer class="site-footer"><ul>{footer_links}</ul><p>&copy; 2026 {outlet}</p></footer>
<script>{_script_blob(rng, rng.randint(4000, 12000))}</script>
</body></html>
"""
    return page.encode()


def _rss(outlet: str, base: str, entries: list[tuple[str, str, str, datetime]]) -> bytes:
    items = "".join(
        f"<item><title>{escape(title)}</title><link>{base}{path}</link>"
        f"<guid>{base}{path}</guid><pubDate>{format_datetime(moment, usegmt=True)}</pubDate>"
        f"<description><![CDATA[<p>{escape(summary)}</p>]]></description></item>"
        for title, path, summary, moment in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{outlet}</title><link>{base}/{outlet}/</link><language>en</language>"
        f"{items}</channel></rss>"
    ).encode()


def _atom(outlet: str, base: str, entries: list[tuple[str, str, str, datetime]]) -> bytes:
    items = "".join(
        f'<entry><title>{escape(title)}</title><link href="{base}{path}"/><id>{base}{path}</id>'
        f"<updated>{moment.isoformat()}</updated>"
        f'<summary type="html">{escape("<p>" + escape(summary) + "</p>")}</summary></entry>'
        for title, path, summary, moment in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{outlet}</title><id>{base}/{outlet}/</id><updated>2026-11-24T10:00:00Z</updated>"
        f"{items}</feed>"
    ).encode()


# A feed's items are this far apart, the newest this long before the corpus is built:
# dated from the run's own clock, so that the stories are open (inside the clustering
# window) as a real first refresh's are and the refinement after each refresh has the
# work it has live (all of large's 10 items a feed, 12 of medium's 20).
ITEM_SPACING = timedelta(hours=6)


def build_corpus(
    feeds: int,
    items: int,
    *,
    feeds_per_site: int = 5,
    changed_share: float = 0.05,
    seed: int = 8,
    now: datetime | None = None,
) -> Corpus:
    """Every feed and article body; ``{{BASE:n}}`` stands for site n's base URL."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    rng = random.Random(seed)
    sites = (feeds + feeds_per_site - 1) // feeds_per_site
    corpus = Corpus(feeds=feeds, items=items, sites=sites)
    stories: list[tuple[Event, str, list[str]]] = []  # earlier stories, for copies
    for feed in range(feeds):
        base = f"{{{{BASE:{site_of(feed, feeds_per_site)}}}}}"
        outlet = f"outlet{feed}"
        entries = [
            _new_item(
                rng, corpus, stories, base, outlet, f"{outlet}/a{n}", now - (n + 1) * ITEM_SPACING
            )
            for n in range(items)
        ]
        feed_path = f"/{outlet}/feed.xml"
        render = _atom if feed % 5 == 4 else _rss
        corpus.bodies[feed_path] = render(outlet, base, entries)
        corpus.feed_paths.append(feed_path)
        if rng.random() < changed_share or (feed == 0 and changed_share > 0):
            extra = _new_item(rng, corpus, stories, base, outlet, f"{outlet}/late", now)
            corpus.late_paths.append(corpus.article_paths.pop())  # not in the first refresh
            corpus.changed[feed_path] = render(outlet, base, [extra, *entries[:-1]])
    return corpus


def _new_item(
    rng: random.Random,
    corpus: Corpus,
    stories: list[tuple[Event, str, list[str]]],
    base: str,
    outlet: str,
    slug: str,
    moment: datetime,
) -> tuple[str, str, str, datetime]:
    """One article page (an original, a wire copy or a related report) and its feed entry."""
    roll = rng.random()
    credit = ""
    if stories and roll < 0.1:  # republished wire copy: same words, new template
        event, title, paragraphs = rng.choice(stories)
        credit = "This story was first published by our partner agency."
    elif stories and roll < 0.2:  # the same event in this outlet's own words
        event = rng.choice(stories)[0]
        title = event.headline.replace(" from ", ", built by ")
        paragraphs = article_paragraphs(rng, event)
    else:
        event = make_event(rng, len(stories))
        title = event.headline
        paragraphs = article_paragraphs(rng, event)
        stories.append((event, title, paragraphs))
    path = f"/{slug}.html"
    corpus.bodies[path] = article_page(rng, base, outlet, title, paragraphs, credit)
    corpus.article_paths.append(path)
    return title, path, paragraphs[0], moment


def resolve(body: bytes, ports: list[int]) -> bytes:
    """Put each site's real base URL where ``{{BASE:n}}`` stands."""
    if b"{{BASE:" not in body:
        return body
    out = body
    for site, port in enumerate(ports):
        out = out.replace(f"{{{{BASE:{site}}}}}".encode(), f"http://127.0.0.1:{port}".encode())
    return out


# --------------------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    bodies: dict[str, tuple[bytes, str]] = {}
    changed: dict[str, tuple[bytes, str]] = {}
    generation: Any = None

    def do_GET(self) -> None:  # noqa: N802
        found = self.bodies.get(self.path)
        if self.generation is not None and self.generation.value > 0:
            found = self.changed.get(self.path, found)
        if found is None:
            self._empty(404, "")
            return
        body, etag = found
        if self.headers.get("If-None-Match") == etag:
            self._empty(304, etag)
            return
        self.send_response(200)
        kind = "text/html; charset=utf-8" if self.path.endswith(".html") else "application/xml"
        self.send_header("Content-Type", kind)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _empty(self, status: int, etag: str) -> None:
        self.send_response(status)
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _with_etag(body: bytes) -> tuple[bytes, str]:
    return body, '"' + hashlib.sha1(body).hexdigest()[:16] + '"'


def serve_corpus(corpus: Corpus, ports_queue: Any, generation: Any) -> None:
    """In its own process: one threaded server per site; sends the ports back."""
    servers = []
    for _ in range(corpus.sites):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        servers.append(server)
    ports = [server.server_address[1] for server in servers]
    _Handler.bodies = {path: _with_etag(resolve(b, ports)) for path, b in corpus.bodies.items()}
    _Handler.changed = {path: _with_etag(resolve(b, ports)) for path, b in corpus.changed.items()}
    _Handler.generation = generation
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ports_queue.put(ports)
    threading.Event().wait()
