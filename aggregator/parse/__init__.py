"""Parsing: feed bytes into entries.

- ``parser``: feedparser on the bytes with the response headers; JSON Feed by hand;
  stable entry keys (guid, else canonical link).
- ``pool``: big feeds parsed on worker processes, small ones inline.
- ``discover``: the feed URLs a web page advertises (a site's address pasted as a feed).
"""
