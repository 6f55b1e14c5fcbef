"""aggregator: a self-hosted defence-news aggregator.

Fetches many RSS/Atom/JSON feeds, extracts each article's full text, groups copies of
the same article into one story and publishes one merged feed (RSS 2.0, Atom 1.0,
JSON Feed 1.1).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
