"""Files replaced atomically: written beside the target, synced, renamed over it."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# A temporary file this old is a leftover of a writer that was killed mid-write.
STALE_TEMPORARY_SECONDS = 600


def remove_stale_temporaries(paths: Sequence[Path], *, now: float | None = None) -> list[Path]:
    """Delete what writers of ``paths`` killed mid-write left behind (the temporary
    ``.NAME.*`` files of write_atomically), once they are old enough not to belong
    to a writer still at work; return what was deleted."""
    now = time.time() if now is None else now
    removed = []
    for path in paths:
        for leftover in path.parent.glob(f".{path.name}.*"):
            try:
                if now - leftover.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                    leftover.unlink()
                    removed.append(leftover)
            except FileNotFoundError:  # another process cleaned it first
                continue
    return removed


def write_atomically(
    path: Path, data: bytes, *, check: Callable[[Path], object] | None = None
) -> None:
    """Replace ``path`` so readers see the old file or the new one, never half of it.

    ``check`` is called with the written temporary file before it replaces ``path``;
    whatever it raises leaves ``path`` untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if check is not None:
            check(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
