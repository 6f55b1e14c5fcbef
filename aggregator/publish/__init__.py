"""Publishing: the merged feed and its page, rendered from storage.

| module | what it does |
| --- | --- |
| ``feeds`` | RSS 2.0, Atom 1.0 and JSON Feed 1.1 (pure) |
| ``page`` | the HTML page at ``/`` (pure, escaped, no external assets) |
| ``story_page`` | a story's reading view at ``/stories/ID.html`` (pure) |
| ``health`` | feed health for people: the ``feeds`` table, ``/healthz``, ``/feeds.html`` |
| ``query`` | slices: a query string into a ``FeedQuery``; the paging cursor |
| ``output`` | a slice read from storage and rendered; feed files written |
| ``files`` | files replaced atomically |
| ``opml`` | ``/sources.opml`` and ``import-opml`` |
"""
