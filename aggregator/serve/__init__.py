"""Serving: the HTTP server and feed health.

| module | what it does |
| --- | --- |
| ``server`` | Starlette: cached feeds and page, ``/stories/ID``, ``/healthz``, ``/metrics`` |
| ``health`` | feed health for people: the ``aggregator feeds`` table, the ``/healthz`` summary |
"""
