"""``aggregator stories``: list stories, explain one, and the admin's split and merge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from aggregator.cli.common import open_storage
from aggregator.storage import Storage, member_relations


@contextmanager
def _storage(ctx: click.Context) -> Iterator[Storage]:
    with open_storage(ctx) as (_, storage):
        yield storage


@click.group(invoke_without_command=True)
@click.option("--explain", "explain_id", metavar="ID", help="Show why each article is in story ID.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.pass_context
def stories(ctx: click.Context, explain_id: str | None, limit: int) -> None:
    """List the newest stories, or explain one (--explain ID).

    Subcommands fix the rare grouping mistake; both are remembered, so later
    automatic merges do not undo them.
    """
    if ctx.invoked_subcommand is not None:
        return
    with _storage(ctx) as storage:
        if explain_id:
            click.echo(explain_story(storage, explain_id))
            return
        click.echo(f"{'STORY':<16}  {'OUTLETS':>7}  {'PUBLISHED':<25}  TITLE")
        for row in storage.recent_stories(limit):
            click.echo(
                f"{row['id']:<16}  {row['outlets']:>7}  {row['published_at']:<25}  {row['title']}"
            )


def explain_story(storage: Storage, story_id: str) -> str:
    """Plain-words account of a story: every member, how it joined, and with what score."""
    live = storage.resolve_story_id(story_id)
    if live is None:
        raise click.ClickException(f"no story has the id {story_id}")
    story = storage.story_row(live)
    assert story is not None
    members = storage.story_members(live)
    relations = member_relations(members, story["lead_article_id"])
    lines = []
    if live != story_id:
        lines.append(f"{story_id} was merged into {live}; it redirects there.")
    lines.append(f"story {live}: {len(members)} articles, published {story['published_at']},")
    lines.append(
        f"  updated {story['updated_at']}, open until 'window' after {story['last_member_at']}"
    )
    aliases = storage.story_aliases(live)
    if aliases:
        lines.append(f"  aliases: {', '.join(aliases)}")
    moves = storage.article_moves([member["id"] for member in members])
    for member in members:
        lines.append(_explain_member(member, relations[member["id"]]))
        lines += [_explain_move(move) for move in moves.get(member["id"], [])]
    return "\n".join(lines)


_METHODS = {
    "new": "started the story",
    "url": "same canonical URL as article #{matched}",
    "guid": "same guid as article #{matched}",
    "near-duplicate": "near-duplicate body of article #{matched} (similarity {score})",
    "related": "related coverage of the same event (similarity {score} to the story)",
    "manual": "split out by an admin",
    "refined": "moved here by the refinement after a refresh (average similarity {score}"
    " to the story's other reports)",
}
_MOVES = {
    "refined": "by the refinement (average similarity {score} to its new story's reports)",
    "split": "split out by an admin",
    "merge": "its story was merged by an admin",
}


def _explain_move(move: dict[str, Any]) -> str:
    why = _MOVES.get(move["kind"], move["kind"]).format(score=move["score"])
    source = move["from_story"] or "?"
    return f"      moved {move['moved_at']}: {source} -> {move['to_story']}, {why}"


def _explain_member(member: dict[str, Any], relation: str) -> str:
    how = _METHODS.get(member["method"], member["method"]).format(
        matched=member["matched_article_id"], score=member["score"]
    )
    return (
        f"  #{member['id']} [{relation}] {member['feed_name']} (priority {member['priority']},"
        f" {member['extraction_status']}): {member['title']}\n"
        f"      {member['url']}\n      joined: {how}"
    )


@stories.command()
@click.argument("article_url")
@click.pass_context
def split(ctx: click.Context, article_url: str) -> None:
    """Take the article at ARTICLE_URL out of its story into a story of its own."""
    from aggregator.pipeline.stories import StoryNotFound, split_article

    with _storage(ctx) as storage:
        try:
            with storage.transaction():
                old, new = split_article(storage, article_url, datetime.now(UTC))
        except StoryNotFound as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"split {article_url} out of story {old} into new story {new}")


@stories.command()
@click.argument("first")
@click.argument("second")
@click.pass_context
def merge(ctx: click.Context, first: str, second: str) -> None:
    """Merge stories FIRST and SECOND into the older id (the other redirects to it)."""
    from aggregator.pipeline.stories import StoryNotFound, merge_by_admin

    with _storage(ctx) as storage:
        try:
            with storage.transaction():
                survivor = merge_by_admin(storage, first, second, datetime.now(UTC))
        except StoryNotFound as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"merged {first} and {second} into {survivor}")
