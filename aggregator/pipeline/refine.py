"""Refine the open window after a refresh: the refinement's edge between Storage and
the pure cluster/refine.py and cluster/reconcile.py.

The reports of every open story are clustered again all at once (average link over
the stream's own term weights, cut at ``clustering.merge_threshold``), and the result
reconciled with the stories as they stand: ids stay with most of their reports,
split-off parts get new ids, absorbed ids become aliases. Admin decisions hold: an
article split out of a story never goes back into it, and a story an admin merged
stays whole. Call inside a transaction.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import filterfalse
from typing import Any, cast

from aggregator.cluster import duplicates
from aggregator.cluster import events as clusterer
from aggregator.cluster import reconcile as cluster_reconcile
from aggregator.cluster import refine as cluster_refine
from aggregator.cluster.reconcile import Plan
from aggregator.config import Settings
from aggregator.errors import DatabaseUnwritable
from aggregator.pipeline.context import PipelineContext
from aggregator.pipeline.stories import save_profile, terms_of
from aggregator.storage import Storage

log = logging.getLogger(__name__)


def refine_if_due(ctx: PipelineContext) -> bool:
    """Refine the open window if articles wait for it (``ctx.refinement``) and it is
    time: always in a one-shot ``aggregator refresh``; in the daemon once
    ``clustering.refine_every`` has passed since its last refinement. True when it ran."""
    due = ctx.refinement
    if due.after_article_id is None or ctx.stop.is_set():
        return False
    now = ctx.clock()
    every = ctx.config.settings.clustering.refine_every
    # A clock set back (last_run ahead of now) must not hold the refinement back.
    if not ctx.one_shot and due.last_run is not None and due.last_run <= now < due.last_run + every:
        log.debug("the open stories wait for their refinement until %s", due.last_run + every)
        return False
    refine_window(ctx, due.after_article_id)
    # Also after a failure (logged): the next refresh that brings articles tries again.
    due.after_article_id = None
    due.last_run = now
    return True


def refine_window(ctx: PipelineContext, after_article_id: int) -> Plan | None:
    """Cluster the open stories' reports again now that a refresh's articles (those
    after ``after_article_id``) are in: one transaction, after the feeds' own. A
    failure leaves the stories as placed (and the refresh stored): logged, never
    raised, but for an unwritable database.

    The window refined is the one around the refresh's newest article, not the clock:
    articles dated days ago (a feed's backlog, a replay) were placed against the
    stories of their own days, and are refined with them."""
    started = time.perf_counter()
    try:
        with ctx.storage.transaction():
            now = ctx.clock()
            newest = ctx.storage.newest_article_moment(after_article_id)
            moment = min(newest, now) if newest else now
            plan = refine_open_stories(ctx.storage, moment, ctx.config.settings)
    except DatabaseUnwritable:
        raise
    except Exception:
        log.exception("refining the open stories failed; they stay as placed until the next")
        return None
    log.info(
        "refined the open stories in %.2f s: %d reports moved, %d stories merged, %d new",
        time.perf_counter() - started, len(plan.moves), len(plan.aliases), len(plan.created),
    )  # fmt: skip
    return plan


@dataclass(frozen=True)
class Report:
    """One independent report of an open story, with its copies (``articles``)."""

    article_id: int  # the report itself (its copy group's first article)
    story_id: str
    canonical_url: str
    articles: tuple[int, ...]


def refine_open_stories(storage: Storage, now: datetime, settings: Settings) -> Plan:
    """Cluster the open stories' reports again and move what fits elsewhere."""
    window = settings.clustering
    rows = storage.open_story_reports(since=now - window.window, first_since=now - window.max_age)
    reports = reports_of(rows)
    created = {row["story_id"]: row["created_at"] for row in rows}
    unbuilt = {row["story_id"] for row in rows if not row["centroid_norm"]}
    del rows  # a dict per article of the window: gone before the edges and the heap
    vectors = report_vectors(storage, reports)
    groups = cluster_refine.average_link(
        len(reports),
        cluster_refine.iter_similarity_edges(vectors),
        window.merge_threshold,
        together=_kept_whole(storage, reports),
        cannot_link=_kept_apart(storage, reports),
    )
    plan = cluster_reconcile.reconcile(
        [report.story_id for report in reports],
        [len(report.articles) for report in reports],
        groups,
        created,
        lambda group: duplicates.new_story_id("refined", f"{reports[group[0]].article_id}:{now}"),
    )
    _apply(storage, plan, reports, vectors, groups, now, unbuilt)
    return plan


# Reports whose stored terms are read and weighed at a time: the window's reports are
# then kept as arrays (cluster/refine.py SparseRows), never as thousands of dicts. At
# 500, that chunk's dicts were the refinement's peak (70 MB traced on 4,000 reports;
# 33 MB at 100).
REPORTS_READ_AT_ONCE = 100


def report_vectors(storage: Storage, reports: Sequence[Report]) -> cluster_refine.SparseRows:
    """Each report's stored terms weighted by the stream's document frequencies, unit
    length, in report order."""
    vectors = cluster_refine.SparseRows()
    # Each term's IDF, computed once for the whole window (the frequencies do not
    # change while it is refined): a common word is in nearly every chunk.
    idf_known: dict[str, float] = {}
    for start in range(0, len(reports), REPORTS_READ_AT_ONCE):
        ids = [report.article_id for report in reports[start : start + REPORTS_READ_AT_ONCE]]
        stored = storage.report_terms(ids, apart=True)
        terms = [_terms_apart(stored[article_id]) for article_id in ids]
        vocabulary = list(set().union(*(names for names, _ in terms)))  # C-level passes
        new = list(filterfalse(idf_known.__contains__, vocabulary))
        if new:
            documents, df = storage.corpus_frequencies(new)
            idf_known.update(clusterer.idf_table(new, df, documents))  # as unit_vectors weighs
        idf_of = dict(zip(vocabulary, map(idf_known.__getitem__, vocabulary), strict=True))
        vectors.add_all_weighed(terms, idf_of)
    return vectors


def _terms_apart(row: dict[str, Any]) -> tuple[Sequence[str], Sequence[float]]:
    """A report's stored terms and weights (``report_terms(..., apart=True)``), or for
    one stored before terms were, computed now (``terms_of``)."""
    if row["terms"] is not None:
        return cast("tuple[Sequence[str], Sequence[float]]", row["terms"])
    terms = terms_of(row)
    return list(terms), list(terms.values())


def reports_of(rows: Sequence[dict[str, Any]]) -> list[Report]:
    """Copies fold into the report they copy (rows come in arrival order)."""
    articles: dict[int, list[int]] = defaultdict(list)
    first: dict[int, dict[str, Any]] = {}
    for row in rows:
        articles[row["unit"]].append(row["id"])
        first.setdefault(row["unit"], row)
    return [
        Report(row["id"], row["story_id"], row["canonical_url"], tuple(articles[unit]))
        for unit, row in first.items()
    ]


def _kept_whole(storage: Storage, reports: Sequence[Report]) -> list[list[int]]:
    """The reports of each story an admin merged: they stay one group."""
    merged = storage.admin_merged_stories()
    whole: dict[str, list[int]] = defaultdict(list)
    for index, report in enumerate(reports):
        if report.story_id in merged:
            whole[report.story_id].append(index)
    return [indices for indices in whole.values() if len(indices) > 1]


def _kept_apart(storage: Storage, reports: Sequence[Report]) -> list[tuple[int, int]]:
    """(an article an admin split out of a story, each report of that story)."""
    index_of = {report.canonical_url: index for index, report in enumerate(reports)}
    members: dict[str, list[int]] = defaultdict(list)
    for index, report in enumerate(reports):
        members[report.story_id].append(index)
    return [
        (index_of[url], other)
        for url, story in storage.split_overrides()
        if url in index_of
        for other in members.get(story, [])
        if other != index_of[url]
    ]


def _fit(unit: int, group: Sequence[int], vectors: cluster_refine.SparseRows) -> float | None:
    """A report's average similarity to the other reports of its group (None: alone)."""
    others = [other for other in group if other != unit]
    return round(vectors.mean_dot(unit, others), 3) if others else None


def _apply(
    storage: Storage,
    plan: Plan,
    reports: Sequence[Report],
    vectors: cluster_refine.SparseRows,
    groups: Sequence[Sequence[int]],
    now: datetime,
    unbuilt: set[str],
) -> None:
    for story_id in plan.created:
        storage.create_refined_story(story_id, now)
    group_of = {unit: group for group in groups for unit in group}
    for move in plan.moves:
        report = reports[move.unit]
        fit = _fit(move.unit, group_of[move.unit], vectors)
        storage.move_articles(report.articles, move.to_story)
        storage.mark_refined(report.article_id, fit)
        storage.record_moves(
            report.articles, move.from_story, move.to_story, "refined", now, score=fit
        )
        log.info("refined: article %s moved from %s to %s", report.article_id,
                 move.from_story, move.to_story)  # fmt: skip
    for absorbed, survivor in plan.aliases.items():
        storage.move_story_members(absorbed, survivor)
    touched = {move.to_story for move in plan.moves} | {move.from_story for move in plan.moves}
    for group in groups:
        story_id = plan.story_of[group[0]]
        # A story with no stored sum yet (a migration dropped the old centroids) gets
        # one too, without its date moving: its members did not change.
        if story_id in touched or story_id in unbuilt:
            # grown_centroid one report at a time, as the story grew (on arrays)
            save_profile(storage, story_id, vectors.summed(group))
        if story_id in touched:
            storage.refresh_story(story_id, now)
