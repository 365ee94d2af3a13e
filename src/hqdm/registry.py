"""The one error every registry (models, samplers, schedules, ansatzes, noise sources, ...) raises for a
name it does not hold, so callers catch one type and users read one kind of message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


class UnknownNameError(LookupError):
    """``name`` is not a registered ``kind``; the message lists the names that are."""

    def __init__(self, kind: str, name: object, known: Iterable[str]) -> None:
        self.kind, self.name, self.known = kind, name, tuple(known)
        super().__init__(f"unknown {kind} {name!r}; choose one of {', '.join(self.known)}")

    def __str__(self) -> str:  # LookupError would quote a single argument like KeyError does
        return str(self.args[0])


def lookup(table: Mapping[str, T], name: str, kind: str) -> T:
    """``table[name]``, or :class:`UnknownNameError` naming ``kind`` and the registered names."""
    try:
        return table[name]
    except KeyError:
        raise UnknownNameError(kind, name, table) from None
