"""Noise sources: where the Gaussian noise of the forward process and of the samplers comes from.

The process and the samplers only talk to the small :class:`NoiseSource` interface, so another source
(e.g. one built from quantum measurements) can replace :class:`GaussianNoise` without touching them.

Generator rule: a ``torch.Generator`` lives on one device. When a generator is given, numbers are drawn
on the generator's device and then moved to the requested device. A CPU generator therefore gives the
same numbers whether the model runs on CPU or CUDA. Without a generator the global RNG of the target
device is used.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["GaussianNoise", "NoiseSource", "NoiseSourceError", "draw_device", "sample_noise"]


class NoiseSourceError(RuntimeError):
    """A noise source returned a tensor of the wrong shape, dtype or device."""


@runtime_checkable
class NoiseSource(Protocol):
    """Anything that returns i.i.d. zero-mean, unit-variance noise of a requested shape.

    Implementations must return exactly ``shape`` on ``device`` with ``dtype`` and should draw all
    randomness from ``generator`` when one is given, so that training and sampling stay reproducible.
    """

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None,
        device: torch.device,
        dtype: torch.dtype,
    ) -> Tensor: ...


def draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """The device random numbers must be drawn on: the generator's, or ``device`` if there is none."""
    return generator.device if generator is not None else device


class GaussianNoise:
    """Standard normal noise from torch's RNG (the default source)."""

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        target = torch.device(device) if device is not None else torch.device("cpu")
        values = torch.randn(shape, generator=generator, device=draw_device(generator, target), dtype=dtype)
        return values.to(target)

    def __repr__(self) -> str:
        return "GaussianNoise()"


def sample_noise(
    source: NoiseSource,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """Draw from ``source`` and check the result, so a faulty custom source fails loudly and early."""
    noise = source.sample(tuple(shape), generator=generator, device=device, dtype=dtype)
    if not isinstance(noise, Tensor):
        raise NoiseSourceError(f"{source!r}.sample returned {type(noise).__name__}, expected a torch.Tensor")
    if tuple(noise.shape) != tuple(shape) or noise.dtype != dtype or noise.device.type != device.type:
        raise NoiseSourceError(
            f"{source!r}.sample returned shape {tuple(noise.shape)}, {noise.dtype} on {noise.device}; "
            f"expected shape {tuple(shape)}, {dtype} on {device}"
        )
    return noise
