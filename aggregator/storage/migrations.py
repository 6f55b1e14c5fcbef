"""The database schema, as an ordered list of migrations (sqlite-utils Migrations).

Never edit a migration that has shipped: add a new one. ``Storage.open`` applies any
pending ones; ``aggregator migrate`` does it explicitly.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

from aggregator.packed_terms import pack_terms
from aggregator.storage.m007_minhash import fingerprint_v1

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


# The FTS5 index behind `?q=`: articles' titles and bodies, kept in step with the
# articles table by triggers, so every insert path (and a later delete or edit) is
# covered without the writer having to remember it.
_ARTICLE_SEARCH = (
    """
    CREATE VIRTUAL TABLE article_search USING fts5(
        title, text, content='articles', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER article_search_insert AFTER INSERT ON articles BEGIN
        INSERT INTO article_search (rowid, title, text) VALUES (new.id, new.title, new.text);
    END
    """,
    """
    CREATE TRIGGER article_search_delete AFTER DELETE ON articles BEGIN
        INSERT INTO article_search (article_search, rowid, title, text)
        VALUES ('delete', old.id, old.title, old.text);
    END
    """,
    """
    CREATE TRIGGER article_search_update AFTER UPDATE OF title, text ON articles BEGIN
        INSERT INTO article_search (article_search, rowid, title, text)
        VALUES ('delete', old.id, old.title, old.text);
        INSERT INTO article_search (rowid, title, text) VALUES (new.id, new.title, new.text);
    END
    """,
    "INSERT INTO article_search (article_search) VALUES ('rebuild')",
)


@migrations()
def m002_story_search(db: Database) -> None:
    # Statement by statement: triggers contain ';', which _run would split on.
    for statement in _ARTICLE_SEARCH:
        db.execute(statement)


@migrations()
def m003_feed_health(db: Database) -> None:
    """Per-feed health and politeness state; a digest per entry to spot edited entries."""
    _run(
        db,
        """
        ALTER TABLE feeds ADD COLUMN content_hash TEXT;          -- sha256 of the last body
        ALTER TABLE feeds ADD COLUMN body_bytes INTEGER;         -- size of the last full body
        ALTER TABLE feeds ADD COLUMN bytes_saved INTEGER NOT NULL DEFAULT 0;  -- by 304s
        ALTER TABLE feeds ADD COLUMN not_modified_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE feeds ADD COLUMN ttl_seconds INTEGER;        -- the feed's own <ttl>
        ALTER TABLE feeds ADD COLUMN disabled_reason TEXT;       -- set on 410 Gone
        ALTER TABLE articles ADD COLUMN entry_hash TEXT;         -- title + feed text digest
        """,
    )


@migrations()
def m004_story_clustering(db: Database) -> None:
    """Related coverage: document frequencies, story centroids and their inverted index,
    story aliases after merges, per-feed lead priority, and admin overrides."""
    _run(
        db,
        """
        CREATE TABLE term_stats (                 -- document frequency of each term
            term TEXT PRIMARY KEY,
            df INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE corpus_stats (               -- counters such as the number of documents
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE story_terms (                -- a story's centroid (sum of unit tf vectors)
            story_id TEXT NOT NULL REFERENCES stories (id),
            term TEXT NOT NULL,
            weight REAL NOT NULL,
            PRIMARY KEY (story_id, term)
        ) WITHOUT ROWID;
        CREATE TABLE story_keys (                 -- inverted index: distinctive term -> story
            term TEXT NOT NULL,
            story_id TEXT NOT NULL REFERENCES stories (id),
            PRIMARY KEY (term, story_id)
        ) WITHOUT ROWID;
        CREATE INDEX story_keys_story ON story_keys (story_id);
        ALTER TABLE stories ADD COLUMN last_member_at TEXT;   -- bounds the joining window
        ALTER TABLE stories ADD COLUMN merged_into TEXT;      -- alias: this id now redirects
        ALTER TABLE stories ADD COLUMN centroid_norm REAL NOT NULL DEFAULT 0;  -- IDF-weighted
        CREATE INDEX stories_open ON stories (last_member_at) WHERE merged_into IS NULL;
        ALTER TABLE articles ADD COLUMN copy_of INTEGER;      -- first article of its copy group
        ALTER TABLE feeds ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE story_overrides (            -- admin splits and merges, remembered
            id INTEGER PRIMARY KEY,
            action TEXT NOT NULL,                 -- split | merge
            article_url TEXT,                     -- split: the article taken out
            story_id TEXT,                        -- split: the story it was taken from
            target_story_id TEXT,                 -- merge: the survivor
            created_at TEXT NOT NULL
        );
        UPDATE stories SET last_member_at = updated_at;
        UPDATE articles SET copy_of = matched_article_id WHERE method != 'new';
        """,
    )


@migrations()
def m005_extraction_step(db: Database) -> None:
    """Which step of the extraction chain gave each article its text, and its language."""
    _run(
        db,
        """
        ALTER TABLE articles ADD COLUMN extraction_step TEXT;  -- precision, recall, feed-content...
        ALTER TABLE articles ADD COLUMN language TEXT;         -- ISO 639-1, or NULL if unknown
        """,
    )


@migrations()
def m006_retention(db: Database) -> None:
    """Retention deletes an article's LSH bands by article id: without this index each
    prune batch would scan the whole band table while holding the write lock."""
    _run(db, "CREATE INDEX IF NOT EXISTS article_bands_article ON article_bands (article_id);")


@migrations()
def m007_numpy_minhash(db: Database) -> None:
    """Near-duplicate fingerprints are computed by our own MinHash (numpy) instead of
    datasketch's; the values differ, so every stored signature and LSH band is
    recomputed from the stored text, or old articles would never match new copies.
    The MinHash of that release is frozen in m007_minhash.py."""

    db.execute("DELETE FROM article_bands")
    ids = [row[0] for row in db.execute("SELECT id FROM articles ORDER BY id").fetchall()]
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        marks = ",".join("?" * len(batch))
        rows = db.execute(f"SELECT id, text FROM articles WHERE id IN ({marks})", batch)
        for article_id, text in rows.fetchall():
            found = fingerprint_v1(text or "")
            signature, bands = found or (None, ())
            db.execute("UPDATE articles SET signature = ? WHERE id = ?", [signature, article_id])
            db.conn.executemany(
                "INSERT OR IGNORE INTO article_bands (band_key, article_id) VALUES (?, ?)",
                [(band, article_id) for band in bands],
            )


# English stemming for `?q=` (issue 17): "frigate" and "frigates" find the same stories.
# FTS5's porter tokenizer wraps unicode61, so case and diacritics are still folded; it
# stems English words only (other languages match as before, word for word).
_STEMMED_TOKENIZER = "porter unicode61 remove_diacritics 2"


@migrations()
def m008_stemmed_search(db: Database) -> None:
    """Rebuild the search index with the porter stemmer: an FTS5 table's tokenizer is
    fixed at creation, so the table and its triggers are dropped and made again."""
    for trigger in ("insert", "delete", "update"):
        db.execute(f"DROP TRIGGER IF EXISTS article_search_{trigger}")
    db.execute("DROP TABLE IF EXISTS article_search")
    plain = "tokenize='unicode61 remove_diacritics 2'"
    assert plain in _ARTICLE_SEARCH[0]
    for statement in _ARTICLE_SEARCH:  # create, three triggers, rebuild from articles
        db.execute(statement.replace(plain, f"tokenize='{_STEMMED_TOKENIZER}'"))


@migrations()
def m009_refinement(db: Database) -> None:
    """Story clustering by the refinement (issue 15).

    * ``story_moves``: every move of an article between stories (the refinement, an
      admin's split or merge), for ``stories --explain``.
    * A story's stored terms are now the sum of its reports' weighted unit vectors, not
      a centroid of plain term frequencies: the old ones are dropped (and their index
      keys, so no new article is placed against them) and ``centroid_norm`` set to 0,
      which tells the next refinement to rebuild the open stories' sums.
    * m004 marked related coverage as copies (``copy_of``) in databases it upgraded:
      only copies keep it, or the refinement would tie those reports together for ever.
    """
    _run(
        db,
        """
        CREATE TABLE story_moves (
            id INTEGER PRIMARY KEY,
            article_id INTEGER NOT NULL,
            from_story TEXT,
            to_story TEXT NOT NULL,
            kind TEXT NOT NULL,                   -- refined | split | merge
            score REAL,                           -- refined: average similarity to the story
            moved_at TEXT NOT NULL
        );
        CREATE INDEX story_moves_article ON story_moves (article_id);
        DELETE FROM story_terms;
        DELETE FROM story_keys;
        UPDATE stories SET centroid_norm = 0;
        UPDATE articles SET copy_of = NULL WHERE method = 'related';
        """,
    )


@migrations()
def m010_stored_terms(db: Database) -> None:
    """Faster storing (issue 18).

    * ``articles.terms``: the article's weighted terms (aggregator/packed_terms.py), computed
      once on an extraction worker and read back by the refinement, a split and a
      prune instead of computed again from the text (NULL for the articles stored
      before: computed when needed).
    * ``uncounted_articles``: the articles whose terms are not in ``term_stats`` yet.
      Counts are made in memory and written once per refresh (storage/frequencies.py),
      which deletes their rows; an article a crash left here is counted by the next
      refresh. (A small table of its own: marking the fat article rows would rewrite
      them.) Articles stored before were counted when stored.
    * ``stories.centroid``: a story's summed report vectors in one value, instead of
      a ``story_terms`` row per term (moved over, then that table is dropped).
    """
    _run(
        db,
        """
        ALTER TABLE articles ADD COLUMN terms BLOB;
        CREATE TABLE uncounted_articles (article_id INTEGER PRIMARY KEY);
        ALTER TABLE stories ADD COLUMN centroid BLOB;
        """,
    )
    centroids: dict[str, dict[str, float]] = {}
    for story_id, term, weight in db.execute("SELECT story_id, term, weight FROM story_terms"):
        centroids.setdefault(story_id, {})[term] = weight
    db.conn.executemany(
        "UPDATE stories SET centroid = ? WHERE id = ?",
        [
            (pack_terms(centroid, compress=False), story_id)
            for story_id, centroid in centroids.items()
        ],
    )
    db.execute("DROP TABLE story_terms")


@migrations()
def m011_indexes_at_scale(db: Database) -> None:
    """Indexes for big windows: placement, merges and the feeds' cache key (issues 15, 18).

    * ``stories_open_by_id``: what ``open_story_candidates`` checks of each story an
      inverted-index entry names (merged? last member? first published?) read from
      one index rather than the index then the table: at 100,000 articles in the
      window a lookup visits some 3,000 entries.
    * ``articles_story_reports`` (story_id, copy_of) replaces ``articles_story``: a
      story's independent reports are counted without reading the article rows (their
      text pushes ``copy_of`` onto overflow pages).
    * ``stories_aliases``: the ids merged into a story, found without reading every
      story (each refinement merge repoints them: at 20,000 articles, 4,000 merges
      scanning 16,000 stories of a few KB each took two minutes).
    * ``stories_updated``: the published feeds' cache key (``content_version``) counts
      the stories and reads the latest change from this index, not from the rows
      (72 ms at 100,000 articles, 6 ms with it).
    """
    _run(
        db,
        """
        CREATE INDEX stories_open_by_id
            ON stories (id, merged_into, last_member_at, published_at);
        CREATE INDEX articles_story_reports ON articles (story_id, copy_of);
        DROP INDEX articles_story;
        CREATE INDEX stories_aliases ON stories (merged_into) WHERE merged_into IS NOT NULL;
        CREATE INDEX stories_updated ON stories (updated_at);
        """,
    )


# Articles are added to the search index in batches (issue 18): FTS5 writes a segment
# per transaction and merges them: indexing each feed's articles in the feed's
# transaction cost the storing about 0.9 ms an article, a thousand at once 0.4 (a
# replay of 4,000 bench articles). The insert trigger now only
# queues the article; ``Storage.index_for_search`` indexes the queue in one statement.
# A queued article is not in the index yet, so its delete and edit change the queue
# only (an FTS5 'delete' of a row it never indexed would corrupt the index).
_SEARCH_QUEUE = (
    "CREATE TABLE unindexed_articles (article_id INTEGER PRIMARY KEY)",
    "DROP TRIGGER article_search_insert",
    "DROP TRIGGER article_search_delete",
    "DROP TRIGGER article_search_update",
    """
    CREATE TRIGGER article_search_insert AFTER INSERT ON articles BEGIN
        INSERT INTO unindexed_articles (article_id) VALUES (new.id);
    END
    """,
    """
    CREATE TRIGGER article_search_delete AFTER DELETE ON articles BEGIN
        INSERT INTO article_search (article_search, rowid, title, text)
        SELECT 'delete', old.id, old.title, old.text
        WHERE NOT EXISTS (SELECT 1 FROM unindexed_articles WHERE article_id = old.id);
        DELETE FROM unindexed_articles WHERE article_id = old.id;
    END
    """,
    """
    CREATE TRIGGER article_search_update AFTER UPDATE OF title, text ON articles
    WHEN NOT EXISTS (SELECT 1 FROM unindexed_articles WHERE article_id = old.id) BEGIN
        INSERT INTO article_search (article_search, rowid, title, text)
        VALUES ('delete', old.id, old.title, old.text);
        INSERT INTO article_search (rowid, title, text) VALUES (new.id, new.title, new.text);
    END
    """,
)


@migrations()
def m012_search_queue(db: Database) -> None:
    """New articles wait in ``unindexed_articles`` for the search index (see above)."""
    for statement in _SEARCH_QUEUE:
        db.execute(statement)
