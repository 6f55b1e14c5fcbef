"""Grouping decisions: pure functions over plain data, no IO.

- ``duplicates``: copies of one article: the same canonical URL, the same global guid,
  or a near-duplicate body (MinHash over word 3-shingles, LSH band keys).
- ``events``: related coverage, different outlets' own reports of one event: weighted
  terms, story centroids, the figures both quote.

``pipeline/stories.py`` moves data between these and storage.
"""
