"""The database schema, as an ordered list of migrations (sqlite-utils Migrations).

Never edit a migration that has shipped: add a new one. ``Storage.open`` applies any
pending ones; ``aggregator migrate`` does it explicitly.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("aggregator")


@migrations()
def m001_initial_schema(db: Database) -> None:
    _run(
        db,
        """
        CREATE TABLE feeds (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,            -- as written in feeds.yaml
            name TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',     -- JSON list
            enabled INTEGER NOT NULL DEFAULT 1,
            title TEXT NOT NULL DEFAULT '',      -- the feed's own title
            site_url TEXT NOT NULL DEFAULT '',
            etag TEXT,
            last_modified TEXT,
            last_status INTEGER,
            last_attempt_at TEXT,
            last_success_at TEXT,
            last_error TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            next_check_at TEXT,
            permanent_url TEXT,                  -- where a 301/308 said the feed moved
            created_at TEXT NOT NULL
        );

        CREATE TABLE stories (
            id TEXT PRIMARY KEY,                 -- stable forever once published
            lead_article_id INTEGER,
            created_at TEXT NOT NULL,
            published_at TEXT NOT NULL,          -- earliest member's date
            updated_at TEXT NOT NULL             -- moves when a member joins or changes
        );
        CREATE INDEX stories_published ON stories (published_at);

        CREATE TABLE articles (
            id INTEGER PRIMARY KEY,
            feed_id INTEGER NOT NULL REFERENCES feeds (id),
            entry_key TEXT NOT NULL,             -- guid, else canonical link
            guid TEXT,
            url TEXT NOT NULL,
            canonical_url TEXT NOT NULL,
            title TEXT NOT NULL,
            author TEXT,
            summary TEXT NOT NULL DEFAULT '',    -- the feed's summary (HTML)
            feed_content TEXT NOT NULL DEFAULT '',  -- the feed's full content (HTML), if any
            text TEXT NOT NULL DEFAULT '',       -- the body as published (plain text)
            html TEXT NOT NULL DEFAULT '',       -- the body as published (sanitised HTML)
            image TEXT,
            published_at TEXT,
            fetched_at TEXT NOT NULL,
            extraction_status TEXT NOT NULL,     -- extracted | fallback | refused | failed
            extraction_note TEXT NOT NULL DEFAULT '',
            story_id TEXT NOT NULL REFERENCES stories (id),
            method TEXT NOT NULL,                -- how it joined: new | url | guid | near-duplicate
            score REAL,
            matched_article_id INTEGER,
            signature BLOB,                      -- MinHash of the body
            UNIQUE (feed_id, entry_key)
        );
        CREATE INDEX articles_canonical_url ON articles (canonical_url);
        CREATE INDEX articles_guid ON articles (guid);
        CREATE INDEX articles_story ON articles (story_id);

        CREATE TABLE article_bands (            -- MinHash LSH index for near-duplicates
            band_key TEXT NOT NULL,
            article_id INTEGER NOT NULL REFERENCES articles (id),
            PRIMARY KEY (band_key, article_id)
        ) WITHOUT ROWID;
        """,
    )


def _run(db: Database, script: str) -> None:
    """Run each statement with execute(): executescript() would commit mid-migration."""
    lines = (line.split("--", 1)[0] for line in script.splitlines())
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            db.execute(statement)
