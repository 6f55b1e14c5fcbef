"""Feed health for people: one word per feed, the `aggregator feeds` table, the
`/healthz` summary and the same as an HTML page (`/feeds.html`, linked from `/`).
Pure functions over the rows of ``Storage.feed_health()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aggregator.publish.page import html_attr, html_document, html_text

__all__ = [
    "feed_label",
    "feed_state",
    "feed_states",
    "format_table",
    "last_refresh",
    "render_health_page",
    "summarize_health",
]

Row = Mapping[str, Any]

# The note starts at column 94: a 100-column terminal shows every other column.
FEED_WIDTH = 28
_COLUMNS = (
    ("FEED", FEED_WIDTH),
    ("STATE", 8),
    ("HTTP", 4),
    ("FAILS", 5),
    ("ARTICLES", 8),
    ("LAST TRY", 8),
    ("LAST OK", 8),
    ("NEXT", 8),
    ("SAVED", 7),
)


def feed_state(row: Row) -> str:
    """ok, failing, gone (410: polling stopped), disabled (by feeds.yaml) or pending
    (never fetched successfully and not failing now: new, or reset by the admin
    before it ever worked; nothing is known to be good about it)."""
    if not row["enabled"]:
        return "disabled"
    if row.get("disabled_reason"):
        return "gone"
    if row["consecutive_failures"]:
        return "failing"
    if not row.get("last_success_at"):
        return "pending"
    return "ok"


def feed_states(rows: Iterable[Row]) -> dict[str, int]:
    """How many feeds are in each state."""
    states = {"ok": 0, "failing": 0, "gone": 0, "disabled": 0, "pending": 0}
    for row in rows:
        states[feed_state(row)] += 1
    return states


def format_table(rows: Sequence[Row], now: datetime) -> str:
    """The admin's table: one line per feed, then what needs their attention."""
    header = " ".join(f"{title:<{width}}" for title, width in _COLUMNS) + " NOTE"
    lines = [header, *(_table_line(row, now) for row in rows)]
    return "\n".join(lines)


def _table_line(row: Row, now: datetime) -> str:
    cells = (
        feed_label(row, FEED_WIDTH),
        feed_state(row),
        str(row["last_status"] or "-"),
        str(row["consecutive_failures"]),
        str(row["articles"]).rjust(8),
        _ago(row["last_attempt_at"], now),
        _ago(row["last_success_at"], now),
        "-" if row.get("disabled_reason") else _ago(row["next_check_at"], now),
        _size(row.get("bytes_saved") or 0),
    )
    padded = " ".join(f"{cell:<{width}}" for cell, (_, width) in zip(cells, _COLUMNS, strict=True))
    return f"{padded} {_note(row)}".rstrip()


def feed_label(row: Row, width: int) -> str:
    """The feed's name in ``width`` characters, told apart from the others: a name too
    long loses its middle, not its end; an unnamed feed (named by its URL) shows its
    host and the end of its path, where feeds on one host differ."""
    name = str(row["name"])
    if name != row["url"]:
        return name if len(name) <= width else _shorten_middle(name, width)
    parts = urlsplit(name)
    host = parts.netloc.removeprefix("www.")
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(host) + len(rest) <= width:
        return host + rest
    # Whole path segments from the end, after the host: 127.0.0.1:8080/…/naval.xml
    segments = rest.rstrip("/").split("/")[1:]
    tail = "/" if rest.endswith("/") else ""
    kept = ""
    for segment in reversed(segments):
        if len(host) + len("/…") + len(kept) + 1 + len(segment) + len(tail) > width:
            break
        kept = f"/{segment}{kept}"
    if kept:
        return f"{host}/…{kept}{tail}"
    return _shorten_middle(host + rest, width, keep_end=width - 7, separator="/")


def _shorten_middle(
    text: str, width: int, *, keep_end: int | None = None, separator: str = " "
) -> str:
    """``text`` in ``width`` characters with "…" in place of its middle. The end keeps
    up to ``keep_end`` characters (half by default), from a ``separator`` (a word, a
    path segment) when it can."""
    room = (width - 1) // 2 if keep_end is None else keep_end
    end = text[-room:]
    mid_word = text[-room - 1] != separator and end[0] != separator
    if mid_word and separator in end[:-1]:  # not a URL's closing slash
        end = end[end.index(separator) :]
    end = end.lstrip()
    return text[: width - 1 - len(end)].rstrip() + "…" + end


def _note(row: Row) -> str:
    """The one thing to tell the admin: why it is stopped, failing, or where it moved."""
    if row.get("disabled_reason"):
        return str(row["disabled_reason"])
    notes = []
    if row.get("permanent_url"):
        notes.append(f"moved permanently to {row['permanent_url']}: update feeds.yaml")
    if row["last_error"]:
        notes.append(str(row["last_error"]))
    return "; ".join(notes)


def _ago(value: str | None, now: datetime) -> str:
    """A stored time relative to now: '5m ago', 'in 2h', or '-'."""
    if not value:
        return "-"
    seconds = int((datetime.fromisoformat(value) - now).total_seconds())
    if abs(seconds) < 60:
        return "now"
    span = _span(abs(seconds))
    return f"in {span}" if seconds > 0 else f"{span} ago"


def _span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _size(count: int) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return f"{count}B" if count else "-"


def summarize_health(rows: Sequence[Row]) -> dict[str, Any]:
    """The feed part of /healthz. ``failing`` counts stopped (410) feeds too; they are
    also listed under ``gone``. ``moved`` lists feeds whose URL should be updated.

    A feed never fetched yet is ``pending``, neither ok nor failing: it does not make
    the status degraded (a daemon just started, or a feed just added, is not broken),
    but it is no longer counted as ok either (issue 17)."""
    enabled = [row for row in rows if row["enabled"]]
    troubled = [row for row in enabled if feed_state(row) in ("failing", "gone")]
    pending = [row for row in enabled if feed_state(row) == "pending"]
    return {
        "status": "ok" if not troubled else "degraded",
        "feeds": {
            "total": len(enabled),
            "ok": len(enabled) - len(troubled) - len(pending),
            "failing": len(troubled),
            "pending": len(pending),
        },
        "failing": [_failing(row) for row in troubled],
        "pending": [
            {"name": row["name"], "url": row["url"], "next_check": row["next_check_at"]}
            for row in pending
        ],
        "gone": [
            {"name": row["name"], "url": row["url"], "reason": row["disabled_reason"]}
            for row in troubled
            if row.get("disabled_reason")
        ],
        "moved": [
            {"name": row["name"], "url": row["url"], "moved_to": row["permanent_url"]}
            for row in enabled
            if row.get("permanent_url")
        ],
        "bytes_saved": sum(row.get("bytes_saved") or 0 for row in enabled),
        "last_refresh": last_refresh(enabled),
    }


def last_refresh(rows: Iterable[Row]) -> str | None:
    """When an enabled feed was last fetched, whatever the outcome (ISO 8601), or None
    before the first fetch: it stops moving when the scheduler stalls."""
    return max(
        (row["last_attempt_at"] for row in rows if row["enabled"] and row["last_attempt_at"]),
        default=None,
    )


def _failing(row: Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "url": row["url"],
        "error": row["last_error"],
        "status": row["last_status"],
        "consecutive_failures": row["consecutive_failures"],
        "next_check": None if row.get("disabled_reason") else row["next_check_at"],
    }


# --- the HTML page (issue 17: only the CLI table and the JSON showed feed health) -----


def render_health_page(
    report: Mapping[str, Any], rows: Sequence[Row], now: datetime, site_title: str
) -> bytes:
    """Feed health for people at /feeds.html: the /healthz summary (``report``), then
    the `aggregator feeds` table (``rows``), times relative to ``now``."""
    return html_document(
        f"Feed health · {site_title}",
        [
            f'<header><p><a href="/">← {html_text(site_title)}</a></p>'
            "<h1>Feed health</h1></header>",
            "<main>",
            _summary_line(report, now),
            _config_notice(report.get("config")),
            '<div class="scroll"><table class="cards">',
            "<thead><tr>"
            + "".join(f'<th scope="col">{title}</th>' for title in _HTML_HEADINGS)
            + "</tr></thead>",
            "<tbody>",
            *(_html_row(row, now) for row in rows),
            "</tbody></table></div>",
            "</main>",
            '<footer>The same as JSON: <a href="/healthz">/healthz</a>; for Prometheus:'
            ' <a href="/metrics">/metrics</a>; in a terminal: <code>aggregator feeds</code>.'
            "</footer>",
        ],
        wide=True,
    )


# The CLI table's columns, for people.
_HTML_HEADINGS = (
    "Feed", "State", "HTTP", "Fails", "Articles", "Last try", "Last OK", "Next", "Saved", "Note",
)  # fmt: skip


def _summary_line(report: Mapping[str, Any], now: datetime) -> str:
    feeds = report.get("feeds", {})
    counts = ", ".join(f"{feeds.get(key, 0)} {key}" for key in ("ok", "failing", "pending"))
    refreshed = report.get("last_refresh")
    last = f"{_ago(refreshed, now)} ({refreshed})" if refreshed else "never"
    return (
        f'<p class="meta">Status <strong>{html_text(str(report.get("status", "?")))}</strong>'
        f" · {feeds.get('total', 0)} feeds: {counts} · last fetch {html_text(last)}"
        f" · {report.get('stories', 0)} stories, {report.get('articles', 0)} articles</p>"
    )


def _config_notice(config: Mapping[str, Any] | None) -> str:
    """A rejected edit of feeds.yaml (the daemon's live reload), as /healthz shows it."""
    if not config or not config.get("error"):
        return ""
    return (
        '<p class="notice" role="status">feeds.yaml edit rejected; the last good'
        f" config stays in force: {html_text(str(config['error']))}</p>"
    )


def _html_row(row: Row, now: datetime) -> str:
    state = feed_state(row)
    cells = (
        html_text(str(row["name"])),
        f'<span class="state-{state}">{state}</span>',
        html_text(str(row["last_status"] or "-")),
        str(row["consecutive_failures"]),
        str(row["articles"]),
        _html_time(row["last_attempt_at"], now),
        _html_time(row["last_success_at"], now),
        "-" if row.get("disabled_reason") else _html_time(row["next_check_at"], now),
        _size(row.get("bytes_saved") or 0),
    )
    # Each cell names its column, for the stacked rows on a phone; the feed's name and
    # the note (long URLs, errors) wrap anywhere rather than widen the table.
    classes = {0: "feed", 3: "number", 4: "number"}  # FAILS and ARTICLES on the right
    tds = "".join(
        f'<td data-label="{heading}"{_class(classes.get(index))}>{cell}</td>'
        for index, (heading, cell) in enumerate(zip(_HTML_HEADINGS, cells, strict=False))
    )
    note = html_text(_note(row))
    url = html_text(str(row["url"]))
    return f'<tr>{tds}<td data-label="Note" class="note">{note} <small>{url}</small></td></tr>'


def _class(name: str | None) -> str:
    return f' class="{name}"' if name else ""


def _html_time(value: str | None, now: datetime) -> str:
    if not value:
        return "-"
    return (
        f'<time datetime="{html_attr(value)}" title="{html_attr(value)}">{_ago(value, now)}</time>'
    )
