"""How hqdm writes files: atomically, with the permissions of the user's umask, and what a failed write means.

Every file a run produces goes through a temporary name and ``os.replace`` so that an interrupted process
never leaves a half-written file where a reader expects a complete one. This module sits below every other
package (models, train, experiments all write files), so it imports nothing of hqdm.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["apply_umask", "atomic_path", "atomic_write_text", "storage_cause"]

_STORAGE_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the folder is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def storage_cause(err: OSError) -> str | None:
    """What a failed write means for the user ("the disk is full", ...), None for other OS errors."""
    return _STORAGE_CAUSES.get(err.errno or 0)


def _umask() -> int:
    mask = os.umask(0)  # reading the mask means setting it; put it back at once
    os.umask(mask)
    return mask


def apply_umask(path: Path) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would: temporary files and folders
    (``mkstemp``, ``mkdtemp``) and safetensors files are created owner-only, which would make shared
    results folders unreadable to collaborators."""
    base = 0o777 if path.is_dir() else 0o666
    path.chmod(base & ~_umask())


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        apply_umask(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
