"""Files written atomically: the one helper for "a reader (or a kill) sees the old file or the new
one, never a partial one" (temporary file in the same folder, fsync, ``os.replace``)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

__all__ = ["atomic_file"]


@contextlib.contextmanager
def atomic_file(path, *, prefix: str | None = None, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """``with atomic_file(path) as fh: fh.write(...)`` — written to ``prefix*suffix`` next to
    ``path`` (default prefix ``.NAME.``), fsynced and moved onto ``path`` when the block ends;
    removed, and ``path`` untouched, if the block raises."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}." if prefix is None else prefix,
                               suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
