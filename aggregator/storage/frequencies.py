"""The document-frequencies half of Storage: how many stored articles hold each term
(the grouping's IDF), kept in memory with write-behind.

Every new article reads the frequencies of its ~300 terms and adds one to each. Done
in SQL, that was two statements over 300 rows per article, the biggest share of the
storing process's time. Here the frequencies read are cached (the database's value
plus this connection's counts not yet written), an article is counted in memory, and
``flush_frequencies`` writes what was counted in one statement per refresh.

Nothing is lost to a crash: an article is stored with its terms (``articles.terms``)
and a row in ``uncounted_articles``, which a flush deletes in the same transaction that
adds its terms to ``term_stats``. Articles a crash left uncounted are counted again by
the next refresh (``uncounted_articles``). A count made inside a transaction that
rolls back is taken back with it. Another connection's writes (a prune, an admin's
command) are seen through SQLite's ``data_version``: the cache is then read again.

Memory: what waits to be written is the pending articles' ids and the sum of their
terms' counts, not each article's terms (~30 KB an article); only the open
transaction's articles keep theirs, for a rollback. When a flush finds that some
pending articles were deleted meanwhile (a prune), the survivors are counted again
from their stored terms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from aggregator.storage.sql import SqlDoor, placeholders
from aggregator.storage.terms import with_terms_unpacked

DOCUMENTS = "documents"  # corpus_stats counter: articles counted into term_stats
CHUNK = 500  # values per IN (...), under SQLite's variable limit
MAX_CACHED_TERMS = 300_000  # frequencies kept read (some 30 MB); past it, read afresh


@dataclass
class DocumentCounts:
    """This connection's view of the document frequencies (no SQL here)."""

    df: Counter[str] = field(default_factory=Counter)  # read so far: database + pending
    documents: int | None = None  # database + pending; None: not read yet
    pending: set[int] = field(default_factory=set)  # articles counted, not written
    pending_df: Counter[str] = field(default_factory=Counter)  # their terms' counts
    # The articles counted in the open transaction, with their distinct terms: what a
    # rollback takes back.
    in_transaction: dict[int, tuple[str, ...]] = field(default_factory=dict)
    data_version: int | None = None
    # data_version was read in the open transaction, which holds the write lock (BEGIN
    # IMMEDIATE): no other connection can write before it ends.
    checked_in_transaction: bool = False

    def forget_reads(self) -> None:
        """Read the database again on the next lookup (another connection wrote)."""
        self.df.clear()
        self.documents = None

    def add(self, article_id: int, terms: tuple[str, ...]) -> None:
        self.pending.add(article_id)
        self.pending_df.update(terms)
        cached = len(self.df)
        self.df.update(terms)  # one C-level pass
        if len(self.df) != cached:  # some were never read (rare: the storing reads first)
            for term in terms:  # at 1 now: never read, or read as 0. Read later instead,
                if self.df[term] == 1:  # as the database's value + pending_df
                    del self.df[term]
        if self.documents is not None:
            self.documents += 1

    def take_back(self, counted: Mapping[int, tuple[str, ...]]) -> None:
        for article_id, terms in counted.items():
            if article_id in self.pending:
                self.pending.discard(article_id)
                self.pending_df.subtract(terms)
        self.pending_df = +self.pending_df  # drop the zeros
        self.forget_reads()

    def written(self) -> None:
        """The pending counts are in the database now."""
        self.pending.clear()
        self.pending_df.clear()


class FrequencyStorage(SqlDoor):
    """Mixed into Storage."""

    _counts: DocumentCounts
    report_terms: Callable[[Sequence[int]], dict[int, dict[str, Any]]]  # story_index.py's

    def corpus_frequencies(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        """The number of documents counted so far, and the df of each given term
        (counts not yet written included; terms in no document left out)."""
        wanted = list(dict.fromkeys(terms))
        documents, found = self.term_counts(wanted)
        return documents, {term: df for term, df in zip(wanted, found, strict=True) if df}

    def term_counts(self, terms: Sequence[str]) -> tuple[int, list[int]]:
        """``corpus_frequencies`` for distinct terms, as a list in their order (0 for a
        term in no document): what each new article asks, with no dict built here."""
        counts = self._fresh_counts()
        if len(counts.df) > MAX_CACHED_TERMS:  # a year's vocabulary: start afresh
            counts.forget_reads()
        found = list(map(counts.df.get, terms))  # one pass over a big dict: it costs
        if None in found:
            self._read_frequencies(
                [term for term, df in zip(terms, found, strict=True) if df is None]
            )
            found = list(map(counts.df.__getitem__, terms))
        if counts.documents is None:
            row = self._one("SELECT value FROM corpus_stats WHERE name = ?", [DOCUMENTS])
            counts.documents = (row["value"] if row else 0) + len(counts.pending)
        return counts.documents, cast("list[int]", found)

    def _read_frequencies(self, missing: list[str]) -> None:
        counts = self._counts
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            found = dict(
                self.db.conn.execute(
                    f"SELECT term, df FROM term_stats WHERE term IN ({placeholders(chunk)})",
                    chunk,
                ).fetchall()
            )
            for term in chunk:
                counts.df[term] = found.get(term, 0) + counts.pending_df.get(term, 0)

    def _fresh_counts(self) -> DocumentCounts:
        """The cache, emptied first if another connection wrote since it was read."""
        counts = self._counts
        in_transaction = self.db.conn.in_transaction
        if in_transaction and counts.checked_in_transaction:
            return counts
        version = self.db.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != counts.data_version:
            counts.forget_reads()
            counts.data_version = version
        counts.checked_in_transaction = in_transaction
        return counts

    def count_document(self, article_id: int, terms: Iterable[str]) -> None:
        """Add a stored article's distinct terms to the document frequencies (in
        memory until ``flush_frequencies``). Call in the transaction that stored it."""
        distinct = tuple(terms if isinstance(terms, Mapping) else dict.fromkeys(terms))
        counts = self._fresh_counts()
        counts.add(article_id, distinct)
        if self.db.conn.in_transaction:
            counts.in_transaction[article_id] = distinct

    def _rolled_back(self) -> None:
        counts = self._counts
        counts.take_back(counts.in_transaction)
        counts.in_transaction.clear()
        counts.checked_in_transaction = False

    def _committed(self) -> None:
        self._counts.in_transaction.clear()
        self._counts.checked_in_transaction = False

    def pending_counts(self) -> int:
        """Articles counted in memory, not yet written."""
        return len(self._counts.pending)

    def flush_frequencies(self) -> int:
        """Write the counts made in memory (one transaction; call outside one) and
        return how many articles they were. Articles deleted meanwhile (a prune on
        another connection) are left out."""
        counts = self._counts
        if not counts.pending:
            return 0
        with self.transaction():
            waiting = sorted(counts.pending)
            alive = self._uncounted_among(waiting)
            df, counted = counts.pending_df, alive
            if len(alive) < len(waiting):  # some were deleted: count the others again
                df, counted = self._stored_counts(alive)
            self.db.conn.executemany(
                "INSERT INTO term_stats (term, df) VALUES (?, ?)"
                " ON CONFLICT (term) DO UPDATE SET df = df + excluded.df",
                list(df.items()),
            )
            self.db.conn.execute(
                "INSERT INTO corpus_stats (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                [DOCUMENTS, len(counted)],
            )
            self.db.conn.executemany(
                "DELETE FROM uncounted_articles WHERE article_id = ?",
                [(article_id,) for article_id in counted],
            )
        if len(counted) < len(waiting):
            counts.forget_reads()  # the cache counted articles that are gone
        counts.written()
        return len(counted)

    def _uncounted_among(self, article_ids: list[int]) -> list[int]:
        alive: list[int] = []
        for start in range(0, len(article_ids), CHUNK):
            chunk = article_ids[start : start + CHUNK]
            alive += [
                row[0]
                for row in self.db.conn.execute(
                    "SELECT article_id FROM uncounted_articles"
                    f" WHERE article_id IN ({placeholders(chunk)})",
                    chunk,
                )
            ]
        return alive

    def _stored_counts(self, article_ids: list[int]) -> tuple[Counter[str], list[int]]:
        """The document frequencies of these articles' stored terms, and the articles
        counted (one stored without terms stays in ``uncounted_articles``: the next
        refresh computes them)."""
        df: Counter[str] = Counter()
        counted: list[int] = []
        for article_id, row in self.report_terms(article_ids).items():
            if row["terms"] is not None:
                df.update(row["terms"].keys())
                counted.append(article_id)
        return df, counted

    def uncounted_articles(self) -> list[dict[str, Any]]:
        """Articles stored but not counted, and not counted in memory here either (a
        crash came between): id, terms (None if not stored), title, text."""
        pending = self._counts.pending
        rows = self._rows(
            "SELECT a.id, a.terms, a.title, a.text FROM uncounted_articles u"
            " JOIN articles a ON a.id = u.article_id ORDER BY a.id"
        )
        return [with_terms_unpacked(row) for row in rows if row["id"] not in pending]

    def uncount_documents(self, frequencies: Mapping[str, int], documents: int) -> None:
        """Take pruned documents (counted ones) back out of the document frequencies."""
        self.db.conn.executemany(
            "UPDATE term_stats SET df = MAX(df - ?, 0) WHERE term = ?",
            [(count, term) for term, count in frequencies.items()],
        )
        self.db.conn.executemany(
            "DELETE FROM term_stats WHERE term = ? AND df = 0",
            [(term,) for term in frequencies],
        )
        self.db.execute(
            "UPDATE corpus_stats SET value = MAX(value - ?, 0) WHERE name = ?",
            [documents, DOCUMENTS],
        )
        self._counts.forget_reads()
