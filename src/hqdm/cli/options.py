"""Option types and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["add_precision", "choices_list", "int_list", "positive_float", "positive_int", "sampler_names"]


def choices_list(text: str, valid: Sequence[str], option: str) -> tuple[str, ...]:
    """A comma-separated list of names from ``valid``; anything else is a named usage error."""
    from hqdm.config import ConfigError

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise ConfigError(f"{option}: unknown or empty {unknown or text!r}; choose from {','.join(valid)}")
    return names


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0, else argparse's named usage error."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1, else argparse's named usage error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def add_precision(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--precision`` option; ``what`` ends its help (what it applies to and its default)."""
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        help=f"classical layers in fp32 or bf16 autocast, {what}",
    )


def sampler_names() -> list[str]:
    """The registered samplers, the choices of ``--sampler``."""
    from hqdm.diffusion import available_samplers

    return available_samplers()


def int_list(text: str, option: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers >= 0 (seeds, epochs); anything else is a named usage error."""
    from hqdm.config import ConfigError

    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"{option}: expected comma-separated whole numbers such as 0,1,2, got {text!r}"
        ) from None
    if not values or min(values) < 0:
        raise ConfigError(f"{option}: expected whole numbers >= 0, got {text!r}")
    return values
