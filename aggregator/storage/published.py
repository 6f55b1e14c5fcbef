"""The publishing half of Storage: the live stories with their sources, as the
publisher, the server and the CLI read them, and the slices (tag, source, search,
minimum sources, paging) as SQL.

Mixed into ``Storage``, so callers still see one door.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from aggregator.models import PageCursor, PublishedStory, StoryFilter, StorySource
from aggregator.sanitize import MAX_TITLE_CHARS, cap_text
from aggregator.storage.sql import SqlDoor, from_iso, iso
from aggregator.urls import web_url

# The link published for an article: its canonical URL (urls.py: no tracking
# parameters, no fragment), as Miniflux's "remove tracking parameters" does.
_PUBLISHED_URL = "COALESCE(NULLIF(a.canonical_url, ''), a.url) AS url"
# When a story last had news: its newest article's own date (set by refresh_story on
# every change; the stories_open index serves this order).
_ACTIVITY = "s.last_member_at"
# A story with what publishing needs of its lead article (``s`` and ``a``), and the
# lead feed's site link: the story's link when the article has no web link.
_STORY_WITH_LEAD = f"""
    SELECT s.id, s.published_at, s.updated_at, s.last_member_at, s.lead_article_id,
           a.title, {_PUBLISHED_URL}, a.text, a.html, a.summary, a.author, a.image,
           (SELECT f.site_url FROM feeds f WHERE f.id = a.feed_id) AS site_url
    FROM stories s JOIN articles a ON a.id = s.lead_article_id"""


class PublishingStorage(SqlDoor):
    """Mixed into Storage."""

    def data_version(self) -> int:
        """SQLite's counter of commits made by *other* connections: a cheap "did
        anything change since I last looked" check before the real one."""
        # Asked on every feed request: the raw cursor, without sqlite-utils' row dicts.
        return int(self.db.conn.execute("PRAGMA data_version").fetchone()[0])

    def content_version(self) -> str:
        """Changes whenever anything published could have changed (cache key)."""
        row = self._one(
            "SELECT COUNT(*) AS n, MAX(updated_at) AS updated, MAX(rowid) AS last FROM stories"
        )
        articles = self._one("SELECT MAX(id) AS last FROM articles")
        # Feed names and tags are published too (sources list, categories, slices), and
        # so is each feed's state on the page (why no stories arrive), but not the
        # counters that move on every fetch.
        feeds = self._one(
            """
            SELECT group_concat(name || tags || url || site_url || enabled
                                || (consecutive_failures > 0) || (disabled_reason IS NULL)
                                || (last_attempt_at IS NULL), char(31)) AS names
            FROM feeds
            """
        )
        assert row is not None and articles is not None and feeds is not None
        names = hashlib.sha256((feeds["names"] or "").encode()).hexdigest()[:16]
        return f"{row['n']}-{row['updated']}-{row['last']}-{articles['last']}-{names}"

    def published_stories(
        self,
        limit: int,
        story_filter: StoryFilter | None = None,
        after: PageCursor | None = None,
        *,
        by_activity: bool = False,
    ) -> list[PublishedStory]:
        """The newest stories matching ``story_filter`` with all their sources, the lead
        first; with ``after``, the page of older stories that follows that story.

        Newest by first publication (the feeds), or ``by_activity``: by the story's
        newest article (the page, issue 17: a story three outlets reported sorted by
        its lead's date sank below stories reported once since). The cursor then holds
        that moment instead."""
        order = _ACTIVITY if by_activity else "s.published_at"
        where, params = _story_conditions(story_filter or StoryFilter(), after, order)
        stories = list(
            self._query(
                f"""
                {_STORY_WITH_LEAD}
                {where}
                ORDER BY {order} DESC, s.id
                LIMIT :limit
                """,
                {**params, "limit": limit},
            )
        )
        members = self._members_of([story["id"] for story in stories])
        return [self._published_story(story, members.get(story["id"], [])) for story in stories]

    def _members_of(self, story_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        if not story_ids:
            return grouped
        placeholders = ",".join("?" * len(story_ids))
        rows = self._query(
            f"""
            SELECT a.id, a.story_id, a.title, {_PUBLISHED_URL}, a.published_at, a.method, a.score,
                   a.copy_of, a.extraction_step, a.language,
                   f.name AS feed_name, f.tags AS feed_tags, f.url AS feed_url, f.site_url
            FROM articles a JOIN feeds f ON f.id = a.feed_id
            WHERE a.story_id IN ({placeholders})
            ORDER BY COALESCE(a.published_at, a.fetched_at), a.id
            """,
            story_ids,
        )
        for row in rows:
            grouped.setdefault(row["story_id"], []).append(row)
        return grouped

    @staticmethod
    def _published_story(story: dict[str, Any], members: list[dict[str, Any]]) -> PublishedStory:
        lead_id = story["lead_article_id"]
        ordered = sorted(members, key=lambda member: member["id"] != lead_id)
        relations = member_relations(members, lead_id)
        sources = tuple(
            StorySource(
                feed_name=member["feed_name"],
                title=cap_text(member["title"], MAX_TITLE_CHARS),  # stored before the cap
                url=web_url(member["url"]) or "",  # never javascript:, data:, file: ...
                published=from_iso(member["published_at"]),
                relation=relations[member["id"]],
                score=_member_score(member, members, lead_id),
                extraction_step=member["extraction_step"],
                language=member["language"],
                feed_url=member["feed_url"],
                site_url=member["site_url"] or None,
            )
            for member in ordered
        )
        tags = sorted({tag for member in members for tag in json.loads(member["feed_tags"])})
        published = from_iso(story["published_at"])
        updated = from_iso(story["updated_at"])
        assert published is not None and updated is not None
        return PublishedStory(
            id=story["id"],
            title=cap_text(story["title"], MAX_TITLE_CHARS),
            link=_story_link(story),
            content_html=story["html"],
            content_text=story["text"],
            summary=_summary(story["text"]),
            published=published,
            updated=updated,
            tags=tuple(tags),
            sources=sources,
            author=story["author"],
            image=story["image"],
            last_activity=from_iso(story["last_member_at"]),
        )

    def published_story(self, story_id: str) -> PublishedStory | None:
        """One live story with all its sources, the lead first (for /stories/ID)."""
        story = self._one(
            f"""
            {_STORY_WITH_LEAD}
            WHERE s.id = ? AND s.merged_into IS NULL
            """,
            [story_id],
        )
        if story is None:
            return None
        return self._published_story(story, self._members_of([story_id]).get(story_id, []))

    def published_tags(self) -> list[str]:
        """Every tag a published story can carry (the enabled feeds' tags), sorted."""
        rows = self._query(
            "SELECT DISTINCT t.value AS tag FROM feeds f, json_each(f.tags) t"
            " WHERE f.enabled = 1 ORDER BY lower(t.value)"
        )
        return [row["tag"] for row in rows]

    def counts(self) -> dict[str, int]:
        row = self._one(
            "SELECT (SELECT COUNT(*) FROM feeds) AS feeds,"
            " (SELECT COUNT(*) FROM articles) AS articles,"
            " (SELECT COUNT(*) FROM stories WHERE merged_into IS NULL) AS stories"
        )
        assert row is not None
        return dict(row)


def _story_link(story: Mapping[str, Any]) -> str:
    """The lead's http(s) link, else its feed's site link, else none (issue 19): an
    item that linked ``javascript:`` or ``data:`` is published without that link."""
    return web_url(story["url"]) or web_url(story["site_url"] or "") or ""


def _member_score(
    member: Mapping[str, Any], members: Sequence[Mapping[str, Any]], lead_id: int
) -> float | None:
    """The similarity that ties a member to the story. The article that started the
    story has none of its own; when another member leads, the lead's score (how it
    joined the starter's story) stands for both."""
    if member["id"] == lead_id:
        return None
    if member["method"] == "new":
        lead = next((m for m in members if m["id"] == lead_id), None)
        return lead["score"] if lead else None
    return member["score"]  # type: ignore[no-any-return]


def member_relations(members: Sequence[Mapping[str, Any]], lead_id: int) -> dict[int, str]:
    """Each member's relation to the story: the ``lead``; a ``duplicate`` (the same
    article as another member: the lead's copy group, or a copy itself); or
    ``related`` (an outlet's own, independent report of the event)."""
    lead_group = next(
        (member["copy_of"] or member["id"] for member in members if member["id"] == lead_id),
        lead_id,
    )
    relations = {}
    for member in members:
        group = member["copy_of"] or member["id"]
        if member["id"] == lead_id:
            relations[member["id"]] = "lead"
        elif member["copy_of"] is not None or group == lead_group:
            relations[member["id"]] = "duplicate"
        else:
            relations[member["id"]] = "related"
    return relations


def _summary(text: str, limit: int = 300) -> str:
    """The first paragraph of the body, cut at a word boundary."""
    first = text.strip().split("\n", 1)[0]
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0] + "…"


# Longest search accepted and most words used from it: q= comes from strangers.
MAX_QUERY_CHARS = 200
MAX_QUERY_TERMS = 12
_WORD = re.compile(r"\w+")


def fts_query(text: str) -> str:
    """Turn free text into an FTS5 query that matches all its words.

    Each word is quoted, so FTS5 operators and syntax in the input (``NEAR``, ``*``,
    quotes, column filters) are taken as plain words and can never be a syntax error.
    """
    words = _WORD.findall(text[:MAX_QUERY_CHARS])[:MAX_QUERY_TERMS]
    return " ".join(f'"{word}"' for word in words)


def _story_conditions(
    story_filter: StoryFilter, after: PageCursor | None, order: str = "s.published_at"
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (over stories ``s``) and its parameters for one slice."""
    clauses: list[str] = ["s.merged_into IS NULL"]  # merged stories live on as aliases
    params: dict[str, Any] = {}
    if story_filter.tags:
        names = _bind_list(params, "tag", [tag.lower() for tag in story_filter.tags])
        clauses.append(
            "EXISTS (SELECT 1 FROM articles m JOIN feeds f ON f.id = m.feed_id,"
            f" json_each(f.tags) t WHERE m.story_id = s.id AND lower(t.value) IN ({names}))"
        )
    if story_filter.sources:
        names = _bind_list(params, "source", [name.lower() for name in story_filter.sources])
        clauses.append(
            "EXISTS (SELECT 1 FROM articles m JOIN feeds f ON f.id = m.feed_id"
            f" WHERE m.story_id = s.id AND lower(f.name) IN ({names}))"
        )
    if story_filter.min_sources > 1:
        params["min_sources"] = story_filter.min_sources
        clauses.append(
            "(SELECT COUNT(DISTINCT m.feed_id) FROM articles m WHERE m.story_id = s.id)"
            " >= :min_sources"
        )
    match = fts_query(story_filter.query)
    if match:
        params["match"] = match
        clauses.append(
            "s.id IN (SELECT m.story_id FROM article_search JOIN articles m"
            " ON m.id = article_search.rowid WHERE article_search MATCH :match)"
        )
    if after is not None:
        params.update(after_published=iso(after.published), after_id=after.story_id)
        clauses.append(
            f"({order} < :after_published OR ({order} = :after_published AND s.id > :after_id))"
        )
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _bind_list(params: dict[str, Any], prefix: str, values: Sequence[str]) -> str:
    """Add ``values`` as named parameters; return their placeholders for ``IN (...)``."""
    names = [f"{prefix}{index}" for index in range(len(values))]
    params.update(zip(names, values, strict=True))
    return ", ".join(f":{name}" for name in names)
