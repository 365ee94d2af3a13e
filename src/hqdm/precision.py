"""Compute precision of a model's classical layers: float32, or bfloat16 autocast where it is native.

A model that supports it (:class:`MixedPrecisionModel`) runs its forward under ``torch.autocast`` when its
``precision`` is ``"bf16"``: convolutions and matrix products take bfloat16 operands and accumulate in
float32; normalisation statistics, the loss, the optimiser and the weights stay float32. Quantum circuits
are always simulated in complex64/complex128 (:func:`hqdm.quantum.engine.simulate` turns autocast off).
``precision`` is a plain attribute, not a parameter: it is not saved with the weights, and the same
weights can be sampled in either precision.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from hqdm.registry import UnknownNameError

__all__ = [
    "PRECISIONS",
    "MixedPrecisionModel",
    "Precision",
    "autocast",
    "native_bf16",
    "resolve_precision",
    "set_precision",
]

Precision = Literal["fp32", "bf16"]
PRECISIONS = ("auto", "fp32", "bf16")  # "auto": bf16 where the hardware computes it natively, else fp32


@functools.cache
def _cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: without either, bf16 products on a CPU are emulated and slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 products natively (CUDA: Ampere or newer)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_native_bf16()


def resolve_precision(name: str, device: torch.device | str) -> Precision:
    """``"auto"`` -> ``"bf16"`` where :func:`native_bf16`, else ``"fp32"``; other names are checked."""
    if name not in PRECISIONS:
        raise UnknownNameError("precision", name, PRECISIONS)
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return name  # type: ignore[return-value]


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str) -> Iterator[None]:
    """bfloat16 autocast on ``device`` for ``"bf16"``; nothing for ``"fp32"``."""
    device_type = torch.device(device).type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield


class MixedPrecisionModel(nn.Module):
    """Base of models whose forward honours ``self.precision`` (``"fp32"`` until :func:`set_precision`)."""

    precision: Precision = "fp32"


def set_precision(model: nn.Module, precision: str, device: torch.device | str = "cpu") -> Precision:
    """Set the precision of every :class:`MixedPrecisionModel` in ``model`` (``"auto"`` resolved for
    ``device``); return the resolved precision."""
    resolved = resolve_precision(precision, device)
    for module in model.modules():
        if isinstance(module, MixedPrecisionModel):
            module.precision = resolved
    return resolved
