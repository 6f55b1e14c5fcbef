"""The help text of every feeds.yaml key: settings, clustering, feeds and outputs.

The README's tables say the same; ``tests/test_docs.py`` fails when a key of the
models in config.py is missing here or there.
"""

from __future__ import annotations

SETTINGS_HELP: dict[str, str] = {
    "database": "SQLite file, relative to feeds.yaml (env AGGREGATOR_DATABASE overrides it).",
    "listen": "host:port the HTTP server binds to (env AGGREGATOR_LISTEN overrides it).",
    "public_url": "URL readers reach the service at (used for self links). Unset: served "
    "feeds use the address each reader used (Host), files and WebSub http://LISTEN.",
    "refresh_interval": "How often each feed is fetched unless the feed sets `interval`.",
    "user_agent": "User-Agent header; default names aggregator, its version and contact_url.",
    "contact_url": "Your contact (a web page or mailto: address) put in the default "
    "User-Agent so publishers can reach you. Unset, `run`, `refresh` and `check-config` warn.",
    "allow_private_addresses": (
        "Allow URLs from feed content (article links, redirects) to reach loopback, "
        "private or link-local addresses. Keep false on the internet."
    ),
    "feed_title": "Title of the merged feed.",
    "feed_limit": "How many stories the published feeds carry by default.",
    "timeout": "Per-request timeout (connect, read and total deadline).",
    "max_feed_bytes": "Largest feed body read, after decompression; bigger bodies are refused.",
    "max_page_bytes": "Largest article page read, after decompression.",
    "min_article_chars": "Extracted text shorter than this falls back to the feed's own text.",
    "duplicate_threshold": "Estimated Jaccard similarity of bodies above which two articles "
    "are copies of one article (MinHash over word 3-shingles).",
    "duplicate_window": "How far back copies are looked for.",
    "clustering": "Grouping of different outlets' reports of one event (a mapping; "
    "see CLUSTERING_HELP).",
    "output_dir": "If set, each refresh also writes feed.xml, feed.atom and feed.json "
    "there (atomically), relative to feeds.yaml; for static hosting.",
    "workers": "Extraction worker processes; 0 means one per CPU core.",
    "page_concurrency": "Article pages fetched at once for one feed.",
    "page_per_host_limit": "Article pages fetched at once from one site (scheme, host and "
    "port), over all the feeds being refreshed; the site's other pages wait their turn.",
    "extract_time_limit": "Longest extraction of one page (in a worker process); past it the "
    "page is skipped and the feed's own text is used.",
    "log_level": "DEBUG, INFO, WARNING or ERROR.",
    "feed_concurrency": "Feeds fetched at once, over all sites.",
    "per_host_limit": "Feeds fetched at once from one site (scheme, host and port), so "
    "many feeds on one site do not hammer it.",
    "max_backoff": "Longest wait between fetches of a failing feed (doubling per failure), "
    "and the most a publisher's Retry-After, Cache-Control or ttl can delay a feed.",
    "jitter": "Fraction of each wait added at random (0 to 1), so feeds do not fire together; "
    "never fetches sooner than asked.",
    "cache_max_age": "Seconds readers and proxies may cache the feeds and the page "
    "(Cache-Control max-age).",
    "title_source_count": "Append the number of outlets to a story's title when more than "
    "one carried it, like '... (4 sources)'.",
    "websub_hub": "WebSub hub URL: advertised in every feed (rel=hub) and pinged after "
    "each refresh that changed the feed. Unset: no WebSub.",
    "retention_days": "Articles older than this many days are pruned (with their text), "
    "unless their story is still in the published feed; `aggregator prune` does it now.",
}

CLUSTERING_HELP: dict[str, str] = {
    "join_threshold": "Average similarity (cosine of weighted terms) to an open story's "
    "reports at which a new article joins that story as related coverage when it arrives.",
    "merge_threshold": "Average similarity between two groups of reports at which the "
    "refinement (refine_every) keeps them in one story (it merges, splits and moves "
    "on this; a single article never merges stories).",
    "lead_threshold": "Deprecated, no longer used (the refinement weighs all of a story's "
    "reports instead); accepted so that existing configurations still load.",
    "window": "A story stays open to new members this long after its last member.",
    "max_age": "A story takes related coverage for at most this long after its first "
    "report, however steadily it grows; later reports start a new story (copies of its "
    "articles still join it). Keeps a recurring subject from becoming one endless story.",
    "candidates": "Open stories compared with each new article (found by the index).",
    "refine_every": "The running service refines the open stories at most this often: new "
    "articles are placed in their stories at once, and the refinement (merging, splitting "
    "and moving over the whole open window, the refresh's costliest step) follows at the "
    "first tick this long after the last one. `aggregator refresh` always refines at its "
    "end; 0s refines after every refresh that brought something.",
}

FEED_KEYS_HELP: dict[str, str] = {
    "url": "Feed URL (RSS, Atom or JSON Feed). Required; fetched as given.",
    "name": "Outlet name shown in the merged feed; default the URL.",
    "tags": "List of tags copied onto every story from this feed.",
    "interval": "Refresh interval for this feed (like 15m, 2h); default refresh_interval.",
    "enabled": "false stops polling the feed; its stories stay.",
    "extract": "false: publish the feed's own content and never fetch article pages.",
    "keep": "CSS selectors of the blocks that hold the article; only they are extracted.",
    "drop": "CSS selectors of blocks removed from article pages before extraction.",
    "note": "Free text: why this feed needs its extraction settings.",
    "language": "Two-letter language of the feed's articles (like en); also a target "
    "for extraction: a page detected in another language gives way to the feed's text.",
    "priority": "Lead choice: a story's title, link and text come from the member whose "
    "feed has the highest priority (e.g. 10 for an official release or a wire, "
    "-5 for an aggregator blog); default 0.",
}


OUTPUT_KEYS_HELP: dict[str, str] = {
    "path": "Where the slice is served, like `/naval.xml`. Required.",
    "title": "Title of the slice's feed; default `feed_title`.",
    "tags": "Only stories carrying one of these tags.",
    "sources": "Only stories carried by one of these feeds (by name).",
    "q": "Only stories whose articles match this full-text search.",
    "min_sources": "Only stories carried by at least this many outlets. Default 1.",
    "limit": "Stories in the slice; default `feed_limit`.",
}
