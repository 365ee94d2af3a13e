"""Files hqdm writes get the permissions of the user's umask, as a plain ``open``/``mkdir`` would give."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["apply_umask"]


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
