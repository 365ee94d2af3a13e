"""A run folder is trained by one process at a time: an exclusive lock held for the life of the run.

The lock is ``flock`` on ``<run>/.hqdm-lock``: the kernel releases it when the holding process exits in
any way (``kill -9`` included), so a lock is never stale. The file names the holder (pid and host) for the
error a second writer gets. Where ``fcntl`` is missing (Windows) runs are not locked.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["LOCK_FILE", "RunLock", "RunLockedError"]

LOCK_FILE = ".hqdm-lock"


class RunLockedError(RuntimeError):
    """Another process holds the run folder's lock."""


class RunLock:
    """``with RunLock(run_dir):`` holds the folder's lock or raises :class:`RunLockedError`."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._handle: IO[str] | None = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # no flock on this platform
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            handle.close()
            raise RunLockedError(
                f"{self.path.parent} is being trained by another process ({holder}); wait for it to end "
                "or pass another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the lock
            self._handle = None
