"""What the grouping reads of an article's body, in one call: its weighted terms (and
the same packed for storage) and its MinHash fingerprint. Pure; run where the body is
chosen (an extraction worker), so the process storing articles receives them ready."""

from __future__ import annotations

from aggregator.cluster import duplicates, events
from aggregator.models import TextFeatures
from aggregator.packed_terms import pack_terms


def text_features(title: str, text: str) -> TextFeatures:
    """``events.event_terms`` of the title and text with each term's
    ``events.background_share``, and ``duplicates.fingerprint`` of the text."""
    fingerprint = duplicates.fingerprint(text)
    terms = events.event_terms(title, text)
    return TextFeatures(
        terms=terms,
        signature=fingerprint.signature if fingerprint else None,
        bands=fingerprint.bands if fingerprint else (),
        background=events.background_shares(terms),
        packed_terms=pack_terms(terms),
    )
