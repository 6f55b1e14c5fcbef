"""Serving: the HTTP server and feed health.

| module | what it does |
| --- | --- |
| ``server`` | Starlette routes: feeds, pages, ``/stories/ID``, ``/healthz``, ``/metrics`` |
| ``cache`` | each feed and page rendered once per change of the database, kept in memory |
| ``render_pool`` | renders on worker threads, off the event loop |
| ``http_limits`` | bounds on request heads (size, time) and open files |
"""
