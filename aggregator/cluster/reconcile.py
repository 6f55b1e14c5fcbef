"""Reconcile the refinement's groups with the stories as they stand. Pure, no I/O.

The refinement (cluster_refine.py) returns groups of reports; readers know stories by
id. Ids follow the reports:

* each story's id goes to the group that holds most of its reports (by articles, copies
  included; ties to the group whose first report is earliest), so a story keeps its id
  when most of its reports stay together;
* a group that receives several ids keeps the oldest; the others become its aliases
  (an absorbed id still answers, with a redirect);
* a group that receives none (a part split off, or reports that found each other) gets
  a new id;
* every report whose story changes is a move, recorded with its old and new story.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Move:
    """One report (with its copies) moved from one story to another."""

    unit: int
    from_story: str
    to_story: str


@dataclass(frozen=True)
class Plan:
    """What the refinement changes: each unit's story afterwards, the new ids, the ids
    absorbed (alias -> survivor) and the moves."""

    story_of: tuple[str, ...]
    created: tuple[str, ...]
    aliases: Mapping[str, str]
    moves: tuple[Move, ...]


def reconcile(
    stories: Sequence[str],
    weights: Sequence[int],
    groups: Sequence[Sequence[int]],
    age: Mapping[str, str],
    new_id: Callable[[Sequence[int]], str],
) -> Plan:
    """``stories[u]``: unit u's story now; ``weights[u]``: its articles; ``groups``: the
    refinement's partition of the units (each sorted, units in arrival order); ``age``:
    a sort key per story (creation time), the oldest id surviving a merge; ``new_id``:
    an id for a group that keeps none."""
    home = _homes(stories, weights, groups)
    claimed: dict[int, list[str]] = defaultdict(list)
    for story, index in home.items():
        claimed[index].append(story)
    story_of = [""] * len(stories)
    created: list[str] = []
    aliases: dict[str, str] = {}
    for index, group in enumerate(groups):
        owners = sorted(claimed.get(index, []), key=lambda story: (age.get(story, ""), story))
        if owners:
            survivor = owners[0]
            aliases.update({story: survivor for story in owners[1:]})
        else:
            survivor = new_id(group)
            created.append(survivor)
        for unit in group:
            story_of[unit] = survivor
    moves = tuple(
        Move(unit, before, after)
        for unit, (before, after) in enumerate(zip(stories, story_of, strict=True))
        if before != after
    )
    return Plan(tuple(story_of), tuple(created), aliases, moves)


def _homes(
    stories: Sequence[str], weights: Sequence[int], groups: Sequence[Sequence[int]]
) -> dict[str, int]:
    """For each story, the group holding most of its articles (ties: the earlier group)."""
    shares: dict[str, Counter[int]] = defaultdict(Counter)
    for index, group in enumerate(groups):
        for unit in group:
            shares[stories[unit]][index] += weights[unit]
    return {
        story: min(counts, key=lambda group: (-counts[group], groups[group][0]))
        for story, counts in shares.items()
    }
