"""Replacing a file so that a reader sees the old content or the new, never a mix.

Theory of operation: ``replace(path, data)`` writes ``data`` to a new temporary file beside
``path`` (its name has this process's ID and a random part, created exclusively), flushes
it to disk and renames it over ``path``; on any failure, an interrupt included, the
temporary file is removed and the exception goes on. The results document and the SA
files daemons read are written this way.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def replace(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
