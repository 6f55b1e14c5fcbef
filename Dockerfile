# syntax=docker/dockerfile:1
#
# Container image for the aggregator daemon.
#
#   docker build -t aggregator .
#   docker run -p 8080:8080 -v aggregator-data:/data \
#       -v "$PWD/config:/app/config" aggregator
#
# Mount the config folder, not feeds.yaml alone: an editor that saves by rename
# would leave a single-file mount on the old file (no live reload), and
# `aggregator import-opml` replaces the file beside itself.
#
# docker-compose.yml next to this file does the same with a healthcheck and
# restart policy; most people want `docker compose up -d`.

FROM python:3.11-slim

# No .pyc files in the image at run time, unbuffered logs for `docker logs`,
# no pip cache or version check baked into the layer.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the installer needs; .dockerignore keeps the rest (.venv, .git,
# tests, bench, local data) out of the build context.
COPY pyproject.toml README.md constraints.txt ./
COPY scripts/ scripts/
COPY aggregator/ aggregator/
# Default configuration; docker-compose.yml mounts the real feeds.yaml over it.
COPY config/ config/

# The same install command the README gives: creates /app/.venv and installs into
# it the versions pinned in constraints.txt (scripts/lock re-pins them).
RUN ./scripts/install

# Run as an unprivileged user. /app stays owned by root (read-only for the
# daemon); only /data, where the SQLite database lives, is writable. Creating
# and chowning /data before VOLUME means a fresh named volume inherits the
# ownership.
RUN groupadd --system --gid 10001 aggregator \
    && useradd --system --uid 10001 --gid aggregator \
       --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin aggregator \
    && mkdir -p /data \
    && chown aggregator:aggregator /data

# Listen on all interfaces inside the container, keep the database on the
# volume, read the configuration from the (mounted) default path. The venv
# comes first on PATH: `docker compose exec aggregator aggregator feeds` works.
ENV PATH=/app/.venv/bin:$PATH \
    AGGREGATOR_LISTEN=0.0.0.0:8080 \
    AGGREGATOR_DATABASE=/data/aggregator.db \
    AGGREGATOR_CONFIG=/app/config/feeds.yaml

VOLUME /data
EXPOSE 8080

USER aggregator

# The slim image has no curl: ask /healthz with the standard library.
# urlopen raises on connection errors and on non-2xx answers, so any failure
# exits non-zero and marks the container unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

CMD ["/app/.venv/bin/aggregator", "run"]
