"""Progress of long work: a live bar on a terminal, a plain line every half minute in a log file.

A bar redrawn with carriage returns is unreadable in a log (``nohup``, a batch job), and no output at all
leaves the reader of a log unable to tell a long evaluation from a hung one. :func:`progress_bar` gives
tqdm on a terminal and :class:`LineProgress` elsewhere; both take the same calls.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TextIO, TypeVar

from tqdm import tqdm

__all__ = ["LineProgress", "Progress", "progress_bar", "progress_iter"]

LINE_INTERVAL = 30.0  # seconds between two lines when not on a terminal
T = TypeVar("T")


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, **values: Any) -> Any: ...

    def close(self) -> Any: ...


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class LineProgress:
    """Writes ``desc: done/total unit (p%), elapsed, ~left [postfix]`` at most every ``interval`` seconds
    and once more when closed."""

    def __init__(
        self,
        total: int | None,
        *,
        desc: str,
        unit: str,
        initial: int = 0,
        interval: float = LINE_INTERVAL,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.desc, self.unit, self.n, self.interval = total, desc, unit, initial, interval
        self.stream = stream if stream is not None else sys.stderr
        self._initial, self._postfix = initial, ""
        self._start = self._last = time.monotonic()
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._last >= self.interval:
            self._write()

    def set_postfix(self, **values: Any) -> None:
        self._postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def close(self) -> None:
        if not self._closed and self.n > self._initial:
            self._write()
        self._closed = True

    def line(self) -> str:
        elapsed = time.monotonic() - self._start
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        text = f"{self.desc}: {done} {self.unit}"
        if self.total:
            text += f" ({100 * self.n / self.total:.0f}%)"
        text += f", {_duration(elapsed)} elapsed"
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
        if self.total and rate > 0 and self.n < self.total:
            text += f", ~{_duration((self.total - self.n) / rate)} left"
        return text + (f" [{self._postfix}]" if self._postfix else "")

    def _write(self) -> None:
        self._last = time.monotonic()
        print(self.line(), file=self.stream, flush=True)


class _Silent:
    n = 0

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(
    total: int | None, *, desc: str, unit: str, initial: int = 0, enabled: bool = True, leave: bool = True
) -> Progress:
    """A tqdm bar when stderr is a terminal, else :class:`LineProgress`; nothing when not ``enabled``."""
    if not enabled:
        return _Silent()
    if sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, leave=leave)
    return LineProgress(total, desc=desc, unit=unit, initial=initial)


def progress_iter(
    items: Iterable[T], *, desc: str, unit: str, total: int | None = None, enabled: bool = True
) -> Iterator[T]:
    """Yield ``items`` while a :func:`progress_bar` counts them."""
    bar = progress_bar(total, desc=desc, unit=unit, enabled=enabled, leave=False)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
