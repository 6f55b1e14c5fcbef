"""Publishing: the merged feed and its page, rendered from storage.

| module | what it does |
| --- | --- |
| ``feeds`` | RSS 2.0, Atom 1.0 and JSON Feed 1.1 (pure) |
| ``page`` | the HTML page at ``/`` (pure, escaped, no external assets) |
| ``query`` | slices: a query string into a ``FeedQuery``; the paging cursor |
| ``output`` | a slice read from storage and rendered; feed files written |
| ``files`` | files replaced atomically |
| ``opml`` | ``/sources.opml`` and ``import-opml`` |
"""
